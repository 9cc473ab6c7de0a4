/*
 * zpatch — the one owner of per-file binary patches: a zstd frame
 * compressed with the old version of a file (the base) as a raw-content
 * prefix (zstd "patch-from", ZSTD_CCtx_refPrefix / ZSTD_DCtx_refPrefix),
 * so a file that changed a little travels as a few bytes. The master makes
 * them for a planned push (master/delta_pack), the updater applies them
 * against its local copy of the base (updater/delta).
 *
 * A patch is exactly one zstd frame that declares its content size; the
 * window covers base + target (at most 2^ZPATCH_WINDOW_LOG_MAX bytes). Base
 * and target are each at most ZPATCH_MAX_FILE bytes and are held in memory
 * whole (the output too), so applying costs at most about three times that.
 * The reader refuses anything else before it allocates: several frames,
 * trailing bytes, a frame without a content size or with another size than
 * the caller expects, a larger window, a dictionary id. Bytes that decode to
 * other content are the caller's to catch (it compares the digest).
 */
#ifndef TANDEM_ZPATCH_H
#define TANDEM_ZPATCH_H

#include <stddef.h>

#include "common/err.h"
#include "common/util.h"

#define ZPATCH_MAX_FILE ((size_t)32 * 1024 * 1024)
#define ZPATCH_MAX_PATCH (ZPATCH_MAX_FILE + (size_t)1024 * 1024) /* a patch's own bytes */
#define ZPATCH_WINDOW_LOG_MAX 27 /* 128 MiB: covers 2 * ZPATCH_MAX_FILE */

/*
 * Where a delta tarball carries its patches: ZPATCH_DELTA_DIR/TARGET-BASE.zst
 * (the digests of the file made and of the base it is made from), unless the
 * release's files.json lists that path itself (then nothing is patched).
 */
#define ZPATCH_DELTA_DIR ".tandem-patches"
#define ZPATCH_SUFFIX ".zst"

/*
 * The patch that turns BASE (BLEN bytes) into TARGET (TLEN bytes) into *OUT
 * (malloc'd, *OUTLEN bytes; caller frees). Returns 0, or -1 with E
 * (ERR_LIMIT: a side over ZPATCH_MAX_FILE; ERR_NOMEM; ERR_INTERNAL).
 */
int zpatch_make(const void *base, size_t blen, const void *target, size_t tlen, void **out,
    size_t *outlen, struct err *e) WUR;

/*
 * Apply PATCH (PLEN bytes) to BASE (BLEN bytes): 0 with *OUT (malloc'd,
 * exactly SIZE bytes; caller frees), or -1 with E: ERR_FORMAT (not one
 * frame of content size SIZE within the limits, or corrupt), ERR_LIMIT
 * (SIZE or BLEN over ZPATCH_MAX_FILE), ERR_NOMEM.
 */
int zpatch_apply(const void *base, size_t blen, const void *patch, size_t plen, size_t size,
    void **out, struct err *e) WUR;

/*
 * About what TARGET (TLEN bytes) costs sent whole and compressed (a fast
 * zstd level: the gzip of a tarball does about as well): the yardstick a
 * patch must clearly beat. Returns the bytes, or TLEN when it cannot tell.
 */
size_t zpatch_whole_estimate(const void *target, size_t tlen);

#endif
