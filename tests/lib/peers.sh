# Private instances of real mail software for tests and benchmarks:
# Postfix, OpenSMTPD and Postfix's smtp-sink, each confined to a
# directory of its own, listening on 127.0.0.1 only.  POSIX sh; source
# it after tests/lib/common.sh.  Everything here needs root (is_root);
# as in every test, run it inside tests/run's private network namespace.
#
# Each peer lives in DIR (create nothing there beforehand; a fresh
# directory under $TMP is best) and every start waits, with a bounded
# loop, until the peer listens on 127.0.0.1:PORT.  The functions return
# non-zero when something fails and then say why in PEER_ERROR; when a
# peer cannot exist here at all (no OpenSMTPD .deb, not root) they
# return 2 and say why in PEER_SKIP, and the test should skip.  Peers
# still running when the script exits are stopped (peers_stop_all runs
# before common.sh's cleanup: a script that sets its own EXIT trap must
# call both).  Internal variables are named pr_*, PEER_* and peer_*.
#
# postfix_start [-f HOST:PORT] [-r PORT2] [-o NAME=VALUE]... DIR PORT [LINE...]
#	A Postfix instance with config_directory DIR/etc, queue_directory
#	DIR/spool, data_directory DIR/data, logging to DIR/maillog
#	(maillog_file; postlogd), smtpd on 127.0.0.1:PORT.  It accepts
#	mail for $PEER_DOMAIN (test.example) from anyone and delivers it
#	with virtual(8), as nobody, to the one maildir DIR/maildir/; it
#	relays nothing and delivers nothing else (error transports).
#	smtpd_peername_lookup = no, so clients are logged as unknown[ADDR];
#	XCLIENT and XFORWARD are allowed from 127.0.0.0/8.
#	  -f HOST:PORT	smtpd_proxy_filter of the PORT listener (Postfix
#			sends XFORWARD to the filter when it offers it)
#	  -r PORT2	a second smtpd on 127.0.0.1:PORT2 without the proxy
#			filter, for the filter to re-inject into
#	  -o NAME=VALUE	a master.cf -o override for the PORT listener
#	  LINE...	extra main.cf lines (appended: they override ours)
#	Log lines (DIR/maillog; "postfix" is myhostname's first label):
#	  Nov 24 23:59:10 postfix postfix/smtpd[3803]: connect from unknown[127.0.0.1]
#	  Nov 24 23:59:10 postfix postfix/smtpd[3803]: A3F0AAA25BD: client=unknown[127.0.0.1]
#	  after XCLIENT ADDR=192.0.2.7 (and NAME=mail.client.example):
#	    ...: A3F0AAA25BD: client=unknown[192.0.2.7]
#	    ...: B7125AA25BD: client=mail.client.example[192.0.2.7]
#	  after XFORWARD ADDR=192.0.2.9 NAME=[UNAVAILABLE] (or NAME=fwd.example):
#	    ...: CA7C4AA25BD: client=unknown[127.0.0.1], orig_client=unknown[192.0.2.9]
#	    ...: DE0DAAA25BD: client=unknown[127.0.0.1], orig_client=fwd.example[192.0.2.9]
#	  with -f, the smtpd in front of the filter has no queue id:
#	    ...: NOQUEUE: client=unknown[127.0.0.1]
#	  and the filter gets "XFORWARD NAME=[UNAVAILABLE] ADDR=127.0.0.1
#	  HELO=... PROTO=ESMTP" when it offers XFORWARD.
#	Delivered messages start with Return-Path:, X-Original-To:,
#	Delivered-To: and Postfix's Received: (which names the XCLIENT
#	address: "from HELO (unknown [192.0.2.7])").
# postfix_stop DIR
#	postfix stop, then SIGKILL to whatever of its process tree is left.
#
# opensmtpd_start DIR PORT [proxy-v2] [LINE...]
#	OpenSMTPD 6.8 (smtpd -d -f DIR/smtpd.conf) unpacked from Debian's
#	.deb (see opensmtpd_tree), in a mount namespace of its own where
#	/var is DIR/var (spool DIR/var/spool/smtpd, chroot
#	DIR/var/lib/opensmtpd/empty), /run is DIR/run, /usr/libexec shows
#	the .deb's opensmtpd helpers over the system's, and resolv.conf
#	says "lookup file" (no DNS: reverse lookups answer at once).
#	Listens on 127.0.0.1:PORT, with PROXY protocol v2 if asked; accepts
#	mail for $PEER_DOMAIN from anyone and delivers it as nobody to the
#	one maildir DIR/maildir/.  LINEs go into smtpd.conf before our
#	action and match lines (tables, filters, earlier match rules).
#	Logs (stderr, -d, plus $OPENSMTPD_FLAGS such as -v or "-T smtp")
#	to DIR/smtpd.log:
#	  info: OpenSMTPD 6.8.0p2 starting
#	  c435fcb7069b69cc smtp connected address=127.0.0.1 host=localhost
#	  c435fcb7069b69cc smtp message msgid=5d667e91 size=393 nrcpt=1 proto=ESMTP
#	  c435fcb7069b69cc smtp envelope evpid=5d667e91cd56c23e from=<a@x.example> to=<bob@test.example>
#	  c435fcb7069b69cc smtp disconnected reason=quit
#	  c435fcb868e014b1 mda delivery evpid=5d667e91cd56c23e from=<a@x.example> to=<bob@test.example> rcpt=<bob@test.example> user=nobody delay=0s result=Ok stat=Delivered
#	  with proxy-v2 and a header claiming 192.0.2.8, two lines with two
#	  different ids (the first is the proxy connection, not the session):
#	  c435fcbabe894a93 smtp event=proxy address=127.0.0.1
#	  c435fcbb42819611 smtp connected address=192.0.2.8 host=<unknown>
#	  and each delivery warns "parent_forward_open: /nonexistent" (nobody's
#	  home has no .forward): harmless.  Banner: opensmtpd.test.example.
# opensmtpd_stop DIR
#	SIGTERM to smtpd, then SIGKILL to whatever of its tree is left.
# opensmtpd_tree
#	Set OPENSMTPD_TREE to the directory where the .deb is unpacked,
#	unpacking it first, and downloading it (apt-get download) if need
#	be, into $SMTPFD_PEERS_CACHE/opensmtpd (/var/cache/smtpfd-tests by
#	default; contrib/deps fetches the .deb there).  Returns 2 with PEER_SKIP set when
#	there is no .deb and none can be downloaded (no network in tests).
#
# smtp_sink_start DIR PORT [SMTP-SINK OPTION...]
#	Postfix's smtp-sink on 127.0.0.1:PORT, running as nobody, dumping
#	every message to DIR/sink/ (one file each, -d; smtp-sink's
#	X-Client-Addr:, X-Helo-Args:, X-Mail-Args:, X-Rcpt-Args: headers
#	first).  It offers XCLIENT and XFORWARD, answers both with 250
#	and ignores them: X-Client-Addr: is always the TCP peer.  Extra
#	options go to smtp-sink (-C: no XCLIENT, -F: no XFORWARD, -v:
#	the conversations in DIR/sink.log).
# smtp_sink_stop DIR
#
# peer_log DIR		print the peer's log file name
# peer_messages DIR	print the names of the messages delivered so far
# peer_wait_messages DIR N [TENTHS]
#			wait until at least N messages have been delivered
# peer_listening PORT	something listens on TCP PORT
# peers_stop_all	stop every peer started and not stopped yet
# peer_smtp PORT [--proxy SRC-ADDR] [--cmd COMMAND]... FROM RCPT
#			one SMTP transaction (python3), transcript on stderr;
#			succeeds when the message is accepted.  --proxy first
#			sends a PROXY v2 header (TCP over IPv4, SRC-ADDR port
#			40000 to 127.0.0.1:PORT); each --cmd (XCLIENT ...,
#			XFORWARD ...) is sent after EHLO and must get 250, or
#			220 and then EHLO is sent again.  Subject: "peer_smtp"
#			and the commands (or SRC-ADDR).
# peer_skip_unless_plain
#	The peers do not depend on the flavour under test: outside the
#	plain build (BIN's build directory nested in another one, like
#	build/asan in build), print a TAP skip and exit.

