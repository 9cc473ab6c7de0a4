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
#include "common/tls.h"
#include "common/util.h"

#define TRUST_CURRENT "current"
#define TRUST_CERT_FILE "cert.pem"
#define TRUST_KEY_FILE "key.pem"
/* A CA bundle a rotation pushed (PUT /trust), overriding the configured CA. */
#define TRUST_CA_FILE "ca.pem"
/* Most CA certificates in such a bundle. */
#define TRUST_CA_MAX 4
#define TRUST_CA_MAX_BYTES (64 * 1024)

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
 * The CA bundle to trust: TLS_DIR/ca.pem when TLS_DIR is set and that file
 * exists (a CA rotation put it there), else CA. Into OUT (PATH_MAX bytes).
 */
int trust_ca_path(const char *tls_dir, const char *ca, char out[PATH_MAX], struct err *e) WUR;

/*
 * The SHA-256 fingerprints of the certificates in the file PATH, at most
 * MAX into OUT (*N). -1 when the file does not parse.
 */
int trust_ca_fingerprints(const char *path, char (*out)[TLS_FP_HEX_LEN + 1], size_t max,
    size_t *n) WUR;

/*
 * Check a CA bundle from the wire (BUF, LEN bytes of PEM): 1..TRUST_CA_MAX
 * certificates, each a CA certificate valid now; and every certificate file
 * in MUST (NULL-terminated, may be NULL) verifies against it — a bundle that
 * would not trust this host's own identities is refused (ERR_CONFLICT).
 * ERR_BAD_REQUEST for anything that is not such a bundle.
 */
int trust_check_ca_bundle(const unsigned char *buf, size_t len, const char *const *must,
    struct err *e) WUR;

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
