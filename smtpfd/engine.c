/*
 * The engine process: it holds the filters (Lua states, the sockets of
 * exec filters' processes, built-in rules) and the chains, and answers
 * the frontend's questions about its sessions (filter.c runs a chain).
 * It runs chrooted and unprivileged; the parent starts exec filters'
 * processes and hands it their sockets, and sends it the Lua scripts.
 *
 * Messages with the frontend (one session each, by the frontend's id):
 *	SESSION_OPEN	q id, u listener, s addr, u port, s local addr,
 *			u local port, s rdns, s tag
 *	SESSION_CHAIN	q id, u phases, u events: what the frontend must
 *			ask and tell (0, 0: the session is not filtered)
 *	FILTER_QUERY	q id, u phase, s parameter
 *	FILTER_DECISION	q id, u phase, u decision, u junk, s text
 *	FILTER_EVENT	q id, u event, s parameters (OpenSMTPD 0.7 layout)
 *	FILTER_DATA	q id, u n, s n lines joined by LF (line_batch.h);
 *			FILTER_DATA_ACK q id, u lines taken
 *	FILTER_DATA_OUT	q id, u n, s n lines (the message's last is ".")
 *	SESSION_CLOSE	q id
 *
 * A reload builds a new generation of filters and chains for new
 * sessions; the old one stays until its last session closes.
 */
#include <sys/types.h>

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"
#include "line_batch.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "placement.h"
#include "smtpfd.h"
#include "xmalloc.h"

/* Events the engine follows for its own view of a session (rules). */
#define TRACKED_EVENTS	((1U << EVENT_LINK_IDENTIFY) | (1U << EVENT_LINK_TLS) | \
	    (1U << EVENT_LINK_AUTH) | (1U << EVENT_TX_BEGIN) | \
	    (1U << EVENT_TX_MAIL) | (1U << EVENT_TX_RCPT) | \
	    (1U << EVENT_TX_RESET) | (1U << EVENT_TX_COMMIT) | \
	    (1U << EVENT_TX_ROLLBACK))

/* How long a session waits for its chain's exec filters to start. */
#define READY_WAIT_SECONDS	10

/* Data lines the engine holds for a session before the frontend waits. */
#define BACKLOG_MAX	(256 * 1024)

struct stash {
	TAILQ_ENTRY(stash)	 entry;
	char			*name;
	char			*script;	/* FILTER_SCRIPT */
	size_t			 len;
	int			 fd;		/* FILTER_PROC */
};

struct esession {
	struct fsession		 fs;		/* first: filters see this */
	int			 waiting;	/* for the chain to be ready */
	struct event		 ev_waiting;	/* ... but not for ever */
	uint32_t		 unacked;	/* data lines not acked */
	struct generation	*gen;		/* a ref while the session is */
	struct listener		*listener;
	struct line_batch	 out;		/* data lines for the frontend */
	int			 out_queued;	/* in the flush list */
	TAILQ_ENTRY(esession)	 flush_entry;
};

static TAILQ_HEAD(, fsession)	 sessions = TAILQ_HEAD_INITIALIZER(sessions);
/* Sessions with data lines for the frontend, sent at the end of a turn. */
static TAILQ_HEAD(, esession)	 flushq = TAILQ_HEAD_INITIALIZER(flushq);
static struct event		 ev_flush;
static TAILQ_HEAD(, stash)	 stashed = TAILQ_HEAD_INITIALIZER(stashed);
static struct generation	*current;
static struct ipc_chan		*parent_chan;

static void	 session_close(struct fsession *);
static void	 send_ack(struct fsession *);
static uint32_t	 select_phases(struct generation *);

static void	 out_flush(int, short, void *);

/*
 * The engine works for processes that wait on it, by the batch: as
 * SCHED_BATCH it does not preempt the process that wakes it.  On a CPU
 * it shares with them, an exec filter that writes its lines one at a
 * time then writes them all before the engine takes them, where each
 * line would otherwise hand the CPU over twice (bench/README.md: 1.5 ms
 * a message instead of 0.2 on one core).  Across cores it changes
 * nothing: a woken process still goes to an idle CPU at once.
 */
void
engine_init(struct ipc_chan *parent)
{
	struct sched_param	 param = { .sched_priority = 0 };

	parent_chan = parent;
	evtimer_set(&ev_flush, out_flush, NULL);
	if (sched_setscheduler(0, SCHED_BATCH, &param) == -1)
		log_warn("engine: SCHED_BATCH");
	placement_init();
}

static void
out_send(struct esession *es)
{
	if (es->out_queued) {
		TAILQ_REMOVE(&flushq, es, flush_entry);
		es->out_queued = 0;
	}
	line_batch_send(&es->out, proc_peer("frontend"),
	    SMTPFD_MSG_FILTER_DATA_OUT, es->fs.id);
}

