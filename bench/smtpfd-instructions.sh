#!/bin/sh
# bench/smtpfd-instructions.sh: the instructions smtpfd's processes
# execute per message, counted by valgrind (callgrind): the same figure
# from one run to the next, where the timed benchmarks move by 5 to 10
# per cent with the machine's state.  A benchmark, not a test.
#
#	bench/smtpfd-instructions.sh [BUILDDIR]	(as root, after make
#						programs tests; not in make
#						bench: it needs valgrind)
#
# Load: smtp-source sends 5 KB messages over 10 reused sessions to an
# smtpfd proxy listener in front of smtp-sink, with the chains of
# smtpfd-filters.sh (BENCH_CHAINS; default none, lua, lua-stream; not
# exec: valgrind 3.19 lacks pidfd_open(2), with which the parent starts
# filter processes).
# smtpfd runs under callgrind twice per chain, with LOW and HIGH
# messages (BENCH_LOW 500, BENCH_HIGH 2000): the difference divided by
# HIGH - LOW is what a message costs, start-up and shutdown left out.
# Counted: user-space instructions of the frontend and of the engine;
# not the kernel's work, nor the time spent waiting.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
for c in smtp-source smtp-sink valgrind callgrind_annotate; do
	command -v $c >/dev/null || { echo "bench: no $c" >&2; exit 1; }
done
[ -x "$build/bin/smtpfd" ] || { echo "bench: no $build/bin/smtpfd" >&2
    exit 1; }
BIN=$build/bin TOOLS=$build/tests/tools
. "$top/tests/lib/common.sh"	# TMP, ensure_user, wait_gone, wait_log
. "$top/tests/lib/peers.sh"	# peer_port_free, peer_wait_listen
T=$TMP
FPORT=30547 SPORT=30548
CHAINS=${BENCH_CHAINS:-none lua lua-stream}
LOW=${BENCH_LOW:-500} HIGH=${BENCH_HIGH:-2000}
ensure_user _smtpfd
sink_pid=''
trap '[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null; cleanup' EXIT
trap 'exit 1' HUP INT PIPE TERM

peer_port_free "$SPORT" "$FPORT" || { echo "bench: $PEER_ERROR" >&2; exit 1; }
smtp-sink -u nobody -m 500 "127.0.0.1:$SPORT" 4096 >"$T/sink.log" 2>&1 &
sink_pid=$!
peer_wait_listen "$SPORT" "$sink_pid" 100 || exit 1
cp "$top/bench/noop.lua" "$T/noop.lua"
{ echo "BENCH_NO_COMMIT = true"; cat "$top/bench/noop.lua"; } \
    >"$T/noop-stream.lua"

# conf CHAIN DIR: smtpfd.conf for CHAIN, chrooted in DIR/empty.
conf() {
	cat <<CONF
user "_smtpfd"
chroot "$2/empty"
control socket "$2/smtpfd.sock"
hostname filter.example
filter "lua" lua "$T/noop.lua"
filter "lua-stream" lua "$T/noop-stream.lua"
CONF
	case $1 in
	none)	echo "proxy on 127.0.0.1 port $FPORT forward to" \
		    "smtp://127.0.0.1:$SPORT no-identity" ;;
	*)	echo "chain \"c-$1\" { \"$1\" }"
		echo "proxy on 127.0.0.1 port $FPORT chain \"c-$1\" forward" \
		    "to smtp://127.0.0.1:$SPORT no-identity" ;;
	esac
}

# count CHAIN N: prints "FRONTEND ENGINE", instructions in all.
count() {
	d=$T/$1.$2
	# The children write their counts after chroot: the same path
	# under the chroot, theirs to write.
	mkdir -p "$d/empty$d"
	chown _smtpfd "$d/empty$d"
	conf "$1" "$d" >"$d/smtpfd.conf"
	valgrind --tool=callgrind --trace-children=yes \
	    --callgrind-out-file="$d/cg.%p" "$BIN/smtpfd" -d \
	    -f "$d/smtpfd.conf" >"$d/smtpfd.log" 2>&1 &
	pid=$!
	wait_log "$d/smtpfd.log" "smtpfd ready" 600 || {
		echo "bench: smtpfd did not start" >&2
		cat "$d/smtpfd.log" >&2
		exit 1
	}
	timeout 600 smtp-source -d -s 10 -l 5120 -m "$2" \
	    -f bench@example.net -t sink@example.org \
	    "127.0.0.1:$FPORT" >/dev/null 2>&1
	kill "$pid"
	wait_gone "$pid" 600
	fe=0 en=0
	for f in "$d"/empty"$d"/cg.*; do
		[ -s "$f" ] || continue
		n=$(awk '/^summary:/ { print $2 }' "$f")
		case $(grep -a -m1 '^cmd:' "$f") in
		*"-R frontend"*) fe=$n ;;
		*"-R engine"*) en=$n ;;
		esac
	done
	echo "$fe $en"
}

echo "smtpfd-instructions: $(date -u '+%Y-%m-%d %H:%M UTC'), build of" \
    "$(git -C "$top" rev-parse --short HEAD 2>/dev/null);" \
    "instructions per message, ($HIGH - $LOW messages)"
printf "%-12s | %10s %10s %10s\n" chain frontend engine total
for c in $CHAINS; do
	lo=$(count "$c" "$LOW")
	hi=$(count "$c" "$HIGH")
	echo "$lo $hi" | awk -v c="$c" -v n=$((HIGH - LOW)) '{
		f = ($3 - $1) / n; e = ($4 - $2) / n
		printf "%-12s | %10.0f %10.0f %10.0f\n", c, f, e, f + e
	}'
done
