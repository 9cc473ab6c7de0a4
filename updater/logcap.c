#include "updater/logcap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"

/* A look at the size this often even without an inotify event (ms). */
#define LOGCAP_POLL_MS 1000
/* Rounds of catching up with what was appended while copying. */
#define LOGCAP_CATCHUP_ROUNDS 4
#define LOGCAP_CHUNK (64 * 1024)

struct logcap {
	char path[PATH_MAX];
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];
	char tmp[PATH_MAX];     /* PATH.1 being written */
	char one[PATH_MAX];     /* PATH.1 */
	unsigned long long max;
	unsigned keep;
	int ifd;                /* inotify on DIR, or -1 (then only the timer) */
	int wake[2];            /* logcap_stop() writes here */
	pthread_t thread;
	int started;
	pthread_mutex_t mu;     /* one rotation at a time; protects rotations */
	unsigned long long rotations;
	char *buf;              /* LOGCAP_CHUNK */
};

/* Copy [FROM, TO) of IN into OUT; the number of bytes copied (short at EOF or error). */
static unsigned long long
logcap_copy(struct logcap *lc, int in, int out, off_t from, off_t to)
{
	unsigned long long done = 0;

	while (from < to) {
		size_t want = (size_t)(to - from) < LOGCAP_CHUNK ? (size_t)(to - from) : LOGCAP_CHUNK;
		ssize_t n = pread(in, lc->buf, want, from);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0 || fs_write_all(out, lc->buf, (size_t)n) != 0) {
			break;
		}
		from += n;
		done += (unsigned long long)n;
	}
	return done;
}

/*
 * PATH is past the cap: shift the numbered copies, copy PATH (at most 2 *
 * MAX bytes, its newest) into PATH.1, catching up with what the writer
 * appends meanwhile, and truncate PATH. Called with MU held.
 */
static int
logcap_rotate(struct logcap *lc, int fd, off_t end)
{
	const off_t limit = (off_t)(2 * lc->max);
	off_t start = end > limit ? end - limit : 0, pos;
	struct stat st;
	int out;

	if (log_rotate_shift(lc->path, lc->keep) != 0) {
		log_warn("log cap: rotate %s", lc->path);
		return -1;
	}
	out = open(lc->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0640);
	if (out < 0) {
		log_warn("log cap: %s", lc->tmp);
		return -1;
	}
	pos = start + (off_t)logcap_copy(lc, fd, out, start, end);
	for (int i = 0; i < LOGCAP_CATCHUP_ROUNDS && pos - start < limit; i++) {
		if (fstat(fd, &st) != 0 || st.st_size <= pos) {
			break;
		}
		end = st.st_size - start > limit ? start + limit : st.st_size;
		pos += (off_t)logcap_copy(lc, fd, out, pos, end);
	}
	/* What arrives from here until the truncation is lost (a flood's excess). */
	if (ftruncate(fd, 0) != 0) {
		log_warn("log cap: truncate %s", lc->path);
	}
	if (close(out) != 0 || rename(lc->tmp, lc->one) != 0) {
		log_warn("log cap: %s", lc->one);
		(void)unlink(lc->tmp);
		return -1;
	}
	lc->rotations++;
	return 1;
}

