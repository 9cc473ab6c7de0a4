/*
 * `tandem pki` — create the CA, issue certificates, describe them.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "master/cli.h"
#include "master/certs.h"
#include "master/certs_ca.h"
#include "master/certs_rollover.h"
#include "common/testhook.h"
#include "pki/crl.h"
#include "pki/pki.h"

/*
 * OBJ's members as "key: value" lines in their order; an object member as
 * "key.sub: value" lines, an array of objects as one "key: f=v f=v" line each.
 */
static void
pki_print_lines(const cJSON *obj)
{
	const cJSON *it, *sub, *f;

	cJSON_ArrayForEach(it, obj)
	{
		if (cJSON_IsString(it)) {
			printf("%s: %s\n", it->string, it->valuestring);
		} else if (cJSON_IsNumber(it)) {
			printf("%s: %.0f\n", it->string, it->valuedouble);
		} else if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
			cJSON_ArrayForEach(sub, it)
			{
				if (cJSON_IsString(sub)) {
					printf("%s.%s: %s\n", it->string, sub->string, sub->valuestring);
				} else if (cJSON_IsNumber(sub)) {
					printf("%s.%s: %.0f\n", it->string, sub->string, sub->valuedouble);
				} else if (cJSON_IsBool(sub)) {
					printf("%s.%s: %s\n", it->string, sub->string,
					    cJSON_IsTrue(sub) ? "yes" : "no");
				} else if (cJSON_IsObject(sub)) {
					printf("%s:", it->string);
					cJSON_ArrayForEach(f, sub)
					{
						if (cJSON_IsString(f)) {
							printf(" %s=%s", f->string, f->valuestring);
						} else if (cJSON_IsNumber(f)) {
							printf(" %s=%.0f", f->string, f->valuedouble);
						} else if (cJSON_IsBool(f)) {
							printf(" %s=%s", f->string,
							    cJSON_IsTrue(f) ? "yes" : "no");
						}
					}
					printf("\n");
				}
			}
		}
	}
}

/* Print OBJ as JSON, or as lines (pki_print_lines); frees OBJ (NULL: out of memory). */
static int
pki_cli_print(const struct cli *cli, cJSON *obj)
{
	struct err e = ERR_INIT;

	if (obj == NULL) {
		err_set(&e, ERR_NOMEM, "out of memory");
		return cli_fail(cli, &e);
	}
	if (cli->json) {
		return cli_print_json(cli, obj);
	}
	pki_print_lines(obj);
	cJSON_Delete(obj);
	return cli_flush(cli);
}

enum {
	PKI_OPT_MASTER_CN = 'm',
	PKI_OPT_ROLE = 'r',
	PKI_OPT_OUT = 'o',
	PKI_OPT_SAN = 's',
	PKI_OPT_DAYS = 'd',
	PKI_OPT_NOT_BEFORE = 'B',
	PKI_OPT_NOT_AFTER = 'A',
	PKI_OPT_EKU = 'e',
	PKI_OPT_KEY_TYPE = 'k',
	PKI_OPT_FORCE = 'f',
};

