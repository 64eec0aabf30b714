/*
 * Typed IPC over socketpairs: framing, descriptor passing, and the strict
 * check of every received payload against its declared layout.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <event.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "monkey.h"
#include "xmalloc.h"

#define IPC_OBUF_KEEP	(128 * 1024)	/* output kept between bursts */

static void	ipc_update_events(struct ipc_chan *);
static void	ipc_read_cb(int, short, void *);
static void	ipc_write_cb(int, short, void *);
static void	ipc_flush_cb(int, short, void *);
static void	ipc_lazy_cb(int, short, void *);
static void	ipc_queue(struct ipc_chan *);
static void	ipc_obuf_reserve(struct ipc_chan *, size_t);
static int	ipc_write_some(struct ipc_chan *);
static int	ipc_process_input(struct ipc_chan *);
static void	ipc_malformed(struct ipc_chan *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	ipc_out_reserve(struct ipc_chan *, size_t);
static void	ipc_add_tagged(struct ipc_chan *, char, const void *, size_t);
static const uint8_t *ipc_get_field(struct ipc_msg *, char, size_t *);

void
ipc_chan_init(struct ipc_chan *chan, int fd, const char *peer,
    enum ipc_trust trust, const struct ipc_type *types, size_t ntypes,
    int (*dispatch)(struct ipc_chan *, struct ipc_msg *),
    void (*closed)(struct ipc_chan *), void *arg)
{
	memset(chan, 0, sizeof(*chan));
	chan->fd = fd;
	chan->peer = peer;
	chan->trust = trust;
	chan->types = types;
	chan->ntypes = ntypes;
	chan->dispatch = dispatch;
	chan->closed = closed;
	chan->arg = arg;
	chan->out_fd = -1;
	if (fd != -1) {
		event_set(&chan->ev_read, fd, EV_READ | EV_PERSIST,
		    ipc_read_cb, chan);
		event_set(&chan->ev_write, fd, EV_WRITE, ipc_write_cb, chan);
		evtimer_set(&chan->ev_flush, ipc_flush_cb, chan);
		evtimer_set(&chan->ev_lazy, ipc_lazy_cb, chan);
		chan->events_set = 1;
		event_add(&chan->ev_read, NULL);
	}
}

void
ipc_chan_close(struct ipc_chan *chan)
{
	size_t	 i;

	if (chan->events_set) {
		event_del(&chan->ev_read);
		event_del(&chan->ev_write);
		event_del(&chan->ev_flush);
		event_del(&chan->ev_lazy);
		chan->flush_queued = 0;
		chan->events_set = 0;
	}
	for (i = 0; i < chan->nofds; i++)
		close(chan->ofds[i].fd);
	free(chan->ofds);
	chan->ofds = NULL;
	chan->nofds = chan->ofdsize = 0;
	free(chan->obuf);
	chan->obuf = NULL;
	chan->ooff = chan->olen = chan->osize = 0;
	for (i = 0; i < (size_t)chan->nfdq; i++)
		close(chan->fdq[i]);
	chan->nfdq = 0;
	if (chan->fd != -1)
		close(chan->fd);
	chan->fd = -1;
	free(chan->in);
	chan->in = NULL;
	chan->inlen = chan->insize = 0;
	free(chan->out);
	chan->out = NULL;
	chan->outlen = chan->outsize = 0;
	/* A process may still compose for a peer it lost (a timer fires
	 * while it stops): those messages go nowhere. */
	chan->gone = 1;
}

const struct ipc_type *
ipc_type_lookup(const struct ipc_type *types, size_t ntypes, uint32_t type)
{
	size_t	 i;

	for (i = 0; i < ntypes; i++)
		if (types[i].type == type)
			return &types[i];
	return NULL;
}

/*
 * Composing.
 */

void
ipc_begin(struct ipc_chan *chan, uint32_t type, int fd)
{
	const struct ipc_type	*t;

	if ((t = ipc_type_lookup(chan->types, chan->ntypes, type)) == NULL)
		fatalx("ipc_begin: undeclared message type %u", type);
	if (chan->out_desc != NULL)
		fatalx("ipc_begin: %s while composing %s", t->name,
		    chan->out_desc->name);
	if ((fd == -1 && t->fd == IPC_FD_REQUIRED) ||
	    (fd != -1 && t->fd == IPC_FD_NONE))
		fatalx("ipc_begin: %s: descriptor rule violated", t->name);
	chan->out_desc = t;
	chan->outlen = sizeof(struct ipc_hdr);
	ipc_out_reserve(chan, 0);
	chan->out_fd = fd;
}

static void
ipc_out_reserve(struct ipc_chan *chan, size_t more)
{
	size_t	 need = chan->outlen + more;

	if (need > sizeof(struct ipc_hdr) + IPC_MAX_PAYLOAD)
		fatalx("ipc: %s: payload too large", chan->out_desc->name);
	if (need <= chan->outsize)
		return;
	chan->outsize = need < 256 ? 256 : need * 2;
	chan->out = xreallocarray(chan->out, 1, chan->outsize);
}

static void
ipc_add_tagged(struct ipc_chan *chan, char tag, const void *p, size_t len)
{
	ipc_out_reserve(chan, 1 + len);
	chan->out[chan->outlen++] = (uint8_t)tag;
	memcpy(chan->out + chan->outlen, p, len);
	chan->outlen += len;
}

void
ipc_add_u32(struct ipc_chan *chan, uint32_t v)
{
	ipc_add_tagged(chan, IPC_FIELD_U32, &v, sizeof(v));
}

void
ipc_add_u64(struct ipc_chan *chan, uint64_t v)
{
	ipc_add_tagged(chan, IPC_FIELD_U64, &v, sizeof(v));
}

static void
ipc_add_counted(struct ipc_chan *chan, char tag, const void *p, size_t len)
{
	uint32_t	 n;

	if (len > IPC_MAX_PAYLOAD)
		fatalx("ipc: %s: field too large", chan->out_desc->name);
	n = (uint32_t)len;
	ipc_add_tagged(chan, tag, &n, sizeof(n));
	ipc_out_reserve(chan, len);
	memcpy(chan->out + chan->outlen, p, len);
	chan->outlen += len;
}

void
ipc_add_string(struct ipc_chan *chan, const char *s)
{
	/* The terminating NUL travels too: the receiver checks it. */
	ipc_add_counted(chan, IPC_FIELD_STRING, s, strlen(s) + 1);
}

void
ipc_add_data(struct ipc_chan *chan, const void *p, size_t len)
{
	ipc_add_counted(chan, IPC_FIELD_DATA, p, len);
}

void
ipc_end(struct ipc_chan *chan)
{
	ipc_queue(chan);
	ipc_update_events(chan);
}

/*
 * A message that is in no hurry (a report nobody waits on): it goes out
 * with the next message ended by ipc_end(), or IPC_LAZY_MS later at the
 * latest, so that it costs the peer no wake-up of its own.  Order is
 * kept: it goes before whatever is queued after it.
 */
void
ipc_end_lazy(struct ipc_chan *chan)
{
	struct timeval	 tv = { 0, IPC_LAZY_MS * 1000 };

	ipc_queue(chan);
	if (chan->events_set && !chan->flush_queued &&
	    !evtimer_pending(&chan->ev_lazy, NULL))
		evtimer_add(&chan->ev_lazy, &tv);
}

static void
ipc_queue(struct ipc_chan *chan)
{
	const struct ipc_type	*t = chan->out_desc;
	struct ipc_hdr		 hdr;
	size_t			 plen = chan->outlen - sizeof(hdr);
	char			 err[128];

	if (t == NULL)
		fatalx("ipc_end: no message begun");
	/* Our own bug if this fails: better here than in the peer. */
	if (ipc_validate(chan->out + sizeof(hdr), plen, t->layout,
	    err, sizeof(err)) == -1)
		fatalx("ipc_end: composed %s does not match its layout: %s",
		    t->name, err);
	hdr.type = t->type;
	hdr.flags = chan->out_fd != -1 ? IPC_F_FD : 0;
	hdr.len = (uint32_t)plen;
	memcpy(chan->out, &hdr, sizeof(hdr));

	if (chan->gone) {
		if (chan->out_fd != -1)
			close(chan->out_fd);
		chan->out_desc = NULL;
		chan->out_fd = -1;
		return;
	}
	ipc_obuf_reserve(chan, chan->outlen);
	memcpy(chan->obuf + chan->olen, chan->out, chan->outlen);
	chan->olen += chan->outlen;
	if (chan->out_fd != -1) {
		if (chan->nofds == chan->ofdsize) {
			chan->ofdsize = chan->ofdsize ? chan->ofdsize * 2 : 4;
			chan->ofds = xreallocarray(chan->ofds, chan->ofdsize,
			    sizeof(*chan->ofds));
		}
		chan->ofds[chan->nofds].end = chan->olen;
		chan->ofds[chan->nofds++].fd = chan->out_fd;
	}
	chan->out_desc = NULL;
	chan->out_fd = -1;
}

/*
 * Queued messages are one run of bytes: a message costs a copy, not an
 * allocation.  What was written is dropped when room is needed.
 */
static void
ipc_obuf_reserve(struct ipc_chan *chan, size_t more)
{
	size_t	 i;

	if (chan->ooff > 0 && chan->olen + more > chan->osize) {
		memmove(chan->obuf, chan->obuf + chan->ooff,
		    chan->olen - chan->ooff);
		for (i = 0; i < chan->nofds; i++)
			chan->ofds[i].end -= chan->ooff;
		chan->olen -= chan->ooff;
		chan->ooff = 0;
	}
	if (chan->olen + more <= chan->osize)
		return;
	chan->osize = chan->olen + more < 4096 ? 4096 :
	    (chan->olen + more) * 2;
	chan->obuf = xreallocarray(chan->obuf, chan->osize, 1);
}

void
ipc_send_empty(struct ipc_chan *chan, uint32_t type)
{
	ipc_begin(chan, type, -1);
	ipc_end(chan);
}

/*
 * Validation of a received payload against a layout.
 */

int
ipc_validate(const uint8_t *p, size_t len, const char *layout, char *err,
    size_t errlen)
{
	size_t		 pos = 0, field = 0, need;
	uint32_t	 n;
	const char	*l;
	char		 tag;

	for (l = layout; *l != '\0'; l++) {
		field++;
		if (pos == len) {
			snprintf(err, errlen, "field %zu (%c) missing",
			    field, *l);
			return -1;
		}
		tag = (char)p[pos++];
		if (tag != *l) {
			snprintf(err, errlen, "field %zu: expected %c, got 0x%02x",
			    field, *l, (unsigned char)tag);
			return -1;
		}
		switch (tag) {
		case IPC_FIELD_U32:
			need = 4;
			break;
		case IPC_FIELD_U64:
			need = 8;
			break;
		case IPC_FIELD_STRING:
		case IPC_FIELD_DATA:
			if (len - pos < sizeof(n)) {
				snprintf(err, errlen,
				    "field %zu: truncated length", field);
				return -1;
			}
			memcpy(&n, p + pos, sizeof(n));
			pos += sizeof(n);
			need = n;
			break;
		default:
			snprintf(err, errlen, "bad layout tag %c", tag);
			return -1;
		}
		if (len - pos < need) {
			snprintf(err, errlen, "field %zu (%c): truncated",
			    field, tag);
			return -1;
		}
		if (tag == IPC_FIELD_STRING &&
		    (need == 0 || memchr(p + pos, '\0', need) != p + pos + need - 1)) {
			snprintf(err, errlen,
			    "field %zu: not a NUL-terminated string", field);
			return -1;
		}
		pos += need;
	}
	if (pos != len) {
		snprintf(err, errlen, "%zu trailing bytes", len - pos);
		return -1;
	}
	return 0;
}

/*
 * Reading fields of a validated message.  A mismatch here means the
 * handler disagrees with the declared layout: a bug, hence fatal.
 */

static const uint8_t *
ipc_get_field(struct ipc_msg *msg, char tag, size_t *lenp)
{
	const uint8_t	*p;
	uint32_t	 n;

	if (*msg->layout_pos != tag)
		fatalx("ipc: %s: handler reads %c, layout says %c",
		    msg->desc->name, tag,
		    *msg->layout_pos ? *msg->layout_pos : '-');
	msg->layout_pos++;
	msg->pos++;	/* the tag, checked by ipc_validate() */
	if (tag == IPC_FIELD_STRING || tag == IPC_FIELD_DATA) {
		memcpy(&n, msg->data + msg->pos, sizeof(n));
		msg->pos += sizeof(n);
		*lenp = n;
	}
	p = msg->data + msg->pos;
	msg->pos += *lenp;
	return p;
}

uint32_t
ipc_get_u32(struct ipc_msg *msg)
{
	size_t		 len = 4;
	uint32_t	 v;

	memcpy(&v, ipc_get_field(msg, IPC_FIELD_U32, &len), sizeof(v));
	return v;
}

uint64_t
ipc_get_u64(struct ipc_msg *msg)
{
	size_t		 len = 8;
	uint64_t	 v;

	memcpy(&v, ipc_get_field(msg, IPC_FIELD_U64, &len), sizeof(v));
	return v;
}

const char *
ipc_get_string(struct ipc_msg *msg)
{
	size_t	 len;

	return (const char *)ipc_get_field(msg, IPC_FIELD_STRING, &len);
}

const char *
ipc_get_stringn(struct ipc_msg *msg, size_t *lenp)
{
	const char	*s;

	s = (const char *)ipc_get_field(msg, IPC_FIELD_STRING, lenp);
	(*lenp)--;	/* ipc_validate() saw the NUL last */
	return s;
}

const void *
ipc_get_data(struct ipc_msg *msg, size_t *lenp)
{
	return ipc_get_field(msg, IPC_FIELD_DATA, lenp);
}

void
ipc_get_end(struct ipc_msg *msg)
{
	if (*msg->layout_pos != '\0')
		fatalx("ipc: %s: handler left fields unread", msg->desc->name);
}

/*
 * I/O.
 */

/*
 * New output is not written at once: the channel's flush runs once the
 * callbacks of this turn of the event loop are done, so that all a turn
 * queued goes in one sendmsg(2), and the descriptor is registered for
 * writability only when the socket is full.  A message per turn thus
 * costs no epoll_ctl(2) pair.
 */
static void
ipc_update_events(struct ipc_chan *chan)
{
	if (!chan->events_set || chan->ooff == chan->olen || chan->write_retry)
		return;
	if (chan->flush_queued || event_pending(&chan->ev_write, EV_WRITE,
	    NULL))
		return;
	chan->flush_queued = 1;
	event_active(&chan->ev_flush, EV_TIMEOUT, 1);
}

static void
ipc_malformed(struct ipc_chan *chan, const char *fmt, ...)
{
	char	 reason[256];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (chan->trust == IPC_PEER_INTERNAL)
		fatalx("malformed message from %s: %s", chan->peer, reason);
	log_warnx("dropping %s: malformed message: %s", chan->peer, reason);
	ipc_chan_close(chan);
	if (chan->closed)
		chan->closed(chan);
}

/* Dispatch every complete message; -1 after a malformed one. */
static int
ipc_process_input(struct ipc_chan *chan)
{
	const struct ipc_type	*t;
	struct ipc_hdr		 hdr;
	struct ipc_msg		 msg;
	size_t			 off = 0;
	char			 err[128];

	for (;;) {
		if (chan->inlen - off < sizeof(hdr))
			break;
		memcpy(&hdr, chan->in + off, sizeof(hdr));
		if (hdr.len > IPC_MAX_PAYLOAD) {
			ipc_malformed(chan, "length %u over the limit", hdr.len);
			return -1;
		}
		if ((t = ipc_type_lookup(chan->types, chan->ntypes,
		    hdr.type)) == NULL) {
			ipc_malformed(chan, "unknown message type %u", hdr.type);
			return -1;
		}
		if (hdr.flags & ~IPC_F_FD) {
			ipc_malformed(chan, "%s: unknown flags 0x%x", t->name,
			    hdr.flags);
			return -1;
		}
		if (chan->inlen - off - sizeof(hdr) < hdr.len)
			break;
		if (ipc_validate(chan->in + off + sizeof(hdr), hdr.len,
		    t->layout, err, sizeof(err)) == -1) {
			ipc_malformed(chan, "%s: %s", t->name, err);
			return -1;
		}
		memset(&msg, 0, sizeof(msg));
		msg.fd = -1;
		if (hdr.flags & IPC_F_FD) {
			if (t->fd == IPC_FD_NONE) {
				ipc_malformed(chan, "%s: unexpected descriptor",
				    t->name);
				return -1;
			}
			if (chan->nfdq == 0) {
				ipc_malformed(chan, "%s: descriptor missing",
				    t->name);
				return -1;
			}
			msg.fd = chan->fdq[0];
			memmove(chan->fdq, chan->fdq + 1,
			    --chan->nfdq * sizeof(int));
		} else if (t->fd == IPC_FD_REQUIRED) {
			ipc_malformed(chan, "%s: descriptor missing", t->name);
			return -1;
		}
		msg.desc = t;
		msg.type = t->type;
		msg.data = chan->in + off + sizeof(hdr);
		msg.len = hdr.len;
		msg.layout_pos = t->layout;
		off += sizeof(hdr) + hdr.len;
		if (chan->dispatch(chan, &msg) == -1) {
			if (msg.fd != -1)
				close(msg.fd);
			ipc_malformed(chan, "unexpected message %s", t->name);
			return -1;
		}
		if (chan->in == NULL)	/* the handler closed the channel */
			return 0;
	}
	if (off > 0) {
		memmove(chan->in, chan->in + off, chan->inlen - off);
		chan->inlen -= off;
	}
	return 0;
}

int
ipc_feed(struct ipc_chan *chan, const void *p, size_t len)
{
	if (len == 0)
		return 0;
	if (chan->inlen + len > chan->insize) {
		chan->insize = chan->inlen + len;
		chan->in = xreallocarray(chan->in, 1, chan->insize);
	}
	memcpy(chan->in + chan->inlen, p, len);
	chan->inlen += len;
	return ipc_process_input(chan);
}

static void
ipc_read_cb(int fd, short event, void *arg)
{
	struct ipc_chan	*chan = arg;
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
	} cmsgbuf;
	struct cmsghdr	*cmsg;
	struct msghdr	 mh;
	struct iovec	 iov;
	ssize_t		 n;
	size_t		 want = sizeof(struct ipc_hdr) + IPC_MAX_PAYLOAD;
	int		 i, nfd, rfd;

	(void)event;
	if (chan->insize < want) {
		chan->in = xreallocarray(chan->in, 1, want);
		chan->insize = want;
	}
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = chan->in + chan->inlen;
	iov.iov_len = chan->insize - chan->inlen;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = &cmsgbuf.buf;
	mh.msg_controllen = sizeof(cmsgbuf.buf);
	if ((n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC)) == -1) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		log_warn("read from %s", chan->peer);
		n = 0;	/* treat as a lost peer */
	}
	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < nfd; i++) {
			memcpy(&rfd, CMSG_DATA(cmsg) + i * sizeof(int),
			    sizeof(int));
			if (chan->nfdq == IPC_MAX_FDS) {
				/* close this one and the rest of the batch */
				for (; i < nfd; i++) {
					memcpy(&rfd, CMSG_DATA(cmsg) +
					    i * sizeof(int), sizeof(int));
					close(rfd);
				}
				ipc_malformed(chan, "too many descriptors");
				return;
			}
			chan->fdq[chan->nfdq++] = rfd;
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		ipc_malformed(chan, "descriptors truncated");
		return;
	}
	if (n == 0) {
		if (chan->inlen != 0) {
			ipc_malformed(chan, "connection closed mid-message");
			return;
		}
		ipc_chan_close(chan);
		if (chan->closed)
			chan->closed(chan);
		return;
	}
	chan->inlen += (size_t)n;
	ipc_process_input(chan);
}

