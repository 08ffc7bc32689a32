/*
 * test_store_prune.c - deleting runs (store_run_delete) and the retention
 * walk (store_prune_step): every record and index entry of a deleted run
 * goes, nothing of another run does, active runs and each job's newest
 * finished run stay, the count and age limits, job policies, batches that
 * resume, dry runs that change nothing.
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

#include <cmocka.h>

#include "store.h"
#include "util.h"

#define DAY (86400 * (int64_t)1000)
#define NOW ((int64_t)1800000000000)

struct fixture {
	char dir[64];
	struct store *st;
};

/* A fresh store in a temporary directory. */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/dbtd-test-prune-XXXXXX");
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

/* A run of job in status s, finished `age` ms before NOW; with a log, lineage, artifact. */
static uint64_t
add_run(struct store *st, const char *job, Dbtd__RunStatus s, int64_t age)
{
	Dbtd__Run r = DBTD__RUN__INIT;
	Dbtd__Lineage l = DBTD__LINEAGE__INIT;
	Dbtd__Artifact a = DBTD__ARTIFACT__INIT;
	uint8_t chunk[100] = { 0 };

	r.job = (char *)job;
	r.job_id = 1;
	r.status = s;
	r.trigger = DBTD__TRIGGER__TRIGGER_MANUAL;
	r.branch = (char *)"main";
	r.created_at_ms = NOW - age - 1000;
	if (s != DBTD__RUN_STATUS__RUN_QUEUED && s != DBTD__RUN_STATUS__RUN_RUNNING)
		r.finished_at_ms = NOW - age;
	assert_int_equal(store_run_create(st, &r), 0);
	/* one log record (u64 ts | u8 stream | u32 len | text) per chunk */
	chunk[12] = sizeof(chunk) - 13;
	assert_int_equal(store_log_append(st, r.id, 1, 1, chunk, sizeof(chunk)), 0);
	chunk[12] = 50 - 13;
	assert_int_equal(store_log_append(st, r.id, 2, 1, chunk, 50), 0);
	assert_int_equal(store_lineage_put(st, r.id, &l), 0);
	a.path = (char *)"target/manifest.json";
	a.size = 10;
	a.digest = (char *)"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	assert_int_equal(store_artifact_put(st, r.id, &a), 0);
	return r.id;
}

/* Whether run id is there, with its data (1), gone without a trace (0), or half (-1). */
static int
present(struct store *st, uint64_t id)
{
	Dbtd__Run *run = NULL;
	Dbtd__Lineage *l = NULL;
	Dbtd__Artifact *a = NULL;
	int n = 0;

	n += store_run_get(st, id, &run) == 0;
	n += store_lineage_get(st, id, &l) == 0;
	n += store_artifact_get(st, id, "target/manifest.json", &a) == 0;
	if (run)
		dbtd__run__free_unpacked(run, NULL);
	if (l)
		dbtd__lineage__free_unpacked(l, NULL);
	if (a)
		dbtd__artifact__free_unpacked(a, NULL);
	return n == 3 ? 1 : n == 0 ? 0 : -1;
}

/* store_log_read callback: count. */
static int
count_chunk(void *arg, uint32_t step, uint32_t seq, const uint8_t *d, size_t len)
{
	(void)step; (void)seq; (void)d; (void)len;
	(*(int *)arg)++;
	return 0;
}

/* Chunks of run id's log. */
static int
log_chunks(struct store *st, uint64_t id)
{
	struct store_log_pos pos = { 0, 0 };
	int n = 0;

	store_log_read(st, id, 0, &pos, 1 << 20, count_chunk, &n);
	return n;
}

/* run list callback: count, and remember the ids. */
struct ids {
	uint64_t id[64];
	size_t n;
};

static int
take_run(void *arg, Dbtd__Run *run)
{
	struct ids *ids = arg;

	if (ids->n < 64)
		ids->id[ids->n++] = run->id;
	dbtd__run__free_unpacked(run, NULL);
	return 0;
}

/* How many runs a filtered list gives. */
static size_t
listed(struct store *st, const struct store_run_filter *f)
{
	struct ids ids = { .n = 0 };

	assert_int_equal(store_run_list(st, f, 0, 1000, take_run, &ids), 0);
	return ids.n;
}

