/*
 * fdreserve.h - one descriptor kept in reserve so that a client can still
 * be accepted and refused with a reason when dbtd's descriptor table is
 * full, instead of waiting unanswered in the listen queue (the "accept
 * trick" of nginx and libev's documentation).
 */
#ifndef DBTD_FDRESERVE_H
#define DBTD_FDRESERVE_H

struct fd_reserve {
	int fd;                 /* /dev/null, held to be given up; -1 when none */
	unsigned long refused;  /* clients refused since the last log line */
	double logged_at;       /* when that line was written */
};

/* fd_reserve_open - take the reserve descriptor; a failure is logged (no reserve). */
void fd_reserve_open(struct fd_reserve *r);

/* fd_reserve_close - give it back for good. */
void fd_reserve_close(struct fd_reserve *r);

/*
 * fd_reserve_refuse - accept(2) on the listening socket lfd failed with
 * err (EMFILE or ENFILE): give up the reserve, accept the client waiting,
 * send it an Error naming the shortage, close it, and take the reserve
 * back.  now (seconds) paces the log lines.  Returns 0 when the queue was
 * served (a client refused, or none left), -errno when it could not be
 * (no reserve, or the table is still full): the caller then backs off.
 */
int fd_reserve_refuse(struct fd_reserve *r, int lfd, int err, double now);

#endif /* DBTD_FDRESERVE_H */
