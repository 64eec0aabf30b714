/*
 * Lexer and statement helpers for the configuration language (conf.h).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "xmalloc.h"

#define CONF_MAX_FILE		(4 * 1024 * 1024)
#define CONF_MAX_INCLUDE	16
#define CONF_MAX_EXPANSION	256	/* per statement */
#define CONF_MAX_TOKEN		8192

/* Something to read characters from: a file, or a macro's value. */
struct conf_source {
	struct conf_source	*prev;
	char			*name;		/* file name, or NULL */
	char			*buf;
	size_t			 len;
	size_t			 pos;
	int			 line;
	int			 is_macro;
};

struct conf_macro {
	struct conf_macro	*next;
	char			*name;
	char			*value;
	int			 from_cmdline;
};

static struct conf_source *conf_file_source(struct conf *);
static int	 conf_getc(struct conf *);
static void	 conf_ungetc(struct conf *);
static void	 conf_pop(struct conf *);
static void	 conf_push_string(struct conf *, const char *);
static void	 conf_add_token(struct conf *, enum conf_token_type, char *);
static int	 conf_lex_token(struct conf *, int *);
static char	*conf_expand_word(struct conf *, const char *);
static int	 conf_handle_macro(struct conf *);
static int	 conf_handle_include(struct conf *);
static void	 conf_clear_statement(struct conf *);
static struct conf_macro *conf_macro_find(struct conf *, const char *);
static int	 conf_valid_macro_name(const char *);
static void	 conf_set_macro(struct conf *, const char *, const char *, int);

void
conf_init(struct conf *cf)
{
	memset(cf, 0, sizeof(*cf));
}

void
conf_free(struct conf *cf)
{
	struct conf_macro	*m;

	while (cf->src)
		conf_pop(cf);
	while ((m = cf->macros) != NULL) {
		cf->macros = m->next;
		free(m->name);
		free(m->value);
		free(m);
	}
	conf_clear_statement(cf);
	free(cf->tok);
	free(cf->file);
	memset(cf, 0, sizeof(*cf));
}

