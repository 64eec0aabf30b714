/*
 * Lua filters: "filter NAME lua FILE [memory SIZE] [instructions N]".
 *
 * One Lua 5.4 state per filter, in the engine process.  The script is
 * run once at start; the hooks it defines (on_mail_from, on_commit,
 * on_tx_begin, ...) say which phases and events the filter takes.  Each
 * hook runs in a coroutine of its own, so that dns.lookup can suspend
 * it while the engine goes on with other sessions; the other hooks
 * never wait.
 *
 * Limits: the state's allocator refuses to grow past "memory" while the
 * script runs, and a count hook stops a call after "instructions".
 * Either, a runtime error or a bad return value fails the filter for
 * that query (filter_failure(): the session gets the on-failure
 * policy), with the script's file:line in the log.
 *
 * The message at commit: a filter with on_commit holds the message's
 * lines (up to LMSG_MAX), gives on_commit the message when its "."
 * comes, writes out the message as on_commit left it, then answers the
 * commit query with on_commit's decision.
 */
#include <sys/types.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "engine.h"
#include "filter.h"
#include "line_batch.h"
#include "log.h"
#include "lua_filter.h"
#include "smtpfd.h"
#include "xmalloc.h"

#define HOOK_STEP		1000	/* instructions between counts */
#define DEF_MEMORY		(64 * 1024 * 1024)
#define DEF_INSTRUCTIONS	10000000ULL

/* How many '|'-separated fields each event's parameters have. */
static const int event_fields[NEVENTS] = {
	[EVENT_LINK_CONNECT] = 4,
	[EVENT_LINK_GREETING] = 1,
	[EVENT_LINK_IDENTIFY] = 2,
	[EVENT_LINK_TLS] = 1,
	[EVENT_LINK_AUTH] = 2,
	[EVENT_LINK_DISCONNECT] = 0,
	[EVENT_TX_RESET] = 1,
	[EVENT_TX_BEGIN] = 1,
	[EVENT_TX_MAIL] = 3,
	[EVENT_TX_RCPT] = 3,
	[EVENT_TX_ENVELOPE] = 2,
	[EVENT_TX_DATA] = 2,
	[EVENT_TX_COMMIT] = 2,
	[EVENT_TX_ROLLBACK] = 1,
	[EVENT_PROTOCOL_CLIENT] = 1,
	[EVENT_PROTOCOL_SERVER] = 1,
	[EVENT_FILTER_REPORT] = 3,
	[EVENT_FILTER_RESPONSE] = 3,
	[EVENT_TIMEOUT] = 0,
};

/* What the engine keeps of a session for the session table. */
#define TRACKED_EVENTS	((1U << EVENT_LINK_IDENTIFY) | \
	(1U << EVENT_LINK_TLS) | (1U << EVENT_LINK_AUTH) | \
	(1U << EVENT_TX_RESET) | (1U << EVENT_TX_BEGIN) | \
	(1U << EVENT_TX_MAIL) | (1U << EVENT_TX_RCPT) | \
	(1U << EVENT_TX_COMMIT) | (1U << EVENT_TX_ROLLBACK))

static char	 phase_hooks[NPHASES][32];
static char	 event_hooks[NEVENTS][32];

static void	 lcall_done(struct lcall *, int);

static void
hook_names(void)
{
	char	*p;
	int	 i;

	if (phase_hooks[0][0] != '\0')
		return;
	for (i = 0; i < NPHASES; i++) {
		snprintf(phase_hooks[i], sizeof(phase_hooks[i]), "on_%s",
		    filter_phase_name((enum filter_phase)i));
		for (p = phase_hooks[i]; *p != '\0'; p++)
			if (*p == '-')
				*p = '_';
	}
	for (i = 0; i < NEVENTS; i++) {
		snprintf(event_hooks[i], sizeof(event_hooks[i]), "on_%s",
		    filter_event_name((enum filter_event)i));
		for (p = event_hooks[i]; *p != '\0'; p++)
			if (*p == '-')
				*p = '_';
	}
}

/*
 * The state's allocator: the script may not grow the state past
 * mem_max.  The engine's own work on the state (sessions, arguments)
 * is not limited: it cannot fail half-way.  (The content lines a batch
 * gives on_data_line are made inside the script's run, under the
 * limit: a failure there is the call's.)
 */
static void *
lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lfilter	*lf = ud;
	void		*p;

	if (ptr == NULL)
		osize = 0;
	if (nsize == 0) {
		lua_mem_realloc(ptr, osize, 0);
		lf->mem -= osize;
		return NULL;
	}
	if (lf->limited && nsize > osize &&
	    lf->mem - osize + nsize > lf->mem_max)
		return NULL;
	if ((p = lua_mem_realloc(ptr, osize, nsize)) == NULL)
		return NULL;
	lf->mem = lf->mem - osize + nsize;
	return p;
}

static int
lua_panic(lua_State *L)
{
	const char	*s = lua_tostring(L, -1);

	fatalx("Lua: %s", s != NULL ? s : "unprotected error");
}

