/*
 * The smtp process of mtad: listeners and client sessions.
 */
#ifndef SMTP_H
#define SMTP_H

#include <sys/socket.h>

#include <stdint.h>
#include <stdio.h>
#include <tls.h>

#include "io.h"
#include "mtad.h"
#include "smtpf.h"

enum session_state {
	S_GREETING,	/* sending the banner (after TLS for smtps) */
	S_INIT,		/* greeted: waiting for HELO/EHLO */
	S_HELO,		/* identified, no transaction */
	S_MAIL,		/* MAIL accepted */
	S_RCPT,		/* at least one RCPT accepted */
	S_DATA_WAIT,	/* DATA: waiting for the queue's message file */
	S_DATA,		/* receiving the content */
	S_COMMIT,	/* end of DATA: waiting for the queue's commit */
	S_TLS,		/* STARTTLS handshake */
	S_QUIT,		/* closing once the last reply is written */
};

/* Why the content of a message will be refused at its end. */
enum tx_error {
	TX_OK,
	TX_TOO_BIG,
	TX_LINE_TOO_LONG,
	TX_BARE_CR,
	TX_NUL,
	TX_TOO_MANY_HOPS,
	TX_WRITE_FAILED,
};

struct tx {
	uint32_t	 msgid;
	FILE		*fp;
	struct mailaddr	 sender;
	uint32_t	 flags;		/* ENVELOPE_* */
	char		 dsn_ret[8];
	char		 dsn_envid[301];
	struct envelope	*rcpts;
	size_t		 nrcpts;
	size_t		 rcpts_tried;
	size_t		 size;
	size_t		 received_headers;
	int		 in_headers;
	int		 prev_crlf;	/* previous line ended with CRLF */
	enum tx_error	 error;
};

struct session {
	TAILQ_ENTRY(session)	 entry;
	uint64_t		 id;
	struct io		*io;
	struct listener		*listener;
	struct sockaddr_storage	 client;
	struct sockaddr_storage	 local;
	char			 client_addr[64];	/* text, for logs */
	int			 client_port;
	enum session_state	 state;
	char			 helo[SMTP_DOMAIN_MAX + 1];
	int			 esmtp;
	int			 tls;
	int			 xclient_allowed;
	int			 discarding;	/* rest of an over-long line */
	int			 out_blocked;	/* paused: replies unread */
	size_t			 nerrors;
	size_t			 nmails;
	struct tx		*tx;
};

/*
 * A client of a "filter smtpf" listener: mtad moves its bytes to and
 * from smtpfd over a link (smtpf_link.c) and says nothing of its own
 * (smtpf_session.c).
 */
enum fsession_state {
	FS_TLS_ACCEPT,		/* smtps: handshake before open */
	FS_OPEN,		/* lines go up, replies come down */
	FS_STARTTLS_FLUSH,	/* starttls: writing the replies before it */
	FS_STARTTLS,		/* handshake with the client */
	FS_CLOSE_FLUSH,		/* close: writing the last replies */
	FS_DRAIN,		/* off the link: last words, then close */
};

struct smtpf_link;

struct fsession {
	TAILQ_ENTRY(fsession)	 entry;		/* all of them */
	TAILQ_ENTRY(fsession)	 link_entry;	/* its link's */
	uint64_t		 id;		/* the SID once opened, or 0 */
	struct smtpf_link	*link;		/* NULL once off the link */
	struct listener		*listener;
	struct io		*io;
	struct sockaddr_storage	 client;
	struct sockaddr_storage	 local;
	enum fsession_state	 state;
	int			 peer_paused;	/* smtpfd said pause */
	int			 out_paused;	/* we said pause */
	int			 tls;
	const char		*reason;	/* FS_DRAIN: for the log */
	char			*held;		/* a multi-line reply's lines */
	size_t			 heldlen;	/* so far, until its last */
	size_t			 heldsize;
};

/* smtpf_link.c */
void		 smtpf_links_init(struct ipc_chan *);
void		 smtpf_add_client_pki(const char *, const void *, size_t,
		    const void *, size_t, const void *, size_t);
void		 smtpf_links_start(void);
int		 smtpf_link_socket(uint32_t, int, const char *);
struct smtpf_link *smtpf_link_pick(struct listener *);
uint64_t	 smtpf_link_open(struct smtpf_link *);
void		 smtpf_link_attach(struct smtpf_link *, struct fsession *);
void		 smtpf_link_detach(struct smtpf_link *, struct fsession *);
int		 smtpf_link_blocked(struct smtpf_link *);
void		 smtpf_link_send(struct smtpf_link *, enum smtpf_type,
		    const char *[], size_t);
const char	*smtpf_link_name(struct smtpf_link *);
void		 smtpf_link_stats(struct ipc_chan *, uint64_t);

/* smtpf_session.c */
int		 fsession_new(struct listener *, int,
		    const struct sockaddr_storage *);
int		 fsession_message(struct fsession *, const struct smtpf_msg *,
		    char *, size_t);
void		 fsession_link_lost(struct fsession *);
void		 fsession_update_reading(struct fsession *);
size_t		 fsession_count(void);

/* smtp.c */
struct tls	*smtp_tls_server(const char *);
void		 smtp_session_gone(struct session *);
void		 smtp_fsession_gone(void);
void		 smtp_request_message(struct session *);
void		 smtp_request_commit(struct session *);
void		 smtp_request_rollback(uint32_t);
void		 smtp_count_message(void);

/* smtp_session.c */
struct session	*session_new(struct listener *, int,
		    const struct sockaddr_storage *);
void		 session_message_created(struct session *, uint32_t, int);
void		 session_message_committed(struct session *, int);
void		 session_close(struct session *, const char *);

#endif
