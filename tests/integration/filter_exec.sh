#!/bin/sh
# Exec filters (OpenSMTPD's filter protocol) through real sessions:
# smtpfd proxies to mtad with tests/tools/filter_test.py in the chain.
# Each decision at each phase, the data-line pipeline, the process the
# parent starts (user, session, stderr in the log); then the failures:
# a filter that crashes, is killed mid-message, hangs past its timeout,
# prints garbage.  Each gives the failure policy, the filter comes back,
# smtpfd stays up, and nothing a client was told failed is queued.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 3)
P=$1 D=$2 PP=$3
SOCK="$TMP/smtpfd.sock"
FILTER="/usr/bin/python3 $(cd "$(dirname "$0")/../tools" && pwd)/filter_test.py"
STEPS="$(dirname "$0")/../tools/smtp_steps.py"
ctl() {
	"$BIN/smtpfctl" -s "$SOCK" "$@"
}
steps() {
	python3 "$STEPS" "$@"
}

{
	mtad_conf_head
	cat <<CONF
table trusted { 127.0.0.1 }
table domains { test.example, b.example }
listen on 127.0.0.1 port $D xclient from <trusted>
action "local" mda "exit 75" user nobody
match from any for domain <domains> action "local"
CONF
} >"$TMP/mtad.conf"

cat >"$TMP/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$SOCK"
hostname filter.test.example
filter "t" exec "$FILTER" timeout 2s
filter "p" exec "$FILTER" timeout 1s on-failure proceed
chain "main" { "t" }
proxy on 127.0.0.1 port $P chain "main" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PP chain "p" forward to smtp://127.0.0.1:$D xclient
CONF

start_daemon mtad -f "$TMP/mtad.conf"
start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "smtpfd ready" ||
    ! wait_log "$TMP/smtpfd.log" "filter t: test filter ready" ||
    ! wait_log "$TMP/smtpfd.log" "filter p: test filter ready"; then
	not_ok "mtad, smtpfd and the filters start"
	done_testing
	exit 1
fi