/* Every HOOK_STEP instructions of a call. */
static void
count_hook(lua_State *L, lua_Debug *ar)
{
	struct lfilter	*lf;
	void		*ud;

	(void)ar;
	lua_getallocf(L, &ud);
	lf = ud;
	if (lf->running == NULL)
		return;
	lf->running->instructions += HOOK_STEP;
	if (lf->running->instructions <= lf->instructions_max)
		return;
	lua_rawgeti(L, LUA_REGISTRYINDEX, lf->limit_ref);
	lua_error(L);
}

void
lcall_log(struct lfilter *lf, int warn, const char *msg)
{
	struct lcall	*c = lf->running;

	if (c != NULL && c->ls != NULL) {
		if (warn)
			log_warnx("%016" PRIx64 " filter %s: %s", c->ls->fs->id,
			    lf->f->name, msg);
		else
			log_info("%016" PRIx64 " filter %s: %s", c->ls->fs->id,
			    lf->f->name, msg);
	} else if (warn)
		log_warnx("filter %s: %s", lf->f->name, msg);
	else
		log_info("filter %s: %s", lf->f->name, msg);
}

static struct lsession *
lsession_of(struct filter *f, struct fsession *fs)
{
	size_t	 i;

	for (i = 0; fs->chain != NULL && i < fs->chain->nfilters; i++)
		if (fs->chain->filters[i] == f)
			return fs->fstate[i];
	return NULL;
}

/*
 * Calls.
 */
static struct lcall *
lcall_new(struct lfilter *lf, struct lsession *ls, enum lcall_kind kind,
    const char *hook)
{
	struct lcall	*c;

	/* A call a question or a batch: the last one's memory serves. */
	if ((c = lf->spare_call) != NULL) {
		lf->spare_call = NULL;
		memset(c, 0, sizeof(*c));
	} else
		c = xcalloc(1, sizeof(*c));
	c->lf = lf;
	c->ls = ls;
	c->kind = kind;
	c->hook = hook;
	c->msg_ref = LUA_NOREF;
	if (lf->spare != NULL) {
		c->co = lf->spare;
		c->co_ref = lf->spare_ref;
		lf->spare = NULL;
	} else {
		c->co = lua_newthread(lf->L);
		c->co_ref = luaL_ref(lf->L, LUA_REGISTRYINDEX);
		lua_sethook(c->co, count_hook, LUA_MASKCOUNT, HOOK_STEP);
	}
	return c;
}

