/*
 * runs.h - the life of runs inside dbtd: creating them (Queued or
 * Skipped), run slots, forking a runner per run, turning runner events into
 * stored state, finishing runs, and pushing changes to watching clients.
 */
#ifndef DBTD_RUNS_H
#define DBTD_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "dbtd.pb-c.h"
#include "err.h"

struct runs;
struct store;
struct plugin_set;
struct run_watch;
struct runner_spec;

/* What run handling works with (borrowed; they outlive it). */
struct runs_config {
	struct ev_loop *loop;
	struct store *store;
	const struct plugin_set *plugins;  /* given to each runner */
	const char *work_dir;              /* per-run workspaces */
	const char *blob_dir;              /* artifact contents */
	unsigned slots;                    /* concurrent runs */
	/* what the forked child of a run executes; NULL: runner_main (tests
	 * give one that reports steps without running them) */
	void (*runner)(const struct runner_spec *spec) __attribute__((noreturn));
};

/* runs_new - set up run handling. 0 or -errno. */
int runs_new(struct runs **out, const struct runs_config *cfg);

/*
 * Someone following one run (the api layer's watch and log streams; the
 * engine knows no client).  state gets every change of the run's state
 * once it is committed (the last one final); log every chunk of its step
 * logs as it is stored; unsaved a state that could not be stored (e says
 * why: disk or map full; the engine keeps it and tries again, and state
 * is called when that succeeds).  Any may be NULL.  A callback may remove
 * its own watch, no other.
 */
struct run_observer_ops {
	void (*state)(void *arg, const Dbtd__Run *run);
	void (*log)(void *arg, uint64_t run, uint32_t step, uint32_t seq,
	            const uint8_t *data, size_t len);
	void (*unsaved)(void *arg, const Dbtd__Run *run, const struct err *e);
};

/*
 * runs_watch_add - call ops for run_id's changes from now on, until
 * runs_watch_remove.  0 or -ENOMEM.
 */
int runs_watch_add(struct runs *r, uint64_t run_id, const struct run_observer_ops *ops,
                   void *arg, struct run_watch **out);

/* runs_watch_remove - stop calling w's observer and free w; NULL is fine. */
void runs_watch_remove(struct runs *r, struct run_watch *w);

/*
 * runs_committed - the store's commit ended with rc (dbtd calls it from the
 * store's commit hook).  0: the states stored since the last commit reach
 * their observers.  < 0 (all of them lost): runs created since then never
 * existed: their runners are killed and they are forgotten (their ids are
 * given again); the last state of every other run is kept and saved again
 * later, its observers told why.
 */
void runs_committed(struct runs *r, int rc);

/* runs_store - the store runs are kept in (for the engine's other modules). */
struct store *runs_store(const struct runs *r);

/* runs_stopping - dbtd is stopping: start no more runs. */
void runs_stopping(struct runs *r);

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
               Dbtd__Run **out, struct err *e);

/*
 * runs_trigger - create a run of job `job` (Queued, or Skipped when the job
 * already has a Queued or Running run) and start it when a slot is free.
 * *out gets a copy of the new run (free with dbtd__run__free_unpacked).
 * Returns 0 or -errno with e filled.
 */
int runs_trigger(struct runs *r, const char *job, Dbtd__Trigger trigger,
                 const char *triggered_by, Dbtd__Run **out, struct err *e);

/*
 * runs_rerun - a new run of run id's job with trigger Re-run and rerun_of
 * set; only for Completed or Failed runs (else ERROR_CONFLICT naming the
 * status).  *out as for runs_trigger.
 */
int runs_rerun(struct runs *r, uint64_t id, const char *by, Dbtd__Run **out,
               struct err *e);

/*
 * runs_cancel - cancel run id: a Queued one at once; a Running one by
 * SIGINT to its process group, SIGTERM after 4 s, SIGKILL after 3 s more
 * (it becomes Canceled when its runner is gone).  Any other status:
 * ERROR_CONFLICT naming it.  0 or -errno with e filled.
 */
int runs_cancel(struct runs *r, uint64_t id, const char *by, struct err *e);

/* runs_is_final - true for a final status (not Queued or Running). */
int runs_is_final(Dbtd__RunStatus s);

/* runs_get - the current state of run id (stored).  0 or -errno. */
int runs_get(struct runs *r, uint64_t id, Dbtd__Run **out);

/* runs_active_count - runs in progress (for tests and logs). */
unsigned runs_active_count(const struct runs *r);

/*
 * runs_shutdown - dbtd is stopping: stop every run's processes and record
 * those runs as Failed (observers are told); start nothing more.
 */
void runs_shutdown(struct runs *r);

/* runs_free - runs_shutdown if not done, then free; NULL is fine. */
void runs_free(struct runs *r);

#endif /* DBTD_RUNS_H */
