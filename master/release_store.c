#include "master/release_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/release_check.h"
#include "common/testhook.h"
#include "common/version.h"

#define RS_CHUNK (256 * 1024)
/* The temporaries of a copy in progress: ".import.tar.gz.tmp.PID.N". */
#define RS_IMPORT_NAME "import.tar.gz"
#define RS_RECORD_SUFFIX ".checked.json"
#define RS_RECORD_MAX 4096
#define RS_IDENTITY_MAX 128

int
release_store_path(const char *home, const char *sha256, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/store/%s.tar.gz", home, sha256);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int
rs_record_path(const char *home, const char *sha256, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/store/%s" RS_RECORD_SUFFIX, home, sha256);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The stored file's identity: what any replacement or rewrite of it changes. */
static int
rs_identity(const char *path, char *buf, size_t len)
{
	struct stat st;
	int n;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		return -1;
	}
	n = snprintf(buf, len, "%llu:%llu:%llu:%lld.%09ld:%lld.%09ld",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
	    (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	    (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

struct rs_record {
	char sha256[DIGEST_HEX_LEN + 1];
	int64_t size;
	char checked_by[64];
	int64_t flags;
	char file[RS_IDENTITY_MAX];
	char name[sizeof(((struct release_store_entry *)0)->name)];
	char version[sizeof(((struct release_store_entry *)0)->version)];
};

/*
 * 1 when HOME's store holds DST (SHA256, SIZE bytes) with a record of a
 * check by this tandem of at least the flags MF, still of the same file;
 * OUT's name and version then come from the record. 0 otherwise (no record,
 * an unreadable one, another file, another check): check again.
 */
static int
rs_record_valid(const char *home, const char *dst, const char *sha256, uint64_t size,
    unsigned mf, struct release_store_entry *out)
{
	static const struct json_field fields[] = {
		JSON_F_STR("sha256", struct rs_record, sha256, JSON_REQUIRED, DIGEST_HEX_LEN),
		JSON_F_INT("size", struct rs_record, size, JSON_REQUIRED, 0, JSON_INT_MAX),
		JSON_F_STR("checked_by", struct rs_record, checked_by, JSON_REQUIRED, 1),
		JSON_F_INT("flags", struct rs_record, flags, JSON_REQUIRED, 0, 0xff),
		JSON_F_STR("file", struct rs_record, file, JSON_REQUIRED, 1),
		JSON_F_STR("name", struct rs_record, name, JSON_REQUIRED, 1),
		JSON_F_STR("version", struct rs_record, version, JSON_REQUIRED, 1),
	};
	char path[PATH_MAX], id[RS_IDENTITY_MAX];
	struct rs_record r;
	struct err e = ERR_INIT;
	char *buf = NULL;
	size_t len = 0;
	cJSON *o = NULL;
	int ok = 0;

	memset(&r, 0, sizeof(r));
	if (rs_record_path(home, sha256, path, sizeof(path)) != 0 ||
	    fs_read_file(path, RS_RECORD_MAX, &buf, &len) != 0) {
		goto out;
	}
	o = json_parse_object(buf, len, &e);
	if (o == NULL || json_read_fields(o, fields, ARRAY_LEN(fields), 0, &r, &e) != 0) {
		log_warnx("%s: %s: checking the release again", path, err_msg(&e));
		goto out;
	}
	if (strcmp(r.sha256, sha256) != 0 || (uint64_t)r.size != size ||
	    strcmp(r.checked_by, tandem_version()) != 0 || ((unsigned)r.flags & mf) != mf ||
	    !release_ident_valid(r.name) || !release_ident_valid(r.version) ||
	    rs_identity(dst, id, sizeof(id)) != 0 || strcmp(id, r.file) != 0) {
		goto out;
	}
	snprintf(out->name, sizeof(out->name), "%s", r.name);
	snprintf(out->version, sizeof(out->version), "%s", r.version);
	ok = 1;
out:
	cJSON_Delete(o);
	free(buf);
	return ok;
}

/* The record that DST (OUT's digest and size) passed the check with flags MF. */
static int
rs_record_write(const char *home, const char *dst, unsigned mf,
    const struct release_store_entry *out, struct err *e)
{
	char path[PATH_MAX], id[RS_IDENTITY_MAX];
	cJSON *o = cJSON_CreateObject();
	int rc = -1;

	if (rs_record_path(home, out->sha256, path, sizeof(path)) != 0) {
		err_set(e, ERR_USAGE, "%s: home path too long", home);
		goto out;
	}
	if (rs_identity(dst, id, sizeof(id)) != 0) {
		err_sys(e, "stat %s", dst);
		goto out;
	}
	if (o == NULL || json_add_str(o, "sha256", out->sha256) != 0 ||
	    json_add_int(o, "size", (long long)out->size) != 0 ||
	    json_add_str(o, "checked_by", tandem_version()) != 0 ||
	    json_add_int(o, "flags", (long long)mf) != 0 || json_add_str(o, "file", id) != 0 ||
	    json_add_str(o, "name", out->name) != 0 ||
	    json_add_str(o, "version", out->version) != 0) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (json_write_atomic(path, o, 0600, e) != 0) {
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

/* A stored release's file name: SHA256.tar.gz (the digest's 64 characters, then the suffix). */
static int
rs_is_release_name(const char *nm)
{
	static const char suffix[] = ".tar.gz";

	return strlen(nm) == DIGEST_HEX_LEN + sizeof(suffix) - 1 &&
	    strcmp(nm + DIGEST_HEX_LEN, suffix) == 0;
}

/*
 * 1 when the store DIR holds a release (SHA256.tar.gz) of SIZE bytes: only
 * then can a source of SIZE bytes be one the store holds checked.
 */
static int
rs_holds_size(const char *dir, off_t size)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	int found = 0;

	if (d == NULL) {
		return 0;
	}
	while (!found && (de = readdir(d)) != NULL) {
		if (rs_is_release_name(de->d_name)) {
			found = fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
			    S_ISREG(st.st_mode) && st.st_size == size;
		}
	}
	closedir(d);
	return found;
}

/*
 * 1 when HOME's store holds OUT's digest with a record valid for MF: OUT is
 * then the stored release (SRC with COPY unset). 0 when it does not, -1
 * with E when HOME is too long.
 */
static int
rs_reuse(const char *home, const char *src, unsigned mf, int copy,
    struct release_store_entry *out, struct err *e)
{
	char dst[PATH_MAX];

	if (release_store_path(home, out->sha256, dst, sizeof(dst)) != 0) {
		return err_set(e, ERR_USAGE, "%s: home path too long", home);
	}
	if (!rs_record_valid(home, dst, out->sha256, out->size, mf, out)) {
		return 0;
	}
	out->reused = 1;
	snprintf(out->path, sizeof(out->path), "%s", copy ? dst : src);
	log_info("release %.12s: in the store (%s) and checked before: not checked again",
	    out->sha256, dst);
	return 1;
}

/* SRC's bytes into OUT's digest and size, and into A when it is begun. */
static int
rs_read(int fd, const char *src, struct fs_atomic *a, int copy, const char *what,
    struct release_store_entry *out, struct err *e)
{
	unsigned char *buf = malloc(RS_CHUNK);
	struct digest d;
	ssize_t n;
	int rc = -1;

	if (buf == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	digest_init(&d);
	for (;;) {
		n = read(fd, buf, RS_CHUNK);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			err_sys(e, "read %s", src);
			goto out;
		}
		if (n == 0) {
			break;
		}
		digest_update(&d, buf, (size_t)n);
		out->size += (uint64_t)n;
		if (copy && fs_atomic_write(a, buf, (size_t)n) != 0) {
			err_sys(e, "store %s", what);
			goto out;
		}
	}
	if (digest_final(&d, out->sha256) != 0) {
		err_set(e, ERR_INTERNAL, "%s: sha256 failed", src);
		goto out;
	}
	rc = 0;
out:
	digest_free(&d);
	free(buf);
	return rc;
}

/*
 * The N newest releases of the store DIR (by the stored file's mtime: when
 * it entered) other than SHA256, into REFS (PATH_MAX each). Returns how many.
 */
static size_t
rs_references(const char *dir, const char *sha256, char (*refs)[PATH_MAX], size_t n)
{
	struct timespec when[RELEASE_STORE_PREFETCH_REFS];
	struct dirent *de;
	size_t got = 0;
	DIR *d = opendir(dir);

	if (d == NULL) {
		return 0;
	}
	if (n > RELEASE_STORE_PREFETCH_REFS) {
		n = RELEASE_STORE_PREFETCH_REFS;
	}
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		struct stat st;
		size_t i;

		if (!rs_is_release_name(nm) ||
		    strncmp(nm, sha256, DIGEST_HEX_LEN) == 0 ||
		    fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
			continue;
		}
		/* Insert by mtime, newest first, keeping N. */
		for (i = got; i > 0 && (when[i - 1].tv_sec < st.st_mtim.tv_sec ||
		    (when[i - 1].tv_sec == st.st_mtim.tv_sec &&
			when[i - 1].tv_nsec < st.st_mtim.tv_nsec)); i--) {
			if (i < n) {
				when[i] = when[i - 1];
				memcpy(refs[i], refs[i - 1], PATH_MAX);
			}
		}
		if (i < n && snprintf(refs[i], PATH_MAX, "%s/%s", dir, nm) < PATH_MAX) {
			when[i] = st.st_mtim;
			if (got < n) {
				got++;
			}
		}
	}
	closedir(d);
	return got;
}

/* What the check of a new release keeps for the delta (RELEASE_STORE_PREFETCH). */
static struct delta_pack_prefetch *
rs_prefetch_new(const char *dir, const char *sha256)
{
	char refs[RELEASE_STORE_PREFETCH_REFS][PATH_MAX];
	const char *rp[RELEASE_STORE_PREFETCH_REFS];
	size_t n = rs_references(dir, sha256, refs, RELEASE_STORE_PREFETCH_REFS);

	for (size_t i = 0; i < n; i++) {
		rp[i] = refs[i];
	}
	return delta_pack_prefetch_new(rp, n, RELEASE_STORE_PREFETCH_MAX);
}

int
release_store_import(const char *home, const char *src, unsigned flags,
    struct release_store_entry *out, struct err *e)
{
	unsigned mf = flags & (RELEASE_MF_AGENT | RELEASE_MF_UPDATER);
	int copy = (flags & RELEASE_STORE_NO_COPY) == 0;
	struct fs_atomic a = FS_ATOMIC_INIT;
	char dir[PATH_MAX], imp[PATH_MAX], dst[PATH_MAX], tmp[PATH_MAX], name[128];
	struct release_manifest m;
	struct delta_pack_prefetch *pf = NULL;
	struct stat st;
	int fd = -1, rc = -1, hashed = 0, r = 0;

	memset(out, 0, sizeof(*out));
	if (snprintf(dir, sizeof(dir), "%s/store", home) >= (int)sizeof(dir) ||
	    snprintf(imp, sizeof(imp), "%s/" RS_IMPORT_NAME, dir) >= (int)sizeof(imp)) {
		return err_set(e, ERR_USAGE, "%s: home path too long", home);
	}
	fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return err_sys_kind(e, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "open %s", src);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err_set(e, ERR_BAD_REQUEST, "%s is not a regular file", src);
		goto out;
	}
	/*
	 * A source the size of a stored release may be that release, checked
	 * before: it is hashed first and copied (read again) only when no valid
	 * record has its digest. Any other source is hashed while it is copied.
	 */
	if (copy && rs_holds_size(dir, st.st_size)) {
		if (rs_read(fd, src, NULL, 0, dir, out, e) != 0 ||
		    (r = rs_reuse(home, src, mf, copy, out, e)) < 0) {
			goto out;
		}
		if (r > 0) {
			rc = 0;
			goto out;
		}
		if (lseek(fd, 0, SEEK_SET) != 0) {
			err_sys(e, "seek %s", src);
			goto out;
		}
		memset(out, 0, sizeof(*out));
		hashed = 1;
	}
	if (copy && (fs_mkdir_p(dir, 0700) != 0 || fs_atomic_begin(&a, imp, 0600) != 0)) {
		err_sys(e, "store %s", dir);
		goto out;
	}
	if (rs_read(fd, src, &a, copy, dir, out, e) != 0) {
		goto out;
	}
	close(fd);
	fd = -1;
	if (release_store_path(home, out->sha256, dst, sizeof(dst)) != 0) {
		err_set(e, ERR_USAGE, "%s: home path too long", home);
		goto out;
	}
	if (!hashed && (r = rs_reuse(home, src, mf, copy, out, e)) != 0) {
		rc = r > 0 ? 0 : -1;
		goto out;
	}
	/* What is checked is the store's own copy of the bytes just hashed. */
	if (copy && snprintf(tmp, sizeof(tmp), "%s/%s", dir, fs_atomic_tmp_name(&a)) >=
	    (int)sizeof(tmp)) {
		err_set(e, ERR_USAGE, "%s: home path too long", home);
		goto out;
	}
	if ((flags & RELEASE_STORE_PREFETCH) != 0) {
		/* Without it (out of memory) the delta reads the release once more. */
		pf = rs_prefetch_new(dir, out->sha256);
	}
	if (release_check_file_visit(copy ? tmp : src, NULL, mf,
	    pf != NULL ? delta_pack_prefetch_visitor(pf) : NULL, &m, NULL, NULL, e) != 0) {
		out->refused = 1;
		goto out;
	}
	if (pf != NULL) {
		size_t files;
		uint64_t bytes;

		delta_pack_prefetch_done(pf);
		delta_pack_prefetch_stat(pf, &files, &bytes);
		log_debug("release %.12s: %zu files (%llu bytes) new to the store kept for a "
		    "delta", out->sha256, files, (unsigned long long)bytes);
	}
	snprintf(out->name, sizeof(out->name), "%s", m.name);
	snprintf(out->version, sizeof(out->version), "%s", m.version);
	if (!copy) {
		snprintf(out->path, sizeof(out->path), "%s", src);
		rc = 0;
		goto out;
	}
	testhook_point("store.copied");
	snprintf(name, sizeof(name), "%s.tar.gz", out->sha256);
	if (fs_atomic_commit_as(&a, name) != 0) {
		err_sys(e, "store %s", dst);
		goto out;
	}
	testhook_point("store.committed");
	if (rs_record_write(home, dst, mf, out, e) != 0) {
		goto out;
	}
	testhook_point("store.recorded");
	snprintf(out->path, sizeof(out->path), "%s", dst);
	rc = 0;
out:
	if (rc == 0 && pf != NULL) {
		out->prefetch = pf;
		pf = NULL;
	}
	delta_pack_prefetch_free(pf);
	fs_atomic_abort(&a);
	if (fd >= 0) {
		close(fd);
	}
	return rc;
}
