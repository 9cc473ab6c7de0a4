/*
 * Unit tests for common/config: the option table (defaults, table bugs), the
 * file format (comments, quoting, CR, NUL, control bytes, invalid UTF-8,
 * line and file limits, unknown and duplicate keys), every value type with
 * its bounds and overflow, paths relative to the config file's directory,
 * overrides, print -> reload round trips, and all-or-nothing updates.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "tests/unit/tmpdir.h"

struct cfg {
	char *name;
	char *any;
	char *dir;
	char *rel;
	long long workers;
	long long neg;
	int debug;
	long long timeout;
	long long maxsize;
	char *listen;
	char *peer;
	char **hosts;
	char **empty;
	int level;
	int format;
	int target;
};

#define O(n, t, m, d, lo, hi, h) { (n), (t), offsetof(struct cfg, m), (d), (lo), (hi), (h) }
static const struct config_option tbl[] = {
	O("name", CONFIG_STR, name, "tandem", 1, 16, "Display name.\nTwo help lines."),
	O("any", CONFIG_STR, any, NULL, 0, 0, NULL),
	O("dir", CONFIG_PATH, dir, "/var/lib/tandem", 0, 0, "State directory."),
	O("rel", CONFIG_PATH, rel, NULL, 0, 0, NULL),
	O("workers", CONFIG_INT, workers, "4", 1, 64, NULL),
	O("neg", CONFIG_INT, neg, "-5", -100, 100, NULL),
	O("debug", CONFIG_BOOL, debug, "false", 0, 0, NULL),
	O("timeout", CONFIG_DURATION_MS, timeout, "10s", 0, 3600000, NULL),
	O("max_size", CONFIG_SIZE, maxsize, "64M", 1, 1LL << 40, NULL),
	O("listen", CONFIG_ADDR, listen, ":8765", 1, 65535, NULL),
	O("peer", CONFIG_ADDR, peer, NULL, 0, 0, NULL),
	O("hosts", CONFIG_STRLIST, hosts, "a, b", 0, 0, NULL),
	O("empty", CONFIG_STRLIST, empty, NULL, 0, 0, NULL),
	O("log_level", CONFIG_LOGLEVEL, level, "info", 0, 0, NULL),
	O("log_format", CONFIG_LOGFORMAT, format, "text", 0, 0, NULL),
	O("log_target", CONFIG_LOGTARGET, target, "stderr", 0, 0, NULL),
};
#define N ARRAY_LEN(tbl)

struct fx {
	const char *dir;
	struct cfg c;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct err e = ERR_INIT;

	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("config");
	if (f->dir == NULL || config_defaults(tbl, N, &f->c, &e) != 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int rc = tmpdir_remove();

	config_free(tbl, N, &f->c);
	free(f);
	return rc;
}

static size_t
list_len(char **l)
{
	size_t n = 0;

	assert_non_null(l);
	while (l[n] != NULL) {
		n++;
	}
	return n;
}

/* Load TEXT into C; a failure must be ERR_CONFIG. */
static int
load(struct cfg *c, const char *text, struct err *e)
{
	int rc = config_load_buffer(tbl, N, c, text, strlen(text), "/base", "t.conf", e);

	if (rc != 0) {
		assert_int_equal(e->kind, ERR_CONFIG);
	}
	return rc;
}

