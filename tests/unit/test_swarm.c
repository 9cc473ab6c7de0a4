/*
 * Unit tests of the pure parts of `tandem swarm` (master/swarm_result.c,
 * the config texts of master/swarm_enroll.c): classification of updater
 * answers including malformed ones, /health parsing, `swarm update` option
 * parsing, tables, and the generated agent.conf/updater.conf loaded by the
 * real daemons' option tables.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "agent/options.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "master/swarm_enroll.h"
#include "master/swarm_push.h"
#include "master/swarm_result.h"
#include "updater/config.h"
#include "tests/unit/tmpdir.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void
classify_str(int status, const char *body, struct swarm_result *r)
{
	swarm_classify_update(status, body, body != NULL ? strlen(body) : 0, NULL, r);
}

static void
test_update_ok(void **state)
{
	struct swarm_result r;

	(void)state;
	classify_str(200,
	    "{\"status\":\"updated\",\"release\":{\"slot\":\"active\",\"sha\":\"v2\",\"sha256\":\"" SHA_A
	    "\",\"version\":\"2.0.0\",\"installed_at\":\"2026-01-01T00:00:00Z\",\"extra\":1},"
	    "\"probe\":\"{}\"}",
	    &r);
	assert_int_equal(r.outcome, SWARM_UPDATED);
	assert_int_equal(r.http_status, 200);
	assert_string_equal(r.version, "2.0.0");
	assert_string_equal(r.sha256, SHA_A);
	assert_string_equal(r.reason, "");
	assert_string_equal(swarm_outcome_word(r.outcome), "updated");
}

/* Durations in progress lines and the tally: seconds to a tenth, truncated. */
static void
test_fmt_secs(void **state)
{
	char buf[32];

	(void)state;
	swarm_fmt_secs(0, buf, sizeof(buf));
	assert_string_equal(buf, "0.0 s");
	swarm_fmt_secs(12449, buf, sizeof(buf));
	assert_string_equal(buf, "12.4 s");
	swarm_fmt_secs(999, buf, sizeof(buf));
	assert_string_equal(buf, "0.9 s");
}

static void
test_update_rolled_back(void **state)
{
	struct swarm_result r;

	(void)state;
	classify_str(409,
	    "{\"detail\":{\"error\":\"probe failed\",\"stderr\":\"boom\",\"rolled_back\":true}}", &r);
	assert_int_equal(r.outcome, SWARM_ROLLED_BACK);
	assert_string_equal(swarm_outcome_word(r.outcome), "rolled_back");
	assert_string_equal(r.detail, "probe failed; output of the failing release: boom");
	/* The agent's stderr reaches a terminal: no escape sequences, lines joined. */
	classify_str(409, "{\"detail\":{\"error\":\"x\",\"stderr\":\"line1\\n\\u001b[2Jline2\\t\","
			  "\"rolled_back\":true}}", &r);
	assert_string_equal(r.detail, "x; output of the failing release: line1 ?[2Jline2 ");
	/* The restored release's /health goes under its own name, before the long output. */
	classify_str(409, "{\"detail\":{\"error\":\"e\",\"kind\":\"probe_failed\",\"stderr\":"
			  "\"out\",\"probe\":\"{\\\"status\\\":\\\"ok\\\"}\",\"rolled_back\":true}}", &r);
	assert_int_equal(r.outcome, SWARM_ROLLED_BACK);
	assert_string_equal(r.detail, "e; the restored release's /health: {\"status\":\"ok\"}; "
				      "output of the failing release: out");
	/* 409 without rolled_back: both bad, a failure. */
	classify_str(409,
	    "{\"detail\":{\"error\":\"both bad\",\"stderr\":\"\",\"rolled_back\":false}}", &r);
	assert_int_equal(r.outcome, SWARM_FAILED);
	assert_non_null(strstr(r.reason, "409"));
	assert_string_equal(r.detail, "both bad");
	/* A refused delta: a failure that names its kind, so the master sends the release whole. */
	classify_str(409, "{\"detail\":{\"error\":\"lib/x: not in the release\",\"kind\":"
	    "\"delta_mismatch\",\"rolled_back\":false}}", &r);
	assert_int_equal(r.outcome, SWARM_FAILED);
	assert_string_equal(r.reason, "HTTP 409: delta_mismatch");
	assert_string_equal(r.detail, "lib/x: not in the release");
	/* rolled_back true on another status is not a rollback. */
	classify_str(500, "{\"detail\":{\"error\":\"x\",\"stderr\":\"\",\"rolled_back\":true}}", &r);
	assert_int_equal(r.outcome, SWARM_FAILED);
}

