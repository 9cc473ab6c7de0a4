/*
 * sign — release signatures: the one owner of the release keys (ECDSA
 * P-256), of the signed release statement and its detached signature file
 * (FILE.tsig), and of the keyring document that says which keys a host
 * trusts. One parser and one writer for each format, and the one rule that
 * decides whether a signed release is acceptable.
 *
 * Two trust roots: the fleet CA (pki.h) says who may talk to whom; the
 * keyring says what is genuine. A keyring is signed by its root keys (kept
 * offline) and lists the release keys (offline too) whose signatures a host
 * accepts. A master, online, only chooses what to install where.
 *
 * Envelope (both signed formats), one JSON object:
 *   {"v":1,"statement":"<base64 of the signed bytes>",
 *    "signatures":[{"keyid":"<64 hex>","alg":"ecdsa-p256-sha256","sig":"<base64 DER>"}]}
 * the payload key is "statement" for a release and "keyring" for a keyring.
 * The signed bytes are the decoded payload, verified as they are (no
 * canonical form to agree on); each signature is ECDSA P-256 over their
 * SHA-256, DER-encoded: exactly what `openssl dgst -sha256 -sign KEY` writes
 * and `openssl dgst -sha256 -verify PUB -signature SIG` checks. A keyid is
 * the SHA-256 of the key's SubjectPublicKeyInfo DER, in hex (`openssl pkey
 * -pubin -outform DER | sha256sum`).
 *
 * Release statement (payload of FILE.tsig):
 *   {"v":1,"type":"tandem-release","name":"tandem-agent","compatible":"tandem",
 *    "version":"1.2.0","sha256":"<tarball>","manifest_sha256":"<file manifest>",
 *    "size":N,"security_version":7,"min_security_version":6,
 *    "kinds":["agent","updater"],"created_at":"2026-01-01T00:00:00Z",
 *    "expires_at":null}
 *   manifest_sha256 is optional: the digest of the release's per-file
 *   manifest, for installs assembled from files rather than from the
 *   tarball; kinds says what the release may be installed as (the agent's
 *   release, a new updater).
 *
 * Keyring (payload of a keyring document):
 *   {"v":1,"type":"tandem-keyring","version":3,"threshold":1,"root_threshold":2,
 *    "root_keys":[{"keyid":"…","pub":"<base64 SPKI DER>"}],
 *    "release_keys":[{"keyid":"…","pub":"…","not_after":null}],
 *    "created_at":"…"}
 *   threshold: distinct release keys a release needs; root_threshold:
 *   distinct root keys a keyring document needs. Every keyring document is
 *   signed by root_threshold of its own root keys; version N+1 replaces N
 *   only when it is also signed by root_threshold of N's root keys, and only
 *   as exactly N+1 (no skipping, no going back).
 *
 * Parsers are strict (common/json: no duplicate keys, no trailing bytes;
 * unknown keys refused: a newer format bumps "v"); base64 must be canonical.
 * Everything read from outside is hostile: the signatures are checked before
 * anything in the statement is believed.
 *
 * Errors are struct err (common/err.h): ERR_SIGNATURE (signature_invalid:
 * malformed envelope or statement, a bad signature, too few valid ones),
 * ERR_UNKNOWN_KEY (no signature by any key the keyring lists),
 * ERR_STATEMENT (statement_mismatch: a valid statement that does not
 * describe this release or this host), ERR_EXPIRED, ERR_FLOOR
 * (below_security_floor); ERR_FORMAT for a keyring document whose body
 * breaks a rule; ERR_CONFLICT for a keyring that is not the next version;
 * ERR_IO/ERR_NOSPACE/ERR_NOMEM for the system.
 */
#ifndef TANDEM_PKI_SIGN_H
#define TANDEM_PKI_SIGN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "common/release.h"
#include "common/util.h"

#define SIGN_ALG "ecdsa-p256-sha256"
#define SIGN_SUFFIX ".tsig"        /* FILE.tsig next to FILE */
#define SIGN_FILE_MAX (64 * 1024)  /* a .tsig or a keyring document */
#define SIGN_KEYID_LEN 64          /* hex digits of a keyid */
#define SIGN_SIG_MAX 80            /* DER ECDSA P-256 signature: at most 72 bytes */
#define SIGN_MAX_SIGS 16           /* signatures in one envelope */
#define SIGN_MAX_KEYS 16           /* keys per role in a keyring */
#define SIGN_IDENT_MAX RELEASE_IDENT_MAX /* name, version, compatible (release_ident_valid) */
#define SIGN_SV_MAX 2147483647LL   /* largest security version */
#define SIGN_DEFAULT_COMPATIBLE "tandem"

/* What a release may be installed as (statement "kinds"). */
#define SIGN_KIND_AGENT 0x1u
#define SIGN_KIND_UPDATER 0x2u

