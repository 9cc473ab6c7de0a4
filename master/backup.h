/*
 * backup — the master's home directory as one archive, and back.
 *
 * `backup_create` writes every directory and regular file under HOME (the CA
 * and its key, the master's identity, the CRL and the CA's issued record, the
 * enrollment bundles, release store and keyrings, whatever the master keeps
 * there) plus a consistent snapshot of the registry taken with SQLite's
 * backup API (never the live registry.db and its WAL), and a first entry
 * TANDEM-BACKUP.json (format, time, version). The tar.gz stream is sealed
 * with a passphrase (pki/seal: AES-256-GCM, PBKDF2) unless the caller asks
 * for a plain archive, which then holds the CA key in clear: it is written
 * 0600 and the CLI warns.
 *
 * `backup_restore` unpacks into a staging directory beside HOME, accepts only
 * relative paths of directories and regular files (no "..", no links, no
 * devices), reads the sealed stream to its authenticated end, checks that
 * the result is a usable master home (its CA certificate and registry
 * open), and only then renames it to HOME. HOME must not exist or be an
 * empty directory: a restore never merges into or overwrites a home.
 */
#ifndef TANDEM_MASTER_BACKUP_H
#define TANDEM_MASTER_BACKUP_H

#include <stddef.h>

#include "common/err.h"
#include "common/util.h"

#define BACKUP_MANIFEST "TANDEM-BACKUP.json"
#define BACKUP_FORMAT 1
/* Bounds on what a restore accepts (hostile archives). */
#define BACKUP_MAX_ENTRIES 1000000
#define BACKUP_MAX_PATH 1024

struct backup_result {
	size_t files;
	size_t dirs;
	unsigned long long bytes;
	int encrypted;
};

/*
 * Archive HOME into FILE (must not exist; written 0600 through a temporary
 * and renamed into place). PASS (PASSLEN bytes) seals it; PASS NULL writes a
 * plain tar.gz. ITERATIONS: PBKDF2 work (0: the default). ERR_CONFLICT while
 * tandem pki renew-master is under way (its pair in force is behind a link).
 */
int backup_create(const char *home, const char *file, const char *pass, size_t passlen,
    unsigned iterations, struct backup_result *res, struct err *e) WUR;

/*
 * Restore FILE into HOME (absent or an empty directory). PASS is needed for
 * a sealed archive (ERR_USAGE without; ERR_SIGNATURE when wrong).
 */
int backup_restore(const char *home, const char *file, const char *pass, size_t passlen,
    struct backup_result *res, struct err *e) WUR;

#endif
