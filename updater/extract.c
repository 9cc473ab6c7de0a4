#include "updater/extract.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/log.h"

#define EXTRACT_READ_CHUNK ((size_t)64 * 1024)
#define EXTRACT_DEFAULT_MAX_UNPACKED RELEASE_CHECK_DEFAULT_MAX_UNPACKED
#define EXTRACT_DEFAULT_MAX_ENTRIES RELEASE_CHECK_DEFAULT_MAX_ENTRIES
/* Free-space checks happen after this many bytes written since the last. */
#define EXTRACT_SPACE_CHECK_EVERY ((uint64_t)4 * 1024 * 1024)

struct extract {
	char staging[EXTRACT_MAX_PATH];
	struct extract_limits lim;
	struct digest sha;
	uint64_t fed;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv_data;  /* ring gained data, or eof/abort */
	pthread_cond_t cv_space; /* ring gained space, or the extractor finished */
	unsigned char *ring;
	size_t head;             /* read position */
	size_t len;              /* bytes buffered */
	int eof;                 /* producer: no more input */
	int aborting;
	int done;                /* extractor finished (status below is final) */

	/* Owned by the extractor thread until done. */
	enum err_kind status;    /* set once, when the extractor finishes */
	struct err err;
	uint64_t entries;
	uint64_t unpacked;
	uint64_t since_space_check;
	unsigned char rbuf[EXTRACT_READ_CHUNK];
};

/* Record why the extraction stops (KIND and message) and yield KIND. */
#define extract_fail(x, kind, ...) (err_set(&(x)->err, (kind), __VA_ARGS__), (kind))

static la_ssize_t
extract_read_cb(struct archive *a, void *arg, const void **buf)
{
	struct extract *x = arg;
	size_t n;

	pthread_mutex_lock(&x->mu);
	while (x->len == 0 && !x->eof && !x->aborting) {
		pthread_cond_wait(&x->cv_data, &x->mu);
	}
	if (x->aborting) {
		pthread_mutex_unlock(&x->mu);
		archive_set_error(a, ECANCELED, "extraction aborted");
		return -1;
	}
	n = x->len;
	if (n > EXTRACT_READ_CHUNK) {
		n = EXTRACT_READ_CHUNK;
	}
	if (n > EXTRACT_RING_BYTES - x->head) {
		n = EXTRACT_RING_BYTES - x->head;
	}
	memcpy(x->rbuf, x->ring + x->head, n);
	x->head = (x->head + n) % EXTRACT_RING_BYTES;
	x->len -= n;
	pthread_cond_signal(&x->cv_space);
	pthread_mutex_unlock(&x->mu);
	*buf = x->rbuf;
	return (la_ssize_t)n;
}

/* A rule of common/release_check broken: its error becomes X's. */
static enum err_kind
extract_rule(struct extract *x, const struct err *e)
{
	err_copy(&x->err, e);
	return e->kind;
}

static enum err_kind
extract_write_error(struct extract *x, struct archive *w, int r, const char *path,
    const char *what)
{
	int e = archive_errno(w);
	const char *msg = archive_error_string(w);

	if (e == ENOSPC || e == EDQUOT) {
		return extract_fail(x, ERR_NOSPACE, "entry '%.200s': %s: no space left on device",
		    path, what);
	}
	return extract_fail(x, r == ARCHIVE_FATAL ? ERR_IO : ERR_UNSAFE,
	    "entry '%.200s': %s: %.200s", path, what, msg != NULL ? msg : "failed");
}

static enum err_kind
extract_check_space(struct extract *x, const char *path)
{
	unsigned long long avail;

	if (x->lim.min_free == 0 || x->since_space_check < EXTRACT_SPACE_CHECK_EVERY) {
		return ERR_OK;
	}
	x->since_space_check = 0;
	if (fs_free_bytes(x->staging, &avail) != 0) {
		return extract_fail(x, ERR_IO, "entry '%.200s': statvfs: %s", path,
		    strerror(errno));
	}
	if (avail < x->lim.min_free) {
		return extract_fail(x, ERR_NOSPACE,
		    "entry '%.200s': not enough disk space (%llu bytes free)", path, avail);
	}
	return ERR_OK;
}

