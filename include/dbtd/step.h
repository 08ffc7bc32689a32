/*
 * dbtd/step.h - the dbtd step plugin ABI, version 1.2.
 *
 * A step plugin is a shared object that implements one step type (for
 * example "git-clone" or "dbt").  It exports exactly one symbol,
 *
 *     const struct dbtd_step_plugin dbtd_step_plugin_v1;
 *
 * and links against no symbol of dbtd: every service of the host reaches the
 * plugin through the function table (struct dbtd_host) passed to init and
 * run.  A plugin therefore builds from this header alone:
 *
 *     cc -shared -fPIC -Wl,--no-undefined $(pkg-config --cflags dbtd-step) \
 *        -o my-step.so my-step.c
 *
 * and installs into $(pkg-config --variable=plugindir dbtd-step).  The
 * manual page dbtd-step(3) documents all of this with a complete plugin.
 *
 * ABI rules
 *   - DBTD_STEP_ABI_MAJOR changes only when an existing member changes
 *     meaning or position.  dbtd refuses a plugin whose abi_major differs
 *     from its own, and logs why.
 *   - DBTD_STEP_ABI_MINOR grows when members are appended to struct
 *     dbtd_host or struct dbtd_step_plugin (or new flags or parameters are
 *     defined); nothing is ever removed or moved.  dbtd loads a plugin of
 *     any minor version of its major: each struct starts with its own size
 *     so either side can tell which members the other one has.  Use
 *     DBTD_HOST_HAS() before calling a member added after 1.0, so that one
 *     plugin binary also runs on older hosts.
 *   - History: 1.0 the first; 1.1 host->progress; 1.2 the descriptor's
 *     flags (DBTD_STEP_RUN_ALWAYS) and the run.status, run.failed_step and
 *     run.error parameters.
 *
 * Threading and process model
 *   - dbtd forks one runner process per run.  The runner calls the plugin's
 *     entry points, one step at a time, from a single thread; call the host
 *     only from that thread.  Globals are per run: each run has its own
 *     process, forked from dbtd after the plugins were loaded (so code a
 *     plugin runs at load time, such as constructors, runs inside dbtd).
 *   - Leave the SIGINT and SIGTERM handlers alone: the runner's own tell
 *     cancel_requested() that the run is being canceled.
 *   - A plugin that crashes or calls exit() ends only its run: the run fails
 *     with an error naming the step and the signal or exit status.
 *
 * Cancel
 *   - The runner leads a process group holding every child it spawns.  To
 *     cancel a run (or stop one past its timeout) dbtd sends SIGINT to the
 *     whole group, then SIGTERM after a grace period, then SIGKILL.  The
 *     runner catches SIGINT and SIGTERM: cancel_requested() turns true, and
 *     children get the signal directly (dbt then cancels its queries).
 *     Long in-process work should poll cancel_requested() and return
 *     DBTD_STEP_CANCELED; work that cannot be interrupted ends with the
 *     SIGKILL of the runner.
 *
 * Ownership
 *   - Strings passed to the plugin by the host (parameters, workspace path,
 *     lines given to a line callback) are owned by the host and valid until
 *     the entry point returns (lines: until the callback returns).  Copy
 *     what you keep.
 *   - Strings the plugin passes to the host are copied before the call
 *     returns; the plugin keeps ownership.
 */
#ifndef DBTD_STEP_H
#define DBTD_STEP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DBTD_STEP_ABI_MAJOR 1
#define DBTD_STEP_ABI_MINOR 2

/* Name of the symbol every plugin exports. */
#define DBTD_STEP_PLUGIN_SYMBOL "dbtd_step_plugin_v1"

/* Status codes returned by entry points. */
#define DBTD_STEP_OK       0 /* the step succeeded */
#define DBTD_STEP_FAILED   1 /* the step failed; set_error() says why */
#define DBTD_STEP_CANCELED 2 /* the step stopped because cancel was requested */

/* Log streams, the `stream` argument of log and line callbacks. */
#define DBTD_STREAM_INFO   0 /* a line the plugin writes itself */
#define DBTD_STREAM_STDOUT 1 /* a line a child wrote to stdout */
#define DBTD_STREAM_STDERR 2 /* a line a child wrote to stderr */

/* Longest piece of a line handed to a line callback or stored in a step log. */
#define DBTD_LINE_MAX (1024u * 1024u)

/* Return values of a line callback. */
#define DBTD_LINE_KEEP 0 /* store the line in the step log as it came */
#define DBTD_LINE_DROP 1 /* the callback dealt with it (e.g. logged another form) */

#if defined(__GNUC__)
#define DBTD_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define DBTD_PRINTF(fmt, args)
#endif

