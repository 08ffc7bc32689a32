/*
 * lineage.c - `dbtctl run lineage`: a run's model graph as dbtd keeps it
 * (proto Lineage: nodes sorted by unique_id, edges parent -> child as
 * indexes), narrowed with dbt's node selection syntax, with the downstream
 * impact of failed nodes, printed as text by layer, Graphviz dot, Mermaid
 * or JSON.
 *
 * The graph is held as adjacency lists (children and parents of each node
 * as ranges of one index array), so selection, layering and impact are
 * linear in nodes + edges.
 */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commands.h"
#include "conn.h"
#include "lineage.h"
#include "paged.h"

enum {
	OPT_FORMAT = DBTCTL_OPT_FREE, OPT_SELECT, OPT_IMPACT, OPT_TESTS,
};

/* How the graph is printed. */
enum format { FMT_TEXT, FMT_DOT, FMT_MERMAID, FMT_JSON };

/* No depth limit on a graph operator. */
#define DEPTH_ALL UINT32_MAX

/* Parents listed on a node's line of the text view before "+N more". */
#define TEXT_PARENTS 5
/* Widest name column of the text view (longer names push the line). */
#define TEXT_NAME_MAX 32
/* Downstream nodes listed per failure in the text view. */
#define TEXT_IMPACT_MAX 25

#define SGR_BOLD "1"
#define SGR_DIM "2"
#define SGR_RED "31"
#define SGR_GREEN "32"
#define SGR_YELLOW "33"

/* What a run_results status means here. */
enum status_class { ST_OK, ST_FAILED, ST_WARN, ST_SKIPPED, ST_NOT_RUN, ST_OTHER };

/* One selector of --select: [@][N+]method:value[+N], as dbt parses it. */
struct selector {
	char *raw;            /* as given, for messages */
	char *value;          /* what the method matches */
	char method[32];      /* "" for dbt's default (fqn, path or file) */
	bool plain;           /* value has no dot and no wildcard */
	bool at;              /* @: descendants and all their ancestors */
	bool up, down;        /* a + before / after the value */
	uint32_t up_depth;    /* generations of parents, or DEPTH_ALL */
	uint32_t down_depth;  /* generations of children, or DEPTH_ALL */
};

/* The graph and what is shown of it. */
struct graph {
	Dbtd__LineageNode **node;
	uint32_t n;
	uint32_t *kid_off, *kid;   /* children of i: kid[kid_off[i] .. kid_off[i+1]) */
	uint32_t *par_off, *par;   /* parents of i, the same way */
	uint32_t nedges;
	/* traversal scratch */
	uint32_t *queue;           /* nodes reached by the last walk, in order */
	uint32_t *seen;            /* stamp of the last walk that reached the node */
	uint32_t *depth;           /* steps from the start of that walk */
	uint32_t stamp;
	/* what is shown */
	uint8_t *shown;
	uint32_t nshown;
	uint32_t hidden_tests;     /* tests left out for want of --tests */
	/* impact (--impact) */
	uint32_t *failed;          /* shown failed nodes, in index order */
	uint32_t nfailed;
	uint32_t **down;           /* per failed node: its downstream, sorted */
	uint32_t *ndown;
	uint8_t *impacted;         /* in some failed node's downstream */
	uint32_t hidden_failed;    /* failed tests not shown */
};

/* ---- small helpers ---- */

/* s, or "" for NULL. */
static const char *
str(const char *s)
{
	return s != NULL ? s : "";
}

static const char *
node_id(const struct graph *g, uint32_t i)
{
	return str(g->node[i]->unique_id);
}

static const char *
node_name(const struct graph *g, uint32_t i)
{
	const char *s = str(g->node[i]->name);

	return s[0] != '\0' ? s : node_id(g, i);
}

static const char *
node_type(const struct graph *g, uint32_t i)
{
	return str(g->node[i]->resource_type);
}

static const char *
node_status(const struct graph *g, uint32_t i)
{
	return str(g->node[i]->status);
}

static bool
is_test(const struct graph *g, uint32_t i)
{
	return strcmp(node_type(g, i), "test") == 0;
}

static enum status_class
status_class(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return ST_NOT_RUN;
	if (strcmp(s, "success") == 0 || strcmp(s, "pass") == 0)
		return ST_OK;
	if (strcmp(s, "error") == 0 || strcmp(s, "fail") == 0 ||
	    strcmp(s, "runtime error") == 0)
		return ST_FAILED;
	if (strcmp(s, "warn") == 0)
		return ST_WARN;
	if (strcmp(s, "skipped") == 0)
		return ST_SKIPPED;
	return ST_OTHER;
}

/* The mark of a status: ✓ ✗ ! – ○ · (UTF-8) or [ok] [x] [!] [-] [ ] [.]. */
static const char *
status_mark(const struct out_style *st, enum status_class c)
{
	switch (c) {
	case ST_OK:      return st->utf8 ? "\u2713" : "[ok]";
	case ST_FAILED:  return st->utf8 ? "\u2717" : "[x]";
	case ST_WARN:    return st->utf8 ? "!" : "[!]";
	case ST_SKIPPED: return st->utf8 ? "\u2013" : "[-]";
	case ST_NOT_RUN: return st->utf8 ? "\u25cb" : "[ ]";
	default:         return st->utf8 ? "\u00b7" : "[.]";
	}
}

static const char *
status_sgr(enum status_class c)
{
	switch (c) {
	case ST_OK:     return SGR_GREEN;
	case ST_FAILED: return SGR_RED;
	case ST_WARN:   return SGR_YELLOW;
	default:        return SGR_DIM;
	}
}

/* Fill colour of a status in dot and Mermaid. */
static const char *
status_fill(enum status_class c)
{
	switch (c) {
	case ST_OK:      return "#a5d6a7";
	case ST_FAILED:  return "#ef9a9a";
	case ST_WARN:    return "#ffcc80";
	case ST_SKIPPED: return "#d0d0d0";
	case ST_NOT_RUN: return "#ffffff";
	default:         return "#bbdefb";
	}
}

/* Mermaid class name of a status. */
static const char *
status_class_name(enum status_class c)
{
	static const char *const names[] = { "success", "error", "warn", "skipped",
	                                     "notrun", "other" };
	return names[c];
}

/* The status as people read it after a node's name. */
static const char *
status_words(const char *s)
{
	return s[0] != '\0' ? s : "did not run";
}

/* Print text with control characters (C0 and DEL) as '?': names come from the project. */
static void
put_clean(const char *text)
{
	const char *run = text;

	for (; *text != '\0'; text++) {
		if ((unsigned char)*text >= 0x20 && *text != 0x7f)
			continue;
		fwrite(run, 1, (size_t)(text - run), stdout);
		putchar('?');
		run = text + 1;
	}
	fwrite(run, 1, (size_t)(text - run), stdout);
}

/* Columns text takes: its characters (UTF-8 continuation bytes not counted). */
static size_t
text_cols(const char *text)
{
	size_t n = 0;

	for (; *text != '\0'; text++)
		n += ((unsigned char)*text & 0xc0) != 0x80;
	return n;
}

/* Order of resource types: where data enters first, tests and exposures last. */
static int
type_rank(const char *t)
{
	static const char *const order[] = { "source", "seed", "snapshot", "model",
	                                     "analysis", "test", "unit_test", "exposure" };

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (strcmp(t, order[i]) == 0)
			return (int)i;
	return (int)(sizeof(order) / sizeof(order[0]));
}

/* ---- the graph ---- */

