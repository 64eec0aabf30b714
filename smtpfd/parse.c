/*
 * smtpfd.conf grammar, on top of the shared lexer (lib/conf.h).  The
 * statements are listed in smtpfd.conf(5) and SPEC.md section 4.4.
 *
 * As in mtad, the same code runs in the parent on the administrator's
 * file and in each child on the canonical statements the parent ships
 * (cf->shipped): only the parent reads certificates.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "smtpfd.h"
#include "xmalloc.h"


struct smtpfd_conf	*smtpfd_conf;
/* During a reload, the configuration being replaced. */
static struct smtpfd_conf *previous;

static void	 parse_control(struct conf *);
static void	 parse_hostname(struct conf *);
static void	 parse_limit(struct conf *);
static void	 parse_metrics(struct conf *);
static void	 parse_pki(struct conf *);
static void	 parse_proxy(struct conf *);
static void	 parse_smtpf(struct conf *);
static void	 parse_timeout(struct conf *);

static const struct {
	const char	*keyword;
	void		(*parse)(struct conf *);
} statements[] = {
	{ "chain",	parse_chain },
	{ "control",	parse_control },
	{ "filter",	parse_filter },
	{ "hostname",	parse_hostname },
	{ "limit",	parse_limit },
	{ "metrics",	parse_metrics },
	{ "pki",	parse_pki },
	{ "proxy",	parse_proxy },
	{ "select",	parse_select },
	{ "smtpf",	parse_smtpf },
	{ "timeout",	parse_timeout },
};

void
smtpfd_conf_init(void)
{
	char	 host[256];

	smtpfd_conf = xcalloc(1, sizeof(*smtpfd_conf));
	smtpfd_conf->proc.user = xstrdup(SMTPFD_USER);
	smtpfd_conf->proc.chroot = xstrdup(SMTPFD_CHROOT);
	if (gethostname(host, sizeof(host)) == -1)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	smtpfd_conf->hostname = xstrdup(host);
	smtpfd_conf->control_socket = xstrdup(SMTPFD_CONTROL_SOCKET);
	smtpfd_conf->client_timeout = DEF_CLIENT_TIMEOUT;
	smtpfd_conf->downstream_timeout = DEF_DOWNSTREAM_TIMEOUT;
	smtpfd_conf->max_sessions = DEF_MAX_SESSIONS;
	TAILQ_INIT(&smtpfd_conf->listeners);
	TAILQ_INIT(&smtpfd_conf->pkis);
	TAILQ_INIT(&smtpfd_conf->filters);
	TAILQ_INIT(&smtpfd_conf->chains);
	TAILQ_INIT(&smtpfd_conf->selects);
}

static void
listener_free(struct listener *l)
{
	if (l->tls_ctx != NULL)
		tls_free(l->tls_ctx);
	free(l->on);
	free(l->pki);
	free(l->forward.url);
	free(l->chain);
	free(l);
}

static void
generation_free(struct smtpfd_conf *c)
{
	struct listener		*l;
	struct filter_conf	*f;
	struct chain_conf	*ch;
	struct select_conf	*sel;

	while ((f = TAILQ_FIRST(&c->filters)) != NULL) {
		TAILQ_REMOVE(&c->filters, f, entry);
		filter_conf_free(f);
	}
	while ((ch = TAILQ_FIRST(&c->chains)) != NULL) {
		TAILQ_REMOVE(&c->chains, ch, entry);
		chain_conf_free(ch);
	}
	while ((sel = TAILQ_FIRST(&c->selects)) != NULL) {
		TAILQ_REMOVE(&c->selects, sel, entry);
		select_conf_free(sel);
	}
	while ((l = TAILQ_FIRST(&c->listeners)) != NULL) {
		TAILQ_REMOVE(&c->listeners, l, entry);
		listener_free(l);
	}
	pki_list_free(&c->pkis);
	free(c->proc.user);
	free(c->proc.chroot);
	free(c->hostname);
	free(c->control_socket);
	free(c->metrics_on);
	free(c);
}

void
smtpfd_conf_free(void)
{
	generation_free(smtpfd_conf);
	smtpfd_conf = NULL;
}

/*
 * Reloading (lib/proc.h): a fresh configuration is parsed beside the
 * current one; sessions keep the one they started with (refs) until
 * they end.
 */
void
smtpfd_conf_begin(void)
{
	previous = smtpfd_conf;
	smtpfd_conf_init();
}

void
smtpfd_conf_abort(void)
{
	smtpfd_conf_free();
	smtpfd_conf = previous;
	previous = NULL;
}

