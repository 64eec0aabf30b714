/*
 * libFuzzer target: the lines an executable filter writes (register,
 * filter-result, filter-dataline, report; smtpfd/filter_exec_proto.c).
 * Every input is a parsed line or an error; what parses is consistent,
 * and a filter-result or filter-dataline written back from its fields
 * parses to the same fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter_exec_proto.h"

#define LINE_MAX_LEN	(64 * 1024)	/* as filter_exec.c */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *
result_name(enum decision_kind k)
{
	switch (k) {
	case DECISION_PROCEED:		return "proceed";
	case DECISION_JUNK:		return "junk";
	case DECISION_REJECT:		return "reject";
	case DECISION_DISCONNECT:	return "disconnect";
	case DECISION_REWRITE:		return "rewrite";
	case DECISION_REPORT:		return "report";
	default:			__builtin_trap();
	}
}

static void
check(char *line, size_t size, const struct exec_line *l, char *err,
    size_t errlen)
{
	const struct decision	*d = &l->decision;
	struct exec_line	 again;
	char			*out;
	size_t			 len;
	int			 n;

	switch (l->kind) {
	case EXEC_LINE_READY:
	case EXEC_LINE_REGISTER:
		if (l->events == 0 && l->phases == 0)
			return;		/* smtp-out, help, wiz */
		if (l->events != 0 && l->phases != 0)
			__builtin_trap();
		if (l->phases != 0 && (l->phases & (l->phases - 1)) != 0)
			__builtin_trap();
		if (l->phases >= 1U << NPHASES ||
		    l->events >= 1U << NEVENTS)
			__builtin_trap();
		return;
	case EXEC_LINE_RESULT:
		len = strnlen(d->text, sizeof(d->text));
		if (len == sizeof(d->text))
			__builtin_trap();	/* not terminated */
		if ((d->kind == DECISION_PROCEED ||
		    d->kind == DECISION_JUNK) && len != 0)
			__builtin_trap();
		if ((d->kind == DECISION_REJECT ||
		    d->kind == DECISION_DISCONNECT) && (d->text[0] != '4' &&
		    d->text[0] != '5'))
			__builtin_trap();
		out = malloc(len + 128);
		if (d->kind == DECISION_PROCEED || d->kind == DECISION_JUNK)
			n = snprintf(out, len + 128, "filter-result|%016llx|"
			    "%016llx|%s", (unsigned long long)l->sid,
			    (unsigned long long)l->token,
			    result_name(d->kind));
		else
			n = snprintf(out, len + 128, "filter-result|%016llx|"
			    "%016llx|%s|%s", (unsigned long long)l->sid,
			    (unsigned long long)l->token,
			    result_name(d->kind), d->text);
		if (n < 0 || (size_t)n >= len + 128 ||
		    exec_parse_line(out, &again, err, errlen) == -1 ||
		    again.kind != EXEC_LINE_RESULT || again.sid != l->sid ||
		    again.token != l->token ||
		    again.decision.kind != d->kind ||
		    strcmp(again.decision.text, d->text) != 0)
			__builtin_trap();
		free(out);
		return;
	case EXEC_LINE_DATALINE:
	case EXEC_LINE_REPORT:
		/* The text is the end of the line, in place. */
		if (l->text == NULL || l->text < line ||
		    l->text > line + size ||
		    l->text + strlen(l->text) != line + size)
			__builtin_trap();
		if (l->kind == EXEC_LINE_REPORT)
			return;
		len = strlen(l->text);
		out = malloc(len + 64);
		n = snprintf(out, len + 64, "filter-dataline|%016llx|%016llx|"
		    "%s", (unsigned long long)l->sid,
		    (unsigned long long)l->token, l->text);
		if (n < 0 || (size_t)n >= len + 64 ||
		    exec_parse_line(out, &again, err, errlen) == -1 ||
		    again.kind != EXEC_LINE_DATALINE || again.sid != l->sid ||
		    again.token != l->token || strcmp(again.text, l->text) != 0)
			__builtin_trap();
		free(out);
		return;
	default:
		__builtin_trap();	/* an unknown line must be an error */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct exec_line	 l;
	char			*line, err[128];

	/* filter_exec.c drops longer lines, and lines with a NUL, first. */
	if (size > LINE_MAX_LEN || memchr(data, '\0', size) != NULL)
		return 0;
	line = malloc(size + 1);
	memcpy(line, data, size);
	line[size] = '\0';
	err[0] = '\0';
	if (exec_parse_line(line, &l, err, sizeof(err)) == -1) {
		if (err[0] == '\0' || strnlen(err, sizeof(err)) ==
		    sizeof(err))
			__builtin_trap();	/* an error says what */
	} else
		check(line, size, &l, err, sizeof(err));
	free(line);
	return 0;
}