static void
graph_free(struct graph *g)
{
	free(g->kid_off);
	free(g->kid);
	free(g->par_off);
	free(g->par);
	free(g->queue);
	free(g->seen);
	free(g->depth);
	free(g->shown);
	free(g->failed);
	if (g->down != NULL)
		for (uint32_t i = 0; i < g->nfailed; i++)
			free(g->down[i]);
	free(g->down);
	free(g->ndown);
	free(g->impacted);
	memset(g, 0, sizeof(*g));
}

/*
 * Build the adjacency lists of l (edges out of range or onto themselves
 * are dropped).  0 or -ENOMEM.
 */
static int
graph_build(struct graph *g, const Dbtd__Lineage *l)
{
	uint32_t n, m = 0, *kfill = NULL, *pfill = NULL;

	memset(g, 0, sizeof(*g));
	if (l->n_nodes >= UINT32_MAX || l->n_edges >= UINT32_MAX)
		return -ENOMEM;
	n = (uint32_t)l->n_nodes;
	g->node = l->nodes;
	g->n = n;
	g->kid_off = calloc((size_t)n + 1, sizeof(uint32_t));
	g->par_off = calloc((size_t)n + 1, sizeof(uint32_t));
	g->queue = malloc(((size_t)n + 1) * sizeof(uint32_t));
	g->seen = calloc((size_t)n + 1, sizeof(uint32_t));
	g->depth = malloc(((size_t)n + 1) * sizeof(uint32_t));
	g->shown = calloc((size_t)n + 1, 1);
	if (!g->kid_off || !g->par_off || !g->queue || !g->seen || !g->depth || !g->shown)
		goto nomem;
	for (size_t e = 0; e < l->n_edges; e++) {
		const Dbtd__LineageEdge *ed = l->edges[e];

		if (ed->parent >= n || ed->child >= n || ed->parent == ed->child)
			continue;
		g->kid_off[ed->parent + 1]++;
		g->par_off[ed->child + 1]++;
		m++;
	}
	for (uint32_t i = 0; i < n; i++) {
		g->kid_off[i + 1] += g->kid_off[i];
		g->par_off[i + 1] += g->par_off[i];
	}
	g->nedges = m;
	g->kid = malloc(((size_t)m + 1) * sizeof(uint32_t));
	g->par = malloc(((size_t)m + 1) * sizeof(uint32_t));
	kfill = malloc(((size_t)n + 1) * sizeof(uint32_t));
	pfill = malloc(((size_t)n + 1) * sizeof(uint32_t));
	if (!g->kid || !g->par || !kfill || !pfill)
		goto nomem;
	memcpy(kfill, g->kid_off, (size_t)n * sizeof(uint32_t));
	memcpy(pfill, g->par_off, (size_t)n * sizeof(uint32_t));
	for (size_t e = 0; e < l->n_edges; e++) {
		const Dbtd__LineageEdge *ed = l->edges[e];

		if (ed->parent >= n || ed->child >= n || ed->parent == ed->child)
			continue;
		g->kid[kfill[ed->parent]++] = ed->child;
		g->par[pfill[ed->child]++] = ed->parent;
	}
	free(kfill);
	free(pfill);
	return 0;
nomem:
	free(kfill);
	free(pfill);
	graph_free(g);
	return -ENOMEM;
}

/*
 * Walk breadth-first from the nstart nodes of start (which must not be
 * g->queue), to children (down) or parents, at most max_depth steps.  The
 * nodes reached, start nodes first, each once, are g->queue[0 .. result).
 */
static uint32_t
walk(struct graph *g, const uint32_t *start, uint32_t nstart, bool down,
     uint32_t max_depth)
{
	const uint32_t *off = down ? g->kid_off : g->par_off;
	const uint32_t *adj = down ? g->kid : g->par;
	uint32_t head = 0, tail = 0;

	if (++g->stamp == 0) {
		memset(g->seen, 0, (size_t)g->n * sizeof(uint32_t));
		g->stamp = 1;
	}
	for (uint32_t i = 0; i < nstart; i++) {
		uint32_t v = start[i];

		if (g->seen[v] != g->stamp) {
			g->seen[v] = g->stamp;
			g->depth[v] = 0;
			g->queue[tail++] = v;
		}
	}
	while (head < tail) {
		uint32_t v = g->queue[head++];

		if (g->depth[v] >= max_depth)
			continue;
		for (uint32_t k = off[v]; k < off[v + 1]; k++) {
			uint32_t w = adj[k];

			if (g->seen[w] != g->stamp) {
				g->seen[w] = g->stamp;
				g->depth[w] = g->depth[v] + 1;
				g->queue[tail++] = w;
			}
		}
	}
	return tail;
}

/* ---- selectors (dbt's node selection syntax) ---- */

/* Selector methods understood here; "" is dbt's default. */
static const char *const methods[] = { "fqn", "path", "file", "source",
                                       "resource_type", "package" };

static void
selectors_free(struct selector *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].raw);
		free(s[i].value);
	}
	free(s);
}

/* A depth of N+ / +N: digits[b, e) or DEPTH_ALL when there are none. */
static uint32_t
depth_of(const char *b, const char *e)
{
	uint64_t v = 0;

	if (b == e)
		return DEPTH_ALL;
	for (; b < e; b++) {
		v = v * 10 + (uint64_t)(*b - '0');
		if (v >= DEPTH_ALL)
			return DEPTH_ALL - 1;
	}
	return (uint32_t)v;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_word(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '_' || c == '.';
}

/*
 * Parse one selector as dbt does: [@][N]+ before, method: (letters,
 * digits, _ and .) then the value, +[N] after.  0, or -EINVAL after a
 * usage error, or -ENOMEM.
 */
static int
selector_parse(const struct command *cmd, const char *raw, struct selector *s)
{
	const char *p = raw, *q, *end;

	memset(s, 0, sizeof(*s));
	if (*p == '@') {
		s->at = true;
		p++;
	}
	for (q = p; is_digit(*q); q++)
		;
	if (*q == '+') {
		s->up = true;
		s->up_depth = depth_of(p, q);
		p = q + 1;
	}
	for (q = p; is_word(*q); q++)
		;
	if (*q == ':' && q > p) {
		size_t len = (size_t)(q - p);
		bool known = false;

		for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
			known = known || (strlen(methods[i]) == len && memcmp(methods[i], p, len) == 0);
		if (!known)
			return usage_error(cmd, "--select \"%s\": selector method \"%.*s\" is not "
			                   "known here; use a node name, or one of fqn:, path:, file:, "
			                   "source:, resource_type:, package:", raw, (int)len, p);
		memcpy(s->method, p, len);
		s->method[len] = '\0';
		p = q + 1;
	}
	end = p + strlen(p);
	for (q = end; q > p && is_digit(q[-1]); q--)
		;
	if (q > p && q[-1] == '+') {
		s->down = true;
		s->down_depth = depth_of(q, end);
		end = q - 1;
	}
	if (end == p)
		return usage_error(cmd, "--select \"%s\" names no node; e.g. --select orders+", raw);
	if (s->at && s->up)
		return usage_error(cmd, "--select \"%s\": the @ and + prefixes do not go together",
		                   raw);
	s->raw = strdup(raw);
	s->value = strndup(p, (size_t)(end - p));
	if (s->raw == NULL || s->value == NULL)
		return -ENOMEM;
	s->plain = strpbrk(s->value, ".*?[]") == NULL;
	return 0;
}

/*
 * Split the --select arguments at spaces and commas into selectors.
 * Returns 0 with *out (n entries; caller frees with selectors_free), or
 * -EINVAL after a usage error, or -ENOMEM.
 */
static int
selectors_parse(const struct command *cmd, char *const *args, size_t nargs,
                struct selector **out, size_t *nout)
{
	struct selector *s = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	for (size_t a = 0; rc == 0 && a < nargs; a++) {
		const char *p = args[a];

		while (rc == 0 && *p != '\0') {
			size_t len = strcspn(p, " ,\t\n");
			char *word;

			if (len == 0) {
				p++;
				continue;
			}
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 4;
				struct selector *ns = realloc(s, ncap * sizeof(*ns));

				if (ns == NULL) {
					rc = -ENOMEM;
					break;
				}
				s = ns;
				cap = ncap;
			}
			word = strndup(p, len);
			if (word == NULL) {
				rc = -ENOMEM;
				break;
			}
			rc = selector_parse(cmd, word, &s[n]);
			free(word);
			n++;
			p += len;
		}
		if (rc == 0 && args[a][strspn(args[a], " ,\t\n")] == '\0')
			rc = usage_error(cmd, "--select needs a SPEC, e.g. --select orders+");
	}
	if (rc < 0) {
		selectors_free(s, n);
		return rc;
	}
	*out = s;
	*nout = n;
	return 0;
}

