/*
 * Buffered socket I/O over libevent, plain or TLS (see io.h).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tls.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "monkey.h"

#define IO_READ_CHUNK	(64 * 1024)
#define IO_LINGER_MS	2000	/* how long a closed socket drains */
#define IO_LINGER_MAX	256	/* sockets draining at once, at most */

/*
 * Writes are not made at once: an io with new output joins the flush
 * queue, and once the callbacks of this turn of the event loop are done
 * the queue is written out, one write per io for all it got, and only
 * an io whose peer does not take everything waits for writability.  A
 * relay that writes a line at a time thus costs neither a system call
 * per line nor an epoll_ctl pair per reply.
 */
static TAILQ_HEAD(, io)	io_flushq = TAILQ_HEAD_INITIALIZER(io_flushq);
static struct event	ev_flush;
static int		ev_flush_set;

static void	io_reload(struct io *);
static void	io_rearm_timeout(struct io *);
static void	io_flush(int, short, void *);
static void	io_replay(int, short, void *);
static void	io_unstall(int, short, void *);
static void	io_fail(struct io *, const char *);
static void	io_dispatch(int, short, void *);
static int	io_callback(struct io *, enum io_event);
static int	io_do_handshake(struct io *);
static int	io_do_write(struct io *);
static int	io_do_read(struct io *);
static void	io_close(struct io *);
static void	io_linger_read(int, short, void *);

struct io *
io_new(int fd, void (*cb)(struct io *, enum io_event, void *), void *arg)
{
	struct io	*io;

	if (MONKEY("io.alloc", ENOMEM) ||
	    (io = calloc(1, sizeof(*io))) == NULL)
		return NULL;
	io->fd = fd;
	io->cb = cb;
	io->arg = arg;
	if ((io->in = evbuffer_new()) == NULL ||
	    (io->out = evbuffer_new()) == NULL) {
		if (io->in)
			evbuffer_free(io->in);
		free(io);
		return NULL;
	}
	event_set(&io->ev, fd, 0, io_dispatch, io);
	evtimer_set(&io->ev_replay, io_replay, io);
	evtimer_set(&io->ev_stall, io_unstall, io);
	if (!ev_flush_set) {
		evtimer_set(&ev_flush, io_flush, NULL);
		ev_flush_set = 1;
	}
	io->armed = -1;
	io_reload(io);
	return io;
}

/* Closes the descriptor too.  Safe to call from the io's own callback. */
void
io_free(struct io *io)
{
	if (io == NULL)
		return;
	event_del(&io->ev);
	evtimer_del(&io->ev_replay);
	evtimer_del(&io->ev_stall);
	if (io->flush_queued) {
		TAILQ_REMOVE(&io_flushq, io, flush_entry);
		io->flush_queued = 0;
	}
	if (io->in_callback) {
		io->freed = 1;
		return;
	}
	io_close(io);
	evbuffer_free(io->in);
	evbuffer_free(io->out);
	free(io);
}

/*
 * io_free(), closing gently.  A socket closed with input unread makes
 * the kernel answer with a reset, and a reset can make the peer's
 * kernel drop what it had not yet read: the last reply, the 421 that
 * says why.  So the final reply is followed by a FIN, and what the peer
 * still sends is read and dropped until it closes too or IO_LINGER_MS
 * pass.  Past IO_LINGER_MAX draining sockets, a socket closes at once.
 */
void
io_linger(struct io *io)
{
	if (io == NULL)
		return;
	io->linger = 1;
	io_free(io);
}

struct io_lingering {
	int		 fd;
	struct event	 ev;
	struct timespec	 since;		/* a peer that trickles ends too */
};
static int	nlinger;

static void
io_close(struct io *io)
{
	struct io_lingering	*l;
	struct timeval		 tv = { IO_LINGER_MS / 1000,
				    (IO_LINGER_MS % 1000) * 1000 };

	if (io->tls) {
		tls_close(io->tls);	/* best effort: the close_notify */
		tls_free(io->tls);
	}
	if (io->fd == -1)
		return;
	if (!io->linger || io->eof || nlinger >= IO_LINGER_MAX ||
	    (l = malloc(sizeof(*l))) == NULL) {
		close(io->fd);
		return;
	}
	if (shutdown(io->fd, SHUT_WR) == -1) {	/* not a socket, or reset */
		free(l);
		close(io->fd);
		return;
	}
	l->fd = io->fd;
	clock_gettime(CLOCK_MONOTONIC, &l->since);
	event_set(&l->ev, l->fd, EV_READ | EV_PERSIST, io_linger_read, l);
	event_add(&l->ev, &tv);
	nlinger++;
}

