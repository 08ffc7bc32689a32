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
 * out_plugins_json - `plugin list --json`: {directory, loaded: [{type,
 * description, file, abi_major, abi_minor, run_always}], refused: [{file,
 * reason}]}.
 */
json_t *out_plugins_json(const Dbtd__PluginList *pl);

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

/*
 * out_plugins_view - `plugin list`: the plugin directory, a table of the
 * loaded plugins, then the refused files with their reasons.  0 or -ENOMEM.
 */
int out_plugins_view(const struct out_style *st, const Dbtd__PluginList *pl);

/* out_run_view - the run details panel and its steps (`run view ID`). */
void out_run_view(const struct out_style *st, const Dbtd__Run *r, int64_t now);

/* ---- live progress of a watched run ---- */

/* What has been shown of a watched run so far. */
struct out_progress {
	Dbtd__StepStatus *seen; /* last status shown, by step position */
	uint32_t *done;         /* last node count shown (not a terminal),
	                           by step position; UINT32_MAX: none */
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
 * in place, with a bar of the step's progress when it reports one; not on
 * a terminal, "  name: 12/30 nodes" each time a running step's count
 * changes) and a line when the run goes from queued to running.
 * The first update only records the run status.  Returns 0 or -ENOMEM.
 */
int out_progress_update(const struct out_style *st, struct out_progress *p,
                        const Dbtd__Run *r, int64_t now);

/* out_progress_free - end an open line and free the record. */
void out_progress_free(struct out_progress *p);

/* ---- step logs (`run logs`) ---- */

/* How `run logs` prints a run's step logs. */
struct out_logs_opts {
	uint32_t step;          /* the one step asked for, or 0 for every step */
	const char *search;     /* print only the lines holding this, or NULL */
	bool case_sensitive;    /* search: letters must match in case */
	bool regex;             /* search is a POSIX extended regular expression */
	unsigned context;       /* search: lines of context around matches */
	bool json;              /* one JSON object per line (JSON Lines) */
	bool raw;               /* text bytes as stored (--output), else escaped */
	bool color;             /* bold headers, matches in bold red */
};

/* A log being printed: step headers, line numbers, search state. */
struct out_logs;

/*
 * out_logs_new - start printing to f as opts says (opts->search is not
 * copied: it must outlive the printer).  Returns 0, -ENOMEM, or -EINVAL
 * for a regular expression that does not compile, with regerror's words
 * in err.
 */
int out_logs_new(struct out_logs **out, const struct out_logs_opts *opts,
                 FILE *f, char *err, size_t errlen);

/*
 * out_logs_set_run - the run the log belongs to, for step names, statuses
 * and durations in headers; it must stay valid until the next call or
 * out_logs_free.  Call it before the first chunk and whenever a newer
 * state of the run arrives.
 */
void out_logs_set_run(struct out_logs *lg, const Dbtd__Run *run);

/*
 * out_logs_chunk - print the records of one LogData frame (proto/logrec.h)
 * of step `step`: headers due before them, then the lines (or the matches
 * and their context).  Returns 0, -EBADMSG for a truncated record (what
 * came before it is printed), -ENOMEM, or -EIO when writing failed.
 */
int out_logs_chunk(struct out_logs *lg, uint32_t step, const uint8_t *data,
                   size_t len);

/*
 * out_logs_finish - the log is complete: headers of the steps that had no
 * line (every step shown, no search), and everything written to f.
 * Returns 0, -ENOMEM or -EIO.
 */
int out_logs_finish(struct out_logs *lg);

/* out_logs_lines - log lines printed so far (search: matches and context). */
uint64_t out_logs_lines(const struct out_logs *lg);

/* out_logs_matches - lines that matched the search so far. */
uint64_t out_logs_matches(const struct out_logs *lg);

/* out_logs_step_lines - lines of step `step` seen so far. */
uint64_t out_logs_step_lines(const struct out_logs *lg, uint32_t step);

/* out_logs_free - release the printer (f is left open). */
void out_logs_free(struct out_logs *lg);

/* out_put_sgr - print text, in colour sgr when the style allows it and sgr is set. */
void out_put_sgr(const struct out_style *st, const char *sgr, const char *text);

#endif /* DBTCTL_OUTPUT_H */
