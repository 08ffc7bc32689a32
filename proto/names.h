/*
 * names.h - the names users see for the wire enums (PRODUCT.md), both ways,
 * and time formatting shared by dbtd and dbtctl.
 */
#ifndef DBTD_NAMES_H
#define DBTD_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "dbtd.pb-c.h"

/* JSON names: "queued", "running", ...; "unknown" for values out of range. */
const char *run_status_json(Dbtd__RunStatus s);
/* Human names: "Queued", "Running", ... */
const char *run_status_human(Dbtd__RunStatus s);
/* Parse a JSON or human name, any case.  Returns 0 and sets *out, or -EINVAL. */
int run_status_parse(const char *name, Dbtd__RunStatus *out);

const char *step_status_json(Dbtd__StepStatus s);

/* "scheduled", "manual", "pr", "merge", "pipeline", "api", "rerun" */
const char *trigger_json(Dbtd__Trigger t);
/* "Scheduled", "Manual", "PR", "Merge", "Pipeline", "API", "Re-run" */
const char *trigger_human(Dbtd__Trigger t);
int trigger_parse(const char *name, Dbtd__Trigger *out);

/* "deploy", "ci", "merge" */
const char *job_type_json(Dbtd__JobType t);
int job_type_parse(const char *name, Dbtd__JobType *out);

/* Milliseconds since the epoch, wall clock. */
int64_t now_ms(void);

/*
 * format_rfc3339 - write ms since the epoch as "2026-11-28T15:02:46.123Z"
 * into buf (at least 32 bytes).  Returns buf; "" for 0 (unset).
 */
char *format_rfc3339(int64_t ms, char *buf, size_t len);

/* format_duration - "1.2s", "3m 04s", "1h 02m" into buf. Returns buf. */
char *format_duration(int64_t ms, char *buf, size_t len);

#endif /* DBTD_NAMES_H */
