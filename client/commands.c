/* commands.c - dbtctl's commands: arguments, requests, replies, exit status. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifacts.h"
#include "commands.h"
#include "conn.h"
#include "lineage.h"
#include "names.h"
#include "output.h"
#include "prune.h"

/* Long options; values above 255 so they never clash with short ones. */
enum {
	OPT_JSON = DBTCTL_OPT_JSON, OPT_SOCKET = DBTCTL_OPT_SOCKET,
	OPT_REPO, OPT_SUBDIR, OPT_WEBHOOK_SECRET_ENV, OPT_POLL,
	OPT_PROJECT, OPT_BRANCH, OPT_DESTINATION, OPT_PATH, OPT_SCHEMA,
	OPT_THREADS, OPT_DBT, OPT_ENV, OPT_HOST, OPT_PORT, OPT_USER,
	OPT_PASSWORD_ENV, OPT_DBNAME,
	OPT_TYPE, OPT_COMMAND, OPT_STEP, OPT_SCHEDULE, OPT_TIMEZONE,
	OPT_ON_PIPELINE, OPT_TIMEOUT, OPT_EVENT, OPT_SIGNATURE, OPT_TOKEN,
	OPT_WAIT, OPT_JOB, OPT_STATUS, OPT_TRIGGER, OPT_LIMIT, OPT_BEFORE,
	OPT_SEARCH, OPT_CASE_SENSITIVE, OPT_REGEX, OPT_FOLLOW, OPT_OUTPUT,
	OPT_KEEP_RUNS, OPT_KEEP_DAYS,
};

#define KEEP_MAX 100000000u /* --keep-runs, --keep-days */

/* What next_opt returns besides an option: help shown, or a usage error. */
#define OPT_STOP_HELP (-2)
#define OPT_STOP_BAD (-3)

/* Options every command takes; ends an option table. */
#define COMMON_OPTIONS                                         \
	{ "json", no_argument, NULL, OPT_JSON },               \
	{ "socket", required_argument, NULL, OPT_SOCKET },     \
	{ "help", no_argument, NULL, 'h' },                    \
	{ NULL, 0, NULL, 0 }

/* Help lines of the common options. */
#define COMMON_HELP                                                         \
	"  --json               print JSON instead of text\n"               \
	"  --socket PATH        dbtd's socket (default: $DBTD_SOCKET, else\n" \
	"                       /run/dbtd/dbtd.sock for root, else\n"       \
	"                       $XDG_RUNTIME_DIR/dbtd/dbtd.sock)\n"         \
	"  -h, --help           show this help\n"

/* Default number of runs dbtd lists (ListRuns.limit 0). */
#define RUN_LIST_DEFAULT 20

struct command;
typedef int command_fn(struct dbtctl_opts *o, const struct command *cmd,
                       int argc, char **argv);

/* One dbtctl command: "GROUP NAME ARGS...". */
struct command {
	const char *group;    /* "project", "env", "job", "run", ... */
	const char *name;     /* "add", "list", ... */
	const char *synopsis; /* what follows "dbtctl GROUP NAME" */
	const char *summary;  /* one line for the command list */
	const char *help;     /* option lines for --help, or NULL */
	command_fn *run;
};

/* The kind of object a project/env/job command is about. */
struct kind {
	const char *group;     /* "env" */
	const char *noun;      /* "environment" */
	Dbtd__ObjectKind kind;
	Dbtd__Response__BodyCase one;  /* reply body of view / add */
	Dbtd__Response__BodyCase many; /* reply body of list */
};

static const struct kind kinds[] = {
	{ "project", "project", DBTD__OBJECT_KIND__OBJECT_PROJECT,
	  DBTD__RESPONSE__BODY_PROJECT, DBTD__RESPONSE__BODY_PROJECTS },
	{ "env", "environment", DBTD__OBJECT_KIND__OBJECT_ENVIRONMENT,
	  DBTD__RESPONSE__BODY_ENVIRONMENT, DBTD__RESPONSE__BODY_ENVIRONMENTS },
	{ "job", "job", DBTD__OBJECT_KIND__OBJECT_JOB,
	  DBTD__RESPONSE__BODY_JOB, DBTD__RESPONSE__BODY_JOBS },
};

/* ---- messages and usage ---- */

/* Print "usage: dbtctl GROUP NAME SYNOPSIS" to f. */
static void
print_synopsis(FILE *f, const struct command *cmd)
{
	fprintf(f, "usage: dbtctl %s %s%s%s\n", cmd->group, cmd->name,
	        cmd->synopsis[0] ? " " : "", cmd->synopsis);
}

/* Print the --help text of a command on stdout. */
static void
print_help(const struct command *cmd)
{
	print_synopsis(stdout, cmd);
	printf("\n%s\n\nOptions:\n%s" COMMON_HELP, cmd->summary,
	       cmd->help ? cmd->help : "");
	printf("\nSee dbtctl(1) for more.\n");
}

