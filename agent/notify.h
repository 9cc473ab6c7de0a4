/*
 * notify — telling whoever started us that we are ready (or stopping):
 * the updater's --ready-fd pipe and systemd's sd_notify protocol.
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

/*
 * Send STATE (e.g. "READY=1\nMAINPID=123") as one datagram to the AF_UNIX
 * socket named by SOCKET_PATH ("/path" or "@abstract", as in
 * $NOTIFY_SOCKET). Returns 0, or -1 with errno set.
 */
int notify_socket_send(const char *socket_path, const char *state) WUR;

/*
 * notify_socket_send() to $NOTIFY_SOCKET; 0 and nothing sent when the
 * variable is unset or empty.
 */
int notify_systemd(const char *state) WUR;

#endif
