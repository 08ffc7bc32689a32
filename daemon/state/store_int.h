/*
 * store_int.h - shared by the files of state/ that implement store.h, and
 * included by them only: the store itself, the transaction of one
 * operation, records packed and unpacked, ids, and key helpers.
 *
 *   store.c           the environment, transactions, group commit, open and
 *                     close, errors, the named objects, these helpers
 *   store_runs.c      runs and their indexes
 *   store_run_data.c  what a run leaves beside its record: step logs,
 *                     lineage, artifact records
 *   store_prune.c     retention: deleting runs and all they left, by policy
 *   store_space.c     the map that grows, the room kept for states, space
 */
#ifndef DBTD_STORE_INT_H
#define DBTD_STORE_INT_H

#include <lmdb.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"
#include "store_format.h"

struct store {
	MDB_env *env;
	const char *map;  /* where LMDB maps the file, and its page size (store_val_ok) */
	size_t psize;
	char *dir;        /* the state directory, for messages */
	char damage[512]; /* where the last damage was met (store_damage) */
	char errbuf[1280]; /* store_error's sentence */
	MDB_dbi obj[3], names[3];
	MDB_dbi runs, runs_active, logs;
	MDB_dbi by_job, by_status, by_trigger, by_branch; /* run indexes */
	MDB_dbi lineage, artifacts;
	MDB_dbi meta;     /* format record and id counters (store_format.h) */
	int group;        /* group commit: writes go into `batch` */
	MDB_txn *batch;   /* the open group transaction, or NULL */
	int batch_broken; /* a guarded operation inside it was cut short: it is lost */
	MDB_txn *op_txn;  /* the transaction of the operation under way (store_op_begin) */
	int state_dirty;  /* the batch holds more than log lines */
	size_t log_bytes; /* log bytes in the batch */
	int64_t log_since_ms; /* when the first of them came */
	size_t untrimmed;     /* log bytes committed since the map was last trimmed */
	void (*on_commit)(void *arg, int rc); /* told of every commit of a batch */
	void *on_commit_arg;
	int fail_rc;          /* tests: the next fail_n commits fail with fail_rc */
	unsigned fail_n;
	size_t map_size;      /* the map's current size */
	size_t max_map;       /* how far it may grow (--max-map-size) */
	int in_ops;           /* transactions open outside the batch (no resize then) */
	int grow_wanted;      /* a write found the map full: grow at the next chance */
	int64_t disk_at_ms;   /* when disk_free was read */
	uint64_t disk_free;   /* bytes free for dbtd on the state directory's device */
	size_t logged_since_disk; /* log bytes written since disk_free was read */
	MDB_cursor *curs[4];  /* cursors of the operation under way (store_cur_open) */
	int n_curs;
};

#define INDEX_KEY_MAX 400 /* LMDB keys are at most 511 bytes */

/* Map an LMDB or errno result to 0 or a negative errno (one mapping for the store). */
static inline int
map_rc(int rc)
{
	return store_format_map_rc(rc);
}

/* Write a 64-bit big-endian integer. */
static inline void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Read a 64-bit big-endian integer. */
static inline uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Write a 32-bit big-endian integer. */
static inline void
put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Read a 32-bit big-endian integer. */
static inline uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * store_op_begin - begin the transaction of one store operation: the open
 * group transaction for a read, a nested one of it for a write, else one
 * of its own (store.c).
 */
int store_op_begin(struct store *st, int write, MDB_txn **txn);

/*
 * store_op_end - end an operation begun with store_op_begin, committing a
 * write that succeeded; write is 0 for a read, 1 for a state write, 2 for
 * log lines.  Returns rc, or the commit's error.
 */
int store_op_end(struct store *st, MDB_txn *txn, int write, int rc);

/* store_txn_begin - begin a top-level transaction (store.c).  0 or -errno. */
int store_txn_begin(struct store *st, unsigned flags, MDB_txn **txn);

/*
 * store_find_map - where LMDB mapped the file, into st->map (store.c);
 * again after every resize.
 */
int store_find_map(struct store *st);

/*
 * store_disk_free - bytes free for dbtd on the state directory's device
 * (read at most once a second unless fresh, or when logging may have used
 * it up; UINT64_MAX when unknown) (store_space.c).
 */
uint64_t store_disk_free(struct store *st, int fresh);

/*
 * store_map_maybe_grow - grow the map when a write found it full or little
 * of it is left; only while no transaction is open (store_space.c).
 */
void store_map_maybe_grow(struct store *st);

/*
 * store_log_room - whether len more bytes of log lines may be written (the
 * map and the disk keep room for run states): 0, STORE_EMAPFULL or -ENOSPC
 * (store_space.c).
 */
int store_log_room(struct store *st, size_t len);

/*
 * store_damage - when rc is damage (STORE_EDAMAGED, -EBADMSG), note where
 * it was met for store_error: fmt names the database and the record
 * ("database runs, run 42").  Returns rc.
 */
