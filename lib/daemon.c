/*
 * The common life cycle of mtad and smtpfd: command line, configuration
 * check, privileged parent supervising its children, and the start of a
 * re-executed child.  See proc.h for the model.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "ipc.h"
#include "log.h"
#include "proc.h"
#include "proctitle.h"
#include "xmalloc.h"

#define SHUTDOWN_GRACE_SECONDS	5

static const struct daemon_desc	*desc;

static struct {
	const char		*conffile;
	char			**defines;
	size_t			 ndefines;
	char			*conf_text;	/* canonical statements */
	size_t			 conf_len;
	struct proc_child	*children;
	size_t			 nchildren;
	size_t			 nready;
	int			 shutting_down;
	int			 exit_status;
	struct event		 ev_sigchld;
	struct event		 ev_sigterm;
	struct event		 ev_sigint;
	struct event		 ev_sighup;
	struct event		 ev_grace;
} parent;

static struct {
	const struct proc_role	*role;
	char			*conf_text;
	size_t			 conf_len;
	int			 configured;	/* a later one is a reload */
	struct ipc_chan		 chan;
	struct ipc_chan		 peers[PROC_MAX_PEERS];
	char			*peer_names[PROC_MAX_PEERS];
	size_t			 npeers;
	struct event		 ev_sigterm;
} child;

static void	 usage(void) __attribute__((noreturn));
static void	 parent_main(const char *, char **, size_t, int, int, int)
		    __attribute__((noreturn));
static void	 parent_load_config(const char *, char **, size_t);
static void	 parent_spawn_children(int, int);
static void	 parent_send_initial_config(int);
static struct proc_child *parent_child_by_role(const char *);
static void	 parent_send_peers(void);
static int	 parent_dispatch(struct ipc_chan *, struct ipc_msg *);
static void	 parent_child_closed(struct ipc_chan *);
static void	 parent_shutdown(int);
static void	 parent_check_done(void);
static void	 parent_sig(int, short, void *);
static void	 parent_grace_expired(int, short, void *);
static void	 child_main(const char *, const char *, const char *, int, int)
		    __attribute__((noreturn));
static void	 child_parse_config(void);
static void	 child_add_peer(const char *, int);
static void	 child_peer_closed(struct ipc_chan *);
static int	 child_dispatch(struct ipc_chan *, struct ipc_msg *);
static void	 child_parent_closed(struct ipc_chan *);
static void	 child_sig(int, short, void *);

static void
usage(void)
{
	fprintf(stderr, "usage: %s [-dnv] [-D macro=value] [-f file]\n",
	    desc->name);
	exit(1);
}

