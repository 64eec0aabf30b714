/*
 * libFuzzer target: the configuration lexer and smtpfd's grammar (one
 * grammar per target: the two daemons' headers do not mix).  Any input
 * must end in statements or file:line errors, never a crash, a hang or
 * a leak.
 */
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "smtpfd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf	 cf;

	/* A fresh configuration each time, as the daemons have. */
	smtpfd_conf_init();
	conf_init(&cf);
	/* No include, table or certificate file: they could block. */
	cf.no_files = 1;
	conf_define(&cf, "rundir=/tmp");
	conf_open_buffer(&cf, "fuzz.conf", (const char *)data, size);
	while (conf_next_statement(&cf))
		smtpfd_parse(&cf);
	conf_free(&cf);
	smtpfd_conf_free();
	return 0;
}
