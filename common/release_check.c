#include "common/release_check.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Symlinks followed to find a program in the archive (the kernel's limit is 40). */
#define RELEASE_CHECK_MAX_HOPS 40

int
release_check_name(const char *name, char *out, size_t outlen, int *skip, struct err *e)
{
	size_t o = 0;
	const char *p = name;

	*skip = 0;
	if (name[0] == '/') {
		return err_set(e, ERR_UNSAFE, "entry '%.200s': absolute path", name);
	}
	while (*p != '\0') {
		const char *end = strchr(p, '/');
		size_t clen = end != NULL ? (size_t)(end - p) : strlen(p);

		if (clen == 2 && p[0] == '.' && p[1] == '.') {
			return err_set(e, ERR_UNSAFE, "entry '%.200s': '..' in path", name);
		}
		if (clen > 0 && !(clen == 1 && p[0] == '.')) {
			if (o + clen + 2 > outlen) {
				return err_set(e, ERR_UNSAFE, "entry '%.200s': path too long", name);
			}
			if (o > 0) {
				out[o++] = '/';
			}
			for (size_t i = 0; i < clen; i++) {
				if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
					return err_set(e, ERR_UNSAFE,
					    "entry '%.200s': control character in path", name);
				}
			}
			memcpy(out + o, p, clen);
			o += clen;
		}
		p += clen;
		while (*p == '/') {
			p++;
		}
	}
	out[o] = '\0';
	*skip = o == 0;
	return 0;
}

int
release_check_type(const char *name, unsigned ft, int hardlink, enum release_check_ftype *kind,
    struct err *e)
{
	*kind = RELEASE_CHECK_OTHER;
	if (hardlink) {
		return err_set(e, ERR_UNSAFE, "entry '%.200s': hardlinks are not allowed", name);
	}
	switch (ft) {
	case AE_IFREG:
		*kind = RELEASE_CHECK_FILE;
		return 0;
	case AE_IFDIR:
		*kind = RELEASE_CHECK_DIR;
		return 0;
	case AE_IFLNK:
		*kind = RELEASE_CHECK_SYMLINK;
		return 0;
	case AE_IFCHR:
	case AE_IFBLK:
		return err_set(e, ERR_UNSAFE, "entry '%.200s': device nodes are not allowed", name);
	case AE_IFIFO:
		return err_set(e, ERR_UNSAFE, "entry '%.200s': FIFOs are not allowed", name);
	case AE_IFSOCK:
		return err_set(e, ERR_UNSAFE, "entry '%.200s': sockets are not allowed", name);
	default:
		return err_set(e, ERR_UNSAFE, "entry '%.200s': unsupported file type 0%o", name, ft);
	}
}

int
release_check_symlink(const char *path, const char *target, struct err *e)
{
	size_t depth = 0, ups = 0;
	int seen_name = 0;
	const char *p;

	if (target == NULL || target[0] == '\0') {
		return err_set(e, ERR_UNSAFE, "entry '%.200s': empty symlink target", path);
	}
	if (target[0] == '/') {
		return err_set(e, ERR_UNSAFE, "entry '%.200s': symlink to absolute path '%.200s'",
		    path, target);
	}
	for (p = path; *p != '\0'; p++) {
		if (*p == '/') {
			depth++;
		}
	}
	p = target;
	while (*p != '\0') {
		const char *end = strchr(p, '/');
		size_t clen = end != NULL ? (size_t)(end - p) : strlen(p);

		if (clen == 2 && p[0] == '.' && p[1] == '.') {
			if (seen_name || ++ups > depth) {
				return err_set(e, ERR_UNSAFE,
				    "entry '%.200s': symlink target '%.200s' leaves the release", path,
				    target);
			}
		} else if (clen > 0 && !(clen == 1 && p[0] == '.')) {
			seen_name = 1;
		}
		p += clen;
		while (*p == '/') {
			p++;
		}
	}
	return 0;
}

/* ---- the whole tarball */

/* What the check remembers of one entry (to find the manifest's programs). */
struct release_check_entry {
	char *path;   /* normalised */
	char *target; /* symlinks only */
	enum release_check_ftype kind;
	unsigned perm;
};

struct release_check_walk {
	struct release_check_entry *v;
	size_t n, cap;
	char *manifest; /* manifest.json's bytes, NULL when absent */
	size_t manifest_len;
	int manifest_big; /* more than RELEASE_FILE_MAX bytes */
};

static void
release_check_walk_free(struct release_check_walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].path);
		free(w->v[i].target);
	}
	free(w->v);
	free(w->manifest);
}

