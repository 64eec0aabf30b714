/*
 * The chain runner: how the filters of a session's chain are asked, how
 * their decisions compose, how the message's lines flow through the
 * data-line filters, and what a failing filter costs the session
 * (filter.h has the rules).
 *
 * One query at a time per session (the frontend waits for the decision
 * before it goes on).  A query walks the chain: each filter that
 * registered the phase is asked, with a timer; its answer (which may
 * come at once, from inside the call) moves the walk on.  Answers carry
 * the token they were asked with, so a late one is recognised and
 * dropped.
 *
 * Data lines go through a pipeline: the output of the first data-line
 * filter is the input of the second, and so on; what the last one
 * gives goes back to the frontend, and its "." ends the message.
 */
#include <sys/types.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "filter.h"
#include "log.h"
#include "unique_id.h"
#include "xmalloc.h"

struct query {
	enum filter_phase	 phase;
	char			*param;		/* rewritten as it goes */
	int			 rewritten;
	int			 junk;
	size_t			 next;		/* chain position to ask */
	struct filter		*asking;	/* NULL: not waiting */
	uint64_t		 token;
	struct timespec		 asked_at;
	struct event		 ev_timeout;
	int			 in_call;	/* inside ops->query */
	int			 answered;	/* ... and it answered */
	struct decision		 answer;
	int			 held;		/* commit: the "." is not out */
};

struct stage {
	struct filter		*filter;
	uint64_t		 token;
	int			 done;		/* its "." came out */
	int			 dot_in;	/* it was given the "." */
	struct event		 ev_timeout;	/* from our "." to its "." */
};

struct pipeline {
	struct stage		*stages;
	size_t			 nstages;
	int			 failed;
	int			 batching;	/* a batch from the frontend */
};

static void	 query_walk(struct fsession *);
static void	 query_finish(struct fsession *, const struct decision *);
static void	 query_timeout(int, short, void *);
static void	 stage_timeout(int, short, void *);
static void	 stage_feed(struct fsession *, size_t, const char *);
static void	 commit_begin(struct fsession *);
static void	 query_free(struct fsession *);
static void	 held_commit_drop(struct fsession *);
static void	 pipeline_fail(struct fsession *, const struct decision *);


static double
elapsed(const struct timespec *since)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void
count_latency(struct filter *f, double seconds)
{
	static const double	 bounds[] = { 0.0001, 0.0005, 0.001, 0.005,
	    0.01, 0.05, 0.1, 0.5, 1, 5 };
	size_t			 i;

	for (i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++)
		if (seconds <= bounds[i])
			break;
	f->stats.latency[i]++;
	f->stats.latency_sum += seconds;
}

static void
arm(struct event *ev, int ms)
{
	struct timeval	 tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(ev, &tv);
}

/*
 * What a failing filter gives the session, by its on-failure policy.
 * Returns 1 with d set when the session gets a reply, 0 to go on.
 */
static int
failure_decision(struct filter *f, enum filter_phase phase,
    struct decision *d)
{
	memset(d, 0, sizeof(*d));
	switch (f->on_failure) {
	case ON_FAILURE_PROCEED:
		return 0;
	case ON_FAILURE_REJECT:
		d->kind = phase == PHASE_CONNECT ? DECISION_DISCONNECT :
		    DECISION_REJECT;
		snprintf(d->text, sizeof(d->text), "%s", phase ==
		    PHASE_CONNECT ? "554 5.7.1 Service refused by policy" :
		    "550 5.7.1 Refused by policy");
		return 1;
	case ON_FAILURE_TEMPFAIL:
	default:
		d->kind = phase == PHASE_CONNECT ? DECISION_DISCONNECT :
		    DECISION_REJECT;
		snprintf(d->text, sizeof(d->text), "%s", phase ==
		    PHASE_CONNECT ? "421 4.3.0 Temporary failure, try again "
		    "later" : "451 4.3.0 Temporary failure, try again later");
		return 1;
	}
}

/*
 * Start asking the chain about a phase.  The commit question comes with
 * the message's "." (one round trip less a message): it waits until the
 * "." is out of the data-line filters, and goes with the message if the
 * message fails in them (the frontend then answers the client itself).
 */
void
filter_query_start(struct fsession *fs, enum filter_phase phase,
    const char *param)
{
	struct query	*q;

	if (fs->query != NULL)
		fatalx("%016" PRIx64 " a query while one is running", fs->id);
	if (phase == PHASE_COMMIT && fs->pipeline != NULL &&
	    fs->pipeline->failed)
		return;
	q = xcalloc(1, sizeof(*q));
	q->phase = phase;
	q->param = xstrdup(param);
	evtimer_set(&q->ev_timeout, query_timeout, fs);
	fs->query = q;
	if (phase == PHASE_COMMIT && fs->pipeline != NULL) {
		q->held = 1;
		return;
	}
	commit_begin(fs);
}

