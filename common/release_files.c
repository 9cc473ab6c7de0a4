#include "common/release_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/release.h"
#include "common/release_check.h"

_Static_assert(RELEASE_FILES_PATH_MAX == RELEASE_CHECK_MAX_PATH,
    "files.json paths have the tarball's limit");

/* Directory levels the scan descends (as the packer). */
#define RF_MAX_DEPTH 128
/* Bytes of a canonical line beyond its strings: keys, quotes, mode, size. */
#define RF_LINE_OVERHEAD 160

static const char *const rf_type_names[] = { "dir", "file", "symlink" };

const char *
release_files_type_name(enum release_files_type t)
{
	return (size_t)t < ARRAY_LEN(rf_type_names) ? rf_type_names[t] : "?";
}

void
release_files_init(struct release_files *f)
{
	f->v = NULL;
	f->n = f->cap = 0;
}

void
release_files_free(struct release_files *f)
{
	if (f == NULL) {
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].path);
		free(f->v[i].target);
	}
	free(f->v);
	release_files_init(f);
}

/* Mode M is one extraction can leave for TYPE (see the header). */
static int
rf_mode_valid(enum release_files_type type, unsigned m)
{
	if ((m & ~0755u) != 0) {
		return 0;
	}
	return type == RELEASE_FILES_DIR ? (m & 0700u) == 0700u : (m & 0600u) == 0600u;
}

static int
rf_lower_hex64(const char *s)
{
	if (s == NULL || !is_hex_len(s, DIGEST_HEX_LEN)) {
		return 0;
	}
	for (; *s != '\0'; s++) {
		if (*s >= 'A' && *s <= 'F') {
			return 0;
		}
	}
	return 1;
}

static int
rf_path_valid(const char *p)
{
	size_t n = strlen(p);

	return release_safe_relpath_max(p, RELEASE_FILES_PATH_MAX) && utf8_valid_prefix(p, n) == n;
}

/* release_files_add() with HASHED 0: a file's sha256 may be "" (a scan without hashing). */
static int
rf_add(struct release_files *f, const char *path, enum release_files_type type, unsigned mode,
    uint64_t size, const char *sha256, const char *target, int hashed, struct err *e)
{
	struct release_files_entry en;
	size_t tlen;

	memset(&en, 0, sizeof(en));
	if (!rf_path_valid(path)) {
		return err_set(e, ERR_FORMAT, "%s: entry '%.200s': not a relative path inside the "
		    "release (at most %d bytes of UTF-8, no '.', '..' or empty component)",
		    RELEASE_FILES_FILE, path, RELEASE_FILES_PATH_MAX);
	}
	switch (type) {
	case RELEASE_FILES_DIR:
	case RELEASE_FILES_REG:
		if (!rf_mode_valid(type, mode)) {
			return err_set(e, ERR_FORMAT, "%s: entry '%.200s': mode %04o is not one "
			    "extraction leaves (no bit beyond 0755; owner %s)", RELEASE_FILES_FILE,
			    path, mode, type == RELEASE_FILES_DIR ? "rwx" : "rw");
		}
		if (type == RELEASE_FILES_REG) {
			if (size > (uint64_t)JSON_INT_MAX) {
				return err_set(e, ERR_FORMAT, "%s: entry '%.200s': size out of range",
				    RELEASE_FILES_FILE, path);
			}
			if (hashed ? !rf_lower_hex64(sha256) :
			    (sha256 != NULL && sha256[0] != '\0' && !rf_lower_hex64(sha256))) {
				return err_set(e, ERR_FORMAT, "%s: entry '%.200s': sha256 must be 64 "
				    "lowercase hex digits", RELEASE_FILES_FILE, path);
			}
			en.size = size;
			if (sha256 != NULL) {
				memcpy(en.sha256, sha256, strlen(sha256) + 1);
			}
		}
		en.mode = mode;
		break;
	case RELEASE_FILES_SYMLINK:
		if (target == NULL) {
			return err_set(e, ERR_FORMAT, "%s: entry '%.200s': symlink without a target",
			    RELEASE_FILES_FILE, path);
		}
		tlen = strlen(target);
		if (tlen == 0 || tlen > RELEASE_FILES_PATH_MAX || utf8_valid_prefix(target, tlen) != tlen) {
			return err_set(e, ERR_FORMAT, "%s: entry '%.200s': symlink target must be 1-%d "
			    "bytes of UTF-8", RELEASE_FILES_FILE, path, RELEASE_FILES_PATH_MAX);
		}
		for (size_t i = 0; i < tlen; i++) {
			if ((unsigned char)target[i] < 0x20 || target[i] == 0x7f) {
				return err_set(e, ERR_FORMAT, "%s: entry '%.200s': control byte in the "
				    "symlink target", RELEASE_FILES_FILE, path);
			}
		}
		if (release_check_symlink(path, target, e) != 0) {
			err_rekind(e, ERR_FORMAT);
			return err_prefix(e, "%s", RELEASE_FILES_FILE);
		}
		en.target = strdup(target);
		if (en.target == NULL) {
			return err_set(e, ERR_NOMEM, "%s: out of memory", RELEASE_FILES_FILE);
		}
		break;
	default:
		return err_set(e, ERR_INTERNAL, "%s: unknown entry type", RELEASE_FILES_FILE);
	}
	if (f->n >= RELEASE_FILES_MAX_ENTRIES) {
		free(en.target);
		return err_set(e, ERR_LIMIT, "%s: more than %d entries", RELEASE_FILES_FILE,
		    RELEASE_FILES_MAX_ENTRIES);
	}
	if (f->n == f->cap) {
		size_t ncap = f->cap == 0 ? 64 : f->cap * 2;
		struct release_files_entry *v = reallocarray(f->v, ncap, sizeof(*v));

		if (v == NULL) {
			free(en.target);
			return err_set(e, ERR_NOMEM, "%s: out of memory", RELEASE_FILES_FILE);
		}
		f->v = v;
		f->cap = ncap;
	}
	en.path = strdup(path);
	if (en.path == NULL) {
		free(en.target);
		return err_set(e, ERR_NOMEM, "%s: out of memory", RELEASE_FILES_FILE);
	}
	en.type = type;
	f->v[f->n++] = en;
	return 0;
}

