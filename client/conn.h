/*
 * conn.h - dbtctl's connection to dbtd: socket path, connect, Hello, and
 * Request / Response frames.
 *
 * The functions here move bytes and messages; they print nothing.  What a
 * failure means to the user is decided by the caller (commands.c).
 */
#ifndef DBTCTL_CONN_H
#define DBTCTL_CONN_H

#include <stddef.h>
#include <sys/un.h>

#include "dbtd.pb-c.h"
#include "frame.h"

/* Seconds dbtctl waits for dbtd to answer Hello before giving up. */
#define CONN_HELLO_TIMEOUT 30

/* One open connection to dbtd. */
struct conn {
	int fd;
	struct frame_buf fb;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/*
 * conn_socket_path - the socket dbtctl talks to: opt (from --socket) when
 * not NULL, else $DBTD_SOCKET when set and non-empty, else
 * /run/dbtd/dbtd.sock for root, else $XDG_RUNTIME_DIR/dbtd/dbtd.sock
 * (/tmp/dbtd-UID/dbtd.sock when XDG_RUNTIME_DIR is not an absolute path):
 * the same default as dbtd's (daemon/main.c).
 * Writes the path into buf.  Returns 0, or -ENAMETOOLONG when it does not
 * fit in len bytes.
 */
int conn_socket_path(const char *opt, char *buf, size_t len);

/*
 * conn_connect - connect c to the Unix socket at path.  Returns 0, or
 * -errno of socket(2) / connect(2) (-ENAMETOOLONG when path does not fit
 * in a sockaddr_un).  On failure c holds no descriptor.
 */
int conn_connect(struct conn *c, const char *path);

/*
 * conn_hello - send Hello{PROTOCOL_VERSION_CURRENT, client} and read dbtd's
 * answer into *reply (caller frees with dbtd__response__free_unpacked).
 * Waits at most CONN_HELLO_TIMEOUT seconds.  Returns 0, or -errno
 * (-ETIMEDOUT when dbtd did not answer, -ECONNRESET when it closed the
 * connection, -EBADMSG when the answer does not decode).
 */
int conn_hello(struct conn *c, const char *client, Dbtd__Response **reply);

/* conn_send - send one Request.  Returns 0 or -errno. */
int conn_send(struct conn *c, const Dbtd__Request *req);

/*
 * conn_recv - read one Response into *out (caller frees with
 * dbtd__response__free_unpacked).  Returns 0, -ECONNRESET when dbtd closed
 * the connection, -EBADMSG when the frame does not decode, or -errno.
 */
int conn_recv(struct conn *c, Dbtd__Response **out);

/*
 * conn_call - send req and read its one Response into *out.
 * Returns 0 or a negative errno as conn_send / conn_recv.
 */
int conn_call(struct conn *c, const Dbtd__Request *req, Dbtd__Response **out);

/* conn_close - close the socket and free buffers; safe to call twice. */
void conn_close(struct conn *c);

#endif /* DBTCTL_CONN_H */
