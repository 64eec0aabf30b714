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
	line_batch_addblock(b, line, len, 1);
}

/* n lines of len bytes joined by LF (no LF at the end). */
void
line_batch_addblock(struct line_batch *b, const char *lines, size_t len,
    uint32_t n)
{
	if (n == 0)
		return;
	if (b->len + len + 1 > b->size) {
		b->size = (b->len + len + 1) * 2;
		b->buf = xreallocarray(b->buf, b->size, 1);
	}
	if (b->n > 0)
		b->buf[b->len++] = '\n';
	memcpy(b->buf + b->len, lines, len);
	b->len += len;
	b->n += n;
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

int
line_batch_check(const char *lines, size_t len, uint32_t n)
{
	const char	*p, *end = lines + len;
	uint32_t	 count = 1;

	for (p = lines; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
		count++;
	return n == 0 || count != n ? -1 : 0;
}

/*
 * The message's "." is the last line of its batch (the frontend sends
 * a batch when it holds one), but nothing here counts on it: the lines
 * before the first "." may go on as a block, the rest one by one.
 */
int
line_batch_scan(const char *lines, size_t len, uint32_t n, uint32_t *head,
    size_t *headlen)
{
	const char	*p = lines, *end = lines + len, *lf;
	uint32_t	 count = 0;
	int		 dot = 0;

	*head = n;
	*headlen = len;
	for (;;) {
		if ((lf = memchr(p, '\n', (size_t)(end - p))) == NULL)
			lf = end;
		if (!dot && lf - p == 1 && *p == '.') {
			dot = 1;
			*head = count;
			*headlen = p == lines ? 0 : (size_t)(p - lines) - 1;
		}
		count++;
		if (lf == end)
			break;
		p = lf + 1;
	}
	return n == 0 || count != n ? -1 : 0;
}

/*
 * The lines are split in a copy (the callbacks take NUL-terminated
 * strings), kept from one batch to the next: a batch a message costs no
 * allocation.  A callback that receives another batch meanwhile gets a
 * copy of its own.
 */
int
line_batch_each(const char *lines, size_t len, uint32_t n,
    void (*fn)(void *, const char *, size_t), void *arg)
{
	static char	*spare;
	static size_t	 spare_size;
	static int	 spare_busy;
	char		*copy, *q, *lf;

	if (line_batch_check(lines, len, n) == -1)
		return -1;
	if (spare_busy)
		copy = xmalloc(len + 1);
	else {
		if (spare_size < len + 1) {
			free(spare);
			spare_size = len + 1 < 4096 ? 4096 : len + 1;
			spare = xmalloc(spare_size);
		}
		copy = spare;
		spare_busy = 1;
	}
	memcpy(copy, lines, len);
	copy[len] = '\0';
	for (q = copy; n > 0; n--) {
		if ((lf = memchr(q, '\n', (size_t)(copy + len - q))) == NULL)
			lf = copy + len;
		*lf = '\0';
		fn(arg, q, (size_t)(lf - q));
		q = lf + 1;
	}
	if (copy == spare)
		spare_busy = 0;
	else
		free(copy);
	return 0;
}
