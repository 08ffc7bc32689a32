/*
 * api.c - the request table and its handlers: unpack -> check -> act ->
 * reply; the one place an error becomes a wire Error.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "cron.h"
#include "log.h"
#include "names.h"
#include "pb.h"
#include "plugin.h"
#include "poll.h"
#include "runs.h"
#include "scheduler.h"
#include "server.h"
#include "store.h"
#include "store_format.h"
#include "triggers.h"

/* Answer a request that created a run (taken): the run, or a stream of it. */
static void
reply_new_run(struct api *a, struct client *c, Dbtd__Run *run, int watch)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;

	if (watch && run->status != DBTD__RUN_STATUS__RUN_SKIPPED) {
		uint64_t id = run->id;
		dbtd__run__free_unpacked(run, NULL);
		watch_open(a, c, id);
		return;
	}
	resp.body_case = DBTD__RESPONSE__BODY_RUN;
	resp.run = run;
	resp.end = watch;
	client_send(c, &resp);
	dbtd__run__free_unpacked(run, NULL);
}

/* job run: Run Now (Manual) or API */
static void
do_run_job(struct api *a, struct client *c, const Dbtd__RunJob *rj)
{
	Dbtd__Trigger trig = rj->trigger;
	struct err e;
	Dbtd__Run *run = NULL;
	int rc;

	if (trig == DBTD__TRIGGER__TRIGGER_UNSPECIFIED)
		trig = DBTD__TRIGGER__TRIGGER_API;
	if (trig != DBTD__TRIGGER__TRIGGER_MANUAL && trig != DBTD__TRIGGER__TRIGGER_API) {
		api_fail(c, ERR_INVALID, "a client may start a run as trigger manual or api, not %s",
		             trigger_json(trig));
		return;
	}
	rc = runs_trigger(a->runs, rj->job, trig, client_user(c), &run, &e);
	if (rc < 0) {
		api_error(c, &e);
		return;
	}
	reply_new_run(a, c, run, rj->watch);
}

/* run rerun */
static void
do_rerun(struct api *a, struct client *c, const Dbtd__RunRef *ref)
{
	struct err e;
	Dbtd__Run *run = NULL;

	if (runs_rerun(a->runs, ref->id, client_user(c), &run, &e) < 0) {
		api_error(c, &e);
		return;
	}
	reply_new_run(a, c, run, ref->watch);
}

/* run view / run watch */
static void
do_view_run(struct api *a, struct client *c, const Dbtd__RunRef *ref, int watch)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Run *run;
	int rc;

	if (watch || ref->watch) {
		watch_open(a, c, ref->id);
		return;
	}
	rc = runs_get(a->runs, ref->id, &run);
	if (rc < 0) {
		api_run_error(a, c, rc, ref->id);
		return;
	}
	resp.body_case = DBTD__RESPONSE__BODY_RUN;
	resp.run = run;
	client_send(c, &resp);
	dbtd__run__free_unpacked(run, NULL);
}

/* run cancel: the reply follows the run until it has stopped when watch is set */
static void
do_cancel_run(struct api *a, struct client *c, const Dbtd__RunRef *ref)
{
	struct err e;

	if (runs_cancel(a->runs, ref->id, client_user(c), &e) < 0) {
		api_error(c, &e);
		return;
	}
	do_view_run(a, c, ref, 0); /* the run as the cancel left it, or its stream */
}

/* plugin list: what a->plugins holds, loaded and refused, as loaded at start. */
static void
do_list_plugins(struct api *a, struct client *c)
{
	const struct plugin_set *ps = a->plugins;
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__PluginList pl = DBTD__PLUGIN_LIST__INIT;
	Dbtd__PluginInfo *info = calloc(ps->n + 1, sizeof(*info));
	Dbtd__PluginInfo **infop = calloc(ps->n + 1, sizeof(*infop));
	Dbtd__PluginRefusal *ref = calloc(ps->nrefused + 1, sizeof(*ref));
	Dbtd__PluginRefusal **refp = calloc(ps->nrefused + 1, sizeof(*refp));

	if (info == NULL || infop == NULL || ref == NULL || refp == NULL) {
		api_fail(c, ERR_INTERNAL, "out of memory listing plugins");
		goto out;
	}
	/* borrowed strings: the descriptors and paths outlive the reply */
	for (size_t i = 0; i < ps->n; i++) {
		const struct dbtd_step_plugin *desc = ps->items[i].desc;
		dbtd__plugin_info__init(&info[i]);
		info[i].type = (char *)desc->type;
		info[i].description = (char *)(desc->description ? desc->description : "");
		info[i].file = ps->items[i].path;
		info[i].abi_major = desc->abi_major;
		info[i].abi_minor = desc->abi_minor;
		info[i].run_always = (plugin_flags(&ps->items[i]) & DBTD_STEP_RUN_ALWAYS) != 0;
		infop[i] = &info[i];
	}
	for (size_t i = 0; i < ps->nrefused; i++) {
		dbtd__plugin_refusal__init(&ref[i]);
		ref[i].file = ps->refused[i].path;
		ref[i].reason = ps->refused[i].reason;
		refp[i] = &ref[i];
	}
	pl.n_loaded = ps->n;
	pl.loaded = infop;
	pl.n_refused = ps->nrefused;
	pl.refused = refp;
	pl.directory = ps->dir ? ps->dir : (char *)"";
	resp.body_case = DBTD__RESPONSE__BODY_PLUGINS;
	resp.plugins = &pl;
	client_send(c, &resp);
out:
	free(info);
	free(infop);
	free(ref);
	free(refp);
}

