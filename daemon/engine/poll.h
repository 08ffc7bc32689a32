/*
 * poll.h - watching a project's remote without webhooks (project add
 * --poll SECONDS): every interval a child process lists the remote's refs
 * with libgit2 (off the event loop; a hung or crashing remote costs only
 * that child), and dbtd compares them with the refs seen last time.  A new
 * or moved refs/pull/N/head or refs/merge-requests/N/head starts the
 * project's ci jobs (trigger PR); a moved branch starts the merge jobs of
 * the environments on it (trigger Merge).  The first poll only records.
 */
#ifndef DBTD_POLL_H
#define DBTD_POLL_H

#include <stdint.h>

#include <ev.h>

#include "dbtd.pb-c.h"

struct runs;
struct pollers;

/* pollers_new - start polling every project that asks for it.  0 or -errno. */
int pollers_new(struct pollers **out, struct ev_loop *loop, struct runs *runs);

/* pollers_add - start polling a project just added (no-op without --poll). */
void pollers_add(struct pollers *p, const Dbtd__Project *proj);

/* pollers_remove - stop polling a removed project (its child is killed). */
void pollers_remove(struct pollers *p, uint64_t project_id);

/* pollers_free - stop every poll, kill children; NULL is fine. */
void pollers_free(struct pollers *p);

#endif /* DBTD_POLL_H */
