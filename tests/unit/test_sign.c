/*
 * Unit tests for pki/sign: release keys on disk, the statement and .tsig
 * formats (strict parsers, canonical base64), the acceptance rule of a
 * signed release (threshold with each keyid counted once, unknown keys,
 * expiry, what the statement must match, the security floor), a signature
 * made by `openssl dgst -sha256 -sign` (fixed fixture), and keyring
 * rotation: N -> N+1 accepted only with both thresholds, N -> N+2, N -> N
 * and N -> N-1 refused.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/util.h"
#include "pki/sign.h"
#include "tests/unit/tmpdir.h"

#define SHA_A "4f2d1c0b2a6e8f1d3c5b7a9e0d2f4b6a8c0e1f3d5b7a9c0e2f4d6b8a0c1e3f5d"
#define SHA_B "0000000000000000000000000000000000000000000000000000000000000001"

/* Made with: openssl ecparam -name prime256v1 -genkey; openssl dgst -sha256 -sign. */
static const char ossl_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEu7hvfXwwhbbkb+/lI076TECqPaW+\n"
    "/ouiDbXXy9REuclLLomFLLnxFmVHsh/0gRc8PUFgIoBACjUxpLJPQFMhWg==\n"
    "-----END PUBLIC KEY-----\n";
static const char ossl_keyid[] =
    "e3a2ce6c99ab36e3e1431a342cc2e07ece794e03661eaf3d744e11cef138a486";
static const char ossl_statement[] =
    "{\"v\":1,\"type\":\"tandem-release\",\"name\":\"tandem-agent\",\"compatible\":\"tandem\","
    "\"version\":\"1.2.0\",\"sha256\":\"" SHA_A "\",\"size\":1234,\"security_version\":7,"
    "\"min_security_version\":6,\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\","
    "\"expires_at\":null}";
static const char ossl_sig_b64[] =
    "MEYCIQC+AWyzzwPInyhfGiL7FxCuAtT4EiuohucH9mUaxJZXRAIhAMNMYuTMtYgItoiaptKJP9ZFD5rVTWmocNmdLr9Fxqt4";

/* Copy a test string into a char array (it always fits). */
#define SETS(dst, src) assert_int_equal(strlcpy_chk((dst), (src), sizeof(dst)), 0)

struct fixture {
	const char *dir;
	struct sign_key *root[3];
	struct sign_key *rel[3];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("sign");
	if (f->dir == NULL) {
		free(f);
		return -1;
	}
	for (int i = 0; i < 3; i++) {
		if (sign_key_generate(&f->root[i], NULL) != 0 ||
		    sign_key_generate(&f->rel[i], NULL) != 0) {
			return -1;
		}
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (tmpdir_remove() != 0) {
		return -1;
	}
	for (int i = 0; i < 3; i++) {
		sign_key_free(f->root[i]);
		sign_key_free(f->rel[i]);
	}
	free(f);
	return 0;
}

static void
path_in(const struct fixture *f, const char *name, char *buf, size_t len)
{
	assert_true((size_t)snprintf(buf, len, "%s/%s", f->dir, name) < len);
}

static void
statement_init(struct sign_statement *st)
{
	memset(st, 0, sizeof(*st));
	SETS(st->name, "tandem-agent");
	SETS(st->compatible, "tandem");
	SETS(st->version, "1.2.0");
	SETS(st->sha256, SHA_A);
	st->size = 1234;
	st->security_version = 7;
	st->min_security_version = 6;
	st->kinds = SIGN_KIND_AGENT;
	SETS(st->created_at, "2026-01-01T00:00:00Z");
}

/* A .tsig of ST signed by KEYS[0..N) (NULL entries skipped); *LEN bytes, malloc'd. */
static char *
tsig_of(const struct sign_statement *st, struct sign_key *const *keys, size_t n, size_t *len)
{
	struct sign_envelope env;
	char *out = NULL;

	memset(&env, 0, sizeof(env));
	assert_int_equal(sign_tsig_new(st, &env, NULL), 0);
	for (size_t i = 0; i < n; i++) {
		if (keys[i] != NULL) {
			assert_int_equal(sign_envelope_add(&env, keys[i], NULL), 0);
		}
	}
	assert_int_equal(sign_tsig_format(&env, &out, len, NULL), 0);
	sign_envelope_free(&env);
	return out;
}

/* A keyring of VERSION with the given roots and release keys, signed by SIGNERS. */
static char *
keyring_of(int64_t version, struct sign_key *const *roots, size_t nroot,
    struct sign_key *const *rels, size_t nrel, int threshold, int root_threshold,
    struct sign_key *const *signers, size_t nsigners, size_t *len)
{
	struct sign_keyring kr;
	char *out = NULL;

