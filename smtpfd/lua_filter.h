/*
 * Lua filters, between filter_lua.c (the filter kind: states, calls,
 * sessions, messages) and the modules scripts see (lua_api.c: the
 * sandbox, decisions, log, session and message objects; lua_regex.c;
 * lua_dns.c).  SPEC.md section 2.4 is the scripts' contract.
 */
#ifndef LUA_FILTER_H
#define LUA_FILTER_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "filter.h"

#define LMSG_MAX	(32 * 1024 * 1024)	/* a message at commit */

struct lheader {
	char		*name;
	char		*value;		/* after the ':', folded with "\n" */
	size_t		 value_len;	/* while folded lines come in */
	size_t		 value_size;	/* (0: not known) */
};

/* A message held for on_commit: unstuffed lines, headers parsed. */
struct lmsg {
	struct lheader	*hdrs;
	size_t		 nhdrs;
	size_t		 hdrs_size;	/* room in hdrs */
	char		*body;		/* the body's lines, each ended by LF */
	size_t		 bodylen;
	size_t		 bodysize;
	size_t		 nbody;		/* lines in it */
	int		 in_body;
	int		 separator;	/* a blank line ended the headers */
	size_t		 bytes;
};

enum lcall_kind {
	LCALL_LOAD,
	LCALL_QUERY,
	LCALL_DATA_LINE,
	LCALL_COMMIT,
	LCALL_REPORT,
};

struct lfilter;
struct lsession;
struct ldns;

/* One hook running in its own coroutine. */
struct lcall {
	TAILQ_ENTRY(lcall)	 entry;		/* in lf->calls while it waits */
	struct lfilter		*lf;
	struct lsession		*ls;		/* NULL: load, or gone */
	enum lcall_kind		 kind;
	enum filter_phase	 phase;
	const char		*hook;
	uint64_t		 token;
	lua_State		*co;
	int			 co_ref;
	uint64_t		 instructions;
	int			 can_wait;	/* dns.lookup may yield */
	struct ldns		*dns;		/* the lookup it waits for */
	int			 msg_ref;	/* the message object */
	const char		*line_in;	/* on_data_line's argument, */
	size_t			 line_in_len;	/* valid until it returns */
	size_t			 line_next;	/* in ls->lines, the next */
	int			 line_bad;	/* it returned a bad value */
};

struct lsession {
	struct lfilter		*lf;
	struct fsession		*fs;
	int			 table_ref;	/* the session table */
	int			 table_synced;	/* at versions ... */
	uint32_t		 table_link_version; /* ... of the fsession */
	uint32_t		 table_version;
	struct lmsg		 msg;
	char			*lines;		/* data lines for on_data_line, */
	size_t			 lines_len;	/* dot-stuffed, each ended by LF */
	size_t			 lines_size;
	uint64_t		 msg_token;	/* the message being held */
	int			 msg_failed;
	uint64_t		 query_token;	/* the query being asked */
	int			 commit_ready;	/* on_commit has decided */
	struct decision		 commit;
};

struct lfilter {
	struct filter		*f;
	lua_State		*L;
	char			*script;
	size_t			 script_len;
	int			 loaded;	/* the parent sent it */
	char			*chunkname;	/* "@path" */
	size_t			 mem;
	size_t			 mem_max;
	int			 limited;	/* the script runs: mem_max */
	uint64_t		 instructions_max;
	struct lcall		*running;
	lua_State		*spare;		/* a finished coroutine */
	int			 spare_ref;
	struct lcall		*spare_call;	/* a finished call, for reuse */
	char			*head;		/* emit_message()'s headers */
	size_t			 head_size;
	char			*out;		/* lines out of on_data_line, */
	size_t			 out_len;	/* each ended by LF, until */
	size_t			 out_size;	/* emit_out() */
	int			 limit_ref;	/* the limit error's object */
	int			 commit_hook;	/* on_commit: hold messages */
	int			 line_hook;	/* on_data_line */
	int			 event_hook;	/* on_event */
	uint32_t		 event_hooks;	/* on_tx_begin, ... */
	TAILQ_HEAD(, lcall)	 calls;		/* waiting, all sessions */
	struct evdns_base	*dns;
	int			 dns_servers;
};

/* filter_lua.c */
int	 lfilter_resume(struct lcall *, int);
void	 lcall_log(struct lfilter *, int, const char *);

/* lua_api.c */
void	 lua_api_open(lua_State *, struct lfilter *);
int	 lua_api_decision(lua_State *, int, struct decision *, char *,
	    size_t);
void	 lua_api_session(lua_State *, struct lsession *);
void	 lua_api_message(lua_State *, struct lmsg *);
void	 lua_api_message_done(lua_State *, int);
void	 lmsg_clear(struct lmsg *);
int	 lmsg_add(struct lmsg *, const char *, size_t);

/* lua_mem.c: the states' blocks (osize as lua_Alloc is told it) */
void	*lua_mem_realloc(void *, size_t, size_t);
int	 lmsg_header_add(struct lmsg *, const char *, const char *, int);

/* lua_regex.c */
void	 lua_regex_open(lua_State *);

/* lua_dns.c */
void	 lua_dns_open(lua_State *);
void	 lua_dns_cancel(struct ldns *);
void	 lua_dns_stop(struct lfilter *);

#endif
