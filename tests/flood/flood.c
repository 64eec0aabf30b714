/*
 * flood: an SMTP load generator.  Thousands of concurrent sessions, plain
 * or STARTTLS, fast or laggy, pipelining or not, some of which vanish in
 * the middle of their content; every message carries its own id so that
 * the deliveries can be checked against what the server answered.  See
 * README.md beside this file.
 *
 * Exit status: 0 when every session ended in a way SMTP allows (a 4xx or
 * 5xx reply is fine, a 421 and a close too), 1 when one did not (no
 * greeting, a reply that is not SMTP, a close without 421, a timeout, a
 * failed TLS handshake), 2 on a usage error.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <err.h>
#include <errno.h>
#include <event.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <tls.h>
#include <unistd.h>

#include "io.h"
#include "smtp_proto.h"

#define MAX_TARGETS		32
#define REPLY_LINE_MAX		2048
#define REPLY_LINES_MAX		64
#define MAX_PENDING		8
#define ERRORS_SHOWN		20
#define LAG_CHUNK_MAX		1024

/* What the next reply answers. */
enum expect {
	R_BANNER,
	R_EHLO,
	R_STARTTLS,
	R_MAIL,
	R_RCPT,
	R_DATA,
	R_DOT,
	R_RSET,
	R_QUIT,
	R_COUNT
};

static const char *expect_names[R_COUNT] = {
	"greeting", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA",
	"end of data", "RSET", "QUIT"
};

/* Ways a session can fail that SMTP does not allow. */
enum failure {
	F_CONNECT,
	F_TLS,
	F_NOSTARTTLS,
	F_TIMEOUT,
	F_CLOSED,
	F_IO,
	F_PROTOCOL,
	F_UNFINISHED,
	F_COUNT
};

static const char *failure_names[F_COUNT] = {
	"connect", "tls-handshake", "no-starttls", "timeout",
	"closed-without-421", "io-error", "protocol", "unfinished"
};

/* What became of a message. */
enum outcome {
	M_ACCEPTED,	/* 250 to the final dot */
	M_REFUSED,	/* a 4xx/5xx reply ended its transaction */
	M_VANISHED,	/* we left before the final dot, on purpose */
	M_ABORTED,	/* the session broke before the final dot */
	M_INDOUBT,	/* the final dot went out, no reply came */
	M_COUNT
};

static const char *outcome_names[M_COUNT] = {
	"accepted", "refused", "vanished", "aborted", "indoubt"
};

struct target {
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 name[128];
};

#define SF_TLS		0x01
#define SF_LAGGY	0x02
#define SF_VANISH	0x04
#define SF_PIPELINE	0x08

/* A message's transaction. */
struct txn {
	char			 id[64];
	int			 open;
	int			 code;		/* the first refusal */
};

struct session {
	TAILQ_ENTRY(session)	 entry;
	unsigned int		 n;
	int			 flags;
	uint64_t		 rng;
	struct target		*target;
	int			 fd;
	struct io		*io;
	struct event		 ev_connect;
	struct event		 ev_lag;
	struct evbuffer		*lag;		/* laggy: not yet sent */
	int			 lag_content;
	const char		*where;

	enum expect		 pending[MAX_PENDING];
	int			 npending;
	int			 rcode;		/* reply being read */
	int			 rlines;

	int			 ext_pipelining;
	int			 ext_starttls;
	int			 ext_size;
	int			 in_tls;
	int			 handshaking;
	int			 pipelined;	/* this transaction */

	int			 msg;		/* messages begun */
	int			 vanish_msg;
	struct txn		 tx;		/* MAIL to DATA */
	struct txn		 dotx;		/* its dot's reply due */
	int			 content_out;	/* dotx given to io */
	int			 dot_out;	/* and written out */
	int			 vanishing;
	int			 got_421;
	struct timespec		 t_start;
	struct timespec		 t_dot;
	size_t			 size;		/* of this content */
	int			 large;
	int			 failed;
	int			 done;
};

TAILQ_HEAD(sessionq, session);

static struct {
	unsigned int	 sessions;
	unsigned int	 concurrency;
	unsigned int	 messages;
	double		 large;
	size_t		 small_size;
	size_t		 large_size;
	double		 tls;
	double		 laggy;
	double		 vanish;
	double		 pipeline;
	int		 cmd_pause_ms;
	int		 byte_pause_ms;
	int		 reply_timeout;
	int		 deadline;
	const char	*domain;
	const char	*user;
	const char	*sender;
	const char	*helo;
	const char	*servername;
	const char	*cafile;
	int		 noverify;
	uint64_t	 seed;
	char		 run[32];
	int		 verbose;
} opt;

static struct {
	unsigned int	 started;
	unsigned int	 active;
	unsigned int	 ended;
	unsigned int	 ok;
	unsigned int	 failed;
	unsigned int	 kinds[4];	/* by SF_ bit */
	unsigned int	 failures[F_COUNT];
	unsigned int	 outcomes[M_COUNT];
	unsigned int	 refused_at[R_COUNT];
	unsigned int	 r421;
	unsigned int	 r4xx;
	unsigned int	 r5xx;
	unsigned int	 no_pipelining;
	unsigned int	 shown;
	unsigned long long bytes;
	double		*lat_dot;
	size_t		 nlat_dot;
	size_t		 caplat_dot;
	double		*lat_session;
	size_t		 nlat_session;
	size_t		 caplat_session;
} st;

