/* dbtctl.c - dbtctl's entry point: global options, then one command. */
#include "config.h"

#include <getopt.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "commands.h"
#include "conn.h"

/* Largest --timeout (11.5 days); 0 already means no bound. */
#define TIMEOUT_MAX 1000000u

/* Parse the seconds of --timeout or $DBTCTL_TIMEOUT (what names it).  0 or -EINVAL. */
static int
parse_timeout(const char *what, const char *s, unsigned *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	if (s[0] >= '0' && s[0] <= '9') {
		v = strtoul(s, &end, 10);
		if (errno == 0 && *end == '\0' && v <= TIMEOUT_MAX) {
			*out = (unsigned)v;
			return 0;
		}
	}
	fprintf(stderr, "dbtctl: %s \"%s\" is not a number of seconds from 0 (wait "
	        "forever) to %u\n", what, s, TIMEOUT_MAX);
	return -EINVAL;
}

/* Flush stdout; report a write error other than a closed pipe.  Exit status. */
static int
finish_output(int rc)
{
	if (fflush(stdout) == 0 && !ferror(stdout))
		return rc;
	if (errno != EPIPE)
		fprintf(stderr, "dbtctl: cannot write to standard output: %s\n",
		        strerror(errno));
	return rc != DBTCTL_EXIT_OK ? rc : DBTCTL_EXIT_FAILED;
}

/* Parse the global options and run one command. */
int
main(int argc, char **argv)
{
	enum { OPT_SOCKET = 256, OPT_JSON, OPT_VERSION, OPT_TIMEOUT };
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct dbtctl_opts o = { .timeout_s = CONN_TIMEOUT_DEFAULT };
	const char *env_timeout = getenv("DBTCTL_TIMEOUT");
	int c, rc;

	/* Numbers stay "1.5s" whatever the locale; text follows it. */
	setlocale(LC_ALL, "");
	setlocale(LC_NUMERIC, "C");
	/* A closed socket or pipe is an error to report, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	out_style_init(&o.style);

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", lo, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			o.socket = optarg;
			break;
		case OPT_JSON:
			o.json = true;
			break;
		case OPT_TIMEOUT:
			if (parse_timeout("--timeout", optarg, &o.timeout_s) < 0)
				return DBTCTL_EXIT_USAGE;
			env_timeout = NULL; /* the option wins */
			break;
		case 'h':
			commands_usage(stdout);
			return finish_output(DBTCTL_EXIT_OK);
		case OPT_VERSION:
			printf("dbtctl %s\n", PACKAGE_VERSION);
			return finish_output(DBTCTL_EXIT_OK);
		case ':':
			fprintf(stderr, "dbtctl: option %s needs a value; see dbtctl --help\n",
			        argv[optind - 1]);
			return DBTCTL_EXIT_USAGE;
		default:
			if (optopt != 0)
				fprintf(stderr, "dbtctl: unknown option -%c; see dbtctl --help\n",
				        optopt);
			else
				fprintf(stderr, "dbtctl: unknown option %s; see dbtctl --help\n",
				        argv[optind - 1]);
			return DBTCTL_EXIT_USAGE;
		}
	}
	if (env_timeout != NULL && env_timeout[0] != '\0' &&
	    parse_timeout("DBTCTL_TIMEOUT", env_timeout, &o.timeout_s) < 0)
		return DBTCTL_EXIT_USAGE;
	if (optind >= argc) {
		fprintf(stderr, "dbtctl: no command given\n"
		        "usage: dbtctl [--socket PATH] [--timeout SECONDS] [--json] COMMAND [ARGS...]\n"
		        "Try 'dbtctl --help' for the list of commands.\n");
		return DBTCTL_EXIT_USAGE;
	}
	rc = commands_run(&o, argc - optind, argv + optind);
	return finish_output(rc);
}
