/*
 * Unique identifiers (unique_id.h).
 *
 * splitmix64 over a counter that starts at a random point: the mixing
 * function is a bijection of 64-bit integers, so distinct counter
 * values give distinct identifiers.  It can be inverted: nothing here
 * may serve as a key, a nonce or a secret.  The daemons' processes are
 * exec'd, not just forked, so each seeds its own counter.
 */
#include <sys/random.h>

#include "log.h"
#include "unique_id.h"

static uint64_t	counter;
static int	seeded;

uint64_t
unique_id(void)
{
	uint64_t	 z;

	if (!seeded) {
		if (getrandom(&counter, sizeof(counter), 0) !=
		    sizeof(counter))
			fatal("getrandom");
		seeded = 1;
	}
	do {
		z = (counter += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
	} while (z == 0);
	return z;
}
