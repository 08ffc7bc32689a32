/* systemd.c - socket activation and readiness notification for dbtd. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"
#include "systemd.h"

/* NOTIFY_SOCKET as dbtd found it; "" when not set (or not usable). */
static char notify_socket[PATH_MAX];

/* Keep NOTIFY_SOCKET here and take it out of the environment. */
static void
take_notify_socket(void)
{
	const char *ns = getenv("NOTIFY_SOCKET");

	if (ns == NULL)
		return;
	if (strlen(ns) >= sizeof(notify_socket))
		log_warn("NOTIFY_SOCKET is %zu bytes long; readiness will not be reported",
		         strlen(ns));
	else
		strcpy(notify_socket, ns);
	unsetenv("NOTIFY_SOCKET");
}

#ifdef HAVE_LIBSYSTEMD

/* A phrase for what kind of file fd is ("a regular file"). */
static const char *
file_kind(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return "a descriptor that cannot be examined";
	switch (st.st_mode & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFDIR: return "a directory";
	case S_IFIFO: return "a pipe";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	default: return "not a socket";
	}
}

/* The name of fd's socket family ("AF_INET"), in buf. */
static const char *
family_name(int fd, char *buf, size_t len)
{
	int family = -1;
	socklen_t sl = sizeof(family);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &sl) < 0)
		return "an unknown-family";
	switch (family) {
	case AF_INET: return "an AF_INET (IPv4)";
	case AF_INET6: return "an AF_INET6 (IPv6)";
	case AF_NETLINK: return "an AF_NETLINK";
	case AF_VSOCK: return "an AF_VSOCK";
	default: snprintf(buf, len, "a family %d", family); return buf;
	}
}

/* The name of fd's socket type ("datagram"). */
static const char *
type_name(int fd)
{
	int type = -1;
	socklen_t sl = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0)
		return "non-stream";
	switch (type) {
	case SOCK_DGRAM: return "datagram";
	case SOCK_SEQPACKET: return "sequential-packet";
	case SOCK_RAW: return "raw";
	default: return "non-stream";
	}
}

/*
 * Check that fd is a listening Unix stream socket.  0, or -EINVAL after
 * logging which of the four it is not, and what to change in the unit.
 */
static int
check_socket(int fd)
{
	char buf[64];
	int r = sd_is_socket(fd, AF_UNIX, SOCK_STREAM, 1);

	if (r > 0)
		return 0;
	if (r < 0) {
		log_err("socket activation: cannot examine fd %d (LISTEN_FDS=1): %s",
		        fd, strerror(-r));
		return -EINVAL;
	}
	if (sd_is_socket(fd, AF_UNSPEC, 0, -1) <= 0)
		log_err("socket activation: fd %d (LISTEN_FDS=1) is %s, not a socket; dbtd serves "
		        "one listening Unix stream socket: start it from dbtd.socket "
		        "(ListenStream=/run/dbtd/dbtd.sock)", fd, file_kind(fd));
	else if (sd_is_socket(fd, AF_UNIX, 0, -1) <= 0)
		log_err("socket activation: fd %d (LISTEN_FDS=1) is %s socket, not a Unix (AF_UNIX) "
		        "socket; ListenStream= in dbtd.socket must be a file system path such as "
		        "/run/dbtd/dbtd.sock", fd, family_name(fd, buf, sizeof(buf)));
	else if (sd_is_socket(fd, AF_UNIX, SOCK_STREAM, -1) <= 0)
		log_err("socket activation: fd %d (LISTEN_FDS=1) is a Unix %s socket, not a stream "
		        "socket; dbtd.socket must use ListenStream=, not ListenDatagram= or "
		        "ListenSequentialPacket=", fd, type_name(fd));
	else
		log_err("socket activation: fd %d (LISTEN_FDS=1) is a Unix stream socket that is "
		        "not listening (one connection?); dbtd.socket must not set Accept=yes", fd);
	return -EINVAL;
}

