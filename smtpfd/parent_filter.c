/*
 * The parent's side of exec filters: it starts each one's process and
 * hands the engine its end of the process's stdin and stdout.
 *
 * A filter process gets one end of a socketpair as its stdin and stdout
 * and a pipe as its stderr, whose lines the parent logs under the
 * filter's name.  It runs in a session of its own, chrooted if so
 * configured, as its user and group (default: smtpfd's unprivileged
 * user; never root), with a clean environment (PATH=/usr/bin:/bin and
 * the configured variables), as "/bin/sh -c 'exec COMMAND'".  A command
 * not starting with '/' is looked for in /usr/libexec/opensmtpd/ first,
 * where Debian puts the filters packaged for OpenSMTPD.
 *
 * The engine asks for a filter to be started again (FILTER_RESTART) when
 * its process died or misbehaved; it paces the requests itself.  A
 * process that cannot be started is given to the engine as a socket
 * already at end of file: to the engine it is a filter that died at
 * once.  lib/daemon.c reaps every child and ignores the pids it does not
 * know; the parent sees a filter's end through a pidfd, which also makes
 * killing it safe from pid reuse.
 */
#include <sys/types.h>
#include <sys/pidfd.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "smtpfd.h"
#include "xmalloc.h"

#define FILTER_LIBEXEC	"/usr/libexec/opensmtpd"
#define FILTER_PATH	"PATH=/usr/bin:/bin"
#define STDERR_LINE_MAX	1024

struct fproc {
	TAILQ_ENTRY(fproc)	 entry;
	char			*name;
	pid_t			 pid;
	int			 current;	/* of the current config */
	int			 pidfd;		/* -1: it has ended */
	int			 errfd;		/* -1: stderr closed */
	struct event		 ev_pid;
	struct event		 ev_err;
	char			 buf[STDERR_LINE_MAX];
	size_t			 len;
};

static TAILQ_HEAD(, fproc)	 fprocs = TAILQ_HEAD_INITIALIZER(fprocs);
static struct proc_child	*engine_child;

static void	 fproc_free(struct fproc *);

static void
fproc_log_line(struct fproc *p)
{
	p->buf[p->len] = '\0';
	log_warnx("filter %s: %s", p->name, p->buf);
	p->len = 0;
}

/* Lines the filter writes on its stderr. */
static void
fproc_stderr(int fd, short event, void *arg)
{
	struct fproc	*p = arg;
	char		 chunk[512];
	ssize_t		 n, i;

	(void)event;
	if ((n = read(fd, chunk, sizeof(chunk))) == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		n = 0;
	}
	for (i = 0; i < n; i++) {
		if (chunk[i] == '\n') {
			fproc_log_line(p);
			continue;
		}
		if (p->len == sizeof(p->buf) - 1)
			fproc_log_line(p);
		p->buf[p->len++] = chunk[i];
	}
	if (n > 0)
		return;
	if (p->len > 0)
		fproc_log_line(p);
	event_del(&p->ev_err);
	close(p->errfd);
	p->errfd = -1;
	if (p->pidfd == -1)
		fproc_free(p);
}

/* The process has ended (lib/daemon.c has reaped it). */
static void
fproc_ended(int fd, short event, void *arg)
{
	struct fproc	*p = arg;

	(void)fd;
	(void)event;
	log_info("filter %s: process %d ended", p->name, (int)p->pid);
	event_del(&p->ev_pid);
	close(p->pidfd);
	p->pidfd = -1;
	p->current = 0;
	if (p->errfd == -1)
		fproc_free(p);
}

static void
fproc_free(struct fproc *p)
{
	TAILQ_REMOVE(&fprocs, p, entry);
	free(p->name);
	free(p);
}

static void
fproc_kill(struct fproc *p, int sig)
{
	if (p->pidfd != -1 && pidfd_send_signal(p->pidfd, sig, NULL, 0) == -1 &&
	    errno != ESRCH)
		log_warn("filter %s: signal to process %d", p->name,
		    (int)p->pid);
}

