/*
 * retention.c - retention passes (see retention.h): runs past their
 * policy deleted in batches, each batch committed before it is counted;
 * then a mark and sweep of the blob store.
 *
 * Mark: every artifact record's digest goes into a set (its first 16
 * bytes: a collision only keeps a blob).  With many records the digests
 * are taken a range of first bytes at a time (a partition), so the set
 * holds at most about PART_RECORDS of them.  Sweep: the blob directories
 * of the partition; a blob outside the set goes when its mtime is older
 * than the cutoff (the start of the oldest running run, or now, less a
 * margin): the runner refreshes the mtime of a blob it reuses, and
 * anything a run may still record is newer.  A blob is first renamed
 * aside and checked again, so one a runner refreshed meanwhile is put
 * back; a runner that finds its blob gone writes it again.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "retention.h"
#include "util.h"

#define BATCH_RUNS 256        /* runs deleted per transaction */
#define BATCH_KEYS 4096       /* index entries looked at per step */
#define SCAN_RECORDS 20000    /* artifact records marked per step */
#define SWEEP_ENTRIES 2000    /* blob directory entries per step */
#define PART_RECORDS 262144   /* artifact records per partition of the mark */

enum phase { PHASE_RUNS, PHASE_MARK_INIT, PHASE_MARK, PHASE_SWEEP, PHASE_DONE };

struct prune_wait {
	retention_done_fn done;
	void *arg;
	struct prune_wait *next;
};

/* A set of digests (their first 16 bytes), open addressing. */
struct digest_set {
	uint8_t (*slot)[16];
	size_t cap, n;
	int has_zero;
};

struct pass {
	int dry;
	char job[256];
	struct prune_wait *waiters;
	struct pass *next;
	enum phase phase;
	struct store_prune_pos pos;
	struct store_freed freed;
	uint64_t blobs, blob_bytes;
	int64_t started_ms;
	char error[512];
	uint64_t *ids;          /* dry: the runs that would go (sorted before the mark) */
	size_t nids, capids;
	unsigned npart, part;   /* partitions of the first digest byte */
	struct store_scan scan;
	struct digest_set set;
	time_t cutoff;          /* unmarked blobs older than this go */
	unsigned dir;           /* the blob directory being swept (first byte) */
	DIR *d;
};

struct retention {
	struct ev_loop *loop;
	struct store *store;
	char *blob_dir;
	struct store_keep keep;
	double every_s, margin_s;
	ev_timer tick;
	ev_idle work;
	struct pass *cur;
	struct pass *queue;     /* waiting, in order */
};

/* Where digest d starts looking in a table of cap slots. */
static size_t
slot_of(const uint8_t *d, size_t cap)
{
	uint64_t h;

	memcpy(&h, d + 1, sizeof(h)); /* not byte 0: a partition shares it */
	return (size_t)(h % cap);
}

/* Insert the first 16 bytes of d into s.  0 or -ENOMEM. */
static int
set_add(struct digest_set *s, const uint8_t *d)
{
	static const uint8_t zero[16];
	size_t i;

	if (memcmp(d, zero, 16) == 0) {
		s->has_zero = 1;
		return 0;
	}
	if (2 * (s->n + 1) > s->cap) {
		struct digest_set g = { 0 };
		g.cap = s->cap ? s->cap * 2 : 4096;
		g.slot = calloc(g.cap, 16);
		if (g.slot == NULL)
			return -ENOMEM;
		g.has_zero = s->has_zero;
		for (i = 0; i < s->cap; i++)
			if (memcmp(s->slot[i], zero, 16) != 0)
				set_add(&g, s->slot[i]);
		free(s->slot);
		*s = g;
	}
	for (i = slot_of(d, s->cap);; i = (i + 1) % s->cap) {
		if (memcmp(s->slot[i], d, 16) == 0)
			return 0;
		if (memcmp(s->slot[i], zero, 16) == 0) {
			memcpy(s->slot[i], d, 16);
			s->n++;
			return 0;
		}
	}
}

