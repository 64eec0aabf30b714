/*
 * SMTP syntax: commands, paths, parameters, replies, xtext.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_proto.h"

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
} smtp_verbs[] = {
	{ "HELO",	SMTP_HELO },
	{ "EHLO",	SMTP_EHLO },
	{ "MAIL",	SMTP_MAIL },
	{ "RCPT",	SMTP_RCPT },
	{ "DATA",	SMTP_DATA },
	{ "BDAT",	SMTP_BDAT },
	{ "RSET",	SMTP_RSET },
	{ "NOOP",	SMTP_NOOP },
	{ "QUIT",	SMTP_QUIT },
	{ "HELP",	SMTP_HELP },
	{ "VRFY",	SMTP_VRFY },
	{ "EXPN",	SMTP_EXPN },
	{ "STARTTLS",	SMTP_STARTTLS },
	{ "AUTH",	SMTP_AUTH },
	{ "XCLIENT",	SMTP_XCLIENT },
};

static int	is_atext(unsigned char, int);
static int	valid_address_literal(const char *);

void
smtp_command_parse(const char *line, struct smtp_command *cmd)
{
	size_t	 i, n;

	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = SMTP_UNKNOWN;
	cmd->args = "";
	n = strcspn(line, " ");
	for (i = 0; i < sizeof(smtp_verbs) / sizeof(smtp_verbs[0]); i++) {
		if (strlen(smtp_verbs[i].name) == n &&
		    strncasecmp(line, smtp_verbs[i].name, n) == 0) {
			cmd->verb = smtp_verbs[i].verb;
			cmd->name = smtp_verbs[i].name;
			break;
		}
	}
	if (line[n] == ' ') {
		cmd->args = line + n + 1;
		cmd->has_args = 1;
	}
}

/*
 * Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates,
 * nothing above U+10FFFF.
 */
int
smtp_valid_utf8(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s, *end = p + len;
	uint32_t		 cp;
	int			 n, i;

	while (p < end) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			n = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			n = 3;
			cp = *p & 0x07;
		} else
			return 0;
		if (end - p <= n)
			return 0;
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += n + 1;
	}
	return 1;
}

static int
is_atext(unsigned char c, int utf8)
{
	if (c >= 0x80)
		return utf8;
	return isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

int
smtp_valid_localpart(const char *s, int utf8)
{
	size_t		 len = strlen(s), i;
	unsigned char	 c;

	if (len == 0 || len > SMTP_LOCALPART_MAX)
		return 0;
	if (!smtp_valid_utf8(s, len))
		return 0;
	if (s[0] == '"') {
		/* Quoted-string: qtextSMTP and quoted-pairSMTP. */
		if (len < 2 || s[len - 1] != '"')
			return 0;
		for (i = 1; i < len - 1; i++) {
			c = (unsigned char)s[i];
			if (c == '\\') {
				if (++i == len - 1)
					return 0;
				c = (unsigned char)s[i];
				if (c < 32 || c > 126)
					return 0;
				continue;
			}
			if (c >= 0x80 ? !utf8 : (c < 32 || c == '"' || c > 126))
				return 0;
		}
		return 1;
	}
	/* Dot-string: atoms separated by single dots. */
	if (s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '.') {
			if (s[i + 1] == '.')
				return 0;
			continue;
		}
		if (!is_atext(c, utf8))
			return 0;
	}
	return 1;
}

