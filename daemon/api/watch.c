/*
 * watch.c - following one run: its state now, then every stored change
 * until it is final (the last frame has end set).  The stream belongs to
 * the connection; the engine only knows an observer.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "api_int.h"
#include "runs.h"
#include "server.h"

struct watch_stream {
	struct api *a;
	struct client *c;
	struct run_watch *w;
};

/* Send one state of the run (the last one when final); client_send's result. */
static int
send_state(struct client *c, const Dbtd__Run *run)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;

	resp.body_case = DBTD__RESPONSE__BODY_RUN;
	resp.run = (Dbtd__Run *)run;
	resp.end = runs_is_final(run->status);
	return client_send(c, &resp);
}

/* The engine's observer: the run changed. */
static void
watch_state(void *arg, const Dbtd__Run *run)
{
	struct watch_stream *ws = arg;
	struct client *c = ws->c; /* a frame too large ends the stream: ws is gone then */

	send_state(c, run);
	if (runs_is_final(run->status))
		client_stream_end(c); /* frees ws */
}

/* The engine's observer: a state could not be stored; say why, and end. */
static void
watch_unsaved(void *arg, const Dbtd__Run *run, const struct err *e)
{
	struct watch_stream *ws = arg;
	struct client *c = ws->c;

	(void)run;
	api_error(c, e);
	client_stream_end(c); /* frees ws */
}

/* The stream is over or its connection went: stop observing. */
static void
watch_close(void *arg)
{
	struct watch_stream *ws = arg;

	runs_watch_remove(ws->a->runs, ws->w);
	free(ws);
}

/* Nothing to produce on demand: every frame is pushed by the engine. */
static void
watch_drain(struct client *c, void *arg)
{
	(void)c; (void)arg;
}

static const struct run_observer_ops watch_observer = {
	.state = watch_state, .unsaved = watch_unsaved,
};
static const struct client_stream_ops watch_ops = { .drain = watch_drain, .close = watch_close };

void
watch_open(struct api *a, struct client *c, uint64_t run_id)
{
	struct watch_stream *ws;
	Dbtd__Run *run;
	int rc = runs_get(a->runs, run_id, &run);

	if (rc < 0) {
		api_run_error(a, c, rc, run_id);
		return;
	}
	if (runs_is_final(run->status)) {
		send_state(c, run);
		dbtd__run__free_unpacked(run, NULL);
		return;
	}
	ws = calloc(1, sizeof(*ws));
	if (ws == NULL) {
		api_fail(c, ERR_INTERNAL, "out of memory");
		goto out;
	}
	ws->a = a;
	ws->c = c;
	if (client_stream_open(c, &watch_ops, ws) < 0) {
		free(ws);
		api_stream_busy(c);
		goto out;
	}
	client_stream_drain(c, 0);
	if (runs_watch_add(a->runs, run_id, &watch_observer, ws, &ws->w) < 0) {
		api_fail(c, ERR_INTERNAL, "out of memory");
		client_stream_end(c);
		goto out;
	}
	/* a first state too large for a frame was answered with an error: no stream */
	if (send_state(c, run) == -EMSGSIZE)
		client_stream_end(c);
out:
	dbtd__run__free_unpacked(run, NULL);
}
