/*
 * libFuzzer target: IPC framing and payload validation.  Whatever bytes
 * arrive, a message is either refused or every field of its declared
 * layout can be read back exactly.
 */
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const struct ipc_type types[] = {
	{ 1,	"EMPTY",	"",		IPC_FD_NONE },
	{ 2,	"ALL",		"uqsd",		IPC_FD_NONE },
	{ 3,	"STRINGS",	"ss",		IPC_FD_NONE },
	{ 4,	"WITH_FD",	"q",		IPC_FD_REQUIRED },
	{ 5,	"MAYBE_FD",	"d",		IPC_FD_OPTIONAL },
};

static int
dispatch(struct ipc_chan *chan, struct ipc_msg *msg)
{
	const char	*l;
	size_t		 len;

	(void)chan;
	for (l = msg->desc->layout; *l; l++) {
		switch (*l) {
		case IPC_FIELD_U32:
			(void)ipc_get_u32(msg);
			break;
		case IPC_FIELD_U64:
			(void)ipc_get_u64(msg);
			break;
		case IPC_FIELD_STRING:
			(void)ipc_get_string(msg);
			break;
		case IPC_FIELD_DATA:
			(void)ipc_get_data(msg, &len);
			break;
		}
	}
	ipc_get_end(msg);
	if (msg->fd != -1)
		close(msg->fd);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_chan	 chan;

	ipc_chan_init(&chan, -1, "fuzz", IPC_PEER_CLIENT, types,
	    sizeof(types) / sizeof(types[0]), dispatch, NULL, NULL);
	ipc_feed(&chan, data, size);
	ipc_chan_close(&chan);
	return 0;
}

int	LLVMFuzzerInitialize(int *, char ***);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz", "ipc", 1, 0);
	return 0;
}
