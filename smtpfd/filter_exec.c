/*
 * Executable filters: long-lived processes speaking OpenSMTPD's filter
 * protocol (smtpd-filters(7), versions 0.7 and 0.6; SPEC.md section 3)
 * on one socket, their stdin and stdout.  The parent starts them and
 * sends the engine the socket (filter_exec_attach).
 *
 *	engine -> filter	config|KEY|VALUE ... config|ready
 *				report|VER|TIME|smtp-in|EVENT|SID[|PARAMS]
 *				filter|VER|TIME|smtp-in|PHASE|SID|TOKEN|PARAM
 *	filter -> engine	register|report|smtp-in|EVENT ...
 *				register|filter|smtp-in|PHASE ...
 *				register|ready
 *				filter-result|SID|TOKEN|DECISION[|TEXT]
 *				filter-dataline|SID|TOKEN|LINE
 *
 * SID is the frontend's session id and TOKEN the runner's, both as 16
 * hex digits.  A process that dies, or writes a line that breaks the
 * protocol, is lost: the log names the filter (and the line), the
 * sessions it was working for get its failure policy, and the engine
 * asks the parent for a new process after 1 s, 2 s, 4 s ... up to 60 s.
 * More than 5 restarts in 10 minutes put the filter out of service (the
 * chain applies its failure policy) until smtpfctl reload.  Sessions the
 * lost process knew never go to the new one, which would not know them:
 * the filter fails for them until they end.
 *
 * After a reload the filter of the new configuration has a process of
 * its own; the old one keeps serving the sessions on the old chains and
 * is not restarted when it dies.
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "filter.h"
#include "filter_exec_proto.h"
#include "io.h"
#include "log.h"
#include "smtpfd.h"
#include "xmalloc.h"

#define LINE_MAX_LEN		(64 * 1024)
#define BACKOFF_FIRST_MS	1000
#define BACKOFF_MAX_MS		(60 * 1000)
#define RESTARTS_MAX		5
#define RESTART_WINDOW		(10 * 60)	/* seconds */
#define NBUCKETS		1024
#define BACKLOG_NOTE		(64 * 1024)

struct xsession {
	LIST_ENTRY(xsession)	 entry;
	struct fsession		*fs;
	uint64_t		 epoch;		/* the process that knows it */
	int			 disconnected;	/* link-disconnect sent */
	enum filter_phase	 phase;		/* of the query out */
	uint64_t		 token;
};

LIST_HEAD(xbucket, xsession);

struct xfilter {
	TAILQ_ENTRY(xfilter)	 entry;
	struct filter		*f;
	struct io		*io;		/* NULL: no process */
	uint64_t		 epoch;		/* one per process */
	int			 registered;	/* register|ready seen */
	uint32_t		 phases, events; /* as it registers */
	int			 retired;	/* a reload replaced it */
	int			 restarting;	/* asked the parent */
	int			 backlogged;
	int			 backoff_ms;
	time_t			 restarts[RESTARTS_MAX];
	size_t			 nrestarts;
	time_t			 last_loss;
	struct event		 ev_restart;
	struct event		 ev_register;	/* register|ready in time */
	const char		*version;	/* "0.7", "0.6" */
	struct xbucket		 sessions[NBUCKETS];
};

/* Every exec filter of every generation, to tell reloads from restarts. */
static TAILQ_HEAD(, xfilter)	 xfilters = TAILQ_HEAD_INITIALIZER(xfilters);

/* A reload's process, sent before the filter it is for exists. */
struct pending {
	TAILQ_ENTRY(pending)	 entry;
	char			*name;
	int			 fd;
};
static TAILQ_HEAD(, pending)	 pendings = TAILQ_HEAD_INITIALIZER(pendings);

static void	 x_lost(struct xfilter *, const char *, const char *);
static void	 x_io(struct io *, enum io_event, void *);
static void	 x_restart(int, short, void *);
static void	 x_register_timeout(int, short, void *);

static struct xbucket *
bucket(struct xfilter *x, uint64_t id)
{
	return &x->sessions[(id ^ (id >> 32)) % NBUCKETS];
}

static struct xsession *
xsession_find(struct xfilter *x, uint64_t id)
{
	struct xsession	*s;

	LIST_FOREACH(s, bucket(x, id), entry)
		if (s->fs->id == id)
			return s;
	return NULL;
}

