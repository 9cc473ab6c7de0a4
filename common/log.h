/*
 * log — the one logging API.
 *
 * Every call preserves errno. log_warn() appends strerror(errno) of the errno
 * at the moment of the call; log_warnx() does not. fatal()/fatalx() log and
 * exit(1). Output goes to stderr (foreground) or to a log file opened with
 * log_open_file(); each line is "TIMESTAMP PROG[PID]: LEVEL: message",
 * TIMESTAMP being UTC "YYYY-MM-DDTHH:MM:SS.mmmZ". Control bytes in the
 * message (newlines included; tab excepted) become '?', so one call is always
 * exactly one line; lines longer than about 2 KiB are cut.
 */
#ifndef TANDEM_LOG_H
#define TANDEM_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
};

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Set the program name shown on every line and the threshold. */
void log_init(const char *progname, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; returns -1 for anything else. */
int log_level_parse(const char *name) __attribute__((warn_unused_result));
const char *log_level_name(enum log_level level);

/*
 * Send output to PATH (append, 0640, O_CLOEXEC) instead of stderr. Calling it
 * again reopens the file (SIGHUP, after log rotation). NULL returns to stderr.
 * Returns 0, or -1 with errno set (the previous destination is kept).
 */
int log_open_file(const char *path) __attribute__((warn_unused_result));

void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void log_vmsg(enum log_level level, int with_errno, const char *fmt, va_list ap) LOG_PRINTF(3, 0);

#endif