/* What only a restart can change: the processes and the sockets. */
int
smtpfd_conf_check(char *err, size_t errlen)
{
	struct listener	*a, *b;

	if (strcmp(previous->proc.user, smtpfd_conf->proc.user) != 0 ||
	    strcmp(previous->proc.chroot, smtpfd_conf->proc.chroot) != 0 ||
	    strcmp(previous->control_socket,
	    smtpfd_conf->control_socket) != 0) {
		snprintf(err, errlen, "user, chroot or control socket "
		    "changed: restart smtpfd");
		return -1;
	}
	if ((previous->metrics_on == NULL) !=
	    (smtpfd_conf->metrics_on == NULL) ||
	    (previous->metrics_on != NULL &&
	    (strcmp(previous->metrics_on, smtpfd_conf->metrics_on) != 0 ||
	    previous->metrics_port != smtpfd_conf->metrics_port))) {
		snprintf(err, errlen, "metrics listener changed: restart "
		    "smtpfd");
		return -1;
	}
	a = TAILQ_FIRST(&previous->listeners);
	b = TAILQ_FIRST(&smtpfd_conf->listeners);
	for (; a && b; a = TAILQ_NEXT(a, entry), b = TAILQ_NEXT(b, entry))
		if (a->kind != b->kind || a->port != b->port ||
		    strcmp(a->on, b->on) != 0)
			break;
	if (a != NULL || b != NULL) {
		snprintf(err, errlen, "listeners changed (addresses, ports, "
		    "sockets or kinds): restart smtpfd");
		return -1;
	}
	return 0;
}

void
smtpfd_conf_end(void)
{
	struct smtpfd_conf	*old = previous;

	previous = NULL;
	if (old->refs == 0)
		generation_free(old);
}

void
smtpfd_conf_ref(struct smtpfd_conf *c)
{
	c->refs++;
}

void
smtpfd_conf_unref(struct smtpfd_conf *c)
{
	if (--c->refs == 0 && c != smtpfd_conf && c != previous)
		generation_free(c);
}

void
smtpfd_parse(struct conf *cf)
{
	const struct conf_token	*t;
	size_t			 i;

	if (daemon_parse_settings(cf, &smtpfd_conf->proc))
		return;
	t = conf_peek(cf);
	for (i = 0; i < sizeof(statements) / sizeof(statements[0]); i++)
		if (conf_accept(cf, statements[i].keyword)) {
			statements[i].parse(cf);
			return;
		}
	conf_error(cf, "unknown statement %s", conf_describe(t));
}

struct listener *
listener_find(unsigned int index)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &smtpfd_conf->listeners, entry)
		if (l->index == index)
			return l;
	return NULL;
}

struct pki *
pki_find(const char *name)
{
	return pki_lookup(&smtpfd_conf->pkis, name);
}

const char *
identity_name(enum identity id)
{
	switch (id) {
	case IDENTITY_XCLIENT:
		return "xclient";
	case IDENTITY_XFORWARD:
		return "xforward";
	case IDENTITY_PROXY_V2:
		return "proxy-v2";
	case IDENTITY_NONE:
		return "none";
	}
	return "?";
}

/* control socket PATH */
static void
parse_control(struct conf *cf)
{
	const char	*path;

	if (!conf_expect(cf, "socket") ||
	    (path = conf_word(cf, "a socket path")) == NULL || !conf_end(cf))
		return;
	if (path[0] != '/') {
		conf_error(cf, "control socket must be an absolute path");
		return;
	}
	free(smtpfd_conf->control_socket);
	smtpfd_conf->control_socket = xstrdup(path);
}

static void
parse_hostname(struct conf *cf)
{
	const char	*name;

	if ((name = conf_word(cf, "a host name")) == NULL || !conf_end(cf))
		return;
	free(smtpfd_conf->hostname);
	smtpfd_conf->hostname = xstrdup(name);
}

/* metrics on ADDRESS port N: the Prometheus listener (control process) */
static void
parse_metrics(struct conf *cf)
{
	unsigned char	 buf[16];
	const char	*s;
	long long	 n;

	if (!conf_expect(cf, "on") ||
	    (s = conf_word(cf, "an IP address")) == NULL)
		return;
	if (strcmp(s, "localhost") == 0)
		s = "127.0.0.1";
	if (inet_pton(AF_INET, s, buf) != 1 &&
	    inet_pton(AF_INET6, s, buf) != 1) {
		conf_error(cf, "%s is not an IP address", s);
		return;
	}
	if (smtpfd_conf->metrics_on != NULL) {
		conf_error(cf, "metrics: only one listener");
		return;
	}
	smtpfd_conf->metrics_on = xstrdup(s);
	if (!conf_expect(cf, "port") ||
	    !conf_number(cf, "a port", 1, 65535, &n) || !conf_end(cf))
		return;
	smtpfd_conf->metrics_port = (int)n;
}

