/*
 * Unit tests of updater/delta: the index of local contents, the plan's
 * answer, and a release assembled from received files and local copies,
 * with every kind of mismatch refused and named.
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
#include "common/json.h"
#include "common/release_files.h"
#include "common/zpatch.h"
#include "updater/delta.h"
#include "tests/unit/tmpdir.h"

static char g_staging[PATH_MAX];

/* A directory of the tree, 0755. */
static void
mkd(const char *rel)
{
	tmpdir_mkdir(rel, 0755);
}

/* files.json of the tree DIR (relative to the root), written into it. */
static void
seal(const char *rel)
{
	struct release_files f = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;
	char dir[PATH_MAX], p[PATH_MAX];
	char *out = NULL;
	size_t len = 0;

	snprintf(dir, sizeof(dir), "%s/%s", tmpdir_path(), rel);
	assert_int_equal(release_files_scan(dir, 0, &f, &e), 0);
	assert_int_equal(release_files_format(&f, &out, &len, &e), 0);
	tmpdir_fmt(p, sizeof(p), "%s/files.json", dir);
	assert_int_equal(fs_write_atomic(p, out, len, 0644), 0);
	free(out);
	release_files_free(&f);
}

/*
 * The root: releases/active (v1: bin/agent, lib/big, manifest.json) with
 * files.json, and the target release v2 (bin/agent changed, lib/big the
 * same, lib/big.link a symlink, doc/copy another path of big's content)
 * built in "target" with its files.json in *F.
 */
static int
setup(void **state)
{
	struct release_files *f = calloc(1, sizeof(*f));
	struct err e = ERR_INIT;
	char p[PATH_MAX];

	if (f == NULL || tmpdir_make("delta") == NULL) {
		return -1;
	}
	mkd("releases");
	mkd("releases/active");
	mkd("releases/active/bin");
	mkd("releases/active/lib");
	tmpdir_put("releases/active/bin/agent", "agent v1", 0755);
	tmpdir_put("releases/active/lib/big", "big shared content", 0644);
	tmpdir_put("releases/active/manifest.json", "{\"v\":1}", 0644);
	tmpdir_put("releases/active/release.json", "{}", 0644);
	seal("releases/active");

	mkd("target");
	mkd("target/bin");
	mkd("target/lib");
	mkd("target/doc");
	tmpdir_put("target/bin/agent", "agent v2", 0755);
	tmpdir_put("target/lib/big", "big shared content", 0644);
	tmpdir_put("target/doc/copy", "big shared content", 0644);
	tmpdir_put("target/manifest.json", "{\"v\":2}", 0644);
	snprintf(p, sizeof(p), "%s/target/lib/big.link", tmpdir_path());
	assert_int_equal(symlink("big", p), 0);
	snprintf(p, sizeof(p), "%s/target", tmpdir_path());
	assert_int_equal(release_files_scan(p, 0, f, &e), 0);
	snprintf(g_staging, sizeof(g_staging), "%s/releases/active.new", tmpdir_path());
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	release_files_free(*state);
	free(*state);
	return tmpdir_remove();
}

/* A staging holding only the files of F that the host lacks (bin/agent) and files.json. */
static void
stage_delta(void)
{
	char p[PATH_MAX];

	assert_int_equal(mkdir(g_staging, 0755), 0);
	tmpdir_fmt(p, sizeof(p), "%s/bin", g_staging);
	assert_int_equal(mkdir(p, 0700), 0);
	tmpdir_put("releases/active.new/bin/agent", "agent v2", 0600);
}

static const struct delta_limits lim = { 1 << 20, 1000, 0 };

static void
test_plan(void **state)
{
	const struct release_files *f = *state;
	struct err e = ERR_INIT;
	char *body = NULL, agent2[DIGEST_HEX_LEN + 1];
	size_t len = 0;
	cJSON *o, *missing;

	assert_int_equal(release_files_format(f, &body, &len, &e), 0);
	o = delta_plan(tmpdir_path(), body, len, 0, &e);
	assert_non_null(o);
	missing = cJSON_GetObjectItemCaseSensitive(o, "missing");
	assert_int_equal(cJSON_GetArraySize(missing), 2); /* bin/agent v2, manifest.json v2 */
	assert_int_equal(digest_buf("agent v2", 8, agent2), 0);
	assert_true(strcmp(cJSON_GetArrayItem(missing, 0)->valuestring, agent2) == 0 ||
	    strcmp(cJSON_GetArrayItem(missing, 1)->valuestring, agent2) == 0);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "missing_files")->valuedouble, 2);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "missing_bytes")->valuedouble, 8 + 7);
	/* lib/big and doc/copy: one content at two paths, both reusable. */
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "reuse_files")->valuedouble, 2);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "reuse_bytes")->valuedouble, 36);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "base")->valuestring, "");
	cJSON_Delete(o);

	/* Without its files.json the active release is indexed by hashing it: same answer. */
	tmpdir_put("releases/active/files.json", "{broken", 0644);
	o = delta_plan(tmpdir_path(), body, len, 0, &e);
	assert_non_null(o);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "reuse_files")->valuedouble, 2);
	cJSON_Delete(o);

	/* A body that is not a files.json: bad_request. */
	assert_null(delta_plan(tmpdir_path(), "{}", 2, 0, &e));
	assert_int_equal(e.kind, ERR_BAD_REQUEST);
	free(body);
}

