/* good.c - a minimal valid step plugin for the loader tests. */
#include "dbtd/step.h"

/* Log one line (and the step's greeting parameter, when given) and succeed. */
static int
good_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	const char *greeting = host->param(ctx, "greeting");

	(void)data;
	host->log(ctx, "good step ran");
	if (greeting != NULL)
		host->log(ctx, "greeting: %s", greeting);
	return DBTD_STEP_OK;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "test-good",
	.description = "a step that logs one line",
	.run = good_run,
};
