/*
 * test_server.c - the connection layer (daemon/net/server.c) over real Unix
 * sockets and a real libev loop in one process, with a request handler of
 * the test's own in place of the api: what a client relies on (request ids
 * echoed, one stream per connection owned by it, half-close, answers over
 * the frame limit, bad frames) without any feature behind it; and what a
 * connection may cost (the Hello, frame and idle deadlines, the connection
 * limit, the memory budget), with deadlines of a fraction of a second.
 */
#include "config.h"

#include <errno.h>
#include <sys/poll.h> /* not <poll.h>: daemon/engine/poll.h is on the path */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "frame.h"
#include "peer.h"
#include "server.h"
#include "util.h"

/* What the test's handler saw and did. */
struct hstate {
	struct client *stream_client; /* the client whose stream is open, or NULL */
	int opened;     /* streams opened */
	int closed;     /* stream close callbacks */
	int open_rc;    /* the last client_stream_open's result */
	int send_rc;    /* the last client_send of a handler */
	int handled;    /* requests handled */
};

/* One stream of the test's handler: frames of a blob, produced by drain. */
struct tstream {
	struct hstate *h;
	unsigned left;  /* frames drain still sends; the last has end set */
	size_t size;    /* bytes in each of them */
};

struct fixture {
	char dir[64];
	char path[96];
	struct ev_loop *loop;
	struct server *srv;
	ev_prepare flush;
	struct hstate h;
	int fail_after;         /* > 0: once this many requests were handled, the */
	const char *fail_msg;   /* next commit fails with this (dbtd's commit hook) */
};

/* A blob response of n bytes (a pattern of seed), end as given; free .blob.data. */
static Dbtd__Response
blob_response(size_t n, uint8_t seed, int end)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;

	resp.body_case = DBTD__RESPONSE__BODY_BLOB;
	resp.blob.len = n;
	resp.blob.data = malloc(n ? n : 1);
	assert_non_null(resp.blob.data);
	for (size_t i = 0; i < n; i++)
		resp.blob.data[i] = (uint8_t)(seed + i * 7);
	resp.end = end;
	return resp;
}

/* True when b holds the n bytes blob_response(n, seed, ...) sent. */
static int
blob_is(const ProtobufCBinaryData *b, size_t n, uint8_t seed)
{
	if (b->len != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (b->data[i] != (uint8_t)(seed + i * 7))
			return 0;
	return 1;
}

/* client_send of a blob of n bytes; client_send's result. */
static int
send_blob(struct client *c, size_t n, uint8_t seed, int end)
{
	Dbtd__Response resp = blob_response(n, seed, end);
	int rc = client_send(c, &resp);

	free(resp.blob.data);
	return rc;
}

/* The stream's drain: one frame per call; after the last, the stream ends. */
static void
tstream_drain(struct client *c, void *arg)
{
	struct tstream *ts = arg;
	int last = ts->left <= 1;

	if (ts->left == 0) {
		client_stream_end(c);
		return;
	}
	ts->left--;
	/* a frame over the limit ends the stream, freeing ts: touch it no more then */
	if (send_blob(c, ts->size, 'd', last) == -EMSGSIZE)
		return;
	if (last)
		client_stream_end(c);
}

/* The stream ended or its connection went. */
static void
tstream_close(void *arg)
{
	struct tstream *ts = arg;

	ts->h->closed++;
	ts->h->stream_client = NULL;
	free(ts);
}

static const struct client_stream_ops tstream_ops = {
	.drain = tstream_drain, .close = tstream_close,
};

/*
 * The test's request handler.  hello: marks Hello done, answers a
 * HelloReply.  view_run{id}: a run with that id.
 * artifact{run: n}: a blob of n bytes.  read_logs{run: n, step: size,
 * follow}: a stream, its first frame "open" sent at once, then n frames of
 * size bytes from drain (follow: none, the test pushes them).
 */
static void
handle(void *arg, struct client *c, const Dbtd__Request *req)
{
	struct hstate *h = arg;
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Run run = DBTD__RUN__INIT;
	Dbtd__HelloReply hr = DBTD__HELLO_REPLY__INIT;
	struct tstream *ts;

	h->handled++;
	switch (req->body_case) {
	case DBTD__REQUEST__BODY_HELLO:
		resp.body_case = DBTD__RESPONSE__BODY_HELLO;
		resp.hello = &hr;
		client_set_hello(c);
		h->send_rc = client_send(c, &resp);
		break;
	case DBTD__REQUEST__BODY_VIEW_RUN:
		run.id = req->view_run->id;
		resp.body_case = DBTD__RESPONSE__BODY_RUN;
		resp.run = &run;
		h->send_rc = client_send(c, &resp);
		break;
	case DBTD__REQUEST__BODY_ARTIFACT:
		h->send_rc = send_blob(c, req->artifact->run, 'a', 0);
		break;
	case DBTD__REQUEST__BODY_READ_LOGS:
		ts = calloc(1, sizeof(*ts));
		assert_non_null(ts);
		ts->h = h;
		ts->left = (unsigned)req->read_logs->run;
		ts->size = req->read_logs->step;
		h->open_rc = client_stream_open(c, &tstream_ops, ts);
		if (h->open_rc < 0) {
			free(ts); /* refused: still ours */
			client_error(c, DBTD__ERROR_CODE__ERROR_CONFLICT, "a stream is open");
			break;
		}
		h->opened++;
		h->stream_client = c;
		if (req->read_logs->follow)
			client_stream_drain(c, 0);
		h->send_rc = send_blob(c, 4, 'o', 0);
		break;
	default:
		client_error(c, DBTD__ERROR_CODE__ERROR_BAD_REQUEST, "not a request of this test");
		break;
	}
}

/* Before the loop waits: send what was queued, as dbtd's commit_cb does. */
static void
flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct fixture *f = w->data;

	(void)loop; (void)revents;
	if (f->fail_msg && f->h.handled >= f->fail_after) {
		server_commit_failed(f->srv, f->fail_msg);
		f->fail_msg = NULL;
	}
	server_flush(f->srv);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct server_handler h = { .request = handle };

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/dbtd-test-server-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/dbtd.sock", f->dir);
	f->loop = ev_loop_new(EVFLAG_AUTO);
	if (f->loop == NULL)
		return -1;
	h.arg = &f->h;
	if (server_listen(&f->srv, f->loop, &h, f->path, 0600) < 0)
		return -1;
	ev_prepare_init(&f->flush, flush_cb);
	f->flush.data = f;
	ev_prepare_start(f->loop, &f->flush);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	ev_prepare_stop(f->loop, &f->flush);
	server_free(f->srv);
	ev_loop_destroy(f->loop);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* A view_run request for run id, carrying request id rid (0: none). */
static Dbtd__Request
view_run(Dbtd__RunRef *ref, uint64_t id, uint64_t rid)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;

	dbtd__run_ref__init(ref);
	ref->id = id;
	req.body_case = DBTD__REQUEST__BODY_VIEW_RUN;
	req.view_run = ref;
	req.request_id = rid;
	return req;
}

