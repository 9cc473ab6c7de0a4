/*
 * Unit tests for common/fs: atomic writes (content, exact mode, replacement,
 * failures leave nothing behind, stale temporaries swept), a SIGKILL
 * crash-injection loop over fs_write_atomic, fsync helpers, mkdir_p modes,
 * rmtree never following symlinks, durable renames, atomic symlink flips
 * under a concurrent reader, bounded reads, copies and free space; the
 * temporary root ($TMPDIR) and the unit tests' tmpdir under it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "tests/unit/tmpdir.h"

struct fx {
	char dir[PATH_MAX];
	char out[PATH_MAX]; /* a directory outside the trees we remove */
	int mounted;
	char mnt[PATH_MAX];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	/* Two siblings in the test's directory: the tests remove only below dir. */
	if (tmpdir_make("fs") == NULL) {
		free(f);
		return -1;
	}
	errno = 0;
	if (snprintf(f->dir, sizeof(f->dir), "%s/dir", tmpdir_path()) >= (int)sizeof(f->dir) ||
	    snprintf(f->out, sizeof(f->out), "%s/out", tmpdir_path()) >= (int)sizeof(f->out) ||
	    mkdir(f->dir, 0700) != 0 || mkdir(f->out, 0700) != 0) {
		fprintf(stderr, "test_fs: %s: %s\n", tmpdir_path(),
		    errno != 0 ? strerror(errno) : "too long for the tests' paths");
		(void)tmpdir_remove();
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int rc = 0;

	if (f->mounted && umount2(f->mnt, MNT_DETACH) != 0) {
		rc = -1;
	}
	if (tmpdir_remove() != 0) {
		rc = -1;
	}
	free(f);
	return rc;
}

/* DIR/NAME into a static-free caller buffer. */
static const char *
pj(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	assert_true(n > 0 && (size_t)n < len);
	return buf;
}

static void
put(const char *path, const char *s, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(fs_write_all(fd, s, strlen(s)), 0);
	assert_int_equal(close(fd), 0);
}

static void
assert_content(const char *path, const char *want, size_t wantlen)
{
	char *buf = NULL;
	size_t len = 0;

	if (fs_read_file(path, 1 << 24, &buf, &len) != 0) {
		fail_msg("read %s: %s", path, strerror(errno));
	}
	assert_int_equal(len, wantlen);
	assert_memory_equal(buf, want, wantlen);
	free(buf);
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Entries of DIR whose name contains ".tmp." (our temporaries). */
static int
count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		n += strstr(de->d_name, ".tmp.") != NULL;
	}
	closedir(d);
	return n;
}

static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	}
	closedir(d);
	return n;
}

/* ---- atomic writes ---- */

static void
test_write_atomic_creates_and_replaces(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	struct stat a, b;

	pj(p, sizeof(p), f->dir, "state.json");
	mode_t old = umask(077);
	/* The umask does not narrow the requested mode. */
	assert_int_equal(fs_write_atomic(p, "one", 3, 0644), 0);
	umask(old);
	assert_content(p, "one", 3);
	assert_int_equal(mode_of(p), 0644);
	assert_int_equal(stat(p, &a), 0);

	/* Replacing sets both content and mode, via a new inode (rename). */
	assert_int_equal(fs_write_atomic(p, "second version", 14, 0600), 0);
	assert_content(p, "second version", 14);
	assert_int_equal(mode_of(p), 0600);
	assert_int_equal(stat(p, &b), 0);
	assert_true(a.st_ino != b.st_ino);

	/* Shorter content: no stale tail. Empty content: an empty file. */
	assert_int_equal(fs_write_atomic(p, "x", 1, 0640), 0);
	assert_content(p, "x", 1);
	assert_int_equal(mode_of(p), 0640);
	assert_int_equal(fs_write_atomic(p, "", 0, 0600), 0);
	assert_content(p, "", 0);

	/* Binary data with NUL bytes is written as is. */
	static const char bin[] = "a\0b\0\xff";
	assert_int_equal(fs_write_atomic(p, bin, sizeof(bin), 0600), 0);
	assert_content(p, bin, sizeof(bin));
	assert_int_equal(count_tmp(f->dir), 0);
	assert_int_equal(count_entries(f->dir), 1);

	/* A relative path works (temporary beside it in "."). */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(f->dir), 0);
	int r = fs_write_atomic("rel.txt", "rel", 3, 0600);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(r, 0);
	assert_content(pj(p, sizeof(p), f->dir, "rel.txt"), "rel", 3);
}