void
daemon_main(const struct daemon_desc *d, int argc, char **argv)
{
	/* Static: they live until exit, whatever the stack holds by then. */
	static const char *conffile, *role, *user, *chrootdir;
	static char	**defines;
	size_t		 ndefines = 0;
	int		 ch, foreground = 0, checkonly = 0, verbose = 0;

	desc = d;
	conffile = desc->conf_default;
	defines = xcalloc((size_t)argc + 1, sizeof(*defines));
	while ((ch = getopt(argc, argv, "C:dD:f:nR:u:v")) != -1) {
		switch (ch) {
		case 'C':	/* internal: chroot of a re-executed child */
			chrootdir = xstrdup(optarg);
			break;
		case 'd':
			foreground = 1;
			break;
		case 'D':
			defines[ndefines++] = xstrdup(optarg);
			break;
		case 'f':
			conffile = xstrdup(optarg);
			break;
		case 'n':
			checkonly = 1;
			break;
		case 'R':	/* internal: role of a re-executed child */
			role = xstrdup(optarg);
			break;
		case 'u':	/* internal: user of a re-executed child */
			user = xstrdup(optarg);
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	/* From here on argv is the process title: strings were copied. */
	proctitle_init(argc, argv);

	if (role != NULL)
		child_main(role, user, chrootdir, foreground, verbose);
	parent_main(conffile, defines, ndefines, foreground, checkonly,
	    verbose);
}

/*
 * Parent.
 */

/*
 * Parse the file into the daemon's configuration and into canonical
 * text; returns the number of errors (each reported, the first kept in
 * first_error).
 */
static int
parent_parse_file(int log_errors, char **text, size_t *len, char *first,
    size_t firstlen)
{
	struct conf	 cf;
	size_t		 i;
	int		 errors;

	conf_init(&cf);
	cf.log_errors = log_errors;
	for (i = 0; i < parent.ndefines; i++)
		if (conf_define(&cf, parent.defines[i]) == -1)
			conf_error(&cf, "-D %s: expected macro=value",
			    parent.defines[i]);
	if (cf.errors == 0 && conf_open(&cf, parent.conffile) == 0)
		while (conf_next_statement(&cf)) {
			desc->parse(&cf);
			if (!cf.failed)
				conf_statement_append(&cf, text, len);
		}
	snprintf(first, firstlen, "%s", cf.first_error);
	errors = cf.errors;
	conf_free(&cf);
	return errors;
}

static void
parent_load_config(const char *path, char **defines, size_t ndefines)
{
	char	 first[512];
	int	 errors;

	parent.conffile = path;
	parent.defines = defines;
	parent.ndefines = ndefines;
	errors = parent_parse_file(0, &parent.conf_text, &parent.conf_len,
	    first, sizeof(first));
	if (errors > 0) {
		fprintf(stderr, "%s: %d error%s in configuration\n",
		    desc->name, errors, errors == 1 ? "" : "s");
		exit(1);
	}
}

/*
 *	user NAME	the unprivileged user children run as
 *	chroot PATH	the empty directory chrooted children live in
 */
int
daemon_parse_settings(struct conf *cf, struct proc_settings *ps)
{
	const char	*s;

	if (conf_accept(cf, "user")) {
		if ((s = conf_word(cf, "a user name")) == NULL || !conf_end(cf))
			return 1;
		if (!cf->shipped && geteuid() == 0 && getpwnam(s) == NULL)
			conf_error(cf, "user %s: no such user", s);
		free(ps->user);
		ps->user = xstrdup(s);
		return 1;
	}
	if (conf_accept(cf, "chroot")) {
		if ((s = conf_word(cf, "a directory")) == NULL || !conf_end(cf))
			return 1;
		if (s[0] != '/') {
			conf_error(cf, "chroot %s: expected an absolute path",
			    s);
			return 1;
		}
		free(ps->chroot);
		ps->chroot = xstrdup(s);
		return 1;
	}
	return 0;
}

static void
parent_main(const char *conffile, char **defines, size_t ndefines,
    int foreground, int checkonly, int verbose)
{
	const struct proc_settings	*settings;

	log_init(desc->name, "parent", 1, verbose);
	parent_load_config(conffile, defines, ndefines);
	if (checkonly) {
		printf("configuration OK\n");
		exit(0);
	}
	settings = desc->settings();
	if (geteuid() == 0) {
		if (getpwnam(settings->user) == NULL)
			fatalx("unknown user %s", settings->user);
		proc_prepare_chroot(settings->chroot);
	}
	if (desc->parent_init)
		desc->parent_init();

	if (!foreground) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		log_init(desc->name, "parent", 0, verbose);
	}
	if (geteuid() != 0)
		log_info("not started as root: children keep uid %u and "
		    "are not chrooted", (unsigned)getuid());

	event_init();
	signal(SIGPIPE, SIG_IGN);
	signal_set(&parent.ev_sigchld, SIGCHLD, parent_sig, NULL);
	signal_set(&parent.ev_sigterm, SIGTERM, parent_sig, NULL);
	signal_set(&parent.ev_sigint, SIGINT, parent_sig, NULL);
	signal_set(&parent.ev_sighup, SIGHUP, parent_sig, NULL);
	signal_add(&parent.ev_sigchld, NULL);
	signal_add(&parent.ev_sigterm, NULL);
	signal_add(&parent.ev_sigint, NULL);
	signal_add(&parent.ev_sighup, NULL);

	parent_spawn_children(foreground, verbose);
	proctitle_set("%s: parent", desc->name);
	parent_send_initial_config(verbose);
	event_dispatch();
	fatalx("event loop ended");
}

static void
parent_spawn_children(int foreground, int verbose)
{
	const struct proc_settings	*settings = desc->settings();
	const struct proc_role		*role;
	struct proc_child		*c;
	char				 self[PATH_MAX];
	char				*argv[16];
	ssize_t				 n;
	size_t				 i;
	int				 sp[2], argc, v;

	/* Re-execute exactly this binary, whatever argv[0] says. */
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) == -1)
		fatal("readlink /proc/self/exe");
	self[n] = '\0';

	parent.nchildren = desc->nroles;
	parent.children = xcalloc(desc->nroles, sizeof(*parent.children));
	for (i = 0; i < desc->nroles; i++) {
		role = &desc->roles[i];
		c = &parent.children[i];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
			fatal("socketpair");
		argc = 0;
		argv[argc++] = (char *)desc->name;
		argv[argc++] = "-R";
		argv[argc++] = (char *)role->name;
		argv[argc++] = "-u";
		argv[argc++] = settings->user;
		if (role->chroot_dir != NULL && !role->keeps_root) {
			argv[argc++] = "-C";
			argv[argc++] = (char *)role->chroot_dir();
		}
		if (foreground)
			argv[argc++] = "-d";
		for (v = 0; v < verbose && v < 3; v++)
			argv[argc++] = "-v";
		argv[argc] = NULL;

		c->role = role;
		c->pid = proc_spawn(self, argv, sp[1]);
		c->alive = 1;
		close(sp[1]);
		if (fcntl(sp[0], F_SETFL, O_NONBLOCK) == -1)
			fatal("fcntl");
		ipc_chan_init(&c->chan, sp[0], role->name, IPC_PEER_INTERNAL,
		    desc->types, desc->ntypes, parent_dispatch,
		    parent_child_closed, c);
		log_debug("started %s (pid %d)", role->name, (int)c->pid);
	}
}

