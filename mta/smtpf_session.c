/*
 * A client of a "filter smtpf" listener, on the MTA side of smtpf
 * (protocol/smtpf.md).  mtad says nothing of its own to such a client:
 * smtpfd sends every line the client sees, mtad moves the bytes and does
 * the socket and TLS work.
 *
 *	[TLS_ACCEPT ->] OPEN <-> STARTTLS_FLUSH -> STARTTLS -> OPEN
 *	                 |
 *	                 +-> CLOSE_FLUSH (close: last replies, then gone)
 *	                 +-> DRAIN (off the link: our last words, then close)
 *
 * Client bytes go up as "line" messages, byte-exact: a line longer than
 * one smtpf line goes in "part" pieces, and a piece never ends with a CR
 * that may belong to the CRLF after it.  A NUL cannot be carried: the
 * client gets 500 and is closed.
 *
 * Flow control: reading a client stops while smtpfd has said "pause" for
 * it, while the link's own output is over its limit (smtpfd is slow), and
 * while a STARTTLS is pending; lines already read wait in the input
 * buffer.  The other way, a client that does not read its replies makes
 * us say "pause" to smtpfd until they are written.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "netaddr.h"
#include "mtad.h"
#include "smtp.h"
#include "smtpf.h"
#include "xmalloc.h"

/* Client bytes per "line" message: "line|SID|part|" and LF fit around. */
#define FS_CHUNK		4000
#define FS_OUTPUT_MAX		(64 * 1024)	/* unread replies: pause */
#define FS_DRAIN_TIMEOUT	10		/* seconds for last words */
#define FS_HELD_MAX		(256 * 1024)	/* a multi-line reply, unended */

static TAILQ_HEAD(, fsession)	 fsessions = TAILQ_HEAD_INITIALIZER(fsessions);
static size_t			 nfsessions;

static const char *fs_state_names[] = {
	"tls-accept", "open", "starttls-flush", "starttls", "close-flush",
	"drain",
};

static void	 fsession_io(struct io *, enum io_event, void *);
static void	 fsession_open(struct fsession *);
static void	 fsession_read(struct fsession *, int);
static int	 fsession_send_piece(struct fsession *, size_t, size_t,
		    const char *);
static void	 fsession_tls_ready(struct fsession *);
static void	 fsession_starttls(struct fsession *);
static void	 fsession_gone(struct fsession *, const char *);
static void	 fsession_drain(struct fsession *, const char *);
static void	 fsession_end(struct fsession *, const char *);
static void	 fsession_send(struct fsession *, enum smtpf_type, const char *);

static void
fsession_enter_state(struct fsession *s, enum fsession_state state)
{
	if (log_getverbose() > 1)
		log_debug("%016" PRIx64 " smtpf state %s -> %s", s->id,
		    fs_state_names[s->state], fs_state_names[state]);
	s->state = state;
}

static const char *
sid_text(struct fsession *s, char *buf, size_t size)
{
	snprintf(buf, size, "%016" PRIx64, s->id);
	return buf;
}

size_t
fsession_count(void)
{
	return nfsessions;
}

/*
 * A client accepted on a filtered listener.  Returns 0 when it is ours
 * now, 1 when no smtpfd is up and the listener says bypass (the caller
 * runs a plain session), -1 when it was refused (fd closed).
 */
