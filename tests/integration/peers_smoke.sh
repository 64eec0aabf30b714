#!/bin/sh
# The real peers of tests/lib/peers.sh start, take a message and show the
# client address the way later tests rely on: Postfix with XCLIENT and
# XFORWARD, OpenSMTPD with a PROXY v2 header; smtp-sink dumps messages.
# The peers do not depend on the build flavour: plain build only.
. "$(dirname "$0")/../lib/common.sh"
. "$(dirname "$0")/../lib/peers.sh"

peer_skip_unless_plain
if ! is_root; then
	ok "$TEST_NAME # SKIP real peers need root"
	done_testing
	exit 0
fi

set -- $(free_ports 5)
PF_PORT=$1 OS_PORT=$2 OSP_PORT=$3 SINK_PORT=$4
FROM=sender@client.example

# swaks_to PORT RCPT [SWAKS OPTION...]: one message, quietly.
swaks_to() {
	port=$1 rcpt=$2
	shift 2
	timeout 20 swaks --server "127.0.0.1:$port" --from "$FROM" --to "$rcpt" \
	    --helo client.example --timeout 10 "$@" >"$TMP/swaks.out" 2>&1
}

# quiet FILE COMMAND...: COMMAND with its stderr in $TMP/FILE.
quiet() {
	out=$1
	shift
	"$@" 2>"$TMP/$out"
}

# not_listening PORT
not_listening() {
	! peer_listening "$1"
}

# has_message DIR REGEX: a message delivered by the peer in DIR has a
# line matching REGEX.
has_message() {
	for m in $(peer_messages "$1"); do
		grep -Eq -- "$2" "$m" && return 0
	done
	return 1
}

# only_loopback: no TCP socket listens on anything but 127.0.0.1 or ::1.
only_loopback() {
	ss -Htln | awk '{ print $4 }' |
	    grep -Ev '^(127\.0\.0\.1|\[::1\]):[0-9]+$' >"$TMP/listeners"
	[ ! -s "$TMP/listeners" ]
}

# started NAME STATUS: report a start; skipped peers are skips.
started() {
	case $2 in
	0) ok "$1 starts"; return 0 ;;
	2) ok "$1 starts # SKIP $PEER_SKIP"; return 1 ;;
	*) not_ok "$1 starts" "$PEER_ERROR"; return 1 ;;
	esac
}

# --- Postfix
t0=$(date +%s)
postfix_start "$TMP/pf" "$PF_PORT"
if started "postfix" $?; then
	echo "# postfix started in $(( $(date +%s) - t0 ))s"
	log=$(peer_log "$TMP/pf")
	check "postfix: swaks delivers a message" \
	    swaks_to "$PF_PORT" alice@test.example --header "Subject: plain"
	check "postfix: the message is in its maildir" \
	    peer_wait_messages "$TMP/pf" 1
	check "postfix: logs client=unknown[127.0.0.1]" \
	    wait_log "$log" 'postfix/smtpd\[[0-9]+\]: [0-9A-Za-z]+: client=unknown\[127\.0\.0\.1\]$'
	check "postfix: XCLIENT ADDR=192.0.2.7 is accepted" \
	    swaks_to "$PF_PORT" bob@test.example --header "Subject: xclient" \
	    --xclient "ADDR=192.0.2.7" --xclient-optional
	check "postfix: the XCLIENT message is delivered" \
	    peer_wait_messages "$TMP/pf" 2
	check "postfix: logs client=unknown[192.0.2.7] after XCLIENT" \
	    wait_log "$log" ': client=unknown\[192\.0\.2\.7\]$'
	# swaks has no XFORWARD: speak it by hand.
	check "postfix: XFORWARD ADDR=192.0.2.9 is accepted" \
	    quiet xforward.out peer_smtp "$PF_PORT" \
	    --cmd "XFORWARD ADDR=192.0.2.9 NAME=[UNAVAILABLE]" \
	    "$FROM" dave@test.example
	check "postfix: the XFORWARD message is delivered" \
	    peer_wait_messages "$TMP/pf" 3
	check "postfix: logs orig_client=unknown[192.0.2.9] after XFORWARD" \
	    wait_log "$log" ': client=unknown\[127\.0\.0\.1\], orig_client=unknown\[192\.0\.2\.9\]$'
	check "postfix: the maildir holds the XCLIENT message" \
	    has_message "$TMP/pf" '^Subject: xclient'
	check "postfix: the maildir holds the XFORWARD message" \
	    has_message "$TMP/pf" '^Subject: peer_smtp XFORWARD'

	check "postfix listens on loopback only" only_loopback
	t0=$(date +%s)
	postfix_stop "$TMP/pf"
	check "postfix stops" not_listening "$PF_PORT"
	echo "# postfix stopped in $(( $(date +%s) - t0 ))s"
