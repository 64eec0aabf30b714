/*
 * The parent's side of exec filters: not built yet (placeholder).
 */
#include "smtpfd.h"

void
parent_filters_start(struct proc_child *engine)
{
	(void)engine;
}

int
parent_filter_restart(const char *name)
{
	(void)name;
	return -1;
}
