/* procid.c - telling whether a pid is still the process it was (see procid.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "procid.h"

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define STAT_MAX 4096 /* /proc/PID/stat is well under 1 KiB */
#define STAT_FIELD_STATE 3
#define STAT_FIELD_PGRP 5
#define STAT_FIELD_STARTTIME 22

/* Parse the decimal digits [p, end) into *out.  0 or -EINVAL (also on overflow). */
static int
parse_u64(const char *p, const char *end, uint64_t *out)
{
	uint64_t v = 0;

	if (p >= end)
		return -EINVAL;
	for (; p < end; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Parse the decimal pid [p, end) (0 allowed: kernel threads have pgrp 0).  0 or -EINVAL. */
static int
parse_pid(const char *p, const char *end, pid_t *out)
{
	uint64_t v;

	if (parse_u64(p, end, &v) < 0 || v > INT_MAX)
		return -EINVAL;
	*out = (pid_t)v;
	return 0;
}

/* Whether c is a hex digit. */
static int
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int
procid_parse_boot_id(const char *buf, size_t len, char out[PROCID_BOOT_ID_SIZE])
{
	if (buf == NULL)
		return -EINVAL;
	if (len == PROCID_BOOT_ID_LEN + 1 && buf[PROCID_BOOT_ID_LEN] == '\n')
		len--;
	if (len != PROCID_BOOT_ID_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? buf[i] != '-' : !is_hex(buf[i]))
			return -EINVAL;
	}
	memcpy(out, buf, PROCID_BOOT_ID_LEN);
	out[PROCID_BOOT_ID_LEN] = '\0';
	return 0;
}

int
procid_parse_stat(const char *buf, size_t len, struct procid_stat *out)
{
	const char *end, *open, *close = NULL, *p;
	struct procid_stat st = { 0 };
	uint64_t start = 0;
	int field, have_start = 0;

	if (buf == NULL || len == 0)
		return -EINVAL;
	end = memchr(buf, '\0', len);
	if (end == NULL)
		end = buf + len;
	if (end > buf && end[-1] == '\n')
		end--;
	/* "pid (comm) state ...": comm is whatever lies between the first '('
	 * and the last ')', spaces and parentheses included */
	open = memchr(buf, '(', (size_t)(end - buf));
	if (open == NULL || open < buf + 2 || open[-1] != ' ')
		return -EINVAL;
	if (parse_pid(buf, open - 1, &st.pid) < 0 || st.pid == 0)
		return -EINVAL;
	for (p = end; p > open; p--) {
		if (p[-1] == ')') {
			close = p - 1;
			break;
		}
	}
	if (close == NULL)
		return -EINVAL;
	/* fields 3 ... each after exactly one space */
	p = close + 1;
	for (field = STAT_FIELD_STATE; field <= STAT_FIELD_STARTTIME; field++) {
		const char *tok;

		if (p >= end || *p != ' ')
			return -EINVAL;
		tok = ++p;
		while (p < end && *p != ' ')
			p++;
		if (p == tok)
			return -EINVAL;
		if (field == STAT_FIELD_STATE) {
			if (p - tok != 1)
				return -EINVAL;
			st.state = *tok;
		} else if (field == STAT_FIELD_PGRP) {
			if (parse_pid(tok, p, &st.pgrp) < 0)
				return -EINVAL;
		} else if (field == STAT_FIELD_STARTTIME) {
			if (parse_u64(tok, p, &start) < 0)
				return -EINVAL;
			have_start = 1;
		}
	}
	if (!have_start)
		return -EINVAL;
	st.start_time = start;
	*out = st;
	return 0;
}

/* Read a small file whole into buf (size bytes at most); *len its length.  0 or -errno. */
static int
read_small(const char *path, char *buf, size_t size, size_t *len)
{
	size_t have = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	while (have < size) {
		ssize_t n = read(fd, buf + have, size - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	*len = have;
	return rc;
}

int
procid_boot_id(char out[PROCID_BOOT_ID_SIZE])
{
	char buf[64];
	size_t len;
	int rc = read_small(BOOT_ID_PATH, buf, sizeof(buf), &len);

	return rc < 0 ? rc : procid_parse_boot_id(buf, len, out);
}

int
procid_read(pid_t pid, struct procid_stat *out)
{
	char path[64], buf[STAT_MAX];
	size_t len;
	int rc;

	if (pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	rc = read_small(path, buf, sizeof(buf), &len);
	if (rc == -ENOENT)
		return -ESRCH;
	if (rc < 0)
		return rc;
	if (len == 0) /* it died between open and read */
		return -ESRCH;
	rc = procid_parse_stat(buf, len, out);
	if (rc == 0 && out->pid != pid)
		rc = -EINVAL;
	return rc;
}

int
procid_of(pid_t pid, char boot_id[PROCID_BOOT_ID_SIZE], uint64_t *start_time)
{
	struct procid_stat st;
	int rc = procid_boot_id(boot_id);

	if (rc == 0)
		rc = procid_read(pid, &st);
	if (rc == 0)
		*start_time = st.start_time;
	return rc;
}

/* procid_matches, and the process's stat in *st when it matches. */
static int
check(pid_t pid, const char *boot_id, uint64_t start_time, struct procid_stat *st)
{
	char now[PROCID_BOOT_ID_SIZE];
	int rc;

	if (pid <= 0 || boot_id == NULL || boot_id[0] == '\0' || start_time == 0)
		return 0;
	rc = procid_boot_id(now);
	if (rc < 0)
		return rc;
	if (strcmp(now, boot_id) != 0)
		return 0;
	rc = procid_read(pid, st);
	if (rc == -ESRCH)
		return 0;
	if (rc < 0)
		return rc;
	return st->start_time == start_time;
}

int
procid_matches(pid_t pid, const char *boot_id, uint64_t start_time)
{
	struct procid_stat st;

	return check(pid, boot_id, start_time, &st);
}

int
procid_leads_group(pid_t pid, const char *boot_id, uint64_t start_time)
{
	struct procid_stat st;
	int rc = check(pid, boot_id, start_time, &st);

	return rc == 1 ? st.pgrp == pid : rc;
}
