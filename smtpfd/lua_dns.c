/*
 * DNS for Lua filters, without blocking the engine:
 *
 *	dns.lookup(name [, type])	type "A" (default), "AAAA" or "PTR"
 *					(name an address); the hook's
 *					coroutine waits for the answer: a
 *					table of strings, or nil and why
 *	dns.nameserver("ADDR[:PORT]")	at load time: ask this server
 *
 * libevent's evdns, one resolver per filter.  The engine is chrooted
 * and cannot read /etc/resolv.conf: without dns.nameserver it tries,
 * and falls back on 127.0.0.1.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event.h>
#include <event2/dns.h>

#include <lauxlib.h>
#include <lua.h>

#include "log.h"
#include "monkey.h"
#include "lua_filter.h"
#include "xmalloc.h"

#define DNS_MAX_ANSWERS	32

struct ldns {
	struct lcall		*call;		/* NULL: nobody waits */
	struct evdns_request	*req;
	int			 done;
	int			 result;
	char			*answers[DNS_MAX_ANSWERS];
	int			 nanswers;
};

static struct lfilter *
lfilter_of(lua_State *L)
{
	void	*ud;

	lua_getallocf(L, &ud);
	return ud;
}

static void
dummy(int fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
}

/* The filter's resolver, made at its first use; NULL out of memory. */
static struct evdns_base *
resolver(struct lfilter *lf)
{
	struct event	 ev;

	if (lf->dns != NULL)
		return lf->dns;
	/* the engine runs on the default base (event_init) */
	evtimer_set(&ev, dummy, NULL);
	if ((lf->dns = evdns_base_new(event_get_base(&ev), 0)) == NULL) {
		log_warnx("filter %s: no resolver: out of memory",
		    lf->f->name);
		return NULL;
	}
	evdns_base_set_option(lf->dns, "timeout:", "3");
	evdns_base_set_option(lf->dns, "attempts:", "2");
	return lf->dns;
}

static void
ldns_free(struct ldns *d)
{
	int	 i;

	for (i = 0; i < d->nanswers; i++)
		free(d->answers[i]);
	free(d);
}

