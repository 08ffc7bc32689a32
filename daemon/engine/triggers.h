/*
 * triggers.h - events that start runs of the jobs listening for them: pull
 * requests and pushes (from forge webhooks or from polling), pipeline
 * events.  Schedules are in scheduler.c; Run Now, API and Re-run in
 * dispatch.c / runs.c.
 */
#ifndef DBTD_TRIGGERS_H
#define DBTD_TRIGGERS_H

#include <stdint.h>

#include "dbtd.pb-c.h"
#include "err.h"

struct runs;

/* A change in a project's repository. */
struct repo_event {
	Dbtd__Trigger trigger;   /* PR: ci jobs; MERGE: merge jobs */
	uint64_t project_id;
	const char *branch;      /* PR: the target branch (NULL: any); MERGE: the branch moved */
	const char *head_branch; /* PR: the branch the change comes from */
	const char *sha;         /* the commit to build */
	const char *fetch_ref;   /* PR: the ref holding sha (refs/pull/N/head) */
	uint32_t pr_number;
	const char *by;          /* the event source, for triggered_by */
	int quiet;               /* do not log "nothing listens" (polling sees every branch) */
};

/*
 * triggers_repo_event - start a run of every job the event concerns (PR:
 * jobs of type ci, MERGE: jobs of type merge, in an environment of the
 * project on ev->branch).  out->runs gets the runs (owned by out); out->message
 * says what happened.  Returns the number of runs, or -ENOENT when no job
 * listens (out->message says which kind of job or environment is missing),
 * or another -errno.
 */
int triggers_repo_event(struct runs *r, const struct repo_event *ev, Dbtd__Triggered *out);

/* triggers_free - free what triggers_repo_event put in t (not t itself). */
void triggers_free(Dbtd__Triggered *t);

/*
 * triggers_webhook - a forge's webhook delivery, sent by local user `user`:
 * verify it, then start the runs it asks for.  0 with *out filled (what
 * started and a sentence; free with triggers_free), or -errno with e filled
 * (the refusal is logged).
 */
int triggers_webhook(struct runs *r, const char *user, const Dbtd__Webhook *w,
                     Dbtd__Triggered *out, struct err *e);

/*
 * triggers_pipeline - a pipeline finished: run the jobs added
 * --on-pipeline NAME.  Results as for triggers_webhook.
 */
int triggers_pipeline(struct runs *r, const char *user, const Dbtd__PipelineEvent *p,
                      Dbtd__Triggered *out, struct err *e);

#endif /* DBTD_TRIGGERS_H */
