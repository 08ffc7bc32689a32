/* runner.c - the process dbtd forks per run: executes its steps in order. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "collect.h"
#include "frame.h"
#include "host.h"
#include "lineage.h"
#include "names.h"
#include "pb.h"
#include "runner.h"
#include "util.h"

static volatile sig_atomic_t cancel_flag;

/* SIGINT / SIGTERM: the run is being canceled; steps see it. */
static void
on_cancel(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

#define ORPHAN_GRACE_S 5 /* after dbtd dies: SIGINT to the run, SIGKILL after this */

/* SIGHUP (dbtd died: PR_SET_PDEATHSIG): interrupt the whole run. */
static void
on_orphaned(int sig)
{
	(void)sig;
	cancel_flag = 1;
	kill(0, SIGINT);
	alarm(ORPHAN_GRACE_S);
}

/* SIGALRM after on_orphaned: nothing of the run may outlive the grace. */
static void
on_orphan_grace(int sig)
{
	(void)sig;
	kill(0, SIGKILL);
}

/*
 * Set signal dispositions and the mask a runner needs (libev's are gone),
 * and make dbtd's death stop the run: no process of a run outlives dbtd
 * for long.
 */
static void
runner_signals(pid_t dbtd_pid)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_cancel;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = on_orphaned;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_orphan_grace;
	sigaction(SIGALRM, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGHUP);
	if (getppid() != dbtd_pid) /* dbtd died before prctl */
		raise(SIGHUP);
}

/* Add a numeric run parameter. */
static void
param_uint(struct host_run *hr, const char *key, unsigned long long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", v);
	host_param_add(hr, key, buf);
}

/* The run parameters plugins read through host->param. */
static void
runner_params(struct host_run *hr, const struct runner_spec *sp)
{
	const Dbtd__Destination *d = sp->env->destination;
	char *vars = NULL;
	size_t vlen = 0;
	FILE *f;

	param_uint(hr, "run.id", sp->run->id);
	host_param_add(hr, "job.name", sp->job->name);
	host_param_add(hr, "project.name", sp->project->name);
	host_param_add(hr, "project.repo", sp->project->repo);
	host_param_add(hr, "project.subdir", sp->project->subdir);
	host_param_add(hr, "env.name", sp->env->name);
	host_param_add(hr, "env.branch", sp->env->branch);
	/* The branch and commit this run builds (a PR's head, a pushed commit). */
	host_param_add(hr, "run.branch", sp->run->branch);
	host_param_add(hr, "run.commit", sp->run->commit_sha);
	host_param_add(hr, "run.fetch_ref", sp->run->fetch_ref);
	if (sp->run->pr_number)
		param_uint(hr, "run.pr_number", sp->run->pr_number);
	host_param_add(hr, "env.dbt", sp->env->dbt_path);
	f = open_memstream(&vars, &vlen);
	if (f) {
		for (size_t i = 0; i < sp->env->n_env; i++)
			fprintf(f, "%s=%s\n", sp->env->env[i]->key, sp->env->env[i]->value);
		fclose(f);
		host_param_add(hr, "env.vars", vars);
		free(vars);
	}
	if (d == NULL)
		return;
	host_param_add(hr, "dest.type", d->type);
	host_param_add(hr, "dest.path", d->path);
	host_param_add(hr, "dest.host", d->host);
	if (d->port)
		param_uint(hr, "dest.port", d->port);
	host_param_add(hr, "dest.user", d->user);
	host_param_add(hr, "dest.dbname", d->dbname);
	if (sp->run->pr_number) {
		/* CI never touches production tables: <schema>_pr_<number>. */
		char *pr_schema = xasprintf("%s_pr_%u", d->schema, sp->run->pr_number);
		host_param_add(hr, "dest.schema", pr_schema ? pr_schema : "");
		free(pr_schema);
	} else {
		host_param_add(hr, "dest.schema", d->schema);
	}
	if (d->threads)
		param_uint(hr, "dest.threads", d->threads);
	if (pb_str_set(d->password)) {
		host_param_add(hr, "secret.dest.password", d->password);
		host_secret_add(hr, "secret.dest.password", d->password);
	}
	host_secret_add(hr, "the project's webhook secret", sp->project->webhook_secret);
}

/* Tell dbtd a step started. */
static void
send_started(struct host_run *hr, uint32_t index)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__Step s = DBTD__STEP__INIT;

	s.index = index;
	s.status = DBTD__STEP_STATUS__STEP_RUNNING;
	s.started_at_ms = now_ms();
	ev.body_case = DBTD__RUNNER_EVENT__BODY_STEP_STARTED;
	ev.step_started = &s;
	host_send(hr, &ev);
}

