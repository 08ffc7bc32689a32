/* store.c - dbtd's state in LMDB (see store.h). */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "log.h"
#include "names.h"
#include "store.h"
#include "store_format.h"
#include "util.h"

struct store {
	MDB_env *env;
	MDB_dbi obj[3], names[3];
	MDB_dbi runs, runs_active, logs;
	MDB_dbi by_job, by_status, by_trigger, by_branch; /* run indexes */
	MDB_dbi lineage, artifacts;
	MDB_dbi meta;     /* format record and id counters (store_format.h) */
	int group;        /* group commit: writes go into `batch` */
	MDB_txn *batch;   /* the open group transaction, or NULL */
	int state_dirty;  /* the batch holds more than log lines */
	size_t log_bytes; /* log bytes in the batch */
	int64_t log_since_ms; /* when the first of them came */
	size_t untrimmed;     /* log bytes committed since the map was last trimmed */
	void (*on_commit)(void *arg, int rc); /* told of every commit of a batch */
	void *on_commit_arg;
	int fail_rc;          /* tests: the next fail_n commits fail with fail_rc */
	unsigned fail_n;
};

#define TRIM_EVERY (8u << 20) /* drop mapped pages after this many log bytes */

#define LOG_COMMIT_BYTES (4u << 20) /* log lines alone are committed at this size ... */
#define LOG_COMMIT_MS 50            /* ... or this age */


static const char *const obj_db_names[3] = { "projects", "environments", "jobs" };
static const char *const name_db_names[3] = {
	"project_names", "environment_names", "job_names",
};
static const ProtobufCMessageDescriptor *const obj_desc[3] = {
	&dbtd__project__descriptor, &dbtd__environment__descriptor,
	&dbtd__job__descriptor,
};

/* Map an LMDB or errno result to 0 or a negative errno (one mapping for the store). */
static int
map_rc(int rc)
{
	return store_format_map_rc(rc);
}

