/*
 * Unit tests for pki/hostcert, the renewal state machine a host runs: two
 * renewals and a confirm, an idempotent retry, the certificates it refuses,
 * and a crash (a forked child _exit()ing at each test point) at every step:
 * after recovery the pair in force is always a whole pair, old or new, and
 * a retry finishes the renewal.
 */
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

#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/testhook.h"
#include "common/tls.h"
#include "pki/hostcert.h"
#include "pki/pki.h"
#include "pki/trust.h"
#include "tests/unit/tmpdir.h"

struct fx {
	const char *dir;
	char home[PATH_MAX];
	char home2[PATH_MAX];
	char ca[PATH_MAX];
	char tls[PATH_MAX];
	char boot_crt[PATH_MAX];
	char boot_key[PATH_MAX];
};

static int
setup(void **state)
{
	struct err pe = ERR_INIT;
	struct fx *f = calloc(1, sizeof(*f));
	struct pki_issue_opts o;
	char out[PATH_MAX];

	log_init("test_hostcert", LOG_LVL_ERROR);
	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("hostcert");
	if (f->dir == NULL) {
		return -1;
	}
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	snprintf(f->home2, sizeof(f->home2), "%s/other", f->dir);
	tmpdir_fmt(f->ca, sizeof(f->ca), "%s/ca/ca.crt", f->home);
	snprintf(f->tls, sizeof(f->tls), "%s/tls", f->dir);
	snprintf(out, sizeof(out), "%s/boot", f->dir);
	tmpdir_fmt(f->boot_crt, sizeof(f->boot_crt), "%s/updater@web1.crt", out);
	tmpdir_fmt(f->boot_key, sizeof(f->boot_key), "%s/updater@web1.key", out);
	if (pki_init(f->home, NULL, &pe) != 0 ||
	    pki_init(f->home2, NULL, &pe) != 0 || fs_mkdir_p(out, 0700) != 0) {
		return -1;
	}
	pki_issue_opts_init(&o);
	o.name = "web1";
	o.role = TLS_ROLE_UPDATER;
	o.key_out = f->boot_key;
	o.cert_out = f->boot_crt;
	if (pki_issue(f->home, &o, &pe) != 0) {
		return -1;
	}
	*state = f;
	return 0;
}

/* The master's part: certify CSR as NAME's ROLE with HOME's CA; the PEM into *OUT. */
static void
sign(const char *home, const char *dir, const char *csr, const char *name, enum tls_role role,
    char **out, size_t *len)
{
	struct err pe = ERR_INIT;
	struct pki_issue_opts o;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/signed.crt", dir);
	pki_issue_opts_init(&o);
	o.name = name;
	o.role = role;
	o.cert_out = path;
	o.force = 1;
	o.csr = (const unsigned char *)csr;
	o.csr_len = strlen(csr);
	if (pki_issue(home, &o, &pe) != 0) {
		fail_msg("pki_issue: %s", err_msg(&pe));
	}
	assert_int_equal(fs_read_file(path, 65536, out, len), 0);
}

/* Fingerprint of the pair in force (renewed or bootstrap), after checking it loads. */
static void
in_force(struct fx *f, char fp[TLS_FP_HEX_LEN + 1], int *renewed)
{
	struct err err = ERR_INIT;
	char c[4096], k[4096];
	struct err e = ERR_INIT;
	struct tls_opts to;
	struct tls_ctx *ctx = NULL;

	assert_int_equal(trust_identity_paths(f->tls, f->boot_crt, f->boot_key, c, k, renewed, &e),
	    0);
	tls_opts_init(&to);
	to.ca_file = f->ca;
	to.cert_file = c;
	to.key_file = k;
	if (tls_server_new(&to, &ctx, &err) != 0) {
		fail_msg("the pair in force does not load: %s", err_msg(&err));
	}
	snprintf(fp, TLS_FP_HEX_LEN + 1, "%s", tls_ctx_own_fingerprint(ctx));
	tls_ctx_free(ctx);
}

static void
renew(struct fx *f, struct hostcert_installed *got)
{
	struct err e = ERR_INIT;
	char *csr = NULL, *crt = NULL;
	size_t len = 0;

	assert_int_equal(hostcert_prepare(f->tls, "updater@web1", &csr, &e), 0);
	sign(f->home, f->dir, csr, "web1", TLS_ROLE_UPDATER, &crt, &len);
	if (hostcert_install(f->tls, (const unsigned char *)crt, len, f->ca, "updater@web1", NULL,
		got, &e) != 0) {
		fail_msg("install: %s", err_msg(&e));
	}
	free(csr);
	free(crt);
}

static int
exists(const struct fx *f, const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	tmpdir_fmt(p, sizeof(p), "%s/%s", f->tls, name);
	return lstat(p, &st) == 0;
}

