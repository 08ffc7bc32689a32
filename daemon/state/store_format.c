/* store_format.c - the store's format version and its migrations (see store_format.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "store_file.h"
#include "store_format.h"
#include "util.h"

#define META_DB "meta"
#define FORMAT_KEY "format"

/* The kinds that get ids, with their databases: the counters of format 2. */
static const char *const id_dbs[] = { "projects", "environments", "jobs", "runs" };

/* The steps from format 1 up to STORE_FORMAT_CURRENT, by `from`. */
static int step_1_to_2(MDB_txn *txn, char *done, size_t donelen);

static const struct store_migration steps[] = {
	{ 1, "record the store format and the id counters", step_1_to_2 },
};

int
store_format_map_rc(int rc)
{
	switch (rc) {
	case MDB_SUCCESS: return 0;
	case MDB_NOTFOUND: return -ENOENT;
	case MDB_KEYEXIST: return -EEXIST;
	case MDB_MAP_FULL: return STORE_EMAPFULL;
	case MDB_READERS_FULL: return -EAGAIN;
	case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_CURSOR_FULL:
	case MDB_INCOMPATIBLE: case MDB_INVALID: case MDB_VERSION_MISMATCH:
		return STORE_EDAMAGED; /* the reader says where (store_damage) */
	default:
		if (rc > 0)
			return -rc;
		log_err("store: %s", mdb_strerror(rc));
		return -EIO;
	}
}

const char *
store_format_writer(void)
{
	return "dbtd " PACKAGE_VERSION;
}

void
store_format_kill_point(const char *point)
{
	const char *want = getenv("DBTD_TEST_MIGRATION_KILL");

	if (want && strcmp(want, point) == 0) {
		log_warn("DBTD_TEST_MIGRATION_KILL=%s: killing myself here", point);
		raise(SIGKILL);
	}
}

/* Read a 64-bit big-endian integer. */
static uint64_t
be64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

int
store_format_get(MDB_txn *txn, Dbtd__StoreFormat **out)
{
	MDB_dbi meta;
	MDB_val k = { strlen(FORMAT_KEY), (void *)FORMAT_KEY }, v;
	int rc;

	*out = NULL;
	rc = mdb_dbi_open(txn, META_DB, 0, &meta);
	if (rc == MDB_NOTFOUND)
		return 0; /* format 1 */
	if (rc == 0)
		rc = mdb_get(txn, meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return store_format_map_rc(rc);
	*out = dbtd__store_format__unpack(NULL, v.mv_size, v.mv_data);
	return *out ? 0 : -EBADMSG;
}

int
store_format_put(MDB_txn *txn, const Dbtd__StoreFormat *f)
{
	MDB_dbi meta;
	MDB_val k = { strlen(FORMAT_KEY), (void *)FORMAT_KEY }, v;
	uint8_t *buf;
	int rc = mdb_dbi_open(txn, META_DB, MDB_CREATE, &meta);

	if (rc)
		return store_format_map_rc(rc);
	buf = malloc(dbtd__store_format__get_packed_size(f) + 1);
	if (buf == NULL)
		return -ENOMEM;
	v.mv_size = dbtd__store_format__pack(f, buf);
	v.mv_data = buf;
	rc = mdb_put(txn, meta, &k, &v, 0);
	free(buf);
	return store_format_map_rc(rc);
}

/* One past the largest 8-byte key of database name (1 when empty or absent). */
static int
past_last_key(MDB_txn *txn, const char *name, uint64_t *id)
{
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_dbi_open(txn, name, 0, &dbi);

	*id = 1;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0)
		rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return store_format_map_rc(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return store_format_map_rc(rc);
	if (k.mv_size == 8)
		*id = be64(k.mv_data) + 1;
	return 0;
}

int
store_format_counters(MDB_txn *txn, char *done, size_t donelen)
{
	MDB_dbi meta;
	size_t off = 0;
	int rc = mdb_dbi_open(txn, META_DB, MDB_CREATE, &meta);

	if (rc)
		return store_format_map_rc(rc);
	if (donelen)
		done[0] = '\0';
	for (size_t i = 0; i < sizeof(id_dbs) / sizeof(id_dbs[0]); i++) {
		char key[32];
		uint8_t be[8];
		uint64_t next, have = 0;
		MDB_val k, v;

		rc = past_last_key(txn, id_dbs[i], &next);
		if (rc < 0)
			return rc;
		snprintf(key, sizeof(key), "next_id.%s", id_dbs[i]);
		k.mv_size = strlen(key);
		k.mv_data = key;
		if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == 8)
			have = be64(v.mv_data);
		if (have > next)
			next = have;
		for (int j = 7; j >= 0; j--)
			be[j] = (uint8_t)(next >> (8 * (7 - j)));
		v.mv_size = 8;
		v.mv_data = be;
		rc = mdb_put(txn, meta, &k, &v, 0);
		if (rc)
			return store_format_map_rc(rc);
		if (off < donelen)
			off += (size_t)snprintf(done + off, donelen - off, "%snext %s id %llu",
			                        i ? ", " : "", id_dbs[i], (unsigned long long)next);
	}
	return 0;
}

