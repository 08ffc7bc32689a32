/* util.h - small file-system and string helpers of dbtd. */
#ifndef DBTD_UTIL_H
#define DBTD_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir_p - create dir and missing parents with `mode`. 0 or -errno. */
int mkdir_p(const char *dir, mode_t mode);

/* rm_rf - remove a directory tree without following symlinks. 0 or -errno. */
int rm_rf(const char *path);

/* xasprintf - asprintf that returns the string or NULL. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * set_printf - replace *dst (freed) by a formatted malloc'd string; *dst is
 * NULL when out of memory.
 */
void set_printf(char **dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * path_canonical - an absolute path with symlinks resolved, also for a file
 * that does not exist yet (its directory is resolved).  malloc'd, or NULL.
 */
char *path_canonical(const char *path);

/* close_fds_from - close every descriptor >= lowfd except `keep` (-1: none). */
void close_fds_from(int lowfd, int keep);

/* set_nonblock_cloexec - make fd non-blocking and close-on-exec. 0 or -errno. */
int set_nonblock_cloexec(int fd);

#endif /* DBTD_UTIL_H */
