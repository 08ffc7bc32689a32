/* lineage.c - a run's model graph from dbt's target/ files (see lineage.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "lineage.h"
#include "pb.h"
#include "util.h"

/*
 * One value at a time from the middle of a buffer.  Integers are read as
 * reals: dbt writes Python ints of any size (a meta: of the user's), which
 * jansson refuses as integers ("too big integer"); none of ours is one.
 */
#define SCAN_FLAGS (JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_DECODE_INT_AS_REAL)

/* A JSON document in memory, walked one member at a time. */
struct scan {
	const char *buf;
	size_t len;
	size_t pos;
	int rc;                           /* 0, or -EBADMSG / -ENOMEM once failed */
	size_t err_at;                    /* bytes read when it failed */
	char err[JSON_ERROR_TEXT_LENGTH]; /* what was wrong */
};

/* A node while the manifest is read. */
struct rec {
	Dbtd__LineageNode *node;
	json_t *deps;  /* its depends_on.nodes (a reference), or NULL */
	size_t seq;    /* order in the file: the later of two equal ids wins */
};

/* The graph while the manifest is read. */
struct build {
	struct rec *recs;
	size_t n, cap;
	int has_nodes;            /* the manifest has a "nodes" object */
	const char *section_type; /* "source", "exposure", or NULL in "nodes" */
};

/* An edge by node indexes. */
struct edge {
	uint32_t parent, child;
};

/* The entry handlers of scan_members() and scan_elements(). */
typedef int (*member_fn)(void *ctx, struct scan *s, const char *key);
typedef int (*element_fn)(void *ctx, struct scan *s);

/* The resource types of "nodes" that are part of the graph. */
static const char *const node_types[] = { "model", "seed", "snapshot", "test" };

/* Record the first failure of s: rc, where, and a message; returns rc. */
static int __attribute__((format(printf, 4, 5)))
scan_fail(struct scan *s, int rc, size_t at, const char *fmt, ...)
{
	va_list ap;

	if (s->rc)
		return s->rc;
	s->rc = rc;
	s->err_at = at > s->len ? s->len : at;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof(s->err), fmt, ap);
	va_end(ap);
	return rc;
}

