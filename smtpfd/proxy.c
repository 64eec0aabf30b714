/*
 * The front of a proxy listener: smtpfd itself is the SMTP server the
 * client talks to (in front of Postfix, Exim, OpenSMTPD or mtad, or as
 * Postfix's smtpd_proxy_filter).  It does the socket and TLS work with
 * the client; the session (session.c) does the rest.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "netaddr.h"
#include "session.h"
#include "xmalloc.h"

/* Replies the client has not read before the downstream is paused. */
#define CLIENT_OUT_HIGH	(64 * 1024)

struct proxy_client {
	struct io		*io;
	struct session		*session;
	struct listener		*listener;	/* referenced (conf refs) */
	struct client_info	 info;
	int			 closing;
	int			 out_full;
	int			 tls_wanted;	/* once "220" is written */
	struct event		 ev_close;
};

static void	 proxy_io(struct io *, enum io_event, void *);
static void	 proxy_tls_now(struct proxy_client *);
static void	 proxy_close_later(struct proxy_client *);
static void	 proxy_reply(struct session *, const char *);
static void	 proxy_starttls(struct session *, const char *);
static void	 proxy_close(struct session *);
static void	 proxy_pause(struct session *);
static void	 proxy_resume(struct session *);

static const struct front_ops proxy_ops = {
	.reply = proxy_reply,
	.starttls = proxy_starttls,
	.close = proxy_close,
	.pause = proxy_pause,
	.resume = proxy_resume,
};

static void
proxy_free(struct proxy_client *pc, const char *reason)
{
	evtimer_del(&pc->ev_close);
	if (pc->session != NULL)
		session_client_gone(pc->session, reason);
	io_linger(pc->io);
	smtpfd_conf_unref(pc->listener->conf);
	free(pc);
}

static void
proxy_start_session(struct proxy_client *pc)
{
	struct listener	*l = pc->listener;

	pc->session = session_new(l, &proxy_ops, pc, &pc->info,
	    l->tls != PROXY_TLS_NONE && l->tls != PROXY_TLS_SMTPS,
	    l->tls == PROXY_TLS_REQUIRE);
	if (pc->session == NULL) {
		io_printf(pc->io, "421 4.3.0 Temporary failure, try again "
		    "later\r\n");
		proxy_close_later(pc);
		return;
	}
	if (l->tls == PROXY_TLS_SMTPS)
		session_tls_ready(pc->session, pc->info.tls_info);
}

static void
proxy_close_cb(int fd, short event, void *arg)
{
	(void)fd;
	(void)event;
	proxy_free(arg, "closed");
}

void
proxy_accept(struct listener *l, int fd, const struct sockaddr_storage *ss)
{
	struct proxy_client	*pc;
	struct sockaddr_storage	 local;
	socklen_t		 len = sizeof(local);

	pc = xcalloc(1, sizeof(*pc));
	pc->listener = l;
	smtpfd_conf_ref(l->conf);
	evtimer_set(&pc->ev_close, proxy_close_cb, pc);
	sockaddr_text(ss, pc->info.addr, sizeof(pc->info.addr),
	    &pc->info.port);
	if (getsockname(fd, (struct sockaddr *)&local, &len) == 0)
		sockaddr_text(&local, pc->info.local_addr,
		    sizeof(pc->info.local_addr), &pc->info.local_port);
	if ((pc->io = io_new(fd, proxy_io, pc)) == NULL) {
		log_warn("client %s refused", pc->info.addr);
		close(fd);
		smtpfd_conf_unref(l->conf);
		free(pc);
		return;
	}
	io_set_timeout(pc->io, smtpfd_conf->client_timeout);
	if (l->tls == PROXY_TLS_SMTPS) {
		if (io_start_tls_server(pc->io, l->tls_ctx) == -1) {
			log_warnx("smtps: %s", io_error(pc->io));
			proxy_free(pc, "TLS failed");
		}
		return;
	}
	proxy_start_session(pc);
}

static void
proxy_io(struct io *io, enum io_event event, void *arg)
{
	struct proxy_client	*pc = arg;
	char			 info[256];

	switch (event) {
	case IO_DATAIN:
		if (pc->session == NULL || pc->closing) {
			evbuffer_drain(io->in, evbuffer_get_length(io->in));
			return;
		}
		evbuffer_add_buffer(pc->session->cin, io->in);
		session_client_input(pc->session);
		return;
	case IO_LOWAT:
		if (pc->closing) {
			proxy_free(pc, "closed");
			return;
		}
		if (pc->tls_wanted) {
			proxy_tls_now(pc);
			return;
		}
		if (pc->out_full) {
			pc->out_full = 0;
			session_front_full(pc->session, 0);
		}
		return;
	case IO_TLSREADY:
		if (io_tls_info(io, info, sizeof(info)) == NULL)
			snprintf(info, sizeof(info), "unknown");
		snprintf(pc->info.tls_info, sizeof(pc->info.tls_info), "%s",
		    info);
		if (pc->session == NULL)
			proxy_start_session(pc);
		else {
			io_resume(io);
			session_tls_ready(pc->session, info);
		}
		return;
	case IO_TIMEOUT:
		if (pc->session == NULL || pc->closing) {
			proxy_free(pc, "timeout");
			return;
		}
		sf_event(pc->session, EVENT_TIMEOUT, "%s", "");
		session_fail(pc->session, "421 4.4.2 Timeout, closing "
		    "connection", "client timeout");
		return;
	case IO_DISCONNECTED:
		if (pc->session != NULL && !pc->closing &&
		    session_client_eof(pc->session))
			return;		/* replies still due */
		proxy_free(pc, "client closed");
		return;
	case IO_ERROR:
		proxy_free(pc, io_error(io));
		return;
	}
}

static void
proxy_reply(struct session *s, const char *line)
{
	struct proxy_client	*pc = s->front_ctx;

	io_printf(pc->io, "%s\r\n", line);
	if (!pc->out_full && io_queued(pc->io) > CLIENT_OUT_HIGH) {
		pc->out_full = 1;
		session_front_full(s, 1);
	}
}

static void
proxy_tls_now(struct proxy_client *pc)
{
	pc->tls_wanted = 0;
	/* Clear text sent after STARTTLS must not count as encrypted. */
	evbuffer_drain(pc->io->in, evbuffer_get_length(pc->io->in));
	if (io_start_tls_server(pc->io, pc->listener->tls_ctx) == -1)
		session_fail(pc->session, NULL, io_error(pc->io));
}

/* After the "220" is written. */
static void
proxy_starttls(struct session *s, const char *reply)
{
	struct proxy_client	*pc = s->front_ctx;

	io_printf(pc->io, "%s\r\n", reply);
	pc->tls_wanted = 1;
	io_pause(pc->io);
	if (io_queued(pc->io) == 0)
		proxy_tls_now(pc);
}

/* Never frees at once: the session may be on the stack. */
static void
proxy_close_later(struct proxy_client *pc)
{
	struct timeval		 now = { 0, 0 };

	pc->closing = 1;
	io_pause(pc->io);
	if (io_queued(pc->io) == 0)
		evtimer_add(&pc->ev_close, &now);
}

static void
proxy_close(struct session *s)
{
	proxy_close_later(s->front_ctx);
}

static void
proxy_pause(struct session *s)
{
	io_pause(((struct proxy_client *)s->front_ctx)->io);
}

static void
proxy_resume(struct session *s)
{
	io_resume(((struct proxy_client *)s->front_ctx)->io);
}
