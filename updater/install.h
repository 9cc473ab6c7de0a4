/*
 * install — the install engine: the one owner of every install transaction
 * of the updater, for every kind of plan, with no HTTP in it.
 *
 *   update     a release streamed from the master (POST /update):
 *              install_begin -> install_feed* -> install_finish
 *   seed       a release tarball on the local disk (--seed): install_seed,
 *              the same front fed from a file
 *   rollback   back to the previous release (POST /rollback): install_rollback
 *   self       a new updater (POST /update-self): the same front into the
 *              updater's own tree; ends queued, and the launcher later calls
 *              install_self_commit or install_self_revert
 *
 * The front: the signature check (updater/trust: before anything is
 * staged or extracted), the free-space check, the journal (phase staging),
 * the extractor (updater/extract) fed chunk by chunk; after the last byte
 * the extraction tail, the digest check (against the form and the signed
 * statement), the manifest (its name and version against the statement),
 * release.json and the preflight. Then the one transaction (install_transact
 * in install.c): stop the agent, switch (updater/store), start, probe,
 * commit and raise the security floor; or restore, start and probe the
 * restored release, and when that fails too, both_bad. A manual rollback
 * below the security floor is refused before anything moves.
 *
 * Collaborators are explicit (struct install_deps): the agent behind
 * struct install_agent (updater/agent in the daemon, fakes in unit tests),
 * the runner of preflight commands and the clock. The stores are the
 * engine's own (the agent's tree INSTALL_DIR and the updater's tree
 * INSTALL_DIR/updater); so are the operation lock, the current phase and
 * the both_bad state.
 *
 * Every operation ends in a struct install_outcome: the result, a typed
 * error (kind decided where the failure happened), the captured output
 * (preflight, or the failing agent's), the probe bodies, the resulting
 * release and per-phase timings; the same outcome goes to the history
 * (state/history.jsonl). api.c maps it to HTTP in one function.
 *
 * Extraction paths are relative: the process's working directory must be
 * the install directory.
 */
#ifndef TANDEM_UPDATER_INSTALL_H
#define TANDEM_UPDATER_INSTALL_H

#include <stddef.h>
#include <stdint.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/util.h"
#include "updater/config.h"
#include "updater/handover.h"
#include "updater/journal.h"
#include "updater/store.h"
#include "updater/trust.h"

/* The updater's own releases, relative to the install dir. */
#define INSTALL_SELF_TREE "updater"
#define INSTALL_SELF_STAGING_REL "updater/releases/active.new"
/* Longest "sha" label of a push. */
#define INSTALL_SHA_MAX 255
/* Bytes of preflight output kept for the answer. */
#define INSTALL_OUTPUT_MAX (16 * 1024)
/*
 * Free bytes every operation keeps for the engine's own records (journal,
 * release.json, history, state/agent.json) whatever min_free says: a
 * smaller min_free counts as this much.
 */
#define INSTALL_HEADROOM (512ULL * 1024)
/* Longest client-chosen request id (install_request_id_valid). */
#define INSTALL_REQUEST_ID_MAX 36

enum install_kind {
	INSTALL_UPDATE = 1,
	INSTALL_SEED = 2,
	INSTALL_ROLLBACK = 3,
	INSTALL_SELF = 4,
};

/* Names as the history and the wire use them. */
enum install_result {
	INSTALL_REFUSED = 0,   /* "refused": nothing changed */
	INSTALL_UPDATED,       /* "updated": the new release runs and passed its probe */
	INSTALL_ROLLED_BACK,   /* "rolled_back": update: the new release failed, the old one runs
				  again and passed; rollback: the previous release runs and passed */
	INSTALL_RESTORED,      /* "restored": a rollback failed, the release that was active
				  runs again and passed */
	INSTALL_BOTH_BAD,      /* "both_bad": the new (or previous) release failed, and so did
				  the restored one */
	INSTALL_FAILED,        /* "failed": a first release failed (nothing installed), or the
				  restore itself failed */
	INSTALL_QUEUED,        /* "queued": a self-update is switched and waits for the
				  launcher */
	INSTALL_ALREADY_ACTIVE, /* "already_active": update: the release sent is the active
				   one (same sha256); nothing was installed or restarted and
				   prev is as it was */
};

const char *install_kind_name(enum install_kind k);
const char *install_result_name(enum install_result r);

/*
 * What to do. The api fills the text fields as the form arrives (they may
 * come after the tarball): the engine reads them in install_finish().
 */
