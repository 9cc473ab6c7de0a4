/*
 * Fuzz updater/manifest's parser (the updater's side; fuzz_manifest covers
 * the master's packer): the bytes are a manifest.json from a pushed
 * tarball. Whatever it accepts must satisfy what the updater relies on: a
 * safe relative entrypoint and preflight program, bounded arguments.
 */
#include <stdint.h>
#include <string.h>

#include "updater/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct manifest m;
	char err[256];

	if (manifest_parse((const char *)data, size, &m, err, sizeof(err)) != 0) {
		return 0;
	}
	if (!manifest_safe_relpath(m.entrypoint) || m.npreflight > MANIFEST_MAX_ARGS ||
	    m.name[0] == '\0' || m.version[0] == '\0') {
		__builtin_trap();
	}
	if (m.npreflight > 0 && !manifest_safe_relpath(m.preflight[0])) {
		__builtin_trap();
	}
	for (size_t i = 0; i < m.npreflight; i++) {
		if (strlen(m.preflight[i]) >= MANIFEST_MAX_ARG) {
			__builtin_trap();
		}
	}
	return 0;
}
