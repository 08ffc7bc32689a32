/* server.c - dbtd's Unix socket: clients, frames, output queues. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdreserve.h"
#include "frame.h"
#include "log.h"
#include "reqlimits.h"
#include "server_int.h"
#include "sockpath.h"
#include "util.h"

#define CLIENT_MAX_QUEUE (64u << 20)   /* a reader further behind is dropped */
#define ACCEPT_BACKOFF_S 1.0

/* Free a dead client (reap timer). */
static void
client_reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = w->data;
	struct server *srv = c->srv;

	(void)revents;
	ev_timer_stop(loop, &c->reap);
	ev_timer_stop(loop, &c->timer);
	client_stream_end(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	frame_buf_free(&c->in);
	free(c->out);
	free(c->unsafe);
	free(c);
}

void
client_kill(struct client *c, const char *why)
{
	struct ev_loop *loop = c->srv->loop;

	if (c->dead)
		return;
	if (why)
		log_info("client %lu (%s, pid %d): %s; connection closed", c->serial,
		         c->user, (int)c->pid, why);
	c->dead = 1;
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	limits_client_gone(c);
	close(c->fd);
	c->fd = -1;
	ev_timer_set(&c->reap, 0., 0.);
	ev_timer_start(loop, &c->reap);
}

/* Write as much of the committed part of the output queue as the socket takes. */
static int
client_flush(struct client *c)
{
	size_t wrote = 0;

	while (c->out_off < c->safe) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->safe - c->out_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		c->out_off += (size_t)n;
		wrote += (size_t)n;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = c->safe = 0;
		ev_io_stop(c->srv->loop, &c->wio);
		limits_queue_emptied(c);
		if (c->closing)
			client_kill(c, NULL);
	} else if (c->out_off == c->safe) {
		ev_io_stop(c->srv->loop, &c->wio); /* the rest goes after the next commit */
	} else {
		ev_io_start(c->srv->loop, &c->wio);
	}
	limits_update(c, wrote > 0);
	return 0;
}

/* The socket can take more output. */
static void
client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	int rc;

	(void)loop; (void)revents;
	rc = client_flush(c);
	if (rc < 0)
		client_kill(c, strerror(-rc));
}

/*
 * A response too large for one frame: tell the client instead of dropping
 * it (it would wait for ever); a stream it belonged to ends.
 */
static int
send_too_large(struct client *c, const Dbtd__Response *resp, int stream_frame)
{
	size_t size = protobuf_c_message_get_packed_size(&resp->base);

	log_warn("client %lu: a response of %zu bytes is over the %u MiB frame limit; "
	         "sending an error instead", c->serial, size, FRAME_MAX >> 20);
	client_error(c, DBTD__ERROR_CODE__ERROR_FAILED,
	             "the answer (%zu bytes) is over the %u MiB limit of one frame, so dbtd "
	             "cannot send it; ask for less (a page, a single step's log, one artifact)",
	             size, FRAME_MAX >> 20);
	if (stream_frame)
		client_stream_end(c);
	return -EMSGSIZE;
}

/*
 * Queue one packed frame (buf, taken) to c, noting it as unsaved until the
 * next commit.  0, or -errno when c is gone or too far behind (closed).
 */
static int
queue_frame(struct client *c, uint8_t *buf, size_t len, uint64_t req, unsigned long seq,
            int stream, int error)
{
	if (c->n_unsafe == c->cap_unsafe) {
		size_t cap = c->cap_unsafe ? c->cap_unsafe * 2 : 8;
		struct unsafe_frame *u = realloc(c->unsafe, cap * sizeof(*u));
		if (u == NULL) {
			free(buf);
			client_kill(c, "out of memory");
			return -ENOMEM;
		}
		c->unsafe = u;
		c->cap_unsafe = cap;
	}
	if (c->out_len - c->out_off + len > CLIENT_MAX_QUEUE) {
		free(buf);
		client_kill(c, "too far behind reading its responses");
		return -ENOBUFS;
	}
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = c->safe = 0;
	if (c->out_cap - c->out_len < len) {
		size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
		uint8_t *p;
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->safe -= c->out_off;
			c->out_off = 0;
		}
		if (cap - c->out_len < len)
			cap = c->out_len + len; /* a large frame: room for it, not twice that */
		p = realloc(c->out, cap);
		if (p == NULL) {
			free(buf);
			client_kill(c, "out of memory");
			return -ENOMEM;
		}
		c->out = p;
		c->out_cap = cap;
	}
	c->unsafe[c->n_unsafe++] = (struct unsafe_frame){
		.off = c->out_len - c->safe, .req = req, .seq = seq, .stream = stream,
		.error = error,
	};
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	free(buf);
	limits_update(c, 0); /* may drop c, or another client, over the memory budget */
	if (c->dead)
		return -ENOBUFS;
	/* Written by server_flush, after the loop iteration's commit. */
	return 0;
}

