/*
 * Filters and chains, in smtpfd's engine process.
 *
 * The frontend asks the engine about each filtered step of a session (a
 * phase: connect, ehlo, mail-from, ...), streams it the message's lines
 * (data-line) and tells it what happened (report events).  The engine
 * runs the session's chain: each filter that registered the phase is
 * asked in turn, and the decisions compose (filter.c):
 *
 *	proceed		the next filter is asked
 *	rewrite		the new parameter is what the next filter sees, and
 *			what the downstream MTA gets
 *	junk		the transaction is marked (X-Spam: Yes), next filter
 *	report		the text is logged and reported, next filter
 *	bypass		(built-in rules) the rest of the chain is skipped
 *	reject		the chain ends: the client gets the reply
 *	disconnect	the chain ends: the client gets the reply and is closed
 *
 * A filter kind (built-in rules, Lua, executable) implements struct
 * filter_ops.  Queries are asynchronous: a filter answers when it can
 * with filter_answer() (or filter_line() for data lines) and the engine
 * matches the answer to the query by its token; an answer that comes
 * after the filter's timeout, or for a session gone, is dropped.  A
 * filter that fails (crash, garbage, timeout, script error) calls
 * filter_failure(): the session gets the filter's on-failure policy.
 */
#ifndef FILTER_H
#define FILTER_H

#include <sys/queue.h>

#include <event.h>
#include <stddef.h>
#include <stdint.h>

struct filter_conf;

enum filter_phase {
	PHASE_CONNECT,
	PHASE_HELO,
	PHASE_EHLO,
	PHASE_STARTTLS,
	PHASE_AUTH,
	PHASE_MAIL_FROM,
	PHASE_RCPT_TO,
	PHASE_DATA,
	PHASE_DATA_LINE,
	PHASE_COMMIT,
	PHASE_RSET,
	PHASE_QUIT,
	PHASE_NOOP,
	NPHASES
};

/* Report events, as OpenSMTPD names them (smtpd-filters(7)). */
enum filter_event {
	EVENT_LINK_CONNECT,	/* rdns|fcrdns|src|dest */
	EVENT_LINK_GREETING,	/* hostname */
	EVENT_LINK_IDENTIFY,	/* method|identity */
	EVENT_LINK_TLS,		/* VERSION:CIPHER:BITS */
	EVENT_LINK_AUTH,	/* result|username (0.7 order) */
	EVENT_LINK_DISCONNECT,
	EVENT_TX_RESET,		/* msgid */
	EVENT_TX_BEGIN,		/* msgid */
	EVENT_TX_MAIL,		/* msgid|result|address (0.6+ order) */
	EVENT_TX_RCPT,		/* msgid|result|address */
	EVENT_TX_ENVELOPE,	/* msgid|evpid */
	EVENT_TX_DATA,		/* msgid|result */
	EVENT_TX_COMMIT,	/* msgid|size */
	EVENT_TX_ROLLBACK,	/* msgid */
	EVENT_PROTOCOL_CLIENT,	/* the client's line */
	EVENT_PROTOCOL_SERVER,	/* a reply line */
	EVENT_FILTER_REPORT,	/* kind|name|message */
	EVENT_FILTER_RESPONSE,	/* phase|response[|param] */
	EVENT_TIMEOUT,
	NEVENTS
};

enum decision_kind {
	DECISION_PROCEED,
	DECISION_REWRITE,
	DECISION_JUNK,
	DECISION_REPORT,
	DECISION_BYPASS,
	DECISION_REJECT,
	DECISION_DISCONNECT,
};

#define DECISION_TEXT_MAX	1000

struct decision {
	enum decision_kind	 kind;
	/* reject, disconnect: the reply; rewrite: the new parameter;
	 * report: the text */
	char			 text[DECISION_TEXT_MAX];
};

enum on_failure {
	ON_FAILURE_TEMPFAIL,	/* default: 451 / 421, nothing is lost */
	ON_FAILURE_PROCEED,
	ON_FAILURE_REJECT,
};

/* What the engine knows of a session, for filters to look at. */
struct fsession {
	TAILQ_ENTRY(fsession)	 entry;
	uint64_t		 id;		/* the frontend's session id */
	struct chain		*chain;		/* NULL: nothing to run */
	/* the client */
	char			 addr[64];	/* "192.0.2.1", "2001:db8::1" */
	int			 port;
	char			 local_addr[64];
	int			 local_port;
	char			 rdns[256];	/* "" when unknown */
	char			 tag[64];
	char			 helo[256];
	int			 tls;
	char			 tls_info[256];
	char			 auth_user[256];
	/* the transaction */
	uint32_t		 msgid;		/* 0: none */
	char			 mail_from[512];
	char			**rcpts;
	size_t			 nrcpts;
	int			 junk;
	/* per filter of the chain: its own state for this session */
	void			**fstate;
	/* the query in progress (one at a time per session) */
	struct query		*query;
	/* the data-line pipeline, while the content flows */
	struct pipeline		*pipeline;
	int			 closing;
	/* bumped whenever the fields above change, those of the link
	 * (helo, tls, tls_info, auth_user) and those of the transaction
	 * (msgid, mail_from, rcpts, junk): filters that mirror them (Lua's
	 * session table) refresh only what changed */
	uint32_t		 link_version;
	uint32_t		 version;
};

