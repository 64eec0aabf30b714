/*
 * The relay at the heart of smtpfd: client lines go to the downstream
 * MTA, its replies come back to the client, in order, pipelining intact.
 *
 * Every command sent downstream, and every reply smtpfd gives itself,
 * takes a place in the session's pending ring; replies leave the ring in
 * the order the commands came, so a pipelining client sees its replies in
 * order even when some come from smtpfd and some from the downstream.
 *
 * The choices that keep the two MTAs in agreement (no smuggling):
 *  - Content ends only at "." CRLF, as in mtad.  A lone "." ended by a
 *    bare LF is content: it goes downstream as "..", so no downstream
 *    can take it for the end.  Other lines are sent with CRLF.
 *  - Input the client pipelined after STARTTLS is dropped: it was sent in
 *    clear text and must not count as said under TLS.
 *  - Content starts only after the downstream's 354: a client that sends
 *    early has its lines read as commands if DATA failed, as any MTA
 *    would.
 *  - BDAT is not offered (the content must be seen line by line).
 *
 * The client's "." is answered by the downstream's own reply: smtpfd
 * never says 250 for a message it holds.
 *
 * Memory stays bounded: when the downstream does not drain what the
 * session writes, the session stops reading the client (and pauses it
 * when its input grows); when the client does not read its replies, the
 * session stops reading the downstream.
 */
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "session.h"
#include "smtp_proto.h"
#include "unique_id.h"
#include "xmalloc.h"

#define COMMAND_MAX	4096	/* with CRLF; longer gets 500 5.5.2 */

static TAILQ_HEAD(, session)	sessions = TAILQ_HEAD_INITIALIZER(sessions);
static size_t			nsessions;
static struct {
	size_t	sessions, messages, refused, failures;
} stats;

static void	 session_process(struct session *);
static void	 session_down_lost_cb(int, short, void *);
static int	 session_step(struct session *);
static void	 session_command(struct session *, char *, size_t);
static void	 session_content(struct session *, const char *, size_t, int);
static void	 session_flow(struct session *);
static void	 session_flush_local(struct session *);
static void	 pending_push(struct session *, enum pending_kind,
		    const char *);
static void	 send_down(struct session *, const char *, size_t);
static void	 local_reply(struct session *, const char *);
static int	 parse_identity(struct session *, const char *, int);


struct session *
session_new(struct listener *l, const struct front_ops *front, void *ctx,
    const struct client_info *info, int front_tls, int tls_required)
{
	struct session	*s;

	s = xcalloc(1, sizeof(*s));
	s->id = unique_id();
	s->front = front;
	s->front_ctx = ctx;
	s->listener = l;
	smtpfd_conf_ref(l->conf);
	s->client = *info;
	s->front_tls = front_tls;
	s->tls_required = tls_required;
	s->state = S_CONNECTING;
	s->started = time(NULL);
	if ((s->cin = evbuffer_new()) == NULL) {
		log_warn("session refused");
		smtpfd_conf_unref(l->conf);
		free(s);
		return NULL;
	}
	evtimer_set(&s->ev_lost, session_down_lost_cb, s);
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	nsessions++;
	stats.sessions++;
	log_info("%016" PRIx64 " smtp connected address=%s port=%d "
	    "host=%s tag=%s", s->id, s->client.addr, s->client.port,
	    s->client.rdns[0] ? s->client.rdns : "<unknown>",
	    s->client.tag[0] ? s->client.tag : "-");
	/* With a chain, the engine speaks first (connect phase). */
	if (l->chain != NULL) {
		s->filtered = 1;
		sf_open(s);
	} else
		downstream_start(s);
	return s;
}

void
session_free(struct session *s)
{
	size_t	 i;

	TAILQ_REMOVE(&sessions, s, entry);
	nsessions--;
	evtimer_del(&s->ev_lost);
	downstream_close(s);
	sf_close(s);
	line_batch_free(&s->f_batch);
	free(s->f_line);
	free(s->f_data_fail);
	while (s->npending > 0) {
		free(s->pending[s->pending_head].text);
		free(s->pending[s->pending_head].arg);
		s->pending_head = (s->pending_head + 1) % PENDING_MAX;
		s->npending--;
	}
	for (i = 0; i < s->nreply; i++)
		free(s->reply[i]);
	evbuffer_free(s->cin);
	smtpfd_conf_unref(s->listener->conf);
	free(s);
}

