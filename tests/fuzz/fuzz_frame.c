/*
 * fuzz_frame.c - libFuzzer target for what every peer of dbtd reads first:
 * frames (frame_parse, as dbtd reads clients and runners) and the protobuf
 * messages in them (Request, Response, RunnerEvent).  A message that
 * decodes must pack again to exactly the size protobuf-c says, and a log
 * record stream must walk to its end without reading past it, and the wire
 * check must accept every Request protobuf-c decodes; abort() otherwise.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dbtd.pb-c.h"
#include "frame.h"
#include "logrec.h"
#include "reqlimits.h"
#include "wirecheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Pack msg again; its size must be what protobuf-c computed. */
static void
repack(const ProtobufCMessage *msg)
{
	size_t want = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(want ? want : 1);

	if (buf == NULL)
		return;
	if (protobuf_c_message_pack(msg, buf) != want)
		abort();
	free(buf);
}

/* Walk the log records of a LogData the way dbtctl does. */
static void
walk_log(const Dbtd__LogData *l)
{
	size_t off = 0;
	struct logrec r;

	while (off < l->data.len) {
		int rc = logrec_next(l->data.data, l->data.len, &off, &r);
		if (rc <= 0)
			break;
		if (r.len > l->data.len || r.text < l->data.data ||
		    r.text + r.len > l->data.data + l->data.len)
			abort();
	}
}

/* The field `name` ("dbtd.RunRef.watch") of a message reachable from desc. */
static const ProtobufCFieldDescriptor *
find_field(const ProtobufCMessageDescriptor *desc, const char *name, unsigned depth)
{
	size_t n = strlen(desc->name);

	if (strncmp(name, desc->name, n) == 0 && name[n] == '.')
		return protobuf_c_message_descriptor_get_field_by_name(desc, name + n + 1);
	for (unsigned i = 0; depth < 8 && i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f;
		if (desc->fields[i].type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		f = find_field(desc->fields[i].descriptor, name, depth + 1);
		if (f)
			return f;
	}
	return NULL;
}

/*
 * What the wire check refuses although protobuf-c decodes it: field number
 * 0 with a padded tag (0x80 0x00), and a bool field sent with another wire
 * type than varint (protobuf-c reads its bytes all the same).  why names
 * the field as "(dbtd.Message.field)".
 */
static int
stricter_than_protobuf_c(const char *why)
{
	const char *open = strchr(why, '('), *close = open ? strchr(open, ')') : NULL;
	const ProtobufCFieldDescriptor *f;
	char name[128];

	if (strncmp(why, "field number 0 ", 15) == 0)
		return 1;
	if (strstr(why, "has wire type") == NULL || close == NULL ||
	    (size_t)(close - open) >= sizeof(name))
		return 0;
	memcpy(name, open + 1, (size_t)(close - open - 1));
	name[close - open - 1] = '\0';
	f = find_field(&dbtd__request__descriptor, name, 0);
	return f && f->type == PROTOBUF_C_TYPE_BOOL;
}

/*
 * The wire check dbtd runs before it unpacks a request: with no limits it
 * must accept whatever protobuf-c decodes (it only refuses malformed bytes,
 * save the cases above), and with dbtd's limits answer one of its three
 * results.
 */
static void
check_wire(const uint8_t *p, size_t n, int decoded)
{
	static const struct wirecheck_limits none = { .max_depth = 64 };
	char why[256];
	int rc = wirecheck(&dbtd__request__descriptor, &none, p, n, why, sizeof(why));

	if (decoded && rc != 0 && !stricter_than_protobuf_c(why))
		abort();
	rc = wirecheck(&dbtd__request__descriptor, &reqlimits, p, n, why, sizeof(why));
	if (rc != 0 && rc != -E2BIG && rc != -EBADMSG)
		abort();
}

/* Every way a payload is decoded by dbtd, its runners and dbtctl. */
static void
decode(const uint8_t *p, size_t n)
{
	Dbtd__Request *req = dbtd__request__unpack(NULL, n, p);
	Dbtd__Response *resp = dbtd__response__unpack(NULL, n, p);
	Dbtd__RunnerEvent *ev = dbtd__runner_event__unpack(NULL, n, p);

	check_wire(p, n, req != NULL);
	if (req) {
		repack(&req->base);
		dbtd__request__free_unpacked(req, NULL);
	}
	if (resp) {
		repack(&resp->base);
		if (resp->body_case == DBTD__RESPONSE__BODY_LOG && resp->log)
			walk_log(resp->log);
		dbtd__response__free_unpacked(resp, NULL);
	}
	if (ev) {
		repack(&ev->base);
		if (ev->body_case == DBTD__RUNNER_EVENT__BODY_LOG && ev->log)
			walk_log(ev->log);
		dbtd__runner_event__free_unpacked(ev, NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	/* The bytes as one stream of frames, as a peer would send them. */
	while (off < size) {
		const uint8_t *p;
		size_t n;
		int rc = frame_parse(data + off, size - off, &p, &n);
		if (rc <= 0)
			break;
		if (p < data + off + FRAME_HEADER || p + n > data + size || n > FRAME_MAX)
			abort();
		decode(p, n);
		off = (size_t)(p + n - data);
	}
	/* And as one bare message, whatever the header says. */
	decode(data, size);
	return 0;
}
