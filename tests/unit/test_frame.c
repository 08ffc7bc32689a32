/* test_frame.c - framing: partial reads, oversize, garbage, zero length, buffer sizes. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbtd.pb-c.h"
#include "frame.h"

/* Encode a header announcing n bytes. */
static void
header(uint8_t *p, uint32_t n)
{
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
}

/* A frame is reported only once all of it is there. */
static void
test_parse_partial(void **state)
{
	uint8_t buf[4 + 5] = { 0 };
	const uint8_t *p;
	size_t n;

	(void)state;
	header(buf, 5);
	memcpy(buf + 4, "hello", 5);
	for (size_t have = 0; have < sizeof(buf); have++)
		assert_int_equal(frame_parse(buf, have, &p, &n), 0);
	assert_int_equal(frame_parse(buf, sizeof(buf), &p, &n), 1);
	assert_int_equal(n, 5);
	assert_memory_equal(p, "hello", 5);
}

/* Lengths over 16 MiB are refused from the header alone. */
static void
test_parse_oversize(void **state)
{
	uint8_t buf[4];
	const uint8_t *p;
	size_t n;

	(void)state;
	header(buf, FRAME_MAX + 1);
	assert_int_equal(frame_parse(buf, 4, &p, &n), -ERANGE);
	header(buf, 0xffffffffu);
	assert_int_equal(frame_parse(buf, 4, &p, &n), -ERANGE);
	header(buf, FRAME_MAX); /* exactly the cap: allowed, just incomplete */
	assert_int_equal(frame_parse(buf, 4, &p, &n), 0);
}

/* Text sent to the socket (e.g. an HTTP request) reads as an oversize length. */
static void
test_parse_garbage(void **state)
{
	const char *http = "GET / HTTP/1.1\r\n\r\n";
	const uint8_t *p;
	size_t n;

	(void)state;
	assert_int_equal(frame_parse((const uint8_t *)http, strlen(http), &p, &n), -ERANGE);
}

/* A zero-length frame carries no message and is an error. */
static void
test_parse_zero(void **state)
{
	uint8_t buf[4] = { 0, 0, 0, 0 };
	const uint8_t *p;
	size_t n;

	(void)state;
	assert_int_equal(frame_parse(buf, 4, &p, &n), -EBADMSG);
}

/* Bytes arriving one at a time over a socket assemble into whole frames. */
static void
test_buf_byte_by_byte(void **state)
{
	Dbtd__Request req = DBTD__REQUEST__INIT, *got;
	Dbtd__Hello hello = DBTD__HELLO__INIT;
	struct frame_buf fb;
	const uint8_t *p;
	uint8_t *wire;
	size_t wlen, n;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	hello.protocol_version = 1;
	hello.client = (char *)"test";
	req.body_case = DBTD__REQUEST__BODY_HELLO;
	req.hello = &hello;
	assert_int_equal(frame_pack(&req.base, &wire, &wlen), 0);
	frame_buf_init(&fb);
	for (size_t i = 0; i < wlen; i++) {
		assert_int_equal(frame_buf_next(&fb, &p, &n), 0);
		assert_int_equal(write(sv[0], wire + i, 1), 1);
		assert_int_equal(frame_buf_fill(&fb, sv[1]), 1);
	}
	assert_int_equal(frame_buf_next(&fb, &p, &n), 1);
	got = dbtd__request__unpack(NULL, n, p);
	assert_non_null(got);
	assert_int_equal(got->body_case, DBTD__REQUEST__BODY_HELLO);
	assert_string_equal(got->hello->client, "test");
	dbtd__request__free_unpacked(got, NULL);
	assert_int_equal(frame_buf_pending(&fb), 0);
	free(wire);
	frame_buf_free(&fb);
	close(sv[0]);
	close(sv[1]);
}

/* Two frames in one read come out as two frames, in order. */
static void
test_buf_two_in_one(void **state)
{
	uint8_t buf[4 + 3 + 4 + 2];
	struct frame_buf fb;
	const uint8_t *p;
	size_t n;
	int sv[2];

	(void)state;
	header(buf, 3);
	memcpy(buf + 4, "abc", 3);
	header(buf + 7, 2);
	memcpy(buf + 11, "de", 2);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], buf, sizeof(buf)), (ssize_t)sizeof(buf));
	frame_buf_init(&fb);
	assert_true(frame_buf_fill(&fb, sv[1]) > 0);
	assert_int_equal(frame_buf_next(&fb, &p, &n), 1);
	assert_int_equal(n, 3);
	assert_memory_equal(p, "abc", 3);
	assert_int_equal(frame_buf_next(&fb, &p, &n), 1);
	assert_int_equal(n, 2);
	assert_memory_equal(p, "de", 2);
	assert_int_equal(frame_buf_next(&fb, &p, &n), 0);
	frame_buf_free(&fb);
	close(sv[0]);
	close(sv[1]);
}

/*
 * Feed wire[0..len) through a socket into fb, in the pieces the socket
 * takes, until fb holds a whole frame; its capacity never exceeds cap_max.
 */
