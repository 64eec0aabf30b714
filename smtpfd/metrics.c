/*
 * The metrics listener of the control process: a small HTTP/1.0-1.1
 * server that answers GET /metrics with the frontend's and the engine's
 * counters (see metrics.h), and the helpers those processes print them
 * with.
 *
 * Clients are not trusted: a request (request line and headers) must
 * arrive whole within METRICS_TIMEOUT seconds and METRICS_REQUEST_MAX
 * bytes, one response is sent and the connection is closed.  Statuses:
 * 200 (GET /metrics), 404 (another path), 405 (another method on
 * /metrics), 400 (anything that is not an HTTP/1.0 or 1.1 request),
 * 500 (an answering process failed).  At most METRICS_MAX_CLIENTS at
 * once: more wait in the listen queue.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>

#include <errno.h>
#include <event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "smtpfd.h"
#include "xmalloc.h"

#define METRICS_MAX_CLIENTS	16
#define METRICS_REQUEST_MAX	8192
#define METRICS_TIMEOUT		10	/* seconds, to read a request */
#define METRICS_LINGER		2	/* seconds, to drain after answering */
#define CONTENT_TYPE		"text/plain; version=0.0.4"

enum http_state {
	HTTP_READING,		/* the request */
	HTTP_WAITING,		/* for the frontend's and engine's answers */
	HTTP_WRITING,		/* the response */
	HTTP_DRAINING,		/* sent; reading what is left until EOF */
};

/* What one answering process sent: its lines, each ended with LF. */
struct part {
	char		*text;
	size_t		 len, size;
	int		 done;
};

struct http_client {
	TAILQ_ENTRY(http_client) entry;
	uint64_t		 id;
	int			 fd;
	enum http_state		 state;
	struct event		 ev_read, ev_write, ev_timer;
	char			 in[METRICS_REQUEST_MAX];
	size_t			 inlen;
	int			 head;		/* HEAD: no body in the response */
	struct part		 parts[2];	/* frontend, engine */
	int			 failed;	/* an answer was an error */
	char			*out;
	size_t			 outlen, outoff;
};

static TAILQ_HEAD(, http_client) http_clients =
    TAILQ_HEAD_INITIALIZER(http_clients);
static size_t			 nhttp_clients;
static uint64_t			 next_http_id = 1;
static struct event		 ev_metrics_accept;

static void	 http_read(int, short, void *);
static void	 http_write(int, short, void *);
static void	 http_timeout(int, short, void *);

static void
http_free(struct http_client *c)
{
	size_t	 i;

	event_del(&c->ev_read);
	event_del(&c->ev_write);
	event_del(&c->ev_timer);
	close(c->fd);
	for (i = 0; i < 2; i++)
		free(c->parts[i].text);
	free(c->out);
	TAILQ_REMOVE(&http_clients, c, entry);
	if (nhttp_clients-- == METRICS_MAX_CLIENTS)
		event_add(&ev_metrics_accept, NULL);
	free(c);
}

static void
arm_timer(struct http_client *c, int seconds)
{
	struct timeval	 tv = { seconds, 0 };

	evtimer_del(&c->ev_timer);
	evtimer_add(&c->ev_timer, &tv);
}

static void
part_add(struct part *p, const char *s, size_t n)
{
	if (p->size - p->len < n + 1) {
		while (p->size - p->len < n + 1)
			p->size = p->size ? p->size * 2 : 4096;
		p->text = xreallocarray(p->text, 1, p->size);
	}
	memcpy(p->text + p->len, s, n);
	p->len += n;
}

/* Queue the response and start writing it. */
static void
http_respond(struct http_client *c, int status, const char *extra,
    const char *body, size_t bodylen)
{
	const char	*reason;
	char		*hdr;
	int		 n;

	switch (status) {
	case 200: reason = "OK"; break;
	case 400: reason = "Bad Request"; break;
	case 404: reason = "Not Found"; break;
	case 405: reason = "Method Not Allowed"; break;
	default: status = 500; reason = "Internal Server Error"; break;
	}
	n = xasprintf(&hdr, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", status,
	    reason, status == 200 ? CONTENT_TYPE : "text/plain; charset=utf-8",
	    bodylen, extra);
	if (c->head)
		bodylen = 0;
	c->outlen = (size_t)n + bodylen;
	c->out = xmalloc(c->outlen);
	memcpy(c->out, hdr, (size_t)n);
	if (bodylen > 0)
		memcpy(c->out + n, body, bodylen);
	free(hdr);
	c->outoff = 0;
	c->state = HTTP_WRITING;
	event_del(&c->ev_read);
	arm_timer(c, METRICS_TIMEOUT);
	event_add(&c->ev_write, NULL);
}

static void
http_error(struct http_client *c, int status)
{
	char	 body[64];
	int	 n;

	n = snprintf(body, sizeof(body), "%d\n", status);
	http_respond(c, status, status == 405 ? "Allow: GET\r\n" : "", body,
	    (size_t)n);
}

