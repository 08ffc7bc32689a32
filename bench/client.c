/* client.c - a minimal blocking dbtd client for the benchmarks. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

double
bnow(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
bconn_send(struct bconn *c, const Dbtd__Request *req)
{
	if (frame_send(c->fd, &req->base) < 0) {
		perror("bench: send");
		exit(1);
	}
}

Dbtd__Response *
bconn_recv(struct bconn *c)
{
	const uint8_t *p;
	size_t n;
	Dbtd__Response *r;

	if (frame_recv(&c->fb, c->fd, &p, &n) != 1) {
		fprintf(stderr, "bench: dbtd closed the connection\n");
		exit(1);
	}
	r = dbtd__response__unpack(NULL, n, p);
	if (r == NULL) {
		fprintf(stderr, "bench: bad response\n");
		exit(1);
	}
	if (r->body_case == DBTD__RESPONSE__BODY_ERROR) {
		fprintf(stderr, "bench: dbtd: %s\n", r->error->message);
		exit(1);
	}
	return r;
}

Dbtd__Response *
bconn_call(struct bconn *c, const Dbtd__Request *req)
{
	bconn_send(c, req);
	return bconn_recv(c);
}

void
bconn_open(struct bconn *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Hello h = DBTD__HELLO__INIT;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("bench: connect");
		exit(1);
	}
	frame_buf_init(&c->fb);
	h.protocol_version = DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
	h.client = (char *)"bench";
	req.body_case = DBTD__REQUEST__BODY_HELLO;
	req.hello = &h;
	dbtd__response__free_unpacked(bconn_call(c, &req), NULL);
}
