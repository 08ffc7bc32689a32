/*
 * burst.c - trigger N runs (one job each, so none is Skipped) as fast as
 * dbtd takes them, and wait until all have ended: dbtd's throughput with
 * steps that do nothing.
 * usage: burst SOCKET N REPO DUCKDB_DIR
 * Prints "runs seconds".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "client.h"

/* How many runs have the status s (up to limit). */
static size_t
count_status(struct bconn *c, Dbtd__RunStatus s, unsigned limit)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ListRuns lr = DBTD__LIST_RUNS__INIT;
	Dbtd__Response *r;
	size_t n;

	lr.status = s;
	lr.limit = limit;
	req.body_case = DBTD__REQUEST__BODY_LIST_RUNS;
	req.list_runs = &lr;
	r = bconn_call(c, &req);
	n = r->runs->n_items;
	dbtd__response__free_unpacked(r, NULL);
	return n;
}

int
main(int argc, char **argv)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Project p = DBTD__PROJECT__INIT;
	struct bconn c;
	int n;
	double t0;
	char name[64], path[4096];

	if (argc != 5) {
		fprintf(stderr, "usage: burst SOCKET N REPO DUCKDB_DIR\n");
		return 2;
	}
	n = atoi(argv[2]);
	bconn_open(&c, argv[1]);
	p.name = (char *)"bench";
	p.repo = argv[3];
	req.body_case = DBTD__REQUEST__BODY_ADD_PROJECT;
	req.add_project = &p;
	dbtd__response__free_unpacked(bconn_call(&c, &req), NULL);
	for (int i = 0; i < n; i++) {
		Dbtd__Environment e = DBTD__ENVIRONMENT__INIT;
		Dbtd__Destination d = DBTD__DESTINATION__INIT;
		Dbtd__Job j = DBTD__JOB__INIT;
		Dbtd__JobStep s = DBTD__JOB_STEP__INIT, *sp[1] = { &s };

		/* one environment and DuckDB file per job: no run waits for another's file */
		snprintf(name, sizeof(name), "e%d", i);
		snprintf(path, sizeof(path), "%s/%d.duckdb", argv[4], i);
		d.type = (char *)"duckdb";
		d.path = path;
		e.name = name;
		e.project = (char *)"bench";
		e.branch = (char *)"main";
		e.destination = &d;
		req.body_case = DBTD__REQUEST__BODY_ADD_ENVIRONMENT;
		req.add_environment = &e;
		dbtd__response__free_unpacked(bconn_call(&c, &req), NULL);
		j.environment = name;
		snprintf(name + 32, 32, "j%d", i);
		j.name = name + 32;
		s.type = (char *)"dbt";
		s.command = (char *)"dbt build";
		j.n_steps = 1;
		j.steps = sp;
		req.body_case = DBTD__REQUEST__BODY_ADD_JOB;
		req.add_job = &j;
		dbtd__response__free_unpacked(bconn_call(&c, &req), NULL);
	}
	t0 = bnow();
	for (int i = 0; i < n; i++) {
		Dbtd__RunJob rj = DBTD__RUN_JOB__INIT;
		snprintf(name, sizeof(name), "j%d", i);
		rj.job = name;
		rj.trigger = DBTD__TRIGGER__TRIGGER_API;
		req.body_case = DBTD__REQUEST__BODY_RUN_JOB;
		req.run_job = &rj;
		bconn_send(&c, &req);
	}
	for (int i = 0; i < n; i++)
		dbtd__response__free_unpacked(bconn_recv(&c), NULL);
	while (count_status(&c, DBTD__RUN_STATUS__RUN_QUEUED, 1) ||
	       count_status(&c, DBTD__RUN_STATUS__RUN_RUNNING, 1))
		usleep(5000);
	printf("%d %.3f %zu\n", n, bnow() - t0,
	       count_status(&c, DBTD__RUN_STATUS__RUN_COMPLETED, (unsigned)n + 1));
	return 0;
}
