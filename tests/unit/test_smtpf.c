/*
 * smtpf lines: every message kind parses, malformed ones are refused with
 * a reason, and formatting round-trips.
 */
#include <stdio.h>
#include <string.h>

#include "smtpf.h"
#include "tap.h"

static int
parse(const char *text, int from, struct smtpf_msg *m)
{
	static char	 buf[SMTPF_LINE_MAX * 2];
	char		 err[128];

	snprintf(buf, sizeof(buf), "%s", text);
	return smtpf_parse(buf, strlen(buf), from, m, err, sizeof(err));
}

#define MTA	SMTPF_FROM_MTA
#define FD	SMTPF_FROM_SMTPFD
#define SID	"0123456789abcdef"

static void
test_valid(void)
{
	struct smtpf_msg	 m;

	ok(parse("hello|smtpf|1.0|mx.example.org|", MTA, &m) == 0 &&
	    m.type == SMTPF_HELLO && strcmp(m.field[1], "1.0") == 0,
	    "hello with no capabilities");
	ok(parse("open|" SID "|192.0.2.1|25|2001:db8::1|4242|-|starttls|client.example",
	    MTA, &m) == 0 && m.type == SMTPF_OPEN && m.has_sid &&
	    m.sid == 0x0123456789abcdefULL &&
	    strcmp(m.field[6], "starttls") == 0 &&
	    strcmp(m.field[7], "client.example") == 0, "open");
	ok(parse("open|" SID "|unix|0|unix|0|local|none|-", MTA, &m) == 0,
	    "open from a local socket");
	ok(parse("tls|" SID "|TLSv1.3|TLS_AES_256_GCM_SHA384|256|-", MTA, &m) ==
	    0, "tls");
	ok(parse("line|" SID "|crlf|MAIL FROM:<a|b@example.org> SIZE=1", MTA,
	    &m) == 0 && strcmp(m.field[2], "MAIL FROM:<a|b@example.org> SIZE=1")
	    == 0, "line: the last field keeps its '|'");
	ok(parse("line|" SID "|lf|", MTA, &m) == 0 && m.lastlen == 0,
	    "line: empty, ended by a bare LF");
	ok(parse("line|" SID "|crlf|caf\xc3\xa9\rx", MTA, &m) == 0 &&
	    m.lastlen == 7, "line: 8-bit bytes and a bare CR are carried");
	ok(parse("reply|" SID "|250-PIPELINING", FD, &m) == 0, "reply");
	ok(parse("starttls|" SID "|220 2.0.0 Ready to start TLS", FD, &m) == 0 &&
	    strcmp(m.field[1], "220 2.0.0 Ready to start TLS") == 0,
	    "starttls, with the reply the MTA writes");
	ok(parse("pause|" SID, MTA, &m) == 0 && parse("resume|" SID, FD, &m) ==
	    0, "pause and resume, both ways");
	ok(parse("ping|abc123", FD, &m) == 0 && parse("pong|abc123", MTA, &m) ==
	    0, "ping and pong");
	ok(parse("error|-|going away", MTA, &m) == 0 && !m.has_sid,
	    "error for the stream");
}

static void
test_invalid(void)
{
	struct smtpf_msg	 m;
	char			 big[SMTPF_LINE_MAX + 10];

	ok(parse("frobnicate|" SID, MTA, &m) == -1, "unknown message");
	ok(parse("reply|" SID "|250 ok", MTA, &m) == -1,
	    "reply from the MTA: wrong side");
	ok(parse("line|" SID "|crlf|x", FD, &m) == -1,
	    "line from smtpfd: wrong side");
	ok(parse("open|" SID "|192.0.2.1|25|2001:db8::1|4242", MTA, &m) == -1,
	    "missing field");
	ok(parse("starttls|" SID, FD, &m) == -1, "starttls without its reply");
	ok(parse("close|" SID "|extra", FD, &m) == -1, "extra field");
	ok(parse("close|0123456789ABCDEF", FD, &m) == -1,
	    "upper-case session id");
	ok(parse("close|123", FD, &m) == -1, "short session id");
	ok(parse("open|" SID "|999.0.0.1|25|::1|1|-|none|-", MTA, &m) == -1,
	    "bad address");
	ok(parse("open|" SID "|::1|65536|::1|1|-|none|-", MTA, &m) == -1,
	    "port out of range");
	ok(parse("line|" SID "|cr|x", MTA, &m) == -1, "bad line end");
	ok(parse("line|" SID "|part|xxxx", MTA, &m) == 0,
	    "part of a longer line");
	ok(parse("open|" SID "|::1|25|::1|1|-|tls|-", MTA, &m) == -1,
	    "bad TLS mode");
	ok(parse("ping|" "0123456789012345678901234567890123", MTA, &m) == -1,
	    "token too long");
	ok(parse("hello|smtp|1.0|x|", MTA, &m) == -1, "not smtpf");
	ok(parse("hello|smtpf|1|x|", MTA, &m) == -1, "version without minor");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "reply|" SID "|", 23);
	ok(parse(big, FD, &m) == -1, "line too long");
	{
		char	 nul[] = "reply|" SID "|a\0b";
		char	 err[128];

		ok(smtpf_parse(nul, sizeof(nul) - 1, FD, &m, err,
		    sizeof(err)) == -1 && strstr(err, "NUL") != NULL,
		    "NUL byte refused");
	}
}

static void
test_format(void)
{
	struct smtpf_msg	 m;
	char			 buf[SMTPF_LINE_MAX], err[128];
	const char		*f1[] = { SID, "crlf", "RCPT TO:<a|b@c>" };
	const char		*f2[] = { SID, "bad\nline" };
	const char		*f3[] = { "not-a-sid" };
	int			 n;

	n = smtpf_format(buf, sizeof(buf), SMTPF_LINE, f1, 3);
	ok(n > 0 && buf[n - 1] == '\n', "format a line message");
	buf[n - 1] = '\0';
	ok(smtpf_parse(buf, (size_t)n - 1, MTA, &m, err, sizeof(err)) == 0 &&
	    strcmp(m.field[2], "RCPT TO:<a|b@c>") == 0,
	    "what is formatted parses back the same");
	ok(smtpf_format(buf, sizeof(buf), SMTPF_REPLY, f2, 2) == -1,
	    "a field with a LF cannot be formatted");
	ok(smtpf_format(buf, sizeof(buf), SMTPF_CLOSE, f3, 1) == -1,
	    "a bad session id cannot be formatted");
	ok(smtpf_format(buf, sizeof(buf), SMTPF_CLOSE, f1, 2) == -1,
	    "the wrong number of fields cannot be formatted");
}

int
main(void)
{
	test_valid();
	test_invalid();
	test_format();
	return tap_done();
}