/* The walk starts; at commit, the filters hear of the "." first. */
static void
commit_begin(struct fsession *fs)
{
	fs->query->held = 0;
	if (fs->query->phase == PHASE_COMMIT)
		engine_client_dot(fs);
	if (fs->query != NULL)
		query_walk(fs);
}

/* The message failed in the data-line filters: no commit for it. */
static void
held_commit_drop(struct fsession *fs)
{
	if (fs->query != NULL && fs->query->held)
		query_free(fs);
}

static void
query_free(struct fsession *fs)
{
	struct query	*q = fs->query;

	if (q == NULL)
		return;
	evtimer_del(&q->ev_timeout);
	free(q->param);
	free(q);
	fs->query = NULL;
}

/* Apply one filter's decision; 1 if the walk goes on. */
static int
query_apply(struct fsession *fs, struct filter *f, const struct decision *d)
{
	struct query	*q = fs->query;

	f->stats.decisions[d->kind]++;
	switch (d->kind) {
	case DECISION_PROCEED:
		return 1;
	case DECISION_REWRITE:
		free(q->param);
		q->param = xstrdup(d->text);
		q->rewritten = 1;
		return 1;
	case DECISION_JUNK:
		q->junk = 1;
		fs->junk = 1;
		fs->version++;
		return 1;
	case DECISION_REPORT:
		log_info("%016" PRIx64 " filter %s phase %s report: %s",
		    fs->id, f->name, filter_phase_name(q->phase), d->text);
		engine_report_all(fs, f, d->text);
		return 1;
	case DECISION_BYPASS:
		q->next = fs->chain->nfilters;
		return 1;
	case DECISION_REJECT:
	case DECISION_DISCONNECT:
		log_info("%016" PRIx64 " filter %s phase %s %s: %s", fs->id,
		    f->name, filter_phase_name(q->phase),
		    decision_name(d->kind), d->text);
		query_finish(fs, d);
		return 0;
	}
	return 1;
}

static void
query_walk(struct fsession *fs)
{
	struct query	*q;
	struct filter	*f;
	struct decision	 d;

	while ((q = fs->query) != NULL && q->next < fs->chain->nfilters) {
		f = fs->chain->filters[q->next++];
		if (!(f->phases & (1U << q->phase)) && !((f->broken ||
		    !f->ready) && q->phase == PHASE_CONNECT))
			continue;
		if (f->broken || !f->ready) {
			log_warnx("%016" PRIx64 " filter %s phase %s failed: "
			    "the filter is out of service", fs->id, f->name,
			    filter_phase_name(q->phase));
			f->stats.failures++;
			if (failure_decision(f, q->phase, &d)) {
				query_finish(fs, &d);
				return;
			}
			continue;
		}
		q->asking = f;
		q->token = unique_id();
		q->answered = 0;
		q->in_call = 1;
		clock_gettime(CLOCK_MONOTONIC, &q->asked_at);
		f->stats.calls++;
		arm(&q->ev_timeout, f->timeout_ms);
		f->ops->query(f, fs, q->phase, q->param, q->token);
		if ((q = fs->query) == NULL)
			return;		/* failed inside the call */
		q->in_call = 0;
		if (!q->answered)
			return;		/* it answers later */
		evtimer_del(&q->ev_timeout);
		q->asking = NULL;
		count_latency(f, elapsed(&q->asked_at));
		if (!query_apply(fs, f, &q->answer))
			return;
	}
	if (q == NULL)
		return;
	/* Every filter is done with it: proceed, maybe rewritten. */
	memset(&d, 0, sizeof(d));
	d.kind = q->rewritten ? DECISION_REWRITE : DECISION_PROCEED;
	if (q->rewritten)
		snprintf(d.text, sizeof(d.text), "%s", q->param);
	query_finish(fs, &d);
}

static void
query_finish(struct fsession *fs, const struct decision *d)
{
	struct query	*q = fs->query;
	struct decision	 copy = *d;	/* d may be q->answer */
	int		 junk = q->junk;
	enum filter_phase phase = q->phase;

	query_free(fs);
	engine_send_decision(fs, phase, &copy, junk);
}

void
filter_answer(struct fsession *fs, uint64_t token, const struct decision *d)
{
	struct query	*q = fs->query;
	struct filter	*f;

	if (q == NULL || q->asking == NULL || q->token != token)
		return;		/* late, or for a session gone */
	if (q->in_call) {
		q->answer = *d;
		q->answered = 1;
		return;
	}
	f = q->asking;
	q->asking = NULL;
	evtimer_del(&q->ev_timeout);
	count_latency(f, elapsed(&q->asked_at));
	if (query_apply(fs, f, d))
		query_walk(fs);
}

