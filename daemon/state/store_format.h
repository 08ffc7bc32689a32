/*
 * store_format.h - the store's format version, and the migrations that
 * bring an older store up to it before dbtd serves it.
 *
 * Format 1 is the layout of dbtd 0.1.0 (no format record).  Format 2 adds
 * the database "meta": the format record (key "format", a StoreFormat
 * message) and the id counters ("next_id.<kind>", u64 BE), so ids are never
 * given out twice.  Every later change of what the store keeps adds a step
 * to the table in store_format.c and a test (docs/ARCHITECTURE.md).
 */
#ifndef DBTD_STORE_FORMAT_H
#define DBTD_STORE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "dbtd.pb-c.h"

#define STORE_FORMAT_OLDEST 1  /* the oldest format dbtd migrates from */
#define STORE_FORMAT_CURRENT 2 /* the format this dbtd reads and writes */

#define STORE_MAP_SIZE ((size_t)64 << 30) /* address space only; the file grows as needed */
#define STORE_MAX_DBS 32

/* A store that claims a format newer than this dbtd's. */
#define STORE_ENEWER (-EPROTO)

/* The store's map is full (LMDB's MDB_MAP_FULL): nothing more can be written. */
#define STORE_EMAPFULL (-EFBIG)

/*
 * The store's file is damaged: LMDB found a page it cannot use
 * (MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_CURSOR_FULL, MDB_INCOMPATIBLE), or
 * the file is not one it reads (MDB_INVALID, MDB_VERSION_MISMATCH).  A
 * record that does not decode is -EBADMSG; both are damage to a reader
 * (store_err_kind says ERR_DAMAGED).
 */
#define STORE_EDAMAGED (-EUCLEAN)

/*
 * One migration step: takes a store of format `from` to from + 1, inside
 * the write transaction txn (the caller records the new format in the same
 * transaction and commits).  It writes what it did into done (for the log).
 * 0, or a negative errno (the transaction is aborted).
 */
struct store_migration {
	uint32_t from;
	const char *what;
	int (*fn)(MDB_txn *txn, char *done, size_t donelen);
};

/*
 * store_format_prepare - before the store in dir is opened for serving:
 * nothing to do for a new or current store; a newer one is refused
 * (STORE_ENEWER) without a write; an older one is backed up to
 * dir/backup-format-N (compacting copy, free space checked first) and
 * migrated step by step, one write transaction per step.  On an error
 * *why (malloc'd) says what happened, and what was left as it was.
 */
int store_format_prepare(const char *dir, char **why);

/*
 * store_format_migrate - the same with a given table of steps (sorted by
 * `from`, contiguous) up to format `target`: what the unit tests drive.
 */
int store_format_migrate(const char *dir, const struct store_migration *steps,
                         size_t nsteps, uint32_t target, char **why);

/*
 * store_format_get - the format record of an open store (inside txn);
 * *out is NULL for a format-1 store (no record).  0 or -errno.
 */
int store_format_get(MDB_txn *txn, Dbtd__StoreFormat **out);

/* store_format_put - write the format record (inside txn).  0 or -errno. */
int store_format_put(MDB_txn *txn, const Dbtd__StoreFormat *f);

/*
 * store_format_read - the format record of the store in dir, read without
 * writing (*out NULL: format 1, or no store at all: -ENOENT).
 */
int store_format_read(const char *dir, Dbtd__StoreFormat **out);

/*
 * store_format_counters - set the id counters of every kind to one past the
 * largest id stored (inside txn), or leave them where they are when they
 * are already past it.  0 or -errno.
 */
int store_format_counters(MDB_txn *txn, char *done, size_t donelen);

/*
 * store_format_env_open - open the LMDB environment in dir with the
 * store's map size and database limit; flags as mdb_env_open's (e.g.
 * MDB_RDONLY).  0 or -errno.
 */
int store_format_env_open(const char *dir, unsigned flags, MDB_env **env);

/*
 * store_format_map_rc - an LMDB or errno result as 0 or a negative errno:
 * the one mapping of LMDB's codes (damage is STORE_EDAMAGED, never EIO).
 */
int store_format_map_rc(int rc);

/*
 * store_format_kill_point - fault injection for the upgrade tests: when
 * DBTD_TEST_MIGRATION_KILL names this point, dbtd kills itself (SIGKILL).
 */
void store_format_kill_point(const char *point);

/* store_format_writer - "dbtd <version>", this dbtd as a writer. */
const char *store_format_writer(void);

#endif /* DBTD_STORE_FORMAT_H */