PEER_DOMAIN=test.example
SMTPFD_PEERS_CACHE=${SMTPFD_PEERS_CACHE:-/var/cache/smtpfd-tests}
PEER_ERROR=
PEER_SKIP=
peer_dirs=

trap 'peers_stop_all; cleanup' EXIT

peer_listening() {
	[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
}

# peer_wait_listen PORT PID|"" [TENTHS]: PORT listens (while PID lives).
peer_wait_listen() {
	pr_i=0
	while [ "$pr_i" -lt "${3:-100}" ]; do
		peer_listening "$1" && return 0
		if [ -n "$2" ] && ! is_running "$2"; then
			return 1
		fi
		sleep 0.1
		pr_i=$((pr_i + 1))
	done
	return 1
}

# peer_tree PID: PID and all its descendants.
peer_tree() {
	[ -n "$1" ] || return 0
	echo "$1"
	for pr_c in $(children_of "$1"); do
		peer_tree "$pr_c"
	done
}

# peer_kill_rest PIDS: SIGKILL those of PIDS still alive.
peer_kill_rest() {
	for pr_p in $1; do
		is_running "$pr_p" && kill -KILL "$pr_p" 2>/dev/null
	done
	return 0
}

peer_forget() {
	peer_rest=
	for peer_d in $peer_dirs; do
		[ "$peer_d" = "$1" ] || peer_rest="$peer_rest $peer_d"
	done
	peer_dirs=$peer_rest
}

peers_stop_all() {
	for peer_stop_d in $peer_dirs; do
		case $(cat "$peer_stop_d/peer.kind" 2>/dev/null) in
		postfix) postfix_stop "$peer_stop_d" ;;
		opensmtpd) opensmtpd_stop "$peer_stop_d" ;;
		smtp-sink) smtp_sink_stop "$peer_stop_d" ;;
		esac
	done
	peer_dirs=
}

