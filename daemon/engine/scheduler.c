/*
 * scheduler.c - cron schedules: a binary min-heap of jobs by next fire
 * time and one ev_periodic set to the top of the heap.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "cron.h"
#include "log.h"
#include "names.h"
#include "pb.h"
#include "runs.h"
#include "scheduler.h"
#include "store.h"

/* Count missed fires up to this many when dbtd was down, then say "more". */
#define MISSED_MAX 10000

struct entry {
	uint64_t job_id;
	int64_t next;           /* Unix seconds */
	struct cron cron;
	char *tz;
	char *name;
};

struct scheduler {
	struct ev_loop *loop;
	struct store *store;
	struct runs *runs;
	struct entry **heap;
	size_t n, cap;
	ev_periodic timer;
};

/* Swap heap slots i and j. */
static void
swap(struct scheduler *s, size_t i, size_t j)
{
	struct entry *t = s->heap[i];

	s->heap[i] = s->heap[j];
	s->heap[j] = t;
}

/* Move slot i up while it is due before its parent. */
static void
sift_up(struct scheduler *s, size_t i)
{
	while (i > 0 && s->heap[(i - 1) / 2]->next > s->heap[i]->next) {
		swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

/* Move slot i down while a child is due before it. */
static void
sift_down(struct scheduler *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->n && s->heap[l]->next < s->heap[m]->next)
			m = l;
		if (r < s->n && s->heap[r]->next < s->heap[m]->next)
			m = r;
		if (m == i)
			return;
		swap(s, i, m);
		i = m;
	}
}

/* Free one entry. */
static void
entry_free(struct entry *e)
{
	if (e == NULL)
		return;
	free(e->tz);
	free(e->name);
	free(e);
}

/* Take slot i out of the heap and return it. */
static struct entry *
heap_take(struct scheduler *s, size_t i)
{
	struct entry *e = s->heap[i];

	s->heap[i] = s->heap[--s->n];
	if (i < s->n) {
		sift_down(s, i);
		sift_up(s, i);
	}
	return e;
}

/* Put e in the heap; -ENOMEM. */
static int
heap_put(struct scheduler *s, struct entry *e)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct entry **h = realloc(s->heap, cap * sizeof(*h));
		if (h == NULL)
			return -ENOMEM;
		s->heap = h;
		s->cap = cap;
	}
	s->heap[s->n] = e;
	sift_up(s, s->n++);
	return 0;
}

/* Point the timer at the earliest due job (or stop it). */
static void
arm(struct scheduler *s)
{
	ev_periodic_stop(s->loop, &s->timer);
	if (s->n == 0)
		return;
	ev_periodic_set(&s->timer, (ev_tstamp)s->heap[0]->next, 0., 0);
	ev_periodic_start(s->loop, &s->timer);
}

/* Format Unix seconds as RFC 3339 for the log. */
static const char *
when(int64_t t, char *buf, size_t len)
{
	return format_rfc3339(t * 1000, buf, len);
}

/* Record that job id fired at `at` (so a restart knows what was missed). */
static void
note_fire(struct scheduler *s, const Dbtd__Job *job, int64_t at)
{
	Dbtd__Job copy = *job;
	int rc;

	copy.last_fire_ms = at * 1000;
	copy.n_next_fires_ms = 0;
	copy.next_fires_ms = NULL;
	rc = store_obj_put(s->store, STORE_JOB, job->id, &copy.base);
	if (rc < 0)
		log_warn("schedule of job \"%s\": cannot record its fire: %s", job->name,
		         store_strerror(rc));
}

/* Fire one due entry: a Scheduled run (or Skipped); then its next time. */
static void
fire(struct scheduler *s, struct entry *e, int64_t now)
{
	struct run_origin o = { .trigger = DBTD__TRIGGER__TRIGGER_SCHEDULED, .by = "schedule" };
	Dbtd__Job *job = NULL;
	Dbtd__Run *run = NULL;
	struct err err;
	int64_t at = e->next, next;
	char b1[40], b2[40];

	if (store_obj_get(s->store, STORE_JOB, e->job_id, (ProtobufCMessage **)&job) < 0) {
		entry_free(e); /* removed behind our back */
		return;
	}
	/* recorded first: the run's commit takes both, or neither (a restart
	 * then sees the fire as missed) */
	note_fire(s, job, at);
	if (runs_start(s->runs, job, &o, &run, &err) < 0)
		log_warn("schedule of job \"%s\" due at %s: no run: %s", job->name,
		         when(at, b1, sizeof(b1)), err.msg);
	else
		dbtd__run__free_unpacked(run, NULL);
	dbtd__job__free_unpacked(job, NULL);
	if (cron_next(&e->cron, e->tz, at, &next) < 0) {
		log_info("schedule of job \"%s\" has no further fire time", e->name);
		entry_free(e);
		return;
	}
	if (next <= now) {
		/* The loop was held up (suspend, clock step): do not replay a backlog. */
		int64_t later;
		if (cron_next(&e->cron, e->tz, now, &later) < 0) {
			entry_free(e);
			return;
		}
		log_warn("schedule of job \"%s\": fires from %s to before %s were missed "
		         "(dbtd was held up); not replayed", e->name, when(next, b1, sizeof(b1)),
		         when(later, b2, sizeof(b2)));
		next = later;
	}
	e->next = next;
	if (heap_put(s, e) < 0) {
		log_err("schedule of job \"%s\" dropped: out of memory", e->name);
		entry_free(e);
	}
}

