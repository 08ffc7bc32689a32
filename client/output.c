/* output.c - JSON, tables, panels and progress lines of dbtctl (see output.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <langinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "logrec.h"
#include "names.h"
#include "output.h"

/* ANSI SGR parameters used for colour. */
#define SGR_BOLD "1"
#define SGR_DIM "2"
#define SGR_RED "31"
#define SGR_GREEN "32"
#define SGR_YELLOW "33"
#define SGR_CYAN "36"

/* Width of the label column in detail panels. */
#define LABEL_WIDTH 17

/* A table being filled row by row, printed with aligned columns. */
struct table {
	size_t ncols;
	size_t nrows;
	size_t cap;       /* rows allocated */
	char **cells;     /* nrows * ncols strings, owned */
	const char **sgr; /* colour of each cell, or NULL */
};

/* ---- small formatting helpers ---- */

/* s, or NULL when s is NULL or empty. */
static const char *
nz(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

/* s, or "-" when s is NULL or empty. */
static const char *
or_dash(const char *s)
{
	return nz(s) ? s : "-";
}

/* Columns a string takes on a terminal (bytes it cannot decode count 1). */
static size_t
text_width(const char *s)
{
	mbstate_t mbs;
	size_t w = 0;

	memset(&mbs, 0, sizeof(mbs));
	while (*s != '\0') {
		wchar_t wc;
		size_t n = mbrtowc(&wc, s, MB_CUR_MAX, &mbs);
		int cw;

		if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
			memset(&mbs, 0, sizeof(mbs));
			w++;
			s++;
			continue;
		}
		cw = wcwidth(wc);
		w += cw > 0 ? (size_t)cw : 0;
		s += n;
	}
	return w;
}

void
out_put_sgr(const struct out_style *st, const char *sgr, const char *text)
{
	if (st->color && sgr != NULL)
		printf("\033[%sm%s\033[0m", sgr, text);
	else
		fputs(text, stdout);
}

/* Print text padded with spaces to width columns. */
static void
put_padded(const struct out_style *st, const char *sgr, const char *text,
           size_t width)
{
	size_t w = text_width(text);

	out_put_sgr(st, sgr, text);
	for (; w < width; w++)
		putchar(' ');
}

/* "2026-11-28 15:02:46" (UTC) into buf, or "-" when ms is 0. */
static const char *
fmt_time(int64_t ms, char *buf, size_t len)
{
	struct tm tm;
	time_t t;

	if (ms <= 0)
		return "-";
	t = (time_t)(ms / 1000);
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return "-";
	return buf;
}

/*
 * Milliseconds from started to finished, or to now while in_progress;
 * -1 when there is nothing to measure.
 */
static int64_t
span_ms(int64_t started, int64_t finished, bool in_progress, int64_t now)
{
	int64_t d;

	if (started <= 0)
		return -1;
	if (finished > 0)
		d = finished - started;
	else if (in_progress)
		d = now - started;
	else
		return -1;
	return d < 0 ? 0 : d;
}

/* Milliseconds the run waited in the queue, or -1 (see PRODUCT.md). */
static int64_t
run_queued_ms(const Dbtd__Run *r, int64_t now)
{
	int64_t d;

	if (r->created_at_ms <= 0)
		return -1;
	if (r->started_at_ms > 0)
		d = r->started_at_ms - r->created_at_ms;
	else if (r->status == DBTD__RUN_STATUS__RUN_QUEUED)
		d = now - r->created_at_ms;
	else
		return -1;
	return d < 0 ? 0 : d;
}

/* Colour of a run status. */
static const char *
run_status_sgr(Dbtd__RunStatus s)
{
	switch (s) {
	case DBTD__RUN_STATUS__RUN_COMPLETED: return SGR_GREEN;
	case DBTD__RUN_STATUS__RUN_FAILED:    return SGR_RED;
	case DBTD__RUN_STATUS__RUN_RUNNING:   return SGR_YELLOW;
	case DBTD__RUN_STATUS__RUN_QUEUED:    return SGR_CYAN;
	default:                              return SGR_DIM;
	}
}

/* Colour of a step status. */
static const char *
step_status_sgr(Dbtd__StepStatus s)
{
	switch (s) {
	case DBTD__STEP_STATUS__STEP_COMPLETED: return SGR_GREEN;
	case DBTD__STEP_STATUS__STEP_FAILED:    return SGR_RED;
	case DBTD__STEP_STATUS__STEP_RUNNING:   return SGR_YELLOW;
	default:                                return SGR_DIM;
	}
}

/* The mark of a step status: ✓ ● ✗ ○ – (UTF-8) or [ok] [..] [x] [ ] [-]. */
static const char *
step_mark(const struct out_style *st, Dbtd__StepStatus s)
{
	switch (s) {
	case DBTD__STEP_STATUS__STEP_COMPLETED: return st->utf8 ? "\u2713" : "[ok]";
	case DBTD__STEP_STATUS__STEP_RUNNING:   return st->utf8 ? "\u25cf" : "[..]";
	case DBTD__STEP_STATUS__STEP_FAILED:    return st->utf8 ? "\u2717" : "[x]";
	case DBTD__STEP_STATUS__STEP_PENDING:   return st->utf8 ? "\u25cb" : "[ ]";
	default:                                return st->utf8 ? "\u2013" : "[-]";
	}
}

/* True for a step status that will not change any more. */
static bool
step_done(Dbtd__StepStatus s)
{
	return s == DBTD__STEP_STATUS__STEP_COMPLETED ||
	       s == DBTD__STEP_STATUS__STEP_FAILED ||
	       s == DBTD__STEP_STATUS__STEP_SKIPPED ||
	       s == DBTD__STEP_STATUS__STEP_CANCELED;
}

/* The 1-based index of step i of r (the wire index, or its position). */
static uint32_t
step_index(const Dbtd__Run *r, size_t i)
{
	return r->steps[i]->index ? r->steps[i]->index : (uint32_t)(i + 1);
}

/* ---- JSON helpers ---- */

/* Set o[key] = v (stealing v); any failure, including v NULL, sets *bad. */
static void
jset(json_t *o, const char *key, json_t *v, int *bad)
{
	if (o == NULL || v == NULL || json_object_set_new(o, key, v) < 0)
		*bad = 1;
}

/* A JSON string, or null for NULL / "". */
static json_t *
jstr(const char *s)
{
	return nz(s) ? json_string(s) : json_null();
}

/* An RFC 3339 time, or null for 0. */
static json_t *
jtime(int64_t ms)
{
	char buf[40];

	return ms > 0 ? json_string(format_rfc3339(ms, buf, sizeof(buf))) : json_null();
}

/* An integer, or null for 0. */
static json_t *
jnz(uint64_t v)
{
	return v ? json_integer((json_int_t)v) : json_null();
}

/* An integer, or null for a negative value. */
static json_t *
jms(int64_t v)
{
	return v >= 0 ? json_integer((json_int_t)v) : json_null();
}

/* {KEY: VALUE, ...} from key/value pairs. */
static json_t *
jkv(Dbtd__KeyValue *const *kv, size_t n)
{
	json_t *o = json_object();
	int bad = 0;

	for (size_t i = 0; i < n; i++)
		jset(o, kv[i]->key ? kv[i]->key : "", json_string(kv[i]->value ? kv[i]->value : ""), &bad);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* [name, ...] from strings. */
static json_t *
jstrings(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++)
		if (json_array_append_new(a, json_string(v[i] ? v[i] : "")) < 0) {
			json_decref(a);
			a = NULL;
		}
	return a;
}