size_t
sessions_count(void)
{
	return nsessions;
}

struct session *
session_find(uint64_t id)
{
	struct session	*s;

	TAILQ_FOREACH(s, &sessions, entry)
		if (s->id == id)
			return s;
	return NULL;
}

/* Every line the client gets goes here (filters may watch them). */
void
session_reply_line(struct session *s, const char *line)
{
	s->front->reply(s, line);
	if (s->filtered)
		sf_event(s, EVENT_PROTOCOL_SERVER, "%s", line);
}

/* The front has new bytes in s->cin, or may take more. */
void
session_client_input(struct session *s)
{
	session_process(s);
}

/* The client is gone (or was closed): the session ends here. */
void
session_client_gone(struct session *s, const char *reason)
{
	/* The MTA timed the client out (smtpf gone|SID|timeout). */
	if (strcmp(reason, "timeout") == 0)
		sf_event(s, EVENT_TIMEOUT, "%s", "");
	if (s->in_content)
		log_info("%016" PRIx64 " smtp client left during the "
		    "content: the transaction is abandoned", s->id);
	log_info("%016" PRIx64 " smtp disconnected reason=%s messages=%zu",
	    s->id, reason, s->nmessages);
	session_free(s);
}

/*
 * Give up the session: the client gets reply (or nothing), the
 * downstream is dropped without finishing its transaction.
 */
void
session_fail(struct session *s, const char *reply, const char *why)
{
	if (s->state == S_CLOSING)
		return;
	log_warnx("%016" PRIx64 " smtp failed: %s", s->id, why);
	stats.failures++;
	s->state = S_CLOSING;
	downstream_close(s);
	if (reply != NULL)
		session_reply_line(s, reply);
	s->front->close(s);
}

void
session_down_lost(struct session *s, const char *why)
{
	char	 msg[256];

	snprintf(msg, sizeof(msg), "downstream %s: %s",
	    s->listener->forward.url, why);
	session_fail(s, s->down_state == D_READY ?
	    "421 4.3.0 Connection to the mail server lost, try again later" :
	    "421 4.3.0 Mail server not available, try again later", msg);
}

static void
session_down_lost_cb(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	session_down_lost(arg, "cannot connect");
}

/* A failure found inside session_new(): reported from the event loop. */
void
session_down_lost_later(struct session *s)
{
	struct timeval	 now = { 0, 0 };

	evtimer_add(&s->ev_lost, &now);
}

/* The downstream knows who the client is: greet the client. */
void
session_down_ready(struct session *s, const char *banner)
{
	char		 cmd[SMTP_DOMAIN_MAX + 8];
	const char	*name;
	size_t		 n;

	if (s->down_resume) {
		/* A new downstream mid-session: greet it as the client did. */
		s->down_resume = 0;
		snprintf(cmd, sizeof(cmd), "%s %s\r\n", s->client.esmtp ?
		    "EHLO" : "HELO", s->client.helo[0] ? s->client.helo :
		    smtpfd_conf->hostname);
		send_down(s, cmd, strlen(cmd));
		pending_push(s, PENDING_INTERNAL, NULL);
		s->waiting = 0;
		session_process(s);
		return;
	}
	if (s->state != S_CONNECTING)
		return;
	s->state = S_RELAY;
	session_reply_line(s, banner);
	/* As OpenSMTPD: the name the client was greeted with. */
	name = strlen(banner) > 4 ? banner + 4 : "";
	if ((n = strcspn(name, " ")) == 0) {
		name = smtpfd_conf->hostname;
		n = strlen(name);
	}
	sf_event(s, EVENT_LINK_GREETING, "%.*s", (int)n, name);
	session_process(s);
}

/* TLS with the client is up: after STARTTLS, or from the start. */
void
session_tls_ready(struct session *s, const char *info)
{
	s->client.tls = 1;
	snprintf(s->client.tls_info, sizeof(s->client.tls_info), "%s", info);
	sf_event(s, EVENT_LINK_TLS, "%s", info);
	if (s->state != S_TLS)
		return;
	log_info("%016" PRIx64 " smtp tls ciphers=%s", s->id, info);
	s->state = S_RELAY;
	/*
	 * RFC 3207 4.2: what the client said before TLS is forgotten; the
	 * downstream still remembers its EHLO, so smtpfd asks for a new
	 * one itself and resets any transaction downstream.
	 */
	s->client.helo[0] = '\0';
	s->need_helo = 1;
	if (s->down != NULL) {
		downstream_write(s, "RSET\r\n", 6);
		pending_push(s, PENDING_INTERNAL, NULL);
	}
	session_process(s);
}

