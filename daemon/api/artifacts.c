/*
 * artifacts.c - serving what a run left: its lineage graph, the list of
 * files dbt wrote, and one file's content streamed from the blob store.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_int.h"
#include "collect.h"
#include "log.h"
#include "pb.h"
#include "runs.h"
#include "server.h"
#include "store.h"

#define BLOB_PIECE (1u << 20) /* bytes per blob frame, one per loop iteration */

/* An artifact being sent to a client (the connection's stream). */
struct sending {
	int fd;
	uint8_t *buf;
};

/* Check the run exists; reply not-found and return -ENOENT otherwise. */
static int
check_run(struct api *a, struct client *c, uint64_t id)
{
	Dbtd__Run *run;
	int rc = runs_get(a->runs, id, &run);

	if (rc < 0)
		api_run_error(c, rc, id);
	else
		dbtd__run__free_unpacked(run, NULL);
	return rc;
}

void
artifacts_lineage(struct api *a, struct client *c, const Dbtd__RunRef *ref)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Lineage none = DBTD__LINEAGE__INIT, *l = NULL;
	int rc;

	if (check_run(a, c, ref->id) < 0)
		return;
	rc = store_lineage_get(a->store, ref->id, &l);
	if (rc == -ENOENT) {
		none.error = (char *)"no dbt command of the run wrote a manifest";
	} else if (rc < 0) {
		api_fail(c, store_err_kind(rc), "cannot read the lineage of run %llu: %s",
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
artifacts_list(struct api *a, struct client *c, const Dbtd__RunRef *ref)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__ArtifactList al = DBTD__ARTIFACT_LIST__INIT;
	struct pb_list l = { 0 };
	int rc;

	if (check_run(a, c, ref->id) < 0)
		return;
	rc = store_artifacts_list(a->store, ref->id, list_cb, &l);
	if (rc < 0) {
		api_fail(c, store_err_kind(rc), "cannot list the artifacts of run %llu: %s",
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

/* The stream is over or its connection went: close the file. */
static void
sending_free(void *arg)
{
	struct sending *s = arg;

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
		api_fail(c, ERR_INTERNAL, "cannot read the artifact: %s", strerror(errno));
		client_stream_end(c);
		return;
	}
	resp.body_case = DBTD__RESPONSE__BODY_BLOB;
	resp.blob.data = s->buf;
	resp.blob.len = (size_t)n;
	resp.end = n == 0;
	client_send(c, &resp);
	if (n == 0)
		client_stream_end(c);
}

static const struct client_stream_ops sending_ops = { .drain = send_piece, .close = sending_free };

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
artifacts_send(struct api *a, struct client *c, const Dbtd__ArtifactRef *ref)
{
	Dbtd__Artifact *art = NULL;
	struct sending *s;
	char *path;
	int rc, fd;

	if (!path_ok(ref->path, strlen(ref->path))) {
		api_fail(c, ERR_INVALID,
		         "artifact path \"%s\" is not valid: give a path inside the dbt project "
		         "as run artifacts lists it, e.g. target/manifest.json", ref->path);
		return;
	}
	if (client_has_stream(c)) {
		api_stream_busy(c);
		return;
	}
	if (check_run(a, c, ref->run) < 0)
		return;
	rc = store_artifact_get(a->store, ref->run, ref->path, &art);
	if (rc == -ENOENT) {
		api_fail(c, ERR_NOT_FOUND, "run %llu has no artifact %s; see dbtctl run artifacts %llu",
		         (unsigned long long)ref->run, ref->path, (unsigned long long)ref->run);
		return;
	}
	if (rc < 0) {
		api_fail(c, store_err_kind(rc), "cannot read artifact %s: %s", ref->path,
		         store_strerror(rc));
		return;
	}
	path = blob_path(a->blob_dir, art->digest);
	fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	if (fd < 0) {
		log_err("run %llu: the content of %s (%s) is missing from %s", (unsigned long long)ref->run,
		        ref->path, art->digest, a->blob_dir);
		api_fail(c, ERR_INTERNAL, "the content of %s is missing from dbtd's blob store",
		         ref->path);
		free(path);
		dbtd__artifact__free_unpacked(art, NULL);
		return;
	}
	free(path);
	dbtd__artifact__free_unpacked(art, NULL);
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->buf = malloc(BLOB_PIECE)) == NULL) {
		free(s);
		close(fd);
		api_fail(c, ERR_INTERNAL, "out of memory");
		return;
	}
	s->fd = fd;
	client_stream_open(c, &sending_ops, s); /* no stream is open: checked above */
}
