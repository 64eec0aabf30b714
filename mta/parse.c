/*
 * mtad.conf grammar, on top of the shared lexer (lib/conf.h).  The
 * statements are listed in mtad.conf(5) and SPEC.md section 4.3.
 *
 * The same code runs in the parent, on the administrator's file, and in
 * each child, on the canonical statements the parent ships (cf->shipped):
 * only the parent reads table files and certificates.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "mtad.h"
#include "xmalloc.h"


struct mtad_conf	*mtad_conf;

static void	 parse_control(struct conf *);
static void	 parse_hostname(struct conf *);
static void	 parse_queue(struct conf *);
static void	 parse_smtp(struct conf *);
static void	 parse_pki(struct conf *);
static void	 parse_table(struct conf *);
static void	 parse_listen(struct conf *);
static void	 parse_action(struct conf *);
static void	 parse_match(struct conf *);
static struct table *parse_table_ref(struct conf *);
static int	 parse_inline_table(struct conf *, struct table *);
static int	 parse_filter(struct conf *, struct listener *, char ***,
		    size_t *);
static int	 listen_check_filter(struct conf *, struct listener *, char **,
		    size_t);
static struct smtpf_endpoint *endpoint_get(struct conf *, const char *,
		    const char *);
static void	 endpoint_free(struct smtpf_endpoint *);
static void	 listener_free(struct listener *);

static const struct {
	const char	*keyword;
	void		(*parse)(struct conf *);
} statements[] = {
	{ "action",	parse_action },
	{ "control",	parse_control },
	{ "hostname",	parse_hostname },
	{ "listen",	parse_listen },
	{ "match",	parse_match },
	{ "pki",	parse_pki },
	{ "queue",	parse_queue },
	{ "smtp",	parse_smtp },
	{ "table",	parse_table },
};

void
mtad_conf_init(void)
{
	char	 host[256];

	mtad_conf = xcalloc(1, sizeof(*mtad_conf));
	mtad_conf->proc.user = xstrdup(MTAD_USER);
	mtad_conf->proc.chroot = xstrdup(MTAD_CHROOT);
	if (gethostname(host, sizeof(host)) == -1)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	mtad_conf->hostname = xstrdup(host);
	mtad_conf->queue_path = xstrdup(MTAD_QUEUE);
	mtad_conf->control_socket = xstrdup(MTAD_CONTROL_SOCKET);
	mtad_conf->max_message_size = DEF_MAX_MESSAGE_SIZE;
	mtad_conf->max_rcpt = DEF_MAX_RCPT;
	mtad_conf->max_mails = DEF_MAX_MAILS;
	mtad_conf->max_sessions = DEF_MAX_SESSIONS;
	mtad_conf->max_errors = DEF_MAX_ERRORS;
	mtad_conf->command_timeout = DEF_COMMAND_TIMEOUT;
	mtad_conf->data_timeout = DEF_DATA_TIMEOUT;
	mtad_conf->queue_ttl = DEF_QUEUE_TTL;
	TAILQ_INIT(&mtad_conf->listeners);
	TAILQ_INIT(&mtad_conf->endpoints);
	TAILQ_INIT(&mtad_conf->tables);
	TAILQ_INIT(&mtad_conf->pkis);
	TAILQ_INIT(&mtad_conf->actions);
	TAILQ_INIT(&mtad_conf->rules);
}

/* Everything mtad_conf_init() and mtad_parse() built (for the fuzzer). */
void
mtad_conf_free(void)
{
	struct listener		*l;
	struct smtpf_endpoint	*e;
	struct table		*t;
	struct action		*a;
	struct rule		*r;

	while ((l = TAILQ_FIRST(&mtad_conf->listeners)) != NULL) {
		TAILQ_REMOVE(&mtad_conf->listeners, l, entry);
		listener_free(l);
	}
	while ((e = TAILQ_FIRST(&mtad_conf->endpoints)) != NULL) {
		TAILQ_REMOVE(&mtad_conf->endpoints, e, entry);
		endpoint_free(e);
	}
	while ((t = TAILQ_FIRST(&mtad_conf->tables)) != NULL) {
		TAILQ_REMOVE(&mtad_conf->tables, t, entry);
		table_clear(t);
		free(t->name);
		free(t->path);
		free(t);
	}
	pki_list_free(&mtad_conf->pkis);
	while ((a = TAILQ_FIRST(&mtad_conf->actions)) != NULL) {
		TAILQ_REMOVE(&mtad_conf->actions, a, entry);
		free(a->name);
		free(a->arg);
		free(a->user);
		free(a);
	}
	while ((r = TAILQ_FIRST(&mtad_conf->rules)) != NULL) {
		TAILQ_REMOVE(&mtad_conf->rules, r, entry);
		free(r->tag);
		free(r);
	}
	free(mtad_conf->proc.user);
	free(mtad_conf->proc.chroot);
	free(mtad_conf->hostname);
	free(mtad_conf->queue_path);
	free(mtad_conf->control_socket);
	free(mtad_conf);
	mtad_conf = NULL;
}

