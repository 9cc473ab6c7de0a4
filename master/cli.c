#include "master/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cJSON.h"
#include "common/json.h"
#include "common/log.h"
#include "pki/pki.h"

const struct cli_group *const cli_groups[] = {
	&cli_group_pki,
	&cli_group_release,
	&cli_group_swarm,
	&cli_group_backup,
};
const size_t cli_n_groups = ARRAY_LEN(cli_groups);

/* Keys of the common options; commands never see them (main takes them out). */
#define CLI_KEY_JSON 0x1001

const struct cli_opt cli_common_opts[] = {
	{ "json", CLI_KEY_JSON, 0, NULL,
	    "print the result as one JSON object on stdout;\n"
	    "an error as {\"error\":{\"kind\":KIND,\"message\":TEXT}}" },
	{ "help", 'h', 1, NULL, "this help" },
	{ NULL, 0, 0, NULL, NULL },
};

static const char cli_default_exit[] =
    "  0  done\n"
    "  1  failed (the message says why; nothing is left half done)\n"
    "  2  usage error: the command line is wrong, nothing was done\n";

const struct cli_group *
cli_group_find(const char *name)
{
	for (size_t i = 0; i < cli_n_groups; i++) {
		if (strcmp(cli_groups[i]->name, name) == 0) {
			return cli_groups[i];
		}
	}
	return NULL;
}

const struct cli_cmd *
cli_cmd_find(const struct cli_group *g, const char *name)
{
	for (size_t i = 0; i < g->n_cmds; i++) {
		if (strcmp(g->cmds[i].name, name) == 0) {
			return &g->cmds[i];
		}
	}
	return NULL;
}

const struct cli_cmd *
cli_sub_find(const struct cli_cmd *cmd, const char *name)
{
	for (size_t i = 0; i < cmd->n_subs; i++) {
		if (strcmp(cmd->subs[i].name, name) == 0) {
			return &cmd->subs[i];
		}
	}
	return NULL;
}

const struct cli_opt *
cli_opt_match(const struct cli_opt *opts, const char *name, size_t len)
{
	const struct cli_opt *found = NULL;
	size_t n = 0;

	for (const struct cli_opt *o = opts; o != NULL && o->name != NULL; o++) {
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
			return o;
		}
	}
	for (const struct cli_opt *o = opts; o != NULL && o->name != NULL && len > 0; o++) {
		if (strncmp(o->name, name, len) == 0) {
			found = o;
			n++;
		}
	}
	return n == 1 ? found : NULL;
}

const struct cli_opt *
cli_opt_short(const struct cli_opt *opts, int c)
{
	for (const struct cli_opt *o = opts; o != NULL && o->name != NULL; o++) {
		if (o->short_opt && o->key == c) {
			return o;
		}
	}
	return NULL;
}

/* ---- help */

/* Option lines: "  -o, --out DIR      help", continuation lines aligned. */
static void
help_opts(const struct cli_opt *opts, FILE *fp)
{
	char left[64];
	const char *h, *nl;

	for (const struct cli_opt *o = opts; o != NULL && o->name != NULL; o++) {
		if (o->short_opt) {
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->key, o->name,
			    o->arg != NULL ? " " : "", o->arg != NULL ? o->arg : "");
		} else {
			snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg != NULL ? " " : "",
			    o->arg != NULL ? o->arg : "");
		}
		if (strlen(left) > 19) {
			fprintf(fp, "  %s\n%23s", left, "");
		} else {
			fprintf(fp, "  %-20s %s", left, "");
		}
		for (h = o->help; (nl = strchr(h, '\n')) != NULL; h = nl + 1) {
			fprintf(fp, "%.*s\n%23s", (int)(nl - h), h, "");
		}
		fprintf(fp, "%s\n", h);
	}
}

