/*
 * Unit tests for updater/trust on real files in a temporary state
 * directory: the bootstrap keyring copied into state/, fail-closed modes
 * (require_signed without a keyring, a corrupt keyring or floor file), the
 * signature check before extraction (unsigned, unknown key, floor), the
 * checks after the last byte and before the switch, the floor raised only
 * at commit and recovered from the active release after a crash, the
 * rollback check, and keyring rotation by POST /keyring (in order only;
 * a removed key's releases refused afterwards), with the crash points.
 */
#include <errno.h>
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

#include "common/fs.h"
#include "common/log.h"
#include "common/testhook.h"
#include "updater/trust.h"
#include "tests/unit/tmpdir.h"

#define SETS(dst, src) assert_int_equal(strlcpy_chk((dst), (src), sizeof(dst)), 0)
#define SHA_A "4f2d1c0b2a6e8f1d3c5b7a9e0d2f4b6a8c0e1f3d5b7a9c0e2f4d6b8a0c1e3f5d"

struct fixture {
	const char *dir;
	char state[PATH_MAX];
	char boot[PATH_MAX];
	struct sign_key *root[2];
	struct sign_key *rel[2];
};

static char g_points[512];

static void
record_point(const char *point)
{
	size_t n = strlen(g_points);

	(void)snprintf(g_points + n, sizeof(g_points) - n, "%s;", point);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("trust");
	if (f->dir == NULL) {
		return -1;
	}
	/* Sized for a short $TMPDIR: a cut path would land outside the directory. */
	if (snprintf(f->state, sizeof(f->state), "%s/state", f->dir) >= (int)sizeof(f->state) ||
	    snprintf(f->boot, sizeof(f->boot), "%s/keyring.json", f->dir) >= (int)sizeof(f->boot) ||
	    mkdir(f->state, 0700) != 0) {
		(void)tmpdir_remove();
		free(f);
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		if (sign_key_generate(&f->root[i], NULL) != 0 ||
		    sign_key_generate(&f->rel[i], NULL) != 0) {
			return -1;
		}
	}
	g_points[0] = '\0';
	testhook_set(record_point);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int rc = tmpdir_remove();

	testhook_set(NULL);
	for (int i = 0; i < 2; i++) {
		sign_key_free(f->root[i]);
		sign_key_free(f->rel[i]);
	}
	free(f);
	return rc;
}

/* A keyring document: VERSION, root ROOT, release key REL, signed by SIGNERS. */
static char *
keyring_doc(int64_t version, struct sign_key *root, struct sign_key *rel,
    struct sign_key *const *signers, size_t n, size_t *len)
{
	struct sign_keyring kr;
	char *out = NULL;

	sign_keyring_init(&kr);
	kr.version = version;
	kr.threshold = 1;
	kr.root_threshold = 1;
	SETS(kr.created_at, "2026-01-01T00:00:00Z");
	assert_int_equal(sign_keyring_add_key(&kr, 1, root, NULL, NULL), 0);
	assert_int_equal(sign_keyring_add_key(&kr, 0, rel, NULL, NULL), 0);
	assert_int_equal(sign_keyring_seal(&kr, NULL), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(sign_envelope_add(&kr.env, signers[i], NULL), 0);
	}
	assert_int_equal(sign_keyring_format(&kr, &out, len, NULL), 0);
	sign_keyring_free(&kr);
	return out;
}

static void
write_boot(struct fixture *f, int64_t version)
{
	size_t len;
	char *doc = keyring_doc(version, f->root[0], f->rel[0], f->root, 1, &len);

	assert_int_equal(fs_write_atomic(f->boot, doc, len, 0644), 0);
	free(doc);
}

/* The manifest_sha256 tsig_of() puts into its statements ("" none). */
static const char *g_tsig_files = "";

