/*
 * `tandem release` — release tarballs and their signatures: pack
 * (master/release_pack.c), keygen, sign, verify (pki/sign.c,
 * master/release_sign.c) and the keyring (master/keystore.c).
 * Exit codes: 0 done, 1 refused or failed, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
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
		{ "readiness", required_argument, NULL, 'R' },
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
		case 'R':
			if (!release_readiness_valid(optarg)) {
				rc = cli_usage_error(GROUP, self, "--readiness: use 1-%d of [a-z0-9-]",
				    RELEASE_READINESS_MAX);
				goto out;
			}
			o.readiness = optarg;
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

/* ---- signing ---------------------------------------------------------- */

/*
 * Report E: "tandem: error: MESSAGE" on stderr and, with JSON, the error
 * object on stdout. Returns the kind's exit code.
 */
static int
release_fail(const struct err *e, int json)
{
	fprintf(stderr, "tandem: error: %s\n", err_msg(e));
	if (json) {
		cJSON *o = cJSON_CreateObject(), *in = NULL;
		char *text = NULL;

		if (o != NULL && (in = json_add_object(o, "error")) != NULL &&
		    json_add_str(in, "kind", err_kind_name(e->kind)) == 0 &&
		    json_add_str(in, "message", err_msg(e)) == 0 &&
		    (text = json_print_compact(o)) != NULL) {
			printf("%s\n", text);
		}
		free(text);
		cJSON_Delete(o);
	}
	return err_exit_code(e->kind) != 0 ? err_exit_code(e->kind) : CLI_EXIT_FAIL;
}

/* Print OBJ compactly and free it. */
static int
release_print_json(cJSON *o)
{
	char *text = o != NULL ? json_print_compact(o) : NULL;
	int rc = CLI_EXIT_FAIL;

	if (text != NULL && printf("%s\n", text) >= 0 && fflush(stdout) == 0) {
		rc = CLI_EXIT_OK;
	} else {
		fprintf(stderr, "tandem: error: cannot print the result\n");
	}
	free(text);
	cJSON_Delete(o);
	return rc;
}

/* A security version option: 0..SIGN_SV_MAX. */
static int
release_sv_arg(const struct cli_cmd *self, const char *opt, const char *s, int64_t *out)
{
	long long v;

	if (parse_ll(s, 0, SIGN_SV_MAX, &v) != 0) {
		return cli_usage_error(GROUP, self, "%s: a whole number from 0 to %lld, not '%s'",
		    opt, SIGN_SV_MAX, s);
	}
	*out = v;
	return 0;
}

