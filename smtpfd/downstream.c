/*
 * A session's SMTP connection to the downstream MTA.
 *
 * Before the client is greeted, the downstream must learn who the client
 * is, in the way the listener's "forward to" names:
 *	xclient		banner, EHLO (XCLIENT offered?), XCLIENT ADDR=...,
 *			then the downstream's new 220 greets the client
 *	xforward	banner, EHLO (XFORWARD offered?); the banner greets
 *			the client; XFORWARD goes before each MAIL
 *	proxy-v2	the PROXY v2 header first; the banner greets the
 *			client
 *	no-identity	the banner greets the client
 * A downstream that does not offer what was configured is a
 * configuration error, logged; the client gets 421.
 *
 * Then replies are read whole (multi-line ones too) and handed to the
 * session, oldest command first.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "monkey.h"
#include "session.h"
#include "xmalloc.h"

#define REPLY_LINE_MAX		2048
#define SMTP_CMD_LIMIT		512	/* RFC 5321: with CRLF */

static void	 down_io(struct io *, enum io_event, void *);
static void	 down_read(struct session *);
static void	 down_reply(struct session *, char **, size_t);
static int	 send_proxy_v2(struct session *);

void
downstream_start(struct session *s)
{
	struct downstream	*d = &s->listener->forward;
	int			 fd;

	s->down_state = D_CONNECT;
	if ((fd = socket(d->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_warn("%016" PRIx64 " downstream socket", s->id);
		fd = -1;
	} else {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
		    sizeof(int));
		if ((MONKEY("downstream.connect", ECONNREFUSED) ||
		    connect(fd, (struct sockaddr *)&d->addr, d->addrlen) == -1) &&
		    errno != EINPROGRESS) {
			log_warn("%016" PRIx64 " downstream %s", s->id, d->url);
			/* The io reports the error at its first read. */
		}
	}
	if (fd == -1 || (s->down = io_new(fd, down_io, s)) == NULL) {
		if (fd != -1)
			close(fd);
		s->down = NULL;
		session_down_lost_later(s);
		return;
	}
	io_set_timeout(s->down, DEF_CONNECT_TIMEOUT);
	if (d->identity == IDENTITY_PROXY_V2 && send_proxy_v2(s) == -1) {
		session_down_lost_later(s);
		return;
	}
	s->down_state = D_BANNER;
}

/*
 * A new connection in the middle of the session: a message refused
 * after its content went down can only be taken back by dropping the
 * connection.  The same handshake follows, then the client's EHLO is
 * said again; the client reads nothing of it.
 */
void
downstream_restart(struct session *s)
{
	downstream_close(s);
	s->down_resume = 1;
	s->waiting = 1;		/* the client's next commands wait */
	downstream_start(s);
}

void
downstream_close(struct session *s)
{
	if (s->down == NULL)
		return;
	io_free(s->down);
	s->down = NULL;
	s->down_state = D_GONE;
}

void
downstream_write(struct session *s, const void *p, size_t len)
{
	/* A write that cannot be buffered ends the connection (IO_ERROR). */
	if (s->down != NULL)
		(void)io_write(s->down, p, len);
}

static void
down_command(struct session *s, const char *fmt, const char *arg)
{
	io_printf(s->down, fmt, arg);
	io_write(s->down, "\r\n", 2);
}

static void
down_io(struct io *io, enum io_event event, void *arg)
{
	struct session	*s = arg;

	switch (event) {
	case IO_DATAIN:
		down_read(s);
		return;
	case IO_LOWAT:
		session_down_drained(s);
		return;
	case IO_TLSREADY:
		return;
	case IO_TIMEOUT:
		session_down_lost(s, s->down_state == D_BANNER ?
		    "no greeting" : "timeout");
		return;
	case IO_DISCONNECTED:
		session_down_lost(s, "connection closed");
		return;
	case IO_ERROR:
		session_down_lost(s, io_error(io));
		return;
	}
}

static int
reply_line_valid(const char *line, const char *first)
{
	if (strlen(line) < 3 || !isdigit((unsigned char)line[0]) ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]) ||
	    (line[3] != '\0' && line[3] != ' ' && line[3] != '-'))
		return 0;
	return first == NULL || strncmp(line, first, 3) == 0;
}

