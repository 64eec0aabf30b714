#!/bin/sh
# The flood (tests/flood/): thousands of concurrent sessions through
# mtad -> smtpfd -> mtad (smtpf), then smaller floods through smtpfd as a
# proxy in front of mtad and straight into mtad, over IPv4 and IPv6, plain and STARTTLS, fast
# and laggy, pipelining or not, some vanishing in the middle of their
# content.  Then the books: every message that got 250 is delivered
# exactly once, none that was refused or vanished is delivered, the
# daemons are still up and never ran out of descriptors.
#
# FLOOD_SESSIONS, FLOOD_CONCURRENCY, FLOOD_SEED override the defaults
# (2000 sessions, 500 at once; under ASan 600 and 150).
. "$(dirname "$0")/../lib/common.sh"

case "$BIN" in
*asan*)	sessions=${FLOOD_SESSIONS:-600} conc=${FLOOD_CONCURRENCY:-150} ;;
*)	sessions=${FLOOD_SESSIONS:-2000} conc=${FLOOD_CONCURRENCY:-500} ;;
esac
seed=${FLOOD_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
run=f$seed

# Each proxied session holds two descriptors in smtpfd and one or two in
# mtad; the flood one.  The daemons inherit this limit.
want=8192
hard=$(ulimit -Hn)
[ "$hard" != unlimited ] && [ "$hard" -lt "$want" ] && want=$hard
ulimit -n "$want"
echo "# flood: $sessions sessions, $conc at once, seed $seed;" \
    "descriptor limit $(ulimit -n)"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 4)
MPORT=$1 DPORT=$2 PPORT=$3 NPORT=$4
if ! make_cert "$TMP"; then
	not_ok "openssl makes a test CA and certificate"
	done_testing
	exit 1
fi
chmod 644 "$TMP/key.pem"
mkdir -p "$TMP/maildir"
chmod 1777 "$TMP/maildir"

# IPv6 loopback, when the kernel has it.
v6=
if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
	v6=1
else
	echo "# no ::1 here: IPv4 only"
fi

{
	mtad_conf_head
	cat <<CONF
smtp limit max-sessions $((sessions + 100))
smtp timeout command 10s
smtp timeout data 10s
pki test cert "$TMP/cert.pem"
pki test key "$TMP/key.pem"
table domains { test.example }
table trusted { 127.0.0.1 }
listen on 127.0.0.1 port $MPORT tls pki test
listen on 127.0.0.1 port $NPORT tls pki test filter smtpf "unix:$TMP/smtpf.sock"
listen on 127.0.0.1 port $DPORT xclient from <trusted>
action "local" maildir "$TMP/maildir/%{dest}" user $runas
match from any for domain <domains> action "local"
CONF
	[ -n "$v6" ] && echo "listen on ::1 port $MPORT tls pki test" &&
	    echo "listen on ::1 port $NPORT tls pki test" \
	    "filter smtpf \"unix:$TMP/smtpf.sock\""
} >"$TMP/mtad.conf"
{
	cat <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$TMP/smtpfd.sock"
hostname filter.test.example
limit sessions $((sessions + 100))
timeout client 10s
pki test cert "$TMP/cert.pem"
pki test key "$TMP/key.pem"
proxy on 127.0.0.1 port $PPORT tls pki test \\
    forward to smtp://127.0.0.1:$DPORT xclient
smtpf on socket "$TMP/smtpf.sock" forward to smtp://127.0.0.1:$DPORT xclient
CONF
	[ -n "$v6" ] && echo "proxy on ::1 port $PPORT tls pki test" \
	    "forward to smtp://127.0.0.1:$DPORT xclient"
} >"$TMP/smtpfd.conf"

start_daemon smtpfd -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
wait_log "$TMP/smtpfd.log" "smtpfd ready"
start_daemon mtad -f "$TMP/mtad.conf"
mpid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "smtpfd ready" ||
    ! wait_log "$TMP/smtpfd.log" "speaks smtpf"; then
	not_ok "mtad and smtpfd start"
	done_testing
	exit 1
fi

# The descriptor limits the daemons' processes really have.
for pid in $mpid $(children_of "$mpid") $fpid $(children_of "$fpid"); do
	name=$(tr -d '\0' <"/proc/$pid/cmdline" 2>/dev/null |
	    sed 's/  *$//')
	lim=$(awk '/^Max open files/ { print $4 }' "/proc/$pid/limits")
	echo "# $name: $lim descriptors"
done

# flood_run NAME ARGS...: one flood into $TMP/NAME.*; prints its figures.
flood_run() {
	fname=$1
	shift
	"$TOOLS/flood" -I "$run$fname" -S "$seed" -a "$TMP/ca.pem" \
	    -o "$TMP/$fname.accepted" -O "$TMP/$fname.others" -W 50 "$@" \
	    >"$TMP/$fname.out" 2>"$TMP/$fname.err"
	FLOOD_STATUS=$?
	sed 's/^/# /' "$TMP/$fname.out"
	head -n 20 "$TMP/$fname.err" | sed 's/^/#   /'
}

targets="127.0.0.1 $NPORT"
[ -n "$v6" ] && targets="$targets ::1 $NPORT"
flood_run native -n "$sessions" -c "$conc" -m 2 -s 0.3 -g 0.1 -P 1000 \
    -b 5 -V 0.1 -p 0.4 -l 0.05 -z 2K,200K $targets
if [ "$FLOOD_STATUS" -eq 0 ]; then
	ok "the flood through mtad -> smtpfd -> mtad: every session ended as SMTP allows"
