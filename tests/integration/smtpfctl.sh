#!/bin/sh
# smtpfctl against a running smtpfd: every command, and clear errors.
. "$(dirname "$0")/../lib/common.sh"

user=nobody
if is_root; then
	user=_smtpfd
	ensure_user "$user"
fi
set -- $(free_ports 2)
PORT=$1 DPORT=$2
SOCK="$TMP/smtpfd.sock"
ctl() {
	"$BIN/smtpfctl" -s "$SOCK" "$@"
}
# ctl_says REGEX ARGS...: the command succeeds and prints REGEX.
ctl_says() {
	re=$1
	shift
	out=$(ctl "$@" 2>&1) && echo "$out" | grep -q -- "$re"
}
# ctl_fails REGEX ARGS...: the command fails with status 1 and says REGEX.
ctl_fails() {
	re=$1
	shift
	out=$(ctl "$@" 2>&1)
	[ $? -eq 1 ] && echo "$out" | grep -q -- "$re"
}

check "without smtpfd: a clear error" \
    ctl_fails "cannot connect to .*(is smtpfd running?)" show stats
check "an unknown command prints usage" ctl_fails "^usage: smtpfctl" frobnicate
check "a command with an extra word prints usage" \
    ctl_fails "^usage: smtpfctl" show stats now

cat >"$TMP/smtpfd.conf" <<CONF
user "$user"
chroot "$TMP/empty"
control socket "$SOCK"
proxy on 127.0.0.1 port $PORT forward to smtp://127.0.0.1:$DPORT no-identity
CONF
start_daemon smtpfd -f "$TMP/smtpfd.conf"
pid=$DAEMON_PID
if ! wait_log "$TMP/smtpfd.log" "smtpfd ready"; then
	not_ok "smtpfd starts" "$(cat "$TMP/smtpfd.log")"
	done_testing
	exit 1
fi
check "the control socket is private" [ "$(stat -c %a "$SOCK")" = 600 ]

check "show stats: no session yet" ctl_says "^sessions=0$" show stats
out=$(ctl show sessions 2>&1)
st=$?
check "show sessions: none" \
    sh -c '[ "$1" -eq 0 ] && [ -z "$2" ]' sh "$st" "$out"

# A downstream that greets and says yes, and a client that stays.
cat >"$TMP/down.py" <<'PY'
import socket, sys, threading
def serve(c):
    f = c.makefile("rb")
    c.sendall(b"220 down.example ESMTP\r\n")
    for line in f:
        if line.upper().startswith(b"QUIT"):
            c.sendall(b"221 bye\r\n")
            break
        c.sendall(b"250 down.example\r\n")
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
print("listening", flush=True)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],),
        daemon=True).start()
PY
cat >"$TMP/client.py" <<'PY'
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = c.makefile("rb")
if not f.readline().startswith(b"220 "):
    sys.exit(1)
c.sendall(b"EHLO client.example\r\n")
line = f.readline()
while line[:4] == b"250-":
    line = f.readline()
if line[:4] != b"250 ":
    sys.exit(1)
print("in session", flush=True)
c.recv(1)	# until smtpfd or the test ends it
PY
python3 "$TMP/down.py" "$DPORT" >"$TMP/down.log" 2>&1 &
started_pids="$started_pids $!"
wait_log "$TMP/down.log" "listening"
python3 "$TMP/client.py" "$PORT" >"$TMP/client.log" 2>&1 &
client=$!
started_pids="$started_pids $client"
check "a client in session through smtpfd" \
    wait_log "$TMP/client.log" "in session"
check "show sessions lists it" ctl_says \
    "^[0-9a-f]\{16\} 127.0.0.1:[0-9]* helo=client.example tls=no " \
    show sessions
check "show stats counts it" ctl_says "^sessions=1$" show stats
kill "$client"
wait_status "$client"

check "log verbose" ctl_says "^log verbose$" log verbose
check "the parent logs it" \
    wait_log "$TMP/smtpfd.log" "smtpfd: parent: log verbose"
ctl show stats >/dev/null 2>&1
check "the other processes log debug lines" \
    wait_log "$TMP/smtpfd.log" "smtpfd: control: control request"
check "log brief" ctl_says "^log brief$" log brief
check "reload (tests/integration/smtpfd_reload.sh has the details)" \
    ctl_says "^configuration reloaded$" reload

# other_ctl ARGS...: smtpfctl as a user who is neither root nor smtpfd's.
other_ctl() {
	runuser -u _smtpfctltest -- "$BIN/smtpfctl" -s "$SOCK" "$@"
}
if is_root; then
	ensure_user _smtpfctltest
	out=$(other_ctl show stats 2>&1)
	st=$?
	check "another user cannot connect" sh -c '[ "$1" -eq 1 ] &&
	    echo "$2" | grep -q "cannot connect to .*Permission denied"' \
	    sh "$st" "$out"
	# Past the file mode, the control process checks the peer's uid.
	chmod 666 "$SOCK"
	out=$(other_ctl show stats 2>&1)
	st=$?
	chmod 600 "$SOCK"
	check "nor through a world-writable socket" sh -c '[ "$1" -eq 1 ] &&
	    echo "$2" | grep -q "smtpfd closed the connection"' \
	    sh "$st" "$out"
else
	ok "another user cannot connect # SKIP not root"
	ok "nor through a world-writable socket # SKIP not root"
fi

check "smtpfd still answers" ctl_says "^sessions.total=1$" show stats
kill -TERM "$pid"
wait_status "$pid"
check "smtpfd exits 0 after SIGTERM" [ "$STATUS" -eq 0 ]
check "and removes its control socket" [ ! -e "$SOCK" ]
out=$(ctl show stats 2>&1)
check "smtpfctl then says smtpfd is not running" sh -c 'echo "$1" |
    grep -q "(is smtpfd running?)"' sh "$out"
check "no sanitizer report" no_sanitizer_report "$TMP/smtpfd.log"
done_testing
