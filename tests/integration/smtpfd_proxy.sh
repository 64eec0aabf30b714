#!/bin/sh
# smtpfd as a plain SMTP proxy in front of mtad: mtad's own scenario
# scripts run through it and must see the same answers, plus what smtpfd
# adds (tests/scenarios/smtpfd/proxy.smtp); the downstream learns the real
# client through XCLIENT; failures of the downstream reach the client as
# 421, and a client that vanishes mid-DATA leaves nothing behind.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 12)
PORT=$1 XPORT=$2 TPORT=$3 RPORT=$4 DPORT=$5 PPORT=$6 PTPORT=$7 PRPORT=$8
NPORT=$9
shift 9
DEADPORT=$1 APORT=$2 SILENTPORT=$3
mkdir "$TMP/other"
if ! make_cert "$TMP" || ! make_cert "$TMP/other"; then
	not_ok "openssl makes a test CA and certificates"
	done_testing
	exit 1
fi
chmod 644 "$TMP/key.pem"

{
	mtad_conf_head
	cat <<CONF
smtp max-message-size 10K
smtp limit max-rcpt 3
smtp limit max-errors 8
smtp timeout command 3s
pki test cert "$TMP/cert.pem"
pki test key "$TMP/key.pem"
table domains { test.example, other.example }
table blocked { blocked@test.example }
table trusted { 127.0.0.1 }
listen on 127.0.0.1 port $PORT
listen on 127.0.0.1 port $XPORT xclient from <trusted>
listen on 127.0.0.1 port $TPORT tls pki test
listen on 127.0.0.1 port $RPORT tls-require pki test
# smtpfd's downstream
listen on 127.0.0.1 port $DPORT xclient from <trusted>
action "local" mda "exit 75" user nobody
match from any for rcpt <blocked> reject
match from any for domain <domains> action "local"
match from any for local action "local"
CONF
} >"$TMP/mtad.conf"

cat >"$TMP/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$TMP/smtpfd.sock"
hostname filter.test.example
timeout client 3s
pki test cert "$TMP/cert.pem"
pki test key "$TMP/key.pem"
proxy on 127.0.0.1 port $PPORT forward to smtp://127.0.0.1:$DPORT xclient
proxy on 127.0.0.1 port $PTPORT tls pki test forward to smtp://127.0.0.1:$DPORT
proxy on 127.0.0.1 port $PRPORT tls-require pki test \\
    forward to smtp://127.0.0.1:$DPORT
# mtad's plain listener does not trust us with XCLIENT
proxy on 127.0.0.1 port $NPORT forward to smtp://127.0.0.1:$PORT
proxy on 127.0.0.1 port $DEADPORT forward to smtp://127.0.0.1:1
# a trusted MTA in front, and a downstream that stops answering
proxy on 127.0.0.1 port $APORT accept-identity \\
    forward to smtp://127.0.0.1:$SILENTPORT xclient
CONF

# The silent downstream: it greets, offers PIPELINING and XCLIENT, takes
# one XCLIENT and the EHLO after it, then answers nothing.
python3 - "$SILENTPORT" <<'PY' &
import signal, socket, sys, threading
signal.alarm(600)	# the test kills it; this bounds it if the test dies
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(5)
def serve(c):
    f = c.makefile("rb")
    c.sendall(b"220 silent ESMTP\r\n")
    n = 0
    for l in f:
        n += 1
        if n <= 3 and l[:4].upper() in (b"EHLO", b"XCLI"):
            c.sendall(b"220 ok\r\n" if l[:4].upper() == b"XCLI" else
                b"250-silent\r\n250-PIPELINING\r\n250 XCLIENT NAME ADDR "
                b"PORT PROTO HELO LOGIN DESTADDR DESTPORT\r\n")
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
silentpid=$!
started_pids="$started_pids $silentpid"

start_daemon mtad -v -f "$TMP/mtad.conf"
start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "smtpfd ready"; then
	not_ok "mtad and smtpfd start"
	done_testing
	exit 1
fi

# mtad's scenarios, through the proxy.  The XCLIENT ones are about mtad's
# own listeners and stay direct; timeouts are mtad's.
"$TOOLS/smtpscript" -D HOST=127.0.0.1 -D PORT="$PPORT" -D XPORT="$XPORT" \
    -D TPORT="$PTPORT" -D RPORT="$PRPORT" -D CA="$TMP/ca.pem" \
    -D OTHERCA="$TMP/other/ca.pem" -D DOWNPORT="$DPORT" \
    "$(dirname "$0")"/../scenarios/mtad/commands.smtp \
    "$(dirname "$0")"/../scenarios/mtad/data.smtp \
    "$(dirname "$0")"/../scenarios/mtad/tls.smtp \
    "$(dirname "$0")"/../scenarios/mtad/nul.smtp \
    "$(dirname "$0")"/../scenarios/smtpfd/proxy.smtp \
    >"$TMP/script.tap" 2>&1
tap_relay "through smtpfd: " <"$TMP/script.tap"

