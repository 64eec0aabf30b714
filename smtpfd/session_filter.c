/*
 * A session's side of filtering: what the frontend asks and tells the
 * engine (engine.c has the messages), and how decisions come back into
 * the relay (session.c).
 *
 *  - At the start the engine says which phases the session's chain asks
 *    about and which events it wants; nothing is asked or told beyond.
 *  - A command whose phase is asked waits (and the session reads nothing
 *    more) until the decision: proceed or junk runs it, rewrite runs it
 *    with the new parameter, reject answers it, disconnect answers it
 *    and closes.  Connect is asked before the downstream is reached.
 *  - The content goes through the engine when the chain has data-line
 *    filters: the client's lines go there (at most DATA_WINDOW of them
 *    unacknowledged) and what comes back goes downstream.  The final "."
 *    is held until the commit phase said yes; a refused message is
 *    dropped with its downstream connection (SMTP cannot take back a
 *    message under way), and a new one is made for what follows.
 */
#include <sys/types.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filter.h"
#include "ipc.h"
#include "log.h"
#include "line_batch.h"
#include "placement.h"
#include "session.h"
#include "xmalloc.h"

#define DATA_WINDOW	512	/* content lines out to the engine */

static void	 sf_data_out(struct session *, const char *, size_t);
static void	 sf_data_out_flush(struct session *);

/* A batch's lines out of the chain, CRLF-ended: one write downstream. */
static char	*down_text;
static size_t	 down_len, down_size;

/* The engine, told first where we run when that changed (placement.c). */
static struct ipc_chan *
engine(void)
{
	struct ipc_chan	*chan = proc_peer("engine");

	placement_tell(chan);
	return chan;
}

static int
wants_phase(struct session *s, enum filter_phase p)
{
	return s->filtered && (s->f_phases & (1U << p));
}

static int
wants_event(struct session *s, enum filter_event e)
{
	return s->filtered && (s->f_events & (1U << e));
}

/*
 * An event's parameters from the few conversions the callers use (%s,
 * %.*s, %08x, %zu), without printf's machinery: a message makes five
 * or more events.  Anything else goes to vsnprintf().  Cut to fit.
 */
static void
event_format(char *buf, size_t size, const char *fmt, va_list ap)
{
	static const char	 hex[] = "0123456789abcdef";
	const char		*f, *str;
	char			 num[24];
	size_t			 len = 0, n, i;
	unsigned int		 x;
	va_list			 copy;

	va_copy(copy, ap);
	for (f = fmt; *f != '\0'; ) {
		if (*f != '%') {
			str = f;
			n = strcspn(f, "%");
			f += n;
		} else if (strncmp(f, "%s", 2) == 0) {
			str = va_arg(copy, const char *);
			n = strlen(str);
			f += 2;
		} else if (strncmp(f, "%.*s", 4) == 0) {
			n = (size_t)va_arg(copy, int);
			str = va_arg(copy, const char *);
			n = strnlen(str, n);
			f += 4;
		} else if (strncmp(f, "%08x", 4) == 0) {
			x = va_arg(copy, unsigned int);
			for (i = 0; i < 8; i++)
				num[i] = hex[(x >> (28 - 4 * i)) & 0xf];
			str = num;
			n = 8;
			f += 4;
		} else if (strncmp(f, "%zu", 3) == 0) {
			n = (size_t)snprintf(num, sizeof(num), "%zu",
			    va_arg(copy, size_t));
			str = num;
			f += 3;
		} else {
			/* ap itself is untouched: printf starts afresh */
			va_end(copy);
			vsnprintf(buf, size, fmt, ap);
			return;
		}
		if (n > size - 1 - len)
			n = size - 1 - len;
		memcpy(buf + len, str, n);
		len += n;
	}
	va_end(copy);
	buf[len] = '\0';
}

