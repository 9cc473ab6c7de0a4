/*
 * Unit tests of the registry's rollout tables (master/registry_rollout.c),
 * labels, targets, selection, push log retention, and the upgrade of a
 * registry of every earlier schema (everything it held kept). Each test gets a fresh HOME.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/fs.h"
#include "common/log.h"
#include "master/registry.h"
#include "master/registry_rollout.h"
#include "master/selector.h"
#include "tests/unit/registry_fx.h"
#include "tests/unit/tmpdir.h"

#define SHA1 "1111111111111111111111111111111111111111111111111111111111111111"
#define SHA2 "2222222222222222222222222222222222222222222222222222222222222222"

/*
 * Write a registry as schema VERSION (1 or 2) wrote it: two hosts and a
 * push; at 2 also a revocation, the CRL's number and a host's next pin.
 */
static void
write_old_registry(struct regfx *f, int version, char *db_path, size_t len)
{
	sqlite3 *db = NULL;

	assert_int_equal(fs_mkdir_p(f->home, 0700), 0);
	snprintf(db_path, len, "%s/registry.db", f->home);
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
	    "INSERT INTO schema_version (version) VALUES (1);"
	    "CREATE TABLE hosts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	    " address TEXT NOT NULL, agent_port INTEGER NOT NULL DEFAULT 8765 CHECK (agent_port"
	    " BETWEEN 1 AND 65535), updater_port INTEGER NOT NULL DEFAULT 8766 CHECK (updater_port"
	    " BETWEEN 1 AND 65535), agent_fp TEXT NOT NULL CHECK (length(agent_fp) = 64),"
	    " updater_fp TEXT CHECK (updater_fp IS NULL OR length(updater_fp) = 64),"
	    " notes TEXT NOT NULL DEFAULT '', enrolled_at INTEGER NOT NULL,"
	    " decommissioned_at INTEGER);"
	    "CREATE TABLE pushes (id INTEGER PRIMARY KEY, host_id INTEGER NOT NULL REFERENCES"
	    " hosts (id), at INTEGER NOT NULL, sha256 TEXT NOT NULL, result TEXT NOT NULL,"
	    " detail TEXT NOT NULL DEFAULT '');"
	    "CREATE INDEX pushes_host_at ON pushes (host_id, at);"
	    "INSERT INTO hosts (name, address, agent_fp, notes, enrolled_at) VALUES"
	    " ('old1', '192.0.2.1', '" FP_A "', 'rack 4', 1700000000),"
	    " ('old2', '192.0.2.2', '" FP_A "', '', 1700000001);"
	    "INSERT INTO pushes (host_id, at, sha256, result, detail) VALUES"
	    " (1, 1700000100, '" SHA1 "', 'updated', '');",
	    NULL, NULL, NULL), SQLITE_OK);
	if (version >= 2) {
		/* Schema 2 as the certificate lifecycle shipped it. */
		assert_int_equal(sqlite3_exec(db,
		    "CREATE TABLE revocations (id INTEGER PRIMARY KEY,"
		    " serial TEXT NOT NULL UNIQUE CHECK (length(serial) BETWEEN 2 AND 40),"
		    " fp TEXT NOT NULL DEFAULT '' CHECK (fp = '' OR length(fp) = 64),"
		    " subject TEXT NOT NULL DEFAULT '', reason INTEGER NOT NULL, at INTEGER NOT NULL);"
		    "CREATE TABLE crl_state (id INTEGER PRIMARY KEY CHECK (id = 1),"
		    " number INTEGER NOT NULL CHECK (number >= 1), this_update INTEGER NOT NULL,"
		    " next_update INTEGER NOT NULL);"
		    "ALTER TABLE hosts ADD COLUMN agent_fp_next TEXT"
		    " CHECK (agent_fp_next IS NULL OR length(agent_fp_next) = 64);"
		    "ALTER TABLE hosts ADD COLUMN updater_fp_next TEXT"
		    " CHECK (updater_fp_next IS NULL OR length(updater_fp_next) = 64);"
		    "INSERT INTO revocations (serial, fp, subject, reason, at) VALUES"
		    " ('0a1b', '', 'gone', 1, 1700000200);"
		    "INSERT INTO crl_state (id, number, this_update, next_update) VALUES"
		    " (1, 7, 1700000300, 1700600300);"
		    "UPDATE hosts SET agent_fp_next = '" SHA2 "' WHERE name = 'old2';"
		    "UPDATE schema_version SET version = 2;",
		    NULL, NULL, NULL), SQLITE_OK);
	}
	sqlite3_close(db);
	assert_int_equal(chmod(db_path, 0600), 0);
}

