/*
 * The filesystem queue backend.  Relative to the queue directory (the
 * queue process's chroot):
 *
 *	incoming/<msgid>/		a message being received
 *	incoming/<msgid>/message	its content, written by the smtp process
 *	queue/<msgid>/message		a committed message
 *	queue/<msgid>/<evpid>		one envelope per recipient
 *
 * A message becomes visible only by the atomic rename of its directory
 * from incoming/ to queue/, after the content, every envelope and the
 * directory entries are durable (see fs_message_stage()).  A crash before the rename leaves
 * an orphan in incoming/, removed at the next start; after it, a complete
 * message.  So nothing that got 250 is lost, and nothing that did not is
 * delivered.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "monkey.h"
#include "mtad.h"

#define ENVELOPE_MAX	(8 * 1024)

static int	 fs_init(void);
static int	 fs_message_create(uint32_t *);
static int	 fs_message_fd(uint32_t);
static int	 fs_message_commit(uint32_t, const struct envelope *, size_t);
static int	 fs_message_stage(uint32_t, const struct envelope *, size_t);
static int	 fs_sync(void);
static int	 fs_message_publish(uint32_t);
static int	 fs_message_unpublish(uint32_t);
static int	 fs_message_delete(uint32_t);
static int	 fs_envelope_delete(uint64_t);
static int	 fs_envelope_get(uint64_t, struct envelope *);
static int	 fs_walk(int (*)(uint64_t, void *), void *);
static int	 fs_message_open(uint32_t);
static int	 fs_envelope_update(const struct envelope *);

const struct queue_backend queue_fs_backend = {
	.name = "fs",
	.init = fs_init,
	.message_create = fs_message_create,
	.message_fd = fs_message_fd,
	.message_commit = fs_message_commit,
	.message_stage = fs_message_stage,
	.sync = fs_sync,
	.message_publish = fs_message_publish,
	.message_unpublish = fs_message_unpublish,
	.message_delete = fs_message_delete,
	.envelope_delete = fs_envelope_delete,
	.envelope_get = fs_envelope_get,
	.walk = fs_walk,
	.message_open = fs_message_open,
	.envelope_update = fs_envelope_update,
};

static int
fsync_path(const char *path)
{
	int	 fd, r;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/* Remove a message directory and what is in it (one level deep). */
static int
remove_dir(const char *path)
{
	char		 file[PATH_MAX];
	struct dirent	*de;
	DIR		*dir;

	if ((dir = opendir(path)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;	/* ".<evpid>" leftovers of an update go too */
		snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
		if (unlink(file) == -1 && errno != ENOENT) {
			log_warn("unlink %s", file);
			closedir(dir);
			return -1;
		}
	}
	closedir(dir);
	if (rmdir(path) == -1 && errno != ENOENT) {
		log_warn("rmdir %s", path);
		return -1;
	}
	return 0;
}

/*
 * What a crash in the middle of queue work leaves in queue/: an envelope
 * update killed half-way (".EVPID"), a message whose last envelope was
 * removed but not the directory (delivered: nothing to keep).
 */
static void
remove_leftovers(void)
{
	char		 path[PATH_MAX];
	struct dirent	*de, *ee;
	DIR		*qd, *md;
	size_t		 envelopes;

	if ((qd = opendir("queue")) == NULL)
		return;
	while ((de = readdir(qd)) != NULL) {
		if (strlen(de->d_name) != 8)
			continue;
		snprintf(path, sizeof(path), "queue/%s", de->d_name);
		if ((md = opendir(path)) == NULL)
			continue;
		envelopes = 0;
		while ((ee = readdir(md)) != NULL) {
			if (strlen(ee->d_name) == 16)
				envelopes++;
			if (ee->d_name[0] != '.' || strlen(ee->d_name) != 17)
				continue;
			snprintf(path, sizeof(path), "queue/%s/%s", de->d_name,
			    ee->d_name);
			unlink(path);
		}
		closedir(md);
		if (envelopes == 0) {
			snprintf(path, sizeof(path), "queue/%s", de->d_name);
			log_info("removing %s: every envelope was done", path);
			remove_dir(path);
		}
	}
	closedir(qd);
}

static int
fs_init(void)
{
	char		 path[PATH_MAX];
	struct dirent	*de;
	DIR		*dir;
	size_t		 orphans = 0;

	if ((mkdir("incoming", 0700) == -1 && errno != EEXIST) ||
	    (mkdir("queue", 0700) == -1 && errno != EEXIST)) {
		log_warn("queue directories");
		return -1;
	}
	if ((dir = opendir("incoming")) == NULL) {
		log_warn("opendir incoming");
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "incoming/%s", de->d_name);
		if (remove_dir(path) == 0)
			orphans++;
	}
	closedir(dir);
	if (orphans)
		log_info("removed %zu incomplete message%s left by a crash",
		    orphans, orphans == 1 ? "" : "s");
	remove_leftovers();
	return 0;
}

