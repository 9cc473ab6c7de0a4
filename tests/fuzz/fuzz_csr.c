/*
 * Fuzz the certificate-request reader the master runs on a CSR a host sends
 * for renewal (PEM or DER): mbedTLS's parser plus our proof-of-possession
 * check and key policy.
 */
#include <stddef.h>
#include <stdint.h>

#include "pki/csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = ERR_INIT;

	if (pki_csr_check(data, size, &e) != 0 && !err_failed(&e)) {
		__builtin_trap();
	}
	return 0;
}