int
fsession_new(struct listener *l, int fd, const struct sockaddr_storage *ss)
{
	static const char	 unavailable[] = "421 4.3.0 Filtering service "
	    "unavailable, try again later\r\n";
	struct smtpf_link	*link;
	struct fsession		*s;
	socklen_t		 len = sizeof(s->local);

	if ((link = smtpf_link_pick(l)) == NULL) {
		if (l->filter_bypass) {
			log_info("listen on %s: no smtpfd up, session "
			    "bypasses it", l->on);
			return 1;
		}
		log_warnx("listen on %s: refused a client: no smtpfd up",
		    l->on);
		/* Best effort: the client is refused either way. */
		(void)!write(fd, unavailable, sizeof(unavailable) - 1);
		close(fd);
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->io = io_new(fd, fsession_io, s)) == NULL) {
		log_warn("smtpf session");
		free(s);
		(void)!write(fd, unavailable, sizeof(unavailable) - 1);
		close(fd);
		return -1;
	}
	s->listener = l;
	s->client = *ss;
	if (getsockname(fd, (struct sockaddr *)&s->local, &len) == -1)
		memset(&s->local, 0, sizeof(s->local));
	io_set_timeout(s->io, mtad_conf->data_timeout * 1000);
	TAILQ_INSERT_TAIL(&fsessions, s, entry);
	nfsessions++;
	smtpf_link_attach(link, s);
	if (l->tls != LISTEN_TLS_SMTPS) {
		fsession_open(s);
		return 0;
	}
	/* smtps: smtpfd hears of the client once TLS is up. */
	fsession_enter_state(s, FS_TLS_ACCEPT);
	io_pause(s->io);
	if (io_start_tls_server(s->io, smtp_tls_server(l->pki)) == -1) {
		log_warnx("listen on %s: tls: %s", l->on, io_error(s->io));
		fsession_end(s, "tls-error");
	}
	return 0;
}

static void
fsession_open(struct fsession *s)
{
	static const char *const modes[] = {
		[LISTEN_TLS_NONE] = "none",
		[LISTEN_TLS_STARTTLS] = "starttls",
		[LISTEN_TLS_REQUIRE] = "require",
		[LISTEN_TLS_SMTPS] = "smtps",
	};
	struct listener	*l = s->listener;
	char		 sid[17], laddr[64], lport[8], caddr[64], cport[8];
	const char	*f[8];
	int		 port;

	s->id = smtpf_link_open(s->link);
	sockaddr_text(&s->local, laddr, sizeof(laddr), &port);
	snprintf(lport, sizeof(lport), "%d", port);
	sockaddr_text(&s->client, caddr, sizeof(caddr), &port);
	snprintf(cport, sizeof(cport), "%d", port);
	f[0] = sid_text(s, sid, sizeof(sid));
	f[1] = laddr;
	f[2] = lport;
	f[3] = caddr;
	f[4] = cport;
	f[5] = l->tag ? l->tag : "-";
	f[6] = modes[l->tls];
	f[7] = "-";		/* mtad does no reverse DNS */
	smtpf_link_send(s->link, SMTPF_OPEN, f, 8);
	log_info("%016" PRIx64 " smtpf connected address=%s port=%s "
	    "listener=%s smtpfd=%s", s->id, caddr, cport, l->on,
	    smtpf_link_name(s->link));
	fsession_enter_state(s, FS_OPEN);
	if (s->tls)
		fsession_tls_ready(s);
	fsession_update_reading(s);
}

static int
fsession_reading(struct fsession *s)
{
	return s->state == FS_OPEN && !s->peer_paused && s->link != NULL &&
	    !smtpf_link_blocked(s->link);
}

/* Read the client or not, as the state and both sides allow. */
void
fsession_update_reading(struct fsession *s)
{
	/* A TLS handshake drives the io by itself. */
	if (s->state == FS_TLS_ACCEPT || s->state == FS_STARTTLS)
		return;
	if (!fsession_reading(s)) {
		if (!s->io->paused)
			io_pause(s->io);
	} else if (s->io->paused)
		io_resume(s->io);	/* replays what waits in the buffer */
}