static int
is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || (ch != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/*
 * The request in c->in[0..len), up to and including the empty line that
 * ends its headers: the status to answer, or 0 for GET /metrics.
 */
static int
http_parse(struct http_client *c, size_t len)
{
	char		*p = c->in, *end = c->in + len, *nl, *sp1, *sp2, *q;
	const char	*target;
	size_t		 n;
	int		 first = 1, status = 400;

	/* Bytes: no NUL, no control character but HT, and CR only
	 * before LF. */
	for (q = p; q < end; q++) {
		unsigned char	 ch = (unsigned char)*q;

		if (ch == '\r' ? q + 1 == end || q[1] != '\n' :
		    (ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7f)
			return 400;
	}
	/* Empty lines before the request line are allowed (RFC 9112). */
	while (p < end && (*p == '\r' || *p == '\n'))
		p++;
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		p[n] = '\0';
		if (first) {
			first = 0;
			/* METHOD SP TARGET SP HTTP/1.x */
			if ((sp1 = strchr(p, ' ')) == NULL ||
			    (sp2 = strchr(sp1 + 1, ' ')) == NULL ||
			    strchr(sp2 + 1, ' ') != NULL || sp1 == p ||
			    sp2 == sp1 + 1)
				return 400;
			*sp1 = *sp2 = '\0';
			for (q = p; *q != '\0'; q++)
				if (!is_tchar((unsigned char)*q))
					return 400;
			if (strcmp(sp2 + 1, "HTTP/1.0") != 0 &&
			    strcmp(sp2 + 1, "HTTP/1.1") != 0)
				return 400;
			target = sp1 + 1;
			/* absolute-form: the path after the authority */
			if (strncasecmp(target, "http://", 7) == 0 ||
			    strncasecmp(target, "https://", 8) == 0) {
				target = strchr(strstr(target, "//") + 2, '/');
				if (target == NULL)
					target = "/";
			}
			if (target[0] != '/' && strcmp(target, "*") != 0)
				return 400;
			n = strcspn(target, "?#");
			c->head = strcmp(p, "HEAD") == 0;
			if (n != 8 || strncmp(target, "/metrics", 8) != 0)
				status = 404;
			else if (strcmp(p, "GET") != 0)
				status = 405;
			else
				status = 0;
			continue;
		}
		if (n == 0)
			break;		/* the end of the headers */
		/* NAME ":" VALUE; no obsolete line folding */
		for (q = p; is_tchar((unsigned char)*q); q++)
			;
		if (q == p || *q != ':')
			return 400;
	}
	return status;
}

static void
http_ask(struct http_client *c)
{
	static const char	*roles[] = { "frontend", "engine" };
	struct ipc_chan		*to;
	size_t			 i;

	for (i = 0; i < 2; i++) {
		to = proc_peer(roles[i]);
		ipc_begin(to, SMTPFD_MSG_CTL_REQUEST, -1);
		ipc_add_u64(to, c->id);
		ipc_add_u32(to, CTL_METRICS);
		ipc_add_string(to, "");
		ipc_end(to);
	}
	c->state = HTTP_WAITING;
	event_del(&c->ev_read);
}

static void
http_read(int fd, short event, void *arg)
{
	struct http_client	*c = arg;
	char			 buf[512];
	ssize_t			 n;
	size_t			 start, i, eoh;
	int			 status;

	(void)event;
	if (c->state == HTTP_DRAINING) {
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			http_free(c);
		return;
	}
	n = read(fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		http_free(c);	/* gone before a whole request */
		return;
	}
	c->inlen += (size_t)n;
	/*
	 * After any empty lines, the request line; then the headers end
	 * with an empty line (CRLF or bare LF).
	 */
	for (start = 0; start < c->inlen && (c->in[start] == '\r' ||
	    c->in[start] == '\n'); start++)
		;
	for (eoh = 0, i = start; i < c->inlen && eoh == 0; i++) {
		if (c->in[i] != '\n')
			continue;
		if (i + 1 < c->inlen && c->in[i + 1] == '\n')
			eoh = i + 2;
		else if (i + 2 < c->inlen && c->in[i + 1] == '\r' &&
		    c->in[i + 2] == '\n')
			eoh = i + 3;
	}
	if (eoh == 0) {
		if (c->inlen == sizeof(c->in))
			http_error(c, 400);	/* too large */
		return;
	}
	if ((status = http_parse(c, eoh)) != 0)
		http_error(c, status);
	else
		http_ask(c);
}

static void
http_write(int fd, short event, void *arg)
{
	struct http_client	*c = arg;
	ssize_t			 n;

	(void)event;
	n = write(fd, c->out + c->outoff, c->outlen - c->outoff);
	if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
		event_add(&c->ev_write, NULL);
		return;
	}
	if (n <= 0) {
		http_free(c);
		return;
	}
	c->outoff += (size_t)n;
	if (c->outoff < c->outlen) {
		event_add(&c->ev_write, NULL);
		return;
	}
	/*
	 * Connection: close.  Half-close, then read what the client may
	 * still send (a body we did not want) until it closes too, so that
	 * closing with unread input does not reset the connection before
	 * the client read the response.
	 */
	shutdown(fd, SHUT_WR);
	c->state = HTTP_DRAINING;
	arm_timer(c, METRICS_LINGER);
	event_add(&c->ev_read, NULL);
}

