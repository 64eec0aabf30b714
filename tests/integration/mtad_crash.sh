#!/bin/sh
# kill -9 of the whole daemon, at random moments, while mail flows in and
# is delivered: after restarts, every message that got 250 is delivered
# exactly once into the maildir; a message whose DATA never ended is
# never delivered; nothing half-received survives.  (A message whose "."
# was sent when the server died may or may not have been committed: the
# client did not learn which; it is delivered once or not at all.)
. "$(dirname "$0")/../lib/common.sh"

mtad_users
set -- $(free_ports 1)
PORT=$1
mkdir -p "$TMP/maildir"
chmod 1777 "$TMP/maildir"
cat >"$TMP/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/queue"
smtp limit max-mails 1000000
table domains { test.example }
listen on 127.0.0.1 port $PORT
action "local" maildir "$TMP/maildir/%{dest}" user $runas
match from any for domain <domains> action "local"
CONF

# One session sending message after message, each with its own subject.
cat >"$TMP/flood.smtp" <<'SCRIPT'
connect 127.0.0.1 $PORT
expect 220
send "EHLO flood.example"
expect 250
repeat 100000
send "MAIL FROM:<flood@test.example>"
send "RCPT TO:<u@test.example>"
send "RCPT TO:<v@test.example>"
send "DATA"
expect 250
expect 250
expect 250
expect 354
send "Subject: flood $CLIENT-$REPEAT"
send ""
send "some text"
send "."
expect 250
end
SCRIPT

# What each client learnt: "accepted SUBJECT" or "indoubt SUBJECT" (the
# final dot went out, no reply came back).
outcomes() {
	awk '
	FNR == 1 { if (dot && cur != "") print "indoubt", cur; cur = ""; dot = 0 }
	/^>>> Subject: flood / { sub(/\r$/, ""); cur = $4; dot = 0; next }
	/^>>> \.\r?$/ { dot = 1; next }
	/^<<< 250 2\.0\.0 .* Message accepted/ { if (dot) print "accepted", cur; dot = 0; cur = ""; next }
	END { if (dot && cur != "") print "indoubt", cur }
	' "$@"
}

q="$TMP/queue"
for round in 1 2 3; do
	start_daemon mtad -f "$TMP/mtad.conf"
	pid=$DAEMON_PID
	if ! wait_log "$TMP/mtad.log" "mtad ready"; then
		not_ok "round $round: mtad starts" "$(cat "$TMP/mtad.log")"
		break
	fi
	clients=
	for c in 1 2 3; do
		"$TOOLS/smtpscript" -v -D PORT="$PORT" -D CLIENT="$round.$c" \
		    "$TMP/flood.smtp" >/dev/null 2>"$TMP/client-$round-$c.log" &
		clients="$clients $!"
	done
	sleep "0.$(( $(od -An -N1 -tu1 /dev/urandom) % 9 + 3 ))"
	kill -KILL "$pid" $(children_of "$pid") 2>/dev/null
	wait "$pid" 2>/dev/null
	for c in $clients; do
		wait "$c" 2>/dev/null
	done
	mv "$TMP/mtad.log" "$TMP/mtad-$round.log"
	n=$(outcomes "$TMP"/client-$round-*.log | grep -c "^accepted")
	check "round $round: mail got 250 before the kill ($n)" [ "$n" -gt 0 ]
done

# Let the last restart deliver everything that is left.
start_daemon mtad -f "$TMP/mtad.conf"
pid=$DAEMON_PID
wait_log "$TMP/mtad.log" "mtad ready"
check "after the last restart incoming/ is empty" [ -z "$(ls "$q/incoming")" ]
i=0
while [ "$i" -lt 300 ] && [ -n "$(ls "$q/queue")" ]; do
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$(ls "$q/queue")" ]; then
	ok "the queue drains"
else
	not_ok "the queue drains" "$(ls -lR "$q/queue")" \
	    "$(cat "$q"/queue/*/[0-9a-f]*[0-9a-f] 2>/dev/null)"
fi

outcomes "$TMP"/client-*.log >"$TMP/outcomes"
for box in u v; do
	grep -h "^Subject: flood " "$TMP/maildir/$box/new/"* 2>/dev/null |
	    sed 's/^Subject: flood //' | sort >"$TMP/delivered-$box"
done
check "no message is delivered twice" [ -z "$(uniq -d "$TMP/delivered-u")$(uniq -d "$TMP/delivered-v")" ]
missing=
for s in $(awk '$1 == "accepted" { print $2 }' "$TMP/outcomes"); do
	grep -qx "$s" "$TMP/delivered-u" && grep -qx "$s" "$TMP/delivered-v" ||
	    missing="$missing $s"
done
check "every message that got 250 is delivered, to both recipients" \
    [ -z "$missing" ]
awk '{ print $2 }' "$TMP/outcomes" | sort >"$TMP/known"
unexpected=$(sort -u "$TMP/delivered-u" "$TMP/delivered-v" |
    comm -23 - "$TMP/known" | head -n 5)
check "nothing is delivered whose DATA never ended" [ -z "$unexpected" ]
kill -TERM "$pid"
wait_status "$pid"
check "no sanitizer report" no_sanitizer_report "$TMP/mtad.log"
done_testing
