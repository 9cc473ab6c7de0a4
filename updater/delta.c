#include "updater/delta.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/release.h"
#include "common/testhook.h"
#include "common/zpatch.h"

#define DELTA_CHUNK (128 * 1024)

/* The slots a delta may copy from, in the order they are tried. */
static const char *const delta_slots[] = { "active", "prev" };

/* One local copy of a content: DIR/PATH (DIR one of the slots' or the staging). */
struct delta_src {
	char sha256[DIGEST_HEX_LEN + 1];
	const char *dir;   /* borrowed: the index's slot directory, or the staging */
	char *path;        /* owned */
	uint64_t size;     /* as files.json (or the scan) gives it */
};

struct delta_index {
	char dirs[2][PATH_MAX];
	struct delta_src *v;
	size_t n, cap;
	int sorted;
};

static int
delta_src_cmp(const void *a, const void *b)
{
	return strcmp(((const struct delta_src *)a)->sha256, ((const struct delta_src *)b)->sha256);
}

static int
delta_index_add(struct delta_index *ix, const char *sha256, const char *dir, const char *path,
    uint64_t size)
{
	struct delta_src *s;

	if (ix->n == ix->cap) {
		size_t ncap = ix->cap == 0 ? 256 : ix->cap * 2;
		struct delta_src *v = reallocarray(ix->v, ncap, sizeof(*v));

		if (v == NULL) {
			return -1;
		}
		ix->v = v;
		ix->cap = ncap;
	}
	s = &ix->v[ix->n];
	memcpy(s->sha256, sha256, sizeof(s->sha256));
	s->dir = dir;
	s->size = size;
	s->path = strdup(path);
	if (s->path == NULL) {
		return -1;
	}
	ix->n++;
	ix->sorted = 0;
	return 0;
}

static void
delta_index_sort(struct delta_index *ix)
{
	if (!ix->sorted && ix->n > 1) {
		/* Stable by slot order is not needed: every candidate is tried. */
		qsort(ix->v, ix->n, sizeof(*ix->v), delta_src_cmp);
	}
	ix->sorted = 1;
}

void
delta_index_free(struct delta_index *ix)
{
	if (ix == NULL) {
		return;
	}
	for (size_t i = 0; i < ix->n; i++) {
		free(ix->v[i].path);
	}
	free(ix->v);
	free(ix);
}

/* The first candidate of SHA256 in IX (sorted), or NULL; the others follow it. */
static const struct delta_src *
delta_index_first(const struct delta_index *ix, const char *sha256)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(ix->v[mid].sha256, sha256) < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo < ix->n && strcmp(ix->v[lo].sha256, sha256) == 0 ? &ix->v[lo] : NULL;
}

int
delta_index_has(const struct delta_index *ix, const char *sha256)
{
	return delta_index_first(ix, sha256) != NULL;
}

/*
 * The index cache of a release installed without files.json: the scan of
 * its tree in files.json form, ROOT/state/DELTA_CACHE_PREFIX<id>.json (the
 * install id of its release.json, new at every install, so another release
 * in the slot never matches). Advice like the index itself: every copy is
 * hashed again.
 */
#define DELTA_CACHE_PREFIX "delta-index-"

/* ROOT/state/delta-index-ID.json into OUT; -1 for an id that is not a plain name. */
static int
delta_cache_path(char *out, const char *root, const char *id)
{
	int n;

	if (id[0] == '\0' || strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") != strlen(id)) {
		return -1;
	}
	n = snprintf(out, PATH_MAX, "%s/state/" DELTA_CACHE_PREFIX "%s.json", root, id);
	return n < 0 || n >= PATH_MAX ? -1 : 0;
}

/* 0 with *F from the cache at P; -1 when missing or unusable (it is then rebuilt). */
static int
delta_cache_load(const char *p, struct release_files *f)
{
	struct err e = ERR_INIT;
	char *buf = NULL;
	size_t len = 0;
	int rc = -1;

	if (fs_read_file(p, RELEASE_FILES_MAX_BYTES, &buf, &len) != 0) {
		if (errno != ENOENT) {
			log_warn("delta: %s", p);
		}
		return -1;
	}
	if (release_files_parse(buf, len, f, &e) != 0) {
		log_warnx("delta: %s: %s; rebuilding it", p, err_msg(&e));
	} else {
		rc = 0;
	}
	free(buf);
	return rc;
}

