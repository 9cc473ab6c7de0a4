/*
 * Unit tests for updater/masterpins on a real state directory: the
 * configured pins as the floor, add and confirm (idempotent, the set in
 * force after each, what the state file holds), a restart reading the
 * state back, a corrupt or oversized state file ignored in favour of the
 * floor, no pins configured (any master, nothing written), the bound on
 * added pins, and the request body's parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/testhook.h"
#include "updater/masterpins.h"
#include "tests/unit/tmpdir.h"

#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FP_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static const char *g_dir;
static char g_fp_a[] = FP_A; /* config pins are char * (updater_config) */
static char g_nothex[] = "nothex";
static int g_written;

static void
count_points(const char *point)
{
	if (strcmp(point, "pins.written") == 0) {
		g_written++;
	}
}

static int
setup(void **state)
{
	(void)state;
	log_init("test_masterpins", LOG_LVL_ERROR);
	g_dir = tmpdir_make("masterpins");
	assert_non_null(g_dir);
	testhook_set(count_points);
	g_written = 0;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	testhook_set(NULL);
	assert_int_equal(tmpdir_remove(), 0);
	return 0;
}

/* The pins in force as one comma-separated string. */
static void
in_force(const struct masterpins *mp, char *out, size_t len)
{
	cJSON *arr = cJSON_CreateArray();
	const cJSON *it;

	out[0] = '\0';
	assert_int_equal(masterpins_json(mp, arr), 0);
	cJSON_ArrayForEach(it, arr)
	{
		size_t n = strlen(out);
		snprintf(out + n, len - n, "%s%.1s", n > 0 ? "," : "", it->valuestring);
	}
	cJSON_Delete(arr);
}

