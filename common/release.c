#include "common/release.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"

/* The keys of manifest.json this module knows; the writer keeps the others. */
static const char *const release_manifest_keys[] = {
	"name", "version", "entrypoint", "preflight", "updater_entrypoint", "readiness",
};

int
release_safe_relpath(const char *p)
{
	return release_safe_relpath_max(p, RELEASE_PATH_MAX);
}

int
release_safe_relpath_max(const char *p, size_t max)
{
	size_t len = strlen(p);

	if (len == 0 || len > max || p[0] == '/') {
		return 0;
	}
	while (*p != '\0') {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			return 0;
		}
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
				return 0;
			}
		}
		p += n;
		if (*p == '/') {
			p++;
			if (*p == '\0') {
				return 0; /* trailing slash: not a file */
			}
		}
	}
	return 1;
}

int
release_ident_valid(const char *s)
{
	size_t n;

	if (s == NULL || !isalnum((unsigned char)s[0])) {
		return 0;
	}
	for (n = 0; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];

		if (n >= RELEASE_IDENT_MAX || c >= 0x80 ||
		    !(isalnum(c) || c == '.' || c == '_' || c == '+' || c == '~' || c == '-')) {
			return 0;
		}
	}
	return 1;
}

/* Parse BUF as a strict JSON object of a release file named NAME. */
static cJSON *
release_json(const char *buf, size_t len, int depth, const char *name, struct err *e)
{
	cJSON *o = json_parse_object_ex(buf, len, RELEASE_FILE_MAX, depth, e);

	if (o == NULL) {
		err_prefix(e, "%s", name);
	}
	return o;
}

struct release_mf_raw {
	const char *name;
	const char *version;
	const char *entrypoint;
	const char *updater_entrypoint;
	const char *readiness;
	const cJSON *preflight;
};

