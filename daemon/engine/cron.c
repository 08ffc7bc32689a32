/* cron.c - cron expressions and their next fire time (see cron.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cron.h"

_Static_assert(sizeof(time_t) >= 8, "cron needs a 64-bit time_t");

/* One field of an expression: its name in messages, bounds and names. */
struct field {
	const char *name;
	int min, max;
	const char *const *names; /* three-letter names of name_base.., or NULL */
	int name_base;
};

static const char *const month_names[] = {
	"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL
};
static const char *const dow_names[] = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL };

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, N_FIELDS };

static const struct field fields[N_FIELDS] = {
	[F_MINUTE] = { "minute", 0, 59, NULL, 0 },
	[F_HOUR] = { "hour", 0, 23, NULL, 0 },
	[F_DOM] = { "day-of-month", 1, 31, NULL, 0 },
	[F_MONTH] = { "month", 1, 12, month_names, 1 },
	[F_DOW] = { "day-of-week", 0, 7, dow_names, 0 },
};

/* The @ macros and the expressions they stand for. */
static const struct {
	const char *name;
	const char *expr;
} macros[] = {
	{ "yearly", "0 0 1 1 *" }, { "annually", "0 0 1 1 *" }, { "monthly", "0 0 1 * *" },
	{ "weekly", "0 0 * * 0" }, { "daily", "0 0 * * *" },    { "midnight", "0 0 * * *" },
	{ "hourly", "0 * * * *" },
};

/* Format a message into err (when there is room for one); -EINVAL. */
static int __attribute__((format(printf, 3, 4)))
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* s[0..n) fit for a message: at most 20 bytes, odd bytes as \xNN. */
static const char *
show(char buf[96], const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && i < 20; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			o += (size_t)snprintf(buf + o, 96 - o, "\\x%02x", ch);
		else
			buf[o++] = (char)ch;
	}
	if (n > 20) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* A field separator.  (ASCII tests of our own: no locale applies here.) */
static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* 0-9. */
static bool
is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* A-Z, a-z. */
static bool
is_alpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Message for the byte at p in field text s[0..n) that should not be there. */
static int
unexpected(const struct field *f, const char *s, size_t n, const char *p, char *err, size_t errlen)
{
	char a[96], b[96];

	if (p == s + n)
		return fail(err, errlen, "%s: \"%s\" ends too early: a number is missing", f->name,
		            show(a, s, n));
	return fail(err, errlen, "%s: unexpected \"%s\" in \"%s\"", f->name, show(a, p, 1),
	            show(b, s, n));
}

/*
 * Read a number or (month, day-of-week) a name at *pp into *v, within the
 * field's bounds; *pp moves past it.  s[0..n) is the field, for messages.
 */
static int
parse_value(const struct field *f, const char *s, size_t n, const char **pp, int *v,
            char *err, size_t errlen)
{
	const char *p = *pp, *q = p, *end = s + n;
	char a[96];
	int x = 0;

	if (q < end && is_digit(*q)) {
		for (; q < end && is_digit(*q); q++)
			if (x < 100000) /* saturate: the value is refused anyway */
				x = x * 10 + (*q - '0');
		if (x < f->min || x > f->max)
			return fail(err, errlen, "%s: %s is out of range %d-%d", f->name,
			            show(a, p, (size_t)(q - p)), f->min, f->max);
	} else if (q < end && is_alpha(*q)) {
		while (q < end && is_alpha(*q))
			q++;
		if (f->names == NULL)
			return fail(err, errlen, "%s: \"%s\" is not a number", f->name,
			            show(a, p, (size_t)(q - p)));
		for (x = 0; f->names[x] != NULL; x++)
			if (q - p == 3 && strncasecmp(p, f->names[x], 3) == 0)
				break;
		if (f->names[x] == NULL)
			return fail(err, errlen, "%s: unknown name \"%s\" (use %s-%s)", f->name,
			            show(a, p, (size_t)(q - p)), f->names[0], f->names[x - 1]);
		x += f->name_base;
	} else {
		return unexpected(f, s, n, q, err, errlen);
	}
	*pp = q;
	*v = x;
	return 0;
}

