/*
 * poll.c - polling projects' remotes: a timer per project, a child process
 * per poll that prints the remote's refs (libgit2 ls-remote), and the diff
 * against the refs seen last time turned into PR and Merge events.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>
#include <git2.h>

#include "log.h"
#include "names.h"
#include "pb.h"
#include "poll.h"
#include "runs.h"
#include "store.h"
#include "triggers.h"
#include "util.h"

/* A poll's output is refs: far less than this. */
#define OUTPUT_MAX (16u << 20)
/* A poll taking longer than this is killed (and retried next interval). */
#define POLL_TIMEOUT_S 120.

struct poller {
	struct pollers *owner;
	struct poller *next;
	uint64_t project_id;
	char *name;
	char *repo;
	unsigned interval;
	ev_timer timer;         /* next poll; also the poll's deadline while one runs */
	ev_io io;
	ev_child child;
	pid_t pid;              /* 0: no poll running */
	int fd;
	int eof, exited, status;
	char *out;
	size_t len, cap;
};

struct pollers {
	struct ev_loop *loop;
	struct store *store;
	struct runs *runs;
	struct poller *list;
};

/* ---- the child: list the remote's refs ---- */

/* True for the refs polling cares about. */
static int
wanted_ref(const char *name)
{
	const char *p;

	if (strncmp(name, "refs/heads/", 11) == 0)
		return 1;
	if (strncmp(name, "refs/pull/", 10) == 0)
		p = name + 10;
	else if (strncmp(name, "refs/merge-requests/", 20) == 0)
		p = name + 20;
	else
		return 0;
	if (*p < '1' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9')
		p++;
	return strcmp(p, "/head") == 0;
}

/* In the child: print "<sha> <ref>" lines of the remote at url to fd. */
static void __attribute__((noreturn))
child_main(const char *url, int fd)
{
	git_remote *remote = NULL;
	const git_remote_head **heads;
	git_remote_callbacks cb;
	size_t n;
	FILE *f = fdopen(fd, "w");
	const git_error *ge;
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (f == NULL)
		_exit(2);
	git_libgit2_init();
	git_remote_init_callbacks(&cb, GIT_REMOTE_CALLBACKS_VERSION);
	rc = git_remote_create_anonymous(&remote, NULL, url);
	if (rc == 0)
		rc = git_remote_connect(remote, GIT_DIRECTION_FETCH, &cb, NULL, NULL);
	if (rc == 0)
		rc = git_remote_ls(&heads, &n, remote);
	if (rc < 0) {
		ge = git_error_last();
		fprintf(f, "error %s\n", ge && ge->message ? ge->message : "unknown libgit2 error");
		fclose(f);
		_exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		char sha[GIT_OID_HEXSZ + 1];
		if (!wanted_ref(heads[i]->name) || strchr(heads[i]->name, '\n'))
			continue;
		git_oid_tostr(sha, sizeof(sha), &heads[i]->oid);
		fprintf(f, "%s %s\n", sha, heads[i]->name);
	}
	git_remote_disconnect(remote);
	_exit(fclose(f) == 0 ? 0 : 2);
}

/* ---- dbtd: comparing and triggering ---- */

/* The sha recorded for ref in refs, or NULL. */
static const char *
find_ref(Dbtd__KeyValue **refs, size_t n, const char *ref)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(refs[i]->key, ref) == 0)
			return refs[i]->value;
	return NULL;
}

/* A branch whose head is sha (a PR's source branch in the same repo), or NULL. */
static const char *
branch_at(Dbtd__KeyValue **refs, size_t n, const char *sha)
{
	for (size_t i = 0; i < n; i++)
		if (strncmp(refs[i]->key, "refs/heads/", 11) == 0 && strcmp(refs[i]->value, sha) == 0)
			return refs[i]->key + 11;
	return NULL;
}

