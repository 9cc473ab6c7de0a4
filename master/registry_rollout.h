/*
 * registry_rollout — the rollout tables of the registry: one row per rollout
 * (its spec, release, state, wave, lease), one per host of a rollout (wave,
 * order, state, request id, release before), and the rollout's events.
 *
 * Writers that drive a rollout hold its lease: every write that changes the
 * rollout or its hosts checks, inside its transaction, that the lease is
 * still theirs (ERR_CONFLICT otherwise), so two drivers can never both act.
 * A host is held by at most one unfinished rollout (ERR_CONFLICT at
 * creation names the other one); finishing a rollout releases its hosts.
 *
 * Rollout ids may be abbreviated to a unique prefix of at least 4 digits
 * wherever an operator types one (registry_rollout_get).
 */
#ifndef TANDEM_MASTER_REGISTRY_ROLLOUT_H
#define TANDEM_MASTER_REGISTRY_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"
#include "master/registry.h"
#include "master/rollout_plan.h"

#define REG_ROLLOUT_OWNER_MAX 127
#define REG_ROLLOUT_REASON_MAX 511
#define REG_ROLLOUT_SPEC_MAX 4095
#define REG_ROLLOUT_EVENT_MAX 1023
#define REG_ROLLOUT_SELF_MAX 2047

/* Rollout states (rollouts.state). */
enum reg_rollout_state {
	RO_PLANNED = 0,
	RO_RUNNING,
	RO_WAITING_WINDOW,
	RO_PAUSED,
	RO_HALTED,
	RO_REVERTING,
	RO_DONE,
	RO_ABORTED,
	RO_STATE_COUNT
};

/* Host states within a rollout (rollout_hosts.state). */
enum reg_rh_state {
	RH_PENDING = 0,
	RH_DISPATCHED,
	RH_UPDATED,
	RH_ALREADY_ACTIVE,
	RH_ROLLED_BACK,
	RH_FAILED,
	RH_SOAK_FAILED,
	RH_SKIPPED,
	RH_REVERTING,
	RH_REVERTED,
	RH_REVERT_FAILED,
	RH_REVERT_SKIPPED,
	RH_STATE_COUNT
};

const char *registry_rollout_state_name(enum reg_rollout_state s);
int registry_rollout_state_parse(const char *name, enum reg_rollout_state *out);
const char *registry_rh_state_name(enum reg_rh_state s);
int registry_rh_state_parse(const char *name, enum reg_rh_state *out);
/* 1 for the host states that count as a failure of the release. */
int registry_rh_is_failure(enum reg_rh_state s);

struct reg_rollout {
	char id[ROLLOUT_ID_LEN + 1];
	char name[ROLLOUT_NAME_MAX + 1];
	char kind[16];                     /* "update" or "converge" */
	char spec_json[REG_ROLLOUT_SPEC_MAX + 1];
	char release_sha256[REG_FP_LEN + 1];
	char release_label[128];
	enum reg_rollout_state state;
	char reason[REG_ROLLOUT_REASON_MAX + 1];
	int n_hosts;
	int n_waves;
	int current_wave;
	time_t gate_until;                 /* 0: not soaking */
	int ack_attempted, ack_failed;     /* counted before the last resume of a halt */
	char request[16];                  /* "", "pause", "abort", "abort_revert" */
	char lease_owner[REG_ROLLOUT_OWNER_MAX + 1]; /* "" when free */
	time_t lease_until;
	time_t created_at, updated_at, finished_at; /* finished_at 0 until it ends */
};

struct reg_rollout_host {
	int64_t host_id;
	char host[REG_NAME_MAX + 1];
	int wave;
	int seq;                           /* 1-based dispatch order */
	enum reg_rh_state state;
	char request_id[ROLLOUT_REQUEST_ID_LEN + 1];
	char pre_sha256[REG_FP_LEN + 1];   /* active release before the rollout touched it */
	char version[128];                 /* release version active afterwards */
	char active_sha256[REG_FP_LEN + 1];
	char reason[256];
	char detail[REG_DETAIL_MAX + 1];
	int http_status;                   /* of the last answer, 0 when none */
	char agent_result[32];             /* push log word of the request: "updated",
					      "rolled_back", "failed", "already_active" ... */
	char self_json[REG_ROLLOUT_SELF_MAX + 1]; /* the updater's own update, "" if none */
	int tsig_sent;                     /* the request carried the release's signature */
	char transfer[12];                 /* "planned", "full", "fallback"; "" before an upload */
	uint64_t bytes_sent;               /* request bodies sent to the host: plans, uploads */
	int attempts;
	time_t started_at, finished_at;
	int log_push;                      /* (write only) this write records a request's
					      outcome: append it to the push log */
};

/* Per-state host counts of a rollout (or of one wave). */
struct reg_rollout_counts {
	size_t n[RH_STATE_COUNT];
	size_t total;
};

struct reg_rollout_event {
	int64_t seq;
	time_t at;
	char host[REG_NAME_MAX + 1];       /* "" for rollout-wide events */
	char kind[32];
	char data[REG_ROLLOUT_EVENT_MAX + 1]; /* a JSON object */
};

/*
 * Create rollout R (id, name, kind, release_sha256 of a stored release,
 * state RO_PLANNED or RO_PAUSED) with SPEC_JSON, and its hosts: every host
 * in service that SEL selects, ordered by rollout_order_key(), cut into the
 * waves of SPEC (rollout_plan_waves) — all in one transaction, with a
 * "created" event. Refuses (ERR_CONFLICT, nothing written) when a selected
 * host is held by another unfinished rollout — unless TAKE_OVER and that
 * rollout is paused or halted with no driver: then the host passes to the
 * new rollout (skipped in the old one if still pending there) — and
 * (ERR_NOT_FOUND) when SEL selects nothing. *N_HOSTS / *N_WAVES say what
 * was planned.
 */
