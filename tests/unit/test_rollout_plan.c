/*
 * Unit tests of master/rollout_plan (amounts, durations, waves, order,
 * threshold, windows, the spec's JSON) and master/selector.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "master/rollout_plan.h"
#include "master/selector.h"

static void
test_amounts(void **state)
{
	struct rollout_amount a;
	struct err e = ERR_INIT;
	char buf[32];

	(void)state;
	assert_int_equal(rollout_amount_parse("5", 1000, &a, &e), 0);
	assert_int_equal(a.percent, 0);
	assert_int_equal(a.value, 5);
	assert_int_equal(rollout_amount_of(&a, 3), 3); /* capped at the total */
	assert_int_equal(rollout_amount_parse("10%", 1000, &a, &e), 0);
	assert_int_equal(a.percent, 1);
	/* Rounded up: 10 % of 11 is 2 hosts, 5 % of 11 is 1 (never 0). */
	assert_int_equal(rollout_amount_of(&a, 11), 2);
	assert_int_equal(rollout_amount_parse("5%", 1000, &a, &e), 0);
	assert_int_equal(rollout_amount_of(&a, 11), 1);
	assert_int_equal(rollout_amount_of(&a, 0), 0);
	rollout_amount_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "5%");
	assert_int_equal(rollout_amount_parse("0%", 1000, &a, &e), 0);
	assert_int_equal(rollout_amount_of(&a, 11), 0);

	const char *bad[] = { "", "%", "101%", "-1", "+3", "1.5", "3x", "10%%", " 3", "1001",
		"99999999999999999999999999999" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_clear(&e);
		assert_int_equal(rollout_amount_parse(bad[i], 1000, &a, &e), -1);
		assert_int_equal(e.kind, ERR_USAGE);
	}
	assert_int_equal(rollout_amount_parse(NULL, 10, &a, &e), -1);
}

static void
test_durations(void **state)
{
	int64_t ms;
	struct err e = ERR_INIT;
	char buf[32];

	(void)state;
	assert_int_equal(rollout_duration_parse("5s", &ms, &e), 0);
	assert_int_equal(ms, 5000);
	assert_int_equal(rollout_duration_parse("300ms", &ms, &e), 0);
	assert_int_equal(ms, 300);
	assert_int_equal(rollout_duration_parse("1h30m", &ms, &e), 0);
	assert_int_equal(ms, 5400000);
	assert_int_equal(rollout_duration_parse("2d", &ms, &e), 0);
	assert_int_equal(ms, 2 * 86400000LL);
	assert_int_equal(rollout_duration_parse("1m1ms", &ms, &e), 0);
	assert_int_equal(ms, 60001);
	rollout_duration_format(5400000, buf, sizeof(buf));
	assert_string_equal(buf, "1h30m");
	rollout_duration_format(60001, buf, sizeof(buf));
	assert_string_equal(buf, "1m1ms");
	rollout_duration_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "0s");

	const char *bad[] = { "", "5", "s", "5x", "5 s", "-5s", "31d", "1000000000000000s", "5sm",
		"m5" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_clear(&e);
		assert_int_equal(rollout_duration_parse(bad[i], &ms, &e), -1);
		assert_int_equal(e.kind, ERR_USAGE);
	}
}

/* The waves of N hosts as "a,b,c" (cumulative ends). */
static void
waves_of(const struct rollout_spec *s, size_t n, char *buf, size_t len)
{
	size_t ends[ROLLOUT_MAX_PLAN_WAVES], k = rollout_plan_waves(s, n, ends), off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < k; i++) {
		off += (size_t)snprintf(buf + off, len - off, "%s%zu", i ? "," : "", ends[i]);
	}
}

