/*
 * Allocation wrappers that cannot fail: they log and exit instead.
 *
 * Use them at start-up and for bounded bookkeeping.  Code paths that
 * allocate per client and can be driven by a peer should handle NULL
 * from the plain allocator and answer with a temporary failure.
 */
#ifndef XMALLOC_H
#define XMALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

#endif
