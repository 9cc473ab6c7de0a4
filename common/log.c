#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"

#define LOG_MSG_MAX 2048
#define LOG_LINE_MAX 4096
/* Datagram: the line plus PRIORITY, SYSLOG_IDENTIFIER and the event fields. */
#define LOG_DGRAM_MAX (LOG_LINE_MAX + 1024)
#define LOG_KEY_MAX 32

static const char *log_prog = "tandem";
static enum log_level log_threshold = LOG_LVL_INFO;
static enum log_format log_fmt = LOG_FMT_TEXT;
static int log_plain; /* "PROG: LEVEL: message" for a person (log_set_plain) */
static enum log_target log_tgt = LOG_TO_STDERR;
static int log_fd = -1;  /* a log file; -1: the target */
static char log_path[PATH_MAX];           /* log_fd's path ("" none) */
static unsigned long long log_size;       /* bytes in log_fd's file */
static unsigned long long log_cap_max;    /* 0: no cap */
static unsigned log_cap_keep = 1;
static int log_jfd = -1; /* datagram socket toward the journal */
static struct sockaddr_un log_jaddr;
static char log_jpath[sizeof(log_jaddr.sun_path)] = LOG_JOURNAL_SOCKET;
static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* syslog priorities of the levels (the journal's PRIORITY field). */
static const char *const level_prio[] = { "3", "4", "6", "7" };
static const char *const format_names[] = { "text", "json" };
static const char *const target_names[] = { "stderr", "journal", "auto" };

#define NAMES_LEN(a) (sizeof(a) / sizeof((a)[0]))

static int
log_name_parse(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (name != NULL && strcmp(name, names[i]) == 0) {
			return (int)i;
		}
	}
	return -1;
}

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
log_set_plain(int on)
{
	log_plain = on != 0;
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
	return log_name_parse(level_names, NAMES_LEN(level_names), name);
}

const char *
log_level_name(enum log_level level)
{
	return (unsigned)level < NAMES_LEN(level_names) ? level_names[level] : "?";
}

int
log_format_parse(const char *name)
{
	return log_name_parse(format_names, NAMES_LEN(format_names), name);
}

const char *
log_format_name(enum log_format format)
{
	return (unsigned)format < NAMES_LEN(format_names) ? format_names[format] : "?";
}

int
log_target_parse(const char *name)
{
	return log_name_parse(target_names, NAMES_LEN(target_names), name);
}

const char *
log_target_name(enum log_target target)
{
	return (unsigned)target < NAMES_LEN(target_names) ? target_names[target] : "?";
}

void
log_set_format(enum log_format format)
{
	log_fmt = format == LOG_FMT_JSON ? LOG_FMT_JSON : LOG_FMT_TEXT;
}

void
log_set_journal_socket(const char *path)
{
	snprintf(log_jpath, sizeof(log_jpath), "%s", path != NULL ? path : LOG_JOURNAL_SOCKET);
}

enum log_target
log_get_target(void)
{
	return log_tgt;
}

int
log_set_target(enum log_target target)
{
	struct stat st;
	int fd = -1, old, saved = 0;

	if (target == LOG_TO_AUTO) {
		const char *inv = getenv("INVOCATION_ID");
		target = inv != NULL && inv[0] != '\0' ? LOG_TO_JOURNAL : LOG_TO_STDERR;
	}
	if (target == LOG_TO_JOURNAL) {
		if (stat(log_jpath, &st) != 0) {
			saved = errno;
		} else if (!S_ISSOCK(st.st_mode)) {
			saved = ENOTSOCK;
		} else if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
			saved = errno;
		}
		if (fd < 0) {
			target = LOG_TO_STDERR;
		}
	}
	pthread_mutex_lock(&log_mtx);
	old = log_jfd;
	log_jfd = fd;
	memset(&log_jaddr, 0, sizeof(log_jaddr));
	log_jaddr.sun_family = AF_UNIX;
	memcpy(log_jaddr.sun_path, log_jpath, sizeof(log_jaddr.sun_path));
	log_tgt = target;
	pthread_mutex_unlock(&log_mtx);
	if (old >= 0) {
		close(old);
	}
	if (saved != 0) {
		errno = saved;
		return -1;
	}
	return 0;
}

