/*
 * The lines an executable filter writes (SPEC.md section 3), parsed
 * without any state or I/O: filter_exec.c decides what they mean for
 * the process and its sessions.  Fuzzed (tests/fuzz/fuzz_filter_proto.c).
 */
#ifndef FILTER_EXEC_PROTO_H
#define FILTER_EXEC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "filter.h"

enum exec_line_kind {
	EXEC_LINE_UNKNOWN,	/* no prefix we know */
	EXEC_LINE_REGISTER,	/* register|report|... register|filter|... */
	EXEC_LINE_READY,	/* register|ready */
	EXEC_LINE_RESULT,	/* filter-result|SID|TOKEN|DECISION[|TEXT] */
	EXEC_LINE_DATALINE,	/* filter-dataline|SID|TOKEN|LINE */
	EXEC_LINE_REPORT,	/* report|TIME|smtp-in|SID|TEXT */
};

struct exec_line {
	enum exec_line_kind	 kind;	/* set from the prefix, even on error */
	uint32_t		 events;	/* REGISTER: 1 << event, or 0 */
	uint32_t		 phases;	/* REGISTER: 1 << phase, or 0 */
	uint64_t		 sid;		/* RESULT, DATALINE, REPORT */
	uint64_t		 token;		/* RESULT, DATALINE */
	struct decision		 decision;	/* RESULT */
	const char		*text;		/* DATALINE, REPORT: in line */
};

/*
 * Parse one line (without its end of line; split in place): 0 and *out,
 * or -1 with err and out->kind still telling what the line meant to be.
 * A reject or disconnect whose text is not a 4xx/5xx reply becomes
 * "disconnect|421 Internal server error", as OpenSMTPD does.
 */
int	 exec_parse_line(char *, struct exec_line *, char *, size_t);

#endif
