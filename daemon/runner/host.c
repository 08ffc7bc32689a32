/* host.c - the host side of the step ABI inside a runner (see host.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdlimit.h"
#include "frame.h"
#include "host.h"
#include "log.h"
#include "mask.h"
#include "names.h"
#include "pb.h"
#include "util.h"

#define LINE_MAX_BYTES DBTD_LINE_MAX /* longer lines are split, with a marker */
#define SPLIT_MARK " [line continues]"

extern char **environ;

int
host_send(struct host_run *hr, const Dbtd__RunnerEvent *ev)
{
	return frame_send(hr->fd, &ev->base);
}

int
host_flush(struct host_run *hr)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__LogData chunk = DBTD__LOG_DATA__INIT;
	int rc;

	if (hr->batch.len == 0)
		return 0;
	chunk.step = hr->batch_step;
	chunk.data.data = hr->batch.data;
	chunk.data.len = hr->batch.len;
	ev.body_case = DBTD__RUNNER_EVENT__BODY_LOG;
	ev.log = &chunk;
	rc = host_send(hr, &ev);
	logbuf_reset(&hr->batch);
	return rc;
}

/* Copy text[0..len) with the run's secrets masked (mask.h); malloc'd, or NULL. */
static char *
mask(const struct host_run *hr, const char *text, size_t len, size_t *outlen)
{
	char *out;

	if (mask_apply(text, len, (const char *const *)hr->secrets, hr->nsecrets, &out, outlen) < 0)
		return NULL;
	return out;
}

/*
 * Append one line to the batch (masked), flushing when the batch is due.
 * Outside spawn the batch is sent at once: the step is doing in-process
 * work, and the line it just logged must reach dbtd even if that work then
 * hangs or crashes.  Inside spawn (a child's output, what line callbacks
 * log) lines are batched; spawn's poll loop sends them when the child goes
 * quiet.
 */
static void
add_line(dbtd_step_ctx *ctx, int stream, const char *text, size_t len)
{
	struct host_run *hr = ctx->hr;
	int64_t now = now_ms();
	size_t mlen = len;
	char *m = NULL;

	if (hr->batch.len && hr->batch_step != ctx->step->index)
		host_flush(hr);
	if (hr->nsecrets) {
		m = mask(hr, text, len, &mlen);
		if (m == NULL)
			return;
		text = m;
	}
	if (hr->batch.len == 0) {
		hr->batch_step = ctx->step->index;
		hr->batch_started_ms = now;
	}
	logbuf_add(&hr->batch, now, (unsigned)stream, text, mlen);
	free(m);
	if (!hr->in_spawn || hr->batch.len >= HOST_BATCH_BYTES ||
	    now - hr->batch_started_ms >= HOST_BATCH_MS)
		host_flush(hr);
}

/* Store a line, in pieces of LINE_MAX_BYTES followed by a marker when longer. */
static void
add_long_line(dbtd_step_ctx *ctx, int stream, const char *text, size_t len)
{
	while (len > LINE_MAX_BYTES) {
		char *piece = malloc(LINE_MAX_BYTES + sizeof(SPLIT_MARK));
		if (piece == NULL)
			return;
		memcpy(piece, text, LINE_MAX_BYTES);
		memcpy(piece + LINE_MAX_BYTES, SPLIT_MARK, sizeof(SPLIT_MARK));
		add_line(ctx, stream, piece, LINE_MAX_BYTES + sizeof(SPLIT_MARK) - 1);
		free(piece);
		text += LINE_MAX_BYTES;
		len -= LINE_MAX_BYTES;
	}
	add_line(ctx, stream, text, len);
}

/* ABI log_line: store a line under a stream. */
static void
h_log_line(dbtd_step_ctx *ctx, int stream, const char *text, size_t len)
{
	if (stream < DBTD_STREAM_INFO || stream > DBTD_STREAM_STDERR)
		stream = DBTD_STREAM_INFO;
	add_long_line(ctx, stream, text, len);
}

