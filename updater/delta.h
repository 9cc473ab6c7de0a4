/*
 * delta — planned (delta) pushes, the updater's half: which file contents
 * the host already holds, and a release assembled in staging from a delta
 * upload plus local copies (wiki/Updater.md "Delta installs").
 *
 * Every function takes the root of one release tree: the agent's, or the
 * updater's own (INSTALL_DIR/updater) for POST /update-self/plan and a delta
 * self-update; copies only ever come from that tree's releases.
 *
 * The index: every regular file of releases/active and releases/prev by
 * SHA-256, from their files.json (common/release_files) when it is there and
 * valid, else by scanning and hashing the tree; that scan is cached as
 * ROOT/state/delta-index-<install id>.json (see delta.c). It is advice only: every
 * copy made from it is hashed again while it is copied (the agent may have
 * changed its own files), and a copy whose bytes differ is not used.
 *
 * POST /update/plan (delta_plan): the body is the files.json of the release
 * the master would push; the answer names the digests this host has no copy
 * of, and counts files and bytes to send and to reuse.
 *
 * Assembly (delta_assemble, called by the install engine for a plan with
 * mode=delta, after the delta tarball was extracted into staging by the one
 * extractor with the full push's rules): the staging holds files.json and
 * some regular files at their paths. Every received entry must be in
 * files.json with its type (a symlink never comes from the tarball), every
 * received file is hashed; missing files are copied from a received file or
 * from active/prev by digest, re-hashed; directories and symlinks are made
 * from files.json; then the whole staging is compared with files.json
 * (every path, type, mode, size, link target; nothing extra). Any
 * difference is ERR_DELTA_MISMATCH naming the path; the caller removes the
 * staging. Crash point "delta.assembled" once the tree is complete.
 *
 * Patches: a delta may carry, in ZPATCH_DELTA_DIR (common/zpatch.h), files
 * named TARGET-BASE.zst; a missing file of digest TARGET is then made by
 * applying that patch to a local file of digest BASE (active, prev or a
 * received file, re-hashed as it is read), within zpatch's limits, and its
 * output's digest checked. A base that is gone or changed, a patch that is
 * corrupt or gives other bytes: ERR_DELTA_MISMATCH. The directory is removed
 * before the tree is verified.
 */
#ifndef TANDEM_UPDATER_DELTA_H
#define TANDEM_UPDATER_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/release_files.h"
#include "common/util.h"

struct delta_index;

/*
 * Index the regular files of ROOT/releases/active and ROOT/releases/prev
 * (ROOT: the agent's tree). A slot that is missing or cannot be read is
 * left out (logged). Returns 0 with *OUT, or -1 with E (ERR_NOMEM).
 */
int delta_index_build(const char *root, struct delta_index **out, struct err *e) WUR;

void delta_index_free(struct delta_index *ix);

/* 1 when IX holds a file with digest SHA256 (64 lowercase hex). */
int delta_index_has(const struct delta_index *ix, const char *sha256);

/*
 * The answer of POST /update/plan for the files.json bytes BODY (LEN) and
 * the agent's tree ROOT: {"missing":[digests],"missing_files":N,
 * "missing_bytes":N,"reuse_files":N,"reuse_bytes":N,"base":"active id"}
 * ("base" "" without an active release). Counts are per regular file of the
 * release; "missing" lists each digest once. With BASES also
 * "bases":{missing digest: digest}: for each missing content, the regular
 * file this host has at the first path files.json gives it (active's, else
 * prev's), when both are at most ZPATCH_MAX_FILE bytes: what the master may
 * send a patch against (common/zpatch). Returns the object, or NULL with E
 * (ERR_BAD_REQUEST for a body that is not a valid files.json, ERR_NOMEM).
 */
cJSON *delta_plan(const char *root, const char *body, size_t len, int bases, struct err *e) WUR;

struct delta_limits {
	uint64_t max_unpacked;  /* bytes of files in the release (as a full push) */
	uint64_t max_entries;   /* entries of files.json */
	uint64_t min_free;      /* free bytes kept on the file system */
};

/*
 * Assemble the release FILES (parsed from STAGING/files.json) in STAGING
 * (absolute path of the staging directory of the agent's tree ROOT) from what
 * the delta tarball put there and from local copies, then verify it (see
 * the top). Returns 0, or -1 with E: ERR_DELTA_MISMATCH (the message names
 * the path), ERR_LIMIT (FILES is over LIM), ERR_NOSPACE, ERR_IO, ERR_NOMEM.
 * *COPIED_BYTES (may be NULL) gets the bytes copied from local releases.
 */
int delta_assemble(const char *root, const char *staging, const struct release_files *files,
    const struct delta_limits *lim, uint64_t *copied_bytes, struct err *e) WUR;

#endif
