/*
 * Executable filters speaking OpenSMTPD's filter protocol: not built
 * yet (placeholder so that the engine links).
 */
#include <unistd.h>

#include "filter.h"
#include "log.h"

static int
exec_start(struct filter *f)
{
	log_warnx("filter %s: exec filters are not built yet", f->name);
	f->ready = 1;
	f->broken = 1;
	return 0;
}

const struct filter_ops filter_exec_ops = {
	.start = exec_start,
};

void
filter_exec_attach(struct filter *f, int fd)
{
	(void)f;
	close(fd);
}
