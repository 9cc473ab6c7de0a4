/*
 * Unit tests of common/release: the one parser, writer and rules of
 * manifest.json and release.json, the executable check on disk, and where a
 * running program's release directory is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/release.h"
#include "tests/unit/tmpdir.h"

static int
setup(void **state)
{
	(void)state;
	return tmpdir_make("release") == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return tmpdir_remove();
}

static int
parse(const char *json, unsigned flags, struct release_manifest *m, struct err *e)
{
	err_clear(e);
	return release_manifest_parse(json, strlen(json), flags, m, e);
}

static void
test_safe_relpath_and_ident(void **state)
{
	static const char *const good[] = { "x", "bin/tandem-agent", "a/b/c.d", "..x", "x..",
		".hidden/x" };
	static const char *const bad[] = { "", "/bin/sh", "../x", "bin/../x", "bin//x", "bin/",
		".", "./x", "bin/./x", "a\tb", "a\x7f", ".." };
	static const char *const good_id[] = { "a", "1.0", "2.0.0-rc1+build.7", "x_y~z",
		"tandem-agent" };
	static const char *const bad_id[] = { "", "-1", ".x", "1 2", "1/2", "v\n", "é", "a:b" };
	char longp[RELEASE_PATH_MAX + 2], longid[RELEASE_IDENT_MAX + 2];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		if (!release_safe_relpath(good[i])) {
			fail_msg("refused path '%s'", good[i]);
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		if (release_safe_relpath(bad[i])) {
			fail_msg("accepted path '%s'", bad[i]);
		}
	}
	memset(longp, 'a', sizeof(longp));
	longp[RELEASE_PATH_MAX] = '\0';
	assert_true(release_safe_relpath(longp));
	longp[RELEASE_PATH_MAX] = 'a';
	longp[RELEASE_PATH_MAX + 1] = '\0';
	assert_false(release_safe_relpath(longp));

	for (size_t i = 0; i < ARRAY_LEN(good_id); i++) {
		assert_true(release_ident_valid(good_id[i]));
	}
	for (size_t i = 0; i < ARRAY_LEN(bad_id); i++) {
		if (release_ident_valid(bad_id[i])) {
			fail_msg("accepted name '%s'", bad_id[i]);
		}
	}
	assert_false(release_ident_valid(NULL));
	memset(longid, 'v', sizeof(longid));
	longid[RELEASE_IDENT_MAX] = '\0';
	assert_true(release_ident_valid(longid));
	longid[RELEASE_IDENT_MAX] = 'v';
	longid[RELEASE_IDENT_MAX + 1] = '\0';
	assert_false(release_ident_valid(longid));
}

static void
test_manifest_parse(void **state)
{
	struct release_manifest m;
	struct err e = ERR_INIT;
	static const char *const bad[] = {
		"",
		"[]",
		"{\"name\":\"a\",\"version\":\"1\"}",                              /* no program */
		"{\"name\":\"a\",\"entrypoint\":\"bin/x\"}",                       /* no version */
		"{\"version\":\"1\",\"entrypoint\":\"bin/x\"}",                    /* no name */
		"{\"name\":\"\",\"version\":\"1\",\"entrypoint\":\"bin/x\"}",      /* empty name */
		"{\"name\":\"a b\",\"version\":\"1\",\"entrypoint\":\"bin/x\"}",   /* bad name */
		"{\"name\":\"a\",\"version\":\"1/2\",\"entrypoint\":\"bin/x\"}",   /* bad version */
		"{\"name\":\"a\",\"version\":1,\"entrypoint\":\"bin/x\"}",         /* wrong type */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"/bin/sh\"}",   /* absolute */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"../x\"}",      /* climbs */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"./x\"}",       /* dot component */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin//x\"}",    /* empty component */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/\"}",      /* a directory */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"\"}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"updater_entrypoint\":\"../u\"}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":[]}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":[1]}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":[\"x\",null]}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":[\"/bin/sh\"]}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":\"x\"}",
		"{\"name\":\"a\",\"name\":\"b\",\"version\":\"1\",\"entrypoint\":\"x\"}", /* dup key */
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\"} trailing",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"deep\":[[[[[[[[1]]]]]]]]}",
	};

	(void)state;
	assert_int_equal(parse("{\"name\":\"tandem-agent\",\"version\":\"1.0.0\",\"entrypoint\":"
	    "\"bin/tandem-agent\",\"preflight\":[\"bin/tandem-agent\",\"--self-test\"],"
	    "\"updater_entrypoint\":\"bin/tandem-updater\",\"future\":{\"x\":1}}",
	    RELEASE_MF_AGENT | RELEASE_MF_UPDATER, &m, &e), 0);
	assert_string_equal(m.name, "tandem-agent");
	assert_string_equal(m.version, "1.0.0");
	assert_string_equal(m.entrypoint, "bin/tandem-agent");
	assert_string_equal(m.updater_entrypoint, "bin/tandem-updater");
	assert_int_equal(m.npreflight, 2);
	assert_string_equal(m.preflight[1], "--self-test");

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		if (parse(bad[i], 0, &m, &e) != -1) {
			fail_msg("accepted: %s", bad[i]);
		}
		assert_int_equal(e.kind, ERR_FORMAT);
		if (strstr(err_msg(&e), "manifest.json") == NULL) {
			fail_msg("%s: error '%s' does not name manifest.json", bad[i], err_msg(&e));
		}
	}

	/* What a reader needs decides what is required. */
	assert_int_equal(parse("{\"name\":\"a\",\"version\":\"1\",\"updater_entrypoint\":\"u\"}", 0,
	    &m, &e), 0);
	assert_string_equal(m.entrypoint, "");
	assert_int_equal(parse("{\"name\":\"a\",\"version\":\"1\",\"updater_entrypoint\":\"u\"}",
	    RELEASE_MF_AGENT, &m, &e), -1);
	assert_non_null(strstr(err_msg(&e), "'entrypoint'"));
	assert_int_equal(parse("{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\"}",
	    RELEASE_MF_UPDATER, &m, &e), -1);
	assert_non_null(strstr(err_msg(&e), "updater_entrypoint"));
	/* A packer's source manifest may leave the version out. */
	assert_int_equal(parse("{\"name\":\"a\",\"entrypoint\":\"x\"}", RELEASE_MF_SOURCE, &m, &e),
	    0);
	assert_string_equal(m.version, "");

	/* At most RELEASE_ARGS_MAX arguments of RELEASE_ARG_MAX bytes. */
	{
		char buf[8192];
		size_t o = (size_t)snprintf(buf, sizeof(buf),
		    "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\",\"preflight\":[\"x\"");

		for (int i = 1; i < RELEASE_ARGS_MAX; i++) {
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, ",\"a\"");
		}
		snprintf(buf + o, sizeof(buf) - o, "]}");
		assert_int_equal(parse(buf, 0, &m, &e), 0);
		assert_int_equal(m.npreflight, RELEASE_ARGS_MAX);
		snprintf(buf + o, sizeof(buf) - o, ",\"a\"]}");
		assert_int_equal(parse(buf, 0, &m, &e), -1);
		assert_non_null(strstr(err_msg(&e), "at most"));

		char arg[RELEASE_ARG_MAX + 2];
		memset(arg, 'z', sizeof(arg));
		arg[RELEASE_ARG_MAX] = '\0';
		snprintf(buf, sizeof(buf), "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\","
		    "\"preflight\":[\"x\",\"%s\"]}", arg);
		assert_int_equal(parse(buf, 0, &m, &e), 0);
		arg[RELEASE_ARG_MAX] = 'z';
		arg[RELEASE_ARG_MAX + 1] = '\0';
		snprintf(buf, sizeof(buf), "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"x\","
		    "\"preflight\":[\"x\",\"%s\"]}", arg);
		assert_int_equal(parse(buf, 0, &m, &e), -1);
	}
	/* On failure *M is untouched. */
	memset(&m, 0x5a, sizeof(m));
	assert_int_equal(parse("{\"name\":\"a\"}", 0, &m, &e), -1);
	assert_int_equal((unsigned char)m.name[0], 0x5a);
}