/* Send view_run(id) with request id rid; assert the reply is run id with rid. */
static void
expect_run_reply(struct peer *p, uint64_t id, uint64_t rid)
{
	Dbtd__RunRef ref;
	Dbtd__Request req = view_run(&ref, id, rid);
	Dbtd__Response *resp = peer_call(p, &req);

	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_RUN);
	assert_int_equal(resp->run->id, id);
	assert_int_equal(resp->request_id, rid);
	dbtd__response__free_unpacked(resp, NULL);
}

/* Open a stream of frames frames of size bytes (follow: pushed by the test) as rid. */
static void
send_open_stream(struct peer *p, unsigned frames, size_t size, int follow, uint64_t rid)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ReadLogs rl = DBTD__READ_LOGS__INIT;

	rl.run = frames;
	rl.step = (uint32_t)size;
	rl.follow = follow;
	req.body_case = DBTD__REQUEST__BODY_READ_LOGS;
	req.read_logs = &rl;
	req.request_id = rid;
	peer_send(p, &req);
}

/* The next response: the stream's first frame ("open"), carrying rid. */
static void
expect_stream_opened(struct peer *p, uint64_t rid)
{
	Dbtd__Response *resp = peer_recv(p);

	assert_non_null(resp);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_BLOB);
	assert_true(blob_is(&resp->blob, 4, 'o'));
	assert_int_equal(resp->request_id, rid);
	assert_false(resp->end);
	dbtd__response__free_unpacked(resp, NULL);
}

/* The next response: an error of code whose message holds words, carrying rid. */
static void
expect_error(struct peer *p, Dbtd__ErrorCode code, const char *words, uint64_t rid)
{
	Dbtd__Response *resp = peer_recv(p);

	assert_non_null(resp);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_ERROR);
	assert_int_equal(resp->error->code, code);
	if (strstr(resp->error->message, words) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", resp->error->message, words);
	assert_int_equal(resp->request_id, rid);
	dbtd__response__free_unpacked(resp, NULL);
}

/* Push one frame of the open stream from outside any request, as an observer does. */
static void
push(struct fixture *f, size_t n, int end)
{
	assert_non_null(f->h.stream_client);
	assert_int_equal(send_blob(f->h.stream_client, n, 'p', end), 0);
}

/* The next response: a pushed frame of n bytes carrying rid. */
static void
expect_pushed(struct peer *p, size_t n, int end, uint64_t rid)
{
	Dbtd__Response *resp = peer_recv(p);

	assert_non_null(resp);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_BLOB);
	assert_true(blob_is(&resp->blob, n, 'p'));
	assert_int_equal(resp->end, end);
	assert_int_equal(resp->request_id, rid);
	dbtd__response__free_unpacked(resp, NULL);
}

static int
one_closed(void *arg)
{
	return ((struct hstate *)arg)->closed >= 1;
}

static int
two_closed(void *arg)
{
	return ((struct hstate *)arg)->closed >= 2;
}

/* A framed request gets a framed reply carrying its request id, or 0 without one. */
static void
test_request_id_echoed(void **state)
{
	struct fixture *f = *state;
	Dbtd__RunRef r1, r2;
	Dbtd__Request a = view_run(&r1, 10, 1), b = view_run(&r2, 20, 2);
	uint8_t *fa, *fb, *both;
	size_t la, lb;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	expect_run_reply(&p, 5, 77);
	expect_run_reply(&p, 6, 0);
	expect_run_reply(&p, 7, UINT64_MAX);
	/* two requests in one write: answered in order, each with its own id */
	assert_int_equal(frame_pack(&a.base, &fa, &la), 0);
	assert_int_equal(frame_pack(&b.base, &fb, &lb), 0);
	both = malloc(la + lb);
	assert_non_null(both);
	memcpy(both, fa, la);
	memcpy(both + la, fb, lb);
	peer_write(&p, both, la + lb);
	free(fa);
	free(fb);
	free(both);
	for (uint64_t i = 1; i <= 2; i++) {
		Dbtd__Response *resp = peer_recv(&p);
		assert_non_null(resp);
		assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_RUN);
		assert_int_equal(resp->run->id, i * 10);
		assert_int_equal(resp->request_id, i);
		dbtd__response__free_unpacked(resp, NULL);
	}
	peer_close(&p);
}

