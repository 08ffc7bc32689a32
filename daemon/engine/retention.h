/*
 * retention.h - deleting what dbtd no longer keeps: the finished runs past
 * their job's policy (with their logs, lineage and artifact records), then
 * the artifact contents (blobs) no run refers to any more.
 *
 * A pass runs in bounded steps on the loop (an ev_idle: one batch of runs,
 * one page of artifact records or one piece of a blob directory per loop
 * iteration), so dbtd goes on serving while it works.  Passes run one at a
 * time: automatic ones at start and every `every_s`, and those asked for
 * (dbtctl run prune), which are answered when they are over.
 */
#ifndef DBTD_RETENTION_H
#define DBTD_RETENTION_H

#include <ev.h>

#include "dbtd.pb-c.h"
#include "store.h"

struct retention;
struct prune_wait;

/* What retention works with (borrowed; they outlive it). */
struct retention_config {
	struct ev_loop *loop;
	struct store *store;
	const char *blob_dir;     /* <state>/blobs/<aa>/<sha256> */
	struct store_keep keep;   /* the global policy (dbtd --keep-runs, --keep-days) */
	double every_s;           /* automatic passes: at start, then this often; 0: none */
	double blob_margin_s;     /* blobs younger than this (and than the oldest
	                           * running run's start, less it) are never swept */
};

/* retention_new - set up retention (nothing runs until retention_start). */
int retention_new(struct retention **out, const struct retention_config *cfg);

/* retention_start - arm the automatic passes (the first one at once). */
void retention_start(struct retention *r);

/* retention_keep - the global policy. */
const struct store_keep *retention_keep(const struct retention *r);

/* What a pass reports to those who asked for it. */
typedef void (*retention_done_fn)(void *arg, const Dbtd__PruneReport *rep);

/*
 * retention_request - a pass (dry: count only; job: only that job's runs,
 * NULL or "" every job) whose report goes to done(arg, report) when it is
 * over, after everything it deleted was committed.  It joins an identical
 * pass still waiting, else waits for the one under way.  *out is the
 * handle to take the request back.  0 or -ENOMEM.
 */
int retention_request(struct retention *r, int dry, const char *job, retention_done_fn done,
                      void *arg, struct prune_wait **out);

/* retention_forget - done is not to be called for w any more (its asker went). */
void retention_forget(struct retention *r, struct prune_wait *w);

/* retention_free - stop; a pass under way ends (what it committed stays).  NULL is fine. */
void retention_free(struct retention *r);

#endif /* DBTD_RETENTION_H */
