/*
 * collect.h - in the runner, after the steps: keep the files dbt wrote
 * (everything under target/, and logs/) in the content-addressed blob store and
 * tell dbtd which paths of the run they are.
 */
#ifndef DBTD_COLLECT_H
#define DBTD_COLLECT_H

#include "host.h"

/*
 * collect_artifacts - walk <project_dir>/target and <project_dir>/logs
 * without following symlinks (a symlink is skipped, and logged in ctx's
 * step log), store each regular file under <blob_dir>/<d0d1>/<sha256> (once
 * per content) and send their list to dbtd.  Returns the number of files
 * kept, or -errno when nothing could be kept.
 */
int collect_artifacts(dbtd_step_ctx *ctx, const char *project_dir, const char *blob_dir);

/*
 * blob_path - the path of a blob with hex digest in blob_dir (malloc'd), or
 * NULL when digest is not 64 hex digits.
 */
char *blob_path(const char *blob_dir, const char *digest);

#endif /* DBTD_COLLECT_H */
