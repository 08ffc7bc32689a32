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

#include "daemon.h"
#include "frame.h"
#include "log.h"
#include "names.h"
#include "pb.h"
#include "runner.h"
#include "runs.h"
#include "server.h"
#include "store.h"
#include "util.h"

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
};

/* A client following a run. */
struct watch {
	uint64_t run_id;
	struct client *c;
	struct watch *next;
};

/* A run waiting for a slot. */
struct queued {
	uint64_t id;
	struct queued *next;
};

struct runs {
	struct daemon *d;
	unsigned slots;
	unsigned running;
	struct active *active;
	struct queued *qhead, *qtail;
	struct watch *watches;
};

static void pump(struct runs *r);

/* Fill e with a code and message; returns rc for chaining. */
static int __attribute__((format(printf, 4, 5)))
set_err(struct runs_err *e, int rc, Dbtd__ErrorCode code, const char *fmt, ...)
{
	va_list ap;

	if (e) {
		e->code = code;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* True for final statuses. */
static int
is_final(Dbtd__RunStatus s)
{
	return s != DBTD__RUN_STATUS__RUN_QUEUED && s != DBTD__RUN_STATUS__RUN_RUNNING;
}

/* Send the run's state to every client watching it; final ends the stream. */
static void
notify(struct runs *r, const Dbtd__Run *run)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	struct watch **pw = &r->watches, *w;
	int final = is_final(run->status);

	resp.body_case = DBTD__RESPONSE__BODY_RUN;
	resp.run = (Dbtd__Run *)run;
	resp.end = final;
	while ((w = *pw) != NULL) {
		if (w->run_id != run->id) {
			pw = &w->next;
			continue;
		}
		client_send(w->c, &resp);
		if (final) {
			*pw = w->next;
			free(w);
		} else {
			pw = &w->next;
		}
	}
}

/* Commit the run's state, then tell watchers (committed before reported). */
static void
save(struct runs *r, const Dbtd__Run *run)
{
	int rc = store_run_put(r->d->store, run);

	if (rc < 0)
		log_err("run %llu: cannot store its state: %s",
		        (unsigned long long)run->id, store_strerror(rc));
	notify(r, run);
}

/* Append a run to the FIFO of runs waiting for a slot. */
static int
enqueue(struct runs *r, uint64_t id)
{
	struct queued *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return -ENOMEM;
	q->id = id;
	if (r->qtail)
		r->qtail->next = q;
	else
		r->qhead = q;
	r->qtail = q;
	return 0;
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
build_run(const Dbtd__Job *job, const Dbtd__Environment *env, Dbtd__Trigger trigger,
          const char *by, int skipped)
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
	run.trigger = trigger;
	run.branch = env->branch;
	run.created_at_ms = now_ms();
	run.triggered_by = (char *)(by ? by : "");
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

int
runs_trigger(struct runs *r, const char *jobname, Dbtd__Trigger trigger,
             const char *by, Dbtd__Run **out, struct runs_err *e)
{
	Dbtd__Job *job = NULL;
	Dbtd__Environment *env = NULL;
	Dbtd__Run *run = NULL;
	uint64_t busy;
	int rc;

	rc = store_obj_find(r->d->store, STORE_JOB, jobname, (ProtobufCMessage **)&job);
	if (rc == -ENOENT)
		return set_err(e, rc, DBTD__ERROR_CODE__ERROR_NOT_FOUND,
		               "no job named \"%s\"; see dbtctl job list", jobname);
	if (rc < 0)
		return set_err(e, rc, DBTD__ERROR_CODE__ERROR_INTERNAL,
		               "cannot read job \"%s\": %s", jobname, store_strerror(rc));
	rc = store_obj_get(r->d->store, STORE_ENVIRONMENT, job->env_id, (ProtobufCMessage **)&env);
	if (rc < 0) {
		set_err(e, rc, DBTD__ERROR_CODE__ERROR_FAILED,
		        "job \"%s\" runs in environment \"%s\", which no longer exists; "
		        "add it again or remove the job", jobname, job->environment);
		goto out;
	}
	busy = store_job_active_run(r->d->store, job->id);
	run = build_run(job, env, trigger, by, busy != 0);
	if (run == NULL) {
		rc = set_err(e, -ENOMEM, DBTD__ERROR_CODE__ERROR_INTERNAL, "out of memory");
		goto out;
	}
	if (busy) {
		Dbtd__Run *other = NULL;
		const char *st = "active";
		if (store_run_get(r->d->store, busy, &other) == 0)
			st = run_status_json(other->status);
		char *msg = xasprintf("job \"%s\" already has run %llu %s",
		                      jobname, (unsigned long long)busy, st);
		if (other)
			dbtd__run__free_unpacked(other, NULL);
		pb_set_str(&run->error, msg ? msg : "the job already has an active run");
		free(msg);
		run->finished_at_ms = run->created_at_ms;
	}
	rc = store_run_create(r->d->store, run);
	if (rc < 0) {
		set_err(e, rc, DBTD__ERROR_CODE__ERROR_INTERNAL,
		        "cannot store the new run: %s", store_strerror(rc));
		goto out;
	}
	log_info("run %llu of job \"%s\" created (%s, by %s)%s", (unsigned long long)run->id,
	         jobname, trigger_json(trigger), by ? by : "", busy ? ": skipped" : "");
	if (!busy) {
		rc = enqueue(r, run->id);
		if (rc < 0) {
			set_err(e, rc, DBTD__ERROR_CODE__ERROR_INTERNAL, "out of memory");
			goto out;
		}
		uint64_t id = run->id;
		pump(r);
		/* Report the state after the pump: Running when a slot was free. */
		dbtd__run__free_unpacked(run, NULL);
		run = NULL;
		rc = runs_get(r, id, &run);
		if (rc < 0)
			set_err(e, rc, DBTD__ERROR_CODE__ERROR_INTERNAL, "cannot read run %llu back: %s",
			        (unsigned long long)id, store_strerror(rc));
	}
out:
	if (job)
		dbtd__job__free_unpacked(job, NULL);
	if (env)
		dbtd__environment__free_unpacked(env, NULL);
	if (rc < 0 && run) {
		dbtd__run__free_unpacked(run, NULL);
		run = NULL;
	}
	*out = run;
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
	return store_run_get(r->d->store, id, out);
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
		int rc = store_log_append(a->r->d->store, run->id, ev->log->step,
		                          a->log_seq++, payload, plen);
		if (rc < 0)
			log_err("run %llu: cannot store log lines: %s",
			        (unsigned long long)run->id, store_strerror(rc));
		break;
	}
	default:
		break;
	}
	dbtd__runner_event__free_unpacked(ev, NULL);
}