/* Deleting one run removes its record, indexes, logs, lineage and artifacts; others stay. */
static void
test_delete_one_run(void **state)
{
	struct fixture *f = *state;
	uint64_t a = add_run(f->st, "nightly", DBTD__RUN_STATUS__RUN_COMPLETED, DAY);
	uint64_t b = add_run(f->st, "nightly", DBTD__RUN_STATUS__RUN_FAILED, DAY);
	struct store_freed fr = { 0 };
	struct store_run_filter byjob = { .job = "nightly" }, bybranch = { .branch = "main" },
		bystatus = { .status = DBTD__RUN_STATUS__RUN_COMPLETED },
		bytrigger = { .trigger = DBTD__TRIGGER__TRIGGER_MANUAL };

	assert_int_equal(store_run_delete(f->st, a, 0, &fr), 0);
	assert_int_equal(fr.runs, 1);
	assert_int_equal(fr.log_chunks, 2);
	assert_int_equal(fr.log_bytes, 150);
	assert_int_equal(fr.lineages, 1);
	assert_int_equal(fr.artifacts, 1);
	assert_int_equal(present(f->st, a), 0);
	assert_int_equal(log_chunks(f->st, a), 0);
	assert_int_equal(present(f->st, b), 1);
	assert_int_equal(log_chunks(f->st, b), 2);
	/* no index still names it */
	assert_int_equal(listed(f->st, &byjob), 1);
	assert_int_equal(listed(f->st, &bybranch), 1);
	assert_int_equal(listed(f->st, &bystatus), 0);
	assert_int_equal(listed(f->st, &bytrigger), 1);
	assert_int_equal(listed(f->st, NULL), 1);
	assert_int_equal(store_run_delete(f->st, a, 0, &fr), -ENOENT);
}

/* Queued and Running runs are never deleted; a dry delete only counts. */
static void
test_delete_refuses_active_and_dry_counts(void **state)
{
	struct fixture *f = *state;
	uint64_t q = add_run(f->st, "j", DBTD__RUN_STATUS__RUN_QUEUED, 0);
	uint64_t r = add_run(f->st, "j", DBTD__RUN_STATUS__RUN_RUNNING, 0);
	uint64_t d = add_run(f->st, "j", DBTD__RUN_STATUS__RUN_CANCELED, 0);
	struct store_freed fr = { 0 };

	assert_int_equal(store_run_delete(f->st, q, 0, &fr), -EBUSY);
	assert_int_equal(store_run_delete(f->st, r, 0, &fr), -EBUSY);
	assert_int_equal(store_run_delete(f->st, d, 1, &fr), 0);
	assert_int_equal(fr.runs, 1);
	assert_int_equal(fr.log_bytes, 150);
	assert_int_equal(present(f->st, q), 1);
	assert_int_equal(present(f->st, r), 1);
	assert_int_equal(present(f->st, d), 1);
	assert_int_equal(store_job_active_run(f->st, 1) != 0, 1);
}

/* Run a whole pass in batches of `batch` runs; what it freed. */
static struct store_freed
pass(struct store *st, const char *job, const struct store_keep *keep, int dry,
     unsigned batch, unsigned *steps)
{
	struct store_prune_pos pos;
	struct store_freed fr = { 0 };
	int rc;

	memset(&pos, 0, sizeof(pos));
	snprintf(pos.only_job, sizeof(pos.only_job), "%s", job ? job : "");
	*steps = 0;
	do {
		rc = store_prune_step(st, &pos, keep, NOW, dry, batch, 1000, &fr, NULL, NULL);
		assert_true(rc >= 0);
		(*steps)++;
	} while (rc == 1 && *steps < 10000);
	return fr;
}

/* keep-runs: per job, the newest N finished runs stay; active ones are not counted. */
static void
test_keep_runs_per_job(void **state)
{
	struct fixture *f = *state;
	struct store_keep keep = { .runs = 3, .days = 0 };
	uint64_t a[8], b[2], act;
	struct store_freed fr;
	unsigned steps;

	for (int i = 0; i < 6; i++)
		a[i] = add_run(f->st, "a", DBTD__RUN_STATUS__RUN_COMPLETED, DAY * (10 - i));
	b[0] = add_run(f->st, "b", DBTD__RUN_STATUS__RUN_SKIPPED, DAY * 3);
	act = add_run(f->st, "a", DBTD__RUN_STATUS__RUN_RUNNING, 0);
	a[6] = add_run(f->st, "a", DBTD__RUN_STATUS__RUN_FAILED, 0);
	b[1] = add_run(f->st, "b", DBTD__RUN_STATUS__RUN_COMPLETED, 0);
	fr = pass(f->st, NULL, &keep, 1, 1, &steps);
	assert_int_equal(fr.runs, 4);           /* a[0..3] */
	assert_true(steps >= 4);                /* one run per batch */
	for (int i = 0; i < 7; i++)
		assert_int_equal(present(f->st, a[i]), 1); /* dry: nothing changed */
	fr = pass(f->st, NULL, &keep, 0, 2, &steps);
	assert_int_equal(fr.runs, 4);
	assert_int_equal(fr.log_chunks, 8);
	for (int i = 0; i < 4; i++)
		assert_int_equal(present(f->st, a[i]), 0);
	for (int i = 4; i < 7; i++)
		assert_int_equal(present(f->st, a[i]), 1);
	assert_int_equal(present(f->st, act), 1);
	assert_int_equal(present(f->st, b[0]), 1);
	assert_int_equal(present(f->st, b[1]), 1);
	/* a second pass finds nothing more */
	fr = pass(f->st, NULL, &keep, 0, 100, &steps);
	assert_int_equal(fr.runs, 0);
}

