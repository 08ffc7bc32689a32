/*
 * runs.h - the life of runs inside dbtd: creating them (Queued or
 * Skipped), run slots, forking a runner per run, turning runner events into
 * stored state, finishing runs, and pushing changes to watching clients.
 */
#ifndef DBTD_RUNS_H
#define DBTD_RUNS_H

#include <stdint.h>

#include "dbtd.pb-c.h"

struct daemon;
struct runs;
struct client;

/* An error for a person: a code of the wire protocol and a message. */
struct runs_err {
	Dbtd__ErrorCode code;
	char msg[512];
};

/* runs_new - set up run handling with `slots` concurrent runs. */
int runs_new(struct runs **out, struct daemon *d, unsigned slots);

/*
 * runs_recover - after a start: runs left Running by a dbtd that died
 * become Failed (their process groups are killed); Queued runs are queued
 * again in id order and started when slots allow.
 */
int runs_recover(struct runs *r);

/*
 * Where a new run comes from.  branch/commit NULL: the environment's branch
 * at its head when the run clones.  PR runs set pr_number (they build into
 * <schema>_pr_<number>) and fetch_ref, the ref that holds their commit.
 */
struct run_origin {
	Dbtd__Trigger trigger;
	const char *by;          /* user, or event source ("pipeline:NAME", ...) */
	const char *branch;
	const char *commit;      /* 40 hex */
	const char *fetch_ref;
	uint32_t pr_number;
};

/*
 * runs_start - like runs_trigger for a job already read (job, from the
 * store) and an origin other than Manual/API/Re-run.
 */
int runs_start(struct runs *r, const Dbtd__Job *job, const struct run_origin *o,
               Dbtd__Run **out, struct runs_err *e);

/*
 * runs_trigger - create a run of job `job` (Queued, or Skipped when the job
 * already has a Queued or Running run) and start it when a slot is free.
 * *out gets a copy of the new run (free with dbtd__run__free_unpacked).
 * Returns 0 or -errno with e filled.
 */
int runs_trigger(struct runs *r, const char *job, Dbtd__Trigger trigger,
                 const char *triggered_by, Dbtd__Run **out, struct runs_err *e);

/*
 * runs_rerun - a new run of run id's job with trigger Re-run and rerun_of
 * set; only for Completed or Failed runs (else ERROR_CONFLICT naming the
 * status).  *out as for runs_trigger.
 */
int runs_rerun(struct runs *r, uint64_t id, const char *by, Dbtd__Run **out,
               struct runs_err *e);

/*
 * runs_cancel - cancel run id: a Queued one at once; a Running one by
 * SIGINT to its process group, SIGTERM after 4 s, SIGKILL after 3 s more
 * (it becomes Canceled when its runner is gone).  Any other status:
 * ERROR_CONFLICT naming it.  0 or -errno with e filled.
 */
int runs_cancel(struct runs *r, uint64_t id, const char *by, struct runs_err *e);

/*
 * runs_watch - send client c the run's current state and then every change
 * until it ends; the last frame has `end` set.  -ENOENT for no such run.
 */
int runs_watch(struct runs *r, uint64_t id, struct client *c);

/* runs_forget_client - c is going away: stop sending it anything. */
void runs_forget_client(struct runs *r, struct client *c);

/* runs_get - the current state of run id (stored).  0 or -errno. */
int runs_get(struct runs *r, uint64_t id, Dbtd__Run **out);

/* runs_active_count - runs in progress (for tests and logs). */
unsigned runs_active_count(const struct runs *r);

/*
 * runs_shutdown - dbtd is stopping: stop every run's processes, record
 * those runs as Failed, free everything.
 */
void runs_free(struct runs *r);

#endif /* DBTD_RUNS_H */