static struct target	 targets[MAX_TARGETS];
static int		 ntargets;
static struct sessionq	 active = TAILQ_HEAD_INITIALIZER(active);
static struct tls_config *tlscfg;
static FILE		*out_accepted;
static FILE		*out_others;
static struct event	 ev_deadline;
static struct timespec	 t_begin;

static void	 usage(void) __attribute__((noreturn));
static double	 parse_fraction(const char *, const char *);
static long long parse_number(const char *, const char *, long long,
		    long long);
static size_t	 parse_size(const char *, const char *);
static void	 parse_target(const char *, const char *);
static uint64_t	 rnd(struct session *);
static int	 chance(struct session *, double);
static double	 elapsed_ms(const struct timespec *);
static void	 sample(double **, size_t *, size_t *, double);
static void	 refill(void);
static void	 session_start(void);
static void	 session_connected(int, short, void *);
static void	 session_io(struct io *, enum io_event, void *);
static void	 session_read(struct session *);
static void	 session_salvage(struct session *);
static void	 session_line(struct session *, char *, size_t);
static void	 session_reply(struct session *, int);
static void	 session_ext(struct session *, const char *);
static void	 session_fail(struct session *, enum failure, const char *,
		    ...) __attribute__((format(printf, 3, 4)));
static void	 session_end(struct session *);
static void	 session_reap(struct session *);
static void	 session_write(struct session *, const void *, size_t, int);
static void	 session_cmd(struct session *, enum expect, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 session_lag(int, short, void *);
static void	 session_drained(struct session *);
static void	 session_starttls(struct session *);
static void	 session_next(struct session *);
static void	 session_refused(struct session *, enum expect, int);
static void	 session_content(struct session *);
static void	 session_refuse_all(struct session *, int);
static void	 message_end(struct session *, struct txn *, enum outcome);
static void	 deadline(int, short, void *);
static void	 report(void);
static double	 percentile(double *, size_t, double);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: flood [-kv] [-a cafile] [-b byte-pause-ms]\n"
	    "\t[-c concurrency] [-d domain] [-f sender] [-g laggy]\n"
	    "\t[-H helo] [-I run] [-l large] [-m messages]\n"
	    "\t[-N servername] [-n sessions] [-O others-file]\n"
	    "\t[-o accepted-file] [-P pause-ms] [-p pipelining]\n"
	    "\t[-S seed] [-s tls] [-T reply-timeout] [-u user]\n"
	    "\t[-V vanish] [-W deadline] [-z small,large]\n"
	    "\thost port [host port ...]\n");
	exit(2);
}

/* "0.25" or "25%". */
static double
parse_fraction(const char *what, const char *s)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(s, &end);
	if (end == s || errno != 0)
		errx(2, "%s: not a fraction: %s", what, s);
	if (*end == '%') {
		d /= 100;
		end++;
	}
	if (*end != '\0' || d < 0 || d > 1)
		errx(2, "%s: not a fraction between 0 and 1: %s", what, s);
	return d;
}

static long long
parse_number(const char *what, const char *s, long long min, long long max)
{
	char		*end;
	long long	 n;

	errno = 0;
	n = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0 || n < min || n > max)
		errx(2, "%s: not a number from %lld to %lld: %s", what, min,
		    max, s);
	return n;
}

/* Bytes, or with K or M. */
static size_t
parse_size(const char *what, const char *s)
{
	char		*end;
	unsigned long	 n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (end == s || errno != 0)
		errx(2, "%s: not a size: %s", what, s);
	if (*end == 'K' || *end == 'k') {
		n *= 1024;
		end++;
	} else if (*end == 'M' || *end == 'm') {
		n *= 1024 * 1024;
		end++;
	}
	if (*end != '\0' || n > 64 * 1024 * 1024)
		errx(2, "%s: not a size up to 64M: %s", what, s);
	return n;
}

static void
parse_target(const char *host, const char *port)
{
	struct addrinfo	 hints, *res;
	struct target	*t;
	int		 r;

	if (ntargets == MAX_TARGETS)
		errx(2, "at most %d targets", MAX_TARGETS);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0)
		errx(2, "%s port %s: %s", host, port, gai_strerror(r));
	t = &targets[ntargets++];
	memcpy(&t->ss, res->ai_addr, res->ai_addrlen);
	t->sslen = res->ai_addrlen;
	if (res->ai_family == AF_INET6)
		snprintf(t->name, sizeof(t->name), "[%s]:%s", host, port);
	else
		snprintf(t->name, sizeof(t->name), "%s:%s", host, port);
	freeaddrinfo(res);
}

