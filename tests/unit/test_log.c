/*
 * Unit tests for common/log: level names and thresholds, the line format,
 * errno preservation, log files (reopen, failure keeps the old one), control
 * bytes, long lines, threads, and fatal()'s exit status.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"

struct fx {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "/tmp/tandem-ut-log-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/test.log", f->dir);
	log_init("/usr/sbin/test-log", LOG_LVL_INFO);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int rc = 0;

	if (log_open_file(NULL) != 0) {
		rc = -1;
	}
	if (fs_rmtree(f->dir) != 0) {
		rc = -1;
	}
	free(f);
	return rc;
}

/* The whole log file as a string (caller frees). */
static char *
slurp(const char *path)
{
	char *buf = NULL;

	if (fs_read_file(path, 1 << 22, &buf, NULL) != 0) {
		fail_msg("cannot read %s: %s", path, strerror(errno));
	}
	return buf;
}

static size_t
count_lines(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		n += *s == '\n';
	}
	return n;
}

static void
assert_matches(const char *s, const char *re)
{
	regex_t rx;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	int r = regexec(&rx, s, 0, NULL, 0);
	regfree(&rx);
	if (r != 0) {
		fail_msg("'%s' does not match /%s/", s, re);
	}
}

static void vlog(enum log_level level, const char *fmt, ...) LOG_PRINTF(2, 3);

static void
vlog(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, 0, fmt, ap);
	va_end(ap);
}

static void
test_level_names(void **state)
{
	(void)state;
	assert_int_equal(log_level_parse("error"), LOG_LVL_ERROR);
	assert_int_equal(log_level_parse("warn"), LOG_LVL_WARN);
	assert_int_equal(log_level_parse("info"), LOG_LVL_INFO);
	assert_int_equal(log_level_parse("debug"), LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("WARN"), -1);
	assert_int_equal(log_level_parse("warning"), -1);
	assert_int_equal(log_level_parse("info "), -1);
	assert_int_equal(log_level_parse(""), -1);
	assert_int_equal(log_level_parse(NULL), -1);
	for (int l = LOG_LVL_ERROR; l <= LOG_LVL_DEBUG; l++) {
		assert_int_equal(log_level_parse(log_level_name((enum log_level)l)), l);
	}
	assert_string_equal(log_level_name((enum log_level)7), "?");
	log_set_level(LOG_LVL_DEBUG);
	assert_int_equal(log_get_level(), LOG_LVL_DEBUG);
	log_set_level(LOG_LVL_ERROR);
	assert_int_equal(log_get_level(), LOG_LVL_ERROR);
}

static void
test_format(void **state)
{
	struct fx *f = *state;
	char re[256];

	assert_int_equal(log_open_file(f->path), 0);
	log_info("hello %d %s", 42, "world");
	char *s = slurp(f->path);
	/* The program name loses its directory; the PID is ours. */
	snprintf(re, sizeof(re),
	    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	    "test-log\\[%ld\\]: info: hello 42 world\n$",
	    (long)getpid());
	assert_matches(s, re);
	free(s);
}

static void
test_thresholds(void **state)
{
	struct fx *f = *state;

	assert_int_equal(log_open_file(f->path), 0);
	log_set_level(LOG_LVL_WARN);
	log_debug("d1");
	log_info("i1");
	log_warnx("w1");
	log_set_level(LOG_LVL_ERROR);
	log_warnx("w2");
	log_set_level(LOG_LVL_DEBUG);
	log_debug("d2");
	log_info("i2");
	char *s = slurp(f->path);
	assert_int_equal(count_lines(s), 3);
	assert_non_null(strstr(s, ": warn: w1\n"));
	assert_non_null(strstr(s, ": debug: d2\n"));
	assert_non_null(strstr(s, ": info: i2\n"));
	assert_null(strstr(s, "d1"));
	assert_null(strstr(s, "i1"));
	assert_null(strstr(s, "w2"));
	free(s);
	/* A level out of the enum is logged as an error, never read past the table. */
	log_set_level(LOG_LVL_ERROR);
	vlog((enum log_level)9, "odd level");
	s = slurp(f->path);
	assert_non_null(strstr(s, ": error: odd level\n"));
	free(s);
}

static void
test_errno(void **state)
{
	struct fx *f = *state;

	assert_int_equal(log_open_file(f->path), 0);
	log_set_level(LOG_LVL_INFO);
	errno = ENOENT;
	log_warn("open %s", "/nonexistent");
	assert_int_equal(errno, ENOENT);
	errno = EACCES;
	log_warnx("no errno here");
	assert_int_equal(errno, EACCES);
	errno = EPIPE;
	log_debug("suppressed");
	assert_int_equal(errno, EPIPE);
	errno = EEXIST;
	log_info("%s", "plain");
	assert_int_equal(errno, EEXIST);
	char *s = slurp(f->path);
	assert_non_null(strstr(s, ": warn: open /nonexistent: No such file or directory\n"));
	assert_non_null(strstr(s, ": warn: no errno here\n"));
	assert_null(strstr(s, "Permission denied"));
	assert_non_null(strstr(s, ": info: plain\n"));
	free(s);
}

