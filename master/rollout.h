/*
 * rollout — the driver of a fleet rollout: a reconciler that reads the
 * rollout's rows from the registry, decides the next step, acts on the
 * hosts and records what happened before it goes on, so that a master
 * killed at any point can be resumed (`tandem swarm rollout resume ID`)
 * and ends with the same rows as a run that was never interrupted.
 *
 * One driver per rollout: the driver holds the rollout's lease in the
 * registry (30 s, renewed every 10 s by a thread; a holder on this machine
 * whose process is gone loses it at once). Every write checks the lease.
 *
 * Steps, each durable before the next (test builds can stop the master at
 * each with TANDEM_TEST_CRASH_AT=<point>):
 *
 *   rollout.created            the plan is recorded (hosts, order, waves)
 *   rollout.dispatched         a host's request id and release-before are
 *                              recorded, before its upload starts
 *   rollout.agent_answered     --include-self: the agent's push answered
 *                              updated, before the self-update is sent
 *   rollout.answered           the updater answered, before that is recorded
 *   rollout.committed          the answer is recorded
 *   rollout.soak_started       the gate's soak deadline is recorded
 *   rollout.gate_passed        the gate passed, before the next wave is recorded
 *   rollout.wave_passed        the next wave is recorded
 *   rollout.halted             the halt is recorded, before any revert
 *   rollout.revert_dispatched  a revert's request id is recorded, before
 *                              POST /rollback
 *   rollout.reverted           the revert's answer is recorded
 *
 * A host recorded as dispatched (or reverting) when its driver died is
 * reconciled from its updater: GET /history?request_id= says whether the
 * request ran and how it ended (an operation still running is waited for);
 * a request that never arrived is sent again with the same id (so is a
 * self-update, --include-self, whose id the history lacks), and an
 * updater asked to install the release it already runs answers
 * already_active without reinstalling. So no host installs a release twice
 * because of a resume.
 */
#ifndef TANDEM_MASTER_ROLLOUT_H
#define TANDEM_MASTER_ROLLOUT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "common/util.h"
#include "master/registry_rollout.h"
#include "master/rollout_plan.h"
#include "master/selector.h"
#include "master/swarm_push.h"

#define ROLLOUT_LEASE_S 30
#define ROLLOUT_LEASE_RENEW_MS 10000
/* How long a gate command may run. */
#define ROLLOUT_GATE_TIMEOUT_MS (10 * 60 * 1000)

/* Exit codes of the rollout commands (documented in --help and the wiki). */
#define ROLLOUT_EXIT_DONE 0      /* done: every host runs the release */
#define ROLLOUT_EXIT_FAILED 1    /* halted, aborted, or done with failed hosts; or an error */
#define ROLLOUT_EXIT_OPEN 3      /* not finished: paused, interrupted, waiting for a driver */

/* How a driver reports while it works. */
struct rollout_ui {
	int json_lines;  /* one JSON object per host result and event on stdout */
	int quiet;       /* no progress lines on stderr */
};

/* Where a drive ended. */
struct rollout_outcome {
	struct reg_rollout r;              /* the rollout's row at the end */
	struct reg_rollout_counts counts;  /* its hosts per state */
	char summary[256];                 /* "halted (1 of 10 updated)" */
	int exit_code;                     /* ROLLOUT_EXIT_* */
};

/*
 * Record the release RF, which cmd_swarm_prepare_release() took into the
 * master's store (HOME/store/<sha256>.tar.gz, master/release_store), in the
 * registry, with its signature beside it (.tsig, atomically) when RF->tsig
 * is set, so that nothing depends on the operator's files later.
 * ERR_NOT_FOUND when RF is not the stored file.
 */
int rollout_store_release(struct swarm_ctx *c, const struct swarm_release_file *rf,
    struct err *e) WUR;

/*
 * Record a new rollout of the stored release SHA256 to the hosts SEL
 * selects, with SPEC (its plan is cut here), KIND "update" or "converge",
 * in state planned (or paused with PAUSED). ID receives its id. Hosts of
 * a paused or halted rollout that no driver holds are taken over (see
 * registry_rollout_create); any other hold refuses it.
 */
int rollout_create(struct swarm_ctx *c, const struct rollout_spec *spec,
    const struct selector *sel, const char *sha256, const char *kind, int paused,
    char id[ROLLOUT_ID_LEN + 1], struct err *e) WUR;
/*
 * The same, of the hosts SEL selects and WANT(WANT_ARG, name) wants, taking
 * hosts over only with TAKE_OVER (converge never does).
 */
int rollout_create_filtered(struct swarm_ctx *c, const struct rollout_spec *spec,
    const struct selector *sel, int (*want)(void *arg, const char *host), void *want_arg,
    int take_over, const char *sha256, const char *kind, int paused,
    char id[ROLLOUT_ID_LEN + 1], struct err *e) WUR;

/*
 * Drive rollout ID until it ends, halts, pauses or is interrupted (*STOP
 * set, e.g. by SIGINT: hosts in flight finish, the rollout stays running
 * for a later resume). A paused or halted rollout is resumed (a halt's
 * failures are acknowledged: the threshold counts from here). A pending
 * request (pause, abort, abort with revert) is acted on. OUT is filled
 * whenever the drive got as far as reading the rollout.
 */
int rollout_drive(struct swarm_ctx *c, const char *id, const struct rollout_ui *ui,
    volatile int *stop, struct rollout_outcome *out, struct err *e) WUR;

/* OUT's counts and summary for the rollout row R (after a drive, or for status). */
void rollout_summarise(struct swarm_ctx *c, struct rollout_outcome *out);

/*
 * Ask rollout ID to pause / abort (REVERT: roll back the hosts it moved).
 * When a live driver holds the lease, the request is recorded for it and
 * *QUEUED set; else the caller should drive the rollout itself to act on
 * it (rollout_drive does).
 */
int rollout_request(struct swarm_ctx *c, const char *id, const char *request, int *queued,
    struct err *e) WUR;

/* The lease owner name of this process ("HOST:PID:START"). */
void rollout_owner_self(char *buf, size_t len);
/* 1 when OWNER names a process on this machine that no longer exists. */
int rollout_owner_gone(const char *owner);

#endif