struct install_plan {
	enum install_kind kind;
	char id[JOURNAL_ID_LEN];        /* from install_lock() */
	char caller[65];                /* certificate fingerprint of the requester */
	char sha[INSTALL_SHA_MAX + 1];  /* free-text label (update, self) */
	char sha256[72];                /* the expected digest, as sent (update, self) */
	int has_sha256;                 /* the field was present */
	int confirmed;                  /* self: confirm_self was "true" */
	const char *tsig;               /* the signature file of the push (update, self), or
					   NULL; borrowed until install_finish/install_abort */
	size_t tsig_len;
	/*
	 * The client's own name for this request ("" when none): kept in the
	 * journal, the history and /health's operation, so a client whose
	 * connection dropped can ask what became of it (GET /history?request_id=).
	 */
	char request_id[INSTALL_REQUEST_ID_MAX + 1];
	/*
	 * update: install even when the release is the active one; that
	 * reinstall keeps prev as it is (the rollback point is not lost).
	 */
	int force;
	/*
	 * update: the tarball is a delta (files.json and the files the host
	 * lacks); the release is assembled in staging by updater/delta and
	 * verified against its files.json instead of against sha256, which
	 * still names the release (release.json, already_active, the
	 * signature's statement). A mismatch is ERR_DELTA_MISMATCH.
	 */
	int delta;
};

/* Fill P for KIND: id and texts empty. */
void install_plan_init(struct install_plan *p, enum install_kind kind);

/* 1 when RID is a usable request id: 1..INSTALL_REQUEST_ID_MAX of [A-Za-z0-9_-]. */
int install_request_id_valid(const char *rid);

/* Milliseconds spent per phase; -1 where the phase did not run. */
struct install_timings {
	int64_t upload_ms;     /* first to last byte of the tarball received */
	int64_t extract_ms;    /* extraction tail, digest, manifest, release.json */
	int64_t preflight_ms;
	int64_t switch_ms;     /* stop the agent, switch the releases */
	int64_t probe_ms;      /* start the agent, probe it */
	int64_t restore_ms;    /* stop, restore, start and probe the restored release */
	int64_t total_ms;      /* from the operation lock to the outcome */
};

struct install_outcome {
	enum install_kind kind;
	enum install_result result;
	struct err err;               /* ERR_OK for updated, rolled_back (rollback), queued */
	char id[JOURNAL_ID_LEN];
	char field[32];               /* the request field at fault ("sha256"), or "" */
	char *output;                 /* preflight output or the failing agent's output; or NULL */
	char *probe_new;              /* /health body of the new release's last probe, or NULL */
	char *probe_restored;         /* /health body of the restored release, or NULL */
	struct release_info release;  /* the release active afterwards (queued: the new updater) */
	int have_release;
	char from_version[128];       /* self: this updater's version */
	struct install_timings t;
};

/* An empty outcome for KIND (result refused, no error, timings -1). */
void install_outcome_init(struct install_outcome *oc, enum install_kind kind);
/* Free what OC holds (the strings); OC stays valid and empty. */
void install_outcome_free(struct install_outcome *oc);

/*
 * The agent as the engine sees it. Each call may block (stop waits for the
 * process to be gone; probe runs to its deadline).
 */
struct install_agent {
	void *arg;
	/* Stop the running agent (none running is fine). 0 or -1 with E. */
	int (*stop)(void *arg, struct err *e);
	/* Start the agent of the active release; *GEN names this start. 0 or -1 with E. */
	int (*start)(void *arg, uint64_t *gen, struct err *e);
	/*
	 * Probe the agent of start GEN for release RI: 0 passed, -1 failed (E:
	 * ERR_PROBE and why). *BODY: the last /health body (heap) or NULL.
	 */
	int (*probe)(void *arg, uint64_t gen, const struct release_info *ri, char **body,
	    struct err *e);
	/* What start GEN wrote to its stdout/stderr (the tail, heap), or NULL. */
	char *(*output)(void *arg, uint64_t gen);
};

/* A command to run to completion (a preflight). */
struct install_run {
	const char *const *argv;
	const char *cwd;
	const char *user;   /* NULL: unchanged */
	const char *group;
	int timeout_ms;
};

