/*
 * One SMTP client session (RFC 5321 server side), as an explicit state
 * machine driven by a command table.  SPEC.md section 4.3 lists every
 * reply; the choices that RFC 5321 leaves open are made here:
 *
 *  - Only CRLF "." CRLF ends DATA.  A line ended by a bare LF is taken as
 *    a line (as Postfix's "normalize" does), but it never starts or ends
 *    the end-of-data marker, so SMTP smuggling through "\n.\n" or
 *    "\r\n.\n" cannot split a message.  A bare CR or a NUL in the content
 *    gets the message refused at its end (550 5.6.0); in a command, 500.
 *  - Content lines are limited to 1000 bytes with CRLF, command lines to
 *    SMTP_COMMAND_MAX.  Over-long content gets the message refused at its
 *    end; an over-long command gets 500 5.5.2.
 *  - Content is stored with LF line ends, dot-unstuffed, after our own
 *    Received: header.  SIZE is enforced while it streams: nothing beyond
 *    the limit is written.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "monkey.h"
#include "mtad.h"
#include "smtp.h"
#include "smtp_proto.h"
#include "xmalloc.h"

#define SMTP_COMMAND_MAX	2048
#define SMTP_MAX_HOPS		50	/* Received: headers before 554 */
#define SMTP_OUTPUT_MAX		(64 * 1024)	/* unread replies */

static void	 session_io(struct io *, enum io_event, void *);
static void	 session_read(struct session *);
static int	 session_getline(struct session *, char *, size_t, size_t,
		    size_t *, int *);
static void	 session_reply(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 session_enter_state(struct session *, enum session_state);
static void	 session_greeting(struct session *);
static void	 session_command(struct session *, char *, size_t);
static void	 session_data_line(struct session *, char *, size_t, int);
static void	 session_data_end(struct session *);
static void	 session_tx_reset(struct session *);
static int	 session_starttls_offered(struct session *);
static void	 session_set_client(struct session *,
		    const struct sockaddr_storage *);

static void	 cmd_helo(struct session *, const char *);
static void	 cmd_ehlo(struct session *, const char *);
static void	 cmd_mail(struct session *, const char *);
static void	 cmd_rcpt(struct session *, const char *);
static void	 cmd_data(struct session *, const char *);
static void	 cmd_rset(struct session *, const char *);
static void	 cmd_noop(struct session *, const char *);
static void	 cmd_quit(struct session *, const char *);
static void	 cmd_help(struct session *, const char *);
static void	 cmd_vrfy(struct session *, const char *);
static void	 cmd_expn(struct session *, const char *);
static void	 cmd_starttls(struct session *, const char *);
static void	 cmd_xclient(struct session *, const char *);
static void	 cmd_not_available(struct session *, const char *);

static const struct {
	enum smtp_verb	 verb;
	void		(*handler)(struct session *, const char *);
} commands[] = {
	{ SMTP_HELO,		cmd_helo },
	{ SMTP_EHLO,		cmd_ehlo },
	{ SMTP_MAIL,		cmd_mail },
	{ SMTP_RCPT,		cmd_rcpt },
	{ SMTP_DATA,		cmd_data },
	{ SMTP_RSET,		cmd_rset },
	{ SMTP_NOOP,		cmd_noop },
	{ SMTP_QUIT,		cmd_quit },
	{ SMTP_HELP,		cmd_help },
	{ SMTP_VRFY,		cmd_vrfy },
	{ SMTP_EXPN,		cmd_expn },
	{ SMTP_STARTTLS,	cmd_starttls },
	{ SMTP_XCLIENT,		cmd_xclient },
	{ SMTP_AUTH,		cmd_not_available },
	{ SMTP_BDAT,		cmd_not_available },
};

static const char *state_names[] = {
	"greeting", "init", "helo", "mail", "rcpt", "data-wait", "data",
	"commit", "tls", "quit",
};

static const char *
hostname_of(struct session *s)
{
	return s->listener->hostname ? s->listener->hostname :
	    mtad_conf->hostname;
}

static void
session_set_client(struct session *s, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	s->client = *ss;
	if (ss->ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, s->client_addr,
		    sizeof(s->client_addr));
		s->client_port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, s->client_addr,
		    sizeof(s->client_addr));
		s->client_port = ntohs(sin6->sin6_port);
	} else {
		strcpy(s->client_addr, "local");
		s->client_port = 0;
	}
	s->xclient_allowed = s->listener->xclient_from != NULL &&
	    table_match_netaddr(s->listener->xclient_from, &s->client);
}

