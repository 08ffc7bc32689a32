/*
 * store_backup.h - `dbtd backup FILE`: a compacting copy of the store,
 * taken from a process of its own while dbtd serves the store.
 */
#ifndef DBTD_STORE_BACKUP_H
#define DBTD_STORE_BACKUP_H

/*
 * store_backup - copy the store in dir to file: LMDB's compacting copy (one
 * read transaction: a consistent state, without the free pages) of the
 * environment opened read-only, written to file.tmp (mode 0600), fsync'd
 * and renamed.  An existing file is replaced only with force.  Reports to
 * stdout, errors to stderr; returns the exit status (0, or 1).
 */
int store_backup(const char *dir, const char *file, int force);

#endif /* DBTD_STORE_BACKUP_H */
