/*
 * runs.c - the life of runs inside dbtd (see runs.h): creating them, the
 * queue and its slots, cancel, recovery after a restart, shutdown.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "pb.h"
#include "procid.h"
#include "runner.h"
#include "runs_int.h"
#include "store.h"
#include "util.h"

int
runs_is_final(Dbtd__RunStatus s)
{
	return s != DBTD__RUN_STATUS__RUN_QUEUED && s != DBTD__RUN_STATUS__RUN_RUNNING;
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
void
runs_queued_free(struct queued *q)
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
		               (unsigned long long)id, store_error(r->store, rc));
	return 0;
}

static struct active *find_active(struct runs *r, uint64_t id);

/* Remember that run id was created since the last commit. */
static int
note_created(struct runs *r, uint64_t id)
{
	if (r->n_created == r->cap_created) {
		size_t cap = r->cap_created ? r->cap_created * 2 : 16;
		uint64_t *p = realloc(r->created, cap * sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		r->created = p;
		r->cap_created = cap;
	}
	r->created[r->n_created++] = id;
	return 0;
}

int
runs_was_created(const struct runs *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_created; i++)
		if (r->created[i] == id)
			return 1;
	return 0;
}

void
runs_forget_created(struct runs *r, int rc)
{
	for (size_t i = 0; i < r->n_created; i++) {
		uint64_t id = r->created[i];
		struct active *a = find_active(r, id);
		struct queued **pq, *q;
		if (a) {
			kill(-a->pid, SIGKILL);
			log_err("run %llu of job \"%s\" was not stored (%s): its runner is stopped "
			        "and the run forgotten", (unsigned long long)id, a->run->job,
			        store_strerror(rc));
			runs_active_free(a);
			continue;
		}
		for (pq = &r->queue; (q = *pq) != NULL; pq = &q->next)
			if (q->id == id) {
				*pq = q->next;
				runs_queued_free(q);
				log_err("run %llu was not stored (%s): forgotten", (unsigned long long)id,
				        store_strerror(rc));
				break;
			}
	}
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
	if (rc < 0 && rc != -ENOENT)
		return err_set(e, rc, store_err_kind(rc), "cannot read environment \"%s\": %s",
		               job->environment, store_error(r->store, rc));
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
	/* a commit that loses it makes it forgotten (runs_forget_created) */
	if (rc == 0)
		rc = note_created(r, run->id);
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
	runs_pump(r);
	/* Report the state after the pump: Running when a slot was free. */
	rc = runs_get(r, id, out);
	if (rc < 0)
		return err_set(e, rc, store_err_kind(rc),
		               "cannot read run %llu back: %s", (unsigned long long)id,
		               store_error(r->store, rc));
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
		               "cannot read job \"%s\": %s", jobname, store_error(r->store, rc));
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
	if (rc < 0 && rc != -ENOENT) {
		err_set(e, rc, store_err_kind(rc), "cannot read job \"%s\" of run %llu: %s",
		        orig->job, (unsigned long long)id, store_error(r->store, rc));
		goto out;
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
	runs_save(r, run);
	dbtd__run__free_unpacked(run, NULL);
}

/*
 * Start queued runs in FIFO order while slots are free.  A run whose DuckDB
 * file is being written by a running run stays queued (DuckDB allows one
 * writing process per file) without holding up the runs behind it.
 */
void
runs_pump(struct runs *r)
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
			runs_fork(r, q);
			runs_queued_free(q);
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
			runs_begin_stop(a, STOP_CANCEL);
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
	runs_skip_pending(run);
	/* the reply says canceled: only once that is stored (else it stays queued) */
	rc = runs_save_now(r, run, e);
	if (rc == 0) {
		log_info("run %llu of job \"%s\": canceled by %s while queued",
		         (unsigned long long)id, run->job, by);
		for (pq = &r->queue; *pq != q; pq = &(*pq)->next)
			;
		*pq = q->next;
		runs_queued_free(q);
	}
	dbtd__run__free_unpacked(run, NULL);
	runs_pump(r); /* runs behind it may now say something else */
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
	runs_save(r, run);
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

	runs_pump(r);
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
	if (r->work_dir == NULL || r->blob_dir == NULL) {
		free(r->work_dir);
		free(r->blob_dir);
		free(r);
		return -ENOMEM;
	}
	runs_notify_init(r);
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
			runs_runner_read(a, SIZE_MAX);
		for (size_t i = 0; i < a->run->n_steps; i++) {
			Dbtd__Step *s = a->run->steps[i];
			if (s->status != DBTD__STEP_STATUS__STEP_COMPLETED)
				runs_first_error(a->run, "dbtd was stopped while the run was running");
			if (s->status != DBTD__STEP_STATUS__STEP_RUNNING)
				continue;
			s->status = DBTD__STEP_STATUS__STEP_FAILED;
			s->finished_at_ms = now_ms();
			pb_set_str(&s->error, "dbtd was stopped while the step was running");
		}
		runs_finish(a);
		runs_active_free(a);
	}
}

void
runs_free(struct runs *r)
{
	if (r == NULL)
		return;
	runs_shutdown(r);
	runs_notify_free(r);
	free(r->created);
	while (r->queue) {
		struct queued *q = r->queue;
		r->queue = q->next;
		runs_queued_free(q);
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