static void
delta_cache_store(const char *p, const struct release_files *f)
{
	struct err e = ERR_INIT;
	char *out = NULL;
	size_t len = 0;

	if (release_files_format(f, &out, &len, &e) != 0) {
		log_warnx("delta: %s not written: %s", p, err_msg(&e));
		return;
	}
	if (fs_write_atomic(p, out, len, 0600) != 0) {
		log_warn("delta: %s not written", p);
	}
	free(out);
}

/* Remove ROOT/state's caches of installs that are in no slot (KEEP: the ids in a slot). */
static void
delta_cache_prune(const char *root, char keep[][RELEASE_ID_SIZE], size_t nkeep)
{
	char dir[PATH_MAX], p[PATH_MAX];
	const size_t plen = strlen(DELTA_CACHE_PREFIX);
	struct dirent *de;
	DIR *d;

	if (snprintf(dir, sizeof(dir), "%s/state", root) >= (int)sizeof(dir) ||
	    (d = opendir(dir)) == NULL) {
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name), k;

		if (n <= plen + 5 || strncmp(de->d_name, DELTA_CACHE_PREFIX, plen) != 0 ||
		    strcmp(de->d_name + n - 5, ".json") != 0) {
			continue;
		}
		for (k = 0; k < nkeep; k++) {
			if (strlen(keep[k]) == n - plen - 5 &&
			    strncmp(de->d_name + plen, keep[k], n - plen - 5) == 0) {
				break;
			}
		}
		if (k == nkeep && snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) < (int)sizeof(p) &&
		    unlink(p) != 0 && errno != ENOENT) {
			log_warn("delta: unlink %s", p);
		}
	}
	(void)closedir(d);
}

/*
 * The files of release directory DIR of tree ROOT: its files.json, else the
 * cached scan of this install (ID, from its release.json, "" without one),
 * else a hashing scan, then cached.
 */
static int
delta_slot_files(const char *root, const char *dir, const char *id, struct release_files *f)
{
	struct err e = ERR_INIT;
	char cache[PATH_MAX];
	int cached, r = release_files_read(dir, f, NULL, &e);

	if (r == 1) {
		return 0;
	}
	if (r < 0) {
		log_warnx("delta: %s; indexing the tree instead", err_msg(&e));
	}
	err_clear(&e);
	cached = delta_cache_path(cache, root, id) == 0;
	if (cached && delta_cache_load(cache, f) == 0) {
		return 0;
	}
	if (release_files_scan(dir, 0, f, &e) != 0) {
		log_warnx("delta: %s: not indexed: %s", dir, err_msg(&e));
		return -1;
	}
	if (cached) {
		delta_cache_store(cache, f);
	}
	return 0;
}

int
delta_index_build(const char *root, struct delta_index **out, struct err *e)
{
	struct delta_index *ix = calloc(1, sizeof(*ix));
	struct release_files f = RELEASE_FILES_INIT;
	char ids[ARRAY_LEN(delta_slots)][RELEASE_ID_SIZE];
	struct release_info ri;
	struct stat st;
	size_t nids = 0;
	int rc = -1;

	if (ix == NULL) {
		return err_set(e, ERR_NOMEM, "delta index: out of memory");
	}
	for (size_t s = 0; s < ARRAY_LEN(delta_slots); s++) {
		char *dir = ix->dirs[s];
		int n = snprintf(dir, PATH_MAX, "%s/releases/%s", root, delta_slots[s]);

		if (n < 0 || n >= PATH_MAX) {
			err_set(e, ERR_INTERNAL, "%s: path too long", root);
			goto out;
		}
		if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			continue;
		}
		/* Lenient: a record an older updater wrote still names its install. */
		if (release_record_read(dir, RELEASE_REC_LENIENT, &ri, NULL) != 1) {
			ri.id[0] = '\0';
		}
		memcpy(ids[nids++], ri.id, sizeof(ri.id));
		if (delta_slot_files(root, dir, ri.id, &f) != 0) {
			continue;
		}
		for (size_t i = 0; i < f.n; i++) {
			if (f.v[i].type == RELEASE_FILES_REG &&
			    delta_index_add(ix, f.v[i].sha256, dir, f.v[i].path, f.v[i].size) != 0) {
				err_set(e, ERR_NOMEM, "delta index: out of memory");
				goto out;
			}
		}
		release_files_free(&f);
	}
	delta_cache_prune(root, ids, nids);
	delta_index_sort(ix);
	*out = ix;
	ix = NULL;
	rc = 0;