static struct xfilter *
xfilter_new(struct filter *f)
{
	struct xfilter	*x;
	size_t		 i;

	x = xcalloc(1, sizeof(*x));
	x->f = f;
	x->backoff_ms = BACKOFF_FIRST_MS;
	x->version = f->conf->protocol != NULL &&
	    strcmp(f->conf->protocol, "0.6") == 0 ? "0.6" : "0.7";
	for (i = 0; i < NBUCKETS; i++)
		LIST_INIT(&x->sessions[i]);
	evtimer_set(&x->ev_restart, x_restart, x);
	evtimer_set(&x->ev_register, x_register_timeout, x);
	f->impl = x;
	TAILQ_INSERT_TAIL(&xfilters, x, entry);
	return x;
}

static void
arm(struct event *ev, int ms)
{
	struct timeval	 tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

static void
timestamp(char *buf, size_t size)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(buf, size, "%lld.%06ld", (long long)ts.tv_sec,
	    ts.tv_nsec / 1000);
}

/* The handshake: what OpenSMTPD tells its filters first. */
static void
send_config(struct xfilter *x)
{
	int	 v07 = strcmp(x->version, "0.7") == 0;

	io_printf(x->io, "config|smtpd-version|%s\n", v07 ? "7.6.0" :
	    "6.8.0");
	if (v07)
		io_printf(x->io, "config|protocol|0.7\n");
	io_printf(x->io, "config|smtp-session-timeout|%d\n",
	    smtpfd_conf->client_timeout / 1000);
	io_printf(x->io, "config|subsystem|smtp-in\n");
	io_printf(x->io, "config|admd|%s\n", smtpfd_conf->hostname);
	io_printf(x->io, "config|ready\n");
}

/* A process from the parent: the filter's new (or first) one. */
static void
x_connect(struct xfilter *x, int fd)
{
	if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1 ||
	    (x->io = io_new(fd, x_io, x)) == NULL) {
		log_warn("filter %s: its socket", x->f->name);
		close(fd);
		x_lost(x, "cannot use its socket", NULL);
		return;
	}
	x->epoch++;
	x->registered = 0;
	x->phases = x->events = 0;
	send_config(x);
	arm(&x->ev_register, x->f->timeout_ms);
}

void
filter_exec_attach(struct filter *f, int fd)
{
	struct xfilter	*x = f->impl;
	struct pending	*p;

	if (x == NULL)
		x = xfilter_new(f);
	if (x->io != NULL || (!x->restarting && x->epoch > 0)) {
		/* Not a restart: a reload's, for the filter to come. */
		p = xcalloc(1, sizeof(*p));
		p->name = xstrdup(f->name);
		p->fd = fd;
		TAILQ_INSERT_TAIL(&pendings, p, entry);
		return;
	}
	x->restarting = 0;
	if (f->broken || x->retired) {
		close(fd);
		return;
	}
	x_connect(x, fd);
}

static int
exec_start(struct filter *f)
{
	struct xfilter	*x = f->impl, *old;
	struct pending	*p;

	if (x == NULL)
		x = xfilter_new(f);
	/* The filter of the same name in older generations is retired. */
	TAILQ_FOREACH(old, &xfilters, entry)
		if (old != x && strcmp(old->f->name, f->name) == 0)
			old->retired = 1;
	if (x->io == NULL && x->epoch == 0) {
		TAILQ_FOREACH(p, &pendings, entry)
			if (strcmp(p->name, f->name) == 0)
				break;
		if (p != NULL) {
			TAILQ_REMOVE(&pendings, p, entry);
			x_connect(x, p->fd);
			free(p->name);
			free(p);
		}
	}
	return 0;
}

static void
exec_stop(struct filter *f)
{
	struct xfilter	*x = f->impl;
	struct xsession	*s;
	size_t		 i;

	if (x == NULL)
		return;
	evtimer_del(&x->ev_restart);
	evtimer_del(&x->ev_register);
	io_free(x->io);
	for (i = 0; i < NBUCKETS; i++)
		while ((s = LIST_FIRST(&x->sessions[i])) != NULL) {
			LIST_REMOVE(s, entry);
			free(s);
		}
	TAILQ_REMOVE(&xfilters, x, entry);
	free(x);
	f->impl = NULL;
}

/*
 * The process is lost (it died, broke the protocol, or its socket
 * failed): the sessions it was working for get the failure policy, and
 * a new process comes after the back-off.
 */
