#!/bin/sh
# The README's "make run": it starts mtad and smtpfd, swaks and Postfix's
# smtp-source deliver into its maildir, Ctrl-C (SIGINT) stops everything.
. "$(dirname "$0")/../lib/common.sh"

top=$(cd "$(dirname "$0")/../.." && pwd)
set -- $(free_ports 2)
port=$1	# and $port + 1: mtad's back listener, behind smtpfd
# As from a terminal: its own process group, SIGINT not ignored (a
# background job of a script would ignore it).
RUNDIR="$TMP/run" PORT=$port python3 -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execv(sys.argv[1], sys.argv[1:])' "$top/contrib/run" \
    "$(dirname "$BIN")" >"$TMP/run.log" 2>&1 &
runpid=$!
started_pids="$started_pids $runpid"
if ! wait_log "$TMP/run.log" "mtad and smtpfd are up" 150; then
	not_ok "make run starts the daemons" "$(cat "$TMP/run.log")"
	done_testing
	exit 1
fi
ok "make run starts the daemons"
check "it says how to send a test mail" grep -q "swaks --server 127.0.0.1:$port" "$TMP/run.log"

if command -v swaks >/dev/null; then
	swaks --server "127.0.0.1:$port" --from you@example.net \
	    --to alice@example.org >"$TMP/swaks.log" 2>&1
	check "swaks gets 250" grep -q "^<-  250 2.0.0 .* Message accepted" "$TMP/swaks.log"
else
	not_ok "swaks is installed (make deps)"
fi
if command -v smtp-source >/dev/null; then
	smtp-source -c -m 20 -s 5 -f you@example.net -t bob@example.org \
	    "127.0.0.1:$port" >"$TMP/smtp-source.log" 2>&1
	check "smtp-source sends 20 messages" [ $? -eq 0 ]
else
	not_ok "smtp-source is installed (make deps)"
fi

count() {
	ls "$1" 2>/dev/null | wc -l
}
i=0
while [ "$i" -lt 100 ] && { [ "$(count "$TMP/run/maildir/alice/new")" -lt 1 ] ||
    [ "$(count "$TMP/run/maildir/bob/new")" -lt 20 ]; }; do
	sleep 0.1
	i=$((i + 1))
done
check "swaks's message is in the maildir" [ "$(count "$TMP/run/maildir/alice/new")" -eq 1 ]
check "the example Lua filter stamped it" \
    grep -q "^X-Filtered-By: smtpfd stamp" "$TMP"/run/maildir/alice/new/*
check "smtp-source's 20 messages are in the maildir" \
    [ "$(count "$TMP/run/maildir/bob/new")" -eq 20 ]
swaks --server "127.0.0.1:$port" --from you@example.net \
    --to someone@elsewhere.example >"$TMP/relay.log" 2>&1
check "the example chain refuses relaying" \
    grep -q "^<\*\* 550 5.7.1 Relaying denied" "$TMP/relay.log"
check "the messages went through smtpfd" \
    [ "$(grep -c "smtp message downstream=\"250 " "$TMP/run/smtpfd.log")" -eq 21 ]
check "smtpfctl answers on make run's socket" \
    sh -c '"$1/smtpfctl" -s "$2/smtpfd.sock" show stats | grep -q "^messages.accepted=21$"' \
    sh "$BIN" "$TMP/run"

# Every process of the two daemons: their parents are the script's
# children, and theirs.
daemons=
for p in $(children_of "$runpid"); do
	case "$(ps -o args= -p "$p")" in
	"mtad: parent"|"smtpfd: parent")
		daemons="$daemons $p $(children_of "$p" | tr '\n' ' ')" ;;
	esac
done
started_pids="$started_pids $daemons"	# stopped by cleanup if need be
check "both daemons run, with their children" \
    [ "$(echo $daemons | wc -w)" -ge 6 ]
env kill -s INT -- "-$runpid"	# Ctrl-C: the whole process group
wait_status "$runpid"
left=
for p in $daemons; do
	is_running "$p" && left="$left $p"
done
check "Ctrl-C stops everything make run started" [ -z "$left" ]
check "the logs say both daemons stopped" \
    sh -c 'grep -q "mtad stopped" "$1/mtad.log" && grep -q "smtpfd stopped" "$1/smtpfd.log"' sh "$TMP/run"
done_testing
