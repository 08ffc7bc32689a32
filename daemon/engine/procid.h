/*
 * procid.h - telling whether a pid is still the process it was.
 *
 * A pid alone names a process only while that process lives: after it dies
 * (and across a reboot) the number is given to another.  The boot id
 * (/proc/sys/kernel/random/boot_id) and the process's start time (field 22
 * of /proc/PID/stat, clock ticks since boot) together name one process for
 * good, so a pid recorded with them can be checked before it is signalled.
 */
#ifndef DBTD_PROCID_H
#define DBTD_PROCID_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROCID_BOOT_ID_LEN 36 /* a UUID: 8-4-4-4-12 hex digits */
#define PROCID_BOOT_ID_SIZE (PROCID_BOOT_ID_LEN + 1)

/* The fields of /proc/PID/stat dbtd uses. */
struct procid_stat {
	pid_t pid;           /* field 1 */
	char state;          /* field 3: R, S, D, Z, ... */
	pid_t pgrp;          /* field 5: process group */
	uint64_t start_time; /* field 22: clock ticks after boot */
};

/*
 * procid_parse_boot_id - the boot id in buf (len bytes: a UUID, then at most
 * a newline), copied NUL-terminated to out.  0 or -EINVAL.
 */
int procid_parse_boot_id(const char *buf, size_t len, char out[PROCID_BOOT_ID_SIZE]);

/*
 * procid_parse_stat - the fields of a /proc/PID/stat line (len bytes, not
 * necessarily NUL-terminated).  The comm field may hold spaces and ')', so
 * the fields after it are read after the last ')'.  0 or -EINVAL.
 */
int procid_parse_stat(const char *buf, size_t len, struct procid_stat *out);

/* procid_boot_id - this boot's id.  0 or -errno. */
int procid_boot_id(char out[PROCID_BOOT_ID_SIZE]);

/* procid_read - /proc/pid/stat of a process.  0, -ESRCH (none), or -errno. */
int procid_read(pid_t pid, struct procid_stat *out);

/*
 * procid_of - what names process pid for good: this boot's id and the
 * process's start time.  0 or -errno (-ESRCH: no such process).
 */
int procid_of(pid_t pid, char boot_id[PROCID_BOOT_ID_SIZE], uint64_t *start_time);

/*
 * procid_matches - whether pid is still the process recorded as (boot_id,
 * start_time): 1 when it is (same boot, same start time), 0 when it is not
 * or cannot be shown to be (another boot, no such process, another start
 * time, nothing recorded: empty boot_id or start_time 0), -errno when /proc
 * cannot be read.
 */
int procid_matches(pid_t pid, const char *boot_id, uint64_t start_time);

/*
 * procid_leads_group - procid_matches, and that process still leads its own
 * process group (its pgrp is pid), so `kill(-pid, ...)` reaches that
 * process's group and no other: 1, 0 or -errno as procid_matches.
 */
int procid_leads_group(pid_t pid, const char *boot_id, uint64_t start_time);

#endif /* DBTD_PROCID_H */