/* A growable string. */
struct buf {
	char *s;
	size_t len, cap;
};

/* Append n bytes of p; 0 or -ENOMEM. */
static int
buf_add(struct buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		char *ns;

		while (b->len + n + 1 > cap)
			cap *= 2;
		ns = realloc(b->s, cap);
		if (ns == NULL)
			return -ENOMEM;
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

/*
 * The node's fully qualified name as dbt builds it, flattened at dots:
 * package, the folders of its file below the resource path (models/,
 * seeds/, ...), its name.  0 or -ENOMEM.
 */
static int
fqn_of(const struct graph *g, uint32_t i, struct buf *b)
{
	const char *path = str(g->node[i]->original_file_path);
	const char *pkg = str(g->node[i]->package);
	const char *dirs = strchr(path, '/'), *last = strrchr(path, '/');
	const char *name = node_name(g, i);
	int rc = 0;

	b->len = 0;
	rc |= buf_add(b, "", 0);
	if (pkg[0] != '\0') {
		rc |= buf_add(b, pkg, strlen(pkg));
		rc |= buf_add(b, ".", 1);
	}
	if (dirs != NULL && dirs != last) {
		for (const char *p = dirs + 1; p < last; p++)
			rc |= buf_add(b, *p == '/' ? "." : p, 1);
		rc |= buf_add(b, ".", 1);
	}
	rc |= buf_add(b, name, strlen(name));
	return rc < 0 ? -ENOMEM : 0;
}

static bool
has_wildcard(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '*' || p[i] == '?' || p[i] == '[' || p[i] == ']')
			return true;
	return false;
}

static size_t
count_char(const char *s, char c)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == c;
	return n;
}

/* dbt's is_selected_node: sel against a flattened fqn whose last part is leaf. */
static bool
fqn_selected(const char *flat, const char *leaf, const char *sel)
{
	const char *f = flat, *s = sel;

	if (strcmp(leaf, sel) == 0)
		return true;
	if (flat[0] == '\0' || count_char(flat, '.') < count_char(sel, '.'))
		return false;
	for (;;) {
		const char *se = strchrnul(s, '.'), *fe = strchrnul(f, '.');

		if (has_wildcard(s, (size_t)(se - s))) {
			if (fnmatch(s, f, 0) == 0)
				return true;
			return strchr(sel, '.') == NULL && fnmatch(sel, leaf, 0) == 0;
		}
		if (se - s != fe - f || memcmp(s, f, (size_t)(se - s)) != 0)
			return false;
		if (*se == '\0')
			return true;
		s = se + 1;
		f = fe + 1;
	}
}

/*
 * fqn_selected for a selector without dots or wildcards, without building
 * the fqn: the name, the package, or the first part of the fqn without
 * its package (the first folder, else the name).  -1 when the node has no
 * package (then build the fqn).
 */
static int
fqn_plain_selected(const struct graph *g, uint32_t i, const char *v)
{
	const char *name = node_name(g, i), *pkg = str(g->node[i]->package);
	const char *path = str(g->node[i]->original_file_path);
	const char *dirs = strchr(path, '/'), *last = strrchr(path, '/'), *first;
	size_t len, vlen = strlen(v);

	if (strcmp(name, v) == 0)
		return 1;
	if (pkg[0] == '\0')
		return -1;
	if (strcmp(pkg, v) == 0)
		return 1;
	if (dirs != NULL && dirs != last) {
		first = dirs + 1;
		len = strcspn(first, "/.");
	} else {
		first = name;
		len = strcspn(first, ".");
	}
	return len == vlen && memcmp(first, v, vlen) == 0;
}

/* dbt's path method: the node's file, or a folder holding it, matches glob v. */
static bool
path_selected(const char *path, const char *v)
{
	char *pat, *dir;
	size_t len;
	bool hit = false;

	while (v[0] == '.' && v[1] == '/')
		v += 2;
	len = strlen(v);
	while (len > 1 && v[len - 1] == '/')
		len--;
	pat = strndup(v, len);
	dir = strdup(path);
	if (pat == NULL || dir == NULL) {
		free(pat);
		free(dir);
		return false;
	}
	if (fnmatch(pat, dir, FNM_PATHNAME) == 0)
		hit = true;
	for (char *slash = strrchr(dir, '/'); !hit && slash != NULL; slash = strrchr(dir, '/')) {
		*slash = '\0';
		hit = fnmatch(pat, dir, FNM_PATHNAME) == 0;
	}
	free(pat);
	free(dir);
	return hit;
}

/* dbt's file method: the file name, or it without its extension, matches v. */
static bool
file_selected(const char *path, const char *v)
{
	const char *base = strrchr(path, '/');
	const char *dot;
	char *stem;
	bool hit;

	base = base ? base + 1 : path;
	if (fnmatch(v, base, 0) == 0)
		return true;
	dot = strrchr(base, '.');
	if (dot == NULL)
		return false;
	stem = strndup(base, (size_t)(dot - base));
	hit = stem != NULL && fnmatch(v, stem, 0) == 0;
	free(stem);
	return hit;
}

/* dbt's source method: [package.]source_name[.table] with wildcards. */
static bool
source_selected(const struct graph *g, uint32_t i, const char *v)
{
	const char *id = node_id(g, i), *pkg = str(g->node[i]->package);
	const char *rest, *dot;
	char *src, *parts[3] = { NULL, NULL, NULL };
	char *copy = strdup(v), *save = NULL;
	size_t np = 0;
	bool hit = false;

	if (copy == NULL)
		return false;
	for (char *t = strtok_r(copy, ".", &save); t != NULL && np < 4; t = strtok_r(NULL, ".", &save))
		if (np++ < 3)
			parts[np - 1] = t;
	/* the source name is in the unique_id: source.PACKAGE.SOURCE.TABLE */
	rest = id;
	if (strncmp(rest, "source.", 7) == 0 && strncmp(rest + 7, pkg, strlen(pkg)) == 0 &&
	    rest[7 + strlen(pkg)] == '.')
		rest += 8 + strlen(pkg);
	dot = strchr(rest, '.');
	src = dot ? strndup(rest, (size_t)(dot - rest)) : NULL;
	if (src != NULL && np >= 1 && np <= 3) {
		const char *want_pkg = np == 3 ? parts[0] : "*";
		const char *want_src = parts[np == 3 ? 1 : 0];
		const char *want_tab = np == 1 ? "*" : parts[np - 1];

		hit = fnmatch(want_pkg, pkg, 0) == 0 && fnmatch(want_src, src, 0) == 0 &&
		      fnmatch(want_tab, node_name(g, i), 0) == 0;
	}
	free(src);
	free(copy);
	return hit;
}

