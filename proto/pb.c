/* pb.c - small helpers for protobuf-c messages owned by dbtd. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pb.h"

ProtobufCMessage *
pb_clone(const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n ? n : 1);
	ProtobufCMessage *copy;

	if (buf == NULL)
		return NULL;
	protobuf_c_message_pack(msg, buf);
	copy = protobuf_c_message_unpack(msg->descriptor, NULL, n, buf);
	free(buf);
	return copy;
}

int
pb_set_str(char **field, const char *s)
{
	char *copy = strdup(s ? s : "");

	if (copy == NULL)
		return -ENOMEM;
	if (*field && *field != protobuf_c_empty_string)
		free(*field);
	*field = copy;
	return 0;
}

int
pb_str_set(const char *s)
{
	return s != NULL && s[0] != '\0';
}
