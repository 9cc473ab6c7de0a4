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
 * Extraction needs a relative staging path without ".." (libarchive resolves
 * it against the working directory; its disk writer has no directory-fd
 * API), and libFuzzer writes its corpus through the relative paths it was
 * given, so the process never chdir()s. The harness makes a private
 * directory under fs_tmp_root() ($TMPDIR) like the other harnesses, and
 * each input runs in a thread of its own that unshare(CLONE_FS)s and enters
 * it: that thread and the extractor thread it starts have the private
 * directory as their working directory, libFuzzer's keeps its own. The
 * worker reports what went wrong; the trap happens on libFuzzer's thread.
 * A memory error that ASan finds in the extractor thread is reported from
 * that thread: give libFuzzer an absolute -artifact_prefix (make fuzz-run
 * does) so the crash file lands where it says.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
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

/* The private directory (absolute); the worker's names are relative to it. */
static char fz_root[PATH_MAX];
#define FZ_STAGE "stage"
#define FZ_INPUT "in.tgz"

static void
fz_cleanup(void)
{
	if (fs_rmtree(fz_root) != 0) {
		perror(fz_root);
	}
}

/* NULL when the tree under DIR holds only what extraction may leave, else why not. */
static const char *
fz_check_tree(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[PATH_MAX];
	struct stat st;
	const char *why = NULL;

	if (d == NULL || depth > 64) {
		if (d != NULL) {
			closedir(d);
		}
		return "a staged directory cannot be read, or nests too deep";
	}
	while (why == NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (lstat(p, &st) != 0) {
			why = "a staged entry vanished";
		} else if (S_ISDIR(st.st_mode)) {
			why = fz_check_tree(p, depth + 1);
		} else if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
			why = "a staged entry is neither a file, a directory nor a symlink";
		}
		if (why == NULL && (st.st_mode & 07000) != 0) {
			why = "a staged entry has setuid, setgid or sticky bits";
		}
	}
	closedir(d);
	return why;
}

/* One input, in the private directory (the calling thread's working directory). */
static const char *
fz_extract_one(const uint8_t *data, size_t size)
{
	struct extract_limits lim = { 4u << 20, 1000, 0 };
	struct release_check_limits clim = { 4u << 20, 1000 };
	struct extract *x = NULL;
	struct err e = ERR_INIT;
	char sha[65];
	size_t off = 0, step = size > 0 ? (size_t)data[0] + 1 : 1;
	int checked;
	const char *why;
	DIR *d;
	struct dirent *de;

	if (fs_write_atomic(FZ_INPUT, data, size, 0600) != 0) {
		return "cannot write the input";
	}
	checked = release_check_file(FZ_INPUT, &clim, 0, NULL, NULL, NULL, &e) == 0;
	err_clear(&e);
	if (extract_begin(FZ_STAGE, &lim, &x, &e) != 0) {
		return "extract_begin failed";
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
		if (e.kind == ERR_OK) {
			return "extraction failed without saying why";
		}
		if (checked && (e.kind == ERR_FORMAT || e.kind == ERR_LIMIT)) {
			return "extraction refused for its format or limits a release the check accepted";
		}
	}
	why = fz_check_tree(FZ_STAGE, 0);
	if (why != NULL) {
		return why;
	}
	/* Only the staging directory and the input may exist in the private directory. */
	d = opendir(".");
	if (d == NULL) {
		return "cannot read the private directory";
	}
	while (why == NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, FZ_STAGE) != 0 && strcmp(de->d_name, FZ_INPUT) != 0) {
			why = "extraction left something beside the staging directory";
		}
	}
	closedir(d);
	if (why == NULL && fs_rmtree(FZ_STAGE) != 0) {
		why = "cannot remove the staging directory";
	}
	return why;
}

struct fz_job {
	const uint8_t *data;
	size_t size;
	const char *why;  /* NULL: the input passed */
};

static void *
fz_worker(void *arg)
{
	struct fz_job *jb = arg;

	/* A working directory of this thread's own (and its extractor's), not the process's. */
	if (unshare(CLONE_FS) != 0 || chdir(fz_root) != 0) {
		jb->why = "cannot enter the private directory";
		return NULL;
	}
	jb->why = fz_extract_one(jb->data, jb->size);
	return NULL;
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
	struct fz_job jb;
	pthread_t t;

	if (fz_root[0] == '\0') {
		log_init("fuzz_extract", LOG_LVL_ERROR);
		if (fs_mkdtemp("fuzz-extract-", fz_root, sizeof(fz_root)) != 0 ||
		    atexit(fz_cleanup) != 0) {
			__builtin_trap();
		}
	}
	if (size > 0 && (data[0] & 1) != 0) {
		if (fz_gzip(data + 1, size - 1, &gz) != 0) {
			free(gz.p);
			return 0;
		}
		data = gz.p;
		size = gz.len;
	}
	jb.data = data;
	jb.size = size;
	jb.why = NULL;
	if (pthread_create(&t, NULL, fz_worker, &jb) != 0 || pthread_join(t, NULL) != 0) {
		__builtin_trap();
	}
	free(gz.p);
	if (jb.why != NULL) {
		fprintf(stderr, "fuzz_extract: %s\n", jb.why);
		__builtin_trap();
	}
	return 0;
}
