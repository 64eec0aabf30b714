/*
 * IPC framing and payload checks: what is composed is received intact,
 * and every kind of malformed message is refused with a reason.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "tap.h"

enum { T_EMPTY = 1, T_MIXED, T_FD };

static const struct ipc_type types[] = {
	{ T_EMPTY,	"EMPTY",	"",	IPC_FD_NONE },
	{ T_MIXED,	"MIXED",	"uqsd",	IPC_FD_NONE },
	{ T_FD,		"FD",		"s",	IPC_FD_REQUIRED },
};
#define NTYPES	(sizeof(types) / sizeof(types[0]))

static int	 got_type, got_closed;
static uint32_t	 got_u32;
static uint64_t	 got_u64;
static char	 got_str[64];
static char	 got_data[64];
static size_t	 got_datalen;
static int	 got_fd;

static int	 fds_got[4], nfds_got, nempty_got;

static int
dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	const void	*d;

	(void)chan;
	got_type = (int)msg->type;
	switch (msg->type) {
	case T_EMPTY:
		nempty_got++;
		break;
	case T_FD:
		snprintf(got_str, sizeof(got_str), "%s", ipc_get_string(msg));
		got_fd = msg->fd;
		if (nfds_got < 4)
			fds_got[nfds_got++] = msg->fd;
		break;
	case T_MIXED:
		got_u32 = ipc_get_u32(msg);
		got_u64 = ipc_get_u64(msg);
		snprintf(got_str, sizeof(got_str), "%s", ipc_get_string(msg));
		d = ipc_get_data(msg, &got_datalen);
		memcpy(got_data, d, got_datalen < sizeof(got_data) ?
		    got_datalen : sizeof(got_data));
		break;
	default:
		return -1;
	}
	ipc_get_end(msg);
	return 0;
}

static void
closed(struct ipc_chan *chan)
{
	(void)chan;
	got_closed = 1;
}

/* Compose on a socketless channel and return the bytes queued. */
static size_t
compose_mixed(uint8_t *buf, size_t size)
{
	struct ipc_chan		 tx;
	size_t			 len;

	ipc_chan_init(&tx, -1, "test", IPC_PEER_INTERNAL, types, NTYPES,
	    dispatch, NULL, NULL);
	ipc_begin(&tx, T_MIXED, -1);
	ipc_add_u32(&tx, 0xdeadbeef);
	ipc_add_u64(&tx, UINT64_C(0x0123456789abcdef));
	ipc_add_string(&tx, "hello");
	ipc_add_data(&tx, "a\0b", 3);
	ipc_end(&tx);
	len = tx.olen - tx.ooff < size ? tx.olen - tx.ooff : size;
	memcpy(buf, tx.obuf + tx.ooff, len);
	ipc_chan_close(&tx);
	return len;
}

/* Feed bytes to a fresh client-trust receiver; returns ipc_feed(). */
static int
receive(const void *p, size_t len)
{
	struct ipc_chan	 rx;
	int		 r;

	got_type = 0;
	got_closed = 0;
	ipc_chan_init(&rx, -1, "peer", IPC_PEER_CLIENT, types, NTYPES,
	    dispatch, closed, NULL);
	r = ipc_feed(&rx, p, len);
	ipc_chan_close(&rx);
	return r;
}

static size_t
raw_message(uint8_t *buf, uint32_t type, uint32_t flags, const void *payload,
    uint32_t len)
{
	struct ipc_hdr	 hdr = { type, flags, len };

	memcpy(buf, &hdr, sizeof(hdr));
	memcpy(buf + sizeof(hdr), payload, len);
	return sizeof(hdr) + len;
}

static void
test_roundtrip(void)
{
	uint8_t	 buf[256];
	size_t	 len = compose_mixed(buf, sizeof(buf));

	is_int(receive(buf, len), 0, "well-formed message is accepted");
	is_int(got_type, T_MIXED, "type arrives");
	is_int(got_u32, 0xdeadbeef, "u32 arrives");
	ok(got_u64 == UINT64_C(0x0123456789abcdef), "u64 arrives");
	is_str(got_str, "hello", "string arrives");
	ok(got_datalen == 3 && memcmp(got_data, "a\0b", 3) == 0,
	    "data with a NUL arrives");

	/* Byte by byte: framing must cope with partial reads. */
	{
		struct ipc_chan	 rx;
		size_t		 i;
		int		 r = 0;

		got_type = 0;
		ipc_chan_init(&rx, -1, "peer", IPC_PEER_CLIENT, types, NTYPES,
		    dispatch, closed, NULL);
		for (i = 0; i < len && r == 0; i++) {
			r = ipc_feed(&rx, buf + i, 1);
			if (i + 1 < len && got_type != 0)
				break;
		}
		ok(r == 0 && i == len && got_type == T_MIXED,
		    "message split into single bytes is reassembled");
		ipc_chan_close(&rx);
	}
}

