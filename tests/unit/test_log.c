/*
 * Unit tests for common/log: level names and thresholds, the line format,
 * errno preservation, log files (reopen, failure keeps the old one), control
 * bytes, long lines, threads, fatal()'s exit status, JSON lines, events, and
 * the journal target (a datagram socket of the test's own standing in for
 * journald's).
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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "tests/unit/tmpdir.h"

struct fx {
	const char *dir;
	char path[PATH_MAX];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("log");
	if (f->dir == NULL) {
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
	log_set_format(LOG_FMT_TEXT);
	log_set_journal_socket(NULL);
	if (log_set_target(LOG_TO_STDERR) != 0) {
		rc = -1;
	}
	if (tmpdir_remove() != 0) {
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

static off_t
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/*
 * The cap: the file never passes MAX; before it would, it becomes PATH.1
 * (PATH.1 PATH.2, ...) and at most KEEP copies remain, each of whole lines.
 */
static void
test_file_cap_rotates(void **state)
{
	struct fx *f = *state;
	char p1[PATH_MAX], p2[PATH_MAX], p3[PATH_MAX];

	tmpdir_fmt(p1, sizeof(p1), "%s.1", f->path);
	tmpdir_fmt(p2, sizeof(p2), "%s.2", f->path);
	tmpdir_fmt(p3, sizeof(p3), "%s.3", f->path);
	log_set_file_cap(1000, 2);
	assert_int_equal(log_open_file(f->path), 0);
	for (int i = 0; i < 100; i++) {
		log_info("line %03d of a log that passes its cap several times", i);
		assert_true(size_of(f->path) <= 1000);
	}
	assert_true(size_of(p1) > 0 && size_of(p1) <= 1000);
	assert_true(size_of(p2) > 0 && size_of(p2) <= 1000);
	assert_int_equal(size_of(p3), -1);
	char *s = slurp(f->path);
	assert_non_null(strstr(s, "line 099 of"));
	free(s);
	s = slurp(p1);
	assert_null(strstr(s, "line 099 of"));
	assert_int_equal(s[strlen(s) - 1], '\n');
	free(s);
	/* A line longer than the cap still goes out, alone in its file. */
	log_set_file_cap(64, 1);
	log_info("a line far longer than sixty-four bytes, written whole all the same");
	s = slurp(f->path);
	assert_non_null(strstr(s, "written whole"));
	free(s);
	log_set_file_cap(0, 1);
}

