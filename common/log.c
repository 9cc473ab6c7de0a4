#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "tandem";
static enum log_level log_threshold = LOG_LVL_INFO;
static int log_fd = -1; /* -1: stderr */
static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
log_init(const char *progname, enum log_level level)
{
	if (progname != NULL) {
		const char *slash = strrchr(progname, '/');
		log_prog = slash != NULL ? slash + 1 : progname;
	}
	log_threshold = level;
}

void
log_set_level(enum log_level level)
{
	log_threshold = level;
}

enum log_level
log_get_level(void)
{
	return log_threshold;
}

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (name != NULL && strcmp(name, level_names[i]) == 0) {
			return (int)i;
		}
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0])) {
		return level_names[level];
	}
	return "?";
}

int
log_open_file(const char *path)
{
	int fd = -1;

	if (path != NULL) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
		if (fd < 0) {
			return -1;
		}
	}
	pthread_mutex_lock(&log_mtx);
	int old = log_fd;
	log_fd = fd;
	pthread_mutex_unlock(&log_mtx);
	if (old >= 0) {
		close(old);
	}
	return 0;
}

void
log_vmsg(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	int saved = errno;
	char msg[2048];
	char line[2300];
	char ts[40];
	struct timespec now;
	struct tm tm;

	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0])) {
		level = LOG_LVL_ERROR;
	}
	if (level > log_threshold) {
		errno = saved;
		return;
	}
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0) {
		msg[0] = '\0';
	}
	/*
	 * Messages quote outside text (paths, names, peer data): a newline or
	 * another control byte there must not forge or split a log line.
	 */
	for (char *c = msg; *c != '\0'; c++) {
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) {
			*c = '?';
		}
	}
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	int n;
	if (with_errno) {
		n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld]: %s: %s: %s\n", ts,
		    now.tv_nsec / 1000000L, log_prog, (long)getpid(), level_names[level], msg,
		    strerror(saved));
	} else {
		n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld]: %s: %s\n", ts,
		    now.tv_nsec / 1000000L, log_prog, (long)getpid(), level_names[level], msg);
	}
	if (n < 0) {
		errno = saved;
		return;
	}
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	if (len > 0 && (size_t)n >= sizeof(line)) {
		line[len - 1] = '\n';
	}
	pthread_mutex_lock(&log_mtx);
	int fd = log_fd >= 0 ? log_fd : STDERR_FILENO;
	/* One write(2) per line keeps lines whole across threads and processes. */
	ssize_t w = write(fd, line, len);
	(void)w;
	pthread_mutex_unlock(&log_mtx);
	errno = saved;
}

#define LOG_BODY(lvl, werr) \
	do { \
		va_list ap; \
		va_start(ap, fmt); \
		log_vmsg(lvl, werr, fmt, ap); \
		va_end(ap); \
	} while (0)

void
log_warn(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_WARN, 1);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_WARN, 0);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_INFO, 0);
}

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_DEBUG, 0);
}

void
fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_ERROR, 1);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_ERROR, 0);
	exit(1);
}
