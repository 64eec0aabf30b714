/*
 * smtpscript: run SMTP dialogue scripts against a server and report each
 * test case as TAP.  The language is described in README.md beside this
 * file; in short, one command per line:
 *
 *	test "name"			start a test case
 *	set NAME value			$NAME / ${NAME} expand (environment too)
 *	connect HOST PORT [as NAME]	TCP session; unix PATH for a socket
 *	use NAME			switch sessions
 *	send "line"			line + CRLF (escapes \r \n \t \\ \" \xHH)
 *	send-raw "bytes"		exactly these bytes
 *	expect CODE [ESC] [~ "regex"]	one whole reply: code like 250 or 2xx
 *	expect-close			the server closes the connection
 *	starttls [ca FILE [name NAME]]	TLS handshake, verified with ca
 *					(right after connect: smtps)
 *	starttls-refused [ca FILE ...]	the handshake must fail
 *	timeout SECONDS			for the reads that follow
 *	sleep MILLISECONDS
 *	repeat N ... end		a block, N times ($REPEAT counts 1..N)
 *	close				close the current session
 *
 * A failing line ends its test case with "file:line: expected ..., got
 * ..."; the next "test" line starts afresh with no session open.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "smtp_proto.h"

#define MAX_LINES	4096
#define MAX_ARGS	16
#define MAX_SESSIONS	32
#define REPLY_MAX	(64 * 1024)

struct session {
	char		 name[64];
	int		 fd;
	struct tls	*tls;
	char		 buf[REPLY_MAX];
	size_t		 len;
};

struct line {
	int	 lineno;
	int	 argc;
	char	*argv[MAX_ARGS];
	int	 quoted[MAX_ARGS];
};

static struct line	 lines[MAX_LINES];
static int		 nlines;
static const char	*script;
static struct session	 sessions[MAX_SESSIONS];
static struct session	*cur;
static int		 timeout_sec = 10;
static char		 failure[2048];
static int		 verbose;
static struct {
	char	*name;
	char	*value;
} vars[128];
static int		 nvars;

static int	 run_block(int, int, int *);

static int
fail(int lineno, const char *fmt, ...)
{
	char	 msg[1536];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(failure, sizeof(failure), "%s:%d: %s", script, lineno, msg);
	return -1;
}

static void
set_var(const char *name, const char *value)
{
	int	 i;

	for (i = 0; i < nvars; i++)
		if (strcmp(vars[i].name, name) == 0) {
			free(vars[i].value);
			vars[i].value = strdup(value);
			return;
		}
	if (nvars == (int)(sizeof(vars) / sizeof(vars[0]))) {
		fprintf(stderr, "too many variables\n");
		exit(2);
	}
	vars[nvars].name = strdup(name);
	vars[nvars].value = strdup(value);
	nvars++;
}

static const char *
get_var(const char *name)
{
	int	 i;

	for (i = 0; i < nvars; i++)
		if (strcmp(vars[i].name, name) == 0)
			return vars[i].value;
	return getenv(name);
}

/* Expand $NAME and ${NAME}; -1 on an undefined name. */
static int
expand(const char *in, char *out, size_t size, int lineno)
{
	char		 name[64];
	const char	*v;
	size_t		 n = 0, k;
	int		 braced;

	while (*in) {
		if (*in != '$' || !(isalpha((unsigned char)in[1]) ||
		    in[1] == '_' || in[1] == '{')) {
			if (n + 1 >= size)
				return fail(lineno, "line too long");
			out[n++] = *in++;
			continue;
		}
		in++;
		braced = *in == '{';
		in += braced;
		for (k = 0; (isalnum((unsigned char)*in) || *in == '_') &&
		    k < sizeof(name) - 1; k++)
			name[k] = *in++;
		name[k] = '\0';
		if (braced && *in++ != '}')
			return fail(lineno, "unterminated ${");
		if ((v = get_var(name)) == NULL)
			return fail(lineno, "undefined variable $%s", name);
		if (n + strlen(v) >= size)
			return fail(lineno, "line too long");
		memcpy(out + n, v, strlen(v));
		n += strlen(v);
	}
	out[n] = '\0';
	return 0;
}

