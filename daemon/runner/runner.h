/*
 * runner.h - the process dbtd forks for each run.  It leads its own
 * process group, executes the run's steps in order through their plugins,
 * and reports to dbtd over a socketpair with RunnerEvent frames.
 */
#ifndef DBTD_RUNNER_H
#define DBTD_RUNNER_H

#include <sys/types.h>

#include "dbtd.pb-c.h"
#include "plugin.h"

struct runner_spec {
	const Dbtd__Run *run;
	const Dbtd__Job *job;
	const Dbtd__Environment *env;      /* with its secrets */
	const Dbtd__Project *project;      /* with its secrets */
	const struct plugin_set *plugins;
	const char *workspace;             /* this run's private directory */
	const char *blob_dir;              /* where artifact contents are kept */
	int fd;                            /* our end of the socketpair */
	pid_t dbtd_pid;                    /* the parent; its death stops the run */
};

/* runner_main - run the steps and exit; never returns. */
void runner_main(const struct runner_spec *spec) __attribute__((noreturn));

#endif /* DBTD_RUNNER_H */
