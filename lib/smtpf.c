/*
 * smtpf lines (protocol/smtpf.md): "type|field|...|last field" and LF.
 * Each message type declares its fields as a string of kinds; a line is
 * accepted only if every field is of its kind and the count is exact.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpf.h"

/*
 * Field kinds:
 *	K "smtpf"			V a version "N.M"
 *	S a session id			s a session id or "-"
 *	A an address ("unix" too)	P a port (0-65535)
 *	W a word (no blank)		N a number
 *	E crlf, lf, part or eof		T a token (1-32 alphanumerics)
 *	M none, starttls, require or smtps
 *	L the rest of the line (may be empty, may hold '|')
 */
static const struct {
	const char	*name;
	enum smtpf_type	 type;
	int		 from;
	const char	*fields;
} smtpf_types[] = {
	{ "hello",	SMTPF_HELLO,	SMTPF_FROM_MTA | SMTPF_FROM_SMTPFD, "KVWL" },
	{ "open",	SMTPF_OPEN,	SMTPF_FROM_MTA,		"SAPAPWML" },
	{ "tls",	SMTPF_TLS,	SMTPF_FROM_MTA,		"SWWNL" },
	{ "line",	SMTPF_LINE,	SMTPF_FROM_MTA,		"SEL" },
	{ "gone",	SMTPF_GONE,	SMTPF_FROM_MTA,		"SL" },
	{ "reply",	SMTPF_REPLY,	SMTPF_FROM_SMTPFD,	"SL" },
	{ "starttls",	SMTPF_STARTTLS,	SMTPF_FROM_SMTPFD,	"SL" },
	{ "close",	SMTPF_CLOSE,	SMTPF_FROM_SMTPFD,	"S" },
	{ "pause",	SMTPF_PAUSE,	SMTPF_FROM_MTA | SMTPF_FROM_SMTPFD, "S" },
	{ "resume",	SMTPF_RESUME,	SMTPF_FROM_MTA | SMTPF_FROM_SMTPFD, "S" },
	{ "ping",	SMTPF_PING,	SMTPF_FROM_MTA | SMTPF_FROM_SMTPFD, "T" },
	{ "pong",	SMTPF_PONG,	SMTPF_FROM_MTA | SMTPF_FROM_SMTPFD, "T" },
	{ "error",	SMTPF_ERROR,	SMTPF_FROM_MTA | SMTPF_FROM_SMTPFD, "sL" },
};
#define NTYPES	(sizeof(smtpf_types) / sizeof(smtpf_types[0]))

const char *
smtpf_type_name(enum smtpf_type type)
{
	size_t	 i;

	for (i = 0; i < NTYPES; i++)
		if (smtpf_types[i].type == type)
			return smtpf_types[i].name;
	return "?";
}

static int
parse_sid(const char *s, uint64_t *sid)
{
	size_t	 i;

	if (strlen(s) != 16)
		return -1;
	for (i = 0; i < 16; i++)
		if (!isdigit((unsigned char)s[i]) && (s[i] < 'a' || s[i] > 'f'))
			return -1;
	*sid = strtoull(s, NULL, 16);
	return 0;
}

static int
valid_number(const char *s, unsigned long max)
{
	char		*end;
	unsigned long	 v;

	if (!isdigit((unsigned char)*s) || strlen(s) > 10)
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	return *end == '\0' && errno == 0 && v <= max;
}

static int
valid_word(const char *s, size_t max)
{
	size_t	 n = 0;

	for (; *s; s++, n++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s == 127)
			return 0;
	return n > 0 && n <= max;
}

static int
valid_field(char kind, const char *s, struct smtpf_msg *msg)
{
	unsigned char	 addr[16];
	size_t		 i;

	switch (kind) {
	case 'K':
		return strcmp(s, "smtpf") == 0;
	case 'V':
		i = strspn(s, "0123456789");
		return i > 0 && i < 6 && s[i] == '.' &&
		    strspn(s + i + 1, "0123456789") == strlen(s + i + 1) &&
		    strlen(s + i + 1) > 0 && strlen(s + i + 1) < 6;
	case 'S':
		msg->has_sid = 1;
		return parse_sid(s, &msg->sid) == 0;
	case 's':
		if (strcmp(s, "-") == 0)
			return 1;
		msg->has_sid = 1;
		return parse_sid(s, &msg->sid) == 0;
	case 'A':
		return strcmp(s, "unix") == 0 ||
		    inet_pton(AF_INET, s, addr) == 1 ||
		    inet_pton(AF_INET6, s, addr) == 1;
	case 'P':
		return valid_number(s, 65535);
	case 'N':
		return valid_number(s, 1000000);
	case 'W':
		return valid_word(s, 255);
	case 'E':
		return strcmp(s, "crlf") == 0 || strcmp(s, "lf") == 0 ||
		    strcmp(s, "part") == 0 || strcmp(s, "eof") == 0;
	case 'M':
		return strcmp(s, "none") == 0 || strcmp(s, "starttls") == 0 ||
		    strcmp(s, "require") == 0 || strcmp(s, "smtps") == 0;
	case 'T':
		for (i = 0; s[i]; i++)
			if (!isalnum((unsigned char)s[i]))
				return 0;
		return i > 0 && i <= 32;
	case 'L':
		return 1;
	}
	return 0;
}

