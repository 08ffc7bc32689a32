/*
 * test_forge.c - webhook deliveries to trigger decisions: each fixture's
 * decision and fields, malformed and oversized payloads, unknown events,
 * GitHub signatures, GitLab tokens and repository URL matching.
 *
 * The fixtures in tests/fixtures/webhooks/ follow the payloads GitHub
 * (docs.github.com, "Webhook events and payloads") and GitLab
 * (docs.gitlab.com, "Webhook events") document, trimmed of fields dbtd
 * does not read but with the real names and nesting.  One scenario runs
 * through them: on GitHub, alice's fork opens PR #42 (customer-ltv) on
 * octo-org/jaffle-shop and pushes a second commit, bob labels it, PR #41
 * (orders-refactor, same repository) is merged, main moves, customer-ltv
 * is deleted, v1.4.0 is tagged; on GitLab, alice's fork opens MR !7
 * (orders-cleanup) on analytics/jaffle-shop, pushes, it is merged and
 * main moves.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "forge.h"

#ifndef FIXTURE_DIR
#error "FIXTURE_DIR must name tests/fixtures/webhooks"
#endif

/* The shas in the fixtures. */
#define SHA_GH_HEAD1 "febdd4dee1aef790a73c332ca77638e89c515ede"
#define SHA_GH_HEAD2 "178c040fb76195151aba3d9f4ab33804b03b96c8"
#define SHA_GH_MERGE "14091a9f2461267ee7e02525b4f1f2923f1c9849"
#define SHA_GH_PUSH "3edf7b7c5b93fcce504fabbe9b442e100127b4d7"
#define SHA_GL_HEAD1 "f4ebf98049fef53267bb6274e74974f7b4384eb8"
#define SHA_GL_HEAD2 "e77de09899897bad63cc262af7713a605c8ea323"
#define SHA_GL_MERGE "5942833eb9e948cf56f428a7c521031575cfa60a"
#define SHA_GL_PUSH "812c0faa3995e97c76fd3865076e31e3215709fe"

/* The GitHub documentation's example of X-Hub-Signature-256. */
#define GH_DOC_SECRET "It's a Secret to Everybody"
#define GH_DOC_PAYLOAD "Hello, World!"
#define GH_DOC_SIG "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

/* A fixture file's bytes; *len gets its size. */
static char *
load(const char *name, size_t *len)
{
	char path[512];
	char *buf;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", FIXTURE_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Parse a fixture as delivered with (forge, event); it must succeed. */
static void
parse_fixture(const char *name, const char *forge, const char *event, struct forge_event *ev)
{
	char err[256];
	size_t len;
	char *buf = load(name, &len);
	int rc = forge_parse(forge, event, (const uint8_t *)buf, len, ev, err, sizeof(err));

	if (rc != 0)
		fail_msg("%s: %d %s", name, rc, err);
	assert_string_equal(err, "");
	free(buf);
}

/* Parse a string payload; returns forge_parse's result. */
static int
parse_text(const char *forge, const char *event, const char *text, struct forge_event *ev,
    char *err, size_t errlen)
{
	return forge_parse(forge, event, (const uint8_t *)text, strlen(text), ev, err, errlen);
}

/* ev has url among its repository URLs. */
static int
has_url(const struct forge_event *ev, const char *url)
{
	for (size_t i = 0; i < ev->n_repo_urls; i++)
		if (strcmp(ev->repo_urls[i], url) == 0)
			return 1;
	return 0;
}

/* Some repository URL of ev names project_repo. */
static int
matches(const struct forge_event *ev, const char *project_repo)
{
	for (size_t i = 0; i < ev->n_repo_urls; i++)
		if (forge_url_match(project_repo, ev->repo_urls[i]))
			return 1;
	return 0;
}

/* A failed parse leaves nothing to free. */
static void
assert_empty(const struct forge_event *ev)
{
	assert_int_equal(ev->kind, FORGE_IGNORED);
	assert_null(ev->ignored_why);
	assert_null(ev->action);
	assert_int_equal(ev->n_repo_urls, 0);
	assert_null(ev->repo_name);
	assert_null(ev->branch);
	assert_null(ev->sha);
	assert_null(ev->sender);
}

/* The five URLs of octo-org/jaffle-shop (html_url = svn_url: kept once). */
static void
assert_github_base_repo(const struct forge_event *ev)
{
	assert_string_equal(ev->repo_name, "octo-org/jaffle-shop");
	assert_int_equal(ev->n_repo_urls, 4);
	assert_true(has_url(ev, "https://github.com/octo-org/jaffle-shop.git"));
	assert_true(has_url(ev, "git@github.com:octo-org/jaffle-shop.git"));
	assert_true(has_url(ev, "https://github.com/octo-org/jaffle-shop"));
	assert_true(has_url(ev, "git://github.com/octo-org/jaffle-shop.git"));
}

/* The URLs of analytics/jaffle-shop, once each. */
static void
assert_gitlab_target_repo(const struct forge_event *ev)
{
	assert_string_equal(ev->repo_name, "analytics/jaffle-shop");
	assert_int_equal(ev->n_repo_urls, 3);
	assert_true(has_url(ev, "https://gitlab.example.com/analytics/jaffle-shop.git"));
	assert_true(has_url(ev, "git@gitlab.example.com:analytics/jaffle-shop.git"));
	assert_true(has_url(ev, "https://gitlab.example.com/analytics/jaffle-shop"));
}

/* A ping (sent when the webhook is created) starts nothing. */
static void
test_github_ping(void **state)
{
	struct forge_event ev;

	(void)state;
	parse_fixture("github_ping.json", "github", "ping", &ev);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why,
	    "ping: GitHub checks that the webhook is delivered; it does not start runs");
	assert_github_base_repo(&ev);
	assert_string_equal(ev.sender, "bob-data");
	assert_null(ev.action);
	forge_event_free(&ev);
}

