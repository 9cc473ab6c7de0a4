/*
 * common/testhook: the test build's points (unit tests link the test-build
 * object): handler calls, scoped names per thread, the environment's crash.
 * That shipped binaries carry none of it is checked on the packaged binaries
 * (tests/e2e/test_packaging.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/testhook.h"

static char seen[8][160];
static int n_seen;

static void
record(const char *point)
{
	if (n_seen < 8) {
		snprintf(seen[n_seen], sizeof(seen[n_seen]), "%s", point);
	}
	n_seen++;
}

static int
setup(void **state)
{
	(void)state;
	n_seen = 0;
	testhook_set(record);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	testhook_scope_leave();
	testhook_set(NULL);
	return 0;
}

static void
test_enabled_in_test_builds(void **state)
{
	(void)state;
	assert_int_equal(testhook_enabled(), 1);
}

/* TANDEM_TEST_NOW moves the wall clock of testhook_now(); read once per process. */
static void
test_now_follows_the_environment(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("TANDEM_TEST_NOW", "2026-12-07T01:30:00Z", 1);
		time_t t = testhook_now();
		/* Advances with real time, starting where the variable says. */
		_exit(t >= 1796607000 && t < 1796607000 + 60 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("TANDEM_TEST_NOW", "1796607000", 1);
		_exit(testhook_now() - 1796607000 < 60 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Malformed: the real clock. */
		setenv("TANDEM_TEST_NOW", "yesterday", 1);
		time_t d = testhook_now() - time(NULL);
		_exit(d >= -1 && d <= 1 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
test_handler_gets_each_point(void **state)
{
	(void)state;
	testhook_point("update.journal_staging");
	testhook_point("update.exchanged");
	assert_int_equal(n_seen, 2);
	assert_string_equal(seen[0], "update.journal_staging");
	assert_string_equal(seen[1], "update.exchanged");
}

static void
test_scope_prefixes_names(void **state)
{
	(void)state;
	testhook_scope_enter("self");
	testhook_point("update.exchanged");
	testhook_scope_leave();
	testhook_point("update.exchanged");
	assert_int_equal(n_seen, 2);
	assert_string_equal(seen[0], "self.update.exchanged");
	assert_string_equal(seen[1], "update.exchanged");
}

static void *
reach_point(void *arg)
{
	(void)arg;
	testhook_point("other.thread");
	return NULL;
}

/* A scope belongs to the thread that entered it. */
static void
test_scope_is_per_thread(void **state)
{
	pthread_t t;

	(void)state;
	testhook_scope_enter("self");
	assert_int_equal(pthread_create(&t, NULL, reach_point, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	testhook_scope_leave();
	assert_int_equal(n_seen, 1);
	assert_string_equal(seen[0], "other.thread");
}

/* A scoped name that does not fit is never passed on cut short. */
static void
test_overlong_name_is_not_passed_on(void **state)
{
	char lng[200];

	(void)state;
	memset(lng, 'x', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	testhook_scope_enter("self");
	testhook_point(lng);
	testhook_scope_leave();
	assert_int_equal(n_seen, 0);
}

/* Fork, set the environment, reach POINT; the child's exit status. */
static int
child_status(const char *crash_at, const char *point)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		testhook_set(NULL);
		if (crash_at != NULL) {
			setenv("TANDEM_TEST_CRASH_AT", crash_at, 1);
		}
		testhook_scope_enter("self");
		testhook_point(point);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_environment_names_the_crash(void **state)
{
	(void)state;
	assert_int_equal(child_status("self.update.exchanged", "update.exchanged"),
	    TESTHOOK_CRASH_STATUS);
	/* Only the named point, with its full (scoped) name. */
	assert_int_equal(child_status("update.exchanged", "update.exchanged"), 0);
	assert_int_equal(child_status("self.update", "update.exchanged"), 0);
	assert_int_equal(child_status(NULL, "update.exchanged"), 0);
	assert_int_equal(child_status("", "update.exchanged"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enabled_in_test_builds),
		cmocka_unit_test(test_now_follows_the_environment),
		cmocka_unit_test_setup_teardown(test_handler_gets_each_point, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_prefixes_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scope_is_per_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlong_name_is_not_passed_on, setup,
		    teardown),
		cmocka_unit_test(test_environment_names_the_crash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
