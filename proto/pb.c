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

int
pb_list_push(void *list, ProtobufCMessage *msg)
{
	struct pb_list *l = list;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		ProtobufCMessage **p = realloc(l->items, cap * sizeof(*p));
		if (p == NULL) {
			protobuf_c_message_free_unpacked(msg, NULL);
			return -ENOMEM;
		}
		l->items = p;
		l->cap = cap;
	}
	l->items[l->n++] = msg;
	return 0;
}

void
pb_list_free(struct pb_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		protobuf_c_message_free_unpacked(l->items[i], NULL);
	free(l->items);
	l->items = NULL;
	l->n = l->cap = 0;
}
