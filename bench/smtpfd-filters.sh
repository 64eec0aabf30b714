#!/bin/sh
# bench/smtpfd-filters.sh: what a filter chain costs a message, and what
# the same exec filter costs OpenSMTPD.  A benchmark, not a test: it
# prints figures, it does not pass or fail.
#
#	bench/smtpfd-filters.sh [BUILDDIR]	(as root, after make programs
#						tests; make bench runs it)
#
# Load: Postfix's smtp-source sends 5 KB messages over 10 and 100 reused
# sessions (-d) to an smtpfd proxy listener (no-identity) in front of
# Postfix's smtp-sink, with these chains:
#	none	no chain: the proxy alone, the baseline
#	lua	bench/noop.lua: a hook on every phase, data-line returning
#		the line, on_commit (the filter holds the message and builds
#		the message object; the hook calls no method)
#	lua-stream  the same without on_commit (its lines stream through)
#	exec	filter_noop -d (tests/tools): an OpenSMTPD-protocol filter
#		registered for every phase and for data-line
#	exec-phases  filter_noop: every phase but data-line
#	chain3	a built-in rule (mail-from, never matches), lua, exec
# Then, in the same run, the same load to OpenSMTPD 6.8 (tests/lib/
# peers.sh: Debian's .deb, unpacked, in its own mount namespace),
# without a filter (no-filter), and with the same filter_noop as a
# proc-exec filter on its listener, without data-line (filter-phases)
# and with it (filter: -d).  OpenSMTPD writes every message into its
# queue the same with and without the filter (its deliveries are
# paused: smtpctl pause mda), so the difference is the filter's path.  Its
# listen backlog of 5 drops SYNs when 100 clients connect at once: the
# sessions are reused, so that costs a few seconds of retries at the
# start of the 100-session runs (their rate), not CPU per message.
#
# Figures per row: messages per second; latency, two ways: "txn ms" is
# the mean time of a transaction (MAIL to the reply to the final dot)
# by Little's law, sessions / rate, since every session sends its
# messages one after another; "dot p50/p99" are the times from the
# final dot to its reply seen by a probe, one more session sending a
# 5 KB message every 20 ms alongside the load; CPU milliseconds per
# message (user+system from /proc/PID/stat before and after) of all the
# server's processes, its filter's included, and of the filter's
# process alone; the CPU and the rate against the row's baseline
# (smtpfd: none; OpenSMTPD: without the filter).
#
# Each row is ROUNDS (BENCH_ROUNDS, 3) runs of MSGS (BENCH_MSGS, 4000)
# messages, the rows of one session count alternating, each run with a
# fresh server; the figures are the rounds' sums.
#
# Where the processes run: bench/cpus.sh (BENCH_PIN).  By default
# smtp-source, smtp-sink and the probe share the cores with the
# servers: compare rows of one run.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
for c in smtp-source smtp-sink python3; do
	command -v $c >/dev/null || { echo "bench: no $c: make deps first" >&2
	    exit 1; }
done
for f in "$build/bin/smtpfd" "$build/bin/smtpfctl" \
    "$build/tests/tools/filter_noop"; do
	[ -x "$f" ] || { echo "bench: no $f: make programs tests" >&2
	    exit 1; }
done
BIN=$build/bin TOOLS=$build/tests/tools
. "$top/tests/lib/common.sh"	# TMP, ensure_user, wait_gone, ...
. "$top/tests/lib/peers.sh"	# opensmtpd_start, opensmtpd_stop
. "$top/bench/cpus.sh"		# BENCH_PIN, tree, cpu, stop_pid, stop_tree
T=$TMP
FPORT=30537 SPORT=30538 OPORT=30539 OFPORT=30540
MSGS=${BENCH_MSGS:-4000}	# messages per run
SESSIONS=${BENCH_SESSIONS:-10 100}
CHAINS=${BENCH_CHAINS:-none lua lua-stream exec exec-phases chain3}
ROUNDS=${BENCH_ROUNDS:-3}	# runs of each row, alternating, summed
SIZE=5120
FILTER=$TOOLS/filter_noop
hz=$(getconf CLK_TCK)
trap 'stop_all; peers_stop_all; cleanup' EXIT
trap 'exit 1' HUP INT PIPE TERM

ensure_user _smtpfd
sink_pid='' smtpfd_pid='' probe_pid=''

