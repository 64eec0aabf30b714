/*
 * Content lines travel between the frontend and the engine in batches:
 * one IPC message holds N lines joined by LF (a line never holds one).
 * A message's lines one per message cost a system call and a wake-up
 * each; a batch is sent when it is large, when it holds the message's
 * ".", or at the end of the event loop's turn.
 */
#ifndef LINE_BATCH_H
#define LINE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "ipc.h"

#define LINE_BATCH_MAX	(32 * 1024)	/* under the IPC payload limit */

struct line_batch {
	char		*buf;
	size_t		 len, size;
	uint32_t	 n;
};

void	 line_batch_add(struct line_batch *, const char *);
void	 line_batch_addn(struct line_batch *, const char *, size_t);
void	 line_batch_addblock(struct line_batch *, const char *, size_t,
	    uint32_t);
int	 line_batch_full(const struct line_batch *);
void	 line_batch_send(struct line_batch *, struct ipc_chan *, uint32_t,
	    uint64_t);
void	 line_batch_free(struct line_batch *);
/* A received batch of len bytes holds n lines: 0, or -1. */
int	 line_batch_check(const char *, size_t, uint32_t);
/* A received batch of len bytes holds n lines: 0, and the number of
 * lines before its first "." line (all n when it holds none) in *head,
 * their length (joined by LF) in *headlen; or -1. */
int	 line_batch_scan(const char *, size_t, uint32_t, uint32_t *,
	    size_t *);
/* Split a received batch of len bytes: calls fn for each of its n
 * lines, with the line's length. */
int	 line_batch_each(const char *, size_t, uint32_t,
	    void (*)(void *, const char *, size_t), void *);

#endif