int registry_rollout_create(struct registry *reg, const struct reg_rollout *r,
    const struct rollout_spec *spec, const struct selector *sel,
    int (*want)(void *arg, const char *host), void *want_arg, int take_over, int *n_hosts,
    int *n_waves, struct err *e) WUR;

/* Read rollout ID (or a unique prefix of >= 4 digits) into *OUT. ERR_NOT_FOUND. */
int registry_rollout_get(struct registry *reg, const char *id, struct reg_rollout *out,
    struct err *e) WUR;

/* The newest LIMIT rollouts (created_at descending) into OUT (*N). */
int registry_rollout_list(struct registry *reg, struct reg_rollout *out, size_t limit, size_t *n,
    struct err *e) WUR;

/*
 * Take or renew the lease of rollout ID for OWNER until NOW + LEASE_S. It
 * is free when no one holds it, when it is OWNER's, when it expired, or
 * when OWNER_GONE (may be NULL) says the holder's process is gone. Else
 * ERR_CONFLICT "rollout ID is driven by HOLDER (lease until T)". On
 * success *OUT (may be NULL) is the row as of now.
 */
int registry_rollout_lease(struct registry *reg, const char *id, const char *owner, time_t now,
    int lease_s, int (*owner_gone)(const char *holder), struct reg_rollout *out,
    struct err *e) WUR;
/* Give the lease up (only OWNER's). */
int registry_rollout_release(struct registry *reg, const char *id, const char *owner,
    struct err *e) WUR;

/*
 * Change rollout ID (leased by OWNER) to STATE with REASON, WAVE (-1: keep),
 * GATE_UNTIL (-1: keep, 0: clear), and an event KIND with DATA_JSON (NULL:
 * "{}"). Terminal states (done, aborted, and halted with FINISH) also set
 * finished_at, turn still-pending hosts into skipped and release every host.
 */
int registry_rollout_set(struct registry *reg, const char *id, const char *owner,
    enum reg_rollout_state state, const char *reason, int wave, time_t gate_until, int finish,
    const char *kind, const char *data_json, struct err *e) WUR;

/* Remember the counts seen when a halted rollout is resumed (threshold restarts there). */
int registry_rollout_ack(struct registry *reg, const char *id, const char *owner, int attempted,
    int failed, struct err *e) WUR;

/*
 * An operator's request to rollout ID: "pause", "abort", "abort_revert"
 * (or NULL to clear it; a driver clears what it acted on). Works without the
 * lease: the driver that holds it reads the request at its next step.
 */
int registry_rollout_request(struct registry *reg, const char *id, const char *request,
    struct err *e) WUR;

/* Append an event (HOST may be NULL) to rollout ID. */
int registry_rollout_event(struct registry *reg, const char *id, const char *host,
    const char *kind, const char *data_json, struct err *e) WUR;

/*
 * Write host rows ROWS[0..N) of rollout ID (leased by OWNER) in one
 * transaction: state, request id, pre_sha256, version, active sha256,
 * reason, detail, results, attempts, times; each with a "host" event. Rows
 * with LOG_PUSH set also go to the push log (swarm history): AGENT_RESULT,
 * and the self-update's outcome when SELF_JSON holds one. ERR_CONFLICT when
 * the lease was lost (nothing written).
 */
int registry_rollout_hosts_write(struct registry *reg, const char *id, const char *owner,
    const struct reg_rollout_host *rows, size_t n, struct err *e) WUR;

/*
 * Host rows of rollout ID with seq > AFTER_SEQ (start with 0), in seq
 * order, at most LIMIT into OUT (*N); WAVE < 0: any wave; STATE: one state,
 * REG_RH_ANY, REG_RH_UNFINISHED (pending or dispatched) or
 * REG_RH_REVERTIBLE (updated, soak_failed or reverting). With H non-NULL,
 * also each host's registry row (H[i] for OUT[i]).
 */
#define REG_RH_ANY (-1)
#define REG_RH_UNFINISHED (-2)
#define REG_RH_REVERTIBLE (-3)
int registry_rollout_hosts(struct registry *reg, const char *id, int wave, int state,
    int after_seq, size_t limit, struct reg_rollout_host *out, struct reg_host *h, size_t *n,
    struct err *e) WUR;

/* Host counts per state of rollout ID, of wave WAVE (< 0: all waves, <= WAVE with UPTO). */
int registry_rollout_counts(struct registry *reg, const char *id, int wave, int upto,
    struct reg_rollout_counts *out, struct err *e) WUR;

/* Events of rollout ID with seq > AFTER_SEQ, at most LIMIT into OUT (*N). */
int registry_rollout_events(struct registry *reg, const char *id, int64_t after_seq,
    size_t limit, struct reg_rollout_event *out, size_t *n, struct err *e) WUR;

/*
 * The unfinished rollout holding host HOST: 1 with its id in ID (and state),
 * 0 when none, -1 on error.
 */
int registry_rollout_holding(struct registry *reg, const char *host, char id[ROLLOUT_ID_LEN + 1],
    enum reg_rollout_state *state, struct err *e) WUR;

/* How often host HOST failed release SHA256 in earlier rollouts (converge's penalty box). */
int registry_rollout_failures_of(struct registry *reg, const char *host, const char *sha256,
    int *count, struct err *e) WUR;

#endif