static void
parent_send_initial_config(int verbose)
{
	struct proc_child	*c;
	size_t			 i;

	size_t			 off, n;

	for (i = 0; i < parent.nchildren; i++) {
		c = &parent.children[i];
		ipc_begin(&c->chan, PROC_MSG_VERBOSE, -1);
		ipc_add_u32(&c->chan, (uint32_t)verbose);
		ipc_end(&c->chan);
		for (off = 0; off < parent.conf_len; off += n) {
			n = parent.conf_len - off;
			if (n > PROC_CONF_CHUNK)
				n = PROC_CONF_CHUNK;
			ipc_begin(&c->chan, PROC_MSG_CONF_TEXT, -1);
			ipc_add_data(&c->chan, parent.conf_text + off, n);
			ipc_end(&c->chan);
		}
		ipc_send_empty(&c->chan, PROC_MSG_CONF_TEXT_END);
		if (desc->send_config)
			desc->send_config(c);
	}
	parent_send_peers();
	for (i = 0; i < parent.nchildren; i++)
		ipc_send_empty(&parent.children[i].chan, PROC_MSG_CONF_END);
}

static struct proc_child *
parent_child_by_role(const char *role)
{
	size_t	 i;

	for (i = 0; i < parent.nchildren; i++)
		if (strcmp(parent.children[i].role->name, role) == 0)
			return &parent.children[i];
	fatalx("peer table names unknown role %s", role);
}