/* Opening an older registry migrates it to schema 5 with everything it held kept. */
static void
upgrade_from(struct regfx *f, int version)
{
	struct err pe = ERR_INIT;
	char db_path[PATH_MAX + 16];
	struct reg_host h;
	struct reg_push *log = NULL;
	size_t n = 0;

	write_old_registry(f, version, db_path, sizeof(db_path));
	regfx_open(f);
	assert_int_equal(registry_schema_version(f->reg), 6);
	assert_int_equal(registry_get_host(f->reg, "old1", &h, &pe), REGISTRY_OK);
	assert_string_equal(h.notes, "rack 4");
	assert_int_equal(h.enrolled_at, 1700000000);
	assert_int_equal(registry_push_history(f->reg, "old1", 0, &log, &n, &pe),
	    REGISTRY_OK);
	assert_int_equal(n, 1);
	assert_string_equal(log[0].sha256, SHA1);
	free(log);
	if (version >= 2) {
		struct reg_revocation *revs = NULL;
		unsigned long long number = 0;
		time_t tu = 0, nu = 0;
		sqlite3 *db = NULL;
		sqlite3_stmt *q = NULL;

		assert_int_equal(registry_revocations(f->reg, &revs, &n, &pe),
		    REGISTRY_OK);
		assert_int_equal(n, 1);
		assert_string_equal(revs[0].serial, "0a1b");
		assert_string_equal(revs[0].subject, "gone");
		free(revs);
		assert_int_equal(registry_crl_state(f->reg, &number, &tu, &nu, &pe),
		    REGISTRY_OK);
		assert_int_equal(number, 7);
		assert_int_equal(nu, 1700600300);
		assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT agent_fp_next FROM hosts"
		    " WHERE name = 'old2'", -1, &q, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(q), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(q, 0), SHA2);
		sqlite3_finalize(q);
		sqlite3_close(db);
	} else {
		/* The certificate tables of schema 2 came with the upgrade. */
		struct reg_revocation r;

		memset(&r, 0, sizeof(r));
		snprintf(r.serial, sizeof(r.serial), "01");
		assert_int_equal(registry_revoke(f->reg, &r, &pe), REGISTRY_OK);
	}
	/* The rollout tables (schemas 3 and 4) work on the upgraded file. */
	struct err e = ERR_INIT;
	assert_int_equal(registry_label_set(f->reg, "old2", "env", "prod", &e), 0);
	registry_close(f->reg);
	f->reg = NULL;
	regfx_open(f); /* a second open finds the newest schema and migrates nothing */
	assert_int_equal(registry_schema_version(f->reg), 6);
}

static void
test_upgrade_from_schema_1(void **state)
{
	upgrade_from(*state, 1);
}

static void
test_upgrade_from_schema_2(void **state)
{
	upgrade_from(*state, 2);
}

