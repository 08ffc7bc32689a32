/*
 * prune.h - `dbtctl run prune`: retention now, and what it freed.
 */
#ifndef DBTCTL_PRUNE_H
#define DBTCTL_PRUNE_H

#include "commands.h"

/*
 * cmd_run_prune - `run prune [--dry-run] [--job NAME]`: ask dbtd for a
 * retention pass and wait for its report (however long the pass takes:
 * dbtd answers when it is over).  Prints what was (or would be) freed;
 * --json gives {dry_run, job, runs, log_bytes, log_chunks, lineages,
 * artifacts, blobs, blob_bytes, keep_runs, keep_days, started_at,
 * finished_at, error}.  Exit 1 when the pass stopped on an error.
 */
int cmd_run_prune(struct dbtctl_opts *o, const struct command *cmd, int argc, char **argv);

#endif /* DBTCTL_PRUNE_H */