static const struct cli_opt pki_init_opts[] = {
	{ "master-cn", PKI_OPT_MASTER_CN, 0, "CN",
	    "the master's common name (default " TLS_DEFAULT_MASTER_CN ")" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
pki_cmd_init(struct cli *cli, int argc, char **argv)
{
	const char *master_cn = TLS_DEFAULT_MASTER_CN;
	struct cli_getopt g;
	struct err e = ERR_INIT;
	char ca_crt[PATH_MAX], m_crt[PATH_MAX], m_key[PATH_MAX];
	char ca_fp[TLS_FP_HEX_LEN + 1], m_fp[TLS_FP_HEX_LEN + 1];
	int c;
	cJSON *o;

	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case PKI_OPT_MASTER_CN:
			master_cn = g.arg;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (pki_check_cn(master_cn, &e) != 0) {
		return cli_usage(cli, "--master-cn: %s", err_msg(&e));
	}
	if (pki_init(cli->home, master_cn, &e) != 0) {
		return cli_fail(cli, &e);
	}
	if (pki_path(cli->home, PKI_CA_CRT, ca_crt, sizeof(ca_crt)) != 0 ||
	    pki_path(cli->home, PKI_MASTER_CRT, m_crt, sizeof(m_crt)) != 0 ||
	    pki_path(cli->home, PKI_MASTER_KEY, m_key, sizeof(m_key)) != 0) {
		err_set(&e, ERR_USAGE, "the home directory path is too long");
		return cli_fail(cli, &e);
	}
	if (pki_fingerprint_file(ca_crt, ca_fp, &e) != 0 ||
	    pki_fingerprint_file(m_crt, m_fp, &e) != 0) {
		return cli_fail(cli, &e);
	}
	cli_note("created the CA and the master certificate (CN=%s) under %s", master_cn,
	    cli->home);
	o = cJSON_CreateObject();
	if (o != NULL &&
	    (json_add_str(o, "ca_cert", ca_crt) != 0 ||
		json_add_str(o, "ca_fingerprint", ca_fp) != 0 ||
		json_add_str(o, "master_cn", master_cn) != 0 ||
		json_add_str(o, "master_cert", m_crt) != 0 ||
		json_add_str(o, "master_key", m_key) != 0 ||
		json_add_str(o, "master_fingerprint", m_fp) != 0)) {
		cJSON_Delete(o);
		o = NULL;
	}
	return pki_cli_print(cli, o);
}

/* --not-before/--not-after: "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ". */
static int
parse_time_opt(const char *s, time_t *out)
{
	return iso8601_parse(s, out) == 0 && *out > 0 ? 0 : -1;
}

static const struct cli_opt pki_issue_opts[] = {
	{ "role", PKI_OPT_ROLE, 1, "ROLE", "agent, updater or master (required)" },
	{ "out", PKI_OPT_OUT, 1, "DIR", "output directory (required; created 0700)" },
	{ "san", PKI_OPT_SAN, 1, "DNS|IP",
	    "subjectAltName, repeatable (agents and updaters\nalways get DNS:NAME)" },
	{ "days", PKI_OPT_DAYS, 1, "N", "validity in days (default 397, at most 3650)" },
	{ "not-before", PKI_OPT_NOT_BEFORE, 0, "T",
	    "start of validity (YYYY-MM-DD[THH:MM:SSZ], UTC)" },
	{ "not-after", PKI_OPT_NOT_AFTER, 0, "T", "end of validity (instead of --days)" },
	{ "eku", PKI_OPT_EKU, 1, "client|server|both",
	    "extended key usage (default: master client,\nagent and updater both)" },
	{ "key-type", PKI_OPT_KEY_TYPE, 1, "ec|rsa|rsa3072",
	    "ECDSA P-256 (default), RSA 2048 or RSA 3072" },
	{ "force", PKI_OPT_FORCE, 1, NULL, "replace existing files in DIR" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
pki_cmd_issue(struct cli *cli, int argc, char **argv)
{
	struct pki_issue_opts o;
	struct cli_getopt g;
	const char *sans[PKI_MAX_SANS];
	const char *role = NULL;
	const char *outdir = NULL;
	char base[PKI_CN_MAX + 16], mcn[PKI_CN_MAX + 1];
	char key_path[PATH_MAX], crt_path[PATH_MAX], ca_copy[PATH_MAX], ca_crt[PATH_MAX];
	char fp[TLS_FP_HEX_LEN + 1];
	char nb[32], na[32];
	struct tls_identity id;
	struct err e = ERR_INIT;
	long long days;
	int c, n, optind_;
	cJSON *obj;

	pki_issue_opts_init(&o);
	o.sans = sans;
	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case PKI_OPT_ROLE:
			role = g.arg;
			break;
		case PKI_OPT_OUT:
			outdir = g.arg;
			break;
		case PKI_OPT_SAN:
			if (o.n_sans == PKI_MAX_SANS) {
				return cli_usage(cli, "at most %d --san", PKI_MAX_SANS);
			}
			sans[o.n_sans++] = g.arg;
			break;
		case PKI_OPT_DAYS:
			if (parse_ll(g.arg, 1, PKI_MAX_DAYS, &days) != 0) {
				return cli_usage(cli,
				    "--days '%s': expected a whole number of days in 1..%d", g.arg,
				    PKI_MAX_DAYS);
			}
			o.days = (int)days;
			break;
		case PKI_OPT_NOT_BEFORE:
			if (parse_time_opt(g.arg, &o.not_before) != 0) {
				return cli_usage(cli,
				    "--not-before '%s': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
				    g.arg);
			}
			break;
		case PKI_OPT_NOT_AFTER:
			if (parse_time_opt(g.arg, &o.not_after) != 0) {
				return cli_usage(cli,
				    "--not-after '%s': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
				    g.arg);
			}
			break;
		case PKI_OPT_EKU:
			if (strcmp(g.arg, "client") == 0) {
				o.eku = PKI_EKU_CLIENT;
			} else if (strcmp(g.arg, "server") == 0) {
				o.eku = PKI_EKU_SERVER;
			} else if (strcmp(g.arg, "both") == 0) {
				o.eku = PKI_EKU_BOTH;
			} else {
				return cli_usage(cli,
				    "--eku '%s': expected client, server or both", g.arg);
			}
			break;
		case PKI_OPT_KEY_TYPE:
			if (pki_key_type_parse(g.arg, &o.key_type) != 0) {
				return cli_usage(cli,
				    "--key-type '%s': expected ec, rsa (2048) or rsa3072", g.arg);
			}
			break;
		case PKI_OPT_FORCE:
			o.force = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	optind_ = cli_getopt_index(&g);
	o.name = argv[optind_];
	if (role == NULL) {
		return cli_usage(cli, "--role is required (master, agent or updater)");
	}
	o.role = tls_role_parse(role);
	if (o.role == TLS_ROLE_UNKNOWN) {
		return cli_usage(cli, "--role '%s': expected master, agent or updater",
		    role);
	}
	if (outdir == NULL || *outdir == '\0') {
		return cli_usage(cli, "--out DIR is required");
	}
	if (o.days != 0 && o.not_after != 0) {
		return cli_usage(cli, "--days and --not-after exclude each other");
	}
	if (o.not_before != 0 && o.not_after != 0 && o.not_after <= o.not_before) {
		return cli_usage(cli, "--not-after must be later than --not-before");
	}
	if (o.role != TLS_ROLE_MASTER) {
		/* A name no host may have is a mistake on the command line (exit 2). */
		if (pki_master_cn(cli->home, mcn, sizeof(mcn), &e) != 0) {
			return cli_fail(cli, &e);
		}
		if (pki_check_host_name(o.name, mcn, &e) != 0) {
			return cli_usage(cli, "%s", err_msg(&e));
		}
	}
	if (o.role == TLS_ROLE_UPDATER) {
		n = snprintf(base, sizeof(base), "updater@%.*s", PKI_CN_MAX, o.name);
	} else {
		n = snprintf(base, sizeof(base), "%.*s", PKI_CN_MAX, o.name);
	}
	/* The name is checked in pki_issue(); the file name must not escape DIR. */
	if (n < 0 || strchr(base, '/') != NULL || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0) {
		return cli_usage(cli, "NAME '%s' is not usable", o.name);
	}
	if (snprintf(key_path, sizeof(key_path), "%s/%s.key", outdir, base) >=
		(int)sizeof(key_path) ||
	    snprintf(crt_path, sizeof(crt_path), "%s/%s.crt", outdir, base) >=
		(int)sizeof(crt_path) ||
	    snprintf(ca_copy, sizeof(ca_copy), "%s/ca.crt", outdir) >= (int)sizeof(ca_copy) ||
	    pki_path(cli->home, PKI_CA_CRT, ca_crt, sizeof(ca_crt)) != 0) {
		return cli_usage(cli, "--out path too long");
	}
	o.key_out = key_path;
	o.cert_out = crt_path;
	if (fs_mkdir_p(outdir, 0700) != 0) {
		err_sys(&e, "cannot create %s", outdir);
		return cli_fail(cli, &e);
	}
	if (pki_issue(cli->home, &o, &e) != 0) {
		return cli_fail(cli, &e);
	}
	/* The bundle directory also gets the CA certificate peers verify against. */
	if (fs_copy_file(ca_crt, ca_copy, 0644) != 0) {
		err_sys(&e, "cannot copy %s to %s", ca_crt, ca_copy);
		return cli_fail(cli, &e);
	}
	if (pki_fingerprint_file(crt_path, fp, &e) != 0) {
		return cli_fail(cli, &e);
	}
	if (tls_identity_from_file(crt_path, NULL, &id, &e) != 0) {
		return cli_fail(cli, &e);
	}
	iso8601_utc(id.not_before, nb, sizeof(nb));
	iso8601_utc(id.not_after, na, sizeof(na));
	cli_note("issued %s certificate CN=%s to %s", tls_role_name(o.role), id.cn, crt_path);
	obj = cJSON_CreateObject();
	if (obj != NULL &&
	    (json_add_str(obj, "cert", crt_path) != 0 || json_add_str(obj, "key", key_path) != 0 ||
		json_add_str(obj, "ca", ca_copy) != 0 || json_add_str(obj, "cn", id.cn) != 0 ||
		json_add_str(obj, "role", tls_role_name(o.role)) != 0 ||
		json_add_str(obj, "not_before", nb) != 0 ||
		json_add_str(obj, "not_after", na) != 0 ||
		json_add_str(obj, "fingerprint", fp) != 0)) {
		cJSON_Delete(obj);
		obj = NULL;
	}
	return pki_cli_print(cli, obj);
}

static const struct cli_opt pki_show_opts[] = {
	{ "master-cn", PKI_OPT_MASTER_CN, 0, "CN",
	    "decide the master role by CN (default: the CN of\n"
	    "HOME/master/master.crt; with this option the home\nis not read)" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
pki_cmd_show(struct cli *cli, int argc, char **argv)
{
	struct cli_getopt g;
	struct err e = ERR_INIT;
	char mcn[PKI_CN_MAX + 1];
	const char *master_cn = NULL;
	int c, optind_;

	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case PKI_OPT_MASTER_CN:
			master_cn = g.arg;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	optind_ = cli_getopt_index(&g);
	if (master_cn == NULL) {
		/* Roles depend on the master CN recorded in the home directory. */
		if (cli_home_check(cli, &e) != 0) {
			return cli_fail(cli, &e);
		}
		if (pki_master_cn(cli->home, mcn, sizeof(mcn), &e) != 0) {
			return cli_fail(cli, &e);
		}
		master_cn = mcn;
	}
	/* The kind of the failure: an unreadable FILE is not a malformed one. */
	if (access(argv[optind_], R_OK) != 0) {
		err_sys_kind(&e, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "cannot read %s",
		    argv[optind_]);
		return cli_fail(cli, &e);
	}
	if (pki_show(argv[optind_], stdout, master_cn, cli->json, &e) != 0) {
		return cli_fail(cli, &e);
	}
	return cli_flush(cli);
}


/*
 * A point in time for --next-update/--this-update: "Nd", "Nh", "Nm" or "Ns"
 * from now, or "YYYY-MM-DD[THH:MM:SSZ]" (UTC; the past is allowed: tests
 * make stale CRLs that way).
 */
static int
parse_when(const char *s, time_t now, time_t *out)
{
	size_t len = s != NULL ? strlen(s) : 0;
	long long span;

	if (len >= 2 && strchr("dhms", s[len - 1]) != NULL) {
		if (parse_span_s(s, 1, 3650LL * 86400, &span) != 0) {
			return -1;
		}
		*out = now + (time_t)span;
		return 0;
	}
	return parse_time_opt(s, out);
}

/* Sign and write a fresh CRL; adds its number and file to REPORT. */
static int
pki_issue_crl(const struct cli *cli, time_t this_update, time_t next_update, cJSON *report,
    struct err *e)
{
	unsigned long long number = 0;
	char path[PATH_MAX];

	if (certs_crl_issue(cli->home, this_update, next_update, &number, e) != 0) {
		return err_prefix(e, "CRL");
	}
	if (pki_path(cli->home, CRL_PEM_FILE, path, sizeof(path)) != 0) {
		return err_set(e, ERR_USAGE, "master home path %s is too long", cli->home);
	}
	cli_note("CRL number %llu written to %s", number, path);
	if (json_add_int(report, "crl_number", (long long)number) != 0 ||
	    json_add_str(report, "crl", path) != 0) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	return 0;
}

enum {
	PKI_OPT_HOST = 'H',
	PKI_OPT_REASON = 'R',
	PKI_OPT_NEXT_UPDATE = 'n',
	PKI_OPT_THIS_UPDATE = 't',
	PKI_OPT_WARN_DAYS = 'w',
	PKI_OPT_TIMEOUT = 'T',
	PKI_OPT_TEST_VALIDITY = 'V',
};

static const struct cli_opt pki_revoke_opts[] = {
	{ "host", PKI_OPT_HOST, 0, "NAME", "every certificate of host NAME (instead of CERT)" },
	{ "reason", PKI_OPT_REASON, 0, "R",
	    "unspecified (default), key-compromise, ca-compromise,\n"
	    "affiliation-changed, superseded, cessation-of-operation" },
	{ "next-update", PKI_OPT_NEXT_UPDATE, 0, "WHEN",
	    "the CRL's next update: Nd, Nh, Nm, Ns from now or a\n"
	    "time YYYY-MM-DD[THH:MM:SSZ] (default 30d)" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
pki_cmd_revoke(struct cli *cli, int argc, char **argv)
{
	struct cli_getopt g;
	const char *host = NULL;
	const char *target = NULL;
	const char *next = "30d";
	int reason = CRL_REASON_UNSPECIFIED;
	time_t next_update;
	struct certs_revoked *res = NULL;
	size_t n = 0;
	struct err e = ERR_INIT;
	cJSON *o = NULL, *arr;
	int c, optind_;

	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case PKI_OPT_HOST:
			host = g.arg;
			break;
		case PKI_OPT_REASON:
			if (crl_reason_parse(g.arg, &reason) != 0) {
				return cli_usage(cli, "--reason: unknown reason '%s'", g.arg);
			}
			break;
		case PKI_OPT_NEXT_UPDATE:
			next = g.arg;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	optind_ = cli_getopt_index(&g);
	if (optind_ < argc) {
		target = argv[optind_];
	}
	if ((host == NULL) == (target == NULL)) {
		return cli_usage(cli, "give a certificate (CERT, SERIAL or FINGERPRINT) or --host "
				      "NAME, one of them");
	}
	if (parse_when(next, time(NULL), &next_update) != 0) {
		return cli_usage(cli, "--next-update '%s': expected Nd, Nh, Nm, Ns or a time", next);
	}
	if (certs_revoke(cli->home, target, host, reason, &res, &n, &e) != 0) {
		return cli_fail(cli, &e);
	}
	o = cJSON_CreateObject();
	arr = o != NULL ? json_add_array(o, "revoked") : NULL;
	if (arr == NULL) {
		err_set(&e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		cJSON *it = cJSON_CreateObject();
		if (it == NULL || !cJSON_AddItemToArray(arr, it) ||
		    json_add_str(it, "serial", res[i].r.serial) != 0 ||
		    json_add_str(it, "cn", res[i].r.subject) != 0 ||
		    json_add_str(it, "fingerprint", res[i].r.fp) != 0 ||
		    json_add_bool(it, "already", res[i].already) != 0) {
			cJSON_Delete(it);
			err_set(&e, ERR_NOMEM, "out of memory");
			goto out;
		}
		cli_note("%s serial %s (CN=%s)", res[i].already ? "already revoked:" : "revoked:",
		    res[i].r.serial, res[i].r.subject[0] != '\0' ? res[i].r.subject : "?");
	}
	/* The revocations are recorded; the CRL says them to the hosts. */
	(void)pki_issue_crl(cli, 0, next_update, o, &e);
out:
	free(res);
	if (err_failed(&e)) {
		cJSON_Delete(o);
		return cli_fail(cli, &e);
	}
	return pki_cli_print(cli, o);
}

static const struct cli_opt pki_crl_opts[] = {
	{ "next-update", PKI_OPT_NEXT_UPDATE, 0, "WHEN",
	    "Nd, Nh, Nm, Ns from now or YYYY-MM-DD[THH:MM:SSZ]\n(default 30d)" },
	{ "this-update", PKI_OPT_THIS_UPDATE, 0, "T",
	    "the CRL's start (default: 5 minutes ago)" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
pki_cmd_crl(struct cli *cli, int argc, char **argv)
{
	struct cli_getopt g;
	struct err e = ERR_INIT;
	const char *next = "30d";
	time_t now = time(NULL);
	time_t this_update = 0, next_update;
	cJSON *o;
	int c;

	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case PKI_OPT_NEXT_UPDATE:
			next = g.arg;
			break;
		case PKI_OPT_THIS_UPDATE:
			if (parse_time_opt(g.arg, &this_update) != 0) {
				return cli_usage(cli,
				    "--this-update '%s': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
				    g.arg);
			}
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (parse_when(next, now, &next_update) != 0) {
		return cli_usage(cli, "--next-update '%s': expected Nd, Nh, Nm, Ns or a time", next);
	}
	o = cJSON_CreateObject();
	if (o == NULL) {
		return pki_cli_print(cli, NULL);
	}
	if (pki_issue_crl(cli, this_update, next_update, o, &e) != 0) {
		cJSON_Delete(o);
		return cli_fail(cli, &e);
	}
	return pki_cli_print(cli, o);
}

static const struct cli_opt pki_status_opts[] = {
	{ "warn-days", PKI_OPT_WARN_DAYS, 0, "N", "the warning horizon in days (default 30)" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
pki_cmd_status(struct cli *cli, int argc, char **argv)
{
	static const char *const names[] = { "ca", "master" };
	struct cli_getopt g;
	long long warn = CERTS_DEFAULT_WARN_DAYS;
	struct err e = ERR_INIT;
	const cJSON *st;
	cJSON *o = NULL;
	int c;

	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case PKI_OPT_WARN_DAYS:
			if (parse_ll(g.arg, 0, 3650, &warn) != 0) {
				return cli_usage(cli, "--warn-days '%s': expected 0..3650", g.arg);
			}
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (certs_status(cli->home, (int)warn, &o, &e) != 0) {
		return cli_fail(cli, &e);
	}
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		st = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, names[i]),
		    "state");
		if (cJSON_IsString(st) && strcmp(st->valuestring, "ok") != 0) {
			log_warnx("the %s certificate is %s", names[i], st->valuestring);
		}
	}
	st = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "crl"), "state");
	if (cJSON_IsString(st) && strcmp(st->valuestring, "stale") == 0) {
		log_warnx("the CRL is past its next update: run 'tandem pki crl'");
	}
	return pki_cli_print(cli, o);
}

/*
 * One host's outcome of a fleet-wide step: {"host","result"[,"error"]} into
 * ARR (NULL: out of memory already), and without --json a line
 * "HOST: RESULT[: ERROR]". -1 with E when out of memory.
 */
static int
pki_host_result(const struct cli *cli, cJSON *arr, const char *host, const char *result,
    const char *error, struct err *e)
{
	cJSON *it = arr != NULL ? cJSON_CreateObject() : NULL;

	if (!cli->json) {
		printf("%s: %s%s%s\n", host, result, error[0] != '\0' ? ": " : "", error);
	}
	if (it != NULL && !cJSON_AddItemToArray(arr, it)) {
		cJSON_Delete(it);
		it = NULL;
	}
	/* From here on IT belongs to ARR. */
	if (it == NULL || json_add_str(it, "host", host) != 0 ||
	    json_add_str(it, "result", result) != 0 ||
	    (error[0] != '\0' && json_add_str(it, "error", error) != 0)) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	return 0;
}

/*
 * The end of a fleet-wide step: the error (JE when building the answer
 * failed, else E when RC says the step failed; the hosts were listed), or
 * OBJ under --json, or NOTE. Frees OBJ.
 */
static int
pki_fleet_end(struct cli *cli, cJSON *obj, const struct err *je, int rc, const struct err *e,
    const char *note)
{
	if (err_failed(je) || rc != 0) {
		cJSON_Delete(obj);
		return cli_fail(cli, err_failed(je) ? je : e);
	}
	if (cli->json) {
		return cli_print_json(cli, obj);
	}
	cJSON_Delete(obj);
	cli_note("%s", note);
	return cli_flush(cli);
}

static const struct cli_opt pki_renew_master_opts[] = {
	{ "days", PKI_OPT_DAYS, 0, "N", "validity of the new certificate in days (default 397)" },
	{ "timeout", PKI_OPT_TIMEOUT, 0, "S", "seconds for each request to a host (default 60)" },
	{ "test-validity", PKI_OPT_TEST_VALIDITY, 0, "S",
	    "test builds only: the new certificate expires in S seconds" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
pki_cmd_renew_master(struct cli *cli, int argc, char **argv)
{
	struct certs_rollover_opts o = { 0, 0, 60 };
	struct certs_rollover r;
	struct cli_getopt g;
	struct err e = ERR_INIT, je = ERR_INIT;
	char note[160];
	long long v;
	cJSON *obj, *arr;
	int c, rc;

	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case PKI_OPT_DAYS:
			if (parse_ll(g.arg, 1, PKI_MAX_DAYS, &v) != 0) {
				return cli_usage(cli, "--days '%s': expected 1..%d", g.arg,
				    PKI_MAX_DAYS);
			}
			o.days = (int)v;
			break;
		case PKI_OPT_TIMEOUT:
			if (parse_ll(g.arg, 1, 3600, &v) != 0) {
				return cli_usage(cli, "--timeout '%s': expected 1..3600", g.arg);
			}
			o.timeout_s = (int)v;
			break;
		case PKI_OPT_TEST_VALIDITY:
			if (!testhook_enabled()) {
				return cli_usage(cli, "--test-validity exists only in test builds");
			}
			if (parse_ll(g.arg, 60, 86400, &o.test_valid_s) != 0) {
				return cli_usage(cli, "--test-validity: 60..86400 s");
			}
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	rc = certs_renew_master(cli->home, &o, &r, &e);
	obj = cJSON_CreateObject();
	arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
	if (arr == NULL || json_add_str(obj, "old_fingerprint", r.old_fp) != 0 ||
	    json_add_str(obj, "new_fingerprint", r.new_fp) != 0 ||
	    json_add_str(obj, "new_not_after", r.new_not_after) != 0 ||
	    json_add_bool(obj, "resumed", r.resumed) != 0 ||
	    json_add_bool(obj, "finished", r.finished) != 0) {
		err_set(&je, ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < r.n && !err_failed(&je); i++) {
		(void)pki_host_result(cli, arr, r.hosts[i].host, r.hosts[i].result, r.hosts[i].error,
		    &je);
	}
	certs_rollover_free(&r);
	(void)snprintf(note, sizeof(note),
	    "the master certificate is now %s; every host confirmed it", r.new_fp);
	return pki_fleet_end(cli, obj, &je, rc, &e, note);
}

static const struct cli_opt pki_ca_rotate_opts[] = {
	{ "timeout", PKI_OPT_TIMEOUT, 0, "S", "seconds for each request to a host (default 60)" },
	{ NULL, 0, 0, NULL, NULL },
};

static int
pki_cmd_ca_rotate(struct cli *cli, int argc, char **argv)
{
	struct certs_ca_result r;
	struct cli_getopt g;
	struct err e = ERR_INIT, je = ERR_INIT;
	long long v;
	int timeout_s = 60, c, rc, optind_;
	const char *step;
	cJSON *obj, *arr;

	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case PKI_OPT_TIMEOUT:
			if (parse_ll(g.arg, 1, 3600, &v) != 0) {
				return cli_usage(cli, "--timeout '%s': expected 1..3600", g.arg);
			}
			timeout_s = (int)v;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	optind_ = cli_getopt_index(&g);
	step = optind_ < argc ? argv[optind_] : "";
	if (strcmp(step, "begin") == 0) {
		rc = certs_ca_rotate_begin(cli->home, timeout_s, &r, &e);
	} else if (strcmp(step, "finish") == 0) {
		rc = certs_ca_rotate_finish(cli->home, timeout_s, &r, &e);
	} else {
		return cli_usage(cli, "STEP '%s': begin or finish", step);
	}
	obj = cJSON_CreateObject();
	arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
	if (arr == NULL || json_add_str(obj, "step", step) != 0 ||
	    json_add_str(obj, "new_ca_fingerprint", r.new_ca_fp) != 0 ||
	    json_add_str(obj, "old_ca_fingerprint", r.old_ca_fp) != 0 ||
	    json_add_bool(obj, "finished", r.finished) != 0) {
		err_set(&je, ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < r.n && !err_failed(&je); i++) {
		if (r.hosts[i].host[0] != '\0') {
			(void)pki_host_result(cli, arr, r.hosts[i].host, r.hosts[i].result,
			    r.hosts[i].error, &je);
		}
	}
	certs_ca_result_free(&r);
	return pki_fleet_end(cli, obj, &je, rc, &e,
	    strcmp(step, "begin") == 0
		? "every host trusts the old and the new CA; the new one signs. Next: 'tandem pki "
		  "renew-master', 'tandem swarm renew --all --force', then 'tandem pki ca-rotate "
		  "finish'"
		: "the old CA is retired: every host trusts the new one alone");
}

static const struct cli_cmd pki_cmds[] = {
	{
	    .name = "init",
	    .summary = "create the home, the CA and the master's certificate",
	    .synopsis = "[--master-cn CN]",
	    .description =
		"Creates the master's home (0700) with HOME/ca/ca.key + ca.crt (ECDSA P-256,\n"
		"10 years) and the master's client certificate HOME/master/master.key +\n"
		"master.crt. The only command that creates a home; never overwrites an\n"
		"existing CA.",
	    .opts = pki_init_opts,
	    .example = "tandem --home ~/fleet pki init --master-cn ops-master",
	    .home = CLI_HOME_CREATE,
	    .run = pki_cmd_init,
	},
	{
	    .name = "issue",
	    .summary = "issue a certificate (agent, updater or master)",
	    .synopsis = "NAME --role agent|updater|master --out DIR [options]",
	    .operand = "NAME",
	    .description =
		"Writes DIR/CN.key (0600), DIR/CN.crt and DIR/ca.crt, where CN is NAME\n"
		"(agent, master) or updater@NAME (updater), signed by the home's CA.\n"
		"Refuses to replace existing files unless --force.",
	    .opts = pki_issue_opts,
	    .example = "tandem pki issue web1 --role agent --out ./web1 --san 192.0.2.10",
	    .home = CLI_HOME_EXISTING,
	    .run = pki_cmd_issue,
	},
	{
	    .name = "show",
	    .summary = "describe a certificate file",
	    .synopsis = "FILE [--master-cn CN]",
	    .operand = "FILE",
	    .description =
		"Prints subject, issuer, role, serial, validity, SANs, EKU, key type and\n"
		"the SHA-256 fingerprint of the first certificate in FILE (PEM or DER).\n"
		"The role depends on the master CN, read from the home unless --master-cn.",
	    .opts = pki_show_opts,
	    .example = "tandem pki show ~/.tandem/hosts/web1/updater.crt",
	    .home = CLI_HOME_NONE,
	    .run = pki_cmd_show,
	},
	{
	    .name = "status",
	    .summary = "expiry of the CA and the master certificate, CRL state",
	    .synopsis = "[--warn-days N]",
	    .description =
		"Prints the CA's and the master certificate's CN, serial, not_after, days\n"
		"left and state (ok, expiring within the horizon, expired), and the CRL's\n"
		"number, validity, revoked count and state (ok, stale, missing). A state\n"
		"other than ok is also said on stderr; the exit status stays 0.",
	    .opts = pki_status_opts,
	    .example = "tandem pki status --warn-days 60",
	    .home = CLI_HOME_EXISTING,
	    .run = pki_cmd_status,
	},
	{
	    .name = "revoke",
	    .summary = "revoke a certificate or all of a host's, and sign a new CRL",
	    .synopsis = "CERT|SERIAL|FINGERPRINT [--reason R] [--next-update WHEN]\n"
			"--host NAME [--reason R] [--next-update WHEN]",
	    .operand = "CERT",
	    .operand_optional = 1,
	    .description =
		"Records the revocation in the registry and writes a new CRL to\n"
		"HOME/ca/crl.der and crl.pem. CERT is a certificate file; a fingerprint\n"
		"is looked up among the certificates this CA issued; --host takes every\n"
		"agent and updater certificate of NAME (all generations). From then on this\n"
		"master refuses those certificates; hosts refuse them once they have the CRL.",
	    .opts = pki_revoke_opts,
	    .example = "tandem pki revoke --host web1 --reason key-compromise",
	    .home = CLI_HOME_EXISTING,
	    .run = pki_cmd_revoke,
	},
	{
	    .name = "crl",
	    .summary = "sign a new CRL (the same revocations, a later next update)",
	    .synopsis = "[--next-update WHEN] [--this-update T]",
	    .description =
		"Writes HOME/ca/crl.der and crl.pem with every revocation in the registry\n"
		"and the next CRL number. Re-sign before the next update passes: hosts keep\n"
		"enforcing a stale CRL but report it as stale.",
	    .opts = pki_crl_opts,
	    .example = "tandem pki crl --next-update 30d",
	    .home = CLI_HOME_EXISTING,
	    .run = pki_cmd_crl,
	},
	{
	    .name = "renew-master",
	    .summary = "renew the master's certificate, rolling every updater's pin over",
	    .synopsis = "[--days N] [--timeout S]",
	    .description =
		"Makes a new key for the master and has the CA certify it; asks every\n"
		"enrolled updater, over the current certificate, to accept the new one\n"
		"beside it (PUT /pins/master); switches the master to the new pair; then\n"
		"asks each updater, over the new certificate, to make it its only master\n"
		"pin. Hosts that could not be reached are listed and keep accepting the\n"
		"old certificate, which the master keeps: run the command again to finish.\n"
		"Exit status 0 when every host confirmed, 1 otherwise.",
	    .opts = pki_renew_master_opts,
	    .example = "tandem pki renew-master --days 397",
	    .home = CLI_HOME_EXISTING,
	    .run = pki_cmd_renew_master,
	},
	{
	    .name = "ca-rotate",
	    .summary = "replace the CA in steps (begin, then finish) without losing a host",
	    .synopsis = "STEP [--timeout S]",
	    .operand = "STEP",
	    .description =
		"STEP is begin or finish.\n"
		"begin: makes a new CA, keeps the old one in HOME/ca/retired/, makes the new\n"
		"one the signing CA and sends every updater (and through it its agent) a\n"
		"bundle of both CAs (PUT /trust), and the CRL re-signed by the new CA.\n"
		"Then re-issue everything under the new CA: 'tandem pki renew-master' and\n"
		"'tandem swarm renew --all --force'.\n"
		"finish: checks that the master's certificate and every host's updater and\n"
		"agent certificates chain to the new CA (nothing changes otherwise), sends\n"
		"every updater the new CA alone and removes the old one. Either step can be\n"
		"run again to finish what an unreachable host or a crash left undone.",
	    .opts = pki_ca_rotate_opts,
	    .example = "tandem pki ca-rotate begin",
	    .home = CLI_HOME_EXISTING,
	    .run = pki_cmd_ca_rotate,
	},
};

const struct cli_group cli_group_pki = {
	.name = "pki",
	.summary = "the certificate authority: init, issue, show, status, revoke, crl, renew-master, ca-rotate",
	.cmds = pki_cmds,
	.n_cmds = ARRAY_LEN(pki_cmds),
};
