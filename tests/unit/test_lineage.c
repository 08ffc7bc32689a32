/*
 * test_lineage.c - the model graph from dbt's target/: nodes, edges,
 * statuses, merging steps, and manifests that are missing or broken.
 *
 * The fixtures in tests/fixtures/lineage/ are real dbt 1.11 output
 * (dbt-duckdb) of examples/jaffle_shop, copied to /tmp with three
 * additions: models/sources_exposures.yml (source landing.raw_orders_landing,
 * exposure customer_dashboard on customers, orders and that source),
 * snapshots/orders_snapshot.yml (on stg_orders) and
 * analyses/order_counts.sql (an analysis: in the manifest, not the graph).
 *   ok/      dbt build: everything passes (exposure: no-op)
 *   failed/  the same plus tests/fixtures/bad_model.sql as
 *            models/marts/broken.sql and models/marts/after_broken.sql
 *            (select from broken): broken errors, after_broken is skipped
 *   steps/   run_results.json of `dbt seed`, then `dbt run`, on ok/
 * Each manifest.json had its "macros" emptied to keep it small
 * (json.load, m["macros"] = {}, json.dump); nothing else was changed.
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
#include <jansson.h>

#include "lineage.h"
#include "pb.h"
#include "util.h"

#ifndef FIXTURE_DIR
#error "FIXTURE_DIR must name tests/fixtures/lineage"
#endif

#define OK_DIR FIXTURE_DIR "/ok"
#define FAILED_DIR FIXTURE_DIR "/failed"
#define STEPS_DIR FIXTURE_DIR "/steps"

/* A temporary directory with an empty target/ in it. */
struct fixture {
	char dir[64];
	char target[96];
};

/* Make the temporary target/. */
static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/dbtd-test-lineage-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->target, sizeof(f->target), "%s/target", f->dir);
	if (mkdir_p(f->target, 0755) < 0)
		return -1;
	*state = f;
	return 0;
}

/* Remove it. */
static int
teardown(void **state)
{
	struct fixture *f = *state;

	rm_rf(f->dir);
	free(f);
	return 0;
}

/* The contents of path (malloc'd) and their size; fails the test if unreadable. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* Write len bytes of data to dir/name. */
static void
spew(const char *dir, const char *name, const char *data, size_t len)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* Copy the file src to dir/name. */
static void
copy_file(const char *src, const char *dir, const char *name)
{
	size_t len;
	char *buf = slurp(src, &len);

	spew(dir, name, buf, len);
	free(buf);
}

/* Read the graph of dir, which must succeed. */
static Dbtd__Lineage *
read_ok(const char *dir)
{
	Dbtd__Lineage *l = NULL;
	char *why = NULL;
	int rc = lineage_read(dir, &l, &why);

	if (rc != 0)
		fail_msg("lineage_read(%s): %d %s", dir, rc, why ? why : "(no reason)");
	assert_null(why);
	assert_non_null(l);
	return l;
}

/* Read the graph of dir, which must fail with rc; the reason (caller frees). */
static char *
read_fails(const char *dir, int want_rc)
{
	Dbtd__Lineage *l = (Dbtd__Lineage *)1;
	char *why = NULL;

	assert_int_equal(lineage_read(dir, &l, &why), want_rc);
	assert_null(l);
	assert_non_null(why);
	return why;
}

/* The node named name (several may share a name: the first). */
static const Dbtd__LineageNode *
by_name(const Dbtd__Lineage *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n_nodes; i++)
		if (strcmp(l->nodes[i]->name, name) == 0)
			return l->nodes[i];
	fail_msg("no node named %s", name);
	return NULL;
}

/* The index of the node named name. */
static uint32_t
idx(const Dbtd__Lineage *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n_nodes; i++)
		if (strcmp(l->nodes[i]->name, name) == 0)
			return (uint32_t)i;
	fail_msg("no node named %s", name);
	return 0;
}

/* Whether l has the edge parent -> child (by name). */
static int
has_edge(const Dbtd__Lineage *l, const char *parent, const char *child)
{
	uint32_t p = idx(l, parent), c = idx(l, child);
	size_t i;

	for (i = 0; i < l->n_edges; i++)
		if (l->edges[i]->parent == p && l->edges[i]->child == c)
			return 1;
	return 0;
}

/* How many nodes of l have this resource type. */
static size_t
count_type(const Dbtd__Lineage *l, const char *type)
{
	size_t i, n = 0;

	for (i = 0; i < l->n_nodes; i++)
		n += strcmp(l->nodes[i]->resource_type, type) == 0;
	return n;
}

