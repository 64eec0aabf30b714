#!/bin/sh
# Where smtpfd's engine runs (smtpfd/placement.c, SPEC 1.1): with
# traffic through a Lua chain it keeps to the frontend's CPU, and
# follows the frontend when it moves; an engine busy more than half of
# the time runs on any CPU again, and comes back once the load is gone;
# a CPU the engine was not started with is never used (taskset(1)).
# Needs two CPUs and Postfix's smtp-source (make deps).
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/peers.sh"

if [ "$(nproc)" -lt 2 ] || ! command -v smtp-source >/dev/null ||
    ! is_root; then
	echo "1..0 # SKIP needs 2 CPUs, smtp-source and root"
	exit 0
fi
ensure_user _smtpfd
set -- $(free_ports 2)
P=$1 S=$2
all=$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status)
# Two CPUs this script may use (a runner's cpuset need not hold 0 and 1).
set -- $(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0))[:2])')
A=$1 B=$2
load_pid=

smtp_sink_start "$TMP/sink" "$S" || {
	not_ok "smtp-sink starts" "${PEER_SKIP:-$PEER_ERROR}"
	done_testing
	exit 1
}
trap '[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
    peers_stop_all; cleanup' EXIT

cat >"$TMP/light.lua" <<'LUA'
function on_mail_from(session, address) end
function on_data_line(session, line) return line end
LUA
# About a millisecond of work a line: the engine busy all the time.
cat >"$TMP/heavy.lua" <<'LUA'
function on_data_line(session, line)
	local x = 0
	for i = 1, 100000 do x = x + i end
	return line
end
LUA

# start SCRIPT [TASKSET-CPUS]: smtpfd with SCRIPT on its chain; ENGINE
# is the engine's PID.
start() {
	rm -rf "$TMP/empty"
	mkdir "$TMP/empty"
	cat >"$TMP/smtpfd.conf" <<CONF
user "_smtpfd"
chroot "$TMP/empty"
control socket "$TMP/smtpfd.sock"
filter "f" lua "$TMP/$1"
chain "c" { "f" }
proxy on 127.0.0.1 port $P chain "c" forward to smtp://127.0.0.1:$S no-identity
CONF
	if [ -n "${2:-}" ]; then
		taskset -c "$2" "$BIN/smtpfd" -d -v -f "$TMP/smtpfd.conf" \
		    >"$TMP/smtpfd.log" 2>&1 &
		DAEMON_PID=$!
		started_pids="$started_pids $DAEMON_PID"
	else
		start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
	fi
	SMTPFD=$DAEMON_PID
	wait_log "$TMP/smtpfd.log" "smtpfd ready" || return 1
	ENGINE=$(ps -o pid=,args= --ppid "$SMTPFD" |
	    awk '/engine/ { print $1 }')
	FRONTEND=$(ps -o pid=,args= --ppid "$SMTPFD" |
	    awk '/frontend/ { print $1 }')
	[ -n "$ENGINE" ] && [ -n "$FRONTEND" ]
}
stop() {	# NAME: the log kept as smtpfd-NAME.log
	kill "$SMTPFD"
	wait_gone "$SMTPFD" 100
	mv "$TMP/smtpfd.log" "$TMP/smtpfd-$1.log"
}
allowed() {
	awk '/^Cpus_allowed_list/ { print $2 }' "/proc/$ENGINE/status"
}
# send N [SESSIONS]: N 5 KB messages through the proxy.
send() {
	timeout 120 smtp-source -d -s "${2:-4}" -l 5120 -m "$1" \
	    -f a@example.net -t b@example.org "127.0.0.1:$P" \
	    >"$TMP/source.log" 2>&1
}
# wait_allowed WHAT TENTHS: until the engine's CPUs are WHAT ("one": a
# single CPU; else the list itself).
wait_allowed() {
	i=0
	while [ "$i" -lt "$2" ]; do
		a=$(allowed)
		case $1 in
		one)	case $a in *[,-]*) ;; ?*) return 0 ;; esac ;;
		*)	[ "$a" = "$1" ] && return 0 ;;
		esac
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# A light filter: the engine keeps to the frontend's CPU.  The frontend
# is held on one CPU, then on another (as the kernel may move it).
if start light.lua; then
	check "at start, before any traffic, the engine may run on any CPU" \
	    [ "$(allowed)" = "$all" ]
	send 200
	if wait_allowed one 20; then
		ok "after traffic the engine keeps to one CPU ($(allowed))"
	else
		not_ok "after traffic the engine keeps to one CPU" \
		    "allowed: $(allowed)"
	fi
	check "the log says so" grep -q "keeps to the frontend's CPU" \
	    "$TMP/smtpfd.log"
	for cpu in "$A" "$B"; do
		taskset -pc "$cpu" "$FRONTEND" >/dev/null
		send 50
		if wait_allowed "$cpu" 20; then
			ok "the frontend on CPU $cpu: the engine there too"
		else
			not_ok "the frontend on CPU $cpu: the engine there too" \
			    "allowed: $(allowed)"
		fi
	done
	stop light
else
	not_ok "smtpfd starts with a light Lua filter"
fi

# A heavy one: busy, the engine runs on any CPU; idle, it comes back.
if start heavy.lua; then
	send 5 1
	# (timeout passes the kill below on to smtp-source)
	timeout 120 smtp-source -d -s 4 -l 5120 -m 300 -f a@example.net \
	    -t b@example.org "127.0.0.1:$P" >"$TMP/load.log" 2>&1 &
	load_pid=$!
	if wait_allowed "$all" 60; then
		ok "a busy engine runs on any CPU ($(allowed))"
	else
		not_ok "a busy engine runs on any CPU" "allowed: $(allowed)"
	fi
	check "the log says it is busy" grep -q "busy: on any CPU" \
	    "$TMP/smtpfd.log"
	kill "$load_pid" 2>/dev/null
	wait "$load_pid" 2>/dev/null
	load_pid=
	# The engine looks at its load when the frontend writes to it, at
	# most once a second: a message now and then after the load.
	i=0
	while [ "$i" -lt 8 ] && ! wait_allowed one 12; do
		send 1 1
		i=$((i + 1))
	done
	if wait_allowed one 1; then
		ok "the load gone, the engine keeps to one CPU again"
	else
		not_ok "the load gone, the engine keeps to one CPU again" \
		    "allowed: $(allowed)"
	fi
	stop heavy
else
	not_ok "smtpfd starts with a heavy Lua filter"
fi

# The operator's choice stands: started on CPU B only, the engine stays
# there when the frontend is moved to A (a CPU it was not started with).
if start light.lua "$B"; then
	taskset -pc "$A" "$FRONTEND" >/dev/null
	send 100
	sleep 0.5
	check "started under taskset -c $B, the engine stays on CPU $B" \
	    [ "$(allowed)" = "$B" ]
	check "  while the frontend runs on CPU $A" sh -c \
	    '[ "$(awk "/^Cpus_allowed_list/ { print \$2 }" /proc/$1/status)" = "$2" ]' \
	    sh "$FRONTEND" "$A"
	stop taskset
else
	not_ok "smtpfd starts under taskset"
fi

check "smtpfd logged no error" sh -c \
    '[ $# -eq 3 ] && ! cat "$@" |
    grep -Eq "sched_setaffinity|sched_getaffinity|fatal"' sh \
    "$TMP"/smtpfd-*.log
done_testing
