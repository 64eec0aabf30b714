/*
 * libFuzzer target: the configuration lexer and both daemons' grammars.
 * Any input must end in statements or file:line errors, never a crash,
 * a hang or a leak.
 */
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "mtad.h"
#include "smtpfd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf	 cf;
	int		 grammar;

	if (size == 0)
		return 0;
	/* The first byte picks the grammar, the rest is the file. */
	grammar = data[0] & 1;
	/* A fresh configuration each time, as the daemons have. */
	mtad_conf_init();
	smtpfd_conf_init();
	conf_init(&cf);
	/* No include or table file: they could block (/dev/stdin). */
	cf.no_files = 1;
	conf_define(&cf, "rundir=/tmp");
	conf_open_buffer(&cf, "fuzz.conf", (const char *)data + 1, size - 1);
	while (conf_next_statement(&cf))
		grammar ? mtad_parse(&cf) : smtpfd_parse(&cf);
	conf_free(&cf);
	mtad_conf_free();
	smtpfd_conf_free();
	return 0;
}

int	LLVMFuzzerInitialize(int *, char ***);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}
