/*
 * updater/selfupdate: the handover record (the launcher's persisted start
 * counter), the outcome record and its history line, the inherited listening
 * socket check and the updater manifest reader, on temp-dir fixtures.
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
#include "updater/selfupdate.h"

static char root[64];

static int
setup(void **state)
{
	char p[PATH_MAX];

	(void)state;
	snprintf(root, sizeof(root), "/tmp/test_selfupdate.XXXXXX");
	if (mkdtemp(root) == NULL) {
		return -1;
	}
	snprintf(p, sizeof(p), "%s/state", root);
	return mkdir(p, 0700);
}

static int
teardown(void **state)
{
	(void)state;
	unsetenv(SELFUPDATE_ENV_LISTEN_FD);
	return fs_rmtree(root);
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
	struct selfupdate_handover h, got;
	char err[256];

	(void)state;
	assert_int_equal(selfupdate_handover_read(root, &got, err, sizeof(err)), 0);
	memset(&h, 0, sizeof(h));
	snprintf(h.op_id, sizeof(h.op_id), "20260101T000000Z-0123abcd");
	snprintf(h.new_version, sizeof(h.new_version), "2.0");
	snprintf(h.old_version, sizeof(h.old_version), "1.0");
	memset(h.sha256, 'a', 64);
	h.queued_at = 1700000000;
	assert_int_equal(selfupdate_handover_write(root, &h), 0);
	/* The counter is rewritten before every start of the new updater. */
	for (long long i = 1; i <= 3; i++) {
		assert_int_equal(selfupdate_handover_read(root, &got, err, sizeof(err)), 1);
		got.starts++;
		assert_int_equal(selfupdate_handover_write(root, &got), 0);
	}
	assert_int_equal(selfupdate_handover_read(root, &got, err, sizeof(err)), 1);
	assert_string_equal(got.op_id, h.op_id);
	assert_string_equal(got.new_version, "2.0");
	assert_string_equal(got.old_version, "1.0");
	assert_string_equal(got.sha256, h.sha256);
	assert_int_equal(got.starts, 3);
	assert_int_equal(got.queued_at, 1700000000);
	assert_int_equal(selfupdate_handover_clear(root), 0);
	assert_int_equal(selfupdate_handover_read(root, &got, err, sizeof(err)), 0);
	assert_int_equal(selfupdate_handover_clear(root), 0); /* absent is fine */
}

static void
test_handover_invalid(void **state)
{
	struct selfupdate_handover got;
	char err[256];

	(void)state;
	put("state/" SELFUPDATE_HANDOVER, "{\"op_id\":\"x\"", 0600);
	assert_int_equal(selfupdate_handover_read(root, &got, err, sizeof(err)), -1);
	/* A torn or hand-edited record without the new version is refused, never guessed. */
	put("state/" SELFUPDATE_HANDOVER,
	    "{\"op_id\":\"x\",\"old_version\":\"1\",\"sha256\":\"\",\"starts\":0,\"queued_at\":1}",
	    0600);
	assert_int_equal(selfupdate_handover_read(root, &got, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "new_version"));
	put("state/" SELFUPDATE_HANDOVER,
	    "{\"op_id\":\"x\",\"new_version\":\"2\",\"old_version\":\"1\",\"sha256\":\"\","
	    "\"starts\":-1,\"queued_at\":1}",
	    0600);
	assert_int_equal(selfupdate_handover_read(root, &got, err, sizeof(err)), -1);
}

static void
test_record_and_history(void **state)
{
	char p[PATH_MAX], *buf = NULL, err[256];
	size_t len = 0;
	cJSON *o, *hist, *e;

	(void)state;
	assert_int_equal(selfupdate_record(root, root, "id1", "reverted", "1.0", "2.0", "", "hung"),
	    0);
	assert_int_equal(selfupdate_record(root, root, "id2", "committed", "1.0", "2.1", "", ""),
	    0);
	snprintf(p, sizeof(p), "%s/state/%s", root, SELFUPDATE_LAST);
	assert_int_equal(fs_read_file(p, 4096, &buf, &len), 0);
	o = json_parse_object(buf, len, err, sizeof(err));
	free(buf);
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
	cJSON_Delete(hist);
}

static void
setenv_fd(int fd)
{
	char v[32];

	snprintf(v, sizeof(v), "%d", fd);
	assert_int_equal(setenv(SELFUPDATE_ENV_LISTEN_FD, v, 1), 0);
}

