/*
 * The smtp process: it receives its listening sockets, certificates and
 * table contents from the parent, accepts clients, and runs one session
 * per client (smtp_session.c).  It asks the queue process for a message
 * file at DATA and for the commit at the end of DATA.  The clients of a
 * "filter smtpf" listener go to smtpfd instead (smtpf_session.c, over
 * the links of smtpf_link.c), and never reach the queue from here.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mtad.h"
#include "smtp.h"
#include "xmalloc.h"

#define ACCEPT_PAUSE_SECONDS	1
/*
 * Descriptors: a session holds its client's socket and, in DATA, its
 * message file; FD_RESERVE is for the rest (listening sockets, IPC,
 * smtpf links, logs, the sessions on their way out).  More sessions
 * than the limit holds are refused with 421 like those past
 * max-sessions: out of descriptors, the kernel would drop a message
 * file the queue passes (MSG_CTRUNC), and IPC takes that as malformed.
 */
#define FD_PER_SESSION		2
#define FD_RESERVE		64

struct listen_sock {
	TAILQ_ENTRY(listen_sock) entry;
	int			 fd;
	struct listener		*listener;
	struct event		 ev;
};

struct tls_server {
	TAILQ_ENTRY(tls_server)	 entry;
	char			*pki;
	struct tls		*ctx;
};

static TAILQ_HEAD(, listen_sock) socks = TAILQ_HEAD_INITIALIZER(socks);
static TAILQ_HEAD(, tls_server) tls_servers =
    TAILQ_HEAD_INITIALIZER(tls_servers);
static TAILQ_HEAD(, session)	 sessions = TAILQ_HEAD_INITIALIZER(sessions);
static size_t			 nsessions;
static size_t			 fd_sessions_max;	/* what the limit holds */
static struct event		 ev_accept_pause;
static int			 paused;	/* mtactl pause smtp */
static size_t			 stat_sessions, stat_messages;

static void	 smtp_accept(int, short, void *);
static void	 smtp_accept_resume(int, short, void *);
static struct session *smtp_session_by_id(uint64_t);

/* The soft descriptor limit raised to the hard one, and what it holds. */
static void
smtp_fd_limit(void)
{
	struct rlimit	 rl;
	rlim_t		 n;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("getrlimit");
	if (rl.rlim_cur < rl.rlim_max) {
		n = rl.rlim_cur;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			rl.rlim_cur = n;
	}
	n = rl.rlim_cur;
	if (n == RLIM_INFINITY || n > (rlim_t)SIZE_MAX / 2)
		fd_sessions_max = SIZE_MAX;
	else if (n <= FD_RESERVE)
		fd_sessions_max = 0;
	else
		fd_sessions_max = (size_t)(n - FD_RESERVE) / FD_PER_SESSION;
}

void
smtp_init(struct ipc_chan *parent)
{
	if (tls_init() == -1)
		fatalx("tls_init");
	smtp_fd_limit();
	smtpf_links_init(parent);
	evtimer_set(&ev_accept_pause, smtp_accept_resume, NULL);
}

static void
smtp_add_tls_server(const char *name, const void *cert, size_t certlen,
    const void *key, size_t keylen)
{
	struct tls_server	*ts;
	struct tls_config	*cfg;

	if ((cfg = tls_config_new()) == NULL)
		fatalx("tls_config_new");
	if (tls_config_set_keypair_mem(cfg, cert, certlen, key, keylen) == -1)
		fatalx("pki %s: %s", name, tls_config_error(cfg));
	ts = xcalloc(1, sizeof(*ts));
	ts->pki = xstrdup(name);
	if ((ts->ctx = tls_server()) == NULL)
		fatalx("tls_server");
	if (tls_configure(ts->ctx, cfg) == -1)
		fatalx("pki %s: %s", name, tls_error(ts->ctx));
	tls_config_free(cfg);
	TAILQ_INSERT_TAIL(&tls_servers, ts, entry);
}

struct tls *
smtp_tls_server(const char *pki)
{
	struct tls_server	*ts;

	if (pki == NULL)
		return NULL;
	TAILQ_FOREACH(ts, &tls_servers, entry)
		if (strcmp(ts->pki, pki) == 0)
			return ts->ctx;
	return NULL;
}

static void
smtp_add_listener(uint32_t index, int fd)
{
	struct listen_sock	*ls;

	ls = xcalloc(1, sizeof(*ls));
	ls->fd = fd;
	if ((ls->listener = listener_find(index)) == NULL)
		fatalx("socket for unknown listener %u", index);
	TAILQ_INSERT_TAIL(&socks, ls, entry);
}

