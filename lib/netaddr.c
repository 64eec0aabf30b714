/*
 * Socket addresses as text (netaddr.h).
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "netaddr.h"

void
sockaddr_text(const struct sockaddr_storage *ss, char *buf, size_t size,
    int *port)
{
	const struct sockaddr_in	*sin = (const void *)ss;
	const struct sockaddr_in6	*sin6 = (const void *)ss;

	*port = 0;
	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, buf, size);
		*port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, size);
		*port = ntohs(sin6->sin6_port);
		if (strncmp(buf, "::ffff:", 7) == 0 &&
		    strchr(buf + 7, ':') == NULL)
			memmove(buf, buf + 7, strlen(buf + 7) + 1);
	} else
		snprintf(buf, size, "unix");
}