struct install_deps {
	struct install_agent agent;
	/*
	 * Run R, capturing up to OUTLEN - 1 bytes of its stdout+stderr into OUT
	 * (NUL-terminated). 0 with *STATUS the wait status, or -1 with E (could
	 * not run, timed out). Default: common/proc.
	 */
	int (*run)(const struct install_run *r, char *out, size_t outlen, int *status,
	    struct err *e);
	int64_t (*now_ms)(void);   /* monotonic; default mono_ms */
	const char *version;       /* this updater's version; default tandem_version() */
	/*
	 * The launcher's configuration file, passed to a new updater's
	 * --self-test; NULL when no launcher started us (no self-update then).
	 */
	const char *launcher_config;
	/*
	 * Called with every finished operation's outcome, from the thread that
	 * ran it, when its history line is written (a seed too, which has no
	 * line); NULL: nobody listens (updater/metrics counts them).
	 */
	void (*on_outcome)(void *arg, const struct install_outcome *oc);
	void *outcome_arg;
};

/* Defaults for run, now_ms and version; no agent (set it). */
void install_deps_init(struct install_deps *d);

struct install;
struct install_txn;

/*
 * Set up the engine for CFG (borrowed for its lifetime): the agent's tree
 * (recovering an interrupted operation first; RECOVERED, when not NULL,
 * gets a one-line summary or "") and the updater's tree (created if
 * missing, never recovered here: the launcher owns it). 0 or -1 with E.
 */
int install_new(const struct updater_config *cfg, const struct install_deps *deps,
    struct install **out, char *recovered, size_t recoveredlen, struct err *e) WUR;

void install_free(struct install *in);

/*
 * Take the operation lock for an operation of KIND: one at a time. ID gets
 * the new operation id. Fails with ERR_BUSY ("another operation is in
 * progress: ID") while one runs.
 */
int install_lock(struct install *in, enum install_kind kind, char id[JOURNAL_ID_LEN],
    struct err *e) WUR;
/*
 * install_lock, but while another operation runs wait up to WAIT_MS for it to
 * end (0: do not wait). Used for masters that cannot retry a 503.
 */
int install_lock_wait(struct install *in, enum install_kind kind, char id[JOURNAL_ID_LEN],
    int64_t wait_ms, struct err *e) WUR;
void install_unlock(struct install *in);

/* The running operation's request id is RID (shown by install_status). */
void install_set_request_id(struct install *in, const char *rid);

/* What /health shows of the engine. */
struct install_status {
	int busy;
	char id[JOURNAL_ID_LEN];
	const char *kind;          /* "update", "rollback", "update-self" */
	char request_id[INSTALL_REQUEST_ID_MAX + 1]; /* the client's, "" when none (yet) */
	const char *phase;         /* "receiving", "preflight", "switching", "probing", ... */
	int64_t elapsed_ms;
	int both_bad;
	int handing_over;          /* a self-update is queued: this updater is leaving */
	unsigned retry_attempts;   /* both_bad retries made since both_bad was set */
	unsigned retry_max;        /* both_bad_retries */
	int64_t retry_next_in_ms;  /* until the next both_bad retry; -1: none planned */
	int retry_running;         /* a both_bad retry holds the operation lock now */
};

void install_status(struct install *in, struct install_status *st);

/*
 * both_bad retries: while the host is both bad, a thread restarts and
 * probes the active (last good) release after both_bad_retry_interval,
 * doubling, at most both_bad_retries times; a pass ends both_bad. A push or
 * rollback always wins: it waits for a running retry's one probe instead of
 * a 503, and a retry never starts while an operation runs. Start it once
 * the agent can be started (both_bad_retries 0: nothing is started); stop
 * it before the agent is freed (install_free stops it too).
 */
int install_retry_start(struct install *in, struct err *e) WUR;
void install_retry_stop(struct install *in);

/*
 * state/both_bad.json keeps both_bad across restarts: {"attempts": N}, N the
 * both_bad retries made, 0..INSTALL_BOTH_BAD_MAX_ATTEMPTS. These two are
 * the format's one writer and one reader (tests/fuzz/fuzz_both_bad.c).
 */
#define INSTALL_BOTH_BAD_MAX_ATTEMPTS 1000000u
/* Largest both_bad.json read (a bigger file is not one of ours). */
#define INSTALL_BOTH_BAD_MAX_BYTES 4096
/*
 * The file's content for ATTEMPTS (at most INSTALL_BOTH_BAD_MAX_ATTEMPTS
 * written) into BUF: its length, or -1 when LEN is too small.
 */
int install_both_bad_format(unsigned attempts, char *buf, size_t len) WUR;
/*
 * Read LEN bytes of BUF: 0 with *ATTEMPTS, or -1 with E (ERR_FORMAT, *ATTEMPTS
 * untouched) for anything but one JSON object whose only key "attempts" is
 * an integer in 0..INSTALL_BOTH_BAD_MAX_ATTEMPTS.
 */