out:
	release_files_free(&f);
	delta_index_free(ix);
	return rc;
}

/* ---- POST /update/plan ---- */

/* Missing entries by digest, then by their order in files.json (the first path first). */
static int
delta_entry_cmp(const void *a, const void *b)
{
	const struct release_files_entry *x = *(const struct release_files_entry *const *)a;
	const struct release_files_entry *y = *(const struct release_files_entry *const *)b;
	int c = strcmp(x->sha256, y->sha256);

	return c != 0 ? c : x < y ? -1 : x > y;
}

/* Index entries by path, active's before prev's (IX, the index, names the slots). */
static int
delta_bypath_cmp(const void *a, const void *b, void *ix)
{
	const struct delta_src *x = *(const struct delta_src *const *)a;
	const struct delta_src *y = *(const struct delta_src *const *)b;
	const char *active = ((const struct delta_index *)ix)->dirs[0];
	int c = strcmp(x->path, y->path);

	return c != 0 ? c : (x->dir != active) - (y->dir != active);
}

/*
 * "bases": for each missing content (its first path in files.json), the
 * digest of the regular file this host has at that path, active's else
 * prev's, when both sides are small enough to patch (common/zpatch).
 */
static int
delta_plan_bases(const struct delta_index *ix, const struct release_files_entry **missing,
    size_t n, cJSON *o)
{
	const struct delta_src **v = calloc(ix->n > 0 ? ix->n : 1, sizeof(*v));
	cJSON *bases = json_add_object(o, "bases");
	int rc = -1;

	if (v == NULL || bases == NULL) {
		goto out;
	}
	for (size_t i = 0; i < ix->n; i++) {
		v[i] = &ix->v[i];
	}
	qsort_r(v, ix->n, sizeof(*v), delta_bypath_cmp, (void *)(uintptr_t)ix);
	for (size_t i = 0; i < n; i++) {
		const struct release_files_entry *en = missing[i];
		size_t lo = 0, hi = ix->n;

		if ((i > 0 && strcmp(missing[i - 1]->sha256, en->sha256) == 0) ||
		    en->size > ZPATCH_MAX_FILE) {
			continue;
		}
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (strcmp(v[mid]->path, en->path) < 0) {
				lo = mid + 1;
			} else {
				hi = mid;
			}
		}
		if (lo < ix->n && strcmp(v[lo]->path, en->path) == 0 &&
		    v[lo]->size <= ZPATCH_MAX_FILE && v[lo]->size > 0 &&
		    json_add_str(bases, en->sha256, v[lo]->sha256) != 0) {
			goto out;
		}
	}
	rc = 0;
out:
	free(v);
	return rc;
}

cJSON *
delta_plan(const char *root, const char *body, size_t len, int bases, struct err *e)
{
	struct release_files f = RELEASE_FILES_INIT;
	struct delta_index *ix = NULL;
	struct release_info active;
	const struct release_files_entry **missing = NULL;
	unsigned long long mfiles = 0, mbytes = 0, rfiles = 0, rbytes = 0;
	size_t nmissing = 0;
	char dir[PATH_MAX];
	cJSON *o = NULL, *arr, *res = NULL;

	if (release_files_parse(body, len, &f, e) != 0) {
		err_rekind(e, ERR_BAD_REQUEST);
		goto out;
	}
	if (delta_index_build(root, &ix, e) != 0) {
		goto out;
	}
	missing = calloc(f.n > 0 ? f.n : 1, sizeof(*missing));
	if (missing == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < f.n; i++) {
		const struct release_files_entry *en = &f.v[i];

		if (en->type != RELEASE_FILES_REG) {
			continue;
		}
		if (delta_index_has(ix, en->sha256)) {
			rfiles++;
			rbytes += en->size;
		} else {
			mfiles++;
			mbytes += en->size;
			missing[nmissing++] = en;
		}
	}
	qsort(missing, nmissing, sizeof(*missing), delta_entry_cmp);
	(void)snprintf(dir, sizeof(dir), "%s/releases/active", root);
	if (release_record_read(dir, 0, &active, NULL) != 1) {
		active.id[0] = '\0';
	}
	o = cJSON_CreateObject();
	arr = o != NULL ? json_add_array(o, "missing") : NULL;
	if (arr == NULL) {
		goto nomem;
	}
	for (size_t i = 0; i < nmissing; i++) {
		if ((i == 0 || strcmp(missing[i - 1]->sha256, missing[i]->sha256) != 0) &&
		    json_array_add_str(arr, missing[i]->sha256) != 0) {
			goto nomem;
		}
	}
	if (json_add_int(o, "missing_files", (long long)mfiles) != 0 ||
	    json_add_int(o, "missing_bytes", (long long)mbytes) != 0 ||
	    json_add_int(o, "reuse_files", (long long)rfiles) != 0 ||
	    json_add_int(o, "reuse_bytes", (long long)rbytes) != 0 ||
	    json_add_str(o, "base", active.id) != 0) {
		goto nomem;
	}
	if (bases && delta_plan_bases(ix, missing, nmissing, o) != 0) {
		goto nomem;
	}
	res = o;
	o = NULL;
	goto out;
nomem:
	err_set(e, ERR_NOMEM, "out of memory");
out:
	cJSON_Delete(o);
	free(missing);
	delta_index_free(ix);
	release_files_free(&f);
	return res;
}