/* The daemon stops: so do the filters. */
static void
fprocs_stop(void)
{
	struct fproc	*p;

	TAILQ_FOREACH(p, &fprocs, entry)
		fproc_kill(p, SIGTERM);
}

/*
 * In the child, between fork and exec: become what the filter runs as.
 * Nothing here returns on failure; stderr is the parent's pipe by then.
 */
static void __attribute__((noreturn))
child_exec(const struct filter_conf *fc, const struct passwd *pw, gid_t gid)
{
	char		**envp, *cmd, *first, *path;
	size_t		 i, n, len;
	sigset_t	 all;
	int		 sig;

	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (setsid() == -1)
		goto fail;
	if (pw != NULL) {
		if (fc->chroot != NULL && (chroot(fc->chroot) == -1 ||
		    chdir("/") == -1))
			goto fail;
		if (setgroups(1, &gid) == -1 ||
		    setresgid(gid, gid, gid) == -1 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
			goto fail;
		if (setuid(0) != -1 || geteuid() == 0) {
			fprintf(stderr, "privileges still held\n");
			_exit(127);
		}
	}

	/* The environment: PATH, then the configured variables. */
	n = 0;
	envp = calloc(fc->nenv + 2, sizeof(*envp));
	if (envp == NULL)
		goto fail;
	envp[n++] = FILTER_PATH;
	for (i = 0; i < fc->nenv; i++) {
		if (strncmp(fc->env[i], "PATH=", 5) == 0)
			envp[0] = fc->env[i];
		else
			envp[n++] = fc->env[i];
	}
	envp[n] = NULL;

	/* "filter-rspamd -url ...": /usr/libexec/opensmtpd/filter-rspamd */
	len = strlen(fc->command) + sizeof(FILTER_LIBEXEC) + 16;
	if ((cmd = malloc(len)) == NULL || (first = strdup(fc->command)) ==
	    NULL || (path = malloc(len)) == NULL)
		goto fail;
	first[strcspn(first, " \t")] = '\0';
	snprintf(path, len, "%s/%s", FILTER_LIBEXEC, first);
	if (fc->command[0] != '/' && strchr(first, '/') == NULL &&
	    access(path, X_OK) == 0)
		snprintf(cmd, len, "exec %s/%s", FILTER_LIBEXEC, fc->command);
	else
		snprintf(cmd, len, "exec %s", fc->command);
	execle("/bin/sh", "sh", "-c", cmd, (char *)NULL, envp);
 fail:
	fprintf(stderr, "cannot start: %s\n", strerror(errno));
	_exit(127);
}

/*
 * Who the filter runs as; NULL (and why) when it may not run.  Not
 * started as root, the process keeps smtpfd's own user.
 */
static const struct passwd *
filter_user(const struct filter_conf *fc, gid_t *gid, char *why,
    size_t size)
{
	const char	*user = fc->user ? fc->user : smtpfd_conf->proc.user;
	struct passwd	*pw;
	struct group	*gr;

	if (geteuid() != 0)
		return NULL;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(why, size, "unknown user %s", user);
		return NULL;
	}
	if (pw->pw_uid == 0) {
		snprintf(why, size, "refusing to run as %s: uid 0", user);
		return NULL;
	}
	*gid = pw->pw_gid;
	if (fc->group != NULL) {
		if ((gr = getgrnam(fc->group)) == NULL) {
			snprintf(why, size, "unknown group %s", fc->group);
			return NULL;
		}
		if (gr->gr_gid == 0) {
			snprintf(why, size, "refusing to run as group %s: "
			    "gid 0", fc->group);
			return NULL;
		}
		*gid = gr->gr_gid;
	}
	return pw;
}

