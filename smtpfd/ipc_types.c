/*
 * smtpfd's IPC messages and their payload layouts (SPEC.md section 1.3).
 * smtpfctl speaks the control ones, so this table is linked into both.
 */
#include "ipc.h"
#include "proc.h"
#include "smtpfd.h"

const struct ipc_type smtpfd_types[] = {
	PROC_IPC_TYPES,
	{ SMTPFD_MSG_LISTENER,	"LISTENER",	"u",	IPC_FD_REQUIRED },
	{ SMTPFD_MSG_PKI,	"PKI",		"sddd",	IPC_FD_NONE },
	{ SMTPFD_MSG_CONTROL_SOCKET, "CONTROL_SOCKET", "", IPC_FD_REQUIRED },
	{ SMTPFD_MSG_CTL_REQUEST, "CTL_REQUEST", "qus",	IPC_FD_NONE },
	{ SMTPFD_MSG_CTL_LINE,	"CTL_LINE",	"qs",	IPC_FD_NONE },
	{ SMTPFD_MSG_CTL_END,	"CTL_END",	"qus",	IPC_FD_NONE },
	{ SMTPFD_MSG_FILTER_SCRIPT, "FILTER_SCRIPT", "sd", IPC_FD_NONE },
	{ SMTPFD_MSG_FILTER_PROC, "FILTER_PROC", "s",	IPC_FD_REQUIRED },
	{ SMTPFD_MSG_FILTER_RESTART, "FILTER_RESTART", "s", IPC_FD_NONE },
	{ SMTPFD_MSG_SESSION_OPEN, "SESSION_OPEN", "qusususs", IPC_FD_NONE },
	{ SMTPFD_MSG_SESSION_CHAIN, "SESSION_CHAIN", "quu", IPC_FD_NONE },
	{ SMTPFD_MSG_SESSION_CLOSE, "SESSION_CLOSE", "q", IPC_FD_NONE },
	{ SMTPFD_MSG_FILTER_QUERY, "FILTER_QUERY", "qus", IPC_FD_NONE },
	{ SMTPFD_MSG_FILTER_DECISION, "FILTER_DECISION", "quuus",
	    IPC_FD_NONE },
	{ SMTPFD_MSG_FILTER_EVENT, "FILTER_EVENT", "qus", IPC_FD_NONE },
	{ SMTPFD_MSG_FILTER_DATA, "FILTER_DATA", "qus",	IPC_FD_NONE },
	{ SMTPFD_MSG_FILTER_DATA_OUT, "FILTER_DATA_OUT", "qus", IPC_FD_NONE },
	{ SMTPFD_MSG_FILTER_DATA_ACK, "FILTER_DATA_ACK", "qu", IPC_FD_NONE },
	{ SMTPFD_MSG_FRONTEND_CPU, "FRONTEND_CPU", "u", IPC_FD_NONE },
	{ SMTPFD_MSG_METRICS_SOCKET, "METRICS_SOCKET", "", IPC_FD_REQUIRED },
};

_Static_assert(sizeof(smtpfd_types) / sizeof(smtpfd_types[0]) ==
    SMTPFD_NTYPES, "SMTPFD_NTYPES does not match the table");