/* The shape every graph has: sorted unique ids, edges in range, sorted, unique. */
static void
check_shape(const Dbtd__Lineage *l)
{
	size_t i;

	for (i = 1; i < l->n_nodes; i++)
		assert_true(strcmp(l->nodes[i - 1]->unique_id, l->nodes[i]->unique_id) < 0);
	for (i = 0; i < l->n_edges; i++) {
		assert_true(l->edges[i]->parent < l->n_nodes);
		assert_true(l->edges[i]->child < l->n_nodes);
		if (i > 0) {
			const Dbtd__LineageEdge *a = l->edges[i - 1], *b = l->edges[i];

			assert_true(a->parent < b->parent ||
			    (a->parent == b->parent && a->child < b->child));
		}
	}
}

/* Every node of a passing `dbt build` and its place in the graph. */
static void
test_nodes_by_type(void **state)
{
	Dbtd__Lineage *l = read_ok(OK_DIR);

	check_shape(l);
	assert_int_equal(count_type(l, "model"), 5);
	assert_int_equal(count_type(l, "seed"), 3);
	assert_int_equal(count_type(l, "snapshot"), 1);
	assert_int_equal(count_type(l, "test"), 22);
	assert_int_equal(count_type(l, "source"), 1);
	assert_int_equal(count_type(l, "exposure"), 1);
	assert_int_equal(l->n_nodes, 33); /* the analysis is left out */
	assert_int_equal(count_type(l, "analysis"), 0);
	assert_string_equal(l->error, "");

	assert_string_equal(by_name(l, "orders")->unique_id, "model.jaffle_shop.orders");
	assert_string_equal(by_name(l, "orders")->package, "jaffle_shop");
	assert_string_equal(by_name(l, "orders")->original_file_path, "models/marts/orders.sql");
	assert_string_equal(by_name(l, "raw_orders_landing")->unique_id,
	    "source.jaffle_shop.landing.raw_orders_landing");
	assert_string_equal(by_name(l, "raw_orders_landing")->original_file_path,
	    "models/sources_exposures.yml");
	dbtd__lineage__free_unpacked(l, NULL);
}

/* Edges follow depends_on: seed -> staging -> marts, tests and exposures. */
static void
test_edges(void **state)
{
	Dbtd__Lineage *l = read_ok(OK_DIR);

	assert_true(has_edge(l, "stg_orders", "orders"));
	assert_true(has_edge(l, "raw_orders", "stg_orders"));
	assert_true(has_edge(l, "stg_payments", "orders"));
	assert_true(has_edge(l, "orders", "customers"));
	assert_true(has_edge(l, "stg_customers", "customers"));
	assert_true(has_edge(l, "orders", "unique_orders_order_id"));
	assert_true(has_edge(l, "stg_orders", "orders_snapshot"));
	assert_true(has_edge(l, "customers", "customer_dashboard"));
	assert_true(has_edge(l, "raw_orders_landing", "customer_dashboard"));
	/* a relationships test depends on both of its models */
	assert_true(has_edge(l, "orders", "relationships_orders_customer_id__customer_id__ref_customers_"));
	assert_true(has_edge(l, "customers", "relationships_orders_customer_id__customer_id__ref_customers_"));
	assert_false(has_edge(l, "orders", "stg_orders"));
	assert_int_equal(l->n_edges, 36);
	dbtd__lineage__free_unpacked(l, NULL);
}

/*
 * What is downstream of seed raw_orders by the edges is what dbt itself
 * says: `dbt ls --select raw_orders+ --output name` on the fixture project.
 */