/* Hello: the first request on a connection, and only the first. */
static void
do_hello(struct api *a, struct client *c, const Dbtd__Hello *hello)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__HelloReply hr = DBTD__HELLO_REPLY__INIT;

	(void)a;
	if (client_hello_done(c)) {
		api_fail(c, ERR_INVALID, "Hello was already exchanged on this connection");
		return;
	}
	if (hello->protocol_version != DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
		client_error(c, DBTD__ERROR_CODE__ERROR_PROTOCOL,
		             "protocol version %u is not supported: this dbtd speaks version %d; "
		             "use a dbtctl of the same release", hello->protocol_version,
		             (int)DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
		client_close_after_flush(c);
		return;
	}
	hr.protocol_version = DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
	hr.server = (char *)PACKAGE_NAME " " PACKAGE_VERSION;
	resp.body_case = DBTD__RESPONSE__BODY_HELLO;
	resp.hello = &hr;
	if (client_send(c, &resp) == 0)
		client_set_hello(c);
}

/* server_info: this dbtd and the format of its store. */
static void
do_server_info(struct api *a, struct client *c)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__ServerInfoReply si = DBTD__SERVER_INFO_REPLY__INIT;
	Dbtd__StoreSpace sp = DBTD__STORE_SPACE__INIT;
	struct store_space space;
	Dbtd__StoreFormat *f = NULL;
	int rc = store_format_info(a->store, &f);

	if (rc < 0) {
		api_store_fail(a, c, rc, "cannot read the store's format");
		return;
	}
	si.server = (char *)PACKAGE_NAME " " PACKAGE_VERSION;
	si.protocol_version = DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
	si.store = f;
	si.max_store_format = STORE_FORMAT_CURRENT;
	if (store_space(a->store, &space) == 0) {
		sp.map_size = space.map_size;
		sp.map_used = space.map_used;
		sp.max_map_size = space.max_map_size;
		sp.file_size = space.file_size;
		sp.disk_free = space.disk_free;
		si.space = &sp;
	}
	resp.body_case = DBTD__RESPONSE__BODY_SERVER_INFO;
	resp.server_info = &si;
	client_send(c, &resp);
	dbtd__store_format__free_unpacked(f, NULL);
}

/* Reply with what an event started (taken). */
static void
reply_triggered(struct client *c, Dbtd__Triggered *t)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;

	resp.body_case = DBTD__RESPONSE__BODY_TRIGGERED;
	resp.triggered = t;
	client_send(c, &resp);
	triggers_free(t);
}

/* webhook: a forge's delivery, relayed by a local client */
static void
do_webhook(struct api *a, struct client *c, const Dbtd__Webhook *w)
{
	Dbtd__Triggered t = DBTD__TRIGGERED__INIT;
	struct err e;

	if (triggers_webhook(a->runs, client_user(c), w, &t, &e) < 0)
		api_error(c, &e);
	else
		reply_triggered(c, &t);
}

/* event pipeline: a pipeline finished */
static void
do_pipeline_event(struct api *a, struct client *c, const Dbtd__PipelineEvent *p)
{
	Dbtd__Triggered t = DBTD__TRIGGERED__INIT;
	struct err e;

	if (triggers_pipeline(a->runs, client_user(c), p, &t, &e) < 0)
		api_error(c, &e);
	else
		reply_triggered(c, &t);
}

/*
 * The request table: one row per request, the handler taking the request's
 * body.  H() adapts a handler of one body field to the table's shape.
 */
