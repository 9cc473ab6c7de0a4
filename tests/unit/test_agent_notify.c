/* Unit tests of agent/notify: the --ready-fd line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "agent/notify.h"
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_fd),
	};

	log_init("test_agent_notify", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
