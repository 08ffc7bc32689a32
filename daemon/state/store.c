/*
 * store.c - dbtd's state in LMDB (see store.h): the environment,
 * transactions and group commit, open and close, errors, the named objects
 * (projects, environments, jobs).  Runs are in store_runs.c, logs, lineage
 * and artifacts in store_run_data.c; what they share is in store_int.h.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "log.h"
#include "names.h"
#include "store.h"
#include "store_format.h"
#include "store_int.h"
#include "util.h"

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


/* Begin a transaction, retrying once after clearing stale readers. */
int
store_txn_begin(struct store *st, unsigned flags, MDB_txn **txn)
{
	int rc = mdb_txn_begin(st->env, NULL, flags, txn);

	if (rc == MDB_MAP_RESIZED && st->in_ops == 0 && st->batch == NULL) {
		/* another process grew the map: adopt its size */
		mdb_env_set_mapsize(st->env, 0);
		rc = mdb_txn_begin(st->env, NULL, flags, txn);
	}
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
int
store_op_begin(struct store *st, int write, MDB_txn **txn)
{
	int rc;

	*txn = NULL;
	if (st->batch_broken)
		return STORE_EDAMAGED; /* until the commit that drops the broken batch */
	if (st->grow_wanted && st->batch == NULL && st->in_ops == 0)
		store_map_maybe_grow(st);
	if (st->group && write && st->batch == NULL) {
		rc = store_txn_begin(st, 0, &st->batch);
		if (rc < 0)
			return rc;
	}
	if (st->batch) {
		if (!write) {
			*txn = st->batch;
			st->op_txn = st->batch;
			return 0;
		}
		rc = map_rc(mdb_txn_begin(st->env, st->batch, 0, txn));
	} else {
		rc = store_txn_begin(st, write ? 0 : MDB_RDONLY, txn);
	}
	if (rc == 0) {
		st->in_ops++;
		st->op_txn = *txn;
	}
	return rc;
}

/*
 * End an operation begun with store_op_begin: commit a write that succeeded.
 * write is 0 for a read, 1 for a state write, 2 for log lines.
 */
int
store_op_end(struct store *st, MDB_txn *txn, int write, int rc)
{
	if (txn == st->op_txn)
		st->op_txn = NULL;
	if (txn == st->batch)
		return rc;
	st->in_ops--;
	if (rc == STORE_EMAPFULL)
		st->grow_wanted = 1;
	if (!write || rc < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	if (st->batch && write == 1)
		st->state_dirty = 1;
	rc = txn_commit(txn);
	if (rc == STORE_EMAPFULL)
		st->grow_wanted = 1;
	if (st->batch == NULL)
		store_map_maybe_grow(st); /* a write of its own, committed: room for the next */
	return rc;
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
void
store_trim(struct store *st)
{
	/* mdb_env_info gives no address without MDB_FIXEDMAP: find_map's */
	if (st->map != NULL)
		madvise((void *)st->map, st->map_size, MADV_DONTNEED);
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
	if (st->batch_broken) {
		/* a guarded operation was cut short inside it: its state is unknown */
		st->batch_broken = 0;
		mdb_txn_abort(txn);
		rc = STORE_EDAMAGED;
	} else if (st->fail_n > 0) {
		st->fail_n--;
		mdb_txn_abort(txn);
		rc = st->fail_rc;
	} else {
		rc = txn_commit(txn);
	}
	/* LMDB says EIO for a short write: on a full disk that is what it was */
	if (rc == -EIO && store_disk_free(st, 1) < STORE_LOG_DISK_RESERVE)
		rc = -ENOSPC;
	if (rc == STORE_EMAPFULL)
		st->grow_wanted = 1;
	if (st->untrimmed >= TRIM_EVERY)
		store_trim(st);
	if (st->on_commit)
		st->on_commit(st->on_commit_arg, rc);
	store_map_maybe_grow(st);
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
int
store_pack_val(const ProtobufCMessage *msg, MDB_val *v)
{
	size_t n = protobuf_c_message_get_packed_size(msg);

	v->mv_data = malloc(n ? n : 1);
	if (v->mv_data == NULL)
		return -ENOMEM;
	v->mv_size = protobuf_c_message_pack(msg, v->mv_data);
	return 0;
}

/*
 * Where LMDB mapped the file: the mapping in /proc/self/maps that holds a
 * record just read (mdb_env_info gives no address unless MDB_FIXEDMAP).
 * Without /proc, st->map stays NULL and values are not checked.
 */
int
store_find_map(struct store *st)
{
	MDB_txn *txn;
	MDB_val k = { 6, (void *)"format" }, v;
	MDB_stat ms;
	FILE *fp;
	char line[512];
	int rc = store_txn_begin(st, MDB_RDONLY, &txn);

	if (rc < 0)
		return rc;
	rc = map_rc(mdb_get(txn, st->meta, &k, &v));
	if (rc == 0)
		rc = map_rc(mdb_env_stat(st->env, &ms));
	if (rc == 0 && (fp = fopen("/proc/self/maps", "re")) != NULL) {
		uintptr_t a = (uintptr_t)v.mv_data;
		while (fgets(line, sizeof(line), fp)) {
			unsigned long lo, hi;
			if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi) {
				st->map = (const char *)lo;
				st->psize = ms.ms_psize;
				break;
			}
		}
		fclose(fp);
	}
	mdb_txn_abort(txn);
	return rc;
}

int
store_val_ok(struct store *st, const MDB_val *v)
{
	MDB_envinfo info;
	const char *p = v->mv_data;
	size_t end;

	if (v->mv_size == 0)
		return 1;
	if (st->map == NULL || p < st->map || p >= st->map + st->map_size)
		return 1; /* nothing to check against, or a page a write copied to memory */
	if (mdb_env_info(st->env, &info) != 0)
		return 1;
	end = (info.me_last_pgno + 1) * st->psize;
	return (size_t)(p - st->map) <= end && v->mv_size <= end - (size_t)(p - st->map);
}

/* Unpack a stored record; -EBADMSG when it does not decode. */
int
store_unpack_val(struct store *st, const ProtobufCMessageDescriptor *desc, const MDB_val *v,
                 ProtobufCMessage **out)
{
	*out = NULL;
	if (!store_val_ok(st, v))
		return -EBADMSG;
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
int
store_next_id(struct store *st, MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *id)
{
	MDB_cursor *cur;
	MDB_val k, v, ck, cv;
	char ckey[32];
	uint8_t be[8];
	uint64_t next = 1;
	int rc = store_cur_open(st, txn, dbi, &cur);

	if (rc)
		return map_rc(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	store_cur_close(st, cur);
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
	if (st == NULL || (st->dir = strdup(dir)) == NULL) {
		free(st);
		return -ENOMEM;
	}
	st->max_map = STORE_MAP_MAX_DEFAULT;
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
	mdb_env_set_mapsize(st->env, STORE_MAP_START_DEFAULT);
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
	{
		MDB_envinfo info;
		if (mdb_env_info(st->env, &info) == 0)
			st->map_size = info.me_mapsize; /* at least what the file holds */
	}
	store_guard_install(st);
	rc = store_txn_begin(st, 0, &txn);
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
	if (rc == 0)
		rc = store_find_map(st);
	if (rc < 0)
		goto fail;
	*out = st;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (st->env)
		mdb_env_close(st->env);
	free(st->dir);
	free(st);
	return rc;
}

static int
format_info_op(struct store *st, Dbtd__StoreFormat **out)
{
	MDB_txn *txn;
	int rc = store_op_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	rc = store_format_get(txn, out);
	if (rc == 0 && *out == NULL)
		rc = -ENOENT;
	return store_op_end(st, txn, 0, rc);
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	store_commit(st);
	mdb_env_close(st->env);
	free(st->dir);
	free(st);
}

int
store_is_damage(int rc)
{
	return rc == STORE_EDAMAGED || rc == -EBADMSG;
}

enum err_kind
store_err_kind(int rc)
{
	switch (rc) {
	case -ENOENT: return ERR_NOT_FOUND;
	case -EEXIST: return ERR_EXISTS;
	case -ENOSPC: case STORE_EMAPFULL: case -EDQUOT: return ERR_NO_SPACE;
	case STORE_EDAMAGED: case -EBADMSG: return ERR_DAMAGED;
	default: return ERR_INTERNAL;
	}
}

int
store_damage(struct store *st, int rc, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!store_is_damage(rc))
		return rc;
	va_start(ap, fmt);
	n = vsnprintf(st->damage, sizeof(st->damage), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(st->damage))
		snprintf(st->damage + n, sizeof(st->damage) - (size_t)n, ": %s",
		         rc == STORE_EDAMAGED ? "a page of data.mdb that holds it is damaged"
		                              : "its stored record does not decode");
	log_err("store in %s is damaged: %s", st->dir, st->damage);
	return rc;
}

const char *
store_error(struct store *st, int rc)
{
	if (!store_is_damage(rc))
		return store_strerror(rc);
	snprintf(st->errbuf, sizeof(st->errbuf),
	         "the store in %s is damaged (%s); run `dbtd check --state-dir %s` to see all "
	         "the damage, and restore the state directory from a backup", st->dir,
	         st->damage[0] ? st->damage : store_strerror(rc), st->dir);
	st->damage[0] = '\0';
	return st->errbuf;
}

const char *
store_strerror(int rc)
{
	if (rc == STORE_EDAMAGED)
		return "the store is damaged: a page of data.mdb cannot be read; run `dbtd check` "
		       "and restore the state directory from a backup";
	if (rc == -EBADMSG)
		return "the store is damaged: a stored record does not decode; run `dbtd check` "
		       "and restore the state directory from a backup";
	if (rc == STORE_EMAPFULL)
		return "the store's map is full at its --max-map-size: nothing more can be saved "
		       "until runs are pruned (dbtctl run prune) or dbtd is started with a larger "
		       "--max-map-size";
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
	int rc = store_pack_val(msg, &v);

	if (rc == 0) {
		rc = map_rc(mdb_put(txn, st->obj[kind], key, &v, 0));
		free(v.mv_data);
	}
	return rc;
}

static int
obj_add_op(struct store *st, enum store_kind kind, ProtobufCMessage *msg,
              const char *name, uint64_t *idp)
{
	MDB_txn *txn;
	MDB_val k, nk = { strlen(name), (void *)name };
	uint8_t key[8];
	int rc = store_op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	rc = store_next_id(st, txn, st->obj[kind], obj_db_names[kind], idp);
	if (rc == 0) {
		put_be64(key, *idp);
		k.mv_data = key;
		k.mv_size = 8;
		rc = map_rc(mdb_put(txn, st->names[kind], &nk, &k, MDB_NOOVERWRITE));
	}
	if (rc == 0)
		rc = obj_write(st, txn, kind, &k, msg);
	return store_op_end(st, txn, 1, rc);
}

static int
obj_put_op(struct store *st, enum store_kind kind, uint64_t id, const ProtobufCMessage *msg)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key }, old;
	int rc = store_op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, id);
	rc = map_rc(mdb_get(txn, st->obj[kind], &k, &old));
	if (rc == 0)
		rc = obj_write(st, txn, kind, &k, msg);
	return store_op_end(st, txn, 1, rc);
}

/* The id in an 8-byte key (0 for a key of another size: damage). */
static uint64_t
key_id(const MDB_val *k)
{
	return k->mv_size == 8 ? get_be64(k->mv_data) : 0;
}

/* Read the object with the given 8-byte key inside txn. */
static int
obj_get_txn(struct store *st, MDB_txn *txn, enum store_kind kind,
            MDB_val *key, ProtobufCMessage **out)
{
	MDB_val v;
	int rc = map_rc(mdb_get(txn, st->obj[kind], key, &v));

	if (rc == 0)
		rc = store_unpack_val(st, obj_desc[kind], &v, out);
	return store_damage(st, rc, "database %s, record %llu", obj_db_names[kind],
	                    (unsigned long long)key_id(key));
}

static int
obj_get_op(struct store *st, enum store_kind kind, uint64_t id,
              ProtobufCMessage **out)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key };
	int rc = store_op_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, id);
	rc = obj_get_txn(st, txn, kind, &k, out);
	return store_op_end(st, txn, 0, rc);
}