static void
io_linger_read(int fd, short event, void *arg)
{
	struct io_lingering	*l = arg;
	struct timespec		 now;
	char			 buf[16384];
	ssize_t			 n;

	if (event & EV_READ) {
		n = read(fd, buf, sizeof(buf));
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((n > 0 || (n == -1 && (errno == EAGAIN ||
		    errno == EINTR))) && (now.tv_sec - l->since.tv_sec) *
		    1000 + (now.tv_nsec - l->since.tv_nsec) / 1000000 <
		    IO_LINGER_MS)
			return;
	}
	/* the peer closed, or reset, or took too long */
	event_del(&l->ev);
	close(l->fd);
	free(l);
	nlinger--;
}

void
io_set_timeout(struct io *io, int ms)
{
	io->timeout_ms = ms;
	io->armed = -1;		/* register again with the new timeout */
	io_reload(io);
}

/*
 * Pausing is lazy: the read event stays registered until input comes
 * while paused, and only then is it taken off.  A session that pauses
 * its client for every command, while the client waits for the reply
 * and sends nothing, thus costs no epoll_ctl(2) pair per command.
 */
void
io_pause(struct io *io)
{
	io->paused = 1;
	io->pause_lazy = io->armed != -1 && (io->armed & EV_READ);
	io_reload(io);
}

/*
 * Resuming also replays input that is already buffered: the peer may have
 * sent everything and be waiting.  From inside a callback, the replay is
 * deferred to the next turn of the event loop.
 */
void
io_resume(struct io *io)
{
	struct timeval	 now = { 0, 0 };

	io->paused = 0;
	if (io->pause_lazy) {
		/* Still registered: the idle timeout starts over now, as
		 * it would have with a fresh registration. */
		io->pause_lazy = 0;
		io_rearm_timeout(io);
	}
	io_reload(io);
	if (evbuffer_get_length(io->in) == 0)
		return;
	if (io->in_callback)
		evtimer_add(&io->ev_replay, &now);
	else
		io_callback(io, IO_DATAIN);
}

static void
io_replay(int fd, short event, void *arg)
{
	struct io	*io = arg;

	(void)fd;
	(void)event;
	if (io->fail_pending) {
		io->fail_pending = 0;
		io_callback(io, IO_ERROR);
		return;
	}
	if (!io->paused && evbuffer_get_length(io->in) > 0)
		io_callback(io, IO_DATAIN);
}

/* Output that cannot be buffered: the owner hears of it next turn. */
static void
io_fail(struct io *io, const char *why)
{
	struct timeval	 now = { 0, 0 };

	if (io->fail_pending || io->freed)
		return;
	snprintf(io->error, sizeof(io->error), "%s", why);
	io->fail_pending = 1;
	evtimer_add(&io->ev_replay, &now);
}

/*
 * The monkey's io.stall: a readable io is left alone for a while (its
 * data waits in the socket), then read as usual.
 */
static int
io_stall(struct io *io)
{
	struct timeval	 tv;
	unsigned int	 ms;

	if (!MONKEY("io.stall", 0))
		return 0;
	ms = MONKEY_STALL_MS();
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	io->stalled = 1;
	evtimer_add(&io->ev_stall, &tv);
	return 1;
}

static void
io_unstall(int fd, short event, void *arg)
{
	struct io	*io = arg;

	(void)fd;
	(void)event;
	io->stalled = 0;
	io_reload(io);
}

/* New output: written at the end of this turn of the loop. */
static void
io_queue_flush(struct io *io)
{
	if (io->flush_queued || io->freed || (io->armed & EV_WRITE))
		return;
	if (io->armed == -1 || io->tls_handshaking) {
		io_reload(io);
		return;
	}
	TAILQ_INSERT_TAIL(&io_flushq, io, flush_entry);
	io->flush_queued = 1;
	event_active(&ev_flush, EV_TIMEOUT, 1);
}

