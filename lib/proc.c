/*
 * Starting children and taking their privileges away.
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

int	 proc_chrooted;

/*
 * LeakSanitizer reads /proc/self/task at exit, which a chrooted process
 * cannot see and a process that changed uid may not read.  In sanitizer
 * builds started as root, children therefore skip the leak check; the
 * tests run unprivileged cover them.
 */
void
proc_sanitizer_env(void)
{
#if defined(__SANITIZE_ADDRESS__)
	const char	*old = getenv("ASAN_OPTIONS");
	char		 buf[1024];

	if (geteuid() != 0)
		return;
	snprintf(buf, sizeof(buf), "%s%sdetect_leaks=0", old ? old : "",
	    old && *old ? ":" : "");
	setenv("ASAN_OPTIONS", buf, 1);
#endif
}

/*
 * Fork and re-execute self with argv.  In the child, ipcfd becomes
 * descriptor 3 and every other descriptor but stdin/stdout/stderr is
 * closed, so nothing else leaks across the exec.
 */
pid_t
proc_spawn(const char *self, char *const argv[], int ipcfd)
{
	sigset_t	 all;
	pid_t		 pid;
	int		 sig;

	switch ((pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		return pid;
	}

	if (ipcfd == PROC_IPC_FD) {
		if (fcntl(ipcfd, F_SETFD, 0) == -1)
			_exit(127);
	} else if (dup2(ipcfd, PROC_IPC_FD) == -1)
		_exit(127);
	if (close_range(PROC_IPC_FD + 1, ~0U, 0) == -1)
		_exit(127);
	/* libevent's signal handling must not carry over. */
	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	proc_sanitizer_env();
	execv(self, argv);
	fprintf(stderr, "exec %s: %s\n", self, strerror(errno));
	_exit(127);
}

/*
 * Become user (and chroot first when a directory is given).  Without
 * root there is nothing to drop: the caller has logged that already.
 */
void
proc_drop_privileges(const char *user, const char *chrootdir)
{
	struct passwd	*pw;

	if (geteuid() != 0)
		return;
	if ((pw = getpwnam(user)) == NULL)
		fatalx("unknown user %s", user);
	if (pw->pw_uid == 0)
		fatalx("refusing to run children as %s: uid 0", user);
	if (chrootdir != NULL) {
		if (chroot(chrootdir) == -1)
			fatal("chroot %s", chrootdir);
		if (chdir("/") == -1)
			fatal("chdir /");
		proc_chrooted = 1;
	}
	if (setgroups(1, &pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		fatal("cannot drop privileges to %s", user);
	if (setuid(0) != -1 || geteuid() == 0)
		fatalx("privileges still held after dropping them");
}

/*
 * The chroot of unprivileged children must be empty of anything useful
 * and unwritable by them: create it if missing, refuse it if it is not
 * owned by root or is writable by others.
 */
void
proc_prepare_chroot(const char *dir)
{
	struct stat	 sb;

	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		fatal("mkdir %s", dir);
	if (stat(dir, &sb) == -1)
		fatal("stat %s", dir);
	if (!S_ISDIR(sb.st_mode))
		fatalx("chroot %s: not a directory", dir);
	if (sb.st_uid != 0 || (sb.st_mode & (S_IWGRP | S_IWOTH)))
		fatalx("chroot %s: must be owned by root and not writable "
		    "by group or others", dir);
}

const char *
proc_describe_status(int status)
{
	static char	 buf[64];

	if (WIFSIGNALED(status))
		snprintf(buf, sizeof(buf), "killed by signal %d (%s)%s",
		    WTERMSIG(status), strsignal(WTERMSIG(status)),
		    WCOREDUMP(status) ? ", core dumped" : "");
	else if (WIFEXITED(status))
		snprintf(buf, sizeof(buf), "exited with status %d",
		    WEXITSTATUS(status));
	else
		snprintf(buf, sizeof(buf), "status 0x%x", status);
	return buf;
}
