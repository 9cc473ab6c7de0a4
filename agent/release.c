#include "agent/release.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"

int
release_dir_of(const char *exe_path, char *out, size_t outlen)
{
	const char *end;
	size_t len;

	if (exe_path == NULL || exe_path[0] != '/') {
		return -1;
	}
	len = strlen(exe_path);
	/* Strip two trailing components: the binary, then "bin". */
	for (int level = 0; level < 2; level++) {
		end = NULL;
		for (size_t i = len; i > 0; i--) {
			if (exe_path[i - 1] == '/') {
				end = exe_path + i - 1;
				break;
			}
		}
		if (end == NULL || end == exe_path) {
			return -1; /* the release directory would be "/" or nothing */
		}
		len = (size_t)(end - exe_path);
	}
	if (len + 1 > outlen) {
		return -1;
	}
	memcpy(out, exe_path, len);
	out[len] = '\0';
	return 0;
}

int
release_self_dir(char *out, size_t outlen)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n < 0) {
		return -1;
	}
	if ((size_t)n >= sizeof(exe) - 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	exe[n] = '\0';
	if (release_dir_of(exe, out, outlen) != 0) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* A string member KEY of OBJ into BUF; 1 if present and valid, 0 otherwise. */
static int
read_str(const cJSON *obj, const char *key, char *buf, size_t len)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(it) || it->valuestring == NULL) {
		return 0;
	}
	return strlcpy_chk(buf, it->valuestring, len) == 0;
}

int
release_read(const char *dir, struct release_info *out, char *why, size_t whylen)
{
	char path[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	char perr[256];
	cJSON *root = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (snprintf(path, sizeof(path), "%s/%s", dir, RELEASE_RECORD_NAME) >=
	    (int)sizeof(path)) {
		snprintf(why, whylen, "release directory path too long");
		goto out;
	}
	if (fs_read_file(path, RELEASE_RECORD_MAX, &buf, &len) != 0) {
		if (errno == ENOENT) {
			rc = 1;
		} else {
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
		}
		goto out;
	}
	root = json_parse_object(buf, len, perr, sizeof(perr));
	if (root == NULL) {
		snprintf(why, whylen, "%s: %s", path, perr);
		goto out;
	}
	out->has_sha = read_str(root, "sha", out->sha, sizeof(out->sha));
	out->has_sha256 = read_str(root, "sha256", out->sha256, sizeof(out->sha256)) &&
			  is_hex_len(out->sha256, 64);
	if (out->has_sha256) {
		for (char *p = out->sha256; *p != '\0'; p++) {
			*p = (char)tolower((unsigned char)*p);
		}
	} else {
		out->sha256[0] = '\0';
	}
	if (!out->has_sha) {
		out->sha[0] = '\0';
	}
	rc = 0;
out:
	cJSON_Delete(root);
	free(buf);
	return rc;
}