/* One socketpair per pair of roles that talk directly. */
static void
parent_send_peers(void)
{
	struct proc_child	*a, *b;
	size_t			 i;
	int			 sp[2];

	for (i = 0; desc->peers && desc->peers[i][0] != NULL; i++) {
		a = parent_child_by_role(desc->peers[i][0]);
		b = parent_child_by_role(desc->peers[i][1]);
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
		    sp) == -1)
			fatal("socketpair");
		ipc_begin(&a->chan, PROC_MSG_PEER, sp[0]);
		ipc_add_string(&a->chan, b->role->name);
		ipc_end(&a->chan);
		ipc_begin(&b->chan, PROC_MSG_PEER, sp[1]);
		ipc_add_string(&b->chan, a->role->name);
		ipc_end(&b->chan);
	}
}

struct proc_child *
proc_children(size_t *n)
{
	*n = parent.nchildren;
	return parent.children;
}

static int
parent_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	struct proc_child	*c = chan->arg;

	switch (msg->type) {
	case PROC_MSG_READY:
		ipc_get_end(msg);
		if (c->ready)
			return -1;
		c->ready = 1;
		if (++parent.nready == parent.nchildren)
			log_info("%s ready", desc->name);
		return 0;
	default:
		if (desc->parent_dispatch == NULL)
			return -1;
		return desc->parent_dispatch(chan, msg);
	}
}

static void
parent_child_closed(struct ipc_chan *chan)
{
	struct proc_child	*c = chan->arg;

	/* The exit status arrives with SIGCHLD; that is where we react. */
	log_debug("%s closed its channel", c->role->name);
}

static void
parent_sig(int sig, short event, void *arg)
{
	struct proc_child	*c;
	pid_t			 pid;
	size_t			 i;
	int			 status;
	char			 err[1024];

	(void)event;
	(void)arg;
	switch (sig) {
	case SIGHUP:
		if (daemon_reload(err, sizeof(err)) == -1)
			log_warnx("SIGHUP: configuration not reloaded: %s", err);
		return;
	case SIGTERM:
	case SIGINT:
		log_info("received %s, shutting down", strsignal(sig));
		parent_shutdown(0);
		return;
	case SIGCHLD:
		break;
	}
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < parent.nchildren; i++) {
			c = &parent.children[i];
			if (c->pid != pid || !c->alive)
				continue;
			c->alive = 0;
			if (!parent.shutting_down) {
				log_warnx("lost child %s (pid %d): %s; "
				    "shutting down", c->role->name, (int)pid,
				    proc_describe_status(status));
				parent_shutdown(1);
			} else
				log_debug("%s (pid %d) %s", c->role->name,
				    (int)pid, proc_describe_status(status));
		}
	}
	parent_check_done();
}

/*
 * Read the configuration file again.  If it parses and the daemon can
 * take it without a restart, every child gets it as at start-up (the
 * canonical text, then the daemon's items, then CONF_END) and the parent
 * keeps it; otherwise nothing changes and err says why.
 */
int
daemon_reload(char *err, size_t errlen)
{
	struct proc_child	*c;
	char			*text = NULL, first[512];
	size_t			 len = 0, i, off, n;
	int			 errors;

	if (desc->conf_begin == NULL) {
		snprintf(err, errlen, "%s cannot reload: restart it",
		    desc->name);
		return -1;
	}
	desc->conf_begin();
	errors = parent_parse_file(1, &text, &len, first, sizeof(first));
	if (errors > 0) {
		snprintf(err, errlen, "%d error%s in configuration, the first: "
		    "%s", errors, errors == 1 ? "" : "s", first);
		desc->conf_abort();
		free(text);
		return -1;
	}
	if (desc->conf_check(err, errlen) == -1) {
		desc->conf_abort();
		free(text);
		return -1;
	}
	desc->conf_end();
	free(parent.conf_text);
	parent.conf_text = text;
	parent.conf_len = len;
	for (i = 0; i < parent.nchildren; i++) {
		c = &parent.children[i];
		for (off = 0; off < len; off += n) {
			n = len - off > PROC_CONF_CHUNK ? PROC_CONF_CHUNK :
			    len - off;
			ipc_begin(&c->chan, PROC_MSG_CONF_TEXT, -1);
			ipc_add_data(&c->chan, text + off, n);
			ipc_end(&c->chan);
		}
		ipc_send_empty(&c->chan, PROC_MSG_CONF_TEXT_END);
		if (desc->send_config)
			desc->send_config(c);
		ipc_send_empty(&c->chan, PROC_MSG_CONF_END);
	}
	log_info("configuration reloaded from %s", parent.conffile);
	return 0;
}