# filter_cpu ROOT: the ticks of the filter_noop processes in the tree.
filter_cpu() {
	total=0
	for p in $(tree "$1"); do
		case $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) in
		*filter_noop*)
			t=$(awk '{ print $14 + $15 }' "/proc/$p/stat")
			total=$((total + ${t:-0})) ;;
		esac
	done
	echo "$total"
}

stop_all() {
	stop_pid "$probe_pid"
	probe_pid=
	stop_smtpfd
	stop_pid "$sink_pid"
	sink_pid=
}
start_sink() {
	peer_port_free "$SPORT" "$FPORT" "$OPORT" "$OFPORT" || {
		echo "bench: $PEER_ERROR" >&2
		exit 1
	}
	smtp-sink -u nobody -m 500 "127.0.0.1:$SPORT" 4096 \
	    >"$T/sink.log" 2>&1 &
	sink_pid=$!
	peer_wait_listen "$SPORT" "$sink_pid" 100
}
# start_smtpfd CHAIN: a fresh smtpfd whose proxy listener runs CHAIN.
start_smtpfd() {
	rm -rf "$T/empty"
	mkdir "$T/empty"
	case $1 in
	none)	use= ;;
	lua)	use='chain "lua"' ;;
	lua-stream) use='chain "lua-stream"' ;;
	exec)	use='chain "exec"' ;;
	exec-phases) use='chain "exec-phases"' ;;
	chain3)	use='chain "chain3"' ;;
	esac
	{
		cat <<CONF
user "_smtpfd"
chroot "$T/empty"
control socket "$T/smtpfd.sock"
hostname filter.example
CONF
		# Only the filters the chain uses (an exec filter's process
		# runs whether or not a chain holds it).
		case $1 in
		lua|chain3) echo "filter \"lua\" lua \"$T/noop.lua\"" ;;
		lua-stream) echo "filter \"lua-stream\" lua \"$T/noop-stream.lua\"" ;;
		esac
		case $1 in
		exec|chain3) echo "filter \"exec\" exec \"$FILTER -d\"" ;;
		exec-phases) echo "filter \"exec-phases\" exec \"$FILTER\"" ;;
		esac
		[ "$1" = chain3 ] && cat <<CONF
filter "rule" phase mail-from match mail-from regex "^spammer@" reject "550 5.7.1 no"
chain "chain3" { "rule", "lua", "exec" }
CONF
		echo "proxy on 127.0.0.1 port $FPORT $use forward to smtp://127.0.0.1:$SPORT no-identity"
	} >"$T/smtpfd.conf"
	on_server_cpu "$BIN/smtpfd" -d -f "$T/smtpfd.conf" \
	    >"$T/smtpfd.log" 2>&1 &
	smtpfd_pid=$!
	wait_log "$T/smtpfd.log" "smtpfd ready" 100 || {
		echo "bench: smtpfd did not start:" >&2
		cat "$T/smtpfd.log" >&2
		exit 1
	}
	# The exec filter registers at once; give it the time to.
	case $1 in exec*|chain3) sleep 0.5 ;; esac
	return 0
}
stop_smtpfd() {
	stop_tree "$smtpfd_pid"
	smtpfd_pid=
}
accepted() {
	"$BIN/smtpfctl" -s "$T/smtpfd.sock" show stats 2>/dev/null |
	    awk -F= '$1 == "messages.accepted" { print $2 }'
}
# start_opensmtpd VARIANT: a fresh OpenSMTPD, deliveries paused; with
# VARIANT filter (filter_noop -d) or filter-phases (filter_noop: every
# phase, no data-line) a second listener (OFPORT) runs the filter.
start_opensmtpd() {
	odir=$T/opensmtpd.$1
	rm -rf "$odir"
	case $1 in
	filter)		fcmd="$FILTER -d" ;;
	filter-phases)	fcmd=$FILTER ;;
	*)		fcmd= ;;
	esac
	if [ -n "$fcmd" ]; then
		set -- "smtp limit max-mails 1000000" \
		    "filter \"noop\" proc-exec \"$fcmd\"" \
		    "listen on 127.0.0.1 port $OFPORT filter \"noop\" hostname opensmtpd.$PEER_DOMAIN"
	else
		set -- "smtp limit max-mails 1000000"
	fi
	server_shell
	opensmtpd_start "$odir" "$OPORT" "$@" || {
		load_shell
		echo "bench: OpenSMTPD: ${PEER_SKIP:-$PEER_ERROR}" >&2
		return 1
	}
	load_shell
	opid=$(cat "$odir/smtpd.pid")
	[ $# -eq 1 ] || peer_wait_listen "$OFPORT" "$opid" 100
	# smtpctl wants the opensmtpq group (dpkg -x drops its setgid bit).
	nsenter -m -t "$opid" setpriv --regid opensmtpq --clear-groups \
	    "$odir/tree/usr/sbin/smtpctl" pause mda \
	    >"$odir/pause.out" 2>&1 ||
	    echo "  (smtpctl pause mda: $(cat "$odir/pause.out"))" >&2
	sleep 0.5
}