static void
test_waves(void **state)
{
	struct rollout_spec s;
	struct err e = ERR_INIT;
	char buf[256];

	(void)state;
	rollout_spec_defaults(&s);
	/* The defaults agree with ROLLOUT_DEFAULT_WAVES. */
	{
		struct rollout_spec p;
		rollout_spec_defaults(&p);
		assert_int_equal(rollout_waves_parse(ROLLOUT_DEFAULT_WAVES, &p, &e), 0);
		assert_memory_equal(p.waves, s.waves, sizeof(s.waves));
		assert_int_equal(p.n_waves, s.n_waves);
	}
	/* Canary 1, then 10 % (adds nothing for 10 hosts: dropped), 50 %, 100 %. */
	waves_of(&s, 10, buf, sizeof(buf));
	assert_string_equal(buf, "1,5,10");
	waves_of(&s, 1, buf, sizeof(buf));
	assert_string_equal(buf, "1");
	waves_of(&s, 3, buf, sizeof(buf));
	assert_string_equal(buf, "1,2,3");
	waves_of(&s, 0, buf, sizeof(buf));
	assert_string_equal(buf, "");
	waves_of(&s, 1000, buf, sizeof(buf));
	assert_string_equal(buf, "1,100,500,1000");

	/* The spec's proving case: 1, 30 %, 100 % with no canary of its own. */
	assert_int_equal(rollout_amount_parse("0", 10, &s.canary, &e), 0);
	assert_int_equal(rollout_waves_parse("1,30%,100%", &s, &e), 0);
	waves_of(&s, 10, buf, sizeof(buf));
	assert_string_equal(buf, "1,3,10");
	/* A list that stops short gets a final wave with the rest. */
	assert_int_equal(rollout_waves_parse("2,50%", &s, &e), 0);
	waves_of(&s, 10, buf, sizeof(buf));
	assert_string_equal(buf, "2,5,10");
	/* Canary 0 and 0 %: the first real wave is the first one. */
	assert_int_equal(rollout_waves_parse("0%,100%", &s, &e), 0);
	waves_of(&s, 4, buf, sizeof(buf));
	assert_string_equal(buf, "4");
	/* Wave size: equal steps after the canary. */
	rollout_spec_defaults(&s);
	s.have_wave_size = 1;
	assert_int_equal(rollout_amount_parse("3", 1000, &s.wave_size, &e), 0);
	waves_of(&s, 10, buf, sizeof(buf));
	assert_string_equal(buf, "1,4,7,10");
	assert_int_equal(rollout_amount_parse("25%", 1000, &s.wave_size, &e), 0);
	waves_of(&s, 10, buf, sizeof(buf));
	assert_string_equal(buf, "1,4,7,10");
	/* Many hosts, tiny steps: never more waves than the plan can hold. */
	assert_int_equal(rollout_amount_parse("1", 1000, &s.wave_size, &e), 0);
	{
		size_t ends[ROLLOUT_MAX_PLAN_WAVES];
		size_t k = rollout_plan_waves(&s, 10000, ends);
		assert_true(k <= ROLLOUT_MAX_PLAN_WAVES);
		assert_int_equal(ends[k - 1], 10000);
		for (size_t i = 1; i < k; i++) {
			assert_true(ends[i] > ends[i - 1]);
		}
	}
	/* Bad lists. */
	const char *bad[] = { "", ",", "10%,", ",10%", "0", "abc", "10%,,50%",
		"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_clear(&e);
		assert_int_equal(rollout_waves_parse(bad[i], &s, &e), -1);
	}
}

static void
test_order_key(void **state)
{
	char a[65], b[65], c[65];

	(void)state;
	rollout_order_key("00112233445566ff", "web1", a);
	rollout_order_key("00112233445566ff", "web1", b);
	rollout_order_key("00112233445566fe", "web1", c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), 64);
}

