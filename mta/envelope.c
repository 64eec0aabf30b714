/*
 * Envelopes on disk: text, one "key: value" per line, so that an
 * administrator can read a queued envelope and a future version can add
 * keys without breaking old ones.  Values never hold a newline.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtad.h"

#define ENVELOPE_VERSION	1

uint32_t
envelope_msgid(uint64_t evpid)
{
	return (uint32_t)(evpid >> 32);
}

/* Returns the length written, or -1 if it does not fit. */
int
envelope_dump(const struct envelope *e, char *buf, size_t size)
{
	int	 n;

	n = snprintf(buf, size,
	    "version: %d\n"
	    "id: %016" PRIx64 "\n"
	    "sender: %s\n"
	    "rcpt: %s\n"
	    "dest: %s\n"
	    "action: %s\n"
	    "tag: %s\n"
	    "helo: %s\n"
	    "client: %s\n"
	    "created: %" PRId64 "\n"
	    "flags: %" PRIu32 "\n"
	    "dsn-notify: %" PRIu32 "\n"
	    "dsn-ret: %s\n"
	    "dsn-envid: %s\n"
	    "dsn-orcpt: %s\n"
	    "retries: %" PRIu32 "\n"
	    "lasttry: %" PRId64 "\n"
	    "errorline: %s\n",
	    ENVELOPE_VERSION, e->id, e->sender, e->rcpt, e->dest, e->action,
	    e->tag, e->helo, e->client, e->created, e->flags, e->dsn_notify,
	    e->dsn_ret, e->dsn_envid, e->dsn_orcpt, e->retries, e->lasttry,
	    e->errorline);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return n;
}

static int
copy_field(char *dst, size_t size, const char *value)
{
	if (strlen(value) >= size)
		return -1;
	strcpy(dst, value);
	return 0;
}

static int
number_field(const char *value, uint64_t *v, int base)
{
	char	*end;

	errno = 0;
	*v = strtoull(value, &end, base);
	return (*value == '\0' || *end != '\0' || errno) ? -1 : 0;
}

/* Returns 0, or -1 when the text is not an envelope of ours. */
int
envelope_load(struct envelope *e, const char *text, size_t len)
{
	char		 line[ENVELOPE_FIELD_MAX + 32], *value;
	const char	*p = text, *end = text + len, *nl;
	uint64_t	 v;
	int		 r = 0, version = 0;

	memset(e, 0, sizeof(*e));
	while (p < end && r == 0) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL ||
		    (size_t)(nl - p) >= sizeof(line))
			return -1;
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		p = nl + 1;
		if ((value = strstr(line, ": ")) == NULL) {
			if ((value = strchr(line, ':')) == NULL ||
			    value[1] != '\0')
				return -1;
			*value++ = '\0';	/* "key:" with an empty value */
		} else {
			*value = '\0';
			value += 2;
		}
		if (strcmp(line, "version") == 0) {
			r = number_field(value, &v, 10);
			version = (int)v;
		} else if (strcmp(line, "id") == 0)
			r = number_field(value, &e->id, 16);
		else if (strcmp(line, "sender") == 0)
			r = copy_field(e->sender, sizeof(e->sender), value);
		else if (strcmp(line, "rcpt") == 0)
			r = copy_field(e->rcpt, sizeof(e->rcpt), value);
		else if (strcmp(line, "dest") == 0)
			r = copy_field(e->dest, sizeof(e->dest), value);
		else if (strcmp(line, "action") == 0)
			r = copy_field(e->action, sizeof(e->action), value);
		else if (strcmp(line, "tag") == 0)
			r = copy_field(e->tag, sizeof(e->tag), value);
		else if (strcmp(line, "helo") == 0)
			r = copy_field(e->helo, sizeof(e->helo), value);
		else if (strcmp(line, "client") == 0)
			r = copy_field(e->client, sizeof(e->client), value);
		else if (strcmp(line, "created") == 0) {
			r = number_field(value, &v, 10);
			e->created = (int64_t)v;
		} else if (strcmp(line, "flags") == 0) {
			r = number_field(value, &v, 10);
			e->flags = (uint32_t)v;
		} else if (strcmp(line, "dsn-notify") == 0) {
			r = number_field(value, &v, 10);
			e->dsn_notify = (uint32_t)v;
		} else if (strcmp(line, "dsn-ret") == 0)
			r = copy_field(e->dsn_ret, sizeof(e->dsn_ret), value);
		else if (strcmp(line, "dsn-envid") == 0)
			r = copy_field(e->dsn_envid, sizeof(e->dsn_envid),
			    value);
		else if (strcmp(line, "dsn-orcpt") == 0)
			r = copy_field(e->dsn_orcpt, sizeof(e->dsn_orcpt),
			    value);
		else if (strcmp(line, "retries") == 0) {
			r = number_field(value, &v, 10);
			e->retries = (uint32_t)v;
		} else if (strcmp(line, "lasttry") == 0) {
			r = number_field(value, &v, 10);
			e->lasttry = (int64_t)v;
		} else if (strcmp(line, "errorline") == 0)
			r = copy_field(e->errorline, sizeof(e->errorline),
			    value);
		/* Unknown keys are from a newer version: ignored. */
	}
	if (r == -1 || version < 1 || e->id == 0 || e->rcpt[0] == '\0')
		return -1;
	return 0;
}
