/*
 * fuzz_frame.c - libFuzzer target for what every peer of dbtd reads first:
 * frames (frame_parse, as dbtd reads clients and runners) and the protobuf
 * messages in them (Request, Response, RunnerEvent).  A message that
 * decodes must pack again to exactly the size protobuf-c says, and a log
 * record stream must walk to its end without reading past it; abort()
 * otherwise.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "dbtd.pb-c.h"
#include "frame.h"
#include "logrec.h"

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

/* Every way a payload is decoded by dbtd, its runners and dbtctl. */
static void
decode(const uint8_t *p, size_t n)
{
	Dbtd__Request *req = dbtd__request__unpack(NULL, n, p);
	Dbtd__Response *resp = dbtd__response__unpack(NULL, n, p);
	Dbtd__RunnerEvent *ev = dbtd__runner_event__unpack(NULL, n, p);

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
