/*
 * What a Lua filter's script sees (SPEC.md section 2.4): the sandbox
 * (base, string, table, math, utf8 and coroutine; no io, os, package,
 * debug, no bytecode, no finalizers), the decisions, log, the session
 * table and the message object of on_commit.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "filter.h"
#include "log.h"
#include "lua_filter.h"
#include "monkey.h"
#include "xmalloc.h"

#define DECISION_MT	"smtpfd.decision"
#define MESSAGE_MT	"smtpfd.message"
#define LOG_MAX		1000

/*
 * Run with the limit's error object as its argument, once per state:
 * pcall and friends may not swallow the limits' errors, setmetatable
 * may not set a finalizer (it would run outside the limits), load
 * takes text only.
 */
static const char prelude[] =
	"local LIMIT = ...\n"
	"local rawpcall, rawxpcall, rawerror, rawload = pcall, xpcall, "
	    "error, load\n"
	"local rawsetmt, rawget, rawequal, type, tostring = setmetatable, "
	    "rawget, rawequal, type, tostring\n"
	"local resume, gc = coroutine.resume, collectgarbage\n"
	"local function fatal(e)\n"
	"  return rawequal(e, LIMIT) or (type(e) == 'string' and\n"
	"    e:find('not enough memory', 1, true) ~= nil)\n"
	"end\n"
	"local function pass(ok, ...)\n"
	"  if not ok and fatal((...)) then rawerror((...), 0) end\n"
	"  return ok, ...\n"
	"end\n"
	"pcall = function(f, ...) return pass(rawpcall(f, ...)) end\n"
	"xpcall = function(f, h, ...)\n"
	"  return pass(rawxpcall(f, function(e)\n"
	"    if fatal(e) then return e end\n"
	"    return h(e)\n"
	"  end, ...))\n"
	"end\n"
	"coroutine.resume = function(co, ...) return pass(resume(co, ...)) "
	    "end\n"
	"setmetatable = function(t, mt)\n"
	"  if type(mt) == 'table' and rawget(mt, '__gc') ~= nil then\n"
	"    rawerror('setmetatable: __gc is not available to filters', 2)\n"
	"  end\n"
	"  return rawsetmt(t, mt)\n"
	"end\n"
	"load = function(chunk, name, mode, env)\n"
	"  if env == nil then return rawload(chunk, name, 't') end\n"
	"  return rawload(chunk, name, 't', env)\n"
	"end\n"
	"collectgarbage = function(opt, ...)\n"
	"  if opt == nil or opt == 'collect' or opt == 'count' or\n"
	"      opt == 'step' then\n"
	"    return gc(opt, ...)\n"
	"  end\n"
	"  rawerror('collectgarbage: ' .. tostring(opt) .. ' is not "
	    "available to filters', 2)\n"
	"end\n"
	"dofile, loadfile, string.dump = nil, nil, nil\n"
	"print = log.info\n";

static struct lfilter *
lfilter_of(lua_State *L)
{
	void	*ud;

	lua_getallocf(L, &ud);
	return ud;
}

/*
 * Decisions: tables with their own metatable, made by proceed(),
 * reject(), disconnect(), rewrite(), junk() and report().
 */
static int
push_decision(lua_State *L, enum decision_kind kind, const char *text)
{
	lua_createtable(L, 0, 2);
	lua_pushinteger(L, kind);
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, decision_name(kind));
	lua_setfield(L, -2, "decision");
	if (text != NULL) {
		lua_pushstring(L, text);
		lua_setfield(L, -2, "text");
	}
	luaL_setmetatable(L, DECISION_MT);
	return 1;
}

/* "550 5.7.1 text": a reply for the client. */
static int
valid_reply(const char *s, size_t len)
{
	return len >= 5 && len < DECISION_TEXT_MAX && strlen(s) == len &&
	    (s[0] == '4' || s[0] == '5') && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) && s[3] == ' ' &&
	    strpbrk(s, "\r\n") == NULL;
}