# peer_port_free PORT...: nothing listens there yet (else a start
# would wait for someone else's listener).
peer_port_free() {
	for pr_p in "$@"; do
		[ -n "$pr_p" ] || continue
		if peer_listening "$pr_p"; then
			PEER_ERROR="port $pr_p is already in use"
			return 1
		fi
	done
}

peer_need_root() {
	is_root && return 0
	PEER_SKIP="real peers need root (private Postfix, mount namespaces)"
	return 2
}

peer_log() {
	case $(cat "$1/peer.kind" 2>/dev/null) in
	postfix) echo "$1/maillog" ;;
	opensmtpd) echo "$1/smtpd.log" ;;
	smtp-sink) echo "$1/sink.log" ;;
	esac
}

peer_messages() {
	case $(cat "$1/peer.kind" 2>/dev/null) in
	smtp-sink) find "$1/sink" -type f 2>/dev/null ;;
	*) find "$1/maildir/new" "$1/maildir/cur" -type f 2>/dev/null ;;
	esac
}

peer_wait_messages() {
	pr_i=0
	while [ "$pr_i" -lt "${3:-100}" ]; do
		[ "$(peer_messages "$1" | wc -l)" -ge "$2" ] && return 0
		sleep 0.1
		pr_i=$((pr_i + 1))
	done
	return 1
}

# --- Postfix

postfix_start() {
	pf_filter= pf_reinject= pf_opts=
	OPTIND=1
	while getopts f:r:o: pr_opt; do
		case $pr_opt in
		f) pf_filter=$OPTARG ;;
		r) pf_reinject=$OPTARG ;;
		o) pf_opts="$pf_opts -o $OPTARG" ;;
		*) PEER_ERROR="postfix_start: bad option"; return 1 ;;
		esac
	done
	shift $((OPTIND - 1))
	pr_dir=$1 pr_port=$2
	shift 2
	peer_need_root || return
	if ! command -v postfix >/dev/null 2>&1; then
		PEER_SKIP="no postfix (make deps installs it)"
		return 2
	fi
	peer_port_free "$pr_port" "$pf_reinject" || return 1
	[ -n "$pf_filter" ] && pf_opts="$pf_opts -o smtpd_proxy_filter=$pf_filter"
	mkdir -p "$pr_dir/etc" "$pr_dir/spool" "$pr_dir/data" "$pr_dir/maildir" &&
	chmod 755 "$pr_dir" "$pr_dir/etc" "$pr_dir/spool" &&
	chown postfix "$pr_dir/data" && chown nobody:nogroup "$pr_dir/maildir" &&
	touch "$pr_dir/maillog" && chown postfix "$pr_dir/maillog" || {
		PEER_ERROR="postfix_start: cannot prepare $pr_dir"
		return 1
	}
	echo postfix >"$pr_dir/peer.kind"
	cat >"$pr_dir/etc/main.cf" <<CONF
