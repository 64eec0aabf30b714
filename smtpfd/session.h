/*
 * The frontend's sessions: one per SMTP client, whether the client came
 * through an MTA's smtpf stream (link.c) or straight to a proxy listener
 * (proxy.c).  A session reads the client's lines, replays them on its own
 * SMTP connection to the downstream MTA (downstream.c), and gives the
 * client the downstream's replies.
 *
 * The client side is reached through struct front_ops, so the relay logic
 * (session.c) does not care which kind of front it has.
 */
#ifndef SESSION_H
#define SESSION_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <event.h>
#include <stdint.h>
#include <tls.h>

#include "filter.h"
#include "io.h"
#include "line_batch.h"
#include "smtp_proto.h"
#include "smtpfd.h"

/* Client input held before pausing the client, and where it resumes. */
#define CLIENT_IN_HIGH		(64 * 1024)
#define CLIENT_IN_LOW		(16 * 1024)
/* Downstream output before the session stops reading the client. */
#define DOWN_OUT_HIGH		(128 * 1024)
/* A client line longer than this is cut in pieces (content only). */
#define SESSION_CHUNK		4000
#define REPLY_MAX_LINES		64
#define PENDING_MAX		256	/* pipelined commands in flight */
/*
 * Room a session keeps in its pending ring before it reads a command:
 * one client command pushes at most itself, the EHLO that follows an
 * XCLIENT, and the identity lines before a MAIL (send_identity() puts
 * at most 8 attributes, so at most 8 lines); an RSET after STARTTLS
 * comes alone.
 */
#define PENDING_RESERVE		16

struct session;

/* What the relay asks of the client's side. */
struct front_ops {
	/* send one reply line (without CRLF) to the client */
	void	(*reply)(struct session *, const char *);
	/* give the client this reply (the 220) and start TLS with it */
	void	(*starttls)(struct session *, const char *);
	/* close the client once the replies before it are written */
	void	(*close)(struct session *);
	/* stop and resume taking client input */
	void	(*pause)(struct session *);
	void	(*resume)(struct session *);
};

/* What a command waits for from the downstream, in order. */
enum pending_kind {
	PENDING_RELAY,		/* pass the reply on */
	PENDING_EHLO,		/* rewrite the extension list */
	PENDING_DATA,		/* 354 starts the content */
	PENDING_EOM,		/* the answer to a message's "." */
	PENDING_QUIT,		/* pass the reply on, then close */
	PENDING_INTERNAL,	/* our own command: keep the reply */
	PENDING_LOCAL,		/* answered by smtpfd: no downstream reply */
	PENDING_LOCAL_CLOSE,	/* ... and then the session closes */
	PENDING_STARTTLS,	/* answered by smtpfd, then TLS */
};

struct pending {
	enum pending_kind	 kind;
	char			*text;	/* PENDING_LOCAL: the reply */
	enum smtp_verb		 verb;	/* for the filters' tx events */
	char			*arg;	/* MAIL, RCPT: the address */
};

enum session_state {
	S_CONNECTING,		/* downstream handshake: client waits */
	S_RELAY,		/* commands and replies flow */
	S_TLS,			/* client TLS handshake */
	S_CLOSING,		/* the client is told goodbye */
};

enum down_state {
	D_CONNECT,		/* TCP connect in progress */
	D_BANNER,		/* waiting for 220 */
	D_EHLO,			/* our EHLO: what does it offer? */
	D_XCLIENT,		/* XCLIENT sent: waiting for the new 220 */
	D_READY,		/* relaying */
	D_GONE,
};

/* What smtpfd knows of the client, for the downstream and the logs. */
struct client_info {
	char		 addr[64];	/* "192.0.2.1", "2001:db8::1", "unix" */
	int		 port;
	char		 local_addr[64];
	int		 local_port;
	char		 rdns[256];	/* "" when unknown */
	char		 tag[64];
	char		 helo[SMTP_DOMAIN_MAX + 1];
	int		 esmtp;
	int		 tls;
	char		 tls_info[256];
};

struct session {
	TAILQ_ENTRY(session)	 entry;
	uint64_t		 id;
	const struct front_ops	*front;
	void			*front_ctx;
	struct listener		*listener;
	struct client_info	 client;
	int			 front_tls;	/* the front can start TLS */
	int			 tls_required;
	enum session_state	 state;

