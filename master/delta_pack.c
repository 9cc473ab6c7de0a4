#include "master/delta_pack.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/release_check.h"
#include "common/release_files.h"
#include "common/zpatch.h"
#include "master/release_pack.h"

#define DP_CHUNK (64 * 1024)
/* Bases held in memory at once while a delta is built. */
#define DP_BASES_MAX ((uint64_t)256 * 1024 * 1024)

/* A base a patch may be made against: its bytes once read from a source. */
struct dp_base {
	char hex[DIGEST_HEX_LEN + 1];
	unsigned char *buf;   /* NULL until read */
	size_t len;
	int in_source;        /* the source being read has it */
	int borrowed;         /* BUF is a prefetch's: not freed here */
};

/* One digest the host lacks; SENT once a file with it is in the delta. */
struct dp_want {
	char hex[DIGEST_HEX_LEN + 1];
	int named; /* files.json has a file with it */
	int sent;
	uint64_t size;          /* as files.json gives it (when named) */
	struct dp_base *base;   /* what the host has at its path, when known */
};

/* A file that waits, read, for the bases to be read (see dp_bases_thread). */
struct dp_pending {
	struct dp_want *want;
	const struct release_files_entry *en;
	unsigned char *buf;
	size_t len;
};

struct dp_ctx {
	struct release_tgz_out out;
	struct dp_want *want;
	size_t n_want;
	struct dp_base *bases;       /* written by the bases' thread until BASES_READY */
	size_t n_bases;
	int bases_ready;             /* the bases are read (or never will be) */
	const struct delta_pack_patches *pp;
	struct dp_pending *pending;
	size_t n_pending, cap_pending;
	uint64_t pending_bytes;
	int pdir_written;       /* ZPATCH_DELTA_DIR's header is in the delta */
	unsigned char *buf;
};

static int
dp_want_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dp_want *)a)->hex, ((const struct dp_want *)b)->hex);
}

static struct dp_want *
dp_want_find(struct dp_ctx *c, const char *hex)
{
	struct dp_want key = { .named = 0 };

	if (strlen(hex) != DIGEST_HEX_LEN) {
		return NULL;
	}
	memcpy(key.hex, hex, sizeof(key.hex));
	return bsearch(&key, c->want, c->n_want, sizeof(*c->want), dp_want_cmp);
}

static int
dp_read_open(const char *tgz, struct archive **out, struct err *e)
{
	struct archive *a = archive_read_new();

	*out = NULL;
	if (a == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK) {
		err_set(e, ERR_INTERNAL, "libarchive: %s", archive_error_string(a));
		archive_read_free(a);
		return -1;
	}
	if (archive_read_open_filename(a, tgz, DP_CHUNK) != ARCHIVE_OK) {
		int saved = archive_errno(a);

		if (saved > 0 && saved != EILSEQ /* libarchive: not a format it reads */) {
			errno = saved;
			err_sys(e, "%s", tgz);
		} else {
			err_set(e, ERR_FORMAT, "%s: %s", tgz, archive_error_string(a));
		}
		archive_read_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

/* The member A is positioned on, whole, into *OUT (at most MAX bytes). */
static int
dp_read_member(struct archive *a, const char *what, size_t max, char **out, size_t *outlen,
    struct err *e)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	la_ssize_t n;

	*out = NULL;
	*outlen = 0;
	for (;;) {
		if (cap - len < DP_CHUNK) {
			size_t ncap = cap == 0 ? DP_CHUNK : cap * 2;
			char *nb;

			if (ncap > max + DP_CHUNK) {
				ncap = max + DP_CHUNK;
			}
			nb = realloc(buf, ncap);
			if (nb == NULL) {
				free(buf);
				return err_set(e, ERR_NOMEM, "out of memory");
			}
			buf = nb;
			cap = ncap;
		}
		n = archive_read_data(a, buf + len, cap - len);
		if (n < 0) {
			err_set(e, ERR_FORMAT, "%s: %s", what, archive_error_string(a));
			free(buf);
			return -1;
		}
		if (n == 0) {
			break;
		}
		len += (size_t)n;
		if (len > max) {
			free(buf);
			return err_set(e, ERR_LIMIT, "%s: more than %zu bytes", what, max);
		}
	}
	*out = buf;
	*outlen = len;
	return 0;
}

int
delta_pack_files_json(const char *tgz, char **out, size_t *outlen, struct err *e)
{
	struct release_files rf = RELEASE_FILES_INIT;
	struct archive_entry *ae;
	struct archive *a;
	int r, rc = -1;

	*out = NULL;
	*outlen = 0;
	if (dp_read_open(tgz, &a, e) != 0) {
		return -1;
	}
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		const char *p = archive_entry_pathname(ae);

		if (p == NULL || strcmp(p, RELEASE_FILES_FILE) != 0 ||
		    archive_entry_filetype(ae) != AE_IFREG) {
			continue;
		}
		if (dp_read_member(a, RELEASE_FILES_FILE, RELEASE_FILES_MAX_BYTES, out, outlen,
		    e) != 0) {
			goto out;
		}
		if (release_files_parse(*out, *outlen, &rf, e) != 0) {
			err_prefix(e, "%s: %s", tgz, RELEASE_FILES_FILE);
			free(*out);
			*out = NULL;
			*outlen = 0;
			goto out;
		}
		rc = 1;
		goto out;
	}
	if (r != ARCHIVE_EOF) {
		err_set(e, ERR_FORMAT, "%s: %s", tgz, archive_error_string(a));
		goto out;
	}
	rc = 0;
out:
	release_files_free(&rf);
	archive_read_free(a);
	return rc;
}

