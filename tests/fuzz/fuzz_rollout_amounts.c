/*
 * Fuzz the small rollout option parsers: amounts ("N" or "P%", --canary,
 * --max-failures, --wave-size), wave lists (--waves "10%,50%,100%") and
 * durations (--soak, "1h30m"). The first byte picks the parser, the rest is
 * the text. Invariants: a refusal says why and changes nothing; an accepted
 * amount is in range and its text reads back the same; an accepted
 * duration is within 30 days and its shortest text reads back the same; an
 * accepted wave list has 1..ROLLOUT_MAX_WAVES non-empty items and plans of
 * any size are strictly increasing, end at the host count and never empty.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "master/rollout_plan.h"
#include "tests/fuzz/fuzz_plan_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t sizes[] = { 1, 2, 3, 9, 10, 11, 100, 1000, 4097, 10000 };
	char text[256], buf[64];
	struct rollout_amount a = { 7, 7 }, b;
	struct rollout_spec spec, before;
	struct err e = ERR_INIT;
	int64_t ms = -7, ms2;

	if (size < 1 || size - 1 >= sizeof(text)) {
		return 0;
	}
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		if (rollout_amount_parse(text, 1000000, &a, &e) != 0) {
			if (err_msg(&e)[0] == '\0' || a.percent != 7 || a.value != 7) {
				__builtin_trap();
			}
			return 0;
		}
		if (a.value < 0 || (a.percent && a.value > 100) || (!a.percent && a.value > 1000000) ||
		    (a.percent != 0 && a.percent != 1)) {
			__builtin_trap();
		}
		rollout_amount_format(&a, buf, sizeof(buf));
		if (rollout_amount_parse(buf, 1000000, &b, &e) != 0 || b.percent != a.percent ||
		    b.value != a.value) {
			__builtin_trap();
		}
		for (size_t total = 0; total < 300; total += 37) {
			size_t of = rollout_amount_of(&a, total);
			if (of > total || (a.percent && a.value > 0 && total > 0 && of == 0)) {
				__builtin_trap(); /* a percentage of some hosts is at least one */
			}
		}
		break;
	case 1:
		if (rollout_duration_parse(text, &ms, &e) != 0) {
			if (err_msg(&e)[0] == '\0' || ms != -7) {
				__builtin_trap();
			}
			return 0;
		}
		if (ms < 0 || ms > ROLLOUT_MAX_DURATION_MS) {
			__builtin_trap();
		}
		rollout_duration_format(ms, buf, sizeof(buf));
		if (rollout_duration_parse(buf, &ms2, &e) != 0 || ms2 != ms) {
			__builtin_trap();
		}
		break;
	default:
		rollout_spec_defaults(&spec);
		before = spec;
		if (rollout_waves_parse(text, &spec, &e) != 0) {
			if (err_msg(&e)[0] == '\0' || memcmp(&spec, &before, sizeof(spec)) != 0) {
				__builtin_trap();
			}
			return 0;
		}
		if (spec.n_waves == 0 || spec.n_waves > ROLLOUT_MAX_WAVES || spec.have_wave_size) {
			__builtin_trap();
		}
		for (size_t i = 0; i < spec.n_waves; i++) {
			if (spec.waves[i].value < 0 || (spec.waves[i].percent && spec.waves[i].value > 100) ||
			    (!spec.waves[i].percent && spec.waves[i].value == 0)) {
				__builtin_trap();
			}
		}
		for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
			fuzz_check_plan(&spec, sizes[i]);
			spec.canary.value = 0;
			fuzz_check_plan(&spec, sizes[i]);
			spec.canary.value = 1;
		}
		break;
	}
	return 0;
}
