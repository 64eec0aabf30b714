/*
 * The MTA side of smtpf (protocol/smtpf.md): one link per smtpfd
 * endpoint, connected when the smtp process starts and kept up.
 *
 *	IDLE -> SOCKET -> CONNECT -> [TLS ->] HELLO -> UP
 *	  ^                                            |
 *	  +--- retry timer (1s, doubling to 30s) <-----+-- lost, or CLOSING
 *
 * The smtp process lives chrooted in an empty directory, unprivileged,
 * so the parent makes the socket (MTAD_MSG_SMTPF_CONNECT, answered by
 * MTAD_MSG_SMTPF_SOCKET).  The parent never waits: a TCP connect still
 * in progress comes over as it is and is finished here.
 *
 * Session ids are this connection's random epoch in the high 32 bits and
 * a counter in the low ones.  A message for a session that is no longer
 * here is then told apart from one for a session that never was without
 * remembering every session that went: the first is a reply that crossed
 * our "gone" and is ignored, the second a protocol error.
 *
 * Anything malformed from smtpfd drops the link; its sessions end with
 * 421 (smtpf_session.c) and the link is tried again later.  mtad goes on.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "mtad.h"
#include "smtp.h"
#include "smtpf.h"
#include "xmalloc.h"

#define LINK_RETRY_MIN		1	/* seconds */
#define LINK_RETRY_MAX		30
#define LINK_HANDSHAKE_TIMEOUT	10	/* seconds: connect, TLS, hello */
#define LINK_PING_INTERVAL	30	/* idle seconds before a ping */
#define LINK_CLOSE_TIMEOUT	2	/* for our last error line */
#define LINK_OUTPUT_MAX		(256 * 1024)	/* then clients wait */

enum link_state {
	LINK_IDLE,	/* waiting for the retry timer */
	LINK_SOCKET,	/* asked the parent for a socket */
	LINK_CONNECT,	/* the connect is in progress */
	LINK_TLS,	/* TLS handshake (tls:// endpoints) */
	LINK_HELLO,	/* our hello sent, waiting for smtpfd's */
	LINK_UP,
	LINK_CLOSING,	/* writing our error line, then down */
};

static const char *link_state_names[] = {
	"idle", "socket", "connect", "tls", "hello", "up", "closing",
};

struct smtpf_link {
	struct smtpf_endpoint	*ep;
	enum link_state		 state;
	int			 fd;		/* LINK_CONNECT */
	struct event		 ev_connect;
	struct event		 ev_retry;
	struct io		*io;
	int			 backoff;	/* seconds before the next try */
	uint32_t		 epoch;		/* high half of our SIDs */
	uint32_t		 nopened;	/* low half of the last SID */
	int			 ping_pending;
	char			 ping_token[9];
	int			 blocked;	/* output over LINK_OUTPUT_MAX */
	TAILQ_HEAD(, fsession)	 sessions;
	size_t			 nsessions;
	size_t			 nup;		/* times it came up */
};

struct client_pki {
	TAILQ_ENTRY(client_pki)	 entry;
	char			*name;
	struct tls_config	*cfg;
};

static struct smtpf_link	*links;
static size_t			 nlinks;
static struct ipc_chan		*parent_chan;
static TAILQ_HEAD(, client_pki)	 client_pkis =
    TAILQ_HEAD_INITIALIZER(client_pkis);

static void	 link_request_socket(struct smtpf_link *);
static void	 link_retry(int, short, void *);
static void	 link_connected(int, short, void *);
static void	 link_io(struct io *, enum io_event, void *);
static void	 link_hello(struct smtpf_link *);
static void	 link_read(struct smtpf_link *);
static int	 link_dispatch(struct smtpf_link *, struct smtpf_msg *);
static int	 link_session_message(struct smtpf_link *, struct smtpf_msg *);
static void	 link_ping(struct smtpf_link *);
static void	 link_protocol_error(struct smtpf_link *, const char *);
static void	 link_lost(struct smtpf_link *, const char *);
static void	 link_fail_sessions(struct smtpf_link *);
static void	 link_down(struct smtpf_link *);
static void	 link_unblock(struct smtpf_link *);

void
smtpf_links_init(struct ipc_chan *parent)
{
	parent_chan = parent;
}