struct filter;

struct filter_ops {
	/* engine start (or reload): get ready; -1 is fatal at start */
	int	(*start)(struct filter *);
	/* a session enters / leaves a chain holding this filter */
	void	(*session_open)(struct filter *, struct fsession *);
	void	(*session_close)(struct filter *, struct fsession *);
	/* an event this filter registered for (params in OpenSMTPD 0.7
	 * layout, '|'-separated, see enum filter_event) */
	void	(*report)(struct filter *, struct fsession *,
		    enum filter_event, const char *);
	/* ask: answer later with filter_answer(fs, token, ...) */
	void	(*query)(struct filter *, struct fsession *,
		    enum filter_phase, const char *, uint64_t);
	/* one content line (dot-stuffed, without CRLF; "." ends the
	 * message): answer with any number of filter_line(fs, token, l),
	 * the last one "." */
	void	(*data_line)(struct filter *, struct fsession *,
		    const char *, uint64_t);
	/* n content lines joined by LF (dot-stuffed, none of them "."),
	 * of a batch from the frontend (NULL: data_line for each): kept
	 * for data_flush, or answered as data_line's are */
	void	(*data_block)(struct filter *, struct fsession *,
		    const char *, size_t, uint32_t, uint64_t);
	/* the end of a batch of lines from the frontend (NULL: the kind
	 * works each line as it comes): a kind that kept the batch's
	 * lines (filter_data_batching()) works them now, if they are the
	 * message of this token (the lines of a message that failed
	 * meanwhile are dropped) */
	void	(*data_flush)(struct filter *, struct fsession *, uint64_t);
	/* the engine stops, or a reload drops the filter */
	void	(*stop)(struct filter *);
	/* bytes the filter has not taken yet (NULL: none): the engine
	 * holds the frontend's data lines back while it is large, until
	 * the kind calls filter_drained() */
	size_t	(*backlog)(struct filter *);
};

struct filter_stats {
	uint64_t	 calls;
	uint64_t	 decisions[DECISION_DISCONNECT + 1];
	uint64_t	 failures;
	uint64_t	 timeouts;
	uint64_t	 restarts;
	/* latency of answers: buckets of 0.1, 0.5, 1, 5, 10, 50, 100,
	 * 500, 1000, 5000 ms and more */
	uint64_t	 latency[11];
	double		 latency_sum;	/* seconds */
};

struct filter {
	TAILQ_ENTRY(filter)	 entry;
	char			*name;
	const struct filter_ops	*ops;
	void			*impl;		/* the kind's own data */
	uint32_t		 phases;	/* 1 << PHASE_*: asked for */
	uint32_t		 events;	/* 1 << EVENT_*: reported */
	int			 timeout_ms;
	enum on_failure		 on_failure;
	int			 ready;		/* phases and events known */
	int			 broken;	/* too many restarts: tempfail */
	struct filter_stats	 stats;
	const struct filter_conf *conf;		/* its statement */
};

/*
 * The longest line a filter may make (the client's come in pieces of
 * SESSION_CHUNK): a longer one is the filter's failure.  Under half an
 * IPC message, so that a batch of lines always fits in one.
 */
#define FILTER_LINE_MAX	(16 * 1024)

/* filter.c: what filter kinds call */
void	 filter_answer(struct fsession *, uint64_t, const struct decision *);
void	 filter_line(struct fsession *, uint64_t, const char *);
int	 filter_lines(struct fsession *, uint64_t, const char *, size_t,
	    uint32_t, size_t);
/* the line given comes in a batch: it may be kept for data_flush */
int	 filter_data_batching(struct fsession *);
void	 filter_failure(struct filter *, struct fsession *, const char *);
/* the filter's phases and events are known (exec: register|ready) */
void	 filter_ready(struct filter *);
/* a filter with a backlog took it */
void	 filter_drained(struct filter *);
/* engine.c: every session in a chain holding this filter */
struct fsession *engine_sessions_first(void);
struct fsession *engine_sessions_next(struct fsession *);
int	 fsession_has_filter(struct fsession *, struct filter *);
/* engine.c: ask the parent to start an exec filter's process again */
void	 engine_restart_filter(struct filter *);
/* filter_rule.c: an address in "192.0.2.0/24", "2001:db8::/32", ... */
int	 addr_in_net(const char *, const char *);
/* filter_exec.c, filter_lua.c, filter_rule.c */
extern const struct filter_ops filter_exec_ops, filter_lua_ops,
	    filter_rule_ops;
/* filter_exec.c: the parent started the filter's process: its socket */
void	 filter_exec_attach(struct filter *, int);
/* filter_lua.c: the script, sent by the parent */
int	 filter_lua_load(struct filter *, const char *, size_t);
const char *filter_phase_name(enum filter_phase);
const char *filter_event_name(enum filter_event);
int	 filter_phase_by_name(const char *);
int	 filter_event_by_name(const char *);
const char *decision_name(enum decision_kind);

#endif