static void
test_threshold(void **state)
{
	struct rollout_spec s;
	struct err e = ERR_INIT;
	char why[256];

	(void)state;
	rollout_spec_defaults(&s);
	/* Defaults: the first failure halts. */
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 3, 0, 0, why, sizeof(why)), 0);
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 3, 1, 0, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "1 failure"));
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 1, 1, 1, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "canary"));
	/* 20 % with a sample of 5. */
	assert_int_equal(rollout_amount_parse("20%", 0, &s.max_failures, &e), 0);
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 4, 2, 0, why, sizeof(why)), 0);
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 5, 1, 0, why, sizeof(why)), 0);
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 5, 2, 0, why, sizeof(why)), 1);
	assert_non_null(strstr(why, "2 of 5"));
	/* A rollout smaller than the sample: the percentage applies to all of it. */
	assert_int_equal(rollout_threshold_exceeded(&s, 3, 3, 1, 0, why, sizeof(why)), 1);
	/* The canary tolerates nothing, whatever the percentage. */
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 1, 1, 1, why, sizeof(why)), 1);
	/* 100 % never halts. */
	assert_int_equal(rollout_amount_parse("100%", 0, &s.max_failures, &e), 0);
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 10, 10, 0, why, sizeof(why)), 0);
	/* An absolute count. */
	assert_int_equal(rollout_amount_parse("2", 1000, &s.max_failures, &e), 0);
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 9, 2, 0, why, sizeof(why)), 0);
	assert_int_equal(rollout_threshold_exceeded(&s, 10, 9, 3, 0, why, sizeof(why)), 1);
}

/* 2026-12-07 is a Monday. */
#define MON_0000_UTC ((time_t)1796601600)

static void
test_windows(void **state)
{
	struct rollout_window w;
	struct err e = ERR_INIT;
	time_t next;

	(void)state;
	assert_int_equal(rollout_window_parse("Mon-Fri 01:00-04:00 UTC", &w, &e), 0);
	assert_int_equal(w.days, 0x3eu);
	/* Half-open: 01:00 is inside, 04:00 is not. */
	assert_int_equal(rollout_window_at(&w, MON_0000_UTC + 3600, &next), 1);
	assert_int_equal(next, MON_0000_UTC + 4 * 3600);
	assert_int_equal(rollout_window_at(&w, MON_0000_UTC + 4 * 3600 - 1, NULL), 1);
	assert_int_equal(rollout_window_at(&w, MON_0000_UTC + 4 * 3600, &next), 0);
	assert_int_equal(next, MON_0000_UTC + 86400 + 3600);
	assert_int_equal(rollout_window_at(&w, MON_0000_UTC + 3599, &next), 0);
	assert_int_equal(next, MON_0000_UTC + 3600);
	/* Saturday 02:00: outside, next is Monday 01:00. */
	assert_int_equal(rollout_window_at(&w, MON_0000_UTC + 5 * 86400 + 7200, &next), 0);
	assert_int_equal(next, MON_0000_UTC + 7 * 86400 + 3600);

	/* Crossing midnight, the day names the start: Fri 22:00 - Sat 02:00. */
	assert_int_equal(rollout_window_parse("Fri 22:00-02:00 UTC", &w, &e), 0);
	assert_int_equal(rollout_window_at(&w, MON_0000_UTC + 5 * 86400 + 3600, &next), 1);
	assert_int_equal(next, MON_0000_UTC + 5 * 86400 + 7200);
	assert_int_equal(rollout_window_at(&w, MON_0000_UTC + 3600, NULL), 0);

	/* A fixed offset: 01:00-04:00 at +02:00 is 23:00-02:00 UTC. */
	assert_int_equal(rollout_window_parse("01:00-04:00 +02:00", &w, &e), 0);
	assert_int_equal(rollout_window_at(&w, MON_0000_UTC - 3600, NULL), 1);
	assert_int_equal(rollout_window_at(&w, MON_0000_UTC + 2 * 3600, NULL), 0);
	assert_int_equal(rollout_window_parse("01:00-04:00 UTC-05:30", &w, &e), 0);
	assert_int_equal(w.offset_min, -330);

	/* A named zone (Debian ships tzdata with libc): Berlin is UTC+1 in December. */
	if (rollout_window_parse("01:00-04:00 Europe/Berlin", &w, &e) == 0) {
		assert_int_equal(w.named_zone, 1);
		assert_int_equal(rollout_window_at(&w, MON_0000_UTC, NULL), 1);
		assert_int_equal(rollout_window_at(&w, MON_0000_UTC + 3 * 3600, NULL), 0);
	}

	const char *bad[] = { "", "01:00-04:00", "01:00-04:00 ", "Mon-Fri 01:00-04:00",
		"Mon-Fry 01:00-04:00 UTC", "1:00-4:00 UTC", "01:00-01:00 UTC", "25:00-04:00 UTC",
		"01:60-04:00 UTC", "01:00-04:00 +15:00", "01:00-04:00 ../etc/passwd",
		"01:00-04:00 Nowhere/Atlantis", "Mon, 01:00-04:00 UTC", "01:00-04:00 UTC extra",
		"Mon-Fri  01:00-04:00 UTC",
		/* Files of the zone directory that are not zones (glibc would read them as UTC). */
		"01:00-04:00 leapseconds", "01:00-04:00 Etc" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_clear(&e);
		assert_int_equal(rollout_window_parse(bad[i], &w, &e), -1);
		assert_int_equal(e.kind, ERR_USAGE);
	}
}

