#!/bin/sh
# A differential test of the filter protocol: the same recording filter
# (tests/tools/filter_record.py: every phase, every event, proceeds,
# echoes data lines, writes down every line it receives) runs under
# Debian's OpenSMTPD 6.8 (filter proc-exec, protocol 0.6) and under
# smtpfd (exec, protocol 0.6, a proxy in front of mtad); the same client
# sessions go through both; the two recordings, normalised (see
# normalise below: what must differ between two MTAs), must be equal
# line by line.  A difference is printed as a unified diff.
# Plain build only.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/peers.sh"

peer_skip_unless_plain
if ! is_root; then
	ok "$TEST_NAME # SKIP real peers need root"
	done_testing
	exit 0
fi

mtad_users
ensure_user _smtpfd
set -- $(free_ports 4)
OSBASE=$1 OS=$2 P=$3 D=$4
RECORD="$(cd "$(dirname "$0")/../tools" && pwd)/filter_record.py"
for r in os fd; do
	: >"$TMP/$r.rec"
	chmod 666 "$TMP/$r.rec"
done

# The client sessions, from 127.0.0.2 (no name in /etc/hosts: both MTAs
# see an unknown client).  Each command is sent after the reply to the
# one before; the transcript goes to stdout.
client() {
	timeout 60 python3 - "$1" <<'PY'
import socket, sys
port = int(sys.argv[1])

def session(steps):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(20)
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    f = s.makefile("rb")
    def reply(what):
        while True:
            line = f.readline().decode(errors="replace").rstrip("\r\n")
            print("%s -> %s" % (what, line or "CLOSED"), flush=True)
            if len(line) < 4 or line[3:4] != "-":
                return
    reply("greeting")
    for step in steps:
        if isinstance(step, list):
            for line in step:
                s.sendall(line.encode() + b"\r\n")
            s.sendall(b".\r\n")
            reply(".")
        else:
            s.sendall(step.encode() + b"\r\n")
            reply(step)
    s.close()

session([
    "EHLO client.example",
    "MAIL FROM:<sender@client.example>",
    "RCPT TO:<alice@test.example>",
    "RCPT TO:<bob@test.example>",
    "DATA",
    ["From: <sender@client.example>",
     "To: <alice@test.example>, <bob@test.example>",
     "Subject: differential one",
     "Date: Thu, 1 Jan 2026 00:00:00 +0000",
     "Message-ID: <one@client.example>",
     "",
     "first line",
     "..a dot-stuffed line",
     "last line"],
    "MAIL FROM:<other@client.example> SIZE=200",
    "RCPT TO:<carol@test.example>",
    "DATA",
    ["Subject: differential two",
     "Date: Thu, 1 Jan 2026 00:00:01 +0000",
     "Message-ID: <two@client.example>",
     "",
     "second message"],
    "RSET",
    "MAIL FROM:<third@client.example>",
    "RCPT TO:<dave@test.example>",
    "RSET",
    "NOOP",
    "QUIT",
])
session([
    "HELO helo.example",
    "QUIT",
])
PY
}

# wait_disconnects FILE N: the recording has N link-disconnect reports.
wait_disconnects() {
	i=0
	while [ "$(grep -c '|link-disconnect|' "$1")" -lt "$2" ] &&
	    [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(grep -c '|link-disconnect|' "$1")" -ge "$2" ]
}

# --- OpenSMTPD 6.8: the filter on a listener of our own (opensmtpd_start's
# own listener has no filter).
opensmtpd_start "$TMP/os" "$OSBASE" \
    "filter \"rec\" proc-exec \"/usr/bin/python3 $RECORD $TMP/os.rec\"" \
    "listen on 127.0.0.1 port $OS hostname opensmtpd.$PEER_DOMAIN filter \"rec\""
case $? in
0)	;;
2)	ok "$TEST_NAME # SKIP $PEER_SKIP"
	done_testing
	exit 0 ;;
*)	not_ok "opensmtpd starts" "$PEER_ERROR"
	done_testing
	exit 1 ;;
esac
check "opensmtpd listens with the filter" peer_wait_listen "$OS" "" 100
client "$OS" >"$TMP/os.out"
check "opensmtpd: the filter saw both sessions end" \
    wait_disconnects "$TMP/os.rec" 2
opensmtpd_stop "$TMP/os"

# --- smtpfd 0.6 in front of mtad.
downstream_mtad_conf "$D"
cat >"$TMP/smtpfd.conf" <<CONF
user _smtpfd
chroot "$TMP/empty"
control socket "$TMP/smtpfd.sock"
hostname filter.test.example
filter "rec" exec "/usr/bin/python3 $RECORD $TMP/fd.rec" protocol 0.6
proxy on 127.0.0.1 port $P chain "rec" forward to smtp://127.0.0.1:$D xclient
CONF
start_daemon mtad -f "$TMP/mtad.conf"
start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "smtpfd ready" ||
    ! wait_log "$TMP/smtpfd.log" "filter rec: started process"; then
	not_ok "mtad and smtpfd start"
	done_testing
	exit 1
fi
client "$P" >"$TMP/fd.out"
check "smtpfd: the filter saw both sessions end" \
    wait_disconnects "$TMP/fd.rec" 2

