/*
 * The smtpf protocol between an MTA and smtpfd (protocol/smtpf.md):
 * parsing and formatting of its lines.  No I/O.
 */
#ifndef SMTPF_H
#define SMTPF_H

#include <stddef.h>
#include <stdint.h>

#define SMTPF_VERSION_MAJOR	1
#define SMTPF_VERSION_MINOR	0
#define SMTPF_LINE_MAX		4096	/* with the LF */
#define SMTPF_FIELDS_MAX	8

enum smtpf_type {
	SMTPF_HELLO,
	SMTPF_OPEN,
	SMTPF_TLS,
	SMTPF_LINE,
	SMTPF_GONE,
	SMTPF_REPLY,
	SMTPF_STARTTLS,
	SMTPF_CLOSE,
	SMTPF_PAUSE,
	SMTPF_RESUME,
	SMTPF_PING,
	SMTPF_PONG,
	SMTPF_ERROR,
};

/* Who may send a message: the receiver checks it. */
#define SMTPF_FROM_MTA		0x1
#define SMTPF_FROM_SMTPFD	0x2

struct smtpf_msg {
	enum smtpf_type	 type;
	int		 has_sid;	/* 0 for "-" or a message without */
	uint64_t	 sid;
	size_t		 nfields;	/* after the type, the session id too */
	const char	*field[SMTPF_FIELDS_MAX];
	size_t		 lastlen;	/* length of the last field */
};

int		 smtpf_parse(char *, size_t, int, struct smtpf_msg *, char *,
		    size_t);
int		 smtpf_format(char *, size_t, enum smtpf_type, const char *[],
		    size_t);
const char	*smtpf_type_name(enum smtpf_type);

#endif
