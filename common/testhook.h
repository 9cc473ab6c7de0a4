/*
 * testhook — named points where a test build can stop a program as kill -9
 * would, to prove that a restart finishes or undoes what was under way.
 *
 * Code calls testhook_point("update.journal_staging") right after each
 * durable step of a transaction. What that does depends on how
 * common/testhook.c was compiled, nothing else:
 *
 *   - test builds (-DTANDEM_TEST_HOOKS: build/, build-asan/, build-tsan/ and
 *     `make release RELEASE_TEST_HOOKS=1`): the point calls the handler a
 *     unit test installed with testhook_set(), or else _exit()s with
 *     TESTHOOK_CRASH_STATUS when the environment variable
 *     TANDEM_TEST_CRASH_AT names it (logged as "test hook: crashing at P");
 *   - the binaries `make install`, `make deb` and `make release` ship: every
 *     function here is empty, and neither the variable's name nor the
 *     crash path is in the binary (tests/e2e/test_packaging.py checks).
 *
 * Callers never test for TANDEM_TEST_HOOKS themselves: one call, one object
 * file that differs between the two kinds of build (the Makefile links the
 * right one).
 *
 * testhook_scope_enter("self") / testhook_scope_leave(): points the calling
 * thread reaches in between are named "self.<point>", so a shared step (the
 * store's "update.exchanged") can be aimed at in one context only
 * ("self.update.exchanged"). Scopes do not nest; each thread has its own.
 */
#ifndef TANDEM_TESTHOOK_H
#define TANDEM_TESTHOOK_H

#include <time.h>

/* Exit status of a crash at a test point (the e2e sweeps expect it). */
#define TESTHOOK_CRASH_STATUS 86

typedef void (*testhook_fn)(const char *point);

/* Reach the named point (see above). POINT is a short dotted name. */
void testhook_point(const char *point);

/*
 * Unit tests: call FN with each point's full name instead of looking at the
 * environment; NULL restores the default. Set it before any thread starts.
 */
void testhook_set(testhook_fn fn);

/* Name this thread's points "PREFIX.<point>" until testhook_scope_leave(). */
void testhook_scope_enter(const char *prefix);
void testhook_scope_leave(void);

/* 1 when this program was linked with the test-build testhook object. */
int testhook_enabled(void);

/*
 * The wall clock for decisions that depend on the date (a rollout's
 * maintenance window): time(NULL) in shipped binaries. In test builds,
 * TANDEM_TEST_NOW (seconds since the epoch, or "YYYY-MM-DDTHH:MM:SSZ")
 * sets the clock's start on the first call; it then advances with real
 * time, so deadlines and leases keep working. A malformed value is logged
 * and ignored.
 */
time_t testhook_now(void);

/*
 * 1 when the updater is to behave as one from before feature NAME (a
 * /health "features" word): in test builds when TANDEM_TEST_WITHOUT names
 * it (words separated by commas), so the e2e tests can play an older
 * updater; always 0 in shipped binaries.
 */
int testhook_without(const char *name);

#endif