/*
 * Parse field text s[0..n) (a list of `*`, N, A-B, each with an optional
 * /STEP) into *bits, bit v for value v.
 */
static int
parse_field(const struct field *f, const char *s, size_t n, uint64_t *bits, char *err,
            size_t errlen)
{
	const char *p = s, *end = s + n;
	char a[96], b[96];
	int rc;

	*bits = 0;
	for (;;) {
		const char *item = p;
		int lo, hi, step = 1;
		bool single = false;

		if (p == end || *p == ',')
			return fail(err, errlen, "%s: empty list item in \"%s\"", f->name, show(a, s, n));
		if (*p == '*') {
			lo = f->min;
			hi = f->max;
			p++;
		} else {
			if ((rc = parse_value(f, s, n, &p, &lo, err, errlen)) != 0)
				return rc;
			hi = lo;
			single = true;
			if (p < end && *p == '-') {
				p++;
				if ((rc = parse_value(f, s, n, &p, &hi, err, errlen)) != 0)
					return rc;
				single = false;
				if (hi < lo)
					return fail(err, errlen, "%s: range \"%s\" goes backwards",
					            f->name, show(a, item, (size_t)(p - item)));
			}
		}
		if (p < end && *p == '/') {
			const char *num = ++p;
			int span = f->max - f->min + 1;

			if (p == end || !is_digit(*p))
				return unexpected(f, s, n, p, err, errlen);
			for (step = 0; p < end && is_digit(*p); p++)
				if (step < 100000)
					step = step * 10 + (*p - '0');
			if (step < 1 || step > span)
				return fail(err, errlen, "%s: step %s is out of range 1-%d", f->name,
				            show(a, num, (size_t)(p - num)), span);
			if (single) /* A/STEP: from A to the field's maximum */
				hi = f->max;
		}
		if (p < end && *p != ',')
			return fail(err, errlen, "%s: unexpected \"%s\" in \"%s\"", f->name,
			            show(a, p, 1), show(b, s, n));
		for (int v = lo; v <= hi; v += step)
			*bits |= UINT64_C(1) << v;
		if (p == end)
			return 0;
		p++; /* the comma; an item must follow */
	}
}

