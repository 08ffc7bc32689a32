/* artifacts.c - serving a run's lineage and artifacts (see artifacts.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifacts.h"
#include "collect.h"
#include "daemon.h"
#include "log.h"
#include "pb.h"
#include "runs.h"
#include "server.h"
#include "store.h"

#define BLOB_PIECE (1u << 20) /* bytes per blob frame, one per loop iteration */

/* An artifact being sent to a client. */
struct sending {
	struct sending *next;
	struct client *c;
	int fd;
	uint8_t *buf;
};

static struct sending *sendings;

/* Check the run exists; reply not-found and return -ENOENT otherwise. */
static int
check_run(struct daemon *d, struct client *c, uint64_t id)
{
	Dbtd__Run *run;
	int rc = runs_get(d->runs, id, &run);

	if (rc == -ENOENT)
		client_error(c, DBTD__ERROR_CODE__ERROR_NOT_FOUND, "no run %llu; see dbtctl run list",
		             (unsigned long long)id);
	else if (rc < 0)
		client_error(c, DBTD__ERROR_CODE__ERROR_INTERNAL, "cannot read run %llu: %s",
		             (unsigned long long)id, store_strerror(rc));
	else
		dbtd__run__free_unpacked(run, NULL);
	return rc;
}

void
artifacts_lineage(struct daemon *d, struct client *c, const Dbtd__RunRef *ref)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Lineage none = DBTD__LINEAGE__INIT, *l = NULL;
	int rc;

	if (check_run(d, c, ref->id) < 0)
		return;
	rc = store_lineage_get(d->store, ref->id, &l);
	if (rc == -ENOENT) {
		none.error = (char *)"no dbt command of the run wrote a manifest";
	} else if (rc < 0) {
		client_error(c, DBTD__ERROR_CODE__ERROR_INTERNAL, "cannot read the lineage of run %llu: %s",
		             (unsigned long long)ref->id, store_strerror(rc));
		return;
	}
	resp.body_case = DBTD__RESPONSE__BODY_LINEAGE;
	resp.lineage = l ? l : &none;
	client_send(c, &resp);
	if (l)
		dbtd__lineage__free_unpacked(l, NULL);
}

/* store_artifacts_list callback: keep a. */
static int
list_cb(void *arg, Dbtd__Artifact *a)
{
	return pb_list_push(arg, &a->base);
}

void
artifacts_list(struct daemon *d, struct client *c, const Dbtd__RunRef *ref)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__ArtifactList al = DBTD__ARTIFACT_LIST__INIT;
	struct pb_list l = { 0 };
	int rc;

	if (check_run(d, c, ref->id) < 0)
		return;
	rc = store_artifacts_list(d->store, ref->id, list_cb, &l);
	if (rc < 0) {
		client_error(c, DBTD__ERROR_CODE__ERROR_INTERNAL, "cannot list the artifacts of run %llu: %s",
		             (unsigned long long)ref->id, store_strerror(rc));
	} else {
		al.n_items = l.n;
		al.items = (Dbtd__Artifact **)l.items;
		resp.body_case = DBTD__RESPONSE__BODY_ARTIFACTS;
		resp.artifacts = &al;
		client_send(c, &resp);
	}
	pb_list_free(&l);
}

/* Stop sending: close the file, unlink. */
static void
sending_free(struct sending *s)
{
	struct sending **ps;

	for (ps = &sendings; *ps; ps = &(*ps)->next)
		if (*ps == s) {
			*ps = s->next;
			break;
		}
	client_set_drain(s->c, NULL, NULL);
	close(s->fd);
	free(s->buf);
	free(s);
}

/* The client took what was queued: send the next piece, or the end. */
static void
send_piece(struct client *c, void *arg)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	struct sending *s = arg;
	ssize_t n = read(s->fd, s->buf, BLOB_PIECE);

	if (n < 0) {
		client_error(c, DBTD__ERROR_CODE__ERROR_INTERNAL, "cannot read the artifact: %s",
		             strerror(errno));
		sending_free(s);
		return;
	}
	resp.body_case = DBTD__RESPONSE__BODY_BLOB;
	resp.blob.data = s->buf;
	resp.blob.len = (size_t)n;
	resp.end = n == 0;
	client_send(c, &resp);
	if (n == 0)
		sending_free(s);
}

/* True when path is a relative path inside the project: no "..", no "/" first. */
static int
path_ok(const char *path, size_t len)
{
	const char *p;

	if (len == 0 || memchr(path, '\0', len) || path[0] == '/')
		return 0;
	for (p = path; p; p = strchr(p, '/')) {
		p += *p == '/';
		if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
			return 0;
	}
	return 1;
}

void
artifacts_send(struct daemon *d, struct client *c, const Dbtd__ArtifactRef *ref)
{
	Dbtd__Artifact *a = NULL;
	struct sending *s;
	char *path;
	int rc, fd;

	if (!path_ok(ref->path, strlen(ref->path))) {
		client_error(c, DBTD__ERROR_CODE__ERROR_BAD_REQUEST,
		             "artifact path \"%s\" is not valid: give a path inside the dbt project "
		             "as run artifacts lists it, e.g. target/manifest.json", ref->path);
		return;
	}
	if (client_busy(c)) {
		client_error(c, DBTD__ERROR_CODE__ERROR_BAD_REQUEST,
		             "a stream is already open on this connection");
		return;
	}
	if (check_run(d, c, ref->run) < 0)
		return;
	rc = store_artifact_get(d->store, ref->run, ref->path, &a);
	if (rc == -ENOENT) {
		client_error(c, DBTD__ERROR_CODE__ERROR_NOT_FOUND,
		             "run %llu has no artifact %s; see dbtctl run artifacts %llu",
		             (unsigned long long)ref->run, ref->path, (unsigned long long)ref->run);
		return;
	}
	if (rc < 0) {
		client_error(c, DBTD__ERROR_CODE__ERROR_INTERNAL, "cannot read artifact %s: %s",
		             ref->path, store_strerror(rc));
		return;
	}
	path = blob_path(d->blob_dir, a->digest);
	fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	if (fd < 0) {
		log_err("run %llu: the content of %s (%s) is missing from %s", (unsigned long long)ref->run,
		        ref->path, a->digest, d->blob_dir);
		client_error(c, DBTD__ERROR_CODE__ERROR_INTERNAL,
		             "the content of %s is missing from dbtd's blob store", ref->path);
		free(path);
		dbtd__artifact__free_unpacked(a, NULL);
		return;
	}
	free(path);
	dbtd__artifact__free_unpacked(a, NULL);
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->buf = malloc(BLOB_PIECE)) == NULL) {
		free(s);
		close(fd);
		client_error(c, DBTD__ERROR_CODE__ERROR_INTERNAL, "out of memory");
		return;
	}
	s->c = c;
	s->fd = fd;
	s->next = sendings;
	sendings = s;
	client_set_drain(c, send_piece, s);
}

void
artifacts_forget_client(struct daemon *d, struct client *c)
{
	struct sending *s, *next;

	(void)d;
	for (s = sendings; s; s = next) {
		next = s->next;
		if (s->c == c)
			sending_free(s);
	}
}