/* Ends in one of dbt's file extensions (.sql, .py, .csv)? */
static bool
looks_like_file(const char *v)
{
	size_t n = strlen(v);

	return (n > 4 && strcasecmp(v + n - 4, ".sql") == 0) ||
	       (n > 3 && strcasecmp(v + n - 3, ".py") == 0) ||
	       (n > 4 && strcasecmp(v + n - 4, ".csv") == 0);
}

/*
 * Does node i match the method and value of s (graph operators aside)?
 * A bare value is dbt's fqn (name, package, folders, wildcards), a path
 * when it holds a /, a file name when it ends in .sql, .py or .csv; a
 * node's unique_id also names it.  scratch holds the fqn.
 */
static bool
selector_matches(const struct graph *g, uint32_t i, const struct selector *s,
                 struct buf *scratch)
{
	const char *m = s->method, *v = s->value;
	const char *type = node_type(g, i), *path = str(g->node[i]->original_file_path);

	if (m[0] == '\0') {
		if (strcmp(node_id(g, i), v) == 0)
			return true;
		m = strchr(v, '/') ? "path" : looks_like_file(v) ? "file" : "fqn";
	}
	if (strcmp(m, "fqn") == 0) {
		const char *flat, *dot;

		if (strcmp(type, "source") == 0)
			return false;
		if (s->plain) {
			int hit = fqn_plain_selected(g, i, v);

			if (hit >= 0)
				return hit;
		}
		if (fqn_of(g, i, scratch) < 0)
			return false;
		flat = scratch->s;
		if (fqn_selected(flat, node_name(g, i), v))
			return true;
		/* and without the package, to match across packages */
		dot = strchr(flat, '.');
		return dot != NULL && fqn_selected(dot + 1, node_name(g, i), v);
	}
	if (strcmp(m, "path") == 0)
		return path[0] != '\0' && path_selected(path, v);
	if (strcmp(m, "file") == 0)
		return path[0] != '\0' && file_selected(path, v);
	if (strcmp(m, "source") == 0)
		return strcmp(type, "source") == 0 && source_selected(g, i, v);
	if (strcmp(m, "resource_type") == 0)
		return strcmp(type, v) == 0;
	if (strcmp(m, "package") == 0)
		return fnmatch(v, str(g->node[i]->package), 0) == 0;
	return false;
}

/*
 * Mark what the selectors choose in g->shown (all nodes without any), as
 * dbt selects: each selector's nodes with their ancestors / descendants
 * as its operators say, the union of all selectors; with tests, also the
 * tests of a selected node (dbt's eager indirect selection).  Tests are
 * shown only with tests or when a selector names them.
 * Returns 0, -ENOENT after saying which selector matches nothing, or
 * -ENOMEM.
 */
