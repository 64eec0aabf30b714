/*
 * Memory of the Lua states (lua_filter.h): small blocks are kept on
 * free lists by size class and given again.
 *
 * A data-line hook makes a string a line, and the collector frees them
 * by the hundred in one sweep.  malloc(3)'s per-thread cache holds a
 * few blocks a size; the rest went through its slower bins, and every
 * large request then merged them again (malloc_consolidate): a fifth of
 * the engine's time for a filter that returns each line.  The lists
 * are bounded, so a burst of garbage costs no memory for good.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua_filter.h"

#define MEM_QUANTUM	16
#define MEM_SMALL_MAX	256			/* larger: malloc(3) */
#define MEM_CLASSES	(MEM_SMALL_MAX / MEM_QUANTUM)
#define MEM_LIST_BYTES	(256 * 1024)		/* kept free, per class */

struct free_block {
	struct free_block	*next;
};

static struct free_block	*free_lists[MEM_CLASSES];
static size_t			 free_count[MEM_CLASSES];

/* The class of a size, or -1 for malloc(3)'s own. */
static int
size_class(size_t size)
{
	if (size == 0 || size > MEM_SMALL_MAX)
		return -1;
	return (int)((size - 1) / MEM_QUANTUM);
}

static void *
block_get(int c)
{
	struct free_block	*b;

	if ((b = free_lists[c]) == NULL)
		return malloc((size_t)(c + 1) * MEM_QUANTUM);
	free_lists[c] = b->next;
	free_count[c]--;
	return b;
}

static void
block_put(int c, void *p)
{
	struct free_block	*b = p;

	if (free_count[c] * (size_t)(c + 1) * MEM_QUANTUM >= MEM_LIST_BYTES) {
		free(p);
		return;
	}
	b->next = free_lists[c];
	free_lists[c] = b;
	free_count[c]++;
}

/*
 * As a lua_Alloc: osize is the block's size when ptr is not NULL (Lua
 * tells it exactly), so a block's class is known without a header.
 */
void *
lua_mem_realloc(void *ptr, size_t osize, size_t nsize)
{
	int	 oc = ptr != NULL ? size_class(osize) : -1;
	int	 nc = size_class(nsize);
	void	*p;

	if (nsize == 0) {
		if (oc >= 0)
			block_put(oc, ptr);
		else
			free(ptr);
		return NULL;
	}
	if (ptr != NULL && oc == nc && oc >= 0)
		return ptr;		/* the same class: it fits */
	if (ptr != NULL && oc < 0 && nc < 0) {
		if ((p = realloc(ptr, nsize)) == NULL && nsize <= osize)
			return ptr;	/* Lua counts on a shrink */
		return p;
	}
	p = nc >= 0 ? block_get(nc) : malloc(nsize);
	if (p == NULL && ptr != NULL && nsize <= osize)
		return ptr;	/* the same: a bigger block serves */
	if (p == NULL || ptr == NULL)
		return p;
	memcpy(p, ptr, osize < nsize ? osize : nsize);
	if (oc >= 0)
		block_put(oc, ptr);
	else
		free(ptr);
	return p;
}
