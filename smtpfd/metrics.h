/*
 * Prometheus metrics (SPEC.md 4.4, `metrics on`): the counters of
 * `smtpfctl show filters` and `show stats` in the text exposition format
 * 0.0.4, served over HTTP by the control process.
 *
 * For GET /metrics the control process sends a CTL_REQUEST with command
 * CTL_METRICS to the frontend and to the engine, with a client id of its
 * own (METRICS_CLIENT_BIT set, so that it never meets smtpfctl's), and
 * answers once both have sent their lines and CTL_END: the frontend's
 * families first, then the engine's.  Each process prints whole
 * families (HELP, TYPE, samples), so they never interleave.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stdint.h>

#include "ipc.h"

#define METRICS_CLIENT_BIT	(UINT64_C(1) << 63)

/* The control process. */
void	 metrics_listen(int);
/*
 * A CTL_LINE or CTL_END: 0 when it is not for an HTTP client (smtpfctl's:
 * lib/control.c relays it), 1 when it was taken, -1 when unexpected.
 */
int	 metrics_relay(struct ipc_chan *, struct ipc_msg *);

/* The processes that answer CTL_METRICS. */
void	 metrics_family(struct ipc_chan *, uint64_t, const char *,
	    const char *, const char *);
void	 metrics_sample(struct ipc_chan *, uint64_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
/* A label value escaped for the format (\\, \", \n), to free. */
char	*metrics_label(const char *);

#endif
