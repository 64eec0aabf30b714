/*
 * mbox delivery: append under an fcntl lock with a "From " line and
 * mboxrd quoting; a failed write is cut back off so the mailbox stays
 * well-formed.  The file was opened (or created for the user) as root.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mtad.h"

enum delivery_result
mda_mbox(const struct action *a, const struct envelope *e,
    const struct passwd *pw, int msgfd, int mboxfd, char *err, size_t errlen)
{
	struct flock	 lock;
	struct stat	 sb;
	char		 date[64];
	time_t		 now = time(NULL);
	struct tm	 tm;
	FILE		*fp;

	(void)a;
	(void)pw;
	memset(&lock, 0, sizeof(lock));
	lock.l_type = F_WRLCK;
	lock.l_whence = SEEK_SET;
	if (fcntl(mboxfd, F_SETLKW, &lock) == -1 || fstat(mboxfd, &sb) == -1) {
		snprintf(err, errlen, "451 4.2.0 mbox lock: %s",
		    strerror(errno));
		return DELIVERY_TEMPFAIL;
	}
	if ((fp = fdopen(mboxfd, "a")) == NULL) {
		snprintf(err, errlen, "451 4.2.0 mbox: %s", strerror(errno));
		return DELIVERY_TEMPFAIL;
	}
	strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y",
	    gmtime_r(&now, &tm));
	fprintf(fp, "From %s %s\n", e->sender[0] ? e->sender :
	    "MAILER-DAEMON", date);
	if (mda_copy_message(msgfd, fp, e, MDA_COPY_MBOX) == -1 ||
	    fputc('\n', fp) == EOF || fflush(fp) == EOF ||
	    fsync(mboxfd) == -1) {
		snprintf(err, errlen, "451 4.2.0 mbox write: %s",
		    strerror(errno));
		/* Cut the partial message off; the error says why anyway. */
		(void)!ftruncate(mboxfd, sb.st_size);
		fclose(fp);
		return DELIVERY_TEMPFAIL;
	}
	fclose(fp);
	return DELIVERY_OK;
}
