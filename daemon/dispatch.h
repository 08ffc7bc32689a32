/*
 * dispatch.h - what each request does: unpacked request in, checks, action
 * through store.c / runs.c, one response (or a stream) out.
 */
#ifndef DBTD_DISPATCH_H
#define DBTD_DISPATCH_H

#include "dbtd.pb-c.h"

struct daemon;
struct client;

/* dispatch_hello - answer Hello; -EPROTO (after an Error reply) on a version mismatch. */
int dispatch_hello(struct daemon *d, struct client *c, const Dbtd__Hello *hello);

/* dispatch_request - handle any request after Hello. */
void dispatch_request(struct daemon *d, struct client *c, const Dbtd__Request *req);

#endif /* DBTD_DISPATCH_H */
