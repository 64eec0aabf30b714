/*
 * Batches of content lines (smtpfd/line_batch.c): what is added comes
 * out line by line with its length, a count that disagrees is refused,
 * a batch split while another is being split keeps its own copy, and
 * the lines before a message's "." are found for the block path.
 */
#include <stdio.h>
#include <string.h>

#include "line_batch.h"
#include "tap.h"

static char	 got[16][64];
static size_t	 got_len[16];
static int	 ngot;

static void
collect(void *arg, const char *line, size_t len)
{
	(void)arg;
	if (ngot < 16) {
		snprintf(got[ngot], sizeof(got[ngot]), "%s", line);
		got_len[ngot] = len;
	}
	ngot++;
}

static int	 inner_ok, outer_ok;

/* Splits another batch from inside a callback of the first. */
static void
nested(void *arg, const char *line, size_t len)
{
	(void)arg;
	if (strcmp(line, "one") == 0 && len == 3) {
		ngot = 0;
		inner_ok = line_batch_each("x\ny", 3, 2, collect, NULL) == 0 &&
		    ngot == 2 && strcmp(got[0], "x") == 0 &&
		    strcmp(got[1], "y") == 0;
	} else	/* the outer batch's next line, intact after the inner */
		outer_ok = strcmp(line, "two") == 0 && len == 3;
}

int
main(void)
{
	struct line_batch	 b;

	memset(&b, 0, sizeof(b));
	line_batch_add(&b, "a");
	line_batch_addn(&b, "xyz", 0);		/* an empty line */
	line_batch_addblock(&b, ".b\nccc", 6, 2);
	line_batch_addn(&b, "dd-not-this", 2);
	ok(b.n == 5, "five lines in the batch");
	ok(b.len == 12 && memcmp(b.buf, "a\n\n.b\nccc\ndd", 12) == 0,
	    "lines joined by LF");

	ngot = 0;
	ok(line_batch_each(b.buf, b.len, b.n, collect, NULL) == 0,
	    "the batch splits");
	ok(ngot == 5, "five lines out");
	ok(strcmp(got[0], "a") == 0 && got_len[0] == 1, "a line");
	ok(strcmp(got[1], "") == 0 && got_len[1] == 0, "an empty line");
	ok(strcmp(got[2], ".b") == 0 && got_len[2] == 2, "a dotted line");
	ok(strcmp(got[3], "ccc") == 0 && got_len[3] == 3,
	    "a line of a block");
	ok(strcmp(got[4], "dd") == 0 && got_len[4] == 2, "the last line");

	ok(line_batch_each("a\nb", 3, 3, collect, NULL) == -1,
	    "more lines said than there are: refused");
	ok(line_batch_each("a\nb\nc", 5, 2, collect, NULL) == -1,
	    "fewer lines said than there are: refused");
	ok(line_batch_each("", 0, 0, collect, NULL) == -1,
	    "no line: refused");
	ngot = 0;
	ok(line_batch_each("", 0, 1, collect, NULL) == 0 && ngot == 1 &&
	    got_len[0] == 0, "one empty line");

	ok(line_batch_each("one\ntwo", 7, 2, nested, NULL) == 0 &&
	    inner_ok && outer_ok, "a batch split inside another's split");

	{
		uint32_t	 head;
		size_t		 headlen;

		ok(line_batch_scan("a\n..\nb", 7, 3, &head, &headlen) == 0 &&
		    head == 3 && headlen == 7,
		    "scan: no \".\" line (a stuffed one is not): all lines");
		ok(line_batch_scan("a\nbc\n.", 6, 3, &head, &headlen) == 0 &&
		    head == 2 && headlen == 4,
		    "scan: the lines before the last line's \".\"");
		ok(line_batch_scan(".", 1, 1, &head, &headlen) == 0 &&
		    head == 0 && headlen == 0, "scan: \".\" alone: none before");
		ok(line_batch_scan("a\n.\nb\n.", 7, 4, &head, &headlen) == 0 &&
		    head == 1 && headlen == 1,
		    "scan: a \".\" inside: the lines before the first");
		ok(line_batch_scan("\n\n.", 3, 3, &head, &headlen) == 0 &&
		    head == 2 && headlen == 1, "scan: empty lines before \".\"");
		ok(line_batch_scan("a\nb", 3, 3, &head, &headlen) == -1,
		    "scan: a count that disagrees is refused");
		ok(line_batch_scan("", 0, 0, &head, &headlen) == -1,
		    "scan: no line: refused");
	}

	line_batch_free(&b);
	ok(b.buf == NULL && b.n == 0, "freed");
	return tap_done();
}