/* Print "dbtctl: MESSAGE" on stderr and return -EINVAL. */
__attribute__((format(printf, 1, 2)))
static int
bad_arg(const char *fmt, ...)
{
	va_list ap;

	fputs("dbtctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

/* Print "dbtctl: MESSAGE" and the command's usage on stderr; -EINVAL. */
__attribute__((format(printf, 2, 3)))
int
usage_error(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("dbtctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	print_synopsis(stderr, cmd);
	fprintf(stderr, "Try 'dbtctl %s %s --help' for more.\n", cmd->group, cmd->name);
	return -EINVAL;
}

/*
 * Next option of the command, short options as in getopt's shorts (which
 * must start with ":h"): handles --json, --socket and --help itself.
 * Returns the option, -1 at the end, OPT_STOP_HELP after printing help, or
 * OPT_STOP_BAD after printing a usage error.
 */
static int
next_opt_short(struct dbtctl_opts *o, const struct command *cmd, int argc,
               char **argv, const char *shorts, const struct option *lo)
{
	for (;;) {
		int c = getopt_long(argc, argv, shorts, lo, NULL);

		switch (c) {
		case OPT_JSON:
			o->json = true;
			continue;
		case OPT_SOCKET:
			o->socket = optarg;
			continue;
		case 'h':
			print_help(cmd);
			return OPT_STOP_HELP;
		case ':':
			usage_error(cmd, "option %s needs a value", argv[optind - 1]);
			return OPT_STOP_BAD;
		case '?':
			if (optopt != 0)
				usage_error(cmd, "unknown option -%c", optopt);
			else
				usage_error(cmd, "unknown option %s", argv[optind - 1]);
			return OPT_STOP_BAD;
		default:
			return c;
		}
	}
}

/* next_opt_short for a command with long options only. */
int
next_opt(struct dbtctl_opts *o, const struct command *cmd, int argc,
         char **argv, const struct option *lo)
{
	return next_opt_short(o, cmd, argc, argv, ":h", lo);
}

/* Exit status for what next_opt returned when it stopped. */
int
stop_status(int c)
{
	return c == OPT_STOP_HELP ? DBTCTL_EXIT_OK : DBTCTL_EXIT_USAGE;
}

/*
 * Take the one positional argument (named what in messages) left after
 * the options.  Returns 0, or -EINVAL after a usage error.
 */
static int
one_arg(const struct command *cmd, int argc, char **argv, const char *what,
        const char **out)
{
	if (optind >= argc)
		return usage_error(cmd, "%s %s needs %s", cmd->group, cmd->name, what);
	if (argv[optind][0] == '\0')
		return usage_error(cmd, "%s must not be empty", what);
	if (optind + 1 < argc)
		return usage_error(cmd, "unexpected argument \"%s\"", argv[optind + 1]);
	*out = argv[optind];
	return 0;
}

/* Check that no positional argument is left.  0 or -EINVAL. */
static int
no_args(const struct command *cmd, int argc, char **argv)
{
	if (optind < argc)
		return usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
	return 0;
}

/*
 * Parse a decimal number in [min, max] given to option opt.
 * Returns 0, or -EINVAL after a usage error.
 */
int
parse_num(const struct command *cmd, const char *opt, const char *s,
          uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (s[0] < '0' || s[0] > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	if (max >= UINT32_MAX)
		return usage_error(cmd, "%s \"%s\" is not a whole number of %" PRIu64
		                   " or more", opt, s, min);
	return usage_error(cmd, "%s \"%s\" is not a number from %" PRIu64 " to %" PRIu64,
	                   opt, s, min, max);
}

/* parse_num for a uint32_t field. */
static int
parse_u32(const struct command *cmd, const char *opt, const char *s,
          uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	int rc = parse_num(cmd, opt, s, min, max, &v);

	if (rc == 0)
		*out = (uint32_t)v;
	return rc;
}

/* Take the run ID argument ("42" or "#42").  0 or -EINVAL. */
int
run_id_arg(const struct command *cmd, int argc, char **argv, uint64_t *id)
{
	const char *s = NULL;
	int rc = one_arg(cmd, argc, argv, "a run ID", &s);

	if (rc < 0)
		return rc;
	if (s[0] == '#')
		s++;
	return parse_num(cmd, "run ID", s, 1, INT64_MAX, id);
}

/* ---- talking to dbtd ---- */

/* The dbtd this dbtctl reached ("dbtd 0.1.0"), once Hello was answered. */
static char server_name[64];

/*
 * When dbtd is of another release than this dbtctl and refused a request
 * as unknown or unsupported, say which dbtd was reached.
 */
static void
note_other_release(const Dbtd__Error *e)
{
	if (server_name[0] == '\0' || strcmp(server_name, "dbtd " PACKAGE_VERSION) == 0)
		return;
	if (e->code == DBTD__ERROR_CODE__ERROR_UNIMPLEMENTED ||
	    e->code == DBTD__ERROR_CODE__ERROR_PROTOCOL ||
	    (e->message && strstr(e->message, "unknown request")))
		fprintf(stderr, "dbtctl: the dbtd reached is %s and this is dbtctl %s: use a "
		        "dbtctl of the same release as dbtd\n", server_name, PACKAGE_VERSION);
}

/* The name of a Response body ("run", "project", ...). */
static const char *
body_name(Dbtd__Response__BodyCase c)
{
	const ProtobufCFieldDescriptor *f;

	if (c == DBTD__RESPONSE__BODY__NOT_SET)
		return "an empty reply";
	f = protobuf_c_message_descriptor_get_field(&dbtd__response__descriptor, (unsigned)c);
	return f ? f->name : "an unknown reply";
}

/*
 * Print dbtd's error and return its exit status: 2 for a bad request, 4
 * for a missing object, 1 otherwise.  hint ("see dbtctl job list") is
 * added to a not-found message that has none.
 */
static int
reply_error(const Dbtd__Error *e, const char *hint)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&dbtd__error_code__descriptor, (int)e->code);
	const char *msg = e->message;

	if (msg == NULL || msg[0] == '\0')
		fprintf(stderr, "dbtctl: dbtd refused the request (%s)\n",
		        v ? v->name : "unknown error");
	else if (e->code == DBTD__ERROR_CODE__ERROR_NOT_FOUND && hint != NULL &&
	         strstr(msg, "dbtctl ") == NULL)
		fprintf(stderr, "dbtctl: %s; %s\n", msg, hint);
	else
		fprintf(stderr, "dbtctl: %s\n", msg);
	note_other_release(e);

	switch (e->code) {
	case DBTD__ERROR_CODE__ERROR_BAD_REQUEST: return DBTCTL_EXIT_USAGE;
	case DBTD__ERROR_CODE__ERROR_NOT_FOUND:   return DBTCTL_EXIT_NOT_FOUND;
	default:                                  return DBTCTL_EXIT_FAILED;
	}
}

/* Check a reply is a `want` and not an error; print why not.  Exit status. */
int
reply_check(const Dbtd__Response *r, Dbtd__Response__BodyCase want,
            const char *hint)
{
	if (r->body_case == DBTD__RESPONSE__BODY_ERROR && r->error != NULL)
		return reply_error(r->error, hint);
	if (r->body_case != want) {
		fprintf(stderr, "dbtctl: dbtd answered with %s where a %s was expected; "
		        "use a dbtctl from the same release as dbtd\n",
		        body_name(r->body_case), body_name(want));
		return DBTCTL_EXIT_FAILED;
	}
	return 0;
}

/* Print why the connection failed after Hello.  Exit status 1, or 5 for a timeout. */
int
transport_error(const struct conn *c, int err)
{
	char waiting[sizeof(c->what) + 64];

	switch (err) {
	case -ETIMEDOUT:
		conn_waiting_for(c, waiting, sizeof(waiting));
		fprintf(stderr, "dbtctl: no reply from dbtd at %s within %u s (waiting for %s); "
		        "dbtd may be overloaded or stuck; see its log (journalctl -u dbtd), "
		        "or raise --timeout\n", c->path, c->timeout_s, waiting);
		return DBTCTL_EXIT_TIMEOUT;
	case -ECONNRESET:
		fprintf(stderr, "dbtctl: dbtd at %s closed the connection without "
		        "answering; see dbtd's log (journalctl -u dbtd)\n", c->path);
		break;
	case -EPROTO:
		fprintf(stderr, "dbtctl: dbtd at %s closed the connection in the middle "
		        "of a reply; see dbtd's log (journalctl -u dbtd)\n", c->path);
		break;
	case -EBADMSG:
		fprintf(stderr, "dbtctl: dbtd at %s sent a reply this dbtctl cannot "
		        "decode; use a dbtctl from the same release as dbtd\n", c->path);
		break;
	case -ERANGE:
		fprintf(stderr, "dbtctl: dbtd at %s sent a reply larger than %u bytes; "
		        "narrow the request (e.g. --limit)\n", c->path, FRAME_MAX);
		break;
	default:
		fprintf(stderr, "dbtctl: lost the connection to dbtd at %s: %s\n",
		        c->path, strerror(-err));
		break;
	}
	return DBTCTL_EXIT_FAILED;
}

/* Connect to dbtd and exchange Hello; print why it failed.  Exit status. */
int
session_open(const struct dbtctl_opts *o, struct conn *c)
{
	char path[PATH_MAX], words[64];
	Dbtd__Response *r = NULL;
	int rc;

	rc = conn_socket_path(o->socket, path, sizeof(path));
	if (rc == 0)
		rc = conn_connect(c, path);
	if (rc == -ENAMETOOLONG) {
		fprintf(stderr, "dbtctl: cannot reach dbtd at %s: the path is longer than "
		        "the %zu bytes of a Unix socket address; use a shorter "
		        "--socket or DBTD_SOCKET\n", path, sizeof(c->path) - 1);
		return DBTCTL_EXIT_UNREACHABLE;
	}
	if (rc < 0) {
		fprintf(stderr, "dbtctl: cannot reach dbtd at %s: %s; is dbtd running? "
		        "(set --socket or DBTD_SOCKET)\n", path, strerror(-rc));
		return DBTCTL_EXIT_UNREACHABLE;
	}
	conn_set_timeout(c, o->timeout_s);
	if (o->cmd != NULL) { /* its options parsed, its arguments are argv[optind..] */
		snprintf(words, sizeof(words), "%s %s", o->cmd->group, o->cmd->name);
		conn_describe(c, words, optind > 0 ? o->argc - optind : 0, o->argv + optind);
	} else {
		conn_describe(c, "version", 0, NULL);
	}

	rc = conn_hello(c, "dbtctl " PACKAGE_VERSION, &r);
	if (rc == -ETIMEDOUT) {
		rc = transport_error(c, rc);
		conn_close(c);
		return rc;
	}
	if (rc < 0) {
		if (rc == -ECONNRESET || rc == -EPIPE)
			fprintf(stderr, "dbtctl: dbtd at %s closed the connection at once; "
			        "is dbtd running? see its log (journalctl -u dbtd)\n", path);
		else if (rc == -EBADMSG || rc == -EPROTO || rc == -ERANGE)
			fprintf(stderr, "dbtctl: %s does not answer like dbtd; "
			        "check --socket or DBTD_SOCKET\n", path);
		else
			fprintf(stderr, "dbtctl: cannot reach dbtd at %s: %s; is dbtd "
			        "running? (set --socket or DBTD_SOCKET)\n", path, strerror(-rc));
		conn_close(c);
		return DBTCTL_EXIT_UNREACHABLE;
	}
	rc = reply_check(r, DBTD__RESPONSE__BODY_HELLO, NULL);
	if (rc == 0)
		snprintf(server_name, sizeof(server_name), "%s",
		         r->hello->server[0] ? r->hello->server : "dbtd (unnamed)");
	if (rc == 0 && r->hello->protocol_version !=
	               DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
		fprintf(stderr, "dbtctl: dbtd at %s (%s) speaks protocol version %" PRIu32
		        ", this dbtctl speaks %d; use a dbtctl from the same release as dbtd\n",
		        path, r->hello->server, r->hello->protocol_version,
		        DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
		rc = DBTCTL_EXIT_FAILED;
	}
	dbtd__response__free_unpacked(r, NULL);
	if (rc != 0)
		conn_close(c);
	return rc;
}

/*
 * Connect, send req and read a reply that must be a `want`.  On success
 * (0) *out holds the reply and c stays open: the caller frees both.
 * Otherwise the failure is printed, c is closed and the exit status is
 * returned.
 */
int
request(const struct dbtctl_opts *o, struct conn *c, const Dbtd__Request *req,
        Dbtd__Response__BodyCase want, const char *hint, Dbtd__Response **out)
{
	Dbtd__Response *r = NULL;
	int rc;

	*out = NULL;
	rc = session_open(o, c);
	if (rc != 0)
		return rc;
	rc = conn_call(c, req, &r);
	if (rc < 0) {
		rc = transport_error(c, rc);
		goto fail;
	}
	rc = reply_check(r, want, hint);
	if (rc != 0)
		goto fail;
	*out = r;
	return 0;
fail:
	if (r != NULL)
		dbtd__response__free_unpacked(r, NULL);
	conn_close(c);
	return rc;
}

/* Free a reply and close the connection of a finished request. */
void
request_done(struct conn *c, Dbtd__Response *r)
{
	if (r != NULL)
		dbtd__response__free_unpacked(r, NULL);
	conn_close(c);
}

/* Print a JSON value (taking it); exit status 1 when that failed. */
int
print_json(json_t *v)
{
	int rc = out_json(v);

	if (rc == -ENOMEM)
		fprintf(stderr, "dbtctl: out of memory while formatting JSON\n");
	return rc < 0 ? DBTCTL_EXIT_FAILED : DBTCTL_EXIT_OK;
}

/* ---- paths and values from the command line ---- */

/* path made absolute against the working directory (not resolved). */
static char *
abs_path(const char *path)
{
	char cwd[PATH_MAX];
	char *out = NULL;

	if (path[0] == '/')
		return strdup(path);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return NULL;
	while (path[0] == '.' && path[1] == '/')
		for (path += 2; path[0] == '/'; path++)
			;
	if (strcmp(path, ".") == 0 || path[0] == '\0')
		return strdup(cwd);
	if (asprintf(&out, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", path) < 0)
		return NULL;
	return out;
}

/* True when repo names a remote (scheme://... or scp-like user@host:path). */
static bool
repo_is_url(const char *repo)
{
	const char *colon = strchr(repo, ':');
	const char *slash = strchr(repo, '/');

	if (strstr(repo, "://") != NULL)
		return true;
	return repo[0] != '/' && colon != NULL && colon != repo &&
	       (slash == NULL || colon < slash);
}

/*
 * The repository as dbtd should see it: URLs as given, relative local
 * paths resolved (they must exist).  Sets *out (caller frees).  0 or
 * -errno after a message.
 */
static int
resolve_repo(const char *repo, char **out)
{
	if (repo_is_url(repo) || repo[0] == '/') {
		*out = strdup(repo);
		return *out ? 0 : -ENOMEM;
	}
	*out = realpath(repo, NULL);
	if (*out == NULL)
		return bad_arg("cannot find the repository \"%s\": %s; give a URL or "
		               "the path of an existing Git repository", repo, strerror(errno));
	return 0;
}

/*
 * The secret held in environment variable var (named by option opt).
 * Returns 0, or -EINVAL after a message when it is unset or empty.
 */
static int
secret_from_env(const char *opt, const char *var, const char **out)
{
	const char *v;

	if (var[0] == '\0' || strchr(var, '=') != NULL)
		return bad_arg("%s wants the name of an environment variable, e.g. "
		               "%s MY_SECRET", opt, opt);
	v = getenv(var);
	if (v == NULL || v[0] == '\0')
		return bad_arg("%s %s: the environment variable %s is not set or empty; "
		               "export it in dbtctl's environment first", opt, var, var);
	*out = v;
	return 0;
}

/*
 * Split "KEY=VALUE" into kv (the key is copied to *key, caller frees; the
 * value points into s).  what names the option in messages.  0 or -EINVAL.
 */
static int
split_kv(const struct command *cmd, const char *what, const char *s,
         Dbtd__KeyValue *kv, char **key)
{
	const char *eq = strchr(s, '=');

	if (eq == NULL || eq == s)
		return usage_error(cmd, "%s \"%s\" is not KEY=VALUE", what, s);
	*key = strndup(s, (size_t)(eq - s));
	if (*key == NULL)
		return bad_arg("out of memory");
	dbtd__key_value__init(kv);
	kv->key = *key;
	kv->value = (char *)eq + 1;
	return 0;
}

/* ---- project / env / job: list, view, rm ---- */

/* The kind a project/env/job command is about. */
static const struct kind *
kind_of(const struct command *cmd)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].group, cmd->group) == 0)
			return &kinds[i];
	return &kinds[0];
}

/* Print the reply of a view or add: JSON object or detail panel. */
static int
print_object(const struct dbtctl_opts *o, const Dbtd__Response *r)
{
	switch (r->body_case) {
	case DBTD__RESPONSE__BODY_PROJECT:
		if (o->json)
			return print_json(out_project_json(r->project));
		out_project_view(&o->style, r->project);
		break;
	case DBTD__RESPONSE__BODY_ENVIRONMENT:
		if (o->json)
			return print_json(out_environment_json(r->environment));
		out_environment_view(&o->style, r->environment);
		break;
	case DBTD__RESPONSE__BODY_JOB:
		if (o->json)
			return print_json(out_job_json(r->job));
		out_job_view(&o->style, r->job);
		break;
	default:
		break;
	}
	return DBTCTL_EXIT_OK;
}

/* `project|env|job list` */
static int
cmd_list(struct dbtctl_opts *o, const struct command *cmd, int argc, char **argv)
{
	static const struct option lo[] = { COMMON_OPTIONS };
	const struct kind *k = kind_of(cmd);
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Response *r;
	struct conn c;
	json_t *arr;
	int ch, rc = 0;

	if ((ch = next_opt(o, cmd, argc, argv, lo)) != -1)
		return stop_status(ch);
	if (no_args(cmd, argc, argv) < 0)
		return DBTCTL_EXIT_USAGE;

	req.body_case = DBTD__REQUEST__BODY_LIST;
	req.list = k->kind;
	rc = request(o, &c, &req, k->many, NULL, &r);
	if (rc != 0)
		return rc;

	if (o->json) {
		arr = json_array();
		switch (r->body_case) {
		case DBTD__RESPONSE__BODY_PROJECTS:
			for (size_t i = 0; i < r->projects->n_items; i++)
				if (json_array_append_new(arr, out_project_json(r->projects->items[i])) < 0)
					rc = -ENOMEM;
			break;
		case DBTD__RESPONSE__BODY_ENVIRONMENTS:
			for (size_t i = 0; i < r->environments->n_items; i++)
				if (json_array_append_new(arr, out_environment_json(r->environments->items[i])) < 0)
					rc = -ENOMEM;
			break;
		default:
			for (size_t i = 0; i < r->jobs->n_items; i++)
				if (json_array_append_new(arr, out_job_json(r->jobs->items[i])) < 0)
					rc = -ENOMEM;
			break;
		}
		if (rc < 0) {
			json_decref(arr);
			arr = NULL;
		}
		rc = print_json(arr);
	} else {
		switch (r->body_case) {
		case DBTD__RESPONSE__BODY_PROJECTS:
			rc = out_projects_table(&o->style, r->projects->items, r->projects->n_items);
			break;
		case DBTD__RESPONSE__BODY_ENVIRONMENTS:
			rc = out_environments_table(&o->style, r->environments->items,
			                            r->environments->n_items);
			break;
		default:
			rc = out_jobs_table(&o->style, r->jobs->items, r->jobs->n_items);
			break;
		}
		if (rc < 0)
			fprintf(stderr, "dbtctl: out of memory while printing the list\n");
		rc = rc < 0 ? DBTCTL_EXIT_FAILED : DBTCTL_EXIT_OK;
	}
	request_done(&c, r);
	return rc;
}

/* `project|env|job view NAME` */
static int
cmd_view(struct dbtctl_opts *o, const struct command *cmd, int argc, char **argv)
{
	static const struct option lo[] = { COMMON_OPTIONS };
	const struct kind *k = kind_of(cmd);
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ObjectRef ref = DBTD__OBJECT_REF__INIT;
	Dbtd__Response *r;
	struct conn c;
	const char *name = NULL;
	char hint[64];
	int ch, rc;

	if ((ch = next_opt(o, cmd, argc, argv, lo)) != -1)
		return stop_status(ch);
	if (one_arg(cmd, argc, argv, "a NAME", &name) < 0)
		return DBTCTL_EXIT_USAGE;

	ref.kind = k->kind;
	ref.name = (char *)name;
	req.body_case = DBTD__REQUEST__BODY_VIEW;
	req.view = &ref;
	snprintf(hint, sizeof(hint), "see dbtctl %s list", k->group);
	rc = request(o, &c, &req, k->one, hint, &r);
	if (rc != 0)
		return rc;
	rc = print_object(o, r);
	request_done(&c, r);
	return rc;
}

/* `project|env|job rm NAME` */
static int
cmd_rm(struct dbtctl_opts *o, const struct command *cmd, int argc, char **argv)
{
	static const struct option lo[] = { COMMON_OPTIONS };
	const struct kind *k = kind_of(cmd);
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ObjectRef ref = DBTD__OBJECT_REF__INIT;
	Dbtd__Response *r;
	struct conn c;
	const char *name = NULL;
	char hint[64];
	int ch, rc;

	if ((ch = next_opt(o, cmd, argc, argv, lo)) != -1)
		return stop_status(ch);
	if (one_arg(cmd, argc, argv, "a NAME", &name) < 0)
		return DBTCTL_EXIT_USAGE;

	ref.kind = k->kind;
	ref.name = (char *)name;
	req.body_case = DBTD__REQUEST__BODY_REMOVE;
	req.remove = &ref;
	snprintf(hint, sizeof(hint), "see dbtctl %s list", k->group);
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_REMOVED, hint, &r);
	if (rc != 0)
		return rc;
	if (!r->removed) {
		fprintf(stderr, "dbtctl: dbtd did not remove %s \"%s\"; see dbtd's log\n",
		        k->noun, name);
		rc = DBTCTL_EXIT_FAILED;
	} else if (o->json) {
		json_t *v = json_object();

		if (v != NULL && (json_object_set_new(v, "name", json_string(name)) < 0 ||
		                  json_object_set_new(v, "removed", json_true()) < 0)) {
			json_decref(v);
			v = NULL;
		}
		rc = print_json(v);
	} else {
		printf("%s \"%s\" removed\n", k->noun, name);
	}
	request_done(&c, r);
	return rc;
}

