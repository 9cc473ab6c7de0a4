/*
 * `tandem pki` — create the CA, issue certificates, describe them.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "master/cli.h"
#include "pki/pki.h"

#define GROUP "pki"

/* Print OBJ as JSON, or as "key: value" lines in its order; frees OBJ. */
static int
pki_cli_print(cJSON *obj, int json)
{
	const cJSON *it;
	int rc = CLI_EXIT_FAIL;

	if (obj == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	if (json) {
		char *text = json_print_compact(obj);
		if (text == NULL) {
			log_warnx("out of memory");
			goto out;
		}
		printf("%s\n", text);
		free(text);
	} else {
		cJSON_ArrayForEach(it, obj)
		{
			printf("%s: %s\n", it->string, cJSON_GetStringValue(it));
		}
	}
	if (fflush(stdout) != 0) {
		log_warn("writing to stdout");
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	cJSON_Delete(obj);
	return rc;
}

static int
pki_cmd_init(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "master-cn", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *master_cn = TLS_DEFAULT_MASTER_CN;
	char err[512];
	char ca_crt[PATH_MAX], m_crt[PATH_MAX], m_key[PATH_MAX];
	char ca_fp[TLS_FP_HEX_LEN + 1], m_fp[TLS_FP_HEX_LEN + 1];
	int json = 0;
	int c;
	cJSON *o;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hm:", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			master_cn = optarg;
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
	if (pki_check_cn(master_cn, err, sizeof(err)) != 0) {
		return cli_usage_error(GROUP, self, "%s", err);
	}
	if (pki_init(cli->home, master_cn, err, sizeof(err)) != 0) {
		log_warnx("pki init: %s", err);
		return CLI_EXIT_FAIL;
	}
	if (pki_path(cli->home, PKI_CA_CRT, ca_crt, sizeof(ca_crt)) != 0 ||
	    pki_path(cli->home, PKI_MASTER_CRT, m_crt, sizeof(m_crt)) != 0 ||
	    pki_path(cli->home, PKI_MASTER_KEY, m_key, sizeof(m_key)) != 0) {
		log_warnx("pki init: home directory path too long");
		return CLI_EXIT_FAIL;
	}
	if (pki_fingerprint_file(ca_crt, ca_fp, err, sizeof(err)) != 0 ||
	    pki_fingerprint_file(m_crt, m_fp, err, sizeof(err)) != 0) {
		log_warnx("pki init: %s", err);
		return CLI_EXIT_FAIL;
	}
	log_info("created the CA and the master certificate (CN=%s) under %s", master_cn,
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
	return pki_cli_print(o, json);
}

/* --not-before/--not-after: "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ". */
static int
parse_time_opt(const char *s, time_t *out)
{
	return iso8601_parse(s, out) == 0 && *out > 0 ? 0 : -1;
}

static int
pki_cmd_issue(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'o' },
		{ "san", required_argument, NULL, 's' },
		{ "days", required_argument, NULL, 'd' },
		{ "not-before", required_argument, NULL, 'B' },
		{ "not-after", required_argument, NULL, 'A' },
		{ "eku", required_argument, NULL, 'e' },
		{ "key-type", required_argument, NULL, 'k' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pki_issue_opts o;
	const char *sans[PKI_MAX_SANS];
	const char *role = NULL;
	const char *outdir = NULL;
	char base[PKI_CN_MAX + 16];
	char key_path[PATH_MAX], crt_path[PATH_MAX], ca_copy[PATH_MAX], ca_crt[PATH_MAX];
	char fp[TLS_FP_HEX_LEN + 1];
	char err[512];
	char nb[32], na[32];
	struct tls_identity id;
	long long days;
	int json = 0;
	int c;
	int n;
	cJSON *obj;

	pki_issue_opts_init(&o);
	o.sans = sans;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hr:o:s:d:fk:e:", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			role = optarg;
			break;
		case 'o':
			outdir = optarg;
			break;
		case 's':
			if (o.n_sans == PKI_MAX_SANS) {
				return cli_usage_error(GROUP, self, "at most %d --san", PKI_MAX_SANS);
			}
			sans[o.n_sans++] = optarg;
			break;
		case 'd':
			if (parse_ll(optarg, 1, PKI_MAX_DAYS, &days) != 0) {
				return cli_usage_error(GROUP, self,
				    "--days '%s': expected a whole number of days in 1..%d", optarg,
				    PKI_MAX_DAYS);
			}
			o.days = (int)days;
			break;
		case 'B':
			if (parse_time_opt(optarg, &o.not_before) != 0) {
				return cli_usage_error(GROUP, self,
				    "--not-before '%s': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
				    optarg);
			}
			break;
		case 'A':
			if (parse_time_opt(optarg, &o.not_after) != 0) {
				return cli_usage_error(GROUP, self,
				    "--not-after '%s': expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ",
				    optarg);
			}
			break;
		case 'e':
			if (strcmp(optarg, "client") == 0) {
				o.eku = PKI_EKU_CLIENT;
			} else if (strcmp(optarg, "server") == 0) {
				o.eku = PKI_EKU_SERVER;
			} else if (strcmp(optarg, "both") == 0) {
				o.eku = PKI_EKU_BOTH;
			} else {
				return cli_usage_error(GROUP, self,
				    "--eku '%s': expected client, server or both", optarg);
			}
			break;
		case 'k':
			if (pki_key_type_parse(optarg, &o.key_type) != 0) {
				return cli_usage_error(GROUP, self,
				    "--key-type '%s': expected ec, rsa (2048) or rsa3072", optarg);
			}
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
	if (cli_one_operand(GROUP, self, argc, argv, optind, "NAME") != 0) {
		return CLI_EXIT_USAGE;
	}
	o.name = argv[optind];
	if (role == NULL) {
		return cli_usage_error(GROUP, self, "--role is required (master, agent or updater)");
	}
	o.role = tls_role_parse(role);
	if (o.role == TLS_ROLE_UNKNOWN) {
		return cli_usage_error(GROUP, self, "--role '%s': expected master, agent or updater",
		    role);
	}
	if (outdir == NULL || *outdir == '\0') {
		return cli_usage_error(GROUP, self, "--out DIR is required");
	}
	if (o.days != 0 && o.not_after != 0) {
		return cli_usage_error(GROUP, self, "--days and --not-after exclude each other");
	}
	if (o.not_before != 0 && o.not_after != 0 && o.not_after <= o.not_before) {
		return cli_usage_error(GROUP, self, "--not-after must be later than --not-before");
	}
	if (o.role == TLS_ROLE_UPDATER) {
		n = snprintf(base, sizeof(base), "updater@%.*s", PKI_CN_MAX, o.name);
	} else {
		n = snprintf(base, sizeof(base), "%.*s", PKI_CN_MAX, o.name);
	}
	/* The name is checked in pki_issue(); the file name must not escape DIR. */
	if (n < 0 || strchr(base, '/') != NULL || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0) {
		return cli_usage_error(GROUP, self, "NAME '%s' is not usable", o.name);
	}
	if (snprintf(key_path, sizeof(key_path), "%s/%s.key", outdir, base) >=
		(int)sizeof(key_path) ||
	    snprintf(crt_path, sizeof(crt_path), "%s/%s.crt", outdir, base) >=
		(int)sizeof(crt_path) ||
	    snprintf(ca_copy, sizeof(ca_copy), "%s/ca.crt", outdir) >= (int)sizeof(ca_copy) ||
	    pki_path(cli->home, PKI_CA_CRT, ca_crt, sizeof(ca_crt)) != 0) {
		return cli_usage_error(GROUP, self, "--out path too long");
	}
	o.key_out = key_path;
	o.cert_out = crt_path;
	if (fs_mkdir_p(outdir, 0700) != 0) {
		log_warn("pki issue: cannot create %s", outdir);
		return CLI_EXIT_FAIL;
	}
	if (pki_issue(cli->home, &o, err, sizeof(err)) != 0) {
		log_warnx("pki issue: %s", err);
		return CLI_EXIT_FAIL;
	}
	/* The bundle directory also gets the CA certificate peers verify against. */
	if (fs_copy_file(ca_crt, ca_copy, 0644) != 0) {
		log_warn("pki issue: cannot copy %s to %s", ca_crt, ca_copy);
		return CLI_EXIT_FAIL;
	}
	if (pki_fingerprint_file(crt_path, fp, err, sizeof(err)) != 0 ||
	    tls_identity_from_file(crt_path, NULL, &id, err, sizeof(err)) != 0) {
		log_warnx("pki issue: %s", err);
		return CLI_EXIT_FAIL;
	}
	iso8601_utc(id.not_before, nb, sizeof(nb));
	iso8601_utc(id.not_after, na, sizeof(na));
	log_info("issued %s certificate CN=%s to %s", tls_role_name(o.role), id.cn, crt_path);
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
	return pki_cli_print(obj, json);
}

static int
pki_cmd_show(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "master-cn", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char mcn[PKI_CN_MAX + 1];
	const char *master_cn = NULL;
	char err[512];
	int json = 0;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hm:", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'm':
			master_cn = optarg;
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
	if (master_cn == NULL) {
		/* Roles depend on the master CN recorded in the home directory. */
		if (pki_master_cn(cli->home, mcn, sizeof(mcn), err, sizeof(err)) != 0) {
			log_warnx("pki show: %s", err);
			return CLI_EXIT_FAIL;
		}
		master_cn = mcn;
	}
	if (pki_show(argv[optind], stdout, master_cn, json, err, sizeof(err)) != 0) {
		log_warnx("pki show: %s", err);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

static const struct cli_cmd pki_cmds[] = {
	{ "init", "create the CA and the master's client certificate",
	    " [--master-cn CN] [--json]\n"
	    "\n"
	    "Creates HOME/ca/ca.key + ca.crt (ECDSA P-256, 10 years) and the master's\n"
	    "client certificate HOME/master/master.key + master.crt. Never overwrites an\n"
	    "existing CA.\n"
	    "\n"
	    "  --master-cn CN  the master's common name (default " TLS_DEFAULT_MASTER_CN ")\n"
	    "  --json          print the result as JSON\n"
	    "  -h, --help      this help\n",
	    pki_cmd_init },
	{ "issue", "issue a certificate (agent, updater or master)",
	    " NAME --role agent|updater|master --out DIR [options]\n"
	    "\n"
	    "Writes DIR/CN.key (0600), DIR/CN.crt and DIR/ca.crt, where CN is NAME\n"
	    "(agent, master) or updater@NAME (updater). DIR is created 0700.\n"
	    "\n"
	    "  --role ROLE        agent, updater or master (required)\n"
	    "  --out DIR          output directory (required)\n"
	    "  --san DNS|IP       subjectAltName, repeatable (agents and updaters\n"
	    "                     always get DNS:NAME)\n"
	    "  --days N           validity in days (default 397, at most 3650)\n"
	    "  --not-before T     start of validity (YYYY-MM-DD[THH:MM:SSZ], UTC)\n"
	    "  --not-after T      end of validity (instead of --days)\n"
	    "  --eku client|server|both\n"
	    "                     extended key usage (default: master client,\n"
	    "                     agent and updater both)\n"
	    "  --key-type ec|rsa|rsa3072\n"
	    "                     ECDSA P-256 (default), RSA 2048 or RSA 3072\n"
	    "  --force            replace existing files in DIR\n"
	    "  --json             print the result as JSON\n"
	    "  -h, --help         this help\n",
	    pki_cmd_issue },
	{ "show", "describe a certificate file",
	    " FILE [--json] [--master-cn CN]\n"
	    "\n"
	    "Prints subject, issuer, role, serial, validity, SANs, EKU, key type and\n"
	    "the SHA-256 fingerprint of the first certificate in FILE (PEM or DER).\n"
	    "\n"
	    "  --json          print one JSON object\n"
	    "  --master-cn CN  decide the master role by CN (default: the CN recorded\n"
	    "                  in HOME/master/master.crt, else " TLS_DEFAULT_MASTER_CN ")\n"
	    "  -h, --help      this help\n",
	    pki_cmd_show },
};

const struct cli_group cli_group_pki = {
	"pki",
	"certificate authority: init, issue, show",
	pki_cmds,
	ARRAY_LEN(pki_cmds),
	NULL,
};