/*
 * Our client certificate and the CA smtpfd's certificate must be signed
 * by, for the tls:// endpoints that name this pki.
 */
void
smtpf_add_client_pki(const char *name, const void *cert, size_t certlen,
    const void *key, size_t keylen, const void *ca, size_t calen)
{
	struct client_pki	*cp;

	cp = xcalloc(1, sizeof(*cp));
	cp->name = xstrdup(name);
	if ((cp->cfg = tls_config_new()) == NULL)
		fatalx("tls_config_new");
	if (tls_config_set_keypair_mem(cp->cfg, cert, certlen, key,
	    keylen) == -1 || tls_config_set_ca_mem(cp->cfg, ca, calen) == -1)
		fatalx("pki %s: %s", name, tls_config_error(cp->cfg));
	TAILQ_INSERT_TAIL(&client_pkis, cp, entry);
}

static struct tls_config *
client_pki_find(const char *name)
{
	struct client_pki	*cp;

	TAILQ_FOREACH(cp, &client_pkis, entry)
		if (strcmp(cp->name, name) == 0)
			return cp->cfg;
	return NULL;
}

/* Configured: every endpoint gets its link, and they all connect now. */
void
smtpf_links_start(void)
{
	struct smtpf_endpoint	*e;
	struct smtpf_link	*l;

	nlinks = mtad_conf->nendpoints;
	if (nlinks == 0)
		return;
	links = xcalloc(nlinks, sizeof(*links));
	TAILQ_FOREACH(e, &mtad_conf->endpoints, entry) {
		if (e->transport == SMTPF_TRANSPORT_TLS &&
		    client_pki_find(e->pki) == NULL)
			fatalx("smtpf %s: pki %s has no cert, key and ca",
			    e->url, e->pki);
		l = &links[e->index];
		l->ep = e;
		l->fd = -1;
		l->backoff = LINK_RETRY_MIN;
		TAILQ_INIT(&l->sessions);
		evtimer_set(&l->ev_retry, link_retry, l);
		link_request_socket(l);
	}
}

const char *
smtpf_link_name(struct smtpf_link *l)
{
	return l->ep->url;
}

static void
link_enter_state(struct smtpf_link *l, enum link_state state)
{
	if (log_getverbose() > 1)
		log_debug("smtpf %s: state %s -> %s", l->ep->url,
		    link_state_names[l->state], link_state_names[state]);
	l->state = state;
}

static void
link_request_socket(struct smtpf_link *l)
{
	link_enter_state(l, LINK_SOCKET);
	ipc_begin(parent_chan, MTAD_MSG_SMTPF_CONNECT, -1);
	ipc_add_u32(parent_chan, l->ep->index);
	ipc_end(parent_chan);
}

static void
link_retry(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	link_request_socket(arg);
}

/* The parent's answer: -1 when it makes no sense (fatal, a bug). */
int
smtpf_link_socket(uint32_t index, int fd, const char *err)
{
	struct smtpf_link	*l;
	struct timeval		 tv = { LINK_HANDSHAKE_TIMEOUT, 0 };

	if (index >= nlinks || links[index].state != LINK_SOCKET ||
	    (fd == -1) == (err[0] == '\0')) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	l = &links[index];
	if (fd == -1) {
		link_lost(l, err);
		return 0;
	}
	l->fd = fd;
	link_enter_state(l, LINK_CONNECT);
	event_set(&l->ev_connect, fd, EV_WRITE, link_connected, l);
	event_add(&l->ev_connect, &tv);
	return 0;
}