/* Backslash escapes of quoted arguments; returns the length. */
static size_t
unescape(const char *in, char *out)
{
	size_t		 n = 0;
	unsigned int	 c;

	for (; *in; in++) {
		if (*in != '\\' || in[1] == '\0') {
			out[n++] = *in;
			continue;
		}
		switch (*++in) {
		case 'r': out[n++] = '\r'; break;
		case 'n': out[n++] = '\n'; break;
		case 't': out[n++] = '\t'; break;
		case '0': out[n++] = '\0'; break;
		case 'x':
			if (sscanf(in + 1, "%2x", &c) == 1) {
				out[n++] = (char)c;
				in += 2;
			} else
				out[n++] = 'x';
			break;
		default:
			out[n++] = *in;
		}
	}
	out[n] = '\0';
	return n;
}

static void
load_script(const char *path)
{
	FILE		*fp;
	char		 buf[8192], *p, *start;
	struct line	*l;
	int		 lineno = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		perror(path);
		exit(2);
	}
	while (fgets(buf, sizeof(buf), fp) != NULL) {
		lineno++;
		buf[strcspn(buf, "\n")] = '\0';
		p = buf;
		l = &lines[nlines];
		memset(l, 0, sizeof(*l));
		l->lineno = lineno;
		while (*p) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '\0' || *p == '#')
				break;
			if (l->argc == MAX_ARGS) {
				fprintf(stderr, "%s:%d: too many words\n", path,
				    lineno);
				exit(2);
			}
			if (*p == '"') {
				start = ++p;
				while (*p && *p != '"') {
					if (*p == '\\' && p[1])
						p++;
					p++;
				}
				if (*p != '"') {
					fprintf(stderr, "%s:%d: unterminated "
					    "string\n", path, lineno);
					exit(2);
				}
				*p++ = '\0';
				l->quoted[l->argc] = 1;
			} else {
				start = p;
				while (*p && *p != ' ' && *p != '\t')
					p++;
				if (*p)
					*p++ = '\0';
			}
			l->argv[l->argc++] = strdup(start);
		}
		if (l->argc > 0 && ++nlines == MAX_LINES) {
			fprintf(stderr, "%s: too many lines\n", path);
			exit(2);
		}
	}
	fclose(fp);
}

static void
session_close(struct session *s)
{
	if (s->tls) {
		tls_close(s->tls);
		tls_free(s->tls);
	}
	if (s->fd != -1)
		close(s->fd);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	if (cur == s)
		cur = NULL;
}

static void
close_all(void)
{
	int	 i;

	for (i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i].name[0] != '\0' || sessions[i].fd > 0)
			session_close(&sessions[i]);
}

static void
set_timeouts(int fd)
{
	struct timeval	 tv = { timeout_sec, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int
do_connect(struct line *l, char **argv)
{
	struct addrinfo		 hints, *res, *ai;
	struct sockaddr_un	 sun;
	struct session		*s = NULL;
	const char		*name = "default";
	int			 i, fd = -1;

	if (l->argc != 3 && l->argc != 5)
		return fail(l->lineno, "usage: connect HOST PORT [as NAME]");
	if (l->argc == 5) {
		if (strcmp(argv[3], "as") != 0)
			return fail(l->lineno, "expected 'as NAME'");
		name = argv[4];
	}
	for (i = 0; i < MAX_SESSIONS; i++)
		if (strcmp(sessions[i].name, name) == 0)
			session_close(&sessions[i]);
	for (i = 0; i < MAX_SESSIONS && s == NULL; i++)
		if (sessions[i].name[0] == '\0')
			s = &sessions[i];
	if (s == NULL)
		return fail(l->lineno, "too many sessions");
	if (strcmp(argv[1], "unix") == 0) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", argv[2]);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
		    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			if (fd != -1)
				close(fd);
			return fail(l->lineno, "connect %s: %s", argv[2],
			    strerror(errno));
		}
	} else {
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
		if ((i = getaddrinfo(argv[1], argv[2], &hints, &res)) != 0)
			return fail(l->lineno, "%s port %s: %s", argv[1],
			    argv[2], gai_strerror(i));
		for (ai = res; ai; ai = ai->ai_next) {
			if ((fd = socket(ai->ai_family, SOCK_STREAM, 0)) == -1)
				continue;
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
				/* each send is one line: do not wait for ACKs */
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
				    &(int){ 1 }, sizeof(int));
				break;
			}
			close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd == -1)
			return fail(l->lineno, "connect %s port %s: %s",
			    argv[1], argv[2], strerror(errno));
	}
	set_timeouts(fd);
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->fd = fd;
	s->len = 0;
	cur = s;
	return 0;
}

