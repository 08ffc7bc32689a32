/*
 * fuzz_cron.c - libFuzzer target for cron_parse and cron_next.  Any input
 * is parsed; a parsed schedule is asked for its next fire times from a few
 * starting points, in UTC and in zones with daylight saving, and abort()s
 * when a time is not a whole minute strictly after the one before, or (in
 * UTC, where it is easy to check) is not the first minute that matches.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether c matches the UTC minute at t: the rules again, written plainly. */
static bool
matches_utc(const struct cron *c, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	bool dom, dow;

	gmtime_r(&tt, &tm);
	if (!((c->minute >> tm.tm_min) & 1) || !((c->hour >> tm.tm_hour) & 1) ||
	    !((c->month >> (tm.tm_mon + 1)) & 1))
		return false;
	dom = (c->dom >> tm.tm_mday) & 1;
	dow = (c->dow >> tm.tm_wday) & 1;
	if (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
		return dom && dow;
	return dom || dow;
}

/* Follow c's fire times from `after` in tz a few steps, checking each. */
static void
walk(const struct cron *c, const char *tz, int64_t after)
{
	int64_t next;
	int rc;

	for (int i = 0; i < 3; i++) {
		rc = cron_next(c, tz, after, &next);
		if (rc == -ENOENT)
			return;
		if (rc != 0 || next <= after || next % 60 != 0)
			abort();
		if (tz == NULL) {
			if (!matches_utc(c, next))
				abort();
			/* nothing earlier matched: checked over short distances */
			if (next - after <= 6 * 3600)
				for (int64_t t = after - after % 60 + 60; t < next; t += 60)
					if (matches_utc(c, t))
						abort();
		}
		after = next;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t utc[] = { 0, 1743294630, 4102444799 }; /* 1970, 2025, 2099 */
	/* shortly before the jumps forward and back of 2025 */
	static const struct {
		const char *tz;
		int64_t after;
	} local[] = {
		{ "Europe/Berlin", 1743294630 },       /* 03-30 01:30:30 CET */
		{ "Europe/Berlin", 1761438600 },       /* 10-26 02:30 CEST */
		{ "America/New_York", 1741501800 },    /* 03-09 01:30 EST */
		{ "America/New_York", 1762061400 },    /* 11-02 01:30 EDT */
		{ "Australia/Lord_Howe", 1743864000 }, /* 04-06 01:40 +11, back 30 min */
		{ "Australia/Lord_Howe", 1759590600 }, /* 10-05 01:40 +1030, on 30 min */
	};
	struct cron c;
	char err[256], *expr = malloc(size + 1);

	if (expr == NULL)
		return 0;
	if (size > 0)
		memcpy(expr, data, size);
	expr[size] = '\0';
	err[0] = '\0';
	if (cron_parse(expr, &c, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < sizeof(utc) / sizeof(utc[0]); i++)
			walk(&c, NULL, utc[i]);
		/* one zone per input keeps the run short; each gets its share */
		walk(&c, local[size % 6].tz, local[size % 6].after);
	} else if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0') {
		abort(); /* a refusal always says why */
	}
	free(expr);
	return 0;
}
