/*
 * Logging: stderr in the foreground, syslog otherwise.
 *
 * log_warn() and fatal() append strerror(errno); the "x" variants do not.
 * fatal() is for start-up errors and internal inconsistencies only: a
 * daemon must not die because a peer sent it something unexpected, unless
 * that peer is one of its own processes (see ipc.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static int	 log_foreground = 1;
static int	 log_verbosity;
static char	 log_daemon[32] = "?";
static char	 log_name[64] = "?";

/*
 * In the foreground every line says "daemon: process: ..." because several
 * daemons may share one terminal; syslog already carries the daemon name.
 */
void
log_init(const char *daemon, const char *proc, int foreground, int verbosity)
{
	log_foreground = foreground;
	log_verbosity = verbosity;
	snprintf(log_daemon, sizeof(log_daemon), "%s", daemon);
	log_procname(proc);
	if (!foreground)
		openlog(daemon, LOG_PID | LOG_NDELAY, LOG_MAIL);
	tzset();
}

void
log_procname(const char *proc)
{
	if (log_foreground)
		snprintf(log_name, sizeof(log_name), "%s: %s", log_daemon,
		    proc);
	else
		snprintf(log_name, sizeof(log_name), "%s", proc);
}

void
log_setverbose(int verbosity)
{
	log_verbosity = verbosity;
}

int
log_getverbose(void)
{
	return log_verbosity;
}

void
vlog(int priority, const char *fmt, va_list ap)
{
	char	 line[8192];
	int	 saved_errno = errno;

	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_foreground) {
		fprintf(stderr, "%s: %s\n", log_name, line);
		fflush(stderr);
	} else
		syslog(priority, "%s: %s", log_name, line);
	errno = saved_errno;
}

static void
vlog_errno(int priority, const char *fmt, va_list ap)
{
	char	 line[8192];
	int	 saved_errno = errno;

	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_foreground) {
		fprintf(stderr, "%s: %s: %s\n", log_name, line,
		    strerror(saved_errno));
		fflush(stderr);
	} else
		syslog(priority, "%s: %s: %s", log_name, line,
		    strerror(saved_errno));
	errno = saved_errno;
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog_errno(LOG_ERR, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbosity < 1)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog_errno(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