static void
fsession_io(struct io *io, enum io_event evt, void *arg)
{
	struct fsession	*s = arg;

	switch (evt) {
	case IO_DATAIN:
		if (s->state == FS_OPEN)
			fsession_read(s, 0);
		break;
	case IO_LOWAT:
		if (s->state == FS_STARTTLS_FLUSH)
			fsession_starttls(s);
		else if (s->state == FS_CLOSE_FLUSH)
			fsession_end(s, "closed");
		else if (s->state == FS_DRAIN)
			fsession_end(s, s->reason);
		else if (s->out_paused && s->link != NULL) {
			s->out_paused = 0;
			fsession_send(s, SMTPF_RESUME, NULL);
		}
		break;
	case IO_TLSREADY:
		s->tls = 1;
		if (s->state == FS_TLS_ACCEPT)
			fsession_open(s);
		else {
			fsession_tls_ready(s);
			fsession_enter_state(s, FS_OPEN);
			fsession_update_reading(s);
		}
		break;
	case IO_TIMEOUT:
		log_info("%016" PRIx64 " smtpf timeout state=%s", s->id,
		    fs_state_names[s->state]);
		if (s->state != FS_OPEN) {
			fsession_end(s, "timeout");
			break;
		}
		/* smtpfd cannot speak after gone: this is our last word. */
		fsession_gone(s, "timeout");
		io_printf(s->io, "421 4.4.2 Timeout, closing connection\r\n");
		fsession_drain(s, "timeout");
		break;
	case IO_DISCONNECTED:
		if (s->state == FS_OPEN && s->link != NULL)
			fsession_read(s, 1);
		if (s->state != FS_DRAIN)
			fsession_end(s, "disconnected");
		else
			fsession_end(s, s->reason);
		break;
	case IO_ERROR:
		log_warnx("%016" PRIx64 " smtpf %s", s->id, io_error(io));
		fsession_end(s, s->state == FS_TLS_ACCEPT ||
		    s->state == FS_STARTTLS ? "tls-error" : "io-error");
		break;
	}
}

/*
 * Send the client's whole lines up, and with eof (the client closed)
 * whatever is left too, pause or not: that much is bounded by what one
 * read brought.
 */
static void
fsession_read(struct fsession *s, int eof)
{
	struct evbuffer		*in = s->io->in;
	struct evbuffer_ptr	 eol;
	const unsigned char	*p;
	size_t			 avail, n, content;
	int			 r;

	while (eof || fsession_reading(s)) {
		if ((avail = evbuffer_get_length(in)) == 0)
			break;
		eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos == -1) {
			/* Keep the last byte: it may be the CR of a CRLF. */
			if (avail > FS_CHUNK)
				r = fsession_send_piece(s, FS_CHUNK, 0, "part");
			else if (eof)
				r = fsession_send_piece(s, avail, 0, "eof");
			else
				break;
		} else {
			n = (size_t)eol.pos;
			p = evbuffer_pullup(in, (ssize_t)n + 1);
			content = n > 0 && p[n - 1] == '\r' ? n - 1 : n;
			if (content > FS_CHUNK)
				r = fsession_send_piece(s, FS_CHUNK, 0, "part");
			else
				r = fsession_send_piece(s, content,
				    n + 1 - content, content < n ? "crlf" : "lf");
		}
		if (r == -1)
			return;
	}
	if (!eof)
		fsession_update_reading(s);
}

/*
 * One "line" message of len bytes, then drop the eolen bytes of the line
 * end.  -1 when the session ended instead (a NUL).
 */
static int
fsession_send_piece(struct fsession *s, size_t len, size_t eolen,
    const char *end)
{
	char		 bytes[FS_CHUNK + 1], sid[17];
	const char	*f[3];

	evbuffer_remove(s->io->in, bytes, len);
	evbuffer_drain(s->io->in, eolen);
	bytes[len] = '\0';
	if (memchr(bytes, '\0', len) != NULL) {
		log_info("%016" PRIx64 " smtpf NUL character in input", s->id);
		io_printf(s->io, "500 5.5.2 NUL character in input\r\n");
		fsession_gone(s, "nul-in-input");
		fsession_drain(s, "nul-in-input");
		return -1;
	}
	f[0] = sid_text(s, sid, sizeof(sid));
	f[1] = end;
	f[2] = bytes;
	smtpf_link_send(s->link, SMTPF_LINE, f, 3);
	return 0;
}

