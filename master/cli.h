/*
 * cli — the `tandem` command line: command groups (one file each:
 * master/cmd_pki.c, later master/cmd_swarm.c, master/cmd_release.c) made of
 * subcommands. master/main.c parses the global options, picks the group and
 * the subcommand from these tables and calls it; the subcommand parses its
 * own options (getopt_long, starting at argv[1]).
 *
 * Exit codes: CLI_EXIT_OK, CLI_EXIT_FAIL (the operation failed), CLI_EXIT_USAGE
 * (the command line was wrong; nothing was done).
 */
#ifndef TANDEM_MASTER_CLI_H
#define TANDEM_MASTER_CLI_H

#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* What every subcommand gets from main. */
struct cli {
	const char *home; /* the master's home directory (--home, $TANDEM_HOME, ~/.tandem) */
};

struct cli_cmd;
/* ARGV[0] is the subcommand's name; options start at ARGV[1]. */
typedef int (*cli_run_fn)(const struct cli *cli, const struct cli_cmd *self, int argc,
    char **argv);

struct cli_cmd {
	const char *name;    /* "issue" */
	const char *summary; /* one line for the group's --help */
	const char *usage;   /* synopsis and option lines, printed by --help */
	cli_run_fn run;
};

/*
 * A group either lists its subcommands (CMDS, N_CMDS; main dispatches and
 * answers "tandem GROUP --help") or, with RUN set, handles all its words
 * itself: RUN gets ARGV[0] = the group name.
 */
struct cli_group {
	const char *name;    /* "pki" */
	const char *summary; /* one line for tandem --help */
	const struct cli_cmd *cmds;
	size_t n_cmds;
	int (*run)(const struct cli *cli, int argc, char **argv);
};

/* The groups, each defined in its own cmd_<group>.c. */
extern const struct cli_group cli_group_pki;     /* master/cmd_pki.c */
extern const struct cli_group cli_group_release; /* master/cmd_release.c */
extern const struct cli_group cli_group_swarm;   /* master/cmd_swarm.c */
extern const struct cli_group cli_group_backup;  /* master/cmd_backup.c */

/* The usage text of SELF on stdout (for --help); returns CLI_EXIT_OK. */
static inline int
cli_help(const char *group, const struct cli_cmd *self)
{
	printf("usage: tandem [--home DIR] %s %s%s", group, self->name, self->usage);
	return CLI_EXIT_OK;
}

/* A usage error on stderr, with the hint to --help; returns CLI_EXIT_USAGE. */
static inline int cli_usage_error(const char *group, const struct cli_cmd *self, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static inline int
cli_usage_error(const char *group, const struct cli_cmd *self, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tandem %s %s: ", group, self->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'tandem %s %s --help'.\n", group, self->name);
	return CLI_EXIT_USAGE;
}

/*
 * After option parsing, exactly one operand must remain (WHAT names it in
 * the message, e.g. "NAME"). Returns 0, or reports the usage error and
 * returns CLI_EXIT_USAGE.
 */
static inline int
cli_one_operand(const char *group, const struct cli_cmd *self, int argc, char **argv, int optind_,
    const char *what)
{
	if (optind_ == argc) {
		return cli_usage_error(group, self, "%s is missing", what);
	}
	if (optind_ + 1 != argc) {
		return cli_usage_error(group, self, "unexpected argument '%s'", argv[optind_ + 1]);
	}
	return 0;
}

/*
 * Report a getopt_long() failure: C is ':' (missing value) or '?' (unknown
 * option), ARGV[OPTIND-1] the offending word. Returns CLI_EXIT_USAGE.
 */
static inline int
cli_getopt_error(const char *group, const struct cli_cmd *self, int c, char **argv, int optind_)
{
	const char *word = optind_ > 0 ? argv[optind_ - 1] : "?";
	char shortopt[3];

	/*
	 * A bad short option inside a cluster ("-bad") leaves optind on the
	 * previous word until the cluster ends: name the option itself.
	 */
	if (strncmp(word, "--", 2) != 0 && optopt > 0 && optopt < 128) {
		shortopt[0] = '-';
		shortopt[1] = (char)optopt;
		shortopt[2] = '\0';
		word = shortopt;
	}
	if (c == ':') {
		return cli_usage_error(group, self, "option '%s' needs a value", word);
	}
	return cli_usage_error(group, self, "unknown option '%s'", word);
}

#endif