void
sf_event(struct session *s, enum filter_event e, const char *fmt, ...)
{
	struct ipc_chan	*chan;
	char		 buf[4096];
	va_list		 ap;

	if (!wants_event(s, e))
		return;
	va_start(ap, fmt);
	event_format(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	chan = engine();
	ipc_begin(chan, SMTPFD_MSG_FILTER_EVENT, -1);
	ipc_add_u64(chan, s->id);
	ipc_add_u32(chan, e);
	ipc_add_string(chan, buf);
	/* Nobody waits on a report: it rides with the next query or batch
	 * of lines, and costs the engine no wake-up of its own. */
	ipc_end_lazy(chan);
}

/*
 * OpenSMTPD's filter-response: what came of a phase (every command it
 * filters, asked or not, and the connection and commit), in its words.
 */
static void
sf_response(struct session *s, enum filter_phase phase,
    enum decision_kind kind, int junk, const char *text)
{
	const char	*name = filter_phase_name(phase), *decision;

	if (phase == PHASE_CONNECT)
		name = "connected";
	else if (phase == PHASE_STARTTLS)
		name = "tls";
	if (kind == DECISION_REJECT && strncmp(text, "421", 3) == 0)
		kind = DECISION_DISCONNECT;	/* as the session does */
	switch (kind) {
	case DECISION_REJECT:
	case DECISION_DISCONNECT:
	case DECISION_REWRITE:
		decision = decision_name(kind);
		break;
	default:
		decision = junk || kind == DECISION_JUNK ? "junk" : "proceed";
		text = NULL;
		break;
	}
	sf_event(s, EVENT_FILTER_RESPONSE, "%s|%s%s%s", name, decision,
	    text != NULL ? "|" : "", text != NULL ? text : "");
}

static void
sf_query(struct session *s, enum filter_phase phase, const char *param)
{
	struct ipc_chan	*chan = engine();

	s->f_waiting = 1;
	s->f_phase = phase;
	ipc_begin(chan, SMTPFD_MSG_FILTER_QUERY, -1);
	ipc_add_u64(chan, s->id);
	ipc_add_u32(chan, phase);
	ipc_add_string(chan, param);
	ipc_end(chan);
}

/* "192.0.2.1:25", "[2001:db8::1]:25", as OpenSMTPD's reports write. */
static void
addr_port(const char *addr, int port, char *buf, size_t size)
{
	if (strcmp(addr, "unix") == 0)
		snprintf(buf, size, "unix:%s", addr);
	else if (strchr(addr, ':') != NULL)
		snprintf(buf, size, "[%s]:%d", addr, port);
	else
		snprintf(buf, size, "%s:%d", addr, port);
}

void
sf_open(struct session *s)
{
	struct ipc_chan	*chan = engine();

	ipc_begin(chan, SMTPFD_MSG_SESSION_OPEN, -1);
	ipc_add_u64(chan, s->id);
	ipc_add_u32(chan, s->listener->index);
	ipc_add_string(chan, s->client.addr);
	ipc_add_u32(chan, (uint32_t)s->client.port);
	ipc_add_string(chan, s->client.local_addr);
	ipc_add_u32(chan, (uint32_t)s->client.local_port);
	ipc_add_string(chan, s->client.rdns);
	ipc_add_string(chan, s->client.tag);
	ipc_end(chan);
	s->f_waiting = 1;
}

void
sf_close(struct session *s)
{
	struct ipc_chan	*chan;

	if (!s->filtered)
		return;
	if (s->msgid != 0) {
		sf_event(s, EVENT_TX_ROLLBACK, "%08x", s->msgid);
		sf_event(s, EVENT_TX_RESET, "%08x", s->msgid);
	}
	sf_event(s, EVENT_LINK_DISCONNECT, "%s", "");
	chan = engine();
	ipc_begin(chan, SMTPFD_MSG_SESSION_CLOSE, -1);
	ipc_add_u64(chan, s->id);
	ipc_end(chan);
}

/* The engine says what the chain wants of this session. */
static void
sf_chain(struct session *s, uint32_t phases, uint32_t events)
{
	char	 src[300], dest[600];

	s->f_phases = phases;
	s->f_events = events;
	s->f_waiting = 0;
	addr_port(s->client.addr, s->client.port, src, sizeof(src));
	addr_port(s->client.local_addr, s->client.local_port, dest,
	    sizeof(dest));
	sf_event(s, EVENT_LINK_CONNECT, "%s|%s|%s|%s", s->client.rdns[0] ?
	    s->client.rdns : "<unknown>", s->client.rdns[0] ? "pass" : "fail",
	    src, dest);
	if (s->client.tls)
		sf_event(s, EVENT_LINK_TLS, "%s", s->client.tls_info);
	if (!wants_phase(s, PHASE_CONNECT)) {
		sf_response(s, PHASE_CONNECT, DECISION_PROCEED, 0, NULL);
		downstream_start(s);
		return;
	}
	if (strchr(s->client.addr, ':') != NULL)
		snprintf(src, sizeof(src), "[%s]", s->client.addr);
	else
		snprintf(src, sizeof(src), "%s", strcmp(s->client.addr,
		    "unix") == 0 ? "local" : s->client.addr);
	snprintf(dest, sizeof(dest), "%s|%s", s->client.rdns[0] ?
	    s->client.rdns : "<unknown>", src);
	sf_query(s, PHASE_CONNECT, dest);
}

/*
 * Commands.
 */
static int
verb_phase(enum smtp_verb verb)
{
	switch (verb) {
	case SMTP_HELO:
		return PHASE_HELO;
	case SMTP_EHLO:
		return PHASE_EHLO;
	case SMTP_STARTTLS:
		return PHASE_STARTTLS;
	case SMTP_AUTH:
		return PHASE_AUTH;
	case SMTP_MAIL:
		return PHASE_MAIL_FROM;
	case SMTP_RCPT:
		return PHASE_RCPT_TO;
	case SMTP_DATA:
		return PHASE_DATA;
	case SMTP_RSET:
		return PHASE_RSET;
	case SMTP_QUIT:
		return PHASE_QUIT;
	case SMTP_NOOP:
		return PHASE_NOOP;
	default:
		return -1;
	}
}

/* The address of MAIL FROM:<a> or RCPT TO:<a>, without <> or params. */
static int
path_param(const char *args, enum smtp_verb verb, char *addr, size_t size,
    const char **params)
{
	struct mailaddr	 ma;

	if (smtp_path_parse(args, verb == SMTP_MAIL ? SMTP_PATH_MAIL :
	    SMTP_PATH_RCPT, 1, &ma, params) != SMTP_PATH_OK)
		return -1;
	if (ma.domain[0] != '\0')
		snprintf(addr, size, "%s@%s", ma.local, ma.domain);
	else
		snprintf(addr, size, "%s", ma.local);
	return 0;
}

/*
 * A client command.  1 if it waits for the chain's decision (the
 * session then reads nothing more), 0 to run it now.
 */
int
sf_command(struct session *s, const char *line, const struct smtp_command *cmd)
{
	char		 param[1024];
	const char	*params;
	int		 phase;

	if (!s->filtered)
		return 0;
	sf_event(s, EVENT_PROTOCOL_CLIENT, "%s", cmd->verb == SMTP_AUTH ?
	    "AUTH ********" : line);
	if ((phase = verb_phase(cmd->verb)) == -1)
		return 0;
	if (!wants_phase(s, (enum filter_phase)phase)) {
		sf_response(s, (enum filter_phase)phase, DECISION_PROCEED, 0,
		    NULL);
		return 0;
	}
	param[0] = '\0';
	switch (cmd->verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		snprintf(param, sizeof(param), "%.*s",
		    (int)strcspn(cmd->args, " "), cmd->args);
		break;
	case SMTP_AUTH:
		snprintf(param, sizeof(param), "%s", cmd->args);
		break;
	case SMTP_MAIL:
	case SMTP_RCPT:
		/* A bad path is the downstream's to refuse. */
		if (path_param(cmd->args, cmd->verb, param, sizeof(param),
		    &params) == -1)
			return 0;
		break;
	default:
		break;
	}
	free(s->f_line);
	s->f_line = xstrdup(line);
	sf_query(s, (enum filter_phase)phase, param);
	return 1;
}

/* The command as the chain rewrote it. */
static char *
rewritten(const char *line, const char *value)
{
	struct smtp_command	 cmd;
	char			 addr[1024], buf[2048];
	const char		*params = NULL;

	smtp_command_parse(line, &cmd);
	switch (cmd.verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
	case SMTP_AUTH:
		snprintf(buf, sizeof(buf), "%s %s", cmd.name, value);
		break;
	case SMTP_MAIL:
	case SMTP_RCPT:
		if (path_param(cmd.args, cmd.verb, addr, sizeof(addr),
		    &params) == -1)
			params = NULL;
		/* OpenSMTPD's filters give "<a@b>"; take "a@b" too. */
		snprintf(buf, sizeof(buf), "%s %s%s%s%s%s", cmd.name,
		    cmd.verb == SMTP_MAIL ? "FROM:" : "TO:",
		    value[0] == '<' ? "" : "<", value,
		    value[0] == '<' ? "" : ">",
		    params != NULL && *params ? "" : "");
		if (params != NULL && *params)
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			    " %s", params);
		break;
	default:
		snprintf(buf, sizeof(buf), "%s", line);
		break;
	}
	return xstrdup(buf);
}

