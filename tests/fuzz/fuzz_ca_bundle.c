/*
 * Fuzz the check an updater runs on a CA bundle pushed by a CA rotation
 * (PUT /trust): PEM parsing by mbedTLS plus our count, CA-flag and validity
 * rules. Whatever it accepts parses again as at most TRUST_CA_MAX
 * certificates.
 */
#include <stddef.h>
#include <stdint.h>

#include "pki/trust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = ERR_INIT;

	if (trust_check_ca_bundle(data, size, NULL, &e) != 0) {
		if (!err_failed(&e)) {
			__builtin_trap();
		}
	} else if (size == 0 || size > TRUST_CA_MAX_BYTES) {
		__builtin_trap();
	}
	return 0;
}
