/*
 * `tandem swarm` — the fleet: enroll hosts, list/show/decommission them,
 * push releases to their updaters, roll back, ask for status, releases and
 * history. Exit codes: 0 success (for update: every host updated), 1 a
 * failure on some host or locally, 2 usage error (nothing was done).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "master/cli.h"
#include "master/registry.h"
#include "master/keystore.h"
#include "master/release_pack.h"
#include "master/release_sign.h"
#include "master/swarm_enroll.h"
#include "master/swarm_push.h"
#include "master/swarm_result.h"
#include "pki/pki.h"

#define GROUP "swarm"
#define SHOW_PUSHES 10

/* Print OBJ (owned) as compact JSON on stdout. */
static int
print_json(cJSON *obj)
{
	char *text = obj != NULL ? json_print_compact(obj) : NULL;
	int rc = CLI_EXIT_FAIL;

	if (text == NULL) {
		log_warnx("out of memory");
	} else if (printf("%s\n", text) >= 0 && fflush(stdout) == 0) {
		rc = CLI_EXIT_OK;
	}
	free(text);
	cJSON_Delete(obj);
	return rc;
}

static void
fmt_time(time_t t, char *buf, size_t len)
{
	if (t == 0) {
		snprintf(buf, len, "-");
	} else {
		iso8601_utc(t, buf, len);
	}
}

static cJSON *
host_json(const struct reg_host *h)
{
	char enrolled[32], decom[32];
	cJSON *o = cJSON_CreateObject();

	fmt_time(h->enrolled_at, enrolled, sizeof(enrolled));
	fmt_time(h->decommissioned_at, decom, sizeof(decom));
	if (o == NULL || json_add_str(o, "name", h->name) != 0 ||
	    json_add_str(o, "address", h->address) != 0 ||
	    json_add_int(o, "agent_port", h->agent_port) != 0 ||
	    json_add_int(o, "updater_port", h->updater_port) != 0 ||
	    json_add_str(o, "agent_fingerprint", h->agent_fp) != 0 ||
	    json_add_str(o, "updater_fingerprint", h->updater_fp[0] != '\0' ? h->updater_fp
									    : NULL) != 0 ||
	    json_add_str(o, "notes", h->notes) != 0 ||
	    json_add_str(o, "enrolled_at", enrolled) != 0 ||
	    json_add_str(o, "decommissioned_at", h->decommissioned_at != 0 ? decom : NULL) != 0 ||
	    json_add_bool(o, "in_service", h->decommissioned_at == 0) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *
push_json(const struct reg_push *p)
{
	char at[32];
	cJSON *o = cJSON_CreateObject();

	fmt_time(p->at, at, sizeof(at));
	if (o == NULL || json_add_str(o, "at", at) != 0 ||
	    json_add_str(o, "sha256", p->sha256) != 0 ||
	    json_add_str(o, "result", p->result) != 0 ||
	    json_add_str(o, "detail", p->detail) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *
release_json(const struct swarm_release *r, int have)
{
	cJSON *o;

	if (!have) {
		return cJSON_CreateNull();
	}
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "version", r->version) != 0 ||
	    json_add_str(o, "sha", r->sha) != 0 || json_add_str(o, "sha256", r->sha256) != 0 ||
	    json_add_str(o, "installed_at", r->installed_at) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Options shared by the simple commands. */
struct simple_args {
	const char **hosts;
	size_t n_hosts;
	int all;
	int json;
	const char *name; /* one positional NAME, if any */
};

/*
 * Parse --host (if HOSTS_OK), --all (if HOSTS_OK), --json, --help and at most
 * one positional (if NAME_OK). Returns -1 to go on, else the exit code.
 */
static int
parse_simple(const struct cli_cmd *self, int argc, char **argv, int hosts_ok, int name_ok,
    struct simple_args *a)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof(*a));
	a->hosts = calloc((size_t)argc + 1, sizeof(*a->hosts));
	if (a->hosts == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hH:a", longopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			if (!hosts_ok) {
				return cli_usage_error(GROUP, self, "--host is not an option here");
			}
			if (*optarg == '\0') {
				return cli_usage_error(GROUP, self, "--host needs a name");
			}
			a->hosts[a->n_hosts++] = optarg;
			break;
		case 'a':
			if (!hosts_ok) {
				return cli_usage_error(GROUP, self, "--all is not an option here");
			}
			a->all = 1;
			break;
		case 'j':
			a->json = 1;
			break;
		case 'h':
			return cli_help(GROUP, self);
		default:
			return cli_getopt_error(GROUP, self, c, argv, optind);
		}
	}
	if (name_ok && optind < argc) {
		a->name = argv[optind++];
	}
	if (optind != argc) {
		return cli_usage_error(GROUP, self, "unexpected argument '%s'", argv[optind]);
	}
	if (a->all && a->n_hosts > 0) {
		return cli_usage_error(GROUP, self, "--all and --host exclude each other");
	}
	return -1;
}

/* ---------------------------------------------------------------- enroll */

