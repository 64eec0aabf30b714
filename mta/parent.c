/*
 * What mtad's privileged parent does besides supervising: prepare the
 * queue directory, open the listening sockets, and hand the smtp process
 * what it may not read itself (sockets, certificates, table files), and
 * the sockets of its smtpf links, which it may not connect itself.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mtad.h"
#include "xmalloc.h"

struct listen_socket {
	unsigned int	 index;
	int		 fd;
};

static struct listen_socket	*sockets;
static size_t			 nsockets;
static int			 control_fd = -1;

static void
add_socket(struct listener *l, const struct sockaddr_storage *ss,
    socklen_t len)
{
	char	 host[INET6_ADDRSTRLEN];
	int	 fd, on = 1;

	if ((fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		fatal("SO_REUSEADDR");
	if (ss->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1)
		fatal("IPV6_V6ONLY");
	inet_ntop(ss->ss_family, ss->ss_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)(const void *)ss)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr,
	    host, sizeof(host));
	if (bind(fd, (const struct sockaddr *)ss, len) == -1)
		fatal("listen on %s port %d", host, l->port);
	if (listen(fd, SOMAXCONN) == -1)
		fatal("listen on %s port %d", host, l->port);
	sockets = xreallocarray(sockets, nsockets + 1, sizeof(*sockets));
	sockets[nsockets].index = l->index;
	sockets[nsockets].fd = fd;
	nsockets++;
	log_debug("listening on %s port %d", host, l->port);
}

static int
family_wanted(const struct listener *l, int family)
{
	return l->family == AF_UNSPEC || l->family == family;
}

/* An address, "localhost", or the name of an interface. */
static void
open_listener(struct listener *l)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)&ss;
	struct ifaddrs		*ifap, *ifa;
	size_t			 before = nsockets;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, l->on, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)l->port);
		add_socket(l, &ss, sizeof(*sin));
		return;
	}
	if (inet_pton(AF_INET6, l->on, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)l->port);
		add_socket(l, &ss, sizeof(*sin6));
		return;
	}
	if (strcmp(l->on, "localhost") == 0) {
		if (family_wanted(l, AF_INET)) {
			sin->sin_family = AF_INET;
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			sin->sin_port = htons((uint16_t)l->port);
			add_socket(l, &ss, sizeof(*sin));
		}
		if (family_wanted(l, AF_INET6)) {
			memset(&ss, 0, sizeof(ss));
			sin6->sin6_family = AF_INET6;
			sin6->sin6_addr = in6addr_loopback;
			sin6->sin6_port = htons((uint16_t)l->port);
			add_socket(l, &ss, sizeof(*sin6));
		}
		return;
	}
	if (getifaddrs(&ifap) == -1)
		fatal("getifaddrs");
	for (ifa = ifap; ifa; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || strcmp(ifa->ifa_name, l->on) != 0 ||
		    !family_wanted(l, ifa->ifa_addr->sa_family))
			continue;
		memset(&ss, 0, sizeof(ss));
		if (ifa->ifa_addr->sa_family == AF_INET) {
			memcpy(sin, ifa->ifa_addr, sizeof(*sin));
			sin->sin_port = htons((uint16_t)l->port);
			add_socket(l, &ss, sizeof(*sin));
		} else if (ifa->ifa_addr->sa_family == AF_INET6) {
			memcpy(sin6, ifa->ifa_addr, sizeof(*sin6));
			if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr))
				continue;
			sin6->sin6_port = htons((uint16_t)l->port);
			add_socket(l, &ss, sizeof(*sin6));
		}
	}
	freeifaddrs(ifap);
	if (nsockets == before)
		fatalx("listen on %s: no such address or interface", l->on);
}

/*
 * The queue directory belongs to root (it is the queue process's
 * chroot); what is inside belongs to the unprivileged user.
 */
static void
prepare_queue(void)
{
	const char	*q = mtad_conf->queue_path;
	const char	*sub[] = { "incoming", "queue" };
	struct passwd	*pw = NULL;
	char		 path[PATH_MAX];
	size_t		 i;

	if (geteuid() == 0) {
		proc_prepare_chroot(q);
		if ((pw = getpwnam(mtad_conf->proc.user)) == NULL)
			fatalx("unknown user %s", mtad_conf->proc.user);
	} else if (mkdir(q, 0700) == -1 && errno != EEXIST)
		fatal("mkdir %s", q);
	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", q, sub[i]);
		if (mkdir(path, 0700) == -1 && errno != EEXIST)
			fatal("mkdir %s", path);
		if (pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) == -1)
			fatal("chown %s", path);
	}
}

