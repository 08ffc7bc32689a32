/*
 * test_api.c - the request table (daemon/api/api.c) behind a real socket,
 * with a real store in a temporary directory and the real engine (no run
 * starts), wired as daemon/main.c wires them: Hello first, every request
 * kind dispatched, errors mapped to their wire codes, and projects added,
 * listed, viewed and removed through the table with the store read back.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api.h"
#include "names.h"
#include "peer.h"
#include "plugin.h"
#include "poll.h"
#include "runs.h"
#include "scheduler.h"
#include "server.h"
#include "store.h"
#include "util.h"

/* dbtd's layers, as main.c builds them, over a state directory of the test's. */
struct fixture {
	char dir[64];
	char path[96];
	char work[96];
	char blobs[96];
	struct ev_loop *loop;
	struct store *store;
	struct plugin_set plugins;
	struct runs *runs;
	struct scheduler *scheduler;
	struct pollers *pollers;
	struct api *api;
	struct server *srv;
	ev_prepare commit;
};

/* Before the loop waits: commit, then send (main.c's commit_cb, less the log timer). */
static void
commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct fixture *f = w->data;

	(void)loop; (void)revents;
	if (store_commit_due(f->store, now_ms()) == 0)
		assert_int_equal(store_commit(f->store), 0);
	server_flush(f->srv);
}

/* Build the stack bottom-up on f->dir's state; 0 or -1. */
static int
stack_up(struct fixture *f)
{
	struct runs_config rc_cfg = {
		.work_dir = f->work, .blob_dir = f->blobs, .slots = 1,
	};
	struct api_config ac = { .blob_dir = f->blobs };
	struct server_handler h = { .request = api_request };

	f->loop = ev_loop_new(EVFLAG_AUTO);
	if (f->loop == NULL || store_open(&f->store, f->dir, NULL) < 0)
		return -1;
	rc_cfg.loop = f->loop;
	rc_cfg.store = f->store;
	rc_cfg.plugins = &f->plugins;
	if (runs_new(&f->runs, &rc_cfg) < 0 ||
	    scheduler_new(&f->scheduler, f->loop, f->runs) < 0 ||
	    pollers_new(&f->pollers, f->loop, f->runs) < 0)
		return -1;
	ac.loop = f->loop;
	ac.store = f->store;
	ac.runs = f->runs;
	ac.scheduler = f->scheduler;
	ac.pollers = f->pollers;
	ac.plugins = &f->plugins;
	if (api_new(&f->api, &ac) < 0)
		return -1;
	h.arg = f->api;
	if (server_listen(&f->srv, f->loop, &h, f->path, 0600) < 0)
		return -1;
	store_set_group_commit(f->store, 1);
	ev_prepare_init(&f->commit, commit_cb);
	f->commit.data = f;
	ev_prepare_start(f->loop, &f->commit);
	return 0;
}