# --- The comparison.
#
# normalise OS|FD FILE: the recording with what must differ between two
# MTAs replaced or removed; each rule says why.  How often the rules
# that remove or move lines did so goes to FILE.rules (printed).
normalise() {
	python3 - "$1" "$2" <<'PY'
import re, sys
who, path = sys.argv[1], sys.argv[2]
lines = [l.rstrip("\n") for l in open(path)]
applied = {}

def rule(name, n=1):
    applied[name] = applied.get(name, 0) + n

ids = {}
def rename(kind, value):
    key = (kind, value)
    if key not in ids:
        ids[key] = "%s%d" % (kind, 1 + sum(1 for k in ids if k[0] == kind))
    return ids[key]

config, sessions, order = [], {}, []
received = {}           # session -> bytes of the Received: header
banner = {}             # session -> the host name of its banner
in_received = {}
for line in lines:
    f = line.split("|")
    if f[0] == "config":
        if f[1] == "smtpd-version":
            f[2] = "VERSION"            # 6.8.0p2, and smtpfd's 6.8.0
        elif f[1] == "admd":
            f[2] = "HOST"               # host names differ
        config.append("|".join(f))
        continue
    if f[0] not in ("report", "filter") or len(f) < 6:
        config.append(line)
        continue
    # report|VER|TIME|smtp-in|EVENT|SID[|PARAMS]
    # filter|VER|TIME|smtp-in|PHASE|SID|TOKEN|PARAM
    f[2] = "TIME"
    sid = f[5]
    if sid not in sessions:
        sessions[sid] = []
        order.append(sid)
    f[5] = rename("S", sid)
    event = f[4]
    if f[0] == "filter":
        # OpenSMTPD's tokens are one per filter and phase, smtpfd's one
        # per question: either way the filter only echoes them.
        f[6] = "TOKEN"
        if event == "data-line":
            text = "|".join(f[7:])
            # OpenSMTPD writes its own Received: header first (smtpfd,
            # a proxy, adds nothing: the downstream MTA does).
            if who == "OS" and (text.startswith("Received: ") or
                                (in_received.get(sid) and
                                 text.startswith("\t"))):
                in_received[sid] = True
                received[sid] = received.get(sid, 0) + len(text) + 1
                rule("OpenSMTPD's Received: header lines")
                continue
            in_received[sid] = False
    else:
        p = f[6:]
        if event == "link-connect" and len(p) == 4:
            # Ports are the test's; the destination is the listener the
            # client reached: OpenSMTPD's, or smtpfd's own (a proxy).
            p[2] = re.sub(r":\d+$", ":PORT", p[2])
            p[3] = re.sub(r":\d+$", ":PORT", p[3])
        elif event == "link-greeting":
            # The host names differ; each must be the one the banner
            # (the protocol-server line before) gave the client.
            if banner.get(sid) == p[0]:
                p[0] = "HOST"
                rule("link-greeting names the banner's host")
        elif event.startswith("tx-") and p:
            p[0] = rename("M", p[0]) if p[0] != "00000000" else p[0]
            if event == "tx-envelope" and len(p) > 1:
                p[1] = rename("E", p[1])
            if event == "tx-commit" and len(p) > 1 and who == "OS":
                # OpenSMTPD counts the Received: header it adds, twice
                # when the message goes through a data-line filter
                # (smtp_filter_printf and smtp_message_printf both add
                # to odatalen): a bug; the rest is the message as
                # stored (LF line ends, dots unstuffed).
                p[1] = str(int(p[1]) - 2 * received.get(sid, 0))
                received[sid] = 0
                rule("OpenSMTPD's tx-commit size counts its Received: twice")
        elif event == "protocol-server":
            # The replies are the MTA's own (OpenSMTPD's, or mtad's
            # through smtpfd): texts and EHLO keywords differ.  The
            # code of each reply's last line is compared.
            if len(p[0]) > 3 and p[0][3] == "-":
                continue
            if p[0].startswith("220 ") and sid not in banner:
                banner[sid] = p[0][4:].split(" ")[0]
            p = [p[0][:3]]
        f = f[:6] + p
    sessions[sid].append("|".join(f))

# OpenSMTPD writes data-line requests and reports to the filter from
# two channels (the message's pipe and the session's imsgs): the 354
# and tx-data reports may come after the first content lines.  Reports
# that come between a message's first data-line and its "." are put
# before its data-lines.
out = list(config)
for sid in order:
    block, held, moved = [], [], 0
    for l in sessions[sid]:
        f = l.split("|")
        if f[0] == "filter" and f[4] == "data-line":
            block.append(l)
            if "|".join(f[7:]) == ".":
                out.extend(held)
                out.extend(block)
                block, held = [], []
            continue
        if block:
            held.append(l)
            moved += 1
        else:
            out.append(l)
    out.extend(held)
    out.extend(block)
    if moved:
        rule("reports during OpenSMTPD's data-lines put before them", moved)
print("\n".join(out))
with open(path + ".rules", "w") as r:
    for k, v in sorted(applied.items()):
        r.write("%s: %d\n" % (k, v))
PY
}

normalise OS "$TMP/os.rec" >"$TMP/os.norm"
normalise FD "$TMP/fd.rec" >"$TMP/fd.norm"
sed 's/^/# normalised (opensmtpd): /' "$TMP/os.rec.rules"
sed 's/^/# normalised (smtpfd): /' "$TMP/fd.rec.rules"
if diff -u "$TMP/os.norm" "$TMP/fd.norm" >"$TMP/diff"; then
	ok "the filter received the same lines from opensmtpd and smtpfd"
else
	not_ok "the filter received the same lines from opensmtpd and smtpfd" \
	    "--- opensmtpd 6.8, +++ smtpfd (normalised recordings):"
	sed 's/^/#   /' "$TMP/diff"
	sed 's/^/# opensmtpd client: /' "$TMP/os.out"
	sed 's/^/# smtpfd client: /' "$TMP/fd.out"
fi
done_testing