/* --expires: "Nd" days from now or a date (YYYY-MM-DD[THH:MM:SSZ]), as ISO-8601 UTC. */
static int
release_expires_arg(const struct cli_cmd *self, const char *s, char out[32])
{
	size_t n = strlen(s);
	long long days;
	time_t t;

	if (n >= 2 && s[n - 1] == 'd') {
		char num[16];

		if (n - 1 >= sizeof(num)) {
			return cli_usage_error(GROUP, self, "--expires: too many days");
		}
		memcpy(num, s, n - 1);
		num[n - 1] = '\0';
		if (parse_ll(num, 1, 36500, &days) != 0) {
			return cli_usage_error(GROUP, self, "--expires: 1d to 36500d, not '%s'", s);
		}
		t = time(NULL) + (time_t)days * 86400;
	} else if (iso8601_parse(s, &t) != 0) {
		return cli_usage_error(GROUP, self, "--expires: Nd or YYYY-MM-DD[THH:MM:SSZ], not '%s'",
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
	printf("  security    version %lld, minimum %lld\n", (long long)st->security_version,
	    (long long)st->min_security_version);
	printf("  compatible  %s\n", st->compatible);
	printf("  created     %s%s%s\n", st->created_at, st->expires_at[0] != '\0' ?
	    ", expires " : "", st->expires_at);
}

static int
release_cmd_keygen(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "name", required_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *name = "release";
	char kp[PATH_MAX], pp[PATH_MAX];
	struct sign_key *k = NULL;
	struct err e = ERR_INIT;
	int json = 0, force = 0, c, rc = CLI_EXIT_USAGE;

	(void)cli; /* offline: no master state */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			dir = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'f':
			force = 1;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			return cli_help(GROUP, self);
		default:
			return cli_getopt_error(GROUP, self, c, argv, optind);
		}
	}
	if (optind != argc) {
		return cli_usage_error(GROUP, self, "unexpected argument '%s'", argv[optind]);
	}
	if (dir == NULL || *dir == '\0') {
		return cli_usage_error(GROUP, self, "--out DIR is required");
	}
	if (!release_ident_valid(name)) {
		return cli_usage_error(GROUP, self, "--name: 1-%d characters of A-Z a-z 0-9 . _ + ~ -",
		    SIGN_IDENT_MAX);
	}
	if (snprintf(kp, sizeof(kp), "%s/%s.key", dir, name) >= (int)sizeof(kp) ||
	    snprintf(pp, sizeof(pp), "%s/%s.pub", dir, name) >= (int)sizeof(pp)) {
		return cli_usage_error(GROUP, self, "--out: path too long");
	}
	if (fs_mkdir_p(dir, 0700) != 0) {
		err_sys(&e, "create %s", dir);
		return release_fail(&e, json);
	}
	if (sign_key_generate(&k, &e) != 0 || sign_key_write(k, kp, pp, force, &e) != 0) {
		rc = release_fail(&e, json);
		goto out;
	}
	if (json) {
		cJSON *o = cJSON_CreateObject();
		if (o == NULL || json_add_str(o, "keyid", sign_key_id(k)) != 0 ||
		    json_add_str(o, "key", kp) != 0 || json_add_str(o, "pub", pp) != 0) {
			cJSON_Delete(o);
			o = NULL;
		}
		rc = release_print_json(o);
	} else {
		rc = printf("%s  %s\n", sign_key_id(k), pp) < 0 || fflush(stdout) != 0 ?
		    CLI_EXIT_FAIL : CLI_EXIT_OK;
	}
out:
	sign_key_free(k);
	return rc;
}

