/*
 * delta_pack — the master's half of a planned (delta) push: the files.json
 * of a release tarball (the body of POST /update/plan), and the delta
 * tarball sent with mode=delta: files.json plus only the regular files whose
 * content the host said it lacks ("missing" of the plan), each content once.
 *
 * The delta is written like a packed release (deterministic: entries in the
 * release's order, mtime 0, uid/gid 0, no names, modes from files.json, pax
 * restricted, gzip without name or timestamp), streamed from the release
 * in 64 KiB chunks (the release is never held in memory), through the
 * atomic-write helper. Every file sent is hashed while streamed and must
 * have the digest files.json gives it; the release's own files.json member
 * must be the bytes given. Directories and symlinks are never sent: the
 * updater makes them from files.json.
 *
 * Patches: given, per missing digest, the digest of the file the host has
 * at its path (the plan's "bases") and release tarballs that may hold such
 * bases (the master's store), a missing file whose base is found there
 * (read whole, its digest checked, at most ZPATCH_MAX_FILE bytes each side)
 * goes as a zstd patch against it (common/zpatch) at
 * ZPATCH_DELTA_DIR/TARGET-BASE.zst when the patch is at most half of what
 * the file costs compressed whole; otherwise whole, as without bases.
 *
 * Nothing here depends on the URL the delta goes to: the same helpers serve
 * /update and /update-self.
 */
#ifndef TANDEM_MASTER_DELTA_PACK_H
#define TANDEM_MASTER_DELTA_PACK_H

#include <stddef.h>

#include "common/digest.h"
#include "common/err.h"
#include "common/release_check.h"
#include "common/util.h"

/*
 * Read files.json from the release tarball TGZ into *OUT (malloc'd, caller
 * frees; *OUTLEN bytes, parsed by common/release_files to be sure).
 * Returns 1 when found, 0 when the release has none (an old release: push
 * it whole), -1 with E (ERR_IO, ERR_FORMAT not a tarball or a bad
 * files.json, ERR_LIMIT over RELEASE_FILES_MAX_BYTES, ERR_NOMEM).
 */
int delta_pack_files_json(const char *tgz, char **out, size_t *outlen, struct err *e) WUR;

struct delta_pack_result {
	unsigned long long size;     /* bytes of the delta tarball */
	size_t files;                /* regular files sent (files.json aside), patched ones too */
	unsigned long long content;  /* their bytes, uncompressed */
	size_t patched;              /* ... of which as patches */
	unsigned long long patch_bytes; /* the patches' bytes */
};

/* A missing digest and the digest of the file the host has at its path. */
struct delta_pack_base {
	const char *target;
	const char *base;
};

/* What a delta may patch against (see the top); NULL or N 0: nothing. */
struct delta_pack_patches {
	const struct delta_pack_base *v;
	size_t n;
	const char *const *sources;  /* release tarballs to look for bases in, in order */
	size_t n_sources;
};

/*
 * Prefetch: the files of a release new to the master, kept while its check
 * reads them (common/release_check's visitor), so the delta of the first
 * planned push needs no second pass over the release. Kept are the regular
 * files whose digest (by the release's files.json) no reference release
 * has (the releases the hosts most likely run: what they lack), each
 * content once, at most BUDGET bytes in all; more than that, and nothing
 * is kept (the hosts lack too much for a delta to pay). After the check
 * passed, delta_pack_prefetch_done() checks every kept file against
 * files.json (a file that is not what files.json says, a second files.json
 * of other bytes: nothing is kept, and the delta reads the tarball as
 * without a prefetch, which then finds the same fault). A delta whose
 * missing files are all kept is written from memory; any other goes the
 * usual way. Reference releases that cannot be read are skipped (logged).
 */
struct delta_pack_prefetch;

/* NULL when out of memory. REFS: release tarballs (N_REFS, may be 0). */
struct delta_pack_prefetch *delta_pack_prefetch_new(const char *const *refs, size_t n_refs,
    uint64_t budget);
/* The visitor to hand to release_check_file_visit(). */
const struct release_check_visitor *delta_pack_prefetch_visitor(struct delta_pack_prefetch *pf);
/* After the check passed: what is kept is checked and made usable (see above). */
void delta_pack_prefetch_done(struct delta_pack_prefetch *pf);
/* Files kept and their bytes (0 and 0 when nothing is). */
void delta_pack_prefetch_stat(const struct delta_pack_prefetch *pf, size_t *files,
    uint64_t *bytes);
void delta_pack_prefetch_free(struct delta_pack_prefetch *pf);

/*
 * Write to OUT the delta of the release tarball TGZ whose files.json is
 * FJ (FJLEN bytes, as delta_pack_files_json gave it) for the N_MISSING
 * digests MISSING (64 lowercase hex each, any order, duplicates fine):
 * files.json first, then for each missing digest the first regular file of
 * the release that has it, or its patch (PP, may be NULL). A digest
 * files.json does not name is ignored (a plan is advice); a source that
 * cannot be read gives no bases (logged). Returns 0 with *RES, or -1 with
 * E (OUT untouched):
 * ERR_FORMAT (not a tarball, a member that is not what files.json says, a
 * missing digest whose file is not in the tarball), ERR_IO, ERR_NOSPACE,
 * ERR_NOMEM.
 */
int delta_pack_write(const char *tgz, const char *fj, size_t fjlen,
    const char *const *missing, size_t n_missing, const struct delta_pack_patches *pp,
    const char *out, struct delta_pack_result *res, struct err *e) WUR;

/*
 * delta_pack_write() with the prefetch PF of TGZ (may be NULL): when PF
 * was made by the check of TGZ, its files.json is FJ and it keeps every
 * missing file, TGZ is not read (*FROM_PREFETCH 1); otherwise as
 * delta_pack_write() (*FROM_PREFETCH 0). FROM_PREFETCH may be NULL.
 */
int delta_pack_write_pf(const char *tgz, const char *fj, size_t fjlen,
    const char *const *missing, size_t n_missing, const struct delta_pack_patches *pp,
    const struct delta_pack_prefetch *pf, const char *out, struct delta_pack_result *res,
    int *from_prefetch, struct err *e) WUR;

#endif
