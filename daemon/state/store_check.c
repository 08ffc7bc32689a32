/* store_check.c - `dbtd check` (see store_check.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "names.h"
#include "store_check.h"
#include "store_file.h"
#include "store_format.h"
#include "store_walk.h"

/* The report's counts: its name, and the database counted. */
static const struct { const char *count, *db; } counted[] = {
	{ "projects", "projects" }, { "environments", "environments" }, { "jobs", "jobs" },
	{ "runs", "runs" }, { "log_chunks", "logs" }, { "artifacts", "artifacts" },
	{ "lineage", "lineage" },
};

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
		line("records", "every record of every database reads and agrees with the others");
		return;
	}
	json_object_foreach(json_object_get(r, "databases"), key, v) {
		json_int_t bad = json_integer_value(json_object_get(v, "damaged"));
		if (bad == 0)
			continue;
		snprintf(buf, sizeof(buf), "%s: %lld of %lld records", key, (long long)bad,
		         (long long)json_integer_value(json_object_get(v, "records")));
		line("damaged", buf);
	}
	json_array_foreach(problems, i, v)
		line("problem", json_string_value(v));
	printf("\nThe store is damaged. Stop dbtd and restore the state directory from a backup; "
	       "dbtd serves what still reads, and says so for what does not.\n");
}

/* The report of a file dbtd cannot open as a store: why, as text or JSON. */
static int
refuse(const char *dir, const char *why, int json)
{
	if (json) {
		json_t *r = json_pack("{sssbs[s]}", "state_dir", dir, "opened", 0, "problems", why);
		char *s = r ? json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
		if (s)
			puts(s);
		free(s);
		json_decref(r);
	}
	fprintf(stderr, "dbtd check: %s\n", why);
	return 1;
}

/*
 * Read what the check reads outside its walk (the main database, the format
 * record, the id counters) once in a child first: a damaged page there can
 * make LMDB abort or a read fault, which must end the child, not the check.
 * 0 when the child got through; else why not, in msg.
 */
static int
dry_run(const char *dir, char *msg, size_t len)
{
	pid_t pid;
	int status = 0;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return 0; /* no child: read them here, unguarded as before */
	if (pid == 0) {
		Dbtd__StoreFormat *f = NULL;
		MDB_env *env;
		MDB_txn *txn;
		char *why = NULL;
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		alarm(60); /* never hang */
		if (store_file_probe(dir, &why) == 0 && store_format_read(dir, &f) == 0 &&
		    store_format_env_open(dir, MDB_RDONLY, &env) == 0 &&
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
			json_t *ids = json_object();
			next_ids(txn, ids);
		}
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status)) {
		snprintf(msg, len, "%s/data.mdb is damaged: reading its main database or its format "
		         "record stopped the check (%s); restore the state directory from a backup",
		         dir, strsignal(WTERMSIG(status)));
		return -1;
	}
	return 0;
}

int
store_check(const char *dir, int json)
{
	Dbtd__StoreFormat *f = NULL;
	json_t *r = NULL, *counts, *problems, *databases;
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	char *why = NULL;
	char msg[512];
	long bad;
	int rc, status = 1;

	if (dry_run(dir, msg, sizeof(msg)) < 0)
		return refuse(dir, msg, json);
	rc = store_file_probe(dir, &why);
	if (rc == -ENOENT) {
		fprintf(stderr, "dbtd check: no store in %s\n", dir);
		return 1;
	}
	if (rc < 0) {
		status = refuse(dir, why ? why : strerror(-rc), json);
		free(why);
		return status;
	}
	rc = store_format_read(dir, &f);
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "cannot read the format of the store in %s: %s", dir,
		         rc == -EBADMSG ? "its format record does not decode" :
		         rc == STORE_EDAMAGED ? "a page of data.mdb is damaged" : strerror(-rc));
		return refuse(dir, msg, json);
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
	databases = json_object();
	json_object_set_new(r, "state_dir", json_string(dir));
	json_object_set_new(r, "opened", json_true());
	json_object_set_new(r, "format", json_integer(f ? f->format : 1));
	json_object_set_new(r, "max_format", json_integer(STORE_FORMAT_CURRENT));
	json_object_set_new(r, "written_by", f ? json_string(f->written_by) : json_null());
	json_object_set_new(r, "created_at_ms", json_integer(f ? f->created_at_ms : 0));
	json_object_set_new(r, "migrated_at_ms", json_integer(f ? f->migrated_at_ms : 0));
	json_object_set_new(r, "migrated_from", json_integer(f ? f->migrated_from : 0));
	json_object_set_new(r, "counts", counts);
	json_object_set_new(r, "problems", problems);
	if (f && f->migrating_from) {
		snprintf(msg, sizeof(msg), "a migration from format %u did not finish; the next "
		         "start resumes it", f->migrating_from);
		json_array_append_new(problems, json_string(msg));
	}
	/* every record of every database, in a reader process that may die of a damaged page */
	bad = store_walk(dir, databases, problems);
	if (bad < 0) {
		fprintf(stderr, "dbtd check: cannot read the store in %s: %s\n", dir,
		        strerror((int)-bad));
		goto out;
	}
	for (size_t i = 0; i < sizeof(counted) / sizeof(counted[0]); i++) {
		json_t *d = json_object_get(databases, counted[i].db);
		json_object_set_new(counts, counted[i].count,
		                    json_integer(d ? json_integer_value(json_object_get(d, "records")) : 0));
	}
	json_object_set_new(r, "damaged", json_integer(bad));
	json_object_set_new(r, "databases", databases);
	json_object_set_new(r, "next_ids", json_object());
	rc = store_format_env_open(dir, MDB_RDONLY, &env);
	if (rc == 0 && mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0)
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