/* Read what the runner sent; returns 0 at EOF, 1 to keep reading. */
static int
runner_read(struct active *a)
{
	const uint8_t *payload;
	size_t plen;
	ssize_t n;
	int rc;

	for (;;) {
		n = frame_buf_fill(&a->in, a->fd);
		if (n == -EAGAIN)
			return 1;
		if (n <= 0)
			return 0;
		while ((rc = frame_buf_next(&a->in, &payload, &plen)) == 1)
			runner_event(a, payload, plen);
		if (rc < 0) {
			log_err("run %llu: bad frame from the runner; ignoring the rest",
			        (unsigned long long)a->run->id);
			return 0;
		}
	}
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

/* Decide the final status of a run whose runner is gone, and store it. */
static void
finish(struct active *a)
{
	struct runs *r = a->r;
	Dbtd__Run *run = a->run;
	int clean = WIFEXITED(a->wstatus) && WEXITSTATUS(a->wstatus) == 0;
	int failed = 0, canceled = 0, done = 1;
	int64_t now = now_ms();

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
		else if (s->status == DBTD__STEP_STATUS__STEP_PENDING) {
			if (failed || canceled)
				s->status = DBTD__STEP_STATUS__STEP_SKIPPED;
			else
				done = 0;
		}
	}
	if (failed)
		run->status = DBTD__RUN_STATUS__RUN_FAILED;
	else if (canceled)
		run->status = DBTD__RUN_STATUS__RUN_CANCELED;
	else if (done && clean)
		run->status = DBTD__RUN_STATUS__RUN_COMPLETED;
	else {
		char *why = WIFSIGNALED(a->wstatus)
			? xasprintf("the runner was killed by signal %d (%s) between steps",
			            WTERMSIG(a->wstatus), strsignal(WTERMSIG(a->wstatus)))
			: xasprintf("the runner exited with status %d before all steps ran",
			            WEXITSTATUS(a->wstatus));
		run->status = DBTD__RUN_STATUS__RUN_FAILED;
		first_error(run, why);
		free(why);
		for (size_t i = 0; i < run->n_steps; i++)
			if (run->steps[i]->status == DBTD__STEP_STATUS__STEP_PENDING)
				run->steps[i]->status = DBTD__STEP_STATUS__STEP_SKIPPED;
	}
	run->finished_at_ms = now;
	run->runner_pid = 0;
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

	ev_io_stop(r->d->loop, &a->io);
	ev_child_stop(r->d->loop, &a->child);
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
	free(a);
	r->running--;
}

