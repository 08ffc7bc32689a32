/* plugin.c - load step plugins and check them against the step ABI. */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "plugin.h"
#include "util.h"

/* Record a refusal of path with a reason; logs it. */
static int
refuse(struct plugin_set *ps, const char *path, char *reason)
{
	struct plugin_refusal *r;

	if (reason == NULL)
		return -ENOMEM;
	log_warn("plugin %s refused: %s", path, reason);
	r = realloc(ps->refused, (ps->nrefused + 1) * sizeof(*r));
	if (r == NULL) {
		free(reason);
		return -ENOMEM;
	}
	ps->refused = r;
	r[ps->nrefused].path = strdup(path);
	if (r[ps->nrefused].path == NULL) {
		free(reason);
		return -ENOMEM;
	}
	r[ps->nrefused].reason = reason;
	ps->nrefused++;
	return -EINVAL;
}

/* True when s is a usable step type name: [a-z0-9_-], 1..64 chars. */
static int
type_name_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') ||
		      s[n] == '-' || s[n] == '_'))
			return 0;
	return n > 0 && n <= 64;
}

/* Check a descriptor; returns NULL when fine, else a malloc'd reason. */
static char *
check_desc(const struct plugin_set *ps, const struct dbtd_step_plugin *d)
{
	const struct plugin *other;

	if (d->abi_major != DBTD_STEP_ABI_MAJOR)
		return xasprintf("built for step ABI %u.%u, this dbtd speaks ABI %u.x; "
		                 "rebuild the plugin against this dbtd's dbtd/step.h",
		                 d->abi_major, d->abi_minor, DBTD_STEP_ABI_MAJOR);
	if (d->size < offsetof(struct dbtd_step_plugin, run) + sizeof(d->run))
		return xasprintf("descriptor is %u bytes, too small for ABI %u",
		                 d->size, DBTD_STEP_ABI_MAJOR);
	if (!type_name_ok(d->type))
		return xasprintf("step type name \"%s\" is not valid (use 1-64 of a-z 0-9 - _)",
		                 d->type ? d->type : "(null)");
	if (d->run == NULL)
		return xasprintf("step type \"%s\" has no run entry point", d->type);
	other = plugins_find(ps, d->type);
	if (other)
		return xasprintf("duplicate step type \"%s\", already provided by %s",
		                 d->type, other->path);
	return NULL;
}

int
plugin_load(struct plugin_set *ps, const char *path)
{
	const struct dbtd_step_plugin *d;
	struct plugin *p;
	void *h;
	char *reason;

	dlerror();
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		return refuse(ps, path, xasprintf("cannot load: %s (not a shared object, "
		              "or missing dependencies? try ldd %s)", e ? e : "dlopen failed", path));
	}
	d = dlsym(h, DBTD_STEP_PLUGIN_SYMBOL);
	if (d == NULL) {
		dlclose(h);
		return refuse(ps, path, xasprintf("no symbol %s: not a dbtd step plugin",
		              DBTD_STEP_PLUGIN_SYMBOL));
	}
	reason = check_desc(ps, d);
	if (reason) {
		dlclose(h);
		return refuse(ps, path, reason);
	}
	p = realloc(ps->items, (ps->n + 1) * sizeof(*p));
	if (p == NULL) {
		dlclose(h);
		return -ENOMEM;
	}
	ps->items = p;
	p[ps->n].path = strdup(path);
	if (p[ps->n].path == NULL) {
		dlclose(h);
		return -ENOMEM;
	}
	p[ps->n].handle = h;
	p[ps->n].desc = d;
	ps->n++;
	log_info("plugin %s loaded: step type \"%s\" (ABI %u.%u): %s", path, d->type,
	         d->abi_major, d->abi_minor, d->description ? d->description : "");
	return 0;
}

/* scandir filter: names ending in ".so". */
static int
is_so(const struct dirent *e)
{
	size_t n = strlen(e->d_name);

	return n > 3 && strcmp(e->d_name + n - 3, ".so") == 0 && e->d_name[0] != '.';
}

int
plugins_load_dir(struct plugin_set *ps, const char *dir)
{
	struct dirent **names;
	int n, ok = 0;

	free(ps->dir);
	ps->dir = strdup(dir);
	if (ps->dir == NULL)
		return -ENOMEM;
	log_info("loading step plugins from %s", dir);
	n = scandir(dir, &names, is_so, alphasort);
	if (n < 0) {
		int rc = -errno;
		log_err("cannot read plugin directory %s: %s", dir, strerror(errno));
		return rc;
	}
	for (int i = 0; i < n; i++) {
		char *path = xasprintf("%s/%s", dir, names[i]->d_name);
		if (path && plugin_load(ps, path) == 0)
			ok++;
		free(path);
		free(names[i]);
	}
	free(names);
	return ok;
}

const struct plugin *
plugins_find(const struct plugin_set *ps, const char *type)
{
	for (size_t i = 0; i < ps->n; i++)
		if (strcmp(ps->items[i].desc->type, type) == 0)
			return &ps->items[i];
	return NULL;
}

uint32_t
plugin_flags(const struct plugin *p)
{
	const struct dbtd_step_plugin *d = p->desc;

	if (d->size < offsetof(struct dbtd_step_plugin, flags) + sizeof(d->flags))
		return 0;
	return d->flags;
}

void
plugins_free(struct plugin_set *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		dlclose(ps->items[i].handle);
		free(ps->items[i].path);
	}
	for (size_t i = 0; i < ps->nrefused; i++) {
		free(ps->refused[i].path);
		free(ps->refused[i].reason);
	}
	free(ps->items);
	free(ps->refused);
	free(ps->dir);
	memset(ps, 0, sizeof(*ps));
}
