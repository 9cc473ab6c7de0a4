/*
 * Fuzz updater/extract: the fuzzer's bytes are an uploaded tarball, fed in
 * chunks (sizes derived from the input) into a fresh staging directory under
 * a private temporary directory. Afterwards nothing may exist outside it,
 * and everything inside must be a regular file, directory or symlink.
 */
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
#include "updater/extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_root[PATH_MAX];

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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct extract_limits lim = { 4u << 20, 1000, 0 };
	struct extract *x = NULL;
	char err[512], sha[65];
	size_t off = 0, step = size > 0 ? (size_t)data[0] + 1 : 1;
	DIR *d;
	struct dirent *de;

	if (fz_root[0] == '\0') {
		log_init("fuzz_extract", LOG_LVL_ERROR);
		snprintf(fz_root, sizeof(fz_root), "/tmp/fuzz_extract.XXXXXX");
		if (mkdtemp(fz_root) == NULL || chdir(fz_root) != 0) {
			__builtin_trap();
		}
	}
	if (extract_begin("stage", &lim, &x, err, sizeof(err)) != 0) {
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
	(void)extract_finish(x, sha, NULL, NULL, err, sizeof(err));
	fz_check_tree("stage", 0);
	/* Only "stage" may exist in the working directory. */
	d = opendir(".");
	if (d == NULL) {
		__builtin_trap();
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, "stage") != 0) {
			__builtin_trap();
		}
	}
	closedir(d);
	if (fs_rmtree("stage") != 0) {
		__builtin_trap();
	}
	return 0;
}
