/*
 * artifacts.c - serving what a run left: its lineage graph, the list of
 * files dbt wrote (both streamed in bounded frames when the client asks,
 * RunRef.stream), and one file's content streamed from the blob store.
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
/* A streamed lineage or artifact list: per frame at most */
#define PAGE_ITEMS 1000       /* artifacts, or lineage nodes */
#define PAGE_EDGES 10000      /* lineage edges */
#define PAGE_BYTES (1u << 20) /* bytes, give or take the last item */
#define ITEM_OVERHEAD 6       /* a repeated message's tag and length */

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
		api_run_error(a, c, rc, id);
	else
		dbtd__run__free_unpacked(run, NULL);
	return rc;
}

/* A lineage graph being streamed: the stored graph and how much of it was sent. */
struct graph_stream {
	Dbtd__Lineage *l;
	int owned;             /* l is the stored graph, freed with the stream */
	size_t node, edge;     /* the first node and edge not sent yet */
	unsigned frames;       /* frames sent */
};

/* The next frame's nodes, then (all nodes sent) edges, within a frame's bounds. */
static void
graph_page(struct graph_stream *gs, Dbtd__Lineage *f)
{
	const Dbtd__Lineage *l = gs->l;
	size_t bytes = 0, i;

	for (i = gs->node; i < l->n_nodes && i - gs->node < PAGE_ITEMS && bytes < PAGE_BYTES; i++)
		bytes += protobuf_c_message_get_packed_size(&l->nodes[i]->base) + ITEM_OVERHEAD;
	if (i > gs->node) {
		f->nodes = l->nodes + gs->node;
		f->n_nodes = i - gs->node;
		gs->node = i;
	}
	if (gs->node < l->n_nodes)
		return;
	for (i = gs->edge; i < l->n_edges && i - gs->edge < PAGE_EDGES && bytes < PAGE_BYTES; i++)
		bytes += protobuf_c_message_get_packed_size(&l->edges[i]->base) + ITEM_OVERHEAD;
	if (i > gs->edge) {
		f->edges = l->edges + gs->edge;
		f->n_edges = i - gs->edge;
		gs->edge = i;
	}
}

/*
 * Send the next frame of a streamed graph (the first carries error and
 * step).  1 when more follow, 0 after the last, -errno when it could not
 * be sent (the client was told, or is gone).
 */
static int
graph_send(struct client *c, struct graph_stream *gs)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Lineage f = DBTD__LINEAGE__INIT;
	int rc;

	if (gs->frames++ == 0) {
		f.error = gs->l->error;
		f.step = gs->l->step;
	}
	graph_page(gs, &f);
	f.more = gs->node < gs->l->n_nodes || gs->edge < gs->l->n_edges;
	resp.body_case = DBTD__RESPONSE__BODY_LINEAGE;
	resp.lineage = &f;
	resp.end = !f.more;
	rc = client_send(c, &resp); /* in a stream, a frame too large frees gs */
	return rc < 0 ? rc : f.more;
}

/* The stream is over or its connection went: free the graph. */
static void
graph_free(void *arg)
{
	struct graph_stream *gs = arg;

	if (gs->owned)
		dbtd__lineage__free_unpacked(gs->l, NULL);
	free(gs);
}

/* The client took the last frame: send the next, ending the stream after the last. */
static void
graph_drain(struct client *c, void *arg)
{
	if (graph_send(c, arg) != 1 && client_has_stream(c))
		client_stream_end(c);
}

static const struct client_stream_ops graph_ops = { .drain = graph_drain, .close = graph_free };

void
artifacts_lineage(struct api *a, struct client *c, const Dbtd__RunRef *ref)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__Lineage none = DBTD__LINEAGE__INIT, *l = NULL;
	struct graph_stream *gs;
	int rc;

	if (ref->stream && client_has_stream(c)) {
		api_stream_busy(c);
		return;
	}
	if (check_run(a, c, ref->id) < 0)
		return;
	rc = store_lineage_get(a->store, ref->id, &l);
	if (rc == -ENOENT) {
		none.error = (char *)"no dbt command of the run wrote a manifest";
	} else if (rc < 0) {
		api_store_fail(a, c, rc, "cannot read the lineage of run %llu",
		               (unsigned long long)ref->id);
		return;
	}
	if (!ref->stream) {
		/* as before streams: the whole graph in one frame, or an error over the limit */
		resp.body_case = DBTD__RESPONSE__BODY_LINEAGE;
		resp.lineage = l ? l : &none;
		client_send(c, &resp);
		if (l)
			dbtd__lineage__free_unpacked(l, NULL);
		return;
	}
	gs = calloc(1, sizeof(*gs));
	if (gs == NULL) {
		if (l)
			dbtd__lineage__free_unpacked(l, NULL);
		api_fail(c, ERR_INTERNAL, "out of memory");
		return;
	}
	gs->l = l ? l : &none; /* none has no nodes: one frame, sent here */
	gs->owned = l != NULL;
	/* the first frame now; a stream for the rest (no stream is open: checked above) */
	if (graph_send(c, gs) != 1 || client_stream_open(c, &graph_ops, gs) < 0)
		graph_free(gs);
}

