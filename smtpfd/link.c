/*
 * smtpf streams from MTAs (protocol/smtpf.md): one per MTA connection,
 * carrying many client sessions.  The MTA does the socket and TLS work
 * with its clients; here each of its sessions becomes a session of ours
 * whose front is this stream.
 *
 * Anything malformed is a protocol error: the stream is dropped and
 * every session on it ends, its downstream transaction unfinished.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "netaddr.h"
#include "session.h"
#include "smtpf.h"
#include "xmalloc.h"

enum link_state {
	L_TLS,			/* TLS handshake (smtpf over TCP) */
	L_HELLO,		/* waiting for the MTA's hello */
	L_RUNNING,
};

struct link_session {
	TAILQ_ENTRY(link_session) entry;
	uint64_t		 sid;
	struct session		*session;
	struct link		*link;
	int			 closed;	/* we sent close */
	int			 tls_pending;	/* starttls sent, no tls yet */
};

struct link {
	TAILQ_ENTRY(link)	 entry;
	struct io		*io;
	struct listener		*listener;
	enum link_state		 state;
	char			 peer[256];
	TAILQ_HEAD(, link_session) sessions;
	size_t			 nsessions;
};

static TAILQ_HEAD(, link)	links = TAILQ_HEAD_INITIALIZER(links);
static size_t			nlinks;

static void	 link_io(struct io *, enum io_event, void *);
static void	 link_read(struct link *);
static void	 link_drop(struct link *, const char *);
static void	 link_send(struct link *, enum smtpf_type, const char *[],
		    size_t);
static void	 ls_reply(struct session *, const char *);
static void	 ls_starttls(struct session *, const char *);
static void	 ls_close(struct session *);
static void	 ls_pause(struct session *);
static void	 ls_resume(struct session *);

static const struct front_ops link_ops = {
	.reply = ls_reply,
	.starttls = ls_starttls,
	.close = ls_close,
	.pause = ls_pause,
	.resume = ls_resume,
};

size_t
links_count(void)
{
	return nlinks;
}

/* Sessions opened from now on use the new configuration. */
void
links_reconfigured(void)
{
	struct link	*k;

	TAILQ_FOREACH(k, &links, entry)
		if ((k->listener = listener_find(k->listener->index)) == NULL)
			fatalx("reload lost an smtpf listener");
}

void
link_accept(struct listener *l, int fd, const struct sockaddr_storage *ss)
{
	struct link	*k;
	char		 addr[INET6_ADDRSTRLEN];
	int		 port;

	k = xcalloc(1, sizeof(*k));
	k->listener = l;
	TAILQ_INIT(&k->sessions);
	sockaddr_text(ss, addr, sizeof(addr), &port);
	/* The log names a stream by its socket, or its peer's address. */
	if (l->kind == LISTENER_SMTPF_UNIX)
		snprintf(k->peer, sizeof(k->peer), "%s", l->on);
	else
		snprintf(k->peer, sizeof(k->peer), "%s:%d", addr, port);
	if ((k->io = io_new(fd, link_io, k)) == NULL) {
		log_warn("smtpf %s: stream refused", k->peer);
		close(fd);
		free(k);
		return;
	}
	TAILQ_INSERT_TAIL(&links, k, entry);
	nlinks++;
	/* Nothing but hello until the MTA said who it is. */
	io_set_timeout(k->io, 60 * 1000);
	if (l->kind == LISTENER_SMTPF_TLS) {
		k->state = L_TLS;
		if (io_start_tls_server(k->io, l->tls_ctx) == -1)
			link_drop(k, io_error(k->io));
		return;
	}
	k->state = L_HELLO;
}

static void
link_free(struct link *k)
{
	TAILQ_REMOVE(&links, k, entry);
	nlinks--;
	io_free(k->io);
	free(k);
}

/* End every session of the stream, then the stream. */
static void
link_drop(struct link *k, const char *why)
{
	struct link_session	*ls;

	log_warnx("smtpf %s: %s: dropping the stream and its %zu sessions",
	    k->peer, why, k->nsessions);
	while ((ls = TAILQ_FIRST(&k->sessions)) != NULL) {
		TAILQ_REMOVE(&k->sessions, ls, entry);
		session_client_gone(ls->session, "smtpf stream lost");
		free(ls);
	}
	k->nsessions = 0;
	link_free(k);
}

static void
link_io(struct io *io, enum io_event event, void *arg)
{
	struct link	*k = arg;
	const char	*subject;

	switch (event) {
	case IO_DATAIN:
		link_read(k);
		return;
	case IO_LOWAT:
		return;
	case IO_TLSREADY:
		subject = tls_peer_cert_subject(io->tls);
		log_info("smtpf %s: TLS stream from \"%s\"", k->peer,
		    subject ? subject : "?");
		k->state = L_HELLO;
		return;
	case IO_TIMEOUT:
		link_drop(k, "no hello");
		return;
	case IO_DISCONNECTED:
		link_drop(k, "closed by the MTA");
		return;
	case IO_ERROR:
		link_drop(k, io_error(io));
		return;
	}
}