static void
test_file_reopen_and_failure(void **state)
{
	struct fx *f = *state;
	char rotated[160], bad[160];
	struct stat st;

	mode_t old = umask(022);
	assert_int_equal(log_open_file(f->path), 0);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	log_info("before rotation");
	snprintf(rotated, sizeof(rotated), "%s.1", f->path);
	assert_int_equal(rename(f->path, rotated), 0);
	log_info("still to the rotated file");
	assert_int_equal(log_open_file(f->path), 0);
	log_info("after reopen");

	/* A failed open keeps the current destination and sets errno. */
	snprintf(bad, sizeof(bad), "%s/missing-dir/x.log", f->dir);
	errno = 0;
	assert_int_equal(log_open_file(bad), -1);
	assert_int_equal(errno, ENOENT);
	log_info("after failed open");

	char *r = slurp(rotated);
	char *s = slurp(f->path);
	assert_int_equal(count_lines(r), 2);
	assert_non_null(strstr(r, "before rotation"));
	assert_non_null(strstr(r, "still to the rotated file"));
	assert_int_equal(count_lines(s), 2);
	assert_non_null(strstr(s, "after reopen"));
	assert_non_null(strstr(s, "after failed open"));
	free(r);
	free(s);

	/* Appends, never truncates. */
	assert_int_equal(log_open_file(f->path), 0);
	log_info("third");
	s = slurp(f->path);
	assert_int_equal(count_lines(s), 3);
	free(s);
	/* The log descriptor is not inherited by exec'd children. */
	int fds = 0;
	for (int fd = 3; fd < 64; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl >= 0 && !(fl & FD_CLOEXEC)) {
			char lp[64], tgt[256];
			snprintf(lp, sizeof(lp), "/proc/self/fd/%d", fd);
			ssize_t n = readlink(lp, tgt, sizeof(tgt) - 1);
			if (n > 0) {
				tgt[n] = '\0';
				fds += strstr(tgt, "test.log") != NULL;
			}
		}
	}
	assert_int_equal(fds, 0);
}

static void
test_stderr_default(void **state)
{
	struct fx *f = *state;
	char path[160];

	snprintf(path, sizeof(path), "%s/stderr.txt", f->dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	/* NULL returns to stderr after a file was in use. */
	assert_int_equal(log_open_file(f->path), 0);
	assert_int_equal(log_open_file(NULL), 0);
	log_info("to stderr");
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(fd);
	char *s = slurp(path);
	assert_non_null(strstr(s, ": info: to stderr\n"));
	assert_int_equal(count_lines(s), 1);
	free(s);
}

static void
test_control_bytes_and_long_lines(void **state)
{
	struct fx *f = *state;
	char big[5000];

	assert_int_equal(log_open_file(f->path), 0);
	/* Outside text cannot forge a second line or move the cursor. */
	log_info("name=%s", "evil\n2026-01-01T00:00:00.000Z tandem[1]: info: forged\r\x1b[2J");
	log_info("tab\tkept");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_warnx("%s", big);
	char *s = slurp(f->path);
	assert_int_equal(count_lines(s), 3);
	assert_non_null(strstr(s, "name=evil?2026-01-01T00:00:00.000Z tandem[1]: info: forged??[2J\n"));
	assert_non_null(strstr(s, "tab\tkept\n"));
	/* The long message is cut but its line still ends with a newline. */
	char *third = strstr(s, ": warn: ");
	assert_non_null(third);
	char *nl = strchr(third, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
	assert_true(nl - third > 1000);
	assert_true(nl - third < 4000);
	free(s);
}

#define THREADS 4
#define PER_THREAD 300

static void *
writer(void *arg)
{
	long id = (long)(intptr_t)arg;

	for (int i = 0; i < PER_THREAD; i++) {
		log_info("thread %ld line %d %s", id, i, "padding-padding-padding-padding");
	}
	return NULL;
}

static void
test_threads_whole_lines(void **state)
{
	struct fx *f = *state;
	pthread_t t[THREADS];

	assert_int_equal(log_open_file(f->path), 0);
	for (long i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
	}
	char *s = slurp(f->path);
	assert_int_equal(count_lines(s), THREADS * PER_THREAD);
	regex_t rx;
	assert_int_equal(regcomp(&rx,
	    "^[0-9T:.-]+Z test-log\\[[0-9]+\\]: info: thread [0-9] line [0-9]+ padding-padding-"
	    "padding-padding$", REG_EXTENDED | REG_NOSUB), 0);
	int bad = 0;
	for (char *line = s, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		*nl = '\0';
		bad += regexec(&rx, line, 0, NULL, 0) != 0;
	}
	regfree(&rx);
	assert_int_equal(bad, 0);
	free(s);
}

static void
test_fatal_exits(void **state)
{
	struct fx *f = *state;
	int status;

	assert_int_equal(log_open_file(f->path), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		errno = EBADF;
		fatal("giving up on %s", "it");
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Even at the quietest threshold a fatal error is logged. */
		log_set_level(LOG_LVL_ERROR);
		fatalx("no %s", "errno");
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	char *s = slurp(f->path);
	assert_non_null(strstr(s, ": error: giving up on it: Bad file descriptor\n"));
	assert_non_null(strstr(s, ": error: no errno\n"));
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_names),
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thresholds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errno, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_reopen_and_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_bytes_and_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_whole_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fatal_exits, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