/* ---- assembly ---- */

/* One patch of the delta: TARGET's content from BASE's (common/zpatch). */
struct delta_patch {
	char target[DIGEST_HEX_LEN + 1];
	char base[DIGEST_HEX_LEN + 1];
	char *made;        /* the staging path it was written to, once applied */
};

struct delta_asm {
	const char *staging;
	const struct release_files *files;
	struct delta_index *ix;      /* local copies, then the received files */
	unsigned char *buf;
	uint64_t copied;
	struct delta_patch *patches; /* sorted by target */
	size_t npatches;
	int have_pdir;               /* the staging holds ZPATCH_DELTA_DIR (not a release entry) */
	uint64_t patched;            /* bytes made from patches */
	struct err *e;
};

static int
delta_path(char *out, const char *dir, const char *rel, struct err *e)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, rel);

	if (n < 0 || n >= PATH_MAX) {
		return err_set(e, ERR_INTERNAL, "%s/%.200s: path too long", dir, rel);
	}
	return 0;
}

/* SHA-256 and size of the regular file P (not followed if a symlink). */
static int
delta_hash_file(const char *p, char hex[DIGEST_HEX_LEN + 1], uint64_t *size, struct err *e)
{
	int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int rc;

	if (fd < 0) {
		return err_sys(e, "%s", p);
	}
	rc = digest_fd(fd, hex, size, e);
	(void)close(fd);
	return rc;
}

/*
 * Copy SRC to DST (new, mode MODE), hashing the bytes as they pass. 1 when
 * they are WANT (SIZE bytes), 0 when not (DST removed), -1 with E.
 */
static int
delta_copy(struct delta_asm *a, const char *src, const char *dst, const char *want,
    uint64_t size, unsigned mode)
{
	char hex[DIGEST_HEX_LEN + 1];
	struct digest d;
	uint64_t total = 0;
	int in = -1, out = -1, rc = -1;

	digest_init(&d);
	in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (in < 0) {
		rc = 0; /* gone or not a file: another copy may do */
		goto out;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		err_sys(a->e, "%s", dst);
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, a->buf, DELTA_CHUNK);

		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			rc = 0;
			goto out;
		}
		if (n == 0) {
			break;
		}
		total += (uint64_t)n;
		if (total > size) {
			rc = 0; /* grew: not this content */
			goto out;
		}
		digest_update(&d, a->buf, (size_t)n);
		if (fs_write_all(out, a->buf, (size_t)n) != 0) {
			err_sys(a->e, "%s", dst);
			goto out;
		}
	}
	if (digest_final(&d, hex) != 0) {
		err_set(a->e, ERR_INTERNAL, "sha256 failed");
		goto out;
	}
	if (total != size || strcmp(hex, want) != 0) {
		rc = 0;
		goto out;
	}
	if (fchmod(out, mode) != 0 || close(out) != 0) {
		out = -1;
		err_sys(a->e, "%s", dst);
		goto out;
	}
	out = -1;
	a->copied += size;
	rc = 1;
out:
	digest_free(&d);
	if (in >= 0) {
		(void)close(in);
	}
	if (out >= 0) {
		(void)close(out);
	}
	if (rc != 1 && unlink(dst) != 0 && errno != ENOENT) {
		log_warn("delta: unlink %s", dst);
	}
	return rc;
}

