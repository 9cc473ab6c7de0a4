/*
 * Unit tests for master/cli: the command tables are complete and sound (every
 * command has what its help needs, options fit the parser, no command option
 * takes a global option's name), the help of every command lists exactly the
 * options its parser reads, option matching (exact, prefix, ambiguous), the
 * parser itself, and the JSON error object.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "master/cli.h"
#include "tests/unit/tmpdir.h"

/* Everything FN writes to stdout while it runs (stdout is redirected to a file). */
static char *
capture_stdout(void (*fn)(void *), void *arg)
{
	char *buf;
	long n;
	int fd = tmpdir_anon_fd(), saved;
	FILE *fp;

	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDOUT_FILENO) >= 0);
	fn(arg);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	fp = fdopen(fd, "r");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	rewind(fp);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return buf;
}

/* The help text of command CMD under PARENT (not inlined: gcc loses track of open_memstream). */
static __attribute__((noinline)) char *
help_text(const char *parent, const struct cli_cmd *cmd)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	assert_non_null(fp);
	cli_help_cmd(parent, cmd, fp);
	assert_int_equal(fclose(fp), 0);
	return buf;
}

/* Every command that runs (a leaf), with the words of its parent: "swarm", "release keyring". */
struct leaf {
	char parent[48];
	const struct cli_cmd *cmd;
};

static size_t
leaves(struct leaf *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < cli_n_groups; i++) {
		const struct cli_group *g = cli_groups[i];
		for (size_t k = 0; k < g->n_cmds; k++) {
			const struct cli_cmd *c = &g->cmds[k];
			if (c->subs == NULL) {
				assert_true(n < max);
				snprintf(out[n].parent, sizeof(out[n].parent), "%s", g->name);
				out[n++].cmd = c;
				continue;
			}
			/* A command made of commands only dispatches. */
			assert_null(c->run);
			assert_null(c->opts);
			assert_true(c->n_subs > 0);
			for (size_t m = 0; m < c->n_subs; m++) {
				assert_null(c->subs[m].subs);
				assert_ptr_equal(cli_sub_find(c, c->subs[m].name), &c->subs[m]);
				assert_true(n < max);
				snprintf(out[n].parent, sizeof(out[n].parent), "%s %s", g->name, c->name);
				out[n++].cmd = &c->subs[m];
			}
		}
	}
	return n;
}

static void
test_tables(void **state)
{
	static const char *const globals[] = { "home", "json", "help", "verbose" };
	struct leaf l[64];
	size_t nl;

	(void)state;
	assert_int_equal(cli_n_groups, 4);
	for (size_t i = 0; i < cli_n_groups; i++) {
		const struct cli_group *g = cli_groups[i];
		assert_ptr_equal(cli_group_find(g->name), g);
		assert_true(g->n_cmds > 0 && g->summary[0] != '\0');
		for (size_t k = 0; k < g->n_cmds; k++) {
			assert_ptr_equal(cli_cmd_find(g, g->cmds[k].name), &g->cmds[k]);
			assert_non_null(g->cmds[k].summary);
			assert_non_null(g->cmds[k].description);
		}
	}
	nl = leaves(l, ARRAY_LEN(l));
	assert_true(nl >= 15);
	for (size_t i = 0; i < nl; i++) {
		const struct cli_cmd *c = l[i].cmd;
		char want[160];
		size_t n = 0;

		assert_non_null(c->summary);
		assert_non_null(c->synopsis);
		assert_non_null(c->description);
		assert_non_null(c->example);
		assert_non_null(c->run);
		/* The example runs this very command. */
		snprintf(want, sizeof(want), "tandem %.48s %.64s", l[i].parent, c->name);
		if (strstr(c->example, want) == NULL) {
			snprintf(want, sizeof(want), " %.48s %.64s", l[i].parent, c->name);
			if (strstr(c->example, want) == NULL) {
				fail_msg("%s %s: the example runs another command: %s", l[i].parent,
				    c->name, c->example);
			}
		}
		/* The operand main counts is the one the synopsis shows. */
		if (c->operand != NULL) {
			assert_non_null(strstr(c->synopsis, c->operand));
		}
		assert_true(c->operand != NULL || !c->operand_optional);
		/* More operands only after a first one. */
		assert_true(c->operand != NULL || !c->operand_more);
		for (const struct cli_opt *o = c->opts; o != NULL && o->name != NULL; o++) {
			n++;
			assert_non_null(o->help);
			assert_true(o->key > 0);
			for (size_t x = 0; x < ARRAY_LEN(globals); x++) {
				if (strcmp(o->name, globals[x]) == 0) {
					fail_msg("%s %s: option --%s is global", l[i].parent, c->name,
					    o->name);
				}
			}
			/* Keys and names are unique within the command. */
			for (const struct cli_opt *p = o + 1; p->name != NULL; p++) {
				assert_int_not_equal(o->key, p->key);
				assert_string_not_equal(o->name, p->name);
			}
			if (o->short_opt) {
				assert_true(o->key < 128 && o->key != 'h' && o->key != 'v');
			}
		}
		assert_true(n <= CLI_MAX_OPTS);
	}
	assert_null(cli_group_find("nope"));
	assert_null(cli_cmd_find(&cli_group_swarm, "nope"));
}

