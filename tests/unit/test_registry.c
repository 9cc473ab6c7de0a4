/*
 * Unit tests of master/registry: each test gets a fresh temporary HOME.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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
#include "tests/unit/registry_fx.h"
#include "tests/unit/tmpdir.h"

#define FP_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FP_B_UPPER "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"

static void
test_create_modes_and_schema(void **state)
{
	struct regfx *f = *state;
	struct stat st;

	regfx_open(f);
	assert_int_equal(registry_schema_version(f->reg), 6);
	assert_int_equal(stat(f->home, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* SQLite gives the WAL and shared-memory files the database's mode. */
	struct reg_host h;
	memset(&h, 0, sizeof(h));
	assert_int_equal(strlcpy_chk(h.name, "w", sizeof(h.name)), 0);
	assert_int_equal(strlcpy_chk(h.address, "192.0.2.1", sizeof(h.address)), 0);
	assert_int_equal(strlcpy_chk(h.agent_fp, FP_A, sizeof(h.agent_fp)), 0);
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_OK);
	static const char *const sidecars[] = { "-wal", "-shm" };
	for (size_t i = 0; i < ARRAY_LEN(sidecars); i++) {
		char p[PATH_MAX + 8];
		assert_true(snprintf(p, sizeof(p), "%s%s", f->db, sidecars[i]) > 0);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
	}

	/* The schema version is recorded in its own table. */
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &q,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 6);
	assert_int_equal(sqlite3_step(q), SQLITE_DONE);
	sqlite3_finalize(q);
	q = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static void
test_add_get_defaults(void **state)
{
	struct regfx *f = *state;
	struct reg_host h = regfx_host("web1", "192.0.2.10"), got;

	regfx_open(f);
	assert_int_equal(strlcpy_chk(h.notes, "rack 4; it's 'quoted' \"; DROP TABLE hosts; --",
	    sizeof(h.notes)), 0);
	regfx_add(f, &h);
	assert_int_equal(registry_get_host(f->reg, "web1", &got, &f->err), REGISTRY_OK);
	assert_string_equal(got.name, "web1");
	assert_string_equal(got.address, "192.0.2.10");
	assert_int_equal(got.agent_port, REG_DEFAULT_AGENT_PORT);
	assert_int_equal(got.updater_port, REG_DEFAULT_UPDATER_PORT);
	assert_string_equal(got.agent_fp, FP_A);
	assert_string_equal(got.updater_fp, "");
	assert_string_equal(got.notes, h.notes);
	assert_true(got.enrolled_at > 0);
	assert_int_equal(got.decommissioned_at, 0);

	/* Explicit ports and an updater fingerprint, given in upper case. */
	struct reg_host h2 = regfx_host("db-1.example", "db1.example.net");
	h2.agent_port = 9001;
	h2.updater_port = 9002;
	h2.enrolled_at = 1700000000;
	assert_int_equal(strlcpy_chk(h2.updater_fp, FP_B_UPPER, sizeof(h2.updater_fp)), 0);
	regfx_add(f, &h2);
	/* Names are case-insensitive. */
	assert_int_equal(registry_get_host(f->reg, "DB-1.EXAMPLE", &got, &f->err),
	    REGISTRY_OK);
	assert_string_equal(got.name, "db-1.example");
	assert_int_equal(got.agent_port, 9001);
	assert_int_equal(got.updater_port, 9002);
	assert_string_equal(got.updater_fp, FP_B);
	assert_int_equal(got.enrolled_at, 1700000000);
}

static void
test_duplicates_refused(void **state)
{
	struct regfx *f = *state;
	struct reg_host h = regfx_host("web1", "192.0.2.10");

	regfx_open(f);
	regfx_add(f, &h);
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_EXISTS);
	assert_non_null(strstr(err_msg(&f->err), "web1"));
	assert_non_null(strstr(err_msg(&f->err), "already registered"));
	assert_int_equal(f->err.kind, ERR_CONFLICT);
	struct reg_host upper = regfx_host("WEB1", "192.0.2.11");
	assert_int_equal(registry_add_host(f->reg, &upper, &f->err), REGISTRY_EXISTS);
	/* A decommissioned name stays taken. */
	assert_int_equal(registry_decommission(f->reg, "web1", 0, &f->err), REGISTRY_OK);
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_EXISTS);
}

