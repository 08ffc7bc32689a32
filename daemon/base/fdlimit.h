/*
 * fdlimit.h - dbtd's open-file limit (RLIMIT_NOFILE): raised at start,
 * named when it runs out, and given back to the programs runs execute.
 *
 * Every client connection and every run holds descriptors, so dbtd takes
 * all the kernel allows it (the hard limit) instead of the 1024 a shell or
 * systemd gives by default.  Programs it executes (dbt) get the soft limit
 * dbtd was started with: a high limit can break programs written for the
 * usual one (select(2) cannot watch a descriptor above 1023).
 */
#ifndef DBTD_FDLIMIT_H
#define DBTD_FDLIMIT_H

#include <stddef.h>

/*
 * fdlimit_raise - raise the soft limit to the hard limit and log the limit
 * at info level; a failure is logged as a warning and dbtd goes on with the
 * limit it has.  Remembers the soft limit found, for fdlimit_restore.
 */
void fdlimit_raise(void);

/* fdlimit_current - the soft limit now, or 0 when it cannot be read. */
unsigned long fdlimit_current(void);

/* fdlimit_exhausted - whether err (an errno, either sign) means a full descriptor table. */
int fdlimit_exhausted(int err);

/*
 * fdlimit_describe - what is full, naming the limit, into buf (err: EMFILE,
 * dbtd's own table: "dbtd has no file descriptors left (limit 64, all in
 * use)"; ENFILE, the system's).  Returns buf.
 */
const char *fdlimit_describe(int err, char *buf, size_t len);

/* fdlimit_advice - what an administrator can do about err (EMFILE or ENFILE); static. */
const char *fdlimit_advice(int err);

/*
 * fdlimit_restore - in a child about to exec another program: put back
 * the soft limit dbtd was started with (nothing when fdlimit_raise did not
 * change it).  Async-signal-safe.
 */
void fdlimit_restore(void);

#endif /* DBTD_FDLIMIT_H */