/* A recipient the chain refused: reported as OpenSMTPD does. */
static void
sf_refused_rcpt(struct session *s, const char *line, const char *reply)
{
	struct smtp_command	 cmd;
	const char		*params;
	char			 addr[1024];

	smtp_command_parse(line, &cmd);
	if (cmd.verb != SMTP_RCPT || path_param(cmd.args, cmd.verb, addr,
	    sizeof(addr), &params) == -1)
		return;
	sf_event(s, EVENT_TX_RCPT, "%08x|%s|%s", s->msgid, reply[0] == '4' ?
	    "tempfail" : "permfail", addr);
}

static void
sf_command_decided(struct session *s, enum decision_kind kind, int junk,
    const char *text)
{
	char	*line = s->f_line, *changed;

	s->f_line = NULL;
	if (line == NULL)
		fatalx("%016" PRIx64 " a decision for no command", s->id);
	if (junk)
		s->f_junk = 1;
	switch (kind) {
	case DECISION_REJECT:
		/* As OpenSMTPD: a 421 ends the session. */
		session_local_reply(s, text, strncmp(text, "421", 3) == 0);
		sf_refused_rcpt(s, line, text);
		break;
	case DECISION_DISCONNECT:
		session_local_reply(s, text, 1);
		break;
	case DECISION_REWRITE:
		changed = rewritten(line, text);
		session_execute(s, changed, strlen(changed));
		free(changed);
		break;
	default:
		session_execute(s, line, strlen(line));
		break;
	}
	free(line);
}