static int
valid_address_literal(const char *s)
{
	char		 buf[SMTP_DOMAIN_MAX + 1];
	unsigned char	 addr[16];
	size_t		 len = strlen(s), i;
	const char	*colon;

	if (len < 3 || len > SMTP_DOMAIN_MAX || s[len - 1] != ']')
		return 0;
	memcpy(buf, s + 1, len - 2);
	buf[len - 2] = '\0';
	if (strncasecmp(buf, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5, addr) == 1;
	if (inet_pton(AF_INET, buf, addr) == 1)
		return 1;
	/* General-address-literal: Ldh-str ":" 1*dcontent */
	if ((colon = strchr(buf, ':')) == NULL || colon == buf ||
	    colon[1] == '\0')
		return 0;
	for (i = 0; buf + i < colon; i++)
		if (!isalnum((unsigned char)buf[i]) && buf[i] != '-')
			return 0;
	for (i = (size_t)(colon - buf) + 1; buf[i]; i++)
		if (buf[i] < 33 || buf[i] > 126 || buf[i] == '[' ||
		    buf[i] == '\\' || buf[i] == ']')
			return 0;
	return 1;
}

/* A host name (LDH labels, UTF-8 allowed with utf8) or address literal. */
int
smtp_valid_domain(const char *s, int utf8)
{
	size_t		 len = strlen(s), label = 0, i;
	unsigned char	 c, prev = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return 0;
	if (s[0] == '[')
		return valid_address_literal(s);
	if (!smtp_valid_utf8(s, len))
		return 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || prev == '-')
				return 0;
			label = 0;
		} else if (isalnum(c) || (c >= 0x80 && utf8)) {
			label++;
		} else if (c == '-') {
			if (label == 0)
				return 0;
			label++;
		} else
			return 0;
		if (label > 63)
			return 0;
		prev = c;
	}
	return label > 0 && prev != '-';
}

/*
 * "FROM:<path> params" or "TO:<path> params".  On success addr is filled
 * and *params points at the parameters (or at "").  Blanks after the colon
 * are tolerated, as most servers do; angle brackets are required.
 */
enum smtp_path_error
smtp_path_parse(const char *args, enum smtp_path_kind kind, int utf8,
    struct mailaddr *addr, const char **params)
{
	const char	*prefix = kind == SMTP_PATH_MAIL ? "FROM:" : "TO:";
	const char	*p, *start, *end, *at = NULL;
	char		 path[SMTP_PATH_MAX + 1];
	size_t		 len;
	int		 quoted = 0, eightbit = 0;

	memset(addr, 0, sizeof(*addr));
	*params = "";
	if (strncasecmp(args, prefix, strlen(prefix)) != 0)
		return SMTP_PATH_SYNTAX;
	p = args + strlen(prefix);
	while (*p == ' ')
		p++;
	if (*p != '<')
		return SMTP_PATH_SYNTAX;
	start = ++p;
	/* Find the closing bracket; a quoted local part may hold one. */
	for (end = NULL; *p; p++) {
		if (quoted && *p == '\\' && p[1] != '\0') {
			p++;
			continue;
		}
		if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>') {
			end = p;
			break;
		}
		if ((unsigned char)*p >= 0x80)
			eightbit = 1;
	}
	if (end == NULL)
		return SMTP_PATH_SYNTAX;
	if (end[1] != '\0' && end[1] != ' ')
		return SMTP_PATH_SYNTAX;
	for (p = end + 1; *p == ' '; p++)
		;
	*params = p;

	len = (size_t)(end - start);
	if (len + 2 > SMTP_PATH_MAX)
		return SMTP_PATH_TOO_LONG;
	memcpy(path, start, len);
	path[len] = '\0';
	if (eightbit && !utf8)
		return SMTP_PATH_NEEDS_UTF8;

	/* A source route (RFC 5321 4.1.2, "@a,@b:") is accepted, ignored. */
	start = path;
	if (path[0] == '@') {
		if ((p = strchr(path, ':')) == NULL)
			return SMTP_PATH_BAD_ADDRESS;
		start = p + 1;
	}
	if (*start == '\0') {
		if (kind == SMTP_PATH_MAIL && start == path)
			return SMTP_PATH_OK;		/* the null path <> */
		return SMTP_PATH_BAD_ADDRESS;
	}
	if (kind == SMTP_PATH_RCPT && strcasecmp(start, "postmaster") == 0) {
		strcpy(addr->local, "postmaster");
		return SMTP_PATH_OK;
	}
	/* The domain never holds an '@': split at the last one. */
	for (p = start; *p; p++)
		if (*p == '@')
			at = p;
	if (at == NULL || at == start)
		return SMTP_PATH_BAD_ADDRESS;
	len = (size_t)(at - start);
	if (len > SMTP_LOCALPART_MAX || strlen(at + 1) > SMTP_DOMAIN_MAX)
		return SMTP_PATH_TOO_LONG;
	memcpy(addr->local, start, len);
	addr->local[len] = '\0';
	strcpy(addr->domain, at + 1);
	if (!smtp_valid_localpart(addr->local, utf8) ||
	    !smtp_valid_domain(addr->domain, utf8)) {
		memset(addr, 0, sizeof(*addr));
		return SMTP_PATH_BAD_ADDRESS;
	}
	return SMTP_PATH_OK;
}

