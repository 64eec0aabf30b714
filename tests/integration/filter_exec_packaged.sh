#!/bin/sh
# Filters packaged for OpenSMTPD run unchanged under smtpfd: Debian's
# opensmtpd-filter-dkimsign (protocol 0.7, and 0.6), whose signature
# python3-dkim then verifies, and opensmtpd-filter-rspamd against a real
# rspamd started here on loopback: GTUBE is refused, a clean message
# passes.  The filters are named
# as in OpenSMTPD's configurations ("filter-dkimsign ..."): smtpfd finds
# them in /usr/libexec/opensmtpd/.
. "$(dirname "$0")/../lib/common.sh"

LIBEXEC=/usr/libexec/opensmtpd
if [ ! -x "$LIBEXEC/filter-dkimsign" ] || [ ! -x "$LIBEXEC/filter-rspamd" ] ||
    ! command -v rspamd >/dev/null 2>&1 ||
    ! /usr/bin/python3 -c "import dkim" 2>/dev/null; then
	ok "$TEST_NAME # SKIP needs opensmtpd-filter-dkimsign, opensmtpd-filter-rspamd, rspamd and python3-dkim (make deps)"
	done_testing
	exit 0
fi

mtad_users
ensure_user _smtpfd
fuser=_smtpfd
is_root || fuser=$user
set -- $(free_ports 9)
P=$1 P6=$2 PR=$3 D=$4 R1=$5 R2=$6 R3=$7 R4=$8 PB=$9
SOCK="$TMP/smtpfd.sock"
STEPS="$(dirname "$0")/../tools/smtp_steps.py"
steps() {
	python3 "$STEPS" "$@"
}

# rspamd, private: its own ports, directories and user.
mkdir -p "$TMP/rspamd/db" "$TMP/rspamd/run" "$TMP/rspamd/log" "$TMP/rspamd/local"
sed -e "s/localhost:11333/127.0.0.1:$R1/" -e "s/localhost:11334/127.0.0.1:$R2/" \
    -e "s/localhost:11332/127.0.0.1:$R3/" -e "s/localhost:11335/127.0.0.1:$R4/" \
    /etc/rspamd/rspamd.conf >"$TMP/rspamd/rspamd.conf"
ruser=$(id -un)
is_root && id _rspamd >/dev/null 2>&1 && ruser=_rspamd
is_root && chown -R "$ruser" "$TMP/rspamd"
rspamd -f -u "$ruser" -g "$(id -gn "$ruser")" -c "$TMP/rspamd/rspamd.conf" \
    --var=CONFDIR=/etc/rspamd --var=LOCAL_CONFDIR="$TMP/rspamd/local" \
    --var=DBDIR="$TMP/rspamd/db" --var=RUNDIR="$TMP/rspamd/run" \
    --var=LOGDIR="$TMP/rspamd/log" >"$TMP/rspamd.out" 2>&1 &
rpid=$!
started_pids="$started_pids $rpid"

# A DKIM key, readable by the filter's user.
openssl genrsa -out "$TMP/dkim.key" 2048 >/dev/null 2>&1
openssl rsa -in "$TMP/dkim.key" -pubout -outform DER 2>/dev/null |
    base64 -w0 >"$TMP/dkim.pub"
chmod 644 "$TMP/dkim.key"

downstream_mtad_conf "$D"

cat >"$TMP/smtpfd.conf" <<CONF
user "$fuser"
chroot "$TMP/empty"
control socket "$SOCK"
hostname filter.test.example
filter "dkim" exec "filter-dkimsign -d sign.example -s sel -k $TMP/dkim.key"
filter "dkim6" exec "filter-dkimsign -d sign6.example -s sel -k $TMP/dkim.key" \\
    protocol 0.6
filter "rspamd" exec "filter-rspamd -url http://127.0.0.1:$R1" timeout 20s
chain "both" { "rspamd", "dkim" }
proxy on 127.0.0.1 port $P chain "dkim" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $P6 chain "dkim6" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PR chain "rspamd" forward to smtp://127.0.0.1:$D xclient
proxy on 127.0.0.1 port $PB chain "both" forward to smtp://127.0.0.1:$D xclient
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
check "filter-dkimsign is found in $LIBEXEC" \
    grep -q "filter dkim: started process [0-9]*: filter-dkimsign" "$TMP/smtpfd.log"