q="$TMP/queue/queue"
message_with() {
	grep -l -x -F -- "$1" "$q"/*/message 2>/dev/null
}
check "a message through the proxy is queued once" \
    [ "$(message_with "Subject: proxy pipelined" | wc -l)" -eq 1 ]
m=$(message_with "Subject: proxy pipelined")
check "Received: names the real client and its HELO, not smtpfd" \
    sh -c 'head -n 1 "$1" | grep -q "^Received: from client.example (\[127.0.0.1\])"' sh "$m"
m=$(message_with "Subject: proxy smuggling")
check "a lone dot ended by a bare LF stays in the message" \
    grep -qx "MAIL FROM:<smuggled@b.example>" "$m"
check "mtad was told the client's port by XCLIENT" \
    grep -Eq "smtp xclient address=127.0.0.1 port=[0-9]+ helo=filter.test.example" \
    "$TMP/mtad.log"

# EHLO as the client sees it: no XCLIENT, no STARTTLS on a plain proxy.
ehlo=$(swaks --server 127.0.0.1:$PPORT --quit-after EHLO 2>&1)
check "the client is not offered XCLIENT" sh -c '! echo "$1" | grep -q XCLIENT' sh "$ehlo"
check "the client is not offered the downstream's STARTTLS" \
    sh -c '! echo "$1" | grep -q STARTTLS' sh "$ehlo"

# A downstream that does not offer XCLIENT to smtpfd: 421, and the log says why.
out=$(swaks --server 127.0.0.1:$NPORT --quit-after CONNECT 2>&1)
check "no XCLIENT downstream: the client gets 421 4.3.0" \
    sh -c 'echo "$1" | grep -q "<\*\* 421 4.3.0"' sh "$out"
check "no XCLIENT downstream: the log says so" \
    grep -q "does not offer XCLIENT" "$TMP/smtpfd.log"

# A downstream that is down.
out=$(swaks --server 127.0.0.1:$DEADPORT --quit-after CONNECT 2>&1)
check "downstream down: the client gets 421 4.3.0" \
    sh -c 'echo "$1" | grep -q "<\*\* 421 4.3.0"' sh "$out"

# A client that vanishes in the middle of its content: nothing queued.
python3 - "$PPORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if l[3:4] != b"-":
            return l
reply()
for c in (b"EHLO client.example", b"MAIL FROM:<a@b.example>",
          b"RCPT TO:<u@test.example>", b"DATA"):
    s.sendall(c + b"\r\n")
    reply()
s.sendall(b"Subject: vanished\r\n\r\nhalf a message\r\n")
time.sleep(0.3)
s.close()
PY
sleep 1
check "a client gone mid-DATA: nothing queued" \
    [ -z "$(message_with "Subject: vanished")" ]
check "a client gone mid-DATA: smtpfd logs the abandoned transaction" \
    grep -q "client left during the content" "$TMP/smtpfd.log"

# A client that pipelines everything, shuts its side and then reads:
# it still gets every reply, the message's included.
python3 - "$PPORT" >"$TMP/halfclose.out" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(10)
f = s.makefile("rb")
f.readline()
s.sendall(b"EHLO client.example\r\n")
while f.readline()[3:4] == b"-":
    pass
s.sendall(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<u@test.example>\r\nDATA\r\n")
for _ in range(3):
    f.readline()
s.sendall(b"Subject: half closed\r\n\r\nbody\r\n.\r\nQUIT\r\n")
s.shutdown(socket.SHUT_WR)
for l in f:
    sys.stdout.write(l.decode())
PY
check "a half-closed client gets the reply to its message" \
    grep -q "^250 2.0.0 .* Message accepted" "$TMP/halfclose.out"
check "a half-closed client gets the reply to QUIT" grep -q "^221" "$TMP/halfclose.out"
check "the half-closed client's message is queued once" \
    [ "$(message_with "Subject: half closed" | wc -l)" -eq 1 ]

# A trusted client's identity, as long as XCLIENT makes it (NAME and
# HELO in xtext, each alone on a downstream XCLIENT line), then 251
# pipelined NOOPs the downstream never answers (the most a session
# read on with before), then MAIL: the MAIL takes its XCLIENT lines,
# the EHLO and itself, and the session must have kept room for them.
python3 - "$APORT" >"$TMP/identity.out" 2>&1 <<'PY'
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.settimeout(10)
f = c.makefile("rb")
f.readline()
def xtext(s):
    return "".join("+%02X" % ord(ch) if ch in "+=" else ch for ch in s)
c.sendall(b"EHLO client.example\r\n")
while f.readline()[3:4] == b"-":
    pass
c.sendall(("XCLIENT HELO=%s\r\n" % xtext("=" * 170)).encode())
print(f.readline().decode().strip())
c.sendall(("XCLIENT NAME=%s\r\n" % xtext("+" * 163 + "a")).encode())
print(f.readline().decode().strip())
c.sendall(b"NOOP\r\n" * 251 + b"MAIL FROM:<a@b.example>\r\n")
time.sleep(1)
c.close()
PY
check "a trusted client's XCLIENT is taken" \
    sh -c '[ "$(grep -c "^220 2.0.0" "$1")" -eq 2 ]' sh "$TMP/identity.out"
check "a long identity behind a full pipeline: smtpfd still runs" \
    is_running "$fpid"
kill "$silentpid" 2>/dev/null

check "smtpfd is still running" is_running "$fpid"
check "no sanitizer report" no_sanitizer_report "$TMP/smtpfd.log"
done_testing