static int
session_write(struct session *s, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		n = s->tls ? tls_write(s->tls, p, len) : write(s->fd, p, len);
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* More bytes into s->buf: 1, 0 on EOF, -1 on error or timeout. */
static int
session_fill(struct session *s)
{
	ssize_t	 n;

	if (s->len == sizeof(s->buf))
		return -1;
	do {
		n = s->tls ? tls_read(s->tls, s->buf + s->len,
		    sizeof(s->buf) - s->len) :
		    read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
	} while (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	s->len += (size_t)n;
	return 1;
}

/* One line from the server, without its line end. */
static int
read_line(struct session *s, char *out, size_t size)
{
	char	*nl;
	size_t	 n;
	int	 r;

	while ((nl = memchr(s->buf, '\n', s->len)) == NULL)
		if ((r = session_fill(s)) != 1)
			return r;
	n = (size_t)(nl - s->buf);
	if (n >= size)
		n = size - 1;
	memcpy(out, s->buf, n);
	if (n > 0 && out[n - 1] == '\r')
		n--;
	out[n] = '\0';
	s->len -= (size_t)(nl - s->buf) + 1;
	memmove(s->buf, nl + 1, s->len);
	return 1;
}

static int
code_matches(const char *pattern, int code)
{
	char	 digits[4];
	int	 i;

	snprintf(digits, sizeof(digits), "%03d", code);
	if (strlen(pattern) != 3)
		return 0;
	for (i = 0; i < 3; i++)
		if (pattern[i] != 'x' && pattern[i] != digits[i])
			return 0;
	return 1;
}

static int
do_expect(struct line *l, char **argv)
{
	char		 text[REPLY_MAX], one[2048], esc[16];
	const char	*t, *escpat = NULL, *re = NULL;
	regex_t		 rx;
	size_t		 tlen = 0;
	int		 i, r, code = 0, first = -1, more = 1;

	if (cur == NULL)
		return fail(l->lineno, "no session");
	if (l->argc < 2)
		return fail(l->lineno, "usage: expect CODE [ESC] [~ REGEX]");
	for (i = 2; i < l->argc; i++) {
		if (strcmp(argv[i], "~") == 0 && i + 1 < l->argc)
			re = argv[++i];
		else if (escpat == NULL && !l->quoted[i])
			escpat = argv[i];
		else
			return fail(l->lineno, "unexpected '%s'", argv[i]);
	}
	text[0] = '\0';
	while (more) {
		if ((r = read_line(cur, one, sizeof(one))) != 1)
			return fail(l->lineno, "expected %s, got %s", argv[1],
			    r == 0 ? "the connection closed" :
			    "nothing (timeout or error)");
		if (verbose)
			fprintf(stderr, "<<< %s\n", one);
		if (smtp_reply_parse(one, &code, &more, &t) == -1)
			return fail(l->lineno, "expected %s, got a line that "
			    "is not a reply: \"%s\"", argv[1], one);
		if (first == -1)
			first = code;
		else if (code != first)
			return fail(l->lineno, "reply mixes codes %d and %d",
			    first, code);
		if (tlen + strlen(one) + 2 < sizeof(text)) {
			tlen += (size_t)snprintf(text + tlen,
			    sizeof(text) - tlen, "%s%s", tlen ? "\n" : "", one);
		}
	}
	if (!code_matches(argv[1], code))
		return fail(l->lineno, "expected %s, got \"%s\"", argv[1], text);
	if (escpat != NULL && (smtp_reply_esc(t, esc, sizeof(esc)) == -1 ||
	    strcmp(esc, escpat) != 0))
		return fail(l->lineno, "expected enhanced code %s, got \"%s\"",
		    escpat, one);
	if (re != NULL) {
		if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB | REG_NEWLINE))
			return fail(l->lineno, "bad regex \"%s\"", re);
		r = regexec(&rx, text, 0, NULL, 0);
		regfree(&rx);
		if (r != 0)
			return fail(l->lineno, "expected a reply matching "
			    "\"%s\", got \"%s\"", re, text);
	}
	return 0;
}

