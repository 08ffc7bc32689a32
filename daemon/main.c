/* main.c - dbtd: options, start-up, the event loop, shutdown. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "fdlimit.h"
#include "log.h"
#include "names.h"
#include "plugin.h"
#include "poll.h"
#include "retention.h"
#include "runs.h"
#include "scheduler.h"
#include "server.h"
#include "store.h"
#include "store_backup.h"
#include "store_check.h"
#include "store_format.h"
#include "systemd.h"
#include "util.h"

/* The state of one dbtd process: the layers, wired here and only here. */
struct daemon {
	struct ev_loop *loop;
	struct store *store;
	struct plugin_set plugins;
	struct runs *runs;
	struct scheduler *scheduler;
	struct pollers *pollers;
	struct retention *retention;
	struct api *api;
	struct server *server;
	char *state_dir;
	char *work_dir;        /* per-run workspaces: <state_dir>/work */
	char *blob_dir;        /* artifact contents by sha256: <state_dir>/blobs */
	unsigned max_runs;     /* run slots */
};

struct options {
	const char *socket;
	const char *state_dir;
	const char *plugin_dir;
	unsigned max_runs;
	mode_t socket_mode;
	int socket_mode_set;
	struct server_limits limits; /* what clients may cost */
	size_t map_size, max_map_size; /* the store's map: start, limit */
	int verbose;
	int check;  /* dbtd check */
	int json;   /* dbtd check --json */
	const char *backup; /* dbtd backup FILE */
	int force;  /* dbtd backup --force */
	struct store_keep keep; /* retention: --keep-runs, --keep-days */
};

/* The default retention: a year of a nightly job and then some; no count limit. */
#define KEEP_DAYS_DEFAULT 400
#define RETENTION_EVERY_S 3600.0  /* automatic passes: at start, then hourly */
#define BLOB_MARGIN_S 900.0       /* blobs younger than this are never swept */

/* Print usage to f. */
static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: dbtd [--socket PATH] [--state-dir DIR] [--plugin-dir DIR]\n"
	        "            [--max-concurrent-runs N] [--socket-mode MODE] [--verbose]\n"
	        "            [--max-connections N] [--max-client-memory MIB]\n"
	        "            [--hello-timeout S] [--frame-timeout S] [--idle-timeout S]\n"
	        "            [--map-size SIZE] [--max-map-size SIZE]\n"
	        "            [--keep-runs N] [--keep-days D]\n"
	        "       dbtd check [--state-dir DIR] [--json]\n"
	        "       dbtd backup FILE [--state-dir DIR] [--force]\n"
	        "       dbtd --version\n"
	        "Runs dbt jobs and keeps their run history; see dbtd(8).\n");
}

/* The default socket path (PRODUCT.md; dbtctl uses the same). */
static char *
default_socket(void)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");

	if (getuid() == 0)
		return strdup("/run/dbtd/dbtd.sock");
	if (rt && rt[0] == '/')
		return xasprintf("%s/dbtd/dbtd.sock", rt);
	return xasprintf("/tmp/dbtd-%u/dbtd.sock", (unsigned)getuid());
}

/* The default state directory (PRODUCT.md). */
static char *
default_state_dir(void)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (getuid() == 0)
		return strdup("/var/lib/dbtd");
	if (x && x[0] == '/')
		return xasprintf("%s/dbtd", x);
	if (home == NULL || home[0] != '/') {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : "/tmp";
	}
	return xasprintf("%s/.local/state/dbtd", home);
}

/*
 * A number of seconds from lo to hi (or 0 when zero_ok) for option `name`
 * into *out; 0, or 2 (the usage exit status) after saying what is wanted.
 */
static int
parse_seconds(const char *name, const char *arg, double lo, double hi, int zero_ok,
              double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v == 0 ? zero_ok : v >= lo && v <= hi)) {
		fprintf(stderr, "dbtd: --%s wants seconds from %g to %g%s, not \"%s\"\n", name,
		        lo, hi, zero_ok ? " (0: never)" : "", arg);
		return 2;
	}
	*out = v;
	return 0;
}

/*
 * A size for option `name`: a number with an optional K, M, G or T (powers
 * of 1024; "MiB" and "GB" read the same), at least lo, into *out; 0, or 2
 * (the usage exit status) after saying what is wanted.
 */