int store_damage(struct store *st, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* store_is_damage - is rc a code of damage (a page or a record unreadable)? */
int store_is_damage(int rc);

/*
 * store_cursor_end - what a cursor walk that stopped with LMDB code mrc
 * means: 0 at the end of the database (MDB_NOTFOUND), else the error.
 */
static inline int
store_cursor_end(int mrc)
{
	return mrc == MDB_NOTFOUND ? 0 : store_format_map_rc(mrc);
}

/*
 * A guarded store operation (store_guard.c): LMDB asserting or a fault in
 * the map while it runs comes back here as STORE_EDAMAGED.
 */
struct store_guard {
	sigjmp_buf jb;
	struct store *st;
	struct store_guard *prev;
	char what[160];   /* what the operation reads ("database runs, run 42") */
	char why[320];    /* what stopped it */
};

/* store_guard_install - LMDB's assert callback and the fault handlers (store_open). */
void store_guard_install(struct store *st);

/* store_guard_push / _pop - enter and leave a guarded operation. */
void store_guard_push(struct store *st, struct store_guard *g);
void store_guard_pop(struct store_guard *g);

/*
 * store_guard_caught - after the jump back: end the operation's
 * transaction (a batch it was part of is lost at the next commit), note
 * the damage; STORE_EDAMAGED.
 */
int store_guard_caught(struct store_guard *g);

/*
 * STORE_GUARDED - return the result of call (an int expression), run as a
 * guarded operation that reads what the printf arguments say.
 */
#define STORE_GUARDED(st, call, ...)                                           \
	do {                                                                   \
		struct store_guard g_;                                         \
		int rc_;                                                       \
		store_guard_push((st), &g_);                                   \
		snprintf(g_.what, sizeof(g_.what), __VA_ARGS__);               \
		if (sigsetjmp(g_.jb, 1) == 0) {                                \
			rc_ = (call);                                          \
			store_guard_pop(&g_);                                  \
		} else {                                                       \
			rc_ = store_guard_caught(&g_);                         \
		}                                                              \
		return rc_;                                                    \
	} while (0)

/*
 * store_cur_open, store_cur_close - a cursor of the operation under way:
 * one a damaged page interrupts (store_guard.c) is closed by the guard, as
 * LMDB frees no cursor of a read-only transaction on its own.
 */
static inline int
store_cur_open(struct store *st, MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cur)
{
	int rc = mdb_cursor_open(txn, dbi, cur);

	if (rc == 0 && st->n_curs < (int)(sizeof(st->curs) / sizeof(st->curs[0])))
		st->curs[st->n_curs++] = *cur;
	return rc;
}

static inline void
store_cur_close(struct store *st, MDB_cursor *cur)
{
	for (int i = 0; i < st->n_curs; i++)
		if (st->curs[i] == cur) {
			st->curs[i] = st->curs[--st->n_curs];
			break;
		}
	mdb_cursor_close(cur);
}

/* store_pack_val - msg packed into a new buffer: its MDB_val.  0 or -ENOMEM. */
int store_pack_val(const ProtobufCMessage *msg, MDB_val *v);

/*
 * store_val_ok - does a value LMDB gave lie inside the store's file?  A
 * damaged page can give a size or an address past its end, and reading
 * there would take dbtd down (SIGBUS).
 */
int store_val_ok(struct store *st, const MDB_val *v);

/*
 * store_unpack_val - unpack a stored record; -EBADMSG when it does not
 * decode or does not lie inside the file (store_val_ok).
 */
int store_unpack_val(struct store *st, const ProtobufCMessageDescriptor *desc, const MDB_val *v,
                     ProtobufCMessage **out);

/*
 * store_next_id - a new id for database dbi, whose counter in `meta` is
 * "next_id.<name>"; never one given out before (store.c).
 */
int store_next_id(struct store *st, MDB_txn *txn, MDB_dbi dbi, const char *name,
                  uint64_t *id);

/* store_runs.c: one run inside txn (for store_prune.c). */
int store_run_get_txn(struct store *st, MDB_txn *txn, uint64_t id, Dbtd__Run **out);
/* store_run_unindex_txn - delete run's record and every index entry of it. */
int store_run_unindex_txn(struct store *st, MDB_txn *txn, const Dbtd__Run *run);
/* store_run_active_txn - whether run id is in the active set (Queued/Running). */
int store_run_active_txn(struct store *st, MDB_txn *txn, uint64_t id);
/* store_status_active - whether a run in status s can still change. */
int store_status_active(Dbtd__RunStatus s);

/*
 * store_run_data.c: delete (dry: count) run_id's step logs, lineage and
 * artifact records inside txn, adding to f.
 */
int store_run_data_delete_txn(struct store *st, MDB_txn *txn, uint64_t run_id, int dry,
                              struct store_freed *f);

#endif /* DBTD_STORE_INT_H */
