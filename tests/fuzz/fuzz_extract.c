/*
 * Fuzz updater/extract: the fuzzer's bytes are an uploaded tarball, fed in
 * chunks (sizes derived from the input) into a fresh staging directory.
 * Afterwards nothing may exist beside it, and everything inside must be a
 * regular file, directory or symlink without special mode bits.
 *
 * Random bytes rarely make valid gzip, so when the first byte is odd the
 * rest is taken as a raw tar and gzip-compressed here first (libarchive's
 * raw writer): the fuzzer then works on tar headers and our entry checks.
 *
 * The same bytes go through common/release_check (the master's check of a
 * release before it is sent): what it accepts, the extraction may not refuse
 * for its format or its limits.
 *
 * Extraction needs a relative staging path without "..", and libFuzzer
 * writes its corpus through the relative paths it was given, so the harness
 * never chdir()s: it works in a private directory under the working
 * directory, removed at exit.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/release_check.h"
#include "updater/extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_root[64];
static char fz_stage[80];
static char fz_input[80];

static void
fz_cleanup(void)
{
	if (fs_rmtree(fz_root) != 0) {
		perror(fz_root);
	}
}

static void
fz_check_tree(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[PATH_MAX];
	struct stat st;

	if (d == NULL || depth > 64) {
		__builtin_trap();
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) != 0) {
			__builtin_trap();
		}
		if (S_ISDIR(st.st_mode)) {
			fz_check_tree(p, depth + 1);
		} else if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
			__builtin_trap();
		}
		if ((st.st_mode & 07000) != 0) {
			__builtin_trap();
		}
	}
	closedir(d);
}

static void
fz_extract_one(const uint8_t *data, size_t size)
{
	struct extract_limits lim = { 4u << 20, 1000, 0 };
	struct release_check_limits clim = { 4u << 20, 1000 };
	struct extract *x = NULL;
	struct err e = ERR_INIT;
	char sha[65];
	size_t off = 0, step = size > 0 ? (size_t)data[0] + 1 : 1;
	int checked;
	DIR *d;
	struct dirent *de;

	if (fs_write_atomic(fz_input, data, size, 0600) != 0) {
		__builtin_trap();
	}
	checked = release_check_file(fz_input, &clim, 0, NULL, NULL, NULL, &e) == 0;
	err_clear(&e);
	if (extract_begin(fz_stage, &lim, &x, &e) != 0) {
		__builtin_trap();
	}
	while (off < size) {
		size_t n = step < size - off ? step : size - off;

		if (extract_feed(x, data + off, n) != 0) {
			break;
		}
		off += n;
		step = step * 2 + 1;
	}
	if (extract_finish(x, sha, NULL, NULL, &e) != 0) {
		/*
		 * A failure always says why; a release the check accepted is not refused
		 * for its format or its limits (writing can still fail where the check
		 * writes nothing: a file where a later entry wants a directory).
		 */
		if (e.kind == ERR_OK || (checked && (e.kind == ERR_FORMAT || e.kind == ERR_LIMIT))) {
			__builtin_trap();
		}
	}
	fz_check_tree(fz_stage, 0);
	/* Only "stage" may exist in the private directory. */
	d = opendir(fz_root);
	if (d == NULL) {
		__builtin_trap();
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, "stage") != 0 && strcmp(de->d_name, "in.tgz") != 0) {
			__builtin_trap();
		}
	}
	closedir(d);
	if (fs_rmtree(fz_stage) != 0) {
		__builtin_trap();
	}
}

struct fz_buf {
	unsigned char *p;
	size_t len, cap;
};

static la_ssize_t
fz_write(struct archive *a, void *arg, const void *d, size_t n)
{
	struct fz_buf *b = arg;

	(void)a;
	if (b->len + n > b->cap) {
		size_t nc = (b->len + n) * 2;
		unsigned char *np = realloc(b->p, nc);

		if (np == NULL) {
			return -1;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	return (la_ssize_t)n;
}

/* gzip LEN bytes of DATA into B (a raw "archive" of one entry). */
static int
fz_gzip(const uint8_t *data, size_t len, struct fz_buf *b)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	int ok;

	ok = a != NULL && e != NULL && archive_write_set_format_raw(a) == ARCHIVE_OK &&
	    archive_write_add_filter_gzip(a) == ARCHIVE_OK &&
	    archive_write_open(a, b, NULL, fz_write, NULL) == ARCHIVE_OK;
	if (ok) {
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_pathname(e, "x");
		ok = archive_write_header(a, e) == ARCHIVE_OK &&
		    (len == 0 || archive_write_data(a, data, len) == (la_ssize_t)len) &&
		    archive_write_close(a) == ARCHIVE_OK;
	}
	archive_entry_free(e);
	archive_write_free(a);
	return ok ? 0 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_buf gz = { NULL, 0, 0 };

	if (fz_root[0] == '\0') {
		log_init("fuzz_extract", LOG_LVL_ERROR);
		snprintf(fz_root, sizeof(fz_root), ".fuzz_extract.XXXXXX");
		if (mkdtemp(fz_root) == NULL || atexit(fz_cleanup) != 0) {
			__builtin_trap();
		}
		snprintf(fz_stage, sizeof(fz_stage), "%s/stage", fz_root);
		snprintf(fz_input, sizeof(fz_input), "%s/in.tgz", fz_root);
	}
	if (size > 0 && (data[0] & 1) != 0) {
		if (fz_gzip(data + 1, size - 1, &gz) != 0) {
			free(gz.p);
			return 0;
		}
		data = gz.p;
		size = gz.len;
	}
	fz_extract_one(data, size);
	free(gz.p);
	return 0;
}