/*
 * At most one stream per connection: a second open is refused (-EBUSY, and
 * the refused stream is not closed: its opener still owns it); once the
 * first has ended, a new one opens.  Each frame carries the id of the
 * request that opened its stream, and close is called once per stream.
 */
static void
test_one_stream_per_connection(void **state)
{
	struct fixture *f = *state;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	send_open_stream(&p, 0, 0, 1, 10);
	expect_stream_opened(&p, 10);
	assert_int_equal(f->h.open_rc, 0);
	assert_true(client_has_stream(f->h.stream_client));

	send_open_stream(&p, 0, 0, 1, 11);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_CONFLICT, "stream", 11);
	assert_int_equal(f->h.open_rc, -EBUSY);
	assert_int_equal(f->h.opened, 1);
	assert_int_equal(f->h.closed, 0);

	/* the first stream goes on, with its own request's id */
	push(f, 100, 0);
	expect_pushed(&p, 100, 0, 10);
	push(f, 3, 1);
	client_stream_end(f->h.stream_client);
	assert_int_equal(f->h.closed, 1);
	expect_pushed(&p, 3, 1, 10);

	/* a request after the stream: its own id, not the stream's */
	expect_run_reply(&p, 1, 0);

	/* a new stream opens on the same connection */
	send_open_stream(&p, 0, 0, 1, 12);
	expect_stream_opened(&p, 12);
	assert_int_equal(f->h.open_rc, 0);
	assert_int_equal(f->h.opened, 2);
	push(f, 5, 0);
	expect_pushed(&p, 5, 0, 12);
	push(f, 5, 1);
	client_stream_end(f->h.stream_client);
	expect_pushed(&p, 5, 1, 12);
	assert_int_equal(f->h.closed, 2);
	loop_spin(f->loop, 3);
	assert_int_equal(f->h.closed, 2);
	peer_close(&p);
}

/*
 * A stream drained by the server: every frame carries the opening request's
 * id, also when another request is answered in between; the last has end
 * set, and close is called exactly once.
 */
static void
test_stream_frames_carry_opening_id(void **state)
{
	struct fixture *f = *state;
	Dbtd__Response *resp;
	int frames = 0, refused = 0, ended = 0;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	send_open_stream(&p, 3, 1000, 0, 41);
	send_open_stream(&p, 3, 1000, 0, 42); /* refused: the first is open */
	expect_stream_opened(&p, 41);
	while (!ended && (resp = peer_recv(&p)) != NULL) {
		if (resp->body_case == DBTD__RESPONSE__BODY_ERROR) {
			assert_int_equal(resp->error->code, DBTD__ERROR_CODE__ERROR_CONFLICT);
			assert_int_equal(resp->request_id, 42);
			refused++;
		} else {
			assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_BLOB);
			assert_true(blob_is(&resp->blob, 1000, 'd'));
			assert_int_equal(resp->request_id, 41);
			frames++;
			ended = resp->end;
		}
		dbtd__response__free_unpacked(resp, NULL);
	}
	assert_int_equal(refused, 1);
	assert_int_equal(frames, 3);
	assert_true(ended);
	assert_int_equal(f->h.closed, 1);
	expect_run_reply(&p, 2, 0);
	assert_int_equal(f->h.closed, 1);
	peer_close(&p);
}

/*
 * The connection owns its stream: when the client goes while a stream is
 * open, the stream's close is called exactly once, whether the server was
 * producing frames (drain) or waiting for frames to push.
 */
static void
test_stream_closed_with_connection(void **state)
{
	struct fixture *f = *state;
	struct peer p;

	/* a stream that drains without end: 64 KiB frames, more than the client reads */
	peer_connect(&p, f->loop, f->path);
	send_open_stream(&p, 1000000, 65536, 0, 1);
	expect_stream_opened(&p, 1);
	peer_close(&p);
	loop_until(f->loop, one_closed, &f->h);
	loop_spin(f->loop, 5);
	assert_int_equal(f->h.closed, 1);

	/* a stream waiting for pushed frames (a followed log, a watched run) */
	peer_connect(&p, f->loop, f->path);
	send_open_stream(&p, 0, 0, 1, 2);
	expect_stream_opened(&p, 2);
	peer_close(&p);
	loop_until(f->loop, two_closed, &f->h);
	loop_spin(f->loop, 5);
	assert_int_equal(f->h.closed, 2);
	assert_null(f->h.stream_client);
}

/* server_free (dbtd stopping) closes each connection's open stream, once. */
static void
test_stream_closed_at_server_free(void **state)
{
	struct fixture *f = *state;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	send_open_stream(&p, 0, 0, 1, 3);
	expect_stream_opened(&p, 3);
	push(f, 10, 0); /* queued, not yet written: the last words go out at stop */
	ev_prepare_stop(f->loop, &f->flush);
	server_free(f->srv);
	f->srv = NULL;
	assert_int_equal(f->h.closed, 1);
	expect_pushed(&p, 10, 0, 3);
	peer_expect_eof(&p);
	peer_close(&p);
}

/*
 * Half-close: a client that sends its request and shuts its writing side
 * still gets the whole answer, several MiB (written in many partial
 * writes), then EOF.
 */
