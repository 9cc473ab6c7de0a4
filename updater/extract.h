/*
 * extract — streaming, guarded extraction of a release tarball (gzip tar).
 *
 * The caller feeds the tarball in chunks as they arrive (httpd on_data);
 * every byte goes through SHA-256 on the caller's thread and into a bounded
 * ring buffer that a worker thread drains through libarchive into a staging
 * directory. Receiving, hashing, gunzip and writing overlap; memory use is
 * bounded (EXTRACT_RING_BYTES plus libarchive's own buffers), never the whole
 * upload.
 *
 * Rules, enforced per entry while extracting (wiki/Updater.md "Extraction
 * rules"; the entry rules are common/release_check's, which the master runs
 * on a release before sending it): the three ARCHIVE_EXTRACT_SECURE_* flags (libarchive leaves them
 * off by default); only regular files,
 * directories and relative symlinks that resolve inside the staging
 * directory; no hardlinks, devices, FIFOs or sockets; setuid/setgid/sticky
 * and group/other write bits stripped; ownership is the process's, never the
 * archive's; limits on unpacked bytes and entry count checked as data is
 * written (a gzip bomb stops early); free disk space checked as it goes.
 * Only gzip-compressed tar is accepted. Errors name the entry.
 *
 * Because libarchive resolves paths against the process's working directory
 * and SECURE_NOABSOLUTEPATHS refuses absolute names, STAGING must be a
 * relative path (the updater works inside its install directory; it never
 * chdir()s once threads run).
 */
#ifndef TANDEM_EXTRACT_H
#define TANDEM_EXTRACT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/release_check.h"
#include "common/util.h"

/* Bytes of upload buffered between the feeding thread and the extractor. */
#define EXTRACT_RING_BYTES ((size_t)256 * 1024)
/* Longest entry path accepted (bytes, relative to the staging dir). */
#define EXTRACT_MAX_PATH RELEASE_CHECK_MAX_PATH

struct extract_limits {
	uint64_t max_unpacked;  /* total bytes of file data written; 0: 1 GiB */
	uint64_t max_entries;   /* archive entries; 0: 100000 */
	uint64_t min_free;      /* stop when the staging fs has less free; 0: no check */
};

struct extract;

/*
 * Create the directory STAGING (relative path, must not exist; mode 0755)
 * and start the extractor thread. LIM may be NULL for the defaults.
 * Returns 0 with *OUT set, or -1 with E set (nothing left behind).
 */
int extract_begin(const char *staging, const struct extract_limits *lim, struct extract **out,
    struct err *e) WUR;

/*
 * Feed the next LEN bytes of the tarball. Blocks while the ring buffer is
 * full (until the extractor makes room). Returns 0, or -1 once extraction
 * has failed (the reason comes from extract_finish(); further feeds keep
 * failing). Bytes arriving after the end of the tar archive are hashed and
 * otherwise ignored.
 */
int extract_feed(struct extract *x, const void *data, size_t len) WUR;

/* Bytes fed so far. */
uint64_t extract_fed(const struct extract *x);

/*
 * End of input: wait for the extractor, free X and report. Returns 0 with
 * SHA256_HEX (65 bytes) holding the digest of every byte fed and *ENTRIES /
 * *UNPACKED (either may be NULL) the counts; or -1 with E naming the entry
 * when there is one. E's kind says what happened: ERR_UNSAFE (an entry broke
 * a rule), ERR_LIMIT (unpacked bytes or entry count), ERR_FORMAT (not gzip,
 * not tar, truncated, corrupt, empty), ERR_NOSPACE (the disk is (nearly)
 * full), ERR_CANCELED (extract_abort), ERR_IO or ERR_INTERNAL (any other
 * local failure). The staging directory is left in place in every case: the
 * caller promotes or removes it.
 */
int extract_finish(struct extract *x, char sha256_hex[65], uint64_t *entries, uint64_t *unpacked,
    struct err *e) WUR;

/* Stop the extractor and free X (NULL is fine). The staging dir is left. */
void extract_abort(struct extract *x);

#endif
