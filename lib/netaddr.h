/*
 * Socket addresses as text, the same way everywhere: logs, smtpf's open,
 * XCLIENT, the filters' events.
 */
#ifndef NETADDR_H
#define NETADDR_H

#include <sys/socket.h>

#include <stddef.h>

/*
 * "192.0.2.1" or "2001:db8::1" (an IPv4 client on a dual-stack socket
 * is an IPv4 client) and the port; "unix" and 0 for a local socket.
 */
void	 sockaddr_text(const struct sockaddr_storage *, char *, size_t, int *);

#endif
