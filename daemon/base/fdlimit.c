/* fdlimit.c - dbtd's open-file limit: raised at start, named when it runs out (fdlimit.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "fdlimit.h"
#include "log.h"

static struct rlimit started_with; /* as found at start; rlim_cur 0 until fdlimit_raise */
static int raised;                 /* fdlimit_raise changed the soft limit */

void
fdlimit_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot read the open-file limit: %s", strerror(errno));
		return;
	}
	started_with = rl;
	if (rl.rlim_cur >= rl.rlim_max) {
		log_info("open-file limit: %llu (the hard limit)", (unsigned long long)rl.rlim_cur);
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot raise the open-file limit from %llu to the hard limit %llu: %s; "
		         "clients and runs beyond it will be refused",
		         (unsigned long long)started_with.rlim_cur,
		         (unsigned long long)rl.rlim_max, strerror(errno));
		return;
	}
	raised = 1;
	log_info("open-file limit: %llu (raised from %llu to the hard limit)",
	         (unsigned long long)rl.rlim_cur, (unsigned long long)started_with.rlim_cur);
}

unsigned long
fdlimit_current(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 0;
	return (unsigned long)rl.rlim_cur;
}

int
fdlimit_exhausted(int err)
{
	if (err < 0)
		err = -err;
	return err == EMFILE || err == ENFILE;
}

const char *
fdlimit_describe(int err, char *buf, size_t len)
{
	unsigned long limit = fdlimit_current();

	if (err < 0)
		err = -err;
	if (err == ENFILE)
		snprintf(buf, len, "the system has no file descriptors left (its file table "
		         "is full: fs.file-max)");
	else if (limit)
		snprintf(buf, len, "dbtd has no file descriptors left (limit %lu, all in use)",
		         limit);
	else
		snprintf(buf, len, "dbtd has no file descriptors left");
	return buf;
}

const char *
fdlimit_advice(int err)
{
	if (err == ENFILE || err == -ENFILE)
		return "raise the system's limit (sysctl fs.file-max) or stop what holds so many files";
	return "raise dbtd's open-file limit (LimitNOFILE= in dbtd.service, or ulimit -n "
	       "where dbtd is started; see dbtd(8))";
}

void
fdlimit_restore(void)
{
	if (raised)
		setrlimit(RLIMIT_NOFILE, &started_with);
}