/* The socket is writable: the connect is done, one way or the other. */
static void
link_connected(int fd, short event, void *arg)
{
	struct smtpf_link	*l = arg;
	struct tls		*ctx;
	char			 err[128];
	socklen_t		 len = sizeof(int);
	int			 error = 0;

	l->fd = -1;
	if (event & EV_TIMEOUT)
		error = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0 || (l->io = io_new(fd, link_io, l)) == NULL) {
		close(fd);
		snprintf(err, sizeof(err), "connect: %s",
		    strerror(error ? error : ENOMEM));
		link_lost(l, err);
		return;
	}
	io_set_timeout(l->io, LINK_HANDSHAKE_TIMEOUT * 1000);
	if (l->ep->transport == SMTPF_TRANSPORT_UNIX) {
		link_hello(l);
		return;
	}
	link_enter_state(l, LINK_TLS);
	/* Verifies smtpfd's certificate against the pki's ca and HOST. */
	if ((ctx = tls_client()) == NULL ||
	    tls_configure(ctx, client_pki_find(l->ep->pki)) == -1 ||
	    io_start_tls_client(l->io, ctx, l->ep->host) == -1) {
		snprintf(err, sizeof(err), "tls: %s", ctx ? tls_error(ctx) :
		    "tls_client failed");
		tls_free(ctx);
		link_lost(l, err);
	}
}

static void
link_hello(struct smtpf_link *l)
{
	char		 version[16];
	const char	*f[4];

	l->epoch = arc4random();
	l->nopened = 0;
	snprintf(version, sizeof(version), "%d.%d", SMTPF_VERSION_MAJOR,
	    SMTPF_VERSION_MINOR);
	f[0] = "smtpf";
	f[1] = version;
	f[2] = mtad_conf->hostname;
	f[3] = "";		/* no capabilities in 1.0 */
	link_enter_state(l, LINK_HELLO);
	smtpf_link_send(l, SMTPF_HELLO, f, 4);
}

static void
link_io(struct io *io, enum io_event evt, void *arg)
{
	struct smtpf_link	*l = arg;
	char			 info[128];

	switch (evt) {
	case IO_DATAIN:
		if (l->state == LINK_HELLO || l->state == LINK_UP)
			link_read(l);
		break;
	case IO_LOWAT:
		if (l->state == LINK_CLOSING)
			link_down(l);
		else if (l->blocked)
			link_unblock(l);
		break;
	case IO_TLSREADY:
		log_debug("smtpf %s: tls %s", l->ep->url,
		    io_tls_info(io, info, sizeof(info)));
		link_hello(l);
		break;
	case IO_TIMEOUT:
		if (l->state == LINK_CLOSING)
			link_down(l);
		else if (l->state != LINK_UP)
			link_lost(l, l->state == LINK_TLS ? "tls handshake "
			    "timed out" : "no hello from smtpfd");
		else if (l->ping_pending)
			link_lost(l, "no answer to ping");
		else
			link_ping(l);
		break;
	case IO_DISCONNECTED:
		if (l->state == LINK_CLOSING)
			link_down(l);
		else
			link_lost(l, "closed by smtpfd");
		break;
	case IO_ERROR:
		if (l->state == LINK_CLOSING)
			link_down(l);
		else
			link_lost(l, io_error(io));
		break;
	}
}

/* Every whole line in the input, while the link is still up. */
static void
link_read(struct smtpf_link *l)
{
	struct evbuffer_ptr	 eol;
	struct smtpf_msg	 msg;
	char			 line[SMTPF_LINE_MAX], err[128];
	size_t			 n;

	while (l->state == LINK_HELLO || l->state == LINK_UP) {
		eol = evbuffer_search_eol(l->io->in, NULL, NULL,
		    EVBUFFER_EOL_LF);
		if (eol.pos == -1) {
			if (evbuffer_get_length(l->io->in) >= SMTPF_LINE_MAX)
				link_protocol_error(l, "line too long");
			return;
		}
		n = (size_t)eol.pos;
		if (n + 1 > SMTPF_LINE_MAX) {
			link_protocol_error(l, "line too long");
			return;
		}
		evbuffer_remove(l->io->in, line, n);
		evbuffer_drain(l->io->in, 1);
		if (smtpf_parse(line, n, SMTPF_FROM_SMTPFD, &msg, err,
		    sizeof(err)) == -1) {
			link_protocol_error(l, err);
			return;
		}
		if (link_dispatch(l, &msg) == -1)
			return;
	}
}

