#!/bin/sh
# Lua filters through real sessions (smtpfd proxy in front of mtad):
# each phase and each decision from a script, a data-line rewriting
# filter and a header-adding on_commit filter in one chain (what mtad
# queued shows both), report hooks and the session table, regexes, DNS
# lookups that suspend the hook (a fake name server on loopback), and
# the failures: a script error, an endless loop, an allocation without
# bound, a bad return value, a script that does not load.  Each ends
# with the filter's policy, file:line in the log, the daemon alive and
# no message queued that the client was told failed.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 10)
P=$1 D=$2 PE=$3 PL=$4 PB=$5 PD=$6 DNSPORT=$7 PS=$8 PC=$9 PG=${10}
SOCK="$TMP/smtpfd.sock"
scenarios="$(dirname "$0")/../scenarios/filters"

downstream_mtad_conf "$D"

# Every phase, every decision.
cat >"$TMP/policy.lua" <<'LUA'
local spammer = regex.compile([[^spammer@(.+)$]], "i")
local seen = 0

function on_connect(s, rdns, src)
	s.store.commands = 0
	if s.addr == "127.0.0.2" then
		return disconnect("554 5.7.1 no service for " .. src)
	end
end
function on_helo(s, name)
	if name == "bad.example" then
		return reject("550 5.7.1 bad helo from Lua")
	end
end
function on_ehlo(s, name)
	if name == "rewrite-me.example" then
		return rewrite("rewritten.example")
	end
	return proceed()
end
function on_mail_from(s, addr)
	s.store.commands = s.store.commands + 1
	local dom = spammer:match(addr)
	if dom then
		log.info("junk from", dom)
		return junk()
	end
	if addr == "evil@b.example" then
		return disconnect("421 4.7.0 go away, says Lua")
	end
	if addr:find("@refused.example", 1, true) then
		return reject(550, "5.7.1 refused domain " .. addr)
	end
	if addr == "told@b.example" then
		return report("a told sender")
	end
	if addr == "alias@b.example" then
		return rewrite("<real@b.example>")
	end
end
function on_rcpt_to(s, addr)
	if addr == "old@test.example" then
		return rewrite("<new@test.example>")
	end
	if addr == "nobody-here@test.example" then
		return reject("450 4.2.1 try later, says Lua")
	end
	if addr == "count@test.example" then
		return reject("550 5.1.1 commands=" .. s.store.commands ..
		    " sender=" .. tostring(s.sender) .. " helo=" ..
		    tostring(s.helo))
	end
end
function on_data(s)
	if s.sender == "nodata@b.example" then
		return reject("554 5.7.1 no data for you, says Lua")
	end
end
function on_rset(s)
	return report("an RSET")
end
function on_noop(s)
	seen = seen + 1
	return report("NOOP number " .. seen)
end
function on_quit(s)
	log.info("quit after", s.store.commands, "MAIL commands")
end
function on_tx_mail(s, msgid, result, addr)
	log.info("tx-mail", msgid, result, addr)
end
function on_link_disconnect(s)
	log.info("disconnect of", s.id)
end
LUA

# The content: a data-line filter, then the message at commit.
cat >"$TMP/body.lua" <<'LUA'
local secret = regex.compile([[secret-(\w+)]])

function on_data_line(s, line)
	if line == "drop this line" then
		return nil
	end
	if line == "split this line" then
		return { "split", "in two" }
	end
	return (secret:gsub(line, "[redacted $1]"))
end
LUA
# (over 64 KB: the script reaches the engine in pieces)
i=0
while [ "$i" -lt 1500 ]; do
	echo "-- padding line $i: the script travels to the engine in pieces"
	i=$((i + 1))
done >>"$TMP/body.lua"
# on_commit, and an on_data_line that is gone after its first batch: the
# lines after it are held for on_commit as they come.
cat >"$TMP/gone.lua" <<'LUA'
function on_data_line(s, line)
	on_data_line = nil
	return line
end
function on_commit(s, m)
	m:add_header("X-Gone", "yes")
end
LUA
cat >"$TMP/stamp.lua" <<'LUA'
function on_commit(s, m)
	local subject = m:header("Subject") or ""
	if subject:find("reject me", 1, true) then
		return reject("550 5.7.1 refused at commit by Lua")
	end
	m:add_header("X-Lua-Filter", "stamped for " .. s.addr)
	m:add_header("X-Lua-Top", "first", "top")
	m:change_header("Subject", "[lua] " .. subject)
	m:remove_header("X-Remove-Me")
	if subject:find("footer", 1, true) then
		m:set_body(m:body() .. "-- \n.a line with a dot\n")
	end
