#include "master/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/version.h"
#include "master/registry.h"
#include "pki/pki.h"
#include "pki/trust.h"
#include "pki/seal.h"

#define BACKUP_BUF 65536
#define BACKUP_MANIFEST_MAX 4096

/* Live registry files: the archive carries a snapshot instead. */
static const char *const backup_skip_top[] = {
	REGISTRY_FILE,
	REGISTRY_FILE "-wal",
	REGISTRY_FILE "-shm",
	REGISTRY_FILE "-journal",
};

struct backup_io {
	int fd;
	struct seal *seal; /* NULL: plain */
	struct err *e;     /* the first I/O error, for the caller's message */
	unsigned char buf[BACKUP_BUF];
};

static la_ssize_t
backup_write_cb(struct archive *a, void *client, const void *buf, size_t len)
{
	struct backup_io *io = client;

	(void)a;
	if (io->seal != NULL) {
		if (seal_write(io->seal, buf, len, io->e) != 0) {
			return -1;
		}
	} else if (fs_write_all(io->fd, buf, len) != 0) {
		err_sys(io->e, "writing the archive");
		return -1;
	}
	return (la_ssize_t)len;
}

static la_ssize_t
backup_read_cb(struct archive *a, void *client, const void **buf)
{
	struct backup_io *io = client;
	ssize_t n;

	(void)a;
	if (io->seal != NULL) {
		n = seal_read(io->seal, io->buf, sizeof(io->buf), io->e);
	} else {
		do {
			n = read(io->fd, io->buf, sizeof(io->buf));
		} while (n < 0 && errno == EINTR);
		if (n < 0) {
			err_sys(io->e, "reading the archive");
		}
	}
	*buf = io->buf;
	return n;
}

static int
backup_ar_err(struct archive *a, struct err *e, enum err_kind kind, const char *what)
{
	if (err_failed(e)) {
		return err_prefix(e, "%s", what);
	}
	return err_set(e, kind, "%s: %s", what, archive_error_string(a) != NULL
						 ? archive_error_string(a)
						 : "libarchive error");
}

/* ---- create ---------------------------------------------------------------- */

static int
backup_add_file(struct archive *a, const char *path, const char *name, const struct stat *st,
    struct backup_result *res, struct err *e)
{
	struct archive_entry *ae = archive_entry_new();
	unsigned char buf[BACKUP_BUF];
	int fd = -1;
	int rc = -1;
	struct stat fst;
	off_t left;

	if (ae == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &fst) != 0) {
		err_sys(e, "%s", path);
		goto out;
	}
	if (!S_ISREG(fst.st_mode) || fst.st_ino != st->st_ino) {
		err_set(e, ERR_CONFLICT, "%s changed while being archived", path);
		goto out;
	}
	archive_entry_set_pathname(ae, name);
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, fst.st_mode & 0755);
	archive_entry_set_size(ae, fst.st_size);
	archive_entry_set_mtime(ae, fst.st_mtime, 0);
	if (archive_write_header(a, ae) != ARCHIVE_OK) {
		backup_ar_err(a, e, ERR_IO, name);
		goto out;
	}
	for (left = fst.st_size; left > 0;) {
		ssize_t n = read(fd, buf, (size_t)left < sizeof(buf) ? (size_t)left : sizeof(buf));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			if (n < 0) {
				err_sys(e, "%s", path);
			} else {
				err_set(e, ERR_CONFLICT, "%s shrank while being archived", path);
			}
			goto out;
		}
		if (archive_write_data(a, buf, (size_t)n) != n) {
			backup_ar_err(a, e, ERR_IO, name);
			goto out;
		}
		left -= n;
		res->bytes += (unsigned long long)n;
	}
	res->files++;
	rc = 0;
out:
	secure_wipe(buf, sizeof(buf)); /* key material passes through here */
	if (fd >= 0) {
		close(fd);
	}
	archive_entry_free(ae);
	return rc;
}

