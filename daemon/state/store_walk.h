/*
 * store_walk.h - the walk of `dbtd check`: every record of every database
 * of a store, read and cross-checked, in a child process per stretch of
 * databases so that a page that makes LMDB abort or a read fault costs the
 * check one database, not its report.
 */
#ifndef DBTD_STORE_WALK_H
#define DBTD_STORE_WALK_H

#include <stddef.h>

#include <jansson.h>

/*
 * store_walk - walk the store in dir (opened read-only).  Sets in
 * `databases` one object per database, {"records": n, "damaged": k}, and
 * appends to `problems` one sentence per damaged record (at most 10 per
 * database, then a count).  Returns the number of damaged records and
 * databases found (0: none), or -errno when the walk could not start.
 */
long store_walk(const char *dir, json_t *databases, json_t *problems);

#endif /* DBTD_STORE_WALK_H */
