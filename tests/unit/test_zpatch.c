/*
 * Unit tests of common/zpatch: a patch made against a base gives the target
 * back and is small; hostile patches (another size, truncated, trailing
 * bytes, two frames, a window over the limit, garbage) are refused before
 * anything is decoded; limits hold on both sides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/zpatch.h"

#define N (256 * 1024)

/* Incompressible, reproducible bytes. */
static void
fill(unsigned char *p, size_t n, uint32_t seed)
{
	uint32_t x = seed;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

struct fx {
	unsigned char base[N];
	unsigned char target[N + 32];
	void *patch;
	size_t plen;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct err e = ERR_INIT;

	if (f == NULL) {
		return -1;
	}
	fill(f->base, N, 12345);
	/* The target: the base with a run changed in the middle and a marker appended. */
	memcpy(f->target, f->base, N);
	memset(f->target + N / 2, 0x5a, 40);
	memcpy(f->target + N, "tandem marker appended here....", 32);
	if (zpatch_make(f->base, N, f->target, N + 32, &f->patch, &f->plen, &e) != 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	free(f->patch);
	free(f);
	return 0;
}

static void
test_roundtrip(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	void *out = NULL;

	/* A few hundred bytes at most for 256 KiB of which 72 bytes changed. */
	assert_true(f->plen < 512);
	assert_true(f->plen * 2 < zpatch_whole_estimate(f->target, N + 32));
	assert_int_equal(zpatch_apply(f->base, N, f->patch, f->plen, N + 32, &out, &e), 0);
	assert_memory_equal(out, f->target, N + 32);
	free(out);
}

static void
expect_refused(const void *base, size_t blen, const void *patch, size_t plen, size_t size,
    enum err_kind kind)
{
	struct err e = ERR_INIT;
	void *out = (void *)1;

	assert_int_equal(zpatch_apply(base, blen, patch, plen, size, &out, &e), -1);
	assert_null(out);
	assert_int_equal(e.kind, kind);
}

static void
test_hostile(void **state)
{
	struct fx *f = *state;
	unsigned char *two = malloc(2 * f->plen + 8);
	unsigned char *bad = malloc(f->plen);
	struct err e = ERR_INIT;
	void *out = NULL;

	assert_non_null(two);
	assert_non_null(bad);
	/* Another size than the manifest's. */
	expect_refused(f->base, N, f->patch, f->plen, N + 31, ERR_FORMAT);
	expect_refused(f->base, N, f->patch, f->plen, N + 33, ERR_FORMAT);
	/* Truncated, empty, garbage. */
	expect_refused(f->base, N, f->patch, f->plen - 1, N + 32, ERR_FORMAT);
	expect_refused(f->base, N, f->patch, 0, N + 32, ERR_FORMAT);
	expect_refused(f->base, N, f->base, 4096, N + 32, ERR_FORMAT);
	/* Trailing bytes; two frames. */
	memcpy(two, f->patch, f->plen);
	memset(two + f->plen, 0, 8);
	expect_refused(f->base, N, two, f->plen + 8, N + 32, ERR_FORMAT);
	memcpy(two + f->plen, f->patch, f->plen);
	expect_refused(f->base, N, two, 2 * f->plen, N + 32, ERR_FORMAT);
	/* Flipped bits in the blocks: refused, or other bytes (the caller's digest catches them). */
	for (size_t i = 6; i < f->plen; i += 7) {
		memcpy(bad, f->patch, f->plen);
		bad[i] ^= 0x41;
		if (zpatch_apply(f->base, N, bad, f->plen, N + 32, &out, &e) == 0) {
			free(out);
			out = NULL;
		} else {
			assert_null(out);
		}
	}
	/* Over the limits. */
	expect_refused(f->base, ZPATCH_MAX_FILE + 1, f->patch, f->plen, N + 32, ERR_LIMIT);
	expect_refused(f->base, N, f->patch, f->plen, ZPATCH_MAX_FILE + 1, ERR_LIMIT);
	assert_int_equal(zpatch_make(f->base, ZPATCH_MAX_FILE + 1, f->target, N, &out, &f->plen,
	    &e), -1);
	assert_int_equal(e.kind, ERR_LIMIT);
	free(two);
	free(bad);
}

/*
 * A hand-made frame: a 4-byte content size, window descriptor WD, one raw
 * block of LEN bytes of 'x' (RFC 8878). Valid apart from its window.
 */
static size_t
frame(unsigned char *p, unsigned char wd, uint32_t len)
{
	uint32_t bh = 1u | (len << 3); /* last block, raw */
	size_t n = 0;

	p[n++] = 0x28;
	p[n++] = 0xb5;
	p[n++] = 0x2f;
	p[n++] = 0xfd;
	p[n++] = 0x80; /* 4-byte Frame_Content_Size, not single segment */
	p[n++] = wd;
	for (int i = 0; i < 4; i++) {
		p[n++] = (unsigned char)(len >> (8 * i));
	}
	p[n++] = (unsigned char)bh;
	p[n++] = (unsigned char)(bh >> 8);
	p[n++] = (unsigned char)(bh >> 16);
	memset(p + n, 'x', len);
	return n + len;
}

static void
test_window_limit(void **state)
{
	unsigned char p[64], base[16] = "0123456789abcdef";
	struct err e = ERR_INIT;
	void *out = NULL;
	size_t n;

	(void)state;
	/* 1 MiB window: decodes. */
	n = frame(p, (unsigned char)(10 << 3), 20);
	assert_int_equal(zpatch_apply(base, sizeof(base), p, n, 20, &out, &e), 0);
	assert_memory_equal(out, "xxxxxxxxxxxxxxxxxxxx", 20);
	free(out);
	/* 2^28 and 2^30: over ZPATCH_WINDOW_LOG_MAX, refused from the header. */
	n = frame(p, (unsigned char)(18 << 3), 20);
	expect_refused(base, sizeof(base), p, n, 20, ERR_FORMAT);
	n = frame(p, (unsigned char)(20 << 3), 20);
	expect_refused(base, sizeof(base), p, n, 20, ERR_FORMAT);
	/* 2^27 exactly is allowed; 2^27 + one eighth is not. */
	n = frame(p, (unsigned char)(17 << 3), 20);
	assert_int_equal(zpatch_apply(base, sizeof(base), p, n, 20, &out, &e), 0);
	free(out);
	n = frame(p, (unsigned char)((17 << 3) | 1), 20);
	expect_refused(base, sizeof(base), p, n, 20, ERR_FORMAT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
		cmocka_unit_test(test_window_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