static int
parse_size(const char *name, const char *arg, size_t lo, size_t *out)
{
	static const char units[] = "KMGT";
	char *end;
	const char *u;
	unsigned long long v;
	int shift = 0;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (!errno && end != arg && *end && (u = strchr(units, toupper((unsigned char)*end)))) {
		shift = 10 * (int)(u - units + 1);
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
	}
	if (errno || end == arg || *end || arg[0] == '-' || v > (SIZE_MAX >> shift) ||
	    (size_t)v << shift < lo) {
		fprintf(stderr, "dbtd: --%s wants a size such as 512M, 4G or 1T, at least %zu MiB, "
		        "not \"%s\"\n", name, lo >> 20, arg);
		return 2;
	}
	*out = (size_t)v << shift;
	return 0;
}

/* Parse options into o; returns 0, or an exit status. */
static int
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "plugin-dir", required_argument, NULL, 'p' },
		{ "max-concurrent-runs", required_argument, NULL, 'j' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'J' },
		{ "max-connections", required_argument, NULL, 'C' },
		{ "max-client-memory", required_argument, NULL, 'M' },
		{ "hello-timeout", required_argument, NULL, 'H' },
		{ "frame-timeout", required_argument, NULL, 'F' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "map-size", required_argument, NULL, 'S' },
		{ "max-map-size", required_argument, NULL, 'X' },
		{ "keep-runs", required_argument, NULL, 'R' },
		{ "keep-days", required_argument, NULL, 'D' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	int c;

	o->max_runs = n > 0 ? (unsigned)n : 1;
	o->socket_mode = 0600;
	o->keep.days = KEEP_DAYS_DEFAULT;
	server_limits_default(&o->limits);
	o->map_size = STORE_MAP_START_DEFAULT;
	o->max_map_size = STORE_MAP_MAX_DEFAULT;
	while ((c = getopt_long(argc, argv, "hvV", longopts, NULL)) != -1) {
		char *end;
		unsigned long v;
		switch (c) {
		case 's': o->socket = optarg; break;
		case 'd': o->state_dir = optarg; break;
		case 'p': o->plugin_dir = optarg; break;
		case 'j':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > 1024) {
				fprintf(stderr, "dbtd: --max-concurrent-runs wants a number from 1 to 1024, "
				        "not \"%s\"\n", optarg);
				return 2;
			}
			o->max_runs = (unsigned)v;
			break;
		case 'm':
			errno = 0;
			v = strtoul(optarg, &end, 8);
			if (errno || *end || v > 0777) {
				fprintf(stderr, "dbtd: --socket-mode wants an octal mode such as 0660, "
				        "not \"%s\"\n", optarg);
				return 2;
			}
			o->socket_mode = (mode_t)v;
			o->socket_mode_set = 1;
			break;
		case 'C':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > 1000000) {
				fprintf(stderr, "dbtd: --max-connections wants a number from 1 to "
				        "1000000, not \"%s\"\n", optarg);
				return 2;
			}
			o->limits.max_clients = (unsigned)v;
			break;
		case 'M':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			/* at least one request and one reply at the frame limit */
			if (errno || *end || v < 32 || v > 1048576) {
				fprintf(stderr, "dbtd: --max-client-memory wants MiB from 32 to "
				        "1048576, not \"%s\"\n", optarg);
				return 2;
			}
			o->limits.max_memory = (size_t)v << 20;
			break;
		case 'H':
			if (parse_seconds("hello-timeout", optarg, 0.1, 3600, 0, &o->limits.hello_s))
				return 2;
			break;
		case 'F':
			if (parse_seconds("frame-timeout", optarg, 0.1, 3600, 0, &o->limits.frame_s))
				return 2;
			break;
		case 'I':
			if (parse_seconds("idle-timeout", optarg, 0.1, 604800, 1, &o->limits.idle_s))
				return 2;
			break;
		case 'S':
			if (parse_size("map-size", optarg, STORE_MAP_MIN, &o->map_size))
				return 2;
			break;
		case 'X':
			if (parse_size("max-map-size", optarg, STORE_MAP_MIN, &o->max_map_size))
				return 2;
			break;
		case 'R':
		case 'D':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || optarg[0] == '-' || v > 100000000) {
				fprintf(stderr, "dbtd: --%s wants a number from 0 (no limit) to "
				        "100000000, not \"%s\"\n", c == 'R' ? "keep-runs" : "keep-days",
				        optarg);
				return 2;
			}
			if (c == 'R')
				o->keep.runs = (uint32_t)v;
			else
				o->keep.days = (uint32_t)v;
			break;
		case 'f': o->force = 1; break;
		case 'v': o->verbose = 1; break;
		case 'J': o->json = 1; break;
		case 'h': usage(stdout); return -1;
		case 'V':
			printf("dbtd %s (store format %d)\n", PACKAGE_VERSION, STORE_FORMAT_CURRENT);
			return -1;
		default: usage(stderr); return 2;
		}
	}
	if (o->max_map_size < o->map_size) {
		if (o->max_map_size != STORE_MAP_MAX_DEFAULT) {
			fprintf(stderr, "dbtd: --max-map-size is smaller than --map-size\n");
			return 2;
		}
		o->max_map_size = o->map_size;
	}
	if (optind < argc && strcmp(argv[optind], "check") == 0 && !o->check) {
		o->check = 1;
		optind++;
	} else if (optind < argc && strcmp(argv[optind], "backup") == 0 && !o->backup) {
		if (optind + 1 >= argc || argv[optind + 1][0] == '\0') {
			fprintf(stderr, "dbtd: backup wants the FILE to write the copy to\n");
			return 2;
		}
		/* getopt moved the options after them (backup FILE --force) ahead */
		o->backup = argv[optind + 1];
		optind += 2;
	}
	if (o->force && !o->backup) {
		fprintf(stderr, "dbtd: --force is an option of dbtd backup\n");
		return 2;
	}
	if (o->json && !o->check) {
		fprintf(stderr, "dbtd: --json is an option of dbtd check\n");
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "dbtd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	return 0;
}