static int
select_nodes(struct graph *g, const struct selector *sel, size_t nsel, bool tests,
             uint64_t run)
{
	uint8_t *chosen = NULL, *named = NULL;
	uint32_t *start = NULL, nstart;
	struct buf scratch = { 0 };
	int rc = 0;

	if (g->n == 0)
		return 0;
	chosen = calloc(g->n, 1);
	named = calloc(g->n, 1);
	start = malloc((size_t)g->n * sizeof(uint32_t));
	if (chosen == NULL || named == NULL || start == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (nsel == 0)
		memset(chosen, 1, g->n);
	for (size_t k = 0; k < nsel; k++) {
		const struct selector *s = &sel[k];
		uint32_t got;

		nstart = 0;
		for (uint32_t i = 0; i < g->n; i++)
			if (selector_matches(g, i, s, &scratch)) {
				start[nstart++] = i;
				named[i] = 1;
				chosen[i] = 1;
			}
		if (nstart == 0) {
			fprintf(stderr, "dbtctl: no node matches \"%s\" in the lineage of run %"
			        PRIu64, s->raw, run);
			/* as in dbt, a bare name is not a source's: say how to name one */
			for (uint32_t i = 0; s->method[0] == '\0' && i < g->n; i++)
				if (strcmp(node_type(g, i), "source") == 0 &&
				    strcmp(node_name(g, i), s->value) == 0) {
					const char *u = node_id(g, i), *pkg = str(g->node[i]->package);
					size_t skip = strlen("source.") + strlen(pkg) + 1;

					if (strlen(u) > skip && strncmp(u, "source.", 7) == 0)
						fprintf(stderr, "; a source is selected as source:%s",
						        u + skip);
					break;
				}
			fputc('\n', stderr);
			rc = -ENOENT;
			goto out;
		}
		if (s->at) {
			/* @: the descendants, then every ancestor of those */
			got = walk(g, start, nstart, true, DEPTH_ALL);
			memcpy(start, g->queue, (size_t)got * sizeof(uint32_t));
			got = walk(g, start, got, false, DEPTH_ALL);
			for (uint32_t j = 0; j < got; j++)
				chosen[g->queue[j]] = 1;
			continue;
		}
		if (s->up) {
			got = walk(g, start, nstart, false, s->up_depth);
			for (uint32_t j = 0; j < got; j++)
				chosen[g->queue[j]] = 1;
		}
		if (s->down) {
			got = walk(g, start, nstart, true, s->down_depth);
			for (uint32_t j = 0; j < got; j++)
				chosen[g->queue[j]] = 1;
		}
	}
	if (nsel > 0 && tests) {
		for (uint32_t t = 0; t < g->n; t++) {
			if (chosen[t] || !is_test(g, t))
				continue;
			for (uint32_t k = g->par_off[t]; k < g->par_off[t + 1]; k++)
				if (chosen[g->par[k]] && !is_test(g, g->par[k])) {
					chosen[t] = 1;
					break;
				}
		}
	}
	g->nshown = 0;
	for (uint32_t i = 0; i < g->n; i++) {
		bool show = chosen[i] && (tests || named[i] || !is_test(g, i));

		g->shown[i] = show;
		g->nshown += show;
		if (chosen[i] && !show)
			g->hidden_tests++;
	}
out:
	free(scratch.s);
	free(chosen);
	free(named);
	free(start);
	return rc;
}

/* ---- impact of failures ---- */

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * For each shown failed node (error, fail), what is downstream of it:
 * its descendants; for a failed test, the non-test children of the nodes
 * it tests and their descendants (what dbt build skips).  Tests are left
 * out of the downstream unless tests.  0 or -ENOMEM.
 */
static int
compute_impact(struct graph *g, bool tests)
{
	uint32_t *start = NULL;

	g->impacted = calloc((size_t)g->n + 1, 1);
	g->failed = malloc(((size_t)g->n + 1) * sizeof(uint32_t));
	/* a failed test starts from its parents' children: at most one per edge */
	start = malloc(((size_t)(g->n > g->nedges ? g->n : g->nedges) + 1) * sizeof(uint32_t));
	if (g->impacted == NULL || g->failed == NULL || start == NULL)
		goto nomem;
	for (uint32_t i = 0; i < g->n; i++) {
		if (status_class(node_status(g, i)) != ST_FAILED)
			continue;
		if (g->shown[i])
			g->failed[g->nfailed++] = i;
		else if (is_test(g, i))
			g->hidden_failed++;
	}
	g->down = calloc((size_t)g->nfailed + 1, sizeof(*g->down));
	g->ndown = calloc((size_t)g->nfailed + 1, sizeof(*g->ndown));
	if (g->down == NULL || g->ndown == NULL)
		goto nomem;
	for (uint32_t f = 0; f < g->nfailed; f++) {
		uint32_t i = g->failed[f], nstart = 0, got, nd = 0;

		if (is_test(g, i)) {
			for (uint32_t k = g->par_off[i]; k < g->par_off[i + 1]; k++) {
				uint32_t p = g->par[k];

				for (uint32_t j = g->kid_off[p]; j < g->kid_off[p + 1]; j++)
					if (!is_test(g, g->kid[j]))
						start[nstart++] = g->kid[j];
			}
		} else {
			start[nstart++] = i;
		}
		got = walk(g, start, nstart, true, DEPTH_ALL);
		g->down[f] = malloc(((size_t)got + 1) * sizeof(uint32_t));
		if (g->down[f] == NULL)
			goto nomem;
		for (uint32_t j = 0; j < got; j++) {
			uint32_t v = g->queue[j];

			if (v == i || (!tests && is_test(g, v)))
				continue;
			g->down[f][nd++] = v;
			g->impacted[v] = 1;
		}
		qsort(g->down[f], nd, sizeof(uint32_t), cmp_u32);
		g->ndown[f] = nd;
	}
	free(start);
	return 0;
nomem:
	free(start);
	return -ENOMEM;
}

/* ---- JSON ---- */

/*
 * The JSON is written as it goes rather than built with jansson: a graph of
 * thousands of nodes would be tens of thousands of json_t values, most of
 * the time `--format json` takes.
 */

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1fu;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0fu;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07u;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* A JSON string: quotes, backslashes and controls escaped, bad UTF-8 as U+FFFD. */
static void
put_json_str(const char *str_)
{
	const unsigned char *s = (const unsigned char *)str_, *run = s;

	putchar('"');
	while (*s != '\0') {
		size_t n;

		if (*s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\') {
			s++;
			continue;
		}
		if (*s >= 0x80 && (n = utf8_len(s)) > 0) {
			s += n;
			continue;
		}
		fwrite(run, 1, (size_t)(s - run), stdout);
		switch (*s) {
		case '"':  fputs("\\\"", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		case '\b': fputs("\\b", stdout); break;
		case '\f': fputs("\\f", stdout); break;
		default:
			if (*s < 0x20)
				printf("\\u%04x", *s);
			else
				fputs("\\ufffd", stdout);
			break;
		}
		run = ++s;
	}
	fwrite(run, 1, (size_t)(s - run), stdout);
	putchar('"');
}

/*
 * {"nodes": [{"unique_id", "resource_type", "name", "status"}], "edges":
 * [[parent, child]], "impact": {failed: [downstream]}} (impact only with
 * --impact); a node or an edge per line.
 */
static void
print_json_graph(const struct graph *g, bool impact)
{
	bool first = true;

	fputs("{\n  \"nodes\": [", stdout);
	for (uint32_t i = 0; i < g->n; i++) {
		const char *status = node_status(g, i);

		if (!g->shown[i])
			continue;
		fputs(first ? "\n    {\"unique_id\": " : ",\n    {\"unique_id\": ", stdout);
		put_json_str(node_id(g, i));
		fputs(", \"resource_type\": ", stdout);
		put_json_str(node_type(g, i));
		fputs(", \"name\": ", stdout);
		put_json_str(str(g->node[i]->name));
		fputs(", \"status\": ", stdout);
		if (status[0] != '\0')
			put_json_str(status);
		else
			fputs("null", stdout);
		putchar('}');
		first = false;
	}
	fputs(first ? "],\n  \"edges\": [" : "\n  ],\n  \"edges\": [", stdout);
	first = true;
	for (uint32_t i = 0; i < g->n; i++) {
		if (!g->shown[i])
			continue;
		for (uint32_t k = g->kid_off[i]; k < g->kid_off[i + 1]; k++) {
			if (!g->shown[g->kid[k]])
				continue;
			fputs(first ? "\n    [" : ",\n    [", stdout);
			put_json_str(node_id(g, i));
			fputs(", ", stdout);
			put_json_str(node_id(g, g->kid[k]));
			putchar(']');
			first = false;
		}
	}
	fputs(first ? "]" : "\n  ]", stdout);
	if (impact) {
		fputs(",\n  \"impact\": {", stdout);
		for (uint32_t f = 0; f < g->nfailed; f++) {
			fputs(f == 0 ? "\n    " : ",\n    ", stdout);
			put_json_str(node_id(g, g->failed[f]));
			fputs(": [", stdout);
			for (uint32_t j = 0; j < g->ndown[f]; j++) {
				if (j > 0)
					fputs(", ", stdout);
				put_json_str(node_id(g, g->down[f][j]));
			}
			putchar(']');
		}
		fputs(g->nfailed ? "\n  }" : "}", stdout);
	}
	fputs("\n}\n", stdout);
}

/* ---- text by layer ---- */

/* The graph being sorted by sort_layer's comparison (qsort has no context). */
static const struct graph *sorting;

/* Within a layer: sources and seeds first, then by name, then unique_id. */
static int
cmp_in_layer(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int d = type_rank(node_type(sorting, x)) - type_rank(node_type(sorting, y));

	if (d == 0)
		d = strcmp(node_name(sorting, x), node_name(sorting, y));
	if (d == 0)
		d = strcmp(node_id(sorting, x), node_id(sorting, y));
	return d;
}

/*
 * The layer of each shown node: 1 for a node without shown parents, else
 * 1 + the highest layer of its shown parents (the longest path from a
 * root).  Nodes on a cycle, which dbt does not allow, go after the last
 * layer.  Returns the number of layers, or 0 when out of memory.
 */
static uint32_t
layers_of(const struct graph *g, uint32_t *layer)
{
	uint32_t *indeg = calloc((size_t)g->n + 1, sizeof(uint32_t));
	uint32_t *q = malloc(((size_t)g->n + 1) * sizeof(uint32_t));
	uint32_t head = 0, tail = 0, top = 0;

	if (indeg == NULL || q == NULL) {
		free(indeg);
		free(q);
		return 0;
	}
	for (uint32_t i = 0; i < g->n; i++) {
		layer[i] = 0;
		if (!g->shown[i])
			continue;
		for (uint32_t k = g->kid_off[i]; k < g->kid_off[i + 1]; k++)
			indeg[g->kid[k]] += g->shown[g->kid[k]];
	}
	for (uint32_t i = 0; i < g->n; i++)
		if (g->shown[i] && indeg[i] == 0) {
			layer[i] = 1;
			q[tail++] = i;
		}
	while (head < tail) {
		uint32_t v = q[head++];

		if (layer[v] > top)
			top = layer[v];
		for (uint32_t k = g->kid_off[v]; k < g->kid_off[v + 1]; k++) {
			uint32_t w = g->kid[k];

			if (!g->shown[w])
				continue;
			if (layer[w] < layer[v] + 1)
				layer[w] = layer[v] + 1;
			if (--indeg[w] == 0)
				q[tail++] = w;
		}
	}
	if (tail < g->nshown) {
		top++;
		for (uint32_t i = 0; i < g->n; i++)
			if (g->shown[i] && indeg[i] != 0)
				layer[i] = top;
	}
	free(indeg);
	free(q);
	return top;
}

/* "0.12s", "12.3s", "2m05s" into buf. */
static void
fmt_seconds(double s, char *buf, size_t len)
{
	if (s < 10)
		snprintf(buf, len, "%.2fs", s);
	else if (s < 60)
		snprintf(buf, len, "%.1fs", s);
	else
		snprintf(buf, len, "%um%02us", (unsigned)(s / 60), (unsigned)s % 60);
}

/* "(table, error, 0.12s)" of a node into buf ("" when there is nothing). */
static void
node_details(const struct graph *g, uint32_t i, char *buf, size_t len)
{
	const Dbtd__LineageNode *nd = g->node[i];
	const char *mat = str(nd->materialization), *status = node_status(g, i);
	enum status_class c = status_class(status);
	char t[32] = "";
	size_t off = 0;

	buf[0] = '\0';
	if (mat[0] != '\0' && strcmp(mat, node_type(g, i)) != 0)
		off += (size_t)snprintf(buf + off, len - off, "%s", mat);
	if (c != ST_OK && c != ST_NOT_RUN && off < len)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", status);
	if (c != ST_NOT_RUN && nd->execution_time > 0 && off < len) {
		fmt_seconds(nd->execution_time, t, sizeof(t));
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", t);
	}
	if (off > 0 && off + 2 < len) {
		memmove(buf + 1, buf, off + 1);
		buf[0] = '(';
		buf[off + 1] = ')';
		buf[off + 2] = '\0';
	}
}

static void
pad(size_t have, size_t want)
{
	for (; have < want; have++)
		putchar(' ');
}

/* The Impact section of the text view. */
static void
print_impact_text(const struct out_style *st, const struct graph *g)
{
	const char *arrow = st->utf8 ? "\u2192" : "->";

	out_put_sgr(st, SGR_BOLD, "Impact");
	putchar('\n');
	if (g->nfailed == 0)
		printf("  %s\n", g->hidden_failed ? "no node shown failed" : "no node failed");
	for (uint32_t f = 0; f < g->nfailed; f++) {
		uint32_t i = g->failed[f];
		const char *name = node_name(g, i);
		size_t indent = 2 + (st->utf8 ? 1 : 3) + 1 + text_cols(name) + 1 + text_cols(arrow) + 1;

		fputs("  ", stdout);
		out_put_sgr(st, SGR_RED, status_mark(st, ST_FAILED));
		putchar(' ');
		put_clean(name);
		printf(" %s ", arrow);
		if (g->ndown[f] == 0)
			printf("nothing downstream\n");
		for (uint32_t j = 0; j < g->ndown[f] && j < TEXT_IMPACT_MAX; j++) {
			uint32_t v = g->down[f][j];

			if (j > 0)
				pad(0, indent);
			put_clean(node_name(g, v));
			fputs(" (", stdout);
			put_clean(status_words(node_status(g, v)));
			fputs(")\n", stdout);
		}
		if (g->ndown[f] > TEXT_IMPACT_MAX) {
			pad(0, indent);
			printf("and %" PRIu32 " more (--format json lists them all)\n",
			       g->ndown[f] - TEXT_IMPACT_MAX);
		}
	}
	if (g->hidden_failed)
		printf("  (%" PRIu32 " failed test%s not shown; --tests shows %s and what %s "
		       "held back)\n", g->hidden_failed, g->hidden_failed == 1 ? "" : "s",
		       g->hidden_failed == 1 ? "it" : "them", g->hidden_failed == 1 ? "it" : "they");
}

/*
 * Nodes by layer, each "  MARK TYPE  NAME  (details)  <- parents", then
 * the Impact section.  0 or -ENOMEM.
 */
static int
print_text(const struct out_style *st, const struct graph *g, uint64_t run,
           uint32_t step, bool impact)
{
	uint32_t *layer = malloc(((size_t)g->n + 1) * sizeof(uint32_t));
	uint32_t *order = malloc(((size_t)g->n + 1) * sizeof(uint32_t));
	uint32_t *start = NULL, nlayers, nedges = 0;
	size_t type_w = 0, name_w = 0, det_w = 0, mark_w = st->utf8 ? 1 : 4;
	char det[160];

	if (layer == NULL || order == NULL || (nlayers = layers_of(g, layer)) == 0) {
		free(layer);
		free(order);
		return -ENOMEM;
	}
	start = calloc((size_t)nlayers + 2, sizeof(uint32_t));
	if (start == NULL) {
		free(layer);
		free(order);
		return -ENOMEM;
	}
	/* bucket the shown nodes by layer, then order each layer */
	for (uint32_t i = 0; i < g->n; i++) {
		if (!g->shown[i])
			continue;
		start[layer[i] + 1]++;
		for (uint32_t k = g->kid_off[i]; k < g->kid_off[i + 1]; k++)
			nedges += g->shown[g->kid[k]];
		if (text_cols(node_type(g, i)) > type_w)
			type_w = text_cols(node_type(g, i));
		if (text_cols(node_name(g, i)) > name_w)
			name_w = text_cols(node_name(g, i));
		node_details(g, i, det, sizeof(det));
		if (text_cols(det) > det_w)
			det_w = text_cols(det);
	}
	if (name_w > TEXT_NAME_MAX)
		name_w = TEXT_NAME_MAX;
	for (uint32_t l = 1; l <= nlayers + 1; l++)
		start[l] += start[l - 1];
	for (uint32_t i = 0; i < g->n; i++)
		if (g->shown[i])
			order[start[layer[i]]++] = i;
	for (uint32_t l = nlayers + 1; l > 0; l--)
		start[l] = start[l - 1];
	start[0] = 0;
	sorting = g;
	for (uint32_t l = 1; l <= nlayers; l++)
		qsort(order + start[l], start[l + 1] - start[l], sizeof(uint32_t), cmp_in_layer);

	printf("Lineage of run %" PRIu64, run);
	if (step > 0)
		printf(" (manifest of step %" PRIu32 ")", step);
	printf(": %" PRIu32 " node%s, %" PRIu32 " edge%s, %" PRIu32 " layer%s", g->nshown,
	       g->nshown == 1 ? "" : "s", nedges, nedges == 1 ? "" : "s", nlayers,
	       nlayers == 1 ? "" : "s");
	if (g->hidden_tests)
		printf("; %" PRIu32 " test%s hidden (--tests shows them)", g->hidden_tests,
		       g->hidden_tests == 1 ? "" : "s");
	putchar('\n');

	for (uint32_t l = 1; l <= nlayers; l++) {
		char head[32];

		snprintf(head, sizeof(head), "Layer %" PRIu32, l);
		putchar('\n');
		out_put_sgr(st, SGR_BOLD, head);
		putchar('\n');
		for (uint32_t k = start[l]; k < start[l + 1]; k++) {
			uint32_t i = order[k], np = 0;
			enum status_class c = status_class(node_status(g, i));
			const char *mark = status_mark(st, c);
			size_t nlen = text_cols(node_name(g, i));

			fputs("  ", stdout);
			out_put_sgr(st, status_sgr(c), mark);
			pad(st->utf8 ? 1 : strlen(mark), mark_w);
			putchar(' ');
			put_clean(node_type(g, i));
			pad(text_cols(node_type(g, i)), type_w);
			fputs("  ", stdout);
			put_clean(node_name(g, i));
			node_details(g, i, det, sizeof(det));
			for (uint32_t p = g->par_off[i]; p < g->par_off[i + 1]; p++)
				np += g->shown[g->par[p]];
			if (det[0] == '\0' && np == 0) {
				putchar('\n');
				continue;
			}
			/* a name wider than the column pushes the rest of its line only */
			pad(nlen, name_w);
			fputs("  ", stdout);
			put_clean(det);
			if (np == 0) {
				putchar('\n');
				continue;
			}
			if (nlen <= name_w)
				pad(text_cols(det), det_w);
			printf("%s<- ", det[0] != '\0' || nlen <= name_w ? "  " : "");
			np = 0;
			for (uint32_t p = g->par_off[i]; p < g->par_off[i + 1]; p++) {
				uint32_t v = g->par[p];

				if (!g->shown[v])
					continue;
				if (np < TEXT_PARENTS) {
					fputs(np ? ", " : "", stdout);
					put_clean(node_name(g, v));
				}
				np++;
			}
			if (np > TEXT_PARENTS)
				printf(" +%" PRIu32 " more", np - TEXT_PARENTS);
			putchar('\n');
		}
	}
	if (impact) {
		putchar('\n');
		print_impact_text(st, g);
	}
	free(layer);
	free(order);
	free(start);
	return 0;
}

/* ---- Graphviz dot ---- */

/* A dot string: "..." with quotes and backslashes escaped, controls as spaces. */
static void
put_dot_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar((unsigned char)*s < 0x20 ? ' ' : *s);
	}
	putchar('"');
}

