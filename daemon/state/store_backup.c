/* store_backup.c - `dbtd backup FILE` (see store_backup.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_backup.h"
#include "store_format.h"
#include "util.h"

/* fsync the directory holding path (so a rename in it lasts). */
static void
sync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY) : -1;

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

/* Say why the copy could not be written to tmp, then remove it.  Returns 1. */
static int
copy_failed(const char *file, const char *tmp, int err, uint64_t need)
{
	if (err == ENOSPC || err == EDQUOT)
		fprintf(stderr, "dbtd: backup: no space left for %s (the copy needs up to %.1f MiB); "
		        "free some space or write it elsewhere\n", file, (double)need / (1 << 20));
	else
		fprintf(stderr, "dbtd: backup: cannot write %s: %s\n", tmp, strerror(err));
	unlink(tmp);
	return 1;
}

int
store_backup(const char *dir, const char *file, int force)
{
	char *data = xasprintf("%s/data.mdb", dir), *tmp = xasprintf("%s.tmp", file);
	MDB_env *env = NULL;
	MDB_envinfo info;
	MDB_stat est;
	struct stat sb, db;
	uint64_t need = 0;
	int fd = -1, rc, status = 1;

	if (data == NULL || tmp == NULL) {
		fprintf(stderr, "dbtd: backup: out of memory\n");
		goto out;
	}
	if (stat(data, &db) < 0) {
		fprintf(stderr, "dbtd: backup: no store in %s (%s: %s); give --state-dir\n", dir,
		        data, strerror(errno));
		goto out;
	}
	if (stat(file, &sb) == 0) {
		if (sb.st_dev == db.st_dev && sb.st_ino == db.st_ino) {
			fprintf(stderr, "dbtd: backup: %s is the store itself; write the copy "
			        "elsewhere\n", file);
			goto out;
		}
		if (!force) {
			fprintf(stderr, "dbtd: backup: %s exists; give --force to replace it\n", file);
			goto out;
		}
		if (!S_ISREG(sb.st_mode)) {
			fprintf(stderr, "dbtd: backup: %s is not a regular file; not replaced\n", file);
			goto out;
		}
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			fprintf(stderr, "dbtd: backup: the directory of %s does not exist; create it "
			        "first\n", file);
		else
			fprintf(stderr, "dbtd: backup: cannot create %s: %s\n", tmp, strerror(errno));
		goto out;
	}
	/* the copy holds the secrets data.mdb holds: private like it, whatever the umask */
	if (fchmod(fd, 0600) < 0) {
		status = copy_failed(file, tmp, errno, 0);
		goto out;
	}
	rc = store_format_env_open(dir, MDB_RDONLY, &env);
	if (rc < 0) {
		fprintf(stderr, "dbtd: backup: cannot open the store in %s: %s\n", dir,
		        strerror(-rc));
		unlink(tmp);
		goto out;
	}
	if (mdb_env_info(env, &info) == 0 && mdb_env_stat(env, &est) == 0)
		need = (uint64_t)(info.me_last_pgno + 1) * est.ms_psize;
	rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
	if (rc == 0 && fsync(fd) < 0)
		rc = errno;
	if (rc != 0) {
		status = copy_failed(file, tmp, rc, need);
		goto out;
	}
	if (fstat(fd, &sb) < 0 || close(fd) < 0) {
		fd = -1;
		status = copy_failed(file, tmp, errno, need);
		goto out;
	}
	fd = -1;
	if (rename(tmp, file) < 0) {
		fprintf(stderr, "dbtd: backup: cannot rename %s to %s: %s\n", tmp, file,
		        strerror(errno));
		unlink(tmp);
		goto out;
	}
	sync_dir_of(file);
	printf("backup of %s written to %s: %.1f MiB (the store's file: %.1f MiB)\n"
	       "the artifact contents are in %s/blobs: copy them too (e.g. cp -rn or rsync)\n",
	       dir, file, (double)sb.st_size / (1 << 20), (double)db.st_size / (1 << 20), dir);
	status = 0;
out:
	if (fd >= 0)
		close(fd);
	if (env)
		mdb_env_close(env);
	free(data);
	free(tmp);
	return status;
}
