/*
 * logs.c - streaming a run's step logs to a client: what is stored, read
 * from LMDB as fast as the client takes it, then (with follow) the lines
 * the run produces, pushed as they are stored, until the run ends.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "log.h"
#include "runs.h"
#include "server.h"
#include "store.h"

#define STREAM_BUDGET (1u << 20)     /* bytes read from LMDB per loop iteration */
#define FOLLOW_BACKLOG (1u << 20)    /* a follower further behind reads from LMDB */

struct stream {
	struct api *a;
	struct client *c;
	struct run_watch *w;         /* follow: the engine's observer */
	uint64_t run;
	uint32_t step;               /* 0: every step */
	int follow;
	int live;                    /* caught up: gets chunks pushed */
	struct store_log_pos pos;    /* the last chunk sent */
};


/* Send one chunk as a LogData frame. */
static int
send_chunk(struct client *c, uint32_t step, const uint8_t *data, size_t len)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__LogData ld = DBTD__LOG_DATA__INIT;

	ld.step = step;
	ld.data.data = (uint8_t *)data;
	ld.data.len = len;
	resp.body_case = DBTD__RESPONSE__BODY_LOG;
	resp.log = &ld;
	return client_send(c, &resp);
}

/* store_log_read callback: send the chunk. */
static int
send_stored(void *arg, uint32_t step, uint32_t seq, const uint8_t *data, size_t len)
{
	struct stream *s = arg;

	(void)seq;
	return send_chunk(s->c, step, data, len) < 0;
}

/* The stream is over or its connection went: stop observing, free. */
static void
stream_close(void *arg)
{
	struct stream *s = arg;

	runs_watch_remove(s->a->runs, s->w);
	free(s);
}

/* End the stream (its connection stays). */
static void
stream_free(struct stream *s)
{
	client_stream_end(s->c); /* calls stream_close */
}

/* The last frame: the run's state, with end set; the stream is over. */
static void
stream_end(struct stream *s, const Dbtd__Run *run)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	struct client *c = s->c; /* a frame too large ends the stream: s is gone then */

	resp.body_case = DBTD__RESPONSE__BODY_RUN;
	resp.run = (Dbtd__Run *)run;
	resp.end = 1;
	client_send(c, &resp);
	client_stream_end(c);
}


/*
 * The client's queue is empty: send the next stored chunks; once caught
 * up, either end (run over, or no follow) or wait for pushed chunks.
 */
static void
stream_drain(struct client *c, void *arg)
{
	struct stream *s = arg;
	Dbtd__Run *run = NULL;
	int n;

	n = store_log_read(s->a->store, s->run, s->step, &s->pos, STREAM_BUDGET,
	                   send_stored, s);
	if (!client_has_stream(c))
		return; /* a frame too large ended the stream (and freed s) */
	if (n < 0) {
		api_store_fail(s->a, s->c, n, "cannot read the log of run %llu",
		               (unsigned long long)s->run);
		stream_free(s);
		return;
	}
	if (n > 0)
		return; /* more may be stored: come back when this is written */
	if ((n = runs_get(s->a->runs, s->run, &run)) < 0) {
		api_run_error(s->a, s->c, n, s->run);
		stream_free(s);
		return;
	}
	if (!s->follow || runs_is_final(run->status)) {
		stream_end(s, run);
	} else {
		s->live = 1;
		client_stream_drain(s->c, 0);
	}
	dbtd__run__free_unpacked(run, NULL);
}

/* The engine's observer: a chunk was stored; send it to a caught-up follower. */
static void
stream_push(void *arg, uint64_t run, uint32_t step, uint32_t seq, const uint8_t *data,
            size_t len)
{
	struct stream *s = arg;

	(void)run;
	if (!s->live || (s->step && s->step != step))
		return;
	if (client_queued(s->c) > FOLLOW_BACKLOG) {
		/* behind: catch up from the store as the client reads */
		s->live = 0;
		client_stream_drain(s->c, 1);
		return;
	}
	send_chunk(s->c, step, data, len);
	s->pos.step = step;
	s->pos.seq = seq;
}

/* The engine's observer: the run changed; a caught-up follower ends with it. */
static void
stream_state(void *arg, const Dbtd__Run *run)
{
	struct stream *s = arg;

	if (s->live && runs_is_final(run->status))
		stream_end(s, run);
}

/* The engine's observer: the run ended but that is not stored; say why, end. */
static void
stream_unsaved(void *arg, const Dbtd__Run *run, const struct err *e)
{
	struct stream *s = arg;

	if (!runs_is_final(run->status))
		return; /* the lines go on; only the end is awaited */
	api_error(s->c, e);
	stream_free(s);
}

static const struct run_observer_ops follow_observer = {
	.state = stream_state, .log = stream_push, .unsaved = stream_unsaved,
};
static const struct client_stream_ops log_stream_ops = {
	.drain = stream_drain, .close = stream_close,
};

void
logs_open(struct api *a, struct client *c, const Dbtd__ReadLogs *req)
{
	Dbtd__Run *run;
	struct stream *s;
	int rc;

	if (client_has_stream(c)) {
		api_stream_busy(c);
		return;
	}
	rc = runs_get(a->runs, req->run, &run);
	if (rc < 0) {
		api_run_error(a, c, rc, req->run);
		return;
	}
	if (req->step > run->n_steps && !(req->step == 1 && run->n_steps == 0)) {
		api_fail(c, ERR_NOT_FOUND, "run %llu has no step %u; it has %zu",
		         (unsigned long long)req->run, req->step, run->n_steps);
		dbtd__run__free_unpacked(run, NULL);
		return;
	}
	dbtd__run__free_unpacked(run, NULL);
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		api_fail(c, ERR_INTERNAL, "out of memory");
		return;
	}
	s->a = a;
	s->c = c;
	s->run = req->run;
	s->step = req->step;
	s->follow = req->follow;
	if (s->follow && runs_watch_add(a->runs, s->run, &follow_observer, s, &s->w) < 0) {
		free(s);
		api_fail(c, ERR_INTERNAL, "out of memory");
		return;
	}
	/* the first chunks go out after this iteration's commit */
	if (client_stream_open(c, &log_stream_ops, s) < 0) {
		stream_close(s);
		api_stream_busy(c);
	}
}
