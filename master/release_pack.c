#include "master/release_pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/release.h"
#include "common/release_files.h"

#define RP_CHUNK (64 * 1024)
#define RP_MAX_DEPTH 128
#define RP_PATH_MAX 4096
/* A PEM label ("RSA PRIVATE KEY") is short; longer runs are not a header. */
#define RP_PEM_LABEL_MAX 64
/* Printable bytes after the BEGIN line that make it a key, not a C string. */
#define RP_PEM_BODY_MIN 16

/* RP_MANIFEST and RP_FILES_JSON are generated: their bytes are the context's. */
enum rp_type { RP_DIR, RP_FILE, RP_LINK, RP_MANIFEST, RP_FILES_JSON };

struct rp_entry {
	char *path;      /* relative to DIR, no "./" */
	enum rp_type type;
	mode_t mode;     /* normalised permissions */
	off_t size;
	dev_t dev;
	ino_t ino;
	char *target;    /* symlinks */
	char sha256[DIGEST_HEX_LEN + 1]; /* files: of the content read by the first pass */
};

struct rp_ctx {
	const struct release_pack_opts *o;
	char root[PATH_MAX];    /* realpath of DIR */
	int rootfd;
	struct rp_entry *v;
	size_t n, cap;
	struct release_pack_refusals ref; /* every refusal, in the order found */
	int has_manifest;       /* DIR/manifest.json is used */
	char *manifest;         /* bytes to pack */
	size_t manifest_len;
	struct release_manifest info; /* of the manifest to pack */
	char *files_json;       /* files.json to pack (common/release_files) */
	size_t files_json_len;
	/* output */
	struct release_tgz_out out;  /* .sha points at SHA */
	struct digest sha;
	unsigned char *buf;
};

/* Append a refusal of PATH (control characters shown as '?'). -1 when out of memory. */
static int rp_problem(struct rp_ctx *c, const char *path, const char *fmt, ...) LOG_PRINTF(3, 4);

static int
rp_problem(struct rp_ctx *c, const char *path, const char *fmt, ...)
{
	struct release_pack_refusals *r = &c->ref;
	char reason[512];
	char *line;
	size_t plen = strlen(path);
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (r->n == r->cap) {
		size_t ncap = r->cap == 0 ? 8 : r->cap * 2;
		char **v = realloc(r->v, ncap * sizeof(*v));
		if (v == NULL) {
			return -1;
		}
		r->v = v;
		r->cap = ncap;
	}
	line = malloc(plen + strlen(reason) + 3);
	if (line == NULL) {
		return -1;
	}
	for (size_t i = 0; i < plen; i++) {
		unsigned char ch = (unsigned char)path[i];
		line[i] = (char)(ch < 0x20 || ch == 0x7f ? '?' : ch);
	}
	memcpy(line + plen, ": ", 2);
	memcpy(line + plen + 2, reason, strlen(reason) + 1);
	r->v[r->n++] = line;
	return 0;
}

void
release_pack_refusals_free(struct release_pack_refusals *r)
{
	if (r == NULL) {
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i]);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/*
 * The one-line error for refusals: every one while they fit in a message,
 * else as many as fit and "and N more" (the caller has the whole list).
 */
static int
rp_refused(struct rp_ctx *c, struct err *err)
{
	struct release_pack_refusals *r = &c->ref;
	char list[ERR_MSG_MAX];
	char more[48];
	size_t len = 0, shown = 0;
	/* Room for the prefix added below and a "; and N more" tail. */
	size_t room = sizeof(list) - strlen(c->o->dir) - 120;

	list[0] = '\0';
	if (room > sizeof(list)) {
		room = 0;
	}
	for (shown = 0; shown < r->n; shown++) {
		size_t need = strlen(r->v[shown]) + (shown > 0 ? 2 : 0);
		if (len + need >= room) {
			break;
		}
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", shown > 0 ? "; " : "",
		    r->v[shown]);
	}
	r->named = shown;
	more[0] = '\0';
	if (shown < r->n) {
		snprintf(more, sizeof(more), "%sand %zu more", shown > 0 ? "; " : "", r->n - shown);
	}
	return err_set(err, ERR_FORMAT,
	    "refusing to pack %s (%zu problem%s; leave files out with --exclude GLOB): %s%s",
	    c->o->dir, r->n, r->n == 1 ? "" : "s", list, more);
}

