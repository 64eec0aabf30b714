/*
 * Built-in rules: "filter NAME phase PHASE match COND ... DECISION".  At
 * its phase, a rule whose conditions all hold gives its decision; one
 * whose conditions do not hold proceeds.  Rules answer at once, inside
 * the engine.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "filter.h"
#include "log.h"
#include "smtpfd.h"
#include "xmalloc.h"

struct rule {
	pcre2_code		**regex;	/* per condition, or NULL */
	pcre2_match_data	 *md;
};

static int
rule_start(struct filter *f)
{
	const struct filter_conf	*fc = f->conf;
	struct rule			*r;
	PCRE2_SIZE			 off;
	size_t				 i;
	int				 err;

	r = xcalloc(1, sizeof(*r));
	r->regex = xcalloc(fc->nconds, sizeof(*r->regex));
	for (i = 0; i < fc->nconds; i++) {
		if (fc->conds[i].regex == NULL)
			continue;
		if ((r->regex[i] = pcre2_compile((PCRE2_SPTR)fc->conds[i].regex,
		    PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL)) ==
		    NULL)
			fatalx("filter %s: regex does not compile", f->name);
	}
	if ((r->md = pcre2_match_data_create(4, NULL)) == NULL) {
		log_warnx("filter %s: no memory for its regex", f->name);
		f->impl = r;
		return -1;
	}
	f->impl = r;
	f->phases = 1U << fc->phase;
	f->ready = 1;
	return 0;
}

static void
rule_stop(struct filter *f)
{
	struct rule	*r = f->impl;
	size_t		 i;

	for (i = 0; i < f->conf->nconds; i++)
		pcre2_code_free(r->regex[i]);
	free(r->regex);
	pcre2_match_data_free(r->md);
	free(r);
}

static int
matches(struct rule *r, size_t i, const char *s)
{
	return pcre2_match(r->regex[i], (PCRE2_SPTR)s, strlen(s), 0, 0,
	    r->md, NULL) >= 0;
}

/* "192.0.2.1", "192.0.2.0/24", "2001:db8::/32" */
int
addr_in_net(const char *addr, const char *net)
{
	unsigned char	 a[16], n[16];
	char		 buf[64], *slash;
	long		 bits, max;
	int		 af, i;

	snprintf(buf, sizeof(buf), "%s", net);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	af = strchr(buf, ':') ? AF_INET6 : AF_INET;
	max = af == AF_INET ? 32 : 128;
	if (inet_pton(af, buf, n) != 1 || inet_pton(af, addr, a) != 1)
		return 0;
	bits = slash ? strtol(slash, NULL, 10) : max;
	if (bits < 0 || bits > max)
		return 0;
	for (i = 0; bits >= 8; i++, bits -= 8)
		if (a[i] != n[i])
			return 0;
	return bits == 0 || ((a[i] ^ n[i]) & (0xff << (8 - bits))) == 0;
}

static int
cond_holds(struct filter *f, struct fsession *fs, size_t i,
    enum filter_phase phase, const char *param)
{
	const struct rule_cond	*c = &f->conf->conds[i];
	struct rule		*r = f->impl;
	size_t			 j;

	switch (c->kind) {
	case COND_RDNS:
	case COND_FCRDNS:
		/* smtpfd does no DNS: the name the MTA found, if any */
		return fs->rdns[0] != '\0';
	case COND_TLS:
		return fs->tls;
	case COND_AUTH:
		return fs->auth_user[0] != '\0';
	case COND_SRC:
		for (j = 0; j < c->nlist; j++)
			if (addr_in_net(fs->addr, c->list[j]))
				return 1;
		return 0;
	case COND_HELO:
		return matches(r, i, phase == PHASE_HELO ||
		    phase == PHASE_EHLO ? param : fs->helo);
	case COND_MAIL_FROM:
		return matches(r, i, phase == PHASE_MAIL_FROM ? param :
		    fs->mail_from);
	case COND_RCPT_TO:
		if (phase == PHASE_RCPT_TO)
			return matches(r, i, param);
		for (j = 0; j < fs->nrcpts; j++)
			if (matches(r, i, fs->rcpts[j]))
				return 1;
		return 0;
	case COND_REGEX:
		return matches(r, i, param);
	}
	return 0;
}

static void
rule_query(struct filter *f, struct fsession *fs, enum filter_phase phase,
    const char *param, uint64_t token)
{
	const struct filter_conf	*fc = f->conf;
	struct decision			 d;
	size_t				 i;

	memset(&d, 0, sizeof(d));
	d.kind = DECISION_PROCEED;
	for (i = 0; i < fc->nconds; i++)
		if (cond_holds(f, fs, i, phase, param) == fc->conds[i].negate)
			break;
	if (i == fc->nconds) {
		d.kind = (enum decision_kind)fc->decision;
		if (fc->decision_text != NULL)
			snprintf(d.text, sizeof(d.text), "%s",
			    fc->decision_text);
	}
	filter_answer(fs, token, &d);
}

const struct filter_ops filter_rule_ops = {
	.start = rule_start,
	.query = rule_query,
	.stop = rule_stop,
};