void
mtad_parse(struct conf *cf)
{
	const struct conf_token	*t;
	size_t			 i;

	if (daemon_parse_settings(cf, &mtad_conf->proc))
		return;
	t = conf_peek(cf);
	for (i = 0; t && i < sizeof(statements) / sizeof(statements[0]); i++)
		if (t->type == CONF_WORD &&
		    strcmp(t->text, statements[i].keyword) == 0) {
			cf->pos++;
			statements[i].parse(cf);
			return;
		}
	conf_error(cf, "unknown statement %s", conf_describe(t));
}

struct table *
table_find(const char *name)
{
	struct table	*t;

	TAILQ_FOREACH(t, &mtad_conf->tables, entry)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

struct listener *
listener_find(unsigned int index)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &mtad_conf->listeners, entry)
		if (l->index == index)
			return l;
	return NULL;
}

struct pki *
pki_find(const char *name)
{
	return pki_lookup(&mtad_conf->pkis, name);
}

struct smtpf_endpoint *
endpoint_find(unsigned int index)
{
	struct smtpf_endpoint	*e;

	TAILQ_FOREACH(e, &mtad_conf->endpoints, entry)
		if (e->index == index)
			return e;
	return NULL;
}

struct action *
action_find(const char *name)
{
	struct action	*a;

	TAILQ_FOREACH(a, &mtad_conf->actions, entry)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

/*	control socket PATH */
static void
parse_control(struct conf *cf)
{
	const char	*s;

	if (!conf_expect(cf, "socket") ||
	    (s = conf_word(cf, "a socket path")) == NULL || !conf_end(cf))
		return;
	if (s[0] != '/') {
		conf_error(cf, "control socket %s: expected an absolute path",
		    s);
		return;
	}
	free(mtad_conf->control_socket);
	mtad_conf->control_socket = xstrdup(s);
}

/*	hostname NAME */
static void
parse_hostname(struct conf *cf)
{
	const char	*s;

	if ((s = conf_word(cf, "a host name")) == NULL || !conf_end(cf))
		return;
	if (!smtp_valid_domain(s, 0) || s[0] == '[') {
		conf_error(cf, "hostname %s: not a valid host name", s);
		return;
	}
	free(mtad_conf->hostname);
	mtad_conf->hostname = xstrdup(s);
}

/*	queue path PATH | queue ttl DURATION */
static void
parse_queue(struct conf *cf)
{
	const char	*s;

	if (conf_accept(cf, "ttl")) {
		if (conf_duration(cf, "a duration", &mtad_conf->queue_ttl))
			conf_end(cf);
		return;
	}
	if (!conf_expect(cf, "path") ||
	    (s = conf_word(cf, "a directory")) == NULL || !conf_end(cf))
		return;
	if (s[0] != '/') {
		conf_error(cf, "queue path %s: expected an absolute path", s);
		return;
	}
	free(mtad_conf->queue_path);
	mtad_conf->queue_path = xstrdup(s);
}

/*
 *	smtp max-message-size SIZE
 *	smtp limit max-rcpt|max-mails|max-sessions|max-errors N
 *	smtp timeout command|data DURATION
 */
static void
parse_smtp(struct conf *cf)
{
	size_t		*limit = NULL;
	int		*timeout = NULL;
	long long	 n;

	if (conf_accept(cf, "max-message-size")) {
		if (conf_size(cf, "a size", &mtad_conf->max_message_size))
			conf_end(cf);
		return;
	}
	if (conf_accept(cf, "limit")) {
		if (conf_accept(cf, "max-rcpt"))
			limit = &mtad_conf->max_rcpt;
		else if (conf_accept(cf, "max-mails"))
			limit = &mtad_conf->max_mails;
		else if (conf_accept(cf, "max-sessions"))
			limit = &mtad_conf->max_sessions;
		else if (conf_accept(cf, "max-errors"))
			limit = &mtad_conf->max_errors;
		else {
			conf_error(cf, "expected max-rcpt, max-mails, "
			    "max-sessions or max-errors, got %s",
			    conf_describe(conf_peek(cf)));
			return;
		}
		if (conf_number(cf, "a limit", 1, 1000000, &n) && conf_end(cf))
			*limit = (size_t)n;
		return;
	}
	if (conf_accept(cf, "timeout")) {
		if (conf_accept(cf, "command"))
			timeout = &mtad_conf->command_timeout;
		else if (conf_accept(cf, "data"))
			timeout = &mtad_conf->data_timeout;
		else {
			conf_error(cf, "expected command or data, got %s",
			    conf_describe(conf_peek(cf)));
			return;
		}
		if (conf_timeout(cf, "a timeout", timeout))
			conf_end(cf);
		return;
	}
	conf_error(cf, "expected max-message-size, limit or timeout, got %s",
	    conf_describe(conf_peek(cf)));
}

/*	pki NAME cert|key|ca FILE */
static void
parse_pki(struct conf *cf)
{
	pki_parse(cf, &mtad_conf->pkis);
}

/* "{ a, b }" or "{ k = v, k2 = v2 }" after the opening brace. */
static int
parse_inline_table(struct conf *cf, struct table *t)
{
	const char	*key, *value;
	int		 first = 1;

	while (!conf_accept_punct(cf, '}')) {
		if (!first && !conf_expect_punct(cf, ','))
			return 0;
		if (conf_accept_punct(cf, '}'))
			break;		/* trailing comma */
		if ((key = conf_word(cf, "a table value")) == NULL)
			return 0;
		value = NULL;
		if (conf_accept_punct(cf, '=') &&
		    (value = conf_word(cf, "a value")) == NULL)
			return 0;
		if (!first && (value != NULL) != (t->kind == TABLE_MAP)) {
			conf_error(cf, "table %s mixes values and key = value "
			    "pairs", t->name);
			return 0;
		}
		t->kind = value ? TABLE_MAP : TABLE_LIST;
		table_add(t, key, value);
		first = 0;
	}
	return 1;
}

/*	table NAME file:PATH | { ... } */
static void
parse_table(struct conf *cf)
{
	const char	*name, *src;
	struct table	*t;
	char		 err[256];

	if ((name = conf_word(cf, "a table name")) == NULL)
		return;
	if (table_find(name) != NULL) {
		conf_error(cf, "table %s is already defined", name);
		return;
	}
	if (conf_accept_punct(cf, '{')) {
		t = table_new(name, NULL);
		if (!parse_inline_table(cf, t) || !conf_end(cf)) {
			table_clear(t);
			free(t->name);
			free(t);
			return;
		}
	} else {
		if ((src = conf_word(cf, "file:PATH or { ... }")) == NULL ||
		    !conf_end(cf))
			return;
		if (strncmp(src, "file:", 5) != 0 || src[5] != '/') {
			conf_error(cf, "table %s: expected file:/absolute/path "
			    "or { ... }, got '%s'", name, src);
			return;
		}
		t = table_new(name, src + 5);
		if (!cf->shipped && !cf->no_files &&
		    table_load_file(t, err, sizeof(err)) == -1) {
			conf_error(cf, "table %s: %s", name, err);
			return;
		}
	}
	TAILQ_INSERT_TAIL(&mtad_conf->tables, t, entry);
}

static struct table *
parse_table_ref(struct conf *cf)
{
	const char	*name;
	struct table	*t;

	if (!conf_expect_punct(cf, '<') ||
	    (name = conf_word(cf, "a table name")) == NULL ||
	    !conf_expect_punct(cf, '>'))
		return NULL;
	if ((t = table_find(name)) == NULL)
		conf_error(cf, "unknown table <%s>", name);
	return t;
}

static void
listener_free(struct listener *l)
{
	free(l->on);
	free(l->pki);
	free(l->hostname);
	free(l->tag);
	free(l->filters);
	free(l->filter_pki);
	free(l);
}

static void
endpoint_free(struct smtpf_endpoint *e)
{
	free(e->url);
	free(e->path);
	free(e->host);
	free(e->pki);
	free(e);
}

/*
 * "unix:/path" or "tls://ADDRESS:PORT", ADDRESS an IPv4 address or an
 * IPv6 one in brackets.  No host names: the parent connects without
 * ever waiting for DNS.
 */
static int
endpoint_parse_url(const char *url, struct smtpf_endpoint *e)
{
	struct sockaddr_un	 sun;
	unsigned char		 addr[16];
	const char		*p, *colon;
	char			*end;
	long			 port;

	if (strncmp(url, "unix:", 5) == 0) {
		if (url[5] != '/' || strlen(url + 5) >= sizeof(sun.sun_path))
			return -1;
		e->transport = SMTPF_TRANSPORT_UNIX;
		e->path = xstrdup(url + 5);
		return 0;
	}
	if (strncmp(url, "tls://", 6) != 0)
		return -1;
	p = url + 6;
	if (*p == '[') {
		if ((colon = strstr(p, "]:")) == NULL)
			return -1;
		e->host = xstrndup(p + 1, (size_t)(colon - p - 1));
		colon++;
		if (inet_pton(AF_INET6, e->host, addr) != 1)
			return -1;
	} else {
		if ((colon = strrchr(p, ':')) == NULL)
			return -1;
		e->host = xstrndup(p, (size_t)(colon - p));
		if (inet_pton(AF_INET, e->host, addr) != 1)
			return -1;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno ||
	    port < 1 || port > 65535)
		return -1;
	e->transport = SMTPF_TRANSPORT_TLS;
	e->port = (int)port;
	return 0;
}

/* The endpoint for this URL and client pki, made on first use. */
static struct smtpf_endpoint *
endpoint_get(struct conf *cf, const char *url, const char *pki)
{
	struct smtpf_endpoint	*e, *o;

	e = xcalloc(1, sizeof(*e));
	e->url = xstrdup(url);
	if (endpoint_parse_url(url, e) == -1) {
		conf_error(cf, "smtpf endpoint '%s': expected unix:/path or "
		    "tls://ADDRESS:PORT (IPv6 in brackets)", url);
		endpoint_free(e);
		return NULL;
	}
	if (e->transport == SMTPF_TRANSPORT_TLS) {
		if (pki == NULL) {
			conf_error(cf, "smtpf endpoint %s: tls needs "
			    "filter-pki", url);
			endpoint_free(e);
			return NULL;
		}
		e->pki = xstrdup(pki);
	}
	TAILQ_FOREACH(o, &mtad_conf->endpoints, entry)
		if (strcmp(o->url, e->url) == 0 && (e->pki == NULL ?
		    o->pki == NULL : o->pki && strcmp(o->pki, e->pki) == 0)) {
			endpoint_free(e);
			return o;
		}
	e->index = mtad_conf->nendpoints++;
	TAILQ_INSERT_TAIL(&mtad_conf->endpoints, e, entry);
	return e;
}

/* A listener's tag travels in open as one word. */
static int
valid_smtpf_word(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == '|' || *s == 127)
			return 0;
	return 1;
}

