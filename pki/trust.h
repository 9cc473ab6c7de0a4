/*
 * trust — what a host (agent, updater) trusts and presents, read the same way
 * by both daemons at start and on every reload:
 *
 *   - its identity: the certificate and key its config names (the bootstrap
 *     pair from enrollment, typically read-only under /etc), unless a renewed
 *     pair exists in the state directory: TLS_DIR/current/cert.pem + key.pem
 *     (current is a symlink to gen-N/, switched atomically by the renewal);
 *   - the CRL: a file (DER or PEM) verified against the configured CA bundle;
 *     its serials go to tls_revoked_set(). A CRL that does not verify is
 *     refused and the set already in force stays.
 */
#ifndef TANDEM_PKI_TRUST_H
#define TANDEM_PKI_TRUST_H

#include <limits.h>
#include <stddef.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"

#define TRUST_CURRENT "current"
#define TRUST_CERT_FILE "cert.pem"
#define TRUST_KEY_FILE "key.pem"

/* The CRL as a host sees it, for /health. */
enum trust_crl_state {
	TRUST_CRL_NONE = 0,   /* no CRL configured or none received yet */
	TRUST_CRL_OK = 1,     /* verified, within its validity */
	TRUST_CRL_STALE = 2,  /* verified, past nextUpdate: still enforced, warned */
	TRUST_CRL_INVALID = 3 /* the file does not verify: the previous set stays */
};

struct trust_crl_status {
	enum trust_crl_state state;
	unsigned long long number;
	time_t this_update;
	time_t next_update;
	size_t revoked;
};

const char *trust_crl_state_name(enum trust_crl_state s);

/*
 * The certificate and key to use: TLS_DIR/current/{cert,key}.pem when
 * TLS_DIR is set and both exist, else CERT and KEY. Paths into CERT_OUT and
 * KEY_OUT (PATH_MAX bytes each). *RENEWED = 1 when the state pair was taken.
 */
int trust_identity_paths(const char *tls_dir, const char *cert, const char *key,
    char cert_out[PATH_MAX], char key_out[PATH_MAX], int *renewed, struct err *e) WUR;

/*
 * Read the CRL at PATH, verify it against CA_FILE and give its serials to
 * tls_revoked_set(). *ST describes the result. A missing file is no CRL
 * (state NONE, returns 0, the set is emptied); a file that does not verify
 * returns -1 with E and *ST state INVALID, leaving the set in force as it was.
 * MIN_NUMBER: a CRL numbered below it is refused as a rollback (0: any).
 */
int trust_load_crl(const char *path, const char *ca_file, unsigned long long min_number,
    struct trust_crl_status *st, struct err *e) WUR;

/*
 * Check the CRL in BUF (LEN bytes, from the wire) against CA_FILE and the
 * number in force (CURRENT; a lower number is a rollback, ERR_CONFLICT),
 * without installing anything. *NUMBER gets its number.
 */
int trust_check_crl(const unsigned char *buf, size_t len, const char *ca_file,
    unsigned long long current, unsigned long long *number, struct err *e) WUR;

#endif