/* At exit of the parent only: children exec or _exit. */
static void
remove_control_socket(void)
{
	unlink(mtad_conf->control_socket);
}

/*
 * The control socket: only root (or the user mtad runs as, when not
 * started as root) may connect.  A socket that answers belongs to a
 * running mtad: refuse to steal it.
 */
static void
open_control_socket(void)
{
	struct sockaddr_un	 sun;
	const char		*path = mtad_conf->control_socket;
	mode_t			 old;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		fatalx("control socket %s: path too long", path);
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		fatal("socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		fatalx("control socket %s: another mtad is running", path);
	close(fd);
	if (unlink(path) == -1 && errno != ENOENT)
		fatal("unlink %s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		fatal("socket");
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		fatal("control socket %s", path);
	umask(old);
	if (listen(fd, 16) == -1)
		fatal("listen %s", path);
	control_fd = fd;
	atexit(remove_control_socket);
}

void
parent_init(void)
{
	struct listener	*l;

	prepare_queue();
	open_control_socket();
	TAILQ_FOREACH(l, &mtad_conf->listeners, entry)
		open_listener(l);
}

static void	 send_tables(struct proc_child *);

static void
send_smtp_config(struct proc_child *c)
{
	struct pki	*p;
	size_t		 i;

	TAILQ_FOREACH(p, &mtad_conf->pkis, entry) {
		if (p->cert == NULL || p->key == NULL)
			continue;
		ipc_begin(&c->chan, MTAD_MSG_PKI, -1);
		ipc_add_string(&c->chan, p->name);
		ipc_add_data(&c->chan, p->cert, p->cert_len);
		ipc_add_data(&c->chan, p->key, p->key_len);
		ipc_add_data(&c->chan, p->ca ? p->ca : "", p->ca_len);
		ipc_end(&c->chan);
	}
	send_tables(c);
	for (i = 0; i < nsockets; i++) {
		ipc_begin(&c->chan, MTAD_MSG_LISTENER, sockets[i].fd);
		ipc_add_u32(&c->chan, sockets[i].index);
		ipc_end(&c->chan);
	}
	nsockets = 0;	/* the descriptors went with the messages */
}

static void
send_table(struct proc_child *c, const struct table *t)
{
	size_t	 i;

	for (i = 0; i < t->nitems; i++) {
		ipc_begin(&c->chan, MTAD_MSG_TABLE_ITEM, -1);
		ipc_add_string(&c->chan, t->name);
		ipc_add_string(&c->chan, t->items[i].key);
		ipc_add_string(&c->chan, t->items[i].value ?
		    t->items[i].value : "");
		ipc_end(&c->chan);
	}
}

static void
send_tables(struct proc_child *c)
{
	struct table	*t;

	TAILQ_FOREACH(t, &mtad_conf->tables, entry)
		if (t->path != NULL)	/* inline: in the statements already */
			send_table(c, t);
}

/* Rules and expansion run in smtp (RCPT) and queue (bounces). */
void
parent_send_config(struct proc_child *c)
{
	if (strcmp(c->role->name, "smtp") == 0)
		send_smtp_config(c);
	else if (strcmp(c->role->name, "queue") == 0)
		send_tables(c);
	else if (strcmp(c->role->name, "control") == 0) {
		ipc_begin(&c->chan, MTAD_MSG_CONTROL_SOCKET, control_fd);
		ipc_end(&c->chan);
		control_fd = -1;
	}
}

/* mtactl update table NAME: read the file again, hand it out. */
static void
update_table(struct ipc_chan *chan, uint64_t client, const char *name)
{
	struct proc_child	*children, *c;
	struct table		*t;
	char			 err[256];
	size_t			 n, i;

	if ((t = table_find(name)) == NULL) {
		ctl_end(chan, client, 1, "no table %s", name);
		return;
	}
	if (t->path == NULL) {
		ctl_end(chan, client, 1, "table %s is inline: restart to "
		    "change it", name);
		return;
	}
	if (table_load_file(t, err, sizeof(err)) == -1) {
		log_warnx("update table %s: %s", name, err);
		ctl_end(chan, client, 1, "table %s unchanged: %s", name, err);
		return;
	}
	children = proc_children(&n);
	for (i = 0; i < n; i++) {
		c = &children[i];
		if (strcmp(c->role->name, "smtp") != 0 &&
		    strcmp(c->role->name, "queue") != 0)
			continue;
		ipc_begin(&c->chan, MTAD_MSG_TABLE_RESET, -1);
		ipc_add_string(&c->chan, name);
		ipc_end(&c->chan);
		send_table(c, t);
	}
	log_info("table %s updated: %zu entries", name, t->nitems);
	ctl_end(chan, client, 0, "table %s: %zu entries", name, t->nitems);
}

static void
set_verbose(int verbose)
{
	struct proc_child	*children;
	size_t			 n, i;

	log_setverbose(verbose);
	children = proc_children(&n);
	for (i = 0; i < n; i++) {
		ipc_begin(&children[i].chan, PROC_MSG_VERBOSE, -1);
		ipc_add_u32(&children[i].chan, (uint32_t)verbose);
		ipc_end(&children[i].chan);
	}
}

/*
 * A socket to an smtpfd endpoint, for the smtp process, which cannot
 * connect itself: it lives chrooted in an empty directory.  Connecting
 * never blocks: a TCP connect still in progress travels as it is and the
 * smtp process waits for it; a unix socket connects at once or fails.
 */
static int
endpoint_connect(const struct smtpf_endpoint *e, char *err, size_t errlen)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_un	*sun = (struct sockaddr_un *)(void *)&ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)&ss;
	socklen_t		 len;
	int			 fd;

	memset(&ss, 0, sizeof(ss));
	if (e->transport == SMTPF_TRANSPORT_UNIX) {
		sun->sun_family = AF_UNIX;
		/* the grammar checked that it fits */
		memcpy(sun->sun_path, e->path, strlen(e->path) + 1);
		len = sizeof(*sun);
	} else if (inet_pton(AF_INET, e->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)e->port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, e->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)e->port);
		len = sizeof(*sin6);
	} else
		fatalx("smtpf endpoint %s: bad address", e->url);
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&ss, len) == -1 &&
	    errno != EINPROGRESS) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int
