/*
 * issued — the CA's record of every certificate it signed:
 * HOME/ca/issued/SERIAL.crt (PEM, 0644, written atomically), like OpenSSL's
 * newcerts/. `tandem pki revoke --host NAME` and revocation by fingerprint
 * find certificates there; certificates issued before this record existed
 * are found in the host's enrollment bundle instead (master/certs.c).
 */
#ifndef TANDEM_PKI_ISSUED_H
#define TANDEM_PKI_ISSUED_H

#include <stddef.h>

#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"

#define PKI_ISSUED_DIR "ca/issued"

/* Record the certificate PEM (LEN bytes) under HOME/ca/issued/. */
int pki_issued_record(const char *home, const unsigned char *pem, size_t len,
    struct err *e) WUR;

/*
 * Call FN for every recorded certificate (identity read with MASTER_CN),
 * in no particular order, with its path; FN returns 0 to go on, non-zero to
 * stop (that value is returned). A missing directory is an empty record.
 * Unreadable entries are skipped with a warning. -1 with E on I/O errors.
 */
int pki_issued_each(const char *home, const char *master_cn,
    int (*fn)(const struct tls_identity *id, const char *path, void *arg), void *arg,
    struct err *e) WUR;

#endif