/* Collect reply lines; each whole reply goes on. */
static void
down_read(struct session *s)
{
	struct io	*io = s->down;
	char		*line, *p;
	size_t		 len;

	while (s->down == io && (line = evbuffer_readln(io->in, &len,
	    EVBUFFER_EOL_CRLF)) != NULL) {
		if (len > REPLY_LINE_MAX || s->nreply == REPLY_MAX_LINES ||
		    !reply_line_valid(line, s->nreply ? s->reply[0] : NULL)) {
			log_warnx("%016" PRIx64 " downstream sent \"%.64s\"",
			    s->id, line);
			free(line);
			session_down_lost(s, "malformed reply");
			return;
		}
		/* A CR would end the line early at the client. */
		for (p = line; (p = strchr(p, '\r')) != NULL; p++)
			*p = ' ';
		s->reply[s->nreply++] = line;
		if (line[3] == '-')
			continue;
		down_reply(s, s->reply, s->nreply);
		while (s->nreply > 0)
			free(s->reply[--s->nreply]);
	}
	if (s->down == io && evbuffer_get_length(io->in) > REPLY_LINE_MAX)
		session_down_lost(s, "reply line too long");
}

/* The attribute list after a keyword of the EHLO reply, if offered. */
static int
ehlo_offers(char **lines, size_t n, const char *keyword, char *attrs,
    size_t size)
{
	size_t	 i, len = strlen(keyword);

	for (i = 1; i < n; i++) {
		if (strncasecmp(lines[i] + 4, keyword, len) != 0 ||
		    (lines[i][4 + len] != '\0' && lines[i][4 + len] != ' '))
			continue;
		snprintf(attrs, size, " %s ", lines[i] + 4 + len);
		return 1;
	}
	return 0;
}

static int
offered(const char *attrs, const char *name)
{
	char	 word[32];

	snprintf(word, sizeof(word), " %s ", name);
	return strcasestr(attrs, word) != NULL;
}

/* "ADDR=IPV6:2001:db8::1", xtext-encoded, if the server takes it. */
static void
add_attr(char *cmd, size_t size, const char *attrs, const char *name,
    const char *value)
{
	char	 enc[600];
	size_t	 len = strlen(cmd);

	if (!offered(attrs, name))
		return;
	if (xtext_encode(value[0] ? value : "[UNAVAILABLE]", enc,
	    sizeof(enc)) == -1)
		snprintf(enc, sizeof(enc), "[UNAVAILABLE]");
	snprintf(cmd + len, size - len, " %s=%s", name, enc);
}

static void
client_addr_attr(struct session *s, char *buf, size_t size)
{
	if (strchr(s->client.addr, ':') != NULL)
		snprintf(buf, size, "IPV6:%s", s->client.addr);
	else if (strcmp(s->client.addr, "unix") == 0 ||
	    strcmp(s->client.addr, "unknown") == 0)
		snprintf(buf, size, "[UNAVAILABLE]");
	else
		snprintf(buf, size, "%s", s->client.addr);
}

