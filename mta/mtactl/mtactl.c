/*
 * mtactl: control a running mtad over its control socket.
 *
 *	mtactl [-s socket] show queue | show envelope ID | show stats
 *	mtactl [-s socket] schedule ID|all | remove ID|all
 *	mtactl [-s socket] pause|resume mda|smtp
 *	mtactl [-s socket] update table NAME
 *	mtactl [-s socket] log verbose|brief
 *	mtactl [-s socket] stop
 */
#include "control.h"
#include "mtad.h"

static const struct ctl_syntax commands[] = {
	{ "show queue",		CTL_SHOW_QUEUE },
	{ "show envelope ARG",	CTL_SHOW_ENVELOPE },
	{ "show stats",		CTL_SHOW_STATS },
	{ "schedule ARG",	CTL_SCHEDULE },
	{ "remove ARG",		CTL_REMOVE },
	{ "pause mda",		CTL_PAUSE_MDA },
	{ "resume mda",		CTL_RESUME_MDA },
	{ "pause smtp",		CTL_PAUSE_SMTP },
	{ "resume smtp",	CTL_RESUME_SMTP },
	{ "update table ARG",	CTL_UPDATE_TABLE },
	{ "log verbose",	CTL_LOG_VERBOSE },
	{ "log brief",		CTL_LOG_BRIEF },
	{ "stop",		CTL_STOP },
};

static const struct control_proto mtad_control = {
	MTAD_MSG_CTL_REQUEST, MTAD_MSG_CTL_LINE, MTAD_MSG_CTL_END,
	mtad_types, MTAD_NTYPES
};

static const struct ctl_tool mtactl = {
	"mtactl", "mtad", MTAD_CONTROL_SOCKET, &mtad_control,
	commands, sizeof(commands) / sizeof(commands[0])
};

int
main(int argc, char **argv)
{
	return ctl_main(&mtactl, argc, argv);
}
