/*
 * selfupdate — what the updater needs to be replaced by a new updater
 * (POST /update-self, wiki/Self-Update.md) beyond the install engine: the
 * contract with tandem-launcher and the deliberately broken test builds.
 *
 * The updater's own releases live in their own tree, INSTALL_DIR/updater/
 * (current, releases/active|prev|active.new|prev.old|failed, state/), kept
 * by the same store code as the agent's tree and never touched by /update.
 * The install engine (updater/install) stages, checks and switches a new
 * updater there and writes the handover record (updater/handover); the
 * launcher (launcher/main.c) owns the listening socket (passed to every
 * updater it starts as fd TANDEM_LISTEN_FD, so connections made during the
 * handover wait in the backlog), starts the updater from the tree's
 * `current` and decides the new updater's probation: commit or revert
 * (install_self_commit / install_self_revert).
 */
#ifndef TANDEM_UPDATER_SELFUPDATE_H
#define TANDEM_UPDATER_SELFUPDATE_H

#include "common/util.h"

/* Set by the launcher in every updater it starts. */
#define SELFUPDATE_ENV_LISTEN_FD "TANDEM_LISTEN_FD"
#define SELFUPDATE_ENV_CONFIG "TANDEM_LAUNCHER_CONFIG"

/* Compile-time broken updater builds (make release RELEASE_UPDATER_KIND=...). */
#define SELFUPDATE_BROKEN_NONE 0
#define SELFUPDATE_BROKEN_EXIT_AT_ONCE 1 /* run mode exits with status 3 before serving */
#define SELFUPDATE_BROKEN_HANG 2         /* run mode blocks forever before serving */
#define SELFUPDATE_BROKEN_CRASH_LATER 3  /* serves, killed by SIGALRM after 3 s */
#define SELFUPDATE_CRASH_LATER_S 3

/*
 * The listening socket the launcher passed (SELFUPDATE_ENV_LISTEN_FD): the
 * descriptor if the variable names an open listening socket, -1 when it is
 * unset; -1 with a warning when it is set but unusable.
 */
int selfupdate_listen_fd(void);

/*
 * Broken test builds only (TANDEM_UPDATER_BROKEN != 0): misbehave as the
 * kind says. Call at the start of the updater's run mode. A no-op in every
 * normal build.
 */
void selfupdate_test_kind(void);

#endif