/* Write a 64-bit big-endian integer. */
static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Read a 64-bit big-endian integer. */
static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Write a 32-bit big-endian integer. */
static void
put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Read a 32-bit big-endian integer. */
static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Begin a transaction, retrying once after clearing stale readers. */
static int
txn_begin(struct store *st, unsigned flags, MDB_txn **txn)
{
	int rc = mdb_txn_begin(st->env, NULL, flags, txn);

	if (rc == MDB_READERS_FULL) {
		int dead = 0;
		mdb_reader_check(st->env, &dead);
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
	return map_rc(rc);
}

/* Commit txn; an error aborts it. */
static int
txn_commit(MDB_txn *txn)
{
	return map_rc(mdb_txn_commit(txn));
}

/*
 * Begin the transaction of one store operation.  Reads use the open group
 * transaction (so they see pending writes) or a read-only one; writes get a
 * nested transaction of the group one, or a transaction of their own.
 */
static int
op_begin(struct store *st, int write, MDB_txn **txn)
{
	int rc;

	if (st->group && write && st->batch == NULL) {
		rc = txn_begin(st, 0, &st->batch);
		if (rc < 0)
			return rc;
	}
	if (st->batch) {
		if (!write) {
			*txn = st->batch;
			return 0;
		}
		return map_rc(mdb_txn_begin(st->env, st->batch, 0, txn));
	}
	return txn_begin(st, write ? 0 : MDB_RDONLY, txn);
}

/*
 * End an operation begun with op_begin: commit a write that succeeded.
 * write is 0 for a read, 1 for a state write, 2 for log lines.
 */
static int
op_end(struct store *st, MDB_txn *txn, int write, int rc)
{
	if (txn == st->batch)
		return rc;
	if (!write || rc < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	if (st->batch && write == 1)
		st->state_dirty = 1;
	return txn_commit(txn);
}

void
store_set_group_commit(struct store *st, int on)
{
	if (!on)
		store_commit(st);
	st->group = on;
}

/*
 * Writing a lot of log lines makes LMDB touch pages of its map, and each
 * touched page stays mapped (resident) in dbtd.  They are clean file pages:
 * drop them from the map now and then, the page cache keeps them.
 */
static void
trim_map(struct store *st)
{
	MDB_envinfo info;

	if (mdb_env_info(st->env, &info) == 0 && info.me_mapaddr)
		madvise(info.me_mapaddr, info.me_mapsize, MADV_DONTNEED);
	st->untrimmed = 0;
}

int
store_commit(struct store *st)
{
	MDB_txn *txn = st->batch;
	int rc;

	if (txn == NULL)
		return 0;
	st->batch = NULL;
	st->untrimmed += st->log_bytes;
	st->state_dirty = 0;
	st->log_bytes = 0;
	st->log_since_ms = 0;
	if (st->fail_n > 0) {
		st->fail_n--;
		mdb_txn_abort(txn);
		rc = st->fail_rc;
	} else {
		rc = txn_commit(txn);
	}
	if (st->untrimmed >= TRIM_EVERY)
		trim_map(st);
	if (st->on_commit)
		st->on_commit(st->on_commit_arg, rc);
	return rc;
}

void
store_on_commit(struct store *st, void (*fn)(void *arg, int rc), void *arg)
{
	st->on_commit = fn;
	st->on_commit_arg = arg;
}

void
store_fail_commits(struct store *st, int rc, unsigned n)
{
	st->fail_rc = rc;
	st->fail_n = n;
}

int64_t
store_commit_due(const struct store *st, int64_t now)
{
	if (st->batch == NULL)
		return -1;
	if (st->state_dirty || st->log_bytes >= LOG_COMMIT_BYTES ||
	    now - st->log_since_ms >= LOG_COMMIT_MS)
		return 0;
	return st->log_since_ms + LOG_COMMIT_MS - now;
}

/* Pack msg into a new buffer: its MDB_val.  0 or -ENOMEM. */
static int
pack_val(const ProtobufCMessage *msg, MDB_val *v)
{
	size_t n = protobuf_c_message_get_packed_size(msg);

	v->mv_data = malloc(n ? n : 1);
	if (v->mv_data == NULL)
		return -ENOMEM;
	v->mv_size = protobuf_c_message_pack(msg, v->mv_data);
	return 0;
}

/* Unpack a stored record; -EBADMSG when it does not decode. */
static int
unpack_val(const ProtobufCMessageDescriptor *desc, const MDB_val *v,
           ProtobufCMessage **out)
{
	*out = protobuf_c_message_unpack(desc, NULL, v->mv_size, v->mv_data);
	return *out ? 0 : -EBADMSG;
}

/*
 * A new id for database dbi, whose counter in `meta` is "next_id.<name>":
 * the counter, or one past the largest key when that is higher (a dbtd
 * 0.1.0 started on this store after an upgrade adds ids without counting
 * them).  The counter moves past it, so an id is never given out twice,
 * also after the object that had it is removed.
 */
static int
next_id(struct store *st, MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *id)
{
	MDB_cursor *cur;
	MDB_val k, v, ck, cv;
	char ckey[32];
	uint8_t be[8];
	uint64_t next = 1;
	int rc = mdb_cursor_open(txn, dbi, &cur);

	if (rc)
		return map_rc(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return map_rc(rc);
	if (rc == 0 && k.mv_size == 8)
		next = get_be64(k.mv_data) + 1;
	snprintf(ckey, sizeof(ckey), "next_id.%s", name);
	ck.mv_size = strlen(ckey);
	ck.mv_data = ckey;
	rc = mdb_get(txn, st->meta, &ck, &cv);
	if (rc && rc != MDB_NOTFOUND)
		return map_rc(rc);
	if (rc == 0 && cv.mv_size == 8 && get_be64(cv.mv_data) > next)
		next = get_be64(cv.mv_data);
	*id = next;
	put_be64(be, next + 1);
	cv.mv_size = 8;
	cv.mv_data = be;
	return map_rc(mdb_put(txn, st->meta, &ck, &cv, 0));
}

/*
 * The format record of the store just opened (inside txn): write it for a
 * new store, and name this dbtd as its last writer.  store_format_prepare
 * already refused or migrated any store of another format.
 */
static int
format_record(MDB_txn *txn)
{
	Dbtd__StoreFormat *f = NULL, fresh = DBTD__STORE_FORMAT__INIT;
	int rc = store_format_get(txn, &f);

	if (rc < 0)
		return rc;
	if (f == NULL) {
		char done[256];
		fresh.format = STORE_FORMAT_CURRENT;
		fresh.written_by = (char *)store_format_writer();
		fresh.created_at_ms = now_ms();
		rc = store_format_counters(txn, done, sizeof(done));
		if (rc == 0)
			rc = store_format_put(txn, &fresh);
		if (rc == 0)
			log_info("new store, format %d", STORE_FORMAT_CURRENT);
		return rc;
	}
	if (f->format != STORE_FORMAT_CURRENT) {
		log_err("store: format %u, not %d, after the migration", f->format,
		        STORE_FORMAT_CURRENT);
		rc = -EPROTO;
	} else if (strcmp(f->written_by, store_format_writer()) != 0) {
		log_info("store last written by %s; now by %s", f->written_by, store_format_writer());
		f->written_by = (char *)store_format_writer();
		rc = store_format_put(txn, f);
		f->written_by = NULL; /* not ours to free */
	}
	dbtd__store_format__free_unpacked(f, NULL);
	return rc;
}

int
store_open(struct store **out, const char *dir, char **why)
{
	static const struct { const char *name; size_t off; } runs_dbs[] = {
		{ "runs", offsetof(struct store, runs) },
		{ "runs_active", offsetof(struct store, runs_active) },
		{ "logs", offsetof(struct store, logs) },
		{ "runs_by_job", offsetof(struct store, by_job) },
		{ "runs_by_status", offsetof(struct store, by_status) },
		{ "runs_by_trigger", offsetof(struct store, by_trigger) },
		{ "runs_by_branch", offsetof(struct store, by_branch) },
		{ "lineage", offsetof(struct store, lineage) },
		{ "artifacts", offsetof(struct store, artifacts) },
	};
	struct store *st = calloc(1, sizeof(*st));
	MDB_txn *txn = NULL;
	char *msg = NULL;
	int rc;

	if (why)
		*why = NULL;
	if (st == NULL)
		return -ENOMEM;
	rc = mkdir_p(dir, 0700);
	if (rc < 0)
		goto fail;
	rc = store_format_prepare(dir, &msg);
	if (rc < 0) {
		if (why)
			*why = msg;
		else
			log_err("%s", msg ? msg : strerror(-rc));
		msg = NULL;
		goto fail;
	}
	free(msg);
	rc = map_rc(mdb_env_create(&st->env));
	if (rc < 0)
		goto fail;
	mdb_env_set_mapsize(st->env, STORE_MAP_SIZE);
	mdb_env_set_maxdbs(st->env, STORE_MAX_DBS);
	mdb_env_set_maxreaders(st->env, 126);
	/*
	 * NOMETASYNC: one fsync per commit (a system crash may undo the last
	 * commit, never corrupt); NORDAHEAD: pages around the ones read are not
	 * mapped in, so RSS stays what dbtd reads.
	 */
	rc = map_rc(mdb_env_open(st->env, dir, MDB_NOTLS | MDB_NOMETASYNC | MDB_NORDAHEAD, 0600));
	if (rc < 0)
		goto fail;
	rc = txn_begin(st, 0, &txn);
	if (rc < 0)
		goto fail;
	for (int i = 0; i < 3; i++) {
		rc = map_rc(mdb_dbi_open(txn, obj_db_names[i], MDB_CREATE, &st->obj[i]));
		if (rc == 0)
			rc = map_rc(mdb_dbi_open(txn, name_db_names[i], MDB_CREATE, &st->names[i]));
		if (rc < 0)
			goto fail;
	}
	for (size_t i = 0; i < sizeof(runs_dbs) / sizeof(runs_dbs[0]); i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)st + runs_dbs[i].off);
		rc = map_rc(mdb_dbi_open(txn, runs_dbs[i].name, MDB_CREATE, dbi));
		if (rc < 0)
			goto fail;
	}
	rc = map_rc(mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta));
	if (rc == 0)
		rc = format_record(txn);
	if (rc < 0)
		goto fail;
	rc = txn_commit(txn);
	txn = NULL;
	if (rc < 0)
		goto fail;
	*out = st;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (st->env)
		mdb_env_close(st->env);
	free(st);
	return rc;
}

