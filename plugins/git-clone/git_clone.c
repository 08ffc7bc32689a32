/*
 * git_clone.c - the "git-clone" step: clone the project's repository at the
 * environment's branch into <workspace>/repo with libgit2, and publish the
 * checked-out commit (run.commit_sha) and the dbt project directory
 * (run.project_dir) for the steps after it.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <git2.h>

#include <dbtd/step.h>

/* Seconds between two "Receiving objects" progress lines. */
#define PROGRESS_INTERVAL 10

/* What the fetch callbacks need: the host, cancel state and the last counts. */
struct clone_state {
	const struct dbtd_host *host;
	dbtd_step_ctx *ctx;
	int canceled;
	int have_stats;
	git_indexer_progress stats;
	struct timespec last_report;
};

/* Whether this process holds a git_libgit2_init() reference (one per run). */
static int libgit2_ready;

/* Take the process's libgit2 reference unless it is already held. */
static int ensure_libgit2(void)
{
	if (libgit2_ready)
		return 0;
	if (git_libgit2_init() < 0)
		return -EIO;
	libgit2_ready = 1;
	return 0;
}

/* Append `n` bytes of `s` to buf (size `size`, used `*len`), truncating. */
static void buf_add(char *buf, size_t size, size_t *len, const char *s, size_t n)
{
	if (*len + 1 >= size)
		return;
	if (n > size - 1 - *len)
		n = size - 1 - *len;
	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
}

/*
 * Copy `in` to `out`, replacing the userinfo of every URL in it
 * (user:token@ in https://user:token@host/path becomes ***@).
 * Used on the repository address and on every libgit2 message we show.
 */
static void redact(const char *in, char *out, size_t size)
{
	size_t len = 0;
	const char *p = in;

	out[0] = '\0';
	for (;;) {
		const char *sep = strstr(p, "://");
		const char *auth, *end, *at = NULL, *q;

		if (sep == NULL) {
			buf_add(out, size, &len, p, strlen(p));
			return;
		}
		auth = sep + 3;
		buf_add(out, size, &len, p, (size_t)(auth - p));
		/* The authority ends at the path, a space or a quote. */
		for (end = auth; *end && !strchr("/ \t\n'\"", *end); end++)
			;
		for (q = auth; q < end; q++)
			if (*q == '@')
				at = q;
		if (at != NULL) {
			buf_add(out, size, &len, "***", 3);
			auth = at;
		}
		buf_add(out, size, &len, auth, (size_t)(end - auth));
		p = end;
	}
}

/* The last libgit2 error message with credentials masked, or a fallback. */
static void git_message(char *out, size_t size)
{
	const git_error *e = git_error_last();

	redact(e && e->message ? e->message : "unknown libgit2 error", out, size);
}

/* Seconds elapsed between two monotonic times. */
static double elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Fetch progress: remember the counts, report now and then, honour cancel. */
static int on_transfer(const git_indexer_progress *stats, void *payload)
{
	struct clone_state *st = payload;
	struct timespec now;

	st->stats = *stats;
	st->have_stats = 1;
	if (st->host->cancel_requested(st->ctx)) {
		st->canceled = 1;
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (elapsed(&st->last_report, &now) >= PROGRESS_INTERVAL && stats->total_objects > 0) {
		st->host->log(st->ctx, "Receiving objects: %u%% (%u/%u), %.1f MiB",
		              (unsigned)((uint64_t)stats->received_objects * 100 / stats->total_objects),
		              stats->received_objects, stats->total_objects,
		              (double)stats->received_bytes / (1024.0 * 1024.0));
		st->last_report = now;
	}
	return 0;
}

/* Messages of the remote ("remote: Counting objects..."): only a cancel point. */
static int on_sideband(const char *str, int len, void *payload)
{
	struct clone_state *st = payload;

	(void)str;
	(void)len;
	if (st->host->cancel_requested(st->ctx)) {
		st->canceled = 1;
		return -1;
	}
	return 0;
}

/*
 * Normalise a project subdirectory into `out` ("./a//b/" becomes "a/b", "."
 * becomes ""); -EINVAL when it is absolute or climbs with "..".
 */
static int normalize_subdir(const char *subdir, char *out, size_t size)
{
	const char *p = subdir;
	size_t len = 0;

	if (subdir[0] == '/')
		return -EINVAL;
	out[0] = '\0';
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return -EINVAL;
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (len + (len > 0) + n + 1 > size)
				return -ENAMETOOLONG;
			if (len > 0)
				out[len++] = '/';
			memcpy(out + len, p, n);
			len += n;
			out[len] = '\0';
		}
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

/* True when `path` names `dir` itself or something inside it. */
static int path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* True for 40 hex digits. */
static int is_sha(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f') ||
		      (s[n] >= 'A' && s[n] <= 'F')))
			return 0;
	return n == GIT_OID_HEXSZ;
}

