/*
 * Unit tests of common/release_files: files.json's strict parser, its
 * canonical writer, the rules between entries and the scan of a tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/release_files.h"
#include "tests/unit/tmpdir.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"

static int
setup(void **state)
{
	(void)state;
	return tmpdir_make("release_files") == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return tmpdir_remove();
}

static const char good[] =
    "{\"v\":1,\"files\":[\n"
    "{\"path\":\"bin\",\"type\":\"dir\",\"mode\":\"0755\"},\n"
    "{\"path\":\"bin/a\\\"b\",\"type\":\"file\",\"mode\":\"0755\",\"size\":5,\"sha256\":\"" H1 "\"},\n"
    "{\"path\":\"bin/x\",\"type\":\"symlink\",\"target\":\"../lib/y\"},\n"
    "{\"path\":\"lib\",\"type\":\"dir\",\"mode\":\"0700\"},\n"
    "{\"path\":\"lib/y\",\"type\":\"file\",\"mode\":\"0644\",\"size\":0,\"sha256\":\"" H2 "\"},\n"
    "{\"path\":\"manifest.json\",\"type\":\"file\",\"mode\":\"0644\",\"size\":10,\"sha256\":\"" H1 "\"}\n"
    "]}\n";

static void
test_parse_format_roundtrip(void **state)
{
	struct release_files f = RELEASE_FILES_INIT, g = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;
	char *out = NULL, *again = NULL;
	size_t outlen = 0, againlen = 0;
	const struct release_files_entry *en;

	(void)state;
	assert_int_equal(release_files_parse(good, strlen(good), &f, &e), 0);
	assert_int_equal(f.n, 6);
	en = release_files_find(&f, "bin/a\"b");
	assert_non_null(en);
	assert_int_equal(en->type, RELEASE_FILES_REG);
	assert_int_equal(en->mode, 0755);
	assert_int_equal(en->size, 5);
	assert_string_equal(en->sha256, H1);
	en = release_files_find(&f, "bin/x");
	assert_non_null(en);
	assert_int_equal(en->type, RELEASE_FILES_SYMLINK);
	assert_string_equal(en->target, "../lib/y");
	assert_int_equal(release_files_find(&f, "lib")->mode, 0700);
	assert_null(release_files_find(&f, "nope"));

	/* The canonical writer gives back the very bytes, and is a fixed point. */
	assert_int_equal(release_files_format(&f, &out, &outlen, &e), 0);
	assert_int_equal(outlen, strlen(good));
	assert_memory_equal(out, good, outlen);
	assert_int_equal(release_files_parse(out, outlen, &g, &e), 0);
	assert_int_equal(release_files_format(&g, &again, &againlen, &e), 0);
	assert_int_equal(againlen, outlen);
	assert_memory_equal(again, out, outlen);

	/* Any JSON spelling parses to the same entries (the digest is of the bytes). */
	static const char spaced[] = " { \"files\" : [ {\"type\":\"file\",\"path\":\"manifest.json\","
	    "\"sha256\":\"" H1 "\",\"size\":1,\"mode\":\"0600\"} ] , \"v\" : 1 } ";
	assert_int_equal(release_files_parse(spaced, strlen(spaced), &g, &e), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.v[0].mode, 0600);

	free(out);
	free(again);
	release_files_free(&f);
	release_files_free(&g);
}

