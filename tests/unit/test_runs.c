/*
 * test_runs.c - the run engine (engine/runs.c) with a fake runner: runs
 * created, started, finished and canceled over a real store and a real
 * libev loop with dbtd's group commit, and what happens when a commit
 * fails (a full disk or a full map, injected with store_fail_commits).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "frame.h"
#include "names.h"
#include "runner.h"
#include "runs.h"
#include "store.h"
#include "logrec.h"
#include "store_format.h"
#include "util.h"

/* What the fake runner does (set before a run starts; the fork inherits it). */
enum fake_mode {
	FAKE_COMPLETE,   /* every step started and completed */
	FAKE_HANG,       /* step 1 started, then wait for a signal */
	FAKE_GATE,       /* step 1 started; the rest once the gate file exists */
	FAKE_LOGS,       /* step 1 logs 2 lines, 3 once the gate exists, 1 after gate2 */
};
static enum fake_mode fake_mode;
static char gate[256], gate2[256];

/* Send a chunk of n log lines of step 1 ("line <first>" ...). */
static void
fake_log(int fd, unsigned first, unsigned n)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__LogData ld = DBTD__LOG_DATA__INIT;
	struct logbuf b = { 0 };
	char text[32];

	for (unsigned i = first; i < first + n; i++) {
		snprintf(text, sizeof(text), "line %u", i);
		if (logbuf_add(&b, now_ms(), 1, text, strlen(text)) < 0)
			_exit(3);
	}
	ld.step = 1;
	ld.data.data = b.data;
	ld.data.len = b.len;
	ev.body_case = DBTD__RUNNER_EVENT__BODY_LOG;
	ev.log = &ld;
	if (frame_send(fd, &ev.base) < 0)
		_exit(3);
	logbuf_free(&b);
}

/* Report one step event of the fake runner. */
static void
fake_step(int fd, int started, uint32_t index)
{
	Dbtd__RunnerEvent ev = DBTD__RUNNER_EVENT__INIT;
	Dbtd__Step s = DBTD__STEP__INIT;

	s.index = index;
	if (started) {
		s.started_at_ms = now_ms();
		ev.body_case = DBTD__RUNNER_EVENT__BODY_STEP_STARTED;
		ev.step_started = &s;
	} else {
		s.status = DBTD__STEP_STATUS__STEP_COMPLETED;
		s.finished_at_ms = now_ms();
		ev.body_case = DBTD__RUNNER_EVENT__BODY_STEP_FINISHED;
		ev.step_finished = &s;
	}
	if (frame_send(fd, &ev.base) < 0)
		_exit(3);
}

/* The runner the engine forks: reports the steps, runs nothing. */
static void __attribute__((noreturn))
fake_runner(const struct runner_spec *spec)
{
	size_t n = spec->run->n_steps;

	signal(SIGINT, SIG_DFL);
	fake_step(spec->fd, 1, 1);
	if (fake_mode == FAKE_HANG)
		for (;;)
			pause();
	if (fake_mode == FAKE_GATE)
		while (access(gate, F_OK) != 0)
			usleep(10000);
	if (fake_mode == FAKE_LOGS) {
		fake_log(spec->fd, 1, 2);
		while (access(gate, F_OK) != 0)
			usleep(10000);
		fake_log(spec->fd, 3, 3);
		while (access(gate2, F_OK) != 0)
			usleep(10000);
		fake_log(spec->fd, 6, 1);
	}
	fake_step(spec->fd, 0, 1);
	for (uint32_t i = 2; i <= n; i++) {
		fake_step(spec->fd, 1, i);
		fake_step(spec->fd, 0, i);
	}
	_exit(0);
}

/* What one observer of a run heard. */
struct heard {
	struct store *st;
	Dbtd__RunStatus states[64];
	size_t n_states;
	int stored_mismatch;     /* a state heard that the store did not hold */
	int unsaved;
	enum err_kind unsaved_kind;
	char unsaved_msg[512];
	Dbtd__RunStatus unsaved_status;
};