static void
test_invalid_arguments(void **state)
{
	struct regfx *f = *state;
	static const char *const bad_names[] = {
		"", "-web", ".web", "updater@web1", "web 1", "web/1", "wé", "a\nb",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 64 */
	};

	regfx_open(f);
	for (size_t i = 0; i < ARRAY_LEN(bad_names); i++) {
		struct reg_host h = regfx_host("x", "192.0.2.1");
		memset(h.name, 0, sizeof(h.name));
		memcpy(h.name, bad_names[i], strnlen(bad_names[i], sizeof(h.name) - 1));
		if (strlen(bad_names[i]) >= sizeof(h.name)) {
			assert_false(registry_name_valid(bad_names[i]));
			continue;
		}
		assert_int_equal(registry_add_host(f->reg, &h, &f->err),
		    REGISTRY_INVALID);
	}
	assert_true(registry_name_valid("a"));
	assert_true(registry_name_valid("web_1.prod-2"));

	struct reg_host h = regfx_host("web1", "192.0.2.1");
	h.agent_fp[5] = 'x';
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_INVALID);
	assert_non_null(strstr(err_msg(&f->err), "fingerprint"));
	assert_int_equal(f->err.kind, ERR_BAD_REQUEST);
	h = regfx_host("web1", "192.0.2.1");
	h.agent_fp[63] = '\0';
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_INVALID);
	h = regfx_host("web1", "192.0.2.1");
	h.agent_port = 70000;
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_INVALID);
	h = regfx_host("web1", "192.0.2.1");
	h.updater_port = -1;
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_INVALID);
	h = regfx_host("web1", "");
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_INVALID);
	h = regfx_host("web1", "10.0.0.1 evil");
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_INVALID);
	h = regfx_host("web1", "192.0.2.1");
	assert_int_equal(strlcpy_chk(h.updater_fp, "abc", sizeof(h.updater_fp)), 0);
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_INVALID);
	assert_int_equal(registry_set_updater_fp(f->reg, "web1", "zz", &f->err),
	    REGISTRY_INVALID);

	/* Nothing invalid got in. */
	struct reg_host *list = NULL;
	size_t n = 99;
	assert_int_equal(registry_list_hosts(f->reg, 1, &list, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 0);
	assert_null(list);
}

/* A renewal's pin rollover: next recorded, both read back, promoted only if still the same. */
static void
test_next_fingerprints(void **state)
{
	struct regfx *f = *state;
	struct reg_host h = regfx_host("web1", "192.0.2.1"), got;

	regfx_open(f);
	assert_int_equal(strlcpy_chk(h.updater_fp, FP_A, sizeof(h.updater_fp)), 0);
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_OK);
	assert_int_equal(registry_get_host(f->reg, "web1", &got, &f->err),
	    REGISTRY_OK);
	assert_string_equal(got.updater_fp_next, "");
	assert_string_equal(got.agent_fp_next, "");
	assert_int_equal(registry_set_next_fp(f->reg, "web1", 0, FP_B_UPPER, &f->err), REGISTRY_OK);
	assert_int_equal(registry_set_next_fp(f->reg, "web1", 1, FP_B, &f->err),
	    REGISTRY_OK);
	assert_int_equal(registry_get_host(f->reg, "web1", &got, &f->err),
	    REGISTRY_OK);
	assert_string_equal(got.updater_fp, FP_A);
	assert_string_equal(got.updater_fp_next, FP_B);
	assert_string_equal(got.agent_fp_next, FP_B);
	/* Promoting another fingerprint than the recorded next one changes nothing. */
	assert_int_equal(registry_promote_next_fp(f->reg, "web1", 0, FP_A, &f->err), REGISTRY_NOTFOUND);
	assert_int_equal(registry_promote_next_fp(f->reg, "web1", 0, "zz", &f->err), REGISTRY_INVALID);
	assert_int_equal(registry_promote_next_fp(f->reg, "web1", 0, FP_B, &f->err), REGISTRY_OK);
	assert_int_equal(registry_get_host(f->reg, "web1", &got, &f->err),
	    REGISTRY_OK);
	assert_string_equal(got.updater_fp, FP_B);
	assert_string_equal(got.updater_fp_next, "");
	assert_string_equal(got.agent_fp_next, FP_B); /* the agent's is its own */
	/* Cleared again (a renewal given up), bad input, unknown host. */
	assert_int_equal(registry_set_next_fp(f->reg, "web1", 1, NULL, &f->err),
	    REGISTRY_OK);
	assert_int_equal(registry_get_host(f->reg, "web1", &got, &f->err),
	    REGISTRY_OK);
	assert_string_equal(got.agent_fp_next, "");
	assert_string_equal(got.agent_fp, FP_A);
	assert_int_equal(registry_set_next_fp(f->reg, "web1", 1, "abc", &f->err),
	    REGISTRY_INVALID);
	assert_int_equal(registry_set_next_fp(f->reg, "nope", 1, FP_B, &f->err),
	    REGISTRY_NOTFOUND);
}

