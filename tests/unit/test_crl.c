/*
 * Unit tests for pki/crl: the CRL writer and reader round-trip, the
 * signature is checked against the CA bundle (tampered bytes, another CA,
 * a bundle of two CAs), serials are canonical, bad input is refused.
 * The openssl CLI cross-checks the encoding in tests/e2e/test_certs.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/fs.h"
#include "pki/crl.h"
#include "pki/pki.h"
#include "tests/unit/tmpdir.h"

struct fixture {
	const char *dir;
	char home[PATH_MAX];
	char home2[PATH_MAX];
	char ca[PATH_MAX];
	char ca2[PATH_MAX];
};

static int
setup(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("crl");
	if (f->dir == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	snprintf(f->home2, sizeof(f->home2), "%s/home2", f->dir);
	tmpdir_fmt(f->ca, sizeof(f->ca), "%s/ca/ca.crt", f->home);
	tmpdir_fmt(f->ca2, sizeof(f->ca2), "%s/ca/ca.crt", f->home2);
	if (pki_init(f->home, NULL, &pe) != 0 ||
	    pki_init(f->home2, NULL, &pe) != 0) {
		fprintf(stderr, "pki_init: %s\n", err_msg(&pe));
		return -1;
	}
	*state = f;
	return 0;
}

static void
build(const char *home, unsigned long long number, const struct crl_entry *ent, size_t n,
    unsigned char **der, size_t *len)
{
	struct err e = ERR_INIT;
	time_t now = time(NULL);

	if (crl_build(home, number, now - 60, now + 86400, ent, n, der, len, &e) != 0) {
		fail_msg("crl_build: %s", err_msg(&e));
	}
}

static void
test_serial_canon(void **state)
{
	char out[CRL_SERIAL_HEX_MAX + 1];

	(void)state;
	assert_int_equal(crl_serial_canon("00AB", out), 0);
	assert_string_equal(out, "ab");
	assert_int_equal(crl_serial_canon("0x0fff", out), 0);
	assert_string_equal(out, "0fff");
	assert_int_equal(crl_serial_canon("1", out), 0);
	assert_string_equal(out, "01");
	assert_int_equal(crl_serial_canon("de:ad:BE:ef", out), 0);
	assert_string_equal(out, "deadbeef");
	/* 20 bytes is the bound; 21 significant bytes are not a serial. */
	assert_int_equal(crl_serial_canon("0102030405060708090a0b0c0d0e0f1011121314", out), 0);
	assert_int_equal(crl_serial_canon("ff0102030405060708090a0b0c0d0e0f1011121314", out), -1);
	/* Leading zeros do not count against the bound. */
	assert_int_equal(crl_serial_canon("0000000000000000000000000000000000000000000001", out), 0);
	assert_string_equal(out, "01");
	assert_int_equal(crl_serial_canon("", out), -1);
	assert_int_equal(crl_serial_canon("000", out), -1);
	assert_int_equal(crl_serial_canon("xyz", out), -1);
	assert_int_equal(crl_serial_canon("12 34", out), -1);
	assert_int_equal(crl_serial_canon(NULL, out), -1);
}

static void
test_reasons(void **state)
{
	int r;

	(void)state;
	assert_int_equal(crl_reason_parse("key-compromise", &r), 0);
	assert_int_equal(r, CRL_REASON_KEY_COMPROMISE);
	assert_string_equal(crl_reason_name(r), "key-compromise");
	assert_int_equal(crl_reason_parse("none", &r), 0);
	assert_int_equal(r, CRL_REASON_NONE);
	assert_int_equal(crl_reason_parse("stolen", &r), -1);
	assert_string_equal(crl_reason_name(99), "none");
}

static void
test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct crl_entry ent[3];
	struct crl_info ci;
	struct err e = ERR_INIT;
	unsigned char *der = NULL;
	size_t len = 0;
	char *pem = NULL;

	memset(ent, 0, sizeof(ent));
	snprintf(ent[0].serial, sizeof(ent[0].serial), "ff00");   /* high bit: gets a 0x00 pad */
	ent[0].revoked_at = 1700000000;
	ent[0].reason = CRL_REASON_KEY_COMPROMISE;
	snprintf(ent[1].serial, sizeof(ent[1].serial), "0x01");
	ent[1].revoked_at = 1700000100;
	ent[1].reason = CRL_REASON_NONE;
	snprintf(ent[2].serial, sizeof(ent[2].serial), "7fabcdef0123456789");
	ent[2].revoked_at = 1700000200;
	ent[2].reason = CRL_REASON_CESSATION;
	build(f->home, 42, ent, 3, &der, &len);

	assert_int_equal(crl_verify(der, len, f->ca, &ci, &e), 0);
	assert_int_equal(ci.number, 42);
	assert_int_equal(ci.n_entries, 3);
	/* Sorted numerically: 01 < ff00 < 7fabcdef0123456789. */
	assert_string_equal(ci.entries[0].serial, "01");
	assert_int_equal(ci.entries[0].reason, CRL_REASON_NONE);
	assert_string_equal(ci.entries[1].serial, "ff00");
	assert_int_equal(ci.entries[1].reason, CRL_REASON_KEY_COMPROMISE);
	assert_int_equal(ci.entries[1].revoked_at, 1700000000);
	assert_string_equal(ci.entries[2].serial, "7fabcdef0123456789");
	assert_int_equal(ci.entries[2].reason, CRL_REASON_CESSATION);
	assert_true(ci.next_update > ci.this_update);
	assert_false(crl_is_stale(&ci, time(NULL)));
	assert_true(crl_is_stale(&ci, ci.next_update + 1));
	assert_non_null(strstr(ci.issuer, "tandem CA"));
	assert_int_equal(strlen(ci.fingerprint), 64);
	crl_info_free(&ci);

	/* The PEM form reads back the same. */
	assert_int_equal(crl_to_pem(der, len, &pem, &e), 0);
	assert_non_null(strstr(pem, "-----BEGIN X509 CRL-----"));
	assert_int_equal(crl_verify((const unsigned char *)pem, strlen(pem), f->ca, &ci, &e), 0);
	assert_int_equal(ci.number, 42);
	assert_int_equal(ci.n_entries, 3);
	crl_info_free(&ci);
	free(pem);
	free(der);
}