int
store_format_info(struct store *st, Dbtd__StoreFormat **out)
{
	MDB_txn *txn;
	int rc = op_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	rc = store_format_get(txn, out);
	if (rc == 0 && *out == NULL)
		rc = -ENOENT;
	return op_end(st, txn, 0, rc);
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	store_commit(st);
	mdb_env_close(st->env);
	free(st);
}

enum err_kind
store_err_kind(int rc)
{
	switch (rc) {
	case -ENOENT: return ERR_NOT_FOUND;
	case -EEXIST: return ERR_EXISTS;
	case -ENOSPC: case STORE_EMAPFULL: case -EDQUOT: return ERR_NO_SPACE;
	default: return ERR_INTERNAL;
	}
}

const char *
store_strerror(int rc)
{
	if (rc == -EBADMSG)
		return "stored record does not decode";
	if (rc == STORE_EMAPFULL)
		return "the store's map is full: nothing more can be saved until runs are "
		       "removed or the map is made larger";
	if (rc == -ENOSPC)
		return "no space left on the device of the state directory";
	return strerror(rc < 0 ? -rc : rc);
}

/* Store msg packed as the record of object key (inside txn). */
static int
obj_write(struct store *st, MDB_txn *txn, enum store_kind kind, MDB_val *key,
          const ProtobufCMessage *msg)
{
	MDB_val v = { 0, NULL };
	int rc = pack_val(msg, &v);

	if (rc == 0) {
		rc = map_rc(mdb_put(txn, st->obj[kind], key, &v, 0));
		free(v.mv_data);
	}
	return rc;
}

