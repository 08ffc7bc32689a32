/*
 * runs_int.h - shared by the files of the run engine only (runs.c: creating,
 * queueing, canceling, recovering runs; runs_runner.c: runner processes and
 * their events; runs_notify.c: saving states and telling observers once
 * they are committed).  Nothing outside engine/ includes it.
 */
#ifndef DBTD_RUNS_INT_H
#define DBTD_RUNS_INT_H

#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "dbtd.pb-c.h"
#include "err.h"
#include "frame.h"
#include "runs.h"

#define RUNNER_READ_BUDGET (1u << 20) /* bytes from one runner per loop iteration */

/* Why dbtd is stopping a run's processes. */
enum stop_reason { STOP_NONE, STOP_CANCEL, STOP_TIMEOUT };


/* Log lines of one step that did not reach the store (runs_loss.c). */
struct step_loss {
	uint64_t lost;          /* lines refused or lost with a failed commit */
	uint64_t pending;       /* lines written since the last commit */
	uint64_t noted;         /* `lost` when the step's log last said so */
	uint64_t unmarked;      /* lost since the log last marked the place */
	int rc;                 /* why the last of them were lost */
};

/* A run in progress: its runner process and the record being updated. */
struct active {
	struct runs *r;
	struct active *next;
	Dbtd__Run *run;         /* current state, owned */
	pid_t pid;              /* runner pid = its process group */
	int fd;                 /* socketpair end, -1 once closed */
	ev_io io;
	ev_child child;
	struct frame_buf in;
	uint32_t log_seq;
	int exited;
	int wstatus;
	char *workspace;
	char *lock;             /* the DuckDB file the run writes, or NULL */
	uint32_t timeout_s;     /* the job's timeout, 0 for none */
	ev_timer timeout;
	enum stop_reason stop;  /* set once cancel or the timeout began */
	int stop_stage;         /* 1: SIGINT sent, 2: SIGTERM sent, 3: SIGKILL sent */
	uint32_t stop_step;     /* the step running when the stop began */
	char *stopped_by;       /* who canceled */
	ev_timer stop_timer;
	struct step_loss *loss; /* per step 0..n_steps, or NULL: nothing written yet */
	size_t n_loss;
};

/* An observer of one run (see runs_watch_add). */
struct run_watch {
	uint64_t run_id;
	const struct run_observer_ops *ops;
	void *arg;
	struct run_watch *next;
};

/*
 * A state of a run to tell its observers once it is stored (a snapshot:
 * they hear every change, in order, and only what a commit made durable).
 */
struct note {
	Dbtd__Run *run;
	struct note *next;
};

/* The last state of a run that a failed commit lost: saved again later. */
struct unsaved {
	Dbtd__Run *run;
	int rc;                 /* why it was lost */
	struct unsaved *next;
};


/* A run waiting for a slot (and for the DuckDB file it writes). */
struct queued {
	uint64_t id;
	char *lock;             /* the DuckDB file the run writes, or NULL */
	char *waiting;          /* what run view says it waits for */
	struct queued *next;
};

struct runs {
	struct ev_loop *loop;
	struct store *store;
	const struct plugin_set *plugins;
	void (*runner)(const struct runner_spec *spec) __attribute__((noreturn));
	char *work_dir;
	char *blob_dir;
	int stopping;
	unsigned slots;
	unsigned running;
	struct active *active;
	struct queued *queue;   /* FIFO */
	struct run_watch *watches;
	struct note *notes, **notes_tail; /* stored, not yet committed: FIFO */
	struct unsaved *unsaved;
	ev_timer retry;
	double retry_s;
	uint64_t *created;      /* runs created since the last commit */
	size_t n_created, cap_created;
};

/* runs.c */
void runs_pump(struct runs *r);
void runs_forget_created(struct runs *r, int rc);
int runs_was_created(const struct runs *r, uint64_t id);
void runs_queued_free(struct queued *q);

/* runs_notify.c */
void runs_notify_init(struct runs *r);
void runs_notify_free(struct runs *r);
void runs_notify(struct runs *r, const Dbtd__Run *run, int stored);
void runs_notify_log(struct runs *r, uint64_t run, uint32_t step, uint32_t seq,
                     const uint8_t *data, size_t len);
void runs_save(struct runs *r, const Dbtd__Run *run);
int runs_save_now(struct runs *r, const Dbtd__Run *run, struct err *e);

/* runs_loss.c */
void runs_loss_chunk(struct active *a, uint32_t step, const uint8_t *data, size_t len, int rc);
void runs_loss_committed(struct runs *r, int rc);
void runs_loss_note(struct active *a, uint32_t step);
void runs_loss_mark(struct active *a, uint32_t step, uint32_t seq);
void runs_loss_finish(struct active *a);

/* runs_runner.c */
void runs_first_error(Dbtd__Run *run, const char *msg);
void runs_skip_pending(Dbtd__Run *run);
int runs_runner_read(struct active *a, size_t budget);
void runs_finish(struct active *a);
void runs_active_free(struct active *a);
void runs_begin_stop(struct active *a, enum stop_reason why);
void runs_fork(struct runs *r, struct queued *q);

#endif /* DBTD_RUNS_INT_H */
