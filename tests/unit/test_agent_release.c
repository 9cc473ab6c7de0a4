/* Unit tests of agent/release: finding RELEASE_DIR and reading release.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/release.h"
#include "common/fs.h"
#include "common/log.h"

static char g_dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/test_agent_release.XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	assert_int_equal(fs_rmtree(g_dir), 0);
	return 0;
}

static void
write_record(const char *text)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/release.json", g_dir);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0644), 0);
}

static void
test_dir_of(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(release_dir_of("/opt/t/releases/active/bin/tandem-agent", out,
			     sizeof(out)), 0);
	assert_string_equal(out, "/opt/t/releases/active");
	assert_int_equal(release_dir_of("/r/bin/a", out, sizeof(out)), 0);
	assert_string_equal(out, "/r");
	/* The release directory would be "/" or there are too few levels. */
	assert_int_equal(release_dir_of("/bin/a", out, sizeof(out)), -1);
	assert_int_equal(release_dir_of("/a", out, sizeof(out)), -1);
	assert_int_equal(release_dir_of("bin/a", out, sizeof(out)), -1);
	assert_int_equal(release_dir_of(NULL, out, sizeof(out)), -1);
	/* Too small an output buffer. */
	assert_int_equal(release_dir_of("/abcdef/bin/a", out, 7), -1);
	assert_int_equal(release_dir_of("/abcdef/bin/a", out, 8), 0);
	assert_string_equal(out, "/abcdef");
}

static void
test_self_dir(void **state)
{
	char dir[PATH_MAX];
	char exe[PATH_MAX];
	char want[PATH_MAX];
	ssize_t n;

	(void)state;
	assert_int_equal(release_self_dir(dir, sizeof(dir)), 0);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	/* BUILD/tests/test_agent_release -> BUILD */
	assert_int_equal(release_dir_of(exe, want, sizeof(want)), 0);
	assert_string_equal(dir, want);
	assert_int_equal(release_self_dir(dir, 2), -1);
}

static void
test_read_good(void **state)
{
	struct release_info ri;
	char why[256] = "";

	(void)state;
	write_record("{\"sha\":\"v1.2 label\",\"sha256\":\"ABCDEF0123456789abcdef0123456789"
		     "abcdef0123456789abcdef0123456789\",\"version\":\"1.2\",\"installed_at\":"
		     "\"2026-01-01T00:00:00Z\",\"extra\":{\"a\":[1,2]}}");
	assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), 0);
	assert_true(ri.has_sha && ri.has_sha256);
	assert_string_equal(ri.sha, "v1.2 label");
	assert_string_equal(ri.sha256,
	    "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
}

static void
test_read_missing(void **state)
{
	struct release_info ri;
	char why[256] = "";

	(void)state;
	assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), 1);
	assert_false(ri.has_sha || ri.has_sha256);
	assert_int_equal(release_read("/nonexistent/dir", &ri, why, sizeof(why)), 1);
}

static void
test_read_fields_independent(void **state)
{
	struct release_info ri;
	char why[256] = "";

	(void)state;
	/* A digest that is not 64 hex digits is absent; the label survives. */
	write_record("{\"sha\":\"x\",\"sha256\":\"abc\"}");
	assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), 0);
	assert_true(ri.has_sha);
	assert_false(ri.has_sha256);
	assert_string_equal(ri.sha256, "");
	/* Wrong types and null: absent. */
	write_record("{\"sha\":12,\"sha256\":null}");
	assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), 0);
	assert_false(ri.has_sha || ri.has_sha256);
	/* 64 characters but not hex. */
	write_record("{\"sha256\":\"zbcdef0123456789abcdef0123456789abcdef0123456789abcdef012345678"
		     "9\"}");
	assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), 0);
	assert_false(ri.has_sha256);
	/* A label longer than RELEASE_SHA_MAX - 1 is absent, not truncated. */
	char big[RELEASE_SHA_MAX + 64];
	char label[RELEASE_SHA_MAX + 1];
	memset(label, 'a', RELEASE_SHA_MAX);
	label[RELEASE_SHA_MAX] = '\0';
	snprintf(big, sizeof(big), "{\"sha\":\"%s\"}", label);
	write_record(big);
	assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), 0);
	assert_false(ri.has_sha);
	label[RELEASE_SHA_MAX - 1] = '\0';
	snprintf(big, sizeof(big), "{\"sha\":\"%s\"}", label);
	write_record(big);
	assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), 0);
	assert_true(ri.has_sha);
	assert_int_equal(strlen(ri.sha), RELEASE_SHA_MAX - 1);
}

static void
test_read_invalid(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"[\"sha\"]",
		"{\"sha\":\"a\",\"sha\":\"b\"}", /* duplicate keys */
		"{\"sha\":\"a\"} trailing",
		"null",
	};
	struct release_info ri;
	char why[256];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		write_record(bad[i]);
		why[0] = '\0';
		assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), -1);
		assert_false(ri.has_sha || ri.has_sha256);
		assert_non_null(strstr(why, "release.json"));
	}
	/* Too large. */
	size_t n = RELEASE_RECORD_MAX + 1;
	char *huge = malloc(n + 1);
	assert_non_null(huge);
	memset(huge, ' ', n);
	huge[0] = '{';
	huge[n - 1] = '}';
	huge[n] = '\0';
	write_record(huge);
	free(huge);
	assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), -1);
	/* A directory where the file should be. */
	char path[128];
	snprintf(path, sizeof(path), "%s/release.json", g_dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(fs_mkdir_p(path, 0700), 0);
	assert_int_equal(release_read(g_dir, &ri, why, sizeof(why)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dir_of),
		cmocka_unit_test(test_self_dir),
		cmocka_unit_test_setup_teardown(test_read_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_fields_independent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_invalid, setup, teardown),
	};

	log_init("test_agent_release", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
