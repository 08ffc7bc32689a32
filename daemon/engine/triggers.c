/*
 * triggers.c - events that start runs: pull requests and pushes (forge
 * webhooks, polling) and pipeline events.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forge.h"
#include "log.h"
#include "names.h"
#include "pb.h"
#include "reqlimits.h"
#include "runs.h"
#include "store.h"
#include "triggers.h"
#include "util.h"

/* Append a run to t (taking it). */
static int
add_run(Dbtd__Triggered *t, Dbtd__Run *run)
{
	Dbtd__Run **p = realloc(t->runs, (t->n_runs + 1) * sizeof(*p));

	if (p == NULL) {
		dbtd__run__free_unpacked(run, NULL);
		return -ENOMEM;
	}
	t->runs = p;
	t->runs[t->n_runs++] = run;
	return 0;
}

/* Set t's message (formatted), replacing an earlier one. */
static void __attribute__((format(printf, 2, 3)))
set_message(Dbtd__Triggered *t, const char *fmt, ...)
{
	va_list ap;
	char *m = NULL;

	va_start(ap, fmt);
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	if (m == NULL)
		return;
	if (t->message != protobuf_c_empty_string)
		free(t->message);
	t->message = m;
}

void
triggers_free(Dbtd__Triggered *t)
{
	for (size_t i = 0; i < t->n_runs; i++)
		dbtd__run__free_unpacked(t->runs[i], NULL);
	free(t->runs);
	t->runs = NULL;
	t->n_runs = 0;
	if (t->message != protobuf_c_empty_string)
		free(t->message);
	t->message = (char *)protobuf_c_empty_string;
}

/* Start one run of job for an origin; a failure is logged and noted in t. */
static int
start_one(struct runs *r, const Dbtd__Job *job, const struct run_origin *o,
          Dbtd__Triggered *t)
{
	struct err e;
	Dbtd__Run *run = NULL;

	if (runs_start(r, job, o, &run, &e) < 0) {
		log_warn("%s run of job \"%s\" not started: %s", trigger_json(o->trigger),
		         job->name, e.msg);
		set_message(t, "job \"%s\": %s", job->name, e.msg);
		return -EIO;
	}
	return add_run(t, run);
}

/* A one-line summary of the runs in t, for the reply and the log. */
static void
summarise(Dbtd__Triggered *t, const char *what)
{
	char buf[1024];
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < t->n_runs && n < sizeof(buf) - 64; i++) {
		int w = snprintf(buf + n, sizeof(buf) - n, "%s%llu (job %s, %s)", i ? ", " : "",
		                 (unsigned long long)t->runs[i]->id, t->runs[i]->job,
		                 run_status_json(t->runs[i]->status));
		if (w < 0)
			break;
		n += (size_t)w;
	}
	set_message(t, "%s: started %zu run%s: %s", what, t->n_runs, t->n_runs == 1 ? "" : "s",
	            buf);
	log_info("%s", t->message);
}

int
triggers_repo_event(struct runs *r, const struct repo_event *ev, Dbtd__Triggered *out)
{
	Dbtd__JobType want = ev->trigger == DBTD__TRIGGER__TRIGGER_PR ? DBTD__JOB_TYPE__JOB_CI :
	                     DBTD__JOB_TYPE__JOB_MERGE;
	struct pb_list envs = { 0 }, jobs = { 0 };
	struct run_origin o = {
		.trigger = ev->trigger, .by = ev->by, .commit = ev->sha,
		.fetch_ref = ev->fetch_ref, .pr_number = ev->pr_number,
		.branch = ev->trigger == DBTD__TRIGGER__TRIGGER_PR ? ev->head_branch : ev->branch,
	};
	Dbtd__Project *proj = NULL;
	const char *pname = "?";
	size_t nenv = 0, before = out->n_runs;
	int rc;

	if (store_obj_get(runs_store(r), STORE_PROJECT, ev->project_id, (ProtobufCMessage **)&proj) == 0)
		pname = proj->name;
	rc = store_obj_list(runs_store(r), STORE_ENVIRONMENT, pb_list_push, &envs);
	if (rc == 0)
		rc = store_obj_list(runs_store(r), STORE_JOB, pb_list_push, &jobs);
	if (rc < 0) {
		set_message(out, "cannot read jobs: %s", store_error(runs_store(r), rc));
		goto out;
	}
	for (size_t i = 0; i < envs.n; i++) {
		const Dbtd__Environment *env = (const Dbtd__Environment *)envs.items[i];
		if (env->project_id != ev->project_id ||
		    (ev->branch != NULL && strcmp(env->branch, ev->branch) != 0))
			continue;
		nenv++;
		for (size_t k = 0; k < jobs.n; k++) {
			const Dbtd__Job *job = (const Dbtd__Job *)jobs.items[k];
			if (job->env_id == env->id && job->type == want)
				start_one(r, job, &o, out);
		}
	}
	if (nenv == 0) {
		set_message(out, "no environment of project \"%s\" is on branch \"%s\"; nothing to "
		            "run (add one with dbtctl env add ... --project %s --branch %s)", pname,
		            ev->branch ? ev->branch : "?", pname, ev->branch ? ev->branch : "?");
		rc = -ENOENT;
	} else if (out->n_runs == before && out->message == protobuf_c_empty_string) {
		set_message(out, "no %s job of project \"%s\" runs on branch \"%s\"; nothing to run "
		            "(add one with dbtctl job add ... --type %s)", job_type_json(want), pname,
		            ev->branch ? ev->branch : "(any)", job_type_json(want));
		rc = -ENOENT;
	} else {
		rc = (int)(out->n_runs - before);
	}
out:
	if (rc == -ENOENT && !ev->quiet)
		log_info("%s event for project \"%s\": %s", trigger_json(ev->trigger), pname,
		         out->message);
	pb_list_free(&envs);
	pb_list_free(&jobs);
	if (proj)
		dbtd__project__free_unpacked(proj, NULL);
	return rc;
}

