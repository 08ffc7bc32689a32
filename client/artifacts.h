/*
 * artifacts.h - `dbtctl run artifacts` and `dbtctl run artifact`: the files
 * dbt wrote during a run (target/..., logs/dbt.log) that dbtd kept, listed
 * flat or as a tree, searched by file name, and served back byte for byte.
 */
#ifndef DBTCTL_ARTIFACTS_H
#define DBTCTL_ARTIFACTS_H

#include "commands.h"

/*
 * cmd_run_artifacts - `run artifacts ID [--tree] [--search TEXT]`: PATH and
 * SIZE columns sorted by path, or the folder tree; --json gives
 * [{"path", "size"}].  Exit 1 when --search matches no file.
 */
int cmd_run_artifacts(struct dbtctl_opts *o, const struct command *cmd, int argc,
                      char **argv);

/*
 * cmd_run_artifact - `run artifact ID PATH [--output FILE]`: the content on
 * stdout, or written to FILE (through FILE.tmp, renamed when complete).
 * Exit 2 for a PATH that cannot name an artifact, 4 when the run has no
 * such artifact.
 */
int cmd_run_artifact(struct dbtctl_opts *o, const struct command *cmd, int argc,
                     char **argv);

#endif /* DBTCTL_ARTIFACTS_H */
