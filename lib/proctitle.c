/*
 * Linux has no setproctitle(3): the title shown by ps(1) is the memory
 * holding argv.  We take over argv and the environment strings that
 * follow it (the environment is copied to the heap first) and write the
 * title there, padded with NULs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proctitle.h"
#include "xmalloc.h"

extern char	**environ;

static char	*title_area;
static size_t	 title_size;

void
proctitle_init(int argc, char **argv)
{
	char	**env;
	char	 *end;
	size_t	  n, i;
	int	  a;

	if (argc == 0 || argv[0] == NULL)
		return;
	end = argv[0] + strlen(argv[0]) + 1;
	for (a = 1; a < argc; a++)
		if (argv[a] == end)
			end = argv[a] + strlen(argv[a]) + 1;
	for (n = 0; environ[n] != NULL; n++)
		if (environ[n] == end)
			end = environ[n] + strlen(environ[n]) + 1;
	env = xcalloc(n + 1, sizeof(*env));
	for (i = 0; i < n; i++)
		env[i] = xstrdup(environ[i]);
	environ = env;
	title_area = argv[0];
	title_size = (size_t)(end - argv[0]);
}

void
proctitle_set(const char *fmt, ...)
{
	va_list	 ap;
	size_t	 len;

	if (title_area == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(title_area, title_size, fmt, ap);
	va_end(ap);
	len = strlen(title_area);
	memset(title_area + len, '\0', title_size - len);
}