int
cron_parse(const char *expr, struct cron *out, char *err, size_t errlen)
{
	const char *p, *start[N_FIELDS];
	size_t len[N_FIELDS];
	uint64_t bits[N_FIELDS];
	char a[96];
	int n = 0, rc;

	if (strnlen(expr, CRON_EXPR_MAX + 1) > CRON_EXPR_MAX)
		return fail(err, errlen, "expression is longer than %d bytes", CRON_EXPR_MAX);
	for (p = expr; is_blank(*p); p++)
		;
	if (*p == '@') { /* a macro: the expression it stands for */
		const char *name = ++p;
		size_t i, nlen;

		while (*p != '\0' && !is_blank(*p))
			p++;
		nlen = (size_t)(p - name);
		for (i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
			if (strlen(macros[i].name) == nlen && strncasecmp(name, macros[i].name, nlen) == 0)
				break;
		if (i == sizeof(macros) / sizeof(macros[0]))
			return fail(err, errlen, "unknown macro \"@%s\" (use @yearly, @monthly, @weekly, "
			            "@daily or @hourly)", show(a, name, nlen));
		while (is_blank(*p))
			p++;
		if (*p != '\0')
			return fail(err, errlen, "@%s takes no fields, got \"%s\" after it",
			            macros[i].name, show(a, p, strlen(p)));
		p = macros[i].expr;
	}
	for (;;) { /* split into fields */
		while (is_blank(*p))
			p++;
		if (*p == '\0')
			break;
		if (n < N_FIELDS)
			start[n] = p;
		while (*p != '\0' && !is_blank(*p))
			p++;
		if (n < N_FIELDS)
			len[n] = (size_t)(p - start[n]);
		n++;
	}
	if (n != N_FIELDS)
		return fail(err, errlen, "expected 5 fields, got %d "
		            "(minute hour day-of-month month day-of-week)", n);
	for (int i = 0; i < N_FIELDS; i++)
		if ((rc = parse_field(&fields[i], start[i], len[i], &bits[i], err, errlen)) != 0)
			return rc;
	/* 7 is Sunday too */
	if (bits[F_DOW] & (UINT64_C(1) << 7))
		bits[F_DOW] = (bits[F_DOW] | 1) & ~(UINT64_C(1) << 7);
	memset(out, 0, sizeof(*out));
	out->minute = bits[F_MINUTE];
	out->hour = (uint32_t)bits[F_HOUR];
	out->dom = (uint32_t)bits[F_DOM];
	out->month = (uint16_t)bits[F_MONTH];
	out->dow = (uint8_t)bits[F_DOW];
	out->flags = (uint8_t)((*start[F_MINUTE] == '*' ? CRON_MINUTE_STAR : 0) |
	                       (*start[F_HOUR] == '*' ? CRON_HOUR_STAR : 0) |
	                       (*start[F_DOM] == '*' ? CRON_DOM_STAR : 0) |
	                       (*start[F_DOW] == '*' ? CRON_DOW_STAR : 0));
	return 0;
}

/* NULL, "" and "UTC" are UTC. */
static bool
is_utc(const char *tz)
{
	return tz == NULL || tz[0] == '\0' || strcmp(tz, "UTC") == 0;
}

int
cron_tz_check(const char *tz, char *err, size_t errlen)
{
	char path[sizeof(CRON_ZONEINFO) + CRON_TZ_MAX + 1], magic[4], a[96];
	struct stat st;
	size_t n;
	ssize_t got;
	int fd;

	if (is_utc(tz))
		return 0;
	n = strnlen(tz, CRON_TZ_MAX + 1);
	if (n > CRON_TZ_MAX)
		return fail(err, errlen, "time zone name is longer than %d bytes", CRON_TZ_MAX);
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(tz[i]) && !is_digit(tz[i]) && strchr("_+-/", tz[i]) == NULL)
			return fail(err, errlen, "invalid time zone \"%s\": a name like Europe/Berlin "
			            "has only letters, digits and _+-/", show(a, tz, n));
	if (tz[0] == '/' || tz[n - 1] == '/' || strstr(tz, "//") != NULL)
		return fail(err, errlen, "invalid time zone \"%s\": expected a name like "
		            "Europe/Berlin", show(a, tz, n));
	if (strncmp(tz, "right/", 6) == 0)
		return fail(err, errlen, "time zone \"%s\" counts leap seconds: use \"%s\"",
		            show(a, tz, n), tz + 6);
	snprintf(path, sizeof(path), "%s/%s", CRON_ZONEINFO, tz);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	got = -1;
	if (fd >= 0) {
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			got = read(fd, magic, sizeof(magic));
		close(fd);
	}
	if (got != (ssize_t)sizeof(magic) || memcmp(magic, "TZif", 4) != 0)
		return fail(err, errlen, "unknown time zone \"%s\": not a zone in %s "
		            "(names look like Europe/Berlin)", show(a, tz, n), CRON_ZONEINFO);
	return 0;
}

/* The zone TZ was last pointed at, and the TZ value that did it. */
static char cur_zone[CRON_TZ_MAX + 1];
static char cur_env[sizeof(CRON_ZONEINFO) + CRON_TZ_MAX + 2];

/* TZ as it was before this module first changed it (saved: it was read). */
static char *orig_tz;
static int orig_saved;

void
cron_tz_reset(void)
{
	if (!orig_saved)
		return;
	if (orig_tz != NULL)
		setenv("TZ", orig_tz, 1);
	else
		unsetenv("TZ");
	tzset();
	cur_zone[0] = '\0';
	cur_env[0] = '\0';
}