/* The runner's side of the socketpair has data or closed. */
static void
runner_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct active *a = w->data;

	(void)revents;
	if (runner_read(a))
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
		if (runner_read(a))
			return; /* more may still come: finish at EOF */
		ev_io_stop(loop, &a->io);
		close(a->fd);
		a->fd = -1;
	}
	finish(a);
	active_free(a);
	pump(r);
}

/* Read the job, environment and project a run needs. */
static int
load_context(struct runs *r, const Dbtd__Run *run, Dbtd__Job **job,
             Dbtd__Environment **env, Dbtd__Project **proj, char **why)
{
	int rc = store_obj_get(r->d->store, STORE_JOB, run->job_id, (ProtobufCMessage **)job);

	if (rc < 0) {
		*why = xasprintf("job \"%s\" was removed before the run started", run->job);
		return rc;
	}
	rc = store_obj_get(r->d->store, STORE_ENVIRONMENT, (*job)->env_id,
	                   (ProtobufCMessage **)env);
	if (rc < 0) {
		*why = xasprintf("environment \"%s\" was removed before the run started",
		                 (*job)->environment);
		return rc;
	}
	rc = store_obj_get(r->d->store, STORE_PROJECT, (*env)->project_id,
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
start_run(struct runs *r, uint64_t id)
{
	Dbtd__Run *run = NULL;
	Dbtd__Job *job = NULL;
	Dbtd__Environment *env = NULL;
	Dbtd__Project *proj = NULL;
	struct active *a = NULL;
	char *why = NULL;
	int sv[2] = { -1, -1 }, rc;
	pid_t pid;

	rc = store_run_get(r->d->store, id, &run);
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
	if (a == NULL || (a->workspace = xasprintf("%s/%llu", r->d->work_dir,
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
			.plugins = &r->d->plugins, .workspace = a->workspace, .fd = sv[1],
		};
		setpgid(0, 0);
		close(sv[0]);
		runner_main(&spec);
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
	frame_buf_init(&a->in);
	ev_io_init(&a->io, runner_io_cb, a->fd, EV_READ);
	ev_child_init(&a->child, runner_child_cb, pid, 0);
	a->io.data = a->child.data = a;
	ev_io_start(r->d->loop, &a->io);
	ev_child_start(r->d->loop, &a->child);
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

/* Start queued runs while slots are free (FIFO). */
static void
pump(struct runs *r)
{
	while (r->qhead && r->running < r->slots && !r->d->stopping) {
		struct queued *q = r->qhead;
		r->qhead = q->next;
		if (r->qhead == NULL)
			r->qtail = NULL;
		start_run(r, q->id);
		free(q);
	}
}

int
runs_watch(struct runs *r, uint64_t id, struct client *c)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Run *run;
	struct watch *w;
	int rc = runs_get(r, id, &run);

	if (rc < 0)
		return rc;
	if (!is_final(run->status)) {
		w = calloc(1, sizeof(*w));
		if (w == NULL) {
			dbtd__run__free_unpacked(run, NULL);
			return -ENOMEM;
		}
		w->run_id = id;
		w->c = c;
		w->next = r->watches;
		r->watches = w;
	}
	resp.body_case = DBTD__RESPONSE__BODY_RUN;
	resp.run = run;
	resp.end = is_final(run->status);
	client_send(c, &resp);
	dbtd__run__free_unpacked(run, NULL);
	return 0;
}

void
runs_forget_client(struct runs *r, struct client *c)
{
	struct watch **pw = &r->watches, *w;

	if (r == NULL)
		return;
	while ((w = *pw) != NULL) {
		if (w->c == c) {
			*pw = w->next;
			free(w);
		} else {
			pw = &w->next;
		}
	}
}

/* Recovery: settle one run a previous dbtd left Queued or Running. */
static int
recover_one(void *arg, Dbtd__Run *run)
{
	struct runs *r = arg;
	int64_t now = now_ms();

	if (run->status == DBTD__RUN_STATUS__RUN_QUEUED) {
		enqueue(r, run->id);
		log_info("run %llu of job \"%s\" is queued again", (unsigned long long)run->id,
		         run->job);
		dbtd__run__free_unpacked(run, NULL);
		return 0;
	}
	if (run->runner_pid > 1 && kill(-run->runner_pid, SIGKILL) == 0)
		log_info("run %llu: killed what was left of its processes (group %d)",
		         (unsigned long long)run->id, run->runner_pid);
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
	pb_set_str(&run->error, "dbtd stopped while the run was running");
	save(r, run);
	{
		char *ws = xasprintf("%s/%llu", r->d->work_dir, (unsigned long long)run->id);
		if (ws)
			rm_rf(ws);
		free(ws);
	}
	log_warn("run %llu of job \"%s\" failed: dbtd stopped while the run was running",
	         (unsigned long long)run->id, run->job);
	dbtd__run__free_unpacked(run, NULL);
	return 0;
}

int
runs_recover(struct runs *r)
{
	int rc = store_runs_active(r->d->store, recover_one, r);

	pump(r);
	return rc;
}

int
runs_new(struct runs **out, struct daemon *d, unsigned slots)
{
	struct runs *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -ENOMEM;
	r->d = d;
	r->slots = slots ? slots : 1;
	*out = r;
	return 0;
}

void
runs_free(struct runs *r)
{
	if (r == NULL)
		return;
	while (r->active) {
		struct active *a = r->active;
		int st = 0;
		kill(-a->pid, SIGKILL);
		waitpid(a->pid, &st, 0);
		a->exited = 1;
		a->wstatus = st;
		if (a->fd >= 0)
			runner_read(a);
		pb_set_str(&a->run->error, "dbtd was stopped while the run was running");
		for (size_t i = 0; i < a->run->n_steps; i++) {
			Dbtd__Step *s = a->run->steps[i];
			if (s->status != DBTD__STEP_STATUS__STEP_RUNNING)
				continue;
			s->status = DBTD__STEP_STATUS__STEP_FAILED;
			s->finished_at_ms = now_ms();
			pb_set_str(&s->error, "dbtd was stopped while the step was running");
		}
		finish(a);
		active_free(a);
	}
	while (r->qhead) {
		struct queued *q = r->qhead;
		r->qhead = q->next;
		free(q);
	}
	while (r->watches) {
		struct watch *w = r->watches;
		r->watches = w->next;
		free(w);
	}
	free(r);
}
