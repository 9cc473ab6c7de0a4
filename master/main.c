/*
 * tandem — the master CLI: a command group, one of its commands, and the
 * global options anywhere on the line (see master/cli.h).
 *
 *   tandem [--home DIR] [--json] [-v] GROUP COMMAND [options] [operands]
 */
#include <limits.h>
#include <stdarg.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/version.h"
#include "master/cli.h"
#include "master/cmd_rollout.h"

/* Options that may stand anywhere on the line. */
enum {
	MAIN_HOME = 'H',
	MAIN_JSON = 'j',
	MAIN_VERBOSE = 'v',
	MAIN_HELP = 'h',
	MAIN_VERSION = 'V',
};

static const struct cli_opt main_opts[] = {
	{ "home", MAIN_HOME, 0, "DIR", "" },
	{ "json", MAIN_JSON, 0, NULL, "" },
	{ "verbose", MAIN_VERBOSE, 1, NULL, "" },
	{ "help", MAIN_HELP, 1, NULL, "" },
	{ "version", MAIN_VERSION, 1, NULL, "" },
	{ NULL, 0, 0, NULL, NULL },
};

/* What the words of the command line say. */
struct line {
	const char *home_opt;
	int json, verbose, help, version;
	const struct cli_group *g;
	const struct cli_cmd *parent; /* when CMD is one of its sub-commands */
	const struct cli_cmd *cmd;
	char **rest; /* the command's words: its name, its options and operands */
	int n_rest;
	struct err err; /* the first problem found (reported after the whole line is read) */
};

/*
 * Long option WORD ("--name" or "--name=value"): a global option, or one of
 * the command's (exact name first, else an unambiguous prefix of either).
 */
static const struct cli_opt *
long_match(const struct cli_cmd *cmd, const char *word, int *global)
{
	const char *name = word + 2;
	size_t len = strcspn(name, "=");
	const struct cli_opt *mo = NULL, *co = NULL;

	/* A command's own option shadows a global one of the same name (release pack --version). */
	if (cmd != NULL) {
		for (const struct cli_opt *o = cmd->opts; o != NULL && o->name != NULL; o++) {
			if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
				*global = 0;
				return o;
			}
		}
	}
	for (const struct cli_opt *o = main_opts; o->name != NULL; o++) {
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
			*global = 1;
			return o;
		}
	}
	mo = cli_opt_match(main_opts, name, len);
	co = cmd != NULL ? cli_opt_match(cmd->opts, name, len) : NULL;
	if (mo != NULL && co == NULL) {
		*global = 1;
		return mo;
	}
	if (co != NULL && mo == NULL) {
		*global = 0;
		return co;
	}
	return NULL;
}

static void line_error(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keep the first problem of the line. */
static void
line_error(struct line *l, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;

	if (err_failed(&l->err)) {
		return;
	}
	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0) {
		msg[0] = '\0';
	}
	va_end(ap);
	err_set(&l->err, ERR_USAGE, "%s", msg);
}

/* A global option O named by WORD at ARGV[*I] (VALUE after '=', or NULL). */
static void
take_global(struct line *l, const struct cli_opt *o, int argc, char **argv, int *i,
    const char *value)
{
	switch (o->key) {
	case MAIN_HOME:
		if (value == NULL) {
			if (*i + 1 >= argc) {
				line_error(l, "option '%s' needs a value", argv[*i]);
				return;
			}
			value = argv[++*i];
		}
		if (*value == '\0') {
			line_error(l, "%s needs a non-empty directory", "--home");
			return;
		}
		l->home_opt = value;
		break;
	case MAIN_JSON:
		l->json = 1;
		break;
	case MAIN_VERBOSE:
		l->verbose = 1;
		break;
	case MAIN_HELP:
		l->help = 1;
		break;
	case MAIN_VERSION:
		l->version = 1;
		break;
	default:
		break;
	}
	if (value != NULL && o->arg == NULL) {
		line_error(l, "option '%s' takes no value", argv[*i]);
	}
}

/*
 * A short-option word ("-v", "-o FILE", "-fo FILE", "-oFILE"): the global -v,
 * -h, -V on their own, else the command's (its value word goes with it).
 */