/* Push the hook's function on the call's stack; 0 if there is none. */
static int
lcall_push_hook(struct lcall *c)
{
	lua_rawgeti(c->co, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_pushstring(c->co, c->hook);
	lua_rawget(c->co, -2);
	lua_remove(c->co, -2);
	if (lua_type(c->co, -1) != LUA_TFUNCTION) {
		lua_pop(c->co, 1);
		return 0;
	}
	return 1;
}

static void
lcall_free(struct lcall *c)
{
	struct lfilter	*lf = c->lf;

	if (c->dns != NULL)
		lua_dns_cancel(c->dns);
	if (c->msg_ref != LUA_NOREF) {
		lua_api_message_done(lf->L, c->msg_ref);
		luaL_unref(lf->L, LUA_REGISTRYINDEX, c->msg_ref);
	}
	if (lua_status(c->co) == LUA_OK && lf->spare == NULL) {
		lua_settop(c->co, 0);
		lf->spare = c->co;
		lf->spare_ref = c->co_ref;
	} else
		luaL_unref(lf->L, LUA_REGISTRYINDEX, c->co_ref);
	if (lf->spare_call == NULL)
		lf->spare_call = c;
	else
		free(c);
}

/* Where the call stopped, and why, as "hook: file:line: what". */
static void
lcall_error(struct lcall *c, int status, char *buf, size_t size)
{
	struct lfilter	*lf = c->lf;
	lua_State	*co = c->co;
	lua_Debug	 ar;
	char		 where[512], src[LUA_IDSIZE + 2], what[512];
	const char	*msg;
	int		 level;

	where[0] = src[0] = '\0';
	/* the innermost line of the script (not of the prelude) */
	for (level = 0; lua_getstack(co, level, &ar); level++) {
		if (!lua_getinfo(co, "Sl", &ar) || ar.currentline <= 0 ||
		    ar.source[0] != '@')
			continue;
		snprintf(where, sizeof(where), "%s:%d", ar.source[0] == '@' ?
		    ar.source + 1 : ar.short_src, ar.currentline);
		snprintf(src, sizeof(src), "%s:", ar.short_src);
		break;
	}
	msg = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : NULL;
	lua_rawgeti(co, LUA_REGISTRYINDEX, lf->limit_ref);
	if (lua_rawequal(co, -1, -2))
		snprintf(what, sizeof(what), "instruction limit of %" PRIu64
		    " exceeded", lf->instructions_max);
	else if (status == LUA_ERRMEM || (msg != NULL &&
	    strstr(msg, "not enough memory") != NULL))
		snprintf(what, sizeof(what), "memory limit of %zu bytes "
		    "exceeded", lf->mem_max);
	else if (msg != NULL) {
		/* A runtime error says where already. */
		if (src[0] != '\0' && strncmp(msg, src, strlen(src)) == 0)
			where[0] = '\0';
		snprintf(what, sizeof(what), "%s", msg);
	} else
		snprintf(what, sizeof(what), "error object is a %s value",
		    luaL_typename(co, -2));
	lua_pop(co, 1);
	if (where[0] != '\0')
		snprintf(buf, size, "%s: %s: %s", c->hook, where, what);
	else
		snprintf(buf, size, "%s: %s", c->hook, what);
}

/* A failed call: the filter fails for what the call was about. */
static void
lcall_fail(struct lcall *c, const char *why)
{
	struct lfilter	*lf = c->lf;
	struct lsession	*ls = c->ls;
	enum lcall_kind	 kind = c->kind;
	uint64_t	 token = c->token;
	struct fsession	*fs;

	lcall_free(c);
	if (ls == NULL) {
		log_warnx("filter %s: %s", lf->f->name, why);
		return;
	}
	fs = ls->fs;
	switch (kind) {
	case LCALL_LOAD:
		break;
	case LCALL_QUERY:
		if (token == ls->query_token)
			filter_failure(lf->f, fs, why);
		else
			log_warnx("%016" PRIx64 " filter %s failed after its "
			    "time: %s", fs->id, lf->f->name, why);
		break;
	case LCALL_DATA_LINE:
	case LCALL_COMMIT:
		if (token != ls->msg_token || ls->msg_failed)
			break;
		ls->msg_failed = 1;
		lmsg_clear(&ls->msg);
		filter_failure(lf->f, fs, why);
		break;
	case LCALL_REPORT:
		lf->f->stats.failures++;
		log_warnx("%016" PRIx64 " filter %s report failed: %s",
		    fs->id, lf->f->name, why);
		break;
	}
}

/*
 * Run (or go on with) a call.  1: it waits for a DNS answer; 0: it is
 * done; -1: it failed (and was dealt with).
 */
int
lfilter_resume(struct lcall *c, int nargs)
{
	struct lfilter	*lf = c->lf;
	char		 why[1024];
	int		 status, nres = 0;

	lf->running = c;
	lf->limited = 1;
	status = lua_resume(c->co, NULL, nargs, &nres);
	lf->limited = 0;
	lf->running = NULL;
	switch (status) {
	case LUA_YIELD:
		lua_pop(c->co, nres);
		if (c->dns != NULL) {
			TAILQ_INSERT_TAIL(&lf->calls, c, entry);
			return 1;
		}
		snprintf(why, sizeof(why), "%s: yielded outside dns.lookup",
		    c->hook);
		lcall_fail(c, why);
		return -1;
	case LUA_OK:
		lcall_done(c, nres);
		return 0;
	default:
		lcall_error(c, status, why, sizeof(why));
		lcall_fail(c, why);
		return -1;
	}
}

/*
 * The message held for on_commit.
 */
static void
emit(struct lsession *ls, const char *line, size_t len)
{
	char	*buf;

	if (ls->msg_failed)
		return;
	if (len > 0 && line[0] != '.' && line[len] == '\0') {
		filter_line(ls->fs, ls->msg_token, line);
		return;
	}
	/* dot-stuffed again (and "" stays "", not the end) */
	buf = xmalloc(len + 2);
	buf[0] = '.';
	memcpy(buf + 1, line, len);
	buf[len + 1] = '\0';
	filter_line(ls->fs, ls->msg_token, buf[1] == '.' ? buf : buf + 1);
	free(buf);
}

/*
 * The filter's scratch texts (the header section out, the lines kept
 * for a batch, the lines out of on_data_line): room for need bytes, and
 * after use no more than SCRATCH_KEEP kept, so that a large message
 * does not keep its memory (but a full batch's, twice LINE_BATCH_MAX
 * with the doubling, is not given back and taken again each time).
 */
#define SCRATCH_KEEP	(4 * LINE_BATCH_MAX)

static char *
scratch_reserve(char *buf, size_t *size, size_t need)
{
	if (need > *size) {
		*size = need < 4096 ? 4096 : need * 2;
		buf = xreallocarray(buf, *size, 1);
	}
	return buf;
}

static void
scratch_trim(char **buf, size_t *size)
{
	if (*size > SCRATCH_KEEP) {
		free(*buf);
		*buf = NULL;
		*size = 0;
	}
}

/*
 * Lines (text: each ended by LF) by the block, when no filter comes
 * after this one: the runs of lines without a leading dot as they are
 * (counted, and their longest measured, in the one pass that finds
 * them), a dotted line stuffed.  0 when they must go one by one.
 */
static int
emit_block(struct lsession *ls, const char *text, size_t len)
{
	const char	*p = text, *end = text + len, *q, *nl;
	size_t		 longest;
	uint32_t	 n;

	if (ls->msg_failed)
		return 1;
	if (!filter_lines(ls->fs, ls->msg_token, p, 0, 0, 0))
		return 0;
	while (p < end && !ls->msg_failed) {
		if (*p == '.') {
			nl = memchr(p, '\n', (size_t)(end - p));
			emit(ls, p, (size_t)(nl - p));	/* stuffed again */
			p = nl + 1;
			continue;
		}
		longest = 0;
		n = 0;
		for (q = p; q < end && *q != '.'; q = nl + 1, n++) {
			nl = memchr(q, '\n', (size_t)(end - q));
			if ((size_t)(nl - q) > longest)
				longest = (size_t)(nl - q);
		}
		filter_lines(ls->fs, ls->msg_token, p, (size_t)(q - p), n,
		    longest);
		p = q;
	}
	return 1;
}

/* Lines (text: each ended by LF), by the block or one by one. */
static void
emit_text(struct lsession *ls, char *text, size_t len)
{
	char	*p, *nl;

	if (emit_block(ls, text, len))
		return;
	for (p = text; p < text + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(text + len - p));
		*nl = '\0';	/* a string for emit(), without a copy */
		emit(ls, p, (size_t)(nl - p));
		*nl = '\n';
	}
}

