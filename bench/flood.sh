#!/bin/sh
# bench/flood.sh: many concurrent sessions, with the project's own load
# generator (tests/flood/, the one make check's flood and monkey use),
# straight into mtad and, in the same run, through mtad -> smtpfd -> mtad
# (the front listener hands its sessions to smtpfd over smtpf, smtpfd
# replays them to mtad's back listener with XCLIENT).  A benchmark, not
# a test: it prints figures, it does not pass or fail.
#
#	bench/flood.sh [BUILDDIR]	(as root; make bench runs it)
#
# Two mixes of sessions, each with BENCH_FLOOD_SESSIONS sessions (2000),
# BENCH_FLOOD_CONCURRENCY at once (500), 2 messages each:
#	fast	plain sessions, one command per write, 5 KB messages
#	mixed	30% STARTTLS, 40% pipelining, 10% laggy (a byte at a time
#		after a pause), 5% vanishing mid-content, 5% of 200 KB
#		messages among 2 KB ones
# mtad fsyncs every message into its queue; deliveries are held (an
# "exit 75" action and mtactl pause mda), so the queue holds what was
# accepted.  Each run starts fresh daemons with an empty queue.
#
# Figures per row: the flood's own lines (messages/s accepted, latency
# of the final dot's reply and of whole sessions, p50/p90/p99/max), CPU
# milliseconds per accepted message of all mtad's and all smtpfd's
# processes, their peak resident sizes (the sum of VmHWM over each
# daemon's processes), and the books: what got 250 against what the
# queue holds.  Where the processes run: bench/cpus.sh (BENCH_PIN).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (mtad, smtpfd)" >&2
    exit 1; }
for f in bin/mtad bin/mtactl bin/smtpfd tests/tools/flood; do
	[ -x "$build/$f" ] || { echo "bench: no $build/$f" >&2; exit 1; }
done
command -v openssl >/dev/null || { echo "bench: no openssl" >&2; exit 1; }
BIN=$build/bin TOOLS=$build/tests/tools
. "$top/tests/lib/common.sh"	# TMP, ensure_user, make_cert, wait_log
. "$top/bench/cpus.sh"		# BENCH_PIN, tree_sum, cpu, stop_tree
SESSIONS=${BENCH_FLOOD_SESSIONS:-2000}
CONC=${BENCH_FLOOD_CONCURRENCY:-500}
T=$TMP
MPORT=30537 NPORT=30538 DPORT=30539
hz=$(getconf CLK_TCK)
mtad_pid='' smtpfd_pid=''
trap 'stop_all; cleanup' EXIT
trap 'exit 1' HUP INT PIPE TERM

ensure_user _smtpfd
ensure_user _mtad

# Each session holds a descriptor in the flood, one or two in mtad and
# two in smtpfd; the daemons inherit this limit.
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# A CA and a certificate for localhost, for the STARTTLS sessions.
make_cert "$T" || { echo "bench: openssl failed" >&2; exit 1; }
chmod 644 "$T/key.pem"

# started LOG REGEX: the daemon said REGEX, or the bench stops.
started() {
	wait_log "$1" "$2" || { echo "bench: no \"$2\" in $1:" >&2
		cat "$1" >&2; exit 1; }
}
stop_all() {
	stop_tree "$smtpfd_pid"
	stop_tree "$mtad_pid"
	smtpfd_pid='' mtad_pid=''
}

