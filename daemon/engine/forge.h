/*
 * forge.h - a Git forge webhook delivery (GitHub, GitLab) turned into a
 * trigger decision: does it start PR runs, merge runs, or nothing; for
 * which repository, branch and commit.  Also the delivery's authenticity
 * (GitHub's HMAC signature, GitLab's secret token) and matching a
 * project's repository against the URLs of a payload.
 *
 * Nothing here touches the file system, the network or the store: the
 * caller (the webhook request handler) picks the project, checks the
 * secret, then creates runs from the decision.
 */
#ifndef DBTD_FORGE_H
#define DBTD_FORGE_H

#include <stddef.h>
#include <stdint.h>

/* Largest payload forge_parse accepts: GitHub caps deliveries at 25 MB. */
#define FORGE_PAYLOAD_MAX ((size_t)25 << 20)

/*
 * Most JSON values (objects, arrays, members, elements) a payload may hold:
 * a push of 2,048 commits is about 100,000.  Counted before jansson builds
 * the tree, whose nodes cost ~40 bytes each (8 million tiny values in 16
 * MiB would take 320 MB and a second of dbtd's loop).
 */
#define FORGE_VALUES_MAX 500000

/* Most repository URLs one payload yields (GitLab's nine, with room). */
#define FORGE_URLS_MAX 12

/* What a delivery asks dbtd to do. */
enum forge_kind {
	FORGE_IGNORED = 0, /* nothing: ignored_why says why */
	FORGE_PR,          /* a pull/merge request was opened or got new commits */
	FORGE_MERGE,       /* commits landed on a branch (push, merged request) */
};

/*
 * struct forge_event - one parsed delivery.  Every string is malloc'd and
 * owned by the struct; forge_event_free() frees them all.  Fields that do
 * not apply are NULL (or 0).
 *
 * kind         the decision.
 * ignored_why  FORGE_IGNORED only: why, in words for the user, e.g.
 *              `pull_request action "labeled" does not start runs`.
 * action       the request's action (GitHub's `action`, GitLab's
 *              object_attributes.action); NULL for pushes and pings.
 * repo_urls    every URL of the repository in the payload, to match a
 *              project with forge_url_match(); n_repo_urls of them, no
 *              duplicates.  For a pull/merge request it is the base
 *              (target) repository, never a fork the request comes from.
 * repo_name    the repository's full name for messages ("owner/repo",
 *              GitHub full_name, GitLab path_with_namespace).
 * branch       FORGE_PR: the base branch the request is against;
 *              FORGE_MERGE: the branch that moved.
 * head_branch  the request's source branch (FORGE_PR, and FORGE_MERGE of
 *              a merged request).
 * sha          FORGE_PR: the request's head commit; FORGE_MERGE: the commit
 *              now at the tip of branch.  40 lowercase hex digits.
 * pr_number    the request's number (GitHub number, GitLab iid); 0 when the
 *              delivery is not about a request.
 * head_ref     FORGE_PR only: the ref of the base repository that holds the
 *              head commit, also for a request from a fork:
 *              refs/pull/N/head (GitHub), refs/merge-requests/N/head
 *              (GitLab).
 * sender       who caused the delivery (GitHub sender.login, GitLab
 *              user_username / user.username / user_name); may be NULL.
 */
struct forge_event {
	enum forge_kind kind;
	char *ignored_why;
	char *action;
	char *repo_urls[FORGE_URLS_MAX];
	size_t n_repo_urls;
	char *repo_name;
	char *branch;
	char *head_branch;
	char *sha;
	unsigned pr_number;
	char *head_ref;
	char *sender;
};

