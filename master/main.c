/*
 * tandem — the master CLI: global options, then a command group and one of
 * its subcommands (see master/cli.h).
 *
 *   tandem [--home DIR] [-v] GROUP COMMAND [options]
 */
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/version.h"
#include "master/cli.h"

/* Each group is declared in master/cli.h; later ones (swarm) slot in here. */
static const struct cli_group *const groups[] = {
	&cli_group_pki,
	&cli_group_release,
	&cli_group_swarm,
	&cli_group_backup,
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: tandem [--home DIR] [-v] GROUP COMMAND [options]\n"
	    "       tandem GROUP --help | tandem GROUP COMMAND --help\n"
	    "\n"
	    "Global options:\n"
	    "  --home DIR     the master's state directory (default: $TANDEM_HOME,\n"
	    "                 else ~/.tandem)\n"
	    "  -v, --verbose  debug logging\n"
	    "  -h, --help     this help\n"
	    "  -V, --version  print the version\n"
	    "\n"
	    "Command groups:\n");
	for (size_t i = 0; i < ARRAY_LEN(groups); i++) {
		fprintf(fp, "  %-14s %s\n", groups[i]->name, groups[i]->summary);
	}
}

static void
group_usage(const struct cli_group *g, FILE *fp)
{
	fprintf(fp, "usage: tandem [--home DIR] %s COMMAND [options]\n\nCommands:\n", g->name);
	for (size_t i = 0; i < g->n_cmds; i++) {
		fprintf(fp, "  %-14s %s\n", g->cmds[i].name, g->cmds[i].summary);
	}
	fprintf(fp, "\nRun 'tandem %s COMMAND --help' for its options.\n", g->name);
}

/* --home, else $TANDEM_HOME, else ~/.tandem (from $HOME or the password file). */
static int
resolve_home(const char *opt, char *buf, size_t len)
{
	const char *base;
	int n;

	if (opt != NULL) {
		n = snprintf(buf, len, "%s", opt);
	} else if ((base = getenv("TANDEM_HOME")) != NULL && *base != '\0') {
		n = snprintf(buf, len, "%s", base);
	} else {
		base = getenv("HOME");
		if (base == NULL || *base == '\0') {
			const struct passwd *pw = getpwuid(getuid());
			base = pw != NULL ? pw->pw_dir : NULL;
		}
		if (base == NULL || *base == '\0') {
			return -1;
		}
		n = snprintf(buf, len, "%s/.tandem", base);
	}
	if (n <= 0 || (size_t)n >= len) {
		return -1;
	}
	return 0;
}

/* Fill CLI for a command about to run; getopt is reset for its own parsing. */
static int
cli_setup(struct cli *cli, const char *home_opt, char *home, size_t len)
{
	if (resolve_home(home_opt, home, len) != 0) {
		fprintf(stderr, "tandem: cannot determine the home directory: use --home DIR or "
				"set TANDEM_HOME\n");
		return -1;
	}
	cli->home = home;
	/* GNU getopt: optind 0 re-initialises; the command parses from ARGV[1]. */
	optind = 0;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "home", required_argument, NULL, 'H' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *home_opt = NULL;
	const struct cli_group *g = NULL;
	const struct cli_cmd *cmd = NULL;
	char home[PATH_MAX];
	struct cli cli;
	int c;

	log_init("tandem", LOG_LVL_INFO);
	opterr = 0;
	/* '+': stop at the group name; the rest belongs to the subcommand. */
	while ((c = getopt_long(argc, argv, "+:hvV", longopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			if (*optarg == '\0') {
				fprintf(stderr, "tandem: --home needs a non-empty directory\n");
				return CLI_EXIT_USAGE;
			}
			home_opt = optarg;
			break;
		case 'v':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'V':
			printf("tandem %s\n", tandem_version());
			return CLI_EXIT_OK;
		case ':':
			fprintf(stderr, "tandem: option '%s' needs a value\n", argv[optind - 1]);
			return CLI_EXIT_USAGE;
		default:
			fprintf(stderr, "tandem: unknown option '%s'\nTry 'tandem --help'.\n",
			    argv[optind - 1]);
			return CLI_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < ARRAY_LEN(groups); i++) {
		if (strcmp(argv[0], groups[i]->name) == 0) {
			g = groups[i];
		}
	}
	if (g == NULL) {
		fprintf(stderr, "tandem: unknown command group '%s'\nTry 'tandem --help'.\n",
		    argv[0]);
		return CLI_EXIT_USAGE;
	}
	if (g->run != NULL) {
		if (cli_setup(&cli, home_opt, home, sizeof(home)) != 0) {
			return CLI_EXIT_USAGE;
		}
		return g->run(&cli, argc, argv);
	}
	if (argc < 2) {
		group_usage(g, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		group_usage(g, stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < g->n_cmds; i++) {
		if (strcmp(argv[1], g->cmds[i].name) == 0) {
			cmd = &g->cmds[i];
		}
	}
	if (cmd == NULL) {
		fprintf(stderr, "tandem %s: unknown command '%s'\nTry 'tandem %s --help'.\n",
		    g->name, argv[1], g->name);
		return CLI_EXIT_USAGE;
	}
	if (cli_setup(&cli, home_opt, home, sizeof(home)) != 0) {
		return CLI_EXIT_USAGE;
	}
	return cmd->run(&cli, cmd, argc - 1, argv + 1);
}
