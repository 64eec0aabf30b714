/*
 * Minimal TAP output for the C unit tests: each check prints "ok N - what"
 * or "not ok N - what" with the location; tap_done() prints the plan and
 * returns the exit status.  tests/run counts the lines.
 */
#ifndef TAP_H
#define TAP_H

#include <stdio.h>
#include <string.h>

static int	tap_count;
static int	tap_failed;

static inline int
tap_check(int cond, const char *file, int line, const char *what)
{
	tap_count++;
	if (cond)
		printf("ok %d - %s\n", tap_count, what);
	else {
		tap_failed++;
		printf("not ok %d - %s\n#   at %s:%d\n", tap_count, what, file,
		    line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, what)		tap_check(!!(cond), __FILE__, __LINE__, (what))
#define is_int(a, b, what)	do {					\
	long long _a = (a), _b = (b);					\
	if (!ok(_a == _b, (what)))					\
		printf("#   got %lld, expected %lld\n", _a, _b);	\
} while (0)
#define is_str(a, b, what)	do {					\
	const char *_a = (a), *_b = (b);				\
	if (!ok(_a != NULL && strcmp(_a, _b) == 0, (what)))		\
		printf("#   got \"%s\", expected \"%s\"\n",		\
		    _a ? _a : "(null)", _b);				\
} while (0)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