#define H(name, call)                                                              \
	static void h_##name(struct api *a, struct client *c, const Dbtd__Request *req) \
	{                                                                              \
		(void)a; (void)req;                                                    \
		call;                                                                  \
	}
H(hello, do_hello(a, c, req->hello))
H(add_project, objects_add_project(a, c, req->add_project))
H(add_environment, objects_add_environment(a, c, req->add_environment))
H(add_job, objects_add_job(a, c, req->add_job))
H(list, objects_list(a, c, req->list))
H(view, objects_view(a, c, req->view))
H(remove, objects_remove(a, c, req->remove))
H(run_job, do_run_job(a, c, req->run_job))
H(list_runs, objects_list_runs(a, c, req->list_runs))
H(view_run, do_view_run(a, c, req->view_run, 0))
H(watch_run, do_view_run(a, c, req->watch_run, 1))
H(cancel_run, do_cancel_run(a, c, req->cancel_run))
H(rerun, do_rerun(a, c, req->rerun))
H(read_logs, logs_open(a, c, req->read_logs))
H(lineage, artifacts_lineage(a, c, req->lineage))
H(artifacts, artifacts_list(a, c, req->artifacts))
H(artifact, artifacts_send(a, c, req->artifact))
H(webhook, do_webhook(a, c, req->webhook))
H(pipeline_event, do_pipeline_event(a, c, req->pipeline_event))
H(list_plugins, do_list_plugins(a, c))
H(server_info, do_server_info(a, c))
H(edit_job, objects_edit_job(a, c, req->edit_job))
H(prune_runs, prune_open(a, c, req->prune_runs))
#undef H

struct handler {
	Dbtd__Request__BodyCase body;
	void (*fn)(struct api *a, struct client *c, const Dbtd__Request *req);
};

#define ROW(NAME, name) { DBTD__REQUEST__BODY_##NAME, h_##name }
static const struct handler handlers[] = {
	ROW(HELLO, hello),
	ROW(ADD_PROJECT, add_project),
	ROW(ADD_ENVIRONMENT, add_environment),
	ROW(ADD_JOB, add_job),
	ROW(LIST, list),
	ROW(VIEW, view),
	ROW(REMOVE, remove),
	ROW(RUN_JOB, run_job),
	ROW(LIST_RUNS, list_runs),
	ROW(VIEW_RUN, view_run),
	ROW(WATCH_RUN, watch_run),
	ROW(CANCEL_RUN, cancel_run),
	ROW(RERUN, rerun),
	ROW(READ_LOGS, read_logs),
	ROW(LINEAGE, lineage),
	ROW(ARTIFACTS, artifacts),
	ROW(ARTIFACT, artifact),
	ROW(WEBHOOK, webhook),
	ROW(PIPELINE_EVENT, pipeline_event),
	ROW(LIST_PLUGINS, list_plugins),
	ROW(SERVER_INFO, server_info),
	ROW(EDIT_JOB, edit_job),
	ROW(PRUNE_RUNS, prune_runs),
};
#undef ROW

void
api_request(void *arg, struct client *c, const Dbtd__Request *req)
{
	struct api *a = arg;

	if (!client_hello_done(c) && req->body_case != DBTD__REQUEST__BODY_HELLO) {
		client_error(c, DBTD__ERROR_CODE__ERROR_PROTOCOL,
		             "the first request on a connection must be Hello");
		client_close_after_flush(c);
		return;
	}
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (handlers[i].body == req->body_case) {
			handlers[i].fn(a, c, req);
			return;
		}
	client_error(c, DBTD__ERROR_CODE__ERROR_UNIMPLEMENTED,
	             "%s %s does not know request %d: is the client newer than dbtd?",
	             PACKAGE_NAME, PACKAGE_VERSION, (int)req->body_case);
}

int
api_new(struct api **out, const struct api_config *cfg)
{
	struct api *a = calloc(1, sizeof(*a));

	if (a == NULL || (a->blob_dir = strdup(cfg->blob_dir)) == NULL) {
		free(a);
		return -ENOMEM;
	}
	a->loop = cfg->loop;
	a->store = cfg->store;
	a->runs = cfg->runs;
	a->scheduler = cfg->scheduler;
	a->pollers = cfg->pollers;
	a->plugins = cfg->plugins;
	a->retention = cfg->retention;
	*out = a;
	return 0;
}

void
api_free(struct api *a)
{
	if (a == NULL)
		return;
	free(a->blob_dir);
	free(a);
}
