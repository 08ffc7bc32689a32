/*
 * wirecheck.h - limits on a protobuf message checked on its wire bytes,
 * before protobuf-c unpacks it.
 *
 * protobuf_c_message_unpack allocates every element it meets before the
 * caller can look at any: 16 MiB of empty repeated sub-messages become
 * hundreds of MB of structs.  wirecheck walks the encoded bytes instead,
 * driven by the message's descriptors (tags, varints, lengths, sub-messages
 * recursively), counts each repeated field and measures each string, and
 * allocates nothing.  Only a message that passes is worth unpacking.
 */
#ifndef DBTD_WIRECHECK_H
#define DBTD_WIRECHECK_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/*
 * A limit on one field: how many times a repeated field may occur in one
 * message, or how many bytes a string or bytes field may hold.
 */
struct wirecheck_rule {
	const ProtobufCMessageDescriptor *msg; /* the message holding the field */
	const char *field;                     /* the field's name in msg */
	/*
	 * Only where msg was reached through field in_field of message in
	 * (KeyValue is an --env variable in one place, a step parameter in
	 * another); NULL: wherever msg occurs.
	 */
	const ProtobufCMessageDescriptor *in;
	const char *in_field;
	size_t max;       /* occurrences, or bytes */
	const char *what; /* for the error: "a job", "a step's command" */
	/*
	 * Counts: what is counted ("steps"), for "a job may have at most 100
	 * steps (this request has 101)".  NULL for sizes: "a step's command
	 * may be at most 65536 bytes (this one has 65537)".
	 */
	const char *unit;
};

/* What a message may hold; a limit of 0 is no limit. */
struct wirecheck_limits {
	const struct wirecheck_rule *rules;
	size_t nrules;
	size_t max_repeated; /* occurrences of a repeated field without a rule, per message */
	size_t max_string;   /* bytes of a string field without a rule */
	size_t max_bytes;    /* bytes of a bytes field without a rule */
	size_t max_fields;   /* fields of the whole message, nested and unknown ones included */
	unsigned max_depth;  /* messages nested in one another, the outermost counting 1 */
};

/* Fields a message type may declare for wirecheck to walk it. */
#define WIRECHECK_MAX_FIELDS 64

/*
 * wirecheck - check buf[0..len), the encoding of a message of type desc,
 * against lim.  Returns 0 when it is well-formed and within every limit;
 * -E2BIG when over a limit, why naming the limit and the value found;
 * -EBADMSG when it is not a well-formed encoding of desc (a truncated
 * varint or length, a field of the wrong wire type, groups), why saying
 * what and where; -EINVAL when desc declares more than WIRECHECK_MAX_FIELDS
 * fields.  A well-formed message may still fail protobuf-c's own checks.
 * why is always a NUL-terminated sentence (empty on success).
 */
int wirecheck(const ProtobufCMessageDescriptor *desc, const struct wirecheck_limits *lim,
              const uint8_t *buf, size_t len, char *why, size_t whylen);

/*
 * wirecheck_varint - the value of the last top-level varint field number
 * `field` in buf[0..len) (as protobuf-c reads it: the last one wins), e.g.
 * a request's id in a message that is refused undecoded.  0 and *out set,
 * -ENOENT when there is none, -EBADMSG when the bytes before it do not
 * parse.
 */
int wirecheck_varint(const uint8_t *buf, size_t len, uint32_t field, uint64_t *out);

#endif /* DBTD_WIRECHECK_H */
