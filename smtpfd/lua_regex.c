/*
 * PCRE2 for Lua filters:
 *
 *	re = regex.compile(pattern [, flags])	flags: i m s x u
 *	re:test(s)			true or false
 *	re:match(s [, init])		the captures (or the whole match), nil
 *	re:find(s [, init])		start, end, captures...; nil
 *	re:gsub(s, repl [, max])	new string, count; repl a string with
 *					$0..$9, ${N}, $$, or a function of the
 *					captures, or a table keyed by them
 *
 * Matching has PCRE2's match and depth limits, so that a pathological
 * pattern fails (an error in the script) instead of holding the engine.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <lauxlib.h>
#include <lua.h>

#include "log.h"
#include "lua_filter.h"

#define REGEX_MT	"smtpfd.regex"
#define MAX_GROUPS	32
#define MATCH_LIMIT	1000000
#define DEPTH_LIMIT	10000

struct lregex {
	pcre2_code		*code;
	pcre2_match_data	*md;
	uint32_t		 ngroups;
	int			 utf;
};

static pcre2_match_context	*mctx;

static int
r_compile(lua_State *L)
{
	const char	*pat, *fl;
	struct lregex	*re;
	PCRE2_UCHAR	 msg[256];
	PCRE2_SIZE	 off;
	size_t		 len;
	uint32_t	 opts = 0;
	int		 err, utf = 0;

	pat = luaL_checklstring(L, 1, &len);
	fl = luaL_optstring(L, 2, "");
	for (; *fl != '\0'; fl++)
		switch (*fl) {
		case 'i':
			opts |= PCRE2_CASELESS;
			break;
		case 'm':
			opts |= PCRE2_MULTILINE;
			break;
		case 's':
			opts |= PCRE2_DOTALL;
			break;
		case 'x':
			opts |= PCRE2_EXTENDED;
			break;
		case 'u':
			opts |= PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
			utf = 1;
			break;
		default:
			return luaL_error(L, "regex.compile: unknown flag '%c' "
			    "(i, m, s, x or u)", *fl);
		}
	re = lua_newuserdatauv(L, sizeof(*re), 0);
	memset(re, 0, sizeof(*re));
	luaL_setmetatable(L, REGEX_MT);
	if ((re->code = pcre2_compile((PCRE2_SPTR)pat, len, opts, &err, &off,
	    NULL)) == NULL) {
		pcre2_get_error_message(err, msg, sizeof(msg));
		return luaL_error(L, "regex.compile: %s at offset %d",
		    (char *)msg, (int)off);
	}
	pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &re->ngroups);
	if (re->ngroups >= MAX_GROUPS) {
		pcre2_code_free(re->code);
		re->code = NULL;
		return luaL_error(L, "regex.compile: more than %d groups",
		    MAX_GROUPS - 1);
	}
	if ((re->md = pcre2_match_data_create(MAX_GROUPS, NULL)) == NULL)
		return luaL_error(L, "regex.compile: out of memory");
	re->utf = utf;
	return 1;
}

static int
r_gc(lua_State *L)
{
	struct lregex	*re = luaL_checkudata(L, 1, REGEX_MT);

	pcre2_match_data_free(re->md);
	pcre2_code_free(re->code);
	re->md = NULL;
	re->code = NULL;
	return 0;
}

/*
 * One match from off: the groups' offsets into ov (copied: a script's
 * code may use the same regex before we are done), or 0.
 */
static int
r_exec(lua_State *L, struct lregex *re, const char *s, size_t len,
    size_t off, uint32_t opts, PCRE2_SIZE *ov)
{
	PCRE2_SIZE	*v;
	PCRE2_UCHAR	 msg[256];
	int		 rc, i;

	if (re->code == NULL)
		return luaL_error(L, "regex: freed");
	rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, off, opts, re->md,
	    mctx);
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc < 0) {
		pcre2_get_error_message(rc, msg, sizeof(msg));
		return luaL_error(L, "regex: %s", (char *)msg);
	}
	v = pcre2_get_ovector_pointer(re->md);
	for (i = 0; i < 2 * ((int)re->ngroups + 1); i++)
		ov[i] = v[i];
	return 1;
}