static void
test_update_errors(void **state)
{
	struct swarm_result r;

	(void)state;
	{
		const char *b = "{\"detail\":{\"error\":\"busy\",\"stderr\":\"\",\"rolled_back\":false}}";
		swarm_classify_update(503, b, strlen(b), "5", &r);
	}
	assert_int_equal(r.outcome, SWARM_FAILED);
	assert_int_equal(r.http_status, 503);
	assert_non_null(strstr(r.reason, "busy"));
	assert_string_equal(r.detail, "busy");
	assert_non_null(strstr(r.reason, "retry after 5 s"));
	/* 503 without Retry-After: not "busy"; the detail says why. */
	classify_str(503, "{\"detail\":{\"error\":\"self-update needs tandem-launcher\","
			  "\"stderr\":\"\",\"rolled_back\":false}}", &r);
	assert_null(strstr(r.reason, "busy"));
	assert_string_equal(r.detail, "self-update needs tandem-launcher");
	classify_str(422, "{\"detail\":{\"error\":\"unsafe entry ../x\",\"stderr\":\"\","
			  "\"rolled_back\":false}}", &r);
	assert_non_null(strstr(r.reason, "422"));
	assert_string_equal(r.detail, "unsafe entry ../x");
	classify_str(403, "{\"detail\":\"not the master\"}", &r);
	assert_non_null(strstr(r.reason, "403"));
	assert_string_equal(r.detail, "not the master");
	classify_str(404, "{\"detail\":\"Not Found\"}", &r);
	assert_non_null(strstr(r.reason, "does not offer"));
	classify_str(413, "{\"detail\":{\"error\":\"too large\"}}", &r);
	assert_non_null(strstr(r.reason, "413"));
	classify_str(507, "{\"detail\":{\"error\":\"disk\"}}", &r);
	assert_non_null(strstr(r.reason, "disk"));
	classify_str(418, "{\"detail\":{\"error\":\"teapot\"}}", &r);
	assert_string_equal(r.reason, "HTTP 418");
}

static void
test_update_malformed(void **state)
{
	static const char *const bodies[] = {
		"",
		"not json",
		"[1,2]",
		"{\"status\":\"updated\"",
		"{\"status\":\"updated\",\"status\":\"updated\",\"release\":{}}",
		"{\"status\":\"updated\",\"release\":\"v2\"}",
		"{\"status\":1,\"release\":{}}",
		"{\"status\":\"installing\",\"release\":{}}",
		"{\"detail\":{\"error\":5}}",
		"\x01\x02\xff",
	};
	struct swarm_result r;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(bodies); i++) {
		classify_str(200, bodies[i], &r);
		assert_int_equal(r.outcome, SWARM_FAILED);
		assert_true(r.reason[0] != '\0');
		/* Printable, whatever the body was. */
		for (const char *p = r.detail; *p != '\0'; p++) {
			assert_true((unsigned char)*p >= 0x20);
		}
	}
	swarm_classify_update(200, NULL, 0, NULL, &r);
	assert_int_equal(r.outcome, SWARM_FAILED);
	/* A huge error body is cut, not overflowed. */
	{
		size_t n = 100000;
		char *big = malloc(n + 64);
		assert_non_null(big);
		memcpy(big, "{\"detail\":{\"error\":\"", 20);
		memset(big + 20, 'x', n);
		memcpy(big + 20 + n, "\",\"rolled_back\":false}}", 24);
		classify_str(500, big, &r);
		assert_int_equal(r.outcome, SWARM_FAILED);
		assert_int_equal(strlen(r.detail), sizeof(r.detail) - 1);
		free(big);
	}
}