/* {"done", "total", "running": [...], "failed": [...]}, or null. */
static json_t *
jprogress(const Dbtd__Progress *p)
{
	json_t *o;
	int bad = 0;

	if (p == NULL)
		return json_null();
	o = json_object();
	jset(o, "done", json_integer(p->done), &bad);
	jset(o, "total", json_integer(p->total), &bad);
	jset(o, "running", jstrings(p->running, p->n_running), &bad);
	jset(o, "failed", jstrings(p->failed, p->n_failed), &bad);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Return o, or drop it and return NULL when building it failed. */
static json_t *
jdone(json_t *o, int bad)
{
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- tables ---- */

/* Start an empty table of ncols columns. */
static void
table_init(struct table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

/* Append a row of ncols cells (copied); sgr may be NULL or per cell. */
static int
table_add(struct table *t, const char *const *cells, const char *const *sgr)
{
	size_t base;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
		const char **s;

		if (c == NULL)
			return -ENOMEM;
		t->cells = c;
		s = realloc(t->sgr, cap * t->ncols * sizeof(*s));
		if (s == NULL)
			return -ENOMEM;
		t->sgr = s;
		t->cap = cap;
	}
	base = t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		t->cells[base + i] = strdup(cells[i] ? cells[i] : "");
		t->sgr[base + i] = sgr ? sgr[i] : NULL;
		if (t->cells[base + i] == NULL) {
			for (size_t j = 0; j < i; j++)
				free(t->cells[base + j]);
			return -ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

/* Print the table: header row dim, columns two spaces apart. */
static void
table_print(const struct out_style *st, const struct table *t)
{
	size_t *width = calloc(t->ncols, sizeof(*width));

	if (width == NULL)
		return;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = text_width(t->cells[r * t->ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			const char *sgr = r == 0 ? SGR_BOLD : t->sgr[r * t->ncols + c];

			if (c + 1 < t->ncols) {
				put_padded(st, sgr, cell, width[c]);
				fputs("  ", stdout);
			} else {
				out_put_sgr(st, sgr, cell);
			}
		}
		putchar('\n');
	}
	free(width);
}

/* Free the cells of a table. */
static void
table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->sgr);
	memset(t, 0, sizeof(*t));
}

/* Print a filled table and free it; rc is the result of filling it. */
static int
table_finish(const struct out_style *st, struct table *t, int rc)
{
	if (rc == 0)
		table_print(st, t);
	table_free(t);
	return rc;
}

/* ---- panels ---- */

/* One "  Label   value" line; later lines of a multi-line value indented. */
static void
field(const struct out_style *st, const char *label, const char *sgr,
      const char *value)
{
	const char *p = or_dash(value);

	fputs("  ", stdout);
	put_padded(st, NULL, label, LABEL_WIDTH - 2);
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *line = strndup(p, n);

		out_put_sgr(st, sgr, line ? line : "");
		free(line);
		putchar('\n');
		if (nl == NULL || nl[1] == '\0')
			break;
		p = nl + 1;
		printf("%*s", LABEL_WIDTH, "");
	}
}

/* A panel field holding a time ("2026-11-28 15:02:46 UTC" or "-"). */
static void
field_time(const struct out_style *st, const char *label, int64_t ms)
{
	char buf[40], line[48];

	if (ms <= 0) {
		field(st, label, NULL, NULL);
		return;
	}
	snprintf(line, sizeof(line), "%s UTC", fmt_time(ms, buf, sizeof(buf)));
	field(st, label, NULL, line);
}

/*
 * A UTC time followed by the same time in zone tz (an IANA name), e.g.
 * "2026-12-01 08:30:00 UTC (09:30 CET)"; just UTC when tz is empty.
 */
static void
field_zoned_time(const struct out_style *st, const char *label, int64_t ms, const char *tz)
{
	char buf[40], local[64] = "", line[128];
	const char *old = getenv("TZ");
	char *saved = old ? strdup(old) : NULL;
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (nz(tz) && strcmp(tz, "UTC") != 0 && setenv("TZ", tz, 1) == 0) {
		tzset();
		if (localtime_r(&t, &tm) != NULL)
			strftime(local, sizeof(local), " (%a %H:%M %Z)", &tm);
		if (saved)
			setenv("TZ", saved, 1);
		else
			unsetenv("TZ");
		tzset();
	}
	free(saved);
	snprintf(line, sizeof(line), "%s UTC%s", fmt_time(ms, buf, sizeof(buf)), local);
	field(st, label, NULL, line);
}

/* The header line of a panel: "Kind name" in bold. */
static void
panel_title(const struct out_style *st, const char *kind, const char *name)
{
	char *title = NULL;

	if (asprintf(&title, "%s %s", kind, or_dash(name)) < 0)
		title = NULL;
	out_put_sgr(st, SGR_BOLD, title ? title : kind);
	putchar('\n');
	free(title);
}

/* ---- public: style ---- */

/* Decide on UTF-8 marks, colour and line rewriting for stdout. */
void
out_style_init(struct out_style *st)
{
	const char *cs = nl_langinfo(CODESET);
	const char *term = getenv("TERM");

	st->utf8 = cs != NULL && (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "utf8") == 0);
	st->tty = isatty(STDOUT_FILENO) == 1;
	st->color = st->tty && getenv("NO_COLOR") == NULL &&
	            !(term != NULL && strcmp(term, "dumb") == 0);
}

/* ---- public: JSON ---- */

/* A project as JSON (no secret). */
json_t *
out_project_json(const Dbtd__Project *p)
{
	json_t *o = json_object();
	int bad = 0;

	jset(o, "name", jstr(p->name), &bad);
	jset(o, "repo", jstr(p->repo), &bad);
	jset(o, "subdir", jstr(p->subdir), &bad);
	jset(o, "poll_seconds", jnz(p->poll_seconds), &bad);
	jset(o, "last_poll_at", jtime(p->last_poll_ms), &bad);
	jset(o, "poll_error", jstr(p->poll_error), &bad);
	jset(o, "has_webhook_secret", json_boolean(p->has_webhook_secret), &bad);
	jset(o, "created_at", jtime(p->created_at_ms), &bad);
	return jdone(o, bad);
}

/* An environment as JSON (no password). */
json_t *
out_environment_json(const Dbtd__Environment *e)
{
	const Dbtd__Destination *d = e->destination;
	json_t *o = json_object();
	json_t *dest = json_object();
	int bad = 0;

	if (d != NULL) {
		jset(dest, "type", jstr(d->type), &bad);
		jset(dest, "path", jstr(d->path), &bad);
		jset(dest, "host", jstr(d->host), &bad);
		jset(dest, "port", jnz(d->port), &bad);
		jset(dest, "user", jstr(d->user), &bad);
		jset(dest, "dbname", jstr(d->dbname), &bad);
		jset(dest, "schema", jstr(d->schema), &bad);
		jset(dest, "threads", jnz(d->threads), &bad);
		jset(dest, "has_password", json_boolean(d->has_password), &bad);
	}
	jset(o, "name", jstr(e->name), &bad);
	jset(o, "project", jstr(e->project), &bad);
	jset(o, "branch", jstr(e->branch), &bad);
	jset(o, "destination", d ? dest : json_null(), &bad);
	if (d == NULL)
		json_decref(dest);
	jset(o, "dbt", jstr(e->dbt_path), &bad);
	jset(o, "env", jkv(e->env, e->n_env), &bad);
	jset(o, "created_at", jtime(e->created_at_ms), &bad);
	return jdone(o, bad);
}

/* A job as JSON, its dbt commands also listed alone. */
json_t *
out_job_json(const Dbtd__Job *j)
{
	json_t *o = json_object();
	json_t *cmds = json_array();
	json_t *steps = json_array();
	int bad = 0;

	for (size_t i = 0; i < j->n_steps; i++) {
		const Dbtd__JobStep *s = j->steps[i];
		json_t *so = json_object();

		if (nz(s->command) && (s->type == NULL || strcmp(s->type, "dbt") == 0))
			if (json_array_append_new(cmds, json_string(s->command)) < 0)
				bad = 1;
		jset(so, "type", jstr(s->type), &bad);
		jset(so, "command", jstr(s->command), &bad);
		jset(so, "params", jkv(s->params, s->n_params), &bad);
		if (so == NULL || json_array_append_new(steps, so) < 0)
			bad = 1;
	}
	jset(o, "name", jstr(j->name), &bad);
	jset(o, "environment", jstr(j->environment), &bad);
	jset(o, "type", j->type ? json_string(job_type_json(j->type)) : json_null(), &bad);
	jset(o, "commands", cmds, &bad);
	jset(o, "steps", steps, &bad);
	jset(o, "schedule", jstr(j->schedule), &bad);
	jset(o, "timezone", jstr(j->timezone), &bad);
	{
		json_t *nf = json_array();
		for (size_t i = 0; nf != NULL && i < j->n_next_fires_ms; i++)
			if (json_array_append_new(nf, jtime(j->next_fires_ms[i])) < 0)
				bad = 1;
		jset(o, "next_fires", nf, &bad);
	}
	jset(o, "on_pipeline", jstr(j->on_pipeline), &bad);
	jset(o, "timeout_s", jnz(j->timeout_s), &bad);
	jset(o, "keep_runs", jnz(j->keep_runs), &bad);
	jset(o, "keep_days", jnz(j->keep_days), &bad);
	jset(o, "created_at", jtime(j->created_at_ms), &bad);
	return jdone(o, bad);
}

/* The plugin list as JSON: {directory, loaded[], refused[]}. */
json_t *
out_plugins_json(const Dbtd__PluginList *pl)
{
	json_t *o = json_object(), *loaded = json_array(), *refused = json_array();
	int bad = 0;

	for (size_t i = 0; i < pl->n_loaded; i++) {
		const Dbtd__PluginInfo *p = pl->loaded[i];
		json_t *po = json_object();

		jset(po, "type", jstr(p->type), &bad);
		jset(po, "description", jstr(p->description), &bad);
		jset(po, "file", jstr(p->file), &bad);
		jset(po, "abi_major", json_integer(p->abi_major), &bad);
		jset(po, "abi_minor", json_integer(p->abi_minor), &bad);
		jset(po, "run_always", json_boolean(p->run_always), &bad);
		if (po == NULL || json_array_append_new(loaded, po) < 0)
			bad = 1;
	}
	for (size_t i = 0; i < pl->n_refused; i++) {
		json_t *ro = json_object();

		jset(ro, "file", jstr(pl->refused[i]->file), &bad);
		jset(ro, "reason", jstr(pl->refused[i]->reason), &bad);
		if (ro == NULL || json_array_append_new(refused, ro) < 0)
			bad = 1;
	}
	jset(o, "directory", jstr(pl->directory), &bad);
	jset(o, "loaded", loaded, &bad);
	jset(o, "refused", refused, &bad);
	return jdone(o, bad);
}

