/*
 * api.h - what each request does: one table of request handlers that
 * validate, call the engine and the store, turn errors into wire errors (in
 * one place), and reply; streams (logs, artifacts, a watched run) belong to
 * the connection that opened them.
 */
#ifndef DBTD_API_H
#define DBTD_API_H

#include <ev.h>

#include "dbtd.pb-c.h"

struct api;
struct client;
struct store;
struct runs;
struct scheduler;
struct pollers;
struct plugin_set;

/* What the handlers work with (borrowed: they outlive the api). */
struct api_config {
	struct ev_loop *loop;
	struct store *store;
	struct runs *runs;
	struct scheduler *scheduler;
	struct pollers *pollers;
	const struct plugin_set *plugins;
	const char *blob_dir;
	struct retention *retention;   /* run prune; NULL: refused */
};

/* api_new / api_free - the request handlers. */
int api_new(struct api **out, const struct api_config *cfg);
void api_free(struct api *a);

/*
 * api_request - handle one decoded request of c (the server's handler:
 * arg is the api).  Hello first; every other request after it.
 */
void api_request(void *arg, struct client *c, const Dbtd__Request *req);

#endif /* DBTD_API_H */
