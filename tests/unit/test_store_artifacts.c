/*
 * test_store_artifacts.c - a run's artifact list read a page at a time
 * (store_artifacts_page), as dbtd streams it: order, resuming after a path,
 * the "more" answer, early stops, and runs kept apart.
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

struct fixture {
	char dir[64];
	struct store *st;
};

/* What a page gave: its paths, in order. */
struct got {
	char *paths[4096];
	size_t n;
	size_t stop_after;  /* fn returns 1 once it has this many; 0: never */
	int fail_at;        /* fn returns -EIO at this one (1-based); 0: never */
};

/* A fresh store in a temporary directory. */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/dbtd-test-arts-XXXXXX");
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

/* Keep one artifact of run_id at path. */
static void
put(struct store *st, uint64_t run_id, const char *path, uint64_t size)
{
	Dbtd__Artifact a = DBTD__ARTIFACT__INIT;

	a.path = (char *)path;
	a.size = size;
	a.digest = (char *)"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	assert_int_equal(store_artifact_put(st, run_id, &a), 0);
}

/* Page callback: note the path; stop or fail as the test asked. */
static int
take(void *arg, Dbtd__Artifact *a)
{
	struct got *g = arg;
	int rc = 0;

	assert_true(g->n < sizeof(g->paths) / sizeof(g->paths[0]));
	g->paths[g->n++] = strdup(a->path);
	if (g->fail_at && (size_t)g->fail_at == g->n)
		rc = -EIO;
	else if (g->stop_after && g->n % g->stop_after == 0)
		rc = 1;
	dbtd__artifact__free_unpacked(a, NULL);
	return rc;
}

/* Forget what was taken. */
static void
got_reset(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->paths[i]);
	g->n = 0;
}

/* Read every page of run_id, max per page; check pages and return the paths in g. */
static size_t
read_all(struct store *st, uint64_t run_id, size_t max, struct got *g)
{
	size_t pages = 0;
	int more = 1;

	while (more) {
		size_t before = g->n;
		int n = store_artifacts_page(st, run_id, g->n ? g->paths[g->n - 1] : NULL, max,
		                             take, g, &more);
		assert_true(n >= 0);
		assert_int_equal((size_t)n, g->n - before);
		assert_true((size_t)n <= max);
		/* only a full page (or one fn stopped) can be followed by more */
		if (more)
			assert_true((size_t)n == max || (g->stop_after && n > 0));
		pages++;
		assert_true(pages < 10000);
	}
	return pages;
}

/* A run without artifacts: an empty page and nothing more. */
static void
test_empty_run(void **state)
{
	struct fixture *f = *state;
	struct got g = { .n = 0 };
	int more = -1;

	put(f->st, 1, "target/manifest.json", 10);
	assert_int_equal(store_artifacts_page(f->st, 2, NULL, 10, take, &g, &more), 0);
	assert_int_equal(more, 0);
	assert_int_equal(store_artifacts_page(f->st, 2, "target/x", 10, take, &g, &more), 0);
	assert_int_equal(more, 0);
	assert_int_equal(g.n, 0);
}

/*
 * Pages give each path of the run once, bytewise in order (a directory's
 * files between "a.json" and "a0"), never a neighbour run's.
 */
static void
test_pages_in_order_runs_apart(void **state)
{
	static const char *const mine[] = {
		"target/a/b.sql", "logs/dbt.log", "target/a.json", "target/a0",
		"target/run_results.json", "target/manifest.json", "target/a/a.sql",
		"target/compiled/x/models/m.sql", "target/A.json", "target/~",
		"target/partial_parse.msgpack",
	};
	static const char *const sorted[] = {
		"logs/dbt.log", "target/A.json", "target/a.json", "target/a/a.sql",
		"target/a/b.sql", "target/a0", "target/compiled/x/models/m.sql",
		"target/manifest.json", "target/partial_parse.msgpack",
		"target/run_results.json", "target/~",
	};
	struct fixture *f = *state;
	struct got g = { .n = 0 };
	const size_t n = sizeof(mine) / sizeof(mine[0]);

	put(f->st, 6, "target/zzz_of_run_6", 1);
	put(f->st, 8, "logs/aaa_of_run_8", 1);
	put(f->st, 256, "logs/of_run_256", 1);
	for (size_t i = 0; i < n; i++)
		put(f->st, 7, mine[i], i);
	for (size_t max = 1; max <= n + 1; max++) {
		size_t pages = read_all(f->st, 7, max, &g);
		assert_int_equal(g.n, n);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(g.paths[i], sorted[i]);
		/* a list of exactly k pages takes k reads: the last one knows it is last */
		assert_int_equal(pages, n / max + (n % max != 0));
		got_reset(&g);
	}
}

