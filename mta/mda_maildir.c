/*
 * maildir delivery: write into tmp/, fsync, link into new/, fsync the
 * directory; a reader never sees half a message.
 *
 * The file name is made from the envelope id, so that a delivery retried
 * after a crash (between the link and the removal of the envelope) finds
 * its earlier self in new/ or cur/ and is not delivered twice.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "monkey.h"
#include "mtad.h"

static enum delivery_result
fail(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "451 4.2.0 %s %s: %s", what, path,
	    strerror(errno));
	return DELIVERY_TEMPFAIL;
}

/* In new/ under its name, or in cur/ with a ":2,flags" suffix. */
static int
already_delivered(const char *dir, const char *name)
{
	char		 path[PATH_MAX + 160];
	struct dirent	*de;
	DIR		*d;
	size_t		 len = strlen(name);
	int		 found = 0;

	snprintf(path, sizeof(path), "%s/new/%s", dir, name);
	if (access(path, F_OK) == 0)
		return 1;
	snprintf(path, sizeof(path), "%s/cur", dir);
	if ((d = opendir(path)) == NULL)
		return 0;
	while (!found && (de = readdir(d)) != NULL)
		found = strncmp(de->d_name, name, len) == 0 &&
		    (de->d_name[len] == '\0' || de->d_name[len] == ':');
	closedir(d);
	return found;
}

enum delivery_result
mda_maildir(const struct action *a, const struct envelope *e,
    const struct passwd *pw, int msgfd, char *err, size_t errlen)
{
	char		 dir[PATH_MAX], sub[PATH_MAX], tmp[PATH_MAX + 64];
	char		 new[PATH_MAX + 64], name[128];
	FILE		*fp;
	int		 fd;
	static const char *const subdirs[] = { "tmp", "new", "cur" };
	size_t		 i;

	if (expand_format(dir, sizeof(dir), a->arg, e, pw, EXPAND_PATH) == -1) {
		snprintf(err, errlen, "550 5.3.5 bad maildir path %s", a->arg);
		return DELIVERY_PERMFAIL;
	}
	for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir,
		    subdirs[i]) >= sizeof(sub))
			goto toolong;
		if (mda_mkdirs(sub) == -1)
			return fail(err, errlen, "mkdir", sub);
	}
	if ((size_t)snprintf(name, sizeof(name), "%lld.E%016" PRIx64 ".%s",
	    (long long)e->created, e->id, mtad_conf->hostname) >=
	    sizeof(name) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, name) >=
	    sizeof(tmp) ||
	    (size_t)snprintf(new, sizeof(new), "%s/new/%s", dir, name) >=
	    sizeof(new))
		goto toolong;
	if (already_delivered(dir, name))
		return DELIVERY_OK;
	unlink(tmp);	/* what a crashed attempt left */
	if ((fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1)
		return fail(err, errlen, "open", tmp);
	if ((fp = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(tmp);
		return fail(err, errlen, "fdopen", tmp);
	}
	if (MONKEY("maildir.write", EDQUOT) ||
	    mda_copy_message(msgfd, fp, e, MDA_COPY_PLAIN) == -1 ||
	    fsync(fd) == -1) {
		fail(err, errlen, "write", tmp);
		fclose(fp);
		unlink(tmp);
		return DELIVERY_TEMPFAIL;
	}
	if (fclose(fp) == EOF) {
		unlink(tmp);
		return fail(err, errlen, "close", tmp);
	}
	if (link(tmp, new) == -1 && errno != EEXIST) {
		unlink(tmp);
		return fail(err, errlen, "link", new);
	}
	unlink(tmp);
	if ((size_t)snprintf(sub, sizeof(sub), "%s/new", dir) >= sizeof(sub))
		return DELIVERY_OK;	/* cannot happen: new/ was created */
	if ((fd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(fd) == -1) {
		/* In new/ already: retrying could deliver it twice. */
		snprintf(err, errlen, "fsync %s: %s", sub, strerror(errno));
	}
	if (fd != -1)
		close(fd);
	return DELIVERY_OK;
toolong:
	snprintf(err, errlen, "550 5.3.5 maildir path too long");
	return DELIVERY_PERMFAIL;
}