/* Schema 3 (rollouts without tsig_sent): the column comes with the upgrade, labels kept. */
static void
test_upgrade_from_schema_3(void **state)
{
	struct regfx *f = *state;
	char db_path[PATH_MAX + 16];
	struct selector_label ls[REG_LABELS_MAX];
	struct err e = ERR_INIT;
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	size_t n = 0;

	regfx_open(f);
	regfx_add_host(f, "h3");
	assert_int_equal(registry_label_set(f->reg, "h3", "env", "prod", &e), 0);
	registry_close(f->reg);
	f->reg = NULL;
	snprintf(db_path, sizeof(db_path), "%s/registry.db", f->home);
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "ALTER TABLE rollout_hosts DROP COLUMN tsig_sent;"
	    "ALTER TABLE rollout_hosts DROP COLUMN transfer;"
	    "ALTER TABLE rollout_hosts DROP COLUMN bytes_sent;"
	    "DROP TABLE host_sans;"
	    "UPDATE schema_version SET version = 3;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	regfx_open(f);
	assert_int_equal(registry_schema_version(f->reg), 6);
	assert_int_equal(registry_host_labels(f->reg, "h3", ls, REG_LABELS_MAX, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ls[0].value, "prod");
	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT tsig_sent, transfer, bytes_sent FROM"
	    " rollout_hosts", -1, &q, NULL), SQLITE_OK);
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static void
test_labels_and_selection(void **state)
{
	struct regfx *f = *state;
	struct selector sel;
	struct selector_label ls[REG_LABELS_MAX];
	struct reg_host page[2];
	struct err e = ERR_INIT;
	int64_t cursor = 0;
	size_t n, total = 0, matched;

	regfx_open(f);
	regfx_add_host(f, "a1");
	regfx_add_host(f, "a2");
	regfx_add_host(f, "a3");
	assert_int_equal(registry_label_set(f->reg, "a1", "env", "prod", &e), 0);
	assert_int_equal(registry_label_set(f->reg, "a2", "env", "prod", &e), 0);
	assert_int_equal(registry_label_set(f->reg, "a2", "role", "db", &e), 0);
	assert_int_equal(registry_label_set(f->reg, "a3", "env", "test", &e), 0);
	/* Overwrite and removal. */
	assert_int_equal(registry_label_set(f->reg, "a3", "env", "staging", &e), 0);
	assert_int_equal(registry_host_labels(f->reg, "a3", ls, REG_LABELS_MAX, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ls[0].value, "staging");
	assert_int_equal(registry_label_set(f->reg, "a3", "env", NULL, &e), 0);
	assert_int_equal(registry_host_labels(f->reg, "a3", ls, REG_LABELS_MAX, &n, &e), 0);
	assert_int_equal(n, 0);
	/* Refused: no host, a bad key. */
	assert_int_equal(registry_label_set(f->reg, "nope", "env", "x", &e), -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
	assert_int_equal(registry_label_set(f->reg, "a1", "Bad Key", "x", &e), -1);

	assert_int_equal(selector_parse("env=prod,role!=db", &sel, &e), 0);
	/* Paged two at a time: exactly a1. */
	do {
		assert_int_equal(registry_hosts_select(f->reg, &sel, &cursor, 2, page, &n, &e), 0);
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(page[i].name, "a1");
		}
		total += n;
	} while (n > 0);
	assert_int_equal(total, 1);
	assert_int_equal(registry_selector_check(f->reg, &sel, &matched, &e), 0);
	assert_int_equal(matched, 1);
	assert_int_equal(selector_parse("env=none", &sel, &e), 0);
	assert_int_equal(registry_selector_check(f->reg, &sel, &matched, &e), -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
	assert_int_equal(selector_parse("a1,zz", &sel, &e), 0);
	assert_int_equal(registry_selector_check(f->reg, &sel, &matched, &e), -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
}

static void
test_targets_and_store_index(void **state)
{
	struct regfx *f = *state;
	struct reg_target t;
	struct err e = ERR_INIT;
	char label[64];

	regfx_open(f);
	regfx_add_host(f, "t1");
	assert_int_equal(registry_release_add(f->reg, SHA1, "1.0.0", 1234, &e), 0);
	assert_int_equal(registry_release_add(f->reg, SHA1, "1.0.0", 1234, &e), 0); /* idempotent */
	assert_int_equal(registry_release_label(f->reg, SHA1, label, sizeof(label), &e), 0);
	assert_string_equal(label, "1.0.0");
	assert_int_equal(registry_release_label(f->reg, SHA2, label, sizeof(label), &e), -1);
	assert_int_equal(registry_target_of(f->reg, "t1", &t, &e), 0);
	assert_int_equal(registry_target_set(f->reg, "t1", SHA1, &e), 0);
	assert_int_equal(registry_target_of(f->reg, "t1", &t, &e), 1);
	assert_string_equal(t.sha256, SHA1);
	assert_string_equal(t.label, "1.0.0");
	/* A target must be a stored release (foreign key). */
	assert_int_equal(registry_target_set(f->reg, "t1", SHA2, &e), -1);
	assert_int_equal(registry_target_set(f->reg, "t1", NULL, &e), 0);
	assert_int_equal(registry_target_of(f->reg, "t1", &t, &e), 0);
}

/* Create a rollout of every host with default waves; returns its id in ID. */
static void
create(struct regfx *f, const char *id, const char *sel_text, int *nh, int *nw)
{
	struct rollout_spec spec;
	struct reg_rollout r;
	struct selector sel;
	struct err e = ERR_INIT;
	char *json;

	rollout_spec_defaults(&spec);
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.kind, sizeof(r.kind), "update");
	snprintf(r.release_sha256, sizeof(r.release_sha256), "%s", SHA1);
	json = rollout_spec_to_json(&spec);
	assert_non_null(json);
	snprintf(r.spec_json, sizeof(r.spec_json), "%s", json);
	free(json);
	r.state = RO_PLANNED;
	assert_int_equal(selector_parse(sel_text, &sel, &e), 0);
	if (registry_rollout_create(f->reg, &r, &spec, &sel, NULL, NULL, 0, nh, nw, &e) != 0) {
		fail_msg("create: %s", err_msg(&e));
	}
}

static void
test_create_plan_and_hold(void **state)
{
	struct regfx *f = *state;
	struct reg_rollout r;
	struct reg_rollout_host rows[16];
	struct reg_rollout_counts c;
	struct err e = ERR_INIT;
	char name[16];
	size_t n;
	int nh, nw, rc;

	regfx_open(f);
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "h%02d", i);
		regfx_add_host(f, name);
	}
	assert_int_equal(registry_release_add(f->reg, SHA1, "1.0.0", 10, &e), 0);
	create(f, "00000000000000a1", "all", &nh, &nw);
	assert_int_equal(nh, 10);
	assert_int_equal(nw, 3); /* 1, 5, 10 */
	assert_int_equal(registry_rollout_get(f->reg, "00000000000000a1", &r, &e), 0);
	assert_int_equal(r.state, RO_PLANNED);
	assert_int_equal(r.n_hosts, 10);
	assert_string_equal(r.release_label, "1.0.0");
	/* By prefix; ambiguous or malformed prefixes are refused. */
	assert_int_equal(registry_rollout_get(f->reg, "0000", &r, &e), 0);
	assert_int_equal(registry_rollout_get(f->reg, "zz00", &r, &e), -1);
	assert_int_equal(e.kind, ERR_USAGE);
	assert_int_equal(registry_rollout_get(f->reg, "abcd", &r, &e), -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);

	/* The plan: seq 1..10 in order-key order, waves 0 (1 host), 1 (4), 2 (5). */
	assert_int_equal(registry_rollout_hosts(f->reg, r.id, -1, REG_RH_ANY, 0, 16, rows, NULL, &n,
	    &e), 0);
	assert_int_equal(n, 10);
	for (size_t i = 0; i < n; i++) {
		char key[65], prev_key[65];
		assert_int_equal(rows[i].seq, (int)i + 1);
		assert_int_equal(rows[i].state, RH_PENDING);
		assert_int_equal(rows[i].wave, i < 1 ? 0 : i < 5 ? 1 : 2);
		if (i > 0) {
			rollout_order_key(r.id, rows[i].host, key);
			rollout_order_key(r.id, rows[i - 1].host, prev_key);
			assert_true(strcmp(prev_key, key) < 0);
		}
	}
	assert_int_equal(registry_rollout_counts(f->reg, r.id, 1, 0, &c, &e), 0);
	assert_int_equal(c.total, 4);
	assert_int_equal(registry_rollout_counts(f->reg, r.id, 1, 1, &c, &e), 0);
	assert_int_equal(c.total, 5);

	/* Every host is held: a second rollout of any of them is refused, nothing written. */
	{
		struct rollout_spec spec;
		struct reg_rollout r2;
		struct selector sel;
		char *json;
		rollout_spec_defaults(&spec);
		memset(&r2, 0, sizeof(r2));
		snprintf(r2.id, sizeof(r2.id), "00000000000000b2");
		snprintf(r2.kind, sizeof(r2.kind), "update");
		snprintf(r2.release_sha256, sizeof(r2.release_sha256), "%s", SHA1);
		json = rollout_spec_to_json(&spec);
		snprintf(r2.spec_json, sizeof(r2.spec_json), "%s", json);
		free(json);
		assert_int_equal(selector_parse("h03", &sel, &e), 0);
		rc = registry_rollout_create(f->reg, &r2, &spec, &sel, NULL, NULL, 1, &nh, &nw, &e);
		assert_int_equal(rc, -1);
		assert_int_equal(e.kind, ERR_CONFLICT);
		assert_non_null(strstr(err_msg(&e), "00000000000000a1"));
		assert_int_equal(registry_rollout_get(f->reg, "00000000000000b2", &r, &e), -1);
	}
	{
		char holder[ROLLOUT_ID_LEN + 1];
		enum reg_rollout_state st;
		assert_int_equal(registry_rollout_holding(f->reg, "h03", holder, &st, &e), 1);
		assert_string_equal(holder, "00000000000000a1");
	}
}