static int
release_cmd_sign(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "security-version", required_argument, NULL, 's' },
		{ "min-security-version", required_argument, NULL, 'm' },
		{ "compatible", required_argument, NULL, 'c' },
		{ "expires", required_argument, NULL, 'x' },
		{ "out", required_argument, NULL, 'o' },
		{ "cosign", no_argument, NULL, 'C' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct release_sign_opts o;
	struct release_sign_result r;
	struct release_keys ks = { .n = 0 };
	const char *keys[SIGN_MAX_SIGS];
	char expires[32];
	struct err e = ERR_INIT;
	size_t nkeys = 0;
	int json = 0, have_sv = 0, have_min = 0, c, rc = CLI_EXIT_USAGE;

	(void)cli; /* offline: no master state */
	memset(&o, 0, sizeof(o));
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hk:o:", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			if (nkeys >= SIGN_MAX_SIGS) {
				return cli_usage_error(GROUP, self, "at most %d --key", SIGN_MAX_SIGS);
			}
			keys[nkeys++] = optarg;
			break;
		case 's':
			if (release_sv_arg(self, "--security-version", optarg,
			    &o.security_version) != 0) {
				return CLI_EXIT_USAGE;
			}
			have_sv = 1;
			break;
		case 'm':
			if (release_sv_arg(self, "--min-security-version", optarg,
			    &o.min_security_version) != 0) {
				return CLI_EXIT_USAGE;
			}
			have_min = 1;
			break;
		case 'c':
			o.compatible = optarg;
			break;
		case 'x':
			if (release_expires_arg(self, optarg, expires) != 0) {
				return CLI_EXIT_USAGE;
			}
			o.expires_at = expires;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'C':
			o.cosign = 1;
			break;
		case 'f':
			o.force = 1;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			return cli_help(GROUP, self);
		default:
			return cli_getopt_error(GROUP, self, c, argv, optind);
		}
	}
	if ((rc = cli_one_operand(GROUP, self, argc, argv, optind, "the release FILE")) != 0) {
		return rc;
	}
	o.file = argv[optind];
	if (nkeys == 0) {
		return cli_usage_error(GROUP, self, "--key KEY is required");
	}
	if (o.cosign && (have_sv || have_min || o.compatible != NULL || o.expires_at != NULL ||
	    o.force)) {
		return cli_usage_error(GROUP, self, "--cosign keeps the signed statement: "
		    "no --security-version, --min-security-version, --compatible, --expires "
		    "or --force");
	}
	if (!o.cosign && !have_sv) {
		return cli_usage_error(GROUP, self, "--security-version N is required");
	}
	if (o.min_security_version > o.security_version) {
		return cli_usage_error(GROUP, self, "--min-security-version is above "
		    "--security-version");
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (release_keys_add(&ks, keys[i], 1, &e) != 0) {
			rc = release_fail(&e, json);
			goto out;
		}
	}
	o.keys = ks.k;
	o.nkeys = ks.n;
	if (release_sign(&o, &r, &e) != 0) {
		rc = release_fail(&e, json);
		goto out;
	}
	if (json) {
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
		rc = release_print_json(j);
	} else {
		printf("%s: %d signature%s\n", r.path, (int)r.nsigs, r.nsigs == 1 ? "" : "s");
		release_statement_print(&r.st);
		for (size_t i = 0; i < r.nsigs; i++) {
			printf("  signed by   %s\n", r.keyids[i]);
		}
		rc = fflush(stdout) != 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
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
release_keyring_for(const struct cli *cli, const char *file, struct sign_keyring *kr, int json)
{
	struct err e = ERR_INIT;
	int have;

	if (file != NULL) {
		return sign_keyring_read(file, 0, kr, &e) == 0 ? 0 : release_fail(&e, json);
	}
	have = keystore_current(cli->home, kr, &e);
	if (have < 0) {
		return release_fail(&e, json);
	}
	if (have == 0) {
		err_set(&e, ERR_USAGE, "no keyring: the master at %s has none (tandem release keyring "
		    "init); give one with --keyring FILE", cli->home);
		return release_fail(&e, json);
	}
	return 0;
}

static int
release_cmd_verify(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "tsig", required_argument, NULL, 't' },
		{ "keyring", required_argument, NULL, 'K' },
		{ "compatible", required_argument, NULL, 'c' },
		{ "floor", required_argument, NULL, 'F' },
		{ "kind", required_argument, NULL, 'k' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tsig = NULL, *keyring = NULL, *file;
	struct release_sign_info info;
	struct sign_keyring kr;
	struct sign_verdict v;
	struct sign_want w;
	struct err e = ERR_INIT;
	char tpath[PATH_MAX], *buf = NULL;
	size_t len = 0;
	int json = 0, c, rc = CLI_EXIT_USAGE, have;

	memset(&w, 0, sizeof(w));
	w.size = -1;
	sign_keyring_init(&kr);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			tsig = optarg;
			break;
		case 'K':
			keyring = optarg;
			break;
		case 'c':
			w.compatible = optarg;
			break;
		case 'F':
			if (release_sv_arg(self, "--floor", optarg, &w.floor) != 0) {
				return CLI_EXIT_USAGE;
			}
			break;
		case 'k':
			if (strcmp(optarg, "agent") == 0) {
				w.kind = SIGN_KIND_AGENT;
			} else if (strcmp(optarg, "updater") == 0) {
				w.kind = SIGN_KIND_UPDATER;
			} else {
				return cli_usage_error(GROUP, self, "--kind: agent or updater");
			}
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			return cli_help(GROUP, self);
		default:
			return cli_getopt_error(GROUP, self, c, argv, optind);
		}
	}
	if ((rc = cli_one_operand(GROUP, self, argc, argv, optind, "the release FILE")) != 0) {
		return rc;
	}
	file = argv[optind];
	if (tsig == NULL) {
		if (release_sign_tsig_path(file, tpath, sizeof(tpath)) != 0) {
			return cli_usage_error(GROUP, self, "path too long");
		}
		tsig = tpath;
	}
	if ((rc = release_keyring_for(cli, keyring, &kr, json)) != 0) {
		goto out;
	}
	have = release_sign_read_tsig(tsig, &buf, &len, &e);
	if (have == 0) {
		err_set(&e, ERR_SIGNATURE, "%s does not exist: the release is not signed", tsig);
	}
	if (have <= 0 || release_sign_inspect(file, &info, &e) != 0) {
		rc = release_fail(&e, json);
		goto out;
	}
	w.sha256 = info.sha256;
	w.size = (int64_t)info.size;
	if (sign_release_check(&kr, buf, len, &w, &v, &e) != 0 ||
	    sign_statement_match(&v.st, info.name, info.version, &e) != 0) {
		err_prefix(&e, "%s", tsig);
		rc = release_fail(&e, json);
		goto out;
	}
	if (json) {
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
		rc = release_print_json(j);
	} else {
		printf("%s: good signature\n", tsig);
		release_statement_print(&v.st);
		printf("  keyring     version %lld: %zu of %d signature%s needed\n",
		    (long long)kr.version, v.nsigned, kr.threshold, kr.threshold == 1 ? "" : "s");
		for (size_t i = 0; i < v.nsigned; i++) {
			printf("  signed by   %s\n", v.signed_by[i]);
		}
		rc = fflush(stdout) != 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
	}