/* A .tsig for SHA_A / 1234 bytes, SV/MIN, signed by KEY. */
static char *
tsig_of(struct sign_key *key, int64_t sv, int64_t min, size_t *len)
{
	struct sign_statement st;
	struct sign_envelope env;
	char *out = NULL;

	memset(&st, 0, sizeof(st));
	memset(&env, 0, sizeof(env));
	SETS(st.name, "tandem-agent");
	SETS(st.compatible, "tandem");
	SETS(st.version, "1.2.0");
	SETS(st.sha256, SHA_A);
	SETS(st.created_at, "2026-01-01T00:00:00Z");
	st.size = 1234;
	SETS(st.manifest_sha256, g_tsig_files);
	st.security_version = sv;
	st.min_security_version = min;
	st.kinds = SIGN_KIND_AGENT;
	assert_int_equal(sign_tsig_new(&st, &env, NULL), 0);
	assert_int_equal(sign_envelope_add(&env, key, NULL), 0);
	assert_int_equal(sign_tsig_format(&env, &out, len, NULL), 0);
	sign_envelope_free(&env);
	return out;
}

static struct trust *
open_trust(struct fixture *f, int require, int boot, const struct release_info *active)
{
	struct trust_config c = { f->state, boot ? f->boot : NULL, require, NULL };
	struct trust *t = NULL;
	struct err e = ERR_INIT;

	assert_int_equal(trust_open(&c, active, &t, &e), 0);
	return t;
}

static void
test_unsigned_host(void **state)
{
	struct fixture *f = *state;
	struct trust *t = open_trust(f, 0, 0, NULL);
	struct trust_status st;
	struct trust_verdict v;
	struct release_info ri;
	struct err e = ERR_INIT;
	size_t len;
	char *tsig = tsig_of(f->rel[0], 3, 0, &len);

	trust_status(t, &st);
	assert_string_equal(st.mode, "unsigned");
	assert_int_equal(st.keyring_version, 0);
	assert_int_equal(st.floor, 0);
	assert_string_equal(st.compatible, "tandem");
	/* Unsigned: accepted; a signature without a keyring to check it: as unsigned. */
	assert_int_equal(trust_check_signature(t, NULL, 0, SHA_A, SIGN_KIND_AGENT, &v, &e), 0);
	assert_false(v.is_signed);
	assert_int_equal(trust_check_signature(t, tsig, len, SHA_A, SIGN_KIND_AGENT, &v, &e), 0);
	assert_false(v.is_signed);
	assert_int_equal(trust_check_bytes(&v, "00", 1, &e), 0);
	assert_int_equal(trust_check_files(&v, "00", &e), 0);
	memset(&ri, 0, sizeof(ri));
	trust_record(&v, &ri);
	assert_int_equal(ri.security_version, 0);
	assert_string_equal(ri.signed_by, "");
	/* A first keyring by POST /keyring (the host trusts its master already). */
	{
		size_t klen;
		int64_t ver = 0;
		char *doc = keyring_doc(4, f->root[0], f->rel[0], f->root, 1, &klen);

		assert_int_equal(trust_keyring_update(t, doc, klen, &ver, &e), 0);
		assert_int_equal(ver, 4);
		assert_non_null(strstr(g_points, "trust.keyring_written;"));
		free(doc);
	}
	/* Now the signature is checked, though not required. */
	assert_int_equal(trust_check_signature(t, tsig, len, SHA_A, SIGN_KIND_AGENT, &v, &e), 0);
	assert_true(v.is_signed);
	free(tsig);
	tsig = tsig_of(f->rel[1], 3, 0, &len);
	assert_int_equal(trust_check_signature(t, tsig, len, SHA_A, SIGN_KIND_AGENT, &v, &e), -1);
	assert_int_equal(e.kind, ERR_UNKNOWN_KEY);
	free(tsig);
	trust_free(t);
}

