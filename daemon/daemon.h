/*
 * daemon.h - the state one dbtd process holds, reached from every module
 * through the loop's userdata.
 */
#ifndef DBTD_DAEMON_H
#define DBTD_DAEMON_H

#include <ev.h>

#include "plugin.h"

struct store;
struct server;
struct runs;
struct logs;
struct scheduler;
struct pollers;

struct daemon {
	struct ev_loop *loop;
	struct store *store;
	struct plugin_set plugins;
	struct server *server;
	struct runs *runs;
	struct logs *logs;
	struct scheduler *scheduler;
	struct pollers *pollers;
	char *state_dir;
	char *work_dir;        /* per-run workspaces: <state_dir>/work */
	char *blob_dir;        /* artifact contents by sha256: <state_dir>/blobs */
	unsigned max_runs;     /* run slots */
	int stopping;
};

#endif /* DBTD_DAEMON_H */
