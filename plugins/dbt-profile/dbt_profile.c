/*
 * dbt_profile.c - the "dbt-profile" step: read the profile name from the
 * project's dbt_project.yml and write <workspace>/profiles/profiles.yml with
 * one target, "dbtd", for the run's destination (DuckDB or PostgreSQL).
 * The destination password is never written: the profile reads it from
 * DBT_ENV_SECRET_DBTD_PASSWORD, which the dbt step sets for dbt alone.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include <dbtd/step.h>

/* The single target every generated profile has. */
#define TARGET "dbtd"

/* The profile's password: a reference to the environment, never the secret. */
#define PASSWORD_REF "{{ env_var('DBT_ENV_SECRET_DBTD_PASSWORD') }}"
/* The same when no password secret is set (libpq then uses ~/.pgpass or trust). */
#define PASSWORD_REF_EMPTY "{{ env_var('DBT_ENV_SECRET_DBTD_PASSWORD', '') }}"

/* Longest profile name accepted from dbt_project.yml. */
#define PROFILE_MAX 256

/* The destination as the profile describes it. */
struct dest {
	const char *type;     /* "duckdb" or "postgres" */
	const char *path;     /* duckdb: absolute database file */
	const char *host;     /* postgres */
	const char *port;     /* postgres, digits */
	const char *user;     /* postgres */
	const char *dbname;   /* postgres */
	const char *schema;
	const char *threads;  /* digits */
	int has_password;     /* postgres: a password secret is set */
};

/* A parameter, with "" treated like an unset one. */
static const char *param(const struct dbtd_host *host, dbtd_step_ctx *ctx, const char *key)
{
	const char *v = host->param(ctx, key);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/*
 * Read the top-level `profile:` scalar of <dir>/dbt_project.yml into `name`.
 * Sets the step error itself; returns 0 or a negative errno.
 */
static int read_profile_name(const struct dbtd_host *host, dbtd_step_ctx *ctx,
                             const char *dir, char *name, size_t size)
{
	char path[PATH_MAX];
	yaml_parser_t parser;
	yaml_event_t ev;
	FILE *f = NULL;
	int parser_ready = 0, depth = 0, is_key = 1, key_is_profile = 0, found = 0, done = 0;
	int rc = -EINVAL;

	name[0] = '\0';
	if ((size_t)snprintf(path, sizeof(path), "%s/dbt_project.yml", dir) >= sizeof(path)) {
		host->set_error(ctx, "project directory %s: path too long", dir);
		rc = -ENAMETOOLONG;
		goto fail;
	}
	f = fopen(path, "re");
	if (f == NULL) {
		rc = -errno;
		host->set_error(ctx, "cannot read %s: %s; the git-clone step must find the project first",
		                path, strerror(errno));
		goto fail;
	}
	if (!yaml_parser_initialize(&parser)) {
		host->set_error(ctx, "cannot parse %s: out of memory", path);
		rc = -ENOMEM;
		goto fail;
	}
	parser_ready = 1;
	yaml_parser_set_input_file(&parser, f);
	while (!done) {
		int node_done = 0;

		if (!yaml_parser_parse(&parser, &ev)) {
			host->set_error(ctx, "cannot parse %s: %s at line %zu, column %zu; fix the YAML",
			                path, parser.problem ? parser.problem : "invalid YAML",
			                parser.problem_mark.line + 1, parser.problem_mark.column + 1);
			goto fail;
		}
		switch (ev.type) {
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			/* Only a mapping at the top has keys; anything else has no profile. */
			if (depth == 0 && ev.type != YAML_MAPPING_START_EVENT)
				done = 1;
			depth++;
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			node_done = depth == 1;
			if (depth == 0)
				done = 1;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_ALIAS_EVENT:
			if (depth != 1)
				break;
			node_done = 1;
			if (is_key) {
				key_is_profile = ev.type == YAML_SCALAR_EVENT &&
				                 strcmp((const char *)ev.data.scalar.value, "profile") == 0;
			} else if (key_is_profile && ev.type == YAML_SCALAR_EVENT) {
				const char *v = (const char *)ev.data.scalar.value;
				int null = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
				           (v[0] == '\0' || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0);

				if (!null) {
					if (ev.data.scalar.length >= size) {
						host->set_error(ctx, "the profile name in %s is longer than %zu bytes",
						                path, size - 1);
						yaml_event_delete(&ev);
						goto fail;
					}
					memcpy(name, v, ev.data.scalar.length + 1);
					found = 1;
				}
				key_is_profile = 0;
			}
			break;
		case YAML_DOCUMENT_END_EVENT:
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (node_done) {
			if (!is_key && key_is_profile) {
				host->set_error(ctx, "\"profile:\" in %s is not a plain name; "
				                "set it to the name of the profile", path);
				goto fail;
			}
			if (!is_key)
				key_is_profile = 0;
			is_key = !is_key;
		}
	}
	if (!found) {
		host->set_error(ctx, "dbt_project.yml in %s has no \"profile:\"; "
		                "add \"profile: <name>\" to it", dir);
		goto fail;
	}
	if (strstr(name, "{{") != NULL || strstr(name, "{%") != NULL) {
		host->set_error(ctx, "\"profile:\" in %s is a Jinja expression (%s); "
		                "dbtd needs a literal profile name", path, name);
		goto fail;
	}
	rc = 0;
fail:
	if (parser_ready)
		yaml_parser_delete(&parser);
	if (f != NULL)
		fclose(f);
	return rc;
}

/* True when `s` reads back as the same string if written without quotes. */
static int plain_is_safe(const char *s)
{
	static const char *const words[] = {
		"y", "yes", "n", "no", "true", "false", "on", "off", "null",
	};

	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
	      s[0] == '_' || s[0] == '/'))
		return 0;
	if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-") !=
	    strlen(s))
		return 0;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasecmp(s, words[i]) == 0)
			return 0;
	return 1;
}

