/*
 * mtad: the mail transfer agent.
 *
 * Processes (see lib/proc.h for the framework):
 *	parent	privileged: configuration, listening sockets, certificates,
 *		table files, smtpf sockets, supervision
 *	smtp	the SMTP server: client sessions, rules (chrooted, empty dir)
 *	queue	the spool: the only process that touches queued mail
 *		(chrooted into the queue directory)
 */
#ifndef MTAD_H
#define MTAD_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf.h"
#include "pki.h"
#include "ipc.h"
#include "proc.h"
#include "smtp_proto.h"

#define MTAD_CONF		"/etc/mtad.conf"
#define MTAD_USER		"_mtad"
#define MTAD_CHROOT		"/var/empty"
#define MTAD_QUEUE		"/var/spool/mtad"

/* Defaults an administrator can change; see mtad.conf(5). */
#define DEF_MAX_MESSAGE_SIZE	(35 * 1024 * 1024)
#define DEF_MAX_RCPT		1000
#define DEF_MAX_MAILS		100
#define DEF_MAX_SESSIONS	1000
#define DEF_MAX_ERRORS		10
#define DEF_COMMAND_TIMEOUT	300	/* seconds, RFC 5321 4.5.3.2.7 */
#define DEF_DATA_TIMEOUT	600	/* seconds, RFC 5321 4.5.3.2.6 */
#define DEF_QUEUE_TTL		(4 * 86400)	/* then bounce */
#define DEF_MAX_DELIVERIES	16	/* concurrent local deliveries */
#define DELIVERY_TIMEOUT	600	/* seconds for one delivery */

/* mtad's own message types, after the framework's. */
enum mtad_msg_type {
	MTAD_MSG_LISTENER = 100,	/* parent -> smtp: u32 index, fd */
	MTAD_MSG_PKI,			/* parent -> smtp: name, cert, key, ca */
	MTAD_MSG_TABLE_ITEM,		/* parent -> smtp: table, key, value */
	MTAD_MSG_MESSAGE_CREATE,	/* smtp -> queue: q request */
	MTAD_MSG_MESSAGE_CREATED,	/* queue -> smtp: q req, u32 msgid, fd */
	MTAD_MSG_ENVELOPE,		/* smtp -> queue: u32 msgid, q evpid, s */
	MTAD_MSG_MESSAGE_COMMIT,	/* smtp -> queue: q req, u32 msgid */
	MTAD_MSG_MESSAGE_COMMITTED,	/* queue -> smtp: q req, u32 ok */
	MTAD_MSG_MESSAGE_ROLLBACK,	/* smtp -> queue: u32 msgid */
	MTAD_MSG_DELIVER,		/* queue -> delivery: q, s, fd */
	MTAD_MSG_DELIVERED,		/* delivery -> queue: q, u, s */
	MTAD_MSG_CONTROL_SOCKET,	/* parent -> control: fd */
	MTAD_MSG_TABLE_RESET,		/* parent -> smtp, queue: s table */
	MTAD_MSG_CTL_REQUEST,		/* q client, u command, s argument */
	MTAD_MSG_CTL_LINE,		/* q client, s one line of output */
	MTAD_MSG_CTL_END,		/* q client, u status, s message */
	MTAD_MSG_SMTPF_CONNECT,		/* smtp -> parent: u32 endpoint */
	MTAD_MSG_SMTPF_SOCKET,		/* parent -> smtp: u32, s error, fd */
};

#define MTAD_NTYPES	(PROC_IPC_NTYPES + MTAD_MSG_SMTPF_SOCKET - 100 + 1)

/* mtactl commands (CTL_REQUEST) */
enum ctl_command {
	CTL_SHOW_QUEUE = 1,
	CTL_SHOW_ENVELOPE,
	CTL_SHOW_STATS,
	CTL_SCHEDULE,
	CTL_REMOVE,
	CTL_PAUSE_MDA,
	CTL_RESUME_MDA,
	CTL_PAUSE_SMTP,
	CTL_RESUME_SMTP,
	CTL_UPDATE_TABLE,
	CTL_LOG_VERBOSE,
	CTL_LOG_BRIEF,
	CTL_STOP,
};