/* A run as JSON (PRODUCT.md `run view --json`), steps optional. */
json_t *
out_run_json(const Dbtd__Run *r, bool with_steps, int64_t now)
{
	json_t *o = json_object();
	int bad = 0;

	jset(o, "id", json_integer((json_int_t)r->id), &bad);
	jset(o, "job", jstr(r->job), &bad);
	jset(o, "job_type", r->job_type ? json_string(job_type_json(r->job_type)) : json_null(), &bad);
	jset(o, "environment", jstr(r->environment), &bad);
	jset(o, "status", json_string(run_status_json(r->status)), &bad);
	jset(o, "trigger", json_string(trigger_json(r->trigger)), &bad);
	jset(o, "branch", jstr(r->branch), &bad);
	jset(o, "commit_sha", jstr(r->commit_sha), &bad);
	jset(o, "created_at", jtime(r->created_at_ms), &bad);
	jset(o, "started_at", jtime(r->started_at_ms), &bad);
	jset(o, "finished_at", jtime(r->finished_at_ms), &bad);
	jset(o, "duration_ms", jms(span_ms(r->started_at_ms, r->finished_at_ms,
	                                   r->status == DBTD__RUN_STATUS__RUN_RUNNING, now)), &bad);
	jset(o, "queued_ms", jms(run_queued_ms(r, now)), &bad);
	jset(o, "triggered_by", jstr(r->triggered_by), &bad);
	jset(o, "rerun_of", jnz(r->rerun_of), &bad);
	jset(o, "pr_number", jnz(r->pr_number), &bad);
	jset(o, "error", jstr(r->error), &bad);
	jset(o, "waiting_for", jstr(r->waiting_for), &bad);
	if (with_steps) {
		json_t *steps = json_array();

		for (size_t i = 0; i < r->n_steps; i++) {
			const Dbtd__Step *s = r->steps[i];
			json_t *so = json_object();

			jset(so, "index", json_integer(step_index(r, i)), &bad);
			jset(so, "name", jstr(s->name), &bad);
			jset(so, "status", json_string(step_status_json(s->status)), &bad);
			jset(so, "started_at", jtime(s->started_at_ms), &bad);
			jset(so, "finished_at", jtime(s->finished_at_ms), &bad);
			jset(so, "duration_ms", jms(span_ms(s->started_at_ms, s->finished_at_ms,
			                                    s->status == DBTD__STEP_STATUS__STEP_RUNNING, now)), &bad);
			jset(so, "progress", jprogress(s->progress), &bad);
			if (so == NULL || json_array_append_new(steps, so) < 0)
				bad = 1;
		}
		jset(o, "steps", steps, &bad);
	}
	return jdone(o, bad);
}

/* {"id", "status"} of a run just started. */
json_t *
out_run_brief_json(const Dbtd__Run *r)
{
	json_t *o = json_object();
	int bad = 0;

	jset(o, "id", json_integer((json_int_t)r->id), &bad);
	jset(o, "status", json_string(run_status_json(r->status)), &bad);
	return jdone(o, bad);
}

/* Print a JSON value indented on stdout and drop it. */
int
out_json(json_t *v)
{
	int rc = 0;

	if (v == NULL)
		return -ENOMEM;
	if (json_dumpf(v, stdout, JSON_INDENT(2)) < 0 || putchar('\n') == EOF)
		rc = -EIO;
	json_decref(v);
	return rc;
}

/* ---- public: panels ---- */

/* The detail panel of a project. */
void
out_project_view(const struct out_style *st, const Dbtd__Project *p)
{
	char buf[32];

	panel_title(st, "Project", p->name);
	field(st, "Repository", NULL, p->repo);
	field(st, "Subdirectory", NULL, p->subdir);
	if (p->poll_seconds) {
		snprintf(buf, sizeof(buf), "every %" PRIu32 "s", p->poll_seconds);
		field(st, "Poll", NULL, buf);
	} else {
		field(st, "Poll", NULL, "off");
	}
	if (p->poll_seconds) {
		field_time(st, "Last poll", p->last_poll_ms);
		if (nz(p->poll_error))
			field(st, "Poll error", NULL, p->poll_error);
	}
	field(st, "Webhook secret", NULL, p->has_webhook_secret ? "set" : "not set");
	field_time(st, "Created", p->created_at_ms);
}

/* The detail panel of an environment. */
void
out_environment_view(const struct out_style *st, const Dbtd__Environment *e)
{
	const Dbtd__Destination *d = e->destination;
	char buf[32];

	panel_title(st, "Environment", e->name);
	field(st, "Project", NULL, e->project);
	field(st, "Branch", NULL, e->branch);
	if (d != NULL) {
		field(st, "Destination", NULL, d->type);
		if (nz(d->path))
			field(st, "Path", NULL, d->path);
		if (nz(d->host))
			field(st, "Host", NULL, d->host);
		if (d->port) {
			snprintf(buf, sizeof(buf), "%" PRIu32, d->port);
			field(st, "Port", NULL, buf);
		}
		if (nz(d->user))
			field(st, "User", NULL, d->user);
		if (nz(d->dbname))
			field(st, "Database", NULL, d->dbname);
		if (d->has_password)
			field(st, "Password", NULL, "set");
		field(st, "Schema", NULL, d->schema);
		if (d->threads) {
			snprintf(buf, sizeof(buf), "%" PRIu32, d->threads);
			field(st, "Threads", NULL, buf);
		} else {
			field(st, "Threads", NULL, NULL);
		}
	} else {
		field(st, "Destination", NULL, NULL);
	}
	field(st, "dbt", NULL, nz(e->dbt_path) ? e->dbt_path : "dbt on dbtd's PATH");
	if (e->n_env == 0)
		field(st, "Variables", NULL, NULL);
	for (size_t i = 0; i < e->n_env; i++) {
		char *kv = NULL;

		if (asprintf(&kv, "%s=%s", e->env[i]->key, e->env[i]->value) < 0)
			kv = NULL;
		field(st, i == 0 ? "Variables" : "", NULL, kv);
		free(kv);
	}
	field_time(st, "Created", e->created_at_ms);
}

/* The detail panel of a job and its steps. */
void
out_job_view(const struct out_style *st, const Dbtd__Job *j)
{
	char buf[32];

	panel_title(st, "Job", j->name);
	field(st, "Environment", NULL, j->environment);
	field(st, "Type", NULL, j->type ? job_type_json(j->type) : NULL);
	field(st, "Schedule", NULL, j->schedule);
	if (nz(j->schedule)) {
		field(st, "Time zone", NULL, nz(j->timezone) ? j->timezone : "UTC");
		if (j->n_next_fires_ms == 0)
			field(st, "Next runs", NULL, "never");
		for (size_t i = 0; i < j->n_next_fires_ms; i++)
			field_zoned_time(st, i == 0 ? "Next runs" : "", j->next_fires_ms[i],
			                 j->timezone);
	}
	field(st, "On pipeline", NULL, j->on_pipeline);
	if (j->timeout_s) {
		snprintf(buf, sizeof(buf), "%" PRIu32 "s", j->timeout_s);
		field(st, "Timeout", NULL, buf);
	} else {
		field(st, "Timeout", NULL, "none");
	}
	if (j->keep_runs) {
		snprintf(buf, sizeof(buf), "the newest %" PRIu32, j->keep_runs);
		field(st, "Keep runs", NULL, buf);
	} else {
		field(st, "Keep runs", NULL, "dbtd's --keep-runs");
	}
	if (j->keep_days) {
		snprintf(buf, sizeof(buf), "%" PRIu32 " days", j->keep_days);
		field(st, "Keep days", NULL, buf);
	} else {
		field(st, "Keep days", NULL, "dbtd's --keep-days");
	}
	field_time(st, "Created", j->created_at_ms);
	putchar('\n');
	out_put_sgr(st, SGR_BOLD, "Steps");
	putchar('\n');
	for (size_t i = 0; i < j->n_steps; i++) {
		const Dbtd__JobStep *s = j->steps[i];

		printf("  %2zu  ", i + 1);
		if (nz(s->command)) {
			fputs(s->command, stdout);
		} else {
			fputs(or_dash(s->type), stdout);
			for (size_t k = 0; k < s->n_params; k++)
				printf("%s%s=%s", k ? "," : ":", s->params[k]->key,
				       s->params[k]->value);
		}
		putchar('\n');
	}
}

/* ---- public: tables ---- */

/* The table of projects. */
int
out_projects_table(const struct out_style *st, Dbtd__Project *const *items,
                   size_t n)
{
	static const char *const head[] = { "NAME", "REPO", "SUBDIR" };
	struct table t;
	int rc;

	if (n == 0) {
		printf("No projects. Add one with: dbtctl project add NAME --repo URL\n");
		return 0;
	}
	table_init(&t, 3);
	rc = table_add(&t, head, NULL);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *row[] = { items[i]->name, items[i]->repo, or_dash(items[i]->subdir) };
		rc = table_add(&t, row, NULL);
	}
	return table_finish(st, &t, rc);
}

/* The table of environments. */
int
out_environments_table(const struct out_style *st,
                       Dbtd__Environment *const *items, size_t n)
{
	static const char *const head[] = { "NAME", "PROJECT", "BRANCH", "DESTINATION", "SCHEMA" };
	struct table t;
	int rc;

	if (n == 0) {
		printf("No environments. Add one with: dbtctl env add NAME --project P ...\n");
		return 0;
	}
	table_init(&t, 5);
	rc = table_add(&t, head, NULL);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const Dbtd__Destination *d = items[i]->destination;
		char *dest = NULL;
		int k = -1;

		if (d != NULL && nz(d->path))
			k = asprintf(&dest, "%s %s", or_dash(d->type), d->path);
		else if (d != NULL && nz(d->host))
			k = asprintf(&dest, "%s %s@%s:%" PRIu32 "/%s", or_dash(d->type),
			             or_dash(d->user), d->host, d->port, or_dash(d->dbname));
		else
			k = asprintf(&dest, "%s", d ? or_dash(d->type) : "-");
		if (k < 0)
			return table_finish(st, &t, -ENOMEM);
		{
			const char *row[] = { items[i]->name, items[i]->project, items[i]->branch,
			                      dest, d ? or_dash(d->schema) : "-" };
			rc = table_add(&t, row, NULL);
		}
		free(dest);
	}
	return table_finish(st, &t, rc);
}

