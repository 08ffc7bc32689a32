/*
 * reqlimits.h - what one request may hold: the one place dbtd's limits on
 * objects and fields are defined (docs/API.md and dbtd(8) list them).
 *
 * Chosen so that no real data team meets them, and so that a request within
 * them cannot make dbtd allocate much more than its frame: they are
 * checked on the wire bytes before a request is unpacked (wirecheck.h).
 * Only requests are checked; records stored before a limit existed are
 * read as they are.
 */
#ifndef DBTD_REQLIMITS_H
#define DBTD_REQLIMITS_H

#include "wirecheck.h"

/* Objects */
#define REQ_STEPS_MAX 100          /* steps (--command, plugin steps) of a job */
#define REQ_PARAMS_MAX 64          /* parameters of one step */
#define REQ_ENV_VARS_MAX 256       /* --env variables of an environment */

/* Sizes in bytes */
#define REQ_NAME_MAX 128           /* a name: project, environment, job, pipeline, step type */
#define REQ_TEXT_MAX 1024          /* short text: branch, host, user, database, schema, ... */
#define REQ_PATH_MAX 4096          /* a repository URL or path, --subdir, --path, --dbt */
#define REQ_SECRET_MAX 16384       /* a password, a webhook secret or token */
#define REQ_COMMAND_MAX 65536      /* one step's command */
#define REQ_KEY_MAX 256            /* the name of an --env variable or a step parameter */
#define REQ_VALUE_MAX 65536        /* the value of an --env variable or a step parameter */
#define REQ_SCHEDULE_MAX 256       /* a cron expression (as cron.h's CRON_EXPR_MAX) */
#define REQ_TIMEZONE_MAX 128       /* an IANA time zone name (as cron.h's CRON_TZ_MAX) */

/* Any request, including fields added later */
#define REQ_REPEATED_MAX 10000     /* occurrences of any other repeated field, per message */
#define REQ_STRING_MAX 65536       /* bytes of any other string field (bytes fields: the frame) */
#define REQ_FIELDS_MAX 100000      /* fields in all, nested and unknown ones included */
#define REQ_DEPTH_MAX 16           /* messages nested in one another */

/* The limits of a dbtd.Request, for wirecheck(&dbtd__request__descriptor, ...). */
extern const struct wirecheck_limits reqlimits;

#endif /* DBTD_REQLIMITS_H */
