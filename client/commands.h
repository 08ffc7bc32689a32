/*
 * commands.h - dbtctl's commands: parse their arguments, ask dbtd, print
 * the answer, and choose the exit status.
 */
#ifndef DBTCTL_COMMANDS_H
#define DBTCTL_COMMANDS_H

#include <stdbool.h>
#include <stdio.h>

#include "output.h"

/* Exit statuses of dbtctl (PRODUCT.md). */
enum dbtctl_exit {
	DBTCTL_EXIT_OK = 0,          /* done */
	DBTCTL_EXIT_FAILED = 1,      /* the operation failed */
	DBTCTL_EXIT_USAGE = 2,       /* usage error or a request dbtd refused */
	DBTCTL_EXIT_UNREACHABLE = 3, /* cannot reach dbtd */
	DBTCTL_EXIT_NOT_FOUND = 4,   /* no such object */
};

/* The options that hold for the whole invocation. */
struct dbtctl_opts {
	const char *socket;     /* --socket PATH, or NULL for the default */
	bool json;              /* --json: print JSON instead of text */
	struct out_style style; /* how human output looks */
};

/*
 * commands_run - run the command whose words start at argv[0] (for example
 * "job" "add" "nightly" "--env" "prod" ...).  Options of the command may
 * come in any order after its words; --json and --socket are accepted
 * anywhere.  argv is permuted.  Returns the exit status.
 */
int commands_run(struct dbtctl_opts *o, int argc, char **argv);

/* commands_usage - print the synopsis of every command to f. */
void commands_usage(FILE *f);

#endif /* DBTCTL_COMMANDS_H */
