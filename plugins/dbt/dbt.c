/*
 * dbt.c - the "dbt" step: run step.command ("dbt build", "dbt run --select
 * foo", ...) in the project directory with the run's profile.  dbt is told
 * to print JSON log events; the step log stores their human-readable
 * messages, the error events become the run's error summary, and the node
 * start and result events become the step's progress (ABI 1.1 hosts).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <jansson.h>

#include <dbtd/step.h>

/* Longest error summary kept from dbt's error events (bytes). */
#define ERROR_CAP 1000
/* Longest stderr line kept as a fallback reason. */
#define STDERR_CAP 300

/* Environment settings the step depends on: env.vars cannot replace these. */
static const char *const fixed_keys[] = {
	"DBT_PROFILES_DIR", "DBT_PROJECT_DIR", "DBT_LOG_FORMAT", "DBT_ENV_SECRET_DBTD_PASSWORD",
};

/*
 * How far dbt is, from its node events (for host->progress).  A node is
 * known by its unique_id; running lists the nodes started and not finished,
 * in the order they started.
 */
struct dbt_progress {
	json_t *finished;            /* unique_ids of the finished nodes (keys) */
	char **run_ids;              /* unique_ids of the running nodes */
	char **run_names;            /* their names, parallel to run_ids */
	size_t nrunning, caprunning;
	char **failed;               /* names of the nodes that failed, in order */
	size_t nfailed, capfailed;
	uint32_t done;               /* distinct nodes finished */
	uint32_t total;              /* nodes dbt selected (its events' total) */
	int reported;                /* progress() was called at least once */
};

/* What the line callback learns while dbt runs. */
struct dbt_state {
	const struct dbtd_host *host;
	dbtd_step_ctx *ctx;
	int prog_enabled;            /* the host has progress() */
	struct dbt_progress prog;
	char errors[ERROR_CAP + 4];  /* dbt's error text, one line, "..." when cut */
	size_t errlen;
	char failure[512];           /* a "Failure in model x (path)" not yet added */
	char failure_path[512];      /* the path that failure names */
	char last_stderr[STDERR_CAP + 4];
	int nerrors;                 /* error events in the text */
	int after_header;            /* the text ends with a "Failure in ..." header */
	int debug_failed;            /* dbt debug said "N checks failed:" */
};

/* A growable list of "KEY=VALUE" strings, NULL-terminated. */
struct env_list {
	char **v;
	size_t n, cap;
};

/* Append `n` bytes to the error text, marking truncation with "...". */
static void err_add(struct dbt_state *st, const char *s, size_t n)
{
	if (st->errlen >= ERROR_CAP)
		return;
	if (n > ERROR_CAP - st->errlen) {
		n = ERROR_CAP - st->errlen;
		/* Do not cut a UTF-8 sequence in half. */
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
		memcpy(st->errors + st->errlen, s, n);
		st->errlen += n;
		memcpy(st->errors + st->errlen, "...", 4);
		st->errlen = ERROR_CAP;
		return;
	}
	memcpy(st->errors + st->errlen, s, n);
	st->errlen += n;
	st->errors[st->errlen] = '\0';
}

/* True for a line that is only a caret marker ("   ^^^^") or blank. */
static int is_marker(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strchr(" \t\r^~", s[i]))
			return 0;
	return 1;
}

/*
 * Add a (multi-line) message to the error text as words joined by single
 * spaces; `sep` goes between it and the text before it.
 */
static void err_add_message(struct dbt_state *st, const char *msg, const char *sep)
{
	const char *line = msg;
	int first = 1;

	while (*line) {
		size_t n = strcspn(line, "\n");

		if (!is_marker(line, n)) {
			const char *p = line, *end = line + n;

			while (p < end) {
				size_t w;

				while (p < end && strchr(" \t\r", *p))
					p++;
				w = strcspn(p, " \t\r\n");
				if (w > (size_t)(end - p))
					w = (size_t)(end - p);
				if (w == 0)
					break;
				if (st->errlen > 0) {
					const char *s = first ? sep : " ";

					err_add(st, s, strlen(s));
				}
				first = 0;
				err_add(st, p, w);
				p += w;
			}
		}
		line += n;
		if (*line == '\n')
			line++;
	}
}