/*	filter smtpf URL [smtpf URL ...] (after "filter") */
static int
parse_filter(struct conf *cf, struct listener *l, char ***urls, size_t *n)
{
	const char	*s;

	if (*n > 0) {
		conf_error(cf, "listen on %s: filter given twice", l->on);
		return 0;
	}
	if (!conf_expect(cf, "smtpf"))
		return 0;
	do {
		if ((s = conf_word(cf, "an smtpf endpoint")) == NULL)
			return 0;
		*urls = xreallocarray(*urls, *n + 1, sizeof(**urls));
		(*urls)[(*n)++] = xstrdup(s);
	} while (conf_accept(cf, "smtpf"));
	return 1;
}

/* Once the whole statement is read: filter-pki may follow the URLs. */
static int
listen_check_filter(struct conf *cf, struct listener *l, char **urls,
    size_t n)
{
	struct pki	*p;
	size_t		 i;

	if (n == 0) {
		if (l->filter_bypass || l->filter_pki)
			conf_error(cf, "listen on %s: bypass and filter-pki "
			    "need filter smtpf", l->on);
		return !cf->failed;
	}
	if (l->tag != NULL && (!valid_smtpf_word(l->tag) ||
	    strlen(l->tag) > 255 || l->tag[0] == '\0')) {
		conf_error(cf, "listen on %s: tag %s cannot be carried by "
		    "smtpf (blank or |)", l->on, l->tag);
		return 0;
	}
	if (l->filter_pki != NULL) {
		if ((p = pki_find(l->filter_pki)) == NULL) {
			conf_error(cf, "listen on %s: unknown pki %s", l->on,
			    l->filter_pki);
			return 0;
		}
		if (!p->cert_file || !p->key_file || !p->ca_file) {
			conf_error(cf, "listen on %s: filter-pki %s needs a "
			    "cert, a key and a ca", l->on, l->filter_pki);
			return 0;
		}
	}
	l->filters = xcalloc(n, sizeof(*l->filters));
	for (i = 0; i < n; i++) {
		if ((l->filters[i] = endpoint_get(cf, urls[i],
		    l->filter_pki)) == NULL)
			return 0;
		l->nfilters++;
	}
	return 1;
}

