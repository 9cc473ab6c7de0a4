/*
 * updater/extract: tarballs (good and malicious) are built with libarchive's
 * writer inside the test, fed in uneven chunks, and the staging directory is
 * inspected afterwards.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/log.h"
#include "updater/extract.h"
#include "tests/unit/tmpdir.h"

struct ent {
	const char *path;
	unsigned type; /* AE_IF* */
	unsigned mode;
	const char *data;   /* regular files */
	const char *link;   /* symlink target */
	const char *hard;   /* hardlink target (makes a hardlink entry) */
	int64_t zeros;      /* > 0: a regular file of this many zero bytes */
};

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static la_ssize_t
buf_write(struct archive *a, void *arg, const void *d, size_t n)
{
	struct buf *b = arg;

	(void)a;
	if (b->len + n > b->cap) {
		size_t nc = (b->len + n) * 2;
		unsigned char *np = realloc(b->p, nc);

		assert_non_null(np);
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return (la_ssize_t)n;
}

/* Build a tar (gzip'd when GZ) of the N entries into B. */
static void
make_tar(struct buf *b, const struct ent *ents, size_t n, int gz)
{
	struct archive *a = archive_write_new();
	static char zeros[65536];

	memset(b, 0, sizeof(*b));
	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	if (gz) {
		assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	}
	assert_int_equal(archive_write_set_bytes_in_last_block(a, 1), ARCHIVE_OK);
	assert_int_equal(archive_write_open(a, b, NULL, buf_write, NULL), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		int64_t size = 0;

		archive_entry_set_pathname(e, ents[i].path);
		archive_entry_set_filetype(e, ents[i].type);
		archive_entry_set_perm(e, ents[i].mode ? ents[i].mode : 0644);
		archive_entry_set_uid(e, 12345);
		archive_entry_set_gid(e, 12345);
		if (ents[i].type == AE_IFREG) {
			size = ents[i].zeros > 0 ? ents[i].zeros
			    : ents[i].data != NULL ? (int64_t)strlen(ents[i].data) : 0;
		}
		if (ents[i].hard != NULL) {
			archive_entry_set_hardlink(e, ents[i].hard);
			size = 0;
		}
		if (ents[i].type == AE_IFCHR) {
			archive_entry_set_rdev(e, 0x0103);
		}
		if (ents[i].link != NULL) {
			archive_entry_set_symlink(e, ents[i].link);
		}
		archive_entry_set_size(e, size);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (ents[i].zeros > 0) {
			int64_t left = ents[i].zeros;

			while (left > 0) {
				size_t c = left > (int64_t)sizeof(zeros) ? sizeof(zeros) : (size_t)left;

				assert_true(archive_write_data(a, zeros, c) == (la_ssize_t)c);
				left -= (int64_t)c;
			}
		} else if (size > 0) {
			assert_true(archive_write_data(a, ents[i].data, (size_t)size) == (la_ssize_t)size);
		}
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static char oldcwd[PATH_MAX];

static int
setup(void **state)
{
	(void)state;
	if (tmpdir_make("extract") == NULL || getcwd(oldcwd, sizeof(oldcwd)) == NULL || chdir(tmpdir_path()) != 0) {
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (chdir(oldcwd) != 0 || tmpdir_remove() != 0) {
		return -1;
	}
	return 0;
}

/* Feed LEN bytes of DATA in uneven chunks; returns the status and message. */
static enum err_kind
run_extract(const void *data, size_t len, const struct extract_limits *lim, char *sha,
    char *err, size_t errlen, int *feed_failed_at_end)
{
	struct extract *x = NULL;
	struct err e = ERR_INIT;
	size_t off = 0, step = 1;
	int failed = 0;
	char sha_buf[65];

	assert_int_equal(extract_begin("stage", lim, &x, &e), 0);
	while (off < len) {
		size_t n = step < len - off ? step : len - off;

		if (extract_feed(x, (const unsigned char *)data + off, n) != 0) {
			failed = 1;
			break;
		}
		off += n;
		step = step * 3 + 7;
		if (step > 100000) {
			step = 13;
		}
	}
	if (feed_failed_at_end != NULL) {
		*feed_failed_at_end = failed;
	}
	if (extract_finish(x, sha != NULL ? sha : sha_buf, NULL, NULL, &e) == 0) {
		return ERR_OK;
	}
	(void)snprintf(err, errlen, "%s", err_msg(&e));
	return e.kind;
}

static enum err_kind
run_ents(const struct ent *ents, size_t n, const struct extract_limits *lim, char *err,
    size_t errlen)
{
	struct buf b;
	enum err_kind st;

	make_tar(&b, ents, n, 1);
	st = run_extract(b.p, b.len, lim, NULL, err, errlen, NULL);
	free(b.p);
	return st;
}

static void
test_good(void **state)
{
	const struct ent ents[] = {
		{ "./", AE_IFDIR, 0755, NULL, NULL, NULL, 0 },
		{ "./manifest.json", AE_IFREG, 0644, "{\"name\":\"x\"}", NULL, NULL, 0 },
		{ "bin/", AE_IFDIR, 0777 | 02000, NULL, NULL, NULL, 0 },
		{ "bin/tandem-agent", AE_IFREG, 04755, "#!/bin/sh\necho hi\n", NULL, NULL, 0 },
		{ "bin/sticky", AE_IFREG, 01777, "x", NULL, NULL, 0 },
		{ "lib/a/b/libx.so.1", AE_IFREG, 0644, "elf", NULL, NULL, 0 },
		{ "lib/a/b/libx.so", AE_IFLNK, 0777, NULL, "libx.so.1", NULL, 0 },
		{ "lib/a/up", AE_IFLNK, 0777, NULL, "../../bin/tandem-agent", NULL, 0 },
		{ "dangling", AE_IFLNK, 0777, NULL, "not/there", NULL, 0 },
	};
	struct buf b;
	char sha[65], err[512], want[65], link[64];
	struct stat st;
	ssize_t n;

	(void)state;
	make_tar(&b, ents, ARRAY_LEN(ents), 1);
	assert_int_equal(digest_buf(b.p, b.len, want), 0);
	assert_int_equal(run_extract(b.p, b.len, NULL, sha, err, sizeof(err), NULL), ERR_OK);
	assert_string_equal(sha, want);
	free(b.p);

	assert_int_equal(lstat("stage/manifest.json", &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_uid, getuid());
	assert_int_equal(lstat("stage/bin/tandem-agent", &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755); /* setuid stripped */
	assert_int_equal(st.st_size, 18);
	assert_int_equal(lstat("stage/bin/sticky", &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755); /* sticky, o+w stripped */
	assert_int_equal(lstat("stage/bin", &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755); /* setgid, g+w, o+w stripped */
	n = readlink("stage/lib/a/b/libx.so", link, sizeof(link) - 1);
	assert_int_equal(n, 9);
	assert_true(lstat("stage/lib/a/up", &st) == 0 && S_ISLNK(st.st_mode));
	assert_true(lstat("stage/dangling", &st) == 0 && S_ISLNK(st.st_mode));
}

static void
expect(const struct ent *ents, size_t n, enum err_kind want, const char *needle)
{
	char err[512];
	enum err_kind st = run_ents(ents, n, NULL, err, sizeof(err));

	if (st != want || strstr(err, needle) == NULL) {
		fail_msg("want %s containing '%s', got %s: %s", err_kind_name(want), needle,
		    err_kind_name(st), st == ERR_OK ? "" : err);
	}
}

/* Nothing may have been created outside the staging directory. */
static void
assert_nothing_outside(void)
{
	struct stat st;

	assert_int_equal(lstat("evil", &st), -1);
	assert_int_equal(lstat("/tmp/tandem-extract-evil", &st), -1);
}

static void
test_traversal(void **state)
{
	const struct ent ents[] = {
		{ "ok", AE_IFREG, 0644, "x", NULL, NULL, 0 },
		{ "a/../../evil", AE_IFREG, 0644, "x", NULL, NULL, 0 },
	};
	const struct ent ents2[] = { { "../evil", AE_IFREG, 0644, "x", NULL, NULL, 0 } };

	(void)state;
	expect(ents, ARRAY_LEN(ents), ERR_UNSAFE, "'a/../../evil': '..' in path");
	assert_int_equal(fs_rmtree("stage"), 0);
	expect(ents2, ARRAY_LEN(ents2), ERR_UNSAFE, "'../evil'");
	assert_nothing_outside();
}

static void
test_absolute(void **state)
{
	const struct ent ents[] = {
		{ "/tmp/tandem-extract-evil", AE_IFREG, 0644, "x", NULL, NULL, 0 },
	};

	(void)state;
	expect(ents, ARRAY_LEN(ents), ERR_UNSAFE, "absolute path");
	assert_nothing_outside();
}

static void
test_symlink_escape(void **state)
{
	const struct ent up[] = { { "a/l", AE_IFLNK, 0777, NULL, "../../evil", NULL, 0 } };
	const struct ent abs[] = { { "l", AE_IFLNK, 0777, NULL, "/etc/passwd", NULL, 0 } };
	/* d -> "." is harmless alone, but "d/.." would then be the parent. */
	const struct ent mid[] = {
		{ "d", AE_IFLNK, 0777, NULL, ".", NULL, 0 },
		{ "l", AE_IFLNK, 0777, NULL, "d/..", NULL, 0 },
	};
	/* Writing through a symlink that points inside is still refused. */
	const struct ent through[] = {
		{ "sub/", AE_IFDIR, 0755, NULL, NULL, NULL, 0 },
		{ "l", AE_IFLNK, 0777, NULL, "sub", NULL, 0 },
		{ "l/evil", AE_IFREG, 0644, "x", NULL, NULL, 0 },
	};
	struct stat st;

	(void)state;
	expect(up, ARRAY_LEN(up), ERR_UNSAFE, "leaves the release");
	assert_int_equal(fs_rmtree("stage"), 0);
	expect(abs, ARRAY_LEN(abs), ERR_UNSAFE, "symlink to absolute path");
	assert_int_equal(fs_rmtree("stage"), 0);
	expect(mid, ARRAY_LEN(mid), ERR_UNSAFE, "'l': symlink target 'd/..'");
	assert_int_equal(fs_rmtree("stage"), 0);
	expect(through, ARRAY_LEN(through), ERR_UNSAFE, "'l/evil'");
	assert_int_equal(lstat("stage/sub/evil", &st), -1);
	assert_nothing_outside();
}

static void
test_hardlink(void **state)
{
	const struct ent ents[] = {
		{ "a", AE_IFREG, 0644, "x", NULL, NULL, 0 },
		{ "b", AE_IFREG, 0644, NULL, NULL, "/etc/passwd", 0 },
	};
	const struct ent inside[] = {
		{ "a", AE_IFREG, 0644, "x", NULL, NULL, 0 },
		{ "b", AE_IFREG, 0644, NULL, NULL, "a", 0 },
	};

	(void)state;
	expect(ents, ARRAY_LEN(ents), ERR_UNSAFE, "'b': hardlinks are not allowed");
	assert_int_equal(fs_rmtree("stage"), 0);
	expect(inside, ARRAY_LEN(inside), ERR_UNSAFE, "hardlinks are not allowed");
}

static void
test_special_files(void **state)
{
	const struct ent dev[] = { { "dev/null", AE_IFCHR, 0666, NULL, NULL, NULL, 0 } };
	const struct ent blk[] = { { "sda", AE_IFBLK, 0666, NULL, NULL, NULL, 0 } };
	const struct ent fifo[] = { { "fifo", AE_IFIFO, 0644, NULL, NULL, NULL, 0 } };
	struct stat st;

	(void)state;
	expect(dev, ARRAY_LEN(dev), ERR_UNSAFE, "'dev/null': device nodes are not allowed");
	assert_int_equal(lstat("stage/dev/null", &st), -1);
	assert_int_equal(fs_rmtree("stage"), 0);
	expect(blk, ARRAY_LEN(blk), ERR_UNSAFE, "device nodes");
	assert_int_equal(fs_rmtree("stage"), 0);
	expect(fifo, ARRAY_LEN(fifo), ERR_UNSAFE, "'fifo': FIFOs are not allowed");
	assert_int_equal(lstat("stage/fifo", &st), -1);
	assert_int_equal(fs_rmtree("stage"), 0);
	/* Sockets have no tar type flag: a tar cannot carry one. */
}

static void
test_too_many_entries(void **state)
{
	struct ent ents[20];
	char names[20][16];
	struct extract_limits lim = { 0, 10, 0 };
	char err[512];
	struct stat st;

	(void)state;
	for (int i = 0; i < 20; i++) {
		snprintf(names[i], sizeof(names[i]), "f%02d", i);
		ents[i] = (struct ent){ names[i], AE_IFREG, 0644, "x", NULL, NULL, 0 };
	}
	assert_int_equal(run_ents(ents, 20, &lim, err, sizeof(err)), ERR_LIMIT);
	assert_non_null(strstr(err, "'f10': more than 10 entries"));
	assert_int_equal(lstat("stage/f10", &st), -1);
	assert_int_equal(fs_rmtree("stage"), 0);
	assert_int_equal(run_ents(ents, 10, &lim, err, sizeof(err)), ERR_OK);
}

static void
test_gzip_bomb(void **state)
{
	/* 64 MiB of zeros compress to ~64 KiB; the limit is 1 MiB. */
	const struct ent ents[] = {
		{ "small", AE_IFREG, 0644, "x", NULL, NULL, 0 },
		{ "bomb", AE_IFREG, 0644, NULL, NULL, NULL, (int64_t)64 << 20 },
	};
	/* Many files, each under the limit, together over it: caught while writing. */
	const struct ent many[] = {
		{ "a", AE_IFREG, 0644, NULL, NULL, NULL, 600 * 1024 },
		{ "b", AE_IFREG, 0644, NULL, NULL, NULL, 600 * 1024 },
	};
	struct extract_limits lim = { 1 << 20, 0, 0 };
	struct buf b;
	char err[512];
	struct stat st;

	(void)state;
	make_tar(&b, ents, ARRAY_LEN(ents), 1);
	assert_true(b.len < (1 << 20));
	assert_int_equal(run_extract(b.p, b.len, &lim, NULL, err, sizeof(err), NULL), ERR_LIMIT);
	assert_non_null(strstr(err, "'bomb': unpacked size exceeds 1048576"));
	free(b.p);
	assert_true(lstat("stage/bomb", &st) != 0 || st.st_size <= (1 << 20));
	assert_int_equal(fs_rmtree("stage"), 0);

	make_tar(&b, many, ARRAY_LEN(many), 1);
	assert_int_equal(run_extract(b.p, b.len, &lim, NULL, err, sizeof(err), NULL), ERR_LIMIT);
	assert_non_null(strstr(err, "'b': unpacked size"));
	free(b.p);
}

static void
test_truncated(void **state)
{
	const struct ent ents[] = {
		{ "a", AE_IFREG, 0644, NULL, NULL, NULL, 300000 },
		{ "b", AE_IFREG, 0644, "hello", NULL, NULL, 0 },
	};
	struct buf b;
	char err[512];

	(void)state;
	make_tar(&b, ents, ARRAY_LEN(ents), 1);
	for (size_t cut = 1; cut < b.len; cut += b.len / 7 + 1) {
		enum err_kind st = run_extract(b.p, cut, NULL, NULL, err, sizeof(err), NULL);

		if (st != ERR_FORMAT) {
			fail_msg("cut at %zu of %zu: %s", cut, b.len, err_kind_name(st));
		}
		assert_int_equal(fs_rmtree("stage"), 0);
	}
	free(b.p);
}

static void
test_not_gzip(void **state)
{
	const struct ent ents[] = { { "a", AE_IFREG, 0644, "x", NULL, NULL, 0 } };
	const char text[] = "this is not an archive at all, just some words\n";
	struct buf b;
	char err[512];

	(void)state;
	make_tar(&b, ents, ARRAY_LEN(ents), 0); /* a valid tar, but not compressed */
	assert_int_equal(run_extract(b.p, b.len, NULL, NULL, err, sizeof(err), NULL),
	    ERR_FORMAT);
	assert_non_null(strstr(err, "not a gzip"));
	free(b.p);
	assert_int_equal(fs_rmtree("stage"), 0);
	assert_int_equal(run_extract(text, sizeof(text) - 1, NULL, NULL, err, sizeof(err), NULL),
	    ERR_FORMAT);
}

static void
test_empty(void **state)
{
	char err[512];
	struct buf b;

	(void)state;
	assert_int_equal(run_extract("", 0, NULL, NULL, err, sizeof(err), NULL), ERR_FORMAT);
	assert_int_equal(fs_rmtree("stage"), 0);
	make_tar(&b, NULL, 0, 1); /* a valid gzip'd tar without entries */
	assert_int_equal(run_extract(b.p, b.len, NULL, NULL, err, sizeof(err), NULL),
	    ERR_FORMAT);
	assert_non_null(strstr(err, "no entries"));
	free(b.p);
}

/* Bytes after the tar end are hashed but do not fail the extraction. */
static void
test_trailing_and_feed_after_failure(void **state)
{
	const struct ent ents[] = { { "a", AE_IFREG, 0644, "x", NULL, NULL, 0 } };
	const struct ent bad[] = { { "../evil", AE_IFREG, 0644, "x", NULL, NULL, 0 } };
	struct buf b;
	unsigned char *big;
	char err[512];
	int failed = 0;

	(void)state;
	make_tar(&b, bad, ARRAY_LEN(bad), 1);
	big = calloc(1, b.len + 4 * EXTRACT_RING_BYTES);
	assert_non_null(big);
	memcpy(big, b.p, b.len);
	/* A failure is reported by extract_feed() long before the input ends. */
	assert_int_equal(run_extract(big, b.len + 4 * EXTRACT_RING_BYTES, NULL, NULL, err,
			     sizeof(err), &failed),
	    ERR_UNSAFE);
	assert_int_equal(failed, 1);
	free(b.p);
	free(big);
	assert_int_equal(fs_rmtree("stage"), 0);

	make_tar(&b, ents, ARRAY_LEN(ents), 1);
	big = calloc(1, b.len + 3 * EXTRACT_RING_BYTES);
	assert_non_null(big);
	memcpy(big, b.p, b.len);
	assert_int_equal(run_extract(big, b.len + 3 * EXTRACT_RING_BYTES, NULL, NULL, err,
			     sizeof(err), &failed),
	    ERR_OK);
	assert_int_equal(failed, 0);
	free(b.p);
	free(big);
}

static void
test_abort_and_args(void **state)
{
	const struct ent ents[] = { { "a", AE_IFREG, 0644, NULL, NULL, NULL, 1 << 20 } };
	struct extract *x = NULL;
	struct buf b;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(extract_begin("/abs/stage", NULL, &x, &e), -1);
	assert_int_equal(e.kind, ERR_INTERNAL);
	assert_int_equal(extract_begin("missing/stage", NULL, &x, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_int_equal(mkdir("stage", 0755), 0);
	assert_int_equal(extract_begin("stage", NULL, &x, &e), -1); /* exists */
	assert_int_equal(rmdir("stage"), 0);

	make_tar(&b, ents, ARRAY_LEN(ents), 1);
	assert_int_equal(extract_begin("stage", NULL, &x, &e), 0);
	assert_int_equal(extract_feed(x, b.p, b.len / 2), 0);
	assert_int_equal(extract_fed(x), b.len / 2);
	extract_abort(x);
	/* Abort before any byte. */
	assert_int_equal(fs_rmtree("stage"), 0);
	assert_int_equal(extract_begin("stage", NULL, &x, &e), 0);
	extract_abort(x);
	extract_abort(NULL);
	free(b.p);
}

static void
test_limit_space(void **state)
{
	/* min_free larger than any disk: refused once the first 4 MiB are written. */
	const struct ent ents[] = { { "a", AE_IFREG, 0644, NULL, NULL, NULL, 6 << 20 } };
	struct extract_limits lim = { 0, 0, ULLONG_MAX / 2 };
	char err[512];

	(void)state;
	assert_int_equal(run_ents(ents, ARRAY_LEN(ents), &lim, err, sizeof(err)), ERR_NOSPACE);
	assert_non_null(strstr(err, "'a': not enough disk space"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_traversal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absolute, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gzip_bomb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trailing_and_feed_after_failure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_abort_and_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limit_space, setup, teardown),
	};

	log_init("test_extract", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