/* Whether s holds (the first 16 bytes of) d. */
static int
set_has(const struct digest_set *s, const uint8_t *d)
{
	static const uint8_t zero[16];

	if (memcmp(d, zero, 16) == 0)
		return s->has_zero;
	if (s->cap == 0)
		return 0;
	for (size_t i = slot_of(d, s->cap);; i = (i + 1) % s->cap) {
		if (memcmp(s->slot[i], d, 16) == 0)
			return 1;
		if (memcmp(s->slot[i], zero, 16) == 0)
			return 0;
	}
}

/* Empty s, giving its memory back. */
static void
set_clear(struct digest_set *s)
{
	free(s->slot);
	memset(s, 0, sizeof(*s));
}

/* 64 lowercase hex digits into 32 bytes; 0, or -1 when hex is not a digest. */
static int
digest_parse(const char *hex, size_t len, uint8_t out[32])
{
	if (len != 64)
		return -1;
	for (size_t i = 0; i < 32; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char c = hex[2 * i + (size_t)k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else
				return -1;
		}
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* The partition's range of first digest bytes: [*lo, *hi). */
static void
part_range(const struct pass *p, unsigned *lo, unsigned *hi)
{
	*lo = p->part * 256 / p->npart;
	*hi = (p->part + 1) * 256 / p->npart;
}

/* Compare run ids (qsort, bsearch). */
static int
cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* store_prune_step's callback in a dry pass: note a run that would go. */
static void
note_id(void *arg, uint64_t id)
{
	struct pass *p = arg;

	if (p->nids == p->capids) {
		size_t cap = p->capids ? p->capids * 2 : 1024;
		uint64_t *n = realloc(p->ids, cap * sizeof(*n));
		if (n == NULL)
			return; /* the blob figures of the dry run then count a little less */
		p->ids = n;
		p->capids = cap;
	}
	p->ids[p->nids++] = id;
}

/* store_artifacts_scan's callback: mark a digest of the current partition. */
static void
mark(void *arg, uint64_t run_id, const char *digest)
{
	struct pass *p = arg;
	uint8_t d[32];
	unsigned lo, hi;

	if (digest_parse(digest, strlen(digest), d) < 0)
		return;
	part_range(p, &lo, &hi);
	if (d[0] < lo || d[0] >= hi)
		return;
	if (p->dry && p->nids && bsearch(&run_id, p->ids, p->nids, sizeof(*p->ids), cmp_id))
		return; /* a run the pass would delete: its references would go */
	if (set_add(&p->set, d) < 0 && p->error[0] == '\0')
		snprintf(p->error, sizeof(p->error), "out of memory marking artifact contents");
}

/* store_runs_active's callback: the cutoff moves before a running run's start. */
static int
active_start(void *arg, Dbtd__Run *run)
{
	struct retention *r = ((void **)arg)[0];
	struct pass *p = ((void **)arg)[1];
	int64_t t = run->started_at_ms ? run->started_at_ms : run->created_at_ms;
	time_t c = (time_t)(t / 1000) - (time_t)r->margin_s;

	if (c < p->cutoff)
		p->cutoff = c;
	dbtd__run__free_unpacked(run, NULL);
	return 0;
}

/* Begin the mark: partitions, the cutoff. */
static void
mark_init(struct retention *r, struct pass *p)
{
	uint64_t n = store_artifacts_count(r->store);
	void *args[2] = { r, p };

	if (p->dry && p->nids)
		qsort(p->ids, p->nids, sizeof(*p->ids), cmp_id);
	p->npart = 1;
	while (p->npart < 256 && n / p->npart > PART_RECORDS)
		p->npart *= 2;
	p->part = 0;
	p->cutoff = time(NULL) - (time_t)r->margin_s;
	store_runs_active(r->store, active_start, args);
	memset(&p->scan, 0, sizeof(p->scan));
	set_clear(&p->set);
	p->phase = PHASE_MARK;
}

/*
 * Delete the unreferenced blob dir/name, unless a runner refreshed it:
 * renamed aside first and looked at again, put back when it is now recent.
 * 1 when it went, 0 when kept.
 */
static int
sweep_blob(struct pass *p, int dfd, const char *name, const char *aside, off_t *size)
{
	struct stat sb;

	if (renameat(dfd, name, dfd, aside) < 0)
		return 0;
	if (fstatat(dfd, aside, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
	    sb.st_mtime < p->cutoff && unlinkat(dfd, aside, 0) == 0) {
		*size = sb.st_size;
		return 1;
	}
	renameat(dfd, aside, dfd, name); /* recent again: a runner reused it */
	return 0;
}

/* Look at one blob directory entry during the sweep. */
static void
sweep_entry(struct retention *r, struct pass *p, const char *name)
{
	size_t len = strlen(name);
	int dfd = dirfd(p->d), leftover = len == 68 && strcmp(name + 64, ".del") == 0;
	char aside[80];
	uint8_t d[32];
	struct stat sb;
	off_t size = 0;

	(void)r;
	if (digest_parse(name, 64 < len ? 64 : len, d) < 0 || (len != 64 && !leftover))
		return; /* not a blob (a runner's temporary file is in the top directory) */
	if (d[0] != p->dir)
		return;
	if (set_has(&p->set, d) && !leftover)
		return;
	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode) ||
	    sb.st_mtime >= p->cutoff)
		return;
	if (leftover) {
		/* a sweep that stopped half-way: referenced again? put it back */
		char back[65];
		memcpy(back, name, 64);
		back[64] = '\0';
		if (p->dry)
			return;
		if (set_has(&p->set, d))
			renameat(dfd, name, dfd, back);
		else if (unlinkat(dfd, name, 0) == 0) {
			p->blobs++;
			p->blob_bytes += (uint64_t)sb.st_size;
		}
		return;
	}
	if (p->dry) {
		p->blobs++;
		p->blob_bytes += (uint64_t)sb.st_size;
		return;
	}
	snprintf(aside, sizeof(aside), "%s.del", name);
	if (sweep_blob(p, dfd, name, aside, &size)) {
		p->blobs++;
		p->blob_bytes += (uint64_t)size;
	}
}

/* One piece of the sweep: up to SWEEP_ENTRIES entries of the current directory. */
static void
sweep_step(struct retention *r, struct pass *p)
{
	unsigned lo, hi, n = 0;
	struct dirent *de;

	part_range(p, &lo, &hi);
	if (p->d == NULL) {
		char *path = xasprintf("%s/%02x", r->blob_dir, p->dir);
		p->d = path ? opendir(path) : NULL;
		if (p->d == NULL && errno != ENOENT && p->error[0] == '\0')
			snprintf(p->error, sizeof(p->error), "cannot read %s: %s",
			         path ? path : r->blob_dir, strerror(errno));
		free(path);
	}
	while (p->d) {
		if (n++ == SWEEP_ENTRIES)
			return; /* more in this directory: the next step */
		de = readdir(p->d);
		if (de == NULL)
			break;
		sweep_entry(r, p, de->d_name);
	}
	if (p->d)
		closedir(p->d);
	p->d = NULL;
	if (++p->dir < hi)
		return;
	set_clear(&p->set);
	if (++p->part < p->npart) {
		memset(&p->scan, 0, sizeof(p->scan));
		p->phase = PHASE_MARK;
	} else {
		p->phase = PHASE_DONE;
	}
}

/* One batch of runs: deleted and committed, or counted (dry). */
static void
runs_step(struct retention *r, struct pass *p)
{
	struct store_freed got = { 0 };
	int rc = store_prune_step(r->store, &p->pos, &r->keep, now_ms(), p->dry, BATCH_RUNS,
	                          BATCH_KEYS, &got, p->dry ? note_id : NULL, p);

	if (rc >= 0 && !p->dry) {
		int crc = store_commit(r->store); /* counted only once durable */
		if (crc < 0)
			rc = crc;
	}
	if (rc < 0) {
		snprintf(p->error, sizeof(p->error), "cannot delete runs: %s", store_strerror(rc));
		p->phase = PHASE_DONE;
		return;
	}
	p->freed.runs += got.runs;
	p->freed.log_chunks += got.log_chunks;
	p->freed.log_bytes += got.log_bytes;
	p->freed.lineages += got.lineages;
	p->freed.artifacts += got.artifacts;
	if (rc == 0)
		p->phase = PHASE_MARK_INIT;
}

/* Free a pass (its waiters were told or forgotten). */
static void
pass_free(struct pass *p)
{
	while (p->waiters) {
		struct prune_wait *w = p->waiters;
		p->waiters = w->next;
		free(w);
	}
	if (p->d)
		closedir(p->d);
	set_clear(&p->set);
	free(p->ids);
	free(p);
}

/* The pass is over: log it, report it to whoever asked, free it. */
static void
pass_end(struct retention *r, struct pass *p)
{
	Dbtd__PruneReport rep = DBTD__PRUNE_REPORT__INIT;

	rep.dry_run = p->dry;
	rep.job = p->job;
	rep.runs = p->freed.runs;
	rep.log_bytes = p->freed.log_bytes;
	rep.log_chunks = p->freed.log_chunks;
	rep.lineages = p->freed.lineages;
	rep.artifacts = p->freed.artifacts;
	rep.blobs = p->blobs;
	rep.blob_bytes = p->blob_bytes;
	rep.keep_runs = r->keep.runs;
	rep.keep_days = r->keep.days;
	rep.started_at_ms = p->started_ms;
	rep.finished_at_ms = now_ms();
	rep.error = p->error;
	if (p->error[0])
		log_err("retention: %s", p->error);
	if (!p->dry && p->freed.runs)
		store_trim(r->store); /* the pages the pass read need not stay mapped */
	if (!p->dry && (p->freed.runs || p->blobs))
		log_info("retention: pruned %llu runs (%.1f MiB of logs, %llu artifact records) "
		         "and %llu artifact contents (%.1f MiB) in %.1f s",
		         (unsigned long long)p->freed.runs, (double)p->freed.log_bytes / (1 << 20),
		         (unsigned long long)p->freed.artifacts, (unsigned long long)p->blobs,
		         (double)p->blob_bytes / (1 << 20),
		         (double)(rep.finished_at_ms - p->started_ms) / 1000.0);
	while (p->waiters) {
		struct prune_wait *w = p->waiters;
		p->waiters = w->next;
		w->done(w->arg, &rep);
		free(w);
	}
	pass_free(p);
}

/* The loop is idle: one step of the pass under way (or start the next). */
static void
work_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct retention *r = w->data;
	struct pass *p = r->cur;
	int n;

	(void)revents;
	if (p == NULL) {
		p = r->cur = r->queue;
		if (p == NULL) {
			ev_idle_stop(loop, w);
			return;
		}
		r->queue = p->next;
		p->next = NULL;
		p->started_ms = now_ms();
	}
	switch (p->phase) {
	case PHASE_RUNS:
		runs_step(r, p);
		break;
	case PHASE_MARK_INIT:
		mark_init(r, p);
		break;
	case PHASE_MARK:
		n = store_artifacts_scan(r->store, &p->scan, SCAN_RECORDS, mark, p);
		if (n < 0 && p->error[0] == '\0')
			snprintf(p->error, sizeof(p->error), "cannot read artifact records: %s",
			         store_strerror(n));
		if (p->error[0])
			p->phase = PHASE_DONE; /* an incomplete mark must not sweep */
		else if (p->scan.done) {
			unsigned lo, hi;
			part_range(p, &lo, &hi);
			p->dir = lo;
			p->phase = PHASE_SWEEP;
		}
		break;
	case PHASE_SWEEP:
		sweep_step(r, p);
		break;
	case PHASE_DONE:
		break;
	}
	if (p->phase == PHASE_DONE) {
		r->cur = NULL;
		pass_end(r, p);
	}
}

