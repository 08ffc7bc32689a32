/*
 * store_prune.c - retention in the store (see store.h): which finished runs
 * a job's policy no longer keeps, and deleting a run with everything it
 * left (index entries, step logs, lineage, artifact records) in one write.
 * The artifact contents (blobs) are files: the engine sweeps them once the
 * records that referred to them are gone.
 */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define DAY_MS (86400 * (int64_t)1000)

/* Delete (dry: count) run inside txn: record, indexes, logs, lineage, artifacts. */
static int
delete_txn(struct store *st, MDB_txn *txn, const Dbtd__Run *run, int dry,
           struct store_freed *f)
{
	int rc = store_run_data_delete_txn(st, txn, run->id, dry, f);

	if (rc == 0 && !dry)
		rc = store_run_unindex_txn(st, txn, run);
	if (rc == 0)
		f->runs++;
	return rc;
}

int
store_run_delete(struct store *st, uint64_t id, int dry, struct store_freed *f)
{
	struct store_freed got = { 0 };
	Dbtd__Run *run = NULL;
	MDB_txn *txn;
	int rc = store_op_begin(st, !dry, &txn);

	if (rc < 0)
		return rc;
	rc = store_run_get_txn(st, txn, id, &run);
	if (rc == 0 && (store_status_active(run->status) || store_run_active_txn(st, txn, id)))
		rc = -EBUSY;
	if (rc == 0)
		rc = delete_txn(st, txn, run, dry, &got);
	if (run)
		dbtd__run__free_unpacked(run, NULL);
	rc = store_op_end(st, txn, !dry, rc);
	if (rc == 0) {
		f->runs += got.runs;
		f->log_chunks += got.log_chunks;
		f->log_bytes += got.log_bytes;
		f->lineages += got.lineages;
		f->artifacts += got.artifacts;
	}
	return rc;
}

/* The by_job key of job's run id: name, NUL, id big-endian.  Its length. */
static size_t
job_key(uint8_t *key, const char *job, uint64_t id)
{
	size_t n = strlen(job);

	memcpy(key, job, n);
	key[n] = 0;
	put_be64(key + n + 1, id);
	return n + 9;
}

/* Whether by_job key k belongs to job (prefix name NUL, then 8 bytes). */
static int
key_of_job(const MDB_val *k, const char *job)
{
	size_t n = strlen(job);

	return k->mv_size == n + 9 && memcmp(k->mv_data, job, n) == 0 &&
	       ((const uint8_t *)k->mv_data)[n] == 0;
}

/* The policy of job (its record's, else global), read inside txn. */
static void
job_policy(struct store *st, MDB_txn *txn, const char *job, const struct store_keep *global,
           struct store_keep *out)
{
	MDB_val nk = { strlen(job), (void *)job }, id, v;
	Dbtd__Job *j;

	*out = *global;
	if (nk.mv_size == 0 || mdb_get(txn, st->names[STORE_JOB], &nk, &id) != 0 ||
	    mdb_get(txn, st->obj[STORE_JOB], &id, &v) != 0 ||
	    store_unpack_val(st, &dbtd__job__descriptor, &v, (ProtobufCMessage **)&j) < 0)
		return; /* a removed job: the global policy */
	if (j->keep_runs)
		out->runs = j->keep_runs;
	if (j->keep_days)
		out->days = j->keep_days;
	dbtd__job__free_unpacked(j, NULL);
}

/*
 * Start on pos->job: its policy, its newest finished run, and the id below
 * which finished runs are past keep.runs (walking back from the newest,
 * keep.runs finished runs: the cost of the count is the runs kept).
 */
