/*
 * wirecheck.c - limits on a protobuf message checked on its wire bytes,
 * driven by its descriptors, before anything is allocated for it.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wirecheck.h"

/* Wire types (the low three bits of a tag). */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

#define VARINT_MAX_BYTES 10
#define FIELD_NUMBER_MAX 0x1fffffffu

/* One walk: the limits, what was counted across levels, the sentence. */
struct walk {
	const struct wirecheck_limits *lim;
	const ProtobufCMessageDescriptor *root; /* the outermost message's type */
	const uint8_t *base; /* the outermost message, for byte offsets in messages */
	size_t fields;       /* fields seen so far, at every level */
	char *why;
	size_t whylen;
};

/* One field as encoded: its number, its wire type and its value's bytes. */
struct wfield {
	uint32_t number;
	unsigned wt;
	const uint8_t *val; /* the value (for WT_LEN, after the length) */
	size_t vlen;
};

/* What one message being walked has met: its fields' rules and counts. */
struct level {
	const ProtobufCMessageDescriptor *desc;
	const struct wirecheck_rule *rule[WIRECHECK_MAX_FIELDS];
	size_t count[WIRECHECK_MAX_FIELDS];
};

/* Set the walk's sentence; returns rc. */
static int __attribute__((format(printf, 3, 4)))
fail(struct walk *w, int rc, const char *fmt, ...)
{
	va_list ap;

	if (w->why == NULL || w->whylen == 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(w->why, w->whylen, fmt, ap);
	va_end(ap);
	return rc;
}

/* Read a varint at p[*off..len); -EBADMSG when it is cut short or too long. */
static int
read_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t x = 0;

	if (*off < len && p[*off] < 0x80) { /* most tags and lengths: one byte */
		*v = p[(*off)++];
		return 0;
	}
	for (unsigned i = 0; i < VARINT_MAX_BYTES && *off < len; i++) {
		uint8_t b = p[(*off)++];
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			*v = x;
			return 0;
		}
	}
	return -EBADMSG;
}

/* Read the field at p[*off..len) into f and step over it. */
static int
next_field(struct walk *w, const uint8_t *p, size_t len, size_t *off, struct wfield *f)
{
	size_t at = (size_t)(p + *off - w->base);
	uint64_t tag, n;

	if (read_varint(p, len, off, &tag) < 0)
		return fail(w, -EBADMSG, "the tag at byte %zu is not a varint (cut short, or over 10 bytes)", at);
	if ((tag >> 3) == 0 || (tag >> 3) > FIELD_NUMBER_MAX)
		return fail(w, -EBADMSG, "field number %llu at byte %zu is out of range",
		            (unsigned long long)(tag >> 3), at);
	f->number = (uint32_t)(tag >> 3);
	f->wt = (unsigned)(tag & 7);
	switch (f->wt) {
	case WT_VARINT:
		f->val = p + *off;
		if (read_varint(p, len, off, &n) < 0)
			return fail(w, -EBADMSG, "the value of field %u at byte %zu is not a varint "
			            "(cut short, or over 10 bytes)",
			            f->number, at);
		f->vlen = (size_t)(p + *off - f->val);
		return 0;
	case WT_I64:
	case WT_I32:
		f->vlen = f->wt == WT_I64 ? 8 : 4;
		break;
	case WT_LEN:
		if (read_varint(p, len, off, &n) < 0)
			return fail(w, -EBADMSG, "the length of field %u at byte %zu is not a varint "
			            "(cut short, or over 10 bytes)",
			            f->number, at);
		if (n > len - *off)
			return fail(w, -EBADMSG, "field %u at byte %zu says %llu bytes; %zu are left",
			            f->number, at, (unsigned long long)n, len - *off);
		f->vlen = (size_t)n;
		break;
	case WT_SGROUP:
	case WT_EGROUP:
		return fail(w, -EBADMSG, "field %u at byte %zu is a group: groups are not supported",
		            f->number, at);
	default:
		return fail(w, -EBADMSG, "field %u at byte %zu has wire type %u, which does not exist",
		            f->number, at, f->wt);
	}
	if (f->vlen > len - *off)
		return fail(w, -EBADMSG, "field %u at byte %zu is cut short", f->number, at);
	f->val = p + *off;
	*off += f->vlen;
	return 0;
}