/* The table of jobs. */
int
out_jobs_table(const struct out_style *st, Dbtd__Job *const *items, size_t n)
{
	static const char *const head[] = { "NAME", "ENVIRONMENT", "TYPE", "COMMANDS", "SCHEDULE" };
	struct table t;
	int rc;

	if (n == 0) {
		printf("No jobs. Add one with: dbtctl job add NAME --env E --command \"dbt build\"\n");
		return 0;
	}
	table_init(&t, 5);
	rc = table_add(&t, head, NULL);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const Dbtd__Job *j = items[i];
		char *cmds = strdup("");

		for (size_t k = 0; cmds != NULL && k < j->n_steps; k++) {
			const char *what = nz(j->steps[k]->command) ? j->steps[k]->command
			                                            : or_dash(j->steps[k]->type);
			char *next = NULL;

			if (asprintf(&next, "%s%s%s", cmds, k ? "; " : "", what) < 0)
				next = NULL;
			free(cmds);
			cmds = next;
		}
		if (cmds == NULL)
			return table_finish(st, &t, -ENOMEM);
		{
			const char *row[] = { j->name, j->environment,
			                      j->type ? job_type_json(j->type) : "-",
			                      or_dash(cmds), or_dash(j->schedule) };
			rc = table_add(&t, row, NULL);
		}
		free(cmds);
	}
	return table_finish(st, &t, rc);
}

/* The step plugins dbtd loaded, then the files it refused and why. */
int
out_plugins_view(const struct out_style *st, const Dbtd__PluginList *pl)
{
	static const char *const head[] = { "TYPE", "ABI", "DESCRIPTION", "FILE" };
	struct table t;
	int rc = 0;

	field(st, "Directory", NULL, pl->directory);
	putchar('\n');
	if (pl->n_loaded == 0) {
		printf("No step plugin is loaded: every run fails at its first step.\n");
	} else {
		table_init(&t, 4);
		rc = table_add(&t, head, NULL);
		for (size_t i = 0; rc == 0 && i < pl->n_loaded; i++) {
			const Dbtd__PluginInfo *p = pl->loaded[i];
			char abi[32], *desc = NULL;

			snprintf(abi, sizeof(abi), "%" PRIu32 ".%" PRIu32, p->abi_major, p->abi_minor);
			if (asprintf(&desc, "%s%s", or_dash(p->description),
			             p->run_always ? " (runs after a failed step too)" : "") < 0)
				return table_finish(st, &t, -ENOMEM);
			{
				const char *row[] = { p->type, abi, desc, p->file };
				rc = table_add(&t, row, NULL);
			}
			free(desc);
		}
		rc = table_finish(st, &t, rc);
	}
	if (rc < 0 || pl->n_refused == 0)
		return rc;
	putchar('\n');
	out_put_sgr(st, SGR_BOLD, "Refused");
	putchar('\n');
	for (size_t i = 0; i < pl->n_refused; i++) {
		printf("  %s\n", or_dash(pl->refused[i]->file));
		fputs("      ", stdout);
		out_put_sgr(st, SGR_RED, or_dash(pl->refused[i]->reason));
		putchar('\n');
	}
	return 0;
}

/* The table of runs. */
int
out_runs_table(const struct out_style *st, Dbtd__Run *const *items, size_t n,
               int64_t now)
{
	static const char *const head[] = { "ID", "JOB", "STATUS", "TRIGGER", "BRANCH",
	                                    "COMMIT", "STARTED", "DURATION" };
	struct table t;
	int rc;

	if (n == 0) {
		printf("No runs.\n");
		return 0;
	}
	table_init(&t, 8);
	rc = table_add(&t, head, NULL);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const Dbtd__Run *r = items[i];
		char id[24], commit[8] = "-", started[40], dur[32];
		int64_t d = span_ms(r->started_at_ms, r->finished_at_ms,
		                    r->status == DBTD__RUN_STATUS__RUN_RUNNING, now);
		const char *sgr[8] = { NULL, NULL, run_status_sgr(r->status), NULL,
		                       NULL, SGR_DIM, NULL, NULL };

		snprintf(id, sizeof(id), "%" PRIu64, r->id);
		if (nz(r->commit_sha))
			snprintf(commit, sizeof(commit), "%.7s", r->commit_sha);
		if (d >= 0)
			format_duration(d, dur, sizeof(dur));
		else
			snprintf(dur, sizeof(dur), "-");
		{
			const char *row[] = { id, or_dash(r->job), run_status_human(r->status),
			                      trigger_human(r->trigger), or_dash(r->branch), commit,
			                      fmt_time(r->started_at_ms, started, sizeof(started)),
			                      dur };
			rc = table_add(&t, row, sgr);
		}
	}
	return table_finish(st, &t, rc);
}

/* ---- progress of a step ---- */

/* Most node names listed after "running:" or "failed:". */
#define PROGRESS_NAMES 5

/* "a, b, c, d, e +K more" of names into a new string, or NULL. */
static char *
name_list(char *const *v, size_t n)
{
	char *out = strdup("");

	for (size_t i = 0; out != NULL && i < n && i < PROGRESS_NAMES; i++) {
		char *next = NULL;

		if (asprintf(&next, "%s%s%s", out, i ? ", " : "", v[i] ? v[i] : "") < 0)
			next = NULL;
		free(out);
		out = next;
	}
	if (out != NULL && n > PROGRESS_NAMES) {
		char *next = NULL;

		if (asprintf(&next, "%s +%zu more", out, n - PROGRESS_NAMES) < 0)
			next = NULL;
		free(out);
		out = next;
	}
	return out;
}

/*
 * "12/30 nodes · running: a, b · failed: x" of a step's progress: running
 * nodes while the step runs, failed ones when any failed.  sep goes
 * between the parts.  Into a new string, or NULL; *failed_at is where the
 * failed part starts (sep included), or the length when there is none.
 */
static char *
progress_text(const Dbtd__Step *s, const char *unit, const char *sep,
              size_t *failed_at)
{
	const Dbtd__Progress *p = s->progress;
	char *out = NULL, *running = NULL, *failed = NULL;
	bool show_running = s->status == DBTD__STEP_STATUS__STEP_RUNNING &&
	                    p->n_running > 0;

	if (show_running && (running = name_list(p->running, p->n_running)) == NULL)
		return NULL;
	if (p->n_failed > 0 && (failed = name_list(p->failed, p->n_failed)) == NULL) {
		free(running);
		return NULL;
	}
	if (asprintf(&out, "%" PRIu32 "/%" PRIu32 " %s%s%s%s", p->done, p->total,
	             unit, running ? sep : "", running ? "running: " : "",
	             running ? running : "") < 0)
		out = NULL;
	*failed_at = out ? strlen(out) : 0;
	if (out != NULL && failed != NULL) {
		char *next = NULL;

		*failed_at += strlen(sep);
		if (asprintf(&next, "%s%sfailed: %s", out, sep, failed) < 0)
			next = NULL;
		free(out);
		out = next;
	}
	free(running);
	free(failed);
	return out;
}

/* Print progress_text, its "failed: ..." part in red. */
static void
put_progress_text(const struct out_style *st, const Dbtd__Step *s,
                  const char *unit, const char *sep)
{
	size_t at = 0;
	char *text = progress_text(s, unit, sep, &at);

	if (text == NULL)
		return;
	fwrite(text, 1, at, stdout);
	if (text[at] != '\0')
		out_put_sgr(st, SGR_RED, text + at);
	free(text);
}

/* ---- public: run panel ---- */

