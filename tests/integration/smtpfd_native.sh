#!/bin/sh
# mtad -> smtpfd -> mtad over smtpf: mtad's own scenario scripts run
# against a filtered listener (every command, pipelining, STARTTLS done by
# the front mtad on smtpfd's word, several transactions) and must see
# what they see without smtpfd; the queue then holds what the client was
# told, with the real client in Received:.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 5)
F=$1 FT=$2 FR=$3 B=$4 XPORT=$5
mkdir "$TMP/other"
if ! make_cert "$TMP" || ! make_cert "$TMP/other"; then
	not_ok "openssl makes a test CA and certificates"
	done_testing
	exit 1
fi
chmod 644 "$TMP/key.pem"
SOCK="$TMP/smtpf.sock"

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
# the front: every client handed to smtpfd
listen on 127.0.0.1 port $F filter smtpf "unix:$SOCK"
listen on 127.0.0.1 port $FT tls pki test filter smtpf "unix:$SOCK"
listen on 127.0.0.1 port $FR tls-require pki test filter smtpf "unix:$SOCK"
listen on 127.0.0.1 port $XPORT xclient from <trusted>
# the back: smtpfd replays the sessions here
listen on 127.0.0.1 port $B xclient from <trusted>
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
smtpf on socket "$SOCK" forward to smtp://127.0.0.1:$B xclient
CONF

# smtpfd first: mtad connects at start (and would retry anyway).
start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
wait_log "$TMP/smtpfd.log" "smtpfd ready"
start_daemon mtad -v -f "$TMP/mtad.conf"
mpid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "speaks smtpf 1.0"; then
	not_ok "mtad and smtpfd start and link"
	done_testing
	exit 1
fi
ok "mtad links to smtpfd"

"$TOOLS/smtpscript" -D HOST=127.0.0.1 -D PORT="$F" -D XPORT="$XPORT" \
    -D TPORT="$FT" -D RPORT="$FR" -D CA="$TMP/ca.pem" \
    -D OTHERCA="$TMP/other/ca.pem" \
    "$(dirname "$0")"/../scenarios/mtad/commands.smtp \
    "$(dirname "$0")"/../scenarios/mtad/data.smtp \
    "$(dirname "$0")"/../scenarios/mtad/tls.smtp \
    "$(dirname "$0")"/../scenarios/smtpfd/native.smtp \
    >"$TMP/script.tap" 2>&1
tap_relay "mtad->smtpfd->mtad: " <"$TMP/script.tap"

q="$TMP/queue/queue"
message_with() {
	grep -l -x -F -- "$1" "$q"/*/message 2>/dev/null
}
check "a message accepted once is queued once" \
    [ "$(message_with "Subject: plain" | wc -l)" -eq 1 ]
m=$(message_with "Subject: plain")
check "Received: names the real client, not smtpfd" \
    sh -c 'head -n 1 "$1" | grep -q "^Received: from client.example (\[127.0.0.1\])"' sh "$m"
check "ten transactions in one session: ten messages" \
    [ "$(grep -l "^Subject: transaction [0-9]* of ten" "$q"/*/message | wc -l)" -eq 10 ]
check "the message sent over TLS is queued" \
    [ "$(message_with "Subject: over tls" | wc -l)" -eq 1 ]
check "smtpfd saw the client's TLS" grep -q "smtp tls ciphers=TLSv1" "$TMP/smtpfd.log"
check "smtpfd replayed with XCLIENT" \
    grep -Eq "smtp xclient address=127.0.0.1 port=[0-9]+ helo=filter.test.example" \
    "$TMP/mtad.log"

# Nothing for a client that leaves in the middle of its content.
python3 - "$F" "$TMP/vanish.out" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
log = open(sys.argv[2], "w")
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        log.write(l.decode())
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
wait_log "$TMP/smtpfd.log" "client left during the content" 50
check "a client gone mid-DATA: it got as far as 354" grep -q "^354" "$TMP/vanish.out"
check "a client gone mid-DATA: smtpfd abandons the transaction" \
    grep -q "client left during the content" "$TMP/smtpfd.log"
sleep 0.5
check "a client gone mid-DATA: nothing queued" [ -z "$(message_with "Subject: vanished")" ]

check "smtpfd is still running" is_running "$fpid"
check "mtad is still running" is_running "$mpid"
check "no sanitizer report (smtpfd)" no_sanitizer_report "$TMP/smtpfd.log"
check "no sanitizer report (mtad)" no_sanitizer_report "$TMP/mtad.log"
done_testing
