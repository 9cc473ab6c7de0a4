/*
 * swarm_push — the master talking to updaters: one mTLS client context
 * (HOME/master/master.{crt,key}, CA HOME/ca/ca.crt), every connection pinned
 * to the updater fingerprint recorded in the registry (fail closed without
 * one), and a bounded pool of threads running one job per host: update
 * (POST /update, optionally /update-self + /health confirmation), dry run
 * (GET /health), status (GET /health of the updater, GET /health of the
 * agent pinned to its own fingerprint).
 *
 * Progress goes to stderr: redrawn in place on a terminal, one plain line
 * per phase change otherwise; stdout is left to the caller's table or JSON.
 */
#ifndef TANDEM_MASTER_SWARM_PUSH_H
#define TANDEM_MASTER_SWARM_PUSH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/httpc.h"
#include "common/tls.h"
#include "common/util.h"
#include "master/delta_pack.h"
#include "master/registry.h"
#include "master/swarm_result.h"
#include "pki/sign.h"

struct swarm_ctx {
	const char *home;
	struct tls_ctx *tls;
	struct registry *reg;
	int timeout_ms;  /* whole exchange of one request */
	int tty;         /* progress redrawn in place */
	int quiet;       /* no progress at all */
	/*
	 * The release the command checked (may be NULL): what its check kept
	 * (its prefetch) serves the deltas of any run of a release of the same
	 * digest, a rollout's too (which reads the release back from the store).
	 */
	const struct swarm_release_file *checked;
};

/* Open the master's TLS context and the registry. Returns 0 or -1 with E. */
int swarm_ctx_open(struct swarm_ctx *c, const char *home, int timeout_s, struct err *e) WUR;
void swarm_ctx_close(struct swarm_ctx *c);

enum swarm_job_kind {
	SWARM_JOB_UPDATE = 0,
	SWARM_JOB_DRY_RUN = 1,
	SWARM_JOB_STATUS = 2,
	SWARM_JOB_KEYRING = 3,  /* POST /keyring: the master's keyring versions the host lacks */
	SWARM_JOB_ROLLBACK = 4, /* POST /rollback (a rollout's revert) */
	SWARM_JOB_CALL = 5,     /* the pool's CALL callback does the work */
};

enum swarm_phase {
	SWARM_PH_WAITING = 0,
	SWARM_PH_CONNECTING,
	SWARM_PH_UPLOADING,
	SWARM_PH_INSTALLING,
	SWARM_PH_SELF,
	SWARM_PH_CONFIRMING,
	SWARM_PH_DONE,
};

/* What the jobs share: the release and the options. */
struct swarm_release_file {
	const char *path;     /* the tarball */
	char sha256[65];
	uint64_t size;
	char label[128];      /* the "sha" field: the release version */
	const char *tsig;     /* FILE.tsig's bytes (NUL-terminated), or NULL: unsigned */
	size_t tsig_len;
	const struct sign_keyring *keyring; /* the master's, for the dry run's verdict; may be NULL */
	struct swarm_deltas *deltas; /* its planned pushes' deltas; NULL: each swarm_run its own */
	/* what the release's check kept for its deltas (master/release_store); may be NULL */
	const struct delta_pack_prefetch *prefetch;
};

/*
 * The deltas of one release built during a command (planned pushes): one
 * per set of files the hosts lack, built by the first host whose plan names
 * that set and sent as it is to every other host naming the same set, so
 * the release is read once per set, not once per host. swarm_run keeps its
 * own unless the release carries some (a rollout shares them across its
 * waves); swarm_deltas_free removes the files. NULL: out of memory.
 */
struct swarm_deltas *swarm_deltas_new(void);
void swarm_deltas_free(struct swarm_deltas *ds);