/* Log a formatted INFO line (ABI log). */
static void
h_vlog(dbtd_step_ctx *ctx, const char *fmt, va_list ap)
{
	char *s;
	int n = vasprintf(&s, fmt, ap);

	if (n < 0)
		return;
	add_long_line(ctx, DBTD_STREAM_INFO, s, (size_t)n);
	free(s);
}

/* ABI log. */
static void __attribute__((format(printf, 2, 3)))
h_log(dbtd_step_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	h_vlog(ctx, fmt, ap);
	va_end(ap);
}

void
host_log_text(dbtd_step_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	h_vlog(ctx, fmt, ap);
	va_end(ap);
}

/* ABI set_error. */
static void __attribute__((format(printf, 2, 3)))
h_set_error(dbtd_step_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) >= 0) {
		size_t n;
		char *m = mask(ctx->hr, s, strlen(s), &n);
		free(s);
		free(ctx->error);
		ctx->error = m;
	}
	va_end(ap);
}

/* Find key in a kv array, newest first. */
static const char *
kv_find(const struct kv *a, size_t n, const char *key)
{
	for (size_t i = n; i-- > 0;)
		if (strcmp(a[i].key, key) == 0)
			return a[i].value;
	return NULL;
}

/* Append a copied pair to a kv array. */
static int
kv_add(struct kv **a, size_t *n, const char *key, const char *value)
{
	struct kv *p = realloc(*a, (*n + 1) * sizeof(**a));

	if (p == NULL)
		return -ENOMEM;
	*a = p;
	p[*n].key = strdup(key);
	p[*n].value = strdup(value ? value : "");
	if (p[*n].key == NULL || p[*n].value == NULL) {
		free(p[*n].key);
		free(p[*n].value);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

int
host_param_add(struct host_run *hr, const char *key, const char *value)
{
	return kv_add(&hr->params, &hr->nparams, key, value);
}

int
host_secret_add(struct host_run *hr, const char *key, const char *value)
{
	char **p;

	if (!pb_str_set(value))
		return 0;
	if (!mask_usable(value)) {
		const char *run = kv_find(hr->params, hr->nparams, "run.id");
		log_warn("run %s: %s is shorter than %d bytes, so it is not masked in step logs",
		         run ? run : "?", key, MASK_MIN_LEN);
		return 0;
	}
	p = realloc(hr->secrets, (hr->nsecrets + 1) * sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	hr->secrets = p;
	p[hr->nsecrets] = strdup(value);
	if (p[hr->nsecrets] == NULL)
		return -ENOMEM;
	hr->nsecrets++;
	return 0;
}

/* ABI param: step values, then outputs of earlier steps, then run values. */
static const char *
h_param(dbtd_step_ctx *ctx, const char *key)
{
	const Dbtd__Step *s = ctx->step;
	const char *v;

	if (strcmp(key, "step.name") == 0)
		return s->name;
	if (strcmp(key, "step.command") == 0)
		return pb_str_set(s->command) ? s->command : NULL;
	for (size_t i = 0; i < s->n_params; i++)
		if (strcmp(s->params[i]->key, key) == 0)
			return pb_str_set(s->params[i]->value) ? s->params[i]->value : NULL;
	v = kv_find(ctx->hr->outputs, ctx->hr->noutputs, key);
	if (v == NULL)
		v = kv_find(ctx->hr->params, ctx->hr->nparams, key);
	return v && v[0] ? v : NULL; /* empty means not set */
}

/* ABI set_output: keep for later steps and tell dbtd. */
static int
h_set_output(dbtd_step_ctx *ctx, const char *key, const char *value)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__KeyValue kv = DBTD__KEY_VALUE__INIT;
	int rc;

	if (key == NULL || value == NULL)
		return -EINVAL;
	rc = kv_add(&ctx->hr->outputs, &ctx->hr->noutputs, key, value);
	if (rc < 0)
		return rc;
	kv.key = (char *)key;
	kv.value = (char *)value;
	ev.body_case = DBTD__RUNNER_EVENT__BODY_OUTPUT;
	ev.output = &kv;
	host_flush(ctx->hr); /* keep log and outputs in order */
	return host_send(ctx->hr, &ev);
}

/* ABI workspace. */
static const char *
h_workspace(dbtd_step_ctx *ctx)
{
	return ctx->hr->workspace;
}

/* ABI cancel_requested. */
static int
h_cancel_requested(dbtd_step_ctx *ctx)
{
	return *ctx->hr->cancel != 0;
}

/* Per-stream line assembly of a child's output. */
struct linebuf {
	int fd;
	int stream;
	char *buf;
	size_t len, cap;
};

/* Hand one complete line to the plugin's callback or the log. */
static void
emit_line(dbtd_step_ctx *ctx, const struct dbtd_spawn *spec, int stream,
          char *line, size_t len)
{
	line[len] = '\0';
	if (len && line[len - 1] == '\r')
		line[--len] = '\0';
	if (spec->on_line && spec->on_line(spec->arg, ctx, stream, line, len) == DBTD_LINE_DROP)
		return;
	add_line(ctx, stream, line, len);
}

/* Read what the child wrote on one pipe; 0 at EOF. */
static int
drain(dbtd_step_ctx *ctx, const struct dbtd_spawn *spec, struct linebuf *lb)
{
	char tmp[65536];
	ssize_t n = read(lb->fd, tmp, sizeof(tmp));
	size_t start = 0;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : 0;
	if (n == 0) {
		if (lb->len)
			emit_line(ctx, spec, lb->stream, lb->buf, lb->len);
		lb->len = 0;
		return 0;
	}
	for (size_t i = 0; i < (size_t)n; i++) {
		if (tmp[i] != '\n' && lb->len + (i - start) < LINE_MAX_BYTES)
			continue;
		/* append tmp[start..i) then emit */
		size_t add = i - start;
		if (lb->len + add + sizeof(SPLIT_MARK) + 1 > lb->cap) {
			size_t cap = lb->len + add + sizeof(SPLIT_MARK) + 4096;
			char *p = realloc(lb->buf, cap);
			if (p == NULL)
				return 0;
			lb->buf = p;
			lb->cap = cap;
		}
		memcpy(lb->buf + lb->len, tmp + start, add);
		lb->len += add;
		if (tmp[i] != '\n') {
			memcpy(lb->buf + lb->len, SPLIT_MARK, sizeof(SPLIT_MARK) - 1);
			lb->len += sizeof(SPLIT_MARK) - 1;
			emit_line(ctx, spec, lb->stream, lb->buf, lb->len);
			lb->len = 0;
			start = i;
			continue;
		}
		emit_line(ctx, spec, lb->stream, lb->buf, lb->len);
		lb->len = 0;
		start = i + 1;
	}
	if ((size_t)n > start) {
		size_t add = (size_t)n - start;
		if (lb->len + add + 1 > lb->cap) {
			size_t cap = lb->len + add + 4096;
			char *p = realloc(lb->buf, cap);
			if (p == NULL)
				return 0;
			lb->buf = p;
			lb->cap = cap;
		}
		memcpy(lb->buf + lb->len, tmp + start, add);
		lb->len += add;
	}
	return 1;
}

/* Length of the KEY part of "KEY=VALUE" (or of a bare "KEY"). */
static size_t
key_len(const char *e)
{
	const char *eq = strchr(e, '=');

	return eq ? (size_t)(eq - e) : strlen(e);
}

/* True when add[from..] holds an entry for the same KEY as e. */
static int
key_in(const char *e, const char *const *add, size_t from)
{
	size_t kl = key_len(e);

	for (size_t j = from; add && add[j]; j++)
		if (key_len(add[j]) == kl && strncmp(add[j], e, kl) == 0)
			return 1;
	return 0;
}

/*
 * Build the child's environment: ours without the keys the spec names,
 * then the spec's "KEY=VALUE" entries (the last one for a KEY wins).
 */
static char **
child_env(const char *const *add)
{
	size_t n = 0, m = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	while (add && add[m])
		m++;
	env = calloc(n + m + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!key_in(environ[i], add, 0))
			env[k++] = environ[i];
	for (size_t j = 0; j < m; j++)
		if (strchr(add[j], '=') && !key_in(add[j], add, j + 1))
			env[k++] = (char *)add[j];
	return env;
}

/* Quote one argument for the logged command line when it needs it. */
static void
append_arg(char **line, size_t *len, const char *arg)
{
	int plain = arg[0] != '\0';
	FILE *f;
	char *buf = NULL;
	size_t blen = 0;

	for (const char *p = arg; *p && plain; p++)
		plain = strchr(" \t\n'\"\\$`;&|<>()*?[]{}~#", *p) == NULL;
	f = open_memstream(&buf, &blen);
	if (f == NULL)
		return;
	fputs(*line ? *line : "", f);
	if (*len)
		fputc(' ', f);
	if (plain) {
		fputs(arg, f);
	} else {
		fputc('\'', f);
		for (const char *p = arg; *p; p++)
			if (*p == '\'')
				fputs("'\\''", f);
			else
				fputc(*p, f);
		fputc('\'', f);
	}
	fclose(f);
	free(*line);
	*line = buf;
	*len = blen;
}

/* Child side of spawn: never returns. */
static void __attribute__((noreturn))
spawn_child(const struct dbtd_spawn *spec, const char *cwd, int out, int err,
            int status_fd, char **env)
{
	sigset_t all;
	int e, null = open("/dev/null", O_RDONLY);

	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (null >= 0)
		dup2(null, 0);
	dup2(out, 1);
	dup2(err, 2);
	if (chdir(cwd) < 0) {
		e = errno;
		(void)!write(status_fd, &e, sizeof(e));
		_exit(127);
	}
	close_fds_from(3, status_fd);
	fdlimit_restore(); /* dbt gets the limit dbtd was started with, not the one it raised */
	execvpe(spec->argv[0], (char *const *)spec->argv, env);
	e = errno;
	(void)!write(status_fd, &e, sizeof(e));
	_exit(127);
}

/* ABI spawn. */
static int
h_spawn(dbtd_step_ctx *ctx, const struct dbtd_spawn *spec, int *status)
{
	struct linebuf lb[2] = { { -1, DBTD_STREAM_STDOUT, NULL, 0, 0 },
	                         { -1, DBTD_STREAM_STDERR, NULL, 0, 0 } };
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, st[2] = { -1, -1 };
	const char *cwd;
	char **env = NULL, *cmdline = NULL;
	size_t cmdlen = 0;
	int64_t t0 = now_ms();
	int rc = 0, e = 0, open_fds, batching = 0;
	pid_t pid;

	if (spec == NULL || spec->argv == NULL || spec->argv[0] == NULL || status == NULL)
		return -EINVAL;
	cwd = spec->cwd ? spec->cwd : ctx->hr->workspace;
	for (size_t i = 0; spec->argv[i]; i++)
		append_arg(&cmdline, &cmdlen, spec->argv[i]);
	h_log(ctx, "$ %s", cmdline ? cmdline : spec->argv[0]);
	free(cmdline);
	env = child_env(spec->env);
	if (env == NULL || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    pipe2(st, O_CLOEXEC) < 0) {
		rc = env ? -errno : -ENOMEM;
		if (rc == -EMFILE) /* the runner's own table: a step leaks, or the limit is low */
			h_log(ctx, "cannot run %s: %s (the run's limit is %lu open files)",
			      spec->argv[0], strerror(-rc), fdlimit_current());
		else
			h_log(ctx, "cannot run %s: %s", spec->argv[0], strerror(-rc));
		goto out;
	}
	host_flush(ctx->hr);
	ctx->hr->in_spawn++;
	batching = 1;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		h_log(ctx, "cannot run %s: fork: %s", spec->argv[0], strerror(-rc));
		goto out;
	}
	if (pid == 0)
		spawn_child(spec, cwd, out[1], err[1], st[1], env);
	close(out[1]);
	close(err[1]);
	close(st[1]);
	out[1] = err[1] = st[1] = -1;
	if (read(st[0], &e, sizeof(e)) == (ssize_t)sizeof(e)) {
		waitpid(pid, status, 0);
		rc = -e;
		h_log(ctx, "cannot run %s: %s", spec->argv[0], strerror(e));
		goto out;
	}
	lb[0].fd = out[0];
	lb[1].fd = err[0];
	out[0] = err[0] = -1;
	open_fds = 2;
	while (open_fds > 0) {
		struct pollfd pfd[2];
		int np = 0, pr;
		for (int i = 0; i < 2; i++)
			if (lb[i].fd >= 0) {
				pfd[np].fd = lb[i].fd;
				pfd[np].events = POLLIN;
				np++;
			}
		/* lines waiting: look without blocking, and send them once the child goes quiet */
		pr = poll(pfd, (nfds_t)np, ctx->hr->batch.len ? 0 : HOST_BATCH_MS);
		if (pr == 0 && ctx->hr->batch.len) {
			host_flush(ctx->hr);
			continue;
		}
		if (pr < 0 && errno != EINTR)
			break;
		for (int i = 0, j = 0; i < 2 && pr > 0; i++) {
			if (lb[i].fd < 0)
				continue;
			if (pfd[j].revents && !drain(ctx, spec, &lb[i])) {
				close(lb[i].fd);
				lb[i].fd = -1;
				open_fds--;
			}
			j++;
		}
		if (ctx->hr->batch.len && now_ms() - ctx->hr->batch_started_ms >= HOST_BATCH_MS)
			host_flush(ctx->hr);
	}
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	{
		char dur[32];
		format_duration(now_ms() - t0, dur, sizeof(dur));
		if (WIFEXITED(*status))
			h_log(ctx, "%s exited with status %d after %s", spec->argv[0],
			      WEXITSTATUS(*status), dur);
		else if (WIFSIGNALED(*status))
			h_log(ctx, "%s was killed by signal %d (%s) after %s", spec->argv[0],
			      WTERMSIG(*status), strsignal(WTERMSIG(*status)), dur);
	}
out:
	for (int i = 0; i < 2; i++) {
		if (lb[i].fd >= 0)
			close(lb[i].fd);
		free(lb[i].buf);
	}
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
		if (st[i] >= 0)
			close(st[i]);
	}
	free(env);
	if (batching)
		ctx->hr->in_spawn--;
	host_flush(ctx->hr);
	return rc;
}

