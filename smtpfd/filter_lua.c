/*
 * Lua filters: not built yet (placeholder so that the engine links).
 */
#include "filter.h"
#include "log.h"

static int
lua_start(struct filter *f)
{
	log_warnx("filter %s: Lua filters are not built yet", f->name);
	f->ready = 1;
	f->broken = 1;
	return 0;
}

const struct filter_ops filter_lua_ops = {
	.start = lua_start,
};

int
filter_lua_load(struct filter *f, const char *script, size_t len)
{
	(void)f;
	(void)script;
	(void)len;
	return 0;
}
