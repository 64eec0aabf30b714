/*
 * What smtpfd's privileged parent does besides supervising: open the
 * listening sockets and the control socket, and hand the frontend what it
 * may not open itself (sockets, certificates and keys).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "smtpfd.h"
#include "xmalloc.h"

/* A Lua script travels in pieces under the IPC payload limit. */
#define SCRIPT_CHUNK	(60 * 1024)

struct listen_socket {
	unsigned int	 index;
	int		 fd;
};

static struct listen_socket	*sockets;
static size_t			 nsockets;
static int			 control_fd = -1;
static int			 metrics_fd = -1;
static char			**unix_paths;
static size_t			 nunix_paths;

static void
add_socket(unsigned int index, int fd)
{
	sockets = xreallocarray(sockets, nsockets + 1, sizeof(*sockets));
	sockets[nsockets].index = index;
	sockets[nsockets].fd = fd;
	nsockets++;
}

/* A listening TCP socket on ADDRESS port N (listeners, metrics). */
static int
tcp_socket(const char *addr, int port)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)&ss;
	socklen_t		 len;
	int			 fd, on = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		len = sizeof(*sin6);
	} else
		fatalx("listener %s: not an address", addr);
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		fatal("SO_REUSEADDR");
	if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1)
		fatal("IPV6_V6ONLY");
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(fd, SOMAXCONN) == -1)
		fatal("listen on %s port %d", addr, port);
	log_debug("listening on %s port %d", addr, port);
	return fd;
}

static void
remove_unix_sockets(void)
{
	size_t	 i;

	for (i = 0; i < nunix_paths; i++)
		unlink(unix_paths[i]);
}

/*
 * A unix socket only root can use: whoever connects speaks for the
 * clients of an MTA, and their addresses are believed downstream.
 */
static int
open_unix(const char *path, int backlog)
{
	struct sockaddr_un	 sun;
	mode_t			 old;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path) >=
	    sizeof(sun.sun_path))
		fatalx("socket path too long: %s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		fatal("socket");
	if (unlink(path) == -1 && errno != ENOENT)
		fatal("unlink %s", path);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("socket %s", path);
	umask(old);
	if (listen(fd, backlog) == -1)
		fatal("listen %s", path);
	if (nunix_paths == 0)
		atexit(remove_unix_sockets);
	unix_paths = xreallocarray(unix_paths, nunix_paths + 1,
	    sizeof(*unix_paths));
	unix_paths[nunix_paths++] = xstrdup(path);
	return fd;
}

void
parent_init(void)
{
	struct listener	*l;

	control_fd = open_unix(smtpfd_conf->control_socket, 16);
	TAILQ_FOREACH(l, &smtpfd_conf->listeners, entry) {
		if (l->kind == LISTENER_SMTPF_UNIX)
			add_socket(l->index, open_unix(l->on, SOMAXCONN));
		else
			add_socket(l->index, tcp_socket(l->on, l->port));
	}
	if (smtpfd_conf->metrics_on != NULL)
		metrics_fd = tcp_socket(smtpfd_conf->metrics_on,
		    smtpfd_conf->metrics_port);
}

static void
send_frontend_config(struct proc_child *c)
{
	struct pki	*p;
	size_t		 i;

	TAILQ_FOREACH(p, &smtpfd_conf->pkis, entry) {
		ipc_begin(&c->chan, SMTPFD_MSG_PKI, -1);
		ipc_add_string(&c->chan, p->name);
		ipc_add_data(&c->chan, p->cert ? p->cert : "", p->cert_len);
		ipc_add_data(&c->chan, p->key ? p->key : "", p->key_len);
		ipc_add_data(&c->chan, p->ca ? p->ca : "", p->ca_len);
		ipc_end(&c->chan);
	}
	for (i = 0; i < nsockets; i++) {
		ipc_begin(&c->chan, SMTPFD_MSG_LISTENER, sockets[i].fd);
		ipc_add_u32(&c->chan, sockets[i].index);
		ipc_end(&c->chan);
	}
	nsockets = 0;	/* the descriptors went with the messages */
}

/*
 * The engine is chrooted: it gets each Lua filter's script from us, in
 * pieces that fit a message (the engine puts them back together).
 */
static void
send_engine_config(struct proc_child *c)
{
	struct filter_conf	*f;
	size_t			 off, n;

	TAILQ_FOREACH(f, &smtpfd_conf->filters, entry) {
		if (f->kind != FILTER_LUA || f->script == NULL)
			continue;
		off = 0;
		do {
			n = f->script_len - off;
			if (n > SCRIPT_CHUNK)
				n = SCRIPT_CHUNK;
			ipc_begin(&c->chan, SMTPFD_MSG_FILTER_SCRIPT, -1);
			ipc_add_string(&c->chan, f->name);
			ipc_add_data(&c->chan, f->script + off, n);
			ipc_end(&c->chan);
			off += n;
		} while (off < f->script_len);
	}
}

void
parent_send_config(struct proc_child *c)
{
	if (strcmp(c->role->name, "frontend") == 0)
		send_frontend_config(c);
	else if (strcmp(c->role->name, "control") == 0 && control_fd != -1) {
		ipc_begin(&c->chan, SMTPFD_MSG_CONTROL_SOCKET, control_fd);
		ipc_end(&c->chan);
		control_fd = -1;
		if (metrics_fd != -1) {
			ipc_begin(&c->chan, SMTPFD_MSG_METRICS_SOCKET,
			    metrics_fd);
			ipc_end(&c->chan);
			metrics_fd = -1;
		}
	} else if (strcmp(c->role->name, "engine") == 0) {
		send_engine_config(c);
		parent_filters_start(c);
	}
}

/*
 * Requests the control process forwards to the parent, and the engine's
 * requests to start an exec filter again.
 */
int
parent_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	char		 err[1024];
	const char	*name;
	uint64_t	 client;
	uint32_t	 cmd;

	if (msg->type == SMTPFD_MSG_FILTER_RESTART &&
	    strcmp(chan->peer, "engine") == 0) {
		name = ipc_get_string(msg);
		ipc_get_end(msg);
		return parent_filter_restart(name);
	}
	if (msg->type != SMTPFD_MSG_CTL_REQUEST ||
	    strcmp(chan->peer, "control") != 0)
		return -1;
	client = ipc_get_u64(msg);
	cmd = ipc_get_u32(msg);
	(void)ipc_get_string(msg);
	ipc_get_end(msg);
	switch (cmd) {
	case CTL_LOG_VERBOSE:
	case CTL_LOG_BRIEF:
		daemon_setverbose(cmd == CTL_LOG_VERBOSE ? 2 : 0);
		log_info("log %s", cmd == CTL_LOG_VERBOSE ? "verbose" :
		    "brief");
		ctl_end(chan, client, 0, "log %s", cmd == CTL_LOG_VERBOSE ?
		    "verbose" : "brief");
		return 0;
	case CTL_RELOAD:
		if (daemon_reload(err, sizeof(err)) == -1) {
			log_warnx("configuration not reloaded: %s", err);
			ctl_end(chan, client, 1, "not reloaded: %s", err);
		} else
			ctl_end(chan, client, 0, "configuration reloaded");
		return 0;
	}
	return -1;
}
