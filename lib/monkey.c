/*
 * The monkey's dice (see monkey.h).  Each process draws from its own
 * sequence, seeded by MONKEY_SEED and its pid, so a failing run can be
 * told apart and a rate applies to every process alike.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "monkey.h"

#ifdef WITH_MONKEY
int
monkey_strikes(const char *site)
{
	static int		 initialized;
	static unsigned long	 rate;
	static uint64_t		 state;

	if (!initialized) {
		const char	*r = getenv("MONKEY_RATE");
		const char	*s = getenv("MONKEY_SEED");

		initialized = 1;
		rate = r ? strtoul(r, NULL, 10) : 0;
		state = (s ? strtoull(s, NULL, 10) : 1) ^
		    ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
	}
	if (rate == 0)
		return 0;
	/* xorshift64*: quick, and good enough for dice */
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	if ((state * 0x2545f4914f6cdd1dULL) % 10000 >= rate)
		return 0;
	log_info("monkey: %s fails", site);
	return 1;
}
#endif