static void
test_downstream_matches_dbt_ls(void **state)
{
	static const char *const dbt_ls[] = {
		"accepted_values_orders_status__placed__shipped__completed__return_pending__returned",
		"accepted_values_stg_orders_status__placed__shipped__completed__return_pending__returned",
		"customer_dashboard", "customers", "not_null_customers_customer_id",
		"not_null_customers_customer_lifetime_value", "not_null_customers_number_of_orders",
		"not_null_orders_amount", "not_null_orders_customer_id", "not_null_orders_order_id",
		"not_null_stg_orders_customer_id", "not_null_stg_orders_order_id", "orders",
		"orders_snapshot", "raw_orders",
		"relationships_orders_customer_id__customer_id__ref_customers_",
		"relationships_stg_orders_customer_id__customer_id__ref_stg_customers_",
		"relationships_stg_payments_order_id__order_id__ref_stg_orders_", "stg_orders",
		"unique_customers_customer_id", "unique_orders_order_id", "unique_stg_orders_order_id",
	};
	Dbtd__Lineage *l = read_ok(OK_DIR);
	char *down = calloc(l->n_nodes, 1);
	size_t i, j, n = 0, grew = 1;

	assert_non_null(down);
	down[idx(l, "raw_orders")] = 1;
	while (grew) {
		grew = 0;
		for (i = 0; i < l->n_edges; i++)
			if (down[l->edges[i]->parent] && !down[l->edges[i]->child])
				down[l->edges[i]->child] = grew = 1;
	}
	for (i = 0; i < l->n_nodes; i++) {
		int listed = 0;

		for (j = 0; j < sizeof(dbt_ls) / sizeof(dbt_ls[0]); j++)
			listed |= strcmp(dbt_ls[j], l->nodes[i]->name) == 0;
		if (down[i] != listed)
			fail_msg("%s: downstream %d, dbt ls %d", l->nodes[i]->name, down[i], listed);
		n += down[i];
	}
	assert_int_equal(n, sizeof(dbt_ls) / sizeof(dbt_ls[0]));
	free(down);
	dbtd__lineage__free_unpacked(l, NULL);
}

/* Statuses and materializations of a passing build. */
static void
test_statuses_and_materializations(void **state)
{
	Dbtd__Lineage *l = read_ok(OK_DIR);
	size_t i;

	for (i = 0; i < l->n_nodes; i++) {
		const Dbtd__LineageNode *n = l->nodes[i];

		if (strcmp(n->resource_type, "test") == 0) {
			assert_string_equal(n->status, "pass");
			assert_string_equal(n->materialization, "test");
		} else if (strcmp(n->resource_type, "source") == 0) {
			assert_string_equal(n->status, ""); /* sources do not run */
			assert_string_equal(n->materialization, "");
			assert_true(n->execution_time == 0);
		} else if (strcmp(n->resource_type, "exposure") == 0) {
			assert_string_equal(n->status, "no-op");
			assert_string_equal(n->materialization, "");
		} else {
			assert_string_equal(n->status, "success");
			assert_true(n->execution_time > 0);
		}
	}
	assert_string_equal(by_name(l, "stg_orders")->materialization, "view");
	assert_string_equal(by_name(l, "stg_customers")->materialization, "view");
	assert_string_equal(by_name(l, "orders")->materialization, "table");
	assert_string_equal(by_name(l, "customers")->materialization, "table");
	assert_string_equal(by_name(l, "raw_orders")->materialization, "seed");
	assert_string_equal(by_name(l, "orders_snapshot")->materialization, "snapshot");
	dbtd__lineage__free_unpacked(l, NULL);
}

/* Two reads give the same bytes; the order is by unique_id. */
static void
test_deterministic(void **state)
{
	Dbtd__Lineage *a = read_ok(OK_DIR), *b = read_ok(OK_DIR);
	size_t na = dbtd__lineage__get_packed_size(a), nb = dbtd__lineage__get_packed_size(b);
	uint8_t *pa = malloc(na), *pb = malloc(nb);

	assert_int_equal(na, nb);
	dbtd__lineage__pack(a, pa);
	dbtd__lineage__pack(b, pb);
	assert_memory_equal(pa, pb, na);
	assert_string_equal(a->nodes[0]->unique_id, "exposure.jaffle_shop.customer_dashboard");
	assert_string_equal(a->nodes[a->n_nodes - 1]->unique_id,
	    "test.jaffle_shop.unique_stg_payments_payment_id.3744510712");
	free(pa);
	free(pb);
	dbtd__lineage__free_unpacked(a, NULL);
	dbtd__lineage__free_unpacked(b, NULL);
}

/* A failing build: the broken model errors, what depends on it is skipped. */
static void
test_failed_build(void **state)
{
	Dbtd__Lineage *l = read_ok(FAILED_DIR);

	check_shape(l);
	assert_int_equal(count_type(l, "model"), 7);
	assert_string_equal(by_name(l, "broken")->status, "error");
	assert_true(by_name(l, "broken")->execution_time > 0);
	assert_string_equal(by_name(l, "after_broken")->status, "skipped");
	assert_true(has_edge(l, "stg_orders", "broken"));
	assert_true(has_edge(l, "broken", "after_broken"));
	assert_string_equal(by_name(l, "orders")->status, "success");
	dbtd__lineage__free_unpacked(l, NULL);
}

