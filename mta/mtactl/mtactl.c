/*
 * mtactl: control a running mtad over its control socket.
 *
 *	mtactl [-s socket] show queue | show envelope ID | show stats
 *	mtactl [-s socket] schedule ID|all | remove ID|all
 *	mtactl [-s socket] pause|resume mda|smtp
 *	mtactl [-s socket] update table NAME
 *	mtactl [-s socket] log verbose|brief
 *	mtactl [-s socket] stop
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "mtad.h"

static const struct {
	const char	*words;		/* the command, "ARG" for the argument */
	enum ctl_command cmd;
} commands[] = {
	{ "show queue",		CTL_SHOW_QUEUE },
	{ "show envelope ARG",	CTL_SHOW_ENVELOPE },
	{ "show stats",		CTL_SHOW_STATS },
	{ "schedule ARG",	CTL_SCHEDULE },
	{ "remove ARG",		CTL_REMOVE },
	{ "pause mda",		CTL_PAUSE_MDA },
	{ "resume mda",		CTL_RESUME_MDA },
	{ "pause smtp",		CTL_PAUSE_SMTP },
	{ "resume smtp",	CTL_RESUME_SMTP },
	{ "update table ARG",	CTL_UPDATE_TABLE },
	{ "log verbose",	CTL_LOG_VERBOSE },
	{ "log brief",		CTL_LOG_BRIEF },
	{ "stop",		CTL_STOP },
};

static int	 exit_status = 1;

static void __attribute__((noreturn))
usage(void)
{
	size_t	 i;

	fprintf(stderr, "usage: mtactl [-s socket] command\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(stderr, "\t%s\n", commands[i].words);
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
dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	const char	*text;
	uint32_t	 status;

	(void)chan;
	(void)ipc_get_u64(msg);
	switch (msg->type) {
	case MTAD_MSG_CTL_LINE:
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		printf("%s\n", text);
		return 0;
	case MTAD_MSG_CTL_END:
		status = ipc_get_u32(msg);
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		if (*text != '\0')
			fprintf(status ? stderr : stdout, "%s%s\n",
			    status ? "mtactl: " : "", text);
		exit_status = status ? 1 : 0;
		fflush(stdout);
		exit(exit_status);
	}
	return -1;
}

static void
closed(struct ipc_chan *chan)
{
	(void)chan;
	fprintf(stderr, "mtactl: mtad closed the connection\n");
	exit(1);
}

int
main(int argc, char **argv)
{
	struct sockaddr_un	 sun;
	struct ipc_chan		 chan;
	const char		*sock = MTAD_CONTROL_SOCKET, *arg = "";
	size_t			 i;
	int			 ch, fd;

	while ((ch = getopt(argc, argv, "s:")) != -1) {
		if (ch != 's')
			usage();
		sock = optarg;
	}
	argc -= optind;
	argv += optind;
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (match(commands[i].words, argc, argv, &arg))
			break;
	if (i == sizeof(commands) / sizeof(commands[0]))
		usage();

	log_init("mtactl", "ctl", 1, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "mtactl: %s: path too long\n", sock);
		return 1;
	}
	strcpy(sun.sun_path, sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "mtactl: cannot connect to %s: %s%s\n", sock,
		    strerror(errno), errno == ENOENT || errno == ECONNREFUSED ?
		    " (is mtad running?)" : "");
		return 1;
	}
	event_init();
	ipc_chan_init(&chan, fd, "mtad", IPC_PEER_CLIENT, mtad_types,
	    MTAD_NTYPES, dispatch, closed, NULL);
	ipc_begin(&chan, MTAD_MSG_CTL_REQUEST, -1);
	ipc_add_u64(&chan, 0);
	ipc_add_u32(&chan, commands[i].cmd);
	ipc_add_string(&chan, arg);
	ipc_end(&chan);
	event_dispatch();
	return exit_status;
}