/* The wire type a field of type t is encoded with (not packed). */
static unsigned
wire_type(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_FLOAT:
		return WT_I32;
	case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		return WT_I64;
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_BYTES: case PROTOBUF_C_TYPE_MESSAGE:
		return WT_LEN;
	default:
		return WT_VARINT;
	}
}

/*
 * How many values field f of descriptor fd holds: 1, or for a packed
 * repeated scalar the elements in its bytes.  -EBADMSG when f's wire type
 * is not one fd can have, or packed bytes end inside an element.
 */
static int
values(struct walk *w, const struct level *lv, const ProtobufCFieldDescriptor *fd,
       const struct wfield *f, size_t *n)
{
	unsigned want = wire_type(fd->type);

	*n = 1;
	if (f->wt == want)
		return 0;
	if (f->wt != WT_LEN || fd->label != PROTOBUF_C_LABEL_REPEATED)
		return fail(w, -EBADMSG, "field %u (%s.%s) has wire type %u, not %u", f->number,
		            lv->desc->name, fd->name, f->wt, want);
	/* packed: elements of 4 or 8 bytes, or varints (each ends with a byte < 0x80) */
	if (want != WT_VARINT) {
		size_t size = want == WT_I32 ? 4 : 8;
		*n = f->vlen / size;
		if (f->vlen % size == 0)
			return 0;
	} else {
		*n = 0;
		for (size_t i = 0; i < f->vlen; i++)
			*n += (f->val[i] & 0x80) == 0;
		if (f->vlen == 0 || (f->val[f->vlen - 1] & 0x80) == 0)
			return 0;
	}
	return fail(w, -EBADMSG, "packed field %u (%s.%s) ends inside a value", f->number,
	            lv->desc->name, fd->name);
}

/* Set up lv for a message of type desc reached through field from of in. */
static int
level_init(struct walk *w, struct level *lv, const ProtobufCMessageDescriptor *desc,
           const ProtobufCMessageDescriptor *in, const ProtobufCFieldDescriptor *from)
{
	if (desc->n_fields > WIRECHECK_MAX_FIELDS)
		return fail(w, -EINVAL, "%s has %u fields, more than the %d wirecheck walks",
		            desc->name, desc->n_fields, WIRECHECK_MAX_FIELDS);
	lv->desc = desc;
	memset(lv->rule, 0, sizeof(lv->rule[0]) * desc->n_fields);
	memset(lv->count, 0, sizeof(lv->count[0]) * desc->n_fields);
	for (size_t i = 0; i < w->lim->nrules; i++) {
		const struct wirecheck_rule *r = &w->lim->rules[i];
		const ProtobufCFieldDescriptor *fd;
		if (r->msg != desc)
			continue;
		if (r->in && (r->in != in || from == NULL || strcmp(r->in_field, from->name) != 0))
			continue;
		fd = protobuf_c_message_descriptor_get_field_by_name(desc, r->field);
		if (fd)
			lv->rule[fd - desc->fields] = r;
	}
	return 0;
}

/* Refuse a repeated field of lv that holds n values, over its limit. */
static int
over_count(struct walk *w, const struct level *lv, size_t i, size_t max)
{
	const struct wirecheck_rule *r = lv->rule[i];

	if (r)
		return fail(w, -E2BIG, "%s may have at most %zu %s (this request has %zu)",
		            r->what, r->max, r->unit ? r->unit : "values", lv->count[i]);
	return fail(w, -E2BIG, "a %s may have at most %zu %s (this request has %zu)",
	            lv->desc->short_name, max, lv->desc->fields[i].name, lv->count[i]);
}

/* Check the size of a string or bytes field i of lv: -E2BIG when over. */
static int
check_size(struct walk *w, const struct level *lv, size_t i, size_t len)
{
	const ProtobufCFieldDescriptor *fd = &lv->desc->fields[i];
	const struct wirecheck_rule *r = lv->rule[i];
	size_t max = r ? r->max : fd->type == PROTOBUF_C_TYPE_STRING ? w->lim->max_string
	                                                             : w->lim->max_bytes;

	if (max == 0 || len <= max)
		return 0;
	if (r)
		return fail(w, -E2BIG, "%s may be at most %zu bytes (this one has %zu)", r->what, max,
		            len);
	return fail(w, -E2BIG, "%s.%s may be at most %zu bytes (this one has %zu)", lv->desc->name,
	            fd->name, max, len);
}