static void
test_write_atomic_failures(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX], sub[PATH_MAX], tgt[PATH_MAX];

	/* Missing directory. */
	errno = 0;
	assert_int_equal(fs_write_atomic(pj(p, sizeof(p), f->dir, "nodir/x"), "a", 1, 0600), -1);
	assert_int_equal(errno, ENOENT);
	/* Destination is a directory: refused, the directory and its files stay. */
	pj(sub, sizeof(sub), f->dir, "adir");
	assert_int_equal(mkdir(sub, 0700), 0);
	put(pj(p, sizeof(p), sub, "keep"), "keep", 0600);
	errno = 0;
	assert_int_equal(fs_write_atomic(sub, "a", 1, 0600), -1);
	assert_int_equal(errno, EISDIR);
	assert_content(p, "keep", 4);
	assert_int_equal(count_tmp(f->dir), 0);
	/* Names that are not a file name. */
	errno = 0;
	assert_int_equal(fs_write_atomic("", "a", 1, 0600), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(fs_write_atomic("/", "a", 1, 0600), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(fs_write_atomic(pj(p, sizeof(p), f->dir, "."), "a", 1, 0600), -1);
	assert_int_equal(errno, EISDIR);
	errno = 0;
	assert_int_equal(fs_write_atomic(pj(p, sizeof(p), f->dir, ".."), "a", 1, 0600), -1);
	assert_int_equal(errno, EISDIR);
	/* A component longer than NAME_MAX. */
	char longname[NAME_MAX + 2];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	char lp[PATH_MAX];
	tmpdir_fmt(lp, sizeof(lp), "%s/%s", f->dir, longname);
	errno = 0;
	assert_int_equal(fs_write_atomic(lp, "a", 1, 0600), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	/* A name of exactly NAME_MAX bytes works: its temporary name is shortened. */
	longname[NAME_MAX] = '\0';
	tmpdir_fmt(lp, sizeof(lp), "%s/%s", f->dir, longname);
	assert_int_equal(fs_write_atomic(lp, "a", 1, 0600), 0);
	assert_content(lp, "a", 1);
	assert_int_equal(count_tmp(f->dir), 0);

	/* A symlink at the destination is replaced, its target never written. */
	pj(tgt, sizeof(tgt), f->out, "target");
	put(tgt, "outside", 0644);
	pj(p, sizeof(p), f->dir, "link");
	assert_int_equal(symlink(tgt, p), 0);
	assert_int_equal(fs_write_atomic(p, "inside", 6, 0600), 0);
	struct stat st;
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_content(tgt, "outside", 7);
	assert_int_equal(count_tmp(f->dir), 0);
}

static void
test_atomic_api(void **state)
{
	struct fx *f = *state;
	struct fs_atomic a = FS_ATOMIC_INIT;
	char p[PATH_MAX];
	char tmpname[64];

	/* Abort on a never-begun object is harmless, and idempotent. */
	fs_atomic_abort(&a);
	fs_atomic_abort(&a);
	errno = 0;
	assert_int_equal(fs_atomic_write(&a, "x", 1), -1);
	assert_int_equal(errno, EBADF);
	errno = 0;
	assert_int_equal(fs_atomic_commit(&a), -1);
	assert_int_equal(errno, EBADF);

	pj(p, sizeof(p), f->dir, "doc");
	put(p, "old", 0644);
	assert_int_equal(fs_atomic_begin(&a, p, 0600), 0);
	assert_int_equal(fs_atomic_write(&a, "new ", 4), 0);
	assert_int_equal(fs_atomic_write(&a, "", 0), 0);
	assert_int_equal(fs_atomic_write(&a, "content", 7), 0);
	/* Until commit PATH holds the old content; the temporary is named as documented. */
	assert_content(p, "old", 3);
	assert_int_equal(count_tmp(f->dir), 1);
	snprintf(tmpname, sizeof(tmpname), ".doc.tmp.%ld.", (long)getpid());
	assert_int_equal(strncmp(a.tmp, tmpname, strlen(tmpname)), 0);
	assert_true(strlen(a.tmp) > strlen(tmpname));
	assert_int_equal(fs_atomic_commit(&a), 0);
	assert_content(p, "new content", 11);
	assert_int_equal(mode_of(p), 0600);
	assert_int_equal(count_tmp(f->dir), 0);
	/* Commit released it: a second commit or write fails cleanly. */
	errno = 0;
	assert_int_equal(fs_atomic_commit(&a), -1);
	assert_int_equal(errno, EBADF);
	fs_atomic_abort(&a);

	/* Abort removes the temporary and leaves PATH alone, errno preserved. */
	assert_int_equal(fs_atomic_begin(&a, p, 0600), 0);
	assert_int_equal(fs_atomic_write(&a, "discard me", 10), 0);
	errno = EXDEV;
	fs_atomic_abort(&a);
	assert_int_equal(errno, EXDEV);
	assert_content(p, "new content", 11);
	assert_int_equal(count_tmp(f->dir), 0);
	errno = 0;
	assert_int_equal(fs_atomic_write(&a, "x", 1), -1);
	assert_int_equal(errno, EBADF);

	/* Begin failing leaves the object safe to abort. */
	assert_int_equal(fs_atomic_begin(&a, "/nonexistent-tandem-dir/x", 0600), -1);
	fs_atomic_abort(&a);
	/* Two writers at once get distinct temporaries; the last commit wins whole. */
	struct fs_atomic b = FS_ATOMIC_INIT;
	assert_int_equal(fs_atomic_begin(&a, p, 0600), 0);
	assert_int_equal(fs_atomic_begin(&b, p, 0600), 0);
	assert_string_not_equal(a.tmp, b.tmp);
	assert_int_equal(fs_atomic_write(&a, "AAAA", 4), 0);
	assert_int_equal(fs_atomic_write(&b, "BB", 2), 0);
	assert_int_equal(fs_atomic_commit(&a), 0);
	assert_content(p, "AAAA", 4);
	assert_int_equal(fs_atomic_commit(&b), 0);
	assert_content(p, "BB", 2);
	assert_int_equal(count_tmp(f->dir), 0);
}

/* Committed under a name known only once written (the release store's digest names). */
static void
test_atomic_commit_as(void **state)
{
	struct fx *f = *state;
	struct fs_atomic a = FS_ATOMIC_INIT;
	char p[PATH_MAX], q[PATH_MAX], t[PATH_MAX];

	assert_string_equal(fs_atomic_tmp_name(&a), "");
	pj(p, sizeof(p), f->dir, "incoming");
	pj(q, sizeof(q), f->dir, "named");
	assert_int_equal(fs_atomic_begin(&a, p, 0600), 0);
	assert_int_equal(fs_atomic_write(&a, "bytes", 5), 0);
	/* The temporary can be read back by its name before the commit. */
	assert_int_equal(strncmp(fs_atomic_tmp_name(&a), ".incoming.tmp.", 14), 0);
	pj(t, sizeof(t), f->dir, fs_atomic_tmp_name(&a));
	assert_content(t, "bytes", 5);
	assert_int_equal(fs_atomic_commit_as(&a, "named"), 0);
	assert_content(q, "bytes", 5);
	assert_int_equal(mode_of(q), 0600);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(count_tmp(f->dir), 0);
	assert_string_equal(fs_atomic_tmp_name(&a), "");
	/* Not a plain name: refused, the temporary removed, nothing renamed. */
	static const char *const bad[] = { "", ".", "..", "a/b", "/x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(fs_atomic_begin(&a, p, 0600), 0);
		assert_int_equal(fs_atomic_write(&a, "x", 1), 0);
		errno = 0;
		assert_int_equal(fs_atomic_commit_as(&a, bad[i]), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(count_tmp(f->dir), 0);
		assert_int_equal(access(p, F_OK), -1);
	}
	assert_content(q, "bytes", 5);
}

/* A PID that existed and is gone (reaped). */
static pid_t
dead_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		_exit(0);
	}
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

static void
test_stale_temporaries_swept(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX], n[PATH_MAX];
	pid_t dead = dead_pid();

	/* Stale (dead writer) temporaries of "x", and names that must stay. */
	static const struct {
		const char *pre, *post;
	} keep[] = { { ".x.tmp.", ".abc" }, { ".y.tmp.", ".1" }, { ".x.tmp.", "." },
		{ "x.tmp.", ".1" }, { ".x.tmp.", ".1.2" }, { ".x.tmp.", "" } };
	tmpdir_fmt(n, sizeof(n), "%s/.x.tmp.%ld.3", f->dir, (long)dead);
	put(n, "stale", 0600);
	tmpdir_fmt(n, sizeof(n), "%s/.x.tmp.%ld.44", f->dir, (long)dead);
	put(n, "stale", 0600);
	for (size_t i = 0; i < ARRAY_LEN(keep); i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s%ld%s", keep[i].pre, (long)dead, keep[i].post);
		put(pj(n, sizeof(n), f->dir, name), "keep", 0600);
	}
	/* Live writers: ourselves, and PID 1. */
	tmpdir_fmt(n, sizeof(n), "%s/.x.tmp.%ld.999", f->dir, (long)getpid());
	put(n, "live", 0600);
	tmpdir_fmt(n, sizeof(n), "%s/.x.tmp.1.7", f->dir);
	put(n, "live", 0600);
	assert_int_equal(count_tmp(f->dir), 10);

	assert_int_equal(fs_write_atomic(pj(p, sizeof(p), f->dir, "x"), "v", 1, 0600), 0);
	assert_int_equal(count_tmp(f->dir), 8);
	tmpdir_fmt(n, sizeof(n), "%s/.x.tmp.%ld.3", f->dir, (long)dead);
	assert_int_equal(access(n, F_OK), -1);
	tmpdir_fmt(n, sizeof(n), "%s/.x.tmp.%ld.999", f->dir, (long)getpid());
	assert_int_equal(access(n, F_OK), 0);

	/* fs_symlink_replace sweeps its own temporaries the same way. */
	tmpdir_fmt(n, sizeof(n), "%s/.cur.tmp.%ld.5", f->dir, (long)dead);
	assert_int_equal(symlink("nowhere", n), 0);
	assert_int_equal(fs_symlink_replace("releases/active", pj(p, sizeof(p), f->dir, "cur")), 0);
	assert_int_equal(access(n, F_OK), -1);
	assert_int_equal(count_tmp(f->dir), 8);
}

/* ---- crash injection ---- */

#define CRASH_ROUNDS 150
#define NVERSIONS 3

struct version {
	char *data;
	size_t len;
	mode_t mode;
};

static void
make_versions(struct version *v)
{
	static const size_t lens[NVERSIONS] = { 300000, 37, 70001 };
	static const mode_t modes[NVERSIONS] = { 0600, 0640, 0644 };

	for (int i = 0; i < NVERSIONS; i++) {
		v[i].len = lens[i];
		v[i].mode = modes[i];
		v[i].data = malloc(lens[i]);
		assert_non_null(v[i].data);
		for (size_t k = 0; k < lens[i]; k++) {
			v[i].data[k] = (char)('a' + (int)((k * 7 + (size_t)i * 13) % 26));
		}
	}
}

static void
test_crash_injection(void **state)
{
	struct fx *f = *state;
	struct version v[NVERSIONS];
	char p[PATH_MAX];
	int seen[NVERSIONS] = { 0 };
	int killed_mid_write = 0;
	uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

	make_versions(v);
	pj(p, sizeof(p), f->dir, "journal");
	assert_int_equal(fs_write_atomic(p, v[0].data, v[0].len, v[0].mode), 0);
	int64_t t0 = mono_ms();
	for (int round = 0; round < CRASH_ROUNDS; round++) {
		int ready[2];
		assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(ready[0]);
			for (unsigned i = (unsigned)round;; i++) {
				const struct version *w = &v[i % NVERSIONS];
				if (fs_write_atomic(p, w->data, w->len, w->mode) != 0) {
					_exit(2);
				}
				if (ready[1] >= 0) {
					/* First write done: the parent may now aim inside the loop. */
					if (write(ready[1], "r", 1) != 1) {
						_exit(3);
					}
					close(ready[1]);
					ready[1] = -1;
				}
			}
		}
		close(ready[1]);
		/*
		 * Odd rounds kill at a random moment after the first complete
		 * write (so the writer is surely in its loop, even on a loaded
		 * machine); even rounds at any moment, start-up included.
		 */
		if (round % 2 == 1) {
			struct pollfd pfd = { .fd = ready[0], .events = POLLIN, .revents = 0 };
			char b;
			assert_int_equal(poll(&pfd, 1, 10000), 1);
			assert_int_equal(read(ready[0], &b, 1), 1);
		}
		close(ready[0]);
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		struct timespec ts = { 0, (long)(x % 4000000) };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
		}
		assert_int_equal(kill(pid, SIGKILL), 0);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		/* Killed, not exited: a write error in the child would show here. */
		assert_true(WIFSIGNALED(status));

		char *buf = NULL;
		size_t len = 0;
		assert_int_equal(fs_read_file(p, 1 << 20, &buf, &len), 0);
		int which = -1;
		for (int i = 0; i < NVERSIONS; i++) {
			if (len == v[i].len && memcmp(buf, v[i].data, len) == 0) {
				which = i;
			}
		}
		free(buf);
		if (which < 0) {
			fail_msg("round %d: %zu bytes match no complete version", round, len);
		}
		seen[which]++;
		/* Content and mode come from the same version. */
		assert_int_equal(mode_of(p), v[which].mode);
		/* At most the dead child's one temporary: earlier ones were swept. */
		int tmps = count_tmp(f->dir);
		assert_in_range(tmps, 0, 1);
		killed_mid_write += tmps;
		assert_int_equal(count_entries(f->dir), 1 + tmps);
	}
	/* The next write removes what the last killed writer left. */
	assert_int_equal(fs_write_atomic(p, v[1].data, v[1].len, v[1].mode), 0);
	assert_int_equal(count_tmp(f->dir), 0);
	assert_int_equal(count_entries(f->dir), 1);
	int kinds = 0;
	for (int i = 0; i < NVERSIONS; i++) {
		kinds += seen[i] > 0;
		free(v[i].data);
	}
	print_message("crash injection: %d kills in %lld ms, %d mid-write, versions seen %d/%d/%d\n",
	    CRASH_ROUNDS, (long long)(mono_ms() - t0), killed_mid_write, seen[0], seen[1], seen[2]);
	/* The kills really landed inside writes, and writes really happened. */
	assert_true(killed_mid_write > 0);
	assert_true(kinds >= 2);
}