#define MTAD_CONTROL_SOCKET	"/run/mtad.sock"

/* The outcome of one delivery attempt. */
enum delivery_result {
	DELIVERY_OK,
	DELIVERY_TEMPFAIL,
	DELIVERY_PERMFAIL,
};

enum table_kind {
	TABLE_LIST,		/* values only */
	TABLE_MAP,		/* key -> value */
};

struct table_entry {
	char	*key;
	char	*value;		/* NULL in a list */
};

struct table {
	TAILQ_ENTRY(table)	 entry;
	char			*name;
	char			*path;		/* file:PATH, or NULL (inline) */
	enum table_kind		 kind;
	struct table_entry	*items;		/* sorted by key */
	size_t			 nitems;
	size_t			 itemcap;
};

enum listener_tls {
	LISTEN_TLS_NONE,
	LISTEN_TLS_STARTTLS,	/* "tls": offered */
	LISTEN_TLS_REQUIRE,	/* "tls-require": before MAIL */
	LISTEN_TLS_SMTPS,	/* "smtps": TLS from the first byte */
};

/*
 * An smtpfd a filtered listener hands its clients to (protocol/smtpf.md):
 * "unix:/path" or "tls://ADDRESS:PORT".  Listeners naming the same URL
 * (and client pki) share one endpoint, hence one link.
 */
enum smtpf_transport {
	SMTPF_TRANSPORT_UNIX,
	SMTPF_TRANSPORT_TLS,
};

struct smtpf_endpoint {
	TAILQ_ENTRY(smtpf_endpoint) entry;
	unsigned int		 index;		/* statement order */
	char			*url;		/* as configured, for logs */
	enum smtpf_transport	 transport;
	char			*path;		/* unix */
	char			*host;		/* tls: address, no brackets */
	int			 port;
	char			*pki;		/* tls: our cert, key, and ca */
};

struct listener {
	TAILQ_ENTRY(listener)	 entry;
	unsigned int		 index;		/* statement order */
	char			*on;		/* address or interface */
	int			 family;	/* AF_UNSPEC, AF_INET, AF_INET6 */
	int			 port;
	char			*hostname;	/* greeting name */
	char			*tag;
	enum listener_tls	 tls;
	char			*pki;
	struct table		*xclient_from;
	int			 mask_src;
	/* filter smtpf: clients go to one of these, round robin */
	struct smtpf_endpoint	**filters;
	size_t			 nfilters;
	size_t			 filter_next;	/* smtp process: next to try */
	int			 filter_bypass;	/* none up: serve unfiltered */
	char			*filter_pki;
};

enum action_kind {
	ACTION_MAILDIR,
	ACTION_MBOX,
	ACTION_MDA,
	ACTION_LMTP,
};

struct action {
	TAILQ_ENTRY(action)	 entry;
	char			*name;
	enum action_kind	 kind;
	char			*arg;		/* path, command, destination */
	struct table		*alias;
	struct table		*virtual;
	char			*user;
};

enum rule_from {
	FROM_ANY,
	FROM_LOCAL,
	FROM_SRC,		/* client address in a table */
};

enum rule_for {
	FOR_ANY,
	FOR_LOCAL,
	FOR_DOMAIN,		/* recipient domain in a table */
	FOR_RCPT,		/* recipient address in a table */
};

struct rule {
	TAILQ_ENTRY(rule)	 entry;
	int			 from_negated;
	enum rule_from		 from;
	struct table		*from_table;
	int			 for_negated;
	enum rule_for		 for_;
	struct table		*for_table;
	char			*tag;
	int			 tag_negated;
	int			 reject;
	struct action		*action;
};

