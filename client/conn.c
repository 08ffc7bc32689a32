/* conn.c - dbtctl's socket connection to dbtd (see conn.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "conn.h"

/* Set the receive timeout of fd to secs seconds (0: wait forever). */
static int
set_recv_timeout(int fd, int secs)
{
	struct timeval tv = { .tv_sec = secs, .tv_usec = 0 };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/* Resolve the socket path: --socket, $DBTD_SOCKET, or the default. */
int
conn_socket_path(const char *opt, char *buf, size_t len)
{
	const char *env = getenv("DBTD_SOCKET");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (opt != NULL)
		n = snprintf(buf, len, "%s", opt);
	else if (env != NULL && env[0] != '\0')
		n = snprintf(buf, len, "%s", env);
	else if (getuid() == 0)
		n = snprintf(buf, len, "/run/dbtd/dbtd.sock");
	else if (xdg != NULL && xdg[0] == '/')
		n = snprintf(buf, len, "%s/dbtd/dbtd.sock", xdg);
	else
		n = snprintf(buf, len, "/tmp/dbtd-%u/dbtd.sock", (unsigned)getuid());
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Connect to the Unix socket at path. */
int
conn_connect(struct conn *c, const char *path)
{
	struct sockaddr_un sa;
	size_t n = strlen(path);
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	frame_buf_init(&c->fb);
	if (n == 0 || n >= sizeof(sa.sun_path) || n >= sizeof(c->path))
		return n == 0 ? -ENOENT : -ENAMETOOLONG;
	memcpy(c->path, path, n + 1);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, n + 1);

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	do
		rc = connect(c->fd, (struct sockaddr *)&sa, sizeof(sa));
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		rc = -errno;
		close(c->fd);
		c->fd = -1;
		return rc;
	}
	return 0;
}

/* Send one Request frame. */
int
conn_send(struct conn *c, const Dbtd__Request *req)
{
	return frame_send(c->fd, &req->base);
}

/* Read and decode one Response frame. */
int
conn_recv(struct conn *c, Dbtd__Response **out)
{
	const uint8_t *payload;
	size_t plen;
	int rc;

	*out = NULL;
	rc = frame_recv(&c->fb, c->fd, &payload, &plen);
	if (rc == 0)
		return -ECONNRESET;
	if (rc < 0)
		return rc;
	*out = dbtd__response__unpack(NULL, plen, payload);
	if (*out == NULL)
		return -EBADMSG;
	return 0;
}

/* Send a Request and read its Response. */
int
conn_call(struct conn *c, const Dbtd__Request *req, Dbtd__Response **out)
{
	int rc;

	*out = NULL;
	rc = conn_send(c, req);
	if (rc < 0)
		return rc;
	return conn_recv(c, out);
}

/* Exchange Hello with dbtd, waiting at most CONN_HELLO_TIMEOUT seconds. */
int
conn_hello(struct conn *c, const char *client, Dbtd__Response **reply)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Hello hello = DBTD__HELLO__INIT;
	int rc;

	*reply = NULL;
	hello.protocol_version = DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
	hello.client = (char *)client;
	req.body_case = DBTD__REQUEST__BODY_HELLO;
	req.hello = &hello;

	rc = set_recv_timeout(c->fd, CONN_HELLO_TIMEOUT);
	if (rc < 0)
		return rc;
	rc = conn_call(c, &req, reply);
	if (rc == -EAGAIN || rc == -EWOULDBLOCK)
		rc = -ETIMEDOUT;
	if (rc == 0)
		rc = set_recv_timeout(c->fd, 0);
	if (rc < 0 && *reply != NULL) {
		dbtd__response__free_unpacked(*reply, NULL);
		*reply = NULL;
	}
	return rc;
}

/* Close the socket and free the receive buffer. */
void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	frame_buf_free(&c->fb);
}
