/*
 * store_run_data.c - what the store keeps of a run beside its record (see
 * store.h): its step logs, its lineage graph, its artifact records (the
 * artifacts' content is in the blob store, not here).
 */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logrec.h"
#include "names.h"
#include "store_int.h"

/* Store a chunk of log records; check the room for it first unless `note`. */
static int
log_put(struct store *st, uint64_t run_id, uint32_t step, uint32_t seq,
        const uint8_t *data, size_t len, int note)
{
	MDB_txn *txn;
	uint8_t key[16];
	MDB_val k = { 16, key }, v = { len, (void *)data };
	int rc = note ? 0 : store_log_room(st, len);

	if (rc == 0)
		rc = store_op_begin(st, 1, &txn);
	if (rc < 0)
		return rc;
	put_be64(key, run_id);
	put_be32(key + 8, step);
	put_be32(key + 12, seq);
	rc = map_rc(mdb_put(txn, st->logs, &k, &v, 0));
	if (rc == 0)
		st->logged_since_disk += len;
	if (rc == 0 && st->batch) {
		if (st->log_bytes == 0)
			st->log_since_ms = now_ms();
		st->log_bytes += len;
	}
	return store_op_end(st, txn, 2, rc);
}

static int
log_read_op(struct store *st, uint64_t run_id, uint32_t step,
               struct store_log_pos *pos, size_t budget,
               int (*fn)(void *arg, uint32_t step, uint32_t seq, const uint8_t *data,
                         size_t len), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t key[16];
	MDB_val k = { 16, key }, v;
	size_t given = 0;
	int n = 0, rc = store_op_begin(st, 0, &txn), mrc;

	if (rc < 0)
		return rc;
	rc = map_rc(store_cur_open(st, txn, st->logs, &cur));
	if (rc < 0)
		return store_op_end(st, txn, 0, rc);
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
		size_t bad;
		if (k.mv_size != 16) {
			/* every key of logs is 16 bytes: this one is read off a damaged page */
			rc = store_damage(st, STORE_EDAMAGED, "database logs, run %llu, the page after "
			                  "chunk %u of step %u", (unsigned long long)run_id, pos->seq,
			                  pos->step);
			break;
		}
		if (get_be64(kp) != run_id)
			break;
		kstep = get_be32(kp + 8);
		kseq = get_be32(kp + 12);
		if (step && kstep != step)
			break;
		/* a reader never gets a chunk whose records do not frame: no short log */
		bad = 0;
		if (!store_val_ok(st, &v) || logrec_check(v.mv_data, v.mv_size, &bad) < 0) {
			rc = store_damage(st, -EBADMSG, "database logs, chunk %u of step %u of run %llu "
			                  "(%zu bytes; the log record at byte %zu runs past its end)",
			                  kseq, kstep, (unsigned long long)run_id, v.mv_size, bad);
			break;
		}
		pos->step = kstep;
		pos->seq = kseq;
		n++;
		given += v.mv_size;
		if (fn(arg, kstep, kseq, v.mv_data, v.mv_size))
			break;
	}
	if (rc == 0 && mrc != 0)
		rc = store_damage(st, store_cursor_end(mrc), "database logs, run %llu, the page "
		                  "after chunk %u of step %u", (unsigned long long)run_id, pos->seq,
		                  pos->step);
	store_cur_close(st, cur);
	return store_op_end(st, txn, 0, rc < 0 ? rc : n);
}

static int
lineage_put_op(struct store *st, uint64_t run_id, const Dbtd__Lineage *l)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	int rc = store_pack_val(&l->base, &v);

	if (rc < 0)
		return rc;
	rc = store_op_begin(st, 1, &txn);
	if (rc == 0) {
		put_be64(key, run_id);
		rc = store_op_end(st, txn, 1, map_rc(mdb_put(txn, st->lineage, &k, &v, 0)));
	}
	free(v.mv_data);
	return rc;
}

static int
lineage_get_op(struct store *st, uint64_t run_id, Dbtd__Lineage **out)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	int rc = store_op_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, run_id);
	rc = map_rc(mdb_get(txn, st->lineage, &k, &v));
	if (rc == 0)
		rc = store_unpack_val(st, &dbtd__lineage__descriptor, &v, (ProtobufCMessage **)out);
	store_damage(st, rc, "database lineage, the graph of run %llu", (unsigned long long)run_id);
	return store_op_end(st, txn, 0, rc);
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