/* Point TZ at zone tz, checking it first, unless it already is there. */
static int
use_zone(const char *tz)
{
	const char *env = getenv("TZ");
	int rc;

	/* TZ is not ours (never set, reset, or changed by someone else): keep it. */
	if (!orig_saved || env == NULL || strcmp(env, cur_env) != 0) {
		free(orig_tz);
		orig_tz = env != NULL ? strdup(env) : NULL;
		orig_saved = 1;
	}

	if (cur_zone[0] != '\0' && strcmp(cur_zone, tz) == 0 && env != NULL &&
	    strcmp(env, cur_env) == 0)
		return 0;
	if ((rc = cron_tz_check(tz, NULL, 0)) != 0)
		return rc;
	/* ":" and a full path: this file, whatever TZDIR says */
	snprintf(cur_env, sizeof(cur_env), ":%s/%s", CRON_ZONEINFO, tz);
	if (setenv("TZ", cur_env, 1) < 0) {
		cur_zone[0] = '\0';
		return -errno;
	}
	tzset();
	snprintf(cur_zone, sizeof(cur_zone), "%s", tz);
	return 0;
}

/* A wall-clock minute: a date and a time of day, in no zone. */
struct civil {
	int year, mon, mday, hour, min; /* mon 1-12, mday 1-31 */
};

/* Days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant's method). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* A wall-clock minute as seconds, as if it were UTC. */
static int64_t
civil_secs(const struct civil *w)
{
	return days_from_civil(w->year, w->mon, w->mday) * 86400 + w->hour * 3600 + w->min * 60;
}

/* The wall-clock minute of t read as UTC, seconds dropped. */
static void
civil_from_secs(int64_t t, struct civil *w)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	w->year = tm.tm_year + 1900;
	w->mon = tm.tm_mon + 1;
	w->mday = tm.tm_mday;
	w->hour = tm.tm_hour;
	w->min = tm.tm_min;
}

