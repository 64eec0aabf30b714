# bench/cpus.sh: which CPUs the benchmarks' processes run on (sourced).
#
# BENCH_PIN=yes (the default with 2 cores or more): the servers under
# test (smtpfd, mtad, OpenSMTPD, Postfix, and what they start) run on
# CPU 0, the load (smtp-source, smtp-sink, the probe) on the others, as
# if the clients and the next hop were other machines.  A server's
# figures are then its own: with everything on the same two cores, the
# load generator takes what the server needs, and a relay's extra hop is
# paid twice (its own work, and the wake-ups of processes that wait for
# each other on busy cores).  BENCH_PIN=no: everything shares the cores,
# as the first figures in bench/README.md were taken.
PIN=${BENCH_PIN:-yes}
if [ "$PIN" = yes ] && { [ "$(nproc)" -lt 2 ] ||
    ! command -v taskset >/dev/null; }; then
	PIN=no
fi
LOAD_CPUS=1-$(($(nproc) - 1))

# The script itself, and the load it starts, stay off CPU 0.
load_shell() {
	[ "$PIN" = yes ] && taskset -p -c "$LOAD_CPUS" $$ >/dev/null
	return 0
}
# What this shell starts next runs on CPU 0 (for functions that start
# servers, e.g. tests/lib/peers.sh's): load_shell after.
server_shell() {
	[ "$PIN" = yes ] && taskset -p -c 0 $$ >/dev/null
	return 0
}
# on_server_cpu CMD...: run CMD (exec'd: same pid) on CPU 0.
on_server_cpu() {
	if [ "$PIN" = yes ]; then
		taskset -c 0 "$@"
	else
		"$@"
	fi
}
pin_note() {
	if [ "$PIN" = yes ]; then
		echo "servers on CPU 0, load on CPU $LOAD_CPUS (BENCH_PIN=no:" \
		    "all on all cores)"
	else
		echo "servers and load share the $(nproc) cores"
	fi
}
load_shell
