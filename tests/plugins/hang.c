/*
 * hang.c - a step that never returns and never looks at cancel_requested():
 * cancel and timeouts must stop it all the same.
 */
#include <unistd.h>

#include "dbtd/step.h"

/* Sleep forever; a signal only cuts one sleep short. */
static int
hang_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	(void)data;
	host->log(ctx, "hanging");
	for (;;)
		sleep(60);
	return DBTD_STEP_OK;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "test-hang",
	.description = "a step that never returns",
	.run = hang_run,
};