struct mtad_conf {
	struct proc_settings	 proc;
	char			*hostname;
	char			*queue_path;
	char			*control_socket;
	size_t			 max_message_size;
	size_t			 max_rcpt;
	size_t			 max_mails;
	size_t			 max_sessions;
	size_t			 max_errors;
	int			 command_timeout;
	int			 data_timeout;
	int			 queue_ttl;
	unsigned int		 nlisteners;
	TAILQ_HEAD(, listener)	 listeners;
	unsigned int		 nendpoints;
	TAILQ_HEAD(, smtpf_endpoint) endpoints;
	TAILQ_HEAD(, table)	 tables;
	struct pki_list		 pkis;
	TAILQ_HEAD(, action)	 actions;
	TAILQ_HEAD(, rule)	 rules;
};

#define ENVELOPE_FIELD_MAX	1024

/* DSN NOTIFY flags (RFC 3461 4.1) */
#define DSN_NOTIFY_SUCCESS	0x1
#define DSN_NOTIFY_FAILURE	0x2
#define DSN_NOTIFY_DELAY	0x4
#define DSN_NOTIFY_NEVER	0x8

/* Envelope flags */
#define ENVELOPE_SMTPUTF8	0x1
#define ENVELOPE_8BITMIME	0x2

/*
 * One recipient of one message: what the queue stores and delivery
 * works from.  On disk it is text, one "key: value" per line.
 */
struct envelope {
	uint64_t	 id;		/* msgid << 32 | random */
	char		 sender[SMTP_ADDRESS_MAX + 1];	/* "" for <> */
	char		 rcpt[SMTP_ADDRESS_MAX + 1];
	char		 dest[SMTP_ADDRESS_MAX + 1];	/* local user after expansion */
	char		 action[128];
	char		 tag[128];
	char		 helo[SMTP_DOMAIN_MAX + 1];
	char		 client[128];	/* address, "local" for a socket */
	int64_t		 created;
	uint32_t	 flags;
	uint32_t	 dsn_notify;
	char		 dsn_ret[8];	/* "", "FULL" or "HDRS" */
	char		 dsn_envid[301];	/* xtext, as received */
	char		 dsn_orcpt[ENVELOPE_FIELD_MAX];
	uint32_t	 retries;
	int64_t		 lasttry;
	char		 errorline[ENVELOPE_FIELD_MAX];	/* last failure */
};

extern struct mtad_conf	*mtad_conf;
extern const struct ipc_type	 mtad_types[];


/* parse.c */
void	 mtad_conf_init(void);
void	 mtad_conf_free(void);
void	 mtad_parse(struct conf *);
struct table *table_find(const char *);
struct listener *listener_find(unsigned int);
struct pki *pki_find(const char *);
struct smtpf_endpoint *endpoint_find(unsigned int);

/* table.c */
struct table *table_new(const char *, const char *);
void	 table_add(struct table *, const char *, const char *);
void	 table_clear(struct table *);
int	 table_load_file(struct table *, char *, size_t);
void	 table_item_received(const char *, const char *, const char *);
void	 table_reset(const char *);
int	 table_dispatch(struct ipc_chan *, struct ipc_msg *);
const char *table_get(const struct table *, const char *);
int	 table_has(const struct table *, const char *);
int	 table_match_domain(const struct table *, const char *);
int	 table_match_address(const struct table *, const char *,
	    const char *);
int	 table_match_netaddr(const struct table *,
	    const struct sockaddr_storage *);

/* ruleset.c */
struct rcpt_context {
	const struct sockaddr_storage	*client;	/* NULL: local socket */
	const char			*tag;
	const struct mailaddr		*rcpt;
};
const struct rule *ruleset_match(const struct rcpt_context *);
int	 ruleset_is_local_domain(const char *);

/* expand.c */
enum expand_context {
	EXPAND_PATH,		/* values cannot add path components */
	EXPAND_COMMAND,		/* values are single-quoted for the shell */
};
struct passwd;
int	 expand_recipient(const struct action *, const struct mailaddr *,
	    char [][SMTP_ADDRESS_MAX + 1], size_t);
int	 expand_format(char *, size_t, const char *, const struct envelope *,
	    const struct passwd *, enum expand_context);

