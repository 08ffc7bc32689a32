/*
 * store_runs.c - runs in the store (see store.h) and their indexes: by job,
 * branch, status and trigger, and the runs still active.
 */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

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
	rc = store_pack_val(&run->base, &v);
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

static int
run_create_op(struct store *st, Dbtd__Run *run)
{
	MDB_txn *txn;
	int rc = store_op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	rc = store_next_id(st, txn, st->runs, "runs", &run->id);
	if (rc == 0)
		rc = run_put_txn(st, txn, run, DBTD__RUN_STATUS__RUN_STATUS_UNSPECIFIED);
	return store_op_end(st, txn, 1, rc);
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
	if (rc == 0)
		rc = store_unpack_val(st, &dbtd__run__descriptor, &v, (ProtobufCMessage **)out);
	return store_damage(st, rc, "database runs, run %llu", (unsigned long long)id);
}

static int
run_put_op(struct store *st, const Dbtd__Run *run)
{
	Dbtd__Run *prev = NULL;
	Dbtd__RunStatus old;
	MDB_txn *txn;
	int rc = store_op_begin(st, 1, &txn);

	if (rc < 0)
		return rc;
	rc = run_get_txn(st, txn, run->id, &prev);
	if (rc == 0) {
		old = prev->status;
		dbtd__run__free_unpacked(prev, NULL);
		rc = run_put_txn(st, txn, run, old);
	}
	return store_op_end(st, txn, 1, rc);
}

