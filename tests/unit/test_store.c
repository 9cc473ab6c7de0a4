/*
 * updater/store + updater/journal: release slots, transactions, and a crash
 * sweep: for every named point of every transaction a child process runs the
 * transaction and _exit()s at that point (testhook_set); the parent then
 * runs store_recover() (itself crash-tested once more) and checks the
 * invariants of wiki/Updater.md "Crash safety".
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/testhook.h"
#include "updater/journal.h"
#include "updater/store.h"
#include "tests/unit/tmpdir.h"

#define CRASH_EXIT 77

static const char *root;
static struct store st;

static int
setup(void **state)
{
	struct err err = ERR_INIT;

	(void)state;
	root = tmpdir_make("store");
	if (root == NULL || chdir(root) != 0) {
		return -1;
	}
	if (store_init(&st, root, 2, &err) != 0) {
		fprintf(stderr, "%s\n", err_msg(&err));
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	testhook_set(NULL);
	if (chdir("/") != 0 || tmpdir_remove() != 0) {
		return -1;
	}
	return 0;
}

static void
fill_info(struct release_info *ri, const char *id)
{
	memset(ri, 0, sizeof(*ri));
	snprintf(ri->id, sizeof(ri->id), "%s", id);
	snprintf(ri->sha, sizeof(ri->sha), "label-%s", id);
	memset(ri->sha256, 'a', 64);
	snprintf(ri->version, sizeof(ri->version), "v-%s", id);
	snprintf(ri->name, sizeof(ri->name), "agent");
	snprintf(ri->installed_at, sizeof(ri->installed_at), "2026-11-23T10:00:00Z");
}

/* A complete release with install id ID in releases/SLOT. */
static void
make_release(const char *slot, const char *id)
{
	char p[PATH_MAX];
	struct release_info ri;

	snprintf(p, sizeof(p), "%s/releases/%s/bin", root, slot);
	assert_int_equal(fs_mkdir_p(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/releases/%s/bin/tandem-agent", root, slot);
	assert_int_equal(fs_write_atomic(p, id, strlen(id), 0755), 0);
	fill_info(&ri, id);
	assert_int_equal(store_release_write(&st, slot, &ri, NULL), 0);
}

/* Installed state: active A, prev P (when given), current -> releases/active. */
static void
make_base(const char *a, const char *p)
{
	char cur[PATH_MAX];

	if (a != NULL) {
		make_release("active", a);
		snprintf(cur, sizeof(cur), "%s/current", root);
		assert_int_equal(fs_symlink_replace("releases/active", cur), 0);
	}
	if (p != NULL) {
		make_release("prev", p);
	}
}

static int
slot_dir_exists(const char *slot)
{
	char p[PATH_MAX];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/releases/%s", root, slot);
	return lstat(p, &sb) == 0;
}

static const char *
slot_id_of(const char *slot)
{
	static char ids[4][JOURNAL_ID_LEN];
	static int k;
	struct release_info ri;
	struct err err = ERR_INIT;
	char *out = ids[k++ % 4];

	if (store_release_read(&st, slot, &ri, &err) != 1) {
		return NULL;
	}
	snprintf(out, JOURNAL_ID_LEN, "%s", ri.id);
	return out;
}

/* The invariants after recovery: exactly what the test expects, nothing else. */
static void
assert_state(const char *active, const char *prev, const char *ctx)
{
	struct err jerr = ERR_INIT;
	char cur[PATH_MAX], target[64];
	struct journal_op op = { 0 };
	const char *a = slot_id_of("active");
	const char *p = slot_id_of("prev");
	ssize_t n;

	if ((active == NULL) != (a == NULL) || (active != NULL && strcmp(active, a) != 0)) {
		fail_msg("%s: active is %s, want %s", ctx, a ? a : "(none)", active ? active : "(none)");
	}
	if ((prev == NULL) != (p == NULL) || (prev != NULL && strcmp(prev, p) != 0)) {
		fail_msg("%s: prev is %s, want %s", ctx, p ? p : "(none)", prev ? prev : "(none)");
	}
	if (slot_dir_exists("active.new") || slot_dir_exists("prev.old") ||
	    slot_dir_exists("prev.replaced")) {
		fail_msg("%s: staging or prev.old left behind", ctx);
	}
	if (journal_read(root, &op, &jerr) != 0) {
		fail_msg("%s: journal left behind", ctx);
	}
	snprintf(cur, sizeof(cur), "%s/current", root);
	n = readlink(cur, target, sizeof(target) - 1);
	if (active != NULL) {
		if (n < 0) {
			fail_msg("%s: no current symlink", ctx);
		}
		target[n] = '\0';
		assert_string_equal(target, "releases/active");
		/* current resolves to a complete release (its binary is there). */
		snprintf(cur, sizeof(cur), "%s/current/bin/tandem-agent", root);
		assert_int_equal(access(cur, R_OK), 0);
	} else if (n >= 0) {
		fail_msg("%s: current exists without an active release", ctx);
	}
}

enum scenario {
	SC_UPDATE_COMMIT,
	SC_UPDATE_RESTORE,
	SC_UPDATE_ABORT,
	SC_FIRST_COMMIT,
	SC_FIRST_RESTORE,
	SC_ROLLBACK_COMMIT,
	SC_ROLLBACK_RESTORE,
	SC_REINSTALL_COMMIT,  /* a forced reinstall of the active release: prev kept */
};

static char new_id[JOURNAL_ID_LEN];

/* Run one transaction to its end (in the child of a crash test, or directly). */
static void
run_scenario(enum scenario sc)
{
	struct journal_op op = { 0 };
	struct err err = ERR_INIT;
	char p[PATH_MAX];

	memset(&op, 0, sizeof(op));
	if (sc == SC_ROLLBACK_COMMIT || sc == SC_ROLLBACK_RESTORE) {
		assert_int_equal(store_rollback_begin(&st, &op, "fp", &err), 0);
		if (sc == SC_ROLLBACK_COMMIT) {
			assert_int_equal(store_rollback_commit(&st, &op, &err), 0);
		} else {
			assert_int_equal(store_rollback_restore(&st, &op, &err), 0);
		}
		return;
	}
	if (store_update_begin(&st, &op, "bb", "fp", &err) != 0) {
		fail_msg("begin: %s", err_msg(&err));
	}
	memcpy(new_id, op.new_id, sizeof(new_id));
	/* The extractor's part: create the staging dir and fill it. */
	snprintf(p, sizeof(p), "%s/%s", root, STORE_STAGING_REL);
	assert_int_equal(mkdir(p, 0755), 0);
	make_release("active.new", op.new_id);
	if (sc == SC_UPDATE_ABORT) {
		assert_int_equal(store_update_abort(&st, &op, &err), 0);
		return;
	}
	op.keep_prev = sc == SC_REINSTALL_COMMIT;
	if (store_update_switch(&st, &op, &err) != 0) {
		fail_msg("switch: %s", err_msg(&err));
	}
	if (sc == SC_UPDATE_COMMIT || sc == SC_FIRST_COMMIT || sc == SC_REINSTALL_COMMIT) {
		assert_int_equal(store_update_commit(&st, &op, &err), 0);
	} else if (store_update_restore(&st, &op, &err) != 0) {
		fail_msg("restore: %s", err_msg(&err));
	}
}

static const char *crash_at;
static int crash_hits;

static void
crash_hook(const char *point)
{
	if (crash_at != NULL && strcmp(point, crash_at) == 0 && crash_hits-- == 0) {
		_exit(CRASH_EXIT);
	}
}

/* Run SC in a child that dies at POINT; 1 if it did die there. */
static int
crash_child(enum scenario sc, const char *point)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		crash_at = point;
		crash_hits = 0;
		testhook_set(crash_hook);
		run_scenario(sc);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status) == CRASH_EXIT;
}