static void
test_rollover_from_the_floor(void **state)
{
	char *cfg[] = { g_fp_a, NULL };
	struct masterpins mp, back;
	struct err e = ERR_INIT;
	char s[64], path[PATH_MAX];
	struct stat st;

	(void)state;
	assert_int_equal(masterpins_load(&mp, cfg, g_dir, &e), 0);
	assert_true(masterpins_pinned(&mp));
	assert_true(masterpins_allowed(&mp, FP_A));
	assert_true(masterpins_allowed(&mp, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	assert_false(masterpins_allowed(&mp, FP_B));
	assert_false(masterpins_allowed(&mp, NULL));
	assert_false(masterpins_allowed(&mp, "aa"));

	/* add: both; twice: one write. */
	assert_int_equal(masterpins_add(&mp, FP_B, &e), 0);
	assert_int_equal(masterpins_add(&mp, FP_B, &e), 0);
	assert_int_equal(g_written, 1);
	in_force(&mp, s, sizeof(s));
	assert_string_equal(s, "a,b");
	snprintf(path, sizeof(path), "%s/%s", g_dir, MASTERPINS_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	/* A restart reads the same set back. */
	assert_int_equal(masterpins_load(&back, cfg, g_dir, &e), 0);
	in_force(&back, s, sizeof(s));
	assert_string_equal(s, "a,b");

	/* confirm: the new one only; the configured pin is retired, not removed. */
	assert_int_equal(masterpins_confirm(&mp, FP_B, &e), 0);
	assert_false(masterpins_allowed(&mp, FP_A));
	assert_true(masterpins_allowed(&mp, FP_B));
	assert_int_equal(masterpins_confirm(&mp, FP_B, &e), 0);
	assert_int_equal(g_written, 2);
	assert_int_equal(masterpins_load(&back, cfg, g_dir, &e), 0);
	in_force(&back, s, sizeof(s));
	assert_string_equal(s, "b");

	/* A pin not in force cannot be confirmed. */
	assert_int_equal(masterpins_confirm(&mp, FP_C, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);

	/* The next rollover: C beside B, then C alone. */
	assert_int_equal(masterpins_add(&mp, FP_C, &e), 0);
	in_force(&mp, s, sizeof(s));
	assert_string_equal(s, "b,c");
	assert_int_equal(masterpins_confirm(&mp, FP_C, &e), 0);
	in_force(&mp, s, sizeof(s));
	assert_string_equal(s, "c");

	/* Back to the configured pin: un-retired. */
	assert_int_equal(masterpins_add(&mp, FP_A, &e), 0);
	in_force(&mp, s, sizeof(s));
	assert_string_equal(s, "a,c");
	assert_int_equal(masterpins_confirm(&mp, FP_A, &e), 0);
	in_force(&mp, s, sizeof(s));
	assert_string_equal(s, "a");
}

static void
test_bad_state_keeps_the_floor(void **state)
{
	char *cfg[] = { g_fp_a, NULL };
	static const char *const bad[] = {
		"{garbage", "[]", "{\"added\":[\"xyz\"]}", "{\"added\":\"" FP_B "\"}",
		"{\"added\":[],\"other\":1}", "{\"retired\":[7]}",
	};
	struct masterpins mp;
	struct err e = ERR_INIT;
	char path[PATH_MAX], s[64], big[MASTERPINS_MAX_BYTES + 64];

	(void)state;
	snprintf(path, sizeof(path), "%s/%s", g_dir, MASTERPINS_FILE);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(fs_write_atomic(path, bad[i], strlen(bad[i]), 0644), 0);
		err_clear(&e);
		assert_int_equal(masterpins_load(&mp, cfg, g_dir, &e), 1);
		assert_true(err_failed(&e));
		in_force(&mp, s, sizeof(s));
		assert_string_equal(s, "a");
	}
	memset(big, ' ', sizeof(big));
	assert_int_equal(fs_write_atomic(path, big, sizeof(big), 0644), 0);
	assert_int_equal(masterpins_load(&mp, cfg, g_dir, &e), 1);
	/* Eight added pins at most. */
	for (int i = 0; i < MASTERPINS_MAX; i++) {
		char fp[TLS_FP_HEX_LEN + 1];
		snprintf(fp, sizeof(fp), "%064x", i + 1);
		assert_int_equal(masterpins_add(&mp, fp, &e), 0);
	}
	assert_int_equal(masterpins_add(&mp, FP_B, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_false(masterpins_allowed(&mp, FP_B));
}

static void
test_unpinned_and_bad_config(void **state)
{
	char *bad[] = { g_nothex, NULL };
	char path[PATH_MAX];
	struct masterpins mp;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(masterpins_load(&mp, NULL, g_dir, &e), 0);
	assert_false(masterpins_pinned(&mp));
	assert_true(masterpins_allowed(&mp, FP_C));
	assert_int_equal(masterpins_add(&mp, FP_B, &e), 0);
	assert_int_equal(masterpins_confirm(&mp, FP_B, &e), 0);
	assert_int_equal(g_written, 0);
	snprintf(path, sizeof(path), "%s/%s", g_dir, MASTERPINS_FILE);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(masterpins_load(&mp, bad, g_dir, &e), -1);
	assert_int_equal(e.kind, ERR_CONFIG);
}

static void
test_request_parse(void **state)
{
	static const char *const bad[] = {
		"", "{}", "[]", "nope", "{\"add\":\"xyz\"}", "{\"add\":7}",
		"{\"add\":\"" FP_A "\",\"confirm\":\"" FP_B "\"}", "{\"add\":\"" FP_A "\",\"x\":1}",
		"{\"confirm\":\"" FP_A "0\"}", "{\"add\":\"\"}",
	};
	enum masterpins_op op;
	char fp[TLS_FP_HEX_LEN + 1];
	struct err e = ERR_INIT;
	const char *add = "{\"add\":\"" FP_A "\"}";
	const char *confirm =
	    "{\"confirm\":\"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\"}";

	(void)state;
	assert_int_equal(masterpins_request_parse(add, strlen(add), &op, fp, &e), 0);
	assert_int_equal(op, MASTERPINS_ADD);
	assert_string_equal(fp, FP_A);
	assert_int_equal(masterpins_request_parse(confirm, strlen(confirm), &op, fp, &e), 0);
	assert_int_equal(op, MASTERPINS_CONFIRM);
	assert_string_equal(fp, FP_B);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		assert_int_equal(masterpins_request_parse(bad[i], strlen(bad[i]), &op, fp, &e), -1);
		assert_int_equal(e.kind, ERR_BAD_REQUEST);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rollover_from_the_floor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_state_keeps_the_floor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unpinned_and_bad_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_parse, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