/* Add a remembered "Failure in ..." header to the error text. */
static void flush_failure(struct dbt_state *st)
{
	if (st->failure[0] != '\0') {
		err_add_message(st, st->failure, "; ");
		st->after_header = 1;
		st->nerrors++;
	}
	st->failure[0] = '\0';
	st->failure_path[0] = '\0';
}

/* True for dbt debug's "1 check failed:" / "2 checks failed:" line. */
static int is_checks_failed(const char *msg)
{
	char *end;

	if (msg[0] < '0' || msg[0] > '9')
		return 0;
	strtoul(msg, &end, 10);
	return strncmp(end, " check failed:", 14) == 0 || strncmp(end, " checks failed:", 15) == 0;
}

/* Remember what an error event (or a failed dbt debug check) says. */
static void note_error(struct dbt_state *st, const char *name, const char *msg, json_t *data)
{
	/* "N of M ERROR creating ..." progress lines repeat what follows. */
	if (strncmp(name, "Log", 3) == 0)
		return;
	/* dbt debug reports at info level: "1 check failed:", then one result per check. */
	if (strcmp(name, "DebugCmdResult") == 0) {
		if (is_checks_failed(msg)) {
			size_t n = strlen(msg);

			while (n > 0 && strchr(": \n", msg[n - 1]))
				n--;
			flush_failure(st);
			st->after_header = 0;
			snprintf(st->failure, sizeof(st->failure), "%.*s", (int)n, msg);
			st->debug_failed = 1;
			return;
		}
		if (!st->debug_failed)
			return;
	}
	if (strcmp(name, "RunResultFailure") == 0) {
		const char *path = json_string_value(json_object_get(data, "path"));

		flush_failure(st);
		st->after_header = 0;
		snprintf(st->failure, sizeof(st->failure), "%s", msg);
		snprintf(st->failure_path, sizeof(st->failure_path), "%s", path ? path : "");
		return;
	}
	/* "Failure in model x (p)" is dropped when the error text names p itself. */
	if (st->failure[0] != '\0' && st->failure_path[0] != '\0' &&
	    strstr(msg, st->failure_path) != NULL) {
		st->failure[0] = '\0';
		st->failure_path[0] = '\0';
	}
	flush_failure(st);
	if (st->after_header) {
		err_add_message(st, msg, ": ");
	} else {
		err_add_message(st, msg, "; ");
		st->nerrors++;
	}
	st->after_header = 0;
}

/* Store each line of a dbt message in the step log. */
static void log_message(struct dbt_state *st, int stream, const char *msg)
{
	const char *line = msg;

	do {
		size_t n = strcspn(line, "\n");
		size_t len = n;

		if (len > 0 && line[len - 1] == '\r')
			len--;
		st->host->log_line(st->ctx, stream, line, len);
		line += n;
	} while (*line++ == '\n');
}

/*
 * dbt's events that say a node finished; their data has index, total (tests:
 * num_models), status and node_info.  is_failed_status() tells which status
 * makes the node failed.  (A node starts with LogStartLine.)
 */
static const char *const result_events[] = {
	"LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult",
	"LogNodeResult", "LogFreshnessResult", "LogFunctionResult", "LogNodeNoOpResult",
};
/*
 * Events that say a node was skipped after an upstream failure: it counts as
 * finished, never as failed.  LogSkipBecauseError has no node_info (and its
 * status is the upstream ephemeral model's).
 */
static const char *const skip_events[] = { "SkippingDetails", "LogSkipBecauseError" };

/* True when `name` is one of the `n` strings of `list`. */
static int in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return 1;
	return 0;
}