static int
fs_message_create(uint32_t *msgid)
{
	char	 path[64], queued[64];
	int	 tries;

	for (tries = 0; tries < 100; tries++) {
		if ((*msgid = arc4random()) == 0)
			continue;
		snprintf(queued, sizeof(queued), "queue/%08" PRIx32, *msgid);
		if (access(queued, F_OK) == 0)
			continue;
		snprintf(path, sizeof(path), "incoming/%08" PRIx32, *msgid);
		if (MONKEY("queue.create", ENOSPC)) {
			log_warn("mkdir %s", path);
			return -1;
		}
		if (mkdir(path, 0700) == 0)
			return 0;
		if (errno != EEXIST) {
			log_warn("mkdir %s", path);
			return -1;
		}
	}
	log_warnx("no free message id after %d tries", tries);
	return -1;
}

static int
fs_message_fd(uint32_t msgid)
{
	char	 path[64];
	int	 fd;

	snprintf(path, sizeof(path), "incoming/%08" PRIx32 "/message", msgid);
	if (MONKEY("queue.message", EIO) ||
	    (fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
	    0600)) == -1) {
		log_warn("open %s", path);
		return -1;
	}
	return fd;
}

static int
write_envelope(const char *dir, const struct envelope *e)
{
	char	 path[PATH_MAX], buf[ENVELOPE_MAX];
	int	 fd, len;

	if ((len = envelope_dump(e, buf, sizeof(buf))) == -1) {
		log_warnx("envelope %016" PRIx64 " too large", e->id);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%016" PRIx64, dir, e->id);
	if ((fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
	    0600)) == -1) {
		log_warn("open %s", path);
		return -1;
	}
	if (MONKEY("queue.envelope", ENOSPC) ||
	    write(fd, buf, (size_t)len) != len) {
		log_warn("write %s", path);
		close(fd);
		return -1;
	}
	if (close(fd) == -1) {
		log_warn("close %s", path);
		return -1;
	}
	return 0;
}

/*
 * Committing is three steps, so that messages that arrive together share
 * the expensive part (the group commit):
 *
 *	stage	each message: write its envelopes beside its content
 *	sync	once: syncfs() makes every staged byte and directory entry
 *		of the queue's filesystem durable
 *	publish	each message: rename incoming/MSGID to queue/MSGID
 *	sync	once more: the renames are durable
 *
 * Only then is 250 sent.  syncfs() flushes the whole filesystem the spool
 * is on: give the spool a filesystem of its own on a busy machine.
 */
static int
fs_message_stage(uint32_t msgid, const struct envelope *envs, size_t n)
{
	char	 incoming[64];
	size_t	 i;

	snprintf(incoming, sizeof(incoming), "incoming/%08" PRIx32, msgid);
	for (i = 0; i < n; i++)
		if (write_envelope(incoming, &envs[i]) == -1)
			return -1;
	return 0;
}

