/* logs.c - streaming run logs to clients (see logs.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "logs.h"
#include "runs.h"
#include "server.h"
#include "store.h"

#define STREAM_BUDGET (1u << 20)     /* bytes read from LMDB per loop iteration */
#define FOLLOW_BACKLOG (1u << 20)    /* a follower further behind reads from LMDB */

struct stream {
	struct logs *l;
	struct stream *next;
	struct client *c;
	uint64_t run;
	uint32_t step;               /* 0: every step */
	int follow;
	int live;                    /* caught up: gets chunks pushed */
	struct store_log_pos pos;    /* the last chunk sent */
};

struct logs {
	struct daemon *d;
	struct stream *streams;
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

/* Unlink and free a stream (its client stays). */
static void
stream_free(struct stream *s)
{
	struct stream **ps;

	for (ps = &s->l->streams; *ps; ps = &(*ps)->next)
		if (*ps == s) {
			*ps = s->next;
			break;
		}
	client_set_drain(s->c, NULL, NULL);
	free(s);
}

/* The last frame: the run's state, with end set; the stream is over. */
static void
stream_end(struct stream *s, const Dbtd__Run *run)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;

	resp.body_case = DBTD__RESPONSE__BODY_RUN;
	resp.run = (Dbtd__Run *)run;
	resp.end = 1;
	client_send(s->c, &resp);
	stream_free(s);
}

/* True for final statuses. */
static int
final(Dbtd__RunStatus st)
{
	return st != DBTD__RUN_STATUS__RUN_QUEUED && st != DBTD__RUN_STATUS__RUN_RUNNING;
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

	(void)c;
	n = store_log_read(s->l->d->store, s->run, s->step, &s->pos, STREAM_BUDGET,
	                   send_stored, s);
	if (n < 0) {
		client_error(s->c, DBTD__ERROR_CODE__ERROR_INTERNAL, "cannot read the log of run %llu: %s",
		             (unsigned long long)s->run, store_strerror(n));
		stream_free(s);
		return;
	}
	if (n > 0)
		return; /* more may be stored: come back when this is written */
	if (runs_get(s->l->d->runs, s->run, &run) < 0) {
		client_error(s->c, DBTD__ERROR_CODE__ERROR_INTERNAL, "cannot read run %llu",
		             (unsigned long long)s->run);
		stream_free(s);
		return;
	}
	if (!s->follow || final(run->status)) {
		stream_end(s, run);
	} else {
		s->live = 1;
		client_set_drain(s->c, NULL, NULL);
	}
	dbtd__run__free_unpacked(run, NULL);
}

void
logs_open(struct logs *l, struct client *c, const Dbtd__ReadLogs *req)
{
	Dbtd__Run *run;
	struct stream *s;
	int rc;

	if (client_busy(c)) {
		client_error(c, DBTD__ERROR_CODE__ERROR_BAD_REQUEST,
		             "a log stream is already open on this connection");
		return;
	}
	rc = runs_get(l->d->runs, req->run, &run);
	if (rc == -ENOENT) {
		client_error(c, DBTD__ERROR_CODE__ERROR_NOT_FOUND, "no run %llu; see dbtctl run list",
		             (unsigned long long)req->run);
		return;
	}
	if (rc < 0) {
		client_error(c, DBTD__ERROR_CODE__ERROR_INTERNAL, "cannot read run %llu: %s",
		             (unsigned long long)req->run, store_strerror(rc));
		return;
	}
	if (req->step > run->n_steps && !(req->step == 1 && run->n_steps == 0)) {
		client_error(c, DBTD__ERROR_CODE__ERROR_NOT_FOUND, "run %llu has no step %u; it has %zu",
		             (unsigned long long)req->run, req->step, run->n_steps);
		dbtd__run__free_unpacked(run, NULL);
		return;
	}
	dbtd__run__free_unpacked(run, NULL);
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		client_error(c, DBTD__ERROR_CODE__ERROR_INTERNAL, "out of memory");
		return;
	}
	s->l = l;
	s->c = c;
	s->run = req->run;
	s->step = req->step;
	s->follow = req->follow;
	s->next = l->streams;
	l->streams = s;
	/* the first chunks go out after this iteration's commit */
	client_set_drain(c, stream_drain, s);
}

void
logs_push(struct logs *l, uint64_t run, uint32_t step, uint32_t seq,
          const uint8_t *data, size_t len)
{
	for (struct stream *s = l ? l->streams : NULL; s; s = s->next) {
		if (!s->live || s->run != run || (s->step && s->step != step))
			continue;
		if (client_queued(s->c) > FOLLOW_BACKLOG) {
			/* behind: catch up from the store as the client reads */
			s->live = 0;
			client_set_drain(s->c, stream_drain, s);
			continue;
		}
		send_chunk(s->c, step, data, len);
		s->pos.step = step;
		s->pos.seq = seq;
	}
}

void
logs_run_ended(struct logs *l, const Dbtd__Run *run)
{
	struct stream *s, *next;

	for (s = l ? l->streams : NULL; s; s = next) {
		next = s->next;
		if (s->run == run->id && s->live)
			stream_end(s, run);
	}
}

void
logs_forget_client(struct logs *l, struct client *c)
{
	struct stream *s, *next;

	for (s = l ? l->streams : NULL; s; s = next) {
		next = s->next;
		if (s->c == c)
			stream_free(s);
	}
}

int
logs_new(struct logs **out, struct daemon *d)
{
	struct logs *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return -ENOMEM;
	l->d = d;
	*out = l;
	return 0;
}

void
logs_free(struct logs *l)
{
	if (l == NULL)
		return;
	while (l->streams)
		stream_free(l->streams);
	free(l);
}