/* True for a result status that makes a node failed. */
static int is_failed_status(const char *status)
{
	return status != NULL && (strcmp(status, "error") == 0 || strcmp(status, "fail") == 0 ||
	                          strcmp(status, "runtime error") == 0);
}

/* A non-empty string member of `obj`, or NULL. */
static const char *json_str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL && s[0] != '\0' ? s : NULL;
}

/* Make room for `cap` entries in *v; 0 or -ENOMEM (*v unchanged). */
static int names_reserve(char ***v, size_t cap)
{
	char **nv = realloc(*v, cap * sizeof(char *));

	if (nv == NULL)
		return -ENOMEM;
	*v = nv;
	return 0;
}

/* Add a node to the end of the running list (left out when out of memory). */
static void running_add(struct dbt_progress *pg, const char *id, const char *name)
{
	char *i, *n;

	if (pg->nrunning == pg->caprunning) {
		size_t cap = pg->caprunning ? pg->caprunning * 2 : 16;

		if (names_reserve(&pg->run_ids, cap) < 0 || names_reserve(&pg->run_names, cap) < 0)
			return;
		pg->caprunning = cap;
	}
	i = strdup(id);
	n = strdup(name);
	if (i == NULL || n == NULL) {
		free(i);
		free(n);
		return;
	}
	pg->run_ids[pg->nrunning] = i;
	pg->run_names[pg->nrunning] = n;
	pg->nrunning++;
}

/* Remove entry `at` from the running list, keeping the others in order. */
static void running_remove(struct dbt_progress *pg, size_t at)
{
	free(pg->run_ids[at]);
	free(pg->run_names[at]);
	memmove(pg->run_ids + at, pg->run_ids + at + 1, (pg->nrunning - at - 1) * sizeof(char *));
	memmove(pg->run_names + at, pg->run_names + at + 1,
	        (pg->nrunning - at - 1) * sizeof(char *));
	pg->nrunning--;
}

/* Add a name to the failed list (left out when out of memory). */
static void failed_add(struct dbt_progress *pg, const char *name)
{
	char *n;

	if (pg->nfailed == pg->capfailed) {
		size_t cap = pg->capfailed ? pg->capfailed * 2 : 8;

		if (names_reserve(&pg->failed, cap) < 0)
			return;
		pg->capfailed = cap;
	}
	if ((n = strdup(name)) != NULL)
		pg->failed[pg->nfailed++] = n;
}

/* Free what the progress state holds. */
static void progress_free(struct dbt_progress *pg)
{
	for (size_t i = 0; i < pg->nrunning; i++) {
		free(pg->run_ids[i]);
		free(pg->run_names[i]);
	}
	for (size_t i = 0; i < pg->nfailed; i++)
		free(pg->failed[i]);
	free(pg->run_ids);
	free(pg->run_names);
	free(pg->failed);
	json_decref(pg->finished);
	memset(pg, 0, sizeof(*pg));
}

/* Tell the host how far dbt is (the host copies the names). */
static void progress_report(struct dbt_state *st)
{
	struct dbt_progress *pg = &st->prog;
	struct dbtd_progress p = { .size = sizeof(p) };

	p.done = pg->done;
	p.total = pg->total > pg->done ? pg->total : pg->done;
	p.running = (const char *const *)pg->run_names;
	p.nrunning = pg->nrunning;
	p.failed = (const char *const *)pg->failed;
	p.nfailed = pg->nfailed;
	st->host->progress(st->ctx, &p);
	pg->reported = 1;
}

