/* output.c - JSON, tables, panels and progress lines of dbtctl (see output.h). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <langinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

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

/* Print text, in colour sgr when the style allows it and sgr is set. */
static void
put_sgr(const struct out_style *st, const char *sgr, const char *text)
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

	put_sgr(st, sgr, text);
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
				put_sgr(st, sgr, cell);
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

		put_sgr(st, sgr, line ? line : "");
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

/* The header line of a panel: "Kind name" in bold. */
static void
panel_title(const struct out_style *st, const char *kind, const char *name)
{
	char *title = NULL;

	if (asprintf(&title, "%s %s", kind, or_dash(name)) < 0)
		title = NULL;
	put_sgr(st, SGR_BOLD, title ? title : kind);
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
	jset(o, "on_pipeline", jstr(j->on_pipeline), &bad);
	jset(o, "timeout_s", jnz(j->timeout_s), &bad);
	jset(o, "created_at", jtime(j->created_at_ms), &bad);
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
	if (nz(j->schedule))
		field(st, "Time zone", NULL, nz(j->timezone) ? j->timezone : "UTC");
	field(st, "On pipeline", NULL, j->on_pipeline);
	if (j->timeout_s) {
		snprintf(buf, sizeof(buf), "%" PRIu32 "s", j->timeout_s);
		field(st, "Timeout", NULL, buf);
	} else {
		field(st, "Timeout", NULL, "none");
	}
	field_time(st, "Created", j->created_at_ms);
	putchar('\n');
	put_sgr(st, SGR_BOLD, "Steps");
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
	put_sgr(st, SGR_BOLD, title);
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
	put_sgr(st, SGR_BOLD, "Steps");
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
			put_sgr(st, step_status_sgr(s->status), step_status_json(s->status));
			putchar('\n');
		}
		if (nz(s->error)) {
			printf("%*s", st->utf8 ? 8 : 11, "");
			put_sgr(st, SGR_RED, s->error);
			putchar('\n');
		}
	}
}

/* ---- public: progress ---- */

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
		progress_close_line(p, false);
		fputs("  ", stdout);
		put_sgr(st, step_status_sgr(s->status), step_mark(st, s->status));
		printf(" %s%s", or_dash(s->name), st->utf8 ? " \u2026" : " ...");
		fflush(stdout);
		p->open = idx;
		return;
	}
	if (!step_done(s->status))
		return;
	progress_close_line(p, p->open == idx);
	fputs("  ", stdout);
	put_sgr(st, step_status_sgr(s->status), step_mark(st, s->status));
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

			if (seen == NULL)
				return -ENOMEM;
			for (size_t k = p->nseen; k < n; k++)
				seen[k] = DBTD__STEP_STATUS__STEP_STATUS_UNSPECIFIED;
			p->seen = seen;
			p->nseen = n;
		}
		if (p->seen[i] == r->steps[i]->status)
			continue;
		p->seen[i] = r->steps[i]->status;
		progress_step(st, p, r->steps[i], (uint32_t)(i + 1), now);
	}
	return 0;
}

/* Stop following a run: end an open line, free the record. */
void
out_progress_free(struct out_progress *p)
{
	progress_close_line(p, false);
	free(p->seen);
	memset(p, 0, sizeof(*p));
}
