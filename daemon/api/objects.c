/*
 * objects.c - the requests on projects, environments and jobs (add, list,
 * view, remove) and the run history list: check, store, reply scrubbed of
 * secrets.
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
#include "reqlimits.h"
#include "runs.h"
#include "scheduler.h"
#include "server.h"
#include "store.h"
#include "store_format.h"
#include "triggers.h"

/* What a request may hold is checked first, against what cron can parse. */
_Static_assert(REQ_SCHEDULE_MAX <= CRON_EXPR_MAX, "a schedule cron_parse refuses as too long");
_Static_assert(REQ_TIMEZONE_MAX <= CRON_TZ_MAX, "a time zone cron refuses as too long");

#define KEEP_MAX 100000000u /* --keep-runs, --keep-days */

static const char *const kind_word[] = { "project", "environment", "job" };
static const char *const kind_cmd[] = { "project", "env", "job" };

/* True for names users can type: [A-Za-z0-9_.-], starting alphanumeric. */
static int
name_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
	                   (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-' || s[n] == '.'))
			return 0;
	return n <= REQ_NAME_MAX;
}

/* Replace secrets in an outgoing project or environment by "has_" flags. */
static void
scrub_project(Dbtd__Project *p)
{
	p->has_webhook_secret = pb_str_set(p->webhook_secret);
	pb_set_str(&p->webhook_secret, "");
	/* The refs polling saw are its bookkeeping, not the project's. */
	for (size_t i = 0; i < p->n_poll_refs; i++)
		dbtd__key_value__free_unpacked(p->poll_refs[i], NULL);
	free(p->poll_refs);
	p->poll_refs = NULL;
	p->n_poll_refs = 0;
}

/* Add the schedule's next five fire times to an outgoing job. */
static void
add_next_fires(Dbtd__Job *j)
{
	int64_t *t = calloc(5, sizeof(*t));

	if (t == NULL)
		return;
	free(j->next_fires_ms);
	j->next_fires_ms = t;
	j->n_next_fires_ms = scheduler_next_fires(j, now_ms() / 1000, t, 5);
}

/* Same for an environment's destination password. */
static void
scrub_env(Dbtd__Environment *e)
{
	if (e->destination) {
		e->destination->has_password = pb_str_set(e->destination->password);
		pb_set_str(&e->destination->password, "");
	}
}

/* Reply with one stored object of kind (scrubbed). */
static void
reply_object(struct client *c, enum store_kind kind, ProtobufCMessage *msg)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;

	switch (kind) {
	case STORE_PROJECT:
		scrub_project((Dbtd__Project *)msg);
		resp.body_case = DBTD__RESPONSE__BODY_PROJECT;
		resp.project = (Dbtd__Project *)msg;
		break;
	case STORE_ENVIRONMENT:
		scrub_env((Dbtd__Environment *)msg);
		resp.body_case = DBTD__RESPONSE__BODY_ENVIRONMENT;
		resp.environment = (Dbtd__Environment *)msg;
		break;
	case STORE_JOB:
		add_next_fires((Dbtd__Job *)msg);
		resp.body_case = DBTD__RESPONSE__BODY_JOB;
		resp.job = (Dbtd__Job *)msg;
		break;
	}
	client_send(c, &resp);
}

/* Store a new named object and reply with it, or reply the error. */
static void
add_object(struct api *a, struct client *c, enum store_kind kind,
           ProtobufCMessage *msg, const char *name, uint64_t *idp, int64_t *created)
{
	ProtobufCMessage *stored = NULL;
	int rc;

	*created = now_ms();
	rc = store_obj_add(a->store, kind, msg, name, idp);
	if (rc == 0) /* "added" only once it is stored */
		rc = store_commit(a->store);
	if (rc == -EEXIST) {
		api_fail(c, ERR_EXISTS, "a %s named \"%s\" exists already; see dbtctl %s view %s",
		             kind_word[kind], name, kind_cmd[kind], name);
		return;
	}
	if (rc < 0) {
		api_store_fail(a, c, rc, "cannot store %s \"%s\"", kind_word[kind], name);
		return;
	}
	log_info("%s \"%s\" added (id %llu) by %s", kind_word[kind], name,
	         (unsigned long long)*idp, client_user(c));
	if (kind == STORE_JOB)
		scheduler_add(a->scheduler, (const Dbtd__Job *)msg);
	else if (kind == STORE_PROJECT)
		pollers_add(a->pollers, (const Dbtd__Project *)msg);
	if (store_obj_get(a->store, kind, *idp, &stored) == 0) {
		reply_object(c, kind, stored);
		protobuf_c_message_free_unpacked(stored, NULL);
	}
}

