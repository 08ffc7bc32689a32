/*
 * lineage_bench.c - time and memory of lineage_read() on a dbt target/.
 *
 * usage: lineage_bench TARGET_DIR
 *
 * Reads TARGET_DIR/manifest.json (and run_results.json when present) once
 * and prints the wall time, the process's peak RSS (getrusage ru_maxrss,
 * which includes the few MB of an idle process, shown as "before"), the
 * manifest's size and peak RSS / size, and what the graph holds.
 *
 * Make a manifest with bench/gen_manifest.py, e.g.
 *   python3 bench/gen_manifest.py 5000 /tmp/lb/manifest.json \
 *       --run-results /tmp/lb/run_results.json
 * Targets (docs/ARCHITECTURE.md): 5,000 models (~23 MB) in <= 1 s with a
 * peak RSS <= 10x the file size.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "lineage.h"

/* Monotonic time in ms. */
static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Peak RSS of this process so far, in KiB. */
static long
peak_rss_kib(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return ru.ru_maxrss;
}

int
main(int argc, char **argv)
{
	Dbtd__Lineage *l;
	struct stat st;
	char path[4096], *why = NULL;
	double t0, ms;
	long before, peak;
	size_t i, ran = 0;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s TARGET_DIR\n", argv[0]);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/manifest.json", argv[1]);
	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	before = peak_rss_kib();
	t0 = now_ms();
	rc = lineage_read(argv[1], &l, &why);
	ms = now_ms() - t0;
	peak = peak_rss_kib();
	if (rc < 0) {
		fprintf(stderr, "lineage_read: %s (%s)\n", why ? why : "?", strerror(-rc));
		free(why);
		return 1;
	}
	for (i = 0; i < l->n_nodes; i++)
		ran += l->nodes[i]->status[0] != '\0';
	printf("manifest   %.1f MB\n", st.st_size / 1e6);
	printf("nodes      %zu (%zu with a status), edges %zu\n", l->n_nodes, ran, l->n_edges);
	printf("wall       %.1f ms\n", ms);
	printf("peak RSS   %.1f MB (before: %.1f MB)\n", peak / 1024.0, before / 1024.0);
	printf("ratio      %.2fx the file size\n", peak * 1024.0 / (double)st.st_size);
	dbtd__lineage__free_unpacked(l, NULL);
	return 0;
}
