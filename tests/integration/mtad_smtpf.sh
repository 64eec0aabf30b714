#!/bin/sh
# mtad's side of smtpf (listen on ... filter smtpf) against a fake smtpfd
# (tests/tools/smtpf_fake.py): the greeting and every line pass through
# byte-exact, STARTTLS, a TLS link with mutual verification, round robin
# past a dead endpoint, 421 with no smtpfd, bypass, NUL, a protocol error
# and a killed smtpfd (421, mtad stays up, the link comes back).
. "$(dirname "$0")/../lib/common.sh"

FAKE="$(dirname "$0")/../tools/smtpf_fake.py"
mtad_users
set -- $(free_ports 7)
P1=$1 P2=$2 P3=$3 P4=$4 P5=$5 P6=$6 LINKPORT=$7
if ! make_cert "$TMP"; then
	not_ok "openssl makes a test CA and certificates"
	done_testing
	exit 1
fi
chmod 644 "$TMP/key.pem"

# -n: the grammar and its errors
cat >"$TMP/bad.conf" <<CONF
pki c cert "$TMP/cert.pem"
pki c key "$TMP/key.pem"
listen on 127.0.0.1 port $P1 filter smtpf "http://x"
listen on 127.0.0.1 port $P1 filter smtpf "tls://127.0.0.1:$LINKPORT"
listen on 127.0.0.1 port $P1 filter smtpf "tls://127.0.0.1:$LINKPORT" filter-pki c
listen on 127.0.0.1 port $P1 bypass
listen on 127.0.0.1 port $P1 filter smtpf "tls://localhost:25"
listen on 127.0.0.1 port $P1 filter smtpf "unix:relative"
pki c frob "$TMP/ca.pem"
CONF
out=$("$BIN/mtad" -n -f "$TMP/bad.conf" 2>&1)
for want in "3: smtpf endpoint 'http://x': expected unix:/path or tls://ADDRESS:PORT" \
    "4: smtpf endpoint tls://127.0.0.1:$LINKPORT: tls needs filter-pki" \
    "5: listen on 127.0.0.1: filter-pki c needs a cert, a key and a ca" \
    "6: listen on 127.0.0.1: bypass and filter-pki need filter smtpf" \
    "7: smtpf endpoint 'tls://localhost:25'" \
    "8: smtpf endpoint 'unix:relative'" \
    "9: expected cert, key or ca, got 'frob'"; do
	check "-n: $want" sh -c 'echo "$1" | grep -qF "$2"' sh "$out" "$TMP/bad.conf:$want"
done

{
	mtad_conf_head
	cat <<CONF
pki test cert "$TMP/cert.pem"
pki test key "$TMP/key.pem"
pki test ca "$TMP/ca.pem"
listen on 127.0.0.1 port $P1 tls pki test tag filtered filter smtpf "unix:$TMP/f1.sock"
listen on 127.0.0.1 port $P2 filter smtpf "unix:$TMP/none.sock"
listen on 127.0.0.1 port $P3 filter smtpf "unix:$TMP/none.sock" bypass
listen on 127.0.0.1 port $P4 filter smtpf "unix:$TMP/none.sock" smtpf "unix:$TMP/f3.sock"
listen on 127.0.0.1 port $P5 filter smtpf "tls://127.0.0.1:$LINKPORT" filter-pki test
listen on 127.0.0.1 port $P6 smtps pki test filter smtpf "unix:$TMP/f1.sock"
action "local" mda "exit 75" user nobody
match from any for local action "local"
CONF
} >"$TMP/mtad.conf"
out=$("$BIN/mtad" -n -f "$TMP/mtad.conf" 2>&1)
check "-n accepts filter smtpf, filter-pki, bypass, pki ca" [ "$out" = "configuration OK" ]

mkdir "$TMP/f1" "$TMP/f3" "$TMP/ft"
start_fake() {	# NAME ARGS...: sets FAKE_PID
	name=$1
	shift
	python3 "$FAKE" "$@" "$name" "$TMP/$name" >>"$TMP/$name.log" 2>&1 &
	FAKE_PID=$!
	started_pids="$started_pids $FAKE_PID"
	wait_log "$TMP/$name/log" "^listening" 50
}
start_fake f1 --unix "$TMP/f1.sock"; F1=$FAKE_PID
start_fake f3 --unix "$TMP/f3.sock"
start_fake ft --tls "$LINKPORT" "$TMP/cert.pem" "$TMP/key.pem" "$TMP/ca.pem"

start_daemon mtad -v -f "$TMP/mtad.conf"
pid=$DAEMON_PID
if ! wait_log "$TMP/mtad.log" "mtad ready"; then
	not_ok "mtad starts" "$(cat "$TMP/mtad.log")"
	done_testing
	exit 1