static enum err_kind
extract_copy_data(struct extract *x, struct archive *a, struct archive *w, const char *path)
{
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;
	enum err_kind st;

	for (;;) {
		r = archive_read_data_block(a, &buf, &size, &off);
		if (r == ARCHIVE_EOF) {
			return ERR_OK;
		}
		if (r < ARCHIVE_WARN) {
			return extract_fail(x, ERR_FORMAT, "entry '%.200s': %.200s", path,
			    archive_error_string(a));
		}
		/* Sparse holes count too: the file's extent is what lands on disk. */
		if (off < 0 || (uint64_t)off + size > x->lim.max_unpacked ||
		    x->unpacked + size > x->lim.max_unpacked) {
			return extract_fail(x, ERR_LIMIT,
			    "entry '%.200s': unpacked size exceeds %llu bytes", path,
			    (unsigned long long)x->lim.max_unpacked);
		}
		x->unpacked += size;
		x->since_space_check += size;
		if (archive_write_data_block(w, buf, size, off) < ARCHIVE_OK) {
			return extract_write_error(x, w, ARCHIVE_FAILED, path, "write");
		}
		st = extract_check_space(x, path);
		if (st != ERR_OK) {
			return st;
		}
	}
}

static enum err_kind
extract_entry(struct extract *x, struct archive *a, struct archive *w, struct archive_entry *e)
{
	const char *name = archive_entry_pathname(e);
	char path[EXTRACT_MAX_PATH];
	char full[EXTRACT_MAX_PATH * 2 + 2];
	struct err re = ERR_INIT;
	enum release_check_ftype kind;
	int skip, r;
	unsigned ft;
	enum err_kind st;

	if (name == NULL || name[0] == '\0') {
		return extract_fail(x, ERR_UNSAFE, "entry #%llu has no name",
		    (unsigned long long)x->entries);
	}
	if (release_check_name(name, path, sizeof(path), &skip, &re) != 0 ||
	    release_check_type(name, archive_entry_filetype(e), archive_entry_hardlink(e) != NULL,
		&kind, &re) != 0 ||
	    (kind == RELEASE_CHECK_SYMLINK &&
		release_check_symlink(path, archive_entry_symlink(e), &re) != 0)) {
		return extract_rule(x, &re);
	}
	ft = archive_entry_filetype(e);
	if (skip) {
		if (ft != AE_IFDIR) {
			return extract_fail(x, ERR_UNSAFE, "entry '%.200s': not a directory",
			    name);
		}
		return ERR_OK; /* "./" itself: the staging dir exists already */
	}
	if (ft == AE_IFREG && archive_entry_size_is_set(e) &&
	    (archive_entry_size(e) < 0 ||
		(uint64_t)archive_entry_size(e) > x->lim.max_unpacked - x->unpacked)) {
		return extract_fail(x, ERR_LIMIT,
		    "entry '%.200s': unpacked size exceeds %llu bytes", name,
		    (unsigned long long)x->lim.max_unpacked);
	}

	/* Mode: no setuid/setgid/sticky, no group/other write, owner can manage it. */
	if (ft == AE_IFDIR) {
		archive_entry_set_perm(e, (archive_entry_perm(e) & 0755) | 0700);
	} else if (ft == AE_IFREG) {
		archive_entry_set_perm(e, (archive_entry_perm(e) & 0755) | 0600);
	}
	archive_entry_set_uid(e, (la_int64_t)getuid());
	archive_entry_set_gid(e, (la_int64_t)getgid());
	archive_entry_set_uname(e, NULL);
	archive_entry_set_gname(e, NULL);
	snprintf(full, sizeof(full), "%s/%s", x->staging, path);
	archive_entry_set_pathname(e, full);

	r = archive_write_header(w, e);
	if (r < ARCHIVE_OK) {
		return extract_write_error(x, w, r, path, "create");
	}
	if (ft == AE_IFREG) {
		st = extract_copy_data(x, a, w, path);
		if (st != ERR_OK) {
			return st;
		}
	}
	r = archive_write_finish_entry(w);
	if (r < ARCHIVE_OK) {
		return extract_write_error(x, w, r, path, "finish");
	}
	return ERR_OK;
}

