/*
 * Unit tests for pki/csr and pki_issue() with a CSR: the host's key is made
 * once and reused on retry, the request proves possession of it, and the CA
 * certifies that key under the name, role and SANs it is told — never the
 * ones in the request.
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
#include "common/tls.h"
#include "pki/csr.h"
#include "pki/pki.h"
#include "tests/unit/tmpdir.h"

struct fx {
	const char *dir;
	char home[PATH_MAX];
	char key[PATH_MAX];
	char crt[PATH_MAX];
};

static int
setup(void **state)
{
	struct err pe = ERR_INIT;
	struct fx *f = calloc(1, sizeof(*f));

	log_init("test_csr", LOG_LVL_ERROR);
	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("csr");
	if (f->dir == NULL) {
		return -1;
	}
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/pending.key", f->dir);
	snprintf(f->crt, sizeof(f->crt), "%s/new.crt", f->dir);
	if (pki_init(f->home, NULL, &pe) != 0) {
		return -1;
	}
	*state = f;
	return 0;
}

/* The key's public half, as the CSR carries it: compare two CSRs' keys. */
static void
test_key_made_once_and_reused(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	char *a = NULL, *b = NULL, *k1 = NULL, *k2 = NULL;
	size_t l1 = 0, l2 = 0;
	struct stat st;

	assert_int_equal(pki_csr_new(f->key, "updater@web1", &a, &e), 0);
	assert_non_null(strstr(a, "-----BEGIN CERTIFICATE REQUEST-----"));
	assert_int_equal(stat(f->key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fs_read_file(f->key, 8192, &k1, &l1), 0);
	assert_int_equal(pki_csr_check((const unsigned char *)a, strlen(a), &e), 0);
	/* A retry reuses the pending key. */
	assert_int_equal(pki_csr_new(f->key, "updater@web1", &b, &e), 0);
	assert_int_equal(fs_read_file(f->key, 8192, &k2, &l2), 0);
	assert_int_equal(l1, l2);
	assert_memory_equal(k1, k2, l1);
	/* A key others may read is not used. */
	assert_int_equal(chmod(f->key, 0644), 0);
	assert_int_equal(pki_csr_new(f->key, "web1", &b, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	err_clear(&e);
	/* Names that would inject into the subject are refused. */
	assert_int_equal(chmod(f->key, 0600), 0);
	assert_int_equal(pki_csr_new(f->key, "web1,OU=master", &b, &e), -1);
	secure_free(k1, l1);
	secure_free(k2, l2);
	free(a);
	free(b);
}

static void
test_check_refuses_bad_requests(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	char *csr = NULL;
	size_t len;

	assert_int_equal(pki_csr_new(f->key, "web1", &csr, &e), 0);
	len = strlen(csr);
	assert_int_equal(pki_csr_check(NULL, 0, &e), -1);
	err_clear(&e);
	assert_int_equal(pki_csr_check((const unsigned char *)"junk", 4, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	err_clear(&e);
	assert_int_equal(pki_csr_check((const unsigned char *)csr, PKI_CSR_MAX + 1, &e), -1);
	assert_int_equal(e.kind, ERR_TOO_LARGE);
	err_clear(&e);
	/* A changed base64 character inside the body breaks parsing or the signature. */
	for (size_t i = 40; i < len - 40; i += 9) {
		char saved = csr[i];
		if (saved == '\n') {
			continue;
		}
		csr[i] = saved == 'A' ? 'B' : 'A';
		assert_int_equal(pki_csr_check((const unsigned char *)csr, len, &e), -1);
		assert_true(e.kind == ERR_FORMAT || e.kind == ERR_SIGNATURE);
		err_clear(&e);
		csr[i] = saved;
	}
	free(csr);
}

static void
test_issue_from_csr_takes_our_names(void **state)
{
	struct err te = ERR_INIT;
	struct err pe = ERR_INIT;
	struct fx *f = *state;
	struct err e = ERR_INIT;
	struct pki_issue_opts o;
	struct tls_identity id;
	struct tls_opts to;
	struct tls_ctx *ctx = NULL;
	char *csr = NULL;
	struct err err = ERR_INIT;
	char ca[PATH_MAX];
	const char *sans[] = { "127.0.0.1" };

	/* The request claims to be the master: it does not matter. */
	assert_int_equal(pki_csr_new(f->key, "tandem-master", &csr, &e), 0);
	pki_issue_opts_init(&o);
	o.name = "web1";
	o.role = TLS_ROLE_UPDATER;
	o.sans = sans;
	o.n_sans = 1;
	o.cert_out = f->crt;
	o.csr = (const unsigned char *)csr;
	o.csr_len = strlen(csr);
	o.not_after = time(NULL) + 600;
	assert_int_equal(pki_issue(f->home, &o, &pe), 0);
	assert_int_equal(tls_identity_from_file(f->crt, NULL, &id, &te), 0);
	assert_string_equal(id.cn, "updater@web1");
	assert_int_equal(id.role, TLS_ROLE_UPDATER);
	assert_true(id.not_after <= time(NULL) + 600);
	/* The certificate and the host's pending key form a pair a server can load. */
	tmpdir_fmt(ca, sizeof(ca), "%s/ca/ca.crt", f->home);
	tls_opts_init(&to);
	to.ca_file = ca;
	to.cert_file = f->crt;
	to.key_file = f->key;
	assert_int_equal(tls_server_new(&to, &ctx, &err), 0);
	tls_ctx_free(ctx);
	/* Without a file to write, or with a broken request, nothing is issued. */
	assert_int_equal(pki_issue(f->home, &o, &pe), -1); /* exists, no --force */
	assert_int_equal(pe.kind, ERR_CONFLICT);
	o.force = 1;
	o.csr_len = 10;
	assert_int_equal(pki_issue(f->home, &o, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "request"));
	assert_int_equal(pe.kind, ERR_FORMAT); /* the CSR itself is malformed */
	free(csr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key_made_once_and_reused, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_check_refuses_bad_requests, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_issue_from_csr_takes_our_names, setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