/* Emit one scalar: numbers plain, strings plain only when that keeps them strings. */
static int emit_scalar(yaml_emitter_t *em, const char *s, int number)
{
	yaml_event_t ev;
	yaml_scalar_style_t style = number || plain_is_safe(s) ? YAML_PLAIN_SCALAR_STYLE
	                                                       : YAML_DOUBLE_QUOTED_SCALAR_STYLE;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s, (int)strlen(s),
	                                  1, 1, style))
		return -ENOMEM;
	return yaml_emitter_emit(em, &ev) ? 0 : -EIO;
}

/* Emit `key: value` (value a string, or a number when `number`). */
static int emit_pair(yaml_emitter_t *em, const char *key, const char *value, int number)
{
	int rc = emit_scalar(em, key, 0);

	return rc < 0 ? rc : emit_scalar(em, value, number);
}

/* Emit the start of a block mapping. */
static int emit_map_start(yaml_emitter_t *em)
{
	yaml_event_t ev;

	if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE))
		return -ENOMEM;
	return yaml_emitter_emit(em, &ev) ? 0 : -EIO;
}

/* Emit the end of a mapping. */
static int emit_map_end(yaml_emitter_t *em)
{
	yaml_event_t ev;

	if (!yaml_mapping_end_event_initialize(&ev))
		return -ENOMEM;
	return yaml_emitter_emit(em, &ev) ? 0 : -EIO;
}

/* Emit the whole profiles.yml document for `profile` and destination `d`. */
static int emit_profile(yaml_emitter_t *em, const char *profile, const struct dest *d)
{
	yaml_event_t ev;
	int rc = -ENOMEM;

	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING))
		goto fail;
	if (!yaml_emitter_emit(em, &ev))
		goto fail_emit;
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1))
		goto fail;
	if (!yaml_emitter_emit(em, &ev))
		goto fail_emit;
	if ((rc = emit_map_start(em)) < 0 ||
	    (rc = emit_scalar(em, profile, 0)) < 0 ||
	    (rc = emit_map_start(em)) < 0 ||
	    (rc = emit_pair(em, "target", TARGET, 0)) < 0 ||
	    (rc = emit_scalar(em, "outputs", 0)) < 0 ||
	    (rc = emit_map_start(em)) < 0 ||
	    (rc = emit_scalar(em, TARGET, 0)) < 0 ||
	    (rc = emit_map_start(em)) < 0 ||
	    (rc = emit_pair(em, "type", d->type, 0)) < 0)
		goto fail;
	if (strcmp(d->type, "duckdb") == 0) {
		if ((rc = emit_pair(em, "path", d->path, 0)) < 0)
			goto fail;
	} else {
		if ((rc = emit_pair(em, "host", d->host, 0)) < 0 ||
		    (rc = emit_pair(em, "port", d->port, 1)) < 0 ||
		    (rc = emit_pair(em, "user", d->user, 0)) < 0 ||
		    (rc = emit_pair(em, "password",
		                    d->has_password ? PASSWORD_REF : PASSWORD_REF_EMPTY, 0)) < 0 ||
		    (rc = emit_pair(em, "dbname", d->dbname, 0)) < 0)
			goto fail;
	}
	if ((rc = emit_pair(em, "schema", d->schema, 0)) < 0 ||
	    (rc = emit_pair(em, "threads", d->threads, 1)) < 0 ||
	    (rc = emit_map_end(em)) < 0 ||
	    (rc = emit_map_end(em)) < 0 ||
	    (rc = emit_map_end(em)) < 0 ||
	    (rc = emit_map_end(em)) < 0)
		goto fail;
	rc = -ENOMEM;
	if (!yaml_document_end_event_initialize(&ev, 1))
		goto fail;
	if (!yaml_emitter_emit(em, &ev))
		goto fail_emit;
	if (!yaml_stream_end_event_initialize(&ev))
		goto fail;
	if (!yaml_emitter_emit(em, &ev))
		goto fail_emit;
	if (!yaml_emitter_flush(em))
		goto fail_emit;
	return 0;
