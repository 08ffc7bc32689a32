/*
 * prune.c - run prune: a retention pass asked for by a client, answered
 * with what it freed once it is over (every deletion it counts committed).
 * The pass runs in steps on the loop; the request waits as the
 * connection's stream, so a client that goes takes its wait with it.
 *
 * Who may prune: it deletes history, so it is an admin request when roles
 * come (PRODUCT.md: admin is everything but read, run, cancel, re-run);
 * until then, like every request, whoever may connect to the socket.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "log.h"
#include "retention.h"
#include "server.h"

struct prune_stream {
	struct api *a;
	struct client *c;
	struct prune_wait *w;
};

/* The pass is over: send its report and end the stream. */
static void
prune_done(void *arg, const Dbtd__PruneReport *rep)
{
	struct prune_stream *ps = arg;
	struct client *c = ps->c;
	Dbtd__Response resp = DBTD__RESPONSE__INIT;

	ps->w = NULL; /* retention frees it */
	resp.body_case = DBTD__RESPONSE__BODY_PRUNED;
	resp.pruned = (Dbtd__PruneReport *)rep;
	resp.end = 1;
	if (client_send(c, &resp) != -EMSGSIZE)
		client_stream_end(c); /* frees ps */
}

/* The stream is over or its connection went: stop waiting. */
static void
prune_close(void *arg)
{
	struct prune_stream *ps = arg;

	if (ps->w)
		retention_forget(ps->a->retention, ps->w);
	free(ps);
}

/* Nothing to produce on demand: the report comes from the pass. */
static void
prune_drain(struct client *c, void *arg)
{
	(void)c; (void)arg;
}

static const struct client_stream_ops prune_ops = { .drain = prune_drain, .close = prune_close };

void
prune_open(struct api *a, struct client *c, const Dbtd__PruneRuns *req)
{
	struct prune_stream *ps;

	if (a->retention == NULL) {
		api_fail(c, ERR_UNSUPPORTED, "this dbtd was started without retention");
		return;
	}
	if (strlen(req->job) > 200) {
		api_fail(c, ERR_INVALID, "--job: no job has a name that long");
		return;
	}
	ps = calloc(1, sizeof(*ps));
	if (ps == NULL) {
		api_fail(c, ERR_INTERNAL, "out of memory");
		return;
	}
	ps->a = a;
	ps->c = c;
	if (client_stream_open(c, &prune_ops, ps) < 0) {
		free(ps);
		api_stream_busy(c);
		return;
	}
	client_stream_drain(c, 0);
	if (retention_request(a->retention, req->dry_run, req->job, prune_done, ps, &ps->w) < 0) {
		api_fail(c, ERR_INTERNAL, "out of memory");
		client_stream_end(c);
		return;
	}
	log_info("run prune%s%s%s asked for by %s", req->dry_run ? " --dry-run" : "",
	         req->job[0] ? " --job " : "", req->job, client_user(c));
}