static void
query_timeout(int fd, short event, void *arg)
{
	struct fsession	*fs = arg;
	struct filter	*f;

	(void)fd;
	(void)event;
	if (fs->query == NULL || (f = fs->query->asking) == NULL)
		return;
	f->stats.timeouts++;
	filter_failure(f, fs, "no answer in time");
}

/*
 * A filter failed for a session (crash, garbage, timeout, script
 * error): the query or the message it was working on gets the policy.
 */
void
filter_failure(struct filter *f, struct fsession *fs, const char *why)
{
	struct query	*q = fs->query;
	struct pipeline	*p = fs->pipeline;
	struct decision	 d;
	size_t		 i;

	if (q != NULL && q->asking == f) {
		log_warnx("%016" PRIx64 " filter %s phase %s failed: %s",
		    fs->id, f->name, filter_phase_name(q->phase), why);
		f->stats.failures++;
		evtimer_del(&q->ev_timeout);
		q->asking = NULL;
		if (q->in_call) {
			/* Answer as the policy says, from inside the call. */
			q->in_call = 0;
		}
		if (failure_decision(f, q->phase, &d))
			query_finish(fs, &d);
		else
			query_walk(fs);
		return;
	}
	if (p == NULL || p->failed)
		return;
	for (i = 0; i < p->nstages; i++)
		if (p->stages[i].filter == f && !p->stages[i].done)
			break;
	if (i == p->nstages)
		return;
	log_warnx("%016" PRIx64 " filter %s phase data-line failed: %s",
	    fs->id, f->name, why);
	f->stats.failures++;
	if (!failure_decision(f, PHASE_DATA_LINE, &d)) {
		/*
		 * "proceed" cannot give back lines the filter swallowed:
		 * the message is refused for now all the same.
		 */
		d.kind = DECISION_REJECT;
		snprintf(d.text, sizeof(d.text), "451 4.3.0 Temporary "
		    "failure, try again later");
	}
	pipeline_fail(fs, &d);
}

static void
pipeline_fail(struct fsession *fs, const struct decision *d)
{
	fs->pipeline->failed = 1;
	held_commit_drop(fs);
	engine_send_decision(fs, PHASE_DATA_LINE, d, 0);
}

/*
 * Data lines.  The pipeline is made at the first line of a message and
 * goes when the last "." came out (or the message failed).
 */
static void
pipeline_free(struct fsession *fs)
{
	struct pipeline	*p = fs->pipeline;
	size_t		 i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nstages; i++)
		evtimer_del(&p->stages[i].ev_timeout);
	free(p->stages);
	free(p);
	fs->pipeline = NULL;
}

static void
pipeline_new(struct fsession *fs)
{
	struct pipeline	*p;
	struct filter	*f;
	size_t		 i;

	p = xcalloc(1, sizeof(*p));
	p->stages = xcalloc(fs->chain->nfilters, sizeof(*p->stages));
	for (i = 0; i < fs->chain->nfilters; i++) {
		f = fs->chain->filters[i];
		if (!(f->phases & (1U << PHASE_DATA_LINE)) && !f->broken)
			continue;
		p->stages[p->nstages].filter = f;
		p->stages[p->nstages].token = unique_id();
		evtimer_set(&p->stages[p->nstages].ev_timeout, stage_timeout,
		    fs);
		p->nstages++;
	}
	fs->pipeline = p;
}

/* The message's pipeline for lines of a batch; NULL when it failed. */
static struct pipeline *
pipeline_batch(struct fsession *fs)
{
	if (fs->pipeline == NULL)
		pipeline_new(fs);
	if (fs->pipeline->failed)
		return NULL;	/* the frontend was told; it stops soon */
	fs->pipeline->batching = 1;
	return fs->pipeline;
}

/* A line from the frontend, in a batch that filter_data_flush() ends. */
void
filter_data_start_line(struct fsession *fs, const char *line)
{
	if (pipeline_batch(fs) != NULL)
		stage_feed(fs, 0, line);
}

/*
 * Lines from the frontend by the block (n of them joined by LF, none of
 * them "."), in a batch that filter_data_flush() ends: 1 when the first
 * stage took them at once, 0 when they must come line by line.
 */
int
filter_data_start_block(struct fsession *fs, const char *lines, size_t len,
    uint32_t n)
{
	struct pipeline	*p;
	struct filter	*f;

	if ((p = pipeline_batch(fs)) == NULL)
		return 1;
	if (p->nstages == 0)
		return 0;
	f = p->stages[0].filter;
	if (f->broken || f->ops->data_block == NULL)
		return 0;
	f->ops->data_block(f, fs, lines, len, n, p->stages[0].token);
	return 1;
}

/*
 * The end of a batch: the stages that kept its lines work them, in the
 * chain's order, so that what one gives the next is kept for it too
 * and a script is called once for the batch, not once a line.
 */