static void
http_timeout(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	http_free(arg);
}

static void
metrics_accept(int fd, short event, void *arg)
{
	struct http_client	*c;
	int			 cfd;

	(void)event;
	(void)arg;
	if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("metrics: accept");
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->id = METRICS_CLIENT_BIT | next_http_id++;
	c->fd = cfd;
	c->state = HTTP_READING;
	event_set(&c->ev_read, cfd, EV_READ | EV_PERSIST, http_read, c);
	event_set(&c->ev_write, cfd, EV_WRITE, http_write, c);
	evtimer_set(&c->ev_timer, http_timeout, c);
	event_add(&c->ev_read, NULL);
	arm_timer(c, METRICS_TIMEOUT);
	TAILQ_INSERT_TAIL(&http_clients, c, entry);
	if (++nhttp_clients == METRICS_MAX_CLIENTS)
		event_del(&ev_metrics_accept);	/* until one leaves */
}

void
metrics_listen(int fd)
{
	event_set(&ev_metrics_accept, fd, EV_READ | EV_PERSIST,
	    metrics_accept, NULL);
	event_add(&ev_metrics_accept, NULL);
}

int
metrics_relay(struct ipc_chan *chan, struct ipc_msg *msg)
{
	struct http_client	*c;
	struct ipc_msg		 peek = *msg;
	struct part		*p;
	const char		*text;
	uint64_t		 id;
	uint32_t		 status = 0;
	size_t			 i;

	if (msg->type != SMTPFD_MSG_CTL_LINE &&
	    msg->type != SMTPFD_MSG_CTL_END)
		return 0;
	if (((id = ipc_get_u64(&peek)) & METRICS_CLIENT_BIT) == 0)
		return 0;
	if (chan == proc_peer("frontend"))
		i = 0;
	else if (chan == proc_peer("engine"))
		i = 1;
	else
		return -1;
	(void)ipc_get_u64(msg);
	if (msg->type == SMTPFD_MSG_CTL_END)
		status = ipc_get_u32(msg);
	text = ipc_get_string(msg);
	ipc_get_end(msg);
	TAILQ_FOREACH(c, &http_clients, entry)
		if (c->id == id)
			break;
	if (c == NULL || c->state != HTTP_WAITING || c->parts[i].done)
		return 1;	/* the client left */
	p = &c->parts[i];
	if (msg->type == SMTPFD_MSG_CTL_LINE) {
		part_add(p, text, strlen(text));
		part_add(p, "\n", 1);
		return 1;
	}
	p->done = 1;
	if (status != 0) {
		log_warnx("metrics: %s: %s", chan->peer, text);
		c->failed = 1;
	}
	if (!c->parts[0].done || !c->parts[1].done)
		return 1;
	if (c->failed) {
		http_error(c, 500);
		return 1;
	}
	part_add(&c->parts[0], c->parts[1].text ? c->parts[1].text : "",
	    c->parts[1].len);
	http_respond(c, 200, "", c->parts[0].text ? c->parts[0].text : "",
	    c->parts[0].len);
	return 1;
}

/*
 * The answering processes.  A line goes as one CTL_LINE, whatever its
 * length (a label holds a filter's name): not through ctl_line(), whose
 * lines are cut at 2 KB.
 */
void
metrics_sample(struct ipc_chan *chan, uint64_t client, const char *fmt, ...)
{
	va_list	 ap;
	char	*line;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) == -1) {
		va_end(ap);
		return;		/* a sample lost: better than the daemon */
	}
	va_end(ap);
	ipc_begin(chan, SMTPFD_MSG_CTL_LINE, -1);
	ipc_add_u64(chan, client);
	ipc_add_string(chan, line);
	ipc_end(chan);
	free(line);
}

void
metrics_family(struct ipc_chan *chan, uint64_t client, const char *name,
    const char *type, const char *help)
{
	metrics_sample(chan, client, "# HELP %s %s", name, help);
	metrics_sample(chan, client, "# TYPE %s %s", name, type);
}

char *
metrics_label(const char *s)
{
	char	*out, *o;

	o = out = xmalloc(2 * strlen(s) + 1);
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			*o++ = '\\';
			*o++ = *s == '\n' ? 'n' : *s;
		} else
			*o++ = *s;
	}
	*o = '\0';
	return out;
}