static int
backup_add_dir_entry(struct archive *a, const char *name, struct backup_result *res,
    struct err *e)
{
	struct archive_entry *ae = archive_entry_new();
	int rc = 0;

	if (ae == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	archive_entry_set_pathname(ae, name);
	archive_entry_set_filetype(ae, AE_IFDIR);
	archive_entry_set_perm(ae, 0700);
	archive_entry_set_mtime(ae, time(NULL), 0);
	if (archive_write_header(a, ae) != ARCHIVE_OK) {
		rc = backup_ar_err(a, e, ERR_IO, name);
	} else {
		res->dirs++;
	}
	archive_entry_free(ae);
	return rc;
}

/* Add DIR (REL inside HOME, "" for HOME itself) recursively. */
static int
backup_walk(struct archive *a, const char *dir, const char *rel, struct backup_result *res,
    struct err *e)
{
	DIR *d = opendir(dir);
	const struct dirent *de;
	int rc = 0;

	if (d == NULL) {
		return err_sys(e, "%s", dir);
	}
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		char path[PATH_MAX], name[PATH_MAX];
		struct stat st;
		int skip = 0;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		if (rel[0] == '\0') {
			for (size_t i = 0; i < ARRAY_LEN(backup_skip_top); i++) {
				skip |= strcmp(de->d_name, backup_skip_top[i]) == 0;
			}
		}
		if (skip) {
			continue;
		}
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path) ||
		    snprintf(name, sizeof(name), "%s%s%s", rel, rel[0] != '\0' ? "/" : "",
			de->d_name) >= (int)sizeof(name) ||
		    strlen(name) >= BACKUP_MAX_PATH) {
			rc = err_set(e, ERR_LIMIT, "%s: path too long", path);
			break;
		}
		if (lstat(path, &st) != 0) {
			rc = err_sys(e, "%s", path);
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = backup_add_dir_entry(a, name, res, e);
			if (rc == 0) {
				rc = backup_walk(a, path, name, res, e);
			}
		} else if (S_ISREG(st.st_mode)) {
			rc = backup_add_file(a, path, name, &st, res, e);
		} else {
			log_warnx("%s: not a directory or regular file: left out of the backup", path);
		}
	}
	if (rc == 0 && errno != 0) {
		rc = err_sys(e, "%s", dir);
	}
	closedir(d);
	return rc;
}

static int
backup_add_manifest(struct archive *a, struct backup_result *res, struct err *e)
{
	struct archive_entry *ae = NULL;
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	char now[32];
	int rc = -1;

	iso8601_utc(time(NULL), now, sizeof(now));
	if (o == NULL || json_add_int(o, "format", BACKUP_FORMAT) != 0 ||
	    json_add_str(o, "created_at", now) != 0 ||
	    json_add_str(o, "tandem_version", tandem_version()) != 0 ||
	    (text = json_print_compact(o)) == NULL || (ae = archive_entry_new()) == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	archive_entry_set_pathname(ae, BACKUP_MANIFEST);
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, 0600);
	archive_entry_set_size(ae, (la_int64_t)strlen(text));
	archive_entry_set_mtime(ae, time(NULL), 0);
	if (archive_write_header(a, ae) != ARCHIVE_OK ||
	    archive_write_data(a, text, strlen(text)) != (la_ssize_t)strlen(text)) {
		backup_ar_err(a, e, ERR_IO, BACKUP_MANIFEST);
		goto out;
	}
	(void)res;
	rc = 0;
out:
	archive_entry_free(ae);
	free(text);
	cJSON_Delete(o);
	return rc;
}

/* Is FILE's directory inside HOME (or HOME itself)? */
static int
backup_inside(const char *home, const char *file)
{
	char h[PATH_MAX], d[PATH_MAX], copy[PATH_MAX];
	size_t hl;

	if (strlcpy_chk(copy, file, sizeof(copy)) != 0 || realpath(home, h) == NULL ||
	    realpath(dirname(copy), d) == NULL) {
		return 0;
	}
	hl = strlen(h);
	return strncmp(d, h, hl) == 0 && (d[hl] == '\0' || d[hl] == '/');
}

