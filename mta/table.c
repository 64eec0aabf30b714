/*
 * Tables: lists and key/value maps, inline or from a file, and the ways
 * rules look things up in them (domain, address, network).
 *
 * File format (aliases(5)-like): one entry per line, "#" comments;
 * "key value" or "key: value" makes a map, a single word per line a list.
 * Keys compare case-insensitively.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mtad.h"
#include "xmalloc.h"

#define TABLE_LINE_MAX	4096

static int	 table_cmp(const void *, const void *);
static struct table_entry *table_lookup(const struct table *, const char *);

struct table *
table_new(const char *name, const char *path)
{
	struct table	*t;

	t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	t->path = path ? xstrdup(path) : NULL;
	t->kind = TABLE_LIST;
	return t;
}

static int
table_cmp(const void *a, const void *b)
{
	const struct table_entry	*ea = a, *eb = b;

	return strcasecmp(ea->key, eb->key);
}

/* Entries are kept sorted, so that lookups are binary searches. */
void
table_add(struct table *t, const char *key, const char *value)
{
	struct table_entry	 e, *slot;
	size_t			 lo = 0, hi = t->nitems, mid;
	int			 c;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		c = strcasecmp(key, t->items[mid].key);
		if (c == 0) {		/* later entries replace earlier ones */
			free(t->items[mid].value);
			t->items[mid].value = value ? xstrdup(value) : NULL;
			return;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (t->nitems == t->itemcap) {
		t->itemcap = t->itemcap ? t->itemcap * 2 : 16;
		t->items = xreallocarray(t->items, t->itemcap,
		    sizeof(*t->items));
	}
	slot = &t->items[lo];
	memmove(slot + 1, slot, (t->nitems - lo) * sizeof(*slot));
	e.key = xstrdup(key);
	e.value = value ? xstrdup(value) : NULL;
	*slot = e;
	t->nitems++;
}

void
table_clear(struct table *t)
{
	size_t	 i;

	for (i = 0; i < t->nitems; i++) {
		free(t->items[i].key);
		free(t->items[i].value);
	}
	free(t->items);
	t->items = NULL;
	t->nitems = t->itemcap = 0;
}

/* Replace the contents with the file's; on error the table is unchanged. */
int
table_load_file(struct table *t, char *err, size_t errlen)
{
	struct table	 tmp;
	FILE		*fp;
	char		 line[TABLE_LINE_MAX + 2], *key, *value, *end;
	int		 lineno = 0, kind = -1, this_kind;

	if ((fp = fopen(t->path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", t->path, strerror(errno));
		return -1;
	}
	memset(&tmp, 0, sizeof(tmp));
	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(fp)) {
			snprintf(err, errlen, "%s:%d: line too long", t->path,
			    lineno);
			goto fail;
		}
		if ((end = strchr(line, '#')) != NULL)
			*end = '\0';
		for (key = line; isspace((unsigned char)*key); key++)
			;
		end = key + strlen(key);
		while (end > key && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*key == '\0')
			continue;
		value = key + strcspn(key, " \t:");
		this_kind = TABLE_LIST;
		if (*value != '\0') {
			*value++ = '\0';
			while (isspace((unsigned char)*value) || *value == ':')
				value++;
			this_kind = TABLE_MAP;
		}
		if (kind != -1 && kind != this_kind) {
			snprintf(err, errlen, "%s:%d: mixes single values and "
			    "key value lines", t->path, lineno);
			goto fail;
		}
		kind = this_kind;
		table_add(&tmp, key, this_kind == TABLE_MAP ? value : NULL);
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error", t->path);
		goto fail;
	}
	fclose(fp);
	table_clear(t);
	t->items = tmp.items;
	t->nitems = tmp.nitems;
	t->itemcap = tmp.itemcap;
	t->kind = kind == TABLE_MAP ? TABLE_MAP : TABLE_LIST;
	return 0;
fail:
	fclose(fp);
	table_clear(&tmp);
	return -1;
}

static struct table_entry *
table_lookup(const struct table *t, const char *key)
{
	struct table_entry	 e;

	if (t->nitems == 0)
		return NULL;
	e.key = (char *)key;
	return bsearch(&e, t->items, t->nitems, sizeof(e), table_cmp);
}

const char *
table_get(const struct table *t, const char *key)
{
	struct table_entry	*e = table_lookup(t, key);

	return e ? (e->value ? e->value : "") : NULL;
}

int
table_has(const struct table *t, const char *key)
{
	return table_lookup(t, key) != NULL;
}

/* "example.org" matches itself; "*.example.org" matches its subdomains. */
int
table_match_domain(const struct table *t, const char *domain)
{
	char		 wild[SMTP_DOMAIN_MAX + 3];
	const char	*p;

	if (table_has(t, domain))
		return 1;
	for (p = strchr(domain, '.'); p != NULL; p = strchr(p + 1, '.')) {
		snprintf(wild, sizeof(wild), "*%s", p);
		if (table_has(t, wild))
			return 1;
	}
	return 0;
}

/* "user@domain", "@domain" (anyone there) or "user" (at any domain). */
int
table_match_address(const struct table *t, const char *local,
    const char *domain)
{
	char	 buf[SMTP_LOCALPART_MAX + SMTP_DOMAIN_MAX + 2];

	snprintf(buf, sizeof(buf), "%s@%s", local, domain);
	if (table_has(t, buf))
		return 1;
	snprintf(buf, sizeof(buf), "@%s", domain);
	if (table_has(t, buf))
		return 1;
	return table_has(t, local);
}

static int
prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int	 bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[bytes] ^ b[bytes]) & (0xff << (8 - rest))) == 0;
}

