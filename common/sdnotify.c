#include "common/sdnotify.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SDNOTIFY_ENV_SOCKET "NOTIFY_SOCKET"
#define SDNOTIFY_ENV_WD_USEC "WATCHDOG_USEC"
#define SDNOTIFY_ENV_WD_PID "WATCHDOG_PID"

int
sdnotify_send(const char *socket_path, const char *state)
{
	struct sockaddr_un sun;
	size_t plen = strlen(socket_path);
	socklen_t alen;
	int fd, rc = -1, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (plen == 0 || plen >= sizeof(sun.sun_path) ||
	    (socket_path[0] != '/' && socket_path[0] != '@')) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sun.sun_path, socket_path, plen);
	if (sun.sun_path[0] == '@') {
		sun.sun_path[0] = '\0'; /* abstract namespace: the length delimits the name */
	}
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		return -1;
	}
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sun, alen) >= 0) {
		rc = 0;
	}
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
sdnotify(const char *state)
{
	const char *path = getenv(SDNOTIFY_ENV_SOCKET);

	if (path == NULL || path[0] == '\0') {
		return 0;
	}
	return sdnotify_send(path, state);
}

int
sdnotify_watchdog_ms(long long *ms, struct err *e)
{
	const char *usec = getenv(SDNOTIFY_ENV_WD_USEC);
	const char *pid = getenv(SDNOTIFY_ENV_WD_PID);
	long long u, p;

	*ms = 0;
	if (usec == NULL || usec[0] == '\0') {
		return 0;
	}
	if (parse_ll(usec, 1, LLONG_MAX, &u) != 0) {
		return err_set(e, ERR_CONFIG, "%s=%s: not a positive number of microseconds",
		    SDNOTIFY_ENV_WD_USEC, usec);
	}
	if (pid != NULL && pid[0] != '\0') {
		if (parse_ll(pid, 1, INT_MAX, &p) != 0) {
			return err_set(e, ERR_CONFIG, "%s=%s: not a process id", SDNOTIFY_ENV_WD_PID,
			    pid);
		}
		if (p != (long long)getpid()) {
			return 0; /* meant for another process */
		}
	}
	*ms = u / 1000 > 0 ? u / 1000 : 1;
	return 0;
}

void
sdnotify_unsetenv(void)
{
	(void)unsetenv(SDNOTIFY_ENV_SOCKET);
	(void)unsetenv(SDNOTIFY_ENV_WD_USEC);
	(void)unsetenv(SDNOTIFY_ENV_WD_PID);
}