int
logcap_check(struct logcap *lc)
{
	struct stat st;
	int fd, rc = 0;

	if (lc == NULL) {
		return 0;
	}
	pthread_mutex_lock(&lc->mu);
	if (lstat(lc->path, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (unsigned long long)st.st_size <= lc->max) {
		goto out;
	}
	fd = open(lc->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		goto out;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (unsigned long long)st.st_size > lc->max) {
		rc = logcap_rotate(lc, fd, st.st_size) == 1;
	}
	close(fd);
out:
	pthread_mutex_unlock(&lc->mu);
	return rc;
}

unsigned long long
logcap_rotations(struct logcap *lc)
{
	unsigned long long n;

	pthread_mutex_lock(&lc->mu);
	n = lc->rotations;
	pthread_mutex_unlock(&lc->mu);
	return n;
}

/* 1 when the inotify events in BUF (LEN bytes) name our file (or the queue overflowed). */
static int
logcap_events_ours(const struct logcap *lc, const char *buf, ssize_t len)
{
	const struct inotify_event *ev;

	for (ssize_t off = 0; off + (ssize_t)sizeof(*ev) <= len;
	     off += (ssize_t)(sizeof(*ev) + ev->len)) {
		ev = (const struct inotify_event *)(const void *)(buf + off);
		if ((ev->mask & IN_Q_OVERFLOW) != 0 ||
		    (ev->len > 0 && strcmp(ev->name, lc->base) == 0)) {
			return 1;
		}
	}
	return 0;
}

static void *
logcap_main(void *arg)
{
	struct logcap *lc = arg;
	char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pf[2];

	for (;;) {
		int ours = 0, n;

		pf[0].fd = lc->wake[0];
		pf[0].events = POLLIN;
		pf[1].fd = lc->ifd;
		pf[1].events = POLLIN;
		n = poll(pf, lc->ifd >= 0 ? 2 : 1, LOGCAP_POLL_MS);
		if (n < 0 && errno != EINTR) {
			log_warn("log cap: poll");
			break;
		}
		if (n > 0 && (pf[0].revents & (POLLIN | POLLHUP)) != 0) {
			break;
		}
		if (n > 0 && lc->ifd >= 0 && (pf[1].revents & POLLIN) != 0) {
			ssize_t len;

			/* Drain the queue: one size check answers every event in it. */
			while ((len = read(lc->ifd, evbuf, sizeof(evbuf))) > 0) {
				ours |= logcap_events_ours(lc, evbuf, len);
			}
		}
		if (n == 0 || ours) {
			(void)logcap_check(lc);
		}
	}
	return NULL;
}

int
logcap_start(const char *path, unsigned long long max, unsigned keep, struct logcap **out,
    struct err *e)
{
	struct logcap *lc;
	const char *slash;
	sigset_t all, old;
	int rc;

	if (max == 0 || keep < 1 || keep > LOG_KEEP_MAX) {
		return err_set(e, ERR_CONFIG, "log cap: max must be > 0 and keep 1..%d",
		    LOG_KEEP_MAX);
	}
	lc = calloc(1, sizeof(*lc));
	if (lc == NULL || (lc->buf = malloc(LOGCAP_CHUNK)) == NULL) {
		free(lc);
		return err_set(e, ERR_NOMEM, "log cap: out of memory");
	}
	lc->ifd = -1;
	lc->wake[0] = lc->wake[1] = -1;
	lc->max = max;
	lc->keep = keep;
	pthread_mutex_init(&lc->mu, NULL);
	slash = strrchr(path, '/');
	if (strlcpy_chk(lc->path, path, sizeof(lc->path)) != 0 ||
	    strlcpy_chk(lc->base, slash != NULL ? slash + 1 : path, sizeof(lc->base)) != 0 ||
	    lc->base[0] == '\0' ||
	    snprintf(lc->one, sizeof(lc->one), "%s.1", path) >= (int)sizeof(lc->one) ||
	    snprintf(lc->tmp, sizeof(lc->tmp), "%s.1.tmp", path) >= (int)sizeof(lc->tmp)) {
		err_set(e, ERR_CONFIG, "log cap: '%s' is not a file path (or too long)", path);
		goto fail;
	}
	/* The directory to watch: "/" for "/x", "." for a name without one. */
	(void)snprintf(lc->dir, sizeof(lc->dir), "%.*s",
	    slash == NULL ? 1 : slash == path ? 1 : (int)(slash - path), slash == NULL ? "." : path);
	if (pipe2(lc->wake, O_CLOEXEC) != 0) {
		err_sys(e, "log cap: pipe");
		goto fail;
	}
	lc->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (lc->ifd < 0 || inotify_add_watch(lc->ifd, lc->dir, IN_MODIFY | IN_CREATE |
	    IN_MOVED_TO) < 0) {
		/* The timer alone still caps it, a second late. */
		log_warn("log cap: inotify on %s (checking once a second instead)", lc->dir);
		if (lc->ifd >= 0) {
			close(lc->ifd);
			lc->ifd = -1;
		}
	}
	(void)logcap_check(lc);
	/*
	 * The thread takes no signal: the daemon waits for its own (sigwait,
	 * signalfd), and a thread started before it blocked them would take a
	 * SIGHUP's default action, the end of the process.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&lc->thread, NULL, logcap_main, lc);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		errno = rc;
		err_sys(e, "log cap: thread");
		goto fail;
	}
	lc->started = 1;
	*out = lc;
	return 0;
fail:
	logcap_stop(lc);
	return -1;
}

void
logcap_stop(struct logcap *lc)
{
	if (lc == NULL) {
		return;
	}
	if (lc->started) {
		char c = 'q';

		if (write(lc->wake[1], &c, 1) != 1) {
			log_warn("log cap: stop");
		}
		pthread_join(lc->thread, NULL);
	}
	for (int i = 0; i < 2; i++) {
		if (lc->wake[i] >= 0) {
			close(lc->wake[i]);
		}
	}
	if (lc->ifd >= 0) {
		close(lc->ifd);
	}
	pthread_mutex_destroy(&lc->mu);
	free(lc->buf);
	free(lc);
}