/* Send an add_* request and print what dbtd stored.  Exit status. */
static int
add_and_print(struct dbtctl_opts *o, const struct command *cmd,
              const Dbtd__Request *req, const char *name)
{
	const struct kind *k = kind_of(cmd);
	Dbtd__Response *r;
	struct conn c;
	int rc;

	rc = request(o, &c, req, k->one, NULL, &r);
	if (rc != 0)
		return rc;
	if (o->json)
		rc = print_object(o, r);
	else
		printf("%s \"%s\" added\n", k->noun, name);
	request_done(&c, r);
	return rc;
}

/* ---- project add ---- */

/* `project add NAME --repo URL ...` */
static int
cmd_project_add(struct dbtctl_opts *o, const struct command *cmd, int argc,
                char **argv)
{
	static const struct option lo[] = {
		{ "repo", required_argument, NULL, OPT_REPO },
		{ "subdir", required_argument, NULL, OPT_SUBDIR },
		{ "webhook-secret-env", required_argument, NULL, OPT_WEBHOOK_SECRET_ENV },
		{ "poll", required_argument, NULL, OPT_POLL },
		COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Project p = DBTD__PROJECT__INIT;
	const char *name = NULL, *repo = NULL, *secret_var = NULL, *secret = NULL;
	char *abs_repo = NULL;
	int ch, rc;

	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_REPO:    repo = optarg; break;
		case OPT_SUBDIR:  p.subdir = optarg; break;
		case OPT_WEBHOOK_SECRET_ENV: secret_var = optarg; break;
		case OPT_POLL:
			if (parse_u32(cmd, "--poll", optarg, 0, UINT32_MAX, &p.poll_seconds) < 0)
				return DBTCTL_EXIT_USAGE;
			break;
		default:
			return stop_status(ch);
		}
	}
	if (one_arg(cmd, argc, argv, "a project NAME", &name) < 0)
		return DBTCTL_EXIT_USAGE;
	if (repo == NULL || repo[0] == '\0') {
		usage_error(cmd, "missing --repo (a Git URL or a local repository path)");
		return DBTCTL_EXIT_USAGE;
	}
	if (secret_var != NULL && secret_from_env("--webhook-secret-env", secret_var, &secret) < 0)
		return DBTCTL_EXIT_USAGE;
	rc = resolve_repo(repo, &abs_repo);
	if (rc < 0) {
		if (rc == -ENOMEM)
			bad_arg("out of memory");
		return rc == -ENOMEM ? DBTCTL_EXIT_FAILED : DBTCTL_EXIT_USAGE;
	}

	p.name = (char *)name;
	p.repo = abs_repo;
	if (secret != NULL)
		p.webhook_secret = (char *)secret;
	req.body_case = DBTD__REQUEST__BODY_ADD_PROJECT;
	req.add_project = &p;
	rc = add_and_print(o, cmd, &req, name);
	free(abs_repo);
	return rc;
}

/* ---- env add ---- */

/* The flags of `env add` as given. */
struct env_args {
	const char *project, *branch, *dest, *path, *schema, *dbt;
	const char *host, *user, *password_env, *dbname;
	bool has_port;
};

/*
 * Check the flags required by, and allowed with, the destination type.
 * 0 or -EINVAL after a usage error.
 */
static int
env_check(const struct command *cmd, const struct env_args *a)
{
	if (a->project == NULL)
		return usage_error(cmd, "missing --project (see dbtctl project list)");
	if (a->branch == NULL)
		return usage_error(cmd, "missing --branch (the Git branch to run)");
	if (a->dest == NULL)
		return usage_error(cmd, "missing --destination (duckdb or postgres)");
	if (strcmp(a->dest, "duckdb") == 0) {
		const char *pg = a->host ? "--host" : a->has_port ? "--port" :
		                 a->user ? "--user" : a->password_env ? "--password-env" :
		                 a->dbname ? "--dbname" : NULL;
		if (a->path == NULL)
			return usage_error(cmd, "missing --path (the DuckDB database file) "
			                   "for --destination duckdb");
		if (pg != NULL)
			return usage_error(cmd, "%s applies to --destination postgres only", pg);
	} else if (strcmp(a->dest, "postgres") == 0) {
		const char *miss = !a->host ? "--host" : !a->user ? "--user" :
		                   !a->password_env ? "--password-env" :
		                   !a->dbname ? "--dbname" : !a->schema ? "--schema" : NULL;
		if (miss != NULL)
			return usage_error(cmd, "missing %s for --destination postgres", miss);
		if (a->path != NULL)
			return usage_error(cmd, "--path applies to --destination duckdb only");
	} else {
		return usage_error(cmd, "unknown destination \"%s\"; valid: duckdb, postgres",
		                   a->dest);
	}
	return 0;
}

/* `env add NAME --project P --branch B --destination TYPE ...` */
static int
cmd_env_add(struct dbtctl_opts *o, const struct command *cmd, int argc,
            char **argv)
{
	static const struct option lo[] = {
		{ "project", required_argument, NULL, OPT_PROJECT },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		{ "destination", required_argument, NULL, OPT_DESTINATION },
		{ "path", required_argument, NULL, OPT_PATH },
		{ "schema", required_argument, NULL, OPT_SCHEMA },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "dbt", required_argument, NULL, OPT_DBT },
		{ "env", required_argument, NULL, OPT_ENV },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "user", required_argument, NULL, OPT_USER },
		{ "password-env", required_argument, NULL, OPT_PASSWORD_ENV },
		{ "dbname", required_argument, NULL, OPT_DBNAME },
		COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Environment e = DBTD__ENVIRONMENT__INIT;
	Dbtd__Destination d = DBTD__DESTINATION__INIT;
	struct env_args a = { 0 };
	Dbtd__KeyValue *kv = calloc((size_t)argc, sizeof(*kv));
	Dbtd__KeyValue **kvp = calloc((size_t)argc, sizeof(*kvp));
	char **keys = calloc((size_t)argc, sizeof(*keys));
	char *path = NULL, *dbt = NULL;
	const char *name = NULL, *password = NULL;
	int ch, rc = DBTCTL_EXIT_USAGE;

	if (kv == NULL || kvp == NULL || keys == NULL) {
		bad_arg("out of memory");
		rc = DBTCTL_EXIT_FAILED;
		goto out;
	}
	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_PROJECT:     a.project = optarg; break;
		case OPT_BRANCH:      a.branch = optarg; break;
		case OPT_DESTINATION: a.dest = optarg; break;
		case OPT_PATH:        a.path = optarg; break;
		case OPT_SCHEMA:      a.schema = optarg; break;
		case OPT_DBT:         a.dbt = optarg; break;
		case OPT_HOST:        a.host = optarg; break;
		case OPT_USER:        a.user = optarg; break;
		case OPT_PASSWORD_ENV: a.password_env = optarg; break;
		case OPT_DBNAME:      a.dbname = optarg; break;
		case OPT_THREADS:
			if (parse_u32(cmd, "--threads", optarg, 1, 1024, &d.threads) < 0)
				goto out;
			break;
		case OPT_PORT:
			if (parse_u32(cmd, "--port", optarg, 1, 65535, &d.port) < 0)
				goto out;
			a.has_port = true;
			break;
		case OPT_ENV:
			for (size_t i = 0; i < e.n_env; i++) {
				size_t n = strlen(kvp[i]->key);
				if (strncmp(optarg, kvp[i]->key, n) == 0 && optarg[n] == '=') {
					usage_error(cmd, "--env %s is given twice", kvp[i]->key);
					goto out;
				}
			}
			if (split_kv(cmd, "--env", optarg, &kv[e.n_env], &keys[e.n_env]) < 0)
				goto out;
			kvp[e.n_env] = &kv[e.n_env];
			e.n_env++;
			break;
		default:
			rc = stop_status(ch);
			goto out;
		}
	}
	if (one_arg(cmd, argc, argv, "an environment NAME", &name) < 0 ||
	    env_check(cmd, &a) < 0)
		goto out;
	if (a.password_env != NULL &&
	    secret_from_env("--password-env", a.password_env, &password) < 0)
		goto out;

	if (a.path != NULL && (path = abs_path(a.path)) == NULL) {
		bad_arg("cannot make --path \"%s\" absolute: %s", a.path, strerror(errno));
		rc = DBTCTL_EXIT_FAILED;
		goto out;
	}
	if (a.dbt != NULL && strchr(a.dbt, '/') != NULL && (dbt = abs_path(a.dbt)) == NULL) {
		bad_arg("cannot make --dbt \"%s\" absolute: %s", a.dbt, strerror(errno));
		rc = DBTCTL_EXIT_FAILED;
		goto out;
	}

	d.type = (char *)a.dest;
	if (path != NULL)
		d.path = path;
	if (a.host != NULL) {
		d.host = (char *)a.host;
		if (!a.has_port)
			d.port = 5432;
	}
	if (a.user != NULL)
		d.user = (char *)a.user;
	if (password != NULL)
		d.password = (char *)password;
	if (a.dbname != NULL)
		d.dbname = (char *)a.dbname;
	if (a.schema != NULL)
		d.schema = (char *)a.schema;
	e.name = (char *)name;
	e.project = (char *)a.project;
	e.branch = (char *)a.branch;
	e.destination = &d;
	if (dbt != NULL)
		e.dbt_path = dbt;
	else if (a.dbt != NULL)
		e.dbt_path = (char *)a.dbt;
	e.env = kvp;
	req.body_case = DBTD__REQUEST__BODY_ADD_ENVIRONMENT;
	req.add_environment = &e;
	rc = add_and_print(o, cmd, &req, name);
out:
	for (int i = 0; keys != NULL && i < argc; i++)
		free(keys[i]);
	free(keys);
	free(kvp);
	free(kv);
	free(path);
	free(dbt);
	return rc;
}

/* ---- job add ---- */

/* A job step from the command line and the memory it owns. */
struct step_arg {
	Dbtd__JobStep step;
	char *type;        /* step.type */
	char *command;     /* step.command */
	Dbtd__KeyValue *kv; /* step.params[i] point here */
	char *buf;         /* keys and values point here */
};

/* Free what a step_arg owns. */
static void
step_arg_free(struct step_arg *a)
{
	free(a->step.params);
	free(a->kv);
	free(a->buf);
	free(a->type);
	free(a->command);
	memset(a, 0, sizeof(*a));
}

/*
 * Fill a from --command "dbt SUBCOMMAND ...": type "dbt", command trimmed.
 * 0, or -EINVAL after a usage error.
 */
