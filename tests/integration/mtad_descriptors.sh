#!/bin/sh
# mtad under a low descriptor limit: clients past what the limit holds
# are refused with 421 4.3.2, and the sessions it took all go through
# DATA at once (each holds a message file from the queue) with their
# mail queued.  Before, a session at DATA with no descriptor left made
# the kernel drop the message file on its way from the queue, and the
# smtp process died of a "malformed" message, mtad with it.
. "$(dirname "$0")/../lib/common.sh"

mtad_users
set -- $(free_ports 1)
PORT=$1
{
	mtad_conf_head
	cat <<CONF
table domains { test.example }
listen on 127.0.0.1 port $PORT
action "local" mda "exit 75" user nobody
match from any for domain <domains> action "local"
CONF
} >"$TMP/mtad.conf"

# Soft and hard: mtad cannot raise it.
(ulimit -n 100 && exec "$BIN/mtad" -d -f "$TMP/mtad.conf") \
    >"$TMP/mtad.log" 2>&1 &
pid=$!
started_pids="$started_pids $pid"
if ! wait_log "$TMP/mtad.log" "mtad ready"; then
	not_ok "mtad starts with 100 descriptors" "$(cat "$TMP/mtad.log")"
	done_testing
	exit 1
fi
check "mtad says how many sessions the limit holds" \
    grep -Eq "descriptor limit holds [0-9]+ sessions" "$TMP/mtad.log"

# 120 clients at once; every one that was greeted sends a message, all
# of them into DATA together.
python3 - "$PORT" >"$TMP/clients.out" 2>&1 <<'PY'
import select, socket, sys, time
port = int(sys.argv[1])
conns, greeted, refused = [], [], 0
for i in range(120):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    conns.append(c)
# Each client's first line, within 10 s for them all.
first, deadline = {}, time.time() + 10
while len(first) < len(conns) and time.time() < deadline:
    r, _, _ = select.select([c for c in conns if c not in first], [], [],
        0.5)
    for c in r:
        first[c] = c.recv(512)
for c in conns:
    line = first.get(c, b"")
    if line.startswith(b"220"):
        greeted.append((c, c.makefile("rb")))
    elif line.startswith(b"421 4.3.2"):
        refused += 1
print("greeted", len(greeted))
print("refused", refused)
print("silent", len(conns) - len(first))
def reply(f):
    while True:
        l = f.readline()
        if l[3:4] != b"-":
            return l
for cmd in (b"EHLO client.example", b"MAIL FROM:<a@b.example>",
            b"RCPT TO:<u@test.example>", b"DATA"):
    for c, f in greeted:
        c.sendall(cmd + b"\r\n")
    for c, f in greeted:
        r = reply(f)
        if not r[:1] in (b"2", b"3"):
            print("not taken at", cmd.decode(), repr(r.decode().strip()))
for i, (c, f) in enumerate(greeted):
    c.sendall(b"Subject: fd %d\r\n\r\nbody\r\n.\r\n" % i)
accepted = 0
for c, f in greeted:
    if reply(f).startswith(b"250"):
        accepted += 1
print("accepted", accepted)
PY
sed 's/^/# /' "$TMP/clients.out"
greeted=$(awk '$1 == "greeted" { print $2 }' "$TMP/clients.out")
refused=$(awk '$1 == "refused" { print $2 }' "$TMP/clients.out")
accepted=$(awk '$1 == "accepted" { print $2 }' "$TMP/clients.out")
check "some clients are taken (${greeted:-0})" [ "${greeted:-0}" -gt 0 ]
check "the clients past the limit get 421 4.3.2 (${refused:-0})" \
    [ "${refused:-0}" -gt 0 -a $((${greeted:-0} + ${refused:-0})) -eq 120 ]
check "every client taken gets its message through DATA at once (${accepted:-0})" \
    [ "${accepted:-0}" -eq "${greeted:-0}" ]
check "mtad is still up" is_running "$pid"
check "the refusals are logged with the reason" \
    grep -q "sessions already (the descriptor limit)" "$TMP/mtad.log"
queued=$(grep -l -x "Subject: fd [0-9]*" "$TMP"/queue/queue/*/message \
    2>/dev/null | wc -l)
check "what got 250 is queued ($queued)" [ "$queued" -eq "${accepted:-0}" ]

kill -TERM "$pid"
wait_status "$pid"
check "mtad exits 0" [ "$STATUS" -eq 0 ]
check "no sanitizer report" no_sanitizer_report "$TMP/mtad.log"
done_testing
