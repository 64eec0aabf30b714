/*
 * The scheduler, in the queue process: which envelope is tried when.
 * Every queued envelope has an entry here; it is handed to the delivery
 * process when due, with the message file, and the result decides: done
 * (the envelope goes), temporary failure (retried later, until the queue
 * ttl, then bounced), permanent failure (bounced).
 */
#include <sys/types.h>

#include <event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mtad.h"
#include "xmalloc.h"

struct sched_entry {
	TAILQ_ENTRY(sched_entry) entry;
	uint64_t		 evpid;
	int64_t			 next;		/* when to try */
	int			 inflight;
};

TAILQ_HEAD(sched_list, sched_entry);
static struct sched_list	 waiting = TAILQ_HEAD_INITIALIZER(waiting);
static struct sched_list	 inflight = TAILQ_HEAD_INITIALIZER(inflight);
static size_t			 ninflight;
static struct event		 ev_timer;
static int			 started;
static int			 paused;
static size_t			 stat_delivered, stat_tempfail, stat_permfail;

static void	 scheduler_run(int, short, void *);

/* Waiting time before the retry after n failures. */
static int64_t
retry_delay(uint32_t retries)
{
	static const int64_t	 steps[] = { 60, 300, 900, 1800 };

	if (retries == 0)
		return 0;
	if (retries <= sizeof(steps) / sizeof(steps[0]))
		return steps[retries - 1];
	return 3600;
}

static void
scheduler_arm(void)
{
	struct sched_entry	*se;
	struct timeval		 tv = { 0, 0 };
	int64_t			 now = (int64_t)time(NULL);

	if (!started)
		return;
	evtimer_del(&ev_timer);
	if (paused)
		return;
	if ((se = TAILQ_FIRST(&waiting)) == NULL ||
	    ninflight >= DEF_MAX_DELIVERIES)
		return;
	if (se->next > now)
		tv.tv_sec = (time_t)(se->next - now);
	evtimer_add(&ev_timer, &tv);
}

/* Keep the waiting list ordered by due time. */
void
scheduler_add(uint64_t evpid, int64_t next)
{
	struct sched_entry	*se, *at;

	se = xcalloc(1, sizeof(*se));
	se->evpid = evpid;
	se->next = next;
	TAILQ_FOREACH_REVERSE(at, &waiting, sched_list, entry)
		if (at->next <= next)
			break;
	if (at == NULL)
		TAILQ_INSERT_HEAD(&waiting, se, entry);
	else
		TAILQ_INSERT_AFTER(&waiting, at, se, entry);
	scheduler_arm();
}

static int
schedule_loaded(uint64_t evpid, void *arg)
{
	struct envelope	 e;
	const struct queue_backend *backend = arg;

	if (backend->envelope_get(evpid, &e) == -1)
		return 0;	/* logged; left for the administrator */
	/* A (re)start tries everything at once: the operator may have
	 * just fixed what made deliveries fail. */
	scheduler_add(evpid, 0);
	return 0;
}

void
scheduler_start(void)
{
	evtimer_set(&ev_timer, scheduler_run, NULL);
	started = 1;
	queue_fs_backend.walk(schedule_loaded, (void *)&queue_fs_backend);
	scheduler_arm();
}

static void
scheduler_dispatch(struct sched_entry *se)
{
	const struct queue_backend *backend = &queue_fs_backend;
	struct ipc_chan		*delivery = proc_peer("delivery");
	struct envelope		 e;
	char			 buf[8192];
	int			 fd;

	if (backend->envelope_get(se->evpid, &e) == -1 ||
	    (fd = backend->message_open(envelope_msgid(se->evpid))) == -1) {
		/* Unreadable: keep it, try again in an hour. */
		se->next = (int64_t)time(NULL) + 3600;
		scheduler_add(se->evpid, se->next);
		free(se);
		return;
	}
	envelope_dump(&e, buf, sizeof(buf));
	ipc_begin(delivery, MTAD_MSG_DELIVER, fd);
	ipc_add_u64(delivery, se->evpid);
	ipc_add_string(delivery, buf);
	ipc_end(delivery);
	se->inflight = 1;
	TAILQ_INSERT_TAIL(&inflight, se, entry);
	ninflight++;
}