void
cli_help_main(FILE *fp)
{
	fprintf(fp,
	    "usage: tandem [global options] GROUP COMMAND [options] [operands]\n"
	    "       tandem GROUP --help | tandem GROUP COMMAND --help\n"
	    "\n"
	    "The master's command line: the certificate authority, release tarballs and\n"
	    "the fleet (enroll hosts, push releases to their updaters, roll back, ask).\n"
	    "\n"
	    "Commands:\n");
	for (size_t i = 0; i < cli_n_groups; i++) {
		const struct cli_group *g = cli_groups[i];
		for (size_t k = 0; k < g->n_cmds; k++) {
			const struct cli_cmd *c = &g->cmds[k];
			char words[64];
			if (c->subs == NULL) {
				snprintf(words, sizeof(words), "%s %s", g->name, c->name);
				fprintf(fp, "  %-24s %s\n", words, c->summary);
			}
			for (size_t m = 0; m < c->n_subs; m++) {
				snprintf(words, sizeof(words), "%s %s %s", g->name, c->name,
				    c->subs[m].name);
				fprintf(fp, "  %-24s %s\n", words, c->subs[m].summary);
			}
		}
	}
	fprintf(fp,
	    "\n"
	    "Global options (before or after the command):\n"
	    "  --home DIR           the master's home (default: $TANDEM_HOME, else\n"
	    "                       ~/.tandem); only 'pki init' creates one ('backup\n"
	    "                       restore' recreates one from an archive)\n"
	    "  --json               print the result as one JSON object on stdout; an\n"
	    "                       error as {\"error\":{\"kind\":KIND,\"message\":TEXT}}\n"
	    "  -v, --verbose        debug logging on stderr\n"
	    "  -h, --help           this help (after a command: its help)\n"
	    "  -V, --version        print the version\n"
	    "\n"
	    "Exit status:\n"
	    "%s"
	    "  (swarm update, status, rollback, history: 1 also when a host failed)\n"
	    "\n"
	    "Errors go to stderr as 'tandem: error: ...'; results to stdout.\n"
	    "\n"
	    "Example:\n"
	    "  tandem pki init && tandem swarm enroll web1 --address 192.0.2.10 --updater\n"
	    "\n"
	    "Run 'tandem GROUP COMMAND --help' for a command's options and an example.\n",
	    cli_default_exit);
}

void
cli_help_group(const struct cli_group *g, FILE *fp)
{
	fprintf(fp, "usage: tandem [global options] %s COMMAND [options]\n\n%s\n\nCommands:\n",
	    g->name, g->summary);
	for (size_t i = 0; i < g->n_cmds; i++) {
		fprintf(fp, "  %-14s %s\n", g->cmds[i].name, g->cmds[i].summary);
	}
	fprintf(fp, "\nRun 'tandem %s COMMAND --help' for its options, exit status and an "
		    "example.\n",
	    g->name);
}

void
cli_help_cmd(const char *parent, const struct cli_cmd *cmd, FILE *fp)
{
	const char *s, *nl;
	int first = 1;

	for (s = cmd->synopsis;; s = nl + 1) {
		nl = strchr(s, '\n');
		fprintf(fp, "%s tandem %s %s %.*s\n", first ? "usage:" : "      ", parent, cmd->name,
		    nl != NULL ? (int)(nl - s) : (int)strlen(s), s);
		first = 0;
		if (nl == NULL) {
			break;
		}
	}
	fprintf(fp, "\n%s\n", cmd->description);
	if (cmd->subs != NULL) {
		fprintf(fp, "\nCommands:\n");
		for (size_t i = 0; i < cmd->n_subs; i++) {
			fprintf(fp, "  %-14s %s\n", cmd->subs[i].name, cmd->subs[i].summary);
		}
		fprintf(fp, "\nRun 'tandem %s %s COMMAND --help' for its options, exit status and an "
			    "example.\n",
		    parent, cmd->name);
		return;
	}
	fprintf(fp, "\nOptions:\n");
	help_opts(cmd->opts, fp);
	help_opts(cli_common_opts, fp);
	fprintf(fp, "\nGlobal options, anywhere on the line: --home DIR, -v/--verbose\n"
		    "(see 'tandem --help').\n");
	fprintf(fp, "\nExit status:\n%s", cmd->exit_status != NULL ? cmd->exit_status
							      : cli_default_exit);
	fprintf(fp, "\nExample:\n");
	for (s = cmd->example;; s = nl + 1) {
		nl = strchr(s, '\n');
		fprintf(fp, "  %.*s\n", nl != NULL ? (int)(nl - s) : (int)strlen(s), s);
		if (nl == NULL) {
			break;
		}
	}
}

