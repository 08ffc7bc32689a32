/* store_check.c - `dbtd check` (see store_check.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logrec.h"
#include "names.h"
#include "store_check.h"
#include "store_format.h"

/* A database whose records are checked, and how. */
struct checked_db {
	const char *db;     /* LMDB name */
	const char *count;  /* name in the report's counts */
	const ProtobufCMessageDescriptor *desc; /* records are this message; NULL: log chunks */
};

static const struct checked_db checked[] = {
	{ "projects", "projects", &dbtd__project__descriptor },
	{ "environments", "environments", &dbtd__environment__descriptor },
	{ "jobs", "jobs", &dbtd__job__descriptor },
	{ "runs", "runs", &dbtd__run__descriptor },
	{ "logs", "log_chunks", NULL },
	{ "artifacts", "artifacts", &dbtd__artifact__descriptor },
	{ "lineage", "lineage", &dbtd__lineage__descriptor },
};
#define NCHECKED (sizeof(checked) / sizeof(checked[0]))

/* Does a stored log chunk decode as log records? */
static int
chunk_ok(const MDB_val *v)
{
	size_t off = 0;
	struct logrec rec;
	int r;

	while ((r = logrec_next(v->mv_data, v->mv_size, &off, &rec)) == 1)
		;
	return r == 0;
}

/* Count and decode the records of one database; problems are appended. */
static int
check_db(MDB_txn *txn, const struct checked_db *c, size_t *count, json_t *problems)
{
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t bad = 0;
	int rc = mdb_dbi_open(txn, c->db, 0, &dbi);

	*count = 0;
	if (rc == MDB_NOTFOUND)
		return 0; /* a store that never had one */
	if (rc == 0)
		rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return store_format_map_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int ok;
		(*count)++;
		if (c->desc) {
			ProtobufCMessage *m = protobuf_c_message_unpack(c->desc, NULL, v.mv_size,
			                                                v.mv_data);
			ok = m != NULL;
			if (m)
				protobuf_c_message_free_unpacked(m, NULL);
		} else {
			ok = chunk_ok(&v);
		}
		if (!ok && bad++ < 10) {
			char msg[160];
			uint64_t id = 0;
			for (size_t i = 0; i < 8 && i < k.mv_size; i++)
				id = id << 8 | ((const uint8_t *)k.mv_data)[i];
			snprintf(msg, sizeof(msg), "%s: the record with key %llu... does not decode",
			         c->db, (unsigned long long)id);
			json_array_append_new(problems, json_string(msg));
		}
	}
	mdb_cursor_close(cur);
	if (bad > 10) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%s: %zu records in all do not decode", c->db, bad);
		json_array_append_new(problems, json_string(msg));
	}
	return rc == MDB_NOTFOUND ? 0 : store_format_map_rc(rc);
}

/* The id counters (format 2), as the next id each kind gets. */
static void
next_ids(MDB_txn *txn, json_t *obj)
{
	static const char *const kinds[] = { "projects", "environments", "jobs", "runs" };
	MDB_dbi meta;

	if (mdb_dbi_open(txn, "meta", 0, &meta) != 0)
		return;
	for (size_t i = 0; i < 4; i++) {
		char key[32];
		MDB_val k, v;
		snprintf(key, sizeof(key), "next_id.%s", kinds[i]);
		k.mv_size = strlen(key);
		k.mv_data = key;
		if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 8) {
			uint64_t n = 0;
			for (int j = 0; j < 8; j++)
				n = n << 8 | ((const uint8_t *)v.mv_data)[j];
			json_object_set_new(obj, kinds[i], json_integer((json_int_t)n));
		}
	}
}

/* The backup-format-N directories in dir. */
static json_t *
backups(const char *dir)
{
	json_t *a = json_array();
	DIR *dp = opendir(dir);
	struct dirent *de;

	while (dp && (de = readdir(dp)) != NULL)
		if (strncmp(de->d_name, "backup-format-", 14) == 0)
			json_array_append_new(a, json_string(de->d_name));
	if (dp)
		closedir(dp);
	return a;
}

/* One line "label  value" of the text report. */
static void
line(const char *label, const char *value)
{
	printf("%-16s %s\n", label, value);
}