q="$TMP/queue/queue"
message_with() {
	grep -l -x -F -- "$1" "$q"/*/message 2>/dev/null
}
# filter_pid NAME: the pid of the filter's current process
filter_pid() {
	sed -n "s/.*filter $1: started process \([0-9]*\):.*/\1/p" \
	    "$TMP/smtpfd.log" | tail -n 1
}
# wait_ready N: the filter t has said it is ready N times
wait_ready() {
	i=0
	while [ "$(grep -c "filter t: test filter ready" "$TMP/smtpfd.log")" \
	    -lt "$1" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(grep -c "filter t: test filter ready" "$TMP/smtpfd.log")" -ge "$1" ]
}
T=$(filter_pid t)

# The process: stdin and stdout on a socket, its own session, the user.
check "the filter's stderr is logged with its name" \
    grep -q "smtpfd: parent: filter t: test filter ready, pid $T" "$TMP/smtpfd.log"
check "the filter runs as smtpfd's user" \
    [ "$(ps -o user= -p "$T")" = "$fuser" ]
check "the filter runs in a session of its own" \
    [ "$(ps -o sid= -p "$T" | tr -d ' ')" = "$T" ]
tr '\0' '\n' </proc/"$T"/environ | grep -v '^PWD=' >"$TMP/environ"
check "the filter's environment is clean (PATH, and sh's PWD)" \
    [ "$(cat "$TMP/environ")" = "PATH=/usr/bin:/bin" ]

# Decisions.
steps "$P" "EHLO reject.example" "EHLO bye.example" "NOOP" >"$TMP/helo.out"
check "ehlo reject: the client gets the filter's reply" \
    grep -q "^EHLO reject.example -> 550 5.7.1 HELO refused by the test filter" "$TMP/helo.out"
check "ehlo disconnect: the client gets the reply and is closed" \
    sh -c 'grep -q "^EHLO bye.example -> 421 4.7.0 Go away" "$1" &&
    grep -q "^NOOP -> CLOSED" "$1"' sh "$TMP/helo.out"

steps "$P" "EHLO rewrite.example" "MAIL FROM:<junk@b.example>" \
    "RCPT TO:<u@test.example>" "DATA" \
    "=Subject: exec junk\n\nrewrite me\ndrop me\n..dotted\nkept" \
    "MAIL FROM:<rewrite@b.example>" "RCPT TO:<reject@test.example>" \
    "RCPT TO:<u@test.example>" "DATA" "=Subject: exec rewritten\n\nbody" \
    "MAIL FROM:<reject@b.example>" "MAIL FROM:<report@b.example>" \
    "RCPT TO:<u@test.example>" "DATA" \
    "=Subject: exec commit\n\nreject at commit" \
    "RSET" "MAIL FROM:<a@b.example>" "RCPT TO:<u@test.example>" "DATA" \
    "=Subject: exec after commit\n\nbody" \
    "RCPT TO:<bye@test.example>" >"$TMP/decisions.out"
sed 's/^/# /' "$TMP/decisions.out"
m=$(message_with "Subject: exec junk")
check "junk: the message is queued with X-Spam: Yes" \
    sh -c '[ -n "$1" ] && grep -qx "X-Spam: Yes" "$1"' sh "$m"
check "ehlo rewrite: the downstream got the new name" \
    grep -q "^Received: from rewritten.example" "$m"
check "data-line: the filter's header is in the message" \
    grep -q "^X-Test-Filter: [0-9a-f]\{16\}$" "$m"
check "data-line: a rewritten line" grep -qx "rewritten by the filter" "$m"
check "data-line: a dropped line" sh -c '! grep -q "drop me" "$1"' sh "$m"
check "data-line: dot-stuffed lines come back unstuffed once" \
    grep -qx ".dotted" "$m"
check "data-line: the last line is kept" grep -qx "kept" "$m"
m=$(message_with "Subject: exec rewritten")
check "mail-from rewrite: the envelope has the new sender" \
    grep -qx "sender: rewritten@b.example" "$(dirname "$m")"/[0-9a-f]*[0-9a-f]
check "rcpt-to reject: the client gets the filter's reply" \
    grep -q "^RCPT TO:<reject@test.example> -> 550 5.7.1 Recipient refused" "$TMP/decisions.out"
check "mail-from reject" \
    grep -q "^MAIL FROM:<reject@b.example> -> 550 5.7.1 Sender refused" "$TMP/decisions.out"
check "report (0.7): the sender is accepted" \
    grep -q "^MAIL FROM:<report@b.example> -> 250" "$TMP/decisions.out"
check "report (0.7): logged with the filter's name" \
    grep -q "filter t phase mail-from report: the test filter reports" "$TMP/smtpfd.log"
check "commit reject: the client gets the filter's reply" \
    grep -q "^\. -> 554 5.7.1 Message refused at commit" "$TMP/decisions.out"
check "commit reject: the message is not queued" \
    [ -z "$(message_with "Subject: exec commit")" ]
check "after a refused commit the next message is queued" \
    [ -n "$(message_with "Subject: exec after commit")" ]
check "rcpt-to disconnect: 421 and closed" \
    grep -q "^RCPT TO:<bye@test.example> -> 421 4.7.0 Bye" "$TMP/decisions.out"

out=$(ctl show filters 2>&1)
echo "$out" | sed 's/^/# /' | cut -c1-200
check "show filters: the exec filter is ready, with its decisions" \
    sh -c 'echo "$1" | grep -Eq "^t kind=exec state=ready .*rewrite=2 junk=1 report=1 .*reject=4 disconnect=2 failures=0"' sh "$out"

# A filter that ends the message before the client did: what the client
# sends next is still content (not commands), and the message fails.
cat >"$TMP/early.smtp" <<SCRIPT
test "a filter's early end of the message: 451, the rest stays content"
connect 127.0.0.1 $P
expect 220
send "EHLO client.example"
expect 250
send "MAIL FROM:<a@b.example>"
expect 250
send "RCPT TO:<u@test.example>"
expect 250
send "DATA"
expect 354
send "Subject: exec early end"
send ""
send "end early"
sleep 500
send "HELP"
send "."
expect 451 4.3.0
send "NOOP"
expect 250
SCRIPT
"$TOOLS/smtpscript" "$TMP/early.smtp" >"$TMP/early.tap" 2>&1
tap_relay "" <"$TMP/early.tap"
check "  nothing is queued" [ -z "$(message_with "Subject: exec early end")" ]
check "  the log names the filter and why" \
    grep -q "filter t phase data-line failed: it ended the message before the message ended" "$TMP/smtpfd.log"

# Failures.  A crash: the session gets the policy (tempfail), the filter
# is restarted after 1 s, and new sessions work again.
steps "$P" "EHLO client.example" "MAIL FROM:<crash@b.example>" \
    "MAIL FROM:<a@b.example>" >"$TMP/crash.out"
check "crash: the command in flight gets 451" \
    grep -q "^MAIL FROM:<crash@b.example> -> 451 4.3.0" "$TMP/crash.out"
check "crash: the session's next command gets 451 too (its filter is gone)" \
    grep -q "^MAIL FROM:<a@b.example> -> 451 4.3.0" "$TMP/crash.out"
check "crash: logged with the filter's name" \
    grep -q "filter t: its process closed its end" "$TMP/smtpfd.log"
check "crash: the filter's last words are logged" \
    grep -q "filter t: crashing as asked" "$TMP/smtpfd.log"
check "crash: the filter is restarted after 1 s" \
    grep -q "filter t: restarting in 1000 ms" "$TMP/smtpfd.log"
check "crash: the filter comes back" wait_ready 2
T2=$(filter_pid t)
check "crash: a new process" [ "$T2" != "$T" ]
steps "$P" "EHLO client.example" "MAIL FROM:<a@b.example>" \
    "RCPT TO:<u@test.example>" "DATA" "=Subject: exec after crash\n\nbody" \
    >"$TMP/aftercrash.out"
check "crash: after the restart a message goes through the filter" \
    sh -c 'm=$(grep -l -x "Subject: exec after crash" "$1"/*/message) &&
    grep -q "^X-Test-Filter: " $m' sh "$q"

# Killed in the middle of a message: the final dot gets 451, nothing queued.
rm -f "$TMP/in-data" "$TMP/killed"
steps "$P" "EHLO client.example" "MAIL FROM:<a@b.example>" \
    "RCPT TO:<u@test.example>" "DATA" \
    "=LINESSubject: exec killed\n\nfirst half" "!$TMP/in-data" \
    "@$TMP/killed" "=second half" >"$TMP/killed.out" &
spid=$!
i=0
while [ ! -e "$TMP/in-data" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$T2"
touch "$TMP/killed"
wait_status "$spid"
sed 's/^/# /' "$TMP/killed.out"
check "killed mid-message: the final dot gets 451" \
    grep -q "^\. -> 451 4.3.0" "$TMP/killed.out"
sleep 0.5
check "killed mid-message: nothing queued" \
    [ -z "$(message_with "Subject: exec killed")" ]
check "killed: the back-off doubles" \
    wait_log "$TMP/smtpfd.log" "filter t: restarting in 2000 ms" 30
check "killed: the filter comes back" wait_ready 3

# Garbage: logged with the line, the policy, a restart.
steps "$P" "EHLO client.example" "MAIL FROM:<garbage@b.example>" \
    >"$TMP/garbage.out"
check "garbage: the command gets 451" \
    grep -q "^MAIL FROM:<garbage@b.example> -> 451 4.3.0" "$TMP/garbage.out"
check "garbage: the log names the filter and the line" \
    grep -q 'filter t: protocol error: "this is not the protocol"' "$TMP/smtpfd.log"
check "garbage: the filter comes back" wait_ready 4

# A hang past the timeout: tempfail; with on-failure proceed, proceed.
steps "$P" "EHLO client.example" "MAIL FROM:<hang@b.example>" \
    "MAIL FROM:<a@b.example>" >"$TMP/hang.out"
check "hang (tempfail): the command gets 451 after the timeout" \
    grep -q "^MAIL FROM:<hang@b.example> -> 451 4.3.0" "$TMP/hang.out"
check "hang: the filter still answers the session's next command" \
    grep -q "^MAIL FROM:<a@b.example> -> 250" "$TMP/hang.out"
check "hang: logged as a timeout with session, filter and phase" \
    grep -Eq "[0-9a-f]{16} filter t phase mail-from failed: no answer in time" \
    "$TMP/smtpfd.log"
steps "$PP" "EHLO client.example" "MAIL FROM:<hang@b.example>" \
    "RCPT TO:<u@test.example>" "DATA" "=Subject: exec hang proceed\n\nbody" \
    >"$TMP/hangp.out"
check "hang (on-failure proceed): the message goes through" \
    [ -n "$(message_with "Subject: exec hang proceed")" ]

out=$(ctl show filters 2>&1)
echo "$out" | sed 's/^/# /' | cut -c1-200
check "show filters: failures, a timeout and restarts counted" \
    sh -c 'echo "$1" | grep -Eq "^t kind=exec state=ready .*failures=[1-9][0-9]* timeouts=1 restarts=3 "' sh "$out"

check "smtpfd is still running" is_running "$fpid"
check "no sanitizer report" no_sanitizer_report "$TMP/smtpfd.log"
kill -TERM "$fpid"
wait_gone "$fpid" 50
T3=$(filter_pid t)
check "the filters stop with smtpfd" wait_gone "$T3" 30
done_testing