/*
 *	listen on ADDRESS|INTERFACE [family inet4|inet6] [port N]
 *	    [tls | tls-require | smtps] [pki NAME] [hostname NAME] [tag TAG]
 *	    [xclient from <table>] [mask-src]
 *	    [filter smtpf URL [smtpf URL ...]] [filter-pki NAME] [bypass]
 */
static void
parse_listen(struct conf *cf)
{
	struct listener	*l;
	const char	*s;
	char		**urls = NULL;
	size_t		 nurls = 0, i;
	long long	 n;
	int		 port_set = 0;

	if (!conf_expect(cf, "on") || (s = conf_word(cf, "an address or "
	    "interface")) == NULL)
		return;
	l = xcalloc(1, sizeof(*l));
	l->on = xstrdup(s);
	l->family = AF_UNSPEC;
	l->port = 25;
	while (!conf_at_end(cf) && !cf->failed) {
		if (conf_accept(cf, "family")) {
			if (conf_accept(cf, "inet4"))
				l->family = AF_INET;
			else if (conf_accept(cf, "inet6"))
				l->family = AF_INET6;
			else
				conf_error(cf, "expected inet4 or inet6, got %s",
				    conf_describe(conf_peek(cf)));
		} else if (conf_accept(cf, "port")) {
			if (conf_number(cf, "a port", 1, 65535, &n))
				l->port = (int)n;
			port_set = 1;
		} else if (conf_accept(cf, "tls"))
			l->tls = LISTEN_TLS_STARTTLS;
		else if (conf_accept(cf, "tls-require"))
			l->tls = LISTEN_TLS_REQUIRE;
		else if (conf_accept(cf, "smtps"))
			l->tls = LISTEN_TLS_SMTPS;
		else if (conf_accept(cf, "pki")) {
			if ((s = conf_word(cf, "a pki name")) != NULL)
				l->pki = xstrdup(s);
		} else if (conf_accept(cf, "hostname")) {
			if ((s = conf_word(cf, "a host name")) != NULL)
				l->hostname = xstrdup(s);
		} else if (conf_accept(cf, "tag")) {
			if ((s = conf_word(cf, "a tag")) != NULL)
				l->tag = xstrdup(s);
		} else if (conf_accept(cf, "xclient")) {
			if (conf_expect(cf, "from"))
				l->xclient_from = parse_table_ref(cf);
		} else if (conf_accept(cf, "mask-src"))
			l->mask_src = 1;
		else if (conf_accept(cf, "filter"))
			parse_filter(cf, l, &urls, &nurls);
		else if (conf_accept(cf, "filter-pki")) {
			if ((s = conf_word(cf, "a pki name")) != NULL)
				l->filter_pki = xstrdup(s);
		} else if (conf_accept(cf, "bypass"))
			l->filter_bypass = 1;
		else
			conf_error(cf, "unexpected %s in listen",
			    conf_describe(conf_peek(cf)));
	}
	if (!cf->failed && l->tls == LISTEN_TLS_SMTPS && !port_set)
		l->port = 465;
	if (!cf->failed && l->tls != LISTEN_TLS_NONE && l->pki == NULL)
		conf_error(cf, "listen on %s: tls needs a pki", l->on);
	if (!cf->failed && l->pki != NULL && pki_find(l->pki) == NULL)
		conf_error(cf, "listen on %s: unknown pki %s", l->on, l->pki);
	if (!cf->failed)
		listen_check_filter(cf, l, urls, nurls);
	for (i = 0; i < nurls; i++)
		free(urls[i]);
	free(urls);
	if (cf->failed) {
		listener_free(l);
		return;
	}
	l->index = mtad_conf->nlisteners++;
	TAILQ_INSERT_TAIL(&mtad_conf->listeners, l, entry);
}

