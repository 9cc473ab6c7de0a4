/*
 * certs — the master's side of the certificate lifecycle: revocation (the
 * registry's revocations table, the CRL signed from it), the CRL file, and
 * the expiry status of the CA and the master's own certificate.
 *
 * Files under HOME (next to the CA, see pki/pki.h):
 *   HOME/ca/crl.der, HOME/ca/crl.pem   the current CRL (0644, atomic)
 *   HOME/ca/issued/SERIAL.crt          every certificate the CA signed
 *
 * The CLI (master/cmd_pki.c) only translates options into these calls.
 */
#ifndef TANDEM_MASTER_CERTS_H
#define TANDEM_MASTER_CERTS_H

#include <stddef.h>
#include <time.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/util.h"
#include "master/registry.h"

#define CERTS_DEFAULT_WARN_DAYS 30
/* Most certificates one `pki revoke --host` takes (every generation of a host). */
#define CERTS_REVOKE_MAX 256

/*
 * Give the registry's revoked serials to the TLS layer (tls_revoked_set),
 * so this process refuses revoked peers on every handshake.
 */
int certs_load_revocations(struct registry *reg, struct err *e) WUR;

/* What one revocation found. */
struct certs_revoked {
	struct reg_revocation r;
	int already; /* was revoked before */
};

/*
 * Revoke: TARGET is a certificate file (PEM/DER), a serial (hex, at most 40
 * digits) or a certificate fingerprint (64 hex, looked up in the CA's issued
 * record); or, with TARGET NULL, every certificate of host HOST (agent and
 * updater, every generation in the issued record and the enrollment bundle
 * HOME/hosts/HOST/). Records them in the registry with REASON (enum
 * crl_reason). *OUT (malloc'd, *N entries) says what was revoked;
 * ERR_NOT_FOUND when nothing matched. Does not write the CRL: call
 * certs_crl_issue() afterwards.
 */
int certs_revoke(const char *home, const char *target, const char *host, int reason,
    struct certs_revoked **out, size_t *n, struct err *e) WUR;

/*
 * Sign a CRL of every revocation in the registry, valid from THIS_UPDATE
 * (0: now - 5 min, for clock skew) to NEXT_UPDATE, with the next CRL
 * number; write HOME/ca/crl.der and crl.pem. *NUMBER gets its number.
 */
int certs_crl_issue(const char *home, time_t this_update, time_t next_update,
    unsigned long long *number, struct err *e) WUR;

/*
 * The CA's and the master certificate's subject, serial, not_after, days
 * left and state ("ok", "expiring" within WARN_DAYS, "expired"), and the
 * CRL's number, validity, entry count and state ("ok", "stale", "missing"),
 * as a new JSON object (*OUT).
 */
int certs_status(const char *home, int warn_days, cJSON **out, struct err *e) WUR;

/*
 * "ok", "expiring" or "expired" for a certificate ending NOT_AFTER at NOW
 * with a warning horizon of WARN_DAYS; *DAYS_LEFT (may be NULL) gets the
 * whole days left (negative once expired).
 */
const char *certs_expiry_state(time_t not_after, time_t now, int warn_days, long *days_left);

#endif