#define ASSERT_LOAD_FAILS(f, text, why)                                                 \
	do {                                                                              \
		struct err e_ = ERR_INIT;                                                 \
		struct cfg snap_;                                                         \
		memcpy(&snap_, &(f)->c, sizeof(snap_));                                   \
		if (load(&(f)->c, (text), &e_) != -1) {                                   \
			fail_msg("accepted: %s", #text);                                  \
		}                                                                         \
		if (strstr(err_msg(&e_), (why)) == NULL) {                                \
			fail_msg("%s: error '%s' lacks '%s'", #text, err_msg(&e_), (why)); \
		}                                                                         \
		/* All-or-nothing: not a single member changed. */                        \
		assert_memory_equal(&snap_, &(f)->c, sizeof(snap_));                      \
	} while (0)

#define ASSERT_LOAD_OK(f, text)                                                         \
	do {                                                                              \
		struct err e_ = ERR_INIT;                                                 \
		if (load(&(f)->c, (text), &e_) != 0) {                                    \
			fail_msg("refused %s: %s", #text, err_msg(&e_));                  \
		}                                                                         \
	} while (0)

/* ---- table and defaults ---- */

static void
test_defaults(void **state)
{
	struct fx *f = *state;
	struct cfg *c = &f->c;
	struct err e = ERR_INIT;

	assert_string_equal(c->name, "tandem");
	assert_null(c->any);
	assert_string_equal(c->dir, "/var/lib/tandem");
	assert_null(c->rel);
	assert_int_equal(c->workers, 4);
	assert_int_equal(c->neg, -5);
	assert_int_equal(c->debug, 0);
	assert_int_equal(c->timeout, 10000);
	assert_int_equal(c->maxsize, 64LL << 20);
	assert_string_equal(c->listen, ":8765");
	assert_null(c->peer);
	assert_int_equal(list_len(c->hosts), 2);
	assert_string_equal(c->hosts[0], "a");
	assert_string_equal(c->hosts[1], "b");
	assert_int_equal(list_len(c->empty), 0);
	assert_int_equal(c->level, LOG_LVL_INFO);
	/* Again over set values: the old ones are freed (ASan checks leaks). */
	ASSERT_LOAD_OK(f, "name = other\nany = x\nhosts = x,y,z\n");
	assert_int_equal(config_defaults(tbl, N, c, &e), 0);
	assert_string_equal(c->name, "tandem");
	assert_null(c->any);
	assert_int_equal(list_len(c->hosts), 2);
	/* A relative PATH default resolves against the working directory. */
	static const struct config_option rel[] = {
		O("rel", CONFIG_PATH, rel, "state", 0, 0, NULL),
	};
	char cwd[PATH_MAX], want[PATH_MAX + 8];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(config_defaults(rel, 1, c, &e), 0);
	snprintf(want, sizeof(want), "%s/state", cwd);
	assert_string_equal(c->rel, want);
}

static void
test_table_bugs(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;
	static const struct config_option bad_name[] = { O("Name", CONFIG_STR, name, "x", 0, 0,
		NULL) };
	static const struct config_option dash[] = { O("a-b", CONFIG_STR, name, "x", 0, 0, NULL) };
	static const struct config_option empty[] = { O("", CONFIG_STR, name, "x", 0, 0, NULL) };
	static const struct config_option null[] = { O(NULL, CONFIG_STR, name, "x", 0, 0, NULL) };
	static const struct config_option twice[] = {
		O("workers", CONFIG_INT, workers, "1", 0, 9, NULL),
		O("workers", CONFIG_INT, neg, "1", 0, 9, NULL),
	};
	static const struct config_option bad_def[] = { O("workers", CONFIG_INT, workers, "x", 0, 9,
		NULL) };
	static const struct config_option oob_def[] = { O("workers", CONFIG_INT, workers, "10", 0,
		9, NULL) };
	static const struct config_option ctl_def[] = { O("name", CONFIG_STR, name, "a\nb", 0, 0,
		NULL) };
	static const struct config_option addr_def[] = { O("listen", CONFIG_ADDR, listen, "::1:80",
		0, 0, NULL) };
	static const struct {
		const struct config_option *t;
		size_t n;
		const char *why;
	} cases[] = {
		{ bad_name, 1, "option table: bad name 'Name'" },
		{ dash, 1, "bad name 'a-b'" },
		{ empty, 1, "bad name ''" },
		{ null, 1, "bad name '(null)'" },
		{ twice, 2, "'workers' listed twice" },
		{ bad_def, 1, "default of 'workers': not an integer" },
		{ oob_def, 1, "default of 'workers': '10' out of range [0, 9]" },
		{ ctl_def, 1, "default of 'name': control character 0x0a" },
		{ addr_def, 1, "default of 'listen': bad address" },
	};
	struct cfg snap;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		memcpy(&snap, &f->c, sizeof(snap));
		err_clear(&e);
		assert_int_equal(config_defaults(cases[i].t, cases[i].n, &f->c, &e), -1);
		/* A bad table is a bug in the program, not in the file. */
		assert_int_equal(e.kind, ERR_INTERNAL);
		if (strstr(err_msg(&e), cases[i].why) == NULL) {
			fail_msg("case %zu: '%s' lacks '%s'", i, err_msg(&e), cases[i].why);
		}
		assert_memory_equal(&snap, &f->c, sizeof(snap));
	}
}

/* ---- file format ---- */

static void
test_format_ok(void **state)
{
	struct fx *f = *state;
	struct cfg *c = &f->c;

	ASSERT_LOAD_OK(f, "");
	ASSERT_LOAD_OK(f, "\n\n   \n\t\n# only comments\n   # indented comment\n");
	assert_string_equal(c->name, "tandem");
	ASSERT_LOAD_OK(f, "name=n1\nworkers\t=\t8   \n  debug =yes");
	assert_string_equal(c->name, "n1");
	assert_int_equal(c->workers, 8);
	assert_int_equal(c->debug, 1);
	/* Unquoted: a '#' after a blank starts a comment, inside a word it does not. */
	ASSERT_LOAD_OK(f, "workers = 9 # nine\nname = a#b\nany = x\t# tab comment\n");
	assert_int_equal(c->workers, 9);
	assert_string_equal(c->name, "a#b");
	assert_string_equal(c->any, "x");
	/* A '#' right after '=' makes an empty value. */
	ASSERT_LOAD_OK(f, "any = #nothing\n");
	assert_string_equal(c->any, "");
	/* Quoted: blanks, '#', escaped quote and backslash kept; comment after. */
	ASSERT_LOAD_OK(f, "any = \"  a # \\\"b\\\" \\\\ c  \"   # comment\ndir=\"/d\"\n");
	assert_string_equal(c->any, "  a # \"b\" \\ c  ");
	ASSERT_LOAD_OK(f, "name = \"q\"#c\n");
	assert_string_equal(c->name, "q");
	/* Unquoted values keep inner blanks and lose trailing ones. */
	ASSERT_LOAD_OK(f, "any = a  b\t c \t \n");
	assert_string_equal(c->any, "a  b\t c");
	/* UTF-8 text is fine. */
	ASSERT_LOAD_OK(f, "any = h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\n");
	assert_string_equal(c->any, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
	/* Exactly LEN bytes: the buffer needs no terminator. */
	static const char nonul[] = "workers = 12GARBAGE";
	struct err e = ERR_INIT;
	assert_int_equal(config_load_buffer(tbl, N, c, nonul, 12, NULL, "x", &e), 0);
	assert_int_equal(c->workers, 12);
	assert_int_equal(config_load_buffer(tbl, N, c, NULL, 0, NULL, NULL, &e), 0);
	assert_int_equal(config_load_buffer(tbl, N, c, NULL, 1, NULL, NULL, &e), -1);
}

static void
test_format_refused(void **state)
{
	struct fx *f = *state;

	ASSERT_LOAD_FAILS(f, "workers = 5\r\n", "t.conf:1: carriage return");
	ASSERT_LOAD_FAILS(f, "workers = 5\nname = x\r", "t.conf:2: carriage return");
	ASSERT_LOAD_FAILS(f, "name = a\rb\n", "carriage return");
	ASSERT_LOAD_FAILS(f, "# comment \x01\n", "t.conf:1: control character 0x01");
	ASSERT_LOAD_FAILS(f, "any = \x1b[31m\n", "control character 0x1b");
	ASSERT_LOAD_FAILS(f, "any = \x7f\n", "control character 0x7f");
	ASSERT_LOAD_FAILS(f, "any = \xff\n", "invalid UTF-8");
	ASSERT_LOAD_FAILS(f, "any = \xc0\xaf\n", "invalid UTF-8");
	ASSERT_LOAD_FAILS(f, "any = \xed\xa0\x80\n", "invalid UTF-8");
	ASSERT_LOAD_FAILS(f, "# \xe2\x82\n", "invalid UTF-8");
	ASSERT_LOAD_FAILS(f, "Workers = 5\n", "t.conf:1: bad key 'Workers' (keys are [a-z0-9_]+)");
	ASSERT_LOAD_FAILS(f, "max-size = 5\n", "bad key 'max-size'");
	ASSERT_LOAD_FAILS(f, "workers\n", "expected 'key = value'");
	ASSERT_LOAD_FAILS(f, "workers 5\n", "expected 'key = value'");
	ASSERT_LOAD_FAILS(f, "workers : 5\n", "expected 'key = value'");
	ASSERT_LOAD_FAILS(f, "= 5\n", "t.conf:1: missing key before '='");
	ASSERT_LOAD_FAILS(f, "  =\n", "missing key");
	ASSERT_LOAD_FAILS(f, "\n\nbogus = 1\n", "t.conf:3: unknown key 'bogus'");
	ASSERT_LOAD_FAILS(f, "workers = 5\n# x\nworkers = 5\n",
	    "t.conf:3: duplicate key 'workers' (first set on line 1)");
	ASSERT_LOAD_FAILS(f, "any = \"abc\n", "unterminated quoted value");
	ASSERT_LOAD_FAILS(f, "any = \"abc\\\"\n", "unterminated quoted value");
	ASSERT_LOAD_FAILS(f, "any = \"a\\nb\"\n", "bad escape in quoted value");
	ASSERT_LOAD_FAILS(f, "any = \"a\\\n", "bad escape");
	ASSERT_LOAD_FAILS(f, "any = \"a\" b\n", "unexpected text after quoted value");
	ASSERT_LOAD_FAILS(f, "any = \"a\"\"b\"\n", "unexpected text after quoted value");
	ASSERT_LOAD_FAILS(f, "any = say \"hi\"\n", "'\"' inside an unquoted value");

	/* NUL bytes need an explicit length. */
	static const char nul[] = "workers = 5\0\nname = x\n";
	struct err e = ERR_INIT;
	struct cfg snap;
	memcpy(&snap, &f->c, sizeof(snap));
	assert_int_equal(config_load_buffer(tbl, N, &f->c, nul, sizeof(nul) - 1, NULL, "n.conf", &e), -1);
	assert_string_equal(err_msg(&e), "n.conf:1: NUL byte");
	assert_memory_equal(&snap, &f->c, sizeof(snap));
	/* NAME NULL gives a generic prefix. */
	assert_int_equal(config_load_buffer(tbl, N, &f->c, "x=1", 3, NULL, NULL, &e),
	    -1);
	assert_string_equal(err_msg(&e), "config:1: unknown key 'x'");
	/* ERR may be NULL. */
	assert_int_equal(config_load_buffer(tbl, N, &f->c, "x=1", 3, NULL, NULL, NULL), -1);
	/* An overlong unknown key is quoted cut short. */
	char longkey[300];
	memset(longkey, 'k', 200);
	memcpy(longkey + 200, " = 1", 5);
	assert_int_equal(load(&f->c, longkey, &e), -1);
	assert_true(strlen(err_msg(&e)) < 120);
}

static void
test_limits(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;

	/* A line of exactly CONFIG_MAX_LINE bytes is fine; one more is not. */
	char *line = malloc(CONFIG_MAX_LINE + 2);
	assert_non_null(line);
	memcpy(line, "any = ", 6);
	memset(line + 6, 'v', CONFIG_MAX_LINE - 6);
	line[CONFIG_MAX_LINE] = '\n';
	line[CONFIG_MAX_LINE + 1] = '\0';
	assert_int_equal(load(&f->c, line, &e), 0);
	assert_int_equal(strlen(f->c.any), CONFIG_MAX_LINE - 6);
	line[CONFIG_MAX_LINE] = 'v';
	assert_int_equal(load(&f->c, line, &e), -1);
	assert_string_equal(err_msg(&e), "t.conf:1: line longer than 4096 bytes");
	free(line);
	/* The whole buffer: at most CONFIG_MAX_FILE bytes. */
	char *big = malloc(CONFIG_MAX_FILE + 1);
	assert_non_null(big);
	memset(big, '\n', CONFIG_MAX_FILE + 1);
	assert_int_equal(config_load_buffer(tbl, N, &f->c, big, CONFIG_MAX_FILE, NULL, "b", &e), 0);
	assert_int_equal(config_load_buffer(tbl, N, &f->c, big, CONFIG_MAX_FILE + 1, NULL, "b", &e), -1);
	assert_string_equal(err_msg(&e), "b: larger than 1048576 bytes");
	free(big);
}

/* ---- value types ---- */

static void
test_strings(void **state)
{
	struct fx *f = *state;

	ASSERT_LOAD_OK(f, "name = 1234567890123456\n");
	ASSERT_LOAD_FAILS(f, "name = 12345678901234567\n", "name: length 17 out of range [1, 16]");
	ASSERT_LOAD_FAILS(f, "name =\n", "name: length 0 out of range [1, 16]");
	ASSERT_LOAD_FAILS(f, "name = \"\"\n", "length 0 out of range");
	/* MAX 0: any length, empty included. */
	ASSERT_LOAD_OK(f, "any =\n");
	assert_string_equal(f->c.any, "");
}

static void
test_ints(void **state)
{
	struct fx *f = *state;
	struct cfg *c = &f->c;

	ASSERT_LOAD_OK(f, "workers = 1\nneg = -100\n");
	assert_int_equal(c->workers, 1);
	assert_int_equal(c->neg, -100);
	ASSERT_LOAD_OK(f, "workers = 64\nneg = 100\n");
	assert_int_equal(c->workers, 64);
	ASSERT_LOAD_OK(f, "workers = 007\n");
	assert_int_equal(c->workers, 7);
	ASSERT_LOAD_FAILS(f, "workers = 0\n", "workers: '0' out of range [1, 64]");
	ASSERT_LOAD_FAILS(f, "workers = 65\n", "out of range [1, 64]");
	ASSERT_LOAD_FAILS(f, "neg = -101\n", "out of range [-100, 100]");
	ASSERT_LOAD_FAILS(f, "workers = 99999999999999999999\n", "out of range");
	ASSERT_LOAD_FAILS(f, "workers = -99999999999999999999\n", "out of range");
	ASSERT_LOAD_FAILS(f, "workers = 1.5\n", "workers: not an integer: '1.5'");
	ASSERT_LOAD_FAILS(f, "workers = 0x10\n", "not an integer");
	ASSERT_LOAD_FAILS(f, "workers = 1e1\n", "not an integer");
	ASSERT_LOAD_FAILS(f, "workers = four\n", "not an integer");
	ASSERT_LOAD_FAILS(f, "workers =\n", "not an integer");
	ASSERT_LOAD_FAILS(f, "workers = \" 5\"\n", "not an integer");
	ASSERT_LOAD_FAILS(f, "workers = 5 5\n", "not an integer");
}

static void
test_bools_and_levels(void **state)
{
	struct fx *f = *state;
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	char text[64];
	struct err e = ERR_INIT;

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		snprintf(text, sizeof(text), "debug = %s\n", yes[i]);
		assert_int_equal(load(&f->c, text, &e), 0);
		assert_int_equal(f->c.debug, 1);
		snprintf(text, sizeof(text), "debug = %s\n", no[i]);
		assert_int_equal(load(&f->c, text, &e), 0);
		assert_int_equal(f->c.debug, 0);
	}
	ASSERT_LOAD_FAILS(f, "debug = TRUE\n", "debug: bad boolean 'TRUE'");
	ASSERT_LOAD_FAILS(f, "debug = 2\n", "bad boolean");
	ASSERT_LOAD_FAILS(f, "debug = y\n", "bad boolean");
	ASSERT_LOAD_FAILS(f, "debug =\n", "bad boolean");
	ASSERT_LOAD_OK(f, "log_level = debug\n");
	assert_int_equal(f->c.level, LOG_LVL_DEBUG);
	ASSERT_LOAD_OK(f, "log_level = error\n");
	assert_int_equal(f->c.level, LOG_LVL_ERROR);
	ASSERT_LOAD_FAILS(f, "log_level = verbose\n", "log_level: bad log level 'verbose'");
	ASSERT_LOAD_FAILS(f, "log_level = INFO\n", "bad log level");
	assert_int_equal(f->c.format, LOG_FMT_TEXT);
	assert_int_equal(f->c.target, LOG_TO_STDERR);
	ASSERT_LOAD_OK(f, "log_format = json\nlog_target = auto\n");
	assert_int_equal(f->c.format, LOG_FMT_JSON);
	assert_int_equal(f->c.target, LOG_TO_AUTO);
	ASSERT_LOAD_OK(f, "log_target = journal\n");
	assert_int_equal(f->c.target, LOG_TO_JOURNAL);
	ASSERT_LOAD_FAILS(f, "log_format = xml\n", "log_format: bad log format 'xml' (text, json)");
	ASSERT_LOAD_FAILS(f, "log_target = syslog\n",
	    "log_target: bad log target 'syslog' (stderr, journal, auto)");
}

static void
test_durations(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *v;
		long long ms;
	} ok[] = { { "0", 0 }, { "10", 10000 }, { "250ms", 250 }, { "10s", 10000 },
		{ "5m", 300000 }, { "1h", 3600000 }, { "3600s", 3600000 }, { "0ms", 0 },
		{ "3600000ms", 3600000 }, { "060s", 60000 } };
	static const struct {
		const char *v, *why;
	} bad[] = {
		{ "1d", "bad duration '1d' (units: ms, s, m, h; bare = s)" },
		{ "2h", "duration 7200000ms out of range [0, 3600000]" },
		{ "3600001ms", "out of range" },
		{ "-1s", "bad duration" },
		{ "+1s", "bad duration" },
		{ "1.5s", "bad duration" },
		{ "10 s", "bad duration" },
		{ "10S", "bad duration" },
		{ "10sec", "bad duration" },
		{ "s", "bad duration" },
		{ "", "bad duration" },
		{ "ms10", "bad duration" },
		{ "99999999999999999999ms", "duration too large" },
		{ "9223372036854775807h", "duration too large" },
		{ "9223372036854775807", "duration too large" },
	};
	char text[128];
	struct err e = ERR_INIT;

	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		snprintf(text, sizeof(text), "timeout = %s\n", ok[i].v);
		if (load(&f->c, text, &e) != 0) {
			fail_msg("refused %s: %s", ok[i].v, err_msg(&e));
		}
		assert_int_equal(f->c.timeout, ok[i].ms);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		long long before = f->c.timeout;
		snprintf(text, sizeof(text), "timeout = %s\n", bad[i].v);
		if (load(&f->c, text, &e) != -1) {
			fail_msg("accepted '%s'", bad[i].v);
		}
		if (strstr(err_msg(&e), bad[i].why) == NULL) {
			fail_msg("'%s': '%s' lacks '%s'", bad[i].v, err_msg(&e), bad[i].why);
		}
		assert_int_equal(f->c.timeout, before);
	}
}

