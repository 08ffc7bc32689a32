/*
 * runs_notify.c - a run's states saved, and told to its observers only once
 * a commit made them durable; states a failed commit lost are kept, their
 * observers told why, and saved again from a timer (see runs.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "names.h"
#include "pb.h"
#include "runs_int.h"
#include "store.h"
#include "util.h"

#define RETRY_FIRST_S 1.0   /* unsaved states are written again after this ... */
#define RETRY_MAX_S 30.0    /* ... doubling up to this */

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* Tell the run's observers of its state (an observer may remove itself). */
static void
deliver(struct runs *r, const Dbtd__Run *run)
{
	struct run_watch *w, *next;

	for (w = r->watches; w; w = next) {
		next = w->next;
		if (w->run_id == run->id && w->ops->state)
			w->ops->state(w->arg, run);
	}
}

/* Whether a note of run id is in the list from n on. */
static int
noted_in(const struct note *n, uint64_t id)
{
	for (; n; n = n->next)
		if (n->run->id == id)
			return 1;
	return 0;
}

/* Whether a state of run id waits for the commit. */
static int
noted(const struct runs *r, uint64_t id)
{
	return noted_in(r->notes, id);
}

/*
 * Tell the run's observers of this state once the pending writes are
 * committed (at once when no write of it is pending and stored is 0: a
 * progress update, which is never stored on its own).
 */
void
runs_notify(struct runs *r, const Dbtd__Run *run, int stored)
{
	struct note *n;

	if (!stored && !noted(r, run->id)) {
		deliver(r, run);
		return;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL || (n->run = (Dbtd__Run *)pb_clone(&run->base)) == NULL) {
		free(n);
		log_err("run %llu: out of memory; its watchers miss a change",
		        (unsigned long long)run->id);
		return;
	}
	*r->notes_tail = n;
	r->notes_tail = &n->next;
}

/* Tell the run's observers that its state could not be stored. */
static void
deliver_unsaved(struct runs *r, const Dbtd__Run *run, int rc)
{
	struct run_watch *w, *next;
	struct err e;

	err_set(&e, rc, store_err_kind(rc), "run %llu is %s, but dbtd could not save that: %s; "
	        "it tries again every %.0f s at most, see dbtctl run view %llu",
	        (unsigned long long)run->id, run_status_json(run->status), store_strerror(rc),
	        RETRY_MAX_S, (unsigned long long)run->id);
	for (w = r->watches; w; w = next) {
		next = w->next;
		if (w->run_id == run->id && w->ops->unsaved)
			w->ops->unsaved(w->arg, run, &e);
	}
}

/* Forget the unsaved state of run id (a later state of it is being saved). */
static void
unsaved_drop(struct runs *r, uint64_t id)
{
	for (struct unsaved **pu = &r->unsaved, *u; (u = *pu) != NULL; pu = &u->next)
		if (u->run->id == id) {
			*pu = u->next;
			dbtd__run__free_unpacked(u->run, NULL);
			free(u);
			return;
		}
}

/*
 * Keep run (taken) as the unsaved state of its run: its observers hear why
 * once (then their streams end), and it is written again from the retry
 * timer.
 */
static void
unsaved_keep(struct runs *r, Dbtd__Run *run, int rc)
{
	struct unsaved *u = calloc(1, sizeof(*u));

	unsaved_drop(r, run->id);
	log_err("run %llu: cannot save its state (%s): %s; trying again", (unsigned long long)run->id,
	        run_status_json(run->status), store_strerror(rc));
	deliver_unsaved(r, run, rc);
	if (u == NULL) {
		dbtd__run__free_unpacked(run, NULL);
		return;
	}
	u->run = run;
	u->rc = rc;
	u->next = r->unsaved;
	r->unsaved = u;
	if (!ev_is_active(&r->retry)) {
		ev_timer_set(&r->retry, r->retry_s, 0.);
		ev_timer_start(r->loop, &r->retry);
	}
}

/*
 * The store committed (rc 0: the noted states are durable, their observers
 * hear of them now) or failed to (rc < 0: they are lost; runs created since
 * the last commit never were, and are stopped and forgotten; the last state
 * of each other run is kept and saved again later, its observers told why).
 */
void
runs_committed(struct runs *r, int rc)
{
	struct note *n = r->notes, *next;

	if (rc < 0)
		runs_forget_created(r, rc);
	runs_loss_committed(r, rc);
	r->notes = NULL;
	r->notes_tail = &r->notes;
	for (; n; n = next) {
		next = n->next;
		if (rc < 0 && runs_was_created(r, n->run->id)) {
			dbtd__run__free_unpacked(n->run, NULL); /* it never was */
		} else if (rc == 0) {
			deliver(r, n->run);
			dbtd__run__free_unpacked(n->run, NULL);
		} else if (!noted_in(next, n->run->id)) {
			unsaved_keep(r, n->run, rc); /* the run's last noted state */
		} else {
			dbtd__run__free_unpacked(n->run, NULL);
		}
		free(n);
	}
	if (rc == 0 && r->unsaved == NULL)
		r->retry_s = RETRY_FIRST_S;
	r->n_created = 0;
	if (rc < 0)
		runs_pump(r); /* slots the forgotten runs held */
}