static int owner_is_gone;

static int
gone(const char *holder)
{
	(void)holder;
	return owner_is_gone;
}

static void
test_lease_state_and_hosts(void **state)
{
	struct regfx *f = *state;
	struct reg_rollout r;
	struct reg_rollout_host rows[16];
	struct reg_rollout_counts c;
	struct reg_rollout_event ev[64];
	struct reg_push *log = NULL;
	struct err e = ERR_INIT;
	size_t n;
	int nh, nw, fails;
	time_t now = time(NULL);
	const char *id = "00000000000000c3";

	regfx_open(f);
	regfx_add_host(f, "x1");
	regfx_add_host(f, "x2");
	assert_int_equal(registry_release_add(f->reg, SHA1, "1.0.0", 10, &e), 0);
	create(f, id, "all", &nh, &nw);

	/* One driver: A holds it, B is refused until A's lease ends or A is gone. */
	assert_int_equal(registry_rollout_lease(f->reg, id, "A", now, 30, gone, &r, &e), 0);
	assert_int_equal(registry_rollout_lease(f->reg, id, "B", now, 30, gone, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_non_null(strstr(err_msg(&e), "driven by A"));
	assert_int_equal(registry_rollout_lease(f->reg, id, "A", now + 5, 30, gone, NULL, &e), 0);
	/* Writes check the lease. */
	assert_int_equal(registry_rollout_set(f->reg, id, "B", RO_RUNNING, "x", -1, -1, 0, NULL,
	    NULL, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_int_equal(registry_rollout_set(f->reg, id, "A", RO_RUNNING, "started", -1, -1, 0,
	    "started", NULL, &e), 0);

	/* Host rows: dispatched, then updated with its push log entry. */
	assert_int_equal(registry_rollout_hosts(f->reg, id, -1, REG_RH_UNFINISHED, 0, 16, rows,
	    NULL, &n, &e), 0);
	assert_int_equal(n, 2);
	rows[0].state = RH_DISPATCHED;
	snprintf(rows[0].request_id, sizeof(rows[0].request_id), "%032d", 7);
	snprintf(rows[0].pre_sha256, sizeof(rows[0].pre_sha256), "%s", SHA2);
	rows[0].attempts = 1;
	rows[0].started_at = now;
	assert_int_equal(registry_rollout_hosts_write(f->reg, id, "A", rows, 1, &e), 0);
	assert_int_equal(registry_rollout_hosts(f->reg, id, -1, RH_DISPATCHED, 0, 16, rows + 4,
	    NULL, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[4].pre_sha256, SHA2);
	assert_string_equal(rows[4].request_id, rows[0].request_id);
	rows[0].state = RH_UPDATED;
	snprintf(rows[0].agent_result, sizeof(rows[0].agent_result), "updated");
	snprintf(rows[0].version, sizeof(rows[0].version), "1.0.0");
	rows[0].http_status = 200;
	rows[0].finished_at = now;
	rows[0].log_push = 1;
	snprintf(rows[0].transfer, sizeof(rows[0].transfer), "planned");
	rows[0].bytes_sent = 5000000000ULL; /* past 32 bits */
	rows[1].state = RH_ROLLED_BACK;
	snprintf(rows[1].agent_result, sizeof(rows[1].agent_result), "rolled-back");
	snprintf(rows[1].reason, sizeof(rows[1].reason), "new release failed, previous restored");
	snprintf(rows[1].self_json, sizeof(rows[1].self_json), "%s", "");
	rows[1].log_push = 1;
	rows[1].finished_at = now;
	/* A stale writer cannot write: nothing changes. */
	assert_int_equal(registry_rollout_hosts_write(f->reg, id, "B", rows, 2, &e), -1);
	assert_int_equal(registry_rollout_hosts_write(f->reg, id, "A", rows, 2, &e), 0);
	assert_int_equal(registry_rollout_counts(f->reg, id, -1, 0, &c, &e), 0);
	assert_int_equal(c.n[RH_UPDATED], 1);
	assert_int_equal(c.n[RH_ROLLED_BACK], 1);
	/* How the release travelled, read back as written. */
	assert_int_equal(registry_rollout_hosts(f->reg, id, -1, RH_UPDATED, 0, 16, rows + 4,
	    NULL, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[4].transfer, "planned");
	assert_true(rows[4].bytes_sent == 5000000000ULL);
	assert_int_equal(registry_push_history(f->reg, rows[1].host, 0, &log, &n, &e), REGISTRY_OK);
	assert_int_equal(n, 1);
	/* Written in the old spelling, read in the one spelling. */
	assert_string_equal(log[0].result, "rolled_back");
	assert_string_equal(log[0].sha256, SHA1);
	assert_non_null(strstr(log[0].detail, id));
	free(log);
	log = NULL;
	assert_int_equal(registry_rollout_failures_of(f->reg, rows[1].host, SHA1, &fails, &e), 0);
	assert_int_equal(fails, 1);
	assert_int_equal(registry_rollout_failures_of(f->reg, rows[0].host, SHA1, &fails, &e), 0);
	assert_int_equal(fails, 0);

	/* An operator's request goes in without the lease. */
	assert_int_equal(registry_rollout_request(f->reg, id, "pause", &e), 0);
	assert_int_equal(registry_rollout_get(f->reg, id, &r, &e), 0);
	assert_string_equal(r.request, "pause");
	/* Pausing clears it; finishing releases the hosts and skips what was pending. */
	assert_int_equal(registry_rollout_set(f->reg, id, "A", RO_PAUSED, "paused", -1, -1, 0,
	    "paused", NULL, &e), 0);
	assert_int_equal(registry_rollout_get(f->reg, id, &r, &e), 0);
	assert_string_equal(r.request, "");
	assert_int_equal(registry_rollout_set(f->reg, id, "A", RO_DONE, "done", -1, 0, 1, "done",
	    NULL, &e), 0);
	assert_int_equal(registry_rollout_get(f->reg, id, &r, &e), 0);
	assert_int_equal(r.state, RO_DONE);
	assert_true(r.finished_at != 0);
	{
		char holder[ROLLOUT_ID_LEN + 1];
		enum reg_rollout_state st;
		assert_int_equal(registry_rollout_holding(f->reg, "x1", holder, &st, &e), 0);
	}
	/* The lease: given back; a dead holder loses it at once. */
	assert_int_equal(registry_rollout_release(f->reg, id, "A", &e), 0);
	assert_int_equal(registry_rollout_lease(f->reg, id, "B", now, 30, gone, NULL, &e), 0);
	owner_is_gone = 1;
	assert_int_equal(registry_rollout_lease(f->reg, id, "C", now, 30, gone, NULL, &e), 0);
	owner_is_gone = 0;
	assert_int_equal(registry_rollout_lease(f->reg, id, "D", now + 31, 30, gone, NULL, &e), 0);

	/* Events: created, lease, state changes, host rows. */
	assert_int_equal(registry_rollout_events(f->reg, id, 0, 64, ev, &n, &e), 0);
	assert_true(n >= 6);
	assert_string_equal(ev[0].kind, "created");
	{
		int hosts = 0;
		for (size_t i = 0; i < n; i++) {
			hosts += strcmp(ev[i].kind, "host") == 0;
		}
		assert_int_equal(hosts, 3);
	}
	{
		struct reg_rollout list[4];
		assert_int_equal(registry_rollout_list(f->reg, list, 4, &n, &e), 0);
		assert_int_equal(n, 1);
	}
}

static void
test_push_prune(void **state)
{
	struct err pe = ERR_INIT;
	struct regfx *f = *state;
	struct reg_push p;
	struct reg_push *log = NULL;
	struct err e = ERR_INIT;
	size_t n, removed;

	regfx_open(f);
	regfx_add_host(f, "p1");
	regfx_add_host(f, "p2");
	for (int i = 0; i < 12; i++) {
		memset(&p, 0, sizeof(p));
		snprintf(p.host, sizeof(p.host), "%s", i % 3 == 0 ? "p2" : "p1");
		p.at = 1700000000 + i;
		snprintf(p.result, sizeof(p.result), "updated");
		assert_int_equal(registry_log_push(f->reg, &p, &pe), REGISTRY_OK);
	}
	assert_int_equal(registry_push_prune(f->reg, 3, &removed, &e), 0);
	assert_int_equal(removed, (8 - 3) + (4 - 3));
	assert_int_equal(registry_push_history(f->reg, "p1", 0, &log, &n, &pe),
	    REGISTRY_OK);
	assert_int_equal(n, 3);
	assert_int_equal(log[0].at, 1700000011); /* the newest are kept */
	free(log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_upgrade_from_schema_1, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_schema_2, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_schema_3, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_labels_and_selection, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_targets_and_store_index, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_create_plan_and_hold, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_lease_state_and_hosts, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_push_prune, regfx_setup, regfx_teardown),
	};

	log_init("test_registry_rollout", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
