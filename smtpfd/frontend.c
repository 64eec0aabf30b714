/*
 * The frontend process: it receives its listening sockets and
 * certificates from the parent, accepts smtpf streams (link.c) and SMTP
 * clients of proxy listeners (proxy.c), and answers smtpfctl through the
 * control process.  It runs chrooted, as the unprivileged user, and
 * holds no key it did not need: the private keys live in libtls only.
 */
#include <sys/types.h>
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
#include "session.h"
#include "xmalloc.h"

#define ACCEPT_PAUSE_SECONDS	1

struct listen_sock {
	TAILQ_ENTRY(listen_sock) entry;
	int			 fd;
	struct listener		*listener;	/* of the current conf */
	struct event		 ev;
};

struct pem {
	TAILQ_ENTRY(pem)	 entry;
	char			*name;
	char			*cert, *key, *ca;
	size_t			 cert_len, key_len, ca_len;
};

static TAILQ_HEAD(, listen_sock) socks = TAILQ_HEAD_INITIALIZER(socks);
static TAILQ_HEAD(, pem)	 pems = TAILQ_HEAD_INITIALIZER(pems);
static struct event		 ev_accept_pause;

static void	 frontend_accept(int, short, void *);
static void	 frontend_accept_resume(int, short, void *);

void
frontend_init(struct ipc_chan *parent)
{
	(void)parent;
	if (tls_init() == -1)
		fatalx("tls_init");
	evtimer_set(&ev_accept_pause, frontend_accept_resume, NULL);
}

static void
add_pem(struct ipc_msg *msg)
{
	struct pem	*p;
	const void	*cert, *key, *ca;

	p = xcalloc(1, sizeof(*p));
	p->name = xstrdup(ipc_get_string(msg));
	cert = ipc_get_data(msg, &p->cert_len);
	key = ipc_get_data(msg, &p->key_len);
	ca = ipc_get_data(msg, &p->ca_len);
	ipc_get_end(msg);
	p->cert = xmalloc(p->cert_len + 1);
	memcpy(p->cert, cert, p->cert_len);
	p->key = xmalloc(p->key_len + 1);
	memcpy(p->key, key, p->key_len);
	p->ca = xmalloc(p->ca_len + 1);
	memcpy(p->ca, ca, p->ca_len);
	explicit_bzero((void *)(uintptr_t)key, p->key_len);
	TAILQ_INSERT_TAIL(&pems, p, entry);
}