/* Take the stack down top-down, as main.c does at stop. */
static void
stack_down(struct fixture *f)
{
	if (f->loop)
		ev_prepare_stop(f->loop, &f->commit);
	pollers_free(f->pollers);
	scheduler_free(f->scheduler);
	runs_shutdown(f->runs);
	if (f->store)
		store_commit(f->store);
	server_free(f->srv);
	api_free(f->api);
	runs_free(f->runs);
	store_close(f->store);
	if (f->loop)
		ev_loop_destroy(f->loop);
	f->pollers = NULL;
	f->scheduler = NULL;
	f->runs = NULL;
	f->srv = NULL;
	f->api = NULL;
	f->store = NULL;
	f->loop = NULL;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/dbtd-test-api-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/dbtd.sock", f->dir);
	snprintf(f->work, sizeof(f->work), "%s/work", f->dir);
	snprintf(f->blobs, sizeof(f->blobs), "%s/blobs", f->dir);
	if (mkdir_p(f->work, 0700) < 0 || mkdir_p(f->blobs, 0700) < 0 || stack_up(f) < 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	stack_down(f);
	plugins_free(&f->plugins);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* A Hello of protocol version v. */
static Dbtd__Request
hello_req(Dbtd__Hello *h, uint32_t v)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;

	dbtd__hello__init(h);
	h->protocol_version = v;
	h->client = (char *)"test_api";
	req.body_case = DBTD__REQUEST__BODY_HELLO;
	req.hello = h;
	return req;
}

/* Connect p and exchange Hello. */
static void
connect_hello(struct fixture *f, struct peer *p)
{
	Dbtd__Hello h;
	Dbtd__Request req = hello_req(&h, DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
	Dbtd__Response *resp;

	peer_connect(p, f->loop, f->path);
	resp = peer_call(p, &req);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_HELLO);
	assert_int_equal(resp->hello->protocol_version,
	                 DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
	assert_string_equal(resp->hello->server, PACKAGE_NAME " " PACKAGE_VERSION);
	dbtd__response__free_unpacked(resp, NULL);
}

/* Fail unless resp is an error of code saying words, answering rid; frees resp. */
static void
check_error(Dbtd__Response *resp, Dbtd__ErrorCode code, const char *words, uint64_t rid)
{
	assert_non_null(resp);
	if (resp->body_case != DBTD__RESPONSE__BODY_ERROR)
		fail_msg("expected error %d (\"%s\"), got response body %d", (int)code, words,
		         (int)resp->body_case);
	if (resp->error->code != code)
		fail_msg("expected error %d, got %d: %s", (int)code, (int)resp->error->code,
		         resp->error->message);
	if (strstr(resp->error->message, words) == NULL)
		fail_msg("error \"%s\" does not say \"%s\"", resp->error->message, words);
	assert_int_equal(resp->request_id, rid);
	dbtd__response__free_unpacked(resp, NULL);
}

/* An ObjectRef request (view or remove) of kind and name. */
static Dbtd__Request
ref_req(Dbtd__Request__BodyCase body, Dbtd__ObjectRef *ref, Dbtd__ObjectKind kind,
        const char *name, uint64_t rid)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;

	dbtd__object_ref__init(ref);
	ref->kind = kind;
	ref->name = (char *)name;
	req.body_case = body;
	if (body == DBTD__REQUEST__BODY_VIEW)
		req.view = ref;
	else
		req.remove = ref;
	req.request_id = rid;
	return req;
}

/* Send add_project name (repo, a webhook secret) as rid; the response. */
static Dbtd__Response *
add_project(struct peer *p, const char *name, uint64_t rid)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Project pr = DBTD__PROJECT__INIT;

	pr.name = (char *)name;
	pr.repo = (char *)"/srv/git/shop.git";
	pr.webhook_secret = (char *)"s3cret-hook";
	req.body_case = DBTD__REQUEST__BODY_ADD_PROJECT;
	req.add_project = &pr;
	req.request_id = rid;
	return peer_call(p, &req);
}

/* The number of projects in the store. */
static int
count_cb(void *arg, ProtobufCMessage *msg)
{
	(*(int *)arg)++;
	protobuf_c_message_free_unpacked(msg, NULL);
	return 0;
}

static int
stored_projects(struct fixture *f)
{
	int n = 0;

	assert_int_equal(store_obj_list(f->store, STORE_PROJECT, count_cb, &n), 0);
	return n;
}

/* The list of projects through the table: the reply, checked to be a project list. */
static Dbtd__Response *
list_projects(struct peer *p)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Response *resp;

	req.body_case = DBTD__REQUEST__BODY_LIST;
	req.list = DBTD__OBJECT_KIND__OBJECT_PROJECT;
	resp = peer_call(p, &req);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_PROJECTS);
	return resp;
}

/* A list_runs request with no filter, as rid: the reply lists n runs. */
static void
expect_runs(struct peer *p, uint64_t rid, size_t n)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ListRuns lr = DBTD__LIST_RUNS__INIT;
	Dbtd__Response *resp;

	req.body_case = DBTD__REQUEST__BODY_LIST_RUNS;
	req.list_runs = &lr;
	req.request_id = rid;
	resp = peer_call(p, &req);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_RUNS);
	assert_int_equal(resp->runs->n_items, n);
	assert_int_equal(resp->request_id, rid);
	dbtd__response__free_unpacked(resp, NULL);
}

/* The same on a store without runs: an empty list. */
static void
expect_no_runs(struct peer *p, uint64_t rid)
{
	expect_runs(p, rid, 0);
}

/*
 * Hello comes first: anything before it is refused with ERROR_PROTOCOL and
 * the connection closed; so is another protocol version.  A second Hello is
 * an ERROR_BAD_REQUEST and the connection goes on.
 */