static void
test_manifest_format(void **state)
{
	struct release_manifest m, back;
	struct err e = ERR_INIT;
	char *out = NULL, *again = NULL;
	size_t len = 0, alen = 0;
	static const char src[] = "{\"labels\":{\"team\":\"ops\"},\"name\":\"edge\","
	    "\"entrypoint\":\"bin/a\",\"z\":[1,2],\"preflight\":[\"bin/a\",\"--quick\"]}";

	(void)state;
	assert_int_equal(release_manifest_parse(src, sizeof(src) - 1, RELEASE_MF_SOURCE, &m, &e), 0);
	snprintf(m.version, sizeof(m.version), "2.0");
	assert_int_equal(release_manifest_format(&m, src, sizeof(src) - 1, &out, &len, &e), 0);
	assert_int_equal(strlen(out), len);
	assert_int_equal(out[len - 1], '\n');
	/* Known keys first in a fixed order, then the unknown ones in theirs. */
	assert_string_equal(out, "{\n\t\"name\":\t\"edge\",\n\t\"version\":\t\"2.0\",\n"
	    "\t\"entrypoint\":\t\"bin/a\",\n\t\"preflight\":\t[\"bin/a\", \"--quick\"],\n"
	    "\t\"labels\":\t{\n\t\t\"team\":\t\"ops\"\n\t},\n\t\"z\":\t[1, 2]\n}\n");
	/* What it writes, it reads back; writing that again gives the same bytes. */
	assert_int_equal(release_manifest_parse(out, len, RELEASE_MF_AGENT, &back, &e), 0);
	assert_memory_equal(&back, &m, sizeof(m));
	assert_int_equal(release_manifest_format(&back, out, len, &again, &alen, &e), 0);
	assert_int_equal(alen, len);
	assert_memory_equal(again, out, len);
	free(again);
	free(out);
	out = NULL;

	/* Without a source: only the known keys; empty ones are left out. */
	memset(&m, 0, sizeof(m));
	snprintf(m.name, sizeof(m.name), "u");
	snprintf(m.version, sizeof(m.version), "1");
	snprintf(m.updater_entrypoint, sizeof(m.updater_entrypoint), "bin/u");
	assert_int_equal(release_manifest_format(&m, NULL, 0, &out, &len, &e), 0);
	assert_string_equal(out, "{\n\t\"name\":\t\"u\",\n\t\"version\":\t\"1\",\n"
	    "\t\"updater_entrypoint\":\t\"bin/u\"\n}\n");
	free(out);
	out = NULL;

	/* A struct that breaks the rules is never written. */
	m.version[0] = '\0';
	assert_int_equal(release_manifest_format(&m, NULL, 0, &out, &len, &e), -1);
	assert_null(out);
	snprintf(m.version, sizeof(m.version), "1");
	snprintf(m.entrypoint, sizeof(m.entrypoint), "../x");
	assert_int_equal(release_manifest_format(&m, NULL, 0, &out, &len, &e), -1);
	assert_null(out);
}

