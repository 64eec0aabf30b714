/*
 * libFuzzer target: smtpf lines.  Whatever parses must format back into
 * a line that parses to the same fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtpf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpf_msg	 m, again;
	char			 line[SMTPF_LINE_MAX + 1], out[SMTPF_LINE_MAX];
	char			 err[128];
	int			 from, n;
	size_t			 i;

	if (size < 1 || size > SMTPF_LINE_MAX)
		return 0;
	from = (data[0] & 1) ? SMTPF_FROM_MTA : SMTPF_FROM_SMTPFD;
	memcpy(line, data + 1, size - 1);
	if (smtpf_parse(line, size - 1, from, &m, err, sizeof(err)) == -1)
		return 0;
	n = smtpf_format(out, sizeof(out), m.type, m.field, m.nfields);
	if (n <= 0)
		__builtin_trap();	/* parsed but cannot be written back */
	out[n - 1] = '\0';
	if (smtpf_parse(out, (size_t)n - 1, from, &again, err,
	    sizeof(err)) == -1 || again.type != m.type ||
	    again.nfields != m.nfields)
		__builtin_trap();
	for (i = 0; i < m.nfields; i++)
		if (strcmp(again.field[i], m.field[i]) != 0)
			__builtin_trap();
	return 0;
}