static void
test_half_close_gets_whole_reply(void **state)
{
	struct fixture *f = *state;
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ArtifactRef ar = DBTD__ARTIFACT_REF__INIT;
	Dbtd__Response *resp;
	size_t big = 6u << 20;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	ar.run = big;
	req.body_case = DBTD__REQUEST__BODY_ARTIFACT;
	req.artifact = &ar;
	req.request_id = 3;
	peer_send(&p, &req);
	assert_int_equal(shutdown(p.fd, SHUT_WR), 0);
	resp = peer_recv(&p);
	assert_non_null(resp);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_BLOB);
	assert_int_equal(resp->request_id, 3);
	assert_true(blob_is(&resp->blob, big, 'a'));
	dbtd__response__free_unpacked(resp, NULL);
	peer_expect_eof(&p);
	peer_close(&p);
}

/* Half-close with a drained stream open: every frame of it, then EOF. */
static void
test_half_close_gets_rest_of_stream(void **state)
{
	struct fixture *f = *state;
	Dbtd__Response *resp;
	int frames = 0, ended = 0;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	send_open_stream(&p, 4, 1u << 20, 0, 4);
	assert_int_equal(shutdown(p.fd, SHUT_WR), 0);
	expect_stream_opened(&p, 4);
	while ((resp = peer_recv(&p)) != NULL) {
		assert_false(ended);
		assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_BLOB);
		assert_true(blob_is(&resp->blob, 1u << 20, 'd'));
		assert_int_equal(resp->request_id, 4);
		ended = resp->end;
		frames++;
		dbtd__response__free_unpacked(resp, NULL);
	}
	assert_int_equal(frames, 4);
	assert_true(ended);
	assert_int_equal(f->h.closed, 1);
	peer_close(&p);
}

/*
 * Half-close with a stream waiting for pushed frames: the connection stays
 * until the stream ends (its frames still arrive), then closes.
 */
static void
test_half_close_keeps_waiting_stream(void **state)
{
	struct fixture *f = *state;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	send_open_stream(&p, 0, 0, 1, 5);
	assert_int_equal(shutdown(p.fd, SHUT_WR), 0);
	expect_stream_opened(&p, 5);
	loop_spin(f->loop, 5); /* the server sees EOF: nothing to close yet */
	assert_int_equal(f->h.closed, 0);
	push(f, 8, 0);
	expect_pushed(&p, 8, 0, 5);
	push(f, 8, 1);
	client_stream_end(f->h.stream_client);
	expect_pushed(&p, 8, 1, 5);
	peer_expect_eof(&p);
	assert_int_equal(f->h.closed, 1);
	peer_close(&p);
}

/*
 * A reply over the 16 MiB frame limit becomes an ERROR_FAILED naming the
 * limit, with the request's id; client_send says -EMSGSIZE.  In a stream,
 * the error is its last frame: the stream ends (closed once).  The
 * connection goes on either way.
 */
static void
test_reply_over_frame_limit(void **state)
{
	struct fixture *f = *state;
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ArtifactRef ar = DBTD__ARTIFACT_REF__INIT;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	ar.run = FRAME_MAX;
	req.body_case = DBTD__REQUEST__BODY_ARTIFACT;
	req.artifact = &ar;
	req.request_id = 9;
	peer_send(&p, &req);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_FAILED, "16 MiB limit", 9);
	assert_int_equal(f->h.send_rc, -EMSGSIZE);
	expect_run_reply(&p, 1, 10);

	/* the second frame of a stream is too large: an error ends the stream */
	send_open_stream(&p, 2, FRAME_MAX, 0, 13);
	expect_stream_opened(&p, 13);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_FAILED, "16 MiB limit", 13);
	assert_int_equal(f->h.closed, 1);
	assert_null(f->h.stream_client);
	expect_run_reply(&p, 2, 14);

	/* a pushed frame too large (an observer's): the same */
	send_open_stream(&p, 0, 0, 1, 15);
	expect_stream_opened(&p, 15);
	assert_int_equal(send_blob(f->h.stream_client, FRAME_MAX, 'p', 0), -EMSGSIZE);
	assert_int_equal(f->h.closed, 2);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_FAILED, "16 MiB limit", 15);
	expect_run_reply(&p, 3, 16);
	peer_close(&p);
}

/* Write raw bytes on a new connection; expect an ERROR_PROTOCOL saying words, then EOF. */
static void
expect_refused(struct fixture *f, const void *bytes, size_t len, const char *words)
{
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	peer_write(&p, bytes, len);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_PROTOCOL, words, 0);
	peer_expect_eof(&p);
	peer_close(&p);
}

/*
 * A declared length over the limit, a zero length or a frame that does not
 * decode: an ERROR_PROTOCOL and the connection is closed; the server goes
 * on, and another connection (with its open stream) is not disturbed.
 */