/* The files.json of the release tarball TGZ, parsed into RF (0), or -1 with E. */
static int
dp_files_of(const char *tgz, struct release_files *rf, struct err *e)
{
	char *fj = NULL;
	size_t fjlen = 0;
	int st, rc = -1;

	st = delta_pack_files_json(tgz, &fj, &fjlen, e);
	if (st == 1) {
		rc = release_files_parse(fj, fjlen, rf, e);
	} else if (st == 0) {
		err_set(e, ERR_FORMAT, "%s: no %s", tgz, RELEASE_FILES_FILE);
	}
	free(fj);
	return rc;
}

/* A header as the packer writes it: no owner, no time, MODE. */
static int
dp_header(struct archive *w, const char *path, unsigned mode, unsigned long long size,
    struct err *e)
{
	if (release_pack_tgz_header(w, path, mode, AE_IFREG, size, NULL, e) != 0) {
		err_prefix(e, "delta");
		return -1;
	}
	return 0;
}

static int
dp_write_data(struct archive *w, const char *path, const void *buf, size_t len, struct err *e)
{
	if (len > 0 && archive_write_data(w, buf, len) != (la_ssize_t)len) {
		return err_set(e, archive_errno(w) == ENOSPC ? ERR_NOSPACE : ERR_IO,
		    "delta: %s: %s", path, archive_error_string(w));
	}
	return 0;
}

/* Copy the member R is on (entry EN of files.json) into W, checking its digest. */
static int
dp_copy_file(struct dp_ctx *c, struct archive *r, struct archive *w,
    const struct release_files_entry *en, struct err *e)
{
	char hex[DIGEST_HEX_LEN + 1];
	unsigned long long total = 0;
	struct digest d;
	la_ssize_t n;
	int rc = -1;

	digest_init(&d);
	if (dp_header(w, en->path, en->mode, en->size, e) != 0) {
		goto out;
	}
	while ((n = archive_read_data(r, c->buf, DP_CHUNK)) > 0) {
		total += (unsigned long long)n;
		if (total > en->size) {
			err_set(e, ERR_FORMAT, "%s: longer than files.json says (%llu bytes)",
			    en->path, (unsigned long long)en->size);
			goto out;
		}
		digest_update(&d, c->buf, (size_t)n);
		if (dp_write_data(w, en->path, c->buf, (size_t)n, e) != 0) {
			goto out;
		}
	}
	if (n < 0) {
		err_set(e, ERR_FORMAT, "%s: %s", en->path, archive_error_string(r));
		goto out;
	}
	if (digest_final(&d, hex) != 0) {
		err_set(e, ERR_INTERNAL, "sha256 failed");
		goto out;
	}
	if (total != en->size || strcmp(hex, en->sha256) != 0) {
		err_set(e, ERR_FORMAT, "%s: not the content files.json gives it (sha256 %.16s..., "
		    "%llu bytes)", en->path, hex, total);
		goto out;
	}
	if (archive_write_finish_entry(w) != ARCHIVE_OK) {
		err_set(e, ERR_IO, "delta: %s: %s", en->path, archive_error_string(w));
		goto out;
	}
	rc = 0;
out:
	digest_free(&d);
	return rc;
}

/* Set up the wanted digests: sorted, unique, marked when files.json names them. */
static int
dp_wants(struct dp_ctx *c, const struct release_files *rf, const char *const *missing,
    size_t n_missing, struct err *e)
{
	size_t k = 0;

	c->want = calloc(n_missing == 0 ? 1 : n_missing, sizeof(*c->want));
	if (c->want == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < n_missing; i++) {
		/* A plan comes from the host: a string that is no digest matches nothing. */
		if (missing[i] != NULL && strnlen(missing[i], DIGEST_HEX_LEN + 1) == DIGEST_HEX_LEN) {
			memcpy(c->want[k++].hex, missing[i], DIGEST_HEX_LEN + 1);
		}
	}
	qsort(c->want, k, sizeof(*c->want), dp_want_cmp);
	c->n_want = 0;
	for (size_t i = 0; i < k; i++) {
		if (c->n_want == 0 || strcmp(c->want[c->n_want - 1].hex, c->want[i].hex) != 0) {
			c->want[c->n_want++] = c->want[i];
		}
	}
	for (size_t i = 0; i < rf->n; i++) {
		struct dp_want *w;

		if (rf->v[i].type == RELEASE_FILES_REG &&
		    (w = dp_want_find(c, rf->v[i].sha256)) != NULL && !w->named) {
			w->named = 1;
			w->size = rf->v[i].size;
		}
	}
	return 0;
}

/* ---- patches ---- */

/* The wanted digests' bases (PP): one dp_base per distinct base digest. */
static int
dp_bases_plan(struct dp_ctx *c, const struct release_files *rf,
    const struct delta_pack_patches *pp, struct err *e)
{
	if (pp == NULL || pp->n == 0 || release_files_find(rf, ZPATCH_DELTA_DIR) != NULL) {
		return 0;
	}
	c->bases = calloc(pp->n, sizeof(*c->bases));
	if (c->bases == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < pp->n; i++) {
		struct dp_want *w = pp->v[i].target != NULL ? dp_want_find(c, pp->v[i].target) : NULL;
		const char *b = pp->v[i].base;
		size_t k;

		if (w == NULL || !w->named || w->base != NULL || w->size == 0 ||
		    w->size > ZPATCH_MAX_FILE || b == NULL ||
		    strnlen(b, DIGEST_HEX_LEN + 1) != DIGEST_HEX_LEN || strcmp(b, w->hex) == 0) {
			continue;
		}
		for (k = 0; k < c->n_bases && strcmp(c->bases[k].hex, b) != 0; k++) {
		}
		if (k == c->n_bases) {
			memcpy(c->bases[c->n_bases++].hex, b, DIGEST_HEX_LEN + 1);
		}
		w->base = &c->bases[k];
	}
	return 0;
}

