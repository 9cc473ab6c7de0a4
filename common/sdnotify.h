/*
 * sdnotify — systemd's notification protocol (sd_notify(3)) without
 * libsystemd: one datagram per message to the AF_UNIX socket named by
 * $NOTIFY_SOCKET ("/path", or "@name" for the abstract namespace), and the
 * watchdog period systemd hands over in $WATCHDOG_USEC / $WATCHDOG_PID.
 *
 * The agent sends READY=1 and STOPPING=1 with it; tandem-launcher, the main
 * process of the packaged unit (Type=notify, WatchdogSec=), sends READY=1,
 * STATUS=, WATCHDOG=1 and STOPPING=1 (wiki/Operations.md).
 */
#ifndef TANDEM_COMMON_SDNOTIFY_H
#define TANDEM_COMMON_SDNOTIFY_H

#include "common/err.h"
#include "common/util.h"

/*
 * Send STATE (e.g. "READY=1\nMAINPID=123") as one datagram to the AF_UNIX
 * socket named by SOCKET_PATH ("/path" or "@abstract", as in
 * $NOTIFY_SOCKET). Returns 0, or -1 with errno set (EINVAL for a path that
 * is empty, relative or too long).
 */
int sdnotify_send(const char *socket_path, const char *state) WUR;

/*
 * sdnotify_send() to $NOTIFY_SOCKET; 0 and nothing sent when the variable
 * is unset or empty.
 */
int sdnotify(const char *state) WUR;

/*
 * The watchdog period systemd expects pings within, for this process:
 * *MS = $WATCHDOG_USEC rounded down to milliseconds (at least 1), or 0 when
 * no watchdog applies (unset, or $WATCHDOG_PID names another process).
 * Returns 0, or -1 with E (ERR_CONFIG) when a variable is malformed.
 */
int sdnotify_watchdog_ms(long long *ms, struct err *e) WUR;

/*
 * Remove $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID from the
 * environment after they were read, so the processes started later do not
 * talk to systemd as if they were the main process.
 */
void sdnotify_unsetenv(void);

#endif
