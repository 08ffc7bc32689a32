/* exit.c - a step that calls exit(3) inside run: only its run may fail. */
#include <stdlib.h>

#include "dbtd/step.h"

/* End the runner process from inside the plugin. */
static int
exit_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	(void)data;
	host->log(ctx, "about to exit");
	exit(3);
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "test-exit",
	.description = "a step that calls exit(3)",
	.run = exit_run,
};
