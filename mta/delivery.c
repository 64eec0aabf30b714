/*
 * The delivery process: local delivery of one envelope at a time per
 * worker.  It keeps root for one reason: each delivery runs in a forked
 * worker that becomes the recipient's user before it touches a mailbox or
 * runs a command.  It talks to nothing but the queue process, never to
 * the network, and resolves an envelope's action by name from the
 * current configuration, so a changed action applies to mail already
 * queued.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <limits.h>
#include <event.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mtad.h"
#include "xmalloc.h"

struct worker {
	TAILQ_ENTRY(worker)	 entry;
	pid_t			 pid;
	uint64_t		 evpid;
	int			 errfd;
};

static TAILQ_HEAD(, worker)	 workers = TAILQ_HEAD_INITIALIZER(workers);
static struct event		 ev_sigchld;

static void	 delivery_reap(int, short, void *);

void
delivery_init(struct ipc_chan *parent)
{
	(void)parent;
	signal_set(&ev_sigchld, SIGCHLD, delivery_reap, NULL);
	signal_add(&ev_sigchld, NULL);
}

void
delivery_configured(struct ipc_chan *parent)
{
	(void)parent;
	if (geteuid() != 0)
		log_info("not root: local deliveries run as uid %u",
		    (unsigned)getuid());
}

static void
delivery_report(uint64_t evpid, enum delivery_result r, const char *error)
{
	struct ipc_chan	*queue = proc_peer("queue");

	ipc_begin(queue, MTAD_MSG_DELIVERED, -1);
	ipc_add_u64(queue, evpid);
	ipc_add_u32(queue, (uint32_t)r);
	ipc_add_string(queue, error);
	ipc_end(queue);
}

/* Whom the delivery runs as; NULL with a reason when nobody. */
static struct passwd *
delivery_user(const struct action *a, const struct envelope *e,
    enum delivery_result *r, char *err, size_t errlen)
{
	const char	*name = a->user ? a->user : e->dest;
	struct passwd	*pw;

	if (geteuid() != 0)
		return getpwuid(getuid());
	if ((pw = getpwnam(name)) == NULL) {
		*r = DELIVERY_PERMFAIL;
		snprintf(err, errlen, "550 5.1.1 user unknown: %s", name);
		return NULL;
	}
	if (pw->pw_uid == 0) {
		*r = DELIVERY_PERMFAIL;
		snprintf(err, errlen, "550 5.1.1 refusing to deliver as root "
		    "(alias %s to a user)", name);
		return NULL;
	}
	return pw;
}

/*
 * Open path without following a symbolic link anywhere in it: as root, a
 * link planted by a user in a directory of the path must not redirect a
 * write.  Returns a descriptor or -1 with errno.
 */