/* The numbered names shift up, the oldest is dropped; bad KEEP is EINVAL. */
static void
test_rotate_shift(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	for (int i = 1; i <= 3; i++) {
		tmpdir_fmt(p, sizeof(p), "%s.%d", f->path, i);
		assert_int_equal(fs_write_atomic(p, "x", 1, 0600) == 0 ? 0 : -1, 0);
	}
	assert_int_equal(log_rotate_shift(f->path, 3), 0);
	tmpdir_fmt(p, sizeof(p), "%s.1", f->path);
	assert_int_equal(size_of(p), -1);
	tmpdir_fmt(p, sizeof(p), "%s.4", f->path);
	assert_int_equal(size_of(p), -1);
	tmpdir_fmt(p, sizeof(p), "%s.3", f->path);
	assert_int_equal(size_of(p), 1);
	errno = 0;
	assert_int_equal(log_rotate_shift(f->path, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(log_rotate_shift(f->path, LOG_KEEP_MAX + 1), -1);
}

/* The plain style of a command-line tool: no timestamp, no PID; info has no level word. */
static void
test_plain(void **state)
{
	struct fx *f = *state;

	assert_int_equal(log_open_file(f->path), 0);
	log_set_plain(1);
	log_info("enrolled %s", "web1");
	log_warnx("careful\nthere");
	errno = ENOENT;
	log_warn("open %s", "/x");
	log_set_plain(0);
	log_info("back");
	char *s = slurp(f->path);
	assert_non_null(strstr(s, "test-log: enrolled web1\n"
				  "test-log: warn: careful?there\n"
				  "test-log: warn: open /x: No such file or directory\n"));
	assert_matches(s, "Z test-log\\[[0-9]+\\]: info: back\n$");
	assert_int_equal(count_lines(s), 4);
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
	char rotated[PATH_MAX], bad[PATH_MAX];
	struct stat st;

	mode_t old = umask(022);
	assert_int_equal(log_open_file(f->path), 0);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	log_info("before rotation");
	tmpdir_fmt(rotated, sizeof(rotated), "%s.1", f->path);
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
			char lp[64], tgt[PATH_MAX];
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
	char path[PATH_MAX];

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


static void
test_format_and_target_names(void **state)
{
	(void)state;
	assert_int_equal(log_format_parse("text"), LOG_FMT_TEXT);
	assert_int_equal(log_format_parse("json"), LOG_FMT_JSON);
	assert_int_equal(log_format_parse("JSON"), -1);
	assert_int_equal(log_format_parse(""), -1);
	assert_int_equal(log_format_parse(NULL), -1);
	assert_string_equal(log_format_name(LOG_FMT_JSON), "json");
	assert_string_equal(log_format_name((enum log_format)5), "?");
	assert_int_equal(log_target_parse("stderr"), LOG_TO_STDERR);
	assert_int_equal(log_target_parse("journal"), LOG_TO_JOURNAL);
	assert_int_equal(log_target_parse("auto"), LOG_TO_AUTO);
	assert_int_equal(log_target_parse("syslog"), -1);
	assert_int_equal(log_target_parse(NULL), -1);
	for (int t = LOG_TO_STDERR; t <= LOG_TO_AUTO; t++) {
		assert_int_equal(log_target_parse(log_target_name((enum log_target)t)), t);
	}
}

/* Line I (0-based) of S parsed as one JSON object (strict: common/json). */
static cJSON *
json_line(const char *s, int i)
{
	struct err e = ERR_INIT;

	for (; i > 0; i--) {
		s = strchr(s, '\n');
		assert_non_null(s);
		s++;
	}
	const char *nl = strchr(s, '\n');
	assert_non_null(nl);
	cJSON *o = json_parse_object(s, (size_t)(nl - s), &e);
	if (o == NULL) {
		fail_msg("line %.*s: %s", (int)(nl - s), s, e.msg);
	}
	return o;
}

static const char *
jstr(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void
test_json_lines(void **state)
{
	struct fx *f = *state;
	const struct log_kv kv[] = {
		{ "host", "web1" },
		{ "msg", "may not replace the message" },
		{ "Bad-Key", "left out" },
		{ "note", "two\nlines" },
		{ "none", NULL },
	};

	assert_int_equal(log_open_file(f->path), 0);
	log_set_level(LOG_LVL_INFO);
	log_set_format(LOG_FMT_JSON);
	log_info("plain \"quoted\" \\ tab\t and bad utf-8 \xff here");
	errno = ENOENT;
	log_warn("open %s", "/nonexistent");
	assert_int_equal(errno, ENOENT);
	log_event(LOG_LVL_INFO, "bundle.installed", kv, sizeof(kv) / sizeof(kv[0]), "installed %d",
	    5);
	log_debug("below the threshold");
	char *s = slurp(f->path);
	assert_int_equal(count_lines(s), 3);

	cJSON *o = json_line(s, 0);
	assert_string_equal(jstr(o, "level"), "info");
	assert_string_equal(jstr(o, "prog"), "test-log");
	assert_string_equal(jstr(o, "msg"), "plain \"quoted\" \\ tab\t and bad utf-8 \xef\xbf\xbd here");
	assert_matches(jstr(o, "ts"), "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z$");
	const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
	assert_true(cJSON_IsNumber(pid) && (long)pid->valuedouble == (long)getpid());
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "errno"));
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "event"));
	cJSON_Delete(o);

	o = json_line(s, 1);
	assert_string_equal(jstr(o, "level"), "warn");
	assert_string_equal(jstr(o, "msg"), "open /nonexistent");
	assert_string_equal(jstr(o, "error"), "No such file or directory");
	assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(o, "errno")->valuedouble, ENOENT);
	cJSON_Delete(o);

	o = json_line(s, 2);
	assert_string_equal(jstr(o, "msg"), "installed 5");
	assert_string_equal(jstr(o, "event"), "bundle.installed");
	assert_string_equal(jstr(o, "host"), "web1");
	assert_string_equal(jstr(o, "note"), "two?lines");
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "Bad-Key"));
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "none"));
	cJSON_Delete(o);
	free(s);
}

static void
test_text_event(void **state)
{
	struct fx *f = *state;
	const struct log_kv kv[] = { { "host", "web1" }, { "why", "a\nb" } };

	assert_int_equal(log_open_file(f->path), 0);
	log_set_level(LOG_LVL_INFO);
	log_event(LOG_LVL_WARN, "bundle.refused", kv, 2, "refused");
	char *s = slurp(f->path);
	assert_int_equal(count_lines(s), 1);
	assert_non_null(strstr(s, ": warn: refused [event=bundle.refused host=web1 why=a?b]\n"));
	free(s);
}

/* A datagram socket bound at DIR/journal.sock, standing in for journald's. */
static int
fake_journal(const struct fx *f, char *path, size_t len)
{
	struct sockaddr_un sa;
	int fd;

	char full[PATH_MAX];

	tmpdir_fmt(full, sizeof(full), "%s/journal.sock", f->dir);
	tmpdir_sock_path(path, len, full);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* The next datagram on FD (non-blocking: the send already happened). */
static void
recv_dgram(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);

	assert_true(n > 0);
	buf[n] = '\0';
}