/* Push what a lookup found: a table, or nil and why. */
static int
push_answers(lua_State *L, struct ldns *d)
{
	int	 i;

	if (d->result != DNS_ERR_NONE) {
		lua_pushnil(L);
		lua_pushstring(L, evdns_err_to_string(d->result));
		return 2;
	}
	lua_createtable(L, d->nanswers, 0);
	for (i = 0; i < d->nanswers; i++) {
		lua_pushstring(L, d->answers[i]);
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static void
answered(int result, char type, int count, int ttl, void *addrs, void *arg)
{
	struct ldns	*d = arg;
	struct lcall	*c = d->call;
	char		 buf[INET6_ADDRSTRLEN];
	int		 i, n;

	(void)ttl;
	d->req = NULL;
	if (d->done == -1) {
		/* cancelled: nobody waits */
		ldns_free(d);
		return;
	}
	d->done = 1;
	d->result = result;
	for (i = 0; result == DNS_ERR_NONE && i < count &&
	    d->nanswers < DNS_MAX_ANSWERS; i++) {
		if (type == DNS_IPv4_A)
			inet_ntop(AF_INET, (uint32_t *)addrs + i, buf,
			    sizeof(buf));
		else if (type == DNS_IPv6_AAAA)
			inet_ntop(AF_INET6, (struct in6_addr *)addrs + i, buf,
			    sizeof(buf));
		else if (type == DNS_PTR && i == 0)
			snprintf(buf, sizeof(buf), "%s", *(char **)addrs);
		else
			continue;
		d->answers[d->nanswers++] = xstrdup(buf);
	}
	if (result == DNS_ERR_NONE && d->nanswers == 0)
		d->result = DNS_ERR_NODATA;
	if (c == NULL)
		return;		/* at once: dns_lookup takes it */
	TAILQ_REMOVE(&c->lf->calls, c, entry);
	c->dns = NULL;
	n = push_answers(c->co, d);
	ldns_free(d);
	lfilter_resume(c, n);
}

/* The waiting call went (session closed, filter stopped). */
void
lua_dns_cancel(struct ldns *d)
{
	d->call = NULL;
	if (d->done) {
		ldns_free(d);
		return;
	}
	/* evdns calls back (DNS_ERR_CANCEL): it frees then */
	d->done = -1;
	if (d->req != NULL)
		evdns_cancel_request(NULL, d->req);
}

static int
dns_lookup(lua_State *L)
{
	struct lfilter		*lf = lfilter_of(L);
	struct lcall		*c = lf->running;
	struct evdns_base	*base;
	struct ldns		*d;
	struct in_addr		 in4;
	struct in6_addr		 in6;
	const char		*name, *type;
	int			 n;

	name = luaL_checkstring(L, 1);
	type = luaL_optstring(L, 2, "A");
	if (strcmp(type, "A") != 0 && strcmp(type, "AAAA") != 0 &&
	    strcmp(type, "PTR") != 0)
		return luaL_error(L, "dns.lookup: type %s: expected A, AAAA "
		    "or PTR", type);
	if (c == NULL || c->co != L || !c->can_wait || !lua_isyieldable(L))
		return luaL_error(L, "dns.lookup: only from a hook's own "
		    "code, and not in on_data_line or report hooks");
	if ((base = resolver(lf)) == NULL) {
		lua_pushnil(L);
		lua_pushstring(L, "no resolver (out of memory)");
		return 2;
	}
	if (!lf->dns_servers) {
		if (evdns_base_resolv_conf_parse(base, DNS_OPTION_NAMESERVERS,
		    "/etc/resolv.conf") != 0 ||
		    evdns_base_count_nameservers(base) == 0)
			evdns_base_nameserver_ip_add(base, "127.0.0.1");
		lf->dns_servers = 1;
	}
	if (MONKEY("dns.lookup", EIO)) {
		lua_pushnil(L);
		lua_pushstring(L, "the lookup failed");
		return 2;
	}
	d = xcalloc(1, sizeof(*d));
	if (strcmp(type, "PTR") == 0) {
		if (inet_pton(AF_INET, name, &in4) == 1)
			d->req = evdns_base_resolve_reverse(base, &in4, 0,
			    answered, d);
		else if (inet_pton(AF_INET6, name, &in6) == 1)
			d->req = evdns_base_resolve_reverse_ipv6(base, &in6, 0,
			    answered, d);
		else {
			free(d);
			return luaL_error(L, "dns.lookup: PTR wants an "
			    "address, not %s", name);
		}
	} else if (strcmp(type, "A") == 0)
		d->req = evdns_base_resolve_ipv4(base, name,
		    DNS_QUERY_NO_SEARCH, answered, d);
	else
		d->req = evdns_base_resolve_ipv6(base, name,
		    DNS_QUERY_NO_SEARCH, answered, d);
	if (d->done) {
		/* answered at once */
		n = push_answers(L, d);
		ldns_free(d);
		return n;
	}
	if (d->req == NULL) {
		free(d);
		lua_pushnil(L);
		lua_pushstring(L, "the lookup could not start");
		return 2;
	}
	d->call = c;
	c->dns = d;
	return lua_yield(L, 0);
}

static int
dns_nameserver(lua_State *L)
{
	struct lfilter	*lf = lfilter_of(L);
	const char	*addr = luaL_checkstring(L, 1);
	struct evdns_base *base;

	if ((base = resolver(lf)) == NULL)
		return luaL_error(L, "dns.nameserver: no resolver (out of "
		    "memory)");
	if (evdns_base_nameserver_ip_add(base, addr) != 0)
		return luaL_error(L, "dns.nameserver: %s: not ADDRESS[:PORT]",
		    addr);
	lf->dns_servers = 1;
	return 0;
}

void
lua_dns_stop(struct lfilter *lf)
{
	if (lf->dns != NULL)
		evdns_base_free(lf->dns, 1);
	lf->dns = NULL;
}

void
lua_dns_open(lua_State *L)
{
	static const luaL_Reg	 funcs[] = {
		{ "lookup", dns_lookup },
		{ "nameserver", dns_nameserver },
		{ NULL, NULL }
	};

	luaL_newlib(L, funcs);
	lua_setglobal(L, "dns");
}
