/*
 * release_store — the master's store of releases: HOME/store/SHA256.tar.gz
 * (beside it SHA256.tar.gz.tsig, written by rollout_store_release) and the
 * record that the stored file passed the check an updater makes,
 * HOME/store/SHA256.checked.json.
 *
 * A release enters the store in one read of the operator's file: its bytes
 * are hashed while they are written to a temporary file in the store; the
 * temporary (the master's own copy, which nothing else changes) is checked
 * by common/release_check, then fsynced and renamed to its digest's name,
 * then the record is written (atomically, fsynced). A release refused by
 * the check never enters the store. When the store holds a release of the
 * file's size, the file may be that release: it is hashed first, without a
 * copy, and read again to be copied only when no valid record has its digest.
 *
 * The record is trusted only for the file it was written for: it names the
 * digest, the size, the tandem version that checked it, the manifest flags
 * checked (RELEASE_MF_*) and the stored file's identity (device, inode,
 * size, mtime and ctime to the nanosecond), and a stored file whose stat no
 * longer matches (replaced, rewritten, restored from a backup) is checked
 * again. A crash at any point leaves either a temporary (removed by the
 * next import) or a stored file without a record (checked again by the next
 * import), never a record of a file that was not checked.
 */
#ifndef TANDEM_MASTER_RELEASE_STORE_H
#define TANDEM_MASTER_RELEASE_STORE_H

#include <limits.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/err.h"
#include "common/release.h"
#include "common/util.h"
#include "master/delta_pack.h"

/* HOME/store/SHA256.tar.gz into BUF. Returns 0, or -1 when it does not fit. */
int release_store_path(const char *home, const char *sha256, char *buf, size_t len) WUR;

/* A release as release_store_import() found it. */
struct release_store_entry {
	char path[PATH_MAX];               /* the stored file (the source with no copy) */
	char sha256[DIGEST_HEX_LEN + 1];
	uint64_t size;
	char name[sizeof(((struct release_manifest *)0)->name)];       /* the manifest's */
	char version[sizeof(((struct release_manifest *)0)->version)];
	int reused;  /* the store held it, checked for these flags: not checked again */
	int refused; /* on failure: the check refused the release (else an I/O error) */
	/* With RELEASE_STORE_PREFETCH, when the check ran and kept something: the files
	   the hosts most likely lack (master/delta_pack), the caller's to free. */
	struct delta_pack_prefetch *prefetch;
};

/* release_store_import() flags, beside RELEASE_MF_AGENT / RELEASE_MF_UPDATER. */
#define RELEASE_STORE_NO_COPY 0x100u /* read only: nothing is written to the store */
/*
 * When the check runs, keep what a planned push's delta needs (OUT->prefetch):
 * the files no release among the RELEASE_STORE_PREFETCH_REFS newest others of
 * the store has (what the hosts lack when they run one of them), at most
 * RELEASE_STORE_PREFETCH_MAX bytes, read by the check's own pass, so the
 * first delta of a new release is written without a second pass over it.
 */
#define RELEASE_STORE_PREFETCH 0x200u
#define RELEASE_STORE_PREFETCH_REFS 2
#define RELEASE_STORE_PREFETCH_MAX ((uint64_t)64 * 1024 * 1024)

/*
 * The release tarball SRC, checked as an updater will check it with the
 * manifest flags FLAGS (RELEASE_MF_AGENT, RELEASE_MF_UPDATER), in HOME's
 * store (see above). When the store already holds SRC's digest with a
 * record valid for FLAGS, SRC is read once to hash it and nothing else is
 * done (nothing is written). With RELEASE_STORE_NO_COPY (a dry run) SRC is hashed, then checked
 * in place unless the store has a valid record, and nothing is written.
 * With RELEASE_STORE_PREFETCH see above. Returns 0 with *OUT, or -1 with E
 * (OUT->refused set when the check refused the release, in the updater's
 * words; nothing kept).
 */
int release_store_import(const char *home, const char *src, unsigned flags,
    struct release_store_entry *out, struct err *e) WUR;

#endif
