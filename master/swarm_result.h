/*
 * swarm_result — the pure parts of `tandem swarm`: reading what an updater
 * answers (POST /update, /update-self, /rollback, GET /health) into fixed
 * C structs, classifying the outcome, option parsing of `swarm update`, and
 * the text tables every swarm command prints. No I/O except printing a
 * table to a FILE, so all of it is unit-tested (tests/unit/test_swarm.c).
 *
 * Worker bodies come from the network: anything malformed (not JSON, wrong
 * types, missing fields, control bytes) is classified as a failure with a
 * readable reason, never trusted and never crashing. Every string copied out
 * of a body is made printable (no terminal escape sequences reach stdout).
 */
#ifndef TANDEM_MASTER_SWARM_RESULT_H
#define TANDEM_MASTER_SWARM_RESULT_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "common/util.h"
#include "master/cli.h"
#include "master/rollout_plan.h"

#define SWARM_DEFAULT_PARALLEL 8
#define SWARM_MAX_PARALLEL 256
#define SWARM_DEFAULT_TIMEOUT_S 900
#define SWARM_MAX_TIMEOUT_S 86400
#define SWARM_MAX_HOSTS 4096

#define SWARM_SHORT 128   /* version, sha label, state words */
#define SWARM_REASON 256  /* one-line reason */
#define SWARM_DETAIL 1024 /* worker detail (error, restored probe, output) */

enum swarm_outcome {
	SWARM_UPDATED = 0,     /* 200, status "updated" (or "rolled_back" for /rollback) */
	SWARM_ROLLED_BACK = 1, /* 409 with rolled_back: the previous release runs again */
	SWARM_FAILED = 2,      /* anything else */
	SWARM_ALREADY_ACTIVE = 3, /* the host already runs the release: nothing installed */
};

/* What one operation on one host ended with. */
struct swarm_result {
	enum swarm_outcome outcome;
	int http_status;              /* 0 when no HTTP response was obtained */
	char reason[SWARM_REASON];    /* "" for success; else a short reason */
	char detail[SWARM_DETAIL];    /* worker's error/stderr or the transport error */
	char version[SWARM_SHORT];    /* release version now active, "" if unknown */
	char sha256[65];              /* sha256 of the release now active, "" if unknown */
};

/* The outcome's word: "updated", "rolled_back", "failed", "already_active". */
const char *swarm_outcome_word(enum swarm_outcome o);

/*
 * Classify the answer to POST /update or /update-self (STATUS, BODY of LEN
 * bytes; BODY may be NULL). 200 with {"status":"updated","release":{...}}
 * is SWARM_UPDATED; 409 with detail.rolled_back true is SWARM_ROLLED_BACK;
 * every other answer is SWARM_FAILED with a reason naming the status
 * ("HTTP 503: busy, retry after 5 s: ...").
 */
void swarm_classify_update(int status, const char *body, size_t len, const char *retry_after,
    struct swarm_result *out);

/*
 * Classify the answer to POST /update-self: 200 with {"status":
 * "self_update_queued","to_version":V,...} (or "updated" with a release)
 * is SWARM_UPDATED with OUT->version = V (the handover still has to be
 * confirmed through /health); everything else as swarm_classify_update().
 */
void swarm_classify_self(int status, const char *body, size_t len, const char *retry_after,
    struct swarm_result *out);

/*
 * Classify the answer to POST /rollback: 200 {"status":"rolled_back",
 * "release":{...}} is SWARM_UPDATED (the operation succeeded), everything
 * else SWARM_FAILED (404: no previous release; 503 busy with RETRY_AFTER, may be NULL).
 */
void swarm_classify_rollback(int status, const char *body, size_t len, const char *retry_after,
    struct swarm_result *out);

/* A release as /health and /releases list it. */
struct swarm_release {
	char slot[16];
	char sha[SWARM_SHORT];
	char sha256[65];
	char version[SWARM_SHORT];
	char installed_at[40];
};