compatibility_level = 3.6
config_directory = $pr_dir/etc
queue_directory = $pr_dir/spool
data_directory = $pr_dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $pr_dir/maillog
maillog_file_prefixes = $pr_dir
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.$PEER_DOMAIN
mydomain = $PEER_DOMAIN
myorigin = \$myhostname
mydestination =
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
local_transport = error:no local delivery here
default_transport = error:no outbound delivery here
relay_transport = error:no outbound delivery here
virtual_mailbox_domains = $PEER_DOMAIN
virtual_mailbox_base = $pr_dir
virtual_mailbox_maps = static:maildir/
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(id -g nobody)
smtpd_peername_lookup = no
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_authorized_xforward_hosts = 127.0.0.0/8
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_banner = \$myhostname ESMTP Postfix
biff = no
CONF
	for pr_line in "$@"; do
		printf '%s\n' "$pr_line" >>"$pr_dir/etc/main.cf"
	done
	{
		echo "127.0.0.1:$pr_port inet n - n - - smtpd$pf_opts"
		[ -n "$pf_reinject" ] &&
		    echo "127.0.0.1:$pf_reinject inet n - n - - smtpd -o smtpd_proxy_filter="
		cat <<CONF
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
CONF
	} >"$pr_dir/etc/master.cf"
	if ! timeout 30 postfix -c "$pr_dir/etc" start >"$pr_dir/start.out" 2>&1; then
		PEER_ERROR="postfix start failed: $(cat "$pr_dir/start.out")"
		postfix_stop "$pr_dir"
		return 1
	fi
	peer_dirs="$peer_dirs $pr_dir"
	if ! peer_wait_listen "$pr_port" "" 100 ||
	    { [ -n "$pf_reinject" ] && ! peer_wait_listen "$pf_reinject" "" 50; }; then
		PEER_ERROR="postfix does not listen on $pr_port: $(cat "$pr_dir/start.out" "$pr_dir/maillog")"
		postfix_stop "$pr_dir"
		return 1
	fi
}

postfix_master_pid() {
	tr -d ' ' <"$1/spool/pid/master.pid" 2>/dev/null
}

postfix_stop() {
	pr_dir=$1
	pr_master=$(postfix_master_pid "$pr_dir")
	pr_pids=$(peer_tree "$pr_master")
	timeout 20 postfix -c "$pr_dir/etc" stop >/dev/null 2>&1
	[ -n "$pr_master" ] && wait_gone "$pr_master" 100
	peer_kill_rest "$pr_pids"
	peer_forget "$pr_dir"
}

# --- OpenSMTPD

opensmtpd_tree() {
	pr_cache=$SMTPFD_PEERS_CACHE/opensmtpd
	OPENSMTPD_TREE=$pr_cache/tree
	[ -x "$pr_cache/tree/usr/sbin/smtpd" ] && return 0
	peer_need_root || return
	mkdir -p "$pr_cache" || {
		PEER_SKIP="cannot create $pr_cache"
		return 2
	}
	pr_deb=$(ls "$pr_cache"/opensmtpd_*.deb 2>/dev/null | tail -n 1)
	if [ -z "$pr_deb" ]; then
		pr_dl=$(mktemp -d "$pr_cache/download.XXXXXX")
		(cd "$pr_dl" && timeout 60 apt-get download -q \
		    -o APT::Sandbox::User=root opensmtpd) >"$pr_dl/out" 2>&1
		pr_deb=$(ls "$pr_dl"/opensmtpd_*.deb 2>/dev/null | tail -n 1)
		if [ -z "$pr_deb" ]; then
			PEER_SKIP="no OpenSMTPD .deb in $pr_cache and apt-get download opensmtpd failed (run make deps with network access): $(tail -n 1 "$pr_dl/out")"
			rm -rf "$pr_dl"
			return 2
		fi
		mv "$pr_deb" "$pr_cache/" && rm -rf "$pr_dl"
		pr_deb=$pr_cache/$(basename "$pr_deb")
	fi
	pr_new=$(mktemp -d "$pr_cache/tree.XXXXXX") || {
		PEER_SKIP="cannot write $pr_cache"
		return 2
	}
	if ! dpkg -x "$pr_deb" "$pr_new" || ! [ -x "$pr_new/usr/sbin/smtpd" ]; then
		rm -rf "$pr_new"
		PEER_SKIP="cannot unpack $pr_deb"
		return 2
	fi
	chmod 755 "$pr_new"
	# Another test may have unpacked it meanwhile: keep the first.
	mv -T "$pr_new" "$pr_cache/tree" 2>/dev/null || rm -rf "$pr_new"
}