static void
take_short(struct line *l, int argc, char **argv, int *i)
{
	const char *w = argv[*i];
	const struct cli_opt *o;

	if (w[2] == '\0' && cli_opt_short(l->cmd != NULL ? l->cmd->opts : NULL, w[1]) == NULL &&
	    (o = cli_opt_short(main_opts, w[1])) != NULL) {
		take_global(l, o, argc, argv, i, NULL);
		return;
	}
	if (l->cmd == NULL) {
		line_error(l, "unknown option '%s'", w);
		return;
	}
	l->rest[l->n_rest++] = argv[*i];
	for (const char *c = w + 1; *c != '\0'; c++) {
		o = cli_opt_short(l->cmd->opts, *c);
		if (o == NULL) {
			line_error(l, "unknown option '-%c'", *c);
			return;
		}
		if (o->arg != NULL) {
			if (c[1] != '\0') {
				return; /* "-oFILE" */
			}
			if (*i + 1 >= argc) {
				line_error(l, "option '-%c' needs a value", *c);
				return;
			}
			l->rest[l->n_rest++] = argv[++*i];
			return;
		}
	}
}

/* A long-option word of the command or a global one (exact, else an unambiguous prefix). */
static void
take_long(struct line *l, int argc, char **argv, int *i)
{
	const char *w = argv[*i];
	const char *eq = strchr(w, '=');
	const struct cli_opt *o;
	int global = 0;

	o = long_match(l->cmd, w, &global);
	if (o == NULL) {
		line_error(l, "unknown option '%.*s'", (int)(eq != NULL ? (size_t)(eq - w) : strlen(w)),
		    w);
		return;
	}
	if (global) {
		take_global(l, o, argc, argv, i, eq != NULL ? eq + 1 : NULL);
		return;
	}
	if (o->arg == NULL && eq != NULL) {
		line_error(l, "option '--%s' takes no value", o->name);
		return;
	}
	l->rest[l->n_rest++] = argv[*i];
	if (o->arg != NULL && eq == NULL) {
		if (*i + 1 >= argc) {
			line_error(l, "option '--%s' needs a value", o->name);
			return;
		}
		l->rest[l->n_rest++] = argv[++*i];
	}
}

/* A word that is not an option: the group, the command, or an operand of the command. */
static void
take_word(struct line *l, char **argv, int i, int *n_operands)
{
	const char *w = argv[i];

	if (l->g == NULL) {
		l->g = cli_group_find(w);
		if (l->g == NULL) {
			line_error(l, "unknown command group '%s'", w);
		}
	} else if (l->cmd == NULL) {
		l->cmd = cli_cmd_find(l->g, w);
		if (l->cmd == NULL) {
			line_error(l, "unknown command '%s'", w);
		} else {
			l->rest[l->n_rest++] = argv[i];
		}
	} else if (l->cmd->subs != NULL) {
		const struct cli_cmd *sub = cli_sub_find(l->cmd, w);
		if (sub == NULL) {
			line_error(l, "unknown command '%s'", w);
		} else {
			/* The sub-command runs with its own name as ARGV[0]. */
			l->parent = l->cmd;
			l->cmd = sub;
			l->rest[0] = argv[i];
		}
	} else {
		/* The command's operands: as many as its synopsis names (0, 1 or more). */
		if (++*n_operands > (l->cmd->operand != NULL ? 1 : 0) && !l->cmd->operand_more) {
			line_error(l, "unexpected argument '%s'", w);
		}
		l->rest[l->n_rest++] = argv[i];
	}
}

/*
 * Sort the words of ARGV into L, checking every option and the number of
 * operands against the command's table, so that a wrong line is refused
 * (exit 2) before anything else, the home included, is looked at.
 */
static void
read_line(struct line *l, int argc, char **argv)
{
	int i, operands_only = 0, n_operands = 0;

	for (i = 1; i < argc; i++) {
		const char *w = argv[i];

		if (err_failed(&l->err)) {
			/* The line is refused; only --json still matters (for the error's form). */
			if (strcmp(w, "--") == 0) {
				return;
			}
			l->json |= strcmp(w, "--json") == 0;
			continue;
		}
		if (operands_only || w[0] != '-' || w[1] == '\0') {
			if (operands_only && l->cmd == NULL) {
				line_error(l, "unexpected argument '%s'", w);
			} else {
				take_word(l, argv, i, &n_operands);
			}
		} else if (strcmp(w, "--") == 0) {
			/* Everything after "--" is an operand of the command. */
			if (l->cmd != NULL) {
				l->rest[l->n_rest++] = argv[i];
			}
			operands_only = 1;
		} else if (w[1] != '-') {
			take_short(l, argc, argv, &i);
		} else {
			take_long(l, argc, argv, &i);
		}
	}
	if (!err_failed(&l->err) && !l->help && !l->version && l->cmd != NULL &&
	    l->cmd->operand != NULL && !l->cmd->operand_optional && n_operands == 0) {
		line_error(l, "%s is missing", l->cmd->operand);
	}
}