static void
recover_ok(const char *ctx)
{
	char what[256];
	struct err err = ERR_INIT;

	if (store_recover(&st, what, sizeof(what), &err) != 0) {
		fail_msg("%s: recover: %s", ctx, err_msg(&err));
	}
}

struct sweep {
	const char *point;
	int committed; /* 1: the crash came after the commit point */
};

static void
reset_root(void)
{
	struct err err = ERR_INIT;
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/releases", root);
	assert_int_equal(fs_rmtree(p), 0);
	snprintf(p, sizeof(p), "%s/state", root);
	assert_int_equal(fs_rmtree(p), 0);
	snprintf(p, sizeof(p), "%s/current", root);
	assert_true(unlink(p) == 0 || errno == ENOENT);
	assert_int_equal(store_init(&st, root, 2, &err), 0);
}

static void
sweep(enum scenario sc, const char *a, const char *p, const struct sweep *pts, size_t n,
    const char *a_after, const char *p_after)
{
	char ctx[128];

	for (size_t i = 0; i < n; i++) {
		reset_root();
		make_base(a, p);
		snprintf(ctx, sizeof(ctx), "scenario %d crash at %s", (int)sc, pts[i].point);
		if (!crash_child(sc, pts[i].point)) {
			fail_msg("%s: the point was never reached", ctx);
		}
		recover_ok(ctx);
		if (pts[i].committed) {
			/* a_after NULL: "the new release", whose id the child made. */
			const char *na = a_after != NULL ? a_after : slot_id_of("active");

			assert_non_null(na);
			assert_state(na, p_after, ctx);
			if (a_after == NULL) {
				assert_string_not_equal(na, a != NULL ? a : "");
			}
		} else {
			assert_state(a, p, ctx);
		}
		/* Recovery is idempotent. */
		recover_ok(ctx);
	}
}