static int
release_check_remember(struct release_check_walk *w, const char *path, const char *target,
    enum release_check_ftype kind, unsigned perm, struct err *e)
{
	struct release_check_entry *it;

	if (w->n == w->cap) {
		size_t ncap = w->cap == 0 ? 64 : w->cap * 2;
		struct release_check_entry *nv = reallocarray(w->v, ncap, sizeof(*nv));
		if (nv == NULL) {
			return err_set(e, ERR_NOMEM, "out of memory");
		}
		w->v = nv;
		w->cap = ncap;
	}
	it = &w->v[w->n];
	memset(it, 0, sizeof(*it));
	it->path = strdup(path);
	it->target = target != NULL ? strdup(target) : NULL;
	if (it->path == NULL || (target != NULL && it->target == NULL)) {
		free(it->path);
		free(it->target);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	it->kind = kind;
	it->perm = perm;
	w->n++;
	return 0;
}

/* The last entry named PATH (a later entry replaces an earlier one on extraction). */
static const struct release_check_entry *
release_check_lookup(const struct release_check_walk *w, const char *path)
{
	for (size_t i = w->n; i > 0; i--) {
		if (strcmp(w->v[i - 1].path, path) == 0) {
			return &w->v[i - 1];
		}
	}
	return NULL;
}

/*
 * Resolve TARGET relative to the directory of PATH into OUT (normalised).
 * Returns 0, or -1 when it climbs above the release root or is too long.
 */
static int
release_check_join(const char *path, const char *target, char *out, size_t outlen)
{
	char buf[RELEASE_CHECK_MAX_PATH * 2 + 2];
	const char *slash = strrchr(path, '/');
	size_t o = 0;
	const char *p;
	int n;

	n = snprintf(buf, sizeof(buf), "%.*s%s%s", slash != NULL ? (int)(slash - path) : 0, path,
	    slash != NULL ? "/" : "", target);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		return -1;
	}
	for (p = buf; *p != '\0';) {
		const char *end = strchr(p, '/');
		size_t clen = end != NULL ? (size_t)(end - p) : strlen(p);

		if (clen == 2 && p[0] == '.' && p[1] == '.') {
			if (o == 0) {
				return -1;
			}
			while (o > 0 && out[o - 1] != '/') {
				o--;
			}
			if (o > 0) {
				o--;
			}
		} else if (clen > 0 && !(clen == 1 && p[0] == '.')) {
			if (o + clen + 2 > outlen) {
				return -1;
			}
			if (o > 0) {
				out[o++] = '/';
			}
			memcpy(out + o, p, clen);
			o += clen;
		}
		p += clen;
		while (*p == '/') {
			p++;
		}
	}
	out[o] = '\0';
	return 0;
}

/* release_check_exec() (common/release.h) on the archive's entries, with its words. */
static int
release_check_program(const struct release_check_walk *w, const char *rel, struct err *e)
{
	char cur[RELEASE_CHECK_MAX_PATH], next[RELEASE_CHECK_MAX_PATH];
	const struct release_check_entry *it;

	if (!release_safe_relpath(rel)) {
		return err_set(e, ERR_FORMAT, "'%s' is not a relative path inside the release", rel);
	}
	snprintf(cur, sizeof(cur), "%s", rel);
	for (int hop = 0; hop <= RELEASE_CHECK_MAX_HOPS; hop++) {
		it = release_check_lookup(w, cur);
		if (it == NULL) {
			return err_set(e, ERR_FORMAT, "'%s' is missing from the release", rel);
		}
		if (it->kind != RELEASE_CHECK_SYMLINK) {
			if (it->kind != RELEASE_CHECK_FILE || (it->perm & 0100) == 0) {
				return err_set(e, ERR_FORMAT, "'%s' is not an executable file", rel);
			}
			return 0;
		}
		if (release_check_join(cur, it->target, next, sizeof(next)) != 0) {
			return err_set(e, ERR_FORMAT, "'%s' resolves outside the release", rel);
		}
		memcpy(cur, next, sizeof(cur));
	}
	return err_set(e, ERR_FORMAT, "'%s' is missing from the release", rel);
}