/* The count limit of repeated field i of lv (0: none). */
static size_t
count_limit(const struct walk *w, const struct level *lv, size_t i)
{
	return lv->rule[i] ? lv->rule[i]->max : w->lim->max_repeated;
}

static int walk_message(struct walk *w, const ProtobufCMessageDescriptor *desc,
                        const ProtobufCMessageDescriptor *in, const ProtobufCFieldDescriptor *from,
                        const uint8_t *p, size_t len, unsigned depth);

/*
 * One known field of lv: count it, check its size, walk into it.  Sets
 * *over to the field's index when it makes a repeated field exceed its limit.
 */
static int
walk_field(struct walk *w, struct level *lv, const struct wfield *f,
           const ProtobufCFieldDescriptor *fd, unsigned depth, size_t *over)
{
	size_t i = (size_t)(fd - lv->desc->fields), n, max;
	int rc;

	if ((rc = values(w, lv, fd, f, &n)) < 0)
		return rc;
	lv->count[i] += n;
	max = count_limit(w, lv, i);
	if (fd->label == PROTOBUF_C_LABEL_REPEATED && max && lv->count[i] > max) {
		*over = i;
		return 0;
	}
	if (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_BYTES)
		return check_size(w, lv, i, f->vlen);
	if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
		return 0;
	if (w->lim->max_depth && depth + 1 > w->lim->max_depth)
		return fail(w, -E2BIG, "messages may be nested at most %u deep (%s.%s at byte %zu "
		            "goes deeper)", w->lim->max_depth, lv->desc->name, fd->name,
		            (size_t)(f->val - w->base));
	return walk_message(w, fd->descriptor, lv->desc, fd, f->val, f->vlen, depth + 1);
}

/*
 * Walk one message of type desc in p[0..len), reached through field from
 * of message in (NULL for the outermost), at nesting depth `depth`.
 */
static int
walk_message(struct walk *w, const ProtobufCMessageDescriptor *desc,
             const ProtobufCMessageDescriptor *in, const ProtobufCFieldDescriptor *from,
             const uint8_t *p, size_t len, unsigned depth)
{
	struct level lv;
	size_t off = 0, over = SIZE_MAX;
	int rc;

	if ((rc = level_init(w, &lv, desc, in, from)) < 0)
		return rc;
	while (off < len) {
		const ProtobufCFieldDescriptor *fd;
		struct wfield f;
		size_t n;
		if ((rc = next_field(w, p, len, &off, &f)) < 0)
			return rc;
		if (over != SIZE_MAX) {
			/* over a limit: only count that field, for the message */
			fd = &desc->fields[over];
			if (f.number == fd->id) {
				if ((rc = values(w, &lv, fd, &f, &n)) < 0)
					return rc;
				lv.count[over] += n;
			}
			continue;
		}
		fd = protobuf_c_message_descriptor_get_field(desc, f.number);
		if (w->lim->max_fields && ++w->fields > w->lim->max_fields)
			return fail(w, -E2BIG, "a %s may hold at most %zu fields in all, nested ones "
			            "included (this one has more)", w->root->short_name,
			            w->lim->max_fields);
		if (fd && (rc = walk_field(w, &lv, &f, fd, depth, &over)) < 0)
			return rc;
	}
	if (over != SIZE_MAX)
		return over_count(w, &lv, over, count_limit(w, &lv, over));
	return 0;
}

int
wirecheck(const ProtobufCMessageDescriptor *desc, const struct wirecheck_limits *lim,
          const uint8_t *buf, size_t len, char *why, size_t whylen)
{
	struct walk w = { .lim = lim, .root = desc, .base = buf, .why = why, .whylen = whylen };

	if (whylen)
		why[0] = '\0';
	return walk_message(&w, desc, NULL, NULL, buf, len, 1);
}

int
wirecheck_varint(const uint8_t *buf, size_t len, uint32_t field, uint64_t *out)
{
	struct walk w = { .base = buf };
	size_t off = 0;
	int found = 0;

	while (off < len) {
		struct wfield f;
		if (next_field(&w, buf, len, &off, &f) < 0)
			return -EBADMSG;
		if (f.number == field && f.wt == WT_VARINT) {
			size_t voff = 0;
			read_varint(f.val, f.vlen, &voff, out);
			found = 1;
		}
	}
	return found ? 0 : -ENOENT;
}
