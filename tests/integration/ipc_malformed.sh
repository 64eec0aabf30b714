#!/bin/sh
# Every role of both daemons, re-executed as the parent would do it, exits
# on any malformed message from its parent and says why.
. "$(dirname "$0")/../lib/common.sh"

user=nobody
for spec in mtad:smtp mtad:queue smtpfd:frontend smtpfd:engine; do
	d=${spec%%:*}
	role=${spec#*:}
	log="$TMP/$d-$role.log"

	# The statements a parent would ship; the queue needs its directory.
	conf=
	if [ "$d" = mtad ]; then
		mkdir -p "$TMP/queue"
		is_root && chown "$user" "$TMP/queue"
		conf="queue path \"$TMP/queue\""
	fi
	out=$("$TOOLS/ipc_inject" -c "$conf" -u "$user" "$BIN/$d" "$role" \
	    valid 2>"$log")
	check "$d: $role answers READY to a valid configuration" \
	    [ "$out" = "READY
exit 0" ]

	for s in unknown-type wrong-length trailing-bytes ill-typed truncated; do
		out=$("$TOOLS/ipc_inject" -u "$user" "$BIN/$d" "$role" "$s" \
		    2>"$log")
		if [ "$out" = "exit 1" ] &&
		    grep -q "^$d: $role: malformed message from parent: " "$log"
		then
			ok "$d: $role exits on a $s message"
		else
			not_ok "$d: $role exits on a $s message" "got: $out" \
			    "$(cat "$log")"
		fi
		check "$d: $role: no sanitizer report ($s)" \
		    no_sanitizer_report "$log"
	done
done

done_testing