/* Text for a comment line: control characters as '?'. */
static void
put_comment_text(const char *s)
{
	for (; *s != '\0'; s++)
		putchar((unsigned char)*s < 0x20 ? '?' : *s);
}

/* The resource types of the shown nodes, in type_rank order. */
static size_t
shown_types(const struct graph *g, const char **types, size_t max)
{
	size_t n = 0;

	for (uint32_t i = 0; i < g->n; i++) {
		const char *t = node_type(g, i);
		size_t k;

		if (!g->shown[i])
			continue;
		for (k = 0; k < n && strcmp(types[k], t) != 0; k++)
			;
		if (k == n && n < max)
			types[n++] = t;
	}
	/* insertion sort: a handful of types */
	for (size_t a = 1; a < n; a++)
		for (size_t b = a; b > 0 && (type_rank(types[b]) < type_rank(types[b - 1]) ||
		                             (type_rank(types[b]) == type_rank(types[b - 1]) &&
		                              strcmp(types[b], types[b - 1]) < 0)); b--) {
			const char *t = types[b];

			types[b] = types[b - 1];
			types[b - 1] = t;
		}
	return n;
}

/* Comment lines listing the impact: "PREFIX impact: failed (error) -> node (skipped)". */
static void
print_impact_comments(const struct graph *g, const char *prefix)
{
	for (uint32_t f = 0; f < g->nfailed; f++) {
		uint32_t i = g->failed[f];

		if (g->ndown[f] == 0) {
			printf("%s impact: ", prefix);
			put_comment_text(node_id(g, i));
			printf(" (%s) -> nothing downstream\n", node_status(g, i));
		}
		for (uint32_t j = 0; j < g->ndown[f]; j++) {
			uint32_t v = g->down[f][j];

			printf("%s impact: ", prefix);
			put_comment_text(node_id(g, i));
			printf(" (%s) -> ", node_status(g, i));
			put_comment_text(node_id(g, v));
			printf(" (%s)\n", status_words(node_status(g, v)));
		}
	}
}