/*
 * "readiness": how the entrypoint says it serves. Any value of [a-z0-9-] is
 * read (the updater acts on "ready-fd" only, so a newer value still
 * installs); anything else is refused; the writer keeps it after the
 * updater's entry.
 */
static void
test_manifest_readiness(void **state)
{
	static const char *const bad[] = {
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/a\",\"readiness\":\"\"}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/a\",\"readiness\":\"Ready\"}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/a\",\"readiness\":1}",
		"{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/a\","
		"\"readiness\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	};
	static const char good[] = "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/a\","
	    "\"readiness\":\"ready-fd\",\"updater_entrypoint\":\"bin/u\"}";
	static const char later[] = "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/a\","
	    "\"readiness\":\"sd-notify\"}";
	struct release_manifest m;
	struct err e = ERR_INIT;
	char *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(release_manifest_parse(good, sizeof(good) - 1, RELEASE_MF_AGENT, &m, &e), 0);
	assert_string_equal(m.readiness, RELEASE_READINESS_FD);
	assert_int_equal(release_manifest_format(&m, NULL, 0, &out, &len, &e), 0);
	assert_string_equal(out, "{\n\t\"name\":\t\"a\",\n\t\"version\":\t\"1\",\n"
	    "\t\"entrypoint\":\t\"bin/a\",\n\t\"updater_entrypoint\":\t\"bin/u\",\n"
	    "\t\"readiness\":\t\"ready-fd\"\n}\n");
	free(out);
	assert_int_equal(release_manifest_parse(later, sizeof(later) - 1, RELEASE_MF_AGENT, &m, &e),
	    0);
	assert_string_equal(m.readiness, "sd-notify");
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		assert_int_equal(release_manifest_parse(bad[i], strlen(bad[i]), RELEASE_MF_AGENT, &m,
				     &e), -1);
		assert_int_equal(e.kind, ERR_FORMAT);
		assert_non_null(strstr(err_msg(&e), "readiness"));
	}
	assert_true(release_readiness_valid("ready-fd"));
	assert_false(release_readiness_valid("ready fd"));
	assert_false(release_readiness_valid(""));
}

