/*
 * Buffered, event-driven socket I/O with optional TLS (libtls).
 *
 * The owner gets one callback with an event code: input is available,
 * everything queued has been written, the TLS handshake finished, the
 * idle timeout expired, the peer closed, or an error occurred.  Reading
 * can be paused, which is how a session stops consuming pipelined input
 * while it waits for another process, and how memory stays bounded when
 * the other side of a relay is slower.
 *
 * io_write() and io_printf() return -1 when the output cannot be
 * buffered (no memory): the io then reports IO_ERROR on the next turn
 * of the event loop, so that an owner that ignores the result still
 * ends that connection instead of going on with a line missing.
 */
#ifndef IO_H
#define IO_H

#include <sys/queue.h>

#include <event.h>
#include <stddef.h>
#include <tls.h>

enum io_event {
	IO_DATAIN,		/* new bytes in io->in */
	IO_LOWAT,		/* output buffer drained */
	IO_TLSREADY,		/* handshake done */
	IO_TIMEOUT,
	IO_DISCONNECTED,	/* orderly close by the peer */
	IO_ERROR,		/* io_error() says why */
};

struct io {
	TAILQ_ENTRY(io)	 flush_entry;
	int		 flush_queued;	/* in the flush queue (io.c) */
	int		 fd;
	struct tls	*tls;
	int		 tls_handshaking;
	int		 tls_want;	/* what the handshake waits for */
	struct evbuffer	*in;
	struct evbuffer	*out;
	struct event	 ev;
	struct event	 ev_replay;	/* buffered input after a resume,
					   or a failure to report */
	struct event	 ev_stall;	/* the monkey's io.stall */
	int		 stalled;	/* not reading until ev_stall */
	int		 fail_pending;	/* IO_ERROR at ev_replay */
	int		 timeout_ms;
	short		 armed;		/* the events registered, -1: none */
	int		 paused;
	int		 pause_lazy;	/* paused, EV_READ still registered */
	int		 eof;
	int		 in_callback;
	int		 freed;
	int		 linger;	/* io_linger(): close gently */
	char		 error[128];
	void		(*cb)(struct io *, enum io_event, void *);
	void		*arg;
};

struct io	*io_new(int, void (*)(struct io *, enum io_event, void *),
		    void *);
void		 io_free(struct io *);
void		 io_linger(struct io *);
void		 io_set_timeout(struct io *, int);
void		 io_pause(struct io *);
void		 io_resume(struct io *);
int		 io_write(struct io *, const void *, size_t);
int		 io_printf(struct io *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
size_t		 io_queued(struct io *);
const char	*io_error(struct io *);
int		 io_start_tls_server(struct io *, struct tls *);
int		 io_start_tls_client(struct io *, struct tls *, const char *);
const char	*io_tls_info(struct io *, char *, size_t);

#endif