static void
test_assemble_ok(void **state)
{
	const struct release_files *f = *state;
	struct release_files got = RELEASE_FILES_INIT, want = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;
	char p[PATH_MAX];
	uint64_t copied = 0;

	stage_delta();
	tmpdir_put("releases/active.new/manifest.json", "{\"v\":2}", 0644);
	assert_int_equal(delta_assemble(tmpdir_path(), g_staging, f, &lim, &copied, &e), 0);
	assert_int_equal(copied, 36); /* lib/big and doc/copy */
	/* The assembled tree is the target, entry by entry, digests included. */
	assert_int_equal(release_files_scan(g_staging, 0, &got, &e), 0);
	snprintf(p, sizeof(p), "%s/target", tmpdir_path());
	assert_int_equal(release_files_scan(p, 0, &want, &e), 0);
	assert_int_equal(got.n, want.n);
	for (size_t i = 0; i < got.n; i++) {
		assert_string_equal(got.v[i].path, want.v[i].path);
		assert_int_equal(got.v[i].type, want.v[i].type);
		assert_int_equal(got.v[i].mode, want.v[i].mode);
		assert_string_equal(got.v[i].sha256, want.v[i].sha256);
	}
	release_files_free(&got);
	release_files_free(&want);
}

static void
expect_mismatch(const struct release_files *f, const char *path_in_msg)
{
	struct err e = ERR_INIT;

	assert_int_equal(delta_assemble(tmpdir_path(), g_staging, f, &lim, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_DELTA_MISMATCH);
	if (strstr(e.msg, path_in_msg) == NULL) {
		fail_msg("'%s' not named in: %s", path_in_msg, e.msg);
	}
	assert_int_equal(fs_rmtree(g_staging), 0);
}

static void
test_assemble_mismatches(void **state)
{
	const struct release_files *f = *state;
	struct err e = ERR_INIT;
	char p[PATH_MAX];
	struct delta_limits small = lim;

	/* manifest.json v2 neither sent nor on the host. */
	stage_delta();
	expect_mismatch(f, "manifest.json");
	/* A received file with other content. */
	stage_delta();
	tmpdir_put("releases/active.new/manifest.json", "{\"v\":3}", 0644);
	expect_mismatch(f, "manifest.json");
	/* A received file files.json does not list. */
	stage_delta();
	tmpdir_put("releases/active.new/manifest.json", "{\"v\":2}", 0644);
	tmpdir_put("releases/active.new/bin/extra", "x", 0644);
	expect_mismatch(f, "bin/extra");
	/* A symlink in the delta, even one files.json lists. */
	stage_delta();
	tmpdir_put("releases/active.new/manifest.json", "{\"v\":2}", 0644);
	tmpdir_fmt(p, sizeof(p), "%s/lib", g_staging);
	assert_int_equal(mkdir(p, 0755), 0);
	tmpdir_fmt(p, sizeof(p), "%s/lib/big.link", g_staging);
	assert_int_equal(symlink("big", p), 0);
	expect_mismatch(f, "lib/big.link");
	/* The local copy was changed on disk (the index still says otherwise). */
	stage_delta();
	tmpdir_put("releases/active.new/manifest.json", "{\"v\":2}", 0644);
	tmpdir_put("releases/active/lib/big", "big shared contenT", 0644);
	expect_mismatch(f, "doc/copy"); /* the first path (in order) of that content */
	tmpdir_put("releases/active/lib/big", "big shared content", 0644);
	/* Over the limits of a full push: refused before anything is copied. */
	stage_delta();
	small.max_unpacked = 10;
	assert_int_equal(delta_assemble(tmpdir_path(), g_staging, f, &small, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_LIMIT);
	small = lim;
	small.max_entries = 3;
	assert_int_equal(delta_assemble(tmpdir_path(), g_staging, f, &small, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_LIMIT);
	assert_int_equal(fs_rmtree(g_staging), 0);
}

/* ROOT/state/NAME exists. */
static int
state_has(const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof(p), "%s/state/%s", tmpdir_path(), name);
	return lstat(p, &st) == 0;
}

/*
 * A release installed without files.json (releases/prev here) is scanned
 * once: the scan is kept in state/ under its install id, read instead of
 * hashing the tree again, rebuilt when unusable, dropped when no slot holds
 * that install any more.
 */
static void
test_index_cache(void **state)
{
	const struct release_files *f = *state;
	struct delta_index *ix = NULL;
	struct err e = ERR_INIT;
	char prev_only[DIGEST_HEX_LEN + 1], agent2[DIGEST_HEX_LEN + 1], p[PATH_MAX];
	char *out = NULL;
	size_t len = 0;

	mkd("state");
	mkd("releases/prev");
	tmpdir_put("releases/prev/only-in-prev", "prev content", 0644);
	tmpdir_put("releases/prev/manifest.json", "{\"v\":0}", 0644);
	tmpdir_put("releases/prev/release.json", "{\"id\":\"20261205T000000Z-0badcafe\",\"sha\":\"x\","
	    "\"sha256\":\"\",\"version\":\"0\",\"name\":\"a\",\"installed_at\":\"\","
	    "\"installed_by\":\"\"}", 0644);
	tmpdir_put("state/delta-index-20200101T000000Z-00000000.json", "{}", 0600); /* a gone install's */
	assert_int_equal(digest_buf("prev content", 12, prev_only), 0);
	assert_int_equal(digest_buf("agent v2", 8, agent2), 0);

	assert_int_equal(delta_index_build(tmpdir_path(), &ix, &e), 0);
	assert_true(delta_index_has(ix, prev_only));
	delta_index_free(ix);
	assert_true(state_has("delta-index-20261205T000000Z-0badcafe.json"));
	assert_false(state_has("delta-index-20200101T000000Z-00000000.json"));
	/* active has its files.json: nothing cached for it (its release.json has no id either). */
	assert_false(state_has("delta-index-.json"));

	/* The cache, not the tree, is what is read: plant another release's list there. */
	assert_int_equal(release_files_format(f, &out, &len, &e), 0);
	snprintf(p, sizeof(p), "%s/state/delta-index-20261205T000000Z-0badcafe.json", tmpdir_path());
	assert_int_equal(fs_write_atomic(p, out, len, 0600), 0);
	free(out);
	assert_int_equal(delta_index_build(tmpdir_path(), &ix, &e), 0);
	assert_true(delta_index_has(ix, agent2));
	assert_false(delta_index_has(ix, prev_only));
	delta_index_free(ix);

	/* An unusable cache is rebuilt from the tree. */
	assert_int_equal(fs_write_atomic(p, "{broken", 7, 0600), 0);
	assert_int_equal(delta_index_build(tmpdir_path(), &ix, &e), 0);
	assert_true(delta_index_has(ix, prev_only));
	assert_false(delta_index_has(ix, agent2));
	delta_index_free(ix);
	assert_int_equal(fs_read_file(p, 1 << 20, &out, &len), 0);
	assert_true(len > 7 && out[0] == '{' && strstr(out, "only-in-prev") != NULL);
	free(out);

	/* Another install in the slot: the old cache is not used and is removed. */
	tmpdir_put("releases/prev/release.json", "{\"id\":\"20261205T000001Z-0badcafe\",\"sha\":\"x\","
	    "\"sha256\":\"\",\"version\":\"0\",\"name\":\"a\",\"installed_at\":\"\","
	    "\"installed_by\":\"\"}", 0644);
	assert_int_equal(delta_index_build(tmpdir_path(), &ix, &e), 0);
	assert_true(delta_index_has(ix, prev_only));
	delta_index_free(ix);
	assert_false(state_has("delta-index-20261205T000000Z-0badcafe.json"));
	assert_true(state_has("delta-index-20261205T000001Z-0badcafe.json"));

	/* An id that is not a plain name is never a path. */
	tmpdir_put("releases/prev/release.json", "{\"id\":\"../../x\"}", 0644);
	assert_int_equal(delta_index_build(tmpdir_path(), &ix, &e), 0);
	assert_true(delta_index_has(ix, prev_only));
	delta_index_free(ix);
	snprintf(p, sizeof(p), "%s/x.json", tmpdir_path());
	assert_int_equal(access(p, F_OK), -1);
}

/* The plan with bases: each missing content's base is the file at its path on the host. */
static void
test_plan_bases(void **state)
{
	const struct release_files *f = *state;
	struct err e = ERR_INIT;
	char *body = NULL, a1[DIGEST_HEX_LEN + 1], a2[DIGEST_HEX_LEN + 1];
	char m1[DIGEST_HEX_LEN + 1], m2[DIGEST_HEX_LEN + 1];
	size_t len = 0;
	cJSON *o, *b;

	assert_int_equal(release_files_format(f, &body, &len, &e), 0);
	assert_int_equal(digest_buf("agent v1", 8, a1), 0);
	assert_int_equal(digest_buf("agent v2", 8, a2), 0);
	assert_int_equal(digest_buf("{\"v\":1}", 7, m1), 0);
	assert_int_equal(digest_buf("{\"v\":2}", 7, m2), 0);
	o = delta_plan(tmpdir_path(), body, len, 1, &e);
	assert_non_null(o);
	b = cJSON_GetObjectItemCaseSensitive(o, "bases");
	assert_true(cJSON_IsObject(b));
	assert_int_equal(cJSON_GetArraySize(b), 2);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(b, a2)->valuestring, a1);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(b, m2)->valuestring, m1);
	cJSON_Delete(o);
	/* Not asked: no bases (the answer an older master knows). */
	o = delta_plan(tmpdir_path(), body, len, 0, &e);
	assert_non_null(o);
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "bases"));
	cJSON_Delete(o);
	free(body);
}

