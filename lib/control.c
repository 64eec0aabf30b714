/*
 * The control process of both daemons: it accepts tool clients on the
 * control socket, forwards each request to the processes the daemon's
 * route function names, and relays their answers.  See control.h.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>

#include <event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "ipc.h"
#include "log.h"
#include "xmalloc.h"

#define CONTROL_MAX_CLIENTS	64

struct ctl_client {
	TAILQ_ENTRY(ctl_client)	 entry;
	uint64_t		 id;
	struct ipc_chan		 chan;
	int			 pending;	/* answers still to come */
	int			 status;
	char			 message[256];
};

static TAILQ_HEAD(, ctl_client)	 clients = TAILQ_HEAD_INITIALIZER(clients);
static size_t			 nclients;
static uint64_t			 next_id = 1;
static const struct control_proto *proto;
static size_t			(*route)(uint32_t, struct ipc_chan **);
static struct event		 ev_accept;

static void	 control_accept(int, short, void *);
static int	 control_client_dispatch(struct ipc_chan *, struct ipc_msg *);
static void	 control_client_closed(struct ipc_chan *);

static void
send_line(const struct control_proto *p, struct ipc_chan *chan,
    uint64_t client, const char *text)
{
	ipc_begin(chan, p->line, -1);
	ipc_add_u64(chan, client);
	ipc_add_string(chan, text);
	ipc_end(chan);
}

static void
send_end(const struct control_proto *p, struct ipc_chan *chan,
    uint64_t client, int status, const char *text)
{
	ipc_begin(chan, p->end, -1);
	ipc_add_u64(chan, client);
	ipc_add_u32(chan, (uint32_t)status);
	ipc_add_string(chan, text);
	ipc_end(chan);
}

void
control_vline(const struct control_proto *p, struct ipc_chan *chan,
    uint64_t client, const char *fmt, va_list ap)
{
	char	 buf[2048];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	send_line(p, chan, client, buf);
}

void
control_vend(const struct control_proto *p, struct ipc_chan *chan,
    uint64_t client, int status, const char *fmt, va_list ap)
{
	char	 buf[256];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	send_end(p, chan, client, status, buf);
}

void
control_listen(const struct control_proto *p, int fd,
    size_t (*fn)(uint32_t, struct ipc_chan **))
{
	proto = p;
	route = fn;
	event_set(&ev_accept, fd, EV_READ | EV_PERSIST, control_accept, NULL);
	event_add(&ev_accept, NULL);
}

static struct ctl_client *
client_find(uint64_t id)
{
	struct ctl_client	*c;

	TAILQ_FOREACH(c, &clients, entry)
		if (c->id == id)
			return c;
	return NULL;
}

static void
client_free(struct ctl_client *c)
{
	ipc_chan_close(&c->chan);
	TAILQ_REMOVE(&clients, c, entry);
	nclients--;
	free(c);
}

static void
control_accept(int fd, short event, void *arg)
{
	struct ctl_client	*c;
	struct ucred		 cred;
	socklen_t		 len = sizeof(cred);
	int			 cfd;

	(void)event;
	(void)arg;
	if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1)
		return;
	/* The socket is 0600 already; refuse others all the same. */
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    (cred.uid != 0 && cred.uid != getuid()) ||
	    nclients >= CONTROL_MAX_CLIENTS) {
		close(cfd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = next_id++;
	ipc_chan_init(&c->chan, cfd, "control client", IPC_PEER_CLIENT,
	    proto->types, proto->ntypes, control_client_dispatch,
	    control_client_closed, c);
	TAILQ_INSERT_TAIL(&clients, c, entry);
	nclients++;
}

static void
control_client_closed(struct ipc_chan *chan)
{
	client_free(chan->arg);
}

static int
control_client_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	struct ctl_client	*c = chan->arg;
	struct ipc_chan		*to[CONTROL_MAX_ROUTES];
	const char		*arg;
	uint32_t		 cmd;
	size_t			 i, n;

	if (msg->type != proto->request || c->pending)
		return -1;	/* one request at a time, nothing else */
	(void)ipc_get_u64(msg);
	cmd = ipc_get_u32(msg);
	arg = ipc_get_string(msg);
	ipc_get_end(msg);
	log_debug("control request %u %s", cmd, arg);
	if ((n = route(cmd, to)) == 0) {
		/* The tool closes after the answer; the client goes then. */
		send_end(proto, chan, 0, 1, "unknown command");
		return 0;
	}
	for (i = 0; i < n; i++) {
		ipc_begin(to[i], proto->request, -1);
		ipc_add_u64(to[i], c->id);
		ipc_add_u32(to[i], cmd);
		ipc_add_string(to[i], arg);
		ipc_end(to[i]);
	}
	c->pending = (int)n;
	return 0;
}

int
control_relay(struct ipc_msg *msg)
{
	struct ctl_client	*c;
	const char		*text;
	uint64_t		 id;
	uint32_t		 status = 0;

	if (proto == NULL || (msg->type != proto->line &&
	    msg->type != proto->end))
		return -1;
	id = ipc_get_u64(msg);
	if (msg->type == proto->end)
		status = ipc_get_u32(msg);
	text = ipc_get_string(msg);
	ipc_get_end(msg);
	if ((c = client_find(id)) == NULL || c->pending == 0)
		return 0;	/* the client left */
	if (msg->type == proto->line) {
		send_line(proto, &c->chan, 0, text);
		return 0;
	}
	if (status != 0 && c->status == 0) {
		c->status = 1;
		snprintf(c->message, sizeof(c->message), "%s", text);
	} else if (c->status == 0 && c->message[0] == '\0')
		snprintf(c->message, sizeof(c->message), "%s", text);
	if (--c->pending > 0)
		return 0;
	send_end(proto, &c->chan, 0, c->status, c->message);
	ipc_flush(&c->chan);
	client_free(c);
	return 0;
}