/* Start one filter's process; -1 (logged) if it could not be. */
static int
fproc_start(const struct filter_conf *fc, int childfd)
{
	const struct passwd	*pw;
	struct fproc		*p;
	char			 why[256];
	gid_t			 gid = 0;
	pid_t			 pid;
	int			 ep[2], pidfd;

	why[0] = '\0';
	pw = filter_user(fc, &gid, why, sizeof(why));
	if (why[0] != '\0') {
		log_warnx("filter %s: %s", fc->name, why);
		return -1;
	}
	if (pipe2(ep, O_CLOEXEC) == -1) {
		log_warn("filter %s: pipe", fc->name);
		return -1;
	}
	switch ((pid = fork())) {
	case -1:
		log_warn("filter %s: fork", fc->name);
		close(ep[0]);
		close(ep[1]);
		return -1;
	case 0:
		if (dup2(childfd, STDIN_FILENO) == -1 ||
		    dup2(childfd, STDOUT_FILENO) == -1 ||
		    dup2(ep[1], STDERR_FILENO) == -1)
			_exit(127);
		if (close_range(STDERR_FILENO + 1, ~0U, 0) == -1)
			_exit(127);
		child_exec(fc, pw, gid);
	default:
		break;
	}
	close(ep[1]);
	if ((pidfd = pidfd_open(pid, 0)) == -1 ||
	    fcntl(ep[0], F_SETFL, O_NONBLOCK) == -1) {
		/* Out of descriptors: the engine sees it dead, restarts it. */
		log_warn("filter %s", fc->name);
		kill(pid, SIGKILL);
		if (pidfd != -1)
			close(pidfd);
		close(ep[0]);
		return -1;
	}
	p = xcalloc(1, sizeof(*p));
	p->name = xstrdup(fc->name);
	p->pid = pid;
	p->current = 1;
	p->pidfd = pidfd;
	p->errfd = ep[0];
	event_set(&p->ev_pid, pidfd, EV_READ | EV_PERSIST, fproc_ended, p);
	event_add(&p->ev_pid, NULL);
	event_set(&p->ev_err, ep[0], EV_READ | EV_PERSIST, fproc_stderr, p);
	event_add(&p->ev_err, NULL);
	if (TAILQ_EMPTY(&fprocs))
		atexit(fprocs_stop);
	TAILQ_INSERT_TAIL(&fprocs, p, entry);
	log_info("filter %s: started process %d: %s", fc->name, (int)pid,
	    fc->command);
	return 0;
}

/* Start it and send the engine its socket (dead if it did not start). */
static void
filter_spawn(const struct filter_conf *fc)
{
	struct ipc_chan	*chan = &engine_child->chan;
	int		 sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1) {
		/* Nothing to give the engine: it waits, then tempfails. */
		log_warn("filter %s: socketpair", fc->name);
		return;
	}
	(void)fproc_start(fc, sp[1]);
	close(sp[1]);
	ipc_begin(chan, SMTPFD_MSG_FILTER_PROC, sp[0]);
	ipc_add_string(chan, fc->name);
	ipc_end(chan);
}

/*
 * At start and at each reload: a process for every exec filter of the
 * configuration.  After a reload the old ones serve the sessions still
 * on the old chains; they end when the engine closes their sockets.
 */
void
parent_filters_start(struct proc_child *engine)
{
	struct filter_conf	*fc;
	struct fproc		*p;

	engine_child = engine;
	TAILQ_FOREACH(p, &fprocs, entry)
		p->current = 0;
	TAILQ_FOREACH(fc, &smtpfd_conf->filters, entry)
		if (fc->kind == FILTER_EXEC)
			filter_spawn(fc);
}

/* The engine gave up on a filter's process: a new one. */
int
parent_filter_restart(const char *name)
{
	struct filter_conf	*fc;
	struct fproc		*p;

	if (engine_child == NULL || (fc = filter_conf_find(name)) == NULL ||
	    fc->kind != FILTER_EXEC)
		return -1;
	TAILQ_FOREACH(p, &fprocs, entry)
		if (p->current && strcmp(p->name, name) == 0) {
			log_info("filter %s: killing process %d", p->name,
			    (int)p->pid);
			fproc_kill(p, SIGKILL);
			p->current = 0;
		}
	filter_spawn(fc);
	return 0;
}