void
filter_data_flush(struct fsession *fs)
{
	struct pipeline	*p;
	struct filter	*f;
	size_t		 i;

	for (i = 0; (p = fs->pipeline) != NULL && i < p->nstages; i++) {
		f = p->stages[i].filter;
		if (p->failed)
			break;
		if (f->ops->data_flush != NULL && !f->broken &&
		    !p->stages[i].done)
			f->ops->data_flush(f, fs, p->stages[i].token);
	}
	if ((p = fs->pipeline) != NULL)
		p->batching = 0;
}

int
filter_data_batching(struct fsession *fs)
{
	return fs->pipeline != NULL && fs->pipeline->batching;
}

static void
stage_feed(struct fsession *fs, size_t n, const char *line)
{
	struct pipeline	*p = fs->pipeline;
	struct stage	*st;
	struct decision	 d;

	if (n == p->nstages) {
		engine_send_line(fs, line);
		if (strcmp(line, ".") == 0) {
			pipeline_free(fs);
			if (fs->query != NULL && fs->query->held)
				commit_begin(fs);
		}
		return;
	}
	st = &p->stages[n];
	if (st->filter->broken) {
		if (!failure_decision(st->filter, PHASE_DATA_LINE, &d)) {
			/* proceed: the filter out of service is skipped */
			if (strcmp(line, ".") == 0)
				st->filter->stats.failures++;
			stage_feed(fs, n + 1, line);	/* may free p */
			return;
		}
		st->filter->stats.failures++;
		pipeline_fail(fs, &d);
		return;
	}
	if (strcmp(line, ".") == 0) {
		st->dot_in = 1;
		arm(&st->ev_timeout, st->filter->timeout_ms);
		st->filter->stats.calls++;
	}
	st->filter->ops->data_line(st->filter, fs, line, st->token);
}

/* A line out of a data-line filter. */
void
filter_line(struct fsession *fs, uint64_t token, const char *line)
{
	struct pipeline	*p = fs->pipeline;
	size_t		 i;

	if (p == NULL || p->failed)
		return;
	for (i = 0; i < p->nstages; i++)
		if (p->stages[i].token == token)
			break;
	if (i == p->nstages || p->stages[i].done)
		return;
	if (strlen(line) > FILTER_LINE_MAX) {
		filter_failure(p->stages[i].filter, fs, "it made a line over "
		    "16 KB");
		return;
	}
	if (strcmp(line, ".") == 0) {
		if (!p->stages[i].dot_in) {
			/* the rest of the message would go as commands */
			filter_failure(p->stages[i].filter, fs, "it ended the "
			    "message before the message ended");
			return;
		}
		p->stages[i].done = 1;
		evtimer_del(&p->stages[i].ev_timeout);
		p->stages[i].filter->stats.decisions[DECISION_PROCEED]++;
	}
	stage_feed(fs, i + 1, line);
}

/*
 * Lines out of a data-line filter by the block (text: n whole lines,
 * each ended by LF, dot-stuffed, none of them ".", the longest of
 * longest bytes): straight to the output when no filter comes after.
 * 0 when they must go one by one.
 */
int
filter_lines(struct fsession *fs, uint64_t token, const char *text,
    size_t len, uint32_t n, size_t longest)
{
	struct pipeline	*p = fs->pipeline;
	size_t		 i;

	if (p == NULL || p->failed)
		return 1;
	for (i = 0; i < p->nstages; i++)
		if (p->stages[i].token == token)
			break;
	if (i == p->nstages || p->stages[i].done)
		return 1;
	if (i + 1 != p->nstages)
		return 0;
	if (longest > FILTER_LINE_MAX) {
		filter_failure(p->stages[i].filter, fs, "it made a line over "
		    "16 KB");
		return 1;
	}
	if (n > 0)
		engine_send_lines(fs, text, len, n);
	return 1;
}

static void
stage_timeout(int fd, short event, void *arg)
{
	struct fsession	*fs = arg;
	struct pipeline	*p = fs->pipeline;
	size_t		 i;

	(void)fd;
	(void)event;
	if (p == NULL)
		return;
	for (i = 0; i < p->nstages; i++)
		if (!p->stages[i].done &&
		    !evtimer_pending(&p->stages[i].ev_timeout, NULL)) {
			p->stages[i].filter->stats.timeouts++;
			filter_failure(p->stages[i].filter, fs,
			    "the message did not come back in time");
			return;
		}
}

/* The session is going: forget what runs for it. */
void
filter_session_end(struct fsession *fs)
{
	query_free(fs);
	pipeline_free(fs);
}

/* The frontend gave up the message (client gone, downstream refused). */
void
filter_data_abort(struct fsession *fs)
{
	held_commit_drop(fs);
	pipeline_free(fs);
}
