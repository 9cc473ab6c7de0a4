#include "common/zpatch.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

/* The level patches are made at: with long-distance matching, a base's
 * unchanged runs are found across the whole window at the speed of a fast
 * level (a 1.3 MB binary with a marker appended: 178 bytes in 0.2 s). */
#define ZPATCH_LEVEL 3
#define ZPATCH_MAGIC 0xFD2FB528u

/* ceil(log2(N)), at least ZSTD's smallest window. */
static int
zpatch_window_log(size_t n)
{
	int lg = 10;

	while (lg < 62 && ((size_t)1 << lg) < n) {
		lg++;
	}
	return lg;
}

int
zpatch_make(const void *base, size_t blen, const void *target, size_t tlen, void **out,
    size_t *outlen, struct err *e)
{
	ZSTD_CCtx *cc;
	size_t cap, r;
	void *buf;
	int wlog;

	*out = NULL;
	*outlen = 0;
	if (blen > ZPATCH_MAX_FILE || tlen > ZPATCH_MAX_FILE) {
		return err_set(e, ERR_LIMIT, "patch: a file over %zu bytes", ZPATCH_MAX_FILE);
	}
	wlog = zpatch_window_log(blen + tlen);
	cap = ZSTD_compressBound(tlen);
	cc = ZSTD_createCCtx();
	buf = malloc(cap > 0 ? cap : 1);
	if (cc == NULL || buf == NULL) {
		ZSTD_freeCCtx(cc);
		free(buf);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	r = ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, ZPATCH_LEVEL);
	if (!ZSTD_isError(r)) {
		r = ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, wlog);
	}
	if (!ZSTD_isError(r)) {
		r = ZSTD_CCtx_setParameter(cc, ZSTD_c_enableLongDistanceMatching, 1);
	}
	if (!ZSTD_isError(r)) {
		r = ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
	}
	if (!ZSTD_isError(r)) {
		r = ZSTD_CCtx_refPrefix(cc, base, blen);
	}
	if (!ZSTD_isError(r)) {
		r = ZSTD_compress2(cc, buf, cap, target, tlen);
	}
	ZSTD_freeCCtx(cc);
	if (ZSTD_isError(r)) {
		free(buf);
		return err_set(e, ERR_INTERNAL, "patch: zstd: %s", ZSTD_getErrorName(r));
	}
	*out = buf;
	*outlen = r;
	return 0;
}

/*
 * The window a frame declares (RFC 8878 3.1.1.1): its Window_Descriptor,
 * or with Single_Segment_flag its content size. 0 when the header is short
 * or not a zstd frame.
 */
static uint64_t
zpatch_frame_window(const unsigned char *p, size_t len, unsigned long long content)
{
	unsigned magic;
	unsigned char fhd, wd;
	uint64_t wbase;

	if (len < 6) {
		return 0;
	}
	magic = (unsigned)p[0] | (unsigned)p[1] << 8 | (unsigned)p[2] << 16 | (unsigned)p[3] << 24;
	if (magic != ZPATCH_MAGIC) {
		return 0;
	}
	fhd = p[4];
	if (fhd & 0x20) { /* Single_Segment_flag: the window is the content */
		return content > 0 ? content : 1;
	}
	wd = p[5];
	wbase = (uint64_t)1 << (10 + (wd >> 3));
	return wbase + (wbase / 8) * (wd & 7);
}

int
zpatch_apply(const void *base, size_t blen, const void *patch, size_t plen, size_t size,
    void **out, struct err *e)
{
	unsigned long long content;
	uint64_t window;
	ZSTD_DCtx *dc;
	void *buf;
	size_t r;

	*out = NULL;
	if (size > ZPATCH_MAX_FILE || blen > ZPATCH_MAX_FILE) {
		return err_set(e, ERR_LIMIT, "patch: a file over %zu bytes", ZPATCH_MAX_FILE);
	}
	content = ZSTD_getFrameContentSize(patch, plen);
	if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN) {
		return err_set(e, ERR_FORMAT, "patch: not a zstd frame that declares its size");
	}
	if (content != (unsigned long long)size) {
		return err_set(e, ERR_FORMAT, "patch: declares %llu bytes, the file has %zu",
		    content, size);
	}
	r = ZSTD_findFrameCompressedSize(patch, plen);
	if (ZSTD_isError(r) || r != plen) {
		return err_set(e, ERR_FORMAT, "patch: not exactly one zstd frame");
	}
	if (ZSTD_getDictID_fromFrame(patch, plen) != 0) {
		return err_set(e, ERR_FORMAT, "patch: names a dictionary");
	}
	window = zpatch_frame_window(patch, plen, content);
	if (window == 0 || window > ((uint64_t)1 << ZPATCH_WINDOW_LOG_MAX)) {
		return err_set(e, ERR_FORMAT, "patch: a window of %llu bytes (at most %llu)",
		    (unsigned long long)window, 1ULL << ZPATCH_WINDOW_LOG_MAX);
	}
	dc = ZSTD_createDCtx();
	buf = malloc(size > 0 ? size : 1);
	if (dc == NULL || buf == NULL) {
		ZSTD_freeDCtx(dc);
		free(buf);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	r = ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, ZPATCH_WINDOW_LOG_MAX);
	if (!ZSTD_isError(r)) {
		r = ZSTD_DCtx_refPrefix(dc, base, blen);
	}
	if (!ZSTD_isError(r)) {
		r = ZSTD_decompressDCtx(dc, buf, size, patch, plen);
	}
	ZSTD_freeDCtx(dc);
	if (ZSTD_isError(r) || r != size) {
		free(buf);
		return err_set(e, ERR_FORMAT, "patch: does not decode to %zu bytes (%s)", size,
		    ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short");
	}
	*out = buf;
	return 0;
}

size_t
zpatch_whole_estimate(const void *target, size_t tlen)
{
	size_t cap = ZSTD_compressBound(tlen), r;
	void *buf = malloc(cap > 0 ? cap : 1);

	if (buf == NULL) {
		return tlen;
	}
	r = ZSTD_compress(buf, cap, target, tlen, 1);
	free(buf);
	return ZSTD_isError(r) || r > tlen ? tlen : r;
}