/* Check a name field, replying on error; 0 when usable. */
static int
check_name(struct client *c, const char *what, const char *name)
{
	if (name_ok(name))
		return 0;
	api_fail(c, ERR_INVALID, "%s name \"%s\" is not valid: use up to %d letters, digits, "
	             "'_', '-' or '.', starting with a letter or digit", what,
	             name ? name : "", REQ_NAME_MAX);
	return -EINVAL;
}

/* project add */
void
objects_add_project(struct api *a, struct client *c, Dbtd__Project *p)
{
	if (check_name(c, "project", p->name) < 0)
		return;
	if (!pb_str_set(p->repo)) {
		api_fail(c, ERR_INVALID, "project \"%s\" needs a repository: --repo URL or path", p->name);
		return;
	}
	if (p->subdir[0] == '/' || strstr(p->subdir, "..")) {
		api_fail(c, ERR_INVALID, "--subdir \"%s\" must be a relative path inside the "
		             "repository, without \"..\"", p->subdir);
		return;
	}
	if (p->poll_seconds > 86400) {
		api_fail(c, ERR_INVALID, "--poll %u is too long: poll at least once a day "
		             "(1 to 86400 seconds)", p->poll_seconds);
		return;
	}
	/* Bookkeeping fields are dbtd's own. */
	for (size_t i = 0; i < p->n_poll_refs; i++)
		dbtd__key_value__free_unpacked(p->poll_refs[i], NULL);
	free(p->poll_refs);
	p->poll_refs = NULL;
	p->n_poll_refs = 0;
	p->last_poll_ms = 0;
	pb_set_str(&p->poll_error, "");
	p->id = 0;
	add_object(a, c, STORE_PROJECT, &p->base, p->name, &p->id, &p->created_at_ms);
}

/* Check an environment's destination; replies and returns -EINVAL when bad. */
static int
check_destination(struct client *c, const char *env, Dbtd__Destination *dst)
{
	if (dst == NULL || !pb_str_set(dst->type)) {
		api_fail(c, ERR_INVALID, "environment \"%s\" needs a destination: --destination duckdb "
		             "or postgres", env);
		return -EINVAL;
	}
	if (dst->threads == 0)
		dst->threads = 4;
	if (dst->threads > 256) {
		api_fail(c, ERR_INVALID, "--threads %u is too many (at most 256)", dst->threads);
		return -EINVAL;
	}
	if (strcmp(dst->type, "duckdb") == 0) {
		if (!pb_str_set(dst->path) || dst->path[0] != '/') {
			api_fail(c, ERR_INVALID, "a duckdb destination needs --path with an absolute "
			             "path to the database file");
			return -EINVAL;
		}
		if (!pb_str_set(dst->schema))
			pb_set_str(&dst->schema, "main");
		return 0;
	}
	if (strcmp(dst->type, "postgres") == 0) {
		const char *missing = !pb_str_set(dst->host) ? "--host" :
		                      !pb_str_set(dst->user) ? "--user" :
		                      !pb_str_set(dst->dbname) ? "--dbname" :
		                      !pb_str_set(dst->schema) ? "--schema" :
		                      !pb_str_set(dst->password) ? "--password-env" : NULL;
		if (missing) {
			api_fail(c, ERR_INVALID, "a postgres destination needs %s", missing);
			return -EINVAL;
		}
		if (dst->port == 0)
			dst->port = 5432;
		return 0;
	}
	api_fail(c, ERR_INVALID, "unknown destination \"%s\": use duckdb or postgres", dst->type);
	return -EINVAL;
}