/*
 * Content.
 */
static void
sf_data_send(struct session *s, const char *line, size_t len)
{
	line_batch_addn(&s->f_batch, line, len);
	s->f_inflight++;
	if (line_batch_full(&s->f_batch) || (len == 1 && line[0] == '.'))
		sf_data_flush(s);
}

/* The batch goes (at the latest when the session read what it had). */
void
sf_data_flush(struct session *s)
{
	line_batch_send(&s->f_batch, engine(), SMTPFD_MSG_FILTER_DATA, s->id);
}

/*
 * A batch of lines out of the chain (n joined by LF) straight to the
 * downstream's text: the lines need no strings of their own.
 */
static int
sf_data_out_batch(struct session *s, const char *text, size_t len,
    uint32_t n)
{
	const char	*p, *nl, *end = text + len;

	if (line_batch_check(text, len, n) == -1)
		return -1;
	for (p = text; s->state != S_CLOSING; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		sf_data_out(s, p, (size_t)(nl - p));
		if (nl == end)
			break;
	}
	sf_data_out_flush(s);
	return 0;
}

/* The data-line filters make the message: its size is theirs. */
int
sf_data_lines(struct session *s)
{
	return wants_phase(s, PHASE_DATA_LINE);
}

/* The content goes through the engine, or waits for commit. */
int
sf_content_filtered(struct session *s)
{
	return wants_phase(s, PHASE_DATA_LINE) || wants_phase(s, PHASE_COMMIT);
}

/* The session may read more from the client. */
int
sf_can_read(struct session *s)
{
	return !s->f_waiting && s->f_inflight < DATA_WINDOW;
}

/* The first content line: the junk mark goes before it. */
void
sf_content_begin(struct session *s)
{
	if (!s->f_junk)
		return;
	if (wants_phase(s, PHASE_DATA_LINE))
		sf_data_send(s, "X-Spam: Yes", 11);	/* counted coming back */
	else {
		s->msg_size += 12;		/* "X-Spam: Yes" and LF */
		session_send_down(s, "X-Spam: Yes\r\n", 13);
	}
}