static int
job_command_parse(const struct command *cmd, const char *arg, struct step_arg *a)
{
	const char *b = arg, *end;

	while (*b == ' ' || *b == '\t')
		b++;
	end = b + strlen(b);
	while (end > b && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n'))
		end--;
	if (end - b < 3 || strncmp(b, "dbt", 3) != 0 ||
	    (b + 3 < end && b[3] != ' ' && b[3] != '\t'))
		return usage_error(cmd, "--command \"%s\" must be a dbt command, "
		                   "e.g. --command \"dbt build\"", arg);
	if (strspn(b + 3, " \t") >= (size_t)(end - b - 3))
		return usage_error(cmd, "--command \"%s\" names no dbt subcommand, "
		                   "e.g. --command \"dbt build\"", arg);
	dbtd__job_step__init(&a->step);
	a->type = strdup("dbt");
	a->command = strndup(b, (size_t)(end - b));
	if (a->type == NULL || a->command == NULL) {
		step_arg_free(a);
		return bad_arg("out of memory");
	}
	a->step.type = a->type;
	a->step.command = a->command;
	return 0;
}

/*
 * Fill a from --step TYPE[:KEY=VALUE,...] (a value cannot hold a comma).
 * 0, or -EINVAL after a usage error.
 */
static int
job_step_parse(const struct command *cmd, const char *arg, struct step_arg *a)
{
	const char *colon = strchr(arg, ':');
	size_t tlen = colon ? (size_t)(colon - arg) : strlen(arg);
	size_t n = 1;
	char *p, *save = NULL;

	dbtd__job_step__init(&a->step);
	if (tlen == 0 || strspn(arg, "abcdefghijklmnopqrstuvwxyz"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != tlen)
		return usage_error(cmd, "--step \"%s\": TYPE must be a step type name "
		                   "(letters, digits, _ . -)", arg);
	a->type = strndup(arg, tlen);
	if (a->type == NULL)
		return bad_arg("out of memory");
	a->step.type = a->type;
	if (colon == NULL)
		return 0;

	for (p = strchr(colon + 1, ','); p != NULL; p = strchr(p + 1, ','))
		n++;
	a->kv = calloc(n, sizeof(*a->kv));
	a->step.params = calloc(n, sizeof(*a->step.params));
	a->buf = strdup(colon + 1);
	if (a->kv == NULL || a->step.params == NULL || a->buf == NULL) {
		step_arg_free(a);
		return bad_arg("out of memory");
	}
	for (p = strtok_r(a->buf, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(p, '=');
		Dbtd__KeyValue *kv = &a->kv[a->step.n_params];

		if (eq == NULL || eq == p) {
			usage_error(cmd, "--step \"%s\": \"%s\" is not KEY=VALUE", arg, p);
			step_arg_free(a);
			return -EINVAL;
		}
		*eq = '\0';
		dbtd__key_value__init(kv);
		kv->key = p;
		kv->value = eq + 1;
		a->step.params[a->step.n_params++] = kv;
	}
	return 0;
}

/* `job add NAME --env E --command "dbt build" ...` */
static int
cmd_job_add(struct dbtctl_opts *o, const struct command *cmd, int argc,
            char **argv)
{
	static const struct option lo[] = {
		{ "env", required_argument, NULL, OPT_ENV },
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "command", required_argument, NULL, OPT_COMMAND },
		{ "step", required_argument, NULL, OPT_STEP },
		{ "schedule", required_argument, NULL, OPT_SCHEDULE },
		{ "timezone", required_argument, NULL, OPT_TIMEZONE },
		{ "on-pipeline", required_argument, NULL, OPT_ON_PIPELINE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "keep-runs", required_argument, NULL, OPT_KEEP_RUNS },
		{ "keep-days", required_argument, NULL, OPT_KEEP_DAYS },
		COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Job j = DBTD__JOB__INIT;
	struct step_arg *steps = calloc((size_t)argc, sizeof(*steps));
	Dbtd__JobStep **stepp = calloc((size_t)argc, sizeof(*stepp));
	const char *name = NULL;
	size_t ncommands_given = 0;
	int ch, rc = DBTCTL_EXIT_USAGE;

	if (steps == NULL || stepp == NULL) {
		bad_arg("out of memory");
		rc = DBTCTL_EXIT_FAILED;
		goto out;
	}
	j.type = DBTD__JOB_TYPE__JOB_DEPLOY;
	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_ENV:         j.environment = optarg; break;
		case OPT_SCHEDULE:    j.schedule = optarg; break;
		case OPT_TIMEZONE:    j.timezone = optarg; break;
		case OPT_ON_PIPELINE: j.on_pipeline = optarg; break;
		case OPT_TYPE:
			if (job_type_parse(optarg, &j.type) < 0) {
				usage_error(cmd, "unknown job type \"%s\"; valid: deploy, ci, merge",
				            optarg);
				goto out;
			}
			break;
		case OPT_TIMEOUT:
			if (parse_u32(cmd, "--timeout", optarg, 1, UINT32_MAX, &j.timeout_s) < 0)
				goto out;
			break;
		case OPT_KEEP_RUNS:
			if (parse_u32(cmd, "--keep-runs", optarg, 0, KEEP_MAX, &j.keep_runs) < 0)
				goto out;
			break;
		case OPT_KEEP_DAYS:
			if (parse_u32(cmd, "--keep-days", optarg, 0, KEEP_MAX, &j.keep_days) < 0)
				goto out;
			break;
		case OPT_COMMAND:
			if (job_command_parse(cmd, optarg, &steps[j.n_steps]) < 0)
				goto out;
			stepp[j.n_steps] = &steps[j.n_steps].step;
			j.n_steps++;
			ncommands_given++;
			break;
		case OPT_STEP:
			if (job_step_parse(cmd, optarg, &steps[j.n_steps]) < 0)
				goto out;
			stepp[j.n_steps] = &steps[j.n_steps].step;
			j.n_steps++;
			break;
		default:
			rc = stop_status(ch);
			goto out;
		}
	}
	if (one_arg(cmd, argc, argv, "a job NAME", &name) < 0)
		goto out;
	if (j.environment == protobuf_c_empty_string || j.environment[0] == '\0') {
		usage_error(cmd, "missing --env (the environment to run in; see dbtctl env list)");
		goto out;
	}
	if (ncommands_given == 0) {
		usage_error(cmd, "missing --command (at least one, e.g. --command \"dbt build\")");
		goto out;
	}
	if (j.timezone[0] != '\0' && j.schedule[0] == '\0') {
		usage_error(cmd, "--timezone applies to --schedule; give a --schedule too");
		goto out;
	}
	j.name = (char *)name;
	j.steps = stepp;
	req.body_case = DBTD__REQUEST__BODY_ADD_JOB;
	req.add_job = &j;
	rc = add_and_print(o, cmd, &req, name);
out:
	for (size_t i = 0; steps != NULL && i < j.n_steps; i++)
		step_arg_free(&steps[i]);
	free(steps);
	free(stepp);
	return rc;
}

/* `job edit NAME [--keep-runs N] [--keep-days D]` */
static int
cmd_job_edit(struct dbtctl_opts *o, const struct command *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "keep-runs", required_argument, NULL, OPT_KEEP_RUNS },
		{ "keep-days", required_argument, NULL, OPT_KEEP_DAYS },
		COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__EditJob ej = DBTD__EDIT_JOB__INIT;
	Dbtd__Response *r;
	const char *name = NULL;
	struct conn c;
	int ch, rc;

	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_KEEP_RUNS:
			if (parse_u32(cmd, "--keep-runs", optarg, 0, KEEP_MAX, &ej.keep_runs) < 0)
				return DBTCTL_EXIT_USAGE;
			ej.set_keep_runs = 1;
			break;
		case OPT_KEEP_DAYS:
			if (parse_u32(cmd, "--keep-days", optarg, 0, KEEP_MAX, &ej.keep_days) < 0)
				return DBTCTL_EXIT_USAGE;
			ej.set_keep_days = 1;
			break;
		default:
			return stop_status(ch);
		}
	}
	if (one_arg(cmd, argc, argv, "a job NAME", &name) < 0)
		return DBTCTL_EXIT_USAGE;
	if (!ej.set_keep_runs && !ej.set_keep_days)
		return usage_error(cmd, "nothing to change: give --keep-runs N or --keep-days D");
	ej.name = (char *)name;
	req.body_case = DBTD__REQUEST__BODY_EDIT_JOB;
	req.edit_job = &ej;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_JOB, NULL, &r);
	if (rc != 0)
		return rc;
	if (o->json)
		rc = print_object(o, r);
	else
		printf("job \"%s\" changed\n", name);
	request_done(&c, r);
	return rc;
}

/* ---- runs ---- */

/* True when a run in status s did not, or will not, do what was asked. */
static bool
run_went_wrong(Dbtd__RunStatus s)
{
	return s == DBTD__RUN_STATUS__RUN_SKIPPED || s == DBTD__RUN_STATUS__RUN_FAILED ||
	       s == DBTD__RUN_STATUS__RUN_CANCELED;
}

/* Print the one-line human answer to job run / run rerun. */
static void
announce_run(const Dbtd__Run *r)
{
	const char *why = r->error;

	switch (r->status) {
	case DBTD__RUN_STATUS__RUN_QUEUED:
		printf("run %" PRIu64 " queued\n", r->id);
		break;
	case DBTD__RUN_STATUS__RUN_RUNNING:
		printf("run %" PRIu64 " started (running)\n", r->id);
		break;
	case DBTD__RUN_STATUS__RUN_SKIPPED:
		if (strncasecmp(why, "skipped: ", 9) == 0)
			why += 9; /* the reason may already say it */
		if (why[0] != '\0')
			printf("run %" PRIu64 " skipped: %s\n", r->id, why);
		else
			printf("run %" PRIu64 " skipped\n", r->id);
		break;
	default:
		printf("run %" PRIu64 " %s\n", r->id, run_status_json(r->status));
		break;
	}
	fflush(stdout);
}

/* Print the answer to job run / run rerun without --wait.  Exit status. */
static int
print_started(const struct dbtctl_opts *o, const Dbtd__Run *r)
{
	int rc = run_went_wrong(r->status) ? DBTCTL_EXIT_FAILED : DBTCTL_EXIT_OK;

	if (o->json) {
		int jrc = print_json(out_run_brief_json(r));
		return jrc != 0 ? jrc : rc;
	}
	announce_run(r);
	return rc;
}

/*
 * Follow a run stream whose first frame is first (a Response{run}) until
 * the frame with `end` set: progress lines as steps change, then the final
 * run as `run view` shows it, after a blank line when a line about the
 * run was printed before (announced).  Takes first; c stays open.
 * Exit status: 0 only when the run ended Completed.
 */
static int
follow_run(const struct dbtctl_opts *o, struct conn *c, Dbtd__Response *first,
           bool announced)
{
	struct out_progress prog;
	Dbtd__Response *last = first, *r = NULL;
	bool show = !o->json && !first->end;
	const Dbtd__Run *run;
	int rc;

	/* dbtd answered; a run may now be quiet for as long as a model runs */
	conn_set_timeout(c, 0);
	out_progress_init(&prog);
	for (;;) {
		if (show && out_progress_update(&o->style, &prog, last->run, now_ms()) < 0) {
			out_progress_free(&prog);
			fprintf(stderr, "dbtctl: out of memory while following run %" PRIu64 "\n",
			        last->run->id);
			rc = DBTCTL_EXIT_FAILED;
			goto out;
		}
		if (last->end)
			break;
		rc = conn_recv(c, &r);
		if (rc < 0) {
			out_progress_free(&prog);
			fflush(stdout);
			if (rc == -ECONNRESET || rc == -EPROTO) {
				fprintf(stderr, "dbtctl: dbtd at %s closed the connection before run %"
				        PRIu64 " ended; follow it with dbtctl run watch %" PRIu64 "\n",
				        c->path, last->run->id, last->run->id);
				rc = DBTCTL_EXIT_FAILED;
			} else {
				rc = transport_error(c, rc);
			}
			goto out;
		}
		if (r->body_case == DBTD__RESPONSE__BODY__NOT_SET && r->end) {
			dbtd__response__free_unpacked(r, NULL);
			break; /* an empty end frame: the last run seen is final */
		}
		if (r->body_case != DBTD__RESPONSE__BODY_RUN) {
			out_progress_free(&prog);
			rc = reply_check(r, DBTD__RESPONSE__BODY_RUN, "see dbtctl run list");
			dbtd__response__free_unpacked(r, NULL);
			goto out;
		}
		dbtd__response__free_unpacked(last, NULL);
		last = r;
	}
	out_progress_free(&prog);

	run = last->run;
	if (o->json) {
		rc = print_json(out_run_json(run, true, now_ms()));
	} else {
		if (show || announced)
			putchar('\n');
		out_run_view(&o->style, run, now_ms());
		rc = DBTCTL_EXIT_OK;
	}
	if (run->status == DBTD__RUN_STATUS__RUN_QUEUED ||
	    run->status == DBTD__RUN_STATUS__RUN_RUNNING) {
		fflush(stdout);
		fprintf(stderr, "dbtctl: dbtd ended the stream while run %" PRIu64
		        " is still %s; see dbtctl run watch %" PRIu64 "\n",
		        run->id, run_status_json(run->status), run->id);
	}
	if (rc == DBTCTL_EXIT_OK && run->status != DBTD__RUN_STATUS__RUN_COMPLETED)
		rc = DBTCTL_EXIT_FAILED;
out:
	dbtd__response__free_unpacked(last, NULL);
	return rc;
}

/*
 * Send a request that starts a run (job run, run rerun) and print the
 * answer; with wait, follow the run to its end.  Exit status.
 */
static int
start_run(const struct dbtctl_opts *o, const Dbtd__Request *req, bool wait,
          const char *hint)
{
	Dbtd__Response *r;
	struct conn c;
	int rc;

	rc = request(o, &c, req, DBTD__RESPONSE__BODY_RUN, hint, &r);
	if (rc != 0)
		return rc;
	if (!wait) {
		rc = print_started(o, r->run);
		request_done(&c, r);
		return rc;
	}
	if (!o->json)
		announce_run(r->run);
	rc = follow_run(o, &c, r, !o->json);
	conn_close(&c);
	return rc;
}