static int
artifact_put_op(struct store *st, uint64_t run_id, const Dbtd__Artifact *a)
{
	MDB_txn *txn;
	uint8_t key[INDEX_KEY_MAX + 8];
	MDB_val k = { 0, key }, v;
	int rc;

	k.mv_size = artifact_key(key, sizeof(key), run_id, a->path);
	if (k.mv_size == 0)
		return -ENAMETOOLONG;
	rc = store_pack_val(&a->base, &v);
	if (rc < 0)
		return rc;
	rc = store_op_begin(st, 1, &txn);
	if (rc == 0)
		rc = store_op_end(st, txn, 1, map_rc(mdb_put(txn, st->artifacts, &k, &v, 0)));
	free(v.mv_data);
	return rc;
}

static int
artifact_get_op(struct store *st, uint64_t run_id, const char *path, Dbtd__Artifact **out)
{
	MDB_txn *txn;
	uint8_t key[INDEX_KEY_MAX + 8];
	MDB_val k = { 0, key }, v;
	int rc;

	k.mv_size = artifact_key(key, sizeof(key), run_id, path);
	if (k.mv_size == 0)
		return -ENOENT;
	rc = store_op_begin(st, 0, &txn);
	if (rc < 0)
		return rc;
	rc = map_rc(mdb_get(txn, st->artifacts, &k, &v));
	if (rc == 0)
		rc = store_unpack_val(st, &dbtd__artifact__descriptor, &v, (ProtobufCMessage **)out);
	store_damage(st, rc, "database artifacts, %s of run %llu", path, (unsigned long long)run_id);
	return store_op_end(st, txn, 0, rc);
}

static int
artifacts_page_op(struct store *st, uint64_t run_id, const char *after, size_t max,
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
	rc = store_op_begin(st, 0, &txn);
	if (rc < 0)
		return rc;
	rc = map_rc(store_cur_open(st, txn, st->artifacts, &cur));
	if (rc < 0)
		return store_op_end(st, txn, 0, rc);
	/* the first key at or after run ‖ after; after itself was given before */
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (mrc == 0 && after != NULL && k.mv_size > 8 && k.mv_size - 8 == strlen(after) &&
	    memcmp((const uint8_t *)k.mv_data + 8, after, k.mv_size - 8) == 0)
		mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		Dbtd__Artifact *a;
		if (k.mv_size <= 8) {
			rc = store_damage(st, STORE_EDAMAGED, "database artifacts, run %llu, the page "
			                  "after %d records", (unsigned long long)run_id, n);
			break;
		}
		if (get_be64(k.mv_data) != run_id)
			break;
		if (rc != 0 || (size_t)n == max) {
			/* the page is full or fn had enough: only say whether more follow */
			if (more)
				*more = 1;
			break;
		}
		rc = store_unpack_val(st, &dbtd__artifact__descriptor, &v, (ProtobufCMessage **)&a);
		if (rc < 0) {
			store_damage(st, rc, "database artifacts, run %llu, the record of %.*s",
			             (unsigned long long)run_id, (int)(k.mv_size - 8),
			             (const char *)k.mv_data + 8);
			break;
		}
		n++;
		rc = fn(arg, a);
		if (rc < 0)
			break;
	}
	if (rc >= 0 && mrc != 0)
		rc = store_damage(st, store_cursor_end(mrc), "database artifacts, run %llu, the "
		                  "page after %d records", (unsigned long long)run_id, n);
	store_cur_close(st, cur);
	rc = store_op_end(st, txn, 0, rc < 0 ? rc : 0);
	return rc < 0 ? rc : n;
}

int
store_artifacts_list(struct store *st, uint64_t run_id,
                     int (*fn)(void *arg, Dbtd__Artifact *a), void *arg)
{
	int rc = store_artifacts_page(st, run_id, NULL, SIZE_MAX, fn, arg, NULL);

	return rc < 0 ? rc : 0;
}

int
store_log_append(struct store *st, uint64_t run_id, uint32_t step,
                 uint32_t seq, const uint8_t *data, size_t len)
{
	STORE_GUARDED(st, log_put(st, run_id, step, seq, data, len, 0), "database logs, run %llu",
	              (unsigned long long)run_id);
}