/* ---- keys ---- */

/* A P-256 key pair, or a public key alone. Opaque; private parts wiped on free. */
struct sign_key;

/* A fresh P-256 key pair. */
int sign_key_generate(struct sign_key **out, struct err *e) WUR;

/*
 * Load a private key (PEM or DER, SEC1 or PKCS#8, unencrypted) from PATH.
 * Anything but a P-256 key is refused. The file's bytes are wiped after use.
 */
int sign_key_load_private(const char *path, struct sign_key **out, struct err *e) WUR;

/*
 * Load a public key (PEM or DER SubjectPublicKeyInfo) from PATH; a private
 * key file is accepted too (its public half is used). P-256 only.
 */
int sign_key_load_public(const char *path, struct sign_key **out, struct err *e) WUR;

/* The key's id: SIGN_KEYID_LEN lowercase hex digits. Never NULL. */
const char *sign_key_id(const struct sign_key *k);

/* 1 when K holds a private key. */
int sign_key_is_private(const struct sign_key *k);

/*
 * Write K's private key as PEM to PATH (mode 0600) and its public key as
 * PEM to PUBPATH (mode 0644), each atomically. Neither may exist unless
 * FORCE. On failure neither file this call created is left behind.
 */
int sign_key_write(const struct sign_key *k, const char *path, const char *pubpath, int force,
    struct err *e) WUR;

/* Free K, wiping its private half. NULL is fine. */
void sign_key_free(struct sign_key *k);

/* ---- the envelope and the release statement ---- */

struct sign_sig {
	char keyid[SIGN_KEYID_LEN + 1];
	unsigned char sig[SIGN_SIG_MAX];
	size_t len;
};

/* A parsed envelope: the signed bytes and the signatures, as they came. */
struct sign_envelope {
	unsigned char *payload;  /* malloc'd, NUL-terminated (not counted in LEN) */
	size_t payload_len;
	struct sign_sig sigs[SIGN_MAX_SIGS];
	size_t nsigs;
};

/* Release everything ENV holds; ENV is empty (and reusable) afterwards. */
void sign_envelope_free(struct sign_envelope *env);

/*
 * Sign ENV's payload with K and add the signature. Refused when K already
 * signed it (ERR_CONFLICT) or the envelope is full.
 */
int sign_envelope_add(struct sign_envelope *env, const struct sign_key *k, struct err *e) WUR;

/* 1 when ENV holds a signature by KEYID (valid or not). */
int sign_envelope_has(const struct sign_envelope *env, const char *keyid);

struct sign_statement {
	char name[SIGN_IDENT_MAX + 1];
	char compatible[SIGN_IDENT_MAX + 1];
	char version[SIGN_IDENT_MAX + 1];
	char sha256[65];           /* lowercase hex */
	char manifest_sha256[65];  /* "" when absent */
	int64_t size;
	int64_t security_version;
	int64_t min_security_version;
	unsigned kinds;            /* SIGN_KIND_* */
	char created_at[32];       /* ISO-8601 UTC */
	char expires_at[32];       /* "" when null */
};

/* Parse LEN bytes of BUF as a statement (rules above). *ST written only on success. */
int sign_statement_parse(const void *buf, size_t len, struct sign_statement *st,
    struct err *e) WUR;

/* The statement's bytes (compact JSON, fixed key order); *OUT malloc'd. */
int sign_statement_format(const struct sign_statement *st, char **out, size_t *outlen,
    struct err *e) WUR;

/*
 * Parse a .tsig: the envelope (into *ENV, which the caller frees with
 * sign_envelope_free) and its statement (into *ST). Nothing is verified.
 */
int sign_tsig_parse(const void *buf, size_t len, struct sign_envelope *env,
    struct sign_statement *st, struct err *e) WUR;

/* The bytes of a .tsig for ENV (indented, final newline); *OUT malloc'd. */
int sign_tsig_format(const struct sign_envelope *env, char **out, size_t *outlen,
    struct err *e) WUR;

/* A new envelope whose payload is ST's bytes, no signatures yet. */
int sign_tsig_new(const struct sign_statement *st, struct sign_envelope *env,
    struct err *e) WUR;

/* ---- the keyring ---- */

struct sign_keyent {
	char keyid[SIGN_KEYID_LEN + 1];
	struct sign_key *key;      /* public */
	char not_after[32];        /* release keys: "" (none) or ISO-8601; signatures by the
				      key count only while the host's clock is not past it */
};

struct sign_keyring {
	int64_t version;                   /* 1.. */
	int threshold;                     /* release signatures needed */
	int root_threshold;                /* root signatures a keyring document needs */
	struct sign_keyent root[SIGN_MAX_KEYS];
	size_t nroot;
	struct sign_keyent rel[SIGN_MAX_KEYS];
	size_t nrel;
	char created_at[32];
	struct sign_envelope env;          /* the document as signed */
};