/* Send one identity command split at the RFC 5321 line limit. */
static void
send_identity(struct session *s, const char *verb, const char *attrs,
    int helo)
{
	char	 cmd[2048], addr[80], port[16], dport[16];
	char	*p;

	client_addr_attr(s, addr, sizeof(addr));
	snprintf(port, sizeof(port), "%d", s->client.port);
	snprintf(dport, sizeof(dport), "%d", s->client.local_port);
	/* HELO and PROTO first, ADDR last (Postfix's advice). */
	cmd[0] = '\0';
	if (helo) {
		add_attr(cmd, sizeof(cmd), attrs, "HELO", s->client.helo);
		add_attr(cmd, sizeof(cmd), attrs, "PROTO",
		    s->client.helo[0] ? (s->client.esmtp ? "ESMTP" : "SMTP") :
		    "");
		add_attr(cmd, sizeof(cmd), attrs, "SOURCE", "REMOTE");
	}
	add_attr(cmd, sizeof(cmd), attrs, "NAME", s->client.rdns);
	add_attr(cmd, sizeof(cmd), attrs, "PORT", port);
	if (strcmp(verb, "XCLIENT") == 0 && s->client.local_addr[0] &&
	    strcmp(s->client.local_addr, "unix") != 0) {
		add_attr(cmd, sizeof(cmd), attrs, "DESTADDR",
		    s->client.local_addr);
		add_attr(cmd, sizeof(cmd), attrs, "DESTPORT", dport);
	}
	add_attr(cmd, sizeof(cmd), attrs, "ADDR", addr);
	/* Cut into commands under the limit, at attribute boundaries. */
	for (p = cmd; *p == ' ';) {
		const char	*start = p + 1;
		size_t		 room = SMTP_CMD_LIMIT - strlen(verb) - 3;
		size_t		 len = 0;
		char		*next;

		while ((next = strchr(start + len + 1, ' ')) != NULL &&
		    (size_t)(next - start) <= room)
			len = (size_t)(next - start);
		if (next == NULL && strlen(start) <= room)
			len = strlen(start);
		if (len == 0)
			len = strcspn(start, " ");	/* cannot happen */
		io_printf(s->down, "%s %.*s\r\n", verb, (int)len, start);
		session_pending_internal(s);
		p = (char *)start + len;
	}
}

/*
 * Before each MAIL: XFORWARD every time (the attributes last one
 * transaction), XCLIENT again only when a trusted client changed the
 * identity (then EHLO again, as after any XCLIENT).
 */
void
downstream_identity(struct session *s)
{
	char	 helo[SMTP_DOMAIN_MAX + 8];

	if (s->down == NULL)
		return;
	switch (s->listener->forward.identity) {
	case IDENTITY_XFORWARD:
		send_identity(s, "XFORWARD", s->down_xforward, 1);
		break;
	case IDENTITY_XCLIENT:
		if (!s->identity_changed)
			break;
		send_identity(s, "XCLIENT", s->down_xclient, 1);
		snprintf(helo, sizeof(helo), "%s", s->client.helo[0] ?
		    s->client.helo : smtpfd_conf->hostname);
		down_command(s, s->client.esmtp ? "EHLO %s" : "HELO %s", helo);
		session_pending_internal(s);
		break;
	default:
		break;
	}
	s->identity_changed = 0;
}

/* The greeting the client gets: the downstream's, on one line. */
static void
down_ready(struct session *s, char **lines, size_t n)
{
	char	 banner[512];

	snprintf(banner, sizeof(banner), "%s", lines[n - 1]);
	if (n > 1)
		banner[3] = ' ';
	s->down_state = D_READY;
	io_set_timeout(s->down, smtpfd_conf->downstream_timeout);
	session_down_ready(s, banner);
}

/* The downstream turned the client away: tell the client its words. */
static void
down_refused(struct session *s, char **lines, size_t n, const char *what)
{
	char	 why[256], first[512];

	snprintf(first, sizeof(first), "%s", lines[n - 1]);
	if (first[0] != '4' && first[0] != '5') {
		snprintf(first, sizeof(first), "421 4.3.0 Mail server not "
		    "available, try again later");
	}
	first[3] = ' ';
	snprintf(why, sizeof(why), "downstream %s: %s: %.64s",
	    s->listener->forward.url, what, lines[0]);
	session_fail(s, first, why);
}