static struct dp_base *
dp_base_find(struct dp_base *bases, size_t n, const char *hex)
{
	for (size_t k = 0; k < n; k++) {
		if (strcmp(bases[k].hex, hex) == 0) {
			return &bases[k];
		}
	}
	return NULL;
}

/* The member A is on, whole (it has SIZE bytes by files.json), if its bytes are HEX. */
static int
dp_read_checked(struct archive *a, const char *path, uint64_t size, const char *hex,
    unsigned char **out, size_t *outlen, struct err *e)
{
	char got[DIGEST_HEX_LEN + 1];
	char *buf;
	size_t len;

	if (dp_read_member(a, path, (size_t)size, &buf, &len, e) != 0) {
		return -1;
	}
	if (len != size || digest_buf(buf, len, got) != 0 || strcmp(got, hex) != 0) {
		free(buf);
		return err_set(e, ERR_FORMAT, "%s: not the content files.json gives it", path);
	}
	*out = (unsigned char *)buf;
	*outlen = len;
	return 0;
}

/*
 * Read from the release tarball SRC, whose files.json is RF, the WANTED of
 * the N BASES marked in_source and not read yet, each checked against RF.
 */
static int
dp_bases_read(const char *src, const struct release_files *rf, struct dp_base *bases, size_t n,
    size_t wanted, struct err *e)
{
	struct archive_entry *ae;
	struct archive *a = NULL;
	int rc = -1;

	if (dp_read_open(src, &a, e) != 0) {
		return -1;
	}
	while (wanted > 0 && archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		const char *p = archive_entry_pathname(ae);
		const struct release_files_entry *en;
		struct dp_base *b;

		if (p == NULL || archive_entry_filetype(ae) != AE_IFREG ||
		    (en = release_files_find(rf, p)) == NULL || en->type != RELEASE_FILES_REG ||
		    (b = dp_base_find(bases, n, en->sha256)) == NULL || !b->in_source ||
		    b->buf != NULL) {
			continue;
		}
		if (dp_read_checked(a, p, en->size, en->sha256, &b->buf, &b->len, e) != 0) {
			err_prefix(e, "%s", src);
			goto out;
		}
		wanted--;
	}
	rc = 0;
out:
	archive_read_free(a);
	return rc;
}

/* Read from the release tarball SRC the bases it has that are not read yet. */
static int
dp_bases_from(struct dp_ctx *c, const char *src, uint64_t *budget, struct err *e)
{
	struct release_files srf = RELEASE_FILES_INIT;
	size_t wanted = 0;
	int rc = -1;

	if (dp_files_of(src, &srf, e) != 0) {
		goto out;
	}
	for (size_t k = 0; k < c->n_bases; k++) {
		c->bases[k].in_source = 0;
	}
	for (size_t i = 0; i < srf.n; i++) {
		struct dp_base *b;

		if (srf.v[i].type == RELEASE_FILES_REG &&
		    (b = dp_base_find(c->bases, c->n_bases, srf.v[i].sha256)) != NULL && b->buf == NULL &&
		    !b->in_source && srf.v[i].size <= ZPATCH_MAX_FILE && srf.v[i].size <= *budget) {
			b->in_source = 1;
			*budget -= srf.v[i].size;
			wanted++;
		}
	}
	rc = wanted == 0 ? 0 : dp_bases_read(src, &srf, c->bases, c->n_bases, wanted, e);
out:
	release_files_free(&srf);
	return rc;
}

/* Read the bases PP's sources hold, each source once, until every one is read. */
static void
dp_bases_load(struct dp_ctx *c, const struct delta_pack_patches *pp)
{
	/* Only this function writes the bases until the caller sees BASES_READY. */
	uint64_t budget = DP_BASES_MAX;

	for (size_t s = 0; s < pp->n_sources && c->n_bases > 0; s++) {
		struct err e = ERR_INIT;
		size_t left = 0;

		for (size_t k = 0; k < c->n_bases; k++) {
			left += c->bases[k].buf == NULL;
		}
		if (left == 0) {
			break;
		}
		if (dp_bases_from(c, pp->sources[s], &budget, &e) != 0) {
			log_warnx("delta: no bases from %s: %s", pp->sources[s], err_msg(&e));
		}
	}
}

/* A directory header as the packer writes it. */
static int
dp_pdir(struct dp_ctx *c, struct archive *w, struct err *e)
{
	if (c->pdir_written) {
		return 0;
	}
	if (release_pack_tgz_header(w, ZPATCH_DELTA_DIR, 0755, AE_IFDIR, 0, NULL, e) != 0) {
		err_prefix(e, "delta");
		return -1;
	}
	c->pdir_written = 1;
	return 0;
}

/*
 * File EN (wanted WT), its bytes T (TLEN) read and checked: as a patch against
 * its base when the base was read and the patch is at most half of what the
 * file costs compressed whole, else whole.
 */
static int
dp_emit(struct dp_ctx *c, struct archive *w, struct dp_want *wt,
    const struct release_files_entry *en, const unsigned char *t, size_t tlen,
    struct delta_pack_result *res, struct err *e)
{
	char name[sizeof(ZPATCH_DELTA_DIR) + 2 * DIGEST_HEX_LEN + sizeof(ZPATCH_SUFFIX) + 2];
	void *patch = NULL;
	size_t plen = 0;
	struct err ze = ERR_INIT;
	int rc = -1;