struct session *
session_new(struct listener *l, int fd, const struct sockaddr_storage *ss)
{
	struct session	*s;
	socklen_t	 len = sizeof(s->local);

	if (MONKEY("smtp.session", ENOMEM) ||
	    (s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("session");
		return NULL;
	}
	s->id = ((uint64_t)arc4random() << 32) | arc4random();
	s->listener = l;
	session_set_client(s, ss);
	if (getsockname(fd, (struct sockaddr *)&s->local, &len) == -1)
		memset(&s->local, 0, sizeof(s->local));
	if ((s->io = io_new(fd, session_io, s)) == NULL) {
		log_warn("session");
		free(s);
		return NULL;
	}
	io_set_timeout(s->io, mtad_conf->command_timeout * 1000);
	log_info("%016" PRIx64 " smtp connected address=%s port=%d "
	    "listener=%s%s%s", s->id, s->client_addr, s->client_port, l->on,
	    l->tag ? " tag=" : "", l->tag ? l->tag : "");
	if (l->tls == LISTEN_TLS_SMTPS) {
		session_enter_state(s, S_GREETING);
		io_pause(s->io);
		if (io_start_tls_server(s->io, smtp_tls_server(l->pki)) == -1) {
			log_warnx("%016" PRIx64 " smtp tls: %s", s->id,
			    io_error(s->io));
			/* the caller closes fd when we return NULL */
			s->io->fd = -1;
			io_free(s->io);
			free(s);
			return NULL;
		}
	} else
		session_greeting(s);
	return s;
}

static void
session_enter_state(struct session *s, enum session_state state)
{
	if (log_getverbose() > 1)
		log_debug("%016" PRIx64 " smtp state %s -> %s", s->id,
		    state_names[s->state], state_names[state]);
	s->state = state;
}

static void
session_greeting(struct session *s)
{
	session_reply(s, "220 %s ESMTP mtad", hostname_of(s));
	session_enter_state(s, S_INIT);
}

/*
 * Send a reply.  Protocol errors (500-504, 555) count towards max-errors:
 * past it the client is told 421 and disconnected.
 */
static void
session_reply(struct session *s, const char *fmt, ...)
{
	char	 buf[1024];
	va_list	 ap;
	int	 code;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_debug("%016" PRIx64 " smtp >>> %s", s->id, buf);
	io_printf(s->io, "%s\r\n", buf);
	code = atoi(buf);
	if ((code >= 500 && code <= 504) || code == 555) {
		if (++s->nerrors >= mtad_conf->max_errors &&
		    s->state != S_QUIT) {
			io_printf(s->io, "421 4.7.0 %s Too many errors, "
			    "closing connection\r\n", hostname_of(s));
			log_info("%016" PRIx64 " smtp too many errors", s->id);
			session_tx_reset(s);
			session_enter_state(s, S_QUIT);
			io_pause(s->io);
		}
	}
}

void
session_close(struct session *s, const char *reason)
{
	log_info("%016" PRIx64 " smtp disconnected reason=%s", s->id, reason);
	if (s->tx != NULL && s->state != S_COMMIT)
		session_tx_reset(s);
	/* S_COMMIT: the queue answers for a session that is gone. */
	if (s->tx != NULL) {
		free(s->tx->rcpts);
		free(s->tx);
	}
	smtp_session_gone(s);
	io_linger(s->io);
	free(s);
}

static void
session_io(struct io *io, enum io_event evt, void *arg)
{
	struct session	*s = arg;
	char		 info[128];

	(void)io;
	switch (evt) {
	case IO_DATAIN:
		session_read(s);
		break;
	case IO_LOWAT:
		if (s->state == S_QUIT)
			session_close(s, "quit");
		else if (s->out_blocked) {
			s->out_blocked = 0;
			if (s->state != S_DATA_WAIT && s->state != S_COMMIT &&
			    s->state != S_TLS)
				io_resume(s->io);
		}
		else if (s->state == S_TLS && !s->io->tls &&
		    io_start_tls_server(s->io,
		    smtp_tls_server(s->listener->pki)) == -1) {
			log_warnx("%016" PRIx64 " smtp tls: %s", s->id,
			    io_error(s->io));
			session_close(s, "tls-error");
		}
		break;
	case IO_TLSREADY:
		s->tls = 1;
		log_info("%016" PRIx64 " smtp tls %s", s->id,
		    io_tls_info(s->io, info, sizeof(info)));
		if (s->state == S_GREETING)
			session_greeting(s);
		else {
			/* RFC 3207 4.2: forget what came before TLS. */
			s->helo[0] = '\0';
			s->esmtp = 0;
			session_enter_state(s, S_INIT);
		}
		io_resume(s->io);
		break;
	case IO_TIMEOUT:
		if (s->state == S_DATA_WAIT || s->state == S_COMMIT) {
			/* Waiting for our queue: not the client's fault. */
			break;
		}
		log_info("%016" PRIx64 " smtp timeout state=%s", s->id,
		    state_names[s->state]);
		if (s->io->tls_handshaking || s->state == S_QUIT ||
		    s->state == S_TLS || s->state == S_GREETING) {
			/* Nothing can be said to a client that does not read. */
			session_close(s, "timeout");
			break;
		}
		io_printf(s->io, "421 4.4.2 %s Timeout, closing connection\r\n",
		    hostname_of(s));
		session_tx_reset(s);
		session_enter_state(s, S_QUIT);
		io_pause(s->io);
		break;
	case IO_DISCONNECTED:
		session_close(s, s->state == S_DATA ? "disconnected-in-data" :
		    "disconnected");
		break;
	case IO_ERROR:
		log_warnx("%016" PRIx64 " smtp %s", s->id, io_error(s->io));
		session_close(s, "io-error");
		break;
	}
}

/*
 * Take one line ending in LF from the input.  Returns 1 with the line
 * (CR LF or LF removed, *crlf says which), 0 when no whole line is there
 * yet, -1 when a line longer than limit was skipped.
 */
static int
session_getline(struct session *s, char *buf, size_t size, size_t limit,
    size_t *len, int *crlf)
{
	struct evbuffer		*in = s->io->in;
	struct evbuffer_ptr	 eol;
	size_t			 n, avail;

	eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (eol.pos == -1) {
		avail = evbuffer_get_length(in);
		if (avail > limit) {
			/* Keep the last byte: it may be the CR of CRLF. */
			evbuffer_drain(in, avail - 1);
			s->discarding = 1;
		}
		return 0;
	}
	n = (size_t)eol.pos;
	if (s->discarding || n > limit) {
		*crlf = 0;
		if (n > 0) {
			evbuffer_drain(in, n - 1);
			evbuffer_remove(in, buf, 1);
			*crlf = buf[0] == '\r';
		}
		evbuffer_drain(in, 1);
		s->discarding = 0;
		return -1;
	}
	if (n >= size)
		fatalx("session_getline: buffer too small");
	evbuffer_remove(in, buf, n);
	evbuffer_drain(in, 1);
	*crlf = n > 0 && buf[n - 1] == '\r';
	if (*crlf)
		n--;
	buf[n] = '\0';
	*len = n;
	return 1;
}

static int
session_reading(struct session *s)
{
	switch (s->state) {
	case S_INIT:
	case S_HELO:
	case S_MAIL:
	case S_RCPT:
	case S_DATA:
		return !s->io->paused;
	default:
		return 0;
	}
}

static void
session_read(struct session *s)
{
	char	 line[SMTP_COMMAND_MAX + 2];
	size_t	 len = 0;
	int	 r, crlf;

	while (session_reading(s)) {
		/*
		 * A pipelining client that does not read its replies must not
		 * make them pile up: stop reading until they are written.
		 */
		if (io_queued(s->io) > SMTP_OUTPUT_MAX) {
			s->out_blocked = 1;
			io_pause(s->io);
			break;
		}
		if (s->state == S_DATA) {
			r = session_getline(s, line, sizeof(line),
			    SMTP_LINE_MAX - 1, &len, &crlf);
			if (r == 0)
				break;
			if (r == -1) {
				if (s->tx->error == TX_OK)
					s->tx->error = TX_LINE_TOO_LONG;
				s->tx->prev_crlf = crlf;
				continue;
			}
			session_data_line(s, line, len, crlf);
			continue;
		}
		r = session_getline(s, line, sizeof(line), SMTP_COMMAND_MAX,
		    &len, &crlf);
		if (r == 0)
			break;
		if (r == -1) {
			session_reply(s, "500 5.5.2 Line too long");
			continue;
		}
		session_command(s, line, len);
	}
}

static void
session_command(struct session *s, char *line, size_t len)
{
	struct smtp_command	 cmd;
	size_t			 i;

	if (memchr(line, '\0', len) != NULL || strchr(line, '\r') != NULL) {
		session_reply(s, "500 5.5.2 Syntax error: bad characters in "
		    "command line");
		return;
	}
	log_debug("%016" PRIx64 " smtp <<< %s", s->id, line);
	smtp_command_parse(line, &cmd);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].verb == cmd.verb) {
			commands[i].handler(s, cmd.has_args ? cmd.args : NULL);
			return;
		}
	session_reply(s, "500 5.5.1 Command unrecognized");
}