fi
check "the unix link comes up" \
    wait_log "$TMP/mtad.log" "smtpf unix:$TMP/f1.sock: link up \(smtpfd f1, smtpf 1.0\)"
check "the TLS link comes up, both certificates verified" \
    wait_log "$TMP/mtad.log" "smtpf tls://127.0.0.1:$LINKPORT: link up"
check "hello names our host" grep -q "^hello hello|smtpf|1.0|mx.test.example|$" "$TMP/f1/log"

# wait_count FILE REGEX N: until N lines of FILE match REGEX.
wait_count() {
	i=0
	while [ "$i" -lt 100 ]; do
		[ "$(grep -Ec -- "$2" "$1")" -ge "$3" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# client PORT BYTES [OUT]: send BYTES (printf escapes), read until the
# server closes; the replies go to OUT.
client() {
	python3 - "$@" <<'PY'
import socket, sys
port, data = int(sys.argv[1]), sys.argv[2].encode().decode("unicode_escape").encode("latin1")
out = sys.argv[3] if len(sys.argv) > 3 else "/dev/null"
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(10)
s.sendall(data)
if not data.endswith(b"\n"):
    s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
open(out, "wb").write(got)
PY
}

# Byte-exact: bare LF, bare CR, 8-bit, '|', a line over one smtpf line.
long=$(head -c 9000 /dev/zero | tr '\0' x)
client "$P1" "EHLO client.example\r\nECHO a|b|c\r\nbare lf\nbare\rcr\r\n\xe9t\xe9\r\n$long\r\n${long}y\nQUIT\r\n" "$TMP/replies1"
printf '220 f1 ESMTP smtpf_fake\r\n250-f1\r\n250-STARTTLS\r\n250 PIPELINING\r\n250 a|b|c\r\n250 2.0.0 ok\r\n250 2.0.0 ok\r\n250 2.0.0 ok\r\n250 2.0.0 ok\r\n250 2.0.0 ok\r\n221 2.0.0 Bye\r\n' >"$TMP/want1"
check "the client sees smtpfd's lines, and only those" cmp -s "$TMP/replies1" "$TMP/want1"
printf "EHLO client.example\r\nECHO a|b|c\r\nbare lf\nbare\rcr\r\n\351t\351\r\n$long\r\n${long}y\nQUIT\r\n" >"$TMP/sent1"
raw=$(grep -l "client.example" "$TMP"/f1/*.raw | head -n 1)
check "smtpfd gets the client's bytes exactly" cmp -s "$raw" "$TMP/sent1"
sid=$(basename "$raw" .raw)
check "the session id is 16 lower-case hex digits" \
    sh -c 'echo "$1" | grep -Eqx "[0-9a-f]{16}"' sh "$sid"
check "open carries addresses, tag and tls mode" \
    grep -Eq "^open $sid 127.0.0.1 $P1 127.0.0.1 [0-9]+ filtered starttls -$" "$TMP/f1/log"
check "close ends with gone|SID|closed" wait_log "$TMP/f1/log" "^gone $sid closed$" 30
check "a long line travels in pieces" grep -q "^part $sid$" "$TMP/f1/log"

# An unterminated last line arrives as eof.
client "$P1" "EHLO eof.example\r\nNO END" "$TMP/replies2"
raw=$(grep -l "eof.example" "$TMP"/f1/*.raw | head -n 1)
printf 'EHLO eof.example\r\nNO END' >"$TMP/sent2"
check "a last line without its end arrives as it was" cmp -s "$raw" "$TMP/sent2"
sid=$(basename "$raw" .raw)
check "the client leaving is gone|SID|disconnected" \
    wait_log "$TMP/f1/log" "^gone $sid disconnected$" 30

cat >"$TMP/tls.smtp" <<SCRIPT
test "STARTTLS through smtpfd"
connect 127.0.0.1 $P1
expect 220 ~ "smtpf_fake"
send "EHLO client.example"
expect 250 ~ "STARTTLS"
send-raw "STARTTLS\r\nNOOP injected\r\n"
expect 220 2.0.0
starttls ca $TMP/ca.pem
send "EHLO tls.example"
expect 250 ~ "PIPELINING"
send "QUIT"
expect 221
expect-close

test "smtps: TLS first, then open and tls"
connect 127.0.0.1 $P6
starttls ca $TMP/ca.pem
expect 220 ~ "smtpf_fake"
send "QUIT"
expect 221

test "no smtpfd up: 421"
connect 127.0.0.1 $P2
expect 421 4.3.0
expect-close

test "bypass: mtad's own session"
connect 127.0.0.1 $P3
expect 220 ~ "mx.test.example ESMTP mtad"
send "QUIT"
expect 221

test "a dead first endpoint: the second serves"
connect 127.0.0.1 $P4
expect 220 ~ "^220 f3 "
send "QUIT"
expect 221
connect 127.0.0.1 $P4
expect 220 ~ "^220 f3 "
send "QUIT"
expect 221

test "a TLS link"
connect 127.0.0.1 $P5
expect 220 ~ "^220 ft "
send "ECHO over tls"
expect 250 ~ "over tls"
send "QUIT"
expect 221

test "NUL: 500 5.5.2 and closed"
connect 127.0.0.1 $P1
expect 220
send-raw "NO\\0OP\r\n"
expect 500 5.5.2
expect-close
SCRIPT
"$TOOLS/smtpscript" "$TMP/tls.smtp" >"$TMP/tls.tap" 2>&1
tap_relay "" <"$TMP/tls.tap"
check "smtpfd hears tls after STARTTLS" grep -Eq "^tls [0-9a-f]{16} tls\|[0-9a-f]{16}\|TLSv1\.[23]\|" "$TMP/f1/log"
# "NOOP injected" crossed the starttls message: smtpfd must ignore it
# (mtad drops what it still holds when TLS starts, but this was gone).
check "text injected after STARTTLS is not answered" \
    grep -q "^ignored [0-9a-f]* b'NOOP injected'$" "$TMP/f1/log"
check "smtps: open says smtps" grep -Eq "^open [0-9a-f]{16} 127.0.0.1 $P6 .* smtps -$" "$TMP/f1/log"
check "NUL: smtpfd hears gone" grep -Eq "^gone [0-9a-f]{16} nul-in-input$" "$TMP/f1/log"

out=$("$BIN/mtactl" -s "$TMP/mtad.sock" show stats 2>&1)
check "mtactl show stats counts the links" \
    sh -c 'echo "$1" | grep -qx "smtpf.links=4" && echo "$1" | grep -qx "smtpf.links.up=3"' sh "$out"

# A protocol error from smtpfd: the client gets 421, the link comes back.
cat >"$TMP/break.smtp" <<SCRIPT
test "a malformed line from smtpfd: 421"
connect 127.0.0.1 $P1
expect 220
send "BREAK"
expect 421 4.3.0
expect-close
SCRIPT
"$TOOLS/smtpscript" "$TMP/break.smtp" >"$TMP/break.tap" 2>&1
tap_relay "" <"$TMP/break.tap"
check "mtad logs the protocol error" grep -q "smtpf unix:$TMP/f1.sock: protocol error: unknown message" "$TMP/mtad.log"
check "  and tells smtpfd why" wait_log "$TMP/f1/log" "^error error\|-\|unknown message" 30
check "  and the link comes back" \
    wait_count "$TMP/mtad.log" "f1.sock: link up" 2

# The link breaks between the lines of a multi-line reply: mtad held the
# first one, so the client sees a 421 alone, not "250-" continued by 421.
cat >"$TMP/breakmid.smtp" <<SCRIPT
test "a link broken inside a multi-line reply: a clean 421"
connect 127.0.0.1 $P1
expect 220
send "BREAKMID"
expect 421 4.3.0
expect-close
SCRIPT
"$TOOLS/smtpscript" "$TMP/breakmid.smtp" >"$TMP/breakmid.tap" 2>&1
tap_relay "" <"$TMP/breakmid.tap"
check "  and the link comes back again" \
    wait_count "$TMP/mtad.log" "f1.sock: link up" 3

# smtpfd killed in the middle of a session.
cat >"$TMP/kill.smtp" <<SCRIPT
test "smtpfd killed mid-session: 421"
connect 127.0.0.1 $P1
expect 220
send "EHLO client.example"
expect 250
timeout 10
expect 421 4.3.0 ~ "Filtering service unavailable"
expect-close
SCRIPT
"$TOOLS/smtpscript" "$TMP/kill.smtp" >"$TMP/kill.tap" 2>&1 &
spid=$!
wait_log "$TMP/f1/log" "^open .*" 30
sleep 1
kill -KILL "$F1"
wait_status "$spid"
tap_relay "" <"$TMP/kill.tap"
check "mtad logs the lost link" wait_log "$TMP/mtad.log" "f1.sock: link lost: closed by smtpfd" 30
check "mtad is still up" kill -0 "$pid"
client "$P1" "" "$TMP/replies3"
check "with no smtpfd, new clients get 421" grep -q "^421 4.3.0" "$TMP/replies3"
start_fake f1 --unix "$TMP/f1.sock"
check "a restarted smtpfd is found again" \
    wait_count "$TMP/mtad.log" "f1.sock: link up" 4
client "$P1" "QUIT\r\n" "$TMP/replies4"
check "  and serves again" grep -q "^220 f1 ESMTP" "$TMP/replies4"

kill -TERM "$pid"
wait_status "$pid"
check "mtad exits 0" [ "$STATUS" -eq 0 ]
check "no sanitizer report" no_sanitizer_report "$TMP/mtad.log"
done_testing
