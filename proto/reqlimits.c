/* reqlimits.c - the limits of a dbtd.Request, field by field. */
#include "config.h"

#include "dbtd.pb-c.h"
#include "reqlimits.h"

#define D(m) (&dbtd__##m##__descriptor)
/* a string's bytes */
#define SIZE(m, f, max, what) { D(m), #f, NULL, NULL, max, what, NULL }
/* a string's bytes where m was reached through field inf of message in */
#define SIZE_IN(in, inf, m, f, max, what) { D(m), #f, D(in), #inf, max, what, NULL }
/* a repeated field's occurrences in one message */
#define COUNT(m, f, max, what, unit) { D(m), #f, NULL, NULL, max, what, unit }

static const struct wirecheck_rule rules[] = {
	SIZE(hello, client, REQ_TEXT_MAX, "a Hello's client name"),

	SIZE(project, name, REQ_NAME_MAX, "a project's name"),
	SIZE(project, repo, REQ_PATH_MAX, "a project's repository (--repo)"),
	SIZE(project, subdir, REQ_PATH_MAX, "a project's --subdir"),
	SIZE(project, webhook_secret, REQ_SECRET_MAX, "a project's webhook secret"),

	SIZE(environment, name, REQ_NAME_MAX, "an environment's name"),
	SIZE(environment, project, REQ_NAME_MAX, "an environment's project name (--project)"),
	SIZE(environment, branch, REQ_TEXT_MAX, "an environment's branch (--branch)"),
	SIZE(environment, dbt_path, REQ_PATH_MAX, "an environment's --dbt path"),
	COUNT(environment, env, REQ_ENV_VARS_MAX, "an environment", "--env variables"),
	SIZE_IN(environment, env, key_value, key, REQ_KEY_MAX, "an --env variable's name"),
	SIZE_IN(environment, env, key_value, value, REQ_VALUE_MAX, "an --env variable's value"),

	SIZE(destination, type, REQ_NAME_MAX, "a destination's type (--destination)"),
	SIZE(destination, path, REQ_PATH_MAX, "a destination's --path"),
	SIZE(destination, host, REQ_TEXT_MAX, "a destination's --host"),
	SIZE(destination, user, REQ_TEXT_MAX, "a destination's --user"),
	SIZE(destination, password, REQ_SECRET_MAX, "a destination's password"),
	SIZE(destination, dbname, REQ_TEXT_MAX, "a destination's --dbname"),
	SIZE(destination, schema, REQ_TEXT_MAX, "a destination's --schema"),

	SIZE(job, name, REQ_NAME_MAX, "a job's name"),
	SIZE(job, environment, REQ_NAME_MAX, "a job's environment name (--env)"),
	COUNT(job, steps, REQ_STEPS_MAX, "a job", "steps"),
	SIZE(job, schedule, REQ_SCHEDULE_MAX, "a job's --schedule"),
	SIZE(job, timezone, REQ_TIMEZONE_MAX, "a job's --timezone"),
	SIZE(job, on_pipeline, REQ_NAME_MAX, "a job's --on-pipeline name"),
	SIZE(job_step, type, REQ_NAME_MAX, "a step's type"),
	SIZE(job_step, command, REQ_COMMAND_MAX, "a step's command (--command)"),
	COUNT(job_step, params, REQ_PARAMS_MAX, "a step", "parameters"),
	SIZE_IN(job_step, params, key_value, key, REQ_KEY_MAX, "a step parameter's name"),
	SIZE_IN(job_step, params, key_value, value, REQ_VALUE_MAX, "a step parameter's value"),

	SIZE(object_ref, name, REQ_NAME_MAX, "a name"),
	SIZE(run_job, job, REQ_NAME_MAX, "a job name"),
	SIZE(list_runs, job, REQ_NAME_MAX, "a job name (--job)"),
	SIZE(list_runs, branch, REQ_TEXT_MAX, "a branch (--branch)"),
	SIZE(artifact_ref, path, REQ_PATH_MAX, "an artifact's path"),

	SIZE(webhook, forge, REQ_NAME_MAX, "a webhook's forge"),
	SIZE(webhook, event, REQ_NAME_MAX, "a webhook's --event"),
	SIZE(webhook, signature, REQ_TEXT_MAX, "a webhook's --signature"),
	SIZE(webhook, token, REQ_SECRET_MAX, "a webhook's --token"),
	SIZE(webhook, project, REQ_NAME_MAX, "a webhook's --project"),
	SIZE(pipeline_event, name, REQ_NAME_MAX, "a pipeline's name"),
};

const struct wirecheck_limits reqlimits = {
	.rules = rules,
	.nrules = sizeof(rules) / sizeof(rules[0]),
	.max_repeated = REQ_REPEATED_MAX,
	.max_string = REQ_STRING_MAX,
	.max_bytes = 0, /* a webhook's payload: the frame (16 MiB) is its limit */
	.max_fields = REQ_FIELDS_MAX,
	.max_depth = REQ_DEPTH_MAX,
};