/*
 * Content: a piece of a line as the client sent it (dot-stuffed),
 * without its end.  mid: it continues a line already begun (a piece of
 * a long line), so a dot at its start is content, not stuffing; ended:
 * it ends its line.  The message's end comes by sf_content_end(), never
 * from the bytes of a piece.
 */
void
sf_content_line(struct session *s, const char *line, size_t len, int mid,
    int ended)
{
	const char	*nul;
	char		*stuffed;

	if (s->f_data_fail != NULL)
		return;		/* the rest of a refused message */
	if (!wants_phase(s, PHASE_DATA_LINE)) {
		session_send_down(s, line, len);
		if (ended)
			session_send_down(s, "\r\n", 2);
		return;
	}
	/*
	 * Through data-line filters a piece of a long line is a line.  The
	 * filter protocols carry text: a line ends at a NUL (".\0..." is
	 * then an empty line, not the end).
	 */
	if ((nul = memchr(line, '\0', len)) != NULL) {
		len = (size_t)(nul - line);
		if (!mid && len == 1)
			len = 0;
	}
	if (mid && len > 0 && line[0] == '.') {
		stuffed = xmalloc(len + 1);
		stuffed[0] = '.';
		memcpy(stuffed + 1, line, len);
		sf_data_send(s, stuffed, len + 1);
		free(stuffed);
		return;
	}
	sf_data_send(s, line, len);
}

/* The client's "." ended the message. */
void
sf_content_end(struct session *s)
{
	char	*reply;

	if ((reply = s->f_data_fail) != NULL) {
		/* The end of a refused message gets the reply. */
		s->f_data_fail = NULL;
		sf_message_refused(s, reply, 0);
		free(reply);
		return;
	}
	if (!wants_phase(s, PHASE_DATA_LINE)) {
		/* The "." waits; the engine tells it as a client line when
		 * the commit phase starts. */
		sf_query(s, PHASE_COMMIT, "");
		return;
	}
	sf_data_send(s, ".", 1);
	s->f_waiting = 1;	/* until the chain's "." */
	s->f_dot_sent = 1;
	/* Asked now, answered once the "." is out of the chain: a round
	 * trip less than asking when it comes back. */
	if (wants_phase(s, PHASE_COMMIT)) {
		sf_query(s, PHASE_COMMIT, "");
		s->f_commit_asked = 1;
	}
}

/* The chain is done with the message: the commit phase, or the end. */
static void
sf_content_done(struct session *s)
{
	s->f_dot_sent = 0;
	if (s->f_commit_asked)
		return;		/* the engine goes on with the commit */
	if (wants_phase(s, PHASE_COMMIT)) {
		/* (the chain changed since the "." went) */
		sf_query(s, PHASE_COMMIT, "");
		return;
	}
	/* As OpenSMTPD, the "." is told as a client line when it comes
	 * out of the data-line filters. */
	sf_event(s, EVENT_PROTOCOL_CLIENT, "%s", ".");
	sf_response(s, PHASE_COMMIT, DECISION_PROCEED, 0, NULL);
	s->f_waiting = 0;
	session_message_end(s);
}

/* A line out of the chain's data-line filters. */
static void
sf_data_out(struct session *s, const char *line, size_t len)
{
	if (s->f_data_fail != NULL || (!s->f_dot_sent && !s->in_content))
		return;		/* the message was given up */
	if (len == 1 && line[0] == '.') {
		if (!s->f_dot_sent) {
			/* The rest of the client's content must not be
			 * read as commands: the message fails instead. */
			log_warnx("%016" PRIx64 " the data-line filters "
			    "ended the message before the client did", s->id);
			s->f_data_fail = xstrdup("451 4.3.0 Temporary "
			    "failure, try again later");
			return;
		}
		sf_data_out_flush(s);
		sf_content_done(s);
		return;
	}
	/* As stored: LF ends, the stuffing dot gone. */
	s->msg_size += len + 1 - (len > 0 && line[0] == '.');
	if (down_len + len + 2 > down_size) {
		down_size = (down_len + len + 2) * 2;
		down_text = xreallocarray(down_text, down_size, 1);
	}
	memcpy(down_text + down_len, line, len);
	memcpy(down_text + down_len + len, "\r\n", 2);
	down_len += len + 2;
}

