/*
 * smtpfctl: control a running smtpfd over its control socket.
 *
 *	smtpfctl [-s socket] show sessions | show stats | show filters
 *	smtpfctl [-s socket] reload
 *	smtpfctl [-s socket] log verbose|brief
 */
#include "control.h"
#include "smtpfd.h"

static const struct ctl_syntax commands[] = {
	{ "show sessions",	CTL_SHOW_SESSIONS },
	{ "show stats",		CTL_SHOW_STATS },
	{ "show filters",	CTL_SHOW_FILTERS },
	{ "reload",		CTL_RELOAD },
	{ "log verbose",	CTL_LOG_VERBOSE },
	{ "log brief",		CTL_LOG_BRIEF },
};

static const struct control_proto smtpfd_control = {
	SMTPFD_MSG_CTL_REQUEST, SMTPFD_MSG_CTL_LINE, SMTPFD_MSG_CTL_END,
	smtpfd_types, SMTPFD_NTYPES
};

static const struct ctl_tool smtpfctl = {
	"smtpfctl", "smtpfd", SMTPFD_CONTROL_SOCKET, &smtpfd_control,
	commands, sizeof(commands) / sizeof(commands[0])
};

int
main(int argc, char **argv)
{
	return ctl_main(&smtpfctl, argc, argv);
}
