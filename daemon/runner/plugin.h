/*
 * plugin.h - loading step plugins (shared objects implementing the step ABI
 * of include/dbtd/step.h) and finding them by step type.
 */
#ifndef DBTD_PLUGIN_H
#define DBTD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "dbtd/step.h"

struct plugin {
	char *path;
	void *handle;                         /* dlopen handle */
	const struct dbtd_step_plugin *desc;  /* the exported descriptor */
};

struct plugin_refusal {
	char *path;
	char *reason;
};

struct plugin_set {
	char *dir;                            /* the directory loaded, or NULL */
	struct plugin *items;
	size_t n;
	struct plugin_refusal *refused;
	size_t nrefused;
};

/*
 * plugin_load - load one shared object into ps.  On refusal, records the
 * path and reason in ps->refused and returns -EINVAL (or -ENOMEM); the
 * reason is also logged.  0 when accepted (and logged).
 */
int plugin_load(struct plugin_set *ps, const char *path);

/*
 * plugins_load_dir - load every "*.so" in dir, in name order, and remember
 * dir in ps->dir.  Refusals do not stop the walk.  Returns the number
 * accepted, or -errno when the directory cannot be read (logged).
 */
int plugins_load_dir(struct plugin_set *ps, const char *dir);

/* plugins_find - the plugin providing step type `type`, or NULL. */
const struct plugin *plugins_find(const struct plugin_set *ps, const char *type);

/*
 * plugin_flags - the descriptor's DBTD_STEP_* flags; 0 for a plugin built
 * before ABI 1.2, whose descriptor has no flags member.
 */
uint32_t plugin_flags(const struct plugin *p);

/* plugins_free - unload everything and free ps's contents. */
void plugins_free(struct plugin_set *ps);

#endif /* DBTD_PLUGIN_H */
