/*
 * mtad's IPC messages and their payload layouts (SPEC.md section 1.3).
 * mtactl speaks the control ones, so this table is linked into both.
 */
#include "ipc.h"
#include "mtad.h"
#include "proc.h"

const struct ipc_type mtad_types[] = {
	PROC_IPC_TYPES,
	{ MTAD_MSG_LISTENER,	"LISTENER",	"u",	IPC_FD_REQUIRED },
	{ MTAD_MSG_PKI,		"PKI",		"sddd",	IPC_FD_NONE },
	{ MTAD_MSG_TABLE_ITEM,	"TABLE_ITEM",	"sss",	IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_CREATE, "MESSAGE_CREATE", "q", IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_CREATED, "MESSAGE_CREATED", "qu", IPC_FD_OPTIONAL },
	{ MTAD_MSG_ENVELOPE,	"ENVELOPE",	"us",	IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_COMMIT, "MESSAGE_COMMIT", "qu", IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_COMMITTED, "MESSAGE_COMMITTED", "qu", IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_ROLLBACK, "MESSAGE_ROLLBACK", "u", IPC_FD_NONE },
	{ MTAD_MSG_DELIVER,	"DELIVER",	"qs",	IPC_FD_REQUIRED },
	{ MTAD_MSG_DELIVERED,	"DELIVERED",	"qus",	IPC_FD_NONE },
	{ MTAD_MSG_CONTROL_SOCKET, "CONTROL_SOCKET", "", IPC_FD_REQUIRED },
	{ MTAD_MSG_TABLE_RESET,	"TABLE_RESET",	"s",	IPC_FD_NONE },
	{ MTAD_MSG_CTL_REQUEST,	"CTL_REQUEST",	"qus",	IPC_FD_NONE },
	{ MTAD_MSG_CTL_LINE,	"CTL_LINE",	"qs",	IPC_FD_NONE },
	{ MTAD_MSG_CTL_END,	"CTL_END",	"qus",	IPC_FD_NONE },
	{ MTAD_MSG_SMTPF_CONNECT, "SMTPF_CONNECT", "u",	IPC_FD_NONE },
	{ MTAD_MSG_SMTPF_SOCKET, "SMTPF_SOCKET", "us",	IPC_FD_OPTIONAL },
};

_Static_assert(sizeof(mtad_types) / sizeof(mtad_types[0]) == MTAD_NTYPES,
    "MTAD_NTYPES does not match the table");
