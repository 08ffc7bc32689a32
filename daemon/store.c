/* store.c - dbtd's state in LMDB (see store.h). */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "store.h"
#include "util.h"

#define STORE_MAP_SIZE ((size_t)64 << 30) /* address space only; the file grows as needed */
#define STORE_MAX_DBS 16

struct store {
	MDB_env *env;
	MDB_dbi obj[3], names[3];
	MDB_dbi runs, runs_by_job, runs_active, logs;
};

static const char *const obj_db_names[3] = { "projects", "environments", "jobs" };
static const char *const name_db_names[3] = {
	"project_names", "environment_names", "job_names",
};
static const ProtobufCMessageDescriptor *const obj_desc[3] = {
	&dbtd__project__descriptor, &dbtd__environment__descriptor,
	&dbtd__job__descriptor,
};

/* Map an LMDB or errno result to 0 or a negative errno. */
static int
map_rc(int rc)
{
	switch (rc) {
	case MDB_SUCCESS: return 0;
	case MDB_NOTFOUND: return -ENOENT;
	case MDB_KEYEXIST: return -EEXIST;
	case MDB_MAP_FULL: return -ENOSPC;
	case MDB_READERS_FULL: return -EAGAIN;
	default:
		if (rc > 0)
			return -rc;
		log_err("store: %s", mdb_strerror(rc));
		return -EIO;
	}
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

/* The id after the largest key of an id-keyed database. */
static int
next_id(MDB_txn *txn, MDB_dbi dbi, uint64_t *id)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &cur);

	if (rc)
		return map_rc(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND) {
		*id = 1;
		return 0;
	}
	if (rc)
		return map_rc(rc);
	*id = k.mv_size == 8 ? get_be64(k.mv_data) + 1 : 1;
	return 0;
}

int
store_open(struct store **out, const char *dir)
{
	struct store *st = calloc(1, sizeof(*st));
	MDB_txn *txn = NULL;
	int rc;

	if (st == NULL)
		return -ENOMEM;
	rc = mkdir_p(dir, 0700);
	if (rc < 0)
		goto fail;
	rc = map_rc(mdb_env_create(&st->env));
	if (rc < 0)
		goto fail;
	mdb_env_set_mapsize(st->env, STORE_MAP_SIZE);
	mdb_env_set_maxdbs(st->env, STORE_MAX_DBS);
	mdb_env_set_maxreaders(st->env, 126);
	rc = map_rc(mdb_env_open(st->env, dir, MDB_NOTLS, 0600));
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
	rc = map_rc(mdb_dbi_open(txn, "runs", MDB_CREATE, &st->runs));
	if (rc == 0)
		rc = map_rc(mdb_dbi_open(txn, "runs_by_job", MDB_CREATE, &st->runs_by_job));
	if (rc == 0)
		rc = map_rc(mdb_dbi_open(txn, "runs_active", MDB_CREATE, &st->runs_active));
	if (rc == 0)
		rc = map_rc(mdb_dbi_open(txn, "logs", MDB_CREATE, &st->logs));
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

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	mdb_env_close(st->env);
	free(st);
}

const char *
store_strerror(int rc)
{
	if (rc == -EBADMSG)
		return "stored record does not decode";
	return strerror(rc < 0 ? -rc : rc);
}

int
store_obj_add(struct store *st, enum store_kind kind, ProtobufCMessage *msg,
              const char *name, uint64_t *idp)
{
	MDB_txn *txn;
	MDB_val k, v = { 0, NULL }, nk;
	uint8_t key[8];
	int rc = txn_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	nk.mv_data = (void *)name;
	nk.mv_size = strlen(name);
	rc = next_id(txn, st->obj[kind], idp);
	if (rc < 0)
		goto fail;
	put_be64(key, *idp);
	k.mv_data = key;
	k.mv_size = 8;
	rc = map_rc(mdb_put(txn, st->names[kind], &nk, &k, MDB_NOOVERWRITE));
	if (rc < 0)
		goto fail;
	rc = pack_val(msg, &v);
	if (rc < 0)
		goto fail;
	rc = map_rc(mdb_put(txn, st->obj[kind], &k, &v, 0));
	free(v.mv_data);
	if (rc < 0)
		goto fail;
	return txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return rc;
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
	int rc = txn_begin(st, MDB_RDONLY, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, id);
	rc = obj_get_txn(st, txn, kind, &k, out);
	mdb_txn_abort(txn);
	return rc;
}

int
store_obj_find(struct store *st, enum store_kind kind, const char *name,
               ProtobufCMessage **out)
{
	MDB_txn *txn;
	MDB_val nk = { strlen(name), (void *)name }, k;
	int rc = txn_begin(st, MDB_RDONLY, &txn);

	if (rc < 0)
		return rc;
	if (nk.mv_size == 0) {
		rc = -ENOENT;
		goto out;
	}
	rc = map_rc(mdb_get(txn, st->names[kind], &nk, &k));
	if (rc == 0)
		rc = obj_get_txn(st, txn, kind, &k, out);
out:
	mdb_txn_abort(txn);
	return rc;
}

int
store_obj_list(struct store *st, enum store_kind kind,
               int (*fn)(void *arg, ProtobufCMessage *msg), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = txn_begin(st, MDB_RDONLY, &txn), mrc;

	if (rc < 0)
		return rc;
	rc = map_rc(mdb_cursor_open(txn, st->obj[kind], &cur));
	if (rc < 0)
		goto out;
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
out:
	mdb_txn_abort(txn);
	return rc;
}

