#include "pki/trust.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mbedtls/x509_crt.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/tls.h"
#include "pki/crl.h"

const char *
trust_crl_state_name(enum trust_crl_state s)
{
	switch (s) {
	case TRUST_CRL_OK:
		return "ok";
	case TRUST_CRL_STALE:
		return "stale";
	case TRUST_CRL_INVALID:
		return "invalid";
	case TRUST_CRL_NONE:
		break;
	}
	return "none";
}

static int
trust_is_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int
trust_identity_paths(const char *tls_dir, const char *cert, const char *key,
    char cert_out[PATH_MAX], char key_out[PATH_MAX], int *renewed, struct err *e)
{
	*renewed = 0;
	if (tls_dir != NULL && *tls_dir != '\0') {
		char c[PATH_MAX], k[PATH_MAX];
		int nc = snprintf(c, sizeof(c), "%s/%s/%s", tls_dir, TRUST_CURRENT, TRUST_CERT_FILE);
		int nk = snprintf(k, sizeof(k), "%s/%s/%s", tls_dir, TRUST_CURRENT, TRUST_KEY_FILE);

		if (nc < 0 || nk < 0 || (size_t)nc >= sizeof(c) || (size_t)nk >= sizeof(k)) {
			return err_set(e, ERR_CONFIG, "tls_dir path too long");
		}
		if (trust_is_file(c) && trust_is_file(k)) {
			memcpy(cert_out, c, (size_t)nc + 1);
			memcpy(key_out, k, (size_t)nk + 1);
			*renewed = 1;
			return 0;
		}
	}
	if (cert == NULL || key == NULL || strlcpy_chk(cert_out, cert, PATH_MAX) != 0 ||
	    strlcpy_chk(key_out, key, PATH_MAX) != 0) {
		return err_set(e, ERR_CONFIG, "certificate and key paths are required");
	}
	return 0;
}

int
trust_ca_path(const char *tls_dir, const char *ca, char out[PATH_MAX], struct err *e)
{
	if (tls_dir != NULL && *tls_dir != '\0') {
		char p[PATH_MAX];
		int n = snprintf(p, sizeof(p), "%s/%s", tls_dir, TRUST_CA_FILE);

		if (n < 0 || (size_t)n >= sizeof(p)) {
			return err_set(e, ERR_CONFIG, "tls_dir path too long");
		}
		if (trust_is_file(p)) {
			memcpy(out, p, (size_t)n + 1);
			return 0;
		}
	}
	if (ca == NULL || strlcpy_chk(out, ca, PATH_MAX) != 0) {
		return err_set(e, ERR_CONFIG, "the CA path is required");
	}
	return 0;
}

int
trust_ca_fingerprints(const char *path, char (*out)[TLS_FP_HEX_LEN + 1], size_t max, size_t *n)
{
	mbedtls_x509_crt cas;
	int rc = -1;

	*n = 0;
	mbedtls_x509_crt_init(&cas);
	if (mbedtls_x509_crt_parse_file(&cas, path) == 0) {
		for (const mbedtls_x509_crt *c = &cas; c != NULL && *n < max; c = c->next) {
			struct tls_identity id;
			if (tls_identity_from_der(c->raw.p, c->raw.len, NULL, &id) == 0) {
				memcpy(out[(*n)++], id.fingerprint, sizeof(id.fingerprint));
			}
		}
		rc = 0;
	}
	mbedtls_x509_crt_free(&cas);
	return rc;
}

int
trust_check_ca_bundle(const unsigned char *buf, size_t len, const char *const *must,
    struct err *e)
{
	mbedtls_x509_crt cas, leaf;
	unsigned char *z = NULL;
	int n = 0, rc = -1;

