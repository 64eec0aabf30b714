/*
 * The queue process: the only one that touches the spool.  It creates a
 * message file for the smtp process (which writes the content through the
 * descriptor it receives), collects the envelopes, and commits: 250 is
 * sent to the client only after the commit reported success.
 */
#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mtad.h"
#include "xmalloc.h"

/* A message being received. */
struct incoming {
	TAILQ_ENTRY(incoming)	 entry;
	uint32_t		 msgid;
	struct envelope		*envs;
	size_t			 nenvs;
	int			 failed;
};

static TAILQ_HEAD(, incoming)	 incomings = TAILQ_HEAD_INITIALIZER(incomings);
static const struct queue_backend *backend = &queue_fs_backend;

static struct incoming *
incoming_find(uint32_t msgid)
{
	struct incoming	*in;

	TAILQ_FOREACH(in, &incomings, entry)
		if (in->msgid == msgid)
			return in;
	return NULL;
}

static void
incoming_free(struct incoming *in)
{
	TAILQ_REMOVE(&incomings, in, entry);
	free(in->envs);
	free(in);
}

void
queue_init(struct ipc_chan *parent)
{
	(void)parent;
}

static int
count_envelope(uint64_t evpid, void *arg)
{
	(void)evpid;
	(*(size_t *)arg)++;
	return 0;
}

void
queue_configured(struct ipc_chan *parent)
{
	size_t	 n = 0;

	(void)parent;
	/* Chrooted, the queue directory is "/" already. */
	if (!proc_chrooted && chdir(mtad_conf->queue_path) == -1)
		fatal("chdir %s", mtad_conf->queue_path);
	if (backend->init() == -1)
		fatalx("cannot use the queue in %s", mtad_conf->queue_path);
	backend->walk(count_envelope, &n);
	log_info("queue %s: %zu envelope%s waiting", mtad_conf->queue_path, n,
	    n == 1 ? "" : "s");
	scheduler_start();
}

static void
queue_create(struct ipc_chan *chan, uint64_t req)
{
	struct incoming	*in;
	uint32_t	 msgid;
	int		 fd = -1;

	if (backend->message_create(&msgid) == 0 &&
	    (fd = backend->message_fd(msgid)) == -1)
		backend->message_delete(msgid);
	ipc_begin(chan, MTAD_MSG_MESSAGE_CREATED, fd);
	ipc_add_u64(chan, req);
	ipc_add_u32(chan, fd == -1 ? 0 : msgid);
	ipc_end(chan);
	if (fd == -1)
		return;
	in = xcalloc(1, sizeof(*in));
	in->msgid = msgid;
	TAILQ_INSERT_TAIL(&incomings, in, entry);
}

static void
queue_envelope(uint32_t msgid, const char *text)
{
	struct incoming	*in;
	struct envelope	 e;

	if ((in = incoming_find(msgid)) == NULL)
		fatalx("envelope for unknown message %08" PRIx32, msgid);
	if (envelope_load(&e, text, strlen(text)) == -1 ||
	    envelope_msgid(e.id) != msgid) {
		log_warnx("msgid=%08" PRIx32 " invalid envelope", msgid);
		in->failed = 1;
		return;
	}
	in->envs = xreallocarray(in->envs, in->nenvs + 1, sizeof(*in->envs));
	in->envs[in->nenvs++] = e;
}

/*
 * Commits wait here for the end of the current turn of the event loop:
 * all that arrived together are written with one pair of syncs (the
 * group commit, see queue_fs.c).
 */
struct commit {
	TAILQ_ENTRY(commit)	 entry;
	struct ipc_chan		*chan;
	uint64_t		 req;
	struct incoming		*in;
	int			 result;	/* 0, -1, QUEUE_COMMIT_UNSURE */
};

static TAILQ_HEAD(, commit)	 commits = TAILQ_HEAD_INITIALIZER(commits);
static struct event		 ev_commit;
static int			 ev_commit_set;