/* Skip white space; the next byte, or -1 at the end. */
static int
scan_peek(struct scan *s)
{
	while (s->pos < s->len) {
		char c = s->buf[s->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			return (unsigned char)c;
		s->pos++;
	}
	return -1;
}

/* Fail with "<what> expected" at the next byte. */
static int
scan_expected(struct scan *s, const char *what)
{
	if (scan_peek(s) < 0)
		return scan_fail(s, -EBADMSG, s->len, "%s expected near end of file", what);
	return scan_fail(s, -EBADMSG, s->pos + 1, "%s expected near '%c'", what,
	    s->buf[s->pos]);
}

/* Consume the byte c after white space, or fail with "<what> expected". */
static int
scan_expect(struct scan *s, int c, const char *what)
{
	if (scan_peek(s) != c)
		return scan_expected(s, what);
	s->pos++;
	return 0;
}

/* Parse the one value at s->pos with jansson into *v (the caller's). */
static int
scan_value(struct scan *s, json_t **v)
{
	json_error_t e;
	size_t left = s->len - s->pos;

	*v = json_loadb(s->buf + s->pos, left, SCAN_FLAGS, &e);
	if (*v == NULL) {
		if (json_error_code(&e) == json_error_out_of_memory || e.text[0] == '\0')
			return scan_fail(s, -ENOMEM, s->pos, "out of memory");
		return scan_fail(s, -EBADMSG, s->pos + (e.position > 0 ? (size_t)e.position : 0),
		    "%s", e.text);
	}
	/* on success jansson reports the bytes it consumed (an int) */
	if (e.position <= 0 || (size_t)e.position > left) {
		json_decref(*v);
		*v = NULL;
		return scan_fail(s, -EBADMSG, s->pos, "value too large");
	}
	s->pos += (size_t)e.position;
	return 0;
}

/* Walk the object at s->pos: fn(ctx, s, key) consumes each member's value. */
static int
scan_members(struct scan *s, member_fn fn, void *ctx)
{
	json_t *key;
	int c, rc;

	if ((rc = scan_expect(s, '{', "'{'")) < 0)
		return rc;
	if (scan_peek(s) == '}') {
		s->pos++;
		return 0;
	}
	for (;;) {
		if (scan_peek(s) != '"')
			return scan_expected(s, "string");
		if ((rc = scan_value(s, &key)) < 0)
			return rc;
		rc = scan_expect(s, ':', "':'");
		if (rc == 0)
			rc = fn(ctx, s, json_string_value(key));
		json_decref(key);
		if (rc < 0)
			return rc;
		c = scan_peek(s);
		if (c != ',' && c != '}')
			return scan_expected(s, "',' or '}'");
		s->pos++;
		if (c == '}')
			return 0;
	}
}

/* Walk the array at s->pos: fn(ctx, s) consumes each element. */
static int
scan_elements(struct scan *s, element_fn fn, void *ctx)
{
	int c, rc;

	if ((rc = scan_expect(s, '[', "'['")) < 0)
		return rc;
	if (scan_peek(s) == ']') {
		s->pos++;
		return 0;
	}
	for (;;) {
		if ((rc = fn(ctx, s)) < 0)
			return rc;
		c = scan_peek(s);
		if (c != ',' && c != ']')
			return scan_expected(s, "',' or ']'");
		s->pos++;
		if (c == ']')
			return 0;
	}
}

/* Parse one value and drop it. */
static int
skip_one(struct scan *s)
{
	json_t *v;
	int rc = scan_value(s, &v);

	json_decref(v);
	return rc;
}

/* A member_fn that drops the member. */
static int
skip_member(void *ctx, struct scan *s, const char *key)
{
	return skip_one(s);
}

/* An element_fn that drops the element. */
static int
skip_element(void *ctx, struct scan *s)
{
	return skip_one(s);
}

/*
 * Drop the value at s->pos, a container one member at a time (so a large
 * "macros" or "child_map" never becomes one tree).
 */
static int
scan_skip(struct scan *s)
{
	switch (scan_peek(s)) {
	case '{':
		return scan_members(s, skip_member, NULL);
	case '[':
		return scan_elements(s, skip_element, NULL);
	default:
		return skip_one(s);
	}
}

/* Fail unless only white space is left. */
static int
scan_end(struct scan *s)
{
	if (s->rc)
		return s->rc;
	if (scan_peek(s) >= 0)
		return scan_fail(s, -EBADMSG, s->pos + 1, "end of file expected near '%c'",
		    s->buf[s->pos]);
	return 0;
}

/* Walk a whole document whose root object's members fn consumes. */
static int
scan_document(struct scan *s, member_fn fn, void *ctx)
{
	int rc;

	if (scan_peek(s) == '{')
		rc = scan_members(s, fn, ctx);
	else
		rc = scan_skip(s); /* valid JSON perhaps, but not what we look for */
	if (rc < 0)
		return rc;
	return scan_end(s);
}

/* Line and column (in characters, as jansson counts) where s failed. */
static void
scan_where(const struct scan *s, size_t *line, size_t *col)
{
	const char *p = s->buf, *end = s->buf + s->err_at, *nl;

	*line = 1;
	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		(*line)++;
		p = nl + 1;
	}
	for (*col = 0; p < end; p++)
		if (((unsigned char)*p & 0xC0) != 0x80)
			(*col)++;
}

