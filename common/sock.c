/* sock — the listening socket (see sock.h). */

#include "common/sock.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
sock_port(int fd, int *port, struct err *e)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		return err_sys(e, "socket %d", fd);
	}
	if (ss.ss_family == AF_INET6) {
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else if (ss.ss_family == AF_INET) {
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else {
		return err_set(e, ERR_INTERNAL, "socket %d is not an IP socket", fd);
	}
	return 0;
}

int
sock_listen(const char *spec, int *port, struct err *e)
{
	struct addrinfo hints, *res = NULL;
	char host[256], serv[16];
	int fd = -1, one = 1, gai, rc = -1;

	if (spec == NULL ||
	    split_host_port(spec, host, sizeof(host), serv, sizeof(serv)) != 0) {
		return err_set(e, ERR_CONFIG, "listen address \"%s\" is not ADDR:PORT or [V6]:PORT",
		    spec != NULL ? spec : "");
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	gai = getaddrinfo(host[0] != '\0' ? host : NULL, serv, &hints, &res);
	if (gai != 0) {
		return err_set(e, ERR_CONFIG, "listen address \"%s\": %s", spec,
		    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err_sys(e, "socket for %s", spec);
		goto out;
	}
	/* A restarted server binds again at once, past the old TIME_WAIT ones. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
		err_sys(e, "setsockopt %s", spec);
		goto out;
	}
	if (res->ai_family == AF_INET6) {
		int v6only = IN6_IS_ADDR_UNSPECIFIED(
				 &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr)
				 ? 0
				 : 1;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) {
			err_sys(e, "setsockopt %s", spec);
			goto out;
		}
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
		err_sys(e, "cannot bind %s", spec);
		goto out;
	}
	if (listen(fd, SOCK_BACKLOG) != 0) {
		err_sys(e, "cannot listen on %s", spec);
		goto out;
	}
	if (port != NULL && sock_port(fd, port, e) != 0) {
		goto out;
	}
	rc = fd;
	fd = -1;
out:
	if (fd >= 0) {
		close(fd);
	}
	freeaddrinfo(res);
	return rc;
}