struct swarm_job {
	struct reg_host host;
	enum swarm_job_kind kind;
	/* progress (under the pool's lock) */
	enum swarm_phase phase;
	uint64_t sent, total;
	int64_t started_ms;       /* mono_ms() when a worker took the job, 0 before */
	int64_t elapsed_ms;       /* from taking the job to its end (set when done) */
	/* update */
	struct swarm_result agent;
	int self_tried;
	struct swarm_result self;
	/* dry run and status */
	int reachable;            /* the updater answered */
	int pin_ok;               /* -1 unknown, 0 mismatch, 1 ok */
	int have_health;
	struct swarm_health health;
	int same_sha;             /* dry run: already runs the release */
	char agent_version[SWARM_SHORT]; /* status: from the agent's own /health */
	char agent_reach[SWARM_REASON];  /* status: "" when the agent answered */
	char agent_cert_not_after[32];   /* status: the agent's certificate, "" if unknown */
	char error[SWARM_REASON + SWARM_DETAIL]; /* why the host could not be asked */
	/* release signatures */
	int tsig_sent;            /* update: the signature went with the release */
	int signature_ok;         /* dry run: the host should accept the signature (or its absence) */
	char signature[SWARM_REASON * 2]; /* dry run: the verdict in words */
	long long keyring_from, keyring_to; /* keyring: the host's version before and after */
	/* rollouts */
	char request_id[33];      /* sent with the push/rollback when the updater takes it */
	/*
	 * Set by BEFORE_PUSH when it settled the agent's push from a dispatch
	 * made earlier under REQUEST_ID (a resumed rollout): with INCLUDE_SELF
	 * and the agent updated, the self-update under that id is looked up in
	 * the updater's history and sent only if it never ran.
	 */
	int resumed;
	int attempts;             /* requests made (retries of busy/unreachable included) */
	/* planned pushes */
	const char *upload_path;  /* the tarball this upload sends: NULL, the release's */
	uint64_t upload_size;
	int upload_delta;         /* the upload is a delta (mode=delta) */
	const char *transfer;     /* "planned", "full", "fallback"; NULL before an upload */
	const char *self_transfer; /* the same for the self-update (--include-self) */
	uint64_t bytes_sent;      /* request bodies of plan and uploads */
	/* dry run: how the release would travel ("planned", "full"; NULL when the
	   host was not asked) and the request bytes it would take (plan included) */
	const char *dry_transfer;
	uint64_t dry_bytes;
	void *user;               /* the source's own data for this job */
};

struct swarm_pool_opts {
	const struct swarm_release_file *release; /* NULL for status and keyring */
	int64_t keyring_version;                  /* keyring: the master's current version */
	int include_self;
	int parallel;
	/*
	 * Updates (and rollbacks): ask GET /health first (J->health).
	 * BEFORE_PUSH (may be NULL) then runs with that answer; non-zero skips
	 * the request (the hook fills J->agent). Then a host that already runs
	 * the release answers SWARM_ALREADY_ACTIVE without an upload, unless
	 * FORCE.
	 */
	int precheck;
	int force;
	/*
	 * Updates: unless FULL, a release with files.json is offered to
	 * POST /update/plan first and, when the delta of what the host lacks is
	 * clearly smaller than the release, only that is uploaded (mode=delta);
	 * 409 delta_mismatch sends the full release after it (transfer
	 * "fallback"); no plan (404, an error) sends the full release. With
	 * INCLUDE_SELF the updater's release goes the same way through
	 * POST /update-self/plan and /update-self (J->self_transfer).
	 */
	int full;
	int (*before_push)(void *arg, struct swarm_job *j);
	/*
	 * Busy (503 + Retry-After) and unreachable hosts are tried up to RETRIES
	 * times (0 or 1: once), waiting Retry-After (at most 30 s) or 1, 2, 4 ...
	 * s, never past DEADLINE (a mono_ms() value, 0: none) and not once *STOP
	 * is set.
	 */
	int retries;
	int64_t deadline;
	volatile int *stop;
	int no_push_log;   /* the caller records the outcomes itself (rollouts) */
	/*
	 * Streaming (memory flat in the number of hosts): with NEXT set, JOBS is
	 * NULL and each worker asks NEXT for its next job (1: filled, 0: none
	 * left); TOTAL (may be 0) is only for the progress counter. DONE (may be
	 * NULL) is called by the worker after each job, one call at a time (the
	 * pool serialises them, so a sink such as a table or a JSON array needs
	 * no lock of its own); CALL does the work of SWARM_JOB_CALL jobs, in
	 * parallel. All three get ARG.
	 */
	int (*next)(void *arg, struct swarm_job *j);
	void (*done)(void *arg, struct swarm_job *j);
	void (*call)(void *arg, struct swarm_job *j);
	void *arg;
	size_t total;
};