static void
test_self(void **state)
{
	const char *queued = "{\"status\":\"self_update_queued\",\"id\":\"x\",\"from_version\":"
			     "\"1.0.0\",\"to_version\":\"2.0.0\",\"release\":{\"sha256\":\"" SHA_A
			     "\"},\"handover\":\"listen_fd\"}";
	const char *no_to = "{\"status\":\"self_update_queued\"}";
	struct swarm_result r;

	(void)state;
	swarm_classify_self(200, queued, strlen(queued), NULL, &r);
	assert_int_equal(r.outcome, SWARM_UPDATED);
	assert_string_equal(r.version, "2.0.0");
	assert_string_equal(r.sha256, SHA_A);
	/* Queued without a version to confirm: failure. */
	swarm_classify_self(200, no_to, strlen(no_to), NULL, &r);
	assert_int_equal(r.outcome, SWARM_FAILED);
	/* /update does not accept a self-update answer. */
	swarm_classify_update(200, queued, strlen(queued), NULL, &r);
	assert_int_equal(r.outcome, SWARM_FAILED);
	/* An updater without /update-self. */
	{
		const char *b = "{\"detail\":\"Not Found\"}";
		swarm_classify_self(404, b, strlen(b), NULL, &r);
	}
	assert_int_equal(r.outcome, SWARM_FAILED);
	assert_non_null(strstr(r.reason, "does not offer"));
}

static void
rollback_str(int status, const char *body, struct swarm_result *r)
{
	swarm_classify_rollback(status, body, strlen(body), NULL, r);
}

static void
test_rollback(void **state)
{
	struct swarm_result r;
	const char *ok = "{\"status\":\"rolled_back\",\"release\":{\"version\":\"1.0.0\",\"sha256\":\"" SHA_A
			 "\"},\"probe\":\"\"}";

	(void)state;
	swarm_classify_rollback(200, ok, strlen(ok), NULL, &r);
	assert_int_equal(r.outcome, SWARM_UPDATED);
	assert_string_equal(r.version, "1.0.0");
	/* An update answer is not a rollback answer. */
	rollback_str(200, "{\"status\":\"updated\",\"release\":{}}", &r);
	assert_int_equal(r.outcome, SWARM_FAILED);
	rollback_str(404, "{\"detail\":{\"error\":\"no previous release\"}}", &r);
	assert_int_equal(r.outcome, SWARM_FAILED);
	assert_non_null(strstr(r.reason, "no previous release"));
	/* 409 with rolled_back stays a failure for /rollback. */
	rollback_str(409, "{\"detail\":{\"error\":\"x\",\"rolled_back\":true}}", &r);
	assert_int_equal(r.outcome, SWARM_FAILED);
}

