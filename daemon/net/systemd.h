/*
 * systemd.h - dbtd's side of systemd: socket activation (LISTEN_PID,
 * LISTEN_FDS) and readiness notification (NOTIFY_SOCKET), through
 * libsystemd when dbtd is built with it (configure --with-systemd).
 *
 * The names are systemd_* rather than sd_*: sd_ is libsystemd's namespace.
 */
#ifndef DBTD_SYSTEMD_H
#define DBTD_SYSTEMD_H

/*
 * systemd_init - take what systemd handed over out of the environment, so
 * that runners and dbt never see it: LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES (always removed), and NOTIFY_SOCKET (kept here for
 * systemd_ready and systemd_stopping).  Call it once, first, before
 * anything forks.
 *
 * *listen_fd is set to the inherited listening socket, or to -1 when dbtd
 * was not socket-activated (LISTEN_PID names another process, or no
 * LISTEN_FDS).  The fd is close-on-exec; the caller owns it.
 *
 * Returns 0, or -EINVAL when the activation cannot be served: malformed
 * variables, more than one fd, an fd that is not a listening Unix stream
 * socket, or dbtd built without libsystemd (-ENOTSUP).  The reason, naming
 * what is wrong and what to change, is logged.
 */
int systemd_init(int *listen_fd);

/*
 * systemd_ready - tell the service manager dbtd is ready (READY=1), with
 * `status` as its STATUS= line.  Does nothing without NOTIFY_SOCKET; a
 * failure to send is logged, never fatal.
 */
void systemd_ready(const char *status);

/* systemd_stopping - tell the service manager dbtd is stopping (STOPPING=1). */
void systemd_stopping(void);

#endif /* DBTD_SYSTEMD_H */
