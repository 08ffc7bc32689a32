/*
 * limits.c - what a connection may cost dbtd: the Hello, frame and idle
 * deadlines, the connection limit, and one memory budget for the receive
 * buffers and output queues of all connections (see server_limits).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "server_int.h"

#define IN_KEEP (64u << 10)          /* a partial frame up to this keeps a buffer this size */
#define IN_SHRINK_OVER (256u << 10)  /* a buffer over this is cut down when it holds no more */
#define OUT_KEEP (16u << 10)         /* an empty output buffer over this is freed */
#define REFUSED_LOG_S 10.0           /* refused connections are logged at most this often */
#define EARLY_S 0.001                /* a timer this close to its deadline has reached it */
#define MIB(n) ((double)(n) / (1024.0 * 1024.0))

enum deadline { DL_NONE, DL_HELLO, DL_FRAME, DL_IDLE };

/* Seconds on the monotonic clock: deadlines do not move with the wall clock. */
static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An Error frame with code and msg (request id 0), packed into *buf; 0 or -errno. */
static int
pack_error(Dbtd__ErrorCode code, const char *msg, uint8_t **buf, size_t *len)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Error err = DBTD__ERROR__INIT;

	err.code = code;
	err.message = (char *)msg;
	resp.body_case = DBTD__RESPONSE__BODY_ERROR;
	resp.error = &err;
	return frame_pack(&resp.base, buf, len);
}

/* Write an Error frame to fd if the socket takes it now; never waits. */
static void
write_error(int fd, Dbtd__ErrorCode code, const char *msg)
{
	uint8_t *buf;
	size_t len;
	ssize_t n;

	if (pack_error(code, msg, &buf, &len) < 0)
		return;
	do
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	free(buf);
}

/*
 * Close c for a limit it hit: the peer gets an Error with why first when
 * nothing else is on its way to it (a frame cannot be cut into), and the
 * log says why as well.
 */
static void
goodbye(struct client *c, Dbtd__ErrorCode code, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (c->out_off == c->out_len)
		write_error(c->fd, code, why);
	client_kill(c, why);
}

/* Whether c has nothing in flight: no partial frame, nothing queued, no stream. */
static int
is_idle(const struct client *c)
{
	return c->frame_start == 0 && c->out_off == c->out_len && c->stream == NULL &&
	       !c->closing && !c->eof && !c->in_request;
}

/* The deadline that applies to c now (monotonic seconds) and its kind; 0 for none. */
static double
deadline(const struct client *c, enum deadline *kind)
{
	const struct server_limits *l = &c->srv->limits;
	double t = 0;

	*kind = DL_NONE;
	if (!c->hello && l->hello_s > 0) {
		t = c->connected + l->hello_s;
		*kind = DL_HELLO;
	}
	if (c->frame_start > 0 && l->frame_s > 0 &&
	    (*kind == DL_NONE || c->frame_start + l->frame_s < t)) {
		t = c->frame_start + l->frame_s;
		*kind = DL_FRAME;
	}
	if (l->idle_s > 0 && is_idle(c) && (*kind == DL_NONE || c->active + l->idle_s < t)) {
		t = c->active + l->idle_s;
		*kind = DL_IDLE;
	}
	return t;
}

/* The frame c is receiving, for a message: "40 of a 100-byte frame". */
static void
describe_partial(const struct client *c, char *buf, size_t len)
{
	size_t held = frame_buf_pending(&c->in);
	const uint8_t *p;

	if (held < FRAME_HEADER) {
		snprintf(buf, len, "%zu byte%s of a frame header", held, held == 1 ? "" : "s");
		return;
	}
	p = c->in.data + c->in.off;
	snprintf(buf, len, "%zu of a %u-byte frame", held - FRAME_HEADER,
	         (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3]);
}

/* A deadline of c has come: close it, saying which; else wait for the next one. */
static void
client_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = w->data;
	const struct server_limits *l = &c->srv->limits;
	enum deadline kind;
	double t = deadline(c, &kind), now = mono_now();
	char part[64];

	(void)revents;
	if (kind == DL_NONE)
		return;
	if (t > now + EARLY_S) {
		ev_timer_set(w, t - now, 0.);
		ev_timer_start(loop, w);
		return;
	}
	switch (kind) {
	case DL_HELLO:
		goodbye(c, DBTD__ERROR_CODE__ERROR_PROTOCOL, "no Hello within %g s of connecting "
		        "(dbtd --hello-timeout): the first request on a connection must be Hello",
		        l->hello_s);
		break;
	case DL_FRAME:
		describe_partial(c, part, sizeof(part));
		goodbye(c, DBTD__ERROR_CODE__ERROR_PROTOCOL, "sent %s and stalled: a frame must "
		        "arrive whole within %g s of its first byte (dbtd --frame-timeout)",
		        part, l->frame_s);
		break;
	case DL_IDLE:
		goodbye(c, DBTD__ERROR_CODE__ERROR_FAILED, "idle for %g s with no request in "
		        "flight (dbtd --idle-timeout); connect again for the next request",
		        l->idle_s);
		break;
	case DL_NONE:
		break;
	}
}