int
client_send(struct client *c, const Dbtd__Response *resp)
{
	Dbtd__Response tagged;
	uint8_t *buf;
	size_t len;
	int rc, stream_frame = !c->in_request && c->stream != NULL;

	if (c->dead)
		return -EPIPE;
	tagged = *resp;
	tagged.request_id = c->in_request ? c->req : c->stream_req;
	rc = frame_pack(&tagged.base, &buf, &len);
	if (rc == -ERANGE && resp->body_case != DBTD__RESPONSE__BODY_ERROR)
		return send_too_large(c, resp, stream_frame);
	if (rc < 0) {
		log_err("client %lu: cannot encode a response: %s", c->serial, strerror(-rc));
		return rc;
	}
	return queue_frame(c, buf, len, tagged.request_id,
	                   stream_frame ? c->stream_seq : c->seq, stream_frame,
	                   resp->body_case == DBTD__RESPONSE__BODY_ERROR);
}


void
server_flush(struct server *srv)
{
	for (struct client *c = srv ? srv->clients : NULL; c; c = c->next) {
		int rc;
		if (c->dead)
			continue;
		/* a stream with nothing queued gets to add more (read after the commit) */
		if (c->stream && c->stream_drain && c->out_off == c->out_len && !c->closing)
			c->stream->drain(c, c->stream_arg);
		if (c->dead)
			continue;
		c->safe = c->out_len;
		c->n_unsafe = 0;
		if (c->out_off == c->out_len && (c->closing || (c->eof && c->stream == NULL))) {
			client_kill(c, NULL);
			continue;
		}
		if (c->out_off == c->out_len || ev_is_active(&c->wio))
			continue;
		rc = client_flush(c);
		if (rc < 0)
			client_kill(c, strerror(-rc));
		else if (!c->dead && c->stream && c->stream_drain)
			/* a stream goes on: come back when the socket takes more */
			ev_io_start(srv->loop, &c->wio);
	}
}

void
server_committed(struct server *srv)
{
	for (struct client *c = srv ? srv->clients : NULL; c; c = c->next) {
		c->safe = c->out_len;
		c->n_unsafe = 0;
	}
}

/* Whether frames before i answered request seq (an error queued for it since). */
static int
answered_before(const struct unsafe_frame *f, size_t i, unsigned long seq)
{
	while (i-- > 0)
		if (!f[i].stream && f[i].seq == seq)
			return 1;
	return 0;
}

/* Queue an Error frame answering request req of c. */
static void
queue_error(struct client *c, uint64_t req, unsigned long seq, int stream, const char *msg)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Error err = DBTD__ERROR__INIT;
	uint8_t *buf;
	size_t len;

	err.code = DBTD__ERROR_CODE__ERROR_FAILED;
	err.message = (char *)msg;
	resp.body_case = DBTD__RESPONSE__BODY_ERROR;
	resp.error = &err;
	resp.request_id = req;
	if (frame_pack(&resp.base, &buf, &len) == 0)
		queue_frame(c, buf, len, req, seq, stream, 1);
}

/*
 * Undo what c was told since the last commit: its unsaved frames go, an
 * error naming the cause answers each request they answered (errors it
 * was already given stay), and a stream with a lost frame ends.
 */