static void
test_journal_target(void **state)
{
	struct fx *f = *state;
	char sock[PATH_MAX], dg[8192], errpath[160];
	const struct log_kv kv[] = { { "host", "web1" }, { "agent_pin", "ab\ncd" } };

	int jfd = fake_journal(f, sock, sizeof(sock));
	log_set_journal_socket(sock);
	log_set_level(LOG_LVL_DEBUG);
	assert_int_equal(log_set_target(LOG_TO_JOURNAL), 0);
	assert_int_equal(log_get_target(), LOG_TO_JOURNAL);

	log_warnx("disk %s", "low");
	recv_dgram(jfd, dg, sizeof(dg));
	/* journald adds the time, the pid and the unit; the level is PRIORITY. */
	assert_string_equal(dg, "MESSAGE=warn: disk low\nPRIORITY=4\nSYSLOG_IDENTIFIER=test-log\n");
	log_debug("d");
	recv_dgram(jfd, dg, sizeof(dg));
	assert_non_null(strstr(dg, "\nPRIORITY=7\n"));
	log_event(LOG_LVL_INFO, "bundle.installed", kv, 2, "ok");
	recv_dgram(jfd, dg, sizeof(dg));
	assert_string_equal(dg, "MESSAGE=info: ok [event=bundle.installed host=web1 agent_pin=ab?cd]\n"
				"PRIORITY=6\nSYSLOG_IDENTIFIER=test-log\nTANDEM_EVENT=bundle.installed\n"
				"TANDEM_HOST=web1\nTANDEM_AGENT_PIN=ab?cd\n");
	log_set_format(LOG_FMT_JSON);
	log_info("as json");
	recv_dgram(jfd, dg, sizeof(dg));
	assert_true(strncmp(dg, "MESSAGE={\"ts\":", 14) == 0);
	assert_non_null(strstr(dg, "\"msg\":\"as json\"}\nPRIORITY=6\n"));
	log_set_format(LOG_FMT_TEXT);

	/* A log file takes precedence over the target. */
	assert_int_equal(log_open_file(f->path), 0);
	log_info("to the file");
	assert_int_equal(recv(jfd, dg, sizeof(dg), MSG_DONTWAIT), -1);
	assert_int_equal(log_open_file(NULL), 0);

	/* journald gone: the line reaches stderr in the full text form instead. */
	close(jfd);
	unlink(sock);
	snprintf(errpath, sizeof(errpath), "%s/stderr.txt", f->dir);
	int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int saved = dup(STDERR_FILENO);
	assert_true(efd >= 0 && saved >= 0);
	assert_int_equal(dup2(efd, STDERR_FILENO), STDERR_FILENO);
	log_warnx("not lost");
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(efd);
	char *s = slurp(errpath);
	assert_matches(s, "^[0-9T:.-]+Z test-log\\[[0-9]+\\]: warn: not lost\n$");
	free(s);
}

static void
test_target_auto_and_unreachable(void **state)
{
	struct fx *f = *state;
	char sock[PATH_MAX], missing[PATH_MAX], full[PATH_MAX], notsock[PATH_MAX];

	int jfd = fake_journal(f, sock, sizeof(sock));
	log_set_journal_socket(sock);
	/* auto: the journal only when systemd started us (INVOCATION_ID). */
	assert_int_equal(unsetenv("INVOCATION_ID"), 0);
	assert_int_equal(log_set_target(LOG_TO_AUTO), 0);
	assert_int_equal(log_get_target(), LOG_TO_STDERR);
	assert_int_equal(setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef", 1), 0);
	assert_int_equal(log_set_target(LOG_TO_AUTO), 0);
	assert_int_equal(log_get_target(), LOG_TO_JOURNAL);
	assert_int_equal(unsetenv("INVOCATION_ID"), 0);

	/* No journal socket: stderr, and the caller learns why. */
	tmpdir_fmt(full, sizeof(full), "%s/no-such.sock", f->dir);
	tmpdir_sock_path(missing, sizeof(missing), full);
	log_set_journal_socket(missing);
	errno = 0;
	assert_int_equal(log_set_target(LOG_TO_JOURNAL), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(log_get_target(), LOG_TO_STDERR);
	/* A path that is not a socket is refused the same way. */
	tmpdir_sock_path(notsock, sizeof(notsock), f->path);
	log_set_journal_socket(notsock);
	assert_int_equal(log_open_file(f->path), 0);
	assert_int_equal(log_open_file(NULL), 0);
	errno = 0;
	assert_int_equal(log_set_target(LOG_TO_JOURNAL), -1);
	assert_int_equal(errno, ENOTSOCK);

	/* log_configure: the file wins; an unreachable journal is a warning, not an error. */
	assert_int_equal(log_configure(LOG_LVL_INFO, LOG_FMT_TEXT, LOG_TO_JOURNAL, f->path), 0);
	log_info("configured");
	log_set_journal_socket(missing);
	assert_int_equal(log_open_file(NULL), 0);
	assert_int_equal(log_configure(LOG_LVL_WARN, LOG_FMT_JSON, LOG_TO_JOURNAL, NULL), 0);
	assert_int_equal(log_get_level(), LOG_LVL_WARN);
	assert_int_equal(log_get_target(), LOG_TO_STDERR);
	char *s = slurp(f->path);
	assert_non_null(strstr(s, ": info: configured\n"));
	free(s);
	close(jfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_names),
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_cap_rotates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_shift, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thresholds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errno, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_reopen_and_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_control_bytes_and_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_whole_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fatal_exits, setup, teardown),
		cmocka_unit_test(test_format_and_target_names),
		cmocka_unit_test_setup_teardown(test_json_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_auto_and_unreachable, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