/* `job run NAME [--wait]` */
static int
cmd_job_run(struct dbtctl_opts *o, const struct command *cmd, int argc,
            char **argv)
{
	static const struct option lo[] = {
		{ "wait", no_argument, NULL, OPT_WAIT },
		COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__RunJob rj = DBTD__RUN_JOB__INIT;
	const char *name = NULL;
	int ch;

	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		if (ch != OPT_WAIT)
			return stop_status(ch);
		rj.watch = 1;
	}
	if (one_arg(cmd, argc, argv, "a job NAME", &name) < 0)
		return DBTCTL_EXIT_USAGE;
	rj.job = (char *)name;
	rj.trigger = DBTD__TRIGGER__TRIGGER_MANUAL;
	req.body_case = DBTD__REQUEST__BODY_RUN_JOB;
	req.run_job = &rj;
	return start_run(o, &req, rj.watch, "see dbtctl job list");
}

/* `run rerun ID [--wait]` */
static int
cmd_run_rerun(struct dbtctl_opts *o, const struct command *cmd, int argc,
              char **argv)
{
	static const struct option lo[] = {
		{ "wait", no_argument, NULL, OPT_WAIT },
		COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	int ch;

	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		if (ch != OPT_WAIT)
			return stop_status(ch);
		ref.watch = 1;
	}
	if (run_id_arg(cmd, argc, argv, &ref.id) < 0)
		return DBTCTL_EXIT_USAGE;
	req.body_case = DBTD__REQUEST__BODY_RERUN;
	req.rerun = &ref;
	return start_run(o, &req, ref.watch, "see dbtctl run list");
}

/* `run watch ID` */
static int
cmd_run_watch(struct dbtctl_opts *o, const struct command *cmd, int argc,
              char **argv)
{
	static const struct option lo[] = { COMMON_OPTIONS };
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	Dbtd__Response *r;
	struct conn c;
	bool announced;
	int ch, rc;

	if ((ch = next_opt(o, cmd, argc, argv, lo)) != -1)
		return stop_status(ch);
	if (run_id_arg(cmd, argc, argv, &ref.id) < 0)
		return DBTCTL_EXIT_USAGE;
	ref.watch = 1;
	req.body_case = DBTD__REQUEST__BODY_WATCH_RUN;
	req.watch_run = &ref;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_RUN, "see dbtctl run list", &r);
	if (rc != 0)
		return rc;
	announced = !o->json && !r->end;
	if (announced) {
		printf("run %" PRIu64 " (%s) is %s\n", r->run->id, r->run->job,
		       run_status_json(r->run->status));
		fflush(stdout);
	}
	rc = follow_run(o, &c, r, announced);
	conn_close(&c);
	return rc;
}

/* `run cancel ID` */
static int
cmd_run_cancel(struct dbtctl_opts *o, const struct command *cmd, int argc,
               char **argv)
{
	static const struct option lo[] = { COMMON_OPTIONS };
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	Dbtd__Response *r;
	struct conn c;
	int ch, rc;

	if ((ch = next_opt(o, cmd, argc, argv, lo)) != -1)
		return stop_status(ch);
	if (run_id_arg(cmd, argc, argv, &ref.id) < 0)
		return DBTCTL_EXIT_USAGE;
	ref.watch = 1; /* dbtd answers when the run has stopped */
	req.body_case = DBTD__REQUEST__BODY_CANCEL_RUN;
	req.cancel_run = &ref;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_RUN, "see dbtctl run list", &r);
	if (rc != 0)
		return rc;
	while (!r->end) {
		Dbtd__Response *next = NULL;
		int rrc = conn_recv(&c, &next);
		if (rrc < 0 || next->body_case != DBTD__RESPONSE__BODY_RUN) {
			fprintf(stderr, "dbtctl: dbtd stopped answering while run %" PRIu64
			        " was being canceled; see dbtctl run view %" PRIu64 "\n",
			        r->run->id, r->run->id);
			if (next)
				dbtd__response__free_unpacked(next, NULL);
			request_done(&c, r);
			return rrc == -ETIMEDOUT ? DBTCTL_EXIT_TIMEOUT : DBTCTL_EXIT_FAILED;
		}
		dbtd__response__free_unpacked(r, NULL);
		r = next;
	}
	if (o->json)
		rc = print_json(out_run_brief_json(r->run));
	else if (r->run->status == DBTD__RUN_STATUS__RUN_CANCELED)
		printf("run %" PRIu64 " canceled\n", r->run->id);
	else
		printf("run %" PRIu64 " was not canceled: it ended %s first\n", r->run->id,
		       run_status_json(r->run->status));
	if (r->run->status != DBTD__RUN_STATUS__RUN_CANCELED)
		rc = DBTCTL_EXIT_FAILED;
	request_done(&c, r);
	return rc;
}

/* `run view ID` */
static int
cmd_run_view(struct dbtctl_opts *o, const struct command *cmd, int argc,
             char **argv)
{
	static const struct option lo[] = { COMMON_OPTIONS };
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	Dbtd__Response *r;
	struct conn c;
	int ch, rc = DBTCTL_EXIT_OK;

	if ((ch = next_opt(o, cmd, argc, argv, lo)) != -1)
		return stop_status(ch);
	if (run_id_arg(cmd, argc, argv, &ref.id) < 0)
		return DBTCTL_EXIT_USAGE;
	req.body_case = DBTD__REQUEST__BODY_VIEW_RUN;
	req.view_run = &ref;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_RUN, "see dbtctl run list", &r);
	if (rc != 0)
		return rc;
	if (o->json)
		rc = print_json(out_run_json(r->run, true, now_ms()));
	else
		out_run_view(&o->style, r->run, now_ms());
	request_done(&c, r);
	return rc;
}

/* `run list [--job J] [--status S] [--trigger T] [--branch B] ...` */
static int
cmd_run_list(struct dbtctl_opts *o, const struct command *cmd, int argc,
             char **argv)
{
	static const struct option lo[] = {
		{ "job", required_argument, NULL, OPT_JOB },
		{ "status", required_argument, NULL, OPT_STATUS },
		{ "trigger", required_argument, NULL, OPT_TRIGGER },
		{ "branch", required_argument, NULL, OPT_BRANCH },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "before", required_argument, NULL, OPT_BEFORE },
		COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ListRuns lr = DBTD__LIST_RUNS__INIT;
	Dbtd__Response *r;
	struct conn c;
	int64_t now;
	int ch, rc;

	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_JOB:    lr.job = optarg; break;
		case OPT_BRANCH: lr.branch = optarg; break;
		case OPT_STATUS:
			if (run_status_parse(optarg, &lr.status) < 0) {
				usage_error(cmd, "unknown status \"%s\"; valid: queued, running, "
				            "completed, failed, canceled, skipped", optarg);
				return DBTCTL_EXIT_USAGE;
			}
			break;
		case OPT_TRIGGER:
			if (trigger_parse(optarg, &lr.trigger) < 0) {
				usage_error(cmd, "unknown trigger \"%s\"; valid: scheduled, manual, "
				            "pr, merge, pipeline, api, rerun", optarg);
				return DBTCTL_EXIT_USAGE;
			}
			break;
		case OPT_LIMIT:
			if (parse_u32(cmd, "--limit", optarg, 1, 10000, &lr.limit) < 0)
				return DBTCTL_EXIT_USAGE;
			break;
		case OPT_BEFORE: {
			uint64_t v = 0;

			if (parse_num(cmd, "--before", optarg[0] == '#' ? optarg + 1 : optarg,
			              1, INT64_MAX, &v) < 0)
				return DBTCTL_EXIT_USAGE;
			lr.before = v;
			break;
		}
		default:
			return stop_status(ch);
		}
	}
	if (no_args(cmd, argc, argv) < 0)
		return DBTCTL_EXIT_USAGE;

	req.body_case = DBTD__REQUEST__BODY_LIST_RUNS;
	req.list_runs = &lr;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_RUNS, "see dbtctl job list", &r);
	if (rc != 0)
		return rc;
	now = now_ms();
	if (o->json) {
		json_t *arr = json_array();

		for (size_t i = 0; arr != NULL && i < r->runs->n_items; i++)
			if (json_array_append_new(arr, out_run_json(r->runs->items[i], false, now)) < 0) {
				json_decref(arr);
				arr = NULL;
			}
		rc = print_json(arr);
	} else if (out_runs_table(&o->style, r->runs->items, r->runs->n_items, now) < 0) {
		fprintf(stderr, "dbtctl: out of memory while printing the runs\n");
		rc = DBTCTL_EXIT_FAILED;
	} else if (r->runs->n_items > 0 &&
	           r->runs->n_items >= (lr.limit ? lr.limit : RUN_LIST_DEFAULT)) {
		fflush(stdout);
		fprintf(stderr, "(older runs: add --before %" PRIu64 ")\n",
		        r->runs->items[r->runs->n_items - 1]->id);
	}
	request_done(&c, r);
	return rc;
}

/* ---- run logs ---- */

/* Most lines of context -C takes. */
#define LOGS_CONTEXT_MAX 10000

/*
 * Size of the stdio buffer of log output that does not go to a terminal
 * (glibc takes the size only with a buffer given: setvbuf(f, NULL, ...)
 * keeps BUFSIZ).
 */
#define LOGS_STDIO_BUFFER (1u << 20)

/* stdout's buffer for log output: it must outlive main (exit flushes). */
static char logs_stdout_buf[LOGS_STDIO_BUFFER];

/* The 1-based index of step i of r (the wire index, or its position). */
static uint32_t
run_step_index(const Dbtd__Run *r, size_t i)
{
	return r->steps[i]->index ? r->steps[i]->index : (uint32_t)(i + 1);
}

/* True for the statuses a run ends in. */
static bool
run_final(Dbtd__RunStatus s)
{
	return s != DBTD__RUN_STATUS__RUN_QUEUED && s != DBTD__RUN_STATUS__RUN_RUNNING &&
	       s != DBTD__RUN_STATUS__RUN_STATUS_UNSPECIFIED;
}

/*
 * True when run does not say how step idx is (not there yet, or pending)
 * although its lines are coming: a newer state of the run names it better
 * in the step's header.
 */
static bool
run_step_stale(const Dbtd__Run *run, uint32_t idx)
{
	for (size_t i = 0; i < run->n_steps; i++)
		if (run_step_index(run, i) == idx)
			return run->steps[i]->status == DBTD__STEP_STATUS__STEP_PENDING;
	return true;
}

/*
 * The run's current state, asked on a connection of its own while a log
 * stream holds the first one; NULL when that fails (quietly: the state is
 * only for headers).
 */
static Dbtd__Response *
fetch_run(const struct dbtctl_opts *o, uint64_t id)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	Dbtd__Response *r = NULL;
	char path[PATH_MAX];
	struct conn c;

	if (conn_socket_path(o->socket, path, sizeof(path)) < 0)
		return NULL;
	if (conn_connect(&c, path) < 0)
		return NULL;
	conn_set_timeout(&c, o->timeout_s);
	if (conn_hello(&c, "dbtctl " PACKAGE_VERSION, &r) < 0) {
		conn_close(&c);
		return NULL;
	}
	dbtd__response__free_unpacked(r, NULL);
	r = NULL;
	ref.id = id;
	req.body_case = DBTD__REQUEST__BODY_VIEW_RUN;
	req.view_run = &ref;
	if (conn_call(&c, &req, &r) < 0 || r->body_case != DBTD__RESPONSE__BODY_RUN ||
	    r->run == NULL) {
		if (r != NULL)
			dbtd__response__free_unpacked(r, NULL);
		r = NULL;
	}
	conn_close(&c);
	return r;
}

/* List the steps of a run on stderr (after a --step that names none). */
static void
list_steps(const Dbtd__Run *run)
{
	fprintf(stderr, "Steps of run %" PRIu64 ":\n", run->id);
	for (size_t i = 0; i < run->n_steps; i++)
		fprintf(stderr, "  %2" PRIu32 "  %s\n", run_step_index(run, i),
		        run->steps[i]->name ? run->steps[i]->name : "-");
}

/*
 * The step that --step ARG names in run: an index, or a name (the same
 * in any case; else the one step whose name holds ARG in any case).
 * Sets *idx and returns 0, or returns -EINVAL after saying why.
 */
static int
resolve_step(const struct command *cmd, const Dbtd__Run *run, const char *arg,
             uint32_t *idx)
{
	size_t n = 0, found = 0;

	if (arg[0] >= '0' && arg[0] <= '9' && arg[strspn(arg, "0123456789")] == '\0') {
		uint32_t k = 0;

		if (parse_u32(cmd, "--step", arg, 1, UINT32_MAX, &k) < 0)
			return -EINVAL;
		/* a run not started yet may have no steps: dbtd decides */
		if (run->n_steps == 0) {
			*idx = k;
			return 0;
		}
		for (size_t i = 0; i < run->n_steps; i++)
			if (run_step_index(run, i) == k) {
				*idx = k;
				return 0;
			}
		bad_arg("run %" PRIu64 " has no step %" PRIu32, run->id, k);
		list_steps(run);
		return -EINVAL;
	}
	if (run->n_steps == 0)
		return bad_arg("run %" PRIu64 " has no steps%s, so no step is named \"%s\"",
		               run->id, run_final(run->status) ? "" : " yet", arg);
	for (size_t i = 0; i < run->n_steps; i++)
		if (run->steps[i]->name != NULL && strcasecmp(run->steps[i]->name, arg) == 0) {
			*idx = run_step_index(run, i);
			return 0;
		}
	for (size_t i = 0; i < run->n_steps; i++)
		if (run->steps[i]->name != NULL && strcasestr(run->steps[i]->name, arg) != NULL) {
			found = i;
			n++;
		}
	if (n == 1) {
		*idx = run_step_index(run, found);
		return 0;
	}
	if (n == 0)
		bad_arg("no step of run %" PRIu64 " is named \"%s\"", run->id, arg);
	else
		bad_arg("\"%s\" names %zu steps of run %" PRIu64 "; give more of the name "
		        "or the step's number", arg, n, run->id);
	list_steps(run);
	return -EINVAL;
}

