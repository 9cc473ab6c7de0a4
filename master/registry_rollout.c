#include "master/registry_rollout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "common/json.h"
#include "master/registry_db.h"
#include "master/selector.h"

static const char *const ro_state_names[RO_STATE_COUNT] = {
	[RO_PLANNED] = "planned",
	[RO_RUNNING] = "running",
	[RO_WAITING_WINDOW] = "waiting_window",
	[RO_PAUSED] = "paused",
	[RO_HALTED] = "halted",
	[RO_REVERTING] = "reverting",
	[RO_DONE] = "done",
	[RO_ABORTED] = "aborted",
};

static const char *const rh_state_names[RH_STATE_COUNT] = {
	[RH_PENDING] = "pending",
	[RH_DISPATCHED] = "dispatched",
	[RH_UPDATED] = "updated",
	[RH_ALREADY_ACTIVE] = "already_active",
	[RH_ROLLED_BACK] = "rolled_back",
	[RH_FAILED] = "failed",
	[RH_SOAK_FAILED] = "soak_failed",
	[RH_SKIPPED] = "skipped",
	[RH_REVERTING] = "reverting",
	[RH_REVERTED] = "reverted",
	[RH_REVERT_FAILED] = "revert_failed",
	[RH_REVERT_SKIPPED] = "revert_skipped",
};

const char *
registry_rollout_state_name(enum reg_rollout_state s)
{
	return (unsigned)s < RO_STATE_COUNT ? ro_state_names[s] : "unknown";
}

int
registry_rollout_state_parse(const char *name, enum reg_rollout_state *out)
{
	for (int i = 0; i < RO_STATE_COUNT; i++) {
		if (strcmp(name, ro_state_names[i]) == 0) {
			*out = (enum reg_rollout_state)i;
			return 0;
		}
	}
	return -1;
}

const char *
registry_rh_state_name(enum reg_rh_state s)
{
	return (unsigned)s < RH_STATE_COUNT ? rh_state_names[s] : "unknown";
}

int
registry_rh_state_parse(const char *name, enum reg_rh_state *out)
{
	for (int i = 0; i < RH_STATE_COUNT; i++) {
		if (strcmp(name, rh_state_names[i]) == 0) {
			*out = (enum reg_rh_state)i;
			return 0;
		}
	}
	return -1;
}

int
registry_rh_is_failure(enum reg_rh_state s)
{
	return s == RH_ROLLED_BACK || s == RH_FAILED || s == RH_SOAK_FAILED;
}

/* ---- small statement helpers (lock held) ---- */

static int
bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	return s != NULL && *s != '\0' ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT)
				       : sqlite3_bind_null(st, i);
}

/* Insert an event; HOST_ID < 0 for none. */
static int
event_insert(struct registry *reg, sqlite3 *db, const char *id, sqlite3_int64 host_id,
    const char *kind, const char *data, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "INSERT INTO rollout_events (rollout_id, host_id, at, kind,"
	    " data_json) VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    (host_id >= 0 ? sqlite3_bind_int64(st, 2, host_id) : sqlite3_bind_null(st, 2)) !=
	    SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, kind, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, data != NULL ? data : "{}", -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "recording an event", e);
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

/* Inside a transaction: is the lease of ID held by OWNER? */
static int
lease_is(struct registry *reg, sqlite3 *db, const char *id, const char *owner, struct err *e)
{
	sqlite3_stmt *st = NULL;
	char holder[REG_ROLLOUT_OWNER_MAX + 1] = "";
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT lease_owner FROM rollouts WHERE id = ?", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		(void)registry_db_err(reg, "reading the lease", e);
		goto out;
	}
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		registry_db_col(st, 0, holder, sizeof(holder));
		if (strcmp(holder, owner) == 0) {
			rc = 0;
		} else {
			err_set(e, ERR_CONFLICT, "rollout %s: the lease was lost to %s", id,
			    holder[0] != '\0' ? holder : "nobody");
		}
		break;
	case SQLITE_DONE:
		err_set(e, ERR_NOT_FOUND, "no rollout %s", id);
		break;
	default:
		(void)registry_db_err(reg, "reading the lease", e);
		break;
	}
out:
	sqlite3_finalize(st);
	return rc;
}

/* ---- creation ---- */

/*
 * Is HOST_ID held by an unfinished rollout? Fills ERR_CONFLICT naming it.
 * With TAKE_OVER, a hold of a paused or halted rollout that no driver holds
 * passes to rollout NEW_ID: the host leaves the old rollout (skipped there if
 * it was still pending), which says so in an event.
 */