/* ---- option parsing */

void
cli_getopt_tables(const struct cli_opt *opts, struct option longopts[CLI_MAX_OPTS + 1],
    char shortopts[2 * CLI_MAX_OPTS + 2])
{
	size_t n = 0, k = 0;

	memset(longopts, 0, (CLI_MAX_OPTS + 1) * sizeof(*longopts));
	shortopts[k++] = ':';
	for (const struct cli_opt *o = opts; o != NULL && o->name != NULL; o++) {
		if (n == CLI_MAX_OPTS) {
			/* A table larger than the limit is a programming error a unit test catches. */
			break;
		}
		longopts[n].name = o->name;
		longopts[n].has_arg = o->arg != NULL ? required_argument : no_argument;
		longopts[n].flag = NULL;
		longopts[n].val = o->key;
		n++;
		if (o->short_opt) {
			shortopts[k++] = (char)o->key;
			if (o->arg != NULL) {
				shortopts[k++] = ':';
			}
		}
	}
	shortopts[k] = '\0';
}

void
cli_getopt_init(struct cli_getopt *g, const struct cli *cli, int argc, char **argv)
{
	memset(g, 0, sizeof(*g));
	g->argc = argc;
	g->argv = argv;
	cli_getopt_tables(cli->cmd->opts, g->longopts, g->shortopts);
	/* GNU getopt: optind 0 re-initialises (main may have parsed before). */
	optind = 0;
	opterr = 0;
}

int
cli_getopt(struct cli_getopt *g, const struct cli *cli)
{
	const char *word;
	char shortopt[3];
	int c;

	c = getopt_long(g->argc, g->argv, g->shortopts, g->longopts, NULL);
	if (c == -1) {
		return -1;
	}
	if (c != ':' && c != '?') {
		g->arg = optarg;
		return c;
	}
	word = optind > 0 && optind <= g->argc ? g->argv[optind - 1] : "?";
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
		(void)cli_usage(cli, "option '%s' needs a value", word);
	} else {
		(void)cli_usage(cli, "unknown option '%s'", word);
	}
	return CLI_GETOPT_ERROR;
}

int
cli_getopt_index(const struct cli_getopt *g)
{
	(void)g;
	return optind;
}

/* ---- output */

/* {"error":{"kind":KIND,"message":MSG}} on stdout. */
static void
print_json_error(const char *kind, const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *e = o != NULL ? json_add_object(o, "error") : NULL;
	char *text = NULL;

	if (e != NULL && json_add_str(e, "kind", kind) == 0 &&
	    json_add_str(e, "message", msg) == 0) {
		text = json_print_compact(o);
	}
	if (text != NULL) {
		printf("%s\n", text);
	} else {
		/* Out of memory: still one valid object (both strings are fixed). */
		printf("{\"error\":{\"kind\":\"out_of_memory\",\"message\":\"out of memory\"}}\n");
	}
	(void)fflush(stdout);
	free(text);
	cJSON_Delete(o);
}

/* "tandem: error: MSG" through the logger: control bytes in outside text become '?'. */
static void error_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
error_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERROR, 0, fmt, ap);
	va_end(ap);
}

