/*
 * The lines an executable filter writes, parsed (filter_exec_proto.h).
 * No state, no I/O: what a line means for the process and its sessions
 * is filter_exec.c's business.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "filter_exec_proto.h"

/* The first n '|'-separated fields of line, the rest in fields[n]. */
static int
split(char *line, char **fields, int n)
{
	int	 i;
	char	*p = line;

	for (i = 0; i < n; i++) {
		fields[i] = p;
		if ((p = strchr(p, '|')) == NULL)
			return i + 1;
		*p++ = '\0';
	}
	fields[n] = p;
	return n + 1;
}

/* 1 to 16 hex digits. */
static int
parse_id(const char *s, uint64_t *id)
{
	char			*end;
	unsigned long long	 v;

	if (*s == '\0' || strlen(s) > 16 || !isxdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 16);
	if (*end != '\0' || errno != 0)
		return -1;
	*id = v;
	return 0;
}

/* "250 ...", "550-5.7.1 ...": a reply a client may get. */
static int
valid_reply(const char *s)
{
	return (s[0] == '4' || s[0] == '5') && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) && (s[3] == ' ' || s[3] == '\0');
}

/* "register|...": an error if it is not one we know. */
static int
parse_register(char *line, struct exec_line *out, char *err, size_t errlen)
{
	char	*fld[4];
	int	 n, i;

	n = split(line, fld, 3);
	if (n == 2 && strcmp(fld[1], "ready") == 0) {
		out->kind = EXEC_LINE_READY;
		return 0;
	}
	if (n != 4) {
		snprintf(err, errlen, "register: expected 4 fields");
		return -1;
	}
	if (strcmp(fld[1], "report") == 0) {
		if (strcmp(fld[2], "smtp-out") == 0)
			return 0;	/* smtpfd has no smtp-out */
		if (strcmp(fld[2], "smtp-in") != 0) {
			snprintf(err, errlen, "register: unknown subsystem");
			return -1;
		}
		if (strcmp(fld[3], "*") == 0)
			out->events = (1U << NEVENTS) - 1;
		else if ((i = filter_event_by_name(fld[3])) == -1) {
			snprintf(err, errlen, "register: unknown event");
			return -1;
		} else
			out->events = 1U << i;
		return 0;
	}
	if (strcmp(fld[1], "filter") == 0 && strcmp(fld[2], "smtp-in") == 0) {
		/* OpenSMTPD takes them, and never asks */
		if (strcmp(fld[3], "help") == 0 || strcmp(fld[3], "wiz") == 0)
			return 0;
		if ((i = filter_phase_by_name(fld[3])) == -1) {
			snprintf(err, errlen, "register: unknown phase");
			return -1;
		}
		out->phases = 1U << i;
		return 0;
	}
	snprintf(err, errlen, "register: unknown registration");
	return -1;
}

/* "filter-result|SID|TOKEN|DECISION[|TEXT]" */
static int
parse_result(char *line, struct exec_line *out, char *err, size_t errlen)
{
	static const struct {
		const char		*name;
		enum decision_kind	 kind;
	} kinds[] = {
		{ "proceed",	DECISION_PROCEED },
		{ "junk",	DECISION_JUNK },
		{ "reject",	DECISION_REJECT },
		{ "disconnect",	DECISION_DISCONNECT },
		{ "rewrite",	DECISION_REWRITE },
		{ "report",	DECISION_REPORT },
	};
	struct decision	*d = &out->decision;
	char		*fld[5], *text;
	size_t		 i, len;
	int		 n;

	if ((n = split(line, fld, 4)) < 4 || parse_id(fld[1], &out->sid) ==
	    -1 || parse_id(fld[2], &out->token) == -1) {
		snprintf(err, errlen, "filter-result: bad session or token");
		return -1;
	}
	text = n == 5 ? fld[4] : NULL;
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(fld[3], kinds[i].name) == 0)
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0])) {
		snprintf(err, errlen, "filter-result: unknown decision");
		return -1;
	}
	d->kind = kinds[i].kind;
	if ((d->kind == DECISION_PROCEED || d->kind == DECISION_JUNK) !=
	    (text == NULL)) {
		snprintf(err, errlen, "filter-result: %s text", text == NULL ?
		    "missing" : "unexpected");
		return -1;
	}
	if (text != NULL) {
		if ((len = strlen(text)) >= sizeof(d->text)) {
			snprintf(err, errlen, "filter-result: text too long");
			return -1;
		}
		memcpy(d->text, text, len + 1);
	}
	/* As OpenSMTPD: a reply it cannot give becomes 421. */
	if ((d->kind == DECISION_REJECT || d->kind == DECISION_DISCONNECT) &&
	    !valid_reply(d->text)) {
		d->kind = DECISION_DISCONNECT;
		snprintf(d->text, sizeof(d->text), "421 Internal server "
		    "error");
	}
	return 0;
}

/* "filter-dataline|SID|TOKEN|LINE" */
static int
parse_dataline(char *line, struct exec_line *out, char *err, size_t errlen)
{
	char	*fld[4];

	if (split(line, fld, 3) != 4 || parse_id(fld[1], &out->sid) == -1 ||
	    parse_id(fld[2], &out->token) == -1) {
		snprintf(err, errlen, "filter-dataline: bad session or token");
		return -1;
	}
	out->text = fld[3];
	return 0;
}

/* "report|TIME|smtp-in|SID|TEXT" (protocol 0.4 on) */
static int
parse_report(char *line, struct exec_line *out, char *err, size_t errlen)
{
	char	*fld[5];

	if (split(line, fld, 4) != 5 || parse_id(fld[3], &out->sid) == -1) {
		snprintf(err, errlen, "report: bad fields or session");
		return -1;
	}
	out->text = fld[4];
	return 0;
}

int
exec_parse_line(char *line, struct exec_line *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(line, "register|", 9) == 0) {
		out->kind = EXEC_LINE_REGISTER;
		return parse_register(line, out, err, errlen);
	}
	if (strncmp(line, "filter-result|", 14) == 0) {
		out->kind = EXEC_LINE_RESULT;
		return parse_result(line, out, err, errlen);
	}
	if (strncmp(line, "filter-dataline|", 16) == 0) {
		out->kind = EXEC_LINE_DATALINE;
		return parse_dataline(line, out, err, errlen);
	}
	if (strncmp(line, "report|", 7) == 0) {
		out->kind = EXEC_LINE_REPORT;
		return parse_report(line, out, err, errlen);
	}
	out->kind = EXEC_LINE_UNKNOWN;
	snprintf(err, errlen, "unknown line");
	return -1;
}