static int
check_not_held(struct registry *reg, sqlite3 *db, sqlite3_int64 host_id, const char *name,
    int take_over, const char *new_id, struct err *e)
{
	sqlite3_stmt *st = NULL;
	char other[ROLLOUT_ID_LEN + 1], state[32], data[128];
	sqlite3_int64 lease_until = 0;
	int rc = -1, leased;

	if (sqlite3_prepare_v2(db, "SELECT r.id, r.state, r.lease_owner IS NOT NULL,"
	    " coalesce(r.lease_until, 0) FROM rollout_hosts rh JOIN rollouts r"
	    " ON r.id = rh.rollout_id WHERE rh.host_id = ? AND rh.held = 1", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, host_id) != SQLITE_OK) {
		(void)registry_db_err(reg, "checking held hosts", e);
		goto out;
	}
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		registry_db_col(st, 0, other, sizeof(other));
		registry_db_col(st, 1, state, sizeof(state));
		leased = sqlite3_column_int(st, 2) != 0;
		lease_until = sqlite3_column_int64(st, 3);
		if (take_over && (strcmp(state, "paused") == 0 || strcmp(state, "halted") == 0) &&
		    (!leased || lease_until < (sqlite3_int64)time(NULL))) {
			break;
		}
		err_set(e, ERR_CONFLICT, "%s is held by rollout %s (%s): resume or abort it first "
		    "('tandem swarm rollout status %s')", name, other, state, other);
		goto out;
	case SQLITE_DONE:
		rc = 0;
		goto out;
	default:
		(void)registry_db_err(reg, "checking held hosts", e);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "UPDATE rollout_hosts SET held = 0, state = CASE WHEN state"
	    " IN ('pending', 'dispatched') THEN 'skipped' ELSE state END, reason = CASE WHEN state"
	    " IN ('pending', 'dispatched') THEN ? ELSE reason END WHERE rollout_id = ? AND"
	    " host_id = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, "taken over by a newer rollout", -1, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(st, 2, other, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, host_id) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "taking a host over", e);
		goto out;
	}
	snprintf(data, sizeof(data), "{\"taken_over_by\":\"%s\"}", new_id);
	rc = event_insert(reg, db, other, host_id, "taken_over", data, e);
out:
	sqlite3_finalize(st);
	return rc;
}

int
registry_rollout_create(struct registry *reg, const struct reg_rollout *r,
    const struct rollout_spec *spec, const struct selector *sel,
    int (*want)(void *arg, const char *host), void *want_arg, int take_over, int *n_hosts,
    int *n_waves, struct err *e)
{
	struct selector_label labels[REG_LABELS_MAX];
	sqlite3_stmt *st = NULL, *lst = NULL, *ins = NULL;
	size_t ends[ROLLOUT_MAX_PLAN_WAVES], nw, n = 0, nl, prev = 0;
	char key[65], name[REG_NAME_MAX + 1];
	sqlite3 *db = registry_db_lock(reg);
	time_t now = time(NULL);
	int rc = -1, step, began = 0;

	if (registry_db_begin(reg, e) != 0) {
		goto out;
	}
	began = 1;
	if (sqlite3_prepare_v2(db, "INSERT INTO rollouts (id, name, kind, spec_json, release_sha256,"
	    " state, state_reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", -1,
	    &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, r->name, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, r->kind, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 4, r->spec_json, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, r->release_sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 6, registry_rollout_state_name(r->state), -1,
	    SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 7, r->reason, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 8, (sqlite3_int64)now) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 9, (sqlite3_int64)now) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "creating the rollout", e);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* Every selected host in service, with its order key; held hosts refuse the whole plan. */
	if (sqlite3_prepare_v2(db, "SELECT id, name FROM hosts WHERE decommissioned_at IS NULL"
	    " ORDER BY id", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT key, value FROM host_labels WHERE host_id = ?"
	    " ORDER BY key", -1, &lst, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO rollout_hosts (rollout_id, host_id, order_key)"
	    " VALUES (?, ?, ?)", -1, &ins, NULL) != SQLITE_OK) {
		(void)registry_db_err(reg, "planning the rollout", e);
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		sqlite3_int64 hid = sqlite3_column_int64(st, 0);
		int lstep;

		registry_db_col(st, 1, name, sizeof(name));
		nl = 0;
		if (sel->kind == SELECTOR_LABELS) {
			if (sqlite3_reset(lst) != SQLITE_OK || sqlite3_bind_int64(lst, 1, hid) !=
			    SQLITE_OK) {
				(void)registry_db_err(reg, "reading labels", e);
				goto out;
			}
			while ((lstep = sqlite3_step(lst)) == SQLITE_ROW) {
				if (nl < REG_LABELS_MAX) {
					registry_db_col(lst, 0, labels[nl].key, sizeof(labels[nl].key));
					registry_db_col(lst, 1, labels[nl].value,
					    sizeof(labels[nl].value));
					nl++;
				}
			}
			if (lstep != SQLITE_DONE) {
				(void)registry_db_err(reg, "reading labels", e);
				goto out;
			}
		}
		if (!selector_match(sel, name, labels, nl) || (want != NULL && !want(want_arg, name))) {
			continue;
		}
		if (check_not_held(reg, db, hid, name, take_over, r->id, e) != 0) {
			goto out;
		}
		rollout_order_key(r->id, name, key);
		if (sqlite3_reset(ins) != SQLITE_OK ||
		    sqlite3_bind_text(ins, 1, r->id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_int64(ins, 2, hid) != SQLITE_OK ||
		    sqlite3_bind_text(ins, 3, key, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_step(ins) != SQLITE_DONE) {
			(void)registry_db_err(reg, "planning the rollout", e);
			goto out;
		}
		n++;
	}
	if (step != SQLITE_DONE) {
		(void)registry_db_err(reg, "planning the rollout", e);
		goto out;
	}
	if (sel->kind == SELECTOR_NAMES && want == NULL && n != sel->n) {
		err_set(e, ERR_NOT_FOUND, "a named host is not enrolled or not in service");
		goto out;
	}
	if (n == 0) {
		err_set(e, ERR_NOT_FOUND, sel->kind == SELECTOR_LABELS
		    ? "no host in service matches the selector" : "no host in service is enrolled");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* The order: by key; then the waves as cumulative seq ranges. */
	if (sqlite3_prepare_v2(db, "UPDATE rollout_hosts SET seq = o.n FROM (SELECT host_id,"
	    " row_number() OVER (ORDER BY order_key) AS n FROM rollout_hosts WHERE rollout_id = ?)"
	    " AS o WHERE rollout_hosts.rollout_id = ? AND rollout_hosts.host_id = o.host_id", -1,
	    &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, r->id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "ordering the rollout", e);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	nw = rollout_plan_waves(spec, n, ends);
	if (sqlite3_prepare_v2(db, "UPDATE rollout_hosts SET wave = ? WHERE rollout_id = ?"
	    " AND seq > ? AND seq <= ?", -1, &st, NULL) != SQLITE_OK) {
		(void)registry_db_err(reg, "cutting waves", e);
		goto out;
	}
	for (size_t w = 0; w < nw; w++) {
		if (sqlite3_reset(st) != SQLITE_OK ||
		    sqlite3_bind_int(st, 1, (int)w) != SQLITE_OK ||
		    sqlite3_bind_text(st, 2, r->id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 3, (sqlite3_int64)prev) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 4, (sqlite3_int64)ends[w]) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_DONE) {
			(void)registry_db_err(reg, "cutting waves", e);
			goto out;
		}
		prev = ends[w];
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(db, "UPDATE rollouts SET n_hosts = ?, n_waves = ? WHERE id = ?", -1,
	    &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, (sqlite3_int64)n) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)nw) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, r->id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "creating the rollout", e);
		goto out;
	}
	{
		char data[128];
		snprintf(data, sizeof(data), "{\"hosts\":%zu,\"waves\":%zu,\"state\":\"%s\"}", n, nw,
		    registry_rollout_state_name(r->state));
		if (event_insert(reg, db, r->id, -1, "created", data, e) != 0) {
			goto out;
		}
	}
	rc = 0;
	*n_hosts = (int)n;
	*n_waves = (int)nw;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(lst);
	sqlite3_finalize(ins);
	if (began && registry_db_end(reg, rc == 0, e) != 0) {
		rc = -1;
	}
	registry_db_unlock(reg);
	return rc;
}

