/*
 * smtpfd.conf: filters and chains (SPEC.md section 4.4, smtpfd.conf(5)).
 *
 *	filter NAME lua FILE [option ...]
 *	filter NAME exec COMMAND [user U] [group G] [chroot DIR]
 *	    [env { "NAME=value", ... }] [protocol 0.6|0.7] [option ...]
 *	filter NAME phase PHASE match COND [COND ...] DECISION
 *	chain NAME { FILTER, FILTER, ... }
 *	select chain NAME|bypass for SCOND [SCOND ...]
 *
 *	option:	  timeout DURATION | on-failure tempfail|proceed|reject
 *		| memory SIZE | instructions N		(Lua)
 *	COND:	  [!] rdns | [!] fcrdns | [!] tls | [!] auth
 *		| [!] src { ADDRESS|NET, ... }
 *		| [!] helo|mail-from|rcpt-to regex "PCRE2"
 *		| [!] regex "PCRE2"	(the phase's parameter)
 *	DECISION: reject "REPLY" | disconnect "REPLY" | junk | bypass
 *		| rewrite "VALUE" | report "TEXT"
 *
 *	SCOND:	  [!] tag WORD | [!] src { ADDRESS|NET, ... } | [!] auth
 *		| [!] mail-from domain { DOMAIN, ... }
 *		| [!] rcpt-to domain { DOMAIN, ... }
 *
 * The parent reads Lua scripts (the engine gets them by IPC) and checks
 * every regular expression compiles.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "conf.h"
#include "filter.h"
#include "log.h"
#include "smtpfd.h"
#include "xmalloc.h"

#define SCRIPT_MAX		(1024 * 1024)
#define DEF_FILTER_TIMEOUT	(30 * 1000)		/* ms */
#define DEF_LUA_MEMORY		(64 * 1024 * 1024)
#define DEF_LUA_INSTRUCTIONS	10000000ULL

/* { WORD, WORD, ... } */
static void
parse_word_list(struct conf *cf, const char *what, char ***list, size_t *n)
{
	const char	*s;

	if (!conf_expect_punct(cf, '{'))
		return;
	do {
		if ((s = conf_word(cf, what)) == NULL)
			return;
		*list = xreallocarray(*list, *n + 1, sizeof(**list));
		(*list)[(*n)++] = xstrdup(s);
	} while (conf_accept_punct(cf, ','));
	conf_expect_punct(cf, '}');
}

static void
free_list(char **list, size_t n)
{
	while (n > 0)
		free(list[--n]);
	free(list);
}

void
filter_conf_free(struct filter_conf *f)
{
	size_t	 i;

	free(f->name);
	free(f->path);
	free(f->script);
	free(f->command);
	free(f->user);
	free(f->group);
	free(f->chroot);
	free_list(f->env, f->nenv);
	free(f->protocol);
	for (i = 0; i < f->nconds; i++) {
		free(f->conds[i].regex);
		free_list(f->conds[i].list, f->conds[i].nlist);
	}
	free(f->conds);
	free(f->decision_text);
	free(f);
}

void
chain_conf_free(struct chain_conf *c)
{
	size_t	 i;

	for (i = 0; i < c->nfilters; i++)
		free(c->filters[i]);
	free(c->filters);
	free(c->name);
	free(c);
}

struct filter_conf *
filter_conf_find(const char *name)
{
	struct filter_conf	*f;

	TAILQ_FOREACH(f, &smtpfd_conf->filters, entry)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

struct chain_conf *
chain_conf_find(const char *name)
{
	struct chain_conf	*c;

	TAILQ_FOREACH(c, &smtpfd_conf->chains, entry)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static int
check_regex(struct conf *cf, const char *re)
{
	pcre2_code	*code;
	PCRE2_UCHAR	 msg[256];
	PCRE2_SIZE	 off;
	int		 err;

	if ((code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
	    PCRE2_UTF, &err, &off, NULL)) == NULL) {
		pcre2_get_error_message(err, msg, sizeof(msg));
		conf_error(cf, "regex \"%s\": %s at offset %zu", re,
		    (char *)msg, (size_t)off);
		return -1;
	}
	pcre2_code_free(code);
	return 0;
}

/* "550 5.7.1 text": a reply smtpfd may give a client. */
static int
valid_reply(const char *s)
{
	return (s[0] == '4' || s[0] == '5') && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) && s[3] == ' ' && s[4] != '\0' &&
	    strpbrk(s, "\r\n") == NULL;
}

