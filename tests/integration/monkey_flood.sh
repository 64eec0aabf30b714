#!/bin/sh
# The monkey: mail floods through mtad -> smtpfd -> mtad (mtad hands its
# clients to smtpfd over smtpf, smtpfd replays them to mtad's back
# listener with XCLIENT), both daemons built with fault injection
# (MONKEY=1, lib/monkey.h): queue writes, syncs, renames, reads and
# deletes, message and maildir writes, session and io allocation,
# socket reads and writes, the downstream connect fail at random, and
# sockets stall so that timeouts fire.  Then the books must balance:
#  - every message that got 250 is delivered exactly once (by the
#    flood's message ids);
#  - every message that did not is accounted for: refused with a
#    4xx/5xx, vanished, aborted with its session, or in doubt (its dot
#    was out and no reply, or a 421, came back: delivered at most once);
#  - nothing refused, vanished or aborted is delivered (except a message
#    whose second sync failed and could not be taken back, SPEC 6: mtad
#    logs it "not confirmed on disk");
#  - no session hangs or breaks the protocol, and the sessions that end
#    without a 421 are no more than the socket faults the monkey
#    injected into mtad (a reset client is a reset client);
#  - a group commit whose sync failed queued nothing as durable (mtad's
#    log, SPEC 6: what ignoring a failed syncfs would break);
#  - both daemons are still up, lost no process, and stop cleanly.
#
# MONKEY_RATE (failures per 10000 calls of the queue, maildir and
# session sites; default 200), MONKEY_MTAD_SITES and MONKEY_SMTPFD_SITES
# (per-site rates, lib/monkey.h), MONKEY_STALL_MS (longest stall),
# MONKEY_SEED (default random), MONKEY_DURATION (seconds of flood,
# default 40: `make check`; `make monkey-soak DURATION=...` for longer).
. "$(dirname "$0")/../lib/common.sh"
LC_ALL=C
export LC_ALL

rate=${MONKEY_RATE:-200}
seed=${MONKEY_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
duration=${MONKEY_DURATION:-40}
stall=${MONKEY_STALL_MS:-5000}
# Socket sites strike per read or write (io.buffer per line), and one
# smtpf link carries every session: their rates are lower than the
# queue's, and so is smtp.write's (per line of content).
mtad_sites=${MONKEY_MTAD_SITES:-smtp.write=0.5,io.read=1,io.write=1,io.buffer=0.05,io.alloc=50,io.stall=5,ipc.write=20}
smtpfd_sites=${MONKEY_SMTPFD_SITES:-io.read=1,io.write=1,io.buffer=0.05,io.alloc=50,io.stall=5,downstream.connect=100,ipc.write=20,lua.body=300}
echo "# monkey rate=$rate/10000 seed=$seed duration=${duration}s" \
    "stall<=${stall}ms"
echo "# mtad sites: $mtad_sites"
echo "# smtpfd sites: $smtpfd_sites"

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 2)
F=$1 B=$2
SOCK="$TMP/smtpf.sock"
if ! make_cert "$TMP"; then
	not_ok "openssl makes a test CA and certificate"
	done_testing
	exit 1
fi
chmod 644 "$TMP/key.pem"
mkdir -p "$TMP/maildir"
chmod 1777 "$TMP/maildir"

# Short timeouts, so that the stalls make them fire.
{
	mtad_conf_head
	cat <<CONF
smtp timeout command 3s
smtp timeout data 3s
pki test cert "$TMP/cert.pem"
pki test key "$TMP/key.pem"
table domains { test.example }
table trusted { 127.0.0.1 }
# the front: every client handed to smtpfd
listen on 127.0.0.1 port $F tls pki test filter smtpf "unix:$SOCK"
# the back: smtpfd replays the sessions here
listen on 127.0.0.1 port $B xclient from <trusted>
action "local" maildir "$TMP/maildir/%{dest}" user $runas
match from any for domain <domains> action "local"
CONF
} >"$TMP/mtad.conf"
# A chain on the way, so that filter I/O meets the monkey too: an exec
# filter with the body through it (its socket is in lib/io.c; when it
# breaks, "proceed" lets the session go on, and a message whose lines
# it held is refused with 451) and a Lua filter on the lines and at
# commit.
cat >"$TMP/pass.lua" <<'LUA'
function on_data_line(session, line) return line end
function on_commit(session, message)
	message:add_header("X-Monkey-Chain", "seen")
end
LUA
cat >"$TMP/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$TMP/smtpfd.sock"
hostname filter.test.example
timeout downstream 3s
filter "noop" exec "$TOOLS/filter_noop -d" timeout 5s on-failure proceed
filter "pass" lua "$TMP/pass.lua" timeout 5s
chain "monkey" { "noop", "pass" }
smtpf on socket "$SOCK" chain "monkey" forward to smtp://127.0.0.1:$B xclient
CONF