/* ---- reading rollouts ---- */

#define RO_COLUMNS "r.id, r.name, r.kind, r.spec_json, r.release_sha256, r.state," \
	" r.state_reason, r.n_hosts, r.n_waves, r.current_wave, r.gate_until, r.ack_attempted," \
	" r.ack_failed, r.request, r.lease_owner, r.lease_until, r.created_at, r.updated_at," \
	" r.finished_at, rel.label"
#define RO_FROM " FROM rollouts r JOIN releases rel ON rel.sha256 = r.release_sha256"

static void
row_to_rollout(sqlite3_stmt *st, struct reg_rollout *r)
{
	char state[32];

	memset(r, 0, sizeof(*r));
	registry_db_col(st, 0, r->id, sizeof(r->id));
	registry_db_col(st, 1, r->name, sizeof(r->name));
	registry_db_col(st, 2, r->kind, sizeof(r->kind));
	registry_db_col(st, 3, r->spec_json, sizeof(r->spec_json));
	registry_db_col(st, 4, r->release_sha256, sizeof(r->release_sha256));
	registry_db_col(st, 5, state, sizeof(state));
	if (registry_rollout_state_parse(state, &r->state) != 0) {
		r->state = RO_PAUSED; /* the CHECK constraint makes this unreachable */
	}
	registry_db_col(st, 6, r->reason, sizeof(r->reason));
	r->n_hosts = sqlite3_column_int(st, 7);
	r->n_waves = sqlite3_column_int(st, 8);
	r->current_wave = sqlite3_column_int(st, 9);
	r->gate_until = (time_t)sqlite3_column_int64(st, 10);
	r->ack_attempted = sqlite3_column_int(st, 11);
	r->ack_failed = sqlite3_column_int(st, 12);
	registry_db_col(st, 13, r->request, sizeof(r->request));
	registry_db_col(st, 14, r->lease_owner, sizeof(r->lease_owner));
	r->lease_until = (time_t)sqlite3_column_int64(st, 15);
	r->created_at = (time_t)sqlite3_column_int64(st, 16);
	r->updated_at = (time_t)sqlite3_column_int64(st, 17);
	r->finished_at = (time_t)sqlite3_column_int64(st, 18);
	registry_db_col(st, 19, r->release_label, sizeof(r->release_label));
}

/* Lock held. */
static int
get_locked(struct registry *reg, sqlite3 *db, const char *id, struct reg_rollout *out,
    struct err *e)
{
	sqlite3_stmt *st = NULL;
	char pattern[ROLLOUT_ID_LEN + 2];
	size_t len = strlen(id);
	int rc = -1, step, found = 0;

