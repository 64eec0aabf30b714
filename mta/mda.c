/*
 * What every local delivery method shares: copying the queued message
 * out with the delivery headers, and creating directories.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtad.h"

/*
 * Write Return-Path:, Delivered-To: and the message to out.  Returns 0,
 * or -1 with errno set.
 */
int
mda_copy_message(int msgfd, FILE *out, const struct envelope *e,
    enum mda_copy mode)
{
	const char	*eol = mode == MDA_COPY_SMTP ? "\r\n" : "\n";
	char		*line = NULL;
	size_t		 cap = 0;
	ssize_t		 n;
	FILE		*in;
	int		 fd, saved;

	if ((fd = dup(msgfd)) == -1 || lseek(fd, 0, SEEK_SET) == -1 ||
	    (in = fdopen(fd, "r")) == NULL)
		return -1;
	fprintf(out, "Return-Path: <%s>%sDelivered-To: %s%s", e->sender, eol,
	    e->rcpt, eol);
	while ((n = getline(&line, &cap, in)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (mode == MDA_COPY_SMTP && line[0] == '.')
			fputc('.', out);
		if (mode == MDA_COPY_MBOX) {
			/* mboxrd: ">*From " gets one more '>' */
			const char *p = line;

			while (*p == '>')
				p++;
			if (strncmp(p, "From ", 5) == 0)
				fputc('>', out);
		}
		fwrite(line, 1, (size_t)n, out);
		fputs(eol, out);
	}
	saved = ferror(in) ? errno : 0;
	free(line);
	fclose(in);
	if (saved || fflush(out) == EOF || ferror(out)) {
		errno = saved ? saved : errno;
		return -1;
	}
	return 0;
}

/* mkdir -p, mode 0700 for what it creates. */
int
mda_mkdirs(const char *path)
{
	char	 buf[PATH_MAX], *p;

	if (strlen(path) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, path);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}