else
	not_ok "the flood through mtad -> smtpfd -> mtad: every session ended as SMTP allows" \
	    "$(grep '^errors:' "$TMP/native.out")"
fi
accepted=$(grep -c . "$TMP/native.accepted")
check "the flood through mtad -> smtpfd -> mtad: mail got 250 ($accepted)" \
    [ "$accepted" -gt $((sessions / 2)) ]

# A smaller one through smtpfd as a proxy in front of mtad.
targets="127.0.0.1 $PPORT"
[ -n "$v6" ] && targets="$targets ::1 $PPORT"
flood_run proxy -n $((sessions / 4)) -c $((conc / 2)) -m 2 -s 0.3 -g 0.1 \
    -P 1000 -b 5 -V 0.1 -p 0.4 -l 0.05 -z 2K,200K $targets
check "the flood through the smtpfd proxy: every session ended as SMTP allows" \
    [ "$FLOOD_STATUS" -eq 0 ]

# A smaller flood straight into mtad, over both families.
targets="127.0.0.1 $MPORT"
[ -n "$v6" ] && targets="$targets ::1 $MPORT"
flood_run direct -n $((sessions / 4)) -c $((conc / 2)) -m 3 -s 0.3 -g 0.05 \
    -P 500 -V 0.1 -p 0.5 -l 0.05 -z 2K,200K $targets
check "the flood into mtad: every session ended as SMTP allows" \
    [ "$FLOOD_STATUS" -eq 0 ]

# The flood itself must notice a server that breaks the rules: this one
# greets, then closes after the first command without a 421.
set -- $(free_ports 1)
python3 - "$1" <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
s.settimeout(20)
for i in range(3):
    c, _ = s.accept()
    c.sendall(b"220 rude.example ESMTP\r\n")
    c.recv(1024)
    c.close()
PY
rude=$!
started_pids="$started_pids $rude"
i=0
while [ "$i" -lt 50 ] && [ -z "$(ss -Htln "sport = :$1" 2>/dev/null)" ]; do
	sleep 0.1
	i=$((i + 1))
done
"$TOOLS/flood" -n 3 -c 3 -T 10 -W 20 127.0.0.1 "$1" >"$TMP/rude.out" \
    2>"$TMP/rude.err"
FLOOD_STATUS=$?
check "the flood fails on a server that closes without 421" \
    sh -c '[ "$1" -eq 1 ] && grep -q "closed-without-421 3" "$2"' sh \
    "$FLOOD_STATUS" "$TMP/rude.out"
wait "$rude" 2>/dev/null

check "mtad is still running" is_running "$mpid"
check "smtpfd is still running" is_running "$fpid"

# Wait for the deliveries: the queue drains.
i=0
while [ "$i" -lt 300 ] && [ -n "$(ls "$TMP/queue/queue" 2>/dev/null)" ]; do
	sleep 0.1
	i=$((i + 1))
done
check "the queue drains" [ -z "$(ls "$TMP/queue/queue" 2>/dev/null)" ]

find "$TMP/maildir" -type f -path '*/new/*' -exec \
    sed -n 's/^X-Flood-Id: //p' {} + | sort >"$TMP/delivered"
for fname in native proxy direct; do
	sort "$TMP/$fname.accepted" >"$TMP/$fname.a"
	awk '$1 != "indoubt" { print $2 }' "$TMP/$fname.others" |
	    sort >"$TMP/$fname.r"
	grep "^$run$fname-" "$TMP/delivered" >"$TMP/$fname.d"
	echo "# $fname: $(grep -c . "$TMP/$fname.d") delivered," \
	    "$(grep -c . "$TMP/$fname.a") accepted," \
	    "$(grep -c . "$TMP/$fname.r") refused or vanished," \
	    "$(grep -c '^indoubt' "$TMP/$fname.others") in doubt"
	dup=$(uniq -d "$TMP/$fname.d" | head -n 5)
	check "$fname: no message is delivered twice" [ -z "$dup" ]
	[ -n "$dup" ] && echo "#   twice:" $dup
	missing=$(sort -u "$TMP/$fname.d" | comm -23 "$TMP/$fname.a" - |
	    head -n 5)
	check "$fname: every message that got 250 is delivered" \
	    [ -z "$missing" ]
	[ -n "$missing" ] && echo "#   missing:" $missing
	extra=$(comm -12 "$TMP/$fname.r" "$TMP/$fname.d" | head -n 5)
	check "$fname: no message refused or vanished is delivered" \
	    [ -z "$extra" ]
	[ -n "$extra" ] && echo "#   delivered:" $extra
done

for d in mtad smtpfd; do
	if grep -q "Too many open files" "$TMP/$d.log"; then
		not_ok "$d never ran out of descriptors" \
		    "$(grep -c "Too many open files" "$TMP/$d.log") times:" \
		    "$(grep -m 3 "Too many open files" "$TMP/$d.log")"
	else
		ok "$d never ran out of descriptors"
	fi
	check "$d lost no process" \
	    sh -c '! grep -q "lost child" "$1"' sh "$TMP/$d.log"
done

kill -TERM "$fpid"
wait_status "$fpid"
check "smtpfd stops cleanly" [ "$STATUS" -eq 0 ]
kill -TERM "$mpid"
wait_status "$mpid"
check "mtad stops cleanly" [ "$STATUS" -eq 0 ]
check "no sanitizer report from mtad" no_sanitizer_report "$TMP/mtad.log"
check "no sanitizer report from smtpfd" no_sanitizer_report "$TMP/smtpfd.log"
done_testing
