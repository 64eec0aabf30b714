/*
 * ipc_inject: play the parent of a re-executed daemon child and send it
 * one scenario of IPC bytes, then report how the child ended.
 *
 *	ipc_inject [-c statements] [-u user] BINARY ROLE SCENARIO
 *
 * -c gives the configuration statements a valid scenario ships.
 * Scenarios: valid (configure it and expect READY), unknown-type,
 * wrong-length, trailing-bytes, ill-typed, truncated.  Prints "READY"
 * when the child reported ready, then "exit N" or "signal N".  The
 * child's own log goes to stderr.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "proc.h"

static size_t
put_msg(uint8_t *buf, uint32_t type, uint32_t len, const void *payload,
    size_t plen)
{
	struct ipc_hdr	 hdr = { type, 0, len };

	memcpy(buf, &hdr, sizeof(hdr));
	memcpy(buf + sizeof(hdr), payload, plen);
	return sizeof(hdr) + plen;
}

static size_t
verbose_payload(uint8_t *p)
{
	uint32_t	 v = 0;

	p[0] = IPC_FIELD_U32;
	memcpy(p + 1, &v, 4);
	return 5;
}

static size_t
scenario(const char *name, const char *conf, uint8_t *buf, int *close_after)
{
	uint8_t	 p[1024];
	size_t	 n, len;
	uint32_t clen;

	*close_after = 0;
	n = verbose_payload(p);
	if (strcmp(name, "valid") == 0) {
		len = put_msg(buf, PROC_MSG_VERBOSE, (uint32_t)n, p, n);
		clen = (uint32_t)strlen(conf);
		if (clen > sizeof(p) - 5)
			exit(2);
		p[0] = IPC_FIELD_DATA;
		memcpy(p + 1, &clen, 4);
		memcpy(p + 5, conf, clen);
		len += put_msg(buf + len, PROC_MSG_CONF_TEXT, clen + 5, p,
		    clen + 5);
		len += put_msg(buf + len, PROC_MSG_CONF_TEXT_END, 0, "", 0);
		return len + put_msg(buf + len, PROC_MSG_CONF_END, 0, "", 0);
	}
	if (strcmp(name, "unknown-type") == 0)
		return put_msg(buf, 4242, 0, "", 0);
	if (strcmp(name, "wrong-length") == 0)	/* header says 3 of 5 */
		return put_msg(buf, PROC_MSG_VERBOSE, 3, p, 3);
	if (strcmp(name, "trailing-bytes") == 0) {
		p[n++] = 'x';
		return put_msg(buf, PROC_MSG_VERBOSE, (uint32_t)n, p, n);
	}
	if (strcmp(name, "ill-typed") == 0) {
		p[0] = IPC_FIELD_STRING;	/* a "string" where a u32 goes */
		return put_msg(buf, PROC_MSG_VERBOSE, (uint32_t)n, p, n);
	}
	if (strcmp(name, "truncated") == 0) {
		*close_after = 1;	/* header promises 5 bytes, 2 come */
		return put_msg(buf, PROC_MSG_VERBOSE, 5, p, 2);
	}
	fprintf(stderr, "unknown scenario %s\n", name);
	exit(2);
}

int
main(int argc, char **argv)
{
	const char	*user = NULL, *conf = "";
	char		*cargv[8], *text = NULL;
	uint8_t		 buf[2048];
	struct ipc_hdr	 hdr;
	struct pollfd	 pfd;
	size_t		 len;
	pid_t		 pid;
	int		 sp[2], ch, status, close_after, i, cargc = 0;

	while ((ch = getopt(argc, argv, "c:u:")) != -1) {
		if (ch == 'c') {
			/* one statement per line, as the parent ships them */
			if (asprintf(&text, "%s\n", optarg) == -1)
				return 2;
			conf = text;
		} else if (ch == 'u')
			user = optarg;
		else
			return 2;
	}
	argc -= optind;
	argv += optind;
	if (argc != 3) {
		fprintf(stderr, "usage: ipc_inject [-c conf] [-u user] binary role "
		    "scenario\n");
		return 2;
	}
	len = scenario(argv[2], conf, buf, &close_after);
	free(text);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		return 2;
	cargv[cargc++] = argv[0];
	cargv[cargc++] = "-d";
	cargv[cargc++] = "-R";
	cargv[cargc++] = argv[1];
	if (user) {
		cargv[cargc++] = "-u";
		cargv[cargc++] = (char *)user;
	}
	cargv[cargc] = NULL;
	if ((pid = fork()) == 0) {
		dup2(sp[1], PROC_IPC_FD);
		close_range(PROC_IPC_FD + 1, ~0U, 0);
		proc_sanitizer_env();
		execv(argv[0], cargv);
		_exit(127);
	}
	close(sp[1]);
	if (write(sp[0], buf, len) != (ssize_t)len)
		return 2;
	if (close_after)
		shutdown(sp[0], SHUT_WR);

	/* Wait up to 10 s for READY, or for the child to go away. */
	pfd.fd = sp[0];
	pfd.events = POLLIN;
	fflush(stdout);
	if (poll(&pfd, 1, 10000) == 1 &&
	    read(sp[0], &hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr) &&
	    hdr.type == PROC_MSG_READY)
		printf("READY\n");
	/* Closing our end tells a healthy child its parent is gone. */
	close(sp[0]);
	for (i = 0; i < 100; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			if (WIFEXITED(status))
				printf("exit %d\n", WEXITSTATUS(status));
			else
				printf("signal %d\n", WTERMSIG(status));
			return 0;
		}
		usleep(100000);
	}
	kill(pid, SIGKILL);
	printf("hung\n");
	return 1;
}
