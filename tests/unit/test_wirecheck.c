/*
 * test_wirecheck.c - the wire walker that checks a request before it is
 * unpacked: counts (flat, nested, packed), sizes, depth, the field total,
 * every limit of reqlimits at its edge, and malformed encodings.
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
#include <time.h>

#include <cmocka.h>

#include "dbtd.pb-c.h"
#include "reqlimits.h"
#include "wirecheck.h"

/* A growing buffer of wire bytes. */
struct wb {
	uint8_t *p;
	size_t len, cap;
};

static void
wb_put(struct wb *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void
wb_varint(struct wb *b, uint64_t v)
{
	uint8_t c;

	while (v >= 0x80) {
		c = (uint8_t)(v | 0x80);
		wb_put(b, &c, 1);
		v >>= 7;
	}
	c = (uint8_t)v;
	wb_put(b, &c, 1);
}

/* A length-delimited field: tag, length, bytes. */
static void
wb_ld(struct wb *b, uint32_t field, const void *data, size_t n)
{
	wb_varint(b, (uint64_t)field << 3 | 2);
	wb_varint(b, n);
	wb_put(b, data, n);
}

/* A length-delimited field holding what another buffer holds (freed). */
static void
wb_sub(struct wb *b, uint32_t field, struct wb *sub)
{
	wb_ld(b, field, sub->p, sub->len);
	free(sub->p);
	memset(sub, 0, sizeof(*sub));
}

/* A string field of n copies of 'x'. */
static void
wb_str(struct wb *b, uint32_t field, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, 'x', n);
	wb_ld(b, field, s, n);
	free(s);
}

/* A Request of one add_job: a Job with nsteps steps of nparams parameters. */
static void
job_request(struct wb *req, size_t nsteps, size_t nparams)
{
	struct wb job = { 0 }, step = { 0 }, kv = { 0 };

	wb_str(&job, 2, 3); /* name */
	for (size_t i = 0; i < nsteps; i++) {
		wb_ld(&step, 1, "dbt", 3);
		wb_ld(&step, 2, "dbt build", 9);
		for (size_t k = 0; k < nparams; k++) {
			wb_ld(&kv, 1, "k", 1);
			wb_ld(&kv, 2, "v", 1);
			wb_sub(&step, 3, &kv);
		}
		wb_sub(&job, 6, &step);
	}
	wb_sub(req, 4, &job);
}

static char why[512];

/* wirecheck of a Request against reqlimits. */
static int
check(const struct wb *b)
{
	return wirecheck(&dbtd__request__descriptor, &reqlimits, b->p, b->len, why, sizeof(why));
}

/* wirecheck of a Request against lim. */
static int
check_with(const struct wb *b, const struct wirecheck_limits *lim)
{
	return wirecheck(&dbtd__request__descriptor, lim, b->p, b->len, why, sizeof(why));
}

