/*
 * certs_ca — rotating the fleet's CA (tandem pki ca-rotate) without a
 * moment where the master and the hosts cannot talk:
 *
 *   begin   a new CA (HOME/ca/next/), the old one kept (HOME/ca/retired/),
 *           HOME/ca/bundle.pem = old + new, which the master trusts from
 *           now on; the new CA becomes the signing one (HOME/ca/ca.key,
 *           ca.crt; a CRL is re-signed by it); every updater gets the bundle
 *           (PUT /trust) and passes it to its agent, and the new CRL;
 *   then    tandem swarm renew --all --force and tandem pki renew-master
 *           re-issue every certificate under the new CA, trusted everywhere
 *           through the bundle;
 *   finish  refused until the master's certificate and every host's
 *           (updater and agent: a handshake trusting the new CA alone)
 *           chain to the new CA; then every updater gets the new CA alone
 *           (PUT /trust), and the bundle and the retired CA go: the old CA
 *           is refused everywhere.
 *
 * Every step is idempotent: a run cut short (crash, unreachable hosts) is
 * finished by running the same step again.
 */
#ifndef TANDEM_MASTER_CERTS_CA_H
#define TANDEM_MASTER_CERTS_CA_H

#include <stddef.h>

#include "common/err.h"
#include "common/util.h"
#include "master/registry.h"

struct certs_ca_host {
	char host[REG_NAME_MAX + 1];
	char result[16]; /* "trusted", "renewed" (finish: both chain to the new CA), "failed" */
	char error[512];
};

struct certs_ca_result {
	char new_ca_fp[65];
	char old_ca_fp[65];
	struct certs_ca_host *hosts;
	size_t n;
	int finished; /* finish: the old CA is gone */
};

int certs_ca_rotate_begin(const char *home, int timeout_s, struct certs_ca_result *out,
    struct err *e) WUR;
int certs_ca_rotate_finish(const char *home, int timeout_s, struct certs_ca_result *out,
    struct err *e) WUR;
void certs_ca_result_free(struct certs_ca_result *r);

#endif
