/*
 * release_files — the one owner of a release's file manifest, files.json:
 * every directory, regular file and symlink of the release with its mode,
 * and for files their size and SHA-256. `tandem release pack` writes it at
 * the root of every tarball (beside manifest.json), so it lands in
 * releases/active/files.json; the updater reads it to know which file
 * contents it already holds (POST /update/plan) and to verify a release it
 * assembles from a delta upload; the master reads it from a tarball to
 * plan a delta push.
 *
 *   {"v":1,"files":[
 *   {"path":"bin","type":"dir","mode":"0755"},
 *   {"path":"bin/tandem-agent","type":"file","mode":"0755","size":171234,"sha256":"…"},
 *   {"path":"lib/libx.so","type":"symlink","target":"libx.so.1"},
 *   …
 *   ]}
 *
 * Rules (the parser refuses anything else, the writer refuses to write it):
 *   - "v" is 1; "files" an array of at most RELEASE_FILES_MAX_ENTRIES
 *     objects; the file at most RELEASE_FILES_MAX_BYTES;
 *   - every path follows release_safe_relpath()'s rules with the tarball's
 *     length limit (RELEASE_FILES_PATH_MAX bytes) and is valid UTF-8;
 *     entries sorted by path (byte order), no path twice, every parent
 *     listed as a "dir" (before its children, which byte order gives);
 *   - "type" is "dir" (keys path, type, mode), "file" (path, type, mode,
 *     size, sha256: 64 lowercase hex digits) or "symlink" (path, type,
 *     target); no other key;
 *   - mode: four octal digits as extraction leaves them: no bit beyond
 *     0755, a file at least 0600, a directory at least 0700 (the packer
 *     writes 0755 and 0644); symlinks have none;
 *   - a symlink target passes release_check_symlink() (relative, inside the
 *     release);
 *   - "files.json" itself is never listed; "manifest.json" is, as a file.
 *
 * The writer's bytes are canonical (the same entries always give the same
 * bytes: one entry per line, keys in the order above), so SHA-256 of the
 * file identifies the tree; a signed release's statement carries it as
 * manifest_sha256.
 *
 * Errors are struct err: ERR_FORMAT for a file or tree that breaks a rule
 * (the message names the entry), ERR_LIMIT for too many entries or bytes,
 * ERR_IO/ERR_NOSPACE for system calls, ERR_NOMEM.
 */
#ifndef TANDEM_RELEASE_FILES_H
#define TANDEM_RELEASE_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/err.h"
#include "common/util.h"

#define RELEASE_FILES_FILE "files.json"
#define RELEASE_FILES_MAX_ENTRIES 100000
#define RELEASE_FILES_MAX_BYTES ((size_t)32 * 1024 * 1024)
#define RELEASE_FILES_PATH_MAX 1024 /* as a tarball entry (RELEASE_CHECK_MAX_PATH) */

enum release_files_type {
	RELEASE_FILES_DIR,
	RELEASE_FILES_REG,
	RELEASE_FILES_SYMLINK,
};

struct release_files_entry {
	char *path;                        /* owned */
	enum release_files_type type;
	unsigned mode;                     /* permission bits; 0 for symlinks */
	uint64_t size;                     /* regular files */
	char sha256[DIGEST_HEX_LEN + 1];   /* regular files, lowercase hex; "" otherwise */
	char *target;                      /* symlinks (owned), NULL otherwise */
};

/* A release's entries; RELEASE_FILES_INIT or release_files_init() before use. */
struct release_files {
	struct release_files_entry *v;
	size_t n, cap;
};

#define RELEASE_FILES_INIT { NULL, 0, 0 }

void release_files_init(struct release_files *f);

/* Free every entry; F is empty (and reusable) afterwards. NULL is fine. */
void release_files_free(struct release_files *f);

/*
 * Append one entry (strings copied). The entry's own rules are checked here
 * (path, mode for TYPE, SHA256 for a file, TARGET for a symlink; the other
 * arguments are ignored for types without them); order, uniqueness and
 * parents are release_files_check()'s. Returns 0 or -1 with E (ERR_FORMAT
 * naming the path, ERR_LIMIT beyond RELEASE_FILES_MAX_ENTRIES, ERR_NOMEM).
 */
