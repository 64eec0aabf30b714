/*
 * The shared configuration lexer: statements, strings, macros, includes,
 * continuations, and errors that name file and line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "tap.h"

static char	 dir[] = "/tmp/test_conf.XXXXXX";
static char	 errors[4096];
static char	 seen[4096];

static void
write_file(const char *name, const char *text)
{
	char	 path[256];
	FILE	*fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "w")) == NULL || fputs(text, fp) == EOF) {
		perror(path);
		exit(2);
	}
	fclose(fp);
}

/*
 * Parse a file and describe every statement as "line:tok|tok|...;";
 * what went to stderr lands in errors[].  Returns the error count.
 */
static int
parse(const char *name, const char *define)
{
	struct conf	 cf;
	char		 path[256], tmp[256];
	FILE		*err;
	size_t		 i, n;
	int		 saved, nerrors;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	seen[0] = '\0';
	fflush(stderr);
	saved = dup(2);
	if ((err = tmpfile()) == NULL)
		exit(2);
	dup2(fileno(err), 2);

	conf_init(&cf);
	if (define)
		conf_define(&cf, define);
	if (conf_open(&cf, path) == 0)
		while (conf_next_statement(&cf)) {
			snprintf(tmp, sizeof(tmp), "%d:", cf.line);
			strcat(seen, tmp);
			for (i = 0; i < cf.ntok; i++) {
				snprintf(tmp, sizeof(tmp), "%s%s%s",
				    i ? "|" : "",
				    cf.tok[i].type == CONF_STRING ? "\"" : "",
				    cf.tok[i].text);
				strcat(seen, tmp);
			}
			strcat(seen, ";");
		}
	nerrors = cf.errors;
	conf_free(&cf);

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(err);
	n = fread(errors, 1, sizeof(errors) - 1, err);
	errors[n] = '\0';
	fclose(err);
	return nerrors;
}

static void
test_statements(void)
{
	write_file("a.conf",
	    "# comment\n"
	    "\n"
	    "user \"_mtad\"   # trailing comment\n"
	    "listen on 127.0.0.1 \\\n"
	    "    port 25\n"
	    "table t { a, b,\n"
	    "   c }\n"
	    "match !from src <t> action \"x y\"\n"
	    "s \"q\\\"uote\\\\\"\n");
	is_int(parse("a.conf", NULL), 0, "valid file has no errors");
	is_str(seen,
	    "3:user|\"_mtad;"
	    "4:listen|on|127.0.0.1|port|25;"
	    "6:table|t|{|a|,|b|,|c|};"
	    "8:match|!|from|src|<|t|>|action|\"x y;"
	    "9:s|\"q\"uote\\;",
	    "statements, continuations, braces, punctuation and strings");
}

static void
test_macros(void)
{
	write_file("m.conf",
	    "addr = \"127.0.0.1 port 2525\"\n"
	    "name = mx\n"
	    "listen on $addr hostname $name\n"
	    "quoted \"$name\"\n"
	    "path /var/$name/x$name\n"
	    "maildir /home/%{rcpt.user}/$name\n");
	is_int(parse("m.conf", NULL), 0, "macros parse");
	is_str(seen, "3:listen|on|127.0.0.1|port|2525|hostname|mx;"
	    "4:quoted|\"$name;"
	    "5:path|/var/mx/xmx;"
	    "6:maildir|/home/%{rcpt.user}/mx;",
	    "macros expand outside quotes only, whole words and inside words; "
	    "%{...} stays in a word");

	is_int(parse("m.conf", "name=override"), 0, "-D macro parses");
	is_str(seen, "3:listen|on|127.0.0.1|port|2525|hostname|override;"
	    "4:quoted|\"$name;"
	    "5:path|/var/override/xoverride;"
	    "6:maildir|/home/%{rcpt.user}/override;",
	    "-D wins over the file's definition");

	write_file("u.conf", "path /a/$nope/b\n");
	ok(parse("u.conf", NULL) == 1 &&
	    strstr(errors, "u.conf:1: undefined macro $nope") != NULL,
	    "undefined macro inside a word is an error");

	write_file("loop.conf", "a = \"$a\"\nx $a\n");
	ok(parse("loop.conf", NULL) == 1 && strstr(errors, "loop.conf:2:"),
	    "self-referencing macro is an error, not a hang");
}

static void
test_include(void)
{
	write_file("inc.conf", "second 2\n");
	write_file("main.conf", "first 1\ninclude \"inc.conf\"\nthird 3\n");
	is_int(parse("main.conf", NULL), 0, "include parses");
	is_str(seen, "1:first|1;1:second|2;3:third|3;",
	    "included file is read in place, relative to the includer");

	write_file("self.conf", "include \"self.conf\"\n");
	ok(parse("self.conf", NULL) > 0 && strstr(errors, "too deeply"),
	    "include loop is an error");
}

static void
test_errors(void)
{
	write_file("bad.conf",
	    "ok 1\n"
	    "s \"unterminated\n"
	    "x $undefined\n"
	    "t { a, b\n");
	is_int(parse("bad.conf", NULL), 3, "three bad statements");
	ok(strstr(errors, "/bad.conf:2: unterminated string") != NULL,
	    "unterminated string names file and line");
	ok(strstr(errors, "/bad.conf:3: undefined macro $undefined") != NULL,
	    "undefined macro names file and line");
	ok(strstr(errors, "/bad.conf:4: missing '}'") != NULL,
	    "unbalanced brace names file and line");

	ok(parse("does-not-exist.conf", NULL) == 1 &&
	    strstr(errors, "does-not-exist.conf: No such file") != NULL,
	    "missing file is reported");
}

static void
test_helpers(void)
{
	struct conf	 cf;
	long long	 v;
	FILE		*err;
	int		 saved;

	write_file("h.conf", "port 99999 x\n");
	saved = dup(2);
	err = tmpfile();
	dup2(fileno(err), 2);
	conf_init(&cf);
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/h.conf", dir);
		conf_open(&cf, path);
	}
	ok(conf_next_statement(&cf) == 1, "statement read");
	ok(conf_expect(&cf, "port"), "keyword accepted");
	ok(!conf_number(&cf, "a port", 1, 65535, &v) && cf.errors == 1,
	    "out-of-range number is an error");
	ok(!conf_end(&cf) && cf.errors == 1,
	    "only the first error of a statement is counted");
	conf_free(&cf);
	dup2(saved, 2);
	close(saved);
	fclose(err);
}

int
main(void)
{
	log_init("test", "conf", 1, 0);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_statements();
	test_macros();
	test_include();
	test_errors();
	test_helpers();
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			return 2;
	}
	return tap_done();
}