static void
test_malformed(void)
{
	uint8_t	 buf[256], msg[256];
	size_t	 len;

	len = compose_mixed(msg, sizeof(msg));

	memcpy(buf, msg, len);
	((struct ipc_hdr *)(void *)buf)->type = 77;
	ok(receive(buf, len) == -1 && got_closed && got_type == 0,
	    "unknown type is refused");

	memcpy(buf, msg, len);
	buf[len] = 'x';
	((struct ipc_hdr *)(void *)buf)->len += 1;
	ok(receive(buf, len + 1) == -1 && got_type == 0,
	    "trailing byte is refused");

	memcpy(buf, msg, len);
	((struct ipc_hdr *)(void *)buf)->len -= 2;
	ok(receive(buf, len - 2) == -1 && got_type == 0,
	    "truncated field is refused");

	len = raw_message(buf, T_MIXED, 0, "", 0);
	ok(receive(buf, len) == -1 && got_type == 0,
	    "missing fields are refused");

	len = raw_message(buf, T_EMPTY, 0, "u\0\0\0\0", 5);
	ok(receive(buf, len) == -1 && got_type == 0,
	    "payload on an empty message is refused");

	memcpy(buf, msg, sizeof(struct ipc_hdr));
	((struct ipc_hdr *)(void *)buf)->len = IPC_MAX_PAYLOAD + 1;
	ok(receive(buf, sizeof(struct ipc_hdr)) == -1,
	    "over-long length is refused before the payload arrives");

	len = raw_message(buf, T_EMPTY, 0x8, "", 0);
	ok(receive(buf, len) == -1, "unknown flag is refused");

	{
		uint8_t	 p[16] = "s";
		uint32_t n = 1;

		memcpy(p + 1, &n, 4);
		p[5] = 'x';		/* no terminating NUL */
		len = raw_message(buf, T_FD, IPC_F_FD, p, 6);
		ok(receive(buf, len) == -1 && got_type == 0,
		    "unterminated string is refused");
	}
	{
		uint8_t	 p[16] = "s";
		uint32_t n = 2;

		memcpy(p + 1, &n, 4);
		p[5] = 'x';
		p[6] = '\0';
		len = raw_message(buf, T_FD, IPC_F_FD, p, 7);
		ok(receive(buf, len) == -1 && got_type == 0,
		    "descriptor announced but missing is refused");
		len = raw_message(buf, T_FD, 0, p, 7);
		ok(receive(buf, len) == -1 && got_type == 0,
		    "required descriptor absent is refused");
	}
	{
		uint8_t	 p[16] = "q";

		len = raw_message(buf, T_MIXED, 0, p, 9);
		ok(receive(buf, len) == -1 && got_type == 0,
		    "ill-typed field is refused");
	}
}

static void
test_validate(void)
{
	char	 err[128];
	uint8_t	 p[32];
	uint32_t n = 3;

	p[0] = 's';
	memcpy(p + 1, &n, 4);
	memcpy(p + 5, "a\0b", 3);
	ok(ipc_validate(p, 8, "s", err, sizeof(err)) == -1 &&
	    strstr(err, "NUL") != NULL, "embedded NUL in a string is refused");
	ok(ipc_validate(p, 0, "", err, sizeof(err)) == 0,
	    "empty payload matches empty layout");
}

/* An internal peer's malformed message must kill the receiver. */
static void
test_internal_is_fatal(void)
{
	uint8_t		 buf[64];
	size_t		 len;
	pid_t		 pid;
	int		 status;

	len = raw_message(buf, 99, 0, "", 0);
	if ((pid = fork()) == 0) {
		struct ipc_chan	 rx;

		/* Keep the expected log line out of the TAP stream. */
		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(3);
		ipc_chan_init(&rx, -1, "parent", IPC_PEER_INTERNAL, types,
		    NTYPES, dispatch, closed, NULL);
		ipc_feed(&rx, buf, len);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	    "malformed message from an internal peer is fatal");
}

/*
 * Many messages go in one write; descriptors in the middle of a batch
 * still reach the messages that announce them.
 */
