/*
 * Identifiers for sessions, messages and filter calls: never 0, never
 * the same twice in a process, and not guessable from the previous
 * one.  Cheap: one getrandom(2) per process, not one per identifier
 * (glibc's arc4random() makes a system call each time).
 */
#ifndef UNIQUE_ID_H
#define UNIQUE_ID_H

#include <stdint.h>

uint64_t	unique_id(void);

#endif