static int
open_nofollow(const char *path, int flags, mode_t mode)
{
	char	 buf[PATH_MAX], *p, *slash;
	int	 dfd, fd;

	if (path[0] != '/' || strlen(path) >= sizeof(buf)) {
		errno = EINVAL;
		return -1;
	}
	strcpy(buf, path);
	if ((dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	for (p = buf + 1; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		*slash = '\0';
		if (*p == '\0' || strcmp(p, ".") == 0)
			continue;
		fd = openat(dfd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		close(dfd);
		if (fd == -1)
			return -1;
		dfd = fd;
	}
	fd = openat(dfd, p, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	close(dfd);
	return fd;
}

/* As root: open (or create for the user) the mbox, before dropping. */
static int
mbox_open(const struct action *a, const struct envelope *e,
    const struct passwd *pw, char *err, size_t errlen)
{
	char		 path[PATH_MAX];
	struct stat	 sb;
	int		 fd, created = 1;

	if (expand_format(path, sizeof(path), a->arg, e, pw, EXPAND_PATH)) {
		snprintf(err, errlen, "bad mbox path %s", a->arg);
		return -1;
	}
	fd = open_nofollow(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL, 0600);
	if (fd == -1 && errno == EEXIST) {
		created = 0;
		fd = open_nofollow(path, O_WRONLY | O_APPEND, 0);
	}
	if (fd == -1) {
		snprintf(err, errlen, "%.200s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%.200s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (geteuid() == 0) {
		if (created && fchown(fd, pw->pw_uid, pw->pw_gid) == -1) {
			snprintf(err, errlen, "%.200s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (!created && sb.st_uid != pw->pw_uid) {
			snprintf(err, errlen, "%.200s: owned by uid %u, not %s",
			    path, (unsigned)sb.st_uid, pw->pw_name);
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* In the worker: become the user for good. */
static int
become(const struct passwd *pw)
{
	if (geteuid() != 0)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		return -1;
	return setuid(0) == -1 ? 0 : -1;
}

/*
 * A worker runs user commands: it must hold no descriptor of ours but
 * the message and its error pipe (not the IPC channels above all).
 * Both are above 3, which is the parent's channel.
 */
static void
close_others(int a, int b)
{
	int	 lo = a < b ? a : b, hi = a < b ? b : a;

	if (lo <= 3)
		_exit(DELIVERY_TEMPFAIL);
	close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1, ~0U, 0);
}

static void __attribute__((noreturn))
worker_main(const struct action *a, const struct envelope *e,
    const struct passwd *pw, int msgfd, int errfd)
{
	enum delivery_result	 r = DELIVERY_TEMPFAIL;
	char			 err[512] = "";
	int			 mboxfd = -1;

	close_others(msgfd, errfd);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	alarm(DELIVERY_TIMEOUT);
	if (a->kind == ACTION_MBOX &&
	    (mboxfd = mbox_open(a, e, pw, err, sizeof(err))) == -1) {
		r = DELIVERY_TEMPFAIL;
		goto done;
	}
	if (become(pw) == -1) {
		snprintf(err, sizeof(err), "cannot become %s", pw->pw_name);
		goto done;
	}
	clearenv();
	setenv("HOME", pw->pw_dir, 1);
	setenv("USER", pw->pw_name, 1);
	setenv("LOGNAME", pw->pw_name, 1);
	setenv("SHELL", "/bin/sh", 1);
	setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
	if (chdir(pw->pw_dir) == -1 && chdir("/") == -1)
		goto done;
	umask(077);
	switch (a->kind) {
	case ACTION_MAILDIR:
		r = mda_maildir(a, e, pw, msgfd, err, sizeof(err));
		break;
	case ACTION_MBOX:
		r = mda_mbox(a, e, pw, msgfd, mboxfd, err, sizeof(err));
		break;
	case ACTION_MDA:
		r = mda_command(a, e, pw, msgfd, err, sizeof(err));
		break;
	case ACTION_LMTP:
		r = mda_lmtp(a, e, pw, msgfd, err, sizeof(err));
		break;
	}
done:
	(void)!write(errfd, err, strlen(err));
	_exit((int)r);
}

static void
delivery_start(uint64_t evpid, const char *text, int msgfd)
{
	enum delivery_result	 r = DELIVERY_TEMPFAIL;
	const struct action	*a;
	struct envelope		 e;
	struct passwd		*pw;
	struct worker		*w;
	char			 err[512];
	int			 fds[2];
	pid_t			 pid;

	if (envelope_load(&e, text, strlen(text)) == -1 || e.id != evpid)
		fatalx("queue sent a bad envelope for %016" PRIx64, evpid);
	if ((a = action_find(e.action)) == NULL) {
		close(msgfd);
		snprintf(err, sizeof(err), "451 4.3.0 action \"%s\" is not "
		    "in the configuration", e.action);
		delivery_report(evpid, DELIVERY_TEMPFAIL, err);
		return;
	}
	if ((pw = delivery_user(a, &e, &r, err, sizeof(err))) == NULL) {
		close(msgfd);
		delivery_report(evpid, r, err);
		return;
	}
	if (pipe2(fds, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		log_warn("delivery worker");
		close(msgfd);
		delivery_report(evpid, DELIVERY_TEMPFAIL, "451 4.3.0 cannot "
		    "start a delivery");
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		worker_main(a, &e, pw, msgfd, fds[1]);
	}
	close(fds[1]);
	close(msgfd);
	w = xcalloc(1, sizeof(*w));
	w->pid = pid;
	w->evpid = evpid;
	w->errfd = fds[0];
	TAILQ_INSERT_TAIL(&workers, w, entry);
}

static void
delivery_reap(int sig, short event, void *arg)
{
	struct worker		*w;
	enum delivery_result	 r;
	char			 err[512];
	ssize_t			 n;
	pid_t			 pid;
	int			 status;

	(void)sig;
	(void)event;
	(void)arg;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		TAILQ_FOREACH(w, &workers, entry)
			if (w->pid == pid)
				break;
		if (w == NULL)
			continue;
		TAILQ_REMOVE(&workers, w, entry);
		n = read(w->errfd, err, sizeof(err) - 1);
		err[n > 0 ? n : 0] = '\0';
		close(w->errfd);
		if (WIFEXITED(status) && WEXITSTATUS(status) <= DELIVERY_PERMFAIL)
			r = (enum delivery_result)WEXITSTATUS(status);
		else {
			r = DELIVERY_TEMPFAIL;
			snprintf(err, sizeof(err), "451 4.3.0 delivery %s",
			    WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ?
			    "timed out" : proc_describe_status(status));
		}
		if (r != DELIVERY_OK && err[0] == '\0')
			snprintf(err, sizeof(err), "451 4.3.0 delivery failed");
		delivery_report(w->evpid, r, err);
		free(w);
	}
}

int
delivery_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	const char	*text;
	uint64_t	 evpid;

	if (msg->type != MTAD_MSG_DELIVER || strcmp(chan->peer, "queue") != 0)
		return -1;
	evpid = ipc_get_u64(msg);
	text = ipc_get_string(msg);
	ipc_get_end(msg);
	delivery_start(evpid, text, msg->fd);
	return 0;
}