static void
test_batched_writes(void)
{
	struct ipc_chan	 tx, rx;
	int		 sp[2], pa[2], pb[2], i;
	char		 c = 0, d = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1 || pipe(pa) == -1 ||
	    pipe(pb) == -1) {
		ok(0, "socketpair");
		return;
	}
	/* The event base of test_fd_passing() serves here too. */
	ipc_chan_init(&tx, sp[0], "tx", IPC_PEER_INTERNAL, types, NTYPES,
	    dispatch, NULL, NULL);
	for (i = 0; i < 100; i++)
		ipc_send_empty(&tx, T_EMPTY);
	ipc_begin(&tx, T_FD, pa[1]);
	ipc_add_string(&tx, "a");
	ipc_end(&tx);
	for (i = 0; i < 10; i++)
		ipc_send_empty(&tx, T_EMPTY);
	ipc_begin(&tx, T_FD, pb[1]);
	ipc_add_string(&tx, "b");
	ipc_end(&tx);
	ok(ipc_flush(&tx) == 0, "a batch of 112 messages is written");
	ipc_chan_init(&rx, sp[1], "rx", IPC_PEER_INTERNAL, types, NTYPES,
	    dispatch, NULL, NULL);
	nfds_got = nempty_got = 0;
	for (i = 0; i < 20 && nempty_got + nfds_got < 112; i++)
		event_loop(EVLOOP_ONCE | EVLOOP_NONBLOCK);
	is_int(nempty_got, 110, "every message of the batch is dispatched");
	is_int(nfds_got, 2, "both descriptors arrive");
	ok(nfds_got == 2 && write(fds_got[0], "a", 1) == 1 &&
	    read(pa[0], &c, 1) == 1 && c == 'a' &&
	    write(fds_got[1], "b", 1) == 1 && read(pb[0], &d, 1) == 1 &&
	    d == 'b', "each descriptor is the one its message announced");
	ipc_chan_close(&tx);
	ipc_chan_close(&rx);
}

/* Descriptors travel with the message that announces them. */
static void
test_fd_passing(void)
{
	struct ipc_chan	 tx, rx;
	int		 sp[2], pfd[2];
	char		 c = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1 || pipe(pfd) == -1) {
		ok(0, "socketpair");
		return;
	}
	event_init();
	ipc_chan_init(&tx, sp[0], "tx", IPC_PEER_INTERNAL, types, NTYPES,
	    dispatch, NULL, NULL);
	ipc_begin(&tx, T_FD, pfd[1]);
	ipc_add_string(&tx, "pipe");
	ipc_end(&tx);
	ok(ipc_flush(&tx) == 0, "message with a descriptor is written");

	ipc_chan_init(&rx, sp[1], "rx", IPC_PEER_INTERNAL, types, NTYPES,
	    dispatch, NULL, NULL);
	got_type = 0;
	got_fd = -1;
	event_loop(EVLOOP_ONCE | EVLOOP_NONBLOCK);
	is_int(got_type, T_FD, "message with a descriptor is dispatched");
	is_str(got_str, "pipe", "its payload arrives");
	ok(got_fd != -1 && write(got_fd, "!", 1) == 1 &&
	    read(pfd[0], &c, 1) == 1 && c == '!',
	    "the received descriptor is the pipe that was sent");
	if (got_fd != -1)
		close(got_fd);
	ipc_chan_close(&tx);
	ipc_chan_close(&rx);
	close(pfd[0]);
}

/*
 * A channel whose peer is gone: a process may still compose for it (a
 * timer firing while it stops); the message is dropped, its descriptor
 * closed, and nothing is written through freed buffers.
 */
static void
test_closed_channel(void)
{
	struct ipc_chan	 tx;
	int		 sp[2], fd;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		ok(0, "socketpair");
		return;
	}
	ipc_chan_init(&tx, sp[0], "gone", IPC_PEER_INTERNAL, types, NTYPES,
	    dispatch, NULL, NULL);
	ipc_begin(&tx, T_MIXED, -1);
	ipc_add_u32(&tx, 1);
	ipc_add_u64(&tx, 2);
	ipc_add_string(&tx, "before the close");
	ipc_add_data(&tx, "x", 1);
	ipc_end(&tx);
	ipc_chan_close(&tx);
	close(sp[1]);
	fd = dup(0);
	ipc_begin(&tx, T_FD, fd);
	ipc_add_string(&tx, "after the close");
	ipc_end(&tx);
	ok(tx.olen == 0 && tx.nofds == 0, "a closed channel queues nothing");
	ok(fcntl(fd, F_GETFD) == -1, "  and closes the descriptor it was "
	    "given");
	ipc_chan_close(&tx);
}

int
main(void)
{
	log_init("test", "ipc", 1, 0);
	test_roundtrip();
	test_malformed();
	test_validate();
	test_internal_is_fatal();
	test_fd_passing();
	test_batched_writes();
	test_closed_channel();
	return tap_done();
}