end
LUA

# Failures.
cat >"$TMP/error.lua" <<'LUA'
function on_mail_from(s, addr)
	local t = addr ~= "error@b.example" and {} or nil
	return t.field
end
LUA
cat >"$TMP/loop.lua" <<'LUA'
function on_mail_from(s, addr)
	if addr == "lines@b.example" then
		return
	end
	while true do
		pcall(function() while true do end end)
	end
end
-- Half the limit (100000) a line: each line has a call's limit, though
-- the lines of a batch go through one resume of the script.
function on_data_line(s, line)
	local n = 0
	for i = 1, 25000 do n = n + i end
	if line == "spin forever" then
		while true do end
	end
	if line == "raise an error" then
		error("this line breaks")
	end
	return line
end
LUA
cat >"$TMP/memory.lua" <<'LUA'
function on_rcpt_to(s, addr)
	local t = {}
	for i = 1, addr == "memory@test.example" and 1e9 or 0 do
		t[i] = string.rep("x", 1024) .. i
	end
end
LUA
cat >"$TMP/badreturn.lua" <<'LUA'
function on_helo(s, name)
	return "550 this is not how"
end
LUA
cat >"$TMP/commitfail.lua" <<'LUA'
function on_commit(s, m)
	if m:header("Subject") == "lua failed at commit" then
		error("the commit hook breaks")
	end
	if m:header("Subject") == "lua long line at commit" then
		m:set_body(string.rep("x", 100000) .. "\n")
	end
	if m:header("Subject") == "lua long header at commit" then
		m:add_header("X-Long", string.rep("y", 20000))
	end
end
function on_data_line(s, line)
	if line == "make a bad line" then
		line = nil	-- the argument may be collected meanwhile
		collectgarbage()
		return "two\nlines"
	end
	return line
end
LUA
# Two Lua filters: the first fails on a line, after the lines before it
# went to the second; the second must never work them in a later message.
cat >"$TMP/stale_a.lua" <<'LUA'
function on_data_line(s, line)
	if line == "explode" then
		error("the first filter fails here")
	end
	if line == "drop" then
		return nil
	end
	return line
end
LUA
cat >"$TMP/stale_b.lua" <<'LUA'
function on_data_line(s, line)
	if line == "poison" then
		error("the second filter got a line of a failed message")
	end
	return line
end
LUA
cat >"$TMP/broken.lua" <<'LUA'
function on_helo(s, name
LUA

# DNS through a fake name server.
cat >"$TMP/dns.lua" <<LUA
dns.nameserver("127.0.0.1:$DNSPORT")
function on_connect(s, rdns, src)
	local parts = {}
	for p in s.addr:gmatch("%d+") do table.insert(parts, 1, p) end
	local a, err = dns.lookup(table.concat(parts, ".") .. ".bl.test")
	if a then
		return disconnect("554 5.7.1 listed: " .. a[1])
	end
	log.info("not in bl.test:", err)
end
function on_helo(s, name)
	local a, err = dns.lookup(name)
	if not a then
		return reject("550 5.7.1 " .. name .. ": " .. err)
	end
end
function on_mail_from(s, addr)
	local a = dns.lookup(addr:match("@(.*)") .. ".dbl.test")
	if a then
		return reject("554 5.7.1 listed: " .. a[1])
	end
end
LUA
cat >"$TMP/dns.py" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    q, a = s.recvfrom(512)
    tid, = struct.unpack(">H", q[:2])
    i = 12
    labels = []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode())
        i += 1 + q[i]
    qtype, = struct.unpack(">H", q[i + 1:i + 3])
    question = q[12:i + 5]
    name = ".".join(labels).lower()
    ans = b""
    if qtype == 1 and name in ("spam.example.dbl.test", "known.test"):
        ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + \
            bytes([127, 0, 0, 2])
    hdr = struct.pack(">HHHHHH", tid, 0x8180 | (0 if ans else 3), 1,
        1 if ans else 0, 0, 0)
    s.sendto(hdr + question + ans, a)
PY
python3 "$TMP/dns.py" "$DNSPORT" &
dnspid=$!