int
systemd_init(int *listen_fd)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	char pid_copy[32] = "", fds_copy[32] = "";
	int n;

	*listen_fd = -1;
	take_notify_socket();
	/* for the messages: sd_listen_fds(1) removes them from the environment */
	if (pid)
		snprintf(pid_copy, sizeof(pid_copy), "%s", pid);
	if (fds)
		snprintf(fds_copy, sizeof(fds_copy), "%s", fds);
	n = sd_listen_fds(1);
	if (n < 0) {
		log_err("socket activation: cannot take the sockets systemd passed "
		        "(LISTEN_PID=%s, LISTEN_FDS=%s): %s", pid_copy, fds_copy,
		        n == -EBADF ? "a descriptor it names (from fd 3 on) is not open" :
		        n == -EINVAL ? "both must be positive decimal numbers" : strerror(-n));
		return -EINVAL;
	}
	if (n == 0) {
		if (fds)
			log_warn("LISTEN_FDS=%s is not for this process (LISTEN_PID=%s, dbtd is pid %d); "
			         "ignoring it", fds_copy, pid ? pid_copy : "unset", (int)getpid());
		return 0;
	}
	if (n > 1) {
		log_err("socket activation: systemd passed %d sockets (LISTEN_FDS=%d); dbtd serves "
		        "exactly one: give dbtd.socket a single ListenStream= line", n, n);
		return -EINVAL;
	}
	if (check_socket(SD_LISTEN_FDS_START) < 0)
		return -EINVAL;
	*listen_fd = SD_LISTEN_FDS_START;
	return 0;
}

/* Send one notification, keeping NOTIFY_SOCKET out of the environment. */
static void
notify(const char *state)
{
	int r;

	if (notify_socket[0] == '\0')
		return;
	/* libsystemd reads the address from the environment: lend it for the call */
	if (setenv("NOTIFY_SOCKET", notify_socket, 1) < 0) {
		log_warn("cannot notify systemd (%s): %s", state, strerror(errno));
		return;
	}
	r = sd_notify(1, state);
	unsetenv("NOTIFY_SOCKET");
	if (r < 0)
		log_warn("cannot notify systemd at %s: %s", notify_socket, strerror(-r));
}

#else /* !HAVE_LIBSYSTEMD */

int
systemd_init(int *listen_fd)
{
	const char *pid = getenv("LISTEN_PID");
	char *end;
	long p;

	*listen_fd = -1;
	take_notify_socket();
	if (pid && getenv("LISTEN_FDS")) {
		errno = 0;
		p = strtol(pid, &end, 10);
		if (errno == 0 && *end == '\0' && p == (long)getpid()) {
			log_err("socket activation: systemd passed a socket (LISTEN_FDS=%s), but this "
			        "dbtd was built without libsystemd and cannot serve it; rebuild with "
			        "libsystemd-dev installed (configure --with-systemd), or start dbtd "
			        "without its .socket unit, with --socket", getenv("LISTEN_FDS"));
			return -ENOTSUP;
		}
		log_warn("LISTEN_FDS=%s is not for this process (LISTEN_PID=%s, dbtd is pid %d); "
		         "ignoring it", getenv("LISTEN_FDS"), pid, (int)getpid());
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return 0;
}

/* Without libsystemd nothing is sent: say so once. */
static void
notify(const char *state)
{
	static int warned;

	(void)state;
	if (notify_socket[0] == '\0' || warned)
		return;
	warned = 1;
	log_warn("NOTIFY_SOCKET is set, but this dbtd was built without libsystemd and cannot "
	         "report readiness; use Type=simple, or rebuild with libsystemd-dev installed");
}

#endif /* HAVE_LIBSYSTEMD */

void
systemd_ready(const char *status)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	notify(msg);
}

void
systemd_stopping(void)
{
	notify("STOPPING=1\nSTATUS=Stopping: ending the runs in progress, closing the state");
}
