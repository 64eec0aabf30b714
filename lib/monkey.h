/*
 * The monkey: in the monkey build (MONKEY=1, -DWITH_MONKEY), strategic calls
 * fail at random, at a seeded rate, so that tests can check that every
 * failure turns into a temporary failure or a retry: never a crash, a
 * hang, a lost or a duplicated message.
 *
 *	if (MONKEY("queue.sync", EIO) || syncfs(fd) == -1)
 *		...handle the failure...
 *
 * The environment of the daemon drives it (children inherit it):
 *	MONKEY_RATE	failures per 10000 calls of every site (default 0;
 *			decimals allowed: "0.5")
 *	MONKEY_SITES	per-site rates (per 10000) that override it:
 *			"io.read=1,io.buffer=0.05"
 *	MONKEY_SEED	the seed (each process mixes in its pid)
 *	MONKEY_STALL_MS	the longest io.stall (default 2000)
 * Without -DWITH_MONKEY, MONKEY() is 0 and the sites cost nothing.
 *
 * The sites (tests/integration/monkey_flood.sh floods mail through
 * mtad -> smtpfd -> mtad while they strike):
 *
 *	site			errno	where, and what must follow
 *	queue.create		ENOSPC	mta/queue_fs.c: MAIL gets 451
 *	queue.message		EIO	queue_fs.c: the message file: 451
 *	queue.envelope		ENOSPC	queue_fs.c: staging an envelope: 451
 *	queue.sync		EIO	queue_fs.c: syncfs of a group commit:
 *					its messages get 451 (SPEC 6)
 *	queue.publish		EIO	queue_fs.c: rename into queue/: 451
 *	queue.delete		EIO	queue_fs.c: removal after delivery:
 *					retried, never delivered twice
 *	queue.read		EIO	queue_fs.c: loading an envelope:
 *					delivery later
 *	queue.update		ENOSPC	queue_fs.c: recording a retry
 *	maildir.write		EDQUOT	mta/mda_maildir.c: temporary failure,
 *					delivered later, once
 *	smtp.session		ENOMEM	mta/smtp_session.c: a new session:
 *					421 to the client
 *	smtp.write		ENOSPC	smtp_session.c: the message content
 *					to its spool file: 451
 *	io.alloc		ENOMEM	lib/io.c io_new(): every owner must
 *					refuse that one connection
 *	io.buffer		ENOMEM	lib/io.c io_write()/io_printf(): the
 *					io reports IO_ERROR on the next turn
 *					of the loop: that connection ends
 *	io.read			ECONNRESET  lib/io.c: a socket read (every
 *					plain socket of both daemons: clients,
 *					smtpf links, downstreams, filters):
 *					that connection ends, the daemon goes on
 *	io.write		EIO	lib/io.c: a socket write: the same
 *	io.stall		-	lib/io.c: latency: a readable socket
 *					is left alone for up to MONKEY_STALL_MS
 *					before it is read, so that the peers'
 *					and our own timeouts fire
 *	ipc.write		ENOBUFS	lib/ipc.c: a sendmsg between two of
 *					a daemon's processes: the kernel
 *					short of memory for now; retried
 *					100 ms later, nothing is lost
 *	downstream.connect	ECONNREFUSED  smtpfd/downstream.c: the
 *					connection to the downstream MTA:
 *					the client gets 421
 *	lua.body		ENOMEM	smtpfd/lua_api.c: the body a Lua
 *					filter holds for on_commit grows: the
 *					message fails (451), the engine lives
 *	dns.lookup		EIO	smtpfd/lua_dns.c: a Lua filter's
 *					dns.lookup() answers nil and an error
 * Table lookups (mta/table.c) are searches in memory that cannot fail
 * at run time: no site.  lib/xmalloc.c is fatal on ENOMEM by design (a
 * process that cannot allocate a few bytes for its own bookkeeping
 * stops, and the parent stops the daemon): no site there either.
 */
#ifndef MONKEY_H
#define MONKEY_H

#include <errno.h>

#ifdef WITH_MONKEY
int		monkey_strikes(const char *);
unsigned int	monkey_stall_ms(void);
#define MONKEY(site, err)	(monkey_strikes(site) ? (errno = (err), 1) : 0)
#define MONKEY_STALL_MS()	monkey_stall_ms()
#else
#define MONKEY(site, err)	0
#define MONKEY_STALL_MS()	0
#endif

#endif