static void
test_hello_first_and_once(void **state)
{
	struct fixture *f = *state;
	Dbtd__Hello h;
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ListRuns lr = DBTD__LIST_RUNS__INIT;
	struct peer p;

	peer_connect(&p, f->loop, f->path);
	req.body_case = DBTD__REQUEST__BODY_LIST_RUNS;
	req.list_runs = &lr;
	req.request_id = 5;
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_PROTOCOL, "must be Hello", 5);
	peer_expect_eof(&p);
	peer_close(&p);

	peer_connect(&p, f->loop, f->path);
	req = hello_req(&h, DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT + 1);
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_PROTOCOL, "not supported", 0);
	peer_expect_eof(&p);
	peer_close(&p);

	connect_hello(f, &p);
	req = hello_req(&h, DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
	req.request_id = 6;
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_BAD_REQUEST, "already", 6);
	expect_no_runs(&p, 7);
	peer_close(&p);
}

/*
 * What each request kind answers with an empty body on an empty store.
 * body 0: an error of code `code`; else that response body.
 */
struct row {
	Dbtd__Request__BodyCase req;
	Dbtd__Response__BodyCase body;
	Dbtd__ErrorCode code;
};

static const struct row rows[] = {
	{ DBTD__REQUEST__BODY_ADD_PROJECT, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	{ DBTD__REQUEST__BODY_ADD_ENVIRONMENT, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	{ DBTD__REQUEST__BODY_ADD_JOB, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	{ DBTD__REQUEST__BODY_LIST, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	{ DBTD__REQUEST__BODY_VIEW, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	{ DBTD__REQUEST__BODY_REMOVE, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	{ DBTD__REQUEST__BODY_RUN_JOB, 0, DBTD__ERROR_CODE__ERROR_NOT_FOUND },
	{ DBTD__REQUEST__BODY_LIST_RUNS, DBTD__RESPONSE__BODY_RUNS, 0 },
	{ DBTD__REQUEST__BODY_VIEW_RUN, 0, DBTD__ERROR_CODE__ERROR_NOT_FOUND },
	{ DBTD__REQUEST__BODY_WATCH_RUN, 0, DBTD__ERROR_CODE__ERROR_NOT_FOUND },
	{ DBTD__REQUEST__BODY_CANCEL_RUN, 0, DBTD__ERROR_CODE__ERROR_NOT_FOUND },
	{ DBTD__REQUEST__BODY_RERUN, 0, DBTD__ERROR_CODE__ERROR_NOT_FOUND },
	{ DBTD__REQUEST__BODY_READ_LOGS, 0, DBTD__ERROR_CODE__ERROR_NOT_FOUND },
	{ DBTD__REQUEST__BODY_LINEAGE, 0, DBTD__ERROR_CODE__ERROR_NOT_FOUND },
	{ DBTD__REQUEST__BODY_ARTIFACTS, 0, DBTD__ERROR_CODE__ERROR_NOT_FOUND },
	{ DBTD__REQUEST__BODY_ARTIFACT, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	{ DBTD__REQUEST__BODY_WEBHOOK, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	{ DBTD__REQUEST__BODY_PIPELINE_EVENT, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	{ DBTD__REQUEST__BODY_LIST_PLUGINS, DBTD__RESPONSE__BODY_PLUGINS, 0 },
	{ DBTD__REQUEST__BODY_SERVER_INFO, DBTD__RESPONSE__BODY_SERVER_INFO, 0 },
	{ DBTD__REQUEST__BODY_EDIT_JOB, 0, DBTD__ERROR_CODE__ERROR_BAD_REQUEST },
	/* this fixture's api has no retention */
	{ DBTD__REQUEST__BODY_PRUNE_RUNS, 0, DBTD__ERROR_CODE__ERROR_UNIMPLEMENTED },
};

/*
 * Every request kind of the proto reaches a handler: each, with an empty
 * body, gets its own answer (never "unknown request", never a crash or a
 * closed connection), carrying its request id.  A request added to the
 * proto without a row here fails this test until its row says what it
 * answers.
 */
static void
test_every_request_kind_dispatched(void **state)
{
	struct fixture *f = *state;
	const ProtobufCMessageDescriptor *d = &dbtd__request__descriptor;
	size_t kinds = 0;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		Dbtd__Request req = DBTD__REQUEST__INIT;
		const struct row *row = NULL;
		Dbtd__Response *resp;
		void *body = NULL;
		struct peer p;

		if (!(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
		    fd->id == DBTD__REQUEST__BODY_HELLO)
			continue;
		kinds++;
		for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++)
			if ((unsigned)rows[k].req == fd->id)
				row = &rows[k];
		if (row == NULL)
			fail_msg("request %s (%u) has no row in rows[]: add what it answers",
			         fd->name, fd->id);
		/* the case's default value: an empty message, or an enum's 0 */
		if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
			const ProtobufCMessageDescriptor *md = fd->descriptor;
			body = calloc(1, md->sizeof_message);
			assert_non_null(body);
			md->message_init(body);
			*(void **)((char *)&req + fd->offset) = body;
		} else {
			assert_int_equal(fd->type, PROTOBUF_C_TYPE_ENUM);
			*(int *)((char *)&req + fd->offset) = 0;
		}
		*(uint32_t *)((char *)&req + fd->quantifier_offset) = fd->id;
		req.request_id = 1000 + fd->id;

		connect_hello(f, &p);
		resp = peer_call(&p, &req);
		free(body);
		if (row->body == 0) {
			check_error(resp, row->code, "", 1000 + fd->id);
		} else {
			if (resp->body_case != row->body)
				fail_msg("request %s: expected response body %d, got %d%s%s", fd->name,
				         (int)row->body, (int)resp->body_case,
				         resp->body_case == DBTD__RESPONSE__BODY_ERROR ? ": " : "",
				         resp->body_case == DBTD__RESPONSE__BODY_ERROR ?
				         resp->error->message : "");
			assert_int_equal(resp->request_id, 1000 + fd->id);
			dbtd__response__free_unpacked(resp, NULL);
		}
		/* the connection serves on */
		expect_no_runs(&p, 1);
		peer_close(&p);
	}
	assert_int_equal(kinds, sizeof(rows) / sizeof(rows[0]));
}

/*
 * A request with no body, or one of a kind this dbtd does not know (a
 * field number from a newer proto): ERROR_UNIMPLEMENTED naming this
 * dbtd's release (docs/API.md, "Compatibility"), and the connection goes on.
 */
static void
test_unknown_request(void **state)
{
	struct fixture *f = *state;
	Dbtd__Request req = DBTD__REQUEST__INIT;
	/* field 99, varint 1 (a request case from the future), then request_id 4 */
	static const uint8_t future[] = { 0, 0, 0, 6, 0x98, 0x06, 0x01, 0xa0, 0x06, 0x04 };
	struct peer p;

	connect_hello(f, &p);
	req.request_id = 3;
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_UNIMPLEMENTED,
	            PACKAGE_NAME " " PACKAGE_VERSION " does not know request", 3);
	peer_write(&p, future, sizeof(future));
	check_error(peer_recv(&p), DBTD__ERROR_CODE__ERROR_UNIMPLEMENTED,
	            PACKAGE_NAME " " PACKAGE_VERSION " does not know request", 4);
	expect_no_runs(&p, 5);
	peer_close(&p);
}

/*
 * A project through the table: add (the reply is what the store holds,
 * secret kept there and never sent back), list, view; a taken name is
 * ERROR_EXISTS, an unknown one ERROR_NOT_FOUND, an invalid one
 * ERROR_BAD_REQUEST; a project an environment uses is ERROR_CONFLICT to
 * remove; removed, it is gone from the store.
 */
static void
test_project_add_list_view_remove(void **state)
{
	struct fixture *f = *state;
	Dbtd__ObjectRef ref;
	Dbtd__Request req;
	Dbtd__Response *resp;
	Dbtd__Project *stored = NULL;
	Dbtd__Environment env = DBTD__ENVIRONMENT__INIT;
	Dbtd__Destination dst = DBTD__DESTINATION__INIT;
	uint64_t id;
	struct peer p;

	connect_hello(f, &p);
	resp = add_project(&p, "shop", 1);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_PROJECT);
	assert_int_equal(resp->request_id, 1);
	assert_string_equal(resp->project->name, "shop");
	assert_string_equal(resp->project->repo, "/srv/git/shop.git");
	assert_true(resp->project->has_webhook_secret);
	assert_string_equal(resp->project->webhook_secret, "");
	assert_true(resp->project->created_at_ms > 0);
	id = resp->project->id;
	assert_true(id > 0);
	dbtd__response__free_unpacked(resp, NULL);
	/* told it was added: the store has it, as told */
	assert_int_equal(store_obj_find(f->store, STORE_PROJECT, "shop",
	                                (ProtobufCMessage **)&stored), 0);
	assert_int_equal(stored->id, id);
	assert_string_equal(stored->repo, "/srv/git/shop.git");
	assert_string_equal(stored->webhook_secret, "s3cret-hook");
	dbtd__project__free_unpacked(stored, NULL);

	resp = list_projects(&p);
	assert_int_equal(resp->projects->n_items, 1);
	assert_string_equal(resp->projects->items[0]->name, "shop");
	assert_int_equal(resp->projects->items[0]->id, id);
	assert_string_equal(resp->projects->items[0]->webhook_secret, "");
	dbtd__response__free_unpacked(resp, NULL);

	req = ref_req(DBTD__REQUEST__BODY_VIEW, &ref, DBTD__OBJECT_KIND__OBJECT_PROJECT, "shop", 2);
	resp = peer_call(&p, &req);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_PROJECT);
	assert_int_equal(resp->project->id, id);
	assert_int_equal(resp->request_id, 2);
	dbtd__response__free_unpacked(resp, NULL);

	/* errors, each with its wire code, and nothing stored by them */
	check_error(add_project(&p, "shop", 3), DBTD__ERROR_CODE__ERROR_EXISTS,
	            "a project named \"shop\" exists already", 3);
	check_error(add_project(&p, "no space", 4), DBTD__ERROR_CODE__ERROR_BAD_REQUEST,
	            "project name \"no space\" is not valid", 4);
	assert_int_equal(stored_projects(f), 1);
	req = ref_req(DBTD__REQUEST__BODY_VIEW, &ref, DBTD__OBJECT_KIND__OBJECT_PROJECT, "nope", 5);
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_NOT_FOUND,
	            "no project named \"nope\"", 5);
	req = ref_req(DBTD__REQUEST__BODY_REMOVE, &ref, DBTD__OBJECT_KIND__OBJECT_PROJECT, "nope", 6);
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_NOT_FOUND,
	            "no project named \"nope\"", 6);

	/* an environment of an unknown project: not found; of shop: added */
	env.name = (char *)"prod";
	env.project = (char *)"nope";
	env.branch = (char *)"main";
	dst.type = (char *)"duckdb";
	dst.path = (char *)"/tmp/dbtd-test-api.duckdb";
	env.destination = &dst;
	req = (Dbtd__Request)DBTD__REQUEST__INIT;
	req.body_case = DBTD__REQUEST__BODY_ADD_ENVIRONMENT;
	req.add_environment = &env;
	req.request_id = 7;
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_NOT_FOUND,
	            "no project named \"nope\"", 7);
	env.project = (char *)"shop";
	req.request_id = 8;
	resp = peer_call(&p, &req);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_ENVIRONMENT);
	assert_int_equal(resp->environment->project_id, id);
	dbtd__response__free_unpacked(resp, NULL);

	/* in use: a conflict, and the project stays */
	req = ref_req(DBTD__REQUEST__BODY_REMOVE, &ref, DBTD__OBJECT_KIND__OBJECT_PROJECT, "shop", 9);
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_CONFLICT,
	            "used by environment \"prod\"", 9);
	assert_int_equal(stored_projects(f), 1);

	req = ref_req(DBTD__REQUEST__BODY_REMOVE, &ref, DBTD__OBJECT_KIND__OBJECT_ENVIRONMENT,
	              "prod", 10);
	resp = peer_call(&p, &req);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_REMOVED);
	assert_true(resp->removed);
	dbtd__response__free_unpacked(resp, NULL);
	req = ref_req(DBTD__REQUEST__BODY_REMOVE, &ref, DBTD__OBJECT_KIND__OBJECT_PROJECT, "shop", 11);
	resp = peer_call(&p, &req);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_REMOVED);
	assert_true(resp->removed);
	assert_int_equal(resp->request_id, 11);
	dbtd__response__free_unpacked(resp, NULL);
	/* told it was removed: the store has it no more */
	stored = NULL;
	assert_int_equal(store_obj_find(f->store, STORE_PROJECT, "shop",
	                                (ProtobufCMessage **)&stored), -ENOENT);
	assert_int_equal(stored_projects(f), 0);
	resp = list_projects(&p);
	assert_int_equal(resp->projects->n_items, 0);
	dbtd__response__free_unpacked(resp, NULL);
	req = ref_req(DBTD__REQUEST__BODY_VIEW, &ref, DBTD__OBJECT_KIND__OBJECT_PROJECT, "shop", 12);
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_NOT_FOUND,
	            "no project named \"shop\"", 12);
	peer_close(&p);
}

