#include "master/keystore.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "common/json.h"

int
keystore_path(const char *home, int64_t version, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/" KEYSTORE_DIR "/%lld.json", home, (long long)version);

	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* The highest version in HOME/keyring (0: none). */
static int
keystore_highest(const char *home, int64_t *out, struct err *e)
{
	char dir[PATH_MAX];
	struct dirent *de;
	int64_t best = 0;
	DIR *d;
	int n;

	n = snprintf(dir, sizeof(dir), "%s/" KEYSTORE_DIR, home);
	if (n < 0 || (size_t)n >= sizeof(dir)) {
		return err_set(e, ERR_USAGE, "home path too long");
	}
	d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT) {
			*out = 0;
			return 0;
		}
		return err_sys(e, "open %s", dir);
	}
	while ((de = readdir(d)) != NULL) {
		char num[32];
		const char *dot = strrchr(de->d_name, '.');
		long long v;
		size_t len;

		if (dot == NULL || strcmp(dot, ".json") != 0) {
			continue;
		}
		len = (size_t)(dot - de->d_name);
		if (len == 0 || len >= sizeof(num) || de->d_name[0] == '0') {
			continue; /* not N.json (temporaries start with '.') */
		}
		memcpy(num, de->d_name, len);
		num[len] = '\0';
		if (parse_ll(num, 1, JSON_INT_MAX, &v) == 0 && v > best) {
			best = v;
		}
	}
	closedir(d);
	*out = best;
	return 0;
}

int
keystore_read(const char *home, int64_t version, char **buf, size_t *len, struct err *e)
{
	char path[PATH_MAX];

	if (keystore_path(home, version, path, sizeof(path)) != 0) {
		return err_set(e, ERR_USAGE, "home path too long");
	}
	if (fs_read_file(path, SIGN_FILE_MAX, buf, len) != 0) {
		if (errno == ENOENT) {
			return err_set(e, ERR_NOT_FOUND, "the master has no keyring version %lld (%s)",
			    (long long)version, path);
		}
		return err_sys(e, "read %s", path);
	}
	return 0;
}

int
keystore_current(const char *home, struct sign_keyring *kr, struct err *e)
{
	char *buf = NULL;
	size_t len = 0;
	int64_t v = 0;
	int rc;

	sign_keyring_free(kr);
	if (keystore_highest(home, &v, e) != 0) {
		return -1;
	}
	if (v == 0) {
		return 0;
	}
	if (keystore_read(home, v, &buf, &len, e) != 0) {
		return -1;
	}
	rc = sign_keyring_parse(buf, len, 0, kr, e);
	free(buf);
	if (rc != 0) {
		return err_prefix(e, "the master's keyring version %lld", (long long)v);
	}
	if (kr->version != v) {
		sign_keyring_free(kr);
		return err_set(e, ERR_FORMAT, "%s/" KEYSTORE_DIR "/%lld.json holds version %lld", home,
		    (long long)v, (long long)kr->version);
	}
	return 1;
}

int
keystore_add(const char *home, const char *buf, size_t len, int64_t *version, struct err *e)
{
	struct sign_keyring cur, next;
	char dir[PATH_MAX], path[PATH_MAX];
	int have, rc = -1, n;

	sign_keyring_init(&cur);
	sign_keyring_init(&next);
	if (sign_keyring_parse(buf, len, 0, &next, e) != 0) {
		goto out;
	}
	have = keystore_current(home, &cur, e);
	if (have < 0) {
		goto out;
	}
	if (have && sign_keyring_check_next(&cur, &next, e) != 0) {
		goto out;
	}
	n = snprintf(dir, sizeof(dir), "%s/" KEYSTORE_DIR, home);
	if (n < 0 || (size_t)n >= sizeof(dir) ||
	    keystore_path(home, next.version, path, sizeof(path)) != 0) {
		err_set(e, ERR_USAGE, "home path too long");
		goto out;
	}
	if (fs_mkdir_p(dir, 0700) != 0) {
		err_sys(e, "create %s", dir);
		goto out;
	}
	if (fs_write_atomic(path, buf, len, 0644) != 0) {
		err_sys(e, "write %s", path);
		goto out;
	}
	if (version != NULL) {
		*version = next.version;
	}
	rc = 0;
out:
	sign_keyring_free(&cur);
	sign_keyring_free(&next);
	return rc;
}
