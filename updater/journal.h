/*
 * journal — the updater's durable records under ROOT/state/:
 *
 *   state/journal.json   the operation in progress (at most one), written
 *                        atomically BEFORE the releases directory is touched
 *                        and at every phase change; removed (and the
 *                        directory fsynced) when the operation is over.
 *   state/history.jsonl  append-only log of finished operations, one compact
 *                        JSON object per line, fsynced per append; bounded:
 *                        past JOURNAL_HISTORY_MAX_BYTES the oldest lines are
 *                        dropped (atomic rewrite keeping the newest half).
 *
 * Recovery logic lives in store.c; this module only reads and writes.
 */
#ifndef TANDEM_UPDATER_JOURNAL_H
#define TANDEM_UPDATER_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/util.h"

#define JOURNAL_ID_LEN 40
#define JOURNAL_REQUEST_ID_LEN 37 /* a client's request id and its NUL */
#define JOURNAL_HISTORY_MAX_BYTES (256 * 1024)

enum journal_kind {
	JOURNAL_UPDATE = 1,
	JOURNAL_ROLLBACK = 2,
};

/*
 * Phases. UPDATE: STAGING (only releases/active.new may exist besides the
 * old slots) -> SWITCHING (renames under way or done, new release being
 * probed) -> COMMITTING (probe passed: finish the cleanup) or RESTORING
 * (probe failed: put the old release back). ROLLBACK: SWITCHING ->
 * COMMITTING or RESTORING.
 */
enum journal_phase {
	JOURNAL_STAGING = 1,
	JOURNAL_SWITCHING = 2,
	JOURNAL_COMMITTING = 3,
	JOURNAL_RESTORING = 4,
};

/* The operation record. Release ids are the install ids in release.json. */
struct journal_op {
	char id[JOURNAL_ID_LEN];          /* operation id, also the new release's id */
	enum journal_kind kind;
	enum journal_phase phase;
	char new_id[JOURNAL_ID_LEN];      /* update: the release being installed */
	char old_active_id[JOURNAL_ID_LEN]; /* "" when there was none (first install) */
	char old_prev_id[JOURNAL_ID_LEN];   /* "" when there was none */
	char sha256[65];                  /* update: digest of the tarball */
	char caller[65];                  /* caller's certificate fingerprint */
	long long started;                /* wall clock, seconds */
	char request_id[JOURNAL_REQUEST_ID_LEN]; /* the client's name for it, "" when none */
	/*
	 * update: a forced reinstall of the active release; the commit puts
	 * the old prev back (prev.old -> prev) instead of keeping the replaced
	 * copy as prev.
	 */
	int keep_prev;
};

const char *journal_kind_name(enum journal_kind k);
const char *journal_phase_name(enum journal_phase p);

/* A fresh, sortable operation id: "YYYYMMDDTHHMMSSZ-" + 8 random hex. 0 or -1 with E. */
int journal_new_id(char out[JOURNAL_ID_LEN], struct err *e) WUR;

/* Write OP as ROOT/state/journal.json (atomic, durable). 0 or -1 with E. */
int journal_write(const char *root, const struct journal_op *op, struct err *e) WUR;

/*
 * Read ROOT/state/journal.json. Returns 1 with *OP filled, 0 when there is
 * none, -1 when it exists but cannot be read or parsed (E says why).
 */
int journal_read(const char *root, struct journal_op *op, struct err *e) WUR;

/* Remove the journal durably (absent is fine). 0 or -1 with E. */
int journal_clear(const char *root, struct err *e) WUR;

/*
 * Append ENTRY (a JSON object, not consumed) as one line to the history,
 * trimming it when it grew past MAX_BYTES (0: JOURNAL_HISTORY_MAX_BYTES).
 * 0 or -1 with E.
 */
int journal_history_append(const char *root, const cJSON *entry, size_t max_bytes,
    struct err *e) WUR;

/*
 * The history as a JSON array, oldest first (caller frees). Lines that do
 * not parse (a torn last line after a crash) are skipped. NULL on error.
 */
cJSON *journal_history_read(const char *root) WUR;

#endif