static struct link_session *
link_session_find(struct link *k, uint64_t sid)
{
	struct link_session	*ls;

	TAILQ_FOREACH(ls, &k->sessions, entry)
		if (ls->sid == sid)
			return ls;
	return NULL;
}

static void
sid_text(uint64_t sid, char *buf, size_t size)
{
	snprintf(buf, size, "%016" PRIx64, sid);
}

static int
link_hello(struct link *k, struct smtpf_msg *m)
{
	char		 vers[16];
	const char	*f[4];
	unsigned long	 major = strtoul(m->field[1], NULL, 10);

	if (major != SMTPF_VERSION_MAJOR) {
		log_warnx("smtpf %s: refused: it speaks smtpf %s, this is "
		    "%d.%d", k->peer, m->field[1], SMTPF_VERSION_MAJOR,
		    SMTPF_VERSION_MINOR);
		io_printf(k->io, "error|-|unsupported smtpf version %s (this "
		    "is %d.%d)\n", m->field[1], SMTPF_VERSION_MAJOR,
		    SMTPF_VERSION_MINOR);
		return -1;
	}
	log_info("smtpf %s: MTA %s speaks smtpf %s", k->peer, m->field[2],
	    m->field[1]);
	snprintf(vers, sizeof(vers), "%d.%d", SMTPF_VERSION_MAJOR,
	    SMTPF_VERSION_MINOR);
	f[0] = "smtpf";
	f[1] = vers;
	f[2] = smtpfd_conf->hostname;
	f[3] = "";
	link_send(k, SMTPF_HELLO, f, 4);
	k->state = L_RUNNING;
	io_set_timeout(k->io, 0);
	return 0;
}

static int
link_open(struct link *k, struct smtpf_msg *m)
{
	struct link_session	*ls;
	struct client_info	 info;
	const char		*mode = m->field[6];

	memset(&info, 0, sizeof(info));
	snprintf(info.local_addr, sizeof(info.local_addr), "%s", m->field[1]);
	info.local_port = atoi(m->field[2]);
	snprintf(info.addr, sizeof(info.addr), "%s", m->field[3]);
	info.port = atoi(m->field[4]);
	if (strcmp(m->field[5], "-") != 0)
		snprintf(info.tag, sizeof(info.tag), "%s", m->field[5]);
	if (strcmp(m->field[7], "-") != 0)
		snprintf(info.rdns, sizeof(info.rdns), "%s", m->field[7]);
	ls = xcalloc(1, sizeof(*ls));
	ls->sid = m->sid;
	ls->link = k;
	TAILQ_INSERT_TAIL(&k->sessions, ls, entry);
	k->nsessions++;
	if (sessions_count() >= smtpfd_conf->max_sessions) {
		/* Not a protocol error: this client is turned away. */
		const char	*f[2];
		char		 sid[17];

		sid_text(m->sid, sid, sizeof(sid));
		f[0] = sid;
		f[1] = "421 4.3.2 Too many sessions, try again later";
		link_send(k, SMTPF_REPLY, f, 2);
		link_send(k, SMTPF_CLOSE, f, 1);
		ls->closed = 1;		/* it waits for gone, no session */
		return 0;
	}
	ls->session = session_new(k->listener, &link_ops, ls, &info,
	    strcmp(mode, "starttls") == 0 || strcmp(mode, "require") == 0,
	    strcmp(mode, "require") == 0);
	if (ls->session == NULL) {
		const char	*f[2];
		char		 sid[17];

		sid_text(m->sid, sid, sizeof(sid));
		f[0] = sid;
		f[1] = "421 4.3.0 Temporary failure, try again later";
		link_send(k, SMTPF_REPLY, f, 2);
		link_send(k, SMTPF_CLOSE, f, 1);
		ls->closed = 1;		/* it waits for gone */
	}
	return 0;
}

static void
link_line(struct link_session *ls, struct smtpf_msg *m)
{
	struct session	*s = ls->session;
	const char	*end = m->field[1];

	if (s == NULL || ls->closed)
		return;		/* we are closing it: nothing matters */
	if (s->state == S_TLS) {
		/*
		 * Sent in clear text after STARTTLS, before the MTA saw our
		 * starttls: it must not count as said under TLS.
		 */
		log_warnx("%016" PRIx64 " smtp dropped %zu bytes sent in clear "
		    "text after STARTTLS", s->id, m->lastlen);
		return;
	}
	if (evbuffer_add(s->cin, m->field[2], m->lastlen) == -1) {
		session_fail(s, "421 4.3.0 Temporary failure, try again later",
		    "out of memory for client input");
		return;
	}
	if (strcmp(end, "crlf") == 0)
		evbuffer_add(s->cin, "\r\n", 2);
	else if (strcmp(end, "lf") == 0)
		evbuffer_add(s->cin, "\n", 1);
	else if (strcmp(end, "eof") == 0)
		s->cin_eof = 1;
	session_client_input(s);
}