/* An empty keyring (version 0, nothing in it), ready for sign_keyring_free(). */
void sign_keyring_init(struct sign_keyring *kr);
void sign_keyring_free(struct sign_keyring *kr);

/*
 * Parse a keyring document of LEN bytes into *KR (initialised or freed by
 * the caller): the envelope, the body's rules (keyid = digest of the key,
 * no key twice in a role, 1 <= threshold <= release keys, 1 <= root_threshold
 * <= root keys), and, unless UNSIGNED_OK, root_threshold valid signatures of
 * its own root keys (ERR_SIGNATURE/ERR_UNKNOWN_KEY otherwise). On failure
 * *KR is left empty.
 */
int sign_keyring_parse(const void *buf, size_t len, int unsigned_ok, struct sign_keyring *kr,
    struct err *e) WUR;

/* sign_keyring_parse() of the file PATH (at most SIGN_FILE_MAX bytes). */
int sign_keyring_read(const char *path, int unsigned_ok, struct sign_keyring *kr,
    struct err *e) WUR;

/*
 * Build the body of KR (version, thresholds, keys, created_at) into KR->env
 * as a new payload without signatures (former signatures dropped).
 */
int sign_keyring_seal(struct sign_keyring *kr, struct err *e) WUR;

/* The bytes of KR's document (its envelope; indented, final newline); *OUT malloc'd. */
int sign_keyring_format(const struct sign_keyring *kr, char **out, size_t *outlen,
    struct err *e) WUR;

/* The number of distinct root keys of SIGNERS that signed DOC's payload validly. */
size_t sign_keyring_root_sigs(const struct sign_keyring *signers, const struct sign_envelope *doc);

/*
 * May NEXT replace CUR? NEXT->version must be exactly CUR->version + 1
 * (else ERR_CONFLICT, saying which), and NEXT's document must carry
 * root_threshold valid signatures of CUR's root keys (CUR's threshold) and
 * of its own (NEXT's threshold) (else ERR_SIGNATURE/ERR_UNKNOWN_KEY).
 */
int sign_keyring_check_next(const struct sign_keyring *cur, const struct sign_keyring *next,
    struct err *e) WUR;

/* Add a key to KR's root or release role (copies the public half). Refuses duplicates. */
int sign_keyring_add_key(struct sign_keyring *kr, int root, const struct sign_key *k,
    const char *not_after, struct err *e) WUR;

/* Remove KEYID (a full id or a unique prefix of at least 8 digits) from a role. */
int sign_keyring_remove_key(struct sign_keyring *kr, int root, const char *keyid,
    struct err *e) WUR;

/* ---- the one acceptance rule for a signed release ---- */

/* What the host (or the operator asking for it) expects. */
struct sign_want {
	const char *compatible;    /* the host's compatible string; NULL: not checked */
	const char *sha256;        /* the digest the push declares; NULL: not checked */
	int64_t size;              /* the tarball's size; -1: not checked */
	unsigned kind;             /* SIGN_KIND_* the install needs; 0: not checked */
	int64_t floor;             /* the host's security floor */
	time_t now;                /* for expires_at and not_after; 0: time(NULL) */
};

/* What was verified. */
struct sign_verdict {
	struct sign_statement st;
	char signed_by[SIGN_MAX_SIGS][SIGN_KEYID_LEN + 1]; /* distinct valid release keys */
	size_t nsigned;
};

/*
 * Check the .tsig bytes TSIG (LEN) for a release against keyring KR and
 * W, in this order: the envelope and statement parse (ERR_SIGNATURE); at
 * least KR->threshold distinct release keys of KR signed validly, each
 * keyid counted once (ERR_UNKNOWN_KEY when none of the signatures is by a
 * listed key, ERR_SIGNATURE otherwise); expires_at not past (ERR_EXPIRED);
 * compatible, kind, sha256 and size as W says (ERR_STATEMENT); the security
 * version at or above W->floor (ERR_FLOOR). *V (may be NULL) is filled on
 * success only.
 */
int sign_release_check(const struct sign_keyring *kr, const void *tsig, size_t len,
    const struct sign_want *w, struct sign_verdict *v, struct err *e) WUR;

/*
 * The part of the rule that needs no keys: statement ST describes what W
 * says (compatible, kind, sha256, size; ERR_STATEMENT otherwise). The
 * master runs it on a release's .tsig before sending anything.
 */
int sign_statement_want(const struct sign_statement *st, const struct sign_want *w,
    struct err *e) WUR;

/*
 * The release's manifest says NAME and VERSION: they must be the
 * statement's (ERR_STATEMENT otherwise).
 */
int sign_statement_match(const struct sign_statement *st, const char *name,
    const char *version, struct err *e) WUR;

#endif