static void
test_health(void **state)
{
	const char *good =
	    "{\"status\":\"ok\",\"role\":\"updater\",\"version\":\"0.2.0\",\"releases\":["
	    "{\"slot\":\"active\",\"sha\":\"v2\",\"sha256\":\"" SHA_A "\",\"version\":\"2.0.0\","
	    "\"installed_at\":\"2026-01-01T00:00:00Z\"},"
	    "{\"slot\":\"prev\",\"sha\":\"v1\",\"sha256\":\"\",\"version\":\"1.0.0\"}],"
	    "\"both_bad\":false,\"agent\":{\"state\":\"running\",\"pid\":12},"
	    "\"operation\":{\"id\":\"x\",\"kind\":\"update\",\"phase\":\"probe\",\"elapsed_ms\":3},"
	    "\"new_key\":[1]}";
	static const char *const bad[] = {
		"",
		"{}",
		"{\"role\":\"agent\",\"releases\":[]}",
		"{\"role\":\"updater\",\"releases\":{}}",
		"{\"role\":\"updater\",\"releases\":[1]}",
		"{\"role\":\"updater\",\"releases\":[]",
	};
	struct swarm_health h;
	struct err err = ERR_INIT;
	size_t i;

	(void)state;
	assert_int_equal(swarm_parse_health(good, strlen(good), &h, &err), 0);
	assert_string_equal(h.status, "ok");
	assert_string_equal(h.version, "0.2.0");
	assert_true(h.have_active && h.have_prev);
	assert_string_equal(h.active.version, "2.0.0");
	assert_string_equal(h.active.sha256, SHA_A);
	assert_string_equal(h.prev.sha, "v1");
	assert_string_equal(h.agent_state, "running");
	assert_string_equal(h.operation, "update/probe");
	assert_false(h.probation);
	/* An updater from before release signatures says nothing about them. */
	assert_string_equal(h.signature, "");
	assert_int_equal(h.security_floor, -1);
	assert_int_equal(h.keyring_version, -1);
	{
		const char *b = "{\"role\":\"updater\",\"releases\":[],\"signature\":\"required\","
				"\"security_floor\":6,\"keyring_version\":3,\"compatible\":\"tandem\"}";
		assert_int_equal(swarm_parse_health(b, strlen(b), &h, &err), 0);
		assert_string_equal(h.signature, "required");
		assert_int_equal(h.security_floor, 6);
		assert_int_equal(h.keyring_version, 3);
		assert_string_equal(h.compatible, "tandem");
		b = "{\"role\":\"updater\",\"releases\":[],\"signature\":\"unsigned\","
		    "\"security_floor\":-2,\"keyring_version\":null,\"compatible\":7}";
		assert_int_equal(swarm_parse_health(b, strlen(b), &h, &err), 0);
		assert_string_equal(h.signature, "unsigned");
		assert_int_equal(h.security_floor, -1);
		assert_int_equal(h.keyring_version, 0);
		assert_string_equal(h.compatible, "");
	}
	{
		const char *b = "{\"role\":\"updater\",\"releases\":[],\"version\":\"2.0.0\","
				"\"updater\":{\"version\":\"2.0.0\",\"probation\":{\"deadline\":1}}}";
		assert_int_equal(swarm_parse_health(b, strlen(b), &h, &err), 0);
		assert_true(h.probation);
	}
	for (i = 0; i < ARRAY_LEN(bad); i++) {
		assert_int_equal(swarm_parse_health(bad[i], strlen(bad[i]), &h, &err),
		    -1);
		assert_true(err_failed(&err));
		assert_int_equal(err.kind, ERR_PROTOCOL);
	}
	assert_int_equal(swarm_parse_health(NULL, 0, &h, &err), -1);
	/* No release installed yet. */
	{
		const char *b = "{\"role\":\"updater\",\"releases\":[],\"operation\":null}";
		assert_int_equal(swarm_parse_health(b, strlen(b), &h, &err), 0);
	}
	assert_false(h.have_active);
	assert_string_equal(h.operation, "");
}

/* Parse ARGS (NULL-terminated, "update" prepended). */
static int
parse(struct swarm_update_args *a, struct err *err, ...)
{
	char *argv[32];
	va_list ap;
	int argc = 0, rc;

	argv[argc++] = (char *)"update";
	va_start(ap, err);
	for (;;) {
		char *s = va_arg(ap, char *);
		if (s == NULL) {
			break;
		}
		argv[argc++] = s;
	}
	va_end(ap);
	argv[argc] = NULL;
	err_clear(err);
	rc = swarm_update_args_parse(argc, argv, a, err);
	return rc;
}

static void
test_args(void **state)
{
	struct swarm_update_args a;
	struct err err = ERR_INIT;

	(void)state;
	assert_int_equal(parse(&a, &err, "--host", "a", "--host", "b", "--release",
			     "r.tgz", "--parallel", "3", "--timeout", "60", "--json-lines", (char *)NULL),
	    0);
	assert_int_equal(a.n_hosts, 2);
	assert_string_equal(a.hosts[1], "b");
	assert_string_equal(a.release, "r.tgz");
	assert_int_equal(a.parallel, 3);
	assert_int_equal(a.timeout_s, 60);
	assert_true(a.json_lines && !a.json && !a.all && !a.dry_run && !a.include_self);
	free(a.hosts);

	assert_int_equal(parse(&a, &err, "--all", "--dry-run", (char *)NULL), 0);
	assert_true(a.all && a.dry_run);
	assert_null(a.release);
	assert_int_equal(a.parallel, SWARM_DEFAULT_PARALLEL);
	assert_int_equal(a.timeout_s, SWARM_DEFAULT_TIMEOUT_S);
	free(a.hosts);

	assert_int_equal(parse(&a, &err, "--all", "--release", "d", "--include-self",
			     (char *)NULL), 0);
	assert_true(a.include_self);
	free(a.hosts);

	/* --json and --help are the command line's: main takes them before. */
	assert_int_equal(parse(&a, &err, "--all", "--dry-run", "--help", (char *)NULL), -1);
	assert_string_equal(err_msg(&err), "unknown option '--help'");
	err_clear(&err);
	free(a.hosts);

	/* Usage errors. */
#define BAD(needle, ...)                                                                      \
	do {                                                                                  \
		assert_int_equal(parse(&a, &err, __VA_ARGS__, (char *)NULL), -1);                \
		assert_non_null(strstr(err_msg(&err), needle));                               \
		assert_int_equal(err.kind, ERR_USAGE);                                        \
		free(a.hosts);                                                                \
	} while (0)
	BAD("exclude", "--all", "--host", "a", "--release", "r");
	BAD("--all", "--release", "r");
	BAD("--release", "--host", "a");
	BAD("--parallel", "--all", "--release", "r", "--parallel", "0");
	BAD("--parallel", "--all", "--release", "r", "--parallel", "257");
	BAD("--parallel", "--all", "--release", "r", "--parallel", "3x");
	BAD("--timeout", "--all", "--release", "r", "--timeout", "-1");
	BAD("--timeout", "--all", "--release", "r", "--timeout", "86401");
	BAD("unknown option", "--all", "--release", "r", "--bogus");
	BAD("needs a value", "--all", "--release");
	BAD("unexpected argument", "--all", "--release", "r", "extra");
	BAD("--host needs", "--host", "", "--release", "r");
#undef BAD
}