/* splitmix64: each session draws from its own stream, seeded by number. */
static uint64_t
rnd(struct session *s)
{
	uint64_t	 z;

	z = (s->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int
chance(struct session *s, double p)
{
	return (double)(rnd(s) >> 11) * 0x1.0p-53 < p;
}

static double
elapsed_ms(const struct timespec *since)
{
	struct timespec	 now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) * 1000 +
	    (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

static void
sample(double **v, size_t *n, size_t *cap, double d)
{
	double	*p;
	size_t	 ncap;

	if (*n == *cap) {
		ncap = *cap ? *cap * 2 : 1024;
		if ((p = reallocarray(*v, ncap, sizeof(**v))) == NULL)
			err(1, NULL);
		*v = p;
		*cap = ncap;
	}
	(*v)[(*n)++] = d;
}

/* Keep the configured number of sessions running. */
static void
refill(void)
{
	static int	 busy;

	/* A session that fails at once is reaped from inside the loop. */
	if (busy)
		return;
	busy = 1;
	while (st.active < opt.concurrency && st.started < opt.sessions)
		session_start();
	busy = 0;
	if (st.ended == opt.sessions)
		event_loopbreak();
}

static void
session_start(void)
{
	struct session	*s;
	struct timeval	 tv = { opt.reply_timeout, 0 };
	int		 kind;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->lag = evbuffer_new()) == NULL)
		err(1, NULL);
	s->n = st.started++;
	s->rng = opt.seed ^ ((uint64_t)s->n * 0xd1b54a32d192ed03ULL);
	s->target = &targets[s->n % ntargets];
	s->fd = -1;
	s->vanish_msg = -1;
	if (chance(s, opt.tls))
		s->flags |= SF_TLS;
	if (chance(s, opt.laggy))
		s->flags |= SF_LAGGY;
	if (chance(s, opt.pipeline))
		s->flags |= SF_PIPELINE;
	if (chance(s, opt.vanish)) {
		s->flags |= SF_VANISH;
		s->vanish_msg = (int)(rnd(s) % opt.messages);
	}
	for (kind = 0; kind < 4; kind++)
		if (s->flags & (1 << kind))
			st.kinds[kind]++;
	s->where = "connect";
	evtimer_set(&s->ev_lag, session_lag, s);
	TAILQ_INSERT_TAIL(&active, s, entry);
	st.active++;
	clock_gettime(CLOCK_MONOTONIC, &s->t_start);

	if ((s->fd = socket(s->target->ss.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		session_fail(s, F_CONNECT, "socket: %s", strerror(errno));
		session_reap(s);
		return;
	}
	event_set(&s->ev_connect, s->fd, EV_WRITE, session_connected, s);
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (connect(s->fd, (struct sockaddr *)&s->target->ss,
	    s->target->sslen) == -1 && errno != EINPROGRESS) {
		session_fail(s, F_CONNECT, "connect: %s", strerror(errno));
		session_reap(s);
		return;
	}
	event_add(&s->ev_connect, &tv);
}

static void
session_connected(int fd, short event, void *arg)
{
	struct session	*s = arg;
	socklen_t	 len = sizeof(int);
	int		 e = 0;

	if (event & EV_TIMEOUT)
		session_fail(s, F_TIMEOUT, "connect timed out");
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1 ||
	    e != 0)
		session_fail(s, F_CONNECT, "connect: %s",
		    strerror(e ? e : errno));
	else if ((s->io = io_new(s->fd, session_io, s)) == NULL)
		err(1, NULL);
	else {
		io_set_timeout(s->io, opt.reply_timeout * 1000);
		s->pending[s->npending++] = R_BANNER;
		s->where = "greeting";
	}
	session_reap(s);
}

static void
session_io(struct io *io, enum io_event evt, void *arg)
{
	struct session	*s = arg;

	(void)io;
	if (s->done)
		return;
	switch (evt) {
	case IO_DATAIN:
		session_read(s);
		break;
	case IO_LOWAT:
		session_drained(s);
		break;
	case IO_TLSREADY:
		s->handshaking = 0;
		s->in_tls = 1;
		s->ext_pipelining = s->ext_starttls = s->ext_size = 0;
		session_cmd(s, R_EHLO, "EHLO %s\r\n", opt.helo);
		break;
	case IO_TIMEOUT:
		/* Idle on our side (a laggy pause) is no failure. */
		if (io_queued(s->io) > 0)
			session_fail(s, F_TIMEOUT, "the server read nothing "
			    "for %ds", opt.reply_timeout);
		else if (s->npending > 0 || s->handshaking)
			session_fail(s, F_TIMEOUT, "no reply within %ds",
			    opt.reply_timeout);
		break;
	case IO_DISCONNECTED:
		if (s->got_421)
			session_end(s);
		else
			session_fail(s, F_CLOSED, "the server closed");
		break;
	case IO_ERROR:
		if (s->handshaking) {
			session_fail(s, F_TLS, "%s", io_error(s->io));
			break;
		}
		session_salvage(s);
		if (s->got_421)
			session_end(s);
		else
			session_fail(s, F_IO, "%s", io_error(s->io));
		break;
	}
	session_reap(s);
}

static void
session_read(struct session *s)
{
	char	*line;
	size_t	 len;

	while (!s->done) {
		line = evbuffer_readln(s->io->in, &len, EVBUFFER_EOL_LF);
		if (line == NULL) {
			if (evbuffer_get_length(s->io->in) > REPLY_LINE_MAX)
				session_fail(s, F_PROTOCOL,
				    "a reply line over %d bytes",
				    REPLY_LINE_MAX);
			return;
		}
		session_line(s, line, len);
		free(line);
	}
}

/*
 * A write failed: the server may have said 421 and closed while we were
 * still sending.  On a plain connection, read what the kernel still holds
 * before judging.
 */
static void
session_salvage(struct session *s)
{
	char	 buf[4096];
	ssize_t	 n;

	if (s->io->tls != NULL)
		return;
	while ((n = read(s->fd, buf, sizeof(buf))) > 0)
		if (evbuffer_add(s->io->in, buf, (size_t)n) == -1)
			err(1, NULL);
	session_read(s);
}

static void
session_line(struct session *s, char *line, size_t len)
{
	const char	*text;
	int		 code, more;

	if (len == 0 || line[len - 1] != '\r') {
		session_fail(s, F_PROTOCOL, "a reply line ended by a bare LF");
		return;
	}
	line[--len] = '\0';
	if (strlen(line) != len) {
		session_fail(s, F_PROTOCOL, "a NUL in a reply");
		return;
	}
	if (smtp_reply_parse(line, &code, &more, &text) == -1) {
		session_fail(s, F_PROTOCOL, "not a reply: \"%.80s\"", line);
		return;
	}
	if (s->rcode != 0 && code != s->rcode) {
		session_fail(s, F_PROTOCOL, "reply code %d continued by %d",
		    s->rcode, code);
		return;
	}
	if (++s->rlines > REPLY_LINES_MAX) {
		session_fail(s, F_PROTOCOL, "a reply of over %d lines",
		    REPLY_LINES_MAX);
		return;
	}
	s->rcode = code;
	if (s->npending > 0 && s->pending[0] == R_EHLO && code == 250 &&
	    s->rlines > 1)
		session_ext(s, text);
	if (more)
		return;
	s->rcode = 0;
	s->rlines = 0;
	if (opt.verbose > 1)
		fprintf(stderr, "session %u: <<< %s\n", s->n, line);
	session_reply(s, code);
}

static int
ext_is(const char *text, const char *kw)
{
	size_t	 n = strlen(kw);

	return strncasecmp(text, kw, n) == 0 &&
	    (text[n] == '\0' || text[n] == ' ');
}

static void
session_ext(struct session *s, const char *text)
{
	if (ext_is(text, "PIPELINING"))
		s->ext_pipelining = 1;
	else if (ext_is(text, "STARTTLS"))
		s->ext_starttls = 1;
	else if (ext_is(text, "SIZE"))
		s->ext_size = 1;
}

/*
 * One whole reply.  A 421 at any point ends the session (the server
 * closes); otherwise the reply must be one SMTP allows for what it
 * answers.
 */
static void
session_reply(struct session *s, int code)
{
	enum expect	 e;
	int		 class = code / 100;

	if (s->npending == 0) {
		if (code == 421) {
			st.r421++;
			s->got_421 = 1;
			session_refuse_all(s, code);
			session_end(s);
		} else
			session_fail(s, F_PROTOCOL,
			    "a reply %d to nothing, in %s", code, s->where);
		return;
	}
	e = s->pending[0];
	memmove(s->pending, s->pending + 1,
	    --s->npending * sizeof(s->pending[0]));

	if (class == 4 || class == 5) {
		if (code == 421)
			st.r421++;
		else if (class == 4)
			st.r4xx++;
		else
			st.r5xx++;
		st.refused_at[e]++;
		if (code == 421) {
			s->got_421 = 1;
			session_refuse_all(s, code);
			session_end(s);
			return;
		}
	}

	switch (e) {
	case R_BANNER:
		if (code == 220)
			session_cmd(s, R_EHLO, "EHLO %s\r\n", opt.helo);
		else if (class == 4 || class == 5)
			session_cmd(s, R_QUIT, "QUIT\r\n");
		else
			break;
		return;
	case R_EHLO:
		if (code == 250) {
			if ((s->flags & SF_TLS) && !s->in_tls) {
				if (!s->ext_starttls) {
					session_fail(s, F_NOSTARTTLS,
					    "STARTTLS not offered");
					return;
				}
				session_cmd(s, R_STARTTLS, "STARTTLS\r\n");
			} else
				session_next(s);
		} else if (class == 4 || class == 5)
			session_cmd(s, R_QUIT, "QUIT\r\n");
		else
			break;
		return;
	case R_STARTTLS:
		if (code == 220)
			session_starttls(s);
		else if (class == 4 || class == 5)
			session_cmd(s, R_QUIT, "QUIT\r\n");
		else
			break;
		return;
	case R_MAIL:
		if (code == 250) {
			if (!s->pipelined)
				session_cmd(s, R_RCPT, "RCPT TO:<%s@%s>\r\n",
				    opt.user, opt.domain);
		} else if (class == 4 || class == 5)
			session_refused(s, e, code);
		else
			break;
		return;
	case R_RCPT:
		if (code == 250 || code == 251) {
			if (!s->pipelined)
				session_cmd(s, R_DATA, "DATA\r\n");
		} else if (class == 4 || class == 5)
			session_refused(s, e, code);
		else
			break;
		return;
	case R_DATA:
		if (code == 354 && s->tx.code == 0)
			session_content(s);
		else if (code == 354)
			session_fail(s, F_PROTOCOL, "354 to DATA after %d",
			    s->tx.code);
		else if (class == 4 || class == 5)
			session_refused(s, e, code);
		else
			break;
		return;
	case R_DOT:
		if (code == 250 || class == 4 || class == 5) {
			sample(&st.lat_dot, &st.nlat_dot, &st.caplat_dot,
			    elapsed_ms(&s->t_dot));
			if (code != 250)
				s->dotx.code = code;
			message_end(s, &s->dotx, code == 250 ? M_ACCEPTED :
			    M_REFUSED);
			s->content_out = s->dot_out = 0;
			/* Unless the next commands went behind the dot. */
			if (s->npending == 0)
				session_next(s);
			return;
		}
		break;
	case R_RSET:
		if (code == 250)
			session_next(s);
		else if (class == 4 || class == 5)
			session_cmd(s, R_QUIT, "QUIT\r\n");
		else
			break;
		return;
	case R_QUIT:
		if (code != 221)
			break;
		sample(&st.lat_session, &st.nlat_session,
		    &st.caplat_session, elapsed_ms(&s->t_start));
		session_end(s);
		return;
	case R_COUNT:
		break;
	}
	session_fail(s, F_PROTOCOL, "reply %d to %s", code, expect_names[e]);
}

/*
 * A refusal inside a transaction.  Pipelined, the other replies of the
 * batch are still due: the transaction ends with the last of them.
 */
static void
session_refused(struct session *s, enum expect e, int code)
{
	(void)e;
	if (s->tx.code == 0)
		s->tx.code = code;
	if (s->npending > 0)
		return;
	message_end(s, &s->tx, M_REFUSED);
	session_cmd(s, R_RSET, "RSET\r\n");
}

static void
session_starttls(struct session *s)
{
	struct tls	*ctx;

	s->where = "TLS handshake";
	if ((ctx = tls_client()) == NULL)
		err(1, "tls_client");
	if (tls_configure(ctx, tlscfg) == -1) {
		session_fail(s, F_TLS, "tls_configure: %s", tls_error(ctx));
		tls_free(ctx);
		return;
	}
	if (io_start_tls_client(s->io, ctx, opt.servername) == -1) {
		session_fail(s, F_TLS, "%s", io_error(s->io));
		tls_free(ctx);
		return;
	}
	s->handshaking = 1;
}

/* The next transaction, or QUIT. */
static void
session_next(struct session *s)
{
	char	 size[32] = "";

	if (s->msg == (int)opt.messages) {
		session_cmd(s, R_QUIT, "QUIT\r\n");
		return;
	}
	snprintf(s->tx.id, sizeof(s->tx.id), "%s-%llu", opt.run,
	    (unsigned long long)s->n * opt.messages + (unsigned)s->msg);
	s->msg++;
	s->tx.open = 1;
	s->tx.code = 0;
	s->large = chance(s, opt.large);
	s->size = s->large ? opt.large_size : opt.small_size;
	s->size = s->size * 3 / 4 + rnd(s) % (s->size / 2 + 1);
	if (s->ext_size)
		snprintf(size, sizeof(size), " SIZE=%zu", s->size + 256);
	s->pipelined = (s->flags & SF_PIPELINE) && s->ext_pipelining;
	if ((s->flags & SF_PIPELINE) && !s->ext_pipelining)
		st.no_pipelining++;
	if (!s->pipelined) {
		session_cmd(s, R_MAIL, "MAIL FROM:<%s>%s\r\n", opt.sender,
		    size);
		return;
	}
	if (s->npending + 3 > MAX_PENDING)
		errx(1, "too many replies pending");
	s->pending[s->npending++] = R_MAIL;
	s->pending[s->npending++] = R_RCPT;
	s->pending[s->npending++] = R_DATA;
	session_cmd(s, R_COUNT,
	    "MAIL FROM:<%s>%s\r\nRCPT TO:<%s@%s>\r\nDATA\r\n",
	    opt.sender, size, opt.user, opt.domain);
	s->where = "pipelined MAIL, RCPT, DATA";
}

/*
 * The message: headers with the id, then lines of text (some starting
 * with a dot, stuffed), then the final dot; a vanishing session sends only
 * a prefix of it, cut anywhere, then leaves.
 */
static void
session_content(struct session *s)
{
	static const char	 letters[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
	struct evbuffer		*b;
	char			 line[96];
	size_t			 len, i, cut;

	if ((b = evbuffer_new()) == NULL)
		err(1, NULL);
	evbuffer_add_printf(b, "Message-ID: <%s@flood.invalid>\r\n"
	    "X-Flood-Id: %s\r\n"
	    "From: <%s>\r\n"
	    "To: <%s@%s>\r\n"
	    "Subject: flood %s%s%s%s\r\n"
	    "\r\n",
	    s->tx.id, s->tx.id, opt.sender, opt.user, opt.domain, s->tx.id,
	    s->large ? " large" : "", (s->flags & SF_TLS) ? " tls" : "",
	    (s->flags & SF_LAGGY) ? " laggy" : "");
	while (evbuffer_get_length(b) < s->size) {
		len = 20 + rnd(s) % 57;
		for (i = 0; i < len; i++)
			line[i] = letters[rnd(s) % (sizeof(letters) - 1)];
		if (rnd(s) % 64 == 0)
			line[0] = line[1] = '.';
		evbuffer_add_printf(b, "%.*s\r\n", (int)len, line);
	}
	evbuffer_add(b, ".\r\n", 3);
	len = evbuffer_get_length(b);
	st.bytes += len;

	s->where = "content";
	if (s->msg - 1 == s->vanish_msg) {
		s->vanishing = 1;
		s->where = "content (vanishing)";
		/* A quarter of them stop within the end marker. */
		if (rnd(s) % 4 == 0)
			cut = len - 1 - rnd(s) % 5;
		else
			cut = rnd(s) % len;
		session_write(s, evbuffer_pullup(b, (ssize_t)cut), cut, 1);
		evbuffer_free(b);
		if (cut == 0 || io_queued(s->io) + evbuffer_get_length(s->lag)
		    == 0)
			session_drained(s);
		return;
	}
	session_write(s, evbuffer_pullup(b, -1), len, 1);
	evbuffer_free(b);
	s->dotx = s->tx;
	s->tx.open = 0;
	s->content_out = 1;
	s->dot_out = 0;
	s->pending[s->npending++] = R_DOT;
	clock_gettime(CLOCK_MONOTONIC, &s->t_dot);
	/*
	 * A pipelining client sends its next commands (the next MAIL, RCPT
	 * and DATA, or QUIT) right behind the dot, as RFC 2920 allows.
	 */
	if (s->pipelined && !(s->flags & SF_LAGGY))
		session_next(s);
}

/* Everything given to io has left; was it the end of something? */
static void
session_drained(struct session *s)
{
	struct linger	 l = { 1, 0 };

	if (evbuffer_get_length(s->lag) > 0)
		return;
	if (s->vanishing) {
		/* Half of them reset the connection, half close it. */
		if (rnd(s) & 1)
			setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l,
			    sizeof(l));
		message_end(s, &s->tx, M_VANISHED);
		session_end(s);
		return;
	}
	if (s->content_out && !s->dot_out) {
		s->dot_out = 1;
		s->where = "end of data";
		clock_gettime(CLOCK_MONOTONIC, &s->t_dot);
	}
}

/*
 * Send bytes: at once, or for a laggy client through a trickle, one byte
 * at a time for commands (after a pause), in small pieces for content
 * with its end marker one byte at a time.
 */
static void
session_write(struct session *s, const void *p, size_t len, int content)
{
	struct timeval	 tv;
	int		 ms, idle;

	if (len == 0)
		return;
	if (!(s->flags & SF_LAGGY)) {
		if (io_write(s->io, p, len) == -1)
			err(1, NULL);
		return;
	}
	idle = evbuffer_get_length(s->lag) == 0;
	if (evbuffer_add(s->lag, p, len) == -1)
		err(1, NULL);
	s->lag_content = content;
	if (!idle || evtimer_pending(&s->ev_lag, NULL))
		return;
	ms = content ? opt.byte_pause_ms : opt.cmd_pause_ms / 2 +
	    (int)(rnd(s) % (unsigned)(opt.cmd_pause_ms + 1));
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&s->ev_lag, &tv);
}

static void
session_lag(int fd, short event, void *arg)
{
	struct session	*s = arg;
	struct timeval	 tv;
	size_t		 len, n = 1;

	(void)fd;
	(void)event;
	len = evbuffer_get_length(s->lag);
	if (s->done || len == 0)
		return;
	if (s->lag_content && len > 5) {
		n = 1 + rnd(s) % LAG_CHUNK_MAX;
		if (n > len - 5)
			n = len - 5;
	}
	if (io_write(s->io, evbuffer_pullup(s->lag, (ssize_t)n), n) == -1)
		err(1, NULL);
	evbuffer_drain(s->lag, n);
	if (evbuffer_get_length(s->lag) > 0) {
		tv.tv_sec = opt.byte_pause_ms / 1000;
		tv.tv_usec = (opt.byte_pause_ms % 1000) * 1000;
		evtimer_add(&s->ev_lag, &tv);
	}
}

/* A command; e says what its reply answers (R_COUNT: the caller does). */
static void
session_cmd(struct session *s, enum expect e, const char *fmt, ...)
{
	char	 buf[1024];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		errx(1, "command too long");
	if (opt.verbose > 1)
		fprintf(stderr, "session %u: >>> %.*s", s->n, n, buf);
	if (e != R_COUNT) {
		if (s->npending == MAX_PENDING)
			errx(1, "too many replies pending");
		s->pending[s->npending++] = e;
		s->where = expect_names[e];
	}
	session_write(s, buf, (size_t)n, 0);
}

/* A 421: whatever is under way is refused. */
static void
session_refuse_all(struct session *s, int code)
{
	if (s->dotx.open) {
		s->dotx.code = code;
		message_end(s, &s->dotx, M_REFUSED);
	}
	if (s->tx.open) {
		if (s->tx.code == 0)
			s->tx.code = code;
		message_end(s, &s->tx, M_REFUSED);
	}
}

static void
message_end(struct session *s, struct txn *t, enum outcome o)
{
	st.outcomes[o]++;
	if (o == M_ACCEPTED) {
		if (out_accepted)
			fprintf(out_accepted, "%s\n", t->id);
	} else if (out_others) {
		if (o == M_REFUSED)
			/* "dot": the refusal came when the final dot was out
			 * (a 421 then leaves the message in doubt) */
			fprintf(out_others, "%s %s %d%s\n", outcome_names[o],
			    t->id, t->code, t == &s->dotx && s->dot_out ?
			    " dot" : "");
		else
			fprintf(out_others, "%s %s\n", outcome_names[o],
			    t->id);
	}
	t->open = 0;
	if (t == &s->tx)
		s->vanishing = 0;
}

static void
session_fail(struct session *s, enum failure f, const char *fmt, ...)
{
	char	 why[256];
	va_list	 ap;

	if (s->done)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	st.failures[f]++;
	st.failed++;
	if (opt.verbose || st.shown++ < ERRORS_SHOWN)
		fprintf(stderr, "flood: session %u%s%s%s%s to %s: %s: %s, "
		    "in %s\n", s->n, (s->flags & SF_TLS) ? " tls" : "",
		    (s->flags & SF_LAGGY) ? " laggy" : "",
		    (s->flags & SF_PIPELINE) ? " pipelining" : "",
		    (s->flags & SF_VANISH) ? " vanishing" : "",
		    s->target->name, failure_names[f], why, s->where);
	s->failed = 1;
	session_end(s);
}

/* The session is over; the caller's session_reap() frees it. */
static void
session_end(struct session *s)
{
	if (s->done)
		return;
	s->done = 1;
	/* A dot that never left cannot have been taken. */
	if (s->dotx.open)
		message_end(s, &s->dotx, s->dot_out ? M_INDOUBT : M_ABORTED);
	if (s->tx.open)
		message_end(s, &s->tx, M_ABORTED);
	evtimer_del(&s->ev_lag);
	if (s->io == NULL) {
		if (s->fd != -1) {
			event_del(&s->ev_connect);
			close(s->fd);
		}
	} else
		io_free(s->io);
	s->io = NULL;
	s->fd = -1;
}

static void
session_reap(struct session *s)
{
	if (!s->done)
		return;
	TAILQ_REMOVE(&active, s, entry);
	if (!s->failed)
		st.ok++;
	evbuffer_free(s->lag);
	free(s);
	st.active--;
	st.ended++;
	refill();
}

/* The run took too long: whatever is still going is a hang. */
static void
deadline(int fd, short event, void *arg)
{
	struct session	*s;

	(void)fd;
	(void)event;
	(void)arg;
	warnx("deadline of %ds reached: %u sessions still active, %u not "
	    "started", opt.deadline, st.active, opt.sessions - st.started);
	opt.sessions = st.started;
	while ((s = TAILQ_FIRST(&active)) != NULL) {
		session_fail(s, F_UNFINISHED, "still running");
		session_reap(s);
	}
	event_loopbreak();
}

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
percentile(double *v, size_t n, double p)
{
	size_t	 i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100 * (double)n + 0.999999);
	if (i == 0)
		i = 1;
	return v[i - 1];
}