cat >"$TMP/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$SOCK"
hostname filter.test.example
filter "policy" lua "$TMP/policy.lua"
filter "body" lua "$TMP/body.lua"
filter "stamp" lua "$TMP/stamp.lua"
chain "main" { "policy", "body", "stamp" }
filter "error" lua "$TMP/error.lua"
filter "loop" lua "$TMP/loop.lua" instructions 100000 on-failure reject
filter "memory" lua "$TMP/memory.lua" memory 4M
filter "badreturn" lua "$TMP/badreturn.lua" on-failure proceed
filter "commitfail" lua "$TMP/commitfail.lua"
filter "broken" lua "$TMP/broken.lua"
chain "bad" { "error", "badreturn", "memory", "commitfail" }
filter "stale_a" lua "$TMP/stale_a.lua"
filter "stale_b" lua "$TMP/stale_b.lua"
chain "stale" { "stale_a", "stale_b" }
chain "commitfirst" { "stamp" }
filter "gone" lua "$TMP/gone.lua"
chain "hookgone" { "gone" }
proxy on 127.0.0.1 port $PC chain "commitfirst" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PG chain "hookgone" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PS chain "stale" forward to smtp://127.0.0.1:$D xclient
filter "dns" lua "$TMP/dns.lua" timeout 10s
proxy on 127.0.0.1 port $P chain "main" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PE chain "bad" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PL chain "loop" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PB chain "broken" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PD chain "dns" forward to smtp://127.0.0.1:$D xclient
CONF

start_daemon mtad -f "$TMP/mtad.conf"
start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/smtpfd.log" "smtpfd ready"; then
	not_ok "mtad and smtpfd start"
	kill "$dnspid"
	done_testing
	exit 1
fi

"$TOOLS/smtpscript" -D HOST=127.0.0.1 -D PORT="$P" -D ERRPORT="$PE" \
    -D LOOPPORT="$PL" -D BROKENPORT="$PB" -D DNSPORT="$PD" -D STALEPORT="$PS" \
    "$scenarios"/lua.smtp "$scenarios"/lua_failures.smtp \
    >"$TMP/script.tap" 2>&1
tap_relay "lua: " <"$TMP/script.tap"

q="$TMP/queue/queue"
message_with() {
	grep -l -x -F -- "$1" "$q"/*/message 2>/dev/null
}
m=$(message_with "Subject: [lua] lua content")
check "on_commit: the Subject is changed" [ -n "$m" ]
m=${m:-/dev/null}
check "on_commit: a header is added at the end" \
    grep -qx "X-Lua-Filter: stamped for 127.0.0.1" "$m"
check "on_commit: a header is added at the top" \
    sh -c 'grep -v -e "^Received:" -e "^[[:space:]]" "$1" | head -n 1 |
    grep -qx "X-Lua-Top: first"' sh "$m"
check "on_commit: a header is removed" sh -c '! grep -q "^X-Remove-Me" "$1"' sh "$m"
check "on_commit: folded headers stay folded" \
    sh -c 'grep -A1 -x "X-Folded: one" "$1" | grep -qx "	two"' sh "$m"
check "data-line: the secret is redacted before on_commit sees it" \
    grep -qxF "a [redacted code] here" "$m"
check "data-line: a line is dropped" sh -c '! grep -q "drop this line" "$1"' sh "$m"
check "data-line: a line becomes two" \
    sh -c 'grep -A1 -x "split" "$1" | grep -qx "in two"' sh "$m"
check "data-line: a line starting with a dot keeps its dot" \
    grep -qx ".dotted" "$m"
m=$(message_with "Subject: [lua] lua nul dot")
check "content: a line cut at its NUL to its stuffing dot did not end the message" \
    sh -c '[ -n "$1" ] && grep -qx "HELP" "$1" && ! grep -q "after a NUL" "$1"' sh "$m"
m=$(message_with "Subject: [lua] lua footer")
check "on_commit: the body is replaced (footer, a dot line)" \
    sh -c '[ -n "$1" ] && grep -qx -- "-- " "$1" && grep -qx ".a line with a dot" "$1"' sh "$m"
m=$(message_with "Subject: [lua] lua junk")
check "junk: the message carries X-Spam: Yes" \
    sh -c '[ -n "$1" ] && grep -qx "X-Spam: Yes" "$1"' sh "$m"
m=$(message_with "Subject: [lua] lua rewritten")
check "rcpt-to rewrite: the envelope has the new recipient" \
    sh -c '[ -n "$1" ] && grep -qx "rcpt: new@test.example" "$(dirname "$1")"/[0-9a-f]*[0-9a-f]' sh "$m"
check "mail-from rewrite: the envelope has the new sender" \
    sh -c '[ -n "$1" ] && grep -qx "sender: real@b.example" "$(dirname "$1")"/[0-9a-f]*[0-9a-f]' sh "$m"
check "commit reject: the message is not queued" \
    [ -z "$(grep -l "lua reject me" "$q"/*/message 2>/dev/null)" ]
