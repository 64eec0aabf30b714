#!/usr/bin/env python3
"""A test filter speaking OpenSMTPD's filter protocol (smtpd-filters(7)).

It registers every phase and every report event, and decides by what it
is asked, so that one filter exercises every decision:

  helo/ehlo   reject.example: reject; bye.example: disconnect;
              rewrite.example: rewrite to rewritten.example
  mail-from   junk@...: junk; rewrite@...: rewrite to <rewritten@...>;
              reject@...: reject; report@...: report (0.7 only);
              crash@...: the filter exits; hang@...: no answer;
              garbage@...: a line that is not the protocol
  rcpt-to     reject@...: reject; bye@...: disconnect
  data-line   adds "X-Test-Filter: SESSION" before the first line;
              a line "rewrite me" becomes "rewritten by the filter";
              a line "drop me" is dropped; a line "end early" becomes
              "." (a filter that ends the message before the client)
  commit      reject when the message had a line "reject at commit"
  anything    else: proceed

With -o FILE every line it receives is appended to FILE (the
differential test compares what OpenSMTPD and smtpfd send).  With
--slow-start SECONDS it waits before registering.  It exits at the end
of its input.
"""
import os
import sys
import time

PHASES = ["connect", "helo", "ehlo", "starttls", "auth", "mail-from",
          "rcpt-to", "data", "data-line", "commit", "rset", "quit", "noop"]


def main():
    record = None
    args = sys.argv[1:]
    while args:
        if args[0] == "-o":
            record = open(args[1], "a", buffering=1)
            args = args[2:]
        elif args[0] == "--slow-start":
            time.sleep(float(args[1]))
            args = args[2:]
        else:
            sys.stderr.write("usage: filter_test.py [-o FILE]\n")
            sys.exit(2)

    out = sys.stdout

    def send(line):
        out.write(line + "\n")
        out.flush()

    for p in PHASES:
        send("register|filter|smtp-in|" + p)
    send("register|report|smtp-in|*")
    send("register|ready")
    sys.stderr.write("test filter ready, pid %d\n" % os.getpid())
    sys.stderr.flush()

    version = "0.7"
    sessions = {}
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        if record:
            record.write(line + "\n")
        f = line.split("|")
        if f[0] == "config":
            if f[1] == "protocol":
                version = f[2]
            continue
        if f[0] == "report":
            if len(f) >= 6 and f[4] == "link-disconnect":
                sessions.pop(f[5], None)
            continue
        if f[0] != "filter":
            sys.stderr.write("unexpected line: %s\n" % line)
            continue
        # filter|VER|TIME|smtp-in|PHASE|SID|TOKEN|PARAM
        phase, sid, token = f[4], f[5], f[6]
        param = "|".join(f[7:])
        s = sessions.setdefault(sid, {"lines": 0, "reject": False})

        def result(decision):
            send("filter-result|%s|%s|%s" % (sid, token, decision))

        if phase == "data-line":
            if s["lines"] == 0:
                send("filter-dataline|%s|%s|X-Test-Filter: %s" %
                     (sid, token, sid))
            s["lines"] += 1
            if param == "rewrite me":
                param = "rewritten by the filter"
            elif param == "drop me":
                continue
            elif param == "reject at commit":
                s["reject"] = True
            elif param == "end early":
                param = "."	# the end, before the message's own
            elif param == ".":
                s["lines"] = 0
            send("filter-dataline|%s|%s|%s" % (sid, token, param))
            continue
        if phase in ("helo", "ehlo"):
            if param == "reject.example":
                result("reject|550 5.7.1 HELO refused by the test filter")
            elif param == "bye.example":
                result("disconnect|421 4.7.0 Go away, says the test filter")
            elif param == "rewrite.example":
                result("rewrite|rewritten.example")
            else:
                result("proceed")
        elif phase == "mail-from":
            local = param.split("@")[0]
            if local == "junk":
                result("junk")
            elif local == "rewrite":
                result("rewrite|<rewritten@%s>" % param.split("@")[1])
            elif local == "reject":
                result("reject|550 5.7.1 Sender refused by the test filter")
            elif local == "report" and version >= "0.7":
                result("report|the test filter reports")
            elif local == "crash":
                sys.stderr.write("crashing as asked\n")
                sys.stderr.flush()
                os._exit(3)
            elif local == "hang":
                pass
            elif local == "garbage":
                send("this is not the protocol")
            else:
                result("proceed")
        elif phase == "rcpt-to":
            local = param.split("@")[0]
            if local == "reject":
                result("reject|550 5.7.1 Recipient refused by the test "
                       "filter")
            elif local == "bye":
                result("disconnect|421 4.7.0 Bye from the test filter")
            else:
                result("proceed")
        elif phase == "commit":
            if s["reject"]:
                s["reject"] = False
                result("reject|554 5.7.1 Message refused at commit by the "
                       "test filter")
            else:
                result("proceed")
        else:
            result("proceed")


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
