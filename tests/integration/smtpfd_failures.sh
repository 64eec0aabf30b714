#!/bin/sh
# mtad -> smtpfd -> mtad when things go wrong, and when they are big:
#  - two smtpfd endpoints share the sessions; one is killed while a
#    client is in the middle of its content: that client gets 421,
#    nothing of its message is delivered, mtad goes on with the other;
#  - no endpoint: 421 4.3.0, or mtad's own session with "bypass";
#  - a downstream that is down: 421 4.3.0;
#  - a 50 MB message: delivered, and smtpfd's memory stays flat;
#  - smtpf over TCP with TLS between a second mtad and an smtpfd, with
#    their own test CA; a certificate from another CA is refused.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 9)
F=$1 FN=$2 FB=$3 FD=$4 B=$5 F2=$6 FW=$7 LP=$8 B2=$9
mkdir "$TMP/other"
if ! make_cert "$TMP" || ! make_cert "$TMP/other"; then
	not_ok "openssl makes test CAs and certificates"
	done_testing
	exit 1
fi
chmod 644 "$TMP/key.pem" "$TMP/other/key.pem"
mkdir -m 755 "$TMP/m1" "$TMP/m2" "$TMP/maildir"
chown "$runas" "$TMP/maildir" 2>/dev/null

cat >"$TMP/m1/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/m1/queue"
control socket "$TMP/m1/mtad.sock"
hostname one.test.example
smtp max-message-size 60M
table trusted { 127.0.0.1 }
table domains { test.example }
listen on 127.0.0.1 port $F filter smtpf "unix:$TMP/s1.sock" smtpf "unix:$TMP/s2.sock"
listen on 127.0.0.1 port $FN filter smtpf "unix:$TMP/none.sock"
listen on 127.0.0.1 port $FB filter smtpf "unix:$TMP/none.sock" bypass
listen on 127.0.0.1 port $FD filter smtpf "unix:$TMP/dead.sock"
listen on 127.0.0.1 port $B xclient from <trusted>
action "local" maildir "$TMP/maildir" user $runas
match from any for domain <domains> action "local"
CONF

# fd_conf NAME SOCKET DOWNPORT: an smtpfd on a unix smtpf socket
fd_conf() {
	mkdir -m 755 "$TMP/$1"
	cat >"$TMP/$1/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$TMP/$1/smtpfd.sock"
hostname $1.test.example
smtpf on socket "$2" forward to smtp://127.0.0.1:$3 xclient
CONF
}
fd_conf fd1 "$TMP/s1.sock" "$B"
fd_conf fd2 "$TMP/s2.sock" "$B"
fd_conf fdd "$TMP/dead.sock" 1

# start NAME PROGRAM CONF: a daemon logging to $TMP/NAME.log; sets PID_NAME
start() {
	"$BIN/$2" -d -v -f "$3" >"$TMP/$1.log" 2>&1 &
	eval "PID_$1=$!"
	started_pids="$started_pids $!"
}
start fd1 smtpfd "$TMP/fd1/smtpfd.conf"
start fd2 smtpfd "$TMP/fd2/smtpfd.conf"
start fdd smtpfd "$TMP/fdd/smtpfd.conf"
for n in fd1 fd2 fdd; do
	wait_log "$TMP/$n.log" "smtpfd ready" || not_ok "$n starts"
done
start m1 mtad "$TMP/m1/mtad.conf"
if ! wait_log "$TMP/m1.log" "mtad ready" ||
    ! wait_log "$TMP/m1.log" "s1.sock: link up" ||
    ! wait_log "$TMP/m1.log" "s2.sock: link up"; then
	not_ok "mtad starts and links to both smtpfd"
	done_testing
	exit 1
fi
ok "mtad links to two smtpfd endpoints"