static int
swarm_cmd_enroll(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "address", required_argument, NULL, 'A' },
		{ "agent-port", required_argument, NULL, 'p' },
		{ "updater-port", required_argument, NULL, 'P' },
		{ "san", required_argument, NULL, 's' },
		{ "updater", no_argument, NULL, 'u' },
		{ "out", required_argument, NULL, 'o' },
		{ "notes", required_argument, NULL, 'N' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sans[PKI_MAX_SANS];
	struct swarm_enroll_opts o;
	struct swarm_enroll_result *res = NULL;
	char err[1024];
	long long v;
	int json = 0, c, r, rc = CLI_EXIT_FAIL;
	cJSON *obj;

	memset(&o, 0, sizeof(o));
	o.sans = sans;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
		switch (c) {
		case 'A':
			o.address = optarg;
			break;
		case 'p':
		case 'P':
			if (parse_ll(optarg, 1, 65535, &v) != 0) {
				return cli_usage_error(GROUP, self, "%s '%s': expected a port in 1..65535",
				    c == 'p' ? "--agent-port" : "--updater-port", optarg);
			}
			if (c == 'p') {
				o.agent_port = (int)v;
			} else {
				o.updater_port = (int)v;
			}
			break;
		case 's':
			if (o.n_sans == PKI_MAX_SANS - 1) {
				return cli_usage_error(GROUP, self, "at most %d --san", PKI_MAX_SANS - 1);
			}
			sans[o.n_sans++] = optarg;
			break;
		case 'u':
			o.updater = 1;
			break;
		case 'o':
			if (*optarg == '\0') {
				return cli_usage_error(GROUP, self, "--out needs a directory");
			}
			o.out = optarg;
			break;
		case 'N':
			if (strlen(optarg) > REG_NOTES_MAX) {
				return cli_usage_error(GROUP, self, "--notes: at most %d bytes",
				    REG_NOTES_MAX);
			}
			o.notes = optarg;
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
	res = calloc(1, sizeof(*res));
	if (res == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	r = swarm_enroll(cli->home, &o, res, err, sizeof(err));
	if (r != REGISTRY_OK) {
		log_warnx("swarm enroll: %s", err);
		goto out;
	}
	if (res->added_updater_only) {
		log_info("added the updater identity of %s (bundle %s)", res->host.name, res->bundle);
	} else {
		log_info("enrolled %s at %s (bundle %s)", res->host.name, res->host.address,
		    res->bundle);
	}
	if (json) {
		obj = host_json(&res->host);
		if (obj == NULL || json_add_str(obj, "bundle", res->bundle) != 0) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		rc = print_json(obj);
	} else {
		printf("host: %s\naddress: %s\nagent_port: %d\nupdater_port: %d\n"
		       "agent_fingerprint: %s\nupdater_fingerprint: %s\nbundle: %s\n",
		    res->host.name, res->host.address, res->host.agent_port, res->host.updater_port,
		    res->host.agent_fp, res->host.updater_fp[0] != '\0' ? res->host.updater_fp : "-",
		    res->bundle);
		rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
out:
	free(res);
	return rc;
}

/* ---------------------------------------------------------------- list/show/decommission */

static int
swarm_cmd_list(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const char *const heads[] = { "HOST", "ADDRESS", "AGENT", "UPDATER",
		"UPDATER-PIN", "STATE", "NOTES" };
	struct simple_args a;
	struct registry *reg = NULL;
	struct reg_host *hosts = NULL;
	struct swarm_table *t = NULL;
	char err[512], ap[16], up[16], pin[20];
	size_t n = 0, i;
	int rc;
	cJSON *obj = NULL, *arr;

	rc = parse_simple(self, argc, argv, 0, 0, &a);
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	rc = CLI_EXIT_FAIL;
	if (registry_open(cli->home, &reg, err, sizeof(err)) != REGISTRY_OK ||
	    registry_list_hosts(reg, 1, &hosts, &n, err, sizeof(err)) != REGISTRY_OK) {
		log_warnx("swarm list: %s", err);
		goto out;
	}
	if (a.json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
		for (i = 0; arr != NULL && i < n; i++) {
			cJSON *h = host_json(&hosts[i]);
			if (h == NULL) {
				arr = NULL;
				break;
			}
			cJSON_AddItemToArray(arr, h);
		}
		if (arr == NULL) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		rc = print_json(obj);
		goto out;
	}
	t = swarm_table_new(ARRAY_LEN(heads), heads);
	for (i = 0; t != NULL && i < n; i++) {
		const char *cells[ARRAY_LEN(heads)];
		snprintf(ap, sizeof(ap), "%d", hosts[i].agent_port);
		snprintf(up, sizeof(up), "%d", hosts[i].updater_port);
		snprintf(pin, sizeof(pin), "%.16s", hosts[i].updater_fp);
		cells[0] = hosts[i].name;
		cells[1] = hosts[i].address;
		cells[2] = ap;
		cells[3] = up;
		cells[4] = pin;
		cells[5] = hosts[i].decommissioned_at != 0 ? "decommissioned" : "in service";
		cells[6] = hosts[i].notes;
		if (swarm_table_add(t, cells) != 0) {
			swarm_table_free(t);
			t = NULL;
		}
	}
	if (t == NULL) {
		log_warnx("out of memory");
		goto out;
	}
	swarm_table_print(t, stdout);
	rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	swarm_table_free(t);
	free(hosts);
	registry_close(reg);
	return rc;
}

static int
swarm_cmd_show(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct simple_args a;
	struct registry *reg = NULL;
	struct reg_host h;
	struct reg_push *pushes = NULL;
	char err[512], t1[32], t2[32];
	size_t n = 0, i;
	int rc, r;
	cJSON *obj = NULL, *arr;

	rc = parse_simple(self, argc, argv, 0, 1, &a);
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	if (a.name == NULL) {
		return cli_usage_error(GROUP, self, "NAME is missing");
	}
	rc = CLI_EXIT_FAIL;
	if (registry_open(cli->home, &reg, err, sizeof(err)) != REGISTRY_OK) {
		log_warnx("swarm show: %s", err);
		goto out;
	}
	r = registry_get_host(reg, a.name, &h, err, sizeof(err));
	if (r == REGISTRY_OK) {
		r = registry_push_history(reg, h.name, SHOW_PUSHES, &pushes, &n, err, sizeof(err));
	}
	if (r != REGISTRY_OK) {
		log_warnx("swarm show: %s: %s", a.name, r == REGISTRY_NOTFOUND ? "no such host" : err);
		goto out;
	}
	if (a.json) {
		obj = host_json(&h);
		arr = obj != NULL ? json_add_array(obj, "recent_pushes") : NULL;
		for (i = 0; arr != NULL && i < n; i++) {
			cJSON *p = push_json(&pushes[i]);
			if (p == NULL) {
				arr = NULL;
				break;
			}
			cJSON_AddItemToArray(arr, p);
		}
		if (arr == NULL) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		rc = print_json(obj);
		goto out;
	}
	fmt_time(h.enrolled_at, t1, sizeof(t1));
	fmt_time(h.decommissioned_at, t2, sizeof(t2));
	printf("host: %s\naddress: %s\nagent_port: %d\nupdater_port: %d\n"
	       "agent_fingerprint: %s\nupdater_fingerprint: %s\nnotes: %s\nenrolled_at: %s\n"
	       "state: %s%s%s\n",
	    h.name, h.address, h.agent_port, h.updater_port, h.agent_fp,
	    h.updater_fp[0] != '\0' ? h.updater_fp : "- (no updater identity: cannot be updated)",
	    h.notes, t1, h.decommissioned_at != 0 ? "decommissioned at " : "in service",
	    h.decommissioned_at != 0 ? t2 : "", "");
	for (i = 0; i < n; i++) {
		fmt_time(pushes[i].at, t1, sizeof(t1));
		printf("push: %s %s %.12s %s\n", t1, pushes[i].result, pushes[i].sha256,
		    pushes[i].detail);
	}
	rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	free(pushes);
	registry_close(reg);
	return rc;
}

static int
swarm_cmd_decommission(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct simple_args a;
	struct registry *reg = NULL;
	struct reg_host h;
	char err[512];
	int rc, r;

	rc = parse_simple(self, argc, argv, 0, 1, &a);
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	if (a.name == NULL) {
		return cli_usage_error(GROUP, self, "NAME is missing");
	}
	rc = CLI_EXIT_FAIL;
	if (registry_open(cli->home, &reg, err, sizeof(err)) != REGISTRY_OK) {
		log_warnx("swarm decommission: %s", err);
		goto out;
	}
	r = registry_decommission(reg, a.name, 0, err, sizeof(err));
	if (r == REGISTRY_OK) {
		r = registry_get_host(reg, a.name, &h, err, sizeof(err));
	}
	if (r != REGISTRY_OK) {
		log_warnx("swarm decommission: %s", r == REGISTRY_NOTFOUND ? "no such host" : err);
		goto out;
	}
	log_info("%s is decommissioned: kept in the registry, left out of --all", h.name);
	rc = a.json ? print_json(host_json(&h))
		    : (printf("%s decommissioned\n", h.name) < 0 || fflush(stdout) != 0
			      ? CLI_EXIT_FAIL
			      : CLI_EXIT_OK);
out:
	registry_close(reg);
	return rc;
}

/* ---------------------------------------------------------------- host selection */

/*
 * Jobs for NAMES (each must be enrolled; decommissioned ones named
 * explicitly are refused) or, with ALL or no names when ALL_DEFAULT, every
 * host in service. Returns 0 with *JOBS (calloc'd) or -1 (logged).
 */
static int
select_hosts(struct registry *reg, const char *const *names, size_t n_names, int all,
    enum swarm_job_kind kind, struct swarm_job **jobs, size_t *n)
{
	struct reg_host *hosts = NULL;
	struct swarm_job *out = NULL;
	char err[512];
	size_t i, k, m = 0;
	int r;

	*jobs = NULL;
	*n = 0;
	if (all) {
		if (registry_list_hosts(reg, 0, &hosts, &m, err, sizeof(err)) != REGISTRY_OK) {
			log_warnx("%s", err);
			return -1;
		}
		if (m == 0) {
			log_warnx("no host in service is enrolled");
			free(hosts);
			return -1;
		}
	} else {
		m = n_names;
		hosts = calloc(m, sizeof(*hosts));
		if (hosts == NULL) {
			log_warnx("out of memory");
			return -1;
		}
		for (i = 0; i < m; i++) {
			r = registry_get_host(reg, names[i], &hosts[i], err, sizeof(err));
			if (r != REGISTRY_OK) {
				log_warnx("%s: %s", names[i],
				    r == REGISTRY_NOTFOUND ? "no such host in the registry" : err);
				free(hosts);
				return -1;
			}
			if (hosts[i].decommissioned_at != 0) {
				log_warnx("%s is decommissioned", hosts[i].name);
				free(hosts);
				return -1;
			}
			for (k = 0; k < i; k++) {
				if (strcmp(hosts[k].name, hosts[i].name) == 0) {
					log_warnx("%s is named twice", hosts[i].name);
					free(hosts);
					return -1;
				}
			}
		}
	}
	if (m > SWARM_MAX_HOSTS) {
		log_warnx("at most %d hosts at once", SWARM_MAX_HOSTS);
		free(hosts);
		return -1;
	}
	out = calloc(m, sizeof(*out));
	if (out == NULL) {
		log_warnx("out of memory");
		free(hosts);
		return -1;
	}
	for (i = 0; i < m; i++) {
		out[i].host = hosts[i];
		out[i].kind = kind;
	}
	free(hosts);
	*jobs = out;
	*n = m;
	return 0;
}

/* ---------------------------------------------------------------- update */

/* Release preparation: a FILE as is, a DIR packed into a temporary directory. */
struct prepared {
	struct swarm_release_file rf;
	char path[PATH_MAX];
	char tmpdir[PATH_MAX - 32]; /* "" unless we packed */
	char *tsig;                 /* FILE.tsig, NULL when the release is unsigned */
	struct sign_keyring keyring; /* the master's, empty when it has none */
};

/*
 * The signature next to the release FILE (sent along) and the master's
 * keyring (for the dry run's verdicts). Returns 0 or -1 after logging.
 */
static int
prepare_signature(const char *home, struct prepared *p)
{
	struct err e = ERR_INIT;
	char tpath[PATH_MAX];
	size_t len = 0;
	int have;

	if (release_sign_tsig_path(p->path, tpath, sizeof(tpath)) != 0) {
		log_warnx("--release path too long");
		return -1;
	}
	have = release_sign_read_tsig(tpath, &p->tsig, &len, &e);
	if (have < 0) {
		log_warnx("%s", err_msg(&e));
		return -1;
	}
	if (have > 0 && strlen(p->tsig) != len) {
		log_warnx("%s holds a NUL byte: not a signature file", tpath);
		return -1;
	}
	p->rf.tsig = p->tsig;
	p->rf.tsig_len = len;
	if (keystore_current(home, &p->keyring, &e) < 0) {
		log_warnx("%s", err_msg(&e));
		return -1;
	}
	p->rf.keyring = &p->keyring;
	return 0;
}

static int
prepare_release(const char *arg, struct prepared *p)
{
	struct release_pack_opts po;
	struct release_pack_result *res = NULL;
	char err[8192];
	const char *base, *tmp;
	struct stat st;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	sign_keyring_init(&p->keyring);
	p->rf.path = p->path;
	if (stat(arg, &st) != 0) {
		log_warn("--release %s", arg);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		tmp = getenv("TMPDIR");
		if (snprintf(p->tmpdir, sizeof(p->tmpdir), "%s/tandem-swarm-XXXXXX",
			tmp != NULL && *tmp == '/' ? tmp : "/tmp") >= (int)sizeof(p->tmpdir) ||
		    mkdtemp(p->tmpdir) == NULL) {
			log_warn("temporary directory");
			p->tmpdir[0] = '\0';
			return -1;
		}
		snprintf(p->path, sizeof(p->path), "%s/release.tar.gz", p->tmpdir);
		res = calloc(1, sizeof(*res));
		if (res == NULL) {
			log_warnx("out of memory");
			return -1;
		}
		memset(&po, 0, sizeof(po));
		po.dir = arg;
		po.output = p->path;
		if (release_pack(&po, res, err, sizeof(err)) != 0) {
			log_warnx("release pack %s: %s", arg, err);
			goto out;
		}
		snprintf(p->rf.sha256, sizeof(p->rf.sha256), "%s", res->sha256);
		p->rf.size = res->size;
		snprintf(p->rf.label, sizeof(p->rf.label), "%s", res->version);
		log_info("packed %s: %s-%s, sha256 %s", arg, res->name, res->version, res->sha256);
		rc = 0;
		goto out;
	}
	if (snprintf(p->path, sizeof(p->path), "%s", arg) >= (int)sizeof(p->path)) {
		log_warnx("--release path too long");
		return -1;
	}
	if (swarm_file_digest(p->path, p->rf.sha256, &p->rf.size, err, sizeof(err)) != 0) {
		log_warnx("--release: %s", err);
		return -1;
	}
	base = strrchr(arg, '/');
	base = base != NULL ? base + 1 : arg;
	snprintf(p->rf.label, sizeof(p->rf.label), "%.*s",
	    (int)(strlen(base) > 7 && strcmp(base + strlen(base) - 7, ".tar.gz") == 0
		    ? strlen(base) - 7
		    : strlen(base)),
	    base);
	rc = 0;
out:
	free(res);
	return rc;
}

static void
prepared_cleanup(struct prepared *p)
{
	free(p->tsig);
	p->tsig = NULL;
	sign_keyring_free(&p->keyring);
	if (p->tmpdir[0] != '\0' && fs_rmtree(p->tmpdir) != 0) {
		log_warn("remove %s", p->tmpdir);
	}
}

static cJSON *
result_json(const struct swarm_result *r)
{
	cJSON *o = cJSON_CreateObject();

	if (o == NULL || json_add_str(o, "result", swarm_outcome_word(r->outcome)) != 0 ||
	    json_add_str(o, "reason", r->reason) != 0 ||
	    json_add_str(o, "detail", r->detail) != 0 ||
	    json_add_int(o, "http_status", r->http_status) != 0 ||
	    json_add_str(o, "version", r->version) != 0 ||
	    json_add_str(o, "sha256", r->sha256) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void
result_cell(const struct swarm_result *r, char *buf, size_t len)
{
	if (r->outcome == SWARM_FAILED) {
		snprintf(buf, len, "failed: %s", r->reason);
	} else {
		snprintf(buf, len, "%s", swarm_outcome_word(r->outcome));
	}
}

static int
update_report(const struct swarm_job *jobs, size_t n, const struct swarm_update_args *a,
    const struct prepared *p, int ok)
{
	static const char *const heads[] = { "HOST", "ADDRESS", "AGENT", "SELF", "VERSION",
		"DETAIL" };
	struct swarm_table *t;
	char agent[SWARM_REASON + 16], selfc[SWARM_REASON + 16];
	size_t i;
	cJSON *obj, *arr, *rel, *h;

	if (a->json) {
		obj = cJSON_CreateObject();
		rel = obj != NULL ? json_add_object(obj, "release") : NULL;
		arr = rel != NULL ? json_add_array(obj, "hosts") : NULL;
		if (arr == NULL || json_add_str(rel, "path", p->rf.path) != 0 ||
		    json_add_str(rel, "sha256", p->rf.sha256) != 0 ||
		    json_add_int(rel, "size", (long long)p->rf.size) != 0 ||
		    json_add_str(rel, "label", p->rf.label) != 0 ||
		    json_add_bool(rel, "signed", p->rf.tsig != NULL) != 0 ||
		    json_add_bool(obj, "ok", ok) != 0) {
			return print_json(NULL);
		}
		for (i = 0; i < n; i++) {
			const struct swarm_job *j = &jobs[i];
			h = cJSON_CreateObject();
			if (h == NULL) {
				cJSON_Delete(obj);
				return print_json(NULL);
			}
			cJSON_AddItemToArray(arr, h);
			if (json_add_str(h, "host", j->host.name) != 0 ||
			    json_add_str(h, "address", j->host.address) != 0 ||
			    json_add_item(h, "agent", result_json(&j->agent)) != 0 ||
			    json_add_item(h, "self", j->self_tried ? result_json(&j->self)
								   : cJSON_CreateNull()) != 0 ||
			    json_add_bool(h, "signed", j->tsig_sent) != 0) {
				cJSON_Delete(obj);
				return print_json(NULL);
			}
		}
		return print_json(obj) == CLI_EXIT_OK ? (ok ? CLI_EXIT_OK : CLI_EXIT_FAIL)
						      : CLI_EXIT_FAIL;
	}
	t = swarm_table_new(ARRAY_LEN(heads), heads);
	for (i = 0; t != NULL && i < n; i++) {
		const struct swarm_job *j = &jobs[i];
		const char *cells[ARRAY_LEN(heads)];
		result_cell(&j->agent, agent, sizeof(agent));
		if (j->self_tried) {
			result_cell(&j->self, selfc, sizeof(selfc));
		} else {
			snprintf(selfc, sizeof(selfc), "%s", a->include_self ? "skipped" : "-");
		}
		cells[0] = j->host.name;
		cells[1] = j->host.address;
		cells[2] = agent;
		cells[3] = selfc;
		cells[4] = j->agent.version;
		cells[5] = j->self_tried && j->self.outcome != SWARM_UPDATED ? j->self.detail
									     : j->agent.detail;
		if (swarm_table_add(t, cells) != 0) {
			swarm_table_free(t);
			t = NULL;
		}
	}
	if (t == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	swarm_table_print(t, stdout);
	swarm_table_free(t);
	/* Details can be long: print them in full below the table. */
	for (i = 0; i < n; i++) {
		if (jobs[i].agent.outcome != SWARM_UPDATED && jobs[i].agent.detail[0] != '\0') {
			printf("\n%s: %s\n  %s\n", jobs[i].host.name, jobs[i].agent.reason,
			    jobs[i].agent.detail);
		}
		if (jobs[i].self_tried && jobs[i].self.outcome != SWARM_UPDATED) {
			printf("\n%s (self): %s\n  %s\n", jobs[i].host.name, jobs[i].self.reason,
			    jobs[i].self.detail);
		}
	}
	if (fflush(stdout) != 0) {
		return CLI_EXIT_FAIL;
	}
	return ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int
dry_run_report(const struct swarm_job *jobs, size_t n, const struct swarm_update_args *a,
    const struct prepared *p, int have_release)
{
	static const char *const heads[] = { "HOST", "ADDRESS", "REACHABLE", "PIN", "CURRENT",
		"SAME-SHA256", "SIGNATURE", "DETAIL" };
	struct swarm_table *t;
	size_t i;
	cJSON *obj, *arr, *h;

	if (a->json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
		if (arr == NULL || json_add_bool(obj, "dry_run", 1) != 0 ||
		    json_add_str(obj, "sha256", have_release ? p->rf.sha256 : NULL) != 0) {
			cJSON_Delete(obj);
			return print_json(NULL);
		}
		for (i = 0; i < n; i++) {
			const struct swarm_job *j = &jobs[i];
			h = cJSON_CreateObject();
			if (h == NULL) {
				cJSON_Delete(obj);
				return print_json(NULL);
			}
			cJSON_AddItemToArray(arr, h);
			if (json_add_str(h, "host", j->host.name) != 0 ||
			    json_add_str(h, "address", j->host.address) != 0 ||
			    json_add_bool(h, "reachable", j->reachable) != 0 ||
			    json_add_item(h, "pin_ok", j->pin_ok < 0 ? cJSON_CreateNull()
								       : cJSON_CreateBool(j->pin_ok)) != 0 ||
			    json_add_item(h, "current", release_json(&j->health.active,
								j->health.have_active)) != 0 ||
			    json_add_item(h, "same_sha256", have_release && j->have_health
								? cJSON_CreateBool(j->same_sha)
								: cJSON_CreateNull()) != 0 ||
			    json_add_str(h, "signature", have_release && j->have_health
								? j->signature : NULL) != 0 ||
			    json_add_item(h, "signature_ok", have_release && j->have_health
								? cJSON_CreateBool(j->signature_ok)
								: cJSON_CreateNull()) != 0 ||
			    json_add_str(h, "error", j->error) != 0) {
				cJSON_Delete(obj);
				return print_json(NULL);
			}
		}
		return print_json(obj);
	}
	if (have_release) {
		printf("release %s (sha256 %s, %llu bytes, %s) would go to %zu host(s):\n",
		    p->rf.label, p->rf.sha256, (unsigned long long)p->rf.size,
		    p->rf.tsig != NULL ? "signed" : "unsigned", n);
	}
	t = swarm_table_new(ARRAY_LEN(heads), heads);
	for (i = 0; t != NULL && i < n; i++) {
		const struct swarm_job *j = &jobs[i];
		const char *cells[ARRAY_LEN(heads)];
		char cur[SWARM_SHORT + 24];
		snprintf(cur, sizeof(cur), "%s%s%.12s", j->health.active.version,
		    j->health.have_active ? " " : "", j->health.active.sha256);
		cells[0] = j->host.name;
		cells[1] = j->host.address;
		cells[2] = j->reachable ? "yes" : "no";
		cells[3] = j->pin_ok < 0 ? "?" : j->pin_ok ? "ok" : "MISMATCH";
		cells[4] = j->health.have_active ? cur : "none";
		cells[5] = !have_release || !j->have_health ? "?" : j->same_sha ? "yes" : "no";
		cells[6] = !have_release || !j->have_health ? "?" : j->signature;
		cells[7] = j->error;
		if (swarm_table_add(t, cells) != 0) {
			swarm_table_free(t);
			t = NULL;
		}
	}
	if (t == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	swarm_table_print(t, stdout);
	swarm_table_free(t);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int
swarm_cmd_update(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct swarm_update_args a;
	struct swarm_ctx c;
	struct swarm_pool_opts po;
	struct swarm_job *jobs = NULL;
	struct prepared *prep = NULL;
	char err[1024];
	size_t n = 0, i;
	int rc = CLI_EXIT_FAIL, ok, ctx_open = 0;

	if (swarm_update_args_parse(argc, argv, &a, err, sizeof(err)) != 0) {
		free(a.hosts);
		return cli_usage_error(GROUP, self, "%s", err);
	}
	if (a.help) {
		free(a.hosts);
		return cli_help(GROUP, self);
	}
	prep = calloc(1, sizeof(*prep));
	if (prep == NULL) {
		log_warnx("out of memory");
		goto out;
	}
	if (swarm_ctx_open(&c, cli->home, a.timeout_s, err, sizeof(err)) != 0) {
		log_warnx("swarm update: %s", err);
		goto out;
	}
	ctx_open = 1;
	c.tty = isatty(STDERR_FILENO);
	if (select_hosts(c.reg, a.hosts, a.n_hosts, a.all,
		a.dry_run ? SWARM_JOB_DRY_RUN : SWARM_JOB_UPDATE, &jobs, &n) != 0) {
		goto out;
	}
	if (a.release != NULL && (prepare_release(a.release, prep) != 0 ||
	    (prep->tmpdir[0] == '\0' && prepare_signature(cli->home, prep) != 0))) {
		goto out;
	}
	memset(&po, 0, sizeof(po));
	po.release = a.release != NULL ? &prep->rf : NULL;
	po.include_self = a.include_self;
	po.parallel = a.parallel;
	if (swarm_run(&c, jobs, n, &po) != 0) {
		log_warnx("swarm update: cannot run the workers");
		goto out;
	}
	if (a.dry_run) {
		rc = dry_run_report(jobs, n, &a, prep, a.release != NULL);
		goto out;
	}
	ok = 1;
	for (i = 0; i < n; i++) {
		if (jobs[i].agent.outcome != SWARM_UPDATED ||
		    (a.include_self && jobs[i].self.outcome != SWARM_UPDATED)) {
			ok = 0;
		}
	}
	rc = update_report(jobs, n, &a, prep, ok);
out:
	if (prep != NULL) {
		prepared_cleanup(prep);
	}
	if (ctx_open) {
		swarm_ctx_close(&c);
	}
	free(prep);
	free(jobs);
	free(a.hosts);
	return rc;
}

/* ---------------------------------------------------------------- rollback */

/* The one host of --host NAME for the single-host commands. */
static int
one_host(const struct cli *cli, const struct cli_cmd *self, const struct simple_args *a,
    struct swarm_ctx *c, struct reg_host *h)
{
	char err[1024];
	int r;

	if (a->n_hosts != 1 || a->all) {
		return cli_usage_error(GROUP, self, "exactly one --host NAME is required");
	}
	if (swarm_ctx_open(c, cli->home, SWARM_DEFAULT_TIMEOUT_S, err, sizeof(err)) != 0) {
		log_warnx("swarm %s: %s", self->name, err);
		return CLI_EXIT_FAIL;
	}
	r = registry_get_host(c->reg, a->hosts[0], h, err, sizeof(err));
	if (r != REGISTRY_OK) {
		log_warnx("swarm %s: %s: %s", self->name, a->hosts[0],
		    r == REGISTRY_NOTFOUND ? "no such host in the registry" : err);
		swarm_ctx_close(c);
		return CLI_EXIT_FAIL;
	}
	return -1;
}

static int
swarm_cmd_rollback(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct simple_args a;
	struct swarm_ctx c;
	struct reg_host h;
	struct httpc_response resp;
	struct swarm_result r;
	struct reg_push rp;
	char err[1024], text[SWARM_REASON + SWARM_DETAIL + 8];
	int rc;
	cJSON *obj;

	rc = parse_simple(self, argc, argv, 1, 0, &a);
	if (rc < 0) {
		rc = one_host(cli, self, &a, &c, &h);
	}
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	if (swarm_request(&c, &h, "POST", "/rollback", &resp, err, sizeof(err)) != 0) {
		memset(&r, 0, sizeof(r));
		r.outcome = SWARM_FAILED;
		snprintf(r.reason, sizeof(r.reason), "%s", swarm_err_is_pin_mismatch(err)
		    ? "pin mismatch: the updater's certificate is not the one enrolled"
		    : "unreachable");
		snprintf(r.detail, sizeof(r.detail), "%s", err);
	} else {
		swarm_classify_rollback(resp.status, resp.body, resp.body_len, &r);
		httpc_response_free(&resp);
	}
	memset(&rp, 0, sizeof(rp));
	snprintf(rp.host, sizeof(rp.host), "%s", h.name);
	snprintf(rp.result, sizeof(rp.result), "%s",
	    r.outcome == SWARM_UPDATED ? "rolled-back" : "rollback-failed");
	snprintf(text, sizeof(text), "manual rollback%s%.240s%s%.1000s",
	    r.reason[0] != '\0' ? ": " : "",
	    r.reason, r.detail[0] != '\0' ? ": " : "", r.detail);
	registry_push_set_detail(&rp, text);
	if (registry_log_push(c.reg, &rp, err, sizeof(err)) != REGISTRY_OK) {
		log_warnx("%s: cannot record the rollback: %s", h.name, err);
	}
	swarm_ctx_close(&c);
	if (a.json) {
		obj = cJSON_CreateObject();
		if (obj == NULL || json_add_str(obj, "host", h.name) != 0 ||
		    json_add_str(obj, "result", r.outcome == SWARM_UPDATED ? "rolled-back"
									   : "failed") != 0 ||
		    json_add_str(obj, "reason", r.reason) != 0 ||
		    json_add_str(obj, "detail", r.detail) != 0 ||
		    json_add_int(obj, "http_status", r.http_status) != 0 ||
		    json_add_str(obj, "version", r.version) != 0 ||
		    json_add_str(obj, "sha256", r.sha256) != 0) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		rc = print_json(obj);
	} else {
		if (r.outcome == SWARM_UPDATED) {
			printf("%s: rolled back, now running %s (sha256 %s)\n", h.name, r.version,
			    r.sha256);
		} else {
			printf("%s: rollback failed: %s\n  %s\n", h.name, r.reason, r.detail);
		}
		rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	return rc == CLI_EXIT_OK && r.outcome == SWARM_UPDATED ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---------------------------------------------------------------- status */

/* "required, floor 6, keyring 3", "unsigned", ... ("" from an updater without signatures). */
static void
signatures_cell(const struct swarm_health *h, char *buf, size_t len)
{
	char floor[32] = "", kr[32] = "";

	if (h->security_floor > 0) {
		snprintf(floor, sizeof(floor), ", floor %lld", h->security_floor);
	}
	if (h->keyring_version > 0) {
		snprintf(kr, sizeof(kr), ", keyring %lld", h->keyring_version);
	}
	snprintf(buf, len, "%s%s%s", h->signature, h->signature[0] != '\0' ? floor : "",
	    h->signature[0] != '\0' ? kr : "");
}

static int
swarm_cmd_status(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const char *const heads[] = { "HOST", "ADDRESS", "UPDATER", "STATUS", "AGENT",
		"AGENT-STATE", "ACTIVE", "PREV", "SIGNATURES", "DETAIL" };
	struct simple_args a;
	struct swarm_ctx c;
	struct swarm_pool_opts po;
	struct swarm_job *jobs = NULL;
	struct swarm_table *t = NULL;
	char err[1024];
	size_t n = 0, i;
	int rc, ok = 1, ctx_open = 0;
	cJSON *obj = NULL, *arr, *h;

	rc = parse_simple(self, argc, argv, 1, 0, &a);
	if (rc >= 0) {
		free(a.hosts);
		return rc;
	}
	rc = CLI_EXIT_FAIL;
	if (swarm_ctx_open(&c, cli->home, SWARM_DEFAULT_TIMEOUT_S, err, sizeof(err)) != 0) {
		log_warnx("swarm status: %s", err);
		goto out;
	}
	ctx_open = 1;
	c.quiet = 1;
	if (select_hosts(c.reg, a.hosts, a.n_hosts, a.all || a.n_hosts == 0, SWARM_JOB_STATUS,
		&jobs, &n) != 0) {
		goto out;
	}
	memset(&po, 0, sizeof(po));
	po.parallel = SWARM_DEFAULT_PARALLEL;
	if (swarm_run(&c, jobs, n, &po) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!jobs[i].have_health) {
			ok = 0;
		}
	}
	if (a.json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
		for (i = 0; arr != NULL && i < n; i++) {
			const struct swarm_job *j = &jobs[i];
			h = cJSON_CreateObject();
			if (h == NULL) {
				arr = NULL;
				break;
			}
			cJSON_AddItemToArray(arr, h);
			if (json_add_str(h, "host", j->host.name) != 0 ||
			    json_add_str(h, "address", j->host.address) != 0 ||
			    json_add_bool(h, "reachable", j->reachable) != 0 ||
			    json_add_item(h, "pin_ok", j->pin_ok < 0 ? cJSON_CreateNull()
								       : cJSON_CreateBool(j->pin_ok)) != 0 ||
			    json_add_str(h, "status", j->have_health ? j->health.status : NULL) != 0 ||
			    json_add_str(h, "updater_version",
				j->have_health ? j->health.version : NULL) != 0 ||
			    json_add_str(h, "agent_version",
				j->agent_reach[0] == '\0' ? j->agent_version : NULL) != 0 ||
			    json_add_str(h, "agent_error", j->agent_reach) != 0 ||
			    json_add_str(h, "agent_state",
				j->have_health ? j->health.agent_state : NULL) != 0 ||
			    json_add_str(h, "operation", j->health.operation[0] != '\0'
							     ? j->health.operation
							     : NULL) != 0 ||
			    json_add_item(h, "active", release_json(&j->health.active,
							   j->health.have_active)) != 0 ||
			    json_add_item(h, "prev", release_json(&j->health.prev,
							 j->health.have_prev)) != 0 ||
			    json_add_str(h, "signature", j->health.signature[0] != '\0' ?
				j->health.signature : NULL) != 0 ||
			    json_add_item(h, "security_floor", j->health.security_floor >= 0 ?
				cJSON_CreateNumber((double)j->health.security_floor) :
				cJSON_CreateNull()) != 0 ||
			    json_add_item(h, "keyring_version", j->health.keyring_version > 0 ?
				cJSON_CreateNumber((double)j->health.keyring_version) :
				cJSON_CreateNull()) != 0 ||
			    json_add_str(h, "error", j->error) != 0) {
				arr = NULL;
				break;
			}
		}
		if (arr == NULL) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		rc = print_json(obj);
		goto out;
	}
	t = swarm_table_new(ARRAY_LEN(heads), heads);
	for (i = 0; t != NULL && i < n; i++) {
		const struct swarm_job *j = &jobs[i];
		const char *cells[ARRAY_LEN(heads)];
		char detail[SWARM_REASON * 3 + SWARM_DETAIL], st[64], sig[96];
		snprintf(st, sizeof(st), "%s", !j->reachable ? "unreachable"
		    : j->pin_ok == 0			    ? "PIN MISMATCH"
							    : j->health.status);
		snprintf(detail, sizeof(detail), "%s%s%s%s%s", j->error,
		    j->error[0] != '\0' && j->agent_reach[0] != '\0' ? "; " : "",
		    j->agent_reach[0] != '\0' ? "agent: " : "", j->agent_reach,
		    j->health.operation[0] != '\0' ? " (operation running)" : "");
		cells[0] = j->host.name;
		cells[1] = j->host.address;
		cells[2] = j->health.version;
		cells[3] = st;
		cells[4] = j->agent_version;
		cells[5] = j->health.agent_state;
		cells[6] = j->health.active.version;
		cells[7] = j->health.prev.version;
		signatures_cell(&j->health, sig, sizeof(sig));
		cells[8] = sig;
		cells[9] = detail;
		if (swarm_table_add(t, cells) != 0) {
			swarm_table_free(t);
			t = NULL;
		}
	}
	if (t == NULL) {
		log_warnx("out of memory");
		goto out;
	}
	swarm_table_print(t, stdout);
	rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	swarm_table_free(t);
	if (ctx_open) {
		swarm_ctx_close(&c);
	}
	free(jobs);
	free(a.hosts);
	if (rc == CLI_EXIT_OK && !ok) {
		rc = CLI_EXIT_FAIL;
	}
	return rc;
}

/* ---------------------------------------------------------------- releases/history */

/* GET PATH from the --host's updater; *TREE the parsed body (200 only). */
static int
get_tree(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv,
    const char *path, struct simple_args *a, struct reg_host *h, struct swarm_ctx *c,
    cJSON **tree, char *err, size_t errlen)
{
	struct httpc_response resp;
	int rc;

	*tree = NULL;
	rc = parse_simple(self, argc, argv, 1, 0, a);
	if (rc < 0) {
		rc = one_host(cli, self, a, c, h);
	}
	if (rc >= 0) {
		return rc;
	}
	if (swarm_request(c, h, "GET", path, &resp, err, errlen) != 0) {
		return -2;
	}
	if (resp.status != 200) {
		snprintf(err, errlen, "GET %s: HTTP %d: %.300s", path, resp.status, resp.body);
	} else {
		struct err e = ERR_INIT;

		*tree = json_parse_object(resp.body, resp.body_len, &e);
		if (*tree == NULL) {
			snprintf(err, errlen, "%s", err_msg(&e));
		}
	}
	httpc_response_free(&resp);
	return -2;
}

static int
swarm_cmd_releases(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const char *const heads[] = { "SLOT", "VERSION", "LABEL", "SHA256",
		"INSTALLED-AT" };
	struct simple_args a;
	struct swarm_ctx c;
	struct reg_host h;
	struct swarm_table *t = NULL;
	struct swarm_release r;
	char err[1024] = "";
	const cJSON *arr, *it;
	cJSON *tree = NULL;
	int rc;

	rc = get_tree(cli, self, argc, argv, "/releases", &a, &h, &c, &tree, err, sizeof(err));
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	swarm_ctx_close(&c);
	arr = cJSON_GetObjectItemCaseSensitive(tree, "releases");
	if (tree == NULL || !cJSON_IsArray(arr)) {
		log_warnx("swarm releases: %s: %s", h.name,
		    err[0] != '\0' ? err : "answer without a releases array");
		cJSON_Delete(tree);
		return CLI_EXIT_FAIL;
	}
	if (a.json) {
		if (json_add_str(tree, "host", h.name) != 0) {
			cJSON_Delete(tree);
			return print_json(NULL);
		}
		return print_json(tree);
	}
	t = swarm_table_new(ARRAY_LEN(heads), heads);
	cJSON_ArrayForEach(it, arr)
	{
		const char *cells[ARRAY_LEN(heads)];
		memset(&r, 0, sizeof(r));
		if (t == NULL || !cJSON_IsObject(it)) {
			continue;
		}
		snprintf(r.slot, sizeof(r.slot), "%s",
		    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "slot")) != NULL
			? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "slot"))
			: "");
		cells[0] = r.slot;
		cells[1] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "version"));
		cells[2] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "sha"));
		cells[3] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "sha256"));
		cells[4] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "installed_at"));
		if (swarm_table_add(t, cells) != 0) {
			swarm_table_free(t);
			t = NULL;
		}
	}
	cJSON_Delete(tree);
	if (t == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	swarm_table_print(t, stdout);
	swarm_table_free(t);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int
swarm_cmd_history(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	static const char *const heads[] = { "FINISHED-AT", "KIND", "RESULT", "VERSION", "CALLER",
		"ERROR" };
	static const char *const pheads[] = { "AT", "RESULT", "SHA256", "DETAIL" };
	struct simple_args a;
	struct swarm_ctx c;
	struct reg_host h;
	struct reg_push *pushes = NULL;
	struct swarm_table *t = NULL, *pt = NULL;
	char err[1024] = "", rerr[512], at[32], sha[16], caller[20];
	const cJSON *arr = NULL, *it;
	cJSON *tree = NULL, *obj = NULL, *parr;
	size_t n = 0, i;
	int rc, updater_ok;

	rc = get_tree(cli, self, argc, argv, "/history", &a, &h, &c, &tree, err, sizeof(err));
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	if (registry_push_history(c.reg, h.name, 0, &pushes, &n, rerr, sizeof(rerr)) != REGISTRY_OK) {
		log_warnx("swarm history: %s", rerr);
		n = 0;
	}
	swarm_ctx_close(&c);
	arr = cJSON_GetObjectItemCaseSensitive(tree, "history");
	updater_ok = tree != NULL && cJSON_IsArray(arr);
	if (!updater_ok) {
		log_warnx("swarm history: %s: %s", h.name,
		    err[0] != '\0' ? err : "answer without a history array");
	}
	rc = CLI_EXIT_FAIL;
	if (a.json) {
		obj = cJSON_CreateObject();
		if (obj == NULL || json_add_str(obj, "host", h.name) != 0 ||
		    json_add_item(obj, "updater", updater_ok ? cJSON_Duplicate(arr, 1)
							     : cJSON_CreateNull()) != 0 ||
		    json_add_str(obj, "updater_error", updater_ok ? "" : err) != 0 ||
		    (parr = json_add_array(obj, "pushes")) == NULL) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		for (i = 0; obj != NULL && i < n; i++) {
			cJSON *p = push_json(&pushes[i]);
			if (p == NULL) {
				cJSON_Delete(obj);
				obj = NULL;
				break;
			}
			cJSON_AddItemToArray(parr, p);
		}
		rc = print_json(obj);
		goto out;
	}
	if (updater_ok) {
		printf("updater history of %s:\n", h.name);
		t = swarm_table_new(ARRAY_LEN(heads), heads);
		cJSON_ArrayForEach(it, arr)
		{
			const char *cells[ARRAY_LEN(heads)];
			if (t == NULL || !cJSON_IsObject(it)) {
				continue;
			}
			cells[0] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it,
			    "finished_at"));
			cells[1] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "kind"));
			cells[2] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "result"));
			cells[3] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "version"));
			snprintf(caller, sizeof(caller), "%.16s",
			    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "caller")) != NULL
				? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "caller"))
				: "");
			cells[4] = caller;
			cells[5] = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "error"));
			if (swarm_table_add(t, cells) != 0) {
				swarm_table_free(t);
				t = NULL;
			}
		}
		if (t != NULL) {
			swarm_table_print(t, stdout);
		}
	}
	printf("%spushes recorded by this master for %s:\n", updater_ok ? "\n" : "", h.name);
	pt = swarm_table_new(ARRAY_LEN(pheads), pheads);
	for (i = 0; pt != NULL && i < n; i++) {
		const char *cells[ARRAY_LEN(pheads)];
		fmt_time(pushes[i].at, at, sizeof(at));
		snprintf(sha, sizeof(sha), "%.12s", pushes[i].sha256);
		cells[0] = at;
		cells[1] = pushes[i].result;
		cells[2] = sha;
		cells[3] = pushes[i].detail;
		if (swarm_table_add(pt, cells) != 0) {
			swarm_table_free(pt);
			pt = NULL;
		}
	}
	if (pt != NULL) {
		swarm_table_print(pt, stdout);
	}
	rc = fflush(stdout) == 0 && pt != NULL ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	swarm_table_free(t);
	swarm_table_free(pt);
	cJSON_Delete(tree);
	free(pushes);
	return rc == CLI_EXIT_OK && updater_ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---------------------------------------------------------------- table */