/*
 * Parse one line (without its LF; modified in place: '|' become NULs).
 * from says who sent it.  Returns 0, or -1 with the reason in err.
 */
int
smtpf_parse(char *line, size_t len, int from, struct smtpf_msg *msg,
    char *err, size_t errlen)
{
	const char	*kinds;
	char		*p, *bar;
	size_t		 i, t;

	memset(msg, 0, sizeof(*msg));
	if (len + 1 > SMTPF_LINE_MAX) {
		snprintf(err, errlen, "line of %zu bytes", len + 1);
		return -1;
	}
	if (memchr(line, '\0', len) != NULL || memchr(line, '\n', len)) {
		snprintf(err, errlen, "NUL or LF inside a line");
		return -1;
	}
	line[len] = '\0';
	if ((bar = strchr(line, '|')) != NULL)
		*bar = '\0';
	for (t = 0; t < NTYPES; t++)
		if (strcmp(line, smtpf_types[t].name) == 0)
			break;
	if (t == NTYPES) {
		snprintf(err, errlen, "unknown message \"%.32s\"", line);
		return -1;
	}
	if (!(smtpf_types[t].from & from)) {
		snprintf(err, errlen, "%s from the wrong side", line);
		return -1;
	}
	msg->type = smtpf_types[t].type;
	kinds = smtpf_types[t].fields;
	p = bar ? bar + 1 : NULL;
	for (i = 0; kinds[i]; i++) {
		if (p == NULL) {
			snprintf(err, errlen, "%s: %zu fields, expected %zu",
			    smtpf_types[t].name, i, strlen(kinds));
			return -1;
		}
		msg->field[i] = p;
		if (kinds[i] == 'L') {
			msg->lastlen = strlen(p);
			p = NULL;
		} else if ((bar = strchr(p, '|')) != NULL) {
			*bar = '\0';
			p = bar + 1;
		} else
			p = NULL;
		if (!valid_field(kinds[i], msg->field[i], msg)) {
			snprintf(err, errlen, "%s: field %zu is not valid",
			    smtpf_types[t].name, i + 1);
			return -1;
		}
	}
	if (p != NULL) {
		snprintf(err, errlen, "%s: too many fields",
		    smtpf_types[t].name);
		return -1;
	}
	msg->nfields = i;
	return 0;
}

/*
 * Format a message with its fields (the session id, if any, first) into
 * buf with the final LF.  Returns the length, or -1 when a field does not
 * fit its kind or the line would be too long.
 */
int
smtpf_format(char *buf, size_t size, enum smtpf_type type,
    const char *fields[], size_t nfields)
{
	struct smtpf_msg	 check;
	const char		*kinds = NULL, *name = NULL;
	size_t			 i, len;
	int			 n;

	for (i = 0; i < NTYPES; i++)
		if (smtpf_types[i].type == type) {
			kinds = smtpf_types[i].fields;
			name = smtpf_types[i].name;
		}
	if (kinds == NULL || strlen(kinds) != nfields)
		return -1;
	if (size > SMTPF_LINE_MAX)
		size = SMTPF_LINE_MAX;
	if ((n = snprintf(buf, size, "%s", name)) < 0 || (size_t)n >= size)
		return -1;
	len = (size_t)n;
	for (i = 0; i < nfields; i++) {
		memset(&check, 0, sizeof(check));
		if (strchr(fields[i], '\n') != NULL ||
		    (kinds[i] != 'L' && strchr(fields[i], '|') != NULL) ||
		    !valid_field(kinds[i], fields[i], &check))
			return -1;
		n = snprintf(buf + len, size - len, "|%s", fields[i]);
		if (n < 0 || (size_t)n >= size - len)
			return -1;
		len += (size_t)n;
	}
	if (len + 1 >= size)
		return -1;
	buf[len++] = '\n';
	buf[len] = '\0';
	return (int)len;
}