# Only the daemons get the monkey: the flood and mtactl are the
# trustworthy witnesses.
MONKEY_RATE=$rate MONKEY_SEED=$seed MONKEY_SITES=$smtpfd_sites \
    MONKEY_STALL_MS=$stall start_daemon smtpfd -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
MONKEY_RATE=$rate MONKEY_SEED=$seed MONKEY_SITES=$mtad_sites \
    MONKEY_STALL_MS=$stall start_daemon mtad -v -f "$TMP/mtad.conf"
mpid=$DAEMON_PID
if ! wait_log "$TMP/smtpfd.log" "smtpfd ready" ||
    ! wait_log "$TMP/mtad.log" "mtad ready" ||
    ! wait_log "$TMP/mtad.log" "link up" 300; then
	not_ok "mtad and smtpfd start under the monkey and link"
	done_testing
	exit 1
fi
ok "mtad and smtpfd start under the monkey and link"

# Rounds of flood until the time is up: plain and STARTTLS, some laggy,
# some pipelining, some vanishing mid-content.
end=$(( $(date +%s) + duration ))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
	round=$((round + 1))
	"$TOOLS/flood" -I "m${seed}r$round" -S $((seed + round)) \
	    -a "$TMP/ca.pem" -n 300 -c 40 -m 2 -s 0.2 -g 0.05 -P 400 -b 2 \
	    -V 0.05 -p 0.3 -l 0.03 -z 2K,64K -T 30 -W 120 \
	    -o "$TMP/accepted.$round" -O "$TMP/others.$round" \
	    127.0.0.1 "$F" >"$TMP/flood.$round.out" 2>"$TMP/flood.$round.err"
	echo "# round $round: exit $?;" \
	    "$(sed -n 's/^messages: //p' "$TMP/flood.$round.out")"
	sed -n 's/^errors: /#   errors: /p' "$TMP/flood.$round.out"
	# What the flood said about its failed sessions (timeouts and
	# protocol errors first: they are the ones that fail the test).
	grep -v -e 'io-error' -e 'closed-without-421' \
	    "$TMP/flood.$round.err" | head -n 5 | sed 's/^/#     /'
	sleep 0.2
done
cat "$TMP"/accepted.* | sort >"$TMP/accepted"
cat "$TMP"/others.* >"$TMP/others"

# How the sessions ended, summed over the rounds.
failures() {
	cat "$TMP"/flood.*.out | sed -n 's/^errors: //p' | tr ',' '\n' |
	    awk -v k="$1" '$1 == k { n += $2 } END { print n + 0 }'
}
for kind in connect no-starttls timeout protocol unfinished; do
	n=$(failures $kind)
	check "no session failed with $kind ($n)" [ "$n" -eq 0 ]
done
broken=$(( $(failures closed-without-421) + $(failures io-error) +
    $(failures tls-handshake) ))
faults=$(grep -Ec "monkey: io\.(read|write|buffer) fails" "$TMP/mtad.log")
# A link lost while clients were in their TLS handshake: nothing can be
# said to them, mtad just closes them (and logs it so).
cut=$(grep -c "smtpf disconnected reason=smtpf-lost-in-handshake" \
    "$TMP/mtad.log")
echo "# sessions ended without 421 (closed, reset, TLS broken): $broken;" \
    "socket faults injected into mtad: $faults; handshakes cut by a" \
    "lost link: $cut"
check "no more sessions break without 421 than mtad had socket faults and handshakes cut" \
    [ "$broken" -le $((faults + cut)) ]

total=$(( $(grep -c . "$TMP/accepted") + $(grep -c . "$TMP/others") ))
accepted=$(grep -c . "$TMP/accepted")
echo "# $total messages in $round rounds: $accepted accepted," \
    "$(grep -c '^refused' "$TMP/others") refused" \
    "($(grep -c '^refused .* 421 dot$' "$TMP/others") with 421 after" \
    "the dot), $(grep -c '^vanished' "$TMP/others") vanished," \
    "$(grep -c '^aborted' "$TMP/others") aborted," \
    "$(grep -c '^indoubt' "$TMP/others") in doubt"
for d in mtad smtpfd; do
	echo "# $d: monkey strikes by site:" $(sed -n \
	    's/.*monkey: \([^ ]*\) fails.*/\1/p' "$TMP/$d.log" | sort |
	    uniq -c | awk '{ printf "%s=%s ", $2, $1 }')
done
echo "# timeouts: mtad $(grep -ci 'timeout' "$TMP/mtad.log")," \
    "smtpfd $(grep -ci 'timeout' "$TMP/smtpfd.log") log lines"
