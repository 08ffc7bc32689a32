/* test_store.c - LMDB store: records round trip, names, run listing, logs. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "logrec.h"
#include "store.h"
#include "store_format.h"
#include "util.h"

struct fixture {
	char dir[64];
	struct store *st;
};

/* A fresh store in a temporary directory. */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/dbtd-test-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL || store_open(&f->st, f->dir, NULL) < 0)
		return -1;
	*state = f;
	return 0;
}

/* Close and remove the store. */
static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* Add a project named name with repo; returns its id. */
static uint64_t
add_project(struct store *st, const char *name, const char *repo)
{
	Dbtd__Project p = DBTD__PROJECT__INIT;

	p.name = (char *)name;
	p.repo = (char *)repo;
	assert_int_equal(store_obj_add(st, STORE_PROJECT, &p.base, name, &p.id), 0);
	return p.id;
}

/* Named objects: ids, lookup by name and id, duplicates, removal, reopen. */
static void
test_objects_round_trip(void **state)
{
	struct fixture *f = *state;
	Dbtd__Project *p;
	Dbtd__Project dup = DBTD__PROJECT__INIT;
	uint64_t a, b;

	a = add_project(f->st, "shop", "/srv/git/shop");
	b = add_project(f->st, "finance", "https://example.com/finance.git");
	assert_int_equal(a, 1);
	assert_int_equal(b, 2);
	dup.name = (char *)"shop";
	assert_int_equal(store_obj_add(f->st, STORE_PROJECT, &dup.base, "shop", &dup.id), -EEXIST);

	assert_int_equal(store_obj_find(f->st, STORE_PROJECT, "finance", (ProtobufCMessage **)&p), 0);
	assert_int_equal(p->id, b);
	assert_string_equal(p->repo, "https://example.com/finance.git");
	dbtd__project__free_unpacked(p, NULL);
	assert_int_equal(store_obj_find(f->st, STORE_PROJECT, "nope", (ProtobufCMessage **)&p), -ENOENT);

	/* survives a reopen */
	store_close(f->st);
	assert_int_equal(store_open(&f->st, f->dir, NULL), 0);
	assert_int_equal(store_obj_get(f->st, STORE_PROJECT, a, (ProtobufCMessage **)&p), 0);
	assert_string_equal(p->name, "shop");
	dbtd__project__free_unpacked(p, NULL);

	assert_int_equal(store_obj_remove(f->st, STORE_PROJECT, a, "shop"), 0);
	assert_int_equal(store_obj_find(f->st, STORE_PROJECT, "shop", (ProtobufCMessage **)&p), -ENOENT);
	assert_int_equal(store_obj_get(f->st, STORE_PROJECT, a, (ProtobufCMessage **)&p), -ENOENT);
	/* the name is free again; the new object gets a new id */
	assert_int_equal(add_project(f->st, "shop", "/srv/git/shop2"), 3);
}

/* Collected ids of a listing. */
struct ids {
	uint64_t v[64];
	size_t n;
};

/* store_run_list callback: record the id. */
static int
collect_run(void *arg, Dbtd__Run *run)
{
	struct ids *ids = arg;

	ids->v[ids->n++] = run->id;
	dbtd__run__free_unpacked(run, NULL);
	return 0;
}

/* Store a run of job with a status; returns its id. */
static uint64_t
add_run(struct store *st, uint64_t job_id, const char *job, Dbtd__RunStatus status,
        const char *branch)
{
	Dbtd__Run r = DBTD__RUN__INIT;
	Dbtd__Step s = DBTD__STEP__INIT, *steps[1] = { &s };

	r.job_id = job_id;
	r.job = (char *)job;
	r.status = status;
	r.trigger = DBTD__TRIGGER__TRIGGER_MANUAL;
	r.branch = (char *)branch;
	s.index = 1;
	s.name = (char *)"Clone Git repository";
	r.n_steps = 1;
	r.steps = steps;
	assert_int_equal(store_run_create(st, &r), 0);
	return r.id;
}