/* Nothing to do: the timer only wakes the loop so commit_cb runs. */
static void
wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop; (void)w; (void)revents;
}

/*
 * Before the loop waits: commit what this iteration changed, then send
 * what it has to say (group commit: nothing is reported before it is
 * durable, and a burst of changes costs one commit).
 */
static void
commit_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	static ev_timer later; /* wakes the loop when pending log lines fall due */
	struct daemon *d = ev_userdata(loop);
	int64_t due = store_commit_due(d->store, now_ms());
	int rc;

	(void)w; (void)revents;
	if (!ev_is_active(&later))
		ev_init(&later, wake_cb);
	if (due == 0) {
		ev_timer_stop(loop, &later);
		rc = store_commit(d->store);
		if (rc < 0) /* run states are kept and saved again by the engine */
			log_err("cannot save to %s: %s; log lines, lineage and artifacts "
			        "received since the last save are lost", d->state_dir,
			        store_strerror(rc));
	} else if (due > 0 && !ev_is_active(&later)) {
		ev_timer_set(&later, (double)due / 1000.0, 0.);
		ev_timer_start(loop, &later);
	}
	/*
	 * Only log lines can still be pending here: they may reach a follower
	 * up to 50 ms before they are committed.  Replies that report a change
	 * were committed by their handlers; run states reach watchers from the
	 * engine only once committed.
	 */
	server_flush(d->server);
}

/*
 * Every commit of the store, wherever it happened (commit_cb, or a handler
 * that commits before it replies): on success what was queued for clients
 * may go; on failure every change since the last commit is lost, and so
 * is what clients were told of them.
 */
static void
commit_hook(void *arg, int rc)
{
	struct daemon *d = arg;
	char msg[512];

	runs_committed(d->runs, rc); /* first: watchers' frames are part of what follows */
	if (rc == 0) {
		server_committed(d->server);
		return;
	}
	snprintf(msg, sizeof(msg), "dbtd could not save its state: %s; what this request "
	         "changed was not stored (and an answer to it would not hold)", store_strerror(rc));
	server_commit_failed(d->server, msg);
}

/* SIGINT / SIGTERM: leave the loop; shutdown happens after ev_run. */
static void
stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = ev_userdata(loop);

	(void)revents;
	log_info("received %s; stopping", strsignal(w->signum));
	runs_stopping(d->runs);
	ev_break(loop, EVBREAK_ALL);
}

