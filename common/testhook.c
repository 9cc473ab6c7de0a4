/*
 * testhook — see testhook.h. Compiled twice by the Makefile: with
 * -DTANDEM_TEST_HOOKS for the test builds, without for shipped binaries.
 */
#include "common/testhook.h"

#ifdef TANDEM_TEST_HOOKS

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define TESTHOOK_ENV "TANDEM_TEST_CRASH_AT"
#define TESTHOOK_NAME_MAX 128

static testhook_fn testhook_handler;
static _Thread_local const char *testhook_prefix;

/* The default: _exit() at the point the environment names, as kill -9 would. */
static void
testhook_env_crash(const char *point)
{
	const char *at = getenv(TESTHOOK_ENV);

	if (at != NULL && strcmp(at, point) == 0) {
		log_warnx("test hook: crashing at %s", point);
		_exit(TESTHOOK_CRASH_STATUS);
	}
}

void
testhook_point(const char *point)
{
	char name[TESTHOOK_NAME_MAX];
	testhook_fn fn = testhook_handler != NULL ? testhook_handler : testhook_env_crash;

	if (testhook_prefix != NULL) {
		int n = snprintf(name, sizeof(name), "%s.%s", testhook_prefix, point);

		if (n < 0 || (size_t)n >= sizeof(name)) {
			/* A name no test can aim at: a bug in the caller, say so loudly. */
			log_warnx("test hook: point name too long: %s.%s", testhook_prefix, point);
			return;
		}
		point = name;
	}
	fn(point);
}

void
testhook_set(testhook_fn fn)
{
	testhook_handler = fn;
}

void
testhook_scope_enter(const char *prefix)
{
	testhook_prefix = prefix;
}

void
testhook_scope_leave(void)
{
	testhook_prefix = NULL;
}

int
testhook_enabled(void)
{
	return 1;
}

#define TESTHOOK_NOW_ENV "TANDEM_TEST_NOW"

static pthread_once_t testhook_now_once = PTHREAD_ONCE_INIT;
static time_t testhook_now_offset;

static void
testhook_now_init(void)
{
	const char *s = getenv(TESTHOOK_NOW_ENV);
	long long v;
	time_t t;

	if (s == NULL || *s == '\0') {
		return;
	}
	if (parse_ll(s, 0, 253402300799LL, &v) == 0) {
		t = (time_t)v;
	} else if (iso8601_parse(s, &t) != 0) {
		log_warnx("test hook: %s=\"%s\" ignored (seconds since the epoch or "
		    "YYYY-MM-DDTHH:MM:SSZ)", TESTHOOK_NOW_ENV, s);
		return;
	}
	testhook_now_offset = t - time(NULL);
	log_warnx("test hook: the clock starts at %s=%s", TESTHOOK_NOW_ENV, s);
}

time_t
testhook_now(void)
{
	(void)pthread_once(&testhook_now_once, testhook_now_init);
	return time(NULL) + testhook_now_offset;
}

int
testhook_without(const char *name)
{
	const char *v = getenv("TANDEM_TEST_WITHOUT");
	size_t n = strlen(name);

	while (v != NULL && *v != '\0') {
		const char *end = strchr(v, ',');
		size_t len = end != NULL ? (size_t)(end - v) : strlen(v);

		if (len == n && strncmp(v, name, n) == 0) {
			return 1;
		}
		v = end != NULL ? end + 1 : NULL;
	}
	return 0;
}

#else /* shipped binaries: no test path at all */

void
testhook_point(const char *point)
{
	(void)point;
}

void
testhook_set(testhook_fn fn)
{
	(void)fn;
}

void
testhook_scope_enter(const char *prefix)
{
	(void)prefix;
}

void
testhook_scope_leave(void)
{
}

int
testhook_enabled(void)
{
	return 0;
}

time_t
testhook_now(void)
{
	return time(NULL);
}

int
testhook_without(const char *name)
{
	(void)name;
	return 0;
}

#endif