static void
test_fail_closed(void **state)
{
	struct fixture *f = *state;
	struct trust_status st;
	struct trust_verdict v;
	struct release_info ri;
	struct err e = ERR_INIT;
	char path[PATH_MAX], *doc;
	size_t len;
	int64_t ver;
	struct trust *t;

	/* require_signed without any keyring. */
	t = open_trust(f, 1, 0, NULL);
	trust_status(t, &st);
	assert_string_equal(st.mode, "keyring_invalid");
	assert_non_null(strstr(st.reason, "no keyring"));
	assert_int_equal(trust_check_signature(t, NULL, 0, NULL, SIGN_KIND_AGENT, &v, &e), -1);
	assert_int_equal(e.kind, ERR_KEYRING);
	assert_int_equal(err_http_status(e.kind), 503);
	memset(&ri, 0, sizeof(ri));
	assert_int_equal(trust_check_rollback(t, &ri, &e), -1);
	assert_int_equal(e.kind, ERR_KEYRING);
	/* A keyring cannot be slipped in by the master then. */
	doc = keyring_doc(1, f->root[0], f->rel[0], f->root, 1, &len);
	assert_int_equal(trust_keyring_update(t, doc, len, &ver, &e), -1);
	assert_int_equal(e.kind, ERR_KEYRING);
	free(doc);
	trust_free(t);

	/* A corrupt state/keyring.json. */
	tmpdir_fmt(path, sizeof(path), "%s/keyring.json", f->state);
	assert_int_equal(fs_write_atomic(path, "{\"v\":1", 6, 0644), 0);
	t = open_trust(f, 0, 0, NULL);
	trust_status(t, &st);
	assert_string_equal(st.mode, "keyring_invalid");
	assert_int_equal(trust_check_signature(t, NULL, 0, NULL, SIGN_KIND_AGENT, &v, &e), -1);
	assert_int_equal(e.kind, ERR_KEYRING);
	trust_free(t);
	assert_int_equal(unlink(path), 0);

	/* A corrupt state/floor.json. */
	tmpdir_fmt(path, sizeof(path), "%s/floor.json", f->state);
	assert_int_equal(fs_write_atomic(path, "{\"floor\":\"6\"}", 13, 0644), 0);
	t = open_trust(f, 0, 0, NULL);
	trust_status(t, &st);
	assert_string_equal(st.mode, "keyring_invalid");
	assert_non_null(strstr(st.reason, "floor.json"));
	trust_free(t);
	assert_int_equal(unlink(path), 0);

	/* A bootstrap keyring nobody signed. */
	doc = keyring_doc(1, f->root[0], f->rel[0], NULL, 0, &len);
	assert_int_equal(fs_write_atomic(f->boot, doc, len, 0644), 0);
	free(doc);
	t = open_trust(f, 1, 1, NULL);
	trust_status(t, &st);
	assert_string_equal(st.mode, "keyring_invalid");
	trust_free(t);
	/* A compatible string that is no name is a configuration error. */
	{
		struct trust_config c = { f->state, NULL, 0, "a b" };
		assert_int_equal(trust_open(&c, NULL, &t, &e), -1);
		assert_int_equal(e.kind, ERR_CONFIG);
	}
}