# send PORT SUBJECT [SIZE_MB]: one message; prints the replies
send() {
	python3 - "$1" "$2" "${3:-0}" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        print(l.decode().rstrip(), flush=True)
        if l[3:4] != b"-":
            return l
if not reply().startswith(b"220"):
    sys.exit(1)
for c in (b"EHLO client.example", b"MAIL FROM:<a@b.example>",
          b"RCPT TO:<u@test.example>", b"DATA"):
    s.sendall(c + b"\r\n")
    reply()
s.sendall(b"Subject: " + sys.argv[2].encode() + b"\r\n\r\n")
line = b"x" * 998 + b"\r\n"
for _ in range(int(sys.argv[3]) * 1024 * 1024 // len(line)):
    s.sendall(line)
s.sendall(b"end\r\n.\r\n")
reply()
s.sendall(b"QUIT\r\n")
reply()
PY
}
delivered() {
	grep -l -x -F "Subject: $1" "$TMP"/maildir/new/* 2>/dev/null | wc -l
}
wait_delivered() {
	i=0
	while [ "$i" -lt 100 ] && [ "$(delivered "$1")" -lt 1 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(delivered "$1")" -ge 1 ]
}

# Sessions are spread over both endpoints.
for i in 1 2 3 4; do
	send "$F" "spread $i" >"$TMP/spread.out" 2>&1
done
check "sessions go to the first endpoint" grep -q "smtp message downstream=" "$TMP/fd1.log"
check "sessions go to the second endpoint" grep -q "smtp message downstream=" "$TMP/fd2.log"
check "the messages are delivered" wait_delivered "spread 4"

# No endpoint at all.
out=$(swaks --server "127.0.0.1:$FN" --quit-after CONNECT 2>&1)
check "no smtpfd: 421 4.3.0" sh -c 'echo "$1" | grep -q "<\*\* 421 4.3.0"' sh "$out"
out=$(send "$FB" "bypassed" 2>&1)
check "no smtpfd, bypass: mtad's own session accepts the message" \
    sh -c 'echo "$1" | grep -q "^250 2.0.0"' sh "$out"
check "no smtpfd, bypass: the message is delivered" wait_delivered "bypassed"

# A downstream that is down.
out=$(swaks --server "127.0.0.1:$FD" --quit-after CONNECT 2>&1)
check "downstream down: 421 4.3.0" sh -c 'echo "$1" | grep -q "<\*\* 421 4.3.0"' sh "$out"

# 50 MB through mtad -> smtpfd -> mtad; smtpfd's memory stays flat.
out=$(send "$F" "fifty megabytes" 50 2>&1)
check "a 50 MB message is accepted" sh -c 'echo "$1" | grep -q "^250 2.0.0"' sh "$out"
check "a 50 MB message is delivered" wait_delivered "fifty megabytes"
for n in fd1 fd2; do
	eval "p=\$PID_$n"
	for c in $(children_of "$p"); do
		case $(cat "/proc/$c/cmdline" 2>/dev/null | tr '\0' ' ') in
		*frontend*)
			hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$c/status")
			echo "# $n frontend peak RSS: $hwm KB"
			# ASan's quarantine holds freed memory back: the
			# figure says nothing there.
			if ldd "$BIN/smtpfd" | grep -q libasan; then
				ok "$n: peak RSS # SKIP under ASan"
				continue
			fi
			check "$n: peak RSS well under the message size (< 20 MB)" \
			    [ "$hwm" -lt 20480 ]
			;;
		esac
	done
done

# smtpfd killed while a client is in the middle of its content.
python3 - "$F" "$TMP/go" "$TMP/mid.port" >"$TMP/mid.out" 2>&1 <<'PY' &
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        print(l.decode().rstrip(), flush=True)
        if l[3:4] != b"-":
            return l
reply()
for c in (b"EHLO client.example", b"MAIL FROM:<a@b.example>",
          b"RCPT TO:<u@test.example>", b"DATA"):
    s.sendall(c + b"\r\n")
    reply()
s.sendall(b"Subject: half delivered\r\n\r\nthe first half\r\n")
open(sys.argv[3], "w").write(str(s.getsockname()[1]))
for _ in range(300):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
try:
    s.sendall(b"the second half\r\n.\r\n")
except OSError:
    pass
reply()
PY
cpid=$!
i=0
while [ ! -s "$TMP/mid.port" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
port=$(cat "$TMP/mid.port" 2>/dev/null)
victim=
for n in fd1 fd2; do
	wait_log "$TMP/$n.log" "smtp connected address=127.0.0.1 port=$port " 1 &&
	    victim=$n
done
check "the client mid-DATA is on one of the smtpfd" [ -n "$victim" ]
if [ -n "$victim" ]; then
	eval "vpid=\$PID_$victim"
	kids=$(children_of "$vpid")
	kill -KILL "$vpid" $kids
	wait_gone "$vpid" 50
	touch "$TMP/go"
	wait_status "$cpid"
	check "smtpfd killed mid-DATA: the client gets 421 4.3.0" \
	    grep -q "^421 4.3.0" "$TMP/mid.out"
	check "smtpfd killed mid-DATA: mtad says the link is lost" \
	    wait_log "$TMP/m1.log" "$victim.test.example|s[12].sock.*(lost|closed|down)" 30
	sleep 1
	check "smtpfd killed mid-DATA: nothing of that message is delivered" \
	    [ "$(delivered "half delivered")" -eq 0 ]
	check "smtpfd killed mid-DATA: the half message is not queued either" \
	    sh -c '! grep -rqs "the first half" "$1"' sh "$TMP/m1/queue"
	out=$(send "$F" "after the kill" 2>&1)
	check "after the kill: the other smtpfd takes the sessions" \
	    sh -c 'echo "$1" | grep -q "^250 2.0.0"' sh "$out"
	check "after the kill: delivered" wait_delivered "after the kill"
fi
eval "m1=\$PID_m1"
check "mtad is still running" is_running "$m1"

# --- smtpf over TCP with TLS: a second mtad and a remote smtpfd, with
# their own CA; the same CA signs both certificates (subjectAltName
# 127.0.0.1: mtad checks smtpfd's name).
cat >"$TMP/m2/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/m2/queue"
control socket "$TMP/m2/mtad.sock"
hostname two.test.example
table trusted { 127.0.0.1 }
table domains { test.example }
pki mta cert "$TMP/cert.pem"
pki mta key "$TMP/key.pem"
pki mta ca "$TMP/ca.pem"
pki stranger cert "$TMP/other/cert.pem"
pki stranger key "$TMP/other/key.pem"
pki stranger ca "$TMP/ca.pem"
listen on 127.0.0.1 port $F2 filter smtpf "tls://127.0.0.1:$LP" filter-pki mta
listen on 127.0.0.1 port $FW filter smtpf "tls://127.0.0.1:$LP" filter-pki stranger
listen on 127.0.0.1 port $B2 xclient from <trusted>
action "local" maildir "$TMP/maildir" user $runas
match from any for domain <domains> action "local"
CONF
mkdir -m 755 "$TMP/fdt"
cat >"$TMP/fdt/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$TMP/fdt/smtpfd.sock"
hostname fdt.test.example
pki fd cert "$TMP/cert.pem"
pki fd key "$TMP/key.pem"
pki fd ca "$TMP/ca.pem"
smtpf on 127.0.0.1 port $LP pki fd forward to smtp://127.0.0.1:$B2 xclient
CONF
start fdt smtpfd "$TMP/fdt/smtpfd.conf"
wait_log "$TMP/fdt.log" "smtpfd ready"
start m2 mtad "$TMP/m2/mtad.conf"
check "mtad links to the remote smtpfd over TLS" \
    wait_log "$TMP/m2.log" "tls://127.0.0.1:$LP: link up"
check "smtpfd names the MTA's certificate" \
    wait_log "$TMP/fdt.log" 'smtpf 127.0.0.1:[0-9]+: TLS stream from ".*CN ?= ?localhost'
out=$(send "$F2" "over smtpf with tls" 2>&1)
check "a message through the TLS link is accepted" \
    sh -c 'echo "$1" | grep -q "^250 2.0.0"' sh "$out"
check "a message through the TLS link is delivered" wait_delivered "over smtpf with tls"
check "a certificate from another CA is refused by smtpfd" \
    wait_log "$TMP/fdt.log" "smtpf 127.0.0.1:[0-9]+: TLS handshake: .*certificate verify failed" 50
out=$(swaks --server "127.0.0.1:$FW" --quit-after CONNECT 2>&1)
check "the refused MTA's clients get 421 4.3.0" \
    sh -c 'echo "$1" | grep -q "<\*\* 421 4.3.0"' sh "$out"
eval "m2=\$PID_m2"
eval "fdt=\$PID_fdt"
check "the second mtad is still running" is_running "$m2"
check "the TLS smtpfd is still running" is_running "$fdt"
for n in fd2 fdt m1 m2; do
	check "no sanitizer report ($n)" no_sanitizer_report "$TMP/$n.log"
done
done_testing
