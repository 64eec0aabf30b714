#!/bin/sh
# A child that dies is not restarted: the parent logs which one died and
# how, stops the others, and exits 1.
. "$(dirname "$0")/../lib/common.sh"

for spec in mtad:smtp mtad:queue smtpfd:frontend smtpfd:engine; do
	d=${spec%%:*}
	role=${spec#*:}
	user=nobody
	if is_root; then
		user=_$d
		ensure_user "$user"
	fi
	printf 'user "%s"\nchroot "%s/empty"\n' "$user" "$TMP" >"$TMP/$d.conf"
	[ "$d" = mtad ] && echo "queue path \"$TMP/queue\"" >>"$TMP/$d.conf"
	start_daemon "$d" -f "$TMP/$d.conf"
	pid=$DAEMON_PID
	if ! wait_log "$TMP/$d.log" "$d ready"; then
		not_ok "$d starts" "$(cat "$TMP/$d.log")"
		continue
	fi
	kids=$(children_of "$pid")
	victim=
	for c in $kids; do
		[ "$(ps -o args= -p "$c")" = "$d: $role" ] && victim=$c
	done
	if [ -z "$victim" ]; then
		not_ok "$d: found its $role child"
		continue
	fi
	kill -KILL "$victim"
	wait_status "$pid"
	check "$d exits 1 when $role is killed" [ "$STATUS" -eq 1 ]
	check "$d logs which child died and how" grep -Eq \
	    "$d: parent: lost child $role \\(pid $victim\\): killed by signal 9" \
	    "$TMP/$d.log"
	check "$d does not restart $role" \
	    [ "$(grep -c "started $role" "$TMP/$d.log")" -le 1 ]
	left=
	for k in $kids; do
		is_running "$k" && left="$left $k"
	done
	check "$d: every other child is gone too" [ -z "$left" ]
	mv "$TMP/$d.log" "$TMP/$d-$role.log"
done

done_testing
