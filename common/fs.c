#include "common/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define FS_COPY_CHUNK (64 * 1024)
/* Attempts at a fresh temporary name before giving up with EEXIST. */
#define FS_TMP_TRIES 100

static atomic_uint fs_tmp_counter;

/*
 * Split PATH into its directory (DIR, "." when there is none) and last
 * component (BASE). Trailing slashes are ignored. "/" alone has no last
 * component (EINVAL).
 */
static int
fs_split(const char *path, char *dir, size_t dirlen, char *base, size_t baselen)
{
	size_t n, b;

	if (path == NULL || *path == '\0') {
		errno = ENOENT;
		return -1;
	}
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/') {
		n--;
	}
	b = n;
	while (b > 0 && path[b - 1] != '/') {
		b--;
	}
	if (b == n) {
		errno = EINVAL; /* "/" or "//": no last component */
		return -1;
	}
	if (n - b >= baselen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(base, path + b, n - b);
	base[n - b] = '\0';
	if (b == 0) {
		if (dirlen < 2) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(dir, ".", 2);
		return 0;
	}
	/* Keep one slash for "/x"; drop the separator otherwise. */
	size_t d = b;
	while (d > 1 && path[d - 1] == '/') {
		d--;
	}
	if (d >= dirlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, path, d);
	dir[d] = '\0';
	return 0;
}

static int
fs_is_dot_or_dotdot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* Next unique temporary name for BASE into TMP (NAME_MAX + 1 bytes). */
static int
fs_tmp_name(const char *base, char *tmp, size_t tmplen)
{
	unsigned n = atomic_fetch_add(&fs_tmp_counter, 1u);
	/* Long names are shortened so the temporary still fits in NAME_MAX. */
	int r = snprintf(tmp, tmplen, ".%.200s.tmp.%ld.%u", base, (long)getpid(), n);

	if (r < 0 || (size_t)r >= tmplen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * Remove temporaries of BASE in DFD left by writers that died (a crash or a
 * SIGKILL between create and rename), so they cannot pile up. Only names of
 * exactly fs_tmp_name()'s shape whose PID no longer exists are touched; a
 * live writer's file is never removed. Best effort: errors are ignored.
 */
static void
fs_tmp_sweep(int dfd, const char *base)
{
	char prefix[NAME_MAX + 1];
	int saved = errno;
	int fd;
	DIR *d;
	int r = snprintf(prefix, sizeof(prefix), ".%.200s.tmp.", base);

	if (r < 0 || (size_t)r >= sizeof(prefix)) {
		goto out;
	}
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		goto out;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		goto out;
	}
	for (;;) {
		struct dirent *de = readdir(d);
		if (de == NULL) {
			break;
		}
		if (strncmp(de->d_name, prefix, (size_t)r) != 0) {
			continue;
		}
		const char *p = de->d_name + r;
		size_t pl = strspn(p, "0123456789");
		if (pl == 0 || pl > 10 || p[pl] != '.' || p[pl + 1] == '\0' ||
		    strspn(p + pl + 1, "0123456789") != strlen(p + pl + 1)) {
			continue;
		}
		long long pid = 0;
		for (size_t i = 0; i < pl; i++) {
			pid = pid * 10 + (p[i] - '0');
		}
		if (pid <= 0 || pid > INT32_MAX || (pid_t)pid == getpid()) {
			continue;
		}
		if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
			(void)unlinkat(dirfd(d), de->d_name, 0);
		}
	}
	closedir(d);
out:
	errno = saved;
}

static int
fs_fsync_fd_dir(int dfd)
{
	if (fsync(dfd) != 0 && errno != EINVAL) {
		return -1;
	}
	return 0;
}

int
fs_write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
fs_atomic_begin(struct fs_atomic *a, const char *path, mode_t mode)
{
	char dir[PATH_MAX];
	int saved;

	a->dirfd = -1;
	a->fd = -1;
	a->base[0] = '\0';
	a->tmp[0] = '\0';

	if (fs_split(path, dir, sizeof(dir), a->base, sizeof(a->base)) != 0) {
		goto fail;
	}
	if (fs_is_dot_or_dotdot(a->base)) {
		errno = EISDIR;
		goto fail;
	}
	a->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (a->dirfd < 0) {
		goto fail;
	}
	fs_tmp_sweep(a->dirfd, a->base);
	for (int i = 0; i < FS_TMP_TRIES && a->fd < 0; i++) {
		if (fs_tmp_name(a->base, a->tmp, sizeof(a->tmp)) != 0) {
			goto fail;
		}
		a->fd = openat(a->dirfd, a->tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, mode);
		if (a->fd < 0 && errno != EEXIST) {
			a->tmp[0] = '\0';
			goto fail;
		}
	}
	if (a->fd < 0) {
		a->tmp[0] = '\0';
		goto fail;
	}
	/* open() applied the umask; callers ask for an exact mode. */
	if (fchmod(a->fd, mode) != 0) {
		goto fail;
	}
	return 0;

fail:
	saved = errno;
	fs_atomic_abort(a);
	errno = saved;
	return -1;
}