/* "tls|SID|VERSION|CIPHER|BITS|SUBJECT" */
static void
fsession_tls_ready(struct fsession *s)
{
	struct tls	*tls = s->io->tls;
	const char	*version, *cipher, *f[5];
	char		 sid[17], bits[16], subject[1024];
	size_t		 i;

	version = tls_conn_version(tls);
	cipher = tls_conn_cipher(tls);
	snprintf(bits, sizeof(bits), "%d", tls_conn_cipher_strength(tls));
	snprintf(subject, sizeof(subject), "%s", tls_peer_cert_provided(tls) ?
	    tls_peer_cert_subject(tls) : "-");
	/* a subject is the client's text: one printable line */
	for (i = 0; subject[i]; i++)
		if ((unsigned char)subject[i] < ' ' || subject[i] == 127)
			subject[i] = '?';
	f[0] = sid_text(s, sid, sizeof(sid));
	f[1] = version ? version : "unknown";
	f[2] = cipher ? cipher : "unknown";
	f[3] = bits;
	f[4] = subject[0] ? subject : "-";
	smtpf_link_send(s->link, SMTPF_TLS, f, 5);
	log_info("%016" PRIx64 " smtpf tls %s:%s:%s", s->id, f[1], f[2],
	    bits);
}

/*
 * The replies before starttls (smtpfd's 220) are written: TLS now.  What
 * the client sent after STARTTLS in clear text is dropped, or it would
 * count as if it came over TLS (CVE-2011-0411).
 */
static void
fsession_starttls(struct fsession *s)
{
	size_t	 pending = evbuffer_get_length(s->io->in);

	if (pending > 0) {
		log_info("%016" PRIx64 " smtpf discarded %zu bytes sent after "
		    "STARTTLS", s->id, pending);
		evbuffer_drain(s->io->in, pending);
	}
	fsession_enter_state(s, FS_STARTTLS);
	if (io_start_tls_server(s->io, smtp_tls_server(s->listener->pki)) ==
	    -1) {
		log_warnx("%016" PRIx64 " smtpf tls: %s", s->id,
		    io_error(s->io));
		fsession_end(s, "tls-error");
	}
}

static int
fsession_wrong_state(struct fsession *s, const struct smtpf_msg *msg,
    char *err, size_t errlen)
{
	snprintf(err, errlen, "%s for session %016" PRIx64 " in state %s",
	    smtpf_type_name(msg->type), s->id, fs_state_names[s->state]);
	return -1;
}

/*
 * A reply line for the client.  The lines of a multi-line reply are held
 * until its last one: should the link die in between, the client gets a
 * clean 421 rather than "250-" lines continued by a 421.  (A reply over
 * FS_HELD_MAX goes as it comes.)
 */
static void
fsession_reply_line(struct fsession *s, const char *line, size_t len)
{
	if (len > 3 && line[3] == '-' &&
	    s->heldlen + len + 2 <= FS_HELD_MAX) {
		if (s->heldlen + len + 2 > s->heldsize) {
			s->heldsize = s->heldlen + len + 2 + 256;
			s->held = xreallocarray(s->held, s->heldsize, 1);
		}
		memcpy(s->held + s->heldlen, line, len);
		memcpy(s->held + s->heldlen + len, "\r\n", 2);
		s->heldlen += len + 2;
		return;
	}
	if (s->heldlen > 0) {
		io_write(s->io, s->held, s->heldlen);
		s->heldlen = 0;
	}
	io_write(s->io, line, len);
	io_write(s->io, "\r\n", 2);
}

/*
 * A message from smtpfd for this session.  Returns -1 with the reason in
 * err for a protocol error (the link then drops every session).
 */