static void
x_lost(struct xfilter *x, const char *why, const char *line)
{
	struct filter	*f = x->f;
	struct fsession	*fs, *next;
	time_t		 now = time(NULL);
	size_t		 i, n;
	char		 msg[256];

	if (line != NULL)
		log_warnx("filter %s: %s: \"%.200s\"", f->name, why, line);
	else
		log_warnx("filter %s: %s", f->name, why);
	if (x->io != NULL) {
		io_free(x->io);
		x->io = NULL;
	}
	evtimer_del(&x->ev_register);
	x->backlogged = 0;
	snprintf(msg, sizeof(msg), "the filter's process was lost (%s)", why);
	for (fs = engine_sessions_first(); fs != NULL; fs = next) {
		next = engine_sessions_next(fs);
		if (fsession_has_filter(fs, f))
			filter_failure(f, fs, msg);
	}
	if (x->retired || f->broken)
		return;
	/* 1 s, doubling to 60 s; back to 1 s after a quiet 10 minutes. */
	if (x->last_loss != 0 && now - x->last_loss > RESTART_WINDOW)
		x->backoff_ms = BACKOFF_FIRST_MS;
	x->last_loss = now;
	for (i = 0, n = 0; i < x->nrestarts; i++)
		if (now - x->restarts[i] < RESTART_WINDOW)
			x->restarts[n++] = x->restarts[i];
	x->nrestarts = n;
	if (n >= RESTARTS_MAX) {
		log_warnx("filter %s: restarted %d times in %d minutes: out "
		    "of service until smtpfctl reload", f->name, RESTARTS_MAX,
		    RESTART_WINDOW / 60);
		f->broken = 1;
		/* Sessions waiting for it to be ready go on (and fail). */
		filter_ready(f);
		return;
	}
	x->restarts[x->nrestarts++] = now;
	log_info("filter %s: restarting in %d ms", f->name, x->backoff_ms);
	arm(&x->ev_restart, x->backoff_ms);
	x->backoff_ms *= 2;
	if (x->backoff_ms > BACKOFF_MAX_MS)
		x->backoff_ms = BACKOFF_MAX_MS;
}

static void
x_restart(int fd, short event, void *arg)
{
	struct xfilter	*x = arg;

	(void)fd;
	(void)event;
	if (x->retired || x->f->broken)
		return;
	x->restarting = 1;
	x->f->stats.restarts++;
	engine_restart_filter(x->f);
}

static void
x_register_timeout(int fd, short event, void *arg)
{
	struct xfilter	*x = arg;

	(void)fd;
	(void)event;
	if (x->io != NULL && !x->registered)
		x_lost(x, "no register|ready in time", NULL);
}

/*
 * Lines from the filter.
 */

/* "register|...", before register|ready. */
static void
x_register(struct xfilter *x, const struct exec_line *l)
{
	if (l->kind == EXEC_LINE_READY) {
		x->registered = 1;
		evtimer_del(&x->ev_register);
		x->f->phases = x->phases;
		x->f->events = x->events;
		if (!x->f->ready)
			filter_ready(x->f);
		return;
	}
	x->events |= l->events;
	x->phases |= l->phases;
}

/* "filter-result|SID|TOKEN|DECISION[|TEXT]": -1 if out of place. */
static int
x_result(struct xfilter *x, const struct exec_line *l)
{
	struct xsession	*s;
	struct decision	 d = l->decision;
	size_t		 len;

	/* Gone, or answered already (timeout): nothing to do. */
	if ((s = xsession_find(x, l->sid)) == NULL || s->epoch != x->epoch ||
	    s->token != l->token)
		return 0;
	if (s->phase == PHASE_DATA_LINE ||
	    (d.kind == DECISION_JUNK && s->phase == PHASE_COMMIT))
		return -1;
	if (d.kind == DECISION_REWRITE) {
		if (s->phase == PHASE_CONNECT) {
			d.kind = DECISION_PROCEED;	/* as OpenSMTPD */
			d.text[0] = '\0';
		} else if ((s->phase == PHASE_MAIL_FROM ||
		    s->phase == PHASE_RCPT_TO) && d.text[0] == '<' &&
		    (len = strlen(d.text)) >= 2 && d.text[len - 1] == '>') {
			/* "<a@b>" to OpenSMTPD; the chain passes "a@b" on */
			memmove(d.text, d.text + 1, len - 2);
			d.text[len - 2] = '\0';
		}
	}
	s->token = 0;
	filter_answer(s->fs, l->token, &d);
	return 0;
}