int
release_files_add(struct release_files *f, const char *path, enum release_files_type type,
    unsigned mode, uint64_t size, const char *sha256, const char *target, struct err *e)
{
	return rf_add(f, path, type, mode, size, sha256, target, 1, e);
}

static int
rf_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct release_files_entry *)a)->path,
	    ((const struct release_files_entry *)b)->path);
}

void
release_files_sort(struct release_files *f)
{
	if (f->n > 1) {
		qsort(f->v, f->n, sizeof(*f->v), rf_entry_cmp);
	}
}

const struct release_files_entry *
release_files_find(const struct release_files *f, const char *path)
{
	struct release_files_entry key;

	if (f->n == 0) {
		return NULL;
	}
	memset(&key, 0, sizeof(key));
	key.path = (char *)(uintptr_t)path;
	return bsearch(&key, f->v, f->n, sizeof(*f->v), rf_entry_cmp);
}

int
release_files_check(const struct release_files *f, struct err *e)
{
	int has_manifest = 0;

	for (size_t i = 0; i < f->n; i++) {
		const struct release_files_entry *en = &f->v[i];
		const char *slash = strrchr(en->path, '/');

		if (i > 0) {
			int c = strcmp(f->v[i - 1].path, en->path);

			if (c == 0) {
				return err_set(e, ERR_FORMAT, "%s: entry '%.200s' listed twice",
				    RELEASE_FILES_FILE, en->path);
			}
			if (c > 0) {
				return err_set(e, ERR_FORMAT, "%s: entry '%.200s' out of order (entries "
				    "are sorted by path)", RELEASE_FILES_FILE, en->path);
			}
		}
		if (strcmp(en->path, RELEASE_FILES_FILE) == 0) {
			return err_set(e, ERR_FORMAT, "%s: lists itself", RELEASE_FILES_FILE);
		}
		if (strcmp(en->path, RELEASE_MANIFEST_FILE) == 0) {
			if (en->type != RELEASE_FILES_REG) {
				return err_set(e, ERR_FORMAT, "%s: %s is not a file", RELEASE_FILES_FILE,
				    RELEASE_MANIFEST_FILE);
			}
			has_manifest = 1;
		}
		if (slash != NULL) {
			/* Sorted: the parent, when listed, is a bsearch away. */
			char parent[RELEASE_FILES_PATH_MAX + 1];
			const struct release_files_entry *p;
			size_t plen = (size_t)(slash - en->path);

			memcpy(parent, en->path, plen);
			parent[plen] = '\0';
			p = release_files_find(f, parent);
			if (p == NULL || p->type != RELEASE_FILES_DIR) {
				return err_set(e, ERR_FORMAT, "%s: entry '%.200s': its directory is not "
				    "listed as a dir", RELEASE_FILES_FILE, en->path);
			}
		}
	}
	if (!has_manifest) {
		return err_set(e, ERR_FORMAT, "%s: %s is not listed", RELEASE_FILES_FILE,
		    RELEASE_MANIFEST_FILE);
	}
	return 0;
}

