/*
 * Bounces: a message back to the sender of an envelope that cannot be
 * delivered, created by the queue process itself.  It says which
 * recipient failed and why, and quotes the original headers.  (RFC 3464
 * delivery status notifications come with relaying.)
 */
#include <sys/types.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mtad.h"

#define BOUNCE_HEADERS_MAX	(64 * 1024)

/* Copy the header section of the original message (up to a limit). */
static void
copy_headers(FILE *out, uint32_t msgid)
{
	char	 line[1024];
	FILE	*in;
	size_t	 total = 0;
	int	 fd;

	if ((fd = queue_fs_backend.message_open(msgid)) == -1 ||
	    (in = fdopen(fd, "r")) == NULL) {
		if (fd != -1)
			close(fd);
		fprintf(out, "(the original message is not readable)\n");
		return;
	}
	while (fgets(line, sizeof(line), in) != NULL && line[0] != '\n') {
		if ((total += strlen(line)) > BOUNCE_HEADERS_MAX)
			break;
		fputs(line, out);
	}
	fclose(in);
}

void
bounce_create(const struct envelope *orig, const char *reason)
{
	const struct queue_backend *backend = &queue_fs_backend;
	struct rcpt_context	 ctx;
	const struct rule	*rule;
	struct envelope		 e;
	struct mailaddr		 to;
	const char		*params;
	char			 path[SMTP_ADDRESS_MAX + 8], date[64];
	char			 dests[1][SMTP_ADDRESS_MAX + 1];
	uint32_t		 msgid;
	time_t			 now = time(NULL);
	struct tm		 tm;
	FILE			*fp;
	int			 fd;

	if (orig->sender[0] == '\0') {
		log_info("evpid=%016" PRIx64 " a bounce that fails is not "
		    "bounced", orig->id);
		return;
	}
	if (orig->dsn_notify != 0 && !(orig->dsn_notify & DSN_NOTIFY_FAILURE)) {
		log_info("evpid=%016" PRIx64 " no bounce: NOTIFY excludes "
		    "FAILURE", orig->id);
		return;
	}
	/* The bounce goes where the rules send mail for the sender. */
	snprintf(path, sizeof(path), "TO:<%s>", orig->sender);
	memset(&ctx, 0, sizeof(ctx));
	ctx.rcpt = &to;
	if (smtp_path_parse(path, SMTP_PATH_RCPT, 1, &to, &params) !=
	    SMTP_PATH_OK || (rule = ruleset_match(&ctx)) == NULL ||
	    rule->reject || expand_recipient(rule->action, &to, dests, 1) != 1) {
		log_warnx("evpid=%016" PRIx64 " cannot bounce to <%s>: no "
		    "local rule delivers there", orig->id, orig->sender);
		return;
	}
	if (backend->message_create(&msgid) == -1 ||
	    (fd = backend->message_fd(msgid)) == -1 ||
	    (fp = fdopen(fd, "w")) == NULL) {
		log_warnx("evpid=%016" PRIx64 " cannot create a bounce",
		    orig->id);
		return;
	}
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z",
	    localtime_r(&now, &tm));
	fprintf(fp,
	    "Received: by %s (mtad) id %08" PRIx32 ";\n\t%s\n"
	    "From: Mail Delivery System <MAILER-DAEMON@%s>\n"
	    "To: <%s>\n"
	    "Subject: Undelivered mail returned to sender\n"
	    "Date: %s\n"
	    "Message-ID: <%08" PRIx32 ".bounce@%s>\n"
	    "Auto-Submitted: auto-replied\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "\n"
	    "This is the mail system at %s.\n\n"
	    "Your message could not be delivered to this recipient:\n\n"
	    "  <%s>: %s\n\n"
	    "The headers of your message follow.\n\n",
	    mtad_conf->hostname, msgid, date, mtad_conf->hostname,
	    orig->sender, date, msgid, mtad_conf->hostname,
	    mtad_conf->hostname, orig->rcpt, reason);
	copy_headers(fp, envelope_msgid(orig->id));
	if (fflush(fp) == EOF || ferror(fp)) {
		fclose(fp);
		backend->message_delete(msgid);
		log_warnx("evpid=%016" PRIx64 " cannot write a bounce",
		    orig->id);
		return;
	}
	fclose(fp);

	memset(&e, 0, sizeof(e));
	e.id = ((uint64_t)msgid << 32) | arc4random();
	snprintf(e.rcpt, sizeof(e.rcpt), "%s", orig->sender);
	memcpy(e.dest, dests[0], sizeof(e.dest));
	snprintf(e.action, sizeof(e.action), "%s", rule->action->name);
	snprintf(e.helo, sizeof(e.helo), "%s", mtad_conf->hostname);
	snprintf(e.client, sizeof(e.client), "local");
	e.created = (int64_t)now;
	if (backend->message_commit(msgid, &e, 1) == -1) {
		backend->message_delete(msgid);
		log_warnx("evpid=%016" PRIx64 " cannot queue a bounce",
		    orig->id);
		return;
	}
	log_info("evpid=%016" PRIx64 " bounced to <%s> as msgid=%08" PRIx32,
	    orig->id, orig->sender, msgid);
	scheduler_add(e.id, 0);
}
