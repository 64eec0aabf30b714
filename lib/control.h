/*
 * Control sockets, both ends.
 *
 * A daemon's control process accepts the clients of its control tool
 * (mtactl, smtpfctl) on a unix socket the parent opened, sends each
 * request to the processes that answer it, and relays their answers back.
 * The daemon names three of its message types, whose layouts are fixed:
 *
 *	request		q client, u command, s argument
 *	line		q client, s one line of output
 *	end		q client, u status (0 ok, 1 error), s message
 *
 * Between a tool and the control process the client is 0; inside the
 * daemon it is the id the control process gave the connection.  A process
 * answers a request with any number of lines, then exactly one end.
 * Clients are not trusted: a malformed or unexpected message drops the
 * client, never the daemon.
 */
#ifndef CONTROL_H
#define CONTROL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc.h"

struct control_proto {
	uint32_t		 request;
	uint32_t		 line;
	uint32_t		 end;
	const struct ipc_type	*types;		/* the daemon's table */
	size_t			 ntypes;
};

#define CONTROL_MAX_ROUTES	4

/*
 * The control process: accept clients on the listening socket.  route()
 * fills to[] with the channels that answer a command (at most
 * CONTROL_MAX_ROUTES) and returns how many, 0 for an unknown command.
 * When several answer, their lines are relayed as they come and the
 * client gets one end: the first error's, else the first message.
 */
void	 control_listen(const struct control_proto *, int,
	    size_t (*)(uint32_t, struct ipc_chan **));
/* The control process: relay a line or end; -1 for any other message. */
int	 control_relay(struct ipc_msg *);

/* Any process answering a request. */
void	 control_vline(const struct control_proto *, struct ipc_chan *,
	    uint64_t, const char *, va_list)
	    __attribute__((format(printf, 4, 0)));
void	 control_vend(const struct control_proto *, struct ipc_chan *,
	    uint64_t, int, const char *, va_list)
	    __attribute__((format(printf, 5, 0)));

/* The tools. */
struct ctl_syntax {
	const char	*words;		/* "show envelope ARG" */
	uint32_t	 cmd;
};

struct ctl_tool {
	const char			*name;		/* "mtactl" */
	const char			*daemon;	/* "mtad" */
	const char			*socket;	/* the default socket */
	const struct control_proto	*proto;
	const struct ctl_syntax		*commands;
	size_t				 ncommands;
};

/*
 * "tool [-s socket] command": send the command, print the answer (lines
 * on stdout, an error on stderr).  Returns the exit status, 0 or 1.
 */
int	 ctl_main(const struct ctl_tool *, int, char **);

#endif