	mbedtls_x509_crt_init(&cas);
	mbedtls_x509_crt_init(&leaf);
	if (len == 0 || len > TRUST_CA_MAX_BYTES || memchr(buf, '\0', len) != NULL ||
	    memmem(buf, len, "-----BEGIN CERTIFICATE-----", 27) == NULL) {
		err_set(e, ERR_BAD_REQUEST, "not a PEM bundle of CA certificates");
		goto out;
	}
	/* mbedTLS wants PEM NUL-terminated, with the NUL counted. */
	z = malloc(len + 1);
	if (z == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(z, buf, len);
	z[len] = '\0';
	if (mbedtls_x509_crt_parse(&cas, z, len + 1) != 0) {
		err_set(e, ERR_BAD_REQUEST, "the bundle holds something that is not a certificate");
		goto out;
	}
	for (const mbedtls_x509_crt *c = &cas; c != NULL; c = c->next) {
		if (++n > TRUST_CA_MAX) {
			err_set(e, ERR_BAD_REQUEST, "more than %d certificates in the bundle",
			    TRUST_CA_MAX);
			goto out;
		}
		if (!c->ca_istrue) {
			err_set(e, ERR_BAD_REQUEST, "certificate %d of the bundle is not a CA", n);
			goto out;
		}
		if (mbedtls_x509_time_is_past(&c->valid_to) ||
		    mbedtls_x509_time_is_future(&c->valid_from)) {
			err_set(e, ERR_BAD_REQUEST, "CA certificate %d of the bundle is not valid now",
			    n);
			goto out;
		}
	}
	for (const char *const *m = must; m != NULL && *m != NULL; m++) {
		uint32_t flags = 0;

		mbedtls_x509_crt_free(&leaf);
		mbedtls_x509_crt_init(&leaf);
		if (mbedtls_x509_crt_parse_file(&leaf, *m) != 0) {
			err_set(e, ERR_IO, "%s: cannot read the certificate", *m);
			goto out;
		}
		if (mbedtls_x509_crt_verify(&leaf, &cas, NULL, NULL, &flags, NULL, NULL) != 0) {
			err_set(e, ERR_CONFLICT,
			    "the bundle does not trust this host's certificate %s: refused, it "
			    "would lock the host out", *m);
			goto out;
		}
	}
	rc = 0;
out:
	free(z);
	mbedtls_x509_crt_free(&cas);
	mbedtls_x509_crt_free(&leaf);
	return rc;
}

/* Verify BUF; fill CI (caller frees). */
static int
trust_verify(const unsigned char *buf, size_t len, const char *ca_file,
    unsigned long long min_number, struct crl_info *ci, struct err *e)
{
	if (crl_verify(buf, len, ca_file, ci, e) != 0) {
		return -1;
	}
	if (ci->number < min_number) {
		err_set(e, ERR_CONFLICT, "CRL number %llu is older than the %llu in force", ci->number,
		    min_number);
		crl_info_free(ci);
		return -1;
	}
	return 0;
}

int
trust_check_crl(const unsigned char *buf, size_t len, const char *ca_file,
    unsigned long long current, unsigned long long *number, struct err *e)
{
	struct crl_info ci;

	if (trust_verify(buf, len, ca_file, current, &ci, e) != 0) {
		return -1;
	}
	*number = ci.number;
	crl_info_free(&ci);
	return 0;
}

int
trust_load_crl(const char *path, const char *ca_file, unsigned long long min_number,
    struct trust_crl_status *st, struct err *e)
{
	struct crl_info ci;
	const char **serials = NULL;
	char *buf = NULL;
	size_t len = 0;
	int rc = -1;

	memset(st, 0, sizeof(*st));
	if (path == NULL || *path == '\0') {
		return tls_revoked_set(NULL, 0, e);
	}
	if (fs_read_file(path, CRL_MAX_BYTES, &buf, &len) != 0) {
		if (errno == ENOENT) {
			return tls_revoked_set(NULL, 0, e);
		}
		st->state = TRUST_CRL_INVALID;
		return err_sys(e, "%s", path);
	}
	if (trust_verify((const unsigned char *)buf, len, ca_file, min_number, &ci, e) != 0) {
		st->state = TRUST_CRL_INVALID;
		err_prefix(e, "%s", path);
		goto out;
	}
	if (ci.n_entries > 0) {
		serials = calloc(ci.n_entries, sizeof(*serials));
		if (serials == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			st->state = TRUST_CRL_INVALID;
			crl_info_free(&ci);
			goto out;
		}
		for (size_t i = 0; i < ci.n_entries; i++) {
			serials[i] = ci.entries[i].serial;
		}
	}
	if (tls_revoked_set(serials, ci.n_entries, e) != 0) {
		st->state = TRUST_CRL_INVALID;
		crl_info_free(&ci);
		goto out;
	}
	st->state = crl_is_stale(&ci, time(NULL)) ? TRUST_CRL_STALE : TRUST_CRL_OK;
	st->number = ci.number;
	st->this_update = ci.this_update;
	st->next_update = ci.next_update;
	st->revoked = ci.n_entries;
	if (st->state == TRUST_CRL_STALE) {
		log_warnx("%s: CRL %llu is past its next update: still enforced; ask the master "
			  "for a new one ('tandem pki crl' and 'tandem swarm crl push')",
		    path, ci.number);
	}
	crl_info_free(&ci);
	rc = 0;
out:
	free(serials);
	free(buf);
	return rc;
}
