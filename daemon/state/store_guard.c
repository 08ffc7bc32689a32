/*
 * store_guard.c - store operations guarded against a damaged page: LMDB
 * asserts (and aborts) on some damage it meets, and a page that claims a
 * size past the end of the file makes a read fault.  While a guarded
 * operation runs, LMDB's assert callback and a fault inside the store's map
 * jump back to the guard, which ends the operation's transaction and
 * returns STORE_EDAMAGED, so a damaged page costs one request its answer,
 * not dbtd its life.  A fault outside a guarded operation or outside the
 * map is not ours: it is raised again as it was.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "store_int.h"

static struct store_guard *top;     /* the innermost guarded operation */
static struct sigaction old_segv, old_bus;
static int installed;

/* Does addr lie in the map of the guarded store? */
static int
in_map(const struct store *st, const void *addr)
{
	const char *p = addr;

	return st->map != NULL && p >= st->map && p < st->map + st->map_size;
}

/* SIGSEGV/SIGBUS: inside a guarded operation and the map, back to the guard. */
static void
on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (top != NULL && in_map(top->st, si->si_addr)) {
		snprintf(top->why, sizeof(top->why), "a damaged page made the read fault (%s)",
		         sig == SIGBUS ? "SIGBUS: past the end of data.mdb" : "SIGSEGV");
		siglongjmp(top->jb, 1);
	}
	/* not a damaged page of ours: die of it as before */
	sigaction(sig, sig == SIGBUS ? &old_bus : &old_segv, NULL);
	raise(sig);
}

/* LMDB's assert callback: inside a guarded operation, back to the guard. */
static void
on_assert(MDB_env *env, const char *msg)
{
	(void)env;
	if (top != NULL) {
		snprintf(top->why, sizeof(top->why), "LMDB stopped on a damaged page (%s)", msg);
		siglongjmp(top->jb, 1);
	}
	log_err("store: LMDB stopped dbtd: %s; the store is damaged: run dbtd check and "
	        "restore the state directory from a backup", msg);
}

void
store_guard_install(struct store *st)
{
	struct sigaction sa;

	mdb_env_set_assert(st->env, on_assert);
	if (installed)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, &old_segv) == 0 && sigaction(SIGBUS, &sa, &old_bus) == 0)
		installed = 1;
}

void
store_guard_push(struct store *st, struct store_guard *g)
{
	g->st = st;
	g->why[0] = '\0';
	g->prev = top;
	top = g;
}

void
store_guard_pop(struct store_guard *g)
{
	top = g->prev;
}

int
store_guard_caught(struct store_guard *g)
{
	struct store *st = g->st;

	top = g->prev;
	/* the operation's own transaction ends here; one inside the batch breaks it */
	while (st->n_curs > 0)
		mdb_cursor_close(st->curs[--st->n_curs]); /* before their transaction ends */
	if (st->op_txn != NULL && st->op_txn != st->batch) {
		mdb_txn_abort(st->op_txn);
		st->in_ops--; /* as store_op_end would have */
	}
	st->op_txn = NULL;
	if (st->batch != NULL)
		st->batch_broken = 1;
	snprintf(st->damage, sizeof(st->damage), "%s: %s", g->what, g->why);
	log_err("store in %s is damaged: %s", st->dir, st->damage);
	return STORE_EDAMAGED;
}