/* The client is not reading its replies: stop reading the downstream. */
void
session_front_full(struct session *s, int full)
{
	s->front_out_paused = full;
	if (s->down == NULL)
		return;
	if (full)
		io_pause(s->down);
	else
		io_resume(s->down);
}

static int
session_can_read(struct session *s)
{
	return s->state == S_RELAY && !s->waiting &&
	    (s->down == NULL || io_queued(s->down) < DOWN_OUT_HIGH) &&
	    s->npending <= PENDING_MAX - PENDING_RESERVE &&
	    (!s->filtered || sf_can_read(s));
}

static void
session_process(struct session *s)
{
	if (s->processing)
		return;
	s->processing = 1;
	while (session_can_read(s) && session_step(s))
		;
	s->processing = 0;
	if (s->filtered)
		sf_data_flush(s);
	session_flow(s);
}

/* Pause the client while its unread input is large. */
static void
session_flow(struct session *s)
{
	size_t	 len = evbuffer_get_length(s->cin);

	if (s->state == S_CLOSING)
		return;
	if (!s->client_paused && len >= CLIENT_IN_HIGH) {
		s->client_paused = 1;
		s->front->pause(s);
	} else if (s->client_paused && len <= CLIENT_IN_LOW) {
		s->client_paused = 0;
		s->front->resume(s);
	}
}

/* The downstream drained its output: read the client again. */
void
session_down_drained(struct session *s)
{
	session_process(s);
}

/* Handle one line (or one piece of a long content line).  0: no more. */
static int
session_step(struct session *s)
{
	struct evbuffer_ptr	 eol;
	char			 buf[COMMAND_MAX + 2];
	size_t			 len, take;
	int			 ended;

	if ((len = evbuffer_get_length(s->cin)) == 0)
		return 0;
	eol = evbuffer_search_eol(s->cin, NULL, NULL, EVBUFFER_EOL_LF);
	ended = eol.pos != -1;
	take = ended ? (size_t)eol.pos + 1 : len;
	if (s->in_content) {
		if (take > SESSION_CHUNK) {
			take = SESSION_CHUNK;
			ended = 0;
		} else if (!ended)
			return 0;	/* wait for the rest of the line */
		if (evbuffer_remove(s->cin, buf, take) != (int)take)
			fatalx("evbuffer_remove");
		session_content(s, buf, take, ended);
		return 1;
	}
	if (!ended) {
		if (len < COMMAND_MAX)
			return 0;
		/* A command line with no end in sight. */
		evbuffer_drain(s->cin, len);
		if (!s->discarding)
			local_reply(s, "500 5.5.2 Line too long");
		s->discarding = 1;
		return 1;
	}
	if (take > COMMAND_MAX || s->discarding) {
		evbuffer_drain(s->cin, take);
		if (!s->discarding)
			local_reply(s, "500 5.5.2 Line too long");
		s->discarding = 0;
		return 1;
	}
	if (evbuffer_remove(s->cin, buf, take) != (int)take)
		fatalx("evbuffer_remove");
	take--;				/* the LF */
	if (take > 0 && buf[take - 1] == '\r')
		take--;
	buf[take] = '\0';
	session_command(s, buf, take);
	return 1;
}

/*
 * One piece of content: a whole line with its end when ended, else a
 * piece of a long line.
 */