/* Refuse an event: a line in dbtd's log and e filled; returns e's rc. */
static int __attribute__((format(printf, 5, 6)))
refuse(struct err *e, enum err_kind kind, const char *user, const char *forge,
       const char *fmt, ...)
{
	va_list ap;
	char msg[1024];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s webhook from %s refused, nothing triggered: %s", forge, user, msg);
	return err_set(e, -EINVAL, kind, "%s", msg);
}

/* The projects a webhook is for: the one named, or those whose repo it names. */
static int
webhook_projects(struct runs *r, const Dbtd__Webhook *w, const struct forge_event *ev,
                 struct pb_list *out)
{
	struct pb_list all = { 0 };
	int rc;

	if (pb_str_set(w->project)) {
		ProtobufCMessage *p;
		rc = store_obj_find(runs_store(r), STORE_PROJECT, w->project, &p);
		return rc < 0 ? rc : pb_list_push(out, p);
	}
	rc = store_obj_list(runs_store(r), STORE_PROJECT, pb_list_push, &all);
	for (size_t i = 0; rc == 0 && i < all.n; i++) {
		Dbtd__Project *p = (Dbtd__Project *)all.items[i];
		for (size_t k = 0; k < ev->n_repo_urls; k++)
			if (forge_url_match(p->repo, ev->repo_urls[k])) {
				rc = pb_list_push(out, all.items[i]);
				all.items[i] = NULL;
				break;
			}
	}
	for (size_t i = 0; i < all.n; i++)
		if (all.items[i])
			protobuf_c_message_free_unpacked(all.items[i], NULL);
	free(all.items);
	if (rc == 0 && out->n == 0)
		rc = -ENOENT;
	return rc;
}