int
store_obj_add(struct store *st, enum store_kind kind, ProtobufCMessage *msg,
              const char *name, uint64_t *idp)
{
	MDB_txn *txn;
	MDB_val k, nk = { strlen(name), (void *)name };
	uint8_t key[8];
	int rc = op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	rc = next_id(st, txn, st->obj[kind], obj_db_names[kind], idp);
	if (rc == 0) {
		put_be64(key, *idp);
		k.mv_data = key;
		k.mv_size = 8;
		rc = map_rc(mdb_put(txn, st->names[kind], &nk, &k, MDB_NOOVERWRITE));
	}
	if (rc == 0)
		rc = obj_write(st, txn, kind, &k, msg);
	return op_end(st, txn, 1, rc);
}

int
store_obj_put(struct store *st, enum store_kind kind, uint64_t id, const ProtobufCMessage *msg)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key }, old;
	int rc = op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, id);
	rc = map_rc(mdb_get(txn, st->obj[kind], &k, &old));
	if (rc == 0)
		rc = obj_write(st, txn, kind, &k, msg);
	return op_end(st, txn, 1, rc);
}

/* Read the object with the given 8-byte key inside txn. */
static int
obj_get_txn(struct store *st, MDB_txn *txn, enum store_kind kind,
            MDB_val *key, ProtobufCMessage **out)
{
	MDB_val v;
	int rc = map_rc(mdb_get(txn, st->obj[kind], key, &v));

	if (rc < 0)
		return rc;
	return unpack_val(obj_desc[kind], &v, out);
}

int
store_obj_get(struct store *st, enum store_kind kind, uint64_t id,
              ProtobufCMessage **out)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key };
	int rc = op_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, id);
	rc = obj_get_txn(st, txn, kind, &k, out);
	return op_end(st, txn, 0, rc);
}

int
store_obj_find(struct store *st, enum store_kind kind, const char *name,
               ProtobufCMessage **out)
{
	MDB_txn *txn;
	MDB_val nk = { strlen(name), (void *)name }, k;
	int rc;

	if (nk.mv_size == 0 || nk.mv_size > 256)
		return -ENOENT;
	rc = op_begin(st, 0, &txn);
	if (rc < 0)
		return rc;
	rc = map_rc(mdb_get(txn, st->names[kind], &nk, &k));
	if (rc == 0)
		rc = obj_get_txn(st, txn, kind, &k, out);
	return op_end(st, txn, 0, rc);
}

int
store_obj_list(struct store *st, enum store_kind kind,
               int (*fn)(void *arg, ProtobufCMessage *msg), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = op_begin(st, 0, &txn), mrc;

	if (rc < 0)
		return rc;
	rc = map_rc(mdb_cursor_open(txn, st->obj[kind], &cur));
	if (rc < 0)
		return op_end(st, txn, 0, rc);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ProtobufCMessage *msg;
		if (unpack_val(obj_desc[kind], &v, &msg) < 0) {
			log_warn("store: %s record %llu does not decode; skipped",
			         obj_db_names[kind], (unsigned long long)get_be64(k.mv_data));
			continue;
		}
		rc = fn(arg, msg);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return op_end(st, txn, 0, rc);
}

int
store_obj_remove(struct store *st, enum store_kind kind, uint64_t id,
                 const char *name)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key }, nk = { strlen(name), (void *)name };
	int rc = op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, id);
	rc = map_rc(mdb_del(txn, st->obj[kind], &k, NULL));
	if (rc == 0)
		rc = map_rc(mdb_del(txn, st->names[kind], &nk, NULL));
	return op_end(st, txn, 1, rc);
}