static void
test_two_renewals_and_confirm(void **state)
{
	struct fx *f = *state;
	struct hostcert_installed g1, g2, cur, prev;
	struct err e = ERR_INIT;
	char fp[TLS_FP_HEX_LEN + 1];
	int renewed;

	in_force(f, fp, &renewed);
	assert_false(renewed);
	assert_int_equal(hostcert_in_force(f->tls, NULL, &cur, &prev, &e), 0);
	renew(f, &g1);
	assert_int_equal(hostcert_in_force(f->tls, NULL, &cur, &prev, &e), HOSTCERT_HAVE_CURRENT);
	assert_string_equal(cur.fingerprint, g1.fingerprint);
	assert_int_equal(cur.gen, 1);
	assert_string_equal(prev.fingerprint, "");
	assert_int_equal(g1.gen, 1);
	in_force(f, fp, &renewed);
	assert_true(renewed);
	assert_string_equal(fp, g1.fingerprint);
	assert_false(exists(f, "previous")); /* the bootstrap pair was in use */
	assert_false(exists(f, "pending"));
	renew(f, &g2);
	assert_int_equal(g2.gen, 2);
	in_force(f, fp, &renewed);
	assert_string_equal(fp, g2.fingerprint);
	assert_true(exists(f, "previous") && exists(f, "gen-1"));
	assert_int_equal(hostcert_in_force(f->tls, NULL, &cur, &prev, &e),
	    HOSTCERT_HAVE_CURRENT | HOSTCERT_HAVE_PREVIOUS);
	assert_string_equal(cur.fingerprint, g2.fingerprint);
	assert_string_equal(prev.fingerprint, g1.fingerprint);
	assert_int_equal(hostcert_confirm(f->tls, &e), 0);
	assert_int_equal(hostcert_in_force(f->tls, NULL, &cur, &prev, &e), HOSTCERT_HAVE_CURRENT);
	assert_false(exists(f, "previous") || exists(f, "gen-1"));
	assert_true(exists(f, "gen-2"));
	in_force(f, fp, &renewed);
	assert_string_equal(fp, g2.fingerprint);
}

static void
test_retry_and_refusals(void **state)
{
	struct fx *f = *state;
	struct hostcert_installed got, again;
	struct err e = ERR_INIT;
	char *csr = NULL, *crt = NULL, *other = NULL, *wrong = NULL;
	size_t len = 0, olen = 0, wlen = 0;
	char fp[TLS_FP_HEX_LEN + 1];
	int renewed;

	/* Nothing pending. */
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)"x", 1, f->ca,
			     "updater@web1", NULL, &got, &e),
	    -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	err_clear(&e);
	assert_int_equal(hostcert_prepare(f->tls, "updater@web1", &csr, &e), 0);
	/* Another host's name, another CA, another key, not PEM: all refused. */
	sign(f->home, f->dir, csr, "web2", TLS_ROLE_UPDATER, &wrong, &wlen);
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)wrong, wlen, f->ca,
			     "updater@web1", NULL, &got, &e),
	    -1);
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	err_clear(&e);
	free(wrong);
	sign(f->home, f->dir, csr, "web1", TLS_ROLE_AGENT, &wrong, &wlen);
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)wrong, wlen, f->ca,
			     "updater@web1", NULL, &got, &e),
	    -1);
	err_clear(&e);
	free(wrong);
	sign(f->home2, f->dir, csr, "web1", TLS_ROLE_UPDATER, &other, &olen);
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)other, olen, f->ca,
			     "updater@web1", NULL, &got, &e),
	    -1);
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	err_clear(&e);
	assert_int_equal(fs_read_file(f->boot_crt, 65536, &wrong, &wlen), 0);
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)wrong, wlen, f->ca,
			     "updater@web1", NULL, &got, &e),
	    -1);
	assert_int_equal(e.kind, ERR_BAD_REQUEST); /* not for the pending key */
	err_clear(&e);
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)"garbage", 7, f->ca,
			     "updater@web1", NULL, &got, &e),
	    -1);
	err_clear(&e);
	in_force(f, fp, &renewed);
	assert_false(renewed);

	/* The right one, twice: the retry answers the same. */
	sign(f->home, f->dir, csr, "web1", TLS_ROLE_UPDATER, &crt, &len);
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)crt, len, f->ca,
			     "updater@web1", NULL, &got, &e),
	    0);
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)crt, len, f->ca,
			     "updater@web1", NULL, &again, &e),
	    0);
	assert_int_equal(again.gen, got.gen);
	assert_string_equal(again.fingerprint, got.fingerprint);
	free(csr);
	free(crt);
	free(other);
	free(wrong);
}