static void
test_bad_frames_close_that_connection_only(void **state)
{
	struct fixture *f = *state;
	static const uint8_t over[] = { 0x01, 0x00, 0x00, 0x01 }; /* 16 MiB + 1 */
	static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff };
	static const uint8_t zero[] = { 0, 0, 0, 0 };
	/* field 1 (hello) announcing 127 bytes and holding 1 */
	static const uint8_t garbage[] = { 0, 0, 0, 3, 0x0a, 0x7f, 'x' };
	static const uint8_t half[] = { 0, 0, 0, 100, 0x0a };
	Dbtd__RunRef ref;
	Dbtd__Request req = view_run(&ref, 8, 8);
	uint8_t *buf, *twice;
	size_t len;
	struct peer good, p;

	peer_connect(&good, f->loop, f->path);
	send_open_stream(&good, 0, 0, 1, 7);
	expect_stream_opened(&good, 7);

	expect_refused(f, over, sizeof(over), "16 MiB limit");
	expect_refused(f, huge, sizeof(huge), "16 MiB limit");
	expect_refused(f, zero, sizeof(zero), "zero-length");
	expect_refused(f, garbage, sizeof(garbage), "does not decode");

	/* a good request, then garbage in the same write: answered, then refused */
	assert_int_equal(frame_pack(&req.base, &buf, &len), 0);
	twice = malloc(len + sizeof(garbage));
	assert_non_null(twice);
	memcpy(twice, buf, len);
	memcpy(twice + len, garbage, sizeof(garbage));
	peer_connect(&p, f->loop, f->path);
	peer_write(&p, twice, len + sizeof(garbage));
	free(buf);
	free(twice);
	{
		Dbtd__Response *resp = peer_recv(&p);
		assert_non_null(resp);
		assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_RUN);
		assert_int_equal(resp->request_id, 8);
		dbtd__response__free_unpacked(resp, NULL);
	}
	expect_error(&p, DBTD__ERROR_CODE__ERROR_PROTOCOL, "does not decode", 0);
	peer_expect_eof(&p);
	peer_close(&p);

	/* half a frame, then gone */
	peer_connect(&p, f->loop, f->path);
	peer_write(&p, half, sizeof(half));
	loop_spin(f->loop, 3);
	peer_close(&p);
	loop_spin(f->loop, 3);

	/* the other connection and its stream are as they were */
	assert_int_equal(f->h.closed, 0);
	push(f, 6, 0);
	expect_pushed(&good, 6, 0, 7);
	expect_run_reply(&good, 4, 0);
	peer_close(&good);
	loop_until(f->loop, one_closed, &f->h);
}

/* Append req as one frame to buf (at *len; cap bytes). */
static void
pack_into(uint8_t *buf, size_t cap, size_t *len, const Dbtd__Request *req)
{
	uint8_t *f;
	size_t n;

	assert_int_equal(frame_pack(&req->base, &f, &n), 0);
	assert_true(*len + n <= cap);
	memcpy(buf + *len, f, n);
	*len += n;
	free(f);
}

/*
 * A commit that fails takes back what the requests of its moment were told:
 * each gets an error naming the cause instead, with its own request id (old
 * clients sending none get one error per request), an error already given
 * stays, and the connection goes on.
 */
static void
test_failed_commit_answers_errors(void **state)
{
	struct fixture *f = *state;
	Dbtd__RunRef r1, r2, r3;
	Dbtd__Request bad = DBTD__REQUEST__INIT, reqs[3];
	uint8_t buf[1024];
	size_t len = 0;
	struct peer p;

	reqs[0] = view_run(&r1, 1, 11);
	bad.request_id = 12; /* no body: the handler answers an error */
	reqs[1] = view_run(&r2, 2, 0);
	reqs[2] = view_run(&r3, 3, 0);
	pack_into(buf, sizeof(buf), &len, &reqs[0]);
	pack_into(buf, sizeof(buf), &len, &bad);
	pack_into(buf, sizeof(buf), &len, &reqs[1]);
	pack_into(buf, sizeof(buf), &len, &reqs[2]);
	peer_connect(&p, f->loop, f->path);
	f->fail_after = 4;
	f->fail_msg = "no space left (test)";
	peer_write(&p, buf, len); /* one write: one loop iteration handles all four */
	expect_error(&p, DBTD__ERROR_CODE__ERROR_FAILED, "no space left (test)", 11);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_BAD_REQUEST, "not a request", 12);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_FAILED, "no space left (test)", 0);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_FAILED, "no space left (test)", 0);
	assert_null(f->fail_msg);
	expect_run_reply(&p, 4, 14);
	peer_close(&p);
}

/* A stream that lost a frame to a failed commit ends with the error. */
static void
test_failed_commit_ends_stream(void **state)
{
	struct fixture *f = *state;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	send_open_stream(&p, 0, 0, 1, 21);
	expect_stream_opened(&p, 21);
	push(f, 100, 0);
	f->fail_after = 1;
	f->fail_msg = "the map is full (test)";
	expect_error(&p, DBTD__ERROR_CODE__ERROR_FAILED, "the map is full (test)", 21);
	loop_until(f->loop, one_closed, &f->h);
	assert_null(f->h.stream_client);
	expect_run_reply(&p, 5, 22);
	peer_close(&p);
}

/* ---- what a connection may cost ---- */

/* Seconds on the monotonic clock. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run the loop for about s seconds. */
static void
spin_for(struct ev_loop *loop, double s)
{
	double end = now_s() + s;

	while (now_s() < end)
		loop_spin(loop, 1);
}

/* The server's limits for a test: deadlines (0: none) and caps (0: none). */
static void
set_limits(struct fixture *f, double hello_s, double frame_s, double idle_s,
           unsigned max_clients, size_t max_memory)
{
	struct server_limits l;

	server_limits_default(&l);
	l.hello_s = hello_s;
	l.frame_s = frame_s;
	l.idle_s = idle_s;
	l.max_clients = max_clients;
	l.max_memory = max_memory;
	server_set_limits(f->srv, &l);
}

/* Send a Hello whose client name is n bytes long (a large request). */
static void
send_hello(struct peer *p, size_t n)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Hello hello = DBTD__HELLO__INIT;
	char *name = malloc(n + 1);

	assert_non_null(name);
	memset(name, 'x', n);
	name[n] = '\0';
	hello.protocol_version = 1;
	hello.client = name;
	req.body_case = DBTD__REQUEST__BODY_HELLO;
	req.hello = &hello;
	peer_send(p, &req);
	free(name);
}

