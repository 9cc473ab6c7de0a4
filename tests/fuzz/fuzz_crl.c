/*
 * Fuzz the CRL reader hosts run on a CRL pushed to them (PEM or DER): mbedTLS's
 * parser plus our cRLNumber / reasonCode extension walk and serial
 * canonicalisation; and the serial canonicaliser on arbitrary text.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pki/crl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crl_info ci;
	struct err e = ERR_INIT;
	char text[96];
	char canon[CRL_SERIAL_HEX_MAX + 1];
	size_t n;

	if (crl_parse(data, size, &ci, &e) == 0) {
		for (size_t i = 0; i < ci.n_entries; i++) {
			size_t len = strlen(ci.entries[i].serial);
			/* Whatever parsed is canonical: even, bounded, round-trips. */
			if (len == 0 || len % 2 != 0 || len > CRL_SERIAL_HEX_MAX ||
			    crl_serial_canon(ci.entries[i].serial, canon) != 0 ||
			    strcmp(canon, ci.entries[i].serial) != 0) {
				__builtin_trap();
			}
		}
		crl_info_free(&ci);
	} else if (!err_failed(&e)) {
		__builtin_trap();
	}
	n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	if (crl_serial_canon(text, canon) == 0 && strlen(canon) % 2 != 0) {
		__builtin_trap();
	}
	return 0;
}