static void
out_flush(int fd, short event, void *arg)
{
	struct esession	*es;

	(void)fd;
	(void)event;
	(void)arg;
	while ((es = TAILQ_FIRST(&flushq)) != NULL)
		out_send(es);
}

static struct ipc_chan *
frontend(void)
{
	return proc_peer("frontend");
}

struct fsession *
engine_sessions_first(void)
{
	return TAILQ_FIRST(&sessions);
}

struct fsession *
engine_sessions_next(struct fsession *fs)
{
	return TAILQ_NEXT(fs, entry);
}

int
fsession_has_filter(struct fsession *fs, struct filter *f)
{
	size_t	 i;

	if (fs->chain == NULL)
		return 0;
	for (i = 0; i < fs->chain->nfilters; i++)
		if (fs->chain->filters[i] == f)
			return 1;
	return 0;
}

static struct fsession *
session_find(uint64_t id)
{
	struct fsession	*fs;

	TAILQ_FOREACH(fs, &sessions, entry)
		if (fs->id == id)
			return fs;
	return NULL;
}

/*
 * Building a generation.
 */
static const struct filter_ops *
ops_of(enum filter_kind kind)
{
	switch (kind) {
	case FILTER_RULE:
		return &filter_rule_ops;
	case FILTER_LUA:
		return &filter_lua_ops;
	case FILTER_EXEC:
		return &filter_exec_ops;
	}
	fatalx("unknown filter kind %d", kind);
}