/* 1 → 2: the format record (written by the caller) and the id counters. */
static int
step_1_to_2(MDB_txn *txn, char *done, size_t donelen)
{
	return store_format_counters(txn, done, donelen);
}

/* Does dir hold a store (data.mdb)? */
static int
store_exists(const char *dir)
{
	char *p = xasprintf("%s/data.mdb", dir);
	struct stat sb;
	int r = p && stat(p, &sb) == 0;

	free(p);
	return r;
}

int
store_format_env_open(const char *dir, unsigned flags, MDB_env **env)
{
	int rc = mdb_env_create(env);

	if (rc)
		return store_format_map_rc(rc);
	mdb_env_set_mapsize(*env, STORE_MAP_SIZE);
	mdb_env_set_maxdbs(*env, STORE_MAX_DBS);
	rc = mdb_env_open(*env, dir, flags | MDB_NOTLS, 0600);
	if (rc) {
		mdb_env_close(*env);
		*env = NULL;
	}
	return store_format_map_rc(rc);
}

int
store_format_read(const char *dir, Dbtd__StoreFormat **out)
{
	MDB_env *env;
	MDB_txn *txn;
	int rc;

	*out = NULL;
	if (!store_exists(dir))
		return -ENOENT;
	rc = store_format_env_open(dir, MDB_RDONLY, &env);
	if (rc < 0)
		return rc;
	rc = store_format_map_rc(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	if (rc == 0) {
		rc = store_format_get(txn, out);
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
	return rc;
}

/* The bytes the store's pages take (what a compacting copy needs at most). */
static int
used_bytes(MDB_env *env, uint64_t *bytes)
{
	MDB_envinfo info;
	MDB_stat st;
	int rc = mdb_env_info(env, &info);

	if (rc == 0)
		rc = mdb_env_stat(env, &st);
	if (rc)
		return store_format_map_rc(rc);
	*bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	return 0;
}

/* Remove dir/backup-format-* other than keep (and any left-over .tmp). */
static void
remove_backups(const char *dir, const char *keep)
{
	DIR *dp = opendir(dir);
	struct dirent *de;

	if (dp == NULL)
		return;
	while ((de = readdir(dp)) != NULL) {
		if (strncmp(de->d_name, "backup-format-", 14) != 0 ||
		    (keep && strcmp(de->d_name, keep) == 0))
			continue;
		char *p = xasprintf("%s/%s", dir, de->d_name);
		if (p && rm_rf(p) == 0)
			log_info("removed the backup %s of an earlier migration", p);
		free(p);
	}
	closedir(dp);
}

/*
 * Hard-link the artifact blob store src (blobs/xx/<sha256>, files that are
 * never changed once written) into dst, so the backup is a whole state
 * directory at no cost in space.  0 or -errno.
 */
static int
link_blobs(const char *src, const char *dst)
{
	DIR *top = opendir(src);
	struct dirent *de;
	int rc = 0;

	if (top == NULL)
		return errno == ENOENT ? 0 : -errno;
	rc = mkdir_p(dst, 0700);
	while (rc == 0 && (de = readdir(top)) != NULL) {
		char *sd, *dd;
		DIR *sub;
		struct dirent *fe;

		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue; /* tmp.* files of a blob being written */
		sd = xasprintf("%s/%s", src, de->d_name);
		dd = xasprintf("%s/%s", dst, de->d_name);
		sub = sd ? opendir(sd) : NULL;
		if (sd == NULL || dd == NULL || sub == NULL || (rc = mkdir_p(dd, 0700)) < 0) {
			if (rc == 0)
				rc = sd && dd ? -errno : -ENOMEM;
		} else {
			while (rc == 0 && (fe = readdir(sub)) != NULL) {
				if (fe->d_name[0] == '.')
					continue;
				char *sf = xasprintf("%s/%s", sd, fe->d_name);
				char *df = xasprintf("%s/%s", dd, fe->d_name);
				if (sf == NULL || df == NULL)
					rc = -ENOMEM;
				else if (link(sf, df) < 0 && errno != EEXIST)
					rc = -errno;
				free(sf);
				free(df);
			}
		}
		if (sub)
			closedir(sub);
		free(sd);
		free(dd);
	}
	closedir(top);
	return rc;
}

/*
 * Write a compacting copy of env to dir/backup-format-<format>, through a
 * .tmp directory renamed when complete.  Checks the free space first.
 */
static int
write_backup(MDB_env *env, const char *dir, uint32_t format, char **why)
{
	char *tmp = xasprintf("%s/backup-format-%u.tmp", dir, format);
	char *dst = xasprintf("%s/backup-format-%u", dir, format);
	char *file = NULL;
	struct statvfs vfs;
	uint64_t used = 0, avail, need;
	struct stat sb;
	int rc;

	if (tmp == NULL || dst == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = used_bytes(env, &used);
	if (rc == 0 && statvfs(dir, &vfs) < 0)
		rc = -errno;
	if (rc < 0) {
		set_printf(why, "cannot tell the size of the store or the free space in %s: %s",
		        dir, strerror(-rc));
		goto out;
	}
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	need = used + used / 8 + (16u << 20); /* the copy, and room for the migration */
	if (avail < need) {
		rc = -ENOSPC;
		set_printf(why, "the backup of the store before migrating needs %llu MiB free in %s, "
		        "and %llu MiB are free; free some space and start dbtd again",
		        (unsigned long long)(need >> 20), dir, (unsigned long long)(avail >> 20));
		goto out;
	}
	rm_rf(tmp);
	rc = mkdir_p(tmp, 0700);
	if (rc == 0)
		rc = store_format_map_rc(mdb_env_copy2(env, tmp, MDB_CP_COMPACT));
	if (rc == 0 && (file = xasprintf("%s/data.mdb", tmp)) != NULL) {
		/* it holds the secrets data.mdb holds: private like it */
		int fd = open(file, O_RDONLY);
		if (fd < 0 || fchmod(fd, 0600) < 0 || fsync(fd) < 0)
			rc = -errno;
		if (fd >= 0)
			close(fd);
	}
	if (rc == 0) {
		char *sb_src = xasprintf("%s/blobs", dir), *sb_dst = xasprintf("%s/blobs", tmp);
		rc = sb_src && sb_dst ? link_blobs(sb_src, sb_dst) : -ENOMEM;
		free(sb_src);
		free(sb_dst);
	}
	if (rc == 0 && lstat(dst, &sb) == 0)
		rc = rm_rf(dst);
	if (rc == 0 && rename(tmp, dst) < 0)
		rc = -errno;
	if (rc < 0) {
		set_printf(why, "cannot write the backup %s: %s", dst, strerror(-rc));
		rm_rf(tmp);
		goto out;
	}
	{
		int dfd = open(dir, O_RDONLY | O_DIRECTORY);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	log_info("backup of format %u written to %s (from a store of %.1f MiB)", format, dst,
	         (double)used / (1 << 20));
out:
	free(tmp);
	free(dst);
	free(file);
	return rc;
}

/* Run the steps from format `have` up to target, each in a write transaction. */
static int
run_steps(MDB_env *env, const char *dir, const struct store_migration *tab, size_t n,
          uint32_t have, uint32_t target, uint32_t first, Dbtd__StoreFormat *fmt, char **why)
{
	while (have < target) {
		const struct store_migration *m = NULL;
		char done[512] = "", point[32];
		MDB_txn *txn;
		int rc;

		for (size_t i = 0; i < n; i++)
			if (tab[i].from == have)
				m = &tab[i];
		if (m == NULL) {
			set_printf(why, "no migration from format %u", have);
			return -ENOSYS;
		}
		rc = store_format_map_rc(mdb_txn_begin(env, NULL, 0, &txn));
		if (rc == 0)
			rc = m->fn(txn, done, sizeof(done));
		if (rc == 0) {
			fmt->format = have + 1;
			fmt->written_by = (char *)store_format_writer();
			if (fmt->format == target) {
				fmt->migrating_from = 0;
				fmt->migrated_from = first;
				fmt->migrated_at_ms = now_ms();
			} else {
				fmt->migrating_from = first;
			}
			rc = store_format_put(txn, fmt);
		}
		snprintf(point, sizeof(point), "before-commit-%u", have + 1);
		if (rc == 0)
			store_format_kill_point(point);
		if (rc == 0)
			rc = store_format_map_rc(mdb_txn_commit(txn));
		else
			mdb_txn_abort(txn);
		if (rc < 0) {
			set_printf(why, "migration %u→%u (%s) failed: %s; the store in %s is left at "
			        "format %u%s", have, have + 1, m->what, strerror(-rc), dir, have,
			        have == first ? ", as it was" : "");
			return rc;
		}
		log_info("migration %u→%u: %s: %s", have, have + 1, m->what, done);
		snprintf(point, sizeof(point), "after-commit-%u", have + 1);
		store_format_kill_point(point);
		have++;
	}
	return 0;
}

int
store_format_migrate(const char *dir, const struct store_migration *tab, size_t n,
                     uint32_t target, char **why)
{
	Dbtd__StoreFormat *old = NULL, fmt = DBTD__STORE_FORMAT__INIT;
	MDB_env *env = NULL;
	MDB_txn *txn;
	uint32_t have, first;
	char *keep = NULL;
	int rc;

	*why = NULL;
	if (!store_exists(dir))
		return 0; /* a new store: store_open writes its format record */
	/* not LMDB, another LMDB version, truncated, another program's: said exactly */
	rc = store_file_probe(dir, why);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	/* first read only: a store of a newer format is not written at all */
	rc = store_format_read(dir, &old);
	if (rc < 0) {
		set_printf(why, "cannot read the format of the store in %s: %s", dir,
		        rc == -EBADMSG ? "its format record does not decode" : strerror(-rc));
		return rc;
	}
	have = old ? old->format : 1;
	if (have > target) {
		set_printf(why, "the store in %s has format %u, written by %s; this %s reads formats "
		        "%u to %u. Nothing was changed: run %s or later on it", dir, have,
		        old->written_by[0] ? old->written_by : "an unknown dbtd",
		        store_format_writer(), STORE_FORMAT_OLDEST, target,
		        old->written_by[0] ? old->written_by : "that dbtd");
		rc = STORE_ENEWER;
		goto out;
	}
	if (have == target)
		goto out;
	if (have < STORE_FORMAT_OLDEST) {
		set_printf(why, "the store in %s has format %u, which this dbtd cannot migrate", dir, have);
		rc = -EPROTO;
		goto out;
	}
	/* a migration cut short resumes; its backup is that of its first format */
	first = old && old->migrating_from ? old->migrating_from : have;
	if (old) {
		fmt.created_at_ms = old->created_at_ms;
		fmt.migrated_at_ms = old->migrated_at_ms;
		fmt.migrated_from = old->migrated_from;
	}
	if (have == first)
		log_info("store in %s has format %u%s; migrating to format %u", dir, have,
		         have == 1 ? " (dbtd 0.1.0 layout)" : "", target);
	else
		log_info("store in %s: resuming the migration from format %u at format %u; "
		         "migrating to format %u", dir, first, have, target);
	rc = store_format_env_open(dir, 0, &env);
	if (rc < 0) {
		set_printf(why, "cannot open the store in %s to migrate it: %s", dir, strerror(-rc));
		goto out;
	}
	keep = xasprintf("backup-format-%u", first);
	if (keep == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (have == first) {
		rc = write_backup(env, dir, first, why);
		if (rc < 0)
			goto out;
		store_format_kill_point("after-backup");
	}
	rc = run_steps(env, dir, tab, n, have, target, first, &fmt, why);
	if (rc < 0)
		goto out;
	/* make sure the result reads back as the target format */
	rc = store_format_map_rc(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	if (rc == 0) {
		Dbtd__StoreFormat *now = NULL;
		rc = store_format_get(txn, &now);
		if (rc == 0 && (now == NULL || now->format != target))
			rc = -EIO;
		if (now)
			dbtd__store_format__free_unpacked(now, NULL);
		mdb_txn_abort(txn);
	}
	if (rc < 0) {
		set_printf(why, "the migrated store in %s does not read back as format %u", dir, target);
		goto out;
	}
	log_info("store migrated to format %u; the backup %s/%s is kept until the next "
	         "migration", target, dir, keep);
	remove_backups(dir, keep);
out:
	if (env)
		mdb_env_close(env);
	if (old)
		dbtd__store_format__free_unpacked(old, NULL);
	free(keep);
	return rc;
}

int
store_format_prepare(const char *dir, char **why)
{
	return store_format_migrate(dir, steps, sizeof(steps) / sizeof(steps[0]),
	                            STORE_FORMAT_CURRENT, why);
}
