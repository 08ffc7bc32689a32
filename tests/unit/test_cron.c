/* test_cron.c - cron expressions: grammar, errors, next fire times, DST. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cron.h"

/* "YYYY-MM-DD HH:MM" read as UTC, in Unix seconds. */
static int64_t
at(const char *utc)
{
	struct tm tm = { 0 };

	assert_int_equal(sscanf(utc, "%d-%d-%d %d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	                        &tm.tm_hour, &tm.tm_min), 5);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* Parse expr, which must be valid. */
static struct cron
parse(const char *expr)
{
	struct cron c;
	char err[256] = "";

	if (cron_parse(expr, &c, err, sizeof(err)) != 0)
		fail_msg("cron_parse(\"%s\"): %s", expr, err);
	return c;
}

/* The next fire time of expr in tz after `after` (both UTC text). */
static int64_t
next_in(const char *expr, const char *tz, const char *after)
{
	struct cron c = parse(expr);
	int64_t next = -1;

	assert_int_equal(cron_next(&c, tz, at(after), &next), 0);
	return next;
}

/*
 * The n fire times of expr in tz after `after`, each from the one before,
 * compared with want[] (UTC text).
 */
static void
assert_sequence(const char *expr, const char *tz, const char *after, const char *const *want,
                int n)
{
	struct cron c = parse(expr);
	int64_t t = at(after), next;

	for (int i = 0; i < n; i++) {
		assert_int_equal(cron_next(&c, tz, t, &next), 0);
		if (next != at(want[i]))
			fail_msg("\"%s\" in %s, fire %d: got %lld, want %s (%lld)", expr,
			         tz ? tz : "UTC", i + 1, (long long)next, want[i],
			         (long long)at(want[i]));
		t = next;
	}
}

/* The message cron_parse gives for expr, which must be refused. */
static const char *
parse_error(const char *expr)
{
	static char err[256];
	struct cron c;

	err[0] = '\0';
	assert_int_equal(cron_parse(expr, &c, err, sizeof(err)), -EINVAL);
	return err;
}

/* Steps over ranges, `A/N` meaning A to the maximum, and lists. */
static void
test_steps_and_lists(void **state)
{
	(void)state;
	const char *tens[] = { "2025-06-01 13:00", "2025-06-01 13:10", "2025-06-01 13:20",
		               "2025-06-01 13:30", "2025-06-01 14:00" };
	assert_sequence("0-30/10 * * * *", NULL, "2025-06-01 12:31", tens, 5);
	const char *fifteens[] = { "2025-06-01 12:35", "2025-06-01 12:50", "2025-06-01 13:05",
		                   "2025-06-01 13:20", "2025-06-01 13:35" };
	assert_sequence("5/15 * * * *", NULL, "2025-06-01 12:20", fifteens, 5);
	const char *list[] = { "2025-06-01 12:05", "2025-06-01 12:17", "2025-06-01 18:05",
		               "2025-06-01 18:17", "2025-06-02 12:05" };
	assert_sequence("5,17 12,18 * * *", NULL, "2025-06-01 00:00", list, 5);
	const char *mixed[] = { "2025-06-01 03:00", "2025-06-01 04:00", "2025-06-01 05:00",
		                "2025-06-01 09:00", "2025-06-01 21:00" };
	assert_sequence("0 3-5,9/12 * * *", NULL, "2025-06-01 00:00", mixed, 5);
	/* hours 1, 9 and 17 only, whatever comes after */
	struct cron c = parse("0 1/8 * * *");
	assert_int_equal(c.hour, (1u << 1) | (1u << 9) | (1u << 17));
	c = parse("*/20 * * * *");
	assert_true(c.minute == ((UINT64_C(1) << 0) | (UINT64_C(1) << 20) | (UINT64_C(1) << 40)));
}

/* Month and weekday names in any case, in ranges and lists. */
static void
test_names(void **state)
{
	(void)state;
	/* Friday 2025-01-03 10:00 -> Monday 09:00, then Tuesday... */
	const char *weekdays[] = { "2025-01-06 09:00", "2025-01-07 09:00", "2025-01-08 09:00",
		                   "2025-01-09 09:00", "2025-01-10 09:00" };
	assert_sequence("0 9 * * MON-FRI", NULL, "2025-01-03 10:00", weekdays, 5);
	assert_sequence("0 9 * * mon-Fri", NULL, "2025-01-03 10:00", weekdays, 5);
	const char *halfyear[] = { "2025-07-01 00:00", "2026-01-01 00:00", "2026-07-01 00:00" };
	assert_sequence("0 0 1 JAN,jul *", NULL, "2025-02-01 00:00", halfyear, 3);
	struct cron a = parse("0 0 * Jan-MAR,dec sat,SUN"), b = parse("0 0 * 1-3,12 6,0");
	assert_memory_equal(&a, &b, sizeof(a));
}

/* 7 is Sunday, like 0 and SUN. */
static void
test_sunday_7(void **state)
{
	(void)state;
	struct cron seven = parse("0 0 * * 7"), zero = parse("0 0 * * 0"), sun = parse("0 0 * * SUN");
	assert_memory_equal(&seven, &zero, sizeof(seven));
	assert_memory_equal(&sun, &zero, sizeof(sun));
	assert_int_equal(seven.dow, 1);
	/* Wednesday 2025-01-01 -> Sunday 2025-01-05 */
	assert_int_equal(next_in("0 0 * * 7", NULL, "2025-01-01 00:00"), at("2025-01-05 00:00"));
	/* 5-7: Friday, Saturday, Sunday */
	const char *weekend[] = { "2025-01-03 00:00", "2025-01-04 00:00", "2025-01-05 00:00",
		                  "2025-01-10 00:00" };
	assert_sequence("0 0 * * 5-7", NULL, "2025-01-01 00:00", weekend, 4);
}

/* Day-of-month and day-of-week both restricted: either matches. */
static void
test_day_or_rule(void **state)
{
	(void)state;
	/* January 2025: Fridays 3, 10, 17, 24, 31; the 13th is a Monday */
	const char *either[] = { "2025-01-03 00:00", "2025-01-10 00:00", "2025-01-13 00:00",
		                 "2025-01-17 00:00", "2025-01-24 00:00" };
	assert_sequence("0 0 13 * FRI", NULL, "2025-01-01 00:00", either, 5);
	/* one of them starting with `*`: both must match (odd days that are Fridays) */
	const char *both[] = { "2025-01-03 00:00", "2025-01-17 00:00", "2025-01-31 00:00" };
	assert_sequence("0 0 */2 * FRI", NULL, "2025-01-01 00:00", both, 3);
	/* a `*` weekday leaves the day of month alone */
	const char *dom[] = { "2025-01-13 00:00", "2025-02-13 00:00" };
	assert_sequence("0 0 13 * *", NULL, "2025-01-01 00:00", dom, 2);
	/* "*" followed by a step still counts as unrestricted */
	struct cron c = parse("0 0 13 * */1");
	assert_true(c.flags & CRON_DOW_STAR);
	assert_int_equal(next_in("0 0 13 * */1", NULL, "2025-01-01 00:00"), at("2025-01-13 00:00"));
}

/* The macros are their five-field expressions. */
static void
test_macros(void **state)
{
	static const char *const pairs[][2] = {
		{ "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" },
		{ "@monthly", "0 0 1 * *" }, { "@weekly", "0 0 * * 0" },
		{ "@daily", "0 0 * * *" },  { "@midnight", "0 0 * * *" },
		{ "@hourly", "0 * * * *" }, { "  @Daily \t", "0 0 * * *" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct cron m = parse(pairs[i][0]), e = parse(pairs[i][1]);
		assert_memory_equal(&m, &e, sizeof(m));
	}
	/* Wednesday 2025-01-01 10:30 */
	assert_int_equal(next_in("@yearly", NULL, "2025-01-01 10:30"), at("2026-01-01 00:00"));
	assert_int_equal(next_in("@monthly", NULL, "2025-01-01 10:30"), at("2025-02-01 00:00"));
	assert_int_equal(next_in("@weekly", NULL, "2025-01-01 10:30"), at("2025-01-05 00:00"));
	assert_int_equal(next_in("@daily", NULL, "2025-01-01 10:30"), at("2025-01-02 00:00"));
	assert_int_equal(next_in("@hourly", NULL, "2025-01-01 10:30"), at("2025-01-01 11:00"));
}

/* Feb 29 is years ahead, also across 2100 (not a leap year). */
static void
test_leap_day(void **state)
{
	(void)state;
	const char *leap[] = { "2028-02-29 00:00", "2032-02-29 00:00", "2036-02-29 00:00" };
	assert_sequence("0 0 29 2 *", NULL, "2025-01-01 00:00", leap, 3);
	assert_int_equal(next_in("0 0 29 2 *", NULL, "2096-03-01 00:00"), at("2104-02-29 00:00"));
	assert_int_equal(next_in("0 0 29 2 *", "Europe/Berlin", "2025-01-01 00:00"),
	                 at("2028-02-28 23:00"));
}

/* Days that never come: -ENOENT, quickly. */
static void
test_impossible(void **state)
{
	static const char *const never[] = { "0 0 31 4 *", "0 0 30 2 *", "0 0 31 2,4,6,9,11 *" };
	struct cron c;
	int64_t next = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
		c = parse(never[i]);
		assert_int_equal(cron_next(&c, NULL, at("2025-01-01 00:00"), &next), -ENOENT);
		assert_int_equal(cron_next(&c, "America/New_York", at("2025-01-01 00:00"), &next),
		                 -ENOENT);
		assert_int_equal(next, 42);
	}
	/* the OR rule rescues an impossible day of month */
	assert_int_equal(next_in("0 0 31 4 MON", NULL, "2025-04-01 00:00"), at("2025-04-07 00:00"));
}

/* Ends of hours, days, months and years roll over; months without the day are skipped. */
static void
test_rollover(void **state)
{
	(void)state;
	assert_int_equal(next_in("59 23 31 12 *", NULL, "2025-12-31 23:59"), at("2026-12-31 23:59"));
	assert_int_equal(next_in("* * * * *", NULL, "2025-12-31 23:59"), at("2026-01-01 00:00"));
	assert_int_equal(next_in("0 0 1 * *", NULL, "2025-12-15 12:00"), at("2026-01-01 00:00"));
	assert_int_equal(next_in("30 * * * *", NULL, "2025-02-28 23:45"), at("2025-03-01 00:30"));
	const char *the31st[] = { "2025-03-31 00:00", "2025-05-31 00:00", "2025-07-31 00:00",
		                  "2025-08-31 00:00", "2025-10-31 00:00" };
	assert_sequence("0 0 31 * *", NULL, "2025-01-31 00:00", the31st, 5);
}

/* Strictly after: a fire time gives the next one; seconds are ignored. */
static void
test_strictly_after(void **state)
{
	struct cron c = parse("* * * * *");
	int64_t next;

	(void)state;
	assert_int_equal(cron_next(&c, NULL, at("2025-06-01 12:00"), &next), 0);
	assert_int_equal(next, at("2025-06-01 12:01"));
	assert_int_equal(cron_next(&c, NULL, at("2025-06-01 12:00") + 59, &next), 0);
	assert_int_equal(next, at("2025-06-01 12:01"));
	assert_int_equal(cron_next(&c, "Europe/Berlin", at("2025-06-01 12:00") + 1, &next), 0);
	assert_int_equal(next, at("2025-06-01 12:01"));
	assert_int_equal(cron_next(&c, NULL, 0, &next), 0);
	assert_int_equal(next, 60);
	assert_int_equal(cron_next(&c, NULL, -1, &next), -ERANGE);
	assert_int_equal(cron_next(&c, NULL, CRON_TIME_MAX + 1, &next), -ERANGE);
	assert_int_equal(cron_next(&c, NULL, CRON_TIME_MAX, &next), 0);
	assert_int_equal(next, CRON_TIME_MAX + 1);
}

/* Whitespace between, before and after fields; nothing else. */
static void
test_whitespace(void **state)
{
	struct cron a = parse(" \t0  12\t* *   MON \t"), b = parse("0 12 * * 1");

	(void)state;
	assert_memory_equal(&a, &b, sizeof(a));
	assert_string_equal(parse_error("0 12 * * 1\n"),
	                    "day-of-week: unexpected \"\\x0a\" in \"1\\x0a\"");
	assert_string_equal(parse_error("0 12 * *\n1"), "expected 5 fields, got 4 "
	                    "(minute hour day-of-month month day-of-week)");
}

/* Every message names the field and what is wrong with it. */
static void
test_errors(void **state)
{
	static const char *const cases[][2] = {
		{ "60 * * * *", "minute: 60 is out of range 0-59" },
		{ "* 24 * * *", "hour: 24 is out of range 0-23" },
		{ "* * 0 * *", "day-of-month: 0 is out of range 1-31" },
		{ "* * 32 * *", "day-of-month: 32 is out of range 1-31" },
		{ "* * * 13 *", "month: 13 is out of range 1-12" },
		{ "* * * 0 *", "month: 0 is out of range 1-12" },
		{ "* * * * 8", "day-of-week: 8 is out of range 0-7" },
		{ "99999999999999999999 * * * *", "minute: 99999999999999999999 is out of range 0-59" },
		{ "* * * * FOO", "day-of-week: unknown name \"FOO\" (use SUN-SAT)" },
		{ "* * * * MONDAY", "day-of-week: unknown name \"MONDAY\" (use SUN-SAT)" },
		{ "* * * JANUARY *", "month: unknown name \"JANUARY\" (use JAN-DEC)" },
		{ "MON * * * *", "minute: \"MON\" is not a number" },
		{ "*/0 * * * *", "minute: step 0 is out of range 1-60" },
		{ "* */25 * * *", "hour: step 25 is out of range 1-24" },
		{ "* * * * */9", "day-of-week: step 9 is out of range 1-8" },
		{ "* * * */x *", "month: unexpected \"x\" in \"*/x\"" },
		{ "* * * * 1/", "day-of-week: \"1/\" ends too early: a number is missing" },
		{ "5-1 * * * *", "minute: range \"5-1\" goes backwards" },
		{ "* * * * FRI-MON", "day-of-week: range \"FRI-MON\" goes backwards" },
		{ "* * 1- * *", "day-of-month: \"1-\" ends too early: a number is missing" },
		{ "1,,2 * * * *", "minute: empty list item in \"1,,2\"" },
		{ "1, * * * *", "minute: empty list item in \"1,\"" },
		{ ",1 * * * *", "minute: empty list item in \",1\"" },
		{ "1-2-3 * * * *", "minute: unexpected \"-\" in \"1-2-3\"" },
		{ "*-5 * * * *", "minute: unexpected \"-\" in \"*-5\"" },
		{ "* ? * * *", "hour: unexpected \"?\" in \"?\"" },
		{ "* * L * *", "day-of-month: \"L\" is not a number" },
		{ "* * * * 5L", "day-of-week: unexpected \"L\" in \"5L\"" },
		{ "* * * * 1/2/3", "day-of-week: unexpected \"/\" in \"1/2/3\"" },
		{ "* * * * \xc3\xa9", "day-of-week: unexpected \"\\xc3\" in \"\\xc3\\xa9\"" },
		{ "* * * * * *", "expected 5 fields, got 6 (minute hour day-of-month month day-of-week)" },
		{ "* * * *", "expected 5 fields, got 4 (minute hour day-of-month month day-of-week)" },
		{ "", "expected 5 fields, got 0 (minute hour day-of-month month day-of-week)" },
		{ " \t ", "expected 5 fields, got 0 (minute hour day-of-month month day-of-week)" },
		{ "@reboot", "unknown macro \"@reboot\" (use @yearly, @monthly, @weekly, @daily or @hourly)" },
		{ "@", "unknown macro \"@\" (use @yearly, @monthly, @weekly, @daily or @hourly)" },
		{ "@daily 0", "@daily takes no fields, got \"0\" after it" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = parse_error(cases[i][0]);
		if (strcmp(got, cases[i][1]) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"", cases[i][0], got, cases[i][1]);
	}
	/* no message buffer: still refused */
	struct cron c;
	assert_int_equal(cron_parse("* * * * 8", &c, NULL, 0), -EINVAL);
	/* a short buffer is truncated, not overrun */
	char small[8];
	assert_int_equal(cron_parse("* 24 * * *", &c, small, sizeof(small)), -EINVAL);
	assert_string_equal(small, "hour: 2");
}

/* Input length is bounded. */
static void
test_length_limit(void **state)
{
	char expr[CRON_EXPR_MAX + 2];
	struct cron c;
	char err[128];

	(void)state;
	memset(expr, ' ', sizeof(expr));
	memcpy(expr, "0 0 * * *", 9);
	expr[CRON_EXPR_MAX] = '\0'; /* exactly the limit, padded with spaces */
	assert_int_equal(cron_parse(expr, &c, err, sizeof(err)), 0);
	expr[CRON_EXPR_MAX] = ' ';
	expr[CRON_EXPR_MAX + 1] = '\0';
	assert_int_equal(cron_parse(expr, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "expression is longer than 256 bytes");
}

/* Zone names: UTC, files of the tz database, and what is refused. */
static void
test_tz_check(void **state)
{
	static const char *const bad[][2] = {
		{ "Mars/Base", "unknown time zone \"Mars/Base\": not a zone in /usr/share/zoneinfo "
		               "(names look like Europe/Berlin)" },
		{ "Europe", "unknown time zone \"Europe\": not a zone in /usr/share/zoneinfo "
		            "(names look like Europe/Berlin)" },
		{ "leapseconds", "unknown time zone \"leapseconds\": not a zone in /usr/share/zoneinfo "
		                 "(names look like Europe/Berlin)" },
		{ "../../etc/passwd", "invalid time zone \"../../etc/passwd\": a name like "
		                      "Europe/Berlin has only letters, digits and _+-/" },
		{ "Europe/../Europe/Berlin", "invalid time zone \"Europe/../Europe/Ber...\": a name "
		                             "like Europe/Berlin has only letters, digits and _+-/" },
		{ "/etc/localtime", "invalid time zone \"/etc/localtime\": expected a name like "
		                    "Europe/Berlin" },
		{ "Europe//Berlin", "invalid time zone \"Europe//Berlin\": expected a name like "
		                    "Europe/Berlin" },
		{ "Europe/Berlin ", "invalid time zone \"Europe/Berlin \": a name like Europe/Berlin "
		                    "has only letters, digits and _+-/" },
		{ "right/Europe/Berlin", "time zone \"right/Europe/Berlin\" counts leap seconds: "
		                         "use \"Europe/Berlin\"" },
	};
	char err[256], longname[CRON_TZ_MAX + 2];

	(void)state;
	assert_int_equal(cron_tz_check(NULL, err, sizeof(err)), 0);
	assert_int_equal(cron_tz_check("", err, sizeof(err)), 0);
	assert_int_equal(cron_tz_check("UTC", err, sizeof(err)), 0);
	assert_int_equal(cron_tz_check("Europe/Berlin", err, sizeof(err)), 0);
	assert_int_equal(cron_tz_check("America/Argentina/Buenos_Aires", err, sizeof(err)), 0);
	assert_int_equal(cron_tz_check("Etc/GMT-14", err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(cron_tz_check(bad[i][0], err, sizeof(err)), -EINVAL);
		if (strcmp(err, bad[i][1]) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i][0], err, bad[i][1]);
	}
	memset(longname, 'A', sizeof(longname));
	longname[CRON_TZ_MAX + 1] = '\0';
	assert_int_equal(cron_tz_check(longname, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "time zone name is longer than 128 bytes");
	/* cron_next refuses the same zones */
	struct cron c = parse("* * * * *");
	int64_t next;
	assert_int_equal(cron_next(&c, "Mars/Base", at("2025-01-01 00:00"), &next), -EINVAL);
	assert_int_equal(cron_next(&c, "../../etc/passwd", at("2025-01-01 00:00"), &next), -EINVAL);
}

/* A zone shifts the wall clock; switching zones back and forth works. */
static void
test_zones(void **state)
{
	(void)state;
	/* 09:00 in Berlin (CET, +1) and New York (EST, -5) in January */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(next_in("0 9 * * *", "Europe/Berlin", "2025-01-10 00:00"),
		                 at("2025-01-10 08:00"));
		assert_int_equal(next_in("0 9 * * *", "America/New_York", "2025-01-10 00:00"),
		                 at("2025-01-10 14:00"));
		assert_int_equal(next_in("0 9 * * *", NULL, "2025-01-10 00:00"), at("2025-01-10 09:00"));
		assert_int_equal(next_in("0 9 * * *", "UTC", "2025-01-10 00:00"), at("2025-01-10 09:00"));
		assert_int_equal(next_in("0 9 * * *", "", "2025-01-10 00:00"), at("2025-01-10 09:00"));
	}
	/* day boundaries are local: Friday 00:30 in Berlin is Thursday 23:30 UTC */
	assert_int_equal(next_in("30 0 * * FRI", "Europe/Berlin", "2025-01-01 00:00"),
	                 at("2025-01-02 23:30"));
	/* half-hour offset: Kolkata is +05:30 */
	assert_int_equal(next_in("0 0 * * *", "Asia/Kolkata", "2025-01-10 00:00"),
	                 at("2025-01-10 18:30"));
}

/*
 * Europe/Berlin, 2025-03-30: 02:00 CET jumps to 03:00 CEST (01:00 UTC), so
 * 02:00-02:59 does not exist.  A fixed-time job fires once at 03:00 CEST;
 * a wildcard job skips the hour.
 */
static void
test_dst_berlin_spring(void **state)
{
	(void)state;
	const char *fixed[] = { "2025-03-29 01:30", "2025-03-30 01:00", "2025-03-31 00:30",
		                "2025-04-01 00:30" };
	assert_sequence("30 2 * * *", "Europe/Berlin", "2025-03-28 12:00", fixed, 4);
	/* several times in the gap still fire once */
	const char *several[] = { "2025-03-30 01:00", "2025-03-31 00:00", "2025-03-31 00:15" };
	assert_sequence("0,15,30,45 2 * * *", "Europe/Berlin", "2025-03-29 12:00", several, 3);
	/* 01:00, 01:30 CET, then 03:00, 03:30, 04:00 CEST */
	const char *wild[] = { "2025-03-30 00:00", "2025-03-30 00:30", "2025-03-30 01:00",
		               "2025-03-30 01:30", "2025-03-30 02:00" };
	assert_sequence("*/30 * * * *", "Europe/Berlin", "2025-03-29 23:45", wild, 5);
	/* a wildcard hour with a fixed minute is a wildcard job: 02:30 is skipped */
	const char *hourly[] = { "2025-03-30 00:30", "2025-03-30 01:30", "2025-03-30 02:30" };
	assert_sequence("30 * * * *", "Europe/Berlin", "2025-03-29 23:45", hourly, 3);
	/* only the gap matches: a wildcard minute in the missing hour never fires that day */
	assert_int_equal(next_in("* 2 * * *", "Europe/Berlin", "2025-03-29 12:00"),
	                 at("2025-03-31 00:00"));
}

/*
 * Europe/Berlin, 2025-10-26: 03:00 CEST goes back to 02:00 CET (01:00
 * UTC), so 02:00-02:59 happens twice.  A fixed-time job fires at the first
 * 02:30 only; a wildcard job fires in both.
 */
static void
test_dst_berlin_fall(void **state)
{
	(void)state;
	const char *fixed[] = { "2025-10-25 00:30", "2025-10-26 00:30", "2025-10-27 01:30",
		                "2025-10-28 01:30" };
	assert_sequence("30 2 * * *", "Europe/Berlin", "2025-10-24 12:00", fixed, 4);
	/* from inside the second 02:00-02:59: the first 02:30 is gone, no second one */
	assert_int_equal(next_in("30 2 * * *", "Europe/Berlin", "2025-10-26 01:15"),
	                 at("2025-10-27 01:30"));
	/* 02:00 CEST, 02:30 CEST, 02:00 CET, 02:30 CET, 03:00 CET */
	const char *wild[] = { "2025-10-26 00:00", "2025-10-26 00:30", "2025-10-26 01:00",
		               "2025-10-26 01:30", "2025-10-26 02:00" };
	assert_sequence("*/30 * * * *", "Europe/Berlin", "2025-10-25 23:50", wild, 5);
	/* from late in the first pass, the next is early in the second */
	assert_int_equal(next_in("*/30 * * * *", "Europe/Berlin", "2025-10-26 00:45"),
	                 at("2025-10-26 01:00"));
	assert_int_equal(next_in("15 * * * *", "Europe/Berlin", "2025-10-26 00:45"),
	                 at("2025-10-26 01:15"));
}

/*
 * America/New_York, 2025-03-09: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
 */
static void
test_dst_new_york_spring(void **state)
{
	(void)state;
	const char *fixed[] = { "2025-03-08 07:30", "2025-03-09 07:00", "2025-03-10 06:30",
		                "2025-03-11 06:30" };
	assert_sequence("30 2 * * *", "America/New_York", "2025-03-08 00:00", fixed, 4);
	/* 01:30 EST, then 03:00, 03:30, 04:00, 04:30 EDT */
	const char *wild[] = { "2025-03-09 06:30", "2025-03-09 07:00", "2025-03-09 07:30",
		               "2025-03-09 08:00", "2025-03-09 08:30" };
	assert_sequence("*/30 * * * *", "America/New_York", "2025-03-09 06:15", wild, 5);
}

/*
 * America/New_York, 2025-11-02: 02:00 EDT goes back to 01:00 EST (06:00
 * UTC), so 01:00-01:59 happens twice and 02:30 once.
 */
static void
test_dst_new_york_fall(void **state)
{
	(void)state;
	const char *once[] = { "2025-11-01 06:30", "2025-11-02 07:30", "2025-11-03 07:30" };
	assert_sequence("30 2 * * *", "America/New_York", "2025-11-01 00:00", once, 3);
	const char *first[] = { "2025-11-01 05:30", "2025-11-02 05:30", "2025-11-03 06:30" };
	assert_sequence("30 1 * * *", "America/New_York", "2025-11-01 00:00", first, 3);
	/* 01:30 EDT, 01:00 EST, 01:30 EST, 02:00 EST, 02:30 EST */
	const char *wild[] = { "2025-11-02 05:30", "2025-11-02 06:00", "2025-11-02 06:30",
		               "2025-11-02 07:00", "2025-11-02 07:30" };
	assert_sequence("*/30 * * * *", "America/New_York", "2025-11-02 05:10", wild, 5);
}

/* A child forked to run dbt gets TZ back as dbtd had it, not a job's zone. */
static void
test_tz_reset(void **state)
{
	struct cron c;
	char err[256];
	int64_t next;

	(void)state;
	setenv("TZ", "UTC0", 1);
	assert_int_equal(cron_parse("0 9 * * *", &c, err, sizeof(err)), 0);
	assert_int_equal(cron_next(&c, "Asia/Tokyo", 0, &next), 0);
	assert_string_not_equal(getenv("TZ"), "UTC0");
	cron_tz_reset();
	assert_string_equal(getenv("TZ"), "UTC0");
	/* and the zone is set again on the next use */
	assert_int_equal(cron_next(&c, "Asia/Tokyo", 0, &next), 0);
	assert_int_equal(next, 24 * 3600); /* 09:00 in Tokyo is midnight UTC */
	cron_tz_reset();
	assert_string_equal(getenv("TZ"), "UTC0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_steps_and_lists),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_sunday_7),
		cmocka_unit_test(test_day_or_rule),
		cmocka_unit_test(test_macros),
		cmocka_unit_test(test_leap_day),
		cmocka_unit_test(test_impossible),
		cmocka_unit_test(test_rollover),
		cmocka_unit_test(test_strictly_after),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_length_limit),
		cmocka_unit_test(test_tz_check),
		cmocka_unit_test(test_zones),
		cmocka_unit_test(test_dst_berlin_spring),
		cmocka_unit_test(test_dst_berlin_fall),
		cmocka_unit_test(test_dst_new_york_spring),
		cmocka_unit_test(test_dst_new_york_fall),
		cmocka_unit_test(test_tz_reset),
	};
	return cmocka_run_group_tests_name("cron", tests, NULL, NULL);
}
