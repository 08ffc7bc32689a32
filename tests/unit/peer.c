/* peer.c - a test's client of dbtd's socket, served in the same process (see peer.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "peer.h"

#define TICK_S 0.005

/* Seconds on the monotonic clock. */
static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wakes the loop; nothing to do. */
static void
nop_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop; (void)w; (void)revents;
}

/* Wakes the loop; nothing to do. */
static void
nop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)w; (void)revents;
}

/*
 * One loop iteration, woken when fd (if >= 0) is ready for events or after
 * a tick, whichever comes first: the server's watchers run in between.
 */
static void
loop_step(struct ev_loop *loop, int fd, int events)
{
	ev_io io;
	ev_timer tick;

	ev_timer_init(&tick, nop_timer_cb, TICK_S, 0.);
	ev_timer_start(loop, &tick);
	if (fd >= 0) {
		ev_io_init(&io, nop_io_cb, fd, events);
		ev_io_start(loop, &io);
	}
	ev_run(loop, EVRUN_ONCE);
	if (fd >= 0)
		ev_io_stop(loop, &io);
	ev_timer_stop(loop, &tick);
}

void
loop_spin(struct ev_loop *loop, int n)
{
	while (n-- > 0)
		loop_step(loop, -1, 0);
}

void
loop_until(struct ev_loop *loop, int (*done)(void *arg), void *arg)
{
	double deadline = mono_now() + PEER_TIMEOUT_S;

	while (!done(arg)) {
		if (mono_now() > deadline)
			fail_msg("waited %.0f s for the server in vain", PEER_TIMEOUT_S);
		loop_step(loop, -1, 0);
	}
}

void
peer_connect(struct peer *p, struct ev_loop *loop, const char *path)
{
	struct sockaddr_un sa;

	memset(p, 0, sizeof(*p));
	p->loop = loop;
	frame_buf_init(&p->in);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	assert_true(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	p->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->fd >= 0);
	/* a listening Unix socket completes connect() at once: the loop accepts later */
	assert_int_equal(connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_NONBLOCK), 0);
}

void
peer_close(struct peer *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	frame_buf_free(&p->in);
}

void
peer_write(struct peer *p, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	double deadline = mono_now() + PEER_TIMEOUT_S;

	while (len > 0) {
		ssize_t n = write(p->fd, b, len);
		if (n > 0) {
			b += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			fail_msg("cannot write to the server: %s", strerror(errno));
		if (mono_now() > deadline)
			fail_msg("the server read nothing for %.0f s", PEER_TIMEOUT_S);
		loop_step(p->loop, p->fd, EV_WRITE);
	}
}

void
peer_send(struct peer *p, const Dbtd__Request *req)
{
	uint8_t *buf;
	size_t len;

	assert_int_equal(frame_pack(&req->base, &buf, &len), 0);
	peer_write(p, buf, len);
	free(buf);
}

Dbtd__Response *
peer_recv(struct peer *p)
{
	double deadline = mono_now() + PEER_TIMEOUT_S;

	for (;;) {
		const uint8_t *payload;
		size_t plen;
		ssize_t n;
		int rc = frame_buf_next(&p->in, &payload, &plen);

		if (rc < 0)
			fail_msg("the server sent a bad frame header (%d)", rc);
		if (rc == 1) {
			Dbtd__Response *resp = dbtd__response__unpack(NULL, plen, payload);
			if (resp == NULL)
				fail_msg("a %zu-byte frame from the server is not a dbtd.Response", plen);
			return resp;
		}
		n = frame_buf_fill(&p->in, p->fd);
		if (n > 0)
			continue;
		if (n == 0) {
			if (frame_buf_pending(&p->in) > 0)
				fail_msg("the server closed in the middle of a frame (%zu bytes held)",
				         frame_buf_pending(&p->in));
			return NULL;
		}
		if (n != -EAGAIN)
			fail_msg("cannot read from the server: %s", strerror((int)-n));
		if (mono_now() > deadline)
			fail_msg("no response from the server in %.0f s", PEER_TIMEOUT_S);
		loop_step(p->loop, p->fd, EV_READ);
	}
}

Dbtd__Response *
peer_call(struct peer *p, const Dbtd__Request *req)
{
	Dbtd__Response *resp;

	peer_send(p, req);
	resp = peer_recv(p);
	if (resp == NULL)
		fail_msg("the server closed the connection instead of answering");
	return resp;
}

void
peer_expect_eof(struct peer *p)
{
	Dbtd__Response *resp = peer_recv(p);

	if (resp != NULL) {
		int body = (int)resp->body_case;
		dbtd__response__free_unpacked(resp, NULL);
		fail_msg("expected the connection to close, got a response (body %d)", body);
	}
}