static char *
table_text(struct swarm_table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	swarm_table_print(t, fp);
	assert_int_equal(fclose(fp), 0);
	return buf;
}

static void
test_table(void **state)
{
	static const char *const heads[] = { "HOST", "RESULT", "DETAIL" };
	const char *r1[] = { "web1", "updated", NULL };
	const char *r2[] = { "db-long-name", "failed: x", "line1\nline2\ttab" };
	const char *r3[] = { "h\xc3\xa9", "", "" };
	struct swarm_table *t = swarm_table_new(3, heads);
	char *text;

	(void)state;
	assert_non_null(t);
	assert_int_equal(swarm_table_add(t, r1), 0);
	assert_int_equal(swarm_table_add(t, r2), 0);
	assert_int_equal(swarm_table_add(t, r3), 0);
	text = table_text(t);
	assert_string_equal(text,
	    "HOST          RESULT     DETAIL\n"
	    "web1          updated    -\n"
	    "db-long-name  failed: x  line1?line2?tab\n"
	    "h\xc3\xa9            -          -\n");
	free(text);
	swarm_table_free(t);
	swarm_table_free(NULL);
	assert_null(swarm_table_new(0, heads));
}

static void
test_table_cut(void **state)
{
	static const char *const heads[] = { "X" };
	char long_cell[400];
	const char *row[1] = { long_cell };
	struct swarm_table *t = swarm_table_new(1, heads);
	char *text, *line2;
	size_t i, n = 0;

	(void)state;
	/* 200 two-byte characters: cut at a character boundary with "...". */
	for (i = 0; i < 199; i++) {
		long_cell[n++] = '\xc3';
		long_cell[n++] = '\xa9';
	}
	long_cell[n] = '\0';
	assert_int_equal(swarm_table_add(t, row), 0);
	text = table_text(t);
	line2 = strchr(text, '\n') + 1;
	assert_int_equal(strlen(line2), (SWARM_TABLE_MAX_CELL - 3) * 2 + 3 + 1);
	assert_string_equal(line2 + (SWARM_TABLE_MAX_CELL - 3) * 2, "...\n");
	free(text);
	swarm_table_free(t);
}