static void
test_required_host(void **state)
{
	struct fixture *f = *state;
	struct trust_status st;
	struct trust_verdict v;
	struct release_info ri;
	struct err e = ERR_INIT;
	char path[PATH_MAX], *state_doc = NULL, *boot_doc = NULL, *tsig;
	size_t len, a, b;
	struct trust *t;

	write_boot(f, 1);
	t = open_trust(f, 1, 1, NULL);
	trust_status(t, &st);
	assert_string_equal(st.mode, "required");
	assert_int_equal(st.keyring_version, 1);
	/* The bootstrap copy is now the state's, byte for byte. */
	tmpdir_fmt(path, sizeof(path), "%s/keyring.json", f->state);
	assert_int_equal(fs_read_file(path, 65536, &state_doc, &a), 0);
	assert_int_equal(fs_read_file(f->boot, 65536, &boot_doc, &b), 0);
	assert_int_equal(a, b);
	assert_memory_equal(state_doc, boot_doc, a);
	free(state_doc);
	free(boot_doc);

	/* Unsigned: refused. */
	assert_int_equal(trust_check_signature(t, NULL, 0, SHA_A, SIGN_KIND_AGENT, &v, &e), -1);
	assert_int_equal(e.kind, ERR_SIGNATURE);
	/* Signed by a release key of the keyring: accepted; the rest checked later. */
	tsig = tsig_of(f->rel[0], 6, 6, &len);
	assert_int_equal(trust_check_signature(t, tsig, len, SHA_A, SIGN_KIND_AGENT, &v, &e), 0);
	assert_true(v.is_signed);
	/* The declared sha256 of the form must be the statement's. */
	assert_int_equal(trust_check_signature(t, tsig, len,
	    "0000000000000000000000000000000000000000000000000000000000000000", SIGN_KIND_AGENT,
	    &v, &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	assert_int_equal(trust_check_signature(t, tsig, len, NULL, SIGN_KIND_UPDATER, &v, &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	assert_int_equal(trust_check_signature(t, tsig, len, SHA_A, SIGN_KIND_AGENT, &v, &e), 0);
	/* After the last byte: digest and size. */
	assert_int_equal(trust_check_bytes(&v, SHA_A, 1234, &e), 0);
	assert_int_equal(trust_check_bytes(&v, SHA_A, 1235, &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	assert_int_equal(trust_check_bytes(&v,
	    "1111111111111111111111111111111111111111111111111111111111111111", 1234, &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	/* A delta: a statement without manifest_sha256 cannot vouch for an assembled tree. */
	assert_int_equal(trust_check_files(&v, SHA_A, &e), -1);
	assert_int_equal(e.kind, ERR_DELTA_MISMATCH);
	{
		struct trust_verdict dv;
		size_t dlen;
		char *dtsig;

		g_tsig_files = "2222222222222222222222222222222222222222222222222222222222222222";
		dtsig = tsig_of(f->rel[0], 6, 6, &dlen);
		g_tsig_files = "";
		assert_int_equal(trust_check_signature(t, dtsig, dlen, SHA_A, SIGN_KIND_AGENT, &dv,
		    &e), 0);
		assert_int_equal(trust_check_files(&dv,
		    "2222222222222222222222222222222222222222222222222222222222222222", &e), 0);
		assert_int_equal(trust_check_files(&dv,
		    "3333333333333333333333333333333333333333333333333333333333333333", &e), -1);
		assert_int_equal(e.kind, ERR_DELTA_MISMATCH);
		free(dtsig);
	}
	/* Before the switch: the manifest. */
	assert_int_equal(trust_check_manifest(&v, "tandem-agent", "1.2.0", &e), 0);
	assert_int_equal(trust_check_manifest(&v, "tandem-agent", "9.9", &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	memset(&ri, 0, sizeof(ri));
	SETS(ri.id, "op-6");
	trust_record(&v, &ri);
	assert_int_equal(ri.security_version, 6);
	assert_int_equal(ri.min_security_version, 6);
	assert_string_equal(ri.signed_by, sign_key_id(f->rel[0]));
	free(tsig);

	/* The floor rises at commit only: before it, 5 still passes the check. */
	tsig = tsig_of(f->rel[0], 5, 0, &len);
	assert_int_equal(trust_check_signature(t, tsig, len, NULL, SIGN_KIND_AGENT, &v, &e), 0);
	assert_int_equal(trust_commit(t, &ri, &e), 0);
	assert_non_null(strstr(g_points, "trust.floor_written;"));
	trust_status(t, &st);
	assert_int_equal(st.floor, 6);
	assert_int_equal(trust_check_signature(t, tsig, len, NULL, SIGN_KIND_AGENT, &v, &e), -1);
	assert_int_equal(e.kind, ERR_FLOOR);
	assert_int_equal(err_http_status(e.kind), 409);
	assert_non_null(strstr(err_msg(&e), "op-6"));
	/* A manual rollback to a release of security version 5: refused too. */
	{
		struct release_info prev;

		memset(&prev, 0, sizeof(prev));
		SETS(prev.id, "op-5");
		SETS(prev.version, "1.1.0");
		prev.security_version = 5;
		assert_int_equal(trust_check_rollback(t, &prev, &e), -1);
		assert_int_equal(e.kind, ERR_FLOOR);
		assert_non_null(strstr(err_msg(&e), "security version 5"));
		prev.security_version = 6;
		assert_int_equal(trust_check_rollback(t, &prev, &e), 0);
	}
	/* A commit with a lower minimum leaves the floor. */
	ri.min_security_version = 2;
	g_points[0] = '\0';
	assert_int_equal(trust_commit(t, &ri, &e), 0);
	assert_null(strstr(g_points, "trust.floor_written"));
	trust_free(t);

	/* The floor survives a restart; the state's keyring wins over the bootstrap. */
	write_boot(f, 1);
	t = open_trust(f, 1, 1, NULL);
	trust_status(t, &st);
	assert_int_equal(st.floor, 6);
	assert_int_equal(trust_check_signature(t, tsig, len, NULL, SIGN_KIND_AGENT, &v, &e), -1);
	assert_int_equal(e.kind, ERR_FLOOR);
	trust_free(t);
	free(tsig);

	/* A crash between the commit and the floor write: the active release says 8. */
	memset(&ri, 0, sizeof(ri));
	SETS(ri.id, "op-8");
	ri.security_version = 8;
	ri.min_security_version = 8;
	t = open_trust(f, 1, 1, &ri);
	trust_status(t, &st);
	assert_int_equal(st.floor, 8);
	trust_free(t);
	t = open_trust(f, 1, 1, NULL);
	trust_status(t, &st);
	assert_int_equal(st.floor, 8); /* written, not only remembered */
	trust_free(t);
}

static void
test_keyring_rotation(void **state)
{
	struct fixture *f = *state;
	struct trust_status st;
	struct trust_verdict v;
	struct err e = ERR_INIT;
	struct sign_key *both[2];
	char *doc, *tsig, path[PATH_MAX], *before = NULL, *after = NULL;
	size_t len, tlen, blen, alen;
	int64_t ver = 0;
	struct trust *t;

	write_boot(f, 1);
	t = open_trust(f, 1, 1, NULL);
	tmpdir_fmt(path, sizeof(path), "%s/keyring.json", f->state);

	/* Out of order: version 3 while the host has 1, version 1 again. */
	doc = keyring_doc(3, f->root[0], f->rel[1], f->root, 1, &len);
	assert_int_equal(trust_keyring_update(t, doc, len, &ver, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	free(doc);
	doc = keyring_doc(1, f->root[0], f->rel[1], f->root, 1, &len);
	assert_int_equal(trust_keyring_update(t, doc, len, &ver, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	free(doc);
	/* Version 2 signed by the new root only: the old root never agreed. */
	doc = keyring_doc(2, f->root[1], f->rel[1], &f->root[1], 1, &len);
	assert_int_equal(fs_read_file(path, 65536, &before, &blen), 0);
	assert_int_equal(trust_keyring_update(t, doc, len, &ver, &e), -1);
	assert_int_equal(e.kind, ERR_UNKNOWN_KEY);
	free(doc);
	/* Refusals leave the file as it was. */
	assert_int_equal(fs_read_file(path, 65536, &after, &alen), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, alen);
	free(after);
	free(before);

	/* In order, signed by the old and the new root: rel0 removed, rel1 added. */
	both[0] = f->root[0];
	both[1] = f->root[1];
	doc = keyring_doc(2, f->root[1], f->rel[1], both, 2, &len);
	assert_int_equal(trust_keyring_update(t, doc, len, &ver, &e), 0);
	assert_int_equal(ver, 2);
	assert_int_equal(fs_read_file(path, 65536, &after, &alen), 0);
	assert_int_equal(alen, len);
	assert_memory_equal(after, doc, len);
	free(after);
	free(doc);
	trust_status(t, &st);
	assert_int_equal(st.keyring_version, 2);

	/* A release signed by the removed key is refused; by the new one accepted. */
	tsig = tsig_of(f->rel[0], 1, 0, &tlen);
	assert_int_equal(trust_check_signature(t, tsig, tlen, NULL, SIGN_KIND_AGENT, &v, &e), -1);
	assert_int_equal(e.kind, ERR_UNKNOWN_KEY);
	free(tsig);
	tsig = tsig_of(f->rel[1], 1, 0, &tlen);
	assert_int_equal(trust_check_signature(t, tsig, tlen, NULL, SIGN_KIND_AGENT, &v, &e), 0);
	free(tsig);
	trust_free(t);

	/* After a restart: version 2 from the state, not 1 from the bootstrap. */
	t = open_trust(f, 1, 1, NULL);
	trust_status(t, &st);
	assert_int_equal(st.keyring_version, 2);
	trust_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unsigned_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keyring_rotation, setup, teardown),
	};

	log_init("test_trust", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
