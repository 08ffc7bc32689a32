/* forge.c - Git forge webhook deliveries to trigger decisions (see forge.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "forge.h"
#include "util.h"

/* Longest payload value quoted in a message, in bytes. */
#define SHOWN_MAX 64

/* One forge_parse call: the payload's root object, the event, the error. */
struct parse {
	json_t *root;
	struct forge_event *ev;
	char *err;
	size_t errlen;
};

/* An event type dbtd handles, and its parser. */
struct handler {
	const char *forge;
	const char *event;
	int (*fn)(struct parse *p);
};

/* Write a message into err (errlen bytes, may be 0); returns rc. */
static int __attribute__((format(printf, 4, 0)))
vsay(char *err, size_t errlen, int rc, const char *fmt, va_list ap)
{
	if (errlen)
		vsnprintf(err, errlen, fmt, ap);
	return rc;
}

/* vsay() with arguments. */
static int __attribute__((format(printf, 4, 5)))
say(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(err, errlen, rc, fmt, ap);
	va_end(ap);
	return rc;
}

/* Fail the parse with rc and a message. */
static int __attribute__((format(printf, 3, 4)))
fail(struct parse *p, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(p->err, p->errlen, rc, fmt, ap);
	va_end(ap);
	return rc;
}

/*
 * s made fit for a message in buf (at least SHOWN_MAX + 4 bytes): control
 * characters become '?', and so does any non-ASCII byte when ascii is set
 * (s may not be UTF-8); longer values are cut at a character boundary and
 * end in "...".
 */