/* The header section as lines, in the filter's buffer. */
static size_t
header_text(struct lfilter *lf, const struct lmsg *m)
{
	const struct lheader	*h;
	size_t			 i, len = 0, nlen, vlen;

	for (i = 0; i < m->nhdrs; i++) {
		h = &m->hdrs[i];
		nlen = strlen(h->name);
		vlen = strlen(h->value);
		lf->head = scratch_reserve(lf->head, &lf->head_size,
		    len + nlen + vlen + 3);
		memcpy(lf->head + len, h->name, nlen);
		lf->head[len + nlen] = ':';
		memcpy(lf->head + len + nlen + 1, h->value, vlen);
		len += nlen + 1 + vlen;
		lf->head[len++] = '\n';
	}
	if (m->separator || (m->nhdrs > 0 && m->nbody > 0)) {
		lf->head = scratch_reserve(lf->head, &lf->head_size, len + 1);
		lf->head[len++] = '\n';	/* the empty line */
	}
	return len;
}

static void
emit_message(struct lsession *ls)
{
	struct lmsg	*m = &ls->msg;
	struct lfilter	*lf = ls->lf;
	size_t		 len;

	if ((len = header_text(lf, m)) > 0)
		emit_text(ls, lf->head, len);
	if (m->body != NULL)
		emit_text(ls, m->body, m->bodylen);
	scratch_trim(&lf->head, &lf->head_size);
}

/* The lines pass_line() kept, on to the next filter or the frontend. */
static void
emit_out(struct lsession *ls)
{
	struct lfilter	*lf = ls->lf;

	if (lf->out_len > 0 && !ls->msg_failed)
		emit_text(ls, lf->out, lf->out_len);
	lf->out_len = 0;
	scratch_trim(&lf->out, &lf->out_size);
}

/*
 * A line on its way out of this filter (len bytes, not a string): held
 * for on_commit, or kept with the others of the batch until emit_out(),
 * to go on by the block; a batch's worth at a time, so that a script
 * that makes many lines of each does not make them all wait here.
 */
static void
pass_line(struct lsession *ls, const char *line, size_t len)
{
	struct lfilter	*lf = ls->lf;

	if (ls->msg_failed)
		return;
	if (!lf->commit_hook) {
		lf->out = scratch_reserve(lf->out, &lf->out_size,
		    lf->out_len + len + 1);
		memcpy(lf->out + lf->out_len, line, len);
		lf->out[lf->out_len + len] = '\n';
		lf->out_len += len + 1;
		if (lf->out_len >= LINE_BATCH_MAX)
			emit_out(ls);
		return;
	}
	if (lmsg_add(&ls->msg, line, len) == -1) {
		ls->msg_failed = 1;
		lmsg_clear(&ls->msg);
		filter_failure(lf->f, ls->fs, "the message cannot be held for "
		    "on_commit (over 32 MB, or out of memory)");
	}
}

/* Lines as the client sent them (n joined by LF, dot-stuffed), passed. */
static void
pass_lines(struct lsession *ls, const char *lines, size_t len)
{
	const char	*p, *end = lines + len, *nl;

	for (p = lines; p <= end && !ls->msg_failed; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (p < nl && *p == '.')
			pass_line(ls, p + 1, (size_t)(nl - p) - 1);
		else
			pass_line(ls, p, (size_t)(nl - p));
	}
	emit_out(ls);
}

/* What a hook returned, as a decision for its phase. */
static int
call_decision(struct lcall *c, int nres, struct decision *d, char *why,
    size_t size)
{
	char	 err[256];

	if (lua_api_decision(c->co, nres > 0 ? lua_gettop(c->co) - nres + 1 :
	    0, d, err, sizeof(err)) == -1) {
		snprintf(why, size, "%s: bad return value: %s", c->hook, err);
		return -1;
	}
	if (d->kind == DECISION_REWRITE && c->phase != PHASE_HELO &&
	    c->phase != PHASE_EHLO && c->phase != PHASE_MAIL_FROM &&
	    c->phase != PHASE_RCPT_TO) {
		snprintf(why, size, "%s: bad return value: rewrite is only "
		    "for helo, ehlo, mail-from and rcpt-to", c->hook);
		return -1;
	}
	return 0;
}