static void
test_empty_and_big_number(void **state)
{
	struct fixture *f = *state;
	struct crl_info ci;
	struct err e = ERR_INIT;
	unsigned char *der = NULL;
	size_t len = 0;

	build(f->home, 0xfedcba9876543210ULL, NULL, 0, &der, &len);
	assert_int_equal(crl_verify(der, len, f->ca, &ci, &e), 0);
	assert_int_equal(ci.n_entries, 0);
	assert_null(ci.entries);
	assert_true(ci.number == 0xfedcba9876543210ULL);
	crl_info_free(&ci);
	free(der);
}

static void
test_signature_checked(void **state)
{
	struct fixture *f = *state;
	struct crl_entry ent;
	struct crl_info ci;
	struct err e = ERR_INIT;
	unsigned char *der = NULL;
	size_t len = 0;
	char bundle[PATH_MAX];
	char *a = NULL, *b = NULL, *both = NULL;
	size_t al = 0, bl = 0;

	memset(&ent, 0, sizeof(ent));
	snprintf(ent.serial, sizeof(ent.serial), "1234");
	ent.reason = CRL_REASON_NONE;
	build(f->home, 7, &ent, 1, &der, &len);

	/* Another fleet's CA did not sign it. */
	assert_int_equal(crl_verify(der, len, f->ca2, &ci, &e), -1);
	assert_int_equal(e.kind, ERR_SIGNATURE);
	err_clear(&e);

	/* A bundle holding both CAs (a CA rotation) accepts it. */
	assert_int_equal(fs_read_file(f->ca, 65536, &a, &al), 0);
	assert_int_equal(fs_read_file(f->ca2, 65536, &b, &bl), 0);
	both = malloc(al + bl + 1);
	assert_non_null(both);
	memcpy(both, b, bl);
	memcpy(both + bl, a, al);
	snprintf(bundle, sizeof(bundle), "%s/bundle.crt", f->dir);
	assert_int_equal(fs_write_atomic(bundle, both, al + bl, 0644), 0);
	assert_int_equal(crl_verify(der, len, bundle, &ci, &e), 0);
	assert_int_equal(ci.n_entries, 1);
	crl_info_free(&ci);

	/* Every flipped byte of the signed part fails to verify or to parse. */
	for (size_t i = 0; i < len; i += 7) {
		der[i] ^= 0x01;
		assert_int_equal(crl_verify(der, len, f->ca, &ci, &e), -1);
		assert_true(e.kind == ERR_SIGNATURE || e.kind == ERR_FORMAT);
		err_clear(&e);
		der[i] ^= 0x01;
	}
	/* Truncated. */
	assert_int_equal(crl_verify(der, len - 1, f->ca, &ci, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	free(a);
	free(b);
	free(both);
	free(der);
}

static void
test_bad_input(void **state)
{
	struct fixture *f = *state;
	struct crl_entry ent[2];
	struct crl_info ci;
	struct err e = ERR_INIT;
	unsigned char *der = NULL;
	size_t len = 0;
	time_t now = time(NULL);
	static const unsigned char junk[] = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";

	memset(ent, 0, sizeof(ent));
	snprintf(ent[0].serial, sizeof(ent[0].serial), "0abc");
	snprintf(ent[1].serial, sizeof(ent[1].serial), "ABC");
	/* The same serial twice (after canonicalisation). */
	assert_int_equal(crl_build(f->home, 1, now, now + 10, ent, 2, &der, &len, &e), -1);
	assert_int_equal(e.kind, ERR_BAD_REQUEST);
	err_clear(&e);
	snprintf(ent[1].serial, sizeof(ent[1].serial), "not-hex");
	assert_int_equal(crl_build(f->home, 1, now, now + 10, ent, 2, &der, &len, &e), -1);
	err_clear(&e);
	assert_int_equal(crl_build(f->home, 0, now, now + 10, ent, 1, &der, &len, &e), -1);
	err_clear(&e);
	assert_int_equal(crl_build(f->home, 1, now, now, ent, 1, &der, &len, &e), -1);
	err_clear(&e);
	ent[0].reason = 77;
	assert_int_equal(crl_build(f->home, 1, now, now + 10, ent, 1, &der, &len, &e), -1);
	err_clear(&e);
	/* No CA in that home. */
	ent[0].reason = CRL_REASON_NONE;
	assert_int_equal(crl_build(f->dir, 1, now, now + 10, ent, 1, &der, &len, &e), -1);
	err_clear(&e);

	assert_int_equal(crl_parse(NULL, 0, &ci, &e), -1);
	err_clear(&e);
	assert_int_equal(crl_parse(junk, sizeof(junk) - 1, &ci, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
	err_clear(&e);
	assert_int_equal(crl_parse((const unsigned char *)"\x30\x03\x02\x01\x01", 5, &ci, &e), -1);
	err_clear(&e);
	assert_int_equal(crl_parse(junk, CRL_MAX_BYTES + 1, &ci, &e), -1);
	assert_int_equal(e.kind, ERR_TOO_LARGE);
	crl_info_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_canon),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test_setup_teardown(test_round_trip, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_big_number, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_signature_checked, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
