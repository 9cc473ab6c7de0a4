#include "pki/issued.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "pki/pki.h"

int
pki_issued_record(const char *home, const unsigned char *pem, size_t len, struct err *e)
{
	struct err te = ERR_INIT;
	struct tls_identity id;
	char dir[PATH_MAX], path[PATH_MAX + 64];

	if (pki_path(home, PKI_ISSUED_DIR, dir, sizeof(dir)) != 0) {
		return err_set(e, ERR_CONFIG, "home directory path too long");
	}
	if (fs_mkdir_p(dir, 0700) != 0) {
		return err_sys(e, "%s: cannot create", dir);
	}
	{
		char tmp[PATH_MAX + 48];
		/* The serial names the file: read it back from what was written. */
		snprintf(tmp, sizeof(tmp), "%s/.new-%ld.crt", dir, (long)getpid());
		if (fs_write_atomic(tmp, pem, len, 0644) != 0) {
			return err_sys(e, "%s: cannot write", tmp);
		}
		if (tls_identity_from_file(tmp, NULL, &id, &te) != 0 ||
		    id.serial[0] == '\0') {
			(void)unlink(tmp);
			return err_set(e, ERR_INTERNAL, "recording an issued certificate: %s", err_msg(&te));
		}
		snprintf(path, sizeof(path), "%s/%s.crt", dir, id.serial);
		if (fs_rename_durable(tmp, path) != 0) {
			int saved = errno;
			(void)unlink(tmp);
			errno = saved;
			return err_sys(e, "%s: cannot record", path);
		}
	}
	return 0;
}

int
pki_issued_each(const char *home, const char *master_cn,
    int (*fn)(const struct tls_identity *id, const char *path, void *arg), void *arg,
    struct err *e)
{
	struct err te = ERR_INIT;
	char dir[PATH_MAX];
	DIR *d;
	const struct dirent *de;
	int rc = 0;

	if (pki_path(home, PKI_ISSUED_DIR, dir, sizeof(dir)) != 0) {
		return err_set(e, ERR_CONFIG, "home directory path too long");
	}
	d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT) {
			return 0;
		}
		return err_sys(e, "%s", dir);
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char path[PATH_MAX + 260];
		struct tls_identity id;
		size_t n = strlen(de->d_name);

		if (de->d_name[0] == '.' || n < 5 || strcmp(de->d_name + n - 4, ".crt") != 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (tls_identity_from_file(path, master_cn, &id, &te) != 0) {
			log_warnx("%s: skipped: %s", path, err_msg(&te));
			continue;
		}
		rc = fn(&id, path, arg);
	}
	closedir(d);
	return rc;
}
