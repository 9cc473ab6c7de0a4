/*
 * cli — the `tandem` command line: command groups (one file each:
 * master/cmd_pki.c, master/cmd_release.c, master/cmd_swarm.c) made of
 * commands. Each command is described by one table entry: its options (the
 * table the parser reads, the help prints and shell completion offers), what
 * it does, its exit status and an example, so help and parser cannot drift.
 *
 * master/main.c finds the group and the command, takes the global options
 * (--home, --json, -v, --help) from anywhere on the line, checks every option
 * and the number of operands against the command's table (a wrong line exits
 * 2 before anything else happens), checks the master's home and calls the
 * command with the remaining words (ARGV[0] = its name); the command reads
 * its own options with cli_getopt() and finds its operand, if it has one, at
 * cli_getopt_index().
 *
 * Errors: every failure is a `struct err` (common/err.h) handed to
 * cli_fail(), which prints "tandem: error: MESSAGE" on stderr and, under
 * --json, {"error":{"kind":KIND,"message":MESSAGE}} on stdout, and returns the
 * exit code of the kind (see the table in common/err.c): CLI_EXIT_OK,
 * CLI_EXIT_FAIL (the operation failed), CLI_EXIT_USAGE (the command line was
 * wrong; nothing was done).
 */
#ifndef TANDEM_MASTER_CLI_H
#define TANDEM_MASTER_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

#include "common/err.h"
#include "common/util.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Most options one command may have (its own; --json and --help come on top). */
#define CLI_MAX_OPTS 32

/* One option of a command. */
struct cli_opt {
	const char *name;   /* long name without "--"; NULL ends a table */
	int key;            /* what cli_getopt() returns for it */
	int short_opt;      /* 1: KEY (a letter) is also the short option -KEY */
	const char *arg;    /* the value's name ("DIR"); NULL for a flag */
	const char *help;   /* what it does; '\n' starts another help line */
};

/* Which master home a command needs. */
enum cli_home {
	CLI_HOME_EXISTING = 0, /* refused unless HOME holds a CA (tandem pki init) */
	CLI_HOME_CREATE,       /* creates it: pki init only */
	CLI_HOME_NONE,         /* never reads it (release pack), or checks it itself */
};

struct cli_cmd;
struct cJSON;

/* What every command gets from main. */
struct cli {
	const char *home;          /* --home, $TANDEM_HOME or ~/.tandem */
	const char *home_source;   /* "--home", "TANDEM_HOME" or "the default" */
	int json;                  /* --json: results and errors as JSON on stdout */
	const char *group;         /* "swarm" */
	const struct cli_cmd *cmd; /* the running command */
	char path[64];             /* its words after "tandem": "release keyring init" */
};

/* ARGV[0] is the command's name; its options and operands follow. */
typedef int (*cli_run_fn)(struct cli *cli, int argc, char **argv);

struct cli_cmd {
	const char *name;        /* "issue" */
	const char *summary;     /* one line for the command lists */
	const char *synopsis;    /* what follows "tandem GROUP NAME"; '\n' separates forms */
	const char *operand;     /* the one operand ("NAME"); NULL: none allowed */
	int operand_optional;    /* 1: OPERAND may be left out */
	int operand_more;        /* 1: more operands may follow it ("NAME KEY=VALUE...") */
	const char *description; /* what it does, wrapped text */
	const struct cli_opt *opts; /* its options, ended by a NULL name; NULL for none */
	const char *exit_status; /* NULL: 0 done, 1 failed, 2 usage error */
	const char *example;     /* one command line (more lines allowed) */
	enum cli_home home;
	cli_run_fn run;          /* NULL for a command made of commands (SUBS) */
	const struct cli_cmd *subs; /* "release keyring" -> init, rotate, ...; NULL: a leaf */
	size_t n_subs;
};

struct cli_group {
	const char *name;    /* "pki" */
	const char *summary; /* one line for tandem --help */
	const struct cli_cmd *cmds;
	size_t n_cmds;
};

/* Each group is defined in its own cmd_<group>.c. */
extern const struct cli_group cli_group_pki;     /* master/cmd_pki.c */
extern const struct cli_group cli_group_release; /* master/cmd_release.c */
extern const struct cli_group cli_group_swarm;   /* master/cmd_swarm.c */
extern const struct cli_group cli_group_backup;  /* master/cmd_backup.c */

