/*
 * sign — release keys, statements, .tsig envelopes and keyrings over
 * mbedTLS 2.28's pk layer (ECDSA P-256, SHA-256, base64).
 *
 * Signatures are checked over the exact payload bytes of an envelope; the
 * statement or keyring inside is parsed from those same bytes, so what is
 * believed is what was signed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>

#include "cJSON.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/release.h"
#include "pki/sign.h"

#define SIGN_PEM_MAX 4096
#define SIGN_SPKI_MAX 512
#define SIGN_PUB_B64_MAX 256       /* base64 of a P-256 SPKI DER (91 bytes) fits easily */
#define SIGN_SIG_B64_MAX 128
#define SIGN_PAYLOAD_B64_MAX (SIGN_FILE_MAX * 4 / 3 + 4)

struct sign_key {
	mbedtls_pk_context pk;
	int priv;
	char keyid[SIGN_KEYID_LEN + 1];
};

static const char sign_release_type[] = "tandem-release";
static const char sign_keyring_type[] = "tandem-keyring";

/* ---- helpers ---------------------------------------------------------- */

static int
sign_mbed_err(struct err *e, enum err_kind kind, const char *what, int ret)
{
	char buf[160];

	mbedtls_strerror(ret, buf, sizeof(buf));
	return err_set(e, kind, "%s: %s (-0x%04x)", what, buf, (unsigned)-ret);
}

static int
sign_sha256(const void *buf, size_t len, unsigned char out[DIGEST_LEN])
{
	struct digest d;

	digest_init(&d);
	digest_update(&d, buf, len);
	return digest_final_raw(&d, out);
}

static int
sign_is_lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return s[n] == '\0';
}

static int
sign_iso_valid(const char *s)
{
	time_t t;

	return iso8601_parse(s, &t) == 0;
}

/* Base64 of LEN bytes, malloc'd and NUL-terminated, or NULL. */
static char *
sign_b64(const unsigned char *buf, size_t len)
{
	size_t need = 0, olen = 0;
	char *out;

	(void)mbedtls_base64_encode(NULL, 0, &need, buf, len);
	out = malloc(need + 1);
	if (out == NULL) {
		return NULL;
	}
	if (mbedtls_base64_encode((unsigned char *)out, need + 1, &olen, buf, len) != 0) {
		free(out);
		return NULL;
	}
	out[olen] = '\0';
	return out;
}

/*
 * Decode canonical base64 S into a malloc'd buffer (NUL-terminated beyond
 * *LEN): mbedTLS also takes line breaks and spaces, so the result is
 * encoded again and must give S back.
 */
static int
sign_unb64(const char *s, unsigned char **out, size_t *len, const char *what,
    enum err_kind kind, struct err *e)
{
	size_t slen = strlen(s), need = 0, olen = 0;
	unsigned char *buf = NULL;
	char *again = NULL;
	int ret;

	ret = mbedtls_base64_decode(NULL, 0, &need, (const unsigned char *)s, slen);
	if (ret != 0 && ret != MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL) {
		return err_set(e, kind, "%s: not base64", what);
	}
	buf = malloc(need + 1);
	if (buf == NULL) {
		return err_set(e, ERR_NOMEM, "%s: out of memory", what);
	}
	if (mbedtls_base64_decode(buf, need + 1, &olen, (const unsigned char *)s, slen) != 0) {
		free(buf);
		return err_set(e, kind, "%s: not base64", what);
	}
	buf[olen] = '\0';
	again = sign_b64(buf, olen);
	if (again == NULL) {
		free(buf);
		return err_set(e, ERR_NOMEM, "%s: out of memory", what);
	}
	if (strcmp(again, s) != 0) {
		free(again);
		free(buf);
		return err_set(e, kind, "%s: not canonical base64", what);
	}
	free(again);
	*out = buf;
	*len = olen;
	return 0;
}

struct sign_rng {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

static int
sign_rng_open(struct sign_rng *r, struct err *e)
{
	static const unsigned char pers[] = "tandem-sign";
	int ret;

	mbedtls_entropy_init(&r->entropy);
	mbedtls_ctr_drbg_init(&r->drbg);
	ret = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy, pers,
	    sizeof(pers) - 1);
	if (ret != 0) {
		return sign_mbed_err(e, ERR_INTERNAL, "seeding the random generator", ret);
	}
	return 0;
}

static void
sign_rng_close(struct sign_rng *r)
{
	mbedtls_ctr_drbg_free(&r->drbg);
	mbedtls_entropy_free(&r->entropy);
}

/* ---- keys ------------------------------------------------------------- */

static struct sign_key *
sign_key_alloc(void)
{
	struct sign_key *k = calloc(1, sizeof(*k));

	if (k != NULL) {
		mbedtls_pk_init(&k->pk);
	}
	return k;
}

void
sign_key_free(struct sign_key *k)
{
	if (k == NULL) {
		return;
	}
	mbedtls_pk_free(&k->pk); /* zeroizes the key material */
	secure_free(k, sizeof(*k));
}

const char *
sign_key_id(const struct sign_key *k)
{
	return k->keyid;
}

int
sign_key_is_private(const struct sign_key *k)
{
	return k->priv;
}

/* The SubjectPublicKeyInfo DER of K at *DER (inside BUF), *LEN bytes. */
static int
sign_key_spki(const struct sign_key *k, unsigned char *buf, size_t size, unsigned char **der,
    size_t *len, struct err *e)
{
	int ret = mbedtls_pk_write_pubkey_der((mbedtls_pk_context *)&k->pk, buf, size);

	if (ret <= 0) {
		return sign_mbed_err(e, ERR_INTERNAL, "encoding the public key", ret);
	}
	*der = buf + size - (size_t)ret;
	*len = (size_t)ret;
	return 0;
}

/* Check that K is P-256 and compute its keyid. */
static int
sign_key_finish(struct sign_key *k, const char *what, struct err *e)
{
	unsigned char buf[SIGN_SPKI_MAX], hash[32], *der = NULL;
	const mbedtls_ecp_keypair *ec = NULL;
	size_t len = 0;

	if (mbedtls_pk_get_type(&k->pk) == MBEDTLS_PK_ECKEY) {
		ec = mbedtls_pk_ec(k->pk);
	}
	if (ec == NULL || ec->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
		return err_set(e, ERR_FORMAT, "%s: not an ECDSA P-256 key", what);
	}
	if (sign_key_spki(k, buf, sizeof(buf), &der, &len, e) != 0 ||
	    sign_sha256(der, len, hash) != 0) {
		return err_prefix(e, "%s", what);
	}
	hex_encode(hash, sizeof(hash), k->keyid);
	return 0;
}

