/*
 * updater/selfupdate: the check of the listening socket tandem-launcher
 * passes, and the broken-build hook (a no-op in normal builds).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "updater/selfupdate.h"
#include "tests/unit/tmpdir.h"

static const char *root;

static int
setup(void **state)
{
	char p[PATH_MAX];

	(void)state;
	root = tmpdir_make("selfupdate");
	if (root == NULL) {
		return -1;
	}
	snprintf(p, sizeof(p), "%s/state", root);
	return mkdir(p, 0700);
}

static int
teardown(void **state)
{
	(void)state;
	unsetenv(SELFUPDATE_ENV_LISTEN_FD);
	return tmpdir_remove();
}

static void
setenv_fd(int fd)
{
	char v[32];

	snprintf(v, sizeof(v), "%d", fd);
	assert_int_equal(setenv(SELFUPDATE_ENV_LISTEN_FD, v, 1), 0);
}

static void
test_listen_fd(void **state)
{
	struct sockaddr_in sa;
	int lfd, sp[2], ffd;
	char p[PATH_MAX];

	(void)state;
	unsetenv(SELFUPDATE_ENV_LISTEN_FD);
	assert_int_equal(selfupdate_listen_fd(), -1);
	assert_int_equal(setenv(SELFUPDATE_ENV_LISTEN_FD, "abc", 1), 0);
	assert_int_equal(selfupdate_listen_fd(), -1);
	assert_int_equal(setenv(SELFUPDATE_ENV_LISTEN_FD, "2", 1), 0); /* stdio: never */
	assert_int_equal(selfupdate_listen_fd(), -1);
	assert_int_equal(setenv(SELFUPDATE_ENV_LISTEN_FD, "999999", 1), 0); /* not open */
	assert_int_equal(selfupdate_listen_fd(), -1);

	/* A connected socket and a regular file are not listening sockets. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	setenv_fd(sp[0]);
	assert_int_equal(selfupdate_listen_fd(), -1);
	close(sp[0]);
	close(sp[1]);
	snprintf(p, sizeof(p), "%s/file", root);
	ffd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	assert_true(ffd >= 0);
	setenv_fd(ffd);
	assert_int_equal(selfupdate_listen_fd(), -1);
	close(ffd);

	/* A listening socket (inherited without FD_CLOEXEC) is taken and made close-on-exec. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv_fd(lfd);
	assert_int_equal(selfupdate_listen_fd(), -1); /* bound, not yet listening */
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(selfupdate_listen_fd(), lfd);
	assert_true((fcntl(lfd, F_GETFD) & FD_CLOEXEC) != 0);
	close(lfd);
}

static void
test_normal_build(void **state)
{
	(void)state;
	/* Normal builds: the test-kind hook does nothing (we are still here). */
	selfupdate_test_kind();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_listen_fd, setup, teardown),
		cmocka_unit_test(test_normal_build),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
