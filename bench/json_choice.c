/*
 * json_choice.c - compare jansson and json-c on a dbt manifest.json.
 *
 * Each variant runs in its own forked child so peak RSS (ru_maxrss from
 * wait4) is attributable to that library alone. Per child we report:
 *   parse  - wall ms to get a DOM from the file
 *   walk   - wall ms to iterate manifest["nodes"] and, for each node, read
 *            unique_id, config.materialized and len(depends_on.nodes)
 *   free   - wall ms to release the DOM
 *   maxrss - peak RSS of the child (KiB), baseline = an empty child
 *
 * Build: gcc -O2 -o json_choice json_choice.c $(pkg-config --cflags --libs jansson json-c)
 * Run:   ./json_choice manifest.json [repeats]
 *
 * Note: jansson.h and json-c's headers cannot be included in one translation
 * unit (both define json_object, json_type, json_object_get, ...), and both
 * shared libraries export json_object_get and json_object_iter_next (with
 * different symbol versions). So this file includes only jansson.h, declares
 * the few json-c functions it needs by hand, and looks the two clashing names
 * up by symbol version with dlvsym() so link order does not matter (GNU ld
 * merges two .symver references to one name into a single dynamic symbol,
 * so .symver alone is not enough).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

/* jansson: clashing names, resolved by version in main(). */
static json_t *(*jn_object_get)(const json_t *object, const char *key);
static void *(*jn_object_iter_next)(json_t *object, void *iter);

/* json-c 0.16 API subset (see json_object.h, json_tokener.h, json_util.h,
 * json_object_iterator.h). */
struct json_object;
struct json_tokener;
struct json_object_iterator {
    const void *opaque_;
};
struct json_object *json_object_from_file(const char *filename);
int json_object_object_get_ex(const struct json_object *obj, const char *key,
                              struct json_object **value);
const char *json_object_get_string(struct json_object *obj);
size_t json_object_array_length(const struct json_object *obj);
int json_object_put(struct json_object *obj);
struct json_tokener *json_tokener_new_ex(int depth);
struct json_object *json_tokener_parse_ex(struct json_tokener *tok, const char *str, int len);
int json_tokener_get_error(struct json_tokener *tok); /* enum json_tokener_error */
const char *json_tokener_error_desc(int jerr);
void json_tokener_free(struct json_tokener *tok);
const char *json_util_get_last_err(void);
struct json_object_iterator json_object_iter_begin(struct json_object *obj);
struct json_object_iterator json_object_iter_end(const struct json_object *obj);
int json_object_iter_equal(const struct json_object_iterator *a,
                           const struct json_object_iterator *b);
const char *json_object_iter_peek_name(const struct json_object_iterator *it);
struct json_object *json_object_iter_peek_value(const struct json_object_iterator *it);
static void (*jc_object_iter_next)(struct json_object_iterator *it);
#define JSON_TOKENER_SUCCESS 0

struct result {
    double parse_ms, walk_ms, free_ms;
    long nodes, deps, strbytes;
    int ok;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t off = 0;
    while (buf && off < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            buf = NULL;
            break;
        }
        off += (size_t)n;
    }
    close(fd);
    if (buf) {
        buf[off] = '\0';
        *len = off;
    }
    return buf;
}

/* ---------------- jansson ---------------- */

static void jansson_walk(json_t *root, struct result *r)
{
    json_t *nodes = jn_object_get(root, "nodes");
    for (void *it = json_object_iter(nodes); it; it = jn_object_iter_next(nodes, it)) {
        json_t *node = json_object_iter_value(it);
        const char *uid = json_string_value(jn_object_get(node, "unique_id"));
        const char *mat = json_string_value(
            jn_object_get(jn_object_get(node, "config"), "materialized"));
        json_t *deps = jn_object_get(jn_object_get(node, "depends_on"), "nodes");
        r->nodes++;
        r->deps += (long)json_array_size(deps);
        r->strbytes += (uid ? (long)strlen(uid) : 0) + (mat ? (long)strlen(mat) : 0);
    }
}

static void run_jansson(const char *path, int from_buffer, struct result *r)
{
    json_error_t err;
    json_t *root;
    double t0 = now_ms();
    if (from_buffer) {
        size_t len;
        char *buf = slurp(path, &len);
        if (!buf)
            return;
        root = json_loadb(buf, len, 0, &err);
        free(buf);
    } else {
        root = json_load_file(path, 0, &err);
    }
    double t1 = now_ms();
    if (!root) {
        fprintf(stderr, "jansson: %s (line %d)\n", err.text, err.line);
        return;
    }
    jansson_walk(root, r);
    double t2 = now_ms();
    json_decref(root);
    double t3 = now_ms();
    r->parse_ms = t1 - t0;
    r->walk_ms = t2 - t1;
    r->free_ms = t3 - t2;
    r->ok = 1;
}

/* ---------------- json-c ---------------- */

static void jsonc_walk(struct json_object *root, struct result *r)
{
    struct json_object *nodes, *cfg, *mat, *uid, *dep, *dn;
    if (!json_object_object_get_ex(root, "nodes", &nodes))
        return;
    struct json_object_iterator it = json_object_iter_begin(nodes);
    struct json_object_iterator end = json_object_iter_end(nodes);
    for (; !json_object_iter_equal(&it, &end); jc_object_iter_next(&it)) {
        struct json_object *node = json_object_iter_peek_value(&it);
        const char *u = NULL, *m = NULL;
        if (json_object_object_get_ex(node, "unique_id", &uid))
            u = json_object_get_string(uid);
        if (json_object_object_get_ex(node, "config", &cfg) &&
            json_object_object_get_ex(cfg, "materialized", &mat))
            m = json_object_get_string(mat);
        r->nodes++;
        if (json_object_object_get_ex(node, "depends_on", &dep) &&
            json_object_object_get_ex(dep, "nodes", &dn))
            r->deps += (long)json_object_array_length(dn);
        r->strbytes += (u ? (long)strlen(u) : 0) + (m ? (long)strlen(m) : 0);
    }
}