static void
test_manifest_read_checks_disk(void **state)
{
	struct release_manifest m;
	struct err e = ERR_INIT;
	char p[PATH_MAX], q[PATH_MAX];

	(void)state;
	snprintf(p, sizeof(p), "%s/bin", tmpdir_path());
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_AGENT, &m, &e), -1);
	assert_string_equal(err_msg(&e), "release has no readable manifest.json: No such file or "
	    "directory");
	assert_int_equal(e.kind, ERR_FORMAT);
	tmpdir_put("manifest.json", "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/x\"}", 0644);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_AGENT, &m, &e), -1);
	assert_string_equal(err_msg(&e), "entrypoint: 'bin/x' is missing from the release");
	tmpdir_put("bin/x", "#!/bin/sh\n", 0644);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_AGENT, &m, &e), -1);
	assert_non_null(strstr(err_msg(&e), "not an executable"));
	tmpdir_put("bin/x", "#!/bin/sh\n", 0755);
	err_clear(&e);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_AGENT, &m, &e), 0);
	assert_false(err_failed(&e));
	assert_string_equal(m.entrypoint, "bin/x");
	/* Asking for the updater: it is not declared. */
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_UPDATER, &m, &e), -1);
	assert_non_null(strstr(err_msg(&e), "updater_entrypoint"));

	/* A symlink leaving the release is refused even though its target exists. */
	snprintf(q, sizeof(q), "%s/bin/out", tmpdir_path());
	assert_int_equal(symlink("/bin/sh", q), 0);
	tmpdir_put("manifest.json", "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/out\"}", 0644);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_AGENT, &m, &e), -1);
	assert_non_null(strstr(err_msg(&e), "outside"));
	/* A symlink inside the release to an executable is fine. */
	snprintf(q, sizeof(q), "%s/bin/in", tmpdir_path());
	assert_int_equal(symlink("x", q), 0);
	tmpdir_put("manifest.json", "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/in\"}", 0644);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_AGENT, &m, &e), 0);
	/* A directory is not a program; nor is a missing preflight program. */
	tmpdir_put("manifest.json", "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin\"}", 0644);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_AGENT, &m, &e), -1);
	tmpdir_put("manifest.json",
	    "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/x\",\"preflight\":[\"bin/y\"]}",
	    0644);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_AGENT, &m, &e), -1);
	assert_non_null(strstr(err_msg(&e), "preflight: 'bin/y' is missing"));

	/* An updater release: only the updater program is checked on disk. */
	tmpdir_put("manifest.json", "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":\"bin/none\","
	    "\"updater_entrypoint\":\"bin/x\"}", 0644);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_UPDATER, &m, &e), 0);
	assert_string_equal(m.updater_entrypoint, "bin/x");
	tmpdir_put("manifest.json", "{\"name\":\"a\",\"version\":\"1\",\"updater_entrypoint\":\"bin/nope\"}",
	    0644);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_UPDATER, &m, &e), -1);
	assert_string_equal(err_msg(&e), "updater_entrypoint: 'bin/nope' is missing from the "
	    "release");

	/* The check itself refuses unsafe names before touching the disk. */
	assert_int_equal(release_check_exec(tmpdir_path(), "../x", &e), -1);
	assert_non_null(strstr(err_msg(&e), "not a relative path"));
	assert_int_equal(release_check_exec(tmpdir_path(), "bin/x", &e), 0);
	/* A manifest that is not a regular file. */
	snprintf(p, sizeof(p), "%s/manifest.json", tmpdir_path());
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(release_manifest_read(tmpdir_path(), RELEASE_MF_AGENT, &m, &e), -1);
	assert_int_equal(e.kind, ERR_FORMAT);
}

