/*
 * mtad: the process table and start-up.
 */
#include <stdlib.h>

#include "ipc.h"
#include "mtad.h"
#include "proc.h"

/*
 * Every process and its privileges, in one place.  The roles have no
 * work of their own yet: the SMTP server and the queue fill them.
 */
static const struct proc_role mtad_roles[] = {
	{ "smtp",	1,	NULL,	NULL,	NULL },
	{ "queue",	0,	NULL,	NULL,	NULL },
};

static const struct ipc_type mtad_types[] = {
	PROC_IPC_TYPES,
};

static const struct proc_settings *
mtad_settings(void)
{
	return &mtad_conf->proc;
}

static const struct daemon_desc mtad_desc = {
	.name = "mtad",
	.conf_default = MTAD_CONF,
	.roles = mtad_roles,
	.nroles = sizeof(mtad_roles) / sizeof(mtad_roles[0]),
	.types = mtad_types,
	.ntypes = sizeof(mtad_types) / sizeof(mtad_types[0]),
	.parse = mtad_parse,
	.settings = mtad_settings,
};

int
main(int argc, char **argv)
{
	mtad_conf_init();
	daemon_main(&mtad_desc, argc, argv);
}