/* Forget the transaction; give back a message file not committed. */
static void
session_tx_reset(struct session *s)
{
	struct tx	*tx = s->tx;

	if (tx == NULL)
		return;
	if (tx->fp != NULL)
		fclose(tx->fp);
	if (tx->msgid != 0)
		smtp_request_rollback(tx->msgid);
	free(tx->rcpts);
	free(tx);
	s->tx = NULL;
}

static int
session_starttls_offered(struct session *s)
{
	return !s->tls && (s->listener->tls == LISTEN_TLS_STARTTLS ||
	    s->listener->tls == LISTEN_TLS_REQUIRE);
}

static int
valid_helo(const char *arg)
{
	size_t	 i;

	if (arg == NULL || *arg == '\0' || strlen(arg) > SMTP_DOMAIN_MAX)
		return 0;
	for (i = 0; arg[i]; i++)
		if (isspace((unsigned char)arg[i]) || iscntrl((unsigned char)arg[i]))
			return 0;
	return 1;
}

static void
session_hello(struct session *s, const char *arg, int esmtp)
{
	if (!valid_helo(arg)) {
		session_reply(s, "501 5.5.4 Syntax: %s hostname",
		    esmtp ? "EHLO" : "HELO");
		return;
	}
	session_tx_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", arg);
	s->esmtp = esmtp;
	session_enter_state(s, S_HELO);
}

static void
cmd_helo(struct session *s, const char *arg)
{
	session_hello(s, arg, 0);
	if (s->state == S_HELO && !s->esmtp)
		session_reply(s, "250 %s Hello %s [%s], pleased to meet you",
		    hostname_of(s), s->helo, s->client_addr);
}

