/* test_mask.c - secret masking of step log lines (daemon/mask.c). */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mask.h"

#define TIME_LIMIT_S 10 /* a masking call that takes longer loops */

#define N(a) (sizeof(a) / sizeof((a)[0]))
/* A string literal with its length (it may hold NUL and any other byte). */
#define LIT(s) (s), (sizeof(s) - 1)

/* SIGALRM: masking did not end; fail the program instead of hanging. */
static void
on_alarm(int sig)
{
	static const char msg[] = "test_mask: mask_apply did not return (endless loop)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(1);
}

/* Mask text[0..len) with secrets and compare with want[0..wantlen), bytewise. */
static void
check(const char *text, size_t len, const char *const *secrets, size_t n, const char *want,
      size_t wantlen)
{
	char *out = NULL;
	size_t outlen = (size_t)-1;

	alarm(TIME_LIMIT_S);
	assert_int_equal(mask_apply(text, len, secrets, n, &out, &outlen), 0);
	alarm(0);
	assert_non_null(out);
	assert_int_equal(outlen, wantlen);
	assert_memory_equal(out, want, wantlen);
	assert_int_equal(out[outlen], '\0');
	free(out);
}

/* Secrets of 1, 2 and 3 bytes are never masked (and nothing overflows). */
static void
test_short_secrets(void **state)
{
	const char *one[] = { "a" }, *two[] = { "an" }, *three[] = { "ana" };
	const char *all[] = { "a", "an", "ana", "b", "na" };

	(void)state;
	check(LIT("banana"), two, N(two), LIT("banana"));
	check(LIT("banana"), one, N(one), LIT("banana"));
	check(LIT("banana"), three, N(three), LIT("banana"));
	check(LIT("banana"), all, N(all), LIT("banana"));
	check(LIT("an"), two, N(two), LIT("an"));
	assert_int_equal(mask_usable("a"), 0);
	assert_int_equal(mask_usable("ab"), 0);
	assert_int_equal(mask_usable("abc"), 0);
	assert_int_equal(mask_usable("abcd"), 1);
}

/* Empty and NULL secrets are ignored. */
static void
test_empty_secret(void **state)
{
	const char *s[] = { "", NULL, "abcd" };

	(void)state;
	check(LIT("xabcdx"), s, N(s), LIT("x***x"));
	check(LIT("xyz"), s, 2, LIT("xyz"));
	assert_int_equal(mask_usable(""), 0);
	assert_int_equal(mask_usable(NULL), 0);
}

/* A secret of exactly MASK_MIN_LEN bytes is masked. */
static void
test_four_bytes(void **state)
{
	const char *s[] = { "abcd" };

	(void)state;
	check(LIT("xabcdy"), s, N(s), LIT("x***y"));
	check(LIT("abcd"), s, N(s), LIT("***"));
	check(LIT("abc"), s, N(s), LIT("abc"));
	check(LIT("abcabdabce"), s, N(s), LIT("abcabdabce"));
}

/* A secret equal to the mask text: too short, left alone, and it ends. */
static void
test_secret_is_mask(void **state)
{
	const char *s[] = { MASK_TEXT };

	(void)state;
	check(LIT("a***b"), s, N(s), LIT("a***b"));
	check(LIT("***"), s, N(s), LIT("***"));
	check(LIT("plain"), s, N(s), LIT("plain"));
}

/* Secrets that contain the mask text are masked once, never re-searched. */
static void
test_secret_contains_mask(void **state)
{
	const char *stars[] = { "****" }, *mid[] = { "p***w" }, *both[] = { "***x", "x***" };

	(void)state;
	check(LIT("x****y"), stars, N(stars), LIT("x***y"));
	check(LIT("********"), stars, N(stars), LIT("***"));   /* all overlap */
	check(LIT("a****b****c"), stars, N(stars), LIT("a***b***c"));
	check(LIT("user p***w p***w"), mid, N(mid), LIT("user *** ***"));
	check(LIT("***x***"), both, N(both), LIT("***"));
	check(LIT("***x"), both, N(both), LIT("***"));
}

/* Overlapping occurrences of two secrets become one mask. */
static void
test_overlapping_secrets(void **state)
{
	const char *ab[] = { "abcd", "bcde" }, *ba[] = { "bcde", "abcd" };
	const char *prefix[] = { "abcd", "abcdefgh" }, *inner[] = { "abcdefgh", "cdef" };
	const char *chain[] = { "abcd", "cdef", "efgh" };

	(void)state;
	check(LIT("abcdef"), ab, N(ab), LIT("***f"));
	check(LIT("abcdef"), ba, N(ba), LIT("***f"));
	check(LIT("abcdefghij"), prefix, N(prefix), LIT("***ij"));
	check(LIT("abcdxabcdefgh"), prefix, N(prefix), LIT("***x***"));
	check(LIT("xabcdefghx"), inner, N(inner), LIT("x***x"));
	check(LIT("xcdefx"), inner, N(inner), LIT("x***x"));
	check(LIT("abcdefgh!"), chain, N(chain), LIT("***!"));
}

