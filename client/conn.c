/* conn.c - dbtctl's socket connection to dbtd (see conn.h). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

/* Milliseconds on the monotonic clock. */
static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until fd is readable, has hung up or failed, or deadline (monotonic
 * ms; -1: none) has passed.  A signal does not end the wait early.
 * Returns 0, -ETIMEDOUT, or -errno of poll(2).
 */
static int
wait_readable(int fd, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ms = -1, n;

		if (deadline >= 0) {
			int64_t left = deadline - mono_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			ms = left > INT_MAX ? INT_MAX : (int)left;
		}
		n = poll(&p, 1, ms);
		if (n > 0)
			return 0; /* POLLIN, POLLHUP or POLLERR: the read tells which */
		if (n < 0 && errno != EINTR)
			return -errno;
		/* timed out or interrupted: the loop checks the time left */
	}
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
	c->timeout_s = CONN_TIMEOUT_DEFAULT;
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

/* Bound each later wait for a frame to secs seconds (0: none). */
void
conn_set_timeout(struct conn *c, unsigned secs)
{
	c->timeout_s = secs;
}

/* Name the request for messages: cmd and its arguments, cut to fit. */
void
conn_describe(struct conn *c, const char *cmd, int nargs, char *const *args)
{
	static const char more[] = "...";
	size_t len = sizeof(c->what), n;
	int w;

	w = snprintf(c->what, len, "%s", cmd);
	for (int i = 0; w >= 0 && (size_t)w < len && i < nargs; i++)
		w += snprintf(c->what + w, len - (size_t)w, " %s", args[i]);
	if (w < 0) {
		c->what[0] = '\0';
	} else if ((size_t)w >= len) {
		n = len - sizeof(more);
		memcpy(c->what + n, more, sizeof(more));
	}
}

/* What c waits for, for a message after a timeout. */
void
conn_waiting_for(const struct conn *c, char *buf, size_t len)
{
	const char *what = c->what[0] ? c->what : NULL;

	if (!c->hello_done)
		snprintf(buf, len, "the answer to Hello%s%s%s", what ? ", before \"" : "",
		         what ? what : "", what ? "\"" : "");
	else
		snprintf(buf, len, "%sthe reply to %s%s%s", c->frames ? "more of " : "",
		         what ? "\"" : "", what ? what : "the request", what ? "\"" : "");
}

/* Send one Request frame; what comes next is the first frame of its reply. */
int
conn_send(struct conn *c, const Dbtd__Request *req)
{
	c->frames = 0;
	return frame_send(c->fd, &req->base);
}

/*
 * Read and decode one Response frame, the whole frame within the timeout:
 * poll(2) with the time left before each read(2).
 */
int
conn_recv(struct conn *c, Dbtd__Response **out)
{
	int64_t deadline = c->timeout_s ? mono_ms() + (int64_t)c->timeout_s * 1000 : -1;
	const uint8_t *payload;
	size_t plen;
	int rc;

	*out = NULL;
	for (;;) {
		ssize_t n;

		rc = frame_buf_next(&c->fb, &payload, &plen);
		if (rc < 0)
			return rc;
		if (rc == 1)
			break;
		rc = wait_readable(c->fd, deadline);
		if (rc < 0)
			return rc;
		n = frame_buf_fill(&c->fb, c->fd);
		if (n == 0)
			return frame_buf_pending(&c->fb) ? -EPROTO : -ECONNRESET;
		if (n < 0 && n != -EAGAIN && n != -EWOULDBLOCK)
			return (int)n;
	}
	c->frames++;
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
	/*
	 * dbtd may have closed the connection before reading the request, having
	 * said why (no descriptor left, too many connections): read that.
	 */
	if ((rc == -EPIPE || rc == -ECONNRESET) && conn_recv(c, out) == 0)
		return 0;
	if (rc < 0)
		return rc;
	return conn_recv(c, out);
}

/* Exchange Hello with dbtd, waiting as conn_recv does. */
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

	rc = conn_call(c, &req, reply);
	if (rc == 0)
		c->hello_done = true;
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
