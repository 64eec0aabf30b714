#!/bin/sh
# bench/mtad-accept.sh: messages per second that mtad accepts into its
# fsynced queue, beside a private Postfix instance taking the same load
# into its own queue, in the same run.  A benchmark, not a test: it
# prints figures and the mtad/Postfix ratio, it does not pass or fail.
#
#	bench/mtad-accept.sh [BUILDDIR]		(as root; make bench runs it)
#
# Load: Postfix's smtp-source, one message after another on each of 1, 10
# and 100 sessions (-d: sessions are reused), 5 KB and 1 MB messages.
# Deliveries are paused in mtad (mtactl pause mda) and Postfix puts every
# message on hold (check_recipient_access static:HOLD), so both only
# accept.  CPU is the user+system time of all
# the server's processes; memory the sum of their peak resident sizes.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BENCH_PIN=no			# (this one pins nothing)
. "$top/bench/cpus.sh"		# tree, tree_sum, cpu
build=${1:-$top/build}
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root (Postfix)" >&2; exit 1; }
command -v smtp-source >/dev/null || { echo "bench: make deps first" >&2; exit 1; }
T=$(mktemp -d /tmp/mtad-bench.XXXXXX)
chmod 755 "$T"
MPORT=30525 PPORT=30526
trap 'stop_all; rm -rf "$T"' EXIT INT TERM

id _mtad >/dev/null 2>&1 || useradd --system --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin _mtad

# --- mtad
cat >"$T/mtad.conf" <<CONF
user "_mtad"
chroot "$T/empty"
queue path "$T/mtad-queue"
control socket "$T/mtad.sock"
smtp max-message-size 2M
smtp limit max-mails 1000000
table domains { example.org }
listen on 127.0.0.1 port $MPORT
action "hold" mda "exit 75" user nobody
match from any for domain <domains> action "hold"
CONF

# --- Postfix, private: its own config, queue and log; no qmgr.
mkdir -p "$T/pf/etc" "$T/pf/spool" "$T/pf/data"
chown postfix "$T/pf/data"
cat >"$T/pf/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $T/pf/spool
data_directory = $T/pf/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.example
mydestination = example.org
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access static:HOLD
local_recipient_maps =
maillog_file = $T/pf/maillog
maillog_file_prefixes = $T
message_size_limit = 2097152
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_peername_lookup = no
CONF
cat >"$T/pf/etc/master.cf" <<CONF
127.0.0.1:$PPORT inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
proxymap  unix  - - n - - proxymap
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
error     unix  - - n - - error
postlog   unix-dgram n - n - 1 postlogd
CONF
touch "$T/pf/maillog"
chown postfix "$T/pf/maillog"

mtad_pid=
start_mtad() {
	rm -rf "$T/mtad-queue"
	"$build/bin/mtad" -d -f "$T/mtad.conf" >"$T/mtad.log" 2>&1 &
	mtad_pid=$!
	i=0
	while [ $i -lt 100 ] && ! grep -q "mtad ready" "$T/mtad.log"; do
		sleep 0.1
		i=$((i + 1))
	done
	"$build/bin/mtactl" -s "$T/mtad.sock" pause mda >/dev/null
}
stop_mtad() {
	[ -n "$mtad_pid" ] && kill "$mtad_pid" 2>/dev/null && wait "$mtad_pid"
	mtad_pid=
}
start_postfix() {
	rm -rf "$T/pf/spool"
	mkdir -p "$T/pf/spool"
	postfix -c "$T/pf/etc" start >/dev/null 2>&1
	i=0
	while [ $i -lt 100 ] && [ -z "$(postfix_root)" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	sleep 1
}
stop_postfix() {
	postfix -c "$T/pf/etc" stop >/dev/null 2>&1
	sleep 1
}
stop_all() {
	stop_mtad
	stop_postfix
}

postfix_root() {
	cat "$T/pf/spool/pid/master.pid" 2>/dev/null | tr -d ' '
}
# rss ROOT: sum of peak resident sizes in KB.
rss() {
	tree_sum "$1" status '/^VmHWM/ { print $2 }'
}

hz=$(getconf CLK_TCK)
# run PORT ROOT SESSIONS SIZE COUNT: prints "msgs/s cpu-ms/msg peak-KB"
run() {
	before=$(cpu "$2")
	start=$(date +%s.%N)
	smtp-source -d -s "$3" -l "$4" -m "$5" -f bench@example.net \
	    -t u@example.org "127.0.0.1:$1" >/dev/null 2>&1
	end=$(date +%s.%N)
	after=$(cpu "$2")
	awk -v n="$5" -v s="$start" -v e="$end" -v b="$before" -v a="$after" \
	    -v hz="$hz" -v m="$(rss "$2")" 'BEGIN {
		printf "%9.0f %10.3f %9d", n / (e - s), (a - b) * 1000 / hz / n, m
	}'
}

printf "%-8s %-5s %6s | %9s %10s %9s | %9s %10s %9s | %5s\n" \
    sessions size msgs "mtad/s" "cpu ms" "peak KB" "postfix/s" "cpu ms" \
    "peak KB" ratio
for spec in 1:5120:500 10:5120:2000 100:5120:4000 1:1048576:50 \
    10:1048576:100 100:1048576:200; do
	s=${spec%%:*} rest=${spec#*:}
	size=${rest%%:*} n=${rest#*:}
	start_mtad
	m=$(run "$MPORT" "$mtad_pid" "$s" "$size" "$n")
	mq=$(find "$T/mtad-queue/queue" -name message | wc -l)
	stop_mtad
	start_postfix
	p=$(run "$PPORT" "$(postfix_root)" "$s" "$size" "$n")
	pq=$(find "$T/pf/spool/hold" -type f 2>/dev/null | wc -l)
	stop_postfix
	ratio=$(echo "$m $p" | awk '{ printf "%.2f", $1 / $4 }')
	printf "%-8s %-5s %6s | %s | %s | %5s\n" "$s" \
	    "$([ "$size" -gt 10000 ] && echo 1M || echo 5K)" "$n" "$m" "$p" "$ratio"
	[ "$mq" -eq "$n" ] || echo "  (mtad queued $mq of $n)"
	[ "$pq" -eq "$n" ] || echo "  (postfix queued $pq of $n)"
done
