/*
 * Fuzz the updater's reader of the certificate routes' JSON bodies
 * (POST /cert/csr, /cert/install, /cert/confirm: {"which"[,"cert"]}), both
 * forms; what it accepts names one of the two identities, and a required
 * certificate is there. The certificate text itself goes to mbedTLS's
 * parser in pki/hostcert (fuzz_x509_identity), the CRL route's body to
 * pki/crl (fuzz_crl).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* renew.c's own dependencies, so the Makefile links their objects too. */
#include "updater/agent.h"
#include "updater/masterpins.h"
#include "updater/probe.h"
#include "updater/renew.h"
#include "updater/supervise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int with_cert = 0; with_cert < 2; with_cert++) {
		enum renew_which w = (enum renew_which)7;
		const char *cert = NULL;
		struct err e = ERR_INIT;
		cJSON *root = renew_body_parse((const char *)data, size, &w,
		    with_cert ? &cert : NULL, &e);

		if (root != NULL) {
			if ((w != RENEW_UPDATER && w != RENEW_AGENT) ||
			    (with_cert && (cert == NULL || cert[0] == '\0'))) {
				__builtin_trap();
			}
			cJSON_Delete(root);
		} else if (!err_failed(&e) || e.kind != ERR_BAD_REQUEST) {
			__builtin_trap();
		}
	}
	return 0;
}
