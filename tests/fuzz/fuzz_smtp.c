/*
 * libFuzzer target: SMTP command lines, paths and their parameters,
 * reply lines and enhanced codes, xtext.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp_proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_command	 cmd;
	struct mailaddr		 addr;
	const char		*params, *text;
	char			 line[SMTP_LINE_MAX + 1], k[64], v[512];
	char			 out[3 * SMTP_LINE_MAX + 1], back[512];
	int			 code, more, r;

	if (size > SMTP_LINE_MAX)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';

	smtp_command_parse(line, &cmd);
	if (cmd.verb == SMTP_MAIL || cmd.verb == SMTP_RCPT) {
		if (smtp_path_parse(cmd.args, cmd.verb == SMTP_MAIL ?
		    SMTP_PATH_MAIL : SMTP_PATH_RCPT, size & 1, &addr,
		    &params) == SMTP_PATH_OK) {
			while ((r = smtp_param_next(&params, k, sizeof(k), v,
			    sizeof(v))) == 1)
				;
		}
	}
	if (smtp_reply_parse(line, &code, &more, &text) == 0)
		(void)smtp_reply_esc(text, k, sizeof(k));
	/* What decodes must encode and decode back to the same bytes. */
	if (xtext_decode(line, v, sizeof(v)) == 0 &&
	    (xtext_encode(v, out, sizeof(out)) != 0 ||
	    xtext_decode(out, back, sizeof(back)) != 0 ||
	    strcmp(back, v) != 0))
		__builtin_trap();
	return 0;
}