fi

# --- OpenSMTPD, plain and with PROXY v2
t0=$(date +%s)
opensmtpd_start "$TMP/os" "$OS_PORT"
if started "opensmtpd" $?; then
	echo "# opensmtpd started in $(( $(date +%s) - t0 ))s"
	log=$(peer_log "$TMP/os")
	check "opensmtpd: swaks delivers a message" \
	    swaks_to "$OS_PORT" alice@test.example
	check "opensmtpd: the message is in its maildir" \
	    peer_wait_messages "$TMP/os" 1
	check "opensmtpd: logs smtp connected address=127.0.0.1" \
	    wait_log "$log" '^[0-9a-f]{16} smtp connected address=127\.0\.0\.1 host=localhost$'
	check "opensmtpd listens on loopback only" only_loopback
	opensmtpd_stop "$TMP/os"
	check "opensmtpd stops" not_listening "$OS_PORT"
fi
t0=$(date +%s)
opensmtpd_start "$TMP/osp" "$OSP_PORT" proxy-v2
if started "opensmtpd proxy-v2" $?; then
	echo "# opensmtpd proxy-v2 started in $(( $(date +%s) - t0 ))s"
	log=$(peer_log "$TMP/osp")
	check "opensmtpd proxy-v2: a PROXY v2 header from 192.0.2.8 and a message" \
	    quiet proxy.out peer_smtp "$OSP_PORT" --proxy 192.0.2.8 "$FROM" erin@test.example
	check "opensmtpd proxy-v2: the message is in its maildir" \
	    peer_wait_messages "$TMP/osp" 1
	check "opensmtpd proxy-v2: logs smtp connected address=192.0.2.8" \
	    wait_log "$log" '^[0-9a-f]{16} smtp connected address=192\.0\.2\.8 host=<unknown>$'
	check "opensmtpd proxy-v2: logs the proxy's own address" \
	    wait_log "$log" '^[0-9a-f]{16} smtp event=proxy address=127\.0\.0\.1$'
	opensmtpd_stop "$TMP/osp"
fi

# --- smtp-sink
smtp_sink_start "$TMP/sink" "$SINK_PORT"
if started "smtp-sink" $?; then
	check "smtp-sink: swaks delivers a message" \
	    swaks_to "$SINK_PORT" frank@test.example
	# It answers XCLIENT and XFORWARD with 250 and ignores them.
	check "smtp-sink: XCLIENT ADDR=192.0.2.6 gets 250" \
	    quiet sink.out peer_smtp "$SINK_PORT" \
	    --cmd "XCLIENT ADDR=192.0.2.6" "$FROM" gina@test.example
	check "smtp-sink: both messages are dumped" \
	    peer_wait_messages "$TMP/sink" 2
	check "smtp-sink: the dump has the envelope" \
	    has_message "$TMP/sink" '^X-Rcpt-Args: <gina@test\.example>$'
	check "smtp-sink: X-Client-Addr is the TCP peer, whatever XCLIENT said" \
	    has_message "$TMP/sink" '^X-Client-Addr: 127\.0\.0\.1$'
	check "smtp-sink listens on loopback only" only_loopback
	smtp_sink_stop "$TMP/sink"
	check "smtp-sink stops" not_listening "$SINK_PORT"
fi

done_testing