	/* client input not yet handled, raw bytes */
	struct evbuffer		*cin;
	int			 cin_eof;
	int			 client_paused;	/* we paused the front */
	int			 in_content;	/* between 354 and "." */
	int			 mid_line;	/* content: inside a long line */
	int			 discarding;	/* command: over-long line */
	int			 need_helo;	/* after TLS */
	int			 waiting;	/* for the reply to DATA, QUIT */
	int			 processing;

	/* downstream */
	struct io		*down;
	enum down_state		 down_state;
	char			 down_xclient[128];	/* attributes */
	char			 down_xforward[128];	/* offered */
	int			 identity_changed; /* by a trusted client */
	int			 front_out_paused; /* the front is full */
	char			 banner[512];
	struct event		 ev_lost;	/* connect failed at once */

	/* replies expected, oldest first (a ring) */
	struct pending		 pending[PENDING_MAX];
	size_t			 pending_head, npending;
	char			*reply[REPLY_MAX_LINES];
	size_t			 nreply;

	time_t			 started;
	size_t			 nmessages;
	int			 freed;

	/* filtering (session_filter.c) */
	int			 filtered;	/* the listener has a chain */
	uint32_t		 f_phases;	/* 1 << PHASE_*: asked */
	uint32_t		 f_events;	/* 1 << EVENT_*: told */
	int			 f_known;	/* the engine said them */
	int			 f_waiting;	/* for the engine */
	int			 f_phase;	/* what is asked */
	char			*f_line;	/* the command it is about */
	size_t			 f_inflight;	/* data lines not acked */
	int			 f_dot_sent;	/* the "." went to the engine */
	int			 f_commit_asked; /* ... and the commit question */
	char			*f_data_fail;	/* the message is refused */
	int			 f_junk;	/* X-Spam: Yes on this message */
	int			 f_junk_session;
	uint32_t		 msgid;		/* the transaction, for events */
	size_t			 msg_size;
	size_t			 content_lines;
	int			 down_resume;	/* a new downstream mid-session */
	struct line_batch	 f_batch;	/* data lines for the engine */
};

/* session.c (and session_filter.c) */
struct session	*session_find(uint64_t);
void		 session_execute(struct session *, const char *, size_t);
void		 session_local_reply(struct session *, const char *, int);
void		 session_send_down(struct session *, const char *, size_t);
void		 session_message_end(struct session *);
void		 session_reply_line(struct session *, const char *);
struct session	*session_new(struct listener *, const struct front_ops *,
		    void *, const struct client_info *, int, int);
void		 session_client_input(struct session *);
void		 session_client_gone(struct session *, const char *);
int		 session_client_eof(struct session *);
void		 session_tls_ready(struct session *, const char *);
void		 session_front_full(struct session *, int);
void		 session_fail(struct session *, const char *, const char *);
void		 session_free(struct session *);
void		 session_down_ready(struct session *, const char *);
void		 session_down_reply(struct session *, char **, size_t);
void		 session_down_lost(struct session *, const char *);
void		 session_down_drained(struct session *);
void		 session_down_lost_later(struct session *);
void		 session_pending_internal(struct session *);
void		 sessions_stats(struct ipc_chan *, uint64_t);
void		 sessions_metrics(struct ipc_chan *, uint64_t);
size_t		 sessions_count(void);
void		 sessions_show(struct ipc_chan *, uint64_t);

/* session_filter.c */
void		 sf_open(struct session *);
void		 sf_close(struct session *);
void		 sf_event(struct session *, enum filter_event, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
int		 sf_command(struct session *, const char *,
		    const struct smtp_command *);
int		 sf_content_filtered(struct session *);
int		 sf_data_lines(struct session *);
int		 sf_can_read(struct session *);
void		 sf_content_begin(struct session *);
void		 sf_data_flush(struct session *);
void		 sf_content_line(struct session *, const char *, size_t, int,
		    int);
void		 sf_content_end(struct session *);
void		 sf_message_refused(struct session *, const char *, int);
int		 sf_dispatch(struct ipc_msg *);

/* downstream.c */
void		 downstream_restart(struct session *);
void		 downstream_start(struct session *);
void		 downstream_write(struct session *, const void *, size_t);
void		 downstream_identity(struct session *);
void		 downstream_close(struct session *);

/* proxy.c */
void		 proxy_accept(struct listener *, int,
		    const struct sockaddr_storage *);

/* link.c */
void		 link_accept(struct listener *, int,
		    const struct sockaddr_storage *);
void		 links_reconfigured(void);
size_t		 links_count(void);

/* A monotonic session id, unique in this process's life. */

#endif