void
daemon_shutdown(int status)
{
	parent_shutdown(status);
}

void
daemon_setverbose(int verbose)
{
	struct proc_child	*c;
	size_t			 i;

	log_setverbose(verbose);
	for (i = 0; i < parent.nchildren; i++) {
		c = &parent.children[i];
		if (!c->alive)
			continue;
		ipc_begin(&c->chan, PROC_MSG_VERBOSE, -1);
		ipc_add_u32(&c->chan, (uint32_t)verbose);
		ipc_end(&c->chan);
	}
}

/* Stop every child, wait for them, exit with status. */
static void
parent_shutdown(int status)
{
	struct timeval	 tv = { SHUTDOWN_GRACE_SECONDS, 0 };
	size_t		 i;

	if (parent.shutting_down)
		return;
	parent.shutting_down = 1;
	parent.exit_status = status;
	for (i = 0; i < parent.nchildren; i++)
		if (parent.children[i].alive)
			kill(parent.children[i].pid, SIGTERM);
	evtimer_set(&parent.ev_grace, parent_grace_expired, NULL);
	evtimer_add(&parent.ev_grace, &tv);
	parent_check_done();
}

static void
parent_grace_expired(int fd, short event, void *arg)
{
	size_t	 i;

	(void)fd;
	(void)event;
	(void)arg;
	for (i = 0; i < parent.nchildren; i++)
		if (parent.children[i].alive) {
			log_warnx("%s (pid %d) ignored SIGTERM, killing it",
			    parent.children[i].role->name,
			    (int)parent.children[i].pid);
			kill(parent.children[i].pid, SIGKILL);
		}
}

static void
parent_check_done(void)
{
	size_t	 i;

	if (!parent.shutting_down)
		return;
	for (i = 0; i < parent.nchildren; i++)
		if (parent.children[i].alive)
			return;
	log_info("%s stopped", desc->name);
	exit(parent.exit_status);
}

/*
 * Child.
 */