static void
io_flush(int fd, short event, void *arg)
{
	struct io	*io;

	(void)fd;
	(void)event;
	(void)arg;
	while ((io = TAILQ_FIRST(&io_flushq)) != NULL) {
		TAILQ_REMOVE(&io_flushq, io, flush_entry);
		io->flush_queued = 0;
		if (evbuffer_get_length(io->out) == 0)
			continue;
		if (io_do_write(io))
			io_reload(io);
	}
}

int
io_write(struct io *io, const void *p, size_t len)
{
	int	 r;

	/* After a failure nothing more: no line may go out half. */
	if (io->fail_pending)
		return -1;
	r = MONKEY("io.buffer", ENOMEM) ? -1 : evbuffer_add(io->out, p, len);
	if (r == -1)
		io_fail(io, "out of memory");
	io_queue_flush(io);
	return r;
}

int
io_printf(struct io *io, const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	if (io->fail_pending)
		return -1;
	va_start(ap, fmt);
	r = MONKEY("io.buffer", ENOMEM) ? -1 :
	    evbuffer_add_vprintf(io->out, fmt, ap);
	va_end(ap);
	if (r == -1)
		io_fail(io, "out of memory");
	io_queue_flush(io);
	return r;
}

size_t
io_queued(struct io *io)
{
	return evbuffer_get_length(io->out);
}

const char *
io_error(struct io *io)
{
	return io->error;
}

int
io_start_tls_server(struct io *io, struct tls *ctx)
{
	if (tls_accept_socket(ctx, &io->tls, io->fd) == -1) {
		snprintf(io->error, sizeof(io->error), "%s", tls_error(ctx));
		return -1;
	}
	io->tls_handshaking = 1;
	io_reload(io);
	return 0;
}

int
io_start_tls_client(struct io *io, struct tls *ctx, const char *servername)
{
	if (tls_connect_socket(ctx, io->fd, servername) == -1) {
		snprintf(io->error, sizeof(io->error), "%s", tls_error(ctx));
		return -1;
	}
	io->tls = ctx;
	io->tls_handshaking = 1;
	/* The client speaks first: wait to write the ClientHello, not to
	 * read. */
	io->tls_want = TLS_WANT_POLLOUT;
	io_reload(io);
	return 0;
}

/* "TLSv1.3:TLS_AES_256_GCM_SHA384:256", the OpenSMTPD report format. */
const char *
io_tls_info(struct io *io, char *buf, size_t size)
{
	if (io->tls == NULL || io->tls_handshaking)
		return NULL;
	snprintf(buf, size, "%s:%s:%d", tls_conn_version(io->tls),
	    tls_conn_cipher(io->tls), tls_conn_cipher_strength(io->tls));
	return buf;
}

/*
 * Register the events the io needs now.  They are persistent, so a busy
 * io costs no system call here: only a change of the set (output
 * appears or drains, reading pauses or resumes, a TLS handshake turns
 * around) registers again.  A persistent event's timeout starts over
 * whenever the event fires, which makes it an idle timeout.
 */
static void
io_reload(struct io *io)
{
	short		 events = 0;

	if (io->freed)
		return;
	if (io->tls_handshaking)
		events = io->tls_want == TLS_WANT_POLLOUT ? EV_WRITE : EV_READ;
	else {
		if ((!io->paused || io->pause_lazy) && !io->eof &&
		    !io->stalled)
			events |= EV_READ;
		/* Queued output is the flush's to try first. */
		if (evbuffer_get_length(io->out) > 0 && !io->flush_queued)
			events |= EV_WRITE;
	}
	if (events == io->armed)
		return;
	event_del(&io->ev);
	io->armed = events;
	if (events == 0)
		return;
	event_set(&io->ev, io->fd, events | EV_PERSIST, io_dispatch, io);
	if (io->timeout_ms > 0)
		io_rearm_timeout(io);
	else
		event_add(&io->ev, NULL);
}

/* On a registered event, event_add() only moves the timeout. */
static void
io_rearm_timeout(struct io *io)
{
	struct timeval	 tv;

	if (io->freed || io->timeout_ms <= 0 || io->armed <= 0)
		return;
	tv.tv_sec = io->timeout_ms / 1000;
	tv.tv_usec = (io->timeout_ms % 1000) * 1000;
	event_add(&io->ev, &tv);
}