static int
conf_valid_macro_name(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

static struct conf_macro *
conf_macro_find(struct conf *cf, const char *name)
{
	struct conf_macro	*m;

	for (m = cf->macros; m; m = m->next)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

static void
conf_set_macro(struct conf *cf, const char *name, const char *value,
    int from_cmdline)
{
	struct conf_macro	*m;

	if ((m = conf_macro_find(cf, name)) != NULL) {
		if (m->from_cmdline && !from_cmdline)
			return;		/* -D wins over the file */
		free(m->value);
		m->value = xstrdup(value);
		m->from_cmdline = from_cmdline;
		return;
	}
	m = xcalloc(1, sizeof(*m));
	m->name = xstrdup(name);
	m->value = xstrdup(value);
	m->from_cmdline = from_cmdline;
	m->next = cf->macros;
	cf->macros = m;
}

int
conf_define(struct conf *cf, const char *def)
{
	const char	*eq;
	char		*name;
	int		 ok;

	if ((eq = strchr(def, '=')) == NULL)
		return -1;
	name = xstrndup(def, (size_t)(eq - def));
	if ((ok = conf_valid_macro_name(name)))
		conf_set_macro(cf, name, eq + 1, 1);
	free(name);
	return ok ? 0 : -1;
}

/* A file that cannot be read: not a statement's error. */
static void
conf_file_error(struct conf *cf, const char *path, const char *why)
{
	if (cf->errors++ == 0)
		snprintf(cf->first_error, sizeof(cf->first_error), "%s: %s",
		    path, why);
	if (cf->log_errors)
		log_warnx("%s: %s", path, why);
	else
		fprintf(stderr, "%s: %s\n", path, why);
}

int
conf_open(struct conf *cf, const char *path)
{
	FILE	*fp;
	char	*buf;
	size_t	 len;

	if ((fp = fopen(path, "r")) == NULL) {
		conf_file_error(cf, path, strerror(errno));
		return -1;
	}
	buf = xmalloc(CONF_MAX_FILE + 1);
	len = fread(buf, 1, CONF_MAX_FILE + 1, fp);
	if (ferror(fp) || len > CONF_MAX_FILE) {
		conf_file_error(cf, path, ferror(fp) ? "read error" :
		    "file too large");
		fclose(fp);
		free(buf);
		return -1;
	}
	fclose(fp);
	conf_open_buffer(cf, path, buf, len);
	free(buf);
	return 0;
}

void
conf_open_buffer(struct conf *cf, const char *name, const char *text,
    size_t len)
{
	struct conf_source	*s;

	s = xcalloc(1, sizeof(*s));
	s->name = xstrdup(name);
	s->buf = xmalloc(len + 1);
	memcpy(s->buf, text, len);
	s->len = len;
	s->line = 1;
	s->prev = cf->src;
	cf->src = s;
}

static void
conf_push_string(struct conf *cf, const char *str)
{
	struct conf_source	*s;

	s = xcalloc(1, sizeof(*s));
	s->buf = xstrdup(str);
	s->len = strlen(str);
	s->is_macro = 1;
	s->prev = cf->src;
	cf->src = s;
}

static void
conf_pop(struct conf *cf)
{
	struct conf_source	*s = cf->src;

	cf->src = s->prev;
	free(s->name);
	free(s->buf);
	free(s);
}

static struct conf_source *
conf_file_source(struct conf *cf)
{
	struct conf_source	*s;

	for (s = cf->src; s->is_macro; s = s->prev)
		;
	return s;
}

/*
 * Characters of the current source; a macro's value ends where its text
 * ends, and reading goes on in the source that expanded it.  A file's end
 * is returned as EOF so that a statement never spans two files.
 */
static int
conf_getc(struct conf *cf)
{
	struct conf_source	*s;
	int			 c;

	while ((s = cf->src) != NULL && s->is_macro && s->pos == s->len)
		conf_pop(cf);
	if (s == NULL || s->pos == s->len)
		return EOF;
	c = (unsigned char)s->buf[s->pos++];
	if (c == '\n')
		s->line++;
	return c;
}

static void
conf_ungetc(struct conf *cf)
{
	struct conf_source	*s = cf->src;

	if (s->buf[--s->pos] == '\n')
		s->line--;
}

static void
conf_add_token(struct conf *cf, enum conf_token_type type, char *text)
{
	if (cf->ntok == cf->tokcap) {
		cf->tokcap = cf->tokcap ? cf->tokcap * 2 : 16;
		cf->tok = xreallocarray(cf->tok, cf->tokcap, sizeof(*cf->tok));
	}
	cf->tok[cf->ntok].type = type;
	cf->tok[cf->ntok].text = text;
	cf->ntok++;
}

static void
conf_clear_statement(struct conf *cf)
{
	size_t	 i;

	for (i = 0; i < cf->ntok; i++)
		free(cf->tok[i].text);
	cf->ntok = 0;
	cf->pos = 0;
	cf->failed = 0;
}

static int
conf_is_punct(int c)
{
	return c == '{' || c == '}' || c == ',' || c == '<' || c == '>' ||
	    c == '=' || c == '!';
}

/*
 * Read one token into the statement.  Returns 1 when a token was added
 * (or a macro pushed), 0 at the end of the statement, -1 at the end of
 * the file.  *depth counts open braces.
 */
static int
conf_lex_token(struct conf *cf, int *depth)
{
	char		 buf[CONF_MAX_TOKEN];
	size_t		 n = 0;
	int		 c, next;
	struct conf_macro *m;

again:
	do {
		c = conf_getc(cf);
		if (c == '\\') {
			if ((next = conf_getc(cf)) == '\n')
				c = ' ';	/* continued line */
			else if (next != EOF)
				conf_ungetc(cf);
		}
	} while (c == ' ' || c == '\t' || c == '\r');

	if (c == '#') {
		while ((c = conf_getc(cf)) != '\n' && c != EOF)
			;
	}
	if (c == EOF)
		return -1;
	if (c == '\n') {
		if (*depth > 0 || cf->ntok == 0)
			goto again;
		return 0;
	}
	if (cf->ntok == 0 && cf->expansions == 0)
		cf->line = conf_file_source(cf)->line;
	if (conf_is_punct(c)) {
		if (c == '{')
			(*depth)++;
		else if (c == '}' && *depth > 0)
			(*depth)--;
		buf[0] = (char)c;
		buf[1] = '\0';
		conf_add_token(cf, CONF_PUNCT, xstrdup(buf));
		return 1;
	}
	if (c == '"') {
		for (;;) {
			if ((c = conf_getc(cf)) == EOF || c == '\n') {
				conf_error(cf, "unterminated string");
				if (c == '\n')
					conf_ungetc(cf);
				return 1;
			}
			if (c == '"')
				break;
			if (c == '\\') {
				next = conf_getc(cf);
				if (next == '"' || next == '\\')
					c = next;
				else if (next != EOF)
					conf_ungetc(cf);
			}
			if (c == '\0') {
				conf_error(cf, "NUL byte in string");
				continue;
			}
			if (n == sizeof(buf) - 1) {
				conf_error(cf, "string too long");
				continue;
			}
			buf[n++] = (char)c;
		}
		buf[n] = '\0';
		conf_add_token(cf, CONF_STRING, xstrdup(buf));
		return 1;
	}
	for (;;) {
		if (n == sizeof(buf) - 1) {
			conf_error(cf, "word too long");
			n = 0;
		}
		buf[n++] = (char)c;
		c = conf_getc(cf);
		if (c == EOF)
			break;
		/* A "%{placeholder}" belongs to the word, braces included. */
		if (c == '{' && buf[n - 1] == '%') {
			while (c != EOF && c != '}' && c != '\n' &&
			    n < sizeof(buf) - 2) {
				buf[n++] = (char)c;
				c = conf_getc(cf);
			}
			if (c != '}') {
				conf_error(cf, "unterminated %%{ in a word");
				if (c == '\n')
					conf_ungetc(cf);
				return 1;
			}
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
		    c == '#' || c == '"' || c == '\\' || conf_is_punct(c)) {
			conf_ungetc(cf);
			break;
		}
	}
	buf[n] = '\0';
	if (!cf->shipped && buf[0] == '$' && conf_valid_macro_name(buf + 1)) {
		/* A whole-word macro may expand to several tokens. */
		if ((m = conf_macro_find(cf, buf + 1)) == NULL) {
			conf_error(cf, "undefined macro %s", buf);
			return 1;
		}
		if (++cf->expansions > CONF_MAX_EXPANSION) {
			conf_error(cf, "macro %s expands too deeply", buf);
			return 1;
		}
		conf_push_string(cf, m->value);
		return 1;
	}
	conf_add_token(cf, CONF_WORD, conf_expand_word(cf, buf));
	return 1;
}

/*
 * Substitute "$name" inside a word ("$dir/empty"): the result is one
 * word, whatever the value holds.  Undefined names are errors.
 */
static char *
conf_expand_word(struct conf *cf, const char *word)
{
	struct conf_macro	*m;
	const char		*p, *end;
	char			*out, *name;
	size_t			 len = 0, size = strlen(word) + 1;

	if (cf->shipped || strchr(word, '$') == NULL)
		return xstrdup(word);
	out = xmalloc(size);
	for (p = word; *p; p = end) {
		end = p + 1;
		if (*p == '$' && (isalpha((unsigned char)p[1]) || p[1] == '_')) {
			while (isalnum((unsigned char)*end) || *end == '_')
				end++;
			name = xstrndup(p + 1, (size_t)(end - p - 1));
			m = conf_macro_find(cf, name);
			if (m == NULL)
				conf_error(cf, "undefined macro $%s", name);
			free(name);
			if (m != NULL) {
				size += strlen(m->value);
				out = xreallocarray(out, 1, size);
				memcpy(out + len, m->value, strlen(m->value));
				len += strlen(m->value);
			}
			continue;
		}
		out[len++] = *p;
	}
	out[len] = '\0';
	return out;
}

/* "name = value": define a macro. Returns 1 when the statement was one. */
static int
conf_handle_macro(struct conf *cf)
{
	if (cf->ntok < 2 || cf->tok[0].type != CONF_WORD ||
	    cf->tok[1].type != CONF_PUNCT || strcmp(cf->tok[1].text, "=") != 0)
		return 0;
	if (!conf_valid_macro_name(cf->tok[0].text)) {
		conf_error(cf, "invalid macro name '%s'", cf->tok[0].text);
		return 1;
	}
	if (cf->ntok != 3 || cf->tok[2].type == CONF_PUNCT) {
		conf_error(cf, "macro %s: expected one value", cf->tok[0].text);
		return 1;
	}
	conf_set_macro(cf, cf->tok[0].text, cf->tok[2].text, 0);
	return 1;
}

/* include "file": Returns 1 when the statement was one. */
static int
conf_handle_include(struct conf *cf)
{
	const char	*name, *slash;
	char		*path;
	int		 errors;

	if (cf->tok[0].type != CONF_WORD || strcmp(cf->tok[0].text,
	    "include") != 0)
		return 0;
	cf->pos = 1;
	if ((name = conf_word(cf, "a file name")) == NULL || !conf_end(cf))
		return 1;
	if (cf->include_depth >= CONF_MAX_INCLUDE || cf->no_files) {
		conf_error(cf, cf->no_files ? "include: no files here" :
		    "includes nested too deeply");
		return 1;
	}
	slash = strrchr(cf->file, '/');
	if (name[0] == '/' || slash == NULL)
		path = xstrdup(name);
	else
		xasprintf(&path, "%.*s/%s", (int)(slash - cf->file), cf->file,
		    name);
	errors = cf->errors;
	if (conf_open(cf, path) == -1) {
		cf->errors = errors;
		conf_error(cf, "cannot include %s: %s", path, strerror(errno));
	} else
		cf->include_depth++;
	free(path);
	return 1;
}

/*
 * Read the next statement.  Returns 1 when one is ready for the parser,
 * 0 when every file has been read.
 */
int
conf_next_statement(struct conf *cf)
{
	int	 depth, r;

	for (;;) {
		conf_clear_statement(cf);
		while (cf->src != NULL) {
			/* Skip blank lines to find where the statement starts. */
			r = conf_getc(cf);
			if (r == EOF) {
				conf_pop(cf);
				if (cf->include_depth > 0)
					cf->include_depth--;
				continue;
			}
			conf_ungetc(cf);
			break;
		}
		if (cf->src == NULL)
			return 0;
		free(cf->file);
		cf->file = xstrdup(conf_file_source(cf)->name);
		cf->line = conf_file_source(cf)->line;
		cf->expansions = 0;
		depth = 0;
		while ((r = conf_lex_token(cf, &depth)) == 1)
			;
		if (depth > 0)
			conf_error(cf, "missing '}'");
		if (cf->ntok == 0 || cf->failed)
			continue;
		if (!cf->shipped &&
		    (conf_handle_macro(cf) || conf_handle_include(cf)))
			continue;
		cf->pos = 0;
		return 1;
	}
}

void
conf_error(struct conf *cf, const char *fmt, ...)
{
	va_list	 ap;

	char	 msg[256];

	if (cf->failed)
		return;		/* one error per statement is enough */
	cf->failed = 1;
	cf->errors++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cf->errors == 1)
		snprintf(cf->first_error, sizeof(cf->first_error), "%s:%d: %s",
		    cf->file ? cf->file : "?", cf->line, msg);
	if (cf->log_errors)
		log_warnx("%s:%d: %s", cf->file ? cf->file : "?", cf->line,
		    msg);
	else
		fprintf(stderr, "%s:%d: %s\n", cf->file ? cf->file : "?",
		    cf->line, msg);
}

const char *
conf_describe(const struct conf_token *t)
{
	static char	 buf[96];

	if (t == NULL)
		return "end of line";
	snprintf(buf, sizeof(buf), t->type == CONF_STRING ? "\"%.80s\"" :
	    "'%.80s'", t->text);
	return buf;
}

int
conf_at_end(struct conf *cf)
{
	return cf->pos >= cf->ntok;
}

const struct conf_token *
conf_peek(struct conf *cf)
{
	return cf->failed || conf_at_end(cf) ? NULL : &cf->tok[cf->pos];
}

int
conf_accept(struct conf *cf, const char *keyword)
{
	const struct conf_token	*t = conf_peek(cf);

	if (t == NULL || t->type != CONF_WORD || strcmp(t->text, keyword) != 0)
		return 0;
	cf->pos++;
	return 1;
}

int
conf_accept_punct(struct conf *cf, char c)
{
	const struct conf_token	*t = conf_peek(cf);

	if (t == NULL || t->type != CONF_PUNCT || t->text[0] != c)
		return 0;
	cf->pos++;
	return 1;
}

int
conf_expect(struct conf *cf, const char *keyword)
{
	if (conf_accept(cf, keyword))
		return 1;
	if (!cf->failed)
		conf_error(cf, "expected '%s', got %s", keyword,
		    conf_describe(conf_peek(cf)));
	return 0;
}

int
conf_expect_punct(struct conf *cf, char c)
{
	if (conf_accept_punct(cf, c))
		return 1;
	if (!cf->failed)
		conf_error(cf, "expected '%c', got %s", c,
		    conf_describe(conf_peek(cf)));
	return 0;
}

const char *
conf_word(struct conf *cf, const char *what)
{
	const struct conf_token	*t = conf_peek(cf);

	if (t == NULL || t->type == CONF_PUNCT) {
		if (!cf->failed)
			conf_error(cf, "expected %s, got %s", what,
			    conf_describe(t));
		return NULL;
	}
	cf->pos++;
	return t->text;
}

int
conf_number(struct conf *cf, const char *what, long long min, long long max,
    long long *v)
{
	const char	*s;
	char		*end;

	if ((s = conf_word(cf, what)) == NULL)
		return 0;
	errno = 0;
	*v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno == ERANGE || *v < min ||
	    *v > max) {
		conf_error(cf, "expected %s (%lld to %lld), got '%s'", what,
		    min, max, s);
		return 0;
	}
	return 1;
}

