/*
 * store_space.c - the store's room (see store.h): a map that grows within
 * --max-map-size and the free disk, what the store takes and has left, and
 * the room kept for run states that log lines may not use.
 */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "log.h"
#include "names.h"
#include "store_int.h"

#define MIB ((size_t)1 << 20)
#define GROW_HEADROOM_MIN (32 * MIB) /* the map grows when less than this ... */
#define GROW_HEADROOM_DIV 4          /* ... or a quarter of it is left */
#define LOG_MAP_RESERVE_DIV 16       /* logs leave this part of a full map to states */
#define LOG_MAP_RESERVE_MAX (64 * MIB)

/*
 * Bytes free for dbtd on the state directory's device: read again when
 * fresh, when the last reading is over a second old, or when what was
 * logged since may have taken it near the reserve (a chatty step writes
 * far more than the reserve in a second); in between, that reading less
 * twice what was logged since.
 */
uint64_t
store_disk_free(struct store *st, int fresh)
{
	int64_t now = now_ms();
	struct statvfs sv;

	/* what was logged since the last reading may have taken twice its size */
	uint64_t used = 2 * (uint64_t)st->logged_since_disk;

	if (fresh || now - st->disk_at_ms >= 1000 ||
	    (st->disk_free != UINT64_MAX && st->disk_free < used + 2 * STORE_LOG_DISK_RESERVE)) {
		if (statvfs(st->dir, &sv) == 0)
			st->disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
		else
			st->disk_free = UINT64_MAX; /* unknown: the writes will tell */
		st->disk_at_ms = now;
		st->logged_since_disk = 0;
		used = 0;
	}
	if (st->disk_free == UINT64_MAX)
		return UINT64_MAX;
	return st->disk_free > used ? st->disk_free - used : 0;
}

/* The size of the data file, or 0. */
static uint64_t
file_size(const struct store *st)
{
	char path[4096];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/data.mdb", st->dir);
	return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* Bytes of the map in use up to the last commit. */
static size_t
map_used(struct store *st)
{
	MDB_envinfo info;
	MDB_stat ms;

	if (mdb_env_info(st->env, &info) != 0 || mdb_env_stat(st->env, &ms) != 0)
		return st->map_size;
	return (info.me_last_pgno + 1) * (size_t)ms.ms_psize;
}

/* How large the map can usefully be: the file plus the free disk. */
static uint64_t
disk_room(struct store *st, int fresh)
{
	uint64_t f = file_size(st), d = store_disk_free(st, fresh) / MIB * MIB;

	return d > UINT64_MAX - f ? UINT64_MAX : f + d;
}

static size_t
grow_headroom(const struct store *st)
{
	size_t h = st->map_size / GROW_HEADROOM_DIV;

	return h > GROW_HEADROOM_MIN ? h : GROW_HEADROOM_MIN;
}

/* A size in MiB or GiB, for the log. */
static const char *
size_text(char *buf, size_t n, uint64_t bytes)
{
	if (bytes >= ((uint64_t)1 << 30) && bytes % ((uint64_t)1 << 30) == 0)
		snprintf(buf, n, "%llu GiB", (unsigned long long)(bytes >> 30));
	else
		snprintf(buf, n, "%.1f MiB", (double)bytes / MIB);
	return buf;
}

/* Set the map to size bytes (no transaction may be open).  0 or -errno. */
static int
map_resize(struct store *st, size_t size)
{
	MDB_envinfo info;
	int rc = map_rc(mdb_env_set_mapsize(st->env, size));

	if (rc == 0 && mdb_env_info(st->env, &info) == 0)
		st->map_size = info.me_mapsize;
	if (rc == 0)
		store_find_map(st); /* LMDB mapped the file again, maybe elsewhere */
	return rc;
}

/*
 * Grow the map when a write found it full or little of it is left: to
 * twice its size (at least the headroom past what is used), within
 * --max-map-size and the free disk.  Only while no transaction is open.
 */
void
store_map_maybe_grow(struct store *st)
{
	size_t used, want, old = st->map_size;
	uint64_t room;
	char a[32], b[32], c[32], d[32];
	int rc;

	if (st->batch || st->in_ops)
		return;
	used = map_used(st);
	if (!st->grow_wanted && used + grow_headroom(st) <= st->map_size)
		return;
	st->grow_wanted = 0;
	if (st->map_size >= st->max_map)
		return;
	want = st->map_size * 2;
	if (want < used + 2 * grow_headroom(st))
		want = used + 2 * grow_headroom(st);
	want = (want + MIB - 1) / MIB * MIB;
	if (want > st->max_map)
		want = st->max_map;
	room = disk_room(st, 1);
	if (want > room)
		want = (size_t)room;
	if (want <= st->map_size)
		return; /* the disk is the limit: its writes will say so */
	rc = map_resize(st, want);
	if (rc < 0)
		log_err("store: cannot grow the map to %s: %s", size_text(a, sizeof(a), want),
		        store_strerror(rc));
	else
		log_info("store: map grown from %s to %s (%s used, at most %s)",
		         size_text(a, sizeof(a), old), size_text(b, sizeof(b), st->map_size),
		         size_text(c, sizeof(c), used), size_text(d, sizeof(d), st->max_map));
}

int
store_set_map_limits(struct store *st, size_t start, size_t max)
{
	int rc;

	if (start < STORE_MAP_MIN || max < start)
		return -EINVAL;
	store_commit(st);
	if (st->in_ops)
		return -EBUSY;
	st->max_map = max;
	rc = map_resize(st, start);
	if (rc == 0)
		store_map_maybe_grow(st);
	return rc;
}

int
store_space(struct store *st, struct store_space *sp)
{
	sp->map_size = st->map_size;
	sp->map_used = map_used(st);
	sp->max_map_size = st->max_map;
	sp->file_size = file_size(st);
	sp->disk_free = store_disk_free(st, 1);
	return 0;
}

/*
 * Whether len more bytes of log lines may be written: not when the map
 * cannot grow and only its reserve for run states is left, nor when the
 * disk is nearly full.  0, STORE_EMAPFULL or -ENOSPC.
 */
int
store_log_room(struct store *st, size_t len)
{
	size_t reserve = st->map_size / LOG_MAP_RESERVE_DIV;

	if (reserve > LOG_MAP_RESERVE_MAX)
		reserve = LOG_MAP_RESERVE_MAX;
	if (map_used(st) + st->log_bytes + len + reserve > st->map_size &&
	    (st->map_size >= st->max_map ||
	     st->map_size >= disk_room(st, 0)))
		return STORE_EMAPFULL;
	if (store_disk_free(st, 0) < STORE_LOG_DISK_RESERVE + len)
		return -ENOSPC;
	return 0;
}
