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
#include "master/certs.h"
#include "pki/crl.h"
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
	struct err pe = ERR_INIT;
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
	if (pki_check_cn(master_cn, &pe) != 0) {
		return cli_usage_error(GROUP, self, "%s", err_msg(&pe));
	}
	if (pki_init(cli->home, master_cn, &pe) != 0) {
		log_warnx("pki init: %s", err_msg(&pe));
		return CLI_EXIT_FAIL;
	}
	if (pki_path(cli->home, PKI_CA_CRT, ca_crt, sizeof(ca_crt)) != 0 ||
	    pki_path(cli->home, PKI_MASTER_CRT, m_crt, sizeof(m_crt)) != 0 ||
	    pki_path(cli->home, PKI_MASTER_KEY, m_key, sizeof(m_key)) != 0) {
		log_warnx("pki init: home directory path too long");
		return CLI_EXIT_FAIL;
	}
	if (pki_fingerprint_file(ca_crt, ca_fp, &pe) != 0 ||
	    pki_fingerprint_file(m_crt, m_fp, &pe) != 0) {
		log_warnx("pki init: %s", err_msg(&pe));
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
	struct err te = ERR_INIT;
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
	struct err pe = ERR_INIT;
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
	if (pki_issue(cli->home, &o, &pe) != 0) {
		log_warnx("pki issue: %s", err_msg(&pe));
		return CLI_EXIT_FAIL;
	}
	/* The bundle directory also gets the CA certificate peers verify against. */
	if (fs_copy_file(ca_crt, ca_copy, 0644) != 0) {
		log_warn("pki issue: cannot copy %s to %s", ca_crt, ca_copy);
		return CLI_EXIT_FAIL;
	}
	if (pki_fingerprint_file(crt_path, fp, &pe) != 0) {
		log_warnx("pki issue: %s", err_msg(&pe));
		return CLI_EXIT_FAIL;
	}
	if (tls_identity_from_file(crt_path, NULL, &id, &te) != 0) {
		log_warnx("pki issue: %s", err_msg(&te));
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
	struct err pe = ERR_INIT;
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
		if (pki_master_cn(cli->home, mcn, sizeof(mcn), &pe) != 0) {
			log_warnx("pki show: %s", err_msg(&pe));
			return CLI_EXIT_FAIL;
		}
		master_cn = mcn;
	}
	if (pki_show(argv[optind], stdout, master_cn, json, &pe) != 0) {
		log_warnx("pki show: %s", err_msg(&pe));
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
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

/* Sign and write a fresh CRL; prints its number. */
static int
pki_issue_crl(const struct cli *cli, time_t this_update, time_t next_update, cJSON *report)
{
	struct err e = ERR_INIT;
	unsigned long long number = 0;
	char path[PATH_MAX];

	if (certs_crl_issue(cli->home, this_update, next_update, &number, &e) != 0) {
		log_warnx("CRL: %s", err_msg(&e));
		return err_exit_code(e.kind);
	}
	if (pki_path(cli->home, CRL_PEM_FILE, path, sizeof(path)) != 0) {
		path[0] = '\0';
	}
	log_info("CRL number %llu written to %s", number, path);
	if (json_add_int(report, "crl_number", (long long)number) != 0 ||
	    json_add_str(report, "crl", path) != 0) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/* Print a JSON report, or its members as "key: value" lines; frees it. */
static int
pki_cli_report(cJSON *o, int json)
{
	char *text = NULL;
	int rc = CLI_EXIT_FAIL;

	if (json) {
		text = json_print_compact(o);
		if (text == NULL) {
			log_warnx("out of memory");
			goto out;
		}
		printf("%s\n", text);
	} else {
		const cJSON *it;
		cJSON_ArrayForEach(it, o)
		{
			if (cJSON_IsString(it)) {
				printf("%s: %s\n", it->string, it->valuestring);
			} else if (cJSON_IsNumber(it)) {
				printf("%s: %.0f\n", it->string, it->valuedouble);
			} else if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
				const cJSON *sub;
				cJSON_ArrayForEach(sub, it)
				{
					const cJSON *f;
					if (!cJSON_IsObject(sub) && !cJSON_IsArray(sub)) {
						char *v = cJSON_PrintUnformatted(sub);
						printf("%s.%s: %s\n", it->string, sub->string,
						    v != NULL ? (cJSON_IsString(sub) ? sub->valuestring : v)
							      : "?");
						free(v);
						continue;
					}
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
	if (fflush(stdout) != 0) {
		log_warn("writing to stdout");
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	free(text);
	cJSON_Delete(o);
	return rc;
}

static int
pki_cmd_revoke(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "reason", required_argument, NULL, 'r' },
		{ "next-update", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = NULL;
	const char *target = NULL;
	const char *next = "30d";
	int reason = CRL_REASON_UNSPECIFIED;
	int json = 0;
	time_t next_update;
	struct certs_revoked *res = NULL;
	size_t n = 0;
	struct err e = ERR_INIT;
	cJSON *o = NULL, *arr;
	int rc = CLI_EXIT_FAIL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			host = optarg;
			break;
		case 'r':
			if (crl_reason_parse(optarg, &reason) != 0) {
				return cli_usage_error(GROUP, self, "unknown reason '%s'", optarg);
			}
			break;
		case 'n':
			next = optarg;
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
	if (host == NULL) {
		if (cli_one_operand(GROUP, self, argc, argv, optind, "CERT") != 0) {
			return CLI_EXIT_USAGE;
		}
		target = argv[optind];
	} else if (optind != argc) {
		return cli_usage_error(GROUP, self, "give --host or a certificate, not both");
	}
	if (parse_when(next, time(NULL), &next_update) != 0) {
		return cli_usage_error(GROUP, self, "--next-update: '%s' is not Nd/Nh/Nm/Ns or a time",
		    next);
	}
	if (certs_revoke(cli->home, target, host, reason, &res, &n, &e) != 0) {
		log_warnx("pki revoke: %s", err_msg(&e));
		return err_exit_code(e.kind);
	}
	o = cJSON_CreateObject();
	arr = o != NULL ? json_add_array(o, "revoked") : NULL;
	if (arr == NULL) {
		log_warnx("out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		cJSON *it = cJSON_CreateObject();
		if (it == NULL || !cJSON_AddItemToArray(arr, it) ||
		    json_add_str(it, "serial", res[i].r.serial) != 0 ||
		    json_add_str(it, "cn", res[i].r.subject) != 0 ||
		    json_add_str(it, "fingerprint", res[i].r.fp) != 0 ||
		    json_add_bool(it, "already", res[i].already) != 0) {
			log_warnx("out of memory");
			goto out;
		}
		log_info("%s serial %s (CN=%s)", res[i].already ? "already revoked:" : "revoked:",
		    res[i].r.serial, res[i].r.subject[0] != '\0' ? res[i].r.subject : "?");
	}
	rc = pki_issue_crl(cli, 0, next_update, o);
	if (rc == CLI_EXIT_OK) {
		rc = pki_cli_report(o, json);
		o = NULL;
	}
out:
	cJSON_Delete(o);
	free(res);
	return rc;
}

static int
pki_cmd_crl(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "next-update", required_argument, NULL, 'n' },
		{ "this-update", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *next = "30d";
	time_t now = time(NULL);
	time_t this_update = 0, next_update;
	int json = 0;
	cJSON *o;
	int rc;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			next = optarg;
			break;
		case 't':
			if (parse_time_opt(optarg, &this_update) != 0) {
				return cli_usage_error(GROUP, self, "--this-update: '%s' is not a time",
				    optarg);
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
	if (optind != argc) {
		return cli_usage_error(GROUP, self, "unexpected argument '%s'", argv[optind]);
	}
	if (parse_when(next, now, &next_update) != 0) {
		return cli_usage_error(GROUP, self, "--next-update: '%s' is not Nd/Nh/Nm/Ns or a time",
		    next);
	}
	o = cJSON_CreateObject();
	if (o == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	rc = pki_issue_crl(cli, this_update, next_update, o);
	if (rc != CLI_EXIT_OK) {
		cJSON_Delete(o);
		return rc;
	}
	return pki_cli_report(o, json);
}

static int
pki_cmd_status(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "warn-days", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long long warn = CERTS_DEFAULT_WARN_DAYS;
	struct err e = ERR_INIT;
	cJSON *o = NULL;
	int json = 0;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (parse_ll(optarg, 0, 3650, &warn) != 0) {
				return cli_usage_error(GROUP, self, "--warn-days: 0..3650");
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
	if (optind != argc) {
		return cli_usage_error(GROUP, self, "unexpected argument '%s'", argv[optind]);
	}
	if (certs_status(cli->home, (int)warn, &o, &e) != 0) {
		log_warnx("pki status: %s", err_msg(&e));
		return err_exit_code(e.kind);
	}
	{
		const char *names[] = { "ca", "master" };
		for (size_t i = 0; i < ARRAY_LEN(names); i++) {
			const cJSON *st = cJSON_GetObjectItemCaseSensitive(
			    cJSON_GetObjectItemCaseSensitive(o, names[i]), "state");
			if (cJSON_IsString(st) && strcmp(st->valuestring, "ok") != 0) {
				log_warnx("the %s certificate is %s", names[i], st->valuestring);
			}
		}
		const cJSON *cs = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(o, "crl"), "state");
		if (cJSON_IsString(cs) && strcmp(cs->valuestring, "stale") == 0) {
			log_warnx("the CRL is past its next update: run 'tandem pki crl'");
		}
	}
	return pki_cli_report(o, json);
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
	{ "status", "expiry of the CA and the master certificate, CRL state",
	    " [--warn-days N] [--json]\n"
	    "\n"
	    "Prints the CA's and the master certificate's CN, serial, not_after, days\n"
	    "left and state (ok, expiring within the horizon, expired), and the CRL's\n"
	    "number, validity, revoked count and state (ok, stale, missing).\n"
	    "\n"
	    "  --warn-days N   the warning horizon in days (default 30)\n"
	    "  --json          print one JSON object\n"
	    "  -h, --help      this help\n",
	    pki_cmd_status },
	{ "revoke", "revoke a certificate or all of a host's, and sign a new CRL",
	    " CERT|SERIAL|FINGERPRINT | --host NAME [--reason R] [--next-update WHEN]\n"
	    "              [--json]\n"
	    "\n"
	    "Records the revocation in the registry and writes a new CRL to\n"
	    "HOME/ca/crl.der and crl.pem. CERT is a certificate file; a fingerprint\n"
	    "is looked up among the certificates this CA issued; --host takes every\n"
	    "agent and updater certificate of NAME (all generations). From then on this\n"
	    "master refuses those certificates; hosts refuse them once they have the CRL.\n"
	    "\n"
	    "  --host NAME          every certificate of host NAME\n"
	    "  --reason R           unspecified (default), key-compromise, ca-compromise,\n"
	    "                       affiliation-changed, superseded, cessation-of-operation\n"
	    "  --next-update WHEN   the CRL's next update: Nd, Nh, Nm, Ns from now or a\n"
	    "                       time YYYY-MM-DD[THH:MM:SSZ] (default 30d)\n"
	    "  --json               print one JSON object\n"
	    "  -h, --help           this help\n",
	    pki_cmd_revoke },
	{ "crl", "sign a new CRL (the same revocations, a later next update)",
	    " [--next-update WHEN] [--this-update T] [--json]\n"
	    "\n"
	    "Writes HOME/ca/crl.der and crl.pem with every revocation in the registry\n"
	    "and the next CRL number. Re-sign before the next update passes: hosts keep\n"
	    "enforcing a stale CRL but report it as stale.\n"
	    "\n"
	    "  --next-update WHEN   Nd, Nh, Nm, Ns from now or YYYY-MM-DD[THH:MM:SSZ]\n"
	    "                       (default 30d)\n"
	    "  --this-update T      the CRL's start (default: 5 minutes ago)\n"
	    "  --json               print one JSON object\n"
	    "  -h, --help           this help\n",
	    pki_cmd_crl },
};

const struct cli_group cli_group_pki = {
	"pki",
	"certificate authority: init, issue, show, status, revoke, crl",
	pki_cmds,
	ARRAY_LEN(pki_cmds),
	NULL,
};
