/*
 * old_abi.c - a plugin as built against the 1.0 header: its descriptor
 * ends after `run`.  The flags set here lie beyond its size, where a 1.0
 * plugin has other data: the host must not read them.
 */
#include <stddef.h>

#include "dbtd/step.h"

/* Succeed without doing anything. */
static int
old_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	(void)host; (void)ctx; (void)data;
	return DBTD_STEP_OK;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	.size = offsetof(struct dbtd_step_plugin, flags),
	.abi_major = 1,
	.abi_minor = 0,
	.type = "test-old-abi",
	.description = "a step built for ABI 1.0",
	.run = old_run,
	.flags = DBTD_STEP_RUN_ALWAYS,
};