/* The data of the current entry (manifest.json) into W, counting it against the limit. */
static int
release_check_data(struct archive *a, struct release_check_walk *w, const char *path,
    int keep, const struct release_check_visitor *v, uint64_t max_unpacked,
    uint64_t *unpacked, struct err *e)
{
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;

	for (;;) {
		r = archive_read_data_block(a, &buf, &size, &off);
		if (r == ARCHIVE_EOF) {
			return 0;
		}
		if (r < ARCHIVE_WARN) {
			return err_set(e, ERR_FORMAT, "entry '%.200s': %.200s", path,
			    archive_error_string(a));
		}
		/* Sparse holes count too: the file's extent is what lands on disk. */
		if (off < 0 || (uint64_t)off + size > max_unpacked || *unpacked + size > max_unpacked) {
			return err_set(e, ERR_LIMIT, "entry '%.200s': unpacked size exceeds %llu bytes",
			    path, (unsigned long long)max_unpacked);
		}
		*unpacked += size;
		if (v != NULL && size > 0) {
			v->data(v->arg, buf, size, (uint64_t)off);
		}
		if (!keep || w->manifest_big) {
			continue;
		}
		if ((uint64_t)off + size > RELEASE_FILE_MAX) {
			w->manifest_big = 1;
			continue;
		}
		if ((size_t)off + size > w->manifest_len) {
			char *nb = realloc(w->manifest, (size_t)off + size);
			if (nb == NULL) {
				return err_set(e, ERR_NOMEM, "out of memory");
			}
			memset(nb + w->manifest_len, 0, (size_t)off + size - w->manifest_len);
			w->manifest = nb;
			w->manifest_len = (size_t)off + size;
		}
		memcpy(w->manifest + off, buf, size);
	}
}

/* One entry: the rules, then remembered (and manifest.json's bytes kept). */
static int
release_check_one(struct archive *a, struct archive_entry *ae, struct release_check_walk *w,
    const struct release_check_visitor *v, uint64_t max_unpacked, uint64_t nth,
    uint64_t *unpacked, struct err *e)
{
	const char *name = archive_entry_pathname(ae);
	char path[RELEASE_CHECK_MAX_PATH];
	enum release_check_ftype kind;
	int skip, is_manifest;

	if (name == NULL || name[0] == '\0') {
		return err_set(e, ERR_UNSAFE, "entry #%llu has no name", (unsigned long long)nth);
	}
	if (release_check_name(name, path, sizeof(path), &skip, e) != 0 ||
	    release_check_type(name, archive_entry_filetype(ae), archive_entry_hardlink(ae) != NULL,
		&kind, e) != 0) {
		return -1;
	}
	if (kind == RELEASE_CHECK_SYMLINK &&
	    release_check_symlink(path, archive_entry_symlink(ae), e) != 0) {
		return -1;
	}
	if (skip) {
		if (kind != RELEASE_CHECK_DIR) {
			return err_set(e, ERR_UNSAFE, "entry '%.200s': not a directory", name);
		}
		return 0;
	}
	if (kind == RELEASE_CHECK_FILE && archive_entry_size_is_set(ae) &&
	    (archive_entry_size(ae) < 0 ||
		(uint64_t)archive_entry_size(ae) > max_unpacked - *unpacked)) {
		return err_set(e, ERR_LIMIT, "entry '%.200s': unpacked size exceeds %llu bytes", name,
		    (unsigned long long)max_unpacked);
	}
	is_manifest = kind == RELEASE_CHECK_FILE && strcmp(path, RELEASE_MANIFEST_FILE) == 0;
	if (is_manifest) {
		/* A later manifest.json replaces an earlier one, as on disk. */
		free(w->manifest);
		w->manifest = NULL;
		w->manifest_len = 0;
		w->manifest_big = 0;
	}
	if (release_check_remember(w, path,
		kind == RELEASE_CHECK_SYMLINK ? archive_entry_symlink(ae) : NULL, kind,
		(unsigned)archive_entry_perm(ae), e) != 0) {
		return -1;
	}
	if (kind == RELEASE_CHECK_FILE) {
		int visit = v != NULL && v->file(v->arg, name, path, archive_entry_size_is_set(ae)
			? (int64_t)archive_entry_size(ae) : -1) != 0;

		if (release_check_data(a, w, path, is_manifest, visit ? v : NULL, max_unpacked,
		    unpacked, e) != 0) {
			return -1;
		}
		if (visit) {
			v->end(v->arg);
		}
		if (is_manifest && w->manifest == NULL) {
			w->manifest = strdup("");
			if (w->manifest == NULL) {
				return err_set(e, ERR_NOMEM, "out of memory");
			}
		}
	}
	return 0;
}

