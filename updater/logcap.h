/*
 * logcap — the size cap of a log file another process appends to: the
 * agent's stdout/stderr (agent_log, INSTALL_DIR/state/agent.log), which the
 * agent writes through its own O_APPEND descriptor.
 *
 * The agent keeps that descriptor for its whole life, across updater
 * restarts (an adopted agent), so the file cannot be renamed away under it
 * (its writes would follow the rename). The cap copies and truncates
 * instead: when PATH is past MAX bytes, PATH.1 .. PATH.KEEP shift
 * (log_rotate_shift), the last MAX bytes of PATH are copied to a new PATH.1,
 * and PATH is truncated to 0; the agent's next O_APPEND write lands at its
 * new end. A thread watches PATH's directory with inotify and looks at the
 * size on every write to PATH (and once a second without one), so a flooding
 * agent is cut back to the cap as fast as the updater can copy.
 *
 * What the cap cannot promise: PATH may pass MAX by what the agent writes
 * while one check and copy run, and the bytes written between the copy's
 * end and the truncation are lost (a flood's excess beyond MAX bytes per
 * rotation is dropped on purpose).
 */
#ifndef TANDEM_UPDATER_LOGCAP_H
#define TANDEM_UPDATER_LOGCAP_H

#include "common/err.h"
#include "common/util.h"

struct logcap;

/*
 * Start capping PATH at MAX bytes (> 0) with KEEP rotated copies
 * (1..LOG_KEEP_MAX). PATH need not exist yet; a relative PATH is taken from the
 * working directory (the updater's is its install dir). 0, or -1 with E.
 */
int logcap_start(const char *path, unsigned long long max, unsigned keep, struct logcap **out,
    struct err *e) WUR;

/* Rotate PATH now when it is past the cap (the watcher does this by itself). 1 rotated, 0 not. */
int logcap_check(struct logcap *lc);

/* Rotations done so far. */
unsigned long long logcap_rotations(struct logcap *lc);

/* Stop the watcher and free LC (NULL is fine). */
void logcap_stop(struct logcap *lc);

#endif