static void
test_sizes(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *v;
		long long bytes;
	} ok[] = { { "1", 1 }, { "512", 512 }, { "64K", 65536 }, { "64k", 65536 },
		{ "200M", 200LL << 20 }, { "2g", 2LL << 30 }, { "1T", 1LL << 40 },
		{ "1024G", 1LL << 40 } };
	static const struct {
		const char *v, *why;
	} bad[] = {
		{ "0", "size 0 bytes out of range [1, 1099511627776]" },
		{ "2T", "out of range" },
		{ "1025G", "out of range" },
		{ "1P", "bad size '1P' (suffixes: K, M, G, T)" },
		{ "1KB", "bad size" },
		{ "1KiB", "bad size" },
		{ "1 K", "bad size" },
		{ "-1", "bad size" },
		{ "1.5M", "bad size" },
		{ "K", "bad size" },
		{ "", "bad size" },
		{ "1\xc3\xa9", "bad size" },
		{ "9999999999T", "size too large" },
		{ "99999999999999999999", "size too large" },
	};
	char text[128];
	struct err e = ERR_INIT;

	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		snprintf(text, sizeof(text), "max_size = %s\n", ok[i].v);
		if (load(&f->c, text, &e) != 0) {
			fail_msg("refused %s: %s", ok[i].v, err_msg(&e));
		}
		assert_int_equal(f->c.maxsize, ok[i].bytes);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		long long before = f->c.maxsize;
		snprintf(text, sizeof(text), "max_size = %s\n", bad[i].v);
		if (load(&f->c, text, &e) != -1) {
			fail_msg("accepted '%s'", bad[i].v);
		}
		if (strstr(err_msg(&e), bad[i].why) == NULL) {
			fail_msg("'%s': '%s' lacks '%s'", bad[i].v, err_msg(&e), bad[i].why);
		}
		assert_int_equal(f->c.maxsize, before);
	}
}