int
backup_create(const char *home, const char *file, const char *pass, size_t passlen,
    unsigned iterations, struct backup_result *res, struct err *e)
{
	struct backup_io *io = NULL;
	struct archive *a = NULL;
	struct registry *reg = NULL;
	char tmpdir[PATH_MAX], snap[PATH_MAX + 32], tmpfile[PATH_MAX], ca[PATH_MAX];
	char copy[PATH_MAX];
	struct stat st;
	int have_tmpdir = 0, have_tmpfile = 0;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	res->encrypted = pass != NULL;
	if (pki_path(home, PKI_CA_CRT, ca, sizeof(ca)) != 0 || stat(ca, &st) != 0) {
		return err_set(e, ERR_NOT_FOUND, "%s is not a master home (no %s)", home, PKI_CA_CRT);
	}
	if (lstat(file, &st) == 0) {
		return err_set(e, ERR_CONFLICT, "%s already exists: not overwritten", file);
	}
	/* The renewed master pair under way is a link the archive cannot hold. */
	if (pki_path(home, PKI_MASTER_TLS_DIR "/" TRUST_CURRENT, copy, sizeof(copy)) != 0 ||
	    lstat(copy, &st) == 0) {
		return err_set(e, ERR_CONFLICT,
		    "the master's certificate is being renewed: finish 'tandem pki renew-master' "
		    "first");
	}
	if (backup_inside(home, file)) {
		return err_set(e, ERR_USAGE, "%s is inside the home directory being backed up", file);
	}
	if (strlcpy_chk(copy, file, sizeof(copy)) != 0 ||
	    snprintf(tmpdir, sizeof(tmpdir), "%s/.tandem-backup-XXXXXX", dirname(copy)) >=
		(int)sizeof(tmpdir) ||
	    snprintf(tmpfile, sizeof(tmpfile), "%s.tmp", file) >= (int)sizeof(tmpfile)) {
		return err_set(e, ERR_USAGE, "%s: path too long", file);
	}
	if (mkdtemp(tmpdir) == NULL) {
		return err_sys(e, "%s", tmpdir);
	}
	have_tmpdir = 1;
	snprintf(snap, sizeof(snap), "%s/%s", tmpdir, REGISTRY_FILE);
	if (registry_open(home, &reg, e) != REGISTRY_OK ||
	    registry_backup_to(reg, snap, e) != REGISTRY_OK) {
		err_prefix(e, "registry snapshot");
		goto out;
	}
	registry_close(reg);
	reg = NULL;

	io = calloc(1, sizeof(*io));
	if (io == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	io->e = e;
	io->fd = open(tmpfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (io->fd < 0) {
		err_sys(e, "%s", tmpfile);
		goto out;
	}
	have_tmpfile = 1;
	if (pass != NULL && seal_write_open(io->fd, pass, passlen, iterations, &io->seal, e) != 0) {
		goto out;
	}
	a = archive_write_new();
	if (a == NULL || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, io, NULL, backup_write_cb, NULL, NULL) != ARCHIVE_OK) {
		backup_ar_err(a, e, ERR_INTERNAL, "starting the archive");
		goto out;
	}
	if (backup_add_manifest(a, res, e) != 0 || backup_walk(a, home, "", res, e) != 0) {
		goto out;
	}
	if (lstat(snap, &st) != 0) {
		err_sys(e, "%s", snap);
		goto out;
	}
	if (backup_add_file(a, snap, REGISTRY_FILE, &st, res, e) != 0) {
		goto out;
	}
	if (archive_write_close(a) != ARCHIVE_OK) {
		backup_ar_err(a, e, ERR_IO, "finishing the archive");
		goto out;
	}
	if (io->seal != NULL && seal_write_finish(io->seal, e) != 0) {
		goto out;
	}
	if (fsync(io->fd) != 0) {
		err_sys(e, "%s", tmpfile);
		goto out;
	}
	if (close(io->fd) != 0) {
		io->fd = -1;
		err_sys(e, "%s", tmpfile);
		goto out;
	}
	io->fd = -1;
	if (fs_rename_durable(tmpfile, file) != 0) {
		err_sys(e, "%s", file);
		goto out;
	}
	have_tmpfile = 0;
	rc = 0;
out:
	if (a != NULL) {
		archive_write_free(a);
	}
	if (io != NULL) {
		seal_free(io->seal);
		if (io->fd >= 0) {
			close(io->fd);
		}
		free(io);
	}
	registry_close(reg);
	if (have_tmpfile && unlink(tmpfile) != 0) {
		log_warn("%s: cannot remove", tmpfile);
	}
	if (have_tmpdir && fs_rmtree(tmpdir) != 0) {
		log_warn("%s: cannot remove", tmpdir);
	}
	return rc;
}

/* ---- restore --------------------------------------------------------------- */

/* A relative path of plain components: no "", ".", ".." and no leading '/'. */
static int
backup_name_ok(char *name)
{
	size_t len = strlen(name);
	char *p;

	while (len > 0 && name[len - 1] == '/') {
		name[--len] = '\0';
	}
	if (len == 0 || len >= BACKUP_MAX_PATH || name[0] == '/') {
		return 0;
	}
	for (p = name; *p != '\0';) {
		char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			return 0;
		}
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)p[i] < 0x20) {
				return 0;
			}
		}
		p += n;
		if (*p == '/') {
			p++;
		}
	}
	return 1;
}