static int
delta_patch_cmp(const void *a, const void *b)
{
	return strcmp(((const struct delta_patch *)a)->target,
	    ((const struct delta_patch *)b)->target);
}

static int
delta_is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return 1;
}

/*
 * The patches the delta carries: STAGING/ZPATCH_DELTA_DIR (unless files.json
 * lists that path: then it is the release's own) holds only regular files
 * named TARGET-BASE.zst, two digests; nothing else.
 */
static int
delta_patches_list(struct delta_asm *a)
{
	const size_t want = 2 * DIGEST_HEX_LEN + 1 + strlen(ZPATCH_SUFFIX);
	char dir[PATH_MAX];
	struct dirent *de;
	struct stat st;
	size_t cap = 0;
	DIR *d;
	int rc = -1;

	if (release_files_find(a->files, ZPATCH_DELTA_DIR) != NULL) {
		return 0;
	}
	if (delta_path(dir, a->staging, ZPATCH_DELTA_DIR, a->e) != 0) {
		return -1;
	}
	if (lstat(dir, &st) != 0) {
		return errno == ENOENT ? 0 : err_sys(a->e, "%s", dir);
	}
	if (!S_ISDIR(st.st_mode) || (d = opendir(dir)) == NULL) {
		return err_set(a->e, ERR_DELTA_MISMATCH, "'%s': not a directory of patches",
		    ZPATCH_DELTA_DIR);
	}
	a->have_pdir = 1;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		struct delta_patch *pt;

		if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0) {
			continue;
		}
		if (strlen(nm) != want || !delta_is_hex(nm, DIGEST_HEX_LEN) ||
		    nm[DIGEST_HEX_LEN] != '-' || !delta_is_hex(nm + DIGEST_HEX_LEN + 1,
		    DIGEST_HEX_LEN) || strcmp(nm + 2 * DIGEST_HEX_LEN + 1, ZPATCH_SUFFIX) != 0 ||
		    fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
			err_set(a->e, ERR_DELTA_MISMATCH, "'%s/%.200s': not a patch", ZPATCH_DELTA_DIR,
			    nm);
			goto out;
		}
		if (a->npatches == cap) {
			size_t ncap = cap == 0 ? 16 : cap * 2;
			struct delta_patch *v = reallocarray(a->patches, ncap, sizeof(*v));

			if (v == NULL) {
				err_set(a->e, ERR_NOMEM, "out of memory");
				goto out;
			}
			a->patches = v;
			cap = ncap;
		}
		pt = &a->patches[a->npatches++];
		memcpy(pt->target, nm, DIGEST_HEX_LEN);
		pt->target[DIGEST_HEX_LEN] = '\0';
		memcpy(pt->base, nm + DIGEST_HEX_LEN + 1, DIGEST_HEX_LEN);
		pt->base[DIGEST_HEX_LEN] = '\0';
		pt->made = NULL;
	}
	if (a->npatches > 0) {
		qsort(a->patches, a->npatches, sizeof(*a->patches), delta_patch_cmp);
	}
	for (size_t i = 1; i < a->npatches; i++) {
		if (strcmp(a->patches[i - 1].target, a->patches[i].target) == 0) {
			err_set(a->e, ERR_DELTA_MISMATCH, "two patches for sha256 %.16s...",
			    a->patches[i].target);
			goto out;
		}
	}
	rc = 0;
out:
	(void)closedir(d);
	return rc;
}

static struct delta_patch *
delta_patch_find(struct delta_asm *a, const char *target)
{
	struct delta_patch key = { .made = NULL };

	if (a->npatches == 0) {
		return NULL;
	}
	memcpy(key.target, target, sizeof(key.target));
	return bsearch(&key, a->patches, a->npatches, sizeof(*a->patches), delta_patch_cmp);
}

/*
 * Read the regular file P whole into *OUT (malloc'd) when it has at most MAX
 * bytes; with WANT (a digest, may be NULL) only when its bytes have it, hashed
 * as they are read. 1 read, 0 not usable (gone, larger, other bytes), -1 with E.
 */
