/*
 * release_sign — signing release tarballs and checking their signatures on
 * the operator's side (`tandem release sign|verify`, the push's dry run).
 * The formats and the acceptance rule are pki/sign's; this module reads the
 * tarball (its sha256, size and manifest.json) and the .tsig next to it.
 *
 * Signing needs only the tarball and the release keys: no master home, no
 * network, so it runs on an offline machine.
 */
#ifndef TANDEM_MASTER_RELEASE_SIGN_H
#define TANDEM_MASTER_RELEASE_SIGN_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"
#include "pki/sign.h"

/* What the tarball FILE says about itself. */
struct release_sign_info {
	char sha256[65];
	uint64_t size;
	char name[SIGN_IDENT_MAX + 1];
	char version[SIGN_IDENT_MAX + 1];
	unsigned kinds;           /* SIGN_KIND_AGENT when it has an entrypoint, _UPDATER when
				     it has an updater_entrypoint */
	char manifest_sha256[65]; /* SHA-256 of its files.json; "" when it has none */
};

/*
 * Read FILE (a gzip tar release): digest and size of the bytes, and the
 * name, version and entrypoints of its manifest.json. ERR_FORMAT when it is
 * not a release.
 */
int release_sign_inspect(const char *file, struct release_sign_info *info, struct err *e) WUR;

struct release_sign_opts {
	const char *file;                 /* the tarball */
	const char *out;                  /* NULL: FILE.tsig */
	struct sign_key *const *keys;     /* private release keys */
	size_t nkeys;
	int64_t security_version;
	int64_t min_security_version;
	const char *compatible;           /* NULL: SIGN_DEFAULT_COMPATIBLE */
	const char *expires_at;           /* NULL: never */
	int cosign;                       /* add the keys' signatures to an existing OUT */
	int force;                        /* replace an existing OUT (not with cosign) */
};

struct release_sign_result {
	char path[PATH_MAX];              /* the .tsig written */
	struct sign_statement st;
	char keyids[SIGN_MAX_SIGS][SIGN_KEYID_LEN + 1]; /* every signature the file holds now */
	size_t nsigs;
};

/*
 * Write the signature file for O->file: a new statement signed by every key,
 * or (cosign) the existing file's statement, which must describe FILE's
 * bytes, with the keys' signatures added. The file is written atomically
 * (0644); an existing one is replaced only with FORCE or COSIGN.
 */
int release_sign(const struct release_sign_opts *o, struct release_sign_result *res,
    struct err *e) WUR;

/* FILE.tsig into BUF (PATH_MAX bytes); -1 when it does not fit. */
int release_sign_tsig_path(const char *file, char *buf, size_t len) WUR;

/*
 * Read the signature file PATH (at most SIGN_FILE_MAX bytes) into *BUF
 * (malloc'd), *LEN. Returns 1 when read, 0 when it does not exist, -1 with E.
 */
int release_sign_read_tsig(const char *path, char **buf, size_t *len, struct err *e) WUR;

/* What a host's updater says about itself (its /health). */
struct release_sign_host {
	const char *mode;          /* "required", "unsigned", "keyring_invalid"; "" when the
				      updater predates signatures */
	int64_t floor;             /* its security floor; -1 unknown */
	int64_t keyring_version;   /* 0 none, -1 unknown */
	const char *compatible;    /* "" unknown */
};

/*
 * Would host H accept the push of a release (SHA256, SIZE, installed as
 * KIND) with the signature file TSIG (LEN bytes; NULL: unsigned)? Checked
 * with the master's keyring KR (may be empty): the host decides with its
 * own, so a host whose keyring is older or newer may decide otherwise
 * (said in TEXT). Returns 1 when it should be accepted, 0 when it will be
 * refused, with a one-line reason in TEXT either way.
 */
int release_sign_verdict(const struct sign_keyring *kr, const char *tsig, size_t len,
    const char *sha256, uint64_t size, unsigned kind, const struct release_sign_host *h,
    char *text, size_t textlen);

#endif
