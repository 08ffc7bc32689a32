/* pb.h - small helpers for protobuf-c messages owned by dbtd. */
#ifndef DBTD_PB_H
#define DBTD_PB_H

#include <protobuf-c/protobuf-c.h>

/*
 * pb_clone - a deep copy of msg that the caller frees with
 * protobuf_c_message_free_unpacked(copy, NULL); NULL when out of memory.
 */
ProtobufCMessage *pb_clone(const ProtobufCMessage *msg);

/*
 * pb_set_str - replace a string field of an owned (unpacked or cloned)
 * message with a copy of s.  0 or -ENOMEM.
 */
int pb_set_str(char **field, const char *s);

/* pb_str_set - true when a string field holds a non-empty value. */
int pb_str_set(const char *s);

/* A growable list of owned messages (e.g. what a store walk returned). */
struct pb_list {
	ProtobufCMessage **items;
	size_t n, cap;
};

/*
 * pb_list_push - append msg, taking it (it is freed when the list cannot
 * grow).  0 or -ENOMEM.  Its signature fits the store's walk callbacks.
 */
int pb_list_push(void *list, ProtobufCMessage *msg);

/* pb_list_free - free every message and the array; the list is empty after. */
void pb_list_free(struct pb_list *l);

#endif /* DBTD_PB_H */
