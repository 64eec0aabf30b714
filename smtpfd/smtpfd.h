/*
 * smtpfd: the SMTP filtering daemon.
 *
 * Processes (see lib/proc.h for the framework):
 *	parent		privileged: configuration, listening sockets,
 *			certificates, supervision
 *	frontend	the network side: smtpf streams from MTAs, SMTP
 *			clients of proxy listeners, and the replay sessions
 *			to the downstream MTAs (chrooted, unprivileged)
 *	engine		runs the filter chains
 *	control		smtpfctl clients
 */
#ifndef SMTPFD_H
#define SMTPFD_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <tls.h>

#include "conf.h"
#include "pki.h"
#include "ipc.h"
#include "proc.h"

#define SMTPFD_CONF		"/etc/smtpfd.conf"
#define SMTPFD_USER		"_smtpfd"
#define SMTPFD_CHROOT		"/var/empty"
#define SMTPFD_CONTROL_SOCKET	"/var/run/smtpfd.sock"

#define DEF_CLIENT_TIMEOUT	(5 * 60 * 1000)		/* ms */
#define DEF_DOWNSTREAM_TIMEOUT	(10 * 60 * 1000)	/* ms, per reply */
#define DEF_CONNECT_TIMEOUT	(30 * 1000)		/* ms */
#define DEF_MAX_SESSIONS	10000

/* smtpfd's own message types, after the framework's. */
enum smtpfd_msg_type {
	SMTPFD_MSG_LISTENER = PROC_MSG_DAEMON_FIRST,
	SMTPFD_MSG_PKI,
	SMTPFD_MSG_CONTROL_SOCKET,
	SMTPFD_MSG_CTL_REQUEST,
	SMTPFD_MSG_CTL_LINE,
	SMTPFD_MSG_CTL_END,
	SMTPFD_MSG_FILTER_SCRIPT,	/* parent -> engine: s name, d text */
	SMTPFD_MSG_FILTER_PROC,		/* parent -> engine: s name, fd */
	SMTPFD_MSG_FILTER_RESTART,	/* engine -> parent: s name */
	SMTPFD_MSG_SESSION_OPEN,	/* frontend -> engine, see engine.c */
	SMTPFD_MSG_SESSION_CHAIN,	/* engine -> frontend */
	SMTPFD_MSG_SESSION_CLOSE,	/* frontend -> engine: q id */
	SMTPFD_MSG_FILTER_QUERY,	/* frontend -> engine */
	SMTPFD_MSG_FILTER_DECISION,	/* engine -> frontend */
	SMTPFD_MSG_FILTER_EVENT,	/* frontend -> engine */
	SMTPFD_MSG_FILTER_DATA,		/* frontend -> engine: q id, s line */
	SMTPFD_MSG_FILTER_DATA_OUT,	/* engine -> frontend: q id, s line */
	SMTPFD_MSG_FILTER_DATA_ACK,	/* engine -> frontend: q id, u lines */
	SMTPFD_MSG_FRONTEND_CPU,	/* frontend -> engine: u cpu */
	SMTPFD_MSG_METRICS_SOCKET,	/* parent -> control: fd */
};

#define SMTPFD_NTYPES	(PROC_IPC_NTYPES + SMTPFD_MSG_METRICS_SOCKET - 100 + 1)
extern const struct ipc_type	smtpfd_types[];

/* smtpfctl commands (CTL_REQUEST) */
enum smtpfd_ctl {
	CTL_SHOW_SESSIONS = 1,
	CTL_SHOW_STATS,
	CTL_RELOAD,
	CTL_LOG_VERBOSE,
	CTL_LOG_BRIEF,
	CTL_SHOW_FILTERS,
	CTL_METRICS,		/* the control process's HTTP clients */
};

/* How the downstream MTA learns who the client really is. */
enum identity {
	IDENTITY_XCLIENT,	/* Postfix, mtad: XCLIENT after EHLO */
	IDENTITY_XFORWARD,	/* Postfix: XFORWARD before each MAIL */
	IDENTITY_PROXY_V2,	/* OpenSMTPD, Postfix: PROXY v2 header */
	IDENTITY_NONE,
};

enum listener_kind {
	LISTENER_SMTPF_UNIX,	/* smtpf on socket PATH */
	LISTENER_SMTPF_TLS,	/* smtpf on ADDR port N pki NAME */
	LISTENER_PROXY,		/* proxy on ADDR port N: SMTP clients */
};

enum proxy_tls {
	PROXY_TLS_NONE,
	PROXY_TLS_STARTTLS,
	PROXY_TLS_REQUIRE,
	PROXY_TLS_SMTPS,
};

/* Where a session is replayed: "smtp://HOST:PORT". */
struct downstream {
	char			*url;
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
	enum identity		 identity;
};

struct listener {
	TAILQ_ENTRY(listener)	 entry;
	struct smtpfd_conf	*conf;		/* the generation it is of */
	unsigned int		 index;
	enum listener_kind	 kind;
	char			*on;		/* address, or socket path */
	int			 port;
	char			*pki;
	enum proxy_tls		 tls;		/* proxy listeners */
	int			 accept_identity; /* proxy: XCLIENT/XFORWARD
						    from the client */
	char			*chain;		/* NULL: no filtering */
	struct downstream	 forward;
	struct tls		*tls_ctx;	/* frontend: the server */
};

enum filter_kind {
	FILTER_RULE,		/* built-in: phase, match, decision */
	FILTER_LUA,
	FILTER_EXEC,
};

