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

#endif /* DBTD_PB_H */
