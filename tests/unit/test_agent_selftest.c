/*
 * Unit tests of agent/selftest: the bind check and failure reporting.
 * The certificate checks run against openssl-made certificates in
 * tests/e2e/test_agent.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/selftest.h"
#include "common/log.h"

/* A listening socket on 127.0.0.1 (or ::1); returns the fd, port in *PORT. */
static int
listener(int family, int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		return -1;
	}
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static void
test_bind(void **state)
{
	struct err e = ERR_INIT;
	char addr[64];
	int port;
	int fd;

	(void)state;
	assert_int_equal(selftest_bind("127.0.0.1:0", &e), 0);
	fd = listener(AF_INET, &port);
	assert_true(fd >= 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	assert_int_equal(selftest_bind(addr, &e), -1);
	assert_non_null(strstr(err_msg(&e), "cannot bind 127.0.0.1:"));
	assert_non_null(strstr(err_msg(&e), "in use"));
	/* The wildcard address overlaps the loopback listener too. */
	snprintf(addr, sizeof(addr), ":%d", port);
	assert_int_equal(selftest_bind(addr, &e), -1);
	close(fd);
	/* Free again: the check binds without holding the port afterwards. */
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	assert_int_equal(selftest_bind(addr, &e), 0);
	assert_int_equal(selftest_bind(addr, &e), 0);
}

static void
test_bind_v6(void **state)
{
	struct err e = ERR_INIT;
	char addr[64];
	int port;
	int fd;

	(void)state;
	fd = listener(AF_INET6, &port);
	if (fd < 0) {
		skip(); /* no IPv6 loopback here */
	}
	snprintf(addr, sizeof(addr), "[::1]:%d", port);
	assert_int_equal(selftest_bind(addr, &e), -1);
	close(fd);
	assert_int_equal(selftest_bind(addr, &e), 0);
	assert_int_equal(selftest_bind("[::1]:0", &e), 0);
}

static void
test_bind_invalid(void **state)
{
	static const char *const bad[] = { "nonsense", "127.0.0.1", "host.example:80",
		"127.0.0.1:http", "[::1:80", "999.1.1.1:80" };
	struct err e = ERR_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_clear(&e);
		assert_int_equal(selftest_bind(bad[i], &e), -1);
		assert_true(err_msg(&e)[0] != '\0');
		assert_int_equal(e.kind, ERR_CONFIG);
	}
	/* An address this host does not have. */
	assert_int_equal(selftest_bind("192.0.2.1:0", &e), -1);
	assert_non_null(strstr(err_msg(&e), "cannot bind"));
}

static void
test_run_reports_one_line(void **state)
{
	struct agent_config cfg;
	char line[1024];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.ca = (char *)"/nonexistent/ca.crt";
	cfg.cert = (char *)"/nonexistent/host.crt";
	cfg.key = (char *)"/nonexistent/host.key";
	cfg.listen = (char *)"127.0.0.1:0";
	cfg.master_cn = (char *)"tandem-master";
	assert_int_equal(selftest_run(&cfg, line, sizeof(line)), -1);
	assert_int_equal(strncmp(line, "self-test: FAILED: ", 19), 0);
	assert_non_null(strstr(line, "/nonexistent/"));
	assert_null(strchr(line, '\n'));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bind),
		cmocka_unit_test(test_bind_v6),
		cmocka_unit_test(test_bind_invalid),
		cmocka_unit_test(test_run_reports_one_line),
	};

	log_init("test_agent_selftest", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
