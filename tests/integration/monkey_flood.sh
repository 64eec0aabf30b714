#!/bin/sh
# The monkey: mail floods through an mtad built with fault injection
# (MONKEY=1): queue writes, syncs, renames, reads and deletes, message
# writes, session allocation and maildir writes fail at random.  Then
# the books must balance: every message that got 250 is delivered exactly
# once, every other one got a 4xx/5xx (or was in doubt when its final dot
# met a failure), and the daemon is still up.
#
# MONKEY_RATE (failures per 10000 calls, default 200), MONKEY_SEED
# (default random), MONKEY_DURATION (seconds of flood, default 10).
. "$(dirname "$0")/../lib/common.sh"

rate=${MONKEY_RATE:-200}
seed=${MONKEY_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
duration=${MONKEY_DURATION:-10}
echo "# monkey rate=$rate/10000 seed=$seed duration=${duration}s"

mtad_users
set -- $(free_ports 1)
PORT=$1
mkdir -p "$TMP/maildir"
chmod 1777 "$TMP/maildir"
cat >"$TMP/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/queue"
control socket "$TMP/mtad.sock"
table domains { test.example }
listen on 127.0.0.1 port $PORT
action "local" maildir "$TMP/maildir/%{dest}" user $runas
match from any for domain <domains> action "local"
CONF
MONKEY_RATE=$rate MONKEY_SEED=$seed start_daemon mtad -f "$TMP/mtad.conf"
pid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready"; then
	not_ok "mtad starts under the monkey" "$(cat "$TMP/mtad.log")"
	done_testing
	exit 1
fi

# One client: message after message, each in its own session, until the
# time is up; -v keeps the dialogue for the books.
client() {
	n=0
	end=$(( $(date +%s) + duration ))
	while [ "$(date +%s)" -lt "$end" ]; do
		n=$((n + 1))
		cat >"$TMP/c$1.smtp" <<SCRIPT
connect 127.0.0.1 $PORT
expect 220
send "EHLO monkey.example"
expect 250
send "MAIL FROM:<monkey@test.example>"
expect 250
send "RCPT TO:<u@test.example>"
expect 250
send "DATA"
expect 354
send "Subject: monkey $1-$n"
send ""
send "banana"
send "."
expect 250
send "QUIT"
SCRIPT
		echo "=== $1-$n" >>"$TMP/client-$1.log"
		"$TOOLS/smtpscript" -v "$TMP/c$1.smtp" >/dev/null \
		    2>>"$TMP/client-$1.log"
	done
}
for c in 1 2 3; do
	client "$c" &
	clients="${clients:-} $!"
done
for c in $clients; do
	wait "$c"
done

# Books per message: accepted (250 after the dot), indoubt (the dot went
# out, no reply), refused (a 4xx/5xx reply ended it), silent (nothing).
awk '
function flush() {
	if (id == "") return
	if (accepted) print "accepted", id
	else if (dot && !replied) print "indoubt", id
	else if (refused) print "refused", id
	else print "silent", id
}
/^=== / { flush(); id = $2; accepted = dot = replied = refused = 0; next }
/^>>> \.\r?$/ { dot = 1; next }
/^<<< 250 2\.0\.0 .* Message accepted/ { if (dot) { accepted = 1; replied = 1 }; next }
/^<<< [45][0-9][0-9][ -]/ { refused = 1; if (dot) replied = 1; next }
END { flush() }
' "$TMP"/client-*.log >"$TMP/books"
total=$(grep -c . "$TMP/books")
accepted=$(grep -c "^accepted" "$TMP/books")
echo "# $total messages: $accepted accepted, $(grep -c "^refused" "$TMP/books") refused, $(grep -c "^indoubt" "$TMP/books") in doubt"
check "the monkey struck" [ "$(grep -c "monkey: .* fails" "$TMP/mtad.log")" -gt 0 ]
check "some mail still got through ($accepted of $total)" [ "$accepted" -gt 0 ]
check "every message that was not accepted got a 4xx/5xx reply" \
    [ "$(grep -c "^silent" "$TMP/books")" -eq 0 ]
check "the daemon is still up" kill -0 "$pid"
check "no process was lost" sh -c '! grep -q "lost child" "$1"' sh "$TMP/mtad.log"

# Deliveries that met the monkey are retried: push them until done.
i=0
while [ "$i" -lt 60 ] && [ -n "$(ls "$TMP/queue/queue")" ]; do
	"$BIN/mtactl" -s "$TMP/mtad.sock" schedule all >/dev/null 2>&1
	sleep 1
	i=$((i + 1))
done
check "the queue drains" [ -z "$(ls "$TMP/queue/queue")" ]

grep -h "^Subject: monkey " "$TMP/maildir/u/new/"* 2>/dev/null |
    sed 's/^Subject: monkey //' | sort >"$TMP/delivered"
check "no message is delivered twice" [ -z "$(uniq -d "$TMP/delivered")" ]
missing=
for id in $(awk '$1 == "accepted" { print $2 }' "$TMP/books"); do
	grep -qx "$id" "$TMP/delivered" || missing="$missing $id"
done
check "every message that got 250 is delivered" [ -z "$missing" ]
extra=
for id in $(cat "$TMP/delivered"); do
	grep -Eq "^(accepted|indoubt) $id\$" "$TMP/books" || extra="$extra $id"
done
check "nothing refused is delivered" [ -z "$extra" ]
kill -TERM "$pid"
wait_status "$pid"
check "mtad stops cleanly" [ "$STATUS" -eq 0 ]
done_testing