/* Returns -1 when the link went down or is closing. */
static int
link_dispatch(struct smtpf_link *l, struct smtpf_msg *msg)
{
	char	 err[160];

	if (msg->type == SMTPF_ERROR) {
		log_warnx("smtpf %s: smtpfd gave up: %s", l->ep->url,
		    msg->field[1]);
		link_lost(l, "error from smtpfd");
		return -1;
	}
	if (l->state == LINK_HELLO && msg->type != SMTPF_HELLO) {
		snprintf(err, sizeof(err), "%s before hello",
		    smtpf_type_name(msg->type));
		link_protocol_error(l, err);
		return -1;
	}
	switch (msg->type) {
	case SMTPF_HELLO:
		if (l->state != LINK_HELLO) {
			link_protocol_error(l, "hello twice");
			return -1;
		}
		if (atoi(msg->field[1]) != SMTPF_VERSION_MAJOR) {
			snprintf(err, sizeof(err), "unsupported smtpf version "
			    "%s (this is %d.%d)", msg->field[1],
			    SMTPF_VERSION_MAJOR, SMTPF_VERSION_MINOR);
			link_protocol_error(l, err);
			return -1;
		}
		link_enter_state(l, LINK_UP);
		l->backoff = LINK_RETRY_MIN;
		l->nup++;
		io_set_timeout(l->io, LINK_PING_INTERVAL * 1000);
		log_info("smtpf %s: link up (smtpfd %s, smtpf %s)", l->ep->url,
		    msg->field[2], msg->field[1]);
		return 0;
	case SMTPF_PING:
		smtpf_link_send(l, SMTPF_PONG, &msg->field[0], 1);
		return 0;
	case SMTPF_PONG:
		if (l->ping_pending && strcmp(msg->field[0],
		    l->ping_token) == 0)
			l->ping_pending = 0;
		return 0;
	default:
		return link_session_message(l, msg);
	}
}

static int
link_session_message(struct smtpf_link *l, struct smtpf_msg *msg)
{
	struct fsession	*s;
	char		 err[160];
	uint32_t	 low = (uint32_t)msg->sid;

	TAILQ_FOREACH(s, &l->sessions, link_entry)
		if (s->id == msg->sid)
			break;
	if (s == NULL) {
		if ((uint32_t)(msg->sid >> 32) == l->epoch && low != 0 &&
		    low <= l->nopened)
			return 0;	/* crossed our gone */
		snprintf(err, sizeof(err), "%s for unknown session %016"
		    PRIx64, smtpf_type_name(msg->type), msg->sid);
		link_protocol_error(l, err);
		return -1;
	}
	if (fsession_message(s, msg, err, sizeof(err)) == -1) {
		link_protocol_error(l, err);
		return -1;
	}
	return 0;
}

static void
link_ping(struct smtpf_link *l)
{
	const char	*f[1];

	snprintf(l->ping_token, sizeof(l->ping_token), "%08x",
	    arc4random());
	f[0] = l->ping_token;
	l->ping_pending = 1;
	smtpf_link_send(l, SMTPF_PING, f, 1);
}

/*
 * smtpfd said something we cannot take: tell it why (for its logs),
 * end every session, and close once that line is written.
 */
static void
link_protocol_error(struct smtpf_link *l, const char *reason)
{
	char		 text[256];
	const char	*f[2];

	log_warnx("smtpf %s: protocol error: %s", l->ep->url, reason);
	link_fail_sessions(l);
	/* the reason quotes smtpfd's bytes: keep it one short line */
	snprintf(text, sizeof(text), "%s", reason);
	text[strcspn(text, "\n")] = '\0';
	f[0] = "-";
	f[1] = text;
	smtpf_link_send(l, SMTPF_ERROR, f, 2);
	link_enter_state(l, LINK_CLOSING);
	io_pause(l->io);
	io_set_timeout(l->io, LINK_CLOSE_TIMEOUT * 1000);
}

static void
link_lost(struct smtpf_link *l, const char *reason)
{
	if (l->state == LINK_UP)
		log_warnx("smtpf %s: link lost: %s", l->ep->url, reason);
	else
		log_warnx("smtpf %s: cannot connect: %s", l->ep->url, reason);
	link_fail_sessions(l);
	link_down(l);
}

static void
link_fail_sessions(struct smtpf_link *l)
{
	struct fsession	*s;

	while ((s = TAILQ_FIRST(&l->sessions)) != NULL) {
		fsession_link_lost(s);
		if (TAILQ_FIRST(&l->sessions) == s)
			fatalx("smtpf: session still on a lost link");
	}
}

