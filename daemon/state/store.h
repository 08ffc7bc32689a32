/*
 * store.h - dbtd's state in LMDB: projects, environments, jobs, runs and
 * step logs, each record a protobuf message of proto/dbtd.proto.
 *
 * Every write is its own transaction, committed (durable) before the call
 * returns.  Integer keys are big-endian so cursor order is numeric order.
 * Messages returned through `out` parameters are unpacked copies the
 * caller frees with protobuf_c_message_free_unpacked(msg, NULL).
 */
#ifndef DBTD_STORE_H
#define DBTD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "dbtd.pb-c.h"
#include "err.h"

struct store;

/* The three named object kinds. */
enum store_kind { STORE_PROJECT, STORE_ENVIRONMENT, STORE_JOB };

/* Runs matching these are listed; zero fields match everything. */
struct store_run_filter {
	const char *job;        /* job name (runs keep it after the job is removed) */
	Dbtd__RunStatus status;
	Dbtd__Trigger trigger;
	const char *branch;
};

/*
 * store_open - open (creating) the LMDB environment in dir.  A store of an
 * older format is migrated first, one of a newer format refused
 * (STORE_ENEWER, nothing written; see store_format.h).  0 or -errno; on an
 * error *why (when why is not NULL; else it is logged) may hold a malloc'd
 * message saying what happened.
 */
int store_open(struct store **out, const char *dir, char **why);

/*
 * The map: LMDB's address space for the data file (the file itself grows
 * only as it is used).  It starts at `start` and grows, doubling, whenever
 * less than a quarter of it (at least 32 MiB) is left after a commit or a
 * write found it full, up to `max` and to what the state directory's free
 * disk allows.  Log lines are refused once the map cannot grow and only its
 * last sixteenth is left (STORE_EMAPFULL), or when the disk has less than
 * STORE_LOG_DISK_RESERVE free (-ENOSPC): what is left keeps run states.
 */
#define STORE_MAP_MIN ((size_t)1 << 20)
#define STORE_MAP_START_DEFAULT ((size_t)1 << 30)
#define STORE_MAP_MAX_DEFAULT ((size_t)1 << 40)
#define STORE_LOG_DISK_RESERVE ((uint64_t)4 << 20)

/*
 * store_set_map_limits - set the map's size to start (never below what is
 * used) and how far it may grow.  -EINVAL when start < STORE_MAP_MIN or
 * max < start; else 0 or -errno.
 */
int store_set_map_limits(struct store *st, size_t start, size_t max);

/* What the store takes and has left (store_space). */
struct store_space {
	uint64_t map_size;     /* the map now */
	uint64_t map_used;     /* pages in use up to the last commit, in bytes */
	uint64_t max_map_size; /* how far the map may grow */
	uint64_t file_size;    /* data.mdb on disk */
	uint64_t disk_free;    /* free on the state directory's device (for dbtd) */
};

/* store_space - fill *sp.  0 or -errno. */
int store_space(struct store *st, struct store_space *sp);

/*
 * store_set_group_commit - with on, writes are collected in one open
 * transaction until store_commit() (dbtd commits once per loop iteration,
 * before it sends anything: group commit).  Reads see the pending writes.
 * Each write still succeeds or fails as a whole (a nested transaction).
 * Off (the default), every write is committed before it returns.
 */
void store_set_group_commit(struct store *st, int on);

/*
 * store_commit - make the pending writes durable.  0, or -errno / an MDB
 * code: then every pending write is lost (the store is as it was at the
 * last commit), and whoever reported one of them must say so.
 */
int store_commit(struct store *st);

/*
 * store_on_commit - fn(arg, rc) is called at the end of every store_commit
 * that had pending writes, with its result (the engine reports run states
 * to their watchers only after they are stored).  One hook; NULL removes it.
 */
void store_on_commit(struct store *st, void (*fn)(void *arg, int rc), void *arg);

/*
 * store_fail_commits - for tests: the next n commits of pending writes fail
 * with rc (e.g. -ENOSPC, STORE_EMAPFULL) and lose those writes, as a full
 * disk or a full map would.
 */
void store_fail_commits(struct store *st, int rc, unsigned n);

/*
 * store_commit_due - when the pending writes should be committed: 0 now
 * (anything but log lines is pending, or log lines past 4 MiB or 50 ms), the
 * ms until the pending log lines are due, or -1 when nothing is pending.
 * Log lines of a chatty step thus cost a commit per 50 ms, not per line.
 */
int64_t store_commit_due(const struct store *st, int64_t now);

/*
 * store_format_info - the store's format record (StoreFormat, see
 * store_format.h); the caller frees it.  0 or -errno.
 */
int store_format_info(struct store *st, Dbtd__StoreFormat **out);

/*
 * store_trim - drop the pages of the map that reads and writes made
 * resident in dbtd (clean file pages: the page cache keeps them).  Done
 * after every 8 MiB of log lines; a caller that walked much of the store
 * (a retention pass) calls it too.
 */