/* Resuming after a path the run does not have starts at the next one. */
static void
test_after_a_path_not_kept(void **state)
{
	struct fixture *f = *state;
	struct got g = { .n = 0 };
	int more = -1;

	put(f->st, 3, "target/b", 1);
	put(f->st, 3, "target/d", 1);
	put(f->st, 3, "target/f", 1);
	assert_int_equal(store_artifacts_page(f->st, 3, "target/c", 10, take, &g, &more), 2);
	assert_int_equal(more, 0);
	assert_string_equal(g.paths[0], "target/d");
	assert_string_equal(g.paths[1], "target/f");
	got_reset(&g);
	assert_int_equal(store_artifacts_page(f->st, 3, "target/f", 10, take, &g, &more), 0);
	assert_int_equal(more, 0);
	assert_int_equal(store_artifacts_page(f->st, 3, "target/z", 10, take, &g, &more), 0);
	assert_int_equal(store_artifacts_page(f->st, 3, "", 1, take, &g, &more), 1);
	assert_int_equal(more, 1);
	assert_string_equal(g.paths[0], "target/b");
	got_reset(&g);
	/* max 0 gives nothing but still says whether there is something */
	assert_int_equal(store_artifacts_page(f->st, 3, "target/b", 0, take, &g, &more), 0);
	assert_int_equal(more, 1);
	assert_int_equal(store_artifacts_page(f->st, 3, "target/f", 0, take, &g, &more), 0);
	assert_int_equal(more, 0);
}

/* fn stops a page early (a byte budget): the next page resumes after it. */
static void
test_fn_stops_early(void **state)
{
	struct fixture *f = *state;
	struct got g = { .stop_after = 3 };
	char path[64];
	int more = -1;

	for (int i = 0; i < 10; i++) {
		snprintf(path, sizeof(path), "target/f%02d", i);
		put(f->st, 4, path, 1);
	}
	assert_int_equal(store_artifacts_page(f->st, 4, NULL, 100, take, &g, &more), 3);
	assert_int_equal(more, 1);
	got_reset(&g);
	assert_int_equal(read_all(f->st, 4, 100, &g), 4); /* 3 + 3 + 3 + 1 */
	assert_int_equal(g.n, 10);
	assert_string_equal(g.paths[9], "target/f09");
	got_reset(&g);
	/* stopping on the very last one: nothing more */
	g.stop_after = 5;
	assert_int_equal(store_artifacts_page(f->st, 4, "target/f04", 100, take, &g, &more), 5);
	assert_int_equal(more, 0);
	got_reset(&g);
}

/* fn's error ends the page and is returned, as by store_artifacts_list. */
static void
test_fn_error(void **state)
{
	struct fixture *f = *state;
	struct got g = { .fail_at = 2 };
	int more = -1;

	put(f->st, 5, "target/a", 1);
	put(f->st, 5, "target/b", 1);
	put(f->st, 5, "target/c", 1);
	assert_int_equal(store_artifacts_page(f->st, 5, NULL, 10, take, &g, &more), -EIO);
	assert_int_equal(g.n, 2);
	got_reset(&g);
	g.fail_at = 3;
	assert_int_equal(store_artifacts_list(f->st, 5, take, &g), -EIO);
	got_reset(&g);
	g.fail_at = 0;
	assert_int_equal(store_artifacts_list(f->st, 5, take, &g), 0);
	assert_int_equal(g.n, 3);
	got_reset(&g);
}

/* A few thousand artifacts with long paths, in pages of 1000 as dbtd sends them. */
static void
test_many_long_paths(void **state)
{
	struct fixture *f = *state;
	struct got g = { .n = 0 };
	char path[400];

	for (int i = 0; i < 2500; i++) {
		snprintf(path, sizeof(path), "target/%0300d/file_%04d.sql", i % 7, i);
		put(f->st, 9, path, (uint64_t)i);
	}
	assert_int_equal(read_all(f->st, 9, 1000, &g), 3);
	assert_int_equal(g.n, 2500);
	for (size_t i = 1; i < g.n; i++)
		assert_true(strcmp(g.paths[i - 1], g.paths[i]) < 0);
	got_reset(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pages_in_order_runs_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_after_a_path_not_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fn_stops_early, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fn_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_long_paths, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
