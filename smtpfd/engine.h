/*
 * The engine process's own parts: chains, sessions, and the runner's
 * entry points (filter.c), between engine.c and filter.c.
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#include "filter.h"

/* A generation of filters and chains: one per configuration. */
struct generation {
	TAILQ_HEAD(, filter)	 filters;
	TAILQ_HEAD(, chain)	 chains;
	size_t			 refs;		/* sessions on it */
	struct smtpfd_conf	*conf;		/* its statements (a ref) */
	int			 retired;	/* a reload replaced it */
};

struct chain {
	TAILQ_ENTRY(chain)	 entry;
	char			*name;
	struct filter		**filters;
	size_t			 nfilters;
	struct generation	*gen;
};

/* engine.c */
void	 engine_send_decision(struct fsession *, enum filter_phase,
	    const struct decision *, int);
void	 engine_send_line(struct fsession *, const char *);
void	 engine_send_lines(struct fsession *, const char *, size_t,
	    uint32_t);
void	 engine_report_all(struct fsession *, struct filter *, const char *);
void	 engine_client_dot(struct fsession *);

/* filter.c */
void	 filter_query_start(struct fsession *, enum filter_phase,
	    const char *);
void	 filter_data_start_line(struct fsession *, const char *);
int	 filter_data_start_block(struct fsession *, const char *, size_t,
	    uint32_t);
void	 filter_data_flush(struct fsession *);
void	 filter_session_end(struct fsession *);
void	 filter_data_abort(struct fsession *);

#endif
