#!/bin/sh
# Built-in rules through real sessions (smtpfd proxy in front of mtad):
# each phase, each decision, what the downstream got, the counters of
# smtpfctl show filters, a chain chosen at connect, and a reload that
# swaps chains for new sessions while a running one keeps its own.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 4)
P=$1 D=$2 PC=$3
SOCK="$TMP/smtpfd.sock"
ctl() {
	"$BIN/smtpfctl" -s "$SOCK" "$@"
}

downstream_mtad_conf "$D"

# smtpfd_conf RCPT-REPLY: the rules, with the rcpt-to reply to tell
# the generations apart
smtpfd_conf() {
	cat >"$TMP/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$SOCK"
hostname filter.test.example
filter "helo" phase helo match helo regex "^bad" reject "550 5.7.1 bad helo"
filter "ehlo" phase ehlo match regex "^rewrite-me" rewrite "rewritten.example"
filter "vip" phase mail-from match mail-from regex "^vip@" bypass
filter "junk" phase mail-from match mail-from regex "^spammer@" junk
filter "evil" phase mail-from match mail-from regex "^evil@" disconnect "421 4.7.0 go away"
filter "domain" phase mail-from match mail-from regex "@refused\\\\.example\$" reject "550 5.7.1 refused domain"
filter "old" phase rcpt-to match regex "^old@" rewrite "<new@test.example>"
filter "later" phase rcpt-to match regex "^nobody-here@" reject "$1"
filter "nodata" phase data match mail-from regex "^nodata@" reject "554 5.7.1 no data for you"
filter "commit" phase commit match mail-from regex "^blockme@" reject "550 5.7.1 refused at commit"
filter "noop" phase noop match regex ".*" report "a NOOP"
filter "rset" phase rset match !tls report "an RSET in clear text"
chain "main" { "helo", "ehlo", "vip", "junk", "evil", "domain", "old", "later", "nodata", "commit", "noop", "rset" }
filter "strict-rcpt" phase rcpt-to match regex ".*" reject "550 5.7.1 strict chain"
chain "strict" { "strict-rcpt" }
select chain "strict" for mail-from domain { strict.example }
select bypass for mail-from domain { trusted.example }
select bypass for src { 127.0.0.3 }
filter "local-only" phase connect match !src { 127.0.0.1, ::1 } disconnect "554 5.7.1 not from here"
proxy on 127.0.0.1 port $P chain "main" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PC chain "local-only" forward to smtp://127.0.0.1:$D xclient
CONF
}
smtpfd_conf "450 4.2.1 try later"
start_daemon mtad -f "$TMP/mtad.conf"
start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "smtpfd ready"; then
	not_ok "mtad and smtpfd start"
	done_testing
	exit 1
fi

"$TOOLS/smtpscript" -D HOST=127.0.0.1 -D PORT="$P" \
    "$(dirname "$0")"/../scenarios/filters/rules.smtp >"$TMP/script.tap" 2>&1
tap_relay "rules: " <"$TMP/script.tap"

