/*
 * store_walk.c - `dbtd check`'s walk of every record (see store_walk.h).
 *
 * The parent forks a reader that opens the store read-only and walks the
 * databases from a given one on, writing one JSON line per event to a pipe
 * (a database begun, progress, a damaged record, a database done).  When
 * the reader dies (LMDB aborted on a damaged page, a read faulted) or makes
 * no progress for STALL_S seconds, the database it was in is reported
 * damaged and a new reader goes on from the next one.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbtd.pb-c.h"
#include "logrec.h"
#include "store_format.h"
#include "store_walk.h"
#include "util.h"

#define STALL_S 60         /* a reader silent this long is stopped */
#define SHOWN 10           /* damaged records named per database */
#define PROGRESS_EVERY 4096
#define INDEX_PREFIX_MAX 400 /* INDEX_KEY_MAX of store_int.h: longer names are cut */

enum kind { K_OBJ, K_NAMES, K_RUNS, K_INDEX_STR, K_INDEX_BYTE, K_ACTIVE, K_LOGS, K_LINEAGE,
            K_ARTIFACTS, K_META };

struct wdb {
	const char *name;
	enum kind kind;
	int which;        /* the object kind (0..2), or which field an index holds */
};

static const struct wdb dbs[] = {
	{ "projects", K_OBJ, 0 }, { "environments", K_OBJ, 1 }, { "jobs", K_OBJ, 2 },
	{ "project_names", K_NAMES, 0 }, { "environment_names", K_NAMES, 1 },
	{ "job_names", K_NAMES, 2 },
	{ "runs", K_RUNS, 0 },
	{ "runs_by_job", K_INDEX_STR, 0 }, { "runs_by_branch", K_INDEX_STR, 1 },
	{ "runs_by_status", K_INDEX_BYTE, 0 }, { "runs_by_trigger", K_INDEX_BYTE, 1 },
	{ "runs_active", K_ACTIVE, 0 },
	{ "logs", K_LOGS, 0 }, { "lineage", K_LINEAGE, 0 }, { "artifacts", K_ARTIFACTS, 0 },
	{ "meta", K_META, 0 },
};
#define NDBS (sizeof(dbs) / sizeof(dbs[0]))

static const ProtobufCMessageDescriptor *const obj_desc[3] = {
	&dbtd__project__descriptor, &dbtd__environment__descriptor, &dbtd__job__descriptor,
};

/* The reader's state while it walks one database. */
struct walk {
	MDB_txn *txn;
	const char *dir;
	int fd;                 /* the pipe to the parent */
	const struct wdb *db;
	size_t records, damaged;
	char last[128];         /* the last record read, for messages */
};

static int out_fd = -1;     /* for the assert callback */

/*
 * Where the reader is, in memory shared with the parent: kept at every
 * record (a line per record would cost more than the check), read by the
 * parent when the reader dies.
 */
struct whereabouts {
	size_t records;
	char last[128];
};
static struct whereabouts *here;