int
log_rotate_shift(const char *path, unsigned keep)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (keep < 1 || keep > LOG_KEEP_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (snprintf(to, sizeof(to), "%s.%u", path, keep) >= (int)sizeof(to)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (unlink(to) != 0 && errno != ENOENT) {
		return -1;
	}
	for (unsigned i = keep; i > 1; i--) {
		(void)snprintf(from, sizeof(from), "%s.%u", path, i - 1);
		(void)snprintf(to, sizeof(to), "%s.%u", path, i);
		if (rename(from, to) != 0 && errno != ENOENT) {
			return -1;
		}
	}
	return 0;
}

void
log_set_file_cap(unsigned long long max, unsigned keep)
{
	pthread_mutex_lock(&log_mtx);
	log_cap_max = max;
	log_cap_keep = keep < 1 ? 1 : keep > LOG_KEEP_MAX ? LOG_KEEP_MAX : keep;
	pthread_mutex_unlock(&log_mtx);
}

/*
 * With log_mtx held: LEN more bytes would pass the cap, so PATH becomes
 * PATH.1 and a new PATH is opened. When that fails the line still goes to
 * the old file (better a long log than a lost line); the next line tries
 * again.
 */
static void
log_file_rotate(size_t len)
{
	char one[PATH_MAX];
	int fd;

	if (log_cap_max == 0 || log_fd < 0 || log_path[0] == '\0' || log_size == 0 ||
	    log_size + len <= log_cap_max) {
		return;
	}
	if (snprintf(one, sizeof(one), "%s.1", log_path) >= (int)sizeof(one) ||
	    log_rotate_shift(log_path, log_cap_keep) != 0 || rename(log_path, one) != 0) {
		return;
	}
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0) {
		return; /* the old descriptor now writes to PATH.1; the next line tries again */
	}
	close(log_fd);
	log_fd = fd;
	log_size = 0;
}

int
log_open_file(const char *path)
{
	struct stat st;
	int fd = -1;

	if (path != NULL) {
		if (strlen(path) >= sizeof(log_path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
		if (fd < 0) {
			return -1;
		}
	}
	pthread_mutex_lock(&log_mtx);
	int old = log_fd;
	log_fd = fd;
	(void)snprintf(log_path, sizeof(log_path), "%s", path != NULL ? path : "");
	log_size = fd >= 0 && fstat(fd, &st) == 0 ? (unsigned long long)st.st_size : 0;
	pthread_mutex_unlock(&log_mtx);
	if (old >= 0) {
		close(old);
	}
	return 0;
}

int
log_configure(int level, int format, int target, const char *file)
{
	log_set_level((enum log_level)level);
	log_set_format((enum log_format)format);
	if (file != NULL) {
		return log_open_file(file);
	}
	if (log_set_target((enum log_target)target) != 0) {
		log_warn("log_target = %s: cannot reach the journal at %s, logging to stderr",
		    log_target_name((enum log_target)target), log_jpath);
	}
	return 0;
}

/* Blank control bytes (tab kept): a quoted path or peer text must not split a line. */
static void
log_clean(char *s)
{
	for (; *s != '\0'; s++) {
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f) {
			*s = '?';
		}
	}
}

static int
log_key_ok(const char *k)
{
	size_t n = 0;

	if (k == NULL || *k == '\0') {
		return 0;
	}
	for (; k[n] != '\0'; n++) {
		if (!((k[n] >= 'a' && k[n] <= 'z') || (k[n] >= '0' && k[n] <= '9') || k[n] == '_') ||
		    n >= LOG_KEY_MAX) {
			return 0;
		}
	}
	return 1;
}

/* Append to BUF (LEN bytes, *OFF used); a cut result stays NUL-terminated. */
static void log_append(char *buf, size_t len, size_t *off, const char *fmt, ...) LOG_PRINTF(4, 5);

static void
log_append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= len) {
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n < 0) {
		buf[*off] = '\0';
		return;
	}
	*off = (size_t)n < len - *off ? *off + (size_t)n : len - 1;
}

/* What one call says, collected before it is formatted. */
struct log_rec {
	enum log_level level;
	int with_errno;
	int err;
	const char *event;
	const struct log_kv *kv;
	size_t n;
	const char *msg;
	char ts[40];
};

/* The text form; with PREFIX the timestamp and PROG[PID] lead (not for the journal). */
static size_t
log_text(const struct log_rec *r, int prefix, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	if (log_plain) {
		/* A person reads it: the program, the level unless info, the message. */
		log_append(buf, len, &off, "%s: ", log_prog);
		if (r->level != LOG_LVL_INFO) {
			log_append(buf, len, &off, "%s: ", level_names[r->level]);
		}
		log_append(buf, len, &off, "%s", r->msg);
	} else {
		if (prefix) {
			log_append(buf, len, &off, "%s %s[%ld]: ", r->ts, log_prog,
			    (long)getpid());
		}
		log_append(buf, len, &off, "%s: %s", level_names[r->level], r->msg);
	}
	if (r->with_errno) {
		log_append(buf, len, &off, ": %s", strerror(r->err));
	}
	if (r->event != NULL) {
		log_append(buf, len, &off, " [event=%s", r->event);
		for (size_t i = 0; i < r->n; i++) {
			if (log_key_ok(r->kv[i].key) && r->kv[i].value != NULL) {
				log_append(buf, len, &off, " %s=%s", r->kv[i].key, r->kv[i].value);
			}
		}
		log_append(buf, len, &off, "]");
	}
	log_clean(buf);
	return off;
}