static void
heard_state(void *arg, const Dbtd__Run *run)
{
	struct heard *h = arg;
	Dbtd__Run *stored = NULL;

	if (h->n_states < 64)
		h->states[h->n_states++] = run->status;
	/* told only of what is committed: an end heard is the end stored (an
	 * earlier state may have been followed by a later one in one commit) */
	if (store_run_get(h->st, run->id, &stored) < 0 ||
	    (runs_is_final(run->status) && stored->status != run->status))
		h->stored_mismatch = 1;
	if (stored)
		dbtd__run__free_unpacked(stored, NULL);
}

static void
heard_unsaved(void *arg, const Dbtd__Run *run, const struct err *e)
{
	struct heard *h = arg;

	h->unsaved++;
	h->unsaved_kind = e->kind;
	h->unsaved_status = run->status;
	snprintf(h->unsaved_msg, sizeof(h->unsaved_msg), "%s", e->msg);
}

static const struct run_observer_ops heard_ops = {
	.state = heard_state, .unsaved = heard_unsaved,
};

/* One engine over a store in a temporary directory. */
struct fixture {
	char dir[64];
	struct ev_loop *loop;
	struct store *st;
	struct runs *runs;
	ev_prepare commit;
};

/* dbtd's group commit: before the loop waits, commit what is due. */
static void
commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct fixture *f = w->data;

	(void)loop; (void)revents;
	if (store_commit_due(f->st, now_ms()) >= 0)
		store_commit(f->st);
}

/* The store's commit hook, as dbtd sets it: the engine hears every commit. */
static void
committed(void *arg, int rc)
{
	struct fixture *f = arg;

	runs_committed(f->runs, rc);
}