/* A message protobuf-c packed passes, and an empty one. */
static void
test_valid_messages_pass(void **state)
{
	Dbtd__Request req = DBTD__REQUEST__INIT;
	Dbtd__Job job = DBTD__JOB__INIT;
	Dbtd__JobStep step = DBTD__JOB_STEP__INIT, *steps[] = { &step };
	Dbtd__KeyValue kv = DBTD__KEY_VALUE__INIT, *kvs[] = { &kv };
	int64_t fires[] = { 1, 300, 1LL << 40 };
	uint8_t buf[512];
	size_t n;

	(void)state;
	kv.key = (char *)"k";
	kv.value = (char *)"v";
	step.type = (char *)"dbt";
	step.command = (char *)"dbt build";
	step.n_params = 1;
	step.params = kvs;
	job.name = (char *)"nightly";
	job.n_steps = 1;
	job.steps = steps;
	job.timeout_s = 3600;
	job.n_next_fires_ms = 3; /* packed repeated int64 */
	job.next_fires_ms = fires;
	req.body_case = DBTD__REQUEST__BODY_ADD_JOB;
	req.add_job = &job;
	req.request_id = 7;
	n = protobuf_c_message_pack(&req.base, buf);
	assert_true(n < sizeof(buf));
	assert_int_equal(wirecheck(&dbtd__request__descriptor, &reqlimits, buf, n, why,
	                           sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(wirecheck(&dbtd__request__descriptor, &reqlimits, buf, 0, why,
	                           sizeof(why)), 0);
}

/* Steps per job: 100 pass, 101 are refused with both numbers named. */
static void
test_steps_at_the_limit(void **state)
{
	struct wb req = { 0 };

	(void)state;
	job_request(&req, REQ_STEPS_MAX, 0);
	assert_int_equal(check(&req), 0);
	free(req.p);
	memset(&req, 0, sizeof(req));
	job_request(&req, REQ_STEPS_MAX + 1, 0);
	assert_int_equal(check(&req), -E2BIG);
	assert_string_equal(why, "a job may have at most 100 steps (this request has 101)");
	free(req.p);
}

/* 8 million empty steps (16 MB): counted to the end, quickly, nothing unpacked. */
static void
test_eight_million_steps(void **state)
{
	size_t n = 8000000;
	struct wb job = { 0 }, req = { 0 };
	struct timespec t0, t1;
	double ms;

	(void)state;
	wb_str(&job, 2, 3);
	job.cap = job.len + 2 * n;
	job.p = realloc(job.p, job.cap);
	assert_non_null(job.p);
	for (size_t i = 0; i < n; i++) {
		job.p[job.len++] = 0x32; /* field 6, length-delimited */
		job.p[job.len++] = 0x00;
	}
	wb_sub(&req, 4, &job);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(check(&req), -E2BIG);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_string_equal(why, "a job may have at most 100 steps (this request has 8000000)");
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	print_message("8M steps refused in %.1f ms\n", ms);
	assert_true(ms < 2000);
	free(req.p);
}

/* Parameters are counted per step, in a nested message. */
static void
test_params_per_step(void **state)
{
	struct wb req = { 0 };

	(void)state;
	job_request(&req, 3, REQ_PARAMS_MAX);
	assert_int_equal(check(&req), 0);
	free(req.p);
	memset(&req, 0, sizeof(req));
	job_request(&req, 3, REQ_PARAMS_MAX + 1);
	assert_int_equal(check(&req), -E2BIG);
	assert_string_equal(why, "a step may have at most 64 parameters (this request has 65)");
	free(req.p);
}

/* One string field of a Request at its limit passes, one byte more does not. */
static void
size_edge(uint32_t body, uint32_t field, size_t max, const char *refusal)
{
	for (size_t n = max; n <= max + 1; n++) {
		struct wb msg = { 0 }, req = { 0 };
		char want[256];
		wb_str(&msg, field, n);
		wb_sub(&req, body, &msg);
		if (n == max) {
			assert_int_equal(check(&req), 0);
		} else {
			assert_int_equal(check(&req), -E2BIG);
			snprintf(want, sizeof(want), "%s may be at most %zu bytes (this one has %zu)",
			         refusal, max, n);
			assert_string_equal(why, want);
		}
		free(req.p);
	}
}

/* Every size limit of a top-level object, at its edge. */
static void
test_sizes_at_the_limit(void **state)
{
	(void)state;
	size_edge(1, 2, REQ_TEXT_MAX, "a Hello's client name");
	size_edge(2, 2, REQ_NAME_MAX, "a project's name");
	size_edge(2, 3, REQ_PATH_MAX, "a project's repository (--repo)");
	size_edge(2, 4, REQ_PATH_MAX, "a project's --subdir");
	size_edge(2, 5, REQ_SECRET_MAX, "a project's webhook secret");
	size_edge(3, 2, REQ_NAME_MAX, "an environment's name");
	size_edge(3, 4, REQ_NAME_MAX, "an environment's project name (--project)");
	size_edge(3, 5, REQ_TEXT_MAX, "an environment's branch (--branch)");
	size_edge(3, 7, REQ_PATH_MAX, "an environment's --dbt path");
	size_edge(4, 2, REQ_NAME_MAX, "a job's name");
	size_edge(4, 4, REQ_NAME_MAX, "a job's environment name (--env)");
	size_edge(4, 7, REQ_SCHEDULE_MAX, "a job's --schedule");
	size_edge(4, 8, REQ_TIMEZONE_MAX, "a job's --timezone");
	size_edge(4, 9, REQ_NAME_MAX, "a job's --on-pipeline name");
	size_edge(6, 2, REQ_NAME_MAX, "a name");
	size_edge(7, 2, REQ_NAME_MAX, "a name");
	size_edge(8, 1, REQ_NAME_MAX, "a job name");
	size_edge(9, 1, REQ_NAME_MAX, "a job name (--job)");
	size_edge(9, 4, REQ_TEXT_MAX, "a branch (--branch)");
	size_edge(17, 2, REQ_PATH_MAX, "an artifact's path");
	size_edge(18, 1, REQ_NAME_MAX, "a webhook's forge");
	size_edge(18, 2, REQ_NAME_MAX, "a webhook's --event");
	size_edge(18, 3, REQ_TEXT_MAX, "a webhook's --signature");
	size_edge(18, 4, REQ_SECRET_MAX, "a webhook's --token");
	size_edge(18, 5, REQ_NAME_MAX, "a webhook's --project");
	size_edge(19, 1, REQ_NAME_MAX, "a pipeline's name");
}

/* A Request{add_environment{destination{field: n bytes}}}. */
static void
destination_request(struct wb *req, uint32_t field, size_t n)
{
	struct wb env = { 0 }, dst = { 0 };

	wb_str(&dst, field, n);
	wb_sub(&env, 6, &dst);
	wb_sub(req, 3, &env);
}

/* The destination's fields, one level down. */
static void
test_destination_sizes(void **state)
{
	static const struct { uint32_t field; size_t max; const char *what; } f[] = {
		{ 1, REQ_NAME_MAX, "a destination's type (--destination)" },
		{ 2, REQ_PATH_MAX, "a destination's --path" },
		{ 3, REQ_TEXT_MAX, "a destination's --host" },
		{ 5, REQ_TEXT_MAX, "a destination's --user" },
		{ 6, REQ_SECRET_MAX, "a destination's password" },
		{ 7, REQ_TEXT_MAX, "a destination's --dbname" },
		{ 8, REQ_TEXT_MAX, "a destination's --schema" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		struct wb req = { 0 };
		destination_request(&req, f[i].field, f[i].max);
		assert_int_equal(check(&req), 0);
		free(req.p);
		memset(&req, 0, sizeof(req));
		destination_request(&req, f[i].field, f[i].max + 1);
		assert_int_equal(check(&req), -E2BIG);
		assert_non_null(strstr(why, f[i].what));
		free(req.p);
	}
}

/* A Request{add_environment} with n --env variables, key and value sizes given. */
static void
env_request(struct wb *req, size_t n, size_t klen, size_t vlen)
{
	struct wb env = { 0 }, kv = { 0 };

	for (size_t i = 0; i < n; i++) {
		wb_str(&kv, 1, klen);
		wb_str(&kv, 2, vlen);
		wb_sub(&env, 8, &kv);
	}
	wb_sub(req, 3, &env);
}

/* --env: how many, names and values, at their edges. */
static void
test_env_vars(void **state)
{
	static const struct { size_t n, klen, vlen; int rc; const char *why; } c[] = {
		{ REQ_ENV_VARS_MAX, 1, 1, 0, "" },
		{ REQ_ENV_VARS_MAX + 1, 1, 1, -E2BIG,
		  "an environment may have at most 256 --env variables (this request has 257)" },
		{ 1, REQ_KEY_MAX, REQ_VALUE_MAX, 0, "" },
		{ 1, REQ_KEY_MAX + 1, 1, -E2BIG,
		  "an --env variable's name may be at most 256 bytes (this one has 257)" },
		{ 1, 1, REQ_VALUE_MAX + 1, -E2BIG,
		  "an --env variable's value may be at most 65536 bytes (this one has 65537)" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct wb req = { 0 };
		env_request(&req, c[i].n, c[i].klen, c[i].vlen);
		assert_int_equal(check(&req), c[i].rc);
		assert_string_equal(why, c[i].why);
		free(req.p);
	}
}

/* A Request{add_job{steps{command of clen, one param of klen/vlen}}}. */
static void
step_request(struct wb *req, size_t clen, size_t klen, size_t vlen)
{
	struct wb job = { 0 }, step = { 0 }, kv = { 0 };

	wb_str(&step, 1, REQ_NAME_MAX);
	wb_str(&step, 2, clen);
	wb_str(&kv, 1, klen);
	wb_str(&kv, 2, vlen);
	wb_sub(&step, 3, &kv);
	wb_sub(&job, 6, &step);
	wb_sub(req, 4, &job);
}

/* A step's command and its parameters: KeyValue has other limits here than in --env. */
static void
test_step_sizes(void **state)
{
	static const struct { size_t c, k, v; int rc; const char *why; } c[] = {
		{ REQ_COMMAND_MAX, REQ_KEY_MAX, REQ_VALUE_MAX, 0, "" },
		{ REQ_COMMAND_MAX + 1, 1, 1, -E2BIG,
		  "a step's command (--command) may be at most 65536 bytes (this one has 65537)" },
		{ 1, REQ_KEY_MAX + 1, 1, -E2BIG,
		  "a step parameter's name may be at most 256 bytes (this one has 257)" },
		{ 1, 1, REQ_VALUE_MAX + 1, -E2BIG,
		  "a step parameter's value may be at most 65536 bytes (this one has 65537)" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct wb req = { 0 };
		step_request(&req, c[i].c, c[i].k, c[i].v);
		assert_int_equal(check(&req), c[i].rc);
		assert_string_equal(why, c[i].why);
		free(req.p);
	}
}

/* Without a rule: the generic caps on repeated fields and strings; bytes by max_bytes. */
static void
test_generic_caps(void **state)
{
	struct wirecheck_limits lim = { .max_repeated = 3, .max_string = 5, .max_bytes = 8 };
	struct wb req = { 0 }, proj = { 0 }, kv = { 0 }, hook = { 0 };

	(void)state;
	for (int i = 0; i < 3; i++) {
		wb_ld(&kv, 1, "refs", 4);
		wb_sub(&proj, 9, &kv); /* poll_refs */
	}
	wb_sub(&req, 2, &proj);
	assert_int_equal(check_with(&req, &lim), 0);
	wb_ld(&proj, 9, "", 0);
	wb_ld(&proj, 9, "", 0);
	wb_sub(&req, 2, &proj); /* a second add_project: counted on its own (2) */
	assert_int_equal(check_with(&req, &lim), 0);
	for (int i = 0; i < 4; i++)
		wb_ld(&proj, 9, "", 0);
	wb_sub(&req, 2, &proj);
	assert_int_equal(check_with(&req, &lim), -E2BIG);
	assert_string_equal(why, "a Project may have at most 3 poll_refs (this request has 4)");
	free(req.p);
	memset(&req, 0, sizeof(req));

	wb_ld(&kv, 1, "12345", 5);
	wb_sub(&proj, 9, &kv);
	wb_sub(&req, 2, &proj);
	assert_int_equal(check_with(&req, &lim), 0);
	wb_ld(&kv, 2, "123456", 6);
	wb_sub(&proj, 9, &kv);
	wb_sub(&req, 2, &proj);
	assert_int_equal(check_with(&req, &lim), -E2BIG);
	assert_string_equal(why, "dbtd.KeyValue.value may be at most 5 bytes (this one has 6)");
	free(req.p);
	memset(&req, 0, sizeof(req));

	wb_ld(&hook, 6, "12345678", 8); /* payload: bytes */
	wb_sub(&req, 18, &hook);
	assert_int_equal(check_with(&req, &lim), 0);
	wb_ld(&hook, 6, "123456789", 9);
	wb_sub(&req, 18, &hook);
	assert_int_equal(check_with(&req, &lim), -E2BIG);
	assert_string_equal(why, "dbtd.Webhook.payload may be at most 8 bytes (this one has 9)");
	free(req.p);
}

/* Repeated scalars count their elements, packed or not. */
static void
test_packed_and_unpacked_scalars(void **state)
{
	struct wirecheck_limits lim = { .max_repeated = 4 };
	struct wb req = { 0 }, job = { 0 };
	const uint8_t packed4[] = { 0x01, 0x80, 0x01, 0x7f, 0xff, 0xff, 0x03 };

	(void)state;
	wb_ld(&job, 12, packed4, sizeof(packed4)); /* next_fires_ms: 4 values */
	wb_sub(&req, 4, &job);
	assert_int_equal(check_with(&req, &lim), 0);
	free(req.p);
	memset(&req, 0, sizeof(req));
	wb_ld(&job, 12, packed4, sizeof(packed4));
	wb_varint(&job, 12 << 3 | 0); /* one more, not packed */
	wb_varint(&job, 99);
	wb_sub(&req, 4, &job);
	assert_int_equal(check_with(&req, &lim), -E2BIG);
	assert_string_equal(why, "a Job may have at most 4 next_fires_ms (this request has 5)");
	free(req.p);
	memset(&req, 0, sizeof(req));
	wb_ld(&job, 12, packed4, sizeof(packed4) - 1); /* ends inside a varint */
	wb_sub(&req, 4, &job);
	assert_int_equal(check_with(&req, &lim), -EBADMSG);
	assert_non_null(strstr(why, "ends inside a value"));
	free(req.p);
}

/* Depth: Request > Job > JobStep > KeyValue is 4 deep. */
static void
test_depth(void **state)
{
	struct wirecheck_limits lim = { .max_depth = 3 };
	struct wb req = { 0 };

	(void)state;
	job_request(&req, 2, 0);
	assert_int_equal(check_with(&req, &lim), 0);
	free(req.p);
	memset(&req, 0, sizeof(req));
	job_request(&req, 2, 1);
	assert_int_equal(check_with(&req, &lim), -E2BIG);
	assert_non_null(strstr(why, "nested at most 3 deep (dbtd.JobStep.params at byte"));
	lim.max_depth = 4;
	assert_int_equal(check_with(&req, &lim), 0);
	free(req.p);
}

/* All fields of a message, nested and unknown ones too, against max_fields. */
static void
test_field_total(void **state)
{
	struct wirecheck_limits lim = { .max_fields = 10 };
	struct wb req = { 0 };

	(void)state;
	/* add_job, its name, 2 steps of type, command and one param (k, v): 1+1+2*(1+2+3) */
	job_request(&req, 2, 1);
	lim.max_fields = 14;
	assert_int_equal(check_with(&req, &lim), 0);
	lim.max_fields = 13;
	assert_int_equal(check_with(&req, &lim), -E2BIG);
	assert_string_equal(why, "a Request may hold at most 13 fields in all, nested ones "
	                    "included (this one has more)");
	free(req.p);
	memset(&req, 0, sizeof(req));
	for (int i = 0; i < 14; i++) { /* unknown fields count too */
		wb_varint(&req, 999 << 3 | 0);
		wb_varint(&req, 1);
	}
	assert_int_equal(check_with(&req, &lim), -E2BIG);
	free(req.p);
}

/* Unknown fields of every wire type are walked over. */
static void
test_unknown_fields_pass(void **state)
{
	struct wb req = { 0 }, job = { 0 };
	const uint8_t fixed[8] = { 0 };

	(void)state;
	wb_varint(&job, 500 << 3 | 0);
	wb_varint(&job, 1234567);
	wb_varint(&job, 501 << 3 | 1);
	wb_put(&job, fixed, 8);
	wb_varint(&job, 502 << 3 | 5);
	wb_put(&job, fixed, 4);
	wb_ld(&job, 503, "anything", 8);
	wb_sub(&req, 4, &job);
	assert_int_equal(check(&req), 0);
	free(req.p);
}

/* Malformed encodings are refused with a reason, never read past the end. */
static void
test_malformed(void **state)
{
	static const struct { const char *name; uint8_t b[16]; size_t n; const char *why; } c[] = {
		{ "tag cut short", { 0x80 }, 1, "tag at byte 0 is not a varint" },
		{ "varint cut short", { 0x08, 0x80 }, 2, "value of field 1 at byte 0 is not a varint" },
		{ "varint of 11 bytes", { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		                          0xff, 0x01 }, 12, "over 10 bytes" },
		{ "length past the end", { 0x22, 0x05, 0x10 }, 3, "says 5 bytes; 1 are left" },
		{ "length cut short", { 0x22 }, 1, "length of field 4 at byte 0 is not a varint" },
		{ "field number 0", { 0x00, 0x00 }, 2, "field number 0 at byte 0" },
		{ "start group", { 0x0b }, 1, "is a group" },
		{ "end group", { 0x0c }, 1, "is a group" },
		{ "wire type 6", { 0x0e }, 1, "wire type 6, which does not exist" },
		{ "wire type 7", { 0x0f }, 1, "wire type 7, which does not exist" },
		{ "fixed64 cut short", { 0x09, 1, 2, 3 }, 4, "field 1 at byte 0 is cut short" },
		{ "fixed32 cut short", { 0xa5, 0x06, 1 }, 3, "field 100 at byte 0 is cut short" },
		{ "message as varint", { 0x20, 0x01 }, 2, "(dbtd.Request.add_job) has wire type 0, not 2" },
		{ "varint as string", { 0x0a, 0x02, 0x0a, 0x00 }, 4,
		  "(dbtd.Hello.protocol_version) has wire type 2, not 0" },
		{ "nested cut short", { 0x22, 0x02, 0x12, 0x05 }, 4, "field 2 at byte 2 says 5 bytes" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		/* an exact copy, so that a read past the end shows under ASan */
		uint8_t *p = malloc(c[i].n);
		assert_non_null(p);
		memcpy(p, c[i].b, c[i].n);
		print_message("%s\n", c[i].name);
		assert_int_equal(wirecheck(&dbtd__request__descriptor, &reqlimits, p, c[i].n, why,
		                           sizeof(why)), -EBADMSG);
		assert_non_null(strstr(why, c[i].why));
		free(p);
	}
}

/* Every prefix and every one-byte change of a valid request: no crash, a clear answer. */
static void
test_mutations_never_crash(void **state)
{
	struct wb req = { 0 };

	(void)state;
	job_request(&req, 3, 2);
	wb_varint(&req, 100 << 3);
	wb_varint(&req, 77);
	for (size_t n = 0; n <= req.len; n++) {
		uint8_t *p = malloc(n ? n : 1);
		memcpy(p, req.p, n);
		int rc = wirecheck(&dbtd__request__descriptor, &reqlimits, p, n, why, sizeof(why));
		assert_true(rc == 0 || rc == -EBADMSG);
		free(p);
	}
	for (size_t i = 0; i < req.len; i++)
		for (unsigned v = 0; v < 256; v += 17) {
			uint8_t *p = malloc(req.len);
			memcpy(p, req.p, req.len);
			p[i] = (uint8_t)v;
			int rc = wirecheck(&dbtd__request__descriptor, &reqlimits, p, req.len, why,
			                   sizeof(why));
			assert_true(rc == 0 || rc == -EBADMSG || rc == -E2BIG);
			assert_true(rc == 0 || why[0] != '\0');
			free(p);
		}
	free(req.p);
}

/* The request id of a request that is refused undecoded: the last one wins. */
static void
test_varint_lookup(void **state)
{
	struct wb req = { 0 };
	uint64_t id = 0;

	(void)state;
	job_request(&req, 200, 0);
	assert_int_equal(wirecheck_varint(req.p, req.len, 100, &id), -ENOENT);
	wb_varint(&req, 100 << 3);
	wb_varint(&req, 41);
	wb_varint(&req, 100 << 3);
	wb_varint(&req, 1ULL << 40);
	assert_int_equal(wirecheck_varint(req.p, req.len, 100, &id), 0);
	assert_true(id == 1ULL << 40);
	wb_put(&req, "\x80", 1);
	assert_int_equal(wirecheck_varint(req.p, req.len, 100, &id), -EBADMSG);
	free(req.p);
}

/* Every rule of reqlimits names a field that exists, in the context it names. */
static void
test_rules_name_real_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < reqlimits.nrules; i++) {
		const struct wirecheck_rule *r = &reqlimits.rules[i];
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field_by_name(r->msg, r->field);
		print_message("%s.%s\n", r->msg->name, r->field);
		assert_non_null(f);
		assert_true(r->max > 0);
		if (r->unit)
			assert_int_equal(f->label, PROTOBUF_C_LABEL_REPEATED);
		else
			assert_true(f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES);
		if (r->in) {
			const ProtobufCFieldDescriptor *via =
				protobuf_c_message_descriptor_get_field_by_name(r->in, r->in_field);
			assert_non_null(via);
			assert_ptr_equal(via->descriptor, r->msg);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_messages_pass),
		cmocka_unit_test(test_steps_at_the_limit),
		cmocka_unit_test(test_eight_million_steps),
		cmocka_unit_test(test_params_per_step),
		cmocka_unit_test(test_sizes_at_the_limit),
		cmocka_unit_test(test_destination_sizes),
		cmocka_unit_test(test_env_vars),
		cmocka_unit_test(test_step_sizes),
		cmocka_unit_test(test_generic_caps),
		cmocka_unit_test(test_packed_and_unpacked_scalars),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_field_total),
		cmocka_unit_test(test_unknown_fields_pass),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_mutations_never_crash),
		cmocka_unit_test(test_varint_lookup),
		cmocka_unit_test(test_rules_name_real_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
