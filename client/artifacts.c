/*
 * artifacts.c - `dbtctl run artifacts` (list, tree, search by file name)
 * and `dbtctl run artifact` (stream one file's bytes from dbtd's blob
 * frames to stdout or to a file).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "artifacts.h"
#include "commands.h"
#include "conn.h"
#include "paged.h"

enum { OPT_TREE = DBTCTL_OPT_FREE, OPT_SEARCH, OPT_OUTPUT };

#define SGR_BOLD "1"
#define SGR_DIR "1;34"

/* stdio buffer of an artifact written to a file. */
#define ARTIFACT_BUFFER (256 * 1024)

/* "123 B", "12.3 KB", "4.5 MB" (powers of 1000) into buf. */
static const char *
fmt_size(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "KB", "MB", "GB", "TB", "PB", "EB" };
	double v;
	size_t u = 0;

	if (n < 1000) {
		snprintf(buf, len, "%" PRIu64 " B", n);
		return buf;
	}
	v = (double)n / 1000;
	while (v >= 999.95 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1000;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

/* The last component of a path. */
static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* Plain byte order of paths (the flat list and --json). */
static int
cmp_path(const void *a, const void *b)
{
	const Dbtd__Artifact *x = *(Dbtd__Artifact *const *)a;
	const Dbtd__Artifact *y = *(Dbtd__Artifact *const *)b;

	return strcmp(x->path ? x->path : "", y->path ? y->path : "");
}

/* Folder by folder order (the tree): a folder's entries stay together. */
static int
cmp_tree(const void *a, const void *b)
{
	const unsigned char *x = (const unsigned char *)(*(Dbtd__Artifact *const *)a)->path;
	const unsigned char *y = (const unsigned char *)(*(Dbtd__Artifact *const *)b)->path;

	x = x ? x : (const unsigned char *)"";
	y = y ? y : (const unsigned char *)"";
	for (; *x != '\0' && *x == *y; x++, y++)
		;
	if (*x == *y)
		return 0;
	if (*x == '/')
		return *y == '\0' ? 1 : -1;
	if (*y == '/')
		return *x == '\0' ? -1 : 1;
	return *x < *y ? -1 : 1;
}

/* ---- the tree ---- */

/* A folder or a file of the tree. */
struct tnode {
	const char *name;       /* points into the artifact's path */
	size_t len;
	bool dir;
	uint64_t size;          /* files */
	struct tnode *kids;
	size_t nkids, cap;
};

static void
tree_free(struct tnode *t)
{
	for (size_t i = 0; i < t->nkids; i++)
		tree_free(&t->kids[i]);
	free(t->kids);
}

/* Append a child to t; returns it, or NULL when out of memory. */
static struct tnode *
tree_add(struct tnode *t, const char *name, size_t len, bool dir)
{
	struct tnode *k;

	if (t->nkids == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 4;
		struct tnode *nk = realloc(t->kids, cap * sizeof(*nk));

		if (nk == NULL)
			return NULL;
		t->kids = nk;
		t->cap = cap;
	}
	k = &t->kids[t->nkids++];
	memset(k, 0, sizeof(*k));
	k->name = name;
	k->len = len;
	k->dir = dir;
	return k;
}

/*
 * Put path (size bytes) into the tree under root; paths come in cmp_tree
 * order, so a folder already made is the last child.  0 or -ENOMEM.
 */
static int
tree_insert(struct tnode *root, const char *path, uint64_t size, size_t *ndirs)
{
	struct tnode *t = root;
	const char *p = path;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len;
		struct tnode *last;

		if (slash == NULL)
			break;
		len = (size_t)(slash - p);
		if (len == 0) { /* "a//b": an empty component names nothing */
			p = slash + 1;
			continue;
		}
		last = t->nkids ? &t->kids[t->nkids - 1] : NULL;
		if (last != NULL && last->dir && last->len == len && memcmp(last->name, p, len) == 0) {
			t = last;
		} else {
			t = tree_add(t, p, len, true);
			if (t == NULL)
				return -ENOMEM;
			(*ndirs)++;
		}
		p = slash + 1;
	}
	t = tree_add(t, p, strlen(p), false);
	if (t == NULL)
		return -ENOMEM;
	t->size = size;
	return 0;
}

