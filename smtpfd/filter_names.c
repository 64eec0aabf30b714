/*
 * The names of phases, events and decisions: OpenSMTPD's words
 * (smtpd-filters(7)), shared by the grammar, the engine, the exec
 * filters' protocol and the logs.
 */
#include <string.h>

#include "filter.h"

static const char *phase_names[NPHASES] = {
	[PHASE_CONNECT] = "connect",
	[PHASE_HELO] = "helo",
	[PHASE_EHLO] = "ehlo",
	[PHASE_STARTTLS] = "starttls",
	[PHASE_AUTH] = "auth",
	[PHASE_MAIL_FROM] = "mail-from",
	[PHASE_RCPT_TO] = "rcpt-to",
	[PHASE_DATA] = "data",
	[PHASE_DATA_LINE] = "data-line",
	[PHASE_COMMIT] = "commit",
	[PHASE_RSET] = "rset",
	[PHASE_QUIT] = "quit",
	[PHASE_NOOP] = "noop",
};

static const char *event_names[NEVENTS] = {
	[EVENT_LINK_CONNECT] = "link-connect",
	[EVENT_LINK_GREETING] = "link-greeting",
	[EVENT_LINK_IDENTIFY] = "link-identify",
	[EVENT_LINK_TLS] = "link-tls",
	[EVENT_LINK_AUTH] = "link-auth",
	[EVENT_LINK_DISCONNECT] = "link-disconnect",
	[EVENT_TX_RESET] = "tx-reset",
	[EVENT_TX_BEGIN] = "tx-begin",
	[EVENT_TX_MAIL] = "tx-mail",
	[EVENT_TX_RCPT] = "tx-rcpt",
	[EVENT_TX_ENVELOPE] = "tx-envelope",
	[EVENT_TX_DATA] = "tx-data",
	[EVENT_TX_COMMIT] = "tx-commit",
	[EVENT_TX_ROLLBACK] = "tx-rollback",
	[EVENT_PROTOCOL_CLIENT] = "protocol-client",
	[EVENT_PROTOCOL_SERVER] = "protocol-server",
	[EVENT_FILTER_REPORT] = "filter-report",
	[EVENT_FILTER_RESPONSE] = "filter-response",
	[EVENT_TIMEOUT] = "timeout",
};

static const char *decision_names[] = {
	[DECISION_PROCEED] = "proceed",
	[DECISION_REWRITE] = "rewrite",
	[DECISION_JUNK] = "junk",
	[DECISION_REPORT] = "report",
	[DECISION_BYPASS] = "bypass",
	[DECISION_REJECT] = "reject",
	[DECISION_DISCONNECT] = "disconnect",
};

const char *
filter_phase_name(enum filter_phase p)
{
	return (unsigned)p < NPHASES ? phase_names[p] : "?";
}

const char *
filter_event_name(enum filter_event e)
{
	return (unsigned)e < NEVENTS ? event_names[e] : "?";
}

const char *
decision_name(enum decision_kind d)
{
	return (unsigned)d <= DECISION_DISCONNECT ? decision_names[d] : "?";
}

int
filter_phase_by_name(const char *name)
{
	int	 i;

	for (i = 0; i < NPHASES; i++)
		if (strcmp(phase_names[i], name) == 0)
			return i;
	return -1;
}

int
filter_event_by_name(const char *name)
{
	int	 i;

	for (i = 0; i < NEVENTS; i++)
		if (strcmp(event_names[i], name) == 0)
			return i;
	return -1;
}