static void
cmd_ehlo(struct session *s, const char *arg)
{
	session_hello(s, arg, 1);
	if (s->state != S_HELO || !s->esmtp)
		return;
	session_reply(s, "250-%s Hello %s [%s], pleased to meet you",
	    hostname_of(s), s->helo, s->client_addr);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-ENHANCEDSTATUSCODES");
	session_reply(s, "250-SIZE %zu", mtad_conf->max_message_size);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SMTPUTF8");
	session_reply(s, "250-DSN");
	if (session_starttls_offered(s))
		session_reply(s, "250-STARTTLS");
	if (s->xclient_allowed)
		session_reply(s, "250-XCLIENT NAME ADDR PORT PROTO HELO LOGIN "
		    "DESTADDR DESTPORT");
	session_reply(s, "250 HELP");
}

static int
has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* MAIL FROM parameters (RFC 1870, 6152, 6531, 3461).  0 or replied. */
static int
mail_params(struct session *s, struct tx *tx, const char *params)
{
	static const char *const known[] = {
		"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID",
	};
	char		 key[32], value[512], envid[512];
	char		*end;
	unsigned long long size;
	unsigned int	 seen = 0, bit;
	int		 r;

	while ((r = smtp_param_next(&params, key, sizeof(key), value,
	    sizeof(value))) == 1) {
		if (!s->esmtp) {
			session_reply(s, "555 5.5.4 Parameters need EHLO");
			return -1;
		}
		/* Each known parameter at most once. */
		for (bit = 0; bit < sizeof(known) / sizeof(known[0]); bit++)
			if (strcmp(key, known[bit]) == 0)
				break;
		if (seen & (1U << bit)) {
			session_reply(s, "501 5.5.4 Duplicate parameter %s",
			    key);
			return -1;
		}
		seen |= 1U << bit;
		if (strcmp(key, "SIZE") == 0) {
			errno = 0;
			size = strtoull(value, &end, 10);
			if (!isdigit((unsigned char)value[0]) || *end != '\0' ||
			    errno) {
				session_reply(s, "501 5.5.4 Bad SIZE value");
				return -1;
			}
			if (size > mtad_conf->max_message_size) {
				session_reply(s, "552 5.3.4 Message size "
				    "exceeds fixed maximum message size");
				return -1;
			}
		} else if (strcmp(key, "BODY") == 0) {
			if (strcasecmp(value, "8BITMIME") == 0)
				tx->flags |= ENVELOPE_8BITMIME;
			else if (strcasecmp(value, "7BIT") != 0) {
				session_reply(s, "555 5.5.4 Unsupported BODY "
				    "value");
				return -1;
			}
		} else if (strcmp(key, "SMTPUTF8") == 0 && value[0] == '\0')
			tx->flags |= ENVELOPE_SMTPUTF8;
		else if (strcmp(key, "RET") == 0) {
			if (strcasecmp(value, "FULL") != 0 &&
			    strcasecmp(value, "HDRS") != 0) {
				session_reply(s, "501 5.5.4 Bad RET value");
				return -1;
			}
			strcpy(tx->dsn_ret, toupper((unsigned char)value[0]) ==
			    'F' ? "FULL" : "HDRS");
		} else if (strcmp(key, "ENVID") == 0) {
			if (xtext_decode(value, envid, sizeof(envid)) == -1 ||
			    strlen(envid) > 100 || envid[0] == '\0' ||
			    strlen(value) >= sizeof(tx->dsn_envid)) {
				session_reply(s, "501 5.5.4 Bad ENVID value");
				return -1;
			}
			snprintf(tx->dsn_envid, sizeof(tx->dsn_envid), "%.300s",
			    value);
		} else {
			session_reply(s, "555 5.5.4 Unsupported parameter %s",
			    key);
			return -1;
		}
	}
	if (r == -1) {
		session_reply(s, "501 5.5.4 Syntax error in parameters");
		return -1;
	}
	return 0;
}