/* Days in month m of year y. */
static int
month_days(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/* w to the start of the next month. */
static void
next_month(struct civil *w)
{
	w->mday = 1;
	w->hour = w->min = 0;
	if (++w->mon > 12) {
		w->mon = 1;
		w->year++;
	}
}

/* w to the start of the next day. */
static void
next_day(struct civil *w)
{
	w->hour = w->min = 0;
	if (++w->mday > month_days(w->year, w->mon))
		next_month(w);
}

/* w to the start of the next hour. */
static void
next_hour(struct civil *w)
{
	w->min = 0;
	if (++w->hour > 23)
		next_day(w);
}

/* w to the next minute. */
static void
next_minute(struct civil *w)
{
	if (++w->min > 59)
		next_hour(w);
}

/* The lowest set bit of bits at or above `from`, or -1. */
static int
first_set(uint64_t bits, int from)
{
	bits >>= from;
	return bits ? from + __builtin_ctzll(bits) : -1;
}

/* Whether c fires on w's day: the classic OR of restricted dom and dow. */
static bool
day_matches(const struct cron *c, const struct civil *w)
{
	int64_t days = days_from_civil(w->year, w->mon, w->mday);
	int wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
	bool dom = (c->dom >> w->mday) & 1, dow = (c->dow >> wday) & 1;

	if (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
		return dom && dow;
	return dom || dow;
}

/*
 * Move w to the first wall-clock minute at or after it that c matches,
 * skipping whole months, days and hours that cannot; -ENOENT past year last.
 */
static int
civil_match(const struct cron *c, struct civil *w, int last)
{
	int h, m;

	for (;;) {
		if (w->year > last)
			return -ENOENT;
		if (!((c->month >> w->mon) & 1)) {
			next_month(w);
			continue;
		}
		if (!day_matches(c, w) || (h = first_set(c->hour, w->hour)) < 0) {
			next_day(w);
			continue;
		}
		if (h != w->hour) {
			w->hour = h;
			w->min = 0;
		}
		if ((m = first_set(c->minute, w->min)) < 0) {
			next_hour(w);
			continue;
		}
		w->min = m;
		return 0;
	}
}

/* Offset of local time from UTC at t, in seconds. */
static int64_t
local_offset(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	return localtime_r(&tt, &tm) != NULL ? tm.tm_gmtoff : 0;
}

/* t rounded down to a whole minute. */
static int64_t
floor_minute(int64_t t)
{
	return t - ((t % 60) + 60) % 60;
}

/*
 * The instants (0, 1 or 2, ascending, in t) whose local wall-clock time is
 * w (ws its civil_secs): mktime with tm_isdst 0 and 1, kept when the round
 * trip gives w back.  For none (w is skipped by a jump forward), *gap_end
 * is the first instant after the jump.
 */
static int
local_instants(const struct civil *w, int64_t ws, int64_t t[2], int64_t *gap_end)
{
	int64_t lo = ws - 86400, hi = ws + 86400; /* offsets are under a day */
	int n = 0;

	for (int dst = 0; dst <= 1; dst++) {
		struct tm tm = { .tm_year = w->year - 1900, .tm_mon = w->mon - 1, .tm_mday = w->mday,
		                 .tm_hour = w->hour, .tm_min = w->min, .tm_isdst = dst };
		time_t r = mktime(&tm);

		if (r == (time_t)-1)
			continue;
		if (tm.tm_year == w->year - 1900 && tm.tm_mon == w->mon - 1 && tm.tm_mday == w->mday &&
		    tm.tm_hour == w->hour && tm.tm_min == w->min) {
			if (n == 0 || t[0] != r)
				t[n++] = r;
			continue;
		}
		/* a miss lands on either side of the jump: narrow the search */
		if (r + local_offset(r) < ws && r > lo)
			lo = r;
		else if (r + local_offset(r) > ws && r < hi)
			hi = r;
	}
	if (n == 2 && t[0] > t[1]) {
		int64_t x = t[0];
		t[0] = t[1];
		t[1] = x;
	}
	if (n == 0) { /* the first instant whose wall-clock time is past w */
		while (hi - lo > 1) {
			int64_t mid = lo + (hi - lo) / 2;
			if (mid + local_offset(mid) > ws)
				hi = mid;
			else
				lo = mid;
		}
		*gap_end = hi;
	}
	return n;
}

/*
 * The first fire time of c after `after`, in UTC or in the zone TZ names.
 * It walks c's matching wall-clock minutes and keeps the earliest fire
 * instant past `after`.  The earliest instant of a wall-clock minute (for
 * one skipped by a jump forward: the end of the jump) never decreases from
 * one minute to the next, so the walk stops as soon as it reaches the best
 * instant found: at once, except inside a repeated hour, where the second
 * pass of a minute can come after the first pass of the minutes after it.
 */
static int
next_fire(const struct cron *c, bool utc, int64_t after, int64_t *next)
{
	bool fixed = !(c->flags & (CRON_MINUTE_STAR | CRON_HOUR_STAR));
	int64_t from = after, best = INT64_MAX, t[2], early = 0, ws, jump;
	struct civil w;
	int n, last;

	if (!utc) {
		/* An offset that drops within a day repeats wall-clock times
		 * from before after's: start the walk there. */
		int64_t now = local_offset(after), later = local_offset(after + 86400);
		from = after + (later < now ? later : now);
	}
	civil_from_secs(floor_minute(from), &w);
	last = w.year + CRON_HORIZON_YEARS;
	while (civil_match(c, &w, last) == 0) {
		ws = civil_secs(&w);
		if (utc) {
			n = 1;
			t[0] = ws;
		} else {
			n = local_instants(&w, ws, t, &early);
		}
		if (n > 0)
			early = t[0];
		if (early >= best)
			break;
		if (n == 0) { /* skipped: fixed-time jobs fire when the jump ends */
			if (fixed && early > after)
				best = early;
		} else {
			/* a repeated minute: fixed-time jobs fire in its first pass only */
			for (int i = 0; i < (fixed ? 1 : n); i++)
				if (t[i] > after && t[i] < best)
					best = t[i];
		}
		if (best == early)
			break;
		if (n == 0 && (jump = floor_minute(early + local_offset(early))) > ws + 60)
			civil_from_secs(jump, &w); /* on past the rest of the gap */
		else
			next_minute(&w);
	}
	if (best == INT64_MAX)
		return -ENOENT;
	*next = best;
	return 0;
}

int
cron_next(const struct cron *c, const char *tz, int64_t after, int64_t *next)
{
	int rc;

	if (after < 0 || after > CRON_TIME_MAX)
		return -ERANGE;
	if (is_utc(tz))
		return next_fire(c, true, after, next);
	if ((rc = use_zone(tz)) != 0)
		return rc;
	return next_fire(c, false, after, next);
}
