/*
 * test_store_format.c - the store's format record and migrations: a new
 * store, a format-1 store (as dbtd 0.1.0 wrote it) migrated with a backup,
 * a newer store refused without a write, failed and resumed migrations,
 * and ids that are never given out twice.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
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

#include "store.h"
#include "store_format.h"
#include "util.h"

struct fixture {
	char dir[64];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/dbtd-test-format-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	rm_rf(f->dir);
	free(f);
	return 0;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Put a packed message under an 8-byte id key of database db (raw LMDB). */
static void
raw_put(MDB_txn *txn, const char *db, uint64_t id, const ProtobufCMessage *msg)
{
	MDB_dbi dbi;
	uint8_t key[8], buf[256];
	MDB_val k = { 8, key }, v = { 0, buf };

	assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
	put_be64(key, id);
	v.mv_size = protobuf_c_message_pack(msg, buf);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

/*
 * A store as dbtd 0.1.0 left it (format 1: no "meta"): projects 1, 2 and 5
 * (3 and 4 were removed), runs 1 to 3.
 */
static void
make_format1(const char *dir)
{
	static const char *const dbs[] = {
		"projects", "environments", "jobs", "project_names", "environment_names",
		"job_names", "runs", "runs_active", "logs", "runs_by_job", "runs_by_status",
		"runs_by_trigger", "runs_by_branch", "lineage", "artifacts",
	};
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	Dbtd__Project p = DBTD__PROJECT__INIT;
	Dbtd__Run r = DBTD__RUN__INIT;

	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	mdb_env_set_mapsize(env, 1u << 26);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++)
		assert_int_equal(mdb_dbi_open(txn, dbs[i], MDB_CREATE, &dbi), 0);
	for (uint64_t id = 1; id <= 5; id++) {
		if (id == 3 || id == 4)
			continue;
		p.id = id;
		p.name = (char *)"p";
		p.repo = (char *)"/srv/git/shop";
		raw_put(txn, "projects", id, &p.base);
	}
	for (uint64_t id = 1; id <= 3; id++) {
		r.id = id;
		r.job = (char *)"nightly";
		r.status = DBTD__RUN_STATUS__RUN_COMPLETED;
		raw_put(txn, "runs", id, &r.base);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* The bytes of dir/name, malloc'd, with their count in *len. */
static uint8_t *
slurp(const char *dir, const char *name, size_t *len)
{
	char path[160];
	struct stat sb;
	uint8_t *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	assert_int_equal(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

static int
exists(const char *dir, const char *name)
{
	char path[160];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &sb) == 0;
}

static uint64_t
add_project(struct store *st, const char *name)
{
	Dbtd__Project p = DBTD__PROJECT__INIT;

	p.name = (char *)name;
	p.repo = (char *)"/srv/git/x";
	assert_int_equal(store_obj_add(st, STORE_PROJECT, &p.base, name, &p.id), 0);
	return p.id;
}

/* A new store gets the current format, this dbtd as writer, a creation time. */
static void
test_new_store(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	Dbtd__StoreFormat *fmt;

	assert_int_equal(store_open(&st, f->dir, NULL), 0);
	assert_int_equal(store_format_info(st, &fmt), 0);
	assert_int_equal(fmt->format, STORE_FORMAT_CURRENT);
	assert_string_equal(fmt->written_by, "dbtd " PACKAGE_VERSION);
	assert_true(fmt->created_at_ms > 1700000000000LL);
	assert_int_equal(fmt->migrated_at_ms, 0);
	dbtd__store_format__free_unpacked(fmt, NULL);
	store_close(st);
	assert_false(exists(f->dir, "backup-format-1"));
}

/* Removing the newest object does not free its id (ids were "last + 1"). */
static void
test_ids_not_reused(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	Dbtd__Run r = DBTD__RUN__INIT;
	uint64_t a, b, c;

	assert_int_equal(store_open(&st, f->dir, NULL), 0);
	a = add_project(st, "a");
	b = add_project(st, "tmp");
	assert_int_equal(store_obj_remove(st, STORE_PROJECT, b, "tmp"), 0);
	c = add_project(st, "other");
	assert_true(c > b && b > a);
	/* also across a reopen */
	store_close(st);
	assert_int_equal(store_open(&st, f->dir, NULL), 0);
	assert_int_equal(store_obj_remove(st, STORE_PROJECT, c, "other"), 0);
	assert_true(add_project(st, "again") > c);
	r.job = (char *)"j";
	assert_int_equal(store_run_create(st, &r), 0);
	assert_int_equal(r.id, 1);
	store_close(st);
}

/* Format 1 → 2: a backup first, the counters past every stored id, the record. */
static void
test_migrate_from_format1(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	Dbtd__StoreFormat *fmt;
	Dbtd__Run r = DBTD__RUN__INIT;
	Dbtd__Project *p;
	char backup[96];

	make_format1(f->dir);
	assert_int_equal(store_format_read(f->dir, &fmt), 0);
	assert_null(fmt); /* format 1: no record */
	/* an artifact blob, as dbtd keeps them: blobs/xx/<sha256> */
	snprintf(backup, sizeof(backup), "%s/blobs/ab", f->dir);
	assert_int_equal(mkdir_p(backup, 0700), 0);
	snprintf(backup, sizeof(backup), "%s/blobs/ab/ab01", f->dir);
	{
		FILE *bf = fopen(backup, "w");
		assert_non_null(bf);
		fputs("manifest", bf);
		fclose(bf);
	}

	assert_int_equal(store_open(&st, f->dir, NULL), 0);
	assert_int_equal(store_format_info(st, &fmt), 0);
	assert_int_equal(fmt->format, 2);
	assert_int_equal(fmt->migrated_from, 1);
	assert_int_equal(fmt->migrating_from, 0);
	assert_true(fmt->migrated_at_ms > 1700000000000LL);
	assert_int_equal(fmt->created_at_ms, 0); /* not known for a format-1 store */
	dbtd__store_format__free_unpacked(fmt, NULL);
	/* everything is still there */
	assert_int_equal(store_obj_get(st, STORE_PROJECT, 5, (ProtobufCMessage **)&p), 0);
	assert_string_equal(p->repo, "/srv/git/shop");
	dbtd__project__free_unpacked(p, NULL);
	/* new ids are past the old ones */
	assert_int_equal(add_project(st, "new"), 6);
	r.job = (char *)"j";
	assert_int_equal(store_run_create(st, &r), 0);
	assert_int_equal(r.id, 4);
	store_close(st);

	/* the backup is the format-1 store as it was: a store of its own */
	assert_true(exists(f->dir, "backup-format-1/data.mdb"));
	assert_false(exists(f->dir, "backup-format-1.tmp"));
	/* private like data.mdb (it holds the same secrets), with the blobs */
	{
		struct stat sb;
		snprintf(backup, sizeof(backup), "%s/backup-format-1/data.mdb", f->dir);
		assert_int_equal(stat(backup, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}
	assert_true(exists(f->dir, "backup-format-1/blobs/ab/ab01"));
	snprintf(backup, sizeof(backup), "%s/backup-format-1", f->dir);
	assert_int_equal(store_format_read(backup, &fmt), 0);
	assert_null(fmt);

	/* opening again migrates nothing and keeps the backup */
	assert_int_equal(store_open(&st, f->dir, NULL), 0);
	store_close(st);
	assert_true(exists(f->dir, "backup-format-1/data.mdb"));
}

/*
 * After an upgrade, dbtd 0.1.0 started on the store adds objects with
 * "last key + 1" and does not move the counters: the next id is still past
 * everything stored.
 */
static void
test_counters_after_rollback(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	MDB_env *env;
	MDB_txn *txn;
	Dbtd__Project p = DBTD__PROJECT__INIT;

	assert_int_equal(store_open(&st, f->dir, NULL), 0);
	assert_int_equal(add_project(st, "a"), 1);
	store_close(st);
	/* what 0.1.0 would do: put project 2 and 3 without touching "meta" */
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	mdb_env_set_mapsize(env, STORE_MAP_SIZE);
	assert_int_equal(mdb_env_open(env, f->dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	p.name = (char *)"old";
	raw_put(txn, "projects", 2, &p.base);
	raw_put(txn, "projects", 3, &p.base);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	assert_int_equal(store_open(&st, f->dir, NULL), 0);
	assert_int_equal(add_project(st, "b"), 4);
	store_close(st);
}

/* Overwrite the format record of the store in dir with format/writer. */
static void
claim_format(const char *dir, uint32_t format, const char *writer)
{
	MDB_env *env;
	MDB_txn *txn;
	Dbtd__StoreFormat fmt = DBTD__STORE_FORMAT__INIT;

	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, STORE_MAX_DBS);
	mdb_env_set_mapsize(env, STORE_MAP_SIZE);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	fmt.format = format;
	fmt.written_by = (char *)writer;
	assert_int_equal(store_format_put(txn, &fmt), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* A store of a newer format is refused, naming both, and not written. */
static void
test_newer_refused_untouched(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	uint8_t *before, *after;
	size_t nb, na;
	char *why = NULL;

	assert_int_equal(store_open(&st, f->dir, NULL), 0);
	add_project(st, "a");
	store_close(st);
	claim_format(f->dir, 99, "dbtd 9.9.9");
	before = slurp(f->dir, "data.mdb", &nb);

	assert_int_equal(store_open(&st, f->dir, &why), STORE_ENEWER);
	assert_non_null(why);
	assert_non_null(strstr(why, "format 99"));
	assert_non_null(strstr(why, "dbtd 9.9.9"));
	assert_non_null(strstr(why, "dbtd " PACKAGE_VERSION));
	assert_non_null(strstr(why, "Nothing was changed"));
	free(why);

	after = slurp(f->dir, "data.mdb", &na);
	assert_int_equal(na, nb);
	assert_memory_equal(after, before, nb);
	assert_false(exists(f->dir, "backup-format-99"));
	free(before);
	free(after);
}

static int step_ok_calls;

/* A test step that writes a marker key "step<from>" into database "test". */
static int
mark(MDB_txn *txn, uint32_t from)
{
	MDB_dbi dbi;
	char key[16];
	MDB_val k = { 0, key }, v = { 1, (void *)"x" };

	step_ok_calls++;
	snprintf(key, sizeof(key), "step%u", from);
	k.mv_size = strlen(key);
	if (mdb_dbi_open(txn, "test", MDB_CREATE, &dbi) || mdb_put(txn, dbi, &k, &v, 0))
		return -EIO;
	return 0;
}

static int
step2_ok(MDB_txn *txn, char *done, size_t n)
{
	snprintf(done, n, "marked");
	return mark(txn, 2);
}

/* A step that writes, then fails: none of its writes may stay. */
static int
step2_fails(MDB_txn *txn, char *done, size_t n)
{
	(void)done; (void)n;
	mark(txn, 2);
	return -ENOSPC;
}

static int
step1_fails(MDB_txn *txn, char *done, size_t n)
{
	(void)done; (void)n;
	mark(txn, 1);
	return -EIO;
}

static int
has_marker(const char *dir, const char *name)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(name), (void *)name }, v;
	int found = 0;

	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, STORE_MAX_DBS);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	if (mdb_dbi_open(txn, "test", 0, &dbi) == 0 && mdb_get(txn, dbi, &k, &v) == 0)
		found = 1;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return found;
}

/* A first step that fails leaves the format-1 store exactly as it was. */
static void
test_failed_first_step_untouched(void **state)
{
	struct fixture *f = *state;
	const struct store_migration tab[] = { { 1, "fail", step1_fails } };
	uint8_t *before, *after;
	size_t nb, na;
	char *why = NULL;
	Dbtd__StoreFormat *fmt;

	make_format1(f->dir);
	before = slurp(f->dir, "data.mdb", &nb);
	assert_int_equal(store_format_migrate(f->dir, tab, 1, 2, &why), -EIO);
	assert_non_null(strstr(why, "migration 1→2 (fail) failed"));
	assert_non_null(strstr(why, "left at format 1, as it was"));
	free(why);
	after = slurp(f->dir, "data.mdb", &na);
	assert_int_equal(na, nb);
	assert_memory_equal(after, before, nb);
	assert_int_equal(store_format_read(f->dir, &fmt), 0);
	assert_null(fmt);
	free(before);
	free(after);
}

/*
 * 1 → 2 → 3 where 2 → 3 fails: the store stays at 2 (its step committed),
 * marked as migrating from 1, without the failed step's writes.  The next
 * start resumes at 2 without a new backup, and on success keeps the
 * format-1 backup (the store as the user had it).
 */
static void
test_failed_step_then_resume(void **state)
{
	struct fixture *f = *state;
	/* the first step is the real 1 → 2 one: the id counters */
	const struct store_migration bad[] = {
		{ 1, "counters", store_format_counters }, { 2, "mark", step2_fails },
	};
	const struct store_migration good[] = {
		{ 1, "counters", store_format_counters }, { 2, "mark", step2_ok },
	};
	Dbtd__StoreFormat *fmt;
	char *why = NULL;

	make_format1(f->dir);
	assert_int_equal(store_format_migrate(f->dir, bad, 2, 3, &why), -ENOSPC);
	assert_non_null(strstr(why, "left at format 2"));
	free(why);
	why = NULL;
	assert_int_equal(store_format_read(f->dir, &fmt), 0);
	assert_int_equal(fmt->format, 2);
	assert_int_equal(fmt->migrating_from, 1);
	dbtd__store_format__free_unpacked(fmt, NULL);
	assert_false(has_marker(f->dir, "step2"));
	assert_true(exists(f->dir, "backup-format-1/data.mdb"));

	step_ok_calls = 0;
	assert_int_equal(store_format_migrate(f->dir, good, 2, 3, &why), 0);
	assert_null(why);
	assert_int_equal(step_ok_calls, 1); /* only 2 → 3 ran again */
	assert_true(has_marker(f->dir, "step2"));
	assert_int_equal(store_format_read(f->dir, &fmt), 0);
	assert_int_equal(fmt->format, 3);
	assert_int_equal(fmt->migrating_from, 0);
	assert_int_equal(fmt->migrated_from, 1);
	dbtd__store_format__free_unpacked(fmt, NULL);
	assert_true(exists(f->dir, "backup-format-1/data.mdb"));
	assert_false(exists(f->dir, "backup-format-2"));
}

/* A later successful migration removes the backup of the one before. */
static void
test_next_migration_drops_old_backup(void **state)
{
	struct fixture *f = *state;
	const struct store_migration tab[] = {
		{ 1, "counters", store_format_counters }, { 2, "mark", step2_ok },
	};
	char *why = NULL;

	make_format1(f->dir);
	assert_int_equal(store_format_migrate(f->dir, tab, 2, 2, &why), 0);
	assert_true(exists(f->dir, "backup-format-1/data.mdb"));
	assert_int_equal(store_format_migrate(f->dir, tab, 2, 3, &why), 0);
	assert_true(exists(f->dir, "backup-format-2/data.mdb"));
	assert_false(exists(f->dir, "backup-format-1"));
}

/* A format record that does not decode: a clear error, nothing written. */
static void
test_garbled_record(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_val k = { 6, (void *)"format" }, v = { 3, (void *)"\xff\xff\xff" };
	char *why = NULL;

	assert_int_equal(store_open(&st, f->dir, NULL), 0);
	store_close(st);
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, STORE_MAX_DBS);
	mdb_env_set_mapsize(env, STORE_MAP_SIZE);
	assert_int_equal(mdb_env_open(env, f->dir, MDB_NOTLS, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(store_open(&st, f->dir, &why), -EBADMSG);
	assert_non_null(strstr(why, "format record does not decode"));
	free(why);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_not_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_format1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters_after_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_refused_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_first_step_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_step_then_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_migration_drops_old_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbled_record, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
