/*
 * Unit tests of common/digest: known SHA-256 vectors, streaming in uneven
 * pieces equals one shot, file descriptors (files and pipes), misuse; each
 * under every implementation this CPU has (digest_use_impl), and the SHA-NI
 * one against mbedTLS's over random lengths and random update() pieces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "tests/unit/tmpdir.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/* FIPS 180-2 example: 56 bytes, two blocks. */
#define TWO_BLOCKS "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define TWO_BLOCKS_SHA256 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
/* FIPS 180-2 / NIST CSRC examples: 112 bytes (two blocks, the padding alone in the second), and
 * one million times 'a'. */
#define LONG_TWO_BLOCKS "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
#define LONG_TWO_BLOCKS_SHA256 "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
#define MILLION_A_SHA256 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static const enum digest_impl impls[] = { DIGEST_IMPL_MBEDTLS, DIGEST_IMPL_SHANI };

#define NIMPLS (sizeof(impls) / sizeof(impls[0]))

/* Make IMPL the current one and return 1, or 0 (said, not hidden) when this CPU lacks it. */
static int
impl_try(enum digest_impl impl)
{
	if (!digest_impl_available(impl)) {
		print_message("digest: %s not on this CPU, not tested\n", digest_impl_name(impl));
		return 0;
	}
	assert_int_equal(digest_use_impl(impl), 0);
	return 1;
}

static int
impl_restore(void **state)
{
	(void)state;
	return digest_use_impl(DIGEST_IMPL_AUTO);
}

/* xorshift64*: a fixed seed, so a failure replays. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static void
vectors_one(void)
{
	char hex[DIGEST_HEX_LEN + 1];
	unsigned char raw[DIGEST_LEN];
	struct digest d;
	unsigned char *a;

	assert_int_equal(digest_buf("", 0, hex), 0);
	assert_string_equal(hex, EMPTY_SHA256);
	assert_int_equal(digest_buf(NULL, 0, hex), 0);
	assert_string_equal(hex, EMPTY_SHA256);
	assert_int_equal(digest_buf("abc", 3, hex), 0);
	assert_string_equal(hex, ABC_SHA256);
	assert_int_equal(digest_buf(TWO_BLOCKS, strlen(TWO_BLOCKS), hex), 0);
	assert_string_equal(hex, TWO_BLOCKS_SHA256);

	digest_init(&d);
	digest_update(&d, "abc", 3);
	assert_int_equal(digest_final_raw(&d, raw), 0);
	assert_int_equal(raw[0], 0xba);
	assert_int_equal(raw[31], 0xad);

	assert_int_equal(digest_buf(LONG_TWO_BLOCKS, strlen(LONG_TWO_BLOCKS), hex), 0);
	assert_string_equal(hex, LONG_TWO_BLOCKS_SHA256);

	a = malloc(1000000);
	assert_non_null(a);
	memset(a, 'a', 1000000);
	assert_int_equal(digest_buf(a, 1000000, hex), 0);
	assert_string_equal(hex, MILLION_A_SHA256);
	/* The same in 1000-byte updates (not a multiple of the block). */
	digest_init(&d);
	for (size_t off = 0; off < 1000000; off += 1000) {
		digest_update(&d, a + off, 1000);
	}
	assert_int_equal(digest_final(&d, hex), 0);
	assert_string_equal(hex, MILLION_A_SHA256);
	free(a);
}

static void
test_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < NIMPLS; i++) {
		if (impl_try(impls[i])) {
			vectors_one();
		}
	}
}

static void
streaming_one(void)
{
	size_t n = 300000;
	unsigned char *buf = malloc(n);
	char one[DIGEST_HEX_LEN + 1], many[DIGEST_HEX_LEN + 1];
	struct digest d;
	size_t off = 0, step = 1;

	assert_non_null(buf);
	for (size_t i = 0; i < n; i++) {
		buf[i] = (unsigned char)(i * 131u + (i >> 7));
	}
	assert_int_equal(digest_buf(buf, n, one), 0);
	digest_init(&d);
	while (off < n) {
		size_t k = step < n - off ? step : n - off;

		digest_update(&d, buf + off, k);
		digest_update(&d, buf + off, 0); /* empty updates change nothing */
		off += k;
		step = step * 3 + 1;
	}
	assert_int_equal(digest_final(&d, many), 0);
	assert_string_equal(one, many);
	free(buf);
}

static void
test_streaming_equals_one_shot(void **state)
{
	(void)state;
	for (size_t i = 0; i < NIMPLS; i++) {
		if (impl_try(impls[i])) {
			streaming_one();
		}
	}
}