/*
 * Fetch `ref` (and the branch, when known) from origin so that a commit
 * only reachable from it (a pull request's head) is in the clone.
 */
static int fetch_extra(git_repository *repo, const char *ref, const char *branch,
                       struct clone_state *st)
{
	git_remote *remote = NULL;
	git_fetch_options fo;
	char spec_ref[600], spec_branch[600];
	char *specs[2];
	git_strarray refspecs = { specs, 0 };
	int rc;

	if (ref != NULL && ref[0] != '\0' &&
	    (size_t)snprintf(spec_ref, sizeof(spec_ref), "+%s:refs/dbtd/fetched", ref) <
	    sizeof(spec_ref))
		specs[refspecs.count++] = spec_ref;
	if (branch != NULL &&
	    (size_t)snprintf(spec_branch, sizeof(spec_branch),
	                     "+refs/heads/%s:refs/remotes/origin/%s", branch, branch) <
	    sizeof(spec_branch))
		specs[refspecs.count++] = spec_branch;
	if (refspecs.count == 0)
		return GIT_ENOTFOUND;
	rc = git_remote_lookup(&remote, repo, "origin");
	if (rc < 0)
		return rc;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.callbacks.transfer_progress = on_transfer;
	fo.callbacks.sideband_progress = on_sideband;
	fo.callbacks.payload = st;
	fo.proxy_opts.type = GIT_PROXY_AUTO;
	rc = git_remote_fetch(remote, &refspecs, &fo, NULL);
	git_remote_free(remote);
	return rc;
}

/*
 * Check out `commit` (detached): the commit a PR or a push named.  It is
 * fetched through `ref` / `branch` when the clone does not have it.
 */
static int checkout_commit(const struct dbtd_host *host, dbtd_step_ctx *ctx,
                           git_repository *repo, const char *commit, const char *ref,
                           const char *branch, const char *shown, struct clone_state *st)
{
	git_oid oid;
	git_object *obj = NULL;
	git_checkout_options co;
	char msg[1024];
	int rc;

	if (git_oid_fromstr(&oid, commit) < 0) {
		host->set_error(ctx, "commit \"%s\" is not a 40-hex commit id", commit);
		return -1;
	}
	rc = git_object_lookup(&obj, repo, &oid, GIT_OBJECT_COMMIT);
	if (rc == GIT_ENOTFOUND) {
		host->log(ctx, "Commit %s is not on the cloned branch; fetching %s%s%s", commit,
		          ref && ref[0] ? ref : "", ref && ref[0] && branch ? " and " : "",
		          branch ? branch : "");
		rc = fetch_extra(repo, ref, branch, st);
		if (rc < 0 && host->cancel_requested(ctx))
			return -2;
		if (rc < 0) {
			git_message(msg, sizeof(msg));
			host->log(ctx, "libgit2: %s", msg);
		}
		rc = git_object_lookup(&obj, repo, &oid, GIT_OBJECT_COMMIT);
	}
	if (rc < 0) {
		git_message(msg, sizeof(msg));
		host->set_error(ctx, "commit %s is not in %s%s%s (%s); was it force-pushed away?",
		                commit, shown, ref && ref[0] ? " or its " : "",
		                ref && ref[0] ? ref : "", msg);
		return -1;
	}
	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	rc = git_checkout_tree(repo, obj, &co);
	if (rc == 0)
		rc = git_repository_set_head_detached(repo, &oid);
	git_object_free(obj);
	if (rc < 0) {
		git_message(msg, sizeof(msg));
		host->set_error(ctx, "cannot check out commit %s of %s: %s", commit, shown, msg);
		return -1;
	}
	return 0;
}

/*
 * Clone project.repo at the run's branch (run.branch, else env.branch),
 * check out the run's commit when it has one (PR and Merge runs), and
 * publish the commit and project dir.
 */
