/*
 * updater/handover: the handover record (the launcher's persisted start
 * counter), the outcome record and its history line, on temp-dir fixtures.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "common/json.h"
#include "updater/journal.h"
#include "updater/handover.h"
#include "tests/unit/tmpdir.h"

static const char *root;

static int
setup(void **state)
{
	char p[PATH_MAX];

	(void)state;
	root = tmpdir_make("handover");
	if (root == NULL) {
		return -1;
	}
	snprintf(p, sizeof(p), "%s/state", root);
	return mkdir(p, 0700);
}

static int
teardown(void **state)
{
	(void)state;
	return tmpdir_remove();
}

static void
put(const char *rel, const char *text, mode_t mode)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	assert_int_equal(fs_write_atomic(p, text, strlen(text), mode), 0);
	assert_int_equal(chmod(p, mode), 0);
}

static void
test_handover_roundtrip(void **state)
{
	struct handover h, got;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(handover_read(root, &got, &e), 0);
	memset(&h, 0, sizeof(h));
	snprintf(h.op_id, sizeof(h.op_id), "20260101T000000Z-0123abcd");
	snprintf(h.new_version, sizeof(h.new_version), "2.0");
	snprintf(h.old_version, sizeof(h.old_version), "1.0");
	memset(h.sha256, 'a', 64);
	h.queued_at = 1700000000;
	assert_int_equal(handover_write(root, &h, &e), 0);
	/* The counter is rewritten before every start of the new updater. */
	for (long long i = 1; i <= 3; i++) {
		assert_int_equal(handover_read(root, &got, &e), 1);
		got.starts++;
		assert_int_equal(handover_write(root, &got, &e), 0);
	}
	assert_int_equal(handover_read(root, &got, &e), 1);
	assert_string_equal(got.op_id, h.op_id);
	assert_string_equal(got.new_version, "2.0");
	assert_string_equal(got.old_version, "1.0");
	assert_string_equal(got.sha256, h.sha256);
	assert_int_equal(got.starts, 3);
	assert_int_equal(got.queued_at, 1700000000);
	assert_int_equal(handover_clear(root, &e), 0);
	assert_int_equal(handover_read(root, &got, &e), 0);
	assert_int_equal(handover_clear(root, &e), 0); /* absent is fine */
}

static void
test_handover_invalid(void **state)
{
	struct handover got;
	struct err e = ERR_INIT;

	(void)state;
	put("state/" HANDOVER_FILE, "{\"op_id\":\"x\"", 0600);
	assert_int_equal(handover_read(root, &got, &e), -1);
	/* A torn or hand-edited record without the new version is refused, never guessed. */
	put("state/" HANDOVER_FILE,
	    "{\"op_id\":\"x\",\"old_version\":\"1\",\"sha256\":\"\",\"starts\":0,\"queued_at\":1}",
	    0600);
	assert_int_equal(handover_read(root, &got, &e), -1);
	assert_non_null(strstr(err_msg(&e), "new_version"));
	assert_int_equal(e.kind, ERR_FORMAT);
	put("state/" HANDOVER_FILE,
	    "{\"op_id\":\"x\",\"new_version\":\"2\",\"old_version\":\"1\",\"sha256\":\"\","
	    "\"starts\":-1,\"queued_at\":1}",
	    0600);
	assert_int_equal(handover_read(root, &got, &e), -1);
}

static void
test_record_and_history(void **state)
{
	struct err err = ERR_INIT;
	cJSON *o, *hist, *e;

	(void)state;
	assert_null(handover_last(root));
	assert_int_equal(handover_record(root, root, "id1", "", "reverted", "1.0", "2.0", "", "hung",
			     &err),
	    0);
	assert_int_equal(handover_record(root, root, "id2", "rq2", "committed", "1.0", "2.1", "", "",
			     &err),
	    0);
	o = handover_last(root);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "result")->valuestring, "committed");
	assert_string_equal(cJSON_GetObjectItem(o, "to_version")->valuestring, "2.1");
	cJSON_Delete(o);
	hist = journal_history_read(root);
	assert_non_null(hist);
	assert_int_equal(cJSON_GetArraySize(hist), 2);
	e = cJSON_GetArrayItem(hist, 0);
	assert_string_equal(cJSON_GetObjectItem(e, "kind")->valuestring, "update-self");
	assert_string_equal(cJSON_GetObjectItem(e, "result")->valuestring, "reverted");
	assert_string_equal(cJSON_GetObjectItem(e, "error")->valuestring, "hung");
	assert_null(cJSON_GetObjectItem(e, "request_id"));
	e = cJSON_GetArrayItem(hist, 1);
	assert_string_equal(cJSON_GetObjectItem(e, "result")->valuestring, "committed");
	assert_string_equal(cJSON_GetObjectItem(e, "request_id")->valuestring, "rq2");
	cJSON_Delete(hist);
}

/* A state directory that cannot take the record: the error says where. */
static void
test_write_fails(void **state)
{
	struct handover h;
	struct err e = ERR_INIT;
	char p[PATH_MAX];

	(void)state;
	memset(&h, 0, sizeof(h));
	snprintf(h.op_id, sizeof(h.op_id), "x");
	snprintf(h.new_version, sizeof(h.new_version), "2");
	snprintf(p, sizeof(p), "%s/state", root);
	assert_int_equal(fs_rmtree(p), 0);
	assert_int_equal(handover_write(root, &h, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_non_null(strstr(err_msg(&e), HANDOVER_FILE));
	assert_int_equal(handover_read(root, &h, &e), 0); /* absent */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_handover_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_and_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_fails, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
