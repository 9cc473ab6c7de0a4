/*
 * `tandem release` — release tarballs (master/release_pack.c does the work).
 * Exit codes: 0 packed, 1 refused or failed, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "master/cli.h"
#include "master/release_pack.h"

#define GROUP "release"

static int
print_json(const struct release_pack_result *r)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	int rc = CLI_EXIT_FAIL;

	if (o == NULL || json_add_str(o, "path", r->path) != 0 ||
	    json_add_str(o, "sha256", r->sha256) != 0 ||
	    json_add_int(o, "size", (long long)r->size) != 0 ||
	    json_add_str(o, "name", r->name) != 0 ||
	    json_add_str(o, "version", r->version) != 0 ||
	    json_add_int(o, "entries", (long long)r->entries) != 0) {
		goto out;
	}
	text = json_print_compact(o);
	if (text == NULL || printf("%s\n", text) < 0) {
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	if (rc != CLI_EXIT_OK) {
		log_warnx("release pack: cannot print the result");
	}
	free(text);
	cJSON_Delete(o);
	return rc;
}

static int
release_cmd_pack(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "version", required_argument, NULL, 'V' },
		{ "exclude", required_argument, NULL, 'x' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct release_pack_opts o;
	struct release_pack_result r;
	const char **excludes = NULL;
	char err[8192];
	int json = 0, c, rc = CLI_EXIT_USAGE;

	(void)cli; /* packing needs no master state */
	memset(&o, 0, sizeof(o));
	/* argc bounds the number of --exclude options. */
	excludes = calloc((size_t)argc + 1, sizeof(*excludes));
	if (excludes == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o.output = optarg;
			break;
		case 'V':
			o.version = optarg;
			break;
		case 'x':
			if (*optarg == '\0') {
				rc = cli_usage_error(GROUP, self, "--exclude needs a non-empty glob");
				goto out;
			}
			excludes[o.n_excludes++] = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			rc = cli_help(GROUP, self);
			goto out;
		default:
			rc = cli_getopt_error(GROUP, self, c, argv, optind);
			goto out;
		}
	}
	if (argc - optind != 1) {
		rc = cli_usage_error(GROUP, self, "%s", argc - optind == 0 ?
		    "the release directory DIR is required" : "exactly one DIR expected");
		goto out;
	}
	o.dir = argv[optind];
	o.excludes = excludes;
	if (release_pack(&o, &r, err, sizeof(err)) != 0) {
		log_warnx("release pack: %s", err);
		rc = CLI_EXIT_FAIL;
		goto out;
	}
	if (json) {
		rc = print_json(&r);
	} else {
		rc = printf("%s  %s\n", r.sha256, r.path) < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	}
	if (fflush(stdout) != 0) {
		rc = CLI_EXIT_FAIL;
	}
out:
	free(excludes);
	return rc;
}

static const struct cli_cmd release_cmds[] = {
	{ "pack", "pack a release directory into a deterministic tarball",
	    " DIR [-o FILE] [--version V] [--exclude GLOB]... [--json]\n"
	    "\n"
	    "Packs the release tree DIR into a deterministic gzip tarball (entries sorted,\n"
	    "mtime 0, owner 0:0, modes 0755/0644, no gzip name or time): the same tree\n"
	    "always gives the same bytes and sha256. The tarball carries manifest.json:\n"
	    "DIR's own (only its version replaced by --version), or a generated one with\n"
	    "entrypoint bin/tandem-agent (and updater_entrypoint when bin/tandem-updater\n"
	    "exists). Refused, naming each file: private keys (*.key, id_rsa*, id_dsa*,\n"
	    "id_ecdsa*, id_ed25519*, *.pem with a private key, any file holding a PEM\n"
	    "private key), .env files, devices, FIFOs, sockets, symlinks that are\n"
	    "absolute, leave DIR or dangle, a missing or non-executable entrypoint.\n"
	    "\n"
	    "  -o, --output FILE   tarball to write, outside DIR (default:\n"
	    "                      NAME-VERSION.tar.gz in the working directory)\n"
	    "  --version V         release version for manifest.json (default: the\n"
	    "                      manifest's, else " RELEASE_DEFAULT_VERSION ")\n"
	    "  --exclude GLOB      leave out entries whose base name matches GLOB, or whose\n"
	    "                      path matches when GLOB has a '/'; repeatable\n"
	    "  --json              print {path, sha256, size, name, version, entries}\n"
	    "  -h, --help          this help\n"
	    "\n"
	    "Prints \"SHA256  PATH\". Exit status: 0 packed, 1 refused or failed, 2 usage.\n",
	    release_cmd_pack },
};

const struct cli_group cli_group_release = {
	.name = "release",
	.summary = "release tarballs: pack",
	.cmds = release_cmds,
	.n_cmds = ARRAY_LEN(release_cmds),
};
