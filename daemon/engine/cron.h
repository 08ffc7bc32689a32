/*
 * cron.h - job schedules: five-field cron expressions and their next fire
 * time in a time zone, with daylight saving handled the way cron does.
 *
 * Grammar (Vixie cron / cronie), fields separated by spaces or tabs:
 *
 *   minute 0-59   hour 0-23   day-of-month 1-31   month 1-12 or JAN-DEC
 *   day-of-week 0-7 or SUN-SAT (0 and 7 are Sunday)
 *
 * Each field is a comma-separated list of `*`, `N`, `A-B`, each optionally
 * followed by `/STEP`; `A/STEP` means A up to the field's maximum.  Names
 * are three letters, any case.  One of @yearly @annually @monthly @weekly
 * @daily @midnight @hourly may stand for the whole expression.
 *
 * Days: when both day-of-month and day-of-week are restricted (neither
 * field starts with `*`), a day matches when either of them does
 * ("0 0 13 * FRI": every 13th and every Friday); otherwise both must.
 *
 * Nothing here allocates; a struct cron is a few bitsets, copied freely.
 */
#ifndef DBTD_CRON_H
#define DBTD_CRON_H

#include <stddef.h>
#include <stdint.h>

/* Longest expression cron_parse accepts, in bytes. */
#define CRON_EXPR_MAX 256

/* Longest time zone name cron_tz_check accepts, in bytes. */
#define CRON_TZ_MAX 128

/* Where time zone files are looked up. */
#define CRON_ZONEINFO "/usr/share/zoneinfo"

/* cron_next gives up when nothing matches within this many years. */
#define CRON_HORIZON_YEARS 8

/* Latest `after` cron_next accepts: 9999-12-31T23:59:59Z. */
#define CRON_TIME_MAX INT64_C(253402300799)

/* struct cron flags: which fields start with `*`. */
#define CRON_MINUTE_STAR (1u << 0)
#define CRON_HOUR_STAR   (1u << 1)
#define CRON_DOM_STAR    (1u << 2)
#define CRON_DOW_STAR    (1u << 3)

/*
 * A parsed expression.  Bit n of a set is value n: minute 0-59, hour 0-23,
 * dom 1-31, month 1-12, dow 0-6 (Sunday 0; a 7 in the text is stored as 0).
 * Read it, but make it only with cron_parse.
 */
struct cron {
	uint64_t minute;
	uint32_t hour;
	uint32_t dom;
	uint16_t month;
	uint8_t dow;
	uint8_t flags; /* CRON_*_STAR */
};

/*
 * cron_parse - parse expr (NUL-terminated, at most CRON_EXPR_MAX bytes)
 * into *out.
 *
 * Returns 0, or -EINVAL with *out unspecified and, when err is not NULL and
 * errlen > 0, a NUL-terminated message in err that names the field and what
 * is wrong: `hour: 24 is out of range 0-23`, `day-of-week: unknown name
 * "FOO"`, `minute: step 0 is out of range 1-60`, `expected 5 fields, got 6
 * (...)`.  256 bytes hold every message.
 */
int cron_parse(const char *expr, struct cron *out, char *err, size_t errlen);

/*
 * cron_tz_check - whether tz names a usable time zone: NULL, "" and "UTC"
 * are UTC; anything else must be a relative name of letters, digits and
 * `/_+-` naming a TZif file under CRON_ZONEINFO ("Europe/Berlin").  Zones
 * under right/ (which count leap seconds) are refused.
 *
 * Returns 0, or -EINVAL with a message in err (as for cron_parse), e.g.
 * `unknown time zone "Mars/Base": ...` (256 bytes hold every message).
 */
int cron_tz_check(const char *tz, char *err, size_t errlen);

/*
 * cron_next - the first time c fires strictly after `after`, as Unix
 * seconds in *next, reading c's fields as wall-clock time in zone tz.
 *
 * tz NULL, "" or "UTC": computed with gmtime_r/timegm-style arithmetic
 * only, touching no global state.  Any other zone (see cron_tz_check, which
 * this calls when the zone changes) is evaluated with localtime_r/mktime
 * after setenv("TZ") and tzset().  The last zone is cached: calls with the
 * same zone do not reset it.  So this is not thread-safe, and between calls
 * the process's TZ is the last zone used: the daemon is single-threaded and
 * uses UTC functions only, but a child it forks inherits that TZ unless it
 * builds the child's environment without it.
 *
 * Daylight saving, as cronie does it.  A job is "fixed-time" when neither
 * its minute nor its hour field starts with `*` ("30 2 * * *"), else
 * "wildcard" ("0 * * * *", "* 2 * * *").  A wall-clock time skipped by
 * a jump forward: fixed-time jobs fire once, at the first instant after the
 * jump; wildcard jobs skip it.  A wall-clock time that occurs twice (jump
 * back): fixed-time jobs fire at its first occurrence only; wildcard jobs
 * fire at both.  Jumps are found by mktime with tm_isdst 0 and 1, so a
 * change of standard offset that repeats wall-clock times fires once.
 *
 * *next is a whole minute when the zone's offsets are (every zone since
 * 1972).  after must be in 0..CRON_TIME_MAX.
 *
 * Returns 0; -ENOENT when c does not fire within CRON_HORIZON_YEARS
 * ("0 0 30 2 *"; 8 years so that Feb 29 is found across 2100); -EINVAL for
 * a bad zone (see cron_tz_check); -ERANGE for `after` out of range.
 */
int cron_next(const struct cron *c, const char *tz, int64_t after, int64_t *next);

/*
 * cron_tz_reset - put TZ back as it was before cron_next first changed it
 * (a forked child that runs other programs calls this, so dbt never sees
 * a job's schedule zone).
 */
void cron_tz_reset(void);

#endif /* DBTD_CRON_H */
