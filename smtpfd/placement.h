/*
 * Where the engine runs (placement.c): on the frontend's CPU, unless it
 * is busy enough to want one of its own.
 */
#ifndef PLACEMENT_H
#define PLACEMENT_H

#include "ipc.h"

/* frontend: tell the engine the CPU it runs on, when that changed */
void	 placement_tell(struct ipc_chan *);

/* engine */
void	 placement_init(void);
void	 placement_follow(uint32_t);
void	 placement_tick(void);

#endif