/* True for the statuses a run can still leave. */
static int
run_is_active(Dbtd__RunStatus s)
{
	return s == DBTD__RUN_STATUS__RUN_QUEUED || s == DBTD__RUN_STATUS__RUN_RUNNING;
}

/* An index key: prefix bytes, then the run id big-endian.  Returns its length. */
static size_t
index_key(uint8_t *key, size_t cap, const void *prefix, size_t plen, uint64_t id)
{
	if (plen + 8 > cap)
		plen = cap - 8;
	memcpy(key, prefix, plen);
	put_be64(key + plen, id);
	return plen + 8;
}

/* A string index prefix: the string and a NUL. */
static size_t
str_prefix(uint8_t *buf, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n + 1 > cap)
		n = cap - 1;
	memcpy(buf, s, n);
	buf[n] = 0;
	return n + 1;
}

#define INDEX_KEY_MAX 400 /* LMDB keys are at most 511 bytes */

/* Add (del = 0) or remove an index entry prefix‖id. */
static int
index_put(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t plen, uint64_t id, int del)
{
	uint8_t key[INDEX_KEY_MAX + 8];
	MDB_val k = { 0, key }, empty = { 0, NULL };
	int rc;

	k.mv_size = index_key(key, sizeof(key), prefix, plen, id);
	if (!del)
		return map_rc(mdb_put(txn, dbi, &k, &empty, 0));
	rc = map_rc(mdb_del(txn, dbi, &k, NULL));
	return rc == -ENOENT ? 0 : rc;
}

/* Write run and its index entries inside txn; old is its previous status (0: new). */
static int
run_put_txn(struct store *st, MDB_txn *txn, const Dbtd__Run *run, Dbtd__RunStatus old)
{
	uint8_t key[8], p[INDEX_KEY_MAX];
	MDB_val k = { 8, key }, v, empty = { 0, NULL };
	uint8_t sb;
	int rc;

	put_be64(key, run->id);
	rc = pack_val(&run->base, &v);
	if (rc < 0)
		return rc;
	rc = map_rc(mdb_put(txn, st->runs, &k, &v, 0));
	free(v.mv_data);
	if (rc < 0)
		return rc;
	if (old == DBTD__RUN_STATUS__RUN_STATUS_UNSPECIFIED) {
		uint8_t tb = (uint8_t)run->trigger;
		rc = index_put(txn, st->by_job, p, str_prefix(p, sizeof(p), run->job), run->id, 0);
		if (rc == 0)
			rc = index_put(txn, st->by_branch, p, str_prefix(p, sizeof(p), run->branch),
			               run->id, 0);
		if (rc == 0)
			rc = index_put(txn, st->by_trigger, &tb, 1, run->id, 0);
	}
	if (rc == 0 && old != run->status) {
		sb = (uint8_t)old;
		if (old != DBTD__RUN_STATUS__RUN_STATUS_UNSPECIFIED)
			rc = index_put(txn, st->by_status, &sb, 1, run->id, 1);
		sb = (uint8_t)run->status;
		if (rc == 0)
			rc = index_put(txn, st->by_status, &sb, 1, run->id, 0);
	}
	if (rc < 0)
		return rc;
	if (run_is_active(run->status))
		return map_rc(mdb_put(txn, st->runs_active, &k, &empty, 0));
	rc = map_rc(mdb_del(txn, st->runs_active, &k, NULL));
	return rc == -ENOENT ? 0 : rc;
}

int
store_run_create(struct store *st, Dbtd__Run *run)
{
	MDB_txn *txn;
	int rc = op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	rc = next_id(st, txn, st->runs, "runs", &run->id);
	if (rc == 0)
		rc = run_put_txn(st, txn, run, DBTD__RUN_STATUS__RUN_STATUS_UNSPECIFIED);
	return op_end(st, txn, 1, rc);
}

/* Read run id inside txn. */
static int
run_get_txn(struct store *st, MDB_txn *txn, uint64_t id, Dbtd__Run **out)
{
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	int rc;

	put_be64(key, id);
	rc = map_rc(mdb_get(txn, st->runs, &k, &v));
	if (rc < 0)
		return rc;
	return unpack_val(&dbtd__run__descriptor, &v, (ProtobufCMessage **)out);
}