q="$TMP/queue/queue"
message_with() {
	grep -l -x -F -- "$1" "$q"/*/message 2>/dev/null
}
# verify FILE: python3-dkim checks the signature, the key from "DNS"
verify() {
	/usr/bin/python3 - "$1" "$(cat "$TMP/dkim.pub")" <<'PY'
import sys, dkim
msg = open(sys.argv[1], "rb").read()
# mtad's Received: came after the signature; it is not signed anyway
def dns(name, timeout=5):
    if name == b"sel._domainkey.sign.example." or \
       name == b"sel._domainkey.sign6.example.":
        return b"v=DKIM1; k=rsa; p=" + sys.argv[2].encode()
    return None
sys.exit(0 if dkim.verify(msg.replace(b"\n", b"\r\n"), dnsfunc=dns) else 1)
PY
}
not_verify() {
	! verify "$1"
}

steps "$P" "EHLO client.example" "MAIL FROM:<a@sign.example>" \
    "RCPT TO:<u@test.example>" "DATA" \
    "=From: a@sign.example\nTo: u@test.example\nSubject: dkim 0.7\n\nSigned.\n..dot\n" \
    >"$TMP/dkim.out"
m=$(message_with "Subject: dkim 0.7")
check "dkimsign (0.7): the message is queued" [ -n "$m" ]
check "dkimsign (0.7): it carries a DKIM-Signature for sign.example" \
    sh -c 'grep -q "^DKIM-Signature: " "$1" && grep -q "d=sign.example;" "$1"' sh "$m"
check "dkimsign (0.7): python3-dkim verifies the signature" verify "$m"
cp "$m" "$TMP/signed.eml"
sed -i 's/^Signed\.$/Changed./' "$TMP/signed.eml"
check "dkimsign: a changed body does not verify (the check checks)" \
    not_verify "$TMP/signed.eml"

steps "$P6" "EHLO client.example" "MAIL FROM:<a@sign6.example>" \
    "RCPT TO:<u@test.example>" "DATA" \
    "=From: a@sign6.example\nTo: u@test.example\nSubject: dkim 0.6\n\nSigned too." \
    >"$TMP/dkim6.out"
m=$(message_with "Subject: dkim 0.6")
check "dkimsign (0.6): the message is queued, signed" \
    sh -c '[ -n "$1" ] && grep -q "d=sign6.example;" "$1"' sh "$m"
check "dkimsign (0.6): python3-dkim verifies the signature" verify "$m"

# rspamd: it takes a few seconds to start.
i=0
while [ -z "$(ss -Htln "sport = :$R1" 2>/dev/null)" ] && [ $i -lt 600 ] &&
    is_running "$rpid"; do
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$(ss -Htln "sport = :$R1" 2>/dev/null)" ]; then
	not_ok "rspamd listens on 127.0.0.1:$R1" "$(tail -5 "$TMP/rspamd/log/rspamd.log" 2>/dev/null)"
	done_testing
	exit 1
fi
ok "rspamd started in $((i / 10)) s"

# GTUBE is not the last line: filter-rspamd sends the message without
# its last newline, and rspamd 3.4 does not see GTUBE on such a line.
GTUBE='XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
CLEAN='From: a@b.example\nTo: u@test.example\nSubject: rspamd clean\nMessage-ID: <clean@b.example>\nDate: Wed, 25 Nov 2026 00:00:00 +0000\n\nHello, a clean message.'
steps "$PR" "EHLO client.example" "MAIL FROM:<a@b.example>" \
    "RCPT TO:<u@test.example>" "DATA" \
    "=From: a@b.example\nTo: u@test.example\nSubject: rspamd gtube\n\n$GTUBE\nbye" \
    >"$TMP/gtube.out"
sed 's/^/# /' "$TMP/gtube.out"
check "rspamd: GTUBE is refused at the end of the message" \
    grep -q "^\. -> 5[0-9][0-9] " "$TMP/gtube.out"
check "rspamd: GTUBE is not queued" [ -z "$(message_with "Subject: rspamd gtube")" ]
steps "$PR" "EHLO client.example" "MAIL FROM:<a@b.example>" \
    "RCPT TO:<u@test.example>" "DATA" "=$CLEAN" >"$TMP/clean.out"
m=$(message_with "Subject: rspamd clean")
check "rspamd: the clean message is queued" [ -n "$m" ]
[ -n "$m" ] && sed -n '1,/^$/p' "$m" | sed 's/^/# /'

# Two messages in one session: filter-rspamd forgets a message at
# tx-reset, which OpenSMTPD reports after every transaction.
steps "$PR" "EHLO client.example" "MAIL FROM:<a@b.example>" \
    "RCPT TO:<u@test.example>" "DATA" \
    "=From: a@b.example\nTo: u@test.example\nSubject: rspamd gtube 2\n\n$GTUBE\nbye" \
    "MAIL FROM:<a@b.example>" "RCPT TO:<u@test.example>" "DATA" \
    "=$(echo "$CLEAN" | sed 's/rspamd clean/rspamd clean 2/')" >"$TMP/two.out"
sed 's/^/# /' "$TMP/two.out"
check "rspamd, two messages in a session: GTUBE refused, not queued" \
    sh -c '[ "$(grep "^\. ->" "$1" | head -n 1 | cut -c6)" = 5 ] &&
    ! grep -l -x "Subject: rspamd gtube 2" "$2"/*/message' sh "$TMP/two.out" "$q"
check "rspamd, two messages in a session: the clean one queued" \
    [ -n "$(message_with "Subject: rspamd clean 2")" ]

# Both in a chain: rspamd's headers, then the signature over them.
steps "$PB" "EHLO client.example" "MAIL FROM:<a@sign.example>" \
    "RCPT TO:<u@test.example>" "DATA" \
    "=From: a@sign.example\nTo: u@test.example\nSubject: chain rspamd dkim\nMessage-ID: <chain@sign.example>\nDate: Wed, 25 Nov 2026 00:00:00 +0000\n\nHello through two filters." \
    >"$TMP/both.out"
m=$(message_with "Subject: chain rspamd dkim")
check "rspamd then dkimsign: queued with a signature" \
    sh -c '[ -n "$1" ] && grep -q "^DKIM-Signature:" "$1"' sh "$m"
check "rspamd then dkimsign: the signature verifies" verify "$m"

check "smtpfd is still running" is_running "$fpid"
check "no filter failed" sh -c '! grep -q "failed:" "$1"' sh "$TMP/smtpfd.log"
check "no sanitizer report" no_sanitizer_report "$TMP/smtpfd.log"
done_testing