/* Create the parent directories of STAGE/NAME (0700). */
static int
backup_parents(const char *stage, const char *name, struct err *e)
{
	char path[PATH_MAX];
	char *slash;

	if (snprintf(path, sizeof(path), "%s/%s", stage, name) >= (int)sizeof(path)) {
		return err_set(e, ERR_LIMIT, "%s: path too long", name);
	}
	slash = strrchr(path, '/');
	*slash = '\0';
	if (fs_mkdir_p(path, 0700) != 0) {
		return err_sys(e, "%s", path);
	}
	return 0;
}

static int
backup_extract_file(struct archive *a, struct archive_entry *ae, const char *stage,
    const char *name, struct backup_result *res, struct err *e)
{
	struct fs_atomic fa = FS_ATOMIC_INIT;
	char path[PATH_MAX];
	unsigned char buf[BACKUP_BUF];
	struct stat st;
	mode_t mode = archive_entry_perm(ae) & 0755;
	int rc = -1;

	if (backup_parents(stage, name, e) != 0) {
		return -1;
	}
	if (snprintf(path, sizeof(path), "%s/%s", stage, name) >= (int)sizeof(path)) {
		return err_set(e, ERR_LIMIT, "%s: path too long", name);
	}
	if (lstat(path, &st) == 0) {
		return err_set(e, ERR_UNSAFE, "%s appears twice in the archive", name);
	}
	if (fs_atomic_begin(&fa, path, mode | 0600) != 0) {
		return err_sys(e, "%s", path);
	}
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
		if (n == 0) {
			break;
		}
		if (n < 0) {
			backup_ar_err(a, e, ERR_FORMAT, name);
			goto out;
		}
		if (fs_atomic_write(&fa, buf, (size_t)n) != 0) {
			err_sys(e, "%s", path);
			goto out;
		}
		res->bytes += (unsigned long long)n;
	}
	if (fs_atomic_commit(&fa) != 0) {
		err_sys(e, "%s", path);
		goto out;
	}
	res->files++;
	rc = 0;
out:
	secure_wipe(buf, sizeof(buf));
	fs_atomic_abort(&fa);
	return rc;
}