/* Tell dbtd a step finished. */
static void
send_finished(struct host_run *hr, uint32_t index, Dbtd__StepStatus st, const char *error)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__Step s = DBTD__STEP__INIT;

	host_flush(hr);
	s.index = index;
	s.status = st;
	s.finished_at_ms = now_ms();
	s.error = (char *)(error ? error : "");
	ev.body_case = DBTD__RUNNER_EVENT__BODY_STEP_FINISHED;
	ev.step_finished = &s;
	host_send(hr, &ev);
}

/* After the last step ran: keep the files dbt wrote, logging in that step's log. */
static void
keep_artifacts(dbtd_step_ctx *ctx, const struct runner_spec *sp)
{
	struct host_run *hr = ctx->hr;
	const char *dir = NULL;
	int n;

	for (size_t i = hr->noutputs; i-- > 0 && dir == NULL;)
		if (strcmp(hr->outputs[i].key, "run.project_dir") == 0)
			dir = hr->outputs[i].value;
	if (dir == NULL)
		return; /* the clone never got that far: nothing was written */
	n = collect_artifacts(ctx, dir, sp->blob_dir);
	if (n < 0)
		host_log_text(ctx, "the files dbt wrote could not be kept: %s", strerror(-n));
	else
		host_log_text(ctx, "kept %d file%s dbt wrote (target/, logs/)", n, n == 1 ? "" : "s");
	host_flush(hr);
}

/* A plugin's per-run state, created by its init on first use. */
struct plugin_state {
	const struct plugin *p;
	void *data;
	int inited;
};

/*
 * Run one step through its plugin; returns its final status.  When it ends
 * the run's dbt work (the last step, or the first one that did not
 * complete) the files dbt wrote are kept before the step's log ends, once
 * per run (*kept).
 */
static Dbtd__StepStatus
run_step(struct host_run *hr, const struct runner_spec *sp, const Dbtd__Step *step,
         int last, int *kept, struct plugin_state *ps, size_t nps, char **error)
{
	const struct dbtd_host *host = host_table();
	dbtd_step_ctx ctx = { .hr = hr, .step = step, .error = NULL };
	struct plugin_state *st = NULL;
	Dbtd__StepStatus result = DBTD__STEP_STATUS__STEP_FAILED;
	int64_t t0;
	char dur[32];
	int rc;

	for (size_t i = 0; i < nps; i++)
		if (strcmp(ps[i].p->desc->type, step->type) == 0)
			st = &ps[i];
	if (st == NULL) {
		*error = xasprintf("no step plugin of type \"%s\" is loaded; see dbtctl plugin list",
		                   step->type);
		host_log_text(&ctx, "%s", *error ? *error : "no plugin");
		return DBTD__STEP_STATUS__STEP_FAILED;
	}
	if (!st->inited && st->p->desc->init) {
		rc = st->p->desc->init(host, &ctx, &st->data);
		if (rc != DBTD_STEP_OK) {
			*error = ctx.error ? ctx.error
			                   : xasprintf("step plugin \"%s\" failed to initialise", step->type);
			return DBTD__STEP_STATUS__STEP_FAILED;
		}
	}
	st->inited = 1;
	t0 = now_ms();
	rc = st->p->desc->run(host, &ctx, st->data);
	*error = ctx.error;
	if (rc == DBTD_STEP_OK)
		result = DBTD__STEP_STATUS__STEP_COMPLETED;
	else if (rc == DBTD_STEP_CANCELED || cancel_flag)
		result = DBTD__STEP_STATUS__STEP_CANCELED;
	else if (*error == NULL)
		*error = xasprintf("step %u (%s) failed", step->index, step->name);
	format_duration(now_ms() - t0, dur, sizeof(dur));
	if (!*kept && (last || result != DBTD__STEP_STATUS__STEP_COMPLETED)) {
		keep_artifacts(&ctx, sp);
		*kept = 1;
	}
	host_log_text(&ctx, "%s %s after %s", step->name, step_status_json(result), dur);
	return result;
}

/* True for a dbt step whose command writes target/manifest.json. */
static int
writes_manifest(const Dbtd__Step *step)
{
	const char *c = step->command;

	if (strcmp(step->type, "dbt") != 0)
		return 0;
	c += strspn(c, " \t");
	if (strncmp(c, "dbt", 3) == 0)
		c += 3;
	c += strspn(c, " \t");
	return strncmp(c, "deps", 4) != 0 && strncmp(c, "clean", 5) != 0 &&
	       strncmp(c, "debug", 5) != 0 && strncmp(c, "init", 4) != 0;
}

/*
 * After a dbt step (also one that failed or was canceled): read the
 * manifest and run results it left and send the run's lineage graph; the
 * statuses of earlier steps' nodes carry over.  A manifest that cannot be
 * read sends the reason instead; it never fails the run.
 */