/* The manifest and the programs it names, as the updater checks them after extraction. */
static int
release_check_manifest(const struct release_check_walk *w, unsigned flags,
    struct release_manifest *m, struct err *e)
{
	if (w->manifest == NULL || w->manifest_big) {
		errno = w->manifest == NULL ? ENOENT : EFBIG;
		return err_sys_kind(e, ERR_FORMAT, "release has no readable %s", RELEASE_MANIFEST_FILE);
	}
	if (release_manifest_parse(w->manifest, w->manifest_len, flags, m, e) != 0) {
		return -1;
	}
	if ((flags & RELEASE_MF_AGENT) != 0) {
		if (release_check_program(w, m->entrypoint, e) != 0) {
			return err_prefix(e, "entrypoint");
		}
		if (m->npreflight > 0 && release_check_program(w, m->preflight[0], e) != 0) {
			return err_prefix(e, "preflight");
		}
	}
	if ((flags & RELEASE_MF_UPDATER) != 0 &&
	    release_check_program(w, m->updater_entrypoint, e) != 0) {
		return err_prefix(e, "updater_entrypoint");
	}
	return 0;
}

int
release_check_file(const char *path, const struct release_check_limits *lim, unsigned flags,
    struct release_manifest *m, uint64_t *entries, uint64_t *unpacked, struct err *e)
{
	return release_check_file_visit(path, lim, flags, NULL, m, entries, unpacked, e);
}

int
release_check_file_visit(const char *path, const struct release_check_limits *lim,
    unsigned flags, const struct release_check_visitor *v, struct release_manifest *m,
    uint64_t *entries, uint64_t *unpacked, struct err *e)
{
	struct release_check_walk w;
	struct release_manifest tmp;
	struct archive *a = NULL;
	struct archive_entry *ae;
	uint64_t max_unpacked = RELEASE_CHECK_DEFAULT_MAX_UNPACKED;
	uint64_t max_entries = RELEASE_CHECK_DEFAULT_MAX_ENTRIES;
	uint64_t n = 0, bytes = 0;
	int fd = -1, r, rc = -1;

	memset(&w, 0, sizeof(w));
	if (lim != NULL && lim->max_unpacked != 0) {
		max_unpacked = lim->max_unpacked;
	}
	if (lim != NULL && lim->max_entries != 0) {
		max_entries = lim->max_entries;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		return err_sys_kind(e, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "%s", path);
	}
	a = archive_read_new();
	if (a == NULL) {
		err_set(e, ERR_NOMEM, "libarchive: out of memory");
		goto out;
	}
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK) {
		err_set(e, ERR_INTERNAL, "libarchive: %s", archive_error_string(a));
		goto out;
	}
	if (archive_read_open_fd(a, fd, 64 * 1024) != ARCHIVE_OK) {
		err_set(e, ERR_FORMAT, "not a gzip tar archive: %.200s",
		    archive_error_string(a) != NULL ? archive_error_string(a) : "empty");
		goto out;
	}
	/* Exactly gzip over the raw bytes: plain or doubly wrapped tars are refused. */
	if (archive_filter_count(a) != 2 || archive_filter_code(a, 0) != ARCHIVE_FILTER_GZIP) {
		err_set(e, ERR_FORMAT, "not a gzip-compressed archive");
		goto out;
	}
	for (;;) {
		r = archive_read_next_header(a, &ae);
		if (r == ARCHIVE_EOF) {
			break;
		}
		if (r < ARCHIVE_WARN) {
			err_set(e, ERR_FORMAT, "archive header after %llu entries: %.200s",
			    (unsigned long long)n, archive_error_string(a));
			goto out;
		}
		if (++n > max_entries) {
			err_set(e, ERR_LIMIT, "entry '%.200s': more than %llu entries",
			    archive_entry_pathname(ae) != NULL ? archive_entry_pathname(ae) : "?",
			    (unsigned long long)max_entries);
			goto out;
		}
		if (release_check_one(a, ae, &w, v, max_unpacked, n, &bytes, e) != 0) {
			goto out;
		}
	}
	if (n == 0) {
		err_set(e, ERR_FORMAT, "archive has no entries");
		goto out;
	}
	if (release_check_manifest(&w, flags, &tmp, e) != 0) {
		goto out;
	}
	if (m != NULL) {
		*m = tmp;
	}
	if (entries != NULL) {
		*entries = n;
	}
	if (unpacked != NULL) {
		*unpacked = bytes;
	}
	rc = 0;
out:
	if (a != NULL) {
		archive_read_free(a);
	}
	close(fd);
	release_check_walk_free(&w);
	return rc;
}