/*
 * Added means committed: the reply comes after the group commit, so a
 * dbtd stopped right after it (the store closed and opened again) still
 * has the project.
 */
static void
test_added_project_is_durable(void **state)
{
	struct fixture *f = *state;
	Dbtd__Project *stored = NULL;
	Dbtd__Response *resp;
	uint64_t id;
	struct peer p;

	connect_hello(f, &p);
	resp = add_project(&p, "durable", 1);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_PROJECT);
	id = resp->project->id;
	dbtd__response__free_unpacked(resp, NULL);
	/* nothing is left to commit once the reply is out */
	assert_int_equal(store_commit_due(f->store, now_ms()), -1);
	peer_close(&p);

	stack_down(f);
	assert_int_equal(store_open(&f->store, f->dir, NULL), 0);
	assert_int_equal(store_obj_find(f->store, STORE_PROJECT, "durable",
	                                (ProtobufCMessage **)&stored), 0);
	assert_int_equal(stored->id, id);
	dbtd__project__free_unpacked(stored, NULL);
	store_close(f->store);
	f->store = NULL;
}

/* The run history of an empty store: an empty list, whatever the filter; no run 1. */
static void
test_run_list_empty_store(void **state)
{
	struct fixture *f = *state;
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ListRuns lr = DBTD__LIST_RUNS__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	Dbtd__Response *resp;
	struct peer p;

	connect_hello(f, &p);
	expect_no_runs(&p, 1);
	lr.job = (char *)"nightly";
	lr.status = DBTD__RUN_STATUS__RUN_FAILED;
	lr.limit = 100000;
	lr.before = 10;
	req.body_case = DBTD__REQUEST__BODY_LIST_RUNS;
	req.list_runs = &lr;
	req.request_id = 2;
	resp = peer_call(&p, &req);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_RUNS);
	assert_int_equal(resp->runs->n_items, 0);
	assert_int_equal(resp->request_id, 2);
	dbtd__response__free_unpacked(resp, NULL);

	ref.id = 1;
	req = (Dbtd__Request)DBTD__REQUEST__INIT;
	req.body_case = DBTD__REQUEST__BODY_VIEW_RUN;
	req.view_run = &ref;
	req.request_id = 3;
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_NOT_FOUND, "no run 1", 3);
	peer_close(&p);
}