start_daemons() {
	rm -rf "$T/queue" "$T/empty"
	mkdir "$T/empty"
	cat >"$T/mtad.conf" <<CONF
user "_mtad"
chroot "$T/empty"
queue path "$T/queue"
control socket "$T/mtad.sock"
smtp max-message-size 2M
smtp limit max-mails 1000000
smtp limit max-sessions $((CONC * 2 + 100))
pki bench cert "$T/cert.pem"
pki bench key "$T/key.pem"
table domains { example.org }
table trusted { 127.0.0.1 }
listen on 127.0.0.1 port $MPORT tls pki bench
listen on 127.0.0.1 port $NPORT tls pki bench filter smtpf "unix:$T/smtpf.sock"
listen on 127.0.0.1 port $DPORT xclient from <trusted>
action "hold" mda "exit 75" user nobody
match from any for domain <domains> action "hold"
CONF
	cat >"$T/smtpfd.conf" <<CONF
user "_smtpfd"
chroot "$T/empty"
control socket "$T/smtpfd.sock"
hostname filter.example
limit sessions $((CONC * 2 + 100))
smtpf on socket "$T/smtpf.sock" forward to smtp://127.0.0.1:$DPORT xclient
CONF
	on_server_cpu "$build/bin/smtpfd" -d -f "$T/smtpfd.conf" \
	    >"$T/smtpfd.log" 2>&1 &
	smtpfd_pid=$!
	started "$T/smtpfd.log" "smtpfd ready"
	on_server_cpu "$build/bin/mtad" -d -f "$T/mtad.conf" \
	    >"$T/mtad.log" 2>&1 &
	mtad_pid=$!
	started "$T/mtad.log" "mtad ready"
	started "$T/smtpfd.log" "speaks smtpf"
	"$build/bin/mtactl" -s "$T/mtad.sock" pause mda >/dev/null
}

# peak PID: the sum of VmHWM (KB) over PID's processes.
peak() {
	tree_sum "$1" status '$1 == "VmHWM:" { print $2 }'
}
# per_msg TICKS N: milliseconds of CPU per message.
per_msg() {
	awk -v t="$1" -v n="$2" -v hz="$hz" \
	    'BEGIN { printf "%.3f", n ? t * 1000 / hz / n : 0 }'
}

# row PATH MIX: one flood, fresh daemons; prints the figures.
row() {
	case $1 in
	direct)	port=$MPORT ;;
	smtpf)	port=$NPORT ;;
	esac
	case $2 in
	fast)	opts="-z 5K,5K -l 0" ;;
	mixed)	opts="-s 0.3 -p 0.4 -g 0.1 -P 200 -b 2 -V 0.05 -l 0.05 \
		    -z 2K,200K" ;;
	esac
	start_daemons
	m0=$(cpu "$mtad_pid") f0=$(cpu "$smtpfd_pid")
	# shellcheck disable=SC2086
	"$build/tests/tools/flood" -n "$SESSIONS" -c "$CONC" -m 2 \
	    -a "$T/ca.pem" -d example.org -o "$T/accepted" -T 60 -W 600 \
	    $opts 127.0.0.1 "$port" >"$T/flood.out" 2>"$T/flood.err"
	rc=$?
	m1=$(cpu "$mtad_pid") f1=$(cpu "$smtpfd_pid")
	n=$(grep -c . "$T/accepted")
	queued=$(find "$T/queue/queue" -name message 2>/dev/null | wc -l)
	echo "$1 / $2: $SESSIONS sessions, $CONC at once" \
	    "(flood exit $rc)"
	grep -E '^(sessions|messages|rate|latency|errors)' "$T/flood.out" |
	    sed 's/^/    /'
	head -n 5 "$T/flood.err" | sed 's/^/    stderr: /'
	printf '    cpu ms/msg: mtad %s' "$(per_msg $((m1 - m0)) "$n")"
	[ "$1" = smtpf ] &&
	    printf ', smtpfd %s' "$(per_msg $((f1 - f0)) "$n")"
	printf '; peak KB: mtad %s' "$(peak "$mtad_pid")"
	[ "$1" = smtpf ] && printf ', smtpfd %s' "$(peak "$smtpfd_pid")"
	printf '\n    books: %s got 250, %s in the queue\n' "$n" "$queued"
	stop_all
}
echo "flood: $(pin_note)"
for mix in fast mixed; do
	for path in direct smtpf; do
		row "$path" "$mix"
	done
done
