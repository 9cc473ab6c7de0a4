/*
 * Fuzz the rollout spec as the registry keeps it (rollout_spec_from_json,
 * master/rollout_plan). Invariants beyond "no crash": what the parser
 * accepts respects every bound the driver relies on, is written back by
 * rollout_spec_to_json() into text that parses to the same spec (and the
 * same text), and gives plans (rollout_plan_waves) that are strictly
 * increasing, end at the number of hosts and fit the plan's array.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "master/rollout_plan.h"
#include "tests/fuzz/fuzz_plan_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
amount_eq(const struct rollout_amount *a, const struct rollout_amount *b)
{
	return a->percent == b->percent && a->value == b->value;
}

static int
amount_ok(const struct rollout_amount *a)
{
	return a->value >= 0 && (a->percent == 0 || (a->percent == 1 && a->value <= 100));
}

static int
spec_eq(const struct rollout_spec *a, const struct rollout_spec *b)
{
	if (strcmp(a->name, b->name) != 0 || !amount_eq(&a->canary, &b->canary) ||
	    a->have_wave_size != b->have_wave_size || a->soak_ms != b->soak_ms ||
	    !amount_eq(&a->max_failures, &b->max_failures) || a->min_sample != b->min_sample ||
	    a->on_halt != b->on_halt || strcmp(a->gate_cmd, b->gate_cmd) != 0 ||
	    a->have_window != b->have_window || a->parallel != b->parallel ||
	    a->timeout_s != b->timeout_s || a->include_self != b->include_self ||
	    a->force != b->force || a->unreachable_skip != b->unreachable_skip ||
	    a->retries != b->retries || a->deadline_at != b->deadline_at) {
		return 0;
	}
	if (a->have_wave_size) {
		if (!amount_eq(&a->wave_size, &b->wave_size)) {
			return 0;
		}
	} else {
		if (a->n_waves != b->n_waves) {
			return 0;
		}
		for (size_t i = 0; i < a->n_waves; i++) {
			if (!amount_eq(&a->waves[i], &b->waves[i])) {
				return 0;
			}
		}
	}
	if (a->have_window &&
	    (strcmp(a->window_text, b->window_text) != 0 ||
	    memcmp(&a->window, &b->window, sizeof(a->window)) != 0)) {
		return 0;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t sizes[] = { 0, 1, 2, 3, 7, 10, 11, 99, 100, 101, 1000, 10007 };
	static struct rollout_spec s, back;
	struct err e = ERR_INIT;
	char *text, *again;

	memset(&s, 0, sizeof(s));
	if (rollout_spec_from_json((const char *)data, size, &s, &e) != 0) {
		if (err_msg(&e)[0] == '\0') {
			__builtin_trap(); /* a refusal says why */
		}
		return 0;
	}
	if (!amount_ok(&s.canary) || !amount_ok(&s.max_failures) ||
	    (s.have_wave_size && !amount_ok(&s.wave_size)) || s.n_waves > ROLLOUT_MAX_WAVES ||
	    s.soak_ms < 0 || s.soak_ms > ROLLOUT_MAX_DURATION_MS || s.min_sample < 1 ||
	    s.parallel < 1 || s.parallel > 256 || s.timeout_s < 1 || s.retries < 1 ||
	    s.deadline_at < 0 || memchr(s.name, '\0', sizeof(s.name)) == NULL ||
	    memchr(s.gate_cmd, '\0', sizeof(s.gate_cmd)) == NULL) {
		__builtin_trap();
	}
	for (size_t i = 0; i < s.n_waves; i++) {
		if (!amount_ok(&s.waves[i])) {
			__builtin_trap();
		}
	}
	if (s.have_window &&
	    (s.window.days == 0 || s.window.days > 0x7f || s.window.start_min < 0 ||
	    s.window.start_min >= 1440 || s.window.end_min < 0 || s.window.end_min >= 1440 ||
	    s.window.start_min == s.window.end_min)) {
		__builtin_trap();
	}
	for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
		fuzz_check_plan(&s, sizes[i]);
	}
	text = rollout_spec_to_json(&s);
	if (text == NULL) {
		__builtin_trap();
	}
	memset(&back, 0, sizeof(back));
	if (rollout_spec_from_json(text, strlen(text), &back, &e) != 0 || !spec_eq(&s, &back)) {
		__builtin_trap();
	}
	again = rollout_spec_to_json(&back);
	if (again == NULL || strcmp(text, again) != 0) {
		__builtin_trap();
	}
	free(again);
	free(text);
	return 0;
}
