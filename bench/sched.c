/*
 * sched.c - the scheduler under load: add N jobs with cron schedules (daily
 * at pseudo-random times, and EVERY of them every minute) to one
 * environment, timing each `job add`, then M more one by one.
 * usage: sched SOCKET N EVERY M REPO DUCKDB_FILE
 * Prints "n_added median_ms p95_ms extra_median_ms extra_p95_ms extra_max_ms".
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

/* Add job i with schedule expr; its round trip in ms (exits on a refusal). */
static double
add_job(struct bconn *c, int i, const char *expr)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Job j = DBTD__JOB__INIT;
	Dbtd__JobStep s = DBTD__JOB_STEP__INIT, *sp[1] = { &s };
	Dbtd__Response *r;
	char name[32];
	double t0;

	snprintf(name, sizeof(name), "job%d", i);
	j.name = name;
	j.environment = (char *)"prod";
	s.type = (char *)"dbt";
	s.command = (char *)"dbt build";
	j.n_steps = 1;
	j.steps = sp;
	j.schedule = (char *)expr;
	req.body_case = DBTD__REQUEST__BODY_ADD_JOB;
	req.add_job = &j;
	t0 = bnow();
	r = bconn_call(c, &req);
	t0 = (bnow() - t0) * 1000.0;
	if (r->body_case != DBTD__RESPONSE__BODY_JOB) {
		fprintf(stderr, "sched: job add %s refused: %s\n", name,
		        r->error ? r->error->message : "?");
		exit(1);
	}
	dbtd__response__free_unpacked(r, NULL);
	return t0;
}

int
main(int argc, char **argv)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Project p = DBTD__PROJECT__INIT;
	Dbtd__Environment e = DBTD__ENVIRONMENT__INIT;
	Dbtd__Destination d = DBTD__DESTINATION__INIT;
	struct bconn c;
	int n, every, m;
	double *t, *x;
	uint64_t seed = 42;
	char expr[64];

	if (argc != 7) {
		fprintf(stderr, "usage: sched SOCKET N EVERY M REPO DUCKDB_FILE\n");
		return 2;
	}
	n = atoi(argv[2]);
	every = atoi(argv[3]);
	m = atoi(argv[4]);
	t = calloc((size_t)n + 1, sizeof(*t));
	x = calloc((size_t)m + 1, sizeof(*x));
	if (t == NULL || x == NULL)
		return 1;
	bconn_open(&c, argv[1]);
	p.name = (char *)"bench";
	p.repo = argv[5];
	req.body_case = DBTD__REQUEST__BODY_ADD_PROJECT;
	req.add_project = &p;
	dbtd__response__free_unpacked(bconn_call(&c, &req), NULL);
	d.type = (char *)"duckdb";
	d.path = argv[6];
	e.name = (char *)"prod";
	e.project = (char *)"bench";
	e.branch = (char *)"main";
	e.destination = &d;
	req.body_case = DBTD__REQUEST__BODY_ADD_ENVIRONMENT;
	req.add_environment = &e;
	dbtd__response__free_unpacked(bconn_call(&c, &req), NULL);
	for (int i = 0; i < n; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		if (i < every)
			snprintf(expr, sizeof(expr), "* * * * *");
		else
			snprintf(expr, sizeof(expr), "%u %u * * *", (unsigned)(seed >> 33) % 60,
			         (unsigned)(seed >> 40) % 24);
		t[i] = add_job(&c, i, expr);
	}
	for (int i = 0; i < m; i++)
		x[i] = add_job(&c, n + i, "15 3 * * MON-FRI");
	qsort(t, (size_t)n, sizeof(*t), cmp);
	qsort(x, (size_t)m, sizeof(*x), cmp);
	printf("%d %.3f %.3f %.3f %.3f %.3f\n", n, t[n / 2], t[n * 95 / 100], x[m / 2],
	       x[m * 95 / 100], x[m - 1]);
	return 0;
}