void
smtp_configured(struct ipc_chan *parent)
{
	struct listen_sock	*ls;

	(void)parent;
	if (fd_sessions_max < mtad_conf->max_sessions)
		log_warnx("the descriptor limit holds %zu sessions: more are "
		    "refused (smtp limit max-sessions %zu; raise the limit, "
		    "e.g. LimitNOFILE=)", fd_sessions_max,
		    mtad_conf->max_sessions);
	TAILQ_FOREACH(ls, &socks, entry) {
		if (ls->listener->tls != LISTEN_TLS_NONE &&
		    smtp_tls_server(ls->listener->pki) == NULL)
			fatalx("listen on %s: pki %s has no certificate and "
			    "key", ls->listener->on, ls->listener->pki);
		event_set(&ls->ev, ls->fd, EV_READ | EV_PERSIST, smtp_accept,
		    ls);
		event_add(&ls->ev, NULL);
	}
	smtpf_links_start();
}

static void
smtp_accept_resume(int fd, short event, void *arg)
{
	struct listen_sock	*ls;

	(void)fd;
	(void)event;
	(void)arg;
	if (paused)
		return;
	TAILQ_FOREACH(ls, &socks, entry)
		event_add(&ls->ev, NULL);
}

static void
smtp_accept(int fd, short event, void *arg)
{
	static const char	 busy[] = "421 4.3.2 Too many sessions, "
	    "try again later\r\n";
	static const char	 tempfail[] = "421 4.3.0 Temporary failure, "
	    "try again later\r\n";
	struct listen_sock	*ls = arg, *l;
	struct sockaddr_storage	 ss;
	struct session		*s;
	struct timeval		 tv = { ACCEPT_PAUSE_SECONDS, 0 };
	socklen_t		 len = sizeof(ss);
	int			 cfd, r;

	(void)event;
	if ((cfd = accept4(fd, (struct sockaddr *)&ss, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* Out of descriptors: stop accepting for a while. */
			log_warn("accept");
			TAILQ_FOREACH(l, &socks, entry)
				event_del(&l->ev);
			evtimer_add(&ev_accept_pause, &tv);
		}
		return;
	}
	/*
	 * Replies are small and pipelined clients wait for each of them:
	 * Nagle's algorithm against the client's delayed ACK would add tens
	 * of milliseconds to every exchange.
	 */
	if (ss.ss_family != AF_UNIX)
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
	if (nsessions >= mtad_conf->max_sessions ||
	    nsessions >= fd_sessions_max) {
		/* Best effort: the client is refused either way. */
		(void)!write(cfd, busy, sizeof(busy) - 1);
		close(cfd);
		log_warnx("refused a client: %zu sessions already%s", nsessions,
		    nsessions < mtad_conf->max_sessions ?
		    " (the descriptor limit)" : "");
		return;
	}
	if (ls->listener->nfilters > 0) {
		/* counted first: it may end before fsession_new returns */
		nsessions++;
		r = fsession_new(ls->listener, cfd, &ss);
		if (r == 0) {
			stat_sessions++;
			return;
		}
		nsessions--;
		if (r == -1)
			return;
		/* bypass: no smtpfd is up, the session runs unfiltered */
	}
	if ((s = session_new(ls->listener, cfd, &ss)) == NULL) {
		(void)!write(cfd, tempfail, sizeof(tempfail) - 1);
		close(cfd);
		return;
	}
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	nsessions++;
	stat_sessions++;
}

void
smtp_count_message(void)
{
	stat_messages++;
}

/* mtactl pause|resume smtp, show stats */
void
smtp_ctl(struct ipc_chan *chan, uint64_t client, uint32_t cmd,
    const char *arg)
{
	struct listen_sock	*ls;

	(void)arg;
	switch (cmd) {
	case CTL_PAUSE_SMTP:
	case CTL_RESUME_SMTP:
		paused = cmd == CTL_PAUSE_SMTP;
		TAILQ_FOREACH(ls, &socks, entry) {
			if (paused)
				event_del(&ls->ev);
			else
				event_add(&ls->ev, NULL);
		}
		log_info("smtp %s", paused ? "paused" : "resumed");
		ctl_end(chan, client, 0, "smtp %s", paused ? "paused: no new "
		    "sessions" : "resumed");
		return;
	case CTL_SHOW_STATS:
		ctl_line(chan, client, "smtp.sessions=%zu", nsessions);
		ctl_line(chan, client, "smtp.sessions.total=%zu",
		    stat_sessions);
		ctl_line(chan, client, "smtp.messages=%zu", stat_messages);
		ctl_line(chan, client, "smtp.paused=%s", paused ? "yes" : "no");
		smtpf_link_stats(chan, client);
		ctl_end(chan, client, 0, "%s", "");
		return;
	}
	ctl_end(chan, client, 1, "unexpected request");
}

void
smtp_fsession_gone(void)
{
	nsessions--;
}

void
smtp_session_gone(struct session *s)
{
	TAILQ_REMOVE(&sessions, s, entry);
	nsessions--;
}

static struct session *
smtp_session_by_id(uint64_t id)
{
	struct session	*s;

	TAILQ_FOREACH(s, &sessions, entry)
		if (s->id == id)
			return s;
	return NULL;
}

void
smtp_request_message(struct session *s)
{
	struct ipc_chan	*queue = proc_peer("queue");

	ipc_begin(queue, MTAD_MSG_MESSAGE_CREATE, -1);
	ipc_add_u64(queue, s->id);
	ipc_end(queue);
}

void
smtp_request_commit(struct session *s)
{
	struct ipc_chan	*queue = proc_peer("queue");
	char		 buf[8192];
	size_t		 i;

	for (i = 0; i < s->tx->nrcpts; i++) {
		if (envelope_dump(&s->tx->rcpts[i], buf, sizeof(buf)) == -1)
			fatalx("envelope too large");
		ipc_begin(queue, MTAD_MSG_ENVELOPE, -1);
		ipc_add_u32(queue, s->tx->msgid);
		ipc_add_string(queue, buf);
		ipc_end(queue);
	}
	ipc_begin(queue, MTAD_MSG_MESSAGE_COMMIT, -1);
	ipc_add_u64(queue, s->id);
	ipc_add_u32(queue, s->tx->msgid);
	ipc_end(queue);
}

void
smtp_request_rollback(uint32_t msgid)
{
	struct ipc_chan	*queue = proc_peer("queue");

	ipc_begin(queue, MTAD_MSG_MESSAGE_ROLLBACK, -1);
	ipc_add_u32(queue, msgid);
	ipc_end(queue);
}

int
smtp_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	struct session	*s;
	const void	*cert, *key, *ca;
	const char	*name, *k;
	size_t		 certlen, keylen, calen;
	uint64_t	 req;
	uint32_t	 u;
	int		 r;

	if ((r = table_dispatch(chan, msg)) != 0)
		return r == 1 ? 0 : -1;
	/* Sockets and certificates come from the parent only. */
	if ((msg->type == MTAD_MSG_LISTENER || msg->type == MTAD_MSG_PKI ||
	    msg->type == MTAD_MSG_SMTPF_SOCKET) && strcmp(chan->peer, "parent"))
		return -1;
	switch (msg->type) {
	case MTAD_MSG_CTL_REQUEST:
		if (strcmp(chan->peer, "control") != 0)
			return -1;
		req = ipc_get_u64(msg);
		u = ipc_get_u32(msg);
		k = ipc_get_string(msg);
		ipc_get_end(msg);
		smtp_ctl(chan, req, u, k);
		return 0;
	case MTAD_MSG_LISTENER:
		u = ipc_get_u32(msg);
		ipc_get_end(msg);
		smtp_add_listener(u, msg->fd);
		return 0;
	case MTAD_MSG_PKI:
		name = ipc_get_string(msg);
		cert = ipc_get_data(msg, &certlen);
		key = ipc_get_data(msg, &keylen);
		ca = ipc_get_data(msg, &calen);
		ipc_get_end(msg);
		smtp_add_tls_server(name, cert, certlen, key, keylen);
		if (calen > 0)
			smtpf_add_client_pki(name, cert, certlen, key, keylen,
			    ca, calen);
		/* The key stays in libtls only. */
		explicit_bzero((void *)(uintptr_t)key, keylen);
		return 0;
	case MTAD_MSG_SMTPF_SOCKET:
		u = ipc_get_u32(msg);
		k = ipc_get_string(msg);
		ipc_get_end(msg);
		return smtpf_link_socket(u, msg->fd, k);
	case MTAD_MSG_MESSAGE_CREATED:
		if (strcmp(chan->peer, "queue") != 0)
			return -1;
		req = ipc_get_u64(msg);
		u = ipc_get_u32(msg);
		ipc_get_end(msg);
		if ((s = smtp_session_by_id(req)) == NULL) {
			/* The client left while we waited. */
			if (msg->fd != -1) {
				close(msg->fd);
				smtp_request_rollback(u);
			}
			return 0;
		}
		session_message_created(s, u, msg->fd);
		return 0;
	case MTAD_MSG_MESSAGE_COMMITTED:
		if (strcmp(chan->peer, "queue") != 0)
			return -1;
		req = ipc_get_u64(msg);
		u = ipc_get_u32(msg);
		ipc_get_end(msg);
		if ((s = smtp_session_by_id(req)) != NULL)
			session_message_committed(s, (int)u);
		return 0;
	}
	return -1;
}