static int
fs_sync(void)
{
	int	 fd, r;

	if ((fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("open queue directory");
		return -1;
	}
	if ((r = MONKEY("queue.sync", EIO) ? -1 : syncfs(fd)) == -1)
		log_warn("syncfs");
	close(fd);
	return r;
}

static int
fs_message_publish(uint32_t msgid)
{
	char	 incoming[64], queued[64];

	snprintf(incoming, sizeof(incoming), "incoming/%08" PRIx32, msgid);
	snprintf(queued, sizeof(queued), "queue/%08" PRIx32, msgid);
	if (MONKEY("queue.publish", EIO) || rename(incoming, queued) == -1) {
		log_warn("rename %s to %s", incoming, queued);
		return -1;
	}
	return 0;
}

/* Undo a publish that could not be made durable. */
static int
fs_message_unpublish(uint32_t msgid)
{
	char	 incoming[64], queued[64];

	snprintf(incoming, sizeof(incoming), "incoming/%08" PRIx32, msgid);
	snprintf(queued, sizeof(queued), "queue/%08" PRIx32, msgid);
	if (rename(queued, incoming) == -1) {
		log_warn("rename %s back to %s", queued, incoming);
		return -1;
	}
	return 0;
}

/* One message alone through the three steps (bounces). */
static int
fs_message_commit(uint32_t msgid, const struct envelope *envs, size_t n)
{
	if (fs_message_stage(msgid, envs, n) == -1 || fs_sync() == -1 ||
	    fs_message_publish(msgid) == -1)
		return -1;
	if (fs_sync() == -1)
		return fs_message_unpublish(msgid) == 0 ? -1 :
		    QUEUE_COMMIT_UNSURE;
	return 0;
}

static int
fs_message_delete(uint32_t msgid)
{
	char	 path[64];

	snprintf(path, sizeof(path), "incoming/%08" PRIx32, msgid);
	if (remove_dir(path) == -1)
		return -1;
	snprintf(path, sizeof(path), "queue/%08" PRIx32, msgid);
	return remove_dir(path);
}

static int
fs_envelope_delete(uint64_t evpid)
{
	char		 dir[64], path[96];
	struct dirent	*de;
	DIR		*d;
	int		 left = 0;

	snprintf(dir, sizeof(dir), "queue/%08" PRIx32, envelope_msgid(evpid));
	snprintf(path, sizeof(path), "%s/%016" PRIx64, dir, evpid);
	if (MONKEY("queue.delete", EIO) || unlink(path) == -1) {
		log_warn("unlink %s", path);
		return -1;
	}
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == 16)
			left++;
	closedir(d);
	return left ? 0 : remove_dir(dir);
}

static int
fs_envelope_get(uint64_t evpid, struct envelope *e)
{
	char	 path[96], buf[ENVELOPE_MAX];
	ssize_t	 n;
	int	 fd;

	snprintf(path, sizeof(path), "queue/%08" PRIx32 "/%016" PRIx64,
	    envelope_msgid(evpid), evpid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0 || n == sizeof(buf) || envelope_load(e, buf, (size_t)n) == -1 ||
	    e->id != evpid) {
		log_warnx("%s: not a valid envelope", path);
		return -1;
	}
	return 0;
}

/* Calls cb for every queued envelope; stops when cb returns -1. */
static int
fs_walk(int (*cb)(uint64_t, void *), void *arg)
{
	char		 path[64], *end;
	struct dirent	*de, *ee;
	DIR		*qd, *md;
	uint64_t	 evpid;
	int		 r = 0;

	if ((qd = opendir("queue")) == NULL)
		return -1;
	while (r == 0 && (de = readdir(qd)) != NULL) {
		if (strlen(de->d_name) != 8)
			continue;
		snprintf(path, sizeof(path), "queue/%s", de->d_name);
		if ((md = opendir(path)) == NULL)
			continue;
		while (r == 0 && (ee = readdir(md)) != NULL) {
			if (strlen(ee->d_name) != 16)
				continue;
			evpid = strtoull(ee->d_name, &end, 16);
			if (*end == '\0')
				r = cb(evpid, arg);
		}
		closedir(md);
	}
	closedir(qd);
	return r;
}

/* The committed content, read-only, for delivery. */
static int
fs_message_open(uint32_t msgid)
{
	char	 path[64];
	int	 fd;

	snprintf(path, sizeof(path), "queue/%08" PRIx32 "/message", msgid);
	if (MONKEY("queue.read", EIO) ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("open %s", path);
		return -1;
	}
	return fd;
}

/* Replace an envelope atomically: write aside, fsync, rename. */
static int
fs_envelope_update(const struct envelope *e)
{
	char	 dir[64], tmp[96], path[96], buf[ENVELOPE_MAX];
	int	 fd, len;

	if ((len = envelope_dump(e, buf, sizeof(buf))) == -1)
		return -1;
	snprintf(dir, sizeof(dir), "queue/%08" PRIx32, envelope_msgid(e->id));
	snprintf(path, sizeof(path), "%s/%016" PRIx64, dir, e->id);
	snprintf(tmp, sizeof(tmp), "%s/.%016" PRIx64, dir, e->id);
	if ((fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC,
	    0600)) == -1) {
		log_warn("open %s", tmp);
		return -1;
	}
	if (MONKEY("queue.update", ENOSPC) ||
	    write(fd, buf, (size_t)len) != len || fsync(fd) == -1) {
		log_warn("write %s", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		log_warn("rename %s", tmp);
		unlink(tmp);
		return -1;
	}
	return fsync_path(dir);
}