/* Arm c's timer for the deadline that applies to it now (none: stopped). */
static void
arm(struct client *c)
{
	struct ev_loop *loop = c->srv->loop;
	enum deadline kind;
	double t = deadline(c, &kind), left;

	ev_timer_stop(loop, &c->timer);
	if (kind == DL_NONE)
		return;
	left = t - mono_now();
	ev_timer_set(&c->timer, left > 0 ? left : 0., 0.);
	ev_timer_start(loop, &c->timer);
}

/* Count c's buffers again into the server's total. */
static void
count(struct client *c)
{
	size_t now = c->in.cap + c->out_cap;

	c->srv->held = c->srv->held - c->held + now;
	c->held = now;
}

/* The open connection holding the most memory, or NULL. */
static struct client *
most_behind(struct server *srv)
{
	struct client *best = NULL;

	for (struct client *c = srv->clients; c; c = c->next)
		if (!c->dead && c->held > 0 && (best == NULL || c->held > best->held))
			best = c;
	return best;
}

/* While the connections hold more than the budget, drop the one holding the most. */
static void
enforce_budget(struct server *srv)
{
	size_t budget = srv->limits.max_memory;
	struct client *c;

	while (budget > 0 && srv->held > budget && (c = most_behind(srv)) != NULL) {
		size_t total = srv->held;
		goodbye(c, DBTD__ERROR_CODE__ERROR_FAILED, "dropped, holding the most memory: "
		        "connections hold %.1f MiB, over the %.1f MiB of dbtd --max-client-memory; "
		        "this one %.1f MiB (%.1f MiB of replies it has not read, %.1f MiB of a "
		        "request it is sending)", MIB(total), MIB(budget), MIB(c->held),
		        MIB(c->out_len - c->out_off),
		        MIB(frame_buf_pending(&c->in)));
	}
}

void
server_limits_default(struct server_limits *l)
{
	l->hello_s = SERVER_HELLO_TIMEOUT_S;
	l->frame_s = SERVER_FRAME_TIMEOUT_S;
	l->idle_s = SERVER_IDLE_TIMEOUT_S;
	l->max_clients = SERVER_MAX_CLIENTS;
	l->max_memory = SERVER_MAX_MEMORY;
}

void
limits_init(struct server *srv)
{
	server_limits_default(&srv->limits);
}

void
server_set_limits(struct server *srv, const struct server_limits *l)
{
	srv->limits = *l;
	for (struct client *c = srv->clients; c; c = c->next)
		if (!c->dead)
			arm(c);
	enforce_budget(srv);
}

size_t
server_memory(const struct server *srv)
{
	return srv->held;
}

unsigned
server_clients(const struct server *srv)
{
	return srv->n_clients;
}

int
limits_refuse(struct server *srv, int fd)
{
	unsigned max = srv->limits.max_clients;
	char msg[256];
	double now;

	if (max == 0 || srv->n_clients < max)
		return 0;
	snprintf(msg, sizeof(msg), "dbtd is serving %u connections, its maximum (dbtd "
	         "--max-connections); try again later", srv->n_clients);
	write_error(fd, DBTD__ERROR_CODE__ERROR_FAILED, msg);
	close(fd);
	/* a flood of refusals makes a line every REFUSED_LOG_S, not one each */
	srv->refused++;
	now = mono_now();
	if (srv->refused_logged == 0 || now - srv->refused_logged >= REFUSED_LOG_S) {
		log_warn("refused %lu connection%s: %u are open, the most --max-connections "
		         "allows; close idle clients or raise it", srv->refused,
		         srv->refused == 1 ? "" : "s", srv->n_clients);
		srv->refused = 0;
		srv->refused_logged = now;
	}
	return 1;
}

void
limits_client_start(struct client *c)
{
	c->connected = c->active = mono_now();
	ev_init(&c->timer, client_timer_cb);
	c->timer.data = c;
	c->srv->n_clients++;
	arm(c);
}

void
limits_client_gone(struct client *c)
{
	ev_timer_stop(c->srv->loop, &c->timer);
	c->srv->n_clients--;
	c->srv->held -= c->held;
	c->held = 0;
}

void
limits_update(struct client *c, int progress)
{
	if (c->dead)
		return;
	if (progress)
		c->active = mono_now();
	count(c);
	enforce_budget(c->srv);
	if (!c->dead)
		arm(c);
}

void
limits_read(struct client *c, int started)
{
	size_t held = frame_buf_pending(&c->in);

	if (held == 0)
		c->frame_start = 0;
	else if (started || c->frame_start == 0)
		c->frame_start = mono_now();
	/* an idle connection holds no receive buffer; nor one of a large frame once handled */
	if (held == 0 || c->in.cap > IN_SHRINK_OVER)
		frame_buf_shrink(&c->in, IN_KEEP);
}

void
limits_queue_emptied(struct client *c)
{
	if (c->out_cap > OUT_KEEP) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
}