/*
 * Run JOBS[0..N) (or, with O->next, jobs as the source hands them out) with
 * at most O->parallel at a time; returns when all are done.
 */
int swarm_run(struct swarm_ctx *c, struct swarm_job *jobs, size_t n,
    const struct swarm_pool_opts *o) WUR;

/*
 * GET /health of host H's updater (pinned, TIMEOUT_MS) parsed into *OUT.
 * Returns 0; -1 when no answer came (E; kind ERR_PIN_MISMATCH when the
 * certificate was not the enrolled one); -2 when the answer was not a
 * usable /health (E, ERR_PROTOCOL, says why).
 */
int swarm_host_health(struct swarm_ctx *c, const struct reg_host *h, int timeout_ms,
    struct swarm_health *out, struct err *e) WUR;

/*
 * What became of request REQUEST_ID (client-chosen, recorded before it was
 * sent) on host H: GET /history?request_id= on its updater, among the
 * entries of the request's kind WHAT (SWARM_REQ_*: one id may name a push
 * and the self-update after it). An operation with that id still running
 * (/health's operation) is waited for, and an updater that does not answer
 * (restarting, a network that dropped the first connection) is asked again,
 * until DEADLINE (a mono_ms() value) or *STOP (may be NULL).
 *
 *   SWARM_LOOKUP_FOUND   the updater recorded it: its outcome in *R
 *   SWARM_LOOKUP_ABSENT  the updater never took it: nothing ran, the same
 *                        request may be sent again (*R untouched); or its
 *                        newest record of the id is the refusal of a delta
 *                        (409 delta_mismatch, nothing installed: *R is that
 *                        refusal, so a planned push falls back to the full
 *                        release and a full one is sent again)
 *   SWARM_LOOKUP_FAILED  unknown (no usable answer before the deadline): *R
 *                        is a failure that says so, never a guess
 */
enum swarm_lookup {
	SWARM_LOOKUP_ABSENT = 0,
	SWARM_LOOKUP_FOUND = 1,
	SWARM_LOOKUP_FAILED = 2,
};
/* The kinds of request swarm_request_lookup asks about. */
enum swarm_req {
	SWARM_REQ_UPDATE = 0,   /* POST /update: history kind "update" */
	SWARM_REQ_ROLLBACK = 1, /* POST /rollback: "rollback" */
	SWARM_REQ_SELF = 2,     /* POST /update-self: "update-self" (queued, then committed,
				   reverted or undone by the launcher) */
};
enum swarm_lookup swarm_request_lookup(struct swarm_ctx *c, const struct reg_host *h,
    const char *request_id, int what, int64_t deadline, volatile int *stop,
    struct swarm_result *r);

/*
 * A new private directory tandem-NAME-PID-XXXXXX under fs_tmp_root() ($TMPDIR,
 * or /tmp when TMPDIR is unset or not absolute) into BUF. Returns 0, or -1
 * with errno (BUF ""). First removes the tandem-NAME-PID-* directories of
 * this user whose PID no longer runs: left by a master killed mid-command.
 */
int swarm_tmpdir_make(const char *name, char *buf, size_t len) WUR;

/*
 * One request to host H's updater (pinned): METHOD PATH, no body. Returns 0
 * with RESP filled (any status), or -1 with E (connect, pin: ERR_PIN_MISMATCH,
 * transport).
 */
int swarm_request(struct swarm_ctx *c, const struct reg_host *h, const char *method,
    const char *path, struct httpc_response *resp, struct err *e) WUR;

/* The strings of a target made by swarm_target(): live as long as the request. */
struct swarm_target_buf {
	char port[16];
	char pins[2 * (REG_FP_LEN + 1)];
};

/*
 * Target of host H's updater (AGENT != 0: its agent), pinned to the
 * certificate recorded in the registry and, during a renewal, the next one.
 * -1 with E (ERR_CONFLICT) when no fingerprint is recorded (never unpinned).
 */
int swarm_target(const struct reg_host *h, int agent, struct httpc_target *t,
    struct swarm_target_buf *b, int timeout_ms, struct err *e) WUR;

#endif