/* The JSON form (no newline), or 0 when it cannot be built (out of memory). */
static size_t
log_json(const struct log_rec *r, char *buf, size_t len)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL, val[LOG_MSG_MAX];
	size_t n = 0;
	int bad = o == NULL;

	bad = bad || json_add_str(o, "ts", r->ts) != 0 ||
	    json_add_str(o, "level", level_names[r->level]) != 0 ||
	    json_add_str(o, "prog", log_prog) != 0 || json_add_int(o, "pid", (long long)getpid()) != 0 ||
	    json_add_str(o, "msg", r->msg) != 0;
	if (!bad && r->with_errno) {
		bad = json_add_int(o, "errno", r->err) != 0 ||
		    json_add_str(o, "error", strerror(r->err)) != 0;
	}
	if (!bad && r->event != NULL) {
		bad = json_add_str(o, "event", r->event) != 0;
		for (size_t i = 0; !bad && i < r->n; i++) {
			if (!log_key_ok(r->kv[i].key) || r->kv[i].value == NULL) {
				continue;
			}
			snprintf(val, sizeof(val), "%s", r->kv[i].value);
			log_clean(val);
			/* A key that names one of the line's own fields is left out (EEXIST). */
			if (json_add_str(o, r->kv[i].key, val) != 0 && errno != EEXIST) {
				bad = 1;
			}
		}
	}
	if (!bad) {
		s = json_print_compact(o);
	}
	if (s != NULL) {
		n = strlen(s);
		if (n >= len) {
			n = 0; /* too long to be one valid object: fall back to text */
		} else {
			memcpy(buf, s, n + 1);
		}
	}
	free(s);
	cJSON_Delete(o);
	return n;
}

/* The journal's datagram for LINE (already one line, no newline). */
static size_t
log_dgram(const struct log_rec *r, const char *line, char *buf, size_t len)
{
	size_t off = 0;
	char val[LOG_MSG_MAX], key[LOG_KEY_MAX + 1];

	log_append(buf, len, &off, "MESSAGE=%s\nPRIORITY=%s\nSYSLOG_IDENTIFIER=%s\n", line,
	    level_prio[r->level], log_prog);
	if (r->event != NULL) {
		snprintf(val, sizeof(val), "%s", r->event);
		log_clean(val);
		log_append(buf, len, &off, "TANDEM_EVENT=%s\n", val);
		for (size_t i = 0; i < r->n; i++) {
			if (!log_key_ok(r->kv[i].key) || r->kv[i].value == NULL) {
				continue;
			}
			size_t k;
			for (k = 0; r->kv[i].key[k] != '\0'; k++) {
				char c = r->kv[i].key[k];
				key[k] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
			}
			key[k] = '\0';
			snprintf(val, sizeof(val), "%s", r->kv[i].value);
			log_clean(val);
			log_append(buf, len, &off, "TANDEM_%s=%s\n", key, val);
		}
	}
	return off;
}

static void
log_emit(struct log_rec *r)
{
	char line[LOG_LINE_MAX + 2];
	char dgram[LOG_DGRAM_MAX];
	struct timespec now;
	struct tm tm;
	char day[24];
	size_t len = 0;
	int journal;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(r->ts, sizeof(r->ts), "%s.%03ldZ", day, now.tv_nsec / 1000000L);

	pthread_mutex_lock(&log_mtx);
	journal = log_fd < 0 && log_tgt == LOG_TO_JOURNAL && log_jfd >= 0;
	if (log_fmt == LOG_FMT_JSON) {
		len = log_json(r, line, LOG_LINE_MAX);
	}
	if (len == 0) {
		len = log_text(r, !journal, line, LOG_LINE_MAX);
	}
	if (journal) {
		size_t dl = log_dgram(r, line, dgram, sizeof(dgram));
		if (sendto(log_jfd, dgram, dl, MSG_NOSIGNAL | MSG_DONTWAIT,
			(const struct sockaddr *)&log_jaddr, sizeof(log_jaddr)) == (ssize_t)dl) {
			pthread_mutex_unlock(&log_mtx);
			return;
		}
		/* Not taken: stderr, in the full text form, rather than nothing. */
		if (log_fmt != LOG_FMT_JSON) {
			len = log_text(r, 1, line, LOG_LINE_MAX);
		}
	}
	line[len++] = '\n';
	log_file_rotate(len);
	/* One write(2) per line keeps lines whole across threads and processes. */
	ssize_t w = write(log_fd >= 0 ? log_fd : STDERR_FILENO, line, len);
	if (w > 0 && log_fd >= 0) {
		log_size += (unsigned long long)w;
	}
	pthread_mutex_unlock(&log_mtx);
}

static void
log_vevent(enum log_level level, int with_errno, const char *event, const struct log_kv *kv,
    size_t n, const char *fmt, va_list ap)
{
	int saved = errno;
	char msg[LOG_MSG_MAX];
	struct log_rec r;

	if ((unsigned)level >= NAMES_LEN(level_names)) {
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
	log_clean(msg);
	memset(&r, 0, sizeof(r));
	r.level = level;
	r.with_errno = with_errno;
	r.err = saved;
	r.event = event;
	r.kv = kv;
	r.n = kv != NULL ? n : 0;
	r.msg = msg;
	log_emit(&r);
	errno = saved;
}

void
log_vmsg(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	log_vevent(level, with_errno, NULL, NULL, 0, fmt, ap);
}

void
log_event(enum log_level level, const char *event, const struct log_kv *kv, size_t n,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vevent(level, 0, event != NULL ? event : "", kv, n, fmt, ap);
	va_end(ap);
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