static void
test_parse_rejects(void **state)
{
#define MF "{\"path\":\"manifest.json\",\"type\":\"file\",\"mode\":\"0644\",\"size\":1,\"sha256\":\"" H1 "\"}"
#define FILE_(p, m) "{\"path\":\"" p "\",\"type\":\"file\",\"mode\":\"" m "\",\"size\":1,\"sha256\":\"" H1 "\"}"
#define DIR_(p) "{\"path\":\"" p "\",\"type\":\"dir\",\"mode\":\"0755\"}"
#define LINK_(p, t) "{\"path\":\"" p "\",\"type\":\"symlink\",\"target\":\"" t "\"}"
#define DOC(...) "{\"v\":1,\"files\":[" __VA_ARGS__ "]}"
	static const char *const bad[] = {
		"",
		"[]",
		"{\"v\":1}",
		"{\"files\":[" MF "]}",
		"{\"v\":2,\"files\":[" MF "]}",
		"{\"v\":1,\"files\":[" MF "],\"x\":1}",
		DOC(),                                         /* no manifest.json */
		DOC(DIR_("manifest.json")),                    /* manifest.json not a file */
		DOC(MF "," MF),                                /* twice */
		DOC(FILE_("z", "0644") "," MF),                /* out of order */
		DOC(FILE_("a/b", "0644") "," MF),              /* parent not listed */
		DOC(FILE_("a", "0644") "," FILE_("a/b", "0644") "," MF), /* parent not a dir */
		DOC(FILE_("files.json", "0644") "," MF),       /* lists itself */
		DOC(FILE_("a", "0777") "," MF),                /* group/other write */
		DOC(FILE_("a", "4755") "," MF),                /* setuid */
		DOC(FILE_("a", "0444") "," MF),                /* owner cannot write */
		DOC(FILE_("a", "755") "," MF),
		DOC(FILE_("a", "0x55") "," MF),
		DOC("{\"path\":\"a\",\"type\":\"dir\",\"mode\":\"0655\"}," MF), /* dir not searchable */
		DOC(FILE_("/a", "0644") "," MF),
		DOC(FILE_("../a", "0644") "," MF),
		DOC(FILE_("a/", "0644") "," MF),
		DOC(FILE_("a//b", "0644") "," MF),
		DOC(FILE_("./a", "0644") "," MF),
		DOC(FILE_("a\\u0001", "0644") "," MF),
		DOC(FILE_("", "0644") "," MF),
		DOC(LINK_("a", "/etc/passwd") "," MF),
		DOC(LINK_("a", "../x") "," MF),
		DOC(DIR_("d") "," LINK_("d/a", "../../x") "," MF),
		DOC(LINK_("a", "") "," MF),
		DOC("{\"path\":\"a\",\"type\":\"symlink\",\"target\":\"b\",\"mode\":\"0755\"}," MF),
		DOC("{\"path\":\"a\",\"type\":\"dir\"}," MF),
		DOC("{\"path\":\"a\",\"type\":\"dir\",\"mode\":\"0755\",\"size\":0}," MF),
		DOC("{\"path\":\"a\",\"type\":\"file\",\"mode\":\"0644\",\"sha256\":\"" H1 "\"}," MF),
		DOC("{\"path\":\"a\",\"type\":\"file\",\"mode\":\"0644\",\"size\":1}," MF),
		DOC("{\"path\":\"a\",\"type\":\"file\",\"mode\":\"0644\",\"size\":-1,\"sha256\":\"" H1
		    "\"}," MF),
		DOC("{\"path\":\"a\",\"type\":\"file\",\"mode\":\"0644\",\"size\":1.5,\"sha256\":\"" H1
		    "\"}," MF),
		DOC("{\"path\":\"a\",\"type\":\"file\",\"mode\":\"0644\",\"size\":1,\"sha256\":\""
		    "ABCDEF1111111111111111111111111111111111111111111111111111111111\"}," MF),
		DOC("{\"path\":\"a\",\"type\":\"file\",\"mode\":\"0644\",\"size\":1,\"sha256\":\"11\"},"
		    MF),
		DOC("{\"path\":\"a\",\"type\":\"fifo\",\"mode\":\"0644\"}," MF),
		DOC("{\"path\":\"a\",\"type\":\"file\",\"mode\":\"0644\",\"size\":1,\"sha256\":\"" H1
		    "\",\"extra\":1}," MF),
		DOC("{\"path\":\"a\",\"path\":\"b\",\"type\":\"dir\",\"mode\":\"0755\"}," MF),
		DOC("1," MF),
		DOC("[]," MF),
		DOC(MF) "x",
	};
	struct release_files f = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (release_files_parse(bad[i], strlen(bad[i]), &f, &e) == 0) {
			fail_msg("accepted #%zu: %s", i, bad[i]);
		}
		assert_true(e.kind == ERR_FORMAT || e.kind == ERR_LIMIT);
		assert_int_equal(f.n, 0);
	}
	/* Invalid UTF-8 in a path never gets through (the JSON layer refuses it). */
	static const char latin1[] = DOC(FILE_("\xe9", "0644") "," MF);
	assert_int_equal(release_files_parse(latin1, strlen(latin1), &f, &e), -1);
	/* The good one still parses (the table above is not refusing everything). */
	assert_int_equal(release_files_parse(DOC(DIR_("d") "," LINK_("d/a", "../b") "," MF),
	    strlen(DOC(DIR_("d") "," LINK_("d/a", "../b") "," MF)), &f, &e), 0);
	release_files_free(&f);
}