/* env add */
void
objects_add_environment(struct api *a, struct client *c, Dbtd__Environment *e)
{
	Dbtd__Project *p = NULL;
	int rc;

	if (check_name(c, "environment", e->name) < 0)
		return;
	if (!pb_str_set(e->branch)) {
		api_fail(c, ERR_INVALID, "environment \"%s\" needs a Git branch: --branch B", e->name);
		return;
	}
	rc = store_obj_find(a->store, STORE_PROJECT, e->project, (ProtobufCMessage **)&p);
	if (rc == -ENOENT) {
		api_fail(c, ERR_NOT_FOUND, "no project named \"%s\"; see dbtctl project list",
		             e->project);
		return;
	}
	if (rc < 0) {
		api_store_fail(a, c, rc, "cannot read project \"%s\"", e->project);
		return;
	}
	e->project_id = p->id;
	dbtd__project__free_unpacked(p, NULL);
	if (check_destination(c, e->name, e->destination) < 0)
		return;
	for (size_t i = 0; i < e->n_env; i++)
		if (!pb_str_set(e->env[i]->key) || strchr(e->env[i]->key, '=')) {
			api_fail(c, ERR_INVALID, "--env needs KEY=VALUE with a non-empty KEY");
			return;
		}
	e->id = 0;
	add_object(a, c, STORE_ENVIRONMENT, &e->base, e->name, &e->id, &e->created_at_ms);
}

/* True when command's first word is "dbt". */
static int
is_dbt_command(const char *cmd)
{
	while (*cmd == ' ' || *cmd == '\t')
		cmd++;
	return strncmp(cmd, "dbt", 3) == 0 && (cmd[3] == ' ' || cmd[3] == '\t');
}

/* Check a job's --schedule and --timezone; replies and returns -EINVAL when bad. */
static int
check_schedule(struct client *c, const Dbtd__Job *j)
{
	struct cron cr;
	char err[256];
	int64_t next;

	if (!pb_str_set(j->schedule)) {
		if (pb_str_set(j->timezone)) {
			api_fail(c, ERR_INVALID, "--timezone needs --schedule");
			return -EINVAL;
		}
		return 0;
	}
	if (cron_parse(j->schedule, &cr, err, sizeof(err)) < 0) {
		api_fail(c, ERR_INVALID, "--schedule \"%s\" is not a cron expression: %s",
		             j->schedule, err);
		return -EINVAL;
	}
	if (cron_tz_check(j->timezone, err, sizeof(err)) < 0) {
		api_fail(c, ERR_INVALID, "--timezone: %s; use an IANA name such as Europe/Berlin",
		             err);
		return -EINVAL;
	}
	if (cron_next(&cr, j->timezone, now_ms() / 1000, &next) < 0) {
		api_fail(c, ERR_INVALID, "--schedule \"%s\" never fires (no such date)", j->schedule);
		return -EINVAL;
	}
	return 0;
}