static void
down_handshake(struct session *s, char **lines, size_t n)
{
	struct downstream	*d = &s->listener->forward;
	int			 code = atoi(lines[0]);
	char			 why[256];

	switch (s->down_state) {
	case D_BANNER:
		if (code != 220) {
			down_refused(s, lines, n, "greeting");
			return;
		}
		if (d->identity == IDENTITY_PROXY_V2 ||
		    d->identity == IDENTITY_NONE) {
			down_ready(s, lines, n);
			return;
		}
		snprintf(s->banner, sizeof(s->banner), "%s", lines[n - 1]);
		if (n > 1)
			s->banner[3] = ' ';
		down_command(s, "EHLO %s", smtpfd_conf->hostname);
		s->down_state = D_EHLO;
		return;
	case D_EHLO:
		if (code != 250) {
			down_refused(s, lines, n, "EHLO");
			return;
		}
		if (d->identity == IDENTITY_XFORWARD) {
			if (!ehlo_offers(lines, n, "XFORWARD", s->down_xforward,
			    sizeof(s->down_xforward))) {
				snprintf(why, sizeof(why), "downstream %s does "
				    "not offer XFORWARD to us", d->url);
				session_fail(s, "421 4.3.0 Mail server not "
				    "available, try again later", why);
				return;
			}
			s->down_state = D_READY;
			io_set_timeout(s->down, smtpfd_conf->downstream_timeout);
			session_down_ready(s, s->banner);
			return;
		}
		if (!ehlo_offers(lines, n, "XCLIENT", s->down_xclient,
		    sizeof(s->down_xclient))) {
			snprintf(why, sizeof(why), "downstream %s does not "
			    "offer XCLIENT to us", d->url);
			session_fail(s, "421 4.3.0 Mail server not available, "
			    "try again later", why);
			return;
		}
		send_identity(s, "XCLIENT", s->down_xclient, 0);
		s->down_state = D_XCLIENT;
		return;
	case D_XCLIENT:
		/* XCLIENT replies once per command: the last one counts. */
		if (s->npending > 0)
			s->npending--, s->pending_head =
			    (s->pending_head + 1) % PENDING_MAX;
		if (code == 220) {
			if (s->npending == 0)
				down_ready(s, lines, n);
			return;
		}
		if (code == 501 || code == 503 || code == 550)
			snprintf(why, sizeof(why), "XCLIENT refused");
		else
			snprintf(why, sizeof(why), "the client is refused");
		down_refused(s, lines, n, why);
		return;
	default:
		return;
	}
}

static void
down_reply(struct session *s, char **lines, size_t n)
{
	if (s->down_state == D_READY)
		session_down_reply(s, lines, n);
	else
		down_handshake(s, lines, n);
}

/*
 * The PROXY protocol version 2 header (haproxy's proxy-protocol.txt,
 * section 2.2): signature, version 2 + PROXY, TCP over IPv4 or IPv6,
 * addresses, ports.  A client with no IP address gets LOCAL.
 */
static int
send_proxy_v2(struct session *s)
{
	static const unsigned char sig[12] = {
		0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
		0x54, 0x0a,
	};
	unsigned char	 hdr[16 + 36];
	struct in6_addr	 src6, dst6;
	struct in_addr	 src4, dst4;
	size_t		 len = 16;
	uint16_t	 port;

	memcpy(hdr, sig, sizeof(sig));
	hdr[12] = 0x21;
	if (inet_pton(AF_INET, s->client.addr, &src4) == 1) {
		if (inet_pton(AF_INET, s->client.local_addr, &dst4) != 1)
			dst4.s_addr = htonl(INADDR_ANY);
		hdr[13] = 0x11;
		memcpy(hdr + 16, &src4, 4);
		memcpy(hdr + 20, &dst4, 4);
		port = htons((uint16_t)s->client.port);
		memcpy(hdr + 24, &port, 2);
		port = htons((uint16_t)s->client.local_port);
		memcpy(hdr + 26, &port, 2);
		len += 12;
	} else if (inet_pton(AF_INET6, s->client.addr, &src6) == 1) {
		if (inet_pton(AF_INET6, s->client.local_addr, &dst6) != 1)
			dst6 = in6addr_any;
		hdr[13] = 0x21;
		memcpy(hdr + 16, &src6, 16);
		memcpy(hdr + 32, &dst6, 16);
		port = htons((uint16_t)s->client.port);
		memcpy(hdr + 48, &port, 2);
		port = htons((uint16_t)s->client.local_port);
		memcpy(hdr + 50, &port, 2);
		len += 36;
	} else {
		hdr[12] = 0x20;		/* LOCAL: no address to tell */
		hdr[13] = 0x00;
	}
	hdr[14] = (unsigned char)((len - 16) >> 8);
	hdr[15] = (unsigned char)((len - 16) & 0xff);
	return io_write(s->down, hdr, len);
}