/* limit sessions N */
static void
parse_limit(struct conf *cf)
{
	long long	 n;

	if (!conf_expect(cf, "sessions") ||
	    !conf_number(cf, "a number of sessions", 1, 1000000, &n) ||
	    !conf_end(cf))
		return;
	smtpfd_conf->max_sessions = (size_t)n;
}

/* timeout client|downstream DURATION */
static void
parse_timeout(struct conf *cf)
{
	int	*target, d;

	if (conf_accept(cf, "client"))
		target = &smtpfd_conf->client_timeout;
	else if (conf_accept(cf, "downstream"))
		target = &smtpfd_conf->downstream_timeout;
	else {
		conf_error(cf, "expected client or downstream, got %s",
		    conf_describe(conf_peek(cf)));
		return;
	}
	if (!conf_timeout(cf, "a timeout", &d) || !conf_end(cf))
		return;
	*target = d * 1000;
}

/* pki NAME cert|key|ca FILE */
static void
parse_pki(struct conf *cf)
{
	pki_parse(cf, &smtpfd_conf->pkis);
}

/*
 * "smtp://192.0.2.1:25", "smtp://[2001:db8::1]:25", with an optional
 * identity method after it.
 */
static int
parse_forward(struct conf *cf, struct downstream *d)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)&d->addr;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)&d->addr;
	const char		*url, *host, *colon;
	char			 addr[INET6_ADDRSTRLEN + 2], *end;
	long			 port;
	size_t			 len;

	if (!conf_expect(cf, "forward") || !conf_expect(cf, "to") ||
	    (url = conf_word(cf, "smtp://HOST:PORT")) == NULL)
		return -1;
	if (strncmp(url, "smtp://", 7) != 0 ||
	    (colon = strrchr(url + 7, ':')) == NULL) {
		conf_error(cf, "forward to %s: expected smtp://HOST:PORT", url);
		return -1;
	}
	host = url + 7;
	len = (size_t)(colon - host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(addr)) {
		conf_error(cf, "forward to %s: bad address", url);
		return -1;
	}
	memcpy(addr, host, len);
	addr[len] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535) {
		conf_error(cf, "forward to %s: bad port", url);
		return -1;
	}
	memset(&d->addr, 0, sizeof(d->addr));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		d->addrlen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		d->addrlen = sizeof(*sin6);
	} else {
		conf_error(cf, "forward to %s: %s is not an IP address", url,
		    addr);
		return -1;
	}
	d->url = xstrdup(url);
	d->identity = IDENTITY_XCLIENT;
	if (conf_accept(cf, "xclient"))
		d->identity = IDENTITY_XCLIENT;
	else if (conf_accept(cf, "xforward"))
		d->identity = IDENTITY_XFORWARD;
	else if (conf_accept(cf, "proxy-v2"))
		d->identity = IDENTITY_PROXY_V2;
	else if (conf_accept(cf, "no-identity"))
		d->identity = IDENTITY_NONE;
	return 0;
}

static int
parse_address(struct conf *cf, struct listener *l)
{
	unsigned char	 buf[16];
	const char	*s;

	if ((s = conf_word(cf, "an IP address")) == NULL)
		return -1;
	if (strcmp(s, "localhost") == 0)
		s = "127.0.0.1";
	if (inet_pton(AF_INET, s, buf) != 1 &&
	    inet_pton(AF_INET6, s, buf) != 1) {
		conf_error(cf, "%s is not an IP address", s);
		return -1;
	}
	l->on = xstrdup(s);
	return 0;
}

/*
 * The parent checks that a listener's certificate and key load, so that
 * neither a start nor a reload can leave the frontend unable to use
 * them.
 */
static void
check_pki(struct conf *cf, struct listener *l)
{
	struct tls_config	*cfg;
	struct pki		*p;

	if ((p = pki_find(l->pki)) == NULL) {
		conf_error(cf, "unknown pki %s", l->pki);
		return;
	}
	if (cf->shipped || cf->no_files)
		return;
	if (p->cert == NULL || p->key == NULL) {
		conf_error(cf, "pki %s needs a cert and a key", p->name);
		return;
	}
	if (l->kind == LISTENER_SMTPF_TLS && p->ca == NULL) {
		conf_error(cf, "pki %s needs a ca to check the MTAs' "
		    "certificates", p->name);
		return;
	}
	if ((cfg = tls_config_new()) == NULL)
		fatalx("tls_config_new");
	if (tls_config_set_keypair_mem(cfg, (const uint8_t *)p->cert,
	    p->cert_len, (const uint8_t *)p->key, p->key_len) == -1)
		conf_error(cf, "pki %s: %s", p->name, tls_config_error(cfg));
	else if (p->ca != NULL && tls_config_set_ca_mem(cfg,
	    (const uint8_t *)p->ca, p->ca_len) == -1)
		conf_error(cf, "pki %s ca: %s", p->name, tls_config_error(cfg));
	tls_config_free(cfg);
}