static void
test_addresses(void **state)
{
	struct fx *f = *state;
	static const char *const ok[] = { "127.0.0.1:8765", "[::1]:443", ":80", "[::]:1",
		"host.example-1_a:65535", "[fe80::1%eth0]:8766", "localhost:1" };
	static const struct {
		const char *v, *why;
	} bad[] = {
		{ "::1:80", "bad address '::1:80' (expected HOST:PORT or [V6]:PORT)" },
		{ "[::1]", "bad address" },
		{ "[::1]:", "bad address" },
		{ "[]:80", "bad address" },
		{ "host", "bad address" },
		{ "host:", "bad address" },
		{ "host:0", "port 0 out of range [1, 65535]" },
		{ "host:65536", "bad address" },
		{ "host:-1", "bad address" },
		{ "host:+80", "bad address" },
		{ "host:http", "bad address" },
		{ "ho st:80", "bad host in address" },
		{ "h/x:80", "bad host in address" },
		{ "h\xc3\xa9:80", "bad host in address" },
		{ "[a:b]x:80", "bad address" },
		{ "", "bad address" },
	};
	char text[128];
	struct err e = ERR_INIT;

	for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
		snprintf(text, sizeof(text), "listen = %s\n", ok[i]);
		if (load(&f->c, text, &e) != 0) {
			fail_msg("refused %s: %s", ok[i], err_msg(&e));
		}
		assert_string_equal(f->c.listen, ok[i]);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char *before = f->c.listen;
		snprintf(text, sizeof(text), "listen = \"%s\"\n", bad[i].v);
		if (load(&f->c, text, &e) != -1) {
			fail_msg("accepted '%s'", bad[i].v);
		}
		if (strstr(err_msg(&e), bad[i].why) == NULL) {
			fail_msg("'%s': '%s' lacks '%s'", bad[i].v, err_msg(&e), bad[i].why);
		}
		assert_ptr_equal(f->c.listen, before);
	}
	/* Without port bounds (MAX 0) port 0 is an address too. */
	ASSERT_LOAD_OK(f, "peer = 10.0.0.1:0\n");
	assert_string_equal(f->c.peer, "10.0.0.1:0");
}

