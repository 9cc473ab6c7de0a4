/*
 * renew — the updater's side of the certificate lifecycle: its own and its
 * agent's identity renewed online (pki/hostcert under STATE/tls/updater and
 * STATE/tls/agent, STATE = INSTALL_DIR/state) and the CRL it enforces
 * (STATE/crl.der). Everything lives in the state directory, where the
 * hardened unit may write; the configuration names the bootstrap files and
 * state overrides them.
 *
 * Routes (master only, pinned master), answered by renew_routes():
 *   POST /cert/csr      {"which":"updater"|"agent"}  -> {"which","csr"}
 *   POST /cert/install  {"which","cert"}             -> {"which","fingerprint",
 *                                                        "serial","not_after","gen"}
 *   POST /cert/confirm  {"which"}                    -> {"which","confirmed"}
 *   PUT  /crl           the CRL (DER or PEM)         -> {"crl","crl_number","revoked",
 *                                                        "crl_next_update"}
 *   PUT  /pins/master   {"add": FP} | {"confirm": FP} -> {"pinned","pins"}
 *                       the master pins' rollover (updater/masterpins); a
 *                       confirm must come over a connection presenting FP
 *   PUT  /trust         a PEM bundle of CA certificates -> {"ca_fingerprints"}
 *                       a CA rotation: STATE/tls/{agent,updater}/ca.pem
 *                       override the configured ca (updater reloads, agent
 *                       gets SIGHUP); refused when it would not trust this
 *                       host's own certificates
 *
 * After /cert/install of the updater's own identity, new connections are
 * served with it at once (refcounted contexts, renew_hooks.reload_self); of
 * the agent's, the agent is sent SIGHUP (it re-reads TANDEM_AGENT_TLS_DIR,
 * set by the updater on every start) and the probe accepts the agent's
 * certificate in force and the one before it.
 */
#ifndef TANDEM_UPDATER_RENEW_H
#define TANDEM_UPDATER_RENEW_H

#include <limits.h>
#include <stddef.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/httpd.h"
#include "common/util.h"
#include "updater/agent.h"
#include "updater/config.h"

#define RENEW_NROUTES 6
#define RENEW_CRL_FILE "crl.der"
/* Largest JSON body accepted (a CSR or a certificate inside); a CRL may have CRL_MAX_BYTES. */
#define RENEW_MAX_BODY (256 * 1024)

struct renew;

/* The two identities a host renews through its updater. */
enum renew_which { RENEW_UPDATER = 0, RENEW_AGENT = 1 };

/*
 * The body of POST /cert/csr, /cert/install or /cert/confirm (BUF, LEN
 * bytes): {"which"} or, when CERT is not NULL, {"which","cert"} (*CERT
 * borrowed from the returned tree). The tree
 * (free with cJSON_Delete()), or NULL with E (ERR_BAD_REQUEST: not JSON, an
 * unknown or missing key, which not "updater"/"agent").
 */
cJSON *renew_body_parse(const char *buf, size_t len, enum renew_which *which, const char **cert,
    struct err *e) WUR;

/* What renew asks of the daemon. */
struct renew_hooks {
	/* Build new contexts from the updater's identity files now in force and
	 * serve/probe with them. 0 or -1 with E (the old ones stay). */
	int (*reload_self)(void *arg, struct err *e);
	void *arg;
};

/*
 * Set up from CFG (borrowed): recover both identity directories (a renewal
 * cut short finishes or falls back) and load the CRL into the TLS layer.
 * Recovery notes are logged.
 */
int renew_new(const struct updater_config *cfg, struct renew **out, struct err *e) WUR;
void renew_free(struct renew *rw);

/* The agent whose pins and start environment renew manages (NULL: none, tests), and the daemon's hooks. */
void renew_attach(struct renew *rw, struct agent *ag, const struct renew_hooks *hooks);

/*
 * The CA bundle in force: STATE/tls/updater/ca.pem once a CA rotation
 * pushed one (PUT /trust), else the configured ca.
 */
int renew_ca_path(struct renew *rw, char out[PATH_MAX], struct err *e) WUR;

/* The updater's certificate and key in force (renewed pair, else the configured one). */
int renew_self_paths(struct renew *rw, char cert[PATH_MAX], char key[PATH_MAX],
    struct err *e) WUR;

/*
 * May a master with certificate fingerprint FP operate this updater? The
 * configuration's master_fingerprints as rolled over by PUT /pins/master
 * (updater/masterpins); none configured means any master certificate.
 * 0 or -1 with E (ERR_FORBIDDEN).
 */
int renew_master_allowed(struct renew *rw, const char *fp, struct err *e) WUR;

/* Add cert_not_after, cert_fingerprint, cert_renewed, crl, crl_number, crl_next_update,
 * master_pins (the pins in force; [] when any master certificate is accepted),
 * ca_fingerprints (the CA certificates trusted). */
int renew_health_json(struct renew *rw, cJSON *obj) WUR;

/* The routes above (valid as long as RW); N gets RENEW_NROUTES. */
const struct httpd_route *renew_routes(struct renew *rw, size_t *n);

#endif
