/*
 * rollout_plan — the pure part of a rollout: its options (as the operator
 * writes them, and as the registry keeps them: one JSON document, one parser,
 * one writer), the host order, the waves, the failure threshold and the
 * maintenance window. No I/O but a look at a named zone's file, no clock of
 * its own (callers pass the time), so all of it is unit-tested
 * (tests/unit/test_rollout_plan.c) and fuzzed (tests/fuzz/fuzz_rollout_spec.c,
 * fuzz_rollout_window.c, fuzz_rollout_amounts.c).
 *
 * Amounts are written "N" (a number of hosts) or "P%" (a percentage of all
 * hosts of the rollout, rounded up). Durations are "300ms", "5s", "10m",
 * "2h", "1d" or sums such as "1h30m". A window is "[DAYS ]HH:MM-HH:MM ZONE",
 * e.g. "Mon-Fri 01:00-04:00 UTC", "22:00-02:00 +02:00",
 * "Sat,Sun 00:00-06:00 Europe/Berlin": half-open [start, end), an end at or
 * before the start crosses midnight (DAYS name the start's day), and the zone
 * is always explicit (UTC, a fixed offset, or a name of the system's time
 * zone database).
 */
#ifndef TANDEM_MASTER_ROLLOUT_PLAN_H
#define TANDEM_MASTER_ROLLOUT_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"

#define ROLLOUT_ID_LEN 16          /* hex digits of a rollout id */
#define ROLLOUT_REQUEST_ID_LEN 32  /* hex digits of a request id sent to an updater */
#define ROLLOUT_MAX_WAVES 32
#define ROLLOUT_NAME_MAX 127
#define ROLLOUT_GATE_CMD_MAX 1023
#define ROLLOUT_WINDOW_TEXT_MAX 127
#define ROLLOUT_MAX_DURATION_MS (30LL * 24 * 3600 * 1000)

/* Defaults: the safe ones an operator gets without options. */
#define ROLLOUT_DEFAULT_CANARY "1"
#define ROLLOUT_DEFAULT_WAVES "10%,50%,100%"
#define ROLLOUT_DEFAULT_MAX_FAILURES "0"
#define ROLLOUT_DEFAULT_MIN_SAMPLE 5
#define ROLLOUT_DEFAULT_RETRIES 3

/* A number of hosts, or a percentage of all hosts (rounded up). */
struct rollout_amount {
	int percent;     /* 1: VALUE is 0..100 percent */
	long long value; /* hosts, or percent */
};

enum rollout_on_halt {
	ROLLOUT_HALT_PAUSE = 0,  /* stop and wait for the operator */
	ROLLOUT_HALT_REVERT = 1, /* roll back every host the rollout moved */
};

struct rollout_window {
	unsigned days;      /* bit N = weekday N (0 Sunday .. 6 Saturday) of the start */
	int start_min;      /* minutes after local midnight, 0..1439 */
	int end_min;        /* same; <= start_min: the window crosses midnight */
	int named_zone;     /* 1: ZONE is a time zone database name */
	int offset_min;     /* fixed zones: minutes east of UTC */
	char zone[64];
};

struct rollout_spec {
	char name[ROLLOUT_NAME_MAX + 1];
	struct rollout_amount canary;
	size_t n_waves;                                  /* cumulative wave sizes, */
	struct rollout_amount waves[ROLLOUT_MAX_WAVES];  /* after the canary */
	int have_wave_size;                              /* instead of WAVES */
	struct rollout_amount wave_size;
	int64_t soak_ms;
	struct rollout_amount max_failures;
	int min_sample;
	enum rollout_on_halt on_halt;
	char gate_cmd[ROLLOUT_GATE_CMD_MAX + 1];         /* "" for none */
	int have_window;
	char window_text[ROLLOUT_WINDOW_TEXT_MAX + 1];   /* as given; WINDOW is parsed */
	struct rollout_window window;
	int parallel;
	int timeout_s;
	int include_self;
	int force;             /* reinstall where the release already runs */
	int full;              /* never a planned (delta) push: the whole release */
	int unreachable_skip;  /* 1: an unreachable host is skipped, not a failure */
	int retries;           /* attempts on busy (503) and unreachable hosts */
	int64_t deadline_at;   /* wall clock (s) after which no attempt starts; 0: none */
};

