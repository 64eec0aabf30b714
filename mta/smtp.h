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

/* smtp.c */
struct tls	*smtp_tls_server(const char *);
void		 smtp_session_gone(struct session *);
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