static int
backup_check_manifest(struct archive *a, struct archive_entry *ae, struct err *e)
{
	char text[BACKUP_MANIFEST_MAX + 1];
	la_ssize_t n;
	size_t len = 0;
	cJSON *o;
	const cJSON *fmt;
	int rc = -1;

	if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_size(ae) > BACKUP_MANIFEST_MAX) {
		return err_set(e, ERR_FORMAT, "bad %s", BACKUP_MANIFEST);
	}
	while ((n = archive_read_data(a, text + len, sizeof(text) - 1 - len)) > 0) {
		len += (size_t)n;
	}
	if (n < 0) {
		return backup_ar_err(a, e, ERR_FORMAT, BACKUP_MANIFEST);
	}
	text[len] = '\0';
	o = json_parse_object(text, len, NULL);
	fmt = o != NULL ? cJSON_GetObjectItemCaseSensitive(o, "format") : NULL;
	if (!cJSON_IsNumber(fmt)) {
		err_set(e, ERR_FORMAT, "%s is not a tandem backup manifest", BACKUP_MANIFEST);
	} else if (fmt->valuedouble != BACKUP_FORMAT) {
		err_set(e, ERR_FORMAT, "backup format %.0f: this tandem reads format %d",
		    fmt->valuedouble, BACKUP_FORMAT);
	} else {
		rc = 0;
	}
	cJSON_Delete(o);
	return rc;
}

/* Is STAGE a master home we can use? */
static int
backup_check_home(const char *stage, struct err *e)
{
	struct err te = ERR_INIT;
	struct registry *reg = NULL;
	struct tls_identity id;
	char ca[PATH_MAX], mcn[PKI_CN_MAX + 1];

	if (pki_path(stage, PKI_CA_CRT, ca, sizeof(ca)) != 0 ||
	    tls_identity_from_file(ca, NULL, &id, &te) != 0) {
		return err_set(e, ERR_FORMAT, "the archive holds no usable CA certificate");
	}
	if (pki_master_cn(stage, mcn, sizeof(mcn), e) != 0) {
		if (e != NULL) {
			e->kind = ERR_FORMAT; /* what the archive holds, whatever the reason */
		}
		return err_prefix(e, "the archive's master certificate");
	}
	if (registry_open(stage, &reg, e) != REGISTRY_OK) {
		if (e != NULL) {
			e->kind = ERR_FORMAT; /* what the archive holds, whatever the reason */
		}
		return err_prefix(e, "the archive's registry");
	}
	registry_close(reg);
	return 0;
}