static void run_jsonc(const char *path, int tokener, struct result *r)
{
    struct json_object *root;
    double t0 = now_ms();
    if (tokener) {
        size_t len;
        char *buf = slurp(path, &len);
        if (!buf)
            return;
        struct json_tokener *tok = json_tokener_new_ex(64);
        root = json_tokener_parse_ex(tok, buf, (int)len);
        if (json_tokener_get_error(tok) != JSON_TOKENER_SUCCESS) {
            fprintf(stderr, "json-c: %s\n",
                    json_tokener_error_desc(json_tokener_get_error(tok)));
            json_object_put(root);
            root = NULL;
        }
        json_tokener_free(tok);
        free(buf);
    } else {
        root = json_object_from_file(path);
        if (!root)
            fprintf(stderr, "json-c: %s\n", json_util_get_last_err());
    }
    double t1 = now_ms();
    if (!root)
        return;
    jsonc_walk(root, r);
    double t2 = now_ms();
    json_object_put(root);
    double t3 = now_ms();
    r->parse_ms = t1 - t0;
    r->walk_ms = t2 - t1;
    r->free_ms = t3 - t2;
    r->ok = 1;
}

/* ---------------- harness ---------------- */

enum variant { V_BASELINE, V_JANSSON_FILE, V_JANSSON_BUF, V_JSONC_FILE, V_JSONC_TOK, V_COUNT };
static const char *vname[V_COUNT] = {
    "baseline (empty child)", "jansson json_load_file", "jansson json_loadb",
    "json-c json_object_from_file", "json-c json_tokener_parse_ex",
};

static int run_child(enum variant v, const char *path, struct result *out,
                     long *maxrss_kb, double *wall_ms)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        struct result r;
        memset(&r, 0, sizeof r);
        close(fds[0]);
        switch (v) {
        case V_BASELINE: r.ok = 1; break;
        case V_JANSSON_FILE: run_jansson(path, 0, &r); break;
        case V_JANSSON_BUF: run_jansson(path, 1, &r); break;
        case V_JSONC_FILE: run_jsonc(path, 0, &r); break;
        case V_JSONC_TOK: run_jsonc(path, 1, &r); break;
        default: break;
        }
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r && r.ok ? 0 : 1);
    }
    close(fds[1]);
    memset(out, 0, sizeof *out);
    ssize_t n = read(fds[0], out, sizeof *out);
    close(fds[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        return -1;
    *wall_ms = now_ms() - t0;
    *maxrss_kb = ru.ru_maxrss;
    if (n != (ssize_t)sizeof *out || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s manifest.json [repeats]\n", argv[0]);
        return 2;
    }
    /* Referencing the non-clashing functions above makes both libraries
     * load, so RTLD_DEFAULT finds each versioned definition. */
    *(void **)&jn_object_get = dlvsym(RTLD_DEFAULT, "json_object_get", "libjansson.so.4");
    *(void **)&jn_object_iter_next =
        dlvsym(RTLD_DEFAULT, "json_object_iter_next", "libjansson.so.4");
    *(void **)&jc_object_iter_next = dlvsym(RTLD_DEFAULT, "json_object_iter_next", "JSONC_0.14");
    if (!jn_object_get || !jn_object_iter_next || !jc_object_iter_next ||
        (void *)jn_object_iter_next == (void *)jc_object_iter_next) {
        fprintf(stderr, "cannot resolve versioned jansson/json-c symbols\n");
        return 2;
    }
    const char *path = argv[1];
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (reps < 1)
        reps = 1;
    struct stat st;
    if (stat(path, &st) < 0) {
        perror(path);
        return 2;
    }
    printf("file %s: %.1f MB, %d repeats (best parse/walk/free/wall; max RSS)\n",
           path, st.st_size / 1e6, reps);
    printf("%-30s %9s %8s %8s %9s %10s %7s %7s\n", "variant", "parse_ms",
           "walk_ms", "free_ms", "child_ms", "maxrss_MB", "nodes", "deps");
    int rc = 0;
    for (int v = 0; v < V_COUNT; v++) {
        struct result best = {0};
        double best_wall = 0;
        long rss = 0;
        int ok = 1;
        for (int i = 0; i < reps; i++) {
            struct result r;
            long kb;
            double wall;
            if (run_child((enum variant)v, path, &r, &kb, &wall) < 0) {
                ok = 0;
                break;
            }
            if (i == 0 || r.parse_ms < best.parse_ms) best.parse_ms = r.parse_ms;
            if (i == 0 || r.walk_ms < best.walk_ms) best.walk_ms = r.walk_ms;
            if (i == 0 || r.free_ms < best.free_ms) best.free_ms = r.free_ms;
            if (i == 0 || wall < best_wall) best_wall = wall;
            if (kb > rss) rss = kb;
            best.nodes = r.nodes;
            best.deps = r.deps;
        }
        if (!ok) {
            printf("%-30s FAILED\n", vname[v]);
            rc = 1;
            continue;
        }
        printf("%-30s %9.1f %8.2f %8.1f %9.1f %10.1f %7ld %7ld\n", vname[v],
               best.parse_ms, best.walk_ms, best.free_ms, best_wall,
               rss / 1024.0, best.nodes, best.deps);
    }
    return rc;
}