static void
client_commit_failed(struct client *c, const char *msg)
{
	size_t n = c->n_unsafe, total = c->out_len - c->safe;
	struct unsafe_frame *frames = c->unsafe;
	uint8_t *old = NULL;
	int stream_lost = 0;

	if (n == 0 || c->dead)
		return;
	old = malloc(total);
	if (old == NULL) {
		client_kill(c, "out of memory");
		return;
	}
	memcpy(old, c->out + c->safe, total);
	c->out_len = c->safe;
	c->unsafe = NULL;
	c->n_unsafe = c->cap_unsafe = 0;
	for (size_t i = 0; i < n && !c->dead; i++) {
		size_t end = i + 1 < n ? frames[i + 1].off : total;
		if (frames[i].error) {
			uint8_t *copy = malloc(end - frames[i].off);
			if (copy != NULL) {
				memcpy(copy, old + frames[i].off, end - frames[i].off);
				queue_frame(c, copy, end - frames[i].off, frames[i].req,
				            frames[i].seq, frames[i].stream, 1);
			}
		} else if (frames[i].stream || (c->stream && frames[i].seq == c->stream_seq)) {
			stream_lost = 1;
		} else if (!answered_before(frames, i, frames[i].seq)) {
			queue_error(c, frames[i].req, frames[i].seq, 0, msg);
		}
	}
	if (stream_lost && c->stream && !c->dead) {
		queue_error(c, c->stream_req, c->stream_seq, 1, msg);
		client_stream_end(c);
	}
	free(old);
	free(frames);
}

void
server_commit_failed(struct server *srv, const char *msg)
{
	for (struct client *c = srv ? srv->clients : NULL; c; c = c->next)
		client_commit_failed(c, msg);
}

int
client_stream_open(struct client *c, const struct client_stream_ops *ops, void *arg)
{
	if (c->stream)
		return -EBUSY;
	c->stream = ops;
	c->stream_arg = arg;
	c->stream_drain = 1;
	c->stream_req = c->req;
	c->stream_seq = c->seq;
	return 0;
}

void
client_stream_drain(struct client *c, int on)
{
	c->stream_drain = on;
}

void
client_stream_end(struct client *c)
{
	const struct client_stream_ops *ops = c->stream;
	void *arg = c->stream_arg;

	if (ops == NULL)
		return;
	c->stream = NULL;
	c->stream_arg = NULL;
	c->stream_drain = 0;
	ops->close(arg);
	limits_update(c, 1); /* the idle deadline starts now */
}

int
client_has_stream(const struct client *c)
{
	return c->stream != NULL;
}

int
client_hello_done(const struct client *c)
{
	return c->hello;
}

void
client_set_hello(struct client *c)
{
	c->hello = 1;
}

size_t
client_queued(const struct client *c)
{
	return c->out_len - c->out_off;
}

int
client_error(struct client *c, Dbtd__ErrorCode code, const char *fmt, ...)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Error err = DBTD__ERROR__INIT;
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err.code = code;
	err.message = msg;
	resp.body_case = DBTD__RESPONSE__BODY_ERROR;
	resp.error = &err;
	return client_send(c, &resp);
}

const char *
client_user(const struct client *c)
{
	return c->user;
}

void
client_close_after_flush(struct client *c)
{
	if (c->dead)
		return;
	c->closing = 1;
	c->frame_start = 0; /* what it sends is not read any more */
	ev_io_stop(c->srv->loop, &c->rio);
	limits_update(c, 0);
	/* server_flush closes it once the queued frames are written */
}

/*
 * A request over a limit of reqlimits: refused with the limit's sentence,
 * answered with its request id when it has one.  Before Hello nothing but
 * Hello is served, so the connection closes then, as for any other request.
 */
static void
client_refuse(struct client *c, const uint8_t *payload, size_t plen, const char *why)
{
	const ProtobufCFieldDescriptor *idf =
		protobuf_c_message_descriptor_get_field_by_name(&dbtd__request__descriptor,
		                                                "request_id");
	uint64_t id = 0;

	log_info("client %lu (%s): a %zu-byte request refused: %s", c->serial, c->user, plen, why);
	wirecheck_varint(payload, plen, idf->id, &id);
	c->req = id;
	c->in_request = 1;
	client_error(c, DBTD__ERROR_CODE__ERROR_BAD_REQUEST, "%s", why);
	c->in_request = 0;
	if (!c->hello)
		client_close_after_flush(c);
}

/*
 * Handle one whole request frame: check it on the wire, decode it and give
 * it to the handler.  The check comes first because protobuf-c allocates
 * every element of a frame before anything can look at it.
 */