/* A file written under NAME.tmp, renamed to NAME once complete. */
struct out_file {
	const char *path;
	char *tmp;
	FILE *f;
	char *buf;   /* f's stdio buffer */
};

/* Create path.tmp (mode 0644) for writing.  0, or exit status 1 after saying why. */
static int
out_file_open(struct out_file *of, const char *path)
{
	int fd;

	of->path = path;
	of->f = NULL;
	if (asprintf(&of->tmp, "%s.tmp", path) < 0) {
		of->tmp = NULL;
		fprintf(stderr, "dbtctl: out of memory\n");
		return DBTCTL_EXIT_FAILED;
	}
	fd = open(of->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || fchmod(fd, 0644) < 0 || (of->f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "dbtctl: cannot create %s: %s\n", of->tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(of->tmp);
		}
		free(of->tmp);
		of->tmp = NULL;
		return DBTCTL_EXIT_FAILED;
	}
	of->buf = malloc(LOGS_STDIO_BUFFER);
	if (of->buf != NULL)
		setvbuf(of->f, of->buf, _IOFBF, LOGS_STDIO_BUFFER);
	return 0;
}

/*
 * Finish the file: with keep, write it out and rename it into place (an
 * exit status 1 after saying why it failed); else remove it.
 */
static int
out_file_close(struct out_file *of, bool keep)
{
	int rc = 0;

	if (of->f == NULL)
		return keep ? DBTCTL_EXIT_FAILED : 0;
	if (keep && (fflush(of->f) != 0 || ferror(of->f) || fsync(fileno(of->f)) < 0)) {
		fprintf(stderr, "dbtctl: cannot write %s: %s\n", of->tmp, strerror(errno));
		keep = false;
		rc = DBTCTL_EXIT_FAILED;
	}
	if (fclose(of->f) != 0 && keep) {
		fprintf(stderr, "dbtctl: cannot write %s: %s\n", of->tmp, strerror(errno));
		keep = false;
		rc = DBTCTL_EXIT_FAILED;
	}
	of->f = NULL;
	free(of->buf);
	of->buf = NULL;
	if (keep && rename(of->tmp, of->path) < 0) {
		fprintf(stderr, "dbtctl: cannot rename %s to %s: %s\n", of->tmp, of->path,
		        strerror(errno));
		keep = false;
		rc = DBTCTL_EXIT_FAILED;
	}
	if (!keep)
		unlink(of->tmp);
	free(of->tmp);
	of->tmp = NULL;
	return rc;
}

/*
 * `run logs ID [--step N|NAME] [--search TEXT] [--case-sensitive] [--regex]
 * [-C N] [--follow] [--output FILE]`
 */
static int
cmd_run_logs(struct dbtctl_opts *o, const struct command *cmd, int argc,
             char **argv)
{
	static const struct option lo[] = {
		{ "step", required_argument, NULL, OPT_STEP },
		{ "search", required_argument, NULL, OPT_SEARCH },
		{ "case-sensitive", no_argument, NULL, OPT_CASE_SENSITIVE },
		{ "regex", no_argument, NULL, OPT_REGEX },
		{ "context", required_argument, NULL, 'C' },
		{ "follow", no_argument, NULL, OPT_FOLLOW },
		{ "output", required_argument, NULL, OPT_OUTPUT },
		COMMON_OPTIONS
	};
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__RunRef ref = DBTD__RUN_REF__INIT;
	Dbtd__ReadLogs rl = DBTD__READ_LOGS__INIT;
	Dbtd__Response *view = NULL, *last = NULL, *fresh = NULL, *r = NULL;
	struct out_logs_opts lopts = { 0 };
	struct out_logs *lg = NULL;
	struct out_file of = { 0 };
	const char *step_arg = NULL, *output = NULL;
	const Dbtd__Run *run;
	bool context_set = false, ended = false;
	FILE *out = stdout;
	char err[256];
	struct conn c;
	int ch, rc, lrc = 0;

	while ((ch = next_opt_short(o, cmd, argc, argv, ":hC:", lo)) != -1) {
		switch (ch) {
		case OPT_STEP:           step_arg = optarg; break;
		case OPT_SEARCH:         lopts.search = optarg; break;
		case OPT_CASE_SENSITIVE: lopts.case_sensitive = true; break;
		case OPT_REGEX:          lopts.regex = true; break;
		case OPT_FOLLOW:         rl.follow = 1; break;
		case OPT_OUTPUT:         output = optarg; break;
		case 'C': {
			uint32_t n = 0;

			if (parse_u32(cmd, "-C", optarg, 0, LOGS_CONTEXT_MAX, &n) < 0)
				return DBTCTL_EXIT_USAGE;
			lopts.context = n;
			context_set = true;
			break;
		}
		default:
			return stop_status(ch);
		}
	}
	if (run_id_arg(cmd, argc, argv, &ref.id) < 0)
		return DBTCTL_EXIT_USAGE;
	if (step_arg != NULL && step_arg[0] == '\0') {
		usage_error(cmd, "--step needs a step number or name");
		return DBTCTL_EXIT_USAGE;
	}
	if (lopts.search != NULL && lopts.search[0] == '\0') {
		usage_error(cmd, "--search needs a non-empty TEXT");
		return DBTCTL_EXIT_USAGE;
	}
	if (lopts.search == NULL && (context_set || lopts.case_sensitive || lopts.regex)) {
		usage_error(cmd, "%s works only with --search",
		            context_set ? "-C" : lopts.regex ? "--regex" : "--case-sensitive");
		return DBTCTL_EXIT_USAGE;
	}
	if (output != NULL && output[0] == '\0') {
		usage_error(cmd, "--output needs a FILE");
		return DBTCTL_EXIT_USAGE;
	}
	if (output != NULL && (lopts.search != NULL || o->json)) {
		usage_error(cmd, "--output writes the log as stored; it does not go with %s",
		            lopts.search != NULL ? "--search" : "--json");
		return DBTCTL_EXIT_USAGE;
	}
	lopts.json = o->json;
	lopts.raw = output != NULL;
	lopts.color = output == NULL && o->style.color;
	rc = out_logs_new(&lg, &lopts, stdout, err, sizeof(err));
	if (rc == -EINVAL) {
		usage_error(cmd, "--search \"%s\" is not a valid extended regular expression: %s",
		            lopts.search, err);
		return DBTCTL_EXIT_USAGE;
	}
	if (rc < 0) {
		fprintf(stderr, "dbtctl: out of memory\n");
		return DBTCTL_EXIT_FAILED;
	}

	/* the run first: its steps, and "no such run" as other commands say it */
	req.body_case = DBTD__REQUEST__BODY_VIEW_RUN;
	req.view_run = &ref;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_RUN, "see dbtctl run list", &view);
	if (rc != 0) {
		out_logs_free(lg);
		return rc;
	}
	run = view->run;
	out_logs_set_run(lg, run);
	if (step_arg != NULL && resolve_step(cmd, run, step_arg, &rl.step) < 0) {
		rc = DBTCTL_EXIT_USAGE;
		goto out;
	}
	if (output != NULL) {
		rc = out_file_open(&of, output);
		if (rc != 0)
			goto out;
		out = of.f;
	} else if (!o->style.tty) {
		setvbuf(stdout, logs_stdout_buf, _IOFBF, sizeof(logs_stdout_buf));
	}
	/* the printer again, now that the step and the destination are known */
	lopts.step = rl.step;
	out_logs_free(lg);
	lg = NULL;
	if (out_logs_new(&lg, &lopts, out, NULL, 0) < 0) {
		fprintf(stderr, "dbtctl: out of memory\n");
		rc = DBTCTL_EXIT_FAILED;
		goto out;
	}
	out_logs_set_run(lg, run);

	rl.run = ref.id;
	req.body_case = DBTD__REQUEST__BODY_READ_LOGS;
	req.read_logs = &rl;
	if (rl.follow) /* dbtd answered the view; a queued run may log nothing for long */
		conn_set_timeout(&c, 0);
	rc = conn_send(&c, &req);
	if (rc < 0) {
		rc = transport_error(&c, rc);
		goto out;
	}
	while (!ended) {
		rc = conn_recv(&c, &r);
		if (rc < 0) {
			out_logs_finish(lg);
			fflush(out);
			if (rc == -ECONNRESET || rc == -EPROTO) {
				fprintf(stderr, "dbtctl: dbtd at %s closed the connection before the "
				        "end of the log of run %" PRIu64 "\n", c.path, ref.id);
				rc = DBTCTL_EXIT_FAILED;
			} else {
				rc = transport_error(&c, rc);
			}
			goto out;
		}
		ended = r->end;
		if (r->body_case == DBTD__RESPONSE__BODY_LOG && r->log != NULL) {
			/* a step starts while following: its header with its state */
			if (rl.follow && last == NULL && out_logs_step_lines(lg, r->log->step) == 0 &&
			    run_step_stale(fresh ? fresh->run : view->run, r->log->step)) {
				Dbtd__Response *now = fetch_run(o, ref.id);

				if (now != NULL) {
					out_logs_set_run(lg, now->run);
					if (fresh != NULL)
						dbtd__response__free_unpacked(fresh, NULL);
					fresh = now;
				}
			}
			lrc = out_logs_chunk(lg, r->log->step, r->log->data.data, r->log->data.len);
			if (lrc == 0 && rl.follow && fflush(out) != 0)
				lrc = -EIO;
			dbtd__response__free_unpacked(r, NULL);
			r = NULL;
			if (lrc < 0)
				break;
		} else if (r->body_case == DBTD__RESPONSE__BODY_RUN && r->run != NULL) {
			/* the run as the stream ends: the last state for the headers */
			out_logs_set_run(lg, r->run);
			if (last != NULL)
				dbtd__response__free_unpacked(last, NULL);
			last = r;
			r = NULL;
		} else if (r->body_case == DBTD__RESPONSE__BODY__NOT_SET && r->end) {
			dbtd__response__free_unpacked(r, NULL);
			r = NULL;
		} else {
			fflush(out);
			rc = reply_check(r, DBTD__RESPONSE__BODY_LOG, "see dbtctl run list");
			if (rc == 0)
				rc = DBTCTL_EXIT_FAILED;
			goto out;
		}
	}
	if (lrc == 0)
		lrc = out_logs_finish(lg);
	if (lrc < 0) {
		if (lrc == -EBADMSG)
			fprintf(stderr, "dbtctl: dbtd sent a log record this dbtctl cannot decode: "
			        "dbtd's store may be damaged (run dbtd check), or dbtd is of another "
			        "release than this dbtctl\n");
		else if (lrc == -ENOMEM)
			fprintf(stderr, "dbtctl: out of memory while printing the log\n");
		else if (output != NULL)
			fprintf(stderr, "dbtctl: cannot write %s: %s\n", of.tmp, strerror(errno));
		/* a write error on stdout is reported by main (not for a closed pipe) */
		rc = DBTCTL_EXIT_FAILED;
		goto out;
	}

	run = last != NULL ? last->run : fresh != NULL ? fresh->run : view->run;
	if (output != NULL) {
		rc = out_file_close(&of, true);
		if (rc == 0)
			fprintf(stderr, "wrote %" PRIu64 " lines of run %" PRIu64 " to %s\n",
			        out_logs_lines(lg), ref.id, output);
		if (rc != 0 || !rl.follow)
			goto out;
	}
	fflush(stdout);
	if (lopts.search == NULL && !o->json && output == NULL) {
		if (rl.step != 0 && out_logs_step_lines(lg, rl.step) == 0)
			fprintf(stderr, "(step %" PRIu32 " of run %" PRIu64 " has no log lines)\n",
			        rl.step, ref.id);
		else if (rl.step == 0 && run->n_steps == 0)
			fprintf(stderr, "(run %" PRIu64 " has no steps%s)\n", ref.id,
			        run->status == DBTD__RUN_STATUS__RUN_SKIPPED ? ": it was skipped" :
			        run->status == DBTD__RUN_STATUS__RUN_QUEUED ? " yet: it is queued" : "");
	}
	if (lopts.search != NULL) {
		rc = out_logs_matches(lg) > 0 ? DBTCTL_EXIT_OK : DBTCTL_EXIT_FAILED;
	} else if (rl.follow) {
		rc = run->status == DBTD__RUN_STATUS__RUN_COMPLETED ? DBTCTL_EXIT_OK
		                                                     : DBTCTL_EXIT_FAILED;
		if (!run_final(run->status))
			fprintf(stderr, "dbtctl: dbtd ended the log while run %" PRIu64 " is still "
			        "%s; see dbtctl run watch %" PRIu64 "\n", ref.id,
			        run_status_json(run->status), ref.id);
		else if (rc != DBTCTL_EXIT_OK && !o->json)
			fprintf(stderr, "run %" PRIu64 " %s\n", ref.id, run_status_json(run->status));
	} else {
		rc = DBTCTL_EXIT_OK;
	}