	if (len < 4 || len > ROLLOUT_ID_LEN || !is_hex_len(id, len)) {
		return err_set(e, ERR_USAGE, "'%.40s' is not a rollout id (%d hex digits, or a "
		    "unique prefix of at least 4)", id, ROLLOUT_ID_LEN);
	}
	for (size_t i = 0; i <= len; i++) {
		pattern[i] = (char)(id[i] >= 'A' && id[i] <= 'F' ? id[i] - 'A' + 'a' : id[i]);
	}
	pattern[len] = '*';
	pattern[len + 1] = '\0';
	if (sqlite3_prepare_v2(db, "SELECT " RO_COLUMNS RO_FROM " WHERE r.id GLOB ? LIMIT 2", -1,
	    &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, pattern, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		(void)registry_db_err(reg, "reading a rollout", e);
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (found++ > 0) {
			err_set(e, ERR_USAGE, "rollout id prefix '%s' is ambiguous: give more digits", id);
			goto out;
		}
		row_to_rollout(st, out);
	}
	if (step != SQLITE_DONE) {
		(void)registry_db_err(reg, "reading a rollout", e);
		goto out;
	}
	if (found == 0) {
		err_set(e, ERR_NOT_FOUND, "no rollout %s in the registry ('tandem swarm rollout list')",
		    id);
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

int
registry_rollout_get(struct registry *reg, const char *id, struct reg_rollout *out,
    struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	int rc = get_locked(reg, db, id, out, e);

	registry_db_unlock(reg);
	return rc;
}

int
registry_rollout_list(struct registry *reg, struct reg_rollout *out, size_t limit, size_t *n,
    struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	size_t count = 0;
	int rc = -1, step = SQLITE_DONE;

	if (sqlite3_prepare_v2(db, "SELECT " RO_COLUMNS RO_FROM
	    " ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, (sqlite3_int64)limit) != SQLITE_OK) {
		(void)registry_db_err(reg, "listing rollouts", e);
		goto out;
	}
	while (count < limit && (step = sqlite3_step(st)) == SQLITE_ROW) {
		row_to_rollout(st, &out[count++]);
	}
	if (step != SQLITE_DONE && step != SQLITE_ROW) {
		(void)registry_db_err(reg, "listing rollouts", e);
		goto out;
	}
	*n = count;
	rc = 0;
out:
	sqlite3_finalize(st);
	registry_db_unlock(reg);
	return rc;
}

/* ---- the lease ---- */

int
registry_rollout_lease(struct registry *reg, const char *id, const char *owner, time_t now,
    int lease_s, int (*owner_gone)(const char *holder), struct reg_rollout *out, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	struct reg_rollout r;
	int rc = -1, began = 0;

	if (registry_db_begin(reg, e) != 0) {
		goto out;
	}
	began = 1;
	if (get_locked(reg, db, id, &r, e) != 0) {
		goto out;
	}
	if (r.lease_owner[0] != '\0' && strcmp(r.lease_owner, owner) != 0 && r.lease_until > now &&
	    (owner_gone == NULL || !owner_gone(r.lease_owner))) {
		char until[32];
		iso8601_utc(r.lease_until, until, sizeof(until));
		err_set(e, ERR_CONFLICT, "rollout %s is driven by %s (lease until %s)", r.id,
		    r.lease_owner, until);
		goto out;
	}
	if (sqlite3_prepare_v2(db, "UPDATE rollouts SET lease_owner = ?, lease_until = ? WHERE id = ?",
	    -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, owner, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)(now + lease_s)) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, r.id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "taking the lease", e);
		goto out;
	}
	if (strcmp(r.lease_owner, owner) != 0) {
		char data[REG_ROLLOUT_OWNER_MAX * 2 + 64];
		snprintf(data, sizeof(data), "{\"owner\":\"%s\",\"previous\":\"%s\"}", owner,
		    r.lease_owner);
		if (event_insert(reg, db, r.id, -1, "lease", data, e) != 0) {
			goto out;
		}
	}
	snprintf(r.lease_owner, sizeof(r.lease_owner), "%s", owner);
	r.lease_until = now + lease_s;
	if (out != NULL) {
		*out = r;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	if (began && registry_db_end(reg, rc == 0, e) != 0) {
		rc = -1;
	}
	registry_db_unlock(reg);
	return rc;
}

int
registry_rollout_release(struct registry *reg, const char *id, const char *owner, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "UPDATE rollouts SET lease_owner = NULL, lease_until = NULL"
	    " WHERE id = ? AND lease_owner = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, owner, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "releasing the lease", e);
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	registry_db_unlock(reg);
	return rc;
}

/* ---- state changes ---- */

int
registry_rollout_set(struct registry *reg, const char *id, const char *owner,
    enum reg_rollout_state state, const char *reason, int wave, time_t gate_until, int finish,
    const char *kind, const char *data_json, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	time_t now = time(NULL);
	int rc = -1, began = 0;

	finish = finish || state == RO_DONE || state == RO_ABORTED;
	if (registry_db_begin(reg, e) != 0) {
		goto out;
	}
	began = 1;
	if (lease_is(reg, db, id, owner, e) != 0) {
		goto out;
	}
	if (sqlite3_prepare_v2(db, "UPDATE rollouts SET state = ?, state_reason = ?,"
	    " current_wave = CASE WHEN ? < 0 THEN current_wave ELSE ? END,"
	    " gate_until = CASE WHEN ? < 0 THEN gate_until WHEN ? = 0 THEN NULL ELSE ? END,"
	    " updated_at = ?, finished_at = CASE WHEN ? THEN ? ELSE finished_at END,"
	    " request = CASE WHEN ? THEN NULL ELSE request END WHERE id = ?", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, registry_rollout_state_name(state), -1, SQLITE_TRANSIENT) !=
	    SQLITE_OK ||
	    sqlite3_bind_text(st, 2, reason != NULL ? reason : "", -1, SQLITE_TRANSIENT) !=
	    SQLITE_OK ||
	    sqlite3_bind_int(st, 3, wave) != SQLITE_OK || sqlite3_bind_int(st, 4, wave) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, (sqlite3_int64)gate_until) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 6, (sqlite3_int64)gate_until) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 7, (sqlite3_int64)gate_until) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 8, (sqlite3_int64)now) != SQLITE_OK ||
	    sqlite3_bind_int(st, 9, finish) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 10, (sqlite3_int64)now) != SQLITE_OK ||
	    sqlite3_bind_int(st, 11, finish || state == RO_PAUSED || state == RO_HALTED) != SQLITE_OK ||
	    sqlite3_bind_text(st, 12, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "changing the rollout's state", e);
		goto out;
	}
	if (finish) {
		sqlite3_finalize(st);
		st = NULL;
		if (sqlite3_prepare_v2(db, "UPDATE rollout_hosts SET held = 0, state = CASE WHEN"
		    " state = 'pending' THEN 'skipped' ELSE state END WHERE rollout_id = ?", -1, &st,
		    NULL) != SQLITE_OK ||
		    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_DONE) {
			(void)registry_db_err(reg, "releasing the rollout's hosts", e);
			goto out;
		}
	}
	if (kind != NULL && event_insert(reg, db, id, -1, kind, data_json, e) != 0) {
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	if (began && registry_db_end(reg, rc == 0, e) != 0) {
		rc = -1;
	}
	registry_db_unlock(reg);
	return rc;
}

