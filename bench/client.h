/* client.h - a minimal blocking dbtd client for the benchmarks. */
#ifndef DBTD_BENCH_CLIENT_H
#define DBTD_BENCH_CLIENT_H

#include <stdint.h>

#include "dbtd.pb-c.h"
#include "frame.h"

struct bconn {
	int fd;
	struct frame_buf fb;
};

/* Connect to path and exchange Hello; exits the program on failure. */
void bconn_open(struct bconn *c, const char *path);

/* Send req and read one response (caller frees); exits on failure. */
Dbtd__Response *bconn_call(struct bconn *c, const Dbtd__Request *req);

/* Send req without reading the answer; exits on failure. */
void bconn_send(struct bconn *c, const Dbtd__Request *req);

/* Read one response (caller frees); exits on failure. */
Dbtd__Response *bconn_recv(struct bconn *c);

/* Monotonic time in seconds. */
double bnow(void);

#endif
