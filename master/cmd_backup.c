/*
 * `tandem backup` — archive the master's home and restore it (master/backup.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "master/backup.h"
#include "master/cli.h"
#include "pki/seal.h"

#define GROUP "backup"
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

static void
print_result(const char *what, const char *file, const struct backup_result *r)
{
	printf("%s: %s\nencrypted: %s\nfiles: %zu\ndirectories: %zu\nbytes: %llu\n", what, file,
	    r->encrypted ? "yes" : "no", r->files, r->dirs, r->bytes);
}

static int
backup_cmd(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv, int create)
{
	static const struct option longopts[] = {
		{ "passphrase-fd", required_argument, NULL, 'f' },
		{ "passphrase-env", required_argument, NULL, 'e' },
		{ "no-encrypt", no_argument, NULL, 'n' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pfd = NULL, *penv = NULL;
	int plain = 0;
	long long iterations = 0;
	struct backup_result res;
	struct err e = ERR_INIT;
	char *pass = NULL;
	int rc;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			pfd = optarg;
			break;
		case 'e':
			penv = optarg;
			break;
		case 'n':
			plain = 1;
			break;
		case 'i':
			if (!create || parse_ll(optarg, SEAL_MIN_ITERATIONS, SEAL_MAX_ITERATIONS,
					   &iterations) != 0) {
				return cli_usage_error(GROUP, self, "--iterations: %d..%d (create only)",
				    SEAL_MIN_ITERATIONS, SEAL_MAX_ITERATIONS);
			}
			break;
		case 'h':
			return cli_help(GROUP, self);
		default:
			return cli_getopt_error(GROUP, self, c, argv, optind);
		}
	}
	if (cli_one_operand(GROUP, self, argc, argv, optind, "FILE") != 0) {
		return CLI_EXIT_USAGE;
	}
	if ((pfd != NULL) + (penv != NULL) + plain > 1) {
		return cli_usage_error(GROUP, self,
		    "give one of --passphrase-fd, --passphrase-env%s", create ? ", --no-encrypt" : "");
	}
	if (create && pfd == NULL && penv == NULL && !plain) {
		return cli_usage_error(GROUP, self,
		    "the archive holds the CA key: give --passphrase-fd N or --passphrase-env VAR "
		    "(or --no-encrypt to write it in clear)");
	}
	if (!create && plain) {
		return cli_usage_error(GROUP, self, "--no-encrypt is for create");
	}
	if (pfd != NULL || penv != NULL) {
		pass = read_passphrase(pfd, penv, &e);
		if (pass == NULL) {
			log_warnx("backup %s: %s", self->name, err_msg(&e));
			return err_exit_code(e.kind);
		}
	}
	if (create) {
		if (plain) {
			log_warnx("writing %s WITHOUT encryption: it holds the CA private key in clear; "
				  "keep it 0600 and offline",
			    argv[optind]);
		}
		rc = backup_create(cli->home, argv[optind], pass, pass != NULL ? strlen(pass) : 0,
		    (unsigned)iterations, &res, &e);
	} else {
		rc = backup_restore(cli->home, argv[optind], pass, pass != NULL ? strlen(pass) : 0,
		    &res, &e);
	}
	secure_free(pass, PASS_MAX + 1);
	if (rc != 0) {
		log_warnx("backup %s: %s", self->name, err_msg(&e));
		return err_exit_code(e.kind);
	}
	if (create) {
		log_info("backed up %s to %s", cli->home, argv[optind]);
		print_result("archive", argv[optind], &res);
	} else {
		log_info("restored %s from %s", cli->home, argv[optind]);
		print_result("home", cli->home, &res);
	}
	if (fflush(stdout) != 0) {
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

static int
backup_cmd_create(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	return backup_cmd(cli, self, argc, argv, 1);
}

static int
backup_cmd_restore(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	return backup_cmd(cli, self, argc, argv, 0);
}

static const struct cli_cmd backup_cmds[] = {
	{ "create", "archive the master's home (CA, identity, registry, everything under HOME)",
	    " FILE (--passphrase-fd N | --passphrase-env VAR | --no-encrypt)\n"
	    "                     [--iterations N]\n"
	    "\n"
	    "Writes FILE (0600; it must not exist and must be outside HOME): every file\n"
	    "under HOME and a consistent snapshot of the registry, as a tar.gz sealed with\n"
	    "the passphrase (AES-256-GCM, key from PBKDF2-HMAC-SHA256).\n"
	    "\n"
	    "  --passphrase-fd N    read the passphrase from file descriptor N (up to\n"
	    "                       the first newline), e.g. 3<passfile\n"
	    "  --passphrase-env VAR take it from environment variable VAR\n"
	    "  --no-encrypt         write a plain tar.gz (holds the CA key in clear)\n"
	    "  --iterations N       PBKDF2 iterations (default 300000)\n"
	    "  -h, --help           this help\n",
	    backup_cmd_create },
	{ "restore", "restore the master's home from an archive",
	    " FILE [--passphrase-fd N | --passphrase-env VAR]\n"
	    "\n"
	    "Unpacks FILE into HOME, which must not exist or be empty. Nothing is put in\n"
	    "place until the whole archive is authenticated and the result holds a\n"
	    "usable CA and registry.\n"
	    "\n"
	    "  --passphrase-fd N    read the passphrase from file descriptor N\n"
	    "  --passphrase-env VAR take it from environment variable VAR\n"
	    "  -h, --help           this help\n",
	    backup_cmd_restore },
};

const struct cli_group cli_group_backup = {
	"backup",
	"archive and restore the master's home: create, restore",
	backup_cmds,
	ARRAY_LEN(backup_cmds),
	NULL,
};
