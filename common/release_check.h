/*
 * release_check — the rules a release tarball's entries must follow, and a
 * check of a whole tarball that writes nothing.
 *
 * One owner for the rules: the updater's extraction (updater/extract.c)
 * applies release_check_name(), release_check_type() and
 * release_check_symlink() to every entry it writes, and the master
 * (`tandem swarm update`, `--dry-run`, `swarm target set`) runs
 * release_check_file() on the file before any host is contacted, so a
 * release an updater would refuse is refused locally with the same words.
 *
 * The rules (wiki/Updater.md "Extraction rules"): exactly gzip over a tar
 * archive; at least one entry; names relative, without "..", without control
 * bytes, at most RELEASE_CHECK_MAX_PATH bytes; only regular files,
 * directories and relative symlinks that stay inside the release; no
 * hardlinks, devices, FIFOs or sockets; at most LIM->max_entries entries and
 * LIM->max_unpacked bytes of file data. release_check_file() adds what the
 * updater checks after extraction: manifest.json present and valid
 * (common/release.h) and its programs present and executable.
 */
#ifndef TANDEM_RELEASE_CHECK_H
#define TANDEM_RELEASE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/release.h"
#include "common/util.h"

/* Longest entry path accepted (bytes, relative to the release root). */
#define RELEASE_CHECK_MAX_PATH 1024
/* The updater's defaults (updater.conf max_unpacked, max_entries). */
#define RELEASE_CHECK_DEFAULT_MAX_UNPACKED ((uint64_t)1 << 30)
#define RELEASE_CHECK_DEFAULT_MAX_ENTRIES ((uint64_t)100000)

/* The kind of an entry, as release_check_type() sorts it. */
enum release_check_ftype {
	RELEASE_CHECK_FILE,
	RELEASE_CHECK_DIR,
	RELEASE_CHECK_SYMLINK,
	RELEASE_CHECK_OTHER, /* device, FIFO, socket, unknown: always refused */
};

/*
 * Normalise the entry name NAME into OUT (OUTLEN bytes): leading "./"
 * components and repeated slashes dropped. Absolute names, ".." components,
 * control bytes and over-long names are refused (ERR_UNSAFE). An empty result
 * (the archive's "./") sets *SKIP. Returns 0 or -1 with E.
 */
int release_check_name(const char *name, char *out, size_t outlen, int *skip, struct err *e) WUR;

/*
 * Entry NAME of type FT (a libarchive AE_IF* file type), HARDLINK 1 when it
 * is a hardlink. Sets *KIND. Returns 0, or -1 with E (ERR_UNSAFE) for a
 * hardlink, a device, a FIFO, a socket or an unknown type.
 */
int release_check_type(const char *name, unsigned ft, int hardlink,
    enum release_check_ftype *kind, struct err *e) WUR;

/*
 * A symlink at PATH (normalised, relative to the release root) to TARGET
 * is safe when TARGET is relative and has the form ("..")* NAME*, its
 * leading ".." not climbing above the root. Returns 0 or -1 with E
 * (ERR_UNSAFE).
 */
int release_check_symlink(const char *path, const char *target, struct err *e) WUR;

struct release_check_limits {
	uint64_t max_unpacked; /* 0: RELEASE_CHECK_DEFAULT_MAX_UNPACKED */
	uint64_t max_entries;  /* 0: RELEASE_CHECK_DEFAULT_MAX_ENTRIES */
};

/*
 * Read the tarball PATH the way an updater extracts it, without writing
 * anything: every rule above, then manifest.json parsed with FLAGS
 * (RELEASE_MF_AGENT, RELEASE_MF_UPDATER) and the programs those flags ask
 * for present and executable in the archive (symlinks followed inside it).
 * LIM may be NULL for the updater's defaults. On success *M holds the
 * manifest (M may be NULL) and *ENTRIES / *UNPACKED the counts (either may
 * be NULL). Returns 0, or -1 with E: ERR_FORMAT (not gzip, not tar, no or
 * bad manifest, a missing or non-executable program), ERR_UNSAFE,
 * ERR_LIMIT, ERR_NOT_FOUND / ERR_IO (the file cannot be read), ERR_NOMEM.
 */
int release_check_file(const char *path, const struct release_check_limits *lim,
    unsigned flags, struct release_manifest *m, uint64_t *entries, uint64_t *unpacked,
    struct err *e) WUR;

/*
 * What a caller sees of the regular files while the check reads them, so a
 * second pass over the tarball is not needed for their bytes: FILE is
 * called for each regular file entry that passed the rules (NAME as in the
 * archive, PATH normalised, SIZE from its header or -1); when it returns
 * non-zero, DATA gets the entry's bytes as they are read (OFF the offset in
 * the file: holes are not handed over) and END is called after the last
 * one. An entry the check refuses midway gets no END. The visitor never
 * changes the verdict: it has no way to fail the check, and a caller must
 * drop what it kept when the check fails.
 */
struct release_check_visitor {
	int (*file)(void *arg, const char *name, const char *path, int64_t size);
	void (*data)(void *arg, const void *buf, size_t len, uint64_t off);
	void (*end)(void *arg);
	void *arg;
};

/* release_check_file() with the visitor V (may be NULL: none). */
int release_check_file_visit(const char *path, const struct release_check_limits *lim,
    unsigned flags, const struct release_check_visitor *v, struct release_manifest *m,
    uint64_t *entries, uint64_t *unpacked, struct err *e) WUR;

#endif