static int git_clone_run(const struct dbtd_host *host, dbtd_step_ctx *ctx, void *data)
{
	const char *repo_param = host->param(ctx, "project.repo");
	const char *branch = host->param(ctx, "run.branch");
	const char *commit = host->param(ctx, "run.commit");
	const char *fetch_ref = host->param(ctx, "run.fetch_ref");
	const char *subdir = host->param(ctx, "project.subdir");
	const char *ws = host->workspace(ctx);
	git_clone_options opts;
	struct clone_state st = { .host = host, .ctx = ctx };
	git_repository *repo = NULL;
	git_reference *head = NULL;
	git_object *obj = NULL;
	char shown[1024], msg[1024], shown_branch[300], dir[PATH_MAX], project[PATH_MAX];
	char real_dir[PATH_MAX], real_project[PATH_MAX], yml[PATH_MAX], sha[GIT_OID_HEXSZ + 1];
	char where[PATH_MAX + 32], sub[PATH_MAX];
	struct stat sb;
	int status = DBTD_STEP_FAILED;
	int rc;

	(void)data;
	if (repo_param == NULL || repo_param[0] == '\0') {
		host->set_error(ctx, "the project has no repository (project.repo is not set); "
		                "set the project's repo to a path or URL");
		goto fail;
	}
	redact(repo_param, shown, sizeof(shown));
	if (repo_param[0] != '/' && strchr(repo_param, ':') == NULL) {
		host->set_error(ctx, "cannot clone %s: a repository path must be absolute; "
		                "use an absolute path or a URL for the project's repo", shown);
		goto fail;
	}
	/* libgit2 calls a missing path an "unsupported URL protocol": say what it is. */
	if (repo_param[0] == '/' && stat(repo_param, &sb) < 0) {
		host->set_error(ctx, "cannot clone %s: %s; check the project's repo", shown,
		                strerror(errno));
		goto fail;
	}
	if (branch == NULL || branch[0] == '\0')
		branch = host->param(ctx, "env.branch");
	if (branch != NULL && branch[0] == '\0')
		branch = NULL;
	if (!is_sha(commit))
		commit = NULL;
	if (subdir != NULL && normalize_subdir(subdir, sub, sizeof(sub)) < 0) {
		host->set_error(ctx, "project subdirectory \"%s\" must be a relative path inside the "
		                "repository without \"..\"; fix the project's subdir", subdir);
		goto fail;
	}
	subdir = subdir != NULL && sub[0] != '\0' ? sub : NULL;
	if (ws == NULL || (size_t)snprintf(dir, sizeof(dir), "%s/repo", ws) >= sizeof(dir)) {
		host->set_error(ctx, "cannot clone %s: the workspace path is missing or too long", shown);
		goto fail;
	}
	if (ensure_libgit2() < 0) {
		host->set_error(ctx, "cannot clone %s: libgit2 failed to initialise", shown);
		goto fail;
	}
	if (host->cancel_requested(ctx)) {
		status = DBTD_STEP_CANCELED;
		goto fail;
	}

	if (commit != NULL && fetch_ref != NULL && fetch_ref[0] != '\0')
		host->log(ctx, "Cloning %s into %s for commit %s of %s (branch %s)", shown, dir,
		          commit, fetch_ref, branch ? branch : "?");
	else if (branch != NULL)
		host->log(ctx, "Cloning %s (branch %s) into %s", shown, branch, dir);
	else
		host->log(ctx, "Cloning %s (default branch) into %s", shown, dir);
	clock_gettime(CLOCK_MONOTONIC, &st.last_report);
	git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
	/* A PR's head branch may live only in a fork: clone the default branch. */
	opts.checkout_branch = commit != NULL && fetch_ref != NULL && fetch_ref[0] != '\0' ?
	                       NULL : branch;
	/* Fetch local repositories through the transport too: progress, counts, cancel. */
	opts.local = GIT_CLONE_NO_LOCAL;
	opts.checkout_opts.checkout_strategy = GIT_CHECKOUT_SAFE;
	opts.fetch_opts.callbacks.transfer_progress = on_transfer;
	opts.fetch_opts.callbacks.sideband_progress = on_sideband;
	opts.fetch_opts.callbacks.payload = &st;
	opts.fetch_opts.proxy_opts.type = GIT_PROXY_AUTO;
	rc = git_clone(&repo, repo_param, dir, &opts);
	if (rc < 0) {
		if (st.canceled || host->cancel_requested(ctx)) {
			host->log(ctx, "Clone of %s canceled", shown);
			status = DBTD_STEP_CANCELED;
			goto fail;
		}
		git_message(msg, sizeof(msg));
		/* The fetch worked but the branch is not among the remote's refs. */
		if (rc == GIT_ENOTFOUND && branch != NULL && st.have_stats &&
		    strstr(msg, "refs/remotes/") != NULL) {
			host->log(ctx, "libgit2: %s", msg);
			host->set_error(ctx, "branch \"%s\" not found in %s; push it or fix the "
			                "environment's branch", branch, shown);
		} else {
			host->set_error(ctx, "cannot clone %s: %s", shown, msg);
		}
		goto fail;
	}
	if (st.have_stats)
		host->log(ctx, "Received %u objects (%u local), %.1f KiB; resolved %u deltas",
		          st.stats.received_objects, st.stats.local_objects,
		          (double)st.stats.received_bytes / 1024.0, st.stats.indexed_deltas);
	if (commit != NULL) {
		rc = checkout_commit(host, ctx, repo, commit, fetch_ref, branch, shown, &st);
		if (rc == -2) {
			status = DBTD_STEP_CANCELED;
			goto fail;
		}
		if (rc < 0)
			goto fail;
	}

	if (git_repository_head(&head, repo) < 0 ||
	    git_reference_peel(&obj, head, GIT_OBJECT_COMMIT) < 0) {
		git_message(msg, sizeof(msg));
		host->set_error(ctx, "cloned %s but cannot resolve its HEAD commit: %s", shown, msg);
		goto fail;
	}
	git_oid_tostr(sha, sizeof(sha), git_object_id(obj));
	snprintf(shown_branch, sizeof(shown_branch), "%s",
	         branch != NULL ? branch : git_reference_shorthand(head));
	{
		const char *message = git_commit_message((git_commit *)obj);

		if (message == NULL)
			message = "";
		host->log(ctx, "Checked out %s (%.*s)", sha, (int)strcspn(message, "\r\n"), message);
	}
	if ((rc = host->set_output(ctx, "run.commit_sha", sha)) < 0) {
		host->set_error(ctx, "cannot record the commit of %s: %s", shown, strerror(-rc));
		goto fail;
	}

	if (subdir != NULL)
		rc = snprintf(project, sizeof(project), "%s/%s", dir, subdir);
	else
		rc = snprintf(project, sizeof(project), "%s", dir);
	if (rc < 0 || (size_t)rc >= sizeof(project)) {
		host->set_error(ctx, "project subdirectory \"%s\" is too long", subdir);
		goto fail;
	}
	if (subdir != NULL)
		snprintf(where, sizeof(where), "subdirectory \"%s\"", subdir);
	else
		snprintf(where, sizeof(where), "the repository root");
	if ((size_t)snprintf(yml, sizeof(yml), "%s/dbt_project.yml", project) >= sizeof(yml) ||
	    stat(yml, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		host->set_error(ctx, "no dbt_project.yml in %s of %s at %s; set the project's subdir "
		                "to the directory that holds dbt_project.yml", where, shown, shown_branch);
		goto fail;
	}
	/* A symlink in the repository must not lead the project out of the clone. */
	if (realpath(dir, real_dir) == NULL || realpath(project, real_project) == NULL ||
	    !path_within(real_project, real_dir)) {
		host->set_error(ctx, "project %s of %s at %s points outside the repository; "
		                "use a real directory for the project's subdir", where, shown, shown_branch);
		goto fail;
	}
	if ((rc = host->set_output(ctx, "run.project_dir", project)) < 0) {
		host->set_error(ctx, "cannot record the project directory of %s: %s", shown,
		                strerror(-rc));
		goto fail;
	}
	host->log(ctx, "dbt project directory: %s", project);
	status = DBTD_STEP_OK;
fail:
	git_object_free(obj);
	git_reference_free(head);
	git_repository_free(repo);
	return status;
}

/* Called once per run before the first git-clone step: start libgit2. */
static int git_clone_init(const struct dbtd_host *host, dbtd_step_ctx *ctx, void **data)
{
	*data = NULL;
	if (ensure_libgit2() < 0) {
		host->set_error(ctx, "libgit2 failed to initialise; check the libgit2 installation");
		return DBTD_STEP_FAILED;
	}
	return DBTD_STEP_OK;
}

/* Called once per run after the last step: release libgit2. */
static void git_clone_fini(void *data)
{
	(void)data;
	if (libgit2_ready) {
		git_libgit2_shutdown();
		libgit2_ready = 0;
	}
}

const struct dbtd_step_plugin dbtd_step_plugin_v1 = {
	DBTD_STEP_PLUGIN_INIT,
	.type = "git-clone",
	.description = "Clone the project's git repository at the environment's branch",
	.init = git_clone_init,
	.fini = git_clone_fini,
	.run = git_clone_run,
};