/* Runs list newest first, page with before, filter, and track active runs. */
static void
test_runs_list_and_filters(void **state)
{
	struct fixture *f = *state;
	struct store_run_filter flt = { 0 };
	struct ids ids = { .n = 0 };
	Dbtd__Run *r;

	for (int i = 1; i <= 30; i++)
		add_run(f->st, i % 2 ? 1 : 2, i % 2 ? "nightly" : "hourly",
		        i == 30 ? DBTD__RUN_STATUS__RUN_RUNNING : DBTD__RUN_STATUS__RUN_COMPLETED,
		        i % 3 ? "main" : "dev");
	assert_int_equal(store_run_list(f->st, NULL, 0, 10, collect_run, &ids), 0);
	assert_int_equal(ids.n, 10);
	assert_int_equal(ids.v[0], 30);
	assert_int_equal(ids.v[9], 21);

	ids.n = 0;
	assert_int_equal(store_run_list(f->st, NULL, 21, 5, collect_run, &ids), 0);
	assert_int_equal(ids.n, 5);
	assert_int_equal(ids.v[0], 20);
	assert_int_equal(ids.v[4], 16);

	ids.n = 0;
	flt.job = "hourly";
	flt.branch = "dev";
	assert_int_equal(store_run_list(f->st, &flt, 0, 50, collect_run, &ids), 0);
	assert_int_equal(ids.n, 5); /* even ids that are multiples of 3: 6..30 */
	assert_int_equal(ids.v[0], 30);
	assert_int_equal(ids.v[4], 6);

	ids.n = 0;
	memset(&flt, 0, sizeof(flt));
	flt.status = DBTD__RUN_STATUS__RUN_RUNNING;
	assert_int_equal(store_run_list(f->st, &flt, 0, 50, collect_run, &ids), 0);
	assert_int_equal(ids.n, 1);
	assert_int_equal(ids.v[0], 30);

	/* the active index follows status changes */
	assert_int_equal(store_job_active_run(f->st, 2), 30);
	assert_int_equal(store_job_active_run(f->st, 1), 0);
	ids.n = 0;
	assert_int_equal(store_runs_active(f->st, collect_run, &ids), 0);
	assert_int_equal(ids.n, 1);
	assert_int_equal(store_run_get(f->st, 30, &r), 0);
	assert_int_equal(r->n_steps, 1);
	assert_string_equal(r->steps[0]->name, "Clone Git repository");
	r->status = DBTD__RUN_STATUS__RUN_FAILED;
	assert_int_equal(store_run_put(f->st, r), 0);
	dbtd__run__free_unpacked(r, NULL);
	assert_int_equal(store_job_active_run(f->st, 2), 0);
	ids.n = 0;
	assert_int_equal(store_runs_active(f->st, collect_run, &ids), 0);
	assert_int_equal(ids.n, 0);
	assert_int_equal(store_run_get(f->st, 31, &r), -ENOENT);
}

/* Log chunks come back per run and step, in order. */
struct chunks {
	char text[256];
	uint32_t steps[16];
	size_t n;
};

/* store_log_read callback: concatenate the lines. */
static int
collect_chunk(void *arg, uint32_t step, uint32_t seq, const uint8_t *data, size_t len)
{
	struct chunks *c = arg;
	struct logrec rec;
	size_t off = 0;

	(void)seq;
	while (logrec_next(data, len, &off, &rec) == 1)
		strncat(c->text, (const char *)rec.text, rec.len);
	c->steps[c->n++] = step;
	return 0;
}

/* Store a chunk of one log line. */
static int
append_line(struct store *st, uint64_t run, uint32_t step, uint32_t seq, const char *text)
{
	struct logbuf b = { 0 };
	int rc = logbuf_add(&b, 1000, 1, text, strlen(text));

	if (rc == 0)
		rc = store_log_append(st, run, step, seq, b.data, b.len);
	logbuf_free(&b);
	return rc;
}

/* Logs of a run and of one step, read in order and resumed where left. */
static void
test_logs(void **state)
{
	struct fixture *f = *state;
	struct chunks c = { .n = 0 };
	struct store_log_pos pos = { 0, 0 };

	assert_int_equal(append_line(f->st, 7, 1, 0, "a"), 0);
	assert_int_equal(append_line(f->st, 7, 1, 1, "b"), 0);
	assert_int_equal(append_line(f->st, 7, 2, 2, "c"), 0);
	assert_int_equal(append_line(f->st, 8, 1, 0, "X"), 0);
	assert_int_equal(append_line(f->st, 6, 3, 0, "Y"), 0);
	assert_int_equal(store_log_read(f->st, 7, 0, &pos, 1 << 20, collect_chunk, &c), 3);
	assert_string_equal(c.text, "abc");
	assert_int_equal(c.steps[2], 2);
	/* nothing new: nothing given; a new chunk: only it */
	assert_int_equal(store_log_read(f->st, 7, 0, &pos, 1 << 20, collect_chunk, &c), 0);
	assert_int_equal(append_line(f->st, 7, 3, 3, "d"), 0);
	assert_int_equal(store_log_read(f->st, 7, 0, &pos, 1 << 20, collect_chunk, &c), 1);
	assert_string_equal(c.text, "abcd");
	/* one step; and a budget stops after the chunk that reaches it */
	memset(&c, 0, sizeof(c));
	memset(&pos, 0, sizeof(pos));
	assert_int_equal(store_log_read(f->st, 7, 2, &pos, 1 << 20, collect_chunk, &c), 1);
	assert_string_equal(c.text, "c");
	memset(&c, 0, sizeof(c));
	memset(&pos, 0, sizeof(pos));
	assert_int_equal(store_log_read(f->st, 7, 0, &pos, 1, collect_chunk, &c), 1);
	assert_int_equal(store_log_read(f->st, 7, 0, &pos, 1, collect_chunk, &c), 1);
	assert_string_equal(c.text, "ab");
}

