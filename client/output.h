/*
 * output.h - what dbtctl prints: JSON objects with the field names of
 * PRODUCT.md, human tables and detail panels, and live run progress.
 *
 * JSON builders return a new reference (caller owns it) or NULL when out of
 * memory.  Human printers write to stdout.  Unset values (empty strings,
 * zero times and ids) are JSON null and "-" for people.  Secrets are never
 * printed: replies carry has_password / has_webhook_secret instead.
 */
#ifndef DBTCTL_OUTPUT_H
#define DBTCTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dbtd.pb-c.h"

/* How human output looks on this stdout. */
struct out_style {
	bool utf8;  /* the locale's codeset is UTF-8: use ✓ ● ✗ ○ – and · */
	bool color; /* stdout is a terminal and NO_COLOR is not set */
	bool tty;   /* stdout is a terminal: a progress line may be rewritten */
};

/*
 * out_style_init - fill st from the locale (setlocale must have run),
 * isatty(1), $NO_COLOR and $TERM.
 */
void out_style_init(struct out_style *st);

/* ---- JSON ---- */

/* {name, repo, subdir, poll_seconds, has_webhook_secret, created_at} */
json_t *out_project_json(const Dbtd__Project *p);
/* {name, project, branch, destination{...}, dbt, env{KEY: VALUE}, created_at} */
json_t *out_environment_json(const Dbtd__Environment *e);
/* {name, environment, type, commands[], steps[], schedule, timezone,
 *  on_pipeline, timeout_s, created_at} */
json_t *out_job_json(const Dbtd__Job *j);
/*
 * out_run_json - the `run view --json` object, without "steps" when
 * with_steps is false (`run list --json`).  now (ms) measures durations of
 * runs and steps still in progress.
 */
json_t *out_run_json(const Dbtd__Run *r, bool with_steps, int64_t now);
/* out_run_brief_json - {"id": N, "status": "..."} (`job run --json`). */
json_t *out_run_brief_json(const Dbtd__Run *r);

/*
 * out_json - print v on stdout, indented, with a newline, and drop the
 * reference.  Returns 0, -ENOMEM when v is NULL, -EIO when writing failed.
 */
int out_json(json_t *v);

/* ---- human ---- */

/* Detail panels of one object, as `view NAME` shows them. */
void out_project_view(const struct out_style *st, const Dbtd__Project *p);
void out_environment_view(const struct out_style *st,
                          const Dbtd__Environment *e);
void out_job_view(const struct out_style *st, const Dbtd__Job *j);

/*
 * Tables, one row per object under a header; a short note instead when the
 * list is empty.  Return 0 or -ENOMEM.
 */
int out_projects_table(const struct out_style *st, Dbtd__Project *const *items,
                       size_t n);
int out_environments_table(const struct out_style *st,
                           Dbtd__Environment *const *items, size_t n);
int out_jobs_table(const struct out_style *st, Dbtd__Job *const *items,
                   size_t n);
int out_runs_table(const struct out_style *st, Dbtd__Run *const *items,
                   size_t n, int64_t now);

/* out_run_view - the run details panel and its steps (`run view ID`). */
void out_run_view(const struct out_style *st, const Dbtd__Run *r, int64_t now);

/* ---- live progress of a watched run ---- */

/* What has been shown of a watched run so far. */
struct out_progress {
	Dbtd__StepStatus *seen; /* last status shown, by step position */
	size_t nseen;
	Dbtd__RunStatus status; /* last run status shown; 0 before the first */
	uint32_t open;          /* 1 + position of the step whose "running"
	                           line is still open (tty), or 0 */
};

/* out_progress_init - start with nothing shown. */
void out_progress_init(struct out_progress *p);

/*
 * out_progress_update - print one line per step that changed since the
 * last update (✓ name (0.3s) when it completed, ✗ when it failed, – when
 * skipped or canceled; on a terminal also a ● line while it runs, rewritten
 * in place) and a line when the run goes from queued to running.
 * The first update only records the run status.  Returns 0 or -ENOMEM.
 */
int out_progress_update(const struct out_style *st, struct out_progress *p,
                        const Dbtd__Run *r, int64_t now);

/* out_progress_free - end an open line and free the record. */
void out_progress_free(struct out_progress *p);

#endif /* DBTCTL_OUTPUT_H */