/* The generated config files load in the real daemons' option tables. */
static void
test_conf_texts(void **state)
{
	struct reg_host h;
	struct updater_config ucfg;
	struct agent_options ao;
	const char *dir = tmpdir_make("swarm");
	char text[4096], path[PATH_MAX];
	char *argv[] = { (char *)"tandem-agent", (char *)"--config", path, NULL };
	struct err e = ERR_INIT;

	(void)state;
	memset(&h, 0, sizeof(h));
	snprintf(h.name, sizeof(h.name), "web1");
	snprintf(h.address, sizeof(h.address), "::1");
	h.agent_port = 9001;
	h.updater_port = 9002;
	memset(h.agent_fp, 'b', 64);

	assert_non_null(dir);
	assert_int_equal(swarm_updater_conf(&h, "tandem-master", SHA_A, 0, text, sizeof(text)), 0);
	memset(&ucfg, 0, sizeof(ucfg));
	assert_int_equal(config_defaults(updater_config_table, updater_config_table_len, &ucfg, &e),
	    0);
	assert_int_equal(config_load_buffer(updater_config_table, updater_config_table_len, &ucfg, text,
			     strlen(text), dir, "updater.conf", &e), 0);
	assert_string_equal(ucfg.listen, "[::1]:9002");
	assert_string_equal(ucfg.agent_probe, "[::1]:9001");
	assert_string_equal(ucfg.agent_pin, h.agent_fp);
	assert_string_equal(ucfg.master_fingerprints[0], SHA_A);
	snprintf(path, sizeof(path), "%s/updater.crt", dir);
	assert_string_equal(ucfg.cert, path);
	snprintf(path, sizeof(path), "%s/install", dir);
	assert_string_equal(ucfg.install_dir, path);
	assert_int_equal(updater_config_check(&ucfg, NULL), 0);
	config_free(updater_config_table, updater_config_table_len, &ucfg);

	/* A host name (not an IP): listen everywhere, probe on loopback; no master pin. */
	snprintf(h.address, sizeof(h.address), "web1.example.org");
	assert_int_equal(swarm_updater_conf(&h, "m", "", 0, text, sizeof(text)), 0);
	assert_null(strstr(text, "require_signed"));
	assert_non_null(strstr(text, "listen = 0.0.0.0:9002\n"));
	assert_non_null(strstr(text, "agent_probe = 127.0.0.1:9001\n"));
	assert_null(strstr(text, "master_fingerprints"));
	assert_int_equal(swarm_updater_conf(&h, "m", "", 0, text, 64), -1);
	/* From a master with a keyring: signatures required, the keyring next to it. */
	assert_int_equal(swarm_updater_conf(&h, "m", "", 1, text, sizeof(text)), 0);
	memset(&ucfg, 0, sizeof(ucfg));
	assert_int_equal(config_defaults(updater_config_table, updater_config_table_len, &ucfg, &e),
	    0);
	assert_int_equal(config_load_buffer(updater_config_table, updater_config_table_len, &ucfg, text,
			     strlen(text), dir, "updater.conf", &e), 0);
	assert_true(ucfg.require_signed);
	snprintf(path, sizeof(path), "%s/keyring.json", dir);
	assert_string_equal(ucfg.release_keyring, path);
	assert_string_equal(ucfg.compatible, "tandem");
	config_free(updater_config_table, updater_config_table_len, &ucfg);

	/* agent.conf through the agent's own parser (-n needs no files to exist yet). */
	snprintf(h.address, sizeof(h.address), "127.0.0.1");
	assert_int_equal(swarm_agent_conf(&h, "tandem-master", text, sizeof(text)), 0);
	snprintf(path, sizeof(path), "%s/agent.conf", dir);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0644), 0);
	memset(&ao, 0, sizeof(ao));
	assert_int_equal(options_parse(3, argv, &ao, &e), 0);
	assert_string_equal(ao.cfg.listen, "127.0.0.1:9001");
	assert_string_equal(ao.cfg.master_cn, "tandem-master");
	options_free(&ao);
	assert_int_equal(swarm_agent_conf(&h, "tandem-master", text, 32), -1);
	assert_int_equal(tmpdir_remove(), 0);
}

/*
 * Mutated worker answers (bytes flipped, cut, duplicated) through every reader:
 * never a crash (ASan run), always a NUL-terminated, printable reason/detail.
 */
