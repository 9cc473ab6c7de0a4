/*
 * Unit tests for pki/seal: round trips at chunk boundaries, and every way a
 * sealed stream can be wrong (passphrase, flipped byte, cut off at any
 * point, chunks dropped or appended, hostile header) ends in an error and
 * never in unauthenticated bytes.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/fs.h"
#include "pki/seal.h"
#include "tests/unit/tmpdir.h"

#define PASS "correct horse"
#define ITER 10000

static const char *g_dir;
static char g_path[PATH_MAX];

static int
setup(void **state)
{
	(void)state;
	g_dir = tmpdir_make("seal");
	if (g_dir == NULL) {
		return -1;
	}
	snprintf(g_path, sizeof(g_path), "%s/s", g_dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return tmpdir_remove();
}

/* Seal LEN pseudo-random bytes (written in pieces of STEP) into g_path. */
static unsigned char *
seal_file(size_t len, size_t step)
{
	unsigned char *data = malloc(len + 1);
	struct seal *s = NULL;
	struct err e = ERR_INIT;
	int fd;

	assert_non_null(data);
	for (size_t i = 0; i < len; i++) {
		data[i] = (unsigned char)(i * 31 + (i >> 8));
	}
	fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(seal_write_open(fd, PASS, strlen(PASS), ITER, &s, &e), 0);
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		assert_int_equal(seal_write(s, data + off, n, &e), 0);
	}
	assert_int_equal(seal_write_finish(s, &e), 0);
	assert_int_equal(seal_write_finish(s, &e), -1);
	seal_free(s);
	assert_int_equal(close(fd), 0);
	return data;
}

/* Read g_path back whole: 0 and the bytes, or -1 with E. */
static int
unseal_file(const char *pass, unsigned char **out, size_t *outlen, struct err *e)
{
	struct seal *s = NULL;
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd = open(g_path, O_RDONLY | O_CLOEXEC);
	int rc = -1;

	assert_true(fd >= 0);
	if (seal_read_open(fd, pass, pass != NULL ? strlen(pass) : 0, &s, e) != 0) {
		goto out;
	}
	for (;;) {
		ssize_t n;
		if (len + 1000 > cap) {
			cap = cap * 2 + 4096;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		n = seal_read(s, buf + len, 1000, e);
		if (n < 0) {
			goto out;
		}
		if (n == 0) {
			break;
		}
		len += (size_t)n;
	}
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	seal_free(s);
	close(fd);
	return rc;
}

static void
test_round_trips(void **state)
{
	static const size_t sizes[] = { 0, 1, SEAL_CHUNK - 1, SEAL_CHUNK, SEAL_CHUNK + 1,
		3 * SEAL_CHUNK, 200000 };
	static const size_t steps[] = { 1, 7, 4096, SEAL_CHUNK, 3 * SEAL_CHUNK };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t step = steps[i % (sizeof(steps) / sizeof(steps[0]))];
		unsigned char *data;
		unsigned char *back = NULL;
		size_t blen = 0;
		struct err e = ERR_INIT;

		if (sizes[i] > 100000 && step == 1) {
			step = 977;
		}
		data = seal_file(sizes[i], step);
		assert_int_equal(unseal_file(PASS, &back, &blen, &e), 0);
		assert_int_equal(blen, sizes[i]);
		if (sizes[i] > 0) {
			assert_memory_equal(back, data, sizes[i]);
		}
		free(back);
		free(data);
	}
}

static void
test_wrong_passphrase_and_no_passphrase(void **state)
{
	unsigned char *data = seal_file(5000, 5000);
	unsigned char *back = NULL;
	size_t blen = 0;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(unseal_file("correct horsf", &back, &blen, &e), -1);
	assert_int_equal(e.kind, ERR_SIGNATURE);
	assert_non_null(strstr(err_msg(&e), "wrong passphrase"));
	err_clear(&e);
	assert_int_equal(unseal_file(NULL, &back, &blen, &e), -1);
	assert_int_equal(e.kind, ERR_USAGE);
	free(data);
}

/* The header's length (seal.h's format): magic, iterations, salt, nonce prefix. */
#define HDR_LEN (SEAL_MAGIC_LEN + 4 + 16 + 8)

/* A reader that read its header, HDR, from its stream. */
struct opened {
	struct seal *s;
	int fd;
	char hdr[HDR_LEN];
};

/* Open g_path's stream, whose bytes begin with HDR: read its header and derive its key, once. */
static void
opened_init(struct opened *o, const char *hdr)
{
	struct err e = ERR_INIT;

	o->s = NULL;
	memcpy(o->hdr, hdr, HDR_LEN);
	o->fd = open(g_path, O_RDONLY | O_CLOEXEC);
	assert_true(o->fd >= 0);
	assert_int_equal(seal_read_open(o->fd, PASS, strlen(PASS), &o->s, &e), 0);
}

static void
opened_free(struct opened *o)
{
	seal_free(o->s);
	assert_int_equal(close(o->fd), 0);
}

/*
 * Read the rest of the stream whose first HDR_LEN bytes are O's header and
 * whose whole bytes are BYTES (LEN, at least HDR_LEN) with O's reader, in a
 * child: the reader read exactly the header from its fd (the fd is the
 * caller's), so its fd now reads BYTES after the header, as if the reader
 * had opened BYTES itself, and its derived key is the one BYTES' header
 * asks for. One key derivation serves every variant of the body. Returns
 * 100 when exactly WANT (WANTLEN) came back and the end was authenticated,
 * 101 when other bytes came back, else the error's kind.
 */