static void
send_lineage(struct host_run *hr, const Dbtd__Step *step, Dbtd__Lineage **graph)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__Lineage empty = DBTD__LINEAGE__INIT, *l = NULL;
	const char *dir = NULL;
	char *target = NULL, *why = NULL;

	for (size_t i = hr->noutputs; i-- > 0 && dir == NULL;)
		if (strcmp(hr->outputs[i].key, "run.project_dir") == 0)
			dir = hr->outputs[i].value;
	if (dir == NULL)
		return;
	target = xasprintf("%s/target", dir);
	if (target && lineage_read(target, &l, &why) == 0) {
		if (*graph)
			lineage_merge_status(l, *graph);
		l->step = step->index;
		ev.lineage = l;
	} else {
		empty.error = why ? why : (char *)"cannot read target/manifest.json";
		empty.step = step->index;
		ev.lineage = *graph ? *graph : &empty; /* keep the last good graph */
	}
	ev.body_case = DBTD__RUNNER_EVENT__BODY_LINEAGE;
	if (ev.lineage == l && dbtd__runner_event__get_packed_size(&ev) > FRAME_MAX) {
		/* too large for dbtd to take: say so rather than lose it unnoticed */
		free(why);
		why = xasprintf("the lineage graph of step %u (%zu nodes, %zu MiB) is larger "
		                "than the %u MiB dbtd keeps; target/manifest.json is among the "
		                "run's artifacts", step->index, l->n_nodes,
		                dbtd__lineage__get_packed_size(l) >> 20, FRAME_MAX >> 20);
		empty.error = why ? why : (char *)"the lineage graph is too large to keep";
		empty.step = step->index;
		ev.lineage = &empty;
	}
	host_flush(hr);
	if (ev.lineage != *graph)
		host_send(hr, &ev);
	if (l) {
		if (*graph)
			dbtd__lineage__free_unpacked(*graph, NULL);
		*graph = l;
	}
	free(why);
	free(target);
}

/* True when step is one of a plugin that asked to run after a failed step. */
static int
runs_always(const struct runner_spec *sp, const Dbtd__Step *step)
{
	const struct plugin *p = plugins_find(sp->plugins, step->type);

	return p != NULL && (plugin_flags(p) & DBTD_STEP_RUN_ALWAYS);
}

/* A step failed: tell the steps that still run (run.status and friends). */
static void
note_failure(struct host_run *hr, const Dbtd__Step *step, const char *error)
{
	host_param_add(hr, "run.status", "failed");
	host_param_add(hr, "run.failed_step", step->name);
	host_param_add(hr, "run.error", error ? error : "");
}

void
runner_main(const struct runner_spec *sp)
{
	struct host_run hr;
	struct plugin_state *ps;
	Dbtd__Lineage *graph = NULL;
	size_t nps = sp->plugins->n;
	int null, failed = 0, kept = 0;

	runner_signals(sp->dbtd_pid);
	close_fds_from(3, sp->fd);
	null = open("/dev/null", O_RDONLY);
	if (null >= 0 && null != 0) {
		dup2(null, 0);
		close(null);
	}
	memset(&hr, 0, sizeof(hr));
	hr.fd = sp->fd;
	hr.workspace = sp->workspace;
	hr.cancel = &cancel_flag;
	runner_params(&hr, sp);
	host_param_add(&hr, "run.status", "running");
	ps = calloc(nps + 1, sizeof(*ps));
	if (ps == NULL)
		_exit(70);
	for (size_t i = 0; i < nps; i++)
		ps[i].p = &sp->plugins->items[i];

	for (size_t i = 0; i < sp->run->n_steps; i++) {
		const Dbtd__Step *step = sp->run->steps[i];
		Dbtd__StepStatus st;
		char *error = NULL;

		if (cancel_flag) {
			send_finished(&hr, step->index, DBTD__STEP_STATUS__STEP_CANCELED, NULL);
			break;
		}
		/* after a failure only steps of DBTD_STEP_RUN_ALWAYS plugins run */
		if (failed && !runs_always(sp, step)) {
			send_finished(&hr, step->index, DBTD__STEP_STATUS__STEP_SKIPPED, NULL);
			continue;
		}
		send_started(&hr, step->index);
		st = run_step(&hr, sp, step, i + 1 == sp->run->n_steps, &kept, ps, nps, &error);
		send_finished(&hr, step->index, st, error);
		if (st == DBTD__STEP_STATUS__STEP_FAILED && !failed && !cancel_flag) {
			failed = 1;
			note_failure(&hr, step, error);
		}
		free(error);
		if (writes_manifest(step))
			send_lineage(&hr, step, &graph);
		if (st == DBTD__STEP_STATUS__STEP_CANCELED ||
		    (st == DBTD__STEP_STATUS__STEP_FAILED && cancel_flag))
			break; /* nothing runs after a cancel */
	}
	if (graph)
		dbtd__lineage__free_unpacked(graph, NULL);
	for (size_t i = 0; i < nps; i++)
		if (ps[i].inited && ps[i].p->desc->fini)
			ps[i].p->desc->fini(ps[i].data);
	host_flush(&hr);
	rm_rf(sp->workspace);
	_exit(0);
}