/* The SANs a host was enrolled with: in order, replaced whole, bounded, per host. */
static void
test_host_sans(void **state)
{
	struct regfx *f = *state;
	struct reg_host h = regfx_host("web1", "192.0.2.1"), h2 = regfx_host("web2", "192.0.2.2");
	const char *sans[] = { "web1.example.net", "10.0.0.5", "2001:db8::1" };
	const char *many[REG_SANS_MAX + 1];
	char out[REG_SANS_MAX][REG_SAN_LEN + 1], longname[REG_SAN_LEN + 2];
	size_t n = 99;

	regfx_open(f);
	assert_int_equal(registry_add_host(f->reg, &h, &f->err), REGISTRY_OK);
	assert_int_equal(registry_add_host(f->reg, &h2, &f->err), REGISTRY_OK);
	assert_int_equal(registry_get_sans(f->reg, "web1", out, REG_SANS_MAX, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 0);
	assert_int_equal(registry_set_sans(f->reg, "WEB1", sans, 3, &f->err), REGISTRY_OK);
	assert_int_equal(registry_get_sans(f->reg, "web1", out, REG_SANS_MAX, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 3);
	assert_string_equal(out[0], "web1.example.net");
	assert_string_equal(out[1], "10.0.0.5");
	assert_string_equal(out[2], "2001:db8::1");
	/* MAX bounds what is copied. */
	assert_int_equal(registry_get_sans(f->reg, "web1", out, 2, &n, &f->err), REGISTRY_OK);
	assert_int_equal(n, 2);
	/* Another host's are its own; a replacement is whole. */
	assert_int_equal(registry_get_sans(f->reg, "web2", out, REG_SANS_MAX, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 0);
	assert_int_equal(registry_set_sans(f->reg, "web1", sans + 2, 1, &f->err), REGISTRY_OK);
	assert_int_equal(registry_get_sans(f->reg, "web1", out, REG_SANS_MAX, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 1);
	assert_string_equal(out[0], "2001:db8::1");
	/* Refused: too many, empty, too long, unknown host; nothing changes. */
	for (size_t i = 0; i <= REG_SANS_MAX; i++) {
		many[i] = "a.example";
	}
	assert_int_equal(registry_set_sans(f->reg, "web1", many, REG_SANS_MAX + 1, &f->err),
	    REGISTRY_INVALID);
	many[0] = "";
	assert_int_equal(registry_set_sans(f->reg, "web1", many, 1, &f->err), REGISTRY_INVALID);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	many[0] = longname;
	assert_int_equal(registry_set_sans(f->reg, "web1", many, 1, &f->err), REGISTRY_INVALID);
	assert_int_equal(registry_set_sans(f->reg, "nope", sans, 1, &f->err), REGISTRY_NOTFOUND);
	assert_int_equal(registry_get_sans(f->reg, "nope", out, REG_SANS_MAX, &n, &f->err),
	    REGISTRY_NOTFOUND);
	assert_int_equal(registry_get_sans(f->reg, "web1", out, REG_SANS_MAX, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 1);
}

static void
test_missing_host(void **state)
{
	struct regfx *f = *state;
	struct reg_host got;
	struct reg_push p;
	struct reg_push *log = NULL;
	size_t n = 0;

	regfx_open(f);
	assert_int_equal(registry_get_host(f->reg, "nope", &got, &f->err),
	    REGISTRY_NOTFOUND);
	assert_non_null(strstr(err_msg(&f->err), "nope"));
	assert_int_equal(f->err.kind, ERR_NOT_FOUND);
	assert_int_equal(registry_set_updater_fp(f->reg, "nope", FP_B, &f->err),
	    REGISTRY_NOTFOUND);
	assert_int_equal(registry_decommission(f->reg, "nope", 0, &f->err),
	    REGISTRY_NOTFOUND);
	memset(&p, 0, sizeof(p));
	assert_int_equal(strlcpy_chk(p.host, "nope", sizeof(p.host)), 0);
	assert_int_equal(strlcpy_chk(p.result, "updated", sizeof(p.result)), 0);
	assert_int_equal(registry_log_push(f->reg, &p, &f->err), REGISTRY_NOTFOUND);
	assert_int_equal(registry_push_history(f->reg, "nope", 0, &log, &n, &f->err), REGISTRY_NOTFOUND);
	/* A name is a value, never SQL. */
	assert_int_equal(registry_get_host(f->reg, "x' OR '1'='1", &got, &f->err),
	    REGISTRY_NOTFOUND);
}

static void
test_decommission_excluded(void **state)
{
	struct regfx *f = *state;
	struct reg_host a = regfx_host("alpha", "192.0.2.1"), b = regfx_host("bravo", "192.0.2.2"),
	    c = regfx_host("charlie", "192.0.2.3"), got;
	struct reg_host *list = NULL;
	size_t n = 0;

	regfx_open(f);
	/* Added out of order: listings are sorted by name. */
	regfx_add(f, &c);
	regfx_add(f, &a);
	regfx_add(f, &b);
	assert_int_equal(registry_decommission(f->reg, "bravo", 1700000100, &f->err), REGISTRY_OK);
	/* A repeat keeps the first time. */
	assert_int_equal(registry_decommission(f->reg, "bravo", 1700000999, &f->err), REGISTRY_OK);
	assert_int_equal(registry_get_host(f->reg, "bravo", &got, &f->err), REGISTRY_OK);
	assert_int_equal(got.decommissioned_at, 1700000100);

	assert_int_equal(registry_list_hosts(f->reg, 0, &list, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "alpha");
	assert_string_equal(list[1].name, "charlie");
	free(list);
	list = NULL;
	assert_int_equal(registry_list_hosts(f->reg, 1, &list, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].name, "alpha");
	assert_string_equal(list[1].name, "bravo");
	assert_int_equal(list[1].decommissioned_at, 1700000100);
	assert_string_equal(list[2].name, "charlie");
	free(list);
}

static void
test_updater_fp_and_push_log(void **state)
{
	struct regfx *f = *state;
	struct reg_host h = regfx_host("web1", "192.0.2.1"), other = regfx_host("web2", "192.0.2.2"), got;
	struct reg_push p, *log = NULL;
	char long_detail[REG_DETAIL_MAX + 2];
	size_t n = 0;

	regfx_open(f);
	regfx_add(f, &h);
	regfx_add(f, &other);
	assert_int_equal(registry_set_updater_fp(f->reg, "web1", FP_B_UPPER, &f->err), REGISTRY_OK);
	assert_int_equal(registry_get_host(f->reg, "web1", &got, &f->err), REGISTRY_OK);
	assert_string_equal(got.updater_fp, FP_B);

	/* Empty history first. */
	assert_int_equal(registry_push_history(f->reg, "web1", 0, &log, &n, &f->err), REGISTRY_OK);
	assert_int_equal(n, 0);
	assert_null(log);

	memset(&p, 0, sizeof(p));
	assert_int_equal(strlcpy_chk(p.host, "web1", sizeof(p.host)), 0);
	assert_int_equal(strlcpy_chk(p.sha256, FP_A, sizeof(p.sha256)), 0);
	assert_int_equal(strlcpy_chk(p.result, "updated", sizeof(p.result)), 0);
	p.at = 1000;
	assert_int_equal(registry_log_push(f->reg, &p, &f->err), REGISTRY_OK);
	p.at = 3000;
	assert_int_equal(strlcpy_chk(p.result, "rolled-back", sizeof(p.result)), 0);
	assert_int_equal(strlcpy_chk(p.detail, "probe failed: 503", sizeof(p.detail)), 0);
	assert_int_equal(registry_log_push(f->reg, &p, &f->err), REGISTRY_OK);
	/* A rollback has no tarball; a long detail is cut at a UTF-8 boundary. */
	p.at = 2000;
	p.sha256[0] = '\0';
	assert_int_equal(strlcpy_chk(p.result, "rollback", sizeof(p.result)), 0);
	memset(long_detail, 'x', sizeof(long_detail));
	memcpy(long_detail + REG_DETAIL_MAX - 1, "\xc3\xa9", 2); /* 2-byte char across the cut */
	long_detail[REG_DETAIL_MAX + 1] = '\0';
	registry_push_set_detail(&p, long_detail);
	assert_int_equal(strlen(p.detail), REG_DETAIL_MAX - 1);
	{
		struct reg_push q;
		registry_push_set_detail(&q, "short \xc3\xa9");
		assert_string_equal(q.detail, "short \xc3\xa9");
		registry_push_set_detail(&q, NULL);
		assert_string_equal(q.detail, "");
	}
	assert_int_equal(registry_log_push(f->reg, &p, &f->err), REGISTRY_OK);
	/* Another host's log stays separate. */
	assert_int_equal(strlcpy_chk(p.host, "web2", sizeof(p.host)), 0);
	assert_int_equal(strlcpy_chk(p.result, "failed", sizeof(p.result)), 0);
	assert_int_equal(registry_log_push(f->reg, &p, &f->err), REGISTRY_OK);

	assert_int_equal(registry_push_history(f->reg, "web1", 0, &log, &n, &f->err), REGISTRY_OK);
	assert_int_equal(n, 3);
	assert_int_equal(log[0].at, 3000);
	/* Written in the old spelling, read in the one spelling. */
	assert_string_equal(log[0].result, "rolled_back");
	assert_string_equal(log[0].detail, "probe failed: 503");
	assert_string_equal(log[0].sha256, FP_A);
	assert_string_equal(log[0].host, "web1");
	assert_int_equal(log[1].at, 2000);
	assert_string_equal(log[1].sha256, "");
	assert_int_equal(strlen(log[1].detail), REG_DETAIL_MAX - 1);
	assert_int_equal(log[2].at, 1000);
	assert_string_equal(log[2].detail, "");
	free(log);
	log = NULL;
	assert_int_equal(registry_push_history(f->reg, "web1", 1, &log, &n, &f->err), REGISTRY_OK);
	assert_int_equal(n, 1);
	assert_int_equal(log[0].at, 3000);
	free(log);

	/* Bad sha256 and result words are refused. */
	assert_int_equal(strlcpy_chk(p.sha256, "1234", sizeof(p.sha256)), 0);
	assert_int_equal(registry_log_push(f->reg, &p, &f->err), REGISTRY_INVALID);
	p.sha256[0] = '\0';
	assert_int_equal(strlcpy_chk(p.result, "Updated OK", sizeof(p.result)), 0);
	assert_int_equal(registry_log_push(f->reg, &p, &f->err), REGISTRY_INVALID);
	p.result[0] = '\0';
	assert_int_equal(registry_log_push(f->reg, &p, &f->err), REGISTRY_INVALID);
}

#define WRITERS 4
#define PUSHES_EACH 25

struct writer {
	struct registry *reg;
	int id;
	int failures;
	struct err err;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct reg_push p;

	memset(&p, 0, sizeof(p));
	memcpy(p.host, "web1", 5);
	memcpy(p.result, "updated", 8);
	for (int i = 0; i < PUSHES_EACH; i++) {
		p.at = 1000000 + w->id * PUSHES_EACH + i;
		if (registry_log_push(w->reg, &p, &w->err) != REGISTRY_OK) {
			w->failures++;
		}
	}
	return NULL;
}

/*
 * Parallel pushes log from several threads: two threads per handle (the
 * handle serialises them) and two handles (SQLite's busy timeout makes the
 * second writer wait for the first instead of failing).
 */
static void
test_concurrent_writers(void **state)
{
	struct regfx *f = *state;
	struct reg_host h = regfx_host("web1", "192.0.2.1");
	struct registry *second = NULL;
	struct writer w[WRITERS];
	pthread_t t[WRITERS];
	struct reg_push *log = NULL;
	size_t n = 0;

	regfx_open(f);
	regfx_add(f, &h);
	assert_int_equal(registry_open(f->home, &second, &f->err), REGISTRY_OK);
	for (int i = 0; i < WRITERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].reg = i % 2 == 0 ? f->reg : second;
		w[i].id = i;
		assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < WRITERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (w[i].failures != 0) {
			fail_msg("writer %d: %d failures, last: %s", i, w[i].failures, err_msg(&w[i].err));
		}
	}
	registry_close(second);
	assert_int_equal(registry_push_history(f->reg, "web1", 0, &log, &n, &f->err), REGISTRY_OK);
	assert_int_equal(n, WRITERS * PUSHES_EACH);
	for (size_t i = 1; i < n; i++) {
		assert_true(log[i - 1].at > log[i].at);
	}
	free(log);
}

static void
test_reopen_persistence(void **state)
{
	struct regfx *f = *state;
	struct reg_host h = regfx_host("web1", "192.0.2.1"), got;

	regfx_open(f);
	regfx_add(f, &h);
	assert_int_equal(registry_set_updater_fp(f->reg, "web1", FP_B, &f->err),
	    REGISTRY_OK);
	registry_close(f->reg);
	f->reg = NULL;
	regfx_open(f);
	assert_int_equal(registry_schema_version(f->reg), 6);
	assert_int_equal(registry_get_host(f->reg, "web1", &got, &f->err), REGISTRY_OK);
	assert_string_equal(got.updater_fp, FP_B);
	/* Two handles on one file see each other's writes. */
	struct registry *second = NULL;
	assert_int_equal(registry_open(f->home, &second, &f->err), REGISTRY_OK);
	struct reg_host h2 = regfx_host("web2", "192.0.2.2");
	assert_int_equal(registry_add_host(second, &h2, &f->err), REGISTRY_OK);
	registry_close(second);
	assert_int_equal(registry_get_host(f->reg, "web2", &got, &f->err), REGISTRY_OK);
}

static void
write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(fs_write_all(fd, data, len), 0);
	assert_int_equal(close(fd), 0);
}

static void
test_not_a_database(void **state)
{
	struct regfx *f = *state;
	char junk[8192];

	assert_int_equal(fs_mkdir_p(f->home, 0700), 0);
	for (size_t i = 0; i < sizeof(junk); i++) {
		junk[i] = (char)(i * 7 + 3);
	}
	memcpy(junk, "this is not a database at all\n", 30);
	write_file(f->db, junk, sizeof(junk));
	assert_int_equal(registry_open(f->home, &f->reg, &f->err), REGISTRY_ERR);
	assert_null(f->reg);
	assert_non_null(strstr(err_msg(&f->err), f->db));
	assert_non_null(strstr(err_msg(&f->err), "not a usable tandem registry"));
	assert_int_equal(f->err.kind, ERR_FORMAT);
}

static void
test_foreign_and_newer_database(void **state)
{
	struct regfx *f = *state;
	sqlite3 *db = NULL;

	assert_int_equal(fs_mkdir_p(f->home, 0700), 0);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE photos (id INTEGER)", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(registry_open(f->home, &f->reg, &f->err), REGISTRY_ERR);
	assert_non_null(strstr(err_msg(&f->err), "not a tandem registry"));
	assert_int_equal(unlink(f->db), 0);

	/* A registry from a future schema is refused, not "migrated" backwards. */
	regfx_open(f);
	registry_close(f->reg);
	f->reg = NULL;
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL,
	    NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(registry_open(f->home, &f->reg, &f->err), REGISTRY_ERR);
	assert_non_null(strstr(err_msg(&f->err), "newer"));
	assert_int_equal(f->err.kind, ERR_FORMAT);

	/* Something other than a file in its place. */
	assert_int_equal(unlink(f->db), 0);
	assert_int_equal(mkdir(f->db, 0700), 0);
	assert_int_equal(registry_open(f->home, &f->reg, &f->err), REGISTRY_ERR);
	assert_non_null(strstr(err_msg(&f->err), "not a regular file"));
}

static void
test_revocations_and_crl_number(void **state)
{
	struct regfx *f = *state;
	struct reg_revocation r, *list = NULL;
	size_t n = 0;
	unsigned long long num = 0, num2 = 0;
	time_t tu = 0, nu = 0;

	regfx_open(f);
	assert_int_equal(registry_crl_state(f->reg, &num, &tu, &nu, &f->err),
	    REGISTRY_NOTFOUND);
	memset(&r, 0, sizeof(r));
	snprintf(r.serial, sizeof(r.serial), "0abc12");
	snprintf(r.fp, sizeof(r.fp), "%s", FP_A);
	snprintf(r.subject, sizeof(r.subject), "web1");
	r.reason = 1;
	r.at = 1700000000;
	assert_int_equal(registry_revoke(f->reg, &r, &f->err), REGISTRY_OK);
	/* Revoking twice changes nothing. */
	r.reason = 4;
	assert_int_equal(registry_revoke(f->reg, &r, &f->err), REGISTRY_EXISTS);
	snprintf(r.serial, sizeof(r.serial), "ABC");
	assert_int_equal(registry_revoke(f->reg, &r, &f->err), REGISTRY_INVALID);
	snprintf(r.serial, sizeof(r.serial), "ff");
	r.fp[0] = '\0';
	r.at = 0;
	assert_int_equal(registry_revoke(f->reg, &r, &f->err), REGISTRY_OK);
	assert_int_equal(registry_revocations(f->reg, &list, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].serial, "0abc12");
	assert_string_equal(list[0].fp, FP_A);
	assert_int_equal(list[0].reason, 1);
	assert_string_equal(list[1].serial, "ff");
	assert_true(list[1].at >= 1700000000);
	free(list);

	/* CRL numbers only grow, and survive a reopen. */
	assert_int_equal(registry_crl_next(f->reg, 100, 200, &num, &f->err),
	    REGISTRY_OK);
	assert_int_equal(num, 1);
	assert_int_equal(registry_crl_next(f->reg, 300, 400, &num2, &f->err),
	    REGISTRY_OK);
	assert_int_equal(num2, 2);
	registry_close(f->reg);
	f->reg = NULL;
	regfx_open(f);
	assert_int_equal(registry_crl_state(f->reg, &num, &tu, &nu, &f->err),
	    REGISTRY_OK);
	assert_int_equal(num, 2);
	assert_int_equal(tu, 300);
	assert_int_equal(nu, 400);
}

/* A registry of schema 1 (as shipped before) is migrated with its data kept. */
static void
test_upgrade_from_v1(void **state)
{
	struct regfx *f = *state;
	sqlite3 *db = NULL;
	struct reg_host got;
	struct reg_push *log = NULL;
	size_t n = 0;
	static const char v1[] =
	    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
	    "INSERT INTO schema_version (version) VALUES (1);"
	    "CREATE TABLE hosts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	    " address TEXT NOT NULL, agent_port INTEGER NOT NULL DEFAULT 8765,"
	    " updater_port INTEGER NOT NULL DEFAULT 8766, agent_fp TEXT NOT NULL,"
	    " updater_fp TEXT, notes TEXT NOT NULL DEFAULT '', enrolled_at INTEGER NOT NULL,"
	    " decommissioned_at INTEGER);"
	    "CREATE TABLE pushes (id INTEGER PRIMARY KEY, host_id INTEGER NOT NULL REFERENCES"
	    " hosts (id), at INTEGER NOT NULL, sha256 TEXT NOT NULL, result TEXT NOT NULL,"
	    " detail TEXT NOT NULL DEFAULT '');"
	    "CREATE INDEX pushes_host_at ON pushes (host_id, at);"
	    "INSERT INTO hosts (name, address, agent_fp, enrolled_at) VALUES ('old1', '192.0.2.9',"
	    " '" FP_A "', 1600000000);"
	    "INSERT INTO pushes (host_id, at, sha256, result) VALUES (1, 1600000100, '', 'updated');";
	struct reg_revocation r;

	assert_int_equal(fs_mkdir_p(f->home, 0700), 0);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, v1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	regfx_open(f);
	assert_int_equal(registry_schema_version(f->reg), 6);
	assert_int_equal(registry_get_host(f->reg, "old1", &got, &f->err),
	    REGISTRY_OK);
	assert_string_equal(got.agent_fp, FP_A);
	assert_int_equal(got.enrolled_at, 1600000000);
	assert_int_equal(registry_push_history(f->reg, "old1", 0, &log, &n, &f->err),
	    REGISTRY_OK);
	assert_int_equal(n, 1);
	free(log);
	memset(&r, 0, sizeof(r));
	snprintf(r.serial, sizeof(r.serial), "01");
	assert_int_equal(registry_revoke(f->reg, &r, &f->err), REGISTRY_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_modes_and_schema, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_host_sans, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_add_get_defaults, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_refused, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_invalid_arguments, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_missing_host, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_decommission_excluded, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_updater_fp_and_push_log, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_reopen_persistence, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_foreign_and_newer_database, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_revocations_and_crl_number, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_from_v1, regfx_setup, regfx_teardown),
		cmocka_unit_test_setup_teardown(test_next_fingerprints, regfx_setup, regfx_teardown),
	};

	log_init("test_registry", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
