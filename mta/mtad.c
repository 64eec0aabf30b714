/*
 * mtad: the process table, the message types, and start-up.
 */
#include <stdlib.h>

#include "ipc.h"
#include "mtad.h"
#include "proc.h"

static const char *
mtad_empty_dir(void)
{
	return mtad_conf->proc.chroot;
}

static const char *
mtad_queue_dir(void)
{
	return mtad_conf->queue_path;
}

/* Every process, where it lives and what it does, in one place. */
static const struct proc_role mtad_roles[] = {
	{ "smtp",	mtad_empty_dir,	smtp_init,	smtp_dispatch,
	    smtp_configured, 0, NULL },
	{ "queue",	mtad_queue_dir,	queue_init,	queue_dispatch,
	    queue_configured, 0, NULL },
	/* Keeps root to become each recipient; talks to the queue only. */
	{ "delivery",	NULL,		delivery_init,	delivery_dispatch,
	    delivery_configured, 1, NULL },
	{ "control",	mtad_empty_dir,	control_init,	control_dispatch,
	    control_configured, 0, NULL },
};


/* Roles that talk directly, without the parent in between. */
static const char *mtad_peers[][2] = {
	{ "smtp",	"queue" },
	{ "queue",	"delivery" },
	{ "control",	"queue" },
	{ "control",	"smtp" },
	{ NULL,		NULL },
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
	.ntypes = MTAD_NTYPES,
	.peers = mtad_peers,
	.parse = mtad_parse,
	.settings = mtad_settings,
	.parent_init = parent_init,
	.send_config = parent_send_config,
	.parent_dispatch = parent_dispatch,
};

int
main(int argc, char **argv)
{
	mtad_conf_init();
	daemon_main(&mtad_desc, argc, argv);
}