static int
delta_slurp(struct delta_asm *a, const char *p, size_t max, const char *want, void **out,
    size_t *outlen)
{
	char hex[DIGEST_HEX_LEN + 1];
	struct digest d;
	unsigned char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, rc = 0;

	*out = NULL;
	*outlen = 0;
	digest_init(&d);
	fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = err_set(a->e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			goto out;
		}
		if (n == 0) {
			break;
		}
		len += (size_t)n;
		if (len > (size_t)st.st_size) {
			goto out; /* grew while read */
		}
	}
	digest_update(&d, buf, len);
	if (digest_final(&d, hex) != 0) {
		rc = err_set(a->e, ERR_INTERNAL, "sha256 failed");
		goto out;
	}
	if (want != NULL && strcmp(hex, want) != 0) {
		goto out;
	}
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 1;
out:
	digest_free(&d);
	free(buf);
	if (fd >= 0) {
		(void)close(fd);
	}
	return rc;
}

/*
 * Make EN at staging path DST from patch PT: the base, found by digest in
 * the index (re-hashed as it is read: the agent may have changed it), the
 * patch applied within common/zpatch's limits, the output's digest checked.
 */
static int
delta_patch_apply(struct delta_asm *a, struct delta_patch *pt,
    const struct release_files_entry *en, const char *dst)
{
	char p[PATH_MAX], name[2 * DIGEST_HEX_LEN + 64], hex[DIGEST_HEX_LEN + 1];
	void *patch = NULL, *base = NULL, *out = NULL;
	size_t plen = 0, blen = 0;
	const struct delta_src *s;
	struct err ze = ERR_INIT;
	int fd = -1, created = 0, r, rc = -1;

	(void)snprintf(name, sizeof(name), "%s/%s-%s%s", ZPATCH_DELTA_DIR, pt->target, pt->base,
	    ZPATCH_SUFFIX);
	if (delta_path(p, a->staging, name, a->e) != 0) {
		return -1;
	}
	r = delta_slurp(a, p, ZPATCH_MAX_PATCH, NULL, &patch, &plen);
	if (r <= 0) {
		if (r == 0) {
			err_set(a->e, ERR_DELTA_MISMATCH, "'%.200s': its patch is unreadable or over %zu "
			    "bytes", en->path, ZPATCH_MAX_PATCH);
		}
		goto out;
	}
	s = delta_index_first(a->ix, pt->base);
	for (r = 0; r == 0 && s != NULL && s < a->ix->v + a->ix->n &&
	    strcmp(s->sha256, pt->base) == 0; s++) {
		if (delta_path(p, s->dir, s->path, a->e) != 0) {
			goto out;
		}
		r = delta_slurp(a, p, ZPATCH_MAX_FILE, pt->base, &base, &blen);
		if (r < 0) {
			goto out;
		}
		if (r == 0) {
			log_warnx("delta: %s no longer has the content files.json gave it; not used", p);
		}
	}
	if (r != 1) {
		err_set(a->e, ERR_DELTA_MISMATCH, "'%.200s': the base of its patch (sha256 %.16s...) "
		    "is not on this host", en->path, pt->base);
		goto out;
	}
	if (zpatch_apply(base, blen, patch, plen, en->size, &out, &ze) != 0) {
		err_set(a->e, ze.kind == ERR_NOMEM ? ERR_NOMEM : ERR_DELTA_MISMATCH, "'%.200s': %s",
		    en->path, err_msg(&ze));
		goto out;
	}
	if (digest_buf(out, en->size, hex) != 0 || strcmp(hex, en->sha256) != 0) {
		err_set(a->e, ERR_DELTA_MISMATCH, "'%.200s': its patch gives other content (sha256 "
		    "%.16s...)", en->path, hex);
		goto out;
	}
	fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	created = fd >= 0;
	if (fd < 0 || fs_write_all(fd, out, en->size) != 0 || fchmod(fd, en->mode) != 0) {
		err_sys(a->e, "%s", dst);
		goto out;
	}
	r = close(fd);
	fd = -1;
	if (r != 0) {
		err_sys(a->e, "%s", dst);
		goto out;
	}
	pt->made = strdup(dst);
	if (pt->made == NULL) {
		err_set(a->e, ERR_NOMEM, "out of memory");
		goto out;
	}
	a->patched += en->size;
	rc = 0;
out:
	if (fd >= 0) {
		(void)close(fd);
	}
	if (rc != 0 && created && unlink(dst) != 0 && errno != ENOENT) {
		log_warn("delta: unlink %s", dst);
	}
	free(patch);
	free(base);
	free(out);
	return rc;
}