opensmtpd_start() {
	pr_dir=$1 pr_port=$2
	shift 2
	pr_proxy=
	if [ "${1:-}" = proxy-v2 ]; then
		pr_proxy=" proxy-v2"
		shift
	fi
	peer_need_root || return
	opensmtpd_tree || return
	peer_port_free "$pr_port" || return 1
	ensure_user opensmtpd
	ensure_user opensmtpq
	mkdir -p "$pr_dir/var/spool" "$pr_dir/var/lib/opensmtpd/empty" "$pr_dir/run" \
	    "$pr_dir/tree" "$pr_dir/maildir" &&
	chmod 755 "$pr_dir" "$pr_dir/var" "$pr_dir/var/spool" "$pr_dir/var/lib" \
	    "$pr_dir/var/lib/opensmtpd" "$pr_dir/var/lib/opensmtpd/empty" &&
	ln -sfn /run "$pr_dir/var/run" &&
	chown nobody:nogroup "$pr_dir/maildir" || {
		PEER_ERROR="opensmtpd_start: cannot prepare $pr_dir"
		return 1
	}
	rm -f "$pr_dir/run/smtpd.sock"
	echo opensmtpd >"$pr_dir/peer.kind"
	printf 'lookup file\n' >"$pr_dir/resolv.conf"
	chmod 644 "$pr_dir/resolv.conf"
	{
		for pr_line in "$@"; do
			printf '%s\n' "$pr_line"
		done
		cat <<CONF
table peer_users { "@" = "nobody" }
listen on 127.0.0.1 port $pr_port$pr_proxy hostname opensmtpd.$PEER_DOMAIN
action "peer_deliver" maildir "$pr_dir/maildir" virtual <peer_users>
match from any for domain "$PEER_DOMAIN" action "peer_deliver"
CONF
	} >"$pr_dir/smtpd.conf"
	# Its own mount namespace: the .deb's tree is bound under DIR before
	# /var (where the cache lives) is replaced by DIR/var.
	unshare -m sh -c '
		set -e
		dir=$1 tree=$2
		mount --make-rprivate /
		mount --bind "$tree" "$dir/tree"
		mount -t overlay -o "lowerdir=$dir/tree/usr/libexec:/usr/libexec" \
		    peer-libexec /usr/libexec
		mount --bind "$dir/var" /var
		mount --bind "$dir/run" /run
		mount --bind "$dir/resolv.conf" /etc/resolv.conf
		shift 2
		exec "$dir/tree/usr/sbin/smtpd" -d "$@" -f "$dir/smtpd.conf"
	' sh "$pr_dir" "$OPENSMTPD_TREE" ${OPENSMTPD_FLAGS:-} >>"$pr_dir/smtpd.log" 2>&1 &
	echo $! >"$pr_dir/smtpd.pid"
	peer_dirs="$peer_dirs $pr_dir"
	if ! peer_wait_listen "$pr_port" "$!" 100; then
		PEER_ERROR="opensmtpd does not listen on $pr_port: $(cat "$pr_dir/smtpd.log")"
		opensmtpd_stop "$pr_dir"
		return 1
	fi
}

opensmtpd_stop() {
	pr_dir=$1
	pr_pid=$(cat "$pr_dir/smtpd.pid" 2>/dev/null)
	if [ -n "$pr_pid" ]; then
		pr_pids=$(peer_tree "$pr_pid")
		kill -TERM "$pr_pid" 2>/dev/null
		wait_gone "$pr_pid" 50
		peer_kill_rest "$pr_pids"
		wait "$pr_pid" 2>/dev/null
		rm -f "$pr_dir/smtpd.pid"
	fi
	peer_forget "$pr_dir"
}

