/*
 * smtpfd: the process table and start-up.
 */
#include <stdlib.h>

#include "ipc.h"
#include "smtpfd.h"
#include "proc.h"

/*
 * Every process and its privileges, in one place.  The roles have no
 * work of their own yet: the smtpf frontend and the filter engine fill them.
 */
static const char *
smtpfd_empty_dir(void)
{
	return smtpfd_conf->proc.chroot;
}

static const struct proc_role smtpfd_roles[] = {
	{ "frontend",	smtpfd_empty_dir,	NULL,	NULL,	NULL,	0 },
	{ "engine",	smtpfd_empty_dir,	NULL,	NULL,	NULL,	0 },
};

static const struct ipc_type smtpfd_types[] = {
	PROC_IPC_TYPES,
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
	.ntypes = sizeof(smtpfd_types) / sizeof(smtpfd_types[0]),
	.parse = smtpfd_parse,
	.settings = smtpfd_settings,
};

int
main(int argc, char **argv)
{
	smtpfd_conf_init();
	daemon_main(&smtpfd_desc, argc, argv);
}