#define RED_STROKE "#c62828"

/* `digraph lineage { ... }`: clusters by resource type, fill by status. */
static void
print_dot(const struct graph *g, uint64_t run, uint32_t step, bool impact)
{
	const char *types[64];
	size_t ntypes = shown_types(g, types, sizeof(types) / sizeof(types[0]));

	printf("digraph lineage {\n"
	       "  rankdir=LR;\n"
	       "  graph [fontname=\"Helvetica\"];\n"
	       "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", "
	       "fontname=\"Helvetica\"];\n"
	       "  edge [color=\"#607d8b\"];\n");
	printf("  // lineage of run %" PRIu64, run);
	if (step > 0)
		printf(", manifest of step %" PRIu32, step);
	printf("; fill: green success/pass, red error/fail, orange warn, grey skipped, "
	       "white did not run%s\n",
	       impact ? "; dashed red border: downstream of a failure" : "");
	for (size_t t = 0; t < ntypes; t++) {
		printf("  subgraph cluster_");
		for (const char *p = types[t]; *p != '\0'; p++)
			putchar(is_word(*p) && *p != '.' ? *p : '_');
		printf(" {\n    label=");
		put_dot_str(types[t]);
		printf(";\n    style=\"rounded\";\n    color=\"#b0bec5\";\n");
		for (uint32_t i = 0; i < g->n; i++) {
			enum status_class c;

			if (!g->shown[i] || strcmp(node_type(g, i), types[t]) != 0)
				continue;
			c = status_class(node_status(g, i));
			printf("    ");
			put_dot_str(node_id(g, i));
			printf(" [label=");
			put_dot_str(node_name(g, i));
			printf(", fillcolor=\"%s\", tooltip=", status_fill(c));
			put_dot_str(node_id(g, i));
			if (impact && g->impacted[i])
				printf(", style=\"rounded,filled,dashed\", color=\"" RED_STROKE
				       "\", penwidth=2");
			else if (c == ST_FAILED)
				printf(", color=\"" RED_STROKE "\", penwidth=2");
			printf("];\n");
		}
		printf("  }\n");
	}
	for (uint32_t i = 0; i < g->n; i++) {
		if (!g->shown[i])
			continue;
		for (uint32_t k = g->kid_off[i]; k < g->kid_off[i + 1]; k++) {
			uint32_t c = g->kid[k];

			if (!g->shown[c])
				continue;
			printf("  ");
			put_dot_str(node_id(g, i));
			printf(" -> ");
			put_dot_str(node_id(g, c));
			if (impact && g->impacted[c] &&
			    (g->impacted[i] || status_class(node_status(g, i)) == ST_FAILED))
				printf(" [color=\"" RED_STROKE "\", style=dashed]");
			printf(";\n");
		}
	}
	if (impact)
		print_impact_comments(g, "  //");
	printf("}\n");
}

/* ---- Mermaid ---- */

/* Sorting mermaid ids: the ids being compared (qsort has no context). */
static char **sorting_ids;

static int
cmp_ids(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	int d = strcmp(sorting_ids[x], sorting_ids[y]);

	return d != 0 ? d : (x < y ? -1 : x > y);
}

/*
 * Mermaid ids of the shown nodes: unique_id with every other character
 * than [A-Za-z0-9_] as _, made unique with _N when two come out the same.
 * ids[i] is NULL for a node not shown.  0 or -ENOMEM.
 */
static int
mermaid_ids(const struct graph *g, char **ids)
{
	uint32_t *idx = malloc(((size_t)g->n + 1) * sizeof(uint32_t)), m = 0;

	if (idx == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < g->n; i++) {
		const char *u = node_id(g, i);
		size_t len = strlen(u);
		char *s;

		ids[i] = NULL;
		if (!g->shown[i])
			continue;
		s = malloc(len + 3);
		if (s == NULL) {
			free(idx);
			return -ENOMEM;
		}
		if (len == 0 || is_digit(u[0]))
			memcpy(s, "n_", 3);
		else
			s[0] = '\0';
		for (size_t k = 0, o = strlen(s); k <= len; k++, o++)
			s[o] = k == len ? '\0' : (is_word(u[k]) && u[k] != '.') ? u[k] : '_';
		ids[i] = s;
		idx[m++] = i;
	}
	sorting_ids = ids;
	qsort(idx, m, sizeof(uint32_t), cmp_ids);
	/* equal ids are next to each other: the first keeps its id */
	for (uint32_t k = 1, first = 0; k < m; k++) {
		char *s = NULL;

		if (strcmp(ids[idx[k]], ids[idx[first]]) != 0) {
			first = k;
			continue;
		}
		if (asprintf(&s, "%s_%" PRIu32, ids[idx[k]], idx[k]) < 0) {
			free(idx);
			return -ENOMEM;
		}
		free(ids[idx[k]]);
		ids[idx[k]] = s;
	}
	free(idx);
	return 0;
}