static void
done_query(struct lcall *c, int nres)
{
	struct fsession	*fs = c->ls->fs;
	struct decision	 d;
	uint64_t	 token = c->token;
	char		 why[512];

	if (call_decision(c, nres, &d, why, sizeof(why)) == -1) {
		lcall_fail(c, why);
		return;
	}
	lcall_free(c);
	filter_answer(fs, token, &d);
}

/*
 * A line out of on_data_line: no CR, LF or NUL in it, unless it is the
 * line the hook was given (the client's, a bare CR and all).  That line
 * is compared by its bytes: the string it came in may be gone.
 */
static int
line_ok(struct lcall *c, const char *s, size_t len)
{
	if (c->line_in != NULL && len == c->line_in_len &&
	    memcmp(s, c->line_in, len) == 0)
		return 1;
	return strlen(s) == len && strpbrk(s, "\r\n") == NULL;
}

/*
 * What on_data_line returned for a line, at the top of the stack: nil,
 * a line or a table of lines, passed on.  0 for anything else.
 */
static int
data_line_result(struct lcall *c, lua_State *co)
{
	struct lsession	*ls = c->ls;
	const char	*s;
	size_t		 len;
	lua_Integer	 i, n;

	switch (lua_type(co, -1)) {
	case LUA_TNIL:
		return 1;
	case LUA_TSTRING:
		s = lua_tolstring(co, -1, &len);
		if (!line_ok(c, s, len))
			return 0;
		pass_line(ls, s, len);
		return 1;
	case LUA_TTABLE:
		break;
	default:
		return 0;
	}
	n = (lua_Integer)lua_rawlen(co, -1);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(co, -1, i);
		s = lua_type(co, -1) == LUA_TSTRING ?
		    lua_tolstring(co, -1, &len) : NULL;
		lua_pop(co, 1);
		if (s == NULL || !line_ok(c, s, len))
			return 0;
	}
	for (i = 1; i <= n && !ls->msg_failed; i++) {
		lua_rawgeti(co, -1, i);
		s = lua_tolstring(co, -1, &len);
		pass_line(ls, s, len);
		lua_pop(co, 1);
	}
	return 1;
}

/*
 * The call's function: on_data_line for each line kept, in one resume
 * of the coroutine rather than one a line.  Arguments: the call, the
 * hook, the session table.  Each line has the instruction limit of a
 * call of its own; an error ends the run (and fails the message).
 */
static int
data_lines_run(lua_State *co)
{
	struct lcall	*c = lua_touserdata(co, 1);
	struct lsession	*ls = c->ls;
	const char	*line, *nl;
	size_t		 len;

	while (c->line_next < ls->lines_len && !ls->msg_failed) {
		line = ls->lines + c->line_next;
		nl = memchr(line, '\n', ls->lines_len - c->line_next);
		len = (size_t)(nl - line);
		c->line_next += len + 1;
		if (line[0] == '.') {		/* unstuffed */
			line++;
			len--;
		}
		c->line_in = line;
		c->line_in_len = len;
		c->instructions = 0;
		lua_settop(co, 3);
		lua_pushvalue(co, 2);
		lua_pushvalue(co, 3);
		/* Not lua_pushstring(): its cache compares the whole line
		 * with the one last pushed from the same address. */
		lua_pushlstring(co, line, len);
		lua_call(co, 2, 1);
		if (!data_line_result(c, co)) {
			c->line_bad = 1;
			break;
		}
	}
	c->line_in = NULL;
	return 0;
}

static void
done_data_lines(struct lcall *c)
{
	char	 why[256];

	if (!c->line_bad) {
		lcall_free(c);
		return;
	}
	snprintf(why, sizeof(why), "%s: bad return value: expected a line, "
	    "a table of lines or nil (no CR, LF or NUL in a line)", c->hook);
	lcall_fail(c, why);
}

static void
done_commit(struct lcall *c, int nres)
{
	struct lsession	*ls = c->ls;
	struct decision	 d;
	uint64_t	 token = c->token;
	char		 why[512];
	size_t		 i;

	if (call_decision(c, nres, &d, why, sizeof(why)) == -1) {
		lcall_fail(c, why);
		return;
	}
	lcall_free(c);
	if (token != ls->msg_token || ls->msg_failed)
		return;
	if (d.kind == DECISION_JUNK) {
		/* Too late for the frontend's mark: this filter adds it. */
		for (i = 0; i < ls->msg.nhdrs; i++)
			if (strcasecmp(ls->msg.hdrs[i].name, "X-Spam") == 0)
				break;
		if (i == ls->msg.nhdrs)
			lmsg_header_add(&ls->msg, "X-Spam", " Yes", 0);
	}
	emit_message(ls);
	lmsg_clear(&ls->msg);
	if (ls->msg_failed)
		return;
	ls->commit = d;
	ls->commit_ready = 1;
	filter_line(ls->fs, token, ".");
}