static int
job_begin(struct store *st, MDB_txn *txn, struct store_prune_pos *pos,
          const struct store_keep *global, int64_t now_ms)
{
	uint8_t key[sizeof(pos->job) + 9];
	struct store_keep keep;
	MDB_cursor *cur;
	MDB_val k = { 0, key }, v;
	uint64_t finished = 0;
	int rc, mrc;

	job_policy(st, txn, pos->job, global, &keep);
	pos->keep_runs = keep.runs;
	pos->keep_days = keep.days;
	pos->keep_from = 0;
	pos->newest = 0;
	pos->next_id = 0;
	pos->cutoff_ms = keep.days ? now_ms - (int64_t)keep.days * DAY_MS : 0;
	pos->in_job = 1;
	rc = map_rc(store_cur_open(st, txn, st->by_job, &cur));
	if (rc < 0)
		return rc;
	k.mv_size = job_key(key, pos->job, UINT64_MAX);
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	mrc = mrc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
	               : mdb_cursor_get(cur, &k, &v, MDB_LAST);
	for (; mrc == 0 && key_of_job(&k, pos->job); mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
		uint64_t id = get_be64((const uint8_t *)k.mv_data + k.mv_size - 8);
		if (store_run_active_txn(st, txn, id))
			continue;
		if (finished++ == 0)
			pos->newest = id;
		if (keep.runs && finished == keep.runs) {
			pos->keep_from = id;
			break;
		}
		if (!keep.runs)
			break; /* only the newest was wanted */
	}
	store_cur_close(st, cur);
	return 0;
}

