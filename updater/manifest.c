#include "updater/manifest.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "common/json.h"

static void manifest_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* snprintf for messages and paths (a cut path fails later, visibly). */
static void
manifest_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

int
manifest_safe_relpath(const char *p)
{
	const char *c = p;

	if (p[0] == '\0' || p[0] == '/') {
		return 0;
	}
	while (*c != '\0') {
		const char *end = strchr(c, '/');
		size_t n = end != NULL ? (size_t)(end - c) : strlen(c);

		if (n == 0 || (n == 2 && c[0] == '.' && c[1] == '.')) {
			return 0;
		}
		c += n;
		if (*c == '/') {
			c++;
			if (*c == '\0') {
				return 0; /* trailing slash: not a file */
			}
		}
	}
	return 1;
}

struct manifest_raw {
	char name[128];
	char version[128];
	char entrypoint[256];
	const cJSON *preflight;
};

int
manifest_parse(const char *buf, size_t len, struct manifest *m, char *err, size_t errlen)
{
	static const struct json_field fields[] = {
		JSON_F_STR("name", struct manifest_raw, name, JSON_REQUIRED, 1),
		JSON_F_STR("version", struct manifest_raw, version, JSON_REQUIRED, 1),
		JSON_F_STR("entrypoint", struct manifest_raw, entrypoint, JSON_REQUIRED, 1),
		JSON_F_ARRAY("preflight", struct manifest_raw, preflight, 0),
	};
	struct manifest_raw raw;
	struct manifest *tmp = NULL;
	char jerr[256];
	cJSON *o = NULL;
	const cJSON *it;
	int rc = -1;

	memset(&raw, 0, sizeof(raw));
	o = json_parse_object_ex(buf, len, MANIFEST_MAX_BYTES, 8, jerr, sizeof(jerr));
	if (o == NULL ||
	    json_read_fields(o, fields, ARRAY_LEN(fields), 1, &raw, jerr, sizeof(jerr)) != 0) {
		manifest_fmt(err, errlen, "%s: %s", MANIFEST_FILE, jerr);
		goto out;
	}
	if (!manifest_safe_relpath(raw.entrypoint)) {
		manifest_fmt(err, errlen, "%s: entrypoint '%s' is not a relative path inside the release",
		    MANIFEST_FILE, raw.entrypoint);
		goto out;
	}
	tmp = calloc(1, sizeof(*tmp));
	if (tmp == NULL) {
		manifest_fmt(err, errlen, "out of memory");
		goto out;
	}
	memcpy(tmp->name, raw.name, sizeof(tmp->name));
	memcpy(tmp->version, raw.version, sizeof(tmp->version));
	memcpy(tmp->entrypoint, raw.entrypoint, sizeof(tmp->entrypoint));
	if (raw.preflight != NULL) {
		cJSON_ArrayForEach(it, raw.preflight) {
			size_t n;

			if (!cJSON_IsString(it) || it->valuestring == NULL) {
				manifest_fmt(err, errlen, "%s: preflight: arguments must be strings",
				    MANIFEST_FILE);
				goto out;
			}
			n = strlen(it->valuestring);
			if (tmp->npreflight == MANIFEST_MAX_ARGS || n >= MANIFEST_MAX_ARG) {
				manifest_fmt(err, errlen,
				    "%s: preflight: at most %d arguments of %d bytes", MANIFEST_FILE,
				    MANIFEST_MAX_ARGS, MANIFEST_MAX_ARG - 1);
				goto out;
			}
			memcpy(tmp->preflight[tmp->npreflight++], it->valuestring, n + 1);
		}
		if (tmp->npreflight == 0) {
			manifest_fmt(err, errlen, "%s: preflight: empty command", MANIFEST_FILE);
			goto out;
		}
		if (!manifest_safe_relpath(tmp->preflight[0])) {
			manifest_fmt(err, errlen,
			    "%s: preflight program '%s' is not a relative path inside the release",
			    MANIFEST_FILE, tmp->preflight[0]);
			goto out;
		}
	}
	*m = *tmp;
	rc = 0;
out:
	free(tmp);
	cJSON_Delete(o);
	return rc;
}

int
manifest_check_exec(const char *dir, const char *rel, char *err, size_t errlen)
{
	char p[PATH_MAX], real[PATH_MAX], realdir[PATH_MAX];
	struct stat st;
	size_t n;

	if (!manifest_safe_relpath(rel)) {
		manifest_fmt(err, errlen, "'%s' is not a relative path inside the release", rel);
		return -1;
	}
	manifest_fmt(p, sizeof(p), "%s/%s", dir, rel);
	if (realpath(dir, realdir) == NULL || realpath(p, real) == NULL) {
		manifest_fmt(err, errlen, "'%s' is missing from the release", rel);
		return -1;
	}
	n = strlen(realdir);
	if (strncmp(real, realdir, n) != 0 || real[n] != '/') {
		manifest_fmt(err, errlen, "'%s' resolves outside the release", rel);
		return -1;
	}
	if (stat(real, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0100) == 0) {
		manifest_fmt(err, errlen, "'%s' is not an executable file", rel);
		return -1;
	}
	return 0;
}

int
manifest_read(const char *dir, struct manifest *m, char *err, size_t errlen)
{
	char p[PATH_MAX], cerr[256];
	char *buf = NULL;
	size_t len = 0;
	int rc;

	manifest_fmt(p, sizeof(p), "%s/%s", dir, MANIFEST_FILE);
	if (fs_read_file(p, MANIFEST_MAX_BYTES, &buf, &len) != 0) {
		manifest_fmt(err, errlen, "release has no readable %s: %s", MANIFEST_FILE,
		    strerror(errno));
		return -1;
	}
	rc = manifest_parse(buf, len, m, err, errlen);
	free(buf);
	if (rc != 0) {
		return -1;
	}
	if (manifest_check_exec(dir, m->entrypoint, cerr, sizeof(cerr)) != 0) {
		manifest_fmt(err, errlen, "entrypoint: %s", cerr);
		return -1;
	}
	if (m->npreflight > 0 && manifest_check_exec(dir, m->preflight[0], cerr, sizeof(cerr)) != 0) {
		manifest_fmt(err, errlen, "preflight: %s", cerr);
		return -1;
	}
	return 0;
}
