/* collect.c - keep the files dbt wrote, by content (see collect.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "collect.h"
#include "frame.h"
#include "util.h"

#define SEND_BATCH 500            /* artifacts per RunnerEvent */
#define PATH_MAX_KEPT 380         /* longer relative paths are not kept */
#define COPY_BUF (1u << 20)

struct collect {
	dbtd_step_ctx *ctx;
	const char *blob_dir;
	uint8_t *buf;
	Dbtd__Artifact *batch;        /* SEND_BATCH entries */
	char **paths;                 /* their paths and digests, owned */
	char **digests;
	size_t n;
	int kept;
};

/* Send the collected batch to dbtd. */
static void
send_batch(struct collect *c)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__ArtifactList list = DBTD__ARTIFACT_LIST__INIT;
	Dbtd__Artifact *items[SEND_BATCH];

	if (c->n == 0)
		return;
	for (size_t i = 0; i < c->n; i++)
		items[i] = &c->batch[i];
	list.n_items = c->n;
	list.items = items;
	ev.body_case = DBTD__RUNNER_EVENT__BODY_ARTIFACTS;
	ev.artifacts = &list;
	host_flush(c->ctx->hr);
	host_send(c->ctx->hr, &ev);
	for (size_t i = 0; i < c->n; i++) {
		free(c->paths[i]);
		free(c->digests[i]);
	}
	c->n = 0;
}

char *
blob_path(const char *blob_dir, const char *digest)
{
	if (strlen(digest) != 64 || strspn(digest, "0123456789abcdef") != 64)
		return NULL;
	return xasprintf("%s/%.2s/%s", blob_dir, digest, digest);
}

/* Copy the open file fd into the blob store; hex gets its sha256. */
static int
store_blob(struct collect *c, int fd, char hex[65], uint64_t *size)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char dig[32];
	unsigned int dlen = 0;
	char *tmp = xasprintf("%s/tmp.XXXXXX", c->blob_dir), *final = NULL, *dir = NULL;
	int out = -1, rc = 0;
	ssize_t n;

	*size = 0;
	if (md == NULL || tmp == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	out = mkstemp(tmp);
	if (out < 0) {
		rc = -errno;
		goto out;
	}
	while ((n = read(fd, c->buf, COPY_BUF)) > 0) {
		if (EVP_DigestUpdate(md, c->buf, (size_t)n) != 1 ||
		    frame_write_all(out, c->buf, (size_t)n) < 0) {
			rc = -EIO;
			goto out;
		}
		*size += (uint64_t)n;
	}
	if (n < 0 || EVP_DigestFinal_ex(md, dig, &dlen) != 1) {
		rc = n < 0 ? -errno : -EIO;
		goto out;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", dig[i]);
	final = blob_path(c->blob_dir, hex);
	dir = xasprintf("%s/%.2s", c->blob_dir, hex);
	if (final == NULL || dir == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/*
	 * Stored once: an earlier run kept the same content.  Its mtime is
	 * refreshed, which is what tells retention's sweep that a run may be
	 * about to record it (the sweep only takes blobs older than the oldest
	 * running run); when the sweep took it all the same, it is written.
	 */
	if (utimensat(AT_FDCWD, final, NULL, 0) == 0) {
		unlink(tmp);
	} else {
		if (fsync(out) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST) ||
		    rename(tmp, final) < 0) {
			rc = -errno;
			unlink(tmp);
		}
	}
	free(tmp);
	tmp = NULL;
out:
	if (out >= 0)
		close(out);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(final);
	free(dir);
	EVP_MD_CTX_free(md);
	return rc;
}

/* Keep one regular file, rel being its path relative to the project. */
static void
keep_file(struct collect *c, int dirfd, const char *name, const char *rel)
{
	char hex[65];
	uint64_t size;
	int fd, rc;

	if (strlen(rel) > PATH_MAX_KEPT) {
		host_log_text(c->ctx, "artifact %s not kept: its path is longer than %d bytes",
		              rel, PATH_MAX_KEPT);
		return;
	}
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		host_log_text(c->ctx, "artifact %s not kept: %s", rel, strerror(errno));
		return;
	}
	rc = store_blob(c, fd, hex, &size);
	close(fd);
	if (rc < 0) {
		host_log_text(c->ctx, "artifact %s not kept: %s", rel, strerror(-rc));
		return;
	}
	dbtd__artifact__init(&c->batch[c->n]);
	c->paths[c->n] = strdup(rel);
	c->digests[c->n] = strdup(hex);
	c->batch[c->n].path = c->paths[c->n];
	c->batch[c->n].digest = c->digests[c->n];
	c->batch[c->n].size = size;
	c->n++;
	c->kept++;
	if (c->n == SEND_BATCH)
		send_batch(c);
}

/* Walk directory fd (relative path rel), keeping regular files. */
static void
walk(struct collect *c, int fd, const char *rel)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;

	if (d == NULL) {
		close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		char *sub;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		sub = xasprintf("%s/%s", rel, e->d_name);
		if (sub == NULL)
			break;
		if (S_ISLNK(st.st_mode)) {
			host_log_text(c->ctx, "artifact %s not kept: a symlink is not followed", sub);
		} else if (S_ISDIR(st.st_mode)) {
			int sfd = openat(dirfd(d), e->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sfd >= 0)
				walk(c, sfd, sub);
		} else if (S_ISREG(st.st_mode)) {
			keep_file(c, dirfd(d), e->d_name, sub);
		}
		free(sub);
	}
	closedir(d);
}

int
collect_artifacts(dbtd_step_ctx *ctx, const char *project_dir, const char *blob_dir)
{
	static const char *const tops[] = { "target", "logs" };
	struct collect c = { .ctx = ctx, .blob_dir = blob_dir };
	int pfd, rc = 0;

	c.buf = malloc(COPY_BUF);
	c.batch = calloc(SEND_BATCH, sizeof(*c.batch));
	c.paths = calloc(SEND_BATCH, sizeof(*c.paths));
	c.digests = calloc(SEND_BATCH, sizeof(*c.digests));
	if (c.buf == NULL || c.batch == NULL || c.paths == NULL || c.digests == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (mkdir_p(blob_dir, 0700) < 0) {
		rc = -errno;
		goto out;
	}
	pfd = open(project_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0) {
		rc = -errno;
		goto out;
	}
	for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
		struct stat st;
		int fd;
		if (fstatat(pfd, tops[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISDIR(st.st_mode)) {
			host_log_text(ctx, "artifacts under %s not kept: it is not a directory", tops[i]);
			continue;
		}
		fd = openat(pfd, tops[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			walk(&c, fd, tops[i]);
	}
	close(pfd);
	send_batch(&c);
	rc = c.kept;
out:
	for (size_t i = 0; i < c.n; i++) {
		free(c.paths[i]);
		free(c.digests[i]);
	}
	free(c.buf);
	free(c.batch);
	free(c.paths);
	free(c.digests);
	return rc;
}