/* chain NAME: a chain, or a single filter, defined above */
static void
parse_listener_chain(struct conf *cf, struct listener *l)
{
	const char	*s;

	if ((s = conf_word(cf, "a chain or filter name")) == NULL)
		return;
	if (chain_conf_find(s) == NULL && filter_conf_find(s) == NULL) {
		conf_error(cf, "no chain or filter %s (define it before the "
		    "listener)", s);
		return;
	}
	free(l->chain);
	l->chain = xstrdup(s);
}

static void
add_listener(struct conf *cf, struct listener *l)
{
	if (!cf->failed && l->pki != NULL)
		check_pki(cf, l);
	if (cf->failed) {
		listener_free(l);
		return;
	}
	l->index = smtpfd_conf->nlisteners++;
	l->conf = smtpfd_conf;
	TAILQ_INSERT_TAIL(&smtpfd_conf->listeners, l, entry);
}

/*
 * smtpf on socket PATH forward to URL [identity]
 * smtpf on ADDRESS port N pki NAME forward to URL [identity]
 */
static void
parse_smtpf(struct conf *cf)
{
	struct listener	*l;
	const char	*s;
	long long	 n;

	if (!conf_expect(cf, "on"))
		return;
	l = xcalloc(1, sizeof(*l));
	if (conf_accept(cf, "socket")) {
		l->kind = LISTENER_SMTPF_UNIX;
		if ((s = conf_word(cf, "a socket path")) != NULL) {
			if (s[0] != '/' ||
			    strlen(s) >= sizeof(((struct sockaddr_un *)0)->sun_path))
				conf_error(cf, "smtpf socket %s: expected an "
				    "absolute path of at most 107 bytes", s);
			l->on = xstrdup(s);
		}
	} else if (parse_address(cf, l) == 0) {
		l->kind = LISTENER_SMTPF_TLS;
		if (conf_expect(cf, "port") &&
		    conf_number(cf, "a port", 1, 65535, &n))
			l->port = (int)n;
		if (conf_expect(cf, "pki") &&
		    (s = conf_word(cf, "a pki name")) != NULL)
			l->pki = xstrdup(s);
	}
	if (!cf->failed && conf_accept(cf, "chain"))
		parse_listener_chain(cf, l);
	if (!cf->failed && parse_forward(cf, &l->forward) == 0)
		conf_end(cf);
	add_listener(cf, l);
}

/*
 * proxy on ADDRESS [port N] [tls|tls-require|smtps] [pki NAME]
 *     [accept-identity] forward to URL [identity]
 */
static void
parse_proxy(struct conf *cf)
{
	struct listener	*l;
	const char	*s;
	long long	 n;

	if (!conf_expect(cf, "on"))
		return;
	l = xcalloc(1, sizeof(*l));
	l->kind = LISTENER_PROXY;
	l->port = 25;
	if (parse_address(cf, l) == -1) {
		listener_free(l);
		return;
	}
	while (!cf->failed && !conf_at_end(cf)) {
		if (conf_accept(cf, "port")) {
			if (conf_number(cf, "a port", 1, 65535, &n))
				l->port = (int)n;
		} else if (conf_accept(cf, "tls"))
			l->tls = PROXY_TLS_STARTTLS;
		else if (conf_accept(cf, "tls-require"))
			l->tls = PROXY_TLS_REQUIRE;
		else if (conf_accept(cf, "smtps"))
			l->tls = PROXY_TLS_SMTPS;
		else if (conf_accept(cf, "pki")) {
			if ((s = conf_word(cf, "a pki name")) != NULL) {
				free(l->pki);
				l->pki = xstrdup(s);
			}
		} else if (conf_accept(cf, "accept-identity"))
			l->accept_identity = 1;
		else if (conf_accept(cf, "chain"))
			parse_listener_chain(cf, l);
		else if (parse_forward(cf, &l->forward) == 0) {
			conf_end(cf);
			break;
		}
	}
	if (!cf->failed && l->forward.url == NULL)
		conf_error(cf, "proxy on %s: expected forward to", l->on);
	if (!cf->failed && l->tls != PROXY_TLS_NONE && l->pki == NULL)
		conf_error(cf, "proxy on %s: tls needs a pki", l->on);
	add_listener(cf, l);
}