static int
parse_options(struct conf *cf, struct filter_conf *f)
{
	long long	 n;
	int		 d;

	if (conf_accept(cf, "timeout")) {
		if (conf_timeout(cf, "a timeout", &d))
			f->timeout_ms = d * 1000;
	} else if (conf_accept(cf, "on-failure")) {
		if (conf_accept(cf, "tempfail"))
			f->on_failure = ON_FAILURE_TEMPFAIL;
		else if (conf_accept(cf, "proceed"))
			f->on_failure = ON_FAILURE_PROCEED;
		else if (conf_accept(cf, "reject"))
			f->on_failure = ON_FAILURE_REJECT;
		else
			conf_error(cf, "expected tempfail, proceed or reject, "
			    "got %s", conf_describe(conf_peek(cf)));
	} else if (f->kind == FILTER_LUA && conf_accept(cf, "memory")) {
		conf_size(cf, "a size", &f->memory_max);
	} else if (f->kind == FILTER_LUA && conf_accept(cf, "instructions")) {
		if (conf_number(cf, "a number of instructions", 1000,
		    1000000000000LL, &n))
			f->instructions_max = (uint64_t)n;
	} else
		return 0;
	return 1;
}

static void
parse_env(struct conf *cf, struct filter_conf *f)
{
	size_t	 i = f->nenv;

	parse_word_list(cf, "\"NAME=value\"", &f->env, &f->nenv);
	for (; !cf->failed && i < f->nenv; i++)
		if (strchr(f->env[i], '=') == NULL || f->env[i][0] == '=')
			conf_error(cf, "env %s: expected NAME=value",
			    f->env[i]);
}

static void
parse_exec(struct conf *cf, struct filter_conf *f)
{
	const char	*s;

	if ((s = conf_word(cf, "a command")) == NULL)
		return;
	f->command = xstrdup(s);
	while (!cf->failed && !conf_at_end(cf)) {
		if (parse_options(cf, f))
			continue;
		if (conf_accept(cf, "user")) {
			if ((s = conf_word(cf, "a user")) != NULL)
				f->user = xstrdup(s);
		} else if (conf_accept(cf, "group")) {
			if ((s = conf_word(cf, "a group")) != NULL)
				f->group = xstrdup(s);
		} else if (conf_accept(cf, "chroot")) {
			if ((s = conf_word(cf, "a directory")) != NULL)
				f->chroot = xstrdup(s);
		} else if (conf_accept(cf, "env"))
			parse_env(cf, f);
		else if (conf_accept(cf, "protocol")) {
			if ((s = conf_word(cf, "0.6 or 0.7")) == NULL)
				continue;
			if (strcmp(s, "0.6") != 0 && strcmp(s, "0.7") != 0)
				conf_error(cf, "protocol %s: expected 0.6 or "
				    "0.7", s);
			free(f->protocol);
			f->protocol = xstrdup(s);
		} else
			conf_error(cf, "unexpected %s in filter %s",
			    conf_describe(conf_peek(cf)), f->name);
	}
}

static void
parse_lua(struct conf *cf, struct filter_conf *f)
{
	const char	*s;

	if ((s = conf_word(cf, "a Lua file")) == NULL)
		return;
	f->path = xstrdup(s);
	f->memory_max = DEF_LUA_MEMORY;
	f->instructions_max = DEF_LUA_INSTRUCTIONS;
	while (!cf->failed && !conf_at_end(cf))
		if (!parse_options(cf, f))
			conf_error(cf, "unexpected %s in filter %s",
			    conf_describe(conf_peek(cf)), f->name);
	if (!cf->failed && !cf->shipped && !cf->no_files)
		f->script = conf_read_file(cf, f->path, SCRIPT_MAX, 1,
		    &f->script_len);
}

static int
parse_cond(struct conf *cf, struct rule_cond *c)
{
	const char	*s;

	memset(c, 0, sizeof(*c));
	c->negate = conf_accept_punct(cf, '!');
	if (conf_accept(cf, "rdns"))
		c->kind = COND_RDNS;
	else if (conf_accept(cf, "fcrdns"))
		c->kind = COND_FCRDNS;
	else if (conf_accept(cf, "tls"))
		c->kind = COND_TLS;
	else if (conf_accept(cf, "auth"))
		c->kind = COND_AUTH;
	else if (conf_accept(cf, "src")) {
		c->kind = COND_SRC;
		parse_word_list(cf, "an address or network", &c->list,
		    &c->nlist);
		return cf->failed ? -1 : 0;
	} else if (conf_accept(cf, "helo"))
		c->kind = COND_HELO;
	else if (conf_accept(cf, "mail-from"))
		c->kind = COND_MAIL_FROM;
	else if (conf_accept(cf, "rcpt-to"))
		c->kind = COND_RCPT_TO;
	else if (conf_accept(cf, "regex")) {
		c->kind = COND_REGEX;
		if ((s = conf_word(cf, "a regular expression")) == NULL ||
		    check_regex(cf, s) == -1)
			return -1;
		c->regex = xstrdup(s);
		return 0;
	} else
		return -1;
	if (c->kind == COND_HELO || c->kind == COND_MAIL_FROM ||
	    c->kind == COND_RCPT_TO) {
		if (!conf_expect(cf, "regex") ||
		    (s = conf_word(cf, "a regular expression")) == NULL ||
		    check_regex(cf, s) == -1)
			return -1;
		c->regex = xstrdup(s);
	}
	return 0;
}