static void
test_mutated_answers(void **state)
{
	static const char *const seeds[] = {
		"{\"status\":\"updated\",\"release\":{\"slot\":\"active\",\"sha\":\"v\",\"sha256\":\""
		SHA_A "\",\"version\":\"1\"},\"probe\":\"{}\"}",
		"{\"detail\":{\"error\":\"e\",\"stderr\":\"s\",\"rolled_back\":true}}",
		"{\"status\":\"ok\",\"role\":\"updater\",\"version\":\"1\",\"releases\":[{\"slot\":"
		"\"active\",\"version\":\"1\"}],\"agent\":{\"state\":\"running\"},\"operation\":"
		"{\"kind\":\"update\",\"phase\":\"probe\"},\"updater\":{\"probation\":null}}",
	};
	struct swarm_result r;
	struct swarm_health h;
	char buf[1024];
	struct err err = ERR_INIT;
	unsigned seed = 12345;
	size_t i, k, len;

	(void)state;
	for (i = 0; i < 6000; i++) {
		const char *src = seeds[i % ARRAY_LEN(seeds)];
		len = strlen(src);
		memcpy(buf, src, len);
		for (k = 0; k < 1 + i % 4; k++) {
			seed = seed * 1103515245u + 12345u;
			buf[(seed >> 8) % len] = (char)(seed >> 16);
		}
		seed = seed * 1103515245u + 12345u;
		if (i % 3 == 0) {
			len = (seed >> 8) % (len + 1);
		}
		swarm_classify_update((int)(200 + (i % 4) * 103), buf, len, "1", &r);
		assert_true(strlen(r.reason) < sizeof(r.reason));
		for (const char *p = r.detail; *p != '\0'; p++) {
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
		}
		swarm_classify_self(200, buf, len, NULL, &r);
		swarm_classify_rollback(200, buf, len, NULL, &r);
		if (swarm_parse_health(buf, len, &h, &err) == 0) {
			assert_true(strlen(h.version) < sizeof(h.version));
		}
	}
}

/*
 * The worker pool without a network: hosts without an updater fingerprint fail
 * closed before any connection (no TLS context exists at all), every job is
 * done exactly once whatever the bound, and each failure lands in the push log.
 */
static void
test_pool_fail_closed(void **state)
{
	struct err pe = ERR_INIT;
	struct swarm_release_file rf;
	struct swarm_pool_opts po;
	struct swarm_ctx c;
	struct swarm_job *jobs;
	struct reg_push *log = NULL;
	const char *dir = tmpdir_make("swarm_pool");
	size_t n = 0, i, nlog = 0;
	const int bounds[] = { 1, 3, 64 };

	(void)state;
	assert_non_null(dir);
	memset(&c, 0, sizeof(c));
	c.home = dir;
	c.quiet = 1;
	c.timeout_ms = 1000;
	assert_int_equal(registry_open(dir, &c.reg, &pe), REGISTRY_OK);
	memset(&rf, 0, sizeof(rf));
	rf.path = "/nonexistent";
	memcpy(rf.sha256, SHA_A, 65);
	jobs = calloc(20, sizeof(*jobs));
	assert_non_null(jobs);
	for (size_t b = 0; b < ARRAY_LEN(bounds); b++) {
		for (i = 0; i < 20; i++) {
			memset(&jobs[i], 0, sizeof(jobs[i]));
			snprintf(jobs[i].host.name, sizeof(jobs[i].host.name), "h%02zu", i);
			snprintf(jobs[i].host.address, sizeof(jobs[i].host.address), "127.0.0.1");
			memset(jobs[i].host.agent_fp, 'c', 64);
			jobs[i].host.agent_port = 1;
			jobs[i].host.updater_port = 2;
			jobs[i].kind = i % 2 == 0 ? SWARM_JOB_UPDATE : SWARM_JOB_DRY_RUN;
			if (b == 0) {
				assert_int_equal(registry_add_host(c.reg, &jobs[i].host, &pe),
				    REGISTRY_OK);
			}
		}
		memset(&po, 0, sizeof(po));
		po.release = &rf;
		po.parallel = bounds[b];
		assert_int_equal(swarm_run(&c, jobs, 20, &po), 0);
		for (i = 0; i < 20; i++) {
			assert_int_equal(jobs[i].phase, SWARM_PH_DONE);
			if (jobs[i].kind == SWARM_JOB_UPDATE) {
				assert_int_equal(jobs[i].agent.outcome, SWARM_FAILED);
				assert_string_equal(jobs[i].agent.reason, "no updater fingerprint");
				assert_non_null(strstr(jobs[i].agent.detail, "unpinned"));
				assert_int_equal(jobs[i].self_tried, 0);
			} else {
				assert_false(jobs[i].reachable);
				assert_int_equal(jobs[i].pin_ok, -1);
				assert_non_null(strstr(jobs[i].error, "unpinned"));
			}
		}
	}
	/* Three rounds of one failed push each for the even hosts, none for the dry runs. */
	assert_int_equal(registry_push_history(c.reg, "h00", 0, &log, &nlog, &pe),
	    REGISTRY_OK);
	assert_int_equal(nlog, 3);
	assert_string_equal(log[0].result, "failed");
	assert_string_equal(log[0].sha256, SHA_A);
	free(log);
	assert_int_equal(registry_push_history(c.reg, "h01", 0, &log, &n, &pe),
	    REGISTRY_OK);
	assert_int_equal(n, 0);
	free(log);
	free(jobs);
	registry_close(c.reg);
	assert_int_equal(tmpdir_remove(), 0);
}