/* No manifest: -ENOENT, and the reason says so. */
static void
test_missing_manifest(void **state)
{
	struct fixture *f = *state;
	char *why = read_fails(f->target, -ENOENT);

	assert_string_equal(why,
	    "target/manifest.json is missing (dbt did not get far enough to write it)");
	free(why);
	/* why is optional */
	{
		Dbtd__Lineage *l;

		assert_int_equal(lineage_read(f->target, &l, NULL), -ENOENT);
	}
}

/* A manifest cut in half: not valid JSON, where jansson itself says. */
static void
test_truncated_manifest(void **state)
{
	struct fixture *f = *state;
	char path[160], want[64], *why, *buf;
	json_error_t e;
	size_t len;

	buf = slurp(OK_DIR "/manifest.json", &len);
	spew(f->target, "manifest.json", buf, len / 2);
	free(buf);
	why = read_fails(f->target, -EBADMSG);
	assert_non_null(strstr(why, "target/manifest.json is not valid JSON: "));
	/* the position is the one a whole-file parse reports */
	snprintf(path, sizeof(path), "%s/manifest.json", f->target);
	assert_null(json_load_file(path, 0, &e));
	snprintf(want, sizeof(want), " at line %d column %d", e.line, e.column);
	if (strstr(why, want) == NULL)
		fail_msg("%s: wanted%s (%s)", why, want, e.text);
	free(why);
}

/* Valid JSON that is not a manifest, and an empty file. */
static void
test_not_a_manifest(void **state)
{
	static const char *const docs[] = {
		"{}", "{\"metadata\": {}, \"sources\": {}}", "[]", "\"nodes\"", "{\"nodes\": []}",
		"{\"nodes\": null}", "  42  ",
	};
	struct fixture *f = *state;
	char *why;
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		spew(f->target, "manifest.json", docs[i], strlen(docs[i]));
		why = read_fails(f->target, -EBADMSG);
		assert_string_equal(why, "target/manifest.json has no \"nodes\": not a dbt manifest");
		free(why);
	}
	spew(f->target, "manifest.json", "", 0);
	why = read_fails(f->target, -EBADMSG);
	assert_string_equal(why, "target/manifest.json is empty (dbt stopped while writing it)");
	free(why);
}

/*
 * Broken JSON where the reader walks the document itself and inside the
 * values jansson parses: line and column are those jansson reports for the
 * whole file (where the reader finds the error itself, at a multi-byte
 * token, it points at the token's first byte).
 */
static void
test_invalid_json_positions(void **state)
{
	static const struct {
		const char *doc, *why;
	} cases[] = {
		{ "{\"nodes\": {}} x", "end of file expected near 'x' at line 1 column 15" },
		{ "{\"nodes\": {},}", "string expected near '}' at line 1 column 14" },
		{ "{\"nodes\" {}}", "':' expected near '{' at line 1 column 10" },
		{ "{\"nodes\": {\n  \"a\": {\"x\": 1}\n  \"b\": {}}}",
		  "',' or '}' expected near '\"' at line 3 column 3" },
		{ "{\"nodes\": {\n  \"a\": {\"x\": tru}}}", "invalid token near 'tru' at line 2 column 16" },
		{ "{\"nodes\": {\"a\": [1, 2}}}", "']' expected near '}' at line 1 column 22" },
		{ "{\"nodes\": {", "string expected near end of file at line 1 column 11" },
		{ "{\"nodes\": {\"a\": \"\xff\"}}", "unable to decode byte 0xff near '\"' at line 1 column 17" },
		{ "{\"nodes\": {}, \"x\": [1,]}", "unexpected token near ']' at line 1 column 23" },
	};
	struct fixture *f = *state;
	char *why, want[200];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		spew(f->target, "manifest.json", cases[i].doc, strlen(cases[i].doc));
		why = read_fails(f->target, -EBADMSG);
		snprintf(want, sizeof(want), "target/manifest.json is not valid JSON: %s", cases[i].why);
		if (strcmp(why, want) != 0)
			fail_msg("case %zu: got \"%s\", wanted \"%s\"", i, why, want);
		free(why);
	}
}

/*
 * Entries that are not graph nodes, odd fields, duplicates and integers
 * beyond 64 bits (Python writes them) are tolerated.
 */
