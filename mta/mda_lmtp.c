/*
 * lmtp delivery (RFC 2033): hand the message to an LMTP server on a
 * unix socket ("unix:/path" or "/path") or TCP ("host:port",
 * "[v6addr]:port").  One recipient per session, so the one reply after
 * the final "." is this recipient's.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mtad.h"

#define LMTP_TIMEOUT	300

static int
lmtp_connect(const char *dest, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct addrinfo		 hints, *res, *ai;
	struct timeval		 tv = { LMTP_TIMEOUT, 0 };
	char			 host[256], *port;
	const char		*path = NULL;
	int			 fd = -1, r;

	if (strncmp(dest, "unix:", 5) == 0)
		path = dest + 5;
	else if (dest[0] == '/')
		path = dest;
	if (path != NULL) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(path) >= sizeof(sun.sun_path)) {
			snprintf(err, errlen, "lmtp %s: path too long", path);
			return -1;
		}
		strcpy(sun.sun_path, path);
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) ==
		    -1 || connect(fd, (struct sockaddr *)&sun,
		    sizeof(sun)) == -1) {
			snprintf(err, errlen, "lmtp %s: %s", path,
			    strerror(errno));
			if (fd != -1)
				close(fd);
			return -1;
		}
	} else {
		snprintf(host, sizeof(host), "%s", dest[0] == '[' ? dest + 1 :
		    dest);
		if ((port = strrchr(host, ':')) == NULL) {
			snprintf(err, errlen, "lmtp %s: no port", dest);
			return -1;
		}
		*port++ = '\0';
		if (dest[0] == '[' && port - 2 >= host && port[-2] == ']')
			port[-2] = '\0';
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
			snprintf(err, errlen, "lmtp %s: %s", dest,
			    gai_strerror(r));
			return -1;
		}
		for (ai = res; ai && fd == -1; ai = ai->ai_next) {
			if ((fd = socket(ai->ai_family, SOCK_STREAM |
			    SOCK_CLOEXEC, 0)) == -1)
				continue;
			if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
				close(fd);
				fd = -1;
			}
		}
		freeaddrinfo(res);
		if (fd == -1) {
			snprintf(err, errlen, "lmtp %s: %s", dest,
			    strerror(errno));
			return -1;
		}
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Read one whole reply; returns its code, 0 on I/O or syntax error. */
static int
lmtp_reply(FILE *in, char *text, size_t size)
{
	char		 line[1024];
	const char	*t;
	int		 code, more = 1;

	text[0] = '\0';
	while (more) {
		if (fgets(line, sizeof(line), in) == NULL)
			return 0;
		line[strcspn(line, "\r\n")] = '\0';
		if (smtp_reply_parse(line, &code, &more, &t) == -1)
			return 0;
		snprintf(text, size, "%s", line);
	}
	return code;
}

static enum delivery_result
lmtp_result(int code, const char *text, char *err, size_t errlen)
{
	if (code == 0) {
		snprintf(err, errlen, "451 4.4.2 lmtp: connection lost");
		return DELIVERY_TEMPFAIL;
	}
	snprintf(err, errlen, "%s", text);
	return code >= 500 ? DELIVERY_PERMFAIL : DELIVERY_TEMPFAIL;
}

enum delivery_result
mda_lmtp(const struct action *a, const struct envelope *e,
    const struct passwd *pw, int msgfd, char *err, size_t errlen)
{
	enum delivery_result	 r = DELIVERY_TEMPFAIL;
	char			 text[1024];
	FILE			*in = NULL, *out = NULL;
	int			 fd, fd2, code;

	(void)pw;
	if ((fd = lmtp_connect(a->arg, err, errlen)) == -1)
		return DELIVERY_TEMPFAIL;
	if ((fd2 = dup(fd)) == -1 || (in = fdopen(fd, "r")) == NULL ||
	    (out = fdopen(fd2, "w")) == NULL) {
		snprintf(err, errlen, "451 4.3.0 lmtp: %s", strerror(errno));
		goto done;
	}
	if ((code = lmtp_reply(in, text, sizeof(text))) != 220) {
		r = lmtp_result(code, text, err, errlen);
		goto done;
	}
	fprintf(out, "LHLO %s\r\n", mtad_conf->hostname);
	fflush(out);
	if ((code = lmtp_reply(in, text, sizeof(text))) != 250) {
		r = lmtp_result(code, text, err, errlen);
		goto done;
	}
	fprintf(out, "MAIL FROM:<%s>\r\n", e->sender);
	fflush(out);
	if ((code = lmtp_reply(in, text, sizeof(text))) / 100 != 2) {
		r = lmtp_result(code, text, err, errlen);
		goto done;
	}
	fprintf(out, "RCPT TO:<%s>\r\n", e->rcpt);
	fflush(out);
	if ((code = lmtp_reply(in, text, sizeof(text))) / 100 != 2) {
		r = lmtp_result(code, text, err, errlen);
		goto done;
	}
	fprintf(out, "DATA\r\n");
	fflush(out);
	if ((code = lmtp_reply(in, text, sizeof(text))) != 354) {
		r = lmtp_result(code, text, err, errlen);
		goto done;
	}
	if (mda_copy_message(msgfd, out, e, MDA_COPY_SMTP) == -1) {
		snprintf(err, errlen, "451 4.3.0 lmtp: %s", strerror(errno));
		goto done;
	}
	fprintf(out, ".\r\n");
	fflush(out);
	if ((code = lmtp_reply(in, text, sizeof(text))) / 100 != 2) {
		r = lmtp_result(code, text, err, errlen);
		goto done;
	}
	r = DELIVERY_OK;
	fprintf(out, "QUIT\r\n");
	fflush(out);
	(void)lmtp_reply(in, text, sizeof(text));	/* delivered anyway */
done:
	if (in)
		fclose(in);
	else
		close(fd);
	if (out)
		fclose(out);
	return r;
}