static void
test_paths(void **state)
{
	struct fx *f = *state;
	struct cfg *c = &f->c;
	struct err e = ERR_INIT;

	ASSERT_LOAD_OK(f, "dir = /abs/path\nrel = sub/x\n");
	assert_string_equal(c->dir, "/abs/path");
	assert_string_equal(c->rel, "/base/sub/x");
	ASSERT_LOAD_OK(f, "rel = ./x\n");
	assert_string_equal(c->rel, "/base/./x"); /* not normalised, as documented */
	ASSERT_LOAD_OK(f, "rel = ../up\n");
	assert_string_equal(c->rel, "/base/../up");
	ASSERT_LOAD_OK(f, "rel = \"with space/#x\"\n");
	assert_string_equal(c->rel, "/base/with space/#x");
	ASSERT_LOAD_FAILS(f, "rel =\n", "rel: empty path");
	ASSERT_LOAD_FAILS(f, "rel = \"\"\n", "empty path");
	/* Base directories: "/" and a trailing slash give one slash; relative refused. */
	assert_int_equal(config_load_buffer(tbl, N, c, "rel = x", 7, "/", "t", &e), 0);
	assert_string_equal(c->rel, "/x");
	assert_int_equal(config_load_buffer(tbl, N, c, "rel = x", 7, "/etc/", "t", &e), 0);
	assert_string_equal(c->rel, "/etc/x");
	assert_int_equal(config_load_buffer(tbl, N, c, "rel = y", 7, "relative/dir", "t", &e), -1);
	assert_non_null(strstr(err_msg(&e), "base directory 'relative/dir' is not absolute"));
	assert_string_equal(c->rel, "/etc/x");
	/* An absolute value ignores even a bad base. */
	assert_int_equal(config_load_buffer(tbl, N, c, "rel = /z", 8, "relative", "t", &e), 0);
	assert_string_equal(c->rel, "/z");
	/* No base: the working directory. */
	char cwd[PATH_MAX], want[PATH_MAX + 8];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(config_load_buffer(tbl, N, c, "rel = w", 7, NULL, "t", &e),
	    0);
	snprintf(want, sizeof(want), "%s/w", cwd);
	assert_string_equal(c->rel, want);
	/* Too long once joined to the base (the value alone would fit). */
	char *val = malloc(PATH_MAX);
	assert_non_null(val);
	memset(val, 'p', PATH_MAX - 6);
	val[PATH_MAX - 6] = '\0';
	assert_int_equal(config_set(tbl, N, c, "rel", val, "/base", &e), -1);
	assert_non_null(strstr(err_msg(&e), "path too long"));
	val[PATH_MAX - 7] = '\0';
	assert_int_equal(config_set(tbl, N, c, "rel", val, "/base", &e), 0);
	assert_int_equal(strlen(c->rel), PATH_MAX - 1);
	free(val);
}