static int
obj_find_op(struct store *st, enum store_kind kind, const char *name,
               ProtobufCMessage **out)
{
	MDB_txn *txn;
	MDB_val nk = { strlen(name), (void *)name }, k;
	int rc;

	if (nk.mv_size == 0 || nk.mv_size > 256)
		return -ENOENT;
	rc = store_op_begin(st, 0, &txn);
	if (rc < 0)
		return rc;
	rc = map_rc(mdb_get(txn, st->names[kind], &nk, &k));
	if (rc < 0) {
		store_damage(st, rc, "database %s, the entry of \"%s\"", name_db_names[kind], name);
	} else if (k.mv_size != 8) {
		rc = store_damage(st, -EBADMSG, "database %s, the entry of \"%s\"",
		                  name_db_names[kind], name);
	} else {
		rc = obj_get_txn(st, txn, kind, &k, out);
		if (rc == -ENOENT) /* the name is indexed, its record is not there */
			rc = store_damage(st, STORE_EDAMAGED, "database %s, \"%s\" names %s record "
			                  "%llu, which %s does not hold", name_db_names[kind], name,
			                  obj_db_names[kind], (unsigned long long)key_id(&k),
			                  obj_db_names[kind]);
	}
	return store_op_end(st, txn, 0, rc);
}