static int
reply_decision(lua_State *L, enum decision_kind kind, const char *dflt)
{
	const char	*fn = decision_name(kind), *s;
	size_t		 len;

	if (lua_isnoneornil(L, 1))
		return push_decision(L, kind, dflt);
	if (lua_type(L, 1) == LUA_TNUMBER) {
		lua_pushfstring(L, "%d %s", (int)luaL_checkinteger(L, 1),
		    luaL_optstring(L, 2, kind == DECISION_REJECT ?
		    "Rejected" : "Closing connection"));
		lua_replace(L, 1);
	}
	s = luaL_checklstring(L, 1, &len);
	if (!valid_reply(s, len))
		return luaL_error(L, "%s: \"%s\" is not a reply such as "
		    "\"550 5.7.1 text\" (4xx or 5xx, one line)", fn, s);
	return push_decision(L, kind, s);
}

static int
l_proceed(lua_State *L)
{
	return push_decision(L, DECISION_PROCEED, NULL);
}

static int
l_reject(lua_State *L)
{
	return reply_decision(L, DECISION_REJECT, "550 5.7.1 Rejected");
}

static int
l_disconnect(lua_State *L)
{
	return reply_decision(L, DECISION_DISCONNECT,
	    "421 4.7.0 Closing connection");
}

static int
text_decision(lua_State *L, enum decision_kind kind)
{
	const char	*s;
	size_t		 len;

	s = luaL_checklstring(L, 1, &len);
	if (len >= DECISION_TEXT_MAX || strlen(s) != len ||
	    strpbrk(s, "\r\n") != NULL)
		return luaL_error(L, "%s: the text must be one line under %d "
		    "bytes", decision_name(kind), DECISION_TEXT_MAX);
	return push_decision(L, kind, s);
}

static int
l_rewrite(lua_State *L)
{
	return text_decision(L, DECISION_REWRITE);
}

static int
l_report(lua_State *L)
{
	return text_decision(L, DECISION_REPORT);
}

static int
l_junk(lua_State *L)
{
	return push_decision(L, DECISION_JUNK, NULL);
}

/* The value at idx (0: none) as a decision; -1 with err if it is not. */
int
lua_api_decision(lua_State *L, int idx, struct decision *d, char *err,
    size_t size)
{
	lua_Integer	 kind;
	const char	*s;

	memset(d, 0, sizeof(*d));
	d->kind = DECISION_PROCEED;
	if (idx == 0 || lua_isnil(L, idx))
		return 0;
	if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) {
		snprintf(err, size, "expected a decision (proceed(), "
		    "reject(...), ...) or nil, got a %s value",
		    luaL_typename(L, idx));
		return -1;
	}
	luaL_getmetatable(L, DECISION_MT);
	if (!lua_rawequal(L, -1, -2)) {
		lua_pop(L, 2);
		snprintf(err, size, "expected a decision (proceed(), "
		    "reject(...), ...) or nil, got a table");
		return -1;
	}
	lua_pop(L, 2);
	lua_pushstring(L, "kind");
	lua_rawget(L, idx);
	kind = lua_tointeger(L, -1);
	lua_pop(L, 1);
	lua_pushstring(L, "text");
	lua_rawget(L, idx);
	s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
	snprintf(d->text, sizeof(d->text), "%s", s);
	lua_pop(L, 1);
	if (kind < DECISION_PROCEED || kind > DECISION_DISCONNECT ||
	    kind == DECISION_BYPASS) {
		snprintf(err, size, "a decision was tampered with");
		return -1;
	}
	d->kind = (enum decision_kind)kind;
	if ((d->kind == DECISION_REJECT || d->kind == DECISION_DISCONNECT) &&
	    !valid_reply(d->text, strlen(d->text))) {
		snprintf(err, size, "a decision was tampered with");
		return -1;
	}
	return 0;
}

/*
 * log.info(...), log.warn(...), log.debug(...): the values as tostring
 * gives them, separated by spaces.
 */
