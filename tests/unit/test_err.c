/*
 * Unit tests for common/err: kinds decided at the failure point, errno saved
 * before anything can overwrite it, context prefixes, the one mapping table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "common/err.h"

static void
test_set_and_prefix(void **state)
{
	struct err e = ERR_INIT;

	(void)state;
	assert_false(err_failed(&e));
	assert_string_equal(err_msg(&e), "");
	assert_int_equal(err_set(&e, ERR_DIGEST, "sha256 mismatch: the upload has %s", "ab"), -1);
	assert_true(err_failed(&e));
	assert_int_equal(e.kind, ERR_DIGEST);
	assert_int_equal(e.sys_errno, 0);
	assert_int_equal(err_prefix(&e, "update %s", "X"), -1);
	assert_string_equal(err_msg(&e), "update X: sha256 mismatch: the upload has ab");
	assert_int_equal(e.kind, ERR_DIGEST);
	assert_int_equal(err_http_status(e.kind), 422);
	assert_string_equal(err_kind_name(e.kind), "digest_mismatch");
	err_clear(&e);
	assert_false(err_failed(&e));
}

static void
test_sys_saves_errno_and_kind(void **state)
{
	struct err e = ERR_INIT;

	(void)state;
	errno = ENOSPC;
	assert_int_equal(err_sys(&e, "write %s", "journal"), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(e.kind, ERR_NOSPACE);
	assert_int_equal(e.sys_errno, ENOSPC);
	assert_string_equal(err_msg(&e), "write journal: No space left on device");
	assert_int_equal(err_http_status(e.kind), 507);
	/* A later call overwriting errno does not change the recorded kind. */
	errno = EIO;
	assert_int_equal(err_prefix(&e, "install"), -1);
	assert_int_equal(e.kind, ERR_NOSPACE);
	assert_int_equal(err_http_status(e.kind), 507);

	errno = EACCES;
	err_sys(&e, "open");
	assert_int_equal(e.kind, ERR_IO);
	errno = EACCES;
	err_sys_kind(&e, ERR_CONFIG, "key");
	assert_int_equal(e.kind, ERR_CONFIG);
	errno = ENOMEM;
	err_sys_kind(&e, ERR_CONFIG, "key");
	assert_int_equal(e.kind, ERR_NOMEM);
	errno = EDQUOT;
	err_sys_kind(&e, ERR_IO, "quota");
	assert_int_equal(e.kind, ERR_NOSPACE);
}

static void
test_null_and_ok(void **state)
{
	struct err e = ERR_INIT, d = ERR_INIT;

	(void)state;
	assert_int_equal(err_set(NULL, ERR_IO, "x"), -1);
	assert_int_equal(err_sys(NULL, "x"), -1);
	assert_int_equal(err_prefix(NULL, "x"), -1);
	assert_string_equal(err_msg(NULL), "");
	/* A prefix on an error nobody set still yields a failure with a message. */
	assert_int_equal(err_prefix(&e, "switch"), -1);
	assert_int_equal(e.kind, ERR_INTERNAL);
	assert_string_equal(err_msg(&e), "switch: unknown error");
	/* ERR_OK given to err_set is a bug: it becomes internal. */
	err_set(&e, ERR_OK, "huh");
	assert_int_equal(e.kind, ERR_INTERNAL);
	assert_int_equal(err_copy(&d, &e), -1);
	assert_int_equal(d.kind, ERR_INTERNAL);
	err_clear(&e);
	assert_int_equal(err_copy(&d, &e), 0);
	assert_false(err_failed(&d));
}

static void
test_rekind_keeps_message(void **state)
{
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(err_rekind(NULL, ERR_TLS), -1);
	errno = ECONNREFUSED;
	err_sys_kind(&e, ERR_UNREACHABLE, "connect to 127.0.0.1:1");
	assert_int_equal(err_rekind(&e, ERR_PROBE), -1);
	assert_int_equal(e.kind, ERR_PROBE);
	assert_int_equal(e.sys_errno, ECONNREFUSED);
	assert_string_equal(err_msg(&e), "connect to 127.0.0.1:1: Connection refused");
	/* Nothing failed yet: still a failure with a message. */
	err_clear(&e);
	assert_int_equal(err_rekind(&e, ERR_CONFIG), -1);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_string_equal(err_msg(&e), "unknown error");
}

