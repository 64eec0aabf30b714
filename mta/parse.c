/*
 * mtad.conf grammar, on top of the shared lexer (lib/conf.h).
 *
 *	user NAME
 *	chroot PATH
 */
#include <stdlib.h>

#include "conf.h"
#include "log.h"
#include "mtad.h"
#include "xmalloc.h"

struct mtad_conf	*mtad_conf;

void
mtad_conf_init(void)
{
	mtad_conf = xcalloc(1, sizeof(*mtad_conf));
	mtad_conf->proc.user = xstrdup(MTAD_USER);
	mtad_conf->proc.chroot = xstrdup(MTAD_CHROOT);
}

void
mtad_parse(struct conf *cf)
{
	if (daemon_parse_settings(cf, &mtad_conf->proc))
		return;
	conf_error(cf, "unknown statement %s", conf_describe(conf_peek(cf)));
}
