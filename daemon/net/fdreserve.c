/* fdreserve.c - a descriptor in reserve, to refuse clients when none is left (fdreserve.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dbtd.pb-c.h"
#include "fdlimit.h"
#include "fdreserve.h"
#include "frame.h"
#include "log.h"

#define REFUSE_LOG_EVERY_S 10.0 /* a flood of refusals: one line per this many seconds */

/* Take the reserve descriptor; 0 or -errno. */
static int
reserve_take(struct fd_reserve *r)
{
	r->fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return r->fd < 0 ? -errno : 0;
}

void
fd_reserve_open(struct fd_reserve *r)
{
	int rc = reserve_take(r);

	if (rc < 0)
		log_warn("cannot open /dev/null as a reserve descriptor: %s; when descriptors "
		         "run out, clients will wait instead of being refused", strerror(-rc));
}

void
fd_reserve_close(struct fd_reserve *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/* Send the client on fd one Error frame saying why (errnum: what is full); best effort. */
static void
say_refused(int fd, const char *why, int errnum)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Error err = DBTD__ERROR__INIT;
	char msg[512];
	uint8_t *buf;
	size_t len;

	snprintf(msg, sizeof(msg), "%s: try again later; if this lasts, %s", why,
	         fdlimit_advice(errnum));
	err.code = DBTD__ERROR_CODE__ERROR_FAILED;
	err.message = msg;
	resp.body_case = DBTD__RESPONSE__BODY_ERROR;
	resp.error = &err;
	if (frame_pack(&resp.base, &buf, &len) < 0)
		return;
	/* a new socket's buffer takes a small frame whole; the peer may be gone */
	(void)!send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	free(buf);
}

int
fd_reserve_refuse(struct fd_reserve *r, int lfd, int err, double now)
{
	char why[256];
	int fd;

	if (r->fd < 0 && reserve_take(r) < 0) /* lost earlier: one may be free again */
		return -err;
	fdlimit_describe(err, why, sizeof(why)); /* the limit read while the table is full */
	close(r->fd);
	r->fd = -1;
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		reserve_take(r);
		return e == EAGAIN || e == EWOULDBLOCK || e == ECONNABORTED || e == EINTR ? 0 : -e;
	}
	say_refused(fd, why, err);
	close(fd);
	reserve_take(r); /* the one just closed; if taken, the next shortage backs off */
	r->refused++;
	if (r->logged_at == 0 || now - r->logged_at >= REFUSE_LOG_EVERY_S) {
		log_warn("%s: refused %lu client%s, telling %s why; %s", why, r->refused,
		         r->refused == 1 ? "" : "s", r->refused == 1 ? "it" : "each",
		         fdlimit_advice(err));
		r->refused = 0;
		r->logged_at = now;
	}
	return 0;
}