static void
parse_decision(struct conf *cf, struct filter_conf *f)
{
	const char	*s;

	if (conf_accept(cf, "junk"))
		f->decision = DECISION_JUNK;
	else if (conf_accept(cf, "bypass"))
		f->decision = DECISION_BYPASS;
	else if (conf_accept(cf, "reject"))
		f->decision = DECISION_REJECT;
	else if (conf_accept(cf, "disconnect"))
		f->decision = DECISION_DISCONNECT;
	else if (conf_accept(cf, "rewrite"))
		f->decision = DECISION_REWRITE;
	else if (conf_accept(cf, "report"))
		f->decision = DECISION_REPORT;
	else {
		conf_error(cf, "expected a condition or reject, disconnect, "
		    "junk, bypass, rewrite or report, got %s",
		    conf_describe(conf_peek(cf)));
		return;
	}
	if (f->decision == DECISION_JUNK || f->decision == DECISION_BYPASS)
		return;
	if ((s = conf_word(cf, "a reply or a value")) == NULL)
		return;
	if ((f->decision == DECISION_REJECT ||
	    f->decision == DECISION_DISCONNECT) && !valid_reply(s)) {
		conf_error(cf, "\"%s\": expected a reply such as \"550 5.7.1 "
		    "text\" (4xx or 5xx)", s);
		return;
	}
	f->decision_text = xstrdup(s);
}

static void
parse_rule(struct conf *cf, struct filter_conf *f)
{
	const char	*s;
	int		 phase;

	if ((s = conf_word(cf, "a phase")) == NULL)
		return;
	if ((phase = filter_phase_by_name(s)) == -1 ||
	    phase == PHASE_DATA_LINE) {
		conf_error(cf, "phase %s: expected connect, helo, ehlo, "
		    "starttls, auth, mail-from, rcpt-to, data, commit, rset, "
		    "quit or noop", s);
		return;
	}
	f->phase = phase;
	if (!conf_expect(cf, "match"))
		return;
	for (;;) {
		struct rule_cond	 c;

		if (parse_cond(cf, &c) == -1) {
			free(c.regex);
			free_list(c.list, c.nlist);
			if (cf->failed)
				return;
			break;
		}
		f->conds = xreallocarray(f->conds, f->nconds + 1,
		    sizeof(*f->conds));
		f->conds[f->nconds++] = c;
	}
	if (f->nconds == 0) {
		conf_error(cf, "expected a condition, got %s",
		    conf_describe(conf_peek(cf)));
		return;
	}
	parse_decision(cf, f);
	if (cf->failed)
		return;
	if (f->decision == DECISION_JUNK && f->phase == PHASE_COMMIT)
		conf_error(cf, "junk at commit: the message is already written");
	if (f->decision == DECISION_REWRITE && f->phase != PHASE_HELO &&
	    f->phase != PHASE_EHLO && f->phase != PHASE_MAIL_FROM &&
	    f->phase != PHASE_RCPT_TO)
		conf_error(cf, "rewrite: only at helo, ehlo, mail-from or "
		    "rcpt-to");
	while (!cf->failed && !conf_at_end(cf))
		if (!parse_options(cf, f))
			conf_error(cf, "unexpected %s in filter %s",
			    conf_describe(conf_peek(cf)), f->name);
}

void
parse_filter(struct conf *cf)
{
	struct filter_conf	*f;
	const char		*name;

	if ((name = conf_word(cf, "a filter name")) == NULL)
		return;
	if (filter_conf_find(name) != NULL || chain_conf_find(name) != NULL) {
		conf_error(cf, "filter %s: the name is taken", name);
		return;
	}
	f = xcalloc(1, sizeof(*f));
	f->name = xstrdup(name);
	f->timeout_ms = DEF_FILTER_TIMEOUT;
	f->on_failure = ON_FAILURE_TEMPFAIL;
	if (conf_accept(cf, "lua")) {
		f->kind = FILTER_LUA;
		parse_lua(cf, f);
	} else if (conf_accept(cf, "exec")) {
		f->kind = FILTER_EXEC;
		f->protocol = xstrdup("0.7");
		parse_exec(cf, f);
	} else if (conf_accept(cf, "phase")) {
		f->kind = FILTER_RULE;
		parse_rule(cf, f);
	} else
		conf_error(cf, "filter %s: expected lua, exec or phase, got %s",
		    name, conf_describe(conf_peek(cf)));
	if (cf->failed) {
		filter_conf_free(f);
		return;
	}
	TAILQ_INSERT_TAIL(&smtpfd_conf->filters, f, entry);
}