/* A Queued run of job "nightly" in the store, queued in the engine (which starts none). */
static uint64_t
queued_run(struct fixture *f)
{
	Dbtd__Run run = DBTD__RUN__INIT;

	run.job = (char *)"nightly";
	run.status = DBTD__RUN_STATUS__RUN_QUEUED;
	run.trigger = DBTD__TRIGGER__TRIGGER_API;
	assert_int_equal(store_run_create(f->store, &run), 0);
	assert_int_equal(store_commit(f->store), 0);
	/* stopping: the engine queues the run again and never starts it */
	runs_stopping(f->runs);
	assert_int_equal(runs_recover(f->runs), 0);
	return run.id;
}

/* A request of body (a RunRef: watch_run, cancel_run) for run id, as rid. */
static Dbtd__Request
run_ref_req(Dbtd__Request__BodyCase body, Dbtd__RunRef *ref, uint64_t id, uint64_t rid)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;

	dbtd__run_ref__init(ref);
	ref->id = id;
	req.body_case = body;
	if (body == DBTD__REQUEST__BODY_WATCH_RUN)
		req.watch_run = ref;
	else
		req.cancel_run = ref;
	req.request_id = rid;
	return req;
}

/* The next response: run id in status st, end as given, answering rid. */
static void
expect_run(Dbtd__Response *resp, uint64_t id, Dbtd__RunStatus st, int end, uint64_t rid)
{
	assert_non_null(resp);
	if (resp->body_case != DBTD__RESPONSE__BODY_RUN)
		fail_msg("expected a run, got response body %d%s%s", (int)resp->body_case,
		         resp->body_case == DBTD__RESPONSE__BODY_ERROR ? ": " : "",
		         resp->body_case == DBTD__RESPONSE__BODY_ERROR ? resp->error->message : "");
	assert_int_equal(resp->run->id, id);
	assert_int_equal(resp->run->status, st);
	assert_int_equal(resp->end, end);
	assert_int_equal(resp->request_id, rid);
	dbtd__response__free_unpacked(resp, NULL);
}

