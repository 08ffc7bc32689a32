/*
 * driver.c - run a libFuzzer target without libFuzzer: every file named on
 * the command line (or in a directory named there) is fed to
 * LLVMFuzzerTestOneInput as it is, then DBTD_FUZZ_ITERATIONS (default
 * 20000) inputs made by mutating them (byte flips, inserts, deletes,
 * splices, truncations) with a fixed seed, so a failure replays.  Built as
 * a check program, it runs under the ASan/UBSan build like the unit tests;
 * built with clang -fsanitize=fuzzer instead, the same target file is a
 * real libFuzzer target (see tests/fuzz/README).  Compiled with
 * -DFUZZ_CORPUS='"dir"', it reads that directory when given no argument,
 * so the target runs as a plain entry of TESTS.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input {
	uint8_t *data;
	size_t size;
};

static struct input *inputs;
static size_t n_inputs;

/* Read one corpus file into the list. */
static int
add_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct input *grown;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL) {
		fprintf(stderr, "fuzz driver: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			uint8_t *nb = realloc(buf, cap ? cap * 2 : 4096);
			if (nb == NULL)
				break;
			buf = nb;
			cap = cap ? cap * 2 : 4096;
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	grown = realloc(inputs, (n_inputs + 1) * sizeof(*inputs));
	if (grown == NULL) {
		free(buf);
		return -1;
	}
	inputs = grown;
	inputs[n_inputs].data = buf;
	inputs[n_inputs].size = len;
	n_inputs++;
	return 0;
}

/* A file, or every regular file directly inside a directory. */
static int
add_path(const char *path)
{
	struct stat sb;
	struct dirent *de;
	DIR *d;
	char sub[4096];

	if (stat(path, &sb) < 0) {
		fprintf(stderr, "fuzz driver: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode))
		return add_file(path);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (stat(sub, &sb) == 0 && S_ISREG(sb.st_mode) && add_file(sub) < 0) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return 0;
}

/* xorshift64*: small, seeded, the same on every machine. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* Make a mutated copy of a corpus input in buf (capacity cap); its length. */
static size_t
mutate(uint8_t *buf, size_t cap)
{
	const struct input *in = &inputs[rng() % n_inputs];
	size_t len = in->size < cap ? in->size : cap;
	unsigned rounds = 1 + (unsigned)(rng() % 8);
	static const char interesting[] = "0123456789*/,-@ \t\n\"{}[]:\\\x00\xff";

	memcpy(buf, in->data, len);
	while (rounds--) {
		size_t pos = len ? (size_t)(rng() % len) : 0;
		switch (rng() % 6) {
		case 0: /* flip a byte */
			if (len)
				buf[pos] ^= (uint8_t)(1u << (rng() % 8));
			break;
		case 1: /* set a byte to something parsers care about */
			if (len)
				buf[pos] = (uint8_t)interesting[rng() % (sizeof(interesting) - 1)];
			break;
		case 2: /* insert a byte */
			if (len < cap) {
				memmove(buf + pos + 1, buf + pos, len - pos);
				buf[pos] = (uint8_t)interesting[rng() % (sizeof(interesting) - 1)];
				len++;
			}
			break;
		case 3: /* delete a run of bytes */
			if (len) {
				size_t n = 1 + (size_t)(rng() % 8);
				if (n > len - pos)
					n = len - pos;
				memmove(buf + pos, buf + pos + n, len - pos - n);
				len -= n;
			}
			break;
		case 4: /* truncate */
			len = pos;
			break;
		default: { /* splice in a piece of another input */
			const struct input *o = &inputs[rng() % n_inputs];
			if (o->size) {
				size_t from = (size_t)(rng() % o->size);
				size_t n = 1 + (size_t)(rng() % 32);
				if (n > o->size - from)
					n = o->size - from;
				if (n > cap - pos)
					n = cap - pos;
				memcpy(buf + pos, o->data + from, n);
				if (pos + n > len)
					len = pos + n;
			}
			break;
		}
		}
	}
	return len;
}

int
main(int argc, char **argv)
{
	const char *it = getenv("DBTD_FUZZ_ITERATIONS");
	unsigned long iterations = it ? strtoul(it, NULL, 10) : 20000;
	size_t cap = 1;
	uint8_t *buf, *copy;

	for (int i = 1; i < argc; i++)
		if (add_path(argv[i]) < 0)
			return 1;
#ifdef FUZZ_CORPUS
	if (argc == 1 && add_path(FUZZ_CORPUS) < 0)
		return 1;
#endif
	if (n_inputs == 0) {
		fprintf(stderr, "usage: %s CORPUS_FILE_OR_DIR...\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < n_inputs; i++) {
		/* An exact-size copy, so ASan sees reads past the end. */
		copy = malloc(inputs[i].size ? inputs[i].size : 1);
		if (copy == NULL)
			return 1;
		memcpy(copy, inputs[i].data, inputs[i].size);
		LLVMFuzzerTestOneInput(copy, inputs[i].size);
		free(copy);
		if (inputs[i].size * 2 + 64 > cap)
			cap = inputs[i].size * 2 + 64;
	}
	if ((buf = malloc(cap)) == NULL)
		return 1;
	for (unsigned long n = 0; n < iterations; n++) {
		size_t len = mutate(buf, cap);
		copy = malloc(len ? len : 1);
		if (copy == NULL)
			break;
		memcpy(copy, buf, len);
		LLVMFuzzerTestOneInput(copy, len);
		free(copy);
	}
	free(buf);
	for (size_t i = 0; i < n_inputs; i++)
		free(inputs[i].data);
	free(inputs);
	printf("fuzz driver: %zu corpus inputs, %lu mutations, no crash\n", n_inputs, iterations);
	return 0;
}