/* "filter-dataline|SID|TOKEN|LINE" */
static void
x_dataline(struct xfilter *x, const struct exec_line *l)
{
	struct xsession	*s;

	if ((s = xsession_find(x, l->sid)) == NULL || s->epoch != x->epoch)
		return;
	filter_line(s->fs, l->token, l->text);
}

/*
 * "report|TIME|smtp-in|SID|TEXT" (protocol 0.4 on): the text goes to the
 * other filters as filter-report.  OpenSMTPD's own parser of this line
 * is unreliable, so filters barely use it: a line we cannot read (l is
 * NULL) is logged and dropped, not fatal.
 */
static void
x_report(struct xfilter *x, const struct exec_line *l)
{
	struct xsession	*s;

	if (l == NULL || (s = xsession_find(x, l->sid)) == NULL ||
	    s->epoch != x->epoch) {
		log_debug("filter %s: report line ignored", x->f->name);
		return;
	}
	log_info("%016" PRIx64 " filter %s report: %s", l->sid, x->f->name,
	    l->text);
	engine_report_all(s->fs, x->f, l->text);
}

/* One line (filter_exec_proto.c parses it); -1 if it breaks the protocol. */
static int
x_line(struct xfilter *x, char *line)
{
	struct exec_line	 l;
	char			 err[128];
	int			 r;

	r = exec_parse_line(line, &l, err, sizeof(err));
	if (l.kind == EXEC_LINE_REGISTER || l.kind == EXEC_LINE_READY) {
		if (x->registered) {
			log_debug("filter %s: registration after "
			    "register|ready ignored", x->f->name);
			return 0;
		}
		if (r == -1)
			return -1;
		x_register(x, &l);
		return 0;
	}
	if (!x->registered)
		return -1;
	switch (l.kind) {
	case EXEC_LINE_RESULT:
		return r == -1 ? -1 : x_result(x, &l);
	case EXEC_LINE_DATALINE:
		if (r == -1)
			return -1;
		x_dataline(x, &l);
		return 0;
	case EXEC_LINE_REPORT:
		x_report(x, r == -1 ? NULL : &l);
		return 0;
	default:
		return -1;
	}
}

static void
x_input(struct xfilter *x)
{
	struct io	*io = x->io;
	uint64_t	 epoch = x->epoch;
	char		*line, *copy;
	size_t		 len;

	while (x->io == io && x->epoch == epoch &&
	    (line = evbuffer_readln(io->in, &len, EVBUFFER_EOL_LF)) != NULL) {
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len > LINE_MAX_LEN || strlen(line) != len) {
			free(line);
			x_lost(x, "line too long or with a NUL", NULL);
			return;
		}
		copy = xstrdup(line);
		if (x_line(x, line) == -1) {
			x_lost(x, "protocol error", copy);
			free(copy);
			free(line);
			return;
		}
		free(copy);
		free(line);
	}
	if (x->io == io && x->epoch == epoch &&
	    evbuffer_get_length(io->in) > LINE_MAX_LEN)
		x_lost(x, "line too long", NULL);
}

static void
x_io(struct io *io, enum io_event ev, void *arg)
{
	struct xfilter	*x = arg;
	char		 why[192];

	(void)io;
	switch (ev) {
	case IO_DATAIN:
		x_input(x);
		break;
	case IO_LOWAT:
		if (x->backlogged) {
			x->backlogged = 0;
			filter_drained(x->f);
		}
		break;
	case IO_DISCONNECTED:
		x_lost(x, "its process closed its end (died?)", NULL);
		break;
	case IO_ERROR:
		snprintf(why, sizeof(why), "%s", io_error(io));
		x_lost(x, why, NULL);
		break;
	default:
		break;
	}
}

/*
 * What the engine asks of the filter.
 */
static void
exec_session_open(struct filter *f, struct fsession *fs)
{
	struct xfilter	*x = f->impl;
	struct xsession	*s;

	s = xcalloc(1, sizeof(*s));
	s->fs = fs;
	/* A session the process cannot see from its start fails. */
	s->epoch = x->io != NULL ? x->epoch : 0;
	LIST_INSERT_HEAD(bucket(x, fs->id), s, entry);
}