static int
obj_list_op(struct store *st, enum store_kind kind,
               int (*fn)(void *arg, ProtobufCMessage *msg), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t last = 0;
	int rc = store_op_begin(st, 0, &txn), mrc;

	if (rc < 0)
		return rc;
	rc = map_rc(store_cur_open(st, txn, st->obj[kind], &cur));
	if (rc < 0)
		return store_op_end(st, txn, 0, rc);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ProtobufCMessage *msg;
		if (k.mv_size != 8) {
			rc = store_damage(st, STORE_EDAMAGED, "database %s, the page after record %llu",
			                  obj_db_names[kind], (unsigned long long)last);
			break;
		}
		last = key_id(&k);
		rc = store_unpack_val(st, obj_desc[kind], &v, &msg);
		if (rc < 0) {
			store_damage(st, rc, "database %s, record %llu", obj_db_names[kind],
			             (unsigned long long)key_id(&k));
			break;
		}
		rc = fn(arg, msg);
		if (rc)
			break;
	}
	if (rc == 0)
		rc = store_damage(st, store_cursor_end(mrc), "database %s, the page after record %llu",
		                  obj_db_names[kind], (unsigned long long)last);
	store_cur_close(st, cur);
	return store_op_end(st, txn, 0, rc);
}

static int
obj_remove_op(struct store *st, enum store_kind kind, uint64_t id,
                 const char *name)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key }, nk = { strlen(name), (void *)name };
	int rc = store_op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, id);
	rc = map_rc(mdb_del(txn, st->obj[kind], &k, NULL));
	if (rc == 0)
		rc = map_rc(mdb_del(txn, st->names[kind], &nk, NULL));
	return store_op_end(st, txn, 1, rc);
}

