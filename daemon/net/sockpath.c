/* sockpath.c - the socket's directory and path, checked before bind(); see sockpath.h. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockpath.h"
#include "util.h"

mode_t
sockpath_dir_mode(mode_t sock_mode)
{
	mode_t m = S_IRWXU;

	if (sock_mode & S_IRWXG)
		m |= S_IXGRP;
	if (sock_mode & S_IRWXO)
		m |= S_IXOTH;
	return m;
}

const char *
sockpath_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFDIR: return "a directory";
	case S_IFLNK: return "a symlink";
	case S_IFIFO: return "a fifo";
	case S_IFSOCK: return "a socket";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	default: return "a file of unknown type";
	}
}

int
sockpath_check_dir(const char *dir, const struct stat *st, uid_t euid, char **why)
{
	if (S_ISLNK(st->st_mode)) {
		set_printf(why, "socket directory %s is a symlink; dbtd listens only in a real "
		        "directory: give --socket the path the symlink points to", dir);
		return -ELOOP;
	}
	if (!S_ISDIR(st->st_mode)) {
		set_printf(why, "socket directory %s is %s, not a directory; choose another --socket",
		        dir, sockpath_kind(st->st_mode));
		return -ENOTDIR;
	}
	if (st->st_uid != euid && st->st_uid != 0) {
		set_printf(why, "socket directory %s belongs to uid %u, not to uid %u that dbtd runs as "
		        "(nor to root), and its owner could replace the socket; remove the directory "
		        "so that dbtd creates its own, or choose another --socket",
		        dir, (unsigned)st->st_uid, (unsigned)euid);
		return -EACCES;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		set_printf(why, "socket directory %s is writable by its group or by others (mode %04o), "
		        "who could replace the socket; make it private (chmod go-w %s) or choose "
		        "another --socket", dir, (unsigned)(st->st_mode & 07777), dir);
		return -EACCES;
	}
	return 0;
}

/* The directory part of path, without trailing slashes ("." for a bare name); NULL: no memory. */
static char *
socket_dir(const char *path)
{
	char *dir = strdup(path), *slash;

	if (dir == NULL)
		return NULL;
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		free(dir);
		return strdup(".");
	}
	while (slash > dir && slash[-1] == '/')
		slash--;
	if (slash == dir)
		slash++; /* the root directory */
	*slash = '\0';
	return dir;
}

/* mkdir -p dir, each missing directory exactly mode (no umask); 0 or -errno with *why. */
static int
make_dirs(const char *dir, mode_t mode, char **why)
{
	char *s = strdup(dir), *p;
	mode_t old;
	int rc = 0;

	if (s == NULL)
		return -ENOMEM;
	old = umask(0);
	for (p = s + 1; ; p++) {
		char c = *p;
		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(s, mode) < 0 && errno != EEXIST) {
			rc = -errno;
			set_printf(why, "cannot create the socket directory %s: %s; create it (owned by "
			        "the user dbtd runs as, not writable by others) or choose another "
			        "--socket", s, strerror(-rc));
			goto fail;
		}
		*p = c;
		if (c == '\0')
			break;
	}
fail:
	umask(old);
	free(s);
	return rc;
}

/* Make path free for bind(): nothing there, or a stale socket removed. 0 or -errno with *why. */
static int
clear_path(const char *path, char **why)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, err;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		err = errno;
		set_printf(why, "cannot look at the socket path %s: %s; choose another --socket",
		        path, strerror(err));
		return -err;
	}
	if (!S_ISSOCK(st.st_mode)) {
		set_printf(why, "%s is %s, not a socket, and dbtd will not remove it: move it away "
		        "or choose another --socket", path, sockpath_kind(st.st_mode));
		return -EEXIST;
	}
	/* A socket: does a server answer on it?  (Non-blocking: a full backlog says yes.) */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path)); /* the caller checked the length */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = errno;
		set_printf(why, "cannot make a socket to see whether %s is in use: %s", path,
		        strerror(err));
		return -err;
	}
	err = connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : errno;
	close(fd);
	if (err == 0 || err == EAGAIN || err == EINPROGRESS) {
		set_printf(why, "another dbtd is already serving %s; stop it or choose another --socket",
		        path);
		return -EADDRINUSE;
	}
	if (err != ECONNREFUSED) {
		set_printf(why, "cannot tell whether anything serves the socket %s (connect: %s), so "
		        "dbtd leaves it alone: remove it if nothing does, or choose another --socket",
		        path, strerror(err));
		return -err;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		err = errno;
		set_printf(why, "cannot remove the stale socket %s: %s; remove it or choose another "
		        "--socket", path, strerror(err));
		return -err;
	}
	return 0;
}

int
sockpath_prepare(const char *path, mode_t sock_mode, char **why)
{
	struct stat st;
	char *dir = NULL;
	size_t len = path ? strlen(path) : 0;
	int rc;

	if (len == 0 || path[len - 1] == '/') {
		set_printf(why, "the socket path \"%s\" names no file; give --socket the path of the "
		        "socket file, such as /run/dbtd/dbtd.sock", path ? path : "");
		rc = -EINVAL;
		goto fail;
	}
	if (len >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
		set_printf(why, "socket path %s is longer than %zu bytes; choose a shorter --socket",
		        path, sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
		rc = -ENAMETOOLONG;
		goto fail;
	}
	dir = socket_dir(path);
	if (dir == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = make_dirs(dir, sockpath_dir_mode(sock_mode), why);
	if (rc < 0)
		goto fail;
	if (lstat(dir, &st) < 0) {
		rc = -errno;
		set_printf(why, "cannot look at the socket directory %s: %s; choose another --socket",
		        dir, strerror(-rc));
		goto fail;
	}
	rc = sockpath_check_dir(dir, &st, geteuid(), why);
	if (rc < 0)
		goto fail;
	rc = clear_path(path, why);
fail:
	free(dir);
	return rc;
}
