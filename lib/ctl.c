/*
 * The client side of the control sockets, shared by mtactl and smtpfctl:
 * match the command line against the tool's commands, send one request,
 * print the answer.  See control.h.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "ipc.h"
#include "log.h"

static const struct ctl_tool	*tool;

static void __attribute__((noreturn))
usage(void)
{
	size_t	 i;

	fprintf(stderr, "usage: %s [-s socket] command\ncommands:\n",
	    tool->name);
	for (i = 0; i < tool->ncommands; i++)
		fprintf(stderr, "\t%s\n", tool->commands[i].words);
	exit(1);
}

/* Match argv against one command pattern; *arg gets the argument. */
static int
match(const char *pattern, int argc, char **argv, const char **arg)
{
	char	 buf[64], *word, *save;
	int	 i = 0;

	snprintf(buf, sizeof(buf), "%s", pattern);
	for (word = strtok_r(buf, " ", &save); word;
	    word = strtok_r(NULL, " ", &save), i++) {
		if (i >= argc)
			return 0;
		if (strcmp(word, "ARG") == 0)
			*arg = argv[i];
		else if (strcmp(word, argv[i]) != 0)
			return 0;
	}
	return i == argc;
}

static int
ctl_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	const char	*text;
	uint32_t	 status;

	(void)chan;
	if (msg->type == tool->proto->line) {
		(void)ipc_get_u64(msg);
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		printf("%s\n", text);
		return 0;
	}
	if (msg->type == tool->proto->end) {
		(void)ipc_get_u64(msg);
		status = ipc_get_u32(msg);
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		if (status != 0)
			fprintf(stderr, "%s: %s\n", tool->name,
			    *text ? text : "failed");
		else if (*text != '\0')
			printf("%s\n", text);
		fflush(stdout);
		exit(status ? 1 : 0);
	}
	return -1;
}

static void
ctl_closed(struct ipc_chan *chan)
{
	(void)chan;
	fprintf(stderr, "%s: %s closed the connection\n", tool->name,
	    tool->daemon);
	exit(1);
}

int
ctl_main(const struct ctl_tool *t, int argc, char **argv)
{
	struct sockaddr_un	 sun;
	struct ipc_chan		 chan;
	const char		*sock, *arg = "";
	size_t			 i;
	int			 ch, fd, down;

	tool = t;
	sock = tool->socket;
	while ((ch = getopt(argc, argv, "s:")) != -1) {
		if (ch != 's')
			usage();
		sock = optarg;
	}
	argc -= optind;
	argv += optind;
	for (i = 0; i < tool->ncommands; i++)
		if (match(tool->commands[i].words, argc, argv, &arg))
			break;
	if (i == tool->ncommands)
		usage();

	log_init(tool->name, "ctl", 1, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "%s: %s: path too long\n", tool->name, sock);
		return 1;
	}
	memcpy(sun.sun_path, sock, strlen(sock) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		down = errno == ENOENT || errno == ECONNREFUSED;
		fprintf(stderr, "%s: cannot connect to %s: %s", tool->name,
		    sock, strerror(errno));
		if (down)
			fprintf(stderr, " (is %s running?)", tool->daemon);
		fprintf(stderr, "\n");
		return 1;
	}
	/* A daemon that hangs up on us is reported, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	event_init();
	ipc_chan_init(&chan, fd, tool->daemon, IPC_PEER_CLIENT,
	    tool->proto->types, tool->proto->ntypes, ctl_dispatch, ctl_closed,
	    NULL);
	ipc_begin(&chan, tool->proto->request, -1);
	ipc_add_u64(&chan, 0);
	ipc_add_u32(&chan, tool->commands[i].cmd);
	ipc_add_string(&chan, arg);
	ipc_end(&chan);
	event_dispatch();
	return 1;
}