	if (wt->base == NULL || wt->base->buf == NULL) {
		/* no base: whole */
	} else if (zpatch_make(wt->base->buf, wt->base->len, t, tlen, &patch, &plen, &ze) != 0) {
		log_warnx("delta: %s: %s; sent whole", en->path, err_msg(&ze));
	} else if (plen * 2 > zpatch_whole_estimate(t, tlen)) {
		free(patch);
		patch = NULL;
	}
	if (patch != NULL) {
		(void)snprintf(name, sizeof(name), "%s/%s-%s%s", ZPATCH_DELTA_DIR, en->sha256,
		    wt->base->hex, ZPATCH_SUFFIX);
		if (dp_pdir(c, w, e) != 0 || dp_header(w, name, 0644, plen, e) != 0 ||
		    dp_write_data(w, name, patch, plen, e) != 0) {
			goto out;
		}
		res->patched++;
		res->patch_bytes += plen;
	} else if (dp_header(w, en->path, en->mode, en->size, e) != 0 ||
	    dp_write_data(w, en->path, t, tlen, e) != 0) {
		goto out;
	}
	if (archive_write_finish_entry(w) != ARCHIVE_OK) {
		err_set(e, ERR_IO, "delta: %s: %s", en->path, archive_error_string(w));
		goto out;
	}
	rc = 0;
out:
	free(patch);
	return rc;
}

/*
 * The member R is on (entry EN, wanted WT that has a base): read whole; sent
 * now when the bases are read, else kept until they are (within
 * DP_BASES_MAX bytes of kept files; beyond, sent whole now).
 */
static int
dp_patch_file(struct dp_ctx *c, struct archive *r, struct archive *w, struct dp_want *wt,
    const struct release_files_entry *en, struct delta_pack_result *res, struct err *e)
{
	unsigned char *t = NULL;
	size_t tlen = 0;
	int rc;

	if (!c->bases_ready && c->pending_bytes + en->size > DP_BASES_MAX) {
		return dp_copy_file(c, r, w, en, e);
	}
	if (dp_read_checked(r, en->path, en->size, en->sha256, &t, &tlen, e) != 0) {
		return -1;
	}
	if (!c->bases_ready) {
		if (c->n_pending == c->cap_pending) {
			size_t ncap = c->cap_pending == 0 ? 16 : c->cap_pending * 2;
			struct dp_pending *v = reallocarray(c->pending, ncap, sizeof(*v));

			if (v == NULL) {
				free(t);
				return err_set(e, ERR_NOMEM, "out of memory");
			}
			c->pending = v;
			c->cap_pending = ncap;
		}
		c->pending[c->n_pending++] = (struct dp_pending){ wt, en, t, tlen };
		c->pending_bytes += tlen;
		return 0;
	}
	rc = dp_emit(c, w, wt, en, t, tlen, res, e);
	free(t);
	return rc;
}

/* The bases' reader, beside the pass over the release (two decompressions at once). */
static void *
dp_bases_thread(void *arg)
{
	struct dp_ctx *c = arg;

	dp_bases_load(c, c->pp);
	return NULL;
}

/* Stream R's members into W: the wanted files once each; check R's files.json is FJ. */
static int
dp_stream(struct dp_ctx *c, const char *tgz, struct archive *r, struct archive *w,
    const struct release_files *rf, const char *fj, size_t fjlen,
    struct delta_pack_result *res, struct err *e)
{
	struct archive_entry *ae;
	int st, seen_fj = 0;

	while ((st = archive_read_next_header(r, &ae)) == ARCHIVE_OK) {
		const char *p = archive_entry_pathname(ae);
		const struct release_files_entry *en;
		struct dp_want *wt;

		if (p == NULL || archive_entry_filetype(ae) != AE_IFREG) {
			continue;
		}
		if (strcmp(p, RELEASE_FILES_FILE) == 0) {
			char *b;
			size_t blen;
			int same;

			if (dp_read_member(r, p, RELEASE_FILES_MAX_BYTES, &b, &blen, e) != 0) {
				return -1;
			}
			same = blen == fjlen && memcmp(b, fj, fjlen) == 0;
			free(b);
			if (!same) {
				return err_set(e, ERR_FORMAT, "%s: its files.json is not the one "
				    "planned with", tgz);
			}
			seen_fj = 1;
			continue;
		}
		en = release_files_find(rf, p);
		if (en == NULL || en->type != RELEASE_FILES_REG ||
		    (wt = dp_want_find(c, en->sha256)) == NULL || wt->sent) {
			continue;
		}
		if (wt->base != NULL && (!c->bases_ready || wt->base->buf != NULL)) {
			if (dp_patch_file(c, r, w, wt, en, res, e) != 0) {
				return -1;
			}
		} else if (dp_copy_file(c, r, w, en, e) != 0) {
			return -1;
		}
		wt->sent = 1;
		res->files++;
		res->content += en->size;
	}
	if (st != ARCHIVE_EOF) {
		return err_set(e, ERR_FORMAT, "%s: %s", tgz, archive_error_string(r));
	}
	if (!seen_fj) {
		return err_set(e, ERR_FORMAT, "%s: no files.json", tgz);
	}
	for (size_t i = 0; i < c->n_want; i++) {
		if (c->want[i].named && !c->want[i].sent) {
			return err_set(e, ERR_FORMAT, "%s: no member has sha256 %.16s... that "
			    "files.json lists", tgz, c->want[i].hex);
		}
	}
	return 0;
}

/* ---- prefetch: the files a host lacks, kept by the check's pass ---- */

/* One file kept: its bytes and, once done, its files.json entry. */
struct dp_kept {
	char *name;                         /* as in the archive */
	char got[DIGEST_HEX_LEN + 1];       /* the digest of its bytes */
	unsigned char *buf;
	size_t len;
	const struct release_files_entry *en; /* after delta_pack_prefetch_done() */
};