/* The help of every command names every option of its table, and only those. */
static void
test_help_lists_parser_options(void **state)
{
	struct leaf l[64];
	size_t nl = leaves(l, ARRAY_LEN(l));

	(void)state;
	for (size_t i = 0; i < nl; i++) {
		const struct cli_cmd *c = l[i].cmd;
		char *text = help_text(l[i].parent, c);
		char *opts = strstr(text, "\nOptions:\n");
		char *end = opts != NULL ? strstr(opts, "\n\n") : NULL;
		size_t listed = 0, table = 0;

		if (opts == NULL || end == NULL) {
			fail_msg("%s %s: no Options section", l[i].parent, c->name);
			return;
		}
		assert_non_null(strstr(text, "\nExit status:\n"));
		assert_non_null(strstr(text, "\nExample:\n  "));
		*end = '\0';
		/* Every "--name" that starts an option line is in the table. */
		for (size_t at = 10; opts[at] != '\0';) {
			const char *line = opts + at;
			size_t linelen = strcspn(line, "\n");
			const char *dd = strstr(line, "--");
			if (strncmp(line, "  -", 3) == 0 && dd != NULL && dd < line + linelen) {
				size_t len = strcspn(dd + 2, " \n");
				/* --json is a common option even next to --json-lines. */
				const struct cli_opt *o = cli_opt_match(cli_common_opts, dd + 2, len);
				if (o == NULL || strlen(o->name) != len) {
					o = cli_opt_match(c->opts, dd + 2, len);
				}
				assert_non_null(o);
				assert_int_equal(strlen(o->name), len);
				listed++;
			}
			at += linelen + (line[linelen] == '\n');
		}
		for (const struct cli_opt *o = c->opts; o != NULL && o->name != NULL; o++) {
			table++;
		}
		/* + --json and --help */
		if (listed != table + 2) {
			fail_msg("%s %s: the help lists %zu options, the table has %zu + 2",
			    l[i].parent, c->name, listed, table);
		}
		free(text);
	}
}

static void
test_opt_match(void **state)
{
	static const struct cli_opt opts[] = {
		{ "host", 'H', 0, "NAME", "" },
		{ "home-dir", 'D', 0, "DIR", "" },
		{ "all", 'a', 1, NULL, "" },
		{ NULL, 0, 0, NULL, NULL },
	};

	(void)state;
	assert_ptr_equal(cli_opt_match(opts, "host", 4), &opts[0]);
	assert_ptr_equal(cli_opt_match(opts, "host=x", 4), &opts[0]);
	assert_ptr_equal(cli_opt_match(opts, "hos", 3), &opts[0]);
	assert_null(cli_opt_match(opts, "ho", 2)); /* host or home-dir */
	assert_ptr_equal(cli_opt_match(opts, "hom", 3), &opts[1]);
	assert_null(cli_opt_match(opts, "", 0));
	assert_null(cli_opt_match(opts, "alle", 4));
	assert_null(cli_opt_match(NULL, "all", 3));
	assert_ptr_equal(cli_opt_short(opts, 'a'), &opts[2]);
	assert_null(cli_opt_short(opts, 'H'));
}