static void
child_main(const char *rolename, const char *user, const char *chrootdir,
    int foreground, int verbose)
{
	size_t	 i;

	log_init(desc->name, rolename, foreground, verbose);
	for (i = 0; i < desc->nroles; i++)
		if (strcmp(desc->roles[i].name, rolename) == 0)
			child.role = &desc->roles[i];
	if (child.role == NULL)
		fatalx("unknown role %s", rolename);
	proctitle_set("%s: %s", desc->name, rolename);

	if (geteuid() == 0 && user == NULL)
		fatalx("role %s started as root without a user", rolename);
	if (user != NULL && !child.role->keeps_root)
		proc_drop_privileges(user, chrootdir);
	if (fcntl(PROC_IPC_FD, F_SETFL, O_NONBLOCK) == -1)
		fatal("IPC descriptor %d", PROC_IPC_FD);

	event_init();
	/* A Ctrl-C in the terminal is the parent's to handle. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal_set(&child.ev_sigterm, SIGTERM, child_sig, NULL);
	signal_add(&child.ev_sigterm, NULL);

	ipc_chan_init(&child.chan, PROC_IPC_FD, "parent", IPC_PEER_INTERNAL,
	    desc->types, desc->ntypes, child_dispatch, child_parent_closed,
	    NULL);
	if (child.role->init)
		child.role->init(&child.chan);
	event_dispatch();
	exit(0);
}

static void
child_add_peer(const char *name, int fd)
{
	struct ipc_chan	*chan;

	if (child.npeers == PROC_MAX_PEERS)
		fatalx("too many peers");
	if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
		fatal("peer %s", name);
	child.peer_names[child.npeers] = xstrdup(name);
	chan = &child.peers[child.npeers];
	ipc_chan_init(chan, fd, child.peer_names[child.npeers],
	    IPC_PEER_INTERNAL, desc->types, desc->ntypes, child_dispatch,
	    child_peer_closed, NULL);
	child.npeers++;
}

struct ipc_chan *
proc_peer(const char *name)
{
	size_t	 i;

	for (i = 0; i < child.npeers; i++)
		if (strcmp(child.peer_names[i], name) == 0)
			return &child.peers[i];
	fatalx("no peer %s", name);
}

/*
 * A peer only goes away by dying, and the parent then stops the whole
 * daemon: wait for that rather than exit, so that the parent's log names
 * the process that died first, not us.
 */
static void
child_peer_closed(struct ipc_chan *chan)
{
	log_debug("lost peer %s, waiting to be stopped", chan->peer);
}

/* The parent checked these statements: an error here is a bug. */
static void
child_parse_config(void)
{
	struct conf	 cf;

	conf_init(&cf);
	cf.shipped = 1;
	conf_open_buffer(&cf, "configuration from parent", child.conf_text,
	    child.conf_len);
	while (conf_next_statement(&cf))
		desc->parse(&cf);
	if (cf.errors)
		fatalx("configuration from the parent does not parse");
	conf_free(&cf);
	free(child.conf_text);
	child.conf_text = NULL;
	child.conf_len = 0;
}

static int
child_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	const void	*p;
	size_t		 len;

	/* Peers speak the daemon's messages, never the framework's. */
	if (chan != &child.chan && msg->type < PROC_MSG_DAEMON_FIRST)
		return -1;
	switch (msg->type) {
	case PROC_MSG_VERBOSE:
		log_setverbose((int)ipc_get_u32(msg));
		ipc_get_end(msg);
		return 0;
	case PROC_MSG_CONF_TEXT:
		p = ipc_get_data(msg, &len);
		ipc_get_end(msg);
		child.conf_text = xreallocarray(child.conf_text, 1,
		    child.conf_len + len);
		memcpy(child.conf_text + child.conf_len, p, len);
		child.conf_len += len;
		return 0;
	case PROC_MSG_CONF_TEXT_END:
		ipc_get_end(msg);
		if (child.configured) {
			/* A reload: only a daemon that can reload sends one. */
			if (desc->conf_begin == NULL)
				return -1;
			desc->conf_begin();
		}
		child_parse_config();
		return 0;
	case PROC_MSG_PEER:
		if (chan != &child.chan)
			return -1;	/* only the parent hands out peers */
		child_add_peer(ipc_get_string(msg), msg->fd);
		ipc_get_end(msg);
		return 0;
	case PROC_MSG_CONF_END:
		ipc_get_end(msg);
		if (chan != &child.chan)
			return -1;
		if (child.configured) {
			if (child.role->reconfigured)
				child.role->reconfigured(chan);
			desc->conf_end();
			log_debug("reconfigured");
			return 0;
		}
		child.configured = 1;
		if (child.role->configured)
			child.role->configured(chan);
		ipc_send_empty(chan, PROC_MSG_READY);
		log_debug("ready");
		return 0;
	default:
		if (child.role->dispatch == NULL)
			return -1;
		return child.role->dispatch(chan, msg);
	}
}

static void
child_parent_closed(struct ipc_chan *chan)
{
	(void)chan;
	log_debug("parent is gone, exiting");
	exit(0);
}

static void
child_sig(int sig, short event, void *arg)
{
	(void)sig;
	(void)event;
	(void)arg;
	exit(0);
}
