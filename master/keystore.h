/*
 * keystore — the master's copies of the fleet's keyring documents
 * (pki/sign.h), one file per version:
 *
 *   HOME/keyring/            directory 0700
 *   HOME/keyring/N.json      keyring version N, exactly as signed (0644)
 *
 * The highest version is the current keyring: `swarm enroll` bundles it,
 * `swarm keyring push` sends a host every version after the one it holds,
 * in order (a host accepts only the next version), `release verify` checks
 * against it. Versions only ever go up by one: a document is added only
 * when it is the next version of the current one, signed by the root keys
 * of both (the first one added is accepted when it is signed by its own root
 * keys). Files are written with the one atomic writer and never changed.
 *
 * The master holds no private key for any of this: root and release keys
 * stay offline (wiki/Release-Signing.md).
 */
#ifndef TANDEM_MASTER_KEYSTORE_H
#define TANDEM_MASTER_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"
#include "pki/sign.h"

#define KEYSTORE_DIR "keyring"

/*
 * The current keyring of HOME into *KR (initialised by the caller). Returns
 * 1 when there is one, 0 when HOME has none (*KR left empty), -1 with E
 * when the directory or the highest version cannot be read or is invalid.
 */
int keystore_current(const char *home, struct sign_keyring *kr, struct err *e) WUR;

/*
 * The bytes of version VERSION (malloc'd into *BUF, *LEN). ERR_NOT_FOUND
 * when HOME does not have it.
 */
int keystore_read(const char *home, int64_t version, char **buf, size_t *len,
    struct err *e) WUR;

/*
 * Add the keyring document BUF (LEN bytes) as the next version (rules
 * above). *VERSION (may be NULL) gets its version. ERR_CONFLICT when it is
 * not the next version, ERR_SIGNATURE/ERR_UNKNOWN_KEY for missing
 * signatures, ERR_FORMAT for a malformed document.
 */
int keystore_add(const char *home, const char *buf, size_t len, int64_t *version,
    struct err *e) WUR;

/* "HOME/keyring/N.json" into OUT; -1 when it does not fit. */
int keystore_path(const char *home, int64_t version, char *out, size_t outlen) WUR;

#endif