/* job add */
void
objects_add_job(struct api *a, struct client *c, Dbtd__Job *j)
{
	Dbtd__Environment *e = NULL;
	size_t ndbt = 0;
	int rc;

	if (check_name(c, "job", j->name) < 0)
		return;
	rc = store_obj_find(a->store, STORE_ENVIRONMENT, j->environment, (ProtobufCMessage **)&e);
	if (rc == -ENOENT) {
		api_fail(c, ERR_NOT_FOUND, "no environment named \"%s\"; see dbtctl env list, "
		             "or add it with dbtctl env add", j->environment);
		return;
	}
	if (rc < 0) {
		api_store_fail(a, c, rc, "cannot read environment \"%s\"", j->environment);
		return;
	}
	j->env_id = e->id;
	dbtd__environment__free_unpacked(e, NULL);
	if (j->type == DBTD__JOB_TYPE__JOB_TYPE_UNSPECIFIED)
		j->type = DBTD__JOB_TYPE__JOB_DEPLOY;
	for (size_t i = 0; i < j->n_steps; i++) {
		Dbtd__JobStep *s = j->steps[i];
		if (strcmp(s->type, "dbt") == 0) {
			if (!is_dbt_command(s->command)) {
				api_fail(c, ERR_INVALID, "--command \"%s\" is not a dbt command "
				             "(it must start with \"dbt \")", s->command);
				return;
			}
			ndbt++;
		} else if (plugins_find(a->plugins, s->type) == NULL) {
			api_fail(c, ERR_INVALID, "no step plugin of type \"%s\" is loaded; "
			             "see dbtctl plugin list", s->type);
			return;
		}
	}
	if (ndbt == 0) {
		api_fail(c, ERR_INVALID, "job \"%s\" needs at least one --command, e.g. "
		             "--command \"dbt build\"", j->name);
		return;
	}
	if (check_schedule(c, j) < 0)
		return;
	if (j->keep_runs > KEEP_MAX || j->keep_days > KEEP_MAX) {
		api_fail(c, ERR_INVALID, "--keep-runs and --keep-days go from 0 (dbtd's value) "
		         "to %u", KEEP_MAX);
		return;
	}
	if (pb_str_set(j->on_pipeline) && !name_ok(j->on_pipeline)) {
		api_fail(c, ERR_INVALID, "--on-pipeline \"%s\" is not a valid pipeline name: use up "
		             "to %d letters, digits, '_', '-' or '.'", j->on_pipeline, REQ_NAME_MAX);
		return;
	}
	j->last_fire_ms = 0;
	free(j->next_fires_ms);
	j->next_fires_ms = NULL;
	j->n_next_fires_ms = 0;
	j->id = 0;
	add_object(a, c, STORE_JOB, &j->base, j->name, &j->id, &j->created_at_ms);
}

/* Collect listed objects (scrubbed of secrets) into a list. */
struct collect {
	struct pb_list l;
	enum store_kind kind;
};

/* store_obj_list / store_run_list callback: keep msg. */
static int
collect_cb(void *arg, ProtobufCMessage *msg)
{
	struct collect *col = arg;

	if (col->kind == STORE_PROJECT)
		scrub_project((Dbtd__Project *)msg);
	else if (col->kind == STORE_ENVIRONMENT)
		scrub_env((Dbtd__Environment *)msg);
	return pb_list_push(&col->l, msg);
}

/* store_run_list callback: keep run. */
static int
collect_run_cb(void *arg, Dbtd__Run *run)
{
	return collect_cb(arg, &run->base);
}

/* Free what collect_cb kept. */
static void
collect_free(struct collect *col)
{
	pb_list_free(&col->l);
}

/* Map a wire kind to a store kind; -EINVAL for unknown. */
static int
store_kind_of(Dbtd__ObjectKind k, enum store_kind *out)
{
	switch (k) {
	case DBTD__OBJECT_KIND__OBJECT_PROJECT: *out = STORE_PROJECT; return 0;
	case DBTD__OBJECT_KIND__OBJECT_ENVIRONMENT: *out = STORE_ENVIRONMENT; return 0;
	case DBTD__OBJECT_KIND__OBJECT_JOB: *out = STORE_JOB; return 0;
	default: return -EINVAL;
	}
}

/* project|env|job list */
void
objects_list(struct api *a, struct client *c, Dbtd__ObjectKind k)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__ProjectList pl = DBTD__PROJECT_LIST__INIT;
	Dbtd__EnvironmentList el = DBTD__ENVIRONMENT_LIST__INIT;
	Dbtd__JobList jl = DBTD__JOB_LIST__INIT;
	struct collect col = { 0 };
	int rc;

	if (store_kind_of(k, &col.kind) < 0) {
		api_fail(c, ERR_INVALID, "unknown object kind %d", (int)k);
		return;
	}
	rc = store_obj_list(a->store, col.kind, collect_cb, &col);
	if (rc < 0) {
		api_store_fail(a, c, rc, "cannot list %ss", kind_word[col.kind]);
		collect_free(&col);
		return;
	}
	switch (col.kind) {
	case STORE_PROJECT:
		pl.n_items = col.l.n;
		pl.items = (Dbtd__Project **)col.l.items;
		resp.body_case = DBTD__RESPONSE__BODY_PROJECTS;
		resp.projects = &pl;
		break;
	case STORE_ENVIRONMENT:
		el.n_items = col.l.n;
		el.items = (Dbtd__Environment **)col.l.items;
		resp.body_case = DBTD__RESPONSE__BODY_ENVIRONMENTS;
		resp.environments = &el;
		break;
	case STORE_JOB:
		jl.n_items = col.l.n;
		jl.items = (Dbtd__Job **)col.l.items;
		resp.body_case = DBTD__RESPONSE__BODY_JOBS;
		resp.jobs = &jl;
		break;
	}
	client_send(c, &resp);
	collect_free(&col);
}

