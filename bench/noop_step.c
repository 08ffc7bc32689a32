/* noop_step.c - a step plugin that does nothing, built once per step type
 * (-DSTEP_TYPE='"git-clone"' ...) to measure dbtd's own cost per run. */
#include "dbtd/step.h"

#ifndef STEP_TYPE
#define STEP_TYPE "noop"
#endif

/* Succeed at once. */
static int
noop_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	(void)host; (void)ctx; (void)data;
	return DBTD_STEP_OK;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = STEP_TYPE,
	.description = "does nothing (benchmark)",
	.run = noop_run,
};
