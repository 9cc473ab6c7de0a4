/*
 * release_pack — build a deterministic release tarball from a directory
 * (`tandem release pack`).
 *
 * The same tree always gives the same bytes: entries sorted by path (byte
 * order), mtime 0, uid/gid 0, no user or group names, modes normalised
 * (0755 for directories and files with any execute bit, 0644 for other
 * files, 0777 for symlinks), pax format (restricted: extended headers only
 * for long or non-ASCII names), gzip without a name or timestamp.
 *
 * The tarball carries manifest.json at its root, read and written by
 * common/release (the one owner of that format): DIR's own manifest.json if
 * there is one (a source manifest: "version" may be absent; it is replaced
 * when a version is given; unknown keys are kept), otherwise
 * {"name":"tandem-agent","version":V,"entrypoint":"bin/tandem-agent",
 * "preflight":["bin/tandem-agent","--self-test"]} plus
 * "updater_entrypoint":"bin/tandem-updater" when DIR has that file. A
 * readiness given by the caller replaces the manifest's ("readiness").
 *
 * It also carries files.json at its root, written by common/release_files
 * (every directory, file and symlink with its mode, and each file's size and
 * SHA-256): files are hashed in a first pass (with the key-material scan)
 * and hashed again while archived, so a file that changes in between is an
 * error. DIR's own files.json at the root, if any, is left out (a re-packed
 * release carries an old one). A name that files.json cannot hold (not
 * UTF-8, longer than 1024 bytes) or a symlink target that extraction would
 * refuse is a refusal like the others.
 *
 * Refused (every problem is listed, nothing is written):
 *   - secrets, unless excluded: file names *.key, id_rsa*, id_dsa*,
 *     id_ecdsa*, id_ed25519*, .env, *.env, a *.pem containing "PRIVATE KEY",
 *     and any file whose content holds a PEM private-key block (a
 *     "-----BEGIN ... PRIVATE KEY-----" line followed by a line of base64
 *     or armor headers; the bare header string compiled into a binary, as
 *     in libmbedcrypto, is not a key);
 *   - devices, FIFOs and sockets; names with control characters;
 *   - symlinks that are absolute, leave DIR (resolved through the real
 *     tree), dangle, or point at something excluded;
 *   - an entrypoint (or updater_entrypoint, or preflight command) that is
 *     missing or not an executable regular file;
 *   - an output file inside DIR.
 * Hard links are stored as independent regular files. Symlinked
 * directories are stored as symlinks, never followed.
 *
 * Exclude globs (fnmatch): a glob without '/' is matched against each
 * entry's base name ("*.key", "secrets"), one with '/' against the path
 * relative to DIR ("bin/debug-*"); an excluded directory is not descended.
 *
 * File content is streamed in 64 KiB chunks (never whole files in memory)
 * and written through the atomic-write helper: temporary file, fsync,
 * rename, directory fsync.
 */
#ifndef TANDEM_MASTER_RELEASE_PACK_H
#define TANDEM_MASTER_RELEASE_PACK_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <archive.h>

#include "common/digest.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/release.h"
#include "common/util.h"

/* The version packed when neither the tree's manifest nor the caller gives one. */
#define RELEASE_DEFAULT_VERSION "unversioned"

struct release_pack_opts {
	const char *dir;                /* the release tree */
	const char *output;             /* NULL: NAME-VERSION.tar.gz in the working directory */
	const char *version;            /* NULL: the manifest's, else RELEASE_DEFAULT_VERSION */
	const char *readiness;          /* NULL: the manifest's (none in a generated one) */
	const char *const *excludes;    /* N_EXCLUDES globs */
	size_t n_excludes;
};

struct release_pack_result {
	char path[PATH_MAX];            /* absolute path of the tarball */
	char sha256[65];                /* of the tarball, lowercase hex */
	unsigned long long size;        /* bytes */
	char name[RELEASE_IDENT_MAX + 1];
	char version[RELEASE_IDENT_MAX + 1];
	size_t entries;                 /* archive members, manifest.json and files.json included */
};

/* Every refusal of one release_pack() call, in the order found: "PATH: reason". */
struct release_pack_refusals {
	char **v;      /* control characters in paths shown as '?' */
	size_t n;
	size_t cap;
	size_t named;  /* how many of them the error message names (the first ones) */
};

/* Free the lines; R may be reused. NULL is fine. */
void release_pack_refusals_free(struct release_pack_refusals *r);

/*
 * Pack O->dir as described above into *RES. Returns 0, or -1 with ERR; the
 * output path is then untouched. Refusals are ERR_FORMAT "refusing to pack
 * DIR (N problems; ...): ..." naming each one while the message has room and
 * then "and K more"; REFUSED (may be NULL; emptied on entry, free it with
 * release_pack_refusals_free) receives every one. Other failures: ERR_IO and
 * ERR_NOSPACE (reading the tree, writing the tarball), ERR_NOMEM, ERR_FORMAT
 * (a bad manifest or version, an output path that cannot be used).
 */
int release_pack(const struct release_pack_opts *o, struct release_pack_result *res,
    struct release_pack_refusals *refused, struct err *err) WUR;

/*
 * Where a tarball's bytes go: FILE (begun by the caller, committed or aborted
 * by it), how many were written, and their digest when SHA is not NULL.
 */
struct release_tgz_out {
	struct fs_atomic file;
	uint64_t written;
	struct digest *sha;
};

/*
 * The one deterministic tar.gz writer of tandem's tarballs (releases and the
 * deltas of planned pushes): restricted pax, gzip with no timestamp or name,
 * no padding of the last block, bytes appended to OUT. Returns the open
 * writer, or NULL with ERR (ERR_NOMEM, ERR_IO). Free it with
 * archive_write_free.
 */
struct archive *release_pack_tgz_open(struct release_tgz_out *out, struct err *err);

/*
 * Write a header of a member that packed trees carry: PATH, MODE's permission
 * bits, type TYPE (AE_IFREG, AE_IFDIR, AE_IFLNK), SIZE (0 unless regular),
 * TARGET for a link (else NULL), owner 0:0, mtime 0. Returns 0, or -1 with ERR.
 */
int release_pack_tgz_header(struct archive *a, const char *path, unsigned mode, unsigned type,
    uint64_t size, const char *target, struct err *err) WUR;

#endif