int release_files_add(struct release_files *f, const char *path, enum release_files_type type,
    unsigned mode, uint64_t size, const char *sha256, const char *target, struct err *e) WUR;

/* Sort F's entries by path (byte order), as the rules want them. */
void release_files_sort(struct release_files *f);

/*
 * The rules between entries: sorted, unique, parents listed as dirs,
 * manifest.json listed as a file, files.json not listed. Returns 0 or -1
 * with E (ERR_FORMAT naming the entry).
 */
int release_files_check(const struct release_files *f, struct err *e) WUR;

/*
 * Parse LEN bytes of BUF (no NUL needed) by the rules into *OUT (emptied
 * first; left empty on failure). Returns 0 or -1 with E.
 */
int release_files_parse(const char *buf, size_t len, struct release_files *out,
    struct err *e) WUR;

/*
 * The canonical bytes of F (which must pass release_files_check(): else
 * ERR_INTERNAL, nothing written), with a final newline. *OUT is malloc'd
 * (caller frees), *OUTLEN its length. Returns 0 or -1 with E (ERR_LIMIT
 * beyond RELEASE_FILES_MAX_BYTES, ERR_NOMEM).
 */
int release_files_format(const struct release_files *f, char **out, size_t *outlen,
    struct err *e) WUR;

/*
 * The compact wire form of a files.json document (the body of a plan request
 * sent with "Content-Encoding: gzip"): BUF (LEN bytes) gzip-compressed into
 * *OUT (malloc'd, *OUTLEN bytes). 0, or -1 with E (ERR_NOMEM, ERR_INTERNAL).
 */
int release_files_gzip(const char *buf, size_t len, char **out, size_t *outlen,
    struct err *e) WUR;

/*
 * The reverse: the gzip stream GZ (LEN bytes, one member) inflated into *OUT
 * (malloc'd and NUL-terminated, *OUTLEN bytes without the NUL). The content
 * is not parsed here. 0, or -1 with E: ERR_FORMAT (not one whole gzip
 * member: no gzip header, corrupt, cut short, other bytes after it),
 * ERR_TOO_LARGE (more than RELEASE_FILES_MAX_BYTES once inflated), ERR_NOMEM.
 */
int release_files_gunzip(const void *gz, size_t len, char **out, size_t *outlen,
    struct err *e) WUR;

/*
 * Read DIR/files.json into *OUT; SHA256 (may be NULL) receives the digest
 * of its bytes. Returns 1 when read, 0 when there is no such file (*OUT
 * empty), -1 with E (ERR_FORMAT for a file that breaks the rules).
 */
int release_files_read(const char *dir, struct release_files *out,
    char sha256[DIGEST_HEX_LEN + 1], struct err *e) WUR;

/* release_files_scan() flags */
#define RELEASE_FILES_NOHASH 0x1u /* leave sha256 "" (types, modes, sizes, targets only) */
#define RELEASE_FILES_PARTIAL 0x2u /* part of a tree: no release_files_check() (sorted still) */

/*
 * Build *OUT (emptied first) from the tree under DIR, without following
 * symlinks: every directory, regular file (hashed unless
 * RELEASE_FILES_NOHASH) and symlink, modes as on disk, files.json at the
 * root left out; sorted and checked as the rules say (RELEASE_FILES_NOHASH
 * aside). Anything else in the tree (a device, a FIFO, a socket, a name or
 * target that breaks a rule) is ERR_FORMAT naming it; more than
 * RELEASE_FILES_MAX_ENTRIES entries ERR_LIMIT. Returns 0 or -1 with E.
 */
int release_files_scan(const char *dir, unsigned flags, struct release_files *out,
    struct err *e) WUR;

/* The entry of PATH in F (sorted), or NULL. */
const struct release_files_entry *release_files_find(const struct release_files *f,
    const char *path);

/* "dir", "file", "symlink". */
const char *release_files_type_name(enum release_files_type t);

#endif