static void
test_lists(void **state)
{
	struct fx *f = *state;
	struct cfg *c = &f->c;

	ASSERT_LOAD_OK(f, "hosts = a,b , \tc\t,d\n");
	assert_int_equal(list_len(c->hosts), 4);
	assert_string_equal(c->hosts[0], "a");
	assert_string_equal(c->hosts[1], "b");
	assert_string_equal(c->hosts[2], "c");
	assert_string_equal(c->hosts[3], "d");
	ASSERT_LOAD_OK(f, "hosts = single\n");
	assert_int_equal(list_len(c->hosts), 1);
	assert_string_equal(c->hosts[0], "single");
	ASSERT_LOAD_OK(f, "hosts = one word, two words # comment\n");
	assert_int_equal(list_len(c->hosts), 2);
	assert_string_equal(c->hosts[1], "two words");
	ASSERT_LOAD_OK(f, "hosts = \"x#1, y \\\"2\\\"\"\n");
	assert_int_equal(list_len(c->hosts), 2);
	assert_string_equal(c->hosts[0], "x#1");
	assert_string_equal(c->hosts[1], "y \"2\"");
	/* Empty value: an empty list, never NULL. */
	ASSERT_LOAD_OK(f, "hosts =\n");
	assert_int_equal(list_len(c->hosts), 0);
	ASSERT_LOAD_OK(f, "hosts = \"  \"\n");
	assert_int_equal(list_len(c->hosts), 0);
	ASSERT_LOAD_OK(f, "hosts = a\n");
	ASSERT_LOAD_FAILS(f, "hosts = a,,b\n", "hosts: empty element in list");
	ASSERT_LOAD_FAILS(f, "hosts = a,\n", "empty element");
	ASSERT_LOAD_FAILS(f, "hosts = ,a\n", "empty element");
	ASSERT_LOAD_FAILS(f, "hosts = ,\n", "empty element");
	ASSERT_LOAD_FAILS(f, "hosts = a, ,b\n", "empty element");
	ASSERT_LOAD_FAILS(f, "hosts = \"a, \"\n", "empty element");
}

/* ---- all-or-nothing, files, overrides ---- */

static void
test_all_or_nothing(void **state)
{
	struct fx *f = *state;

	/* Good lines before a bad one change nothing at all. */
	ASSERT_LOAD_FAILS(f, "name = changed\nworkers = 2\nhosts = x\ndebug = yes\n"
			     "timeout = 1ms\nmax_size = 1\nlisten = 1.2.3.4:5\nworkers = 3\n",
	    "t.conf:8: duplicate key 'workers'");
	ASSERT_LOAD_FAILS(f, "name = changed\nrel = r\nany = x\nbogus = 1\n", "unknown key 'bogus'");
	ASSERT_LOAD_FAILS(f, "hosts = x\nlog_level = loud\n", "bad log level");
	assert_string_equal(f->c.name, "tandem");
}

static void
test_load_file(void **state)
{
	struct fx *f = *state;
	char path[256], sub[160], link[160], want[320];
	struct err e = ERR_INIT;

	snprintf(sub, sizeof(sub), "%s/etc", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/tandem.conf", sub);
	static const char text[] = "# tandem\nrel = certs/ca.pem\nworkers = 3\n";
	assert_int_equal(fs_write_atomic(path, text, sizeof(text) - 1, 0600), 0);
	assert_int_equal(config_load_file(tbl, N, &f->c, path, &e), 0);
	snprintf(want, sizeof(want), "%s/certs/ca.pem", sub);
	assert_string_equal(f->c.rel, want);
	assert_int_equal(f->c.workers, 3);

	/* Through a symlinked directory: relative to the real directory. */
	snprintf(link, sizeof(link), "%s/linked", f->dir);
	assert_int_equal(symlink(sub, link), 0);
	snprintf(path, sizeof(path), "%s/linked/../etc/tandem.conf", f->dir);
	assert_int_equal(config_load_file(tbl, N, &f->c, path, &e), 0);
	assert_string_equal(f->c.rel, want);

	/* A path without a slash: the working directory. */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(sub), 0);
	int r = config_load_file(tbl, N, &f->c, "tandem.conf", &e);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(r, 0);
	assert_string_equal(f->c.rel, want);

	/* Errors name the file and line. */
	snprintf(path, sizeof(path), "%s/bad.conf", sub);
	assert_int_equal(fs_write_atomic(path, "workers = 3\nworkers = 4\n", 24, 0600), 0);
	assert_int_equal(config_load_file(tbl, N, &f->c, path, &e), -1);
	snprintf(want, sizeof(want), "%s:2: duplicate key 'workers'", path);
	assert_non_null(strstr(err_msg(&e), want));
	snprintf(path, sizeof(path), "%s/missing.conf", sub);
	assert_int_equal(config_load_file(tbl, N, &f->c, path, &e), -1);
	assert_non_null(strstr(err_msg(&e), "No such file or directory"));
	assert_int_equal(config_load_file(tbl, N, &f->c, sub, &e), -1);
	assert_non_null(strstr(err_msg(&e), "Is a directory"));
	snprintf(path, sizeof(path), "%s/fifo", sub);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(config_load_file(tbl, N, &f->c, path, &e), -1);
	assert_non_null(strstr(err_msg(&e), "Invalid argument"));
	/* Larger than CONFIG_MAX_FILE. */
	char *big = malloc(CONFIG_MAX_FILE + 1);
	assert_non_null(big);
	memset(big, '\n', CONFIG_MAX_FILE + 1);
	snprintf(path, sizeof(path), "%s/big.conf", sub);
	assert_int_equal(fs_write_atomic(path, big, CONFIG_MAX_FILE + 1, 0600), 0);
	free(big);
	assert_int_equal(config_load_file(tbl, N, &f->c, path, &e), -1);
	assert_non_null(strstr(err_msg(&e), "larger than 1048576 bytes"));
	assert_int_equal(f->c.workers, 3);
}