/*
 * Send a large request within every limit of a request: a webhook whose
 * payload (bytes, bounded by the frame alone) is n bytes long.  The
 * handler answers it with an ERROR_BAD_REQUEST (expect_big_answered).
 */
static void
send_big(struct peer *p, size_t n)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Webhook wh = DBTD__WEBHOOK__INIT;
	uint8_t *payload = malloc(n);

	assert_non_null(payload);
	memset(payload, 'x', n);
	wh.forge = (char *)"github";
	wh.payload.data = payload;
	wh.payload.len = n;
	req.body_case = DBTD__REQUEST__BODY_WEBHOOK;
	req.webhook = &wh;
	peer_send(p, &req);
	free(payload);
}

/* The answer to send_big: it was decoded and handed to the handler. */
static void
expect_big_answered(struct peer *p)
{
	expect_error(p, DBTD__ERROR_CODE__ERROR_BAD_REQUEST, "not a request of this test", 0);
}

/* The next response is the HelloReply. */
static void
expect_hello(struct peer *p)
{
	Dbtd__Response *resp = peer_recv(p);

	assert_non_null(resp);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_HELLO);
	dbtd__response__free_unpacked(resp, NULL);
}

/* Connect and exchange Hello. */
static void
connect_hello(struct fixture *f, struct peer *p)
{
	peer_connect(p, f->loop, f->path);
	send_hello(p, 6);
	expect_hello(p);
}

/* Whether dbtd sent something or closed p (no wait). */
static int
readable(const struct peer *p)
{
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

/* Write raw bytes; stop early, saying so (0), when dbtd closed the connection. */
static int
write_until_closed(struct peer *p, const uint8_t *b, size_t len)
{
	double deadline = now_s() + PEER_TIMEOUT_S;

	while (len > 0) {
		ssize_t n = send(p->fd, b, len, MSG_NOSIGNAL);
		if (n > 0) {
			b += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return 0;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			fail_msg("cannot write to the server: %s", strerror(errno));
		if (now_s() > deadline)
			fail_msg("the server read nothing for %.0f s", PEER_TIMEOUT_S);
		loop_spin(p->loop, 1);
	}
	return 1;
}

/*
 * Read what dbtd sends until it closes p (an end of file, or a reset when it
 * left bytes of ours unread); the bytes read, frames held by p included.
 */
static size_t
read_until_closed(struct peer *p)
{
	uint8_t buf[65536];
	size_t total = frame_buf_pending(&p->in);
	double deadline = now_s() + PEER_TIMEOUT_S;

	for (;;) {
		ssize_t n = read(p->fd, buf, sizeof(buf));
		if (n > 0) {
			total += (size_t)n;
			continue;
		}
		if (n == 0 || errno == ECONNRESET)
			return total;
		if (errno != EAGAIN && errno != EINTR)
			fail_msg("cannot read from the server: %s", strerror(errno));
		if (now_s() > deadline)
			fail_msg("the server kept the connection open for %.0f s", PEER_TIMEOUT_S);
		loop_spin(p->loop, 1);
	}
}

/* An Error of code saying words (request id 0), then dbtd closes p. */
static void
expect_closed_with(struct peer *p, Dbtd__ErrorCode code, const char *words)
{
	expect_error(p, code, words, 0);
	assert_int_equal(read_until_closed(p), 0);
	peer_close(p);
}

static int
no_clients(void *arg)
{
	return server_clients(arg) == 0;
}

/*
 * A connection that has not completed Hello within the Hello timeout gets
 * an ERROR_PROTOCOL saying so and is closed; one that has is not, and
 * neither is disturbed by the other.
 */
static void
test_hello_timeout(void **state)
{
	struct fixture *f = *state;
	struct peer slow, good;
	double t0, took;

	set_limits(f, 0.3, 0, 0, 0, 0);
	peer_connect(&slow, f->loop, f->path);
	t0 = now_s();
	connect_hello(f, &good);
	expect_closed_with(&slow, DBTD__ERROR_CODE__ERROR_PROTOCOL, "no Hello within 0.3 s");
	took = now_s() - t0;
	assert_true(took >= 0.25 && took < 2);
	spin_for(f->loop, 0.3);
	expect_run_reply(&good, 1, 1);
	assert_int_equal(server_clients(f->srv), 1);
	peer_close(&good);

	/* a request before Hello does not stop the clock */
	peer_connect(&slow, f->loop, f->path);
	expect_run_reply(&slow, 2, 2);
	expect_closed_with(&slow, DBTD__ERROR_CODE__ERROR_PROTOCOL, "no Hello within 0.3 s");
}

/*
 * A connection with nothing in flight is closed after the idle timeout,
 * with an error saying so.  One that keeps asking, one with a stream open,
 * and one that has not read its reply yet are not.
 */
static void
test_idle_timeout(void **state)
{
	struct fixture *f = *state;
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ArtifactRef ar = DBTD__ARTIFACT_REF__INIT;
	Dbtd__Response *resp;
	struct peer idle, busy, streaming, behind;
	double t0;

	set_limits(f, 0, 0, 0.5, 0, 0);
	connect_hello(f, &idle);
	connect_hello(f, &busy);
	connect_hello(f, &streaming);
	send_open_stream(&streaming, 0, 0, 1, 7);
	expect_stream_opened(&streaming, 7);
	connect_hello(f, &behind);
	ar.run = 2u << 20; /* more than the socket holds: the rest stays queued */
	req.body_case = DBTD__REQUEST__BODY_ARTIFACT;
	req.artifact = &ar;
	req.request_id = 9;
	peer_send(&behind, &req);

	t0 = now_s();
	for (uint64_t i = 1; now_s() - t0 < 1.2; i++) {
		expect_run_reply(&busy, i, i);
		spin_for(f->loop, 0.1);
	}
	expect_closed_with(&idle, DBTD__ERROR_CODE__ERROR_FAILED, "idle for 0.5 s");
	assert_int_equal(server_clients(f->srv), 3);

	push(f, 10, 0);
	expect_pushed(&streaming, 10, 0, 7);
	resp = peer_recv(&behind);
	assert_non_null(resp);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_BLOB);
	assert_true(blob_is(&resp->blob, 2u << 20, 'a'));
	dbtd__response__free_unpacked(resp, NULL);

	/* once the stream has ended and the reply is read, they are idle too */
	push(f, 3, 1);
	client_stream_end(f->h.stream_client);
	expect_pushed(&streaming, 3, 1, 7);
	peer_close(&busy);
	expect_closed_with(&behind, DBTD__ERROR_CODE__ERROR_FAILED, "--idle-timeout");
	expect_closed_with(&streaming, DBTD__ERROR_CODE__ERROR_FAILED, "idle for 0.5 s");
	loop_until(f->loop, no_clients, f->srv);
}

/*
 * A frame must arrive whole within the frame timeout of its first byte: one
 * trickled a byte at a time is dropped then, with an error saying how much
 * came, although bytes keep coming.  Frames that each arrive in time are
 * served even when the connection always holds part of one.
 */
static void
test_trickled_frame_dropped_at_deadline(void **state)
{
	struct fixture *f = *state;
	Dbtd__RunRef refs[3];
	uint8_t *frames[3];
	size_t lens[3];
	static const uint8_t header[] = { 0, 0, 0, 100 };
	struct peer slow, good;
	double t0, took = 0;
	int open = 1;

	set_limits(f, 0, 0.5, 0, 0, 0);
	peer_connect(&slow, f->loop, f->path);
	t0 = now_s();
	for (int i = 0; i < 100 && open && !readable(&slow); i++) {
		open = write_until_closed(&slow, i < 4 ? header + i : (const uint8_t *)"x", 1);
		spin_for(f->loop, 0.05);
	}
	took = now_s() - t0;
	assert_true(took >= 0.45 && took < 2);
	expect_error(&slow, DBTD__ERROR_CODE__ERROR_PROTOCOL, "within 0.5 s of its first byte", 0);
	peer_close(&slow);

	/* three frames, each sent in two halves 0.2 s apart: 0.6 s of partial frames */
	peer_connect(&good, f->loop, f->path);
	for (int i = 0; i < 3; i++) {
		Dbtd__Request req = view_run(&refs[i], (uint64_t)i + 1, (uint64_t)i + 1);
		assert_int_equal(frame_pack(&req.base, &frames[i], &lens[i]), 0);
	}
	peer_write(&good, frames[0], lens[0] / 2);
	for (int i = 0; i < 3; i++) {
		spin_for(f->loop, 0.2);
		peer_write(&good, frames[i] + lens[i] / 2, lens[i] - lens[i] / 2);
		if (i < 2)
			peer_write(&good, frames[i + 1], lens[i + 1] / 2);
	}
	for (uint64_t i = 1; i <= 3; i++) {
		Dbtd__Response *resp = peer_recv(&good);
		assert_non_null(resp);
		assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_RUN);
		assert_int_equal(resp->request_id, i);
		dbtd__response__free_unpacked(resp, NULL);
		free(frames[i - 1]);
	}
	peer_close(&good);
}