/* One page of a streamed artifact list: the artifacts and their bytes. */
struct page {
	struct pb_list l;
	size_t bytes;
};

/* store_artifacts_page callback: keep a; enough once the page is about PAGE_BYTES. */
static int
page_take(void *arg, Dbtd__Artifact *a)
{
	struct page *p = arg;
	size_t size = protobuf_c_message_get_packed_size(&a->base) + ITEM_OVERHEAD;
	int rc = pb_list_push(&p->l, &a->base);

	if (rc < 0)
		return rc;
	p->bytes += size;
	return p->bytes >= PAGE_BYTES;
}

/* An artifact list being streamed: read a page from the store per frame. */
struct list_stream {
	struct api *a;
	uint64_t run;
	char *after;           /* the path of the last artifact sent; NULL: none yet */
};

/*
 * Send the next page of a streamed artifact list.  1 when more follow, 0
 * after the last, -errno when it could not be read or sent (the client was
 * told, or is gone).
 */
static int
list_send(struct client *c, struct list_stream *ls)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__ArtifactList al = DBTD__ARTIFACT_LIST__INIT;
	struct page p = { { 0 }, 0 };
	int more, rc;

	rc = store_artifacts_page(ls->a->store, ls->run, ls->after, PAGE_ITEMS, page_take, &p,
	                          &more);
	if (rc < 0) {
		api_store_fail(ls->a, c, rc, "cannot list the artifacts of run %llu",
		               (unsigned long long)ls->run);
		goto out;
	}
	if (more) {
		/* where the next page starts, kept before sending (a failed send frees ls) */
		char *next = strdup(((Dbtd__Artifact *)p.l.items[p.l.n - 1])->path);
		if (next == NULL) {
			api_fail(c, ERR_INTERNAL, "out of memory");
			rc = -ENOMEM;
			goto out;
		}
		free(ls->after);
		ls->after = next;
	}
	al.n_items = p.l.n;
	al.items = (Dbtd__Artifact **)p.l.items;
	al.more = more;
	resp.body_case = DBTD__RESPONSE__BODY_ARTIFACTS;
	resp.artifacts = &al;
	resp.end = !more;
	rc = client_send(c, &resp);
	if (rc == 0)
		rc = more;
out:
	pb_list_free(&p.l);
	return rc;
}

/* The stream is over or its connection went. */
static void
list_free(void *arg)
{
	struct list_stream *ls = arg;

	free(ls->after);
	free(ls);
}

/* The client took the last frame: send the next page, ending the stream after the last. */
static void
list_drain(struct client *c, void *arg)
{
	if (list_send(c, arg) != 1 && client_has_stream(c))
		client_stream_end(c);
}

static const struct client_stream_ops list_ops = { .drain = list_drain, .close = list_free };

/* store_artifacts_list callback: keep a. */
static int
list_cb(void *arg, Dbtd__Artifact *a)
{
	return pb_list_push(arg, &a->base);
}

/* The whole list in one frame, as before streams (an error when over the limit). */
static void
list_whole(struct api *a, struct client *c, uint64_t run)
{
	Dbtd__Response resp = DBTD__RESPONSE__INIT;
	Dbtd__ArtifactList al = DBTD__ARTIFACT_LIST__INIT;
	struct pb_list l = { 0 };
	int rc;

	rc = store_artifacts_list(a->store, run, list_cb, &l);
	if (rc < 0) {
		api_store_fail(a, c, rc, "cannot list the artifacts of run %llu",
		               (unsigned long long)run);
	} else {
		al.n_items = l.n;
		al.items = (Dbtd__Artifact **)l.items;
		resp.body_case = DBTD__RESPONSE__BODY_ARTIFACTS;
		resp.artifacts = &al;
		client_send(c, &resp);
	}
	pb_list_free(&l);
}

void
artifacts_list(struct api *a, struct client *c, const Dbtd__RunRef *ref)
{
	struct list_stream *ls;

	if (ref->stream && client_has_stream(c)) {
		api_stream_busy(c);
		return;
	}
	if (check_run(a, c, ref->id) < 0)
		return;
	if (!ref->stream) {
		list_whole(a, c, ref->id);
		return;
	}
	ls = calloc(1, sizeof(*ls));
	if (ls == NULL) {
		api_fail(c, ERR_INTERNAL, "out of memory");
		return;
	}
	ls->a = a;
	ls->run = ref->id;
	/* the first page now; a stream for the rest (no stream is open: checked above) */
	if (list_send(c, ls) != 1 || client_stream_open(c, &list_ops, ls) < 0)
		list_free(ls);
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
		api_store_fail(a, c, rc, "cannot read artifact %s", ref->path);
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