static const char *
shown(const char *s, int ascii, char *buf)
{
	size_t n = 0;

	for (; s[n] && n < SHOWN_MAX; n++) {
		unsigned char c = (unsigned char)s[n];
		buf[n] = (c < 0x20 || c == 0x7f || (ascii && c >= 0x80)) ? '?' : (char)c;
	}
	if (s[n]) {
		while (n > 0 && !ascii && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--; /* do not split a UTF-8 sequence */
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

/* Copy s into *dst. */
static int
keep(struct parse *p, char **dst, const char *s)
{
	if ((*dst = strdup(s)) == NULL)
		return fail(p, -ENOMEM, "out of memory");
	return 0;
}

/* Decide FORGE_IGNORED, with the reason. */
static int __attribute__((format(printf, 2, 3)))
ignore(struct parse *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p->ev->ignored_why, fmt, ap);
	va_end(ap);
	if (n < 0) {
		p->ev->ignored_why = NULL;
		return fail(p, -ENOMEM, "out of memory");
	}
	p->ev->kind = FORGE_IGNORED;
	return 0;
}

/* The value at a dotted path ("a.b.c"); NULL when absent or null. */
static int
lookup(struct parse *p, const char *path, json_t **out)
{
	const char *c = path;
	json_t *cur = p->root;
	char key[64];

	for (;;) {
		size_t n = strcspn(c, ".");

		if (n >= sizeof(key))
			return fail(p, -EINVAL, "%s: field name too long", path);
		memcpy(key, c, n);
		key[n] = '\0';
		cur = json_object_get(cur, key);
		if (cur == NULL || json_is_null(cur)) {
			*out = NULL;
			return 0;
		}
		if (c[n] == '\0') {
			*out = cur;
			return 0;
		}
		if (!json_is_object(cur))
			return fail(p, -EINVAL, "%.*s is not an object", (int)(c + n - path), path);
		c += n + 1;
	}
}

/* A string that may be absent, null or "" (then *out is NULL). */
static int
opt_str(struct parse *p, const char *path, const char **out)
{
	json_t *v;
	int rc = lookup(p, path, &v);

	*out = NULL;
	if (rc)
		return rc;
	if (v && !json_is_string(v))
		return fail(p, -EINVAL, "%s is not a string", path);
	if (v && json_string_length(v) > 0)
		*out = json_string_value(v);
	return 0;
}

/* A string that must be there and not empty. */
static int
need_str(struct parse *p, const char *path, const char **out)
{
	json_t *v;
	int rc = lookup(p, path, &v);

	if (rc)
		return rc;
	if (v == NULL)
		return fail(p, -EINVAL, "%s is missing", path);
	if (!json_is_string(v))
		return fail(p, -EINVAL, "%s is not a string", path);
	if (json_string_length(v) == 0)
		return fail(p, -EINVAL, "%s is empty", path);
	*out = json_string_value(v);
	return 0;
}

/* A boolean that must be there. */
static int
need_bool(struct parse *p, const char *path, int *out)
{
	json_t *v;
	int rc = lookup(p, path, &v);

	*out = 0;
	if (rc)
		return rc;
	if (v == NULL)
		return fail(p, -EINVAL, "%s is missing", path);
	if (!json_is_boolean(v))
		return fail(p, -EINVAL, "%s is not true or false", path);
	*out = json_is_true(v);
	return 0;
}

/* A boolean that is false when absent. */
static int
opt_bool(struct parse *p, const char *path, int *out)
{
	json_t *v;
	int rc = lookup(p, path, &v);

	*out = 0;
	if (rc || v == NULL)
		return rc;
	if (!json_is_boolean(v))
		return fail(p, -EINVAL, "%s is not true or false", path);
	*out = json_is_true(v);
	return 0;
}

/* A request number: an integer from 1 to UINT_MAX. */
static int
need_number(struct parse *p, const char *path, unsigned *out)
{
	json_t *v;
	int rc = lookup(p, path, &v);

	if (rc)
		return rc;
	if (v == NULL)
		return fail(p, -EINVAL, "%s is missing", path);
	if (!json_is_integer(v))
		return fail(p, -EINVAL, "%s is not an integer", path);
	if (json_integer_value(v) < 1 || json_integer_value(v) > UINT_MAX)
		return fail(p, -EINVAL, "%s is out of range", path);
	*out = (unsigned)json_integer_value(v);
	return 0;
}

/* s is a full commit sha: 40 hex digits. */
static int
is_sha(const char *s)
{
	return strlen(s) == 40 && strspn(s, "0123456789abcdefABCDEF") == 40;
}

/* s is the all-zero sha a forge sends for a deleted ref. */
static int
is_zero_sha(const char *s)
{
	return strlen(s) == 40 && strspn(s, "0") == 40;
}

/* Keep the sha s (read from path) in *dst, lowercased. */
static int
keep_sha(struct parse *p, const char *path, const char *s, char **dst)
{
	if (!is_sha(s))
		return fail(p, -EINVAL, "%s is not a 40-digit hex commit sha", path);
	if (keep(p, dst, s) < 0)
		return -ENOMEM;
	for (char *c = *dst; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return 0;
}

/* The sha at path, which must be there. */
static int
need_sha(struct parse *p, const char *path, char **dst)
{
	const char *s;
	int rc = need_str(p, path, &s);

	return rc ? rc : keep_sha(p, path, s, dst);
}

/* b is a usable branch name (the gist of git check-ref-format --branch). */
static int
is_branch(const char *b)
{
	size_t n = strlen(b);

	if (n == 0 || n > 255 || b[0] == '-' || b[0] == '.' || b[0] == '/' ||
	    b[n - 1] == '/' || b[n - 1] == '.' || strcmp(b, "@") == 0 ||
	    (n >= 5 && strcmp(b + n - 5, ".lock") == 0) ||
	    strstr(b, "..") || strstr(b, "@{") || strstr(b, "//") || strstr(b, "/."))
		return 0;
	for (const unsigned char *c = (const unsigned char *)b; *c; c++)
		if (*c < 0x20 || *c == 0x7f || strchr(" ~^:?*[\\", *c))
			return 0;
	return 1;
}

/* Keep the branch name b (read from path) in *dst. */
static int
keep_branch(struct parse *p, const char *path, const char *b, char **dst)
{
	char buf[SHOWN_MAX + 4];

	if (!is_branch(b))
		return fail(p, -EINVAL, "%s is not a valid branch name: \"%s\"", path,
		    shown(b, 0, buf));
	return keep(p, dst, b);
}

/* The branch name at path, which must be there. */
static int
need_branch(struct parse *p, const char *path, char **dst)
{
	const char *s;
	int rc = need_str(p, path, &s);

	return rc ? rc : keep_branch(p, path, s, dst);
}

/* Add the URLs obj.<field> that are there, once each. */
static int
add_urls(struct parse *p, const char *obj, const char *const *fields, size_t n)
{
	struct forge_event *ev = p->ev;
	char path[64];
	const char *url;
	int rc;

	for (size_t i = 0; i < n; i++) {
		size_t j = 0;

		snprintf(path, sizeof(path), "%s.%s", obj, fields[i]);
		if ((rc = opt_str(p, path, &url)) < 0)
			return rc;
		if (url == NULL)
			continue;
		while (j < ev->n_repo_urls && strcmp(ev->repo_urls[j], url) != 0)
			j++;
		if (j < ev->n_repo_urls || ev->n_repo_urls == FORGE_URLS_MAX)
			continue;
		if ((rc = keep(p, &ev->repo_urls[ev->n_repo_urls], url)) < 0)
			return rc;
		ev->n_repo_urls++;
	}
	return 0;
}

/* The first of the string fields that is there, as the sender. */
static int
add_sender(struct parse *p, const char *const *paths, size_t n)
{
	const char *s = NULL;
	int rc;

	for (size_t i = 0; i < n && s == NULL; i++)
		if ((rc = opt_str(p, paths[i], &s)) < 0)
			return rc;
	return s ? keep(p, &p->ev->sender, s) : 0;
}

/* GitHub's repository (required unless for a ping) and sender. */
static int
github_repo(struct parse *p, int required)
{
	static const char *const urls[] = { "clone_url", "ssh_url", "html_url", "git_url", "svn_url" };
	static const char *const sender[] = { "sender.login" };
	const char *name;
	json_t *repo;
	int rc;

	if ((rc = lookup(p, "repository", &repo)) < 0)
		return rc;
	if (repo == NULL && required)
		return fail(p, -EINVAL, "repository is missing");
	if (repo && !json_is_object(repo))
		return fail(p, -EINVAL, "repository is not an object");
	if (repo && ((rc = need_str(p, "repository.full_name", &name)) < 0 ||
	    (rc = keep(p, &p->ev->repo_name, name)) < 0 ||
	    (rc = add_urls(p, "repository", urls, sizeof(urls) / sizeof(urls[0]))) < 0))
		return rc;
	return add_sender(p, sender, 1);
}

/* GitHub ping: sent when a webhook is created; nothing to run. */
static int
github_ping(struct parse *p)
{
	int rc = github_repo(p, 0);

	return rc ? rc : ignore(p, "ping: GitHub checks that the webhook is delivered; it does not start runs");
}

/* GitHub pull_request: opened/reopened/synchronize, or closed and merged. */
static int
github_pull_request(struct parse *p)
{
	struct forge_event *ev = p->ev;
	char buf[SHOWN_MAX + 4];
	const char *action;
	int rc, merged;

	if ((rc = github_repo(p, 1)) < 0 || (rc = need_str(p, "action", &action)) < 0 ||
	    (rc = keep(p, &ev->action, action)) < 0 ||
	    (rc = need_number(p, "number", &ev->pr_number)) < 0)
		return rc;
	if (!strcmp(action, "opened") || !strcmp(action, "reopened") ||
	    !strcmp(action, "synchronize")) {
		ev->kind = FORGE_PR;
		if ((rc = need_branch(p, "pull_request.base.ref", &ev->branch)) < 0 ||
		    (rc = need_branch(p, "pull_request.head.ref", &ev->head_branch)) < 0 ||
		    (rc = need_sha(p, "pull_request.head.sha", &ev->sha)) < 0)
			return rc;
		if ((ev->head_ref = xasprintf("refs/pull/%u/head", ev->pr_number)) == NULL)
			return fail(p, -ENOMEM, "out of memory");
		return 0;
	}
	if (strcmp(action, "closed") != 0)
		return ignore(p, "pull_request action \"%s\" does not start runs",
		    shown(action, 0, buf));
	if ((rc = need_bool(p, "pull_request.merged", &merged)) < 0)
		return rc;
	if (!merged)
		return ignore(p, "pull request #%u was closed without merging; it does not start runs",
		    ev->pr_number);
	ev->kind = FORGE_MERGE;
	if ((rc = need_branch(p, "pull_request.base.ref", &ev->branch)) < 0 ||
	    (rc = need_branch(p, "pull_request.head.ref", &ev->head_branch)) < 0 ||
	    (rc = need_sha(p, "pull_request.merge_commit_sha", &ev->sha)) < 0)
		return rc;
	return 0;
}

/* The branch a pushed ref names, or NULL after deciding FORGE_IGNORED. */
static int
pushed_branch(struct parse *p, const char **branch)
{
	char buf[SHOWN_MAX + 4];
	const char *ref;
	int rc;

	*branch = NULL;
	if ((rc = need_str(p, "ref", &ref)) < 0)
		return rc;
	if (strncmp(ref, "refs/tags/", 10) == 0)
		return ignore(p, "push of tag \"%s\" does not start runs", shown(ref + 10, 0, buf));
	if (strncmp(ref, "refs/heads/", 11) != 0)
		return ignore(p, "push to \"%s\" is not to a branch; it does not start runs",
		    shown(ref, 0, buf));
	if (!is_branch(ref + 11))
		return fail(p, -EINVAL, "ref is not a valid branch ref: \"%s\"", shown(ref, 0, buf));
	*branch = ref + 11;
	return 0;
}

/* GitHub push: a branch that moved (not a tag, not a deletion). */
static int
github_push(struct parse *p)
{
	struct forge_event *ev = p->ev;
	char buf[SHOWN_MAX + 4];
	const char *branch, *after;
	int rc, deleted;

	if ((rc = github_repo(p, 1)) < 0 || (rc = pushed_branch(p, &branch)) < 0 || branch == NULL)
		return rc;
	if ((rc = opt_bool(p, "deleted", &deleted)) < 0 || (rc = need_str(p, "after", &after)) < 0)
		return rc;
	if (deleted || is_zero_sha(after))
		return ignore(p, "push deletes branch \"%s\"; it does not start runs",
		    shown(branch, 0, buf));
	ev->kind = FORGE_MERGE;
	if ((rc = keep(p, &ev->branch, branch)) < 0 || (rc = keep_sha(p, "after", after, &ev->sha)) < 0)
		return rc;
	return 0;
}

/* GitLab's object_kind, when there, must be the event's. */
static int
gitlab_kind(struct parse *p, const char *want, const char *event)
{
	char buf[SHOWN_MAX + 4];
	const char *kind;
	int rc = opt_str(p, "object_kind", &kind);

	if (rc == 0 && kind && strcmp(kind, want) != 0)
		return fail(p, -EINVAL, "object_kind is \"%s\", not \"%s\" as a %s has: "
		    "pass the X-Gitlab-Event header's value with --event", shown(kind, 0, buf), want,
		    event);
	return rc;
}

/* GitLab's project and repository URLs, name and user. */
static int
gitlab_project(struct parse *p)
{
	static const char *const purls[] = { "git_http_url", "git_ssh_url", "web_url", "http_url",
		"ssh_url" };
	static const char *const rurls[] = { "url", "git_http_url", "git_ssh_url", "homepage" };
	static const char *const sender[] = { "user_username", "user.username", "user_name",
		"user.name" };
	const char *name;
	int rc;

	if ((rc = need_str(p, "project.path_with_namespace", &name)) < 0 ||
	    (rc = keep(p, &p->ev->repo_name, name)) < 0 ||
	    (rc = add_urls(p, "project", purls, sizeof(purls) / sizeof(purls[0]))) < 0 ||
	    (rc = add_urls(p, "repository", rurls, sizeof(rurls) / sizeof(rurls[0]))) < 0)
		return rc;
	return add_sender(p, sender, sizeof(sender) / sizeof(sender[0]));
}

/* GitLab Merge Request Hook: open/reopen/update with commits, or merge. */
static int
gitlab_merge_request(struct parse *p)
{
	struct forge_event *ev = p->ev;
	char buf[SHOWN_MAX + 4];
	const char *action, *oldrev, *merge_sha;
	int rc;

	if ((rc = gitlab_kind(p, "merge_request", "Merge Request Hook")) < 0 ||
	    (rc = gitlab_project(p)) < 0 ||
	    (rc = need_str(p, "object_attributes.action", &action)) < 0 ||
	    (rc = keep(p, &ev->action, action)) < 0 ||
	    (rc = need_number(p, "object_attributes.iid", &ev->pr_number)) < 0 ||
	    (rc = opt_str(p, "object_attributes.oldrev", &oldrev)) < 0)
		return rc;
	if (!strcmp(action, "open") || !strcmp(action, "reopen") ||
	    (!strcmp(action, "update") && oldrev)) {
		ev->kind = FORGE_PR;
		if ((rc = need_branch(p, "object_attributes.target_branch", &ev->branch)) < 0 ||
		    (rc = need_branch(p, "object_attributes.source_branch", &ev->head_branch)) < 0 ||
		    (rc = need_sha(p, "object_attributes.last_commit.id", &ev->sha)) < 0)
			return rc;
		ev->head_ref = xasprintf("refs/merge-requests/%u/head", ev->pr_number);
		return ev->head_ref ? 0 : fail(p, -ENOMEM, "out of memory");
	}
	if (!strcmp(action, "update"))
		return ignore(p, "merge_request update without new commits "
		    "(no object_attributes.oldrev) does not start runs");
	if (strcmp(action, "merge") != 0)
		return ignore(p, "merge_request action \"%s\" does not start runs",
		    shown(action, 0, buf));
	ev->kind = FORGE_MERGE;
	if ((rc = need_branch(p, "object_attributes.target_branch", &ev->branch)) < 0 ||
	    (rc = need_branch(p, "object_attributes.source_branch", &ev->head_branch)) < 0 ||
	    (rc = opt_str(p, "object_attributes.merge_commit_sha", &merge_sha)) < 0)
		return rc;
	if (merge_sha)
		return keep_sha(p, "object_attributes.merge_commit_sha", merge_sha, &ev->sha);
	return need_sha(p, "object_attributes.last_commit.id", &ev->sha);
}

/* GitLab Push Hook: a branch that moved (not a tag, not a deletion). */
static int
gitlab_push(struct parse *p)
{
	struct forge_event *ev = p->ev;
	char buf[SHOWN_MAX + 4];
	const char *branch, *sha, *field = "after";
	int rc;

	if ((rc = gitlab_kind(p, "push", "Push Hook")) < 0 || (rc = gitlab_project(p)) < 0 ||
	    (rc = pushed_branch(p, &branch)) < 0 || branch == NULL ||
	    (rc = opt_str(p, "after", &sha)) < 0)
		return rc;
	if (sha == NULL) {
		field = "checkout_sha";
		if ((rc = opt_str(p, field, &sha)) < 0)
			return rc;
		if (sha == NULL)
			return fail(p, -EINVAL, "after is missing");
	}
	if (is_zero_sha(sha))
		return ignore(p, "push deletes branch \"%s\"; it does not start runs",
		    shown(branch, 0, buf));
	ev->kind = FORGE_MERGE;
	if ((rc = keep(p, &ev->branch, branch)) < 0 || (rc = keep_sha(p, field, sha, &ev->sha)) < 0)
		return rc;
	return 0;
}

/* The event types dbtd handles. */
static const struct handler handlers[] = {
	{ "github", "pull_request", github_pull_request },
	{ "github", "push", github_push },
	{ "github", "ping", github_ping },
	{ "gitlab", "Merge Request Hook", gitlab_merge_request },
	{ "gitlab", "Push Hook", gitlab_push },
};
#define N_HANDLERS (sizeof(handlers) / sizeof(handlers[0]))

/* The handler of (forge, event), or -ENOTSUP naming those there are. */
static int
find_handler(struct parse *p, const char *forge, const char *event, const struct handler **out)
{
	char list[160] = "", buf[SHOWN_MAX + 4];
	int known_forge = 0;
	size_t used = 0;

	forge = forge ? forge : "";
	event = event ? event : "";
	for (size_t i = 0; i < N_HANDLERS; i++) {
		if (strcmp(handlers[i].forge, forge) != 0)
			continue;
		if (strcmp(handlers[i].event, event) == 0) {
			*out = &handlers[i];
			return 0;
		}
		known_forge = 1;
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s\"%s\"",
		    used ? ", " : "", handlers[i].event);
	}
	if (!known_forge)
		return fail(p, -ENOTSUP, "forge \"%s\" is not handled: dbtd takes webhooks from "
		    "github and gitlab", shown(forge, 1, buf));
	return fail(p, -ENOTSUP, "%s event \"%s\" is not handled: dbtd handles %s", forge,
	    shown(event, 1, buf), list);
}

/*
 * Before jansson builds a tree: the payload must open an object, and hold
 * at most FORGE_VALUES_MAX values (each ',', ':', '[' and '{' outside a
 * string starts one).  One pass over the bytes, nothing allocated.  0, or
 * -EINVAL with the reason.
 */
static int
payload_shape(struct parse *p, const uint8_t *s, size_t len)
{
	size_t i = 0, values = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	if (i < len && s[i] != '{' && !strchr("[\"-0123456789tfn", s[i]))
		return fail(p, -EINVAL, "payload is not valid JSON: it starts with byte 0x%02x "
		    "(a form-encoded delivery? give the webhook the content type "
		    "application/json)", s[i]);
	if (i == len || s[i] != '{')
		return fail(p, -EINVAL, "payload is not a JSON object");
	for (; i < len; i++) {
		switch (s[i]) {
		case '"':
			for (i++; i < len && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			break;
		case ',': case ':': case '[': case '{':
			if (++values > FORGE_VALUES_MAX)
				return fail(p, -EINVAL, "payload holds more than %d JSON values: more "
				    "than a forge sends", FORGE_VALUES_MAX);
			break;
		default:
			break;
		}
	}
	return 0;
}

int
forge_parse(const char *forge, const char *event, const uint8_t *payload, size_t len,
    struct forge_event *ev, char *err, size_t errlen)
{
	struct parse p = { .ev = ev, .err = err, .errlen = errlen };
	const struct handler *h = NULL;
	char buf[SHOWN_MAX + 4];
	json_error_t je;
	int rc;

	memset(ev, 0, sizeof(*ev));
	if (errlen)
		err[0] = '\0';
	if ((rc = find_handler(&p, forge, event, &h)) < 0)
		return rc;
	if (len > FORGE_PAYLOAD_MAX)
		return fail(&p, -ERANGE, "payload is %zu bytes: more than the %zu (25 MiB) "
		    "a forge sends", len, FORGE_PAYLOAD_MAX);
	if (len == 0 || payload == NULL)
		return fail(&p, -EINVAL, "payload is empty: pass the delivery's body on stdin");
	if ((rc = payload_shape(&p, payload, len)) < 0)
		return rc;
	p.root = json_loadb((const char *)payload, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (p.root == NULL) {
		if (json_error_code(&je) == json_error_out_of_memory)
			return fail(&p, -ENOMEM, "out of memory");
		return fail(&p, -EINVAL, "payload is not valid JSON: %s at line %d column %d",
		    shown(je.text, 1, buf), je.line, je.column);
	}
	if (!json_is_object(p.root))
		rc = fail(&p, -EINVAL, "payload is not a JSON object");
	else
		rc = h->fn(&p);
	json_decref(p.root);
	if (rc < 0)
		forge_event_free(ev);
	return rc;
}

void
forge_event_free(struct forge_event *ev)
{
	free(ev->ignored_why);
	free(ev->action);
	for (size_t i = 0; i < ev->n_repo_urls; i++)
		free(ev->repo_urls[i]);
	free(ev->repo_name);
	free(ev->branch);
	free(ev->head_branch);
	free(ev->sha);
	free(ev->head_ref);
	free(ev->sender);
	memset(ev, 0, sizeof(*ev));
}

/* Decode 2n hex digits into n bytes; -1 when one is not hex. */
static int
unhex(const char *s, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < 2 * n; i++) {
		int c = (unsigned char)s[i], v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v = c - 'A' + 10;
		else
			return -1;
		out[i / 2] = (unsigned char)(i % 2 ? (out[i / 2] << 4) | v : v);
	}
	return 0;
}

int
forge_verify_github(const char *secret, const uint8_t *payload, size_t len,
    const char *header, char *err, size_t errlen)
{
	static const char ws[] = " \t\r\n";
	unsigned char want[32], got[EVP_MAX_MD_SIZE];
	unsigned int gotlen = 0;
	const char *h = header ? header + strspn(header, ws) : "";
	size_t n = strlen(h);

	while (n > 0 && strchr(ws, h[n - 1]))
		n--;
	if (n == 0)
		return say(err, errlen, -EACCES, "missing signature: GitHub sends "
		    "X-Hub-Signature-256; pass it with --signature");
	if (strncmp(h, "sha1=", 5) == 0)
		return say(err, errlen, -EACCES, "malformed signature: sha1= is the old "
		    "X-Hub-Signature; pass X-Hub-Signature-256 (sha256=...) with --signature");
	if (n != 7 + 64 || strncmp(h, "sha256=", 7) != 0 || unhex(h + 7, want, 32) < 0)
		return say(err, errlen, -EACCES, "malformed signature: expected sha256= and 64 "
		    "hex digits, as GitHub sends in X-Hub-Signature-256");
	if (secret == NULL || strlen(secret) > INT_MAX)
		return say(err, errlen, -EACCES, "signature does not match the project's webhook secret");
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), payload ? payload : (const uint8_t *)"",
	    payload ? len : 0, got, &gotlen) == NULL || gotlen != sizeof(want))
		return say(err, errlen, -EIO, "cannot compute HMAC-SHA256: OpenSSL failed");
	if (CRYPTO_memcmp(want, got, sizeof(want)) != 0)
		return say(err, errlen, -EACCES, "signature does not match the project's webhook secret");
	return say(err, errlen, 0, "%s", "");
}