static void
test_add_and_format_rules(void **state)
{
	struct release_files f = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;
	char *out = NULL;
	size_t outlen = 0;
	char longp[RELEASE_FILES_PATH_MAX + 2];

	(void)state;
	assert_int_equal(release_files_add(&f, "a", RELEASE_FILES_REG, 0644, 1, "nothex", NULL, &e),
	    -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_int_equal(release_files_add(&f, "a", RELEASE_FILES_REG, 0644, 1, NULL, NULL, &e), -1);
	assert_int_equal(release_files_add(&f, "a", RELEASE_FILES_SYMLINK, 0, 0, NULL, NULL, &e), -1);
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(release_files_add(&f, longp, RELEASE_FILES_DIR, 0755, 0, NULL, NULL, &e),
	    -1);
	longp[RELEASE_FILES_PATH_MAX] = '\0'; /* exactly the limit: fine */
	assert_int_equal(release_files_add(&f, longp, RELEASE_FILES_DIR, 0755, 0, NULL, NULL, &e),
	    0);
	assert_int_equal(f.n, 1);

	/* Out of order or without manifest.json: the writer refuses, it does not sort for you. */
	assert_int_equal(release_files_add(&f, "manifest.json", RELEASE_FILES_REG, 0644, 3, H1, NULL,
	    &e), 0);
	assert_int_equal(release_files_add(&f, "b", RELEASE_FILES_SYMLINK, 0, 0, NULL, "manifest.json",
	    &e), 0);
	err_clear(&e);
	assert_int_equal(release_files_format(&f, &out, &outlen, &e), -1);
	assert_int_equal(e.kind, ERR_INTERNAL);
	assert_null(out);
	release_files_sort(&f);
	assert_int_equal(release_files_check(&f, &e), 0);
	assert_int_equal(release_files_format(&f, &out, &outlen, &e), 0);
	assert_non_null(strstr(out, "{\"path\":\"b\",\"type\":\"symlink\",\"target\":\"manifest.json\"}"));
	free(out);
	release_files_free(&f);
	release_files_free(&f); /* twice is fine */
}

static void
test_entry_limit(void **state)
{
	struct release_files f = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;
	char p[32];

	(void)state;
	for (int i = 0; i < RELEASE_FILES_MAX_ENTRIES; i++) {
		snprintf(p, sizeof(p), "d%06d", i);
		assert_int_equal(release_files_add(&f, p, RELEASE_FILES_DIR, 0755, 0, NULL, NULL, &e),
		    0);
	}
	assert_int_equal(release_files_add(&f, "x", RELEASE_FILES_DIR, 0755, 0, NULL, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_LIMIT);
	release_files_free(&f);
}

/* The plan body's wire form: gzip and back, and what the inflater refuses. */
static void
test_gzip_roundtrip_and_refusals(void **state)
{
	struct err e = ERR_INIT;
	char *gz = NULL, *back = NULL, *big;
	size_t gzlen = 0, backlen = 0;

	(void)state;
	assert_int_equal(release_files_gzip(good, strlen(good), &gz, &gzlen, &e), 0);
	assert_true(gzlen > 18 && gzlen < strlen(good));
	assert_int_equal(release_files_gunzip(gz, gzlen, &back, &backlen, &e), 0);
	assert_int_equal(backlen, strlen(good));
	assert_memory_equal(back, good, backlen);
	assert_int_equal(back[backlen], '\0');
	free(back);

	/* Not gzip: plain JSON, nothing, a short header. */
	assert_int_equal(release_files_gunzip(good, strlen(good), &back, &backlen, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_null(back);
	assert_int_equal(release_files_gunzip("", 0, &back, &backlen, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_int_equal(release_files_gunzip(gz, 10, &back, &backlen, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	/* Cut short, and corrupt in its deflate data. */
	assert_int_equal(release_files_gunzip(gz, gzlen - 9, &back, &backlen, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	gz[12] = (char)~gz[12];
	gz[gzlen / 2] = (char)~gz[gzlen / 2];
	assert_int_equal(release_files_gunzip(gz, gzlen, &back, &backlen, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_null(back);
	free(gz);
	/*
	 * Any one byte of the member changed (header, deflate data, CRC, size):
	 * refused, or (a header flag or time the inflater may ignore) the exact
	 * original back; never other bytes.
	 */
	assert_int_equal(release_files_gzip(good, strlen(good), &gz, &gzlen, &e), 0);
	for (size_t i = 0; i < gzlen; i++) {
		for (int bit = 0; bit < 8; bit++) {
			gz[i] = (char)(gz[i] ^ (1 << bit));
			if (release_files_gunzip(gz, gzlen, &back, &backlen, &e) == 0) {
				assert_int_equal(backlen, strlen(good));
				assert_memory_equal(back, good, backlen);
				free(back);
			} else {
				assert_null(back);
			}
			gz[i] = (char)(gz[i] ^ (1 << bit));
		}
	}
	free(gz);

	/* A small body that inflates past RELEASE_FILES_MAX_BYTES; the limit itself is fine. */
	big = malloc(RELEASE_FILES_MAX_BYTES + 1);
	assert_non_null(big);
	memset(big, ' ', RELEASE_FILES_MAX_BYTES + 1);
	assert_int_equal(release_files_gzip(big, RELEASE_FILES_MAX_BYTES, &gz, &gzlen, &e), 0);
	assert_true(gzlen < 1024 * 1024);
	assert_int_equal(release_files_gunzip(gz, gzlen, &back, &backlen, &e), 0);
	assert_int_equal(backlen, RELEASE_FILES_MAX_BYTES);
	free(back);
	{
		/* A second member after the first: refused, whatever it holds. */
		char *two = malloc(gzlen * 2);

		assert_non_null(two);
		memcpy(two, gz, gzlen);
		memcpy(two + gzlen, gz, gzlen);
		assert_int_equal(release_files_gunzip(two, gzlen * 2, &back, &backlen, &e), -1);
		assert_null(back);
		free(two);
	}
	free(gz);
	assert_int_equal(release_files_gzip(big, RELEASE_FILES_MAX_BYTES + 1, &gz, &gzlen, &e), 0);
	free(big);
	assert_int_equal(release_files_gunzip(gz, gzlen, &back, &backlen, &e), -1);
	assert_int_equal(e.kind, ERR_TOO_LARGE);
	assert_null(back);
	free(gz);
}

static void
test_scan_and_read(void **state)
{
	struct release_files f = RELEASE_FILES_INIT, g = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;
	char hex[DIGEST_HEX_LEN + 1], want[DIGEST_HEX_LEN + 1], p[PATH_MAX];
	char *out = NULL;
	size_t outlen = 0;
	const struct release_files_entry *en;

	(void)state;
	tmpdir_mkdir("bin", 0755);
	tmpdir_mkdir("lib", 0700);
	tmpdir_put("bin/agent", "agent!", 0755);
	tmpdir_put("lib/libx.so.1", "", 0644);
	tmpdir_put("manifest.json", "{}", 0644);
	tmpdir_put("files.json", "not even json", 0644); /* the root's own is never listed */
	snprintf(p, sizeof(p), "%s/lib/libx.so", tmpdir_path());
	assert_int_equal(symlink("libx.so.1", p), 0);

	/* Absent files.json reads as 0 (the scan's input has a bogus one, so read it first). */
	assert_int_equal(release_files_read(tmpdir_path(), &g, hex, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);

	assert_int_equal(release_files_scan(tmpdir_path(), 0, &f, &e), 0);
	assert_int_equal(f.n, 6);
	en = release_files_find(&f, "bin/agent");
	assert_non_null(en);
	assert_int_equal(en->mode, 0755);
	assert_int_equal(en->size, 6);
	assert_int_equal(digest_buf("agent!", 6, want), 0);
	assert_string_equal(en->sha256, want);
	assert_int_equal(release_files_find(&f, "lib")->mode, 0700);
	assert_string_equal(release_files_find(&f, "lib/libx.so")->target, "libx.so.1");
	assert_null(release_files_find(&f, "files.json"));

	/* Written and read back: the same entries, the digest of the bytes. */
	assert_int_equal(release_files_format(&f, &out, &outlen, &e), 0);
	snprintf(p, sizeof(p), "%s/files.json", tmpdir_path());
	assert_int_equal(fs_write_atomic(p, out, outlen, 0644), 0);
	assert_int_equal(release_files_read(tmpdir_path(), &g, hex, &e), 1);
	assert_int_equal(digest_buf(out, outlen, want), 0);
	assert_string_equal(hex, want);
	assert_int_equal(g.n, f.n);
	for (size_t i = 0; i < f.n; i++) {
		assert_string_equal(g.v[i].path, f.v[i].path);
		assert_string_equal(g.v[i].sha256, f.v[i].sha256);
	}

	/* Without hashing: everything but the digests. */
	assert_int_equal(release_files_scan(tmpdir_path(), RELEASE_FILES_NOHASH, &g, &e), 0);
	assert_int_equal(g.n, f.n);
	assert_string_equal(release_files_find(&g, "bin/agent")->sha256, "");
	assert_int_equal(release_files_find(&g, "bin/agent")->size, 6);

	/* Absent. */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(release_files_read(tmpdir_path(), &g, hex, &e), 0);
	assert_int_equal(g.n, 0);

	/* A FIFO, an escaping link, a mode extraction never leaves: refused, named. */
	snprintf(p, sizeof(p), "%s/bin/fifo", tmpdir_path());
	assert_int_equal(mkfifo(p, 0644), 0);
	assert_int_equal(release_files_scan(tmpdir_path(), 0, &g, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_non_null(strstr(e.msg, "bin/fifo"));
	assert_int_equal(g.n, 0);
	assert_int_equal(unlink(p), 0);
	snprintf(p, sizeof(p), "%s/bin/out", tmpdir_path());
	assert_int_equal(symlink("../../etc/passwd", p), 0);
	assert_int_equal(release_files_scan(tmpdir_path(), 0, &g, &e), -1);
	assert_int_equal(unlink(p), 0);
	tmpdir_put("bin/ww", "x", 0666);
	assert_int_equal(release_files_scan(tmpdir_path(), 0, &g, &e), -1);
	assert_non_null(strstr(e.msg, "bin/ww"));
	snprintf(p, sizeof(p), "%s/bin/ww", tmpdir_path());
	assert_int_equal(unlink(p), 0);
	/* Without manifest.json the tree is not a release. */
	snprintf(p, sizeof(p), "%s/manifest.json", tmpdir_path());
	assert_int_equal(unlink(p), 0);
	assert_int_equal(release_files_scan(tmpdir_path(), 0, &g, &e), -1);
	assert_int_equal(release_files_scan("/nonexistent/x", 0, &g, &e), -1);

	free(out);
	release_files_free(&f);
	release_files_free(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_format_roundtrip),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_add_and_format_rules),
		cmocka_unit_test(test_entry_limit),
		cmocka_unit_test(test_gzip_roundtrip_and_refusals),
		cmocka_unit_test_setup_teardown(test_scan_and_read, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
