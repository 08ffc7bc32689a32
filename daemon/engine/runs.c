/* runs.c - the life of runs inside dbtd (see runs.h). */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cron.h"
#include "frame.h"
#include "log.h"
#include "names.h"
#include "pb.h"
#include "plugin.h"
#include "procid.h"
#include "runner.h"
#include "runs.h"
#include "store.h"
#include "util.h"

/* Why dbtd is stopping a run's processes. */
enum stop_reason { STOP_NONE, STOP_CANCEL, STOP_TIMEOUT };

#define RUNNER_READ_BUDGET (1u << 20) /* bytes from one runner per loop iteration */
#define STOP_GRACE_INT_S 4.0   /* SIGINT, then SIGTERM after this ... */
#define STOP_GRACE_TERM_S 3.0  /* ... then SIGKILL after this: stopped within 10 s */

/* A run in progress: its runner process and the record being updated. */
struct active {
	struct runs *r;
	struct active *next;
	Dbtd__Run *run;         /* current state, owned */
	pid_t pid;              /* runner pid = its process group */
	int fd;                 /* socketpair end, -1 once closed */
	ev_io io;
	ev_child child;
	struct frame_buf in;
	uint32_t log_seq;
	int exited;
	int wstatus;
	char *workspace;
	char *lock;             /* the DuckDB file the run writes, or NULL */
	uint32_t timeout_s;     /* the job's timeout, 0 for none */
	ev_timer timeout;
	enum stop_reason stop;  /* set once cancel or the timeout began */
	int stop_stage;         /* 1: SIGINT sent, 2: SIGTERM sent, 3: SIGKILL sent */
	uint32_t stop_step;     /* the step running when the stop began */
	char *stopped_by;       /* who canceled */
	ev_timer stop_timer;
};

/* An observer of one run (see runs_watch_add). */
struct run_watch {
	uint64_t run_id;
	const struct run_observer_ops *ops;
	void *arg;
	struct run_watch *next;
};

/*
 * A state of a run to tell its observers once it is stored (a snapshot:
 * they hear every change, in order, and only what a commit made durable).
 */
struct note {
	Dbtd__Run *run;
	struct note *next;
};

/* The last state of a run that a failed commit lost: saved again later. */
struct unsaved {
	Dbtd__Run *run;
	int rc;                 /* why it was lost */
	struct unsaved *next;
};

#define RETRY_FIRST_S 1.0   /* unsaved states are written again after this ... */
#define RETRY_MAX_S 30.0    /* ... doubling up to this */

/* A run waiting for a slot (and for the DuckDB file it writes). */
struct queued {
	uint64_t id;
	char *lock;             /* the DuckDB file the run writes, or NULL */
	char *waiting;          /* what run view says it waits for */
	struct queued *next;
};

struct runs {
	struct ev_loop *loop;
	struct store *store;
	const struct plugin_set *plugins;
	void (*runner)(const struct runner_spec *spec) __attribute__((noreturn));
	char *work_dir;
	char *blob_dir;
	int stopping;
	unsigned slots;
	unsigned running;
	struct active *active;
	struct queued *queue;   /* FIFO */
	struct run_watch *watches;
	struct note *notes, **notes_tail; /* stored, not yet committed: FIFO */
	struct unsaved *unsaved;
	ev_timer retry;
	double retry_s;
};

static void pump(struct runs *r);
static void save(struct runs *r, const Dbtd__Run *run);

int
runs_is_final(Dbtd__RunStatus s)
{
	return s != DBTD__RUN_STATUS__RUN_QUEUED && s != DBTD__RUN_STATUS__RUN_RUNNING;
}

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
static void
notify(struct runs *r, const Dbtd__Run *run, int stored)
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
 * hear of them now) or failed to (rc < 0: they are lost; the last state of
 * each run is kept and saved again later, its observers told why).
 */
