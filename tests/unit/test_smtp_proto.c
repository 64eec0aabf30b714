/*
 * SMTP syntax: verbs, paths, parameters, replies, enhanced codes, xtext.
 */
#include <string.h>

#include "smtp_proto.h"
#include "tap.h"

static void
test_commands(void)
{
	struct smtp_command	 c;

	smtp_command_parse("ehlo client.example", &c);
	ok(c.verb == SMTP_EHLO && strcmp(c.args, "client.example") == 0,
	    "verb is case-insensitive, args follow one space");
	smtp_command_parse("QUIT", &c);
	ok(c.verb == SMTP_QUIT && !c.has_args, "verb without args");
	smtp_command_parse("MAILX FROM:<>", &c);
	ok(c.verb == SMTP_UNKNOWN, "prefix of a verb is not the verb");
	smtp_command_parse("", &c);
	ok(c.verb == SMTP_UNKNOWN && c.args[0] == '\0', "empty line");
	smtp_command_parse("StartTLS", &c);
	is_str(c.name, "STARTTLS", "canonical name");
}

static enum smtp_path_error
path(const char *args, enum smtp_path_kind kind, int utf8,
    struct mailaddr *a, const char **params)
{
	return smtp_path_parse(args, kind, utf8, a, params);
}

static void
test_paths(void)
{
	struct mailaddr	 a;
	const char	*params;

	ok(path("FROM:<user@example.org>", SMTP_PATH_MAIL, 0, &a, &params) ==
	    SMTP_PATH_OK && strcmp(a.local, "user") == 0 &&
	    strcmp(a.domain, "example.org") == 0 && *params == '\0',
	    "plain sender");
	ok(path("from: <a.b+c@mx.example.org> SIZE=100 BODY=8BITMIME",
	    SMTP_PATH_MAIL, 0, &a, &params) == SMTP_PATH_OK &&
	    strcmp(params, "SIZE=100 BODY=8BITMIME") == 0,
	    "blank after colon tolerated, parameters found");
	ok(path("FROM:<>", SMTP_PATH_MAIL, 0, &a, &params) == SMTP_PATH_OK &&
	    a.local[0] == '\0' && a.domain[0] == '\0', "null sender");
	ok(path("TO:<>", SMTP_PATH_RCPT, 0, &a, &params) ==
	    SMTP_PATH_BAD_ADDRESS, "null recipient refused");
	ok(path("TO:<Postmaster>", SMTP_PATH_RCPT, 0, &a, &params) ==
	    SMTP_PATH_OK && strcmp(a.local, "postmaster") == 0,
	    "bare postmaster recipient");
	ok(path("FROM:user@example.org", SMTP_PATH_MAIL, 0, &a, &params) ==
	    SMTP_PATH_SYNTAX, "missing brackets refused");
	ok(path("FROM <u@example.org>", SMTP_PATH_MAIL, 0, &a, &params) ==
	    SMTP_PATH_SYNTAX, "missing colon refused");
	ok(path("TO:<u@example.org>x", SMTP_PATH_RCPT, 0, &a, &params) ==
	    SMTP_PATH_SYNTAX, "junk after the path refused");
	ok(path("TO:<\"odd > local\"@example.org>", SMTP_PATH_RCPT, 0, &a,
	    &params) == SMTP_PATH_OK &&
	    strcmp(a.local, "\"odd > local\"") == 0,
	    "quoted local part may hold '>'");
	ok(path("TO:<@relay.example,@b.example:u@example.org>", SMTP_PATH_RCPT,
	    0, &a, &params) == SMTP_PATH_OK && strcmp(a.local, "u") == 0,
	    "source route is ignored");
	ok(path("TO:<a..b@example.org>", SMTP_PATH_RCPT, 0, &a, &params) ==
	    SMTP_PATH_BAD_ADDRESS, "double dot refused");
	ok(path("TO:<u@-bad.example>", SMTP_PATH_RCPT, 0, &a, &params) ==
	    SMTP_PATH_BAD_ADDRESS, "label starting with '-' refused");
	ok(path("TO:<u@[127.0.0.1]>", SMTP_PATH_RCPT, 0, &a, &params) ==
	    SMTP_PATH_OK, "IPv4 address literal");
	ok(path("TO:<u@[IPv6:::1]>", SMTP_PATH_RCPT, 0, &a, &params) ==
	    SMTP_PATH_OK, "IPv6 address literal");
	ok(path("TO:<u@[300.0.0.1]>", SMTP_PATH_RCPT, 0, &a, &params) ==
	    SMTP_PATH_BAD_ADDRESS, "bad address literal refused");
	ok(path("TO:<\xc3\xa9t\xc3\xa9@example.org>", SMTP_PATH_RCPT, 0, &a,
	    &params) == SMTP_PATH_NEEDS_UTF8, "UTF-8 needs SMTPUTF8");
	ok(path("TO:<\xc3\xa9t\xc3\xa9@\xc3\xa9xample.org>", SMTP_PATH_RCPT,
	    1, &a, &params) == SMTP_PATH_OK, "UTF-8 with SMTPUTF8");
	ok(path("TO:<\xc0\xafx@example.org>", SMTP_PATH_RCPT, 1, &a,
	    &params) == SMTP_PATH_BAD_ADDRESS, "overlong UTF-8 refused");
	{
		char	 buf[400];

		memset(buf, 'a', sizeof(buf));
		memcpy(buf, "TO:<", 4);
		strcpy(buf + 4 + 65, "@example.org>");
		ok(path(buf, SMTP_PATH_RCPT, 0, &a, &params) ==
		    SMTP_PATH_TOO_LONG, "65-byte local part refused");
	}
}