/* Find a named object, replying "no such" on failure. */
static int
find_named(struct api *a, struct client *c, enum store_kind kind, const char *name,
           ProtobufCMessage **out)
{
	int rc = store_obj_find(a->store, kind, name, out);

	if (rc == -ENOENT)
		api_fail(c, ERR_NOT_FOUND, "no %s named \"%s\"; see dbtctl %s list",
		             kind_word[kind], name, kind_cmd[kind]);
	else if (rc < 0)
		api_store_fail(a, c, rc, "cannot read %s \"%s\"", kind_word[kind], name);
	return rc;
}

/* project|env|job view */
void
objects_view(struct api *a, struct client *c, const Dbtd__ObjectRef *ref)
{
	ProtobufCMessage *msg;
	enum store_kind kind;

	if (store_kind_of(ref->kind, &kind) < 0) {
		api_fail(c, ERR_INVALID, "unknown object kind %d", (int)ref->kind);
		return;
	}
	if (find_named(a, c, kind, ref->name, &msg) < 0)
		return;
	reply_object(c, kind, msg);
	protobuf_c_message_free_unpacked(msg, NULL);
}

/* What still uses the object: the first dependent's name, for a message. */
struct users {
	enum store_kind kind;
	uint64_t id;
	char *first;
};

/* store_obj_list callback: note an environment of a project or a job of an env. */
static int
users_cb(void *arg, ProtobufCMessage *msg)
{
	struct users *u = arg;
	int hit = 0;
	const char *name = NULL;

	if (u->kind == STORE_PROJECT) {
		Dbtd__Environment *e = (Dbtd__Environment *)msg;
		hit = e->project_id == u->id;
		name = e->name;
	} else {
		Dbtd__Job *j = (Dbtd__Job *)msg;
		hit = j->env_id == u->id;
		name = j->name;
	}
	if (hit && u->first == NULL)
		u->first = strdup(name);
	protobuf_c_message_free_unpacked(msg, NULL);
	return 0;
}

/* project|env|job rm */
void
objects_remove(struct api *a, struct client *c, const Dbtd__ObjectRef *ref)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	ProtobufCMessage *msg;
	enum store_kind kind;
	uint64_t id;
	int rc;

	if (store_kind_of(ref->kind, &kind) < 0) {
		api_fail(c, ERR_INVALID, "unknown object kind %d", (int)ref->kind);
		return;
	}
	if (find_named(a, c, kind, ref->name, &msg) < 0)
		return;
	id = kind == STORE_PROJECT ? ((Dbtd__Project *)msg)->id :
	     kind == STORE_ENVIRONMENT ? ((Dbtd__Environment *)msg)->id : ((Dbtd__Job *)msg)->id;
	protobuf_c_message_free_unpacked(msg, NULL);
	if (kind != STORE_JOB) {
		struct users u = { kind, id, NULL };
		store_obj_list(a->store, kind == STORE_PROJECT ? STORE_ENVIRONMENT : STORE_JOB,
		               users_cb, &u);
		if (u.first) {
			api_fail(c, ERR_CONFLICT, "%s \"%s\" is used by %s \"%s\"; remove that first",
			             kind_word[kind], ref->name,
			             kind == STORE_PROJECT ? "environment" : "job", u.first);
			free(u.first);
			return;
		}
	} else {
		uint64_t busy = store_job_active_run(a->store, id);
		if (busy) {
			api_fail(c, ERR_CONFLICT, "job \"%s\" has run %llu in progress; wait for it "
			             "or cancel it first", ref->name, (unsigned long long)busy);
			return;
		}
	}
	rc = store_obj_remove(a->store, kind, id, ref->name);
	if (rc == 0)
		rc = store_commit(a->store);
	if (rc < 0) {
		api_store_fail(a, c, rc, "cannot remove %s \"%s\"", kind_word[kind], ref->name);
		return;
	}
	if (kind == STORE_JOB)
		scheduler_remove(a->scheduler, id);
	else if (kind == STORE_PROJECT)
		pollers_remove(a->pollers, id);
	log_info("%s \"%s\" removed by %s", kind_word[kind], ref->name, client_user(c));
	resp.body_case = DBTD__RESPONSE__BODY_REMOVED;
	resp.removed = 1;
	client_send(c, &resp);
}