/*
 * One stream per connection, as a client sees it: a watch of a queued run
 * is a stream whose frames carry its request's id; a second stream (another
 * watch, logs, an artifact) on that connection is ERROR_CONFLICT and the
 * first goes on, to the run's final state (canceled from another
 * connection), after which a new stream opens.
 */
static void
test_watch_is_the_one_stream(void **state)
{
	struct fixture *f = *state;
	uint64_t id = queued_run(f);
	Dbtd__RunRef ref;
	Dbtd__ReadLogs rl = DBTD__READ_LOGS__INIT;
	Dbtd__ArtifactRef ar = DBTD__ARTIFACT_REF__INIT;
	Dbtd__Request req;
	struct peer p, q;

	connect_hello(f, &p);
	req = run_ref_req(DBTD__REQUEST__BODY_WATCH_RUN, &ref, id, 20);
	expect_run(peer_call(&p, &req), id, DBTD__RUN_STATUS__RUN_QUEUED, 0, 20);

	req.request_id = 21;
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_CONFLICT,
	            "already open on this connection", 21);
	rl.run = id;
	req = (Dbtd__Request)DBTD__REQUEST__INIT;
	req.body_case = DBTD__REQUEST__BODY_READ_LOGS;
	req.read_logs = &rl;
	req.request_id = 22;
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_CONFLICT,
	            "already open on this connection", 22);
	ar.run = id;
	ar.path = (char *)"target/manifest.json";
	req = (Dbtd__Request)DBTD__REQUEST__INIT;
	req.body_case = DBTD__REQUEST__BODY_ARTIFACT;
	req.artifact = &ar;
	req.request_id = 23;
	check_error(peer_call(&p, &req), DBTD__ERROR_CODE__ERROR_CONFLICT,
	            "already open on this connection", 23);

	/* canceled from another connection: the watch's last frame, with its own id */
	connect_hello(f, &q);
	req = run_ref_req(DBTD__REQUEST__BODY_CANCEL_RUN, &ref, id, 30);
	expect_run(peer_call(&q, &req), id, DBTD__RUN_STATUS__RUN_CANCELED, 0, 30);
	expect_run(peer_recv(&p), id, DBTD__RUN_STATUS__RUN_CANCELED, 1, 20);

	/* the stream is over: a new one opens (an ended run: one frame, with end) */
	req = run_ref_req(DBTD__REQUEST__BODY_WATCH_RUN, &ref, id, 24);
	expect_run(peer_call(&p, &req), id, DBTD__RUN_STATUS__RUN_CANCELED, 1, 24);
	expect_runs(&p, 25, 1);
	peer_close(&p);
	peer_close(&q);
}

/*
 * A watch ends with its connection: the run changing afterwards reaches no
 * freed watch (ASan) and the other connections serve on.
 */
static void
test_watch_ends_with_connection(void **state)
{
	struct fixture *f = *state;
	uint64_t id = queued_run(f);
	Dbtd__RunRef ref;
	Dbtd__Request req;
	struct peer p, q;

	connect_hello(f, &p);
	connect_hello(f, &q);
	req = run_ref_req(DBTD__REQUEST__BODY_WATCH_RUN, &ref, id, 1);
	expect_run(peer_call(&p, &req), id, DBTD__RUN_STATUS__RUN_QUEUED, 0, 1);
	peer_close(&p);
	loop_spin(f->loop, 5);
	req = run_ref_req(DBTD__REQUEST__BODY_CANCEL_RUN, &ref, id, 2);
	expect_run(peer_call(&q, &req), id, DBTD__RUN_STATUS__RUN_CANCELED, 0, 2);
	expect_runs(&q, 3, 1);
	peer_close(&q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_first_and_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_request_kind_dispatched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_project_add_list_view_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_added_project_is_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_list_empty_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_is_the_one_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_ends_with_connection, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