static void
fill(struct release_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	snprintf(ri->id, sizeof(ri->id), "20260101T000000Z-1");
	snprintf(ri->sha, sizeof(ri->sha), "v1 \"label\"");
	memset(ri->sha256, 'b', 64);
	snprintf(ri->version, sizeof(ri->version), "1.0");
	snprintf(ri->name, sizeof(ri->name), "tandem-agent");
	snprintf(ri->installed_at, sizeof(ri->installed_at), "2026-01-01T00:00:00Z");
	snprintf(ri->installed_by, sizeof(ri->installed_by), "%064d", 7);
	ri->fields = RELEASE_R_ALL;
}

static void
test_record_round_trip(void **state)
{
	struct release_info ri, back;
	struct err e = ERR_INIT;
	char *text = NULL;
	size_t len = 0;
	cJSON *o;

	(void)state;
	fill(&ri);
	assert_int_equal(release_record_read(tmpdir_path(), 0, &back, &e), 0); /* none yet */
	assert_int_equal(release_record_write(tmpdir_path(), &ri, &e), 0);
	assert_int_equal(release_record_read(tmpdir_path(), 0, &back, &e), 1);
	assert_memory_equal(&back, &ri, sizeof(ri));
	/* Lenient reading of a full record gives the same. */
	assert_int_equal(release_record_read(tmpdir_path(), RELEASE_REC_LENIENT, &back, &e), 1);
	assert_memory_equal(&back, &ri, sizeof(ri));

	/* The file's exact bytes: keys in a fixed order, indented, final newline. */
	{
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/release.json", tmpdir_path());
		assert_int_equal(fs_read_file(p, 4096, &text, &len), 0);
		assert_non_null(strstr(text, "{\n\t\"id\":\t\"20260101T000000Z-1\",\n\t\"sha\":\t\"v1 "
		    "\\\"label\\\"\",\n\t\"sha256\":"));
		assert_int_equal(text[len - 1], '\n');
		free(text);
	}
	/* The wire object: "slot" first. */
	o = release_record_json(&ri, "prev");
	assert_non_null(o);
	assert_string_equal(o->child->string, "slot");
	assert_string_equal(cJSON_GetObjectItem(o, "installed_by")->valuestring, ri.installed_by);
	cJSON_Delete(o);
}