static void
test_overrides(void **state)
{
	struct fx *f = *state;
	struct cfg *c = &f->c;
	char cwd[PATH_MAX], want[PATH_MAX + 8];
	struct err e = ERR_INIT;

	ASSERT_LOAD_OK(f, "workers = 3\n");
	/* Overrides beat the file; values are literal (no quotes, no comments). */
	assert_int_equal(config_set_kv(tbl, N, c, "workers=8", &e), 0);
	assert_int_equal(c->workers, 8);
	assert_int_equal(config_set_kv(tbl, N, c, "any=  a # not a comment \"q\"  ", &e), 0);
	assert_string_equal(c->any, "  a # not a comment \"q\"  ");
	assert_int_equal(config_set_kv(tbl, N, c, "any=x=y", &e), 0);
	assert_string_equal(c->any, "x=y");
	assert_int_equal(config_set_kv(tbl, N, c, "hosts=p, q", &e), 0);
	assert_int_equal(list_len(c->hosts), 2);
	assert_int_equal(config_set_kv(tbl, N, c, "rel=here", &e), 0);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/here", cwd);
	assert_string_equal(c->rel, want);
	assert_int_equal(config_set(tbl, N, c, "rel", "there", "/opt", &e), 0);
	assert_string_equal(c->rel, "/opt/there");
	assert_int_equal(config_set(tbl, N, c, "timeout", "5m", NULL, &e), 0);
	assert_int_equal(c->timeout, 300000);

	/* Errors leave everything as it was. */
	struct cfg snap;
	memcpy(&snap, c, sizeof(snap));
	static const struct {
		const char *kv, *why;
	} bad[] = {
		{ "workers= 9", "option 'workers': not an integer" },
		{ "workers=9 ", "not an integer" },
		{ "workers=65", "option 'workers': '65' out of range [1, 64]" },
		{ "bogus=1", "unknown option 'bogus'" },
		{ "Workers=1", "unknown option 'Workers'" },
		{ "noequals", "expected NAME=VALUE, got 'noequals'" },
		{ "=5", "expected NAME=VALUE" },
		{ "", "expected NAME=VALUE" },
		{ "any=a\rb", "option 'any': carriage return" },
		{ "any=a\nb", "control character 0x0a" },
		{ "any=\xff", "invalid UTF-8" },
		{ "hosts=a,,b", "empty element" },
		{ "listen=::1:80", "bad address" },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_clear(&e);
		if (config_set_kv(tbl, N, c, bad[i].kv, &e) != -1) {
			fail_msg("accepted %s", bad[i].kv);
		}
		if (strstr(err_msg(&e), bad[i].why) == NULL) {
			fail_msg("%s: '%s' lacks '%s'", bad[i].kv, err_msg(&e), bad[i].why);
		}
		assert_memory_equal(&snap, c, sizeof(snap));
	}
	assert_int_equal(config_set_kv(tbl, N, c, NULL, &e), -1);
	assert_int_equal(config_set(tbl, N, c, NULL, "1", NULL, &e), -1);
	assert_int_equal(config_set(tbl, N, c, "workers", NULL, NULL, &e), -1);
	char longname[200];
	memset(longname, 'a', 150);
	memcpy(longname + 150, "=1", 3);
	assert_int_equal(config_set_kv(tbl, N, c, longname, &e), -1);
	char *longval = malloc(CONFIG_MAX_LINE + 8);
	assert_non_null(longval);
	memset(longval, 'v', CONFIG_MAX_LINE + 1);
	longval[CONFIG_MAX_LINE + 1] = '\0';
	assert_int_equal(config_set(tbl, N, c, "any", longval, NULL, &e), -1);
	assert_non_null(strstr(err_msg(&e), "value longer than 4096 bytes"));
	free(longval);
	assert_memory_equal(&snap, c, sizeof(snap));
}

/* ---- print and reload ---- */

static char *
print_to_string(const struct cfg *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	assert_int_equal(config_print(tbl, N, c, fp), 0);
	assert_int_equal(fclose(fp), 0);
	return buf;
}

static void
assert_same(const struct cfg *a, const struct cfg *b)
{
	assert_string_equal(a->name, b->name);
	if (a->any == NULL || b->any == NULL) {
		assert_ptr_equal(a->any, b->any);
	} else {
		assert_string_equal(a->any, b->any);
	}
	assert_string_equal(a->dir, b->dir);
	assert_string_equal(a->rel, b->rel);
	assert_int_equal(a->workers, b->workers);
	assert_int_equal(a->neg, b->neg);
	assert_int_equal(a->debug, b->debug);
	assert_int_equal(a->timeout, b->timeout);
	assert_int_equal(a->maxsize, b->maxsize);
	assert_string_equal(a->listen, b->listen);
	assert_string_equal(a->peer, b->peer);
	assert_int_equal(list_len(a->hosts), list_len(b->hosts));
	for (size_t i = 0; a->hosts[i] != NULL; i++) {
		assert_string_equal(a->hosts[i], b->hosts[i]);
	}
	assert_int_equal(list_len(a->empty), list_len(b->empty));
	assert_int_equal(a->level, b->level);
	assert_int_equal(a->format, b->format);
	assert_int_equal(a->target, b->target);
}

