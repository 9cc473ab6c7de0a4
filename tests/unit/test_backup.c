/*
 * Unit tests for master/backup: a sealed and a plain round trip of a master
 * home (files, modes, registry rows), and the refusals that keep a restore
 * from ever overwriting or half-writing a home.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "master/backup.h"
#include "master/registry.h"
#include "pki/pki.h"
#include "tests/unit/tmpdir.h"

#define PASS "unit test passphrase"
#define FP "abababababababababababababababababababababababababababababababab"

struct fx {
	const char *dir;
	char home[PATH_MAX];
	char home2[PATH_MAX];
	char file[PATH_MAX];
};

static int
setup(void **state)
{
	struct err pe = ERR_INIT;
	struct fx *f = calloc(1, sizeof(*f));
	struct registry *reg = NULL;
	struct reg_host h;

	log_init("test_backup", LOG_LVL_ERROR);
	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("backup");
	if (f->dir == NULL) {
		return -1;
	}
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	snprintf(f->home2, sizeof(f->home2), "%s/restored", f->dir);
	snprintf(f->file, sizeof(f->file), "%s/backup", f->dir);
	if (pki_init(f->home, NULL, &pe) != 0 ||
	    registry_open(f->home, &reg, &pe) != REGISTRY_OK) {
		return -1;
	}
	memset(&h, 0, sizeof(h));
	snprintf(h.name, sizeof(h.name), "web1");
	snprintf(h.address, sizeof(h.address), "192.0.2.1");
	snprintf(h.agent_fp, sizeof(h.agent_fp), "%s", FP);
	if (registry_add_host(reg, &h, &pe) != REGISTRY_OK) {
		return -1;
	}
	*state = f;
	registry_close(reg);
	return 0;
}

static void
check_restored(struct fx *f)
{
	struct err pe = ERR_INIT;
	struct registry *reg = NULL;
	struct reg_host got;
	char a[PATH_MAX], b[PATH_MAX];
	char *x = NULL, *y = NULL;
	size_t xl = 0, yl = 0;
	struct stat st;

	assert_int_equal(registry_open(f->home2, &reg, &pe), REGISTRY_OK);
	assert_int_equal(registry_get_host(reg, "web1", &got, &pe), REGISTRY_OK);
	assert_string_equal(got.agent_fp, FP);
	registry_close(reg);
	tmpdir_fmt(a, sizeof(a), "%s/ca/ca.key", f->home);
	tmpdir_fmt(b, sizeof(b), "%s/ca/ca.key", f->home2);
	assert_int_equal(fs_read_file(a, 65536, &x, &xl), 0);
	assert_int_equal(fs_read_file(b, 65536, &y, &yl), 0);
	assert_int_equal(xl, yl);
	assert_memory_equal(x, y, xl);
	free(x);
	free(y);
	assert_int_equal(stat(b, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(f->home2, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

static void
test_sealed_round_trip(void **state)
{
	struct fx *f = *state;
	struct backup_result r;
	struct err e = ERR_INIT;
	struct stat st;

	assert_int_equal(backup_create(f->home, f->file, PASS, strlen(PASS), 10000, &r, &e), 0);
	assert_true(r.encrypted);
	assert_true(r.files >= 5);
	assert_int_equal(stat(f->file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The same file again is refused. */
	assert_int_equal(backup_create(f->home, f->file, PASS, strlen(PASS), 10000, &r, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	err_clear(&e);
	/* Wrong or missing passphrase: nothing appears. */
	assert_int_equal(backup_restore(f->home2, f->file, "not the one", 11, &r, &e), -1);
	assert_int_equal(e.kind, ERR_SIGNATURE);
	assert_int_not_equal(access(f->home2, F_OK), 0);
	err_clear(&e);
	assert_int_equal(backup_restore(f->home2, f->file, NULL, 0, &r, &e), -1);
	assert_int_equal(e.kind, ERR_USAGE);
	err_clear(&e);
	/* An empty directory is a fine target. */
	assert_int_equal(mkdir(f->home2, 0755), 0);
	assert_int_equal(backup_restore(f->home2, f->file, PASS, strlen(PASS), &r, &e), 0);
	check_restored(f);
	/* Never over a home that has something in it. */
	assert_int_equal(backup_restore(f->home2, f->file, PASS, strlen(PASS), &r, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
}

static void
test_plain_round_trip_and_refusals(void **state)
{
	struct fx *f = *state;
	struct backup_result r;
	struct err e = ERR_INIT;
	char inside[PATH_MAX];

	assert_int_equal(backup_create(f->home, f->file, NULL, 0, 0, &r, &e), 0);
	assert_false(r.encrypted);
	assert_int_equal(backup_restore(f->home2, f->file, NULL, 0, &r, &e), 0);
	check_restored(f);
	/* Not inside the home, not of something that is not a master home. */
	tmpdir_fmt(inside, sizeof(inside), "%s/ca/x", f->home);
	assert_int_equal(backup_create(f->home, inside, NULL, 0, 0, &r, &e), -1);
	assert_int_equal(e.kind, ERR_USAGE);
	err_clear(&e);
	snprintf(inside, sizeof(inside), "%s/other", f->dir);
	assert_int_equal(backup_create(f->dir, inside, NULL, 0, 0, &r, &e), -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
	err_clear(&e);
	/* A file that is not an archive. */
	assert_int_equal(fs_write_atomic(inside, "hello", 5, 0600), 0);
	snprintf(f->home2, sizeof(f->home2), "%s/fresh", f->dir);
	assert_int_equal(backup_restore(f->home2, inside, NULL, 0, &r, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	assert_int_not_equal(access(f->home2, F_OK), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sealed_round_trip, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_plain_round_trip_and_refusals, setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
