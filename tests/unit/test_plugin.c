/* test_plugin.c - loading step plugins: accepted and refused ones. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "plugin.h"
#include "util.h"

/* Path of a test plugin built by make check. */
static char *
plugin_path(const char *name)
{
	return xasprintf("%s/%s.so", TEST_PLUGIN_DIR, name);
}

/* A well-formed plugin is accepted and found by its type. */
static void
test_good(void **state)
{
	struct plugin_set ps = { 0 };
	char *p = plugin_path("good");
	const struct plugin *pl;

	(void)state;
	assert_int_equal(plugin_load(&ps, p), 0);
	pl = plugins_find(&ps, "test-good");
	assert_non_null(pl);
	assert_string_equal(pl->desc->description, "a step that logs one line");
	assert_int_equal(ps.nrefused, 0);
	plugins_free(&ps);
	free(p);
}

/* Load path and expect a refusal whose reason contains want. */
static void
expect_refused(struct plugin_set *ps, const char *path, const char *want)
{
	assert_int_equal(plugin_load(ps, path), -EINVAL);
	assert_true(ps->nrefused > 0);
	assert_string_equal(ps->refused[ps->nrefused - 1].path, path);
	if (strstr(ps->refused[ps->nrefused - 1].reason, want) == NULL)
		fail_msg("reason \"%s\" does not mention \"%s\"",
		         ps->refused[ps->nrefused - 1].reason, want);
}

/* An unknown ABI major version is refused, naming the versions. */
static void
test_wrong_abi(void **state)
{
	struct plugin_set ps = { 0 };
	char *p = plugin_path("wrong-abi");

	(void)state;
	expect_refused(&ps, p, "built for step ABI 2.0");
	assert_null(plugins_find(&ps, "test-wrong-abi"));
	plugins_free(&ps);
	free(p);
}

/* A shared object without the descriptor symbol is refused. */
static void
test_missing_symbol(void **state)
{
	struct plugin_set ps = { 0 };
	char *p = plugin_path("no-symbol");

	(void)state;
	expect_refused(&ps, p, "no symbol dbtd_step_plugin_v1");
	assert_int_equal(ps.n, 0);
	plugins_free(&ps);
	free(p);
}

/* A second plugin with the same step type is refused, naming the first. */
static void
test_duplicate(void **state)
{
	struct plugin_set ps = { 0 };
	char *a = plugin_path("dup-a"), *b = plugin_path("dup-b");

	(void)state;
	assert_int_equal(plugin_load(&ps, a), 0);
	expect_refused(&ps, b, "duplicate step type \"test-dup\"");
	assert_non_null(strstr(ps.refused[0].reason, a));
	assert_int_equal(ps.n, 1);
	plugins_free(&ps);
	free(a);
	free(b);
}

/* A file that is not a shared object is refused with dlopen's reason. */
static void
test_not_shared_object(void **state)
{
	struct plugin_set ps = { 0 };
	char dir[] = "/tmp/dbtd-test-plugin-XXXXXX";
	char *p;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	p = xasprintf("%s/notes.so", dir);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("this is not an ELF file\n", f);
	fclose(f);
	expect_refused(&ps, p, "cannot load");
	plugins_free(&ps);
	rm_rf(dir);
	free(p);
}

/* Descriptor flags: read when the descriptor's size covers them, else 0. */
static void
test_flags(void **state)
{
	struct plugin_set ps = { 0 };
	char *good = plugin_path("good"), *always = plugin_path("always");
	char *old = plugin_path("old-abi");

	(void)state;
	assert_int_equal(plugin_load(&ps, good), 0);
	assert_int_equal(plugin_load(&ps, always), 0);
	assert_int_equal(plugin_load(&ps, old), 0);
	assert_int_equal(plugin_flags(plugins_find(&ps, "test-good")), 0);
	assert_int_equal(plugin_flags(plugins_find(&ps, "test-always")), DBTD_STEP_RUN_ALWAYS);
	/* a 1.0 descriptor ends before flags: what lies there is not its flags */
	assert_int_equal(plugins_find(&ps, "test-old-abi")->desc->abi_minor, 0);
	assert_int_equal(plugin_flags(plugins_find(&ps, "test-old-abi")), 0);
	plugins_free(&ps);
	free(good);
	free(always);
	free(old);
}

/* A 1.0 descriptor is accepted by this (newer minor) host. */
static void
test_older_minor_loads(void **state)
{
	struct plugin_set ps = { 0 };
	char *old = plugin_path("old-abi");

	(void)state;
	assert_int_equal(plugin_load(&ps, old), 0);
	assert_int_equal(ps.nrefused, 0);
	plugins_free(&ps);
	free(old);
}

/* Loading a directory goes on past refusals and loads the good ones. */
static void
test_dir(void **state)
{
	struct plugin_set ps = { 0 };
	char dir[] = "/tmp/dbtd-test-plugin-XXXXXX";
	const char *names[] = { "good", "wrong-abi", "no-symbol", "dup-a", "dup-b" };

	(void)state;
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < 5; i++) {
		char *src = plugin_path(names[i]), *dst = xasprintf("%s/%s.so", dir, names[i]);
		assert_int_equal(symlink(src, dst), 0);
		free(src);
		free(dst);
	}
	assert_int_equal(plugins_load_dir(&ps, dir), 2);
	assert_int_equal(ps.nrefused, 3);
	assert_string_equal(ps.dir, dir);
	assert_non_null(plugins_find(&ps, "test-good"));
	assert_non_null(plugins_find(&ps, "test-dup"));
	plugins_free(&ps);
	rm_rf(dir);
	assert_int_equal(plugins_load_dir(&ps, "/nonexistent/dbtd/plugins"), -ENOENT);
	assert_string_equal(ps.dir, "/nonexistent/dbtd/plugins"); /* plugin list shows it */
	plugins_free(&ps);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_wrong_abi),
		cmocka_unit_test(test_missing_symbol),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_not_shared_object),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_older_minor_loads),
		cmocka_unit_test(test_dir),
	};
	log_init(0);
	return cmocka_run_group_tests_name("plugin", tests, NULL, NULL);
}
