#!/bin/sh
# -n checks a configuration: "configuration OK" and 0, or every error as
# file:line: message and 1.  Both daemons share the language.
. "$(dirname "$0")/../lib/common.sh"

for d in mtad smtpfd; do
	cat >"$TMP/good.conf" <<CONF
# a comment
dir = "$TMP/empty"
user "nobody"
chroot \$dir
CONF
	out=$("$BIN/$d" -n -f "$TMP/good.conf" 2>&1)
	st=$?
	if [ "$st" -eq 0 ] && [ "$out" = "configuration OK" ]; then
		ok "$d -n accepts a valid file"
	else
		not_ok "$d -n accepts a valid file" "status $st" "$out"
	fi

	cat >"$TMP/bad.conf" <<CONF
user "nobody"
frobnicate 1
chroot relative/dir
user
CONF
	out=$("$BIN/$d" -n -f "$TMP/bad.conf" 2>&1)
	st=$?
	check "$d -n exits 1 on a broken file" [ "$st" -eq 1 ]
	check "$d names file:line of an unknown statement" \
	    grep -q "^$TMP/bad.conf:2: unknown statement 'frobnicate'\$" <<EOF2
$out
EOF2
	check "$d names file:line of a bad value" \
	    grep -q "^$TMP/bad.conf:3: chroot relative/dir: expected an absolute path\$" <<EOF2
$out
EOF2
	check "$d names file:line of a missing argument" \
	    grep -q "^$TMP/bad.conf:4: expected a user name, got end of line\$" <<EOF2
$out
EOF2
	check "$d does not say OK on a broken file" \
	    sh -c '! grep -q "configuration OK" "$1"' sh /dev/stdin <<EOF2
$out
EOF2

	printf 'user "nobody"\nchroot $dir\n' >"$TMP/macro.conf"
	out=$("$BIN/$d" -n -f "$TMP/macro.conf" 2>&1)
	check "$d: an undefined macro is an error" [ $? -eq 1 ]
	out=$("$BIN/$d" -n -D dir=/var/empty -f "$TMP/macro.conf" 2>&1)
	check "$d: -D defines the macro" [ "$out" = "configuration OK" ]

	out=$("$BIN/$d" -n -f "$TMP/missing.conf" 2>&1)
	st=$?
	check "$d: a missing file is an error naming it" \
	    sh -c '[ "$1" -eq 1 ] && echo "$2" | grep -q "missing.conf: No such file"' \
	    sh "$st" "$out"

	out=$("$BIN/$d" -x 2>&1)
	st=$?
	check "$d: an unknown flag prints usage" \
	    sh -c '[ "$1" -eq 1 ] && echo "$2" | grep -q "^usage: "' sh "$st" "$out"
done

done_testing