static int
log_any(lua_State *L, int level)
{
	struct lfilter	*lf = lfilter_of(L);
	luaL_Buffer	 b;
	const char	*s;
	char		 line[LOG_MAX + 1];
	size_t		 len, i, n;
	int		 arg, nargs = lua_gettop(L);

	luaL_buffinit(L, &b);
	for (arg = 1; arg <= nargs; arg++) {
		if (arg > 1)
			luaL_addchar(&b, ' ');
		luaL_tolstring(L, arg, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	s = lua_tolstring(L, -1, &len);
	for (i = 0, n = 0; i < len && n < LOG_MAX; i++, n++)
		line[n] = isprint((unsigned char)s[i]) ? s[i] : '?';
	line[n] = '\0';
	if (level == 2) {
		if (log_getverbose() > 0)
			lcall_log(lf, 0, line);
	} else
		lcall_log(lf, level, line);
	return 0;
}

static int
l_log_info(lua_State *L)
{
	return log_any(L, 0);
}

static int
l_log_warn(lua_State *L)
{
	return log_any(L, 1);
}

static int
l_log_debug(lua_State *L)
{
	return log_any(L, 2);
}

/*
 * The session table.  Its "store" stays from hook to hook; the rest is
 * set again before each call, from what the engine knows.
 */
static void
set_string(lua_State *L, const char *k, const char *v)
{
	lua_pushstring(L, k);
	if (v != NULL && v[0] != '\0')
		lua_pushstring(L, v);
	else
		lua_pushnil(L);
	lua_rawset(L, -3);
}

static void
set_integer(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushstring(L, k);
	lua_pushinteger(L, v);
	lua_rawset(L, -3);
}

static void
set_boolean(lua_State *L, const char *k, int v)
{
	lua_pushstring(L, k);
	lua_pushboolean(L, v);
	lua_rawset(L, -3);
}

void
lua_api_session(lua_State *L, struct lsession *ls)
{
	struct fsession	*fs = ls->fs;
	char		 buf[32];
	size_t		 i;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ls->table_ref);
	/* Nothing changed since the last call (a message's lines). */
	if (ls->table_synced && ls->table_version == fs->version &&
	    ls->table_link_version == fs->link_version)
		return;
	if (!ls->table_synced) {
		/* What the session is from its start to its end. */
		snprintf(buf, sizeof(buf), "%016" PRIx64, fs->id);
		set_string(L, "id", buf);
		set_string(L, "filter", ls->lf->f->name);
		set_string(L, "addr", fs->addr);
		set_integer(L, "port", fs->port);
		set_string(L, "local_addr", fs->local_addr);
		set_integer(L, "local_port", fs->local_port);
		set_string(L, "rdns", fs->rdns);
		set_string(L, "tag", fs->tag);
	}
	if (!ls->table_synced || ls->table_link_version != fs->link_version) {
		set_string(L, "helo", fs->helo);
		set_boolean(L, "tls", fs->tls);
		set_string(L, "tls_info", fs->tls_info);
		set_string(L, "user", fs->auth_user);
		ls->table_link_version = fs->link_version;
	}
	if (ls->table_synced && ls->table_version == fs->version)
		return;
	ls->table_synced = 1;
	ls->table_version = fs->version;
	if (fs->msgid != 0) {
		snprintf(buf, sizeof(buf), "%08x", fs->msgid);
		set_string(L, "msgid", buf);
	} else
		set_string(L, "msgid", NULL);
	set_string(L, "sender", fs->mail_from);
	set_boolean(L, "junk", fs->junk);
	lua_pushstring(L, "recipients");
	lua_createtable(L, (int)fs->nrcpts, 0);
	for (i = 0; i < fs->nrcpts; i++) {
		lua_pushstring(L, fs->rcpts[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_rawset(L, -3);
}

/*
 * The message of on_commit, kept in C: headers parsed, body lines
 * unstuffed.
 */

/* One body's memory kept for the next message, whichever session's. */
#define SPARE_BODY_MAX	(256 * 1024)
static char	*spare_body;
static size_t	 spare_body_size;

void
lmsg_clear(struct lmsg *m)
{
	size_t	 i;

	for (i = 0; i < m->nhdrs; i++) {
		free(m->hdrs[i].name);
		free(m->hdrs[i].value);
	}
	free(m->hdrs);
	if (m->body != NULL && spare_body == NULL &&
	    m->bodysize <= SPARE_BODY_MAX) {
		spare_body = m->body;
		spare_body_size = m->bodysize;
	} else
		free(m->body);
	memset(m, 0, sizeof(*m));
}

/* "Name:" at the start of a header line: the name's length, or 0. */
static size_t
header_name_len(const char *line, size_t len)
{
	size_t	 i;

	for (i = 0; i < len && line[i] > ' ' && line[i] < 127 &&
	    line[i] != ':'; i++)
		;
	return i > 0 && i < len && line[i] == ':' ? i : 0;
}

/* Room for one more header: the array grows by doubling. */
static void
hdrs_grow(struct lmsg *m)
{
	if (m->nhdrs < m->hdrs_size)
		return;
	m->hdrs_size = m->hdrs_size ? m->hdrs_size * 2 : 16;
	m->hdrs = xreallocarray(m->hdrs, m->hdrs_size, sizeof(*m->hdrs));
}

/*
 * A folded line onto a header's value, in place: a client's header of
 * many short folded lines costs its length, not its length squared.
 */
static void
header_fold(struct lheader *h, const char *line, size_t len)
{
	if (h->value_size == 0) {
		h->value_len = strlen(h->value);
		h->value_size = h->value_len + 1;
	}
	if (h->value_len + len + 2 > h->value_size) {
		h->value_size = (h->value_len + len + 2) * 2;
		h->value = xreallocarray(h->value, h->value_size, 1);
	}
	h->value[h->value_len++] = '\n';
	memcpy(h->value + h->value_len, line, len);
	h->value_len += len;
	h->value[h->value_len] = '\0';
}

int
lmsg_header_add(struct lmsg *m, const char *name, const char *value,
    int pos)
{
	size_t	 n = (size_t)pos;

	if (pos < 0 || n > m->nhdrs)
		n = m->nhdrs;
	hdrs_grow(m);
	memmove(&m->hdrs[n + 1], &m->hdrs[n],
	    (m->nhdrs - n) * sizeof(*m->hdrs));
	memset(&m->hdrs[n], 0, sizeof(m->hdrs[n]));
	m->hdrs[n].name = xstrdup(name);
	m->hdrs[n].value = xstrdup(value);
	m->nhdrs++;
	m->bytes += strlen(name) + strlen(value) + 3;
	return 0;
}

/*
 * One text for the body: a line costs no allocation of its own.  The
 * body is the client's (up to 32 MB): -1 when there is no memory for
 * it, which fails the message, not the engine.
 */
static int
body_add(struct lmsg *m, const char *line, size_t len)
{
	size_t	 size;
	char	*body;

	if (m->body == NULL && spare_body != NULL) {
		m->body = spare_body;
		m->bodysize = spare_body_size;
		spare_body = NULL;
	}
	if (m->bodylen + len + 1 > m->bodysize) {
		size = (m->bodylen + len + 1) * 2;
		if (MONKEY("lua.body", ENOMEM) ||
		    (body = realloc(m->body, size)) == NULL)
			return -1;
		m->body = body;
		m->bodysize = size;
	}
	memcpy(m->body + m->bodylen, line, len);
	m->body[m->bodylen + len] = '\n';
	m->bodylen += len + 1;
	m->nbody++;
	return 0;
}

/*
 * One more (unstuffed) line of the message, len bytes, not a string (a
 * line in the batch it came in); -1 past LMSG_MAX, or with no memory
 * left for the body.
 */
int
lmsg_add(struct lmsg *m, const char *line, size_t len)
{
	struct lheader	*h;
	size_t		 n;

	if (m->bytes + len + 2 > LMSG_MAX)
		return -1;
	if (!m->in_body) {
		if (len == 0) {
			m->in_body = m->separator = 1;
			m->bytes += 2;
			return 0;
		}
		if ((line[0] == ' ' || line[0] == '\t') && m->nhdrs > 0) {
			header_fold(&m->hdrs[m->nhdrs - 1], line, len);
			m->bytes += len + 2;
			return 0;
		}
		if ((n = header_name_len(line, len)) > 0) {
			hdrs_grow(m);
			h = &m->hdrs[m->nhdrs++];
			memset(h, 0, sizeof(*h));
			h->name = xstrndup(line, n);
			h->value = xstrndup(line + n + 1, len - n - 1);
			m->bytes += len + 2;
			return 0;
		}
		/* not a header: the body starts without a blank line */
		m->in_body = 1;
	}
	if (body_add(m, line, len) == -1)
		return -1;
	m->bytes += len + 2;
	return 0;
}

static struct lmsg *
check_message(lua_State *L)
{
	struct lmsg	**mp = luaL_checkudata(L, 1, MESSAGE_MT);

	if (*mp == NULL)
		luaL_error(L, "the message is gone: it exists during on_commit "
		    "only");
	return *mp;
}

/* A header's value as a script sees it: unfolded, trimmed. */
static void
push_value(lua_State *L, const char *v)
{
	luaL_Buffer	 b;
	size_t		 len;

	while (*v == ' ' || *v == '\t')
		v++;
	len = strlen(v);
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	luaL_buffinit(L, &b);
	for (; len > 0; v++, len--)
		if (*v != '\n')
			luaL_addchar(&b, *v);
	luaL_pushresult(&b);
}

static const char *
check_name(lua_State *L, int arg)
{
	const char	*s;
	size_t		 len, i;

	s = luaL_checklstring(L, arg, &len);
	for (i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] >= 127 || s[i] == ':')
			break;
	if (len == 0 || i < len)
		luaL_error(L, "\"%s\" is not a header name", s);
	return s;
}

/* A value as given: folded lines must go on with a blank. */
static const char *
check_value(lua_State *L, int arg)
{
	const char	*s;
	size_t		 len, i;

	s = luaL_checklstring(L, arg, &len);
	for (i = 0; i < len; i++)
		if (s[i] == '\0' || s[i] == '\r' || (s[i] == '\n' &&
		    s[i + 1] != ' ' && s[i + 1] != '\t'))
			luaL_error(L, "a header value may hold a newline only "
			    "before a space or a tab (folding), and no CR or "
			    "NUL");
	if (len > 64 * 1024)
		luaL_error(L, "a header value over 64 KB");
	return s;
}

/* msg:header(name [, n]): the n-th (default 1st) such header's value */
static int
m_header(lua_State *L)
{
	struct lmsg	*m = check_message(L);
	const char	*name = check_name(L, 2);
	lua_Integer	 n = luaL_optinteger(L, 3, 1);
	size_t		 i;

	for (i = 0; i < m->nhdrs; i++)
		if (strcasecmp(m->hdrs[i].name, name) == 0 && --n == 0) {
			push_value(L, m->hdrs[i].value);
			return 1;
		}
	lua_pushnil(L);
	return 1;
}

/* msg:headers([name]): { { name = ..., value = ... }, ... } */
static int
m_headers(lua_State *L)
{
	struct lmsg	*m = check_message(L);
	const char	*name = lua_isnoneornil(L, 2) ? NULL : check_name(L, 2);
	lua_Integer	 n = 0;
	size_t		 i;

	lua_newtable(L);
	for (i = 0; i < m->nhdrs; i++) {
		if (name != NULL && strcasecmp(m->hdrs[i].name, name) != 0)
			continue;
		lua_createtable(L, 0, 2);
		lua_pushstring(L, m->hdrs[i].name);
		lua_setfield(L, -2, "name");
		push_value(L, m->hdrs[i].value);
		lua_setfield(L, -2, "value");
		lua_rawseti(L, -2, ++n);
	}
	return 1;
}

/* msg:add_header(name, value [, "top"]): at the end, or first */
static int
m_add_header(lua_State *L)
{
	struct lmsg	*m = check_message(L);
	const char	*name = check_name(L, 2), *value = check_value(L, 3);
	const char	*where = luaL_optstring(L, 4, "bottom");
	char		*v;

	if (strcmp(where, "top") != 0 && strcmp(where, "bottom") != 0)
		return luaL_error(L, "add_header: \"%s\": expected \"top\" "
		    "or \"bottom\"", where);
	if (m->bytes + strlen(name) + strlen(value) + 4 > LMSG_MAX)
		return luaL_error(L, "add_header: the message would be over "
		    "32 MB");
	xasprintf(&v, " %s", value);
	lmsg_header_add(m, name, v, strcmp(where, "top") == 0 ? 0 : -1);
	free(v);
	return 0;
}

/* msg:change_header(name, value [, n]): true if there was one */
static int
m_change_header(lua_State *L)
{
	struct lmsg	*m = check_message(L);
	const char	*name = check_name(L, 2), *value = check_value(L, 3);
	lua_Integer	 n = luaL_optinteger(L, 4, 1);
	size_t		 i;
	char		*v;

	if (m->bytes + strlen(value) + 1 > LMSG_MAX)
		return luaL_error(L, "change_header: the message would be "
		    "over 32 MB");
	for (i = 0; i < m->nhdrs; i++)
		if (strcasecmp(m->hdrs[i].name, name) == 0 && --n == 0) {
			xasprintf(&v, " %s", value);
			m->bytes += strlen(v);
			m->bytes -= strlen(m->hdrs[i].value);
			free(m->hdrs[i].value);
			m->hdrs[i].value = v;
			m->hdrs[i].value_size = 0;
			lua_pushboolean(L, 1);
			return 1;
		}
	lua_pushboolean(L, 0);
	return 1;
}

/* msg:remove_header(name [, n]): the n-th, or all; how many went */
static int
m_remove_header(lua_State *L)
{
	struct lmsg	*m = check_message(L);
	const char	*name = check_name(L, 2);
	lua_Integer	 n = luaL_optinteger(L, 3, 0), seen = 0, removed = 0;
	size_t		 i, kept = 0;

	/* One pass that keeps the others in order: no move per removal. */
	for (i = 0; i < m->nhdrs; i++) {
		if (strcasecmp(m->hdrs[i].name, name) != 0 ||
		    (n > 0 && ++seen != n)) {
			m->hdrs[kept++] = m->hdrs[i];
			continue;
		}
		m->bytes -= strlen(m->hdrs[i].name) +
		    strlen(m->hdrs[i].value) + 3;
		free(m->hdrs[i].name);
		free(m->hdrs[i].value);
		removed++;
	}
	m->nhdrs = kept;
	lua_pushinteger(L, removed);
	return 1;
}

/* msg:body(): the body, each line ended with "\n" */
static int
m_body(lua_State *L)
{
	struct lmsg	*m = check_message(L);

	lua_pushlstring(L, m->body != NULL ? m->body : "", m->bodylen);
	return 1;
}

/* msg:set_body(text): lines end with "\n" (or "\r\n") */
static int
m_set_body(lua_State *L)
{
	struct lmsg	*m = check_message(L);
	struct lmsg	 nb;
	const char	*s, *p, *nl;
	size_t		 len, old, bytes;

	s = luaL_checklstring(L, 2, &len);
	if (strlen(s) != len)
		return luaL_error(L, "set_body: the body holds a NUL");
	old = m->bodylen + m->nbody;	/* CRLF counted */
	if (m->bytes - old + len * 2 > LMSG_MAX)
		return luaL_error(L, "set_body: the message would be over "
		    "32 MB");
	/* no Lua call from here on: nothing may leak */
	memset(&nb, 0, sizeof(nb));
	for (bytes = 0, p = s; *p != '\0'; ) {
		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p);
		len = (size_t)(nl - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (body_add(&nb, p, len) == -1) {
			free(nb.body);
			return luaL_error(L, "set_body: not enough memory");
		}
		bytes += len + 2;
		p = *nl == '\n' ? nl + 1 : nl;
	}
	free(m->body);
	m->body = nb.body;
	m->bodylen = nb.bodylen;
	m->bodysize = nb.bodysize;
	m->nbody = nb.nbody;
	m->bytes = m->bytes - old + bytes;
	if (m->nbody > 0 && m->nhdrs > 0)
		m->separator = 1;
	return 0;
}

/* msg:size(): bytes, CRLF counted */
static int
m_size(lua_State *L)
{
	struct lmsg	*m = check_message(L);

	lua_pushinteger(L, (lua_Integer)m->bytes);
	return 1;
}

void
lua_api_message(lua_State *L, struct lmsg *m)
{
	struct lmsg	**mp;

	mp = lua_newuserdatauv(L, sizeof(*mp), 0);
	*mp = m;
	luaL_setmetatable(L, MESSAGE_MT);
}

/* on_commit returned: a message object kept by the script is dead. */
void
lua_api_message_done(lua_State *L, int ref)
{
	struct lmsg	**mp;

	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	if ((mp = lua_touserdata(L, -1)) != NULL)
		*mp = NULL;
	lua_pop(L, 1);
}

void
lua_api_open(lua_State *L, struct lfilter *lf)
{
	static const luaL_Reg	 libs[] = {
		{ LUA_GNAME, luaopen_base },
		{ LUA_TABLIBNAME, luaopen_table },
		{ LUA_STRLIBNAME, luaopen_string },
		{ LUA_MATHLIBNAME, luaopen_math },
		{ LUA_UTF8LIBNAME, luaopen_utf8 },
		{ LUA_COLIBNAME, luaopen_coroutine },
		{ NULL, NULL }
	};
	static const luaL_Reg	 decisions[] = {
		{ "proceed", l_proceed },
		{ "reject", l_reject },
		{ "disconnect", l_disconnect },
		{ "rewrite", l_rewrite },
		{ "junk", l_junk },
		{ "report", l_report },
		{ NULL, NULL }
	};
	static const luaL_Reg	 logf[] = {
		{ "info", l_log_info },
		{ "warn", l_log_warn },
		{ "debug", l_log_debug },
		{ NULL, NULL }
	};
	static const luaL_Reg	 msgf[] = {
		{ "header", m_header },
		{ "headers", m_headers },
		{ "add_header", m_add_header },
		{ "change_header", m_change_header },
		{ "remove_header", m_remove_header },
		{ "body", m_body },
		{ "set_body", m_set_body },
		{ "size", m_size },
		{ NULL, NULL }
	};
	const luaL_Reg		*l;

	(void)lf;
	for (l = libs; l->name != NULL; l++) {
		luaL_requiref(L, l->name, l->func, 1);
		lua_pop(L, 1);
	}
	lua_pushglobaltable(L);
	luaL_setfuncs(L, decisions, 0);
	lua_pop(L, 1);
	luaL_newlib(L, logf);
	lua_setglobal(L, "log");

	luaL_newmetatable(L, DECISION_MT);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	luaL_newmetatable(L, MESSAGE_MT);
	luaL_newlib(L, msgf);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);

	if (luaL_loadbufferx(L, prelude, sizeof(prelude) - 1, "=prelude",
	    "t") != LUA_OK)
		fatalx("Lua prelude: %s", lua_tostring(L, -1));
	lua_rawgeti(L, LUA_REGISTRYINDEX, lf->limit_ref);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK)
		fatalx("Lua prelude: %s", lua_tostring(L, -1));
}
