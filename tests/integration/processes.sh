#!/bin/sh
# Each daemon runs as a privileged parent and named unprivileged children;
# SIGTERM stops all of them.
. "$(dirname "$0")/../lib/common.sh"

roles_mtad="smtp queue"
roles_smtpfd="frontend engine control"
chrooted_mtad="smtp"
chrooted_smtpfd="frontend engine control"

for d in mtad smtpfd; do
	user=nobody
	if is_root; then
		user=_$d
		ensure_user "$user"
	fi
	cat >"$TMP/$d.conf" <<CONF
user "$user"
chroot "$TMP/empty"
CONF
	[ "$d" = mtad ] && echo "queue path \"$TMP/queue\"" >>"$TMP/$d.conf"
	start_daemon "$d" -f "$TMP/$d.conf"
	pid=$DAEMON_PID
	if ! wait_log "$TMP/$d.log" "$d: parent: $d ready"; then
		not_ok "$d starts and reports ready" "$(cat "$TMP/$d.log")"
		continue
	fi
	ok "$d starts and reports ready"

	check "$d parent is titled '$d: parent'" \
	    [ "$(ps -o args= -p "$pid")" = "$d: parent" ]
	eval roles=\$roles_$d
	eval chrooted=\$chrooted_$d
	for role in $roles; do
		cpid=
		for c in $(children_of "$pid"); do
			[ "$(ps -o args= -p "$c")" = "$d: $role" ] && cpid=$c
		done
		if [ -z "$cpid" ]; then
			not_ok "$d has a child titled '$d: $role'" \
			    "$(ps -o pid,user,args --ppid "$pid")"
			continue
		fi
		ok "$d has a child titled '$d: $role'"
		# smtpfd's engine takes its work by the batch (SPEC 1.1)
		[ "$d:$role" = smtpfd:engine ] &&
		    check "$d: $role is scheduled as SCHED_BATCH" \
		    sh -c 'chrt -p "$1" | grep -q SCHED_BATCH' sh "$cpid"
		if ! is_root; then
			continue
		fi
		check "$d: $role runs as $user" \
		    [ "$(ps -o user= -p "$cpid")" = "$user" ]
		case " $chrooted " in
		*" $role "*)
			check "$d: $role is chrooted to $TMP/empty" \
			    [ "$(readlink "/proc/$cpid/root")" = "$TMP/empty" ]
			;;
		esac
	done
	if is_root; then
		check "$d parent stays root" [ "$(ps -o user= -p "$pid")" = root ]
	else
		check "$d says it cannot drop privileges" \
		    grep -q "not started as root" "$TMP/$d.log"
	fi

	kids=$(children_of "$pid")
	kill -TERM "$pid"
	wait_status "$pid"
	check "$d exits 0 on SIGTERM" [ "$STATUS" -eq 0 ]
	check "$d logs that it stopped" grep -q "$d: parent: $d stopped" \
	    "$TMP/$d.log"
	left=
	for k in $kids; do
		is_running "$k" && left="$left $k"
	done
	check "$d leaves no child behind" [ -z "$left" ]
	check "$d: no sanitizer report" no_sanitizer_report "$TMP/$d.log"
done

done_testing
