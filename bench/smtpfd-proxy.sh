#!/bin/sh
# bench/smtpfd-proxy.sh: what smtpfd's proxy mode costs a message on its
# way through.  Postfix's smtp-source sends to Postfix's smtp-sink
# directly, and in the same run through an smtpfd proxy listener in front
# of the same smtp-sink.  A benchmark, not a test: it prints figures and
# the proxied/direct ratio, it does not pass or fail.
#
#	bench/smtpfd-proxy.sh [BUILDDIR]	(as root; make bench runs it)
#
# Load: 5 KB messages over 10 and 100 parallel sessions, either reused
# (smtp-source -d: one message after another on each session, the relay
# cost alone) or one message per session (the session set-up too: smtpfd
# connects to smtp-sink and greets the client for every message).
#
# Identity: smtp-sink offers "XCLIENT NAME HELO" but answers XCLIENT with
# 250 where Postfix's smtpd answers 220, and smtpfd's xclient mode wants
# the 220 (its clients get 421 here), so the xclient mode cannot be
# measured against smtp-sink.  It is measured with no-identity and with
# xforward (smtp-sink offers XFORWARD): XFORWARD goes downstream before
# every MAIL, the dearer of the two identity methods that work per
# message; XCLIENT costs one round trip at session start only.
#
# Figures: messages per second; CPU milliseconds per message of all
# smtpfd's processes (user+system from /proc/PID/stat, before and after);
# the peak resident size (VmHWM) of smtpfd's frontend, which holds every
# session; then the resident memory per idle session: N clients connect
# through the proxy, read the 220 and idle, and the frontend's VmRSS
# before and after is divided by N.
#
# Where the processes run: bench/cpus.sh.  By default all share the
# cores: the load generator and the sink compete with smtpfd (and the
# direct runs do not have smtpfd competing), so compare ratios from one
# run.  BENCH_PIN=yes runs smtpfd and mtad on CPU 0, smtp-source and
# smtp-sink on the others.
#
# Then the same load with a real MTA downstream, as deployed: smtp-source
# to mtad directly, and through an smtpfd proxy in xclient mode (mtad's
# listener takes XCLIENT from 127.0.0.1) to the same mtad.  mtad writes
# and fsyncs every message into its queue; deliveries are held (an
# "exit 75" mda action, and mtactl pause mda).  Every run starts a fresh
# mtad with an empty queue (and a fresh smtpfd).  mtad's rate follows the
# latency of its syncfs calls, which other writers on the same disk move
# a lot from one run to the next, so each row alternates direct and
# proxied runs BENCH_ROUNDS (3) times and sums them.  Figures: messages
# per second, and CPU milliseconds per message of all smtpfd's and of all
# mtad's processes (most of mtad's is the kernel's, in syncfs).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (smtpfd)" >&2; exit 1; }
for c in smtp-source smtp-sink python3; do
	command -v $c >/dev/null || { echo "bench: no $c: make deps first" >&2
	    exit 1; }
done
[ -x "$build/bin/smtpfd" ] || { echo "bench: no $build/bin/smtpfd" >&2
    exit 1; }
. "$top/bench/cpus.sh"		# BENCH_PIN, tree, cpu, stop_pid, stop_tree
T=$(mktemp -d /tmp/smtpfd-bench.XXXXXX)
chmod 755 "$T"
FPORT=30527 SPORT=30528 MPORT=30529
MSGS=${BENCH_MSGS:-5000}	# messages per run
IDLE=${BENCH_IDLE:-1000}	# idle sessions
ROUNDS=${BENCH_ROUNDS:-3}	# direct/proxied pairs per mtad row
SIZE=5120
hz=$(getconf CLK_TCK)
trap 'stop_all; rm -rf "$T"' EXIT
trap 'exit 1' HUP INT PIPE TERM