static int
has_suffix_ci(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Why a file named BASE is a secret by its name alone, or NULL. */
static const char *
secret_name_reason(const char *base)
{
	static const char *const ssh[] = { "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519" };

	if (has_suffix_ci(base, ".key")) {
		return "private key file name (*.key)";
	}
	for (size_t i = 0; i < ARRAY_LEN(ssh); i++) {
		if (strncmp(base, ssh[i], strlen(ssh[i])) == 0) {
			return "SSH key file name (id_*)";
		}
	}
	if (has_suffix_ci(base, ".env")) {
		return "environment file (.env)";
	}
	return NULL;
}

/*
 * Streaming detector of a PEM private-key block: "-----BEGIN LABEL-----"
 * where LABEL contains "PRIVATE KEY", then a line break, then at least
 * RP_PEM_BODY_MIN base64 or PEM-header bytes. State survives chunk
 * boundaries. For *.pem files "PRIVATE KEY" anywhere is enough.
 */
enum pem_state { PEM_PREFIX, PEM_LABEL, PEM_END, PEM_NL, PEM_BODY };

struct pem_scan {
	enum pem_state state;
	size_t pos;
	char label[RP_PEM_LABEL_MAX + 1];
	size_t llen;
	int found;
	size_t pk_pos;
	int pk_found;
};

static const char pem_prefix[] = "-----BEGIN ";
static const char pem_pk[] = "PRIVATE KEY";

static void
pem_reset(struct pem_scan *s, unsigned char c)
{
	s->state = PEM_PREFIX;
	s->pos = c == '-' ? 1 : 0;
}


static void
pem_feed(struct pem_scan *s, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n && !s->found; i++) {
		unsigned char c = p[i];

		if (c == (unsigned char)pem_pk[s->pk_pos]) {
			if (++s->pk_pos == sizeof(pem_pk) - 1) {
				s->pk_found = 1;
				s->pk_pos = 0;
			}
		} else {
			s->pk_pos = c == 'P' ? 1 : 0;
		}
		switch (s->state) {
		case PEM_PREFIX:
			if (c == (unsigned char)pem_prefix[s->pos]) {
				if (++s->pos == sizeof(pem_prefix) - 1) {
					s->state = PEM_LABEL;
					s->llen = 0;
				}
			} else if (c == '-') {
				/* "------BEGIN": still five dashes behind us. */
				s->pos = s->pos == 5 ? 5 : 1;
			} else {
				s->pos = 0;
			}
			break;
		case PEM_LABEL:
			if ((isupper(c) || isdigit(c) || c == ' ') && s->llen < RP_PEM_LABEL_MAX) {
				s->label[s->llen++] = (char)c;
			} else if (c == '-' && s->llen > 0) {
				s->label[s->llen] = '\0';
				s->state = PEM_END;
				s->pos = 1;
			} else {
				pem_reset(s, c);
			}
			break;
		case PEM_END:
			if (c != '-') {
				pem_reset(s, c);
			} else if (++s->pos == 5) {
				if (strstr(s->label, pem_pk) != NULL) {
					s->state = PEM_NL;
				} else {
					s->state = PEM_PREFIX;
					s->pos = 5;
				}
			}
			break;
		case PEM_NL:
			if (c == '\n') {
				s->state = PEM_BODY;
				s->pos = 0;
			} else if (c != '\r') {
				pem_reset(s, c);
			}
			break;
		case PEM_BODY:
			/* Base64, or armor headers and blank lines (PGP) before it. */
			if (c == '\r' || c == '\n') {
				break;
			}
			if (c < 0x20 || c > 0x7e) {
				pem_reset(s, c);
			} else if (++s->pos >= RP_PEM_BODY_MIN) {
				s->found = 1;
			}
			break;
		}
	}
}

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s == NULL ? path : s + 1;
}

static int
excluded(const struct rp_ctx *c, const char *rel)
{
	for (size_t i = 0; i < c->o->n_excludes; i++) {
		const char *g = c->o->excludes[i];

		while (g[0] == '.' && g[1] == '/') {
			g += 2;
		}
		if (strchr(g, '/') != NULL) {
			if (fnmatch(g, rel, FNM_PATHNAME) == 0) {
				return 1;
			}
		} else if (fnmatch(g, base_name(rel), 0) == 0) {
			return 1;
		}
	}
	return 0;
}

static void
entries_free(struct rp_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].path);
		free(c->v[i].target);
	}
	free(c->v);
	c->v = NULL;
	c->n = c->cap = 0;
}

/* Append an entry taking ownership of PATH and TARGET (freed on failure). */
static int
entry_add(struct rp_ctx *c, char *path, enum rp_type type, const struct stat *st, char *target)
{
	struct rp_entry *e;

	if (c->n == c->cap) {
		size_t ncap = c->cap == 0 ? 64 : c->cap * 2;
		struct rp_entry *p = reallocarray(c->v, ncap, sizeof(*p));
		if (p == NULL) {
			free(path);
			free(target);
			return -1;
		}
		c->v = p;
		c->cap = ncap;
	}
	e = &c->v[c->n++];
	memset(e, 0, sizeof(*e));
	e->path = path;
	e->type = type;
	e->target = target;
	if (st != NULL) {
		e->size = st->st_size;
		e->dev = st->st_dev;
		e->ino = st->st_ino;
	}
	switch (type) {
	case RP_DIR:
		e->mode = 0755;
		e->size = 0;
		break;
	case RP_FILE:
		e->mode = st != NULL && (st->st_mode & 0111) != 0 ? 0755 : 0644;
		break;
	case RP_LINK:
		e->mode = 0777;
		e->size = 0;
		break;
	case RP_MANIFEST:
	case RP_FILES_JSON:
		e->mode = 0644;
		break;
	}
	return 0;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rp_entry *)a)->path, ((const struct rp_entry *)b)->path);
}