/* One step being executed.  Opaque: only the host looks inside. */
typedef struct dbtd_step_ctx dbtd_step_ctx;

/*
 * A line callback, given to spawn().  Called for every complete line the
 * child writes (without the trailing newline; `line` is NUL-terminated and
 * `len` excludes the NUL), in order per stream.  A line longer than
 * DBTD_LINE_MAX bytes arrives in pieces of DBTD_LINE_MAX bytes, each but the
 * last followed by " [line continues]"; lines given to log() and log_line()
 * are split the same way.  Return DBTD_LINE_KEEP to
 * have the host store the line, DBTD_LINE_DROP when the callback logged
 * what it wanted itself.
 */
typedef int (*dbtd_line_fn)(void *arg, dbtd_step_ctx *ctx, int stream,
                            const char *line, size_t len);

/*
 * How to start a child process.  Zero-initialise, set `size` to
 * sizeof(struct dbtd_spawn), then fill what you need.
 */
struct dbtd_spawn {
	uint32_t size;              /* sizeof(struct dbtd_spawn) */
	const char *const *argv;    /* argv[0] is looked up on PATH; NULL-terminated */
	const char *const *env;     /* NULL-terminated, or NULL: "KEY=VALUE" sets
	                               KEY for the child (the last entry for a KEY
	                               wins); a bare "KEY" removes KEY from the
	                               environment the child inherits */
	const char *cwd;            /* working directory, or NULL for the workspace */
	dbtd_line_fn on_line;       /* optional line callback */
	void *arg;                  /* passed to on_line */
};

/*
 * How far a step is, for progress(): `done` of `total` units (dbt: nodes),
 * the units in progress and the ones that failed so far.  Zero-initialise
 * and set `size` to sizeof(struct dbtd_progress).
 */
struct dbtd_progress {
	uint32_t size;
	uint32_t done;
	uint32_t total;
	const char *const *running;   /* nrunning names */
	size_t nrunning;
	const char *const *failed;    /* nfailed names */
	size_t nfailed;
};

/*
 * The host function table.  dbtd passes it to init and run.
 */
struct dbtd_host {
	uint32_t size;      /* sizeof(struct dbtd_host) of the host */
	uint32_t abi_major; /* DBTD_STEP_ABI_MAJOR of the host */
	uint32_t abi_minor; /* DBTD_STEP_ABI_MINOR of the host */

	/*
	 * log - append one line to the step log (stream DBTD_STREAM_INFO).
	 * The host timestamps it and masks known secrets in it.
	 */
	void (*log)(dbtd_step_ctx *ctx, const char *fmt, ...) DBTD_PRINTF(2, 3);

	/*
	 * spawn - run a child process to completion.  Its stdout and stderr are
	 * captured line by line into the step log (through on_line when set).
	 * The child leads no process group of its own: cancel reaches it with
	 * the rest of the run.  The exact command line is logged first, with
	 * secrets masked.
	 *
	 * The child's stdin is /dev/null; spawn returns once the child has
	 * exited and its stdout and stderr are closed (a grandchild that keeps
	 * them open keeps spawn waiting).  A trailing "\r" is removed from each
	 * line; a last line without a newline is still delivered.
	 *
	 * Returns 0 and stores the wait(2) status in *status, or a negative
	 * errno when the child could not be started (also logged).
	 */
	int (*spawn)(dbtd_step_ctx *ctx, const struct dbtd_spawn *spec,
	             int *status);

	/*
	 * param - a run or step parameter, or NULL when it is not set (an
	 * empty value counts as not set).
	 * Run parameters: "run.id", "job.name", "project.name",
	 * "project.repo", "project.subdir",
	 * "run.branch", "run.commit" (the commit fixed when the run was
	 * created, or unset: the branch head), "run.fetch_ref",
	 * "run.pr_number" (PR runs),
	 * "env.name", "env.branch", "env.dbt", "env.vars" (KEY=VALUE lines),
	 * "dest.type", "dest.path", "dest.host", "dest.port", "dest.user",
	 * "dest.dbname", "dest.schema", "dest.threads",
	 * "secret.dest.password" (never log it).
	 * Since 1.2: "run.status" is "running" while every earlier step
	 * completed and "failed" once one failed (only steps of
	 * DBTD_STEP_RUN_ALWAYS plugins run then); "run.failed_step" (its
	 * name) and "run.error" (its error) are set with it.
	 * Step parameters: "step.name", "step.command" (for dbt steps) and the
	 * KEY=VALUE pairs given with the job's step.
	 * Outputs of earlier steps (see set_output) are parameters too.
	 */
	const char *(*param)(dbtd_step_ctx *ctx, const char *key);

