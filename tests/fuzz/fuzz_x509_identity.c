/*
 * Fuzz the certificate identity extraction every handshake runs on a peer's
 * certificate: DER parsing, subject CN/OU extraction, role mapping.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_identity id;

	if (tls_identity_from_der(data, size, NULL, &id) == 0) {
		/* Whatever parsed must be well-formed strings and a known role. */
		if (memchr(id.cn, '\0', sizeof(id.cn)) == NULL ||
		    memchr(id.fingerprint, '\0', sizeof(id.fingerprint)) == NULL ||
		    (unsigned)id.role > TLS_ROLE_UPDATER) {
			__builtin_trap();
		}
	}
	if (size > 0) {
		/* The role mapping on arbitrary subject strings. */
		char cn[64];
		size_t n = size < sizeof(cn) - 1 ? size : sizeof(cn) - 1;
		memcpy(cn, data, n);
		cn[n] = '\0';
		(void)tls_role_from_subject(cn, (size & 1) ? "agent" : "", "tandem-master");
	}
	return 0;
}