int
forge_verify_gitlab(const char *secret, const char *token, char *err, size_t errlen)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int alen = 0, blen = 0;

	if (token == NULL || token[0] == '\0')
		return say(err, errlen, -EACCES, "missing token: GitLab sends X-Gitlab-Token; "
		    "pass it with --token");
	if (secret == NULL)
		return say(err, errlen, -EACCES, "token does not match the project's webhook secret");
	if (EVP_Digest(token, strlen(token), a, &alen, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(secret, strlen(secret), b, &blen, EVP_sha256(), NULL) != 1 || alen != blen)
		return say(err, errlen, -EIO, "cannot compute SHA-256: OpenSSL failed");
	if (CRYPTO_memcmp(a, b, alen) != 0)
		return say(err, errlen, -EACCES, "token does not match the project's webhook secret");
	return say(err, errlen, 0, "%s", "");
}

/* Append path's components to out (at *o): no empty or "." ones. */
static void
append_path(char *out, size_t *o, const char *path, int rooted)
{
	while (*path) {
		size_t n = strcspn(path, "/");

		if (n > 0 && !(n == 1 && path[0] == '.')) {
			if (*o > 0 || rooted)
				out[(*o)++] = '/';
			memcpy(out + *o, path, n);
			*o += n;
		}
		path += n + (path[n] == '/');
	}
	out[*o] = '\0';
}