int
store_run_put(struct store *st, const Dbtd__Run *run)
{
	Dbtd__Run *prev = NULL;
	Dbtd__RunStatus old;
	MDB_txn *txn;
	int rc = op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	rc = run_get_txn(st, txn, run->id, &prev);
	if (rc == 0) {
		old = prev->status;
		dbtd__run__free_unpacked(prev, NULL);
		rc = run_put_txn(st, txn, run, old);
	}
	return op_end(st, txn, 1, rc);
}

int
store_run_get(struct store *st, uint64_t id, Dbtd__Run **out)
{
	MDB_txn *txn;
	int rc = op_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	rc = run_get_txn(st, txn, id, out);
	return op_end(st, txn, 0, rc);
}

/* True when run matches every set field of f. */
static int
run_matches(const Dbtd__Run *run, const struct store_run_filter *f)
{
	if (f == NULL)
		return 1;
	if (f->job && f->job[0] && strcmp(run->job, f->job) != 0)
		return 0;
	if (f->status && run->status != f->status)
		return 0;
	if (f->trigger && run->trigger != f->trigger)
		return 0;
	if (f->branch && f->branch[0] && strcmp(run->branch, f->branch) != 0)
		return 0;
	return 1;
}

/*
 * Walk an index newest first: entries prefix‖id with id < before, calling
 * fn with each run that matches f, until limit runs were given.
 */
static int
walk_index(struct store *st, MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix,
           size_t plen, const struct store_run_filter *f, uint64_t before,
           unsigned limit, int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	uint8_t key[INDEX_KEY_MAX + 8];
	MDB_cursor *cur;
	MDB_val k = { 0, key }, v;
	unsigned n = 0;
	int rc = map_rc(mdb_cursor_open(txn, dbi, &cur)), mrc;

	if (rc < 0)
		return rc;
	k.mv_size = index_key(key, sizeof(key), prefix, plen, before ? before : UINT64_MAX);
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	mrc = mrc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
	               : mdb_cursor_get(cur, &k, &v, MDB_LAST);
	for (; mrc == 0 && n < limit; mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
		Dbtd__Run *run;
		if (k.mv_size != plen + 8 || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (run_get_txn(st, txn, get_be64((uint8_t *)k.mv_data + plen), &run) < 0)
			continue;
		if (!run_matches(run, f)) {
			dbtd__run__free_unpacked(run, NULL);
			continue;
		}
		n++;
		rc = fn(arg, run);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

int
store_run_list(struct store *st, const struct store_run_filter *f,
               uint64_t before, unsigned limit,
               int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	uint8_t prefix[INDEX_KEY_MAX];
	MDB_dbi dbi = st->runs;
	size_t plen = 0;
	MDB_txn *txn;
	int rc;

	/* Walk the most selective index the filter allows; check the rest per run. */
	if (f && f->job && f->job[0]) {
		dbi = st->by_job;
		plen = str_prefix(prefix, sizeof(prefix), f->job);
	} else if (f && f->branch && f->branch[0]) {
		dbi = st->by_branch;
		plen = str_prefix(prefix, sizeof(prefix), f->branch);
	} else if (f && f->status) {
		dbi = st->by_status;
		prefix[0] = (uint8_t)f->status;
		plen = 1;
	} else if (f && f->trigger) {
		dbi = st->by_trigger;
		prefix[0] = (uint8_t)f->trigger;
		plen = 1;
	}
	rc = op_begin(st, 0, &txn);
	if (rc < 0)
		return rc;
	if (dbi == st->runs) {
		/* no index: the runs themselves, keyed by id */
		MDB_cursor *cur;
		MDB_val k, v;
		uint8_t key[8];
		unsigned n = 0;
		int mrc;

		rc = map_rc(mdb_cursor_open(txn, st->runs, &cur));
		if (rc < 0)
			return op_end(st, txn, 0, rc);
		put_be64(key, before ? before : UINT64_MAX);
		k.mv_data = key;
		k.mv_size = 8;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		mrc = mrc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
		               : mdb_cursor_get(cur, &k, &v, MDB_LAST);
		for (; mrc == 0 && n < limit; mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
			Dbtd__Run *run;
			if (unpack_val(&dbtd__run__descriptor, &v, (ProtobufCMessage **)&run) < 0)
				continue;
			if (!run_matches(run, f)) {
				dbtd__run__free_unpacked(run, NULL);
				continue;
			}
			n++;
			rc = fn(arg, run);
			if (rc)
				break;
		}
		mdb_cursor_close(cur);
	} else {
		rc = walk_index(st, txn, dbi, prefix, plen, f, before, limit, fn, arg);
	}
	return op_end(st, txn, 0, rc);
}

int
store_runs_active(struct store *st, int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc = op_begin(st, 0, &txn), mrc;

	if (rc < 0)
		return rc;
	rc = map_rc(mdb_cursor_open(txn, st->runs_active, &cur));
	if (rc < 0)
		return op_end(st, txn, 0, rc);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (n == cap) {
			uint64_t *p = realloc(ids, (cap = cap ? cap * 2 : 16) * sizeof(*ids));
			if (p == NULL) {
				rc = -ENOMEM;
				break;
			}
			ids = p;
		}
		ids[n++] = get_be64(k.mv_data);
	}
	mdb_cursor_close(cur);
	op_end(st, txn, 0, 0);
	/* fn may write (e.g. mark a run Failed): call it outside the read. */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		Dbtd__Run *run;
		if (store_run_get(st, ids[i], &run) < 0)
			continue;
		rc = fn(arg, run);
	}
	free(ids);
	return rc;
}

uint64_t
store_job_active_run(struct store *st, uint64_t job_id)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t found = 0;
	int mrc;

	if (op_begin(st, 0, &txn) < 0)
		return 0;
	if (mdb_cursor_open(txn, st->runs_active, &cur) == 0) {
		for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && !found;
		     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			Dbtd__Run *run;
			if (run_get_txn(st, txn, get_be64(k.mv_data), &run) < 0)
				continue;
			if (run->job_id == job_id && run_is_active(run->status))
				found = run->id;
			dbtd__run__free_unpacked(run, NULL);
		}
		mdb_cursor_close(cur);
	}
	op_end(st, txn, 0, 0);
	return found;
}

