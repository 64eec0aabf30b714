/*
 * filter_noop: an executable filter speaking OpenSMTPD's filter protocol
 * (smtpd-filters(7)) that asks about every phase and lets everything
 * through, data lines included, as fast as it can.  It is what the
 * benchmarks run under smtpfd and under OpenSMTPD alike, so that both
 * pay the same for the filter itself.
 *
 *	filter_noop [-d]	-d: data-line too (the message goes through)
 *
 * It answers in the order of protocol 0.5 and later (session id, then
 * token), which both OpenSMTPD 6.8 (0.6) and smtpfd (0.6, 0.7) speak.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *phases[] = {
	"connect", "helo", "ehlo", "starttls", "auth", "mail-from", "rcpt-to",
	"data", "commit", NULL,
};

/* The n-th '|'-separated field of line (0-based); NULL if none. */
static char *
field(char *line, int n, char **rest)
{
	char	*p = line, *bar;

	while (n-- > 0) {
		if ((p = strchr(p, '|')) == NULL)
			return NULL;
		p++;
	}
	*rest = NULL;
	if ((bar = strchr(p, '|')) != NULL)
		*rest = bar + 1;
	return p;
}

static void
registration(int datalines)
{
	int	 i;

	for (i = 0; phases[i] != NULL; i++)
		printf("register|filter|smtp-in|%s\n", phases[i]);
	if (datalines)
		printf("register|filter|smtp-in|data-line\n");
	printf("register|ready\n");
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	char	*line = NULL, *phase, *sid, *token, *rest, *end;
	size_t	 size = 0;
	ssize_t	 len;
	int	 datalines = 0, ch;

	while ((ch = getopt(argc, argv, "d")) != -1) {
		switch (ch) {
		case 'd':
			datalines = 1;
			break;
		default:
			fprintf(stderr, "usage: filter_noop [-d]\n");
			return 1;
		}
	}
	/* Filters register without waiting for the configuration. */
	registration(datalines);
	while ((len = getline(&line, &size, stdin)) != -1) {
		if (len > 0 && line[len - 1] == '\n')
			line[len - 1] = '\0';
		if (strncmp(line, "filter|", 7) != 0)
			continue;	/* config and report lines */
		/* filter|VER|TIME|smtp-in|PHASE|SID|TOKEN|PARAMS */
		if ((phase = field(line, 4, &rest)) == NULL || rest == NULL)
			return 1;
		phase[strcspn(phase, "|")] = '\0';
		sid = rest;
		if ((token = strchr(sid, '|')) == NULL)
			return 1;
		*token++ = '\0';
		if ((end = strchr(token, '|')) != NULL)
			*end++ = '\0';
		if (strcmp(phase, "data-line") == 0)
			printf("filter-dataline|%s|%s|%s\n", sid, token,
			    end ? end : "");
		else
			printf("filter-result|%s|%s|proceed\n", sid, token);
		fflush(stdout);
	}
	return 0;
}
