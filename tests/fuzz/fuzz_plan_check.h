/*
 * The plan invariant both rollout harnesses check: rollout_plan_waves() of
 * N hosts gives strictly increasing cumulative ends (never an empty wave),
 * the last one N, within ROLLOUT_MAX_PLAN_WAVES (an overrun of the array
 * is caught by a guard slot), and no wave at all only for N = 0.
 */
#ifndef TANDEM_FUZZ_PLAN_CHECK_H
#define TANDEM_FUZZ_PLAN_CHECK_H

#include "master/rollout_plan.h"

static void
fuzz_check_plan(const struct rollout_spec *s, size_t n)
{
	size_t ends[ROLLOUT_MAX_PLAN_WAVES + 1];
	size_t k, prev = 0;

	ends[ROLLOUT_MAX_PLAN_WAVES] = (size_t)-1;
	k = rollout_plan_waves(s, n, ends);
	if (ends[ROLLOUT_MAX_PLAN_WAVES] != (size_t)-1 || k > ROLLOUT_MAX_PLAN_WAVES ||
	    (n == 0) != (k == 0)) {
		__builtin_trap();
	}
	for (size_t i = 0; i < k; i++) {
		if (ends[i] <= prev || ends[i] > n) {
			__builtin_trap();
		}
		prev = ends[i];
	}
	if (k > 0 && prev != n) {
		__builtin_trap();
	}
}

#endif