# The probe: one session, a 5 KB message every 20 ms until STOP exists;
# prints "count p50-ms p99-ms" of the final dot's reply time.
start_probe() {
	rm -f "$T/probe.stop" "$T/probe.out"
	python3 - "$1" "$2" "$T/probe.stop" >"$T/probe.out" 2>"$T/probe.err" <<'PY' &
import os, socket, sys, time
port, rcpt, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), 30)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("probe: connection closed")
        if line[3:4] != b"-":
            return line[:3]
line = b"La la la la la la la la la la la la la la la la la la la la la la la la la la\r\n"
body = (b"From: probe@example.net\r\nTo: " + rcpt.encode() +
        b"\r\nSubject: probe\r\n\r\n" + line * (5120 // len(line)) + b".\r\n")
head, dot = body[:-3], body[-3:]
reply()
s.sendall(b"EHLO probe.example\r\n"); reply()
lat = []
while not os.path.exists(stop):
    t0 = time.monotonic()
    s.sendall(b"MAIL FROM:<probe@example.net>\r\n")
    if reply() != b"250": raise SystemExit("probe: MAIL")
    s.sendall(b"RCPT TO:<" + rcpt.encode() + b">\r\n")
    if reply() != b"250": raise SystemExit("probe: RCPT")
    s.sendall(b"DATA\r\n")
    if reply() != b"354": raise SystemExit("probe: DATA")
    s.sendall(head)
    t1 = time.monotonic()
    s.sendall(dot)
    if reply() != b"250": raise SystemExit("probe: dot")
    lat.append(time.monotonic() - t1)
    time.sleep(max(0, 0.02 - (time.monotonic() - t0)))
s.sendall(b"QUIT\r\n")
lat.sort()
n = len(lat)
q = lambda p: lat[min(n - 1, int(p * n))] * 1000 if n else 0
print("%d %.2f %.2f" % (n, q(0.5), q(0.99)))
PY
	probe_pid=$!
	sleep 0.3
}
stop_probe() {
	: >"$T/probe.stop"
	wait_gone "$probe_pid" 50 || kill -9 "$probe_pid" 2>/dev/null
	wait "$probe_pid" 2>/dev/null
	probe_pid=
	if [ -s "$T/probe.out" ]; then
		cat "$T/probe.out"
	else
		echo "  (probe: $(head -c 200 "$T/probe.err"))" >&2
		echo "0 0 0"
	fi
}

# run PORT SESSIONS RCPT ROOTPID: one run of $MSGS messages; prints
# "seconds ticks filter-ticks probe-count probe-p50 probe-p99" (ticks
# of ROOTPID's tree and of its filter_noop processes).
run() {
	b=$(cpu "$4") fb=$(filter_cpu "$4")
	start_probe "$1" "$3"
	start=$(date +%s.%N)
	timeout 600 smtp-source -d -s "$2" -l "$SIZE" -m "$MSGS" \
	    -f bench@example.net -t "$3" "127.0.0.1:$1" >"$T/source.log" 2>&1
	rc=$?
	end=$(date +%s.%N)
	probe=$(stop_probe)
	a=$(cpu "$4") fa=$(filter_cpu "$4")
	[ $rc -eq 0 ] || echo "  (smtp-source exited $rc:" \
	    "$(head -c 200 "$T/source.log"))" >&2
	echo "$start $end $b $a $fb $fa $probe" |
	    awk '{ printf "%.4f %d %d %d %s %s\n", $2 - $1, $4 - $3, $6 - $5,
		$7, $8, $9 }'
}