static const struct rp_entry *
entry_find(const struct rp_ctx *c, const char *path)
{
	struct rp_entry key;

	memset(&key, 0, sizeof(key));
	key.path = (char *)(uintptr_t)path;
	return bsearch(&key, c->v, c->n, sizeof(*c->v), entry_cmp);
}

static int
has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f) {
			return 1;
		}
	}
	return 0;
}

static int rp_walk(struct rp_ctx *c, int dfd, const char *rel, int depth, struct err *err);

/* One directory entry NAME of directory DFD (relative path REL). */
static int
rp_visit(struct rp_ctx *c, int dfd, const char *rel, const char *name, int depth, struct err *err)
{
	char *path = NULL, *target = NULL;
	const char *why;
	struct stat st;
	int rc = -1, n;

	n = rel == NULL ? snprintf(NULL, 0, "%s", name) : snprintf(NULL, 0, "%s/%s", rel, name);
	if (n < 0 || n >= RP_PATH_MAX) {
		err_set(err, ERR_FORMAT, "%s/%s: path too long", rel == NULL ? "." : rel, name);
		goto out;
	}
	path = malloc((size_t)n + 1);
	if (path == NULL) {
		err_set(err, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (rel == NULL) {
		memcpy(path, name, (size_t)n + 1);
	} else {
		(void)snprintf(path, (size_t)n + 1, "%s/%s", rel, name);
	}
	if (excluded(c, path)) {
		rc = 0;
		goto out;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		err_sys(err, "%s", path);
		goto out;
	}
	if (rel == NULL && strcmp(name, RELEASE_MANIFEST_FILE) == 0) {
		/* Read separately; the packed manifest is generated from it. */
		if (!S_ISREG(st.st_mode)) {
			rc = rp_problem(c, path, "not a regular file");
			goto out;
		}
		c->has_manifest = 1;
		rc = 0;
		goto out;
	}
	if (rel == NULL && strcmp(name, RELEASE_FILES_FILE) == 0) {
		/* Generated from the tree (a re-packed release carries an old one). */
		rc = 0;
		goto out;
	}
	if (has_control(name)) {
		rc = rp_problem(c, path, "control character in the file name");
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		int sub;
		if (depth >= RP_MAX_DEPTH) {
			err_set(err, ERR_FORMAT, "%s: directories nested deeper than %d", path,
			    RP_MAX_DEPTH);
			goto out;
		}
		sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			err_sys(err, "%s", path);
			goto out;
		}
		char *p = path;
		path = NULL;
		if (entry_add(c, p, RP_DIR, &st, NULL) != 0) {
			(void)close(sub);
			err_set(err, ERR_NOMEM, "out of memory");
			goto out;
		}
		/* The entry owns the path; the array may move, so recurse on a copy. */
		rc = rp_walk(c, sub, c->v[c->n - 1].path, depth + 1, err);
		goto out;
	}
	if (S_ISREG(st.st_mode)) {
		why = secret_name_reason(name);
		if (why != NULL) {
			rc = rp_problem(c, path, "%s", why);
			goto out;
		}
		rc = entry_add(c, path, RP_FILE, &st, NULL);
		path = NULL;
		if (rc != 0) {
			err_set(err, ERR_NOMEM, "out of memory");
		}
		goto out;
	}
	if (S_ISLNK(st.st_mode)) {
		ssize_t tl;
		why = secret_name_reason(name);
		if (why != NULL) {
			rc = rp_problem(c, path, "%s", why);
			goto out;
		}
		target = malloc(PATH_MAX);
		if (target == NULL) {
			err_set(err, ERR_NOMEM, "out of memory");
			goto out;
		}
		tl = readlinkat(dfd, name, target, PATH_MAX);
		if (tl < 0 || tl >= PATH_MAX) {
			if (tl < 0) {
				err_sys(err, "%s: cannot read symlink", path);
			} else {
				err_set(err, ERR_FORMAT, "%s: cannot read symlink: target too long",
				    path);
			}
			goto out;
		}
		target[tl] = '\0';
		rc = entry_add(c, path, RP_LINK, &st, target);
		path = NULL;
		target = NULL;
		if (rc != 0) {
			err_set(err, ERR_NOMEM, "out of memory");
		}
		goto out;
	}
	rc = rp_problem(c, path, "special file (%s) cannot be packed",
	    S_ISFIFO(st.st_mode) ? "FIFO" : S_ISSOCK(st.st_mode) ? "socket" :
	    S_ISCHR(st.st_mode) ? "character device" : S_ISBLK(st.st_mode) ? "block device" :
	    "unknown type");
out:
	free(path);
	free(target);
	return rc;
}

/* Walk directory DFD (taken over) whose path relative to DIR is REL (NULL: DIR). */
static int
rp_walk(struct rp_ctx *c, int dfd, const char *rel, int depth, struct err *err)
{
	char *relcopy = NULL;
	struct dirent *de;
	DIR *d;
	int rc = -1;

	d = fdopendir(dfd);
	if (d == NULL) {
		err_sys(err, "%s", rel == NULL ? c->root : rel);
		(void)close(dfd);
		return -1;
	}
	if (rel != NULL) {
		relcopy = strdup(rel);
		if (relcopy == NULL) {
			err_set(err, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				err_sys(err, "%s", rel == NULL ? c->root : relcopy);
				goto out;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		if (rp_visit(c, dirfd(d), relcopy, de->d_name, depth, err) != 0) {
			goto out;
		}
	}
	rc = 0;
out:
	free(relcopy);
	(void)closedir(d);
	return rc;
}

/* Canonical path of REL under the real tree, relative to DIR, into OUT. */
static int
rp_resolve(const struct rp_ctx *c, const char *rel, char *out, size_t outlen, const char **why)
{
	char full[PATH_MAX], real[PATH_MAX];
	size_t rl = strlen(c->root);
	int n = snprintf(full, sizeof(full), "%s/%s", c->root, rel);

	if (n < 0 || (size_t)n >= sizeof(full)) {
		*why = "path too long";
		return -1;
	}
	if (realpath(full, real) == NULL) {
		*why = errno == ENOENT ? "dangling symlink (its target does not exist)" :
		    "symlink cannot be resolved";
		return -1;
	}
	if (strncmp(real, c->root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0')) {
		*why = "symlink resolves outside DIR";
		return -1;
	}
	return strlcpy_chk(out, real[rl] == '/' ? real + rl + 1 : "", outlen);
}

/* 1 if the relative target T of a link at LINKPATH stays inside DIR, lexically. */
static int
lexically_inside(const char *linkpath, const char *t)
{
	long depth = 0;
	const char *p;

	for (p = linkpath; *p != '\0'; p++) {
		depth += *p == '/';
	}
	while (*t != '\0') {
		size_t n = strcspn(t, "/");
		if (n == 2 && t[0] == '.' && t[1] == '.') {
			if (--depth < 0) {
				return 0;
			}
		} else if (n > 0 && !(n == 1 && t[0] == '.')) {
			depth++;
		}
		t += n;
		while (*t == '/') {
			t++;
		}
	}
	return 1;
}

static int
rp_check_links(struct rp_ctx *c)
{
	char rel[PATH_MAX];
	const char *why = NULL;

	for (size_t i = 0; i < c->n; i++) {
		const struct rp_entry *e = &c->v[i];
		int r;

		if (e->type != RP_LINK) {
			continue;
		}
		if (e->target[0] == '/') {
			r = rp_problem(c, e->path, "absolute symlink (-> %s)", e->target);
		} else if (!lexically_inside(e->path, e->target)) {
			r = rp_problem(c, e->path, "symlink leaves DIR (-> %s)", e->target);
		} else if (rp_resolve(c, e->path, rel, sizeof(rel), &why) != 0) {
			r = rp_problem(c, e->path, "%s (-> %s)", why, e->target);
		} else if (rel[0] != '\0' && strcmp(rel, RELEASE_MANIFEST_FILE) != 0 &&
		    entry_find(c, rel) == NULL) {
			r = rp_problem(c, e->path, "symlink to %s, which is excluded or refused", rel);
		} else {
			r = 0;
		}
		if (r != 0) {
			return -1;
		}
	}
	return 0;
}

/* The file at REL must be packed as an executable regular file. */
static int
rp_check_exec(struct rp_ctx *c, const char *key, const char *rel)
{
	char real[PATH_MAX];
	const struct rp_entry *e = entry_find(c, rel);
	const char *why = NULL;

	if (e != NULL && e->type == RP_LINK) {
		e = rp_resolve(c, rel, real, sizeof(real), &why) == 0 ? entry_find(c, real) : NULL;
	}
	if (e == NULL) {
		return rp_problem(c, rel, "%s is missing from DIR (or excluded)", key);
	}
	if (e->type != RP_FILE || e->mode != 0755) {
		return rp_problem(c, rel, "%s is not an executable regular file", key);
	}
	return 0;
}

/* The manifest to pack: DIR's own (its version replaced when one is given), or the default. */
static int
rp_load_manifest(struct rp_ctx *c, struct err *err)
{
	struct release_manifest *m = &c->info;
	const char *version = c->o->version;
	char *buf = NULL, path[PATH_MAX];
	const struct rp_entry *u;
	size_t len = 0;
	int n, rc = -1;

	if (version != NULL && !release_ident_valid(version)) {
		err_set(err, ERR_FORMAT, "invalid version '%.64s': use 1-%d of [A-Za-z0-9._+~-], starting "
		    "with a letter or digit", version, RELEASE_IDENT_MAX);
		goto out;
	}
	memset(m, 0, sizeof(*m));
	if (c->has_manifest) {
		n = snprintf(path, sizeof(path), "%s/%s", c->root, RELEASE_MANIFEST_FILE);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			err_set(err, ERR_FORMAT, "%s: path too long", c->root);
			goto out;
		}
		if (fs_read_file(path, RELEASE_FILE_MAX, &buf, &len) != 0) {
			if (errno == EFBIG) {
				err_set(err, ERR_FORMAT, "%s: larger than 64 KiB", path);
			} else {
				err_sys(err, "%s", path);
			}
			goto out;
		}
		if (release_manifest_parse(buf, len, RELEASE_MF_AGENT | RELEASE_MF_SOURCE, m,
		    err) != 0) {
			goto out;
		}
	} else {
		(void)!strlcpy_chk(m->name, RELEASE_DEFAULT_NAME, sizeof(m->name));
		(void)!strlcpy_chk(m->entrypoint, RELEASE_DEFAULT_ENTRYPOINT, sizeof(m->entrypoint));
		(void)!strlcpy_chk(m->preflight[0], RELEASE_DEFAULT_ENTRYPOINT,
		    sizeof(m->preflight[0]));
		(void)!strlcpy_chk(m->preflight[1], "--self-test", sizeof(m->preflight[1]));
		m->npreflight = 2;
		u = entry_find(c, RELEASE_DEFAULT_UPDATER_ENTRYPOINT);
		if (u != NULL && u->type != RP_DIR) {
			(void)!strlcpy_chk(m->updater_entrypoint, RELEASE_DEFAULT_UPDATER_ENTRYPOINT,
			    sizeof(m->updater_entrypoint));
		}
	}
	if (c->o->readiness != NULL &&
	    strlcpy_chk(m->readiness, c->o->readiness, sizeof(m->readiness)) != 0) {
		err_set(err, ERR_FORMAT, "--readiness: too long");
		goto out;
	}
	if (version != NULL || m->version[0] == '\0') {
		(void)!strlcpy_chk(m->version, version != NULL ? version : RELEASE_DEFAULT_VERSION,
		    sizeof(m->version));
	}
	if (release_manifest_format(m, buf, len, &c->manifest, &c->manifest_len, err) != 0) {
		goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

static la_ssize_t
tgz_write_cb(struct archive *a, void *arg, const void *buf, size_t len)
{
	struct release_tgz_out *o = arg;

	if (fs_atomic_write(&o->file, buf, len) != 0) {
		int saved = errno;
		archive_set_error(a, saved, "writing the tarball: %s", strerror(saved));
		return -1;
	}
	if (o->sha != NULL) {
		digest_update(o->sha, buf, len);
	}
	o->written += len;
	return (la_ssize_t)len;
}

/*
 * Read regular file E in chunks: scan it for key material and hash it; A
 * NULL (the first pass) records the digest for files.json, otherwise the
 * file is appended to the archive and must still have that digest. A
 * change since the walk is an error.
 */
static int
rp_stream_file(struct rp_ctx *c, struct rp_entry *e, struct archive *a, struct err *err)
{
	char hex[DIGEST_HEX_LEN + 1];
	struct pem_scan scan;
	struct digest d;
	struct stat st;
	off_t total = 0;
	int fd, rc = -1;

	memset(&scan, 0, sizeof(scan));
	digest_init(&d);
	fd = openat(c->rootfd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		err_sys(err, "%s", e->path);
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != e->dev ||
	    st.st_ino != e->ino || st.st_size != e->size) {
		err_set(err, ERR_FORMAT, "%s: changed while packing", e->path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, c->buf, RP_CHUNK);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			err_sys(err, "%s", e->path);
			goto out;
		}
		if (n == 0) {
			break;
		}
		if (n > e->size - total) {
			err_set(err, ERR_FORMAT, "%s: changed while packing (grew)", e->path);
			goto out;
		}
		total += n;
		pem_feed(&scan, c->buf, (size_t)n);
		digest_update(&d, c->buf, (size_t)n);
		if (a != NULL && archive_write_data(a, c->buf, (size_t)n) != n) {
			err_set(err, ERR_IO, "%s: %s", e->path, archive_error_string(a));
			goto out;
		}
	}
	if (total != e->size) {
		err_set(err, ERR_FORMAT, "%s: changed while packing (shrank)", e->path);
		goto out;
	}
	if (digest_final(&d, hex) != 0) {
		err_set(err, ERR_INTERNAL, "%s: sha256 failed", e->path);
		goto out;
	}
	if (a == NULL) {
		memcpy(e->sha256, hex, sizeof(hex));
	} else if (strcmp(e->sha256, hex) != 0) {
		err_set(err, ERR_FORMAT, "%s: changed while packing (content)", e->path);
		goto out;
	}
	if (scan.found) {
		rc = rp_problem(c, e->path, "contains a PEM private key");
	} else if (scan.pk_found && has_suffix_ci(e->path, ".pem")) {
		rc = rp_problem(c, e->path, "*.pem containing \"PRIVATE KEY\"");
	} else {
		rc = 0;
	}
	if (rc != 0) {
		err_set(err, ERR_NOMEM, "out of memory");
	}
out:
	digest_free(&d);
	(void)close(fd);
	return rc;
}

/*
 * files.json of the entries (sorted, manifest.json among them, digests from
 * the first pass) into C->files_json. An entry its rules refuse (a name that
 * is not UTF-8, a path over the tarball limit, a link target extraction
 * would refuse) is a refusal like the others.
 */
static int
rp_files_json(struct rp_ctx *c, struct err *err)
{
	struct release_files f = RELEASE_FILES_INIT;
	char mhex[DIGEST_HEX_LEN + 1];
	int rc = -1;

	if (digest_buf(c->manifest, c->manifest_len, mhex) != 0) {
		err_set(err, ERR_INTERNAL, "sha256 failed");
		goto out;
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct rp_entry *e = &c->v[i];
		struct err fe = ERR_INIT;
		int r = 0;

		switch (e->type) {
		case RP_DIR:
			r = release_files_add(&f, e->path, RELEASE_FILES_DIR, e->mode, 0, NULL, NULL,
			    &fe);
			break;
		case RP_FILE:
			r = release_files_add(&f, e->path, RELEASE_FILES_REG, e->mode,
			    (uint64_t)e->size, e->sha256, NULL, &fe);
			break;
		case RP_LINK:
			r = release_files_add(&f, e->path, RELEASE_FILES_SYMLINK, 0, 0, NULL, e->target,
			    &fe);
			break;
		case RP_MANIFEST:
			r = release_files_add(&f, e->path, RELEASE_FILES_REG, e->mode,
			    (uint64_t)c->manifest_len, mhex, NULL, &fe);
			break;
		case RP_FILES_JSON:
			break;
		}
		if (r == 0) {
			continue;
		}
		if (fe.kind != ERR_FORMAT) {
			err_copy(err, &fe);
			goto out;
		}
		/* "files.json: entry 'P': reason" -> "P: reason". */
		const char *why = strstr(err_msg(&fe), "': ");
		if (rp_problem(c, e->path, "%s", why != NULL ? why + 3 : err_msg(&fe)) != 0) {
			err_set(err, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	if (c->ref.n > 0) {
		rc = 0;
		goto out;
	}
	if (release_files_format(&f, &c->files_json, &c->files_json_len, err) != 0) {
		goto out;
	}
	rc = 0;
out:
	release_files_free(&f);
	return rc;
}

int
release_pack_tgz_header(struct archive *a, const char *path, unsigned mode, unsigned type,
    uint64_t size, const char *target, struct err *err)
{
	struct archive_entry *ae = archive_entry_new();
	int r;

	if (ae == NULL) {
		return err_set(err, ERR_NOMEM, "out of memory");
	}
	archive_entry_set_pathname(ae, path);
	archive_entry_set_mtime(ae, 0, 0);
	archive_entry_set_uid(ae, 0);
	archive_entry_set_gid(ae, 0);
	archive_entry_set_perm(ae, (mode_t)mode);
	archive_entry_set_filetype(ae, type);
	if (target != NULL) {
		archive_entry_set_symlink(ae, target);
	}
	archive_entry_set_size(ae, type == AE_IFREG ? (la_int64_t)size : 0);
	/* A warning (e.g. an untranslatable name) would make the output vary. */
	r = archive_write_header(a, ae);
	archive_entry_free(ae);
	if (r != ARCHIVE_OK) {
		return err_set(err, archive_errno(a) == ENOSPC ? ERR_NOSPACE : ERR_IO, "%s: %s", path,
		    archive_error_string(a));
	}
	return 0;
}

static int
rp_write_entry(struct rp_ctx *c, struct archive *a, struct rp_entry *e, struct err *err)
{
	unsigned type = AE_IFREG;
	uint64_t size = 0;

	switch (e->type) {
	case RP_DIR:
		type = AE_IFDIR;
		break;
	case RP_LINK:
		type = AE_IFLNK;
		break;
	case RP_FILE:
		size = e->size;
		break;
	case RP_MANIFEST:
		size = c->manifest_len;
		break;
	case RP_FILES_JSON:
		size = c->files_json_len;
		break;
	}
	if (release_pack_tgz_header(a, e->path, e->mode, type, size,
	    e->type == RP_LINK ? e->target : NULL, err) != 0) {
		return -1;
	}
	if (e->type == RP_FILE) {
		if (rp_stream_file(c, e, a, err) != 0) {
			return -1;
		}
	} else if (e->type == RP_MANIFEST || e->type == RP_FILES_JSON) {
		const char *data = e->type == RP_MANIFEST ? c->manifest : c->files_json;
		size_t len = e->type == RP_MANIFEST ? c->manifest_len : c->files_json_len;

		if (archive_write_data(a, data, len) != (la_ssize_t)len) {
			err_set(err, ERR_IO, "%s: %s", e->path, archive_error_string(a));
			return -1;
		}
	}
	if (archive_write_finish_entry(a) != ARCHIVE_OK) {
		err_set(err, ERR_IO, "%s: %s", e->path, archive_error_string(a));
		return -1;
	}
	return 0;
}

/* Resolve the output path into RES->path; refuse one inside DIR. */
static int
rp_output_path(struct rp_ctx *c, struct release_pack_result *res, struct err *err)
{
	char def[2 * RELEASE_IDENT_MAX + 16], dir[PATH_MAX], real[PATH_MAX];
	const char *out = c->o->output, *base;
	size_t rl = strlen(c->root);
	int n;

	if (out == NULL) {
		n = snprintf(def, sizeof(def), "%s-%s.tar.gz", c->info.name, c->info.version);
		if (n < 0 || (size_t)n >= sizeof(def)) {
			err_set(err, ERR_FORMAT, "default output name too long");
			return -1;
		}
		out = def;
	}
	base = base_name(out);
	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		err_set(err, ERR_FORMAT, "%s: not a file name", out);
		return -1;
	}
	if (base == out) {
		memcpy(dir, ".", 2);
	} else {
		size_t dl = (size_t)(base - out);
		if (dl >= sizeof(dir)) {
			err_set(err, ERR_FORMAT, "%s: path too long", out);
			return -1;
		}
		memcpy(dir, out, dl);
		dir[dl] = '\0';
	}
	if (realpath(dir, real) == NULL) {
		err_sys(err, "%s: output directory", dir);
		return -1;
	}
	if (strncmp(real, c->root, rl) == 0 && (real[rl] == '/' || real[rl] == '\0')) {
		err_set(err, ERR_FORMAT, "%s: the output must not be inside the release directory %s",
		    out, c->root);
		return -1;
	}
	n = snprintf(res->path, sizeof(res->path), "%s/%s", strcmp(real, "/") == 0 ? "" : real,
	    base);
	if (n < 0 || (size_t)n >= sizeof(res->path)) {
		err_set(err, ERR_FORMAT, "%s: path too long", out);
		return -1;
	}
	return 0;
}

struct archive *
release_pack_tgz_open(struct release_tgz_out *out, struct err *err)
{
	struct archive *a = archive_write_new();

	if (a == NULL) {
		err_set(err, ERR_NOMEM, "out of memory");
		return NULL;
	}
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
	    /* No timestamp (and no name) in the gzip header: same bytes every run. */
	    archive_write_set_filter_option(a, "gzip", "timestamp", NULL) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, out, NULL, tgz_write_cb, NULL, NULL) != ARCHIVE_OK) {
		err_set(err, ERR_IO, "libarchive: %s", archive_error_string(a));
		archive_write_free(a);
		return NULL;
	}
	return a;
}

static int
rp_write(struct rp_ctx *c, struct release_pack_result *res, struct err *err)
{
	struct archive *a = NULL;
	int rc = -1;

	if (fs_atomic_begin(&c->out.file, res->path, 0644) != 0) {
		err_sys(err, "%s", res->path);
		return -1;
	}
	a = release_pack_tgz_open(&c->out, err);
	if (a == NULL) {
		goto out;
	}
	for (size_t i = 0; i < c->n; i++) {
		if (rp_write_entry(c, a, &c->v[i], err) != 0) {
			goto out;
		}
	}
	if (archive_write_close(a) != ARCHIVE_OK) {
		err_set(err, ERR_IO, "%s: %s", res->path, archive_error_string(a));
		goto out;
	}
	if (c->ref.n > 0) {
		goto out; /* key material found while streaming */
	}
	if (digest_final(&c->sha, res->sha256) != 0) {
		err_set(err, ERR_INTERNAL, "sha256 failed");
		goto out;
	}
	if (fs_atomic_commit(&c->out.file) != 0) {
		err_sys(err, "%s", res->path);
		goto out;
	}
	res->size = c->out.written;
	res->entries = c->n;
	rc = 0;
out:
	archive_write_free(a);
	fs_atomic_abort(&c->out.file);
	return rc;
}

int
release_pack(const struct release_pack_opts *o, struct release_pack_result *res,
    struct release_pack_refusals *refused, struct err *err)
{
	struct release_pack_result r;
	struct rp_ctx c;
	int rc = -1, fd;

	memset(&c, 0, sizeof(c));
	memset(&r, 0, sizeof(r));
	if (refused != NULL) {
		memset(refused, 0, sizeof(*refused));
	}
	c.o = o;
	c.rootfd = -1;
	c.out.file = (struct fs_atomic)FS_ATOMIC_INIT;
	c.out.sha = &c.sha;
	digest_init(&c.sha);

	if (o->dir == NULL || realpath(o->dir, c.root) == NULL) {
		if (o->dir == NULL) {
			err_set(err, ERR_USAGE, "(null): no directory");
		} else {
			err_sys(err, "%s", o->dir);
		}
		goto out;
	}
	c.rootfd = open(c.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.rootfd < 0) {
		err_sys(err, "%s", o->dir);
		goto out;
	}
	c.buf = malloc(RP_CHUNK);
	if (c.buf == NULL) {
		err_set(err, ERR_NOMEM, "out of memory");
		goto out;
	}
	fd = dup(c.rootfd);
	if (fd < 0) {
		err_sys(err, "%s", o->dir);
		goto out;
	}
	if (rp_walk(&c, fd, NULL, 0, err) != 0) {
		goto out;
	}
	qsort(c.v, c.n, sizeof(*c.v), entry_cmp);
	if (rp_load_manifest(&c, err) != 0) {
		goto out;
	}
	if (rp_check_links(&c) != 0 ||
	    rp_check_exec(&c, "entrypoint", c.info.entrypoint) != 0 ||
	    (c.info.updater_entrypoint[0] != '\0' &&
	    rp_check_exec(&c, "updater_entrypoint", c.info.updater_entrypoint) != 0) ||
	    (c.info.npreflight > 0 && strcmp(c.info.preflight[0], c.info.entrypoint) != 0 &&
	    rp_check_exec(&c, "preflight command", c.info.preflight[0]) != 0)) {
		err_set(err, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (strlcpy_chk(r.name, c.info.name, sizeof(r.name)) != 0 ||
	    strlcpy_chk(r.version, c.info.version, sizeof(r.version)) != 0) {
		err_set(err, ERR_FORMAT, "manifest name or version too long");
		goto out;
	}
	if (rp_output_path(&c, &r, err) != 0) {
		goto out;
	}
	/*
	 * First pass over the content: every file's digest for files.json and
	 * the key-material scan (even once refused, so every problem is named).
	 */
	for (size_t i = 0; i < c.n; i++) {
		if (c.v[i].type == RP_FILE && rp_stream_file(&c, &c.v[i], NULL, err) != 0) {
			goto out;
		}
	}
	if (c.ref.n == 0) {
		char *p = strdup(RELEASE_MANIFEST_FILE);
		if (p == NULL || entry_add(&c, p, RP_MANIFEST, NULL, NULL) != 0) {
			err_set(err, ERR_NOMEM, "out of memory");
			goto out;
		}
		qsort(c.v, c.n, sizeof(*c.v), entry_cmp);
		if (rp_files_json(&c, err) != 0) {
			goto out;
		}
	}
	if (c.ref.n == 0) {
		char *p = strdup(RELEASE_FILES_FILE);
		if (p == NULL || entry_add(&c, p, RP_FILES_JSON, NULL, NULL) != 0) {
			err_set(err, ERR_NOMEM, "out of memory");
			goto out;
		}
		qsort(c.v, c.n, sizeof(*c.v), entry_cmp);
		if (rp_write(&c, &r, err) != 0 && c.ref.n == 0) {
			goto out;
		}
	}
	if (c.ref.n > 0) {
		rp_refused(&c, err);
		if (refused != NULL) {
			*refused = c.ref;
			memset(&c.ref, 0, sizeof(c.ref));
		}
		goto out;
	}
	*res = r;
	rc = 0;
out:
	if (c.rootfd >= 0) {
		(void)close(c.rootfd);
	}
	entries_free(&c);
	release_pack_refusals_free(&c.ref);
	free(c.manifest);
	free(c.files_json);
	free(c.buf);
	digest_free(&c.sha);
	return rc;
}
