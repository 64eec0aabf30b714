#!/usr/bin/env python3
"""A recording filter speaking OpenSMTPD's filter protocol.

    filter_record.py FILE

It registers every filter phase a client session can reach (connect,
helo, ehlo, starttls, auth, mail-from, rcpt-to, data, data-line,
commit) and every report event (register|report|smtp-in|*), answers
proceed to every question, gives each data line back as it came, and
appends every line it receives (config, report, filter), as received,
to FILE.  The differential test (tests/integration/filter_exec_diff.sh)
runs it under OpenSMTPD and under smtpfd and compares the two FILEs.
It exits at the end of its input.
"""
import sys

PHASES = ["connect", "helo", "ehlo", "starttls", "auth", "mail-from",
          "rcpt-to", "data", "data-line", "commit"]


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: filter_record.py FILE\n")
        sys.exit(2)
    record = open(sys.argv[1], "a", buffering=1)
    out = sys.stdout

    def send(line):
        out.write(line + "\n")
        out.flush()

    # As real filters do: register at once, without waiting for config.
    for p in PHASES:
        send("register|filter|smtp-in|" + p)
    send("register|report|smtp-in|*")
    send("register|ready")

    for raw in sys.stdin:
        line = raw.rstrip("\n")
        record.write(line + "\n")
        f = line.split("|")
        if f[0] != "filter" or len(f) < 7:
            continue
        # filter|VER|TIME|smtp-in|PHASE|SID|TOKEN[|PARAM]
        phase, sid, token = f[4], f[5], f[6]
        if phase == "data-line":
            send("filter-dataline|%s|%s|%s" % (sid, token,
                 "|".join(f[7:])))
        else:
            send("filter-result|%s|%s|proceed" % (sid, token))


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