int
registry_rollout_ack(struct registry *reg, const char *id, const char *owner, int attempted,
    int failed, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	int rc = -1, began = 0;

	if (registry_db_begin(reg, e) != 0) {
		goto out;
	}
	began = 1;
	if (lease_is(reg, db, id, owner, e) != 0) {
		goto out;
	}
	if (sqlite3_prepare_v2(db, "UPDATE rollouts SET ack_attempted = ?, ack_failed = ?"
	    " WHERE id = ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int(st, 1, attempted) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, failed) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "recording the resume", e);
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	if (began && registry_db_end(reg, rc == 0, e) != 0) {
		rc = -1;
	}
	registry_db_unlock(reg);
	return rc;
}

int
registry_rollout_request(struct registry *reg, const char *id, const char *request,
    struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	int rc = -1, began = 0;

	if (registry_db_begin(reg, e) != 0) {
		goto out;
	}
	began = 1;
	if (sqlite3_prepare_v2(db, "UPDATE rollouts SET request = ?, updated_at = ? WHERE id = ?",
	    -1, &st, NULL) != SQLITE_OK ||
	    bind_text_or_null(st, 1, request) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL)) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE) {
		(void)registry_db_err(reg, "recording the request", e);
		goto out;
	}
	if (request != NULL) {
		char data[64];
		snprintf(data, sizeof(data), "{\"request\":\"%s\"}", request);
		if (event_insert(reg, db, id, -1, "request", data, e) != 0) {
			goto out;
		}
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	if (began && registry_db_end(reg, rc == 0, e) != 0) {
		rc = -1;
	}
	registry_db_unlock(reg);
	return rc;
}

int
registry_rollout_event(struct registry *reg, const char *id, const char *host, const char *kind,
    const char *data_json, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	sqlite3_int64 hid = -1;
	int rc = -1;

	if (host != NULL) {
		if (sqlite3_prepare_v2(db, "SELECT id FROM hosts WHERE name = ?", -1, &st, NULL) !=
		    SQLITE_OK ||
		    sqlite3_bind_text(st, 1, host, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_ROW) {
			(void)registry_db_err(reg, "recording an event", e);
			goto out;
		}
		hid = sqlite3_column_int64(st, 0);
	}
	rc = event_insert(reg, db, id, hid, kind, data_json, e);
out:
	sqlite3_finalize(st);
	registry_db_unlock(reg);
	return rc;
}

/* ---- hosts ---- */

/* A short JSON object for a host event (state, reason), escaped by cJSON's rules. */
static void
host_event_json(const struct reg_rollout_host *h, char *buf, size_t len)
{
	size_t o = 0;
	int n = snprintf(buf, len, "{\"state\":\"%s\",\"attempts\":%d,\"reason\":\"",
	    registry_rh_state_name(h->state), h->attempts);

	if (n < 0 || (size_t)n >= len) {
		snprintf(buf, len, "{}");
		return;
	}
	o = (size_t)n;
	for (const char *p = h->reason; *p != '\0' && o + 8 < len; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			buf[o++] = ' ';
		} else {
			buf[o++] = (char)c;
		}
	}
	/* Cut at a UTF-8 boundary so the JSON stays valid. */
	while (o > (size_t)n && ((unsigned char)buf[o - 1] & 0xc0) == 0x80) {
		o--;
	}
	if (o > (size_t)n && ((unsigned char)buf[o - 1] & 0x80) != 0) {
		o--;
	}
	snprintf(buf + o, len - o, "\"}");
}

/* One push log entry of host HOST_ID in rollout ID. */
static int
push_insert(struct registry *reg, sqlite3_stmt *pst, const char *id, sqlite3_int64 host_id,
    time_t at, const char *word, const char *reason, const char *detail, struct err *e)
{
	char text[REG_DETAIL_MAX + 300];
	struct reg_push p;

	snprintf(text, sizeof(text), "rollout %s: %s%s%.1100s", id, reason,
	    reason[0] != '\0' && detail[0] != '\0' ? ": " : "", detail);
	/* Cut at a UTF-8 boundary (worker text can be long). */
	registry_push_set_detail(&p, text);
	if (sqlite3_reset(pst) != SQLITE_OK ||
	    sqlite3_bind_int64(pst, 1, host_id) != SQLITE_OK ||
	    sqlite3_bind_int64(pst, 2, (sqlite3_int64)(at != 0 ? at : time(NULL))) != SQLITE_OK ||
	    sqlite3_bind_text(pst, 3, word, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(pst, 4, p.detail, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(pst, 5, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(pst) != SQLITE_DONE) {
		return registry_db_err(reg, "logging a push", e);
	}
	return 0;
}

/* The self-update's result word and reason/detail out of SELF_JSON (written by the driver). */
static void
self_fields(const char *self_json, char *word, size_t wlen, char *reason, size_t rlen,
    char *detail, size_t dlen)
{
	struct err pe = ERR_INIT;
	cJSON *t = json_parse_object(self_json, strlen(self_json), &pe);
	const char *r = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "result"));
	const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "reason"));
	const char *det = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "detail"));

	snprintf(word, wlen, "%s", r != NULL && strcmp(r, "updated") == 0 ? "self_updated"
									  : "self_failed");
	snprintf(reason, rlen, "%s", why != NULL ? why : "");
	snprintf(detail, dlen, "%s", det != NULL ? det : "");
	cJSON_Delete(t);
}