static struct pem *
pem_find(const char *name)
{
	struct pem	*p;

	TAILQ_FOREACH(p, &pems, entry)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

/*
 * The TLS server of a listener: its certificate, and for smtpf over TCP
 * the CA every MTA's certificate must be signed by.
 */
static struct tls *
listener_tls(struct listener *l)
{
	struct tls_config	*cfg;
	struct tls		*ctx;
	struct pem		*p;

	if (l->pki == NULL)
		return NULL;
	if ((p = pem_find(l->pki)) == NULL || p->cert_len == 0 ||
	    p->key_len == 0)
		fatalx("pki %s has no certificate and key", l->pki);
	if ((cfg = tls_config_new()) == NULL)
		fatalx("tls_config_new");
	if (tls_config_set_keypair_mem(cfg, (const uint8_t *)p->cert,
	    p->cert_len, (const uint8_t *)p->key, p->key_len) == -1)
		fatalx("pki %s: %s", l->pki, tls_config_error(cfg));
	if (l->kind == LISTENER_SMTPF_TLS) {
		if (p->ca_len == 0)
			fatalx("smtpf on %s: pki %s has no ca to check the "
			    "MTAs' certificates", l->on, l->pki);
		if (tls_config_set_ca_mem(cfg, (const uint8_t *)p->ca,
		    p->ca_len) == -1)
			fatalx("pki %s ca: %s", l->pki, tls_config_error(cfg));
		tls_config_verify_client(cfg);
	}
	if ((ctx = tls_server()) == NULL)
		fatalx("tls_server");
	if (tls_configure(ctx, cfg) == -1)
		fatalx("pki %s: %s", l->pki, tls_error(ctx));
	tls_config_free(cfg);
	return ctx;
}

static void
forget_keys(void)
{
	struct pem	*p;

	while ((p = TAILQ_FIRST(&pems)) != NULL) {
		TAILQ_REMOVE(&pems, p, entry);
		explicit_bzero(p->key, p->key_len);
		free(p->name);
		free(p->cert);
		free(p->key);
		free(p->ca);
		free(p);
	}
}

void
frontend_configured(struct ipc_chan *parent)
{
	struct listen_sock	*ls;

	(void)parent;
	TAILQ_FOREACH(ls, &socks, entry) {
		ls->listener->tls_ctx = listener_tls(ls->listener);
		event_set(&ls->ev, ls->fd, EV_READ | EV_PERSIST,
		    frontend_accept, ls);
		event_add(&ls->ev, NULL);
	}
	forget_keys();
}

/*
 * A reload: new sessions use the new listeners (same sockets, maybe new
 * downstreams, identities, certificates); running sessions finish on
 * the configuration they started with.
 */
void
frontend_reconfigured(struct ipc_chan *parent)
{
	struct listen_sock	*ls;
	struct listener		*l;

	(void)parent;
	TAILQ_FOREACH(ls, &socks, entry) {
		if ((l = listener_find(ls->listener->index)) == NULL)
			fatalx("reload lost listener %u", ls->listener->index);
		l->tls_ctx = listener_tls(l);
		ls->listener = l;
	}
	links_reconfigured();
	forget_keys();
	log_info("reloaded: new sessions use the new configuration");
}

static void
frontend_accept_resume(int fd, short event, void *arg)
{
	struct listen_sock	*ls;

	(void)fd;
	(void)event;
	(void)arg;
	TAILQ_FOREACH(ls, &socks, entry)
		event_add(&ls->ev, NULL);
}

static void
frontend_accept(int fd, short event, void *arg)
{
	static const char	 busy[] = "421 4.3.2 Too many sessions, "
	    "try again later\r\n";
	struct listen_sock	*ls = arg, *l;
	struct sockaddr_storage	 ss;
	struct timeval		 tv = { ACCEPT_PAUSE_SECONDS, 0 };
	socklen_t		 len = sizeof(ss);
	int			 cfd;

	(void)event;
	if ((cfd = accept4(fd, (struct sockaddr *)&ss, &len,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_warn("accept");
			TAILQ_FOREACH(l, &socks, entry)
				event_del(&l->ev);
			evtimer_add(&ev_accept_pause, &tv);
		}
		return;
	}
	if (ss.ss_family != AF_UNIX)
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
	if (ls->listener->kind != LISTENER_PROXY) {
		link_accept(ls->listener, cfd, &ss);
		return;
	}
	if (sessions_count() >= smtpfd_conf->max_sessions) {
		(void)!write(cfd, busy, sizeof(busy) - 1);
		close(cfd);
		log_warnx("refused a client: %zu sessions already",
		    sessions_count());
		return;
	}
	proxy_accept(ls->listener, cfd, &ss);
}

static void
frontend_ctl(struct ipc_chan *chan, uint64_t client, uint32_t cmd)
{
	switch (cmd) {
	case CTL_SHOW_SESSIONS:
		sessions_show(chan, client);
		ctl_end(chan, client, 0, "%s", "");
		return;
	case CTL_SHOW_STATS:
		sessions_stats(chan, client);
		ctl_line(chan, client, "smtpf.links=%zu", links_count());
		ctl_end(chan, client, 0, "%s", "");
		return;
	case CTL_METRICS:
		sessions_metrics(chan, client);
		ctl_end(chan, client, 0, "%s", "");
		return;
	}
	ctl_end(chan, client, 1, "unexpected request");
}

int
frontend_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	struct listen_sock	*ls;
	const char		*arg;
	uint64_t		 client;
	uint32_t		 u;

	/* Sockets and certificates come from the parent only. */
	if ((msg->type == SMTPFD_MSG_LISTENER || msg->type == SMTPFD_MSG_PKI) &&
	    strcmp(chan->peer, "parent") != 0)
		return -1;
	switch (msg->type) {
	case SMTPFD_MSG_SESSION_CHAIN:
	case SMTPFD_MSG_FILTER_DECISION:
	case SMTPFD_MSG_FILTER_DATA_OUT:
	case SMTPFD_MSG_FILTER_DATA_ACK:
		if (strcmp(chan->peer, "engine") != 0)
			return -1;
		return sf_dispatch(msg);
	case SMTPFD_MSG_LISTENER:
		u = ipc_get_u32(msg);
		ipc_get_end(msg);
		ls = xcalloc(1, sizeof(*ls));
		ls->fd = msg->fd;
		if ((ls->listener = listener_find(u)) == NULL)
			fatalx("socket for unknown listener %u", u);
		TAILQ_INSERT_TAIL(&socks, ls, entry);
		return 0;
	case SMTPFD_MSG_PKI:
		add_pem(msg);
		return 0;
	case SMTPFD_MSG_CTL_REQUEST:
		if (strcmp(chan->peer, "control") != 0)
			return -1;
		client = ipc_get_u64(msg);
		u = ipc_get_u32(msg);
		arg = ipc_get_string(msg);
		ipc_get_end(msg);
		(void)arg;
		frontend_ctl(chan, client, u);
		return 0;
	}
	return -1;
}