/* The raw keys of one entry object. */
struct rf_raw {
	const char *path;
	const char *type;
	const char *mode;
	const char *sha256;
	const char *target;
	int64_t size;
};

/* "0755" -> 0755: exactly four octal digits. */
static int
rf_mode_parse(const char *s, unsigned *out)
{
	unsigned m = 0;

	if (s == NULL || strlen(s) != 4) {
		return -1;
	}
	for (size_t i = 0; i < 4; i++) {
		if (s[i] < '0' || s[i] > '7') {
			return -1;
		}
		m = m * 8 + (unsigned)(s[i] - '0');
	}
	*out = m;
	return 0;
}

static int
rf_parse_entry(const cJSON *item, size_t idx, struct release_files *f, struct err *e)
{
	static const struct json_field fields[] = {
		JSON_F_STRREF("path", struct rf_raw, path, JSON_REQUIRED, 1, RELEASE_FILES_PATH_MAX),
		JSON_F_STRREF("type", struct rf_raw, type, JSON_REQUIRED, 1, 16),
		JSON_F_STRREF("mode", struct rf_raw, mode, 0, 4, 4),
		JSON_F_STRREF("sha256", struct rf_raw, sha256, 0, DIGEST_HEX_LEN, DIGEST_HEX_LEN),
		JSON_F_STRREF("target", struct rf_raw, target, 0, 1, RELEASE_FILES_PATH_MAX),
		JSON_F_INT("size", struct rf_raw, size, 0, 0, JSON_INT_MAX),
	};
	struct rf_raw raw;
	enum release_files_type type;
	unsigned mode = 0;
	int has_size;

	memset(&raw, 0, sizeof(raw));
	raw.size = -1;
	if (json_read_fields(item, fields, ARRAY_LEN(fields), 0, &raw, e) != 0) {
		return err_prefix(e, "%s: files[%zu]", RELEASE_FILES_FILE, idx);
	}
	has_size = raw.size >= 0;
	if (strcmp(raw.type, "dir") == 0) {
		type = RELEASE_FILES_DIR;
	} else if (strcmp(raw.type, "file") == 0) {
		type = RELEASE_FILES_REG;
	} else if (strcmp(raw.type, "symlink") == 0) {
		type = RELEASE_FILES_SYMLINK;
	} else {
		return err_set(e, ERR_FORMAT, "%s: files[%zu]: type must be dir, file or symlink",
		    RELEASE_FILES_FILE, idx);
	}
	/* Exactly the keys of the type: a reader never guesses what a stray key means. */
	if ((type == RELEASE_FILES_SYMLINK) != (raw.mode == NULL) ||
	    (type == RELEASE_FILES_REG) != (raw.sha256 != NULL) ||
	    (type == RELEASE_FILES_REG) != has_size ||
	    (type == RELEASE_FILES_SYMLINK) != (raw.target != NULL)) {
		return err_set(e, ERR_FORMAT, "%s: files[%zu]: a %s has the keys %s",
		    RELEASE_FILES_FILE, idx, raw.type,
		    type == RELEASE_FILES_DIR ? "path, type, mode" :
		    type == RELEASE_FILES_REG ? "path, type, mode, size, sha256" :
		    "path, type, target");
	}
	if (raw.mode != NULL && rf_mode_parse(raw.mode, &mode) != 0) {
		return err_set(e, ERR_FORMAT, "%s: files[%zu]: mode must be four octal digits",
		    RELEASE_FILES_FILE, idx);
	}
	return rf_add(f, raw.path, type, mode, has_size ? (uint64_t)raw.size : 0, raw.sha256,
	    raw.target, 1, e);
}

struct rf_top {
	int64_t v;
	const cJSON *files;
};