static void
session_content(struct session *s, const char *p, size_t len, int ended)
{
	size_t	 body = len;
	int	 crlf = 0, mid, filtered = s->filtered && sf_content_filtered(s);
	/* With data-line filters the size is what comes out of them. */
	int	 count = !(s->filtered && sf_data_lines(s));

	if (s->content_lines++ == 0 && s->filtered)
		sf_content_begin(s);
	/*
	 * msg_size is tx-commit's, as OpenSMTPD counts: the message as
	 * stored (LF line ends, dots unstuffed, without the final ".").
	 */
	if (!ended) {
		if (count)
			s->msg_size += len - (!s->mid_line && p[0] == '.');
		if (filtered)
			sf_content_line(s, p, len, s->mid_line, 0);
		else
			send_down(s, p, len);
		s->mid_line = 1;
		return;
	}
	body--;				/* the LF */
	if (body > 0 && p[body - 1] == '\r') {
		body--;
		crlf = 1;
	}
	if (!s->mid_line && body == 1 && p[0] == '.') {
		if (!crlf) {
			/* content, never the end */
			if (count)
				s->msg_size += 2;
			if (filtered)
				sf_content_line(s, "..", 2, 0, 1);
			else
				send_down(s, "..\r\n", 4);
			return;
		}
		s->in_content = 0;
		if (filtered) {
			sf_content_end(s);
			return;
		}
		/* What OpenSMTPD tells filters of the end, no one asked. */
		sf_event(s, EVENT_PROTOCOL_CLIENT, "%s", ".");
		sf_event(s, EVENT_FILTER_RESPONSE, "%s", "commit|proceed");
		session_message_end(s);
		return;
	}
	if (count)
		s->msg_size += body + 1 - (!s->mid_line && p[0] == '.');
	mid = s->mid_line;
	s->mid_line = 0;
	if (filtered) {
		sf_content_line(s, p, body, mid, 1);
		return;
	}
	send_down(s, p, body);
	send_down(s, "\r\n", 2);
}

/* The message's "." goes downstream: its reply is the client's. */
void
session_message_end(struct session *s)
{
	s->in_content = 0;
	send_down(s, ".\r\n", 3);
	pending_push(s, PENDING_EOM, NULL);
	s->nmessages++;
}

void
session_send_down(struct session *s, const char *p, size_t len)
{
	send_down(s, p, len);
}

/* A reply of smtpfd's own, in its turn; close after it if asked. */
void
session_local_reply(struct session *s, const char *text, int close)
{
	pending_push(s, close ? PENDING_LOCAL_CLOSE : PENDING_LOCAL, text);
	session_flush_local(s);
}

static void
forward_command(struct session *s, const char *line, size_t len,
    enum pending_kind kind)
{
	struct smtp_command	 cmd;
	struct pending		*p;
	struct mailaddr		 ma;
	const char		*params;

	send_down(s, line, len);
	send_down(s, "\r\n", 2);
	pending_push(s, kind, NULL);
	if (!s->filtered)
		return;
	/* What the filters' tx events will need from the reply. */
	p = &s->pending[(s->pending_head + s->npending - 1) % PENDING_MAX];
	smtp_command_parse(line, &cmd);
	p->verb = cmd.verb;
	if ((cmd.verb == SMTP_MAIL || cmd.verb == SMTP_RCPT) &&
	    smtp_path_parse(cmd.args, cmd.verb == SMTP_MAIL ?
	    SMTP_PATH_MAIL : SMTP_PATH_RCPT, 1, &ma, &params) ==
	    SMTP_PATH_OK) {
		char	 addr[SMTP_ADDRESS_MAX + 2];

		snprintf(addr, sizeof(addr), "%s%s%s", ma.local,
		    ma.domain[0] ? "@" : "", ma.domain);
		p->arg = xstrdup(addr);
	} else if (cmd.verb == SMTP_HELO || cmd.verb == SMTP_EHLO)
		p->arg = xstrndup(cmd.args, strcspn(cmd.args, " "));
}

static void
session_command(struct session *s, char *line, size_t len)
{
	struct smtp_command	 cmd;

	if (memchr(line, '\0', len) != NULL) {
		local_reply(s, "500 5.5.2 NUL character in command");
		return;
	}
	smtp_command_parse(line, &cmd);
	if (s->filtered && sf_command(s, line, &cmd))
		return;		/* the chain decides first */
	session_execute(s, line, len);
}

