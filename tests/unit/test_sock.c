/*
 * Unit tests of common/sock: the one listening socket (bind, port 0, IPv6,
 * the error kinds of a bad address and of a busy port, close-on-exec).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/sock.h"

/* Connect to 127.0.0.1:PORT (or [::1]); 0 when the listener took it. */
static int
connects(int family, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc;

	assert_true(fd >= 0);
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons((uint16_t)port);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons((uint16_t)port);
		len = sizeof(*sin6);
	}
	rc = connect(fd, (struct sockaddr *)&ss, len);
	close(fd);
	return rc;
}

static void
test_listen_v4(void **state)
{
	struct err e = ERR_INIT;
	char spec[64];
	int port = 0, again = 0;
	int fd;

	(void)state;
	fd = sock_listen("127.0.0.1:0", &port, &e);
	assert_true(fd >= 0);
	assert_true(port > 0 && port < 65536);
	assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	/* It listens: a client connects without an accept() yet (the backlog). */
	assert_int_equal(connects(AF_INET, port), 0);
	assert_int_equal(sock_port(fd, &again, &e), 0);
	assert_int_equal(again, port);

	/* The same port again is busy: a system error naming the address. */
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	assert_int_equal(sock_listen(spec, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_int_equal(e.sys_errno, EADDRINUSE);
	assert_non_null(strstr(err_msg(&e), "cannot bind 127.0.0.1:"));
	/* The wildcard overlaps the loopback listener too. */
	snprintf(spec, sizeof(spec), ":%d", port);
	err_clear(&e);
	assert_int_equal(sock_listen(spec, NULL, &e), -1);
	assert_int_equal(e.sys_errno, EADDRINUSE);
	close(fd);

	/* Closed: the port can be taken again at once (SO_REUSEADDR). */
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	fd = sock_listen(spec, &again, &e);
	assert_true(fd >= 0);
	assert_int_equal(again, port);
	close(fd);
}

static void
test_listen_v6(void **state)
{
	struct err e = ERR_INIT;
	int port = 0;
	int fd, c;

	(void)state;
	fd = sock_listen("[::1]:0", &port, &e);
	if (fd < 0) {
		skip(); /* no IPv6 loopback here */
	}
	assert_true(port > 0);
	assert_int_equal(connects(AF_INET6, port), 0);
	c = accept(fd, NULL, NULL);
	assert_true(c >= 0);
	close(c);
	/*
	 * A specific v6 address serves only itself, not 127.0.0.1: an IPv4 client
	 * never reaches this listener. (Whether its connect succeeds says nothing:
	 * another process may listen on 127.0.0.1 at the same port number.)
	 */
	(void)connects(AF_INET, port);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	c = accept(fd, NULL, NULL);
	assert_int_equal(c, -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	close(fd);

	/* "[::]" serves IPv4 too (IPV6_V6ONLY off). */
	fd = sock_listen("[::]:0", &port, &e);
	assert_true(fd >= 0);
	assert_int_equal(connects(AF_INET, port), 0);
	close(fd);
}

static void
test_listen_invalid(void **state)
{
	static const char *const bad[] = { "nonsense", "127.0.0.1", "host.example:80",
		"127.0.0.1:http", "[::1:80", "999.1.1.1:80", "", "::1:80" };
	struct err e = ERR_INIT;
	int port = -7;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		if (sock_listen(bad[i], &port, &e) != -1) {
			fail_msg("accepted '%s'", bad[i]);
		}
		if (e.kind != ERR_CONFIG) {
			fail_msg("'%s': kind %s (%s)", bad[i], err_kind_name(e.kind), err_msg(&e));
		}
	}
	assert_int_equal(port, -7);
	err_clear(&e);
	assert_int_equal(sock_listen(NULL, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_CONFIG);
	/* An address this host does not have: the bind fails, not the parse. */
	err_clear(&e);
	assert_int_equal(sock_listen("192.0.2.1:0", NULL, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_non_null(strstr(err_msg(&e), "cannot bind 192.0.2.1:0"));
	/* E may be NULL. */
	assert_int_equal(sock_listen("x", NULL, NULL), -1);
}

static void
test_port_not_a_socket(void **state)
{
	struct err e = ERR_INIT;
	int port = -7;
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(sock_port(fds[0], &port, &e), -1);
	assert_int_equal(e.sys_errno, ENOTSOCK);
	assert_int_equal(port, -7);
	close(fds[0]);
	close(fds[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_v4),
		cmocka_unit_test(test_listen_v6),
		cmocka_unit_test(test_listen_invalid),
		cmocka_unit_test(test_port_not_a_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
