/* Unit tests of common/sdnotify: datagrams to a path or abstract socket, the watchdog variables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "tests/unit/tmpdir.h"

static int
bind_dgram(struct sockaddr_un *sun, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)sun, len), 0);
	return fd;
}

static void
recv_is(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void
test_socket_path(void **state)
{
	const char *dir = tmpdir_make("sdnotify");
	struct sockaddr_un sun;
	char full[PATH_MAX];
	int fd;

	(void)state;
	assert_non_null(dir);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	tmpdir_fmt(full, sizeof(full), "%s/notify", dir);
	tmpdir_sock_path(sun.sun_path, sizeof(sun.sun_path), full);
	fd = bind_dgram(&sun, sizeof(sun));
	assert_int_equal(sdnotify_send(sun.sun_path, "READY=1\nMAINPID=42"), 0);
	recv_is(fd, "READY=1\nMAINPID=42");

	/* Through $NOTIFY_SOCKET. */
	assert_int_equal(setenv("NOTIFY_SOCKET", sun.sun_path, 1), 0);
	assert_int_equal(sdnotify("STOPPING=1"), 0);
	recv_is(fd, "STOPPING=1");
	/* Unset or empty: nothing sent, success. */
	assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
	assert_int_equal(sdnotify("READY=1"), 0);
	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
	assert_int_equal(sdnotify("READY=1"), 0);
	char buf[8];
	assert_int_equal(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
	close(fd);

	/* Nobody listening any more. */
	assert_int_equal(sdnotify_send(sun.sun_path, "READY=1"), -1);
	assert_int_equal(tmpdir_remove(), 0);
}

static void
test_socket_abstract(void **state)
{
	struct sockaddr_un sun;
	char name[64];
	int fd;

	(void)state;
	snprintf(name, sizeof(name), "@tandem-test-notify-%d", (int)getpid());
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path + 1, name + 1, strlen(name) - 1);
	fd = bind_dgram(&sun, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name)));
	assert_int_equal(sdnotify_send(name, "READY=1"), 0);
	recv_is(fd, "READY=1");
	close(fd);
}

static void
test_socket_invalid(void **state)
{
	char longp[200];

	(void)state;
	assert_int_equal(sdnotify_send("", "READY=1"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sdnotify_send("relative/path", "READY=1"), -1);
	assert_int_equal(errno, EINVAL);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(sdnotify_send(longp, "READY=1"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sdnotify_send("/nonexistent/notify.sock", "READY=1"), -1);
	assert_int_equal(errno, ENOENT);
}

static void
test_watchdog_env(void **state)
{
	struct err e = ERR_INIT;
	long long ms = -1;
	char pid[32];

	(void)state;
	sdnotify_unsetenv();
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(setenv("WATCHDOG_USEC", "2500000", 1), 0);
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), 0);
	assert_int_equal(ms, 2500);
	/* Below a millisecond still asks for pings. */
	assert_int_equal(setenv("WATCHDOG_USEC", "10", 1), 0);
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), 0);
	assert_int_equal(ms, 1);
	/* WATCHDOG_PID: ours, another process's. */
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	assert_int_equal(setenv("WATCHDOG_USEC", "60000000", 1), 0);
	assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), 0);
	assert_int_equal(ms, 60000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	assert_int_equal(setenv("WATCHDOG_PID", pid, 1), 0);
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), 0);
	assert_int_equal(ms, 0);
	/* Malformed values are errors, not a silently disabled watchdog. */
	assert_int_equal(setenv("WATCHDOG_PID", "x", 1), 0);
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), -1);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_int_equal(unsetenv("WATCHDOG_PID"), 0);
	assert_int_equal(setenv("WATCHDOG_USEC", "0", 1), 0);
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), -1);
	assert_int_equal(setenv("WATCHDOG_USEC", "-5", 1), 0);
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), -1);
	assert_int_equal(setenv("WATCHDOG_USEC", "5s", 1), 0);
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), -1);
	assert_non_null(strstr(err_msg(&e), "WATCHDOG_USEC=5s"));
	/* Forgotten for the children. */
	assert_int_equal(setenv("NOTIFY_SOCKET", "/run/x", 1), 0);
	assert_int_equal(setenv("WATCHDOG_PID", "1", 1), 0);
	sdnotify_unsetenv();
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_null(getenv("WATCHDOG_USEC"));
	assert_null(getenv("WATCHDOG_PID"));
	assert_int_equal(sdnotify_watchdog_ms(&ms, &e), 0);
	assert_int_equal(ms, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket_path),
		cmocka_unit_test(test_socket_abstract),
		cmocka_unit_test(test_socket_invalid),
		cmocka_unit_test(test_watchdog_env),
	};

	log_init("test_sdnotify", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