/* The timer: fire everything due. */
static void
timer_cb(struct ev_loop *loop, ev_periodic *w, int revents)
{
	struct scheduler *s = w->data;
	int64_t now = (int64_t)ev_now(loop);

	(void)revents;
	while (s->n > 0 && s->heap[0]->next <= now)
		fire(s, heap_take(s, 0), now);
	arm(s);
}

/* A heap entry for job (parsed schedule), next fire after `after`; NULL if none. */
static struct entry *
entry_new(const Dbtd__Job *job, int64_t after)
{
	struct entry *e;
	char err[256];

	if (!pb_str_set(job->schedule))
		return NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->job_id = job->id;
	e->tz = strdup(job->timezone);
	e->name = strdup(job->name);
	if (e->tz == NULL || e->name == NULL) {
		entry_free(e);
		return NULL;
	}
	if (cron_parse(job->schedule, &e->cron, err, sizeof(err)) < 0) {
		log_warn("job \"%s\": stored schedule \"%s\" does not parse (%s); not scheduled",
		         job->name, job->schedule, err);
		entry_free(e);
		return NULL;
	}
	if (cron_next(&e->cron, e->tz, after, &e->next) < 0) {
		log_info("job \"%s\": schedule \"%s\" never fires", job->name, job->schedule);
		entry_free(e);
		return NULL;
	}
	return e;
}

void
scheduler_add(struct scheduler *s, const Dbtd__Job *job)
{
	struct entry *e;

	if (s == NULL)
		return;
	e = entry_new(job, (int64_t)ev_now(s->loop));
	if (e == NULL)
		return;
	if (heap_put(s, e) < 0) {
		entry_free(e);
		return;
	}
	if (s->heap[0] == e)
		arm(s);
}

void
scheduler_remove(struct scheduler *s, uint64_t job_id)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		if (s->heap[i]->job_id == job_id) {
			int top = i == 0;
			entry_free(heap_take(s, i));
			if (top)
				arm(s);
			return;
		}
}

size_t
scheduler_next_fires(const Dbtd__Job *job, int64_t now_s, int64_t *out, size_t n)
{
	struct cron c;
	char err[256];
	size_t k = 0;
	int64_t t = now_s;

	if (!pb_str_set(job->schedule) || cron_parse(job->schedule, &c, err, sizeof(err)) < 0)
		return 0;
	while (k < n && cron_next(&c, job->timezone, t, &t) == 0)
		out[k++] = t * 1000;
	return k;
}

size_t
scheduler_count(const struct scheduler *s)
{
	return s ? s->n : 0;
}

/* Startup: log what was missed while dbtd was down, then schedule from now. */
static int
load_cb(void *arg, ProtobufCMessage *msg)
{
	struct scheduler *s = arg;
	Dbtd__Job *job = (Dbtd__Job *)msg;
	int64_t now = (int64_t)ev_now(s->loop);
	int64_t since = (job->last_fire_ms ? job->last_fire_ms : job->created_at_ms) / 1000;
	struct entry *e = entry_new(job, since);
	char b1[40], b2[40];

	if (e != NULL && e->next <= now) {
		int64_t first = e->next, last = e->next, t = e->next;
		unsigned missed = 1;
		while (missed < MISSED_MAX && cron_next(&e->cron, e->tz, t, &t) == 0 && t <= now) {
			last = t;
			missed++;
		}
		log_warn("job \"%s\": %s%u scheduled run%s missed while dbtd was down (%s%s%s); "
		         "not replayed", job->name, missed >= MISSED_MAX ? "at least " : "", missed,
		         missed == 1 ? "" : "s", when(first, b1, sizeof(b1)),
		         missed > 1 ? " to " : "", missed > 1 ? when(last, b2, sizeof(b2)) : "");
		if (cron_next(&e->cron, e->tz, now, &e->next) < 0) {
			entry_free(e);
			e = NULL;
		}
	}
	if (e != NULL && heap_put(s, e) < 0) {
		entry_free(e);
		dbtd__job__free_unpacked(job, NULL);
		return -ENOMEM;
	}
	dbtd__job__free_unpacked(job, NULL);
	return 0;
}

int
scheduler_new(struct scheduler **out, struct ev_loop *loop, struct runs *runs)
{
	struct scheduler *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (s == NULL)
		return -ENOMEM;
	s->loop = loop;
	s->runs = runs;
	s->store = runs_store(runs);
	ev_periodic_init(&s->timer, timer_cb, 0., 0., 0);
	s->timer.data = s;
	rc = store_obj_list(s->store, STORE_JOB, load_cb, s);
	if (rc < 0) {
		scheduler_free(s);
		return rc;
	}
	if (s->n)
		log_info("%zu scheduled job%s; next fire at %s", s->n, s->n == 1 ? "" : "s",
		         format_rfc3339(s->heap[0]->next * 1000, (char[40]){ 0 }, 40));
	arm(s);
	*out = s;
	return 0;
}

void
scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	ev_periodic_stop(s->loop, &s->timer);
	for (size_t i = 0; i < s->n; i++)
		entry_free(s->heap[i]);
	free(s->heap);
	free(s);
}