check "the monkey struck in mtad" grep -q "monkey: .* fails" "$TMP/mtad.log"
check "the monkey struck in smtpfd" \
    grep -q "monkey: .* fails" "$TMP/smtpfd.log"
check "some mail still got through ($accepted of $total)" \
    [ "$accepted" -gt 0 ]
check "mtad is still up" is_running "$mpid"
check "smtpfd is still up" is_running "$fpid"
for d in mtad smtpfd; do
	check "$d lost no process" \
	    sh -c '! grep -q "lost child" "$1"' sh "$TMP/$d.log"
done

# Deliveries that met the monkey are retried: push them until done.
i=0
while [ "$i" -lt 90 ] && [ -n "$(ls "$TMP/queue/queue")" ]; do
	"$BIN/mtactl" -s "$TMP/mtad.sock" schedule all >/dev/null 2>&1
	sleep 1
	i=$((i + 1))
done
check "the queue drains" [ -z "$(ls "$TMP/queue/queue")" ]

# What was delivered: "ID MSGID" per file (the message id from the
# file's name, NAME.E<envelope id>.HOST), from the header only.
find "$TMP/maildir" -type f -path '*/new/*' | while read -r f; do
	msgid=$(basename "$f" | sed -n 's/^[0-9]*\.E\([0-9a-f]\{8\}\).*/\1/p')
	id=$(sed -n '/^\r\{0,1\}$/q; s/^X-Flood-Id: \([^\r]*\)\r\{0,1\}$/\1/p' \
	    "$f")
	echo "${id:-none} ${msgid:-none}"
done | sort >"$TMP/delivered"
awk '{ print $1 }' "$TMP/delivered" >"$TMP/delivered.ids"
# In doubt: no reply to the dot, or a 421 after it.
awk '$1 == "indoubt" || ($1 == "refused" && $3 == 421 && $4 == "dot") {
	print $2 }' "$TMP/others" | sort >"$TMP/indoubt"
awk '!($1 == "indoubt" || ($1 == "refused" && $3 == 421 && $4 == "dot")) {
	print $2 }' "$TMP/others" | sort >"$TMP/refused"
# Messages whose commit could not be taken back (SPEC 6).
sed -n 's/.*msgid=\([0-9a-f]*\) queued .*not confirmed on disk.*/\1/p' \
    "$TMP/mtad.log" | sort -u >"$TMP/unsure"
echo "# delivered $(grep -c . "$TMP/delivered"):" \
    "$(comm -12 "$TMP/accepted" "$TMP/delivered.ids" | grep -c .) accepted," \
    "$(comm -12 "$TMP/indoubt" "$TMP/delivered.ids" | grep -c .) in doubt;" \
    "$(grep -c . "$TMP/unsure") commits not confirmed on disk"

dup=$(uniq -d "$TMP/delivered.ids" | head -n 5)
check "no message is delivered twice" [ -z "$dup" ]
[ -n "$dup" ] && echo "#   twice:" $dup
missing=$(comm -23 "$TMP/accepted" "$TMP/delivered.ids" | head -n 5)
check "every message that got 250 is delivered" [ -z "$missing" ]
[ -n "$missing" ] && echo "#   missing:" $missing
extra=$(join "$TMP/refused" "$TMP/delivered" | while read -r id msgid; do
	grep -qx "$msgid" "$TMP/unsure" || echo "$id"
done | head -n 5)
check "nothing refused, vanished or aborted is delivered" [ -z "$extra" ]
[ -n "$extra" ] && echo "#   delivered:" $extra
unknown=$(sort -u "$TMP/accepted" "$TMP/indoubt" "$TMP/refused" |
    comm -13 - "$TMP/delivered.ids" | head -n 5)
check "nothing unknown is delivered" [ -z "$unknown" ]
[ -n "$unknown" ] && echo "#   unknown:" $unknown

# SPEC 6 in the queue's own words (mtad -v): a group commit whose sync
# failed queues nothing but what it could not take back ("not confirmed
# on disk: refused"); a batch's lines end with "group commit of N".
awk '/^mtad: queue: / {
	if (/monkey: queue\.sync fails/)
		failed = 1
	else if (/ queued envelopes=/ && failed && !/not confirmed on disk/)
		print
	else if (/group commit of/)
		failed = 0
}' "$TMP/mtad.log" >"$TMP/unsynced"
check "no group commit whose sync failed queues a message as durable" \
    [ ! -s "$TMP/unsynced" ]
[ -s "$TMP/unsynced" ] && head -n 5 "$TMP/unsynced" | sed 's/^/#   /'

kill -TERM "$fpid"
wait_status "$fpid"
check "smtpfd stops cleanly" [ "$STATUS" -eq 0 ]
kill -TERM "$mpid"
wait_status "$mpid"
check "mtad stops cleanly" [ "$STATUS" -eq 0 ]
done_testing