/* ---- fsync helpers, write_all ---- */

static void
test_fsync_helpers(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	assert_int_equal(fs_fsync_dir(f->dir), 0);
	assert_int_equal(fs_fsync_dir("/"), 0);
	errno = 0;
	assert_int_equal(fs_fsync_dir(pj(p, sizeof(p), f->dir, "missing")), -1);
	assert_int_equal(errno, ENOENT);
	put(pj(p, sizeof(p), f->dir, "file"), "x", 0600);
	errno = 0;
	assert_int_equal(fs_fsync_dir(p), -1);
	assert_int_equal(errno, ENOTDIR);
	assert_int_equal(fs_fsync_parent(p), 0);
	assert_int_equal(fs_fsync_parent("relative-name-in-cwd"), 0);
	assert_int_equal(fs_fsync_parent("/etc"), 0);
	errno = 0;
	assert_int_equal(fs_fsync_parent("/nonexistent-tandem-dir/x"), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(fs_fsync_parent("/"), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(fs_fsync_parent(""), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_write_all(void **state)
{
	struct fx *f = *state;
	int fds[2];
	char p[PATH_MAX];

	(void)f;
	/* A megabyte through a pipe (16 times its buffer) arrives whole and in order. */
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[1]);
		char buf[4096];
		size_t total = 0;
		ssize_t n;
		while ((n = read(fds[0], buf, sizeof(buf))) > 0) {
			for (ssize_t i = 0; i < n; i++) {
				if (buf[i] != (char)((total + (size_t)i) % 251)) {
					_exit(3);
				}
			}
			total += (size_t)n;
		}
		_exit(total == 1000000 ? 0 : 4);
	}
	close(fds[0]);
	char *big = malloc(1000000);
	assert_non_null(big);
	for (size_t i = 0; i < 1000000; i++) {
		big[i] = (char)(i % 251);
	}
	assert_int_equal(fs_write_all(fds[1], big, 1000000), 0);
	close(fds[1]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(big);

	/* Errors surface with errno: a closed reader (EPIPE), a read-only fd (EBADF). */
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	errno = 0;
	assert_int_equal(fs_write_all(fds[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(fds[1]);
	signal(SIGPIPE, old);
	put(pj(p, sizeof(p), f->dir, "ro"), "", 0600);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	errno = 0;
	assert_int_equal(fs_write_all(fd, "x", 1), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(fs_write_all(fd, "", 0), 0);
	close(fd);
}

/* ---- mkdir_p ---- */

static void
test_mkdir_p(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX], q[PATH_MAX];

	mode_t old = umask(077);
	tmpdir_fmt(p, sizeof(p), "%s/a/b/c", f->dir);
	assert_int_equal(fs_mkdir_p(p, 0755), 0);
	/* Every created directory has exactly MODE, the umask notwithstanding. */
	assert_int_equal(mode_of(p), 0755);
	tmpdir_fmt(q, sizeof(q), "%s/a/b", f->dir);
	assert_int_equal(mode_of(q), 0755);
	tmpdir_fmt(q, sizeof(q), "%s/a", f->dir);
	assert_int_equal(mode_of(q), 0755);
	/* Existing directories are left alone (mode kept), new leaves get MODE. */
	tmpdir_fmt(p, sizeof(p), "%s/a/b/c/d/e", f->dir);
	assert_int_equal(fs_mkdir_p(p, 0700), 0);
	assert_int_equal(mode_of(p), 0700);
	tmpdir_fmt(q, sizeof(q), "%s/a/b/c", f->dir);
	assert_int_equal(mode_of(q), 0755);
	/* Idempotent; slashes doubled or trailing are fine. */
	assert_int_equal(fs_mkdir_p(p, 0700), 0);
	tmpdir_fmt(p, sizeof(p), "%s//x///y/", f->dir);
	assert_int_equal(fs_mkdir_p(p, 0750), 0);
	tmpdir_fmt(q, sizeof(q), "%s/x/y", f->dir);
	assert_int_equal(mode_of(q), 0750);
	/* Modes with special bits are applied exactly too. */
	tmpdir_fmt(p, sizeof(p), "%s/sticky", f->dir);
	assert_int_equal(fs_mkdir_p(p, 01777), 0);
	assert_int_equal(mode_of(p), 01777);
	umask(old);

	/* A symlink to a directory in the way is followed; a file is ENOTDIR. */
	tmpdir_fmt(p, sizeof(p), "%s/linkdir", f->dir);
	assert_int_equal(symlink(f->out, p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/linkdir/inside", f->dir);
	assert_int_equal(fs_mkdir_p(p, 0700), 0);
	tmpdir_fmt(q, sizeof(q), "%s/inside", f->out);
	assert_int_equal(mode_of(q), 0700);
	tmpdir_fmt(p, sizeof(p), "%s/file", f->dir);
	put(p, "x", 0600);
	errno = 0;
	assert_int_equal(fs_mkdir_p(p, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	tmpdir_fmt(p, sizeof(p), "%s/file/sub", f->dir);
	errno = 0;
	assert_int_equal(fs_mkdir_p(p, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	errno = 0;
	assert_int_equal(fs_mkdir_p("", 0700), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(fs_mkdir_p("/", 0700), 0);
	char *huge = malloc(PATH_MAX + 10);
	assert_non_null(huge);
	memset(huge, 'a', PATH_MAX + 9);
	huge[PATH_MAX + 9] = '\0';
	errno = 0;
	assert_int_equal(fs_mkdir_p(huge, 0700), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	free(huge);
}

/* ---- rmtree ---- */

static void
build_tree(const char *root, const struct fx *f)
{
	char p[PATH_MAX];

	assert_int_equal(fs_mkdir_p(root, 0700), 0);
	tmpdir_fmt(p, sizeof(p), "%s/sub/deeper", root);
	assert_int_equal(fs_mkdir_p(p, 0700), 0);
	tmpdir_fmt(p, sizeof(p), "%s/file", root);
	put(p, "f", 0600);
	tmpdir_fmt(p, sizeof(p), "%s/sub/deeper/file", root);
	put(p, "f", 0600);
	/* Symlinks out of the tree: to a directory, to a file, dangling, a loop. */
	tmpdir_fmt(p, sizeof(p), "%s/to-out-dir", root);
	assert_int_equal(symlink(f->out, p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/sub/to-out-file", root);
	char t[256];
	tmpdir_fmt(t, sizeof(t), "%s/precious", f->out);
	assert_int_equal(symlink(t, p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/sub/dangling", root);
	assert_int_equal(symlink("/nonexistent/x", p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/sub/loop", root);
	assert_int_equal(symlink("loop", p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/sub/up", root);
	assert_int_equal(symlink("..", p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/fifo", root);
	assert_int_equal(mkfifo(p, 0600), 0);
	/* Read-only and special-mode entries are removed as well. */
	tmpdir_fmt(p, sizeof(p), "%s/sub/readonly", root);
	assert_int_equal(mkdir(p, 0700), 0);
	tmpdir_fmt(t, sizeof(t), "%s/sub/readonly/f", root);
	put(t, "x", 0400);
	assert_int_equal(chmod(p, 0500 | S_ISVTX) == 0 ? chmod(p, 0700) : -1, 0);
}

static void
setup_outside(const struct fx *f)
{
	char p[PATH_MAX];

	tmpdir_fmt(p, sizeof(p), "%s/precious", f->out);
	put(p, "must survive", 0600);
	tmpdir_fmt(p, sizeof(p), "%s/subdir", f->out);
	assert_int_equal(mkdir(p, 0700), 0);
	tmpdir_fmt(p, sizeof(p), "%s/subdir/also", f->out);
	put(p, "must survive", 0600);
}

static void
assert_outside_intact(const struct fx *f)
{
	char p[PATH_MAX];

	tmpdir_fmt(p, sizeof(p), "%s/precious", f->out);
	assert_content(p, "must survive", 12);
	tmpdir_fmt(p, sizeof(p), "%s/subdir/also", f->out);
	assert_content(p, "must survive", 12);
	assert_int_equal(count_entries(f->out), 2);
}

static void
test_rmtree_symlinks(void **state)
{
	struct fx *f = *state;
	char root[PATH_MAX], p[PATH_MAX];

	setup_outside(f);
	pj(root, sizeof(root), f->dir, "tree");
	build_tree(root, f);
	assert_int_equal(fs_rmtree(root), 0);
	assert_int_equal(access(root, F_OK), -1);
	assert_outside_intact(f);
	assert_int_equal(count_entries(f->dir), 0);

	/* PATH itself a symlink to the outside directory: only the link goes. */
	tmpdir_fmt(p, sizeof(p), "%s/link", f->dir);
	assert_int_equal(symlink(f->out, p), 0);
	assert_int_equal(fs_rmtree(p), 0);
	assert_int_equal(access(p, F_OK), -1);
	assert_outside_intact(f);
	/* Even spelled with trailing slashes, which would make lstat follow it. */
	assert_int_equal(symlink(f->out, p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/link//", f->dir);
	assert_int_equal(fs_rmtree(p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/link", f->dir);
	struct stat st;
	assert_int_equal(lstat(p, &st), -1);
	assert_outside_intact(f);

	/* A missing path, or a missing parent, is success; a plain file is removed. */
	assert_int_equal(fs_rmtree(p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/no/such/thing", f->dir);
	assert_int_equal(fs_rmtree(p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/plain", f->dir);
	put(p, "x", 0600);
	assert_int_equal(fs_rmtree(p), 0);
	assert_int_equal(access(p, F_OK), -1);
	/* A path through a symlinked parent is resolved normally (documented). */
	tmpdir_fmt(p, sizeof(p), "%s/outlink", f->dir);
	assert_int_equal(symlink(f->out, p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/outlink/subdir", f->dir);
	assert_int_equal(fs_rmtree(p), 0);
	tmpdir_fmt(p, sizeof(p), "%s/subdir", f->out);
	assert_int_equal(access(p, F_OK), -1);
}

static void
test_rmtree_refusals(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	static const char *const refused[] = { "/", "//", ".", "..", "./", "../", "a/..", "a/." };
	for (size_t i = 0; i < ARRAY_LEN(refused); i++) {
		errno = 0;
		if (fs_rmtree(refused[i]) != -1 || errno != EINVAL) {
			fail_msg("'%s' not refused with EINVAL", refused[i]);
		}
	}
	tmpdir_fmt(p, sizeof(p), "%s/..", f->dir);
	errno = 0;
	assert_int_equal(fs_rmtree(p), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(access(f->dir, F_OK), 0);
	errno = 0;
	assert_int_equal(fs_rmtree(""), -1);
}

static void
test_rmtree_depth(void **state)
{
	struct fx *f = *state;
	char root[PATH_MAX], p[PATH_MAX];

	/* A chain of 300 nested directories: deeper than the limit, ELOOP. */
	pj(root, sizeof(root), f->dir, "deep");
	assert_int_equal(mkdir(root, 0700), 0);
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(mkdirat(fd, "d", 0700), 0);
		int nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(nfd >= 0);
		close(fd);
		fd = nfd;
	}
	close(fd);
	errno = 0;
	assert_int_equal(fs_rmtree(root), -1);
	assert_int_equal(errno, ELOOP);
	/* 200 levels are within the limit. */
	size_t n = (size_t)snprintf(p, sizeof(p), "%s", root);
	for (int i = 0; i < 100; i++) {
		n += (size_t)snprintf(p + n, sizeof(p) - n, "/d");
	}
	assert_int_equal(fs_rmtree(p), 0);
	assert_int_equal(fs_rmtree(root), 0);
	assert_int_equal(access(root, F_OK), -1);
}

static void
test_rmtree_other_fs(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	pj(f->mnt, sizeof(f->mnt), f->dir, "tree/mnt");
	assert_int_equal(fs_mkdir_p(f->mnt, 0700), 0);
	if (mount("tandem-ut", f->mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") != 0) {
		skip(); /* not allowed here (unprivileged or no tmpfs) */
	}
	f->mounted = 1;
	tmpdir_fmt(p, sizeof(p), "%s/on-other-fs", f->mnt);
	put(p, "other", 0600);
	pj(p, sizeof(p), f->dir, "tree");
	errno = 0;
	assert_int_equal(fs_rmtree(p), -1);
	assert_int_equal(errno, EXDEV);
	tmpdir_fmt(p, sizeof(p), "%s/on-other-fs", f->mnt);
	assert_content(p, "other", 5);
	assert_int_equal(umount2(f->mnt, MNT_DETACH), 0);
	f->mounted = 0;

	/* A bind mount of a directory on the same file system (same st_dev). */
	setup_outside(f);
	assert_int_equal(mount(f->out, f->mnt, NULL, MS_BIND, NULL), 0);
	f->mounted = 1;
	struct stat a, b;
	assert_int_equal(stat(f->mnt, &a), 0);
	assert_int_equal(stat(f->dir, &b), 0);
	assert_true(a.st_dev == b.st_dev);
	pj(p, sizeof(p), f->dir, "tree");
	errno = 0;
	assert_int_equal(fs_rmtree(p), -1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(umount2(f->mnt, MNT_DETACH), 0);
	f->mounted = 0;
	assert_outside_intact(f);
}

/* ---- rename, symlink flips ---- */

static void
test_rename_durable(void **state)
{
	struct fx *f = *state;
	char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], sub[PATH_MAX];

	pj(a, sizeof(a), f->dir, "a");
	pj(b, sizeof(b), f->dir, "b");
	put(a, "payload", 0600);
	put(b, "replaced", 0600);
	assert_int_equal(fs_rename_durable(a, b), 0);
	assert_int_equal(access(a, F_OK), -1);
	assert_content(b, "payload", 7);
	/* Across directories (both fsynced), and directories themselves. */
	pj(sub, sizeof(sub), f->dir, "sub");
	assert_int_equal(mkdir(sub, 0700), 0);
	pj(c, sizeof(c), sub, "c");
	assert_int_equal(fs_rename_durable(b, c), 0);
	assert_content(c, "payload", 7);
	pj(a, sizeof(a), f->out, "moved-dir");
	assert_int_equal(fs_rename_durable(sub, a), 0);
	pj(c, sizeof(c), a, "c");
	assert_content(c, "payload", 7);
	/* Errors: missing source, missing target directory, non-empty dir target. */
	errno = 0;
	assert_int_equal(fs_rename_durable(b, pj(c, sizeof(c), f->dir, "z")), -1);
	assert_int_equal(errno, ENOENT);
	pj(b, sizeof(b), f->dir, "x");
	put(b, "x", 0600);
	errno = 0;
	assert_int_equal(fs_rename_durable(b, pj(c, sizeof(c), f->dir, "nodir/x")), -1);
	assert_int_equal(errno, ENOENT);
	assert_content(b, "x", 1);
	errno = 0;
	assert_int_equal(fs_rename_durable("/", b), -1);
	assert_int_equal(errno, EINVAL);
}

static void
test_symlink_replace(void **state)
{
	struct fx *f = *state;
	char link[PATH_MAX], buf[256], d[PATH_MAX];

	pj(link, sizeof(link), f->dir, "current");
	assert_int_equal(fs_symlink_replace("releases/active", link), 0);
	ssize_t n = readlink(link, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "releases/active");
	assert_int_equal(fs_symlink_replace("releases/prev", link), 0);
	n = readlink(link, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "releases/prev");
	/* A regular file at LINKPATH is replaced by the link. */
	pj(d, sizeof(d), f->dir, "wasfile");
	put(d, "x", 0600);
	assert_int_equal(fs_symlink_replace("/x", d), 0);
	struct stat st;
	assert_int_equal(lstat(d, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* A real directory is refused and untouched. */
	pj(d, sizeof(d), f->dir, "realdir");
	assert_int_equal(mkdir(d, 0700), 0);
	pj(buf, sizeof(buf), d, "inside");
	put(buf, "in", 0600);
	errno = 0;
	assert_int_equal(fs_symlink_replace("elsewhere", d), -1);
	assert_int_equal(errno, EISDIR);
	assert_content(buf, "in", 2);
	/* Bad arguments. */
	errno = 0;
	assert_int_equal(fs_symlink_replace("", link), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(fs_symlink_replace(NULL, link), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(fs_symlink_replace("t", pj(d, sizeof(d), f->dir, "nodir/l")), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(count_tmp(f->dir), 0);
}

struct flip_reader {
	const char *link;
	atomic_int stop;
	long reads, bad;
	char last_bad[64];
};

static void *
flip_reader_main(void *arg)
{
	struct flip_reader *r = arg;
	char buf[64];

	while (!atomic_load(&r->stop)) {
		ssize_t n = readlink(r->link, buf, sizeof(buf) - 1);
		r->reads++;
		if (n < 0) {
			r->bad++;
			snprintf(r->last_bad, sizeof(r->last_bad), "errno %d", errno);
			continue;
		}
		buf[n] = '\0';
		if (strcmp(buf, "releases/one") != 0 && strcmp(buf, "releases/two") != 0) {
			r->bad++;
			snprintf(r->last_bad, sizeof(r->last_bad), "%s", buf);
		}
	}
	return NULL;
}

static void
test_symlink_replace_atomic(void **state)
{
	struct fx *f = *state;
	char link[PATH_MAX];
	struct flip_reader r = { 0 };
	pthread_t t;

	pj(link, sizeof(link), f->dir, "current");
	assert_int_equal(fs_symlink_replace("releases/one", link), 0);
	r.link = link;
	atomic_init(&r.stop, 0);
	assert_int_equal(pthread_create(&t, NULL, flip_reader_main, &r), 0);
	/* The link never vanishes nor shows anything but a whole target. */
	for (int i = 0; i < 300; i++) {
		assert_int_equal(fs_symlink_replace(i % 2 ? "releases/one" : "releases/two", link), 0);
	}
	atomic_store(&r.stop, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (r.bad != 0) {
		fail_msg("%ld of %ld reads saw a missing or wrong link (%s)", r.bad, r.reads, r.last_bad);
	}
	assert_true(r.reads > 0);
	assert_int_equal(count_tmp(f->dir), 0);
}

/* ---- read_file, copy_file, free_bytes ---- */

static void
test_read_file(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	char *buf = NULL;
	size_t len = 99;

	pj(p, sizeof(p), f->dir, "data");
	static const char bin[] = "ab\0cd";
	assert_int_equal(fs_write_atomic(p, bin, 5, 0600), 0);
	assert_int_equal(fs_read_file(p, 5, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, bin, 5);
	assert_int_equal(buf[5], '\0'); /* always terminated */
	free(buf);
	buf = NULL;
	assert_int_equal(fs_read_file(p, 100, &buf, NULL), 0);
	free(buf);
	/* One byte over the limit: EFBIG, *out untouched. */
	char *sentinel = (char *)p;
	buf = sentinel;
	errno = 0;
	assert_int_equal(fs_read_file(p, 4, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_ptr_equal(buf, sentinel);
	/* Empty file with a zero limit. */
	assert_int_equal(fs_write_atomic(p, "", 0, 0600), 0);
	buf = NULL;
	assert_int_equal(fs_read_file(p, 0, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
	/* Files whose size stat() does not know (procfs) are read whole. */
	buf = NULL;
	assert_int_equal(fs_read_file("/proc/self/status", 1 << 20, &buf, &len), 0);
	assert_true(len > 100);
	assert_non_null(strstr(buf, "Pid:"));
	free(buf);
	/* ...and still bounded. */
	buf = sentinel;
	errno = 0;
	assert_int_equal(fs_read_file("/proc/self/status", 10, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	assert_ptr_equal(buf, sentinel);

	/* Not regular files: a FIFO (no blocking), a device, a directory; missing. */
	char fifo[PATH_MAX];
	pj(fifo, sizeof(fifo), f->dir, "fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	errno = 0;
	assert_int_equal(fs_read_file(fifo, 100, &buf, &len), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(fs_read_file("/dev/null", 100, &buf, &len), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(fs_read_file(f->dir, 100, &buf, &len), -1);
	assert_int_equal(errno, EISDIR);
	errno = 0;
	assert_int_equal(fs_read_file(pj(p, sizeof(p), f->dir, "missing"), 100, &buf, &len), -1);
	assert_int_equal(errno, ENOENT);
	assert_ptr_equal(buf, sentinel);
	/* A bigger file at exactly the limit. */
	char *big = malloc(200000);
	assert_non_null(big);
	memset(big, 'q', 200000);
	assert_int_equal(fs_write_atomic(pj(p, sizeof(p), f->dir, "big"), big, 200000, 0600), 0);
	buf = NULL;
	assert_int_equal(fs_read_file(p, 200000, &buf, &len), 0);
	assert_int_equal(len, 200000);
	assert_memory_equal(buf, big, 200000);
	free(buf);
	errno = 0;
	assert_int_equal(fs_read_file(p, 199999, &buf, &len), -1);
	assert_int_equal(errno, EFBIG);
	free(big);
}

static void
test_copy_file(void **state)
{
	struct fx *f = *state;
	char src[PATH_MAX], dst[PATH_MAX];
	const size_t n = 3 * 65536 + 123; /* several chunks and a partial one */

	char *data = malloc(n);
	assert_non_null(data);
	for (size_t i = 0; i < n; i++) {
		data[i] = (char)(i * 31 % 256);
	}
	pj(src, sizeof(src), f->dir, "src");
	pj(dst, sizeof(dst), f->out, "dst");
	assert_int_equal(fs_write_atomic(src, data, n, 0600), 0);
	put(dst, "old", 0644);
	assert_int_equal(fs_copy_file(src, dst, 0640), 0);
	assert_content(dst, data, n);
	assert_int_equal(mode_of(dst), 0640);
	assert_content(src, data, n);
	/* Empty source. */
	assert_int_equal(fs_write_atomic(src, "", 0, 0600), 0);
	assert_int_equal(fs_copy_file(src, dst, 0600), 0);
	assert_content(dst, "", 0);
	/* Failures leave TO as it was and nothing temporary behind. */
	put(dst, "unchanged", 0644);
	errno = 0;
	assert_int_equal(fs_copy_file(pj(src, sizeof(src), f->dir, "missing"), dst, 0600), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(fs_copy_file(f->dir, dst, 0600), -1);
	assert_int_equal(errno, EISDIR);
	errno = 0;
	assert_int_equal(fs_copy_file("/dev/zero", dst, 0600), -1);
	assert_int_equal(errno, EINVAL);
	pj(src, sizeof(src), f->dir, "src");
	errno = 0;
	assert_int_equal(fs_copy_file(src, pj(dst, sizeof(dst), f->out, "nodir/dst"), 0600), -1);
	assert_int_equal(errno, ENOENT);
	pj(dst, sizeof(dst), f->out, "dst");
	assert_content(dst, "unchanged", 9);
	assert_int_equal(mode_of(dst), 0644);
	assert_int_equal(count_tmp(f->out), 0);
	assert_int_equal(count_tmp(f->dir), 0);
	free(data);
}

static void
test_free_bytes(void **state)
{
	struct fx *f = *state;
	unsigned long long v = 0;
	struct statvfs sv;

	assert_int_equal(fs_free_bytes(f->dir, &v), 0);
	assert_int_equal(statvfs(f->dir, &sv), 0);
	unsigned long long want = (unsigned long long)sv.f_bavail * sv.f_frsize;
	/* Other processes write meanwhile: allow 256 MiB of drift. */
	unsigned long long diff = v > want ? v - want : want - v;
	assert_true(v > 0);
	assert_true(diff < (256ULL << 20));
	v = 12345;
	errno = 0;
	assert_int_equal(fs_free_bytes("/nonexistent-tandem-dir", &v), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(v, 12345);
}

/* fs_tmp_root(): $TMPDIR when absolute, else /tmp; tmpdir_make() goes there. */
static void
test_tmp_root(void **state)
{
	char *saved = getenv("TMPDIR") != NULL ? strdup(getenv("TMPDIR")) : NULL;
	char root[PATH_MAX];
	const char *d;

	(void)state;
	assert_int_equal(unsetenv("TMPDIR"), 0);
	assert_string_equal(fs_tmp_root(), "/tmp");
	assert_int_equal(setenv("TMPDIR", "", 1), 0);
	assert_string_equal(fs_tmp_root(), "/tmp");
	assert_int_equal(setenv("TMPDIR", "relative/dir", 1), 0);
	assert_string_equal(fs_tmp_root(), "/tmp");

	/* A private root of our own (made under the saved TMPDIR), as TMPDIR. */
	if (saved != NULL) {
		assert_int_equal(setenv("TMPDIR", saved, 1), 0);
	} else {
		assert_int_equal(unsetenv("TMPDIR"), 0);
	}
	d = tmpdir_make("root");
	assert_non_null(d);
	assert_true(snprintf(root, sizeof(root), "%s", d) < (int)sizeof(root));
	assert_int_equal(setenv("TMPDIR", root, 1), 0);
	assert_string_equal(fs_tmp_root(), root);
	d = tmpdir_make("fs");
	assert_non_null(d);
	assert_true(strncmp(d, root, strlen(root)) == 0 && d[strlen(root)] == '/');
	assert_non_null(strstr(d + strlen(root), "/tandem-ut-fs."));
	tmpdir_put("f", "x", 0600);
	assert_int_equal(tmpdir_remove(), 0);
	{
		/* fs_mkdtemp: private, under the root; a name that does not fit is refused. */
		char made[PATH_MAX], small[16];
		struct stat st;

		assert_int_equal(fs_mkdtemp("tandem-x-", made, sizeof(made)), 0);
		assert_true(strncmp(made, root, strlen(root)) == 0);
		assert_non_null(strstr(made + strlen(root), "/tandem-x-"));
		assert_int_equal(strlen(made), strlen(root) + strlen("/tandem-x-") + 6);
		assert_int_equal(stat(made, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 07777, 0700);
		assert_int_equal(rmdir(made), 0);
		errno = 0;
		assert_int_equal(fs_mkdtemp("tandem-x-", small, sizeof(small)), -1);
		assert_int_equal(errno, ENAMETOOLONG);
		assert_string_equal(small, "");
	}
	assert_int_equal(rmdir(root), 0); /* tmpdir left nothing behind */

	if (saved != NULL) {
		assert_int_equal(setenv("TMPDIR", saved, 1), 0);
	} else {
		assert_int_equal(unsetenv("TMPDIR"), 0);
	}
	free(saved);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_write_atomic_creates_and_replaces),
		T(test_write_atomic_failures),
		T(test_atomic_api),
		T(test_atomic_commit_as),
		T(test_stale_temporaries_swept),
		T(test_crash_injection),
		T(test_fsync_helpers),
		T(test_write_all),
		T(test_mkdir_p),
		T(test_rmtree_symlinks),
		T(test_rmtree_refusals),
		T(test_rmtree_depth),
		T(test_rmtree_other_fs),
		T(test_rename_durable),
		T(test_symlink_replace),
		T(test_symlink_replace_atomic),
		T(test_read_file),
		T(test_copy_file),
		T(test_free_bytes),
		cmocka_unit_test(test_tmp_root),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