/* The detail panel of a run and its steps. */
void
out_run_view(const struct out_style *st, const Dbtd__Run *r, int64_t now)
{
	char buf[64], title[256];
	int64_t d;
	size_t namew = 0;

	snprintf(title, sizeof(title), "Run %" PRIu64 " %s %s", r->id,
	         st->utf8 ? "\u00b7" : "-", or_dash(r->job));
	out_put_sgr(st, SGR_BOLD, title);
	putchar('\n');

	field(st, "Status", run_status_sgr(r->status), run_status_human(r->status));
	field(st, "Trigger", NULL, trigger_human(r->trigger));
	field(st, "Branch", NULL, r->branch);
	field(st, "Commit", NULL, r->commit_sha);
	d = span_ms(r->started_at_ms, r->finished_at_ms,
	            r->status == DBTD__RUN_STATUS__RUN_RUNNING, now);
	if (d >= 0) {
		format_duration(d, buf, sizeof(buf));
		if (r->finished_at_ms <= 0)
			strncat(buf, " so far", sizeof(buf) - strlen(buf) - 1);
		field(st, "Duration", NULL, buf);
	} else {
		field(st, "Duration", NULL, NULL);
	}
	field(st, "Job type", NULL, r->job_type ? job_type_json(r->job_type) : NULL);
	field(st, "Environment", NULL, r->environment);
	field(st, "Triggered by", NULL, r->triggered_by);
	field_time(st, "Created", r->created_at_ms);
	field_time(st, "Started", r->started_at_ms);
	field_time(st, "Finished", r->finished_at_ms);
	d = run_queued_ms(r, now);
	if (d >= 0) {
		if (d < 1000)
			snprintf(buf, sizeof(buf), "%" PRId64 " ms", d);
		else
			format_duration(d, buf, sizeof(buf));
		field(st, "Queued", NULL, buf);
	} else {
		field(st, "Queued", NULL, NULL);
	}
	if (r->rerun_of) {
		snprintf(buf, sizeof(buf), "run %" PRIu64, r->rerun_of);
		field(st, "Re-run of", NULL, buf);
	}
	if (r->pr_number) {
		snprintf(buf, sizeof(buf), "#%" PRIu32, r->pr_number);
		field(st, "PR", NULL, buf);
	}
	if (nz(r->waiting_for))
		field(st, "Waiting for", NULL, r->waiting_for);
	if (nz(r->error))
		field(st, "Error", SGR_RED, r->error);

	putchar('\n');
	out_put_sgr(st, SGR_BOLD, "Steps");
	putchar('\n');
	if (r->n_steps == 0)
		printf("  (none yet)\n");
	for (size_t i = 0; i < r->n_steps; i++) {
		size_t w = text_width(or_dash(r->steps[i]->name));
		if (w > namew)
			namew = w;
	}
	for (size_t i = 0; i < r->n_steps; i++) {
		const Dbtd__Step *s = r->steps[i];

		fputs("  ", stdout);
		put_padded(st, step_status_sgr(s->status), step_mark(st, s->status),
		           st->utf8 ? 1 : 4);
		printf(" %2" PRIu32 "  ", step_index(r, i));
		put_padded(st, NULL, or_dash(s->name), namew);
		fputs("  ", stdout);
		d = span_ms(s->started_at_ms, s->finished_at_ms,
		            s->status == DBTD__STEP_STATUS__STEP_RUNNING, now);
		if (d >= 0) {
			put_padded(st, step_status_sgr(s->status), step_status_json(s->status), 9);
			printf("  %s\n", format_duration(d, buf, sizeof(buf)));
		} else {
			out_put_sgr(st, step_status_sgr(s->status), step_status_json(s->status));
			putchar('\n');
		}
		if (s->progress != NULL && s->progress->total > 0) {
			printf("%*s", st->utf8 ? 8 : 11, "");
			put_progress_text(st, s, "nodes", st->utf8 ? " \u00b7 " : " - ");
			putchar('\n');
		}
		if (nz(s->error)) {
			printf("%*s", st->utf8 ? 8 : 11, "");
			out_put_sgr(st, SGR_RED, s->error);
			putchar('\n');
		}
	}
}

/* ---- public: progress ---- */

/* Width of the bar drawn for a running step's progress. */
#define BAR_WIDTH 20

/* Start following a run with nothing shown. */
void
out_progress_init(struct out_progress *p)
{
	memset(p, 0, sizeof(*p));
}

/* End the rewritable "running" line on a terminal, if one is open. */
static void
progress_close_line(struct out_progress *p, bool erase)
{
	if (p->open == 0)
		return;
	fputs(erase ? "\r\033[K" : "\n", stdout);
	p->open = 0;
}

/* Columns of the terminal on stdout, 80 when it does not say. */
static size_t
term_width(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/*
 * A copy of s cut to at most width columns, ending with an ellipsis when
 * it was cut; NULL when out of memory.
 */
static char *
fit_width(const struct out_style *st, const char *s, size_t width)
{
	const char *ell = st->utf8 ? "\u2026" : "...";
	size_t ellw = st->utf8 ? 1 : 3, col = 0, i = 0;
	mbstate_t mbs;
	char *out;

	if (text_width(s) <= width)
		return strdup(s);
	if (width < ellw)
		return strdup("");
	memset(&mbs, 0, sizeof(mbs));
	while (s[i] != '\0') {
		wchar_t wc;
		size_t n = mbrtowc(&wc, s + i, MB_CUR_MAX, &mbs);
		size_t cw = 1;

		if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
			memset(&mbs, 0, sizeof(mbs));
			n = 1;
		} else {
			int w = wcwidth(wc);
			cw = w > 0 ? (size_t)w : 0;
		}
		if (col + cw > width - ellw)
			break;
		col += cw;
		i += n;
	}
	out = malloc(i + strlen(ell) + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, s, i);
	strcpy(out + i, ell);
	return out;
}

/*
 * Draw the running step's progress on the open line of a terminal:
 * "  ● name [#####-----]  12/30 nodes  running: a, b", fitted to the
 * terminal's width.
 */
static void
progress_bar(const struct out_style *st, struct out_progress *p,
             const Dbtd__Step *s, uint32_t idx)
{
	const Dbtd__Progress *pg = s->progress;
	const char *mark = step_mark(st, s->status);
	size_t avail = term_width(), head, fixed, barw = BAR_WIDTH, fill;
	char count[64], bar[BAR_WIDTH + 4];
	char *running = NULL, *failed = NULL, *line = NULL, *fitted;

	/* the last column stays free: a full line would wrap on some terminals */
	avail = avail > 1 ? avail - 1 : 1;
	head = 2 + text_width(mark) + 1;
	snprintf(count, sizeof(count), "%" PRIu32 "/%" PRIu32 " nodes", pg->done, pg->total);
	fixed = head + text_width(or_dash(s->name)) + 3 + 2 + strlen(count); /* " [", "]", "  " */
	if (fixed + barw > avail)
		barw = avail > fixed ? avail - fixed : 0;
	if (barw < 5) {
		bar[0] = '\0';
	} else {
		fill = pg->total ? (size_t)((uint64_t)pg->done * barw / pg->total) : 0;
		if (fill > barw)
			fill = barw;
		bar[0] = ' ';
		bar[1] = '[';
		memset(bar + 2, '#', fill);
		memset(bar + 2 + fill, '-', barw - fill);
		bar[2 + barw] = ']';
		bar[3 + barw] = '\0';
	}
	/* what failed first: a long list of running nodes is cut at the end */
	if (pg->n_failed > 0 && asprintf(&failed, "  %zu failed", pg->n_failed) < 0)
		failed = NULL;
	if (pg->n_running > 0)
		running = name_list(pg->running, pg->n_running);
	if (asprintf(&line, "%s%s  %s%s%s%s", or_dash(s->name), bar, count,
	             failed ? failed : "", running ? "  running: " : "",
	             running ? running : "") < 0)
		line = NULL;
	free(running);
	free(failed);
	if (line == NULL)
		return;
	fitted = fit_width(st, line, avail > head ? avail - head : 0);
	free(line);
	if (fitted == NULL)
		return;
	if (p->open != idx)
		progress_close_line(p, false);
	fputs("\r\033[K  ", stdout);
	out_put_sgr(st, step_status_sgr(s->status), mark);
	printf(" %s", fitted);
	fflush(stdout);
	free(fitted);
	p->open = idx;
}

/* Print the progress line of one step whose status changed. */
static void
progress_step(const struct out_style *st, struct out_progress *p,
              const Dbtd__Step *s, uint32_t idx, int64_t now)
{
	char dur[32];
	int64_t d;

	if (s->status == DBTD__STEP_STATUS__STEP_RUNNING) {
		if (!st->tty)
			return;
		if (s->progress != NULL && s->progress->total > 0)
			return; /* the bar is drawn by out_progress_update */
		progress_close_line(p, false);
		fputs("  ", stdout);
		out_put_sgr(st, step_status_sgr(s->status), step_mark(st, s->status));
		printf(" %s%s", or_dash(s->name), st->utf8 ? " \u2026" : " ...");
		fflush(stdout);
		p->open = idx;
		return;
	}
	if (!step_done(s->status))
		return;
	progress_close_line(p, p->open == idx);
	fputs("  ", stdout);
	out_put_sgr(st, step_status_sgr(s->status), step_mark(st, s->status));
	d = span_ms(s->started_at_ms, s->finished_at_ms, false, now);
	if (s->status == DBTD__STEP_STATUS__STEP_SKIPPED ||
	    s->status == DBTD__STEP_STATUS__STEP_CANCELED)
		printf(" %s (%s)\n", or_dash(s->name), step_status_json(s->status));
	else if (d >= 0)
		printf(" %s (%s)\n", or_dash(s->name), format_duration(d, dur, sizeof(dur)));
	else
		printf(" %s\n", or_dash(s->name));
	fflush(stdout);
}

/*
 * Show how far a running step is: redraw its bar on a terminal, else a
 * "  name: 12/30 nodes" line when the count changed since the last one.
 */
static void
progress_nodes(const struct out_style *st, struct out_progress *p,
               const Dbtd__Step *s, size_t i)
{
	const Dbtd__Progress *pg = s->progress;

	if (s->status != DBTD__STEP_STATUS__STEP_RUNNING || pg == NULL || pg->total == 0)
		return;
	if (st->tty) {
		progress_bar(st, p, s, (uint32_t)(i + 1));
		return;
	}
	if (p->done[i] == pg->done)
		return;
	p->done[i] = pg->done;
	printf("  %s: %" PRIu32 "/%" PRIu32 " nodes\n", or_dash(s->name), pg->done, pg->total);
	fflush(stdout);
}

