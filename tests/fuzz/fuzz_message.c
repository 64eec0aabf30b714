/*
 * libFuzzer target: the message a Lua filter's on_commit sees
 * (smtpfd/lua_api.c).  The input, split into lines, builds the message
 * as the data lines do (lmsg_add); a script then goes through the
 * message object's methods (header, headers, add_header, change_header,
 * remove_header, body, set_body, size) and checks what they give back.
 * Never a crash, a leak, a hang or a failed check.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "log.h"
#include "lua_filter.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	LLVMFuzzerInitialize(int *, char ***);

/* Errors of the methods are caught; a failed assert is a finding. */
static const char script[] =
	"local m = ...\n"
	"local function trim(v)\n"
	"  return (v:gsub('\\n', ''):gsub('^[ \\t]+', '')"
	    ":gsub('[ \\t]+$', ''))\n"
	"end\n"
	"assert(math.type(m:size()) == 'integer' and m:size() >= 0)\n"
	"local names, seen = {}, {}\n"
	"for _, h in ipairs(m:headers()) do\n"
	"  assert(type(h.name) == 'string' and type(h.value) == 'string')\n"
	"  assert(m:header(h.name) ~= nil)\n"
	"  if not seen[h.name:lower()] and #names < 16 then\n"
	"    seen[h.name:lower()] = true\n"
	"    names[#names + 1] = h.name\n"
	"  end\n"
	"end\n"
	"for i, n in ipairs(names) do\n"
	"  local all = m:headers(n)\n"
	"  local v = m:header(n)\n"
	"  assert(#all >= 1 and v == all[1].value)\n"
	"  assert(m:header(n, #all) == all[#all].value)\n"
	"  assert(m:header(n, #all + 1) == nil)\n"
	"  if i % 3 == 0 then\n"
	"    assert(m:remove_header(n) == #all)\n"
	"    assert(m:header(n) == nil and #m:headers(n) == 0)\n"
	"  elseif i % 3 == 1 then\n"
	"    if pcall(m.change_header, m, n, v .. ' changed', #all) then\n"
	"      assert(m:header(n, #all) == trim(v .. ' changed'))\n"
	"    end\n"
	"    assert(m:remove_header(n, 1) == 1)\n"
	"    assert(#m:headers(n) == #all - 1)\n"
	"  else\n"
	"    if pcall(m.add_header, m, n, v, 'top') then\n"
	"      assert(m:header(n) == trim(v))\n"
	"      assert(#m:headers(n) == #all + 1)\n"
	"    end\n"
	"    if pcall(m.add_header, m, n, 'folded\\n\\tvalue') then\n"
	"      assert(m:header(n, #m:headers(n)) == 'folded\\tvalue')\n"
	"    end\n"
	"  end\n"
	"end\n"
	"assert(not pcall(m.add_header, m, 'Bad Name', 'x'))\n"
	"assert(not pcall(m.add_header, m, 'X-Bad', 'a\\nb'))\n"
	"assert(not pcall(m.add_header, m, 'X-Ok', 'x', 'middle'))\n"
	"m:add_header('X-Fuzz', 'yes', 'top')\n"
	"assert(m:header('x-fuzz') == 'yes')\n"
	"assert(m:change_header('X-Fuzz', 'no') and m:header('X-Fuzz') == 'no')\n"
	"assert(m:remove_header('X-FUZZ') >= 1 and m:header('X-Fuzz') == nil)\n"
	"local b = m:body()\n"
	"assert(b == '' or b:sub(-1) == '\\n')\n"
	"m:set_body(b)\n"
	"if not b:find('\\r', 1, true) then assert(m:body() == b) end\n"
	"m:set_body('one\\r\\ntwo\\nthree')\n"
	"assert(m:body() == 'one\\ntwo\\nthree\\n')\n"
	"assert(not pcall(m.set_body, m, 'a\\0b'))\n"
	"m:set_body(b)\n"
	"assert(m:size() >= #b)\n";

static lua_State	*L;
static int		 script_ref;

/* lua_api.c logs through filter_lua.c's lcall_log: not linked here. */
void
lcall_log(struct lfilter *lf, int level, const char *line)
{
	(void)lf;
	(void)level;
	(void)line;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct lfilter	 lf;

	(void)argc;
	(void)argv;
	log_init("fuzz", "message", 1, 0);
	if ((L = luaL_newstate()) == NULL)
		abort();
	lua_newtable(L);	/* the limits' error object */
	lf.limit_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_api_open(L, &lf);
	if (luaL_loadbufferx(L, script, sizeof(script) - 1, "=fuzz", "t") !=
	    LUA_OK) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
	script_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lmsg	 m;
	const uint8_t	*p, *end, *nl, *nul;
	char		*copy;
	size_t		 len;
	int		 ref;

	memset(&m, 0, sizeof(m));
	/*
	 * Lines as the data path gives them: no CRLF, unstuffed, in place
	 * in the batch (not strings: a copy without a NUL, so that reading
	 * past a line's end reads the next line, or past the copy).
	 */
	if ((copy = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	memcpy(copy, data, size);
	p = (const uint8_t *)copy;
	end = p + size;
	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		len = (size_t)(nl - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if ((nul = memchr(p, '\0', len)) != NULL)
			len = (size_t)(nul - p);
		if (lmsg_add(&m, (const char *)p, len) == -1)
			break;
		p = nl < end ? nl + 1 : end;
	}
	free(copy);

	lua_rawgeti(L, LUA_REGISTRYINDEX, script_ref);
	lua_api_message(L, &m);
	lua_pushvalue(L, -1);
	ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		fprintf(stderr, "fuzz_message: %s\n", lua_tostring(L, -1));
		__builtin_trap();
	}
	/* After on_commit the object is dead: methods fail, nothing else. */
	lua_api_message_done(L, ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
	lua_getfield(L, -1, "size");
	lua_pushvalue(L, -2);
	if (lua_pcall(L, 1, 1, 0) == LUA_OK)
		__builtin_trap();
	lua_pop(L, 2);
	luaL_unref(L, LUA_REGISTRYINDEX, ref);
	if (lua_gettop(L) != 0)
		__builtin_trap();

	if (m.bytes > 2 * (size_t)LMSG_MAX)
		__builtin_trap();	/* the size went below zero */
	lmsg_clear(&m);
	lua_gc(L, LUA_GCSTEP, 0);
	return 0;
}
