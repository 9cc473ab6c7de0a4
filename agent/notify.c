#include "agent/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