/* Run a client command (as the chain let it through). */
void
session_execute(struct session *s, const char *line, size_t len)
{
	struct smtp_command	 cmd;
	const char		*p;
	size_t			 n;

	smtp_command_parse(line, &cmd);
	switch (cmd.verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		p = cmd.args;
		n = strcspn(p, " ");
		if (n > SMTP_DOMAIN_MAX)
			n = SMTP_DOMAIN_MAX;
		memcpy(s->client.helo, p, n);
		s->client.helo[n] = '\0';
		s->client.esmtp = cmd.verb == SMTP_EHLO;
		s->need_helo = 0;
		forward_command(s, line, len, cmd.verb == SMTP_EHLO ?
		    PENDING_EHLO : PENDING_RELAY);
		return;
	case SMTP_STARTTLS:
		if (s->client.tls)
			local_reply(s, "503 5.5.1 TLS already active");
		else if (!s->front_tls)
			local_reply(s, "502 5.5.1 STARTTLS not available");
		else if (cmd.has_args)
			local_reply(s, "501 5.5.4 Syntax: STARTTLS");
		else {
			pending_push(s, PENDING_STARTTLS, NULL);
			s->state = S_TLS;	/* read nothing more in clear */
			session_flush_local(s);
		}
		return;
	case SMTP_BDAT:
		local_reply(s, "502 5.5.1 Command not implemented");
		return;
	case SMTP_XCLIENT:
		if (!s->listener->accept_identity)
			local_reply(s, "550 5.7.0 Insufficient authorization");
		else if (parse_identity(s, cmd.args, 1) == 0)
			local_reply(s, "220 2.0.0 Identity set");
		return;
	case SMTP_MAIL:
		if (s->need_helo) {
			local_reply(s, "503 5.5.1 Send HELO or EHLO first");
			return;
		}
		if (s->tls_required && !s->client.tls) {
			local_reply(s, "530 5.7.0 Must issue a STARTTLS command "
			    "first");
			return;
		}
		downstream_identity(s);
		forward_command(s, line, len, PENDING_RELAY);
		return;
	case SMTP_DATA:
		forward_command(s, line, len, PENDING_DATA);
		s->waiting = 1;
		s->content_lines = 0;
		s->msg_size = 0;
		return;
	case SMTP_QUIT:
		/* Nothing more is read unless the downstream says no. */
		forward_command(s, line, len, PENDING_QUIT);
		s->waiting = 1;
		return;
	default:
		break;
	}
	if (strncasecmp(line, "XFORWARD", 8) == 0 &&
	    (line[8] == ' ' || line[8] == '\0')) {
		if (!s->listener->accept_identity)
			local_reply(s, "550 5.7.0 Insufficient authorization");
		else if (parse_identity(s, line[8] ? line + 9 : "", 0) == 0)
			local_reply(s, "250 2.0.0 Ok");
		return;
	}
	forward_command(s, line, len, PENDING_RELAY);
}

/*
 * XCLIENT or XFORWARD from a trusted client (a proxy listener with
 * accept-identity, e.g. Postfix's smtpd_proxy_filter): the real client
 * is the one named.  The downstream learns it with the next MAIL.
 */
static int
parse_identity(struct session *s, const char *args, int xclient)
{
	char		 key[32], value[512], dec[512];
	const char	*p = args;
	long		 port;
	char		*end;
	int		 r;

	while ((r = smtp_param_next(&p, key, sizeof(key), value,
	    sizeof(value))) == 1) {
		if (xtext_decode(value, dec, sizeof(dec)) == -1)
			break;
		if (strcasecmp(dec, "[UNAVAILABLE]") == 0 ||
		    strcasecmp(dec, "[TEMPUNAVAIL]") == 0)
			dec[0] = '\0';
		if (strcmp(key, "ADDR") == 0) {
			if (strncasecmp(dec, "IPV6:", 5) == 0)
				memmove(dec, dec + 5, strlen(dec + 5) + 1);
			snprintf(s->client.addr, sizeof(s->client.addr), "%s",
			    dec[0] ? dec : "unknown");
		} else if (strcmp(key, "PORT") == 0) {
			port = strtol(dec, &end, 10);
			s->client.port = (*end == '\0' && port >= 0 &&
			    port <= 65535) ? (int)port : 0;
		} else if (strcmp(key, "NAME") == 0)
			snprintf(s->client.rdns, sizeof(s->client.rdns), "%s",
			    dec);
		else if (strcmp(key, "HELO") == 0)
			snprintf(s->client.helo, sizeof(s->client.helo), "%s",
			    dec);
		else if (strcmp(key, "PROTO") == 0)
			s->client.esmtp = strcasecmp(dec, "ESMTP") == 0;
	}
	if (r == -1 || *p != '\0') {
		local_reply(s, xclient ? "501 5.5.4 Syntax: XCLIENT "
		    "attribute=value..." : "501 5.5.4 Syntax: XFORWARD "
		    "attribute=value...");
		return -1;
	}
	s->identity_changed = 1;
	log_info("%016" PRIx64 " smtp identity address=%s port=%d host=%s",
	    s->id, s->client.addr, s->client.port,
	    s->client.rdns[0] ? s->client.rdns : "<unknown>");
	return 0;
}