static void
client_frame(struct client *c, const uint8_t *payload, size_t plen)
{
	Dbtd__Request *req;
	char why[512];
	int rc;

	rc = wirecheck(&dbtd__request__descriptor, &reqlimits, payload, plen, why, sizeof(why));
	if (rc == -E2BIG) {
		client_refuse(c, payload, plen, why);
		return;
	}
	req = rc < 0 ? NULL : dbtd__request__unpack(NULL, plen, payload);
	if (req == NULL) {
		if (rc == 0)
			snprintf(why, sizeof(why), "protobuf-c refuses it");
		log_info("client %lu: a frame of %zu bytes is not a dbtd.Request: %s", c->serial,
		         plen, why);
		client_error(c, DBTD__ERROR_CODE__ERROR_PROTOCOL, "malformed request: a %zu-byte "
		             "frame does not decode as dbtd.Request: %s", plen, why);
		client_close_after_flush(c);
		return;
	}
	c->req = req->request_id;
	c->seq++;
	c->in_request = 1;
	c->srv->h.request(c->srv->h.arg, c, req);
	c->in_request = 0;
	dbtd__request__free_unpacked(req, NULL);
}

/*
 * Whether the peer closed its socket, rather than only shutting its writing
 * side: a Unix stream socket reports POLLHUP only once both directions of
 * its peer are shut.
 */
static int
peer_closed(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = 0 };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLHUP) != 0;
}

/* Bytes (or EOF) arrived from a client. */
static void
client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;
	const uint8_t *payload;
	size_t plen, had = frame_buf_pending(&c->in);
	ssize_t n;
	int rc, frames = 0;

	(void)revents;
	n = frame_buf_fill(&c->in, c->fd);
	if (n == -EAGAIN)
		return;
	if (n <= 0) {
		if (n == 0 && frame_buf_pending(&c->in) == 0) {
			/*
			 * The peer shut its writing side (or closed): what it asked
			 * is still answered; the connection closes once the answers
			 * (and any stream) are written.  A peer that closed its
			 * socket reads nothing more: it goes now, and with it a
			 * stream that may wait long for its next frame (a watched
			 * run in the queue), instead of at that frame's write.
			 */
			c->eof = 1;
			ev_io_stop(loop, &c->rio);
			if ((c->out_off == c->out_len && c->stream == NULL) || peer_closed(c->fd))
				client_kill(c, NULL);
			else
				limits_update(c, 1);
		} else {
			client_kill(c, n == 0 ? "closed in the middle of a frame" : strerror((int)-n));
		}
		return;
	}
	limits_update(c, 1); /* a buffer that grew counts: over the budget, c may go */
	if (c->dead)
		return;
	while (!c->dead && !c->closing &&
	       (rc = frame_buf_next(&c->in, &payload, &plen)) == 1) {
		client_frame(c, payload, plen);
		frames++;
	}
	if (c->dead || c->closing)
		return;
	if (rc < 0) {
		log_info("client %lu: %s", c->serial, rc == -ERANGE ?
		         "frame over the 16 MiB limit" : "zero-length frame");
		client_error(c, DBTD__ERROR_CODE__ERROR_PROTOCOL, rc == -ERANGE ?
		             "frame length exceeds the 16 MiB limit" :
		             "zero-length frame: every frame carries one message");
		client_close_after_flush(c);
		return;
	}
	/* the deadline of a partial frame runs from its first byte, not its last */
	limits_read(c, had == 0 || frames > 0);
	limits_update(c, 0);
}

/* Fill in the peer's uid, pid and user name. */
static void
client_peer(struct client *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct passwd pw, *res = NULL;
	char buf[1024];

	c->uid = (uid_t)-1;
	snprintf(c->user, sizeof(c->user), "unknown");
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return;
	c->uid = cred.uid;
	c->pid = cred.pid;
	if (getpwuid_r(cred.uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(c->user, sizeof(c->user), "%s", res->pw_name);
	else
		snprintf(c->user, sizeof(c->user), "uid:%u", (unsigned)cred.uid);
}

/* Resume accepting after a descriptor shortage. */
static void
accept_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct server *srv = w->data;

	(void)revents;
	ev_io_start(loop, &srv->accept_io);
}

/* A client is connecting. */
static void
accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct server *srv = w->data;
	struct client *c;
	int fd;

	(void)revents;
	fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		/* no descriptor left: refuse the client with a reason rather than let it wait */
		if ((e == EMFILE || e == ENFILE) &&
		    fd_reserve_refuse(&srv->reserve, srv->fd, e, ev_now(loop)) == 0)
			return; /* the next client waiting wakes us again */
		if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
			log_warn("cannot accept a client: %s; pausing accepts for %.0f s",
			         strerror(e), ACCEPT_BACKOFF_S);
			ev_io_stop(loop, &srv->accept_io);
			ev_timer_set(&srv->backoff, ACCEPT_BACKOFF_S, 0.);
			ev_timer_start(loop, &srv->backoff);
		}
		return;
	}
	if (limits_refuse(srv, fd)) /* over --max-connections: told so, and closed */
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->serial = ++srv->serial;
	frame_buf_init(&c->in);
	client_peer(c);
	ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
	ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
	ev_init(&c->reap, client_reap_cb);
	c->rio.data = c->wio.data = c->reap.data = c;
	c->next = srv->clients;
	if (c->next)
		c->next->prev = c;
	srv->clients = c;
	ev_io_start(loop, &c->rio);
	limits_client_start(c);
	log_debug("client %lu connected (%s, pid %d)", c->serial, c->user, (int)c->pid);
}

