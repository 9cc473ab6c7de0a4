/*
 * registry_db — the registry's handle for the registry's own modules
 * (master/registry.c, master/registry_rollout.c) and nothing else: every
 * other caller goes through master/registry.h.
 *
 * registry_db_lock() takes the handle's lock (calls on one handle are
 * serialised) and returns the SQLite connection; registry_db_unlock()
 * gives it back. Between the two, run only prepared statements with bound
 * parameters.
 */
#ifndef TANDEM_MASTER_REGISTRY_DB_H
#define TANDEM_MASTER_REGISTRY_DB_H

#include <sqlite3.h>

#include "common/err.h"
#include "master/registry.h"

sqlite3 *registry_db_lock(struct registry *reg);
void registry_db_unlock(struct registry *reg);

/* A failure of the database as ERR_IO (ERR_FORMAT for a corrupt file), naming WHAT. */
int registry_db_err(struct registry *reg, const char *what, struct err *e);

/* TEXT column COL of ST into DST (LEN bytes, cut, NUL-terminated). */
void registry_db_col(sqlite3_stmt *st, int col, char *dst, size_t len);

/*
 * BEGIN IMMEDIATE (the write lock, waiting up to the busy timeout), and its
 * end: COMMIT when OK, else ROLLBACK. Returns 0 or -1 with E.
 */
int registry_db_begin(struct registry *reg, struct err *e) WUR;
int registry_db_end(struct registry *reg, int ok, struct err *e) WUR;

#endif