for u in _smtpfd _mtad; do
	id $u >/dev/null 2>&1 || useradd --system --no-create-home \
	    --home-dir /nonexistent --shell /usr/sbin/nologin $u
done

sink_pid='' smtpfd_pid='' idle_pid='' mtad_pid=''
# smtp-sink: one process, takes everything, writes nothing to disk.
start_sink() {
	smtp-sink -u nobody -m $((IDLE + 500)) "127.0.0.1:$SPORT" 4096 \
	    >"$T/sink.log" 2>&1 &
	sink_pid=$!
	wait_port "$SPORT"
}
# start_smtpfd IDENTITY [PORT]: a fresh smtpfd (so VmHWM is this run's)
# forwarding to 127.0.0.1:PORT (smtp-sink's by default).
start_smtpfd() {
	rm -rf "$T/empty"
	mkdir "$T/empty"
	cat >"$T/smtpfd.conf" <<CONF
user "_smtpfd"
chroot "$T/empty"
control socket "$T/smtpfd.sock"
hostname filter.example
proxy on 127.0.0.1 port $FPORT forward to smtp://127.0.0.1:${2:-$SPORT} $1
CONF
	: >"$T/smtpfd.log"
	on_server_cpu "$build/bin/smtpfd" -d -f "$T/smtpfd.conf" \
	    >"$T/smtpfd.log" 2>&1 &
	smtpfd_pid=$!
	i=0
	while [ $i -lt 100 ] && ! grep -q "smtpfd ready" "$T/smtpfd.log"; do
		sleep 0.1
		i=$((i + 1))
	done
	grep -q "smtpfd ready" "$T/smtpfd.log" || {
		echo "bench: smtpfd did not start:" >&2
		cat "$T/smtpfd.log" >&2
		exit 1
	}
}
# start_mtad: a fresh mtad with an empty queue, deliveries held.
start_mtad() {
	rm -rf "$T/mtad-queue" "$T/mtad-empty"
	mkdir "$T/mtad-empty"
	cat >"$T/mtad.conf" <<CONF
user "_mtad"
chroot "$T/mtad-empty"
queue path "$T/mtad-queue"
control socket "$T/mtad.sock"
smtp max-message-size 2M
smtp limit max-mails 1000000
table domains { example.org }
table trusted { 127.0.0.1 }
listen on 127.0.0.1 port $MPORT xclient from <trusted>
action "hold" mda "exit 75" user nobody
match from any for domain <domains> action "hold"
CONF
	on_server_cpu "$build/bin/mtad" -d -f "$T/mtad.conf" \
	    >"$T/mtad.log" 2>&1 &
	mtad_pid=$!
	i=0
	while [ $i -lt 100 ] && ! grep -q "mtad ready" "$T/mtad.log"; do
		sleep 0.1
		i=$((i + 1))
	done
	grep -q "mtad ready" "$T/mtad.log" || {
		echo "bench: mtad did not start:" >&2
		cat "$T/mtad.log" >&2
		exit 1
	}
	"$build/bin/mtactl" -s "$T/mtad.sock" pause mda >/dev/null
}
stop_mtad() {
	stop_tree "$mtad_pid"
	mtad_pid=
}
queued() {
	find "$T/mtad-queue/queue" -name message 2>/dev/null | wc -l
}
stop_smtpfd() {
	stop_tree "$smtpfd_pid"
	smtpfd_pid=
}
stop_all() {
	stop_pid "$idle_pid"
	idle_pid=
	stop_smtpfd
	stop_mtad
	stop_pid "$sink_pid"
	sink_pid=
}
wait_port() {
	python3 - "$1" <<'PY'
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}

frontend() {
	for p in $(tree "$smtpfd_pid"); do
		case $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) in
		*frontend*)	echo "$p"; return ;;
		esac
	done
}
status() {
	awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null
}
accepted() {
	[ -x "$build/bin/smtpfctl" ] || { echo 0; return; }
	"$build/bin/smtpfctl" -s "$T/smtpfd.sock" show stats 2>/dev/null |
	    awk -F= '$1 == "messages.accepted" { print $2 }'
}