/* Common setup once a listening fd exists; takes fd and path. */
static int
server_start(struct server **out, struct ev_loop *loop, const struct server_handler *h,
             int fd, char *path, int owned)
{
	struct server *srv = calloc(1, sizeof(*srv));

	if (srv == NULL || path == NULL) {
		close(fd);
		free(path);
		free(srv);
		return -ENOMEM;
	}
	srv->loop = loop;
	srv->h = *h;
	srv->fd = fd;
	srv->path = path;
	srv->owned = owned;
	limits_init(srv);
	ev_io_init(&srv->accept_io, accept_cb, fd, EV_READ);
	ev_init(&srv->backoff, accept_backoff_cb);
	srv->accept_io.data = srv->backoff.data = srv;
	fd_reserve_open(&srv->reserve);
	ev_io_start(loop, &srv->accept_io);
	*out = srv;
	return 0;
}

int
server_listen(struct server **out, struct ev_loop *loop, const struct server_handler *h,
              const char *path, mode_t mode)
{
	struct sockaddr_un sa;
	char *why = NULL;
	mode_t old;
	int fd, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("socket path %s is longer than %zu bytes; choose a shorter --socket",
		        path, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	rc = sockpath_prepare(path, mode, &why);
	if (rc < 0) {
		if (why)
			log_err("%s", why);
		else
			log_err("cannot use the socket path %s: %s", path, strerror(-rc));
		free(why);
		return rc;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(path, mode) < 0 || listen(fd, 128) < 0) {
		rc = -errno;
		log_err("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	log_info("listening on %s (mode %04o)", path, (unsigned)mode);
	return server_start(out, loop, h, fd, strdup(path), 1);
}

/* The address a Unix socket is bound to, for messages: a path, @abstract, or "unnamed". */
static char *
socket_name(int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	size_t n;

	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
	    len <= offsetof(struct sockaddr_un, sun_path))
		return strdup("an unnamed socket");
	n = len - offsetof(struct sockaddr_un, sun_path);
	if (sa.sun_path[0] == '\0')
		return xasprintf("@%.*s", (int)n - 1, sa.sun_path + 1);
	return xasprintf("%.*s", (int)strnlen(sa.sun_path, n), sa.sun_path);
}

int
server_adopt(struct server **out, struct ev_loop *loop, const struct server_handler *h, int fd)
{
	int rc = set_nonblock_cloexec(fd);
	char *name;

	if (rc < 0) {
		log_err("cannot use the inherited socket (fd %d): %s", fd, strerror(-rc));
		close(fd);
		return rc;
	}
	name = socket_name(fd);
	log_info("serving the inherited socket %s (fd %d, systemd socket activation)",
	         name ? name : "?", fd);
	return server_start(out, loop, h, fd, name, 0);
}

const char *
server_path(const struct server *srv)
{
	return srv->path;
}

void
server_free(struct server *srv)
{
	struct client *c, *next;

	if (srv == NULL)
		return;
	ev_io_stop(srv->loop, &srv->accept_io);
	ev_timer_stop(srv->loop, &srv->backoff);
	server_flush(srv); /* last words: e.g. the final state of watched runs */
	for (c = srv->clients; c; c = next) {
		next = c->next;
		client_kill(c, NULL);
		client_stream_end(c);
		ev_timer_stop(srv->loop, &c->reap);
		frame_buf_free(&c->in);
		free(c->out);
		free(c->unsafe);
		free(c);
	}
	fd_reserve_close(&srv->reserve);
	close(srv->fd);
	/* an inherited socket belongs to systemd: its file stays for the next start */
	if (srv->owned)
		unlink(srv->path);
	free(srv->path);
	free(srv);
}