/* Print what changed in a followed run since the last update. */
int
out_progress_update(const struct out_style *st, struct out_progress *p,
                    const Dbtd__Run *r, int64_t now)
{
	if (p->status == 0) {
		p->status = r->status;
	} else if (r->status != p->status) {
		if (p->status == DBTD__RUN_STATUS__RUN_QUEUED &&
		    r->status == DBTD__RUN_STATUS__RUN_RUNNING) {
			progress_close_line(p, false);
			printf("run %" PRIu64 " running\n", r->id);
			fflush(stdout);
		}
		p->status = r->status;
	}
	/* Steps are tracked by position: the daemon keeps their order. */
	for (size_t i = 0; i < r->n_steps; i++) {
		if (i >= p->nseen) {
			size_t n = r->n_steps;
			Dbtd__StepStatus *seen = realloc(p->seen, n * sizeof(*seen));
			uint32_t *done;

			if (seen == NULL)
				return -ENOMEM;
			p->seen = seen;
			done = realloc(p->done, n * sizeof(*done));
			if (done == NULL)
				return -ENOMEM;
			p->done = done;
			for (size_t k = p->nseen; k < n; k++) {
				seen[k] = DBTD__STEP_STATUS__STEP_STATUS_UNSPECIFIED;
				done[k] = UINT32_MAX;
			}
			p->nseen = n;
		}
		if (p->seen[i] != r->steps[i]->status) {
			p->seen[i] = r->steps[i]->status;
			progress_step(st, p, r->steps[i], (uint32_t)(i + 1), now);
		}
		progress_nodes(st, p, r->steps[i], i);
	}
	return 0;
}

/* Stop following a run: end an open line, free the record. */
void
out_progress_free(struct out_progress *p)
{
	progress_close_line(p, false);
	free(p->seen);
	free(p->done);
	memset(p, 0, sizeof(*p));
}

/* ---- public: step logs ---- */

/* Bytes of output gathered before they are handed to stdio. */
#define LOGS_FLUSH_AT (256u << 10)

/* SGR of a search match and of step headers. */
#define SGR_MATCH "\033[1;31m"
#define SGR_HEADER "\033[1m"
#define SGR_RESET "\033[0m"

/* A growable byte buffer; a failed allocation sets bad and drops output. */
struct sbuf {
	char *p;
	size_t len, cap;
	bool bad;
};

/* A timestamp being formatted: the seconds part is kept between lines. */
struct tscache {
	bool valid;
	int64_t sec;
	size_t len;   /* bytes of "2026-11-28T15:02:46" in buf */
	char buf[64]; /* then ".123Z" */
};

/* A line kept for the context before a match (a copy: frames go away). */
struct ctx_line {
	uint64_t line;
	int64_t ts;
	unsigned stream;
	struct sbuf text;
};

/* What is known of one step while printing its log. */
struct log_step {
	uint64_t lines;  /* lines seen */
	bool header;     /* its header was printed */
};

struct out_logs {
	struct out_logs_opts o;
	FILE *f;
	const Dbtd__Run *run;
	struct log_step *steps;  /* by index - 1 */
	size_t nsteps;
	struct sbuf out;         /* output not yet written to f */
	struct tscache ts;
	uint64_t nlines, nmatches;

	/* search */
	char *needle;            /* plain search, lower-cased unless case-sensitive */
	size_t nlen;
	regex_t re, re_hl;       /* --regex: to match, and to find the matched parts */
	bool have_re, have_re_hl;
	struct sbuf zline;       /* --regex: the line, NUL-terminated */
	uint8_t *lower;          /* a chunk lower-cased (case-insensitive plain search) */
	size_t lower_cap;
	size_t *hl;              /* [start, end) pairs of the parts to highlight */
	size_t nhl, hl_cap;

	/* context */
	struct ctx_line *ring;   /* the last lines not printed, o.context of them */
	size_t ring_len, ring_head;
	uint32_t cur_step;       /* step of the lines in the ring */
	unsigned after;          /* lines of context still due after a match */
	bool printed;            /* a line of the search was printed */
	uint32_t last_step;      /* ... and the last one */
	uint64_t last_line;
};