check "after a refused commit the session goes on: the next message is queued" \
    [ -n "$(message_with "Subject: [lua] lua after a refused commit")" ]
check "failures: no message of a failed filter is queued" \
    [ -z "$(grep -l "lua failed" "$q"/*/message 2>/dev/null)" ]

# send_message PORT FILE: one message through PORT, its lines (LF-ended,
# not dot-stuffed) in FILE; prints the reply to the final dot.
cat >"$TMP/send.py" <<'PY'
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.settimeout(30)
f = c.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if l[3:4] != b"-":
            return l.decode().strip()
reply()
for cmd in (b"EHLO client.example", b"MAIL FROM:<a@b.example>",
            b"RCPT TO:<u@test.example>", b"DATA"):
    c.sendall(cmd + b"\r\n")
    reply()
with open(sys.argv[2], "rb") as m:
    lines = m.read().split(b"\n")[:-1]
c.sendall(b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                   for l in lines) + b".\r\n")
print(reply())
c.sendall(b"QUIT\r\n")
PY
send_message() {
	python3 "$TMP/send.py" "$1" "$2" 2>&1
}

# A header folded over a million short lines, through on_commit: the
# folds cost their length.  Before, each fold copied the whole value,
# and the engine (every session with it) was stuck for about two
# minutes; the reply's deadline, 30 s, is a hundred times what it takes.
python3 -c 'import sys
sys.stdout.write("Subject: lua folded many\nX-Folded-Many: start\n" +
    "\tx\n" * 1000000 + "\nbody\n")' >"$TMP/folded.msg"
send_message "$P" "$TMP/folded.msg" >"$TMP/folded.out"
check "a header folded over a million lines goes through on_commit" \
    grep -q "^250 " "$TMP/folded.out"
m=$(message_with "Subject: [lua] lua folded many")
check "  with all its folded lines" \
    sh -c '[ -n "$1" ] && [ "$(grep -c "^	x$" "$1")" -eq 1000000 ]' sh "$m"

# An on_commit filter first in its chain takes the client's lines by the
# batch: what it holds and writes out is the message line for line
# (headers folded, the empty line, dotted lines, an empty body line, a
# body line that looks like a header).  Then a message of many batches
# through the filter whose on_data_line is gone after the first.
printf '%s\n' "Subject: commit first" "X-Folded: one" "	two" "" \
    ".dotted" ".." "" "a: not a header" "last" >"$TMP/commitfirst.msg"
python3 -c 'import sys
sys.stdout.write("Subject: gone hook\n" +
    "".join("X-Many-%d: value %d\n" % (i, i) for i in range(3000)) + "\n" +
    "".join("%sline %d of many\n" % ("." if i % 7 == 0 else "", i)
    for i in range(3000)))' >"$TMP/gone.msg"
{
	send_message "$PC" "$TMP/commitfirst.msg"
	send_message "$PG" "$TMP/gone.msg"
} >"$TMP/commitfirst.out"
check "on_commit first in its chain: both messages accepted" \
    [ "$(grep -c "^250 " "$TMP/commitfirst.out")" -eq 2 ]
m=$(message_with "Subject: [lua] commit first")
printf '%s\n' "X-Lua-Top: first" "Subject: [lua] commit first" \
    "X-Folded: one" "	two" "X-Lua-Filter: stamped for 127.0.0.1" "" \
    ".dotted" ".." "" "a: not a header" "last" >"$TMP/commitfirst.want"
check "  the first as sent, with its headers changed, line for line" \
    sh -c '[ -n "$1" ] && sed -n "/^X-Lua-Top:/,\$p" "$1" | cmp -s - "$2"' \
    sh "$m" "$TMP/commitfirst.want"
m=$(message_with "Subject: gone hook")
# (what was sent, X-Gone: at the end of the headers)
awk '!done && /^$/ { print "X-Gone: yes"; done = 1 } { print }' \
    "$TMP/gone.msg" >"$TMP/gone.want"