/* Follow a node started / finished / skipped event and report progress. */
static void note_progress(struct dbt_state *st, const char *name, json_t *data)
{
	struct dbt_progress *pg = &st->prog;
	json_t *node_info = json_object_get(data, "node_info");
	const char *id, *node, *status;
	char idbuf[32];
	json_int_t total, index;
	int start = strcmp(name, "LogStartLine") == 0;
	int skip = !start && in_list(name, skip_events, sizeof(skip_events) / sizeof(skip_events[0]));
	size_t i;

	if (!start && !skip &&
	    !in_list(name, result_events, sizeof(result_events) / sizeof(result_events[0])))
		return;
	if (!json_is_object(data))
		return;
	total = json_integer_value(json_object_get(data, "total"));
	if (total <= 0)
		total = json_integer_value(json_object_get(data, "num_models"));
	if (total > 0)
		pg->total = total > (json_int_t)UINT32_MAX ? UINT32_MAX : (uint32_t)total;

	id = json_str(node_info, "unique_id");
	if (id == NULL) {
		index = json_integer_value(json_object_get(data, "index"));
		if (index <= 0)
			return;
		snprintf(idbuf, sizeof(idbuf), "#%lld", (long long)index);
		id = idbuf;
	}
	if ((node = json_str(node_info, "node_name")) == NULL &&
	    (node = json_str(data, "name")) == NULL &&       /* LogTestResult */
	    (node = json_str(data, "node_name")) == NULL &&  /* SkippingDetails */
	    (node = json_str(data, "relation")) == NULL)     /* LogSkipBecauseError */
		node = id;

	for (i = 0; i < pg->nrunning; i++)
		if (strcmp(pg->run_ids[i], id) == 0)
			break;
	if (start) {
		if (i == pg->nrunning && json_object_get(pg->finished, id) == NULL)
			running_add(pg, id, node);
	} else {
		if (i < pg->nrunning)
			running_remove(pg, i);
		if (json_object_get(pg->finished, id) == NULL) {
			if (pg->finished == NULL)
				pg->finished = json_object();
			json_object_set_new(pg->finished, id, json_true());
			if (pg->done < UINT32_MAX)
				pg->done++;
			if ((status = json_str(data, "status")) == NULL)
				status = json_str(node_info, "node_status");
			if (!skip && is_failed_status(status))
				failed_add(pg, node);
		}
	}
	progress_report(st);
}

/* Line callback: turn dbt's JSON events into readable lines and note errors. */
static int on_line(void *arg, dbtd_step_ctx *ctx, int stream, const char *line, size_t len)
{
	struct dbt_state *st = arg;
	json_t *root, *info;
	const char *msg, *level, *name;

	(void)ctx;
	if (stream == DBTD_STREAM_STDERR) {
		if (len > 0)
			snprintf(st->last_stderr, sizeof(st->last_stderr), "%.*s",
			         (int)(len > STDERR_CAP ? STDERR_CAP : len), line);
		return DBTD_LINE_KEEP;
	}
	if (stream != DBTD_STREAM_STDOUT || len == 0 || line[0] != '{')
		return DBTD_LINE_KEEP;
	root = json_loadb(line, len, 0, NULL);
	info = json_object_get(root, "info");
	msg = json_string_value(json_object_get(info, "msg"));
	if (!json_is_object(root) || msg == NULL) {
		json_decref(root);
		return DBTD_LINE_KEEP;
	}
	log_message(st, stream, msg);
	level = json_string_value(json_object_get(info, "level"));
	name = json_string_value(json_object_get(info, "name"));
	if ((level != NULL && strcmp(level, "error") == 0) ||
	    (name != NULL && strcmp(name, "DebugCmdResult") == 0))
		note_error(st, name ? name : "", msg, json_object_get(root, "data"));
	if (name != NULL && st->prog_enabled)
		note_progress(st, name, json_object_get(root, "data"));
	json_decref(root);
	return DBTD_LINE_DROP;
}

/*
 * Split `cmd` into words like a shell does, without expansions: blanks
 * separate, '...' is literal, "..." keeps blanks and honours \" \\ \$ \`,
 * a backslash outside quotes escapes the next character.  On success
 * *words is a NULL-terminated array in one allocation (free it alone).
 * Returns the word count, or -EINVAL with `why` set.
 */
