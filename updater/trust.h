/*
 * trust — what this host accepts to install: the policy from updater.conf
 * (require_signed, compatible), the keyring of release keys
 * (INSTALL_DIR/state/keyring.json) and the security floor
 * (INSTALL_DIR/state/floor.json). The formats and the acceptance rule are
 * pki/sign's; this module holds the host's state and is asked by the
 * install engine at its steps:
 *
 *   before the first byte is extracted   trust_check_signature (the tsig part)
 *   after the last byte                  trust_check_bytes (digest, size)
 *   before the switch                    trust_check_manifest (name, version)
 *                                        trust_record (into release.json)
 *   at commit                            trust_commit (raise the floor)
 *   before a manual rollback             trust_check_rollback
 *   POST /keyring                        trust_keyring_update
 *
 * Files (written with the one atomic writer, never in place):
 *   state/keyring.json  the current keyring document, exactly as signed; made
 *                       from the bootstrap copy (release_keyring in
 *                       updater.conf, from the enrollment bundle) when absent;
 *                       replaced only by exactly the next version, signed by
 *                       the root keys of both (POST /keyring)
 *   state/floor.json    {"floor":N,"raised_by":"<release id>","raised_at":"..."}
 *
 * The floor rises only when a release commits, to max(floor, the release's
 * min_security_version), so an automatic restore after a failed probe can
 * always go back. A crash between the commit and the floor write is
 * finished at the next start: the floor is at least the active release's
 * min_security_version (from its release.json).
 *
 * Fail closed: a keyring or floor file that cannot be read, or
 * require_signed without a keyring, puts the host in mode keyring_invalid:
 * /health says so and every install is refused (ERR_KEYRING) until an
 * operator repairs the files; the agent keeps running.
 *
 * Hosts that do not require signatures ("unsigned" mode, the default, so
 * existing hosts keep working) still check a signature that comes with a
 * push when they have a keyring, and still refuse anything below their
 * floor (an unsigned release counts as security version 0).
 *
 * Thread safety: every function may be called from any thread.
 */
#ifndef TANDEM_UPDATER_TRUST_H
#define TANDEM_UPDATER_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/release.h"
#include "common/util.h"
#include "pki/sign.h"

#define TRUST_KEYRING_FILE "keyring.json"
#define TRUST_FLOOR_FILE "floor.json"

struct trust_config {
	const char *state_dir;     /* INSTALL_DIR/state (exists) */
	const char *bootstrap;     /* release_keyring, or NULL */
	int require_signed;
	const char *compatible;    /* NULL: SIGN_DEFAULT_COMPATIBLE */
};

struct trust;

/*
 * Load the host's trust state (see above). ACTIVE (may be NULL) is the
 * active release's record, for the floor's recovery. Fails only when out
 * of memory or CFG is unusable; unreadable files give keyring_invalid mode,
 * not an error.
 */
int trust_open(const struct trust_config *cfg, const struct release_info *active,
    struct trust **out, struct err *e) WUR;

void trust_free(struct trust *t);

/* What /health shows. */
struct trust_status {
	const char *mode;          /* "required", "unsigned", "keyring_invalid" */
	int64_t floor;
	int64_t keyring_version;   /* 0: no keyring */
	char compatible[SIGN_IDENT_MAX + 1];
	char reason[ERR_MSG_MAX];  /* keyring_invalid: why; else "" */
};

void trust_status(struct trust *t, struct trust_status *st);

/* What the signature part established for one install. */
struct trust_verdict {
	int is_signed;             /* 0: accepted unsigned (the policy allows it) */
	struct sign_verdict v;     /* valid when signed */
};

/*
 * The signature check, before anything is extracted. TSIG (LEN bytes) is
 * the form's tsig part, or NULL when there was none; SHA256 the form's
 * declared digest (NULL: none); KIND SIGN_KIND_AGENT (POST /update) or
 * SIGN_KIND_UPDATER (POST /update-self). Refusals: ERR_KEYRING (mode
 * keyring_invalid), ERR_SIGNATURE (unsigned on a host that requires
 * signatures, or a bad signature), ERR_UNKNOWN_KEY, ERR_STATEMENT,
 * ERR_EXPIRED, ERR_FLOOR (below the floor; an unsigned release counts as 0).
 * *V is filled on success.
 */
int trust_check_signature(struct trust *t, const char *tsig, size_t len, const char *sha256,
    unsigned kind, struct trust_verdict *v, struct err *e) WUR;

/* After the last byte: the streamed DIGEST and SIZE are the statement's (ERR_STATEMENT). */
int trust_check_bytes(const struct trust_verdict *v, const char *digest, uint64_t size,
    struct err *e) WUR;

/*
 * A release assembled from a delta (updater/delta): FILES_SHA256, the digest
 * of its files.json, must be the statement's manifest_sha256 (the form's
 * sha256, the full tarball's, was held against the statement's by
 * trust_check_signature). A statement without manifest_sha256 cannot vouch
 * for an assembled tree. ERR_DELTA_MISMATCH either way (the master then
 * sends the whole tarball, checked as usual); 0 when unsigned.
 */
int trust_check_files(const struct trust_verdict *v, const char *files_sha256,
    struct err *e) WUR;

/* Before the switch: the manifest's NAME and VERSION are the statement's (ERR_STATEMENT). */
int trust_check_manifest(const struct trust_verdict *v, const char *name, const char *version,
    struct err *e) WUR;

/* The security versions and signers of V into RI (release.json); zero when unsigned. */
void trust_record(const struct trust_verdict *v, struct release_info *ri);

/*
 * A release committed: raise the floor to RI's min_security_version when
 * that is higher (state/floor.json, crash point "trust.floor_written").
 */
int trust_commit(struct trust *t, const struct release_info *ri, struct err *e) WUR;

/* May the host go back to TARGET by a manual rollback? ERR_FLOOR when below the floor. */
int trust_check_rollback(struct trust *t, const struct release_info *target,
    struct err *e) WUR;

/*
 * POST /keyring: BUF (LEN bytes) becomes the keyring when it is exactly the
 * next version, signed by root_threshold of the current root keys and of
 * its own (ERR_CONFLICT for another version, ERR_SIGNATURE/ERR_UNKNOWN_KEY
 * for signatures, ERR_FORMAT for a malformed document). A host without a
 * keyring that does not require signatures takes any document signed by
 * its own roots (it trusts its master already). Refused in mode
 * keyring_invalid (ERR_KEYRING). Crash point "trust.keyring_written".
 * *VERSION gets the new version.
 */
int trust_keyring_update(struct trust *t, const char *buf, size_t len, int64_t *version,
    struct err *e) WUR;

#endif
