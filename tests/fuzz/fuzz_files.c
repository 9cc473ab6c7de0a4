/*
 * Fuzz common/release_files: files.json's strict parser and canonical
 * writer. The updater parses files.json from a pushed tarball and from a
 * POST /update/plan body, so every input must either be refused as
 * ERR_FORMAT/ERR_LIMIT or give entries that keep the rules the readers rely
 * on (sorted, unique, listed parents, safe paths and link targets); the
 * writer must turn them into bytes that parse back to the same entries and
 * are a fixed point.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/release.h"
#include "common/release_check.h"
#include "common/release_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct release_files *f)
{
	struct err e = ERR_INIT;

	if (release_files_check(f, &e) != 0) {
		__builtin_trap();
	}
	for (size_t i = 0; i < f->n; i++) {
		const struct release_files_entry *en = &f->v[i];

		if (!release_safe_relpath_max(en->path, RELEASE_FILES_PATH_MAX) ||
		    (en->type == RELEASE_FILES_SYMLINK &&
		    (en->target == NULL || release_check_symlink(en->path, en->target, &e) != 0)) ||
		    (en->type != RELEASE_FILES_SYMLINK && (en->mode & ~0755u) != 0) ||
		    (en->type == RELEASE_FILES_REG && strlen(en->sha256) != DIGEST_HEX_LEN)) {
			__builtin_trap();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct release_files f = RELEASE_FILES_INIT, back = RELEASE_FILES_INIT;
	struct err e = ERR_INIT;
	char *out = NULL, *again = NULL;
	size_t outlen = 0, againlen = 0;

	if (release_files_parse((const char *)data, size, &f, &e) != 0) {
		if (!err_failed(&e) || (e.kind != ERR_FORMAT && e.kind != ERR_LIMIT) || f.n != 0) {
			__builtin_trap();
		}
		return 0;
	}
	check(&f);
	if (release_files_format(&f, &out, &outlen, &e) != 0 ||
	    release_files_parse(out, outlen, &back, &e) != 0 || back.n != f.n) {
		__builtin_trap();
	}
	for (size_t i = 0; i < f.n; i++) {
		const struct release_files_entry *a = &f.v[i], *b = &back.v[i];

		if (strcmp(a->path, b->path) != 0 || a->type != b->type || a->mode != b->mode ||
		    a->size != b->size || strcmp(a->sha256, b->sha256) != 0 ||
		    (a->target == NULL) != (b->target == NULL) ||
		    (a->target != NULL && strcmp(a->target, b->target) != 0)) {
			__builtin_trap();
		}
	}
	if (release_files_format(&back, &again, &againlen, &e) != 0 || againlen != outlen ||
	    memcmp(again, out, outlen) != 0) {
		__builtin_trap();
	}
	free(again);
	free(out);
	release_files_free(&back);
	release_files_free(&f);
	return 0;
}