/* Entries are addresses or networks: "192.0.2.0/24", "2001:db8::/32". */
int
table_match_netaddr(const struct table *t, const struct sockaddr_storage *ss)
{
	const unsigned char	*addr;
	unsigned char		 net[16];
	char			 buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	size_t			 i;
	long			 bits;
	int			 family, maxbits;

	if (ss->ss_family == AF_INET) {
		addr = (const unsigned char *)
		    &((const struct sockaddr_in *)(const void *)ss)->sin_addr;
		maxbits = 32;
	} else if (ss->ss_family == AF_INET6) {
		addr = (const unsigned char *)
		    &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
		maxbits = 128;
	} else
		return 0;
	family = ss->ss_family;
	for (i = 0; i < t->nitems; i++) {
		snprintf(buf, sizeof(buf), "%s", t->items[i].key);
		bits = maxbits;
		if ((slash = strchr(buf, '/')) != NULL) {
			*slash = '\0';
			bits = strtol(slash + 1, &end, 10);
			if (*end != '\0' || bits < 0 || bits > maxbits)
				continue;
		}
		if (inet_pton(family, buf, net) != 1)
			continue;
		if (prefix_match(addr, net, (int)bits))
			return 1;
	}
	return 0;
}

/* An entry of a file table, sent by the parent (which reads the file). */
void
table_item_received(const char *name, const char *key, const char *value)
{
	struct table	*t;

	if ((t = table_find(name)) == NULL)
		fatalx("contents for unknown table %s", name);
	if (*value != '\0')
		t->kind = TABLE_MAP;
	table_add(t, key, t->kind == TABLE_MAP ? value : NULL);
}

/* Before a file table's new contents arrive (mtactl update table). */
void
table_reset(const char *name)
{
	struct table	*t;

	if ((t = table_find(name)) == NULL)
		fatalx("reset of unknown table %s", name);
	table_clear(t);
}

/*
 * The parent's table messages, the same for every process that holds
 * tables: 1 when handled, 0 when msg is something else, -1 when it did
 * not come from the parent.
 */
int
table_dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	const char	*name, *key, *value;

	if (msg->type != MTAD_MSG_TABLE_ITEM &&
	    msg->type != MTAD_MSG_TABLE_RESET)
		return 0;
	if (strcmp(chan->peer, "parent") != 0)
		return -1;
	name = ipc_get_string(msg);
	if (msg->type == MTAD_MSG_TABLE_RESET) {
		ipc_get_end(msg);
		table_reset(name);
		return 1;
	}
	key = ipc_get_string(msg);
	value = ipc_get_string(msg);
	ipc_get_end(msg);
	table_item_received(name, key, value);
	return 1;
}