/* A PR opened from a fork: a PR run of the base repository's main. */
static void
test_github_pr_opened(void **state)
{
	struct forge_event ev;

	(void)state;
	parse_fixture("github_pull_request_opened.json", "github", "pull_request", &ev);
	assert_int_equal(ev.kind, FORGE_PR);
	assert_null(ev.ignored_why);
	assert_string_equal(ev.action, "opened");
	assert_string_equal(ev.branch, "main");
	assert_string_equal(ev.head_branch, "customer-ltv");
	assert_string_equal(ev.sha, SHA_GH_HEAD1);
	assert_int_equal(ev.pr_number, 42);
	assert_string_equal(ev.head_ref, "refs/pull/42/head");
	assert_string_equal(ev.sender, "alice");
	assert_github_base_repo(&ev);
	/* the fork the PR comes from is not the project's repository */
	assert_true(matches(&ev, "git@github.com:octo-org/jaffle-shop.git"));
	assert_false(matches(&ev, "https://github.com/alice/jaffle-shop"));
	forge_event_free(&ev);
	assert_empty(&ev);
}

/* New commits on a PR: a PR run of the new head. */
static void
test_github_pr_synchronize(void **state)
{
	struct forge_event ev;

	(void)state;
	parse_fixture("github_pull_request_synchronize.json", "github", "pull_request", &ev);
	assert_int_equal(ev.kind, FORGE_PR);
	assert_string_equal(ev.action, "synchronize");
	assert_string_equal(ev.branch, "main");
	assert_string_equal(ev.sha, SHA_GH_HEAD2);
	assert_string_equal(ev.head_ref, "refs/pull/42/head");
	forge_event_free(&ev);
}

/* A label on a PR starts nothing, and says so. */
static void
test_github_pr_labeled(void **state)
{
	struct forge_event ev;

	(void)state;
	parse_fixture("github_pull_request_labeled.json", "github", "pull_request", &ev);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why, "pull_request action \"labeled\" does not start runs");
	assert_string_equal(ev.action, "labeled");
	assert_int_equal(ev.pr_number, 42);
	assert_string_equal(ev.sender, "bob-data");
	assert_null(ev.sha);
	assert_null(ev.branch);
	assert_null(ev.head_ref);
	forge_event_free(&ev);
}

/* Load a fixture as a JSON tree. */
static json_t *
load_json(const char *name)
{
	char path[512];
	json_error_t je;
	json_t *j;

	snprintf(path, sizeof(path), "%s/%s", FIXTURE_DIR, name);
	j = json_load_file(path, 0, &je);
	if (j == NULL)
		fail_msg("%s: %s", path, je.text);
	return j;
}

/* Set the member at a dotted path to v (a reference taken), or delete it. */
static void
edit(json_t *root, const char *path, json_t *v)
{
	char buf[128], *dot, *key = buf;
	json_t *obj = root;

	snprintf(buf, sizeof(buf), "%s", path);
	while ((dot = strchr(key, '.')) != NULL) {
		*dot = '\0';
		obj = json_object_get(obj, key);
		assert_non_null(obj);
		key = dot + 1;
	}
	if (v)
		assert_int_equal(json_object_set_new(obj, key, v), 0);
	else
		assert_int_equal(json_object_del(obj, key), 0);
}

/* Parse a JSON tree as a delivery. */
static int
parse_json(const char *forge, const char *event, json_t *j, struct forge_event *ev, char *err,
    size_t errlen)
{
	char *text = json_dumps(j, JSON_COMPACT);
	int rc;

	assert_non_null(text);
	rc = parse_text(forge, event, text, ev, err, errlen);
	free(text);
	return rc;
}