/* The parser reads a command's table; its errors are usage errors. */
static void
test_getopt(void **state)
{
	const struct cli_cmd *cmd = cli_cmd_find(&cli_group_pki, "issue");
	struct cli cli = { .home = "/nonexistent", .group = "pki", .cmd = cmd, .path = "pki issue" };
	char *argv[] = { (char *)"issue", (char *)"web1", (char *)"-r", (char *)"agent",
		(char *)"--out=d", (char *)"-fd", (char *)"30", NULL };
	char *bad[] = { (char *)"issue", (char *)"--bogus", NULL };
	char *noval[] = { (char *)"issue", (char *)"--out", NULL };
	struct cli_getopt g;
	int c, seen = 0;

	(void)state;
	assert_non_null(cmd);
	cli_getopt_init(&g, &cli, 7, argv);
	while ((c = cli_getopt(&g, &cli)) != -1) {
		switch (c) {
		case 'r':
			assert_string_equal(g.arg, "agent");
			seen |= 1;
			break;
		case 'o':
			assert_string_equal(g.arg, "d");
			seen |= 2;
			break;
		case 'f':
			seen |= 4;
			break;
		case 'd':
			assert_string_equal(g.arg, "30");
			seen |= 8;
			break;
		default:
			fail_msg("unexpected key %d", c);
		}
	}
	assert_int_equal(seen, 15);
	assert_string_equal(argv[cli_getopt_index(&g)], "web1");
	log_set_level(LOG_LVL_ERROR);
	cli_getopt_init(&g, &cli, 2, bad);
	assert_int_equal(cli_getopt(&g, &cli), CLI_GETOPT_ERROR);
	cli_getopt_init(&g, &cli, 2, noval);
	assert_int_equal(cli_getopt(&g, &cli), CLI_GETOPT_ERROR);
}

struct fail_arg {
	struct cli *cli;
	struct err *e;
	int rc;
};

static void
run_fail(void *arg)
{
	struct fail_arg *a = arg;

	a->rc = cli_fail(a->cli, a->e);
}

static void
run_usage(void *arg)
{
	struct fail_arg *a = arg;

	a->rc = cli_usage(a->cli, "NAME is missing");
}

/* Under --json an error is one object on stdout with the kind's wire name; exit codes follow the kind. */
static void
test_fail_json(void **state)
{
	struct cli cli = { .home = "h", .json = 1, .group = "swarm",
		.cmd = cli_cmd_find(&cli_group_swarm, "show"), .path = "swarm show" };
	struct err e = ERR_INIT;
	struct fail_arg a = { &cli, &e, -1 };
	char *out;

	(void)state;
	log_set_level(LOG_LVL_ERROR);
	err_set(&e, ERR_NOT_FOUND, "no host \"x\"\n in the registry");
	out = capture_stdout(run_fail, &a);
	assert_int_equal(a.rc, 1);
	assert_string_equal(out, "{\"error\":{\"kind\":\"not_found\",\"message\":\"no host "
				 "\\\"x\\\"\\n in the registry\"}}\n");
	free(out);
	out = capture_stdout(run_usage, &a);
	assert_int_equal(a.rc, 2);
	assert_string_equal(out, "{\"error\":{\"kind\":\"usage\",\"message\":\"swarm show: NAME "
				 "is missing\"}}\n");
	free(out);
	/* Without --json nothing goes to stdout. */
	cli.json = 0;
	err_set(&e, ERR_USAGE, "bad");
	out = capture_stdout(run_fail, &a);
	assert_int_equal(a.rc, 2);
	assert_string_equal(out, "");
	free(out);
}

static void
test_home_check(void **state)
{
	const char *dir = tmpdir_make("cli-home");
	char sub[PATH_MAX];
	struct cli cli = { .home = dir, .home_source = "from --home" };
	struct err e = ERR_INIT;
	FILE *fp;

	(void)state;
	assert_non_null(dir);
	assert_int_equal(cli_home_check(&cli, &e), -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
	assert_non_null(strstr(err_msg(&e), dir));
	assert_non_null(strstr(err_msg(&e), "from --home"));
	snprintf(sub, sizeof(sub), "%s/ca", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(sub, sizeof(sub), "%s/ca/ca.crt", dir);
	fp = fopen(sub, "w");
	assert_non_null(fp);
	fclose(fp);
	err_clear(&e);
	assert_int_equal(cli_home_check(&cli, &e), 0);
	unlink(sub);
	snprintf(sub, sizeof(sub), "%s/ca", dir);
	rmdir(sub);
	rmdir(dir);
	err_clear(&e);
	assert_int_equal(cli_home_check(&cli, &e), -1);
	assert_non_null(strstr(err_msg(&e), "no master home at"));
	cli.home = NULL;
	assert_int_equal(cli_home_check(&cli, &e), -1);
	assert_int_equal(tmpdir_remove(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_help_lists_parser_options),
		cmocka_unit_test(test_opt_match),
		cmocka_unit_test(test_getopt),
		cmocka_unit_test(test_fail_json),
		cmocka_unit_test(test_home_check),
	};

	log_init("test-cli", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
