/* crash.c - a step that dies of SIGSEGV inside run: only its run may fail. */
#include <sys/mman.h>

#include "dbtd/step.h"

/* Write to a read-only page: a real fault, which no sanitizer intercepts first. */
static int
crash_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	volatile char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)data;
	host->log(ctx, "about to crash");
	if (page == MAP_FAILED) {
		host->set_error(ctx, "mmap failed");
		return DBTD_STEP_FAILED;
	}
	page[0] = 1;
	return DBTD_STEP_OK;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "test-crash",
	.description = "a step that dies of SIGSEGV",
	.run = crash_run,
};