/* Write one JSON line to the parent (obj is taken). */
static void
emit(int fd, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);

	json_decref(obj);
	if (s == NULL)
		return;
	size_t n = strlen(s);
	s[n] = '\n';
	for (size_t off = 0; off < n + 1;) {
		ssize_t w = write(fd, s + off, n + 1 - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(s);
}

/* A damaged record of the database walked: counted, the first SHOWN named. */
static void
problem(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
problem(struct walk *w, const char *fmt, ...)
{
	char msg[512];
	int n;
	va_list ap;

	if (++w->damaged > SHOWN)
		return;
	n = snprintf(msg, sizeof(msg), "%s: ", w->db->name);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	emit(w->fd, json_pack("{ss}", "problem", msg));
}

static uint64_t
be64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static uint32_t
be32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Open a database by name inside the walk's transaction (0: there is none). */
static int
dbi(struct walk *w, const char *name, MDB_dbi *out)
{
	return mdb_dbi_open(w->txn, name, 0, out) == 0;
}

/* Read run id: 0, -ENOENT, -EBADMSG, or another LMDB error (as -errno). */
static int
get_run(struct walk *w, uint64_t id, Dbtd__Run **run)
{
	MDB_dbi runs;
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	int rc;

	*run = NULL;
	if (!dbi(w, "runs", &runs))
		return -ENOENT;
	for (int i = 7; i >= 0; i--, id >>= 8)
		key[i] = (uint8_t)id;
	rc = mdb_get(w->txn, runs, &k, &v);
	if (rc)
		return store_format_map_rc(rc);
	*run = dbtd__run__unpack(NULL, v.mv_size, v.mv_data);
	return *run ? 0 : -EBADMSG;
}

/* Why a run a record refers to cannot be read, as words. */
static const char *
run_problem(int rc)
{
	return rc == -ENOENT ? "which database runs does not hold" :
	       rc == -EBADMSG ? "whose record does not decode" : "whose page is damaged";
}

/* Does database name hold key? 1, 0, or -1 when it cannot be read. */
static int
has_key(struct walk *w, const char *name, const void *key, size_t len)
{
	MDB_dbi d;
	MDB_val k = { len, (void *)key }, v;
	int rc;

	if (!dbi(w, name, &d))
		return 0;
	rc = mdb_get(w->txn, d, &k, &v);
	return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
}

/* An index key of a run: prefix (cut as the store cuts it), then the id. */
static size_t
index_key(uint8_t *key, const void *prefix, size_t plen, uint64_t id)
{
	memcpy(key, prefix, plen);
	for (int i = 7; i >= 0; i--, id >>= 8)
		key[plen + (size_t)i] = (uint8_t)id;
	return plen + 8;
}

/* The string prefix of an index: the string, cut, and a NUL. */
static size_t
str_prefix(uint8_t *buf, const char *s)
{
	size_t n = strlen(s);

	if (n + 1 > INDEX_PREFIX_MAX)
		n = INDEX_PREFIX_MAX - 1;
	memcpy(buf, s, n);
	buf[n] = 0;
	return n + 1;
}

/* A run's record: its id, and its entry in every index. */
static void
check_run(struct walk *w, uint64_t id, const Dbtd__Run *run)
{
	static const char *const idx[4] = { "runs_by_job", "runs_by_branch", "runs_by_status",
	                                    "runs_by_trigger" };
	uint8_t p[INDEX_PREFIX_MAX], key[INDEX_PREFIX_MAX + 8], idb[8];
	int active = run->status == DBTD__RUN_STATUS__RUN_QUEUED ||
	             run->status == DBTD__RUN_STATUS__RUN_RUNNING;

	if (run->id != id)
		problem(w, "run %llu: its record says it is run %llu", (unsigned long long)id,
		        (unsigned long long)run->id);
	for (int i = 0; i < 4; i++) {
		size_t plen, klen;
		if (i < 2) {
			plen = str_prefix(p, i == 0 ? run->job : run->branch);
		} else {
			p[0] = (uint8_t)(i == 2 ? run->status : run->trigger);
			plen = 1;
		}
		klen = index_key(key, p, plen, id);
		if (has_key(w, idx[i], key, klen) != 1)
			problem(w, "run %llu: database %s has no entry for it", (unsigned long long)id,
			        idx[i]);
	}
	index_key(idb, "", 0, id);
	if (has_key(w, "runs_active", idb, 8) != active)
		problem(w, "run %llu is %s, and database runs_active %s it", (unsigned long long)id,
		        active ? "active" : "over", active ? "does not list" : "lists");
}

/* One record of the database walked. */
static void
check_record(struct walk *w, const MDB_val *k, const MDB_val *v, uint64_t *prev_run)
{
	const struct wdb *db = w->db;
	const uint8_t *kp = k->mv_data;
	Dbtd__Run *run = NULL;
	int rc;

	switch (db->kind) {
	case K_OBJ: {
		ProtobufCMessage *m = protobuf_c_message_unpack(obj_desc[db->which], NULL, v->mv_size,
		                                                v->mv_data);
		if (m == NULL) {
			problem(w, "record %llu does not decode", (unsigned long long)be64(kp));
			break;
		}
		const char *name = db->which == 0 ? ((Dbtd__Project *)m)->name :
		                   db->which == 1 ? ((Dbtd__Environment *)m)->name :
		                   ((Dbtd__Job *)m)->name;
		MDB_dbi names;
		MDB_val nk = { strlen(name), (void *)name }, nv;
		static const char *const ndb[3] = { "project_names", "environment_names", "job_names" };
		if (!dbi(w, ndb[db->which], &names) || mdb_get(w->txn, names, &nk, &nv) != 0 ||
		    nv.mv_size != 8 || be64(nv.mv_data) != be64(kp))
			problem(w, "record %llu (\"%s\"): database %s does not name it",
			        (unsigned long long)be64(kp), name, ndb[db->which]);
		protobuf_c_message_free_unpacked(m, NULL);
		break;
	}
	case K_NAMES: {
		static const char *const odb[3] = { "projects", "environments", "jobs" };
		MDB_dbi objs;
		MDB_val ov;
		ProtobufCMessage *m = NULL;
		if (v->mv_size != 8) {
			problem(w, "the entry of \"%.*s\" is not an id", (int)k->mv_size,
			        (const char *)kp);
			break;
		}
		if (!dbi(w, odb[db->which], &objs) || mdb_get(w->txn, objs, (MDB_val *)v, &ov) != 0) {
			problem(w, "\"%.*s\" names record %llu, which database %s does not hold",
			        (int)k->mv_size, (const char *)kp,
			        (unsigned long long)be64(v->mv_data), odb[db->which]);
			break;
		}
		m = protobuf_c_message_unpack(obj_desc[db->which], NULL, ov.mv_size, ov.mv_data);
		if (m == NULL)
			problem(w, "\"%.*s\" names record %llu of %s, which does not decode",
			        (int)k->mv_size, (const char *)kp, (unsigned long long)be64(v->mv_data),
			        odb[db->which]);
		if (m)
			protobuf_c_message_free_unpacked(m, NULL);
		break;
	}
	case K_RUNS:
		run = dbtd__run__unpack(NULL, v->mv_size, v->mv_data);
		if (run == NULL)
			problem(w, "run %llu: its record does not decode", (unsigned long long)be64(kp));
		else
			check_run(w, be64(kp), run);
		break;
	case K_INDEX_STR: case K_INDEX_BYTE: case K_ACTIVE: {
		uint64_t id = be64(kp + k->mv_size - 8);
		rc = get_run(w, id, &run);
		if (rc < 0) {
			problem(w, "an entry for run %llu, %s", (unsigned long long)id, run_problem(rc));
			break;
		}
		if (db->kind == K_ACTIVE) {
			if (run->status != DBTD__RUN_STATUS__RUN_QUEUED &&
			    run->status != DBTD__RUN_STATUS__RUN_RUNNING)
				problem(w, "lists run %llu, which is over", (unsigned long long)id);
		} else if (db->kind == K_INDEX_BYTE) {
			unsigned want = db->which == 0 ? (unsigned)run->status : (unsigned)run->trigger;
			if (k->mv_size != 9 || kp[0] != want)
				problem(w, "the entry of run %llu says %u, its record %u",
				        (unsigned long long)id, kp[0], want);
		} else {
			uint8_t p[INDEX_PREFIX_MAX];
			size_t plen = str_prefix(p, db->which == 0 ? run->job : run->branch);
			if (plen != k->mv_size - 8 || memcmp(p, kp, plen) != 0)
				problem(w, "the entry \"%.*s\" of run %llu does not match its record",
				        (int)(k->mv_size - 9), (const char *)kp, (unsigned long long)id);
		}
		break;
	}
	case K_LOGS: {
		size_t bad = 0;
		uint64_t id = be64(kp);
		if (logrec_check(v->mv_data, v->mv_size, &bad) < 0)
			problem(w, "chunk %u of step %u of run %llu: the log record at byte %zu of %zu "
			        "runs past its end", be32(kp + 12), be32(kp + 8), (unsigned long long)id,
			        bad, v->mv_size);
		if (id != *prev_run) {
			*prev_run = id;
			rc = get_run(w, id, &run);
			if (rc < 0)
				problem(w, "chunks of run %llu, %s", (unsigned long long)id, run_problem(rc));
		}
		break;
	}
	case K_LINEAGE: {
		Dbtd__Lineage *l = dbtd__lineage__unpack(NULL, v->mv_size, v->mv_data);
		if (l == NULL)
			problem(w, "the graph of run %llu does not decode", (unsigned long long)be64(kp));
		else
			dbtd__lineage__free_unpacked(l, NULL);
		break;
	}
	case K_ARTIFACTS: {
		uint64_t id = be64(kp);
		Dbtd__Artifact *a = dbtd__artifact__unpack(NULL, v->mv_size, v->mv_data);
		struct stat sb;
		char *blob = NULL;
		if (a == NULL) {
			problem(w, "run %llu, %.*s: its record does not decode", (unsigned long long)id,
			        (int)(k->mv_size - 8), (const char *)kp + 8);
		} else if (strlen(a->path) != k->mv_size - 8 ||
		           memcmp(a->path, kp + 8, k->mv_size - 8) != 0) {
			problem(w, "run %llu, %.*s: its record names %s", (unsigned long long)id,
			        (int)(k->mv_size - 8), (const char *)kp + 8, a->path);
		} else if (strlen(a->digest) != 64 || strspn(a->digest, "0123456789abcdef") != 64) {
			problem(w, "run %llu, %s: its digest is not a sha256", (unsigned long long)id,
			        a->path);
		} else if ((blob = xasprintf("%s/blobs/%.2s/%s", w->dir, a->digest, a->digest)) &&
		           stat(blob, &sb) < 0) {
			problem(w, "run %llu, %s: its content blobs/%.2s/%s is missing (%s)",
			        (unsigned long long)id, a->path, a->digest, a->digest, strerror(errno));
		} else if (blob && (uint64_t)sb.st_size != a->size) {
			problem(w, "run %llu, %s: its content blobs/%.2s/%s has %lld bytes, its record "
			        "%llu", (unsigned long long)id, a->path, a->digest, a->digest,
			        (long long)sb.st_size, (unsigned long long)a->size);
		}
		free(blob);
		if (a)
			dbtd__artifact__free_unpacked(a, NULL);
		if (id != *prev_run) {
			*prev_run = id;
			rc = get_run(w, id, &run);
			if (rc < 0)
				problem(w, "artifacts of run %llu, %s", (unsigned long long)id,
				        run_problem(rc));
		}
		break;
	}
	case K_META:
		if (k->mv_size == 6 && memcmp(kp, "format", 6) == 0) {
			Dbtd__StoreFormat *f = dbtd__store_format__unpack(NULL, v->mv_size, v->mv_data);
			if (f == NULL)
				problem(w, "the format record does not decode");
			else
				dbtd__store_format__free_unpacked(f, NULL);
		} else if (k->mv_size > 8 && memcmp(kp, "next_id.", 8) == 0 && v->mv_size != 8) {
			problem(w, "the counter %.*s is not an id", (int)k->mv_size, (const char *)kp);
		}
		break;
	}
	if (run)
		dbtd__run__free_unpacked(run, NULL);
}

/* The key size every record of a database has (0: any, at least min). */
static int
key_ok(const struct wdb *db, size_t len)
{
	switch (db->kind) {
	case K_OBJ: case K_RUNS: case K_ACTIVE: case K_LINEAGE: return len == 8;
	case K_LOGS: return len == 16;
	case K_INDEX_BYTE: return len == 9;
	case K_INDEX_STR: case K_ARTIFACTS: return len > 8;
	case K_NAMES: case K_META: return len > 0;
	}
	return 0;
}

/* Describe key k of db for messages. */
static void
describe(const struct wdb *db, const MDB_val *k, char *buf, size_t len)
{
	const uint8_t *kp = k->mv_data;

	if (db->kind == K_LOGS)
		snprintf(buf, len, "chunk %u of step %u of run %llu", be32(kp + 12), be32(kp + 8),
		         (unsigned long long)be64(kp));
	else if (k->mv_size == 8)
		snprintf(buf, len, "record %llu", (unsigned long long)be64(kp));
	else if (db->kind == K_ARTIFACTS)
		snprintf(buf, len, "run %llu, %.*s", (unsigned long long)be64(kp),
		         (int)(k->mv_size - 8 > 80 ? 80 : k->mv_size - 8), (const char *)kp + 8);
	else if (k->mv_size > 8 && db->kind != K_NAMES && db->kind != K_META)
		snprintf(buf, len, "the entry of run %llu", (unsigned long long)be64(kp + k->mv_size - 8));
	else
		snprintf(buf, len, "\"%.*s\"", (int)(k->mv_size > 80 ? 80 : k->mv_size),
		         (const char *)kp);
}

/* Walk one database in the reader. */
static void
walk_db(MDB_env *env, const char *dir, size_t i, int fd)
{
	struct walk w = { .dir = dir, .fd = fd, .db = &dbs[i] };
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_dbi d;
	uint64_t prev_run = 0;
	int rc;

	snprintf(w.last, sizeof(w.last), "its first record");
	if (here) {
		here->records = 0;
		memcpy(here->last, w.last, sizeof(here->last));
	}
	emit(fd, json_pack("{sI}", "begin", (json_int_t)i));
	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &w.txn);
	if (rc == 0 && dbi(&w, dbs[i].name, &d))
		rc = mdb_cursor_open(w.txn, d, &cur);
	for (rc = rc == 0 && cur ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : MDB_NOTFOUND; rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (!key_ok(&dbs[i], k.mv_size)) {
			problem(&w, "a damaged page after %s (a key of %zu bytes); the records after it "
			        "were not read", w.last, k.mv_size);
			rc = MDB_NOTFOUND;
			break;
		}
		w.records++;
		check_record(&w, &k, &v, &prev_run);
		describe(&dbs[i], &k, w.last, sizeof(w.last));
		if (here) {
			here->records = w.records;
			memcpy(here->last, w.last, sizeof(here->last));
		}
		if (w.records % PROGRESS_EVERY == 0)
			emit(fd, json_pack("{sIss}", "progress", (json_int_t)w.records, "last", w.last));
	}
	if (rc != MDB_NOTFOUND)
		problem(&w, "a damaged page after %s (LMDB: %s); the records after it were not read",
		        w.last, mdb_strerror(rc));
	if (cur)
		mdb_cursor_close(cur);
	if (w.txn)
		mdb_txn_abort(w.txn);
	emit(fd, json_pack("{sIsIsI}", "end", (json_int_t)i, "records", (json_int_t)w.records,
	                   "damaged", (json_int_t)w.damaged));
}

/* LMDB's assert callback in the reader: tell the parent why it is about to abort. */
static void
on_assert(MDB_env *env, const char *msg)
{
	(void)env;
	if (out_fd >= 0)
		emit(out_fd, json_pack("{ss}", "assert", msg));
}

/* The reader: walk the databases from `from` on.  Never returns. */
static void
reader(const char *dir, size_t from, int fd)
{
	MDB_env *env;
	int null = open("/dev/null", O_WRONLY);

	if (null >= 0) { /* LMDB prints its asserts too: the parent reports them */
		dup2(null, STDERR_FILENO);
		close(null);
	}
	out_fd = fd;
	if (store_format_env_open(dir, MDB_RDONLY, &env) < 0)
		_exit(2);
	mdb_env_set_assert(env, on_assert);
	for (size_t i = from; i < NDBS; i++)
		walk_db(env, dir, i, fd);
	mdb_env_close(env);
	_exit(0);
}

/* The database object of the report for db i (made when missing). */
static json_t *
db_obj(json_t *databases, size_t i)
{
	json_t *o = json_object_get(databases, dbs[i].name);

	if (o == NULL) {
		o = json_pack("{sIsI}", "records", (json_int_t)0, "damaged", (json_int_t)0);
		json_object_set_new(databases, dbs[i].name, o);
	}
	return o;
}

/* Handle one line of the reader. */
static void
take_line(const char *line, json_t *databases, json_t *problems, size_t *cur, size_t *done,
          char *why, size_t whylen, char *last, size_t lastlen, long *bad)
{
	json_t *j = json_loads(line, 0, NULL), *v;

	if (j == NULL)
		return;
	if ((v = json_object_get(j, "begin")) != NULL) {
		*cur = (size_t)json_integer_value(v);
		if (*cur < NDBS)
			db_obj(databases, *cur);
		snprintf(last, lastlen, "its first record");
	} else if ((v = json_object_get(j, "progress")) != NULL && *cur < NDBS) {
		json_object_set(db_obj(databases, *cur), "records", v);
		snprintf(last, lastlen, "%s", json_string_value(json_object_get(j, "last")));
	} else if ((v = json_object_get(j, "problem")) != NULL) {
		json_array_append(problems, v);
	} else if ((v = json_object_get(j, "assert")) != NULL) {
		snprintf(why, whylen, "LMDB stopped on a damaged page: %s", json_string_value(v));
	} else if ((v = json_object_get(j, "end")) != NULL) {
		size_t i = (size_t)json_integer_value(v);
		if (i < NDBS) {
			json_t *o = db_obj(databases, i);
			json_int_t n = json_integer_value(json_object_get(j, "damaged"));
			json_object_set(o, "records", json_object_get(j, "records"));
			json_object_set_new(o, "damaged", json_integer(n));
			if (n > SHOWN) {
				char msg[160];
				snprintf(msg, sizeof(msg), "%s: %lld records in all are damaged", dbs[i].name,
				         (long long)n);
				json_array_append_new(problems, json_string(msg));
			}
			*bad += n;
			*done = i + 1;
		}
	}
	json_decref(j);
}

long
store_walk(const char *dir, json_t *databases, json_t *problems)
{
	size_t next = 0;
	long bad = 0;

	here = mmap(NULL, sizeof(*here), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (here == MAP_FAILED)
		here = NULL; /* then only the progress lines say where */
	while (next < NDBS) {
		char buf[8192], why[512] = "", last[128] = "its first record", msg[1024];
		size_t have = 0, cur = next, done = next;
		int pfd[2], status = 0, stalled = 0;
		pid_t pid;

		if (pipe2(pfd, O_CLOEXEC) < 0)
			return -errno;
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			close(pfd[0]);
			close(pfd[1]);
			return -errno;
		}
		if (pid == 0) {
			close(pfd[0]);
			reader(dir, next, pfd[1]);
		}
		close(pfd[1]);
		for (;;) {
			struct pollfd p = { pfd[0], POLLIN, 0 };
			int r = poll(&p, 1, STALL_S * 1000);
			ssize_t n;
			if (r < 0 && errno == EINTR)
				continue;
			if (r == 0) {
				stalled = 1;
				kill(pid, SIGKILL);
				break;
			}
			n = read(pfd[0], buf + have, sizeof(buf) - 1 - have);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			have += (size_t)n;
			buf[have] = '\0';
			char *s = buf, *nl;
			while ((nl = strchr(s, '\n')) != NULL) {
				*nl = '\0';
				take_line(s, databases, problems, &cur, &done, why, sizeof(why), last,
				          sizeof(last), &bad);
				s = nl + 1;
			}
			have = strlen(s);
			memmove(buf, s, have);
			if (have == sizeof(buf) - 1)
				have = 0; /* a line longer than any the reader writes: drop it */
		}
		close(pfd[0]);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (done >= NDBS)
			break;
		if (!stalled && WIFEXITED(status) && WEXITSTATUS(status) == 2 && cur == next &&
		    done == next)
			return -EIO; /* the reader could not open the store */
		/* the reader died in database cur: report it and go on after it */
		if (here) {
			json_object_set_new(db_obj(databases, cur), "records",
			                    json_integer((json_int_t)here->records));
			snprintf(last, sizeof(last), "%.127s", here->last);
		}
		if (stalled)
			snprintf(why, sizeof(why), "reading it made no progress for %d s", STALL_S);
		else if (why[0] == '\0' && WIFSIGNALED(status))
			snprintf(why, sizeof(why), "a damaged page made reading it fail (%s)",
			         strsignal(WTERMSIG(status)));
		else if (why[0] == '\0')
			snprintf(why, sizeof(why), "its reader ended with status %d",
			         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		snprintf(msg, sizeof(msg), "%s: %s, after %s; the records after it were not read",
		         dbs[cur].name, why, last);
		json_array_append_new(problems, json_string(msg));
		{
			json_t *o = db_obj(databases, cur);
			json_object_set_new(o, "damaged", json_integer(
				json_integer_value(json_object_get(o, "damaged")) + 1));
		}
		bad++;
		next = cur + 1;
	}
	if (here)
		munmap(here, sizeof(*here));
	here = NULL;
	return bad;
}