static void
test_spec_json(void **state)
{
	struct rollout_spec s, r;
	struct err e = ERR_INIT;
	char *text, *again;

	(void)state;
	rollout_spec_defaults(&s);
	snprintf(s.name, sizeof(s.name), "nightly \"rollout\"");
	s.soak_ms = 5000;
	assert_int_equal(rollout_amount_parse("20%", 0, &s.max_failures, &e), 0);
	s.on_halt = ROLLOUT_HALT_REVERT;
	snprintf(s.gate_cmd, sizeof(s.gate_cmd), "test -e /tmp/ok");
	s.have_window = 1;
	snprintf(s.window_text, sizeof(s.window_text), "Mon-Fri 01:00-04:00 UTC");
	assert_int_equal(rollout_window_parse(s.window_text, &s.window, &e), 0);
	s.include_self = 1;
	s.deadline_at = 1796601600;
	text = rollout_spec_to_json(&s);
	assert_non_null(text);
	assert_int_equal(rollout_spec_from_json(text, strlen(text), &r, &e), 0);
	again = rollout_spec_to_json(&r);
	assert_non_null(again);
	assert_string_equal(text, again);
	assert_int_equal(r.soak_ms, 5000);
	assert_int_equal(r.on_halt, ROLLOUT_HALT_REVERT);
	assert_int_equal(r.window.days, 0x3eu);
	free(again);
	free(text);

	/* Wave size instead of waves. */
	s.have_wave_size = 1;
	s.wave_size.value = 3;
	s.have_window = 0;
	text = rollout_spec_to_json(&s);
	assert_non_null(text);
	assert_int_equal(rollout_spec_from_json(text, strlen(text), &r, &e), 0);
	assert_int_equal(r.have_wave_size, 1);
	assert_int_equal(r.have_window, 0);
	free(text);

	const char *bad[] = { "", "{}", "[]", "{\"name\":1}",
		"{\"name\":\"\",\"canary\":\"1\",\"waves\":[\"10%\"],\"soak\":\"0s\","
		"\"max_failures\":\"0\",\"min_sample\":5,\"on_halt\":\"explode\",\"gate_cmd\":\"\","
		"\"window\":null,\"parallel\":8,\"timeout_s\":900,\"include_self\":false,"
		"\"force\":false,\"unreachable\":\"count\",\"retries\":3,\"deadline_at\":0}",
		"{\"name\":\"\",\"canary\":\"1\",\"waves\":[\"10%\"],\"wave_size\":\"3\",\"soak\":\"0s\","
		"\"max_failures\":\"0\",\"min_sample\":5,\"on_halt\":\"pause\",\"gate_cmd\":\"\","
		"\"window\":null,\"parallel\":8,\"timeout_s\":900,\"include_self\":false,"
		"\"force\":false,\"unreachable\":\"count\",\"retries\":3,\"deadline_at\":0}",
		"{\"name\":\"\",\"canary\":\"1\",\"waves\":[\"10%\"],\"soak\":\"0s\","
		"\"max_failures\":\"0\",\"min_sample\":5,\"on_halt\":\"pause\",\"gate_cmd\":\"\","
		"\"window\":null,\"parallel\":8,\"timeout_s\":900,\"include_self\":false,"
		"\"force\":false,\"unreachable\":\"count\",\"retries\":3,\"deadline_at\":0,\"x\":1}" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_clear(&e);
		assert_int_equal(rollout_spec_from_json(bad[i], strlen(bad[i]), &r, &e), -1);
	}
}

