/*
 * smtpfd: the SMTP filtering daemon.
 *
 * Processes (see lib/proc.h for the framework):
 *	parent		privileged: configuration, listening sockets,
 *			starting filter processes, supervision
 *	frontend	the network side: smtpf and SMTP sessions (chrooted)
 *	engine		runs the filter chains
 */
#ifndef SMTPFD_H
#define SMTPFD_H

#include "conf.h"
#include "proc.h"

#define SMTPFD_CONF	"/etc/smtpfd.conf"
#define SMTPFD_USER	"_smtpfd"
#define SMTPFD_CHROOT	"/var/empty"

/* smtpfd's own message types, after the framework's. */
enum smtpfd_msg_type {
	SMTPFD_MSG_FIRST = 100,
};

struct smtpfd_conf {
	struct proc_settings	 proc;
};

extern struct smtpfd_conf	*smtpfd_conf;

/* parse.c */
void	 smtpfd_conf_init(void);
void	 smtpfd_conf_free(void);
void	 smtpfd_parse(struct conf *);

#endif