/*
 * Over the connection limit, a new connection gets an ERROR_FAILED naming
 * the limit and is closed; those connected are served; once one goes, a
 * new one is served.
 */
static void
test_connection_limit(void **state)
{
	struct fixture *f = *state;
	struct peer a, b, c;

	set_limits(f, 0, 0, 0, 2, 0);
	connect_hello(f, &a);
	connect_hello(f, &b);
	peer_connect(&c, f->loop, f->path);
	expect_closed_with(&c, DBTD__ERROR_CODE__ERROR_FAILED,
	                   "serving 2 connections, its maximum (dbtd --max-connections)");
	assert_int_equal(server_clients(f->srv), 2);
	expect_run_reply(&a, 1, 1);
	peer_close(&a);
	loop_spin(f->loop, 5);
	assert_int_equal(server_clients(f->srv), 1);
	connect_hello(f, &c);
	expect_run_reply(&c, 2, 2);
	expect_run_reply(&b, 3, 3);
	peer_close(&b);
	peer_close(&c);
}

/*
 * Over the memory budget, the connection holding the most is dropped and
 * the others carry on: a client that does not read a large reply, when
 * another sends a large request; the sender itself, when its request is the
 * larger (it is told why).
 */
static void
test_budget_drops_the_client_most_behind(void **state)
{
	struct fixture *f = *state;
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ArtifactRef ar = DBTD__ARTIFACT_REF__INIT;
	struct peer behind, good, sender;
	size_t got, big = 7u << 20;
	uint8_t *frame;

	set_limits(f, 0, 0, 0, 0, 6u << 20);
	connect_hello(f, &behind);
	connect_hello(f, &good);
	ar.run = 4u << 20;
	req.body_case = DBTD__REQUEST__BODY_ARTIFACT;
	req.artifact = &ar;
	peer_send(&behind, &req);
	loop_spin(f->loop, 5);
	assert_true(server_memory(f->srv) > (4u << 20));
	expect_run_reply(&good, 1, 1);

	/* a 3 MiB request: 7 MiB in all; the reader 4 MiB behind goes */
	connect_hello(f, &sender);
	send_big(&sender, 3u << 20);
	expect_big_answered(&sender);
	got = read_until_closed(&behind);
	assert_true(got < (4u << 20));
	peer_close(&behind);
	assert_int_equal(server_clients(f->srv), 2);
	expect_run_reply(&good, 2, 2);
	expect_run_reply(&sender, 3, 3);
	peer_close(&sender);

	/* a request larger than the budget: its sender goes, told why */
	peer_connect(&sender, f->loop, f->path);
	frame = calloc(1, big);
	assert_non_null(frame);
	frame[0] = (uint8_t)((big - 4) >> 24);
	frame[1] = (uint8_t)((big - 4) >> 16);
	frame[2] = (uint8_t)((big - 4) >> 8);
	frame[3] = (uint8_t)(big - 4);
	assert_false(write_until_closed(&sender, frame, big));
	free(frame);
	expect_closed_with(&sender, DBTD__ERROR_CODE__ERROR_FAILED,
	                   "dropped, holding the most memory");
	expect_run_reply(&good, 4, 4);
	assert_int_equal(server_clients(f->srv), 1);
	peer_close(&good);
	loop_until(f->loop, no_clients, f->srv);
	assert_int_equal(server_memory(f->srv), 0);
}

