/*
 * Fuzz updater/install's reader of state/both_bad.json. What it accepts is a
 * count within INSTALL_BOTH_BAD_MAX_ATTEMPTS, which the writer writes back
 * and the reader reads back the same; what it refuses leaves the count
 * untouched and says why.
 */
#include <stddef.h>
#include <stdint.h>

#include "updater/install.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct err e = ERR_INIT;
	unsigned attempts = 4242, back = 0;
	char buf[64];
	int n;

	if (install_both_bad_parse((const char *)data, size, &attempts, &e) != 0) {
		if (attempts != 4242 || !err_failed(&e)) {
			__builtin_trap();
		}
		return 0;
	}
	if (attempts > INSTALL_BOTH_BAD_MAX_ATTEMPTS || err_failed(&e)) {
		__builtin_trap();
	}
	n = install_both_bad_format(attempts, buf, sizeof(buf));
	if (n <= 0 || install_both_bad_parse(buf, (size_t)n, &back, &e) != 0 || back != attempts) {
		__builtin_trap();
	}
	return 0;
}
