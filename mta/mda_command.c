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
#include <poll.h>
#include <stdlib.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mtad.h"

#define EX_TEMPFAIL	75
#define COMMAND_MAX	4096

/* The command's process group, killed with the worker on a timeout. */
static volatile pid_t	 command_pgid;

static void
command_timeout(int sig)
{
	(void)sig;
	if (command_pgid > 0)
		kill(-command_pgid, SIGKILL);
	_exit(DELIVERY_TEMPFAIL);
}

static void
relay(int msgfd, int to, int from, const struct envelope *e, char *out,
    size_t outlen)
{
	struct pollfd	 pfd[2];
	char		 buf[4096], *msg = NULL;
	size_t		 msglen = 0, sent = 0, kept = 0;
	ssize_t		 n;
	FILE		*mem;

	/* The whole message, as delivered, in memory: it is bounded by
	 * the maximum message size, and it keeps the loop simple. */
	if ((mem = open_memstream(&msg, &msglen)) != NULL) {
		mda_copy_message(msgfd, mem, e, MDA_COPY_PLAIN);
		fclose(mem);
	}
	out[0] = '\0';
	pfd[0].fd = to;
	pfd[0].events = POLLOUT;
	pfd[1].fd = from;
	pfd[1].events = POLLIN;
	if (msg == NULL) {
		close(to);
		pfd[0].fd = -1;
	}
	while (pfd[1].fd != -1) {
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].fd != -1 && pfd[0].revents) {
			n = write(to, msg + sent, msglen - sent);
			if (n > 0)
				sent += (size_t)n;
			if (n <= 0 || sent == msglen) {
				/* done, or the command stopped reading */
				close(to);
				pfd[0].fd = -1;
			}
		}
		if (pfd[1].revents) {
			if ((n = read(from, buf, sizeof(buf))) <= 0)
				pfd[1].fd = -1;
			else if (kept + 1 < outlen) {
				if ((size_t)n > outlen - kept - 1)
					n = (ssize_t)(outlen - kept - 1);
				memcpy(out + kept, buf, (size_t)n);
				kept += (size_t)n;
				out[kept] = '\0';
			}
		}
	}
	if (pfd[0].fd != -1)
		close(to);
	free(msg);
	out[strcspn(out, "\r\n")] = '\0';
}

enum delivery_result
mda_command(const struct action *a, const struct envelope *e,
    const struct passwd *pw, int msgfd, char *err, size_t errlen)
{
	char		 cmd[COMMAND_MAX], out[256];
	int		 in[2], errp[2], status, devnull;
	pid_t		 pid;

	if (expand_format(cmd, sizeof(cmd), a->arg, e, pw, EXPAND_COMMAND)) {
		snprintf(err, errlen, "550 5.3.5 bad mda command %s", a->arg);
		return DELIVERY_PERMFAIL;
	}
	if (pipe(in) == -1 || pipe(errp) == -1 || (pid = fork()) == -1) {
		snprintf(err, errlen, "451 4.3.0 mda: %s", strerror(errno));
		return DELIVERY_TEMPFAIL;
	}
	if (pid == 0) {
		setpgid(0, 0);
		devnull = open("/dev/null", O_WRONLY);
		if (devnull == -1 || dup2(in[0], 0) == -1 ||
		    dup2(devnull, 1) == -1 || dup2(errp[1], 2) == -1)
			_exit(EX_TEMPFAIL);
		close(devnull);
		close(in[0]);
		close(in[1]);
		close(errp[0]);
		close(errp[1]);
		close(msgfd);
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(EX_TEMPFAIL);
	}
	setpgid(pid, pid);
	command_pgid = pid;
	signal(SIGALRM, command_timeout);
	close(in[0]);
	close(errp[1]);
	/*
	 * The message goes in through the pipe while what the command says
	 * comes out of the other: both at once, so that neither side can
	 * block the other, and all of it, so that no write of the command
	 * fails.  The first line is kept as the reason.
	 */
	relay(msgfd, in[1], errp[0], e, out, sizeof(out));
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
