/*
 * Unit tests of master/delta_pack: a release packed by master/release_pack
 * from a tree in a temporary directory, its files.json read back, deltas
 * written for sets of missing digests and read with libarchive's reader.
 */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/release.h"
#include "common/release_check.h"
#include "common/release_files.h"
#include "common/zpatch.h"
#include "master/delta_pack.h"
#include "master/release_pack.h"
#include "tests/unit/tmpdir.h"

#define CONTENT_A "content of a\n"
#define CONTENT_B "content of b, another one\n"

struct fx {
	char root[PATH_MAX];
	char tree[PATH_MAX];
	char tgz[PATH_MAX];
	char out[PATH_MAX];
	char sha_a[DIGEST_HEX_LEN + 1];
	char sha_b[DIGEST_HEX_LEN + 1];
	char *fj;
	size_t fjlen;
	struct err err;
};

static void
sha_of(const char *text, char hex[DIGEST_HEX_LEN + 1])
{
	struct digest d;

	digest_init(&d);
	digest_update(&d, text, strlen(text));
	assert_int_equal(digest_final(&d, hex), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct release_pack_opts o = { 0 };
	struct release_pack_result res;
	char p[PATH_MAX];

	assert_non_null(f);
	assert_non_null(tmpdir_make("delta_pack"));
	tmpdir_join(f->root, sizeof(f->root), ".");
	tmpdir_join(f->tree, sizeof(f->tree), "tree");
	tmpdir_join(f->tgz, sizeof(f->tgz), "rel.tar.gz");
	tmpdir_join(f->out, sizeof(f->out), "delta.tar.gz");
	tmpdir_mkdir("tree", 0755);
	tmpdir_mkdir("tree/bin", 0755);
	tmpdir_mkdir("tree/lib", 0755);
	tmpdir_put("tree/bin/tandem-agent", "#!/bin/sh\nexit 0\n", 0755);
	tmpdir_put("tree/lib/a", CONTENT_A, 0644);
	tmpdir_put("tree/lib/b", CONTENT_B, 0600);
	tmpdir_put("tree/lib/dup", CONTENT_A, 0644); /* same content as lib/a: sent once */
	tmpdir_join(p, sizeof(p), "tree/lib/link");
	assert_int_equal(symlink("a", p), 0);
	o.dir = f->tree;
	o.output = f->tgz;
	o.version = "1.0";
	assert_int_equal(release_pack(&o, &res, NULL, &f->err), 0);
	sha_of(CONTENT_A, f->sha_a);
	sha_of(CONTENT_B, f->sha_b);
	assert_int_equal(delta_pack_files_json(f->tgz, &f->fj, &f->fjlen, &f->err), 1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(tmpdir_remove(), 0);
	free(f->fj);
	free(f);
	return 0;
}

/* The members of tarball PATH as "path mode size content|" lines, concatenated. */
static char *
members(const char *path)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	size_t cap = 65536, len = 0;
	char *out = calloc(1, cap);

	assert_non_null(a);
	assert_non_null(out);
	assert_int_equal(archive_read_support_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_read_support_format_tar(a), ARCHIVE_OK);
	assert_int_equal(archive_read_open_filename(a, path, 16384), ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		char data[256] = "";
		la_ssize_t n;

		assert_int_equal(archive_entry_filetype(ae), AE_IFREG);
		assert_int_equal(archive_entry_mtime(ae), 0);
		assert_int_equal(archive_entry_uid(ae), 0);
		n = archive_read_data(a, data, sizeof(data) - 1);
		assert_true(n >= 0);
		data[n] = '\0';
		if (strcmp(archive_entry_pathname(ae), RELEASE_FILES_FILE) == 0) {
			data[0] = '\0'; /* checked by the caller */
		}
		len += (size_t)snprintf(out + len, cap - len, "%s %04o %lld %s|",
		    archive_entry_pathname(ae), (unsigned)archive_entry_perm(ae),
		    (long long)archive_entry_size(ae), data);
		assert_true(len < cap);
	}
	archive_read_free(a);
	return out;
}

static void
test_files_json_is_the_releases(void **state)
{
	struct fx *f = *state;
	struct release_files rf = RELEASE_FILES_INIT;
	const struct release_files_entry *en;

	assert_int_equal(release_files_parse(f->fj, f->fjlen, &rf, &f->err), 0);
	en = release_files_find(&rf, "lib/b");
	assert_non_null(en);
	assert_string_equal(en->sha256, f->sha_b);
	assert_null(release_files_find(&rf, RELEASE_FILES_FILE));
	release_files_free(&rf);
}

static void
test_delta_sends_missing_contents_once(void **state)
{
	struct fx *f = *state;
	const char *missing[] = { f->sha_b, f->sha_a, "not-a-digest", f->sha_b,
		"0000000000000000000000000000000000000000000000000000000000000000" };
	struct delta_pack_result res;
	char *m;
	char want[512];
	struct stat st;

	assert_int_equal(delta_pack_write(f->tgz, f->fj, f->fjlen, missing, 5, NULL, f->out, &res,
	    &f->err), 0);
	m = members(f->out);
	/* files.json first; lib/a once (lib/dup has its content); no dirs or symlinks. */
	assert_true(snprintf(want, sizeof(want), "files.json 0644 %zu |lib/a 0644 %zu %s|"
	    "lib/b 0644 %zu %s|", f->fjlen, strlen(CONTENT_A), CONTENT_A, strlen(CONTENT_B),
	    CONTENT_B) < (int)sizeof(want));
	assert_string_equal(m, want);
	free(m);
	assert_int_equal(res.files, 2);
	assert_int_equal(res.content, strlen(CONTENT_A) + strlen(CONTENT_B));
	assert_int_equal(stat(f->out, &st), 0);
	assert_int_equal((unsigned long long)st.st_size, res.size);
}

static char *
slurp(const char *path, size_t *len)
{
	struct stat st;
	char *b;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	assert_int_equal(close(fd), 0);
	*len = (size_t)st.st_size;
	return b;
}

static void
test_delta_is_deterministic_and_empty_plan_sends_files_json(void **state)
{
	struct fx *f = *state;
	const char *missing[] = { f->sha_a };
	struct delta_pack_result res;
	char second[PATH_MAX];
	size_t l1, l2;
	char *b1, *b2, *m;

	assert_true(snprintf(second, sizeof(second), "%s/again.tar.gz", f->root) > 0);
	assert_int_equal(delta_pack_write(f->tgz, f->fj, f->fjlen, missing, 1, NULL, f->out, &res,
	    &f->err), 0);
	assert_int_equal(delta_pack_write(f->tgz, f->fj, f->fjlen, missing, 1, NULL, second, &res,
	    &f->err), 0);
	b1 = slurp(f->out, &l1);
	b2 = slurp(second, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	free(b1);
	free(b2);

	assert_int_equal(delta_pack_write(f->tgz, f->fj, f->fjlen, NULL, 0, NULL, f->out, &res,
	    &f->err), 0);
	assert_int_equal(res.files, 0);
	m = members(f->out);
	assert_true(strncmp(m, "files.json 0644 ", 16) == 0);
	assert_null(strchr(strchr(m, '|') + 1, '|'));
	free(m);
}

static void
test_refusals_leave_no_output(void **state)
{
	struct fx *f = *state;
	const char *missing[] = { f->sha_a };
	struct delta_pack_result res;
	char *fj;
	size_t fjlen;

	/* A files.json that is not the release's own (valid, but other bytes). */
	{
		struct release_files rf = RELEASE_FILES_INIT;
		char *b;
		size_t bl;

		assert_int_equal(release_files_parse(f->fj, f->fjlen, &rf, &f->err), 0);
		rf.v[rf.n - 1].mode = 0755; /* the last entry, manifest.json, a file */
		assert_int_equal(release_files_format(&rf, &b, &bl, &f->err), 0);
		assert_int_equal(delta_pack_write(f->tgz, b, bl, missing, 1, NULL, f->out, &res,
		    &f->err), -1);
		assert_int_equal(f->err.kind, ERR_FORMAT);
		free(b);
		release_files_free(&rf);
	}
	assert_int_equal(access(f->out, F_OK), -1);

	/* Not a files.json at all. */
	assert_int_equal(delta_pack_write(f->tgz, "{}", 2, missing, 1, NULL, f->out, &res,
	    &f->err), -1);
	assert_int_equal(access(f->out, F_OK), -1);

	/* Not a tarball. */
	tmpdir_put("junk.tar.gz", "not gzip at all", 0644);
	{
		char junk[PATH_MAX];

		assert_true(snprintf(junk, sizeof(junk), "%s/junk.tar.gz", f->root) > 0);
		assert_int_equal(delta_pack_files_json(junk, &fj, &fjlen, &f->err), -1);
		assert_int_equal(f->err.kind, ERR_FORMAT);
		assert_null(fj);
		assert_int_equal(delta_pack_write(junk, f->fj, f->fjlen, missing, 1, NULL, f->out, &res,
		    &f->err), -1);
		assert_int_equal(access(f->out, F_OK), -1);
	}
}

static void
test_release_without_files_json(void **state)
{
	struct fx *f = *state;
	struct archive *w = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	char old[PATH_MAX];
	char *fj;
	size_t fjlen;

	assert_true(snprintf(old, sizeof(old), "%s/old.tar.gz", f->root) > 0);
	assert_int_equal(archive_write_set_format_pax_restricted(w), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_gzip(w), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(w, old), ARCHIVE_OK);
	archive_entry_set_pathname(ae, "manifest.json");
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, 0644);
	archive_entry_set_size(ae, 2);
	assert_int_equal(archive_write_header(w, ae), ARCHIVE_OK);
	assert_int_equal(archive_write_data(w, "{}", 2), 2);
	archive_entry_free(ae);
	assert_int_equal(archive_write_close(w), ARCHIVE_OK);
	archive_write_free(w);
	assert_int_equal(delta_pack_files_json(old, &fj, &fjlen, &f->err), 0);
	assert_null(fj);
	assert_int_equal(fjlen, 0);
}

#define BIG (64 * 1024)

/* The prefetch of TGZ by its check (REFS as reference releases, BUDGET bytes). */
static struct delta_pack_prefetch *
prefetch_of(const char *tgz, const char *const *refs, size_t n_refs, uint64_t budget)
{
	struct delta_pack_prefetch *pf = delta_pack_prefetch_new(refs, n_refs, budget);
	struct err e = ERR_INIT;

	assert_non_null(pf);
	assert_int_equal(release_check_file_visit(tgz, NULL, RELEASE_MF_AGENT,
	    delta_pack_prefetch_visitor(pf), NULL, NULL, NULL, &e), 0);
	delta_pack_prefetch_done(pf);
	return pf;
}

/*
 * The files the check kept give the delta without reading the release,
 * byte for byte the delta read from the release; whatever they do not
 * cover (a file a reference release has, too much for the budget, another
 * files.json) is read from the release as without them.
 */
static void
test_prefetch_gives_the_same_delta(void **state)
{
	struct fx *f = *state;
	const char *missing[] = { f->sha_b, f->sha_a };
	const char *refs[] = { "/nonexistent/ref.tar.gz", f->tgz };
	struct delta_pack_result res, res2;
	struct delta_pack_prefetch *pf;
	char second[PATH_MAX];
	size_t l1, l2, files = 0;
	uint64_t bytes = 0;
	int from = -1;
	char *b1, *b2;

	assert_true(snprintf(second, sizeof(second), "%s/pf.tar.gz", f->root) > 0);
	assert_int_equal(delta_pack_write(f->tgz, f->fj, f->fjlen, missing, 2, NULL, f->out, &res,
	    &f->err), 0);
	b1 = slurp(f->out, &l1);

	/* No reference: every file is new; lib/dup (lib/a's content) is kept once. */
	pf = prefetch_of(f->tgz, NULL, 0, 1 << 20);
	delta_pack_prefetch_stat(pf, &files, &bytes);
	assert_int_equal(files, 4); /* bin/tandem-agent, lib/a, lib/b, manifest.json */
	assert_int_equal(delta_pack_write_pf("/nonexistent/release.tar.gz", f->fj, f->fjlen,
	    missing, 2, NULL, pf, second, &res2, &from, &f->err), 0);
	assert_int_equal(from, 1);
	b2 = slurp(second, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	assert_int_equal(res2.files, res.files);
	assert_int_equal(res2.content, res.content);
	assert_int_equal(res2.size, res.size);
	free(b2);

	delta_pack_prefetch_free(pf);

	/* A reference has every file (an unreadable one is passed over): nothing kept. */
	pf = prefetch_of(f->tgz, refs, 2, 1 << 20);
	delta_pack_prefetch_stat(pf, &files, &bytes);
	assert_int_equal(files, 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(delta_pack_write_pf(f->tgz, f->fj, f->fjlen, missing, 2, NULL, pf, second,
	    &res2, &from, &f->err), 0);
	assert_int_equal(from, 0);
	b2 = slurp(second, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, l1);
	free(b2);
	delta_pack_prefetch_free(pf);

	/* Over the budget: nothing kept, the release is read. */
	pf = prefetch_of(f->tgz, NULL, 0, 8);
	delta_pack_prefetch_stat(pf, &files, &bytes);
	assert_int_equal(files, 0);
	assert_int_equal(delta_pack_write_pf(f->tgz, f->fj, f->fjlen, missing, 2, NULL, pf, second,
	    &res2, &from, &f->err), 0);
	assert_int_equal(from, 0);
	delta_pack_prefetch_free(pf);

	/* A prefetch whose check failed is never used (freed by its owner): NULL is none. */
	assert_int_equal(delta_pack_write_pf(f->tgz, f->fj, f->fjlen, missing, 2, NULL, NULL,
	    second, &res2, &from, &f->err), 0);
	assert_int_equal(from, 0);
	free(b1);
}

/* Incompressible, reproducible bytes. */
static void
fill(unsigned char *p, size_t n, unsigned seed)
{
	unsigned x = seed;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

/* Pack tree REL (a file lib/big of BIG bytes from BUF) into OUT; its files.json into *FJ. */
static void
pack_big(struct fx *f, const char *rel, const unsigned char *buf, const char *out, char **fj,
    size_t *fjlen)
{
	struct release_pack_opts o = { 0 };
	struct release_pack_result res;
	char dir[PATH_MAX], sub[PATH_MAX], p[PATH_MAX];

	tmpdir_join(dir, sizeof(dir), rel);
	tmpdir_mkdir(rel, 0755);
	assert_true(snprintf(sub, sizeof(sub), "%s/lib", rel) > 0);
	tmpdir_mkdir(sub, 0755);
	assert_true(snprintf(sub, sizeof(sub), "%s/bin", rel) > 0);
	tmpdir_mkdir(sub, 0755);
	assert_true(snprintf(sub, sizeof(sub), "%s/bin/tandem-agent", rel) > 0);
	tmpdir_put(sub, "#!/bin/sh\nexit 0\n", 0755);
	assert_true(snprintf(p, sizeof(p), "%s/lib/big", dir) > 0);
	assert_int_equal(fs_write_atomic(p, buf, BIG, 0644), 0);
	o.dir = dir;
	o.output = out;
	o.version = "1.0";
	assert_int_equal(release_pack(&o, &res, NULL, &f->err), 0);
	assert_int_equal(delta_pack_files_json(out, fj, fjlen, &f->err), 1);
}

/* The bytes of member NAME of tarball PATH (malloc'd), or NULL; ANY_DIR: a directory seen. */
static void *
member(const char *path, const char *name, size_t *len, int *any_dir)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	void *out = NULL;

	*any_dir = 0;
	assert_int_equal(archive_read_support_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_read_support_format_tar(a), ARCHIVE_OK);
	assert_int_equal(archive_read_open_filename(a, path, 16384), ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		*any_dir |= archive_entry_filetype(ae) == AE_IFDIR;
		if (strcmp(archive_entry_pathname(ae), name) == 0) {
			*len = (size_t)archive_entry_size(ae);
			out = malloc(*len + 1);
			assert_non_null(out);
			assert_int_equal(archive_read_data(a, out, *len), (la_ssize_t)*len);
		}
	}
	archive_read_free(a);
	return out;
}

/*
 * A missing file whose base (the host's file at its path) is in a source
 * release goes as a small patch that gives the file back; without a source
 * holding the base, or with a base the source does not have, it goes whole.
 */
static void
test_delta_patches_against_a_stored_base(void **state)
{
	struct fx *f = *state;
	unsigned char *b1 = malloc(BIG), *b2 = malloc(BIG);
	char old[PATH_MAX], new[PATH_MAX], s1[DIGEST_HEX_LEN + 1], s2[DIGEST_HEX_LEN + 1];
	char name[256], *fj1 = NULL, *fj2 = NULL;
	size_t fj1len = 0, fj2len = 0, plen = 0;
	struct delta_pack_result res;
	struct delta_pack_base base;
	struct delta_pack_patches pp;
	const char *missing[1], *srcs[2];
	struct err e = ERR_INIT;
	void *patch, *out = NULL;
	int dir = 0;

	assert_non_null(b1);
	assert_non_null(b2);
	fill(b1, BIG, 7);
	memcpy(b2, b1, BIG);
	memcpy(b2 + BIG / 3, "changed in the middle", 21);
	tmpdir_join(old, sizeof(old), "old.tar.gz");
	tmpdir_join(new, sizeof(new), "new.tar.gz");
	pack_big(f, "t1", b1, old, &fj1, &fj1len);
	pack_big(f, "t2", b2, new, &fj2, &fj2len);
	assert_int_equal(digest_buf(b1, BIG, s1), 0);
	assert_int_equal(digest_buf(b2, BIG, s2), 0);
	missing[0] = s2;
	base.target = s2;
	base.base = s1;
	srcs[0] = "/nonexistent/store/x.tar.gz"; /* unreadable sources are passed over */
	srcs[1] = old;
	pp.v = &base;
	pp.n = 1;
	pp.sources = srcs;
	pp.n_sources = 2;
	assert_int_equal(delta_pack_write(new, fj2, fj2len, missing, 1, &pp, f->out, &res,
	    &f->err), 0);
	assert_int_equal(res.files, 1);
	assert_int_equal(res.patched, 1);
	assert_true(res.patch_bytes < 1024);
	assert_true(res.size < BIG / 8);
	assert_true(snprintf(name, sizeof(name), "%s/%s-%s%s", ZPATCH_DELTA_DIR, s2, s1,
	    ZPATCH_SUFFIX) > 0);
	patch = member(f->out, name, &plen, &dir);
	assert_non_null(patch);
	assert_true(dir);
	assert_int_equal(plen, res.patch_bytes);
	assert_int_equal(zpatch_apply(b1, BIG, patch, plen, BIG, &out, &e), 0);
	assert_memory_equal(out, b2, BIG);
	free(out);
	assert_null(member(f->out, "lib/big", &plen, &dir));

	/*
	 * The same patch from what the check of the new release kept against the old
	 * one: the file, and its base read beside the check (no source is needed).
	 */
	{
		const char *refs[] = { old };
		struct delta_pack_prefetch *pf = prefetch_of(new, refs, 1, (uint64_t)BIG * 2);
		struct delta_pack_patches pp2 = pp;
		struct delta_pack_result res2;
		size_t plen2 = 0, files = 0;
		uint64_t bytes = 0;
		void *patch2;
		int from = 0;

		delta_pack_prefetch_stat(pf, &files, &bytes);
		assert_int_equal(files, 1); /* lib/big: bin/ and manifest.json are the same */
		pp2.n_sources = 0;
		assert_int_equal(delta_pack_write_pf(new, fj2, fj2len, missing, 1, &pp2, pf, f->out,
		    &res2, &from, &f->err), 0);
		assert_int_equal(from, 1);
		assert_int_equal(res2.patched, 1);
		assert_int_equal(res2.size, res.size);
		patch2 = member(f->out, name, &plen2, &dir);
		assert_non_null(patch2);
		assert_int_equal(plen2, plen);
		assert_memory_equal(patch2, patch, plen);
		free(patch2);
		delta_pack_prefetch_free(pf);
	}
	free(patch);

	/* No source has the base: the file goes whole. */
	pp.n_sources = 1;
	assert_int_equal(delta_pack_write(new, fj2, fj2len, missing, 1, &pp, f->out, &res,
	    &f->err), 0);
	assert_int_equal(res.patched, 0);
	patch = member(f->out, "lib/big", &plen, &dir);
	assert_non_null(patch);
	assert_int_equal(plen, BIG);
	assert_false(dir);
	free(patch);
	/* A base digest the source does not hold: whole too. */
	pp.n_sources = 2;
	base.base = f->sha_a;
	assert_int_equal(delta_pack_write(new, fj2, fj2len, missing, 1, &pp, f->out, &res,
	    &f->err), 0);
	assert_int_equal(res.patched, 0);
	free(fj1);
	free(fj2);
	free(b1);
	free(b2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_delta_patches_against_a_stored_base, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_files_json_is_the_releases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delta_sends_missing_contents_once, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_delta_is_deterministic_and_empty_plan_sends_files_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals_leave_no_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_without_files_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefetch_gives_the_same_delta, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