static void
lcall_done(struct lcall *c, int nres)
{
	switch (c->kind) {
	case LCALL_QUERY:
		done_query(c, nres);
		break;
	case LCALL_DATA_LINE:
		done_data_lines(c);
		break;
	case LCALL_COMMIT:
		done_commit(c, nres);
		break;
	case LCALL_LOAD:
	case LCALL_REPORT:
		lcall_free(c);
		break;
	}
}

/*
 * The filter kind.
 */
int
filter_lua_load(struct filter *f, const char *script, size_t len)
{
	struct lfilter	*lf = f->impl;

	if (lf == NULL) {
		lf = xcalloc(1, sizeof(*lf));
		lf->f = f;
		TAILQ_INIT(&lf->calls);
		f->impl = lf;
	}
	lf->script = xreallocarray(lf->script, lf->script_len + len + 1, 1);
	memcpy(lf->script + lf->script_len, script, len);
	lf->script_len += len;
	lf->script[lf->script_len] = '\0';
	lf->loaded = 1;
	return 0;
}

static int
global_function(lua_State *L, const char *name)
{
	int	 t;

	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_pushstring(L, name);
	lua_rawget(L, -2);
	t = lua_type(L, -1);
	lua_pop(L, 2);
	return t == LUA_TFUNCTION;
}

static int
lua_start(struct filter *f)
{
	struct lfilter	*lf = f->impl;
	struct lcall	*c;
	int		 i;

	hook_names();
	f->ready = 1;
	if (lf == NULL || !lf->loaded) {
		log_warnx("filter %s: the engine did not get its script",
		    f->name);
		f->broken = 1;
		return 0;
	}
	lf->mem_max = f->conf->memory_max ? f->conf->memory_max : DEF_MEMORY;
	lf->instructions_max = f->conf->instructions_max ?
	    f->conf->instructions_max : DEF_INSTRUCTIONS;
	xasprintf(&lf->chunkname, "@%s", f->conf->path);
	if ((lf->L = lua_newstate(lua_alloc, lf)) == NULL) {
		log_warnx("filter %s: no memory for a Lua state", f->name);
		return -1;
	}
	lua_atpanic(lf->L, lua_panic);
	/*
	 * A cycle when the heap is four times what the last one kept
	 * (Lua's default: twice): content lines make many short-lived
	 * strings, and a cycle marks what lives for each.  The memory
	 * limit holds all the same: an allocation refused at the limit
	 * makes Lua collect in full before it fails.
	 */
	lua_gc(lf->L, LUA_GCINC, 400, 0, 0);
	lua_newtable(lf->L);
	lf->limit_ref = luaL_ref(lf->L, LUA_REGISTRYINDEX);
	lua_api_open(lf->L, lf);
	lua_regex_open(lf->L);
	lua_dns_open(lf->L);

	lf->limited = 1;
	i = luaL_loadbufferx(lf->L, lf->script, lf->script_len,
	    lf->chunkname, "t");
	lf->limited = 0;
	free(lf->script);
	lf->script = NULL;
	if (i != LUA_OK) {
		log_warnx("filter %s: %s", f->name, i == LUA_ERRMEM ?
		    "memory limit exceeded loading the script" :
		    lua_tostring(lf->L, -1));
		lua_pop(lf->L, 1);
		f->broken = 1;
		return 0;
	}
	c = lcall_new(lf, NULL, LCALL_LOAD, "the script");
	lua_xmove(lf->L, c->co, 1);
	if (lfilter_resume(c, 0) != 0) {
		f->broken = 1;
		return 0;
	}

	f->phases = f->events = 0;
	for (i = 0; i < NPHASES; i++)
		if (i != PHASE_DATA_LINE && global_function(lf->L,
		    phase_hooks[i]))
			f->phases |= 1U << i;
	lf->line_hook = global_function(lf->L, "on_data_line");
	lf->commit_hook = (f->phases & (1U << PHASE_COMMIT)) != 0;
	if (lf->line_hook || lf->commit_hook)
		f->phases |= 1U << PHASE_DATA_LINE;
	lf->event_hook = global_function(lf->L, "on_event");
	lf->event_hooks = 0;
	for (i = 0; i < NEVENTS; i++)
		if (global_function(lf->L, event_hooks[i]))
			lf->event_hooks |= 1U << i;
	f->events = lf->event_hooks;
	if (lf->event_hook)
		f->events = (1U << NEVENTS) - 1;
	f->events |= TRACKED_EVENTS;
	log_debug("filter %s: %s loaded, phases 0x%x, events 0x%x, %zu bytes",
	    f->name, f->conf->path, f->phases, f->events, lf->mem);
	return 0;
}

static void
lsession_free_calls(struct lsession *ls)
{
	struct lcall	*c, *next;

	for (c = TAILQ_FIRST(&ls->lf->calls); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->ls == ls) {
			TAILQ_REMOVE(&ls->lf->calls, c, entry);
			lcall_free(c);
		}
	}
}

static void
lua_stop(struct filter *f)
{
	struct lfilter	*lf = f->impl;
	struct lcall	*c;

	if (lf == NULL)
		return;
	while ((c = TAILQ_FIRST(&lf->calls)) != NULL) {
		TAILQ_REMOVE(&lf->calls, c, entry);
		lcall_free(c);
	}
	lua_dns_stop(lf);
	free(lf->spare_call);
	if (lf->L != NULL)
		lua_close(lf->L);
	free(lf->chunkname);
	free(lf->script);
	free(lf->head);
	free(lf->out);
	free(lf);
	f->impl = NULL;
}

