/*
 * test_sockpath.c - the checks before dbtd binds its socket: the mode of a
 * directory it creates, which existing directories it accepts, and what it
 * does with whatever is already at the socket path (only a stale socket is
 * removed).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "sockpath.h"
#include "util.h"

struct fixture {
	char dir[64];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/dbtd-test-sockpath-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	rm_rf(f->dir);
	free(f);
	return 0;
}

/* A stat of the given type, mode and owner. */
static struct stat
fake_stat(mode_t type, mode_t perm, uid_t uid)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_mode = type | perm;
	st.st_uid = uid;
	return st;
}

/* A Unix stream socket bound at path; listening when listening is set.  Its fd. */
static int
bound_socket(const char *path, int listening)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	assert_true(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (listening)
		assert_int_equal(listen(fd, 1), 0);
	return fd;
}

static mode_t
perm(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void
test_dir_mode(void **state)
{
	(void)state;
	assert_int_equal(sockpath_dir_mode(0600), 0700);
	assert_int_equal(sockpath_dir_mode(0660), 0710);
	assert_int_equal(sockpath_dir_mode(0640), 0710);
	assert_int_equal(sockpath_dir_mode(0666), 0711);
	assert_int_equal(sockpath_dir_mode(0602), 0701);
}

static void
test_kind(void **state)
{
	(void)state;
	assert_string_equal(sockpath_kind(S_IFREG | 0644), "a regular file");
	assert_string_equal(sockpath_kind(S_IFDIR | 0755), "a directory");
	assert_string_equal(sockpath_kind(S_IFLNK | 0777), "a symlink");
	assert_string_equal(sockpath_kind(S_IFIFO | 0600), "a fifo");
	assert_string_equal(sockpath_kind(S_IFSOCK | 0600), "a socket");
}

static void
test_check_dir(void **state)
{
	struct stat st;
	char *why = NULL;

	(void)state;
	/* the user's own, or root's, not writable by group or others */
	st = fake_stat(S_IFDIR, 0700, 1000);
	assert_int_equal(sockpath_check_dir("/d", &st, 1000, &why), 0);
	st = fake_stat(S_IFDIR, 0755, 1000);
	assert_int_equal(sockpath_check_dir("/d", &st, 1000, &why), 0);
	st = fake_stat(S_IFDIR, 0750, 1000);
	assert_int_equal(sockpath_check_dir("/d", &st, 1000, &why), 0);
	st = fake_stat(S_IFDIR, 0755, 0);
	assert_int_equal(sockpath_check_dir("/d", &st, 1000, &why), 0);
	assert_null(why);

	st = fake_stat(S_IFLNK, 0777, 1000);
	assert_int_equal(sockpath_check_dir("/d", &st, 1000, &why), -ELOOP);
	assert_non_null(strstr(why, "socket directory /d is a symlink"));

	st = fake_stat(S_IFREG, 0600, 1000);
	assert_int_equal(sockpath_check_dir("/d", &st, 1000, &why), -ENOTDIR);
	assert_non_null(strstr(why, "/d is a regular file, not a directory"));

	st = fake_stat(S_IFDIR, 0700, 1001);
	assert_int_equal(sockpath_check_dir("/d", &st, 1000, &why), -EACCES);
	assert_non_null(strstr(why, "belongs to uid 1001, not to uid 1000"));
	st = fake_stat(S_IFDIR, 0700, 65534);
	assert_int_equal(sockpath_check_dir("/d", &st, 0, &why), -EACCES);

	static const mode_t writable[] = { 0777, 0770, 0720, 0702, 01777, 0730 };
	for (size_t i = 0; i < sizeof(writable) / sizeof(writable[0]); i++) {
		st = fake_stat(S_IFDIR, writable[i], 1000);
		assert_int_equal(sockpath_check_dir("/d", &st, 1000, &why), -EACCES);
		assert_non_null(strstr(why, "writable by its group or by others"));
	}
	free(why);
}

static void
test_creates_missing_dirs(void **state)
{
	struct fixture *f = *state;
	char *a = xasprintf("%s/a", f->dir), *b = xasprintf("%s/a/b", f->dir);
	char *sock = xasprintf("%s/a/b/dbtd.sock", f->dir), *why = NULL;
	mode_t old = umask(022);

	assert_int_equal(sockpath_prepare(sock, 0600, &why), 0);
	assert_null(why);
	assert_int_equal(perm(a), 0700);
	assert_int_equal(perm(b), 0700);
	rm_rf(a);
	/* a group socket: the group may search the directory, never write it */
	umask(077);
	assert_int_equal(sockpath_prepare(sock, 0660, &why), 0);
	umask(old);
	assert_int_equal(perm(b), 0710);
	assert_int_equal(access(sock, F_OK), -1);
	free(a);
	free(b);
	free(sock);
}

static void
test_leaves_other_files_alone(void **state)
{
	struct fixture *f = *state;
	char *file = xasprintf("%s/notes", f->dir), *fifo = xasprintf("%s/fifo", f->dir);
	char *link = xasprintf("%s/link", f->dir), *sub = xasprintf("%s/sub", f->dir);
	char *why = NULL;
	struct stat st;
	int fd;

	fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(symlink(file, link), 0);

	assert_int_equal(sockpath_prepare(file, 0600, &why), -EEXIST);
	assert_non_null(strstr(why, "is a regular file, not a socket"));
	assert_non_null(strstr(why, "will not remove it"));
	assert_int_equal(sockpath_prepare(fifo, 0600, &why), -EEXIST);
	assert_non_null(strstr(why, "is a fifo"));
	assert_int_equal(sockpath_prepare(link, 0600, &why), -EEXIST);
	assert_non_null(strstr(why, "is a symlink"));
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(sockpath_prepare(sub, 0600, &why), -EEXIST);
	assert_non_null(strstr(why, "is a directory"));
	assert_int_equal(lstat(file, &st), 0);
	assert_int_equal(st.st_size, 1);
	assert_int_equal(lstat(fifo, &st), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_int_equal(lstat(sub, &st), 0);
	free(why);
	free(sub);
	free(file);
	free(fifo);
	free(link);
}

static void
test_stale_and_live_sockets(void **state)
{
	struct fixture *f = *state;
	char *sock = xasprintf("%s/dbtd.sock", f->dir), *why = NULL;
	int fd;

	/* bound, not listening: stale, removed */
	fd = bound_socket(sock, 0);
	close(fd);
	assert_int_equal(sockpath_prepare(sock, 0600, &why), 0);
	assert_int_equal(access(sock, F_OK), -1);
	/* listening: someone serves it, left alone */
	fd = bound_socket(sock, 1);
	assert_int_equal(sockpath_prepare(sock, 0600, &why), -EADDRINUSE);
	assert_non_null(strstr(why, "another dbtd is already serving"));
	assert_int_equal(access(sock, F_OK), 0);
	close(fd);
	free(why);
	free(sock);
}

static void
test_bad_paths(void **state)
{
	struct fixture *f = *state;
	char *why = NULL, *slash = xasprintf("%s/", f->dir), longp[200];

	assert_int_equal(sockpath_prepare("", 0600, &why), -EINVAL);
	assert_int_equal(sockpath_prepare(slash, 0600, &why), -EINVAL);
	assert_non_null(strstr(why, "names no file"));
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(sockpath_prepare(longp, 0600, &why), -ENAMETOOLONG);
	assert_non_null(strstr(why, "choose a shorter --socket"));
	free(why);
	free(slash);
}

static void
test_refuses_unsafe_dirs(void **state)
{
	struct fixture *f = *state;
	char *d = xasprintf("%s/run", f->dir), *sock = xasprintf("%s/run/dbtd.sock", f->dir);
	char *link = xasprintf("%s/link", f->dir), *lsock = xasprintf("%s/link/dbtd.sock", f->dir);
	char *why = NULL;

	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(chmod(d, 0770), 0);
	assert_int_equal(sockpath_prepare(sock, 0600, &why), -EACCES);
	assert_non_null(strstr(why, "writable by its group or by others (mode 0770)"));
	assert_int_equal(chmod(d, 0700), 0);
	assert_int_equal(symlink(d, link), 0);
	assert_int_equal(sockpath_prepare(lsock, 0600, &why), -ELOOP);
	assert_non_null(strstr(why, "is a symlink"));
	/* "dir//" must not follow the symlink either */
	free(lsock);
	lsock = xasprintf("%s/link//dbtd.sock", f->dir);
	assert_int_equal(sockpath_prepare(lsock, 0600, &why), -ELOOP);
	assert_int_equal(sockpath_prepare(sock, 0600, &why), 0);
	free(why);
	free(d);
	free(sock);
	free(link);
	free(lsock);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dir_mode),
		cmocka_unit_test(test_kind),
		cmocka_unit_test(test_check_dir),
		cmocka_unit_test_setup_teardown(test_creates_missing_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leaves_other_files_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_and_live_sockets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_unsafe_dirs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