/* A merged PR: a merge run of the base branch at the merge commit. */
static void
test_github_pr_closed_merged(void **state)
{
	struct forge_event ev;
	char err[256];
	json_t *j;

	(void)state;
	parse_fixture("github_pull_request_closed_merged.json", "github", "pull_request", &ev);
	assert_int_equal(ev.kind, FORGE_MERGE);
	assert_string_equal(ev.action, "closed");
	assert_string_equal(ev.branch, "main");
	assert_string_equal(ev.head_branch, "orders-refactor");
	assert_string_equal(ev.sha, SHA_GH_MERGE);
	assert_int_equal(ev.pr_number, 41);
	assert_null(ev.head_ref);
	assert_github_base_repo(&ev);
	forge_event_free(&ev);

	/* the same PR closed without merging */
	j = load_json("github_pull_request_closed_merged.json");
	edit(j, "pull_request.merged", json_false());
	edit(j, "pull_request.merge_commit_sha", json_null());
	assert_int_equal(parse_json("github", "pull_request", j, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why,
	    "pull request #41 was closed without merging; it does not start runs");
	forge_event_free(&ev);
	json_decref(j);
}

/* A push to main: a merge run of main at the pushed commit. */
static void
test_github_push(void **state)
{
	struct forge_event ev;

	(void)state;
	parse_fixture("github_push.json", "github", "push", &ev);
	assert_int_equal(ev.kind, FORGE_MERGE);
	assert_null(ev.action);
	assert_string_equal(ev.branch, "main");
	assert_string_equal(ev.sha, SHA_GH_PUSH);
	assert_int_equal(ev.pr_number, 0);
	assert_null(ev.head_branch);
	assert_null(ev.head_ref);
	assert_string_equal(ev.sender, "alice");
	assert_github_base_repo(&ev);
	forge_event_free(&ev);
}

/* Deleting a branch starts nothing: by deleted:true or an all-zero after. */
static void
test_github_push_delete(void **state)
{
	struct forge_event ev;
	char err[256];
	json_t *j;

	(void)state;
	parse_fixture("github_push_delete.json", "github", "push", &ev);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why,
	    "push deletes branch \"customer-ltv\"; it does not start runs");
	assert_null(ev.sha);
	forge_event_free(&ev);

	j = load_json("github_push_delete.json");
	edit(j, "deleted", json_false());
	assert_int_equal(parse_json("github", "push", j, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	forge_event_free(&ev);
	json_decref(j);
}

/* Tags, and refs that are not branches, start nothing. */
static void
test_github_push_tag(void **state)
{
	struct forge_event ev;
	char err[256];
	json_t *j;

	(void)state;
	parse_fixture("github_push_tag.json", "github", "push", &ev);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why, "push of tag \"v1.4.0\" does not start runs");
	forge_event_free(&ev);

	j = load_json("github_push.json");
	edit(j, "ref", json_string("refs/notes/commits"));
	assert_int_equal(parse_json("github", "push", j, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why,
	    "push to \"refs/notes/commits\" is not to a branch; it does not start runs");
	forge_event_free(&ev);
	json_decref(j);
}

/* An MR opened from a fork: a PR run of the target project's main. */
static void
test_gitlab_mr_open(void **state)
{
	struct forge_event ev;

	(void)state;
	parse_fixture("gitlab_merge_request_open.json", "gitlab", "Merge Request Hook", &ev);
	assert_int_equal(ev.kind, FORGE_PR);
	assert_string_equal(ev.action, "open");
	assert_string_equal(ev.branch, "main");
	assert_string_equal(ev.head_branch, "orders-cleanup");
	assert_string_equal(ev.sha, SHA_GL_HEAD1);
	assert_int_equal(ev.pr_number, 7);
	assert_string_equal(ev.head_ref, "refs/merge-requests/7/head");
	assert_string_equal(ev.sender, "alice");
	assert_gitlab_target_repo(&ev);
	assert_true(matches(&ev, "https://gitlab.example.com/analytics/jaffle-shop"));
	assert_false(matches(&ev, "git@gitlab.example.com:alice/jaffle-shop.git"));
	forge_event_free(&ev);
}

/* An MR update with oldrev has new commits; without, it starts nothing. */
static void
test_gitlab_mr_update(void **state)
{
	struct forge_event ev;
	char err[256];
	json_t *j;

	(void)state;
	parse_fixture("gitlab_merge_request_update.json", "gitlab", "Merge Request Hook", &ev);
	assert_int_equal(ev.kind, FORGE_PR);
	assert_string_equal(ev.action, "update");
	assert_string_equal(ev.sha, SHA_GL_HEAD2);
	assert_string_equal(ev.head_ref, "refs/merge-requests/7/head");
	forge_event_free(&ev);

	j = load_json("gitlab_merge_request_update.json");
	edit(j, "object_attributes.oldrev", NULL);
	assert_int_equal(parse_json("gitlab", "Merge Request Hook", j, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why, "merge_request update without new commits "
	    "(no object_attributes.oldrev) does not start runs");
	forge_event_free(&ev);

	edit(j, "object_attributes.action", json_string("approved"));
	assert_int_equal(parse_json("gitlab", "Merge Request Hook", j, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why, "merge_request action \"approved\" does not start runs");
	forge_event_free(&ev);
	json_decref(j);
}

/* A merged MR: merge_commit_sha, or last_commit.id for a fast-forward merge. */
static void
test_gitlab_mr_merge(void **state)
{
	struct forge_event ev;
	char err[256];
	json_t *j;

	(void)state;
	parse_fixture("gitlab_merge_request_merge.json", "gitlab", "Merge Request Hook", &ev);
	assert_int_equal(ev.kind, FORGE_MERGE);
	assert_string_equal(ev.action, "merge");
	assert_string_equal(ev.branch, "main");
	assert_string_equal(ev.head_branch, "orders-cleanup");
	assert_string_equal(ev.sha, SHA_GL_MERGE);
	assert_null(ev.head_ref);
	assert_gitlab_target_repo(&ev);
	forge_event_free(&ev);

	j = load_json("gitlab_merge_request_merge.json");
	edit(j, "object_attributes.merge_commit_sha", json_null());
	assert_int_equal(parse_json("gitlab", "Merge Request Hook", j, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, FORGE_MERGE);
	assert_string_equal(ev.sha, SHA_GL_HEAD2);
	forge_event_free(&ev);
	json_decref(j);
}

/* A GitLab push: main at after (checkout_sha without it); deletions ignored. */
static void
test_gitlab_push(void **state)
{
	struct forge_event ev;
	char err[256];
	json_t *j;

	(void)state;
	parse_fixture("gitlab_push.json", "gitlab", "Push Hook", &ev);
	assert_int_equal(ev.kind, FORGE_MERGE);
	assert_string_equal(ev.branch, "main");
	assert_string_equal(ev.sha, SHA_GL_PUSH);
	assert_string_equal(ev.sender, "alice");
	assert_gitlab_target_repo(&ev);
	forge_event_free(&ev);

	j = load_json("gitlab_push.json");
	edit(j, "after", NULL);
	assert_int_equal(parse_json("gitlab", "Push Hook", j, &ev, err, sizeof(err)), 0);
	assert_string_equal(ev.sha, SHA_GL_PUSH);
	forge_event_free(&ev);

	edit(j, "after", json_string("0000000000000000000000000000000000000000"));
	edit(j, "checkout_sha", json_null());
	edit(j, "ref", json_string("refs/heads/orders-cleanup"));
	assert_int_equal(parse_json("gitlab", "Push Hook", j, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why,
	    "push deletes branch \"orders-cleanup\"; it does not start runs");
	forge_event_free(&ev);

	edit(j, "ref", json_string("refs/tags/v2.0.0"));
	assert_int_equal(parse_json("gitlab", "Push Hook", j, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_string_equal(ev.ignored_why, "push of tag \"v2.0.0\" does not start runs");
	forge_event_free(&ev);
	json_decref(j);
}

/* One broken field and the message that must name it. */
struct broken {
	const char *fixture, *forge, *event;
	const char *path;  /* NULL: the fixture as it is */
	const char *value; /* JSON text to set there; NULL: delete the field */
	const char *message;
};

/* Missing and wrong-typed fields are refused, naming the field. */
static void
test_broken_fields(void **state)
{
	static const struct broken cases[] = {
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "pull_request.head.sha", NULL, "pull_request.head.sha is missing" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "pull_request.head.sha", "42", "pull_request.head.sha is not a string" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "pull_request.head.sha", "\"febdd4dee1\"",
		  "pull_request.head.sha is not a 40-digit hex commit sha" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "pull_request.head.sha", "\"zzzdd4dee1aef790a73c332ca77638e89c515ede\"",
		  "pull_request.head.sha is not a 40-digit hex commit sha" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "pull_request.base.ref", NULL, "pull_request.base.ref is missing" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "pull_request.base.ref", "\"\"", "pull_request.base.ref is empty" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "pull_request.base.ref", "\"main..x\"",
		  "pull_request.base.ref is not a valid branch name: \"main..x\"" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "pull_request.head", "[]", "pull_request.head is not an object" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "pull_request", "\"x\"", "pull_request is not an object" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "number", "\"42\"", "number is not an integer" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "number", "0", "number is out of range" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "number", "4294967296", "number is out of range" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "action", NULL, "action is missing" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "action", "true", "action is not a string" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "repository", NULL, "repository is missing" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "repository.full_name", NULL, "repository.full_name is missing" },
		{ "github_pull_request_opened.json", "github", "pull_request",
		  "repository.clone_url", "5", "repository.clone_url is not a string" },
		{ "github_pull_request_closed_merged.json", "github", "pull_request",
		  "pull_request.merged", NULL, "pull_request.merged is missing" },
		{ "github_pull_request_closed_merged.json", "github", "pull_request",
		  "pull_request.merged", "\"yes\"", "pull_request.merged is not true or false" },
		{ "github_pull_request_closed_merged.json", "github", "pull_request",
		  "pull_request.merge_commit_sha", "null", "pull_request.merge_commit_sha is missing" },
		{ "github_push.json", "github", "push", "after", NULL, "after is missing" },
		{ "github_push.json", "github", "push", "after", "\"HEAD\"",
		  "after is not a 40-digit hex commit sha" },
		{ "github_push.json", "github", "push", "ref", "1", "ref is not a string" },
		{ "github_push.json", "github", "push", "ref", "\"refs/heads/-rf\"",
		  "ref is not a valid branch ref: \"refs/heads/-rf\"" },
		{ "github_push.json", "github", "push", "deleted", "\"no\"",
		  "deleted is not true or false" },
		/* a push delivered as a pull_request: the event does not fit */
		{ "github_push.json", "github", "pull_request", NULL, NULL, "action is missing" },
		{ "gitlab_merge_request_open.json", "gitlab", "Merge Request Hook",
		  "object_attributes.last_commit.id", NULL,
		  "object_attributes.last_commit.id is missing" },
		{ "gitlab_merge_request_open.json", "gitlab", "Merge Request Hook",
		  "object_attributes.iid", "7.5", "object_attributes.iid is not an integer" },
		{ "gitlab_merge_request_open.json", "gitlab", "Merge Request Hook",
		  "object_attributes.target_branch", "3",
		  "object_attributes.target_branch is not a string" },
		{ "gitlab_merge_request_open.json", "gitlab", "Merge Request Hook",
		  "object_attributes", NULL, "object_attributes.action is missing" },
		{ "gitlab_merge_request_open.json", "gitlab", "Merge Request Hook",
		  "project.path_with_namespace", NULL, "project.path_with_namespace is missing" },
		{ "gitlab_merge_request_open.json", "gitlab", "Merge Request Hook",
		  "object_attributes.oldrev", "1", "object_attributes.oldrev is not a string" },
		{ "gitlab_push.json", "gitlab", "Merge Request Hook", NULL, NULL,
		  "object_kind is \"push\", not \"merge_request\" as a Merge Request Hook has: "
		  "pass the X-Gitlab-Event header's value with --event" },
		{ "gitlab_push.json", "gitlab", "Push Hook", "after", "\"v1\"",
		  "after is not a 40-digit hex commit sha" },
	};
	struct forge_event ev;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct broken *c = &cases[i];
		json_t *j = load_json(c->fixture), *v = NULL;

		if (c->value) {
			v = json_loads(c->value, JSON_DECODE_ANY, NULL);
			assert_non_null(v);
		}
		if (c->path)
			edit(j, c->path, v);
		assert_int_equal(parse_json(c->forge, c->event, j, &ev, err, sizeof(err)), -EINVAL);
		if (strcmp(err, c->message) != 0)
			fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i, c->path, err, c->message);
		assert_empty(&ev);
		json_decref(j);
	}
}

/* What is not a JSON object is refused, saying what is wrong. */
static void
test_not_json(void **state)
{
	struct forge_event ev;
	char err[256];

	(void)state;
	assert_int_equal(parse_text("github", "push", "{\"ref\": ", &ev, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "payload is not valid JSON: unexpected token near end of file "
	    "at line 1 column 8");
	assert_int_equal(parse_text("github", "push", "ref=refs/heads/main", &ev, err, sizeof(err)),
	    -EINVAL);
	assert_non_null(strstr(err, "payload is not valid JSON: "));
	assert_int_equal(parse_text("github", "push", "[1, 2]", &ev, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "payload is not a JSON object");
	assert_int_equal(parse_text("gitlab", "Push Hook", "\"push\"", &ev, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "payload is not a JSON object");
	assert_int_equal(parse_text("github", "push", "", &ev, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "payload is empty: pass the delivery's body on stdin");
	/* a key twice would leave which one counts to the parser */
	assert_int_equal(parse_text("github", "push", "{\"ref\": \"a\", \"ref\": \"b\"}", &ev, err,
	    sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "duplicate object key"));
	/* NUL bytes, in the text or escaped in a string */
	assert_int_equal(forge_parse("github", "push", (const uint8_t *)"{}\0{}", 5, &ev, err,
	    sizeof(err)), -EINVAL);
	assert_int_equal(parse_text("github", "push", "{\"ref\": \"refs/heads/a\\u0000b\"}", &ev,
	    err, sizeof(err)), -EINVAL);
	assert_empty(&ev);
}

/* Event types and forges that are not handled say which ones are. */
static void
test_unknown_event(void **state)
{
	struct forge_event ev;
	char err[256];

	(void)state;
	assert_int_equal(parse_text("github", "issues", "{}", &ev, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "github event \"issues\" is not handled: dbtd handles "
	    "\"pull_request\", \"push\", \"ping\"");
	assert_int_equal(parse_text("gitlab", "Tag Push Hook", "{}", &ev, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "gitlab event \"Tag Push Hook\" is not handled: dbtd handles "
	    "\"Merge Request Hook\", \"Push Hook\"");
	/* GitLab's header value on GitHub, before the payload is even read */
	assert_int_equal(parse_text("github", "Push Hook", "not json", &ev, err, sizeof(err)),
	    -ENOTSUP);
	assert_int_equal(parse_text("bitbucket", "repo:push", "{}", &ev, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "forge \"bitbucket\" is not handled: dbtd takes webhooks from "
	    "github and gitlab");
	assert_int_equal(parse_text(NULL, NULL, "{}", &ev, err, sizeof(err)), -ENOTSUP);
	assert_int_equal(parse_text("github", "push\n\x01", "{}", &ev, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "github event \"push??\" is not handled: dbtd handles "
	    "\"pull_request\", \"push\", \"ping\"");
	/* errlen 0: no message, the same result */
	assert_int_equal(parse_text("github", "issues", "{}", &ev, NULL, 0), -ENOTSUP);
}

/* Limits: 25 MiB of payload, jansson's nesting depth, long values in messages. */
static void
test_limits(void **state)
{
	struct forge_event ev;
	char err[256], *big, *deep, *text;
	size_t depth = 3000, n;

	(void)state;
	/* exactly the cap is read; one byte more is refused unread */
	big = malloc(FORGE_PAYLOAD_MAX + 1);
	assert_non_null(big);
	memset(big, ' ', FORGE_PAYLOAD_MAX + 1);
	memcpy(big, "{}", 2);
	assert_int_equal(forge_parse("github", "push", (const uint8_t *)big, FORGE_PAYLOAD_MAX, &ev,
	    err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "repository is missing");
	assert_int_equal(forge_parse("github", "push", (const uint8_t *)big, FORGE_PAYLOAD_MAX + 1,
	    &ev, err, sizeof(err)), -ERANGE);
	assert_string_equal(err, "payload is 26214401 bytes: more than the 26214400 (25 MiB) "
	    "a forge sends");
	free(big);

	/* 8 million tiny values in 16 MiB: counted and refused before jansson
	 * builds a tree of them; just under the limit they are read */
	n = 16u << 20;
	big = malloc(n + 8);
	assert_non_null(big);
	memcpy(big, "{\"a\":[", 6);
	for (size_t i = 6; i + 2 < n; i += 2)
		memcpy(big + i, "1,", 2);
	strcpy(big + n - 2, "1]}");
	assert_int_equal(parse_text("github", "push", big, &ev, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "payload holds more than 500000 JSON values: more than a "
	    "forge sends");
	snprintf(big, n, "{\"a\": [");
	for (size_t i = 0, o = strlen(big); i < FORGE_VALUES_MAX - 6; i++, o += 2)
		memcpy(big + o, "1,", 2), big[o + 2] = '\0';
	strcat(big, "1], \"s\": \"x,:[{\\\",\"}");
	assert_int_equal(parse_text("github", "push", big, &ev, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "repository is missing");
	free(big);
	/* not an object: refused at its first byte */
	assert_int_equal(parse_text("github", "push", "  [1, 2]", &ev, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "payload is not a JSON object");

	/* 3000 nested arrays: refused by jansson's depth limit, not a crash */
	deep = malloc(2 * depth + 16);
	assert_non_null(deep);
	memcpy(deep, "{\"a\":", 5);
	memset(deep + 5, '[', depth);
	memset(deep + 5 + depth, ']', depth);
	memcpy(deep + 5 + 2 * depth, "}", 2);
	assert_int_equal(parse_text("github", "ping", deep, &ev, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "maximum parsing depth reached"));
	free(deep);

	/* a 1000-byte action is cut short in the message */
	text = malloc(2000);
	assert_non_null(text);
	strcpy(text, "{\"repository\": {\"full_name\": \"o/r\"}, \"number\": 1, \"action\": \"");
	n = strlen(text);
	memset(text + n, 'x', 1000);
	strcpy(text + n + 1000, "\"}");
	assert_int_equal(parse_text("github", "pull_request", text, &ev, err, sizeof(err)), 0);
	assert_int_equal(ev.kind, FORGE_IGNORED);
	assert_int_equal(strlen(ev.action), 1000);
	assert_true(strlen(ev.ignored_why) < 120);
	assert_non_null(strstr(ev.ignored_why, "xxx...\" does not start runs"));
	forge_event_free(&ev);
	free(text);

	/* a small err buffer gets a cut message, never an overflow */
	assert_int_equal(parse_text("github", "issues", "{}", &ev, err, 8), -ENOTSUP);
	assert_string_equal(err, "github ");
}

/* GitHub signatures: the documented example, and RFC 4231 test case 2. */
static void
test_github_signature_vectors(void **state)
{
	const char *rfc = "what do ya want for nothing?";
	char err[256];

	(void)state;
	assert_int_equal(forge_verify_github(GH_DOC_SECRET, (const uint8_t *)GH_DOC_PAYLOAD,
	    strlen(GH_DOC_PAYLOAD), GH_DOC_SIG, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(forge_verify_github(GH_DOC_SECRET, (const uint8_t *)GH_DOC_PAYLOAD,
	    strlen(GH_DOC_PAYLOAD),
	    " sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17\r\n", err,
	    sizeof(err)), 0);
	assert_int_equal(forge_verify_github("Jefe", (const uint8_t *)rfc, strlen(rfc),
	    "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", err,
	    sizeof(err)), 0);
}

/* Wrong, missing and malformed signatures are refused, each saying which. */
static void
test_github_signature_refused(void **state)
{
	static const char *const malformed[] = {
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e177",
		"sha256=g57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
		"757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
		"SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
		"sha256= 757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
	};
	const uint8_t *p = (const uint8_t *)GH_DOC_PAYLOAD;
	size_t n = strlen(GH_DOC_PAYLOAD);
	char err[256];

	(void)state;
	assert_int_equal(forge_verify_github("It's a secret to everybody", p, n, GH_DOC_SIG, err,
	    sizeof(err)), -EACCES);
	assert_string_equal(err, "signature does not match the project's webhook secret");
	assert_int_equal(forge_verify_github(GH_DOC_SECRET, (const uint8_t *)"Hello, World?", n,
	    GH_DOC_SIG, err, sizeof(err)), -EACCES);
	assert_int_equal(forge_verify_github(GH_DOC_SECRET, p, n - 1, GH_DOC_SIG, err, sizeof(err)),
	    -EACCES);
	assert_int_equal(forge_verify_github(NULL, p, n, GH_DOC_SIG, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "signature does not match the project's webhook secret");

	assert_int_equal(forge_verify_github(GH_DOC_SECRET, p, n, NULL, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "missing signature: GitHub sends X-Hub-Signature-256; "
	    "pass it with --signature");
	assert_int_equal(forge_verify_github(GH_DOC_SECRET, p, n, " \t", err, sizeof(err)), -EACCES);
	assert_string_equal(err, "missing signature: GitHub sends X-Hub-Signature-256; "
	    "pass it with --signature");

	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		assert_int_equal(forge_verify_github(GH_DOC_SECRET, p, n, malformed[i], err,
		    sizeof(err)), -EACCES);
		assert_string_equal(err, "malformed signature: expected sha256= and 64 hex digits, "
		    "as GitHub sends in X-Hub-Signature-256");
	}
	assert_int_equal(forge_verify_github(GH_DOC_SECRET, p, n,
	    "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", err, sizeof(err)), -EACCES);
	assert_string_equal(err, "malformed signature: sha1= is the old X-Hub-Signature; "
	    "pass X-Hub-Signature-256 (sha256=...) with --signature");
}

/*
 * The signature covers the bytes as delivered: github_push.json verifies
 * against its HMAC-SHA256 with the secret "s3cret" (computed with Python's
 * hmac module; edit the fixture and this value changes), and the same JSON
 * re-encoded, or one byte short, does not.
 */
static void
test_github_signature_fixture(void **state)
{
	static const char sig[] =
	    "sha256=e6b8f1d29b6fd6c330dc2ecaa76ad6826ec8d73391322be510298247e5f52307";
	char err[256], *again;
	size_t len;
	char *buf = load("github_push.json", &len);
	json_t *j = load_json("github_push.json");

	(void)state;
	assert_int_equal(forge_verify_github("s3cret", (const uint8_t *)buf, len, sig, err,
	    sizeof(err)), 0);
	assert_int_equal(forge_verify_github("s3cret", (const uint8_t *)buf, len - 1, sig, err,
	    sizeof(err)), -EACCES);
	again = json_dumps(j, JSON_INDENT(2));
	assert_non_null(again);
	assert_int_equal(forge_verify_github("s3cret", (const uint8_t *)again, strlen(again), sig,
	    err, sizeof(err)), -EACCES);
	assert_string_equal(err, "signature does not match the project's webhook secret");
	free(again);
	json_decref(j);
	free(buf);
}

/* GitLab's token: equal or not, whatever the lengths. */
static void
test_gitlab_token(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(forge_verify_gitlab("s3cret-token", "s3cret-token", err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(forge_verify_gitlab("s3cret-token", "s3cret-tokeN", err, sizeof(err)),
	    -EACCES);
	assert_string_equal(err, "token does not match the project's webhook secret");
	assert_int_equal(forge_verify_gitlab("s3cret-token", "s3cret", err, sizeof(err)), -EACCES);
	assert_int_equal(forge_verify_gitlab("s3cret", "s3cret-token", err, sizeof(err)), -EACCES);
	assert_int_equal(forge_verify_gitlab(NULL, "s3cret", err, sizeof(err)), -EACCES);
	assert_string_equal(err, "token does not match the project's webhook secret");
	assert_int_equal(forge_verify_gitlab("s3cret", NULL, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "missing token: GitLab sends X-Gitlab-Token; pass it with --token");
	assert_int_equal(forge_verify_gitlab("s3cret", "", err, sizeof(err)), -EACCES);
	assert_string_equal(err, "missing token: GitLab sends X-Gitlab-Token; pass it with --token");
}

/* Which project repositories (as users add them) match which payload URLs. */
static void
test_url_match(void **state)
{
	static const struct {
		const char *repo, *url;
		int same;
	} cases[] = {
		{ "https://github.com/octo-org/jaffle-shop", "https://github.com/octo-org/jaffle-shop.git", 1 },
		{ "git@github.com:octo-org/jaffle-shop.git", "https://github.com/octo-org/jaffle-shop", 1 },
		{ "ssh://git@github.com/octo-org/jaffle-shop", "git://github.com/octo-org/jaffle-shop.git", 1 },
		{ "ssh://git@github.com:22/octo-org/jaffle-shop/", "https://github.com/octo-org/jaffle-shop.git", 1 },
		{ "https://github.com/octo-org/jaffle-shop/", "git@github.com:octo-org/jaffle-shop.git", 1 },
		{ "https://github.com/octo-org/jaffle-shop.git/", "https://github.com/octo-org/jaffle-shop", 1 },
		{ "https://x-access-token:t0k@github.com/octo-org/jaffle-shop.git",
		  "https://github.com/octo-org/jaffle-shop", 1 },
		{ "https://GitHub.com/Octo-Org/Jaffle-Shop", "https://github.com/octo-org/jaffle-shop.git", 1 },
		{ "https://github.com/alice/jaffle-shop", "https://github.com/octo-org/jaffle-shop", 0 },
		{ "https://github.com/octo-org/jaffle-shop-old", "https://github.com/octo-org/jaffle-shop", 0 },
		{ "https://github.com/octo-org", "https://github.com/octo-org/jaffle-shop", 0 },
		{ "https://gitlab.com/octo-org/jaffle-shop", "https://github.com/octo-org/jaffle-shop", 0 },
		{ "https://gitlab.example.com/analytics/jaffle-shop",
		  "git@gitlab.example.com:analytics/jaffle-shop.git", 1 },
		{ "https://GITLAB.example.com/analytics/jaffle-shop",
		  "https://gitlab.example.com/analytics/jaffle-shop", 1 },
		{ "https://gitlab.example.com:8443/analytics/jaffle-shop.git",
		  "ssh://git@gitlab.example.com:2222/analytics/jaffle-shop.git", 1 },
		{ "https://gitlab.example.com/Analytics/jaffle-shop",
		  "https://gitlab.example.com/analytics/jaffle-shop", 0 },
		{ "https://gitlab.example.com/data/marts/jaffle-shop.git",
		  "git@gitlab.example.com:data/marts/jaffle-shop.git", 1 },
		{ "https://gitlab.example.com/data/marts/jaffle-shop",
		  "git@gitlab.example.com:data/jaffle-shop.git", 0 },
		{ "/srv/git/jaffle-shop.git", "file:///srv/git/jaffle-shop", 1 },
		{ "/srv/git/jaffle-shop/", "/srv/git/jaffle-shop", 1 },
		{ "/srv/git//jaffle-shop/./", "file:///srv/git/jaffle-shop.git/", 1 },
		{ "/srv/git/jaffle-shop/.git", "/srv/git/jaffle-shop", 1 },
		{ "file://localhost/srv/git/jaffle-shop", "/srv/git/jaffle-shop", 1 },
		{ "/srv/git/jaffle-shop", "/srv/git/other", 0 },
		{ "/srv/Git/jaffle-shop", "/srv/git/jaffle-shop", 0 },
		{ "/octo-org/jaffle-shop", "https://github.com/octo-org/jaffle-shop", 0 },
		{ "octo-org/jaffle-shop", "https://github.com/octo-org/jaffle-shop", 0 },
		{ "/srv/git/a:b", "/srv/git/a:b", 1 },
		{ "https://github.com/", "https://github.com", 0 },
		{ "", "", 0 },
		{ "https://github.com/octo-org/jaffle-shop", "", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = forge_url_match(cases[i].repo, cases[i].url);
		int back = forge_url_match(cases[i].url, cases[i].repo);

		if (got != cases[i].same || back != cases[i].same)
			fail_msg("case %zu: %s vs %s: %d/%d, want %d", i, cases[i].repo, cases[i].url,
			    got, back, cases[i].same);
	}
	assert_int_equal(forge_url_match(NULL, "https://github.com/octo-org/jaffle-shop"), 0);
	assert_int_equal(forge_url_match("https://github.com/octo-org/jaffle-shop", NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_github_ping),
		cmocka_unit_test(test_github_pr_opened),
		cmocka_unit_test(test_github_pr_synchronize),
		cmocka_unit_test(test_github_pr_labeled),
		cmocka_unit_test(test_github_pr_closed_merged),
		cmocka_unit_test(test_github_push),
		cmocka_unit_test(test_github_push_delete),
		cmocka_unit_test(test_github_push_tag),
		cmocka_unit_test(test_gitlab_mr_open),
		cmocka_unit_test(test_gitlab_mr_update),
		cmocka_unit_test(test_gitlab_mr_merge),
		cmocka_unit_test(test_gitlab_push),
		cmocka_unit_test(test_broken_fields),
		cmocka_unit_test(test_not_json),
		cmocka_unit_test(test_unknown_event),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_github_signature_vectors),
		cmocka_unit_test(test_github_signature_refused),
		cmocka_unit_test(test_github_signature_fixture),
		cmocka_unit_test(test_gitlab_token),
		cmocka_unit_test(test_url_match),
	};
	return cmocka_run_group_tests_name("forge", tests, NULL, NULL);
}