static void
lua_session_open(struct filter *f, struct fsession *fs)
{
	struct lfilter	*lf = f->impl;
	struct lsession	*ls;
	size_t		 i;

	if (lf == NULL || lf->L == NULL)
		return;
	for (i = 0; i < fs->chain->nfilters; i++)
		if (fs->chain->filters[i] == f)
			break;
	if (i == fs->chain->nfilters)
		return;
	ls = xcalloc(1, sizeof(*ls));
	ls->lf = lf;
	ls->fs = fs;
	lua_newtable(lf->L);
	lua_pushstring(lf->L, "store");
	lua_newtable(lf->L);
	lua_rawset(lf->L, -3);
	ls->table_ref = luaL_ref(lf->L, LUA_REGISTRYINDEX);
	fs->fstate[i] = ls;
}

static void
lua_session_close(struct filter *f, struct fsession *fs)
{
	struct lfilter	*lf = f->impl;
	struct lsession	*ls;
	size_t		 i;

	if (lf == NULL || (ls = lsession_of(f, fs)) == NULL)
		return;
	lsession_free_calls(ls);
	luaL_unref(lf->L, LUA_REGISTRYINDEX, ls->table_ref);
	lmsg_clear(&ls->msg);
	free(ls->lines);
	for (i = 0; i < fs->chain->nfilters; i++)
		if (fs->chain->filters[i] == f)
			fs->fstate[i] = NULL;
	free(ls);
}

static void
lua_query(struct filter *f, struct fsession *fs, enum filter_phase phase,
    const char *param, uint64_t token)
{
	struct lfilter	*lf = f->impl;
	struct lsession	*ls = lsession_of(f, fs);
	struct lcall	*c;
	struct decision	 d;
	int		 nargs = 1;

	memset(&d, 0, sizeof(d));
	d.kind = DECISION_PROCEED;
	if (ls == NULL) {
		filter_failure(f, fs, "no Lua state for the session");
		return;
	}
	if (phase == PHASE_COMMIT && ls->commit_ready) {
		ls->commit_ready = 0;
		d = ls->commit;
		filter_answer(fs, token, &d);
		return;
	}
	ls->query_token = token;
	c = lcall_new(lf, ls, LCALL_QUERY, phase_hooks[phase]);
	c->phase = phase;
	c->token = token;
	c->can_wait = 1;
	if (!lcall_push_hook(c)) {
		lcall_free(c);
		filter_answer(fs, token, &d);
		return;
	}
	lua_api_session(c->co, ls);
	switch (phase) {
	case PHASE_CONNECT:
		if (fs->rdns[0] != '\0')
			lua_pushstring(c->co, fs->rdns);
		else
			lua_pushnil(c->co);
		lua_pushstring(c->co, fs->addr);
		nargs += 2;
		break;
	case PHASE_HELO:
	case PHASE_EHLO:
	case PHASE_AUTH:
	case PHASE_MAIL_FROM:
	case PHASE_RCPT_TO:
		lua_pushstring(c->co, param);
		nargs++;
		break;
	case PHASE_COMMIT:
		/* no message went through this filter */
		lua_pushnil(c->co);
		nargs++;
		break;
	default:
		break;
	}
	lfilter_resume(c, nargs);
}

static void
message_end(struct lsession *ls, uint64_t token)
{
	struct lfilter	*lf = ls->lf;
	struct lcall	*c;

	if (!lf->commit_hook) {
		filter_line(ls->fs, token, ".");
		return;
	}
	c = lcall_new(lf, ls, LCALL_COMMIT, "on_commit");
	c->phase = PHASE_COMMIT;
	c->token = token;
	c->can_wait = 1;
	if (!lcall_push_hook(c)) {
		lcall_free(c);
		emit_message(ls);
		lmsg_clear(&ls->msg);
		filter_line(ls->fs, token, ".");
		return;
	}
	lua_api_session(c->co, ls);
	lua_api_message(c->co, &ls->msg);
	lua_pushvalue(c->co, -1);
	c->msg_ref = luaL_ref(c->co, LUA_REGISTRYINDEX);
	lfilter_resume(c, 2);
}

/*
 * Lines for on_data_line (len bytes: one, or a block of them joined by
 * LF; dot-stuffed), kept until the batch they came in ends.
 */
static void
data_lines_keep(struct lsession *ls, const char *lines, size_t len)
{
	ls->lines = scratch_reserve(ls->lines, &ls->lines_size,
	    ls->lines_len + len + 1);
	memcpy(ls->lines + ls->lines_len, lines, len);
	ls->lines[ls->lines_len + len] = '\n';
	ls->lines_len += len + 1;
}