/* The staging with bin/agent as a patch from "agent v1" (PATCH: its bytes, NULL: a real one). */
static void
stage_patch(const void *patch, size_t plen, const char *name)
{
	char p[PATH_MAX], a1[DIGEST_HEX_LEN + 1], a2[DIGEST_HEX_LEN + 1], nm[256];
	struct err e = ERR_INIT;
	void *made = NULL;

	assert_int_equal(digest_buf("agent v1", 8, a1), 0);
	assert_int_equal(digest_buf("agent v2", 8, a2), 0);
	if (patch == NULL) {
		assert_int_equal(zpatch_make("agent v1", 8, "agent v2", 8, &made, &plen, &e), 0);
		patch = made;
	}
	assert_int_equal(mkdir(g_staging, 0755), 0);
	tmpdir_fmt(p, sizeof(p), "%s/%s", g_staging, ZPATCH_DELTA_DIR);
	assert_int_equal(mkdir(p, 0755), 0);
	tmpdir_fmt(nm, sizeof(nm), "%s-%s%s", a2, a1, ZPATCH_SUFFIX);
	tmpdir_fmt(p, sizeof(p), "%s/%s/%s", g_staging, ZPATCH_DELTA_DIR, name != NULL ? name : nm);
	assert_int_equal(fs_write_atomic(p, patch, plen, 0644), 0);
	tmpdir_put("releases/active.new/manifest.json", "{\"v\":2}", 0644);
	free(made);
}