int
release_files_parse(const char *buf, size_t len, struct release_files *out, struct err *e)
{
	static const struct json_field top[] = {
		JSON_F_INT("v", struct rf_top, v, JSON_REQUIRED, 1, 1),
		JSON_F_ARRAY("files", struct rf_top, files, JSON_REQUIRED),
	};
	struct rf_top raw = { 0, NULL };
	struct release_files tmp = RELEASE_FILES_INIT;
	const cJSON *it;
	cJSON *o = NULL;
	size_t idx = 0;
	int rc = -1;

	release_files_free(out);
	if (len > RELEASE_FILES_MAX_BYTES) {
		err_set(e, ERR_LIMIT, "%s: larger than %zu bytes", RELEASE_FILES_FILE,
		    RELEASE_FILES_MAX_BYTES);
		goto out;
	}
	/* Depth 3: the object, the array, an entry. */
	o = json_parse_object_ex(buf, len, RELEASE_FILES_MAX_BYTES, 3, e);
	if (o == NULL) {
		err_prefix(e, "%s", RELEASE_FILES_FILE);
		goto out;
	}
	if (json_read_fields(o, top, ARRAY_LEN(top), 0, &raw, e) != 0) {
		err_prefix(e, "%s", RELEASE_FILES_FILE);
		goto out;
	}
	cJSON_ArrayForEach(it, raw.files) {
		if (rf_parse_entry(it, idx, &tmp, e) != 0) {
			goto out;
		}
		idx++;
	}
	if (release_files_check(&tmp, e) != 0) {
		goto out;
	}
	*out = tmp;
	release_files_init(&tmp);
	rc = 0;
out:
	release_files_free(&tmp);
	cJSON_Delete(o);
	return rc;
}

/* A growing output buffer. */
struct rf_buf {
	char *p;
	size_t len, cap;
	int failed; /* ERR_NOMEM or ERR_LIMIT */
};