static void
exec_session_close(struct filter *f, struct fsession *fs)
{
	struct xfilter	*x = f->impl;
	struct xsession	*s;
	char		 ts[32];

	if ((s = xsession_find(x, fs->id)) == NULL)
		return;
	/* Filters free what they hold for a session at link-disconnect. */
	if (x->io != NULL && s->epoch == x->epoch && !s->disconnected &&
	    (f->events & (1U << EVENT_LINK_DISCONNECT))) {
		timestamp(ts, sizeof(ts));
		io_printf(x->io, "report|%s|%s|smtp-in|link-disconnect|"
		    "%016" PRIx64 "\n", x->version, ts, fs->id);
	}
	LIST_REMOVE(s, entry);
	free(s);
}

/* 0.7's "result|username" was "username|result" before. */
static void
auth_06(const char *params, char *buf, size_t size)
{
	size_t	 n = strcspn(params, "|");

	if (params[n] == '\0')
		snprintf(buf, size, "%s", params);
	else
		snprintf(buf, size, "%s|%.*s", params + n + 1, (int)n, params);
}

static void
exec_report(struct filter *f, struct fsession *fs, enum filter_event ev,
    const char *params)
{
	struct xfilter	*x = f->impl;
	struct xsession	*s;
	char		 ts[32], buf[1024];

	if (x->io == NULL || (s = xsession_find(x, fs->id)) == NULL ||
	    s->epoch != x->epoch || s->disconnected)
		return;
	if (ev == EVENT_LINK_AUTH && strcmp(x->version, "0.6") == 0) {
		auth_06(params, buf, sizeof(buf));
		params = buf;
	}
	if (ev == EVENT_LINK_DISCONNECT)
		s->disconnected = 1;
	timestamp(ts, sizeof(ts));
	if (ev == EVENT_LINK_DISCONNECT || ev == EVENT_TIMEOUT)
		io_printf(x->io, "report|%s|%s|smtp-in|%s|%016" PRIx64 "\n",
		    x->version, ts, filter_event_name(ev), fs->id);
	else
		io_printf(x->io, "report|%s|%s|smtp-in|%s|%016" PRIx64
		    "|%s\n", x->version, ts, filter_event_name(ev), fs->id,
		    params);
}

static void
exec_query(struct filter *f, struct fsession *fs, enum filter_phase phase,
    const char *param, uint64_t token)
{
	struct xfilter	*x = f->impl;
	struct xsession	*s;
	char		 ts[32];

	if ((s = xsession_find(x, fs->id)) == NULL || x->io == NULL ||
	    s->epoch != x->epoch) {
		filter_failure(f, fs, x->io == NULL ? "the filter has no "
		    "process" : "the session began before the filter's "
		    "process");
		return;
	}
	s->phase = phase;
	s->token = token;
	timestamp(ts, sizeof(ts));
	io_printf(x->io, "filter|%s|%s|smtp-in|%s|%016" PRIx64 "|%016" PRIx64
	    "|%s\n", x->version, ts, filter_phase_name(phase), fs->id, token,
	    param);
}

static void
exec_data_line(struct filter *f, struct fsession *fs, const char *line,
    uint64_t token)
{
	struct xfilter	*x = f->impl;
	struct xsession	*s;
	char		 ts[32];

	if ((s = xsession_find(x, fs->id)) == NULL || x->io == NULL ||
	    s->epoch != x->epoch) {
		filter_failure(f, fs, x->io == NULL ? "the filter has no "
		    "process" : "the session began before the filter's "
		    "process");
		return;
	}
	s->phase = PHASE_DATA_LINE;
	timestamp(ts, sizeof(ts));
	io_printf(x->io, "filter|%s|%s|smtp-in|data-line|%016" PRIx64
	    "|%016" PRIx64 "|%s\n", x->version, ts, fs->id, token, line);
}

static size_t
exec_backlog(struct filter *f)
{
	struct xfilter	*x = f->impl;
	size_t		 n;

	if (x == NULL || x->io == NULL)
		return 0;
	if ((n = io_queued(x->io)) > BACKLOG_NOTE)
		x->backlogged = 1;
	return n;
}

const struct filter_ops filter_exec_ops = {
	.start = exec_start,
	.session_open = exec_session_open,
	.session_close = exec_session_close,
	.report = exec_report,
	.query = exec_query,
	.data_line = exec_data_line,
	.stop = exec_stop,
	.backlog = exec_backlog,
};