int
store_obj_remove(struct store *st, enum store_kind kind, uint64_t id,
                 const char *name)
{
	MDB_txn *txn;
	uint8_t key[8];
	MDB_val k = { 8, key }, nk = { strlen(name), (void *)name };
	int rc = txn_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, id);
	rc = map_rc(mdb_del(txn, st->obj[kind], &k, NULL));
	if (rc == 0)
		rc = map_rc(mdb_del(txn, st->names[kind], &nk, NULL));
	if (rc < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(txn);
}

/* True for the statuses a run can still leave. */
static int
run_is_active(Dbtd__RunStatus s)
{
	return s == DBTD__RUN_STATUS__RUN_QUEUED || s == DBTD__RUN_STATUS__RUN_RUNNING;
}

/* Write run and its index entries inside txn. */
static int
run_put_txn(struct store *st, MDB_txn *txn, const Dbtd__Run *run)
{
	uint8_t key[8];
	MDB_val k = { 8, key }, v, empty = { 0, NULL };
	int rc;

	put_be64(key, run->id);
	rc = pack_val(&run->base, &v);
	if (rc < 0)
		return rc;
	rc = map_rc(mdb_put(txn, st->runs, &k, &v, 0));
	free(v.mv_data);
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
	uint8_t jkey[16];
	MDB_val jk = { 16, jkey }, empty = { 0, NULL };
	int rc = txn_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	rc = next_id(txn, st->runs, &run->id);
	if (rc == 0)
		rc = run_put_txn(st, txn, run);
	if (rc == 0) {
		put_be64(jkey, run->job_id);
		put_be64(jkey + 8, run->id);
		rc = map_rc(mdb_put(txn, st->runs_by_job, &jk, &empty, 0));
	}
	if (rc < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(txn);
}

int
store_run_put(struct store *st, const Dbtd__Run *run)
{
	MDB_txn *txn;
	int rc = txn_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	rc = run_put_txn(st, txn, run);
	if (rc < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(txn);
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
store_run_get(struct store *st, uint64_t id, Dbtd__Run **out)
{
	MDB_txn *txn;
	int rc = txn_begin(st, MDB_RDONLY, &txn);

	if (rc < 0)
		return rc;
	rc = run_get_txn(st, txn, id, out);
	mdb_txn_abort(txn);
	return rc;
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

int
store_run_list(struct store *st, const struct store_run_filter *f,
               uint64_t before, unsigned limit,
               int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint8_t key[8];
	unsigned n = 0;
	int rc = txn_begin(st, MDB_RDONLY, &txn), mrc;

	if (rc < 0)
		return rc;
	rc = map_rc(mdb_cursor_open(txn, st->runs, &cur));
	if (rc < 0)
		goto out;
	if (before) {
		/* Position on the first key >= before, then step back. */
		put_be64(key, before);
		k.mv_data = key;
		k.mv_size = 8;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		mrc = mrc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
		               : mdb_cursor_get(cur, &k, &v, MDB_LAST);
	} else {
		mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	}
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
out:
	mdb_txn_abort(txn);
	return rc;
}

int
store_runs_active(struct store *st, int (*fn)(void *arg, Dbtd__Run *run), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	int rc = txn_begin(st, MDB_RDONLY, &txn), mrc;

	if (rc < 0)
		return rc;
	rc = map_rc(mdb_cursor_open(txn, st->runs_active, &cur));
	if (rc < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
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
	mdb_txn_abort(txn);
	/* fn may write (e.g. mark a run Failed): call it outside the read txn. */
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

	if (txn_begin(st, MDB_RDONLY, &txn) < 0)
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
	mdb_txn_abort(txn);
	return found;
}

int
store_log_append(struct store *st, uint64_t run_id, uint32_t step,
                 uint32_t seq, const uint8_t *data, size_t len)
{
	MDB_txn *txn;
	uint8_t key[16];
	MDB_val k = { 16, key }, v = { len, (void *)data };
	int rc = txn_begin(st, 0, &txn);

	if (rc < 0)
		return rc;
	put_be64(key, run_id);
	put_be32(key + 8, step);
	put_be32(key + 12, seq);
	rc = map_rc(mdb_put(txn, st->logs, &k, &v, 0));
	if (rc < 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return txn_commit(txn);
}

int
store_log_walk(struct store *st, uint64_t run_id, uint32_t step,
               int (*fn)(void *arg, uint32_t step, const uint8_t *data, size_t len),
               void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	uint8_t key[16];
	MDB_val k = { 16, key }, v;
	int rc = txn_begin(st, MDB_RDONLY, &txn), mrc;

	if (rc < 0)
		return rc;
	rc = map_rc(mdb_cursor_open(txn, st->logs, &cur));
	if (rc < 0)
		goto out;
	memset(key, 0, sizeof(key));
	put_be64(key, run_id);
	put_be32(key + 8, step);
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kp = k.mv_data;
		if (k.mv_size != 16 || get_be64(kp) != run_id)
			break;
		if (step && get_be32(kp + 8) != step)
			break;
		rc = fn(arg, get_be32(kp + 8), v.mv_data, v.mv_size);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
out:
	mdb_txn_abort(txn);
	return rc;
}
