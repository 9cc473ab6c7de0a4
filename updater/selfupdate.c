#include "updater/selfupdate.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

#ifndef TANDEM_UPDATER_BROKEN
#define TANDEM_UPDATER_BROKEN SELFUPDATE_BROKEN_NONE
#endif
#if TANDEM_UPDATER_BROKEN < SELFUPDATE_BROKEN_NONE || \
    TANDEM_UPDATER_BROKEN > SELFUPDATE_BROKEN_CRASH_LATER
#error "TANDEM_UPDATER_BROKEN must be 0..3"
#endif

int
selfupdate_listen_fd(void)
{
	const char *v = getenv(SELFUPDATE_ENV_LISTEN_FD);
	long long fd;
	int acc = 0;
	socklen_t sl = sizeof(acc);

	if (v == NULL || v[0] == '\0') {
		return -1;
	}
	if (parse_ll(v, 3, INT_MAX, &fd) != 0) {
		log_warnx("%s=%s: not a descriptor number", SELFUPDATE_ENV_LISTEN_FD, v);
		return -1;
	}
	if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) != 0 || acc != 1) {
		log_warnx("%s=%s: not a listening socket", SELFUPDATE_ENV_LISTEN_FD, v);
		return -1;
	}
	/* The agent and preflights must not inherit it (proc closes fds > 2, this is belt and braces). */
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0) {
		log_warn("%s: FD_CLOEXEC", SELFUPDATE_ENV_LISTEN_FD);
		return -1;
	}
	return (int)fd;
}

void
selfupdate_test_kind(void)
{
#if TANDEM_UPDATER_BROKEN == SELFUPDATE_BROKEN_EXIT_AT_ONCE
	log_warnx("broken build (exit-at-once): exiting");
	_exit(3);
#elif TANDEM_UPDATER_BROKEN == SELFUPDATE_BROKEN_HANG
	log_warnx("broken build (hang): never serving");
	for (;;) {
		/* Blocked signals stay blocked: only SIGKILL ends this. */
		pause();
	}
#elif TANDEM_UPDATER_BROKEN == SELFUPDATE_BROKEN_CRASH_LATER
	log_warnx("broken build (crash-later): dying in %d s", SELFUPDATE_CRASH_LATER_S);
	alarm(SELFUPDATE_CRASH_LATER_S);
#endif
}
