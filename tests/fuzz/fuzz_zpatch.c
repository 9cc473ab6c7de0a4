/*
 * Fuzz common/zpatch's reader, what the updater runs on a patch a delta
 * upload carries: the input is a 2-byte size (little endian, the size the
 * manifest gives the file) and the patch; the base is fixed (the seed's
 * patch was made against it). Every input is refused as ERR_FORMAT or
 * decodes to exactly that many bytes; nothing is read or written outside
 * the buffers (ASan), no allocation beyond the limits.
 */
#include <stdint.h>
#include <stdlib.h>

#include "common/zpatch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BASE_LEN 4096

static unsigned char base[BASE_LEN];

static void
base_init(void)
{
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < BASE_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		base[i] = (unsigned char)x;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct err e = ERR_INIT;
	void *out = NULL;
	size_t want;

	if (!ready) {
		base_init();
		ready = 1;
	}
	if (size < 2) {
		return 0;
	}
	want = (size_t)data[0] | (size_t)data[1] << 8;
	if (zpatch_apply(base, BASE_LEN, data + 2, size - 2, want, &out, &e) != 0) {
		if (out != NULL || e.kind != ERR_FORMAT) {
			__builtin_trap();
		}
		return 0;
	}
	if (out == NULL) {
		__builtin_trap();
	}
	/* Read every byte: the output is exactly WANT bytes (ASan checks the bounds). */
	{
		volatile unsigned char sum = 0;

		for (size_t i = 0; i < want; i++) {
			sum = (unsigned char)(sum + ((const unsigned char *)out)[i]);
		}
		(void)sum;
	}
	free(out);
	return 0;
}