static enum err_kind
extract_run(struct extract *x)
{
	struct archive *a = NULL, *w = NULL;
	struct archive_entry *e;
	enum err_kind st = ERR_OK;
	int r;

	a = archive_read_new();
	w = archive_write_disk_new();
	if (a == NULL || w == NULL) {
		st = extract_fail(x, ERR_IO, "libarchive: out of memory");
		goto out;
	}
	if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(a) != ARCHIVE_OK) {
		st = extract_fail(x, ERR_IO, "libarchive: %s", archive_error_string(a));
		goto out;
	}
	if (archive_write_disk_set_options(w,
		ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
		    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM) != ARCHIVE_OK) {
		st = extract_fail(x, ERR_IO, "libarchive: %s", archive_error_string(w));
		goto out;
	}
	if (archive_read_open(a, x, NULL, extract_read_cb, NULL) != ARCHIVE_OK) {
		if (archive_errno(a) == ECANCELED) {
			st = extract_fail(x, ERR_CANCELED, "extraction aborted");
		} else {
			st = extract_fail(x, ERR_FORMAT, "not a gzip tar archive: %.200s",
			    archive_error_string(a) != NULL ? archive_error_string(a) : "empty");
		}
		goto out;
	}
	/* Exactly gzip over the raw bytes: plain or doubly wrapped tars are refused. */
	if (archive_filter_count(a) != 2 || archive_filter_code(a, 0) != ARCHIVE_FILTER_GZIP) {
		st = extract_fail(x, ERR_FORMAT, "not a gzip-compressed archive");
		goto out;
	}
	for (;;) {
		r = archive_read_next_header(a, &e);
		if (r == ARCHIVE_EOF) {
			break;
		}
		if (r < ARCHIVE_WARN) {
			if (archive_errno(a) == ECANCELED) {
				st = extract_fail(x, ERR_CANCELED, "extraction aborted");
			} else {
				st = extract_fail(x, ERR_FORMAT,
				    "archive header after %llu entries: %.200s",
				    (unsigned long long)x->entries, archive_error_string(a));
			}
			goto out;
		}
		if (++x->entries > x->lim.max_entries) {
			st = extract_fail(x, ERR_LIMIT, "entry '%.200s': more than %llu entries",
			    archive_entry_pathname(e) != NULL ? archive_entry_pathname(e) : "?",
			    (unsigned long long)x->lim.max_entries);
			goto out;
		}
		st = extract_entry(x, a, w, e);
		if (st != ERR_OK) {
			goto out;
		}
	}
	if (x->entries == 0) {
		st = extract_fail(x, ERR_FORMAT, "archive has no entries");
		goto out;
	}
	if (archive_write_close(w) != ARCHIVE_OK) {
		st = extract_write_error(x, w, ARCHIVE_FATAL, "(close)", "close");
		goto out;
	}
out:
	if (st == ERR_FORMAT || st == ERR_UNSAFE || st == ERR_IO) {
		pthread_mutex_lock(&x->mu);
		if (x->aborting) {
			st = extract_fail(x, ERR_CANCELED, "extraction aborted");
		}
		pthread_mutex_unlock(&x->mu);
	}
	if (w != NULL) {
		archive_write_free(w);
	}
	if (a != NULL) {
		archive_read_free(a);
	}
	return st;
}

