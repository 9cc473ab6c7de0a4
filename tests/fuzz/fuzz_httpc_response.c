/*
 * Fuzz the response parser of common/httpc (libhttp-parser plus our
 * callbacks: limits, interim responses, no-body statuses, header capture).
 * The first byte chooses the request method (bit 0: HEAD), the feeding step
 * (bits 1-4: 0 = all at once, else 1..15 bytes per read) and a small body
 * limit (bit 5) so the limit paths are reached; the rest is the server's
 * whole transmission. Checks the invariants the callers rely on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct httpc_response r;
	struct err err = ERR_INIT;
	int is_head;
	size_t step;
	size_t max_body;
	int rc;

	if (size < 1) {
		return 0;
	}
	is_head = data[0] & 1;
	step = (size_t)((data[0] >> 1) & 0x0f);
	max_body = (data[0] & 0x20) != 0 ? 64 : 0;
	err_clear(&err);
	rc = httpc_parse_response_buffer((const char *)data + 1, size - 1, is_head, max_body, step,
	    &r, &err);
	if (rc == 0) {
		/* A complete response: a final status, a NUL-terminated body within limits. */
		if (r.status < 200 || r.status > 599 || r.body == NULL ||
		    r.body[r.body_len] != '\0' ||
		    r.body_len > (max_body > 0 ? max_body : HTTPC_DEFAULT_MAX_BODY) ||
		    (is_head && r.body_len != 0) || ((r.status == 204 || r.status == 304) && r.body_len != 0) ||
		    strlen(r.content_type) >= sizeof(r.content_type) ||
		    strlen(r.retry_after) >= sizeof(r.retry_after) || (r.keep_alive != 0 && r.keep_alive != 1)) {
			abort();
		}
	} else if (r.body != NULL || r.status != 0 || !err_failed(&err)) {
		/* A failure leaves the response empty and always says why. */
		abort();
	}
	httpc_response_free(&r);
	return 0;
}
