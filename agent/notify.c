#include "agent/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fs.h"

int
notify_fd_check(int fd)
{
	if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
		errno = EBADF;
		return -1;
	}
	return 0;
}

int
notify_ready_fd(int fd, int port)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "READY port=%d\n", port);
	int rc = 0;
	int saved = 0;

	if (fs_write_all(fd, line, (size_t)n) != 0) {
		saved = errno;
		rc = -1;
	}
	if (close(fd) != 0 && rc == 0) {
		saved = errno;
		rc = -1;
	}
	if (rc != 0) {
		errno = saved;
	}
	return rc;
}

int
notify_socket_send(const char *socket_path, const char *state)
{
	struct sockaddr_un sun;
	size_t plen = strlen(socket_path);
	socklen_t alen;
	int fd = -1;
	int rc = -1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (plen == 0 || plen >= sizeof(sun.sun_path) ||
	    (socket_path[0] != '/' && socket_path[0] != '@')) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sun.sun_path, socket_path, plen);
	if (sun.sun_path[0] == '@') {
		sun.sun_path[0] = '\0'; /* abstract namespace */
	}
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -1;
	}
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, alen) < 0) {
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return rc;
}

int
notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");

	if (path == NULL || path[0] == '\0') {
		return 0;
	}
	return notify_socket_send(path, state);
}
