/*
 * broken — deliberately broken agent builds for the updater's tests.
 *
 * `make release RELEASE_KIND=KIND` compiles the agent files that include
 * this header a second time, into their own directory with
 * -DTANDEM_AGENT_BROKEN=N, and links them with the normal build's other
 * objects; the normal binary is always built with 0 (this header's default). Every kind still passes
 * `--self-test` and `-n`, so it gets past the updater's preflight and fails
 * only when probed:
 *
 *   exit-at-once   (1)  run mode exits with status 1 right after start
 *   never-ready    (2)  listens (and writes the --ready-fd line) but /health
 *                       and /readyz answer 503 forever; no sd_notify READY
 *   wrong-version  (3)  /health and /info report version "0.0.0-wrong"
 *   crash-later    (4)  serves normally, exits with status 1 after
 *                       TANDEM_CRASH_AFTER_MS milliseconds (default 3000)
 *   slow-health    (5)  not broken, slow: /health answers after
 *                       TANDEM_SLOW_MS milliseconds (default 2000); for
 *                       probe-timeout and in-flight-shutdown tests
 *   fail-marker    (6)  run mode exits with status 1 right after start when
 *                       a file named AGENT_FAIL_MARKER exists in the
 *                       directory of its --config file, and runs normally
 *                       elsewhere: a release that fails on named hosts only
 *                       (the rollout tests); a file named AGENT_FAIL_ONCE_MARKER
 *                       there is removed and the agent exits with status 1:
 *                       one transient crash (the restore-probe retry tests);
 *                       while a file named AGENT_HOLD_MARKER is there, the
 *                       agent waits (at most AGENT_HOLD_MAX_MS) before it
 *                       listens: a test can take its port meanwhile
 *   log-flood      (7)  serves normally and writes lines to stderr as fast
 *                       as it can, for ever (the updater's agent_log cap)
 */
#ifndef TANDEM_AGENT_BROKEN_H
#define TANDEM_AGENT_BROKEN_H

#define AGENT_BROKEN_NONE 0
#define AGENT_BROKEN_EXIT_AT_ONCE 1
#define AGENT_BROKEN_NEVER_READY 2
#define AGENT_BROKEN_WRONG_VERSION 3
#define AGENT_BROKEN_CRASH_LATER 4
#define AGENT_BROKEN_SLOW_HEALTH 5
#define AGENT_BROKEN_FAIL_MARKER 6
#define AGENT_BROKEN_LOG_FLOOD 7

#ifndef TANDEM_AGENT_BROKEN
#define TANDEM_AGENT_BROKEN AGENT_BROKEN_NONE
#endif

#if TANDEM_AGENT_BROKEN < AGENT_BROKEN_NONE || TANDEM_AGENT_BROKEN > AGENT_BROKEN_LOG_FLOOD
#error "TANDEM_AGENT_BROKEN must be 0..7"
#endif

#define AGENT_WRONG_VERSION "0.0.0-wrong"
#define AGENT_CRASH_AFTER_DEFAULT_MS 3000
#define AGENT_SLOW_DEFAULT_MS 2000
#define AGENT_FAIL_MARKER "fail-marker"
#define AGENT_FAIL_ONCE_MARKER "fail-once"
#define AGENT_HOLD_MARKER "hold"
#define AGENT_HOLD_MAX_MS 60000

/* Name of the compiled-in kind ("good" for the normal build). */
static inline const char *
broken_kind_name(void)
{
	switch (TANDEM_AGENT_BROKEN) {
	case AGENT_BROKEN_EXIT_AT_ONCE:
		return "exit-at-once";
	case AGENT_BROKEN_NEVER_READY:
		return "never-ready";
	case AGENT_BROKEN_WRONG_VERSION:
		return "wrong-version";
	case AGENT_BROKEN_CRASH_LATER:
		return "crash-later";
	case AGENT_BROKEN_SLOW_HEALTH:
		return "slow-health";
	case AGENT_BROKEN_FAIL_MARKER:
		return "fail-marker";
	case AGENT_BROKEN_LOG_FLOOD:
		return "log-flood";
	default:
		return "good";
	}
}

#endif