static void
rf_put(struct rf_buf *b, const char *s, size_t n)
{
	if (b->failed) {
		return;
	}
	if (n > RELEASE_FILES_MAX_BYTES - b->len) {
		b->failed = ERR_LIMIT;
		return;
	}
	if (b->len + n > b->cap) {
		size_t ncap = b->cap == 0 ? 4096 : b->cap;
		char *p;

		while (ncap < b->len + n) {
			ncap *= 2;
		}
		p = realloc(b->p, ncap);
		if (p == NULL) {
			b->failed = ERR_NOMEM;
			return;
		}
		b->p = p;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
rf_puts(struct rf_buf *b, const char *s)
{
	rf_put(b, s, strlen(s));
}

/* S as a JSON string: the rules leave only '"' and '\\' to escape (no control bytes). */
static void
rf_put_str(struct rf_buf *b, const char *s)
{
	rf_put(b, "\"", 1);
	while (*s != '\0') {
		size_t n = strcspn(s, "\"\\");

		rf_put(b, s, n);
		s += n;
		if (*s != '\0') {
			char esc[2] = { '\\', *s };

			rf_put(b, esc, 2);
			s++;
		}
	}
	rf_put(b, "\"", 1);
}

int
release_files_format(const struct release_files *f, char **out, size_t *outlen, struct err *e)
{
	struct rf_buf b = { NULL, 0, 0, 0 };
	char num[64];
	int rc = -1;

	if (release_files_check(f, e) != 0) {
		err_rekind(e, ERR_INTERNAL);
		err_prefix(e, "refusing to write a file list that breaks its rules");
		goto out;
	}
	rf_puts(&b, "{\"v\":1,\"files\":[\n");
	for (size_t i = 0; i < f->n; i++) {
		const struct release_files_entry *en = &f->v[i];

		if (en->type == RELEASE_FILES_REG && !rf_lower_hex64(en->sha256)) {
			err_set(e, ERR_INTERNAL, "%s: entry '%.200s' has no digest", RELEASE_FILES_FILE,
			    en->path);
			goto out;
		}
		rf_puts(&b, "{\"path\":");
		rf_put_str(&b, en->path);
		rf_puts(&b, ",\"type\":\"");
		rf_puts(&b, release_files_type_name(en->type));
		rf_puts(&b, "\"");
		if (en->type != RELEASE_FILES_SYMLINK) {
			(void)snprintf(num, sizeof(num), ",\"mode\":\"%04o\"", en->mode);
			rf_puts(&b, num);
		}
		if (en->type == RELEASE_FILES_REG) {
			(void)snprintf(num, sizeof(num), ",\"size\":%llu,\"sha256\":\"",
			    (unsigned long long)en->size);
			rf_puts(&b, num);
			rf_puts(&b, en->sha256);
			rf_puts(&b, "\"");
		}
		if (en->type == RELEASE_FILES_SYMLINK) {
			rf_puts(&b, ",\"target\":");
			rf_put_str(&b, en->target);
		}
		rf_puts(&b, i + 1 < f->n ? "},\n" : "}\n");
	}
	rf_puts(&b, "]}\n");
	if (b.failed == ERR_LIMIT) {
		err_set(e, ERR_LIMIT, "%s: larger than %zu bytes", RELEASE_FILES_FILE,
		    RELEASE_FILES_MAX_BYTES);
		goto out;
	}
	if (b.failed != 0) {
		err_set(e, ERR_NOMEM, "%s: out of memory", RELEASE_FILES_FILE);
		goto out;
	}
	*out = b.p;
	*outlen = b.len;
	b.p = NULL;
	rc = 0;
out:
	free(b.p);
	return rc;
}

int
release_files_read(const char *dir, struct release_files *out, char sha256[DIGEST_HEX_LEN + 1],
    struct err *e)
{
	char p[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	int n, rc = -1;

	release_files_free(out);
	if (sha256 != NULL) {
		sha256[0] = '\0';
	}
	n = snprintf(p, sizeof(p), "%s/%s", dir, RELEASE_FILES_FILE);
	if (n < 0 || (size_t)n >= sizeof(p)) {
		return err_set(e, ERR_INTERNAL, "%s/%s: path too long", dir, RELEASE_FILES_FILE);
	}
	if (fs_read_file(p, RELEASE_FILES_MAX_BYTES, &buf, &len) != 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			return 0;
		}
		if (errno == EFBIG) {
			return err_set(e, ERR_LIMIT, "%s: larger than %zu bytes", p,
			    RELEASE_FILES_MAX_BYTES);
		}
		if (errno == EISDIR || errno == EINVAL || errno == ELOOP) {
			return err_sys_kind(e, ERR_FORMAT, "%s", p);
		}
		return err_sys(e, "read %s", p);
	}
	if (release_files_parse(buf, len, out, e) != 0) {
		err_prefix(e, "%s", dir);
		goto out;
	}
	if (sha256 != NULL && digest_buf(buf, len, sha256) != 0) {
		release_files_free(out);
		err_set(e, ERR_INTERNAL, "%s: sha256 failed", p);
		goto out;
	}
	rc = 1;
out:
	free(buf);
	return rc;
}

/* ---- scanning a tree ---- */

struct rf_scan {
	unsigned flags;
	struct release_files *f;
	char path[RELEASE_FILES_PATH_MAX + 2]; /* the current directory, relative */
};

static int rf_scan_dir(struct rf_scan *s, int dfd, size_t plen, int depth, struct err *e);

/* One entry NAME of directory DFD; S->path[0..PLEN) is the directory's relative path. */
static int
rf_scan_one(struct rf_scan *s, int dfd, size_t plen, const char *name, int depth,
    struct err *e)
{
	char target[RELEASE_FILES_PATH_MAX + 2];
	char hex[DIGEST_HEX_LEN + 1];
	size_t nlen = strlen(name);
	size_t len = plen + (plen > 0 ? 1 : 0) + nlen;
	struct stat st;
	uint64_t size = 0;
	ssize_t tl;
	int fd, rc;

	if (len > RELEASE_FILES_PATH_MAX || plen >= sizeof(s->path)) {
		s->path[plen < sizeof(s->path) ? plen : 0] = '\0';
		return err_set(e, ERR_FORMAT, "%.200s/%.200s: path longer than %d bytes",
		    plen > 0 ? s->path : ".", name, RELEASE_FILES_PATH_MAX);
	}
	(void)snprintf(s->path + plen, sizeof(s->path) - plen, "%s%s", plen > 0 ? "/" : "", name);
	if (plen == 0 && strcmp(name, RELEASE_FILES_FILE) == 0) {
		return 0;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		return err_sys(e, "%.200s", s->path);
	}
	if (S_ISDIR(st.st_mode)) {
		if (depth >= RF_MAX_DEPTH) {
			return err_set(e, ERR_FORMAT, "%.200s: directories nested deeper than %d",
			    s->path, RF_MAX_DEPTH);
		}
		if (rf_add(s->f, s->path, RELEASE_FILES_DIR, (unsigned)st.st_mode & 07777u, 0, NULL,
		    NULL, 0, e) != 0) {
			return -1;
		}
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			return err_sys(e, "%.200s", s->path);
		}
		return rf_scan_dir(s, fd, len, depth + 1, e);
	}
	if (S_ISLNK(st.st_mode)) {
		tl = readlinkat(dfd, name, target, sizeof(target));
		if (tl < 0) {
			return err_sys(e, "%.200s", s->path);
		}
		if ((size_t)tl >= sizeof(target) - 1) {
			return err_set(e, ERR_FORMAT, "%.200s: symlink target too long", s->path);
		}
		target[tl] = '\0';
		return rf_add(s->f, s->path, RELEASE_FILES_SYMLINK, 0, 0, NULL, target, 0, e);
	}
	if (!S_ISREG(st.st_mode)) {
		return err_set(e, ERR_FORMAT, "%.200s: not a file, directory or symlink", s->path);
	}
	hex[0] = '\0';
	size = (uint64_t)st.st_size;
	if ((s->flags & RELEASE_FILES_NOHASH) == 0) {
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0) {
			return err_sys(e, "%.200s", s->path);
		}
		rc = digest_fd(fd, hex, &size, e);
		(void)close(fd);
		if (rc != 0) {
			return err_prefix(e, "%.200s", s->path);
		}
	}
	return rf_add(s->f, s->path, RELEASE_FILES_REG, (unsigned)st.st_mode & 07777u, size, hex,
	    NULL, 0, e);
}