struct delta_pack_prefetch {
	struct release_check_visitor v;
	char (*known)[DIGEST_HEX_LEN + 1];  /* the reference releases' digests, sorted */
	size_t n_known;
	uint64_t budget, used;
	int off;                            /* nothing is kept (and nothing will be) */
	int ready;                          /* done: checked against files.json */
	char *fj;                           /* the release's files.json, NULL until read */
	size_t fj_len;
	struct release_files rf;            /* FJ parsed (when FJ_OK) */
	int fj_ok;
	/* the entry being read */
	int cur;                            /* 0 none, 1 files.json, 2 a file to keep */
	struct digest d;
	int d_live;
	char *cbuf;
	size_t clen, ccap;
	char *cname;
	struct dp_kept *kept;
	size_t n_kept, cap_kept;
	/*
	 * Bases: the newest reference release's files at the paths of the files
	 * it does not have, read by a thread beside the check once files.json is
	 * (a patch is made against the host's file at the same path).
	 */
	char ref[PATH_MAX];                 /* "" without a reference */
	struct release_files ref_rf;
	struct dp_base *bases;              /* sorted by digest; written by the thread */
	size_t n_bases;
	pthread_t th;
	int th_running;
};

static int
dp_hex_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIGEST_HEX_LEN);
}

static int
dp_known(const struct delta_pack_prefetch *pf, const char *hex)
{
	return pf->n_known > 0 &&
	    bsearch(hex, pf->known, pf->n_known, sizeof(*pf->known), dp_hex_cmp) != NULL;
}

static void
dp_pf_drop_cur(struct delta_pack_prefetch *pf)
{
	if (pf->d_live) {
		digest_free(&pf->d);
		pf->d_live = 0;
	}
	if (pf->cur == 2 && pf->used >= pf->ccap) {
		pf->used -= pf->ccap;
	}
	free(pf->cbuf);
	free(pf->cname);
	pf->cbuf = NULL;
	pf->cname = NULL;
	pf->clen = pf->ccap = 0;
	pf->cur = 0;
}

static void
dp_pf_give_up(struct delta_pack_prefetch *pf)
{
	dp_pf_drop_cur(pf);
	for (size_t i = 0; i < pf->n_kept; i++) {
		free(pf->kept[i].name);
		free(pf->kept[i].buf);
	}
	free(pf->kept);
	pf->kept = NULL;
	pf->n_kept = pf->cap_kept = 0;
	pf->used = 0;
	pf->off = 1;
}

static int
dp_entry_sha_cmp(const void *a, const void *b)
{
	return strcmp((*(const struct release_files_entry *const *)a)->sha256,
	    (*(const struct release_files_entry *const *)b)->sha256);
}

static int
dp_base_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dp_base *)a)->hex, ((const struct dp_base *)b)->hex);
}

/* The reference's bases, read once (runs beside the check: touches only BASES' bytes). */
static void *
dp_pf_bases_thread(void *arg)
{
	struct delta_pack_prefetch *pf = arg;
	struct err e = ERR_INIT;

	for (size_t k = 0; k < pf->n_bases; k++) {
		pf->bases[k].in_source = 1;
	}
	if (dp_bases_read(pf->ref, &pf->ref_rf, pf->bases, pf->n_bases, pf->n_bases, &e) != 0) {
		log_warnx("delta: no more bases read beside the check: %s", err_msg(&e));
	}
	return NULL;
}

/*
 * Files.json of the new release is read: the reference's files at the paths
 * of the new files are the bases a host running it names; read them beside
 * the check when they fit in the budget (else a delta reads its own).
 */
static void
dp_pf_plan_bases(struct delta_pack_prefetch *pf)
{
	uint64_t total = 0;
	size_t k = 0;

	if (pf->ref[0] == '\0' || pf->ref_rf.n == 0) {
		return;
	}
	pf->bases = calloc(pf->rf.n > 0 ? pf->rf.n : 1, sizeof(*pf->bases));
	if (pf->bases == NULL) {
		return;
	}
	for (size_t i = 0; i < pf->rf.n; i++) {
		const struct release_files_entry *en = &pf->rf.v[i], *old;

		if (en->type != RELEASE_FILES_REG || dp_known(pf, en->sha256) || en->size == 0 ||
		    en->size > ZPATCH_MAX_FILE ||
		    (old = release_files_find(&pf->ref_rf, en->path)) == NULL ||
		    old->type != RELEASE_FILES_REG || old->size == 0 ||
		    old->size > ZPATCH_MAX_FILE) {
			continue;
		}
		memcpy(pf->bases[k++].hex, old->sha256, DIGEST_HEX_LEN + 1);
		total += old->size;
	}
	if (k == 0 || total > pf->budget) {
		free(pf->bases);
		pf->bases = NULL;
		return;
	}
	qsort(pf->bases, k, sizeof(*pf->bases), dp_base_cmp);
	pf->n_bases = 0;
	for (size_t i = 0; i < k; i++) {
		if (pf->n_bases == 0 || strcmp(pf->bases[pf->n_bases - 1].hex, pf->bases[i].hex) != 0) {
			pf->bases[pf->n_bases++] = pf->bases[i];
		}
	}
	pf->th_running = pthread_create(&pf->th, NULL, dp_pf_bases_thread, pf) == 0;
	if (!pf->th_running) {
		free(pf->bases);
		pf->bases = NULL;
		pf->n_bases = 0;
	}
}

/* The bytes of the new release's files no reference has (each content once). */
static uint64_t
dp_pf_new_bytes(const struct delta_pack_prefetch *pf)
{
	const struct release_files_entry **v = calloc(pf->rf.n > 0 ? pf->rf.n : 1, sizeof(*v));
	uint64_t total = 0;
	size_t n = 0;

	if (v == NULL) {
		return UINT64_MAX;
	}
	for (size_t i = 0; i < pf->rf.n; i++) {
		if (pf->rf.v[i].type == RELEASE_FILES_REG && !dp_known(pf, pf->rf.v[i].sha256)) {
			v[n++] = &pf->rf.v[i];
		}
	}
	qsort(v, n, sizeof(*v), dp_entry_sha_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || strcmp(v[i - 1]->sha256, v[i]->sha256) != 0) {
			total += v[i]->size;
		}
	}
	free(v);
	return total;
}

