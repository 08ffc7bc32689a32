/* log.c - dbtd's own log on stderr. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "names.h"

static int journal;     /* stderr is the journal: use <N> prefixes */
static int max_level = LOG_LVL_INFO;

void
log_init(int verbose)
{
	journal = getenv("JOURNAL_STREAM") != NULL;
	max_level = verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO;
}

void
log_msg(int lvl, const char *fmt, ...)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
	};
	char line[4096], ts[40];
	va_list ap;

	if (lvl > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (journal)
		fprintf(stderr, "<%d>%s\n", lvl, line);
	else
		fprintf(stderr, "%s dbtd[%s]: %s\n", format_rfc3339(now_ms(), ts, sizeof(ts)),
		        names[lvl & 7], line);
}