/* Move pos to the job after pos->job (or end the pass).  0 or -errno. */
static int
next_job(struct store *st, MDB_txn *txn, struct store_prune_pos *pos)
{
	uint8_t key[sizeof(pos->job) + 9];
	MDB_cursor *cur;
	MDB_val k = { 0, key }, v;
	size_t n;
	int rc, mrc;

	pos->in_job = 0;
	if (pos->only_job[0]) {
		if (pos->job[0]) {
			pos->done = 1;
			return 0;
		}
		memcpy(pos->job, pos->only_job, sizeof(pos->job));
		return 0;
	}
	rc = map_rc(store_cur_open(st, txn, st->by_job, &cur));
	if (rc < 0)
		return rc;
	if (pos->job[0]) {
		k.mv_size = job_key(key, pos->job, UINT64_MAX);
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else {
		mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	if (mrc == 0 && k.mv_size > 8 &&
	    (n = strnlen(k.mv_data, k.mv_size - 8)) < sizeof(pos->job) && n + 9 == k.mv_size) {
		memcpy(pos->job, k.mv_data, n);
		pos->job[n] = '\0';
	} else if (mrc == 0) {
		/* a key dbtd did not write: nothing more to walk safely */
		pos->done = 1;
	} else {
		pos->done = 1;
		rc = mrc == MDB_NOTFOUND ? 0 : map_rc(mrc);
	}
	store_cur_close(st, cur);
	return rc;
}

/* Whether run, finished, is past the job's policy as pos holds it. */
static int
past_policy(const struct store_prune_pos *pos, const Dbtd__Run *run)
{
	int64_t t = run->finished_at_ms ? run->finished_at_ms : run->created_at_ms;

	if (run->id >= pos->newest)
		return 0;
	if (pos->keep_from && run->id < pos->keep_from)
		return 1;
	return pos->cutoff_ms && t < pos->cutoff_ms;
}

/*
 * Whether nothing after run in this job can be past the policy: beyond the
 * count boundary, and created after the age cutoff (later runs were
 * created later still, and finished after they were created).
 */
static int
rest_kept(const struct store_prune_pos *pos, const Dbtd__Run *run)
{
	return (!pos->keep_from || run->id >= pos->keep_from) &&
	       (!pos->cutoff_ms || run->created_at_ms >= pos->cutoff_ms);
}

int
store_prune_step(struct store *st, struct store_prune_pos *pos,
                 const struct store_keep *global, int64_t now_ms, int dry,
                 unsigned max_runs, unsigned max_keys, struct store_freed *f,
                 void (*fn)(void *arg, uint64_t id), void *arg)
{
	struct store_freed got = { 0 };
	uint8_t key[sizeof(pos->job) + 9];
	unsigned keys = 0;
	MDB_txn *txn;
	int rc;

	if (pos->done)
		return 0;
	rc = store_op_begin(st, !dry, &txn);
	if (rc < 0)
		return rc;
	while (rc == 0 && !pos->done && keys < max_keys && got.runs < max_runs) {
		MDB_cursor *cur;
		MDB_val k = { 0, key }, v;
		Dbtd__Run *run;
		uint64_t id;
		int mrc;

		if (!pos->in_job) {
			rc = next_job(st, txn, pos);
			if (rc == 0 && !pos->done)
				rc = job_begin(st, txn, pos, global, now_ms);
			keys += 1 + pos->keep_runs / 64; /* the count walked back over the kept */
			if (rc == 0 && !pos->done && pos->keep_from == 0 && pos->cutoff_ms == 0)
				pos->in_job = 0; /* no limit for this job: go on to the next */
			if (rc == 0 && !pos->done && pos->newest == 0)
				pos->in_job = 0; /* nothing finished */
			continue;
		}
		/* seek again after every deletion: no cursor is trusted past a change */
		rc = map_rc(store_cur_open(st, txn, st->by_job, &cur));
		if (rc < 0)
			break;
		k.mv_size = job_key(key, pos->job, pos->next_id);
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		id = mrc == 0 && key_of_job(&k, pos->job)
		     ? get_be64((const uint8_t *)k.mv_data + k.mv_size - 8) : 0;
		store_cur_close(st, cur);
		if (mrc != 0 && mrc != MDB_NOTFOUND) {
			rc = map_rc(mrc);
			break;
		}
		keys++;
		if (id == 0 || id >= pos->newest) {
			pos->in_job = 0; /* the job's newest finished run and later: kept */
			continue;
		}
		pos->next_id = id + 1;
		if (store_run_get_txn(st, txn, id, &run) < 0)
			continue; /* an index entry without a readable run: left to dbtd check */
		if (store_status_active(run->status) || store_run_active_txn(st, txn, id)) {
			dbtd__run__free_unpacked(run, NULL);
			continue;
		}
		if (past_policy(pos, run)) {
			rc = delete_txn(st, txn, run, dry, &got);
			if (rc == 0 && fn)
				fn(arg, id);
		} else if (rest_kept(pos, run)) {
			pos->in_job = 0;
		}
		dbtd__run__free_unpacked(run, NULL);
	}
	rc = store_op_end(st, txn, !dry, rc);
	if (rc < 0)
		return rc;
	f->runs += got.runs;
	f->log_chunks += got.log_chunks;
	f->log_bytes += got.log_bytes;
	f->lineages += got.lineages;
	f->artifacts += got.artifacts;
	return pos->done ? 0 : 1;
}

int
store_artifacts_scan(struct store *st, struct store_scan *pos, size_t max,
                     void (*fn)(void *arg, uint64_t run_id, const char *digest), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = { pos->klen, pos->key }, v;
	size_t n = 0;
	int rc, mrc;

	if (pos->done)
		return 0;
	rc = store_op_begin(st, 0, &txn);
	if (rc < 0)
		return rc;
	rc = map_rc(store_cur_open(st, txn, st->artifacts, &cur));
	if (rc < 0)
		return store_op_end(st, txn, 0, rc);
	if (pos->klen == 0) {
		mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	} else {
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (mrc == 0 && k.mv_size == pos->klen && memcmp(k.mv_data, pos->key, pos->klen) == 0)
			mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	for (; mrc == 0 && n < max; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		Dbtd__Artifact *a;
		if (k.mv_size < 8 || k.mv_size > sizeof(pos->key))
			continue;
		memcpy(pos->key, k.mv_data, k.mv_size);
		pos->klen = k.mv_size;
		n++;
		if (store_unpack_val(st, &dbtd__artifact__descriptor, &v, (ProtobufCMessage **)&a) < 0)
			continue;
		if (fn)
			fn(arg, get_be64(k.mv_data), a->digest);
		dbtd__artifact__free_unpacked(a, NULL);
	}
	store_cur_close(st, cur);
	if (mrc == MDB_NOTFOUND)
		pos->done = 1;
	else if (mrc != 0)
		rc = map_rc(mrc);
	rc = store_op_end(st, txn, 0, rc);
	if (rc < 0)
		return rc;
	return (int)n;
}

uint64_t
store_artifacts_count(struct store *st)
{
	MDB_txn *txn;
	MDB_stat s;
	uint64_t n = 0;

	if (store_op_begin(st, 0, &txn) < 0)
		return 0;
	if (mdb_stat(txn, st->artifacts, &s) == 0)
		n = s.ms_entries;
	store_op_end(st, txn, 0, 0);
	return n;
}