out:
	if (of.f != NULL)
		out_file_close(&of, false);
	if (r != NULL)
		dbtd__response__free_unpacked(r, NULL);
	if (last != NULL)
		dbtd__response__free_unpacked(last, NULL);
	out_logs_free(lg);
	if (fresh != NULL)
		dbtd__response__free_unpacked(fresh, NULL);
	request_done(&c, view);
	return rc;
}

/* ---- events: pipelines and forge webhooks ---- */

/* A webhook payload is one request frame: stay below the frame cap. */
#define PAYLOAD_MAX (FRAME_MAX - 64 * 1024)

/* Print what an event started: the message, then one line per run. */
static int
print_triggered(const struct dbtctl_opts *o, const Dbtd__Triggered *t)
{
	if (o->json) {
		json_t *obj = json_object(), *runs = json_array();
		for (size_t i = 0; runs != NULL && i < t->n_runs; i++)
			json_array_append_new(runs, out_run_json(t->runs[i], false, now_ms()));
		json_object_set_new(obj, "message", json_string(t->message ? t->message : ""));
		json_object_set_new(obj, "runs", runs ? runs : json_array());
		return print_json(obj);
	}
	if (t->message != NULL && t->message[0] != '\0')
		printf("%s\n", t->message);
	return DBTCTL_EXIT_OK;
}

/* `event pipeline NAME` */
static int
cmd_event_pipeline(struct dbtctl_opts *o, const struct command *cmd, int argc,
                   char **argv)
{
	static const struct option lo[] = { COMMON_OPTIONS };
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__PipelineEvent pe = DBTD__PIPELINE_EVENT__INIT;
	Dbtd__Response *r;
	const char *name = NULL;
	struct conn c;
	int ch, rc;

	if ((ch = next_opt(o, cmd, argc, argv, lo)) != -1)
		return stop_status(ch);
	if (one_arg(cmd, argc, argv, "the pipeline's NAME", &name) < 0)
		return DBTCTL_EXIT_USAGE;
	pe.name = (char *)name;
	req.body_case = DBTD__REQUEST__BODY_PIPELINE_EVENT;
	req.pipeline_event = &pe;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_TRIGGERED, NULL, &r);
	if (rc != 0)
		return rc;
	rc = print_triggered(o, r->triggered);
	request_done(&c, r);
	return rc;
}

/* Read all of stdin (at most PAYLOAD_MAX bytes); 0 or an exit status. */
static int
read_payload(uint8_t **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	uint8_t *buf = malloc(cap);

	*out = NULL;
	*len = 0;
	if (isatty(STDIN_FILENO)) {
		fprintf(stderr, "dbtctl: give the webhook payload on stdin, e.g. < payload.json\n");
		free(buf);
		return DBTCTL_EXIT_USAGE;
	}
	while (buf != NULL) {
		size_t r;
		if (n == cap) {
			uint8_t *g = cap < PAYLOAD_MAX ? realloc(buf, cap * 2) : NULL;
			if (g == NULL)
				break;
			buf = g;
			cap *= 2;
		}
		r = fread(buf + n, 1, cap - n, stdin);
		n += r;
		if (n > PAYLOAD_MAX) {
			fprintf(stderr, "dbtctl: the payload is larger than %u bytes; dbtd does "
			        "not take webhook payloads that large\n", (unsigned)PAYLOAD_MAX);
			free(buf);
			return DBTCTL_EXIT_USAGE;
		}
		if (r == 0) {
			if (ferror(stdin)) {
				fprintf(stderr, "dbtctl: cannot read the payload from stdin: %s\n",
				        strerror(errno));
				free(buf);
				return DBTCTL_EXIT_FAILED;
			}
			*out = buf;
			*len = n;
			return 0;
		}
	}
	free(buf);
	fprintf(stderr, "dbtctl: out of memory reading the payload\n");
	return DBTCTL_EXIT_FAILED;
}

/* `webhook github|gitlab [--project P] --event EVENT [--signature S | --token T]` */
static int
cmd_webhook(struct dbtctl_opts *o, const struct command *cmd, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "project", required_argument, NULL, OPT_PROJECT },
		{ "event", required_argument, NULL, OPT_EVENT },
		{ "signature", required_argument, NULL, OPT_SIGNATURE },
		{ "token", required_argument, NULL, OPT_TOKEN },
		COMMON_OPTIONS
	};
	bool github = strcmp(cmd->name, "github") == 0;
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Webhook w = DBTD__WEBHOOK__INIT;
	Dbtd__Response *r;
	uint8_t *payload = NULL;
	size_t len = 0;
	struct conn c;
	int ch, rc;

	w.forge = (char *)cmd->name;
	while ((ch = next_opt(o, cmd, argc, argv, lo)) != -1) {
		switch (ch) {
		case OPT_PROJECT:   w.project = optarg; break;
		case OPT_EVENT:     w.event = optarg; break;
		case OPT_SIGNATURE: w.signature = optarg; break;
		case OPT_TOKEN:     w.token = optarg; break;
		default:            return stop_status(ch);
		}
	}
	if (no_args(cmd, argc, argv) < 0)
		return DBTCTL_EXIT_USAGE;
	if (w.event[0] == '\0')
		return usage_error(cmd, "--event is required: the %s header's value, e.g. %s",
		                   github ? "X-GitHub-Event" : "X-Gitlab-Event",
		                   github ? "pull_request" : "\"Merge Request Hook\"");
	if (github && w.token[0] != '\0')
		return usage_error(cmd, "--token is for GitLab; GitHub signs with --signature");
	if (!github && w.signature[0] != '\0')
		return usage_error(cmd, "--signature is for GitHub; GitLab sends --token");
	rc = read_payload(&payload, &len);
	if (rc != 0)
		return rc;
	w.payload.data = payload;
	w.payload.len = len;
	req.body_case = DBTD__REQUEST__BODY_WEBHOOK;
	req.webhook = &w;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_TRIGGERED, NULL, &r);
	free(payload);
	if (rc != 0)
		return rc;
	rc = print_triggered(o, r->triggered);
	request_done(&c, r);
	return rc;
}

/* ---- plugins ---- */

/* `plugin list`: the step plugins dbtd loaded, and the files it refused. */
static int
cmd_plugin_list(struct dbtctl_opts *o, const struct command *cmd, int argc,
                char **argv)
{
	static const struct option lo[] = { COMMON_OPTIONS };
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ListPlugins lp = DBTD__LIST_PLUGINS__INIT;
	Dbtd__Response *r;
	struct conn c;
	int ch, rc;

	if ((ch = next_opt(o, cmd, argc, argv, lo)) != -1)
		return stop_status(ch);
	if (no_args(cmd, argc, argv) < 0)
		return DBTCTL_EXIT_USAGE;
	req.body_case = DBTD__REQUEST__BODY_LIST_PLUGINS;
	req.list_plugins = &lp;
	rc = request(o, &c, &req, DBTD__RESPONSE__BODY_PLUGINS, NULL, &r);
	if (rc != 0)
		return rc;
	if (o->json) {
		rc = print_json(out_plugins_json(r->plugins));
	} else if (out_plugins_view(&o->style, r->plugins) < 0) {
		fprintf(stderr, "dbtctl: out of memory while printing the plugins\n");
		rc = DBTCTL_EXIT_FAILED;
	}
	request_done(&c, r);
	return rc;
}

/*
 * dbtctl version: this dbtctl, and the dbtd it reaches with the format of
 * its store.  A dbtd older than 0.2.0 does not know server_info: it is
 * still named (from Hello), and the command succeeds.
 */