/* The text report of r. */
static void
print_text(json_t *r)
{
	char buf[512], ts[40];
	int64_t format = json_integer_value(json_object_get(r, "format"));
	int64_t created = json_integer_value(json_object_get(r, "created_at_ms"));
	int64_t migrated = json_integer_value(json_object_get(r, "migrated_at_ms"));
	json_t *counts = json_object_get(r, "counts"), *ids = json_object_get(r, "next_ids");
	json_t *v, *problems = json_object_get(r, "problems");
	const char *key;
	size_t i, off = 0;

	line("state directory", json_string_value(json_object_get(r, "state_dir")));
	snprintf(buf, sizeof(buf), "%lld (this dbtd reads formats %d to %d%s)", (long long)format,
	         STORE_FORMAT_OLDEST, STORE_FORMAT_CURRENT,
	         format < STORE_FORMAT_CURRENT ? "; its next start migrates the store" : "");
	line("store format", buf);
	v = json_object_get(r, "written_by");
	line("written by", json_is_string(v) ? json_string_value(v) : "dbtd 0.1.0 or earlier");
	line("created", created ? format_rfc3339(created, ts, sizeof(ts))
	                        : "not recorded (before format 2)");
	if (migrated) {
		snprintf(buf, sizeof(buf), "%s, from format %lld", format_rfc3339(migrated, ts, sizeof(ts)),
		         (long long)json_integer_value(json_object_get(r, "migrated_from")));
		line("last migrated", buf);
	} else {
		line("last migrated", "never");
	}
	buf[0] = '\0';
	json_object_foreach(counts, key, v)
		off += (size_t)snprintf(buf + off, off < sizeof(buf) ? sizeof(buf) - off : 0,
		                        "%s%s %lld", off ? ", " : "", key,
		                        (long long)json_integer_value(v));
	line("holds", buf);
	off = 0;
	buf[0] = '\0';
	json_object_foreach(ids, key, v)
		off += (size_t)snprintf(buf + off, off < sizeof(buf) ? sizeof(buf) - off : 0,
		                        "%s%s %lld", off ? ", " : "", key,
		                        (long long)json_integer_value(v));
	line("next ids", off ? buf : "from the largest ids stored (format 1)");
	off = 0;
	buf[0] = '\0';
	json_array_foreach(json_object_get(r, "backups"), i, v)
		off += (size_t)snprintf(buf + off, off < sizeof(buf) ? sizeof(buf) - off : 0,
		                        "%s%s", off ? ", " : "", json_string_value(v));
	line("backups", off ? buf : "none");
	if (json_array_size(problems) == 0) {
		line("records", "every record decodes");
		return;
	}
	json_array_foreach(problems, i, v)
		line("problem", json_string_value(v));
}

int
store_check(const char *dir, int json)
{
	Dbtd__StoreFormat *f = NULL;
	json_t *r = NULL, *counts, *problems;
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	int rc, status = 1;

	rc = store_format_read(dir, &f);
	if (rc == -ENOENT) {
		fprintf(stderr, "dbtd check: no store in %s\n", dir);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "dbtd check: cannot read the format of the store in %s: %s\n", dir,
		        rc == -EBADMSG ? "its format record does not decode" : strerror(-rc));
		return 1;
	}
	if (f && f->format > STORE_FORMAT_CURRENT) {
		fprintf(stderr, "dbtd check: the store in %s has format %u, written by %s; this %s "
		        "reads formats %d to %d\n", dir, f->format, f->written_by,
		        store_format_writer(), STORE_FORMAT_OLDEST, STORE_FORMAT_CURRENT);
		goto out;
	}
	r = json_object();
	counts = json_object();
	problems = json_array();
	json_object_set_new(r, "state_dir", json_string(dir));
	json_object_set_new(r, "format", json_integer(f ? f->format : 1));
	json_object_set_new(r, "max_format", json_integer(STORE_FORMAT_CURRENT));
	json_object_set_new(r, "written_by", f ? json_string(f->written_by) : json_null());
	json_object_set_new(r, "created_at_ms", json_integer(f ? f->created_at_ms : 0));
	json_object_set_new(r, "migrated_at_ms", json_integer(f ? f->migrated_at_ms : 0));
	json_object_set_new(r, "migrated_from", json_integer(f ? f->migrated_from : 0));
	json_object_set_new(r, "counts", counts);
	json_object_set_new(r, "problems", problems);
	if (f && f->migrating_from) {
		char msg[128];
		snprintf(msg, sizeof(msg), "a migration from format %u did not finish; the next "
		         "start resumes it", f->migrating_from);
		json_array_append_new(problems, json_string(msg));
	}
	rc = store_format_env_open(dir, MDB_RDONLY, &env);
	if (rc == 0)
		rc = store_format_map_rc(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	if (rc < 0) {
		fprintf(stderr, "dbtd check: cannot open the store in %s: %s\n", dir, strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < NCHECKED; i++) {
		size_t n;
		rc = check_db(txn, &checked[i], &n, problems);
		if (rc < 0) {
			fprintf(stderr, "dbtd check: cannot read %s in %s: %s\n", checked[i].db, dir,
			        strerror(-rc));
			goto out;
		}
		json_object_set_new(counts, checked[i].count, json_integer((json_int_t)n));
	}
	json_object_set_new(r, "next_ids", json_object());
	next_ids(txn, json_object_get(r, "next_ids"));
	json_object_set_new(r, "backups", backups(dir));
	if (json) {
		char *s = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			puts(s);
		free(s);
	} else {
		print_text(r);
	}
	status = json_array_size(problems) ? 1 : 0;
out:
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	if (f)
		dbtd__store_format__free_unpacked(f, NULL);
	json_decref(r);
	return status;
}