/* A public-only key from SPKI DER. */
static int
sign_key_from_spki(const unsigned char *der, size_t len, struct sign_key **out, struct err *e)
{
	struct sign_key *k = sign_key_alloc();
	int ret;

	if (k == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	ret = mbedtls_pk_parse_public_key(&k->pk, der, len);
	if (ret != 0) {
		sign_key_free(k);
		return sign_mbed_err(e, ERR_FORMAT, "not a public key", ret);
	}
	if (sign_key_finish(k, "public key", e) != 0) {
		sign_key_free(k);
		return -1;
	}
	*out = k;
	return 0;
}

/* A public-only copy of K. */
static int
sign_key_public_copy(const struct sign_key *k, struct sign_key **out, struct err *e)
{
	unsigned char buf[SIGN_SPKI_MAX], *der = NULL;
	size_t len = 0;

	if (sign_key_spki(k, buf, sizeof(buf), &der, &len, e) != 0) {
		return -1;
	}
	return sign_key_from_spki(der, len, out, e);
}

int
sign_key_generate(struct sign_key **out, struct err *e)
{
	struct sign_key *k = sign_key_alloc();
	struct sign_rng rng;
	int ret, rc = -1;

	if (k == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	if (sign_rng_open(&rng, e) != 0) {
		goto out;
	}
	ret = mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (ret == 0) {
		ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(k->pk),
		    mbedtls_ctr_drbg_random, &rng.drbg);
	}
	if (ret != 0) {
		sign_mbed_err(e, ERR_INTERNAL, "generating the key", ret);
		goto out;
	}
	k->priv = 1;
	if (sign_key_finish(k, "new key", e) != 0) {
		goto out;
	}
	*out = k;
	k = NULL;
	rc = 0;
out:
	sign_rng_close(&rng);
	sign_key_free(k);
	return rc;
}

/* mbedTLS wants PEM NUL-terminated with the NUL counted, DER as it is. */
static size_t
sign_parse_len(const char *buf, size_t len)
{
	return memmem(buf, len, "-----BEGIN", 10) != NULL ? len + 1 : len;
}

int
sign_key_load_private(const char *path, struct sign_key **out, struct err *e)
{
	struct sign_key *k = NULL;
	char *buf = NULL;
	size_t len = 0;
	int ret, rc = -1;

	if (fs_read_file(path, SIGN_PEM_MAX, &buf, &len) != 0) {
		return err_sys(e, "read key %s", path);
	}
	k = sign_key_alloc();
	if (k == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	ret = mbedtls_pk_parse_key(&k->pk, (const unsigned char *)buf, sign_parse_len(buf, len),
	    NULL, 0);
	if (ret != 0) {
		sign_mbed_err(e, ERR_FORMAT, "not a private key", ret);
		err_prefix(e, "key %s", path);
		goto out;
	}
	k->priv = 1;
	if (sign_key_finish(k, path, e) != 0) {
		goto out;
	}
	*out = k;
	k = NULL;
	rc = 0;
out:
	secure_free(buf, len);
	sign_key_free(k);
	return rc;
}

int
sign_key_load_public(const char *path, struct sign_key **out, struct err *e)
{
	struct sign_key *k = NULL, *priv = NULL;
	char *buf = NULL;
	size_t len = 0;
	int ret, rc = -1;

	if (fs_read_file(path, SIGN_PEM_MAX, &buf, &len) != 0) {
		return err_sys(e, "read key %s", path);
	}
	k = sign_key_alloc();
	if (k == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	ret = mbedtls_pk_parse_public_key(&k->pk, (const unsigned char *)buf,
	    sign_parse_len(buf, len));
	if (ret != 0) {
		/* A private key file: keep only its public half. */
		if (sign_key_load_private(path, &priv, NULL) != 0) {
			sign_mbed_err(e, ERR_FORMAT, "not a public key", ret);
			err_prefix(e, "key %s", path);
			goto out;
		}
		sign_key_free(k);
		k = NULL;
		if (sign_key_public_copy(priv, &k, e) != 0) {
			err_prefix(e, "key %s", path);
			goto out;
		}
	} else if (sign_key_finish(k, path, e) != 0) {
		goto out;
	}
	*out = k;
	k = NULL;
	rc = 0;
out:
	secure_free(buf, len);
	sign_key_free(priv);
	sign_key_free(k);
	return rc;
}

static int
sign_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 || errno != ENOENT;
}

int
sign_key_write(const struct sign_key *k, const char *path, const char *pubpath, int force,
    struct err *e)
{
	unsigned char *pem = NULL, pubpem[SIGN_PEM_MAX];
	int ret, rc = -1, wrote_key = 0;

	if (!k->priv) {
		return err_set(e, ERR_INTERNAL, "no private key to write");
	}
	if (!force && (sign_exists(path) || sign_exists(pubpath))) {
		return err_set(e, ERR_CONFLICT, "%s or %s exists already (a key is never replaced "
		    "without --force)", path, pubpath);
	}
	pem = calloc(1, SIGN_PEM_MAX);
	if (pem == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	ret = mbedtls_pk_write_key_pem((mbedtls_pk_context *)&k->pk, pem, SIGN_PEM_MAX);
	if (ret == 0) {
		ret = mbedtls_pk_write_pubkey_pem((mbedtls_pk_context *)&k->pk, pubpem,
		    sizeof(pubpem));
	}
	if (ret != 0) {
		sign_mbed_err(e, ERR_INTERNAL, "encoding the key", ret);
		goto out;
	}
	if (fs_write_atomic(path, pem, strlen((const char *)pem), 0600) != 0) {
		err_sys(e, "write %s", path);
		goto out;
	}
	wrote_key = 1;
	if (fs_write_atomic(pubpath, pubpem, strlen((const char *)pubpem), 0644) != 0) {
		err_sys(e, "write %s", pubpath);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0 && wrote_key && !force) {
		(void)unlink(path);
	}
	secure_free(pem, SIGN_PEM_MAX);
	return rc;
}

/* Sign LEN bytes of MSG with K into SIG (SIGN_SIG_MAX bytes), *SIGLEN. */
static int
sign_key_sign(const struct sign_key *k, const void *msg, size_t len,
    unsigned char sig[SIGN_SIG_MAX], size_t *siglen, struct err *e)
{
	unsigned char hash[32], buf[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
	struct sign_rng rng;
	size_t n = 0;
	int ret, rc = -1;

	if (!k->priv) {
		return err_set(e, ERR_INTERNAL, "key %.16s has no private half", k->keyid);
	}
	if (sign_sha256(msg, len, hash) != 0) {
		return err_set(e, ERR_INTERNAL, "sha256 failed");
	}
	if (sign_rng_open(&rng, e) != 0) {
		goto out;
	}
	ret = mbedtls_pk_sign((mbedtls_pk_context *)&k->pk, MBEDTLS_MD_SHA256, hash, sizeof(hash),
	    buf, &n, mbedtls_ctr_drbg_random, &rng.drbg);
	if (ret != 0) {
		sign_mbed_err(e, ERR_INTERNAL, "signing", ret);
		goto out;
	}
	if (n == 0 || n > SIGN_SIG_MAX) {
		err_set(e, ERR_INTERNAL, "signing: unexpected signature length %zu", n);
		goto out;
	}
	memcpy(sig, buf, n);
	*siglen = n;
	rc = 0;
out:
	sign_rng_close(&rng);
	return rc;
}

/* 1 when SIG is K's valid signature of MSG. */
static int
sign_key_verify(const struct sign_key *k, const void *msg, size_t len, const unsigned char *sig,
    size_t siglen)
{
	unsigned char hash[32];

	if (sign_sha256(msg, len, hash) != 0) {
		return 0;
	}
	return mbedtls_pk_verify((mbedtls_pk_context *)&k->pk, MBEDTLS_MD_SHA256, hash,
	    sizeof(hash), sig, siglen) == 0;
}

/* ---- the envelope ----------------------------------------------------- */

void
sign_envelope_free(struct sign_envelope *env)
{
	if (env == NULL) {
		return;
	}
	free(env->payload);
	memset(env, 0, sizeof(*env));
}

int
sign_envelope_has(const struct sign_envelope *env, const char *keyid)
{
	for (size_t i = 0; i < env->nsigs; i++) {
		if (strcmp(env->sigs[i].keyid, keyid) == 0) {
			return 1;
		}
	}
	return 0;
}

int
sign_envelope_add(struct sign_envelope *env, const struct sign_key *k, struct err *e)
{
	struct sign_sig *s;

	if (env->payload == NULL) {
		return err_set(e, ERR_INTERNAL, "nothing to sign");
	}
	if (sign_envelope_has(env, k->keyid)) {
		return err_set(e, ERR_CONFLICT, "key %s signed this already", k->keyid);
	}
	if (env->nsigs >= SIGN_MAX_SIGS) {
		return err_set(e, ERR_CONFLICT, "already %d signatures (the most a file holds)",
		    SIGN_MAX_SIGS);
	}
	s = &env->sigs[env->nsigs];
	if (sign_key_sign(k, env->payload, env->payload_len, s->sig, &s->len, e) != 0) {
		return -1;
	}
	memcpy(s->keyid, k->keyid, sizeof(s->keyid));
	env->nsigs++;
	return 0;
}

/* Take ownership of LEN bytes at BUF as ENV's payload (NUL-terminated copy). */
static int
sign_envelope_set_payload(struct sign_envelope *env, const char *buf, size_t len, struct err *e)
{
	unsigned char *p = malloc(len + 1);

	if (p == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	memcpy(p, buf, len);
	p[len] = '\0';
	sign_envelope_free(env);
	env->payload = p;
	env->payload_len = len;
	return 0;
}

struct sign_sig_raw {
	char keyid[SIGN_KEYID_LEN + 1];
	char alg[32];
	const char *sig;
};

static const struct json_field sign_sig_fields[] = {
	JSON_F_STR("keyid", struct sign_sig_raw, keyid, JSON_REQUIRED, SIGN_KEYID_LEN),
	JSON_F_STR("alg", struct sign_sig_raw, alg, JSON_REQUIRED, 1),
	JSON_F_STRREF("sig", struct sign_sig_raw, sig, JSON_REQUIRED, 1, SIGN_SIG_B64_MAX),
};

struct sign_env_raw {
	int64_t v;
	const char *payload;
	const cJSON *sigs;
};

/*
 * Parse an envelope whose payload key is KEY into *ENV (empty on failure).
 * Malformed input is ERR_SIGNATURE.
 */
static int
sign_envelope_parse(const void *buf, size_t len, const char *key, struct sign_envelope *env,
    struct err *e)
{
	const struct json_field fields[] = {
		JSON_F_INT("v", struct sign_env_raw, v, JSON_REQUIRED, 1, 1),
		JSON_F_STRREF(key, struct sign_env_raw, payload, JSON_REQUIRED, 1,
		    SIGN_PAYLOAD_B64_MAX),
		JSON_F_ARRAY("signatures", struct sign_env_raw, sigs, JSON_REQUIRED),
	};
	struct sign_envelope out;
	struct sign_env_raw raw;
	struct err je = ERR_INIT;
	unsigned char *sig = NULL;
	const cJSON *it;
	cJSON *root = NULL;
	size_t n = 0, siglen;
	int rc = -1;

	memset(&out, 0, sizeof(out));
	memset(&raw, 0, sizeof(raw));
	root = json_parse_object_ex(buf, len, SIGN_FILE_MAX, 4, &je);
	if (root == NULL) {
		err_set(e, ERR_SIGNATURE, "%s", err_msg(&je));
		goto out;
	}
	if (json_read_fields(root, fields, ARRAY_LEN(fields), 0, &raw, &je) != 0) {
		err_set(e, ERR_SIGNATURE, "%s", err_msg(&je));
		goto out;
	}
	if (sign_unb64(raw.payload, &out.payload, &out.payload_len, key, ERR_SIGNATURE, e) != 0) {
		goto out;
	}
	cJSON_ArrayForEach(it, raw.sigs) {
		struct sign_sig_raw s;

		memset(&s, 0, sizeof(s));
		if (n >= SIGN_MAX_SIGS) {
			err_set(e, ERR_SIGNATURE, "more than %d signatures", SIGN_MAX_SIGS);
			goto out;
		}
		if (json_read_fields(it, sign_sig_fields, ARRAY_LEN(sign_sig_fields), 0, &s,
		    &je) != 0) {
			err_set(e, ERR_SIGNATURE, "signature %zu: %s", n + 1, err_msg(&je));
			goto out;
		}
		if (!sign_is_lower_hex(s.keyid, SIGN_KEYID_LEN)) {
			err_set(e, ERR_SIGNATURE, "signature %zu: keyid is not 64 lowercase hex digits",
			    n + 1);
			goto out;
		}
		if (strcmp(s.alg, SIGN_ALG) != 0) {
			err_set(e, ERR_SIGNATURE, "signature %zu: algorithm is not " SIGN_ALG, n + 1);
			goto out;
		}
		if (sign_unb64(s.sig, &sig, &siglen, "sig", ERR_SIGNATURE, e) != 0) {
			err_prefix(e, "signature %zu", n + 1);
			goto out;
		}
		if (siglen == 0 || siglen > SIGN_SIG_MAX) {
			err_set(e, ERR_SIGNATURE, "signature %zu: %zu bytes is no P-256 signature",
			    n + 1, siglen);
			goto out;
		}
		memcpy(out.sigs[n].keyid, s.keyid, sizeof(s.keyid));
		memcpy(out.sigs[n].sig, sig, siglen);
		out.sigs[n].len = siglen;
		free(sig);
		sig = NULL;
		n++;
	}
	out.nsigs = n;
	*env = out;
	memset(&out, 0, sizeof(out));
	rc = 0;
out:
	free(sig);
	sign_envelope_free(&out);
	cJSON_Delete(root);
	return rc;
}

/* The envelope's bytes, payload under KEY. */
static int
sign_envelope_format(const struct sign_envelope *env, const char *key, char **out,
    size_t *outlen, struct err *e)
{
	cJSON *root = cJSON_CreateObject(), *arr = NULL;
	char *payload = NULL, *text = NULL;
	int rc = -1;

	if (root == NULL || env->payload == NULL) {
		err_set(e, root == NULL ? ERR_NOMEM : ERR_INTERNAL, "cannot format the envelope");
		goto out;
	}
	payload = sign_b64(env->payload, env->payload_len);
	if (payload == NULL || json_add_int(root, "v", 1) != 0 ||
	    json_add_str(root, key, payload) != 0 ||
	    (arr = json_add_array(root, "signatures")) == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < env->nsigs; i++) {
		cJSON *o = cJSON_CreateObject();
		char *sig = sign_b64(env->sigs[i].sig, env->sigs[i].len);
		int bad = o == NULL || sig == NULL || !cJSON_AddItemToArray(arr, o);

		if (bad) {
			cJSON_Delete(o);
		}
		if (bad || json_add_str(o, "keyid", env->sigs[i].keyid) != 0 ||
		    json_add_str(o, "alg", SIGN_ALG) != 0 || json_add_str(o, "sig", sig) != 0) {
			free(sig);
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		free(sig);
	}
	text = json_print_pretty(root);
	if (text == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	*outlen = strlen(text);
	*out = text;
	rc = 0;
out:
	free(payload);
	cJSON_Delete(root);
	return rc;
}

/* ---- the release statement -------------------------------------------- */

struct sign_st_raw {
	int64_t v;
	char type[32];
	struct sign_statement st;
	const char *manifest_sha256;
	const cJSON *kinds;
	const char *expires_at;
};

static const struct json_field sign_st_fields[] = {
	JSON_F_INT("v", struct sign_st_raw, v, JSON_REQUIRED, 1, 1),
	JSON_F_STR("type", struct sign_st_raw, type, JSON_REQUIRED, 1),
	JSON_F_STR("name", struct sign_st_raw, st.name, JSON_REQUIRED, 1),
	JSON_F_STR("compatible", struct sign_st_raw, st.compatible, JSON_REQUIRED, 1),
	JSON_F_STR("version", struct sign_st_raw, st.version, JSON_REQUIRED, 1),
	JSON_F_STR("sha256", struct sign_st_raw, st.sha256, JSON_REQUIRED, 64),
	JSON_F_STRREF("manifest_sha256", struct sign_st_raw, manifest_sha256, JSON_NULLABLE, 64, 64),
	JSON_F_INT("size", struct sign_st_raw, st.size, JSON_REQUIRED, 0, JSON_INT_MAX),
	JSON_F_INT("security_version", struct sign_st_raw, st.security_version, JSON_REQUIRED, 0,
	    SIGN_SV_MAX),
	JSON_F_INT("min_security_version", struct sign_st_raw, st.min_security_version,
	    JSON_REQUIRED, 0, SIGN_SV_MAX),
	JSON_F_ARRAY("kinds", struct sign_st_raw, kinds, JSON_REQUIRED),
	JSON_F_STR("created_at", struct sign_st_raw, st.created_at, JSON_REQUIRED, 1),
	JSON_F_STRREF("expires_at", struct sign_st_raw, expires_at, JSON_NULLABLE, 1, 31),
};

static const struct {
	const char *name;
	unsigned bit;
} sign_kinds[] = {
	{ "agent", SIGN_KIND_AGENT },
	{ "updater", SIGN_KIND_UPDATER },
};

static int
sign_kinds_parse(const cJSON *arr, unsigned *out, struct err *e)
{
	const cJSON *it;
	unsigned kinds = 0;

	cJSON_ArrayForEach(it, arr) {
		unsigned bit = 0;

		if (!cJSON_IsString(it)) {
			return err_set(e, ERR_SIGNATURE, "key 'kinds': expected strings");
		}
		for (size_t i = 0; i < ARRAY_LEN(sign_kinds); i++) {
			if (strcmp(it->valuestring, sign_kinds[i].name) == 0) {
				bit = sign_kinds[i].bit;
			}
		}
		if (bit == 0) {
			return err_set(e, ERR_SIGNATURE, "key 'kinds': unknown kind");
		}
		if ((kinds & bit) != 0) {
			return err_set(e, ERR_SIGNATURE, "key 'kinds': a kind is listed twice");
		}
		kinds |= bit;
	}
	if (kinds == 0) {
		return err_set(e, ERR_SIGNATURE, "key 'kinds': empty");
	}
	*out = kinds;
	return 0;
}

/* The rules of a statement beyond its JSON types. */
static int
sign_statement_check(const struct sign_statement *st, struct err *e)
{
	if (!release_ident_valid(st->name) || !release_ident_valid(st->version) ||
	    !release_ident_valid(st->compatible)) {
		return err_set(e, ERR_SIGNATURE, "name, version and compatible must be 1-%d "
		    "characters of A-Z a-z 0-9 . _ + ~ -, starting with a letter or digit",
		    SIGN_IDENT_MAX);
	}
	if (!sign_is_lower_hex(st->sha256, 64) ||
	    (st->manifest_sha256[0] != '\0' && !sign_is_lower_hex(st->manifest_sha256, 64))) {
		return err_set(e, ERR_SIGNATURE, "digests must be 64 lowercase hex digits");
	}
	if (st->min_security_version > st->security_version) {
		return err_set(e, ERR_SIGNATURE, "min_security_version %lld is above "
		    "security_version %lld", (long long)st->min_security_version,
		    (long long)st->security_version);
	}
	if (!sign_iso_valid(st->created_at) ||
	    (st->expires_at[0] != '\0' && !sign_iso_valid(st->expires_at))) {
		return err_set(e, ERR_SIGNATURE, "created_at and expires_at must be "
		    "YYYY-MM-DDTHH:MM:SSZ");
	}
	if (st->kinds == 0 || (st->kinds & ~(SIGN_KIND_AGENT | SIGN_KIND_UPDATER)) != 0) {
		return err_set(e, ERR_SIGNATURE, "kinds must name agent and/or updater");
	}
	return 0;
}

int
sign_statement_parse(const void *buf, size_t len, struct sign_statement *st, struct err *e)
{
	struct sign_st_raw raw;
	struct err je = ERR_INIT;
	cJSON *root;
	int rc = -1;

	memset(&raw, 0, sizeof(raw));
	root = json_parse_object_ex(buf, len, SIGN_FILE_MAX, 4, &je);
	if (root == NULL) {
		err_set(e, ERR_SIGNATURE, "%s", err_msg(&je));
		goto out;
	}
	if (json_read_fields(root, sign_st_fields, ARRAY_LEN(sign_st_fields), 0, &raw,
	    &je) != 0) {
		err_set(e, ERR_SIGNATURE, "%s", err_msg(&je));
		goto out;
	}
	if (strcmp(raw.type, sign_release_type) != 0) {
		err_set(e, ERR_SIGNATURE, "type is not \"%s\"", sign_release_type);
		goto out;
	}
	if (raw.manifest_sha256 != NULL) {
		memcpy(raw.st.manifest_sha256, raw.manifest_sha256, 65);
	}
	if (raw.expires_at != NULL) {
		memcpy(raw.st.expires_at, raw.expires_at, strlen(raw.expires_at) + 1);
	}
	if (sign_kinds_parse(raw.kinds, &raw.st.kinds, e) != 0 ||
	    sign_statement_check(&raw.st, e) != 0) {
		goto out;
	}
	*st = raw.st;
	rc = 0;
out:
	if (rc != 0) {
		err_prefix(e, "statement");
	}
	cJSON_Delete(root);
	return rc;
}

int
sign_statement_format(const struct sign_statement *st, char **out, size_t *outlen,
    struct err *e)
{
	cJSON *root = NULL, *kinds;
	char *text = NULL;
	int rc = -1;

	if (sign_statement_check(st, e) != 0) {
		return err_prefix(e, "statement");
	}
	root = cJSON_CreateObject();
	if (root == NULL || json_add_int(root, "v", 1) != 0 ||
	    json_add_str(root, "type", sign_release_type) != 0 ||
	    json_add_str(root, "name", st->name) != 0 ||
	    json_add_str(root, "compatible", st->compatible) != 0 ||
	    json_add_str(root, "version", st->version) != 0 ||
	    json_add_str(root, "sha256", st->sha256) != 0 ||
	    (st->manifest_sha256[0] != '\0' &&
	    json_add_str(root, "manifest_sha256", st->manifest_sha256) != 0) ||
	    json_add_int(root, "size", st->size) != 0 ||
	    json_add_int(root, "security_version", st->security_version) != 0 ||
	    json_add_int(root, "min_security_version", st->min_security_version) != 0 ||
	    (kinds = json_add_array(root, "kinds")) == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ARRAY_LEN(sign_kinds); i++) {
		if ((st->kinds & sign_kinds[i].bit) != 0 &&
		    json_array_add_str(kinds, sign_kinds[i].name) != 0) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	if (json_add_str(root, "created_at", st->created_at) != 0 ||
	    json_add_str(root, "expires_at", st->expires_at[0] != '\0' ? st->expires_at : NULL) != 0) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	text = json_print_compact(root);
	if (text == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	*outlen = strlen(text);
	*out = text;
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

int
sign_tsig_parse(const void *buf, size_t len, struct sign_envelope *env, struct sign_statement *st,
    struct err *e)
{
	struct sign_envelope tmp;

	memset(&tmp, 0, sizeof(tmp));
	if (sign_envelope_parse(buf, len, "statement", &tmp, e) != 0) {
		return err_prefix(e, "signature file");
	}
	if (sign_statement_parse(tmp.payload, tmp.payload_len, st, e) != 0) {
		sign_envelope_free(&tmp);
		return err_prefix(e, "signature file");
	}
	*env = tmp;
	return 0;
}

int
sign_tsig_format(const struct sign_envelope *env, char **out, size_t *outlen, struct err *e)
{
	return sign_envelope_format(env, "statement", out, outlen, e);
}

int
sign_tsig_new(const struct sign_statement *st, struct sign_envelope *env, struct err *e)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (sign_statement_format(st, &text, &len, e) != 0) {
		return -1;
	}
	rc = sign_envelope_set_payload(env, text, len, e);
	free(text);
	return rc;
}

int
sign_statement_match(const struct sign_statement *st, const char *name, const char *version,
    struct err *e)
{
	if (strcmp(st->name, name) != 0 || strcmp(st->version, version) != 0) {
		return err_set(e, ERR_STATEMENT, "the release is %.64s %.64s but the signed "
		    "statement says %s %s", name, version, st->name, st->version);
	}
	return 0;
}

/* ---- the keyring ------------------------------------------------------ */

void
sign_keyring_init(struct sign_keyring *kr)
{
	memset(kr, 0, sizeof(*kr));
}

void
sign_keyring_free(struct sign_keyring *kr)
{
	if (kr == NULL) {
		return;
	}
	for (size_t i = 0; i < kr->nroot; i++) {
		sign_key_free(kr->root[i].key);
	}
	for (size_t i = 0; i < kr->nrel; i++) {
		sign_key_free(kr->rel[i].key);
	}
	sign_envelope_free(&kr->env);
	sign_keyring_init(kr);
}

struct sign_kr_raw {
	int64_t v;
	char type[32];
	int64_t version;
	int32_t threshold;
	int32_t root_threshold;
	const cJSON *root_keys;
	const cJSON *release_keys;
	char created_at[32];
};

static const struct json_field sign_kr_fields[] = {
	JSON_F_INT("v", struct sign_kr_raw, v, JSON_REQUIRED, 1, 1),
	JSON_F_STR("type", struct sign_kr_raw, type, JSON_REQUIRED, 1),
	JSON_F_INT("version", struct sign_kr_raw, version, JSON_REQUIRED, 1, JSON_INT_MAX),
	JSON_F_INT("threshold", struct sign_kr_raw, threshold, JSON_REQUIRED, 1, SIGN_MAX_KEYS),
	JSON_F_INT("root_threshold", struct sign_kr_raw, root_threshold, JSON_REQUIRED, 1,
	    SIGN_MAX_KEYS),
	JSON_F_ARRAY("root_keys", struct sign_kr_raw, root_keys, JSON_REQUIRED),
	JSON_F_ARRAY("release_keys", struct sign_kr_raw, release_keys, JSON_REQUIRED),
	JSON_F_STR("created_at", struct sign_kr_raw, created_at, JSON_REQUIRED, 1),
};

struct sign_ke_raw {
	char keyid[SIGN_KEYID_LEN + 1];
	const char *pub;
	const char *not_after;
};

static const struct json_field sign_root_fields[] = {
	JSON_F_STR("keyid", struct sign_ke_raw, keyid, JSON_REQUIRED, SIGN_KEYID_LEN),
	JSON_F_STRREF("pub", struct sign_ke_raw, pub, JSON_REQUIRED, 1, SIGN_PUB_B64_MAX),
};

static const struct json_field sign_rel_fields[] = {
	JSON_F_STR("keyid", struct sign_ke_raw, keyid, JSON_REQUIRED, SIGN_KEYID_LEN),
	JSON_F_STRREF("pub", struct sign_ke_raw, pub, JSON_REQUIRED, 1, SIGN_PUB_B64_MAX),
	JSON_F_STRREF("not_after", struct sign_ke_raw, not_after, JSON_NULLABLE, 1, 31),
};

static const char *
sign_role_name(int root)
{
	return root ? "root_keys" : "release_keys";
}

static int
sign_keyring_find(const struct sign_keyent *ents, size_t n, const char *keyid)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ents[i].keyid, keyid) == 0) {
			return (int)i;
		}
	}
	return -1;
}

/* Read the key list ARR of a role into KR. Errors are ERR_FORMAT. */
static int
sign_keyring_parse_role(const cJSON *arr, int root, struct sign_keyring *kr, struct err *e)
{
	struct sign_keyent *ents = root ? kr->root : kr->rel;
	size_t *n = root ? &kr->nroot : &kr->nrel;
	const char *role = sign_role_name(root);
	struct err je = ERR_INIT;
	const cJSON *it;

	cJSON_ArrayForEach(it, arr) {
		struct sign_ke_raw raw;
		struct sign_key *k = NULL;
		unsigned char *der = NULL;
		size_t len = 0;

		memset(&raw, 0, sizeof(raw));
		if (*n >= SIGN_MAX_KEYS) {
			return err_set(e, ERR_FORMAT, "%s: more than %d keys", role, SIGN_MAX_KEYS);
		}
		if (json_read_fields(it, root ? sign_root_fields : sign_rel_fields,
		    root ? ARRAY_LEN(sign_root_fields) : ARRAY_LEN(sign_rel_fields), 0, &raw,
		    &je) != 0) {
			return err_set(e, ERR_FORMAT, "%s[%zu]: %s", role, *n, err_msg(&je));
		}
		if (raw.not_after != NULL && !sign_iso_valid(raw.not_after)) {
			return err_set(e, ERR_FORMAT, "%s[%zu]: not_after must be YYYY-MM-DDTHH:MM:SSZ",
			    role, *n);
		}
		if (sign_unb64(raw.pub, &der, &len, "pub", ERR_FORMAT, e) != 0) {
			return err_prefix(e, "%s[%zu]", role, *n);
		}
		if (sign_key_from_spki(der, len, &k, e) != 0) {
			free(der);
			return err_prefix(e, "%s[%zu]", role, *n);
		}
		free(der);
		if (strcmp(k->keyid, raw.keyid) != 0) {
			sign_key_free(k);
			return err_set(e, ERR_FORMAT, "%s[%zu]: keyid is not the digest of its key",
			    role, *n);
		}
		if (sign_keyring_find(ents, *n, raw.keyid) >= 0) {
			sign_key_free(k);
			return err_set(e, ERR_FORMAT, "%s: key %.16s is listed twice", role, raw.keyid);
		}
		memcpy(ents[*n].keyid, raw.keyid, sizeof(raw.keyid));
		ents[*n].key = k;
		if (raw.not_after != NULL) {
			memcpy(ents[*n].not_after, raw.not_after, strlen(raw.not_after) + 1);
		}
		(*n)++;
	}
	if (*n == 0) {
		return err_set(e, ERR_FORMAT, "%s: no key", role);
	}
	return 0;
}

/* Parse the body (KR->env.payload) into KR's fields. */
static int
sign_keyring_parse_body(struct sign_keyring *kr, struct err *e)
{
	struct sign_kr_raw raw;
	struct err je = ERR_INIT;
	cJSON *root;
	int rc = -1;

	memset(&raw, 0, sizeof(raw));
	root = json_parse_object_ex((const char *)kr->env.payload, kr->env.payload_len,
	    SIGN_FILE_MAX, 4, &je);
	if (root == NULL) {
		err_set(e, ERR_FORMAT, "%s", err_msg(&je));
		goto out;
	}
	if (json_read_fields(root, sign_kr_fields, ARRAY_LEN(sign_kr_fields), 0, &raw,
	    &je) != 0) {
		err_set(e, ERR_FORMAT, "%s", err_msg(&je));
		goto out;
	}
	if (strcmp(raw.type, sign_keyring_type) != 0) {
		err_set(e, ERR_FORMAT, "type is not \"%s\"", sign_keyring_type);
		goto out;
	}
	if (!sign_iso_valid(raw.created_at)) {
		err_set(e, ERR_FORMAT, "created_at must be YYYY-MM-DDTHH:MM:SSZ");
		goto out;
	}
	if (sign_keyring_parse_role(raw.root_keys, 1, kr, e) != 0 ||
	    sign_keyring_parse_role(raw.release_keys, 0, kr, e) != 0) {
		goto out;
	}
	if ((size_t)raw.threshold > kr->nrel || (size_t)raw.root_threshold > kr->nroot) {
		err_set(e, ERR_FORMAT, "a threshold is above the number of keys it counts "
		    "(threshold %d of %zu release keys, root_threshold %d of %zu root keys)",
		    (int)raw.threshold, kr->nrel, (int)raw.root_threshold, kr->nroot);
		goto out;
	}
	kr->version = raw.version;
	kr->threshold = (int)raw.threshold;
	kr->root_threshold = (int)raw.root_threshold;
	memcpy(kr->created_at, raw.created_at, sizeof(raw.created_at));
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

size_t
sign_keyring_root_sigs(const struct sign_keyring *signers, const struct sign_envelope *doc)
{
	size_t valid = 0;

	for (size_t i = 0; i < doc->nsigs; i++) {
		const struct sign_sig *s = &doc->sigs[i];
		int k = sign_keyring_find(signers->root, signers->nroot, s->keyid);
		int seen = 0;

		for (size_t j = 0; j < i; j++) {
			seen = seen || strcmp(doc->sigs[j].keyid, s->keyid) == 0;
		}
		if (seen) {
			continue; /* each keyid counts once, whatever it signed before */
		}
		if (k >= 0 && sign_key_verify(signers->root[k].key, doc->payload, doc->payload_len,
		    s->sig, s->len)) {
			valid++;
		}
	}
	return valid;
}

/* Do SIGNERS' root keys (root_threshold of them) vouch for DOC? WHOSE names them. */
static int
sign_keyring_vouch(const struct sign_keyring *signers, const struct sign_envelope *doc,
    const char *whose, struct err *e)
{
	size_t valid = sign_keyring_root_sigs(signers, doc);
	int known = 0;

	if (valid >= (size_t)signers->root_threshold) {
		return 0;
	}
	for (size_t i = 0; i < doc->nsigs; i++) {
		known = known || sign_keyring_find(signers->root, signers->nroot,
		    doc->sigs[i].keyid) >= 0;
	}
	return err_set(e, known ? ERR_SIGNATURE : ERR_UNKNOWN_KEY, "%zu valid signature%s of "
	    "the root keys of %s (version %lld), %d needed", valid, valid == 1 ? "" : "s", whose,
	    (long long)signers->version, signers->root_threshold);
}

int
sign_keyring_parse(const void *buf, size_t len, int unsigned_ok, struct sign_keyring *kr,
    struct err *e)
{
	struct sign_keyring tmp;

	sign_keyring_init(&tmp);
	sign_keyring_free(kr);
	if (sign_envelope_parse(buf, len, "keyring", &tmp.env, e) != 0 ||
	    sign_keyring_parse_body(&tmp, e) != 0 ||
	    (!unsigned_ok && sign_keyring_vouch(&tmp, &tmp.env, "the keyring itself", e) != 0)) {
		sign_keyring_free(&tmp);
		return err_prefix(e, "keyring");
	}
	*kr = tmp;
	return 0;
}

int
sign_keyring_read(const char *path, int unsigned_ok, struct sign_keyring *kr, struct err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (fs_read_file(path, SIGN_FILE_MAX, &buf, &len) != 0) {
		sign_keyring_free(kr);
		return err_sys(e, "read %s", path);
	}
	rc = sign_keyring_parse(buf, len, unsigned_ok, kr, e);
	free(buf);
	if (rc != 0) {
		err_prefix(e, "%s", path);
	}
	return rc;
}

static int
sign_keyring_role_json(const struct sign_keyring *kr, int root, cJSON *body, struct err *e)
{
	const struct sign_keyent *ents = root ? kr->root : kr->rel;
	size_t n = root ? kr->nroot : kr->nrel;
	cJSON *arr = json_add_array(body, sign_role_name(root));

	if (arr == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char buf[SIGN_SPKI_MAX], *der = NULL;
		size_t len = 0;
		char *pub;
		cJSON *o;
		int bad;

		if (sign_key_spki(ents[i].key, buf, sizeof(buf), &der, &len, e) != 0) {
			return -1;
		}
		pub = sign_b64(der, len);
		o = cJSON_CreateObject();
		bad = pub == NULL || o == NULL || !cJSON_AddItemToArray(arr, o);
		if (bad) {
			cJSON_Delete(o);
		}
		if (bad || json_add_str(o, "keyid", ents[i].keyid) != 0 ||
		    json_add_str(o, "pub", pub) != 0 ||
		    (!root && json_add_str(o, "not_after",
		    ents[i].not_after[0] != '\0' ? ents[i].not_after : NULL) != 0)) {
			free(pub);
			return err_set(e, ERR_NOMEM, "out of memory");
		}
		free(pub);
	}
	return 0;
}

int
sign_keyring_seal(struct sign_keyring *kr, struct err *e)
{
	cJSON *body = NULL;
	char *text = NULL;
	int rc = -1;

	if (kr->version < 1 || kr->nroot == 0 || kr->nrel == 0 || kr->threshold < 1 ||
	    kr->root_threshold < 1 || (size_t)kr->threshold > kr->nrel ||
	    (size_t)kr->root_threshold > kr->nroot || !sign_iso_valid(kr->created_at)) {
		return err_set(e, ERR_FORMAT, "keyring: needs a version, at least one root and one "
		    "release key, and thresholds between 1 and the number of keys they count "
		    "(threshold %d of %zu release keys, root_threshold %d of %zu root keys)",
		    kr->threshold, kr->nrel, kr->root_threshold, kr->nroot);
	}
	body = cJSON_CreateObject();
	if (body == NULL || json_add_int(body, "v", 1) != 0 ||
	    json_add_str(body, "type", sign_keyring_type) != 0 ||
	    json_add_int(body, "version", kr->version) != 0 ||
	    json_add_int(body, "threshold", kr->threshold) != 0 ||
	    json_add_int(body, "root_threshold", kr->root_threshold) != 0) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (sign_keyring_role_json(kr, 1, body, e) != 0 ||
	    sign_keyring_role_json(kr, 0, body, e) != 0) {
		goto out;
	}
	if (json_add_str(body, "created_at", kr->created_at) != 0 ||
	    (text = json_print_compact(body)) == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (sign_envelope_set_payload(&kr->env, text, strlen(text), e) != 0) {
		goto out;
	}
	rc = 0;
out:
	free(text);
	cJSON_Delete(body);
	return rc;
}

int
sign_keyring_format(const struct sign_keyring *kr, char **out, size_t *outlen, struct err *e)
{
	return sign_envelope_format(&kr->env, "keyring", out, outlen, e);
}

int
sign_keyring_check_next(const struct sign_keyring *cur, const struct sign_keyring *next,
    struct err *e)
{
	if (next->version != cur->version + 1) {
		return err_set(e, ERR_CONFLICT, "keyring version %lld cannot replace version %lld: "
		    "only version %lld can", (long long)next->version, (long long)cur->version,
		    (long long)cur->version + 1);
	}
	if (sign_keyring_vouch(cur, &next->env, "the current keyring", e) != 0 ||
	    sign_keyring_vouch(next, &next->env, "the new keyring", e) != 0) {
		return err_prefix(e, "keyring version %lld", (long long)next->version);
	}
	return 0;
}

int
sign_keyring_add_key(struct sign_keyring *kr, int root, const struct sign_key *k,
    const char *not_after, struct err *e)
{
	struct sign_keyent *ents = root ? kr->root : kr->rel;
	size_t *n = root ? &kr->nroot : &kr->nrel;
	struct sign_key *pub = NULL;

	if (sign_keyring_find(ents, *n, k->keyid) >= 0) {
		return err_set(e, ERR_CONFLICT, "key %s is already in %s", k->keyid,
		    sign_role_name(root));
	}
	if (*n >= SIGN_MAX_KEYS) {
		return err_set(e, ERR_CONFLICT, "%s holds %d keys already", sign_role_name(root),
		    SIGN_MAX_KEYS);
	}
	if (not_after != NULL && (root || !sign_iso_valid(not_after) ||
	    strlen(not_after) >= sizeof(ents[0].not_after))) {
		return err_set(e, ERR_USAGE, "not_after applies to release keys, as "
		    "YYYY-MM-DDTHH:MM:SSZ");
	}
	if (sign_key_public_copy(k, &pub, e) != 0) {
		return -1;
	}
	memset(&ents[*n], 0, sizeof(ents[*n]));
	memcpy(ents[*n].keyid, k->keyid, sizeof(ents[*n].keyid));
	ents[*n].key = pub;
	if (not_after != NULL) {
		memcpy(ents[*n].not_after, not_after, strlen(not_after) + 1);
	}
	(*n)++;
	return 0;
}

int
sign_keyring_remove_key(struct sign_keyring *kr, int root, const char *keyid, struct err *e)
{
	struct sign_keyent *ents = root ? kr->root : kr->rel;
	size_t *n = root ? &kr->nroot : &kr->nrel, len = strlen(keyid);
	int found = -1;

	if (len < 8 || len > SIGN_KEYID_LEN) {
		return err_set(e, ERR_USAGE, "a keyid (or a prefix of at least 8 hex digits) "
		    "is expected, not '%.80s'", keyid);
	}
	for (size_t i = 0; i < *n; i++) {
		if (strncmp(ents[i].keyid, keyid, len) == 0) {
			if (found >= 0) {
				return err_set(e, ERR_USAGE, "keyid prefix %s is ambiguous", keyid);
			}
			found = (int)i;
		}
	}
	if (found < 0) {
		return err_set(e, ERR_NOT_FOUND, "no key %s in %s", keyid, sign_role_name(root));
	}
	sign_key_free(ents[found].key);
	memmove(&ents[found], &ents[found + 1], (*n - (size_t)found - 1) * sizeof(ents[0]));
	(*n)--;
	memset(&ents[*n], 0, sizeof(ents[0]));
	return 0;
}

/* ---- the acceptance rule ---------------------------------------------- */

static int
sign_past(const char *iso, time_t now)
{
	time_t t;

	return iso[0] != '\0' && iso8601_parse(iso, &t) == 0 && now > t;
}

/* Count the distinct valid release-key signatures of ENV into V. */
static int
sign_release_sigs(const struct sign_keyring *kr, const struct sign_envelope *env, time_t now,
    struct sign_verdict *v, struct err *e)
{
	size_t known = 0, bad = 0, lapsed = 0;

	v->nsigned = 0;
	for (size_t i = 0; i < env->nsigs; i++) {
		const struct sign_sig *s = &env->sigs[i];
		int k = sign_keyring_find(kr->rel, kr->nrel, s->keyid), seen = 0;

		for (size_t j = 0; j < i; j++) {
			seen = seen || strcmp(env->sigs[j].keyid, s->keyid) == 0;
		}
		if (k < 0 || seen) {
			continue; /* unknown keys do not count; a keyid counts once */
		}
		known++;
		if (sign_past(kr->rel[k].not_after, now)) {
			lapsed++;
			continue;
		}
		if (!sign_key_verify(kr->rel[k].key, env->payload, env->payload_len, s->sig,
		    s->len)) {
			bad++;
			continue;
		}
		memcpy(v->signed_by[v->nsigned++], s->keyid, SIGN_KEYID_LEN + 1);
	}
	if (env->nsigs == 0) {
		return err_set(e, ERR_SIGNATURE, "the signature file holds no signature");
	}
	if (known == 0) {
		return err_set(e, ERR_UNKNOWN_KEY, "signed by no release key of keyring version %lld "
		    "(first signature by key %.16s...)", (long long)kr->version, env->sigs[0].keyid);
	}
	if (v->nsigned < (size_t)kr->threshold) {
		return err_set(e, ERR_SIGNATURE, "%zu valid signature%s of release keys, keyring "
		    "version %lld needs %d (%zu invalid, %zu by keys past their not_after)",
		    v->nsigned, v->nsigned == 1 ? "" : "s", (long long)kr->version, kr->threshold,
		    bad, lapsed);
	}
	return 0;
}

int
sign_statement_want(const struct sign_statement *st, const struct sign_want *w, struct err *e)
{
	if (w->compatible != NULL && strcmp(st->compatible, w->compatible) != 0) {
		return err_set(e, ERR_STATEMENT, "the release is signed for compatible '%s', this "
		    "host is '%.64s'", st->compatible, w->compatible);
	}
	if (w->kind != 0 && (st->kinds & w->kind) == 0) {
		return err_set(e, ERR_STATEMENT, "the release is not signed to be installed as %s",
		    w->kind == SIGN_KIND_UPDATER ? "the updater" : "the agent's release");
	}
	if (w->sha256 != NULL && strcasecmp(st->sha256, w->sha256) != 0) {
		return err_set(e, ERR_STATEMENT, "the signed sha256 %.16s... is not the declared "
		    "sha256 %.16s...", st->sha256, w->sha256);
	}
	if (w->size >= 0 && st->size != w->size) {
		return err_set(e, ERR_STATEMENT, "the signed size %lld is not the tarball's %lld",
		    (long long)st->size, (long long)w->size);
	}
	return 0;
}

int
sign_release_check(const struct sign_keyring *kr, const void *tsig, size_t len,
    const struct sign_want *w, struct sign_verdict *v, struct err *e)
{
	struct sign_envelope env;
	struct sign_verdict out;
	time_t now = w->now != 0 ? w->now : time(NULL);
	int rc = -1;

	memset(&env, 0, sizeof(env));
	memset(&out, 0, sizeof(out));
	if (kr->nrel == 0) {
		return err_set(e, ERR_KEYRING, "no keyring to check the signature against");
	}
	if (sign_tsig_parse(tsig, len, &env, &out.st, e) != 0 ||
	    sign_release_sigs(kr, &env, now, &out, e) != 0) {
		goto out;
	}
	if (sign_past(out.st.expires_at, now)) {
		err_set(e, ERR_EXPIRED, "the signed statement expired at %s", out.st.expires_at);
		goto out;
	}
	if (sign_statement_want(&out.st, w, e) != 0) {
		goto out;
	}
	if (out.st.security_version < w->floor) {
		err_set(e, ERR_FLOOR, "security version %lld is below the security floor "
		    "%lld", (long long)out.st.security_version, (long long)w->floor);
		goto out;
	}
	if (v != NULL) {
		*v = out;
	}
	rc = 0;
out:
	sign_envelope_free(&env);
	return rc;
}
