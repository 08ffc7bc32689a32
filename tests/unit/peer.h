/*
 * peer.h - the client's side of dbtd's socket in a unit test: connect, send
 * request frames, read response frames, all while the test's libev loop
 * (which serves the socket in the same process) goes on running.
 *
 * Every wait runs the loop one iteration at a time, woken by the peer's
 * socket or a 5 ms tick, and fails the test (cmocka) after PEER_TIMEOUT_S:
 * a server that never answers is a failed test, not a hung one.
 */
#ifndef DBTD_TEST_PEER_H
#define DBTD_TEST_PEER_H

#include <stddef.h>

#include <ev.h>

#include "dbtd.pb-c.h"
#include "frame.h"

#define PEER_TIMEOUT_S 5.0

struct peer {
	struct ev_loop *loop;
	int fd;               /* non-blocking; -1 once closed */
	struct frame_buf in;  /* bytes read, not yet taken as frames */
};

/* peer_connect - connect p to the Unix socket at path, served by loop. */
void peer_connect(struct peer *p, struct ev_loop *loop, const char *path);

/* peer_close - close p's socket (the whole connection) and free its buffer. */
void peer_close(struct peer *p);

/* peer_write - write len raw bytes, running the loop while the socket is full. */
void peer_write(struct peer *p, const void *buf, size_t len);

/* peer_send - send req as one frame. */
void peer_send(struct peer *p, const Dbtd__Request *req);

/*
 * peer_recv - the next response (the caller frees it with
 * dbtd__response__free_unpacked), or NULL when dbtd closed the connection.
 */
Dbtd__Response *peer_recv(struct peer *p);

/* peer_call - peer_send, then the response (not NULL: fails the test at EOF). */
Dbtd__Response *peer_call(struct peer *p, const Dbtd__Request *req);

/* peer_expect_eof - fail unless dbtd closes the connection with nothing more sent. */
void peer_expect_eof(struct peer *p);

/* loop_until - run loop until done(arg) is true; fail after PEER_TIMEOUT_S. */
void loop_until(struct ev_loop *loop, int (*done)(void *arg), void *arg);

/* loop_spin - run loop for n iterations of at most a tick each. */
void loop_spin(struct ev_loop *loop, int n);

#endif /* DBTD_TEST_PEER_H */