/* A condition of a built-in rule; each may be negated. */
enum rule_cond_kind {
	COND_RDNS,		/* the client has a reverse name */
	COND_FCRDNS,		/* ... that resolves back to its address */
	COND_SRC,		/* the client's address is in the list */
	COND_HELO,		/* the HELO/EHLO name matches the regex */
	COND_MAIL_FROM,		/* the sender matches the regex */
	COND_RCPT_TO,		/* the recipient matches the regex */
	COND_REGEX,		/* the phase's parameter matches the regex */
	COND_TLS,		/* TLS is active */
	COND_AUTH,		/* the client authenticated */
};

struct rule_cond {
	enum rule_cond_kind	 kind;
	int			 negate;
	char			*regex;		/* PCRE2 pattern */
	char			**list;		/* COND_SRC: addresses, nets */
	size_t			 nlist;
};

struct filter_conf {
	TAILQ_ENTRY(filter_conf) entry;
	char			*name;
	enum filter_kind	 kind;
	int			 timeout_ms;
	int			 on_failure;	/* enum on_failure */
	/* lua */
	char			*path;
	char			*script;	/* parent: the file; the engine
						   gets it by IPC */
	size_t			 script_len;
	size_t			 memory_max;
	uint64_t		 instructions_max;
	/* exec */
	char			*command;
	char			*user, *group, *chroot;
	char			**env;		/* "NAME=value" */
	size_t			 nenv;
	char			*protocol;	/* "0.7" (default) or "0.6" */
	/* rule */
	int			 phase;		/* enum filter_phase */
	struct rule_cond	*conds;
	size_t			 nconds;
	int			 decision;	/* enum decision_kind */
	char			*decision_text;
};

/* select chain NAME|bypass for COND ...: which chain a session runs. */
enum select_cond_kind {
	SELECT_TAG,		/* the listener's tag (smtpf) */
	SELECT_SRC,		/* the client's address in the list */
	SELECT_AUTH,		/* the client authenticated */
	SELECT_MAIL_FROM,	/* the sender's domain in the list */
	SELECT_RCPT_TO,		/* a recipient's domain in the list */
};

struct select_cond {
	enum select_cond_kind	 kind;
	int			 negate;
	char			**list;		/* tag, nets or domains */
	size_t			 nlist;
};

struct select_conf {
	TAILQ_ENTRY(select_conf) entry;
	char			*chain;		/* NULL: bypass */
	struct select_cond	*conds;
	size_t			 nconds;
};

struct chain_conf {
	TAILQ_ENTRY(chain_conf)	 entry;
	char			*name;
	char			**filters;
	size_t			 nfilters;
};

struct smtpfd_conf {
	struct proc_settings	 proc;
	char			*hostname;
	char			*control_socket;
	char			*metrics_on;	/* NULL: no metrics listener */
	int			 metrics_port;
	int			 client_timeout;	/* ms */
	int			 downstream_timeout;	/* ms */
	size_t			 max_sessions;
	unsigned int		 nlisteners;
	TAILQ_HEAD(, listener)	 listeners;
	struct pki_list		 pkis;
	TAILQ_HEAD(, filter_conf) filters;
	TAILQ_HEAD(, chain_conf) chains;
	TAILQ_HEAD(, select_conf) selects;
	/* sessions still on this configuration (after a reload) */
	size_t			 refs;
};

extern struct smtpfd_conf	*smtpfd_conf;

/* parse.c */
void	 smtpfd_conf_init(void);
void	 smtpfd_conf_free(void);
void	 smtpfd_conf_begin(void);
void	 smtpfd_conf_abort(void);
int	 smtpfd_conf_check(char *, size_t);
void	 smtpfd_conf_end(void);
void	 smtpfd_conf_ref(struct smtpfd_conf *);
void	 smtpfd_conf_unref(struct smtpfd_conf *);
void	 smtpfd_parse(struct conf *);
struct listener *listener_find(unsigned int);
struct pki *pki_find(const char *);
struct filter_conf *filter_conf_find(const char *);
struct chain_conf *chain_conf_find(const char *);
const char *identity_name(enum identity);

/* parse_filter.c */
void	 parse_filter(struct conf *);
void	 parse_chain(struct conf *);
void	 filter_conf_free(struct filter_conf *);
void	 chain_conf_free(struct chain_conf *);
void	 parse_select(struct conf *);
void	 select_conf_free(struct select_conf *);

/* parent.c */
void	 parent_init(void);
void	 parent_send_config(struct proc_child *);
int	 parent_dispatch(struct ipc_chan *, struct ipc_msg *);

/* parent_filter.c: the processes of exec filters */
void	 parent_filters_start(struct proc_child *);
int	 parent_filter_restart(const char *);

/* engine.c */
void	 engine_init(struct ipc_chan *);
int	 engine_dispatch(struct ipc_chan *, struct ipc_msg *);
void	 engine_configured(struct ipc_chan *);
void	 engine_reconfigured(struct ipc_chan *);

/* frontend.c */
void	 frontend_init(struct ipc_chan *);
int	 frontend_dispatch(struct ipc_chan *, struct ipc_msg *);
void	 frontend_configured(struct ipc_chan *);
void	 frontend_reconfigured(struct ipc_chan *);

/* control.c */
void	 control_init(struct ipc_chan *);
int	 control_dispatch(struct ipc_chan *, struct ipc_msg *);
void	 control_configured(struct ipc_chan *);
void	 ctl_line(struct ipc_chan *, uint64_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	 ctl_end(struct ipc_chan *, uint64_t, int, const char *, ...)
	    __attribute__((format(printf, 4, 5)));

#endif