/* Every entry of the directory DFD (taken over, closed here). */
static int
rf_scan_dir(struct rf_scan *s, int dfd, size_t plen, int depth, struct err *e)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int rc = -1;

	if (d == NULL) {
		(void)close(dfd);
		s->path[plen] = '\0';
		return err_sys(e, "%.200s", plen > 0 ? s->path : ".");
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				s->path[plen] = '\0';
				err_sys(e, "%.200s", plen > 0 ? s->path : ".");
				goto out;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		if (rf_scan_one(s, dirfd(d), plen, de->d_name, depth, e) != 0) {
			goto out;
		}
	}
	rc = 0;
out:
	(void)closedir(d);
	return rc;
}

int
release_files_scan(const char *dir, unsigned flags, struct release_files *out, struct err *e)
{
	struct rf_scan s;
	struct release_files tmp = RELEASE_FILES_INIT;
	int fd, rc = -1;

	release_files_free(out);
	memset(&s, 0, sizeof(s));
	s.flags = flags;
	s.f = &tmp;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err_sys(e, "%s", dir);
		goto out;
	}
	if (rf_scan_dir(&s, fd, 0, 0, e) != 0) {
		err_prefix(e, "%s", dir);
		goto out;
	}
	release_files_sort(&tmp);
	if ((flags & RELEASE_FILES_PARTIAL) == 0 && release_files_check(&tmp, e) != 0) {
		err_prefix(e, "%s", dir);
		goto out;
	}
	*out = tmp;
	release_files_init(&tmp);
	rc = 0;
out:
	release_files_free(&tmp);
	return rc;
}

/* ---- the gzip wire form (libarchive's gzip filter over its raw format) ---- */

static la_ssize_t
rf_buf_write(struct archive *a, void *arg, const void *data, size_t len)
{
	struct rf_buf *b = arg;

	(void)a;
	rf_put(b, data, len);
	return b->failed ? -1 : (la_ssize_t)len;
}

/* E for the failure of B: out of memory, or over RELEASE_FILES_MAX_BYTES. */
static int
rf_buf_err(const struct rf_buf *b, struct err *e)
{
	if (b->failed == ERR_NOMEM) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	return err_set(e, ERR_TOO_LARGE, "%s has at most %zu bytes", RELEASE_FILES_FILE,
	    RELEASE_FILES_MAX_BYTES);
}

