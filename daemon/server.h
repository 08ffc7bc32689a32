/*
 * server.h - dbtd's Unix socket: accepting clients, reading request frames,
 * queueing response frames.  Policy (what a request does) is in dispatch.c.
 */
#ifndef DBTD_SERVER_H
#define DBTD_SERVER_H

#include <sys/types.h>

#include "dbtd.pb-c.h"

struct daemon;
struct server;
struct client;

/*
 * server_listen - bind and listen on a Unix socket at path (creating its
 * directory, mode 0755, replacing a stale socket file; refusing when another
 * dbtd answers there) with file mode `mode`.  0 or -errno (logged).
 */
int server_listen(struct server **out, struct daemon *d, const char *path, mode_t mode);

/*
 * server_adopt - serve fd, an already listening Unix socket (socket
 * activation); takes fd (closed on failure).  Its file is not unlinked at
 * stop: it belongs to whoever bound it.  0 or -errno (logged).
 */
int server_adopt(struct server **out, struct daemon *d, int fd);

/* server_path - the socket's address, for messages (a path, or @name). */
const char *server_path(const struct server *srv);

/* server_free - stop accepting, close every client, free; NULL is fine. */
void server_free(struct server *srv);

/*
 * server_flush - write what is queued for every client.  dbtd calls it once
 * per loop iteration, after committing the state, so nothing is reported
 * before it is durable.
 */
void server_flush(struct server *srv);

/*
 * client_send - queue one response frame to c (written by server_flush).
 * Returns 0, or -errno when the client is gone or too far behind (it is
 * then closed).
 */
int client_send(struct client *c, const Dbtd__Response *resp);

/* client_error - queue an Error response with a formatted message. */
int client_error(struct client *c, Dbtd__ErrorCode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * client_set_drain - while fn is set, server_flush calls fn(c, arg) once per
 * loop iteration, after the commit, whenever c's output queue is empty: a
 * long answer (a log stream) is produced as fast as the client reads it and
 * no faster.  fn NULL clears it.
 */
void client_set_drain(struct client *c, void (*fn)(struct client *c, void *arg), void *arg);

/* client_busy - true while c has a drain function (a stream in progress). */
int client_busy(const struct client *c);

/* client_queued - bytes queued for c and not yet written. */
size_t client_queued(const struct client *c);

/* client_user - the user name of the peer (from SO_PEERCRED). */
const char *client_user(const struct client *c);

/* client_close_after_flush - close c once its queued frames are written. */
void client_close_after_flush(struct client *c);

#endif /* DBTD_SERVER_H */
