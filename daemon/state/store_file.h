/*
 * store_file.h - data.mdb itself, before LMDB is trusted with it: whether
 * it is an LMDB file, of the data version this LMDB reads, whole, and a
 * dbtd store rather than another program's LMDB file.
 */
#ifndef DBTD_STORE_FILE_H
#define DBTD_STORE_FILE_H

/*
 * store_file_probe - look at dir/data.mdb: its two meta pages (LMDB's
 * magic, data version 1, the page size), its length against the last page
 * they name, and (opened read-only) whether its main database holds any of
 * dbtd's databases.  0 when it is fine to open, -ENOENT when there is no
 * file; otherwise STORE_EDAMAGED (or -errno when it cannot be read) with
 * *why (malloc'd) saying exactly what the file is and what to do.
 */
int store_file_probe(const char *dir, char **why);

#endif /* DBTD_STORE_FILE_H */