	sign_keyring_init(&kr);
	kr.version = version;
	kr.threshold = threshold;
	kr.root_threshold = root_threshold;
	SETS(kr.created_at, "2026-01-01T00:00:00Z");
	for (size_t i = 0; i < nroot; i++) {
		assert_int_equal(sign_keyring_add_key(&kr, 1, roots[i], NULL, NULL), 0);
	}
	for (size_t i = 0; i < nrel; i++) {
		assert_int_equal(sign_keyring_add_key(&kr, 0, rels[i], NULL, NULL), 0);
	}
	assert_int_equal(sign_keyring_seal(&kr, NULL), 0);
	for (size_t i = 0; i < nsigners; i++) {
		assert_int_equal(sign_envelope_add(&kr.env, signers[i], NULL), 0);
	}
	assert_int_equal(sign_keyring_format(&kr, &out, len, NULL), 0);
	sign_keyring_free(&kr);
	return out;
}

static void
keyring_load(const char *buf, size_t len, struct sign_keyring *kr)
{
	struct err e = ERR_INIT;

	sign_keyring_init(kr);
	if (sign_keyring_parse(buf, len, 0, kr, &e) != 0) {
		fail_msg("keyring refused: %s", err_msg(&e));
	}
}

static void
want_init(struct sign_want *w)
{
	memset(w, 0, sizeof(*w));
	w->compatible = "tandem";
	w->sha256 = SHA_A;
	w->size = 1234;
	w->kind = SIGN_KIND_AGENT;
	w->floor = 0;
	w->now = 1767225600; /* 2026-01-01 */
}

/* ---- keys ---- */

static void
test_key_files(void **state)
{
	struct fixture *f = *state;
	struct sign_key *k = NULL, *priv = NULL, *pub = NULL, *pub2 = NULL;
	struct err e = ERR_INIT;
	char kp[PATH_MAX], pp[PATH_MAX];
	struct stat st;

	path_in(f, "release.key", kp, sizeof(kp));
	path_in(f, "release.pub", pp, sizeof(pp));
	assert_int_equal(sign_key_generate(&k, NULL), 0);
	assert_true(sign_key_is_private(k));
	assert_int_equal(strlen(sign_key_id(k)), SIGN_KEYID_LEN);
	assert_int_equal(sign_key_write(k, kp, pp, 0, &e), 0);
	assert_int_equal(stat(kp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(pp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* Never replaced without force. */
	assert_int_equal(sign_key_write(k, kp, pp, 0, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);

	assert_int_equal(sign_key_load_private(kp, &priv, &e), 0);
	assert_true(sign_key_is_private(priv));
	assert_string_equal(sign_key_id(priv), sign_key_id(k));
	assert_int_equal(sign_key_load_public(pp, &pub, &e), 0);
	assert_false(sign_key_is_private(pub));
	assert_string_equal(sign_key_id(pub), sign_key_id(k));
	/* A private key file gives its public half. */
	assert_int_equal(sign_key_load_public(kp, &pub2, &e), 0);
	assert_false(sign_key_is_private(pub2));
	assert_string_equal(sign_key_id(pub2), sign_key_id(k));
	/* A public key cannot sign. */
	struct sign_envelope env;
	struct sign_statement s;
	memset(&env, 0, sizeof(env));
	statement_init(&s);
	assert_int_equal(sign_tsig_new(&s, &env, NULL), 0);
	assert_int_equal(sign_envelope_add(&env, pub, &e), -1);
	assert_int_equal(sign_envelope_add(&env, priv, &e), 0);
	/* ... and one key signs once. */
	assert_int_equal(sign_envelope_add(&env, k, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	sign_envelope_free(&env);
	sign_key_free(k);
	sign_key_free(priv);
	sign_key_free(pub);
	sign_key_free(pub2);
}

static void
test_key_refusals(void **state)
{
	struct fixture *f = *state;
	struct sign_key *k = NULL;
	struct err e = ERR_INIT;
	char p[PATH_MAX];
	/* An RSA public key: not P-256. */
	static const char rsa_pub[] =
	    "-----BEGIN PUBLIC KEY-----\n"
	    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC0LxXwaziTtQsfdvxpfgreYxTC\n"
	    "gUfp/AB2hXvfY8XDmVj9zYdnDmi7llH7oJOQXlgqpxwGO3rKDaCbFmLslffS0SLU\n"
	    "0Tj/QWb9UyAVKRhIT/MnIT6zXNJ8bHiFcw6nhsK8viqQOAb3BRSEs10SheKFWGKA\n"
	    "pp78qNn8cT1tzJuMDQIDAQAB\n"
	    "-----END PUBLIC KEY-----\n";
	/* A P-384 key: EC, but not the curve we sign with. */
	static const char p384_pub[] =
	    "-----BEGIN PUBLIC KEY-----\n"
	    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEwcqtHH9AKXMqe2liWLQKVrOh4VGd8NM6\n"
	    "37/wRVK/TNzFWRAgdNJmGtqkHj2z/ywf8QqSwqRo/P41UZIH2N73DBbbjeOMf0eY\n"
	    "MgG2AxZzVXARzsepiFmaAjbYUPrKJ9NU\n"
	    "-----END PUBLIC KEY-----\n";

	path_in(f, "rsa.pub", p, sizeof(p));
	assert_int_equal(fs_write_atomic(p, rsa_pub, strlen(rsa_pub), 0644), 0);
	assert_int_equal(sign_key_load_public(p, &k, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_non_null(strstr(err_msg(&e), "P-256"));
	path_in(f, "p384.pub", p, sizeof(p));
	assert_int_equal(fs_write_atomic(p, p384_pub, strlen(p384_pub), 0644), 0);
	assert_int_equal(sign_key_load_public(p, &k, &e), -1);
	assert_non_null(strstr(err_msg(&e), "P-256"));
	path_in(f, "junk", p, sizeof(p));
	assert_int_equal(fs_write_atomic(p, "junk", 4, 0644), 0);
	assert_int_equal(sign_key_load_public(p, &k, &e), -1);
	assert_int_equal(sign_key_load_private(p, &k, &e), -1);
	path_in(f, "missing", p, sizeof(p));
	assert_int_equal(sign_key_load_private(p, &k, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_null(k);
}

/* ---- statements and .tsig ---- */

static void
test_statement_round_trip(void **state)
{
	struct sign_statement st, back;
	struct err e = ERR_INIT;
	char *text = NULL;
	size_t len = 0;

	(void)state;
	statement_init(&st);
	st.kinds = SIGN_KIND_AGENT | SIGN_KIND_UPDATER;
	SETS(st.manifest_sha256, SHA_B);
	SETS(st.expires_at, "2027-01-01T00:00:00Z");
	assert_int_equal(sign_statement_format(&st, &text, &len, &e), 0);
	assert_int_equal(sign_statement_parse(text, len, &back, &e), 0);
	assert_memory_equal(&st, &back, sizeof(st));
	free(text);
	/* The fixture's bytes (made outside) parse as they are. */
	assert_int_equal(sign_statement_parse(ossl_statement, strlen(ossl_statement), &back, &e), 0);
	assert_string_equal(back.version, "1.2.0");
	assert_int_equal(back.security_version, 7);
	assert_int_equal(back.kinds, SIGN_KIND_AGENT);
	assert_string_equal(back.expires_at, "");
	assert_string_equal(back.manifest_sha256, "");
}

static void
test_statement_refusals(void **state)
{
	static const char *const bad[] = {
		/* duplicate key */
		"{\"v\":1,\"v\":1,\"type\":\"tandem-release\"}",
		/* trailing data */
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}x",
		/* wrong type of size */
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":\"1\",\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		/* unknown key */
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null,\"x\":1}",
		/* another document type (a keyring's signature must not pass as a release's) */
		"{\"v\":1,\"type\":\"tandem-keyring\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		/* min above security version */
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":2,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		/* upper-case digest */
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"4F2D1C0B2A6E8F1D3C5B7A9E0D2F4B6A8C0E1F3D5B7A9C0E2F4D6B8A0C1E3F5D\","
		"\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		/* a kind twice, an unknown kind, none */
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\",\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"root\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		/* a name that could be a path */
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"../a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		/* a date that is not one */
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-02-30T00:00:00Z\",\"expires_at\":null}",
		/* negative size, a second format version */
		"{\"v\":1,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":-1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		"{\"v\":2,\"type\":\"tandem-release\",\"name\":\"a\",\"compatible\":\"c\",\"version\":\"1\","
		"\"sha256\":\"" SHA_A "\",\"size\":1,\"security_version\":1,\"min_security_version\":0,"
		"\"kinds\":[\"agent\"],\"created_at\":\"2026-01-01T00:00:00Z\",\"expires_at\":null}",
		"[]",
		"",
	};
	struct sign_statement st;
	struct err e = ERR_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		memset(&st, 0x5a, sizeof(st));
		err_clear(&e);
		if (sign_statement_parse(bad[i], strlen(bad[i]), &st, &e) != -1) {
			fail_msg("statement %zu accepted", i);
		}
		assert_int_equal(e.kind, ERR_SIGNATURE);
		assert_non_null(strstr(err_msg(&e), "statement"));
		/* Nothing written on failure. */
		assert_int_equal(((unsigned char *)&st)[0], 0x5a);
	}
}

static void
test_tsig_round_trip_and_refusals(void **state)
{
	struct fixture *f = *state;
	struct sign_statement st, back;
	struct sign_envelope env;
	struct err e = ERR_INIT;
	char *text;
	size_t len;

	statement_init(&st);
	text = tsig_of(&st, f->rel, 2, &len);
	memset(&env, 0, sizeof(env));
	assert_int_equal(sign_tsig_parse(text, len, &env, &back, &e), 0);
	assert_memory_equal(&st, &back, sizeof(st));
	assert_int_equal(env.nsigs, 2);
	assert_true(sign_envelope_has(&env, sign_key_id(f->rel[1])));
	assert_false(sign_envelope_has(&env, sign_key_id(f->rel[2])));
	sign_envelope_free(&env);
	free(text);

	static const char *const bad[] = {
		/* base64 with a line break inside (mbedTLS would take it) */
		"{\"v\":1,\"statement\":\"e30=\\n\",\"signatures\":[]}",
		/* not base64 */
		"{\"v\":1,\"statement\":\"!!!!\",\"signatures\":[]}",
		/* payload is not a statement */
		"{\"v\":1,\"statement\":\"e30=\",\"signatures\":[]}",
		/* unknown algorithm, upper-case keyid, no signature bytes */
		"{\"v\":1,\"statement\":\"e30=\",\"signatures\":[{\"keyid\":\"" SHA_A "\",\"alg\":\"rsa\",\"sig\":\"AA==\"}]}",
		"{\"v\":1,\"statement\":\"e30=\",\"signatures\":[{\"keyid\":\"4F2D1C0B2A6E8F1D3C5B7A9E0D2F4B6A8C0E1F3D5B7A9C0E2F4D6B8A0C1E3F5D\",\"alg\":\"ecdsa-p256-sha256\",\"sig\":\"AA==\"}]}",
		"{\"v\":1,\"statement\":\"e30=\",\"signatures\":[{\"keyid\":\"" SHA_A "\",\"alg\":\"ecdsa-p256-sha256\",\"sig\":\"\"}]}",
		/* the keyring's payload key */
		"{\"v\":1,\"keyring\":\"e30=\",\"signatures\":[]}",
		"{\"v\":1,\"statement\":\"e30=\",\"signatures\":{}}",
		"{\"v\":1,\"statement\":\"e30=\",\"signatures\":[],\"extra\":true}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		memset(&env, 0, sizeof(env));
		err_clear(&e);
		if (sign_tsig_parse(bad[i], strlen(bad[i]), &env, &back, &e) != -1) {
			fail_msg("tsig %zu accepted", i);
		}
		assert_int_equal(e.kind, ERR_SIGNATURE);
		assert_null(env.payload);
	}
}

/* ---- the acceptance rule ---- */

static void
test_release_check_threshold(void **state)
{
	struct fixture *f = *state;
	struct sign_keyring kr;
	struct sign_statement st;
	struct sign_verdict v;
	struct sign_want w;
	struct err e = ERR_INIT;
	char *kbuf, *t;
	size_t klen, tlen;

	/* Three release keys, two signatures needed. */
	kbuf = keyring_of(1, f->root, 1, f->rel, 3, 2, 1, f->root, 1, &klen);
	keyring_load(kbuf, klen, &kr);
	free(kbuf);
	assert_int_equal(kr.threshold, 2);
	statement_init(&st);
	want_init(&w);

	/* One signature: too few. */
	t = tsig_of(&st, f->rel, 1, &tlen);
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, &v, &e), -1);
	assert_int_equal(e.kind, ERR_SIGNATURE);
	free(t);

	/* The same key's signature twice counts once (TUF). */
	{
		struct sign_envelope env;
		char *one;
		size_t onelen;

		one = tsig_of(&st, f->rel, 1, &onelen);
		memset(&env, 0, sizeof(env));
		assert_int_equal(sign_tsig_parse(one, onelen, &env, &st, &e), 0);
		env.sigs[1] = env.sigs[0];
		env.nsigs = 2;
		assert_int_equal(sign_tsig_format(&env, &t, &tlen, &e), 0);
		assert_int_equal(sign_release_check(&kr, t, tlen, &w, &v, &e), -1);
		assert_int_equal(e.kind, ERR_SIGNATURE);
		assert_non_null(strstr(err_msg(&e), "1 valid signature"));
		free(t);
		free(one);
		sign_envelope_free(&env);
	}

	/* Two distinct keys: accepted; the verdict names them. */
	t = tsig_of(&st, f->rel, 2, &tlen);
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, &v, &e), 0);
	assert_int_equal(v.nsigned, 2);
	assert_string_equal(v.signed_by[0], sign_key_id(f->rel[0]));
	assert_string_equal(v.st.version, "1.2.0");
	free(t);

	/* One good signature plus a root key's: roots do not sign releases. */
	{
		struct sign_key *mix[2] = { f->rel[0], f->root[0] };
		t = tsig_of(&st, mix, 2, &tlen);
		assert_int_equal(sign_release_check(&kr, t, tlen, &w, &v, &e), -1);
		assert_int_equal(e.kind, ERR_SIGNATURE);
		free(t);
	}
	sign_keyring_free(&kr);
}

static void
test_release_check_refusals(void **state)
{
	struct fixture *f = *state;
	struct sign_keyring kr;
	struct sign_statement st;
	struct sign_want w;
	struct err e = ERR_INIT;
	char *kbuf, *t;
	size_t klen, tlen;

	kbuf = keyring_of(1, f->root, 1, f->rel, 1, 1, 1, f->root, 1, &klen);
	keyring_load(kbuf, klen, &kr);
	free(kbuf);
	statement_init(&st);
	want_init(&w);

	/* Signed by a key the keyring does not list (e.g. the master's TLS key). */
	t = tsig_of(&st, &f->rel[2], 1, &tlen);
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_UNKNOWN_KEY);
	free(t);
	/* No signature at all. */
	t = tsig_of(&st, NULL, 0, &tlen);
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_SIGNATURE);
	free(t);

	/* The statement changed after signing: its signature no longer holds. */
	{
		struct sign_envelope env;
		struct sign_statement other;
		char *good, *text;
		size_t goodlen, textlen;

		good = tsig_of(&st, f->rel, 1, &goodlen);
		memset(&env, 0, sizeof(env));
		assert_int_equal(sign_tsig_parse(good, goodlen, &env, &other, &e), 0);
		other.security_version = 99;
		assert_int_equal(sign_statement_format(&other, &text, &textlen, &e), 0);
		free(env.payload);
		env.payload = (unsigned char *)text;
		env.payload_len = textlen;
		assert_int_equal(sign_tsig_format(&env, &t, &tlen, &e), 0);
		assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
		assert_int_equal(e.kind, ERR_SIGNATURE);
		sign_envelope_free(&env);
		free(good);
		free(t);
	}

	/* Valid signature, but the statement is not for this push or host. */
	t = tsig_of(&st, f->rel, 1, &tlen);
	w.sha256 = SHA_B;
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	want_init(&w);
	w.sha256 = "4F2D1C0B2A6E8F1D3C5B7A9E0D2F4B6A8C0E1F3D5B7A9C0E2F4D6B8A0C1E3F5D";
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), 0);
	want_init(&w);
	w.size = 1235;
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	want_init(&w);
	w.compatible = "router-v2";
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	want_init(&w);
	w.kind = SIGN_KIND_UPDATER;
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	/* The floor: equal passes, above refuses with 409's kind. */
	want_init(&w);
	w.floor = 7;
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), 0);
	w.floor = 8;
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_FLOOR);
	assert_int_equal(err_http_status(e.kind), 409);
	free(t);

	/* Expiry, when the statement has one. */
	SETS(st.expires_at, "2026-01-02T00:00:00Z");
	t = tsig_of(&st, f->rel, 1, &tlen);
	want_init(&w);
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), 0);
	w.now += 2 * 86400;
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_EXPIRED);
	free(t);
	sign_keyring_free(&kr);

	/* A release key past its not_after no longer counts. */
	{
		struct sign_keyring k2;
		char *out;
		size_t outlen;

		sign_keyring_init(&k2);
		k2.version = 1;
		k2.threshold = 1;
		k2.root_threshold = 1;
		SETS(k2.created_at, "2026-01-01T00:00:00Z");
		assert_int_equal(sign_keyring_add_key(&k2, 1, f->root[0], NULL, &e), 0);
		assert_int_equal(sign_keyring_add_key(&k2, 0, f->rel[0], "2026-06-01T00:00:00Z", &e), 0);
		assert_int_equal(sign_keyring_seal(&k2, &e), 0);
		assert_int_equal(sign_envelope_add(&k2.env, f->root[0], &e), 0);
		assert_int_equal(sign_keyring_format(&k2, &out, &outlen, &e), 0);
		sign_keyring_free(&k2);
		keyring_load(out, outlen, &k2);
		free(out);
		assert_string_equal(k2.rel[0].not_after, "2026-06-01T00:00:00Z");
		st.expires_at[0] = '\0';
		t = tsig_of(&st, f->rel, 1, &tlen);
		want_init(&w);
		assert_int_equal(sign_release_check(&k2, t, tlen, &w, NULL, &e), 0);
		w.now += 365 * 86400;
		assert_int_equal(sign_release_check(&k2, t, tlen, &w, NULL, &e), -1);
		assert_int_equal(e.kind, ERR_SIGNATURE);
		assert_non_null(strstr(err_msg(&e), "not_after"));
		free(t);
		sign_keyring_free(&k2);
	}
	/* No keyring: nothing can be checked. */
	sign_keyring_init(&kr);
	t = tsig_of(&st, f->rel, 1, &tlen);
	assert_int_equal(sign_release_check(&kr, t, tlen, &w, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_KEYRING);
	free(t);
}