int
store_log_note(struct store *st, uint64_t run_id, uint32_t step,
               uint32_t seq, const uint8_t *data, size_t len)
{
	STORE_GUARDED(st, log_put(st, run_id, step, seq, data, len, 1), "database logs, run %llu",
	              (unsigned long long)run_id);
}

int
store_log_read(struct store *st, uint64_t run_id, uint32_t step,
               struct store_log_pos *pos, size_t budget,
               int (*fn)(void *arg, uint32_t step, uint32_t seq, const uint8_t *data,
                         size_t len), void *arg)
{
	STORE_GUARDED(st, log_read_op(st, run_id, step, pos, budget, fn, arg), "database logs, run %llu", (unsigned long long)run_id);
}

int
store_lineage_put(struct store *st, uint64_t run_id, const Dbtd__Lineage *l)
{
	STORE_GUARDED(st, lineage_put_op(st, run_id, l), "database lineage, run %llu", (unsigned long long)run_id);
}

int
store_lineage_get(struct store *st, uint64_t run_id, Dbtd__Lineage **out)
{
	STORE_GUARDED(st, lineage_get_op(st, run_id, out), "database lineage, run %llu", (unsigned long long)run_id);
}

int
store_artifact_put(struct store *st, uint64_t run_id, const Dbtd__Artifact *a)
{
	STORE_GUARDED(st, artifact_put_op(st, run_id, a), "database artifacts, run %llu", (unsigned long long)run_id);
}

int
store_artifact_get(struct store *st, uint64_t run_id, const char *path, Dbtd__Artifact **out)
{
	STORE_GUARDED(st, artifact_get_op(st, run_id, path, out), "database artifacts, run %llu", (unsigned long long)run_id);
}

int
store_artifacts_page(struct store *st, uint64_t run_id, const char *after, size_t max,
                     int (*fn)(void *arg, Dbtd__Artifact *a), void *arg, int *more)
{
	STORE_GUARDED(st, artifacts_page_op(st, run_id, after, max, fn, arg, more), "database artifacts, run %llu", (unsigned long long)run_id);
}

/*
 * Delete (dry: only count) the records of database dbi whose key starts
 * with the 8-byte run id, inside txn; *n counts them and *bytes (may be
 * NULL) adds their sizes.  Each deletion seeks again, so no cursor is
 * trusted past a change.
 */
static int
delete_range(struct store *st, MDB_txn *txn, MDB_dbi dbi, uint64_t run_id, int dry, uint64_t *n,
             uint64_t *bytes)
{
	MDB_cursor *cur;
	uint8_t key[8];
	MDB_val k, v;
	int rc = map_rc(store_cur_open(st, txn, dbi, &cur)), mrc;

	if (rc < 0)
		return rc;
	put_be64(key, run_id);
	k.mv_size = 8;
	k.mv_data = key;
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (mrc == 0 && k.mv_size >= 8 && memcmp(k.mv_data, key, 8) == 0) {
		(*n)++;
		if (bytes)
			*bytes += v.mv_size;
		if (dry) {
			mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			continue;
		}
		mrc = mdb_cursor_del(cur, 0);
		if (mrc)
			break;
		k.mv_size = 8;
		k.mv_data = key;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	store_cur_close(st, cur);
	return mrc == 0 || mrc == MDB_NOTFOUND ? 0 : map_rc(mrc);
}

/*
 * Delete (dry: only count) what the store keeps of run_id beside its record,
 * inside txn: step logs, lineage, artifact records.  Counts go to f.
 */
int
store_run_data_delete_txn(struct store *st, MDB_txn *txn, uint64_t run_id, int dry,
                          struct store_freed *f)
{
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	int rc = delete_range(st, txn, st->logs, run_id, dry, &f->log_chunks, &f->log_bytes);

	if (rc == 0)
		rc = delete_range(st, txn, st->artifacts, run_id, dry, &f->artifacts, NULL);
	if (rc < 0)
		return rc;
	put_be64(key, run_id);
	rc = map_rc(mdb_get(txn, st->lineage, &k, &v));
	if (rc == -ENOENT)
		return 0;
	if (rc == 0) {
		f->lineages++;
		if (!dry)
			rc = map_rc(mdb_del(txn, st->lineage, &k, NULL));
	}
	return rc;
}