parent_smtpf_connect(struct ipc_chan *chan, struct ipc_msg *msg)
{
	const struct smtpf_endpoint	*e;
	char				 err[256];
	uint32_t			 index;
	int				 fd;

	index = ipc_get_u32(msg);
	ipc_get_end(msg);
	if ((e = endpoint_find(index)) == NULL)
		return -1;
	err[0] = '\0';
	fd = endpoint_connect(e, err, sizeof(err));
	ipc_begin(chan, MTAD_MSG_SMTPF_SOCKET, fd);
	ipc_add_u32(chan, index);
	ipc_add_string(chan, err);
	ipc_end(chan);
	return 0;
}

/*
 * Requests the control process forwards to the parent, and the smtp
 * process's requests for smtpf sockets.
 */
int
parent_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	const char	*arg;
	uint64_t	 client;
	uint32_t	 cmd;

	if (msg->type == MTAD_MSG_SMTPF_CONNECT &&
	    strcmp(chan->peer, "smtp") == 0)
		return parent_smtpf_connect(chan, msg);
	if (msg->type != MTAD_MSG_CTL_REQUEST ||
	    strcmp(chan->peer, "control") != 0)
		return -1;
	client = ipc_get_u64(msg);
	cmd = ipc_get_u32(msg);
	arg = ipc_get_string(msg);
	ipc_get_end(msg);
	switch (cmd) {
	case CTL_UPDATE_TABLE:
		update_table(chan, client, arg);
		break;
	case CTL_LOG_VERBOSE:
	case CTL_LOG_BRIEF:
		set_verbose(cmd == CTL_LOG_VERBOSE ? 2 : 0);
		log_info("log %s", cmd == CTL_LOG_VERBOSE ? "verbose" :
		    "brief");
		ctl_end(chan, client, 0, "log %s", cmd == CTL_LOG_VERBOSE ?
		    "verbose" : "brief");
		break;
	case CTL_STOP:
		log_info("stop requested by mtactl");
		ctl_end(chan, client, 0, "stopping");
		ipc_flush(chan);
		daemon_shutdown(0);
		break;
	default:
		return -1;
	}
	return 0;
}
