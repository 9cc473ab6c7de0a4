/*
 * selfupdate — POST /update-self: the updater replaces itself (issue 5,
 * wiki/Self-Update.md).
 *
 * The updater's own releases live in their own tree, INSTALL_DIR/updater/
 * (current, releases/active|prev|active.new|prev.old|failed, state/), kept
 * by the same store code as the agent's tree and never touched by /update.
 *
 * Pipeline (the /update one, minus the agent): stream the tarball through
 * SHA-256 into guarded extraction (updater/extract) under
 * updater/releases/active.new; digest check; the manifest must name
 * "updater_entrypoint"; preflight: that binary's --self-test with the
 * running configuration (422 on failure, nothing changes); confirm_self=true
 * required (400); then switch the tree durably (store_update_switch: the
 * journal stays in SWITCHING, prev.old is kept) and write the handover
 * record; answer 200 {"status":"self_update_queued",...}; exit (SIGTERM to
 * self once the response went out). The agent is left running in every case
 * (even with stop_agent_on_exit): the new updater adopts it.
 *
 * Self-update needs tandem-launcher (launcher/main.c): it owns the listening
 * socket (passed to every updater it starts as fd TANDEM_LISTEN_FD, so
 * connections made during the handover wait in the backlog), starts the
 * updater from the tree's `current`, and decides the probation: the new
 * updater must answer /health with its version and stay up for a stable
 * window before a deadline, within a number of starts kept in the handover
 * record; then the launcher commits (store_update_commit), else it reverts
 * (store_update_restore) and starts the previous updater. Both outcomes go
 * to the history and to state/last_self_update.json (shown in /health).
 */
#ifndef TANDEM_UPDATER_SELFUPDATE_H
#define TANDEM_UPDATER_SELFUPDATE_H

#include <stddef.h>

#include "cJSON.h"
#include "common/httpd.h"
#include "common/util.h"
#include "updater/api.h"
#include "updater/journal.h"

/* The updater's tree, relative to install_dir (extraction needs relative paths). */
#define SELFUPDATE_TREE "updater"
#define SELFUPDATE_STAGING_REL "updater/releases/active.new"
/* Set by the launcher in every updater it starts. */
#define SELFUPDATE_ENV_LISTEN_FD "TANDEM_LISTEN_FD"
#define SELFUPDATE_ENV_CONFIG "TANDEM_LAUNCHER_CONFIG"
/* Records under TREE/state/. */
#define SELFUPDATE_HANDOVER "handover.json"
#define SELFUPDATE_LAST "last_self_update.json"

/* Compile-time broken updater builds (make release RELEASE_UPDATER_KIND=...). */
#define SELFUPDATE_BROKEN_NONE 0
#define SELFUPDATE_BROKEN_EXIT_AT_ONCE 1 /* run mode exits with status 3 before serving */
#define SELFUPDATE_BROKEN_HANG 2         /* run mode blocks forever before serving */
#define SELFUPDATE_BROKEN_CRASH_LATER 3  /* serves, killed by SIGALRM after 3 s */
#define SELFUPDATE_CRASH_LATER_S 3

/*
 * The handover record (TREE/state/handover.json): the switched self-update
 * whose new updater is on probation. Written by the old updater right after
 * the switch, its counter rewritten (atomically) by the launcher before every
 * start of the new updater, removed on commit or revert.
 */
struct selfupdate_handover {
	char op_id[JOURNAL_ID_LEN];  /* the journal's operation id */
	char new_version[128];       /* the new updater must report it in /health */
	char old_version[128];       /* the updater that queued it */
	char sha256[65];
	long long starts;            /* starts of the new updater so far */
	long long queued_at;         /* wall clock, seconds */
};

/* Write H as TREE_ROOT/state/handover.json (atomic, durable). 0 or -1 (errno). */
int selfupdate_handover_write(const char *tree_root, const struct selfupdate_handover *h) WUR;

/* 1 with *H filled, 0 when there is none, -1 when unreadable (ERR). */
int selfupdate_handover_read(const char *tree_root, struct selfupdate_handover *h, char *err,
    size_t errlen) WUR;

/* Remove the handover record durably (absent is fine). 0 or -1 (errno). */
int selfupdate_handover_clear(const char *tree_root) WUR;

/*
 * Record the outcome of a self-update: TREE_ROOT/state/last_self_update.json
 * {"id","result","from_version","to_version","reason","at"} (atomic) and one
 * history line {"kind":"update-self",...} in HISTORY_ROOT's history.
 * RESULT: "committed", "reverted", "undone". REASON may be "".
 */
int selfupdate_record(const char *tree_root, const char *history_root, const char *id,
    const char *result, const char *from_version, const char *to_version, const char *sha256,
    const char *reason) WUR;

/*
 * Read DIR/manifest.json of an updater release: VERSION and the
 * updater_entrypoint (ENTRY), which must be an executable file inside DIR.
 * Returns 0, or -1 with ERR (no manifest, not an updater release, ...).
 */
int selfupdate_read_entrypoint(const char *dir, char *entry, size_t entrylen, char *version,
    size_t versionlen, char *err, size_t errlen) WUR;

/*
 * The listening socket the launcher passed (SELFUPDATE_ENV_LISTEN_FD): the
 * descriptor if the variable names an open listening socket, -1 when it is
 * unset; -1 with a warning when it is set but unusable.
 */
int selfupdate_listen_fd(void);

/*
 * Broken test builds only (TANDEM_UPDATER_BROKEN != 0): misbehave as the
 * kind says. Call at the start of the updater's run mode. A no-op in every
 * normal build.
 */
void selfupdate_test_kind(void);

/* What the daemon lends the self-update (its operation lock, its phase display). */
struct selfupdate_hooks {
	/* Take the operation lock or answer 503 (then return -1); ID gets the op id. */
	int (*lock)(void *arg, struct httpd_req *r, const char *kind, char id[JOURNAL_ID_LEN]);
	void (*unlock)(void *arg);
	void (*set_phase)(void *arg, const char *phase);
	void *arg;
};

struct selfupdate;

/*
 * Set up the self-update for CFG (borrowed): the tree INSTALL_DIR/updater
 * (created if missing; never recovered here: the launcher owns it).
 */
int selfupdate_new(const struct updater_config *cfg, const struct selfupdate_hooks *hooks,
    struct selfupdate **out, char *err, size_t errlen) WUR;

void selfupdate_free(struct selfupdate *su);

/* Fill RT with the POST /update-self route (master only). */
void selfupdate_route(struct selfupdate *su, struct httpd_route *rt);

/* 1 once a self-update was queued: the process is handing over (keep the agent). */
int selfupdate_handing_over(const struct selfupdate *su);

/*
 * Add "updater": {"version","release":Release|null,"probation":{...}|null,
 * "last_self_update":{...}|null} to OBJ (the /health answer). 0 or -1.
 */
int selfupdate_health_json(struct selfupdate *su, cJSON *obj) WUR;

#endif
