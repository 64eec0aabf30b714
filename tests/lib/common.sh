# Shared helpers for the integration tests (POSIX sh, TAP output).
#
# Every script gets BIN (the programs under test) and TOOLS (test tools)
# from tests/run, works in its own temporary directory, starts daemons on
# loopback only, waits with bounded loops, and stops what it started by
# PID when it exits, whatever happens.

set -u

: "${BIN:?BIN must name the directory of the programs under test}"
: "${TOOLS:?TOOLS must name the directory of the test tools}"

TEST_NAME=$(basename "$0" .sh)
TMP=$(mktemp -d "/tmp/smtpfd-test-$TEST_NAME.XXXXXX")
chmod 755 "$TMP"
tap_n=0
tap_failed=0
started_pids=

cleanup() {
	for pid in $started_pids; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in $started_pids; do
		wait_gone "$pid" 50 || kill -KILL "$pid" 2>/dev/null
	done
	# The daemons' logs help when something failed.
	if [ "$tap_failed" -ne 0 ]; then
		for f in "$TMP"/*.log; do
			[ -f "$f" ] || continue
			echo "# --- $f"
			sed 's/^/#   /' "$f"
		done
	fi
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ok() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $1"
}

not_ok() {
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $1"
	shift
	for line in "$@"; do
		echo "#   $line"
	done
}

# check DESCRIPTION COMMAND...: ok when the command succeeds.
check() {
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc" "failed: $*"; fi
}

done_testing() {
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
}

is_root() {
	[ "$(id -u)" -eq 0 ]
}

# The unprivileged users the daemons run as, as a package would create.
ensure_user() {
	is_root || return 0
	id "$1" >/dev/null 2>&1 && return 0
	useradd --system --no-create-home --home-dir /nonexistent \
	    --shell /usr/sbin/nologin "$1"
}

# mtad_users: set user (the unprivileged mtad processes) and runas (a
# user for local deliveries): _mtad and nobody as root, ourselves if not.
mtad_users() {
	user=nobody
	runas=$(id -un)
	if is_root; then
		user=_mtad
		runas=nobody
		ensure_user "$user"
	fi
}

# wait_log FILE REGEX [TENTHS]: wait until FILE has a line matching REGEX.
wait_log() {
	i=0
	while [ "$i" -lt "${3:-100}" ]; do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# is_running PID: the process exists and is not a zombie waiting for us.
is_running() {
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# wait_gone PID [TENTHS]: wait until the process has exited.
wait_gone() {
	i=0
	while [ "$i" -lt "${2:-100}" ]; do
		is_running "$1" || return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# start_daemon NAME ARGS...: run $BIN/NAME -d ARGS in the background,
# log to $TMP/NAME.log; sets DAEMON_PID.
start_daemon() {
	name=$1
	shift
	"$BIN/$name" -d "$@" >"$TMP/$name.log" 2>&1 &
	DAEMON_PID=$!
	started_pids="$started_pids $DAEMON_PID"
}

# wait_status PID: wait for a background child of this shell and set
# STATUS to its exit status (bounded: one that does not exit is killed).
wait_status() {
	wait_gone "$1" 100 || kill -KILL "$1" 2>/dev/null
	wait "$1"
	STATUS=$?
}

# children_of PID: the PIDs of the direct children of PID.
children_of() {
	ps -o pid= --ppid "$1" | tr -d ' '
}

# no_sanitizer_report FILE: the sanitizers found nothing.
no_sanitizer_report() {
	! grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1"
}

# free_ports N: print N consecutive free TCP ports on loopback, below
# the kernel's ephemeral range (32768 and up by default), so that no
# outgoing connection of another test can be holding one.
free_ports() {
	tries=0
	while [ "$tries" -lt 50 ]; do
		base=$(( $(od -An -N2 -tu2 /dev/urandom) % 12000 + 20000 ))
		p=$base
		ok_all=1
		while [ "$p" -lt $((base + $1)) ]; do
			if [ -n "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; then
				ok_all=0
				break
			fi
			p=$((p + 1))
		done
		if [ "$ok_all" -eq 1 ]; then
			seq "$base" $((base + $1 - 1))
			return 0
		fi
		tries=$((tries + 1))
	done
	return 1
}

# make_cert DIR: a test CA (DIR/ca.pem) and a certificate for localhost
# signed by it (DIR/cert.pem, DIR/key.pem).
make_cert() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Test CA" \
	    -addext basicConstraints=critical,CA:TRUE \
	    -keyout "$1/ca.key" -out "$1/ca.pem" >/dev/null 2>&1 &&
	openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
	    -keyout "$1/key.pem" -out "$1/req.pem" >/dev/null 2>&1 &&
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$1/ext.cnf" &&
	openssl x509 -req -in "$1/req.pem" -CA "$1/ca.pem" -CAkey "$1/ca.key" \
	    -CAcreateserial -days 2 -extfile "$1/ext.cnf" \
	    -out "$1/cert.pem" >/dev/null 2>&1
}

# tap_relay PREFIX: re-emit a TAP stream's results as our own.
tap_relay() {
	while IFS= read -r line; do
		case "$line" in
		"ok "*)
			ok "$1${line#ok * - }" ;;
		"not ok "*)
			not_ok "$1${line#not ok * - }" ;;
		"#"*)
			echo "$line" ;;
		esac
	done
}

# mtad_conf_head: the lines every test's mtad.conf starts with (its
# user, chroot, queue and control socket in $TMP).
mtad_conf_head() {
	cat <<CONF
user "$user"
chroot "$TMP/empty"
queue path "$TMP/queue"
control socket "$TMP/mtad.sock"
hostname mx.test.example
CONF
}

# downstream_mtad_conf PORT: $TMP/mtad.conf for the MTA behind smtpfd in
# the filter tests: it takes XCLIENT from 127.0.0.1 on PORT and queues
# mail for test.example without delivering it (mda exit 75: deliveries
# wait), so that the tests read what was queued.
downstream_mtad_conf() {
	{
		mtad_conf_head
		cat <<CONF
table trusted { 127.0.0.1 }
table domains { test.example }
listen on 127.0.0.1 port $1 xclient from <trusted>
action "local" mda "exit 75" user nobody
match from any for domain <domains> action "local"
CONF
	} >"$TMP/mtad.conf"
}