check "  the second (headers and body over batches after the hook went) whole" \
    sh -c '[ -n "$1" ] && sed -n "/^Subject: gone hook\$/,\$p" "$1" |
    cmp -s - "$2"' sh "$m" "$TMP/gone.want"

L="$TMP/smtpfd.log"
check "report: logged with session, filter and phase" \
    grep -Eq "[0-9a-f]{16} filter policy phase noop report: NOOP number 1" "$L"
check "reject: logged with session, filter and phase" \
    grep -Eq "[0-9a-f]{16} filter policy phase helo reject: 550 5.7.1 bad helo from Lua" "$L"
check "log.info: prefixed with session and filter" \
    grep -Eq "[0-9a-f]{16} filter policy: junk from b.example" "$L"
check "report hooks: on_tx_mail is told the sender" \
    grep -Eq "filter policy: tx-mail [0-9a-f]{8} ok spammer@b.example" "$L"
check "report hooks: on_link_disconnect" \
    grep -Eq "filter policy: disconnect of [0-9a-f]{16}" "$L"
check "script error: logged with filter, phase and file:line" \
    grep -Eq "[0-9a-f]{16} filter error phase mail-from failed: on_mail_from: .*error.lua:3: attempt to index a nil value" "$L"
check "endless loop: the instruction limit, with file:line" \
    grep -Eq "filter loop phase mail-from failed: on_mail_from: .*loop.lua:[0-9]+: instruction limit of 100000 exceeded" "$L"
m=$(message_with "Subject: lua lines each within the limit")
check "data-line: every line of a batch has the instruction limit of its own call" \
    sh -c '[ -n "$1" ] && [ "$(grep -c "^budget line" "$1")" -eq 20 ]' sh "$m"
check "data-line: an endless loop on one line of a batch, the instruction limit, with file:line" \
    grep -Eq "filter loop phase data-line failed: on_data_line: .*loop.lua:1[0-9]: instruction limit of 100000 exceeded" "$L"
check "data-line: an error on one line of a batch, with file:line" \
    grep -Eq "filter loop phase data-line failed: on_data_line: .*loop.lua:1[0-9]: this line breaks" "$L"
check "data-line: a failed message's lines kept by the next filter are not worked in the next message" \
    sh -c '! grep -q "got a line of a failed message" "$1"' sh "$L"
check "data-line: after lines that failed the session goes on" \
    [ -n "$(message_with "Subject: lua lines after the failures")" ]
check "unbounded allocation: the memory limit, with file:line" \
    grep -Eq "filter memory phase rcpt-to failed: on_rcpt_to: .*memory.lua:[0-9]+: memory limit of 4194304 bytes exceeded" "$L"
check "bad return value: logged" \
    grep -Eq "filter badreturn phase helo failed: on_helo: bad return value" "$L"
check "on_data_line returning a line with LF: a bad return value, logged" \
    grep -Eq "filter commitfail phase data-line failed: on_data_line: bad return value: expected a line" "$L"
check "a line over 16 KB out of a filter: its failure, logged (the engine lives on)" \
    grep -Eq "filter commitfail phase data-line failed: it made a line over 16 KB" "$L"
check "on_commit error: logged with file:line" \
    grep -Eq "filter commitfail phase data-line failed: on_commit: .*commitfail.lua:3: the commit hook breaks" "$L"
check "a script that does not load: logged with file:line" \
    grep -Eq "filter broken: .*broken.lua:2: .*expected" "$L"
check "dns: a lookup that found nothing" \
    grep -Eq "filter dns: not in bl.test: name does not exist" "$L"

out=$("$BIN/smtpfctl" -s "$SOCK" show filters 2>&1)
echo "$out" | sed 's/^/# /' | cut -c1-150
check "show filters: the Lua filter is ready and counted" \
    sh -c 'echo "$1" | grep -q "^policy kind=lua state=ready calls=[1-9]"' sh "$out"
check "show filters: the failures are counted" \
    sh -c 'echo "$1" | grep -q "^error kind=lua .* failures=[1-9]"' sh "$out"
check "show filters: a script that does not load is broken" \
    sh -c 'echo "$1" | grep -q "^broken kind=lua state=broken"' sh "$out"

check "smtpfd is still running" is_running "$fpid"
check "no sanitizer report" no_sanitizer_report "$TMP/smtpfd.log"
kill "$dnspid" 2>/dev/null
done_testing
