/*
 * SMTP syntax shared by every part that speaks SMTP: the server in mtad,
 * smtpfd's two legs, and the test tools.  Pure functions on strings: no
 * I/O, no allocation, so they are easy to test and to fuzz.
 *
 * Grammar references are RFC 5321 section 4.1 (commands, paths), RFC 6531
 * (UTF-8 addresses), RFC 3461 (xtext), RFC 3463 (enhanced status codes).
 */
#ifndef SMTP_PROTO_H
#define SMTP_PROTO_H

#include <stddef.h>

#define SMTP_LINE_MAX		1000	/* RFC 5321 4.5.3.1.6, with CRLF */
#define SMTP_LOCALPART_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX		255	/* RFC 5321 4.5.3.1.2 */
#define SMTP_PATH_MAX		256	/* RFC 5321 4.5.3.1.3, with <> */
/* local@domain, as large as the parts allow (the path limit is smaller) */
#define SMTP_ADDRESS_MAX	(SMTP_LOCALPART_MAX + 1 + SMTP_DOMAIN_MAX)

enum smtp_verb {
	SMTP_UNKNOWN,
	SMTP_HELO,
	SMTP_EHLO,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_BDAT,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
	SMTP_HELP,
	SMTP_VRFY,
	SMTP_EXPN,
	SMTP_STARTTLS,
	SMTP_AUTH,
	SMTP_XCLIENT,
};

struct smtp_command {
	enum smtp_verb	 verb;
	const char	*name;		/* canonical upper-case verb */
	const char	*args;		/* after the verb and one space, or "" */
	int		 has_args;
};

struct mailaddr {
	char	 local[SMTP_LOCALPART_MAX + 1];	/* as sent, quotes included */
	char	 domain[SMTP_DOMAIN_MAX + 1];	/* "" for <> and <postmaster> */
};

enum smtp_path_kind {
	SMTP_PATH_MAIL,		/* MAIL FROM:<reverse-path>; <> allowed */
	SMTP_PATH_RCPT,		/* RCPT TO:<forward-path>; <postmaster> allowed */
};

/* Why a path did not parse; each maps to one reply. */
enum smtp_path_error {
	SMTP_PATH_OK,
	SMTP_PATH_SYNTAX,	/* 501 5.5.4: not FROM:<...> / TO:<...> */
	SMTP_PATH_BAD_ADDRESS,	/* 501 5.1.7 / 5.1.3: bad address syntax */
	SMTP_PATH_TOO_LONG,	/* 501 5.5.4 / 5.1.3 per RFC 5321 limits */
	SMTP_PATH_NEEDS_UTF8,	/* 553 5.6.7: 8-bit address without SMTPUTF8 */
};

void	 smtp_command_parse(const char *, struct smtp_command *);
enum smtp_path_error smtp_path_parse(const char *, enum smtp_path_kind, int,
	    struct mailaddr *, const char **);
int	 smtp_param_next(const char **, char *, size_t, char *, size_t);
int	 smtp_valid_domain(const char *, int);
int	 smtp_valid_localpart(const char *, int);
int	 smtp_valid_utf8(const char *, size_t);

/* Replies. */
int	 smtp_reply_parse(const char *, int *, int *, const char **);
int	 smtp_reply_esc(const char *, char *, size_t);

/* xtext (RFC 3461 4): 0 on success, -1 when malformed or too long. */
int	 xtext_decode(const char *, char *, size_t);
int	 xtext_encode(const char *, char *, size_t);

#endif
