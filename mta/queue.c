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

static void
queue_commit(struct ipc_chan *chan, uint64_t req, uint32_t msgid)
{
	struct incoming	*in;
	size_t		 i;
	int		 ok, r;

	if ((in = incoming_find(msgid)) == NULL)
		fatalx("commit of unknown message %08" PRIx32, msgid);
	r = -1;
	if (!in->failed && in->nenvs > 0)
		r = backend->message_commit(msgid, in->envs, in->nenvs);
	ok = r == 0;
	if (r == -1)
		backend->message_delete(msgid);
	else {
		log_info("msgid=%08" PRIx32 " queued envelopes=%zu%s", msgid,
		    in->nenvs, ok ? "" : " (not confirmed on disk: refused)");
		for (i = 0; i < in->nenvs; i++)
			scheduler_add(in->envs[i].id, 0);
	}
	incoming_free(in);
	ipc_begin(chan, MTAD_MSG_MESSAGE_COMMITTED, -1);
	ipc_add_u64(chan, req);
	ipc_add_u32(chan, (uint32_t)ok);
	ipc_end(chan);
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
	uint32_t	 msgid, result;
	const char	*text, *name, *key;

	/* The smtp process's messages come from the smtp process only. */
	if (msg->type >= MTAD_MSG_MESSAGE_CREATE &&
	    msg->type <= MTAD_MSG_MESSAGE_ROLLBACK && strcmp(chan->peer, "smtp"))
		return -1;
	switch (msg->type) {
	case MTAD_MSG_TABLE_ITEM:
		if (strcmp(chan->peer, "parent") != 0)
			return -1;
		name = ipc_get_string(msg);
		key = ipc_get_string(msg);
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		table_item_received(name, key, text);
		return 0;
	case MTAD_MSG_TABLE_RESET:
		if (strcmp(chan->peer, "parent") != 0)
			return -1;
		name = ipc_get_string(msg);
		ipc_get_end(msg);
		table_reset(name);
		return 0;
	case MTAD_MSG_CTL_REQUEST:
		if (strcmp(chan->peer, "control") != 0)
			return -1;
		req = ipc_get_u64(msg);
		result = ipc_get_u32(msg);
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		scheduler_ctl(chan, req, result, text);
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