/* --home, else $TANDEM_HOME, else ~/.tandem (from $HOME or the password file). */
static int
resolve_home(struct cli *cli, const char *opt, char *buf, size_t len, struct err *e)
{
	const char *base;
	int n;

	if (opt != NULL) {
		cli->home_source = "from --home";
		n = snprintf(buf, len, "%s", opt);
	} else if ((base = getenv("TANDEM_HOME")) != NULL && *base != '\0') {
		cli->home_source = "from TANDEM_HOME";
		n = snprintf(buf, len, "%s", base);
	} else {
		cli->home_source = "the default ~/.tandem";
		base = getenv("HOME");
		if (base == NULL || *base == '\0') {
			const struct passwd *pw = getpwuid(getuid());
			base = pw != NULL ? pw->pw_dir : NULL;
		}
		if (base == NULL || *base == '\0') {
			return err_set(e, ERR_USAGE, "cannot determine the home directory: use --home "
						     "DIR or set TANDEM_HOME");
		}
		n = snprintf(buf, len, "%s/.tandem", base);
	}
	if (n <= 0 || (size_t)n >= len) {
		return err_set(e, ERR_USAGE, "the master home path is too long");
	}
	cli->home = buf;
	return 0;
}

/*
 * A rollout command that SIGINT or SIGTERM stopped has reported and closed its
 * registry by now: end by the same signal, the convention that lets the shell
 * running us (a script, the demo) act on the Ctrl-C too. An exit status of its
 * own would make the shell believe the interrupt was handled and go on.
 */
static void
die_by_stop_signal(void)
{
	int sig = cmd_rollout_stop_signal();

	if (sig == 0) {
		return;
	}
	fflush(stdout);
	fflush(stderr);
	signal(sig, SIG_DFL);
	raise(sig);
}

int
main(int argc, char **argv)
{
	struct line l;
	struct cli cli;
	char home[PATH_MAX], parent[48];
	int rc = CLI_EXIT_FAIL;

	log_init("tandem", LOG_LVL_INFO);
	log_set_plain(1);
	memset(&l, 0, sizeof(l));
	memset(&cli, 0, sizeof(cli));
	l.rest = calloc((size_t)argc + 1, sizeof(*l.rest));
	if (l.rest == NULL) {
		err_set(&l.err, ERR_NOMEM, "out of memory");
		return cli_fail(NULL, &l.err);
	}
	read_line(&l, argc, argv);
	cli.json = l.json;
	cli.group = l.g != NULL ? l.g->name : NULL;
	cli.cmd = l.cmd;
	/* The words naming the command, for messages and help: "release keyring init". */
	snprintf(parent, sizeof(parent), "%s%s%s", cli.group != NULL ? cli.group : "",
	    l.parent != NULL ? " " : "", l.parent != NULL ? l.parent->name : "");
	snprintf(cli.path, sizeof(cli.path), "%s%s%s", parent,
	    l.cmd != NULL ? " " : "", l.cmd != NULL ? l.cmd->name : "");
	if (err_failed(&l.err)) {
		rc = cli_usage(&cli, "%s", err_msg(&l.err));
		goto out;
	}
	if (l.verbose) {
		log_set_level(LOG_LVL_DEBUG);
	}
	if (l.version) {
		printf("tandem %s\n", tandem_version());
		rc = cli_flush(&cli);
		goto out;
	}
	if (l.help || l.cmd == NULL || l.cmd->subs != NULL) {
		FILE *fp = l.help ? stdout : stderr;
		if (l.cmd != NULL) {
			cli_help_cmd(parent, l.cmd, fp);
		} else if (l.g != NULL) {
			cli_help_group(l.g, fp);
		} else {
			cli_help_main(fp);
		}
		if (l.help) {
			rc = cli_flush(&cli);
		} else {
			fputc('\n', stderr);
			rc = cli_usage(&cli, "%s is missing", l.g != NULL ? "COMMAND" : "GROUP");
		}
		goto out;
	}
	if (resolve_home(&cli, l.home_opt, home, sizeof(home), &l.err) != 0) {
		/* A home that cannot be named only matters to commands that use it. */
		if (l.cmd->home != CLI_HOME_NONE) {
			rc = cli_fail(&cli, &l.err);
			goto out;
		}
	} else if (l.cmd->home == CLI_HOME_EXISTING && cli_home_check(&cli, &l.err) != 0) {
		rc = cli_fail(&cli, &l.err);
		goto out;
	}
	rc = l.cmd->run(&cli, l.n_rest, l.rest);
out:
	free(l.rest);
	die_by_stop_signal();
	return rc;
}