/* envelope.c */
uint32_t envelope_msgid(uint64_t);
int	 envelope_dump(const struct envelope *, char *, size_t);
int	 envelope_load(struct envelope *, const char *, size_t);

/*
 * The queue API; one backend (queue_fs.c) so far.  message_commit returns
 * 0, -1 (nothing committed), or QUEUE_COMMIT_UNSURE (committed, but its
 * durability could not be confirmed: keep it, refuse it to the client).
 */
#define QUEUE_COMMIT_UNSURE	(-2)
struct queue_backend {
	const char	*name;
	int		(*init)(void);
	int		(*message_create)(uint32_t *);
	int		(*message_fd)(uint32_t);
	int		(*message_commit)(uint32_t, const struct envelope *,
			    size_t);
	/* the steps of a group commit: stage each, sync, publish each,
	 * sync */
	int		(*message_stage)(uint32_t, const struct envelope *,
			    size_t);
	int		(*sync)(void);
	int		(*message_publish)(uint32_t);
	int		(*message_unpublish)(uint32_t);
	int		(*message_delete)(uint32_t);
	int		(*envelope_delete)(uint64_t);
	int		(*envelope_get)(uint64_t, struct envelope *);
	int		(*walk)(int (*)(uint64_t, void *), void *);
	int		(*message_open)(uint32_t);
	int		(*envelope_update)(const struct envelope *);
};
extern const struct queue_backend	 queue_fs_backend;

struct action *action_find(const char *);

/* scheduler.c (queue process) */
void	 scheduler_add(uint64_t, int64_t);
void	 scheduler_delivered(uint64_t, enum delivery_result, const char *);
void	 scheduler_start(void);

/* bounce.c (queue process) */
void	 bounce_create(const struct envelope *, const char *);

/* delivery.c, mda_*.c */
void	 delivery_init(struct ipc_chan *);
int	 delivery_dispatch(struct ipc_chan *, struct ipc_msg *);
void	 delivery_configured(struct ipc_chan *);
enum delivery_result mda_maildir(const struct action *, const struct envelope *,
	    const struct passwd *, int, char *, size_t);
enum delivery_result mda_mbox(const struct action *, const struct envelope *,
	    const struct passwd *, int, int, char *, size_t);
enum delivery_result mda_command(const struct action *, const struct envelope *,
	    const struct passwd *, int, char *, size_t);
enum delivery_result mda_lmtp(const struct action *, const struct envelope *,
	    const struct passwd *, int, char *, size_t);
enum mda_copy {
	MDA_COPY_PLAIN,		/* LF line ends, as queued */
	MDA_COPY_MBOX,		/* ">From " quoting (mboxrd) */
	MDA_COPY_SMTP,		/* CRLF and dot-stuffing, for LMTP */
};
int	 mda_copy_message(int, FILE *, const struct envelope *, enum mda_copy);
int	 mda_mkdirs(const char *);

/* parent.c */
void	 parent_init(void);
void	 parent_send_config(struct proc_child *);
int	 parent_dispatch(struct ipc_chan *, struct ipc_msg *);

/* control.c */
void	 control_init(struct ipc_chan *);
int	 control_dispatch(struct ipc_chan *, struct ipc_msg *);
void	 control_configured(struct ipc_chan *);
void	 ctl_line(struct ipc_chan *, uint64_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	 ctl_end(struct ipc_chan *, uint64_t, int, const char *, ...)
	    __attribute__((format(printf, 4, 5)));

/* scheduler.c: control requests */
void	 scheduler_ctl(struct ipc_chan *, uint64_t, uint32_t, const char *);
/* smtp.c: control requests */
void	 smtp_ctl(struct ipc_chan *, uint64_t, uint32_t, const char *);

/* smtp.c */
void	 smtp_init(struct ipc_chan *);
int	 smtp_dispatch(struct ipc_chan *, struct ipc_msg *);
void	 smtp_configured(struct ipc_chan *);

/* queue.c */
void	 queue_init(struct ipc_chan *);
int	 queue_dispatch(struct ipc_chan *, struct ipc_msg *);
void	 queue_configured(struct ipc_chan *);

#endif
