/*
 * api_int.h - shared by the files of api/ only: the handlers' context, the
 * one place errors become wire errors, and the stream handlers.
 */
#ifndef DBTD_API_INT_H
#define DBTD_API_INT_H

#include "api.h"
#include <stdint.h>

#include "err.h"

struct api {
	struct ev_loop *loop;
	struct store *store;
	struct runs *runs;
	struct scheduler *scheduler;
	struct pollers *pollers;
	const struct plugin_set *plugins;
	char *blob_dir;
	struct retention *retention;
};

/* api_error - reply e to c as a wire Error (errors.c: kinds become wire codes there only). */
void api_error(struct client *c, const struct err *e);

/* api_fail - api_error of a formatted message of kind. */
void api_fail(struct client *c, enum err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* api_run_error - reply why run id cannot be read (rc from runs_get). */
void api_run_error(struct api *a, struct client *c, int rc, uint64_t id);

/*
 * api_store_fail - reply with a store error rc: "<what>: <why>", why being
 * store_error's sentence (for a damaged store: where, and what to do).
 */
void api_store_fail(struct api *a, struct client *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* api_stream_busy - refuse a second stream on c, saying so. */
void api_stream_busy(struct client *c);

/* objects.c: projects, environments and jobs; the run history list. */
void objects_add_project(struct api *a, struct client *c, Dbtd__Project *p);
void objects_add_environment(struct api *a, struct client *c, Dbtd__Environment *e);
void objects_add_job(struct api *a, struct client *c, Dbtd__Job *j);
void objects_list(struct api *a, struct client *c, Dbtd__ObjectKind k);
void objects_view(struct api *a, struct client *c, const Dbtd__ObjectRef *ref);
void objects_remove(struct api *a, struct client *c, const Dbtd__ObjectRef *ref);
void objects_list_runs(struct api *a, struct client *c, const Dbtd__ListRuns *lr);
void objects_edit_job(struct api *a, struct client *c, const Dbtd__EditJob *ej);

/* prune.c: run prune, answered when the retention pass is over. */
void prune_open(struct api *a, struct client *c, const Dbtd__PruneRuns *req);

/* logs.c: run logs (the stored lines, then with follow the new ones). */
void logs_open(struct api *a, struct client *c, const Dbtd__ReadLogs *req);

/* watch.c: a run's state, then every change until it is final. */
void watch_open(struct api *a, struct client *c, uint64_t run_id);

/* artifacts.c: a run's lineage, its artifact list, one artifact's content. */
void artifacts_lineage(struct api *a, struct client *c, const Dbtd__RunRef *ref);
void artifacts_list(struct api *a, struct client *c, const Dbtd__RunRef *ref);
void artifacts_send(struct api *a, struct client *c, const Dbtd__ArtifactRef *ref);

#endif /* DBTD_API_INT_H */