int
store_log_append(struct store *st, uint64_t run_id, uint32_t step,
                 uint32_t seq, const uint8_t *data, size_t len)
{
	MDB_txn *txn;
	uint8_t key[16];
	MDB_val k = { 16, key }, v = { len, (void *)data };
	int rc = op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, run_id);
	put_be32(key + 8, step);
	put_be32(key + 12, seq);
	rc = map_rc(mdb_put(txn, st->logs, &k, &v, 0));
	if (rc == 0 && st->batch) {
		if (st->log_bytes == 0)
			st->log_since_ms = now_ms();
		st->log_bytes += len;
	}
	return op_end(st, txn, 2, rc);
}

int
store_log_read(struct store *st, uint64_t run_id, uint32_t step,
               struct store_log_pos *pos, size_t budget,
               int (*fn)(void *arg, uint32_t step, uint32_t seq, const uint8_t *data,
                         size_t len), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t key[16];
	MDB_val k = { 16, key }, v;
	size_t given = 0;
	int n = 0, rc = op_begin(st, 0, &txn), mrc;

	if (rc < 0)
		return rc;
	rc = map_rc(mdb_cursor_open(txn, st->logs, &cur));
	if (rc < 0)
		return op_end(st, txn, 0, rc);
	put_be64(key, run_id);
	if (step && pos->step < step) {
		put_be32(key + 8, step);
		put_be32(key + 12, 0);
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else {
		put_be32(key + 8, pos->step);
		put_be32(key + 12, pos->seq);
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		/* skip the chunk the reader already has */
		if (mrc == 0 && (pos->step || pos->seq) && k.mv_size == 16 &&
		    memcmp(k.mv_data, key, 16) == 0)
			mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	for (; mrc == 0 && given < budget; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kp = k.mv_data;
		uint32_t kstep, kseq;
		if (k.mv_size != 16 || get_be64(kp) != run_id)
			break;
		kstep = get_be32(kp + 8);
		kseq = get_be32(kp + 12);
		if (step && kstep != step)
			break;
		pos->step = kstep;
		pos->seq = kseq;
		n++;
		given += v.mv_size;
		if (fn(arg, kstep, kseq, v.mv_data, v.mv_size))
			break;
	}
	mdb_cursor_close(cur);
	return op_end(st, txn, 0, n);
}

int
store_lineage_put(struct store *st, uint64_t run_id, const Dbtd__Lineage *l)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	int rc = pack_val(&l->base, &v);

	if (rc < 0)
		return rc;
	rc = op_begin(st, 1, &txn);
	if (rc == 0) {
		put_be64(key, run_id);
		rc = op_end(st, txn, 1, map_rc(mdb_put(txn, st->lineage, &k, &v, 0)));
	}
	free(v.mv_data);
	return rc;
}

int
store_lineage_get(struct store *st, uint64_t run_id, Dbtd__Lineage **out)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	int rc = op_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, run_id);
	rc = map_rc(mdb_get(txn, st->lineage, &k, &v));
	if (rc == 0)
		rc = unpack_val(&dbtd__lineage__descriptor, &v, (ProtobufCMessage **)out);
	return op_end(st, txn, 0, rc);
}