static void
test_record_strict(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"[]",
		"{\"id\":1}",
		/* every key but one */
		"{\"sha\":\"\",\"sha256\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"\",\"version\":\"\",\"name\":\"\",\"installed_at\":\"\",\"installed_by\":\"\"}",
		/* empty id */
		"{\"id\":\"\",\"sha\":\"\",\"sha256\":\"" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"\",\"version\":\"\",\"name\":\"\",\"installed_at\":\"\",\"installed_by\":\"\"}",
		/* 64 characters that are not hex */
		"{\"id\":\"x\",\"sha\":\"\",\"sha256\":\"" "zaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"\",\"version\":\"\",\"name\":\"\",\"installed_at\":\"\",\"installed_by\":\"\"}",
	};
	static const char good[] = "{\"id\":\"x\",\"sha\":\"\",\"sha256\":\""
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "\",\"version\":\"\",\"name\":\"\",\"installed_at\":\"\",\"installed_by\":\"\","
	    "\"future\":[1]}";
	struct release_info ri;
	struct err e = ERR_INIT;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		memset(&ri, 0x5a, sizeof(ri));
		if (release_record_parse(bad[i], strlen(bad[i]), 0, &ri, &e) != -1) {
			fail_msg("accepted: %s", bad[i]);
		}
		assert_int_equal(e.kind, ERR_FORMAT);
		assert_non_null(strstr(err_msg(&e), "release.json"));
		assert_int_equal((unsigned char)ri.id[0], 0x5a); /* untouched */
	}
	assert_int_equal(release_record_parse(good, sizeof(good) - 1, 0, &ri, &e), 0);
	assert_string_equal(ri.sha256,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(ri.fields, RELEASE_R_ALL);
}

/* A signed release's keys: written only when signed, optional for every reader. */
static void
test_record_signing_keys(void **state)
{
	static const char base[] = "{\"id\":\"x\",\"sha\":\"\",\"sha256\":\""
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "\",\"version\":\"\",\"name\":\"\",\"installed_at\":\"\",\"installed_by\":\"\"";
	static const char *const bad[] = {
		",\"security_version\":-1}",
		",\"security_version\":\"7\"}",
		",\"security_version\":2,\"min_security_version\":3}",
		",\"signed_by\":\"ABCD\"}",
		",\"signed_by\":\"ab,,cd\"}",
		",\"signed_by\":\",ab\"}",
	};
	struct release_info ri, back;
	struct err e = ERR_INIT;
	char text[1024];
	cJSON *o;

	(void)state;
	fill(&ri);
	o = release_record_json(&ri, NULL);
	assert_null(cJSON_GetObjectItem(o, "security_version")); /* unsigned: not written */
	cJSON_Delete(o);
	ri.security_version = 7;
	ri.min_security_version = 6;
	snprintf(ri.signed_by, sizeof(ri.signed_by), "%064d,%064d", 1, 2);
	assert_int_equal(release_record_write(tmpdir_path(), &ri, &e), 0);
	assert_int_equal(release_record_read(tmpdir_path(), 0, &back, &e), 1);
	assert_memory_equal(&back, &ri, sizeof(ri));
	assert_int_equal(release_record_read(tmpdir_path(), RELEASE_REC_LENIENT, &back, &e), 1);
	assert_int_equal(back.security_version, 7);
	assert_string_equal(back.signed_by, ri.signed_by);

	/* Written by an updater from before signatures: all zero. */
	snprintf(text, sizeof(text), "%s}", base);
	assert_int_equal(release_record_parse(text, strlen(text), 0, &back, &e), 0);
	assert_int_equal(back.security_version, 0);
	assert_string_equal(back.signed_by, "");
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		snprintf(text, sizeof(text), "%s%s", base, bad[i]);
		if (release_record_parse(text, strlen(text), 0, &back, &e) != -1) {
			fail_msg("accepted: %s", text);
		}
		assert_int_equal(e.kind, ERR_FORMAT);
		/* Lenient: the record still reads, the bad key is left out. */
		assert_int_equal(release_record_parse(text, strlen(text), RELEASE_REC_LENIENT, &back,
		    &e), 0);
		assert_string_equal(back.id, "x");
	}
}

/* ---- the lenient reading the agent uses for /health ---- */

static void
write_record(const char *text)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/release.json", tmpdir_path());
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0644), 0);
}