static void
scheduler_run(int fd, short event, void *arg)
{
	struct sched_entry	*se;
	int64_t			 now = (int64_t)time(NULL);

	(void)fd;
	(void)event;
	(void)arg;
	while ((se = TAILQ_FIRST(&waiting)) != NULL && se->next <= now &&
	    ninflight < DEF_MAX_DELIVERIES) {
		TAILQ_REMOVE(&waiting, se, entry);
		scheduler_dispatch(se);
	}
	scheduler_arm();
}

/* Control characters never reach an envelope line. */
static void
set_error(struct envelope *e, const char *error)
{
	size_t	 i;

	snprintf(e->errorline, sizeof(e->errorline), "%s", error);
	for (i = 0; e->errorline[i]; i++)
		if ((unsigned char)e->errorline[i] < 32)
			e->errorline[i] = ' ';
}

void
scheduler_delivered(uint64_t evpid, enum delivery_result result,
    const char *error)
{
	const struct queue_backend *backend = &queue_fs_backend;
	struct sched_entry	*se;
	struct envelope		 e;
	int64_t			 now = (int64_t)time(NULL);

	TAILQ_FOREACH(se, &inflight, entry)
		if (se->evpid == evpid)
			break;
	if (se == NULL)
		fatalx("delivery result for %016" PRIx64 " not in flight",
		    evpid);
	TAILQ_REMOVE(&inflight, se, entry);
	ninflight--;
	free(se);

	if (backend->envelope_get(evpid, &e) == -1) {
		scheduler_arm();
		return;
	}
	switch (result) {
	case DELIVERY_OK:
		stat_delivered++;
		log_info("evpid=%016" PRIx64 " rcpt=<%s> dest=%s delivered",
		    evpid, e.rcpt, e.dest);
		/*
		 * An envelope that cannot be removed is tried again later:
		 * maildir finds its earlier delivery; the other methods
		 * may deliver twice (SPEC.md: at least once).
		 */
		if (backend->envelope_delete(evpid) == -1)
			scheduler_add(evpid, now + retry_delay(1));
		break;
	case DELIVERY_TEMPFAIL:
		stat_tempfail++;
		e.retries++;
		e.lasttry = now;
		set_error(&e, error);
		if (now - e.created >= mtad_conf->queue_ttl) {
			log_info("evpid=%016" PRIx64 " rcpt=<%s> expired: %s",
			    evpid, e.rcpt, e.errorline);
			bounce_create(&e, e.errorline);
			backend->envelope_delete(evpid);
			break;
		}
		log_info("evpid=%016" PRIx64 " rcpt=<%s> tempfail retries=%u: %s",
		    evpid, e.rcpt, e.retries, e.errorline);
		backend->envelope_update(&e);
		scheduler_add(evpid, now + retry_delay(e.retries));
		break;
	case DELIVERY_PERMFAIL:
		stat_permfail++;
		set_error(&e, error);
		log_info("evpid=%016" PRIx64 " rcpt=<%s> permfail: %s", evpid,
		    e.rcpt, e.errorline);
		bounce_create(&e, e.errorline);
		backend->envelope_delete(evpid);
		break;
	}
	scheduler_arm();
}

/*
 * Control requests: show queue, show envelope ID, schedule ID|all,
 * remove ID|all, pause|resume mda, show stats.  An ID is an envelope id
 * (16 hex digits) or a message id (8: all its envelopes).
 */
static int
id_matches(const char *arg, uint64_t evpid)
{
	char	*end;
	unsigned long long v;

	if (strcmp(arg, "all") == 0)
		return 1;
	v = strtoull(arg, &end, 16);
	if (*arg == '\0' || *end != '\0')
		return 0;
	if (strlen(arg) <= 8)
		return envelope_msgid(evpid) == (uint32_t)v;
	return evpid == v;
}

static int
valid_id(const char *arg)
{
	size_t	 n = strspn(arg, "0123456789abcdefABCDEF");

	return strcmp(arg, "all") == 0 || (arg[n] == '\0' && (n == 8 ||
	    n == 16));
}

struct show_ctx {
	struct ipc_chan	*chan;
	uint64_t	 client;
	size_t		 n;
};

