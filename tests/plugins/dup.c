/* dup.c - built twice (dup-a.so, dup-b.so): the second must be refused. */
#include "dbtd/step.h"

/* Succeed without doing anything. */
static int
dup_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	(void)host; (void)ctx; (void)data;
	return DBTD_STEP_OK;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "test-dup",
	.description = "a step type provided twice",
	.run = dup_run,
};
