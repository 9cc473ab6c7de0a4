/* updater/manifest: strict parsing of an untrusted manifest.json and the on-disk checks. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "common/log.h"
#include "updater/manifest.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_manifest.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return fs_rmtree(dir);
}

static int
parse(const char *json, struct manifest *m, char *err, size_t errlen)
{
	return manifest_parse(json, strlen(json), m, err, errlen);
}

static void
test_parse(void **state)
{
	struct manifest m;
	char err[256];
	static const char *const bad[] = {
		"",
		"[]",
		"{\"name\":\"a\",\"version\":\"1\"}",                              /* no entrypoint */
		"{\"name\":\"a\",\"entrypoint\":\"bin/x\"}",                       /* no version */
		"{\"name\":\"\",\"version\":\"1\",\"entrypoint\":\"bin/x\"}",      /* empty name */
		"{\"name\":\"a\",\"version\":1,\"entrypoint\":\"bin/x\"}",         /* wrong type */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"/bin/sh\"}",   /* absolute */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"../x\"}",      /* climbs */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin//x\"}",    /* empty component */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/\"}",      /* a directory */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":[]}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":[1]}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":[\"/bin/sh\"]}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":\"x\"}",
		"{\"name\":\"a\",\"name\":\"b\",\"version\":\"1\",\"entrypoint\":\"x\"}", /* dup key */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\"} trailing",
	};

	(void)state;
	assert_int_equal(parse("{\"name\":\"tandem-agent\",\"version\":\"1.0.0\",\"entrypoint\":"
			       "\"bin/tandem-agent\",\"preflight\":[\"bin/tandem-agent\","
			       "\"--self-test\"],\"future\":{\"x\":1}}",
			     &m, err, sizeof(err)),
	    0);
	assert_string_equal(m.version, "1.0.0");
	assert_string_equal(m.entrypoint, "bin/tandem-agent");
	assert_int_equal(m.npreflight, 2);
	assert_string_equal(m.preflight[1], "--self-test");
	assert_int_equal(parse("{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"./x\"}", &m, err,
			     sizeof(err)),
	    0);
	assert_int_equal(m.npreflight, 0);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		if (parse(bad[i], &m, err, sizeof(err)) != -1) {
			fail_msg("accepted: %s", bad[i]);
		}
	}
	/* Too many preflight arguments. */
	{
		char buf[2048];
		size_t o = (size_t)snprintf(buf, sizeof(buf),
		    "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":[\"x\"");

		for (int i = 0; i < MANIFEST_MAX_ARGS; i++) {
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, ",\"a\"");
		}
		snprintf(buf + o, sizeof(buf) - o, "]}");
		assert_int_equal(parse(buf, &m, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "at most"));
	}
}

static void
put(const char *rel, const char *content, mode_t mode)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	assert_int_equal(fs_write_atomic(p, content, strlen(content), mode), 0);
}

static void
test_read_checks_disk(void **state)
{
	struct manifest m;
	char err[256], p[PATH_MAX], q[PATH_MAX];

	(void)state;
	snprintf(p, sizeof(p), "%s/bin", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(manifest_read(dir, &m, err, sizeof(err)), -1); /* no manifest */
	assert_non_null(strstr(err, "no readable"));
	put("manifest.json", "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/x\"}", 0644);
	assert_int_equal(manifest_read(dir, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "missing"));
	put("bin/x", "#!/bin/sh\n", 0644);
	assert_int_equal(manifest_read(dir, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not an executable"));
	put("bin/x", "#!/bin/sh\n", 0755);
	assert_int_equal(manifest_read(dir, &m, err, sizeof(err)), 0);
	/* A symlink leaving the release is refused even though its target exists. */
	snprintf(q, sizeof(q), "%s/bin/out", dir);
	assert_int_equal(symlink("/bin/sh", q), 0);
	put("manifest.json", "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/out\"}", 0644);
	assert_int_equal(manifest_read(dir, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "outside"));
	/* A directory is not a program; nor is a missing preflight program. */
	put("manifest.json", "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin\"}", 0644);
	assert_int_equal(manifest_read(dir, &m, err, sizeof(err)), -1);
	put("manifest.json",
	    "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/x\",\"preflight\":[\"bin/y\"]}",
	    0644);
	assert_int_equal(manifest_read(dir, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "preflight"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test_setup_teardown(test_read_checks_disk, setup, teardown),
	};

	log_init("test_manifest", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
