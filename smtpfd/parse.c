/*
 * smtpfd.conf grammar, on top of the shared lexer (lib/conf.h).
 *
 *	user NAME
 *	chroot PATH
 */
#include <stdlib.h>

#include "conf.h"
#include "log.h"
#include "smtpfd.h"
#include "xmalloc.h"

struct smtpfd_conf	*smtpfd_conf;

void
smtpfd_conf_init(void)
{
	smtpfd_conf = xcalloc(1, sizeof(*smtpfd_conf));
	smtpfd_conf->proc.user = xstrdup(SMTPFD_USER);
	smtpfd_conf->proc.chroot = xstrdup(SMTPFD_CHROOT);
}

void
smtpfd_conf_free(void)
{
	free(smtpfd_conf->proc.user);
	free(smtpfd_conf->proc.chroot);
	free(smtpfd_conf);
	smtpfd_conf = NULL;
}

void
smtpfd_parse(struct conf *cf)
{
	if (daemon_parse_settings(cf, &smtpfd_conf->proc))
		return;
	conf_error(cf, "unknown statement %s", conf_describe(conf_peek(cf)));
}