static void
feed_until_frame(struct frame_buf *fb, int sv[2], const uint8_t *wire, size_t len,
                 size_t cap_max, const uint8_t **p, size_t *n)
{
	size_t sent = 0;
	int rc = 0;

	while (rc == 0) {
		ssize_t w = sent < len ? write(sv[0], wire + sent, len - sent) : 0;
		if (w > 0)
			sent += (size_t)w;
		assert_true(frame_buf_fill(fb, sv[1]) > 0);
		assert_true(fb->cap <= cap_max);
		rc = frame_buf_next(fb, p, n);
	}
	assert_int_equal(rc, 1);
	assert_int_equal(sent, len);
}

/*
 * A large frame gets a buffer of its size, not a doubling (its last bytes
 * included).  Once taken, the buffer is given back; one left holding the
 * start of the next frame is cut down, keeping it.
 */
static void
test_buf_large_frame_sized_to_fit(void **state)
{
	size_t size = (3u << 20) + 5, n;
	static const uint8_t next[] = { 0, 0, 0, 9, 'a', 'b' };
	uint8_t *wire = calloc(1, FRAME_HEADER + size + sizeof(next));
	struct frame_buf fb;
	const uint8_t *p;
	int sv[2];

	(void)state;
	assert_non_null(wire);
	header(wire, (uint32_t)size);
	wire[FRAME_HEADER + size - 1] = 'z';
	memcpy(wire + FRAME_HEADER + size, next, sizeof(next));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	frame_buf_init(&fb);
	feed_until_frame(&fb, sv, wire, FRAME_HEADER + size, FRAME_HEADER + size, &p, &n);
	assert_int_equal(n, size);
	assert_int_equal(p[size - 1], 'z');
	frame_buf_shrink(&fb, 65536);
	assert_null(fb.data);
	assert_int_equal(fb.cap, 0);

	/* the same frame, then the start of the next */
	feed_until_frame(&fb, sv, wire, FRAME_HEADER + size + sizeof(next),
	                 FRAME_HEADER + size, &p, &n);
	assert_int_equal(n, size);
	while (frame_buf_pending(&fb) < sizeof(next))
		assert_true(frame_buf_fill(&fb, sv[1]) > 0);
	assert_int_equal(frame_buf_next(&fb, &p, &n), 0);
	assert_true(fb.cap > 65536);
	frame_buf_shrink(&fb, 65536);
	assert_int_equal(fb.cap, 65536);
	assert_int_equal(frame_buf_pending(&fb), sizeof(next));
	assert_memory_equal(fb.data + fb.off, next, sizeof(next));
	frame_buf_free(&fb);
	free(wire);
	close(sv[0]);
	close(sv[1]);
}

/* A peer that closes in the middle of a frame is reported as such. */
static void
test_recv_half_frame_eof(void **state)
{
	uint8_t buf[4 + 2];
	struct frame_buf fb;
	const uint8_t *p;
	size_t n;
	int sv[2];

	(void)state;
	header(buf, 10);
	buf[4] = buf[5] = 'x';
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], buf, sizeof(buf)), (ssize_t)sizeof(buf));
	close(sv[0]);
	frame_buf_init(&fb);
	assert_int_equal(frame_recv(&fb, sv[1], &p, &n), -EPROTO);
	frame_buf_free(&fb);
	close(sv[1]);
}

/* A clean end of file between frames is not an error. */
static void
test_recv_clean_eof(void **state)
{
	struct frame_buf fb;
	const uint8_t *p;
	size_t n;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[0]);
	frame_buf_init(&fb);
	assert_int_equal(frame_recv(&fb, sv[1], &p, &n), 0);
	frame_buf_free(&fb);
	close(sv[1]);
}

/* A message bigger than the cap is not packed. */
static void
test_pack_oversize(void **state)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__LogData chunk = DBTD__LOG_DATA__INIT;
	uint8_t *out = NULL;
	size_t outlen;

	(void)state;
	chunk.step = 1;
	chunk.data.len = FRAME_MAX + 1;
	chunk.data.data = calloc(1, chunk.data.len);
	assert_non_null(chunk.data.data);
	ev.body_case = DBTD__RUNNER_EVENT__BODY_LOG;
	ev.log = &chunk;
	assert_int_equal(frame_pack(&ev.base, &out, &outlen), -ERANGE);
	assert_null(out);
	free(chunk.data.data);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_partial),
		cmocka_unit_test(test_parse_oversize),
		cmocka_unit_test(test_parse_garbage),
		cmocka_unit_test(test_parse_zero),
		cmocka_unit_test(test_buf_byte_by_byte),
		cmocka_unit_test(test_buf_two_in_one),
		cmocka_unit_test(test_buf_large_frame_sized_to_fit),
		cmocka_unit_test(test_recv_half_frame_eof),
		cmocka_unit_test(test_recv_clean_eof),
		cmocka_unit_test(test_pack_oversize),
	};
	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