/* A new pass (queued). */
static struct pass *
pass_new(struct retention *r, int dry, const char *job)
{
	struct pass *p = calloc(1, sizeof(*p)), **tail;

	if (p == NULL)
		return NULL;
	p->dry = dry;
	snprintf(p->job, sizeof(p->job), "%s", job ? job : "");
	snprintf(p->pos.only_job, sizeof(p->pos.only_job), "%s", p->job);
	for (tail = &r->queue; *tail; tail = &(*tail)->next)
		;
	*tail = p;
	ev_idle_start(r->loop, &r->work);
	return p;
}

/* The automatic pass: unless one is waiting already. */
static void
tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct retention *r = w->data;

	(void)loop; (void)revents;
	for (struct pass *p = r->queue; p; p = p->next)
		if (!p->dry && p->job[0] == '\0')
			return;
	if (pass_new(r, 0, NULL) == NULL)
		log_warn("retention: out of memory; the automatic pass is skipped");
}

int
retention_new(struct retention **out, const struct retention_config *cfg)
{
	struct retention *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->blob_dir = strdup(cfg->blob_dir)) == NULL) {
		free(r);
		return -ENOMEM;
	}
	r->loop = cfg->loop;
	r->store = cfg->store;
	r->keep = cfg->keep;
	r->every_s = cfg->every_s;
	r->margin_s = cfg->blob_margin_s;
	ev_idle_init(&r->work, work_cb);
	r->work.data = r;
	ev_timer_init(&r->tick, tick_cb, 0., r->every_s);
	r->tick.data = r;
	*out = r;
	return 0;
}