static void
push_group(lua_State *L, const char *s, const PCRE2_SIZE *ov, uint32_t g)
{
	if (ov[2 * g] == PCRE2_UNSET)
		lua_pushboolean(L, 0);
	else
		lua_pushlstring(L, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
}

/* The captures, or the whole match when there are none. */
static int
push_captures(lua_State *L, struct lregex *re, const char *s,
    const PCRE2_SIZE *ov)
{
	uint32_t	 g;

	if (re->ngroups == 0) {
		push_group(L, s, ov, 0);
		return 1;
	}
	luaL_checkstack(L, (int)re->ngroups, "too many captures");
	for (g = 1; g <= re->ngroups; g++)
		push_group(L, s, ov, g);
	return (int)re->ngroups;
}

static size_t
start_of(lua_State *L, int arg, size_t len)
{
	lua_Integer	 i = luaL_optinteger(L, arg, 1);

	if (i < 0)
		i = (lua_Integer)len + i + 1;
	if (i < 1)
		i = 1;
	if ((size_t)i > len + 1)
		i = (lua_Integer)len + 1;
	return (size_t)i - 1;
}

static int
r_test(lua_State *L)
{
	struct lregex	*re = luaL_checkudata(L, 1, REGEX_MT);
	PCRE2_SIZE	 ov[2 * MAX_GROUPS];
	const char	*s;
	size_t		 len;

	s = luaL_checklstring(L, 2, &len);
	lua_pushboolean(L, r_exec(L, re, s, len, 0, 0, ov));
	return 1;
}

static int
r_match(lua_State *L)
{
	struct lregex	*re = luaL_checkudata(L, 1, REGEX_MT);
	PCRE2_SIZE	 ov[2 * MAX_GROUPS];
	const char	*s;
	size_t		 len;

	s = luaL_checklstring(L, 2, &len);
	if (!r_exec(L, re, s, len, start_of(L, 3, len), 0, ov)) {
		lua_pushnil(L);
		return 1;
	}
	return push_captures(L, re, s, ov);
}

static int
r_find(lua_State *L)
{
	struct lregex	*re = luaL_checkudata(L, 1, REGEX_MT);
	PCRE2_SIZE	 ov[2 * MAX_GROUPS];
	const char	*s;
	size_t		 len;
	uint32_t	 g;

	s = luaL_checklstring(L, 2, &len);
	if (!r_exec(L, re, s, len, start_of(L, 3, len), 0, ov)) {
		lua_pushnil(L);
		return 1;
	}
	lua_pushinteger(L, (lua_Integer)ov[0] + 1);
	lua_pushinteger(L, (lua_Integer)ov[1]);
	luaL_checkstack(L, (int)re->ngroups, "too many captures");
	for (g = 1; g <= re->ngroups; g++)
		push_group(L, s, ov, g);
	return 2 + (int)re->ngroups;
}

/* $0..$9, ${N}, $$ in a replacement string. */
static void
add_template(lua_State *L, luaL_Buffer *b, struct lregex *re,
    const char *s, const PCRE2_SIZE *ov, const char *t, size_t tlen)
{
	size_t		 i;
	unsigned long	 g;
	char		*end;

	for (i = 0; i < tlen; i++) {
		if (t[i] != '$' || i + 1 == tlen) {
			luaL_addchar(b, t[i]);
			continue;
		}
		i++;
		if (t[i] == '$') {
			luaL_addchar(b, '$');
			continue;
		}
		if (isdigit((unsigned char)t[i]))
			g = (unsigned long)(t[i] - '0');
		else if (t[i] == '{' && isdigit((unsigned char)t[i + 1])) {
			g = strtoul(t + i + 1, &end, 10);
			if (*end != '}')
				luaL_error(L, "gsub: bad ${N} in the "
				    "replacement");
			i = (size_t)(end - t);
		} else {
			luaL_error(L, "gsub: '$' must be followed by a digit, "
			    "{N} or '$'");
			return;
		}
		if (g > re->ngroups)
			luaL_error(L, "gsub: no group %lu in the pattern", g);
		if (ov[2 * g] != PCRE2_UNSET)
			luaL_addlstring(b, s + ov[2 * g],
			    ov[2 * g + 1] - ov[2 * g]);
	}
}

static int
r_gsub(lua_State *L)
{
	struct lregex	*re = luaL_checkudata(L, 1, REGEX_MT);
	PCRE2_SIZE	 ov[2 * MAX_GROUPS];
	luaL_Buffer	 b;
	const char	*s, *t = NULL;
	size_t		 len, tlen = 0, off = 0, step;
	lua_Integer	 max, n = 0;
	int		 rt, nc;

	s = luaL_checklstring(L, 2, &len);
	rt = lua_type(L, 3);
	if (rt == LUA_TSTRING || rt == LUA_TNUMBER)
		t = lua_tolstring(L, 3, &tlen);
	else if (rt != LUA_TFUNCTION && rt != LUA_TTABLE)
		return luaL_typeerror(L, 3, "string, function or table");
	max = luaL_optinteger(L, 4, LUA_MAXINTEGER);
	luaL_buffinit(L, &b);
	while (n < max && off <= len &&
	    r_exec(L, re, s, len, off, 0, ov)) {
		n++;
		luaL_addlstring(&b, s + off, ov[0] - off);
		if (t != NULL)
			add_template(L, &b, re, s, ov, t, tlen);
		else {
			if (rt == LUA_TFUNCTION) {
				lua_pushvalue(L, 3);
				nc = push_captures(L, re, s, ov);
				lua_call(L, nc, 1);
			} else {
				push_captures(L, re, s, ov);
				lua_settop(L, lua_gettop(L) -
				    (re->ngroups > 1 ? (int)re->ngroups - 1 :
				    0));
				lua_gettable(L, 3);
			}
			if (!lua_toboolean(L, -1)) {
				lua_pop(L, 1);
				luaL_addlstring(&b, s + ov[0], ov[1] - ov[0]);
			} else if (lua_isstring(L, -1))
				luaL_addvalue(&b);
			else
				return luaL_error(L, "gsub: the replacement "
				    "is a %s", luaL_typename(L, -1));
		}
		if (ov[1] > ov[0]) {
			off = ov[1];
			continue;
		}
		/* an empty match: keep one character and go on */
		if (ov[0] >= len) {
			off = len + 1;
			break;
		}
		step = 1;
		if (re->utf)
			while (ov[0] + step < len &&
			    ((unsigned char)s[ov[0] + step] & 0xc0) == 0x80)
				step++;
		luaL_addlstring(&b, s + ov[0], step);
		off = ov[0] + step;
	}
	if (off < len)
		luaL_addlstring(&b, s + off, len - off);
	luaL_pushresult(&b);
	lua_pushinteger(L, n);
	return 2;
}

static int
r_tostring(lua_State *L)
{
	luaL_checkudata(L, 1, REGEX_MT);
	lua_pushliteral(L, "regex");
	return 1;
}

void
lua_regex_open(lua_State *L)
{
	static const luaL_Reg	 methods[] = {
		{ "test", r_test },
		{ "match", r_match },
		{ "find", r_find },
		{ "gsub", r_gsub },
		{ NULL, NULL }
	};
	static const luaL_Reg	 funcs[] = {
		{ "compile", r_compile },
		{ NULL, NULL }
	};

	if (mctx == NULL) {
		if ((mctx = pcre2_match_context_create(NULL)) == NULL)
			fatalx("pcre2_match_context_create");
		pcre2_set_match_limit(mctx, MATCH_LIMIT);
		pcre2_set_depth_limit(mctx, DEPTH_LIMIT);
	}
	luaL_newmetatable(L, REGEX_MT);
	luaL_newlib(L, methods);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, r_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, r_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
	luaL_newlib(L, funcs);
	lua_setglobal(L, "regex");
}
