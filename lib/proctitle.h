/*
 * Process titles, so that ps(1) shows "mtad: smtp" for each process.
 */
#ifndef PROCTITLE_H
#define PROCTITLE_H

/* Call first thing in main(); argv strings are clobbered by set. */
void	proctitle_init(int, char **);
void	proctitle_set(const char *, ...) __attribute__((format(printf, 1, 2)));

#endif
