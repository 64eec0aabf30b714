/*
 * mda delivery: the message on the standard input of a command run by
 * /bin/sh as the user.  Exit 0 is success, 75 (EX_TEMPFAIL) or a signal
 * a temporary failure, anything else a permanent one; the first line the
 * command writes on its standard error explains it.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mtad.h"

#define EX_TEMPFAIL	75
#define COMMAND_MAX	4096

enum delivery_result
mda_command(const struct action *a, const struct envelope *e,
    const struct passwd *pw, int msgfd, char *err, size_t errlen)
{
	char		 cmd[COMMAND_MAX], out[256];
	int		 in[2], errp[2], status, devnull;
	ssize_t		 n;
	pid_t		 pid;
	FILE		*fp;

	if (expand_format(cmd, sizeof(cmd), a->arg, e, pw, EXPAND_COMMAND)) {
		snprintf(err, errlen, "550 5.3.5 bad mda command %s", a->arg);
		return DELIVERY_PERMFAIL;
	}
	if (pipe(in) == -1 || pipe(errp) == -1 || (pid = fork()) == -1) {
		snprintf(err, errlen, "451 4.3.0 mda: %s", strerror(errno));
		return DELIVERY_TEMPFAIL;
	}
	if (pid == 0) {
		devnull = open("/dev/null", O_WRONLY);
		if (dup2(in[0], 0) == -1 || dup2(devnull, 1) == -1 ||
		    dup2(errp[1], 2) == -1)
			_exit(EX_TEMPFAIL);
		close(in[0]);
		close(in[1]);
		close(errp[0]);
		close(errp[1]);
		close(msgfd);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(EX_TEMPFAIL);
	}
	close(in[0]);
	close(errp[1]);
	/* A command may stop reading early: its exit status decides. */
	if ((fp = fdopen(in[1], "w")) != NULL) {
		mda_copy_message(msgfd, fp, e, MDA_COPY_PLAIN);
		fclose(fp);
	} else
		close(in[1]);
	n = read(errp[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	close(errp[0]);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			snprintf(err, errlen, "451 4.3.0 mda: lost the command");
			return DELIVERY_TEMPFAIL;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return DELIVERY_OK;
	if (WIFEXITED(status) && WEXITSTATUS(status) != EX_TEMPFAIL) {
		snprintf(err, errlen, "550 5.3.0 mda exited %d%s%s",
		    WEXITSTATUS(status), out[0] ? ": " : "", out);
		return DELIVERY_PERMFAIL;
	}
	snprintf(err, errlen, "451 4.3.0 mda %s%s%s", WIFEXITED(status) ?
	    "exited 75" : "killed by a signal", out[0] ? ": " : "", out);
	return DELIVERY_TEMPFAIL;
}