static int split_words(const char *cmd, char ***words, const char **why)
{
	size_t len = strlen(cmd), nw = 0;
	char **v;
	char *out;
	const char *p = cmd;

	/* At most len/2+1 words, and the text never grows. */
	v = malloc((len / 2 + 2) * sizeof(char *) + len + 1);
	if (v == NULL) {
		*why = "out of memory";
		return -ENOMEM;
	}
	out = (char *)(v + len / 2 + 2);
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (*p == '\0')
			break;
		v[nw++] = out;
		while (*p != '\0' && !strchr(" \t\n\r", *p)) {
			if (*p == '\'') {
				const char *q = strchr(p + 1, '\'');

				if (q == NULL) {
					*why = "an unterminated ' quote";
					goto fail;
				}
				memcpy(out, p + 1, (size_t)(q - p - 1));
				out += q - p - 1;
				p = q + 1;
			} else if (*p == '"') {
				for (p++; *p != '"'; p++) {
					if (*p == '\0') {
						*why = "an unterminated \" quote";
						goto fail;
					}
					if (*p == '\\' && p[1] != '\0' && strchr("\"\\$`\n", p[1]))
						p++;
					*out++ = *p;
				}
				p++;
			} else if (*p == '\\') {
				if (p[1] == '\0') {
					*why = "a trailing backslash";
					goto fail;
				}
				*out++ = p[1];
				p += 2;
			} else {
				*out++ = *p++;
			}
		}
		*out++ = '\0';
	}
	v[nw] = NULL;
	*words = v;
	return (int)nw;
fail:
	free(v);
	return -EINVAL;
}

/* Append an owned entry to the list (freed on failure). */
static int env_push(struct env_list *env, char *entry)
{
	if (env->n + 2 > env->cap) {
		size_t cap = env->cap ? env->cap * 2 : 16;
		char **nv = realloc(env->v, cap * sizeof(char *));

		if (nv == NULL) {
			free(entry);
			return -ENOMEM;
		}
		env->v = nv;
		env->cap = cap;
	}
	env->v[env->n++] = entry;
	env->v[env->n] = NULL;
	return 0;
}

/* Set KEY=VALUE in the list, replacing an entry with the same key. */
static int env_set(struct env_list *env, const char *key, size_t keylen, const char *value)
{
	char *entry;

	if (asprintf(&entry, "%.*s=%s", (int)keylen, key, value) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < env->n; i++) {
		if (strncmp(env->v[i], entry, keylen + 1) == 0) {
			free(env->v[i]);
			env->v[i] = entry;
			return 0;
		}
	}
	return env_push(env, entry);
}

/*
 * Remove every DBT_* variable dbtd itself was started with from what dbt
 * inherits (a bare "KEY" entry): a run's dbt settings come from its
 * environment's variables and from this plugin, never from the daemon's shell.
 */