/* An artifact key: run id, then the path.  Returns its length, 0 if too long. */
static size_t
artifact_key(uint8_t *key, size_t cap, uint64_t run_id, const char *path)
{
	size_t n = strlen(path);

	if (8 + n > cap)
		return 0;
	put_be64(key, run_id);
	memcpy(key + 8, path, n);
	return 8 + n;
}

int
store_artifact_put(struct store *st, uint64_t run_id, const Dbtd__Artifact *a)
{
	MDB_txn *txn;
	uint8_t key[INDEX_KEY_MAX + 8];
	MDB_val k = { 0, key }, v;
	int rc;

	k.mv_size = artifact_key(key, sizeof(key), run_id, a->path);
	if (k.mv_size == 0)
		return -ENAMETOOLONG;
	rc = pack_val(&a->base, &v);
	if (rc < 0)
		return rc;
	rc = op_begin(st, 1, &txn);
	if (rc == 0)
		rc = op_end(st, txn, 1, map_rc(mdb_put(txn, st->artifacts, &k, &v, 0)));
	free(v.mv_data);
	return rc;
}

int
store_artifact_get(struct store *st, uint64_t run_id, const char *path, Dbtd__Artifact **out)
{
	MDB_txn *txn;
	uint8_t key[INDEX_KEY_MAX + 8];
	MDB_val k = { 0, key }, v;
	int rc;

	k.mv_size = artifact_key(key, sizeof(key), run_id, path);
	if (k.mv_size == 0)
		return -ENOENT;
	rc = op_begin(st, 0, &txn);
	if (rc < 0)
		return rc;
	rc = map_rc(mdb_get(txn, st->artifacts, &k, &v));
	if (rc == 0)
		rc = unpack_val(&dbtd__artifact__descriptor, &v, (ProtobufCMessage **)out);
	return op_end(st, txn, 0, rc);
}

int
store_artifacts_page(struct store *st, uint64_t run_id, const char *after, size_t max,
                     int (*fn)(void *arg, Dbtd__Artifact *a), void *arg, int *more)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t key[INDEX_KEY_MAX + 8];
	MDB_val k = { 8, key }, v;
	int rc, mrc, n = 0;

	if (more)
		*more = 0;
	put_be64(key, run_id);
	if (after != NULL && after[0] != '\0') {
		k.mv_size = artifact_key(key, sizeof(key), run_id, after);
		if (k.mv_size == 0)
			return -ENAMETOOLONG;
	}
	rc = op_begin(st, 0, &txn);
	if (rc < 0)
		return rc;
	rc = map_rc(mdb_cursor_open(txn, st->artifacts, &cur));
	if (rc < 0)
		return op_end(st, txn, 0, rc);
	/* the first key at or after run ‖ after; after itself was given before */
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (mrc == 0 && after != NULL && k.mv_size > 8 && k.mv_size - 8 == strlen(after) &&
	    memcmp((const uint8_t *)k.mv_data + 8, after, k.mv_size - 8) == 0)
		mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		Dbtd__Artifact *a;
		if (k.mv_size < 8 || get_be64(k.mv_data) != run_id)
			break;
		if (rc != 0 || (size_t)n == max) {
			/* the page is full or fn had enough: only say whether more follow */
			if (more)
				*more = 1;
			break;
		}
		if (unpack_val(&dbtd__artifact__descriptor, &v, (ProtobufCMessage **)&a) < 0)
			continue;
		n++;
		rc = fn(arg, a);
		if (rc < 0)
			break;
	}
	mdb_cursor_close(cur);
	rc = op_end(st, txn, 0, rc < 0 ? rc : 0);
	return rc < 0 ? rc : n;
}

int
store_artifacts_list(struct store *st, uint64_t run_id,
                     int (*fn)(void *arg, Dbtd__Artifact *a), void *arg)
{
	int rc = store_artifacts_page(st, run_id, NULL, SIZE_MAX, fn, arg, NULL);

	return rc < 0 ? rc : 0;
}