static void
test_lenient_entries(void **state)
{
	static const char doc[] =
	    "{\"nodes\": {"
	    " \"model.p.b\": {\"resource_type\": \"model\", \"name\": \"b\", \"config\": 7,"
	    "   \"depends_on\": {\"nodes\": [\"model.p.a\", \"model.p.a\", 3, \"model.p.gone\"]}},"
	    " \"model.p.a\": {\"resource_type\": \"model\", \"name\": \"a\"},"
	    " \"operation.p.hook\": {\"resource_type\": \"operation\"},"
	    " \"x\": [], \"y\": {\"name\": \"no type\"},"
	    " \"model.p.c\": {\"resource_type\": \"model\", \"name\": \"old c\"},"
	    " \"model.p.c\": {\"resource_type\": \"model\", \"name\": \"c\","
	    "   \"depends_on\": {\"nodes\": [\"source.p.s.t\"]}}},"
	    " \"sources\": {\"source.p.s.t\": {\"name\": \"t\","
	    "   \"meta\": {\"big\": 123456789012345678901234567890, \"neg\": -1e300}}},"
	    " \"exposures\": {\"e\": {\"resource_type\": \"model\"}}}";
	struct fixture *f = *state;
	Dbtd__Lineage *l;

	spew(f->target, "manifest.json", doc, sizeof(doc) - 1);
	l = read_ok(f->target);
	check_shape(l);
	assert_int_equal(l->n_nodes, 4);
	assert_string_equal(l->nodes[0]->unique_id, "model.p.a");
	assert_string_equal(l->nodes[2]->name, "c"); /* the later entry wins */
	assert_string_equal(l->nodes[3]->resource_type, "source");
	assert_string_equal(l->nodes[1]->materialization, "");
	assert_int_equal(l->n_edges, 2);
	assert_true(has_edge(l, "a", "b"));
	assert_true(has_edge(l, "t", "c"));
	dbtd__lineage__free_unpacked(l, NULL);
}

/* A broken run_results.json costs the statuses, not the graph. */
static void
test_corrupt_run_results(void **state)
{
	static const char *const bad[] = {
		"{\"results\": [{\"unique_id\": \"model.jaffle_shop.orders\", \"status\": \"success\"}",
		"not json", "{}", "{\"results\": {}}", "[]",
	};
	struct fixture *f = *state;
	Dbtd__Lineage *l;
	char *buf;
	size_t i, j, len;

	copy_file(OK_DIR "/manifest.json", f->target, "manifest.json");
	buf = slurp(OK_DIR "/run_results.json", &len);
	for (i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
		if (i == 0)
			spew(f->target, "run_results.json", buf, len / 2);
		else
			spew(f->target, "run_results.json", bad[i - 1], strlen(bad[i - 1]));
		l = read_ok(f->target);
		assert_int_equal(l->n_nodes, 33);
		assert_int_equal(l->n_edges, 36);
		for (j = 0; j < l->n_nodes; j++) {
			assert_string_equal(l->nodes[j]->status, "");
			assert_true(l->nodes[j]->execution_time == 0);
		}
		dbtd__lineage__free_unpacked(l, NULL);
	}
	free(buf);
}

/* Read target/ with the ok manifest and the run_results of step `step`. */
static Dbtd__Lineage *
read_step(struct fixture *f, const char *step)
{
	char src[256];

	copy_file(OK_DIR "/manifest.json", f->target, "manifest.json");
	snprintf(src, sizeof(src), STEPS_DIR "/%s_run_results.json", step);
	copy_file(src, f->target, "run_results.json");
	return read_ok(f->target);
}

