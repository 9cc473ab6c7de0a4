/*
 * Unit tests for master/release_sign: reading a release tarball (digest,
 * size, manifest), writing and cosigning FILE.tsig, and the per-host verdict
 * the push's dry run prints.
 */
#include <archive.h>
#include <archive_entry.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/log.h"
#include "master/release_sign.h"
#include "tests/unit/tmpdir.h"

#define SETS(dst, src) assert_int_equal(strlcpy_chk((dst), (src), sizeof(dst)), 0)

struct fixture {
	const char *dir;
	char tarball[PATH_MAX];
	struct sign_key *rel, *root, *other;
	struct sign_keyring kr;
};

static void
add_entry(struct archive *a, const char *path, const char *data, int mode)
{
	struct archive_entry *e = archive_entry_new();

	assert_non_null(e);
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, (mode_t)mode);
	archive_entry_set_size(e, (la_int64_t)strlen(data));
	assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
	assert_int_equal(archive_write_data(a, data, strlen(data)), (la_ssize_t)strlen(data));
	archive_entry_free(e);
}

/* A gzip tar release at PATH with MANIFEST (NULL: none). */
static void
make_tarball(const char *path, const char *manifest)
{
	struct archive *a = archive_write_new();

	assert_non_null(a);
	assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	add_entry(a, "bin/tandem-agent", "#!/bin/sh\n", 0755);
	if (manifest != NULL) {
		add_entry(a, "manifest.json", manifest, 0644);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sign_key *keys[1];
	char *doc = NULL;
	size_t len = 0;

	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("release_sign");
	if (f->dir == NULL) {
		return -1;
	}
	snprintf(f->tarball, sizeof(f->tarball), "%s/r.tar.gz", f->dir);
	make_tarball(f->tarball, "{\"name\":\"tandem-agent\",\"version\":\"1.0.0\","
	    "\"entrypoint\":\"bin/tandem-agent\"}");
	if (sign_key_generate(&f->rel, NULL) != 0 || sign_key_generate(&f->root, NULL) != 0 ||
	    sign_key_generate(&f->other, NULL) != 0) {
		return -1;
	}
	sign_keyring_init(&f->kr);
	f->kr.version = 2;
	f->kr.threshold = 1;
	f->kr.root_threshold = 1;
	SETS(f->kr.created_at, "2026-01-01T00:00:00Z");
	keys[0] = f->root;
	if (sign_keyring_add_key(&f->kr, 1, f->root, NULL, NULL) != 0 ||
	    sign_keyring_add_key(&f->kr, 0, f->rel, NULL, NULL) != 0 ||
	    sign_keyring_seal(&f->kr, NULL) != 0 || sign_envelope_add(&f->kr.env, keys[0], NULL) != 0 ||
	    sign_keyring_format(&f->kr, &doc, &len, NULL) != 0) {
		return -1;
	}
	sign_keyring_free(&f->kr);
	if (sign_keyring_parse(doc, len, 0, &f->kr, NULL) != 0) {
		return -1;
	}
	free(doc);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int rc = tmpdir_remove();

	sign_key_free(f->rel);
	sign_key_free(f->root);
	sign_key_free(f->other);
	sign_keyring_free(&f->kr);
	free(f);
	return rc;
}

static void
test_inspect(void **state)
{
	struct fixture *f = *state;
	struct release_sign_info info;
	struct err e = ERR_INIT;
	char hex[65], p[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(release_sign_inspect(f->tarball, &info, &e), 0);
	assert_string_equal(info.name, "tandem-agent");
	assert_string_equal(info.version, "1.0.0");
	assert_int_equal(info.kinds, SIGN_KIND_AGENT);
	assert_int_equal(fs_read_file(f->tarball, 1 << 20, &buf, &len), 0);
	assert_int_equal(digest_buf(buf, len, hex), 0);
	assert_string_equal(info.sha256, hex);
	assert_int_equal(info.size, len);
	free(buf);

	/* Not a release: no manifest, not a tarball, missing. */
	snprintf(p, sizeof(p), "%s/nomf.tar.gz", f->dir);
	make_tarball(p, NULL);
	assert_int_equal(release_sign_inspect(p, &info, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_non_null(strstr(err_msg(&e), "no manifest.json"));
	snprintf(p, sizeof(p), "%s/badmf.tar.gz", f->dir);
	make_tarball(p, "{\"name\":\"../x\",\"version\":\"1\",\"entrypoint\":\"bin/tandem-agent\"}");
	assert_int_equal(release_sign_inspect(p, &info, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	snprintf(p, sizeof(p), "%s/plain", f->dir);
	assert_int_equal(fs_write_atomic(p, "hello", 5, 0644), 0);
	assert_int_equal(release_sign_inspect(p, &info, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	snprintf(p, sizeof(p), "%s/missing", f->dir);
	assert_int_equal(release_sign_inspect(p, &info, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
}

static void
test_sign_cosign_force(void **state)
{
	struct fixture *f = *state;
	struct release_sign_opts o;
	struct release_sign_result r;
	struct sign_key *keys[2] = { f->rel, f->other };
	struct err e = ERR_INIT;
	char tpath[PATH_MAX], *buf = NULL;
	size_t len = 0;
	struct stat st;

	memset(&o, 0, sizeof(o));
	o.file = f->tarball;
	o.keys = keys;
	o.nkeys = 1;
	o.security_version = 5;
	o.min_security_version = 4;
	assert_int_equal(release_sign(&o, &r, &e), 0);
	assert_int_equal(release_sign_tsig_path(f->tarball, tpath, sizeof(tpath)), 0);
	assert_string_equal(r.path, tpath);
	assert_int_equal(stat(tpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(r.nsigs, 1);
	assert_string_equal(r.st.compatible, SIGN_DEFAULT_COMPATIBLE);
	assert_int_equal(r.st.security_version, 5);
	assert_string_equal(r.st.expires_at, "");

	/* Again without force: refused, file unchanged. */
	assert_int_equal(release_sign(&o, &r, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	/* Cosign adds the second key to the same statement. */
	o.cosign = 1;
	o.keys = &keys[1];
	assert_int_equal(release_sign(&o, &r, &e), 0);
	assert_int_equal(r.nsigs, 2);
	assert_string_equal(r.keyids[1], sign_key_id(f->other));
	assert_int_equal(r.st.security_version, 5);
	/* The tsig file holds a statement the keyring accepts. */
	assert_int_equal(release_sign_read_tsig(tpath, &buf, &len, &e), 1);
	{
		struct sign_want w;
		struct sign_verdict v;

		memset(&w, 0, sizeof(w));
		w.sha256 = r.st.sha256;
		w.size = r.st.size;
		w.kind = SIGN_KIND_AGENT;
		assert_int_equal(sign_release_check(&f->kr, buf, len, &w, &v, &e), 0);
		assert_int_equal(v.nsigned, 1); /* "other" is no release key of the keyring */
	}
	free(buf);

	/* Cosigning a file whose bytes changed since: refused. */
	make_tarball(f->tarball, "{\"name\":\"tandem-agent\",\"version\":\"1.0.1\","
	    "\"entrypoint\":\"bin/tandem-agent\"}");
	{
		struct sign_key *third = NULL;
		assert_int_equal(sign_key_generate(&third, NULL), 0);
		o.keys = &third;
		assert_int_equal(release_sign(&o, &r, &e), -1);
		assert_int_equal(e.kind, ERR_STATEMENT);
		assert_non_null(strstr(err_msg(&e), "describes other bytes"));
		sign_key_free(third);
	}
	/* Force replaces the statement. */
	o.cosign = 0;
	o.force = 1;
	o.keys = keys;
	o.compatible = "router-v2";
	assert_int_equal(release_sign(&o, &r, &e), 0);
	assert_string_equal(r.st.version, "1.0.1");
	assert_string_equal(r.st.compatible, "router-v2");
	assert_int_equal(r.nsigs, 1);
	/* Cosign of a file with no signature yet. */
	o.force = 0;
	o.cosign = 1;
	o.out = "/nonexistent-dir/x.tsig";
	assert_int_equal(release_sign(&o, &r, &e), -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
}

static void
test_verdict(void **state)
{
	struct fixture *f = *state;
	struct release_sign_opts o;
	struct release_sign_result r;
	struct release_sign_host h = { "required", 0, 2, "tandem" };
	struct sign_key *keys[1] = { f->rel };
	struct sign_keyring empty;
	struct err e = ERR_INIT;
	char text[512], *buf = NULL;
	size_t len = 0;

	memset(&o, 0, sizeof(o));
	o.file = f->tarball;
	o.keys = keys;
	o.nkeys = 1;
	o.security_version = 5;
	assert_int_equal(release_sign(&o, &r, &e), 0);
	assert_int_equal(release_sign_read_tsig(r.path, &buf, &len, &e), 1);

#define VERDICT(tsig) release_sign_verdict(&f->kr, (tsig), (tsig) != NULL ? len : 0, \
	r.st.sha256, (uint64_t)r.st.size, SIGN_KIND_AGENT, &h, text, sizeof(text))
	assert_int_equal(VERDICT(buf), 1);
	assert_non_null(strstr(text, "signature ok: security version 5"));
	assert_null(strstr(text, "keyring version"));
	/* The host has an older keyring. */
	h.keyring_version = 1;
	assert_int_equal(VERDICT(buf), 1);
	assert_non_null(strstr(text, "swarm keyring push"));
	h.keyring_version = 2;
	/* Below the floor, another compatible string, unsigned. */
	h.floor = 6;
	assert_int_equal(VERDICT(buf), 0);
	assert_non_null(strstr(text, "below_security_floor"));
	h.floor = 0;
	h.compatible = "router";
	assert_int_equal(VERDICT(buf), 0);
	assert_non_null(strstr(text, "statement_mismatch"));
	h.compatible = "tandem";
	assert_int_equal(VERDICT((const char *)NULL), 0);
	assert_non_null(strstr(text, "requires signatures"));
	/* A host that does not require signatures takes an unsigned release... */
	h.mode = "unsigned";
	assert_int_equal(VERDICT((const char *)NULL), 1);
	/* ... unless its floor says otherwise. */
	h.floor = 1;
	assert_int_equal(VERDICT((const char *)NULL), 0);
	h.floor = 0;
	/* Without a keyring it cannot check one. */
	h.keyring_version = 0;
	assert_int_equal(VERDICT(buf), 1);
	assert_non_null(strstr(text, "no keyring"));
	/* An updater from before signatures; a broken keyring. */
	h.mode = "";
	assert_int_equal(VERDICT(buf), 1);
	assert_non_null(strstr(text, "does not check"));
	h.mode = "keyring_invalid";
	assert_int_equal(VERDICT(buf), 0);
	/* The master without a keyring cannot say. */
	h.mode = "required";
	h.keyring_version = 2;
	sign_keyring_init(&empty);
	assert_int_equal(release_sign_verdict(&empty, buf, len, r.st.sha256, (uint64_t)r.st.size,
	    SIGN_KIND_AGENT, &h, text, sizeof(text)), 1);
	assert_non_null(strstr(text, "not checked"));
#undef VERDICT
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inspect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_cosign_force, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verdict, setup, teardown),
	};

	log_init("test_release_sign", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
