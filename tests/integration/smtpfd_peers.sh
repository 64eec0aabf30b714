#!/bin/sh
# smtpfd's proxy mode with real MTAs behind (and in front of) it:
#  - in front of Postfix (XCLIENT), OpenSMTPD (PROXY v2) and smtp-sink;
#  - as Postfix's smtpd_proxy_filter, re-injecting into a second Postfix
#    smtpd (XFORWARD from the first Postfix, XCLIENT to the second).
# Clients connect from 127.0.0.2, smtpfd from 127.0.0.1: the address the
# downstream logs tells which one it believes.  Plain build only.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/peers.sh"

peer_skip_unless_plain
if ! is_root; then
	ok "$TEST_NAME # SKIP real peers need root"
	done_testing
	exit 0
fi

ensure_user _smtpfd
set -- $(free_ports 10)
PF=$1 OS=$2 SINK=$3 P_PF=$4 P_OS=$5 P_SINK=$6 FRONT=$7 FILTER=$8 REINJECT=$9

# swaks_to PORT RCPT SUBJECT: one message from 127.0.0.2.
swaks_to() {
	timeout 30 swaks --server "127.0.0.1:$1" --local-interface 127.0.0.2 \
	    --from sender@client.example --to "$2" --helo client.example \
	    --header "Subject: $3" --timeout 15 >"$TMP/swaks-$1.out" 2>&1
}

has_message() {
	for m in $(peer_messages "$1"); do
		grep -Eq -- "$2" "$m" && return 0
	done
	return 1
}

cat >"$TMP/smtpfd.conf" <<CONF
user _smtpfd
chroot "$TMP/empty"
control socket "$TMP/smtpfd.sock"
hostname filter.test.example
proxy on 127.0.0.1 port $P_PF forward to smtp://127.0.0.1:$PF xclient
proxy on 127.0.0.1 port $P_OS forward to smtp://127.0.0.1:$OS proxy-v2
proxy on 127.0.0.1 port $P_SINK forward to smtp://127.0.0.1:$SINK no-identity
proxy on 127.0.0.1 port $FILTER accept-identity \\
    forward to smtp://127.0.0.1:$REINJECT xclient
CONF
start_daemon smtpfd -v -f "$TMP/smtpfd.conf"
fpid=$DAEMON_PID
if ! wait_log "$TMP/smtpfd.log" "smtpfd ready"; then
	not_ok "smtpfd starts"
	done_testing
	exit 1
fi

# --- Postfix behind smtpfd, told by XCLIENT
postfix_start "$TMP/pf" "$PF"
case $? in
0)
	log=$(peer_log "$TMP/pf")
	check "postfix behind smtpfd: the message is accepted" \
	    swaks_to "$P_PF" alice@test.example "through to postfix"
	check "postfix behind smtpfd: it is delivered" \
	    peer_wait_messages "$TMP/pf" 1
	check "postfix behind smtpfd: postfix logs the real client 127.0.0.2" \
	    wait_log "$log" 'client=unknown\[127\.0\.0\.2\]'
	check "postfix behind smtpfd: its Received: names the client's HELO" \
	    has_message "$TMP/pf" 'from client.example \(unknown \[127\.0\.0\.2\]\)'
	postfix_stop "$TMP/pf"
	;;
2)	ok "postfix behind smtpfd # SKIP $PEER_SKIP" ;;
*)	not_ok "postfix starts" "$PEER_ERROR" ;;
esac

# --- OpenSMTPD behind smtpfd, told by PROXY v2
opensmtpd_start "$TMP/os" "$OS" proxy-v2
case $? in
0)
	log=$(peer_log "$TMP/os")
	check "opensmtpd behind smtpfd: the message is accepted" \
	    swaks_to "$P_OS" bob@test.example "through to opensmtpd"
	check "opensmtpd behind smtpfd: it is delivered" \
	    peer_wait_messages "$TMP/os" 1
	check "opensmtpd behind smtpfd: it logs the real client 127.0.0.2" \
	    wait_log "$log" 'smtp connected address=127\.0\.0\.2 '
	opensmtpd_stop "$TMP/os"
	;;
2)	ok "opensmtpd behind smtpfd # SKIP $PEER_SKIP" ;;
*)	not_ok "opensmtpd starts" "$PEER_ERROR" ;;
esac

# --- smtp-sink behind smtpfd
smtp_sink_start "$TMP/sink" "$SINK"
case $? in
0)
	check "smtp-sink behind smtpfd: the message is accepted" \
	    swaks_to "$P_SINK" carol@test.example "through to smtp-sink"
	check "smtp-sink behind smtpfd: it is received" \
	    peer_wait_messages "$TMP/sink" 1
	check "smtp-sink behind smtpfd: with its subject" \
	    has_message "$TMP/sink" '^Subject: through to smtp-sink'
	smtp_sink_stop "$TMP/sink"
	;;
*)	not_ok "smtp-sink starts" "$PEER_ERROR" ;;
esac

# --- Postfix -> smtpfd (smtpd_proxy_filter) -> Postfix
postfix_start -f "127.0.0.1:$FILTER" -r "$REINJECT" "$TMP/pff" "$FRONT"
case $? in
0)
	log=$(peer_log "$TMP/pff")
	check "smtpd_proxy_filter: the message is accepted through smtpfd" \
	    swaks_to "$FRONT" dave@test.example "through the proxy filter"
	check "smtpd_proxy_filter: it is delivered" \
	    peer_wait_messages "$TMP/pff" 1
	check "smtpd_proxy_filter: the re-injecting smtpd logs the real client" \
	    wait_log "$log" '[0-9A-F]+: client=unknown\[127\.0\.0\.2\]'
	check "smtpd_proxy_filter: smtpfd took the identity from XFORWARD" \
	    grep -q "smtp identity address=127.0.0.2" "$TMP/smtpfd.log"
	postfix_stop "$TMP/pff"
	;;
2)	ok "smtpd_proxy_filter # SKIP $PEER_SKIP" ;;
*)	not_ok "postfix with a proxy filter starts" "$PEER_ERROR" ;;
esac

check "smtpfd is still running" is_running "$fpid"
done_testing