/* Start the runs one new or moved ref asks for. */
static void
ref_moved(struct poller *pl, Dbtd__KeyValue **refs, size_t n, const char *ref,
          const char *sha)
{
	Dbtd__Triggered t = DBTD__TRIGGERED__INIT;
	struct repo_event ev = { .project_id = pl->project_id, .sha = sha };
	char by[200], head[64];

	snprintf(by, sizeof(by), "poll:%s", pl->name);
	ev.by = by;
	if (strncmp(ref, "refs/heads/", 11) == 0) {
		ev.trigger = DBTD__TRIGGER__TRIGGER_MERGE;
		ev.branch = ref + 11;
		ev.quiet = 1;
	} else {
		const char *num = ref + (ref[5] == 'p' ? 10 : 20);
		ev.trigger = DBTD__TRIGGER__TRIGGER_PR;
		ev.pr_number = (uint32_t)strtoul(num, NULL, 10);
		ev.fetch_ref = ref;
		ev.head_branch = branch_at(refs, n, sha);
		if (ev.head_branch == NULL) {
			snprintf(head, sizeof(head), "%s/%u", ref[5] == 'p' ? "pull" : "merge-requests",
			         ev.pr_number);
			ev.head_branch = head;
		}
	}
	if (triggers_repo_event(pl->owner->runs, &ev, &t) > 0) {
		for (size_t i = 0; i < t.n_runs; i++)
			log_info("poll of project \"%s\": %s %.12s -> run %llu of job \"%s\" (%s)",
			         pl->name, ref, sha, (unsigned long long)t.runs[i]->id, t.runs[i]->job,
			         trigger_json(ev.trigger));
	}
	triggers_free(&t);
}

/* Parse the child's output into KeyValue refs (owned); -EPROTO when garbled. */
static int
parse_refs(char *out, size_t len, Dbtd__KeyValue ***refs, size_t *n, char **err)
{
	size_t cap = 0;
	char *line = out, *end = out ? out + len : NULL;

	*refs = NULL;
	*n = 0;
	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		Dbtd__KeyValue *kv;
		if (nl == NULL)
			return -EPROTO;
		*nl = '\0';
		if (strncmp(line, "error ", 6) == 0) {
			*err = strdup(line + 6);
			return -EIO;
		}
		if (nl - line < 42 || line[40] != ' ')
			return -EPROTO;
		if (*n == cap) {
			Dbtd__KeyValue **g = realloc(*refs, (cap = cap ? cap * 2 : 32) * sizeof(*g));
			if (g == NULL)
				return -ENOMEM;
			*refs = g;
		}
		kv = malloc(sizeof(*kv));
		if (kv == NULL)
			return -ENOMEM;
		dbtd__key_value__init(kv);
		line[40] = '\0';
		kv->key = strdup(line + 41);
		kv->value = strdup(line);
		(*refs)[(*n)++] = kv;
		if (kv->key == NULL || kv->value == NULL)
			return -ENOMEM;
		line = nl + 1;
	}
	return 0;
}

/* Free parsed refs. */
static void
refs_free(Dbtd__KeyValue **refs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(refs[i]->key);
		free(refs[i]->value);
		free(refs[i]);
	}
	free(refs);
}

