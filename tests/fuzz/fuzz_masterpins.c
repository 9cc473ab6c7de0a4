/*
 * Fuzz the two readers of updater/masterpins: the state file
 * (STATE/master_pins.json) and the PUT /pins/master body. Whatever they
 * accept must leave a set whose pins are all allowed, and a body's
 * fingerprint must be 64 lowercase hex digits.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "updater/masterpins.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	char *const cfg[] = { a, NULL };
	struct masterpins mp;
	struct err e = ERR_INIT;
	enum masterpins_op op;
	char fp[TLS_FP_HEX_LEN + 1];

	if (masterpins_load(&mp, cfg, NULL, &e) != 0) {
		__builtin_trap();
	}
	if (masterpins_parse(&mp, (const char *)data, size, &e) == 0) {
		if (mp.nadded > MASTERPINS_MAX || mp.nretired > MASTERPINS_MAX) {
			__builtin_trap();
		}
		for (size_t i = 0; i < mp.nadded; i++) {
			if (!masterpins_allowed(&mp, mp.added[i])) {
				__builtin_trap();
			}
		}
	} else if (!err_failed(&e)) {
		__builtin_trap();
	}
	err_clear(&e);
	if (masterpins_request_parse((const char *)data, size, &op, fp, &e) == 0) {
		if (strlen(fp) != TLS_FP_HEX_LEN || strspn(fp, "0123456789abcdef") != TLS_FP_HEX_LEN) {
			__builtin_trap();
		}
	} else if (!err_failed(&e)) {
		__builtin_trap();
	}
	return 0;
}