/*
 * starttls				no verification
 * starttls ca FILE [name NAME]		verify the chain and the name
 */
static int
do_starttls(struct line *l, char **argv)
{
	struct tls_config	*cfg;
	const char		*ca = NULL, *name = "localhost";
	int			 i;

	if (cur == NULL || cur->tls)
		return fail(l->lineno, cur ? "TLS already active" :
		    "no session");
	for (i = 1; i + 1 < l->argc; i += 2) {
		if (strcmp(argv[i], "ca") == 0)
			ca = argv[i + 1];
		else if (strcmp(argv[i], "name") == 0)
			name = argv[i + 1];
		else
			return fail(l->lineno, "usage: starttls [ca FILE] "
			    "[name NAME]");
	}
	if ((cfg = tls_config_new()) == NULL)
		return fail(l->lineno, "tls_config_new");
	if (ca == NULL) {
		tls_config_insecure_noverifycert(cfg);
		tls_config_insecure_noverifyname(cfg);
	} else if (tls_config_set_ca_file(cfg, ca) == -1) {
		tls_config_free(cfg);
		return fail(l->lineno, "ca %s: unreadable", ca);
	}
	if ((cur->tls = tls_client()) == NULL ||
	    tls_configure(cur->tls, cfg) == -1 ||
	    tls_connect_socket(cur->tls, cur->fd, name) == -1 ||
	    tls_handshake(cur->tls) == -1) {
		tls_config_free(cfg);
		return fail(l->lineno, "TLS handshake failed: %s",
		    cur->tls ? tls_error(cur->tls) : "no context");
	}
	tls_config_free(cfg);
	return 0;
}

/* Find the "end" that closes the block opened at line index i. */
static int
block_end(int i)
{
	int	 depth = 0;

	for (; i < nlines; i++) {
		if (strcmp(lines[i].argv[0], "repeat") == 0)
			depth++;
		else if (strcmp(lines[i].argv[0], "end") == 0 && --depth == 0)
			return i;
	}
	return -1;
}

