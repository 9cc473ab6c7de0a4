/*
 * Unit tests of common/release_check: the entry rules of a release tarball
 * and the check of a whole tarball (the master's, before anything is sent)
 * with the updater's words, on tarballs written here with libarchive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/release_check.h"
#include "tests/unit/tmpdir.h"

static const char *g_dir;
static char g_tgz[PATH_MAX];

static int
setup(void **state)
{
	(void)state;
	g_dir = tmpdir_make("release_check");
	if (g_dir == NULL) {
		return -1;
	}
	snprintf(g_tgz, sizeof(g_tgz), "%s/r.tar.gz", g_dir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return tmpdir_remove();
}

/* One entry of a test tarball: TYPE 'f' file, 'd' dir, 'l' symlink, 'h' hardlink, 'c' device. */
struct ent {
	char type;
	const char *name;
	unsigned mode;
	const char *data; /* file contents, link target */
};

#define MANIFEST(ep) { 'f', "manifest.json", 0644, \
	"{\"name\":\"a\",\"version\":\"1.0\",\"entrypoint\":\"" ep "\"}" }

/* Write ENTS (N) to g_tgz: gzip over tar unless RAW_TAR. */
static void
write_tgz(const struct ent *ents, size_t n, int raw_tar)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e;

	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	if (!raw_tar) {
		assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	}
	assert_int_equal(archive_write_open_filename(a, g_tgz), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		size_t len = ents[i].type == 'f' && ents[i].data != NULL ? strlen(ents[i].data) : 0;

		e = archive_entry_new();
		assert_non_null(e);
		archive_entry_set_pathname(e, ents[i].name);
		archive_entry_set_perm(e, ents[i].mode);
		switch (ents[i].type) {
		case 'd':
			archive_entry_set_filetype(e, AE_IFDIR);
			break;
		case 'l':
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, ents[i].data);
			break;
		case 'h':
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, ents[i].data);
			break;
		case 'c':
			archive_entry_set_filetype(e, AE_IFCHR);
			break;
		default:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_size(e, (la_int64_t)len);
			break;
		}
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (len > 0) {
			assert_int_equal(archive_write_data(a, ents[i].data, len), (la_ssize_t)len);
		}
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/* Check g_tgz with FLAGS: expect KIND (ERR_OK: accepted) and, if given, WORDS in the message. */
static void
expect(unsigned flags, const struct release_check_limits *lim, enum err_kind kind,
    const char *words)
{
	struct release_manifest m;
	struct err e = ERR_INIT;
	uint64_t n = 0, bytes = 0;
	int rc = release_check_file(g_tgz, lim, flags, &m, &n, &bytes, &e);

	if (kind == ERR_OK) {
		if (rc != 0) {
			fail_msg("refused: %s", err_msg(&e));
		}
		assert_true(n > 0);
		return;
	}
	assert_int_equal(rc, -1);
	if (e.kind != kind || (words != NULL && strstr(err_msg(&e), words) == NULL)) {
		fail_msg("kind %s, message '%s'; expected %s with '%s'", err_kind_name(e.kind),
		    err_msg(&e), err_kind_name(kind), words != NULL ? words : "");
	}
}

static void
test_good_release(void **state)
{
	const struct ent ok[] = {
		{ 'd', "./", 0755, NULL },
		MANIFEST("bin/agent"),
		{ 'd', "bin", 0755, NULL },
		{ 'f', "bin/agent", 0755, "#!/bin/sh\n" },
		{ 'l', "bin/tandem-agent", 0777, "agent" },
	};
	const struct ent via_link[] = {
		MANIFEST("bin/tandem-agent"),
		{ 'f', "lib/agent", 0755, "#!/bin/sh\n" },
		{ 'l', "bin/tandem-agent", 0777, "../lib/agent" },
	};
	struct release_manifest m;
	struct err e = ERR_INIT;
	uint64_t n = 0, bytes = 0;

	(void)state;
	write_tgz(ok, ARRAY_LEN(ok), 0);
	assert_int_equal(release_check_file(g_tgz, NULL, RELEASE_MF_AGENT, &m, &n, &bytes, &e), 0);
	assert_string_equal(m.name, "a");
	assert_string_equal(m.version, "1.0");
	assert_int_equal(n, ARRAY_LEN(ok));
	assert_int_equal(bytes, strlen(ok[1].data) + strlen(ok[3].data));
	/* The entrypoint through a symlink inside the release. */
	write_tgz(via_link, ARRAY_LEN(via_link), 0);
	expect(RELEASE_MF_AGENT, NULL, ERR_OK, NULL);
	/* Not an updater release. */
	expect(RELEASE_MF_AGENT | RELEASE_MF_UPDATER, NULL, ERR_FORMAT, "updater_entrypoint");
}

