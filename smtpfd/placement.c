/*
 * Where the engine runs.
 *
 * The engine works for the frontend: each question, each batch of
 * content lines goes over and comes back, about four hand-overs a
 * message.  When the two run on different CPUs, each hand-over wakes
 * the other CPU (an inter-processor interrupt; on a virtual machine, an
 * exit to the hypervisor and often a halted virtual CPU to start): on
 * the 2-CPU development machine, Lua filters kept 75% of the empty
 * chain's rate with the engine held on the other CPU, 100% on the same
 * (bench/README.md).  The kernel puts a woken process on an idle CPU
 * when it can, so left alone the engine lands on either.
 *
 * So the frontend tells the engine which CPU it runs on, when that
 * changes (under load, a few times a second: one message and one
 * sched_setaffinity() each), and the engine keeps to it.  An engine
 * busy more than half of the time (heavy scripts, many exec filters) is
 * better off on a CPU of its own than sharing the frontend's: it then
 * runs on any, until its load falls under a quarter.  The rule looks at
 * the engine's load alone, not the pair's: at 10 sessions the frontend
 * (75%) and the engine (18%) together fill the CPU they share, and
 * still go faster than apart.  Only CPUs the engine was allowed at
 * start are used: an operator's taskset(1) or cpuset stands.
 */
#include <sys/types.h>

#include <sched.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "placement.h"
#include "smtpfd.h"

#define LOAD_PERIOD	1	/* seconds between looks at the load */
#define LOAD_BUSY	50	/* per cent of a CPU: on any CPU */
#define LOAD_IDLE	25	/* ... and back to the frontend's */

/*
 * The frontend.
 */
static int	 told_cpu = -1;

void
placement_tell(struct ipc_chan *engine)
{
	int	 cpu;

	if ((cpu = sched_getcpu()) == -1 || cpu == told_cpu ||
	    cpu >= CPU_SETSIZE)
		return;
	told_cpu = cpu;
	ipc_begin(engine, SMTPFD_MSG_FRONTEND_CPU, -1);
	ipc_add_u32(engine, (uint32_t)cpu);
	ipc_end_lazy(engine);	/* with what follows, not a wake-up of its own */
}

/*
 * The engine.
 */
static cpu_set_t	 allowed;	/* at start */
static int		 frontend_cpu = -1;
static int		 placed_cpu = -1; /* kept to; -1: any allowed */
static int		 busy;
static struct timespec	 load_wall, load_cpu;	/* at the last look */

static void
place(void)
{
	cpu_set_t	 set;
	int		 cpu = -1;

	if (!busy && frontend_cpu != -1 && CPU_ISSET(frontend_cpu, &allowed))
		cpu = frontend_cpu;
	if (cpu == placed_cpu)
		return;
	if (cpu == -1)
		set = allowed;
	else {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
	}
	if (sched_setaffinity(0, sizeof(set), &set) == -1) {
		log_warn("engine: sched_setaffinity");
		return;
	}
	/* Said when it changes, not at each move of the frontend. */
	if (cpu == -1)
		log_debug("busy: on any CPU");
	else if (placed_cpu == -1)
		log_debug("keeps to the frontend's CPU (%d now)", cpu);
	placed_cpu = cpu;
}

/* Milliseconds from a to b. */
static long
ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000 +
	    (b->tv_nsec - a->tv_nsec) / 1000000;
}

/* Milliseconds on clock since *then, which becomes now. */
static long
ms_since(struct timespec *then, clockid_t clock)
{
	struct timespec	 now;
	long		 ms;

	clock_gettime(clock, &now);
	ms = ms_between(then, &now);
	*then = now;
	return ms;
}

/* Once a second at most: busy, or idle again? */
static void
load_check(void)
{
	long	 wall, cpu;

	wall = ms_since(&load_wall, CLOCK_MONOTONIC_COARSE);
	cpu = ms_since(&load_cpu, CLOCK_PROCESS_CPUTIME_ID);
	if (wall <= 0)
		return;
	if (!busy && cpu * 100 > wall * LOAD_BUSY)
		busy = 1;
	else if (busy && cpu * 100 < wall * LOAD_IDLE)
		busy = 0;
	place();
}

void
placement_init(void)
{
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == -1) {
		log_warn("engine: sched_getaffinity");
		CPU_ZERO(&allowed);	/* then it stays where it is */
	}
	ms_since(&load_wall, CLOCK_MONOTONIC_COARSE);
	ms_since(&load_cpu, CLOCK_PROCESS_CPUTIME_ID);
}

/* The frontend runs on this CPU now. */
void
placement_follow(uint32_t cpu)
{
	frontend_cpu = (int)cpu;
	place();
}

/*
 * At each message from the frontend: a look at the load once a second
 * (none while nothing comes: an idle engine needs no timer; the first
 * look after a pause sees the pause, and the engine follows again).
 */
void
placement_tick(void)
{
	struct timespec	 now;

	if (frontend_cpu == -1)
		return;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);	/* a few a message */
	if (ms_between(&load_wall, &now) >= LOAD_PERIOD * 1000)
		load_check();
}
