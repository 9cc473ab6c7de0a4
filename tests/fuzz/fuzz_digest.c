/*
 * Fuzz common/digest: the SHA-NI implementation against mbedTLS's on every
 * input. The first byte picks how the rest (the message) is cut into
 * digest_update() pieces: byte values of the input itself, cycled, as piece
 * lengths (0 included), or one shot; both implementations hash the message
 * in one shot and in those pieces, and all four digests must be equal. On a
 * CPU without SHA-NI only mbedTLS's one shot and pieces are compared.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/digest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
hash(enum digest_impl impl, const uint8_t *msg, size_t len, const uint8_t *cuts, size_t ncuts,
    unsigned char out[DIGEST_LEN])
{
	struct digest d;
	size_t off = 0;

	if (digest_use_impl(impl) != 0) {
		abort();
	}
	digest_init(&d);
	for (size_t i = 0; off < len; i++) {
		/* Without cuts: one shot. Piece lengths 0..255; a 0 is an empty update, then one byte. */
		size_t k = ncuts == 0 ? len : cuts[i % ncuts];

		if (k == 0) {
			digest_update(&d, msg + off, 0);
			k = 1;
		}
		k = k < len - off ? k : len - off;
		digest_update(&d, msg + off, k);
		off += k;
	}
	if (digest_final_raw(&d, out) != 0) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char ref[DIGEST_LEN], got[DIGEST_LEN];
	const uint8_t *msg = data, *cuts = NULL;
	size_t len = size, ncuts = 0;
	int shani = digest_impl_available(DIGEST_IMPL_SHANI);

	if (size > 0) {
		/* Byte 0: n = its low 4 bits; the next n bytes are the piece lengths, the rest the message. */
		ncuts = data[0] & 0x0f;
		ncuts = ncuts < size - 1 ? ncuts : size - 1;
		cuts = data + 1;
		msg = data + 1 + ncuts;
		len = size - 1 - ncuts;
	}
	hash(DIGEST_IMPL_MBEDTLS, msg, len, NULL, 0, ref);
	hash(DIGEST_IMPL_MBEDTLS, msg, len, cuts, ncuts, got);
	if (memcmp(ref, got, DIGEST_LEN) != 0) {
		abort();
	}
	if (shani) {
		hash(DIGEST_IMPL_SHANI, msg, len, NULL, 0, got);
		if (memcmp(ref, got, DIGEST_LEN) != 0) {
			abort();
		}
		hash(DIGEST_IMPL_SHANI, msg, len, cuts, ncuts, got);
		if (memcmp(ref, got, DIGEST_LEN) != 0) {
			abort();
		}
	}
	return 0;
}
