/* test_procid.c - /proc/PID/stat and boot id parsing, and matching live processes. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "procid.h"

/* The fields after comm of a real stat line; starttime (field 22) is 3499453. */
#define AFTER_COMM "R 4681 4682 11430 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 3499453 " \
	"3133440 358 18446744073709551615 93926497857536 93926497877417 140721964898576 0 0 " \
	"0 0 0 0 0 0 0 17 1 0 0 0 0 0 93926497893424 93926497895040 93927340367872 " \
	"140721964907203 140721964907223 140721964907223 140721964908523 0\n"

/* Parse a NUL-terminated line; the result code. */
static int
parse(const char *line, struct procid_stat *st)
{
	return procid_parse_stat(line, strlen(line), st);
}

/* A plain line: pid, state, process group and start time. */
static void
test_parse_plain(void **state)
{
	struct procid_stat st;

	(void)state;
	assert_int_equal(parse("4684 (cat) " AFTER_COMM, &st), 0);
	assert_int_equal(st.pid, 4684);
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.pgrp, 4682);
	assert_true(st.start_time == 3499453);
	/* no newline, and the last field that is needed is the last one there */
	assert_int_equal(parse("7 (x) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42", &st), 0);
	assert_int_equal(st.pgrp, 7);
	assert_true(st.start_time == 42);
}

/* comm may hold spaces and ')' (even "x) R 1 2 3"): fields follow the last ')'. */
static void
test_parse_hostile_comm(void **state)
{
	struct procid_stat st;

	(void)state;
	assert_int_equal(parse("4684 (a b) c) " AFTER_COMM, &st), 0);
	assert_int_equal(st.pgrp, 4682);
	assert_true(st.start_time == 3499453);
	assert_int_equal(parse("99 (x) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20) "
	                       AFTER_COMM, &st), 0);
	assert_int_equal(st.pid, 99);
	assert_int_equal(st.state, 'R');
	assert_int_equal(st.pgrp, 4682);
	assert_true(st.start_time == 3499453);
	assert_int_equal(parse("5 ((() " AFTER_COMM, &st), 0);
	assert_int_equal(st.pid, 5);
	assert_int_equal(parse("5 () " AFTER_COMM, &st), 0); /* empty comm */
	assert_int_equal(st.pid, 5);
}

/* The length is honoured: the buffer need not end with NUL. */
static void
test_parse_not_terminated(void **state)
{
	const char *line = "4684 (cat) " AFTER_COMM;
	size_t n = strlen(line);
	char *buf = malloc(n + 8);
	struct procid_stat st;

	(void)state;
	assert_non_null(buf);
	memcpy(buf, line, n);
	memcpy(buf + n, ") 1 2 3 ", 8); /* a later ')' beyond len must not count */
	assert_int_equal(procid_parse_stat(buf, n, &st), 0);
	assert_true(st.start_time == 3499453);
	/* cut inside starttime: a shorter number, still well-formed */
	assert_int_equal(procid_parse_stat(buf, (size_t)(strstr(line, " 3133440") - line) - 2,
	                                   &st), 0);
	assert_true(st.start_time == 34994);
	/* cut before starttime */
	assert_int_equal(procid_parse_stat(buf, (size_t)(strstr(line, "3499453") - line), &st),
	                 -EINVAL);
	free(buf);
}

/* Malformed lines are refused and leave the output alone. */
static void
test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"4684",
		"4684 cat R 1 2 3",
		"4684 (cat R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22",
		"4684 cat) " AFTER_COMM,
		"(cat) " AFTER_COMM,
		" (cat) " AFTER_COMM,
		"x (cat) " AFTER_COMM,
		"-1 (cat) " AFTER_COMM,
		"0 (cat) " AFTER_COMM,
		"99999999999 (cat) " AFTER_COMM,
		"4684(cat) " AFTER_COMM,
		"4684  (cat) " AFTER_COMM,
		"4684 (cat)" AFTER_COMM,
		"4684 (cat)  " AFTER_COMM,
		"4684 (cat) RR 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
		"4684 (cat) R 1 -2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
		"4684 (cat) R 1 x 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
		"4684 (cat) R 1 2147483648 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19",
		"4684 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18",
		"4684 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 ",
		"4684 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5",
		"4684 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 0x10",
		"4684 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 18446744073709551616",
		"4684 (cat) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18  19 20",
		"4684 (cat) R 1 2\n3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
	};
	struct procid_stat st = { .pid = 123, .pgrp = 456, .start_time = 789 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &st) != -EINVAL)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
	assert_int_equal(procid_parse_stat(NULL, 10, &st), -EINVAL);
	assert_int_equal(procid_parse_stat("1 (a) R", 0, &st), -EINVAL);
	assert_int_equal(st.pid, 123);
	assert_int_equal(st.pgrp, 456);
	assert_true(st.start_time == 789);
	/* the largest numbers are fine */
	assert_int_equal(parse("4684 (cat) R 1 2147483647 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 "
	                       "18446744073709551615", &st), 0);
	assert_int_equal(st.pgrp, 2147483647);
	assert_true(st.start_time == UINT64_MAX);
}