static void
test_print_round_trip(void **state)
{
	struct fx *f = *state;
	struct cfg back;
	struct err e = ERR_INIT;

	ASSERT_LOAD_OK(f, "name = \"q\\\"#\\\\ \"\nany = \"  \ttab\t\xc3\xa9 # x\"\n"
			  "rel = \"sp ace/r\"\nworkers = 64\nneg = -100\ndebug = on\n"
			  "timeout = 1h\nmax_size = 1T\nlisten = [::1]:443\npeer = :0\n"
			  "hosts = \"h1, h \\\"2\\\", #3\"\nlog_level = debug\n"
			  "log_format = json\nlog_target = journal\n");
	char *text = print_to_string(&f->c);
	/* Help texts as comments, one per line; unset strings as a comment. */
	assert_non_null(strstr(text, "# Display name.\n# Two help lines.\nname = "));
	assert_non_null(strstr(text, "timeout = 3600000ms\n"));
	assert_non_null(strstr(text, "debug = true\n"));
	assert_non_null(strstr(text, "log_level = debug\n"));
	assert_non_null(strstr(text, "log_format = json\nlog_target = journal\n"));
	memset(&back, 0, sizeof(back));
	assert_int_equal(config_defaults(tbl, N, &back, &e), 0);
	if (config_load_buffer(tbl, N, &back, text, strlen(text), "/elsewhere", "printed", &e) != 0) {
		fail_msg("%s\n%s", err_msg(&e), text);
	}
	assert_same(&f->c, &back);
	free(text);

	/* Defaults (NULL strings, empty lists) round trip too. */
	assert_int_equal(config_defaults(tbl, N, &f->c, &e), 0);
	ASSERT_LOAD_OK(f, "rel = r\npeer = :1\n");
	text = print_to_string(&f->c);
	assert_non_null(strstr(text, "# any is not set\n"));
	assert_non_null(strstr(text, "empty = \"\"\n"));
	assert_int_equal(config_defaults(tbl, N, &back, &e), 0);
	assert_int_equal(config_load_buffer(tbl, N, &back, text, strlen(text), NULL, "p", &e), 0);
	assert_same(&f->c, &back);
	free(text);
	config_free(tbl, N, &back);
	/* config_free leaves NULLs; freeing again is harmless. */
	assert_null(back.name);
	assert_null(back.hosts);
	config_free(tbl, N, &back);

	/* A write error is reported. */
	FILE *full = fopen("/dev/full", "w");
	if (full != NULL) {
		assert_int_equal(config_print(tbl, N, &f->c, full), -1);
		fclose(full);
	}
}


static char *
edit(const char *text, const char *const *keys, const char *const *vals, size_t n)
{
	struct err e = ERR_INIT;
	char *out = NULL;
	size_t len = 0;

	if (config_edit(text, strlen(text), keys, vals, n, &out, &len, &e) != 0) {
		fail_msg("config_edit: %s", e.msg);
	}
	assert_int_equal(strlen(out), len);
	return out;
}

static void
test_edit(void **state)
{
	struct fx *f = *state;
	static const char *const keys[] = { "listen", "name", "any", "hosts" };
	const char *vals[] = { "127.0.0.1:9", "q\"#\\ x", "", "a, b" };
	const char *text = "# head\n  listen = 0.0.0.0:1   # old\n\nname = \"a\"\nlisten = [::]:2\n"
			   "workers = 3";
	struct err e = ERR_INIT;
	char *out = NULL;
	size_t len;

	/* Replaced in place, a second setting dropped, the rest kept, missing keys appended. */
	char *s = edit(text, keys, vals, ARRAY_LEN(keys));
	assert_string_equal(s, "# head\nlisten = 127.0.0.1:9\n\nname = \"q\\\"#\\\\ x\"\n"
			       "workers = 3\nany = \"\"\nhosts = a, b\n");
	/* What it wrote reads back as the values given. */
	ASSERT_LOAD_OK(f, s);
	assert_string_equal(f->c.listen, "127.0.0.1:9");
	assert_string_equal(f->c.name, "q\"#\\ x");
	assert_string_equal(f->c.any, "");
	assert_int_equal(list_len(f->c.hosts), 2);
	free(s);
	/* Nothing to change: byte for byte (an unterminated last line gains its newline). */
	s = edit("# only\nworkers = 3\n", NULL, NULL, 0);
	assert_string_equal(s, "# only\nworkers = 3\n");
	free(s);
	s = edit("", keys, vals, 1);
	assert_string_equal(s, "listen = 127.0.0.1:9\n");
	free(s);
	/* Values needing quotes: leading blank, '#' after a blank or first. */
	const char *const k1[] = { "any", "name", "dir" };
	const char *const v1[] = { " lead", "#x", "a #b" };
	s = edit("", k1, v1, 3);
	assert_string_equal(s, "any = \" lead\"\nname = \"#x\"\ndir = \"a #b\"\n");
	free(s);

	/* Refused: a file not in the format, a value with a newline, a bad key. */
	assert_int_equal(config_edit("listen 1\n", 9, keys, vals, 1, &out, &len, &e), -1);
	assert_string_equal(e.msg, "line 1: expected 'key = value'");
	assert_int_equal(e.kind, ERR_CONFIG);
	const char *const bad[] = { "a\nb" };
	assert_int_equal(config_edit("", 0, keys, bad, 1, &out, &len, &e), -1);
	const char *const badk[] = { "Bad-Key" };
	assert_int_equal(config_edit("", 0, badk, vals, 1, &out, &len, &e), -1);
	assert_null(out);
}

static void
test_get_raw(void **state)
{
	const char *text = "# c\nlisten = 1.2.3.4:5 # x\nname = \"a # b\"\nempty =\n";
	struct err e = ERR_INIT;
	char *v = NULL;

	(void)state;
	assert_int_equal(config_get_raw(text, strlen(text), "listen", &v, &e), 1);
	assert_string_equal(v, "1.2.3.4:5");
	free(v);
	assert_int_equal(config_get_raw(text, strlen(text), "name", &v, &e), 1);
	assert_string_equal(v, "a # b");
	free(v);
	assert_int_equal(config_get_raw(text, strlen(text), "empty", &v, &e), 1);
	assert_string_equal(v, "");
	free(v);
	assert_int_equal(config_get_raw(text, strlen(text), "other", &v, &e), 0);
	assert_null(v);
	/* Twice, or a broken line anywhere: an error, no value. */
	const char *dup = "a = 1\na = 2\n";
	assert_int_equal(config_get_raw(dup, strlen(dup), "a", &v, &e), -1);
	assert_string_equal(e.msg, "line 2: duplicate key 'a'");
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_null(v);
	const char *bad = "a = 1\nb = \"open\n";
	assert_int_equal(config_get_raw(bad, strlen(bad), "a", &v, &e), -1);
	assert_null(v);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_defaults),
		T(test_table_bugs),
		T(test_format_ok),
		T(test_format_refused),
		T(test_edit),
		T(test_get_raw),
		T(test_limits),
		T(test_strings),
		T(test_ints),
		T(test_bools_and_levels),
		T(test_durations),
		T(test_sizes),
		T(test_addresses),
		T(test_paths),
		T(test_lists),
		T(test_all_or_nothing),
		T(test_load_file),
		T(test_overrides),
		T(test_print_round_trip),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