static struct filter *
gen_filter(struct generation *g, const char *name)
{
	struct filter	*f;

	TAILQ_FOREACH(f, &g->filters, entry)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static struct chain *
gen_chain(struct generation *g, const char *name)
{
	struct chain	*c;

	TAILQ_FOREACH(c, &g->chains, entry)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void
add_chain(struct generation *g, const char *name, char **names, size_t n)
{
	struct chain	*c;
	size_t		 i;

	c = xcalloc(1, sizeof(*c));
	c->name = xstrdup(name);
	c->gen = g;
	c->filters = xcalloc(n, sizeof(*c->filters));
	for (i = 0; i < n; i++)
		if ((c->filters[i] = gen_filter(g, names[i])) == NULL)
			fatalx("chain %s: no filter %s", name, names[i]);
	c->nfilters = n;
	TAILQ_INSERT_TAIL(&g->chains, c, entry);
}

/* Scripts and sockets the parent sent before the generation was made. */
static void
use_stash(struct generation *g)
{
	struct stash	*st;
	struct filter	*f;

	while ((st = TAILQ_FIRST(&stashed)) != NULL) {
		TAILQ_REMOVE(&stashed, st, entry);
		if ((f = gen_filter(g, st->name)) == NULL)
			fatalx("the parent sent something for an unknown "
			    "filter %s", st->name);
		if (st->script != NULL) {
			if (filter_lua_load(f, st->script, st->len) == -1)
				f->broken = 1;
		} else
			filter_exec_attach(f, st->fd);
		free(st->name);
		free(st->script);
		free(st);
	}
}

static struct generation *
gen_build(void)
{
	struct generation	*g;
	struct filter_conf	*fc;
	struct chain_conf	*cc;
	struct listener		*l;
	struct filter		*f;

	g = xcalloc(1, sizeof(*g));
	TAILQ_INIT(&g->filters);
	TAILQ_INIT(&g->chains);
	/* Filters point into the statements: keep them while g lives. */
	g->conf = smtpfd_conf;
	smtpfd_conf_ref(g->conf);
	TAILQ_FOREACH(fc, &smtpfd_conf->filters, entry) {
		f = xcalloc(1, sizeof(*f));
		f->name = xstrdup(fc->name);
		f->conf = fc;
		f->ops = ops_of(fc->kind);
		f->timeout_ms = fc->timeout_ms;
		f->on_failure = (enum on_failure)fc->on_failure;
		TAILQ_INSERT_TAIL(&g->filters, f, entry);
	}
	TAILQ_FOREACH(cc, &smtpfd_conf->chains, entry)
		add_chain(g, cc->name, cc->filters, cc->nfilters);
	/* A listener may name one filter instead of a chain. */
	TAILQ_FOREACH(l, &smtpfd_conf->listeners, entry)
		if (l->chain != NULL && gen_chain(g, l->chain) == NULL)
			add_chain(g, l->chain, &l->chain, 1);
	use_stash(g);
	TAILQ_FOREACH(f, &g->filters, entry)
		if (f->ops->start(f) == -1) {
			/* Out of service: its chains get its failure policy. */
			log_warnx("filter %s cannot start: out of service",
			    f->name);
			f->broken = 1;
		}
	return g;
}

static void
gen_free(struct generation *g)
{
	struct filter	*f;
	struct chain	*c;

	while ((c = TAILQ_FIRST(&g->chains)) != NULL) {
		TAILQ_REMOVE(&g->chains, c, entry);
		free(c->filters);
		free(c->name);
		free(c);
	}
	while ((f = TAILQ_FIRST(&g->filters)) != NULL) {
		TAILQ_REMOVE(&g->filters, f, entry);
		if (f->ops->stop != NULL)
			f->ops->stop(f);
		free(f->name);
		free(f);
	}
	smtpfd_conf_unref(g->conf);
	free(g);
}

void
engine_configured(struct ipc_chan *parent)
{
	(void)parent;
	current = gen_build();
}

/* A reload: new sessions get the new generation. */
void
engine_reconfigured(struct ipc_chan *parent)
{
	struct generation	*old = current;

	(void)parent;
	current = gen_build();
	old->retired = 1;
	if (old->refs == 0)
		gen_free(old);
	log_info("filters reloaded: new sessions use the new chains");
}

/*
 * Sessions.
 */
static int
chain_ready(struct chain *c)
{
	size_t	 i;

	for (i = 0; i < c->nfilters; i++)
		if (!c->filters[i]->ready && !c->filters[i]->broken)
			return 0;
	return 1;
}

static void
send_chain(struct fsession *fs)
{
	struct ipc_chan	*chan = frontend();
	uint32_t	 phases = 0, events = 0;
	size_t		 i;

	for (i = 0; fs->chain != NULL && i < fs->chain->nfilters; i++) {
		phases |= fs->chain->filters[i]->phases;
		events |= fs->chain->filters[i]->events;
		/* A filter out of service answers at connect already. */
		if (fs->chain->filters[i]->broken ||
		    !fs->chain->filters[i]->ready)
			phases |= 1U << PHASE_CONNECT;
	}
	/* What the engine itself keeps of a filtered session. */
	if (((struct esession *)fs)->listener != NULL) {
		events |= TRACKED_EVENTS;
		phases |= select_phases(((struct esession *)fs)->gen);
	}
	ipc_begin(chan, SMTPFD_MSG_SESSION_CHAIN, -1);
	ipc_add_u64(chan, fs->id);
	ipc_add_u32(chan, phases);
	ipc_add_u32(chan, events);
	ipc_end(chan);
}

/* A filter became ready: sessions that waited for it go on. */
void
filter_ready(struct filter *f)
{
	struct fsession	*fs;
	struct esession	*es;

	f->ready = 1;
	TAILQ_FOREACH(fs, &sessions, entry) {
		es = (struct esession *)fs;
		if (es->waiting && chain_ready(fs->chain)) {
			es->waiting = 0;
			evtimer_del(&es->ev_waiting);
			send_chain(fs);
		}
	}
}

/* The domain part of an address ("" if none). */
static const char *
domain_of(const char *addr)
{
	const char	*at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

static int
in_list(char **list, size_t n, const char *s, int domains)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (domains ? strcasecmp(list[i], s) == 0 :
		    strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

/*
 * The chain a session runs: the first "select" whose conditions hold,
 * else its listener's chain.  Asked at the start (phase -1) and again
 * at each MAIL FROM and RCPT TO (param: the address), when auth and the
 * addresses are known.
 */
static struct chain *
select_chain(struct esession *es, int phase, const char *param)
{
	struct fsession		*fs = &es->fs;
	struct select_conf	*sel;
	struct select_cond	*c;
	const char		*d;
	size_t			 i, j;
	int			 holds;

	TAILQ_FOREACH(sel, &es->gen->conf->selects, entry) {
		for (i = 0; i < sel->nconds; i++) {
			c = &sel->conds[i];
			switch (c->kind) {
			case SELECT_TAG:
				holds = strcmp(fs->tag, c->list[0]) == 0;
				break;
			case SELECT_SRC:
				for (holds = 0, j = 0; !holds && j < c->nlist;
				    j++)
					holds = addr_in_net(fs->addr,
					    c->list[j]);
				break;
			case SELECT_AUTH:
				holds = fs->auth_user[0] != '\0';
				break;
			case SELECT_MAIL_FROM:
				d = phase == PHASE_MAIL_FROM ?
				    domain_of(param) : domain_of(fs->mail_from);
				holds = phase != -1 &&
				    in_list(c->list, c->nlist, d, 1);
				break;
			case SELECT_RCPT_TO:
				holds = phase == PHASE_RCPT_TO &&
				    in_list(c->list, c->nlist,
				    domain_of(param), 1);
				for (j = 0; !holds && j < fs->nrcpts; j++)
					holds = in_list(c->list, c->nlist,
					    domain_of(fs->rcpts[j]), 1);
				break;
			default:
				holds = 0;
			}
			if (holds == c->negate)
				break;
		}
		if (i == sel->nconds)
			return sel->chain ? gen_chain(es->gen, sel->chain) :
			    NULL;
	}
	return gen_chain(es->gen, es->listener->chain);
}

/* Selections that need the frontend to ask at MAIL FROM, RCPT TO. */
static uint32_t
select_phases(struct generation *g)
{
	struct select_conf	*sel;
	size_t			 i;
	uint32_t		 phases = 0;

	TAILQ_FOREACH(sel, &g->conf->selects, entry)
		for (i = 0; i < sel->nconds; i++)
			switch (sel->conds[i].kind) {
			case SELECT_AUTH:
			case SELECT_MAIL_FROM:
				phases |= 1U << PHASE_MAIL_FROM;
				break;
			case SELECT_RCPT_TO:
				phases |= 1U << PHASE_RCPT_TO;
				break;
			default:
				break;
			}
	return phases;
}

/* The session leaves its chain's filters and joins another chain's. */
static void
chain_enter(struct fsession *fs, struct chain *c)
{
	size_t	 i;

	if (fs->chain == c && fs->fstate != NULL)
		return;
	for (i = 0; fs->chain != NULL && i < fs->chain->nfilters; i++)
		if (fs->chain->filters[i]->ops->session_close != NULL)
			fs->chain->filters[i]->ops->session_close(
			    fs->chain->filters[i], fs);
	free(fs->fstate);
	fs->fstate = NULL;
	fs->chain = c;
	if (c == NULL)
		return;
	fs->fstate = xcalloc(c->nfilters, sizeof(*fs->fstate));
	for (i = 0; i < c->nfilters; i++)
		if (c->filters[i]->ops->session_open != NULL)
			c->filters[i]->ops->session_open(c->filters[i], fs);
}

/*
 * A filter of the chain did not start in time: the session goes on, and
 * the filter that is not ready answers with its failure policy.
 */
static void
ready_wait_expired(int fd, short event, void *arg)
{
	struct esession	*es = arg;

	(void)fd;
	(void)event;
	if (!es->waiting)
		return;
	es->waiting = 0;
	log_warnx("%016" PRIx64 " a filter of chain %s is not ready",
	    es->fs.id, es->fs.chain->name);
	send_chain(&es->fs);
}

static void
session_open(struct ipc_msg *msg)
{
	struct esession	*es;
	struct fsession	*fs;
	struct listener	*l;
	uint32_t	 index;

	es = xcalloc(1, sizeof(*es));
	fs = &es->fs;
	fs->id = ipc_get_u64(msg);
	index = ipc_get_u32(msg);
	snprintf(fs->addr, sizeof(fs->addr), "%s", ipc_get_string(msg));
	fs->port = (int)ipc_get_u32(msg);
	snprintf(fs->local_addr, sizeof(fs->local_addr), "%s",
	    ipc_get_string(msg));
	fs->local_port = (int)ipc_get_u32(msg);
	snprintf(fs->rdns, sizeof(fs->rdns), "%s", ipc_get_string(msg));
	snprintf(fs->tag, sizeof(fs->tag), "%s", ipc_get_string(msg));
	ipc_get_end(msg);
	if (session_find(fs->id) != NULL)
		fatalx("frontend opened session %016" PRIx64 " twice", fs->id);
	TAILQ_INSERT_TAIL(&sessions, fs, entry);
	es->gen = current;
	current->refs++;
	if ((l = listener_find(index)) == NULL || l->chain == NULL) {
		send_chain(fs);
		return;
	}
	es->listener = l;
	chain_enter(fs, select_chain(es, -1, NULL));
	if (fs->chain != NULL && !chain_ready(fs->chain)) {
		struct timeval	 tv = { READY_WAIT_SECONDS, 0 };

		es->waiting = 1;
		evtimer_set(&es->ev_waiting, ready_wait_expired, es);
		evtimer_add(&es->ev_waiting, &tv);
		return;
	}
	send_chain(fs);
}

static void
tx_clear(struct fsession *fs)
{
	size_t	 i;

	for (i = 0; i < fs->nrcpts; i++)
		free(fs->rcpts[i]);
	free(fs->rcpts);
	fs->rcpts = NULL;
	fs->nrcpts = 0;
	fs->msgid = 0;
	fs->mail_from[0] = '\0';
	fs->junk = 0;
	fs->version++;
}

static void
session_close(struct fsession *fs)
{
	struct esession		*es = (struct esession *)fs;
	struct generation	*g = es->gen;

	TAILQ_REMOVE(&sessions, fs, entry);
	if (es->waiting)
		evtimer_del(&es->ev_waiting);
	if (es->out_queued)
		TAILQ_REMOVE(&flushq, es, flush_entry);
	line_batch_free(&es->out);
	filter_session_end(fs);
	chain_enter(fs, NULL);
	tx_clear(fs);
	free(fs);
	if (--g->refs == 0 && g->retired)
		gen_free(g);
}

/* The field after n '|' in an event's parameters. */
static const char *
event_field(const char *params, int n, char *buf, size_t size)
{
	const char	*p = params;
	size_t		 len;

	while (n-- > 0)
		if ((p = strchr(p, '|')) == NULL)
			return "";
		else
			p++;
	len = strcspn(p, "|");
	if (len >= size)
		len = size - 1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return buf;
}

/* What the engine keeps of a session, from its events. */
static void
session_track(struct fsession *fs, enum filter_event ev, const char *params)
{
	char	 buf[512];

	switch (ev) {
	case EVENT_LINK_IDENTIFY:
		event_field(params, 1, fs->helo, sizeof(fs->helo));
		fs->link_version++;
		break;
	case EVENT_LINK_TLS:
		fs->tls = 1;
		snprintf(fs->tls_info, sizeof(fs->tls_info), "%s", params);
		fs->link_version++;
		break;
	case EVENT_LINK_AUTH:
		if (strcmp(event_field(params, 0, buf, sizeof(buf)),
		    "pass") == 0)
			event_field(params, 1, fs->auth_user,
			    sizeof(fs->auth_user));
		fs->link_version++;
		break;
	case EVENT_TX_BEGIN:
		tx_clear(fs);
		fs->msgid = (uint32_t)strtoul(params, NULL, 16);
		break;
	case EVENT_TX_MAIL:
		if (strcmp(event_field(params, 1, buf, sizeof(buf)), "ok") == 0)
			event_field(params, 2, fs->mail_from,
			    sizeof(fs->mail_from));
		fs->version++;
		break;
	case EVENT_TX_RCPT:
		if (strcmp(event_field(params, 1, buf, sizeof(buf)), "ok") == 0) {
			fs->rcpts = xreallocarray(fs->rcpts, fs->nrcpts + 1,
			    sizeof(*fs->rcpts));
			fs->rcpts[fs->nrcpts++] = xstrdup(event_field(params,
			    2, buf, sizeof(buf)));
			fs->version++;
		}
		break;
	case EVENT_TX_RESET:
	case EVENT_TX_COMMIT:
	case EVENT_TX_ROLLBACK:
		filter_data_abort(fs);
		break;
	default:
		break;
	}
}

static void
session_event(struct fsession *fs, enum filter_event ev, const char *params)
{
	struct filter	*f;
	size_t		 i;

	session_track(fs, ev, params);
	for (i = 0; fs->chain != NULL && i < fs->chain->nfilters; i++) {
		f = fs->chain->filters[i];
		if ((f->events & (1U << ev)) && !f->broken &&
		    f->ops->report != NULL)
			f->ops->report(f, fs, ev, params);
	}
	/* tx-reset and tx-rollback end the transaction for filters too */
	if (ev == EVENT_TX_RESET || ev == EVENT_TX_ROLLBACK ||
	    ev == EVENT_TX_COMMIT)
		tx_clear(fs);
}

/*
 * The message's "." as a client line, told when the commit phase starts
 * (after the data-line filters, as OpenSMTPD tells it): the engine says
 * it itself, since the frontend asks the commit question along with the
 * "." (filter.c).
 */
void
engine_client_dot(struct fsession *fs)
{
	session_event(fs, EVENT_PROTOCOL_CLIENT, ".");
}

/* A filter said "report": the other filters hear of it. */
void
engine_report_all(struct fsession *fs, struct filter *from, const char *text)
{
	char	 params[DECISION_TEXT_MAX + 300];

	snprintf(params, sizeof(params), "%s|%s|%s", from->conf->kind ==
	    FILTER_RULE ? "builtin" : "proc", from->name, text);
	session_event(fs, EVENT_FILTER_REPORT, params);
}

static int
backlogged(struct fsession *fs)
{
	struct filter	*f;
	size_t		 i;

	for (i = 0; i < fs->chain->nfilters; i++) {
		f = fs->chain->filters[i];
		if ((f->phases & (1U << PHASE_DATA_LINE)) &&
		    f->ops->backlog != NULL && f->ops->backlog(f) > BACKLOG_MAX)
			return 1;
	}
	return 0;
}

static void
send_ack(struct fsession *fs)
{
	struct esession	*es = (struct esession *)fs;
	struct ipc_chan	*chan = frontend();

	if (es->unacked == 0)
		return;
	ipc_begin(chan, SMTPFD_MSG_FILTER_DATA_ACK, -1);
	ipc_add_u64(chan, fs->id);
	ipc_add_u32(chan, es->unacked);
	ipc_end(chan);
	es->unacked = 0;
}

/* A filter took its backlog: the frontend may send more. */
void
filter_drained(struct filter *f)
{
	struct fsession	*fs;

	TAILQ_FOREACH(fs, &sessions, entry)
		if (fsession_has_filter(fs, f) && !backlogged(fs))
			send_ack(fs);
}

/* A question: at MAIL FROM and RCPT TO the chain may change first. */
static void
session_query(struct fsession *fs, enum filter_phase phase, const char *param)
{
	struct esession	*es = (struct esession *)fs;
	struct chain	*c;
	struct decision	 d;

	if (phase == PHASE_MAIL_FROM || phase == PHASE_RCPT_TO) {
		c = select_chain(es, phase, param);
		if (c != fs->chain) {
			log_debug("%016" PRIx64 " chain %s for this "
			    "transaction", fs->id, c ? c->name : "(bypass)");
			chain_enter(fs, c);
			send_chain(fs);
		}
	}
	if (fs->chain == NULL) {
		memset(&d, 0, sizeof(d));
		engine_send_decision(fs, phase, &d, 0);
		return;
	}
	filter_query_start(fs, phase, param);
}

static void
session_data_line(void *arg, const char *line, size_t len)
{
	struct fsession	*fs = arg;

	(void)len;
	if (fs->chain == NULL)
		engine_send_line(fs, line);	/* bypassed: straight back */
	else
		filter_data_start_line(fs, line);
}

/*
 * A batch of data lines, acknowledged as a whole.  The lines before the
 * message's end go to the chain's first filter as one block when it
 * takes blocks (a Lua filter keeps them for one run of its script).
 */
static int
session_data(struct fsession *fs, const char *lines, size_t len, uint32_t n)
{
	struct esession	*es = (struct esession *)fs;
	uint32_t	 head;
	size_t		 headlen;

	es->unacked += n;
	if (line_batch_scan(lines, len, n, &head, &headlen) == -1)
		return -1;
	if (head > 0 && fs->chain != NULL &&
	    filter_data_start_block(fs, lines, headlen, head)) {
		/* the rest, from the message's "." on, line by line */
		if (head < n && line_batch_each(lines + headlen + 1,
		    len - headlen - 1, n - head, session_data_line, fs) == -1)
			return -1;
	} else if (line_batch_each(lines, len, n, session_data_line,
	    fs) == -1)
		return -1;
	if (fs->chain != NULL)
		filter_data_flush(fs);
	if (fs->chain == NULL || !backlogged(fs))
		send_ack(fs);
	return 0;
}

void
engine_send_decision(struct fsession *fs, enum filter_phase phase,
    const struct decision *d, int junk)
{
	struct ipc_chan	*chan = frontend();

	ipc_begin(chan, SMTPFD_MSG_FILTER_DECISION, -1);
	ipc_add_u64(chan, fs->id);
	ipc_add_u32(chan, phase);
	ipc_add_u32(chan, d->kind);
	ipc_add_u32(chan, (uint32_t)junk);
	ipc_add_string(chan, d->text);
	ipc_end(chan);
}

/* A line out of the chain: batched, sent by the end of the turn. */
void
engine_send_line(struct fsession *fs, const char *line)
{
	struct esession	*es = (struct esession *)fs;

	line_batch_add(&es->out, line);
	if (line_batch_full(&es->out) || strcmp(line, ".") == 0) {
		out_send(es);
		return;
	}
	if (!es->out_queued) {
		TAILQ_INSERT_TAIL(&flushq, es, flush_entry);
		es->out_queued = 1;
		event_active(&ev_flush, EV_TIMEOUT, 1);
	}
}

/*
 * Lines out of the chain by the block: text holds nlines whole lines,
 * each ended by LF, none of them the message's ".".  They go in batches
 * as engine_send_line() would make them, without a call a line.
 */
void
engine_send_lines(struct fsession *fs, const char *text, size_t len,
    uint32_t nlines)
{
	struct esession	*es = (struct esession *)fs;
	const char	*nl;
	size_t		 room, take, l;
	uint32_t	 n;

	/* Into the batch as a whole when it fits: the lines are counted. */
	if (es->out.len + len <= LINE_BATCH_MAX) {
		line_batch_addblock(&es->out, text, len - 1, nlines);
		if (line_batch_full(&es->out))
			out_send(es);
		len = 0;
	}
	while (len > 0) {
		room = LINE_BATCH_MAX > es->out.len ?
		    LINE_BATCH_MAX - es->out.len : 0;
		for (take = 0, n = 0; take < len; take += l, n++) {
			if ((nl = memchr(text + take, '\n', len - take)) == NULL)
				fatalx("engine_send_lines: a line without LF");
			l = (size_t)(nl - (text + take)) + 1;
			if (n > 0 && take + l > room)
				break;
		}
		line_batch_addblock(&es->out, text, take - 1, n);
		if (line_batch_full(&es->out))
			out_send(es);
		text += take;
		len -= take;
	}
	if (es->out.n > 0 && !es->out_queued) {
		TAILQ_INSERT_TAIL(&flushq, es, flush_entry);
		es->out_queued = 1;
		event_active(&ev_flush, EV_TIMEOUT, 1);
	}
}

void
engine_restart_filter(struct filter *f)
{
	ipc_begin(parent_chan, SMTPFD_MSG_FILTER_RESTART, -1);
	ipc_add_string(parent_chan, f->name);
	ipc_end(parent_chan);
}

/*
 * smtpfctl show filters: one line per filter of the current generation.
 */
static void
show_filters(struct ipc_chan *chan, uint64_t client)
{
	static const char	*bounds[] = { "0.0001", "0.0005", "0.001",
	    "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf" };
	struct filter		*f;
	struct filter_stats	*st;
	char			 hist[512];
	size_t			 i, off;
	uint64_t		 cum;

	TAILQ_FOREACH(f, &current->filters, entry) {
		st = &f->stats;
		hist[0] = '\0';
		for (i = 0, off = 0, cum = 0; i < 11; i++) {
			cum += st->latency[i];
			off += (size_t)snprintf(hist + off, sizeof(hist) - off,
			    " le%s=%" PRIu64, bounds[i], cum);
			if (off >= sizeof(hist))
				break;
		}
		ctl_line(chan, client, "%s kind=%s state=%s calls=%" PRIu64
		    " proceed=%" PRIu64 " rewrite=%" PRIu64 " junk=%" PRIu64
		    " report=%" PRIu64 " bypass=%" PRIu64 " reject=%" PRIu64
		    " disconnect=%" PRIu64 " failures=%" PRIu64
		    " timeouts=%" PRIu64 " restarts=%" PRIu64
		    " latency_sum=%.6f%s", f->name,
		    f->conf->kind == FILTER_RULE ? "rule" :
		    f->conf->kind == FILTER_LUA ? "lua" : "exec",
		    f->broken ? "broken" : f->ready ? "ready" : "starting",
		    st->calls, st->decisions[DECISION_PROCEED],
		    st->decisions[DECISION_REWRITE],
		    st->decisions[DECISION_JUNK],
		    st->decisions[DECISION_REPORT],
		    st->decisions[DECISION_BYPASS],
		    st->decisions[DECISION_REJECT],
		    st->decisions[DECISION_DISCONNECT], st->failures,
		    st->timeouts, st->restarts, st->latency_sum, hist);
	}
	ctl_end(chan, client, 0, "%s", "");
}

/*
 * GET /metrics: the counters of show filters in Prometheus text format
 * (metrics.h), whole families one after another.
 */
static void
metrics_filters(struct ipc_chan *chan, uint64_t client)
{
	static const char	*bounds[] = { "0.0001", "0.0005", "0.001",
	    "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf" };
	static const char	*states[] = { "ready", "starting", "broken" };
	static const struct {
		const char	*name, *help;
	} plain[] = {
		{ "smtpfd_filter_failures_total", "Answers the filter failed "
		    "to give (crash, malformed answer, script error)." },
		{ "smtpfd_filter_timeouts_total", "Answers the filter did not "
		    "give in time." },
		{ "smtpfd_filter_restarts_total", "Times the filter's process "
		    "was started again." },
	};
	struct filter		*f, **fs;
	struct filter_stats	*st;
	const char		*state;
	char			**l;
	size_t			 n = 0, k, i, j;
	uint64_t		 cum, v;

	if (current == NULL)
		return;
	TAILQ_FOREACH(f, &current->filters, entry)
		n++;
	fs = xcalloc(n + 1, sizeof(*fs));
	l = xcalloc(n + 1, sizeof(*l));
	k = 0;
	TAILQ_FOREACH(f, &current->filters, entry) {
		fs[k] = f;
		l[k++] = metrics_label(f->name);
	}
	metrics_family(chan, client, "smtpfd_filter_calls_total", "counter",
	    "Questions asked to the filter.");
	for (k = 0; k < n; k++)
		metrics_sample(chan, client, "smtpfd_filter_calls_total"
		    "{filter=\"%s\",kind=\"%s\"} %" PRIu64, l[k],
		    fs[k]->conf->kind == FILTER_RULE ? "rule" :
		    fs[k]->conf->kind == FILTER_LUA ? "lua" : "exec",
		    fs[k]->stats.calls);
	metrics_family(chan, client, "smtpfd_filter_decisions_total",
	    "counter", "The filter's decisions, by kind.");
	for (k = 0; k < n; k++)
		for (j = 0; j <= DECISION_DISCONNECT; j++)
			metrics_sample(chan, client,
			    "smtpfd_filter_decisions_total"
			    "{filter=\"%s\",decision=\"%s\"} %" PRIu64, l[k],
			    decision_name((enum decision_kind)j),
			    fs[k]->stats.decisions[j]);
	for (j = 0; j < sizeof(plain) / sizeof(plain[0]); j++) {
		metrics_family(chan, client, plain[j].name, "counter",
		    plain[j].help);
		for (k = 0; k < n; k++) {
			st = &fs[k]->stats;
			v = j == 0 ? st->failures : j == 1 ? st->timeouts :
			    st->restarts;
			metrics_sample(chan, client, "%s{filter=\"%s\"} %"
			    PRIu64, plain[j].name, l[k], v);
		}
	}
	metrics_family(chan, client, "smtpfd_filter_state", "gauge",
	    "1 for the filter's state (ready, starting, broken), else 0.");
	for (k = 0; k < n; k++) {
		state = fs[k]->broken ? "broken" : fs[k]->ready ? "ready" :
		    "starting";
		for (j = 0; j < sizeof(states) / sizeof(states[0]); j++)
			metrics_sample(chan, client, "smtpfd_filter_state"
			    "{filter=\"%s\",state=\"%s\"} %d", l[k],
			    states[j], strcmp(state, states[j]) == 0);
	}
	metrics_family(chan, client, "smtpfd_filter_latency_seconds",
	    "histogram", "How long the filter took to answer.");
	for (k = 0; k < n; k++) {
		st = &fs[k]->stats;
		for (i = 0, cum = 0; i < sizeof(bounds) / sizeof(bounds[0]);
		    i++) {
			cum += st->latency[i];
			metrics_sample(chan, client,
			    "smtpfd_filter_latency_seconds_bucket"
			    "{filter=\"%s\",le=\"%s\"} %" PRIu64, l[k],
			    bounds[i], cum);
		}
		metrics_sample(chan, client, "smtpfd_filter_latency_seconds_sum"
		    "{filter=\"%s\"} %.9g", l[k], st->latency_sum);
		metrics_sample(chan, client,
		    "smtpfd_filter_latency_seconds_count{filter=\"%s\"} %"
		    PRIu64, l[k], cum);
	}
	for (k = 0; k < n; k++)
		free(l[k]);
	free(l);
	free(fs);
}

static void
stash_add(struct ipc_msg *msg, int script)
{
	struct stash	*st;
	const void	*p;
	struct filter	*f;

	st = xcalloc(1, sizeof(*st));
	st->name = xstrdup(ipc_get_string(msg));
	st->fd = -1;
	if (script) {
		p = ipc_get_data(msg, &st->len);
		st->script = xmalloc(st->len + 1);
		memcpy(st->script, p, st->len);
		st->script[st->len] = '\0';
	} else
		st->fd = msg->fd;
	ipc_get_end(msg);
	/*
	 * A restarted exec filter: straight to the running filter.  During
	 * a reload (a new configuration is being received: it is not the
	 * current generation's) the process is the next generation's.
	 */
	if (!script && current != NULL && current->conf == smtpfd_conf &&
	    (f = gen_filter(current, st->name)) != NULL) {
		filter_exec_attach(f, st->fd);
		free(st->name);
		free(st);
		return;
	}
	TAILQ_INSERT_TAIL(&stashed, st, entry);
}

int
engine_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	struct fsession	*fs = NULL;
	const char	*s;
	size_t		 len;
	uint64_t	 id;
	uint32_t	 u;

	switch (msg->type) {
	case SMTPFD_MSG_FILTER_SCRIPT:
	case SMTPFD_MSG_FILTER_PROC:
		if (chan != parent_chan)
			return -1;
		stash_add(msg, msg->type == SMTPFD_MSG_FILTER_SCRIPT);
		return 0;
	case SMTPFD_MSG_CTL_REQUEST:
		if (strcmp(chan->peer, "control") != 0)
			return -1;
		id = ipc_get_u64(msg);
		u = ipc_get_u32(msg);
		(void)ipc_get_string(msg);
		ipc_get_end(msg);
		if (u == CTL_SHOW_FILTERS)
			show_filters(chan, id);
		else if (u == CTL_METRICS) {
			metrics_filters(chan, id);
			ctl_end(chan, id, 0, "%s", "");
		} else
			ctl_end(chan, id, 1, "unexpected request");
		return 0;
	default:
		break;
	}
	if (strcmp(chan->peer, "frontend") != 0)
		return -1;
	placement_tick();
	if (msg->type == SMTPFD_MSG_SESSION_OPEN) {
		session_open(msg);
		return 0;
	}
	if (msg->type == SMTPFD_MSG_FRONTEND_CPU) {
		u = ipc_get_u32(msg);
		ipc_get_end(msg);
		if (u >= CPU_SETSIZE)
			return -1;
		placement_follow(u);
		return 0;
	}
	id = ipc_get_u64(msg);
	if ((fs = session_find(id)) == NULL)
		fatalx("frontend names unknown session %016" PRIx64, id);
	switch (msg->type) {
	case SMTPFD_MSG_SESSION_CLOSE:
		ipc_get_end(msg);
		session_close(fs);
		return 0;
	case SMTPFD_MSG_FILTER_QUERY:
		u = ipc_get_u32(msg);
		s = ipc_get_string(msg);
		ipc_get_end(msg);
		if (u >= NPHASES || ((struct esession *)fs)->listener == NULL)
			return -1;
		session_query(fs, (enum filter_phase)u, s);
		return 0;
	case SMTPFD_MSG_FILTER_EVENT:
		u = ipc_get_u32(msg);
		s = ipc_get_string(msg);
		ipc_get_end(msg);
		if (u >= NEVENTS)
			return -1;
		session_event(fs, (enum filter_event)u, s);
		return 0;
	case SMTPFD_MSG_FILTER_DATA:
		u = ipc_get_u32(msg);
		s = ipc_get_stringn(msg, &len);
		ipc_get_end(msg);
		return session_data(fs, s, len, u);
	}
	return -1;
}