fail_emit:
	rc = -EIO;
fail:
	return rc;
}

/* Parse a decimal count in [min, max]; returns 0 or -EINVAL. */
static int parse_count(const char *s, long min, long max)
{
	char *end;
	long v;

	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -EINVAL;
	return 0;
}

/* mkdir -p `path` with `mode` for the directories it creates. */
static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	struct stat sb;

	if ((size_t)snprintf(buf, sizeof(buf), "%s", path) >= sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		int last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0) {
			if (errno != EEXIST)
				return -errno;
			if (stat(buf, &sb) < 0)
				return -errno;
			if (!S_ISDIR(sb.st_mode))
				return -ENOTDIR;
		}
		if (last)
			return 0;
		*p = '/';
	}
}

/* Read the destination parameters into `d`; sets the step error on a bad one. */
static int read_dest(const struct dbtd_host *host, dbtd_step_ctx *ctx, struct dest *d)
{
	struct stat sb;

	d->type = param(host, ctx, "dest.type");
	d->schema = param(host, ctx, "dest.schema");
	d->threads = param(host, ctx, "dest.threads");
	if (d->threads == NULL)
		d->threads = "4";
	if (d->type == NULL) {
		host->set_error(ctx, "the destination has no type (dest.type); "
		                "set it to duckdb or postgres");
		return -EINVAL;
	}
	if (parse_count(d->threads, 1, 1024) < 0) {
		host->set_error(ctx, "destination threads \"%s\" is not a number from 1 to 1024; "
		                "fix the destination's threads", d->threads);
		return -EINVAL;
	}
	if (strcmp(d->type, "duckdb") == 0) {
		d->path = param(host, ctx, "dest.path");
		if (d->schema == NULL)
			d->schema = "main";
		if (d->path == NULL || d->path[0] != '/') {
			host->set_error(ctx, "DuckDB destination path \"%s\" is not absolute; "
			                "set the destination's path to an absolute file path",
			                d->path ? d->path : "");
			return -EINVAL;
		}
		if (stat(d->path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			host->set_error(ctx, "DuckDB destination path %s is a directory; "
			                "set the destination's path to a database file", d->path);
			return -EISDIR;
		}
		return 0;
	}
	if (strcmp(d->type, "postgres") == 0) {
		d->host = param(host, ctx, "dest.host");
		d->port = param(host, ctx, "dest.port");
		d->user = param(host, ctx, "dest.user");
		d->dbname = param(host, ctx, "dest.dbname");
		d->has_password = host->param(ctx, "secret.dest.password") != NULL;
		if (d->port == NULL)
			d->port = "5432";
		if (d->schema == NULL)
			d->schema = "public";
		if (d->host == NULL || d->user == NULL || d->dbname == NULL) {
			host->set_error(ctx, "the postgres destination has no %s; set the destination's %s",
			                d->host == NULL ? "host (dest.host)" :
			                d->user == NULL ? "user (dest.user)" : "dbname (dest.dbname)",
			                d->host == NULL ? "host" : d->user == NULL ? "user" : "dbname");
			return -EINVAL;
		}
		if (parse_count(d->port, 1, 65535) < 0) {
			host->set_error(ctx, "postgres destination port \"%s\" is not a port number; "
			                "fix the destination's port", d->port);
			return -EINVAL;
		}
		return 0;
	}
	host->set_error(ctx, "unknown destination type \"%s\"; dbtd writes profiles for "
	                "duckdb and postgres", d->type);
	return -EINVAL;
}

/* Create the private profiles directory <ws>/profiles (0700). */
static int make_private_dir(const char *dir)
{
	struct stat sb;

	if (mkdir(dir, 0700) < 0) {
		if (errno != EEXIST)
			return -errno;
		if (lstat(dir, &sb) < 0)
			return -errno;
		if (!S_ISDIR(sb.st_mode))
			return -ENOTDIR;
	}
	return chmod(dir, 0700) < 0 ? -errno : 0;
}

/* Write profiles.yml for the project's profile and the run's destination. */
static int dbt_profile_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	const char *project_dir = param(host, ctx, "run.project_dir");
	const char *ws = host->workspace(ctx);
	const char *run_id = param(host, ctx, "run.id");
	char profile[PROFILE_MAX], dir[PATH_MAX], file[PATH_MAX], parent[PATH_MAX], where[PATH_MAX + 300];
	struct dest d = { 0 };
	yaml_emitter_t em;
	int em_ready = 0, fd = -1, created = 0, rc;
	FILE *f = NULL;
	int status = DBTD_STEP_FAILED;

	(void)data;
	if (project_dir == NULL) {
		host->set_error(ctx, "no dbt project directory (run.project_dir is not set); "
		                "the git-clone step must run before this step");
		goto fail;
	}
	if (read_profile_name(host, ctx, project_dir, profile, sizeof(profile)) < 0)
		goto fail;
	if (read_dest(host, ctx, &d) < 0)
		goto fail;
	if (strcmp(d.type, "duckdb") == 0) {
		char *slash;

		snprintf(parent, sizeof(parent), "%s", d.path);
		slash = strrchr(parent, '/');
		if (slash == parent)
			slash[1] = '\0';
		else
			*slash = '\0';
		if ((rc = mkdir_p(parent, 0755)) < 0) {
			host->set_error(ctx, "cannot create directory %s for the DuckDB database %s: %s; "
			                "create it or fix the destination's path", parent, d.path,
			                strerror(-rc));
			goto fail;
		}
		snprintf(where, sizeof(where), "duckdb %s", d.path);
	} else {
		snprintf(where, sizeof(where), "postgres %s:%s/%s as %s", d.host, d.port, d.dbname,
		         d.user);
	}

	if (ws == NULL || (size_t)snprintf(dir, sizeof(dir), "%s/profiles", ws) >= sizeof(dir) ||
	    (size_t)snprintf(file, sizeof(file), "%s/profiles.yml", dir) >= sizeof(file)) {
		host->set_error(ctx, "cannot write the profile: the workspace path is missing or too long");
		goto fail;
	}
	if ((rc = make_private_dir(dir)) < 0) {
		host->set_error(ctx, "cannot create profiles directory %s: %s", dir, strerror(-rc));
		goto fail;
	}
	if (unlink(file) < 0 && errno != ENOENT) {
		host->set_error(ctx, "cannot replace %s: %s", file, strerror(errno));
		goto fail;
	}
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		host->set_error(ctx, "cannot create %s: %s", file, strerror(errno));
		goto fail;
	}
	created = 1;
	if (fchmod(fd, 0600) < 0 || (f = fdopen(fd, "w")) == NULL) {
		host->set_error(ctx, "cannot write %s: %s", file, strerror(errno));
		goto fail;
	}
	fd = -1;
	fprintf(f, "# Written by dbtd%s%s%s; passwords come from the environment, not this file.\n",
	        run_id ? " (run " : "", run_id ? run_id : "", run_id ? ")" : "");
	if (!yaml_emitter_initialize(&em)) {
		host->set_error(ctx, "cannot write %s: out of memory", file);
		goto fail;
	}
	em_ready = 1;
	yaml_emitter_set_output_file(&em, f);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	yaml_emitter_set_indent(&em, 2);
	if (emit_profile(&em, profile, &d) < 0) {
		host->set_error(ctx, "cannot write %s: %s", file,
		                em.problem ? em.problem : "YAML emitter error");
		goto fail;
	}
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		host->set_error(ctx, "cannot write %s: %s", file, strerror(errno));
		goto fail;
	}
	rc = fclose(f);
	f = NULL;
	if (rc != 0) {
		host->set_error(ctx, "cannot write %s: %s", file, strerror(errno));
		goto fail;
	}
	if ((rc = host->set_output(ctx, "run.profiles_dir", dir)) < 0) {
		host->set_error(ctx, "cannot record the profiles directory %s: %s", dir, strerror(-rc));
		goto fail;
	}
	host->log(ctx, "Wrote profile %s (target " TARGET ", %s, schema %s, threads %s) to %s",
	          profile, where, d.schema, d.threads, file);
	if (strcmp(d.type, "postgres") == 0 && !d.has_password)
		host->log(ctx, "No password secret is set for the destination; dbt connects without "
		          "one (~/.pgpass or trust authentication)");
	status = DBTD_STEP_OK;
fail:
	if (em_ready)
		yaml_emitter_delete(&em);
	if (f != NULL)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (status != DBTD_STEP_OK && created)
		unlink(file);
	return status;
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "dbt-profile",
	.description = "Write profiles.yml for the project's profile and the run's destination",
	.run = dbt_profile_run,
};
