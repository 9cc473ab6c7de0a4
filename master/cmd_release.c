/*
 * `tandem release` — release tarballs and their signatures: pack
 * (master/release_pack.c), keygen, sign, verify (pki/sign.c,
 * master/release_sign.c) and the keyring (master/keystore.c). Each command's
 * options, help, exit status and example are in the tables at the end
 * (master/cli.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "master/cli.h"
#include "master/keystore.h"
#include "master/release_pack.h"
#include "master/release_sign.h"
#include "pki/sign.h"

static int
print_json(const struct cli *cli, const struct release_pack_result *r)
{
	cJSON *o = cJSON_CreateObject();
	struct err e = ERR_INIT;
	char *text = NULL;
	int rc;

	if (o == NULL || json_add_str(o, "path", r->path) != 0 ||
	    json_add_str(o, "sha256", r->sha256) != 0 ||
	    json_add_int(o, "size", (long long)r->size) != 0 ||
	    json_add_str(o, "name", r->name) != 0 ||
	    json_add_str(o, "version", r->version) != 0 ||
	    json_add_int(o, "entries", (long long)r->entries) != 0 ||
	    (text = json_print_compact(o)) == NULL) {
		cJSON_Delete(o);
		err_set(&e, ERR_NOMEM, "out of memory");
		return cli_fail(cli, &e);
	}
	printf("%s\n", text);
	rc = cli_flush(cli);
	free(text);
	cJSON_Delete(o);
	return rc;
}

enum {
	RELEASE_OPT_OUTPUT = 'o',
	RELEASE_OPT_VERSION = 'V',
	RELEASE_OPT_READINESS = 'R',
	RELEASE_OPT_EXCLUDE = 'x',
};

static const struct cli_opt release_pack_opts[] = {
	{ "output", RELEASE_OPT_OUTPUT, 1, "FILE",
	    "tarball to write, outside DIR (default:\n"
	    "NAME-VERSION.tar.gz in the working directory)" },
	{ "version", RELEASE_OPT_VERSION, 0, "V",
	    "release version for manifest.json (default: the\n"
	    "manifest's, else " RELEASE_DEFAULT_VERSION ")" },
	{ "readiness", RELEASE_OPT_READINESS, 0, "MODE",
	    "how the entrypoint says it serves, for the updater:\n"
	    RELEASE_READINESS_FD " (it takes --ready-fd N, as tandem-agent\n"
	    "does); default: the manifest's, else none (the\n"
	    "updater's HTTP probe alone)" },
	{ "exclude", RELEASE_OPT_EXCLUDE, 0, "GLOB",
	    "leave out entries whose base name matches GLOB, or\n"
	    "whose path matches when GLOB has a '/'; repeatable" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
release_cmd_pack(struct cli *cli, int argc, char **argv)
{
	struct release_pack_opts o;
	struct release_pack_result r;
	struct cli_getopt g;
	struct release_pack_refusals refused;
	struct err e = ERR_INIT;
	const char **excludes = NULL;
	int c, rc = CLI_EXIT_USAGE;

	memset(&o, 0, sizeof(o));
	/* argc bounds the number of --exclude options. */
	excludes = calloc((size_t)argc + 1, sizeof(*excludes));
	if (excludes == NULL) {
		err_set(&e, ERR_NOMEM, "out of memory");
		return cli_fail(cli, &e);
	}
	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case RELEASE_OPT_OUTPUT:
			o.output = g.arg;
			break;
		case RELEASE_OPT_VERSION:
			o.version = g.arg;
			break;
		case RELEASE_OPT_READINESS:
			if (!release_readiness_valid(g.arg)) {
				rc = cli_usage(cli, "--readiness '%s': use 1-%d of [a-z0-9-]", g.arg,
				    RELEASE_READINESS_MAX);
				goto out;
			}
			o.readiness = g.arg;
			break;
		case RELEASE_OPT_EXCLUDE:
			if (*g.arg == '\0') {
				rc = cli_usage(cli, "--exclude needs a non-empty glob");
				goto out;
			}
			excludes[o.n_excludes++] = g.arg;
			break;
		default:
			goto out;
		}
	}
	o.dir = argv[cli_getopt_index(&g)];
	o.excludes = excludes;
	if (release_pack(&o, &r, &refused, &e) != 0) {
		rc = cli_fail(cli, &e);
		/* The message names the first refusals; the rest, one a line. */
		for (size_t i = refused.named; i < refused.n; i++) {
			fprintf(stderr, "  %s\n", refused.v[i]);
		}
		release_pack_refusals_free(&refused);
		goto out;
	}
	if (cli->json) {
		rc = print_json(cli, &r);
	} else {
		printf("%s  %s\n", r.sha256, r.path);
		rc = cli_flush(cli);
	}
out:
	free(excludes);
	return rc;
}

/* ---- signing ---------------------------------------------------------- */

/* A security version option: 0..SIGN_SV_MAX. */
static int
release_sv_arg(const struct cli *cli, const char *opt, const char *s, int64_t *out)
{
	long long v;

	if (parse_ll(s, 0, SIGN_SV_MAX, &v) != 0) {
		return cli_usage(cli, "%s: a whole number from 0 to %lld, not '%s'", opt, SIGN_SV_MAX,
		    s);
	}
	*out = v;
	return 0;
}

/* --expires: "Nd" days from now or a date (YYYY-MM-DD[THH:MM:SSZ]), as ISO-8601 UTC. */
static int
release_expires_arg(const struct cli *cli, const char *s, char out[32])
{
	size_t n = strlen(s);
	long long days;
	time_t t;

	if (n >= 2 && s[n - 1] == 'd') {
		char num[16];

		if (n - 1 >= sizeof(num)) {
			return cli_usage(cli, "--expires: too many days");
		}
		memcpy(num, s, n - 1);
		num[n - 1] = '\0';
		if (parse_ll(num, 1, 36500, &days) != 0) {
			return cli_usage(cli, "--expires: 1d to 36500d, not '%s'", s);
		}
		t = time(NULL) + (time_t)days * 86400;
	} else if (iso8601_parse(s, &t) != 0) {
		return cli_usage(cli, "--expires: Nd or YYYY-MM-DD[THH:MM:SSZ], not '%s'",
		    s);
	}
	iso8601_utc(t, out, 32);
	return 0;
}

/* Private keys named on the command line. */
struct release_keys {
	struct sign_key *k[SIGN_MAX_SIGS];
	size_t n;
};

static int
release_keys_add(struct release_keys *ks, const char *path, int private, struct err *e)
{
	struct sign_key *k = NULL;

	if (ks->n >= SIGN_MAX_SIGS) {
		return err_set(e, ERR_USAGE, "at most %d keys", SIGN_MAX_SIGS);
	}
	if ((private ? sign_key_load_private(path, &k, e) :
	    sign_key_load_public(path, &k, e)) != 0) {
		return -1;
	}
	ks->k[ks->n++] = k;
	return 0;
}