/*
 * Write what is queued, all of it per sendmsg(2): a relay sends small
 * messages by the thousand, and a system call each was most of its
 * cost.  A batch ends with the first message that carries a descriptor
 * (attached to the batch: the receiver hands descriptors to the
 * messages flagged for one, in order, so it cannot go astray).
 * Returns 1 when all is written, 0 when the socket is full, 2 when the
 * kernel is short of memory for now (ENOBUFS, ENOMEM: not a lost peer),
 * -1 on error.
 */
static int
ipc_write_some(struct ipc_chan *chan)
{
	union {
		struct cmsghdr	 hdr;
		char		 buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	struct cmsghdr		*cmsg;
	struct msghdr		 mh;
	struct iovec		 iov;
	ssize_t			 n;
	size_t			 end;
	int			 fd;

	while (chan->ooff < chan->olen) {
		memset(&mh, 0, sizeof(mh));
		end = chan->olen;
		fd = -1;
		if (chan->nofds > 0) {
			end = chan->ofds[0].end;
			fd = chan->ofds[0].fd;
		}
		iov.iov_base = chan->obuf + chan->ooff;
		iov.iov_len = end - chan->ooff;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		if (fd != -1) {
			memset(&cmsgbuf, 0, sizeof(cmsgbuf));
			mh.msg_control = &cmsgbuf.buf;
			mh.msg_controllen = sizeof(cmsgbuf.buf);
			cmsg = CMSG_FIRSTHDR(&mh);
			cmsg->cmsg_len = CMSG_LEN(sizeof(int));
			cmsg->cmsg_level = SOL_SOCKET;
			cmsg->cmsg_type = SCM_RIGHTS;
			memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
		}
		n = MONKEY("ipc.write", ENOBUFS) ? -1 :
		    sendmsg(chan->fd, &mh, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			if (errno == ENOBUFS || errno == ENOMEM)
				return 2;
			return -1;
		}
		/* The descriptor went with the first byte: not again. */
		if (fd != -1) {
			close(fd);
			memmove(chan->ofds, chan->ofds + 1,
			    --chan->nofds * sizeof(*chan->ofds));
		}
		chan->ooff += (size_t)n;
	}
	chan->ooff = chan->olen = 0;
	if (chan->osize > IPC_OBUF_KEEP) {
		/* a burst is over: its memory goes */
		free(chan->obuf);
		chan->obuf = NULL;
		chan->osize = 0;
	}
	return 1;
}

/* The flush of this turn, or the socket took more: write on. */
static void
ipc_write_cb(int fd, short event, void *arg)
{
	static const struct timeval	 retry = { 0, 100000 };
	struct ipc_chan			*chan = arg;
	int				 r;

	(void)fd;
	(void)event;
	if ((r = ipc_write_some(chan)) == -1) {
		log_warn("write to %s", chan->peer);
		ipc_chan_close(chan);
		if (chan->closed)
			chan->closed(chan);
		return;
	}
	if (r == 2) {
		/* again in a while (the lazy timer's callback flushes), and
		 * not before, whatever is queued meanwhile */
		log_warn("write to %s, retrying", chan->peer);
		chan->write_retry = 1;
		evtimer_del(&chan->ev_lazy);
		evtimer_add(&chan->ev_lazy, &retry);
		return;
	}
	if (r == 0)
		event_add(&chan->ev_write, NULL);	/* the socket is full */
	else
		evtimer_del(&chan->ev_lazy);	/* what it waited for went */
}

static void
ipc_lazy_cb(int fd, short event, void *arg)
{
	struct ipc_chan	*chan = arg;

	(void)fd;
	(void)event;
	chan->write_retry = 0;
	ipc_update_events(chan);
}

static void
ipc_flush_cb(int fd, short event, void *arg)
{
	struct ipc_chan	*chan = arg;

	chan->flush_queued = 0;
	if (!event_pending(&chan->ev_write, EV_WRITE, NULL))
		ipc_write_cb(fd, event, arg);
}

int
ipc_flush(struct ipc_chan *chan)
{
	struct pollfd	 pfd;
	int		 r, tries = 0;

	while ((r = ipc_write_some(chan)) == 0 || r == 2) {
		if (r == 2) {
			/* short of memory: 5 s of pauses at most */
			if (++tries > 50)
				return -1;
			usleep(100000);
			continue;
		}
		pfd.fd = chan->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, 5000) <= 0)
			return -1;
	}
	ipc_update_events(chan);
	return r == 1 ? 0 : -1;
}
