/* Unit tests of agent/notify: the --ready-fd line and sd_notify datagrams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/notify.h"
#include "common/fs.h"
#include "common/log.h"

static void
test_ready_fd(void **state)
{
	int p[2];
	char buf[64];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(notify_fd_check(p[1]), 0);
	assert_int_equal(notify_ready_fd(p[1], 8765), 0);
	/* The write end is closed: the reader sees the line, then EOF. */
	assert_int_equal(fcntl(p[1], F_GETFD), -1);
	n = read(p[0], buf, sizeof(buf));
	assert_int_equal(n, 16);
	assert_memory_equal(buf, "READY port=8765\n", 16);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 0);
	close(p[0]);

	/* A closed or invalid descriptor. */
	assert_int_equal(notify_fd_check(p[1]), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(notify_fd_check(-1), -1);
	assert_int_equal(notify_ready_fd(p[1], 1), -1);

	/* A reader that went away: EPIPE (SIGPIPE ignored), fd still closed. */
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(notify_ready_fd(p[1], 1), -1);
	assert_int_equal(errno, EPIPE);
	assert_int_equal(fcntl(p[1], F_GETFD), -1);
}

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
	char dir[64];
	struct sockaddr_un sun;
	int fd;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_agent_notify.XXXXXX");
	assert_non_null(mkdtemp(dir));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", dir);
	fd = bind_dgram(&sun, sizeof(sun));
	assert_int_equal(notify_socket_send(sun.sun_path, "READY=1\nMAINPID=42"), 0);
	recv_is(fd, "READY=1\nMAINPID=42");

	/* Through $NOTIFY_SOCKET. */
	assert_int_equal(setenv("NOTIFY_SOCKET", sun.sun_path, 1), 0);
	assert_int_equal(notify_systemd("STOPPING=1"), 0);
	recv_is(fd, "STOPPING=1");
	/* Unset or empty: nothing sent, success. */
	assert_int_equal(setenv("NOTIFY_SOCKET", "", 1), 0);
	assert_int_equal(notify_systemd("READY=1"), 0);
	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
	assert_int_equal(notify_systemd("READY=1"), 0);
	char buf[8];
	assert_int_equal(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
	close(fd);

	/* Nobody listening any more. */
	assert_int_equal(notify_socket_send(sun.sun_path, "READY=1"), -1);
	assert_int_equal(fs_rmtree(dir), 0);
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
	assert_int_equal(notify_socket_send(name, "READY=1"), 0);
	recv_is(fd, "READY=1");
	close(fd);
}

static void
test_socket_invalid(void **state)
{
	char longp[200];

	(void)state;
	assert_int_equal(notify_socket_send("", "READY=1"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(notify_socket_send("relative/path", "READY=1"), -1);
	assert_int_equal(errno, EINVAL);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(notify_socket_send(longp, "READY=1"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(notify_socket_send("/nonexistent/notify.sock", "READY=1"), -1);
	assert_int_equal(errno, ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_fd),
		cmocka_unit_test(test_socket_path),
		cmocka_unit_test(test_socket_abstract),
		cmocka_unit_test(test_socket_invalid),
	};

	log_init("test_agent_notify", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
