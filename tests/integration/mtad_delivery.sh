#!/bin/sh
# Local delivery: maildir, mbox, mda and lmtp, as the recipient's user;
# alias expansion; retries and bounces; placeholders that cannot escape
# their directory; an action changed while mail waits applies to it.
. "$(dirname "$0")/../lib/common.sh"

U1=$(id -un) U2=$(id -un) user=nobody
if is_root; then
	user=_mtad U1=mtadtest1 U2=mtadtest2
	ensure_user "$user"
	ensure_user "$U1"
	ensure_user "$U2"
fi
set -- $(free_ports 1)
PORT=$1
mkdir -p "$TMP/maildir" "$TMP/mda" "$TMP/mbox" "$TMP/lmtp"
chmod 1777 "$TMP/maildir" "$TMP/mda" "$TMP/lmtp"

python3 "$(dirname "$0")/../tools/lmtp_sink.py" "$TMP/lmtp.sock" "$TMP/lmtp" &
started_pids="$started_pids $!"

write_conf() {	# $1: the command of action "later"
	cat >"$TMP/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/queue"
hostname mx.test.example
table domains { test.example }
table travel { trav.example }
table aliases { alice = $U1, bob = $U2, both = "$U1, $U2", box = $U1, \\
    cmd = $U2, fail = $U1, later = $U1, lmtp = $U1, ghost = nosuchuser42 }
table r_mbox { box@test.example }
table r_cmd { cmd@test.example }
table r_fail { fail@test.example }
table r_later { later@test.example }
table r_lmtp { lmtp@test.example }
table r_noisy { noisy@test.example }
listen on 127.0.0.1 port $PORT
action "maildir" maildir "$TMP/maildir/%{dest}" alias <aliases>
action "mbox" mbox "$TMP/mbox/%{user.username}" alias <aliases>
action "cmd" mda "cat > $TMP/mda/%{rcpt.user}" alias <aliases>
action "fail" mda "echo mailbox is on fire >&2; exit 67" alias <aliases>
action "later" mda "$1" alias <aliases>
action "lmtp" lmtp "unix:$TMP/lmtp.sock" alias <aliases>
action "noisy" mda "cat > $TMP/mda/noisy; echo one >&2; echo two >&2; exit 0" user $U1
action "travel" maildir "$TMP/maildir/travel/%{rcpt.user}" user $U1
match from any for rcpt <r_mbox> action "mbox"
match from any for rcpt <r_cmd> action "cmd"
match from any for rcpt <r_fail> action "fail"
match from any for rcpt <r_later> action "later"
match from any for rcpt <r_lmtp> action "lmtp"
match from any for rcpt <r_noisy> action "noisy"
match from any for domain <travel> action "travel"
match from any for domain <domains> action "maildir"
CONF
}
write_conf "exit 75"

start_daemon mtad -f "$TMP/mtad.conf"
pid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready"; then
	not_ok "mtad starts" "$(cat "$TMP/mtad.log")"
	done_testing
	exit 1
fi

send() {	# send FROM RCPT... : one message, Subject "to RCPT1"
	from=$1
	shift
	{
		echo 'connect 127.0.0.1 $PORT'
		echo 'expect 220'
		echo 'send "EHLO client.example"'
		echo 'expect 250'
		echo "send \"MAIL FROM:<$from>\""
		echo 'expect 250'
		for r in "$@"; do
			echo "send \"RCPT TO:<$r>\""
			echo 'expect 250'
		done
		echo 'send "DATA"'
		echo 'expect 354'
		echo "send \"Subject: to $1\""
		echo 'send ""'
		echo 'send "From the start of a line"'
		echo 'send "..dotted"'
		echo 'send "."'
		echo 'expect 250 2.0.0'
	} >"$TMP/send.smtp"
	"$TOOLS/smtpscript" -D PORT="$PORT" "$TMP/send.smtp" >"$TMP/send.tap" 2>&1
}

send bob@test.example alice@test.example both@test.example box@test.example \
    cmd@test.example
check "the message is accepted" grep -q "^ok" "$TMP/send.tap"
send bob@test.example fail@test.example
send bob@test.example later@test.example
send bob@test.example lmtp@test.example
send bob@test.example noisy@test.example
send bob@test.example '\"../../escape\"@trav.example'
send "" ghost@test.example