static int
cmd_version(struct dbtctl_opts *o, int argc, char **argv)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__ServerInfo si = DBTD__SERVER_INFO__INIT;
	Dbtd__Response *r = NULL;
	const Dbtd__StoreFormat *f = NULL;
	const Dbtd__StoreSpace *sp = NULL;
	struct conn c;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			o->json = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("usage: dbtctl version\n"
			       "Print dbtctl's version, and the version, protocol and store format\n"
			       "of the dbtd it reaches.\n");
			return DBTCTL_EXIT_OK;
		} else {
			fprintf(stderr, "dbtctl: version takes no arguments; see dbtctl version --help\n");
			return DBTCTL_EXIT_USAGE;
		}
	}
	if (!o->json)
		printf("dbtctl %s (protocol %d)\n", PACKAGE_VERSION,
		       DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
	fflush(stdout);
	rc = session_open(o, &c);
	if (rc != 0)
		return rc;
	req.body_case = DBTD__REQUEST__BODY_SERVER_INFO;
	req.server_info = &si;
	rc = conn_call(&c, &req, &r);
	if (rc < 0) {
		rc = transport_error(&c, rc);
		conn_close(&c);
		return rc;
	}
	if (r->body_case == DBTD__RESPONSE__BODY_SERVER_INFO && r->server_info->store)
		f = r->server_info->store;
	if (r->body_case == DBTD__RESPONSE__BODY_SERVER_INFO)
		sp = r->server_info->space;
	if (o->json) {
		json_t *j = json_object();
		json_object_set_new(j, "client", json_string("dbtctl " PACKAGE_VERSION));
		json_object_set_new(j, "server", json_string(server_name));
		json_object_set_new(j, "socket", json_string(c.path));
		json_object_set_new(j, "protocol",
		                    json_integer(DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT));
		json_object_set_new(j, "store_format", f ? json_integer(f->format) : json_null());
		json_object_set_new(j, "store_written_by",
		                    f ? json_string(f->written_by) : json_null());
		if (sp) {
			json_t *js = json_object();
			json_object_set_new(js, "map_size", json_integer((json_int_t)sp->map_size));
			json_object_set_new(js, "map_used", json_integer((json_int_t)sp->map_used));
			json_object_set_new(js, "max_map_size",
			                    json_integer((json_int_t)sp->max_map_size));
			json_object_set_new(js, "file_size", json_integer((json_int_t)sp->file_size));
			json_object_set_new(js, "disk_free", json_integer((json_int_t)sp->disk_free));
			json_object_set_new(j, "store_space", js);
		}
		rc = print_json(j);
	} else if (f) {
		printf("%s at %s (protocol %d, store format %" PRIu32 ")\n", server_name, c.path,
		       DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT, f->format);
		if (sp)
			printf("store: %.1f MiB used of a %.1f MiB map (grows to %.1f MiB at most); "
			       "data file %.1f MiB, %.1f MiB free on its disk\n",
			       sp->map_used / 1048576.0, sp->map_size / 1048576.0,
			       sp->max_map_size / 1048576.0, sp->file_size / 1048576.0,
			       sp->disk_free / 1048576.0);
	} else {
		printf("%s at %s (protocol %d; too old to report its store format)\n", server_name,
		       c.path, DBTD__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
	}
	request_done(&c, r);
	return rc;
}

/* ---- the command table ---- */

static const struct command commands[] = {
	{ "project", "add",
	  "NAME --repo URL [--subdir DIR] [--webhook-secret-env VAR] [--poll SECONDS]",
	  "Register a dbt project kept in a Git repository.",
	  "  --repo URL           Git URL, or a local repository path (made absolute)\n"
	  "  --subdir DIR         directory of the repository holding dbt_project.yml\n"
	  "  --webhook-secret-env VAR\n"
	  "                       read the webhook secret from environment variable VAR\n"
	  "  --poll SECONDS       poll the repository for new commits every SECONDS\n",
	  cmd_project_add },
	{ "project", "list", "", "List projects.", NULL, cmd_list },
	{ "project", "view", "NAME", "Show one project.", NULL, cmd_view },
	{ "project", "rm", "NAME", "Remove a project.", NULL, cmd_rm },

	{ "env", "add",
	  "NAME --project P --branch B --destination duckdb --path FILE [--schema S]\n"
	  "              [--threads N] [--dbt PATH] [--env KEY=VALUE]...\n"
	  "       dbtctl env add NAME --project P --branch B --destination postgres --host H [--port N]\n"
	  "              --user U --password-env VAR --dbname D --schema S [--threads N]\n"
	  "              [--dbt PATH] [--env KEY=VALUE]...",
	  "Add an environment: where a project's jobs run (branch and destination).",
	  "  --project P          the project (see dbtctl project list)\n"
	  "  --branch B           the Git branch to run\n"
	  "  --destination TYPE   duckdb or postgres\n"
	  "  --path FILE          duckdb: the database file (made absolute)\n"
	  "  --host H             postgres: server host\n"
	  "  --port N             postgres: server port (default 5432)\n"
	  "  --user U             postgres: user name\n"
	  "  --password-env VAR   postgres: read the password from environment variable VAR\n"
	  "  --dbname D           postgres: database\n"
	  "  --schema S           target schema (required for postgres)\n"
	  "  --threads N          dbt threads (1-1024)\n"
	  "  --dbt PATH           the dbt executable (default: dbt on dbtd's PATH)\n"
	  "  --env KEY=VALUE      an environment variable for dbt; repeatable\n",
	  cmd_env_add },
	{ "env", "list", "", "List environments.", NULL, cmd_list },
	{ "env", "view", "NAME", "Show one environment.", NULL, cmd_view },
	{ "env", "rm", "NAME", "Remove an environment.", NULL, cmd_rm },

	{ "job", "add",
	  "NAME --env E [--type deploy|ci|merge] --command \"dbt build\" [--command ...]\n"
	  "              [--step TYPE[:KEY=VALUE,...]]... [--schedule CRON] [--timezone IANA]\n"
	  "              [--on-pipeline NAME] [--timeout SECONDS] [--keep-runs N] [--keep-days D]",
	  "Add a job: dbt commands (and plugin steps) run in one environment.",
	  "  --env E              the environment (see dbtctl env list)\n"
	  "  --type TYPE          deploy (default), ci or merge\n"
	  "  --command CMD        a dbt command, e.g. \"dbt build\"; repeatable, in order\n"
	  "  --step TYPE[:KEY=VALUE,...]\n"
	  "                       a step of a step plugin (see dbtctl plugin list) with\n"
	  "                       its parameters, in order among the commands; a VALUE\n"
	  "                       cannot hold a comma\n"
	  "  --schedule CRON      run on this cron schedule\n"
	  "  --timezone IANA      time zone of the schedule (default UTC)\n"
	  "  --on-pipeline NAME   run when ingestion pipeline NAME reports a sync\n"
	  "  --timeout SECONDS    fail a run that takes longer\n"
	  "  --keep-runs N        keep the newest N finished runs (0: dbtd's --keep-runs)\n"
	  "  --keep-days D        keep runs finished in the last D days (0: dbtd's\n"
	  "                       --keep-days); the newest finished run is always kept\n",
	  cmd_job_add },
	{ "job", "edit", "NAME [--keep-runs N] [--keep-days D]",
	  "Change a job's retention: how many of its runs, and how old, dbtd keeps.",
	  "  --keep-runs N        keep the newest N finished runs (0: dbtd's --keep-runs)\n"
	  "  --keep-days D        keep runs finished in the last D days (0: dbtd's\n"
	  "                       --keep-days); the newest finished run is always kept\n",
	  cmd_job_edit },
	{ "job", "list", "", "List jobs.", NULL, cmd_list },
	{ "job", "view", "NAME", "Show one job.", NULL, cmd_view },
	{ "job", "rm", "NAME", "Remove a job.", NULL, cmd_rm },
	{ "job", "run", "NAME [--wait]",
	  "Run a job now (Run Now); prints the new run's id.",
	  "  --wait               follow the run until it ends; exit 0 only if it completed\n",
	  cmd_job_run },

	{ "run", "list",
	  "[--job J] [--status S] [--trigger T] [--branch B] [--limit N] [--before ID]",
	  "List runs, newest first.",
	  "  --job J              runs of job J\n"
	  "  --status S           queued, running, completed, failed, canceled or skipped\n"
	  "  --trigger T          scheduled, manual, pr, merge, pipeline, api or rerun\n"
	  "  --branch B           runs of Git branch B\n"
	  "  --limit N            at most N runs (default 20)\n"
	  "  --before ID          only runs older than run ID (next page)\n",
	  cmd_run_list },
	{ "run", "view", "ID", "Show a run's details and steps.", NULL, cmd_run_view },
	{ "run", "watch", "ID",
	  "Follow a run's steps until it ends; exit 0 only if it completed.", NULL,
	  cmd_run_watch },
	{ "run", "cancel", "ID", "Cancel a queued or running run.", NULL, cmd_run_cancel },
	{ "run", "rerun", "ID [--wait]",
	  "Run a completed or failed run again, on the branch's latest commit.",
	  "  --wait               follow the new run until it ends; exit 0 only if it completed\n",
	  cmd_run_rerun },
	{ "run", "logs",
	  "ID [--step N|NAME] [--search TEXT [--case-sensitive] [--regex] [-C N]]\n"
	  "              [--follow] [--output FILE]",
	  "Show a run's step logs, search them, or save them.",
	  "  --step N|NAME        only step N, or the step named NAME (any case; a unique\n"
	  "                       part of a name will do, e.g. build)\n"
	  "  --search TEXT        only lines holding TEXT (any case), as\n"
	  "                       STEP:LINE: ...; exit 1 when no line matches\n"
	  "  --case-sensitive     --search matches letters in the same case only\n"
	  "  --regex              TEXT is a POSIX extended regular expression\n"
	  "  -C, --context N      N lines of context around each match\n"
	  "  --follow             keep printing lines as the run writes them until it\n"
	  "                       ends; exit 0 only if it completed\n"
	  "  --output FILE        write the log, text exactly as stored, to FILE\n",
	  cmd_run_logs },
	{ "run", "lineage",
	  "ID [--format text|dot|mermaid|json] [--select SPEC]... [--impact] [--tests]",
	  "Show a run's model graph: text, dot, Mermaid or JSON.",
	  "  --format FORMAT      text (default: nodes by layer with status marks), dot,\n"
	  "                       mermaid or json\n"
	  "  --select SPEC        only these nodes, with dbt's syntax: name, +name, name+,\n"
	  "                       +name+, N+name, name+N, @name, path:, file:, source:,\n"
	  "                       resource_type:, package:; several SPECs (spaces, commas\n"
	  "                       or repeated --select) add up\n"
	  "  --impact             for each failed node, what is downstream of it\n"
	  "  --tests              show tests too (hidden by default)\n",
	  cmd_run_lineage },
	{ "run", "artifacts", "ID [--tree] [--search TEXT]",
	  "List the files dbt wrote in a run.",
	  "  --tree               show the folder tree instead of PATH and SIZE columns\n"
	  "  --search TEXT        only files whose name holds TEXT (any case); exit 1\n"
	  "                       when none does\n",
	  cmd_run_artifacts },
	{ "run", "prune", "[--dry-run] [--job NAME]",
	  "Apply retention now: delete the runs past their job's policy, and what they left.",
	  "  --dry-run            only say what would be deleted\n"
	  "  --job NAME           only the runs of job NAME (artifact contents no run\n"
	  "                       refers to are deleted whatever the job)\n"
	  "  Deletes the finished runs older than their job's --keep-days or beyond its\n"
	  "  newest --keep-runs (dbtd's own when the job has none), never a queued or\n"
	  "  running run nor a job's newest finished run, with their step logs, lineage\n"
	  "  and artifact records; then the artifact contents no run refers to any\n"
	  "  more.  Prints what was freed.  dbtd also does this at start and hourly.\n",
	  cmd_run_prune },
	{ "run", "artifact", "ID PATH [--output FILE]",
	  "Print one file dbt wrote in a run, as stored.",
	  "  --output FILE        write it to FILE (through FILE.tmp) instead of stdout\n",
	  cmd_run_artifact },

	{ "event", "pipeline", "NAME",
	  "Report that ingestion pipeline NAME finished syncing: run its jobs.",
	  "  Starts every job added with --on-pipeline NAME (trigger pipeline) and\n"
	  "  prints the runs; exit 4 when no job listens to NAME.\n",
	  cmd_event_pipeline },
	{ "webhook", "github", "[--project P] --event EVENT [--signature SHA256_HEADER] < payload.json",
	  "Deliver a GitHub webhook payload (PR and merge runs).",
	  "  --event EVENT        the X-GitHub-Event header: pull_request, push or ping\n"
	  "  --signature VALUE    the X-Hub-Signature-256 header (sha256=...), checked\n"
	  "                       against the project's webhook secret\n"
	  "  --project P          the project; default: the one whose repo the\n"
	  "                       payload names\n"
	  "  A pull request opened, reopened or updated runs the ci jobs on its head\n"
	  "  commit (schema <schema>_pr_<number>); a push or a merged pull request runs\n"
	  "  the merge jobs of the branch.  Exit 1 on a bad signature, 2 on a malformed\n"
	  "  payload or an event not handled, 4 when no project, environment or job\n"
	  "  matches.\n",
	  cmd_webhook },
	{ "webhook", "gitlab", "[--project P] --event EVENT [--token TOKEN_HEADER] < payload.json",
	  "Deliver a GitLab webhook payload (PR and merge runs).",
	  "  --event EVENT        the X-Gitlab-Event header: \"Merge Request Hook\" or\n"
	  "                       \"Push Hook\"\n"
	  "  --token VALUE        the X-Gitlab-Token header, checked against the\n"
	  "                       project's webhook secret\n"
	  "  --project P          the project; default: the one whose repo the\n"
	  "                       payload names\n",
	  cmd_webhook },
	{ "plugin", "list", "",
	  "List the step plugins dbtd loaded, and the files it refused.",
	  "  Each loaded plugin's step type (what job add --step TYPE names), step\n"
	  "  ABI version, description and file; then each file of the plugin\n"
	  "  directory dbtd did not load, with the reason.  dbtd loads its plugins\n"
	  "  when it starts: restart it after installing one.\n",
	  cmd_plugin_list },
};

static const size_t ncommands = sizeof(commands) / sizeof(commands[0]);

/* True when some command belongs to group. */
static bool
group_known(const char *group)
{
	for (size_t i = 0; i < ncommands; i++)
		if (strcmp(commands[i].group, group) == 0)
			return true;
	return false;
}

/* Print the synopsis of every command of group to f. */
static void
group_usage(FILE *f, const char *group)
{
	bool first = true;

	for (size_t i = 0; i < ncommands; i++) {
		const struct command *cmd = &commands[i];

		if (strcmp(cmd->group, group) != 0)
			continue;
		fprintf(f, "%s dbtctl %s %s%s%s\n", first ? "usage:" : "      ",
		        cmd->group, cmd->name, cmd->synopsis[0] ? " " : "", cmd->synopsis);
		first = false;
	}
	fprintf(f, "Try 'dbtctl %s COMMAND --help' for more.\n", group);
}

/* Map the accepted aliases of command words to their names. */
static const char *
alias(const char *word)
{
	if (strcmp(word, "environment") == 0)
		return "env";
	if (strcmp(word, "remove") == 0)
		return "rm";
	if (strcmp(word, "ls") == 0)
		return "list";
	return word;
}

/* Print the list of commands and the global options. */
void
commands_usage(FILE *f)
{
	fprintf(f, "usage: dbtctl [--socket PATH] [--timeout SECONDS] [--json] COMMAND [ARGS...]\n\n"
	        "Commands:\n");
	for (size_t i = 0; i < ncommands; i++) {
		char words[32];

		snprintf(words, sizeof(words), "%s %s", commands[i].group, commands[i].name);
		fprintf(f, "  %-18s %s\n", words, commands[i].summary);
	}
	fprintf(f, "  %-18s %s\n", "version",
	        "Show dbtctl's version and the dbtd it reaches (store format).");
	fprintf(f, "\nGlobal options:\n"
	        "  --socket PATH      dbtd's socket (default: $DBTD_SOCKET, else\n"
	        "                     /run/dbtd/dbtd.sock for root, else\n"
	        "                     $XDG_RUNTIME_DIR/dbtd/dbtd.sock)\n"
	        "  --timeout SECONDS  give up when dbtd does not answer within SECONDS\n"
	        "                     (default: $DBTCTL_TIMEOUT, else 30; 0: wait forever);\n"
	        "                     a followed run or log may stay quiet for longer\n"
	        "  --json             print JSON instead of text (anywhere on the line)\n"
	        "  -h, --help         show this help; 'dbtctl COMMAND --help' for one command\n"
	        "  --version          print dbtctl's version\n"
	        "\nExit status: 0 ok, 1 the operation failed, 2 usage error, "
	        "3 cannot reach dbtd, 4 no such object,\n5 dbtd did not answer in time.\n");
}

/* Find the command named by the first words of argv and run it. */
int
commands_run(struct dbtctl_opts *o, int argc, char **argv)
{
	const char *group = alias(argv[0]);
	const char *name = NULL;
	int i = 1;

	if (strcmp(group, "help") == 0) {
		if (argc > 1 && group_known(alias(argv[1])))
			group_usage(stdout, alias(argv[1]));
		else
			commands_usage(stdout);
		return DBTCTL_EXIT_OK;
	}
	if (strcmp(group, "version") == 0)
		return cmd_version(o, argc, argv);
	if (!group_known(group)) {
		fprintf(stderr, "dbtctl: unknown command \"%s\"; see dbtctl --help\n", argv[0]);
		return DBTCTL_EXIT_USAGE;
	}
	while (i < argc && strcmp(argv[i], "--json") == 0) {
		o->json = true;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "dbtctl: \"%s\" needs a command\n", group);
		group_usage(stderr, group);
		return DBTCTL_EXIT_USAGE;
	}
	if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
		group_usage(stdout, group);
		return DBTCTL_EXIT_OK;
	}
	name = alias(argv[i]);
	for (size_t k = 0; k < ncommands; k++) {
		if (strcmp(commands[k].group, group) == 0 && strcmp(commands[k].name, name) == 0) {
			optind = 0; /* a fresh getopt scan of the command's arguments */
			o->cmd = &commands[k];
			o->argc = argc - i;
			o->argv = argv + i;
			return commands[k].run(o, &commands[k], argc - i, argv + i);
		}
	}
	fprintf(stderr, "dbtctl: unknown command \"%s %s\"\n", group, argv[i]);
	group_usage(stderr, group);
	return DBTCTL_EXIT_USAGE;
}
