/*
 * csr — certificate signing requests for online renewal: the host makes its
 * new key and a CSR (the private key never leaves the host), the master
 * checks the CSR's self-signature and certifies its public key with the
 * subject and subjectAltNames it takes from its registry, never from the
 * CSR (pki_issue() with pki_issue_opts.csr).
 */
#ifndef TANDEM_PKI_CSR_H
#define TANDEM_PKI_CSR_H

#include <stddef.h>

#include "common/err.h"
#include "common/util.h"

/* A CSR from the wire larger than this is refused before parsing. */
#define PKI_CSR_MAX 16384

/*
 * Host side. KEY_PATH holds the pending private key: when it exists (a
 * retry after a crash or a lost answer) that key is reused, else a new
 * ECDSA P-256 key is made and written there atomically, 0600. Returns a CSR
 * for that key with subject CN=CN as a malloc'd NUL-terminated PEM (*PEM).
 */
int pki_csr_new(const char *key_path, const char *cn, char **pem, struct err *e) WUR;

/*
 * Is BUF (LEN bytes, PEM or DER) a well-formed CSR whose signature verifies
 * with its own key? ERR_FORMAT / ERR_TOO_LARGE / ERR_SIGNATURE otherwise.
 * (pki_issue() runs the same check on the CSR it certifies.)
 */
int pki_csr_check(const unsigned char *buf, size_t len, struct err *e) WUR;

#endif