/* Copy up to 50 names into a new repeated string field. */
static char **
copy_names(const char *const *names, size_t n, size_t *out_n)
{
	char **v;

	if (n > 50)
		n = 50;
	*out_n = 0;
	if (n == 0 || names == NULL)
		return NULL;
	v = calloc(n, sizeof(*v));
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		v[i] = (char *)(names[i] ? names[i] : "");
	*out_n = n;
	return v;
}

/* ABI progress: tell dbtd how far the step is. */
static void
h_progress(dbtd_step_ctx *ctx, const struct dbtd_progress *p)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__Step s = DBTD__STEP__INIT;
	Dbtd__Progress pr = DBTD__PROGRESS__INIT;

	if (p == NULL || p->size < offsetof(struct dbtd_progress, nfailed) + sizeof(p->nfailed))
		return;
	pr.done = p->done;
	pr.total = p->total;
	pr.running = copy_names(p->running, p->nrunning, &pr.n_running);
	pr.failed = copy_names(p->failed, p->nfailed, &pr.n_failed);
	s.index = ctx->step->index;
	s.progress = &pr;
	ev.body_case = DBTD__RUNNER_EVENT__BODY_PROGRESS;
	ev.progress = &s;
	host_flush(ctx->hr); /* lines before the progress they led to */
	host_send(ctx->hr, &ev);
	free(pr.running);
	free(pr.failed);
}

static const struct dbtd_host table = {
	.size = sizeof(struct dbtd_host),
	.abi_major = DBTD_STEP_ABI_MAJOR,
	.abi_minor = DBTD_STEP_ABI_MINOR,
	.log = h_log,
	.spawn = h_spawn,
	.param = h_param,
	.set_output = h_set_output,
	.workspace = h_workspace,
	.cancel_requested = h_cancel_requested,
	.set_error = h_set_error,
	.log_line = h_log_line,
	.progress = h_progress,
};

const struct dbtd_host *
host_table(void)
{
	return &table;
}
