/*
 * Fuzz the release manifest reader of master/release_pack
 * (release_manifest_prepare): the first byte picks a --version override and
 * whether bin/tandem-updater exists, the rest is manifest.json. Whatever it
 * accepts must re-parse strictly, carry the override, name safe paths, and
 * be a fixed point (preparing the output again gives the same bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "common/json.h"
#include "master/release_pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* No empty, "." or ".." component, not absolute. */
static int
path_ok(const char *p)
{
	if (*p == '\0' || *p == '/') {
		return 0;
	}
	while (*p != '\0') {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			return 0;
		}
		p += n;
		if (*p == '/') {
			p++;
			if (*p == '\0') {
				return 0;
			}
		}
	}
	return 1;
}

static const char *const versions[] = { NULL, "1.0", "2.0.0-rc1+build.7", "x" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct release_manifest info, again_info;
	char err[256], jerr[128];
	char *out = NULL, *again = NULL;
	size_t outlen = 0, againlen = 0;
	const char *version;
	int has_updater;
	cJSON *tree;

	if (size < 1) {
		return 0;
	}
	version = versions[data[0] & 3];
	has_updater = (data[0] >> 2) & 1;
	if (release_manifest_prepare((const char *)data + 1, size - 1, version, has_updater, &out,
	    &outlen, &info, err, sizeof(err)) != 0) {
		if (out != NULL || err[0] == '\0') {
			abort();
		}
		return 0;
	}
	tree = json_parse_object(out, outlen, jerr, sizeof(jerr));
	if (tree == NULL || info.name[0] == '\0' || info.version[0] == '\0' ||
	    !path_ok(info.entrypoint) ||
	    (info.updater_entrypoint[0] != '\0' && !path_ok(info.updater_entrypoint)) ||
	    (info.preflight[0] != '\0' && !path_ok(info.preflight)) ||
	    (version != NULL && strcmp(info.version, version) != 0)) {
		abort();
	}
	cJSON_Delete(tree);
	if (release_manifest_prepare(out, outlen, NULL, has_updater, &again, &againlen,
	    &again_info, err, sizeof(err)) != 0 || againlen != outlen ||
	    memcmp(again, out, outlen) != 0 || strcmp(again_info.version, info.version) != 0) {
		abort();
	}
	free(again);
	free(out);
	return 0;
}
