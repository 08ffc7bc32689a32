/*
 * notify.c - a dbtd step plugin: deliver a summary of the run so far.
 *
 * Put a `notify` step after the job's dbt commands:
 *
 *     dbtctl job add nightly --env prod --command "dbt build" \
 *         --step notify:file=/var/log/dbt/runs.jsonl
 *
 * It reads what the run did so far (run id, job, whether an earlier step
 * failed and why) and dbt's target/run_results.json (how many nodes
 * succeeded, failed, were skipped; which ones failed and the message), logs
 * that in its step log, and delivers it:
 *
 *   file=PATH     append the summary to PATH as one JSON line (created 0644)
 *   command=CMD   run CMD with /bin/sh; the summary is in its environment:
 *                 DBTD_SUMMARY (the JSON line), DBTD_SUMMARY_TEXT (one line
 *                 for people), DBTD_RUN_ID, DBTD_JOB, DBTD_RUN_STATUS
 *
 * At least one of them; both may be given.  The step fails when a delivery
 * fails.  The plugin sets DBTD_STEP_RUN_ALWAYS (step ABI 1.2), so dbtd runs
 * it also after a failed step: failed runs are reported too.
 *
 * It builds from the installed <dbtd/step.h> alone (see the Makefile), and
 * shows the habits of dbtd-step(3): every host service through the host
 * table, a descriptor member newer than 1.0 set only when the header has
 * it, cancel checked around the child it spawns, set_error() for the
 * one-line reason.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream, gmtime_r, O_CLOEXEC */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dbtd/step.h>

#define MAX_FAILURES 20     /* failed nodes listed in a summary */
#define MAX_MESSAGE 500     /* bytes of a failure message kept in the JSON */
#define MAX_LOG_MESSAGE 200 /* bytes of it shown in the step log */
#define MAX_RESULTS_FILE (256u << 20)

/* A node that failed (status error or fail) and dbt's message about it. */
struct failure {
	char *unique_id;
	char *status;
	char *message;
};

/* What target/run_results.json says. */
struct results {
	int found;                            /* the file was read */
	unsigned success, error, skipped, pass, fail, warn, other;
	struct failure failures[MAX_FAILURES];
	size_t nfailures;                     /* listed */
	size_t nfailed;                       /* all nodes with error or fail */
};

/* printf into a new string; NULL when out of memory. */
static char * __attribute__((format(printf, 1, 2)))
fmt(const char *format, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, format);
	n = vsnprintf(NULL, 0, format, ap);
	va_end(ap);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	va_start(ap, format);
	vsnprintf(s, (size_t)n + 1, format, ap);
	va_end(ap);
	return s;
}

/* ---- a small JSON reader, enough for run_results.json ---- */

struct scan {
	const char *p, *end;
};

/* The next character after white space, or -1 at the end. */
static int
peek(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
	return s->p < s->end ? (unsigned char)*s->p : -1;
}

/* Consume c when it comes next; 1 when it did. */
static int
eat(struct scan *s, int c)
{
	if (peek(s) != c)
		return 0;
	s->p++;
	return 1;
}

