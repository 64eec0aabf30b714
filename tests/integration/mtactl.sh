#!/bin/sh
# mtactl against a running mtad: every command, and clear errors.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
set -- $(free_ports 1)
PORT=$1
SOCK="$TMP/mtad.sock"
ctl() {
	"$BIN/mtactl" -s "$SOCK" "$@"
}
# ctl_says REGEX ARGS...: the command succeeds and prints REGEX.
ctl_says() {
	re=$1
	shift
	out=$(ctl "$@" 2>&1) && echo "$out" | grep -q -- "$re"
}
# ctl_fails REGEX ARGS...: the command fails and says REGEX.
ctl_fails() {
	re=$1
	shift
	! out=$(ctl "$@" 2>&1) && echo "$out" | grep -q -- "$re"
}

out=$(ctl show queue 2>&1)
st=$?
check "without mtad: a clear error" sh -c '[ "$1" -eq 1 ] &&
    echo "$2" | grep -q "cannot connect to .*(is mtad running?)"' sh "$st" "$out"
out=$(ctl frobnicate 2>&1)
check "an unknown command prints usage" sh -c 'echo "$1" | grep -q "^usage: mtactl"' sh "$out"

echo "test.example" >"$TMP/domains"
cat >"$TMP/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/queue"
control socket "$SOCK"
smtp limit max-sessions 2
table domains file:$TMP/domains
listen on 127.0.0.1 port $PORT
action "hold" mda "exit 75" user nobody
match from any for domain <domains> action "hold"
CONF
start_daemon mtad -f "$TMP/mtad.conf"
pid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready"; then
	not_ok "mtad starts" "$(cat "$TMP/mtad.log")"
	done_testing
	exit 1
fi
check "the control socket is private" [ "$(stat -c %a "$SOCK")" = 600 ]

rcpt_reply() {	# the reply code to RCPT TO:<$1>
	cat >"$TMP/rcpt.smtp" <<SCRIPT
connect 127.0.0.1 $PORT
expect 220
send "EHLO client.example"
expect 250
send "MAIL FROM:<a@test.example>"
expect 250
send "RCPT TO:<$1>"
expect $2
send "DATA"
expect 354
send "Subject: x"
send ""
send "."
expect 250
SCRIPT
	"$TOOLS/smtpscript" "$TMP/rcpt.smtp" >/dev/null 2>&1
}
# script_ok FILE: the smtpscript passes (its own TAP stays out of ours).
script_ok() {
	"$TOOLS/smtpscript" "$@" >"$TMP/script.out" 2>&1
}
check "a queued message" rcpt_reply u@test.example 250
cat >"$TMP/rcpt2.smtp" <<SCRIPT
connect 127.0.0.1 $PORT
expect 220
send "EHLO client.example"
expect 250
send "MAIL FROM:<a@test.example>"
expect 250
send "RCPT TO:<u@new.example>"
expect 550
SCRIPT
check "u@new.example is refused before the update" \
    script_ok "$TMP/rcpt2.smtp"

out=$(ctl show queue)
check "show queue lists the envelope" sh -c 'echo "$1" | grep -q "rcpt=<u@test.example>"' sh "$out"
evpid=$(echo "$out" | grep "rcpt=<u@test.example>" | head -n 1 | cut -d' ' -f1)
check "show envelope prints it" ctl_says "^rcpt: u@test.example$" show envelope "$evpid"
check "show envelope of an unknown id fails" ctl_fails "no envelope" \
    show envelope 0123456789abcdef
check "show stats counts messages" ctl_says "^smtp.messages=1$" show stats
check "show stats shows the queue" ctl_says "^queue.waiting=" show stats

check "pause mda" ctl_says "paused" pause mda
before=$(grep -c "tempfail retries" "$TMP/mtad.log")
ctl schedule all >/dev/null
sleep 1
check "paused deliveries are not tried" \
    [ "$(grep -c "tempfail retries" "$TMP/mtad.log")" -eq "$before" ]
check "resume mda" ctl_says "resumed" resume mda
check "resumed deliveries try what was scheduled" \
    wait_log "$TMP/mtad.log" "rcpt=<u@test.example> tempfail retries=2"
check "schedule ID tries it now" ctl_says "1 envelope scheduled" schedule "$evpid"
check "and it is tried" wait_log "$TMP/mtad.log" "rcpt=<u@test.example> tempfail retries=3"
check "schedule with a bad id is an error" ctl_fails "expected an id" schedule nonsense

echo "new.example" >>"$TMP/domains"
check "update table reloads the file" ctl_says "table domains: 2 entries" \
    update table domains
sed -i 's/expect 550/expect 250/' "$TMP/rcpt2.smtp"
check "the updated table applies to the next RCPT" \
    script_ok "$TMP/rcpt2.smtp"
check "update of an unknown table is an error" ctl_fails "no table nosuch" \
    update table nosuch

check "remove ID" ctl_says "1 envelope removed" remove "$evpid"
check "the envelope is gone" sh -c '! ctl_out=$("$@") || ! echo "$ctl_out" | grep -q "$0"' \
    "$evpid" "$BIN/mtactl" -s "$SOCK" show queue

cat >"$TMP/sessions.smtp" <<SCRIPT
connect 127.0.0.1 $PORT as one
expect 220
connect 127.0.0.1 $PORT as two
expect 220
connect 127.0.0.1 $PORT as three
expect 421 4.3.2
expect-close
use one
send "QUIT"
expect 221
SCRIPT
check "max-sessions: one more client is told 421 4.3.2" \
    script_ok "$TMP/sessions.smtp"
check "and the refusal is logged" wait_log "$TMP/mtad.log" "refused a client: 2 sessions"

check "pause smtp" ctl_says "paused" pause smtp
check "resume smtp" ctl_says "resumed" resume smtp
check "log verbose" ctl_says "^log verbose$" log verbose
check "log brief" ctl_says "^log brief$" log brief

check "stop" ctl_says "^stopping$" stop
wait_status "$pid"
check "mtad exits 0 after stop" [ "$STATUS" -eq 0 ]
check "and removes its control socket" [ ! -e "$SOCK" ]
check "no sanitizer report" no_sanitizer_report "$TMP/mtad.log"
done_testing
