/*
 * test_store.c - LMDB store: records round trip, names, run listing, logs;
 * reads that meet damage fail and say where.
 */
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
#include <lmdb.h>

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

/* Behind the store's back: put (val) or delete (val NULL) key in database db. */
static void
poke(const char *dir, const char *db, const void *key, size_t klen, const void *val,
     size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	assert_int_equal(store_format_env_open(dir, 0, &env), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	if (val)
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	else
		assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* store_run_list callback: count. */
static int
count_run(void *arg, Dbtd__Run *run)
{
	(*(int *)arg)++;
	dbtd__run__free_unpacked(run, NULL);
	return 0;
}

/* store_obj_list callback: count. */
static int
count_obj(void *arg, ProtobufCMessage *msg)
{
	(*(int *)arg)++;
	protobuf_c_message_free_unpacked(msg, NULL);
	return 0;
}

/* The sentence for a damaged store names it, the place, and what to do. */
static void
assert_said(struct store *st, const char *dir, int rc, const char *where)
{
	const char *msg = store_error(st, rc);
	char want[128];

	assert_int_equal(store_err_kind(rc), ERR_DAMAGED);
	snprintf(want, sizeof(want), "the store in %s is damaged", dir);
	assert_non_null(strstr(msg, want));
	assert_non_null(strstr(msg, where));
	assert_non_null(strstr(msg, "dbtd check"));
	assert_non_null(strstr(msg, "backup"));
}

/* LMDB's codes of a damaged or foreign file map to one code, never EIO. */
static void
test_damage_codes(void **state)
{
	static const int codes[] = { MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID,
	                             MDB_VERSION_MISMATCH, MDB_CURSOR_FULL, MDB_INCOMPATIBLE };

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		assert_int_equal(store_format_map_rc(codes[i]), STORE_EDAMAGED);
		assert_int_equal(store_err_kind(store_format_map_rc(codes[i])), ERR_DAMAGED);
		assert_null(strstr(store_strerror(STORE_EDAMAGED), "Input/output"));
	}
	assert_int_equal(store_err_kind(-EBADMSG), ERR_DAMAGED);
	assert_int_equal(store_err_kind(-ENOENT), ERR_NOT_FOUND);
	assert_string_equal(store_error(NULL, -ENOSPC), store_strerror(-ENOSPC));
}

/*
 * Records that do not decode, a log chunk whose records do not frame and an
 * index entry of a missing run: every read that meets one fails with the
 * damage and where it is, never a short answer; the rest still reads.
 */
static void
test_damaged_records_fail_reads(void **state)
{
	struct fixture *f = *state;
	static const uint8_t junk[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t key[16] = { 0 }, bad_chunk[20] = { 0 };
	struct chunks c = { .n = 0 };
	struct store_log_pos pos = { 0, 0 };
	struct store_run_filter byjob = { .job = "nightly" };
	Dbtd__Run *run;
	ProtobufCMessage *obj;
	uint64_t r1, r2, r3;
	int n = 0, rc;

	add_project(f->st, "shop", "/srv/git/shop");
	add_project(f->st, "lab", "/srv/git/lab");
	r1 = add_run(f->st, 1, "nightly", DBTD__RUN_STATUS__RUN_COMPLETED, "main");
	r2 = add_run(f->st, 1, "nightly", DBTD__RUN_STATUS__RUN_COMPLETED, "main");
	r3 = add_run(f->st, 1, "nightly", DBTD__RUN_STATUS__RUN_COMPLETED, "main");
	assert_int_equal(append_line(f->st, r1, 1, 0, "first"), 0);
	assert_int_equal(append_line(f->st, r1, 1, 1, "second"), 0);
	assert_int_equal(append_line(f->st, r1, 1, 3, "after"), 0);
	store_close(f->st);

	/* project 2 and run r2 do not decode; chunk 2 of r1 claims 255 bytes it lacks */
	key[7] = 2;
	poke(f->dir, "projects", key, 8, junk, sizeof(junk));
	key[7] = (uint8_t)r2;
	poke(f->dir, "runs", key, 8, junk, sizeof(junk));
	key[7] = (uint8_t)r1;
	key[11] = 1;
	key[15] = 2;
	bad_chunk[12] = 0xff;
	poke(f->dir, "logs", key, 16, bad_chunk, sizeof(bad_chunk));
	/* run r3's record is gone; its index entries stay */
	memset(key, 0, sizeof(key));
	key[7] = (uint8_t)r3;
	poke(f->dir, "runs", key, 8, NULL, 0);
	assert_int_equal(store_open(&f->st, f->dir, NULL), 0);

	rc = store_obj_get(f->st, STORE_PROJECT, 2, &obj);
	assert_int_equal(rc, -EBADMSG);
	assert_said(f->st, f->dir, rc, "database projects, record 2");
	rc = store_obj_find(f->st, STORE_PROJECT, "lab", &obj);
	assert_int_equal(rc, -EBADMSG);
	assert_said(f->st, f->dir, rc, "database projects, record 2");
	rc = store_obj_list(f->st, STORE_PROJECT, count_obj, &n);
	assert_int_equal(rc, -EBADMSG);
	assert_said(f->st, f->dir, rc, "database projects, record 2");
	assert_int_equal(store_obj_find(f->st, STORE_PROJECT, "shop", &obj), 0);
	protobuf_c_message_free_unpacked(obj, NULL);

	rc = store_run_get(f->st, r2, &run);
	assert_int_equal(rc, -EBADMSG);
	assert_said(f->st, f->dir, rc, "database runs, run 2");
	assert_int_equal(store_run_get(f->st, r1, &run), 0);
	dbtd__run__free_unpacked(run, NULL);
	assert_int_equal(store_run_get(f->st, r3, &run), -ENOENT);

	/* newest first: the index names r3, which is gone; the runs themselves: r2 */
	n = 0;
	rc = store_run_list(f->st, &byjob, 0, 50, count_run, &n);
	assert_int_equal(rc, STORE_EDAMAGED);
	assert_said(f->st, f->dir, rc, "database runs_by_job, an entry for run 3");
	n = 0;
	rc = store_run_list(f->st, NULL, 0, 50, count_run, &n);
	assert_int_equal(rc, -EBADMSG);
	assert_said(f->st, f->dir, rc, "database runs, run 2");
	n = 0;
	assert_int_equal(store_run_list(f->st, NULL, r2, 50, count_run, &n), 0);
	assert_int_equal(n, 1);

	/* the log: the chunks before the damage, then the error, never an end */
	rc = store_log_read(f->st, r1, 0, &pos, 1 << 20, collect_chunk, &c);
	assert_int_equal(rc, -EBADMSG);
	assert_string_equal(c.text, "firstsecond");
	assert_said(f->st, f->dir, rc, "database logs, chunk 2 of step 1 of run 1");
	rc = store_log_read(f->st, r1, 0, &pos, 1 << 20, collect_chunk, &c);
	assert_int_equal(rc, -EBADMSG);
	assert_string_equal(c.text, "firstsecond");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_objects_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_list_and_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logs, setup, teardown),
		cmocka_unit_test(test_damage_codes),
		cmocka_unit_test_setup_teardown(test_damaged_records_fail_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_grows_then_keeps_room_for_states, setup,
		                                teardown),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