static void
misuse_one(void)
{
	char hex[DIGEST_HEX_LEN + 1];
	struct digest d;

	memset(&d, 0, sizeof(d));
	/* Never initialised: no digest, and update is harmless. */
	digest_update(&d, "x", 1);
	memset(hex, 'z', sizeof(hex));
	assert_int_equal(digest_final(&d, hex), -1);
	assert_string_equal(hex, "");
	/* Finished: a second final fails, free stays safe. */
	digest_init(&d);
	assert_int_equal(digest_final(&d, hex), 0);
	assert_string_equal(hex, EMPTY_SHA256);
	assert_int_equal(digest_final(&d, hex), -1);
	digest_free(&d);
	digest_free(&d);
	/* Abandoned while running, then reused. */
	digest_init(&d);
	digest_update(&d, "a", 1);
	digest_free(&d);
	digest_init(&d);
	digest_update(&d, "abc", 3);
	assert_int_equal(digest_final(&d, hex), 0);
	assert_string_equal(hex, ABC_SHA256);
}

static void
test_misuse_fails_closed(void **state)
{
	(void)state;
	for (size_t i = 0; i < NIMPLS; i++) {
		if (impl_try(impls[i])) {
			misuse_one();
		}
	}
}

static void
fd_one(void)
{
	char hex[DIGEST_HEX_LEN + 1];
	struct err e = ERR_INIT;
	uint64_t size = 7;
	int fd, p[2];

	fd = tmpdir_anon_fd();
	assert_int_equal(digest_fd(fd, hex, &size, &e), 0);
	assert_string_equal(hex, EMPTY_SHA256);
	assert_int_equal(size, 0);
	assert_int_equal(write(fd, TWO_BLOCKS, strlen(TWO_BLOCKS)), (ssize_t)strlen(TWO_BLOCKS));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(digest_fd(fd, hex, &size, &e), 0);
	assert_string_equal(hex, TWO_BLOCKS_SHA256);
	assert_int_equal(size, strlen(TWO_BLOCKS));
	assert_int_equal(close(fd), 0);

	/* A pipe: read to its end, in whatever pieces arrive; SIZE may be NULL. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "ab", 2), 2);
	assert_int_equal(write(p[1], "c", 1), 1);
	assert_int_equal(close(p[1]), 0);
	assert_int_equal(digest_fd(p[0], hex, NULL, &e), 0);
	assert_string_equal(hex, ABC_SHA256);
	assert_int_equal(close(p[0]), 0);

	/* A read error is an ERR_IO with the errno kept. */
	fd = open("/", O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(digest_fd(fd, hex, &size, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_int_equal(e.sys_errno, EISDIR);
	assert_string_equal(hex, "");
	assert_int_equal(close(fd), 0);
}

static void
test_fd(void **state)
{
	(void)state;
	for (size_t i = 0; i < NIMPLS; i++) {
		if (impl_try(impls[i])) {
			fd_one();
		}
	}
}

/* The piece sizes around the block (64) and the padding's edge (55, 56). */
static const size_t edge_sizes[] = { 0, 1, 2, 31, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 4096 };

/* Hash BUF[0..LEN) with IMPL in pieces drawn from *SEED; HEX receives the digest. */
static void
digest_pieces(enum digest_impl impl, const unsigned char *buf, size_t len, uint64_t *seed,
    char hex[DIGEST_HEX_LEN + 1])
{
	struct digest d;
	size_t off = 0;

	assert_int_equal(digest_use_impl(impl), 0);
	digest_init(&d);
	while (off < len) {
		uint64_t r = rnd(seed);
		size_t k = r % 4 == 0 ? (size_t)(r >> 8) % 300 : edge_sizes[(r >> 8) % (sizeof(edge_sizes) / sizeof(edge_sizes[0]))];

		k = k < len - off ? k : len - off;
		digest_update(&d, buf + off, k);
		off += k;
	}
	assert_int_equal(digest_final(&d, hex), 0);
}

/*
 * SHA-NI against mbedTLS: every length 0..1100 (every padding case, one to
 * eighteen blocks) and random ones up to 256 KiB, random bytes, each hashed
 * in one shot by mbedTLS and in random pieces (edge sizes and random ones)
 * by both.
 */
static void
test_shani_equals_mbedtls(void **state)
{
	size_t max = 256 * 1024;
	unsigned char *buf = malloc(max);
	char ref[DIGEST_HEX_LEN + 1], hex[DIGEST_HEX_LEN + 1];
	uint64_t seed = 0x5eed5eed1234abcdULL;

	(void)state;
	assert_non_null(buf);
	if (!digest_impl_available(DIGEST_IMPL_SHANI)) {
		free(buf);
		print_message("digest: this CPU has no SHA-NI, nothing to compare\n");
		skip();
	}
	for (size_t i = 0; i < max; i++) {
		buf[i] = (unsigned char)rnd(&seed);
	}
	for (size_t round = 0; round < 1400; round++) {
		size_t len = round <= 1100 ? round : (size_t)(rnd(&seed) % max);
		/* Start anywhere: unaligned input. */
		size_t start = (size_t)(rnd(&seed) % 16);
		const unsigned char *p = buf + (len + start <= max ? start : 0);

		assert_int_equal(digest_use_impl(DIGEST_IMPL_MBEDTLS), 0);
		assert_int_equal(digest_buf(p, len, ref), 0);
		assert_int_equal(digest_use_impl(DIGEST_IMPL_SHANI), 0);
		assert_int_equal(digest_buf(p, len, hex), 0);
		if (strcmp(ref, hex) != 0) {
			fail_msg("length %zu, one shot: sha-ni %s, mbedtls %s", len, hex, ref);
		}
		digest_pieces(DIGEST_IMPL_SHANI, p, len, &seed, hex);
		if (strcmp(ref, hex) != 0) {
			fail_msg("length %zu, in pieces (round %zu): sha-ni %s, mbedtls %s", len, round, hex, ref);
		}
		digest_pieces(DIGEST_IMPL_MBEDTLS, p, len, &seed, hex);
		assert_string_equal(ref, hex);
	}
	free(buf);
}

/* The choice: AUTO is SHA-NI exactly when the CPU has it; a running context keeps its own. */
static void
test_impl_choice(void **state)
{
	char hex[DIGEST_HEX_LEN + 1];
	struct digest d;
	int has = digest_impl_available(DIGEST_IMPL_SHANI);

	(void)state;
	print_message("digest: this CPU %s SHA-NI\n", has ? "has" : "lacks");
	assert_true(digest_impl_available(DIGEST_IMPL_AUTO));
	assert_true(digest_impl_available(DIGEST_IMPL_MBEDTLS));
	assert_false(digest_impl_available((enum digest_impl)7));
	assert_int_equal(digest_use_impl((enum digest_impl)7), -1);
	assert_int_equal(digest_use_impl(DIGEST_IMPL_AUTO), 0);
	assert_int_equal(digest_impl_current(), has ? DIGEST_IMPL_SHANI : DIGEST_IMPL_MBEDTLS);
	assert_int_equal(digest_use_impl(DIGEST_IMPL_SHANI), has ? 0 : -1);
	assert_int_equal(digest_impl_current(), has ? DIGEST_IMPL_SHANI : DIGEST_IMPL_MBEDTLS);
	assert_int_equal(digest_use_impl(DIGEST_IMPL_MBEDTLS), 0);
	assert_int_equal(digest_impl_current(), DIGEST_IMPL_MBEDTLS);
	assert_string_equal(digest_impl_name(DIGEST_IMPL_AUTO), "auto");
	assert_string_equal(digest_impl_name(DIGEST_IMPL_MBEDTLS), "mbedtls");
	assert_string_equal(digest_impl_name(DIGEST_IMPL_SHANI), "sha-ni");

	/* Switching while contexts run: each finishes with the implementation it started with. */
	for (size_t i = 0; i < NIMPLS; i++) {
		if (!impl_try(impls[i])) {
			continue;
		}
		digest_init(&d);
		digest_update(&d, TWO_BLOCKS, 20);
		for (size_t j = 0; j < NIMPLS; j++) {
			struct digest d2;

			if (!impl_try(impls[j])) {
				continue;
			}
			digest_init(&d2);
			digest_update(&d2, "abc", 3);
			assert_int_equal(digest_final(&d2, hex), 0);
			assert_string_equal(hex, ABC_SHA256);
		}
		digest_update(&d, TWO_BLOCKS + 20, strlen(TWO_BLOCKS) - 20);
		assert_int_equal(digest_final(&d, hex), 0);
		assert_string_equal(hex, TWO_BLOCKS_SHA256);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_vectors, impl_restore),
		cmocka_unit_test_teardown(test_streaming_equals_one_shot, impl_restore),
		cmocka_unit_test_teardown(test_misuse_fails_closed, impl_restore),
		cmocka_unit_test_teardown(test_fd, impl_restore),
		cmocka_unit_test_teardown(test_shani_equals_mbedtls, impl_restore),
		cmocka_unit_test_teardown(test_impl_choice, impl_restore),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
