/* always.c - a plugin whose steps also run after a failed step (ABI 1.2). */
#include "dbtd/step.h"

/* Log what the run's status parameters say and succeed. */
static int
always_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	const char *status = host->param(ctx, "run.status");
	const char *failed = host->param(ctx, "run.failed_step");

	(void)data;
	host->log(ctx, "run.status=%s run.failed_step=%s", status ? status : "(unset)",
	          failed ? failed : "(unset)");
	return DBTD_STEP_OK;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "test-always",
	.description = "a step that runs after failures too",
	.run = always_run,
	.flags = DBTD_STEP_RUN_ALWAYS,
};