static void
cmd_mail(struct session *s, const char *arg)
{
	struct mailaddr	 addr;
	struct tx	*tx;
	const char	*params;

	if (s->state == S_INIT) {
		session_reply(s, "503 5.5.1 Send HELO or EHLO first");
		return;
	}
	if (s->state != S_HELO) {
		session_reply(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (s->listener->tls == LISTEN_TLS_REQUIRE && !s->tls) {
		session_reply(s, "530 5.7.0 Must issue a STARTTLS command "
		    "first");
		return;
	}
	if (s->nmails >= mtad_conf->max_mails) {
		session_reply(s, "452 4.5.3 Too many messages in this "
		    "session, try again later");
		return;
	}
	switch (smtp_path_parse(arg ? arg : "", SMTP_PATH_MAIL, 1, &addr,
	    &params)) {
	case SMTP_PATH_OK:
		break;
	case SMTP_PATH_SYNTAX:
		session_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	case SMTP_PATH_TOO_LONG:
		session_reply(s, "501 5.1.7 Sender address too long");
		return;
	default:
		session_reply(s, "501 5.1.7 Bad sender address syntax");
		return;
	}
	if ((tx = calloc(1, sizeof(*tx))) == NULL) {
		session_reply(s, "451 4.3.0 Out of memory, try again later");
		return;
	}
	tx->sender = addr;
	if (mail_params(s, tx, params) == -1) {
		free(tx);
		return;
	}
	if (!(tx->flags & ENVELOPE_SMTPUTF8) &&
	    (has_8bit(addr.local) || has_8bit(addr.domain))) {
		session_reply(s, "553 5.6.7 Non-ASCII sender needs SMTPUTF8");
		free(tx);
		return;
	}
	s->tx = tx;
	session_enter_state(s, S_MAIL);
	session_reply(s, "250 2.1.0 Sender ok");
}

/* RCPT TO parameters (RFC 3461 4.1, 4.2).  0 or replied. */
static int
rcpt_params(struct session *s, struct envelope *e, const char *params)
{
	char		 key[32], value[ENVELOPE_FIELD_MAX], dec[ENVELOPE_FIELD_MAX];
	char		*tok, *save;
	int		 r, seen_notify = 0, seen_orcpt = 0;

	while ((r = smtp_param_next(&params, key, sizeof(key), value,
	    sizeof(value))) == 1) {
		if (!s->esmtp) {
			session_reply(s, "555 5.5.4 Parameters need EHLO");
			return -1;
		}
		if (strcmp(key, "NOTIFY") == 0 && !seen_notify++) {
			for (tok = strtok_r(value, ",", &save); tok;
			    tok = strtok_r(NULL, ",", &save)) {
				if (strcasecmp(tok, "NEVER") == 0)
					e->dsn_notify |= DSN_NOTIFY_NEVER;
				else if (strcasecmp(tok, "SUCCESS") == 0)
					e->dsn_notify |= DSN_NOTIFY_SUCCESS;
				else if (strcasecmp(tok, "FAILURE") == 0)
					e->dsn_notify |= DSN_NOTIFY_FAILURE;
				else if (strcasecmp(tok, "DELAY") == 0)
					e->dsn_notify |= DSN_NOTIFY_DELAY;
				else
					e->dsn_notify = ~0U;
			}
			if (e->dsn_notify == ~0U || e->dsn_notify == 0 ||
			    ((e->dsn_notify & DSN_NOTIFY_NEVER) &&
			    e->dsn_notify != DSN_NOTIFY_NEVER)) {
				session_reply(s, "501 5.5.4 Bad NOTIFY value");
				return -1;
			}
		} else if (strcmp(key, "ORCPT") == 0 && !seen_orcpt++) {
			/* addr-type ";" xtext, e.g. rfc822;user+40example.org */
			if (strchr(value, ';') == NULL || value[0] == ';' ||
			    xtext_decode(strchr(value, ';') + 1, dec,
			    sizeof(dec)) == -1 || dec[0] == '\0') {
				session_reply(s, "501 5.5.4 Bad ORCPT value");
				return -1;
			}
			snprintf(e->dsn_orcpt, sizeof(e->dsn_orcpt), "%s",
			    value);
		} else if (strcmp(key, "NOTIFY") == 0 ||
		    strcmp(key, "ORCPT") == 0) {
			session_reply(s, "501 5.5.4 Duplicate parameter %s",
			    key);
			return -1;
		} else {
			session_reply(s, "555 5.5.4 Unsupported parameter %s",
			    key);
			return -1;
		}
	}
	if (r == -1) {
		session_reply(s, "501 5.5.4 Syntax error in parameters");
		return -1;
	}
	return 0;
}

static void
format_address(char *buf, size_t size, const struct mailaddr *a)
{
	if (a->domain[0] == '\0')
		snprintf(buf, size, "%s", a->local);
	else
		snprintf(buf, size, "%s@%s", a->local, a->domain);
}

static void
cmd_rcpt(struct session *s, const char *arg)
{
	struct rcpt_context	 ctx;
	const struct rule	*rule;
	struct envelope		 e, *grown;
	struct mailaddr		 addr;
	struct tx		*tx = s->tx;
	const char		*params;
	char			 dests[16][SMTP_ADDRESS_MAX + 1];
	size_t			 i;
	int			 n, k, added;

	if (s->state != S_MAIL && s->state != S_RCPT) {
		session_reply(s, "503 5.5.1 Need MAIL before RCPT");
		return;
	}
	if (tx->nrcpts >= mtad_conf->max_rcpt) {
		session_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	switch (smtp_path_parse(arg ? arg : "", SMTP_PATH_RCPT,
	    (tx->flags & ENVELOPE_SMTPUTF8) != 0, &addr, &params)) {
	case SMTP_PATH_OK:
		break;
	case SMTP_PATH_SYNTAX:
		session_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	case SMTP_PATH_NEEDS_UTF8:
		session_reply(s, "553 5.6.7 Non-ASCII recipient needs "
		    "SMTPUTF8");
		return;
	case SMTP_PATH_TOO_LONG:
		session_reply(s, "501 5.1.3 Recipient address too long");
		return;
	default:
		session_reply(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	memset(&e, 0, sizeof(e));
	if (rcpt_params(s, &e, params) == -1)
		return;
	tx->rcpts_tried++;

	memset(&ctx, 0, sizeof(ctx));
	ctx.client = s->client.ss_family == AF_UNIX ? NULL : &s->client;
	ctx.tag = s->listener->tag;
	ctx.rcpt = &addr;
	if ((rule = ruleset_match(&ctx)) == NULL || rule->reject) {
		log_info("%016" PRIx64 " smtp rcpt=<%s@%s> refused rule=%s",
		    s->id, addr.local, addr.domain, rule ? "reject" : "none");
		session_reply(s, "550 5.7.1 Delivery not authorized, "
		    "message refused");
		return;
	}
	format_address(e.rcpt, sizeof(e.rcpt), &addr);
	n = expand_recipient(rule->action, &addr, dests,
	    sizeof(dests) / sizeof(dests[0]));
	if (n == 0) {
		session_reply(s, "550 5.1.1 Recipient address rejected: "
		    "unknown user");
		return;
	}
	if (n < 0) {
		log_warnx("%016" PRIx64 " smtp rcpt=<%s> cannot be expanded "
		    "by action %s", s->id, e.rcpt, rule->action->name);
		session_reply(s, "451 4.3.0 Cannot expand recipient, try "
		    "again later");
		return;
	}
	if (tx->nrcpts + (size_t)n > mtad_conf->max_rcpt) {
		session_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if ((grown = reallocarray(tx->rcpts, tx->nrcpts + (size_t)n,
	    sizeof(*grown))) == NULL) {
		session_reply(s, "451 4.3.0 Out of memory, try again later");
		return;
	}
	tx->rcpts = grown;
	snprintf(e.action, sizeof(e.action), "%s", rule->action->name);
	added = 0;
	for (k = 0; k < n; k++) {
		memcpy(e.dest, dests[k], sizeof(e.dest));
		for (i = 0; i < tx->nrcpts; i++)
			if (strcasecmp(tx->rcpts[i].rcpt, e.rcpt) == 0 &&
			    strcmp(tx->rcpts[i].dest, e.dest) == 0)
				break;
		if (i < tx->nrcpts)
			continue;	/* a duplicate: delivered once */
		tx->rcpts[tx->nrcpts++] = e;
		added++;
	}
	session_enter_state(s, S_RCPT);
	session_reply(s, added ? "250 2.1.5 Recipient ok" :
	    "250 2.1.5 Recipient ok (duplicate)");
}

static void
cmd_data(struct session *s, const char *arg)
{
	if (arg != NULL) {
		session_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->state == S_MAIL && s->tx->rcpts_tried > 0) {
		session_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (s->state != S_RCPT) {
		session_reply(s, "503 5.5.1 Need RCPT before DATA");
		return;
	}
	session_enter_state(s, S_DATA_WAIT);
	io_pause(s->io);
	smtp_request_message(s);
}

static void
write_received(struct session *s)
{
	struct tx	*tx = s->tx;
	char		 date[64], info[128];
	time_t		 now = time(NULL);
	struct tm	 tm;

	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z",
	    localtime_r(&now, &tm));
	if (s->listener->mask_src)
		fprintf(tx->fp, "Received: by %s (mtad)", hostname_of(s));
	else
		fprintf(tx->fp, "Received: from %s ([%s%s])\n\tby %s (mtad)",
		    s->helo, s->client.ss_family == AF_INET6 ? "IPv6:" : "",
		    s->client_addr, hostname_of(s));
	fprintf(tx->fp, " with %sSMTP%s id %08" PRIx32 "\n",
	    s->esmtp ? "E" : "", s->tls ? "S" : "", tx->msgid);
	if (s->tls && io_tls_info(s->io, info, sizeof(info)))
		fprintf(tx->fp, "\t(%s)\n", info);
	if (tx->nrcpts == 1)
		fprintf(tx->fp, "\tfor <%s>;\n", tx->rcpts[0].rcpt);
	else
		fprintf(tx->fp, "\t;\n");
	fprintf(tx->fp, "\t%s\n", date);
}

void
session_message_created(struct session *s, uint32_t msgid, int fd)
{
	struct tx	*tx = s->tx;

	if (s->state != S_DATA_WAIT || tx == NULL) {
		/* The session moved on (it cannot, but never guess). */
		if (fd != -1) {
			close(fd);
			smtp_request_rollback(msgid);
		}
		return;
	}
	if (fd == -1 || (tx->fp = fdopen(fd, "w")) == NULL) {
		if (fd != -1) {
			close(fd);
			smtp_request_rollback(msgid);
		}
		session_reply(s, "451 4.3.0 Temporary queue failure, try "
		    "again later");
		session_tx_reset(s);
		session_enter_state(s, S_HELO);
		io_resume(s->io);
		return;
	}
	tx->msgid = msgid;
	tx->in_headers = 1;
	tx->prev_crlf = 1;
	write_received(s);
	session_enter_state(s, S_DATA);
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	io_set_timeout(s->io, mtad_conf->data_timeout * 1000);
	io_resume(s->io);
}

static void
session_data_line(struct session *s, char *line, size_t len, int crlf)
{
	struct tx	*tx = s->tx;

	/* Only CRLF "." CRLF ends DATA: a bare LF never counts. */
	if (len == 1 && line[0] == '.' && crlf && tx->prev_crlf) {
		session_data_end(s);
		return;
	}
	tx->prev_crlf = crlf;
	if (tx->error != TX_OK)
		return;		/* keep reading, refuse at the end */
	if (memchr(line, '\0', len) != NULL) {
		tx->error = TX_NUL;
		return;
	}
	if (memchr(line, '\r', len) != NULL) {
		tx->error = TX_BARE_CR;
		return;
	}
	if (line[0] == '.' && len > 1) {	/* dot-unstuffing */
		line++;
		len--;
	}
	if (tx->in_headers) {
		if (len == 0)
			tx->in_headers = 0;
		else if (strncasecmp(line, "Received:", 9) == 0 &&
		    ++tx->received_headers > SMTP_MAX_HOPS) {
			tx->error = TX_TOO_MANY_HOPS;
			return;
		}
	}
	tx->size += len + 1;
	if (tx->size > mtad_conf->max_message_size) {
		tx->error = TX_TOO_BIG;
		return;
	}
	if (MONKEY("smtp.write", ENOSPC) ||
	    fwrite(line, 1, len, tx->fp) != len || putc('\n', tx->fp) == EOF)
		tx->error = TX_WRITE_FAILED;
}

static void
session_data_end(struct session *s)
{
	struct tx	*tx = s->tx;
	struct envelope	*e;
	time_t		 now = time(NULL);
	size_t		 i;
	int		 r;

	r = fflush(tx->fp);
	if (fclose(tx->fp) == EOF || r == EOF)
		tx->error = TX_WRITE_FAILED;
	tx->fp = NULL;
	io_set_timeout(s->io, mtad_conf->command_timeout * 1000);
	if (tx->error != TX_OK) {
		log_info("%016" PRIx64 " smtp msgid=%08" PRIx32 " refused "
		    "error=%d size=%zu", s->id, tx->msgid, tx->error, tx->size);
		switch (tx->error) {
		case TX_TOO_BIG:
			session_reply(s, "552 5.3.4 Message size exceeds "
			    "fixed maximum message size");
			break;
		case TX_LINE_TOO_LONG:
			session_reply(s, "550 5.6.0 Message has a line longer "
			    "than 1000 bytes");
			break;
		case TX_BARE_CR:
			session_reply(s, "550 5.6.0 Message contains a bare "
			    "CR; lines must end with CRLF");
			break;
		case TX_NUL:
			session_reply(s, "550 5.6.0 Message contains a NUL "
			    "byte");
			break;
		case TX_TOO_MANY_HOPS:
			session_reply(s, "554 5.4.6 Too many hops, mail loop?");
			break;
		default:
			session_reply(s, "451 4.3.0 Temporary queue failure, "
			    "try again later");
			break;
		}
		session_tx_reset(s);
		session_enter_state(s, S_HELO);
		return;
	}
	for (i = 0; i < tx->nrcpts; i++) {
		e = &tx->rcpts[i];
		e->id = ((uint64_t)tx->msgid << 32) | arc4random();
		format_address(e->sender, sizeof(e->sender), &tx->sender);
		snprintf(e->tag, sizeof(e->tag), "%s",
		    s->listener->tag ? s->listener->tag : "");
		snprintf(e->helo, sizeof(e->helo), "%s", s->helo);
		snprintf(e->client, sizeof(e->client), "%s", s->client_addr);
		snprintf(e->dsn_ret, sizeof(e->dsn_ret), "%s", tx->dsn_ret);
		snprintf(e->dsn_envid, sizeof(e->dsn_envid), "%s",
		    tx->dsn_envid);
		e->created = (int64_t)now;
		e->flags = tx->flags;
	}
	session_enter_state(s, S_COMMIT);
	io_pause(s->io);
	smtp_request_commit(s);
}

void
session_message_committed(struct session *s, int ok)
{
	struct tx	*tx = s->tx;
	char		 from[SMTP_ADDRESS_MAX + 1];

	if (s->state != S_COMMIT || tx == NULL)
		return;

	format_address(from, sizeof(from), &tx->sender);
	log_info("%016" PRIx64 " smtp msgid=%08" PRIx32 " from=<%s> size=%zu "
	    "rcpts=%zu result=%s", s->id, tx->msgid, from, tx->size,
	    tx->nrcpts, ok ? "queued" : "tempfail");
	if (ok) {
		session_reply(s, "250 2.0.0 %08" PRIx32 " Message accepted "
		    "for delivery", tx->msgid);
		tx->msgid = 0;	/* the queue owns it now */
		s->nmails++;
		smtp_count_message();
	} else {
		session_reply(s, "451 4.3.0 Temporary queue failure, try "
		    "again later");
		tx->msgid = 0;	/* the queue removed it */
	}
	session_tx_reset(s);
	session_enter_state(s, S_HELO);
	io_resume(s->io);
}

static void
cmd_rset(struct session *s, const char *arg)
{
	if (arg != NULL) {
		session_reply(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	session_tx_reset(s);
	if (s->state != S_INIT)
		session_enter_state(s, S_HELO);
	session_reply(s, "250 2.0.0 Reset state");
}

static void
cmd_noop(struct session *s, const char *arg)
{
	(void)arg;	/* RFC 5321 4.1.1.9: a parameter is ignored */
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct session *s, const char *arg)
{
	if (arg != NULL) {
		session_reply(s, "501 5.5.4 Syntax: QUIT");
		return;
	}
	session_tx_reset(s);
	session_reply(s, "221 2.0.0 %s Bye", hostname_of(s));
	session_enter_state(s, S_QUIT);
	io_pause(s->io);
}

static void
cmd_help(struct session *s, const char *arg)
{
	(void)arg;
	session_reply(s, "214 2.0.0 This is mtad; see RFC 5321");
}

static void
cmd_vrfy(struct session *s, const char *arg)
{
	if (arg == NULL || *arg == '\0') {
		session_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	/* RFC 5321 3.5.3: answer without disclosing anything. */
	session_reply(s, "252 2.1.5 Cannot VRFY user, but will accept "
	    "message and attempt delivery");
}

static void
cmd_expn(struct session *s, const char *arg)
{
	(void)arg;
	session_reply(s, "502 5.5.1 EXPN not available");
}

static void
cmd_not_available(struct session *s, const char *arg)
{
	(void)arg;
	session_reply(s, "502 5.5.1 Command not implemented");
}

static void
cmd_starttls(struct session *s, const char *arg)
{
	size_t	 pending;

	if (s->tls) {
		session_reply(s, "503 5.5.1 TLS already active");
		return;
	}
	if (!session_starttls_offered(s)) {
		session_reply(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	if (arg != NULL) {
		session_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->state == S_INIT) {
		session_reply(s, "503 5.5.1 Send EHLO first");
		return;
	}
	/*
	 * Anything the client sent after STARTTLS in clear text would
	 * otherwise be taken as if it came over TLS (CVE-2011-0411).
	 */
	if ((pending = evbuffer_get_length(s->io->in)) > 0) {
		log_warnx("%016" PRIx64 " smtp dropped %zu bytes pipelined "
		    "after STARTTLS", s->id, pending);
		evbuffer_drain(s->io->in, pending);
	}
	session_tx_reset(s);
	session_reply(s, "220 2.0.0 Ready to start TLS");
	session_enter_state(s, S_TLS);
	io_pause(s->io);
}

/* XCLIENT attr=xtext ... (Postfix XCLIENT_README). */
static void
cmd_xclient(struct session *s, const char *arg)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)&ss;
	char			 key[32], value[512], dec[512];
	char			 helo[SMTP_DOMAIN_MAX + 1];
	const char		*p = arg ? arg : "";
	long			 port = -1;
	int			 r, have_addr = 0, proto = -1;
	char			*end;

	if (!s->xclient_allowed) {
		session_reply(s, "550 5.7.0 Insufficient authorization");
		return;
	}
	if (s->tx != NULL) {
		session_reply(s, "503 5.5.1 Mail transaction in progress");
		return;
	}
	memset(&ss, 0, sizeof(ss));
	helo[0] = '\0';
	if (*p == '\0') {
		session_reply(s, "501 5.5.4 Syntax: XCLIENT attribute=value...");
		return;
	}
	while ((r = smtp_param_next(&p, key, sizeof(key), value,
	    sizeof(value))) == 1) {
		if (xtext_decode(value, dec, sizeof(dec)) == -1) {
			session_reply(s, "501 5.5.4 Bad XCLIENT value for %s",
			    key);
			return;
		}
		if (strcasecmp(dec, "[UNAVAILABLE]") == 0 ||
		    strcasecmp(dec, "[TEMPUNAVAIL]") == 0)
			continue;
		if (strcmp(key, "ADDR") == 0) {
			if (strncasecmp(dec, "IPV6:", 5) == 0 &&
			    inet_pton(AF_INET6, dec + 5, &sin6->sin6_addr) == 1)
				ss.ss_family = AF_INET6;
			else if (inet_pton(AF_INET, dec, &sin->sin_addr) == 1)
				ss.ss_family = AF_INET;
			else {
				session_reply(s, "501 5.5.4 Bad XCLIENT ADDR");
				return;
			}
			have_addr = 1;
		} else if (strcmp(key, "PORT") == 0) {
			port = strtol(dec, &end, 10);
			if (*end != '\0' || port < 0 || port > 65535) {
				session_reply(s, "501 5.5.4 Bad XCLIENT PORT");
				return;
			}
		} else if (strcmp(key, "HELO") == 0) {
			if (!valid_helo(dec)) {
				session_reply(s, "501 5.5.4 Bad XCLIENT HELO");
				return;
			}
			memcpy(helo, dec, strlen(dec) + 1);	/* valid_helo */
		} else if (strcmp(key, "PROTO") == 0) {
			proto = strcasecmp(dec, "ESMTP") == 0;
		} else if (strcmp(key, "NAME") != 0 &&
		    strcmp(key, "LOGIN") != 0 && strcmp(key, "DESTADDR") != 0 &&
		    strcmp(key, "DESTPORT") != 0) {
			session_reply(s, "501 5.5.4 Bad XCLIENT attribute "
			    "name: %s", key);
			return;
		}
	}
	if (r == -1) {
		session_reply(s, "501 5.5.4 Syntax: XCLIENT attribute=value...");
		return;
	}
	if (have_addr) {
		if (port >= 0) {
			if (ss.ss_family == AF_INET)
				sin->sin_port = htons((uint16_t)port);
			else
				sin6->sin6_port = htons((uint16_t)port);
		}
		log_info("%016" PRIx64 " smtp xclient address=%s -> new "
		    "identity", s->id, s->client_addr);
		/* As Postfix: the new identity is checked afresh. */
		session_set_client(s, &ss);
	}
	if (helo[0] != '\0')
		snprintf(s->helo, sizeof(s->helo), "%s", helo);
	if (proto != -1)
		s->esmtp = proto;
	log_info("%016" PRIx64 " smtp xclient address=%s port=%d helo=%s",
	    s->id, s->client_addr, s->client_port, s->helo);
	session_greeting(s);
}