static void
test_random_id(void **state)
{
	char a[ROLLOUT_ID_LEN + 1], b[ROLLOUT_ID_LEN + 1], rq[ROLLOUT_REQUEST_ID_LEN + 1];
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(rollout_random_id(a, ROLLOUT_ID_LEN, &e), 0);
	assert_int_equal(rollout_random_id(b, ROLLOUT_ID_LEN, &e), 0);
	assert_int_equal(strlen(a), ROLLOUT_ID_LEN);
	assert_true(is_hex_len(a, ROLLOUT_ID_LEN));
	assert_string_not_equal(a, b);
	assert_int_equal(rollout_random_id(rq, ROLLOUT_REQUEST_ID_LEN, &e), 0);
	assert_int_equal(strlen(rq), ROLLOUT_REQUEST_ID_LEN);
}

static void
test_selector(void **state)
{
	struct selector s;
	struct selector_label lab[2] = { { "env", "prod" }, { "role", "web" } };
	struct selector_label l;
	struct err e = ERR_INIT;
	int rm;

	(void)state;
	assert_int_equal(selector_parse("all", &s, &e), 0);
	assert_int_equal(s.kind, SELECTOR_ALL);
	assert_true(selector_match(&s, "x", NULL, 0));
	assert_int_equal(selector_parse("web1,Web2", &s, &e), 0);
	assert_int_equal(s.kind, SELECTOR_NAMES);
	assert_true(selector_match(&s, "WEB2", NULL, 0));
	assert_false(selector_match(&s, "web3", NULL, 0));
	assert_int_equal(selector_parse("env=prod,role!=db", &s, &e), 0);
	assert_int_equal(s.kind, SELECTOR_LABELS);
	assert_true(selector_match(&s, "a", lab, 2));
	assert_false(selector_match(&s, "a", lab, 1) && 0);
	assert_true(selector_match(&s, "a", lab, 1)); /* no role: role!=db holds */
	assert_false(selector_match(&s, "a", NULL, 0));
	assert_int_equal(selector_parse("role!=web", &s, &e), 0);
	assert_false(selector_match(&s, "a", lab, 2));
	assert_int_equal(selector_parse("env=", &s, &e), 0); /* empty value */
	assert_false(selector_match(&s, "a", lab, 2));

	const char *bad[] = { "", ",", "web1,", "web1,env=prod", "env=prod,web1", "all,web1",
		"-web", "web 1", "Env=prod", "env=pr od", "env==x", "web1,WEB1", "=x", "env=a=b" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_clear(&e);
		assert_int_equal(selector_parse(bad[i], &s, &e), -1);
		assert_int_equal(e.kind, ERR_USAGE);
	}

	assert_int_equal(selector_label_parse("env=prod", &l, &rm, &e), 0);
	assert_int_equal(rm, 0);
	assert_string_equal(l.value, "prod");
	assert_int_equal(selector_label_parse("env-", &l, &rm, &e), 0);
	assert_int_equal(rm, 1);
	assert_string_equal(l.key, "env");
	assert_int_equal(selector_label_parse("env!=prod", &l, &rm, &e), -1);
	assert_int_equal(selector_label_parse("env", &l, &rm, &e), -1);
	assert_int_equal(selector_label_parse("-", &l, &rm, &e), -1);
	assert_int_equal(selector_label_parse("", &l, &rm, &e), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_amounts),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_waves),
		cmocka_unit_test(test_order_key),
		cmocka_unit_test(test_threshold),
		cmocka_unit_test(test_windows),
		cmocka_unit_test(test_spec_json),
		cmocka_unit_test(test_random_id),
		cmocka_unit_test(test_selector),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