static void
report(void)
{
	double	 secs = elapsed_ms(&t_begin) / 1000;
	int	 i;

	if (st.nlat_dot > 0)
		qsort(st.lat_dot, st.nlat_dot, sizeof(double), cmp_double);
	if (st.nlat_session > 0)
		qsort(st.lat_session, st.nlat_session, sizeof(double),
		    cmp_double);
	printf("flood: run %s seed %llu: %u sessions, %u at once, %u "
	    "message%s each, to", opt.run, (unsigned long long)opt.seed,
	    st.started, opt.concurrency, opt.messages,
	    opt.messages == 1 ? "" : "s");
	for (i = 0; i < ntargets; i++)
		printf(" %s", targets[i].name);
	printf("\n");
	printf("sessions: %u ended, %u ok, %u failed; tls %u, laggy %u, "
	    "pipelining %u (not offered %u), vanishing %u\n", st.ended,
	    st.ok, st.failed, st.kinds[0], st.kinds[1], st.kinds[3],
	    st.no_pipelining, st.kinds[2]);
	printf("messages: %u accepted, %u refused, %u vanished, %u aborted, "
	    "%u in doubt; %.1f MB of content\n", st.outcomes[M_ACCEPTED],
	    st.outcomes[M_REFUSED], st.outcomes[M_VANISHED],
	    st.outcomes[M_ABORTED], st.outcomes[M_INDOUBT],
	    (double)st.bytes / (1024 * 1024));
	printf("rate: %.1f messages/s accepted, %.1f sessions/s, over "
	    "%.2f s\n", secs > 0 ? st.outcomes[M_ACCEPTED] / secs : 0,
	    secs > 0 ? st.ended / secs : 0, secs);
	printf("latency end of data -> reply (ms): p50 %.1f p90 %.1f "
	    "p99 %.1f max %.1f (%zu)\n",
	    percentile(st.lat_dot, st.nlat_dot, 50),
	    percentile(st.lat_dot, st.nlat_dot, 90),
	    percentile(st.lat_dot, st.nlat_dot, 99),
	    percentile(st.lat_dot, st.nlat_dot, 100), st.nlat_dot);
	printf("latency whole session (ms): p50 %.1f p90 %.1f p99 %.1f "
	    "max %.1f (%zu)\n",
	    percentile(st.lat_session, st.nlat_session, 50),
	    percentile(st.lat_session, st.nlat_session, 90),
	    percentile(st.lat_session, st.nlat_session, 99),
	    percentile(st.lat_session, st.nlat_session, 100),
	    st.nlat_session);
	printf("replies: 421 %u, other 4xx %u, 5xx %u; refusals at",
	    st.r421, st.r4xx, st.r5xx);
	for (i = 0; i < R_COUNT; i++)
		printf("%s %s %u", i ? "," : "", expect_names[i],
		    st.refused_at[i]);
	printf("\n");
	printf("errors:");
	for (i = 0; i < F_COUNT; i++)
		printf("%s %s %u", i ? "," : "", failure_names[i],
		    st.failures[i]);
	printf("\n");
}

