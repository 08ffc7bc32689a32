/*
 * scheduler.h - jobs with a cron schedule: one timer (an ev_periodic at the
 * earliest due time, no scanning), a heap of jobs by next fire time, runs
 * with trigger Scheduled.  A fire while the job's previous run is active
 * records a Skipped run; fires missed while dbtd was down are logged, not
 * replayed.
 */
#ifndef DBTD_SCHEDULER_H
#define DBTD_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "dbtd.pb-c.h"

struct runs;
struct scheduler;

/*
 * scheduler_new - load every scheduled job from the store and arm the
 * timer; logs the fires missed since each job last fired.  0 or -errno.
 */
int scheduler_new(struct scheduler **out, struct ev_loop *loop, struct runs *runs);

/* scheduler_add - schedule a job just added (no-op without a schedule). */
void scheduler_add(struct scheduler *s, const Dbtd__Job *job);

/* scheduler_remove - forget a job that was removed. */
void scheduler_remove(struct scheduler *s, uint64_t job_id);

/*
 * scheduler_next_fires - the first n fire times (Unix ms) of job's
 * schedule after now into out; returns how many (0 without a schedule).
 */
size_t scheduler_next_fires(const Dbtd__Job *job, int64_t now_s, int64_t *out, size_t n);

/* scheduler_count - jobs scheduled (for logs and benchmarks). */
size_t scheduler_count(const struct scheduler *s);

/* scheduler_free - stop the timer and free; NULL is fine. */
void scheduler_free(struct scheduler *s);

#endif /* DBTD_SCHEDULER_H */