int install_both_bad_parse(const char *buf, size_t len, unsigned *attempts, struct err *e) WUR;

/* 1 when the agent's tree has an active release (*RI filled when not NULL), else 0. */
int install_active(struct install *in, struct release_info *ri);
/* The agent's releases as the wire's Release objects: active, then prev. NULL: no memory. */
cJSON *install_releases_json(struct install *in) WUR;
/*
 * The history, oldest first; only the entries of REQUEST_ID when it is not
 * NULL. NULL when it cannot be read.
 */
cJSON *install_history_json(struct install *in, const char *request_id) WUR;
/* The updater's own active release ("updater"."release" in /health), or a JSON null. */
cJSON *install_self_release_json(struct install *in) WUR;
/* The host's trust state: keyring, floor, policy (/health, POST /keyring). */
struct trust *install_trust(struct install *in);

/* The agent's tree root (INSTALL_DIR). */
const char *install_root(const struct install *in);

/* The updater's tree root (INSTALL_DIR/updater). */
const char *install_self_root(const struct install *in);

/*
 * Start receiving the tarball of PLAN (update or self; the lock is held):
 * the signature check (ERR_SIGNATURE, ERR_UNKNOWN_KEY, ERR_STATEMENT,
 * ERR_EXPIRED, ERR_FLOOR, ERR_KEYRING: see updater/trust.h), free-space
 * check, journal (staging), extractor. PLAN is borrowed until
 * install_finish/install_abort. Returns 0 with *OUT, or -1 with E (the
 * refusal is in the history and nothing changed).
 */
int install_begin(struct install *in, const struct install_plan *plan,
    struct install_txn **out, struct err *e) WUR;

/*
 * The next LEN bytes of the tarball. -1 once the extraction stopped (E says
 * why): stop feeding and call install_finish() for the outcome.
 */
int install_feed(struct install_txn *t, const void *data, size_t len, struct err *e) WUR;

/*
 * The last byte arrived: run everything after it (see the top) and free T.
 * OC is filled in every case and says everything (the return value is a
 * shortcut): 0 for updated and queued, -1 otherwise.
 */
int install_finish(struct install_txn *t, struct install_outcome *oc);

/* The request ended without a body end (client gone, bad form): undo T, free it. */
void install_abort(struct install_txn *t);

/*
 * Install the tarball at PATH as the first release (takes the lock). No
 * digest is compared (the operator handed us the file); the same rules and
 * transaction as an update otherwise. 0 when it runs and passed its probe.
 */
int install_seed(struct install *in, const char *path, struct install_outcome *oc) WUR;

/*
 * Roll back to the previous release (the lock is held, PLAN->id set):
 * exchange active and prev, start, probe; restore when it fails. 0 when
 * rolled back. Refused (ERR_CONFLICT, nothing changed) when prev is the
 * same release (sha256) as the active one: that would change nothing.
 */
int install_rollback(struct install *in, const struct install_plan *plan,
    struct install_outcome *oc);

/*
 * The answer of a queued self-update went out (crash point self.responded):
 * this updater now leaves, keeping the operation lock until it exits.
 */
void install_self_answered(struct install *in);

/* ---- the self-update's other half, run by tandem-launcher ---- */

/*
 * The state of the updater's tree TREE before the launcher starts an
 * updater. Returns 1 when a queued self-update waits for its probation (*H
 * filled). Otherwise 0: an interrupted self-update (journal or handover
 * record without the other) has been finished or undone (store_recover) and
 * recorded (committed / undone) in TREE and in HISTORY_ROOT's history.
 */
int install_self_pending(struct store *tree, const char *history_root, struct handover *h);

/* The new updater passed its probation: commit the switch, clear and record. */
void install_self_commit(struct store *tree, const char *history_root, const struct handover *h);

/*
 * The new updater failed its probation (REASON): restore the previous
 * updater (the new one is quarantined), clear and record. The new updater
 * must be stopped already.
 */
void install_self_revert(struct store *tree, const char *history_root, const struct handover *h,
    const char *reason);

/*
 * Read DIR/manifest.json of an updater release: VERSION and its
 * updater_entrypoint (ENTRY), an executable file inside DIR. 0 or -1 with
 * E (ERR_FORMAT).
 */
int install_self_entrypoint(const char *dir, char *entry, size_t entrylen, char *version,
    size_t versionlen, struct err *e) WUR;

#endif