static int
run_get_op(struct store *st, uint64_t id, Dbtd__Run **out)
{
	MDB_txn *txn;
	int rc = store_op_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	rc = run_get_txn(st, txn, id, out);
	return store_op_end(st, txn, 0, rc);
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
walk_index(struct store *st, MDB_txn *txn, MDB_dbi dbi, const char *name,
           const uint8_t *prefix, size_t plen, const struct store_run_filter *f,
           uint64_t before, unsigned limit, int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	uint8_t key[INDEX_KEY_MAX + 8];
	MDB_cursor *cur;
	MDB_val k = { 0, key }, v;
	unsigned n = 0;
	uint64_t id = 0;
	int rc = map_rc(store_cur_open(st, txn, dbi, &cur)), mrc;

	if (rc < 0)
		return rc;
	k.mv_size = index_key(key, sizeof(key), prefix, plen, before ? before : UINT64_MAX);
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (mrc == 0 || mrc == MDB_NOTFOUND)
		mrc = mrc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
		               : mdb_cursor_get(cur, &k, &v, MDB_LAST);
	for (; mrc == 0 && n < limit; mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
		Dbtd__Run *run;
		if (k.mv_size < 9) { /* every index key is a prefix and a run id */
			rc = store_damage(st, STORE_EDAMAGED, "database %s, the page before the entry "
			                  "of run %llu", name, (unsigned long long)id);
			break;
		}
		if (k.mv_size != plen + 8 || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		id = get_be64((uint8_t *)k.mv_data + plen);
		rc = run_get_txn(st, txn, id, &run);
		if (rc == -ENOENT) /* the index names a run the store does not hold */
			rc = store_damage(st, STORE_EDAMAGED, "database %s, an entry for run %llu, "
			                  "which database runs does not hold", name,
			                  (unsigned long long)id);
		if (rc < 0)
			break;
		if (!run_matches(run, f)) {
			dbtd__run__free_unpacked(run, NULL);
			continue;
		}
		n++;
		rc = fn(arg, run);
		if (rc)
			break;
	}
	if (rc == 0 && n < limit)
		rc = store_damage(st, store_cursor_end(mrc), "database %s, the page before the "
		                  "entry of run %llu", name, (unsigned long long)id);
	store_cur_close(st, cur);
	return rc;
}

static int
run_list_op(struct store *st, const struct store_run_filter *f,
               uint64_t before, unsigned limit,
               int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	uint8_t prefix[INDEX_KEY_MAX];
	MDB_dbi dbi = st->runs;
	const char *name = "runs";
	size_t plen = 0;
	MDB_txn *txn;
	int rc;

	/* Walk the most selective index the filter allows; check the rest per run. */
	if (f && f->job && f->job[0]) {
		dbi = st->by_job;
		name = "runs_by_job";
		plen = str_prefix(prefix, sizeof(prefix), f->job);
	} else if (f && f->branch && f->branch[0]) {
		dbi = st->by_branch;
		name = "runs_by_branch";
		plen = str_prefix(prefix, sizeof(prefix), f->branch);
	} else if (f && f->status) {
		dbi = st->by_status;
		name = "runs_by_status";
		prefix[0] = (uint8_t)f->status;
		plen = 1;
	} else if (f && f->trigger) {
		dbi = st->by_trigger;
		name = "runs_by_trigger";
		prefix[0] = (uint8_t)f->trigger;
		plen = 1;
	}
	rc = store_op_begin(st, 0, &txn);
	if (rc < 0)
		return rc;
	if (dbi == st->runs) {
		/* no index: the runs themselves, keyed by id */
		MDB_cursor *cur;
		MDB_val k, v;
		uint8_t key[8];
		uint64_t id = before;
		unsigned n = 0;
		int mrc;

		rc = map_rc(store_cur_open(st, txn, st->runs, &cur));
		if (rc < 0)
			return store_op_end(st, txn, 0, rc);
		put_be64(key, before ? before : UINT64_MAX);
		k.mv_data = key;
		k.mv_size = 8;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (mrc == 0 || mrc == MDB_NOTFOUND)
			mrc = mrc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
			               : mdb_cursor_get(cur, &k, &v, MDB_LAST);
		for (; mrc == 0 && n < limit; mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
			Dbtd__Run *run;
			if (k.mv_size != 8) {
				rc = store_damage(st, STORE_EDAMAGED, "database runs, the page before "
				                  "run %llu", (unsigned long long)id);
				break;
			}
			id = get_be64(k.mv_data);
			rc = store_unpack_val(st, &dbtd__run__descriptor, &v, (ProtobufCMessage **)&run);
			if (rc < 0) {
				store_damage(st, rc, "database runs, run %llu", (unsigned long long)id);
				break;
			}
			if (!run_matches(run, f)) {
				dbtd__run__free_unpacked(run, NULL);
				continue;
			}
			n++;
			rc = fn(arg, run);
			if (rc)
				break;
		}
		if (rc == 0 && n < limit)
			rc = store_damage(st, store_cursor_end(mrc), "database runs, the page before "
			                  "run %llu", (unsigned long long)id);
		store_cur_close(st, cur);
	} else {
		rc = walk_index(st, txn, dbi, name, prefix, plen, f, before, limit, fn, arg);
	}
	return store_op_end(st, txn, 0, rc);
}

static int
runs_active_op(struct store *st, int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc = store_op_begin(st, 0, &txn), mrc, drc = 0;

	if (rc < 0)
		return rc;
	rc = map_rc(store_cur_open(st, txn, st->runs_active, &cur));
	if (rc < 0)
		return store_op_end(st, txn, 0, rc);
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
		ids[n++] = k.mv_size == 8 ? get_be64(k.mv_data) : 0;
	}
	/* a damaged page: the entries read before it are settled all the same */
	if (rc == 0)
		drc = store_damage(st, store_cursor_end(mrc), "database runs_active, the page "
		                   "after %zu entries", n);
	store_cur_close(st, cur);
	store_op_end(st, txn, 0, 0);
	/*
	 * fn may write (e.g. mark a run Failed): call it outside the read.  An
	 * active run that cannot be read is logged (store_damage) and left out:
	 * the others are settled all the same.
	 */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		Dbtd__Run *run;
		int grc = store_run_get(st, ids[i], &run);
		if (grc == -ENOENT)
			store_damage(st, STORE_EDAMAGED, "database runs_active, an entry for run %llu, "
			             "which database runs does not hold", (unsigned long long)ids[i]);
		if (grc < 0)
			continue;
		rc = fn(arg, run);
	}
	free(ids);
	return rc ? rc : drc;
}