int
release_files_gzip(const char *buf, size_t len, char **out, size_t *outlen, struct err *e)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	struct rf_buf b = { .p = NULL };
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if (a == NULL || ae == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	archive_entry_set_pathname(ae, RELEASE_FILES_FILE);
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_perm(ae, 0644);
	archive_entry_set_size(ae, (la_int64_t)len);
	if (archive_write_set_format_raw(a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "gzip", "timestamp", NULL) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, &b, NULL, rf_buf_write, NULL, NULL) != ARCHIVE_OK ||
	    archive_write_header(a, ae) != ARCHIVE_OK ||
	    (len > 0 && archive_write_data(a, buf, len) != (la_ssize_t)len) ||
	    archive_write_close(a) != ARCHIVE_OK) {
		if (b.failed) {
			rf_buf_err(&b, e);
		} else {
			err_set(e, ERR_INTERNAL, "gzip: %s", archive_error_string(a));
		}
		goto out;
	}
	*out = b.p;
	*outlen = b.len;
	b.p = NULL;
	rc = 0;
out:
	archive_entry_free(ae);
	archive_write_free(a);
	free(b.p);
	return rc;
}

/*
 * CRC-32 (ISO-HDLC, gzip's trailer check) of BUF. libarchive's gzip reader
 * does not check it: a flipped bit in the middle of the deflate data can
 * inflate to other bytes of the same length without a word.
 */
static uint32_t
rf_crc32(const unsigned char *buf, size_t len)
{
	uint32_t table[256], crc = 0xffffffffu;

	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1u) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		table[i] = c;
	}
	for (size_t i = 0; i < len; i++)
		crc = table[(crc ^ buf[i]) & 0xffu] ^ (crc >> 8);
	return crc ^ 0xffffffffu;
}

int
release_files_gunzip(const void *gz, size_t len, char **out, size_t *outlen, struct err *e)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	struct rf_buf b = { .p = NULL };
	char chunk[16384];
	la_ssize_t n;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	if (a == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	/* A gzip header first: the raw format alone would take any bytes as they are. */
	if (len < 18 || ((const unsigned char *)gz)[0] != 0x1f ||
	    ((const unsigned char *)gz)[1] != 0x8b) {
		err_set(e, ERR_FORMAT, "not gzip data");
		goto out;
	}
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_raw(a) != ARCHIVE_OK ||
	    archive_read_open_memory(a, gz, len) != ARCHIVE_OK ||
	    archive_read_next_header(a, &ae) != ARCHIVE_OK) {
		err_set(e, ERR_FORMAT, "not gzip data: %s", archive_error_string(a));
		goto out;
	}
	if (archive_filter_code(a, 0) != ARCHIVE_FILTER_GZIP) {
		err_set(e, ERR_FORMAT, "not gzip data");
		goto out;
	}
	while ((n = archive_read_data(a, chunk, sizeof(chunk))) > 0) {
		rf_put(&b, chunk, (size_t)n);
		if (b.failed) {
			rf_buf_err(&b, e);
			goto out;
		}
	}
	if (n < 0) {
		err_set(e, ERR_FORMAT, "corrupt gzip data: %s", archive_error_string(a));
		goto out;
	}
	/*
	 * The stream ends with its member's trailer: the CRC-32 of the inflated
	 * bytes, then their size (mod 2^32), in its last 8 bytes. libarchive
	 * checks neither: it returns what it got from a stream cut short without
	 * a word (the size catches that, and bytes after the member), and
	 * corrupt deflate data can inflate to other bytes (the CRC catches that).
	 */
	{
		const unsigned char *t = (const unsigned char *)gz + len - 8;
		uint32_t crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 |
		    (uint32_t)t[3] << 24;
		uint32_t isize = (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 |
		    (uint32_t)t[7] << 24;

		if (isize != (uint32_t)b.len) {
			err_set(e, ERR_FORMAT, "gzip data cut short or followed by other bytes");
			goto out;
		}
		if (crc != rf_crc32((const unsigned char *)b.p, b.len)) {
			err_set(e, ERR_FORMAT, "corrupt gzip data: the CRC-32 of the inflated bytes "
			    "is not the one the stream ends with");
			goto out;
		}
	}
	/* NUL-terminated (not counted, so not under the limit). */
	*outlen = b.len;
	b.failed = 0;
	if (b.len == b.cap) {
		char *np = realloc(b.p, b.cap + 1);

		if (np == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		b.p = np;
		b.cap++;
	}
	if (b.p == NULL && (b.p = malloc(1)) == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	b.p[*outlen] = '\0';
	*out = b.p;
	b.p = NULL;
	rc = 0;
out:
	archive_read_free(a);
	free(b.p);
	return rc;
}