/*
 *	action NAME maildir [PATH] | mbox | mda COMMAND | lmtp DESTINATION
 *	    [alias <table>] [virtual <table>] [user USER]
 */
static void
parse_action(struct conf *cf)
{
	const struct conf_token	*t;
	struct action		*a;
	const char		*name, *s;

	if ((name = conf_word(cf, "an action name")) == NULL)
		return;
	if (action_find(name) != NULL) {
		conf_error(cf, "action %s is already defined", name);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	if (conf_accept(cf, "maildir")) {
		a->kind = ACTION_MAILDIR;
		t = conf_peek(cf);
		/* The path is optional: anything but an option keyword. */
		if (t != NULL && t->type != CONF_PUNCT &&
		    (t->type == CONF_STRING || (strcmp(t->text, "alias") &&
		    strcmp(t->text, "virtual") && strcmp(t->text, "user"))))
			s = conf_word(cf, "a path");
		else
			s = "~/Maildir";
	} else if (conf_accept(cf, "mbox")) {
		a->kind = ACTION_MBOX;
		t = conf_peek(cf);
		if (t != NULL && t->type == CONF_STRING)
			s = conf_word(cf, "a path");
		else
			s = "/var/mail/%{user.username}";
	} else if (conf_accept(cf, "mda")) {
		a->kind = ACTION_MDA;
		s = conf_word(cf, "a command");
	} else if (conf_accept(cf, "lmtp")) {
		a->kind = ACTION_LMTP;
		s = conf_word(cf, "a destination");
	} else {
		conf_error(cf, "expected maildir, mbox, mda or lmtp, got %s",
		    conf_describe(conf_peek(cf)));
		s = NULL;
	}
	if (s != NULL)
		a->arg = xstrdup(s);
	while (!conf_at_end(cf) && !cf->failed) {
		if (conf_accept(cf, "alias"))
			a->alias = parse_table_ref(cf);
		else if (conf_accept(cf, "virtual"))
			a->virtual = parse_table_ref(cf);
		else if (conf_accept(cf, "user")) {
			if ((s = conf_word(cf, "a user name")) != NULL)
				a->user = xstrdup(s);
		} else
			conf_error(cf, "unexpected %s in action",
			    conf_describe(conf_peek(cf)));
	}
	if (!cf->failed && a->alias && a->virtual)
		conf_error(cf, "action %s: alias and virtual exclude each "
		    "other", name);
	if (cf->failed) {
		free(a->arg);
		free(a->user);
		free(a);
		return;
	}
	a->name = xstrdup(name);
	TAILQ_INSERT_TAIL(&mtad_conf->actions, a, entry);
}

/*
 *	match [[!]from any|local|src <table>] [[!]for any|local|domain <t>|
 *	    rcpt <t>] [[!]tag TAG] action NAME | reject
 *
 * As in OpenSMTPD, a missing "from" means "from local" and a missing
 * "for" means "for local": an open relay has to be asked for.
 */
static void
parse_match(struct conf *cf)
{
	struct rule	*r;
	const char	*s;
	int		 negated, seen_from = 0, seen_for = 0, seen_tag = 0;

	r = xcalloc(1, sizeof(*r));
	r->from = FROM_LOCAL;
	r->for_ = FOR_LOCAL;
	while (!conf_at_end(cf) && !cf->failed) {
		negated = conf_accept_punct(cf, '!');
		if (conf_accept(cf, "from") && !seen_from++) {
			r->from_negated = negated;
			if (conf_accept(cf, "any"))
				r->from = FROM_ANY;
			else if (conf_accept(cf, "local"))
				r->from = FROM_LOCAL;
			else if (conf_accept(cf, "src")) {
				r->from = FROM_SRC;
				r->from_table = parse_table_ref(cf);
			} else
				conf_error(cf, "expected any, local or src, "
				    "got %s", conf_describe(conf_peek(cf)));
		} else if (conf_accept(cf, "for") && !seen_for++) {
			r->for_negated = negated;
			if (conf_accept(cf, "any"))
				r->for_ = FOR_ANY;
			else if (conf_accept(cf, "local"))
				r->for_ = FOR_LOCAL;
			else if (conf_accept(cf, "domain")) {
				r->for_ = FOR_DOMAIN;
				r->for_table = parse_table_ref(cf);
			} else if (conf_accept(cf, "rcpt")) {
				r->for_ = FOR_RCPT;
				r->for_table = parse_table_ref(cf);
			} else
				conf_error(cf, "expected any, local, domain or "
				    "rcpt, got %s", conf_describe(conf_peek(cf)));
		} else if (conf_accept(cf, "tag") && !seen_tag++) {
			r->tag_negated = negated;
			if ((s = conf_word(cf, "a tag")) != NULL)
				r->tag = xstrdup(s);
		} else if (!negated && conf_accept(cf, "reject")) {
			r->reject = 1;
			conf_end(cf);
			break;
		} else if (!negated && conf_accept(cf, "action")) {
			if ((s = conf_word(cf, "an action name")) != NULL &&
			    (r->action = action_find(s)) == NULL)
				conf_error(cf, "unknown action %s", s);
			conf_end(cf);
			break;
		} else
			conf_error(cf, "unexpected %s in match (each of from, "
			    "for, tag at most once, then action or reject)",
			    conf_describe(conf_peek(cf)));
	}
	if (!cf->failed && !r->reject && r->action == NULL)
		conf_error(cf, "match: expected action NAME or reject at the "
		    "end");
	if (cf->failed) {
		free(r->tag);
		free(r);
		return;
	}
	TAILQ_INSERT_TAIL(&mtad_conf->rules, r, entry);
}