/* run list */
void
objects_list_runs(struct api *a, struct client *c, const Dbtd__ListRuns *lr)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__RunList rl = DBTD__RUN_LIST__INIT;
	struct store_run_filter f = { lr->job, lr->status, lr->trigger, lr->branch };
	struct collect col = { 0 };
	unsigned limit = lr->limit ? lr->limit : 20;
	int rc;

	col.kind = STORE_JOB; /* no scrubbing */
	if (limit > 10000)
		limit = 10000;
	rc = store_run_list(a->store, &f, lr->before, limit,
	                    collect_run_cb, &col);
	if (rc < 0) {
		api_store_fail(a, c, rc, "cannot list runs");
		collect_free(&col);
		return;
	}
	for (size_t i = 0; i < col.l.n; i++) {
		/* the list shows no steps: keep the reply small */
		Dbtd__Run *r = (Dbtd__Run *)col.l.items[i];
		for (size_t k = 0; k < r->n_steps; k++)
			dbtd__step__free_unpacked(r->steps[k], NULL);
		free(r->steps);
		r->steps = NULL;
		r->n_steps = 0;
	}
	rl.n_items = col.l.n;
	rl.items = (Dbtd__Run **)col.l.items;
	resp.body_case = DBTD__RESPONSE__BODY_RUNS;
	resp.runs = &rl;
	client_send(c, &resp);
	collect_free(&col);
}

/* job edit: change the settings the request marks (today: retention). */
void
objects_edit_job(struct api *a, struct client *c, const Dbtd__EditJob *ej)
{
	ProtobufCMessage *msg;
	Dbtd__Job *j;
	int rc;

	if (!ej->set_keep_runs && !ej->set_keep_days) {
		api_fail(c, ERR_INVALID, "nothing to change for job \"%s\": give --keep-runs or "
		         "--keep-days", ej->name);
		return;
	}
	if (ej->keep_runs > KEEP_MAX || ej->keep_days > KEEP_MAX) {
		api_fail(c, ERR_INVALID, "--keep-runs and --keep-days go from 0 (dbtd's value) "
		         "to %u", KEEP_MAX);
		return;
	}
	if (find_named(a, c, STORE_JOB, ej->name, &msg) < 0)
		return;
	j = (Dbtd__Job *)msg;
	if (ej->set_keep_runs)
		j->keep_runs = ej->keep_runs;
	if (ej->set_keep_days)
		j->keep_days = ej->keep_days;
	rc = store_obj_put(a->store, STORE_JOB, j->id, msg);
	if (rc == 0) /* "changed" only once it is stored */
		rc = store_commit(a->store);
	if (rc < 0) {
		api_fail(c, store_err_kind(rc), "cannot store job \"%s\": %s", j->name,
		         store_strerror(rc));
	} else {
		log_info("job \"%s\" edited by %s: keep runs %u, keep days %u (0: dbtd's)", j->name,
		         client_user(c), (unsigned)j->keep_runs, (unsigned)j->keep_days);
		reply_object(c, STORE_JOB, msg);
	}
	protobuf_c_message_free_unpacked(msg, NULL);
}