static void
send_down(struct session *s, const char *p, size_t len)
{
	if (s->down != NULL)
		downstream_write(s, p, len);
}

static void
pending_push(struct session *s, enum pending_kind kind, const char *text)
{
	struct pending	*p;

	if (s->npending == PENDING_MAX)
		fatalx("%016" PRIx64 " pending replies overflow", s->id);
	p = &s->pending[(s->pending_head + s->npending) % PENDING_MAX];
	p->kind = kind;
	p->text = text ? xstrdup(text) : NULL;
	p->verb = SMTP_UNKNOWN;		/* forward_command() sets it */
	s->npending++;
}

void
session_pending_internal(struct session *s)
{
	pending_push(s, PENDING_INTERNAL, NULL);
}

static struct pending *
pending_head(struct session *s)
{
	return s->npending ? &s->pending[s->pending_head] : NULL;
}

static void
pending_pop(struct session *s)
{
	free(s->pending[s->pending_head].text);
	s->pending[s->pending_head].text = NULL;
	free(s->pending[s->pending_head].arg);
	s->pending[s->pending_head].arg = NULL;
	s->pending[s->pending_head].verb = SMTP_UNKNOWN;
	s->pending_head = (s->pending_head + 1) % PENDING_MAX;
	s->npending--;
}

/* A reply of smtpfd's own, in its turn. */
static void
local_reply(struct session *s, const char *text)
{
	pending_push(s, PENDING_LOCAL, text);
	session_flush_local(s);
}

/* Give the replies that wait for nothing but their turn. */
static void
session_flush_local(struct session *s)
{
	struct pending	*p;
	size_t		 discarded;

	while ((p = pending_head(s)) != NULL) {
		if (p->kind == PENDING_LOCAL) {
			session_reply_line(s, p->text);
			pending_pop(s);
			continue;
		}
		if (p->kind == PENDING_LOCAL_CLOSE) {
			session_reply_line(s, p->text);
			pending_pop(s);
			s->state = S_CLOSING;
			downstream_close(s);
			s->front->close(s);
			return;
		}
		if (p->kind != PENDING_STARTTLS)
			return;
		pending_pop(s);
		if (s->filtered)
			sf_event(s, EVENT_PROTOCOL_SERVER, "%s",
			    "220 2.0.0 Ready to start TLS");
		if ((discarded = evbuffer_get_length(s->cin)) > 0) {
			log_warnx("%016" PRIx64 " smtp dropped %zu bytes sent "
			    "in clear text after STARTTLS", s->id, discarded);
			evbuffer_drain(s->cin, discarded);
		}
		s->front->starttls(s, "220 2.0.0 Ready to start TLS");
		return;
	}
}

/* Extensions the client must not see from the downstream. */
static int
ehlo_masked(const char *keyword)
{
	static const char *masked[] = {
		"STARTTLS", "CHUNKING", "BINARYMIME", "XCLIENT", "XFORWARD",
		"XEXCH50", "XUSR", NULL,
	};
	size_t	 i, n = strcspn(keyword, " =");

	for (i = 0; masked[i]; i++)
		if (n == strlen(masked[i]) &&
		    strncasecmp(keyword, masked[i], n) == 0)
			return 1;
	return 0;
}

static void
reply_ehlo(struct session *s, char **lines, size_t n)
{
	const char	*keep[REPLY_MAX_LINES + 4];
	char		 buf[600];
	size_t		 i, nkeep = 0;

	keep[nkeep++] = lines[0] + 4;
	for (i = 1; i < n; i++)
		if (!ehlo_masked(lines[i] + 4))
			keep[nkeep++] = lines[i] + 4;
	if (s->front_tls && !s->client.tls)
		keep[nkeep++] = "STARTTLS";
	if (s->listener->accept_identity) {
		keep[nkeep++] = "XCLIENT NAME ADDR PORT PROTO HELO";
		keep[nkeep++] = "XFORWARD NAME ADDR PORT PROTO HELO SOURCE "
		    "IDENT";
	}
	for (i = 0; i < nkeep; i++) {
		snprintf(buf, sizeof(buf), "250%c%s", i + 1 < nkeep ? '-' :
		    ' ', keep[i]);
		session_reply_line(s, buf);
	}
}

