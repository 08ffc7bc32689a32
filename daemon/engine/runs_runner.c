/*
 * runs_runner.c - the runner process of each run: forking it, turning its
 * events into the run's state, stopping it (cancel, timeout) and deciding
 * how the run ended (see runs.h).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cron.h"
#include "fdlimit.h"
#include "log.h"
#include "names.h"
#include "pb.h"
#include "procid.h"
#include "runner.h"
#include "runs_int.h"
#include "store.h"
#include "util.h"

#define STOP_GRACE_INT_S 4.0   /* SIGINT, then SIGTERM after this ... */
#define STOP_GRACE_TERM_S 3.0  /* ... then SIGKILL after this: stopped within 10 s */

/* The step with 1-based index i, or NULL. */
static Dbtd__Step *
step_at(Dbtd__Run *run, uint32_t i)
{
	return i >= 1 && i <= run->n_steps ? run->steps[i - 1] : NULL;
}

/* Set the run's error summary unless one is set already. */
void
runs_first_error(Dbtd__Run *run, const char *msg)
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
		runs_save(a->r, run);
		break;
	case DBTD__RUNNER_EVENT__BODY_STEP_FINISHED:
		s = step_at(run, ev->step_finished->index);
		if (s == NULL)
			break;
		s->status = ev->step_finished->status;
		if (s->status == DBTD__STEP_STATUS__STEP_SKIPPED) {
			runs_save(a->r, run); /* never started: no times */
			break;
		}
		s->finished_at_ms = ev->step_finished->finished_at_ms;
		if (!s->started_at_ms)
			s->started_at_ms = s->finished_at_ms;
		pb_set_str(&s->error, ev->step_finished->error);
		if (s->status == DBTD__STEP_STATUS__STEP_FAILED)
			runs_first_error(run, s->error);
		runs_loss_note(a, s->index); /* the log's last line: what it lost */
		runs_save(a->r, run);
		break;
	case DBTD__RUNNER_EVENT__BODY_OUTPUT:
		if (strcmp(ev->output->key, "run.commit_sha") == 0) {
			pb_set_str(&run->commit_sha, ev->output->value);
			runs_save(a->r, run);
		}
		break;
	case DBTD__RUNNER_EVENT__BODY_LOG: {
		/* a line marking lost lines before these goes under mark_seq */
		uint32_t mark_seq = a->log_seq++, seq = a->log_seq++;
		int rc = store_log_append(a->r->store, run->id, ev->log->step, seq,
		                          ev->log->data.data, ev->log->data.len);
		if (rc == 0)
			runs_loss_mark(a, ev->log->step, mark_seq);
		runs_loss_chunk(a, ev->log->step, ev->log->data.data, ev->log->data.len, rc);
		if (rc == 0)
			runs_notify_log(a->r, run->id, ev->log->step, seq,
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
		runs_notify(a->r, run, 0); /* shown live; stored with the step's next change */
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
int
runs_runner_read(struct active *a, size_t budget)
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
void
runs_skip_pending(Dbtd__Run *run)
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
		runs_skip_pending(run);
	}
	free(why);
}

/* Decide the final status of a run whose runner is gone, and store it. */
void
runs_finish(struct active *a)
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
			runs_first_error(run, s->error);
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
		runs_first_error(run, "canceled: the run's processes were interrupted");
	} else if (done && clean) {
		run->status = DBTD__RUN_STATUS__RUN_COMPLETED;
	} else {
		char *why = WIFSIGNALED(a->wstatus)
			? xasprintf("the runner was killed by signal %d (%s) between steps",
			            WTERMSIG(a->wstatus), strsignal(WTERMSIG(a->wstatus)))
			: xasprintf("the runner exited with status %d before all steps ran",
			            WEXITSTATUS(a->wstatus));
		run->status = DBTD__RUN_STATUS__RUN_FAILED;
		runs_first_error(run, why);
		free(why);
	}
	runs_skip_pending(run);
out:
	runs_loss_finish(a);
	run->finished_at_ms = now;
	run->runner_pid = 0;
	run->runner_start_time = 0;
	pb_set_str(&run->runner_boot_id, "");
	log_info("run %llu of job \"%s\" %s%s%s", (unsigned long long)run->id, run->job,
	         run_status_json(run->status), pb_str_set(run->error) ? ": " : "",
	         pb_str_set(run->error) ? run->error : "");
	runs_save(r, run);
}

/* Release an active run's resources and unlink it. */
void
runs_active_free(struct active *a)
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
	free(a->loss);
	free(a);
	r->running--;
}

/* The runner's side of the socketpair has data or closed. */
static void
runner_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct active *a = w->data;

	(void)revents;
	if (runs_runner_read(a, RUNNER_READ_BUDGET))
		return;
	ev_io_stop(loop, &a->io);
	close(a->fd);
	a->fd = -1;
	if (a->exited) {
		struct runs *r = a->r;
		runs_finish(a);
		runs_active_free(a);
		runs_pump(r);
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
		if (runs_runner_read(a, RUNNER_READ_BUDGET))
			return; /* more may still come: finish at EOF */
		ev_io_stop(loop, &a->io);
		close(a->fd);
		a->fd = -1;
	}
	runs_finish(a);
	runs_active_free(a);
	runs_pump(r);
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
void
runs_begin_stop(struct active *a, enum stop_reason why)
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
	runs_begin_stop(a, STOP_TIMEOUT);
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
	runs_first_error(run, why);
	log_warn("run %llu of job \"%s\" failed to start: %s", (unsigned long long)run->id,
	         run->job, why);
	runs_save(r, run);
}

/* Fork the runner of a queued run; the run becomes Running. */
void
runs_fork(struct runs *r, struct queued *q)
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
	rc = rm_rf(a->workspace); /* other failures show in mkdir or in the clone */
	if (rc == 0 || !fdlimit_exhausted(rc))
		rc = mkdir_p(a->workspace, 0700);
	if (rc == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		rc = -errno;
	if (rc < 0 && fdlimit_exhausted(rc)) {
		/* the workspace is not at fault: say what is, and what to do */
		char full[128];
		why = xasprintf("%s, so the run could not start; close idle clients or wait for "
		                "runs to end and run the job again; if this recurs, %s",
		                fdlimit_describe(rc, full, sizeof(full)), fdlimit_advice(rc));
		fail_unstarted(r, run, why);
		goto out;
	}
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
	runs_save(r, r->active->run);
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
