/*
 * test_fdreserve.c - the reserve descriptor: with dbtd's descriptor table
 * full, a waiting client is accepted, told why in an Error frame and
 * closed, and the reserve is taken back; without a reserve the caller is
 * told to back off and the client stays queued until a descriptor frees.
 * The table is filled for real (a low RLIMIT_NOFILE and dup(2)).
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbtd.pb-c.h"
#include "fdlimit.h"
#include "fdreserve.h"

#define LIMIT 64

struct fixture {
	struct rlimit saved;
	int lfd, client;
	int dups[LIMIT];
	int n_dups;
	struct fd_reserve r;
};

/* Fill the descriptor table: dup until EMFILE. */
static void
fill(struct fixture *f)
{
	int fd;

	while ((fd = dup(f->lfd)) >= 0)
		f->dups[f->n_dups++] = fd;
	assert_int_equal(errno, EMFILE);
}

/* Free one descriptor of the table. */
static void
free_one(struct fixture *f)
{
	assert_true(f->n_dups > 0);
	close(f->dups[--f->n_dups]);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit rl;
	socklen_t len;

	if (f == NULL || getrlimit(RLIMIT_NOFILE, &f->saved) < 0 || f->saved.rlim_max < LIMIT)
		return -1;
	rl = f->saved;
	rl.rlim_cur = LIMIT;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	/* an abstract address: nothing to clean up on disk */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	      (size_t)snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
	                       "dbtd-test-fdreserve-%d", (int)getpid()));
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, len) < 0 || listen(f->lfd, 8) < 0)
		return -1;
	f->client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->client < 0 || connect(f->client, (struct sockaddr *)&sa, len) < 0)
		return -1;
	fd_reserve_open(&f->r);
	if (f->r.fd < 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	while (f->n_dups > 0)
		free_one(f);
	fd_reserve_close(&f->r);
	close(f->client);
	close(f->lfd);
	setrlimit(RLIMIT_NOFILE, &f->saved);
	free(f);
	return 0;
}

/* What the client was sent: the Error's message (NULL when nothing came); "" at EOF alone. */
static char *
client_reads(int fd)
{
	uint8_t buf[4096];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	Dbtd__Response *resp;
	char *msg;

	if (n < 0)
		return NULL;
	if (n == 0)
		return strdup("");
	assert_true(n > 4);
	assert_int_equal((size_t)n, 4 + ((size_t)buf[2] << 8 | buf[3]));
	resp = dbtd__response__unpack(NULL, (size_t)n - 4, buf + 4);
	assert_non_null(resp);
	assert_int_equal(resp->body_case, DBTD__RESPONSE__BODY_ERROR);
	assert_int_equal(resp->error->code, DBTD__ERROR_CODE__ERROR_FAILED);
	assert_int_equal(resp->request_id, 0);
	msg = strdup(resp->error->message);
	dbtd__response__free_unpacked(resp, NULL);
	return msg;
}

/* A full table: the client is refused with the reason, and the table is full again after. */
static void
test_refuses_with_the_reason(void **state)
{
	struct fixture *f = *state;
	char *msg;

	fill(f);
	assert_int_equal(accept(f->lfd, NULL, NULL), -1);
	assert_int_equal(errno, EMFILE);
	assert_int_equal(fd_reserve_refuse(&f->r, f->lfd, EMFILE, 100.0), 0);
	msg = client_reads(f->client);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "dbtd has no file descriptors left (limit 64, all in use): "
	                            "try again later; if this lasts, raise dbtd's open-file limit"));
	assert_non_null(strstr(msg, "LimitNOFILE="));
	free(msg);
	/* the reserve is held again, so the table is as full as before */
	assert_true(f->r.fd >= 0);
	assert_int_equal(dup(f->lfd), -1);
	assert_int_equal(errno, EMFILE);
	/* nobody else waiting: nothing to do, and no reason to back off */
	assert_int_equal(fd_reserve_refuse(&f->r, f->lfd, EMFILE, 100.5), 0);
}

/* Without a reserve the caller backs off; the client waits until a descriptor frees. */
static void
test_without_reserve_the_caller_backs_off(void **state)
{
	struct fixture *f = *state;
	char *msg;

	fd_reserve_close(&f->r);
	fill(f);
	assert_int_equal(fd_reserve_refuse(&f->r, f->lfd, EMFILE, 100.0), -EMFILE);
	assert_null(client_reads(f->client)); /* still queued, not dropped */
	assert_int_equal(errno, EAGAIN);
	free_one(f);
	/* a descriptor is free again: the reserve is retaken and serves the client */
	assert_int_equal(fd_reserve_refuse(&f->r, f->lfd, EMFILE, 101.0), 0);
	msg = client_reads(f->client);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "dbtd has no file descriptors left (limit 64"));
	free(msg);
	assert_true(f->r.fd >= 0);
}

/* The system's table full is told apart from dbtd's own. */
static void
test_messages(void **state)
{
	char buf[256];

	(void)state;
	assert_true(fdlimit_exhausted(EMFILE) && fdlimit_exhausted(-ENFILE));
	assert_false(fdlimit_exhausted(ENOMEM));
	assert_non_null(strstr(fdlimit_describe(ENFILE, buf, sizeof(buf)), "system"));
	assert_non_null(strstr(fdlimit_advice(ENFILE), "fs.file-max"));
	assert_non_null(strstr(fdlimit_advice(-EMFILE), "LimitNOFILE="));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refuses_with_the_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_reserve_the_caller_backs_off, setup,
		                                teardown),
		cmocka_unit_test(test_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