/* Make room for more bytes; 0, or -ENOMEM with b->bad set. */
static int
sb_reserve(struct sbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->cap - b->len >= more)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < more) {
		if (cap > SIZE_MAX / 2) {
			b->bad = true;
			return -ENOMEM;
		}
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (p == NULL) {
		b->bad = true;
		return -ENOMEM;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Append n bytes. */
static void
sb_put(struct sbuf *b, const void *data, size_t n)
{
	if (sb_reserve(b, n) < 0)
		return;
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

/* Append a string. */
static void
sb_puts(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Append one byte. */
static void
sb_putc(struct sbuf *b, char c)
{
	if (sb_reserve(b, 1) == 0)
		b->p[b->len++] = c;
}

/* Append a number in decimal. */
static void
sb_num(struct sbuf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);

	do
		tmp[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	sb_put(b, tmp + i, sizeof(tmp) - i);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_len(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;
	if (c < 0xe0)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c < 0xf0) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
			return 0; /* overlong, or a surrogate */
		return 3;
	}
	if (c < 0xf5) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
			return 0; /* overlong, or past U+10FFFF */
		return 4;
	}
	return 0;
}

static const char hexdigit[] = "0123456789abcdef";

/*
 * Append text safe for a terminal: control characters other than TAB
 * (C0, DEL and C1) and bytes that are not UTF-8 become \xNN.
 */
static void
sb_escaped(struct sbuf *b, const uint8_t *s, size_t n)
{
	char *o;

	if (n > SIZE_MAX / 4 || sb_reserve(b, n * 4) < 0)
		return;
	o = b->p + b->len;
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k;

		if ((c >= 0x20 && c < 0x7f) || c == '\t') {
			*o++ = (char)c;
			i++;
			continue;
		}
		if (c >= 0x80 && (k = utf8_len(s + i, n - i)) != 0 &&
		    !(c == 0xc2 && s[i + 1] < 0xa0)) {
			memcpy(o, s + i, k);
			o += k;
			i += k;
			continue;
		}
		*o++ = '\\';
		*o++ = 'x';
		*o++ = hexdigit[c >> 4];
		*o++ = hexdigit[c & 15];
		i++;
	}
	b->len = (size_t)(o - b->p);
}

/* Append a JSON string of s; bytes that are not UTF-8 become U+FFFD. */
static void
sb_json_str(struct sbuf *b, const uint8_t *s, size_t n)
{
	char *o;

	if (n > SIZE_MAX / 6 - 2 || sb_reserve(b, n * 6 + 2) < 0)
		return;
	o = b->p + b->len;
	*o++ = '"';
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k;

		if (c >= 0x80) {
			k = utf8_len(s + i, n - i);
			if (k == 0) {
				memcpy(o, "\xef\xbf\xbd", 3);
				o += 3;
				i++;
			} else {
				memcpy(o, s + i, k);
				o += k;
				i += k;
			}
			continue;
		}
		i++;
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c >= 0x20) {
			*o++ = (char)c;
		} else if (c == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else if (c == '\t') {
			*o++ = '\\';
			*o++ = 't';
		} else if (c == '\r') {
			*o++ = '\\';
			*o++ = 'r';
		} else {
			memcpy(o, "\\u00", 4);
			o[4] = hexdigit[c >> 4];
			o[5] = hexdigit[c & 15];
			o += 6;
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
}

/* Append ms since the epoch as "2026-11-28T15:02:46.123Z". */
static void
sb_ts(struct sbuf *b, struct tscache *c, int64_t ms)
{
	int64_t sec = ms / 1000, frac = ms % 1000;

	if (frac < 0) {
		frac += 1000;
		sec--;
	}
	if (!c->valid || c->sec != sec) {
		time_t t = (time_t)sec;
		struct tm tm;

		c->len = 0;
		if (gmtime_r(&t, &tm) != NULL)
			c->len = strftime(c->buf, sizeof(c->buf) - 8, "%Y-%m-%dT%H:%M:%S", &tm);
		if (c->len == 0)
			c->len = (size_t)snprintf(c->buf, sizeof(c->buf) - 8, "@%" PRId64, sec);
		c->sec = sec;
		c->valid = true;
	}
	c->buf[c->len] = '.';
	c->buf[c->len + 1] = (char)('0' + frac / 100);
	c->buf[c->len + 2] = (char)('0' + frac / 10 % 10);
	c->buf[c->len + 3] = (char)('0' + frac % 10);
	c->buf[c->len + 4] = 'Z';
	sb_put(b, c->buf, c->len + 5);
}

/* The stream of a line as printed: "info", "out ", "err " (4 columns). */
static const char *
stream_col(unsigned stream)
{
	switch (stream) {
	case 0:  return "info";
	case 1:  return "out ";
	case 2:  return "err ";
	default: return "?   ";
	}
}

/* The stream of a line in JSON. */
static const char *
stream_json(unsigned stream)
{
	switch (stream) {
	case 0:  return "info";
	case 1:  return "out";
	case 2:  return "err";
	default: return "unknown";
	}
}

/* The step of the run with 1-based index idx, or NULL. */
static const Dbtd__Step *
run_step(const Dbtd__Run *r, uint32_t idx)
{
	for (size_t i = 0; r != NULL && i < r->n_steps; i++)
		if (step_index(r, i) == idx)
			return r->steps[i];
	return NULL;
}

/* The record of step idx (grown as needed), or NULL when out of memory. */
static struct log_step *
log_step_of(struct out_logs *lg, uint32_t idx)
{
	if (idx == 0)
		idx = 1;
	if (idx > lg->nsteps) {
		size_t n = idx < 16 ? 16 : (size_t)idx * 2;
		struct log_step *s = realloc(lg->steps, n * sizeof(*s));

		if (s == NULL)
			return NULL;
		memset(s + lg->nsteps, 0, (n - lg->nsteps) * sizeof(*s));
		lg->steps = s;
		lg->nsteps = n;
	}
	return &lg->steps[idx - 1];
}

/* Hand the gathered output to stdio.  0, -ENOMEM or -EIO. */
static int
logs_flush(struct out_logs *lg)
{
	if (lg->out.len > 0 && fwrite(lg->out.p, 1, lg->out.len, lg->f) != lg->out.len) {
		lg->out.len = 0;
		return -EIO;
	}
	lg->out.len = 0;
	if (lg->out.bad)
		return -ENOMEM;
	return ferror(lg->f) ? -EIO : 0;
}

/* "== Step 4: Invoke dbt build (failed, 6.2s) ==" */
static void
logs_header(struct out_logs *lg, uint32_t idx)
{
	const Dbtd__Step *s = run_step(lg->run, idx);
	struct log_step *ls = log_step_of(lg, idx);
	Dbtd__StepStatus status = s ? s->status : DBTD__STEP_STATUS__STEP_STATUS_UNSPECIFIED;
	bool color = lg->o.color && !lg->o.raw;
	int64_t d = -1;
	char dur[40];

	if (ls == NULL) {
		lg->out.bad = true;
		return;
	}
	ls->header = true;
	if (s != NULL)
		d = span_ms(s->started_at_ms, s->finished_at_ms,
		            status == DBTD__STEP_STATUS__STEP_RUNNING, now_ms());
	/* lines came from a step the last known state calls pending: it runs */
	if ((status == DBTD__STEP_STATUS__STEP_PENDING ||
	     status == DBTD__STEP_STATUS__STEP_STATUS_UNSPECIFIED) && ls->lines > 0)
		status = DBTD__STEP_STATUS__STEP_RUNNING;
	if (color)
		sb_puts(&lg->out, SGR_HEADER);
	sb_puts(&lg->out, "== Step ");
	sb_num(&lg->out, idx);
	sb_puts(&lg->out, ": ");
	if (s == NULL || !nz(s->name))
		sb_puts(&lg->out, "-");
	else if (lg->o.raw)
		sb_puts(&lg->out, s->name);
	else
		sb_escaped(&lg->out, (const uint8_t *)s->name, strlen(s->name));
	sb_puts(&lg->out, " (");
	sb_puts(&lg->out, status ? step_status_json(status) : "unknown");
	if (d >= 0) {
		sb_puts(&lg->out, ", ");
		sb_puts(&lg->out, format_duration(d, dur, sizeof(dur)));
		if (s->finished_at_ms <= 0)
			sb_puts(&lg->out, " so far");
	}
	sb_puts(&lg->out, ") ==");
	if (color)
		sb_puts(&lg->out, SGR_RESET);
	sb_putc(&lg->out, '\n');
}

/*
 * Headers due before the first line of step idx: with every step shown,
 * those of the steps before it that had no line yet, then its own.
 */
static void
logs_headers_upto(struct out_logs *lg, uint32_t idx)
{
	const Dbtd__Run *r = lg->run;

	if (lg->o.step == 0) {
		for (size_t i = 0; r != NULL && i < r->n_steps; i++) {
			uint32_t k = step_index(r, i);
			struct log_step *ls;

			if (k >= idx)
				continue;
			ls = log_step_of(lg, k);
			if (ls != NULL && !ls->header)
				logs_header(lg, k);
		}
	}
	logs_header(lg, idx);
}

/* Append the text of a line: raw, or escaped with the parts in hl marked. */
static void
logs_text(struct out_logs *lg, const uint8_t *text, size_t len, bool mark)
{
	size_t pos = 0;

	if (lg->o.raw) {
		sb_put(&lg->out, text, len);
		return;
	}
	if (mark) {
		for (size_t k = 0; k < lg->nhl; k++) {
			size_t a = lg->hl[2 * k], e = lg->hl[2 * k + 1];

			sb_escaped(&lg->out, text + pos, a - pos);
			sb_puts(&lg->out, SGR_MATCH);
			sb_escaped(&lg->out, text + a, e - a);
			sb_puts(&lg->out, SGR_RESET);
			pos = e;
		}
	}
	sb_escaped(&lg->out, text + pos, len - pos);
}

/* Append one JSON Lines object of a line. */
static void
logs_json_line(struct out_logs *lg, uint32_t idx, const char *name,
               uint64_t line, int64_t ts, unsigned stream,
               const uint8_t *text, size_t len)
{
	struct sbuf *b = &lg->out;

	sb_puts(b, "{\"step\": ");
	sb_num(b, idx);
	sb_puts(b, ", \"step_name\": ");
	if (name != NULL)
		sb_json_str(b, (const uint8_t *)name, strlen(name));
	else
		sb_puts(b, "null");
	sb_puts(b, ", \"line\": ");
	sb_num(b, line);
	sb_puts(b, ", \"ts\": \"");
	sb_ts(b, &lg->ts, ts);
	sb_puts(b, "\", \"stream\": \"");
	sb_puts(b, stream_json(stream));
	sb_puts(b, "\", \"text\": ");
	sb_json_str(b, text, len);
	sb_puts(b, "}\n");
}

/*
 * Append one line: "<ts> <stream> <text>", after "NAME:LINE: " for a match
 * or "NAME-LINE- " for context when searching; JSON Lines with --json.
 */
static void
logs_line(struct out_logs *lg, uint32_t idx, const char *name, uint64_t line,
          int64_t ts, unsigned stream, const uint8_t *text, size_t len,
          char sep, bool mark)
{
	struct sbuf *b = &lg->out;

	lg->nlines++;
	if (lg->o.json) {
		logs_json_line(lg, idx, name, line, ts, stream, text, len);
		return;
	}
	if (sep != '\0') {
		if (name != NULL) {
			sb_escaped(b, (const uint8_t *)name, strlen(name));
		} else {
			sb_puts(b, "step ");
			sb_num(b, idx);
		}
		sb_putc(b, sep);
		sb_num(b, line);
		sb_putc(b, sep);
		sb_putc(b, ' ');
	}
	sb_ts(b, &lg->ts, ts);
	sb_putc(b, ' ');
	sb_put(b, stream_col(stream), 4);
	sb_putc(b, ' ');
	logs_text(lg, text, len, mark);
	sb_putc(b, '\n');
}

/*
 * Find the parts of a matching line to highlight into lg->hl: in folded,
 * the line as searched (lower-cased for a plain search in any case; a C
 * string for --regex).
 */
static void
logs_find_parts(struct out_logs *lg, const uint8_t *folded, size_t len)
{
	lg->nhl = 0;
	for (size_t pos = 0; pos < len;) {
		size_t a, e;

		if (lg->have_re_hl) {
			regmatch_t m[1];
			int fl = REG_STARTEND | (pos > 0 ? REG_NOTBOL : 0);

			m[0].rm_so = (regoff_t)pos;
			m[0].rm_eo = (regoff_t)len;
			if (regexec(&lg->re_hl, (const char *)folded, 1, m, fl) != 0)
				break;
			a = (size_t)m[0].rm_so;
			e = (size_t)m[0].rm_eo;
			if (e <= a) { /* an empty match: nothing to show, look further */
				pos = a + 1;
				continue;
			}
		} else if (lg->needle != NULL) {
			const uint8_t *p = memmem(folded + pos, len - pos, lg->needle, lg->nlen);

			if (p == NULL)
				break;
			a = (size_t)(p - folded);
			e = a + lg->nlen;
		} else {
			break;
		}
		if (lg->nhl == lg->hl_cap) {
			size_t cap = lg->hl_cap ? lg->hl_cap * 2 : 8;
			size_t *hl = realloc(lg->hl, cap * 2 * sizeof(*hl));

			if (hl == NULL)
				break; /* fewer parts marked: harmless */
			lg->hl = hl;
			lg->hl_cap = cap;
		}
		lg->hl[2 * lg->nhl] = a;
		lg->hl[2 * lg->nhl + 1] = e;
		lg->nhl++;
		pos = e;
	}
}

/* Keep a line that was not printed for the context of a later match. */
static void
logs_ring_push(struct out_logs *lg, uint64_t line, const struct logrec *rec)
{
	struct ctx_line *c;
	size_t n = lg->o.context;

	if (lg->ring_len < n) {
		c = &lg->ring[(lg->ring_head + lg->ring_len) % n];
		lg->ring_len++;
	} else {
		c = &lg->ring[lg->ring_head];
		lg->ring_head = (lg->ring_head + 1) % n;
	}
	c->line = line;
	c->ts = rec->ts_ms;
	c->stream = rec->stream;
	c->text.len = 0;
	sb_put(&c->text, rec->text, rec->len);
	if (c->text.bad)
		lg->out.bad = true;
}

/*
 * One line of a searched step: print it (and its context) or keep it.
 * folded is the line as searched (see logs_find_parts).
 */
static void
logs_search_line(struct out_logs *lg, uint32_t idx, const char *name,
                 uint64_t line, const struct logrec *rec, bool match,
                 const uint8_t *folded)
{
	unsigned ctx = lg->o.json ? 0 : lg->o.context;
	bool same = lg->printed && lg->last_step == idx;

	if (!match) {
		if (ctx == 0)
			return;
		if (lg->after > 0) {
			lg->after--;
			logs_line(lg, idx, name, line, rec->ts_ms, rec->stream,
			          rec->text, rec->len, '-', false);
			lg->printed = true;
			lg->last_step = idx;
			lg->last_line = line;
		} else {
			logs_ring_push(lg, line, rec);
		}
		return;
	}
	lg->nmatches++;
	if (ctx > 0) {
		uint64_t first = line;

		/* the kept lines that are context of this match, oldest first */
		for (size_t k = 0; k < lg->ring_len; k++) {
			const struct ctx_line *c = &lg->ring[(lg->ring_head + k) % ctx];

			if (c->line + ctx >= line && c->line < first && (!same || c->line > lg->last_line))
				first = c->line;
		}
		if (lg->printed && !(same && lg->last_line + 1 == first))
			sb_puts(&lg->out, "--\n");
		for (size_t k = 0; k < lg->ring_len; k++) {
			const struct ctx_line *c = &lg->ring[(lg->ring_head + k) % ctx];

			if (c->line >= first && c->line < line)
				logs_line(lg, idx, name, c->line, c->ts, c->stream,
				          (const uint8_t *)c->text.p, c->text.len, '-', false);
		}
		lg->ring_len = 0;
		lg->ring_head = 0;
		lg->after = ctx;
	}
	if (lg->o.color && !lg->o.json)
		logs_find_parts(lg, folded, rec->len);
	logs_line(lg, idx, name, line, rec->ts_ms, rec->stream, rec->text, rec->len,
	          ':', lg->o.color && !lg->o.json);
	lg->printed = true;
	lg->last_step = idx;
	lg->last_line = line;
}

/* Where needle next occurs in hay[from..len), or SIZE_MAX. */
static size_t
find_from(const uint8_t *hay, size_t len, size_t from, const char *needle,
          size_t nlen)
{
	const uint8_t *p;

	if (from >= len)
		return SIZE_MAX;
	p = memmem(hay + from, len - from, needle, nlen);
	return p ? (size_t)(p - hay) : SIZE_MAX;
}

/*
 * ASCII letters of s[0..n) lower-cased into out (which may be s), eight
 * bytes at a time: per byte, h is its low seven bits; h + 0x3f has bit 7
 * set when h >= 'A', h + 0x25 when h > 'Z' (no carry crosses a byte), and
 * only bytes below 0x80 are letters.
 */
static void
fold_ascii(uint8_t *out, const uint8_t *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t x, h, upper;

		memcpy(&x, s + i, 8);
		h = x & ~high;
		upper = (h + ones * (0x80 - 'A')) & ~(h + ones * (0x7f - 'Z')) & ~x & high;
		x |= upper >> 2;
		memcpy(out + i, &x, 8);
	}
	for (; i < n; i++)
		out[i] = (uint8_t)(s[i] + (((unsigned)s[i] - 'A' < 26u) << 5));
}

/* Create the printer. */
int
out_logs_new(struct out_logs **out, const struct out_logs_opts *opts, FILE *f,
             char *err, size_t errlen)
{
	struct out_logs *lg = calloc(1, sizeof(*lg));
	int rc;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (lg == NULL)
		return -ENOMEM;
	lg->o = *opts;
	lg->f = f;
	if (lg->o.search != NULL && lg->o.regex) {
		int fl = REG_EXTENDED | (lg->o.case_sensitive ? 0 : REG_ICASE);

		rc = regcomp(&lg->re, lg->o.search, fl | REG_NOSUB);
		if (rc != 0) {
			if (err != NULL)
				regerror(rc, &lg->re, err, errlen);
			free(lg);
			return -EINVAL;
		}
		lg->have_re = true;
		if (lg->o.color && !lg->o.json) {
			if (regcomp(&lg->re_hl, lg->o.search, fl) == 0)
				lg->have_re_hl = true;
		}
	} else if (lg->o.search != NULL) {
		lg->nlen = strlen(lg->o.search);
		lg->needle = strdup(lg->o.search);
		if (lg->needle == NULL) {
			free(lg);
			return -ENOMEM;
		}
		if (!lg->o.case_sensitive)
			fold_ascii((uint8_t *)lg->needle, (const uint8_t *)lg->needle, lg->nlen);
	}
	if (lg->o.search != NULL && lg->o.context > 0 && !lg->o.json) {
		lg->ring = calloc(lg->o.context, sizeof(*lg->ring));
		if (lg->ring == NULL) {
			out_logs_free(lg);
			return -ENOMEM;
		}
	}
	*out = lg;
	return 0;
}

/* The run the log belongs to. */
void
out_logs_set_run(struct out_logs *lg, const Dbtd__Run *run)
{
	lg->run = run;
}

/* Print one chunk of records of step idx. */
int
out_logs_chunk(struct out_logs *lg, uint32_t idx, const uint8_t *data, size_t len)
{
	const Dbtd__Step *s = run_step(lg->run, idx);
	const char *name = s != NULL && nz(s->name) ? s->name : NULL;
	struct log_step *ls = log_step_of(lg, idx);
	const uint8_t *hay = data;
	size_t off = 0, cand = 0;
	bool fresh = false; /* cand holds the next candidate match */
	struct logrec rec;
	int rc;

	if (ls == NULL)
		return -ENOMEM;
	if (idx != lg->cur_step) {
		/* context never reaches across steps */
		lg->cur_step = idx;
		lg->after = 0;
		lg->ring_len = 0;
		lg->ring_head = 0;
	}
	if (lg->needle != NULL && !lg->o.case_sensitive) {
		if (lg->lower_cap < len) {
			uint8_t *p = realloc(lg->lower, len);

			if (p == NULL)
				return -ENOMEM;
			lg->lower = p;
			lg->lower_cap = len;
		}
		fold_ascii(lg->lower, data, len);
		hay = lg->lower;
	}

	while ((rc = logrec_next(data, len, &off, &rec)) == 1) {
		uint64_t line = ++ls->lines;

		if (lg->o.search == NULL) {
			if (!ls->header && !lg->o.json)
				logs_headers_upto(lg, idx);
			logs_line(lg, idx, name, line, rec.ts_ms, rec.stream, rec.text,
			          rec.len, '\0', false);
		} else if (lg->have_re) {
			/*
			 * regexec wants a C string (REG_STARTEND lets it see past a
			 * NUL in the text, but the end must be one all the same)
			 */
			regmatch_t m[1];

			lg->zline.len = 0;
			sb_put(&lg->zline, rec.text, rec.len);
			sb_putc(&lg->zline, '\0');
			if (lg->zline.bad)
				return -ENOMEM;
			m[0].rm_so = 0;
			m[0].rm_eo = (regoff_t)rec.len;
			logs_search_line(lg, idx, name, line, &rec,
			                 regexec(&lg->re, lg->zline.p, 1, m, REG_STARTEND) == 0,
			                 (const uint8_t *)lg->zline.p);
		} else {
			/*
			 * The needle is looked for in the whole chunk at once; a
			 * candidate counts when it lies within this line's text.
			 */
			size_t ts = (size_t)(rec.text - data), te = ts + rec.len;
			bool match;

			if (!fresh || cand < ts) {
				cand = find_from(hay, len, ts, lg->needle, lg->nlen);
				fresh = true;
			}
			match = cand < te && cand + lg->nlen <= te;
			if (match)
				fresh = false;
			logs_search_line(lg, idx, name, line, &rec, match, hay + ts);
		}
		if (lg->out.len >= LOGS_FLUSH_AT && (rc = logs_flush(lg)) < 0)
			return rc;
	}
	if (rc < 0) {
		logs_flush(lg);
		return -EBADMSG;
	}
	return logs_flush(lg);
}

/* Headers of the steps without lines; write everything out. */
int
out_logs_finish(struct out_logs *lg)
{
	const Dbtd__Run *r = lg->run;

	if (lg->o.search == NULL && !lg->o.json && lg->o.step == 0) {
		for (size_t i = 0; r != NULL && i < r->n_steps; i++) {
			uint32_t k = step_index(r, i);
			struct log_step *ls = log_step_of(lg, k);

			if (ls == NULL)
				return -ENOMEM;
			if (!ls->header)
				logs_header(lg, k);
		}
	}
	return logs_flush(lg);
}

uint64_t
out_logs_lines(const struct out_logs *lg)
{
	return lg->nlines;
}

uint64_t
out_logs_matches(const struct out_logs *lg)
{
	return lg->nmatches;
}

uint64_t
out_logs_step_lines(const struct out_logs *lg, uint32_t idx)
{
	return idx >= 1 && idx <= lg->nsteps ? lg->steps[idx - 1].lines : 0;
}

/* Release the printer. */
void
out_logs_free(struct out_logs *lg)
{
	if (lg == NULL)
		return;
	if (lg->have_re)
		regfree(&lg->re);
	if (lg->have_re_hl)
		regfree(&lg->re_hl);
	for (size_t k = 0; lg->ring != NULL && k < lg->o.context; k++)
		free(lg->ring[k].text.p);
	free(lg->ring);
	free(lg->needle);
	free(lg->zline.p);
	free(lg->lower);
	free(lg->hl);
	free(lg->steps);
	free(lg->out.p);
	free(lg);
}