/* A pid that ran and is gone: a child that exited and was reaped. */
static pid_t
dead_pid(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

/*
 * swarm_tmpdir_make names its directory by the master's pid and first removes
 * the ones a killed master left (pid gone, ours, a real directory); it keeps
 * those of a running pid, foreign names and symlinks.
 */
static void
test_tmpdir_sweep(void **state)
{
	char dead[64], alive[64], link[64], odd[64], made[PATH_MAX], prefix[64], path[PATH_MAX];
	const char *root = tmpdir_make("swarm_tmp");
	const char *saved = getenv("TMPDIR");
	char *saved_copy = saved != NULL ? strdup(saved) : NULL;
	pid_t gone = dead_pid();
	struct stat st;

	(void)state;
	assert_non_null(root);
	snprintf(dead, sizeof(dead), "tandem-delta-%ld-abcdef", (long)gone);
	snprintf(alive, sizeof(alive), "tandem-delta-%ld-abcdef", (long)getppid());
	snprintf(link, sizeof(link), "tandem-delta-%ld-linkxx", (long)gone);
	snprintf(odd, sizeof(odd), "tandem-delta-x%ld-abcdef", (long)gone);
	tmpdir_mkdir(dead, 0700);
	snprintf(path, sizeof(path), "%s/delta-1.tar.gz", dead);
	tmpdir_put(path, "y", 0600);
	tmpdir_mkdir(alive, 0700);
	tmpdir_mkdir(odd, 0700);
	tmpdir_mkdir("target", 0700);
	tmpdir_put("target/keep", "k", 0600);
	tmpdir_join(path, sizeof(path), link);
	assert_int_equal(symlink("target", path), 0);

	assert_int_equal(setenv("TMPDIR", root, 1), 0);
	assert_int_equal(swarm_tmpdir_make("delta", made, sizeof(made)), 0);
	snprintf(prefix, sizeof(prefix), "%s/tandem-delta-%ld-", root, (long)getpid());
	assert_int_equal(strncmp(made, prefix, strlen(prefix)), 0);
	assert_int_equal(stat(made, &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	tmpdir_join(path, sizeof(path), dead);
	assert_int_equal(lstat(path, &st), -1);
	tmpdir_join(path, sizeof(path), alive);
	assert_int_equal(lstat(path, &st), 0);
	tmpdir_join(path, sizeof(path), odd);
	assert_int_equal(lstat(path, &st), 0);
	tmpdir_join(path, sizeof(path), link);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	tmpdir_join(path, sizeof(path), "target/keep");
	assert_int_equal(lstat(path, &st), 0);

	/* The next command leaves this one's (its pid runs) alone. */
	assert_int_equal(swarm_tmpdir_make("delta", path, sizeof(path)), 0);
	assert_int_equal(stat(made, &st), 0);

	if (saved_copy != NULL)
		assert_int_equal(setenv("TMPDIR", saved_copy, 1), 0);
	else
		assert_int_equal(unsetenv("TMPDIR"), 0);
	free(saved_copy);
	assert_int_equal(tmpdir_remove(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_update_ok),
		cmocka_unit_test(test_fmt_secs),
		cmocka_unit_test(test_update_rolled_back),
		cmocka_unit_test(test_update_errors),
		cmocka_unit_test(test_update_malformed),
		cmocka_unit_test(test_self),
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_health),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_table_cut),
		cmocka_unit_test(test_conf_texts),
		cmocka_unit_test(test_mutated_answers),
		cmocka_unit_test(test_pool_fail_closed),
		cmocka_unit_test(test_tmpdir_sweep),
	};

	log_init("test_swarm", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
