# bench/cpus.sh: which CPUs the benchmarks' processes run on, and how
# much CPU time they take (sourced).
#
# BENCH_PIN=no (the default): everything shares the cores, servers and
# load alike, as the figures in bench/README.md were taken unless they
# say otherwise.  BENCH_PIN=yes (2 cores or more): the servers under
# test (smtpfd, mtad, OpenSMTPD, and what they start) run on CPU 0, the
# load (smtp-source, smtp-sink, the probe) on the others, as if the
# clients and the next hop were other machines: the load generator no
# longer takes what the server needs, but all of a server's processes
# (smtpfd's frontend, engine and filters) then share one CPU, which
# changes how they wait for each other (bench/README.md).
# BENCH_PIN=server: the servers on CPU 0 as with yes, the load on every
# core: a server's processes hand each other work on one CPU, as an
# administrator may run smtpfd on a small machine (taskset(1), systemd's
# CPUAffinity=), while the load generator still takes what it takes.
NCPUS=$(nproc)		# before this shell is pinned (nproc follows it)
PIN=${BENCH_PIN:-no}
case $PIN in
yes|server)
	if [ "$NCPUS" -lt 2 ] || ! command -v taskset >/dev/null; then
		PIN=no
	fi ;;
*)	PIN=no ;;
esac
LOAD_CPUS=1
[ "$NCPUS" -gt 2 ] && LOAD_CPUS=1-$((NCPUS - 1))

# The script itself, and the load it starts: off CPU 0 (yes), on any
# CPU (server).
load_shell() {
	case $PIN in
	yes)	taskset -p -c "$LOAD_CPUS" $$ >/dev/null ;;
	server)	taskset -p -c "0-$((NCPUS - 1))" $$ >/dev/null ;;
	esac
	return 0
}
# What this shell starts next runs on CPU 0 (for functions that start
# servers, e.g. tests/lib/peers.sh's): load_shell after.
server_shell() {
	[ "$PIN" != no ] && taskset -p -c 0 $$ >/dev/null
	return 0
}
# on_server_cpu CMD...: run CMD (exec'd: same pid) on CPU 0.
on_server_cpu() {
	if [ "$PIN" != no ]; then
		taskset -c 0 "$@"
	else
		"$@"
	fi
}
pin_note() {
	if [ "$PIN" = yes ]; then
		echo "BENCH_PIN=yes: servers on CPU 0, load on CPU $LOAD_CPUS"
	elif [ "$PIN" = server ]; then
		echo "BENCH_PIN=server: servers on CPU 0, load on all" \
		    "$NCPUS cores"
	else
		echo "servers and load share the $NCPUS cores (BENCH_PIN=yes:" \
		    "servers on CPU 0, load on the others)"
	fi
}
# tree PID: the processes under PID, PID included.
tree() {
	[ -n "$1" ] || return 0
	echo "$1"
	for c in $(ps -o pid= --ppid "$1"); do
		tree "$c"
	done
}
# stop_pid PID: SIGTERM to PID, 5 s for it to go, then SIGKILL.
stop_pid() {
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null
	i=0
	while [ $i -lt 50 ] && kill -0 "$1" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
# stop_tree PID: stop_pid (a daemon's parent stops its children), then
# SIGKILL to whatever of its tree is left.
stop_tree() {
	[ -n "$1" ] || return 0
	kids=$(tree "$1")
	stop_pid "$1"
	for k in $kids; do
		kill -9 "$k" 2>/dev/null
	done
}
# tree_sum PID FILE AWK: the sum over PID's tree of what the awk program
# AWK prints of each process's /proc/P/FILE.
tree_sum() {
	total=0
	for p in $(tree "$1"); do
		t=$(awk "$3" "/proc/$p/$2" 2>/dev/null)
		total=$((total + ${t:-0}))
	done
	echo "$total"
}
# cpu PID: clock ticks of user+system time of PID's tree, with what the
# processes collected from their reaped children.
cpu() {
	tree_sum "$1" stat '{ print $14 + $15 + $16 + $17 }'
}

load_shell
