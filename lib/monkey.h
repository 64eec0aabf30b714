/*
 * The monkey: in the monkey build (MONKEY=1, -DWITH_MONKEY), strategic calls
 * fail at random, at a seeded rate, so that tests can check that every
 * failure turns into a temporary failure or a retry: never a crash, a
 * hang, a lost or a duplicated message.
 *
 *	if (MONKEY("queue.sync", EIO) || syncfs(fd) == -1)
 *		...handle the failure...
 *
 * MONKEY_RATE (failures per 10000 calls, default 0) and MONKEY_SEED (the
 * environment of the daemon) drive it; without -DWITH_MONKEY, MONKEY() is 0.
 */
#ifndef MONKEY_H
#define MONKEY_H

#include <errno.h>

#ifdef WITH_MONKEY
int	monkey_strikes(const char *);
#define MONKEY(site, err)	(monkey_strikes(site) ? (errno = (err), 1) : 0)
#else
#define MONKEY(site, err)	0
#endif

#endif
