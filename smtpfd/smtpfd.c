/*
 * smtpfd: the process table and start-up.
 */
#include <stdlib.h>

#include "ipc.h"
#include "smtpfd.h"
#include "proc.h"

static const char *
smtpfd_empty_dir(void)
{
	return smtpfd_conf->proc.chroot;
}

/* Every process, where it lives and what it does, in one place. */
static const struct proc_role smtpfd_roles[] = {
	{ "frontend",	smtpfd_empty_dir, frontend_init, frontend_dispatch,
	    frontend_configured, 0, frontend_reconfigured },
	{ "engine",	smtpfd_empty_dir, engine_init,	engine_dispatch,
	    engine_configured, 0, engine_reconfigured },
	{ "control",	smtpfd_empty_dir, control_init,	control_dispatch,
	    control_configured, 0, NULL },
};

/* Roles that talk directly, without the parent in between. */
static const char *smtpfd_peers[][2] = {
	{ "control",	"frontend" },
	{ "control",	"engine" },
	{ "frontend",	"engine" },
	{ NULL,		NULL },
};

static const struct proc_settings *
smtpfd_settings(void)
{
	return &smtpfd_conf->proc;
}

static const struct daemon_desc smtpfd_desc = {
	.name = "smtpfd",
	.conf_default = SMTPFD_CONF,
	.roles = smtpfd_roles,
	.nroles = sizeof(smtpfd_roles) / sizeof(smtpfd_roles[0]),
	.types = smtpfd_types,
	.ntypes = SMTPFD_NTYPES,
	.peers = smtpfd_peers,
	.parse = smtpfd_parse,
	.settings = smtpfd_settings,
	.parent_init = parent_init,
	.send_config = parent_send_config,
	.parent_dispatch = parent_dispatch,
	.conf_begin = smtpfd_conf_begin,
	.conf_abort = smtpfd_conf_abort,
	.conf_check = smtpfd_conf_check,
	.conf_end = smtpfd_conf_end,
};

int
main(int argc, char **argv)
{
	smtpfd_conf_init();
	daemon_main(&smtpfd_desc, argc, argv);
}