static void
queue_commit_batch(int fd, short event, void *arg)
{
	struct commit	*c;
	size_t		 i, n = 0;
	int		 synced;

	(void)fd;
	(void)event;
	(void)arg;
	TAILQ_FOREACH(c, &commits, entry) {
		c->result = -1;
		if (!c->in->failed && c->in->nenvs > 0 &&
		    backend->message_stage(c->in->msgid, c->in->envs,
		    c->in->nenvs) == 0)
			c->result = 0;
		n++;
	}
	synced = backend->sync() == 0;
	TAILQ_FOREACH(c, &commits, entry)
		if (c->result == 0 && (!synced ||
		    backend->message_publish(c->in->msgid) == -1))
			c->result = -1;
	/*
	 * Without the second sync the renames may not be durable: take the
	 * messages back and refuse them, so that what the client is told
	 * (451) is what happens (nothing delivered).  One that cannot be
	 * taken back stays queued: delivered, maybe twice, never lost.
	 */
	if (backend->sync() == -1)
		TAILQ_FOREACH(c, &commits, entry)
			if (c->result == 0)
				c->result = backend->message_unpublish(
				    c->in->msgid) == 0 ? -1 :
				    QUEUE_COMMIT_UNSURE;

	while ((c = TAILQ_FIRST(&commits)) != NULL) {
		TAILQ_REMOVE(&commits, c, entry);
		if (c->result == -1)
			backend->message_delete(c->in->msgid);
		else {
			log_info("msgid=%08" PRIx32 " queued envelopes=%zu%s",
			    c->in->msgid, c->in->nenvs, c->result == 0 ? "" :
			    " (not confirmed on disk: refused)");
			for (i = 0; i < c->in->nenvs; i++)
				scheduler_add(c->in->envs[i].id, 0);
		}
		ipc_begin(c->chan, MTAD_MSG_MESSAGE_COMMITTED, -1);
		ipc_add_u64(c->chan, c->req);
		ipc_add_u32(c->chan, (uint32_t)(c->result == 0));
		ipc_end(c->chan);
		incoming_free(c->in);
		free(c);
	}
	log_debug("group commit of %zu message%s", n, n == 1 ? "" : "s");
}

static void
queue_commit(struct ipc_chan *chan, uint64_t req, uint32_t msgid)
{
	struct timeval	 now = { 0, 0 };
	struct commit	*c;
	struct incoming	*in;

	if ((in = incoming_find(msgid)) == NULL)
		fatalx("commit of unknown message %08" PRIx32, msgid);
	c = xcalloc(1, sizeof(*c));
	c->chan = chan;
	c->req = req;
	c->in = in;
	TAILQ_INSERT_TAIL(&commits, c, entry);
	if (!ev_commit_set) {
		evtimer_set(&ev_commit, queue_commit_batch, NULL);
		ev_commit_set = 1;
	}
	if (!evtimer_pending(&ev_commit, NULL))
		evtimer_add(&ev_commit, &now);
}

static void
queue_rollback(uint32_t msgid)
{
	struct incoming	*in;

	if ((in = incoming_find(msgid)) == NULL)
		fatalx("rollback of unknown message %08" PRIx32, msgid);
	backend->message_delete(msgid);
	incoming_free(in);
}

int
queue_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	uint64_t	 req, evpid;
	uint32_t	 msgid, result, cmd;
	const char	*text;
	int		 r;

	/* The smtp process's messages come from the smtp process only. */
	if (msg->type >= MTAD_MSG_MESSAGE_CREATE &&
	    msg->type <= MTAD_MSG_MESSAGE_ROLLBACK && strcmp(chan->peer, "smtp"))
		return -1;
	if ((r = table_dispatch(chan, msg)) != 0)
		return r == 1 ? 0 : -1;
	switch (msg->type) {
	case MTAD_MSG_CTL_REQUEST:
		if (strcmp(chan->peer, "control") != 0)
			return -1;
		req = ipc_get_u64(msg);
		cmd = ipc_get_u32(msg);
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		scheduler_ctl(chan, req, cmd, text);
		return 0;
	case MTAD_MSG_MESSAGE_CREATE:
		req = ipc_get_u64(msg);
		ipc_get_end(msg);
		queue_create(chan, req);
		return 0;
	case MTAD_MSG_ENVELOPE:
		msgid = ipc_get_u32(msg);
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		queue_envelope(msgid, text);
		return 0;
	case MTAD_MSG_MESSAGE_COMMIT:
		req = ipc_get_u64(msg);
		msgid = ipc_get_u32(msg);
		ipc_get_end(msg);
		queue_commit(chan, req, msgid);
		return 0;
	case MTAD_MSG_MESSAGE_ROLLBACK:
		msgid = ipc_get_u32(msg);
		ipc_get_end(msg);
		queue_rollback(msgid);
		return 0;
	case MTAD_MSG_DELIVERED:
		if (strcmp(chan->peer, "delivery") != 0)
			return -1;
		evpid = ipc_get_u64(msg);
		result = ipc_get_u32(msg);
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		if (result > DELIVERY_PERMFAIL)
			return -1;
		scheduler_delivered(evpid, (enum delivery_result)result, text);
		return 0;
	}
	return -1;
}