/*
 * forge_parse - decide what the webhook delivery `payload` (len bytes of
 * JSON, as the forge sent it) of type `event` from `forge` asks for.
 *
 * forge is "github" or "gitlab".  event is the event header's value:
 * GitHub's X-GitHub-Event ("pull_request", "push", "ping"), GitLab's
 * X-Gitlab-Event ("Merge Request Hook", "Push Hook").
 *
 * Decisions:
 *   GitHub pull_request opened, reopened, synchronize     FORGE_PR
 *   GitHub pull_request closed with merged true           FORGE_MERGE into
 *          base.ref at merge_commit_sha
 *   GitHub push to refs/heads/B (not a deletion)          FORGE_MERGE
 *   GitLab Merge Request Hook open, reopen, or update
 *          with object_attributes.oldrev (new commits)    FORGE_PR
 *   GitLab Merge Request Hook merge                       FORGE_MERGE into
 *          target_branch at merge_commit_sha (last_commit.id without one)
 *   GitLab Push Hook to refs/heads/B (not a deletion)     FORGE_MERGE
 *   anything else (ping, other actions, a request closed without merging,
 *   tag pushes, branch deletions)                         FORGE_IGNORED
 * A GitLab payload whose object_kind does not fit the event is malformed.
 *
 * ev is overwritten (not freed first).  On success the caller frees it
 * with forge_event_free(); on failure it is left empty.  err (errlen
 * bytes, may be 0) receives a sentence for the user on failure and "" on
 * success.
 *
 * Returns 0, or a negative errno:
 *   -EINVAL   not JSON, not an object, more than FORGE_VALUES_MAX values,
 *             nested deeper than jansson parses,
 *             or a field the decision needs is missing or malformed; the
 *             message names it ("pull_request.head.sha is missing",
 *             "after is not a 40-digit hex commit sha")
 *   -ENOTSUP  a forge or event type not handled (the message lists those
 *             that are)
 *   -ERANGE   payload larger than FORGE_PAYLOAD_MAX
 *   -ENOMEM   out of memory
 * Any bytes are safe input: it never aborts, and reads only len bytes.
 */
int forge_parse(const char *forge, const char *event, const uint8_t *payload, size_t len,
    struct forge_event *ev, char *err, size_t errlen);

/* forge_event_free - free ev's strings and zero it; safe on a zeroed ev. */
void forge_event_free(struct forge_event *ev);

/*
 * forge_verify_github - check GitHub's X-Hub-Signature-256 header value
 * `header` ("sha256=" and 64 hex digits; white space around it is ignored)
 * against the HMAC-SHA256 of the raw payload keyed with the project's
 * webhook secret.  The comparison takes the same time wherever the first
 * difference is.
 *
 * Returns 0 when it matches, else -EACCES with err saying which of:
 * "missing signature: ..." (header NULL or empty), "malformed signature:
 * ..." (also for the old sha1= X-Hub-Signature), "signature does not match
 * the project's webhook secret" (also when secret is NULL), or -EIO when
 * OpenSSL cannot compute the HMAC.
 */
int forge_verify_github(const char *secret, const uint8_t *payload, size_t len,
    const char *header, char *err, size_t errlen);

/*
 * forge_verify_gitlab - check GitLab's X-Gitlab-Token header value `token`
 * against the project's webhook secret.  Both are hashed (SHA-256) and the
 * digests compared in constant time, so neither the place of the first
 * difference nor a length mismatch shows in the timing of the comparison.
 *
 * Returns 0 when they are equal, else -EACCES with err "missing token: ..."
 * (token NULL or empty) or "token does not match the project's webhook
 * secret" (also when secret is NULL), or -EIO when OpenSSL fails.
 */
int forge_verify_gitlab(const char *secret, const char *token, char *err, size_t errlen);

/*
 * forge_url_match - 1 when project_repo (a project's repository as the
 * user added it) and url (one of forge_event.repo_urls) name the same
 * repository, else 0 (also for NULL or empty arguments).
 *
 * Network forms (https://, http://, ssh://, git://, scp-like
 * [user@]host:path) compare by host, lowercased, and path, without the
 * scheme, user, port, leading and trailing '/' and a trailing ".git";
 * paths on github.com and gitlab.com compare case-insensitively.  So
 * https://github.com/Owner/Repo, git@github.com:owner/repo.git and
 * ssh://git@github.com:22/owner/repo/ all match.
 * Local forms (a path, file:///path) compare as paths with repeated and
 * trailing '/', "." components and a trailing ".git" (or "/.git") removed;
 * they never match a network URL.  The file system is not consulted.
 */
int forge_url_match(const char *project_repo, const char *url);

#endif /* DBTD_FORGE_H */