void
retention_start(struct retention *r)
{
	if (r->every_s > 0)
		ev_timer_start(r->loop, &r->tick);
}

const struct store_keep *
retention_keep(const struct retention *r)
{
	return &r->keep;
}

int
retention_request(struct retention *r, int dry, const char *job, retention_done_fn done,
                  void *arg, struct prune_wait **out)
{
	struct prune_wait *w = calloc(1, sizeof(*w));
	struct pass *p;

	if (w == NULL)
		return -ENOMEM;
	if (job == NULL)
		job = "";
	for (p = r->queue; p; p = p->next)
		if (p->dry == dry && strcmp(p->job, job) == 0)
			break;
	if (p == NULL && (p = pass_new(r, dry, job)) == NULL) {
		free(w);
		return -ENOMEM;
	}
	w->done = done;
	w->arg = arg;
	w->next = p->waiters;
	p->waiters = w;
	*out = w;
	return 0;
}

void
retention_forget(struct retention *r, struct prune_wait *w)
{
	struct pass *lists[2] = { r->cur, r->queue };

	for (int i = 0; i < 2; i++)
		for (struct pass *p = lists[i]; p; p = i ? p->next : NULL)
			for (struct prune_wait **pp = &p->waiters; *pp; pp = &(*pp)->next)
				if (*pp == w) {
					*pp = w->next;
					free(w);
					return;
				}
}

void
retention_free(struct retention *r)
{
	if (r == NULL)
		return;
	ev_idle_stop(r->loop, &r->work);
	ev_timer_stop(r->loop, &r->tick);
	if (r->cur)
		pass_free(r->cur);
	while (r->queue) {
		struct pass *p = r->queue;
		r->queue = p->next;
		pass_free(p);
	}
	free(r->blob_dir);
	free(r);
}