static void
reply_relay(struct session *s, char **lines, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		session_reply_line(s, lines[i]);
}

/*
 * What the filters hear of a reply: OpenSMTPD's tx and link events, in
 * its order: link-identify and tx-envelope before the reply's
 * protocol-server lines (before), the others after them.
 */
static void
reply_events(struct session *s, struct pending *p, int code, int before)
{
	const char	*result = code < 400 ? "ok" : code < 500 ? "tempfail" :
	    "permfail";
	const char	*arg = p->arg ? p->arg : "";
	uint32_t	 evp;

	if (before) {
		if ((p->verb == SMTP_HELO || p->verb == SMTP_EHLO) &&
		    code == 250)
			sf_event(s, EVENT_LINK_IDENTIFY, "%s|%s",
			    p->verb == SMTP_EHLO ? "EHLO" : "HELO", arg);
		/* smtpfd has no queue: the envelope id is made up, as
		 * OpenSMTPD's, of the msgid and 32 random bits. */
		if (p->verb == SMTP_RCPT && code >= 200 && code < 300) {
			evp = (uint32_t)unique_id();
			sf_event(s, EVENT_TX_ENVELOPE, "%08x|%08x%08x",
			    s->msgid, s->msgid, evp);
		}
		return;
	}
	if (p->kind == PENDING_EOM) {
		if (code >= 200 && code < 300)
			sf_event(s, EVENT_TX_COMMIT, "%08x|%zu", s->msgid,
			    s->msg_size);
		else
			sf_event(s, EVENT_TX_ROLLBACK, "%08x", s->msgid);
		/* As OpenSMTPD: every transaction ends with tx-reset. */
		sf_event(s, EVENT_TX_RESET, "%08x", s->msgid);
		s->msgid = 0;
		s->f_junk = s->f_junk_session;
		return;
	}
	switch (p->verb) {
	case SMTP_MAIL:
		if (code >= 200 && code < 300) {
			if ((s->msgid = (uint32_t)unique_id()) == 0)
				s->msgid = 1;
			sf_event(s, EVENT_TX_BEGIN, "%08x", s->msgid);
		}
		sf_event(s, EVENT_TX_MAIL, "%08x|%s|%s", s->msgid, result, arg);
		break;
	case SMTP_RCPT:
		sf_event(s, EVENT_TX_RCPT, "%08x|%s|%s", s->msgid, result, arg);
		break;
	case SMTP_DATA:
		sf_event(s, EVENT_TX_DATA, "%08x|%s", s->msgid, code == 354 ?
		    "ok" : result);
		break;
	case SMTP_RSET:
		/* As OpenSMTPD: only an open transaction is rolled back. */
		if (s->msgid != 0) {
			sf_event(s, EVENT_TX_ROLLBACK, "%08x", s->msgid);
			sf_event(s, EVENT_TX_RESET, "%08x", s->msgid);
		}
		s->msgid = 0;
		s->f_junk = s->f_junk_session;
		break;
	default:
		break;
	}
}