static int
read_lenient(struct release_info *ri, struct err *e)
{
	err_clear(e);
	return release_record_read(tmpdir_path(), RELEASE_REC_LENIENT, ri, e);
}

static void
test_lenient_good_and_missing(void **state)
{
	struct release_info ri;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(read_lenient(&ri, &e), 0);
	assert_int_equal(ri.fields, 0);
	assert_int_equal(release_record_read("/nonexistent/dir", RELEASE_REC_LENIENT, &ri, &e), 0);
	write_record("{\"sha\":\"v1.2 label\",\"sha256\":\"ABCDEF0123456789abcdef0123456789"
	    "abcdef0123456789abcdef0123456789\",\"version\":\"1.2\",\"installed_at\":"
	    "\"2026-01-01T00:00:00Z\",\"extra\":{\"a\":[1,2]}}");
	assert_int_equal(read_lenient(&ri, &e), 1);
	assert_int_equal(ri.fields, RELEASE_R_SHA | RELEASE_R_SHA256 | RELEASE_R_VERSION |
	    RELEASE_R_INSTALLED_AT);
	assert_string_equal(ri.sha, "v1.2 label");
	assert_string_equal(ri.sha256,
	    "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	/* The same record is not a valid one for the updater. */
	assert_int_equal(release_record_read(tmpdir_path(), 0, &ri, &e), -1);
	assert_non_null(strstr(err_msg(&e), "'id'"));
}

static void
test_lenient_fields_independent(void **state)
{
	struct release_info ri;
	struct err e = ERR_INIT;
	char big[400], label[300];

	(void)state;
	/* A digest that is not 64 hex digits is absent; the label survives. */
	write_record("{\"sha\":\"x\",\"sha256\":\"abc\"}");
	assert_int_equal(read_lenient(&ri, &e), 1);
	assert_int_equal(ri.fields, RELEASE_R_SHA);
	assert_string_equal(ri.sha256, "");
	/* Wrong types and null: absent. */
	write_record("{\"sha\":12,\"sha256\":null}");
	assert_int_equal(read_lenient(&ri, &e), 1);
	assert_int_equal(ri.fields, 0);
	/* 64 characters but not hex. */
	write_record("{\"sha256\":\"zbcdef0123456789abcdef0123456789abcdef0123456789abcdef012345678"
	    "9\"}");
	assert_int_equal(read_lenient(&ri, &e), 1);
	assert_int_equal(ri.fields, 0);
	/* A label longer than the buffer is absent, not truncated. */
	memset(label, 'a', sizeof(ri.sha));
	label[sizeof(ri.sha)] = '\0';
	snprintf(big, sizeof(big), "{\"sha\":\"%s\"}", label);
	write_record(big);
	assert_int_equal(read_lenient(&ri, &e), 1);
	assert_int_equal(ri.fields, 0);
	label[sizeof(ri.sha) - 1] = '\0';
	snprintf(big, sizeof(big), "{\"sha\":\"%s\"}", label);
	write_record(big);
	assert_int_equal(read_lenient(&ri, &e), 1);
	assert_int_equal(ri.fields, RELEASE_R_SHA);
	assert_int_equal(strlen(ri.sha), sizeof(ri.sha) - 1);
}

static void
test_lenient_invalid(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"[\"sha\"]",
		"{\"sha\":\"a\",\"sha\":\"b\"}", /* duplicate keys */
		"{\"sha\":\"a\"} trailing",
		"null",
	};
	struct release_info ri;
	struct err e = ERR_INIT;
	char path[PATH_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		write_record(bad[i]);
		assert_int_equal(read_lenient(&ri, &e), -1);
		assert_int_equal(ri.fields, 0);
		assert_non_null(strstr(err_msg(&e), "release.json"));
	}
	/* Too large. */
	size_t n = RELEASE_FILE_MAX + 1;
	char *huge = malloc(n + 1);
	assert_non_null(huge);
	memset(huge, ' ', n);
	huge[0] = '{';
	huge[n - 1] = '}';
	huge[n] = '\0';
	write_record(huge);
	free(huge);
	assert_int_equal(read_lenient(&ri, &e), -1);
	/* A directory where the file should be. */
	snprintf(path, sizeof(path), "%s/release.json", tmpdir_path());
	assert_int_equal(unlink(path), 0);
	assert_int_equal(fs_mkdir_p(path, 0700), 0);
	assert_int_equal(read_lenient(&ri, &e), -1);
}

