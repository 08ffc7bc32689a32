/*
 * commands.h - dbtctl's commands: parse their arguments, ask dbtd, print
 * the answer, and choose the exit status.
 */
#ifndef DBTCTL_COMMANDS_H
#define DBTCTL_COMMANDS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "output.h"

/* Exit statuses of dbtctl (PRODUCT.md). */
enum dbtctl_exit {
	DBTCTL_EXIT_OK = 0,          /* done */
	DBTCTL_EXIT_FAILED = 1,      /* the operation failed */
	DBTCTL_EXIT_USAGE = 2,       /* usage error or a request dbtd refused */
	DBTCTL_EXIT_UNREACHABLE = 3, /* cannot reach dbtd */
	DBTCTL_EXIT_NOT_FOUND = 4,   /* no such object */
	DBTCTL_EXIT_TIMEOUT = 5,     /* dbtd did not answer within --timeout */
};

struct command;

/* The options that hold for the whole invocation. */
struct dbtctl_opts {
	const char *socket;     /* --socket PATH, or NULL for the default */
	bool json;              /* --json: print JSON instead of text */
	unsigned timeout_s;     /* --timeout / $DBTCTL_TIMEOUT; 0: wait forever */
	struct out_style style; /* how human output looks */
	/* the command running and its words (argv[0] its name), set by
	 * commands_run: what a message about its request names */
	const struct command *cmd;
	int argc;
	char **argv;
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

/*
 * ---- for commands implemented outside commands.c (lineage.c, artifacts.c) ----
 *
 * A command is one entry of commands.c's table; its function gets that
 * entry (opaque here) for usage messages and --help.
 */
struct conn;

/* Option values next_opt handles itself; other files number their own from
 * DBTCTL_OPT_FREE up. */
#define DBTCTL_OPT_JSON 256
#define DBTCTL_OPT_SOCKET 257
#define DBTCTL_OPT_FREE 1024

/* The options every command takes; ends an option table. */
#define DBTCTL_COMMON_OPTIONS                                         \
	{ "json", no_argument, NULL, DBTCTL_OPT_JSON },               \
	{ "socket", required_argument, NULL, DBTCTL_OPT_SOCKET },     \
	{ "help", no_argument, NULL, 'h' },                           \
	{ NULL, 0, NULL, 0 }

/*
 * next_opt - the next option of the command (getopt_long over lo, long
 * options only), handling --json, --socket and --help itself.  Returns the
 * option, -1 at the end, or a stop value for stop_status after printing
 * the help or a usage error.
 */
int next_opt(struct dbtctl_opts *o, const struct command *cmd, int argc,
             char **argv, const struct option *lo);
/* stop_status - the exit status for the stop value next_opt returned. */
int stop_status(int c);
/* usage_error - "dbtctl: MESSAGE", the synopsis and a hint on stderr; -EINVAL. */
__attribute__((format(printf, 2, 3)))
int usage_error(const struct command *cmd, const char *fmt, ...);
/* parse_num - a decimal number in [min, max] for option opt; 0 or -EINVAL
 * after a usage error. */
int parse_num(const struct command *cmd, const char *opt, const char *s,
              uint64_t min, uint64_t max, uint64_t *out);
/* run_id_arg - the one positional argument, a run ID ("42" or "#42"). */
int run_id_arg(const struct command *cmd, int argc, char **argv, uint64_t *id);
/*
 * request - connect, say Hello, send req and read a reply that must be a
 * `want`.  0 with *out and c open (free both with request_done), or the
 * exit status after printing why (c closed).
 */
int request(const struct dbtctl_opts *o, struct conn *c, const Dbtd__Request *req,
            Dbtd__Response__BodyCase want, const char *hint, Dbtd__Response **out);
/* request_done - free the reply (may be NULL) and close the connection. */
void request_done(struct conn *c, Dbtd__Response *r);
/* reply_check - 0 when r is a `want`, else the exit status after saying why. */
int reply_check(const Dbtd__Response *r, Dbtd__Response__BodyCase want,
                const char *hint);
/* transport_error - say why the connection failed after Hello; returns 1,
 * or 5 when dbtd did not answer in time. */
int transport_error(const struct conn *c, int err);
/* print_json - print v (taking it) indented on stdout; exit status. */
int print_json(json_t *v);
int session_open(const struct dbtctl_opts *o, struct conn *c);

#endif /* DBTCTL_COMMANDS_H */