/* SPEC with every default (canary 1, waves 10%,50%,100%, halt on the first failure). */
void rollout_spec_defaults(struct rollout_spec *spec);

/* Parse "N" or "P%" (0 <= N <= MAX; 0 <= P <= 100). */
int rollout_amount_parse(const char *s, long long max, struct rollout_amount *out,
    struct err *e) WUR;
/* AMOUNT of TOTAL hosts: a count as is (at most TOTAL), a percentage rounded up. */
size_t rollout_amount_of(const struct rollout_amount *a, size_t total);
/* "N" or "P%" into BUF. */
void rollout_amount_format(const struct rollout_amount *a, char *buf, size_t len);

/* Parse a duration ("5s", "1h30m", "300ms") of at most ROLLOUT_MAX_DURATION_MS. */
int rollout_duration_parse(const char *s, int64_t *ms, struct err *e) WUR;
/* MS as the shortest exact duration text ("5s", "1h30m", "250ms", "0s"). */
void rollout_duration_format(int64_t ms, char *buf, size_t len);

/* Parse a comma-separated list of cumulative amounts ("10%,50%,100%", "1,30%,100%"). */
int rollout_waves_parse(const char *s, struct rollout_spec *spec, struct err *e) WUR;

/* Parse a window (see above); a named zone must exist in the time zone database. */
int rollout_window_parse(const char *s, struct rollout_window *w, struct err *e) WUR;
/*
 * 1 when NOW lies inside W, 0 outside. *NEXT (may be NULL) is when that
 * answer next changes: the end of the current window, or the start of the
 * next one (0 when no window starts within eight days, e.g. no days set).
 */
int rollout_window_at(const struct rollout_window *w, time_t now, time_t *next);

/*
 * The waves of N hosts: *ENDS[i] is the cumulative number of hosts once wave
 * i is done (strictly increasing, the last one N). The canary (if not 0) is
 * wave 0; then the cumulative WAVES (or steps of WAVE_SIZE); an amount that
 * adds no host is dropped, never an empty wave, and hosts left after the
 * last amount form a final wave. Returns the number of waves (0 for N = 0).
 */
size_t rollout_plan_waves(const struct rollout_spec *spec, size_t n, size_t ends[ROLLOUT_MAX_WAVES + 2]);
#define ROLLOUT_MAX_PLAN_WAVES (ROLLOUT_MAX_WAVES + 2)

/*
 * The order key of HOST in rollout ID: sha256(ID || HOST) as 64 hex. Hosts
 * are dispatched in increasing key order: stable for a rollout (a resume
 * sees the same plan), different between rollouts, not by name.
 */
void rollout_order_key(const char *id, const char *host, char out[65]);

/*
 * Has the rollout failed too much? ATTEMPTED hosts got an answer (or gave
 * up), FAILED of them count as failures; CANARY_FAILED failures were in the
 * canary wave (which tolerates none); TOTAL is the number of hosts of the
 * rollout (the percentage applies once min(MIN_SAMPLE, TOTAL) hosts were
 * attempted). Returns 1 with the reason in WHY, else 0.
 */
int rollout_threshold_exceeded(const struct rollout_spec *spec, size_t total, size_t attempted,
    size_t failed, size_t canary_failed, char *why, size_t len);

/* SPEC as its JSON text (malloc'd, free()) or NULL on ENOMEM. */
char *rollout_spec_to_json(const struct rollout_spec *spec) WUR;
/* Parse what rollout_spec_to_json() wrote (strict: unknown keys are errors). */
int rollout_spec_from_json(const char *text, size_t len, struct rollout_spec *spec,
    struct err *e) WUR;

/* A fresh random id of HEX_LEN lowercase hex digits into OUT (HEX_LEN + 1 bytes). */
int rollout_random_id(char *out, size_t hex_len, struct err *e) WUR;

#endif