static const char *g_crash_at;

static void
crash_hook(const char *point)
{
	if (strcmp(point, g_crash_at) == 0) {
		_exit(TESTHOOK_CRASH_STATUS);
	}
}

static void
test_crash_at_every_step(void **state)
{
	static const char *const points[] = { "cert.pending_key", "cert.gen_written",
		"cert.previous_set", "cert.flipped", "cert.pending_removed" };
	struct fx *f = *state;
	struct hostcert_installed g1, fin;

	/* A renewed pair in use first, so "old" is gen-N, not the bootstrap pair. */
	renew(f, &g1);
	for (size_t i = 0; i < ARRAY_LEN(points); i++) {
		char before[TLS_FP_HEX_LEN + 1], after[TLS_FP_HEX_LEN + 1], done[TLS_FP_HEX_LEN + 1];
		char note[512];
		struct err e = ERR_INIT;
		int renewed, st;
		pid_t pid;

		in_force(f, before, &renewed);
		g_crash_at = points[i];
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct hostcert_installed g;
			testhook_set(crash_hook);
			renew(f, &g);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), TESTHOOK_CRASH_STATUS);
		assert_int_equal(hostcert_recover(f->tls, f->ca, note, sizeof(note), &e), 0);
		/* A whole pair is in force: the old one until the flip, the new one after. */
		in_force(f, after, &renewed);
		assert_true(renewed);
		if (i < 3) {
			assert_string_equal(after, before);
		} else {
			assert_string_not_equal(after, before);
		}
		/* The renewal finishes on a retry (reusing the pending key when there is one). */
		renew(f, &fin);
		in_force(f, done, &renewed);
		assert_string_equal(done, fin.fingerprint);
		assert_false(exists(f, "pending"));
		assert_int_equal(hostcert_confirm(f->tls, &e), 0);
	}
}

static void
test_recover_falls_back(void **state)
{
	struct fx *f = *state;
	struct hostcert_installed g1, g2;
	struct err e = ERR_INIT;
	char fp[TLS_FP_HEX_LEN + 1], note[512], p[PATH_MAX];
	int renewed;

	renew(f, &g1);
	renew(f, &g2);
	/* The current key damaged: back to the previous generation. */
	tmpdir_fmt(p, sizeof(p), "%s/gen-2/key.pem", f->tls);
	assert_int_equal(fs_write_atomic(p, "junk", 4, 0600), 0);
	assert_int_equal(hostcert_recover(f->tls, f->ca, note, sizeof(note), &e), 0);
	assert_non_null(strstr(note, "back to gen-1"));
	in_force(f, fp, &renewed);
	assert_string_equal(fp, g1.fingerprint);
	/* And with nothing usable left: back to the configured pair. */
	tmpdir_fmt(p, sizeof(p), "%s/gen-1/cert.pem", f->tls);
	assert_int_equal(fs_write_atomic(p, "junk", 4, 0644), 0);
	assert_int_equal(hostcert_recover(f->tls, f->ca, note, sizeof(note), &e), 0);
	assert_non_null(strstr(note, "configured pair"));
	in_force(f, fp, &renewed);
	assert_false(renewed);
	/* A directory that does not exist yet is nothing to recover. */
	snprintf(p, sizeof(p), "%s/none", f->dir);
	assert_int_equal(hostcert_recover(p, f->ca, note, sizeof(note), &e), 0);
}

/* The master's own pair in the same layout (tandem pki renew-master); its role is master. */
static void
test_master_pair(void **state)
{
	struct fx *f = *state;
	struct hostcert_installed got;
	struct pki_issue_opts o;
	struct err pe = ERR_INIT;
	char *csr = NULL, *crt = NULL, path[PATH_MAX];
	size_t len = 0;

	assert_int_equal(hostcert_prepare(f->tls, TLS_DEFAULT_MASTER_CN, &csr, &pe), 0);
	snprintf(path, sizeof(path), "%s/master.crt", f->dir);
	pki_issue_opts_init(&o);
	o.name = TLS_DEFAULT_MASTER_CN;
	o.role = TLS_ROLE_MASTER;
	o.eku = PKI_EKU_BOTH;
	o.cert_out = path;
	o.csr = (const unsigned char *)csr;
	o.csr_len = strlen(csr);
	assert_int_equal(pki_issue(f->home, &o, &pe), 0);
	assert_int_equal(fs_read_file(path, 65536, &crt, &len), 0);
	/* Expected as another name: refused; as the master: in force. */
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)crt, len, f->ca,
			     "updater@web1", NULL, &got, &pe),
	    -1);
	assert_int_equal(hostcert_install(f->tls, (const unsigned char *)crt, len, f->ca,
			     TLS_DEFAULT_MASTER_CN, NULL, &got, &pe),
	    0);
	assert_int_equal(got.gen, 1);
	free(csr);
	free(crt);
}