int
fs_atomic_write(struct fs_atomic *a, const void *buf, size_t len)
{
	if (a->fd < 0) {
		errno = EBADF;
		return -1;
	}
	return fs_write_all(a->fd, buf, len);
}

int
fs_atomic_commit(struct fs_atomic *a)
{
	int fd, rc = -1, saved;

	if (a->fd < 0 || a->dirfd < 0) {
		errno = EBADF;
		goto out;
	}
	if (fsync(a->fd) != 0) {
		goto out;
	}
	fd = a->fd;
	a->fd = -1;
	if (close(fd) != 0) {
		goto out;
	}
	if (renameat(a->dirfd, a->tmp, a->dirfd, a->base) != 0) {
		goto out;
	}
	a->tmp[0] = '\0'; /* it is the destination now */
	if (fs_fsync_fd_dir(a->dirfd) != 0) {
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	fs_atomic_abort(a);
	errno = saved;
	return rc;
}

int
fs_atomic_commit_as(struct fs_atomic *a, const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= sizeof(a->base) || strchr(name, '/') != NULL ||
	    fs_is_dot_or_dotdot(name)) {
		fs_atomic_abort(a);
		errno = EINVAL;
		return -1;
	}
	memcpy(a->base, name, len + 1);
	return fs_atomic_commit(a);
}

const char *
fs_atomic_tmp_name(const struct fs_atomic *a)
{
	return a->fd >= 0 ? a->tmp : "";
}

void
fs_atomic_abort(struct fs_atomic *a)
{
	int saved = errno;

	if (a->fd >= 0) {
		close(a->fd);
		a->fd = -1;
	}
	if (a->dirfd >= 0) {
		if (a->tmp[0] != '\0') {
			unlinkat(a->dirfd, a->tmp, 0);
		}
		close(a->dirfd);
		a->dirfd = -1;
	}
	a->tmp[0] = '\0';
	errno = saved;
}

int
fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	struct fs_atomic a = FS_ATOMIC_INIT;
	int rc = -1, saved;

	if (fs_atomic_begin(&a, path, mode) != 0) {
		goto out;
	}
	if (fs_atomic_write(&a, data, len) != 0) {
		goto out;
	}
	if (fs_atomic_commit(&a) != 0) {
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	fs_atomic_abort(&a);
	errno = saved;
	return rc;
}

int
fs_fsync_dir(const char *dir)
{
	int fd, rc, saved;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		return -1;
	}
	rc = fs_fsync_fd_dir(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
fs_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];

	if (fs_split(path, dir, sizeof(dir), base, sizeof(base)) != 0) {
		return -1;
	}
	return fs_fsync_dir(dir);
}

/* Create one directory of fs_mkdir_p(); PREFIX existing as a dir is fine. */
static int
fs_mkdir_one(const char *prefix, mode_t mode)
{
	struct stat st;

	if (mkdir(prefix, mode) == 0) {
		if (chmod(prefix, mode) != 0) {
			return -1;
		}
		return fs_fsync_parent(prefix);
	}
	if (errno != EEXIST) {
		return -1;
	}
	if (stat(prefix, &st) != 0) {
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int
fs_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n;

	if (path == NULL || *path == '\0') {
		errno = ENOENT;
		return -1;
	}
	n = strlen(path);
	if (n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0') {
			continue;
		}
		if (buf[i - 1] == '/') {
			continue; /* "//" or a trailing slash: nothing new to create */
		}
		char c = buf[i];
		buf[i] = '\0';
		int r = fs_mkdir_one(buf, mode);
		buf[i] = c;
		if (r != 0) {
			return -1;
		}
	}
	return 0;
}

/* Where a directory lives: its device and, when the kernel says, its mount. */
struct fs_mount_id {
	dev_t dev;
	uint64_t mnt;
	int has_mnt;
};