/* One message from the MTA; -1 is a protocol error (err says why). */
static int
link_dispatch(struct link *k, struct smtpf_msg *m, char *err, size_t errlen)
{
	struct link_session	*ls = NULL;
	const char		*f[1];
	char			 info[256];

	if (k->state == L_HELLO) {
		if (m->type != SMTPF_HELLO) {
			snprintf(err, errlen, "%s before hello",
			    smtpf_type_name(m->type));
			return -1;
		}
		return link_hello(k, m);
	}
	if (m->type == SMTPF_OPEN) {
		if (link_session_find(k, m->sid) != NULL) {
			snprintf(err, errlen, "open of a known session");
			return -1;
		}
		return link_open(k, m);
	}
	if (m->has_sid && (ls = link_session_find(k, m->sid)) == NULL &&
	    m->type != SMTPF_ERROR) {
		snprintf(err, errlen, "%s for an unknown session",
		    smtpf_type_name(m->type));
		return -1;
	}
	switch (m->type) {
	case SMTPF_LINE:
		link_line(ls, m);
		return 0;
	case SMTPF_TLS:
		ls->tls_pending = 0;
		if (ls->session != NULL && !ls->closed) {
			/* "TLSv1.3:TLS_AES_256_GCM_SHA384:256", as reported */
			snprintf(info, sizeof(info), "%s:%s:%s", m->field[1],
			    m->field[2], m->field[3]);
			session_tls_ready(ls->session, info);
		}
		return 0;
	case SMTPF_GONE:
		TAILQ_REMOVE(&k->sessions, ls, entry);
		k->nsessions--;
		if (ls->session != NULL)
			session_client_gone(ls->session, m->field[1]);
		free(ls);
		return 0;
	case SMTPF_PAUSE:
	case SMTPF_RESUME:
		if (ls->session != NULL)
			session_front_full(ls->session,
			    m->type == SMTPF_PAUSE);
		return 0;
	case SMTPF_PING:
		f[0] = m->field[0];
		link_send(k, SMTPF_PONG, f, 1);
		return 0;
	case SMTPF_PONG:
		return 0;
	case SMTPF_ERROR:
		snprintf(err, errlen, "the MTA gave up: %s",
		    m->field[m->nfields - 1]);
		return -1;
	default:
		snprintf(err, errlen, "unexpected %s",
		    smtpf_type_name(m->type));
		return -1;
	}
}

static void
link_read(struct link *k)
{
	struct smtpf_msg	 m;
	char			*line, err[256];
	size_t			 len;

	while ((line = evbuffer_readln(k->io->in, &len,
	    EVBUFFER_EOL_LF)) != NULL) {
		if (smtpf_parse(line, len, SMTPF_FROM_MTA, &m, err,
		    sizeof(err)) == -1 ||
		    link_dispatch(k, &m, err, sizeof(err)) == -1) {
			free(line);
			link_drop(k, err);
			return;
		}
		free(line);
	}
	if (evbuffer_get_length(k->io->in) >= SMTPF_LINE_MAX)
		link_drop(k, "line too long");
}

static void
link_send(struct link *k, enum smtpf_type type, const char *f[], size_t n)
{
	char	 buf[SMTPF_LINE_MAX];
	int	 len;

	if ((len = smtpf_format(buf, sizeof(buf), type, f, n)) == -1)
		fatalx("smtpf %s: cannot format %s", k->peer,
		    smtpf_type_name(type));
	io_write(k->io, buf, (size_t)len);
}

static void
ls_send(struct session *s, enum smtpf_type type, const char *text)
{
	struct link_session	*ls = s->front_ctx;
	const char		*f[2];
	char			 sid[17];

	sid_text(ls->sid, sid, sizeof(sid));
	f[0] = sid;
	f[1] = text;
	link_send(ls->link, type, f, text ? 2 : 1);
}

static void
ls_reply(struct session *s, const char *line)
{
	struct link_session	*ls = s->front_ctx;
	char			 buf[SMTPF_LINE_MAX - 64];

	/*
	 * Between starttls and the MTA's tls, nothing but close may be
	 * sent (a reply would go in clear text into a handshake): e.g. a
	 * downstream that times out meanwhile.
	 */
	if (ls->tls_pending) {
		log_debug("%016" PRIx64 " smtp reply dropped during the TLS "
		    "handshake: %s", s->id, line);
		return;
	}
	/* Replies are short; a monster from downstream is cut. */
	snprintf(buf, sizeof(buf), "%s", line);
	ls_send(s, SMTPF_REPLY, buf);
}

static void
ls_starttls(struct session *s, const char *reply)
{
	struct link_session	*ls = s->front_ctx;

	ls->tls_pending = 1;
	ls_send(s, SMTPF_STARTTLS, reply);
}

static void
ls_close(struct session *s)
{
	struct link_session	*ls = s->front_ctx;

	if (ls->closed)
		return;
	ls->closed = 1;
	ls_send(s, SMTPF_CLOSE, NULL);
}

static void
ls_pause(struct session *s)
{
	ls_send(s, SMTPF_PAUSE, NULL);
}

static void
ls_resume(struct session *s)
{
	ls_send(s, SMTPF_RESUME, NULL);
}