static void
test_long_messages_are_cut_safely(void **state)
{
	struct err e = ERR_INIT;
	char big[3 * ERR_MSG_MAX];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	err_set(&e, ERR_IO, "%s", big);
	assert_int_equal(strlen(err_msg(&e)), ERR_MSG_MAX - 1);
	for (int i = 0; i < 10; i++) {
		err_prefix(&e, "%s", big);
	}
	assert_int_equal(strlen(err_msg(&e)), ERR_MSG_MAX - 1);
	errno = ENOSPC;
	err_sys(&e, "%s", big);
	assert_int_equal(e.kind, ERR_NOSPACE);
}

static void
test_table_round_trip(void **state)
{
	(void)state;
	for (int k = 0; k < ERR_KIND_COUNT; k++) {
		enum err_kind back;
		const char *name = err_kind_name((enum err_kind)k);

		assert_non_null(name);
		assert_int_equal(err_kind_parse(name, &back), 0);
		assert_int_equal((int)back, k);
		assert_true(err_http_status((enum err_kind)k) >= 200);
		assert_true(err_http_status((enum err_kind)k) < 600);
	}
	assert_int_equal(err_http_status(ERR_BUSY), 503);
	assert_int_equal(err_http_status(ERR_NOT_FOUND), 404);
	assert_int_equal(err_http_status(ERR_CONFLICT), 409);
	assert_int_equal(err_http_status(ERR_BAD_REQUEST), 400);
	/* Signed releases: 422 for what the signature says, 409 for the floor. */
	assert_string_equal(err_kind_name(ERR_SIGNATURE), "signature_invalid");
	assert_int_equal(err_http_status(ERR_SIGNATURE), 422);
	assert_string_equal(err_kind_name(ERR_UNKNOWN_KEY), "unknown_key");
	assert_int_equal(err_http_status(ERR_UNKNOWN_KEY), 422);
	assert_string_equal(err_kind_name(ERR_STATEMENT), "statement_mismatch");
	assert_int_equal(err_http_status(ERR_STATEMENT), 422);
	assert_string_equal(err_kind_name(ERR_EXPIRED), "expired");
	assert_int_equal(err_http_status(ERR_EXPIRED), 422);
	assert_string_equal(err_kind_name(ERR_FLOOR), "below_security_floor");
	assert_int_equal(err_http_status(ERR_FLOOR), 409);
	assert_string_equal(err_kind_name(ERR_KEYRING), "keyring_invalid");
	assert_int_equal(err_http_status(ERR_KEYRING), 503);
	assert_int_equal(err_exit_code(ERR_FLOOR), 1);
	assert_int_equal(err_http_status(ERR_NOSPACE), 507);
	assert_int_equal(err_http_status(ERR_UNAVAILABLE), 503);
	assert_string_equal(err_kind_name(ERR_UNAVAILABLE), "unavailable");
	assert_int_equal(err_http_status(ERR_HANDSHAKE_CUT), 502);
	assert_string_equal(err_kind_name(ERR_HANDSHAKE_CUT), "handshake_cut");
	assert_int_equal(err_exit_code(ERR_HANDSHAKE_CUT), 1);
	/* A delta that does not assemble: 409, the master sends the whole release instead. */
	assert_string_equal(err_kind_name(ERR_DELTA_MISMATCH), "delta_mismatch");
	assert_int_equal(err_http_status(ERR_DELTA_MISMATCH), 409);
	assert_int_equal(err_exit_code(ERR_DELTA_MISMATCH), 1);
	/* A pin mismatch is its own kind: callers never retry it, never match its text. */
	assert_string_equal(err_kind_name(ERR_PIN_MISMATCH), "pin_mismatch");
	assert_int_equal(err_http_status(ERR_PIN_MISMATCH), 502);
	assert_int_equal(err_exit_code(ERR_PIN_MISMATCH), 1);
	assert_int_equal(err_exit_code(ERR_OK), 0);
	assert_int_equal(err_exit_code(ERR_USAGE), 2);
	assert_int_equal(err_exit_code(ERR_IO), 1);
	/* Out of range kinds map to internal rather than reading past the table. */
	assert_int_equal(err_http_status((enum err_kind)9999), 500);
	enum err_kind k;
	assert_int_equal(err_kind_parse("nope", &k), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_and_prefix),
		cmocka_unit_test(test_sys_saves_errno_and_kind),
		cmocka_unit_test(test_null_and_ok),
		cmocka_unit_test(test_rekind_keeps_message),
		cmocka_unit_test(test_long_messages_are_cut_safely),
		cmocka_unit_test(test_table_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