static void
dp_pf_join(struct delta_pack_prefetch *pf)
{
	if (pf->th_running) {
		(void)pthread_join(pf->th, NULL);
		pf->th_running = 0;
	}
}

/* Whether the check's current file is kept: files.json, or a file no reference has. */
static int
dp_pf_file(void *arg, const char *name, const char *path, int64_t size)
{
	struct delta_pack_prefetch *pf = arg;
	const struct release_files_entry *en;
	uint64_t want = size > 0 ? (uint64_t)size : 0;

	(void)path;
	dp_pf_drop_cur(pf);
	if (pf->off) {
		return 0;
	}
	if (strcmp(name, RELEASE_FILES_FILE) == 0) {
		if (size > (int64_t)RELEASE_FILES_MAX_BYTES) {
			dp_pf_give_up(pf);
			return 0;
		}
		pf->cur = 1;
		return 1;
	}
	/* Before files.json (the packer's bin/) every file is kept; decided when done. */
	if (pf->fj != NULL) {
		if (!pf->fj_ok || (en = release_files_find(&pf->rf, name)) == NULL ||
		    en->type != RELEASE_FILES_REG || dp_known(pf, en->sha256)) {
			return 0;
		}
		for (size_t i = 0; i < pf->n_kept; i++) {
			if (pf->kept[i].en == en) {
				return 0; /* a later entry of the same name: the first one is kept */
			}
		}
		if (en->size > want) {
			want = en->size;
		}
	}
	if (want > pf->budget - pf->used || want > SIZE_MAX / 2) {
		dp_pf_give_up(pf);
		return 0;
	}
	pf->cname = strdup(name);
	pf->cbuf = malloc(want > 0 ? (size_t)want : 1);
	if (pf->cname == NULL || pf->cbuf == NULL) {
		dp_pf_give_up(pf);
		return 0;
	}
	pf->ccap = want > 0 ? (size_t)want : 1;
	pf->used += pf->ccap;
	digest_init(&pf->d);
	pf->d_live = 1;
	pf->cur = 2;
	return 1;
}

static void
dp_pf_data(void *arg, const void *buf, size_t len, uint64_t off)
{
	struct delta_pack_prefetch *pf = arg;
	uint64_t end = off + len;

	if (pf->cur == 0) {
		return;
	}
	/* A hole (a sparse entry) reads as zeros. */
	if (off < pf->clen || (pf->cur == 1 && end > RELEASE_FILES_MAX_BYTES)) {
		if (pf->cur == 1) {
			dp_pf_give_up(pf);
		} else {
			dp_pf_drop_cur(pf);
		}
		return;
	}
	if (end > pf->ccap) {
		size_t ncap = pf->ccap * 2 > end ? pf->ccap * 2 : (size_t)end;
		char *nb;

		if (pf->cur == 2 && ncap - pf->ccap > pf->budget - pf->used) {
			dp_pf_give_up(pf);
			return;
		}
		nb = realloc(pf->cbuf, ncap);
		if (nb == NULL) {
			dp_pf_give_up(pf);
			return;
		}
		if (pf->cur == 2) {
			pf->used += ncap - pf->ccap;
		}
		pf->cbuf = nb;
		pf->ccap = ncap;
	}
	memset(pf->cbuf + pf->clen, 0, (size_t)off - pf->clen);
	memcpy(pf->cbuf + off, buf, len);
	if (pf->cur == 2) {
		digest_update(&pf->d, pf->cbuf + pf->clen, (size_t)end - pf->clen);
	}
	pf->clen = (size_t)end;
}

static void
dp_pf_end(void *arg)
{
	struct delta_pack_prefetch *pf = arg;
	struct err e = ERR_INIT;
	struct dp_kept *k;

	if (pf->cur == 1) {
		if (pf->fj != NULL) {
			/* Another files.json: the same bytes, or nothing is kept. */
			if (pf->clen != pf->fj_len || memcmp(pf->cbuf, pf->fj, pf->clen) != 0) {
				dp_pf_give_up(pf);
			}
			dp_pf_drop_cur(pf);
			return;
		}
		pf->fj = pf->cbuf;
		pf->fj_len = pf->clen;
		pf->cbuf = NULL;
		pf->fj_ok = release_files_parse(pf->fj, pf->fj_len, &pf->rf, &e) == 0;
		dp_pf_drop_cur(pf);
		if (!pf->fj_ok || dp_pf_new_bytes(pf) > pf->budget) {
			dp_pf_give_up(pf); /* the hosts lack too much for a delta to pay */
		} else {
			dp_pf_plan_bases(pf);
		}
		return;
	}
	if (pf->cur != 2) {
		return;
	}
	if (pf->n_kept == pf->cap_kept) {
		size_t ncap = pf->cap_kept == 0 ? 16 : pf->cap_kept * 2;
		struct dp_kept *v = reallocarray(pf->kept, ncap, sizeof(*v));

		if (v == NULL) {
			dp_pf_give_up(pf);
			return;
		}
		pf->kept = v;
		pf->cap_kept = ncap;
	}
	k = &pf->kept[pf->n_kept];
	memset(k, 0, sizeof(*k));
	if (digest_final(&pf->d, k->got) != 0) {
		dp_pf_give_up(pf);
		return;
	}
	digest_free(&pf->d);
	pf->d_live = 0;
	k->name = pf->cname;
	k->buf = (unsigned char *)pf->cbuf;
	k->len = pf->clen;
	/* Found by name later (a later entry of the same name is not kept twice). */
	k->en = pf->fj_ok ? release_files_find(&pf->rf, k->name) : NULL;
	pf->cname = NULL;
	pf->cbuf = NULL;
	pf->clen = pf->ccap = 0;
	pf->cur = 0;
	pf->n_kept++;
}