/*
 * A repository location in one comparable form: "//host/path" for network
 * URLs, the cleaned path for local ones; malloc'd, NULL when unusable.
 */
static char *
url_canon(const char *s)
{
	const char *host = NULL, *path = s, *sep = strstr(s, "://");
	size_t hostlen = 0, o = 0, n;
	char *out;

	if (strncmp(s, "file://", 7) == 0) {
		path = strchr(s + 7, '/'); /* file:///p, file://localhost/p */
		if (path == NULL)
			return NULL;
	} else if (sep && sep > s && isalpha((unsigned char)s[0]) &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") ==
	    (size_t)(sep - s)) {
		const char *auth = sep + 3, *end = auth + strcspn(auth, "/"), *at;

		while ((at = memchr(auth, '@', (size_t)(end - auth))) != NULL)
			auth = at + 1;
		host = auth;
		if (*auth == '[') {
			const char *rb = memchr(auth, ']', (size_t)(end - auth));
			hostlen = rb ? (size_t)(rb + 1 - auth) : 0;
		} else {
			hostlen = strcspn(auth, ":/");
		}
		path = end;
	} else {
		const char *colon = strchr(s, ':'), *slash = strchr(s, '/'), *at;

		if (colon && (slash == NULL || colon < slash)) { /* scp-like [user@]host:path */
			host = s;
			while ((at = memchr(host, '@', (size_t)(colon - host))) != NULL)
				host = at + 1;
			hostlen = (size_t)(colon - host);
			path = colon + 1;
		}
	}
	if (host && hostlen == 0)
		return NULL;
	if ((out = malloc(strlen(s) + 4)) == NULL)
		return NULL;
	if (host) {
		out[o++] = '/';
		out[o++] = '/';
		for (size_t i = 0; i < hostlen; i++)
			out[o++] = (char)tolower((unsigned char)host[i]);
	}
	n = o;
	append_path(out, &o, path, host != NULL || path[0] == '/');
	if (o >= n + 4 && strcmp(out + o - 4, ".git") == 0)
		out[o -= 4] = '\0';
	while (o > n && out[o - 1] == '/')
		out[--o] = '\0';
	if (o == n) { /* no path: not a repository */
		free(out);
		return NULL;
	}
	return out;
}

/* Paths on these hosts are case-insensitive. */
static int
host_ignores_case(const char *canon)
{
	return strncmp(canon, "//github.com/", 13) == 0 || strncmp(canon, "//gitlab.com/", 13) == 0;
}

int
forge_url_match(const char *project_repo, const char *url)
{
	char *a, *b;
	int same = 0;

	if (project_repo == NULL || url == NULL)
		return 0;
	a = url_canon(project_repo);
	b = url_canon(url);
	if (a && b)
		same = host_ignores_case(a) ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0;
	free(a);
	free(b);
	return same;
}