static void
release_keys_free(struct release_keys *ks)
{
	for (size_t i = 0; i < ks->n; i++) {
		sign_key_free(ks->k[i]);
	}
	ks->n = 0;
}

static const char *
release_kinds_text(unsigned kinds)
{
	switch (kinds) {
	case SIGN_KIND_AGENT:
		return "agent";
	case SIGN_KIND_UPDATER:
		return "updater";
	default:
		return "agent, updater";
	}
}

/* The statement as JSON (the fields a person or script wants to see). */
static cJSON *
release_statement_json(const struct sign_statement *st)
{
	cJSON *o = cJSON_CreateObject(), *kinds;

	if (o == NULL || json_add_str(o, "name", st->name) != 0 ||
	    json_add_str(o, "version", st->version) != 0 ||
	    json_add_str(o, "compatible", st->compatible) != 0 ||
	    json_add_str(o, "sha256", st->sha256) != 0 ||
	    json_add_str(o, "manifest_sha256", st->manifest_sha256[0] != '\0' ?
	    st->manifest_sha256 : NULL) != 0 ||
	    json_add_int(o, "size", st->size) != 0 ||
	    json_add_int(o, "security_version", st->security_version) != 0 ||
	    json_add_int(o, "min_security_version", st->min_security_version) != 0 ||
	    (kinds = json_add_array(o, "kinds")) == NULL ||
	    ((st->kinds & SIGN_KIND_AGENT) != 0 && json_array_add_str(kinds, "agent") != 0) ||
	    ((st->kinds & SIGN_KIND_UPDATER) != 0 && json_array_add_str(kinds, "updater") != 0) ||
	    json_add_str(o, "created_at", st->created_at) != 0 ||
	    json_add_str(o, "expires_at", st->expires_at[0] != '\0' ? st->expires_at : NULL) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void
release_statement_print(const struct sign_statement *st)
{
	printf("  release     %s %s (%s)\n", st->name, st->version, release_kinds_text(st->kinds));
	printf("  sha256      %s (%lld bytes)\n", st->sha256, (long long)st->size);
	printf("  files.json  %s\n", st->manifest_sha256[0] != '\0' ? st->manifest_sha256 :
	    "(none: the release cannot be installed from a planned push)");
	printf("  security    version %lld, minimum %lld\n", (long long)st->security_version,
	    (long long)st->min_security_version);
	printf("  compatible  %s\n", st->compatible);
	printf("  created     %s%s%s\n", st->created_at, st->expires_at[0] != '\0' ?
	    ", expires " : "", st->expires_at);
}

enum {
	REL_OPT_OUT = 'o',
	REL_OPT_NAME = 'n',
	REL_OPT_FORCE = 'f',
	REL_OPT_KEY = 'k',
	REL_OPT_SV = 's',
	REL_OPT_MIN_SV = 'm',
	REL_OPT_COMPATIBLE = 'c',
	REL_OPT_EXPIRES = 'x',
	REL_OPT_COSIGN = 'C',
	REL_OPT_TSIG = 't',
	REL_OPT_KEYRING = 'K',
	REL_OPT_FLOOR = 'F',
	REL_OPT_KIND = 'i',
};

static const struct cli_opt release_keygen_opts[] = {
	{ "out", REL_OPT_OUT, 1, "DIR", "where to write (required; created 0700 when missing)" },
	{ "name", REL_OPT_NAME, 0, "NAME", "file names (default: release)" },
	{ "force", REL_OPT_FORCE, 0, NULL, "replace existing files" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
release_cmd_keygen(struct cli *cli, int argc, char **argv)
{
	const char *dir = NULL, *name = "release";
	char kp[PATH_MAX], pp[PATH_MAX];
	struct sign_key *k = NULL;
	struct cli_getopt g;
	struct err e = ERR_INIT;
	int force = 0, c, rc = CLI_EXIT_USAGE;

	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case REL_OPT_OUT:
			dir = g.arg;
			break;
		case REL_OPT_NAME:
			name = g.arg;
			break;
		case REL_OPT_FORCE:
			force = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (dir == NULL || *dir == '\0') {
		return cli_usage(cli, "--out DIR is required");
	}
	if (!release_ident_valid(name)) {
		return cli_usage(cli, "--name: 1-%d characters of A-Z a-z 0-9 . _ + ~ -",
		    SIGN_IDENT_MAX);
	}
	if (snprintf(kp, sizeof(kp), "%s/%s.key", dir, name) >= (int)sizeof(kp) ||
	    snprintf(pp, sizeof(pp), "%s/%s.pub", dir, name) >= (int)sizeof(pp)) {
		return cli_usage(cli, "--out: path too long");
	}
	if (fs_mkdir_p(dir, 0700) != 0) {
		err_sys(&e, "create %s", dir);
		return cli_fail(cli, &e);
	}
	if (sign_key_generate(&k, &e) != 0 || sign_key_write(k, kp, pp, force, &e) != 0) {
		rc = cli_fail(cli, &e);
		goto out;
	}
	if (cli->json) {
		cJSON *o = cJSON_CreateObject();
		if (o == NULL || json_add_str(o, "keyid", sign_key_id(k)) != 0 ||
		    json_add_str(o, "key", kp) != 0 || json_add_str(o, "pub", pp) != 0) {
			cJSON_Delete(o);
			o = NULL;
		}
		rc = cli_print_json(cli, o);
	} else {
		printf("%s  %s\n", sign_key_id(k), pp);
		rc = cli_flush(cli);
	}
out:
	sign_key_free(k);
	return rc;
}

static const struct cli_opt release_sign_opts[] = {
	{ "key", REL_OPT_KEY, 1, "KEY", "private release key, repeatable (required)" },
	{ "security-version", REL_OPT_SV, 0, "N",
	    "this release's security version (0..2147483647;\nrequired unless --cosign)" },
	{ "min-security-version", REL_OPT_MIN_SV, 0, "M",
	    "once installed, refuse releases below M\n(default 0: the floor stays)" },
	{ "compatible", REL_OPT_COMPATIBLE, 0, "C",
	    "the hosts' compatible string (default " SIGN_DEFAULT_COMPATIBLE ")" },
	{ "expires", REL_OPT_EXPIRES, 0, "Nd|DATE", "refuse the release after that (default: never)" },
	{ "out", REL_OPT_OUT, 1, "FILE", "signature file (default FILE.tsig)" },
	{ "cosign", REL_OPT_COSIGN, 0, NULL, "add the keys' signatures to the existing file" },
	{ "force", REL_OPT_FORCE, 0, NULL, "replace an existing signature file" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
release_cmd_sign(struct cli *cli, int argc, char **argv)
{
	struct release_sign_opts o;
	struct release_sign_result r;
	struct release_keys ks = { .n = 0 };
	struct cli_getopt g;
	const char *keys[SIGN_MAX_SIGS];
	char expires[32];
	struct err e = ERR_INIT;
	size_t nkeys = 0;
	int have_sv = 0, have_min = 0, c, rc = CLI_EXIT_USAGE;

	memset(&o, 0, sizeof(o));
	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case REL_OPT_KEY:
			if (nkeys >= SIGN_MAX_SIGS) {
				return cli_usage(cli, "at most %d --key", SIGN_MAX_SIGS);
			}
			keys[nkeys++] = g.arg;
			break;
		case REL_OPT_SV:
			if (release_sv_arg(cli, "--security-version", g.arg,
			    &o.security_version) != 0) {
				return CLI_EXIT_USAGE;
			}
			have_sv = 1;
			break;
		case REL_OPT_MIN_SV:
			if (release_sv_arg(cli, "--min-security-version", g.arg,
			    &o.min_security_version) != 0) {
				return CLI_EXIT_USAGE;
			}
			have_min = 1;
			break;
		case REL_OPT_COMPATIBLE:
			o.compatible = g.arg;
			break;
		case REL_OPT_EXPIRES:
			if (release_expires_arg(cli, g.arg, expires) != 0) {
				return CLI_EXIT_USAGE;
			}
			o.expires_at = expires;
			break;
		case REL_OPT_OUT:
			o.out = g.arg;
			break;
		case REL_OPT_COSIGN:
			o.cosign = 1;
			break;
		case REL_OPT_FORCE:
			o.force = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	o.file = argv[cli_getopt_index(&g)];	o.file = argv[optind];
	if (nkeys == 0) {
		return cli_usage(cli, "--key KEY is required");
	}
	if (o.cosign && (have_sv || have_min || o.compatible != NULL || o.expires_at != NULL ||
	    o.force)) {
		return cli_usage(cli, "--cosign keeps the signed statement: "
		    "no --security-version, --min-security-version, --compatible, --expires "
		    "or --force");
	}
	if (!o.cosign && !have_sv) {
		return cli_usage(cli, "--security-version N is required");
	}
	if (o.min_security_version > o.security_version) {
		return cli_usage(cli, "--min-security-version is above "
		    "--security-version");
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (release_keys_add(&ks, keys[i], 1, &e) != 0) {
			rc = cli_fail(cli, &e);
			goto out;
		}
	}
	o.keys = ks.k;
	o.nkeys = ks.n;
	if (release_sign(&o, &r, &e) != 0) {
		rc = cli_fail(cli, &e);
		goto out;
	}
	if (cli->json) {
		cJSON *j = cJSON_CreateObject(), *st = release_statement_json(&r.st), *ids = NULL;
		int bad = j == NULL || json_add_str(j, "path", r.path) != 0 ||
		    json_add_item(j, "statement", st) != 0 ||
		    (ids = json_add_array(j, "signed_by")) == NULL;

		for (size_t i = 0; !bad && i < r.nsigs; i++) {
			bad = json_array_add_str(ids, r.keyids[i]) != 0;
		}
		if (bad) {
			cJSON_Delete(j);
			j = NULL;
		}
		rc = cli_print_json(cli, j);
	} else {
		printf("%s: %d signature%s\n", r.path, (int)r.nsigs, r.nsigs == 1 ? "" : "s");
		release_statement_print(&r.st);
		for (size_t i = 0; i < r.nsigs; i++) {
			printf("  signed by   %s\n", r.keyids[i]);
		}
		rc = cli_flush(cli);
	}
out:
	release_keys_free(&ks);
	return rc;
}

/*
 * The keyring to check against: FILE (--keyring), else the master's
 * current one. Returns 0, or the exit code after reporting.
 */
static int
release_keyring_for(const struct cli *cli, const char *file, struct sign_keyring *kr)
{
	struct err e = ERR_INIT;
	int have;

	if (file != NULL) {
		return sign_keyring_read(file, 0, kr, &e) == 0 ? 0 : cli_fail(cli, &e);
	}
	if (cli_home_check(cli, &e) != 0) {
		return cli_fail(cli, &e);
	}
	have = keystore_current(cli->home, kr, &e);
	if (have < 0) {
		return cli_fail(cli, &e);
	}
	if (have == 0) {
		err_set(&e, ERR_USAGE, "no keyring: the master at %s has none (tandem release keyring "
		    "init); give one with --keyring FILE", cli->home);
		return cli_fail(cli, &e);
	}
	return 0;
}

static const struct cli_opt release_verify_opts[] = {
	{ "tsig", REL_OPT_TSIG, 0, "FILE", "the signature (default FILE.tsig)" },
	{ "keyring", REL_OPT_KEYRING, 0, "FILE",
	    "the keyring to check against (default: the\nmaster's current one, read from the home)" },
	{ "compatible", REL_OPT_COMPATIBLE, 0, "C", "the host's compatible string to match" },
	{ "floor", REL_OPT_FLOOR, 0, "N", "a security floor to check against" },
	{ "kind", REL_OPT_KIND, 0, "agent|updater", "the kind of install to check for" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
release_cmd_verify(struct cli *cli, int argc, char **argv)
{
	const char *tsig = NULL, *keyring = NULL, *file;
	struct release_sign_info info;
	struct sign_keyring kr;
	struct sign_verdict v;
	struct sign_want w;
	struct cli_getopt g;
	struct err e = ERR_INIT;
	char tpath[PATH_MAX], *buf = NULL;
	size_t len = 0;
	int c, rc = CLI_EXIT_USAGE, have;

	memset(&w, 0, sizeof(w));
	w.size = -1;
	sign_keyring_init(&kr);
	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case REL_OPT_TSIG:
			tsig = g.arg;
			break;
		case REL_OPT_KEYRING:
			keyring = g.arg;
			break;
		case REL_OPT_COMPATIBLE:
			w.compatible = g.arg;
			break;
		case REL_OPT_FLOOR:
			if (release_sv_arg(cli, "--floor", g.arg, &w.floor) != 0) {
				return CLI_EXIT_USAGE;
			}
			break;
		case REL_OPT_KIND:
			if (strcmp(g.arg, "agent") == 0) {
				w.kind = SIGN_KIND_AGENT;
			} else if (strcmp(g.arg, "updater") == 0) {
				w.kind = SIGN_KIND_UPDATER;
			} else {
				return cli_usage(cli, "--kind: agent or updater");
			}
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	file = argv[cli_getopt_index(&g)];	file = argv[optind];
	if (tsig == NULL) {
		if (release_sign_tsig_path(file, tpath, sizeof(tpath)) != 0) {
			return cli_usage(cli, "path too long");
		}
		tsig = tpath;
	}
	if ((rc = release_keyring_for(cli, keyring, &kr)) != 0) {
		goto out;
	}
	have = release_sign_read_tsig(tsig, &buf, &len, &e);
	if (have == 0) {
		err_set(&e, ERR_SIGNATURE, "%s does not exist: the release is not signed", tsig);
	}
	if (have <= 0 || release_sign_inspect(file, &info, &e) != 0) {
		rc = cli_fail(cli, &e);
		goto out;
	}
	w.sha256 = info.sha256;
	w.size = (int64_t)info.size;
	if (sign_release_check(&kr, buf, len, &w, &v, &e) != 0 ||
	    sign_statement_match(&v.st, info.name, info.version, &e) != 0) {
		err_prefix(&e, "%s", tsig);
		rc = cli_fail(cli, &e);
		goto out;
	}
	if (cli->json) {
		cJSON *j = cJSON_CreateObject(), *ids = NULL;
		int bad = j == NULL || json_add_str(j, "path", tsig) != 0 ||
		    json_add_bool(j, "ok", 1) != 0 ||
		    json_add_item(j, "statement", release_statement_json(&v.st)) != 0 ||
		    json_add_int(j, "keyring_version", kr.version) != 0 ||
		    json_add_int(j, "threshold", kr.threshold) != 0 ||
		    (ids = json_add_array(j, "signed_by")) == NULL;

		for (size_t i = 0; !bad && i < v.nsigned; i++) {
			bad = json_array_add_str(ids, v.signed_by[i]) != 0;
		}
		if (bad) {
			cJSON_Delete(j);
			j = NULL;
		}
		rc = cli_print_json(cli, j);
	} else {
		printf("%s: good signature\n", tsig);
		release_statement_print(&v.st);
		printf("  keyring     version %lld: %zu of %d signature%s needed\n",
		    (long long)kr.version, v.nsigned, kr.threshold, kr.threshold == 1 ? "" : "s");
		for (size_t i = 0; i < v.nsigned; i++) {
			printf("  signed by   %s\n", v.signed_by[i]);
		}
		rc = cli_flush(cli);
	}
out:
	free(buf);
	sign_keyring_free(&kr);
	return rc;
}

/* ---- the keyring ------------------------------------------------------ */

/* What a keyring command was asked to change. */
struct keyring_args {
	const char *from;                    /* rotate: the current document */
	const char *out;                     /* NULL: the master's keystore */
	const char *file;                    /* sign/show/install: the document */
	const char *root_keys[SIGN_MAX_SIGS]; /* private: sign with */
	size_t n_root_keys;
	const char *add[SIGN_MAX_KEYS];      /* release keys to add */
	size_t n_add;
	const char *remove[SIGN_MAX_KEYS];
	size_t n_remove;
	const char *add_root[SIGN_MAX_KEYS];
	size_t n_add_root;
	const char *remove_root[SIGN_MAX_KEYS];
	size_t n_remove_root;
	char not_after[32];
	int threshold;                       /* 0: keep (rotate) or 1 (init) */
	int root_threshold;
};

enum {
	KR_OPT_ROOT_KEY = 'r',
	KR_OPT_ADD = 'a',
	KR_OPT_REMOVE = 'd',
	KR_OPT_ADD_ROOT = 'A',
	KR_OPT_REMOVE_ROOT = 'D',
	KR_OPT_NOT_AFTER = 'N',
	KR_OPT_THRESHOLD = 't',
	KR_OPT_ROOT_THRESHOLD = 'T',
	KR_OPT_FROM = 'F',
	KR_OPT_OUT = 'o',
};

/* The keyring options, each command's table takes those it uses. */
#define KR_ROOT_KEY(what) { "root-key", KR_OPT_ROOT_KEY, 0, "KEY", what }
#define KR_ADD { "add", KR_OPT_ADD, 0, "PUB", "a release key (public or private key file), repeatable" }
#define KR_REMOVE { "remove", KR_OPT_REMOVE, 0, "KEYID", \
	"remove a release key (a unique keyid prefix of\nat least 8 hex digits), repeatable" }
#define KR_ADD_ROOT { "add-root", KR_OPT_ADD_ROOT, 0, "PUB", \
	"a root key that signs later ('keyring sign'),\nrepeatable" }
#define KR_REMOVE_ROOT { "remove-root", KR_OPT_REMOVE_ROOT, 0, "KEYID", "remove a root key, repeatable" }
#define KR_NOT_AFTER { "not-after", KR_OPT_NOT_AFTER, 0, "DATE", \
	"the --add keys' signatures count until DATE" }
#define KR_THRESHOLD { "threshold", KR_OPT_THRESHOLD, 0, "T", \
	"release signatures a release needs (default 1,\nor the current one's)" }
#define KR_ROOT_THRESHOLD { "root-threshold", KR_OPT_ROOT_THRESHOLD, 0, "R", \
	"root signatures a keyring version needs (default 1,\nor the current one's)" }
#define KR_OUT(what) { "out", KR_OPT_OUT, 1, "FILE", what }
#define KR_END { NULL, 0, 0, NULL, NULL }

static const struct cli_opt keyring_init_opts[] = {
	KR_ROOT_KEY("a private root key: listed and signing, repeatable"),
	KR_ADD_ROOT,
	KR_ADD,
	KR_NOT_AFTER,
	KR_THRESHOLD,
	KR_ROOT_THRESHOLD,
	KR_OUT("write it there only (default: it becomes the\nmaster's keyring, complete signatures needed)"),
	KR_END,
};

static const struct cli_opt keyring_rotate_opts[] = {
	KR_ROOT_KEY("a private root key to sign with, repeatable\n(required)"),
	{ "from", KR_OPT_FROM, 0, "FILE", "the current version (default: the master's)" },
	KR_ADD,
	KR_REMOVE,
	KR_ADD_ROOT,
	KR_REMOVE_ROOT,
	KR_NOT_AFTER,
	KR_THRESHOLD,
	KR_ROOT_THRESHOLD,
	KR_OUT("write it there only (default: it becomes the\nmaster's keyring, complete signatures needed)"),
	KR_END,
};

static const struct cli_opt keyring_sign_opts[] = {
	KR_ROOT_KEY("a private root key to sign with, repeatable\n(required)"),
	KR_OUT("write there (default: FILE is rewritten)"),
	KR_END,
};

static int
keyring_list_add(const struct cli *cli, const char **list, size_t *n, size_t max,
    const char *v, const char *opt)
{
	if (*n >= max) {
		return cli_usage(cli, "at most %zu %s", max, opt);
	}
	list[(*n)++] = v;
	return 0;
}

static int
keyring_threshold_arg(const struct cli *cli, const char *opt, const char *s, int *out)
{
	long long v;

	if (parse_ll(s, 1, SIGN_MAX_KEYS, &v) != 0) {
		return cli_usage(cli, "%s: 1 to %d, not '%s'", opt, SIGN_MAX_KEYS, s);
	}
	*out = (int)v;
	return 0;
}

/*
 * Read a keyring command's options (those of its table) into A, and its
 * FILE operand when it has one. Returns 0 or the exit code of the usage
 * error (reported).
 */
static int
keyring_parse(struct cli *cli, int argc, char **argv, struct keyring_args *a)
{
	struct cli_getopt g;
	time_t t;
	int c;

	memset(a, 0, sizeof(*a));
	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		int rc = 0;

		switch (c) {
		case KR_OPT_ROOT_KEY:
			rc = keyring_list_add(cli, a->root_keys, &a->n_root_keys, SIGN_MAX_SIGS, g.arg,
			    "--root-key");
			break;
		case KR_OPT_ADD:
			rc = keyring_list_add(cli, a->add, &a->n_add, SIGN_MAX_KEYS, g.arg, "--add");
			break;
		case KR_OPT_REMOVE:
			rc = keyring_list_add(cli, a->remove, &a->n_remove, SIGN_MAX_KEYS, g.arg,
			    "--remove");
			break;
		case KR_OPT_ADD_ROOT:
			rc = keyring_list_add(cli, a->add_root, &a->n_add_root, SIGN_MAX_KEYS, g.arg,
			    "--add-root");
			break;
		case KR_OPT_REMOVE_ROOT:
			rc = keyring_list_add(cli, a->remove_root, &a->n_remove_root, SIGN_MAX_KEYS,
			    g.arg, "--remove-root");
			break;
		case KR_OPT_NOT_AFTER:
			if (iso8601_parse(g.arg, &t) != 0) {
				return cli_usage(cli, "--not-after: YYYY-MM-DD[THH:MM:SSZ]");
			}
			iso8601_utc(t, a->not_after, sizeof(a->not_after));
			break;
		case KR_OPT_THRESHOLD:
			rc = keyring_threshold_arg(cli, "--threshold", g.arg, &a->threshold);
			break;
		case KR_OPT_ROOT_THRESHOLD:
			rc = keyring_threshold_arg(cli, "--root-threshold", g.arg, &a->root_threshold);
			break;
		case KR_OPT_FROM:
			a->from = g.arg;
			break;
		case KR_OPT_OUT:
			a->out = g.arg;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
		if (rc != 0) {
			return rc;
		}
	}
	if (cli_getopt_index(&g) < argc) {
		a->file = argv[cli_getopt_index(&g)];
	}
	return 0;
}

/* KR as JSON; PREV (may be NULL) is the version it replaces. */
static cJSON *
keyring_json(const struct sign_keyring *kr, const struct sign_keyring *prev, const char *path)
{
	cJSON *o = cJSON_CreateObject(), *roots = NULL, *rels = NULL;
	size_t own = sign_keyring_root_sigs(kr, &kr->env);
	int bad;

	bad = o == NULL || (path != NULL && json_add_str(o, "path", path) != 0) ||
	    json_add_int(o, "version", kr->version) != 0 ||
	    json_add_int(o, "threshold", kr->threshold) != 0 ||
	    json_add_int(o, "root_threshold", kr->root_threshold) != 0 ||
	    json_add_str(o, "created_at", kr->created_at) != 0 ||
	    (roots = json_add_array(o, "root_keys")) == NULL ||
	    (rels = json_add_array(o, "release_keys")) == NULL ||
	    json_add_int(o, "root_signatures", (long long)own) != 0;
	for (size_t i = 0; !bad && i < kr->nroot; i++) {
		bad = json_array_add_str(roots, kr->root[i].keyid) != 0;
	}
	for (size_t i = 0; !bad && i < kr->nrel; i++) {
		cJSON *k = cJSON_CreateObject();

		bad = k == NULL || !cJSON_AddItemToArray(rels, k);
		if (bad) {
			cJSON_Delete(k);
			break;
		}
		bad = json_add_str(k, "keyid", kr->rel[i].keyid) != 0 ||
		    json_add_str(k, "not_after", kr->rel[i].not_after[0] != '\0' ?
		    kr->rel[i].not_after : NULL) != 0;
	}
	if (!bad && prev != NULL) {
		bad = json_add_int(o, "previous_root_signatures",
		    (long long)sign_keyring_root_sigs(prev, &kr->env)) != 0 ||
		    json_add_int(o, "previous_root_threshold", prev->root_threshold) != 0;
	}
	if (!bad) {
		int complete = own >= (size_t)kr->root_threshold && (prev == NULL ||
		    sign_keyring_root_sigs(prev, &kr->env) >= (size_t)prev->root_threshold);
		bad = json_add_bool(o, "complete", complete) != 0;
	}
	if (bad) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void
keyring_print(const struct sign_keyring *kr, const struct sign_keyring *prev, const char *path)
{
	size_t own = sign_keyring_root_sigs(kr, &kr->env);

	printf("%s: keyring version %lld (created %s)\n", path, (long long)kr->version,
	    kr->created_at);
	printf("  release keys  %zu, %d needed per release\n", kr->nrel, kr->threshold);
	for (size_t i = 0; i < kr->nrel; i++) {
		printf("    %s%s%s\n", kr->rel[i].keyid, kr->rel[i].not_after[0] != '\0' ?
		    "  not after " : "", kr->rel[i].not_after);
	}
	printf("  root keys     %zu, %d needed per keyring version\n", kr->nroot,
	    kr->root_threshold);
	for (size_t i = 0; i < kr->nroot; i++) {
		printf("    %s\n", kr->root[i].keyid);
	}
	printf("  signed by     %zu of its %d needed root signature%s%s\n", own,
	    kr->root_threshold, kr->root_threshold == 1 ? "" : "s",
	    own >= (size_t)kr->root_threshold ? "" : " (incomplete)");
	if (prev != NULL) {
		size_t old = sign_keyring_root_sigs(prev, &kr->env);
		printf("  and by        %zu of the %d root signature%s version %lld needs%s\n", old,
		    prev->root_threshold, prev->root_threshold == 1 ? "" : "s",
		    (long long)prev->version, old >= (size_t)prev->root_threshold ? "" :
		    " (incomplete)");
	}
}

/* Show the result of a keyring command and set the exit code. */
static int
keyring_report(const struct cli *cli, const struct sign_keyring *kr,
    const struct sign_keyring *prev, const char *path)
{
	if (cli->json) {
		return cli_print_json(cli, keyring_json(kr, prev, path));
	}
	keyring_print(kr, prev, path);
	return cli_flush(cli);
}

/*
 * Sign KR with the root keys of A, then write it: to A->out (signatures may
 * be missing: others add theirs with `keyring sign`), or into the master's
 * keystore (only complete documents). PATH receives where it went.
 */
static int
keyring_sign_and_store(const struct cli *cli, const struct keyring_args *a,
    struct sign_keyring *kr, char *path, size_t pathlen, struct err *e)
{
	struct release_keys ks = { .n = 0 };
	char *text = NULL;
	size_t len = 0;
	int rc = -1;

	for (size_t i = 0; i < a->n_root_keys; i++) {
		if (release_keys_add(&ks, a->root_keys[i], 1, e) != 0 ||
		    sign_envelope_add(&kr->env, ks.k[i], e) != 0) {
			goto out;
		}
	}
	if (sign_keyring_format(kr, &text, &len, e) != 0) {
		goto out;
	}
	if (a->out != NULL) {
		if (fs_write_atomic(a->out, text, len, 0644) != 0) {
			err_sys(e, "write %s", a->out);
			goto out;
		}
		if (strlcpy_chk(path, a->out, pathlen) != 0) {
			err_set(e, ERR_USAGE, "path too long");
			goto out;
		}
	} else {
		if (cli_home_check(cli, e) != 0) {
			goto out;
		}
		if (keystore_add(cli->home, text, len, NULL, e) != 0 ||
		    keystore_path(cli->home, kr->version, path, pathlen) != 0) {
			err_prefix(e, "adding it to the master (--out FILE writes an incomplete "
			    "document for others to sign)");
			goto out;
		}
	}
	rc = 0;
out:
	free(text);
	release_keys_free(&ks);
	return rc;
}

/* Add the keys of LIST (public or private key files) to a role of KR. */
static int
keyring_add_keys(struct sign_keyring *kr, int root, const char *const *list, size_t n,
    const char *not_after, struct err *e)
{
	for (size_t i = 0; i < n; i++) {
		struct sign_key *k = NULL;
		int rc;

		if (sign_key_load_public(list[i], &k, e) != 0) {
			return -1;
		}
		rc = sign_keyring_add_key(kr, root, k, not_after, e);
		sign_key_free(k);
		if (rc != 0) {
			return err_prefix(e, "%s", list[i]);
		}
	}
	return 0;
}

static int
keyring_cmd_init(struct cli *cli, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring kr;
	struct err e = ERR_INIT;
	char path[PATH_MAX];
	int rc;

	if ((rc = keyring_parse(cli, argc, argv, &a)) != 0) {
		return rc;
	}
	if (a.n_root_keys + a.n_add_root == 0 || a.n_add == 0) {
		return cli_usage(cli, "at least one root key (--root-key KEY, "
		    "--add-root PUB) and one release key (--add PUB) are needed");
	}
	sign_keyring_init(&kr);
	kr.version = 1;
	kr.threshold = a.threshold > 0 ? a.threshold : 1;
	kr.root_threshold = a.root_threshold > 0 ? a.root_threshold : 1;
	iso8601_utc(time(NULL), kr.created_at, sizeof(kr.created_at));
	if (keyring_add_keys(&kr, 1, a.root_keys, a.n_root_keys, NULL, &e) != 0 ||
	    keyring_add_keys(&kr, 1, a.add_root, a.n_add_root, NULL, &e) != 0 ||
	    keyring_add_keys(&kr, 0, a.add, a.n_add, a.not_after[0] != '\0' ? a.not_after : NULL,
	    &e) != 0 ||
	    sign_keyring_seal(&kr, &e) != 0 ||
	    keyring_sign_and_store(cli, &a, &kr, path, sizeof(path), &e) != 0) {
		rc = cli_fail(cli, &e);
		goto out;
	}
	rc = keyring_report(cli, &kr, NULL, path);
out:
	sign_keyring_free(&kr);
	return rc;
}

/* The document FILE (signatures not required), or the master's current keyring. */
static int
keyring_load(const struct cli *cli, const char *file, struct sign_keyring *kr, char *path,
    size_t pathlen, struct err *e)
{
	int have;

	if (file != NULL) {
		if (strlcpy_chk(path, file, pathlen) != 0) {
			return err_set(e, ERR_USAGE, "path too long");
		}
		return sign_keyring_read(file, 1, kr, e);
	}
	if (cli_home_check(cli, e) != 0) {
		return -1;
	}
	have = keystore_current(cli->home, kr, e);
	if (have < 0) {
		return -1;
	}
	if (have == 0) {
		return err_set(e, ERR_NOT_FOUND, "the master at %s has no keyring (tandem release "
		    "keyring init)", cli->home);
	}
	if (keystore_path(cli->home, kr->version, path, pathlen) != 0) {
		return err_set(e, ERR_USAGE, "path too long");
	}
	return 0;
}

static int
keyring_cmd_rotate(struct cli *cli, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring cur, next;
	struct err e = ERR_INIT;
	char path[PATH_MAX];
	int rc;

	if ((rc = keyring_parse(cli, argc, argv, &a)) != 0) {
		return rc;
	}
	if (a.n_root_keys == 0) {
		return cli_usage(cli, "--root-key KEY is required: a new version is "
		    "signed by root keys of the current one and of the new one");
	}
	sign_keyring_init(&cur);
	sign_keyring_init(&next);
	if (keyring_load(cli, a.from, &cur, path, sizeof(path), &e) != 0) {
		rc = cli_fail(cli, &e);
		goto out;
	}
	/* The next version: the same keys, edited as asked. */
	next.version = cur.version + 1;
	next.threshold = a.threshold > 0 ? a.threshold : cur.threshold;
	next.root_threshold = a.root_threshold > 0 ? a.root_threshold : cur.root_threshold;
	iso8601_utc(time(NULL), next.created_at, sizeof(next.created_at));
	for (size_t i = 0; i < cur.nroot; i++) {
		if (sign_keyring_add_key(&next, 1, cur.root[i].key, NULL, &e) != 0) {
			goto fail;
		}
	}
	for (size_t i = 0; i < cur.nrel; i++) {
		if (sign_keyring_add_key(&next, 0, cur.rel[i].key, cur.rel[i].not_after[0] != '\0' ?
		    cur.rel[i].not_after : NULL, &e) != 0) {
			goto fail;
		}
	}
	for (size_t i = 0; i < a.n_remove; i++) {
		if (sign_keyring_remove_key(&next, 0, a.remove[i], &e) != 0) {
			goto fail;
		}
	}
	for (size_t i = 0; i < a.n_remove_root; i++) {
		if (sign_keyring_remove_key(&next, 1, a.remove_root[i], &e) != 0) {
			goto fail;
		}
	}
	if (keyring_add_keys(&next, 1, a.add_root, a.n_add_root, NULL, &e) != 0 ||
	    keyring_add_keys(&next, 0, a.add, a.n_add, a.not_after[0] != '\0' ? a.not_after :
	    NULL, &e) != 0 ||
	    sign_keyring_seal(&next, &e) != 0 ||
	    keyring_sign_and_store(cli, &a, &next, path, sizeof(path), &e) != 0) {
		goto fail;
	}
	rc = keyring_report(cli, &next, &cur, path);
	goto out;
fail:
	rc = cli_fail(cli, &e);
out:
	sign_keyring_free(&cur);
	sign_keyring_free(&next);
	return rc;
}

static int
keyring_cmd_sign(struct cli *cli, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring kr, prev;
	struct release_keys ks = { .n = 0 };
	struct err e = ERR_INIT;
	char *text = NULL, path[PATH_MAX];
	const char *out;
	size_t len = 0;
	int rc, have_prev = 0;

	if ((rc = keyring_parse(cli, argc, argv, &a)) != 0) {
		return rc;
	}
	if (a.n_root_keys == 0) {
		return cli_usage(cli, "--root-key KEY is required");
	}
	out = a.out != NULL ? a.out : a.file;
	sign_keyring_init(&kr);
	sign_keyring_init(&prev);
	if (sign_keyring_read(a.file, 1, &kr, &e) != 0) {
		goto fail;
	}
	for (size_t i = 0; i < a.n_root_keys; i++) {
		if (release_keys_add(&ks, a.root_keys[i], 1, &e) != 0 ||
		    sign_envelope_add(&kr.env, ks.k[i], &e) != 0) {
			goto fail;
		}
	}
	if (sign_keyring_format(&kr, &text, &len, &e) != 0) {
		goto fail;
	}
	if (fs_write_atomic(out, text, len, 0644) != 0) {
		err_sys(&e, "write %s", out);
		goto fail;
	}
	/* Against the master's version before it, when it has that one. */
	if (kr.version > 1 && cli->home != NULL) {
		char *pbuf = NULL;
		size_t plen = 0;
		struct err ignore = ERR_INIT;

		if (keystore_read(cli->home, kr.version - 1, &pbuf, &plen, &ignore) == 0) {
			have_prev = sign_keyring_parse(pbuf, plen, 0, &prev, &ignore) == 0;
			free(pbuf);
		}
	}
	if (strlcpy_chk(path, out, sizeof(path)) != 0) {
		err_set(&e, ERR_USAGE, "path too long");
		goto fail;
	}
	rc = keyring_report(cli, &kr, have_prev ? &prev : NULL, path);
	goto out;
fail:
	rc = cli_fail(cli, &e);
out:
	free(text);
	release_keys_free(&ks);
	sign_keyring_free(&kr);
	sign_keyring_free(&prev);
	return rc;
}

static int
keyring_cmd_show(struct cli *cli, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring kr;
	struct err e = ERR_INIT;
	char path[PATH_MAX];
	int rc;

	if ((rc = keyring_parse(cli, argc, argv, &a)) != 0) {
		return rc;
	}
	sign_keyring_init(&kr);
	if (keyring_load(cli, a.file, &kr, path, sizeof(path), &e) != 0) {
		rc = cli_fail(cli, &e);
	} else {
		rc = keyring_report(cli, &kr, NULL, path);
	}
	sign_keyring_free(&kr);
	return rc;
}

static int
keyring_cmd_install(struct cli *cli, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring kr;
	struct err e = ERR_INIT;
	char *buf = NULL, path[PATH_MAX];
	size_t len = 0;
	int64_t version = 0;
	int rc;

	if ((rc = keyring_parse(cli, argc, argv, &a)) != 0) {
		return rc;
	}
	sign_keyring_init(&kr);
	if (fs_read_file(a.file, SIGN_FILE_MAX, &buf, &len) != 0) {
		err_sys(&e, "read %s", a.file);
		goto fail;
	}
	if (keystore_add(cli->home, buf, len, &version, &e) != 0 ||
	    keystore_current(cli->home, &kr, &e) < 0 ||
	    keystore_path(cli->home, version, path, sizeof(path)) != 0) {
		err_prefix(&e, "%s", a.file);
		goto fail;
	}
	rc = keyring_report(cli, &kr, NULL, path);
	goto out;
fail:
	rc = cli_fail(cli, &e);
out:
	free(buf);
	sign_keyring_free(&kr);
	return rc;
}

static const char release_sign_exit[] =
    "  0  done\n"
    "  1  refused or failed (the message says why; nothing is left half done)\n"
    "  2  usage error: the command line is wrong, nothing was done\n";

static const struct cli_cmd keyring_cmds[] = {
	{
	    .name = "init",
	    .summary = "create keyring version 1",
	    .synopsis = "--root-key KEY... [--add-root PUB]... --add PUB... [options]",
	    .description =
		"A keyring lists the release keys whose signatures hosts accept and the root\n"
		"keys that sign the keyring itself. Version 1 holds the root keys (--root-key\n"
		"private keys, which also sign it, and --add-root public keys, which sign it\n"
		"later with 'keyring sign') and the release keys (--add, public or private key\n"
		"files). Without --out it becomes the master's keyring (HOME/keyring/1.json;\n"
		"it must then be signed by R root keys already); with --out FILE it is only\n"
		"written there.",
	    .opts = keyring_init_opts,
	    .exit_status = release_sign_exit,
	    .example = "tandem release keyring init --root-key offline/root.key --add rel/release.pub",
	    .home = CLI_HOME_NONE,
	    .run = keyring_cmd_init,
	},
	{
	    .name = "rotate",
	    .summary = "make the next keyring version",
	    .synopsis = "--root-key KEY... [--from FILE] [--add PUB]... [--remove KEYID]... [options]",
	    .description =
		"Copies the current keyring (--from FILE, else the master's), applies the\n"
		"changes and signs version N+1 with the --root-key keys. Hosts accept N+1 only\n"
		"when it carries the root threshold of N's root keys AND of N+1's, and only\n"
		"after N: sign with old and new roots (or add signatures with 'keyring sign').\n"
		"Without --out it becomes the master's keyring (complete signatures needed);\n"
		"push it with 'tandem swarm keyring push'.",
	    .opts = keyring_rotate_opts,
	    .exit_status = release_sign_exit,
	    .example = "tandem release keyring rotate --root-key root.key --remove 3f2a9c01 "
		       "--add new-release.pub",
	    .home = CLI_HOME_NONE,
	    .run = keyring_cmd_rotate,
	},
	{
	    .name = "sign",
	    .summary = "add root signatures to a keyring document",
	    .synopsis = "FILE --root-key KEY... [--out FILE]",
	    .operand = "FILE",
	    .description =
		"Adds the --root-key signatures to the keyring document FILE (rewritten, or\n"
		"written to --out) and says how many root signatures it now carries.",
	    .opts = keyring_sign_opts,
	    .exit_status = release_sign_exit,
	    .example = "tandem release keyring sign 4.json --root-key offline/root2.key",
	    .home = CLI_HOME_NONE,
	    .run = keyring_cmd_sign,
	},
	{
	    .name = "show",
	    .summary = "describe a keyring document or the master's keyring",
	    .synopsis = "[FILE]",
	    .operand = "FILE",
	    .operand_optional = 1,
	    .description =
		"FILE, or the master's current keyring: version, thresholds, keys, and how\n"
		"many of its root keys signed it.",
	    .opts = NULL,
	    .exit_status = release_sign_exit,
	    .example = "tandem release keyring show --json",
	    .home = CLI_HOME_NONE,
	    .run = keyring_cmd_show,
	},
	{
	    .name = "install",
	    .summary = "make a keyring document the master's keyring",
	    .synopsis = "FILE",
	    .operand = "FILE",
	    .description =
		"Adds FILE to HOME/keyring/ as the master's current keyring: version 1 (or any\n"
		"version, when the master has none yet) signed by its own root threshold, or\n"
		"exactly the next version signed by both root thresholds.",
	    .opts = NULL,
	    .exit_status = release_sign_exit,
	    .example = "tandem release keyring install 4.json",
	    .home = CLI_HOME_EXISTING,
	    .run = keyring_cmd_install,
	},
};

static const struct cli_cmd release_cmds[] = {
	{
	    .name = "pack",
	    .summary = "pack a release directory into a deterministic tarball",
	    .synopsis = "DIR [-o FILE] [--version V] [--readiness MODE] [--exclude GLOB]...",
	    .operand = "DIR",
	    .description =
		"Packs the release tree DIR into a deterministic gzip tarball (entries sorted,\n"
		"mtime 0, owner 0:0, modes 0755/0644, no gzip name or time): the same tree\n"
		"always gives the same bytes and sha256. The tarball carries manifest.json:\n"
		"DIR's own (only its version replaced by --version), or a generated one with\n"
		"entrypoint bin/tandem-agent (and updater_entrypoint when bin/tandem-updater\n"
		"exists). Refused, naming each file: private keys (*.key, id_rsa*, id_dsa*,\n"
		"id_ecdsa*, id_ed25519*, *.pem with a private key, any file holding a PEM\n"
		"private key), .env files, devices, FIFOs, sockets, symlinks that are\n"
		"absolute, leave DIR or dangle, a missing or non-executable entrypoint.\n"
		"Prints \"SHA256  PATH\" (--json: {path, sha256, size, name, version,\n"
		"entries}). Needs no master home.",
	    .opts = release_pack_opts,
	    .exit_status = "  0  packed\n"
			   "  1  refused or failed (the message names the file)\n"
			   "  2  usage error: the command line is wrong, nothing was done\n",
	    .example = "tandem release pack ./tree -o agent-1.2.0.tar.gz --version 1.2.0",
	    .home = CLI_HOME_NONE,
	    .run = release_cmd_pack,
	},
	{
	    .name = "keygen",
	    .summary = "create a release-signing key pair (ECDSA P-256)",
	    .synopsis = "--out DIR [--name NAME] [--force]",
	    .description =
		"Writes DIR/NAME.key (private, 0600) and DIR/NAME.pub (public, 0644), PEM,\n"
		"and prints the key's id (sha256 of its public key). Runs offline: keep\n"
		"release and root keys off the master (wiki/Release-Signing.md). Needs no\n"
		"master home.",
	    .opts = release_keygen_opts,
	    .exit_status = release_sign_exit,
	    .example = "tandem release keygen --out /media/offline --name release-2026",
	    .home = CLI_HOME_NONE,
	    .run = release_cmd_keygen,
	},
	{
	    .name = "sign",
	    .summary = "sign a release tarball (writes FILE.tsig)",
	    .synopsis = "FILE --key KEY... --security-version N [options]\n"
			"FILE --cosign --key KEY...   (add a signature)",
	    .operand = "FILE",
	    .description =
		"Signs a statement of the release's name, version and kinds (from its\n"
		"manifest.json), sha256, size, compatible string and security versions, and\n"
		"writes it with the signatures to FILE.tsig (detached; `tandem swarm update`\n"
		"sends it along). Runs offline, needs no master home. Hosts refuse a release\n"
		"below their security floor; installing one raises the floor to its minimum\n"
		"security version.",
	    .opts = release_sign_opts,
	    .exit_status = release_sign_exit,
	    .example = "tandem release sign build/tandem-agent-1.2.0.tar.gz --key release.key "
		       "--security-version 7",
	    .home = CLI_HOME_NONE,
	    .run = release_cmd_sign,
	},
	{
	    .name = "verify",
	    .summary = "check a release's signature against a keyring",
	    .synopsis = "FILE [--tsig FILE] [--keyring FILE] [--compatible C] [--floor N] "
			"[--kind agent|updater]",
	    .operand = "FILE",
	    .description =
		"Checks FILE.tsig as a host would: enough valid signatures of the keyring's\n"
		"release keys (each key counted once), not expired, the statement matching\n"
		"FILE's sha256, size, name and version, and, when given, the compatible\n"
		"string, the kind and a security floor. The keyring is --keyring FILE or the\n"
		"master's current one.",
	    .opts = release_verify_opts,
	    .exit_status = "  0  acceptable\n"
			   "  1  refused (the reason and its kind: signature_invalid, unknown_key,\n"
			   "     statement_mismatch, expired, below_security_floor)\n"
			   "  2  usage error: the command line is wrong, nothing was done\n",
	    .example = "tandem release verify agent-1.2.0.tar.gz --kind agent --json",
	    .home = CLI_HOME_NONE,
	    .run = release_cmd_verify,
	},
	{
	    .name = "keyring",
	    .summary = "the keyring of release keys: init, rotate, sign, show, install",
	    .synopsis = "init|rotate|sign|show|install [options]",
	    .description =
		"The master keeps every keyring version in HOME/keyring/N.json; 'tandem swarm\n"
		"enroll' puts the current one into new bundles and 'tandem swarm keyring\n"
		"push' sends it to hosts.",
	    .subs = keyring_cmds,
	    .n_subs = ARRAY_LEN(keyring_cmds),
	},
};

const struct cli_group cli_group_release = {
	.name = "release",
	.summary = "release tarballs and signatures: pack, keygen, sign, verify, keyring",
	.cmds = release_cmds,
	.n_cmds = ARRAY_LEN(release_cmds),
};