void
parse_chain(struct conf *cf)
{
	struct chain_conf	*c;
	const char		*name, *s;
	size_t			 i;

	if ((name = conf_word(cf, "a chain name")) == NULL)
		return;
	if (filter_conf_find(name) != NULL || chain_conf_find(name) != NULL) {
		conf_error(cf, "chain %s: the name is taken", name);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->name = xstrdup(name);
	if (conf_expect_punct(cf, '{')) {
		do {
			if ((s = conf_word(cf, "a filter name")) == NULL)
				break;
			if (filter_conf_find(s) == NULL) {
				conf_error(cf, "chain %s: no filter %s", name,
				    s);
				break;
			}
			for (i = 0; i < c->nfilters; i++)
				if (strcmp(c->filters[i], s) == 0)
					conf_error(cf, "chain %s: filter %s "
					    "twice", name, s);
			c->filters = xreallocarray(c->filters,
			    c->nfilters + 1, sizeof(*c->filters));
			c->filters[c->nfilters++] = xstrdup(s);
		} while (!cf->failed && conf_accept_punct(cf, ','));
		if (!cf->failed && conf_expect_punct(cf, '}'))
			conf_end(cf);
	}
	if (cf->failed) {
		chain_conf_free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&smtpfd_conf->chains, c, entry);
}

void
select_conf_free(struct select_conf *sel)
{
	size_t	 i;

	for (i = 0; i < sel->nconds; i++)
		free_list(sel->conds[i].list, sel->conds[i].nlist);
	free(sel->conds);
	free(sel->chain);
	free(sel);
}

static int
parse_select_cond(struct conf *cf, struct select_cond *c)
{
	const char	*s;

	memset(c, 0, sizeof(*c));
	c->negate = conf_accept_punct(cf, '!');
	if (conf_accept(cf, "tag")) {
		c->kind = SELECT_TAG;
		if ((s = conf_word(cf, "a tag")) != NULL) {
			c->list = xcalloc(1, sizeof(*c->list));
			c->list[c->nlist++] = xstrdup(s);
		}
	} else if (conf_accept(cf, "src")) {
		c->kind = SELECT_SRC;
		parse_word_list(cf, "an address or network", &c->list,
		    &c->nlist);
	} else if (conf_accept(cf, "auth"))
		c->kind = SELECT_AUTH;
	else if (conf_accept(cf, "mail-from")) {
		c->kind = SELECT_MAIL_FROM;
		if (conf_expect(cf, "domain"))
			parse_word_list(cf, "a domain", &c->list, &c->nlist);
	} else if (conf_accept(cf, "rcpt-to")) {
		c->kind = SELECT_RCPT_TO;
		if (conf_expect(cf, "domain"))
			parse_word_list(cf, "a domain", &c->list, &c->nlist);
	} else {
		if (c->negate)
			conf_error(cf, "expected a condition after !");
		return -1;
	}
	return cf->failed ? -1 : 0;
}

void
parse_select(struct conf *cf)
{
	struct select_conf	*sel;
	struct select_cond	 c;
	const char		*s;

	sel = xcalloc(1, sizeof(*sel));
	if (conf_accept(cf, "bypass"))
		sel->chain = NULL;
	else if (conf_expect(cf, "chain") &&
	    (s = conf_word(cf, "a chain name")) != NULL) {
		if (chain_conf_find(s) == NULL && filter_conf_find(s) == NULL)
			conf_error(cf, "select: no chain or filter %s", s);
		sel->chain = xstrdup(s);
	}
	if (!cf->failed && conf_expect(cf, "for")) {
		while (!cf->failed && !conf_at_end(cf)) {
			if (parse_select_cond(cf, &c) == -1) {
				if (!cf->failed)
					conf_error(cf, "expected tag, src, auth, "
					    "mail-from or rcpt-to, got %s",
					    conf_describe(conf_peek(cf)));
				free_list(c.list, c.nlist);
				break;
			}
			sel->conds = xreallocarray(sel->conds, sel->nconds + 1,
			    sizeof(*sel->conds));
			sel->conds[sel->nconds++] = c;
		}
		if (!cf->failed && sel->nconds == 0)
			conf_error(cf, "select: expected a condition");
	}
	if (cf->failed) {
		select_conf_free(sel);
		return;
	}
	TAILQ_INSERT_TAIL(&smtpfd_conf->selects, sel, entry);
}