static int env_drop_inherited_dbt(struct env_list *env)
{
	extern char **environ;

	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		char *entry;

		if (strncmp(*e, "DBT_", 4) != 0 || eq == NULL)
			continue;
		entry = strndup(*e, (size_t)(eq - *e));
		if (entry == NULL || env_push(env, entry) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Free the list's entries (the secret is wiped first). */
static void env_free(struct env_list *env)
{
	for (size_t i = 0; i < env->n; i++) {
		explicit_bzero(env->v[i], strlen(env->v[i]));
		free(env->v[i]);
	}
	free(env->v);
	env->v = NULL;
	env->n = env->cap = 0;
}

/* True when `key` (length n) is a valid environment variable name. */
static int valid_key(const char *key, size_t n)
{
	if (n == 0 || (key[0] >= '0' && key[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", key[i]))
			return 0;
	return 1;
}

/* True when `key` is one of the variables env.vars may not replace. */
static int is_fixed_key(const char *key, size_t n)
{
	for (size_t i = 0; i < sizeof(fixed_keys) / sizeof(fixed_keys[0]); i++)
		if (strlen(fixed_keys[i]) == n && strncmp(fixed_keys[i], key, n) == 0)
			return 1;
	return 0;
}

/* Add the KEY=VALUE lines of env.vars; sets the step error on a bad line. */
static int add_env_vars(const struct dbtd_host *host, dbtd_step_ctx *ctx,
                        struct env_list *env, const char *vars)
{
	const char *line = vars;
	char *value = NULL;
	int lineno = 0, rc = 0;

	while (*line != '\0') {
		size_t n = strcspn(line, "\n"), len = n, keylen;
		const char *eq;

		lineno++;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		while (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
			line++;
			n--;
			len--;
		}
		if (len == 0 || line[0] == '#')
			goto next;
		eq = memchr(line, '=', len);
		if (eq == NULL) {
			/* The line may hold a secret: never repeat it. */
			host->set_error(ctx, "environment variables line %d has no \"=\"; "
			                "write each line as KEY=VALUE", lineno);
			rc = -EINVAL;
			goto fail;
		}
		keylen = (size_t)(eq - line);
		if (!valid_key(line, keylen)) {
			host->set_error(ctx, "environment variables line %d: \"%.*s\" is not a variable "
			                "name; use letters, digits and _", lineno,
			                (int)(keylen > 64 ? 64 : keylen), line);
			rc = -EINVAL;
			goto fail;
		}
		if (is_fixed_key(line, keylen)) {
			host->log(ctx, "Ignoring %.*s from the environment's variables: dbtd sets it",
			          (int)keylen, line);
			goto next;
		}
		value = strndup(eq + 1, len - keylen - 1);
		if (value == NULL || (rc = env_set(env, line, keylen, value)) < 0) {
			host->set_error(ctx, "cannot prepare dbt's environment: out of memory");
			rc = -ENOMEM;
			goto fail;
		}
		explicit_bzero(value, strlen(value));
		free(value);
		value = NULL;
next:
		line += n;
		if (*line == '\n')
			line++;
	}
fail:
	free(value);
	return rc;
}

/* Run step.command with dbt and turn its outcome into the step status. */
static int dbt_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	const char *command = host->param(ctx, "step.command");
	const char *dbt = host->param(ctx, "env.dbt");
	const char *project_dir = host->param(ctx, "run.project_dir");
	const char *profiles_dir = host->param(ctx, "run.profiles_dir");
	const char *vars = host->param(ctx, "env.vars");
	const char *secret = host->param(ctx, "secret.dest.password");
	struct dbtd_spawn spec = { .size = sizeof(spec) };
	struct env_list env = { 0 };
	struct dbt_state *st = NULL;
	char **words = NULL, label[128];
	const char *why = "";
	const char **argv = NULL;
	int nw, rc, wstatus = 0;
	int status = DBTD_STEP_FAILED;

	(void)data;
	if (dbt == NULL || dbt[0] == '\0')
		dbt = "dbt";
	if (command == NULL || (nw = split_words(command, &words, &why)) == 0) {
		host->set_error(ctx, "the step has no command; give it one such as \"dbt build\"");
		goto fail;
	}
	if (nw < 0) {
		host->set_error(ctx, "cannot split the step's command \"%s\": %s; fix the quoting",
		                command, why);
		goto fail;
	}
	if (strcmp(words[0], "dbt") != 0) {
		host->set_error(ctx, "a dbt step runs dbt, not \"%s\"", words[0]);
		goto fail;
	}
	/* "dbt build" for messages: dbt and its first word that is no option. */
	snprintf(label, sizeof(label), "dbt");
	for (int i = 1; i < nw; i++) {
		if (words[i][0] != '-') {
			snprintf(label, sizeof(label), "dbt %.100s", words[i]);
			break;
		}
	}
	if (project_dir == NULL || profiles_dir == NULL) {
		host->set_error(ctx, "%s: no %s (%s is not set); the %s step must run before this one",
		                label, project_dir == NULL ? "dbt project directory" : "profile",
		                project_dir == NULL ? "run.project_dir" : "run.profiles_dir",
		                project_dir == NULL ? "git-clone" : "dbt-profile");
		goto fail;
	}

	st = calloc(1, sizeof(*st));
	argv = calloc((size_t)nw + 1, sizeof(*argv));
	if (st == NULL || argv == NULL) {
		host->set_error(ctx, "%s: out of memory", label);
		goto fail;
	}
	st->host = host;
	st->ctx = ctx;
	st->prog_enabled = DBTD_HOST_HAS(host, progress);
	argv[0] = dbt;
	for (int i = 1; i < nw; i++)
		argv[i] = words[i];

#define SET(k, v) env_set(&env, k, strlen(k), v)
	if (env_drop_inherited_dbt(&env) < 0 || SET("DBT_PROFILES_DIR", profiles_dir) < 0 || SET("DBT_PROJECT_DIR", project_dir) < 0 ||
	    SET("DBT_SEND_ANONYMOUS_USAGE_STATS", "false") < 0 || SET("DO_NOT_TRACK", "1") < 0 ||
	    SET("DBT_USE_COLORS", "false") < 0 || SET("DBT_LOG_FORMAT", "json") < 0 ||
	    SET("DBT_LOG_FORMAT_FILE", "text") < 0 || SET("DBT_PRINTER_WIDTH", "100") < 0 ||
	    /* where dbtd looks for the manifest, run results and artifacts */
	    SET("DBT_TARGET_PATH", "target") < 0 || SET("DBT_LOG_PATH", "logs") < 0) {
		host->set_error(ctx, "%s: cannot prepare dbt's environment: out of memory", label);
		goto fail;
	}
	if (vars != NULL && add_env_vars(host, ctx, &env, vars) < 0)
		goto fail;
	if (secret != NULL && SET("DBT_ENV_SECRET_DBTD_PASSWORD", secret) < 0) {
		host->set_error(ctx, "%s: cannot prepare dbt's environment: out of memory", label);
		goto fail;
	}
#undef SET

	if (host->cancel_requested(ctx)) {
		status = DBTD_STEP_CANCELED;
		goto fail;
	}
	spec.argv = argv;
	spec.env = (const char *const *)env.v;
	spec.cwd = project_dir;
	spec.on_line = on_line;
	spec.arg = st;
	rc = host->spawn(ctx, &spec, &wstatus);
	if (rc < 0) {
		host->set_error(ctx, "cannot run %s: %s; install dbt or set the environment's --dbt PATH",
		                dbt, strerror(-rc));
		goto fail;
	}
	flush_failure(st);
	/* dbt has exited: nothing runs any more (after a cancel or a crash). */
	if (st->prog.reported && st->prog.nrunning > 0) {
		while (st->prog.nrunning > 0)
			running_remove(&st->prog, st->prog.nrunning - 1);
		progress_report(st);
	}
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) {
		status = DBTD_STEP_OK;
		goto fail;
	}
	if (host->cancel_requested(ctx)) {
		host->log(ctx, "%s stopped: the run was canceled", label);
		status = DBTD_STEP_CANCELED;
		goto fail;
	}
	if (WIFSIGNALED(wstatus)) {
		host->set_error(ctx, "%s was killed by signal %d (%s)", label, WTERMSIG(wstatus),
		                strsignal(WTERMSIG(wstatus)));
	} else if (st->errlen > 0) {
		if (st->nerrors > 1)
			host->set_error(ctx, "%s failed with %d errors: %s", label, st->nerrors, st->errors);
		else
			host->set_error(ctx, "%s failed: %s", label, st->errors);
	} else if (st->last_stderr[0] != '\0') {
		host->set_error(ctx, "%s exited with status %d: %s", label, WEXITSTATUS(wstatus),
		                st->last_stderr);
	} else {
		host->set_error(ctx, "%s exited with status %d", label, WEXITSTATUS(wstatus));
	}
fail:
	env_free(&env);
	free(argv);
	free(words);
	if (st != NULL)
		progress_free(&st->prog);
	free(st);
	return status;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "dbt",
	.description = "Run a dbt command in the project with the run's profile",
	.run = dbt_run,
};
