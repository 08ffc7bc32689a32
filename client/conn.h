/*
 * conn.h - dbtctl's connection to dbtd: socket path, connect, Hello, and
 * Request / Response frames.
 *
 * The functions here move bytes and messages; they print nothing.  What a
 * failure means to the user is decided by the caller (commands.c).
 */
#ifndef DBTCTL_CONN_H
#define DBTCTL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/un.h>

#include "dbtd.pb-c.h"
#include "frame.h"

/*
 * Seconds dbtctl waits for each frame of a reply (Hello's included) before
 * giving up, unless --timeout or $DBTCTL_TIMEOUT says otherwise.
 */
#define CONN_TIMEOUT_DEFAULT 30

/* One open connection to dbtd. */
struct conn {
	int fd;
	struct frame_buf fb;
	unsigned timeout_s;  /* bound on each wait for a frame; 0: none */
	bool hello_done;     /* Hello was answered */
	unsigned frames;     /* frames received since the last request sent */
	char what[80];       /* the request(s) sent, for messages: "run view 12" */
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
 * conn_connect - connect c to the Unix socket at path, with a timeout of
 * CONN_TIMEOUT_DEFAULT and no description.  Returns 0, or -errno of
 * socket(2) / connect(2) (-ENAMETOOLONG when path does not fit in a
 * sockaddr_un).  On failure c holds no descriptor.
 */
int conn_connect(struct conn *c, const char *path);

/*
 * conn_set_timeout - bound every later wait for a frame on c to secs
 * seconds (0: wait forever).  The bound holds for each frame on its own:
 * the one reply of a request, and each gap between the frames of a stream;
 * the bytes of a frame that arrive slowly all count toward it.  A stream
 * that may rightly stay quiet for long (a run followed until it ends) sets
 * 0 once its first frame has shown that dbtd answers.
 */
void conn_set_timeout(struct conn *c, unsigned secs);

/*
 * conn_describe - name what c is used for, for messages about a wait that
 * timed out: cmd ("run view") followed by args[0..nargs) (the command's
 * arguments), cut with "..." when longer than c->what holds.
 */
void conn_describe(struct conn *c, const char *cmd, int nargs, char *const *args);

/*
 * conn_waiting_for - what c waits for, for a message after -ETIMEDOUT,
 * written into buf (cut to len bytes): before Hello is answered
 *     the answer to Hello, before "run view 12"
 * before the first frame of a reply
 *     the reply to "run view 12"
 * and between the frames of a stream
 *     more of the reply to "run logs 12"
 */
void conn_waiting_for(const struct conn *c, char *buf, size_t len);

/*
 * conn_hello - send Hello{PROTOCOL_VERSION_CURRENT, client} and read dbtd's
 * answer into *reply (caller frees with dbtd__response__free_unpacked).
 * Waits as conn_recv does.  Returns 0, or -errno (-ETIMEDOUT when dbtd did
 * not answer in time, -ECONNRESET when it closed the connection, -EBADMSG
 * when the answer does not decode).
 */
int conn_hello(struct conn *c, const char *client, Dbtd__Response **reply);

/* conn_send - send one Request.  Returns 0 or -errno. */
int conn_send(struct conn *c, const Dbtd__Request *req);

/*
 * conn_recv - read one Response into *out (caller frees with
 * dbtd__response__free_unpacked), waiting at most the timeout of c for the
 * whole frame.  Returns 0, -ETIMEDOUT when the frame did not arrive in
 * time, -ECONNRESET when dbtd closed the connection, -EPROTO when it closed
 * it in the middle of a frame, -EBADMSG when the frame does not decode, or
 * -errno.
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
