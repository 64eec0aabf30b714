/*
 * Rules: the first "match" whose conditions all hold decides a recipient;
 * none matching is a rejection (550 5.7.1 in the SMTP server).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "mtad.h"

/* Connections from loopback or a local socket. */
static int
client_is_local(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	if (ss == NULL)
		return 1;
	if (ss->ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)ss;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)ss;
		return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
	}
	return 0;
}

/* The names this host receives mail for without a "domain" table. */
int
ruleset_is_local_domain(const char *domain)
{
	return strcasecmp(domain, mtad_conf->hostname) == 0 ||
	    strcasecmp(domain, "localhost") == 0 ||
	    strcasecmp(domain, "localhost.localdomain") == 0 ||
	    strcmp(domain, "[127.0.0.1]") == 0 ||
	    strcasecmp(domain, "[IPv6:::1]") == 0;
}

static int
rule_from_matches(const struct rule *r, const struct rcpt_context *ctx)
{
	int	 m;

	switch (r->from) {
	case FROM_ANY:
		m = 1;
		break;
	case FROM_LOCAL:
		m = client_is_local(ctx->client);
		break;
	case FROM_SRC:
		m = ctx->client != NULL &&
		    table_match_netaddr(r->from_table, ctx->client);
		break;
	default:
		m = 0;
	}
	return r->from_negated ? !m : m;
}

static int
rule_for_matches(const struct rule *r, const struct rcpt_context *ctx)
{
	const struct mailaddr	*a = ctx->rcpt;
	int			 m;

	switch (r->for_) {
	case FOR_ANY:
		m = 1;
		break;
	case FOR_LOCAL:
		/* The bare <postmaster> is always local (RFC 5321 4.5.1). */
		m = a->domain[0] == '\0' || ruleset_is_local_domain(a->domain);
		break;
	case FOR_DOMAIN:
		m = a->domain[0] != '\0' &&
		    table_match_domain(r->for_table, a->domain);
		break;
	case FOR_RCPT:
		m = table_match_address(r->for_table, a->local, a->domain);
		break;
	default:
		m = 0;
	}
	return r->for_negated ? !m : m;
}

const struct rule *
ruleset_match(const struct rcpt_context *ctx)
{
	const struct rule	*r;
	int			 m;

	TAILQ_FOREACH(r, &mtad_conf->rules, entry) {
		if (!rule_from_matches(r, ctx) || !rule_for_matches(r, ctx))
			continue;
		if (r->tag != NULL) {
			m = ctx->tag != NULL && strcmp(r->tag, ctx->tag) == 0;
			if (r->tag_negated ? m : !m)
				continue;
		}
		return r;
	}
	return NULL;
}