/* A whole reply from the downstream, for the oldest pending command. */
void
session_down_reply(struct session *s, char **lines, size_t n)
{
	struct pending	*p;
	int		 code = atoi(lines[0]);

	if (s->state == S_CLOSING && (p = pending_head(s)) != NULL &&
	    p->kind != PENDING_QUIT)
		return;
	if ((p = pending_head(s)) == NULL) {
		if (code == 421) {
			reply_relay(s, lines, n);
			session_fail(s, NULL, "downstream closing: 421");
		} else
			session_fail(s, "421 4.3.0 Mail server error, try "
			    "again later", "unexpected reply from downstream");
		return;
	}
	if (s->filtered && p->kind != PENDING_INTERNAL)
		reply_events(s, p, code, 1);
	switch (p->kind) {
	case PENDING_EHLO:
		if (code == 250)
			reply_ehlo(s, lines, n);
		else
			reply_relay(s, lines, n);
		break;
	case PENDING_DATA:
		reply_relay(s, lines, n);
		s->waiting = 0;
		if (code == 354) {
			s->in_content = 1;
			s->mid_line = 0;
		}
		break;
	case PENDING_QUIT:
		reply_relay(s, lines, n);
		s->waiting = 0;
		if (code != 221)
			break;
		pending_pop(s);
		s->state = S_CLOSING;
		downstream_close(s);
		s->front->close(s);
		return;
	case PENDING_INTERNAL:
		if (code < 200 || code >= 400) {
			session_fail(s, "421 4.3.0 Mail server error, try "
			    "again later", "downstream refused our command");
			return;
		}
		break;
	case PENDING_EOM:
		reply_relay(s, lines, n);
		if (code >= 200 && code < 300)
			stats.messages++;
		else
			stats.refused++;
		log_info("%016" PRIx64 " smtp message downstream=\"%.200s\"",
		    s->id, lines[n - 1]);
		break;
	case PENDING_RELAY:
		reply_relay(s, lines, n);
		break;
	case PENDING_LOCAL:
	case PENDING_LOCAL_CLOSE:
	case PENDING_STARTTLS:
		fatalx("%016" PRIx64 " local reply not flushed", s->id);
	}
	if (s->filtered && p->kind != PENDING_INTERNAL)
		reply_events(s, p, code, 0);
	pending_pop(s);
	session_flush_local(s);
	session_process(s);
	if (s->cin_eof && s->npending == 0 && s->state != S_CLOSING) {
		s->state = S_CLOSING;
		downstream_close(s);
		s->front->close(s);
	}
}

/*
 * The client shut its side after its last command: answer what it is
 * waiting for (a message's end above all: dropping the downstream then
 * would leave the client to send it again), then close.  1 if the
 * session goes on for that.
 */
int
session_client_eof(struct session *s)
{
	s->cin_eof = 1;
	if (s->state != S_RELAY || s->npending == 0)
		return 0;
	session_process(s);
	return 1;
}

void
sessions_show(struct ipc_chan *chan, uint64_t client)
{
	struct session	*s;
	time_t		 now = time(NULL);

	TAILQ_FOREACH(s, &sessions, entry)
		ctl_line(chan, client, "%016" PRIx64 " %s:%d helo=%s tls=%s "
		    "state=%s messages=%zu age=%llds", s->id, s->client.addr,
		    s->client.port, s->client.helo[0] ? s->client.helo : "-",
		    s->client.tls ? "yes" : "no",
		    s->state == S_CONNECTING ? "connecting" :
		    s->state == S_RELAY ? (s->in_content ? "content" :
		    "command") : s->state == S_TLS ? "tls" : "closing",
		    s->nmessages, (long long)(now - s->started));
}

void
sessions_stats(struct ipc_chan *chan, uint64_t client)
{
	ctl_line(chan, client, "sessions=%zu", nsessions);
	ctl_line(chan, client, "sessions.total=%zu", stats.sessions);
	ctl_line(chan, client, "messages.accepted=%zu", stats.messages);
	ctl_line(chan, client, "messages.refused=%zu", stats.refused);
	ctl_line(chan, client, "sessions.failed=%zu", stats.failures);
}

/* GET /metrics: show stats in Prometheus text format (metrics.h). */
void
sessions_metrics(struct ipc_chan *chan, uint64_t client)
{
	const struct {
		const char	*name, *type, *help;
		size_t		 value;
	} m[] = {
		{ "smtpfd_sessions", "gauge", "Client sessions now.",
		    nsessions },
		{ "smtpfd_sessions_total", "counter",
		    "Client sessions since smtpfd started.", stats.sessions },
		{ "smtpfd_messages_accepted_total", "counter",
		    "Messages the downstream accepted.", stats.messages },
		{ "smtpfd_messages_refused_total", "counter",
		    "Messages the downstream refused at their end of data.",
		    stats.refused },
		{ "smtpfd_sessions_failed_total", "counter",
		    "Sessions that ended on a failure.", stats.failures },
		{ "smtpfd_smtpf_links", "gauge", "smtpf streams from MTAs now.",
		    links_count() },
	};
	size_t	 i;

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		metrics_family(chan, client, m[i].name, m[i].type, m[i].help);
		metrics_sample(chan, client, "%s %zu", m[i].name, m[i].value);
	}
}