# --- smtp-sink

smtp_sink_start() {
	pr_dir=$1 pr_port=$2
	shift 2
	peer_need_root || return
	if ! command -v smtp-sink >/dev/null 2>&1; then
		PEER_SKIP="no smtp-sink (make deps installs postfix)"
		return 2
	fi
	peer_port_free "$pr_port" || return 1
	mkdir -p "$pr_dir/sink" && chown nobody "$pr_dir/sink" || {
		PEER_ERROR="smtp_sink_start: cannot prepare $pr_dir"
		return 1
	}
	echo smtp-sink >"$pr_dir/peer.kind"
	smtp-sink -u nobody -h "sink.$PEER_DOMAIN" -t 30 "$@" \
	    -d "$pr_dir/sink/%Y%m%d%H%M%S." "127.0.0.1:$pr_port" 64 \
	    >>"$pr_dir/sink.log" 2>&1 &
	echo $! >"$pr_dir/sink.pid"
	peer_dirs="$peer_dirs $pr_dir"
	if ! peer_wait_listen "$pr_port" "$!" 100; then
		PEER_ERROR="smtp-sink does not listen on $pr_port: $(cat "$pr_dir/sink.log")"
		smtp_sink_stop "$pr_dir"
		return 1
	fi
}

smtp_sink_stop() {
	pr_dir=$1
	pr_pid=$(cat "$pr_dir/sink.pid" 2>/dev/null)
	if [ -n "$pr_pid" ]; then
		kill -TERM "$pr_pid" 2>/dev/null
		wait_gone "$pr_pid" 50 || kill -KILL "$pr_pid" 2>/dev/null
		wait "$pr_pid" 2>/dev/null
		rm -f "$pr_dir/sink.pid"
	fi
	peer_forget "$pr_dir"
}

# --- helpers for tests

peer_smtp() {
	timeout 30 python3 - "$@" <<'PY'
import socket, struct, sys
args = sys.argv[1:]
port = int(args.pop(0))
proxy, cmds = None, []
while args and args[0].startswith("--"):
    opt = args.pop(0)
    if opt == "--proxy":
        proxy = args.pop(0)
    elif opt == "--cmd":
        cmds.append(args.pop(0))
mail_from, rcpt = args
s = socket.create_connection(("127.0.0.1", port), timeout=10)
if proxy:
    # signature, version 2 + PROXY, TCP over IPv4, 12 bytes of addresses
    s.sendall(b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) +
              struct.pack("!H", 12) + socket.inet_aton(proxy) +
              socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40000, port))
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        sys.stderr.write("<- " + line.decode(errors="replace"))
        if len(line) < 4 or line[3:4] != b"-":
            return line[:3].decode(errors="replace")
def send(c):
    sys.stderr.write("-> " + c.replace("\r\n", "\n  ") + "\n")
    s.sendall(c.encode() + b"\r\n")
    return reply()
def cmd(c, want):
    code = send(c)
    if code != want:
        sys.stderr.write("expected %s\n" % want)
        sys.exit(1)
if reply() != "220":
    sys.exit(1)
cmd("EHLO client.example", "250")
for c in cmds:
    code = send(c)
    if code == "220":       # XCLIENT: a new greeting, EHLO again
        cmd("EHLO client.example", "250")
    elif code != "250":
        sys.exit(1)
cmd("MAIL FROM:<%s>" % mail_from, "250")
cmd("RCPT TO:<%s>" % rcpt, "250")
cmd("DATA", "354")
cmd("Subject: peer_smtp %s\r\n\r\nhello\r\n." % " ".join(cmds or [proxy or ""]), "250")
cmd("QUIT", "221")
PY
}

peer_skip_unless_plain() {
	pr_flavour=$(dirname "$BIN")
	if [ -d "$(dirname "$pr_flavour")/bin" ]; then
		ok "$TEST_NAME # SKIP runs in the plain build only (this is $pr_flavour)"
		done_testing
		exit 0
	fi
}
