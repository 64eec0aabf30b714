/*
 * The configuration language shared by mtad.conf and smtpfd.conf.
 *
 * Both files have the same lexical rules, so both daemons use this one
 * lexer and differ only in the grammar they build on it:
 *
 *   - one statement per line; "\" at the end of a line continues it, and
 *     newlines inside { } do not end a statement;
 *   - "#" starts a comment; words are separated by blanks; "..." is a
 *     string with \" and \\ escapes; { } , < > = ! are tokens by themselves;
 *   - "name = value" defines a macro; outside quotes "$name" expands to
 *     its value (a word that is just "$name" may become several tokens,
 *     "$name" inside a word is substituted in place); inside quotes "$"
 *     is literal; -D name=value on the command line wins over the file;
 *   - include "file" reads another file, relative to the including one.
 *
 * Parsers consume a statement token by token with the helpers below.  An
 * error is reported as "file:line: message", the rest of that statement
 * is skipped, and parsing goes on so that one run reports every error.
 */
#ifndef CONF_H
#define CONF_H

#include <stddef.h>

enum conf_token_type {
	CONF_WORD,
	CONF_STRING,
	CONF_PUNCT,
};

struct conf_token {
	enum conf_token_type	 type;
	char			*text;
};

struct conf_source;
struct conf_macro;

struct conf {
	struct conf_source	*src;		/* stack: includes, macros */
	struct conf_macro	*macros;
	int			 errors;
	int			 include_depth;
	int			 expansions;
	/*
	 * Statements come from conf_statement_append() in the parent: no
	 * macros or includes, and parsers must not touch the filesystem.
	 */
	int			 shipped;
	/* No file is opened (include, tables, certificates): fuzzing. */
	int			 no_files;
	/* Errors go to the log, not stderr (a reload in a daemon). */
	int			 log_errors;
	char			 first_error[512];	/* "file:line: ..." */

	/* the current statement */
	struct conf_token	*tok;
	size_t			 ntok;
	size_t			 tokcap;
	size_t			 pos;
	char			*file;		/* where it started */
	int			 line;
	int			 failed;	/* an error was reported */
};

void	 conf_init(struct conf *);
void	 conf_free(struct conf *);
int	 conf_define(struct conf *, const char *);	/* "name=value" */
int	 conf_open(struct conf *, const char *);
void	 conf_open_buffer(struct conf *, const char *, const char *, size_t);
int	 conf_next_statement(struct conf *);

void	 conf_error(struct conf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	 conf_at_end(struct conf *);
const struct conf_token *conf_peek(struct conf *);
int	 conf_accept(struct conf *, const char *);
int	 conf_accept_punct(struct conf *, char);
int	 conf_expect(struct conf *, const char *);
int	 conf_expect_punct(struct conf *, char);
const char *conf_word(struct conf *, const char *);
int	 conf_number(struct conf *, const char *, long long, long long,
	    long long *);
int	 conf_size(struct conf *, const char *, size_t *);
int	 conf_duration(struct conf *, const char *, int *);
int	 conf_timeout(struct conf *, const char *, int *);
char	*conf_read_file(struct conf *, const char *, size_t, int, size_t *);
int	 conf_end(struct conf *);
const char *conf_describe(const struct conf_token *);
void	 conf_statement_append(struct conf *, char **, size_t *);

#endif