static void
test_format(void **state)
{
	const struct ent ok[] = { MANIFEST("a"), { 'f', "a", 0755, "x" } };
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(release_check_file("/nonexistent/r.tar.gz", NULL, 0, NULL, NULL, NULL, &e),
	    -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
	assert_int_equal(fs_write_atomic(g_tgz, "hello\n", 6, 0644), 0);
	expect(0, NULL, ERR_FORMAT, "not a gzip tar archive");
	assert_int_equal(fs_write_atomic(g_tgz, "", 0, 0644), 0);
	expect(0, NULL, ERR_FORMAT, "not a gzip tar archive");
	/* A plain tar: the updater takes only gzip. */
	write_tgz(ok, ARRAY_LEN(ok), 1);
	expect(0, NULL, ERR_FORMAT, "not a gzip-compressed archive");
	write_tgz(ok, 0, 0);
	expect(0, NULL, ERR_FORMAT, NULL);
}

static void
test_manifest_and_programs(void **state)
{
	const struct ent none[] = { { 'f', "bin/agent", 0755, "x" } };
	const struct ent bad[] = { { 'f', "manifest.json", 0644, "{\"name\":" } };
	const struct ent missing[] = { MANIFEST("bin/agent") };
	const struct ent noexec[] = { MANIFEST("bin/agent"), { 'f', "bin/agent", 0644, "x" } };
	const struct ent dir[] = { MANIFEST("bin/agent"), { 'd', "bin/agent", 0755, NULL } };
	const struct ent out[] = { MANIFEST("bin/agent"), { 'l', "bin/agent", 0777, "../../x" } };

	(void)state;
	write_tgz(none, ARRAY_LEN(none), 0);
	expect(RELEASE_MF_AGENT, NULL, ERR_FORMAT, "release has no readable manifest.json");
	write_tgz(bad, ARRAY_LEN(bad), 0);
	expect(RELEASE_MF_AGENT, NULL, ERR_FORMAT, NULL);
	write_tgz(missing, ARRAY_LEN(missing), 0);
	expect(RELEASE_MF_AGENT, NULL, ERR_FORMAT,
	    "entrypoint: 'bin/agent' is missing from the release");
	write_tgz(noexec, ARRAY_LEN(noexec), 0);
	expect(RELEASE_MF_AGENT, NULL, ERR_FORMAT,
	    "entrypoint: 'bin/agent' is not an executable file");
	write_tgz(dir, ARRAY_LEN(dir), 0);
	expect(RELEASE_MF_AGENT, NULL, ERR_FORMAT, "is not an executable file");
	/* A symlink climbing out is refused as an entry already. */
	write_tgz(out, ARRAY_LEN(out), 0);
	expect(RELEASE_MF_AGENT, NULL, ERR_UNSAFE, "leaves the release");
}

static void
test_unsafe_entries(void **state)
{
	const struct ent abs[] = { MANIFEST("a"), { 'f', "/etc/a", 0755, "x" } };
	const struct ent dotdot[] = { MANIFEST("a"), { 'f', "x/../../a", 0755, "x" } };
	const struct ent hard[] = { MANIFEST("a"), { 'f', "a", 0755, "x" }, { 'h', "b", 0755, "a" } };
	const struct ent dev[] = { MANIFEST("a"), { 'c', "dev", 0600, NULL } };
	const struct ent absl[] = { MANIFEST("a"), { 'l', "a", 0777, "/bin/sh" } };
	const struct ent ctl[] = { MANIFEST("a"), { 'f', "a\001b", 0755, "x" } };

	(void)state;
	write_tgz(abs, ARRAY_LEN(abs), 0);
	expect(0, NULL, ERR_UNSAFE, "absolute path");
	write_tgz(dotdot, ARRAY_LEN(dotdot), 0);
	expect(0, NULL, ERR_UNSAFE, "'..' in path");
	write_tgz(hard, ARRAY_LEN(hard), 0);
	expect(0, NULL, ERR_UNSAFE, "hardlinks are not allowed");
	write_tgz(dev, ARRAY_LEN(dev), 0);
	expect(0, NULL, ERR_UNSAFE, "device nodes are not allowed");
	write_tgz(absl, ARRAY_LEN(absl), 0);
	expect(0, NULL, ERR_UNSAFE, "symlink to absolute path");
	write_tgz(ctl, ARRAY_LEN(ctl), 0);
	expect(0, NULL, ERR_UNSAFE, "control character");
}

/* What a visitor saw: "name path size:" per file asked for, its bytes, "." at its end. */
struct seen {
	char log[512];
	size_t len;
};

static int
seen_file(void *arg, const char *name, const char *path, int64_t size)
{
	struct seen *s = arg;

	s->len += (size_t)snprintf(s->log + s->len, sizeof(s->log) - s->len, "%s %s %lld:", name,
	    path, (long long)size);
	return strcmp(path, "skip") != 0;
}

static void
seen_data(void *arg, const void *buf, size_t len, uint64_t off)
{
	struct seen *s = arg;

	(void)off;
	s->len += (size_t)snprintf(s->log + s->len, sizeof(s->log) - s->len, "%.*s", (int)len,
	    (const char *)buf);
}

static void
seen_end(void *arg)
{
	struct seen *s = arg;

	s->len += (size_t)snprintf(s->log + s->len, sizeof(s->log) - s->len, ".");
}

/* A visitor sees every regular file's bytes; it cannot change the verdict. */
static void
test_visitor(void **state)
{
	const struct ent ok[] = {
		{ 'd', "./", 0755, NULL },
		MANIFEST("bin/agent"),
		{ 'f', "./bin/agent", 0755, "#!/bin/sh\n" },
		{ 'f', "skip", 0644, "not asked for" },
		{ 'l', "bin/tandem-agent", 0777, "agent" },
	};
	const struct ent bad[] = { { 'f', "a", 0755, "x" }, { 'c', "dev", 0600, NULL } };
	struct seen s = { .len = 0 };
	const struct release_check_visitor v = { seen_file, seen_data, seen_end, &s };
	struct err e = ERR_INIT;
	char want[512];

	(void)state;
	write_tgz(ok, ARRAY_LEN(ok), 0);
	assert_int_equal(release_check_file_visit(g_tgz, NULL, RELEASE_MF_AGENT, &v, NULL, NULL,
	    NULL, &e), 0);
	snprintf(want, sizeof(want), "manifest.json manifest.json %zu:%s../bin/agent bin/agent "
	    "10:#!/bin/sh\n.skip skip 13:", strlen(ok[1].data), ok[1].data);
	assert_string_equal(s.log, want);
	/* Refused after a file was seen: the verdict is the check's. */
	s.len = 0;
	s.log[0] = '\0';
	write_tgz(bad, ARRAY_LEN(bad), 0);
	assert_int_equal(release_check_file_visit(g_tgz, NULL, 0, &v, NULL, NULL, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_UNSAFE);
	assert_string_equal(s.log, "a a 1:x.");
}

static void
test_limits(void **state)
{
	const struct ent ok[] = { MANIFEST("a"), { 'f', "a", 0755, "0123456789" },
		{ 'f', "b", 0644, "0123456789" } };
	const struct release_check_limits two = { 0, 2 };
	const struct release_check_limits small = { 60, 0 };

	(void)state;
	write_tgz(ok, ARRAY_LEN(ok), 0);
	expect(RELEASE_MF_AGENT, NULL, ERR_OK, NULL);
	expect(RELEASE_MF_AGENT, &two, ERR_LIMIT, "more than 2 entries");
	expect(RELEASE_MF_AGENT, &small, ERR_LIMIT, "unpacked size exceeds 60 bytes");
}

static void
test_rules(void **state)
{
	char out[RELEASE_CHECK_MAX_PATH];
	enum release_check_ftype kind;
	struct err e = ERR_INIT;
	int skip;

	(void)state;
	assert_int_equal(release_check_name("./a//b/./c", out, sizeof(out), &skip, &e), 0);
	assert_string_equal(out, "a/b/c");
	assert_false(skip);
	assert_int_equal(release_check_name("./", out, sizeof(out), &skip, &e), 0);
	assert_true(skip);
	assert_int_equal(release_check_name("a/../b", out, sizeof(out), &skip, &e), -1);
	assert_int_equal(release_check_name("abcdef", out, 4, &skip, &e), -1);
	assert_int_equal(release_check_type("x", AE_IFIFO, 0, &kind, &e), -1);
	assert_int_equal(release_check_type("x", AE_IFSOCK, 0, &kind, &e), -1);
	assert_int_equal(release_check_type("x", AE_IFREG, 0, &kind, &e), 0);
	assert_int_equal(kind, RELEASE_CHECK_FILE);
	assert_int_equal(release_check_symlink("a/b/c", "../../d", &e), 0);
	assert_int_equal(release_check_symlink("a/b", "../../d", &e), -1);
	assert_int_equal(release_check_symlink("a/b", "c/../../d", &e), -1);
	assert_int_equal(release_check_symlink("a", "", &e), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_and_programs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsafe_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test(test_rules),
		cmocka_unit_test_setup_teardown(test_visitor, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
