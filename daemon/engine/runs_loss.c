/*
 * runs_loss.c - log lines that never reached the store.  A log chunk the
 * store refuses (no space, map full, I/O error), or one a failed commit
 * loses, is counted per step with the reason; where the log goes on after
 * lost lines, a line marks the place and says how many are missing there;
 * when the step ends its log gets a last line saying how many lines were
 * lost in all and why, and when the run ends its error says so.  Nothing is
 * lost silently.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "logrec.h"
#include "names.h"
#include "pb.h"
#include "runs_int.h"
#include "store.h"
#include "util.h"

#define STREAM_INFO 0 /* DBTD_STREAM_INFO: a line of dbtd's own */

/* The lines in a chunk of log records (a broken tail counts as one). */
static uint64_t
chunk_lines(const uint8_t *data, size_t len)
{
	struct logrec rec;
	size_t off = 0;
	uint64_t n = 0;
	int rc;

	while ((rc = logrec_next(data, len, &off, &rec)) == 1)
		n++;
	return n + (rc < 0);
}

/* The counters of step (0..n_steps), allocated on first use; NULL if none. */
static struct step_loss *
loss_of(struct active *a, uint32_t step)
{
	size_t n = a->run->n_steps + 1;

	if (step >= n)
		step = 0; /* the runner never sends these; count them somewhere */
	if (a->loss == NULL) {
		a->loss = calloc(n, sizeof(*a->loss));
		if (a->loss == NULL)
			return NULL;
		a->n_loss = n;
	}
	return &a->loss[step];
}

void
runs_loss_chunk(struct active *a, uint32_t step, const uint8_t *data, size_t len, int rc)
{
	struct step_loss *l = loss_of(a, step);
	uint64_t n = chunk_lines(data, len);

	if (l == NULL)
		return;
	if (rc == 0) {
		l->pending += n;
		return;
	}
	if (l->lost == 0 || l->rc != rc)
		log_err("run %llu: log lines of step %u are being lost: %s",
		        (unsigned long long)a->run->id, step, store_strerror(rc));
	l->lost += n;
	l->unmarked += n;
	l->rc = rc;
}

void
runs_loss_committed(struct runs *r, int rc)
{
	for (struct active *a = r->active; a; a = a->next)
		for (size_t i = 0; i < a->n_loss; i++) {
			struct step_loss *l = &a->loss[i];
			if (rc < 0 && l->pending) {
				if (l->lost == 0)
					log_err("run %llu: a commit lost log lines of step %zu: %s",
					        (unsigned long long)a->run->id, i, store_strerror(rc));
				l->lost += l->pending;
				l->unmarked += l->pending;
				l->rc = rc;
			}
			l->pending = 0;
		}
}

/* "1,234,567": a count people read at a glance. */
static void
grouped(char *buf, size_t n, uint64_t v)
{
	char digits[24];
	size_t len, o = 0;

	snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
	len = strlen(digits);
	for (size_t i = 0; i < len && o + 2 < n; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
}

/*
 * Write dbtd's own line into step's log under seq (into the room kept for
 * states: it is short, and says what happened to the lines around it).
 * 0, or the store's error.
 */
static int
own_line(struct active *a, uint32_t step, uint32_t seq, const char *text)
{
	struct logbuf b = { 0 };
	int rc;

	if (logbuf_add(&b, now_ms(), STREAM_INFO, text, strlen(text)) < 0)
		return -ENOMEM;
	rc = store_log_note(a->r->store, a->run->id, step, seq, b.data, b.len);
	if (rc == 0)
		runs_notify_log(a->r, a->run->id, step, seq, b.data, b.len);
	logbuf_free(&b);
	return rc;
}

/*
 * A chunk that follows lost lines was stored: the line marking the place
 * goes under seq, which comes before the chunk's.
 */
void
runs_loss_mark(struct active *a, uint32_t step, uint32_t seq)
{
	struct step_loss *l;
	char count[32], *text;

	if (a->loss == NULL || step >= a->n_loss || a->loss[step].unmarked == 0)
		return;
	l = &a->loss[step];
	grouped(count, sizeof(count), l->unmarked);
	text = xasprintf("dbtd: %s line%s of this step's log could not be stored here: %s", count,
	                 l->unmarked == 1 ? "" : "s", store_strerror(l->rc));
	if (text != NULL && own_line(a, step, seq, text) == 0) {
		l->pending++;
		l->unmarked = 0;
	}
	free(text);
}

void
runs_loss_note(struct active *a, uint32_t step)
{
	struct step_loss *l;
	char count[32], *text;

	if (a->loss == NULL || step >= a->n_loss)
		return;
	l = &a->loss[step];
	if (l->lost <= l->noted)
		return;
	grouped(count, sizeof(count), l->lost);
	text = xasprintf("dbtd: %s line%s of this step's log could not be stored and are "
	                 "missing above: %s", count, l->lost == 1 ? "" : "s",
	                 store_strerror(l->rc));
	if (text == NULL)
		return;
	l->noted = l->lost;
	l->unmarked = 0; /* this line says it for the end of the log */
	if (own_line(a, step, a->log_seq++, text) == 0)
		l->pending++;
	else
		l->noted = ++l->lost; /* and the run's error says it all */
	free(text);
}

void
runs_loss_finish(struct active *a)
{
	Dbtd__Run *run = a->run;
	uint64_t total = 0;
	size_t worst = 0;
	char count[32], *msg;

	for (size_t i = 0; i < a->n_loss; i++) {
		runs_loss_note(a, (uint32_t)i);
		total += a->loss[i].lost;
		if (a->loss[i].lost > a->loss[worst].lost)
			worst = i;
	}
	if (total == 0)
		return;
	grouped(count, sizeof(count), total);
	if (worst >= 1 && worst <= run->n_steps)
		msg = xasprintf("%s log line%s could not be stored (most in step %zu, %s): %s",
		                count, total == 1 ? "" : "s", worst, run->steps[worst - 1]->name,
		                store_strerror(a->loss[worst].rc));
	else
		msg = xasprintf("%s log line%s could not be stored: %s", count,
		                total == 1 ? "" : "s", store_strerror(a->loss[worst].rc));
	if (msg == NULL)
		return;
	if (pb_str_set(run->error)) {
		char *both = xasprintf("%s; %s", run->error, msg);
		if (both) {
			free(msg);
			msg = both;
		}
	}
	pb_set_str(&run->error, msg);
	free(msg);
}