static void
test_sweep_update_commit(void **state)
{
	static const struct sweep pts[] = {
		{ "update.journal_staging", 0 },
		{ "update.journal_switching", 0 },
		{ "update.prev_moved", 0 },
		{ "update.exchanged", 0 },
		{ "update.old_to_prev", 0 },
		{ "update.journal_committing", 1 },
		{ "commit.prev_old_removed", 1 },
		{ "commit.done", 1 },
	};

	(void)state;
	sweep(SC_UPDATE_COMMIT, "A", "P", pts, ARRAY_LEN(pts), NULL, "A");
	/* Without a prev the same holds (no prev_moved point then). */
	sweep(SC_UPDATE_COMMIT, "A", NULL, pts + 3, ARRAY_LEN(pts) - 3, NULL, "A");
}

/* A forced reinstall keeps the rollback point: after the commit prev is the old prev again. */
static void
test_sweep_reinstall_keeps_prev(void **state)
{
	static const struct sweep pts[] = {
		{ "update.journal_staging", 0 },
		{ "update.journal_switching", 0 },
		{ "update.prev_moved", 0 },
		{ "update.exchanged", 0 },
		{ "update.old_to_prev", 0 },
		{ "update.journal_committing", 1 },
		{ "commit.replaced_moved", 1 },
		{ "commit.prev_back", 1 },
		{ "commit.prev_old_removed", 1 },
		{ "commit.done", 1 },
	};
	static const struct sweep no_prev[] = {
		{ "update.exchanged", 0 },
		{ "update.old_to_prev", 0 },
		{ "update.journal_committing", 1 },
		{ "commit.replaced_moved", 1 },
		{ "commit.prev_old_removed", 1 },
		{ "commit.done", 1 },
	};
	struct journal_op op;
	struct err err = ERR_INIT;

	(void)state;
	sweep(SC_REINSTALL_COMMIT, "A", "P", pts, ARRAY_LEN(pts), NULL, "P");
	/* Without a prev there is still none afterwards (the replaced copy does not become one). */
	sweep(SC_REINSTALL_COMMIT, "A", NULL, no_prev, ARRAY_LEN(no_prev), NULL, NULL);
	/* The journal keeps the flag and the request id across a restart. */
	reset_root();
	memset(&op, 0, sizeof(op));
	snprintf(op.id, sizeof(op.id), "op1");
	op.kind = JOURNAL_UPDATE;
	op.phase = JOURNAL_COMMITTING;
	op.keep_prev = 1;
	snprintf(op.request_id, sizeof(op.request_id), "req-7");
	assert_int_equal(journal_write(root, &op, &err), 0);
	memset(&op, 0, sizeof(op));
	assert_int_equal(journal_read(root, &op, &err), 1);
	assert_int_equal(op.keep_prev, 1);
	assert_string_equal(op.request_id, "req-7");
	assert_int_equal(journal_clear(root, &err), 0);
}

static void
test_sweep_update_restore(void **state)
{
	static const struct sweep pts[] = {
		{ "update.journal_staging", 0 },
		{ "update.exchanged", 0 },
		{ "update.old_to_prev", 0 },
		{ "update.journal_restoring", 0 },
		{ "restore.old_active_back", 0 },
		{ "restore.new_removed", 0 },
		{ "restore.prev_back", 0 },
		{ "restore.done", 0 },
	};
	char p[PATH_MAX];

	(void)state;
	sweep(SC_UPDATE_RESTORE, "A", "P", pts, ARRAY_LEN(pts), NULL, NULL);
	/* Without interruption: the failed release is quarantined. */
	reset_root();
	make_base("A", "P");
	run_scenario(SC_UPDATE_RESTORE);
	assert_state("A", "P", "restore");
	snprintf(p, sizeof(p), "%s/releases/failed/%s/release.json", root, new_id);
	assert_int_equal(access(p, R_OK), 0);
}