# figures FILE SESSIONS: the rounds of FILE (lines of run) summed:
# "msgs/s txn-ms dot-p50 dot-p99 cpu-ms filter-ms", CPU divided by the
# messages, the probe's included; the dot latencies are the median of
# the rounds' (the middle one, or the upper of the two middle ones).
figures() {
	sort -n -k5 "$1" | awk '{ print $5 }' >"$1.p50"
	sort -n -k6 "$1" | awk '{ print $6 }' >"$1.p99"
	awk -v n="$MSGS" -v s="$2" -v hz="$hz" \
	    -v p50="$(awk '{ v[NR] = $1 } END { print v[int(NR / 2) + 1] }' "$1.p50")" \
	    -v p99="$(awk '{ v[NR] = $1 } END { print v[int(NR / 2) + 1] }' "$1.p99")" '
	{ t += $1; c += $2; f += $3; m += n + $4; k += n }
	END {
		printf "%8.0f %7.2f %6.2f %6.2f %7.3f %7.3f\n", k / t,
		    s * t * 1000 / k, p50, p99, c * 1000 / hz / m,
		    f * 1000 / hz / m
	}' "$1"
}

# row NAME SESSIONS FIGURES BASE: the row, with cpu and rate against BASE.
row() {
	echo "$3 $4" | awk -v name="$1" -v s="$2" '{
		printf "%-13s %4d | %8d %7.2f %6.2f %6.2f | %7.3f %7.3f | %+7.3f %5.2f\n",
		    name, s, $1, $2, $3, $4, $5, $6, $5 - $11, $1 / $7
	}'
}
header() {
	printf "%-13s %4s | %8s %7s %6s %6s | %7s %7s | %7s %5s\n" "$1" \
	    sess "msgs/s" "txn ms" "dot50" "dot99" "cpu ms" "filt ms" \
	    "+cpu ms" "rate"
}

echo "smtpfd-filters: $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPUS cores," \
    "$(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)," \
    "build of $(git -C "$top" rev-parse --short HEAD 2>/dev/null)"
echo "$(pin_note)"
echo "$MSGS messages of $SIZE bytes per run over reused sessions (and the" \
    "probe's), $ROUNDS rounds summed; cpu: all the server's processes, its" \
    "filter's included"
cp "$top/bench/noop.lua" "$T/noop.lua"
{ echo "BENCH_NO_COMMIT = true"; cat "$top/bench/noop.lua"; } \
    >"$T/noop-stream.lua"
start_sink || { echo "bench: smtp-sink did not start" >&2; exit 1; }

echo
header "smtpfd"
for s in $SESSIONS; do
	for c in $CHAINS; do
		: >"$T/raw.$s.$c"
	done
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		for c in $CHAINS; do
			start_smtpfd "$c"
			a0=$(accepted)
			run "$FPORT" "$s" u@example.org "$smtpfd_pid" \
			    >>"$T/raw.$s.$c"
			a1=$(accepted)
			n=$(( ${a1:-0} - ${a0:-0} ))
			[ "$n" -ge "$MSGS" ] || echo "  ($c: smtpfd relayed" \
			    "$n of $MSGS and the probe's)" >&2
			stop_smtpfd
		done
		r=$((r + 1))
	done
	base=
	for c in $CHAINS; do
		fig=$(figures "$T/raw.$s.$c" "$s")
		[ -n "$base" ] || base=$fig
		row "$c" "$s" "$fig" "$base"
	done
done

echo
header "opensmtpd"
OVARIANTS=${BENCH_OPENSMTPD:-no-filter filter-phases filter}
for s in $SESSIONS; do
	for v in $OVARIANTS; do
		: >"$T/oraw.$s.$v"
	done
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		for v in $OVARIANTS; do
			start_opensmtpd "$v" || break 3
			port=$OFPORT
			[ "$v" = no-filter ] && port=$OPORT
			run "$port" "$s" "u@$PEER_DOMAIN" "$opid" \
			    >>"$T/oraw.$s.$v"
			opensmtpd_stop "$odir"
		done
		r=$((r + 1))
	done
	base=
	for v in $OVARIANTS; do
		fig=$(figures "$T/oraw.$s.$v" "$s")
		[ -n "$base" ] || base=$fig
		row "$v" "$s" "$fig" "$base"
	done
done