/* The job's Queued/Running run into *found (0: none); damage is logged, not fatal. */
static int
job_active_run_op(struct store *st, uint64_t job_id, uint64_t *found)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int mrc;

	if (store_op_begin(st, 0, &txn) < 0)
		return 0;
	if (store_cur_open(st, txn, st->runs_active, &cur) == 0) {
		for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && !*found;
		     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			Dbtd__Run *run;
			if (k.mv_size != 8 || run_get_txn(st, txn, get_be64(k.mv_data), &run) < 0)
				continue;
			if (run->job_id == job_id && run_is_active(run->status))
				*found = run->id;
			dbtd__run__free_unpacked(run, NULL);
		}
		store_cur_close(st, cur);
	}
	store_op_end(st, txn, 0, 0);
	return 0;
}

/* store_job_active_run as a guarded operation. */
static int
job_active_run_guarded(struct store *st, uint64_t job_id, uint64_t *found)
{
	STORE_GUARDED(st, job_active_run_op(st, job_id, found), "database runs_active");
}

uint64_t
store_job_active_run(struct store *st, uint64_t job_id)
{
	uint64_t found = 0;

	job_active_run_guarded(st, job_id, &found);
	return found;
}

int
store_run_create(struct store *st, Dbtd__Run *run)
{
	STORE_GUARDED(st, run_create_op(st, run), "database runs, a new run");
}

int
store_run_put(struct store *st, const Dbtd__Run *run)
{
	STORE_GUARDED(st, run_put_op(st, run), "database runs, run %llu", (unsigned long long)run->id);
}

int
store_run_get(struct store *st, uint64_t id, Dbtd__Run **out)
{
	STORE_GUARDED(st, run_get_op(st, id, out), "database runs, run %llu", (unsigned long long)id);
}

int
store_run_list(struct store *st, const struct store_run_filter *f,
               uint64_t before, unsigned limit,
               int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	STORE_GUARDED(st, run_list_op(st, f, before, limit, fn, arg), "database runs and its indexes, listing runs");
}

int
store_runs_active(struct store *st, int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	STORE_GUARDED(st, runs_active_op(st, fn, arg), "database runs_active");
}

/*
 * Remove run (read from txn) and its index entries inside txn: by job,
 * branch, status and trigger, and the active set (in case).
 */
int
store_run_unindex_txn(struct store *st, MDB_txn *txn, const Dbtd__Run *run)
{
	uint8_t key[8], p[INDEX_KEY_MAX], sb = (uint8_t)run->status, tb = (uint8_t)run->trigger;
	MDB_val k = { 8, key };
	int rc;

	put_be64(key, run->id);
	rc = map_rc(mdb_del(txn, st->runs, &k, NULL));
	if (rc == 0)
		rc = index_put(txn, st->by_job, p, str_prefix(p, sizeof(p), run->job), run->id, 1);
	if (rc == 0)
		rc = index_put(txn, st->by_branch, p, str_prefix(p, sizeof(p), run->branch),
		               run->id, 1);
	if (rc == 0)
		rc = index_put(txn, st->by_status, &sb, 1, run->id, 1);
	if (rc == 0)
		rc = index_put(txn, st->by_trigger, &tb, 1, run->id, 1);
	if (rc == 0) {
		rc = map_rc(mdb_del(txn, st->runs_active, &k, NULL));
		if (rc == -ENOENT)
			rc = 0;
	}
	return rc;
}

/* Read run id inside txn (store_prune.c). */
int
store_run_get_txn(struct store *st, MDB_txn *txn, uint64_t id, Dbtd__Run **out)
{
	return run_get_txn(st, txn, id, out);
}

/* True when the run with id is Queued or Running (in the active set), inside txn. */
int
store_run_active_txn(struct store *st, MDB_txn *txn, uint64_t id)
{
	uint8_t key[8];
	MDB_val k = { 8, key }, v;

	put_be64(key, id);
	return mdb_get(txn, st->runs_active, &k, &v) == 0;
}

/* The status of a run that can still change: Queued or Running. */
int
store_status_active(Dbtd__RunStatus s)
{
	return run_is_active(s);
}
