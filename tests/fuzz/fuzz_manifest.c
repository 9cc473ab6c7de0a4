/*
 * Fuzz common/release's manifest.json parser and writer, the one reader the
 * updater (pushed tarballs) and the packer (a tree's source manifest) share.
 * The first byte picks the reader's flags (RELEASE_MF_*), the rest is the
 * file. Whatever is accepted must satisfy what the readers rely on (safe
 * relative programs, valid name and version, bounded arguments), and the
 * writer must turn it into bytes that parse back to the same manifest and
 * are a fixed point (writing them again gives the same bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/release.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct release_manifest *m, unsigned flags)
{
	if (!release_ident_valid(m->name) ||
	    (m->version[0] == '\0' ? (flags & RELEASE_MF_SOURCE) == 0 :
	    !release_ident_valid(m->version)) ||
	    (m->entrypoint[0] == '\0' && m->updater_entrypoint[0] == '\0') ||
	    (m->entrypoint[0] != '\0' && !release_safe_relpath(m->entrypoint)) ||
	    (m->updater_entrypoint[0] != '\0' && !release_safe_relpath(m->updater_entrypoint)) ||
	    ((flags & RELEASE_MF_AGENT) != 0 && m->entrypoint[0] == '\0') ||
	    ((flags & RELEASE_MF_UPDATER) != 0 && m->updater_entrypoint[0] == '\0') ||
	    m->npreflight > RELEASE_ARGS_MAX ||
	    (m->npreflight > 0 && !release_safe_relpath(m->preflight[0])) ||
	    (m->readiness[0] != '\0' && !release_readiness_valid(m->readiness))) {
		__builtin_trap();
	}
	for (size_t i = 0; i < m->npreflight; i++) {
		if (strlen(m->preflight[i]) > RELEASE_ARG_MAX) {
			__builtin_trap();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct release_manifest m, back;
	struct err e = ERR_INIT;
	char *out = NULL, *again = NULL;
	size_t outlen = 0, againlen = 0;
	unsigned flags;

	if (size < 1) {
		return 0;
	}
	flags = data[0] & (RELEASE_MF_AGENT | RELEASE_MF_UPDATER | RELEASE_MF_SOURCE);
	if (release_manifest_parse((const char *)data + 1, size - 1, flags, &m, &e) != 0) {
		if (!err_failed(&e) || e.kind != ERR_FORMAT) {
			__builtin_trap();
		}
		return 0;
	}
	check(&m, flags);
	if (m.version[0] == '\0') {
		memcpy(m.version, "1", 2);
	}
	if (release_manifest_format(&m, (const char *)data + 1, size - 1, &out, &outlen, &e) != 0) {
		__builtin_trap();
	}
	memset(&back, 0, sizeof(back));
	if (release_manifest_parse(out, outlen, flags & ~RELEASE_MF_SOURCE, &back, &e) != 0 ||
	    memcmp(&back, &m, sizeof(m)) != 0) {
		__builtin_trap();
	}
	if (release_manifest_format(&back, out, outlen, &again, &againlen, &e) != 0 ||
	    againlen != outlen || memcmp(again, out, outlen) != 0) {
		__builtin_trap();
	}
	free(again);
	free(out);
	return 0;
}