/* pki/trust's CA bundle: the override in tls_dir, and what a pushed bundle must be. */
static void
test_ca_bundle(void **state)
{
	struct fx *f = *state;
	struct err pe = ERR_INIT;
	char out[PATH_MAX], p[PATH_MAX], ca2[PATH_MAX], nkey[256], ncrt[256];
	char *a = NULL, *b = NULL, *leaf = NULL, *both = NULL, *five = NULL;
	size_t al = 0, bl = 0, ll = 0;
	const char *must[] = { f->boot_crt, NULL };
	struct stat st;

	/* Without a pushed bundle the configured CA; with one, the bundle. */
	assert_int_equal(fs_mkdir_p(f->tls, 0700), 0);
	assert_int_equal(trust_ca_path(f->tls, f->ca, out, &pe), 0);
	assert_string_equal(out, f->ca);
	tmpdir_fmt(p, sizeof(p), "%s/%s", f->tls, TRUST_CA_FILE);
	tmpdir_fmt(ca2, sizeof(ca2), "%s/ca/ca.crt", f->home2);
	assert_int_equal(fs_copy_file(ca2, p, 0644), 0);
	assert_int_equal(trust_ca_path(f->tls, f->ca, out, &pe), 0);
	assert_string_equal(out, p);
	assert_int_equal(trust_ca_path(NULL, f->ca, out, &pe), 0);
	assert_string_equal(out, f->ca);

	assert_int_equal(fs_read_file(f->ca, 65536, &a, &al), 0);
	assert_int_equal(fs_read_file(ca2, 65536, &b, &bl), 0);
	assert_int_equal(fs_read_file(f->boot_crt, 65536, &leaf, &ll), 0);
	/* Our CA: fine. The other CA alone would not trust the host's certificate. */
	assert_int_equal(trust_check_ca_bundle((unsigned char *)a, al, must, &pe), 0);
	assert_int_equal(trust_check_ca_bundle((unsigned char *)b, bl, must, &pe), -1);
	assert_int_equal(pe.kind, ERR_CONFLICT);
	both = malloc(al + bl);
	assert_non_null(both);
	memcpy(both, b, bl);
	memcpy(both + bl, a, al);
	assert_int_equal(trust_check_ca_bundle((unsigned char *)both, al + bl, must, &pe), 0);
	/* Not CA certificates, not PEM, nothing, too many. */
	err_clear(&pe);
	assert_int_equal(trust_check_ca_bundle((unsigned char *)leaf, ll, NULL, &pe), -1);
	assert_int_equal(pe.kind, ERR_BAD_REQUEST);
	assert_int_equal(trust_check_ca_bundle((const unsigned char *)"garbage", 7, NULL, &pe),
	    -1);
	assert_int_equal(pe.kind, ERR_BAD_REQUEST);
	assert_int_equal(trust_check_ca_bundle((const unsigned char *)"", 0, NULL, &pe), -1);
	five = malloc(5 * al);
	assert_non_null(five);
	for (int i = 0; i < 5; i++) {
		memcpy(five + (size_t)i * al, a, al);
	}
	assert_int_equal(trust_check_ca_bundle((unsigned char *)five, 5 * al, NULL, &pe), -1);
	assert_int_equal(pe.kind, ERR_BAD_REQUEST);

	/* A new CA for a rotation; the master trusts the bundle while there is one. */
	snprintf(nkey, sizeof(nkey), "%s/n.key", f->dir);
	snprintf(ncrt, sizeof(ncrt), "%s/n.crt", f->dir);
	assert_int_equal(pki_ca_new(nkey, ncrt, &pe), 0);
	assert_int_equal(stat(nkey, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(leaf);
	assert_int_equal(fs_read_file(ncrt, 65536, &leaf, &ll), 0);
	assert_int_equal(trust_check_ca_bundle((unsigned char *)leaf, ll, NULL, &pe), 0);
	assert_int_equal(pki_master_trust(f->home, out, &pe), 0);
	assert_string_equal(out, f->ca);
	tmpdir_fmt(p, sizeof(p), "%s/%s", f->home, PKI_CA_BUNDLE);
	assert_int_equal(fs_copy_file(ncrt, p, 0644), 0);
	assert_int_equal(pki_master_trust(f->home, out, &pe), 0);
	assert_string_equal(out, p);
	free(a);
	free(b);
	free(leaf);
	free(both);
	free(five);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_two_renewals_and_confirm, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_retry_and_refusals, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_crash_at_every_step, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_recover_falls_back, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_master_pair, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_ca_bundle, setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