static void
sf_data_out_flush(struct session *s)
{
	if (down_len > 0)
		session_send_down(s, down_text, down_len);
	down_len = 0;
}

/*
 * The message is refused (at commit, or a data-line filter failed):
 * it goes with its downstream connection, the client gets the reply.
 */
void
sf_message_refused(struct session *s, const char *reply, int close)
{
	if (s->f_data_fail != reply)
		free(s->f_data_fail);
	s->f_data_fail = NULL;
	s->f_dot_sent = 0;
	s->f_commit_asked = 0;
	if (s->msgid != 0) {
		sf_event(s, EVENT_TX_ROLLBACK, "%08x", s->msgid);
		sf_event(s, EVENT_TX_RESET, "%08x", s->msgid);
	}
	s->msgid = 0;
	s->f_junk = 0;
	s->f_waiting = 0;
	s->in_content = 0;
	session_local_reply(s, reply, close);
	if (!close)
		downstream_restart(s);
}

static void
sf_decision(struct session *s, enum filter_phase phase,
    enum decision_kind kind, int junk, const char *text)
{
	int	 refused = kind == DECISION_REJECT ||
	    kind == DECISION_DISCONNECT;

	if (phase != PHASE_DATA_LINE)
		sf_response(s, phase, kind, junk, text);
	switch (phase) {
	case PHASE_CONNECT:
		s->f_waiting = 0;
		if (junk)
			s->f_junk_session = 1;
		if (refused) {
			session_fail(s, text, "refused at connect by a filter");
			return;
		}
		downstream_start(s);
		return;
	case PHASE_DATA_LINE:
		/* A data-line filter failed: the message cannot go on. */
		if (s->f_dot_sent)
			sf_message_refused(s, text, kind == DECISION_DISCONNECT);
		else if (s->f_data_fail == NULL)
			s->f_data_fail = xstrdup(text);
		break;
	case PHASE_COMMIT:
		s->f_commit_asked = 0;
		if (refused) {
			sf_message_refused(s, text, kind == DECISION_DISCONNECT ||
			    strncmp(text, "421", 3) == 0);
			break;
		}
		s->f_waiting = 0;
		session_message_end(s);
		break;
	default:
		s->f_waiting = 0;
		sf_command_decided(s, kind, junk, text);
		break;
	}
	session_client_input(s);
}

/* A message from the engine about one of our sessions. */
int
sf_dispatch(struct ipc_msg *msg)
{
	struct session	*s;
	const char	*text;
	size_t		 len;
	uint64_t	 id;
	uint32_t	 a, b, c;

	id = ipc_get_u64(msg);
	s = session_find(id);
	switch (msg->type) {
	case SMTPFD_MSG_SESSION_CHAIN:
		a = ipc_get_u32(msg);
		b = ipc_get_u32(msg);
		ipc_get_end(msg);
		if (s == NULL)
			return 0;
		if (s->f_known) {
			/* another chain for this transaction (select) */
			s->f_phases = a;
			s->f_events = b;
		} else if (s->state == S_CONNECTING) {
			s->f_known = 1;
			sf_chain(s, a, b);
		}
		return 0;
	case SMTPFD_MSG_FILTER_DECISION:
		a = ipc_get_u32(msg);
		b = ipc_get_u32(msg);
		c = ipc_get_u32(msg);
		text = ipc_get_string(msg);
		ipc_get_end(msg);
		if (a >= NPHASES || b > DECISION_DISCONNECT)
			return -1;
		if (s != NULL && s->state != S_CLOSING)
			sf_decision(s, (enum filter_phase)a,
			    (enum decision_kind)b, (int)c, text);
		return 0;
	case SMTPFD_MSG_FILTER_DATA_OUT:
		a = ipc_get_u32(msg);
		text = ipc_get_stringn(msg, &len);
		ipc_get_end(msg);
		if (s == NULL || s->state == S_CLOSING)
			return 0;
		return sf_data_out_batch(s, text, len, a);
	case SMTPFD_MSG_FILTER_DATA_ACK:
		a = ipc_get_u32(msg);
		ipc_get_end(msg);
		if (s == NULL)
			return 0;
		s->f_inflight = a > s->f_inflight ? 0 : s->f_inflight - a;
		session_client_input(s);
		return 0;
	}
	return -1;
}