static void *
extract_thread(void *arg)
{
	struct extract *x = arg;
	enum err_kind st = extract_run(x);

	pthread_mutex_lock(&x->mu);
	x->status = st;
	x->done = 1;
	x->len = 0;
	pthread_cond_broadcast(&x->cv_space);
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

static void
extract_free(struct extract *x)
{
	digest_free(&x->sha);
	pthread_cond_destroy(&x->cv_data);
	pthread_cond_destroy(&x->cv_space);
	pthread_mutex_destroy(&x->mu);
	free(x->ring);
	free(x);
}

int
extract_begin(const char *staging, const struct extract_limits *lim, struct extract **out,
    struct err *e)
{
	struct extract *x = NULL;
	int made_dir = 0, rc;

	if (staging == NULL || staging[0] == '\0' || staging[0] == '/') {
		return err_set(e, ERR_INTERNAL, "staging directory must be a relative path");
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		return err_set(e, ERR_NOMEM, "extract: out of memory");
	}
	x->ring = malloc(EXTRACT_RING_BYTES);
	if (x->ring == NULL) {
		free(x);
		return err_set(e, ERR_NOMEM, "extract: out of memory");
	}
	if (strlcpy_chk(x->staging, staging, sizeof(x->staging)) != 0) {
		free(x->ring);
		free(x);
		return err_set(e, ERR_INTERNAL, "staging path too long");
	}
	if (lim != NULL) {
		x->lim = *lim;
	}
	if (x->lim.max_unpacked == 0) {
		x->lim.max_unpacked = EXTRACT_DEFAULT_MAX_UNPACKED;
	}
	if (x->lim.max_entries == 0) {
		x->lim.max_entries = EXTRACT_DEFAULT_MAX_ENTRIES;
	}
	digest_init(&x->sha);
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv_data, NULL);
	pthread_cond_init(&x->cv_space, NULL);
	if (mkdir(staging, 0755) != 0) {
		err_sys(e, "create %s", staging);
		goto fail;
	}
	made_dir = 1;
	rc = pthread_create(&x->thread, NULL, extract_thread, x);
	if (rc != 0) {
		errno = rc;
		err_sys(e, "start extractor");
		goto fail;
	}
	*out = x;
	return 0;
fail:
	if (made_dir && rmdir(staging) != 0) {
		log_warn("rmdir %s", staging);
	}
	extract_free(x);
	return -1;
}

int
extract_feed(struct extract *x, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (len == 0) {
		return 0;
	}
	digest_update(&x->sha, p, len);
	x->fed += len;
	pthread_mutex_lock(&x->mu);
	while (len > 0) {
		size_t space, tail, n;

		if (x->done) {
			int rc = x->status == ERR_OK ? 0 : -1;

			pthread_mutex_unlock(&x->mu);
			return rc; /* after the tar end: hashed, otherwise ignored */
		}
		space = EXTRACT_RING_BYTES - x->len;
		if (space == 0) {
			pthread_cond_wait(&x->cv_space, &x->mu);
			continue;
		}
		tail = (x->head + x->len) % EXTRACT_RING_BYTES;
		n = EXTRACT_RING_BYTES - tail; /* contiguous room */
		if (n > space) {
			n = space;
		}
		if (n > len) {
			n = len;
		}
		memcpy(x->ring + tail, p, n);
		x->len += n;
		p += n;
		len -= n;
		pthread_cond_signal(&x->cv_data);
	}
	pthread_mutex_unlock(&x->mu);
	return 0;
}

uint64_t
extract_fed(const struct extract *x)
{
	return x->fed;
}

int
extract_finish(struct extract *x, char sha256_hex[65], uint64_t *entries, uint64_t *unpacked,
    struct err *e)
{
	int rc = -1;

	pthread_mutex_lock(&x->mu);
	x->eof = 1;
	pthread_cond_signal(&x->cv_data);
	pthread_mutex_unlock(&x->mu);
	pthread_join(x->thread, NULL);
	if (x->status != ERR_OK) {
		err_copy(e, &x->err);
	} else if (digest_final(&x->sha, sha256_hex) != 0) {
		err_set(e, ERR_INTERNAL, "sha256 failed");
	} else {
		if (entries != NULL) {
			*entries = x->entries;
		}
		if (unpacked != NULL) {
			*unpacked = x->unpacked;
		}
		rc = 0;
	}
	extract_free(x);
	return rc;
}

void
extract_abort(struct extract *x)
{
	if (x == NULL) {
		return;
	}
	pthread_mutex_lock(&x->mu);
	x->aborting = 1;
	pthread_cond_broadcast(&x->cv_data);
	pthread_mutex_unlock(&x->mu);
	pthread_join(x->thread, NULL);
	extract_free(x);
}
