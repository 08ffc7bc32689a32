/* wrong_abi.c - a plugin built for a future step ABI major version. */
#include "dbtd/step.h"

/* Never called: the loader refuses this plugin. */
static int
wrong_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	(void)host; (void)ctx; (void)data;
	return DBTD_STEP_FAILED;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	.size = sizeof(struct dbtd_step_plugin),
	.abi_major = DBTD_STEP_ABI_MAJOR + 1,
	.abi_minor = 0,
	.type = "test-wrong-abi",
	.description = "built for an ABI this dbtd does not speak",
	.run = wrong_run,
};
