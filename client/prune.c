/* prune.c - `dbtctl run prune` (see prune.h). */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "conn.h"
#include "names.h"
#include "prune.h"

enum { OPT_DRY_RUN = DBTCTL_OPT_FREE, OPT_JOB };

/* A count or null (0 is "no limit" for a policy value). */
static json_t *
policy_json(uint32_t v)
{
	return v ? json_integer((json_int_t)v) : json_null();
}

/* A time or null. */
static json_t *
time_json(int64_t ms)
{
	char buf[40];

	return ms ? json_string(format_rfc3339(ms, buf, sizeof(buf))) : json_null();
}

/* The report as JSON. */
static json_t *
report_json(const Dbtd__PruneReport *p)
{
	return json_pack("{s:b, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o}",
	                 "dry_run", (int)p->dry_run,
	                 "job", p->job[0] ? json_string(p->job) : json_null(),
	                 "runs", (json_int_t)p->runs,
	                 "log_bytes", (json_int_t)p->log_bytes,
	                 "log_chunks", (json_int_t)p->log_chunks,
	                 "lineages", (json_int_t)p->lineages,
	                 "artifacts", (json_int_t)p->artifacts,
	                 "blobs", (json_int_t)p->blobs,
	                 "blob_bytes", (json_int_t)p->blob_bytes,
	                 "keep_runs", policy_json(p->keep_runs),
	                 "keep_days", policy_json(p->keep_days),
	                 "started_at", time_json(p->started_at_ms),
	                 "finished_at", time_json(p->finished_at_ms),
	                 "error", p->error[0] ? json_string(p->error) : json_null());
}

/* Bytes for people: 512 B, 1.5 KiB, 12.3 MiB, 1.2 GiB. */
static const char *
size_human(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", n);
		return buf;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

/* The report as text. */
static void
report_text(const Dbtd__PruneReport *p)
{
	char logs[32], blobs[32], dur[32];
	const char *verb = p->dry_run ? "would delete" : "deleted";

	printf("%s %" PRIu64 " run%s%s%s%s: %s of step logs (%" PRIu64 " chunks), %" PRIu64
	       " lineage graphs, %" PRIu64 " artifact records\n", verb, p->runs,
	       p->runs == 1 ? "" : "s", p->job[0] ? " of job \"" : "", p->job,
	       p->job[0] ? "\"" : "", size_human(p->log_bytes, logs, sizeof(logs)), p->log_chunks,
	       p->lineages, p->artifacts);
	printf("%s %" PRIu64 " artifact content file%s no run refers to (%s)\n", verb, p->blobs,
	       p->blobs == 1 ? "" : "s", size_human(p->blob_bytes, blobs, sizeof(blobs)));
	printf("dbtd's policy: ");
	if (p->keep_runs)
		printf("the newest %" PRIu32 " finished runs of each job", p->keep_runs);
	else
		printf("no count limit");
	if (p->keep_days)
		printf(", runs finished in the last %" PRIu32 " days", p->keep_days);
	else
		printf(", no age limit");
	printf(" (a job's own --keep-runs/--keep-days first); took %s\n",
	       format_duration(p->finished_at_ms - p->started_at_ms, dur, sizeof(dur)));
	if (p->dry_run)
		printf("nothing was changed (--dry-run)\n");
}

int
cmd_run_prune(struct dbtctl_opts *o, const struct command *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "job", required_argument, NULL, OPT_JOB },
		DBTCTL_COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__PruneRuns pr = DBTD__PRUNE_RUNS__INIT;
	Dbtd__Response *r = NULL;
	struct conn c;
	int ch, rc;

	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_DRY_RUN: pr.dry_run = 1; break;
		case OPT_JOB:     pr.job = optarg; break;
		default:          return stop_status(ch);
		}
	}
	if (optind < argc)
		return usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	req.body_case = DBTD__REQUEST__BODY_PRUNE_RUNS;
	req.prune_runs = &pr;
	rc = session_open(o, &c);
	if (rc != 0)
		return rc;
	conn_set_timeout(&c, 0); /* dbtd answers when the pass is over, however long */
	rc = conn_call(&c, &req, &r);
	if (rc < 0) {
		rc = transport_error(&c, rc);
		conn_close(&c);
		return rc;
	}
	rc = reply_check(r, DBTD__RESPONSE__BODY_PRUNED, NULL);
	if (rc == 0) {
		if (o->json)
			rc = print_json(report_json(r->pruned));
		else
			report_text(r->pruned);
		if (r->pruned->error[0]) {
			fprintf(stderr, "dbtctl: the pass stopped early: %s\n", r->pruned->error);
			rc = DBTCTL_EXIT_FAILED;
		}
	}
	request_done(&c, r);
	return rc;
}