/* A Mermaid label: "..." with quotes and angle brackets as entities. */
static void
put_mermaid_label(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '"': fputs("#quot;", stdout); break;
		case '<': fputs("#lt;", stdout); break;
		case '>': fputs("#gt;", stdout); break;
		default:  putchar((unsigned char)*s < 0x20 ? ' ' : *s); break;
		}
	}
	putchar('"');
}

/* `flowchart LR`: nodes, edges, a classDef and a class line per status. */
static int
print_mermaid(const struct graph *g, uint64_t run, uint32_t step, bool impact)
{
	char **ids = calloc((size_t)g->n + 1, sizeof(char *));
	int rc;

	if (ids == NULL)
		return -ENOMEM;
	rc = mermaid_ids(g, ids);
	if (rc < 0)
		goto out;
	printf("flowchart LR\n");
	printf("  %%%% lineage of run %" PRIu64, run);
	if (step > 0)
		printf(", manifest of step %" PRIu32, step);
	printf("\n");
	for (uint32_t i = 0; i < g->n; i++) {
		if (!g->shown[i])
			continue;
		printf("  %s[", ids[i]);
		put_mermaid_label(node_name(g, i));
		printf("]\n");
	}
	for (uint32_t i = 0; i < g->n; i++) {
		if (!g->shown[i])
			continue;
		for (uint32_t k = g->kid_off[i]; k < g->kid_off[i + 1]; k++)
			if (g->shown[g->kid[k]])
				printf("  %s --> %s\n", ids[i], ids[g->kid[k]]);
	}
	for (int c = ST_OK; c <= ST_OTHER; c++) {
		bool first = true;

		for (uint32_t i = 0; i < g->n; i++) {
			if (!g->shown[i] || (int)status_class(node_status(g, i)) != c)
				continue;
			if (first)
				printf("  classDef %s fill:%s,stroke:%s,color:#000000\n  class ",
				       status_class_name((enum status_class)c),
				       status_fill((enum status_class)c),
				       c == ST_FAILED ? RED_STROKE : "#546e7a");
			printf("%s%s", first ? "" : ",", ids[i]);
			first = false;
		}
		if (!first)
			printf(" %s\n", status_class_name((enum status_class)c));
	}
	if (impact) {
		bool first = true;

		for (uint32_t i = 0; i < g->n; i++) {
			if (!g->shown[i] || !g->impacted[i])
				continue;
			if (first)
				printf("  classDef impacted stroke:" RED_STROKE ",stroke-width:3px,"
				       "stroke-dasharray:5 5\n  class ");
			printf("%s%s", first ? "" : ",", ids[i]);
			first = false;
		}
		if (!first)
			printf(" impacted\n");
		print_impact_comments(g, "  %%");
	}
out:
	for (uint32_t i = 0; i < g->n; i++)
		free(ids[i]);
	free(ids);
	return rc;
}

/* ---- the command ---- */

int
cmd_run_lineage(struct dbtctl_opts *o, const struct command *cmd, int argc,
                char **argv)
{
	static const struct option lo[] = {
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "select", required_argument, NULL, OPT_SELECT },
		{ "impact", no_argument, NULL, OPT_IMPACT },
		{ "tests", no_argument, NULL, OPT_TESTS },
		DBTCTL_COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	Dbtd__Response *r = NULL;
	const Dbtd__Lineage *l;
	struct selector *sel = NULL;
	struct graph g = { 0 };
	struct conn c;
	char **sel_args = NULL;
	size_t nsel_args = 0, nsel = 0;
	const char *format_arg = NULL;
	enum format fmt = FMT_TEXT;
	bool impact = false, tests = false;
	int ch, rc;

	sel_args = calloc((size_t)argc + 1, sizeof(char *));
	if (sel_args == NULL) {
		fprintf(stderr, "dbtctl: out of memory\n");
		return DBTCTL_EXIT_FAILED;
	}
	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_FORMAT: format_arg = optarg; break;
		case OPT_SELECT: sel_args[nsel_args++] = optarg; break;
		case OPT_IMPACT: impact = true; break;
		case OPT_TESTS:  tests = true; break;
		default:
			free(sel_args);
			return stop_status(ch);
		}
	}
	rc = DBTCTL_EXIT_USAGE;
	if (run_id_arg(cmd, argc, argv, &ref.id) < 0)
		goto out;
	if (format_arg != NULL) {
		if (strcmp(format_arg, "text") == 0)
			fmt = FMT_TEXT;
		else if (strcmp(format_arg, "dot") == 0)
			fmt = FMT_DOT;
		else if (strcmp(format_arg, "mermaid") == 0)
			fmt = FMT_MERMAID;
		else if (strcmp(format_arg, "json") == 0)
			fmt = FMT_JSON;
		else {
			usage_error(cmd, "--format \"%s\" is not text, dot, mermaid or json",
			            format_arg);
			goto out;
		}
	}
	if (o->json) {
		if (format_arg != NULL && fmt != FMT_JSON) {
			usage_error(cmd, "--json prints JSON; it does not go with --format %s",
			            format_arg);
			goto out;
		}
		fmt = FMT_JSON;
	}
	if (nsel_args > 0) {
		int prc = selectors_parse(cmd, sel_args, nsel_args, &sel, &nsel);

		if (prc == -ENOMEM) {
			fprintf(stderr, "dbtctl: out of memory\n");
			rc = DBTCTL_EXIT_FAILED;
		}
		if (prc < 0)
			goto out;
	}

	ref.stream = true; /* however large, in frames dbtd bounds; put together here */
	req.body_case = DBTD__REQUEST__BODY_LINEAGE;
	req.lineage = &ref;
	rc = request_paged(o, &c, &req, DBTD__RESPONSE__BODY_LINEAGE, "see dbtctl run list", &r);
	if (rc != 0)
		goto out;
	l = r->lineage;
	if ((l->error != NULL && l->error[0] != '\0') || l->n_nodes == 0) {
		fprintf(stderr, "dbtctl: no lineage for run %" PRIu64 ": %s\n", ref.id,
		        l->error != NULL && l->error[0] != '\0' ? l->error
		        : "its manifest has no models, seeds, snapshots, sources or tests");
		rc = DBTCTL_EXIT_FAILED;
		goto done;
	}
	rc = DBTCTL_EXIT_FAILED;
	if (graph_build(&g, l) < 0)
		goto nomem;
	switch (select_nodes(&g, sel, nsel, tests, ref.id)) {
	case 0:
		break;
	case -ENOENT:
		goto done;
	default:
		goto nomem;
	}
	if (impact && compute_impact(&g, tests) < 0)
		goto nomem;

	switch (fmt) {
	case FMT_JSON:
		print_json_graph(&g, impact);
		rc = DBTCTL_EXIT_OK;
		break;
	case FMT_DOT:
		print_dot(&g, ref.id, l->step, impact);
		rc = DBTCTL_EXIT_OK;
		break;
	case FMT_MERMAID:
		if (print_mermaid(&g, ref.id, l->step, impact) < 0)
			goto nomem;
		rc = DBTCTL_EXIT_OK;
		break;
	default:
		if (print_text(&o->style, &g, ref.id, l->step, impact) < 0)
			goto nomem;
		rc = DBTCTL_EXIT_OK;
		break;
	}
	goto done;
nomem:
	fflush(stdout);
	fprintf(stderr, "dbtctl: out of memory while working on the lineage of run %" PRIu64
	        "\n", ref.id);
	rc = DBTCTL_EXIT_FAILED;
done:
	graph_free(&g);
	request_done(&c, r);
out:
	selectors_free(sel, nsel);
	free(sel_args);
	return rc;
}