static void
test_statement_match(void **state)
{
	struct sign_statement st;
	struct err e = ERR_INIT;

	(void)state;
	statement_init(&st);
	assert_int_equal(sign_statement_match(&st, "tandem-agent", "1.2.0", &e), 0);
	assert_int_equal(sign_statement_match(&st, "tandem-agent", "1.2.1", &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
	assert_int_equal(sign_statement_match(&st, "other", "1.2.0", &e), -1);
	assert_int_equal(e.kind, ERR_STATEMENT);
}

/* A signature made by `openssl dgst -sha256 -sign` verifies here. */
static void
test_openssl_signature(void **state)
{
	struct fixture *f = *state;
	struct sign_key *ossl = NULL;
	struct sign_keyring kr;
	struct sign_verdict v;
	struct sign_want w;
	struct err e = ERR_INIT;
	char p[PATH_MAX], *kbuf, *t = NULL;
	size_t klen;
	int n;

	path_in(f, "ossl.pub", p, sizeof(p));
	assert_int_equal(fs_write_atomic(p, ossl_pub, strlen(ossl_pub), 0644), 0);
	assert_int_equal(sign_key_load_public(p, &ossl, &e), 0);
	/* keyid = sha256 of the SPKI DER, as `openssl pkey -pubin -outform DER | sha256sum`. */
	assert_string_equal(sign_key_id(ossl), ossl_keyid);
	kbuf = keyring_of(1, f->root, 1, &ossl, 1, 1, 1, f->root, 1, &klen);
	keyring_load(kbuf, klen, &kr);
	free(kbuf);

	/* The .tsig around openssl's bytes, by hand. */
	{
		struct sign_envelope env;
		struct sign_statement st;

		memset(&env, 0, sizeof(env));
		statement_init(&st);
		assert_int_equal(sign_tsig_new(&st, &env, &e), 0);
		/* Our writer produces exactly the fixture's statement bytes. */
		assert_int_equal(env.payload_len, strlen(ossl_statement));
		assert_memory_equal(env.payload, ossl_statement, env.payload_len);
		sign_envelope_free(&env);
	}
	{
		struct sign_envelope env;
		struct sign_statement st;
		char *out;
		size_t outlen;
		const char *q;

		memset(&env, 0, sizeof(env));
		statement_init(&st);
		assert_int_equal(sign_tsig_new(&st, &env, &e), 0);
		assert_int_equal(sign_tsig_format(&env, &out, &outlen, &e), 0);
		/* Splice openssl's signature into the empty signature list. */
		q = strstr(out, "\"signatures\":");
		assert_non_null(q);
		size_t cap = outlen + 512;
		t = malloc(cap);
		assert_non_null(t);
		n = snprintf(t, cap, "%.*s\"signatures\":[{\"keyid\":\"%s\",\"alg\":\"%s\","
		    "\"sig\":\"%s\"}]}", (int)(q - out), out, ossl_keyid, SIGN_ALG, ossl_sig_b64);
		assert_true(n > 0 && (size_t)n < cap);
		free(out);
		sign_envelope_free(&env);
	}
	want_init(&w);
	if (sign_release_check(&kr, t, strlen(t), &w, &v, &e) != 0) {
		fail_msg("openssl's signature refused: %s", err_msg(&e));
	}
	assert_int_equal(v.nsigned, 1);
	assert_string_equal(v.signed_by[0], ossl_keyid);
	free(t);
	sign_keyring_free(&kr);
	sign_key_free(ossl);
}

/* ---- keyrings ---- */

static void
test_keyring_parse_rules(void **state)
{
	struct fixture *f = *state;
	struct sign_keyring kr;
	struct err e = ERR_INIT;
	char *buf;
	size_t len;

	/* Self-signed by its root: accepted; unsigned: refused unless asked. */
	buf = keyring_of(1, f->root, 2, f->rel, 2, 1, 2, f->root, 2, &len);
	keyring_load(buf, len, &kr);
	assert_int_equal(kr.version, 1);
	assert_int_equal(kr.nroot, 2);
	assert_int_equal(kr.nrel, 2);
	assert_int_equal(kr.root_threshold, 2);
	sign_keyring_free(&kr);
	free(buf);

	buf = keyring_of(1, f->root, 2, f->rel, 2, 1, 2, f->root, 1, &len);
	sign_keyring_init(&kr);
	assert_int_equal(sign_keyring_parse(buf, len, 0, &kr, &e), -1);
	assert_int_equal(e.kind, ERR_SIGNATURE);
	assert_int_equal(kr.version, 0);
	assert_int_equal(sign_keyring_parse(buf, len, 1, &kr, &e), 0);
	sign_keyring_free(&kr);
	free(buf);

	/* Signed only by a key that is no root of it. */
	buf = keyring_of(1, f->root, 1, f->rel, 1, 1, 1, &f->rel[0], 1, &len);
	assert_int_equal(sign_keyring_parse(buf, len, 0, &kr, &e), -1);
	assert_int_equal(e.kind, ERR_UNKNOWN_KEY);
	free(buf);

	/* Body rules (checked before any signature). */
	static const char *const bad_bodies[] = {
		/* threshold above the release keys */
		"{\"v\":1,\"type\":\"tandem-keyring\",\"version\":1,\"threshold\":2,\"root_threshold\":1,"
		"\"root_keys\":[ROOT],\"release_keys\":[REL],\"created_at\":\"2026-01-01T00:00:00Z\"}",
		/* no release key */
		"{\"v\":1,\"type\":\"tandem-keyring\",\"version\":1,\"threshold\":1,\"root_threshold\":1,"
		"\"root_keys\":[ROOT],\"release_keys\":[],\"created_at\":\"2026-01-01T00:00:00Z\"}",
		/* a key twice */
		"{\"v\":1,\"type\":\"tandem-keyring\",\"version\":1,\"threshold\":1,\"root_threshold\":1,"
		"\"root_keys\":[ROOT,ROOT],\"release_keys\":[REL],\"created_at\":\"2026-01-01T00:00:00Z\"}",
		/* keyid that is not the key's */
		"{\"v\":1,\"type\":\"tandem-keyring\",\"version\":1,\"threshold\":1,\"root_threshold\":1,"
		"\"root_keys\":[BADID],\"release_keys\":[REL],\"created_at\":\"2026-01-01T00:00:00Z\"}",
		/* version 0 */
		"{\"v\":1,\"type\":\"tandem-keyring\",\"version\":0,\"threshold\":1,\"root_threshold\":1,"
		"\"root_keys\":[ROOT],\"release_keys\":[REL],\"created_at\":\"2026-01-01T00:00:00Z\"}",
		/* a release statement's type */
		"{\"v\":1,\"type\":\"tandem-release\",\"version\":1,\"threshold\":1,\"root_threshold\":1,"
		"\"root_keys\":[ROOT],\"release_keys\":[REL],\"created_at\":\"2026-01-01T00:00:00Z\"}",
	};
	/* The key objects, taken from a real keyring body. */
	buf = keyring_of(1, f->root, 1, f->rel, 1, 1, 1, f->root, 1, &len);
	keyring_load(buf, len, &kr);
	free(buf);
	char root_obj[512], rel_obj[512], badid_obj[512];
	{
		const char *pl = (const char *)kr.env.payload;
		const char *r0 = strstr(pl, "\"root_keys\":[") + strlen("\"root_keys\":[");
		const char *r1 = strstr(r0, "}") + 1;
		const char *s0 = strstr(pl, "\"release_keys\":[") + strlen("\"release_keys\":[");
		const char *s1 = strstr(s0, "}") + 1;
		snprintf(root_obj, sizeof(root_obj), "%.*s", (int)(r1 - r0), r0);
		snprintf(rel_obj, sizeof(rel_obj), "%.*s", (int)(s1 - s0), s0);
		snprintf(badid_obj, sizeof(badid_obj), "%s", root_obj);
		badid_obj[10] = badid_obj[10] == 'a' ? 'b' : 'a';
	}
	for (size_t i = 0; i < ARRAY_LEN(bad_bodies); i++) {
		char body[4096], *out = NULL;
		struct sign_keyring raw;
		size_t outlen;
		const char *s = bad_bodies[i];
		size_t o = 0;

		while (*s != '\0') {
			const char *rep = NULL;
			size_t skip = 0;
			if (strncmp(s, "ROOT", 4) == 0) {
				rep = root_obj;
				skip = 4;
			} else if (strncmp(s, "REL", 3) == 0) {
				rep = rel_obj;
				skip = 3;
			} else if (strncmp(s, "BADID", 5) == 0) {
				rep = badid_obj;
				skip = 5;
			}
			if (rep != NULL) {
				o += (size_t)snprintf(body + o, sizeof(body) - o, "%s", rep);
				s += skip;
			} else {
				body[o++] = *s++;
			}
			assert_true(o < sizeof(body));
		}
		body[o] = '\0';
		sign_keyring_init(&raw);
		free(raw.env.payload);
		raw.env.payload = (unsigned char *)strdup(body);
		raw.env.payload_len = o;
		assert_int_equal(sign_envelope_add(&raw.env, f->root[0], &e), 0);
		assert_int_equal(sign_keyring_format(&raw, &out, &outlen, &e), 0);
		sign_envelope_free(&raw.env);
		struct sign_keyring got;
		sign_keyring_init(&got);
		err_clear(&e);
		if (sign_keyring_parse(out, outlen, 1, &got, &e) != -1) {
			fail_msg("keyring body %zu accepted", i);
		}
		assert_int_equal(e.kind, ERR_FORMAT);
		free(out);
	}
	sign_keyring_free(&kr);
}

static void
test_keyring_rotation(void **state)
{
	struct fixture *f = *state;
	struct sign_keyring k1, k2, k3, other;
	struct err e = ERR_INIT;
	char *buf;
	size_t len;

	/* v1: root0, release rel0. */
	buf = keyring_of(1, f->root, 1, f->rel, 1, 1, 1, f->root, 1, &len);
	keyring_load(buf, len, &k1);
	free(buf);

	/* v2: root1 replaces root0, rel1 replaces rel0; signed by both roots. */
	{
		struct sign_key *signers[2] = { f->root[0], f->root[1] };
		buf = keyring_of(2, &f->root[1], 1, &f->rel[1], 1, 1, 1, signers, 2, &len);
		keyring_load(buf, len, &k2);
		free(buf);
	}
	assert_int_equal(sign_keyring_check_next(&k1, &k2, &e), 0);

	/* v2 signed only by the new root: the old keyring never agreed. */
	buf = keyring_of(2, &f->root[1], 1, &f->rel[1], 1, 1, 1, &f->root[1], 1, &len);
	keyring_load(buf, len, &other);
	free(buf);
	assert_int_equal(sign_keyring_check_next(&k1, &other, &e), -1);
	assert_int_equal(e.kind, ERR_UNKNOWN_KEY);
	sign_keyring_free(&other);

	/* v2 signed only by the old root: the new roots never agreed. */
	buf = keyring_of(2, &f->root[1], 1, &f->rel[1], 1, 1, 1, &f->root[0], 1, &len);
	sign_keyring_init(&other);
	assert_int_equal(sign_keyring_parse(buf, len, 1, &other, &e), 0);
	free(buf);
	assert_int_equal(sign_keyring_check_next(&k1, &other, &e), -1);
	sign_keyring_free(&other);

	/* v3 from v2 (root1 signs both halves). */
	buf = keyring_of(3, &f->root[1], 1, &f->rel[2], 1, 1, 1, &f->root[1], 1, &len);
	keyring_load(buf, len, &k3);
	free(buf);
	/* Skipping (1 -> 3), repeating (2 -> 2) and going back (2 -> 1): refused. */
	assert_int_equal(sign_keyring_check_next(&k1, &k3, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_int_equal(sign_keyring_check_next(&k2, &k2, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_int_equal(sign_keyring_check_next(&k2, &k1, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_int_equal(sign_keyring_check_next(&k2, &k3, &e), 0);

	/* A threshold of 2 roots is not met by one root's signature listed twice. */
	{
		struct sign_key *roots2[2] = { f->root[0], f->root[1] };
		struct sign_keyring t1, t2;

		buf = keyring_of(1, roots2, 2, f->rel, 1, 1, 2, roots2, 2, &len);
		keyring_load(buf, len, &t1);
		free(buf);
		buf = keyring_of(2, roots2, 2, f->rel, 1, 1, 2, roots2, 1, &len);
		sign_keyring_init(&t2);
		assert_int_equal(sign_keyring_parse(buf, len, 1, &t2, &e), 0);
		free(buf);
		t2.env.sigs[1] = t2.env.sigs[0];
		t2.env.nsigs = 2;
		assert_int_equal(sign_keyring_root_sigs(&t1, &t2.env), 1);
		assert_int_equal(sign_keyring_check_next(&t1, &t2, &e), -1);
		assert_int_equal(e.kind, ERR_SIGNATURE);
		sign_keyring_free(&t1);
		sign_keyring_free(&t2);
	}
	sign_keyring_free(&k1);
	sign_keyring_free(&k2);
	sign_keyring_free(&k3);
}

static void
test_keyring_edit(void **state)
{
	struct fixture *f = *state;
	struct sign_keyring kr;
	struct err e = ERR_INIT;
	char prefix[9];

	sign_keyring_init(&kr);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sign_keyring_add_key(&kr, 0, f->rel[i], NULL, &e), 0);
	}
	assert_int_equal(sign_keyring_add_key(&kr, 0, f->rel[0], NULL, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_int_equal(sign_keyring_add_key(&kr, 1, f->root[0], "2026-01-01T00:00:00Z", &e), -1);
	assert_int_equal(sign_keyring_remove_key(&kr, 0, "abc", &e), -1);
	assert_int_equal(e.kind, ERR_USAGE);
	assert_int_equal(sign_keyring_remove_key(&kr, 0, sign_key_id(f->root[0]), &e), -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
	memcpy(prefix, sign_key_id(f->rel[1]), 8);
	prefix[8] = '\0';
	assert_int_equal(sign_keyring_remove_key(&kr, 0, prefix, &e), 0);
	assert_int_equal(kr.nrel, 2);
	assert_string_equal(kr.rel[0].keyid, sign_key_id(f->rel[0]));
	assert_string_equal(kr.rel[1].keyid, sign_key_id(f->rel[2]));
	/* Sealing checks the shape: no root key yet. */
	kr.version = 1;
	kr.threshold = 1;
	kr.root_threshold = 1;
	SETS(kr.created_at, "2026-01-01T00:00:00Z");
	assert_int_equal(sign_keyring_seal(&kr, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_int_equal(sign_keyring_add_key(&kr, 1, f->root[0], NULL, &e), 0);
	assert_int_equal(sign_keyring_seal(&kr, &e), 0);
	kr.threshold = 3;
	assert_int_equal(sign_keyring_seal(&kr, &e), -1);
	sign_keyring_free(&kr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_refusals, setup, teardown),
		cmocka_unit_test(test_statement_round_trip),
		cmocka_unit_test(test_statement_refusals),
		cmocka_unit_test(test_statement_match),
		cmocka_unit_test_setup_teardown(test_tsig_round_trip_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_check_threshold, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_check_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_openssl_signature, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keyring_parse_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keyring_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keyring_edit, setup, teardown),
	};

	log_init("test_sign", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