static void
commit_done(void *arg, int rc)
{
	struct runs *r = arg;
	struct note *n = r->notes, *next;

	r->notes = NULL;
	r->notes_tail = &r->notes;
	for (; n; n = next) {
		next = n->next;
		if (rc == 0) {
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
		log_info("run %llu: saving its state (%s) again", (unsigned long long)u->run->id,
		         run_status_json(u->run->status));
		save(r, u->run);
		dbtd__run__free_unpacked(u->run, NULL);
		free(u);
		u = next;
	}
}

/* Tell the run's observers of a stored chunk of its log. */
static void
notify_log(struct runs *r, uint64_t run, uint32_t step, uint32_t seq,
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

struct store *
runs_store(const struct runs *r)
{
	return r->store;
}

void
runs_stopping(struct runs *r)
{
	r->stopping = 1;
}

/*
 * Store the run's state; its observers hear of it once it is committed (or
 * why it could not be).
 */
static void
save(struct runs *r, const Dbtd__Run *run)
{
	int rc = store_run_put(r->store, run);
	Dbtd__Run *copy;

	unsaved_drop(r, run->id);
	if (rc == 0) {
		notify(r, run, 1);
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
static int
save_now(struct runs *r, const Dbtd__Run *run, struct err *e)
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

/* The DuckDB file a run's environment writes, canonical; NULL for none. */
static char *
run_lock(struct runs *r, const Dbtd__Run *run)
{
	Dbtd__Environment *env = NULL;
	char *lock = NULL;

	if (store_obj_get(r->store, STORE_ENVIRONMENT, run->env_id,
	                  (ProtobufCMessage **)&env) < 0)
		return NULL;
	if (env->destination && strcmp(env->destination->type, "duckdb") == 0 &&
	    pb_str_set(env->destination->path))
		lock = path_canonical(env->destination->path);
	dbtd__environment__free_unpacked(env, NULL);
	return lock;
}

/* Append a run to the FIFO of runs waiting for a slot. */
static int
enqueue(struct runs *r, const Dbtd__Run *run)
{
	struct queued *q = calloc(1, sizeof(*q)), **pq;

	if (q == NULL)
		return -ENOMEM;
	q->id = run->id;
	q->lock = run_lock(r, run);
	for (pq = &r->queue; *pq; pq = &(*pq)->next)
		;
	*pq = q;
	return 0;
}

/* Free a queue entry. */
static void
queued_free(struct queued *q)
{
	free(q->lock);
	free(q->waiting);
	free(q);
}

/* A step record for the run being created. */
static Dbtd__Step *
new_step(uint32_t index, const char *name, const char *type, const char *command,
         const Dbtd__JobStep *js)
{
	Dbtd__Step *s = malloc(sizeof(*s));

	if (s == NULL)
		return NULL;
	dbtd__step__init(s);
	s->index = index;
	s->name = (char *)name;
	s->type = (char *)type;
	s->command = (char *)(command ? command : "");
	s->status = DBTD__STEP_STATUS__STEP_PENDING;
	if (js) {
		s->n_params = js->n_params;
		s->params = js->params;
	}
	return s;
}

/*
 * Build the new run's record for job in env (borrowing their strings),
 * pack-and-unpack it into an owned copy.
 */
static Dbtd__Run *
build_run(const Dbtd__Job *job, const Dbtd__Environment *env, const struct run_origin *o,
          int skipped)
{
	Dbtd__Run run = DBTD__RUN__INIT, *copy = NULL;
	Dbtd__Step **steps;
	char **names;
	size_t n = 0, nsteps = skipped ? 0 : 3 + job->n_steps;

	steps = calloc(nsteps + 1, sizeof(*steps));
	names = calloc(nsteps + 1, sizeof(*names));
	if (steps == NULL || names == NULL)
		goto out;
	if (!skipped) {
		steps[n++] = new_step(1, "Clone Git repository", "git-clone", NULL, NULL);
		steps[n++] = new_step(2, "Create profile for Destination", "dbt-profile", NULL, NULL);
		steps[n++] = new_step(3, "Invoke dbt deps", "dbt", "dbt deps", NULL);
		for (size_t i = 0; i < job->n_steps; i++) {
			const Dbtd__JobStep *js = job->steps[i];
			if (strcmp(js->type, "dbt") == 0)
				names[n] = xasprintf("Invoke %s", js->command);
			else
				names[n] = xasprintf("Run %s", js->type);
			if (names[n] == NULL)
				goto out;
			steps[n] = new_step((uint32_t)n + 1, names[n], js->type, js->command, js);
			n++;
		}
		for (size_t i = 0; i < n; i++)
			if (steps[i] == NULL)
				goto out;
	}
	run.job_id = job->id;
	run.job = job->name;
	run.job_type = job->type;
	run.env_id = env->id;
	run.environment = env->name;
	run.status = skipped ? DBTD__RUN_STATUS__RUN_SKIPPED : DBTD__RUN_STATUS__RUN_QUEUED;
	run.trigger = o->trigger;
	run.branch = (char *)(o->branch ? o->branch : env->branch);
	run.commit_sha = (char *)(o->commit ? o->commit : "");
	run.fetch_ref = (char *)(o->fetch_ref ? o->fetch_ref : "");
	run.pr_number = o->pr_number;
	run.created_at_ms = now_ms();
	run.triggered_by = (char *)(o->by ? o->by : "");
	run.n_steps = n;
	run.steps = steps;
	copy = (Dbtd__Run *)pb_clone(&run.base);
out:
	for (size_t i = 0; i < nsteps; i++) {
		free(steps ? steps[i] : NULL);
		free(names ? names[i] : NULL);
	}
	free(steps);
	free(names);
	return copy;
}

/* runs_get, with the error a person sees when it fails. */
static int
get_run(struct runs *r, uint64_t id, Dbtd__Run **out, struct err *e)
{
	int rc = runs_get(r, id, out);

	if (rc == -ENOENT)
		return err_set(e, rc, ERR_NOT_FOUND,
		               "no run %llu; see dbtctl run list", (unsigned long long)id);
	if (rc < 0)
		return err_set(e, rc, store_err_kind(rc), "cannot read run %llu: %s",
		               (unsigned long long)id, store_strerror(rc));
	return 0;
}

/*
 * Create a run of job (Queued, or Skipped when the job has an active run),
 * queue it and start it when a slot is free; *out gets its state after that.
 */
static int
create_run(struct runs *r, const Dbtd__Job *job, const struct run_origin *o,
           uint64_t rerun_of, Dbtd__Run **out, struct err *e)
{
	Dbtd__Environment *env = NULL;
	Dbtd__Run *run = NULL;
	uint64_t busy, id;
	int rc;

	*out = NULL;
	rc = store_obj_get(r->store, STORE_ENVIRONMENT, job->env_id, (ProtobufCMessage **)&env);
	if (rc < 0)
		return err_set(e, rc, ERR_FAILED,
		               "job \"%s\" runs in environment \"%s\", which no longer exists; "
		               "add it again or remove the job", job->name, job->environment);
	busy = store_job_active_run(r->store, job->id);
	run = build_run(job, env, o, busy != 0);
	dbtd__environment__free_unpacked(env, NULL);
	if (run == NULL)
		return err_set(e, -ENOMEM, store_err_kind(rc), "out of memory");
	run->rerun_of = rerun_of;
	if (busy) {
		Dbtd__Run *other = NULL;
		char *msg;
		store_run_get(r->store, busy, &other);
		msg = xasprintf("job \"%s\" already has run %llu %s", job->name,
		                (unsigned long long)busy, other ? run_status_json(other->status)
		                                                : "in progress");
		if (other)
			dbtd__run__free_unpacked(other, NULL);
		pb_set_str(&run->error, msg ? msg : "the job already has an active run");
		free(msg);
		run->finished_at_ms = run->created_at_ms;
	}
	rc = store_run_create(r->store, run);
	/* committed before anything uses its id: a lost commit would give it again */
	if (rc == 0)
		rc = store_commit(r->store);
	if (rc < 0) {
		dbtd__run__free_unpacked(run, NULL);
		return err_set(e, rc, store_err_kind(rc),
		               "cannot store the new run: %s", store_strerror(rc));
	}
	log_info("run %llu of job \"%s\" created (%s, by %s)%s", (unsigned long long)run->id,
	         job->name, trigger_json(o->trigger), o->by ? o->by : "",
	         busy ? ": skipped, the job has a run in progress" : "");
	if (busy) {
		*out = run;
		return 0;
	}
	id = run->id;
	rc = enqueue(r, run);
	dbtd__run__free_unpacked(run, NULL);
	if (rc < 0)
		return err_set(e, rc, store_err_kind(rc), "out of memory");
	pump(r);
	/* Report the state after the pump: Running when a slot was free. */
	rc = runs_get(r, id, out);
	if (rc < 0)
		return err_set(e, rc, store_err_kind(rc),
		               "cannot read run %llu back: %s", (unsigned long long)id,
		               store_strerror(rc));
	return 0;
}

int
runs_start(struct runs *r, const Dbtd__Job *job, const struct run_origin *o,
           Dbtd__Run **out, struct err *e)
{
	*out = NULL;
	return create_run(r, job, o, 0, out, e);
}

int
runs_trigger(struct runs *r, const char *jobname, Dbtd__Trigger trigger,
             const char *by, Dbtd__Run **out, struct err *e)
{
	struct run_origin o = { .trigger = trigger, .by = by };
	Dbtd__Job *job = NULL;
	int rc;

	*out = NULL;
	rc = store_obj_find(r->store, STORE_JOB, jobname, (ProtobufCMessage **)&job);
	if (rc == -ENOENT)
		return err_set(e, rc, ERR_NOT_FOUND,
		               "no job named \"%s\"; see dbtctl job list", jobname);
	if (rc < 0)
		return err_set(e, rc, store_err_kind(rc),
		               "cannot read job \"%s\": %s", jobname, store_strerror(rc));
	rc = create_run(r, job, &o, 0, out, e);
	dbtd__job__free_unpacked(job, NULL);
	return rc;
}

int
runs_rerun(struct runs *r, uint64_t id, const char *by, Dbtd__Run **out,
           struct err *e)
{
	Dbtd__Run *orig = NULL;
	Dbtd__Job *job = NULL;
	int rc;

	*out = NULL;
	rc = get_run(r, id, &orig, e);
	if (rc < 0)
		return rc;
	if (orig->status != DBTD__RUN_STATUS__RUN_COMPLETED &&
	    orig->status != DBTD__RUN_STATUS__RUN_FAILED) {
		rc = err_set(e, -EBUSY, ERR_CONFLICT,
		             "run %llu is %s: only completed or failed runs can be re-run",
		             (unsigned long long)id, run_status_json(orig->status));
		goto out;
	}
	rc = store_obj_get(r->store, STORE_JOB, orig->job_id, (ProtobufCMessage **)&job);
	/*
	 * dbtd 0.1.0 gave a removed job's id to the next job added: a job
	 * under that id that is younger than the run, or named otherwise, is
	 * not the run's job.
	 */
	if (rc == 0 && (strcmp(job->name, orig->job) != 0 ||
	                job->created_at_ms > orig->created_at_ms)) {
		dbtd__job__free_unpacked(job, NULL);
		job = NULL;
		rc = -ENOENT;
	}
	if (rc < 0) {
		err_set(e, rc, ERR_NOT_FOUND,
		        "job \"%s\" of run %llu no longer exists; it cannot be re-run",
		        orig->job, (unsigned long long)id);
		goto out;
	}
	{
		struct run_origin o = { .trigger = DBTD__TRIGGER__TRIGGER_RERUN, .by = by };
		rc = create_run(r, job, &o, id, out, e);
	}
	dbtd__job__free_unpacked(job, NULL);
out:
	dbtd__run__free_unpacked(orig, NULL);
	return rc;
}

/* Find the active run with id, or NULL. */
static struct active *
find_active(struct runs *r, uint64_t id)
{
	for (struct active *a = r->active; a; a = a->next)
		if (a->run->id == id)
			return a;
	return NULL;
}

int
runs_get(struct runs *r, uint64_t id, Dbtd__Run **out)
{
	struct active *a = find_active(r, id);

	if (a) {
		*out = (Dbtd__Run *)pb_clone(&a->run->base);
		return *out ? 0 : -ENOMEM;
	}
	return store_run_get(r->store, id, out);
}

unsigned
runs_active_count(const struct runs *r)
{
	return r->running;
}

/* The step with 1-based index i, or NULL. */
static Dbtd__Step *
step_at(Dbtd__Run *run, uint32_t i)
{
	return i >= 1 && i <= run->n_steps ? run->steps[i - 1] : NULL;
}

/* Set the run's error summary unless one is set already. */
static void
first_error(Dbtd__Run *run, const char *msg)
{
	if (!pb_str_set(run->error) && pb_str_set(msg))
		pb_set_str(&run->error, msg);
}

/* Handle one event from a runner. */
static void
runner_event(struct active *a, const uint8_t *payload, size_t plen)
{
	Dbtd__RunnerEvent *ev = dbtd__runner_event__unpack(NULL, plen, payload);
	Dbtd__Run *run = a->run;
	Dbtd__Step *s;

	if (ev == NULL) {
		log_warn("run %llu: runner sent a message that does not decode; ignored",
		         (unsigned long long)run->id);
		return;
	}
	switch (ev->body_case) {
	case DBTD__RUNNER_EVENT__BODY_STEP_STARTED:
		s = step_at(run, ev->step_started->index);
		if (s == NULL)
			break;
		s->status = DBTD__STEP_STATUS__STEP_RUNNING;
		s->started_at_ms = ev->step_started->started_at_ms;
		save(a->r, run);
		break;
	case DBTD__RUNNER_EVENT__BODY_STEP_FINISHED:
		s = step_at(run, ev->step_finished->index);
		if (s == NULL)
			break;
		s->status = ev->step_finished->status;
		if (s->status == DBTD__STEP_STATUS__STEP_SKIPPED) {
			save(a->r, run); /* never started: no times */
			break;
		}
		s->finished_at_ms = ev->step_finished->finished_at_ms;
		if (!s->started_at_ms)
			s->started_at_ms = s->finished_at_ms;
		pb_set_str(&s->error, ev->step_finished->error);
		if (s->status == DBTD__STEP_STATUS__STEP_FAILED)
			first_error(run, s->error);
		save(a->r, run);
		break;
	case DBTD__RUNNER_EVENT__BODY_OUTPUT:
		if (strcmp(ev->output->key, "run.commit_sha") == 0) {
			pb_set_str(&run->commit_sha, ev->output->value);
			save(a->r, run);
		}
		break;
	case DBTD__RUNNER_EVENT__BODY_LOG: {
		uint32_t seq = a->log_seq++;
		int rc = store_log_append(a->r->store, run->id, ev->log->step, seq,
		                          ev->log->data.data, ev->log->data.len);
		if (rc < 0)
			log_err("run %llu: cannot store log lines: %s",
			        (unsigned long long)run->id, store_strerror(rc));
		else
			notify_log(a->r, run->id, ev->log->step, seq,
			           ev->log->data.data, ev->log->data.len);
		break;
	}
	case DBTD__RUNNER_EVENT__BODY_LINEAGE: {
		int rc = store_lineage_put(a->r->store, run->id, ev->lineage);
		if (rc < 0)
			log_err("run %llu: cannot store its lineage: %s", (unsigned long long)run->id,
			        store_strerror(rc));
		break;
	}
	case DBTD__RUNNER_EVENT__BODY_ARTIFACTS:
		for (size_t i = 0; i < ev->artifacts->n_items; i++) {
			const Dbtd__Artifact *art = ev->artifacts->items[i];
			int rc;
			if (art->path[0] == '/' || strstr(art->path, ".."))
				continue; /* the runner never sends these; refuse them all the same */
			rc = store_artifact_put(a->r->store, run->id, art);
			if (rc < 0)
				log_err("run %llu: cannot keep artifact %s: %s", (unsigned long long)run->id,
				        art->path, store_strerror(rc));
		}
		break;
	case DBTD__RUNNER_EVENT__BODY_PROGRESS:
		s = step_at(run, ev->progress->index);
		if (s == NULL || ev->progress->progress == NULL)
			break;
		if (s->progress)
			dbtd__progress__free_unpacked(s->progress, NULL);
		s->progress = (Dbtd__Progress *)pb_clone(&ev->progress->progress->base);
		notify(a->r, run, 0); /* shown live; stored with the step's next change */
		break;
	default:
		break;
	}
	dbtd__runner_event__free_unpacked(ev, NULL);
}

/*
 * Read what the runner sent, about `budget` bytes at most (a chatty step
 * must not hold the loop or grow one transaction without bound); returns 0
 * at EOF, 1 to keep reading.
 */
static int
runner_read(struct active *a, size_t budget)
{
	const uint8_t *payload;
	size_t plen, got = 0;
	ssize_t n;
	int rc;

	while (got < budget) {
		n = frame_buf_fill(&a->in, a->fd);
		if (n == -EAGAIN)
			return 1;
		if (n <= 0)
			return 0;
		got += (size_t)n;
		while ((rc = frame_buf_next(&a->in, &payload, &plen)) == 1)
			runner_event(a, payload, plen);
		if (rc < 0) {
			log_err("run %llu: bad frame from the runner; ignoring the rest",
			        (unsigned long long)a->run->id);
			return 0;
		}
	}
	return 1;
}

/* Describe how a step died from a wait status. */
static char *
death_text(const Dbtd__Step *s, int wstatus)
{
	if (WIFSIGNALED(wstatus))
		return xasprintf("step %u (%s) crashed: killed by signal %d (%s)", s->index,
		                 s->name, WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
	return xasprintf("step %u (%s) ended the runner with exit status %d", s->index,
	                 s->name, WEXITSTATUS(wstatus));
}

/* Mark the steps after a stopped or failed one skipped. */
static void
skip_pending(Dbtd__Run *run)
{
	for (size_t i = 0; i < run->n_steps; i++)
		if (run->steps[i]->status == DBTD__STEP_STATUS__STEP_PENDING)
			run->steps[i]->status = DBTD__STEP_STATUS__STEP_SKIPPED;
}

/*
 * A run dbtd stopped (cancel or timeout): the step in progress when the stop
 * began and any later step that ended badly take the stop's status; the run
 * is Canceled (cancel) or Failed (timeout), unless every step completed
 * before the signals landed.
 */
static void
finish_stopped(struct active *a, int64_t now)
{
	Dbtd__Run *run = a->run;
	int timeout = a->stop == STOP_TIMEOUT, all_done = 1;
	char *why = timeout ? xasprintf("timed out after %u s", a->timeout_s)
	                    : xasprintf("canceled by %s", a->stopped_by ? a->stopped_by : "?");

	for (size_t i = 0; i < run->n_steps; i++) {
		Dbtd__Step *s = run->steps[i];
		int hit = s->status == DBTD__STEP_STATUS__STEP_RUNNING ||
		          ((s->status == DBTD__STEP_STATUS__STEP_FAILED ||
		            s->status == DBTD__STEP_STATUS__STEP_CANCELED) && s->index >= a->stop_step);
		if (s->status != DBTD__STEP_STATUS__STEP_COMPLETED)
			all_done = 0;
		if (!hit)
			continue;
		s->status = timeout ? DBTD__STEP_STATUS__STEP_FAILED : DBTD__STEP_STATUS__STEP_CANCELED;
		if (!s->finished_at_ms)
			s->finished_at_ms = now;
		pb_set_str(&s->error, why);
	}
	if (all_done && run->n_steps) {
		run->status = DBTD__RUN_STATUS__RUN_COMPLETED;
	} else {
		run->status = timeout ? DBTD__RUN_STATUS__RUN_FAILED : DBTD__RUN_STATUS__RUN_CANCELED;
		pb_set_str(&run->error, why);
		skip_pending(run);
	}
	free(why);
}

/* Decide the final status of a run whose runner is gone, and store it. */
static void
finish(struct active *a)
{
	struct runs *r = a->r;
	Dbtd__Run *run = a->run;
	int clean = WIFEXITED(a->wstatus) && WEXITSTATUS(a->wstatus) == 0;
	int failed = 0, canceled = 0, done = 1;
	int64_t now = now_ms();

	ev_timer_stop(r->loop, &a->timeout);
	ev_timer_stop(r->loop, &a->stop_timer);
	if (a->stop != STOP_NONE) {
		finish_stopped(a, now);
		goto out;
	}
	for (size_t i = 0; i < run->n_steps; i++) {
		Dbtd__Step *s = run->steps[i];
		if (s->status == DBTD__STEP_STATUS__STEP_RUNNING) {
			char *why = death_text(s, a->wstatus);
			pb_set_str(&s->error, why);
			s->status = DBTD__STEP_STATUS__STEP_FAILED;
			s->finished_at_ms = now;
			first_error(run, s->error);
			free(why);
		}
		if (s->status == DBTD__STEP_STATUS__STEP_FAILED)
			failed = 1;
		else if (s->status == DBTD__STEP_STATUS__STEP_CANCELED)
			canceled = 1;
		else if (s->status == DBTD__STEP_STATUS__STEP_PENDING && !failed && !canceled)
			done = 0;
	}
	if (failed) {
		run->status = DBTD__RUN_STATUS__RUN_FAILED;
	} else if (canceled) {
		/* a step canceled without dbtd's cancel: e.g. SIGINT from outside */
		run->status = DBTD__RUN_STATUS__RUN_CANCELED;
		first_error(run, "canceled: the run's processes were interrupted");
	} else if (done && clean) {
		run->status = DBTD__RUN_STATUS__RUN_COMPLETED;
	} else {
		char *why = WIFSIGNALED(a->wstatus)
			? xasprintf("the runner was killed by signal %d (%s) between steps",
			            WTERMSIG(a->wstatus), strsignal(WTERMSIG(a->wstatus)))
			: xasprintf("the runner exited with status %d before all steps ran",
			            WEXITSTATUS(a->wstatus));
		run->status = DBTD__RUN_STATUS__RUN_FAILED;
		first_error(run, why);
		free(why);
	}
	skip_pending(run);
out:
	run->finished_at_ms = now;
	run->runner_pid = 0;
	run->runner_start_time = 0;
	pb_set_str(&run->runner_boot_id, "");
	log_info("run %llu of job \"%s\" %s%s%s", (unsigned long long)run->id, run->job,
	         run_status_json(run->status), pb_str_set(run->error) ? ": " : "",
	         pb_str_set(run->error) ? run->error : "");
	save(r, run);
}

/* Release an active run's resources and unlink it. */
static void
active_free(struct active *a)
{
	struct runs *r = a->r;
	struct active **pa;

	ev_io_stop(r->loop, &a->io);
	ev_child_stop(r->loop, &a->child);
	ev_timer_stop(r->loop, &a->timeout);
	ev_timer_stop(r->loop, &a->stop_timer);
	if (a->fd >= 0)
		close(a->fd);
	for (pa = &r->active; *pa; pa = &(*pa)->next)
		if (*pa == a) {
			*pa = a->next;
			break;
		}
	if (a->workspace) {
		rm_rf(a->workspace);
		free(a->workspace);
	}
	frame_buf_free(&a->in);
	dbtd__run__free_unpacked(a->run, NULL);
	free(a->lock);
	free(a->stopped_by);
	free(a);
	r->running--;
}

/* The runner's side of the socketpair has data or closed. */
static void
runner_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct active *a = w->data;

	(void)revents;
	if (runner_read(a, RUNNER_READ_BUDGET))
		return;
	ev_io_stop(loop, &a->io);
	close(a->fd);
	a->fd = -1;
	if (a->exited) {
		struct runs *r = a->r;
		finish(a);
		active_free(a);
		pump(r);
	}
}

/* The runner exited. */
static void
runner_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct active *a = w->data;
	struct runs *r = a->r;

	(void)revents;
	ev_child_stop(loop, w);
	a->exited = 1;
	a->wstatus = w->rstatus;
	/* Nothing of the run may outlive its runner. */
	kill(-a->pid, SIGKILL);
	if (a->fd >= 0) {
		if (runner_read(a, RUNNER_READ_BUDGET))
			return; /* more may still come: finish at EOF */
		ev_io_stop(loop, &a->io);
		close(a->fd);
		a->fd = -1;
	}
	finish(a);
	active_free(a);
	pump(r);
}

/* The next stage of stopping a run: SIGTERM after SIGINT, SIGKILL after that. */
static void
stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct active *a = w->data;

	(void)revents;
	if (a->stop_stage == 1) {
		log_info("run %llu: still running %.0f s after SIGINT; sending SIGTERM",
		         (unsigned long long)a->run->id, STOP_GRACE_INT_S);
		kill(-a->pid, SIGTERM);
		a->stop_stage = 2;
		ev_timer_set(w, STOP_GRACE_TERM_S, 0.);
		ev_timer_start(loop, w);
	} else if (a->stop_stage == 2) {
		log_info("run %llu: still running after SIGTERM; sending SIGKILL",
		         (unsigned long long)a->run->id);
		kill(-a->pid, SIGKILL);
		a->stop_stage = 3;
	}
}

/* Begin stopping a run's processes: SIGINT to its whole process group. */
static void
begin_stop(struct active *a, enum stop_reason why)
{
	if (a->stop != STOP_NONE)
		return;
	a->stop = why;
	a->stop_step = 0;
	for (size_t i = 0; i < a->run->n_steps; i++)
		if (a->run->steps[i]->status == DBTD__STEP_STATUS__STEP_RUNNING)
			a->stop_step = a->run->steps[i]->index;
	if (a->stop_step == 0) /* between steps: the next one is the one stopped */
		for (size_t i = a->run->n_steps; i-- > 0;)
			if (a->run->steps[i]->status == DBTD__STEP_STATUS__STEP_PENDING)
				a->stop_step = a->run->steps[i]->index;
	kill(-a->pid, SIGINT);
	a->stop_stage = 1;
	ev_timer_set(&a->stop_timer, STOP_GRACE_INT_S, 0.);
	ev_timer_start(a->r->loop, &a->stop_timer);
}

/* The job's timeout expired. */
static void
timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct active *a = w->data;

	(void)loop; (void)revents;
	log_warn("run %llu of job \"%s\" timed out after %u s; stopping it",
	         (unsigned long long)a->run->id, a->run->job, a->timeout_s);
	begin_stop(a, STOP_TIMEOUT);
}

/* Read the job, environment and project a run needs. */
static int
load_context(struct runs *r, const Dbtd__Run *run, Dbtd__Job **job,
             Dbtd__Environment **env, Dbtd__Project **proj, char **why)
{
	int rc = store_obj_get(r->store, STORE_JOB, run->job_id, (ProtobufCMessage **)job);

	if (rc < 0) {
		*why = xasprintf("job \"%s\" was removed before the run started", run->job);
		return rc;
	}
	rc = store_obj_get(r->store, STORE_ENVIRONMENT, (*job)->env_id,
	                   (ProtobufCMessage **)env);
	if (rc < 0) {
		*why = xasprintf("environment \"%s\" was removed before the run started",
		                 (*job)->environment);
		return rc;
	}
	rc = store_obj_get(r->store, STORE_PROJECT, (*env)->project_id,
	                   (ProtobufCMessage **)proj);
	if (rc < 0)
		*why = xasprintf("project \"%s\" was removed before the run started",
		                 (*env)->project);
	return rc;
}

/* Mark a queued run Failed before it started, with a reason. */
static void
fail_unstarted(struct runs *r, Dbtd__Run *run, const char *why)
{
	run->status = DBTD__RUN_STATUS__RUN_FAILED;
	run->finished_at_ms = now_ms();
	for (size_t i = 0; i < run->n_steps; i++)
		run->steps[i]->status = DBTD__STEP_STATUS__STEP_SKIPPED;
	first_error(run, why);
	log_warn("run %llu of job \"%s\" failed to start: %s", (unsigned long long)run->id,
	         run->job, why);
	save(r, run);
}

/* Fork the runner of a queued run; the run becomes Running. */
static void
start_run(struct runs *r, struct queued *q)
{
	uint64_t id = q->id;
	Dbtd__Run *run = NULL;
	Dbtd__Job *job = NULL;
	Dbtd__Environment *env = NULL;
	Dbtd__Project *proj = NULL;
	struct active *a = NULL;
	char *why = NULL;
	int sv[2] = { -1, -1 }, rc;
	pid_t pid, ppid;

	rc = store_run_get(r->store, id, &run);
	if (rc < 0) {
		log_err("queued run %llu cannot be read: %s", (unsigned long long)id,
		        store_strerror(rc));
		return;
	}
	if (run->status != DBTD__RUN_STATUS__RUN_QUEUED)
		goto out;
	if (load_context(r, run, &job, &env, &proj, &why) < 0) {
		fail_unstarted(r, run, why ? why : "cannot read the run's job");
		goto out;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL || (a->workspace = xasprintf("%s/%llu", r->work_dir,
	                                           (unsigned long long)id)) == NULL) {
		fail_unstarted(r, run, "out of memory");
		goto out;
	}
	rm_rf(a->workspace);
	rc = mkdir_p(a->workspace, 0700);
	if (rc == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		rc = -errno;
	if (rc < 0) {
		why = xasprintf("cannot prepare workspace %s: %s", a->workspace, strerror(-rc));
		fail_unstarted(r, run, why);
		goto out;
	}
	run->status = DBTD__RUN_STATUS__RUN_RUNNING;
	run->started_at_ms = now_ms();
	pb_set_str(&run->waiting_for, "");
	ppid = getpid();
	pid = fork();
	if (pid < 0) {
		why = xasprintf("cannot fork a runner: %s", strerror(errno));
		run->status = DBTD__RUN_STATUS__RUN_QUEUED;
		fail_unstarted(r, run, why);
		goto out;
	}
	if (pid == 0) {
		struct runner_spec spec = {
			.run = run, .job = job, .env = env, .project = proj,
			.plugins = r->plugins, .workspace = a->workspace, .fd = sv[1],
			.dbtd_pid = ppid, .blob_dir = r->blob_dir,
		};
		setpgid(0, 0);
		close(sv[0]);
		cron_tz_reset(); /* dbt gets dbtd's TZ, not the last schedule's zone */
		r->runner(&spec);
	}
	setpgid(pid, pid); /* also here: no race with an early cancel */
	close(sv[1]);
	sv[1] = -1;
	set_nonblock_cloexec(sv[0]);
	a->r = r;
	a->run = run;
	run = NULL;
	a->pid = pid;
	a->fd = sv[0];
	sv[0] = -1;
	a->run->runner_pid = pid;
	{ /* what names the runner after pid is reused; left empty when unknown */
		char boot[PROCID_BOOT_ID_SIZE];
		uint64_t started;
		if (procid_of(pid, boot, &started) == 0 &&
		    pb_set_str(&a->run->runner_boot_id, boot) == 0)
			a->run->runner_start_time = started;
	}
	a->lock = q->lock;
	q->lock = NULL;
	a->timeout_s = job->timeout_s;
	frame_buf_init(&a->in);
	ev_io_init(&a->io, runner_io_cb, a->fd, EV_READ);
	ev_child_init(&a->child, runner_child_cb, pid, 0);
	ev_init(&a->stop_timer, stop_timer_cb);
	ev_init(&a->timeout, timeout_cb);
	a->io.data = a->child.data = a->stop_timer.data = a->timeout.data = a;
	ev_io_start(r->loop, &a->io);
	ev_child_start(r->loop, &a->child);
	if (a->timeout_s) {
		ev_timer_set(&a->timeout, (double)a->timeout_s, 0.);
		ev_timer_start(r->loop, &a->timeout);
	}
	a->next = r->active;
	r->active = a;
	r->running++;
	a = NULL;
	log_info("run %llu of job \"%s\" started (runner pid %d)", (unsigned long long)id,
	         r->active->run->job, (int)pid);
	save(r, r->active->run);
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (a) {
		if (a->workspace)
			rm_rf(a->workspace);
		free(a->workspace);
		free(a);
	}
	free(why);
	if (run)
		dbtd__run__free_unpacked(run, NULL);
	if (job)
		dbtd__job__free_unpacked(job, NULL);
	if (env)
		dbtd__environment__free_unpacked(env, NULL);
	if (proj)
		dbtd__project__free_unpacked(proj, NULL);
}

/* The active run that writes the DuckDB file lock, or NULL. */
static struct active *
lock_holder(struct runs *r, const char *lock)
{
	for (struct active *a = r->active; a; a = a->next)
		if (a->lock && strcmp(a->lock, lock) == 0)
			return a;
	return NULL;
}

/* Record what a queued run waits for (why is malloc'd; taken). */
static void
set_waiting(struct runs *r, struct queued *q, char *why)
{
	Dbtd__Run *run;

	if (why == NULL || (q->waiting && strcmp(q->waiting, why) == 0)) {
		free(why);
		return;
	}
	free(q->waiting);
	q->waiting = why;
	if (store_run_get(r->store, q->id, &run) < 0)
		return;
	pb_set_str(&run->waiting_for, why);
	save(r, run);
	dbtd__run__free_unpacked(run, NULL);
}

/*
 * Start queued runs in FIFO order while slots are free.  A run whose DuckDB
 * file is being written by a running run stays queued (DuckDB allows one
 * writing process per file) without holding up the runs behind it.
 */
static void
pump(struct runs *r)
{
	struct queued **pq = &r->queue, *q;
	char slot_text[64];

	while ((q = *pq) != NULL && !r->stopping) {
		struct active *holder;
		if (r->running >= r->slots) {
			/* the common case of a long queue: no allocation when nothing changed */
			snprintf(slot_text, sizeof(slot_text), "a free run slot (%u of %u in use)",
			         r->running, r->slots);
			if (q->waiting == NULL || strcmp(q->waiting, slot_text) != 0)
				set_waiting(r, q, strdup(slot_text));
		} else if (q->lock && (holder = lock_holder(r, q->lock)) != NULL) {
			set_waiting(r, q, xasprintf("run %llu (job \"%s\") to finish: both write %s",
			                            (unsigned long long)holder->run->id,
			                            holder->run->job, q->lock));
		} else {
			*pq = q->next;
			start_run(r, q);
			queued_free(q);
			continue;
		}
		pq = &q->next;
	}
}

int
runs_cancel(struct runs *r, uint64_t id, const char *by, struct err *e)
{
	struct active *a = find_active(r, id);
	struct queued **pq, *q;
	Dbtd__Run *run;
	int rc;

	if (a) {
		if (a->stop == STOP_NONE) {
			log_info("run %llu of job \"%s\": canceled by %s; stopping its processes",
			         (unsigned long long)id, a->run->job, by);
			a->stopped_by = strdup(by ? by : "");
			begin_stop(a, STOP_CANCEL);
		}
		return 0;
	}
	for (pq = &r->queue; (q = *pq) != NULL; pq = &q->next)
		if (q->id == id)
			break;
	rc = get_run(r, id, &run, e);
	if (rc < 0)
		return rc;
	if (q == NULL || run->status != DBTD__RUN_STATUS__RUN_QUEUED) {
		rc = err_set(e, -EBUSY, ERR_CONFLICT,
		             "run %llu is %s: only queued or running runs can be canceled",
		             (unsigned long long)id, run_status_json(run->status));
		dbtd__run__free_unpacked(run, NULL);
		return rc;
	}
	run->status = DBTD__RUN_STATUS__RUN_CANCELED;
	run->finished_at_ms = now_ms();
	pb_set_str(&run->waiting_for, "");
	{
		char *why = xasprintf("canceled by %s while queued", by ? by : "?");
		pb_set_str(&run->error, why ? why : "canceled while queued");
		free(why);
	}
	skip_pending(run);
	/* the reply says canceled: only once that is stored (else it stays queued) */
	rc = save_now(r, run, e);
	if (rc == 0) {
		log_info("run %llu of job \"%s\": canceled by %s while queued",
		         (unsigned long long)id, run->job, by);
		for (pq = &r->queue; *pq != q; pq = &(*pq)->next)
			;
		*pq = q->next;
		queued_free(q);
	}
	dbtd__run__free_unpacked(run, NULL);
	pump(r); /* runs behind it may now say something else */
	return rc;
}

/* Recovery: settle one run a previous dbtd left Queued or Running. */
static int
recover_one(void *arg, Dbtd__Run *run)
{
	struct runs *r = arg;
	int64_t now = now_ms();
	pid_t g = run->runner_pid;
	char *why = NULL;

	if (run->status == DBTD__RUN_STATUS__RUN_QUEUED) {
		enqueue(r, run);
		log_info("run %llu of job \"%s\" is queued again", (unsigned long long)run->id,
		         run->job);
		dbtd__run__free_unpacked(run, NULL);
		return 0;
	}
	/* the group is signalled only while its leader is provably the runner:
	 * after dbtd died the pid may be another process's, or from another boot */
	if (g > 1 && procid_leads_group(g, run->runner_boot_id, run->runner_start_time) == 1 &&
	    kill(-g, SIGKILL) == 0)
		log_info("run %llu: killed what was left of its processes (group %d)",
		         (unsigned long long)run->id, g);
	else if (g > 1 && (kill(-g, 0) == 0 || errno == EPERM))
		why = xasprintf("dbtd stopped while the run was running; its processes (group %d) "
		                "could not be proven to be the run's own and were left alone", g);
	for (size_t i = 0; i < run->n_steps; i++) {
		Dbtd__Step *s = run->steps[i];
		if (s->status == DBTD__STEP_STATUS__STEP_RUNNING) {
			s->status = DBTD__STEP_STATUS__STEP_FAILED;
			s->finished_at_ms = now;
			pb_set_str(&s->error, "dbtd stopped while the step was running");
		} else if (s->status == DBTD__STEP_STATUS__STEP_PENDING) {
			s->status = DBTD__STEP_STATUS__STEP_SKIPPED;
		}
	}
	run->status = DBTD__RUN_STATUS__RUN_FAILED;
	run->finished_at_ms = now;
	run->runner_pid = 0;
	run->runner_start_time = 0;
	pb_set_str(&run->runner_boot_id, "");
	pb_set_str(&run->error, why ? why : "dbtd stopped while the run was running");
	free(why);
	save(r, run);
	{
		char *ws = xasprintf("%s/%llu", r->work_dir, (unsigned long long)run->id);
		if (ws)
			rm_rf(ws);
		free(ws);
	}
	log_warn("run %llu of job \"%s\" failed: %s", (unsigned long long)run->id, run->job,
	         run->error);
	dbtd__run__free_unpacked(run, NULL);
	return 0;
}

int
runs_recover(struct runs *r)
{
	int rc = store_runs_active(r->store, recover_one, r);

	pump(r);
	return rc;
}

int
runs_new(struct runs **out, const struct runs_config *cfg)
{
	struct runs *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -ENOMEM;
	r->loop = cfg->loop;
	r->store = cfg->store;
	r->plugins = cfg->plugins;
	r->runner = cfg->runner ? cfg->runner : runner_main;
	r->work_dir = strdup(cfg->work_dir);
	r->blob_dir = strdup(cfg->blob_dir);
	r->slots = cfg->slots ? cfg->slots : 1;
	r->notes_tail = &r->notes;
	r->retry_s = RETRY_FIRST_S;
	ev_init(&r->retry, retry_cb);
	r->retry.data = r;
	if (r->work_dir == NULL || r->blob_dir == NULL) {
		free(r->work_dir);
		free(r->blob_dir);
		free(r);
		return -ENOMEM;
	}
	store_on_commit(r->store, commit_done, r);
	*out = r;
	return 0;
}

void
runs_shutdown(struct runs *r)
{
	if (r == NULL)
		return;
	r->stopping = 1;
	while (r->active) {
		struct active *a = r->active;
		int st = 0;
		kill(-a->pid, SIGKILL);
		waitpid(a->pid, &st, 0);
		a->exited = 1;
		a->wstatus = st;
		if (a->fd >= 0)
			runner_read(a, SIZE_MAX);
		for (size_t i = 0; i < a->run->n_steps; i++) {
			Dbtd__Step *s = a->run->steps[i];
			if (s->status != DBTD__STEP_STATUS__STEP_COMPLETED)
				first_error(a->run, "dbtd was stopped while the run was running");
			if (s->status != DBTD__STEP_STATUS__STEP_RUNNING)
				continue;
			s->status = DBTD__STEP_STATUS__STEP_FAILED;
			s->finished_at_ms = now_ms();
			pb_set_str(&s->error, "dbtd was stopped while the step was running");
		}
		finish(a);
		active_free(a);
	}
}

void
runs_free(struct runs *r)
{
	if (r == NULL)
		return;
	runs_shutdown(r);
	store_on_commit(r->store, NULL, NULL);
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
	while (r->queue) {
		struct queued *q = r->queue;
		r->queue = q->next;
		queued_free(q);
	}
	while (r->watches) {
		struct run_watch *w = r->watches;
		r->watches = w->next;
		free(w);
	}
	free(r->work_dir);
	free(r->blob_dir);
	free(r);
}