/* What GET /health of an updater says. */
struct swarm_health {
	char status[32];              /* "ok", "no_release", "degraded", ... */
	char version[SWARM_SHORT];    /* the updater's version */
	int have_active, have_prev;
	struct swarm_release active, prev;
	char agent_state[32];         /* supervisor state, "" if absent */
	char operation[SWARM_SHORT];  /* "kind/phase" of a running operation, "" if none */
	int probation;                /* a self-updated updater is still on probation */
	/* Release signatures (wiki/Release-Signing.md); an updater older than them has none. */
	char signature[32];           /* "required", "unsigned", "keyring_invalid"; "" if absent */
	long long security_floor;     /* -1 when absent */
	long long keyring_version;    /* 0: no keyring; -1 when absent */
	char compatible[SWARM_SHORT]; /* "" when absent */
	/* the supervisor's view of the agent (absent: -1) */
	int agent_crash_loop;
	long long agent_restarts;
	long long agent_uptime_ms;
	char agent_last_exit[SWARM_SHORT];
	char operation_request_id[40]; /* request id of the running operation, "" if none */
	int has_request_id;           /* the updater takes request ids ("features") */
	int has_already_active;       /* ... and answers already_active / takes force */
	int has_plan_gzip;            /* ... and takes a gzip-compressed plan request */
	int has_self_request_id;      /* ... and records a self-update's request id */
	int has_zstd_patch;           /* ... and names bases in a plan, applies zstd patches */
	char cert_not_after[32];      /* the updater's certificate (ISO 8601), "" if absent */
};

/*
 * Parse an updater /health body. Unknown keys are ignored (the API only
 * grows); "role" must be "updater" and "releases" an array of objects.
 * Returns 0, or -1 with ERR (ERR_PROTOCOL).
 */
int swarm_parse_health(const char *body, size_t len, struct swarm_health *out,
    struct err *err) WUR;

/* `swarm update` options (also `swarm rollout start` and `swarm converge`). */
struct swarm_update_args {
	const char **hosts; /* N_HOSTS names (pointers into argv); caller frees the array */
	size_t n_hosts;
	int all;
	const char *selector; /* --hosts SEL, NULL when absent */
	const char *release; /* FILE or DIR, NULL when absent */
	int include_self;
	int dry_run;
	int parallel;
	int timeout_s;
	int json;
	int json_lines;
	int paused;          /* record the rollout, do not start it */
	int retry_failed;    /* converge: hosts in the penalty box too */
	struct rollout_spec spec; /* the rollout's options, defaults filled in */
};

/*
 * The options of `swarm update` and `swarm converge`: the tables their
 * commands' help prints and the parser below reads.
 */
extern const struct cli_opt swarm_update_opts[];
extern const struct cli_opt swarm_converge_opts[];

/*
 * Parse `swarm update` ARGV (ARGV[0] is the command name; getopt is reset).
 * Rules: --host NAME (repeatable), --all or --hosts SEL, exactly one kind
 * (unless NO_HOSTS_OK: converge defaults to all); --release required unless
 * --dry-run (or RELEASE_OK is 0: converge takes the targets');
 * --parallel 1..SWARM_MAX_PARALLEL; --timeout 1..SWARM_MAX_TIMEOUT_S
 * seconds; the rollout options as master/rollout_plan.h parses them.
 * --json and --help are the command line's (A->json is the caller's to
 * set). Returns 0, or -1 with ERR (ERR_USAGE; ERR_NOMEM). A->hosts is
 * malloc'd (free it even on failure).
 */
int swarm_update_args_parse(int argc, char **argv, struct swarm_update_args *a,
    struct err *err) WUR;
/* The same for converge: no --release, --retry-failed, hosts default to all. */
int swarm_converge_args_parse(int argc, char **argv, struct swarm_update_args *a,
    struct err *err) WUR;

/*
 * A text table: a header line and rows, columns padded to their widest cell
 * (counted in UTF-8 characters), the last column unpadded. Control bytes in
 * cells print as '?', and a cell is cut to MAX_CELL characters with "...".
 */
struct swarm_table;

/* A table with NCOLS columns named HEADERS (copied); NULL on ENOMEM. */
struct swarm_table *swarm_table_new(size_t ncols, const char *const *headers);
/* Append a row of NCOLS cells (copied; NULL cells print as "-"). */
int swarm_table_add(struct swarm_table *t, const char *const *cells) WUR;
/* Print T to FP. */
void swarm_table_print(const struct swarm_table *t, FILE *fp);
void swarm_table_free(struct swarm_table *t);

#define SWARM_TABLE_MAX_CELL 72

struct cJSON;

/* Print OBJ (owned; NULL when it could not be built) as one compact JSON line
 * on stdout. Returns CLI_EXIT_OK, or CLI_EXIT_FAIL when it cannot be printed. */
int swarm_print_json(struct cJSON *obj);

/* T as an ISO 8601 UTC time in BUF, or "-" when T is 0 (never). */
void swarm_fmt_time(time_t t, char *buf, size_t len);
/* A duration of MS (>= 0) milliseconds as seconds to a tenth in BUF: "12.4 s". */
void swarm_fmt_secs(int64_t ms, char *buf, size_t len);

#endif