static void
link_down(struct smtpf_link *l)
{
	struct timeval	 tv = { l->backoff, 0 };

	io_free(l->io);
	l->io = NULL;
	l->blocked = 0;
	l->ping_pending = 0;
	link_enter_state(l, LINK_IDLE);
	log_info("smtpf %s: next try in %ds", l->ep->url, l->backoff);
	evtimer_add(&l->ev_retry, &tv);
	l->backoff *= 2;
	if (l->backoff > LINK_RETRY_MAX)
		l->backoff = LINK_RETRY_MAX;
}

/* smtpfd read what we had for it: the clients may talk again. */
static void
link_unblock(struct smtpf_link *l)
{
	struct fsession	*s, *next;

	log_debug("smtpf %s: output drained, clients resume", l->ep->url);
	l->blocked = 0;
	/* resuming a client may end it (a NUL): keep the next one first */
	for (s = TAILQ_FIRST(&l->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link_entry);
		fsession_update_reading(s);
	}
}

/* Round robin over the listener's endpoints whose link is up. */
struct smtpf_link *
smtpf_link_pick(struct listener *listener)
{
	struct smtpf_link	*l;
	size_t			 i, k;

	for (i = 0; i < listener->nfilters; i++) {
		k = (listener->filter_next + i) % listener->nfilters;
		l = &links[listener->filters[k]->index];
		if (l->state == LINK_UP && l->nopened < UINT32_MAX) {
			listener->filter_next = k + 1;
			return l;
		}
	}
	return NULL;
}

/* A new session id on this connection. */
uint64_t
smtpf_link_open(struct smtpf_link *l)
{
	return ((uint64_t)l->epoch << 32) | ++l->nopened;
}

void
smtpf_link_attach(struct smtpf_link *l, struct fsession *s)
{
	TAILQ_INSERT_TAIL(&l->sessions, s, link_entry);
	l->nsessions++;
	s->link = l;
}

void
smtpf_link_detach(struct smtpf_link *l, struct fsession *s)
{
	TAILQ_REMOVE(&l->sessions, s, link_entry);
	l->nsessions--;
	s->link = NULL;
}

int
smtpf_link_blocked(struct smtpf_link *l)
{
	return l->blocked;
}

/*
 * Queue one message.  Our own fields always fit their kinds (the grammar
 * and smtpf_session.c see to it): one that does not is a bug.
 */
void
smtpf_link_send(struct smtpf_link *l, enum smtpf_type type,
    const char *fields[], size_t nfields)
{
	char	 buf[SMTPF_LINE_MAX];
	int	 len;

	if ((len = smtpf_format(buf, sizeof(buf), type, fields,
	    nfields)) == -1)
		fatalx("smtpf %s: cannot format a %s message", l->ep->url,
		    smtpf_type_name(type));
	if (l->io->fail_pending)
		return;		/* the link is failing: IO_ERROR is due */
	if (io_write(l->io, buf, (size_t)len) == -1) {
		/* The io reports IO_ERROR next turn: the link is lost. */
		log_warnx("smtpf %s: out of memory for a %s message",
		    l->ep->url, smtpf_type_name(type));
		return;
	}
	if (!l->blocked && io_queued(l->io) > LINK_OUTPUT_MAX) {
		/* smtpfd is slow: its clients wait until it catches up */
		log_debug("smtpf %s: output over %d bytes, clients wait",
		    l->ep->url, LINK_OUTPUT_MAX);
		l->blocked = 1;
	}
}

/* mtactl show stats */
void
smtpf_link_stats(struct ipc_chan *chan, uint64_t client)
{
	size_t	 i, up = 0;

	for (i = 0; i < nlinks; i++)
		up += links[i].state == LINK_UP;
	ctl_line(chan, client, "smtpf.links=%zu", nlinks);
	ctl_line(chan, client, "smtpf.links.up=%zu", up);
	ctl_line(chan, client, "smtpf.sessions=%zu", fsession_count());
	for (i = 0; i < nlinks; i++)
		ctl_line(chan, client, "smtpf.link.%zu=%s %s sessions=%zu "
		    "connected=%zu", i, links[i].ep->url,
		    link_state_names[links[i].state], links[i].nsessions,
		    links[i].nup);
}