# run PORT SESSIONS REUSE: "msgs/s cpu-ms/msg peak-KB" (cpu and peak
# only through smtpfd); a failed smtp-source is reported on stderr.
run() {
	d=
	[ "$3" = yes ] && d=-d
	if [ "$1" = "$FPORT" ]; then
		before=$(cpu "$smtpfd_pid")
		a0=$(accepted)
	fi
	start=$(date +%s.%N)
	timeout 600 smtp-source $d -s "$2" -l "$SIZE" -m "$MSGS" \
	    -f bench@example.net -t u@example.org "127.0.0.1:$1" \
	    >"$T/source.log" 2>&1
	rc=$?
	end=$(date +%s.%N)
	[ $rc -eq 0 ] || { echo "  (smtp-source exited $rc:" \
	    "$(head -c 200 "$T/source.log"))" >&2; }
	if [ "$1" = "$FPORT" ]; then
		after=$(cpu "$smtpfd_pid")
		a1=$(accepted)
		[ "${a1:-0}" -eq 0 ] || [ $((a1 - a0)) -eq "$MSGS" ] ||
		    echo "  (smtpfd relayed $((a1 - a0)) of $MSGS)" >&2
		awk -v n="$MSGS" -v s="$start" -v e="$end" -v b="$before" \
		    -v a="$after" -v hz="$hz" \
		    -v m="$(status "$(frontend)" VmHWM)" 'BEGIN {
			printf "%9.0f %7.3f %8d", n / (e - s),
			    (a - b) * 1000 / hz / n, m
		}'
	else
		awk -v n="$MSGS" -v s="$start" -v e="$end" 'BEGIN {
			printf "%9.0f", n / (e - s)
		}'
	fi
}

# run_mta PORT SESSIONS REUSE: "seconds smtpfd-ticks mtad-ticks" for
# $MSGS messages to mtad (PORT=MPORT) or through smtpfd to it
# (PORT=FPORT; smtpfd-ticks is 0 without smtpfd).
run_mta() {
	d=
	[ "$3" = yes ] && d=-d
	sb=0 sa=0
	[ -n "$smtpfd_pid" ] && sb=$(cpu "$smtpfd_pid")
	mb=$(cpu "$mtad_pid")
	start=$(date +%s.%N)
	timeout 600 smtp-source $d -s "$2" -l "$SIZE" -m "$MSGS" \
	    -f bench@example.net -t u@example.org "127.0.0.1:$1" \
	    >"$T/source.log" 2>&1
	rc=$?
	end=$(date +%s.%N)
	[ $rc -eq 0 ] || { echo "  (smtp-source exited $rc:" \
	    "$(head -c 200 "$T/source.log"))" >&2; }
	[ -n "$smtpfd_pid" ] && sa=$(cpu "$smtpfd_pid")
	ma=$(cpu "$mtad_pid")
	q=$(queued)
	[ "$q" -eq "$MSGS" ] || echo "  (mtad queued $q of $MSGS)" >&2
	echo "$start $end $((sa - sb)) $((ma - mb))" |
	    awk '{ printf "%.3f %d %d\n", $2 - $1, $3, $4 }'
}