static void
test_sweep_abort_and_first_install(void **state)
{
	static const struct sweep abort_pts[] = {
		{ "update.journal_staging", 0 },
		{ "abort.staging_removed", 0 },
	};
	static const struct sweep first_commit[] = {
		{ "update.journal_staging", 0 },
		{ "update.journal_switching", 0 },
		{ "update.first_renamed", 0 },
		{ "update.current_created", 0 },
		{ "update.journal_committing", 1 },
		{ "commit.done", 1 },
	};
	static const struct sweep first_restore[] = {
		{ "update.current_created", 0 },
		{ "update.journal_restoring", 0 },
		{ "restore.new_removed", 0 },
		{ "restore.done", 0 },
	};

	(void)state;
	sweep(SC_UPDATE_ABORT, "A", "P", abort_pts, ARRAY_LEN(abort_pts), NULL, NULL);
	sweep(SC_FIRST_COMMIT, NULL, NULL, first_commit, ARRAY_LEN(first_commit), NULL, NULL);
	sweep(SC_FIRST_RESTORE, NULL, NULL, first_restore, ARRAY_LEN(first_restore), NULL, NULL);
}

static void
test_sweep_rollback(void **state)
{
	static const struct sweep commit_pts[] = {
		{ "rollback.journal_switching", 0 },
		{ "rollback.exchanged", 0 },
		{ "rollback.journal_committing", 1 },
		{ "commit.done", 1 },
	};
	static const struct sweep restore_pts[] = {
		{ "rollback.exchanged", 0 },
		{ "rollback.journal_restoring", 0 },
		{ "rollback_restore.exchanged", 0 },
		{ "rollback_restore.done", 0 },
	};
	struct journal_op op = { 0 };
	struct err err = ERR_INIT;

	(void)state;
	sweep(SC_ROLLBACK_COMMIT, "A", "P", commit_pts, ARRAY_LEN(commit_pts), "P", "A");
	sweep(SC_ROLLBACK_RESTORE, "A", "P", restore_pts, ARRAY_LEN(restore_pts), NULL, NULL);
	/* No prev: refused, nothing changed. */
	reset_root();
	make_base("A", NULL);
	assert_int_equal(store_rollback_begin(&st, &op, "fp", &err), -1);
	assert_int_equal(err.kind, ERR_NOT_FOUND);
	assert_state("A", NULL, "rollback without prev");
}

/* A crash during recovery itself, then recovery again. */
static void
test_crash_during_recovery(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	make_base("A", "P");
	assert_true(crash_child(SC_UPDATE_COMMIT, "update.old_to_prev"));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char what[256];
		struct err err = ERR_INIT;

		crash_at = "restore.old_active_back";
		crash_hits = 0;
		testhook_set(crash_hook);
		_exit(store_recover(&st, what, sizeof(what), &err) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == CRASH_EXIT);
	recover_ok("second recovery");
	assert_state("A", "P", "crash during recovery");
}

static void
test_update_twice_and_begin_refused(void **state)
{
	struct journal_op op = { 0 };
	struct err err = ERR_INIT;
	const char *first;

	(void)state;
	make_base("A", "P");
	run_scenario(SC_UPDATE_COMMIT);
	first = slot_id_of("active");
	assert_non_null(first);
	assert_state(first, "A", "first update");
	run_scenario(SC_UPDATE_COMMIT);
	assert_string_equal(slot_id_of("prev"), first);
	/* A pending journal blocks a new operation until recovery. */
	assert_int_equal(store_update_begin(&st, &op, "cc", "fp", &err), 0);
	assert_int_equal(store_update_begin(&st, &op, "cc", "fp", &err), -1);
	assert_int_equal(err.kind, ERR_BUSY);
	assert_int_equal(store_rollback_begin(&st, &op, "fp", &err), -1);
	assert_int_equal(err.kind, ERR_BUSY);
}

static void
test_quarantine_bounded(void **state)
{
	char p[PATH_MAX];
	int n = 0;
	FILE *f;

	(void)state;
	make_base("A", "P");
	for (int i = 0; i < 4; i++) {
		run_scenario(SC_UPDATE_RESTORE);
		assert_state("A", "P", "restore loop");
	}
	snprintf(p, sizeof(p), "ls %s/releases/failed | wc -l", root);
	f = popen(p, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &n), 1);
	pclose(f);
	assert_int_equal(n, 2); /* failed_keep */
}

