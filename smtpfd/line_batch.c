/*
 * Batches of content lines (line_batch.h).
 */
#include <stdlib.h>
#include <string.h>

#include "line_batch.h"
#include "xmalloc.h"

void
line_batch_add(struct line_batch *b, const char *line)
{
	line_batch_addn(b, line, strlen(line));
}

/* A line of len bytes, not NUL-terminated (a client's line in place). */
void
line_batch_addn(struct line_batch *b, const char *line, size_t len)
{
	if (b->len + len + 1 > b->size) {
		b->size = (b->len + len + 1) * 2;
		b->buf = xreallocarray(b->buf, b->size, 1);
	}
	if (b->n > 0)
		b->buf[b->len++] = '\n';
	memcpy(b->buf + b->len, line, len);
	b->len += len;
	b->n++;
}

int
line_batch_full(const struct line_batch *b)
{
	return b->len >= LINE_BATCH_MAX;
}

/* One message: q id, u number of lines, s the lines joined by LF. */
void
line_batch_send(struct line_batch *b, struct ipc_chan *chan, uint32_t type,
    uint64_t id)
{
	if (b->n == 0)
		return;
	if (b->len == b->size)
		b->buf = xreallocarray(b->buf, ++b->size, 1);
	b->buf[b->len] = '\0';
	ipc_begin(chan, type, -1);
	ipc_add_u64(chan, id);
	ipc_add_u32(chan, b->n);
	ipc_add_string(chan, b->buf);
	ipc_end(chan);
	b->len = 0;
	b->n = 0;
}

void
line_batch_free(struct line_batch *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

/* -1 when the count and the lines disagree (a malformed message). */
int
line_batch_each(const char *lines, uint32_t n,
    void (*fn)(void *, const char *), void *arg)
{
	char		*copy, *p, *lf;
	uint32_t	 i, count = 1;

	for (p = (char *)(uintptr_t)lines; (p = strchr(p, '\n')) != NULL; p++)
		count++;
	if (n == 0 || count != n)
		return -1;
	copy = xstrdup(lines);
	for (i = 0, p = copy; i < n; i++) {
		if ((lf = strchr(p, '\n')) != NULL)
			*lf = '\0';
		fn(arg, p);
		if (lf != NULL)
			p = lf + 1;
	}
	free(copy);
	return 0;
}
