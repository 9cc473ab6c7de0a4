/*
 * notify — telling the updater that started us that we are ready: the
 * --ready-fd pipe (systemd's protocol is common/sdnotify).
 */
#ifndef TANDEM_AGENT_NOTIFY_H
#define TANDEM_AGENT_NOTIFY_H

#include "common/util.h"

/*
 * Check FD is open (at startup, so a wrong --ready-fd fails before any
 * work). Returns 0, or -1 with errno EBADF.
 */
int notify_fd_check(int fd) WUR;

/*
 * Write "READY port=PORT\n" to FD and close it (always closed, also on
 * failure). Returns 0, or -1 with errno set.
 */
int notify_ready_fd(int fd, int port) WUR;

#endif