int
main(int argc, char **argv)
{
	struct options o = { 0 };
	struct daemon d = { 0 };
	struct server_handler handler = { 0 };
	ev_signal sigint_w, sigterm_w;
	ev_prepare commit_w;
	char *sock = NULL, *ready = NULL, *why = NULL, idle[64];
	int listen_fd = -1, rc, status = 1;

	rc = parse_options(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (o.check || o.backup) {
		d.state_dir = o.state_dir ? strdup(o.state_dir) : default_state_dir();
		if (d.state_dir == NULL)
			status = 1;
		else if (o.check)
			status = store_check(d.state_dir, o.json);
		else
			status = store_backup(d.state_dir, o.backup, o.force);
		free(d.state_dir);
		return status;
	}
	log_init(o.verbose);
	signal(SIGPIPE, SIG_IGN);
	fdlimit_raise(); /* every client and run holds descriptors: take what the kernel allows */
	/*
	 * Buffers of 4 MiB and more (a client's 16 MiB request, a large reply
	 * being queued) are mapped on their own and given back when freed:
	 * glibc's default threshold rises to the largest block freed, after
	 * which such buffers come from the heap and its free space stays
	 * resident.  Setting it fixes the trim threshold too: 8 MiB keeps the
	 * heap from being trimmed and grown again on every 1 MiB log frame
	 * (at 1 MiB and the default trim, log capture peaked 15 MB higher and
	 * --search took twice as long: bench/run.sh logs).
	 */
#ifdef M_MMAP_THRESHOLD
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
#endif
	/* first: take LISTEN_* and NOTIFY_SOCKET out of the environment before anything forks */
	if (systemd_init(&listen_fd) < 0)
		goto out;

	sock = o.socket ? strdup(o.socket) : default_socket();
	d.state_dir = o.state_dir ? strdup(o.state_dir) : default_state_dir();
	if (sock == NULL || d.state_dir == NULL)
		goto out;
	d.work_dir = xasprintf("%s/work", d.state_dir);
	d.blob_dir = xasprintf("%s/blobs", d.state_dir);
	d.max_runs = o.max_runs;
	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (d.loop == NULL || d.work_dir == NULL || d.blob_dir == NULL) {
		log_err("cannot set up the event loop");
		goto out;
	}
	ev_set_userdata(d.loop, &d);

	rc = store_open(&d.store, d.state_dir, &why);
	if (rc < 0) {
		if (why)
			fprintf(stderr, "dbtd: %s.\n", why);
		else
			log_err("cannot open the state in %s: %s", d.state_dir, store_strerror(rc));
		free(why);
		goto out;
	}
	rc = store_set_map_limits(d.store, o.map_size, o.max_map_size);
	if (rc < 0) {
		log_err("cannot size the store's map: %s", store_strerror(rc));
		goto out;
	}
	rc = mkdir_p(d.work_dir, 0700);
	if (rc == 0)
		rc = mkdir_p(d.blob_dir, 0700);
	if (rc < 0) {
		log_err("cannot create %s and %s: %s", d.work_dir, d.blob_dir, strerror(-rc));
		goto out;
	}
	log_info("state in %s; %u run slot%s", d.state_dir, d.max_runs, d.max_runs == 1 ? "" : "s");
	rc = plugins_load_dir(&d.plugins, o.plugin_dir ? o.plugin_dir : PLUGINDIR);
	if (rc >= 0) {
		static const char *const builtin[] = { "git-clone", "dbt-profile", "dbt" };
		for (size_t i = 0; i < 3; i++)
			if (plugins_find(&d.plugins, builtin[i]) == NULL)
				log_warn("no plugin provides step type \"%s\": runs will fail at that step",
				         builtin[i]);
	}
	{
		struct runs_config rc_cfg = {
			.loop = d.loop, .store = d.store, .plugins = &d.plugins,
			.work_dir = d.work_dir, .blob_dir = d.blob_dir, .slots = d.max_runs,
		};
		rc = runs_new(&d.runs, &rc_cfg);
	}
	if (rc < 0)
		goto out;
	rc = scheduler_new(&d.scheduler, d.loop, d.runs);
	if (rc == 0)
		rc = pollers_new(&d.pollers, d.loop, d.runs);
	if (rc < 0) {
		log_err("cannot load schedules and polls: %s", store_strerror(rc));
		goto out;
	}
	{
		const char *autoprune = getenv("DBTD_TEST_AUTO_PRUNE"); /* tests: "0", none */
		struct retention_config rcfg = {
			.loop = d.loop, .store = d.store, .blob_dir = d.blob_dir, .keep = o.keep,
			.every_s = autoprune && strcmp(autoprune, "0") == 0 ? 0 : RETENTION_EVERY_S,
			.blob_margin_s = BLOB_MARGIN_S,
		};
		rc = retention_new(&d.retention, &rcfg);
	}
	if (rc < 0)
		goto out;
	{
		struct api_config ac = {
			.loop = d.loop, .store = d.store, .runs = d.runs, .scheduler = d.scheduler,
			.pollers = d.pollers, .plugins = &d.plugins, .blob_dir = d.blob_dir,
			.retention = d.retention,
		};
		rc = api_new(&d.api, &ac);
	}
	if (rc < 0)
		goto out;
	handler.request = api_request;
	handler.arg = d.api;
	if (listen_fd >= 0) {
		if (o.socket)
			log_info("--socket %s is ignored: systemd passed the socket to serve", o.socket);
		if (o.socket_mode_set)
			log_info("--socket-mode is ignored: the socket unit's SocketMode= applies");
		rc = server_adopt(&d.server, d.loop, &handler, listen_fd);
		listen_fd = -1; /* server_adopt took it */
	} else {
		rc = server_listen(&d.server, d.loop, &handler, sock, o.socket_mode);
	}
	if (rc < 0)
		goto out;
	server_set_limits(d.server, &o.limits);
	snprintf(idle, sizeof(idle), o.limits.idle_s > 0 ? "after %g s idle" : "never for idling",
	         o.limits.idle_s);
	log_info("clients: at most %u connections, holding at most %zu MiB of buffers; Hello "
	         "within %g s, each frame within %g s; closed %s", o.limits.max_clients,
	         o.limits.max_memory >> 20, o.limits.hello_s, o.limits.frame_s, idle);
	store_on_commit(d.store, commit_hook, &d);
	runs_recover(d.runs);
	store_set_group_commit(d.store, 1);
	{
		char kr[48] = "no count limit", kd[48] = "no age limit";
		if (o.keep.runs)
			snprintf(kr, sizeof(kr), "the newest %u per job", (unsigned)o.keep.runs);
		if (o.keep.days)
			snprintf(kd, sizeof(kd), "those of the last %u days", (unsigned)o.keep.days);
		log_info("retention: finished runs kept: %s, %s (a job's own settings first); "
		         "pruned at start and hourly", kr, kd);
	}
	retention_start(d.retention);

	ev_prepare_init(&commit_w, commit_cb);
	ev_set_priority(&commit_w, EV_MAXPRI);
	ev_prepare_start(d.loop, &commit_w);
	ev_signal_init(&sigint_w, stop_cb, SIGINT);
	ev_signal_init(&sigterm_w, stop_cb, SIGTERM);
	ev_signal_start(d.loop, &sigint_w);
	ev_signal_start(d.loop, &sigterm_w);
	log_info("dbtd %s ready", PACKAGE_VERSION);
	ready = xasprintf("Serving %s; %u run slot%s; %zu step plugin%s", server_path(d.server),
	                  d.max_runs, d.max_runs == 1 ? "" : "s", d.plugins.n,
	                  d.plugins.n == 1 ? "" : "s");
	systemd_ready(ready ? ready : "Serving");
	ev_run(d.loop, 0);
	systemd_stopping();
	status = 0;
out:
	if (listen_fd >= 0)
		close(listen_fd);
	pollers_free(d.pollers);
	d.pollers = NULL;
	scheduler_free(d.scheduler);
	d.scheduler = NULL;
	runs_shutdown(d.runs); /* first: watchers still get the runs' final state */
	if (d.store) {
		store_commit(d.store);
		store_on_commit(d.store, NULL, NULL);
	}
	server_free(d.server); /* closes every stream, and so every watch */
	retention_free(d.retention); /* after the streams that waited for a pass */
	api_free(d.api);
	runs_free(d.runs);
	d.runs = NULL;
	store_close(d.store);
	plugins_free(&d.plugins);
	if (d.loop)
		ev_loop_destroy(d.loop);
	free(d.work_dir);
	free(d.blob_dir);
	free(d.state_dir);
	free(sock);
	free(ready);
	if (status == 0)
		log_info("stopped");
	return status;
}