int
cli_fail(const struct cli *cli, const struct err *e)
{
	const char *msg = err_msg(e);
	enum err_kind kind = err_failed(e) ? e->kind : ERR_INTERNAL;

	if (msg[0] == '\0') {
		msg = "unknown error";
	}
	error_line("%s", msg);
	if (cli != NULL && cli->json) {
		print_json_error(err_kind_name(kind), msg);
	}
	return err_exit_code(kind);
}

int
cli_failf(const struct cli *cli, enum err_kind kind, const char *fmt, ...)
{
	struct err e = ERR_INIT;
	char msg[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0) {
		msg[0] = '\0';
	}
	va_end(ap);
	err_set(&e, kind, "%s", msg);
	return cli_fail(cli, &e);
}

int
cli_usage(const struct cli *cli, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX], line[ERR_MSG_MAX + 160], hint[160];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0) {
		msg[0] = '\0';
	}
	va_end(ap);
	if (cli != NULL && cli->path[0] != '\0') {
		snprintf(line, sizeof(line), "%s: %s", cli->path, msg);
		snprintf(hint, sizeof(hint), "tandem %s --help", cli->path);
	} else {
		snprintf(line, sizeof(line), "%s", msg);
		snprintf(hint, sizeof(hint), "tandem --help");
	}
	error_line("%s", line);
	fprintf(stderr, "Try '%s'.\n", hint);
	if (cli != NULL && cli->json) {
		print_json_error(err_kind_name(ERR_USAGE), line);
	}
	return CLI_EXIT_USAGE;
}

int
cli_print_json(const struct cli *cli, cJSON *obj)
{
	char *text = obj != NULL ? json_print_compact(obj) : NULL;
	struct err e = ERR_INIT;
	int rc;

	cJSON_Delete(obj);
	if (text == NULL) {
		err_set(&e, ERR_NOMEM, "out of memory");
		return cli_fail(cli, &e);
	}
	printf("%s\n", text);
	free(text);
	rc = cli_flush(cli);
	return rc;
}

void
cli_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_INFO, 0, fmt, ap);
	va_end(ap);
}

int
cli_flush(const struct cli *cli)
{
	struct err e = ERR_INIT;

	if (fflush(stdout) == 0 && !ferror(stdout)) {
		return CLI_EXIT_OK;
	}
	err_sys(&e, "cannot write the result to stdout");
	/* stdout is what failed: the message goes to stderr only. */
	error_line("%s", err_msg(&e));
	(void)cli;
	return CLI_EXIT_FAIL;
}

int
cli_home_check(const struct cli *cli, struct err *e)
{
	char ca[PATH_MAX];
	struct stat st;

	if (cli->home == NULL) {
		return err_set(e, ERR_USAGE, "cannot determine the master home: use --home DIR or set "
					     "TANDEM_HOME");
	}

	if (stat(cli->home, &st) != 0) {
		if (errno == ENOENT) {
			return err_set(e, ERR_NOT_FOUND,
			    "no master home at %s (%s): 'tandem --home %s pki init' creates one, or "
			    "give the right --home / TANDEM_HOME",
			    cli->home, cli->home_source, cli->home);
		}
		return err_sys(e, "master home %s (%s)", cli->home, cli->home_source);
	}
	if (!S_ISDIR(st.st_mode)) {
		return err_set(e, ERR_NOT_FOUND, "master home %s (%s) is not a directory", cli->home,
		    cli->home_source);
	}
	if (pki_path(cli->home, PKI_CA_CRT, ca, sizeof(ca)) != 0) {
		return err_set(e, ERR_USAGE, "master home path %s is too long", cli->home);
	}
	if (stat(ca, &st) != 0) {
		if (errno == ENOENT) {
			return err_set(e, ERR_NOT_FOUND,
			    "%s (%s) is not a master home: it has no %s ('tandem --home %s pki "
			    "init' creates one)",
			    cli->home, cli->home_source, PKI_CA_CRT, cli->home);
		}
		return err_sys(e, "%s", ca);
	}
	return 0;
}