	/*
	 * set_output - publish a value to the steps after this one (as a
	 * parameter of the same key).  Known keys: "run.commit_sha" (the
	 * resolved 40-hex commit; also recorded in the run), "run.project_dir"
	 * (the dbt project directory), "run.profiles_dir" (the directory
	 * holding profiles.yml).  Returns 0 or -errno.
	 */
	int (*set_output)(dbtd_step_ctx *ctx, const char *key, const char *value);

	/* workspace - this run's private directory (absolute path). */
	const char *(*workspace)(dbtd_step_ctx *ctx);

	/* cancel_requested - non-zero once the run is being canceled. */
	int (*cancel_requested)(dbtd_step_ctx *ctx);

	/*
	 * set_error - the one-line reason the step failed; it becomes the run's
	 * error summary.  The last call wins.  Secrets are masked as in log().
	 */
	void (*set_error)(dbtd_step_ctx *ctx, const char *fmt, ...) DBTD_PRINTF(2, 3);

	/*
	 * log_line - append one line of `len` bytes (no newline needed; need
	 * not be NUL-terminated) to the step log under `stream`.  For line
	 * callbacks that store a transformed form of what a child printed.
	 * Secrets are masked like in log().
	 */
	void (*log_line)(dbtd_step_ctx *ctx, int stream, const char *text, size_t len);

	/* ---- ABI 1.1 ---- */

	/*
	 * progress - report how far the step is; `dbtctl run view` and
	 * `run watch` show it while the step runs, and the last report stays
	 * with the step.  The host copies what it needs; call it as often as
	 * progress changes.  Check DBTD_HOST_HAS(host, progress) first.
	 */
	void (*progress)(dbtd_step_ctx *ctx, const struct dbtd_progress *p);

	/* New members are appended here. */
};

/* True when the host table `h` has member `m` (for members after 1.0). */
#define DBTD_HOST_HAS(h, m) \
	((h)->size >= offsetof(struct dbtd_host, m) + sizeof((h)->m) && (h)->m != NULL)

/* Flags of a descriptor (ABI 1.2). */
#define DBTD_STEP_RUN_ALWAYS (1u << 0) /* run this plugin's steps also after an
                                          earlier step of the run failed (never
                                          after a cancel or a timeout) */

/*
 * The descriptor a plugin exports as dbtd_step_plugin_v1.
 */
struct dbtd_step_plugin {
	uint32_t size;        /* sizeof(struct dbtd_step_plugin) */
	uint32_t abi_major;   /* DBTD_STEP_ABI_MAJOR the plugin was built for */
	uint32_t abi_minor;   /* DBTD_STEP_ABI_MINOR the plugin was built for */
	const char *type;     /* step type name, e.g. "git-clone"; unique */
	const char *description; /* one line for `dbtctl plugin list` */

	/*
	 * init - optional; called once per run, in the runner, just before the
	 * plugin's first step of the run.  Store per-run state in *data (NULL
	 * when there is no init).  Return DBTD_STEP_OK, or DBTD_STEP_FAILED with
	 * set_error (that step then fails and run is not called).
	 */
	int (*init)(const struct dbtd_host *host, dbtd_step_ctx *ctx, void **data);

	/*
	 * fini - optional; called once per run after its last step (also when a
	 * step failed or was canceled), for plugins whose init succeeded.  Not
	 * called when the runner dies (crash, SIGKILL).  It gets no host table:
	 * it cannot log.
	 */
	void (*fini)(void *data);

	/*
	 * run - execute one step.  Returns DBTD_STEP_OK, DBTD_STEP_FAILED (with
	 * set_error; without it the host names the step in the error) or
	 * DBTD_STEP_CANCELED.  Any other value counts as DBTD_STEP_FAILED; a
	 * failure while cancel is requested counts as canceled.  ctx is valid
	 * until run returns.
	 */
	int (*run)(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data);

	/* ---- ABI 1.2 ---- */

	/*
	 * flags - DBTD_STEP_* flags, or 0.  A host before 1.2 does not read
	 * them (size tells it they are not there for a plugin before 1.2).
	 */
	uint32_t flags;

	/* New members are appended here. */
};

/* Fill the ABI fields of a descriptor. */
#define DBTD_STEP_PLUGIN_INIT \
	.size = sizeof(struct dbtd_step_plugin), \
	.abi_major = DBTD_STEP_ABI_MAJOR, \
	.abi_minor = DBTD_STEP_ABI_MINOR

#ifdef __cplusplus
}
#endif

#endif /* DBTD_STEP_H */
