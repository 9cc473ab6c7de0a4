/*
 * `tandem backup` — archive the master's home and restore it (master/backup.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "master/backup.h"
#include "master/cli.h"
#include "pki/seal.h"

#define PASS_MAX 1024

/*
 * The passphrase from file descriptor FD (up to EOF or the first newline)
 * or from environment variable ENV. Returns a malloc'd string (wipe with
 * secure_free(p, PASS_MAX + 1)) or NULL with E.
 */
static char *
read_passphrase(const char *fd_arg, const char *env, struct err *e)
{
	char *p = calloc(1, PASS_MAX + 1);
	size_t len = 0;

	if (p == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	if (env != NULL) {
		const char *v = getenv(env);
		if (v == NULL || strlcpy_chk(p, v, PASS_MAX + 1) != 0) {
			err_set(e, ERR_USAGE, "$%s is %s", env, v == NULL ? "not set" : "too long");
			secure_free(p, PASS_MAX + 1);
			return NULL;
		}
		return p;
	}
	{
		long long fd;
		if (parse_ll(fd_arg, 0, 1023, &fd) != 0) {
			err_set(e, ERR_USAGE, "--passphrase-fd: '%s' is not a file descriptor", fd_arg);
			secure_free(p, PASS_MAX + 1);
			return NULL;
		}
		while (len < PASS_MAX) {
			ssize_t n = read((int)fd, p + len, 1);
			if (n < 0 && errno == EINTR) {
				continue;
			}
			if (n < 0) {
				err_sys(e, "reading the passphrase from fd %lld", fd);
				secure_free(p, PASS_MAX + 1);
				return NULL;
			}
			if (n == 0 || p[len] == '\n') {
				break;
			}
			len++;
		}
		p[len] = '\0';
		if (len > 0 && p[len - 1] == '\r') {
			p[len - 1] = '\0';
		}
	}
	return p;
}

/* The result: "KEY: PATH" and the counts as lines, or one JSON object. */
static int
print_result(const struct cli *cli, const char *what, const char *file,
    const struct backup_result *r)
{
	cJSON *o;

	if (!cli->json) {
		printf("%s: %s\nencrypted: %s\nfiles: %zu\ndirectories: %zu\nbytes: %llu\n", what,
		    file, r->encrypted ? "yes" : "no", r->files, r->dirs, r->bytes);
		return cli_flush(cli);
	}
	o = cJSON_CreateObject();
	if (o != NULL &&
	    (json_add_str(o, what, file) != 0 || json_add_bool(o, "encrypted", r->encrypted) != 0 ||
		json_add_int(o, "files", (long long)r->files) != 0 ||
		json_add_int(o, "directories", (long long)r->dirs) != 0 ||
		json_add_int(o, "bytes", (long long)r->bytes) != 0)) {
		cJSON_Delete(o);
		o = NULL;
	}
	return cli_print_json(cli, o);
}

enum {
	BACKUP_OPT_PASS_FD = 'f',
	BACKUP_OPT_PASS_ENV = 'e',
	BACKUP_OPT_NO_ENCRYPT = 'n',
	BACKUP_OPT_ITERATIONS = 'i',
};

static const struct cli_opt backup_create_opts[] = {
	{ "passphrase-fd", BACKUP_OPT_PASS_FD, 0, "N",
	    "read the passphrase from file descriptor N (up to\n"
	    "the first newline), e.g. 3<passfile" },
	{ "passphrase-env", BACKUP_OPT_PASS_ENV, 0, "VAR",
	    "take the passphrase from environment variable VAR" },
	{ "no-encrypt", BACKUP_OPT_NO_ENCRYPT, 0, NULL,
	    "write a plain tar.gz (holds the CA key in clear)" },
	{ "iterations", BACKUP_OPT_ITERATIONS, 0, "N", "PBKDF2 iterations (default 300000)" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct cli_opt backup_restore_opts[] = {
	{ "passphrase-fd", BACKUP_OPT_PASS_FD, 0, "N",
	    "read the passphrase from file descriptor N" },
	{ "passphrase-env", BACKUP_OPT_PASS_ENV, 0, "VAR",
	    "take the passphrase from environment variable VAR" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
backup_cmd(struct cli *cli, int argc, char **argv, int create)
{
	struct cli_getopt g;
	const char *pfd = NULL, *penv = NULL, *file;
	int plain = 0;
	long long iterations = 0;
	struct backup_result res;
	struct err e = ERR_INIT;
	char *pass = NULL;
	int rc;
	int c;

	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case BACKUP_OPT_PASS_FD:
			pfd = g.arg;
			break;
		case BACKUP_OPT_PASS_ENV:
			penv = g.arg;
			break;
		case BACKUP_OPT_NO_ENCRYPT:
			plain = 1;
			break;
		case BACKUP_OPT_ITERATIONS:
			if (parse_ll(g.arg, SEAL_MIN_ITERATIONS, SEAL_MAX_ITERATIONS, &iterations) !=
			    0) {
				return cli_usage(cli, "--iterations '%s': expected %d..%d", g.arg,
				    SEAL_MIN_ITERATIONS, SEAL_MAX_ITERATIONS);
			}
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	file = argv[cli_getopt_index(&g)];
	if ((pfd != NULL) + (penv != NULL) + plain > 1) {
		return cli_usage(cli, "give one of --passphrase-fd, --passphrase-env%s",
		    create ? ", --no-encrypt" : "");
	}
	if (create && pfd == NULL && penv == NULL && !plain) {
		return cli_usage(cli,
		    "the archive holds the CA key: give --passphrase-fd N or --passphrase-env VAR "
		    "(or --no-encrypt to write it in clear)");
	}
	if (cli->home == NULL) {
		err_set(&e, ERR_USAGE, "cannot determine the master home: use --home DIR or set "
				       "TANDEM_HOME");
		return cli_fail(cli, &e);
	}
	if (pfd != NULL || penv != NULL) {
		pass = read_passphrase(pfd, penv, &e);
		if (pass == NULL) {
			return cli_fail(cli, &e);
		}
	}
	if (create) {
		if (plain) {
			log_warnx("writing %s WITHOUT encryption: it holds the CA private key in clear; "
				  "keep it 0600 and offline",
			    file);
		}
		rc = backup_create(cli->home, file, pass, pass != NULL ? strlen(pass) : 0,
		    (unsigned)iterations, &res, &e);
	} else {
		rc = backup_restore(cli->home, file, pass, pass != NULL ? strlen(pass) : 0, &res, &e);
	}
	secure_free(pass, PASS_MAX + 1);
	if (rc != 0) {
		return cli_fail(cli, &e);
	}
	if (create) {
		cli_note("backed up %s to %s", cli->home, file);
		return print_result(cli, "archive", file, &res);
	}
	cli_note("restored %s from %s", cli->home, file);
	return print_result(cli, "home", cli->home, &res);
}

static int
backup_cmd_create(struct cli *cli, int argc, char **argv)
{
	return backup_cmd(cli, argc, argv, 1);
}

static int
backup_cmd_restore(struct cli *cli, int argc, char **argv)
{
	return backup_cmd(cli, argc, argv, 0);
}

static const struct cli_cmd backup_cmds[] = {
	{
	    .name = "create",
	    .summary = "archive the master's home (CA, identity, registry, everything)",
	    .synopsis = "FILE (--passphrase-fd N | --passphrase-env VAR | --no-encrypt)\n"
			"FILE ... [--iterations N]",
	    .operand = "FILE",
	    .description =
		"Writes FILE (0600; it must not exist and must be outside HOME): every file\n"
		"under HOME and a consistent snapshot of the registry, as a tar.gz sealed with\n"
		"the passphrase (AES-256-GCM, key from PBKDF2-HMAC-SHA256). The passphrase is\n"
		"required unless --no-encrypt asks for a plain archive (with a warning).",
	    .opts = backup_create_opts,
	    .example = "tandem backup create /media/usb/master.backup --passphrase-fd 3 "
		       "3<passfile",
	    .home = CLI_HOME_EXISTING,
	    .run = backup_cmd_create,
	},
	{
	    .name = "restore",
	    .summary = "restore the master's home from an archive",
	    .synopsis = "FILE [--passphrase-fd N | --passphrase-env VAR]",
	    .operand = "FILE",
	    .description =
		"Unpacks FILE into HOME, which must not exist or be empty. Nothing is put in\n"
		"place until the whole archive is authenticated and the result holds a\n"
		"usable CA and registry.",
	    .opts = backup_restore_opts,
	    .exit_status = "  0  restored\n"
			   "  1  failed: unreadable, wrong passphrase, tampered or hostile archive,\n"
			   "     or HOME not empty (HOME is left as it was)\n"
			   "  2  usage error: the command line is wrong, nothing was done\n",
	    .example = "tandem --home ~/.tandem backup restore master.backup --passphrase-env PW",
	    /* The home must not exist yet: backup_restore checks it. */
	    .home = CLI_HOME_NONE,
	    .run = backup_cmd_restore,
	},
};

const struct cli_group cli_group_backup = {
	.name = "backup",
	.summary = "archive and restore the master's home: create, restore",
	.cmds = backup_cmds,
	.n_cmds = ARRAY_LEN(backup_cmds),
};
