/*
 * rtt.c - client round trips to dbtd for the run history benchmark.
 * usage: rtt SOCKET ITERATIONS MAX_RUN_ID [MIN_RUN_ID]
 * Prints "query median_ms p95_ms" lines.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "client.h"

/* qsort comparison of doubles. */
static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Time `iters` calls of req (view_run ids vary when vary_id). */
static uint64_t min_id = 1; /* run view asks for ids from min_id to max_id */

static void
measure(struct bconn *c, const char *name, Dbtd__Request *req, int iters,
        uint64_t max_id, Dbtd__RunRef *ref)
{
	double *t = calloc((size_t)iters, sizeof(*t));
	uint64_t seed = 12345;

	for (int i = 0; i < iters; i++) {
		double t0;
		if (ref) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			ref->id = min_id + (seed >> 11) % (max_id - min_id + 1);
		}
		t0 = bnow();
		dbtd__response__free_unpacked(bconn_call(c, req), NULL);
		t[i] = (bnow() - t0) * 1000.0;
	}
	qsort(t, (size_t)iters, sizeof(*t), cmp);
	printf("%s %.3f %.3f\n", name, t[iters / 2], t[iters * 95 / 100]);
	free(t);
}

int
main(int argc, char **argv)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ListRuns lr = DBTD__LIST_RUNS__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	struct bconn c;
	int iters;
	uint64_t max_id;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: rtt SOCKET ITERATIONS MAX_RUN_ID [MIN_RUN_ID]\n");
		return 2;
	}
	iters = atoi(argv[2]);
	max_id = strtoull(argv[3], NULL, 10);
	if (argc > 4)
		min_id = strtoull(argv[4], NULL, 10);
	if (min_id < 1 || min_id > max_id)
		min_id = 1;
	bconn_open(&c, argv[1]);
	req.body_case = DBTD__REQUEST__BODY_LIST_RUNS;
	req.list_runs = &lr;
	lr.limit = 50;
	measure(&c, "run_list_limit_50", &req, iters, 0, NULL);
	lr.job = (char *)"job-042";
	measure(&c, "run_list_job_limit_50", &req, iters, 0, NULL);
	lr.job = (char *)"";
	lr.status = DBTD__RUN_STATUS__RUN_FAILED;
	measure(&c, "run_list_status_failed_limit_50", &req, iters, 0, NULL);
	req.body_case = DBTD__REQUEST__BODY_VIEW_RUN;
	req.view_run = &ref;
	measure(&c, "run_view", &req, iters, max_id, &ref);
	return 0;
}