int
release_readiness_valid(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= RELEASE_READINESS_MAX &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* The checks of the known keys once their types are right. */
static int
release_mf_check(const struct release_mf_raw *raw, unsigned flags, struct err *e)
{
	static const char ident_rule[] = "use 1-64 of [A-Za-z0-9._+~-], starting with a letter or "
	    "digit";

	if (raw->name == NULL) {
		return err_set(e, ERR_FORMAT, "%s: missing required key 'name'",
		    RELEASE_MANIFEST_FILE);
	}
	if (!release_ident_valid(raw->name)) {
		return err_set(e, ERR_FORMAT, "%s: key 'name': %s", RELEASE_MANIFEST_FILE,
		    ident_rule);
	}
	if (raw->version == NULL && (flags & RELEASE_MF_SOURCE) == 0) {
		return err_set(e, ERR_FORMAT, "%s: missing required key 'version'",
		    RELEASE_MANIFEST_FILE);
	}
	if (raw->version != NULL && !release_ident_valid(raw->version)) {
		return err_set(e, ERR_FORMAT, "%s: key 'version': %s", RELEASE_MANIFEST_FILE,
		    ident_rule);
	}
	if (raw->entrypoint == NULL && (flags & RELEASE_MF_AGENT) != 0) {
		return err_set(e, ERR_FORMAT, "%s: missing required key 'entrypoint'",
		    RELEASE_MANIFEST_FILE);
	}
	if (raw->updater_entrypoint == NULL && (flags & RELEASE_MF_UPDATER) != 0) {
		return err_set(e, ERR_FORMAT, "%s has no updater_entrypoint: not an updater release",
		    RELEASE_MANIFEST_FILE);
	}
	if (raw->entrypoint == NULL && raw->updater_entrypoint == NULL) {
		return err_set(e, ERR_FORMAT, "%s: missing required key 'entrypoint'",
		    RELEASE_MANIFEST_FILE);
	}
	if (raw->entrypoint != NULL && !release_safe_relpath(raw->entrypoint)) {
		return err_set(e, ERR_FORMAT, "%s: key 'entrypoint': '%s' is not a relative path "
		    "inside the release", RELEASE_MANIFEST_FILE, raw->entrypoint);
	}
	if (raw->updater_entrypoint != NULL && !release_safe_relpath(raw->updater_entrypoint)) {
		return err_set(e, ERR_FORMAT, "%s: key 'updater_entrypoint': '%s' is not a relative "
		    "path inside the release", RELEASE_MANIFEST_FILE, raw->updater_entrypoint);
	}
	if (raw->readiness != NULL && !release_readiness_valid(raw->readiness)) {
		return err_set(e, ERR_FORMAT, "%s: key 'readiness': use 1-%d of [a-z0-9-]",
		    RELEASE_MANIFEST_FILE, RELEASE_READINESS_MAX);
	}
	return 0;
}

int
release_manifest_parse(const char *buf, size_t len, unsigned flags, struct release_manifest *m,
    struct err *e)
{
	static const struct json_field fields[] = {
		JSON_F_STRREF("name", struct release_mf_raw, name, 0, 0, 127),
		JSON_F_STRREF("version", struct release_mf_raw, version, 0, 0, 127),
		JSON_F_STRREF("entrypoint", struct release_mf_raw, entrypoint, 0, 0,
		    RELEASE_PATH_MAX),
		JSON_F_STRREF("updater_entrypoint", struct release_mf_raw, updater_entrypoint, 0, 0,
		    RELEASE_PATH_MAX),
		JSON_F_STRREF("readiness", struct release_mf_raw, readiness, 0, 0, 127),
		JSON_F_ARRAY("preflight", struct release_mf_raw, preflight, 0),
	};
	struct release_mf_raw raw = { 0 };
	struct release_manifest *tmp = NULL;
	const cJSON *it;
	cJSON *o;
	int rc = -1;

	o = release_json(buf, len, RELEASE_MANIFEST_DEPTH, RELEASE_MANIFEST_FILE, e);
	if (o == NULL) {
		goto out;
	}
	if (json_read_fields(o, fields, ARRAY_LEN(fields), 1, &raw, e) != 0) {
		err_prefix(e, "%s", RELEASE_MANIFEST_FILE);
		goto out;
	}
	if (release_mf_check(&raw, flags, e) != 0) {
		goto out;
	}
	tmp = calloc(1, sizeof(*tmp));
	if (tmp == NULL) {
		err_sys(e, "%s", RELEASE_MANIFEST_FILE);
		goto out;
	}
	/* Lengths are bounded by the table and the checks above: these cannot cut. */
	(void)!strlcpy_chk(tmp->name, raw.name, sizeof(tmp->name));
	(void)!strlcpy_chk(tmp->version, raw.version != NULL ? raw.version : "",
	    sizeof(tmp->version));
	(void)!strlcpy_chk(tmp->entrypoint, raw.entrypoint != NULL ? raw.entrypoint : "",
	    sizeof(tmp->entrypoint));
	(void)!strlcpy_chk(tmp->updater_entrypoint,
	    raw.updater_entrypoint != NULL ? raw.updater_entrypoint : "",
	    sizeof(tmp->updater_entrypoint));
	(void)!strlcpy_chk(tmp->readiness, raw.readiness != NULL ? raw.readiness : "",
	    sizeof(tmp->readiness));
	if (raw.preflight != NULL) {
		cJSON_ArrayForEach(it, raw.preflight) {
			if (!cJSON_IsString(it) || it->valuestring == NULL) {
				err_set(e, ERR_FORMAT, "%s: key 'preflight': arguments must be "
				    "strings", RELEASE_MANIFEST_FILE);
				goto out;
			}
			if (tmp->npreflight == RELEASE_ARGS_MAX ||
			    strlcpy_chk(tmp->preflight[tmp->npreflight], it->valuestring,
			    sizeof(tmp->preflight[0])) != 0) {
				err_set(e, ERR_FORMAT, "%s: key 'preflight': at most %d arguments "
				    "of %d bytes", RELEASE_MANIFEST_FILE, RELEASE_ARGS_MAX,
				    RELEASE_ARG_MAX);
				goto out;
			}
			tmp->npreflight++;
		}
		if (tmp->npreflight == 0) {
			err_set(e, ERR_FORMAT, "%s: key 'preflight': empty command",
			    RELEASE_MANIFEST_FILE);
			goto out;
		}
		if (!release_safe_relpath(tmp->preflight[0])) {
			err_set(e, ERR_FORMAT, "%s: key 'preflight': program '%s' is not a relative "
			    "path inside the release", RELEASE_MANIFEST_FILE, tmp->preflight[0]);
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

static int
release_known_key(const char *key)
{
	for (size_t i = 0; i < ARRAY_LEN(release_manifest_keys); i++) {
		if (strcmp(release_manifest_keys[i], key) == 0) {
			return 1;
		}
	}
	return 0;
}

/* Add the members of SRC's object whose keys this module does not know to O. */
static int
release_keep_unknown(cJSON *o, const char *src, size_t srclen, struct err *e)
{
	cJSON *s = release_json(src, srclen, RELEASE_MANIFEST_DEPTH, RELEASE_MANIFEST_FILE, e);
	int rc = -1;

	if (s == NULL) {
		return -1;
	}
	for (const cJSON *c = s->child; c != NULL; c = c->next) {
		if (c->string == NULL || release_known_key(c->string)) {
			continue;
		}
		if (json_add_item(o, c->string, cJSON_Duplicate(c, 1)) != 0) {
			err_sys(e, "%s", RELEASE_MANIFEST_FILE);
			goto out;
		}
	}
	rc = 0;
out:
	cJSON_Delete(s);
	return rc;
}

int
release_manifest_format(const struct release_manifest *m, const char *src, size_t srclen,
    char **out, size_t *outlen, struct err *e)
{
	cJSON *o = NULL, *arr;
	char *text = NULL;
	int rc = -1;

	if (!release_ident_valid(m->name) || !release_ident_valid(m->version) ||
	    (m->entrypoint[0] == '\0' && m->updater_entrypoint[0] == '\0') ||
	    (m->entrypoint[0] != '\0' && !release_safe_relpath(m->entrypoint)) ||
	    (m->updater_entrypoint[0] != '\0' && !release_safe_relpath(m->updater_entrypoint)) ||
	    m->npreflight > RELEASE_ARGS_MAX ||
	    (m->npreflight > 0 && !release_safe_relpath(m->preflight[0])) ||
	    (m->readiness[0] != '\0' && !release_readiness_valid(m->readiness))) {
		err_set(e, ERR_INTERNAL, "%s: refusing to write a manifest that breaks its rules",
		    RELEASE_MANIFEST_FILE);
		goto out;
	}
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "name", m->name) != 0 ||
	    json_add_str(o, "version", m->version) != 0 ||
	    (m->entrypoint[0] != '\0' && json_add_str(o, "entrypoint", m->entrypoint) != 0)) {
		goto nomem;
	}
	if (m->npreflight > 0) {
		arr = json_add_array(o, "preflight");
		if (arr == NULL) {
			goto nomem;
		}
		for (size_t i = 0; i < m->npreflight; i++) {
			if (json_array_add_str(arr, m->preflight[i]) != 0) {
				goto nomem;
			}
		}
	}
	if (m->updater_entrypoint[0] != '\0' &&
	    json_add_str(o, "updater_entrypoint", m->updater_entrypoint) != 0) {
		goto nomem;
	}
	if (m->readiness[0] != '\0' && json_add_str(o, "readiness", m->readiness) != 0) {
		goto nomem;
	}
	if (src != NULL && release_keep_unknown(o, src, srclen, e) != 0) {
		goto out;
	}
	text = json_print_pretty(o);
	if (text == NULL) {
		goto nomem;
	}
	*outlen = strlen(text);
	*out = text;
	text = NULL;
	rc = 0;
	goto out;
nomem:
	err_set(e, ERR_NOMEM, "%s: out of memory", RELEASE_MANIFEST_FILE);
out:
	free(text);
	cJSON_Delete(o);
	return rc;
}

int
release_check_exec(const char *dir, const char *rel, struct err *e)
{
	char p[PATH_MAX], real[PATH_MAX], realdir[PATH_MAX];
	struct stat st;
	size_t n;
	int len;

	if (!release_safe_relpath(rel)) {
		return err_set(e, ERR_FORMAT, "'%s' is not a relative path inside the release", rel);
	}
	len = snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (len < 0 || (size_t)len >= sizeof(p)) {
		return err_set(e, ERR_FORMAT, "'%s': path too long", rel);
	}
	if (realpath(dir, realdir) == NULL || realpath(p, real) == NULL) {
		return err_set(e, ERR_FORMAT, "'%s' is missing from the release", rel);
	}
	n = strlen(realdir);
	if (strncmp(real, realdir, n) != 0 || real[n] != '/') {
		return err_set(e, ERR_FORMAT, "'%s' resolves outside the release", rel);
	}
	if (stat(real, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0100) == 0) {
		return err_set(e, ERR_FORMAT, "'%s' is not an executable file", rel);
	}
	return 0;
}

/* Read DIR/NAME (at most RELEASE_FILE_MAX bytes). 1 read, 0 absent, -1 with E. */
static int
release_read_file(const char *dir, const char *name, int absent_ok, char **buf, size_t *len,
    struct err *e)
{
	char p[PATH_MAX];
	int n = snprintf(p, sizeof(p), "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= sizeof(p)) {
		return err_set(e, ERR_INTERNAL, "%s/%s: path too long", dir, name);
	}
	if (fs_read_file(p, RELEASE_FILE_MAX, buf, len) != 0) {
		if (absent_ok && (errno == ENOENT || errno == ENOTDIR)) {
			return 0;
		}
		/* Not there, too big, not a file: the release's fault, not the disk's. */
		if (errno == ENOENT || errno == ENOTDIR || errno == EFBIG || errno == EISDIR ||
		    errno == EINVAL || errno == ELOOP) {
			return err_sys_kind(e, ERR_FORMAT, "release has no readable %s", name);
		}
		return err_sys(e, "read %s", p);
	}
	return 1;
}

int
release_manifest_read(const char *dir, unsigned flags, struct release_manifest *m,
    struct err *e)
{
	struct release_manifest tmp;
	char *buf = NULL;
	size_t len = 0;
	int rc = -1;

	if (release_read_file(dir, RELEASE_MANIFEST_FILE, 0, &buf, &len, e) != 1) {
		goto out;
	}
	if (release_manifest_parse(buf, len, flags, &tmp, e) != 0) {
		goto out;
	}
	if ((flags & RELEASE_MF_AGENT) != 0) {
		if (release_check_exec(dir, tmp.entrypoint, e) != 0) {
			err_prefix(e, "entrypoint");
			goto out;
		}
		if (tmp.npreflight > 0 && release_check_exec(dir, tmp.preflight[0], e) != 0) {
			err_prefix(e, "preflight");
			goto out;
		}
	}
	if ((flags & RELEASE_MF_UPDATER) != 0 &&
	    release_check_exec(dir, tmp.updater_entrypoint, e) != 0) {
		err_prefix(e, "updater_entrypoint");
		goto out;
	}
	*m = tmp;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* ---- release.json ---- */

static const struct json_field release_record_fields[] = {
	JSON_F_STR("id", struct release_info, id, JSON_REQUIRED, 1),
	JSON_F_STR("sha", struct release_info, sha, JSON_REQUIRED, 0),
	JSON_F_STR("sha256", struct release_info, sha256, JSON_REQUIRED, 64),
	JSON_F_STR("version", struct release_info, version, JSON_REQUIRED, 0),
	JSON_F_STR("name", struct release_info, name, JSON_REQUIRED, 0),
	JSON_F_STR("installed_at", struct release_info, installed_at, JSON_REQUIRED, 0),
	JSON_F_STR("installed_by", struct release_info, installed_by, JSON_REQUIRED, 0),
};

/* The RELEASE_R_* bit of release_record_fields[I] (same order). */
static unsigned
release_record_bit(size_t i)
{
	return 1u << i;
}

_Static_assert(ARRAY_LEN(release_record_fields) == 7 && RELEASE_R_ALL == 0x7fu,
    "one RELEASE_R_* bit per release.json key, in table order");

/* The optional keys of a signed release. */
static const struct json_field release_record_signing[] = {
	JSON_F_INT("security_version", struct release_info, security_version, 0, 0, RELEASE_SV_MAX),
	JSON_F_INT("min_security_version", struct release_info, min_security_version, 0, 0,
	    RELEASE_SV_MAX),
	JSON_F_STR("signed_by", struct release_info, signed_by, 0, 0),
};

/* signed_by: lowercase hex keyids separated by single commas. */
static int
release_signed_by_valid(const char *s)
{
	size_t run = 0;

	for (; *s != '\0'; s++) {
		if (*s == ',') {
			if (run == 0) {
				return 0;
			}
			run = 0;
		} else if ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')) {
			run++;
		} else {
			return 0;
		}
	}
	return 1;
}

/*
 * Read the signing keys of O into TMP. Strict: a bad one is an error.
 * Lenient: each key on its own, bad ones left at 0 / "".
 */
static int
release_record_read_signing(const cJSON *o, int lenient, struct release_info *tmp,
    struct err *e)
{
	if (lenient) {
		for (size_t i = 0; i < ARRAY_LEN(release_record_signing); i++) {
			if (json_read_fields(o, &release_record_signing[i], 1, 1, tmp, NULL) != 0) {
				continue; /* a bad key is left out, the others still count */
			}
		}
		if (!release_signed_by_valid(tmp->signed_by)) {
			tmp->signed_by[0] = '\0';
		}
		return 0;
	}
	if (json_read_fields(o, release_record_signing, ARRAY_LEN(release_record_signing), 1, tmp,
	    e) != 0) {
		return err_prefix(e, "%s", RELEASE_RECORD_FILE);
	}
	if (!release_signed_by_valid(tmp->signed_by) ||
	    tmp->min_security_version > tmp->security_version) {
		return err_set(e, ERR_FORMAT, "%s: signed_by must be comma-separated lowercase hex "
		    "keyids and min_security_version at most security_version", RELEASE_RECORD_FILE);
	}
	return 0;
}

/* sha256 must be 64 hex digits; stored lowercase. 0 or -1. */
static int
release_sha256_fix(char *s)
{
	if (!is_hex_len(s, 64)) {
		return -1;
	}
	for (; *s != '\0'; s++) {
		*s = (char)tolower((unsigned char)*s);
	}
	return 0;
}

int
release_record_parse(const char *buf, size_t len, unsigned flags, struct release_info *ri,
    struct err *e)
{
	struct release_info tmp;
	cJSON *o;
	int rc = -1;

	memset(&tmp, 0, sizeof(tmp));
	if (flags & RELEASE_REC_LENIENT) {
		memset(ri, 0, sizeof(*ri));
	}
	o = release_json(buf, len, JSON_MAX_DEPTH, RELEASE_RECORD_FILE, e);
	if (o == NULL) {
		goto out;
	}
	if (flags & RELEASE_REC_LENIENT) {
		/* Key by key: one bad value does not hide the others. */
		for (size_t i = 0; i < ARRAY_LEN(release_record_fields); i++) {
			struct json_field f = release_record_fields[i];

			f.flags = 0;
			if (cJSON_GetObjectItemCaseSensitive(o, f.key) != NULL &&
			    json_read_fields(o, &f, 1, 1, &tmp, NULL) == 0) {
				tmp.fields |= release_record_bit(i);
			}
		}
		if ((tmp.fields & RELEASE_R_SHA256) != 0 && release_sha256_fix(tmp.sha256) != 0) {
			tmp.fields &= ~RELEASE_R_SHA256;
			tmp.sha256[0] = '\0';
		}
		(void)release_record_read_signing(o, 1, &tmp, NULL);
	} else {
		if (json_read_fields(o, release_record_fields, ARRAY_LEN(release_record_fields), 1,
		    &tmp, e) != 0) {
			err_prefix(e, "%s", RELEASE_RECORD_FILE);
			goto out;
		}
		if (release_sha256_fix(tmp.sha256) != 0) {
			err_set(e, ERR_FORMAT, "%s: key 'sha256': expected 64 hex digits",
			    RELEASE_RECORD_FILE);
			goto out;
		}
		if (release_record_read_signing(o, 0, &tmp, e) != 0) {
			goto out;
		}
		tmp.fields = RELEASE_R_ALL;
	}
	*ri = tmp;
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

int
release_record_read(const char *dir, unsigned flags, struct release_info *ri, struct err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (flags & RELEASE_REC_LENIENT) {
		memset(ri, 0, sizeof(*ri));
	}
	r = release_read_file(dir, RELEASE_RECORD_FILE, 1, &buf, &len, e);
	if (r == 1) {
		r = release_record_parse(buf, len, flags, ri, e) == 0 ? 1 : -1;
	}
	if (r == 0 && (flags & RELEASE_REC_LENIENT) == 0) {
		memset(ri, 0, sizeof(*ri));
	}
	if (r < 0) {
		err_prefix(e, "%s", dir);
	}
	free(buf);
	return r;
}

cJSON *
release_record_json(const struct release_info *ri, const char *slot)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL) {
		return NULL;
	}
	if ((slot != NULL && json_add_str(o, "slot", slot) != 0) ||
	    json_add_str(o, "id", ri->id) != 0 || json_add_str(o, "sha", ri->sha) != 0 ||
	    json_add_str(o, "sha256", ri->sha256) != 0 ||
	    json_add_str(o, "version", ri->version) != 0 ||
	    json_add_str(o, "name", ri->name) != 0 ||
	    json_add_str(o, "installed_at", ri->installed_at) != 0 ||
	    json_add_str(o, "installed_by", ri->installed_by) != 0 ||
	    ((ri->signed_by[0] != '\0' || ri->security_version != 0 ||
	    ri->min_security_version != 0) &&
	    (json_add_int(o, "security_version", ri->security_version) != 0 ||
	    json_add_int(o, "min_security_version", ri->min_security_version) != 0 ||
	    json_add_str(o, "signed_by", ri->signed_by) != 0))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int
release_record_write(const char *dir, const struct release_info *ri, struct err *e)
{
	char p[PATH_MAX];
	cJSON *o = NULL;
	int n, rc = -1;

	n = snprintf(p, sizeof(p), "%s/%s", dir, RELEASE_RECORD_FILE);
	if (n < 0 || (size_t)n >= sizeof(p)) {
		err_set(e, ERR_INTERNAL, "%s/%s: path too long", dir, RELEASE_RECORD_FILE);
		goto out;
	}
	o = release_record_json(ri, NULL);
	if (o == NULL) {
		err_set(e, ERR_NOMEM, "%s: out of memory", RELEASE_RECORD_FILE);
		goto out;
	}
	if (json_write_atomic(p, o, 0644, e) != 0) {
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

/* ---- where a running program's release is ---- */

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

/* dpkg's weight of a non-digit character: "~" first, the end, letters, the rest. */
static int
release_vchar_order(int c)
{
	if (c >= '0' && c <= '9') {
		return 0;
	}
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
		return c;
	}
	if (c == '~') {
		return -1;
	}
	return c != 0 ? c + 256 : 0;
}

static int
release_isdigit(char c)
{
	return c >= '0' && c <= '9';
}

int
release_version_cmp(const char *a, const char *b)
{
	while (*a != '\0' || *b != '\0') {
		int first_diff = 0;

		/* Non-digit runs; a NUL against a non-digit always differs, so neither runs off. */
		while ((*a != '\0' && !release_isdigit(*a)) || (*b != '\0' && !release_isdigit(*b))) {
			int ac = release_vchar_order((unsigned char)*a);
			int bc = release_vchar_order((unsigned char)*b);

			if (ac != bc) {
				return ac - bc;
			}
			a++;
			b++;
		}
		while (*a == '0') {
			a++;
		}
		while (*b == '0') {
			b++;
		}
		while (release_isdigit(*a) && release_isdigit(*b)) {
			if (first_diff == 0) {
				first_diff = *a - *b;
			}
			a++;
			b++;
		}
		if (release_isdigit(*a)) {
			return 1;
		}
		if (release_isdigit(*b)) {
			return -1;
		}
		if (first_diff != 0) {
			return first_diff;
		}
	}
	return 0;
}
