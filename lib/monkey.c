/*
 * The monkey's dice (see monkey.h).  Each process draws from its own
 * sequence, seeded by MONKEY_SEED and its pid, so a failing run can be
 * told apart and a rate applies to every process alike.
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "monkey.h"

#ifdef WITH_MONKEY
#define MONKEY_MAX_SITES	64

static struct {
	char		 name[32];
	unsigned long	 rate;		/* per million */
} sites[MONKEY_MAX_SITES];
static size_t		 nsites;
static int		 initialized;
static unsigned long	 rate;		/* per million */
static unsigned long	 stall_max = 2000;
static uint64_t		 state;
static pid_t		 seeded_pid;

/* Per 10000, with decimals ("0.05"): per million. */
static unsigned long
monkey_rate(const char *s)
{
	double	 d = strtod(s, NULL);

	return d > 0 ? (unsigned long)(d * 100 + 0.5) : 0;
}

/*
 * MONKEY_SITES: "site=rate,site=rate".  Read when the program starts,
 * before anything can clear the environment (mtad's delivery workers
 * do, before they write the maildir).
 */
__attribute__((constructor)) static void
monkey_init(void)
{
	const char	*r = getenv("MONKEY_RATE");
	const char	*s = getenv("MONKEY_SEED");
	const char	*p = getenv("MONKEY_SITES");
	const char	*m = getenv("MONKEY_STALL_MS");
	size_t		 len;

	initialized = 1;
	rate = r ? monkey_rate(r) : 0;
	if (m != NULL && strtoul(m, NULL, 10) > 0)
		stall_max = strtoul(m, NULL, 10);
	seeded_pid = getpid();
	state = (s ? strtoull(s, NULL, 10) : 1) ^
	    ((uint64_t)seeded_pid << 32) ^ 0x9e3779b97f4a7c15ULL;
	while (p != NULL && *p != '\0' && nsites < MONKEY_MAX_SITES) {
		len = strcspn(p, "=,");
		if (p[len] == '=' && len < sizeof(sites[0].name)) {
			memcpy(sites[nsites].name, p, len);
			sites[nsites].name[len] = '\0';
			sites[nsites++].rate = monkey_rate(p + len + 1);
		}
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
	}
}

static uint64_t
monkey_next(void)
{
	/* A forked process (a delivery worker) draws its own numbers. */
	if (getpid() != seeded_pid) {
		seeded_pid = getpid();
		state ^= ((uint64_t)seeded_pid << 32) | (uint64_t)seeded_pid;
		if (state == 0)
			state = 0x9e3779b97f4a7c15ULL;
	}
	/* xorshift64*: quick, and good enough for dice */
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 0x2545f4914f6cdd1dULL;
}

int
monkey_strikes(const char *site)
{
	unsigned long	 r;
	size_t		 i;

	if (!initialized)
		monkey_init();
	r = rate;
	for (i = 0; i < nsites; i++)
		if (strcmp(sites[i].name, site) == 0) {
			r = sites[i].rate;
			break;
		}
	if (r == 0 || monkey_next() % 1000000 >= r)
		return 0;
	log_info("monkey: %s fails", site);
	return 1;
}

/* How long an io.stall lasts: 1 ms to MONKEY_STALL_MS. */
unsigned int
monkey_stall_ms(void)
{
	if (!initialized)
		monkey_init();
	return (unsigned int)(1 + monkey_next() % stall_max);
}
#endif
