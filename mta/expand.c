/*
 * Expansion: which local users a recipient ends up with (alias and
 * virtual tables, at RCPT time), and the %{...} placeholders of delivery
 * paths and commands (at delivery time).
 *
 * Placeholders take values from the envelope, which a remote client chose:
 * in a path, a value can never add a directory level or climb out ('/'
 * becomes '_', a leading '.' becomes '_'); in a command, every value is
 * passed single-quoted to the shell.
 */
#include <ctype.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mtad.h"

#define ALIAS_DEPTH_MAX	8

static void
lowercase(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static int
add_dest(char dests[][SMTP_ADDRESS_MAX + 1], size_t max, size_t *n,
    const char *user)
{
	size_t	 i;

	if (strlen(user) > SMTP_ADDRESS_MAX || *user == '\0')
		return -1;
	for (i = 0; i < *n; i++)
		if (strcmp(dests[i], user) == 0)
			return 0;	/* listed twice: delivered once */
	if (*n == max)
		return -1;
	strcpy(dests[(*n)++], user);
	return 0;
}

/* An alias value: "user, user2" (local users only, for now). */
static int
expand_alias(const struct table *t, const char *name, int depth,
    char dests[][SMTP_ADDRESS_MAX + 1], size_t max, size_t *n)
{
	char		 buf[ENVELOPE_FIELD_MAX], key[SMTP_LOCALPART_MAX + 1];
	const char	*value;
	char		*tok, *save;

	if (depth > ALIAS_DEPTH_MAX || strlen(name) >= sizeof(key))
		return -1;
	snprintf(key, sizeof(key), "%s", name);
	lowercase(key);
	if ((value = table_get(t, key)) == NULL || depth == ALIAS_DEPTH_MAX)
		return add_dest(dests, max, n, key);
	snprintf(buf, sizeof(buf), "%s", value);
	for (tok = strtok_r(buf, ", \t", &save); tok;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (strchr(tok, '@') || strchr(tok, '/') || tok[0] == '|')
			return -1;	/* not a local user: not supported */
		/* an alias naming itself ends the recursion */
		if (strcasecmp(tok, key) == 0) {
			if (add_dest(dests, max, n, key) == -1)
				return -1;
		} else if (expand_alias(t, tok, depth + 1, dests, max, n) == -1)
			return -1;
	}
	return 0;
}

/*
 * The local users a recipient accepted for action a is delivered to.
 * Returns their number, 0 when a virtual table does not know the
 * recipient, -1 when the expansion is not something we can deliver.
 */
int
expand_recipient(const struct action *a, const struct mailaddr *rcpt,
    char dests[][SMTP_ADDRESS_MAX + 1], size_t max)
{
	char		 key[SMTP_ADDRESS_MAX + 2];
	const char	*value;
	size_t		 n = 0;

	if (a->virtual != NULL) {
		snprintf(key, sizeof(key), "%s@%s", rcpt->local, rcpt->domain);
		if ((value = table_get(a->virtual, key)) == NULL) {
			snprintf(key, sizeof(key), "@%s", rcpt->domain);
			value = table_get(a->virtual, key);
		}
		if (value == NULL)
			return 0;
		if (strchr(value, '@') != NULL)
			return -1;	/* forwarding needs relaying */
		return add_dest(dests, max, &n, value) == -1 ? -1 : 1;
	}
	if (a->alias != NULL)
		return expand_alias(a->alias, rcpt->local, 0, dests, max, &n) ==
		    -1 ? -1 : (int)n;
	snprintf(key, sizeof(key), "%s", rcpt->local);
	lowercase(key);
	return add_dest(dests, max, &n, key) == -1 ? -1 : 1;
}

static int
append(char *out, size_t size, size_t *len, const char *s, size_t n)
{
	if (*len + n >= size)
		return -1;
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
	return 0;
}

/* A value inside a path: one component at most, never "." or "..". */
static int
append_path_value(char *out, size_t size, size_t *len, const char *v)
{
	char	 c;
	size_t	 i;

	for (i = 0; v[i]; i++) {
		c = v[i];
		if (c == '/' || (i == 0 && c == '.') || iscntrl((unsigned char)c))
			c = '_';
		if (append(out, size, len, &c, 1) == -1)
			return -1;
	}
	return 0;
}

/* A value inside a shell command: single-quoted, ' as '\'' */
static int
append_shell_value(char *out, size_t size, size_t *len, const char *v)
{
	if (append(out, size, len, "'", 1) == -1)
		return -1;
	for (; *v; v++) {
		if (*v == '\'') {
			if (append(out, size, len, "'\\''", 4) == -1)
				return -1;
		} else if (append(out, size, len, v, 1) == -1)
			return -1;
	}
	return append(out, size, len, "'", 1);
}

/*
 * Expand %{sender}, %{rcpt}, %{rcpt.user}, %{rcpt.domain}, %{dest},
 * %{user.username}, %{user.directory} and a leading "~/" (the user's
 * home) in fmt.  Returns 0, or -1 on an unknown placeholder or overflow.
 */
int
expand_format(char *out, size_t size, const char *fmt,
    const struct envelope *e, const struct passwd *pw, enum expand_context ctx)
{
	char		 name[64], local[SMTP_ADDRESS_MAX + 1];
	const char	*p, *end, *v, *at;
	size_t		 len = 0;
	int		 r;

	out[0] = '\0';
	p = fmt;
	if (ctx == EXPAND_PATH && p[0] == '~' && (p[1] == '/' || p[1] == '\0')) {
		if (append(out, size, &len, pw->pw_dir, strlen(pw->pw_dir)) == -1)
			return -1;
		p++;
	}
	snprintf(local, sizeof(local), "%s", e->rcpt);
	if ((at = strrchr(e->rcpt, '@')) != NULL)
		local[at - e->rcpt] = '\0';
	for (; *p; p = end) {
		if (p[0] != '%' || p[1] != '{') {
			end = p + 1;
			if (append(out, size, &len, p, 1) == -1)
				return -1;
			continue;
		}
		if ((end = strchr(p, '}')) == NULL ||
		    (size_t)(end - p - 2) >= sizeof(name))
			return -1;
		memcpy(name, p + 2, (size_t)(end - p - 2));
		name[end - p - 2] = '\0';
		end++;
		if (strcmp(name, "sender") == 0)
			v = e->sender;
		else if (strcmp(name, "rcpt") == 0)
			v = e->rcpt;
		else if (strcmp(name, "rcpt.user") == 0)
			v = local;
		else if (strcmp(name, "rcpt.domain") == 0)
			v = at ? at + 1 : "";
		else if (strcmp(name, "dest") == 0)
			v = e->dest;
		else if (strcmp(name, "user.username") == 0)
			v = pw->pw_name;
		else if (strcmp(name, "user.directory") == 0) {
			/* the home directory is trusted: it comes from passwd */
			if (append(out, size, &len, pw->pw_dir,
			    strlen(pw->pw_dir)) == -1)
				return -1;
			continue;
		} else
			return -1;
		r = ctx == EXPAND_PATH ? append_path_value(out, size, &len, v) :
		    append_shell_value(out, size, &len, v);
		if (r == -1)
			return -1;
	}
	return 0;
}