/* A finished poll: compare, trigger, record. */
static void
poll_done(struct poller *pl)
{
	struct pollers *owner = pl->owner;
	Dbtd__Project *proj = NULL;
	Dbtd__KeyValue **refs = NULL;
	size_t n = 0;
	char *err = NULL;
	int rc, first;

	rc = store_obj_get(owner->store, STORE_PROJECT, pl->project_id, (ProtobufCMessage **)&proj);
	if (rc < 0)
		goto out;
	if (WIFSIGNALED(pl->status))
		err = xasprintf("the poll was stopped by signal %d (timed out after %.0f s?)",
		                WTERMSIG(pl->status), POLL_TIMEOUT_S);
	else if ((rc = parse_refs(pl->out, pl->len, &refs, &n, &err)) < 0 &&
	         err == NULL)
		err = xasprintf("cannot read the poll's result: %s", strerror(-rc));
	else if (rc == 0 && (!WIFEXITED(pl->status) || WEXITSTATUS(pl->status) != 0))
		err = xasprintf("the poll exited with status %d", WEXITSTATUS(pl->status));
	if (err != NULL) {
		if (strcmp(proj->poll_error, err) != 0)
			log_warn("poll of project \"%s\" (%s) failed: %s", pl->name, pl->repo, err);
		pb_set_str(&proj->poll_error, err);
		proj->last_poll_ms = now_ms();
		store_obj_put(owner->store, STORE_PROJECT, proj->id, &proj->base);
		goto out;
	}
	first = proj->last_poll_ms == 0 || (proj->n_poll_refs == 0 && pb_str_set(proj->poll_error));
	/*
	 * Record what was seen before the runs it starts: their commit takes
	 * both, or neither (the next poll then sees the same changes again).
	 */
	{
		Dbtd__KeyValue **old_refs = proj->poll_refs;
		size_t old_n = proj->n_poll_refs;
		proj->poll_refs = refs;
		proj->n_poll_refs = n;
		proj->last_poll_ms = now_ms();
		pb_set_str(&proj->poll_error, "");
		rc = store_obj_put(owner->store, STORE_PROJECT, proj->id, &proj->base);
		if (rc < 0)
			log_warn("poll of project \"%s\": cannot record its refs: %s", pl->name,
			         store_strerror(rc));
		proj->poll_refs = old_refs;
		proj->n_poll_refs = old_n;
	}
	if (first) {
		log_info("poll of project \"%s\": first look at %s, %zu refs recorded; changes "
		         "from now on start runs", pl->name, pl->repo, n);
	} else {
		for (size_t i = 0; i < n; i++) {
			const char *old = find_ref(proj->poll_refs, proj->n_poll_refs, refs[i]->key);
			if (old == NULL || strcmp(old, refs[i]->value) != 0)
				ref_moved(pl, refs, n, refs[i]->key, refs[i]->value);
		}
	}
out:
	refs_free(refs, n);
	free(err);
	if (proj)
		dbtd__project__free_unpacked(proj, NULL);
}

/* Forget a poll's child and buffer; arm the next poll. */
static void
poll_reset(struct poller *pl)
{
	struct ev_loop *loop = pl->owner->loop;

	ev_io_stop(loop, &pl->io);
	ev_child_stop(loop, &pl->child);
	if (pl->fd >= 0)
		close(pl->fd);
	pl->fd = -1;
	pl->pid = 0;
	free(pl->out);
	pl->out = NULL;
	pl->len = pl->cap = 0;
	pl->eof = pl->exited = 0;
	ev_timer_stop(loop, &pl->timer);
	ev_timer_set(&pl->timer, (double)pl->interval, 0.);
	ev_timer_start(loop, &pl->timer);
}

/* Both the output's end and the child's exit are in: finish the poll. */
static void
maybe_done(struct poller *pl)
{
	if (!pl->eof || !pl->exited)
		return;
	poll_done(pl);
	poll_reset(pl);
}

/* The child's output. */
static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct poller *pl = w->data;
	ssize_t r;

	(void)revents;
	if (pl->len == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 16384;
		char *p = cap <= OUTPUT_MAX ? realloc(pl->out, cap + 1) : NULL;
		if (p == NULL) {
			kill(pl->pid, SIGKILL);
			pl->len = 0;
			pl->eof = 1;
			ev_io_stop(loop, w);
			maybe_done(pl);
			return;
		}
		pl->out = p;
		pl->cap = cap;
	}
	r = read(pl->fd, pl->out + pl->len, pl->cap - pl->len);
	if (r > 0) {
		pl->len += (size_t)r;
		return;
	}
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	pl->eof = 1;
	ev_io_stop(loop, w);
	maybe_done(pl);
}

/* The child exited. */
static void
child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct poller *pl = w->data;

	(void)revents;
	ev_child_stop(loop, w);
	pl->status = w->rstatus;
	pl->exited = 1;
	maybe_done(pl);
}