#define END_UNSTORED "but dbtd could not store its end when it happened"

/*
 * A final state that a failed commit lost is saved as Failed, the reason
 * and the real outcome in its error: what the run wrote last (log lines,
 * artifacts, lineage) went with that commit, so its record is not whole.
 */
static void
end_unstored(Dbtd__Run *run, int rc)
{
	int had = pb_str_set(run->error);
	char *msg;

	if (!runs_is_final(run->status) || (had && strstr(run->error, END_UNSTORED)))
		return;
	msg = xasprintf("the run %s%s%s%s, " END_UNSTORED " (%s); what it wrote last "
	                "(log lines, artifacts, lineage) may be missing",
	                run_status_json(run->status), had ? " (" : "", had ? run->error : "",
	                had ? ")" : "", store_strerror(rc));
	if (msg == NULL)
		return;
	run->status = DBTD__RUN_STATUS__RUN_FAILED;
	pb_set_str(&run->error, msg);
	free(msg);
}

/* Write the unsaved states again (committed with the next commit). */
static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct runs *r = w->data;
	struct unsaved *u = r->unsaved;

	(void)loop; (void)revents;
	r->unsaved = NULL;
	r->retry_s = r->retry_s * 2 < RETRY_MAX_S ? r->retry_s * 2 : RETRY_MAX_S;
	while (u) {
		struct unsaved *next = u->next;
		end_unstored(u->run, u->rc);
		log_info("run %llu: saving its state (%s) again", (unsigned long long)u->run->id,
		         run_status_json(u->run->status));
		runs_save(r, u->run);
		dbtd__run__free_unpacked(u->run, NULL);
		free(u);
		u = next;
	}
}

/* Tell the run's observers of a stored chunk of its log. */
void
runs_notify_log(struct runs *r, uint64_t run, uint32_t step, uint32_t seq,
           const uint8_t *data, size_t len)
{
	struct run_watch *w, *next;

	for (w = r->watches; w; w = next) {
		next = w->next;
		if (w->run_id == run && w->ops->log)
			w->ops->log(w->arg, run, step, seq, data, len);
	}
}

int
runs_watch_add(struct runs *r, uint64_t run_id, const struct run_observer_ops *ops,
               void *arg, struct run_watch **out)
{
	struct run_watch *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return -ENOMEM;
	w->run_id = run_id;
	w->ops = ops;
	w->arg = arg;
	w->next = r->watches;
	r->watches = w;
	*out = w;
	return 0;
}

void
runs_watch_remove(struct runs *r, struct run_watch *w)
{
	for (struct run_watch **pw = &r->watches; w && *pw; pw = &(*pw)->next)
		if (*pw == w) {
			*pw = w->next;
			free(w);
			return;
		}
}

/*
 * Store the run's state; its observers hear of it once it is committed (or
 * why it could not be).
 */
void
runs_save(struct runs *r, const Dbtd__Run *run)
{
	int rc = store_run_put(r->store, run);
	Dbtd__Run *copy;

	unsaved_drop(r, run->id);
	if (rc == 0) {
		runs_notify(r, run, 1);
		return;
	}
	copy = (Dbtd__Run *)pb_clone(&run->base);
	if (copy)
		unsaved_keep(r, copy, rc);
}

/*
 * Store the run's state and commit it now, for a reply that reports it
 * (committed or refused: never retried behind the caller's back).
 */
int
runs_save_now(struct runs *r, const Dbtd__Run *run, struct err *e)
{
	int rc = store_run_put(r->store, run);

	if (rc == 0)
		rc = store_commit(r->store);
	if (rc < 0)
		return err_set(e, rc, store_err_kind(rc), "cannot save run %llu: %s",
		               (unsigned long long)run->id, store_strerror(rc));
	unsaved_drop(r, run->id);
	deliver(r, run);
	return 0;
}

void
runs_notify_init(struct runs *r)
{
	r->notes_tail = &r->notes;
	r->retry_s = RETRY_FIRST_S;
	ev_init(&r->retry, retry_cb);
	r->retry.data = r;
}

void
runs_notify_free(struct runs *r)
{
	ev_timer_stop(r->loop, &r->retry);
	while (r->notes) {
		struct note *n = r->notes;
		r->notes = n->next;
		dbtd__run__free_unpacked(n->run, NULL);
		free(n);
	}
	while (r->unsaved) {
		struct unsaved *u = r->unsaved;
		r->unsaved = u->next;
		dbtd__run__free_unpacked(u->run, NULL);
		free(u);
	}
}