/* The reference release REF's files' digests, added to PF's known ones. */
static int
dp_pf_ref(struct delta_pack_prefetch *pf, const char *ref, struct err *e)
{
	struct release_files rf = RELEASE_FILES_INIT;
	const struct release_files *src = &rf;
	int rc = -1;

	if (dp_files_of(ref, &rf, e) != 0) {
		goto out;
	}
	if (pf->ref[0] == '\0' && strlen(ref) < sizeof(pf->ref)) {
		/* The first one (the newest): where the bases are read from. */
		snprintf(pf->ref, sizeof(pf->ref), "%s", ref);
		pf->ref_rf = rf;
		rf = (struct release_files)RELEASE_FILES_INIT;
		src = &pf->ref_rf;
	}
	if (src->n > 0) {
		char (*v)[DIGEST_HEX_LEN + 1] = reallocarray(pf->known, pf->n_known + src->n,
		    sizeof(*v));

		if (v == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		pf->known = v;
		for (size_t i = 0; i < src->n; i++) {
			if (src->v[i].type == RELEASE_FILES_REG) {
				memcpy(pf->known[pf->n_known++], src->v[i].sha256, DIGEST_HEX_LEN + 1);
			}
		}
	}
	rc = 0;
out:
	release_files_free(&rf);
	return rc;
}

struct delta_pack_prefetch *
delta_pack_prefetch_new(const char *const *refs, size_t n_refs, uint64_t budget)
{
	struct delta_pack_prefetch *pf = calloc(1, sizeof(*pf));

	if (pf == NULL) {
		return NULL;
	}
	pf->rf = (struct release_files)RELEASE_FILES_INIT;
	pf->ref_rf = (struct release_files)RELEASE_FILES_INIT;
	pf->budget = budget;
	pf->v = (struct release_check_visitor){ dp_pf_file, dp_pf_data, dp_pf_end, pf };
	for (size_t i = 0; i < n_refs; i++) {
		struct err e = ERR_INIT;

		if (dp_pf_ref(pf, refs[i], &e) != 0) {
			log_warnx("delta: %s: %s", refs[i], err_msg(&e));
		}
	}
	if (pf->n_known > 0) {
		qsort(pf->known, pf->n_known, sizeof(*pf->known), dp_hex_cmp);
	}
	return pf;
}

const struct release_check_visitor *
delta_pack_prefetch_visitor(struct delta_pack_prefetch *pf)
{
	return &pf->v;
}

void
delta_pack_prefetch_done(struct delta_pack_prefetch *pf)
{
	size_t k = 0;

	dp_pf_join(pf);
	dp_pf_drop_cur(pf);
	if (pf->off || !pf->fj_ok) {
		dp_pf_give_up(pf);
		return;
	}
	for (size_t i = 0; i < pf->n_kept; i++) {
		struct dp_kept *it = &pf->kept[i];
		const struct release_files_entry *en = release_files_find(&pf->rf, it->name);
		int dup = 0;

		if (en != NULL && en->type == RELEASE_FILES_REG && !dp_known(pf, en->sha256) &&
		    (it->len != en->size || strcmp(it->got, en->sha256) != 0)) {
			/* Not what files.json says: the delta's own pass finds it and says so. */
			dp_pf_give_up(pf);
			return;
		}
		for (size_t j = 0; j < k && en != NULL; j++) {
			dup |= strcmp(pf->kept[j].en->sha256, en->sha256) == 0;
		}
		if (en == NULL || en->type != RELEASE_FILES_REG || dp_known(pf, en->sha256) ||
		    dup) {
			free(it->name);
			free(it->buf);
			continue;
		}
		it->en = en;
		pf->kept[k++] = *it;
	}
	pf->n_kept = k;
	pf->used = 0;
	for (size_t i = 0; i < k; i++) {
		pf->used += pf->kept[i].len;
	}
	pf->ready = 1;
}

void
delta_pack_prefetch_stat(const struct delta_pack_prefetch *pf, size_t *files, uint64_t *bytes)
{
	*files = pf != NULL && pf->ready ? pf->n_kept : 0;
	*bytes = pf != NULL && pf->ready ? pf->used : 0;
}

void
delta_pack_prefetch_free(struct delta_pack_prefetch *pf)
{
	if (pf == NULL) {
		return;
	}
	dp_pf_join(pf);
	dp_pf_give_up(pf);
	for (size_t k = 0; k < pf->n_bases; k++) {
		free(pf->bases[k].buf);
	}
	free(pf->bases);
	free(pf->known);
	free(pf->fj);
	release_files_free(&pf->rf);
	release_files_free(&pf->ref_rf);
	free(pf);
}

/* The kept file of digest HEX, or NULL. */
static const struct dp_kept *
dp_pf_find(const struct delta_pack_prefetch *pf, const char *hex)
{
	for (size_t i = 0; i < pf->n_kept; i++) {
		if (strcmp(pf->kept[i].en->sha256, hex) == 0) {
			return &pf->kept[i];
		}
	}
	return NULL;
}

/* Whether PF can give the delta of C's wanted digests for files.json FJ. */
static int
dp_pf_covers(const struct delta_pack_prefetch *pf, const struct dp_ctx *c, const char *fj,
    size_t fjlen)
{
	if (pf == NULL || !pf->ready || pf->off || pf->fj_len != fjlen ||
	    memcmp(pf->fj, fj, fjlen) != 0) {
		return 0;
	}
	for (size_t i = 0; i < c->n_want; i++) {
		if (c->want[i].named && dp_pf_find(pf, c->want[i].hex) == NULL) {
			return 0;
		}
	}
	return 1;
}

/* The wanted files from PF, in the release's order: whole, or patched (bases read first). */
static int
dp_from_prefetch(struct dp_ctx *c, struct archive *w, const struct delta_pack_prefetch *pf,
    struct delta_pack_result *res, struct err *e)
{
	for (size_t i = 0; i < pf->n_kept; i++) {
		const struct dp_kept *k = &pf->kept[i];
		struct dp_want *wt = dp_want_find(c, k->en->sha256);

		if (wt == NULL || wt->sent) {
			continue;
		}
		if (dp_emit(c, w, wt, k->en, k->buf, k->len, res, e) != 0) {
			return -1;
		}
		wt->sent = 1;
		res->files++;
		res->content += k->en->size;
	}
	return 0;
}

int
delta_pack_write(const char *tgz, const char *fj, size_t fjlen, const char *const *missing,
    size_t n_missing, const struct delta_pack_patches *pp, const char *out,
    struct delta_pack_result *res, struct err *e)
{
	return delta_pack_write_pf(tgz, fj, fjlen, missing, n_missing, pp, NULL, out, res, NULL,
	    e);
}

int
delta_pack_write_pf(const char *tgz, const char *fj, size_t fjlen, const char *const *missing,
    size_t n_missing, const struct delta_pack_patches *pp, const struct delta_pack_prefetch *pf,
    const char *out, struct delta_pack_result *res, int *from_prefetch, struct err *e)
{
	struct release_files rf = RELEASE_FILES_INIT;
	struct dp_ctx c = { .out = { .file = FS_ATOMIC_INIT }, .pp = pp };
	struct archive *r = NULL, *w = NULL;
	pthread_t th;
	int th_running = 0, use_pf, rc = -1;

	memset(res, 0, sizeof(*res));
	if (from_prefetch != NULL) {
		*from_prefetch = 0;
	}
	if (release_files_parse(fj, fjlen, &rf, e) != 0) {
		err_prefix(e, "delta: %s", RELEASE_FILES_FILE);
		return -1;
	}
	if (dp_wants(&c, &rf, missing, n_missing, e) != 0 || dp_bases_plan(&c, &rf, pp, e) != 0) {
		goto out;
	}
	use_pf = dp_pf_covers(pf, &c, fj, fjlen);
	/* The bases are read while the release is: the files to patch wait for them. */
	if (use_pf) {
		/* The bases the check's thread read, then the sources for any others. */
		for (size_t k = 0; k < c.n_bases; k++) {
			struct dp_base *b = pf->n_bases > 0 ? bsearch(&c.bases[k], pf->bases,
			    pf->n_bases, sizeof(*pf->bases), dp_base_cmp) : NULL;

			if (b != NULL && b->buf != NULL) {
				c.bases[k].buf = b->buf;
				c.bases[k].len = b->len;
				c.bases[k].borrowed = 1;
			}
		}
		if (c.n_bases > 0) {
			dp_bases_load(&c, pp); /* no pass over the release to overlap with */
		}
	} else if (c.n_bases > 0 && pthread_create(&th, NULL, dp_bases_thread, &c) == 0) {
		th_running = 1;
	} else if (c.n_bases > 0) {
		dp_bases_load(&c, pp);
	}
	c.bases_ready = !th_running;
	c.buf = malloc(DP_CHUNK);
	if (c.buf == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!use_pf && dp_read_open(tgz, &r, e) != 0) {
		goto out;
	}
	if (fs_atomic_begin(&c.out.file, out, 0644) != 0) {
		err_sys(e, "%s", out);
		goto out;
	}
	w = release_pack_tgz_open(&c.out, e);
	if (w == NULL) {
		goto out;
	}
	if (dp_header(w, RELEASE_FILES_FILE, 0644, fjlen, e) != 0 ||
	    dp_write_data(w, RELEASE_FILES_FILE, fj, fjlen, e) != 0) {
		goto out;
	}
	if (use_pf ? dp_from_prefetch(&c, w, pf, res, e) != 0
		   : dp_stream(&c, tgz, r, w, &rf, fj, fjlen, res, e) != 0) {
		goto out;
	}
	if (th_running) {
		(void)pthread_join(th, NULL);
		th_running = 0;
		c.bases_ready = 1;
	}
	for (size_t i = 0; i < c.n_pending; i++) {
		struct dp_pending *pd = &c.pending[i];

		if (dp_emit(&c, w, pd->want, pd->en, pd->buf, pd->len, res, e) != 0) {
			goto out;
		}
	}
	if (archive_write_close(w) != ARCHIVE_OK) {
		err_set(e, archive_errno(w) == ENOSPC ? ERR_NOSPACE : ERR_IO, "%s: %s", out,
		    archive_error_string(w));
		goto out;
	}
	if (fs_atomic_commit(&c.out.file) != 0) {
		err_sys(e, "%s", out);
		goto out;
	}
	res->size = c.out.written;
	if (from_prefetch != NULL) {
		*from_prefetch = use_pf;
	}
	rc = 0;
out:
	if (th_running) {
		(void)pthread_join(th, NULL);
	}
	for (size_t i = 0; i < c.n_pending; i++) {
		free(c.pending[i].buf);
	}
	free(c.pending);
	archive_write_free(w);
	archive_read_free(r);
	fs_atomic_abort(&c.out.file);
	free(c.buf);
	free(c.want);
	for (size_t k = 0; k < c.n_bases; k++) {
		if (!c.bases[k].borrowed) {
			free(c.bases[k].buf);
		}
	}
	free(c.bases);
	release_files_free(&rf);
	return rc;
}