/* Print the children of t under prefix (which grows as folders nest). */
static int
tree_print(const struct out_style *st, const struct tnode *t, char **prefix,
           size_t plen, size_t *pcap)
{
	const char *tee = st->utf8 ? "\u251c\u2500\u2500 " : "|-- ";
	const char *elbow = st->utf8 ? "\u2514\u2500\u2500 " : "`-- ";
	const char *bar = st->utf8 ? "\u2502   " : "|   ";
	const char *gap = "    ";

	for (size_t i = 0; i < t->nkids; i++) {
		const struct tnode *k = &t->kids[i];
		bool last = i + 1 == t->nkids;
		char size[32], *name;

		fwrite(*prefix, 1, plen, stdout);
		fputs(last ? elbow : tee, stdout);
		name = strndup(k->name, k->len);
		if (name == NULL)
			return -ENOMEM;
		if (k->dir) {
			out_put_sgr(st, SGR_DIR, name);
			fputs("/\n", stdout);
		} else {
			printf("%s  (%s)\n", name, fmt_size(k->size, size, sizeof(size)));
		}
		free(name);
		if (k->dir) {
			const char *more = last ? gap : bar;
			size_t mlen = strlen(more);

			if (plen + mlen + 1 > *pcap) {
				size_t cap = (plen + mlen + 1) * 2;
				char *np = realloc(*prefix, cap);

				if (np == NULL)
					return -ENOMEM;
				*prefix = np;
				*pcap = cap;
			}
			memcpy(*prefix + plen, more, mlen);
			if (tree_print(st, k, prefix, plen + mlen, pcap) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* The tree of items (sorted in place), like tree(1).  0 or -ENOMEM. */
static int
print_tree(const struct out_style *st, Dbtd__Artifact **items, size_t n)
{
	struct tnode root = { 0 };
	size_t ndirs = 0, pcap = 64;
	uint64_t total = 0;
	char *prefix = malloc(pcap), size[32];
	int rc = 0;

	if (prefix == NULL)
		return -ENOMEM;
	qsort(items, n, sizeof(*items), cmp_tree);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = tree_insert(&root, items[i]->path ? items[i]->path : "", items[i]->size, &ndirs);
		total += items[i]->size;
	}
	if (rc == 0) {
		out_put_sgr(st, SGR_DIR, ".");
		putchar('\n');
		rc = tree_print(st, &root, &prefix, 0, &pcap);
	}
	if (rc == 0)
		printf("\n%zu director%s, %zu file%s, %s\n", ndirs, ndirs == 1 ? "y" : "ies",
		       n, n == 1 ? "" : "s", fmt_size(total, size, sizeof(size)));
	tree_free(&root);
	free(prefix);
	return rc;
}

/* PATH and SIZE columns, sizes right-aligned. */
static void
print_list(const struct out_style *st, Dbtd__Artifact *const *items, size_t n)
{
	size_t pw = strlen("PATH"), sw = strlen("SIZE");
	char size[32];

	for (size_t i = 0; i < n; i++) {
		size_t pl = strlen(items[i]->path ? items[i]->path : "");
		size_t sl = strlen(fmt_size(items[i]->size, size, sizeof(size)));

		pw = pl > pw ? pl : pw;
		sw = sl > sw ? sl : sw;
	}
	out_put_sgr(st, SGR_BOLD, "PATH");
	printf("%*s", (int)(pw - strlen("PATH") + 2 + sw - strlen("SIZE")), "");
	out_put_sgr(st, SGR_BOLD, "SIZE");
	putchar('\n');
	for (size_t i = 0; i < n; i++)
		printf("%-*s  %*s\n", (int)pw, items[i]->path ? items[i]->path : "", (int)sw,
		       fmt_size(items[i]->size, size, sizeof(size)));
}

/* [{"path", "size"}], or NULL when out of memory. */
static json_t *
list_json(Dbtd__Artifact *const *items, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr != NULL && i < n; i++) {
		json_t *o = json_pack("{s:s, s:I}", "path", items[i]->path ? items[i]->path : "",
		                      "size", (json_int_t)items[i]->size);

		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* `run artifacts ID [--tree] [--search TEXT]` */
int
cmd_run_artifacts(struct dbtctl_opts *o, const struct command *cmd, int argc,
                  char **argv)
{
	static const struct option lo[] = {
		{ "tree", no_argument, NULL, OPT_TREE },
		{ "search", required_argument, NULL, OPT_SEARCH },
		DBTCTL_COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	Dbtd__Response *r;
	Dbtd__Artifact **items = NULL;
	const Dbtd__ArtifactList *al;
	const char *search = NULL;
	bool tree = false;
	size_t n = 0;
	struct conn c;
	int ch, rc;

	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_TREE:   tree = true; break;
		case OPT_SEARCH: search = optarg; break;
		default:         return stop_status(ch);
		}
	}
	if (run_id_arg(cmd, argc, argv, &ref.id) < 0)
		return DBTCTL_EXIT_USAGE;
	if (search != NULL && search[0] == '\0') {
		usage_error(cmd, "--search needs a non-empty TEXT (part of a file name)");
		return DBTCTL_EXIT_USAGE;
	}

	ref.stream = true; /* however many, in frames dbtd bounds; put together here */
	req.body_case = DBTD__REQUEST__BODY_ARTIFACTS;
	req.artifacts = &ref;
	rc = request_paged(o, &c, &req, DBTD__RESPONSE__BODY_ARTIFACTS, "see dbtctl run list",
	                   &r);
	if (rc != 0)
		return rc;
	al = r->artifacts;
	if (al->error != NULL && al->error[0] != '\0')
		fprintf(stderr, "dbtctl: note: %s\n", al->error);

	/* the entries to show: all, or those whose file name holds TEXT */
	items = malloc((al->n_items + 1) * sizeof(*items));
	if (items == NULL) {
		fprintf(stderr, "dbtctl: out of memory\n");
		request_done(&c, r);
		return DBTCTL_EXIT_FAILED;
	}
	for (size_t i = 0; i < al->n_items; i++)
		if (search == NULL ||
		    strcasestr(base_name(al->items[i]->path ? al->items[i]->path : ""), search))
			items[n++] = al->items[i];
	qsort(items, n, sizeof(*items), cmp_path);

	rc = DBTCTL_EXIT_OK;
	if (o->json) {
		rc = print_json(list_json(items, n));
	} else if (n == 0) {
		if (search == NULL)
			printf("Run %" PRIu64 " has no artifacts.\n", ref.id);
	} else if (tree) {
		if (print_tree(&o->style, items, n) < 0) {
			fflush(stdout);
			fprintf(stderr, "dbtctl: out of memory while printing the tree\n");
			rc = DBTCTL_EXIT_FAILED;
		}
	} else {
		print_list(&o->style, items, n);
	}
	if (search != NULL && n == 0) {
		fflush(stdout);
		fprintf(stderr, "dbtctl: no artifact of run %" PRIu64 " has a file name "
		        "containing \"%s\" (%zu artifact%s in all)\n", ref.id, search,
		        al->n_items, al->n_items == 1 ? "" : "s");
		if (rc == DBTCTL_EXIT_OK)
			rc = DBTCTL_EXIT_FAILED;
	}
	free(items);
	request_done(&c, r);
	return rc;
}

/* ---- one artifact ---- */

/*
 * True when path can name an artifact: relative, not empty, no ".."
 * component (dbtd checks the same).
 */
static bool
artifact_path_ok(const char *path)
{
	if (path[0] == '\0' || path[0] == '/')
		return false;
	for (const char *p = path; p != NULL; p = strchr(p, '/')) {
		p += *p == '/';
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
			return false;
	}
	return true;
}

/* A file written as NAME.tmp and renamed to NAME once complete. */
struct out_tmp {
	const char *path;
	char *tmp;
	FILE *f;
};

/* Create path.tmp for writing.  0, or exit status 1 after saying why. */
static int
tmp_open(struct out_tmp *t, const char *path)
{
	int fd;

	t->path = path;
	t->f = NULL;
	if (asprintf(&t->tmp, "%s.tmp", path) < 0) {
		t->tmp = NULL;
		fprintf(stderr, "dbtctl: out of memory\n");
		return DBTCTL_EXIT_FAILED;
	}
	fd = open(t->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (t->f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "dbtctl: cannot create %s: %s\n", t->tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(t->tmp);
		}
		free(t->tmp);
		t->tmp = NULL;
		return DBTCTL_EXIT_FAILED;
	}
	setvbuf(t->f, NULL, _IOFBF, ARTIFACT_BUFFER);
	return 0;
}

/*
 * Finish the file: with keep, flush, sync and rename it into place (exit
 * status 1 after saying why that failed); else remove it.
 */
static int
tmp_close(struct out_tmp *t, bool keep)
{
	int rc = 0;

	if (t->f == NULL)
		return keep ? DBTCTL_EXIT_FAILED : 0;
	if (keep && (fflush(t->f) != 0 || ferror(t->f) || fsync(fileno(t->f)) < 0)) {
		fprintf(stderr, "dbtctl: cannot write %s: %s\n", t->tmp, strerror(errno));
		keep = false;
		rc = DBTCTL_EXIT_FAILED;
	}
	if (fclose(t->f) != 0 && keep) {
		fprintf(stderr, "dbtctl: cannot write %s: %s\n", t->tmp, strerror(errno));
		keep = false;
		rc = DBTCTL_EXIT_FAILED;
	}
	t->f = NULL;
	if (keep && rename(t->tmp, t->path) < 0) {
		fprintf(stderr, "dbtctl: cannot rename %s to %s: %s\n", t->tmp, t->path,
		        strerror(errno));
		keep = false;
		rc = DBTCTL_EXIT_FAILED;
	}
	if (!keep)
		unlink(t->tmp);
	free(t->tmp);
	t->tmp = NULL;
	return rc;
}

/* `run artifact ID PATH [--output FILE]` */
int
cmd_run_artifact(struct dbtctl_opts *o, const struct command *cmd, int argc,
                 char **argv)
{
	static const struct option lo[] = {
		{ "output", required_argument, NULL, OPT_OUTPUT },
		DBTCTL_COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ArtifactRef ref = DBTD__ARTIFACT_REF__INIT;
	Dbtd__Response *r = NULL;
	struct out_tmp t = { 0 };
	const char *output = NULL, *id;
	FILE *out = stdout;
	uint64_t bytes = 0;
	struct conn c;
	int ch, rc;

	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		if (ch != OPT_OUTPUT)
			return stop_status(ch);
		output = optarg;
	}
	if (optind + 2 > argc) {
		usage_error(cmd, "run artifact needs %s", optind < argc ? "a PATH (see dbtctl "
		            "run artifacts ID)" : "a run ID and a PATH");
		return DBTCTL_EXIT_USAGE;
	}
	if (optind + 2 < argc) {
		usage_error(cmd, "unexpected argument \"%s\"", argv[optind + 2]);
		return DBTCTL_EXIT_USAGE;
	}
	id = argv[optind];
	if (parse_num(cmd, "run ID", id[0] == '#' ? id + 1 : id, 1, INT64_MAX, &ref.run) < 0)
		return DBTCTL_EXIT_USAGE;
	ref.path = argv[optind + 1];
	if (!artifact_path_ok(ref.path)) {
		fprintf(stderr, "dbtctl: artifact path \"%s\" is not valid: give a path inside "
		        "the dbt project as run artifacts lists it, e.g. target/manifest.json\n",
		        ref.path);
		return DBTCTL_EXIT_USAGE;
	}
	if (output != NULL && output[0] == '\0') {
		usage_error(cmd, "--output needs a FILE");
		return DBTCTL_EXIT_USAGE;
	}

	req.body_case = DBTD__REQUEST__BODY_ARTIFACT;
	req.artifact = &ref;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_BLOB, "see dbtctl run list", &r);
	if (rc != 0)
		return rc;
	/* the file only once dbtd has said the artifact exists */
	if (output != NULL) {
		rc = tmp_open(&t, output);
		if (rc != 0)
			goto out;
		out = t.f;
	}
	for (;;) {
		if (r->body_case == DBTD__RESPONSE__BODY_BLOB && r->blob.len > 0) {
			if (fwrite(r->blob.data, 1, r->blob.len, out) != r->blob.len) {
				if (output != NULL) {
					fprintf(stderr, "dbtctl: cannot write %s: %s\n", t.tmp,
					        strerror(errno));
					rc = DBTCTL_EXIT_FAILED;
				}
				/* stdout: main reports the write error (not a closed pipe) */
				goto out;
			}
			bytes += r->blob.len;
		}
		if (r->end)
			break;
		dbtd__response__free_unpacked(r, NULL);
		r = NULL;
		rc = conn_recv(&c, &r);
		if (rc < 0) {
			fflush(stdout);
			if (rc == -ECONNRESET || rc == -EPROTO) {
				fprintf(stderr, "dbtctl: dbtd at %s closed the connection before the "
				        "end of %s (%" PRIu64 " bytes received)\n", c.path, ref.path,
				        bytes);
				rc = DBTCTL_EXIT_FAILED;
			} else {
				rc = transport_error(&c, rc);
			}
			r = NULL;
			goto out;
		}
		if (r->body_case == DBTD__RESPONSE__BODY__NOT_SET && r->end)
			break;
		if (r->body_case != DBTD__RESPONSE__BODY_BLOB) {
			fflush(stdout);
			rc = reply_check(r, DBTD__RESPONSE__BODY_BLOB, "see dbtctl run list");
			if (rc == 0)
				rc = DBTCTL_EXIT_FAILED;
			goto out;
		}
	}
	rc = DBTCTL_EXIT_OK;
	if (output != NULL) {
		rc = tmp_close(&t, true);
		if (rc == 0)
			fprintf(stderr, "wrote %" PRIu64 " bytes to %s\n", bytes, output);
	}
out:
	if (t.f != NULL)
		tmp_close(&t, false);
	request_done(&c, r);
	return rc;
}
