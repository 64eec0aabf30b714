#!/bin/sh
# kill -9 of the whole daemon while mail flows in: every message that got
# 250 is in the queue, complete; nothing half-received survives a restart.
. "$(dirname "$0")/../lib/common.sh"

user=nobody
if is_root; then
	user=_mtad
	ensure_user "$user"
fi
set -- $(free_ports 1)
PORT=$1
cat >"$TMP/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/queue"
smtp limit max-mails 1000000
table domains { test.example }
listen on 127.0.0.1 port $PORT
# Deliveries fail temporarily: accepted mail stays in the queue to be
# counted.
action "hold" mda "exit 75" user nobody
match from any for domain <domains> action "hold"
CONF

# One session sending message after message, as fast as it can.
cat >"$TMP/flood.smtp" <<'SCRIPT'
connect 127.0.0.1 $PORT
expect 220
send "EHLO flood.example"
expect 250
repeat 100000
send "MAIL FROM:<flood@b.example>"
send "RCPT TO:<u@test.example>"
send "RCPT TO:<v@test.example>"
send "DATA"
expect 250
expect 250
expect 250
expect 354
send "Subject: flood"
send ""
send "some text"
send "."
expect 250
end
SCRIPT

q="$TMP/queue"
for round in 1 2 3; do
	start_daemon mtad -f "$TMP/mtad.conf"
	pid=$DAEMON_PID
	if ! wait_log "$TMP/mtad.log" "mtad ready"; then
		not_ok "round $round: mtad starts" "$(cat "$TMP/mtad.log")"
		break
	fi
	if [ "$round" -gt 1 ]; then
		check "round $round: a restart leaves nothing in incoming/" \
		    [ -z "$(ls "$q/incoming")" ]
	fi
	clients=
	for c in 1 2 3; do
		"$TOOLS/smtpscript" -v -D PORT="$PORT" "$TMP/flood.smtp" \
		    >/dev/null 2>"$TMP/client-$round-$c.log" &
		clients="$clients $!"
	done
	# Let mail flow, then kill everything at an arbitrary instant.
	sleep "0.$(( $(od -An -N1 -tu1 /dev/urandom) % 9 + 5 ))"
	kill -KILL "$pid" $(children_of "$pid") 2>/dev/null
	wait "$pid" 2>/dev/null
	for c in $clients; do
		wait "$c" 2>/dev/null
	done
	mv "$TMP/mtad.log" "$TMP/mtad-$round.log"

	accepted=$(cat "$TMP"/client-$round-*.log |
	    sed -n 's/^<<< 250 2\.0\.0 \([0-9a-f]\{8\}\) Message accepted.*/\1/p')
	n=$(echo "$accepted" | grep -c .)
	check "round $round: some mail got 250 before the kill ($n)" [ "$n" -gt 0 ]
	missing=
	for id in $accepted; do
		[ -f "$q/queue/$id/message" ] &&
		    [ "$(ls "$q/queue/$id" | grep -c -v message)" -eq 2 ] &&
		    grep -qx "some text" "$q/queue/$id/message" ||
		    missing="$missing $id"
	done
	check "round $round: every message that got 250 is queued whole" \
	    [ -z "$missing" ]
	bad=
	for d in "$q"/queue/*; do
		[ -f "$d/message" ] && grep -q "^version: 1$" "$d"/[0-9a-f]*[0-9a-f] ||
		    bad="$bad $d"
	done
	check "round $round: everything in queue/ is a complete message" \
	    [ -z "$bad" ]
done

start_daemon mtad -f "$TMP/mtad.conf"
pid=$DAEMON_PID
wait_log "$TMP/mtad.log" "mtad ready"
envelopes=$(find "$q/queue" -type f ! -name message ! -name '.*' | wc -l)
check "after the last restart the queue reports every envelope ($envelopes)" \
    grep -q "queue $q: $envelopes envelopes waiting" "$TMP/mtad.log"
check "and incoming/ is empty" [ -z "$(ls "$q/incoming")" ]
kill -TERM "$pid"
wait_status "$pid"
done_testing