/*
 * Group commit: pending writes are visible to reads before the commit, a
 * failing write does not take the others of the batch with it, and a
 * reopened store has everything committed.
 */
static void
test_group_commit(void **state)
{
	struct fixture *f = *state;
	Dbtd__Project dup = DBTD__PROJECT__INIT, *p;
	uint64_t run1, run2;

	store_set_group_commit(f->st, 1);
	add_project(f->st, "shop", "/srv/git/shop");
	run1 = add_run(f->st, 1, "nightly", DBTD__RUN_STATUS__RUN_QUEUED, "main");
	assert_int_equal(store_obj_find(f->st, STORE_PROJECT, "shop", (ProtobufCMessage **)&p), 0);
	dbtd__project__free_unpacked(p, NULL);
	assert_int_equal(store_job_active_run(f->st, 1), run1);
	dup.name = (char *)"shop";
	assert_int_equal(store_obj_add(f->st, STORE_PROJECT, &dup.base, "shop", &dup.id), -EEXIST);
	run2 = add_run(f->st, 1, "nightly", DBTD__RUN_STATUS__RUN_COMPLETED, "main");
	assert_int_equal(run2, run1 + 1);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_commit(f->st), 0); /* nothing pending: fine */
	store_close(f->st);
	assert_int_equal(store_open(&f->st, f->dir, NULL), 0);
	assert_int_equal(store_obj_find(f->st, STORE_PROJECT, "shop", (ProtobufCMessage **)&p), 0);
	assert_string_equal(p->repo, "/srv/git/shop");
	dbtd__project__free_unpacked(p, NULL);
	assert_int_equal(store_job_active_run(f->st, 1), run1);
}

/* The state file is private to dbtd's user. */
static void
test_state_private(void **state)
{
	struct fixture *f = *state;
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0077, 0);
}

/* Append log chunks of 64 KiB to run 1 step 1 until one is refused; bytes stored. */
static size_t
log_until_refused(struct store *st, size_t limit, int *why)
{
	static uint8_t chunk[64 << 10];
	size_t stored = 0;
	uint32_t seq = 0;

	*why = 0;
	while (stored < limit) {
		int rc = store_log_append(st, 1, 1, seq++, chunk, sizeof(chunk));
		if (rc < 0) {
			*why = rc;
			break;
		}
		stored += sizeof(chunk);
	}
	return stored;
}

/*
 * The map starts at --map-size and grows as the store fills it, up to
 * --max-map-size; there, log lines are refused while run states (small
 * writes into the room kept for them) are still stored.
 */
static void
test_map_grows_then_keeps_room_for_states(void **state)
{
	struct fixture *f = *state;
	struct store_space sp, first;
	Dbtd__Project p = DBTD__PROJECT__INIT;
	uint8_t note[100] = { 0 };
	int why;
	size_t stored;

	assert_int_equal(store_set_map_limits(f->st, 1 << 20, 512 << 20), 0);
	assert_int_equal(store_space(f->st, &first), 0);
	assert_int_equal(first.max_map_size, 512 << 20);
	/* 200 MiB of log: more than the map held at first */
	stored = log_until_refused(f->st, 200u << 20, &why);
	assert_int_equal(why, 0);
	assert_int_equal(store_space(f->st, &sp), 0);
	assert_true(sp.map_used > first.map_size);
	assert_true(sp.map_size > first.map_size);
	assert_true(sp.map_size >= sp.map_used);
	/* to the limit: refused as a full map, before the map is truly full */
	stored += log_until_refused(f->st, 1u << 30, &why);
	assert_int_equal(why, STORE_EMAPFULL);
	assert_int_equal(store_space(f->st, &sp), 0);
	assert_int_equal(sp.map_size, 512 << 20);
	assert_true(stored > 400u << 20);
	/* a state still fits, and so does dbtd's note about the lost lines */
	p.name = (char *)"late";
	p.repo = (char *)"/srv/git/late";
	assert_int_equal(store_obj_add(f->st, STORE_PROJECT, &p.base, "late", &p.id), 0);
	assert_int_equal(store_log_note(f->st, 1, 1, 1u << 30, note, sizeof(note)), 0);
	/* limits that make no sense are refused */
	assert_int_equal(store_set_map_limits(f->st, 1024, 1 << 30), -EINVAL);
	assert_int_equal(store_set_map_limits(f->st, 2 << 20, 1 << 20), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_objects_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_list_and_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_grows_then_keeps_room_for_states, setup,
		                                teardown),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