int
conf_end(struct conf *cf)
{
	if (cf->failed)
		return 0;
	if (!conf_at_end(cf)) {
		conf_error(cf, "unexpected %s", conf_describe(&cf->tok[cf->pos]));
		return 0;
	}
	return 1;
}

/*
 * Append the current statement to *buf as one canonical line that, read
 * back with "shipped" set, gives the same tokens: this is how a parent
 * hands its children exactly the configuration it checked, macros and
 * includes already resolved.
 */
void
conf_statement_append(struct conf *cf, char **buf, size_t *len)
{
	const struct conf_token	*t;
	const char		*p;
	size_t			 need, i;
	char			*out;

	need = 2;
	for (i = 0; i < cf->ntok; i++)
		need += 2 * strlen(cf->tok[i].text) + 3;
	*buf = xreallocarray(*buf, 1, *len + need + 1);
	out = *buf + *len;
	for (i = 0; i < cf->ntok; i++) {
		t = &cf->tok[i];
		if (i > 0)
			*out++ = ' ';
		if (t->type != CONF_STRING) {
			memcpy(out, t->text, strlen(t->text));
			out += strlen(t->text);
			continue;
		}
		*out++ = '"';
		for (p = t->text; *p; p++) {
			if (*p == '"' || *p == '\\')
				*out++ = '\\';
			*out++ = *p;
		}
		*out++ = '"';
	}
	*out++ = '\n';
	*out = '\0';
	*len = (size_t)(out - *buf);
}

