/*
 * store_check.h - `dbtd check`: what a store holds and whether it all
 * reads, without writing to it (also while dbtd serves it).
 */
#ifndef DBTD_STORE_CHECK_H
#define DBTD_STORE_CHECK_H

/*
 * store_check - report on the store in dir to stdout (text, or one JSON
 * object with json), errors to stderr.  Returns the exit status: 0 when the
 * format is one this dbtd reads and every record decodes; 1 otherwise.
 */
int store_check(const char *dir, int json);

#endif /* DBTD_STORE_CHECK_H */
