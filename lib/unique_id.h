/*
 * Identifiers for sessions, messages and filter calls: never 0, never
 * the same twice in a process, different from one process and one run
 * to the next.  Not secrets: one identifier gives away the ones that
 * follow.  Cheap: one getrandom(2) per process, not one per identifier
 * (glibc's arc4random() makes a system call each time).
 */
#ifndef UNIQUE_ID_H
#define UNIQUE_ID_H

#include <stdint.h>

uint64_t	unique_id(void);

#endif