/* Add a named object to the store (group mode: committed at once). */
static uint64_t
add(struct fixture *f, enum store_kind kind, ProtobufCMessage *msg, const char *name,
    uint64_t *idp)
{
	assert_int_equal(store_obj_add(f->st, kind, msg, name, idp), 0);
	assert_int_equal(store_commit(f->st), 0);
	return *idp;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	Dbtd__Project p = DBTD__PROJECT__INIT;
	Dbtd__Environment e = DBTD__ENVIRONMENT__INIT;
	Dbtd__Job j = DBTD__JOB__INIT;
	char work[128], blob[128];
	struct runs_config cfg = { 0 };

	assert_non_null(f);
	strcpy(f->dir, "/tmp/dbtd-test-runs-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(gate, sizeof(gate), "%s/gate", f->dir);
	snprintf(gate2, sizeof(gate2), "%s/gate2", f->dir);
	snprintf(work, sizeof(work), "%s/work", f->dir);
	snprintf(blob, sizeof(blob), "%s/blobs", f->dir);
	assert_int_equal(mkdir(work, 0700), 0);
	assert_int_equal(mkdir(blob, 0700), 0);
	f->loop = EV_DEFAULT; /* ev_child needs the default loop */
	assert_int_equal(store_open(&f->st, f->dir, NULL), 0);
	store_set_group_commit(f->st, 1);
	p.name = (char *)"shop";
	p.repo = (char *)"/nonexistent";
	add(f, STORE_PROJECT, &p.base, p.name, &p.id);
	e.name = (char *)"prod";
	e.project_id = p.id;
	e.project = p.name;
	e.branch = (char *)"main";
	add(f, STORE_ENVIRONMENT, &e.base, e.name, &e.id);
	j.env_id = e.id;
	j.environment = e.name;
	j.name = (char *)"nightly";
	add(f, STORE_JOB, &j.base, j.name, &j.id);
	j.id = 0;
	j.name = (char *)"hourly";
	add(f, STORE_JOB, &j.base, j.name, &j.id);
	cfg.loop = f->loop;
	cfg.store = f->st;
	cfg.work_dir = work;
	cfg.blob_dir = blob;
	cfg.slots = 1;
	cfg.runner = fake_runner;
	assert_int_equal(runs_new(&f->runs, &cfg), 0);
	store_on_commit(f->st, committed, f);
	ev_prepare_init(&f->commit, commit_cb);
	f->commit.data = f;
	ev_set_priority(&f->commit, EV_MAXPRI);
	ev_prepare_start(f->loop, &f->commit);
	fake_mode = FAKE_COMPLETE;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	runs_shutdown(f->runs); /* as dbtd stops: its last states committed, then unhooked */
	store_commit(f->st);
	store_on_commit(f->st, NULL, NULL);
	runs_free(f->runs);
	ev_prepare_stop(f->loop, &f->commit);
	store_close(f->st);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* The stored status of run id (-1 when it cannot be read). */
static int
stored_status(struct fixture *f, uint64_t id)
{
	Dbtd__Run *run = NULL;
	int s;

	if (store_run_get(f->st, id, &run) < 0)
		return -1;
	s = run->status;
	dbtd__run__free_unpacked(run, NULL);
	return s;
}

/* Turn the loop until done(arg) or 20 s passed; whether done. */
static int
run_until(struct fixture *f, int (*done)(void *arg), void *arg)
{
	int64_t end = now_ms() + 20000;

	while (!done(arg) && now_ms() < end)
	{
		ev_run(f->loop, EVRUN_NOWAIT);
		usleep(1000);
	}
	return done(arg);
}

static int
heard_final(void *arg)
{
	struct heard *h = arg;

	return h->n_states > 0 && runs_is_final(h->states[h->n_states - 1]);
}

static int
heard_any(void *arg)
{
	return ((struct heard *)arg)->n_states > 0;
}

static int
heard_final_unsaved(void *arg)
{
	struct heard *h = arg;

	return h->unsaved > 0 && runs_is_final(h->unsaved_status);
}

/* Trigger job name; the new run's id. */
static uint64_t
trigger(struct fixture *f, const char *job)
{
	Dbtd__Run *run = NULL;
	struct err e = { 0 };
	uint64_t id;

	assert_int_equal(runs_trigger(f->runs, job, DBTD__TRIGGER__TRIGGER_MANUAL, "tester",
	                              &run, &e), 0);
	id = run->id;
	dbtd__run__free_unpacked(run, NULL);
	return id;
}

/* A run goes Running then Completed; its watcher hears only stored states. */
static void
test_run_completes_watchers_hear_stored_states(void **state)
{
	struct fixture *f = *state;
	struct heard h = { .st = f->st };
	struct run_watch *w;
	uint64_t id = trigger(f, "nightly");

	assert_true(stored_status(f, id) >= 0);
	assert_int_equal(runs_watch_add(f->runs, id, &heard_ops, &h, &w), 0);
	assert_true(run_until(f, heard_final, &h));
	assert_int_equal(h.states[h.n_states - 1], DBTD__RUN_STATUS__RUN_COMPLETED);
	assert_int_equal(h.states[0], DBTD__RUN_STATUS__RUN_RUNNING);
	assert_false(h.stored_mismatch);
	assert_int_equal(h.unsaved, 0);
	assert_int_equal(stored_status(f, id), DBTD__RUN_STATUS__RUN_COMPLETED);
	runs_watch_remove(f->runs, w);
}

/*
 * With the map full, a run that ends is not reported Completed: its watcher
 * hears why the state could not be saved, the store keeps the last state
 * it holds; once commits work again the engine saves it as Failed with the
 * reason (issue: a run that cannot be stored as finished is marked Failed
 * at the next chance).
 */
static void
test_final_state_not_stored_is_not_reported(void **state)
{
	struct fixture *f = *state;
	struct heard h = { .st = f->st };
	struct run_watch *w;
	uint64_t id;

	fake_mode = FAKE_GATE;
	id = trigger(f, "nightly");
	assert_int_equal(runs_watch_add(f->runs, id, &heard_ops, &h, &w), 0);
	assert_true(run_until(f, heard_any, &h));
	/* step 1 runs: from now on nothing can be saved */
	store_fail_commits(f->st, STORE_EMAPFULL, 1000000);
	assert_int_equal(creat(gate, 0600) >= 0, 1);
	assert_true(run_until(f, heard_final_unsaved, &h));
	assert_int_equal(h.unsaved_kind, ERR_NO_SPACE);
	assert_non_null(strstr(h.unsaved_msg, "map is full"));
	assert_non_null(strstr(h.unsaved_msg, "completed"));
	for (size_t i = 0; i < h.n_states; i++)
		assert_int_not_equal(h.states[i], DBTD__RUN_STATUS__RUN_COMPLETED);
	assert_int_equal(stored_status(f, id), DBTD__RUN_STATUS__RUN_RUNNING);
	assert_int_equal(runs_active_count(f->runs), 0);
	/* space again: the run is saved Failed (what it wrote last went with
	 * the lost commit), its error naming the real outcome and the cause */
	store_fail_commits(f->st, 0, 0);
	assert_true(run_until(f, heard_final, &h));
	assert_int_equal(h.states[h.n_states - 1], DBTD__RUN_STATUS__RUN_FAILED);
	assert_false(h.stored_mismatch);
	assert_int_equal(stored_status(f, id), DBTD__RUN_STATUS__RUN_FAILED);
	{
		Dbtd__Run *run = NULL;
		assert_int_equal(store_run_get(f->st, id, &run), 0);
		assert_non_null(strstr(run->error, "the run completed"));
		assert_non_null(strstr(run->error, "could not store its end"));
		assert_non_null(strstr(run->error, "map is full"));
		dbtd__run__free_unpacked(run, NULL);
	}
	runs_watch_remove(f->runs, w);
}

/* store_log_read callback: append each record's text and a newline. */
static int
log_text(void *arg, uint32_t step, uint32_t seq, const uint8_t *data, size_t len)
{
	char *buf = arg;
	struct logrec rec;
	size_t off = 0;

	(void)step; (void)seq;
	while (logrec_next(data, len, &off, &rec) == 1 && strlen(buf) + rec.len + 2 < 4096) {
		strncat(buf, (const char *)rec.text, rec.len);
		strcat(buf, "\n");
	}
	return 0;
}

/* Run the loop for about ms milliseconds. */
static void
run_for(struct fixture *f, int64_t ms)
{
	int64_t end = now_ms() + ms;

	while (now_ms() < end) {
		ev_run(f->loop, EVRUN_NOWAIT);
		usleep(1000);
	}
}

/*
 * Log lines a failed commit loses are counted: the log marks the hole
 * where it goes on, ends with the count and the cause, and the run's error
 * says so; the run keeps its real status (before: lost without a mark).
 */
static void
test_lost_log_lines_are_marked_and_counted(void **state)
{
	struct fixture *f = *state;
	struct heard h = { .st = f->st };
	struct store_log_pos pos = { 0, 0 };
	struct run_watch *w;
	Dbtd__Run *run = NULL;
	char text[4096] = "";
	uint64_t id;

	fake_mode = FAKE_LOGS;
	id = trigger(f, "nightly");
	assert_int_equal(runs_watch_add(f->runs, id, &heard_ops, &h, &w), 0);
	assert_true(run_until(f, heard_any, &h));
	run_for(f, 300); /* lines 1-2 stored */
	store_fail_commits(f->st, -ENOSPC, 1);
	assert_int_equal(creat(gate, 0600) >= 0, 1);
	run_for(f, 300); /* lines 3-5 lost with their commit */
	assert_int_equal(creat(gate2, 0600) >= 0, 1);
	assert_true(run_until(f, heard_final, &h));
	assert_int_equal(store_log_read(f->st, id, 1, &pos, 1 << 20, log_text, text) >= 0, 1);
	assert_string_equal(text,
	    "line 1\nline 2\n"
	    "dbtd: 3 lines of this step's log could not be stored here: no space left on the "
	    "device of the state directory\n"
	    "line 6\n"
	    "dbtd: 3 lines of this step's log could not be stored and are missing above: no "
	    "space left on the device of the state directory\n");
	assert_int_equal(store_run_get(f->st, id, &run), 0);
	assert_int_equal(run->status, DBTD__RUN_STATUS__RUN_COMPLETED);
	assert_string_equal(run->error, "3 log lines could not be stored (most in step 1, "
	    "Clone Git repository): no space left on the device of the state directory");
	dbtd__run__free_unpacked(run, NULL);
	runs_watch_remove(f->runs, w);
}

/*
 * A run whose creation a commit lost never existed: its runner is stopped,
 * it is forgotten, and its id goes to the next run, which is stored and runs.
 */
static void
test_created_run_lost_by_commit_is_forgotten(void **state)
{
	struct fixture *f = *state;
	Dbtd__Run *run = NULL;

	fake_mode = FAKE_HANG;
	assert_int_equal(trigger(f, "nightly"), 1);
	assert_int_equal(runs_active_count(f->runs), 1); /* started at once */
	store_fail_commits(f->st, -ENOSPC, 1);
	assert_int_equal(store_commit(f->st), -ENOSPC);
	assert_int_equal(runs_active_count(f->runs), 0);
	assert_int_equal(stored_status(f, 1), -1);
	fake_mode = FAKE_COMPLETE;
	assert_int_equal(trigger(f, "nightly"), 1);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_run_get(f->st, 1, &run), 0);
	assert_string_equal(run->job, "nightly");
	dbtd__run__free_unpacked(run, NULL);
	assert_int_equal(runs_active_count(f->runs), 1);
}

static int
not_active(void *arg)
{
	return runs_active_count(arg) == 0;
}

/*
 * Canceling a queued run on a full disk says it failed and leaves the run
 * queued; canceled later, it is; a running run is canceled by signal.
 */
static void
test_cancel_queued_commit_fails(void **state)
{
	struct fixture *f = *state;
	struct err e = { 0 };
	uint64_t a, b;

	fake_mode = FAKE_HANG;
	a = trigger(f, "nightly");
	b = trigger(f, "hourly"); /* one slot: queued */
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(stored_status(f, b), DBTD__RUN_STATUS__RUN_QUEUED);
	store_fail_commits(f->st, -ENOSPC, 1);
	assert_true(runs_cancel(f->runs, b, "tester", &e) < 0);
	assert_int_equal(e.kind, ERR_NO_SPACE);
	assert_int_equal(stored_status(f, b), DBTD__RUN_STATUS__RUN_QUEUED);
	assert_int_equal(runs_cancel(f->runs, b, "tester", &e), 0);
	assert_int_equal(stored_status(f, b), DBTD__RUN_STATUS__RUN_CANCELED);
	assert_int_equal(runs_cancel(f->runs, a, "tester", &e), 0);
	assert_true(run_until(f, not_active, f->runs));
	store_commit(f->st);
	assert_int_equal(stored_status(f, a), DBTD__RUN_STATUS__RUN_CANCELED);
}

/* Stopping dbtd records its running runs Failed. */
static void
test_shutdown_fails_running_runs(void **state)
{
	struct fixture *f = *state;
	Dbtd__Run *run = NULL;
	uint64_t id;

	fake_mode = FAKE_HANG;
	id = trigger(f, "nightly");
	assert_int_equal(runs_active_count(f->runs), 1);
	runs_shutdown(f->runs);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_run_get(f->st, id, &run), 0);
	assert_int_equal(run->status, DBTD__RUN_STATUS__RUN_FAILED);
	assert_non_null(strstr(run->error, "dbtd was stopped"));
	dbtd__run__free_unpacked(run, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_run_completes_watchers_hear_stored_states,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_final_state_not_stored_is_not_reported,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_log_lines_are_marked_and_counted, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_created_run_lost_by_commit_is_forgotten,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_queued_commit_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_fails_running_runs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