/*
 * Buffers shrink back once a large request or reply is done: a connection
 * left idle after a 4 MiB request and a 4 MiB reply holds next to nothing.
 */
static void
test_buffers_shrink_after_large_frames(void **state)
{
	struct fixture *f = *state;
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ArtifactRef ar = DBTD__ARTIFACT_REF__INIT;
	Dbtd__Response *resp;
	struct peer p;

	connect_hello(f, &p);
	send_big(&p, 4u << 20);
	expect_big_answered(&p);
	loop_spin(f->loop, 2);
	assert_true(server_memory(f->srv) <= (64u << 10));

	ar.run = 4u << 20;
	req.body_case = DBTD__REQUEST__BODY_ARTIFACT;
	req.artifact = &ar;
	peer_send(&p, &req);
	resp = peer_recv(&p);
	assert_non_null(resp);
	assert_true(blob_is(&resp->blob, 4u << 20, 'a'));
	dbtd__response__free_unpacked(resp, NULL);
	loop_spin(f->loop, 2);
	assert_true(server_memory(f->srv) <= (64u << 10));
	assert_int_equal(server_clients(f->srv), 1);
	peer_close(&p);
	loop_until(f->loop, no_clients, f->srv);
	assert_int_equal(server_memory(f->srv), 0);
}

/* Send an add_job of nsteps empty steps with request id rid. */
static void
send_job(struct peer *p, size_t nsteps, uint64_t rid)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Job job = DBTD__JOB__INIT;
	Dbtd__JobStep step = DBTD__JOB_STEP__INIT;
	Dbtd__JobStep **steps = calloc(nsteps, sizeof(*steps));

	assert_non_null(steps);
	for (size_t i = 0; i < nsteps; i++)
		steps[i] = &step;
	job.n_steps = nsteps;
	job.steps = steps;
	req.body_case = DBTD__REQUEST__BODY_ADD_JOB;
	req.add_job = &job;
	req.request_id = rid;
	peer_send(p, &req);
	free(steps);
}

/*
 * A request over a limit of reqlimits is refused before it is decoded (the
 * handler never sees it) with ERROR_BAD_REQUEST naming the limit and its
 * request id; the connection goes on.  Before Hello it is closed after.
 * Bytes the wire check finds malformed: ERROR_PROTOCOL saying where, closed.
 */
static void
test_request_over_a_limit_refused_undecoded(void **state)
{
	struct fixture *f = *state;
	/* Request{add_job: Job{name: length 9, 1 byte left}} */
	static const uint8_t cut[] = { 0, 0, 0, 4, 0x22, 0x02, 0x12, 0x09 };
	struct peer p;
	int handled;

	connect_hello(f, &p);
	handled = f->h.handled;
	send_job(&p, 101, 21);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_BAD_REQUEST,
	             "a job may have at most 100 steps (this request has 101)", 21);
	assert_int_equal(f->h.handled, handled);
	send_job(&p, 100, 22); /* at the limit: handed on (the test's handler refuses it) */
	expect_error(&p, DBTD__ERROR_CODE__ERROR_BAD_REQUEST, "not a request of this test", 22);
	assert_int_equal(f->h.handled, handled + 1);
	expect_run_reply(&p, 5, 23);
	peer_close(&p);

	peer_connect(&p, f->loop, f->path);
	send_job(&p, 200, 0);
	expect_error(&p, DBTD__ERROR_CODE__ERROR_BAD_REQUEST, "at most 100 steps", 0);
	peer_expect_eof(&p);
	peer_close(&p);

	expect_refused(f, cut, sizeof(cut), "field 2 at byte 2 says 9 bytes; 0 are left");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_id_echoed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_stream_per_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_frames_carry_opening_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_closed_with_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_closed_at_server_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_gets_whole_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_gets_rest_of_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_keeps_waiting_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_over_frame_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_over_a_limit_refused_undecoded, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_bad_frames_close_that_connection_only, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_answers_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_ends_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trickled_frame_dropped_at_deadline, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_drops_the_client_most_behind, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_buffers_shrink_after_large_frames, setup,
		                                teardown),
	};

	/* a write to a client that went must fail with EPIPE, as in dbtd */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