void store_trim(struct store *st);

/* store_close - close the environment; NULL is fine. */
void store_close(struct store *st);

/*
 * store_err_kind - what a store error code means to a client: not found,
 * exists, no space (disk or map full: nothing was saved), damaged (a page
 * or a record that cannot be read), else internal.
 */
enum err_kind store_err_kind(int rc);

/* store_strerror - a message for a store error code (negative errno or MDB_*). */
const char *store_strerror(int rc);

/*
 * store_error - the sentence a person sees for rc, an error of the last
 * operation on st: for damage (ERR_DAMAGED) that the store is damaged,
 * where (database and record), and what to do (dbtd check, a backup);
 * otherwise store_strerror(rc).  Valid until the next call.
 */
const char *store_error(struct store *st, int rc);

/*
 * store_obj_add - add a named object.  Assigns a new id, stores it in
 * *idp (which points into msg, so the stored record carries it), and
 * indexes `name`.  -EEXIST when the name is taken.
 */
int store_obj_add(struct store *st, enum store_kind kind, ProtobufCMessage *msg,
                  const char *name, uint64_t *idp);

/*
 * store_obj_put - replace the stored record of the existing object id (its
 * name stays as it is).  -ENOENT when there is none.
 */
int store_obj_put(struct store *st, enum store_kind kind, uint64_t id,
                  const ProtobufCMessage *msg);

/* store_obj_get - the object with id.  -ENOENT when there is none. */
int store_obj_get(struct store *st, enum store_kind kind, uint64_t id,
                  ProtobufCMessage **out);

/* store_obj_find - the object named name.  -ENOENT when there is none. */
int store_obj_find(struct store *st, enum store_kind kind, const char *name,
                   ProtobufCMessage **out);

/*
 * store_obj_list - call fn for every object of a kind in id order; fn
 * takes ownership of msg.  A non-zero return of fn stops the walk and is
 * returned.
 */
int store_obj_list(struct store *st, enum store_kind kind,
                   int (*fn)(void *arg, ProtobufCMessage *msg), void *arg);

/* store_obj_remove - remove the object with id, named name. 0 or -errno. */
int store_obj_remove(struct store *st, enum store_kind kind, uint64_t id,
                     const char *name);

/* store_run_create - store a new run, assigning run->id. 0 or -errno. */
int store_run_create(struct store *st, Dbtd__Run *run);

/* store_run_put - store the current state of an existing run. 0 or -errno. */
int store_run_put(struct store *st, const Dbtd__Run *run);

/* store_run_get - the run with id.  -ENOENT when there is none. */
int store_run_get(struct store *st, uint64_t id, Dbtd__Run **out);

/*
 * store_run_list - runs matching f, newest first, ids below `before`
 * (0: no bound), at most `limit`; fn takes ownership of each run.
 */
int store_run_list(struct store *st, const struct store_run_filter *f,
                   uint64_t before, unsigned limit,
                   int (*fn)(void *arg, Dbtd__Run *run), void *arg);

/*
 * store_runs_active - call fn for every run that is Queued or Running,
 * oldest first (fn takes ownership).
 */
int store_runs_active(struct store *st, int (*fn)(void *arg, Dbtd__Run *run),
                      void *arg);

/* store_job_has_active_run - id of the job's Queued/Running run, or 0. */
uint64_t store_job_active_run(struct store *st, uint64_t job_id);

/*
 * store_log_append - store one packed LogChunk of a run's step under
 * sequence number seq.  0 or -errno.
 */
int store_log_append(struct store *st, uint64_t run_id, uint32_t step,
                     uint32_t seq, const uint8_t *data, size_t len);

/*
 * store_log_note - as store_log_append, for dbtd's own few lines about a
 * log (how many lines were lost and why): written into the room kept for
 * run states, where store_log_append would refuse.
 */
int store_log_note(struct store *st, uint64_t run_id, uint32_t step,
                   uint32_t seq, const uint8_t *data, size_t len);

/* store_lineage_put - keep run_id's lineage graph (replacing one kept). */
int store_lineage_put(struct store *st, uint64_t run_id, const Dbtd__Lineage *l);

/* store_lineage_get - run_id's lineage graph; -ENOENT when none was kept. */
int store_lineage_get(struct store *st, uint64_t run_id, Dbtd__Lineage **out);

/* store_artifact_put - keep one artifact (path, size, digest) of a run. */
int store_artifact_put(struct store *st, uint64_t run_id, const Dbtd__Artifact *a);

/* store_artifact_get - the artifact at path of a run; -ENOENT when none. */
int store_artifact_get(struct store *st, uint64_t run_id, const char *path,
                       Dbtd__Artifact **out);

/*
 * store_artifacts_list - call fn with every artifact of a run, by path (fn
 * owns it), until fn returns non-zero.  0, or -errno (fn's when negative).
 */