static void
fs_mount_id_of(int fd, const struct stat *st, struct fs_mount_id *id)
{
	struct statx sx;

	id->dev = st->st_dev;
	id->mnt = 0;
	id->has_mnt = 0;
	/* A bind mount of the same file system keeps st_dev: only the mount id tells. */
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &sx) == 0 &&
	    (sx.stx_mask & STATX_MNT_ID) != 0) {
		id->mnt = sx.stx_mnt_id;
		id->has_mnt = 1;
	}
}

static int
fs_same_mount(const struct fs_mount_id *a, const struct fs_mount_id *b)
{
	if (a->dev != b->dev) {
		return 0;
	}
	return !(a->has_mnt && b->has_mnt && a->mnt != b->mnt);
}

/*
 * Remove NAME in directory PFD. DTYPE is readdir's hint (DT_UNKNOWN when
 * there is none). ROOT identifies the mount of the tree's top (NULL at the
 * top, which records it).
 */
static int
fs_rm_entry(int pfd, const char *name, unsigned char dtype, const struct fs_mount_id *root,
    int depth)
{
	struct stat st;
	DIR *d = NULL;
	int fd = -1, rc = -1, saved;
	struct fs_mount_id here;

	if (dtype != DT_UNKNOWN && dtype != DT_DIR) {
		if (unlinkat(pfd, name, 0) == 0 || errno == ENOENT) {
			return 0;
		}
		if (errno != EISDIR) {
			return -1;
		}
		/* Replaced by a directory since readdir: treat it as one below. */
	}
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		return errno == ENOENT ? 0 : -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(pfd, name, 0) != 0 && errno != ENOENT) {
			return -1;
		}
		return 0;
	}
	if (depth >= FS_RMTREE_MAX_DEPTH) {
		errno = ELOOP;
		return -1;
	}
	/* O_NOFOLLOW|O_DIRECTORY: a directory swapped for a symlink fails here. */
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT) {
			rc = 0;
		}
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		goto out;
	}
	fs_mount_id_of(fd, &st, &here);
	if (root == NULL) {
		root = &here;
	} else if (!fs_same_mount(root, &here)) {
		errno = EXDEV;
		goto out;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		goto out;
	}
	fd = -1; /* owned by d */
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (de == NULL) {
			if (errno != 0) {
				goto out;
			}
			break;
		}
		if (fs_is_dot_or_dotdot(de->d_name)) {
			continue;
		}
		if (fs_rm_entry(dirfd(d), de->d_name, de->d_type, root, depth + 1) != 0) {
			goto out;
		}
	}
	if (unlinkat(pfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	if (d != NULL) {
		closedir(d);
	}
	if (fd >= 0) {
		close(fd);
	}
	errno = saved;
	return rc;
}

int
fs_rmtree(const char *path)
{
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];
	int dfd, rc, saved;

	if (fs_split(path, dir, sizeof(dir), base, sizeof(base)) != 0) {
		return -1;
	}
	if (fs_is_dot_or_dotdot(base)) {
		errno = EINVAL;
		return -1;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		return errno == ENOENT ? 0 : -1;
	}
	rc = fs_rm_entry(dfd, base, DT_UNKNOWN, NULL, 0);
	saved = errno;
	close(dfd);
	errno = saved;
	return rc;
}

int
fs_rename_durable(const char *from, const char *to)
{
	char fdir[PATH_MAX], tdir[PATH_MAX];
	char base[NAME_MAX + 1];

	if (fs_split(from, fdir, sizeof(fdir), base, sizeof(base)) != 0) {
		return -1;
	}
	if (fs_split(to, tdir, sizeof(tdir), base, sizeof(base)) != 0) {
		return -1;
	}
	if (rename(from, to) != 0) {
		return -1;
	}
	if (fs_fsync_dir(tdir) != 0) {
		return -1;
	}
	if (strcmp(fdir, tdir) != 0 && fs_fsync_dir(fdir) != 0) {
		return -1;
	}
	return 0;
}

