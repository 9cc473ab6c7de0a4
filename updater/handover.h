/*
 * handover — the records a self-update leaves in the updater's own tree
 * (INSTALL_DIR/updater/state/) for the launcher and for /health:
 *
 *   handover.json          the switched self-update whose new updater is on
 *                          probation: written by the old updater right after
 *                          the switch (install.c), its start counter
 *                          rewritten by the launcher before every start of
 *                          the new updater, removed on commit or revert;
 *   last_self_update.json  the outcome of the last self-update (committed,
 *                          reverted, undone), shown in /health; each outcome
 *                          also goes to the history as {"kind":"update-self"}.
 *
 * Every write is atomic and durable (common/fs).
 */
#ifndef TANDEM_UPDATER_HANDOVER_H
#define TANDEM_UPDATER_HANDOVER_H

#include <stddef.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/util.h"
#include "updater/journal.h"

#define HANDOVER_FILE "handover.json"
#define HANDOVER_LAST_FILE "last_self_update.json"

struct handover {
	char op_id[JOURNAL_ID_LEN];  /* the journal's operation id */
	char new_version[128];       /* the new updater must report it in /health */
	char old_version[128];       /* the updater that queued it */
	char sha256[65];
	long long starts;            /* starts of the new updater so far */
	long long queued_at;         /* wall clock, seconds */
};

/* Write H as TREE_ROOT/state/handover.json. 0 or -1 with E. */
int handover_write(const char *tree_root, const struct handover *h, struct err *e) WUR;

/* 1 with *H filled, 0 when there is none, -1 when unreadable (E). */
int handover_read(const char *tree_root, struct handover *h, struct err *e) WUR;

/* Remove the handover record durably (absent is fine). 0 or -1 with E. */
int handover_clear(const char *tree_root, struct err *e) WUR;

/*
 * Record the outcome of a self-update: TREE_ROOT/state/last_self_update.json
 * {"id","result","from_version","to_version","reason","at"} and one history
 * line {"kind":"update-self",...} in HISTORY_ROOT's history, with
 * "request_id" when REQUEST_ID is not "" (the id the master sent the
 * self-update with, so a master whose answer was lost finds the outcome).
 * RESULT: "committed", "reverted", "undone". REASON may be "". 0 or -1 with E.
 */
int handover_record(const char *tree_root, const char *history_root, const char *id,
    const char *request_id, const char *result, const char *from_version,
    const char *to_version, const char *sha256, const char *reason, struct err *e) WUR;

/* TREE_ROOT/state/last_self_update.json as JSON, or NULL when there is none. */
cJSON *handover_last(const char *tree_root) WUR;

#endif
