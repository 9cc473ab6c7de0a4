/*
 * log — the one logging API.
 *
 * Every call preserves errno. log_warn() appends strerror(errno) of the errno
 * at the moment of the call; log_warnx() does not. fatal()/fatalx() log and
 * exit(1). Control bytes in the message (newlines included; tab excepted)
 * become '?', so one call is always exactly one line; messages longer than
 * about 2 KiB are cut.
 *
 * Format (log_set_format):
 *   text  "TIMESTAMP PROG[PID]: LEVEL: message", TIMESTAMP being UTC
 *         "YYYY-MM-DDTHH:MM:SS.mmmZ"; a log_event() line ends with
 *         " [event=NAME key=value ...]".
 *   json  one object per line: {"ts","level","prog","pid","msg"}, plus
 *         "errno" and "error" for log_warn()/fatal(), plus "event" and the
 *         event's keys for log_event(). Strings that are not valid UTF-8
 *         have the bad bytes replaced by U+FFFD (common/json).
 *
 * Destination: a log file when one is open (log_open_file), else the target
 * (log_set_target): stderr, or the systemd journal through its native
 * socket (/run/systemd/journal/socket: MESSAGE, PRIORITY,
 * SYSLOG_IDENTIFIER, and TANDEM_EVENT / TANDEM_<KEY> for events), which
 * files the line under the unit of the sending process, whatever its stderr
 * is connected to. A line the journal does not take (journald restarting,
 * its queue full) goes to stderr instead of being lost.
 */
#ifndef TANDEM_LOG_H
#define TANDEM_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
};

enum log_format {
	LOG_FMT_TEXT = 0,
	LOG_FMT_JSON = 1,
};

enum log_target {
	LOG_TO_STDERR = 0,
	LOG_TO_JOURNAL = 1,
	/* The journal when systemd runs us (INVOCATION_ID is set), else stderr. */
	LOG_TO_AUTO = 2,
};

/* The journal's native socket (tests point it elsewhere with log_set_journal_socket). */
#define LOG_JOURNAL_SOCKET "/run/systemd/journal/socket"

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Set the program name shown on every line and the threshold. */
void log_init(const char *progname, enum log_level level);
/*
 * Plain lines for a command-line tool talking to a person: "PROG: LEVEL:
 * message" ("PROG: message" for info), no timestamp and no PID. Off by
 * default (daemons keep the full format).
 */
void log_set_plain(int on);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; returns -1 for anything else. */
int log_level_parse(const char *name) __attribute__((warn_unused_result));
const char *log_level_name(enum log_level level);

/* Parse "text|json" / "stderr|journal|auto"; -1 for anything else. */
int log_format_parse(const char *name) __attribute__((warn_unused_result));
const char *log_format_name(enum log_format format);
int log_target_parse(const char *name) __attribute__((warn_unused_result));
const char *log_target_name(enum log_target target);

void log_set_format(enum log_format format);

/*
 * Choose where lines go while no log file is open. LOG_TO_AUTO resolves here
 * (environment looked at once). For the journal, a datagram socket is opened
 * (close-on-exec); when that fails the target stays stderr and -1 is
 * returned with errno set. Returns 0 otherwise.
 */
int log_set_target(enum log_target target) __attribute__((warn_unused_result));
/* The target in effect: LOG_TO_STDERR or LOG_TO_JOURNAL. */
enum log_target log_get_target(void);
/* Tests: send journal datagrams to PATH instead of LOG_JOURNAL_SOCKET (NULL: default). */
void log_set_journal_socket(const char *path);

/*
 * Send output to PATH (append, 0640, O_CLOEXEC) instead of the target.
 * Calling it again reopens the file (SIGHUP, after log rotation). NULL
 * returns to the target. Returns 0, or -1 with errno set (the previous
 * destination is kept).
 */
int log_open_file(const char *path) __attribute__((warn_unused_result));

/*
 * Cap the log file (log_open_file): before a line would take it past MAX
 * bytes, PATH becomes PATH.1 (PATH.1 PATH.2, ... up to PATH.KEEP, the
 * oldest dropped; log_rotate_shift) and a new PATH is opened. MAX 0: no
 * cap (the default). KEEP 1..LOG_KEEP_MAX.
 */
void log_set_file_cap(unsigned long long max, unsigned keep);

/* Most rotated files a cap keeps (PATH.1 .. PATH.LOG_KEEP_MAX). */
#define LOG_KEEP_MAX 20

/*
 * Make room for a new PATH.1: PATH.KEEP is removed, then PATH.(KEEP-1) is
 * renamed to PATH.KEEP, ..., PATH.1 to PATH.2 (missing ones skipped). The
 * one owner of the numbered names, for the log file here and for the logs
 * a daemon caps for a child (updater/logcap). 0, or -1 with errno set.
 */
int log_rotate_shift(const char *path, unsigned keep) __attribute__((warn_unused_result));

/*
 * A daemon's log settings from its configuration in one call: threshold
 * LEVEL, FORMAT, TARGET, and FILE (NULL: none), which takes precedence over
 * TARGET. Returns 0, or -1 with errno set when FILE cannot be opened (a
 * journal that cannot be reached is not an error: lines go to stderr, and
 * a warning says so).
 */
int log_configure(int level, int format, int target, const char *file)
    __attribute__((warn_unused_result));

/* A key and value of an event (both NUL-terminated; value control bytes become '?'). */
struct log_kv {
	const char *key;
	const char *value;
};

void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warnx(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
void log_vmsg(enum log_level level, int with_errno, const char *fmt, va_list ap) LOG_PRINTF(3, 0);

/*
 * A line that names what happened in machine-readable form: EVENT (e.g.
 * "bundle.installed") and N key/value pairs (keys [a-z0-9_]+; others, and
 * keys that collide with the line's own fields, are left out), beside the
 * human message.
 */
void log_event(enum log_level level, const char *event, const struct log_kv *kv, size_t n,
    const char *fmt, ...) LOG_PRINTF(5, 6);

#endif