int
fs_symlink_replace(const char *target, const char *linkpath)
{
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];
	char tmp[NAME_MAX + 1] = "";
	int dfd = -1, rc = -1, saved, made = 0;

	if (target == NULL || *target == '\0') {
		errno = EINVAL;
		goto out;
	}
	if (fs_split(linkpath, dir, sizeof(dir), base, sizeof(base)) != 0) {
		goto out;
	}
	if (fs_is_dot_or_dotdot(base)) {
		errno = EISDIR;
		goto out;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		goto out;
	}
	fs_tmp_sweep(dfd, base);
	for (int i = 0; i < FS_TMP_TRIES && !made; i++) {
		if (fs_tmp_name(base, tmp, sizeof(tmp)) != 0) {
			goto out;
		}
		if (symlinkat(target, dfd, tmp) == 0) {
			made = 1;
		} else if (errno != EEXIST) {
			goto out;
		}
	}
	if (!made) {
		goto out;
	}
	if (renameat(dfd, tmp, dfd, base) != 0) {
		goto out;
	}
	made = 0;
	if (fs_fsync_fd_dir(dfd) != 0) {
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	if (made) {
		unlinkat(dfd, tmp, 0);
	}
	if (dfd >= 0) {
		close(dfd);
	}
	errno = saved;
	return rc;
}

/* Open PATH for reading, refusing anything but a regular file (EINVAL). */
static int
fs_open_regular(const char *path, struct stat *st)
{
	int fd, saved;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		return -1;
	}
	if (fstat(fd, st) != 0) {
		goto fail;
	}
	if (!S_ISREG(st->st_mode)) {
		errno = S_ISDIR(st->st_mode) ? EISDIR : EINVAL;
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
fs_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	int fd = -1, rc = -1, saved;

	if (max > SIZE_MAX - 2) {
		max = SIZE_MAX - 2;
	}
	fd = fs_open_regular(path, &st);
	if (fd < 0) {
		goto out;
	}
	if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
		errno = EFBIG;
		goto out;
	}
	/* The size is a hint (files can grow, /proc reports 0): MAX is the bound. */
	cap = (size_t)st.st_size + 2;
	buf = malloc(cap);
	if (buf == NULL) {
		goto out;
	}
	for (;;) {
		if (len == cap - 1) {
			if (len > max) {
				errno = EFBIG;
				goto out;
			}
			size_t ncap = cap > (max + 2) / 2 ? max + 2 : cap * 2;
			char *nb = realloc(buf, ncap);
			if (nb == NULL) {
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			goto out;
		}
		if (n == 0) {
			break;
		}
		len += (size_t)n;
	}
	if (len > max) {
		errno = EFBIG;
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
	if (outlen != NULL) {
		*outlen = len;
	}
	rc = 0;
out:
	saved = errno;
	free(buf);
	if (fd >= 0) {
		close(fd);
	}
	errno = saved;
	return rc;
}

int
fs_copy_file(const char *from, const char *to, mode_t mode)
{
	struct fs_atomic a = FS_ATOMIC_INIT;
	struct stat st;
	char *buf = NULL;
	int fd = -1, rc = -1, saved;

	fd = fs_open_regular(from, &st);
	if (fd < 0) {
		goto out;
	}
	buf = malloc(FS_COPY_CHUNK);
	if (buf == NULL) {
		goto out;
	}
	if (fs_atomic_begin(&a, to, mode) != 0) {
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, FS_COPY_CHUNK);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			goto out;
		}
		if (n == 0) {
			break;
		}
		if (fs_atomic_write(&a, buf, (size_t)n) != 0) {
			goto out;
		}
	}
	if (fs_atomic_commit(&a) != 0) {
		goto out;
	}
	rc = 0;
out:
	saved = errno;
	fs_atomic_abort(&a);
	free(buf);
	if (fd >= 0) {
		close(fd);
	}
	errno = saved;
	return rc;
}

int
fs_free_bytes(const char *path, unsigned long long *out)
{
	struct statvfs sv;
	unsigned long long v;

	if (statvfs(path, &sv) != 0) {
		return -1;
	}
	if (__builtin_mul_overflow((unsigned long long)sv.f_bavail,
		(unsigned long long)sv.f_frsize, &v)) {
		v = ULLONG_MAX;
	}
	*out = v;
	return 0;
}

const char *
fs_tmp_root(void)
{
	const char *tmp = getenv("TMPDIR");

	return tmp != NULL && tmp[0] == '/' ? tmp : "/tmp";
}

int
fs_mkdtemp(const char *prefix, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%sXXXXXX", fs_tmp_root(), prefix);

	if (n < 0 || (size_t)n >= len) {
		if (len > 0) {
			buf[0] = '\0';
		}
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdtemp(buf) == NULL) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}
