/*
 * gen_runs.c - fill a dbtd state directory with N runs over J jobs through
 * the store API (no dbt), for the run history benchmark.
 * usage: gen_runs STATE_DIR N JOBS [START_MS [EVERY_MS [JOB]]]
 * Runs are created EVERY_MS apart (default a minute) from START_MS (default
 * November 2023); with JOB, all of them are runs of that job (the retention
 * tests write old runs of a real job this way, with dbtd stopped).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* A small deterministic generator. */
static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int
main(int argc, char **argv)
{
	static const char *const names[] = {
		"Clone Git repository", "Create profile for Destination",
		"Invoke dbt deps", "Invoke dbt build",
	};
	static const char *const types[] = { "git-clone", "dbt-profile", "dbt", "dbt" };
	struct store *st;
	uint64_t seed = 88172645463325252ull;
	unsigned long n, jobs;
	int64_t t = 1700000000000, every = 60000;
	const char *only = NULL;
	char jobname[64], sha[41];
	int rc;

	if (argc < 4 || argc > 7) {
		fprintf(stderr, "usage: gen_runs STATE_DIR N JOBS [START_MS [EVERY_MS [JOB]]]\n");
		return 2;
	}
	if (argc > 4)
		t = strtoll(argv[4], NULL, 10) - 60000;
	if (argc > 5)
		every = strtoll(argv[5], NULL, 10) > 0 ? strtoll(argv[5], NULL, 10) : 1;
	if (argc > 6)
		only = argv[6];
	n = strtoul(argv[2], NULL, 10);
	jobs = strtoul(argv[3], NULL, 10);
	rc = store_open(&st, argv[1], NULL);
	if (rc < 0) {
		fprintf(stderr, "gen_runs: cannot open %s: %s\n", argv[1], store_strerror(rc));
		return 1;
	}
	store_set_group_commit(st, 1);
	for (unsigned long i = 0; i < n; i++) {
		Dbtd__Run r = DBTD__RUN__INIT;
		Dbtd__Step steps[4], *sp[4];
		uint64_t x = next_rand(&seed);
		unsigned pct = (unsigned)(x % 100);

		if (only)
			snprintf(jobname, sizeof(jobname), "%s", only);
		else
			snprintf(jobname, sizeof(jobname), "job-%03lu", (unsigned long)(x >> 8) % jobs);
		for (int k = 0; k < 40; k++)
			sha[k] = "0123456789abcdef"[(next_rand(&seed) >> 5) & 15];
		sha[40] = '\0';
		r.job_id = (x >> 8) % jobs + 1;
		r.job = jobname;
		r.job_type = DBTD__JOB_TYPE__JOB_DEPLOY;
		r.env_id = 1;
		r.environment = (char *)"prod";
		r.status = pct < 90 ? DBTD__RUN_STATUS__RUN_COMPLETED
		         : pct < 97 ? DBTD__RUN_STATUS__RUN_FAILED
		         : pct < 99 ? DBTD__RUN_STATUS__RUN_CANCELED : DBTD__RUN_STATUS__RUN_SKIPPED;
		r.trigger = (Dbtd__Trigger)(1 + (x >> 20) % 7);
		r.branch = (char *)((x >> 24) % 10 ? "main" : "dev");
		r.commit_sha = sha;
		t += every;
		r.created_at_ms = t;
		r.started_at_ms = t + 5;
		r.finished_at_ms = t + 5 + (int64_t)((x >> 30) % (every < 600000 ? every : 600000));
		r.triggered_by = (char *)"scheduler";
		if (r.status == DBTD__RUN_STATUS__RUN_FAILED)
			r.error = (char *)"dbt build failed: Database Error in model orders "
			                  "(models/marts/orders.sql): relation does not exist";
		if (r.status != DBTD__RUN_STATUS__RUN_SKIPPED) {
			for (int k = 0; k < 4; k++) {
				dbtd__step__init(&steps[k]);
				steps[k].index = (uint32_t)k + 1;
				steps[k].name = (char *)names[k];
				steps[k].type = (char *)types[k];
				steps[k].status = DBTD__STEP_STATUS__STEP_COMPLETED;
				steps[k].started_at_ms = r.started_at_ms + k * 1000;
				steps[k].finished_at_ms = r.started_at_ms + k * 1000 + 900;
				if (k >= 2)
					steps[k].command = (char *)(k == 2 ? "dbt deps" : "dbt build");
				sp[k] = &steps[k];
			}
			r.n_steps = 4;
			r.steps = sp;
		}
		rc = store_run_create(st, &r);
		if (rc < 0) {
			fprintf(stderr, "gen_runs: run %lu: %s\n", i, store_strerror(rc));
			return 1;
		}
		if (i % 10000 == 9999 && (rc = store_commit(st)) < 0) {
			fprintf(stderr, "gen_runs: commit: %s\n", store_strerror(rc));
			return 1;
		}
	}
	store_close(st);
	return 0;
}
