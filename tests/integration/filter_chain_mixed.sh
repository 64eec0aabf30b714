#!/bin/sh
# A chain of three filters of three kinds: a built-in rule, an exec
# filter (tests/tools/filter_test.py) and a Lua filter.  Decisions
# compose down the chain: a rewrite by the exec filter is what the Lua
# filter sees and rewrites again; the exec filter's data lines are the
# Lua filter's input; the rule's junk mark reaches the message.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 2)
P=$1 D=$2
# The system python3: the filter runs as the filter user, who may not
# read a python installed in root's home.
py=/usr/bin/python3
top=$(cd "$(dirname "$0")/../.." && pwd)
cp "$top/tests/tools/filter_test.py" "$TMP/filter_test.py"
chmod 755 "$TMP/filter_test.py"

cat >"$TMP/mtad.conf" <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/queue"
control socket "$TMP/mtad.sock"
table trusted { 127.0.0.1 }
table domains { test.example }
listen on 127.0.0.1 port $D xclient from <trusted>
action "local" mda "exit 75" user nobody
match from any for domain <domains> action "local"
CONF
cat >"$TMP/last.lua" <<'LUA'
-- The last of the chain: it sees what the filters before it made.
function on_mail_from(session, address)
	if address:find("^rewritten@") then
		return rewrite("<lua-" .. address .. ">")
	end
end

function on_data_line(session, line)
	if line == "lua me" then
		return "lua did this"
	end
	return line
end

function on_commit(session, message)
	if message:header("X-Test-Filter") then
		message:add_header("X-Lua-Saw-Exec", "yes")
	end
end
LUA
cat >"$TMP/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$TMP/smtpfd.sock"
filter "mark" phase mail-from match mail-from regex "@b\\\\.example\$" junk
filter "exec" exec "$py $TMP/filter_test.py" timeout 10s
filter "lua" lua "$TMP/last.lua"
chain "mixed" { "mark", "exec", "lua" }
proxy on 127.0.0.1 port $P chain "mixed" forward to smtp://127.0.0.1:$D xclient
CONF
start_daemon mtad -f "$TMP/mtad.conf"
start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "smtpfd ready"; then
	not_ok "mtad and smtpfd start"
	done_testing
	exit 1
fi

python3 - "$P" >"$TMP/client.out" 2>&1 <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline().decode().strip()
        if l[3:4] != "-":
            print(l, flush=True)
            return l
reply()
for c in (b"EHLO client.example", b"MAIL FROM:<rewrite@b.example>",
          b"RCPT TO:<u@test.example>", b"DATA"):
    s.sendall(c + b"\r\n")
    reply()
s.sendall(b"Subject: three kinds\r\n\r\nrewrite me\r\nlua me\r\n.\r\n")
reply()
s.sendall(b"QUIT\r\n")
reply()
PY
check "the message through three filters is accepted" \
    grep -q "^250 2.0.0 .* Message accepted" "$TMP/client.out"

m=$(grep -l -x -F "Subject: three kinds" "$TMP"/queue/queue/*/message 2>/dev/null)
check "it is queued" [ -n "$m" ]
env=$(ls "$(dirname "$m")" | grep -v message | head -n 1)
check "rewrites feed the next filter: exec then Lua rewrote the sender" \
    grep -qx "sender: lua-rewritten@b.example" "$(dirname "$m")/$env"
check "the rule's junk mark is in the message" grep -qx "X-Spam: Yes" "$m"
check "the exec filter's data lines: its header" grep -q "^X-Test-Filter: " "$m"
check "the exec filter's data lines: its rewrite" grep -qx "rewritten by the filter" "$m"
check "the Lua filter's data lines" grep -qx "lua did this" "$m"
check "the Lua filter saw the exec filter's output at commit" \
    grep -qx "X-Lua-Saw-Exec: yes" "$m"
check "smtpfd is still running" is_running "$fpid"
check "no sanitizer report" no_sanitizer_report "$TMP/smtpfd.log"
done_testing