# Bounded wait for the deliveries to land.
wait_for() {	# FILE-PATTERN
	i=0
	while [ "$i" -lt 100 ]; do
		ls $1 >/dev/null 2>&1 && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

check "maildir: delivered into new/" wait_for "$TMP/maildir/$U1/new/*"
f=$(grep -l "^Delivered-To: alice@test.example" "$TMP/maildir/$U1/new/"* | head -n 1)
check "maildir: Return-Path and Delivered-To come first" \
    sh -c 'head -n 2 "$1" | tr "\n" " " | grep -q "^Return-Path: <bob@test.example> Delivered-To: alice@test.example"' sh "$f"
check "maildir: then our Received: header" \
    sh -c 'sed -n 3p "$1" | grep -q "^Received: from client.example"' sh "$f"
check "maildir: content is intact (dot-unstuffed)" grep -qx ".dotted" "$f"
check "maildir: nothing left in tmp/" [ -z "$(ls "$TMP/maildir/$U1/tmp")" ]
check "alias list: both users got it" wait_for "$TMP/maildir/$U2/new/*"
if is_root; then
	check "maildir: written as the recipient's user" \
	    [ "$(stat -c %U "$f")" = "$U1" ]
fi

check "mbox: delivered" wait_for "$TMP/mbox/$U1"
check "mbox: starts with a From line" \
    sh -c 'head -n 1 "$1" | grep -q "^From bob@test.example "' sh "$TMP/mbox/$U1"
check "mbox: From in the body is quoted" grep -qx ">From the start of a line" "$TMP/mbox/$U1"
is_root && check "mbox: created for the user" [ "$(stat -c %U "$TMP/mbox/$U1")" = "$U1" ]

check "mda: the command got the message" wait_for "$TMP/mda/cmd"
check "mda: placeholders are shell-quoted values" grep -q "^Subject: to " "$TMP/mda/cmd"

check "mda: a command that talks on stderr still delivers" \
    wait_log "$TMP/mtad.log" "rcpt=<noisy@test.example> dest=.* delivered"
check "lmtp: delivered to the LMTP server" wait_for "$TMP/lmtp/1.eml"
check "lmtp: envelope as sent" grep -qx "rcpt <lmtp@test.example>" "$TMP/lmtp/1.env"
check "lmtp: dot-stuffing undone by the server gives the content back" \
    grep -q "^\.dotted" "$TMP/lmtp/1.eml"

check "placeholders cannot climb out of their directory" \
    wait_for "$TMP/maildir/travel/*/new/*"
check "  (nothing was written outside)" \
    sh -c '[ ! -e "$1/escape" ] && [ ! -e "$1/maildir/escape" ]' sh "$TMP"

# A permanent failure bounces to the sender (bob: a maildir here).
check "permanent failure: a bounce reaches the sender" \
    wait_for "$TMP/maildir/$U2/new/*"
i=0
while [ "$i" -lt 100 ] && ! grep -lq "^Subject: Undelivered mail" "$TMP/maildir/$U2/new/"* 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
b=$(grep -l "^Subject: Undelivered mail" "$TMP/maildir/$U2/new/"* | head -n 1)
check "the bounce names the recipient and the reason" \
    grep -q "<fail@test.example>: 550 5.3.0 mda exited 67: mailbox is on fire" "$b"
check "the bounce comes from the null sender" grep -qx "Return-Path: <>" "$b"
check "the bounce quotes the original headers" grep -qx "Subject: to fail@test.example" "$b"
check "a failing bounce is not bounced again" \
    wait_log "$TMP/mtad.log" "a bounce that fails is not bounced"

# A temporary failure stays queued with its reason.
check "temporary failure: retried later" \
    wait_log "$TMP/mtad.log" "rcpt=<later@test.example> tempfail retries=1"
env=$(grep -l "^rcpt: later@test.example" "$TMP/queue/queue"/*/[0-9a-f]*[0-9a-f])
check "the envelope records the retry and the reason" \
    sh -c 'grep -qx "retries: 1" "$1" && grep -qx "errorline: 451 4.3.0 mda exited 75" "$1"' sh "$env"

# The action is found by name at delivery time: fix it, restart.
kill -TERM "$pid"
wait_status "$pid"
mv "$TMP/mtad.log" "$TMP/mtad-1.log"
write_conf "cat > $TMP/mda/fixed"
start_daemon mtad -f "$TMP/mtad.conf"
pid=$DAEMON_PID
check "after a restart the changed action delivers the waiting mail" \
    wait_for "$TMP/mda/fixed"
check "and the envelope is gone" \
    sh -c '! grep -qs "^rcpt: later@test.example" "$1"/*/[0-9a-f]*[0-9a-f]' sh "$TMP/queue/queue"
kill -TERM "$pid"
wait_status "$pid"
check "mtad exits 0" [ "$STATUS" -eq 0 ]
done_testing
