/*
 * The privilege-separated process framework both daemons are made of.
 *
 * A daemon is a privileged parent and unprivileged children, each with one
 * job (a "role").  The parent parses the configuration, creates one
 * socketpair per child, forks, and the child re-executes the daemon's own
 * binary with "-R role" so that it starts from a fresh address space and
 * inherits nothing but its IPC descriptor (always descriptor 3).  The new
 * child drops privileges at once (chroot where its role allows, then the
 * configured user) before it reads a single message, then receives its
 * configuration from the parent and reports READY.  The configuration
 * travels as the canonical text of the statements the parent checked
 * (macros and includes resolved), and the child runs the same grammar on
 * it, with the "shipped" flag telling parsers not to touch the filesystem:
 * what a statement needs from files (tables, certificates) the parent
 * loads and sends itself.
 *
 * Children that talk to each other directly (the daemon lists the pairs)
 * get one end of a socketpair each from the parent, in a PEER message.
 *
 * A child that dies is not restarted: the parent logs which one died and
 * why, stops the others and exits.  A child whose parent is gone exits.
 */
#ifndef PROC_H
#define PROC_H

#include <sys/types.h>

#include "conf.h"
#include "ipc.h"

#define PROC_IPC_FD	3

/* Message types of the framework itself; daemons number theirs from 100. */
enum proc_msg_type {
	PROC_MSG_VERBOSE = 1,	/* parent -> child: u32 verbosity */
	PROC_MSG_CONF_END,	/* parent -> child: configuration complete */
	PROC_MSG_READY,		/* child -> parent: configured and running */
	PROC_MSG_CONF_TEXT,	/* parent -> child: canonical statements */
	PROC_MSG_CONF_TEXT_END,	/* parent -> child: parse them now */
	PROC_MSG_PEER,		/* parent -> child: s peer role, fd */
};

#define PROC_MSG_DAEMON_FIRST	100
#define PROC_MAX_PEERS		8

#define PROC_CONF_CHUNK	(60 * 1024)

#define PROC_IPC_NTYPES	6	/* the entries of PROC_IPC_TYPES */
#define PROC_IPC_TYPES							\
	{ PROC_MSG_VERBOSE,	"VERBOSE",	"u",	IPC_FD_NONE },	\
	{ PROC_MSG_CONF_END,	"CONF_END",	"",	IPC_FD_NONE },	\
	{ PROC_MSG_READY,	"READY",	"",	IPC_FD_NONE },	\
	{ PROC_MSG_CONF_TEXT,	"CONF_TEXT",	"d",	IPC_FD_NONE },	\
	{ PROC_MSG_CONF_TEXT_END, "CONF_TEXT_END", "",	IPC_FD_NONE },	\
	{ PROC_MSG_PEER,	"PEER",		"s",	IPC_FD_REQUIRED }

struct proc_role {
	const char	*name;		/* "smtp": ps shows "mtad: smtp" */
	/* parent: where the role is chrooted (NULL: not chrooted) */
	const char	*(*chroot_dir)(void);
	/* child: privileges are dropped, the parent channel is up */
	void		(*init)(struct ipc_chan *);
	/* child: a daemon message from the parent or a peer (chan->peer
	 * says which); -1 if unexpected */
	int		(*dispatch)(struct ipc_chan *, struct ipc_msg *);
	/* child: the whole configuration has arrived */
	void		(*configured)(struct ipc_chan *);
	/*
	 * The role keeps root: only for a role whose job is to become other
	 * users (local delivery).  It is never chrooted and never talks to
	 * the network.
	 */
	int		 keeps_root;
	/*
	 * child: a reload's configuration has arrived (the daemon's
	 * conf_begin made it current); NULL if the role needs nothing.
	 */
	void		(*reconfigured)(struct ipc_chan *);
};

/* What the framework needs from a daemon's configuration. */
struct proc_settings {
	char		*user;		/* children run as this user */
	char		*chroot;	/* empty directory for chrooted roles */
};

struct proc_child {
	const struct proc_role	*role;
	pid_t			 pid;
	int			 alive;
	int			 ready;
	struct ipc_chan		 chan;
};

struct daemon_desc {
	const char		*name;		/* "mtad" */
	const char		*conf_default;	/* "/etc/mtad.conf" */
	const struct proc_role	*roles;
	size_t			 nroles;
	const struct ipc_type	*types;
	size_t			 ntypes;
	/* pairs of roles that talk directly, { "smtp", "queue" }, NULL-ended */
	const char		*(*peers)[2];
	/* parent: parse statements from cf; errors are counted in cf */
	void			(*parse)(struct conf *);
	const struct proc_settings *(*settings)(void);
	/* parent: after the check, before forking: open sockets, files */
	void			(*parent_init)(void);
	/* parent: send one child its configuration (before CONF_END) */
	void			(*send_config)(struct proc_child *);
	/* parent: a daemon message from a child; -1 if unexpected */
	int			(*parent_dispatch)(struct ipc_chan *,
				    struct ipc_msg *);
	/*
	 * Reloading (all NULL: not supported).  conf_begin sets a fresh
	 * configuration aside the current one for the grammar to fill;
	 * conf_abort drops it and brings the old one back; conf_check
	 * (parent) says whether the new one can replace the old one
	 * without a restart (-1 and why); conf_end makes the new one
	 * current for good and lets the old one go when nothing uses it.
	 */
	void			(*conf_begin)(void);
	void			(*conf_abort)(void);
	int			(*conf_check)(char *, size_t);
	void			(*conf_end)(void);
};

/* Common command line and life cycle; does not return. */
void	 daemon_main(const struct daemon_desc *, int, char **)
	    __attribute__((noreturn));
/* parent: stop the children, then exit with this status */
void	 daemon_shutdown(int);
/* parent: read the configuration file again and hand it out; -1 and why */
int	 daemon_reload(char *, size_t);
/* parent: set the log verbosity of every process */
void	 daemon_setverbose(int);
/* Statements every daemon has (user, chroot); 1 if cf held one. */
int	 daemon_parse_settings(struct conf *, struct proc_settings *);

/* proc.c */
pid_t	 proc_spawn(const char *, char *const [], int);
void	 proc_sanitizer_env(void);
void	 proc_drop_privileges(const char *, const char *);
extern int proc_chrooted;	/* set by proc_drop_privileges() */
void	 proc_prepare_chroot(const char *);
const char *proc_describe_status(int);
struct proc_child *proc_children(size_t *);
/* child: the channel to another role, set up by the parent */
struct ipc_chan *proc_peer(const char *);

#endif