/* ---------------------------------------------------------------- keyring */

static int
keyring_report(const struct swarm_job *jobs, size_t n, int64_t latest, int json, int ok)
{
	static const char *const heads[] = { "HOST", "ADDRESS", "KEYRING", "DETAIL" };
	struct swarm_table *t;
	cJSON *obj, *arr, *h;
	size_t i;

	if (json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
		if (arr == NULL || json_add_int(obj, "keyring_version", latest) != 0 ||
		    json_add_bool(obj, "ok", ok) != 0) {
			cJSON_Delete(obj);
			return print_json(NULL);
		}
		for (i = 0; i < n; i++) {
			const struct swarm_job *j = &jobs[i];
			h = cJSON_CreateObject();
			if (h == NULL || !cJSON_AddItemToArray(arr, h) ||
			    json_add_str(h, "host", j->host.name) != 0 ||
			    json_add_item(h, "from", j->keyring_from >= 0 ?
				cJSON_CreateNumber((double)j->keyring_from) : cJSON_CreateNull()) != 0 ||
			    json_add_item(h, "to", j->keyring_to >= 0 ?
				cJSON_CreateNumber((double)j->keyring_to) : cJSON_CreateNull()) != 0 ||
			    json_add_str(h, "error", j->error) != 0) {
				cJSON_Delete(obj);
				return print_json(NULL);
			}
		}
		return print_json(obj) == CLI_EXIT_OK && ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	t = swarm_table_new(ARRAY_LEN(heads), heads);
	for (i = 0; t != NULL && i < n; i++) {
		const struct swarm_job *j = &jobs[i];
		const char *cells[ARRAY_LEN(heads)];
		char kr[64];

		if (j->keyring_from < 0) {
			snprintf(kr, sizeof(kr), "?");
		} else if (j->keyring_from == j->keyring_to) {
			snprintf(kr, sizeof(kr), "%lld (unchanged)", j->keyring_to);
		} else {
			snprintf(kr, sizeof(kr), "%lld -> %lld", j->keyring_from, j->keyring_to);
		}
		cells[0] = j->host.name;
		cells[1] = j->host.address;
		cells[2] = kr;
		cells[3] = j->error;
		if (swarm_table_add(t, cells) != 0) {
			swarm_table_free(t);
			t = NULL;
		}
	}
	if (t == NULL) {
		log_warnx("out of memory");
		return CLI_EXIT_FAIL;
	}
	swarm_table_print(t, stdout);
	swarm_table_free(t);
	return fflush(stdout) == 0 && ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* `swarm keyring push`: ARGV[0] is "keyring". */
static int
swarm_cmd_keyring(const struct cli *cli, const struct cli_cmd *self, int argc, char **argv)
{
	struct simple_args a;
	struct sign_keyring kr;
	struct swarm_ctx c;
	struct swarm_pool_opts po;
	struct swarm_job *jobs = NULL;
	struct err e = ERR_INIT;
	char err[1024];
	size_t n = 0, i;
	int rc, ok = 1, ctx_open = 0, have;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		return cli_help(GROUP, self);
	}
	if (argc < 2 || strcmp(argv[1], "push") != 0) {
		return cli_usage_error(GROUP, self, "%s", argc < 2 ? "an action is required: push" :
		    "unknown keyring action (push)");
	}
	rc = parse_simple(self, argc - 1, argv + 1, 1, 0, &a);
	if (rc >= 0) {
		free(a.hosts);
		return rc;
	}
	if (!a.all && a.n_hosts == 0) {
		free(a.hosts);
		return cli_usage_error(GROUP, self, "--host NAME or --all is required");
	}
	rc = CLI_EXIT_FAIL;
	sign_keyring_init(&kr);
	have = keystore_current(cli->home, &kr, &e);
	if (have <= 0) {
		log_warnx("swarm keyring push: %s", have < 0 ? err_msg(&e) :
		    "the master has no keyring (tandem release keyring init)");
		goto out;
	}
	if (swarm_ctx_open(&c, cli->home, SWARM_DEFAULT_TIMEOUT_S, err, sizeof(err)) != 0) {
		log_warnx("swarm keyring push: %s", err);
		goto out;
	}
	ctx_open = 1;
	c.tty = isatty(STDERR_FILENO);
	c.quiet = a.json;
	if (select_hosts(c.reg, a.hosts, a.n_hosts, a.all, SWARM_JOB_KEYRING, &jobs, &n) != 0) {
		goto out;
	}
	memset(&po, 0, sizeof(po));
	po.parallel = SWARM_DEFAULT_PARALLEL;
	po.keyring_version = kr.version;
	if (swarm_run(&c, jobs, n, &po) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (jobs[i].error[0] != '\0' || jobs[i].keyring_to != kr.version) {
			ok = 0;
		}
	}
	rc = keyring_report(jobs, n, kr.version, a.json, ok);
out:
	if (ctx_open) {
		swarm_ctx_close(&c);
	}
	sign_keyring_free(&kr);
	free(jobs);
	free(a.hosts);
	return rc;
}

static const struct cli_cmd swarm_cmds[] = {
	{ "enroll", "issue a host's certificates, write its bundle, register it",
	    " NAME --address ADDR [--agent-port P] [--updater-port P] [--san DNS|IP]...\n"
	    "                    [--updater] [--out DIR] [--notes TEXT] [--json]\n"
	    "       tandem swarm enroll --updater NAME   (add the updater identity)\n"
	    "\n"
	    "Issues CN=NAME (agent) and with --updater CN=updater@NAME certificates from\n"
	    "the CA, and writes the bundle DIR (default HOME/hosts/NAME): ca.crt,\n"
	    "agent.crt/.key, updater.crt/.key (keys 0600), agent.conf and updater.conf\n"
	    "(relative paths: use them wherever the bundle is unpacked). Records the host\n"
	    "and both certificate fingerprints in the registry. Refuses duplicate and\n"
	    "invalid names, the master CN and names with '@'.\n"
	    "\n"
	    "  --address ADDR     how the master reaches the host (name or IP; also a SAN)\n"
	    "  --agent-port P     agent port (default 8765)\n"
	    "  --updater-port P   updater port (default 8766)\n"
	    "  --san DNS|IP       extra subjectAltName, repeatable\n"
	    "  --updater          also issue the updater identity (needed for updates)\n"
	    "  --out DIR          bundle directory (default HOME/hosts/NAME)\n"
	    "  --notes TEXT       free-form notes\n"
	    "  --json             print the host as JSON\n",
	    swarm_cmd_enroll },
	{ "list", "list enrolled hosts", " [--json]\n", swarm_cmd_list },
	{ "show", "show one host and its recent pushes", " NAME [--json]\n", swarm_cmd_show },
	{ "decommission", "retire a host (kept in the registry, left out of --all)",
	    " NAME [--json]\n", swarm_cmd_decommission },
	{ "update", "push a release to hosts' updaters",
	    " (--host NAME ... | --all) [--release FILE|DIR] [--include-self]\n"
	    "                    [--dry-run] [--parallel N] [--timeout S] [--json]\n"
	    "\n"
	    "Streams the release (a tarball, or a directory packed first) to each host's\n"
	    "updater (POST /update), pinned to the updater certificate recorded at\n"
	    "enrollment, at most N hosts at a time. The updater installs it, restarts the\n"
	    "agent, probes it and rolls back on failure. Ends with a table: host, address,\n"
	    "agent result (updated / rolled-back / failed: reason), self result, version,\n"
	    "detail. A signature FILE.tsig next to FILE (tandem release sign) goes along\n"
	    "to every updater that checks signatures.\n"
	    "\n"
	    "  --host NAME        a host (repeatable)\n"
	    "  --all              every host in service (not decommissioned)\n"
	    "  --release FILE|DIR the release tarball or tree (required unless --dry-run)\n"
	    "  --include-self     after the agent update, also replace the updater\n"
	    "                     (POST /update-self) and confirm its new version\n"
	    "  --dry-run          change nothing: per host reachable?, pin ok?, current\n"
	    "                     release, already running this sha256?, would it accept\n"
	    "                     the signature (checked with the master's keyring)?\n"
	    "  --parallel N       hosts at once (default 8, at most 256)\n"
	    "  --timeout S        per request: upload + install + probe (default 900)\n"
	    "  --json             one JSON object on stdout\n"
	    "\n"
	    "Exit status: 0 every host updated (and its updater with --include-self),\n"
	    "1 otherwise, 2 usage error.\n",
	    swarm_cmd_update },
	{ "rollback", "restore a host's previous release", " --host NAME [--json]\n",
	    swarm_cmd_rollback },
	{ "status", "ask hosts' updaters and agents how they are",
	    " [--host NAME ... | --all] [--json]\n"
	    "\n"
	    "Per host: reachable, pin, updater version and status, agent version (from\n"
	    "the agent itself, pinned) and supervisor state, active and previous\n"
	    "release. Without --host, every host in service. Exit 1 if any updater\n"
	    "did not answer.\n",
	    swarm_cmd_status },
	{ "releases", "list a host's installed releases", " --host NAME [--json]\n",
	    swarm_cmd_releases },
	{ "history", "a host's operation history (updater) and push log (registry)",
	    " --host NAME [--json]\n", swarm_cmd_history },
	{ "keyring", "bring hosts' release keyrings up to the master's",
	    " push (--host NAME ... | --all) [--json]\n"
	    "\n"
	    "Sends each host's updater (POST /keyring) the keyring versions it lacks, in\n"
	    "order: a host accepts only the version after its own, signed by the root keys\n"
	    "of both. A host without a keyring gets the master's current one. The master's\n"
	    "keyrings are in HOME/keyring/ (tandem release keyring). Ends with a table:\n"
	    "host, address, keyring version before -> after, detail.\n"
	    "\n"
	    "Exit status: 0 every host has the master's keyring, 1 otherwise, 2 usage.\n",
	    swarm_cmd_keyring },
};

const struct cli_group cli_group_swarm = {
	.name = "swarm",
	.summary = "the fleet: enroll, list, update, rollback, status",
	.cmds = swarm_cmds,
	.n_cmds = ARRAY_LEN(swarm_cmds),
};
