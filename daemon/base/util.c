/* util.c - small file-system and string helpers of dbtd. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int
mkdir_p(const char *dir, mode_t mode)
{
	char *p, *s = strdup(dir);
	int rc = 0;

	if (s == NULL)
		return -ENOMEM;
	for (p = s + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(s, mode) < 0 && errno != EEXIST) {
				rc = -errno;
				break;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	free(s);
	return rc;
}

/* nftw callback: remove one entry (children come first with FTW_DEPTH). */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

int
rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
		return -errno;
	return 0;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

char *
path_canonical(const char *path)
{
	char *real = realpath(path, NULL), *dir, *slash;

	if (real)
		return real;
	dir = strdup(path);
	if (dir == NULL)
		return NULL;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		real = realpath(dir, NULL);
		if (real) {
			char *full = xasprintf("%s/%s", real, slash + 1);
			free(real);
			free(dir);
			return full;
		}
	}
	free(dir);
	return strdup(path);
}

void
close_fds_from(int lowfd, int keep)
{
	if (keep < lowfd) {
		close_range((unsigned)lowfd, ~0u, 0);
		return;
	}
	if (keep > lowfd)
		close_range((unsigned)lowfd, (unsigned)keep - 1, 0);
	close_range((unsigned)keep + 1, ~0u, 0);
}

int
set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

void
set_printf(char **dst, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(*dst);
	*dst = s;
}
