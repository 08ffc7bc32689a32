/*
 * server.h - dbtd's Unix socket: accepting clients, reading request frames,
 * queueing response frames, and the one stream a connection may have open.
 *
 * This layer knows no feature: every decoded request goes to the handler
 * given at construction (api/), and a stream (a log, an artifact, a watched
 * run) is an object of the layer above that the connection owns: closing
 * the connection closes its stream.  Nothing here keeps lists keyed by
 * client pointers elsewhere.
 */
#ifndef DBTD_SERVER_H
#define DBTD_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "dbtd.pb-c.h"

struct server;
struct client;

/* What the layer above does with a connection's requests. */
struct server_handler {
	/*
	 * request - one decoded request of c (Hello included).  The handler
	 * replies with client_send / client_error (or opens a stream);
	 * req is freed when it returns.
	 */
	void (*request)(void *arg, struct client *c, const Dbtd__Request *req);
	void *arg;
};

/*
 * A stream: the long answer of one request, produced as the client reads.
 * drain is called once per loop iteration, after the commit, while the
 * client's output queue is empty and the stream wants to drain; close is
 * called exactly once when the stream ends (client_stream_end) or its
 * connection goes, and frees arg.
 */
struct client_stream_ops {
	void (*drain)(struct client *c, void *arg);
	void (*close)(void *arg);
};

/*
 * What connections may cost dbtd; dbtd(8) documents each as the option that
 * sets it.  server_listen and server_adopt start with the defaults below.
 */
struct server_limits {
	double hello_s;       /* a connection must complete Hello this long after it connects */
	double frame_s;       /* a frame must arrive whole this long after its first byte */
	double idle_s;        /* one with nothing in flight (no partial frame, nothing
	                       * queued, no stream) is closed after this long; 0: never */
	unsigned max_clients; /* connections at once; one more gets an Error and is
	                       * closed; 0: no limit */
	size_t max_memory;    /* receive buffers and queued replies of all connections,
	                       * in bytes; over it, the one holding the most is dropped;
	                       * 0: no limit */
};

#define SERVER_HELLO_TIMEOUT_S 10.0
#define SERVER_FRAME_TIMEOUT_S 5.0
#define SERVER_IDLE_TIMEOUT_S 600.0
#define SERVER_MAX_CLIENTS 1024u
#define SERVER_MAX_MEMORY ((size_t)256 << 20)

/* server_limits_default - the defaults above into l. */
void server_limits_default(struct server_limits *l);

/*
 * server_set_limits - what connections may cost from now on (copied).
 * Connections already open get the new deadlines, and are dropped at once
 * when they are over the new memory budget.
 */
void server_set_limits(struct server *srv, const struct server_limits *l);

/*
 * server_memory - bytes of receive buffers and output queues the open
 * connections hold, as counted against server_limits.max_memory.
 */
size_t server_memory(const struct server *srv);

/* server_clients - connections open now, as counted against max_clients. */
unsigned server_clients(const struct server *srv);

/*
 * server_listen - bind and listen on a Unix socket at path with file mode
 * `mode`, after sockpath_prepare (a private directory, created when
 * missing; only a stale socket is ever removed; refused when another dbtd
 * answers there).  0 or -errno (logged).
 */
int server_listen(struct server **out, struct ev_loop *loop, const struct server_handler *h,
                  const char *path, mode_t mode);

/*
 * server_adopt - serve fd, an already listening Unix socket (socket
 * activation); takes fd (closed on failure).  Its file is not unlinked at
 * stop: it belongs to whoever bound it.  0 or -errno (logged).
 */
int server_adopt(struct server **out, struct ev_loop *loop, const struct server_handler *h,
                 int fd);

/* server_path - the socket's address, for messages (a path, or @name). */
const char *server_path(const struct server *srv);

/* server_free - stop accepting, close every client (and stream), free; NULL is fine. */
void server_free(struct server *srv);

/*
 * server_flush - write what is queued for every client, and let streams
 * with an empty queue produce more.  dbtd calls it once per loop iteration,
 * after committing the state, so nothing is reported before it is durable.
 */
void server_flush(struct server *srv);

/*
 * server_committed - a commit made the state durable: what is queued for
 * every client may be written (server_flush does it).
 */
void server_committed(struct server *srv);

/*
 * server_commit_failed - a commit failed and lost every change since the
 * previous one: every frame queued since then is taken back, each request
 * it answered gets an ERROR_FAILED with msg instead (an error it got stays),
 * and a stream that lost a frame ends with that error.
 */
void server_commit_failed(struct server *srv, const char *msg);

/*
 * client_send - queue one response frame to c (written by server_flush),
 * carrying the id of the request it answers.  A response that cannot be
 * encoded within the frame limit is replaced by an error naming the limit
 * (and ends c's stream when it was one of its frames).  Returns 0, or
 * -errno when the client is gone or too far behind (it is then closed) or
 * the response was replaced.
 */
int client_send(struct client *c, const Dbtd__Response *resp);

/* client_error - queue an Error response with a formatted message. */
int client_error(struct client *c, Dbtd__ErrorCode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * client_stream_open - make arg (with ops) c's stream, answering the
 * request being handled.  At most one per connection: -EBUSY when c has one
 * (ops->close is not called then; the caller still owns arg).
 */
int client_stream_open(struct client *c, const struct client_stream_ops *ops, void *arg);

/*
 * client_stream_drain - whether server_flush calls the stream's drain when
 * c's queue is empty (on when opened; a live follower turns it off while it
 * waits for pushed frames).
 */
void client_stream_drain(struct client *c, int on);

/* client_stream_end - the stream is over: close it (ops->close(arg)). */
void client_stream_end(struct client *c);

/* client_has_stream - true while c has a stream open. */
int client_has_stream(const struct client *c);

/* client_queued - bytes queued for c and not yet written. */
size_t client_queued(const struct client *c);

/* client_user - the user name of the peer (from SO_PEERCRED). */
const char *client_user(const struct client *c);

/* client_hello_done / client_set_hello - whether Hello was exchanged on c. */
int client_hello_done(const struct client *c);
void client_set_hello(struct client *c);

/* client_close_after_flush - close c once its queued frames are written. */
void client_close_after_flush(struct client *c);

#endif /* DBTD_SERVER_H */
