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
	    smtp_configured, 0 },
	{ "queue",	mtad_queue_dir,	queue_init,	queue_dispatch,
	    queue_configured, 0 },
	/* Keeps root to become each recipient; talks to the queue only. */
	{ "delivery",	NULL,		delivery_init,	delivery_dispatch,
	    delivery_configured, 1 },
};

const struct ipc_type mtad_types[] = {
	PROC_IPC_TYPES,
	{ MTAD_MSG_LISTENER,	"LISTENER",	"u",	IPC_FD_REQUIRED },
	{ MTAD_MSG_PKI,		"PKI",		"sdd",	IPC_FD_NONE },
	{ MTAD_MSG_TABLE_ITEM,	"TABLE_ITEM",	"sss",	IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_CREATE, "MESSAGE_CREATE", "q", IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_CREATED, "MESSAGE_CREATED", "qu", IPC_FD_OPTIONAL },
	{ MTAD_MSG_ENVELOPE,	"ENVELOPE",	"us",	IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_COMMIT, "MESSAGE_COMMIT", "qu", IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_COMMITTED, "MESSAGE_COMMITTED", "qu", IPC_FD_NONE },
	{ MTAD_MSG_MESSAGE_ROLLBACK, "MESSAGE_ROLLBACK", "u", IPC_FD_NONE },
	{ MTAD_MSG_DELIVER,	"DELIVER",	"qs",	IPC_FD_REQUIRED },
	{ MTAD_MSG_DELIVERED,	"DELIVERED",	"qus",	IPC_FD_NONE },
};
const size_t mtad_ntypes = sizeof(mtad_types) / sizeof(mtad_types[0]);

/* Roles that talk directly, without the parent in between. */
static const char *mtad_peers[][2] = {
	{ "smtp",	"queue" },
	{ "queue",	"delivery" },
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
	.ntypes = sizeof(mtad_types) / sizeof(mtad_types[0]),
	.peers = mtad_peers,
	.parse = mtad_parse,
	.settings = mtad_settings,
	.parent_init = parent_init,
	.send_config = parent_send_config,
};

int
main(int argc, char **argv)
{
	mtad_conf_init();
	daemon_main(&mtad_desc, argc, argv);
}
