/*
 * Typed messages between the processes of one daemon.
 *
 * Framing: a fixed header (type, flags, payload length) followed by the
 * payload.  A payload is a sequence of tagged fields (u32, u64, string,
 * data).  Every message type is declared once, in a table, with the layout
 * of its payload as a string of field tags, e.g. "qs" for a u64 followed
 * by a string.  The receiver checks each message against that declaration
 * before it is dispatched: an unknown type, a missing, extra or ill-typed
 * field, a string that is not exactly one NUL-terminated string, a missing
 * or unexpected file descriptor are all malformed messages.  A malformed
 * message from one of the daemon's own processes is fatal: the receiver
 * logs why and exits, it never guesses.
 */
#ifndef IPC_H
#define IPC_H

#include <sys/queue.h>

#include <event.h>
#include <stddef.h>
#include <stdint.h>

#define IPC_MAX_PAYLOAD		(64 * 1024)
#define IPC_MAX_FDS		16
#define IPC_LAZY_MS		10	/* ipc_end_lazy(): at the latest */

/* Field tags, as they appear on the wire and in layout strings. */
#define IPC_FIELD_U32		'u'
#define IPC_FIELD_U64		'q'
#define IPC_FIELD_STRING	's'
#define IPC_FIELD_DATA		'd'

/* Header flags. */
#define IPC_F_FD		0x1	/* a descriptor travels with it */

enum ipc_fd_rule {
	IPC_FD_NONE,
	IPC_FD_REQUIRED,
	IPC_FD_OPTIONAL,
};

struct ipc_hdr {
	uint32_t	 type;
	uint32_t	 flags;
	uint32_t	 len;		/* payload bytes after the header */
};

struct ipc_type {
	uint32_t		 type;
	const char		*name;
	const char		*layout;	/* field tags, "" for none */
	enum ipc_fd_rule	 fd;
};

/* A received message; fields are read in layout order. */
struct ipc_msg {
	const struct ipc_type	*desc;
	uint32_t		 type;
	int			 fd;	/* -1 unless IPC_F_FD; owned by the handler */
	const uint8_t		*data;
	size_t			 len;
	size_t			 pos;
	const char		*layout_pos;
};

enum ipc_trust {
	IPC_PEER_INTERNAL,	/* one of our processes: malformed = fatal */
	IPC_PEER_CLIENT,	/* e.g. a control client: malformed = drop it */
};

/* A queued message's descriptor: it goes with the message's batch. */
struct ipc_outfd {
	size_t			 end;	/* where its message ends in obuf */
	int			 fd;
};

struct ipc_chan {
	int			 fd;
	const char		*peer;		/* for log lines: "parent", "smtp" */
	enum ipc_trust		 trust;
	const struct ipc_type	*types;
	size_t			 ntypes;
	/* Returns 0 when handled, -1 when the type is not expected here. */
	int			(*dispatch)(struct ipc_chan *, struct ipc_msg *);
	/* The peer closed the channel, or was dropped as malformed. */
	void			(*closed)(struct ipc_chan *);
	void			*arg;

	struct event		 ev_read;
	struct event		 ev_write;	/* only while the socket is full */
	struct event		 ev_flush;	/* end of this loop turn */
	struct event		 ev_lazy;	/* ipc_end_lazy()'s deadline, */
	int			 write_retry;	/* or the retry after ENOBUFS */
	int			 flush_queued;
	int			 events_set;
	int			 gone;		/* closed: messages are dropped */
	uint8_t			*in;
	size_t			 inlen;
	size_t			 insize;
	int			 fdq[IPC_MAX_FDS];
	int			 nfdq;
	/* messages queued, written from ooff to olen */
	uint8_t			*obuf;
	size_t			 ooff;
	size_t			 olen;
	size_t			 osize;
	struct ipc_outfd	*ofds;		/* in the order of obuf */
	size_t			 nofds;
	size_t			 ofdsize;

	/* message being composed */
	const struct ipc_type	*out_desc;
	uint8_t			*out;
	size_t			 outlen;
	size_t			 outsize;
	int			 out_fd;
};

void	 ipc_chan_init(struct ipc_chan *, int, const char *, enum ipc_trust,
	    const struct ipc_type *, size_t,
	    int (*)(struct ipc_chan *, struct ipc_msg *),
	    void (*)(struct ipc_chan *), void *);
void	 ipc_chan_close(struct ipc_chan *);
const struct ipc_type *ipc_type_lookup(const struct ipc_type *, size_t,
	    uint32_t);

/* Composing: begin, add fields in layout order, end queues it. */
void	 ipc_begin(struct ipc_chan *, uint32_t, int);
void	 ipc_add_u32(struct ipc_chan *, uint32_t);
void	 ipc_add_u64(struct ipc_chan *, uint64_t);
void	 ipc_add_string(struct ipc_chan *, const char *);
void	 ipc_add_data(struct ipc_chan *, const void *, size_t);
void	 ipc_end(struct ipc_chan *);
void	 ipc_end_lazy(struct ipc_chan *);
/* Shorthand for a message with no payload. */
void	 ipc_send_empty(struct ipc_chan *, uint32_t);
/* Write what is queued now, blocking; used before exiting. */
int	 ipc_flush(struct ipc_chan *);

/* Reading a dispatched message (already validated). */
uint32_t	 ipc_get_u32(struct ipc_msg *);
uint64_t	 ipc_get_u64(struct ipc_msg *);
const char	*ipc_get_string(struct ipc_msg *);
/* The same, and its length (the NUL not counted). */
const char	*ipc_get_stringn(struct ipc_msg *, size_t *);
const void	*ipc_get_data(struct ipc_msg *, size_t *);
void		 ipc_get_end(struct ipc_msg *);

/*
 * Check a payload against a layout.  Returns 0, or -1 with a reason in
 * err.  Exposed for the tests and the fuzz target.
 */
int	 ipc_validate(const uint8_t *, size_t, const char *, char *, size_t);

/*
 * Append bytes to a channel's input and dispatch every complete message,
 * as if they had been read from its socket; for the fuzz target.  Returns
 * 0, or -1 after a malformed message (the channel is then closed).
 */
int	 ipc_feed(struct ipc_chan *, const void *, size_t);

#endif