/* HOME absent: 0; an empty directory: 1; anything else: -1 with E. */
static int
backup_home_free(const char *home, struct err *e)
{
	DIR *d = opendir(home);
	const struct dirent *de;
	int empty = 1;

	if (d == NULL) {
		if (errno == ENOENT) {
			return 0;
		}
		return err_sys(e, "%s", home);
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	if (!empty) {
		return err_set(e, ERR_CONFLICT,
		    "%s is not empty: a restore never overwrites a home (move it away first)", home);
	}
	return 1;
}

int
backup_restore(const char *home, const char *file, const char *pass, size_t passlen,
    struct backup_result *res, struct err *e)
{
	struct backup_io *io = NULL;
	struct archive *a = NULL;
	struct archive_entry *ae;
	char stage[PATH_MAX], parent[PATH_MAX], copy[PATH_MAX];
	unsigned char head[SEAL_MAGIC_LEN];
	int have_stage = 0;
	int home_state;
	size_t entries = 0;
	int first = 1;
	ssize_t n;
	int r;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	home_state = backup_home_free(home, e);
	if (home_state < 0) {
		return -1;
	}
	if (strlcpy_chk(copy, home, sizeof(copy)) != 0 ||
	    strlcpy_chk(parent, dirname(copy), sizeof(parent)) != 0 ||
	    snprintf(stage, sizeof(stage), "%s.restore-XXXXXX", home) >= (int)sizeof(stage)) {
		return err_set(e, ERR_USAGE, "%s: path too long", home);
	}
	io = calloc(1, sizeof(*io));
	if (io == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	io->e = e;
	io->fd = open(file, O_RDONLY | O_CLOEXEC);
	if (io->fd < 0) {
		err_sys(e, "%s", file);
		goto out;
	}
	do {
		n = pread(io->fd, head, sizeof(head), 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		err_sys(e, "%s", file);
		goto out;
	}
	if (seal_is_sealed(head, (size_t)n)) {
		res->encrypted = 1;
		if (seal_read_open(io->fd, pass, passlen, &io->seal, e) != 0) {
			err_prefix(e, "%s", file);
			goto out;
		}
	} else if (pass != NULL) {
		log_warnx("%s is not encrypted: the passphrase is not used", file);
	}
	if (fs_mkdir_p(parent, 0700) != 0) {
		err_sys(e, "%s", parent);
		goto out;
	}
	if (mkdtemp(stage) == NULL) {
		err_sys(e, "%s", stage);
		goto out;
	}
	have_stage = 1;
	a = archive_read_new();
	if (a == NULL || archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK ||
	    archive_read_open(a, io, NULL, backup_read_cb, NULL) != ARCHIVE_OK) {
		backup_ar_err(a, e, ERR_FORMAT, file);
		goto out;
	}
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		char name[BACKUP_MAX_PATH + 1];
		const char *p = archive_entry_pathname(ae);

		if (++entries > BACKUP_MAX_ENTRIES) {
			err_set(e, ERR_LIMIT, "more than %d entries", BACKUP_MAX_ENTRIES);
			goto out;
		}
		if (p == NULL || strlcpy_chk(name, p, sizeof(name)) != 0 || !backup_name_ok(name)) {
			err_set(e, ERR_UNSAFE, "unsafe path in the archive: '%.80s'",
			    p != NULL ? p : "(none)");
			goto out;
		}
		if (first) {
			first = 0;
			if (strcmp(name, BACKUP_MANIFEST) != 0) {
				err_set(e, ERR_FORMAT, "not a tandem backup (no %s first)",
				    BACKUP_MANIFEST);
				goto out;
			}
			if (backup_check_manifest(a, ae, e) != 0) {
				goto out;
			}
			continue;
		}
		switch (archive_entry_filetype(ae)) {
		case AE_IFDIR: {
			char path[PATH_MAX];
			if (snprintf(path, sizeof(path), "%s/%s", stage, name) >= (int)sizeof(path) ||
			    fs_mkdir_p(path, 0700) != 0) {
				err_sys(e, "%s", name);
				goto out;
			}
			res->dirs++;
			break;
		}
		case AE_IFREG:
			if (backup_extract_file(a, ae, stage, name, res, e) != 0) {
				goto out;
			}
			break;
		default:
			err_set(e, ERR_UNSAFE, "%s: only directories and regular files are restored",
			    name);
			goto out;
		}
	}
	if (r != ARCHIVE_EOF) {
		backup_ar_err(a, e, ERR_FORMAT, file);
		goto out;
	}
	if (first) {
		err_set(e, ERR_FORMAT, "%s: an empty archive", file);
		goto out;
	}
	/* libarchive stops at the tar end marker: read the seal to its authenticated end. */
	if (io->seal != NULL) {
		while ((n = seal_read(io->seal, io->buf, sizeof(io->buf), e)) > 0) {
		}
		if (n < 0) {
			err_prefix(e, "%s", file);
			goto out;
		}
	}
	if (backup_check_home(stage, e) != 0) {
		goto out;
	}
	if (chmod(stage, 0700) != 0) {
		err_sys(e, "%s", stage);
		goto out;
	}
	if (home_state == 1 && rmdir(home) != 0) {
		err_sys(e, "%s", home);
		goto out;
	}
	if (fs_rename_durable(stage, home) != 0) {
		err_sys(e, "%s -> %s", stage, home);
		goto out;
	}
	have_stage = 0;
	rc = 0;
out:
	if (a != NULL) {
		archive_read_free(a);
	}
	if (io != NULL) {
		seal_free(io->seal);
		if (io->fd >= 0) {
			close(io->fd);
		}
		secure_wipe(io->buf, sizeof(io->buf));
		free(io);
	}
	if (have_stage && fs_rmtree(stage) != 0) {
		log_warn("%s: cannot remove", stage);
	}
	return rc;
}