/* Returns 0 when the io is gone (freed by its owner). */
static int
io_callback(struct io *io, enum io_event evt)
{
	int	 nested = io->in_callback;

	io->in_callback = 1;
	io->cb(io, evt, io->arg);
	io->in_callback = nested;
	if (io->freed && !nested) {
		io->freed = 0;
		io_free(io);
		return 0;
	}
	return !io->freed;
}

static int
io_do_handshake(struct io *io)
{
	int	 r = tls_handshake(io->tls);

	if (r == TLS_WANT_POLLIN || r == TLS_WANT_POLLOUT) {
		io->tls_want = r;
		return 1;
	}
	io->tls_handshaking = 0;
	if (r == -1) {
		snprintf(io->error, sizeof(io->error), "TLS handshake: %s",
		    tls_error(io->tls));
		return io_callback(io, IO_ERROR);
	}
	return io_callback(io, IO_TLSREADY);
}

/* Returns 0 when the io is gone. */
static int
io_do_write(struct io *io)
{
	size_t		 len;
	ssize_t		 n;
	unsigned char	*p;

	while ((len = evbuffer_get_length(io->out)) > 0) {
		p = evbuffer_pullup(io->out, (ssize_t)(len > IO_READ_CHUNK ?
		    IO_READ_CHUNK : len));
		if (len > IO_READ_CHUNK)
			len = IO_READ_CHUNK;
		if (io->tls) {
			n = tls_write(io->tls, p, len);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT)
				return 1;
			if (n == -1) {
				snprintf(io->error, sizeof(io->error),
				    "TLS write: %s", tls_error(io->tls));
				return io_callback(io, IO_ERROR);
			}
		} else if ((n = MONKEY("io.write", EIO) ? -1 :
		    write(io->fd, p, len)) == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 1;
			snprintf(io->error, sizeof(io->error), "write: %s",
			    strerror(errno));
			return io_callback(io, IO_ERROR);
		}
		evbuffer_drain(io->out, (size_t)n);
	}
	return io_callback(io, IO_LOWAT);
}

/* Returns 0 when the io is gone. */
static int
io_do_read(struct io *io)
{
	unsigned char	 buf[IO_READ_CHUNK];
	ssize_t		 n;

	if (io->tls) {
		n = tls_read(io->tls, buf, sizeof(buf));
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT)
			return 1;
		if (n == -1) {
			snprintf(io->error, sizeof(io->error), "TLS read: %s",
			    tls_error(io->tls));
			return io_callback(io, IO_ERROR);
		}
	} else if ((n = MONKEY("io.read", ECONNRESET) ? -1 :
	    read(io->fd, buf, sizeof(buf))) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return 1;
		snprintf(io->error, sizeof(io->error), "read: %s",
		    strerror(errno));
		return io_callback(io, IO_ERROR);
	}
	if (n == 0) {
		io->eof = 1;
		return io_callback(io, IO_DISCONNECTED);
	}
	if (evbuffer_add(io->in, buf, (size_t)n) == -1) {
		snprintf(io->error, sizeof(io->error), "out of memory");
		return io_callback(io, IO_ERROR);
	}
	return io_callback(io, IO_DATAIN);
}

static void
io_dispatch(int fd, short events, void *arg)
{
	struct io	*io = arg;
	int		 had_output;

	(void)fd;
	if (events & EV_TIMEOUT) {
		/* Paused lazily, the io waits for its owner, not its peer. */
		if (io->pause_lazy && !io->tls_handshaking &&
		    !(io->armed & EV_WRITE))
			return;
		if (io_callback(io, IO_TIMEOUT))
			io_reload(io);
		return;
	}
	if (io->tls_handshaking) {
		if (io_do_handshake(io))
			io_reload(io);
		return;
	}
	had_output = evbuffer_get_length(io->out) > 0;
	if ((events & EV_WRITE) && had_output && !io_do_write(io))
		return;
	if ((events & EV_READ) && io->paused)
		io->pause_lazy = 0;	/* input while paused: stop reading */
	else if ((events & EV_READ) && !io_stall(io) &&
	    !io_do_read(io))
		return;
	io_reload(io);
}