static int
read_body(const struct opened *o, const char *bytes, size_t len, const unsigned char *want,
    size_t wantlen)
{
	int status = 0;
	pid_t pid;

	assert_true(len >= HDR_LEN);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct err e = ERR_INIT;
		unsigned char *buf = malloc(wantlen + 1);
		size_t got = 0;
		int fd = memfd_create("seal-body", MFD_CLOEXEC);

		if (buf == NULL || fd < 0 ||
		    write(fd, bytes + HDR_LEN, len - HDR_LEN) != (ssize_t)(len - HDR_LEN) ||
		    lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, o->fd) != o->fd) {
			_exit(102);
		}
		for (;;) {
			ssize_t n = seal_read(o->s, buf + got, wantlen + 1 - got, &e);
			if (n < 0) {
				_exit(err_failed(&e) && e.kind < 100 ? (int)e.kind : 103);
			}
			if (n == 0) {
				break;
			}
			got += (size_t)n;
			if (got > wantlen) {
				_exit(101);
			}
		}
		_exit(got == wantlen && (wantlen == 0 || memcmp(buf, want, wantlen) == 0) ? 100 : 101);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/*
 * The stream BYTES (LEN) does not give back the data: one whose header is
 * O's is read with O's reader (read_body), any other is opened on its own
 * (its salt or work factor is another key).
 */
static void
assert_refused(const struct opened *o, const char *bytes, size_t len, const unsigned char *want,
    size_t wantlen)
{
	if (len >= HDR_LEN && memcmp(bytes, o->hdr, HDR_LEN) == 0) {
		int r = read_body(o, bytes, len, want, wantlen);

		assert_true(r > ERR_OK && r < 100);
	} else {
		unsigned char *back = NULL;
		size_t blen = 0;
		struct err e = ERR_INIT;

		assert_int_equal(fs_write_atomic(g_path, bytes, len, 0600), 0);
		assert_int_equal(unseal_file(PASS, &back, &blen, &e), -1);
		assert_true(err_failed(&e));
	}
}

static void
test_every_flip_and_cut_fails(void **state)
{
	const size_t dlen = 2 * SEAL_CHUNK + 100;
	unsigned char *data = seal_file(dlen, 4096);
	char *orig = NULL;
	size_t olen = 0;
	struct opened o;

	(void)state;
	assert_int_equal(fs_read_file(g_path, 1 << 20, &orig, &olen), 0);
	assert_true(olen >= HDR_LEN);
	opened_init(&o, orig);
	/* The unchanged stream read this way is the whole of the data. */
	assert_int_equal(read_body(&o, orig, olen, data, dlen), 100);
	/*
	 * Flipped bytes anywhere (header, length words, ciphertext, tags): a
	 * flip in the header is opened on its own (its salt or work factor
	 * is another key), one after it is read with the header's reader. The
	 * low bit: flipped in the header's iteration count (10000 =
	 * 0x00002710) it asks for 16787216 (refused), 75536, 9744 (refused)
	 * or 10001 iterations, so every flip stays cheap to check (0x40 in its
	 * second byte asks for 4204304: the work of 420 opens, to test the
	 * same tag).
	 */
	for (size_t i = 0; i < olen; i += (i < 64 ? 1 : 4093)) {
		char *copy = malloc(olen);

		assert_non_null(copy);
		memcpy(copy, orig, olen);
		copy[i] ^= 0x01;
		assert_refused(&o, copy, olen, data, dlen);
		free(copy);
	}
	/* Cut off anywhere, including exactly at chunk boundaries. */
	for (size_t cut = 0; cut < olen; cut += (cut < 64 ? 1 : 1999)) {
		assert_refused(&o, orig, cut, data, dlen);
	}
	{
		/* The first chunk alone (a clean cut at a boundary) is not the whole stream. */
		size_t first = HDR_LEN + 4 + SEAL_CHUNK + 16;
		char *longer = malloc(olen + 1);

		assert_int_equal(read_body(&o, orig, first, data, dlen), ERR_SIGNATURE);
		/* Anything after the last chunk. */
		assert_non_null(longer);
		memcpy(longer, orig, olen);
		longer[olen] = 'x';
		assert_refused(&o, longer, olen + 1, data, dlen);
		free(longer);
	}
	opened_free(&o);
	free(orig);
	free(data);
}

static void
test_hostile_headers(void **state)
{
	unsigned char hdr[64];
	unsigned char *back = NULL;
	size_t blen = 0;
	struct err e = ERR_INIT;
	struct seal *s = NULL;
	int fd;

	(void)state;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, SEAL_MAGIC, SEAL_MAGIC_LEN);
	hdr[12] = 0xff; /* 4 billion iterations */
	assert_int_equal(fs_write_atomic(g_path, hdr, sizeof(hdr), 0600), 0);
	assert_int_equal(unseal_file(PASS, &back, &blen, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	err_clear(&e);
	assert_int_equal(fs_write_atomic(g_path, "plain text, not sealed", 22, 0600), 0);
	assert_int_equal(unseal_file(PASS, &back, &blen, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_false(seal_is_sealed("TANDEM", 6));
	/* Short passphrases and absurd work factors are refused when sealing. */
	fd = open(g_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	err_clear(&e);
	assert_int_equal(seal_write_open(fd, "short", 5, ITER, &s, &e), -1);
	assert_int_equal(e.kind, ERR_USAGE);
	assert_int_equal(seal_write_open(fd, PASS, strlen(PASS), 5, &s, &e), -1);
	close(fd);
	seal_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_passphrase_and_no_passphrase, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_every_flip_and_cut_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_headers, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
