/* store_file.c - data.mdb before LMDB opens it (see store_file.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_file.h"
#include "store_format.h"
#include "util.h"

/*
 * LMDB 0.9's meta page (64-bit): a 16-byte page header (flags at 10), then
 * MDB_meta: magic, version, address, map size, two MDB_db of 48 bytes (the
 * first one's md_pad is the page size; md_root at 40 in each), last page,
 * transaction id.
 */
#define META_FLAGS 10
#define META_MAGIC 16
#define META_VERSION 20
#define META_MAPSIZE 32
#define META_DB0 40
#define META_DB1 88
#define DB_ROOT 40
#define META_LAST_PG 136
#define META_TXNID 144
#define META_END 152
#define P_META 0x08
#define MDB_MAGIC 0xBEEFC0DEu
#define MDB_DATA_VERSION 1u  /* the data version of LMDB 0.9 */
#define P_INVALID UINT64_MAX

/* The names of dbtd's databases: a file holding none of them is not dbtd's. */
static const char *const dbtd_dbs[] = {
	"projects", "environments", "jobs", "project_names", "environment_names",
	"job_names", "runs", "runs_active", "logs", "runs_by_job", "runs_by_status",
	"runs_by_trigger", "runs_by_branch", "lineage", "artifacts", "meta",
};

struct meta {
	uint32_t magic, version, psize;
	uint16_t flags;
	uint64_t mapsize, root0, root1, last_pg, txnid;
};

static uint64_t
u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint32_t
u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* Read the meta page at off. 0, or -errno (-ENODATA: the file ends before it). */
static int
read_meta(int fd, off_t off, struct meta *m)
{
	uint8_t b[META_END];
	ssize_t n = pread(fd, b, sizeof(b), off);
	uint16_t flags;

	if (n < 0)
		return -errno;
	if ((size_t)n < sizeof(b))
		return -ENODATA;
	memcpy(&flags, b + META_FLAGS, 2);
	m->flags = flags;
	m->magic = u32(b + META_MAGIC);
	m->version = u32(b + META_VERSION);
	m->psize = u32(b + META_DB0);
	m->mapsize = u64(b + META_MAPSIZE);
	m->root0 = u64(b + META_DB0 + DB_ROOT);
	m->root1 = u64(b + META_DB1 + DB_ROOT);
	m->last_pg = u64(b + META_LAST_PG);
	m->txnid = u64(b + META_TXNID);
	return 0;
}

/* Is m one of LMDB's meta pages? */
static int
is_meta(const struct meta *m)
{
	return (m->flags & P_META) && m->magic == MDB_MAGIC;
}

/* Is the page size one LMDB writes? */
static int
psize_ok(uint32_t ps)
{
	return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0;
}

/* The names of the main database's records, for a message: "a, b, c". */
static void
main_names(MDB_txn *txn, MDB_dbi main, char *out, size_t len, int *ours)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t off = 0, n = 0;

	*ours = 0;
	out[0] = '\0';
	if (mdb_cursor_open(txn, main, &cur) != 0)
		return;
	while (mdb_cursor_get(cur, &k, &v, n ? MDB_NEXT : MDB_FIRST) == 0) {
		for (size_t i = 0; i < sizeof(dbtd_dbs) / sizeof(dbtd_dbs[0]); i++)
			if (k.mv_size == strlen(dbtd_dbs[i]) &&
			    memcmp(k.mv_data, dbtd_dbs[i], k.mv_size) == 0)
				*ours = 1;
		if (n < 6 && off < len) {
			int printable = k.mv_size > 0 && k.mv_size < 64;
			for (size_t i = 0; printable && i < k.mv_size; i++)
				if (((const uint8_t *)k.mv_data)[i] < 0x20 ||
				    ((const uint8_t *)k.mv_data)[i] > 0x7e)
					printable = 0;
			off += (size_t)snprintf(out + off, len - off, "%s%s%.*s%s", n ? ", " : "",
			                        printable ? "\"" : "", printable ? (int)k.mv_size : 0,
			                        printable ? (const char *)k.mv_data : "",
			                        printable ? "\"" : "a binary key");
		} else if (n == 6 && off < len) {
			off += (size_t)snprintf(out + off, len - off, ", ...");
		}
		n++;
	}
	mdb_cursor_close(cur);
}