static int
run_line(int i, int *next)
{
	struct line	*l = &lines[i];
	char		*argv[MAX_ARGS], buf[MAX_ARGS][4096];
	size_t		 len;
	int		 a, n, end;
	long		 count;

	*next = i + 1;
	for (a = 0; a < l->argc; a++) {
		if (expand(l->argv[a], buf[a], sizeof(buf[a]), l->lineno) == -1)
			return -1;
		argv[a] = buf[a];
	}
	if (strcmp(argv[0], "set") == 0 && l->argc == 3)
		set_var(argv[1], argv[2]);
	else if (strcmp(argv[0], "connect") == 0)
		return do_connect(l, argv);
	else if (strcmp(argv[0], "use") == 0 && l->argc == 2) {
		cur = NULL;
		for (n = 0; n < MAX_SESSIONS; n++)
			if (strcmp(sessions[n].name, argv[1]) == 0)
				cur = &sessions[n];
		if (cur == NULL)
			return fail(l->lineno, "no session %s", argv[1]);
	} else if ((strcmp(argv[0], "send") == 0 ||
	    strcmp(argv[0], "send-raw") == 0) && l->argc == 2) {
		if (cur == NULL)
			return fail(l->lineno, "no session");
		len = unescape(argv[1], buf[1]);
		if (argv[0][4] == '\0') {
			memcpy(buf[1] + len, "\r\n", 3);
			len += 2;
		}
		if (verbose)
			fprintf(stderr, ">>> %s", buf[1]);
		if (session_write(cur, buf[1], len) == -1)
			return fail(l->lineno, "send: %s", strerror(errno));
	} else if (strcmp(argv[0], "expect") == 0)
		return do_expect(l, argv);
	else if (strcmp(argv[0], "expect-close") == 0) {
		char	 one[2048];
		int	 r;

		if (cur == NULL)
			return fail(l->lineno, "no session");
		if ((r = read_line(cur, one, sizeof(one))) != 0)
			return fail(l->lineno, "expected the connection to "
			    "close, got %s", r == 1 ? one : "a timeout");
		session_close(cur);
	} else if (strcmp(argv[0], "starttls") == 0)
		return do_starttls(l, argv);
	else if (strcmp(argv[0], "starttls-refused") == 0) {
		if (do_starttls(l, argv) == 0)
			return fail(l->lineno, "the TLS handshake succeeded, "
			    "expected it to fail");
		failure[0] = '\0';
		session_close(cur);
	}
	else if (strcmp(argv[0], "timeout") == 0 && l->argc == 2) {
		timeout_sec = atoi(argv[1]);
		for (n = 0; n < MAX_SESSIONS; n++)
			if (sessions[n].fd > 0)
				set_timeouts(sessions[n].fd);
	} else if (strcmp(argv[0], "sleep") == 0 && l->argc == 2)
		usleep((useconds_t)atoi(argv[1]) * 1000);
	else if (strcmp(argv[0], "close") == 0 && l->argc == 1) {
		if (cur != NULL)
			session_close(cur);
	} else if (strcmp(argv[0], "repeat") == 0 && l->argc == 2) {
		count = strtol(argv[1], NULL, 10);
		if ((end = block_end(i)) == -1)
			return fail(l->lineno, "repeat without end");
		for (n = 1; n <= count; n++) {
			char	 iter[32];
			int	 stop;

			snprintf(iter, sizeof(iter), "%d", n);
			set_var("REPEAT", iter);
			if (run_block(i + 1, end, &stop) == -1)
				return -1;
		}
		*next = end + 1;
	} else
		return fail(l->lineno, "unknown or malformed command '%s'",
		    argv[0]);
	return 0;
}

static int
run_block(int from, int to, int *stopped)
{
	int	 i, next;

	for (i = from; i < to; i = next) {
		if (strcmp(lines[i].argv[0], "test") == 0) {
			*stopped = i;
			return 1;
		}
		if (run_line(i, &next) == -1) {
			*stopped = i;
			return -1;
		}
	}
	*stopped = to;
	return 0;
}

int
main(int argc, char **argv)
{
	char	 name[512];
	int	 ch, f, i, r, stopped, ntests = 0, nfailed = 0;
	char	*eq;

	while ((ch = getopt(argc, argv, "D:v")) != -1) {
		switch (ch) {
		case 'D':
			if ((eq = strchr(optarg, '=')) == NULL)
				return 2;
			*eq = '\0';
			set_var(optarg, eq + 1);
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			fprintf(stderr, "usage: smtpscript [-v] [-D name=value] "
			    "file ...\n");
			return 2;
		}
	}
	if (tls_init() == -1)
		return 2;
	for (i = 0; i < MAX_SESSIONS; i++)
		sessions[i].fd = -1;
	for (f = optind; f < argc; f++) {
		script = argv[f];
		nlines = 0;
		load_script(script);
		for (i = 0; i < nlines; i = stopped) {
			snprintf(name, sizeof(name), "%s", script);
			if (strcmp(lines[i].argv[0], "test") == 0) {
				if (lines[i].argc > 1)
					snprintf(name, sizeof(name), "%s: %s",
					    script, lines[i].argv[1]);
				i++;
			}
			failure[0] = '\0';
			r = run_block(i, nlines, &stopped);
			if (r == -1) {
				/* Skip to the next test case. */
				while (stopped < nlines && strcmp(
				    lines[stopped].argv[0], "test") != 0)
					stopped++;
			}
			ntests++;
			if (r == -1) {
				nfailed++;
				printf("not ok %d - %s\n#   %s\n", ntests, name,
				    failure);
			} else
				printf("ok %d - %s\n", ntests, name);
			fflush(stdout);
			close_all();
		}
	}
	printf("1..%d\n", ntests);
	return nfailed ? 1 : 0;
}