static void
test_params(void)
{
	const char	*p = "SIZE=1000 body=8BITMIME SMTPUTF8";
	char		 k[32], v[64];

	ok(smtp_param_next(&p, k, sizeof(k), v, sizeof(v)) == 1 &&
	    strcmp(k, "SIZE") == 0 && strcmp(v, "1000") == 0, "SIZE=1000");
	ok(smtp_param_next(&p, k, sizeof(k), v, sizeof(v)) == 1 &&
	    strcmp(k, "BODY") == 0 && strcmp(v, "8BITMIME") == 0,
	    "keyword upper-cased");
	ok(smtp_param_next(&p, k, sizeof(k), v, sizeof(v)) == 1 &&
	    strcmp(k, "SMTPUTF8") == 0 && v[0] == '\0', "keyword alone");
	ok(smtp_param_next(&p, k, sizeof(k), v, sizeof(v)) == 0, "end");
	p = "SIZE=";
	ok(smtp_param_next(&p, k, sizeof(k), v, sizeof(v)) == -1,
	    "empty value refused");
	p = "-X=1";
	ok(smtp_param_next(&p, k, sizeof(k), v, sizeof(v)) == -1,
	    "keyword must start with a letter or digit");
	p = "A=b=c";
	ok(smtp_param_next(&p, k, sizeof(k), v, sizeof(v)) == -1,
	    "'=' in a value refused");
}

static void
test_replies(void)
{
	const char	*text;
	char		 esc[16];
	int		 code, more;

	ok(smtp_reply_parse("250-PIPELINING", &code, &more, &text) == 0 &&
	    code == 250 && more && strcmp(text, "PIPELINING") == 0,
	    "continuation line");
	ok(smtp_reply_parse("354 go ahead", &code, &more, &text) == 0 &&
	    code == 354 && !more, "last line");
	ok(smtp_reply_parse("220", &code, &more, &text) == 0 && code == 220 &&
	    !more && *text == '\0', "code alone");
	ok(smtp_reply_parse("2500 x", &code, &more, &text) == -1,
	    "four digits refused");
	ok(smtp_reply_parse("650 x", &code, &more, &text) == -1,
	    "class 6 refused");
	ok(smtp_reply_esc("5.7.1 denied", esc, sizeof(esc)) == 5 &&
	    strcmp(esc, "5.7.1") == 0, "enhanced code found");
	ok(smtp_reply_esc("2.0.0", esc, sizeof(esc)) == 5, "code alone");
	ok(smtp_reply_esc("3.0.0 x", esc, sizeof(esc)) == -1, "class 3 refused");
	ok(smtp_reply_esc("5.1234.1 x", esc, sizeof(esc)) == -1,
	    "four-digit subject refused");
}

static void
test_xtext(void)
{
	char	 buf[64];

	ok(xtext_decode("a+2Bb+3Dc", buf, sizeof(buf)) == 0 &&
	    strcmp(buf, "a+b=c") == 0, "xtext decodes");
	ok(xtext_decode("a+2b", buf, sizeof(buf)) == -1,
	    "lower-case hex refused");
	ok(xtext_decode("a=b", buf, sizeof(buf)) == -1, "bare '=' refused");
	ok(xtext_encode("IPV6:::1 x+y", buf, sizeof(buf)) == 0 &&
	    strcmp(buf, "IPV6:::1+20x+2By") == 0, "xtext encodes");
	ok(xtext_encode("abcdef", buf, 4) == -1, "encode respects the size");
}

int
main(void)
{
	test_commands();
	test_paths();
	test_params();
	test_replies();
	test_xtext();
	return tap_done();
}