/* Open the file read-only: does its main database hold dbtd's databases? */
static int
probe_owner(const char *dir, const char *file, char **why)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi main;
	char names[256];
	int rc, ours = 0;

	rc = store_format_env_open(dir, MDB_RDONLY, &env);
	if (rc < 0) {
		set_printf(why, "LMDB cannot open %s: %s", file, strerror(-rc));
		return rc;
	}
	rc = store_format_map_rc(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	if (rc == 0) {
		rc = store_format_map_rc(mdb_dbi_open(txn, NULL, 0, &main));
		if (rc == 0)
			main_names(txn, main, names, sizeof(names), &ours);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	if (rc < 0) {
		set_printf(why, "%s cannot be read: its main database is damaged (%s); restore the "
		           "state directory from a backup", file, strerror(-rc));
		return rc;
	}
	if (!ours && names[0]) {
		set_printf(why, "%s is an LMDB file of another program, not a dbtd store: it holds "
		           "none of dbtd's databases (it holds %s). Nothing was changed; give dbtd "
		           "a state directory of its own (--state-dir)", file, names);
		return STORE_EDAMAGED;
	}
	return 0;
}

int
store_file_probe(const char *dir, char **why)
{
	char *file = xasprintf("%s/data.mdb", dir);
	struct meta m[2];
	struct stat sb;
	const struct meta *cur;
	uint64_t need;
	int fd = -1, rc;

	*why = NULL;
	memset(m, 0, sizeof(m));
	if (file == NULL)
		return -ENOMEM;
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			set_printf(why, "cannot open %s: %s", file, strerror(-rc));
		goto out;
	}
	if (fstat(fd, &sb) < 0) {
		rc = -errno;
		set_printf(why, "cannot stat %s: %s", file, strerror(-rc));
		goto out;
	}
	if (sb.st_size == 0) {
		rc = -ENOENT; /* an empty file: LMDB starts a new store in it */
		goto out;
	}
	rc = read_meta(fd, 0, &m[0]);
	if (rc == 0 && is_meta(&m[0]) && psize_ok(m[0].psize))
		rc = read_meta(fd, m[0].psize, &m[1]);
	if (rc < 0 && rc != -ENODATA) {
		set_printf(why, "cannot read %s: %s", file, strerror(-rc));
		goto out;
	}
	rc = STORE_EDAMAGED;
	if (!is_meta(&m[0]) || !psize_ok(m[0].psize)) {
		set_printf(why, "%s is not an LMDB file (it does not start with LMDB's meta page): "
		           "it is not a dbtd store, or its first page is damaged; restore the state "
		           "directory from a backup", file);
		goto out;
	}
	if (m[0].version != MDB_DATA_VERSION) {
		set_printf(why, "%s is an LMDB file of data version %u, written by another LMDB "
		           "release; this dbtd's LMDB (%s) reads version %u. Open it with the dbtd "
		           "that wrote it, or restore the state directory from a backup", file,
		           m[0].version, mdb_version(NULL, NULL, NULL), MDB_DATA_VERSION);
		goto out;
	}
	if ((off_t)sb.st_size < (off_t)m[0].psize * 2 || !is_meta(&m[1]) ||
	    m[1].version != MDB_DATA_VERSION) {
		set_printf(why, "%s is damaged: its second meta page is %s; restore the state "
		           "directory from a backup", file,
		           (off_t)sb.st_size < (off_t)m[0].psize * 2 ? "missing (the file is "
		           "truncated)" : "not one");
		goto out;
	}
	cur = m[1].txnid > m[0].txnid ? &m[1] : &m[0];
	if (cur->last_pg >= ((uint64_t)1 << 40) ||
	    (cur->root0 != P_INVALID && cur->root0 > cur->last_pg) ||
	    (cur->root1 != P_INVALID && cur->root1 > cur->last_pg)) {
		set_printf(why, "%s is damaged: its meta page names page %llu as the last one, "
		           "with roots at pages %lld and %lld; restore the state directory from a "
		           "backup", file, (unsigned long long)cur->last_pg,
		           cur->root0 == P_INVALID ? -1LL : (long long)cur->root0,
		           cur->root1 == P_INVALID ? -1LL : (long long)cur->root1);
		goto out;
	}
	/*
	 * The pages up to last_pg need not all be in the file (a page a
	 * transaction allocated and freed again is never written), but both
	 * roots were written by the last commit.
	 */
	need = 0;
	if (cur->root0 != P_INVALID)
		need = (cur->root0 + 1) * m[0].psize;
	if (cur->root1 != P_INVALID && (cur->root1 + 1) * m[0].psize > need)
		need = (cur->root1 + 1) * m[0].psize;
	if ((uint64_t)sb.st_size < need) {
		set_printf(why, "%s is truncated: it has %lld bytes, and its root pages need %llu "
		           "(pages of %u bytes); restore the state directory from a backup",
		           file, (long long)sb.st_size, (unsigned long long)need, m[0].psize);
		goto out;
	}
	close(fd);
	fd = -1;
	rc = probe_owner(dir, file, why);
out:
	if (fd >= 0)
		close(fd);
	free(file);
	return rc;
}