/* Every group, in the order the help lists them. */
extern const struct cli_group *const cli_groups[];
extern const size_t cli_n_groups;

/* The group NAME, or NULL. */
const struct cli_group *cli_group_find(const char *name);
/* The command NAME of G, or NULL. */
const struct cli_cmd *cli_cmd_find(const struct cli_group *g, const char *name);
/* The sub-command NAME of CMD, or NULL. */
const struct cli_cmd *cli_sub_find(const struct cli_cmd *cmd, const char *name);

/* The options every command has, after its own: --json, -h/--help. */
extern const struct cli_opt cli_common_opts[];

/*
 * The option of CMD (or a common one) that long-option word NAME (without
 * "--", up to LEN bytes: the part before '=') names: an exact match, else the
 * only option it is a prefix of (as getopt_long accepts). NULL when none or
 * ambiguous.
 */
const struct cli_opt *cli_opt_match(const struct cli_opt *opts, const char *name, size_t len);
/* The option of OPTS with short letter C, or NULL. */
const struct cli_opt *cli_opt_short(const struct cli_opt *opts, int c);

/* ---- help */

/* The help of the whole program (tandem --help). */
void cli_help_main(FILE *fp);
/* The help of group G (tandem G --help). */
void cli_help_group(const struct cli_group *g, FILE *fp);
/*
 * The help of command CMD whose parent's words are PARENT ("swarm",
 * "release keyring"): tandem PARENT CMD --help. For a command made of
 * commands, the list of them.
 */
void cli_help_cmd(const char *parent, const struct cli_cmd *cmd, FILE *fp);

/* ---- option parsing of one command */

struct cli_getopt {
	int argc;
	char **argv;
	const char *arg;  /* the value of the option just returned */
	struct option longopts[CLI_MAX_OPTS + 1];
	char shortopts[2 * CLI_MAX_OPTS + 2];
};

/* Prepare to read the options of CLI->cmd from ARGV (ARGV[0] the command). */
void cli_getopt_init(struct cli_getopt *g, const struct cli *cli, int argc, char **argv);

/*
 * The next option's key (G->arg holds its value), -1 after the last
 * option (cli_getopt_index() is then the first operand), or
 * CLI_GETOPT_ERROR for an unknown option or a missing value: the usage
 * error is already reported, return CLI_EXIT_USAGE.
 */
int cli_getopt(struct cli_getopt *g, const struct cli *cli);

#define CLI_GETOPT_ERROR (-2)

/* Index of the first operand after cli_getopt() returned -1. */
int cli_getopt_index(const struct cli_getopt *g);

/*
 * getopt_long()'s tables for OPTS (at most CLI_MAX_OPTS; a longer table is
 * cut, which a unit test catches): LONGOPTS ends with a zero entry,
 * SHORTOPTS starts with ':' (a missing value returns ':'). For a parser that
 * is not a command's (swarm_update_args_parse) but reads the same table.
 */
void cli_getopt_tables(const struct cli_opt *opts, struct option longopts[CLI_MAX_OPTS + 1],
    char shortopts[2 * CLI_MAX_OPTS + 2]);

/* ---- output */

/*
 * Report E (a failed struct err): "tandem: error: MESSAGE" on stderr and,
 * under --json, {"error":{"kind":WIRE-NAME,"message":MESSAGE}} on stdout.
 * Returns the exit code of E's kind.
 */
int cli_fail(const struct cli *cli, const struct err *e);

/* cli_fail() of an error of KIND with the message FMT. */
int cli_failf(const struct cli *cli, enum err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A usage error of the running command: "tandem: error: PATH: MESSAGE"
 * and a hint to its --help on stderr (JSON as cli_fail, kind "usage").
 * Returns CLI_EXIT_USAGE.
 */
int cli_usage(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Print OBJ (owned; NULL when it could not be built: out of memory) as one
 * compact JSON line on stdout. Returns an exit code.
 */
int cli_print_json(const struct cli *cli, struct cJSON *obj);

/* A note for the operator on stderr: "tandem: MESSAGE". */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Flush stdout; on a write error (full disk, closed pipe) report it.
 * Returns CLI_EXIT_OK or CLI_EXIT_FAIL.
 */
int cli_flush(const struct cli *cli);

/*
 * Check that CLI->home is a master home (a directory holding ca/ca.crt).
 * Returns 0, or -1 with E (not_found) naming the path and where it came from.
 */
int cli_home_check(const struct cli *cli, struct err *e) WUR;

#endif
