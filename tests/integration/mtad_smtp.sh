#!/bin/sh
# mtad's SMTP server over real sockets: the scenario scripts in
# tests/scenarios/mtad/ (run by smtpscript), then what the queue holds.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
set -- $(free_ports 4)
PORT=$1 XPORT=$2 TPORT=$3 RPORT=$4
mkdir "$TMP/other"
if ! make_cert "$TMP" || ! make_cert "$TMP/other"; then
	not_ok "openssl makes a test CA and certificates"
	done_testing
	exit 1
fi
chmod 644 "$TMP/key.pem"

cat >"$TMP/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/queue"
hostname mx.test.example
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
# Deliveries wait (temporary failure) so that the queue can be inspected.
action "local" mda "exit 75" user nobody
match from any for rcpt <blocked> reject
match from any for domain <domains> action "local"
match from any for local action "local"
CONF

start_daemon mtad -v -f "$TMP/mtad.conf"
pid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready"; then
	not_ok "mtad starts" "$(cat "$TMP/mtad.log")"
	done_testing
	exit 1
fi

"$TOOLS/smtpscript" -D HOST=127.0.0.1 -D PORT="$PORT" -D XPORT="$XPORT" \
    -D TPORT="$TPORT" -D RPORT="$RPORT" -D CA="$TMP/ca.pem" \
    -D OTHERCA="$TMP/other/ca.pem" \
    "$(dirname "$0")"/../scenarios/mtad/*.smtp >"$TMP/script.tap" 2>&1
tap_relay "" <"$TMP/script.tap"

# What the queue holds must match what the client was told.
q="$TMP/queue/queue"
message_with() {
	grep -l -x -F -- "$1" "$q"/*/message 2>/dev/null
}
count_with() {
	message_with "$1" | wc -l
}

check "a message accepted once is queued once" \
    [ "$(count_with "Subject: plain")" -eq 1 ]
m=$(message_with "Subject: plain")
check "dot-stuffing is undone" grep -qx ".leading dot" "$m"
check "our Received: header comes first" \
    sh -c 'head -n 1 "$1" | grep -q "^Received: from client.example (\[127.0.0.1\])"' sh "$m"
check "Received: names our host and the queue id" \
    grep -q "by mx.test.example (mtad) with ESMTP id $(basename "$(dirname "$m")")" "$m"
check "content is stored with LF line ends" sh -c '! grep -q "$(printf "\r")" "$1"' sh "$m"

check "ten transactions in one session: ten messages" \
    [ "$(grep -l "^Subject: transaction [0-9]* of ten" "$q"/*/message | wc -l)" -eq 10 ]
m=$(message_with "Subject: pipelined one")
check "a pipelined message has one envelope per recipient" \
    [ "$(ls "$(dirname "$m")" | grep -c -v message)" -eq 2 ]
check "the second pipelined message is queued" \
    [ "$(count_with "Subject: pipelined two")" -eq 1 ]
m=$(message_with "Subject: pipelined two")
check "the null sender is kept" grep -qx "sender: " "$(dirname "$m")"/[0-9a-f]*[0-9a-f]

m=$(message_with "Subject: smuggling")
check "bare-LF smuggling stays inside one message" \
    grep -qx "MAIL FROM:<evil@b.example>" "$m"
check "the smuggled lines are content up to the real end" grep -qx "third" "$m"
check "no envelope from the smuggled sender" \
    sh -c '! grep -qx "sender: evil@b.example" "$1"/*/[0-9a-f]*[0-9a-f]' sh "$q"
m=$(message_with "Subject: smuggling two")
check "CRLF . LF is content too" grep -qx "NOOP" "$m"

for subject in "bare cr" nul "long line" "too big" loop; do
	check "refused message ($subject) is not queued" \
	    [ "$(count_with "Subject: $subject")" -eq 0 ]
done
check "nothing is left half-received in incoming/" \
    [ -z "$(ls "$TMP/queue/incoming")" ]

m=$(message_with "Subject: via xclient")
check "XCLIENT's address is the one recorded" \
    grep -q "^Received: from mail.example.com (\[192.0.2.1\])" "$m"
m=$(message_with "Subject: over tls")
check "a message over STARTTLS says ESMTPS" grep -q "with ESMTPS id" "$m"
check "the envelope keeps DSN parameters" \
    grep -qx "dsn-orcpt: rfc822;u+40test.example" "$q"/*/[0-9a-f]*[0-9a-f]

# A queue slower than the command timeout: the client waits, and gets its
# answer; the session is not timed out under it.
qpid=
for c in $(children_of "$pid"); do
	[ "$(ps -o args= -p "$c")" = "mtad: queue" ] && qpid=$c
done
cat >"$TMP/slowqueue.smtp" <<SCRIPT
connect 127.0.0.1 $PORT
timeout 15
expect 220
send "EHLO client.example"
expect 250
send "MAIL FROM:<a@b.example>"
expect 250
send "RCPT TO:<u@test.example>"
expect 250
send "DATA"
expect 354
send "Subject: slow queue"
send ""
send "."
expect 250 2.0.0
SCRIPT
kill -STOP "$qpid"
(sleep 5; kill -CONT "$qpid") &
"$TOOLS/smtpscript" "$TMP/slowqueue.smtp" >"$TMP/slowqueue.out" 2>&1
check "a queue stalled past the command timeout delays, never kills, a session" \
    grep -q "^ok" "$TMP/slowqueue.out"
check "  and the daemon is still up" kill -0 "$pid"

kill -TERM "$pid"
wait_status "$pid"
check "mtad exits 0" [ "$STATUS" -eq 0 ]
check "no sanitizer report" no_sanitizer_report "$TMP/mtad.log"
done_testing