/* The lines kept, through on_data_line. */
static void
data_lines_flush(struct lsession *ls)
{
	struct lcall	*c;

	if (ls->lines_len == 0)
		return;
	if (ls->msg_failed) {
		ls->lines_len = 0;
		return;
	}
	c = lcall_new(ls->lf, ls, LCALL_DATA_LINE, "on_data_line");
	c->phase = PHASE_DATA_LINE;
	c->token = ls->msg_token;
	lua_pushcfunction(c->co, data_lines_run);
	lua_pushlightuserdata(c->co, c);
	if (!lcall_push_hook(c)) {
		/* gone since the script started: the lines pass */
		lua_settop(c->co, 0);
		lcall_free(c);
		pass_lines(ls, ls->lines, ls->lines_len - 1);
	} else {
		lua_api_session(c->co, ls);
		lfilter_resume(c, 3);
	}
	ls->lines_len = 0;
	scratch_trim(&ls->lines, &ls->lines_size);
	emit_out(ls);
}

/* A line or a block of lines for this filter: of a new message? */
static struct lsession *
data_lsession(struct filter *f, struct fsession *fs, uint64_t token)
{
	struct lsession	*ls = lsession_of(f, fs);

	if (ls == NULL) {
		filter_failure(f, fs, "no Lua state for the session");
		return NULL;
	}
	if (token != ls->msg_token) {
		lmsg_clear(&ls->msg);
		ls->msg_token = token;
		ls->msg_failed = 0;
		ls->commit_ready = 0;
		ls->lines_len = 0;	/* an aborted message's */
	}
	return ls;
}

static void
lua_data_line(struct filter *f, struct fsession *fs, const char *line,
    uint64_t token)
{
	struct lfilter	*lf = f->impl;
	struct lsession	*ls;

	if ((ls = data_lsession(f, fs, token)) == NULL)
		return;
	if (strcmp(line, ".") == 0) {
		data_lines_flush(ls);	/* the lines before it first */
		if (!ls->msg_failed)
			message_end(ls, token);
		return;
	}
	if (ls->msg_failed)
		return;
	if (!lf->line_hook) {
		pass_lines(ls, line, strlen(line));
		return;
	}
	data_lines_keep(ls, line, strlen(line));
	if (!filter_data_batching(fs))
		data_lines_flush(ls);
}

/*
 * A batch's lines before the message's end at once: kept as they come
 * for on_data_line (one copy for the batch, where they would be split
 * and copied a line at a time), or held for on_commit.
 */
static void
lua_data_block(struct filter *f, struct fsession *fs, const char *lines,
    size_t len, uint32_t n, uint64_t token)
{
	struct lfilter	*lf = f->impl;
	struct lsession	*ls;

	(void)n;
	if ((ls = data_lsession(f, fs, token)) == NULL || ls->msg_failed)
		return;
	if (!lf->line_hook) {
		pass_lines(ls, lines, len);
		return;
	}
	data_lines_keep(ls, lines, len);
	if (!filter_data_batching(fs))
		data_lines_flush(ls);
}

static void
lua_data_flush(struct filter *f, struct fsession *fs, uint64_t token)
{
	struct lsession	*ls = lsession_of(f, fs);

	if (ls == NULL)
		return;
	if (token != ls->msg_token) {
		ls->lines_len = 0;	/* a failed message's */
		return;
	}
	data_lines_flush(ls);
}

static void
report_call(struct lfilter *lf, struct lsession *ls, const char *hook,
    enum filter_event ev, const char *params, int split)
{
	struct lcall	*c;
	const char	*p, *bar;
	int		 nargs = 1, n;

	c = lcall_new(lf, ls, LCALL_REPORT, hook);
	if (!lcall_push_hook(c)) {
		lcall_free(c);
		return;
	}
	lua_api_session(c->co, ls);
	if (!split) {
		lua_pushstring(c->co, filter_event_name(ev));
		lua_pushstring(c->co, params);
		nargs += 2;
	} else {
		/* the last field takes the rest: it may hold '|' */
		for (p = params, n = event_fields[ev]; n > 0; n--, nargs++) {
			if (n > 1 && (bar = strchr(p, '|')) != NULL) {
				lua_pushlstring(c->co, p, (size_t)(bar - p));
				p = bar + 1;
			} else {
				lua_pushstring(c->co, p);
				p += strlen(p);
			}
		}
	}
	lfilter_resume(c, nargs);
}

static void
lua_report(struct filter *f, struct fsession *fs, enum filter_event ev,
    const char *params)
{
	struct lfilter	*lf = f->impl;
	struct lsession	*ls = lsession_of(f, fs);

	if (ls == NULL || (unsigned)ev >= NEVENTS)
		return;
	if (lf->event_hooks & (1U << ev))
		report_call(lf, ls, event_hooks[ev], ev, params, 1);
	if (lf->event_hook && (ls = lsession_of(f, fs)) != NULL)
		report_call(lf, ls, "on_event", ev, params, 0);
}

const struct filter_ops filter_lua_ops = {
	.start = lua_start,
	.session_open = lua_session_open,
	.session_close = lua_session_close,
	.report = lua_report,
	.query = lua_query,
	.data_line = lua_data_line,
	.data_block = lua_data_block,
	.data_flush = lua_data_flush,
	.stop = lua_stop,
};