/* "35M", "512K", "1G" or plain bytes. */
int
conf_size(struct conf *cf, const char *what, size_t *v)
{
	const char		*s;
	char			*end;
	unsigned long long	 n, mult = 1;

	if ((s = conf_word(cf, what)) == NULL)
		return 0;
	errno = 0;
	n = strtoull(s, &end, 10);
	switch (*end) {
	case 'k': case 'K':
		mult = 1024;
		end++;
		break;
	case 'm': case 'M':
		mult = 1024 * 1024;
		end++;
		break;
	case 'g': case 'G':
		mult = 1024 * 1024 * 1024;
		end++;
		break;
	}
	if (!isdigit((unsigned char)*s) || *end != '\0' || errno == ERANGE ||
	    n > SIZE_MAX / mult) {
		conf_error(cf, "expected %s (a size such as 35M), got '%s'",
		    what, s);
		return 0;
	}
	*v = (size_t)(n * mult);
	return 1;
}

/* "30s", "5m", "2h", "4d" or plain seconds. */
/*
 * A file a statement names (a certificate, a script): read whole, with
 * a NUL after it, at most max bytes; NULL after a file:line error.
 */
char *
conf_read_file(struct conf *cf, const char *path, size_t max, int empty_ok,
    size_t *len)
{
	char	*buf;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_error(cf, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = xmalloc(max + 1);
	n = read(fd, buf, max + 1);
	close(fd);
	if (n < 0 || (n == 0 && !empty_ok) || (size_t)n > max) {
		conf_error(cf, "%s: %s", path, n < 0 ? strerror(errno) :
		    n == 0 ? "empty file" : "file too large");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/*
 * A timeout: a duration of at most a day, so that it fits in
 * milliseconds in an int (and no one waits longer than that).
 */
int
conf_timeout(struct conf *cf, const char *what, int *seconds)
{
	int	 d;

	if (!conf_duration(cf, what, &d))
		return 0;
	if (d > 86400) {
		conf_error(cf, "%s: at most 1d", what);
		return 0;
	}
	*seconds = d;
	return 1;
}

int
conf_duration(struct conf *cf, const char *what, int *seconds)
{
	const char	*s;
	char		*end;
	long		 n, mult = 1;

	if ((s = conf_word(cf, what)) == NULL)
		return 0;
	errno = 0;
	n = strtol(s, &end, 10);
	switch (*end) {
	case 's':
		end++;
		break;
	case 'm':
		mult = 60;
		end++;
		break;
	case 'h':
		mult = 3600;
		end++;
		break;
	case 'd':
		mult = 86400;
		end++;
		break;
	}
	if (!isdigit((unsigned char)*s) || *end != '\0' || errno == ERANGE ||
	    n <= 0 || n > INT_MAX / mult) {
		conf_error(cf, "expected %s (a duration such as 5m), got '%s'",
		    what, s);
		return 0;
	}
	*seconds = (int)(n * mult);
	return 1;
}