/* `dbt seed` then `dbt run`: the last graph has the statuses of both. */
static void
test_merge_status(void **state)
{
	struct fixture *f = *state;
	Dbtd__Lineage *seed = read_step(f, "seed"), *run = read_step(f, "run"), *empty;
	Dbtd__LineageNode *tmp;
	size_t i;

	assert_string_equal(by_name(run, "raw_orders")->status, "");
	assert_string_equal(by_name(seed, "orders")->status, "");
	/* an older status never replaces a newer one */
	assert_int_equal(pb_set_str(&((Dbtd__LineageNode *)by_name(seed, "orders"))->status, "error"), 0);
	/* older need not be sorted */
	for (i = 0; i < seed->n_nodes / 2; i++) {
		tmp = seed->nodes[i];
		seed->nodes[i] = seed->nodes[seed->n_nodes - 1 - i];
		seed->nodes[seed->n_nodes - 1 - i] = tmp;
	}
	assert_int_equal(lineage_merge_status(run, seed), 0);
	assert_string_equal(by_name(run, "raw_orders")->status, "success");
	assert_true(by_name(run, "raw_orders")->execution_time ==
	    by_name(seed, "raw_orders")->execution_time);
	assert_string_equal(by_name(run, "raw_customers")->status, "success");
	assert_string_equal(by_name(run, "orders")->status, "success");
	assert_string_equal(by_name(run, "stg_orders")->status, "success");
	assert_string_equal(by_name(run, "unique_orders_order_id")->status, ""); /* no step ran it */
	assert_string_equal(by_name(run, "raw_orders_landing")->status, "");

	empty = calloc(1, sizeof(*empty));
	dbtd__lineage__init(empty);
	assert_int_equal(lineage_merge_status(run, empty), 0);
	assert_int_equal(lineage_merge_status(empty, run), 0);
	dbtd__lineage__free_unpacked(empty, NULL);
	dbtd__lineage__free_unpacked(seed, NULL);
	dbtd__lineage__free_unpacked(run, NULL);
}

/* A small deterministic PRNG (xorshift64*). */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* Mutate a copy of buf: byte flips, a cut, structural bytes, a deletion. */
static size_t
mutate(char *out, const char *buf, size_t len, uint64_t *s)
{
	static const char structural[] = "{}[]:,\"\\ 0-etn\n";
	size_t n = len, k, i, at;

	memcpy(out, buf, len);
	switch (rnd(s) % 5) {
	case 0: /* flip a few bytes */
		for (k = 1 + rnd(s) % 8; k > 0; k--)
			out[rnd(s) % n] ^= (char)(1u << (rnd(s) % 8));
		break;
	case 1: /* cut */
		n = rnd(s) % len;
		break;
	case 2: /* structural bytes in random places */
		for (k = 1 + rnd(s) % 4; k > 0; k--)
			out[rnd(s) % n] = structural[rnd(s) % (sizeof(structural) - 1)];
		break;
	case 3: /* delete a run of bytes */
		at = rnd(s) % n;
		k = 1 + rnd(s) % 64;
		if (at + k > n)
			k = n - at;
		memmove(out + at, out + at + k, n - at - k);
		n -= k;
		break;
	default: /* random bytes */
		at = rnd(s) % n;
		for (i = 0; i < 16 && at + i < n; i++)
			out[at + i] = (char)rnd(s);
		break;
	}
	return n;
}

/* 200 damaged manifests (and run_results): a graph or a clean error, no crash. */
static void
test_mutations(void **state)
{
	struct fixture *f = *state;
	char *m, *r, *out;
	size_t mlen, rlen, n, i, ok = 0;
	uint64_t seed = 0x9E3779B97F4A7C15ULL;

	m = slurp(OK_DIR "/manifest.json", &mlen);
	r = slurp(OK_DIR "/run_results.json", &rlen);
	out = malloc(mlen > rlen ? mlen : rlen);
	assert_non_null(out);
	for (i = 0; i < 200; i++) {
		Dbtd__Lineage *l = NULL;
		char *why = NULL;
		int rc;

		if (i % 4 == 3) { /* damage run_results.json instead */
			spew(f->target, "manifest.json", m, mlen);
			n = mutate(out, r, rlen, &seed);
			spew(f->target, "run_results.json", out, n);
		} else {
			n = mutate(out, m, mlen, &seed);
			spew(f->target, "manifest.json", out, n);
			spew(f->target, "run_results.json", r, rlen);
		}
		rc = lineage_read(f->target, &l, &why);
		if (rc == 0) {
			assert_non_null(l);
			assert_null(why);
			check_shape(l);
			ok++;
			dbtd__lineage__free_unpacked(l, NULL);
		} else {
			assert_int_equal(rc, -EBADMSG);
			assert_null(l);
			assert_non_null(why);
			assert_non_null(strstr(why, "target/manifest.json "));
			free(why);
		}
	}
	/* damaged run_results and damage inside strings still give graphs */
	assert_true(ok >= 50);
	free(out);
	free(m);
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nodes_by_type),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_downstream_matches_dbt_ls),
		cmocka_unit_test(test_statuses_and_materializations),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_failed_build),
		cmocka_unit_test_setup_teardown(test_missing_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_json_positions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lenient_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_run_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mutations, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