/* Read the whole regular file at path into a malloc'd, NUL-ended buffer. */
static int
read_file(const char *path, char **out, size_t *out_len)
{
	struct stat st;
	char *buf = NULL, *bigger;
	size_t cap, len = 0;
	ssize_t got;
	int fd, rc;

	*out = NULL;
	*out_len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto fail;
	}
	if ((uint64_t)st.st_size >= SIZE_MAX / 2) {
		rc = -EFBIG;
		goto fail;
	}
	cap = (size_t)st.st_size + 1; /* +1: see the end of the file in one read */
	if ((buf = malloc(cap + 1)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	for (;;) {
		if (len == cap) { /* it grew since fstat */
			if (cap >= SIZE_MAX / 4 || (bigger = realloc(buf, cap * 2 + 1)) == NULL) {
				rc = -ENOMEM;
				goto fail;
			}
			buf = bigger;
			cap *= 2;
		}
		got = read(fd, buf + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			goto fail;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
fail:
	free(buf);
	close(fd);
	return rc;
}

/* The string member key of obj, or NULL (also when obj is no object). */
static const char *
jstr(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* Whether a resource type of "nodes" belongs in the graph. */
static int
is_node_type(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof(node_types) / sizeof(node_types[0]); i++)
		if (strcmp(type, node_types[i]) == 0)
			return 1;
	return 0;
}

/* Add the manifest entry key: v to the graph when it is a graph node. */
static int
add_node(struct build *b, const char *key, json_t *v)
{
	Dbtd__LineageNode *n;
	const char *type, *uid;
	json_t *deps;
	struct rec *bigger;

	if (!json_is_object(v))
		return 0;
	type = jstr(v, "resource_type");
	if (b->section_type != NULL) {
		if (type != NULL && strcmp(type, b->section_type) != 0)
			return 0;
		type = b->section_type;
	} else if (type == NULL || !is_node_type(type)) {
		return 0;
	}
	uid = jstr(v, "unique_id");
	if (uid == NULL || uid[0] == '\0')
		uid = key; /* dbt keys each entry by its unique_id */

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 256;

		if (cap > SIZE_MAX / sizeof(*b->recs) ||
		    (bigger = realloc(b->recs, cap * sizeof(*b->recs))) == NULL)
			return -ENOMEM;
		b->recs = bigger;
		b->cap = cap;
	}
	if ((n = malloc(sizeof(*n))) == NULL)
		return -ENOMEM;
	dbtd__lineage_node__init(n);
	if (pb_set_str(&n->unique_id, uid) < 0 ||
	    pb_set_str(&n->resource_type, type) < 0 ||
	    pb_set_str(&n->name, jstr(v, "name")) < 0 ||
	    pb_set_str(&n->package, jstr(v, "package_name")) < 0 ||
	    pb_set_str(&n->materialization,
		jstr(json_object_get(v, "config"), "materialized")) < 0 ||
	    pb_set_str(&n->original_file_path, jstr(v, "original_file_path")) < 0) {
		dbtd__lineage_node__free_unpacked(n, NULL);
		return -ENOMEM;
	}
	deps = json_object_get(json_object_get(v, "depends_on"), "nodes");
	b->recs[b->n].node = n;
	b->recs[b->n].deps = json_is_array(deps) && json_array_size(deps) ? json_incref(deps) : NULL;
	b->recs[b->n].seq = b->n;
	b->n++;
	return 0;
}

/* A member_fn for an entry of "nodes", "sources" or "exposures". */
static int
node_member(void *ctx, struct scan *s, const char *key)
{
	json_t *v;
	int rc;

	if ((rc = scan_value(s, &v)) < 0)
		return rc;
	rc = add_node(ctx, key, v);
	json_decref(v);
	return rc;
}

/* A member_fn for the manifest's top level. */
static int
manifest_member(void *ctx, struct scan *s, const char *key)
{
	struct build *b = ctx;

	if (scan_peek(s) != '{')
		return scan_skip(s);
	if (strcmp(key, "nodes") == 0) {
		b->has_nodes = 1;
		b->section_type = NULL;
	} else if (strcmp(key, "sources") == 0) {
		b->section_type = "source";
	} else if (strcmp(key, "exposures") == 0) {
		b->section_type = "exposure";
	} else {
		return scan_skip(s);
	}
	return scan_members(s, node_member, b);
}

/* Order records by unique_id, then by position in the file. */
static int
rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	int c = strcmp(x->node->unique_id, y->node->unique_id);

	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* bsearch: a unique_id against a node. */
static int
node_key_cmp(const void *key, const void *elt)
{
	const Dbtd__LineageNode *const *n = elt;

	return strcmp(key, (*n)->unique_id);
}

/* qsort: two nodes by unique_id. */
static int
node_cmp(const void *a, const void *b)
{
	const Dbtd__LineageNode *const *x = a, *const *y = b;

	return strcmp((*x)->unique_id, (*y)->unique_id);
}

/* Order edges by parent, then child. */
static int
edge_cmp(const void *a, const void *b)
{
	const struct edge *x = a, *y = b;

	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	return x->child < y->child ? -1 : x->child > y->child;
}

/* The index of the node with this unique_id in l, or -1. */
static long
node_index(const Dbtd__Lineage *l, const char *uid)
{
	Dbtd__LineageNode **hit;

	if (l->n_nodes == 0)
		return -1;
	hit = bsearch(uid, l->nodes, l->n_nodes, sizeof(*l->nodes), node_key_cmp);
	return hit ? (long)(hit - l->nodes) : -1;
}

/* Free what b still holds: the nodes not moved into a graph, the deps. */
static void
build_free(struct build *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		if (b->recs[i].node)
			dbtd__lineage_node__free_unpacked(b->recs[i].node, NULL);
		json_decref(b->recs[i].deps);
	}
	free(b->recs);
	memset(b, 0, sizeof(*b));
}

/* Move the records of b into l->nodes: sorted, one per unique_id. */
static int
build_nodes(struct build *b, Dbtd__Lineage *l)
{
	size_t i, kept = 0;

	if (b->n == 0)
		return 0;
	if (b->n > UINT32_MAX)
		return -E2BIG;
	qsort(b->recs, b->n, sizeof(*b->recs), rec_cmp);
	for (i = 0; i < b->n; i++) {
		if (i + 1 < b->n &&
		    strcmp(b->recs[i].node->unique_id, b->recs[i + 1].node->unique_id) == 0) {
			dbtd__lineage_node__free_unpacked(b->recs[i].node, NULL);
			json_decref(b->recs[i].deps);
			continue;
		}
		b->recs[kept++] = b->recs[i];
	}
	b->n = kept;
	if ((l->nodes = malloc(kept * sizeof(*l->nodes))) == NULL)
		return -ENOMEM;
	for (i = 0; i < kept; i++) {
		l->nodes[i] = b->recs[i].node;
		b->recs[i].node = NULL;
	}
	l->n_nodes = kept;
	return 0;
}

/* Build l->edges from the records' depends_on (l->nodes in record order). */
static int
build_edges(struct build *b, Dbtd__Lineage *l)
{
	struct edge *e;
	size_t i, j, k, n = 0, kept = 0;
	long p;
	int rc = -ENOMEM;

	for (i = 0; i < b->n; i++)
		n += b->recs[i].deps ? json_array_size(b->recs[i].deps) : 0;
	if (n == 0)
		return 0;
	if ((e = malloc(n * sizeof(*e))) == NULL)
		return -ENOMEM;
	n = 0;
	for (i = 0; i < b->n; i++) {
		json_t *deps = b->recs[i].deps;

		for (j = 0; j < json_array_size(deps); j++) {
			const char *uid = json_string_value(json_array_get(deps, j));

			if (uid == NULL || (p = node_index(l, uid)) < 0)
				continue;
			e[n].parent = (uint32_t)p;
			e[n].child = (uint32_t)i;
			n++;
		}
	}
	qsort(e, n, sizeof(*e), edge_cmp);
	for (k = 0; k < n; k++)
		if (kept == 0 || edge_cmp(&e[kept - 1], &e[k]) != 0)
			e[kept++] = e[k];
	if (kept && (l->edges = malloc(kept * sizeof(*l->edges))) == NULL)
		goto out;
	for (k = 0; k < kept; k++) {
		Dbtd__LineageEdge *m = malloc(sizeof(*m));

		if (m == NULL)
			goto out;
		dbtd__lineage_edge__init(m);
		m->parent = e[k].parent;
		m->child = e[k].child;
		l->edges[l->n_edges++] = m;
	}
	rc = 0;
out:
	free(e);
	return rc;
}

/* An element_fn for an entry of run_results.json's "results". */
static int
result_element(void *ctx, struct scan *s)
{
	Dbtd__Lineage *l = ctx;
	const char *status, *uid;
	json_t *v, *t;
	long i;
	int rc;

	if ((rc = scan_value(s, &v)) < 0)
		return rc;
	status = jstr(v, "status");
	uid = jstr(v, "unique_id");
	if (status != NULL && uid != NULL && (i = node_index(l, uid)) >= 0) {
		rc = pb_set_str(&l->nodes[i]->status, status);
		t = json_object_get(v, "execution_time");
		l->nodes[i]->execution_time = json_is_number(t) ? json_number_value(t) : 0;
	}
	json_decref(v);
	return rc;
}

/* A member_fn for run_results.json's top level. */
static int
results_member(void *ctx, struct scan *s, const char *key)
{
	if (strcmp(key, "results") == 0 && scan_peek(s) == '[')
		return scan_elements(s, result_element, ctx);
	return scan_skip(s);
}

/* Forget every status of l. */
static void
clear_statuses(Dbtd__Lineage *l)
{
	size_t i;

	for (i = 0; i < l->n_nodes; i++) {
		if (l->nodes[i]->status != protobuf_c_empty_string)
			free(l->nodes[i]->status);
		l->nodes[i]->status = (char *)protobuf_c_empty_string;
		l->nodes[i]->execution_time = 0;
	}
}

/*
 * Set the statuses of l from path (run_results.json).  A file that is
 * missing, unreadable or not what it should be leaves no status: 0.
 * Only running out of memory is an error.
 */
static int
read_statuses(const char *path, Dbtd__Lineage *l)
{
	struct scan s = { 0 };
	char *buf;
	int rc;

	rc = read_file(path, &buf, &s.len);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return 0;
	s.buf = buf;
	rc = scan_document(&s, results_member, l);
	free(buf);
	if (rc < 0)
		clear_statuses(l);
	return rc == -ENOMEM ? rc : 0;
}

/* "<last component of dir>/<file>", how messages name a file of target/. */
static char *
display_name(const char *dir, const char *file)
{
	size_t n = strlen(dir);
	const char *base;

	while (n > 1 && dir[n - 1] == '/')
		n--;
	base = dir + n;
	while (base > dir && base[-1] != '/')
		base--;
	n -= (size_t)(base - dir);
	if (n == 0 || (n == 1 && base[0] == '.') || (n == 1 && base[0] == '/'))
		return xasprintf("%s", file);
	return xasprintf("%.*s/%s", (int)n, base, file);
}

/* Set *why (when wanted) to a message about manifest read failure rc. */
static void
read_failure(char **why, const char *name, int rc)
{
	if (why == NULL)
		return;
	if (rc == -ENOENT)
		*why = xasprintf("%s is missing (dbt did not get far enough to write it)", name);
	else if (rc == -ENOMEM)
		*why = xasprintf("%s is too large to load: out of memory", name);
	else if (rc == -EINVAL)
		*why = xasprintf("%s is not a regular file", name);
	else
		*why = xasprintf("cannot read %s: %s", name, strerror(-rc));
}

int
lineage_read(const char *target_dir, Dbtd__Lineage **out, char **why)
{
	struct build b = { 0 };
	struct scan s = { 0 };
	Dbtd__Lineage *l = NULL;
	char *path = NULL, *name = NULL, *buf = NULL;
	size_t line, col;
	int rc;

	*out = NULL;
	if (why)
		*why = NULL;
	name = display_name(target_dir, "manifest.json");
	path = xasprintf("%s/manifest.json", target_dir);
	if (name == NULL || path == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = read_file(path, &buf, &s.len)) < 0) {
		read_failure(why, name, rc);
		goto fail;
	}
	if (s.len == 0) {
		rc = -EBADMSG;
		if (why)
			*why = xasprintf("%s is empty (dbt stopped while writing it)", name);
		goto fail;
	}
	s.buf = buf;
	rc = scan_document(&s, manifest_member, &b);
	if (rc == -EBADMSG && why) {
		scan_where(&s, &line, &col);
		*why = xasprintf("%s is not valid JSON: %s at line %zu column %zu",
		    name, s.err, line, col);
	}
	free(buf);
	buf = NULL;
	if (rc < 0)
		goto fail;
	if (!b.has_nodes) {
		rc = -EBADMSG;
		if (why)
			*why = xasprintf("%s has no \"nodes\": not a dbt manifest", name);
		goto fail;
	}

	if ((l = malloc(sizeof(*l))) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	dbtd__lineage__init(l);
	rc = build_nodes(&b, l);
	if (rc == 0)
		rc = build_edges(&b, l);
	build_free(&b);
	if (rc < 0)
		goto fail;

	free(path);
	if ((path = xasprintf("%s/run_results.json", target_dir)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = read_statuses(path, l)) < 0)
		goto fail;
	free(path);
	free(name);
	*out = l;
	return 0;

fail:
	if (why && *why == NULL && rc == -ENOMEM)
		*why = xasprintf("out of memory reading %s", name ? name : "manifest.json");
	if (why && *why == NULL && rc == -E2BIG)
		*why = xasprintf("%s has too many nodes", name ? name : "manifest.json");
	build_free(&b);
	if (l)
		dbtd__lineage__free_unpacked(l, NULL);
	free(buf);
	free(path);
	free(name);
	return rc;
}

int
lineage_merge_status(Dbtd__Lineage *into, const Dbtd__Lineage *older)
{
	Dbtd__LineageNode **idx, **hit;
	size_t i;
	int rc = 0;

	if (older == NULL || older->n_nodes == 0 || into == NULL)
		return 0;
	if ((idx = malloc(older->n_nodes * sizeof(*idx))) == NULL)
		return -ENOMEM;
	memcpy(idx, older->nodes, older->n_nodes * sizeof(*idx));
	qsort(idx, older->n_nodes, sizeof(*idx), node_cmp);
	for (i = 0; i < into->n_nodes && rc == 0; i++) {
		Dbtd__LineageNode *n = into->nodes[i];

		if (pb_str_set(n->status) || n->unique_id == NULL)
			continue;
		hit = bsearch(n->unique_id, idx, older->n_nodes, sizeof(*idx), node_key_cmp);
		if (hit == NULL || !pb_str_set((*hit)->status))
			continue;
		if ((rc = pb_set_str(&n->status, (*hit)->status)) == 0)
			n->execution_time = (*hit)->execution_time;
	}
	free(idx);
	return rc;
}
