/*
 * store — the releases directory and its transactions (wiki/Updater.md "On
 * disk" and "Crash safety").
 *
 *   ROOT/current -> releases/active   symlink, never rewritten while active exists
 *   ROOT/releases/active/             running release (release.json inside)
 *   ROOT/releases/prev/               last release that passed its probe
 *   ROOT/releases/active.new/         staging, only during an install
 *   ROOT/releases/prev.old/           the former prev, only while a new release
 *                                     is on probation (restored if it fails)
 *   ROOT/releases/failed/<id>/        bounded quarantine of releases that failed
 *   ROOT/state/                       journal, history (updater/journal.h)
 *
 * Promotion never copies: directories are renamed, and the switch of the
 * running release is one renameat2(RENAME_EXCHANGE) of active.new and active,
 * so `current` always resolves to a complete release. Every rename is
 * followed by an fsync of the directory; the journal records the operation
 * (with the release ids involved) before the first change and at every
 * phase, so store_recover() can tell where every release is and finish
 * (after the probe passed) or undo (before) an interrupted operation.
 *
 * Release identity is the install id in release.json ("id"), unique per
 * install even when the same tarball is pushed twice. After every durable
 * step a named crash point is reached (common/testhook: "update.exchanged",
 * ...); the install engine scopes the points of the updater's own tree as
 * "self.<point>".
 */
#ifndef TANDEM_UPDATER_STORE_H
#define TANDEM_UPDATER_STORE_H

#include <limits.h>
#include <stddef.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/release.h"
#include "common/util.h"
#include "updater/journal.h"

/* Relative to ROOT: extraction needs a relative path (updater/extract.h). */
#define STORE_STAGING_REL "releases/active.new"
#define STORE_DEFAULT_FAILED_KEEP 3

struct store {
	char root[PATH_MAX];     /* absolute */
	unsigned failed_keep;    /* quarantined releases kept */
};

/* A slot's release.json is a struct release_info of common/release. */
_Static_assert(RELEASE_ID_SIZE == JOURNAL_ID_LEN, "a release id is an operation id");

/*
 * Use ROOT (absolute path, created 0755 if missing) with its releases/,
 * releases/failed/ and state/ (0700) directories. Does not recover.
 */
int store_init(struct store *s, const char *root, unsigned failed_keep, struct err *e) WUR;

/*
 * Read SLOT's release.json ("active", "prev", "active.new", ...).
 * Returns 1 (found), 0 (no such slot directory), -1 (slot exists but its
 * record is missing or invalid: ERR says why).
 */
int store_release_read(const struct store *s, const char *slot, struct release_info *ri,
    struct err *e) WUR;

/* Write RI as SLOT/release.json atomically. 0 or -1 with E (ERR_NOSPACE on a full disk). */
int store_release_write(const struct store *s, const char *slot, const struct release_info *ri,
    struct err *e) WUR;

/*
 * Finish or undo an interrupted operation (per the journal), remove any
 * staging left behind, make `current` point at releases/active when it
 * exists. WHAT receives a one-line summary ("" when there was nothing to
 * do). On return 0 at most one complete release is active, prev (if any)
 * passed its probe, and no journal, staging or prev.old remains.
 */
int store_recover(struct store *s, char *what, size_t whatlen, struct err *e) WUR;

/* ---- update: begin -> (extract into STORE_STAGING_REL) -> switch -> commit | restore ---- */

/*
 * Start an update: OP->id is the operation id to use ("" for a fresh one,
 * so callers can announce the id before the journal exists); OP is filled
 * (id, old slot ids, SHA256, CALLER) and journaled
 * in phase STAGING. The staging directory must then be created by the
 * extractor. Fails with ERR_BUSY if a journal exists (recover first).
 */
int store_update_begin(struct store *s, struct journal_op *op, const char *sha256,
    const char *caller, struct err *e) WUR;

/* Staging failed or was refused: remove it, clear the journal. */
int store_update_abort(struct store *s, const struct journal_op *op, struct err *e)
    WUR;

/*
 * Make the staged release active: sync it to disk, journal SWITCHING,
 * prev -> prev.old, exchange active.new and active, old active -> prev (on a
 * first install: active.new -> active and `current` created).
 */
int store_update_switch(struct store *s, struct journal_op *op, struct err *e) WUR;

/* The new release passed its probe: journal COMMITTING, drop prev.old, clear. */
int store_update_commit(struct store *s, struct journal_op *op, struct err *e) WUR;

/*
 * The new release failed: journal RESTORING, put the old active and prev
 * back exactly, move the new release to the quarantine, clear the journal.
 */
int store_update_restore(struct store *s, struct journal_op *op, struct err *e) WUR;

/* ---- rollback: begin (exchange active and prev) -> commit | restore ---- */

/*
 * OP->id as for store_update_begin(). Fails with ERR_NOT_FOUND when there
 * is no prev (or no active). Journal SWITCHING, then exchange.
 */
int store_rollback_begin(struct store *s, struct journal_op *op, const char *caller,
    struct err *e) WUR;
int store_rollback_commit(struct store *s, struct journal_op *op, struct err *e) WUR;
/* The former prev failed its probe: exchange back, clear the journal. */
int store_rollback_restore(struct store *s, struct journal_op *op, struct err *e) WUR;

#endif