int
main(int argc, char **argv)
{
	struct rlimit	 rl;
	struct timeval	 tv;
	const char	*accepted = NULL, *others = NULL;
	char		*p;
	int		 ch;

	opt.sessions = 100;
	opt.concurrency = 10;
	opt.messages = 1;
	opt.large = 0.05;
	opt.small_size = 2 * 1024;
	opt.large_size = 256 * 1024;
	opt.cmd_pause_ms = 1000;
	opt.byte_pause_ms = 5;
	opt.reply_timeout = 60;
	opt.deadline = 600;
	opt.domain = "test.example";
	opt.user = "flood";
	opt.sender = NULL;
	opt.helo = "flood.example";
	opt.servername = "localhost";
	opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);

	while ((ch = getopt(argc, argv,
	    "a:b:c:d:f:g:H:I:kl:m:N:n:O:o:P:p:S:s:T:u:V:vW:z:")) != -1) {
		switch (ch) {
		case 'a':
			opt.cafile = optarg;
			break;
		case 'b':
			opt.byte_pause_ms = (int)parse_number("byte pause",
			    optarg, 0, 60000);
			break;
		case 'c':
			opt.concurrency = (unsigned int)parse_number(
			    "concurrency", optarg, 1, 1000000);
			break;
		case 'd':
			opt.domain = optarg;
			break;
		case 'f':
			opt.sender = optarg;
			break;
		case 'g':
			opt.laggy = parse_fraction("laggy", optarg);
			break;
		case 'H':
			opt.helo = optarg;
			break;
		case 'I':
			if (strlen(optarg) >= sizeof(opt.run) ||
			    strspn(optarg, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._") !=
			    strlen(optarg) || *optarg == '\0')
				errx(2, "run id: up to %zu letters, digits, "
				    "dots and underscores",
				    sizeof(opt.run) - 1);
			snprintf(opt.run, sizeof(opt.run), "%s", optarg);
			break;
		case 'k':
			opt.noverify = 1;
			break;
		case 'l':
			opt.large = parse_fraction("large", optarg);
			break;
		case 'm':
			opt.messages = (unsigned int)parse_number("messages",
			    optarg, 1, 100000);
			break;
		case 'N':
			opt.servername = optarg;
			break;
		case 'n':
			opt.sessions = (unsigned int)parse_number("sessions",
			    optarg, 1, 100000000);
			break;
		case 'O':
			others = optarg;
			break;
		case 'o':
			accepted = optarg;
			break;
		case 'P':
			opt.cmd_pause_ms = (int)parse_number("command pause",
			    optarg, 0, 3600000);
			break;
		case 'p':
			opt.pipeline = parse_fraction("pipelining", optarg);
			break;
		case 'S':
			opt.seed = (uint64_t)parse_number("seed", optarg, 0,
			    INT64_MAX);
			break;
		case 's':
			opt.tls = parse_fraction("tls", optarg);
			break;
		case 'T':
			opt.reply_timeout = (int)parse_number("reply timeout",
			    optarg, 1, 86400);
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'V':
			opt.vanish = parse_fraction("vanish", optarg);
			break;
		case 'v':
			opt.verbose++;
			break;
		case 'W':
			opt.deadline = (int)parse_number("deadline", optarg,
			    0, 86400 * 7);
			break;
		case 'z':
			if ((p = strchr(optarg, ',')) == NULL)
				errx(2, "sizes: small,large");
			*p++ = '\0';
			opt.small_size = parse_size("small size", optarg);
			opt.large_size = parse_size("large size", p);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2 || argc % 2 != 0)
		usage();
	for (; argc > 0; argc -= 2, argv += 2)
		parse_target(argv[0], argv[1]);
	if (opt.sender == NULL) {
		if (asprintf(&p, "flood@%s", opt.domain) == -1)
			err(1, NULL);
		opt.sender = p;
	}
	if (opt.run[0] == '\0')
		snprintf(opt.run, sizeof(opt.run), "%llx",
		    ((unsigned long long)time(NULL) ^
		    ((unsigned long long)getpid() << 20)) &
		    0xffffffffffULL);

	/* Each session holds one descriptor; ask for enough. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)opt.concurrency + 32)
		errx(2, "%u sessions at once need more descriptors than the "
		    "limit of %llu", opt.concurrency,
		    (unsigned long long)rl.rlim_cur);

	if (opt.tls > 0) {
		if ((tlscfg = tls_config_new()) == NULL)
			errx(1, "tls_config_new");
		if (opt.noverify) {
			tls_config_insecure_noverifycert(tlscfg);
			tls_config_insecure_noverifyname(tlscfg);
		} else if (opt.cafile != NULL &&
		    tls_config_set_ca_file(tlscfg, opt.cafile) == -1)
			errx(1, "%s: %s", opt.cafile, tls_config_error(tlscfg));
	}
	if (accepted != NULL && (out_accepted = fopen(accepted, "w")) == NULL)
		err(1, "%s", accepted);
	if (others != NULL && (out_others = fopen(others, "w")) == NULL)
		err(1, "%s", others);
	signal(SIGPIPE, SIG_IGN);

	event_init();
	if (opt.deadline > 0) {
		evtimer_set(&ev_deadline, deadline, NULL);
		tv.tv_sec = opt.deadline;
		tv.tv_usec = 0;
		evtimer_add(&ev_deadline, &tv);
	}
	clock_gettime(CLOCK_MONOTONIC, &t_begin);
	refill();
	if (st.ended < opt.sessions)
		event_dispatch();
	report();
	if ((out_accepted && fclose(out_accepted) == EOF) ||
	    (out_others && fclose(out_others) == EOF))
		err(1, "writing the lists");
	return st.failed > 0;
}
