#include "pki/csr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_csr.h>

#include "common/fs.h"
#include "pki/pki.h"
#include "pki/pki_int.h"

#define CSR_PEM_MAX 4096
#define CSR_KEY_PEM_MAX 4096

static int
csr_mbed_err(struct err *e, enum err_kind kind, const char *what, int ret)
{
	char buf[160];

	mbedtls_strerror(ret, buf, sizeof(buf));
	return err_set(e, kind, "%s: %s (-0x%04x)", what, buf, (unsigned)-ret);
}

int
pki_csr_load(mbedtls_x509_csr *csr, const unsigned char *buf, size_t len, struct err *e)
{
	static const char pem_tag[] = "-----BEGIN CERTIFICATE REQUEST-----";
	const mbedtls_md_info_t *md;
	unsigned char hash[MBEDTLS_MD_MAX_SIZE];
	int ret;

	if (buf == NULL || len == 0) {
		return err_set(e, ERR_FORMAT, "empty certificate request");
	}
	if (len > PKI_CSR_MAX) {
		return err_set(e, ERR_TOO_LARGE, "certificate request of %zu bytes: at most %d", len,
		    PKI_CSR_MAX);
	}
	if (memmem(buf, len, pem_tag, sizeof(pem_tag) - 1) != NULL) {
		unsigned char *z = malloc(len + 1);
		if (z == NULL) {
			return err_set(e, ERR_NOMEM, "out of memory");
		}
		memcpy(z, buf, len);
		z[len] = '\0';
		ret = mbedtls_x509_csr_parse(csr, z, len + 1);
		free(z);
	} else {
		ret = mbedtls_x509_csr_parse_der(csr, buf, len);
	}
	if (ret != 0) {
		return csr_mbed_err(e, ERR_FORMAT, "not a certificate request", ret);
	}
	/* Proof of possession: the request is signed by the key it asks to certify. */
	md = mbedtls_md_info_from_type(csr->sig_md);
	if (md == NULL || mbedtls_md(md, csr->cri.p, csr->cri.len, hash) != 0 ||
	    mbedtls_pk_verify_ext(csr->sig_pk, csr->sig_opts, &csr->pk, csr->sig_md, hash,
		mbedtls_md_get_size(md), csr->sig.p, csr->sig.len) != 0) {
		return err_set(e, ERR_SIGNATURE, "the certificate request's signature does not verify");
	}
	if (!mbedtls_pk_can_do(&csr->pk, MBEDTLS_PK_ECKEY) &&
	    !(mbedtls_pk_can_do(&csr->pk, MBEDTLS_PK_RSA) && mbedtls_pk_get_bitlen(&csr->pk) >= 2048)) {
		return err_set(e, ERR_FORMAT, "the request's key is neither EC nor RSA >= 2048 bits");
	}
	return 0;
}

int
pki_csr_check(const unsigned char *buf, size_t len, struct err *e)
{
	mbedtls_x509_csr csr;
	int rc;

	mbedtls_x509_csr_init(&csr);
	rc = pki_csr_load(&csr, buf, len, e);
	mbedtls_x509_csr_free(&csr);
	return rc;
}

/* Load the pending key at PATH, or make and store a new one. */
static int
csr_key(mbedtls_pk_context *key, const char *path, struct pki_rng *rng, struct err *e)
{
	struct stat st;
	unsigned char *pem = NULL;
	int ret;
	int rc = -1;

	if (lstat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
			return err_set(e, ERR_CONFLICT, "%s: not a private (0600) regular file", path);
		}
		ret = mbedtls_pk_parse_keyfile(key, path, NULL);
		if (ret != 0) {
			return csr_mbed_err(e, ERR_FORMAT, path, ret);
		}
		return 0;
	}
	if (errno != ENOENT) {
		return err_sys(e, "%s", path);
	}
	ret = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (ret == 0) {
		ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key),
		    mbedtls_ctr_drbg_random, &rng->drbg);
	}
	if (ret != 0) {
		return csr_mbed_err(e, ERR_INTERNAL, "generating the key", ret);
	}
	pem = calloc(1, CSR_KEY_PEM_MAX);
	if (pem == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	ret = mbedtls_pk_write_key_pem(key, pem, CSR_KEY_PEM_MAX);
	if (ret != 0) {
		csr_mbed_err(e, ERR_INTERNAL, "encoding the key", ret);
		goto out;
	}
	if (fs_write_atomic(path, pem, strlen((const char *)pem), 0600) != 0) {
		err_sys(e, "%s: cannot write", path);
		goto out;
	}
	rc = 0;
out:
	secure_free(pem, CSR_KEY_PEM_MAX);
	return rc;
}

int
pki_csr_new(const char *key_path, const char *cn, char **pem, struct err *e)
{
	mbedtls_x509write_csr w;
	mbedtls_pk_context key;
	struct pki_rng rng;
	char subject[128];
	unsigned char *buf = NULL;
	int ret;
	int rc = -1;

	mbedtls_x509write_csr_init(&w);
	mbedtls_pk_init(&key);
	pki_rng_setup(&rng);
	if (cn == NULL || *cn == '\0' || strlen(cn) > PKI_CN_MAX ||
	    snprintf(subject, sizeof(subject), "CN=%s", cn) >= (int)sizeof(subject) ||
	    strpbrk(cn, ",=+\\\"<>;") != NULL) {
		err_set(e, ERR_BAD_REQUEST, "unusable CN for a request");
		goto out;
	}
	if (pki_rng_seed(&rng, e) != 0) {
		goto out;
	}
	if (csr_key(&key, key_path, &rng, e) != 0) {
		goto out;
	}
	mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_csr_set_key(&w, &key);
	ret = mbedtls_x509write_csr_set_subject_name(&w, subject);
	if (ret != 0) {
		csr_mbed_err(e, ERR_INTERNAL, "request subject", ret);
		goto out;
	}
	buf = calloc(1, CSR_PEM_MAX);
	if (buf == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	ret = mbedtls_x509write_csr_pem(&w, buf, CSR_PEM_MAX, mbedtls_ctr_drbg_random, &rng.drbg);
	if (ret != 0) {
		csr_mbed_err(e, ERR_INTERNAL, "writing the request", ret);
		goto out;
	}
	*pem = (char *)buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	pki_rng_free(&rng);
	mbedtls_pk_free(&key);
	mbedtls_x509write_csr_free(&w);
	return rc;
}
