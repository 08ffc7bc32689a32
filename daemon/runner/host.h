/*
 * host.h - the host side of the step ABI, inside a runner: the function
 * table given to plugins, step logs (timestamped, secrets masked, batched
 * to dbtd), child processes, parameters and outputs.
 */
#ifndef DBTD_HOST_H
#define DBTD_HOST_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "dbtd/step.h"
#include "dbtd.pb-c.h"
#include "logrec.h"

struct kv {
	char *key;
	char *value;
};

/* What a runner knows while it executes a run. */
struct host_run {
	int fd;                          /* to dbtd */
	const char *workspace;
	struct kv *params;               /* run parameters */
	size_t nparams;
	struct kv *outputs;              /* set_output values, later ones win */
	size_t noutputs;
	char **secrets;                  /* masked in every log line */
	size_t nsecrets;
	volatile sig_atomic_t *cancel;   /* set by the runner's SIGINT/SIGTERM handler */
	int in_spawn;                    /* inside spawn: batch lines (else send each at once) */
	/* the log batch being collected (records of one step) */
	uint32_t batch_step;
	struct logbuf batch;
	int64_t batch_started_ms;
};

/* The step being executed: the opaque dbtd_step_ctx of the ABI. */
struct dbtd_step_ctx {
	struct host_run *hr;
	const Dbtd__Step *step;
	char *error;                     /* set_error, malloc'd */
};

/* host_table - the function table passed to plugins. */
const struct dbtd_host *host_table(void);

/* host_param_add - add a run parameter (copied). 0 or -ENOMEM. */
int host_param_add(struct host_run *hr, const char *key, const char *value);

/*
 * host_secret_add - mask value in every log line from now on.  key names the
 * secret in dbtd's log, never its value: an empty value is ignored, one
 * shorter than MASK_MIN_LEN bytes is not masked and dbtd warns.  0 or -ENOMEM.
 */
int host_secret_add(struct host_run *hr, const char *key, const char *value);

/* host_log_text - log a formatted line of a step (stream INFO). */
void host_log_text(dbtd_step_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* host_flush - send the collected log lines to dbtd now. 0 or -errno. */
#define HOST_BATCH_BYTES (64u << 10) /* send log lines at this size ... */
#define HOST_BATCH_MS 100            /* ... or this age, or when the step goes quiet */

int host_flush(struct host_run *hr);

/* host_send - send one runner event to dbtd. 0 or -errno. */
int host_send(struct host_run *hr, const Dbtd__RunnerEvent *ev);

#endif /* DBTD_HOST_H */
