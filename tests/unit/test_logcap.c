/*
 * Unit tests for updater/logcap: a file another writer appends to (O_APPEND,
 * as the agent's stdout/stderr) is copied to PATH.1 and truncated once it
 * is past the cap, by an explicit check and by the watcher thread on its
 * own; the writer's next line lands at the new start; at most KEEP copies
 * remain; bad arguments are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/util.h"
#include "updater/logcap.h"
#include "tests/unit/tmpdir.h"

struct fx {
	char path[160];
	char p1[168], p2[168], p3[168];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	if (tmpdir_make("logcap") == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/agent.log", tmpdir_path());
	snprintf(f->p1, sizeof(f->p1), "%s.1", f->path);
	snprintf(f->p2, sizeof(f->p2), "%s.2", f->path);
	snprintf(f->p3, sizeof(f->p3), "%s.3", f->path);
	*state = f;
	return 0;
}

static off_t
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Append N (<= 20) numbered 100-byte lines from FIRST through FD (O_APPEND), in one write. */
static void
append_lines(int fd, int first, int n)
{
	char buf[20 * 100 + 1];

	assert_true(n <= 20);
	for (int i = 0; i < n; i++) {
		snprintf(buf + i * 100, 101, "%-99d\n", first + i);
	}
	assert_int_equal(write(fd, buf, (size_t)n * 100), n * 100);
}

/* An explicit check: copy, truncate, the writer goes on at the start. */
static void
test_check_rotates(void **state)
{
	struct fx *f = *state;
	struct logcap *lc = NULL;
	struct err e = ERR_INIT;
	char *s = NULL;
	int fd;

	fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(logcap_start(f->path, 1000, 2, &lc, &e), 0);
	assert_int_equal(logcap_check(lc), 0); /* empty: nothing to do */
	append_lines(fd, 0, 10);
	assert_int_equal(logcap_check(lc), 0); /* exactly at the cap: still fine */
	append_lines(fd, 10, 5);
	/* The watcher may have been first: either way the file was cut. */
	(void)logcap_check(lc);
	assert_true(logcap_rotations(lc) >= 1);
	assert_int_equal(size_of(f->p1), 1500);
	assert_int_equal(size_of(f->path), 0);
	assert_int_equal(fs_read_file(f->p1, 1 << 20, &s, NULL), 0);
	assert_int_equal(strtol(s, NULL, 10), 0);
	assert_int_equal(strtol(s + 1400, NULL, 10), 14);
	free(s);
	append_lines(fd, 15, 1);
	assert_int_equal(fs_read_file(f->path, 1 << 20, &s, NULL), 0);
	assert_int_equal(strlen(s), 100);
	assert_int_equal(strtol(s, NULL, 10), 15);
	free(s);
	logcap_stop(lc);
	close(fd);
}

/* The watcher alone keeps a continuously written file near the cap. */
static void
test_watcher_keeps_cap(void **state)
{
	struct fx *f = *state;
	struct logcap *lc = NULL;
	struct err e = ERR_INIT;
	off_t sz;
	int64_t end;
	int fd, i = 0;

	fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(logcap_start(f->path, 4096, 2, &lc, &e), 0);
	end = mono_ms() + 3000;
	while (logcap_rotations(lc) < 5 && mono_ms() < end) {
		append_lines(fd, i, 1);
		i++;
		sz = size_of(f->path);
		if (sz > 64 * 4096) {
			/* The watcher fell behind: slow down so it can be seen to work. */
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	assert_true(logcap_rotations(lc) >= 5);
	assert_true(size_of(f->p1) > 0 && size_of(f->p1) <= 2 * 4096);
	assert_true(size_of(f->p2) > 0 && size_of(f->p2) <= 2 * 4096);
	assert_int_equal(size_of(f->p3), -1);
	logcap_stop(lc);
	close(fd);
}

/* The file may not exist yet, or be replaced; a missing one is no error. */
static void
test_missing_file(void **state)
{
	struct fx *f = *state;
	struct logcap *lc = NULL;
	struct err e = ERR_INIT;

	assert_int_equal(logcap_start(f->path, 1000, 1, &lc, &e), 0);
	assert_int_equal(logcap_check(lc), 0);
	logcap_stop(lc);
}

static void
test_bad_arguments(void **state)
{
	struct fx *f = *state;
	struct logcap *lc = NULL;
	struct err e = ERR_INIT;

	assert_int_equal(logcap_start(f->path, 0, 1, &lc, &e), -1);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_int_equal(logcap_start(f->path, 1000, 0, &lc, &e), -1);
	assert_int_equal(logcap_start(f->path, 1000, LOG_KEEP_MAX + 1, &lc, &e), -1);
	assert_int_equal(logcap_start("/tmp/", 1000, 1, &lc, &e), -1);
	assert_int_equal(logcap_start("", 1000, 1, &lc, &e), -1);
	assert_null(lc);
	logcap_stop(NULL);
	assert_int_equal(logcap_check(NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_check_rotates, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_watcher_keeps_cap, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, tmpdir_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