int store_artifacts_list(struct store *st, uint64_t run_id,
                         int (*fn)(void *arg, Dbtd__Artifact *a), void *arg);

/*
 * store_artifacts_page - one page of a run's artifacts, for reading a long
 * list a piece at a time: call fn with those whose path sorts after `after`
 * (bytewise; NULL or "": from the first), in that order, at most max of
 * them, and stop early after one for which fn returns > 0 (fn owns each
 * artifact; a negative return is the error returned).  Each page is read
 * in a transaction of its own: pass the last path given to get the next.
 * *more (may be NULL) is set when the run has artifacts after the last one
 * given.  Returns the number given to fn, or -errno.
 */
int store_artifacts_page(struct store *st, uint64_t run_id, const char *after, size_t max,
                         int (*fn)(void *arg, Dbtd__Artifact *a), void *arg, int *more);

/* Where a reader of a run's log is: the last chunk it got (0, 0: none yet). */
struct store_log_pos {
	uint32_t step;
	uint32_t seq;
};

/*
 * store_log_read - call fn with the run's stored chunks after *pos (only
 * step `step` when not 0), in order, until about `budget` bytes were given
 * or fn returns non-zero; *pos follows.  data is valid during the call.
 * Returns the number of chunks given, or -errno.
 */
int store_log_read(struct store *st, uint64_t run_id, uint32_t step,
                   struct store_log_pos *pos, size_t budget,
                   int (*fn)(void *arg, uint32_t step, uint32_t seq,
                             const uint8_t *data, size_t len), void *arg);

/* ---- retention (store_prune.c) ---- */

/* What deleting runs freed (or, dry, would free): counts and bytes. */
struct store_freed {
	uint64_t runs;
	uint64_t log_chunks, log_bytes;
	uint64_t lineages;
	uint64_t artifacts;   /* artifact records (their content is in the blob store) */
};

/* A retention policy: keep the newest `runs` finished runs of a job and
 * those finished in the last `days` days; 0: no limit of that kind. */
struct store_keep {
	uint32_t runs;
	uint32_t days;
};

/*
 * store_run_delete - delete finished run id with its index entries, step
 * logs, lineage and artifact records, in one write (dry: change nothing,
 * only count); what it freed is added to *f.  -EBUSY for a Queued or
 * Running run, -ENOENT when there is none.
 */
int store_run_delete(struct store *st, uint64_t id, int dry, struct store_freed *f);

/*
 * Where a retention pass is: it walks runs_by_job one job at a time, oldest
 * run first, and can stop after any run.  Zero it (and set only_job, or
 * leave it empty for every job) to start a pass.
 */
struct store_prune_pos {
	char only_job[256];  /* "" every job, else this one */
	char job[256];       /* the job being walked; "" before the first */
	int in_job;          /* job's bounds below are known */
	int done;            /* the pass is over */
	uint64_t next_id;    /* the next run of the job to look at */
	uint64_t keep_from;  /* finished runs below this id are past keep.runs (0: none) */
	uint64_t newest;     /* the job's newest finished run: always kept */
	int64_t cutoff_ms;   /* finished before this: past keep.days (0: none) */
	uint32_t keep_runs, keep_days; /* the job's policy */
};

/*
 * store_prune_step - go on with a retention pass: delete (dry: count) the
 * finished runs past their job's policy (the job record's keep_runs /
 * keep_days, else `global`; removed jobs follow `global`) as of now_ms,
 * never a Queued or Running run nor a job's newest finished run.  Stops
 * after max_runs runs or about max_keys index entries looked at, all in
 * one write (a nested transaction in group commit: the caller commits).
 * fn (may be NULL) is told the id of each run deleted.  What was freed is
 * added to *f.  Returns 1 when the pass has more to do, 0 when it is over,
 * or -errno (nothing of this step was written).
 */
int store_prune_step(struct store *st, struct store_prune_pos *pos,
                     const struct store_keep *global, int64_t now_ms, int dry,
                     unsigned max_runs, unsigned max_keys, struct store_freed *f,
                     void (*fn)(void *arg, uint64_t id), void *arg);

/* Where a walk over every artifact record is: the last key seen. */
struct store_scan {
	uint8_t key[512];
	size_t klen;          /* 0: from the first */
	int done;
};

/*
 * store_artifacts_scan - call fn with the run id and digest of up to max
 * artifact records of any run after pos, in key order, in a read of its
 * own; pos follows.  Returns the number given, 0 when the walk is over
 * (pos->done), or -errno.
 */
int store_artifacts_scan(struct store *st, struct store_scan *pos, size_t max,
                         void (*fn)(void *arg, uint64_t run_id, const char *digest),
                         void *arg);

/* store_artifacts_count - artifact records of all runs. */
uint64_t store_artifacts_count(struct store *st);

#endif /* DBTD_STORE_H */
