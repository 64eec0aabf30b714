/*
 * Logging shared by every process of both daemons.
 *
 * One line per event.  In the foreground (-d) lines go to stderr, otherwise
 * to syslog(3).  Every line starts with the process name ("mtad: smtp") so
 * that interleaved output of several processes stays readable.  Lines about
 * a client session carry the session id as their first field, by convention
 * "%016" PRIx64 followed by key=value pairs.
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

#define LOG_PRINTF(f, a)	__attribute__((format(printf, f, a)))

void	log_init(const char *daemon, const char *proc, int foreground,
	    int verbosity);
void	log_procname(const char *proc);
void	log_setverbose(int verbosity);
int	log_getverbose(void);
void	log_warn(const char *, ...) LOG_PRINTF(1, 2);
void	log_warnx(const char *, ...) LOG_PRINTF(1, 2);
void	log_info(const char *, ...) LOG_PRINTF(1, 2);
void	log_debug(const char *, ...) LOG_PRINTF(1, 2);
void	vlog(int priority, const char *, va_list) LOG_PRINTF(2, 0);
void	fatal(const char *, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void	fatalx(const char *, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));

#endif