# idle_kb: frontend VmRSS growth per session for $IDLE idle clients.
idle_kb() {
	fe=$(frontend)
	before=$(status "$fe" VmRSS)
	rm -f "$T/idle.ready"
	timeout 300 python3 - "$FPORT" "$IDLE" "$T/idle.ready" \
	    >"$T/idle.log" 2>&1 <<'PY' &
import socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(10)
    greeting = b""
    while not greeting.endswith(b"\r\n"):
        chunk = s.recv(512)
        if not chunk:
            break
        greeting += chunk
    if not greeting.startswith(b"220"):
        print("session %d: %r" % (i, greeting))
        sys.exit(1)
    conns.append(s)
open(ready, "w").write("%d\n" % len(conns))
time.sleep(240)
PY
	idle_pid=$!
	i=0
	while [ $i -lt 1200 ] && [ ! -s "$T/idle.ready" ] &&
	    kill -0 "$idle_pid" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	sleep 1
	after=$(status "$fe" VmRSS)
	if [ -s "$T/idle.ready" ]; then
		awk -v b="$before" -v a="$after" -v n="$IDLE" 'BEGIN {
			printf "%8d %8d %8.1f", b, a, (a - b) / n
		}'
	else
		printf "  (idle clients failed: %s)" "$(head -c 200 "$T/idle.log")"
	fi
	stop_pid "$idle_pid"
	idle_pid=
}

echo "smtpfd-proxy: $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPUS cores," \
    "$(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(pin_note)"
echo "$MSGS messages of $SIZE bytes per run; cpu and peak: smtpfd only"
start_sink
printf "%-8s %-6s %-12s | %9s | %9s %7s %8s | %5s\n" sessions reused \
    identity "direct/s" "smtpfd/s" "cpu ms" "peak KB" ratio
for spec in 10:yes 100:yes 10:no 100:no; do
	s=${spec%%:*} reuse=${spec#*:}
	direct=$(run "$SPORT" "$s" "$reuse")
	for identity in no-identity xforward; do
		start_smtpfd "$identity"
		proxied=$(run "$FPORT" "$s" "$reuse")
		stop_smtpfd
		ratio=$(echo "$proxied $direct" |
		    awk '{ printf "%.2f", $1 / $4 }')
		printf "%-8s %-6s %-12s | %s | %s | %5s\n" "$s" "$reuse" \
		    "$identity" "$direct" "$proxied" "$ratio"
	done
done

echo
printf "%-12s %8s | %8s %8s %8s\n" identity sessions "RSS0 KB" "RSS1 KB" \
    "KB/sess"
for identity in no-identity xforward; do
	start_smtpfd "$identity"
	printf "%-12s %8s | %s\n" "$identity" "$IDLE" "$(idle_kb)"
	stop_smtpfd
done

echo
echo "downstream mtad (fsynced queue, deliveries held), smtpfd in xclient mode;" \
    "$ROUNDS direct/proxied pairs summed per row"
printf "%-8s %-6s | %9s %7s | %9s %9s %7s | %5s\n" sessions reused \
    "mtad/s" "mtad ms" "smtpfd/s" "smtpfd ms" "mtad ms" ratio
for spec in 10:yes 100:yes 10:no 100:no; do
	s=${spec%%:*} reuse=${spec#*:}
	: >"$T/direct"
	: >"$T/proxied"
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		start_mtad
		run_mta "$MPORT" "$s" "$reuse" >>"$T/direct"
		stop_mtad
		start_mtad
		start_smtpfd xclient "$MPORT"
		run_mta "$FPORT" "$s" "$reuse" >>"$T/proxied"
		stop_smtpfd
		stop_mtad
		r=$((r + 1))
	done
	# Sums over the rounds: messages / seconds, ticks / messages.
	awk -v n="$MSGS" -v hz="$hz" '
	FNR == 1 { f++ }
	{ t[f] += $1; sc[f] += $2; mc[f] += $3; m[f] += n }
	END {
		printf "%9.0f %7.3f | %9.0f %9.3f %7.3f | %5.2f\n",
		    m[1] / t[1], mc[1] * 1000 / hz / m[1],
		    m[2] / t[2], sc[2] * 1000 / hz / m[2],
		    mc[2] * 1000 / hz / m[2], t[1] / t[2]
	}' "$T/direct" "$T/proxied" >"$T/row"
	printf "%-8s %-6s | %s\n" "$s" "$reuse" "$(cat "$T/row")"
done