/* Start a poll now (the timer), or kill one that overran its deadline. */
static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct poller *pl = w->data;
	int fds[2];
	pid_t pid;

	(void)revents;
	if (pl->pid > 0) {
		log_warn("poll of project \"%s\" (%s) takes over %.0f s; killed", pl->name, pl->repo,
		         POLL_TIMEOUT_S);
		kill(pl->pid, SIGKILL);
		return;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		log_warn("poll of project \"%s\": no pipe: %s", pl->name, strerror(errno));
		poll_reset(pl);
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_warn("poll of project \"%s\": cannot fork: %s", pl->name, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		poll_reset(pl);
		return;
	}
	if (pid == 0) {
		/* Hold none of dbtd's sockets or files open (clients see hangups). */
		close_fds_from(3, fds[1]);
		child_main(pl->repo, fds[1]);
	}
	close(fds[1]);
	set_nonblock_cloexec(fds[0]);
	pl->pid = pid;
	pl->fd = fds[0];
	ev_io_set(&pl->io, pl->fd, EV_READ);
	ev_io_start(loop, &pl->io);
	ev_child_set(&pl->child, pid, 0);
	ev_child_start(loop, &pl->child);
	ev_timer_set(&pl->timer, POLL_TIMEOUT_S, 0.);
	ev_timer_start(loop, &pl->timer);
}

void
pollers_add(struct pollers *p, const Dbtd__Project *proj)
{
	struct poller *pl;

	if (p == NULL || proj->poll_seconds == 0)
		return;
	pl = calloc(1, sizeof(*pl));
	if (pl == NULL || (pl->name = strdup(proj->name)) == NULL ||
	    (pl->repo = strdup(proj->repo)) == NULL) {
		if (pl)
			free(pl->name);
		free(pl);
		log_err("cannot poll project \"%s\": out of memory", proj->name);
		return;
	}
	pl->owner = p;
	pl->project_id = proj->id;
	pl->interval = proj->poll_seconds;
	pl->fd = -1;
	ev_timer_init(&pl->timer, timer_cb, 0., 0.);
	ev_io_init(&pl->io, io_cb, -1, EV_READ);
	ev_child_init(&pl->child, child_cb, 0, 0);
	pl->timer.data = pl->io.data = pl->child.data = pl;
	/* First look soon, so the baseline is there before the first change. */
	ev_timer_set(&pl->timer, 0.05, 0.);
	ev_timer_start(p->loop, &pl->timer);
	pl->next = p->list;
	p->list = pl;
}

/* Stop and free one poller. */
static void
poller_free(struct pollers *p, struct poller *pl)
{
	if (pl->pid > 0) {
		kill(pl->pid, SIGKILL);
		waitpid(pl->pid, NULL, 0);
	}
	ev_timer_stop(p->loop, &pl->timer);
	ev_io_stop(p->loop, &pl->io);
	ev_child_stop(p->loop, &pl->child);
	if (pl->fd >= 0)
		close(pl->fd);
	free(pl->out);
	free(pl->name);
	free(pl->repo);
	free(pl);
}

void
pollers_remove(struct pollers *p, uint64_t project_id)
{
	if (p == NULL)
		return;
	for (struct poller **pp = &p->list; *pp; pp = &(*pp)->next)
		if ((*pp)->project_id == project_id) {
			struct poller *pl = *pp;
			*pp = pl->next;
			poller_free(p, pl);
			return;
		}
}

/* store_obj_list callback: poll a stored project that asks for it. */
static int
load_cb(void *arg, ProtobufCMessage *msg)
{
	pollers_add(arg, (Dbtd__Project *)msg);
	protobuf_c_message_free_unpacked(msg, NULL);
	return 0;
}

int
pollers_new(struct pollers **out, struct ev_loop *loop, struct runs *runs)
{
	struct pollers *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (p == NULL)
		return -ENOMEM;
	p->loop = loop;
	p->runs = runs;
	p->store = runs_store(runs);
	rc = store_obj_list(p->store, STORE_PROJECT, load_cb, p);
	if (rc < 0) {
		pollers_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void
pollers_free(struct pollers *p)
{
	if (p == NULL)
		return;
	while (p->list) {
		struct poller *pl = p->list;
		p->list = pl->next;
		poller_free(p, pl);
	}
	free(p);
}
