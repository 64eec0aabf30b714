#!/bin/sh
# smtpfctl reload and SIGHUP: new sessions follow the new configuration,
# running ones finish on theirs; a configuration with errors, or one that
# only a restart can apply, changes nothing and says why.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 4)
D1=$1 D2=$2 P=$3 OTHER=$4
SOCK="$TMP/smtpfd.sock"
ctl() {
	"$BIN/smtpfctl" -s "$SOCK" "$@"
}

cat >"$TMP/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/queue"
control socket "$TMP/mtad.sock"
table trusted { 127.0.0.1 }
table domains { test.example }
listen on 127.0.0.1 port $D1 hostname one.test.example xclient from <trusted>
listen on 127.0.0.1 port $D2 hostname two.test.example xclient from <trusted>
action "local" mda "exit 75" user nobody
match from any for domain <domains> action "local"
CONF
# smtpfd_conf DOWNPORT [EXTRA]: write smtpfd's configuration
smtpfd_conf() {
	cat >"$TMP/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$SOCK"
proxy on 127.0.0.1 port $P forward to smtp://127.0.0.1:$1
${2:-}
CONF
}
smtpfd_conf "$D1"
start_daemon mtad -f "$TMP/mtad.conf"
start_daemon smtpfd -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "smtpfd ready"; then
	not_ok "mtad and smtpfd start"
	done_testing
	exit 1
fi

# banner: the greeting a new client gets through the proxy
banner() {
	python3 - "$P" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
print(s.makefile("rb").readline().decode().strip())
PY
}

# A client that stays across the reloads: it reads its greeting, waits
# for $TMP/go, then sends a message and prints every reply.
python3 - "$P" "$TMP/go" >"$TMP/old.out" 2>&1 <<'PY' &
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
print(f.readline().decode().strip(), flush=True)
for _ in range(200):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
def cmd(c):
    s.sendall(c + b"\r\n")
    while True:
        l = f.readline().decode().strip()
        print(l, flush=True)
        if l[3:4] != "-":
            return
cmd(b"EHLO client.example")
cmd(b"MAIL FROM:<a@b.example>")
cmd(b"RCPT TO:<u@test.example>")
cmd(b"DATA")
s.sendall(b"Subject: across a reload\r\n\r\nbody\r\n.\r\n")
print(f.readline().decode().strip(), flush=True)
cmd(b"QUIT")
PY
oldpid=$!
wait_log "$TMP/old.out" "^220"
check "before the reload: sessions go to the first downstream" \
    sh -c 'banner_out=$1; echo "$banner_out" | grep -q "^220 one.test.example"' sh "$(banner)"

smtpfd_conf "$D2"
out=$(ctl reload 2>&1)
check "smtpfctl reload succeeds" [ $? -eq 0 ]
check "smtpfctl reload says so" sh -c 'echo "$1" | grep -q "configuration reloaded"' sh "$out"
check "after the reload: new sessions go to the second downstream" \
    sh -c 'echo "$1" | grep -q "^220 two.test.example"' sh "$(banner)"

touch "$TMP/go"
wait_status "$oldpid"
check "the session opened before the reload stays on its downstream" \
    grep -q "^250-one.test.example Hello client.example" "$TMP/old.out"
check "... and its message is accepted" \
    grep -q "^250 2.0.0 .* Message accepted" "$TMP/old.out"

# A configuration with an error: nothing changes, the error is named.
smtpfd_conf "$D1" "frobnicate now"
out=$(ctl reload 2>&1)
st=$?
check "a bad configuration: reload fails" [ "$st" -eq 1 ]
check "a bad configuration: the reply names file and line" \
    sh -c 'echo "$1" | grep -q "smtpfd.conf:5: unknown statement"' sh "$out"
check "a bad configuration: the old one stays" \
    sh -c 'echo "$1" | grep -q "^220 two.test.example"' sh "$(banner)"

# A new listener needs a restart.
smtpfd_conf "$D1" "proxy on 127.0.0.1 port $OTHER forward to smtp://127.0.0.1:$D1"
out=$(ctl reload 2>&1)
st=$?
check "a new listener: reload fails and says restart" \
    sh -c '[ "$1" -eq 1 ] && echo "$2" | grep -q "listeners changed.*restart"' \
    sh "$st" "$out"
check "a new listener: the old configuration stays" \
    sh -c 'echo "$1" | grep -q "^220 two.test.example"' sh "$(banner)"

# SIGHUP does the same as smtpfctl reload.
smtpfd_conf "$D1"
kill -HUP "$fpid"
wait_log "$TMP/smtpfd.log" "configuration reloaded from" 50
check "SIGHUP reloads: new sessions go to the first downstream again" \
    sh -c 'echo "$1" | grep -q "^220 one.test.example"' sh "$(banner)"
check "smtpfd is still running" is_running "$fpid"
check "no sanitizer report" no_sanitizer_report "$TMP/smtpfd.log"
done_testing