static void
test_assemble_patch(void **state)
{
	const struct release_files *f = *state;
	struct release_files got = RELEASE_FILES_INIT, want = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;
	char p[PATH_MAX];

	stage_patch(NULL, 0, NULL);
	assert_int_equal(delta_assemble(tmpdir_path(), g_staging, f, &lim, NULL, &e), 0);
	/* The tree is the target (the patches' directory is gone). */
	assert_int_equal(release_files_scan(g_staging, 0, &got, &e), 0);
	snprintf(p, sizeof(p), "%s/target", tmpdir_path());
	assert_int_equal(release_files_scan(p, 0, &want, &e), 0);
	assert_int_equal(got.n, want.n);
	for (size_t i = 0; i < got.n; i++) {
		assert_string_equal(got.v[i].path, want.v[i].path);
		assert_int_equal(got.v[i].mode, want.v[i].mode);
		assert_string_equal(got.v[i].sha256, want.v[i].sha256);
	}
	release_files_free(&got);
	release_files_free(&want);
	assert_int_equal(fs_rmtree(g_staging), 0);

	/* A corrupt patch: refused, naming the file. */
	stage_patch("\x28\xb5\x2f\xfd garbage", 12, NULL);
	expect_mismatch(f, "bin/agent");
	/* A base changed on the host since its files.json: refused (the master sends it whole). */
	tmpdir_put("releases/active/bin/agent", "agent vX", 0755);
	stage_patch(NULL, 0, NULL);
	expect_mismatch(f, "bin/agent");
	tmpdir_put("releases/active/bin/agent", "agent v1", 0755);
	/* Anything in the patches' directory that is not TARGET-BASE.zst. */
	stage_patch("x", 1, "not-a-patch.zst");
	expect_mismatch(f, ZPATCH_DELTA_DIR);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_assemble_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_assemble_mismatches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plan_bases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_assemble_patch, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