/* keep-days: older finished runs go, but never a job's newest finished run. */
static void
test_keep_days_and_newest(void **state)
{
	struct fixture *f = *state;
	struct store_keep keep = { .runs = 0, .days = 30 };
	uint64_t old1 = add_run(f->st, "x", DBTD__RUN_STATUS__RUN_COMPLETED, DAY * 100);
	uint64_t old2 = add_run(f->st, "x", DBTD__RUN_STATUS__RUN_COMPLETED, DAY * 40);
	uint64_t young = add_run(f->st, "x", DBTD__RUN_STATUS__RUN_COMPLETED, DAY * 2);
	uint64_t lone = add_run(f->st, "y", DBTD__RUN_STATUS__RUN_FAILED, DAY * 300);
	uint64_t q = add_run(f->st, "y", DBTD__RUN_STATUS__RUN_QUEUED, 0);
	struct store_freed fr;
	unsigned steps;

	fr = pass(f->st, NULL, &keep, 0, 100, &steps);
	assert_int_equal(fr.runs, 2);
	assert_int_equal(present(f->st, old1), 0);
	assert_int_equal(present(f->st, old2), 0);
	assert_int_equal(present(f->st, young), 1);
	assert_int_equal(present(f->st, lone), 1); /* the newest finished run of y */
	assert_int_equal(present(f->st, q), 1);
}

/* A job's own policy comes first; --job limits the pass; removed jobs follow global. */
static void
test_job_policy_and_only_job(void **state)
{
	struct fixture *f = *state;
	struct store_keep keep = { .runs = 0, .days = 30 };
	Dbtd__Job j = DBTD__JOB__INIT;
	uint64_t id, k[4], g[2];
	struct store_freed fr;
	unsigned steps;

	j.name = (char *)"kept";
	j.keep_days = 1000;
	j.keep_runs = 2;
	assert_int_equal(store_obj_add(f->st, STORE_JOB, &j.base, "kept", &id), 0);
	for (int i = 0; i < 4; i++)
		k[i] = add_run(f->st, "kept", DBTD__RUN_STATUS__RUN_COMPLETED, DAY * (100 - i));
	g[0] = add_run(f->st, "gone-job", DBTD__RUN_STATUS__RUN_COMPLETED, DAY * 100);
	g[1] = add_run(f->st, "gone-job", DBTD__RUN_STATUS__RUN_COMPLETED, DAY * 99);
	fr = pass(f->st, "kept", &keep, 0, 100, &steps);
	assert_int_equal(fr.runs, 2); /* past its own keep-runs 2; its 1000 days keep no more */
	assert_int_equal(present(f->st, k[0]), 0);
	assert_int_equal(present(f->st, k[1]), 0);
	assert_int_equal(present(f->st, k[2]), 1);
	assert_int_equal(present(f->st, k[3]), 1);
	assert_int_equal(present(f->st, g[0]), 1); /* not this job */
	fr = pass(f->st, NULL, &keep, 0, 100, &steps);
	assert_int_equal(fr.runs, 1);
	assert_int_equal(present(f->st, g[0]), 0); /* the global 30 days */
	assert_int_equal(present(f->st, g[1]), 1); /* its newest */
}

/* Group commit: a step's deletions are in the batch, and lost with a failed commit. */
static void
test_failed_commit_keeps_runs(void **state)
{
	struct fixture *f = *state;
	struct store_keep keep = { .runs = 1, .days = 0 };
	uint64_t a = add_run(f->st, "z", DBTD__RUN_STATUS__RUN_COMPLETED, DAY * 2);
	uint64_t b = add_run(f->st, "z", DBTD__RUN_STATUS__RUN_COMPLETED, DAY);
	struct store_prune_pos pos;
	struct store_freed fr = { 0 };

	memset(&pos, 0, sizeof(pos));
	store_set_group_commit(f->st, 1);
	assert_int_equal(store_prune_step(f->st, &pos, &keep, NOW, 0, 10, 100, &fr, NULL, NULL), 0);
	assert_int_equal(fr.runs, 1);
	store_fail_commits(f->st, -ENOSPC, 1);
	assert_int_equal(store_commit(f->st), -ENOSPC);
	assert_int_equal(present(f->st, a), 1);
	assert_int_equal(present(f->st, b), 1);
	store_set_group_commit(f->st, 0);
}

/* store_artifacts_scan pages through every record of every run. */
static void
test_artifacts_scan(void **state)
{
	struct fixture *f = *state;
	struct store_scan pos;
	size_t total = 0;
	int n;

	for (int i = 0; i < 5; i++)
		add_run(f->st, "s", DBTD__RUN_STATUS__RUN_COMPLETED, DAY);
	assert_int_equal(store_artifacts_count(f->st), 5);
	memset(&pos, 0, sizeof(pos));
	while ((n = store_artifacts_scan(f->st, &pos, 2, NULL, NULL)) > 0)
		total += (size_t)n;
	assert_int_equal(n, 0);
	assert_int_equal(total, 5);
	assert_true(pos.done);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_delete_one_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_refuses_active_and_dry_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_runs_per_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep_days_and_newest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_job_policy_and_only_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_keeps_runs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_artifacts_scan, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
