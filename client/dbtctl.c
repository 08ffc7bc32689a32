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
	enum { OPT_SOCKET = 256, OPT_JSON, OPT_VERSION };
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct dbtctl_opts o = { 0 };
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
	if (optind >= argc) {
		fprintf(stderr, "dbtctl: no command given\n"
		        "usage: dbtctl [--socket PATH] [--json] COMMAND [ARGS...]\n"
		        "Try 'dbtctl --help' for the list of commands.\n");
		return DBTCTL_EXIT_USAGE;
	}
	rc = commands_run(&o, argc - optind, argv + optind);
	return finish_output(rc);
}
