/*
 * server_int.h - the connection layer's own structures, shared by server.c
 * (the socket, frames, output queues, streams) and limits.c (timeouts, the
 * connection limit, the memory budget) only.  Nothing outside daemon/net/
 * includes it.
 */
#ifndef DBTD_SERVER_INT_H
#define DBTD_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "fdreserve.h"
#include "frame.h"
#include "server.h"

struct client {
	struct server *srv;
	struct client *prev, *next;
	int fd;
	ev_io rio, wio;
	ev_timer timer; /* the Hello, frame or idle deadline that applies now (limits.c) */
	ev_timer reap;
	struct frame_buf in;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	size_t safe;    /* out[..safe) was queued before the last commit: may be written */
	struct unsafe_frame *unsafe; /* the frames of out[safe..): what a failed commit undoes */
	size_t n_unsafe, cap_unsafe;
	const struct client_stream_ops *stream; /* the one open stream, or NULL */
	void *stream_arg;
	int stream_drain;       /* call stream->drain when the queue is empty */
	uint64_t stream_req;    /* the request the stream answers */
	unsigned long stream_seq;
	unsigned long seq;      /* requests received so far */
	uint64_t req;           /* the request being handled */
	int in_request;         /* inside the handler of request `req` */
	int hello;      /* Hello exchanged */
	int closing;    /* close once the output queue is empty */
	int eof;        /* the peer shut its writing side: close when all is answered */
	int dead;       /* closed; freed from the reap timer */
	/* times on the monotonic clock (limits.c), in seconds */
	double connected;       /* accepted: the Hello deadline counts from here */
	double frame_start;     /* the first byte of the partial frame held arrived; 0: none held */
	double active;          /* the last byte read or written: the idle deadline counts from here */
	size_t held;    /* bytes of buffers it holds, as counted in srv->held */
	uid_t uid;
	pid_t pid;
	char user[64];
	unsigned long serial;
};

/* A frame queued since the last commit (its offset from `safe`). */
struct unsafe_frame {
	size_t off;
	uint64_t req;   /* the request id it carries */
	unsigned long seq; /* which request of the connection it answers */
	int stream;     /* a frame of the connection's stream */
	int error;      /* an Error reply: kept when a commit fails */
};

struct server {
	struct ev_loop *loop;
	struct server_handler h;
	int fd;
	char *path;       /* the socket's address, for messages */
	int owned;        /* we bound path: unlink it at stop (not an adopted socket) */
	ev_io accept_io;
	ev_timer backoff;
	struct fd_reserve reserve; /* to refuse clients with a reason when descriptors run out */
	struct client *clients;
	unsigned long serial;
	struct server_limits limits;
	unsigned n_clients;     /* connections open (not dead) */
	size_t held;            /* receive buffers and output queues of them all, in bytes */
	unsigned long refused;  /* connections refused over the limit, not yet logged */
	double refused_logged;  /* when a refusal was last logged (monotonic) */
};

/* client_kill - close c now (why, when not NULL, is logged); freed at the next iteration. */
void client_kill(struct client *c, const char *why);

/* limits_init - the default limits into srv (at server start). */
void limits_init(struct server *srv);

/*
 * limits_refuse - a connection was accepted on fd: when srv serves its
 * maximum already, answer an Error naming the limit, close fd and return 1;
 * else 0.
 */
int limits_refuse(struct server *srv, int fd);

/* limits_client_start - c was accepted: count it and start its Hello deadline. */
void limits_client_start(struct client *c);

/* limits_client_gone - c is closed: it no longer counts, nor do its buffers. */
void limits_client_gone(struct client *c);

/*
 * limits_update - what c holds or does changed (bytes read or written, a
 * frame handled, its queue emptied, its stream ended): count its buffers
 * again, drop clients while over the memory budget (c itself, when it holds
 * the most), and arm the deadline that applies to c now.  Call with
 * progress set when bytes moved (the idle deadline starts over).
 */
void limits_update(struct client *c, int progress);

/*
 * limits_read - frames were taken out of c's receive buffer (started: a
 * new frame began in this read): note when the partial frame held began,
 * and give back a large buffer that holds little.
 */
void limits_read(struct client *c, int started);

/* limits_queue_emptied - c's output queue is empty: give back a large buffer. */
void limits_queue_emptied(struct client *c);

#endif /* DBTD_SERVER_INT_H */