static void
test_listen_fd(void **state)
{
	struct sockaddr_in sa;
	int lfd, sp[2], ffd;
	char p[PATH_MAX];

	(void)state;
	unsetenv(SELFUPDATE_ENV_LISTEN_FD);
	assert_int_equal(selfupdate_listen_fd(), -1);
	assert_int_equal(setenv(SELFUPDATE_ENV_LISTEN_FD, "abc", 1), 0);
	assert_int_equal(selfupdate_listen_fd(), -1);
	assert_int_equal(setenv(SELFUPDATE_ENV_LISTEN_FD, "2", 1), 0); /* stdio: never */
	assert_int_equal(selfupdate_listen_fd(), -1);
	assert_int_equal(setenv(SELFUPDATE_ENV_LISTEN_FD, "999999", 1), 0); /* not open */
	assert_int_equal(selfupdate_listen_fd(), -1);

	/* A connected socket and a regular file are not listening sockets. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	setenv_fd(sp[0]);
	assert_int_equal(selfupdate_listen_fd(), -1);
	close(sp[0]);
	close(sp[1]);
	snprintf(p, sizeof(p), "%s/file", root);
	ffd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	assert_true(ffd >= 0);
	setenv_fd(ffd);
	assert_int_equal(selfupdate_listen_fd(), -1);
	close(ffd);

	/* A listening socket (inherited without FD_CLOEXEC) is taken and made close-on-exec. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv_fd(lfd);
	assert_int_equal(selfupdate_listen_fd(), -1); /* bound, not yet listening */
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(selfupdate_listen_fd(), lfd);
	assert_true((fcntl(lfd, F_GETFD) & FD_CLOEXEC) != 0);
	close(lfd);
}

static void
test_read_entrypoint(void **state)
{
	char entry[256], version[128], err[512], p[PATH_MAX], q[PATH_MAX];

	(void)state;
	snprintf(p, sizeof(p), "%s/bin", root);
	assert_int_equal(mkdir(p, 0755), 0);
	put("bin/tandem-updater", "#!/bin/sh\n", 0755);
	put("bin/data", "x", 0644);

	assert_int_equal(selfupdate_read_entrypoint(root, entry, sizeof(entry), version,
			     sizeof(version), err, sizeof(err)),
	    -1); /* no manifest */
	put("manifest.json",
	    "{\"name\":\"t\",\"version\":\"2.0\",\"entrypoint\":\"bin/a\","
	    "\"updater_entrypoint\":\"bin/tandem-updater\"}",
	    0644);
	assert_int_equal(selfupdate_read_entrypoint(root, entry, sizeof(entry), version,
			     sizeof(version), err, sizeof(err)),
	    0);
	assert_string_equal(entry, "bin/tandem-updater");
	assert_string_equal(version, "2.0");

	/* An agent-only release. */
	put("manifest.json", "{\"name\":\"t\",\"version\":\"2.0\",\"entrypoint\":\"bin/a\"}", 0644);
	assert_int_equal(selfupdate_read_entrypoint(root, entry, sizeof(entry), version,
			     sizeof(version), err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "updater_entrypoint"));
	/* Not executable, escaping, absolute, missing. */
	put("manifest.json", "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"bin/data\"}",
	    0644);
	assert_int_equal(selfupdate_read_entrypoint(root, entry, sizeof(entry), version,
			     sizeof(version), err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "not an executable"));
	put("manifest.json",
	    "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"../bin/tandem-updater\"}",
	    0644);
	assert_int_equal(selfupdate_read_entrypoint(root, entry, sizeof(entry), version,
			     sizeof(version), err, sizeof(err)),
	    -1);
	put("manifest.json", "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"/bin/sh\"}",
	    0644);
	assert_int_equal(selfupdate_read_entrypoint(root, entry, sizeof(entry), version,
			     sizeof(version), err, sizeof(err)),
	    -1);
	put("manifest.json", "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"bin/nope\"}",
	    0644);
	assert_int_equal(selfupdate_read_entrypoint(root, entry, sizeof(entry), version,
			     sizeof(version), err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "missing"));
	/* A symlink that resolves outside the release. */
	snprintf(q, sizeof(q), "%s/bin/out", root);
	assert_int_equal(symlink("/bin/sh", q), 0);
	put("manifest.json", "{\"name\":\"t\",\"version\":\"2\",\"updater_entrypoint\":\"bin/out\"}",
	    0644);
	assert_int_equal(selfupdate_read_entrypoint(root, entry, sizeof(entry), version,
			     sizeof(version), err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "outside"));
}

static void
test_not_handing_over(void **state)
{
	(void)state;
	assert_int_equal(selfupdate_handing_over(NULL), 0);
	/* Normal builds: the test-kind hook does nothing (we are still here). */
	selfupdate_test_kind();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_handover_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handover_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_and_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_entrypoint, setup, teardown),
		cmocka_unit_test(test_not_handing_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
