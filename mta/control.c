/*
 * The control process: it accepts mtactl clients on the control socket
 * (opened by the parent, mode 0600) and routes each request to the
 * process that can answer it, then relays the answer.  Clients are not
 * trusted: a malformed message drops the client, never the daemon.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mtad.h"
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
static int			 listen_fd = -1;
static struct event		 ev_accept;
static struct ipc_chan		*parent_chan;

static void	 control_accept(int, short, void *);
static int	 control_client_dispatch(struct ipc_chan *, struct ipc_msg *);
static void	 control_client_closed(struct ipc_chan *);

void
ctl_line(struct ipc_chan *chan, uint64_t client, const char *fmt, ...)
{
	char	 buf[2048];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ipc_begin(chan, MTAD_MSG_CTL_LINE, -1);
	ipc_add_u64(chan, client);
	ipc_add_string(chan, buf);
	ipc_end(chan);
}

void
ctl_end(struct ipc_chan *chan, uint64_t client, int status, const char *fmt,
    ...)
{
	char	 buf[256];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ipc_begin(chan, MTAD_MSG_CTL_END, -1);
	ipc_add_u64(chan, client);
	ipc_add_u32(chan, (uint32_t)status);
	ipc_add_string(chan, buf);
	ipc_end(chan);
}

void
control_init(struct ipc_chan *parent)
{
	parent_chan = parent;
}

void
control_configured(struct ipc_chan *parent)
{
	(void)parent;
	if (listen_fd == -1)
		fatalx("no control socket from the parent");
	event_set(&ev_accept, listen_fd, EV_READ | EV_PERSIST, control_accept,
	    NULL);
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
	    mtad_types, MTAD_NTYPES, control_client_dispatch,
	    control_client_closed, c);
	TAILQ_INSERT_TAIL(&clients, c, entry);
	nclients++;
}

static void
control_client_closed(struct ipc_chan *chan)
{
	client_free(chan->arg);
}

static void
forward(struct ipc_chan *to, struct ctl_client *c, uint32_t cmd,
    const char *arg)
{
	ipc_begin(to, MTAD_MSG_CTL_REQUEST, -1);
	ipc_add_u64(to, c->id);
	ipc_add_u32(to, cmd);
	ipc_add_string(to, arg);
	ipc_end(to);
	c->pending++;
}

static int
control_client_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	struct ctl_client	*c = chan->arg;
	const char		*arg;
	uint32_t		 cmd;

	if (msg->type != MTAD_MSG_CTL_REQUEST || c->pending)
		return -1;	/* one request at a time, nothing else */
	(void)ipc_get_u64(msg);
	cmd = ipc_get_u32(msg);
	arg = ipc_get_string(msg);
	ipc_get_end(msg);
	log_debug("control request %u %s", cmd, arg);
	switch (cmd) {
	case CTL_SHOW_QUEUE:
	case CTL_SHOW_ENVELOPE:
	case CTL_SCHEDULE:
	case CTL_REMOVE:
	case CTL_PAUSE_MDA:
	case CTL_RESUME_MDA:
		forward(proc_peer("queue"), c, cmd, arg);
		break;
	case CTL_PAUSE_SMTP:
	case CTL_RESUME_SMTP:
		forward(proc_peer("smtp"), c, cmd, arg);
		break;
	case CTL_SHOW_STATS:
		forward(proc_peer("smtp"), c, cmd, arg);
		forward(proc_peer("queue"), c, cmd, arg);
		break;
	case CTL_UPDATE_TABLE:
	case CTL_LOG_VERBOSE:
	case CTL_LOG_BRIEF:
	case CTL_STOP:
		forward(parent_chan, c, cmd, arg);
		break;
	default:
		/* mtactl closes after the answer; the client goes then. */
		ctl_end(chan, 0, 1, "unknown command %u", cmd);
		return 0;
	}
	return 0;
}

/* An answer from a process: relay it to its client. */
static void
control_answer(struct ipc_msg *msg)
{
	struct ctl_client	*c;
	const char		*text;
	uint64_t		 id;
	uint32_t		 status = 0;

	id = ipc_get_u64(msg);
	if (msg->type == MTAD_MSG_CTL_END)
		status = ipc_get_u32(msg);
	text = ipc_get_string(msg);
	ipc_get_end(msg);
	if ((c = client_find(id)) == NULL)
		return;		/* the client left */
	if (msg->type == MTAD_MSG_CTL_LINE) {
		ctl_line(&c->chan, 0, "%s", text);
		return;
	}
	if (status != 0 || c->message[0] == '\0') {
		c->status |= (int)status;
		snprintf(c->message, sizeof(c->message), "%s", text);
	}
	if (--c->pending > 0)
		return;
	ctl_end(&c->chan, 0, c->status, "%s", c->message);
	ipc_flush(&c->chan);
	client_free(c);
}

int
control_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	switch (msg->type) {
	case MTAD_MSG_CONTROL_SOCKET:
		if (chan != parent_chan || listen_fd != -1)
			return -1;
		ipc_get_end(msg);
		listen_fd = msg->fd;
		return 0;
	case MTAD_MSG_CTL_LINE:
	case MTAD_MSG_CTL_END:
		control_answer(msg);
		return 0;
	}
	return -1;
}
