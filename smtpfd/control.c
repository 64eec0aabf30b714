/*
 * The control process: it accepts smtpfctl clients on the control socket
 * (opened by the parent, mode 0600) and routes each request to the
 * process that can answer it; lib/control.c does the rest.  With
 * `metrics on`, it also serves the Prometheus metrics (metrics.c).
 */
#include <stdarg.h>
#include <stdint.h>

#include "control.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "smtpfd.h"

static const struct control_proto smtpfd_control = {
	SMTPFD_MSG_CTL_REQUEST, SMTPFD_MSG_CTL_LINE, SMTPFD_MSG_CTL_END,
	smtpfd_types, SMTPFD_NTYPES
};

static int		 listen_fd = -1;
static int		 metrics_fd = -1;
static struct ipc_chan	*parent_chan;

void
ctl_line(struct ipc_chan *chan, uint64_t client, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	control_vline(&smtpfd_control, chan, client, fmt, ap);
	va_end(ap);
}

void
ctl_end(struct ipc_chan *chan, uint64_t client, int status, const char *fmt,
    ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	control_vend(&smtpfd_control, chan, client, status, fmt, ap);
	va_end(ap);
}

static size_t
control_route(uint32_t cmd, struct ipc_chan **to)
{
	switch (cmd) {
	case CTL_SHOW_SESSIONS:
	case CTL_SHOW_STATS:
		to[0] = proc_peer("frontend");
		return 1;
	case CTL_SHOW_FILTERS:
		to[0] = proc_peer("engine");
		return 1;
	case CTL_RELOAD:
	case CTL_LOG_VERBOSE:
	case CTL_LOG_BRIEF:
		to[0] = parent_chan;
		return 1;
	}
	return 0;
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
	control_listen(&smtpfd_control, listen_fd, control_route);
	if (smtpfd_conf->metrics_on != NULL) {
		if (metrics_fd == -1)
			fatalx("no metrics socket from the parent");
		metrics_listen(metrics_fd);
	}
}

int
control_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	int	 r;

	if (msg->type == SMTPFD_MSG_CONTROL_SOCKET) {
		if (chan != parent_chan || listen_fd != -1)
			return -1;
		ipc_get_end(msg);
		listen_fd = msg->fd;
		return 0;
	}
	if (msg->type == SMTPFD_MSG_METRICS_SOCKET) {
		if (chan != parent_chan || metrics_fd != -1)
			return -1;
		ipc_get_end(msg);
		metrics_fd = msg->fd;
		return 0;
	}
	if ((r = metrics_relay(chan, msg)) != 0)
		return r == 1 ? 0 : -1;
	return control_relay(msg);
}
