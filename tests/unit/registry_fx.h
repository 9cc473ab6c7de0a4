/*
 * The fixture of the registry's unit tests (test_registry.c,
 * test_registry_rollout.c): per test a HOME under the tests' temporary
 * directory (tmpdir.h) that does not exist yet (registry_open must create
 * it 0700), the registry opened there, and hosts added to it. Include after
 * <cmocka.h>; failures fail the test.
 */
#ifndef TANDEM_TESTS_UNIT_REGISTRY_FX_H
#define TANDEM_TESTS_UNIT_REGISTRY_FX_H

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "master/registry.h"
#include "tests/unit/tmpdir.h"

/* An agent certificate's fingerprint for the hosts the tests add. */
#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

struct regfx {
	char home[PATH_MAX];  /* TMPDIR/home, not made by the setup */
	char db[PATH_MAX];    /* HOME/registry.db */
	struct registry *reg; /* NULL until regfx_open() */
	struct err err;
};

/* cmocka setup: a fresh temporary directory and a struct regfx in *STATE. */
static inline int
regfx_setup(void **state)
{
	struct regfx *f = calloc(1, sizeof(*f));
	const char *dir = tmpdir_make("registry");

	assert_non_null(f);
	assert_non_null(dir);
	tmpdir_fmt(f->home, sizeof(f->home), "%s/home", dir);
	tmpdir_fmt(f->db, sizeof(f->db), "%s/home/registry.db", dir);
	*state = f;
	return 0;
}

/* cmocka teardown: the registry closed, the directory removed. */
static inline int
regfx_teardown(void **state)
{
	struct regfx *f = *state;

	registry_close(f->reg);
	assert_int_equal(tmpdir_remove(), 0);
	free(f);
	return 0;
}

/* Open the registry at F->home into F->reg. */
static inline void
regfx_open(struct regfx *f)
{
	if (registry_open(f->home, &f->reg, &f->err) != REGISTRY_OK) {
		fail_msg("registry_open: %s", err_msg(&f->err));
	}
}

/* A host NAME at ADDR with agent fingerprint FP_A, every other field empty. */
static inline struct reg_host
regfx_host(const char *name, const char *addr)
{
	struct reg_host h;

	memset(&h, 0, sizeof(h));
	assert_int_equal(strlcpy_chk(h.name, name, sizeof(h.name)), 0);
	assert_int_equal(strlcpy_chk(h.address, addr, sizeof(h.address)), 0);
	assert_int_equal(strlcpy_chk(h.agent_fp, FP_A, sizeof(h.agent_fp)), 0);
	return h;
}

/* Add H to the open registry. */
static inline void
regfx_add(struct regfx *f, const struct reg_host *h)
{
	if (registry_add_host(f->reg, h, &f->err) != REGISTRY_OK) {
		fail_msg("registry_add_host(%s): %s", h->name, err_msg(&f->err));
	}
}

/* Add the host NAME at 127.0.0.1. */
static inline void
regfx_add_host(struct regfx *f, const char *name)
{
	struct reg_host h = regfx_host(name, "127.0.0.1");

	regfx_add(f, &h);
}

#endif
