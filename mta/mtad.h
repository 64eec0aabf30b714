/*
 * mtad: the mail transfer agent.
 *
 * Processes (see lib/proc.h for the framework):
 *	parent	privileged: configuration, listening sockets, supervision
 *	smtp	the SMTP server: client sessions (chrooted, unprivileged)
 *	queue	the spool: the only process that touches queued mail
 */
#ifndef MTAD_H
#define MTAD_H

#include "conf.h"
#include "proc.h"

#define MTAD_CONF	"/etc/mtad.conf"
#define MTAD_USER	"_mtad"
#define MTAD_CHROOT	"/var/empty"

/* mtad's own message types, after the framework's. */
enum mtad_msg_type {
	MTAD_MSG_FIRST = 100,
};

struct mtad_conf {
	struct proc_settings	 proc;
};

extern struct mtad_conf	*mtad_conf;

/* parse.c */
void	 mtad_conf_init(void);
void	 mtad_parse(struct conf *);

#endif
