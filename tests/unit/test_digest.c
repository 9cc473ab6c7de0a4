/*
 * Unit tests of common/digest: known SHA-256 vectors, streaming in uneven
 * pieces equals one shot, file descriptors (files and pipes), misuse.
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

static void
test_vectors(void **state)
{
	char hex[DIGEST_HEX_LEN + 1];
	unsigned char raw[DIGEST_LEN];
	struct digest d;

	(void)state;
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
}

static void
test_streaming_equals_one_shot(void **state)
{
	size_t n = 300000;
	unsigned char *buf = malloc(n);
	char one[DIGEST_HEX_LEN + 1], many[DIGEST_HEX_LEN + 1];
	struct digest d;
	size_t off = 0, step = 1;

	(void)state;
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
test_misuse_fails_closed(void **state)
{
	char hex[DIGEST_HEX_LEN + 1];
	struct digest d;

	(void)state;
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
test_fd(void **state)
{
	char hex[DIGEST_HEX_LEN + 1];
	struct err e = ERR_INIT;
	uint64_t size = 7;
	int fd, p[2];

	(void)state;
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_streaming_equals_one_shot),
		cmocka_unit_test(test_misuse_fails_closed),
		cmocka_unit_test(test_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