/* Append code point cp to out as UTF-8. */
static size_t
put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Four hex digits at p; -1 when they are not. */
static long
hex4(const char *p, const char *end)
{
	long v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* A JSON string, decoded into a malloc'd copy; NULL when malformed. */
static char *
string_value(struct scan *s)
{
	char *out, *o;

	if (!eat(s, '"'))
		return NULL;
	/* decoding never makes a string longer than its escaped form */
	out = malloc((size_t)(s->end - s->p) + 1);
	if (out == NULL)
		return NULL;
	for (o = out; s->p < s->end && *s->p != '"'; s->p++) {
		long cp, lo;

		if (*s->p != '\\') {
			*o++ = *s->p;
			continue;
		}
		if (++s->p == s->end)
			break;
		switch (*s->p) {
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			cp = hex4(s->p + 1, s->end);
			if (cp < 0)
				goto bad;
			s->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && s->end - s->p > 6 && s->p[1] == '\\' &&
			    s->p[2] == 'u' && (lo = hex4(s->p + 3, s->end)) >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				s->p += 6;
			} else if (cp >= 0xd800 && cp < 0xe000) {
				cp = 0xfffd; /* a lone surrogate */
			}
			o += put_utf8(o, (uint32_t)cp);
			break;
		default: *o++ = *s->p; break; /* \" \\ \/ */
		}
	}
	if (s->p == s->end)
		goto bad;
	s->p++; /* the closing quote */
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/*
 * Step through an object's members: 1 with *key (malloc'd) and the value
 * next, 0 after the last one, -1 when malformed.  *first starts at 1.
 */
static int
next_member(struct scan *s, int *first, char **key)
{
	if (*first) {
		*first = 0;
		if (!eat(s, '{'))
			return -1;
		if (eat(s, '}'))
			return 0;
	} else if (eat(s, '}')) {
		return 0;
	} else if (!eat(s, ',')) {
		return -1;
	}
	*key = string_value(s);
	if (*key == NULL)
		return -1;
	if (!eat(s, ':')) {
		free(*key);
		return -1;
	}
	return 1;
}

/* Step through an array's elements like next_member. */
static int
next_element(struct scan *s, int *first)
{
	if (*first) {
		*first = 0;
		if (!eat(s, '['))
			return -1;
		return eat(s, ']') ? 0 : 1;
	}
	if (eat(s, ']'))
		return 0;
	return eat(s, ',') ? 1 : -1;
}

/* Skip one value of any kind; 0, or -1 when malformed. */
static int
skip_value(struct scan *s, int depth)
{
	int c = peek(s), first = 1, rc;
	const char *start;
	char *str;

	if (depth > 100)
		return -1;
	if (c == '"') {
		str = string_value(s);
		free(str);
		return str ? 0 : -1;
	}
	if (c == '{') {
		while ((rc = next_member(s, &first, &str)) == 1) {
			free(str);
			if (skip_value(s, depth + 1) < 0)
				return -1;
		}
		return rc;
	}
	if (c == '[') {
		while ((rc = next_element(s, &first)) == 1)
			if (skip_value(s, depth + 1) < 0)
				return -1;
		return rc;
	}
	start = s->p; /* a number, true, false or null */
	while (s->p < s->end && *s->p != '\0' && strchr("+-.0123456789eEtruefalsn", *s->p))
		s->p++;
	return s->p > start ? 0 : -1;
}

/* A string member's value, or NULL for null or another kind (skipped). */
static int
string_or_skip(struct scan *s, char **out)
{
	free(*out);
	*out = NULL;
	if (peek(s) != '"')
		return skip_value(s, 1);
	*out = string_value(s);
	return *out ? 0 : -1;
}

/* Count one node of run_results.json; keep it when it failed. */
static void
count_node(struct results *r, char *unique_id, char *status, char *message)
{
	const char *st = status ? status : "";
	int failed = 0;

	if (strcmp(st, "success") == 0) {
		r->success++;
	} else if (strcmp(st, "error") == 0) {
		r->error++;
		failed = 1;
	} else if (strcmp(st, "fail") == 0) {
		r->fail++;
		failed = 1;
	} else if (strcmp(st, "skipped") == 0)
		r->skipped++;
	else if (strcmp(st, "pass") == 0)
		r->pass++;
	else if (strcmp(st, "warn") == 0)
		r->warn++;
	else
		r->other++;
	if (failed)
		r->nfailed++;
	if (failed && r->nfailures < MAX_FAILURES) {
		struct failure *f = &r->failures[r->nfailures++];
		f->unique_id = unique_id;
		f->status = status;
		f->message = message;
		return;
	}
	free(unique_id);
	free(status);
	free(message);
}

/* Read results[] of run_results.json text; 0, or -1 when malformed. */
static int
parse_results(struct results *r, const char *text, size_t len)
{
	struct scan s = { text, text + len };
	int first = 1, rc;
	char *key;

	while ((rc = next_member(&s, &first, &key)) == 1) {
		int is_results = strcmp(key, "results") == 0, efirst = 1;

		free(key);
		if (!is_results || peek(&s) != '[') {
			if (skip_value(&s, 1) < 0)
				return -1;
			continue;
		}
		while ((rc = next_element(&s, &efirst)) == 1) {
			char *uid = NULL, *status = NULL, *message = NULL;
			int nfirst = 1;

			while ((rc = next_member(&s, &nfirst, &key)) == 1) {
				if (strcmp(key, "unique_id") == 0)
					rc = string_or_skip(&s, &uid);
				else if (strcmp(key, "status") == 0)
					rc = string_or_skip(&s, &status);
				else if (strcmp(key, "message") == 0)
					rc = string_or_skip(&s, &message);
				else
					rc = skip_value(&s, 2);
				free(key);
				if (rc < 0)
					break;
			}
			if (rc < 0) {
				free(uid);
				free(status);
				free(message);
				return -1;
			}
			count_node(r, uid, status, message);
		}
		if (rc < 0)
			return -1;
	}
	return rc;
}

/* Read a whole file into a malloc'd buffer; 0 or -errno. */
static int
read_file(const char *path, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0, cap = 1 << 16;
	char *buf;

	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	for (;;) {
		ssize_t got;

		if (buf == NULL) {
			close(fd);
			return -ENOMEM;
		}
		if (n == cap) {
			char *bigger = cap >= MAX_RESULTS_FILE ? NULL : realloc(buf, cap * 2);
			if (bigger == NULL) {
				free(buf);
				close(fd);
				return cap >= MAX_RESULTS_FILE ? -EFBIG : -ENOMEM;
			}
			buf = bigger;
			cap *= 2;
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return -e;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	*out = buf;
	*len = n;
	return 0;
}

/* Fill r from the project's target/run_results.json, logging what happened. */
static void
read_results(const struct dbtd_host *host, dbtd_step_ctx *ctx, struct results *r)
{
	const char *project = host->param(ctx, "run.project_dir");
	char *path = NULL, *text = NULL;
	size_t len = 0;
	int rc;

	if (project == NULL) {
		host->log(ctx, "no dbt results: the project was never cloned");
		return;
	}
	path = fmt("%s/target/run_results.json", project);
	if (path == NULL)
		return;
	rc = read_file(path, &text, &len);
	if (rc < 0) {
		host->log(ctx, "no dbt results: %s: %s", path, strerror(-rc));
	} else if (parse_results(r, text, len) < 0) {
		host->log(ctx, "no dbt results: %s is not the JSON dbt writes", path);
	} else {
		r->found = 1;
	}
	free(text);
	free(path);
}

/* ---- the summary ---- */

/* Print s as a JSON string (null for NULL), at most max bytes of it. */
static void
put_json_str(FILE *f, const char *s, size_t max)
{
	size_t n;

	if (s == NULL) {
		fputs("null", f);
		return;
	}
	n = strlen(s);
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--; /* do not cut a UTF-8 character */
	}
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* What the run did so far: the run's parameters. */
struct run_info {
	const char *id, *job, *project, *env, *branch, *commit;
	const char *status;       /* "completed" (every earlier step did) or "failed" */
	const char *failed_step;  /* the step that failed, or NULL */
	const char *error;        /* its error, or NULL */
};

/* Read the run's parameters.  run.status is set by hosts of ABI 1.2 and later. */
static void
run_info(const struct dbtd_host *host, dbtd_step_ctx *ctx, struct run_info *ri)
{
	const char *st = host->param(ctx, "run.status");

	ri->id = host->param(ctx, "run.id");
	ri->job = host->param(ctx, "job.name");
	ri->project = host->param(ctx, "project.name");
	ri->env = host->param(ctx, "env.name");
	ri->branch = host->param(ctx, "run.branch");
	if (ri->branch == NULL)
		ri->branch = host->param(ctx, "env.branch");
	ri->commit = host->param(ctx, "run.commit_sha");
	/* an older host runs this step only when every earlier step completed */
	ri->status = st != NULL && strcmp(st, "failed") == 0 ? "failed" : "completed";
	ri->failed_step = host->param(ctx, "run.failed_step");
	ri->error = host->param(ctx, "run.error");
}

/* The summary as one JSON object on one line (malloc'd), or NULL. */
static char *
summary_json(const struct run_info *ri, const struct results *r)
{
	char *buf = NULL, stamp[32];
	size_t len = 0;
	time_t now = time(NULL);
	struct tm tm;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(f, "{\"run_id\":%s,\"job\":", ri->id ? ri->id : "null");
	put_json_str(f, ri->job, SIZE_MAX);
	fputs(",\"project\":", f);
	put_json_str(f, ri->project, SIZE_MAX);
	fputs(",\"environment\":", f);
	put_json_str(f, ri->env, SIZE_MAX);
	fputs(",\"branch\":", f);
	put_json_str(f, ri->branch, SIZE_MAX);
	fputs(",\"commit\":", f);
	put_json_str(f, ri->commit, SIZE_MAX);
	fputs(",\"status\":", f);
	put_json_str(f, ri->status, SIZE_MAX);
	fputs(",\"failed_step\":", f);
	put_json_str(f, ri->failed_step, SIZE_MAX);
	fputs(",\"error\":", f);
	put_json_str(f, ri->error, MAX_MESSAGE);
	if (r->found)
		fprintf(f, ",\"results\":{\"success\":%u,\"error\":%u,\"skipped\":%u,"
		        "\"pass\":%u,\"fail\":%u,\"warn\":%u,\"other\":%u}",
		        r->success, r->error, r->skipped, r->pass, r->fail, r->warn, r->other);
	else
		fputs(",\"results\":null", f);
	fputs(",\"failures\":[", f);
	for (size_t i = 0; i < r->nfailures; i++) {
		fputs(i ? ",{\"unique_id\":" : "{\"unique_id\":", f);
		put_json_str(f, r->failures[i].unique_id, SIZE_MAX);
		fputs(",\"status\":", f);
		put_json_str(f, r->failures[i].status, SIZE_MAX);
		fputs(",\"message\":", f);
		put_json_str(f, r->failures[i].message, MAX_MESSAGE);
		fputc('}', f);
	}
	fprintf(f, "],\"failures_not_listed\":%zu,\"at\":\"%s\"}", r->nfailed - r->nfailures, stamp);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The summary in one line for people (malloc'd), or NULL. */
static char *
summary_text(const struct run_info *ri, const struct results *r)
{
	char *what, *out;

	if (strcmp(ri->status, "failed") == 0)
		what = fmt("run %s of job %s failed at step \"%s\"", ri->id ? ri->id : "?",
		           ri->job ? ri->job : "?", ri->failed_step ? ri->failed_step : "?");
	else
		what = fmt("run %s of job %s: every step so far completed",
		           ri->id ? ri->id : "?", ri->job ? ri->job : "?");
	if (what == NULL)
		return NULL;
	if (r->found)
		out = fmt("%s; dbt results: %u success, %u error, %u skipped, %u pass, "
		          "%u fail, %u warn", what, r->success, r->error, r->skipped, r->pass,
		          r->fail, r->warn);
	else
		out = fmt("%s; no dbt results", what);
	free(what);
	return out;
}

/* dbt's message on one line: runs of white space made one space, cut at max bytes. */
static void
one_line(char *out, const char *m, size_t max)
{
	size_t n = 0;

	for (; *m && n < max; m++) {
		if (*m == ' ' || *m == '\t' || *m == '\n' || *m == '\r') {
			if (n > 0 && out[n - 1] != ' ')
				out[n++] = ' ';
			continue;
		}
		out[n++] = *m;
	}
	if (((unsigned char)*m & 0xc0) == 0x80) {
		/* cut inside a UTF-8 character: drop the part of it that came */
		while (n > 0 && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
			n--;
		if (n > 0)
			n--;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* Log the summary: the text line, the error, then one line per failure. */
static void
log_summary(const struct dbtd_host *host, dbtd_step_ctx *ctx, const struct run_info *ri,
            const struct results *r, const char *text)
{
	char line[MAX_LOG_MESSAGE + 1];

	host->log(ctx, "%s", text);
	if (ri->error != NULL)
		host->log(ctx, "error: %s", ri->error);
	for (size_t i = 0; i < r->nfailures; i++) {
		const struct failure *f = &r->failures[i];

		one_line(line, f->message ? f->message : "", MAX_LOG_MESSAGE);
		host->log(ctx, "  %s %s: %s", f->status ? f->status : "?",
		          f->unique_id ? f->unique_id : "?", line);
	}
	if (r->nfailed > r->nfailures)
		host->log(ctx, "  ... and %zu more", r->nfailed - r->nfailures);
}

/* ---- delivery ---- */

/* Append line and a newline to path in one write; 0 or -errno. */
static int
append_line(const char *path, const char *line)
{
	size_t n = strlen(line);
	char *buf = malloc(n + 1);
	int fd, rc = 0;
	ssize_t w;

	if (buf == NULL)
		return -ENOMEM;
	memcpy(buf, line, n);
	buf[n] = '\n';
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd < 0) {
		rc = -errno;
	} else {
		/* one write with O_APPEND: lines of concurrent runs do not mix */
		w = write(fd, buf, n + 1);
		if (w < 0)
			rc = -errno;
		else if ((size_t)w != n + 1)
			rc = -EIO;
		if (close(fd) < 0 && rc == 0)
			rc = -errno;
	}
	free(buf);
	return rc;
}

/* Run command through sh with the summary in its environment. */
static int
run_command(const struct dbtd_host *host, dbtd_step_ctx *ctx, const char *command,
            const struct run_info *ri, const char *json, const char *text)
{
	const char *argv[] = { "sh", "-c", command, NULL };
	char *env[6] = {
		fmt("DBTD_SUMMARY=%s", json),
		fmt("DBTD_SUMMARY_TEXT=%s", text),
		fmt("DBTD_RUN_ID=%s", ri->id ? ri->id : ""),
		fmt("DBTD_JOB=%s", ri->job ? ri->job : ""),
		fmt("DBTD_RUN_STATUS=%s", ri->status),
		NULL,
	};
	struct dbtd_spawn spec;
	int rc = -ENOMEM, status = 0;

	if (!env[0] || !env[1] || !env[2] || !env[3] || !env[4]) {
		host->set_error(ctx, "notify: out of memory");
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	spec.size = sizeof(spec);
	spec.argv = argv;
	spec.env = (const char *const *)env;
	rc = host->spawn(ctx, &spec, &status);
	if (rc < 0) {
		host->set_error(ctx, "notify: cannot run the command: %s", strerror(-rc));
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		goto out;
	if (host->cancel_requested(ctx))
		rc = -ECANCELED;
	else if (WIFSIGNALED(status))
		host->set_error(ctx, "notify: the command was killed by signal %d", WTERMSIG(status));
	else
		host->set_error(ctx, "notify: the command exited with status %d", WEXITSTATUS(status));
	if (rc == 0)
		rc = -EIO;
out:
	for (size_t i = 0; i < 5; i++)
		free(env[i]);
	return rc;
}

/* ---- the step ---- */

/* Free what read_results kept. */
static void
results_free(struct results *r)
{
	for (size_t i = 0; i < r->nfailures; i++) {
		free(r->failures[i].unique_id);
		free(r->failures[i].status);
		free(r->failures[i].message);
	}
}

/* Build the summary, log it, and deliver it to file= and/or command=. */
static int
notify_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	const char *file = host->param(ctx, "file");
	const char *command = host->param(ctx, "command");
	struct results r;
	struct run_info ri;
	char *json = NULL, *text = NULL;
	int result = DBTD_STEP_FAILED, rc;

	(void)data;
	memset(&r, 0, sizeof(r));
	if (file == NULL && command == NULL) {
		host->set_error(ctx, "notify needs somewhere to deliver: --step notify:file=PATH "
		                "or notify:command=CMD");
		return DBTD_STEP_FAILED;
	}
	if (file != NULL && file[0] != '/') {
		host->set_error(ctx, "notify: file=%s must be an absolute path", file);
		return DBTD_STEP_FAILED;
	}
	run_info(host, ctx, &ri);
	read_results(host, ctx, &r);
	json = summary_json(&ri, &r);
	text = summary_text(&ri, &r);
	if (json == NULL || text == NULL) {
		host->set_error(ctx, "notify: out of memory");
		goto out;
	}
	log_summary(host, ctx, &ri, &r, text);
	if (file != NULL) {
		rc = append_line(file, json);
		if (rc < 0) {
			host->set_error(ctx, "notify: cannot append to %s: %s", file, strerror(-rc));
			goto out;
		}
		host->log(ctx, "summary appended to %s", file);
	}
	if (command != NULL) {
		if (host->cancel_requested(ctx)) {
			result = DBTD_STEP_CANCELED;
			goto out;
		}
		rc = run_command(host, ctx, command, &ri, json, text);
		if (rc == -ECANCELED)
			result = DBTD_STEP_CANCELED;
		if (rc < 0)
			goto out;
		host->log(ctx, "summary delivered to the command");
	}
	result = DBTD_STEP_OK;
out:
	free(json);
	free(text);
	results_free(&r);
	return result;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "notify",
	.description = "Deliver a run summary (status, dbt results, failures) to a file or a command",
	.run = notify_run,
#if DBTD_STEP_ABI_MINOR >= 2
	/* report failed runs too; a host before 1.2 ignores this and skips the step */
	.flags = DBTD_STEP_RUN_ALWAYS,
#endif
};