int
fsession_message(struct fsession *s, const struct smtpf_msg *msg, char *err,
    size_t errlen)
{
	switch (msg->type) {
	case SMTPF_REPLY:
		if (s->state != FS_OPEN)
			return fsession_wrong_state(s, msg, err, errlen);
		log_debug("%016" PRIx64 " smtpf >>> %s", s->id, msg->field[1]);
		fsession_reply_line(s, msg->field[1], msg->lastlen);
		if (!s->out_paused && io_queued(s->io) > FS_OUTPUT_MAX) {
			s->out_paused = 1;
			fsession_send(s, SMTPF_PAUSE, NULL);
		}
		return 0;
	case SMTPF_STARTTLS:
		if (s->state != FS_OPEN || s->tls || s->heldlen > 0 ||
		    (s->listener->tls != LISTEN_TLS_STARTTLS &&
		    s->listener->tls != LISTEN_TLS_REQUIRE))
			return fsession_wrong_state(s, msg, err, errlen);
		/*
		 * The 220 and the handshake in one step: the client starts
		 * its handshake as soon as it reads the 220, and nothing may
		 * read its socket in clear in between.
		 */
		fsession_enter_state(s, FS_STARTTLS_FLUSH);
		fsession_update_reading(s);
		io_write(s->io, msg->field[1], msg->lastlen);
		io_write(s->io, "\r\n", 2);
		return 0;
	case SMTPF_CLOSE:
		/* before tls too: smtpfd may give up on a client any time
		 * (but not in the middle of a reply) */
		if ((s->state != FS_OPEN && s->state != FS_STARTTLS_FLUSH &&
		    s->state != FS_STARTTLS) || s->heldlen > 0)
			return fsession_wrong_state(s, msg, err, errlen);
		if (s->state == FS_STARTTLS || io_queued(s->io) == 0) {
			fsession_end(s, "closed");
			return 0;
		}
		fsession_enter_state(s, FS_CLOSE_FLUSH);
		fsession_update_reading(s);
		return 0;
	case SMTPF_PAUSE:
	case SMTPF_RESUME:
		s->peer_paused = msg->type == SMTPF_PAUSE;
		fsession_update_reading(s);
		return 0;
	default:
		return fsession_wrong_state(s, msg, err, errlen);
	}
}

/* The link died: the client hears it from us, smtpfd cannot tell it. */
void
fsession_link_lost(struct fsession *s)
{
	smtpf_link_detach(s->link, s);
	switch (s->state) {
	case FS_TLS_ACCEPT:
	case FS_STARTTLS:
		/* nothing can be said in the middle of a handshake */
		fsession_end(s, "smtpf-lost-in-handshake");
		break;
	case FS_CLOSE_FLUSH:
		/* smtpfd already said its last word: let it be read */
		fsession_drain(s, "closed");
		break;
	default:
		s->heldlen = 0;		/* a reply cut short: never seen */
		io_printf(s->io, "421 4.3.0 Filtering service unavailable, "
		    "try again later\r\n");
		fsession_drain(s, "smtpf-lost");
		break;
	}
}

static void
fsession_send(struct fsession *s, enum smtpf_type type, const char *last)
{
	char		 sid[17];
	const char	*f[2];

	f[0] = sid_text(s, sid, sizeof(sid));
	f[1] = last;
	smtpf_link_send(s->link, type, f, last ? 2 : 1);
}

/* Tell smtpfd the session is over for it, and leave the link. */
static void
fsession_gone(struct fsession *s, const char *reason)
{
	if (s->link == NULL)
		return;
	if (s->id != 0)
		fsession_send(s, SMTPF_GONE, reason);
	smtpf_link_detach(s->link, s);
}

/*
 * Off the link: write what is queued for the client, then close.  Frees
 * the session at once when nothing is queued: the caller must not touch
 * it afterwards.
 */
static void
fsession_drain(struct fsession *s, const char *reason)
{
	s->reason = reason;
	fsession_enter_state(s, FS_DRAIN);
	io_pause(s->io);
	io_set_timeout(s->io, FS_DRAIN_TIMEOUT * 1000);
	if (io_queued(s->io) == 0)
		fsession_end(s, reason);
}

static void
fsession_end(struct fsession *s, const char *reason)
{
	fsession_gone(s, reason);
	log_info("%016" PRIx64 " smtpf disconnected reason=%s", s->id,
	    reason);
	TAILQ_REMOVE(&fsessions, s, entry);
	nfsessions--;
	smtp_fsession_gone();
	io_linger(s->io);
	free(s->held);
	free(s);
}