static int
show_one(uint64_t evpid, void *arg)
{
	struct show_ctx		*ctx = arg;
	struct sched_entry	*se;
	struct envelope		 e;
	const char		*state = "waiting";

	if (queue_fs_backend.envelope_get(evpid, &e) == -1)
		return 0;
	TAILQ_FOREACH(se, &inflight, entry)
		if (se->evpid == evpid)
			state = "delivering";
	ctl_line(ctx->chan, ctx->client, "%016" PRIx64 " %s retries=%u "
	    "from=<%s> rcpt=<%s> dest=%s action=%s%s%s", evpid, state,
	    e.retries, e.sender, e.rcpt, e.dest, e.action,
	    e.errorline[0] ? " error=" : "", e.errorline);
	ctx->n++;
	return 0;
}

static void
show_envelope(struct ipc_chan *chan, uint64_t client, const char *arg)
{
	struct envelope	 e;
	char		 buf[8192], *line, *save;
	uint64_t	 evpid;

	evpid = strtoull(arg, NULL, 16);
	if (strlen(arg) != 16 || !valid_id(arg) ||
	    queue_fs_backend.envelope_get(evpid, &e) == -1) {
		ctl_end(chan, client, 1, "no envelope %s", arg);
		return;
	}
	envelope_dump(&e, buf, sizeof(buf));
	for (line = strtok_r(buf, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save))
		ctl_line(chan, client, "%s", line);
	ctl_end(chan, client, 0, "%s", "");
}

void
scheduler_ctl(struct ipc_chan *chan, uint64_t client, uint32_t cmd,
    const char *arg)
{
	struct sched_entry	*se, *next;
	struct show_ctx		 ctx = { chan, client, 0 };
	size_t			 n = 0, busy = 0;

	switch (cmd) {
	case CTL_SHOW_QUEUE:
		queue_fs_backend.walk(show_one, &ctx);
		ctl_end(chan, client, 0, "%zu envelope%s", ctx.n,
		    ctx.n == 1 ? "" : "s");
		return;
	case CTL_SHOW_ENVELOPE:
		show_envelope(chan, client, arg);
		return;
	case CTL_SHOW_STATS:
		TAILQ_FOREACH(se, &waiting, entry)
			n++;
		ctl_line(chan, client, "queue.waiting=%zu", n);
		ctl_line(chan, client, "queue.delivering=%zu", ninflight);
		ctl_line(chan, client, "delivery.ok=%zu", stat_delivered);
		ctl_line(chan, client, "delivery.tempfail=%zu", stat_tempfail);
		ctl_line(chan, client, "delivery.permfail=%zu", stat_permfail);
		ctl_line(chan, client, "delivery.paused=%s", paused ? "yes" :
		    "no");
		ctl_end(chan, client, 0, "%s", "");
		return;
	case CTL_PAUSE_MDA:
	case CTL_RESUME_MDA:
		paused = cmd == CTL_PAUSE_MDA;
		log_info("local deliveries %s", paused ? "paused" : "resumed");
		scheduler_arm();
		ctl_end(chan, client, 0, "local deliveries %s", paused ?
		    "paused" : "resumed");
		return;
	}
	if (!valid_id(arg)) {
		ctl_end(chan, client, 1, "expected an id (8 or 16 hex digits) "
		    "or all, got \"%s\"", arg);
		return;
	}
	TAILQ_FOREACH(se, &inflight, entry)
		if (id_matches(arg, se->evpid))
			busy++;
	for (se = TAILQ_FIRST(&waiting); se != NULL; se = next) {
		next = TAILQ_NEXT(se, entry);
		if (!id_matches(arg, se->evpid))
			continue;
		TAILQ_REMOVE(&waiting, se, entry);
		n++;
		if (cmd == CTL_SCHEDULE) {
			se->next = 0;
			TAILQ_INSERT_HEAD(&waiting, se, entry);
			continue;
		}
		log_info("evpid=%016" PRIx64 " removed by mtactl", se->evpid);
		queue_fs_backend.envelope_delete(se->evpid);
		free(se);
	}
	scheduler_arm();
	ctl_end(chan, client, n == 0 && busy == 0, "%zu envelope%s %s%s", n,
	    n == 1 ? "" : "s", cmd == CTL_SCHEDULE ? "scheduled" : "removed",
	    busy ? " (some are being delivered now)" : "");
}