/* Every received entry is in files.json with its type; received files have their digest. */
static int
delta_check_received(struct delta_asm *a)
{
	struct release_files got = RELEASE_FILES_INIT;
	char p[PATH_MAX], hex[DIGEST_HEX_LEN + 1];
	int rc = -1;

	if (release_files_scan(a->staging, RELEASE_FILES_NOHASH | RELEASE_FILES_PARTIAL, &got,
	    a->e) != 0) {
		err_rekind(a->e, ERR_DELTA_MISMATCH);
		goto out;
	}
	for (size_t i = 0; i < got.n; i++) {
		const struct release_files_entry *g = &got.v[i];
		const struct release_files_entry *w;
		uint64_t size = 0;

		/* The patches' directory is no release entry; its files were listed already. */
		if (a->have_pdir && strncmp(g->path, ZPATCH_DELTA_DIR, strlen(ZPATCH_DELTA_DIR)) == 0 &&
		    (g->path[strlen(ZPATCH_DELTA_DIR)] == '\0' ||
		    g->path[strlen(ZPATCH_DELTA_DIR)] == '/')) {
			continue;
		}
		w = release_files_find(a->files, g->path);
		if (g->type == RELEASE_FILES_SYMLINK) {
			err_set(a->e, ERR_DELTA_MISMATCH, "'%.200s': a delta carries no symlinks (they "
			    "come from files.json)", g->path);
			goto out;
		}
		if (w == NULL || w->type != g->type) {
			err_set(a->e, ERR_DELTA_MISMATCH, "'%.200s': %s", g->path, w == NULL ?
			    "not in files.json" : "not of the type files.json gives");
			goto out;
		}
		if (g->type != RELEASE_FILES_REG) {
			continue;
		}
		if (delta_path(p, a->staging, g->path, a->e) != 0 ||
		    delta_hash_file(p, hex, &size, a->e) != 0) {
			goto out;
		}
		if (size != w->size || strcmp(hex, w->sha256) != 0) {
			err_set(a->e, ERR_DELTA_MISMATCH, "'%.200s': the delta's file is not the one "
			    "files.json lists (sha256 %.16s..., %llu bytes)", g->path, hex,
			    (unsigned long long)size);
			goto out;
		}
		if (chmod(p, w->mode) != 0) {
			err_sys(a->e, "%s", p);
			goto out;
		}
		if (delta_index_add(a->ix, hex, a->staging, g->path, size) != 0) {
			err_set(a->e, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	delta_index_sort(a->ix);
	rc = 0;
out:
	release_files_free(&got);
	return rc;
}

/* Make entry EN of files.json in the staging when the delta did not bring it. */
static int
delta_make(struct delta_asm *a, const struct release_files_entry *en)
{
	char p[PATH_MAX], src[PATH_MAX];
	const struct delta_src *s;
	struct delta_patch *pt;
	struct stat st;

	if (delta_path(p, a->staging, en->path, a->e) != 0) {
		return -1;
	}
	if (lstat(p, &st) == 0) {
		/* Received (checked already): only a directory's mode may need setting. */
		if (en->type == RELEASE_FILES_DIR && chmod(p, en->mode) != 0) {
			return err_sys(a->e, "%s", p);
		}
		return 0;
	}
	if (errno != ENOENT) {
		return err_sys(a->e, "%s", p);
	}
	switch (en->type) {
	case RELEASE_FILES_DIR:
		if (mkdir(p, 0700) != 0 || chmod(p, en->mode) != 0) {
			return err_sys(a->e, "%s", p);
		}
		return 0;
	case RELEASE_FILES_SYMLINK:
		if (symlink(en->target, p) != 0) {
			return err_sys(a->e, "%s", p);
		}
		return 0;
	case RELEASE_FILES_REG:
		break;
	}
	pt = delta_patch_find(a, en->sha256);
	if (pt != NULL && pt->made == NULL) {
		return delta_patch_apply(a, pt, en, p);
	}
	if (pt != NULL && delta_copy(a, pt->made, p, en->sha256, en->size, en->mode) == 1) {
		return 0; /* the same content at another path: a copy of the one made */
	}
	s = delta_index_first(a->ix, en->sha256);
	for (; s != NULL && s < a->ix->v + a->ix->n && strcmp(s->sha256, en->sha256) == 0; s++) {
		int r;

		if (delta_path(src, s->dir, s->path, a->e) != 0) {
			return -1;
		}
		r = delta_copy(a, src, p, en->sha256, en->size, en->mode);
		if (r != 0) {
			return r < 0 ? -1 : 0;
		}
		log_warnx("delta: %s no longer has the content files.json gave it; not used", src);
	}
	return err_set(a->e, ERR_DELTA_MISMATCH, "'%.200s': no copy of its content (sha256 "
	    "%.16s...) on this host and none in the delta", en->path, en->sha256);
}

/* The staging, walked again, is exactly files.json (the digests were checked on the way in). */
static int
delta_verify(struct delta_asm *a)
{
	struct release_files got = RELEASE_FILES_INIT;
	const struct release_files *w = a->files;
	int rc = -1;

	if (release_files_scan(a->staging, RELEASE_FILES_NOHASH, &got, a->e) != 0) {
		err_rekind(a->e, ERR_DELTA_MISMATCH);
		goto out;
	}
	for (size_t i = 0, j = 0; i < got.n || j < w->n; i++, j++) {
		const struct release_files_entry *g = i < got.n ? &got.v[i] : NULL;
		const struct release_files_entry *x = j < w->n ? &w->v[j] : NULL;

		if (g == NULL || x == NULL || strcmp(g->path, x->path) != 0) {
			err_set(a->e, ERR_DELTA_MISMATCH, "the assembled tree differs from files.json "
			    "at '%.200s'", g == NULL ? x->path : x == NULL ? g->path :
			    strcmp(g->path, x->path) < 0 ? g->path : x->path);
			goto out;
		}
		if (g->type != x->type || g->mode != x->mode ||
		    (x->type == RELEASE_FILES_REG && g->size != x->size) ||
		    (x->type == RELEASE_FILES_SYMLINK && strcmp(g->target, x->target) != 0)) {
			err_set(a->e, ERR_DELTA_MISMATCH, "'%.200s': the assembled entry is not the one "
			    "files.json lists", x->path);
			goto out;
		}
	}
	rc = 0;
out:
	release_files_free(&got);
	return rc;
}

int
delta_assemble(const char *root, const char *staging, const struct release_files *files,
    const struct delta_limits *lim, uint64_t *copied_bytes, struct err *e)
{
	struct delta_asm a;
	unsigned long long avail;
	uint64_t total = 0;
	int rc = -1;

	memset(&a, 0, sizeof(a));
	a.staging = staging;
	a.files = files;
	a.e = e;
	for (size_t i = 0; i < files->n; i++) {
		if (files->v[i].type == RELEASE_FILES_REG) {
			total += files->v[i].size;
		}
	}
	/* A short files.json may name one big local file many times: the full push's limits. */
	if (lim->max_entries > 0 && files->n > lim->max_entries) {
		return err_set(e, ERR_LIMIT, "files.json: more than %llu entries",
		    (unsigned long long)lim->max_entries);
	}
	if (lim->max_unpacked > 0 && total > lim->max_unpacked) {
		return err_set(e, ERR_LIMIT, "files.json: its files hold more than %llu bytes",
		    (unsigned long long)lim->max_unpacked);
	}
	if (fs_free_bytes(staging, &avail) == 0 && avail < total + lim->min_free) {
		return err_set(e, ERR_NOSPACE, "not enough disk space to assemble the release: %llu "
		    "bytes free, %llu required", avail, (unsigned long long)(total + lim->min_free));
	}
	a.buf = malloc(DELTA_CHUNK);
	if (a.buf == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	if (delta_index_build(root, &a.ix, e) != 0 || delta_patches_list(&a) != 0 ||
	    delta_check_received(&a) != 0) {
		goto out;
	}
	for (size_t i = 0; i < files->n; i++) {
		if (delta_make(&a, &files->v[i]) != 0) {
			goto out;
		}
	}
	if (a.have_pdir) {
		char pdir[PATH_MAX];

		if (delta_path(pdir, staging, ZPATCH_DELTA_DIR, e) != 0) {
			goto out;
		}
		if (fs_rmtree(pdir) != 0) {
			err_sys(e, "%s", pdir);
			goto out;
		}
		log_info("delta: %zu patches gave %llu bytes", a.npatches,
		    (unsigned long long)a.patched);
	}
	testhook_point("delta.assembled");
	if (delta_verify(&a) != 0) {
		goto out;
	}
	if (copied_bytes != NULL) {
		*copied_bytes = a.copied;
	}
	rc = 0;
out:
	for (size_t i = 0; i < a.npatches; i++) {
		free(a.patches[i].made);
	}
	free(a.patches);
	free(a.buf);
	delta_index_free(a.ix);
	return rc;
}
