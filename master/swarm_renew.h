/*
 * swarm_renew — online renewal of a host's certificates (tandem swarm
 * renew), over the identity the host already has. For the updater's
 * certificate, then the agent's, when it expires within the horizon:
 *
 *   1. POST /cert/csr     the host makes the key (it never leaves the host)
 *                         and answers a CSR;
 *   2. the CA signs the CSR's key with the name, role and address from the
 *      registry (never the CSR's subject or extensions);
 *   3. the registry records the new fingerprint as the next pin: from now
 *      on connections accept the old and the new certificate;
 *   4. POST /cert/install the host switches to the new pair atomically and
 *                         serves with it (updater) or reloads the agent;
 *   5. a fresh handshake pinned to the new certificate alone must succeed;
 *   6. POST /cert/confirm the host drops the old pair;
 *   7. the registry makes the new fingerprint the only pin.
 *
 * A failure after step 3 leaves both pins in the registry: the host works
 * with either pair, and running the renewal again finishes it. After the
 * certificates, the host gets the master's current CRL.
 */
#ifndef TANDEM_MASTER_SWARM_RENEW_H
#define TANDEM_MASTER_SWARM_RENEW_H

#include <time.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/util.h"
#include "master/registry.h"
#include "master/swarm_push.h"
#include "pki/pki.h"

#define SWARM_RENEW_DEFAULT_BEFORE_DAYS 30
/* How long step 5 retries (the agent reloads on SIGHUP, asynchronously). */
#define SWARM_RENEW_HANDSHAKE_MS 15000

struct swarm_renew_opts {
	long long before_s;      /* renew what expires within this many seconds */
	int force;               /* renew whatever the expiry */
	int days;                /* validity of the new certificates (0: PKI default) */
	long long test_valid_s;  /* test builds only: validity in seconds instead */
	unsigned which;          /* 1: the updater's, 2: the agent's (0: both) */
};

/* What happened to one certificate of one host. */
struct swarm_renew_cert {
	char result[16];                  /* "renewed", "current", "failed", "skipped" */
	char old_fp[REG_FP_LEN + 1];
	char new_fp[REG_FP_LEN + 1];
	char old_not_after[32];           /* ISO 8601, "" when unknown */
	char new_not_after[32];
	char error[512];
};

struct swarm_renew_host {
	char host[REG_NAME_MAX + 1];
	struct swarm_renew_cert cert[2];  /* [0] updater, [1] agent */
};

/*
 * Renew H's certificates as described above. C is an open swarm context
 * (HOME, TLS, registry). OUT says per certificate what happened. Returns 0
 * when nothing failed, -1 otherwise.
 */
int swarm_renew_host(struct swarm_ctx *c, const struct reg_host *h,
    const struct swarm_renew_opts *o, struct swarm_renew_host *out);

/*
 * METHOD PATH with the JSON BODY (or NULL) to H's updater (AGENT: its
 * agent) over C's TLS context: the JSON answer of a 200, else NULL with E;
 * *STATUS (may be NULL) gets the HTTP status, 0 when there was no answer
 * (unreachable, refused handshake). _raw: BODY is LEN bytes with the header
 * CTYPE ("Content-Type: ...").
 */
cJSON *swarm_renew_call(struct swarm_ctx *c, const struct reg_host *h, int agent,
    const char *method, const char *path, const cJSON *body, int *status, struct err *e);
cJSON *swarm_renew_call_raw(struct swarm_ctx *c, const struct reg_host *h, int agent,
    const char *method, const char *path, const char *ctype, const void *body, size_t len,
    int *status, struct err *e);

/*
 * Certify CSR (PEM) with IO (name, role, SANs, eku, master_cn set by the
 * caller; the validity from DAYS, or TEST_VALID_S seconds when > 0) through
 * the hand-over file HOME/renew/TAG.crt, removed again (the CA keeps its copy
 * in ca/issued/). *PEM (malloc'd) and *ID get the certificate.
 */
int swarm_renew_certify(const char *home, struct pki_issue_opts *io, const char *tag,
    const char *csr, int days, long long test_valid_s, char **pem, struct tls_identity *id,
    struct err *e) WUR;

/*
 * Send the master's CRL (HOME/ca/crl.der) to H's updater (PUT /crl), which
 * enforces it and passes it on to its agent. *NUMBER gets the CRL number the
 * host reports. 0, or -1 with E (no CRL signed yet, the host refused it,
 * transport).
 */
int swarm_crl_push_host(struct swarm_ctx *c, const struct reg_host *h,
    unsigned long long *number, struct err *e) WUR;

#endif