q="$TMP/queue/queue"
message_with() {
	grep -l -x -F -- "$1" "$q"/*/message 2>/dev/null
}
m=$(message_with "Subject: rules junk")
check "junk: the message carries X-Spam: Yes" grep -qx "X-Spam: Yes" "$m"
m=$(message_with "Subject: rules rewritten")
check "rcpt-to rewrite: the envelope has the new recipient" \
    grep -qx "rcpt: new@test.example" "$(dirname "$m")"/[0-9a-f]*[0-9a-f]
check "rcpt-to rewrite: the old recipient is not queued" \
    sh -c '! grep -qx "rcpt: old@test.example" "$1"/[0-9a-f]*[0-9a-f]' sh "$(dirname "$m")"
check "commit reject: the message is not queued" \
    [ -z "$(message_with "Subject: rules blocked at commit")" ]
check "after a refused commit the session goes on: the next message is queued" \
    [ -n "$(message_with "Subject: rules after a refused commit")" ]
check "report: logged with the filter's name" \
    grep -q "filter noop phase noop report: a NOOP" "$TMP/smtpfd.log"
check "reject: logged with session, filter and phase" \
    grep -Eq "[0-9a-f]{16} filter helo phase helo reject: 550 5.7.1 bad helo" \
    "$TMP/smtpfd.log"

out=$(ctl show filters 2>&1)
echo "$out" | sed 's/^/# /' | cut -c1-150
check "show filters: helo rejected once" \
    sh -c 'echo "$1" | grep -q "^helo kind=rule state=ready calls=[0-9]* .*reject=1 "' sh "$out"
check "show filters: junk decided once" \
    sh -c 'echo "$1" | grep -q "^junk .* junk=1 "' sh "$out"
check "show filters: latency histogram" \
    sh -c 'echo "$1" | grep -q "^helo .* le+Inf=[1-9]"' sh "$out"

# select: a chain for a sender's domain, bypass for a trusted one or a
# trusted source.
python3 - "$P" >"$TMP/select.out" 2>&1 <<'PY'
import socket, sys
def session(src, cmds, data=None):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", int(sys.argv[1])))
    s.settimeout(10)
    f = s.makefile("rb")
    def reply():
        while True:
            l = f.readline().decode().strip()
            if l[3:4] != "-":
                return l
    reply()
    for c in cmds:
        s.sendall(c.encode() + b"\r\n")
        print(src, c, "->", reply())
    if data:
        s.sendall(data.encode())
        print(src, "DOT ->", reply())
session("127.0.0.1", ["EHLO client.example", "MAIL FROM:<a@strict.example>",
    "RCPT TO:<u@test.example>", "RSET", "MAIL FROM:<a@b.example>",
    "RCPT TO:<u@test.example>"])
session("127.0.0.1", ["EHLO client.example",
    "MAIL FROM:<spammer@trusted.example>", "RCPT TO:<u@test.example>",
    "DATA"], "Subject: rules bypassed\r\n\r\n.\r\n")
session("127.0.0.3", ["HELO bad.example"])
PY
check "select: the strict chain for its sender domain" \
    grep -q "MAIL FROM:<a@strict.example>" "$TMP/select.out"
check "select: ... refuses the recipient" \
    grep -q "RCPT TO:<u@test.example> -> 550 5.7.1 strict chain" "$TMP/select.out"
check "select: the next transaction of the session is back on main" \
    grep -q "RCPT TO:<u@test.example> -> 250" "$TMP/select.out"
m=$(message_with "Subject: rules bypassed")
check "select bypass for a sender domain: the message is not junked" \
    sh -c '[ -n "$1" ] && ! grep -qx "X-Spam: Yes" "$1"' sh "$m"
check "select bypass for a source: its bad HELO is not refused" \
    grep -q "127.0.0.3 HELO bad.example -> 250" "$TMP/select.out"

# A chain chosen by the listener: connect rules.
python3 - "$PC" >"$TMP/connect.out" 2>&1 <<'PY'
import socket, sys
for src in ("127.0.0.1", "127.0.0.2"):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", int(sys.argv[1])))
    s.settimeout(10)
    print(src, s.makefile("rb").readline().decode().strip())
PY
check "connect: an allowed source is greeted" grep -q "^127.0.0.1 220 " "$TMP/connect.out"
check "connect: another source is refused before any downstream" \
    grep -q "^127.0.0.2 554 5.7.1 not from here" "$TMP/connect.out"

# Reload: a session started before keeps the old chain.
python3 - "$P" "$TMP/go" >"$TMP/old.out" 2>&1 <<'PY' &
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline().decode().strip()
        if l[3:4] != "-":
            print(l, flush=True)
            return l
reply()
s.sendall(b"EHLO client.example\r\n"); reply()
for _ in range(200):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
s.sendall(b"MAIL FROM:<a@b.example>\r\n"); reply()
s.sendall(b"RCPT TO:<nobody-here@test.example>\r\n"); reply()
PY
oldpid=$!
wait_log "$TMP/old.out" "^250"
smtpfd_conf "451 4.3.0 the new chain says no"
check "reload succeeds" ctl reload
new=$(python3 - "$P" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline().decode().strip()
        if l[3:4] != "-":
            return l
reply()
for c in (b"EHLO client.example", b"MAIL FROM:<a@b.example>"):
    s.sendall(c + b"\r\n"); reply()
s.sendall(b"RCPT TO:<nobody-here@test.example>\r\n")
print(reply())
PY
)
check "after the reload a new session runs the new chain" \
    sh -c 'echo "$1" | grep -q "^451 4.3.0 the new chain says no"' sh "$new"
touch "$TMP/go"
wait_status "$oldpid"
check "a session started before the reload keeps the old chain" \
    grep -q "^450 4.2.1 try later" "$TMP/old.out"

check "smtpfd is still running" is_running "$fpid"
check "no sanitizer report" no_sanitizer_report "$TMP/smtpfd.log"
done_testing