/*
 * Next "KEYWORD[=value]" of a MAIL or RCPT parameter list (RFC 5321
 * 4.1.2 esmtp-param).  Returns 1 with key and value (upper-cased key,
 * value "" when absent), 0 at the end, -1 on a syntax error.
 */
int
smtp_param_next(const char **pp, char *key, size_t keysize, char *value,
    size_t valuesize)
{
	const char	*p = *pp;
	size_t		 n = 0;

	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*pp = p;
		return 0;
	}
	if (!isalnum((unsigned char)*p))
		return -1;
	while (isalnum((unsigned char)*p) || *p == '-') {
		if (n + 1 >= keysize)
			return -1;
		key[n++] = (char)toupper((unsigned char)*p++);
	}
	key[n] = '\0';
	n = 0;
	value[0] = '\0';
	if (*p == '=') {
		p++;
		while (*p != '\0' && *p != ' ') {
			/* esmtp-value: %d33-60 / %d62-126, UTF-8 (RFC 6531) */
			if (*p == '=' || ((unsigned char)*p < 33) ||
			    (unsigned char)*p == 127 || n + 1 >= valuesize)
				return -1;
			value[n++] = *p++;
		}
		if (n == 0)
			return -1;
		value[n] = '\0';
		if (!smtp_valid_utf8(value, n))
			return -1;
	}
	if (*p != '\0' && *p != ' ')
		return -1;
	*pp = p;
	return 1;
}

/*
 * One reply line: "DDD", "DDD text" (last line) or "DDD-text" (more
 * follow).  Returns 0 with the code, whether more lines follow and the
 * text, or -1 when the line is not a reply line.
 */
int
smtp_reply_parse(const char *line, int *code, int *more, const char **text)
{
	if (line[0] < '2' || line[0] > '5' || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	switch (line[3]) {
	case '\0':
		*more = 0;
		*text = line + 3;
		return 0;
	case ' ':
		*more = 0;
		*text = line + 4;
		return 0;
	case '-':
		*more = 1;
		*text = line + 4;
		return 0;
	default:
		return -1;
	}
}

/*
 * An enhanced status code "c.s.d" at the start of a reply text (RFC 3463:
 * class 2, 4 or 5, subject and detail of 1 to 3 digits).  Copies it to buf
 * and returns its length, or returns -1.
 */
int
smtp_reply_esc(const char *text, char *buf, size_t size)
{
	const char	*p = text;
	int		 part, digits;

	if (*p != '2' && *p != '4' && *p != '5')
		return -1;
	p++;
	for (part = 0; part < 2; part++) {
		if (*p++ != '.')
			return -1;
		for (digits = 0; isdigit((unsigned char)*p); digits++)
			p++;
		if (digits < 1 || digits > 3)
			return -1;
	}
	if (*p != '\0' && *p != ' ')
		return -1;
	if ((size_t)(p - text) >= size)
		return -1;
	memcpy(buf, text, (size_t)(p - text));
	buf[p - text] = '\0';
	return (int)(p - text);
}

int
xtext_decode(const char *in, char *out, size_t size)
{
	size_t		 n = 0;
	unsigned int	 c;

	for (; *in; in++) {
		if (n + 1 >= size)
			return -1;
		if (*in == '+') {
			if (!isxdigit((unsigned char)in[1]) ||
			    !isxdigit((unsigned char)in[2]) ||
			    islower((unsigned char)in[1]) ||
			    islower((unsigned char)in[2]) ||
			    sscanf(in + 1, "%2X", &c) != 1)
				return -1;
			out[n++] = (char)c;
			in += 2;
		} else if (*in < 33 || *in > 126 || *in == '=')
			return -1;
		else
			out[n++] = *in;
	}
	out[n] = '\0';
	return 0;
}

int
xtext_encode(const char *in, char *out, size_t size)
{
	size_t		 n = 0;
	unsigned char	 c;

	for (; *in; in++) {
		c = (unsigned char)*in;
		if (c < 33 || c > 126 || c == '+' || c == '=') {
			if (n + 4 > size)
				return -1;
			snprintf(out + n, 4, "+%02X", c);
			n += 3;
		} else {
			if (n + 2 > size)
				return -1;
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return 0;
}