int
store_obj_add(struct store *st, enum store_kind kind, ProtobufCMessage *msg,
              const char *name, uint64_t *idp)
{
	STORE_GUARDED(st, obj_add_op(st, kind, msg, name, idp), "database %s, adding \"%s\"", obj_db_names[kind], name);
}

int
store_obj_put(struct store *st, enum store_kind kind, uint64_t id, const ProtobufCMessage *msg)
{
	STORE_GUARDED(st, obj_put_op(st, kind, id, msg), "database %s, record %llu", obj_db_names[kind], (unsigned long long)id);
}

int
store_obj_get(struct store *st, enum store_kind kind, uint64_t id,
              ProtobufCMessage **out)
{
	STORE_GUARDED(st, obj_get_op(st, kind, id, out), "database %s, record %llu", obj_db_names[kind], (unsigned long long)id);
}

int
store_obj_find(struct store *st, enum store_kind kind, const char *name,
               ProtobufCMessage **out)
{
	STORE_GUARDED(st, obj_find_op(st, kind, name, out), "database %s, the entry of \"%s\"", name_db_names[kind], name);
}

int
store_obj_list(struct store *st, enum store_kind kind,
               int (*fn)(void *arg, ProtobufCMessage *msg), void *arg)
{
	STORE_GUARDED(st, obj_list_op(st, kind, fn, arg), "database %s", obj_db_names[kind]);
}

int
store_obj_remove(struct store *st, enum store_kind kind, uint64_t id,
                 const char *name)
{
	STORE_GUARDED(st, obj_remove_op(st, kind, id, name), "database %s, record %llu", obj_db_names[kind], (unsigned long long)id);
}

int
store_format_info(struct store *st, Dbtd__StoreFormat **out)
{
	STORE_GUARDED(st, format_info_op(st, out), "database meta, the format record");
}
