/*
 * The unit tests' temporary directory (tmpdir.h): linked into every unit
 * test, so no test keeps its own mkdtemp/rmtree fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fs.h"
#include "tests/unit/tmpdir.h"

static char g_tmpdir[PATH_MAX];
/* Directories opened by tmpdir_sock_path(), closed by tmpdir_remove(). */
static int g_dirfds[16];
static size_t g_ndirfds;

const char *
tmpdir_make(const char *name)
{
	char prefix[128];
	int n = snprintf(prefix, sizeof(prefix), "tandem-ut-%s.", name);

	if (n < 0 || (size_t)n >= sizeof(prefix) ||
	    fs_mkdtemp(prefix, g_tmpdir, sizeof(g_tmpdir)) != 0) {
		g_tmpdir[0] = '\0';
		return NULL;
	}
	return g_tmpdir;
}

const char *
tmpdir_path(void)
{
	return g_tmpdir;
}

int
tmpdir_remove(void)
{
	int rc;

	while (g_ndirfds > 0) {
		close(g_dirfds[--g_ndirfds]);
	}
	if (g_tmpdir[0] == '\0') {
		return -1;
	}
	rc = fs_rmtree(g_tmpdir) == 0 ? 0 : -1;
	g_tmpdir[0] = '\0';
	return rc;
}

int
tmpdir_teardown(void **state)
{
	int rc = tmpdir_remove();

	free(*state);
	*state = NULL;
	return rc;
}

void
tmpdir_join(char *buf, size_t size, const char *rel)
{
	int n = snprintf(buf, size, "%s/%s", g_tmpdir, rel);

	assert_true(g_tmpdir[0] != '\0' && n > 0 && (size_t)n < size);
}

void
tmpdir_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < size);
}

void
tmpdir_sock_path(char *buf, size_t size, const char *path)
{
	struct sockaddr_un sa;
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd;

	if (strlen(path) < sizeof(sa.sun_path)) {
		tmpdir_fmt(buf, size, "%s", path);
		return;
	}
	assert_non_null(slash);
	assert_true(g_ndirfds < sizeof(g_dirfds) / sizeof(g_dirfds[0]));
	tmpdir_fmt(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	g_dirfds[g_ndirfds++] = fd;
	tmpdir_fmt(buf, size, "/proc/self/fd/%d/%s", fd, slash + 1);
	assert_true(strlen(buf) < sizeof(sa.sun_path));
}

void
tmpdir_put(const char *rel, const char *content, mode_t mode)
{
	char p[PATH_MAX];

	tmpdir_join(p, sizeof(p), rel);
	assert_int_equal(fs_write_atomic(p, content, strlen(content), mode), 0);
	assert_int_equal(chmod(p, mode), 0);
}

void
tmpdir_mkdir(const char *rel, mode_t mode)
{
	char p[PATH_MAX];

	tmpdir_join(p, sizeof(p), rel);
	assert_int_equal(mkdir(p, mode), 0);
	assert_int_equal(chmod(p, mode), 0);
}

int
tmpdir_anon_fd(void)
{
	char p[PATH_MAX];
	int n = snprintf(p, sizeof(p), "%s/tandem-ut-anon.XXXXXX", fs_tmp_root());
	int fd;

	assert_true(n > 0 && (size_t)n < sizeof(p));
	fd = mkstemp(p);
	assert_true(fd >= 0);
	assert_int_equal(unlink(p), 0);
	return fd;
}