int
registry_rollout_hosts_write(struct registry *reg, const char *id, const char *owner,
    const struct reg_rollout_host *rows, size_t n, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL, *pst = NULL;
	char data[512];
	int rc = -1, began = 0;

	if (n == 0) {
		registry_db_unlock(reg);
		return 0;
	}
	if (registry_db_begin(reg, e) != 0) {
		goto out;
	}
	began = 1;
	if (lease_is(reg, db, id, owner, e) != 0) {
		goto out;
	}
	if (sqlite3_prepare_v2(db, "UPDATE rollout_hosts SET state = ?, request_id = ?,"
	    " pre_sha256 = ?, version = ?, active_sha256 = ?, reason = ?, detail = ?, attempts = ?,"
	    " started_at = ?, finished_at = ?, http_status = ?, agent_result = ?, self_json = ?,"
	    " tsig_sent = ?, transfer = ?, bytes_sent = ? WHERE rollout_id = ? AND host_id = ?", -1,
	    &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO pushes (host_id, at, sha256, result, detail)"
	    " SELECT ?, ?, release_sha256, ?, ? FROM rollouts WHERE id = ?", -1, &pst,
	    NULL) != SQLITE_OK) {
		(void)registry_db_err(reg, "recording hosts", e);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const struct reg_rollout_host *h = &rows[i];

		if (sqlite3_reset(st) != SQLITE_OK ||
		    sqlite3_bind_text(st, 1, registry_rh_state_name(h->state), -1, SQLITE_TRANSIENT) !=
		    SQLITE_OK ||
		    bind_text_or_null(st, 2, h->request_id) != SQLITE_OK ||
		    sqlite3_bind_text(st, 3, h->pre_sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_text(st, 4, h->version, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_text(st, 5, h->active_sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_text(st, 6, h->reason, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_text(st, 7, h->detail, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_int(st, 8, h->attempts) != SQLITE_OK ||
		    (h->started_at != 0 ? sqlite3_bind_int64(st, 9, (sqlite3_int64)h->started_at)
					: sqlite3_bind_null(st, 9)) != SQLITE_OK ||
		    (h->finished_at != 0 ? sqlite3_bind_int64(st, 10, (sqlite3_int64)h->finished_at)
					 : sqlite3_bind_null(st, 10)) != SQLITE_OK ||
		    sqlite3_bind_int(st, 11, h->http_status) != SQLITE_OK ||
		    sqlite3_bind_text(st, 12, h->agent_result, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_text(st, 13, h->self_json, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_int(st, 14, h->tsig_sent != 0) != SQLITE_OK ||
		    sqlite3_bind_text(st, 15, h->transfer, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 16, (sqlite3_int64)(h->bytes_sent > INT64_MAX ? INT64_MAX :
		    h->bytes_sent)) != SQLITE_OK ||
		    sqlite3_bind_text(st, 17, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 18, h->host_id) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_DONE) {
			(void)registry_db_err(reg, "recording hosts", e);
			goto out;
		}
		host_event_json(h, data, sizeof(data));
		if (event_insert(reg, db, id, h->host_id, "host", data, e) != 0) {
			goto out;
		}
		if (!h->log_push || h->agent_result[0] == '\0') {
			continue;
		}
		if (push_insert(reg, pst, id, h->host_id, h->finished_at, h->agent_result,
		    h->self_json[0] != '\0' ? "" : h->reason, h->self_json[0] != '\0' ? "" : h->detail,
		    e) != 0) {
			goto out;
		}
		if (h->self_json[0] != '\0') {
			char word[32], why[256], det[REG_DETAIL_MAX + 1];
			self_fields(h->self_json, word, sizeof(word), why, sizeof(why), det, sizeof(det));
			if (push_insert(reg, pst, id, h->host_id, h->finished_at, word, why, det, e) != 0) {
				goto out;
			}
		}
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(pst);
	if (began && registry_db_end(reg, rc == 0, e) != 0) {
		rc = -1;
	}
	registry_db_unlock(reg);
	return rc;
}

#define RH_COLUMNS "rh.host_id, h.name, rh.wave, rh.seq, rh.state, rh.request_id," \
	" rh.pre_sha256, rh.version, rh.active_sha256, rh.reason, rh.detail, rh.attempts," \
	" rh.started_at, rh.finished_at, h.address, h.agent_port, h.updater_port, h.agent_fp," \
	" h.updater_fp, h.notes, h.enrolled_at, h.decommissioned_at, rh.http_status," \
	" rh.agent_result, rh.self_json, rh.tsig_sent, rh.transfer, rh.bytes_sent"

int
registry_rollout_hosts(struct registry *reg, const char *id, int wave, int state, int after_seq,
    size_t limit, struct reg_rollout_host *out, struct reg_host *h, size_t *n, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	size_t count = 0;
	char word[32];
	int rc = -1, step = SQLITE_DONE;

	if (sqlite3_prepare_v2(db, "SELECT " RH_COLUMNS " FROM rollout_hosts rh JOIN hosts h"
	    " ON h.id = rh.host_id WHERE rh.rollout_id = ? AND rh.seq > ? AND (? < 0 OR"
	    " rh.wave = ?) AND (? = -1 OR (? = -2 AND rh.state IN ('pending', 'dispatched'))"
	    " OR (? = -3 AND rh.state IN ('updated', 'soak_failed', 'reverting'))"
	    " OR rh.state = ?) ORDER BY rh.seq LIMIT ?", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, after_seq) != SQLITE_OK ||
	    sqlite3_bind_int(st, 3, wave) != SQLITE_OK || sqlite3_bind_int(st, 4, wave) != SQLITE_OK ||
	    sqlite3_bind_int(st, 5, state) != SQLITE_OK || sqlite3_bind_int(st, 6, state) != SQLITE_OK ||
	    sqlite3_bind_int(st, 7, state) != SQLITE_OK ||
	    sqlite3_bind_text(st, 8, state >= 0 ? registry_rh_state_name(state) : "", -1,
	    SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 9, (sqlite3_int64)limit) != SQLITE_OK) {
		(void)registry_db_err(reg, "reading the rollout's hosts", e);
		goto out;
	}
	while (count < limit && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct reg_rollout_host *r = &out[count];

		memset(r, 0, sizeof(*r));
		r->host_id = sqlite3_column_int64(st, 0);
		registry_db_col(st, 1, r->host, sizeof(r->host));
		r->wave = sqlite3_column_int(st, 2);
		r->seq = sqlite3_column_int(st, 3);
		registry_db_col(st, 4, word, sizeof(word));
		if (registry_rh_state_parse(word, &r->state) != 0) {
			r->state = RH_FAILED;
		}
		registry_db_col(st, 5, r->request_id, sizeof(r->request_id));
		registry_db_col(st, 6, r->pre_sha256, sizeof(r->pre_sha256));
		registry_db_col(st, 7, r->version, sizeof(r->version));
		registry_db_col(st, 8, r->active_sha256, sizeof(r->active_sha256));
		registry_db_col(st, 9, r->reason, sizeof(r->reason));
		registry_db_col(st, 10, r->detail, sizeof(r->detail));
		r->attempts = sqlite3_column_int(st, 11);
		r->started_at = (time_t)sqlite3_column_int64(st, 12);
		r->finished_at = (time_t)sqlite3_column_int64(st, 13);
		r->http_status = sqlite3_column_int(st, 22);
		registry_db_col(st, 23, r->agent_result, sizeof(r->agent_result));
		registry_result_canonical(r->agent_result);
		registry_db_col(st, 24, r->self_json, sizeof(r->self_json));
		r->tsig_sent = sqlite3_column_int(st, 25);
		registry_db_col(st, 26, r->transfer, sizeof(r->transfer));
		r->bytes_sent = (uint64_t)(sqlite3_column_int64(st, 27) < 0 ? 0 :
		    sqlite3_column_int64(st, 27));
		if (h != NULL) {
			struct reg_host *x = &h[count];
			memset(x, 0, sizeof(*x));
			registry_db_col(st, 1, x->name, sizeof(x->name));
			registry_db_col(st, 14, x->address, sizeof(x->address));
			x->agent_port = sqlite3_column_int(st, 15);
			x->updater_port = sqlite3_column_int(st, 16);
			registry_db_col(st, 17, x->agent_fp, sizeof(x->agent_fp));
			registry_db_col(st, 18, x->updater_fp, sizeof(x->updater_fp));
			registry_db_col(st, 19, x->notes, sizeof(x->notes));
			x->enrolled_at = (time_t)sqlite3_column_int64(st, 20);
			x->decommissioned_at = (time_t)sqlite3_column_int64(st, 21);
		}
		count++;
	}
	if (step != SQLITE_DONE && step != SQLITE_ROW) {
		(void)registry_db_err(reg, "reading the rollout's hosts", e);
		goto out;
	}
	*n = count;
	rc = 0;
out:
	sqlite3_finalize(st);
	registry_db_unlock(reg);
	return rc;
}

int
registry_rollout_counts(struct registry *reg, const char *id, int wave, int upto,
    struct reg_rollout_counts *out, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	char word[32];
	enum reg_rh_state s;
	int rc = -1, step;

	memset(out, 0, sizeof(*out));
	if (sqlite3_prepare_v2(db, "SELECT state, count(*) FROM rollout_hosts WHERE rollout_id = ?"
	    " AND (? < 0 OR wave = ? OR (? AND wave <= ?)) GROUP BY state", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, wave) != SQLITE_OK || sqlite3_bind_int(st, 3, wave) != SQLITE_OK ||
	    sqlite3_bind_int(st, 4, upto) != SQLITE_OK || sqlite3_bind_int(st, 5, wave) != SQLITE_OK) {
		(void)registry_db_err(reg, "counting the rollout's hosts", e);
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		registry_db_col(st, 0, word, sizeof(word));
		if (registry_rh_state_parse(word, &s) == 0) {
			out->n[s] = (size_t)sqlite3_column_int64(st, 1);
			out->total += out->n[s];
		}
	}
	if (step != SQLITE_DONE) {
		(void)registry_db_err(reg, "counting the rollout's hosts", e);
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	registry_db_unlock(reg);
	return rc;
}

int
registry_rollout_events(struct registry *reg, const char *id, int64_t after_seq, size_t limit,
    struct reg_rollout_event *out, size_t *n, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	size_t count = 0;
	int rc = -1, step = SQLITE_DONE;

	if (sqlite3_prepare_v2(db, "SELECT ev.seq, ev.at, coalesce(h.name, ''), ev.kind,"
	    " ev.data_json FROM rollout_events ev LEFT JOIN hosts h ON h.id = ev.host_id"
	    " WHERE ev.rollout_id = ? AND ev.seq > ? ORDER BY ev.seq LIMIT ?", -1, &st,
	    NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)after_seq) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)limit) != SQLITE_OK) {
		(void)registry_db_err(reg, "reading events", e);
		goto out;
	}
	while (count < limit && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct reg_rollout_event *ev = &out[count++];
		memset(ev, 0, sizeof(*ev));
		ev->seq = sqlite3_column_int64(st, 0);
		ev->at = (time_t)sqlite3_column_int64(st, 1);
		registry_db_col(st, 2, ev->host, sizeof(ev->host));
		registry_db_col(st, 3, ev->kind, sizeof(ev->kind));
		registry_db_col(st, 4, ev->data, sizeof(ev->data));
	}
	if (step != SQLITE_DONE && step != SQLITE_ROW) {
		(void)registry_db_err(reg, "reading events", e);
		goto out;
	}
	*n = count;
	rc = 0;
out:
	sqlite3_finalize(st);
	registry_db_unlock(reg);
	return rc;
}

int
registry_rollout_holding(struct registry *reg, const char *host, char id[ROLLOUT_ID_LEN + 1],
    enum reg_rollout_state *state, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	char word[32];
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT r.id, r.state FROM rollout_hosts rh JOIN rollouts r"
	    " ON r.id = rh.rollout_id JOIN hosts h ON h.id = rh.host_id WHERE h.name = ?"
	    " AND rh.held = 1", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, host, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
		(void)registry_db_err(reg, "checking held hosts", e);
		goto out;
	}
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		registry_db_col(st, 0, id, ROLLOUT_ID_LEN + 1);
		registry_db_col(st, 1, word, sizeof(word));
		if (registry_rollout_state_parse(word, state) != 0) {
			*state = RO_PAUSED;
		}
		rc = 1;
		break;
	case SQLITE_DONE:
		rc = 0;
		break;
	default:
		(void)registry_db_err(reg, "checking held hosts", e);
		break;
	}
out:
	sqlite3_finalize(st);
	registry_db_unlock(reg);
	return rc;
}

int
registry_rollout_failures_of(struct registry *reg, const char *host, const char *sha256,
    int *count, struct err *e)
{
	sqlite3 *db = registry_db_lock(reg);
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM rollout_hosts rh JOIN rollouts r"
	    " ON r.id = rh.rollout_id JOIN hosts h ON h.id = rh.host_id WHERE h.name = ?"
	    " AND r.release_sha256 = ? AND rh.state IN ('rolled_back', 'failed', 'soak_failed')", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_text(st, 1, host, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_bind_text(st, 2, sha256, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		(void)registry_db_err(reg, "counting failures", e);
		goto out;
	}
	*count = sqlite3_column_int(st, 0);
	rc = 0;
out:
	sqlite3_finalize(st);
	registry_db_unlock(reg);
	return rc;
}
