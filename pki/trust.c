#include "pki/trust.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