static void
test_release_record(void **state)
{
	struct release_info ri;
	struct err err = ERR_INIT;
	char p[PATH_MAX];
	cJSON *o;

	(void)state;
	assert_int_equal(store_release_read(&st, "active", &ri, &err), 0);
	make_release("active", "X1");
	assert_int_equal(store_release_read(&st, "active", &ri, &err), 1);
	assert_string_equal(ri.id, "X1");
	assert_string_equal(ri.version, "v-X1");
	o = release_record_json(&ri, "active");
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "slot")->valuestring, "active");
	assert_string_equal(cJSON_GetObjectItem(o, "sha")->valuestring, "label-X1");
	cJSON_Delete(o);
	/* A damaged record is an error, not "absent". */
	snprintf(p, sizeof(p), "%s/releases/active/release.json", root);
	assert_int_equal(fs_write_atomic(p, "{\"id\":1}", 8, 0644), 0);
	assert_int_equal(store_release_read(&st, "active", &ri, &err), -1);
	assert_non_null(strstr(err_msg(&err), "id"));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(store_release_read(&st, "active", &ri, &err), -1);
}

static void
test_journal_and_history(void **state)
{
	struct journal_op op, back;
	struct err err = ERR_INIT;
	char p[PATH_MAX];
	cJSON *h, *e;

	(void)state;
	assert_int_equal(journal_read(root, &back, &err), 0);
	memset(&op, 0, sizeof(op));
	assert_int_equal(journal_new_id(op.id, NULL), 0);
	assert_int_equal(strlen(op.id), 25);
	op.kind = JOURNAL_ROLLBACK;
	op.phase = JOURNAL_RESTORING;
	snprintf(op.old_prev_id, sizeof(op.old_prev_id), "P");
	op.started = 1234;
	assert_int_equal(journal_write(root, &op, NULL), 0);
	assert_int_equal(journal_read(root, &back, &err), 1);
	assert_int_equal(back.kind, JOURNAL_ROLLBACK);
	assert_int_equal(back.phase, JOURNAL_RESTORING);
	assert_string_equal(back.old_prev_id, "P");
	assert_int_equal(back.started, 1234);
	/* Corrupt journal: an error, and recovery refuses to guess. */
	snprintf(p, sizeof(p), "%s/state/journal.json", root);
	assert_int_equal(fs_write_atomic(p, "{\"id\":\"x\",\"kind\":\"nope\"}", 25, 0600), 0);
	assert_int_equal(journal_read(root, &back, &err), -1);
	{
		char what[128];

		assert_int_equal(store_recover(&st, what, sizeof(what), &err), -1);
	}
	assert_int_equal(journal_clear(root, NULL), 0);
	assert_int_equal(journal_clear(root, NULL), 0);

	/* History: append, a torn line is skipped, bounded size. */
	for (int i = 0; i < 50; i++) {
		e = cJSON_CreateObject();
		assert_int_equal(json_add_int(e, "n", i), 0);
		assert_int_equal(json_add_str(e, "pad",
				     "................................................................"),
		    0);
		assert_int_equal(journal_history_append(root, e, 2000, NULL), 0);
		cJSON_Delete(e);
	}
	h = journal_history_read(root);
	assert_non_null(h);
	assert_true(cJSON_GetArraySize(h) > 5 && cJSON_GetArraySize(h) < 50);
	e = cJSON_GetArrayItem(h, cJSON_GetArraySize(h) - 1);
	assert_int_equal(cJSON_GetObjectItem(e, "n")->valueint, 49);
	cJSON_Delete(h);
	snprintf(p, sizeof(p), "%s/state/history.jsonl", root);
	{
		FILE *f = fopen(p, "a");

		assert_non_null(f);
		fputs("{\"n\":", f); /* torn write */
		fclose(f);
	}
	h = journal_history_read(root);
	assert_non_null(h);
	e = cJSON_GetArrayItem(h, cJSON_GetArraySize(h) - 1);
	assert_int_equal(cJSON_GetObjectItem(e, "n")->valueint, 49);
	cJSON_Delete(h);
}

static void
test_recover_leftovers(void **state)
{
	char p[PATH_MAX];

	(void)state;
	make_base("A", "P");
	/* Staging without a journal (crash after the clear of an abort...). */
	snprintf(p, sizeof(p), "%s/releases/active.new/x", root);
	assert_int_equal(fs_mkdir_p(p, 0755), 0);
	/* current pointing elsewhere is repaired. */
	snprintf(p, sizeof(p), "%s/current", root);
	assert_int_equal(fs_symlink_replace("releases/prev", p), 0);
	recover_ok("leftovers");
	assert_state("A", "P", "leftovers");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_release_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_and_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_twice_and_begin_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quarantine_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_leftovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_update_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_update_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_reinstall_keeps_prev, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_abort_and_first_install, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_recovery, setup, teardown),
	};

	log_init("test_store", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