/* Repeated occurrences: each is masked; overlapping ones of one secret merge. */
static void
test_repeated(void **state)
{
	const char *s[] = { "abcd" }, *a[] = { "aaaa" }, *ab[] = { "abab" };
	const char *dup[] = { "abcd", "abcd" };

	(void)state;
	check(LIT("abcd abcd abcd"), s, N(s), LIT("*** *** ***"));
	check(LIT("abcdabcd"), s, N(s), LIT("******"));
	check(LIT("aaaaaa"), a, N(a), LIT("***"));
	check(LIT("aaaaaaaa aaa"), a, N(a), LIT("*** aaa"));
	check(LIT("ababab"), ab, N(ab), LIT("***"));
	check(LIT("x abcd y abcd"), dup, N(dup), LIT("x *** y ***"));
}

/* Secrets at the start and at the end of a line. */
static void
test_start_end(void **state)
{
	const char *s[] = { "hunter22" };

	(void)state;
	check(LIT("hunter22 is the password"), s, N(s), LIT("*** is the password"));
	check(LIT("the password is hunter22"), s, N(s), LIT("the password is ***"));
	check(LIT("hunter22hunter22"), s, N(s), LIT("******"));
	check(LIT("hunter2"), s, N(s), LIT("hunter2"));
	check(LIT("unter22"), s, N(s), LIT("unter22"));
}

/* Several different secrets in one line. */
static void
test_several(void **state)
{
	const char *s[] = { "hunter22", "tok-1234", "ghp_0123456789" };

	(void)state;
	check(LIT("pw=hunter22 token=tok-1234 gh=ghp_0123456789 again hunter22"), s, N(s),
	      LIT("pw=*** token=*** gh=*** again ***"));
	check(LIT("no secret here"), s, N(s), LIT("no secret here"));
	check(LIT("no secret here"), s, 0, LIT("no secret here"));
}

/* A long line with many occurrences (linear time, exact output). */
static void
test_long_line(void **state)
{
	const char *s[] = { "hunter22" }, *a[] = { "aaaa" };
	const size_t reps = 200000;
	size_t len = reps * 10, wantlen = reps * 5;
	char *text = malloc(len), *want = malloc(wantlen);

	(void)state;
	assert_non_null(text);
	assert_non_null(want);
	for (size_t i = 0; i < reps; i++) {
		memcpy(text + i * 10, "x:hunter22", 10);
		memcpy(want + i * 5, "x:***", 5);
	}
	check(text, len, s, N(s), want, wantlen);
	memset(text, 'a', len); /* one run of overlapping occurrences */
	check(text, len, a, N(a), "***", 3);
	text[len - 1] = 'b';
	text[len / 2] = 'b';
	check(text, len, a, N(a), "***b***b", 8);
	/* a secret at every offset around 4 KiB and 8 KiB, the end included */
	memset(text, 'x', 8200);
	for (size_t r = 0; r < 2; r++) {
		static const size_t first[] = { 4080, 8180 }, last[] = { 4110, 8200 - 8 };

		for (size_t off = first[r]; off <= last[r]; off++) {
			memcpy(text + off, "hunter22", 8);
			memset(want, 'x', 8200);
			memcpy(want + off, "***", 3);
			check(text, 8200, s, N(s), want, 8200 - 5);
			memset(text + off, 'x', 8);
		}
	}
	free(text);
	free(want);
}

/* Empty input, and no secrets at all. */
static void
test_empty_input(void **state)
{
	const char *s[] = { "abcd" };

	(void)state;
	check(LIT(""), s, N(s), LIT(""));
	check(NULL, 0, s, N(s), LIT(""));
	check(LIT(""), NULL, 0, LIT(""));
}

/* Lines and secrets of arbitrary bytes (not text, no NUL in secrets). */
static void
test_binary(void **state)
{
	const char *s[] = { "\xde\xad\xbe\xef" }, *hi[] = { "\x80\xff\x01\x7f" };

	(void)state;
	check(LIT("\x01\xde\xad\xbe\xef\xff\n\t\xde\xad\xbe"), s, N(s),
	      LIT("\x01***\xff\n\t\xde\xad\xbe"));
	check(LIT("\xff\xfe\x80\xff\x01\x7f\x80\xff\x01\x7f\x1b[0m"), hi, N(hi),
	      LIT("\xff\xfe******\x1b[0m"));
	check(LIT("a\0b\xde\xad\xbe\xef\0"), s, N(s), LIT("a\0b***\0")); /* NUL in the line */
}

/* Bad arguments are refused, not crashed on. */
static void
test_einval(void **state)
{
	const char *s[] = { "abcd" };
	char *out = (char *)"x";
	size_t n;

	(void)state;
	assert_int_equal(mask_apply(NULL, 3, s, 1, &out, &n), -EINVAL);
	assert_null(out);
	assert_int_equal(mask_apply("abc", 3, NULL, 1, &out, &n), -EINVAL);
	assert_int_equal(mask_apply("abc", 3, s, 1, NULL, &n), -EINVAL);
	assert_int_equal(mask_apply("abc", 3, s, 1, &out, NULL), -EINVAL);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_short_secrets),
		cmocka_unit_test(test_empty_secret),
		cmocka_unit_test(test_four_bytes),
		cmocka_unit_test(test_secret_is_mask),
		cmocka_unit_test(test_secret_contains_mask),
		cmocka_unit_test(test_overlapping_secrets),
		cmocka_unit_test(test_repeated),
		cmocka_unit_test(test_start_end),
		cmocka_unit_test(test_several),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_einval),
	};

	signal(SIGALRM, on_alarm);
	if (argc > 1)
		cmocka_set_test_filter(argv[1]); /* e.g. test_mask test_secret_is_mask */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
