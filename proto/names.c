/* names.c - user-facing names of the wire enums, and time formatting. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "names.h"

static const char *const run_json[] = {
	"unknown", "queued", "running", "completed", "failed", "canceled", "skipped",
};
static const char *const run_human[] = {
	"Unknown", "Queued", "Running", "Completed", "Failed", "Canceled", "Skipped",
};
static const char *const step_json[] = {
	"unknown", "pending", "running", "completed", "failed", "skipped", "canceled",
};
static const char *const trig_json[] = {
	"unknown", "scheduled", "manual", "pr", "merge", "pipeline", "api", "rerun",
};
static const char *const trig_human[] = {
	"Unknown", "Scheduled", "Manual", "PR", "Merge", "Pipeline", "API", "Re-run",
};
static const char *const jobtype_json[] = { "unknown", "deploy", "ci", "merge" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NAME_OF(table, v) \
	((unsigned)(v) < NELEM(table) ? (table)[(unsigned)(v)] : (table)[0])

/* Find name in one or two tables (index >= 1), case-insensitively. */
static int
lookup(const char *name, const char *const *a, const char *const *b, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (strcasecmp(name, a[i]) == 0 || (b && strcasecmp(name, b[i]) == 0))
			return (int)i;
	return -EINVAL;
}

const char *run_status_json(Dbtd__RunStatus s) { return NAME_OF(run_json, s); }
const char *run_status_human(Dbtd__RunStatus s) { return NAME_OF(run_human, s); }
const char *step_status_json(Dbtd__StepStatus s) { return NAME_OF(step_json, s); }
const char *trigger_json(Dbtd__Trigger t) { return NAME_OF(trig_json, t); }
const char *trigger_human(Dbtd__Trigger t) { return NAME_OF(trig_human, t); }
const char *job_type_json(Dbtd__JobType t) { return NAME_OF(jobtype_json, t); }

int
run_status_parse(const char *name, Dbtd__RunStatus *out)
{
	int i = lookup(name, run_json, run_human, NELEM(run_json));
	if (i < 0)
		return i;
	*out = (Dbtd__RunStatus)i;
	return 0;
}

int
trigger_parse(const char *name, Dbtd__Trigger *out)
{
	int i = lookup(name, trig_json, trig_human, NELEM(trig_json));
	if (i < 0)
		return i;
	*out = (Dbtd__Trigger)i;
	return 0;
}

int
job_type_parse(const char *name, Dbtd__JobType *out)
{
	int i = lookup(name, jobtype_json, NULL, NELEM(jobtype_json));
	if (i < 0)
		return i;
	*out = (Dbtd__JobType)i;
	return 0;
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
format_rfc3339(int64_t ms, char *buf, size_t len)
{
	struct tm tm;
	time_t t;

	if (ms <= 0) {
		buf[0] = '\0';
		return buf;
	}
	t = (time_t)(ms / 1000);
	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return buf;
}

char *
format_duration(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		ms = 0;
	if (ms < 60000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, len, "%dm %02ds", (int)(ms / 60000), (int)(ms / 1000 % 60));
	else
		snprintf(buf, len, "%dh %02dm", (int)(ms / 3600000), (int)(ms / 60000 % 60));
	return buf;
}