/* Boot ids: a UUID with or without its newline, nothing else. */
static void
test_parse_boot_id(void **state)
{
	static const char *const bad[] = {
		"", "\n", "99c3e4fb-f061-4373-b1e7-a281346bb2f", "99c3e4fb-f061-4373-b1e7-a281346bb2f6a",
		"99c3e4fb-f061-4373-b1e7-a281346bb2f6\n\n", "99c3e4fbf-061-4373-b1e7-a281346bb2f6",
		"99c3e4fb-f061-4373-b1e7-a281346bb2g6", "99c3e4fb-f061-4373-b1e7-a281346bb2f6 ",
		"99c3e4fb f061-4373-b1e7-a281346bb2f6",
	};
	char out[PROCID_BOOT_ID_SIZE];
	const char *ok = "99c3e4fb-f061-4373-b1e7-a281346bb2f6\n";

	(void)state;
	assert_int_equal(procid_parse_boot_id(ok, strlen(ok), out), 0);
	assert_string_equal(out, "99c3e4fb-f061-4373-b1e7-a281346bb2f6");
	assert_int_equal(procid_parse_boot_id(ok, PROCID_BOOT_ID_LEN, out), 0);
	assert_string_equal(out, "99c3e4fb-f061-4373-b1e7-a281346bb2f6");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (procid_parse_boot_id(bad[i], strlen(bad[i]), out) != -EINVAL)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
	assert_int_equal(procid_parse_boot_id(NULL, 0, out), -EINVAL);
}

/* This process matches itself, and nothing else does. */
static void
test_self(void **state)
{
	char boot[PROCID_BOOT_ID_SIZE], again[PROCID_BOOT_ID_SIZE], other[PROCID_BOOT_ID_SIZE];
	struct procid_stat st;
	uint64_t start = 0;

	(void)state;
	assert_int_equal(procid_boot_id(boot), 0);
	assert_int_equal(strlen(boot), PROCID_BOOT_ID_LEN);
	assert_int_equal(procid_boot_id(again), 0);
	assert_string_equal(boot, again);
	assert_int_equal(procid_read(getpid(), &st), 0);
	assert_int_equal(st.pid, getpid());
	assert_int_equal(st.pgrp, getpgrp());
	assert_int_equal(st.state, 'R');
	assert_int_equal(procid_of(getpid(), again, &start), 0);
	assert_string_equal(boot, again);
	assert_true(start == st.start_time && start > 0);

	assert_int_equal(procid_matches(getpid(), boot, start), 1);
	assert_int_equal(procid_matches(getpid(), boot, start + 1), 0);
	assert_int_equal(procid_matches(getpid(), boot, start - 1), 0);
	memcpy(other, boot, sizeof(other));
	other[0] = other[0] == '0' ? '1' : '0'; /* another boot */
	assert_int_equal(procid_matches(getpid(), other, start), 0);
	/* nothing recorded (a record of an older dbtd): never a match */
	assert_int_equal(procid_matches(getpid(), "", start), 0);
	assert_int_equal(procid_matches(getpid(), NULL, start), 0);
	assert_int_equal(procid_matches(getpid(), boot, 0), 0);
	assert_int_equal(procid_matches(0, boot, start), 0);
	assert_int_equal(procid_matches(-1, boot, start), 0);
	assert_int_equal(procid_leads_group(getpid(), boot, start), getpgrp() == getpid());
	assert_int_equal(procid_read(0, &st), -EINVAL);
}

/* Fork a child that sleeps, in its own process group when own_group. */
static pid_t
spawn(int own_group)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (own_group)
			setpgid(0, 0);
		for (;;)
			pause();
	}
	if (own_group)
		setpgid(pid, pid);
	return pid;
}

/* A child leads its group or not; once reaped it matches no more. */
static void
test_child(void **state)
{
	char boot[PROCID_BOOT_ID_SIZE];
	uint64_t start = 0;
	pid_t leader = spawn(1), member = spawn(0);
	int st;

	(void)state;
	assert_int_equal(procid_of(leader, boot, &start), 0);
	assert_int_equal(procid_matches(leader, boot, start), 1);
	assert_int_equal(procid_leads_group(leader, boot, start), 1);

	assert_int_equal(procid_of(member, boot, &start), 0);
	assert_int_equal(procid_matches(member, boot, start), 1);
	assert_int_equal(procid_leads_group(member, boot, start), 0); /* in our group */

	assert_int_equal(procid_of(leader, boot, &start), 0);
	kill(leader, SIGKILL);
	kill(member, SIGKILL);
	assert_int_equal(waitpid(leader, &st, 0), leader);
	assert_int_equal(waitpid(member, &st, 0), member);
	assert_int_equal(procid_matches(leader, boot, start), 0);
	assert_int_equal(procid_leads_group(leader, boot, start), 0);
	{
		struct procid_stat ps;
		assert_int_equal(procid_read(leader, &ps), -ESRCH);
	}
	assert_int_equal(procid_of(leader, boot, &start), -ESRCH);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_plain),
		cmocka_unit_test(test_parse_hostile_comm),
		cmocka_unit_test(test_parse_not_terminated),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_boot_id),
		cmocka_unit_test(test_self),
		cmocka_unit_test(test_child),
	};
	return cmocka_run_group_tests_name("procid", tests, NULL, NULL);
}