/* ---- where a running program's release is ---- */

static void
test_dir_of(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(release_dir_of("/opt/t/releases/active/bin/tandem-agent", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "/opt/t/releases/active");
	assert_int_equal(release_dir_of("/r/bin/a", out, sizeof(out)), 0);
	assert_string_equal(out, "/r");
	/* The release directory would be "/" or there are too few levels. */
	assert_int_equal(release_dir_of("/bin/a", out, sizeof(out)), -1);
	assert_int_equal(release_dir_of("/a", out, sizeof(out)), -1);
	assert_int_equal(release_dir_of("bin/a", out, sizeof(out)), -1);
	assert_int_equal(release_dir_of(NULL, out, sizeof(out)), -1);
	/* Too small an output buffer. */
	assert_int_equal(release_dir_of("/abcdef/bin/a", out, 7), -1);
	assert_int_equal(release_dir_of("/abcdef/bin/a", out, 8), 0);
	assert_string_equal(out, "/abcdef");
}

static void
test_self_dir(void **state)
{
	char dir[PATH_MAX], exe[PATH_MAX], want[PATH_MAX];
	ssize_t n;

	(void)state;
	assert_int_equal(release_self_dir(dir, sizeof(dir)), 0);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	/* BUILD/tests/test_release -> BUILD */
	assert_int_equal(release_dir_of(exe, want, sizeof(want)), 0);
	assert_string_equal(dir, want);
	assert_int_equal(release_self_dir(dir, 2), -1);
}

static void
test_version_cmp(void **state)
{
	/* Each row: a < b (and b > a); then equal pairs. */
	static const char *const less[][2] = {
		{ "1.0.0", "1.0.1" }, { "1.0.9", "1.0.10" }, { "1.2", "1.10" }, { "1.0", "1.0.0" },
		{ "1.0~rc1", "1.0" }, { "1.0~rc1", "1.0~rc2" }, { "1.0~~", "1.0~" }, { "1.0", "1.0a" },
		{ "1.0a", "1.0+b" }, { "0.9.99", "1.0" }, { "1.0-1", "1.0-2" },
		{ "2026.1", "2026.12" }, { "9", "10" },
	};
	static const char *const same[][2] = {
		{ "1.0.0", "1.0.0" }, { "1.01", "1.1" }, { "", "" }, { "", "0" }, { "1.0~rc1", "1.0~rc01" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(less) / sizeof(less[0]); i++) {
		if (!(release_version_cmp(less[i][0], less[i][1]) < 0) ||
		    !(release_version_cmp(less[i][1], less[i][0]) > 0)) {
			fail_msg("expected %s < %s", less[i][0], less[i][1]);
		}
	}
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		assert_int_equal(release_version_cmp(same[i][0], same[i][1]), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safe_relpath_and_ident),
		cmocka_unit_test(test_manifest_parse),
		cmocka_unit_test(test_manifest_format),
		cmocka_unit_test(test_manifest_readiness),
		cmocka_unit_test_setup_teardown(test_manifest_read_checks_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_round_trip, setup, teardown),
		cmocka_unit_test(test_record_strict),
		cmocka_unit_test_setup_teardown(test_record_signing_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lenient_good_and_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lenient_fields_independent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lenient_invalid, setup, teardown),
		cmocka_unit_test(test_dir_of),
		cmocka_unit_test(test_self_dir),
		cmocka_unit_test(test_version_cmp),
	};

	log_init("test_release", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