out:
	free(buf);
	sign_keyring_free(&kr);
	return rc;
}

/* ---- the keyring ------------------------------------------------------ */

#define KGROUP "release keyring"

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
	int json;
};

static int
keyring_list_add(const struct cli_cmd *self, const char **list, size_t *n, size_t max,
    const char *v, const char *opt)
{
	if (*n >= max) {
		return cli_usage_error(KGROUP, self, "at most %zu %s", max, opt);
	}
	list[(*n)++] = v;
	return 0;
}

static int
keyring_threshold_arg(const struct cli_cmd *self, const char *opt, const char *s, int *out)
{
	long long v;

	if (parse_ll(s, 1, SIGN_MAX_KEYS, &v) != 0) {
		return cli_usage_error(KGROUP, self, "%s: 1 to %d, not '%s'", opt, SIGN_MAX_KEYS, s);
	}
	*out = (int)v;
	return 0;
}

/* Parse a keyring command's options into A; OPERAND: 1 when one FILE operand is taken. */
static int
keyring_parse(const struct cli_cmd *self, int argc, char **argv, int operand,
    struct keyring_args *a)
{
	static const struct option longopts[] = {
		{ "root-key", required_argument, NULL, 'r' },
		{ "add", required_argument, NULL, 'a' },
		{ "remove", required_argument, NULL, 'd' },
		{ "add-root", required_argument, NULL, 'A' },
		{ "remove-root", required_argument, NULL, 'D' },
		{ "not-after", required_argument, NULL, 'N' },
		{ "threshold", required_argument, NULL, 't' },
		{ "root-threshold", required_argument, NULL, 'T' },
		{ "from", required_argument, NULL, 'F' },
		{ "out", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	time_t t;
	int c;

	memset(a, 0, sizeof(*a));
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
		int rc = 0;

		switch (c) {
		case 'r':
			rc = keyring_list_add(self, a->root_keys, &a->n_root_keys, SIGN_MAX_SIGS,
			    optarg, "--root-key");
			break;
		case 'a':
			rc = keyring_list_add(self, a->add, &a->n_add, SIGN_MAX_KEYS, optarg, "--add");
			break;
		case 'd':
			rc = keyring_list_add(self, a->remove, &a->n_remove, SIGN_MAX_KEYS, optarg,
			    "--remove");
			break;
		case 'A':
			rc = keyring_list_add(self, a->add_root, &a->n_add_root, SIGN_MAX_KEYS, optarg,
			    "--add-root");
			break;
		case 'D':
			rc = keyring_list_add(self, a->remove_root, &a->n_remove_root, SIGN_MAX_KEYS,
			    optarg, "--remove-root");
			break;
		case 'N':
			if (iso8601_parse(optarg, &t) != 0) {
				return cli_usage_error(KGROUP, self, "--not-after: YYYY-MM-DD[THH:MM:SSZ]");
			}
			iso8601_utc(t, a->not_after, sizeof(a->not_after));
			break;
		case 't':
			rc = keyring_threshold_arg(self, "--threshold", optarg, &a->threshold);
			break;
		case 'T':
			rc = keyring_threshold_arg(self, "--root-threshold", optarg,
			    &a->root_threshold);
			break;
		case 'F':
			a->from = optarg;
			break;
		case 'o':
			a->out = optarg;
			break;
		case 'j':
			a->json = 1;
			break;
		case 'h':
			(void)cli_help(KGROUP, self);
			return -1;
		default:
			return cli_getopt_error(KGROUP, self, c, argv, optind);
		}
		if (rc != 0) {
			return rc;
		}
	}
	if (operand) {
		if (optind < argc) {
			a->file = argv[optind++];
		}
	}
	if (optind != argc) {
		return cli_usage_error(KGROUP, self, "unexpected argument '%s'", argv[optind]);
	}
	return 0;
}

/* Refuse options the command does not take (MASK of letters it does). */
static int
keyring_only(const struct cli_cmd *self, const struct keyring_args *a, const char *allowed)
{
	static const struct {
		char c;
		const char *opt;
	} opts[] = {
		{ 'r', "--root-key" }, { 'a', "--add" }, { 'd', "--remove" },
		{ 'A', "--add-root" }, { 'D', "--remove-root" }, { 'N', "--not-after" },
		{ 't', "--threshold" }, { 'T', "--root-threshold" }, { 'F', "--from" },
		{ 'o', "--out" },
	};
	int given[ARRAY_LEN(opts)] = {
		a->n_root_keys > 0, a->n_add > 0, a->n_remove > 0, a->n_add_root > 0,
		a->n_remove_root > 0, a->not_after[0] != '\0', a->threshold > 0,
		a->root_threshold > 0, a->from != NULL, a->out != NULL,
	};

	for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
		if (given[i] && strchr(allowed, opts[i].c) == NULL) {
			return cli_usage_error(KGROUP, self, "%s does not apply here", opts[i].opt);
		}
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
keyring_report(const struct sign_keyring *kr, const struct sign_keyring *prev, const char *path,
    int json)
{
	if (json) {
		return release_print_json(keyring_json(kr, prev, path));
	}
	keyring_print(kr, prev, path);
	return fflush(stdout) != 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
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
keyring_cmd_init(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring kr;
	struct err e = ERR_INIT;
	char path[PATH_MAX];
	int rc;

	if ((rc = keyring_parse(self, argc, argv, 0, &a)) != 0) {
		return rc < 0 ? CLI_EXIT_OK : rc;
	}
	if ((rc = keyring_only(self, &a, "raANtTo")) != 0) {
		return rc;
	}
	if (a.n_root_keys + a.n_add_root == 0 || a.n_add == 0) {
		return cli_usage_error(KGROUP, self, "at least one root key (--root-key KEY, "
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
		rc = release_fail(&e, a.json);
		goto out;
	}
	rc = keyring_report(&kr, NULL, path, a.json);
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
keyring_cmd_rotate(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring cur, next;
	struct err e = ERR_INIT;
	char path[PATH_MAX];
	int rc;

	if ((rc = keyring_parse(self, argc, argv, 0, &a)) != 0) {
		return rc < 0 ? CLI_EXIT_OK : rc;
	}
	if ((rc = keyring_only(self, &a, "radADNtTFo")) != 0) {
		return rc;
	}
	if (a.n_root_keys == 0) {
		return cli_usage_error(KGROUP, self, "--root-key KEY is required: a new version is "
		    "signed by root keys of the current one and of the new one");
	}
	sign_keyring_init(&cur);
	sign_keyring_init(&next);
	if (keyring_load(cli, a.from, &cur, path, sizeof(path), &e) != 0) {
		rc = release_fail(&e, a.json);
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
	rc = keyring_report(&next, &cur, path, a.json);
	goto out;
fail:
	rc = release_fail(&e, a.json);
out:
	sign_keyring_free(&cur);
	sign_keyring_free(&next);
	return rc;
}

static int
keyring_cmd_sign(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring kr, prev;
	struct release_keys ks = { .n = 0 };
	struct err e = ERR_INIT;
	char *text = NULL, path[PATH_MAX];
	const char *out;
	size_t len = 0;
	int rc, have_prev = 0;

	if ((rc = keyring_parse(self, argc, argv, 1, &a)) != 0) {
		return rc < 0 ? CLI_EXIT_OK : rc;
	}
	if ((rc = keyring_only(self, &a, "ro")) != 0) {
		return rc;
	}
	if (a.file == NULL || a.n_root_keys == 0) {
		return cli_usage_error(KGROUP, self, "FILE and --root-key KEY are required");
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
	if (kr.version > 1) {
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
	rc = keyring_report(&kr, have_prev ? &prev : NULL, path, a.json);
	goto out;
fail:
	rc = release_fail(&e, a.json);
out:
	free(text);
	release_keys_free(&ks);
	sign_keyring_free(&kr);
	sign_keyring_free(&prev);
	return rc;
}

static int
keyring_cmd_show(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring kr;
	struct err e = ERR_INIT;
	char path[PATH_MAX];
	int rc;

	if ((rc = keyring_parse(self, argc, argv, 1, &a)) != 0) {
		return rc < 0 ? CLI_EXIT_OK : rc;
	}
	if ((rc = keyring_only(self, &a, "")) != 0) {
		return rc;
	}
	sign_keyring_init(&kr);
	if (keyring_load(cli, a.file, &kr, path, sizeof(path), &e) != 0) {
		rc = release_fail(&e, a.json);
	} else {
		rc = keyring_report(&kr, NULL, path, a.json);
	}
	sign_keyring_free(&kr);
	return rc;
}

static int
keyring_cmd_install(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct keyring_args a;
	struct sign_keyring kr;
	struct err e = ERR_INIT;
	char *buf = NULL, path[PATH_MAX];
	size_t len = 0;
	int64_t version = 0;
	int rc;

	if ((rc = keyring_parse(self, argc, argv, 1, &a)) != 0) {
		return rc < 0 ? CLI_EXIT_OK : rc;
	}
	if ((rc = keyring_only(self, &a, "")) != 0) {
		return rc;
	}
	if (a.file == NULL) {
		return cli_usage_error(KGROUP, self, "FILE is required");
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
	rc = keyring_report(&kr, NULL, path, a.json);
	goto out;
fail:
	rc = release_fail(&e, a.json);
out:
	free(buf);
	sign_keyring_free(&kr);
	return rc;
}

static const struct cli_cmd keyring_cmds[] = {
	{ "init", "create keyring version 1",
	    " --root-key KEY... [--add-root PUB]... --add PUB... [--threshold T]\n"
	    "                    [--root-threshold R] [--not-after DATE] [--out FILE] [--json]\n"
	    "\n"
	    "A keyring lists the release keys whose signatures hosts accept and the root\n"
	    "keys that sign the keyring itself. Version 1 holds the root keys (--root-key\n"
	    "private keys, which also sign it, and --add-root public keys, which sign it\n"
	    "later with 'keyring sign') and the release keys (--add, public or private key\n"
	    "files). Without --out it becomes the master's keyring (HOME/keyring/1.json;\n"
	    "it must then be signed by R root keys already); with --out FILE it is only\n"
	    "written there.\n"
	    "\n"
	    "  --threshold T        release signatures a release needs (default 1)\n"
	    "  --root-threshold R   root signatures a keyring version needs (default 1)\n"
	    "  --not-after DATE     the --add keys' signatures count until DATE\n"
	    "\n"
	    "Example: tandem release keyring init --root-key offline/root.key --add rel/release.pub\n",
	    keyring_cmd_init },
	{ "rotate", "make the next keyring version",
	    " --root-key KEY... [--from FILE] [--add PUB]... [--remove KEYID]...\n"
	    "                    [--add-root PUB]... [--remove-root KEYID]... [--threshold T]\n"
	    "                    [--root-threshold R] [--not-after DATE] [--out FILE] [--json]\n"
	    "\n"
	    "Copies the current keyring (--from FILE, else the master's), applies the\n"
	    "changes and signs version N+1 with the --root-key keys. Hosts accept N+1 only\n"
	    "when it carries the root threshold of N's root keys AND of N+1's, and only\n"
	    "after N: sign with old and new roots (or add signatures with 'keyring sign').\n"
	    "Without --out it becomes the master's keyring (complete signatures needed);\n"
	    "push it with 'tandem swarm keyring push'. KEYID may be a unique prefix of at\n"
	    "least 8 hex digits.\n"
	    "\n"
	    "Example: tandem release keyring rotate --root-key root.key --remove 3f2a9c01 \\\n"
	    "             --add new-release.pub\n",
	    keyring_cmd_rotate },
	{ "sign", "add root signatures to a keyring document",
	    " FILE --root-key KEY... [--out FILE] [--json]\n"
	    "\n"
	    "Adds the --root-key signatures to the keyring document FILE (rewritten, or\n"
	    "written to --out) and says how many root signatures it now carries.\n",
	    keyring_cmd_sign },
	{ "show", "describe a keyring document", " [FILE] [--json]\n"
	    "\n"
	    "FILE, or the master's current keyring: version, thresholds, keys, and how\n"
	    "many of its root keys signed it.\n",
	    keyring_cmd_show },
	{ "install", "make a keyring document the master's keyring", " FILE [--json]\n"
	    "\n"
	    "Adds FILE to HOME/keyring/ as the master's current keyring: version 1 (or any\n"
	    "version, when the master has none yet) signed by its own root threshold, or\n"
	    "exactly the next version signed by both root thresholds.\n",
	    keyring_cmd_install },
};

/* `tandem release keyring ACTION ...`: ARGV[0] is "keyring". */
static int
release_cmd_keyring(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		(void)cli_help(GROUP, self);
		return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_LEN(keyring_cmds); i++) {
		if (strcmp(argv[1], keyring_cmds[i].name) == 0) {
			return keyring_cmds[i].run(cli, &keyring_cmds[i], argc - 1, argv + 1);
		}
	}
	return cli_usage_error(GROUP, self, "unknown keyring command '%s'", argv[1]);
}

static const struct cli_cmd release_cmds[] = {
	{ "pack", "pack a release directory into a deterministic tarball",
	    " DIR [-o FILE] [--version V] [--readiness MODE] [--exclude GLOB]... [--json]\n"
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
	    "  --readiness MODE    how the entrypoint says it serves, for the updater:\n"
	    "                      " RELEASE_READINESS_FD " (it takes --ready-fd N, as tandem-agent\n"
	    "                      does); default: the manifest's, else none (the\n"
	    "                      updater's HTTP probe alone)\n"
	    "  --exclude GLOB      leave out entries whose base name matches GLOB, or whose\n"
	    "                      path matches when GLOB has a '/'; repeatable\n"
	    "  --json              print {path, sha256, size, name, version, entries}\n"
	    "  -h, --help          this help\n"
	    "\n"
	    "Prints \"SHA256  PATH\". Exit status: 0 packed, 1 refused or failed, 2 usage.\n",
	    release_cmd_pack },
	{ "keygen", "create a release-signing key pair (ECDSA P-256)",
	    " --out DIR [--name NAME] [--force] [--json]\n"
	    "\n"
	    "Writes DIR/NAME.key (private, 0600) and DIR/NAME.pub (public, 0644), PEM,\n"
	    "and prints the key's id (sha256 of its public key). Runs offline: keep\n"
	    "release and root keys off the master (wiki/Release-Signing.md).\n"
	    "\n"
	    "  --out DIR     where to write (created 0700 when missing)\n"
	    "  --name NAME   file names (default: release)\n"
	    "  --force       replace existing files\n"
	    "\n"
	    "Example: tandem release keygen --out /media/offline --name release-2026\n",
	    release_cmd_keygen },
	{ "sign", "sign a release tarball (writes FILE.tsig)",
	    " FILE --key KEY... --security-version N [--min-security-version M]\n"
	    "                    [--compatible C] [--expires Nd|DATE] [--out FILE] [--force]\n"
	    "       tandem release sign FILE --cosign --key KEY...   (add a signature)\n"
	    "\n"
	    "Signs a statement of the release's name, version and kinds (from its\n"
	    "manifest.json), sha256, size, compatible string and security versions, and\n"
	    "writes it with the signatures to FILE.tsig (detached; `tandem swarm update`\n"
	    "sends it along). Runs offline. Hosts refuse a release below their security\n"
	    "floor; installing one raises the floor to its minimum security version.\n"
	    "\n"
	    "  --key KEY                 private release key, repeatable\n"
	    "  --security-version N      this release's security version (0..2147483647)\n"
	    "  --min-security-version M  once installed, refuse releases below M\n"
	    "                            (default 0: the floor stays)\n"
	    "  --compatible C            the hosts' compatible string (default " SIGN_DEFAULT_COMPATIBLE ")\n"
	    "  --expires Nd|DATE         refuse the release after that (default: never)\n"
	    "  --out FILE                signature file (default FILE.tsig)\n"
	    "  --cosign                  add the keys' signatures to the existing file\n"
	    "  --force                   replace an existing signature file\n"
	    "  --json                    print {path, statement, signed_by}\n"
	    "\n"
	    "Example: tandem release sign build/tandem-agent-1.2.0.tar.gz --key release.key \\\n"
	    "             --security-version 7 --min-security-version 6\n",
	    release_cmd_sign },
	{ "verify", "check a release's signature against a keyring",
	    " FILE [--tsig FILE] [--keyring FILE] [--compatible C] [--floor N]\n"
	    "                    [--kind agent|updater] [--json]\n"
	    "\n"
	    "Checks FILE.tsig as a host would: enough valid signatures of the keyring's\n"
	    "release keys (each key counted once), not expired, the statement matching\n"
	    "FILE's sha256, size, name and version, and, when given, the compatible\n"
	    "string, the kind and a security floor. The keyring is --keyring FILE or the\n"
	    "master's current one.\n"
	    "\n"
	    "Exit status: 0 acceptable, 1 refused (the reason and its kind:\n"
	    "signature_invalid, unknown_key, statement_mismatch, expired,\n"
	    "below_security_floor), 2 usage error.\n",
	    release_cmd_verify },
	{ "keyring", "the keyring of release keys: init, rotate, sign, show, install",
	    " init|rotate|sign|show|install [options]\n"
	    "\n"
	    "  init      create keyring version 1 (root keys, release keys, thresholds)\n"
	    "  rotate    make version N+1: add/remove keys, signed by old and new roots\n"
	    "  sign      add root signatures to a keyring document\n"
	    "  show      describe a keyring document or the master's keyring\n"
	    "  install   make a keyring document the master's current keyring\n"
	    "\n"
	    "Run 'tandem release keyring ACTION --help' for its options. The master keeps\n"
	    "every version in HOME/keyring/N.json; 'tandem swarm enroll' puts the current\n"
	    "one into new bundles and 'tandem swarm keyring push' sends it to hosts.\n",
	    release_cmd_keyring },
};

const struct cli_group cli_group_release = {
	.name = "release",
	.summary = "release tarballs and signatures: pack, keygen, sign, verify, keyring",
	.cmds = release_cmds,
	.n_cmds = ARRAY_LEN(release_cmds),
};