int
triggers_webhook(struct runs *r, const char *user, const Dbtd__Webhook *w,
                 Dbtd__Triggered *out, struct err *e)
{
	struct forge_event ev;
	struct pb_list projects = { 0 };
	Dbtd__Triggered t = DBTD__TRIGGERED__INIT;
	char err[512], by[256], what[512];
	int github, rc, notfound = 0, status = 0;

	memset(&ev, 0, sizeof(ev));
	github = strcmp(w->forge, "github") == 0;
	if (!github && strcmp(w->forge, "gitlab") != 0)
		return refuse(e, ERR_INVALID, user, "unknown",
		              "unknown forge \"%s\": use github or gitlab", w->forge);
	rc = forge_parse(w->forge, w->event, w->payload.data, w->payload.len, &ev, err,
	                 sizeof(err));
	if (rc < 0) {
		status = refuse(e, ERR_INVALID, user, w->forge, "%s%s",
		       rc == -ENOTSUP ? "" : "malformed payload: ", err);
		goto out;
	}
	rc = webhook_projects(r, w, &ev, &projects);
	if (rc == -ENOENT) {
		if (pb_str_set(w->project))
			status = refuse(e, ERR_NOT_FOUND, user, w->forge,
			       "no project named \"%s\"; see dbtctl project list", w->project);
		else
			status = refuse(e, ERR_NOT_FOUND, user, w->forge,
			       "no project has repository %s (%s); name the project with --project "
			       "or check its --repo", ev.repo_name ? ev.repo_name : "?",
			       ev.n_repo_urls ? ev.repo_urls[0] : "no URL in the payload");
		goto out;
	}
	if (rc < 0) {
		status = refuse(e, store_err_kind(rc), user, w->forge, "cannot read projects: %s",
		       store_error(runs_store(r), rc));
		goto out;
	}
	/* Every project the delivery is for must have it signed with its secret. */
	for (size_t i = 0; i < projects.n; i++) {
		const Dbtd__Project *p = (const Dbtd__Project *)projects.items[i];
		if (!pb_str_set(p->webhook_secret)) {
			status = refuse(e, ERR_FAILED, user, w->forge,
			       "project \"%s\" has no webhook secret, so it accepts no webhooks; "
			       "add it with --webhook-secret-env VAR", p->name);
			goto out;
		}
		rc = github ? forge_verify_github(p->webhook_secret, w->payload.data,
		                                  w->payload.len, w->signature, err, sizeof(err))
		            : forge_verify_gitlab(p->webhook_secret, w->token, err, sizeof(err));
		if (rc < 0) {
			status = refuse(e, ERR_FAILED, user, w->forge,
			       "webhook for project \"%s\" refused: %s", p->name, err);
			goto out;
		}
	}
	if (ev.kind == FORGE_IGNORED) {
		set_message(&t, "%s %s: %s; nothing to run", w->forge, w->event,
		            ev.ignored_why ? ev.ignored_why : "not an event that starts runs");
		log_info("%s", t.message);
		*out = t;
		dbtd__triggered__init(&t);
		goto out;
	}
	snprintf(by, sizeof(by), "%s%s%s", w->forge, ev.sender ? ":" : "",
	         ev.sender ? ev.sender : "");
	for (size_t i = 0; i < projects.n; i++) {
		const Dbtd__Project *p = (const Dbtd__Project *)projects.items[i];
		struct repo_event re = {
			.trigger = ev.kind == FORGE_PR ? DBTD__TRIGGER__TRIGGER_PR :
			                                 DBTD__TRIGGER__TRIGGER_MERGE,
			.project_id = p->id, .branch = ev.branch, .head_branch = ev.head_branch,
			.sha = ev.sha, .fetch_ref = ev.head_ref, .pr_number = ev.pr_number, .by = by,
		};
		rc = triggers_repo_event(r, &re, &t);
		if (rc == -ENOENT)
			notfound++;
	}
	if (t.n_runs == 0) {
		status = refuse(e, notfound ? ERR_NOT_FOUND : ERR_FAILED, user, w->forge, "%s",
		       pb_str_set(t.message) ? t.message : "no run started");
		goto out;
	}
	if (ev.kind == FORGE_PR)
		snprintf(what, sizeof(what), "%s %s: pull request #%u (%s -> %s, %.12s)", w->forge,
		         w->event, ev.pr_number, ev.head_branch ? ev.head_branch : "?",
		         ev.branch ? ev.branch : "?", ev.sha ? ev.sha : "?");
	else
		snprintf(what, sizeof(what), "%s %s: %s moved to %.12s", w->forge, w->event,
		         ev.branch ? ev.branch : "?", ev.sha ? ev.sha : "?");
	summarise(&t, what);
	*out = t;
	dbtd__triggered__init(&t);
out:
	triggers_free(&t);
	pb_list_free(&projects);
	forge_event_free(&ev);
	return status;
}

int
triggers_pipeline(struct runs *r, const char *user, const Dbtd__PipelineEvent *p,
                  Dbtd__Triggered *out, struct err *e)
{
	Dbtd__Triggered t = DBTD__TRIGGERED__INIT;
	struct pb_list jobs = { 0 };
	char by[300], what[300];
	int rc, status = 0;

	if (!pb_str_set(p->name) || strlen(p->name) > REQ_NAME_MAX)
		return err_set(e, -EINVAL, ERR_INVALID,
		               "a pipeline event needs the pipeline's name (at most %d characters)",
		               REQ_NAME_MAX);
	snprintf(by, sizeof(by), "pipeline:%s", p->name);
	rc = store_obj_list(runs_store(r), STORE_JOB, pb_list_push, &jobs);
	if (rc < 0) {
		status = err_set(e, rc, store_err_kind(rc), "cannot read jobs: %s",
		                 store_error(runs_store(r), rc));
		goto out;
	}
	for (size_t i = 0; i < jobs.n; i++) {
		const Dbtd__Job *job = (const Dbtd__Job *)jobs.items[i];
		struct run_origin o = { .trigger = DBTD__TRIGGER__TRIGGER_PIPELINE, .by = by };
		if (strcmp(job->on_pipeline, p->name) == 0)
			start_one(r, job, &o, &t);
	}
	if (t.n_runs == 0) {
		if (!pb_str_set(t.message))
			set_message(&t, "no job listens to pipeline \"%s\"; add one with dbtctl job add "
			            "... --on-pipeline %s", p->name, p->name);
		log_info("pipeline \"%s\" finished (reported by %s): %s", p->name, user,
		         t.message);
		status = err_set(e, -ENOENT, ERR_NOT_FOUND, "%s", t.message);
		goto out;
	}
	snprintf(what, sizeof(what), "pipeline \"%s\" finished (reported by %s)", p->name,
	         user);
	summarise(&t, what);
	*out = t;
	dbtd__triggered__init(&t);
out:
	triggers_free(&t);
	pb_list_free(&jobs);
	return status;
}
