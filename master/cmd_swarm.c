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
#include "common/testhook.h"
#include "common/util.h"
#include "master/certs.h"
#include "master/cli.h"
#include "master/cmd_rollout.h"
#include "master/registry.h"
#include "master/keystore.h"
#include "master/release_pack.h"
#include "master/release_sign.h"
#include "master/release_store.h"
#include "master/rollout_plan.h"
#include "master/swarm_enroll.h"
#include "master/swarm_push.h"
#include "master/swarm_renew.h"
#include "master/swarm_result.h"
#include "pki/pki.h"

#define GROUP "swarm"
#define SHOW_PUSHES 10

static cJSON *
host_json(const struct reg_host *h)
{
	char enrolled[32], decom[32];
	cJSON *o = cJSON_CreateObject();

	swarm_fmt_time(h->enrolled_at, enrolled, sizeof(enrolled));
	swarm_fmt_time(h->decommissioned_at, decom, sizeof(decom));
	if (o == NULL || json_add_str(o, "name", h->name) != 0 ||
	    json_add_str(o, "address", h->address) != 0 ||
	    json_add_int(o, "agent_port", h->agent_port) != 0 ||
	    json_add_int(o, "updater_port", h->updater_port) != 0 ||
	    json_add_str(o, "agent_fingerprint", h->agent_fp) != 0 ||
	    json_add_str(o, "updater_fingerprint", h->updater_fp[0] != '\0' ? h->updater_fp
									    : NULL) != 0 ||
	    json_add_str(o, "agent_fingerprint_next",
		h->agent_fp_next[0] != '\0' ? h->agent_fp_next : NULL) != 0 ||
	    json_add_str(o, "updater_fingerprint_next",
		h->updater_fp_next[0] != '\0' ? h->updater_fp_next : NULL) != 0 ||
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

	swarm_fmt_time(p->at, at, sizeof(at));
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

/* LABELS as {"key":"value",...}. */
static cJSON *
labels_json(const struct selector_label *labels, size_t n)
{
	cJSON *o = cJSON_CreateObject();

	for (size_t i = 0; o != NULL && i < n; i++) {
		if (json_add_str(o, labels[i].key, labels[i].value) != 0) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

/* Host NAME's labels as "k=v,k2=v2" into BUF ("" for none or on error). */
static void
labels_text(struct registry *reg, const char *name, struct selector_label *labels, size_t *n,
    char *buf, size_t len)
{
	struct err e = ERR_INIT;

	buf[0] = '\0';
	*n = 0;
	if (registry_host_labels(reg, name, labels, REG_LABELS_MAX, n, &e) != 0) {
		*n = 0;
		return;
	}
	for (size_t i = 0; i < *n; i++) {
		size_t l = strlen(buf);
		snprintf(buf + l, len - l, "%s%s=%s", i > 0 ? "," : "", labels[i].key, labels[i].value);
	}
}

/* Options shared by the simple commands (their tables name the ones each has). */
struct simple_args {
	const char **hosts;
	size_t n_hosts;
	int all;
	const char *name; /* the operand NAME, if any */
};

/* Keys of the swarm commands' options. */
enum {
	SW_HOST = 'H',
	SW_ALL = 'a',
	SW_OUT = 'o',
	SW_HOSTS = 0x100,
	SW_PARALLEL,
	SW_JSON_LINES,
	SW_WARN_DAYS,
	SW_ADDRESS,
	SW_AGENT_PORT,
	SW_UPDATER_PORT,
	SW_SAN,
	SW_UPDATER,
	SW_NOTES,
	SW_LABEL,
	SW_FORCE,
	SW_BEFORE,
	SW_ONLY,
	SW_DAYS,
	SW_TEST_VALIDITY,
};

#define SW_OPT_HOST { "host", SW_HOST, 1, "NAME", "a host (repeatable)" }
#define SW_OPT_ONE_HOST { "host", SW_HOST, 1, "NAME", "the host (required)" }
#define SW_OPT_ALL { "all", SW_ALL, 1, NULL, "every host in service (not decommissioned)" }
#define SW_OPT_HOSTS \
	{ "hosts", SW_HOSTS, 0, "SEL", "all, NAME,NAME... or labels KEY=VALUE,KEY!=VALUE..." }
#define SW_OPT_END { NULL, 0, 0, NULL, NULL }

/*
 * Read --host and --all (as the command's table allows) and the operand NAME
 * (when the table names one). Returns -1 to go on, else the exit code.
 */
static int
parse_simple(struct cli *cli, int argc, char **argv, struct simple_args *a)
{
	struct cli_getopt g;
	int c, optind_;

	memset(a, 0, sizeof(*a));
	a->hosts = calloc((size_t)argc + 1, sizeof(*a->hosts));
	if (a->hosts == NULL) {
		return cli_failf(cli, ERR_NOMEM, "out of memory");
	}
	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case SW_HOST:
			if (*g.arg == '\0') {
				return cli_usage(cli, "--host needs a name");
			}
			a->hosts[a->n_hosts++] = g.arg;
			break;
		case SW_ALL:
			a->all = 1;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	optind_ = cli_getopt_index(&g);
	if (optind_ < argc) {
		a->name = argv[optind_];
	}
	if (a->all && a->n_hosts > 0) {
		return cli_usage(cli, "--all and --host exclude each other");
	}
	return -1;
}

/* ---------------------------------------------------------------- enroll */

static const struct cli_opt swarm_enroll_opts[] = {
	{ "address", SW_ADDRESS, 0, "ADDR",
	    "how the master reaches the host (name or IP; also a\nSAN); required for a new host" },
	{ "agent-port", SW_AGENT_PORT, 0, "P", "agent port (default 8765)" },
	{ "updater-port", SW_UPDATER_PORT, 0, "P", "updater port (default 8766)" },
	{ "san", SW_SAN, 0, "DNS|IP", "extra subjectAltName, repeatable" },
	{ "updater", SW_UPDATER, 0, NULL,
	    "also issue the updater identity (needed for updates);\nalone on an enrolled host: "
	    "add it" },
	{ "out", SW_OUT, 1, "DIR",
	    "bundle directory (default HOME/hosts/NAME); refused\nwhen it already holds a key "
	    "or certificate" },
	{ "notes", SW_NOTES, 0, "TEXT", "free-form notes" },
	{ "label", SW_LABEL, 0, "KEY=VALUE",
	    "a label (repeatable; 'swarm label' changes them later)" },
	{ "days", SW_DAYS, 0, "N",
	    "validity of the host's certificates in days (default 397,\nat most 3650; "
	    "'swarm renew' renews them)" },
	SW_OPT_END,
};

static int
swarm_cmd_enroll(struct cli *cli, int argc, char **argv)
{
	struct err pe = ERR_INIT;
	struct cli_getopt g;
	const char *sans[PKI_MAX_SANS];
	struct selector_label labels[REG_LABELS_MAX];
	struct swarm_enroll_opts o;
	struct swarm_enroll_result *res = NULL;
	struct registry *reg = NULL;
	struct err le = ERR_INIT;
	long long v;
	size_t n_labels = 0;
	int c, r, rc = CLI_EXIT_FAIL, rm;
	cJSON *obj;

	memset(&o, 0, sizeof(o));
	o.sans = sans;
	cli_getopt_init(&g, cli, argc, argv);
	while ((c = cli_getopt(&g, cli)) != -1) {
		switch (c) {
		case SW_ADDRESS:
			o.address = g.arg;
			break;
		case SW_AGENT_PORT:
		case SW_UPDATER_PORT:
			if (parse_ll(g.arg, 1, 65535, &v) != 0) {
				return cli_usage(cli, "%s '%s': expected a port in 1..65535",
				    c == SW_AGENT_PORT ? "--agent-port" : "--updater-port", g.arg);
			}
			if (c == SW_AGENT_PORT) {
				o.agent_port = (int)v;
			} else {
				o.updater_port = (int)v;
			}
			break;
		case SW_SAN:
			if (o.n_sans == PKI_MAX_SANS - 1) {
				return cli_usage(cli, "at most %d --san", PKI_MAX_SANS - 1);
			}
			sans[o.n_sans++] = g.arg;
			break;
		case SW_UPDATER:
			o.updater = 1;
			break;
		case SW_OUT:
			if (*g.arg == '\0') {
				return cli_usage(cli, "--out needs a directory");
			}
			o.out = g.arg;
			break;
		case SW_NOTES:
			if (strlen(g.arg) > REG_NOTES_MAX) {
				return cli_usage(cli, "--notes: at most %d bytes", REG_NOTES_MAX);
			}
			o.notes = g.arg;
			break;
		case SW_DAYS:
			if (parse_ll(g.arg, 1, PKI_MAX_DAYS, &v) != 0) {
				return cli_usage(cli,
				    "--days '%s': expected a whole number of days in 1..%d", g.arg,
				    PKI_MAX_DAYS);
			}
			o.days = (int)v;
			break;
		case SW_LABEL:
			if (n_labels == ARRAY_LEN(labels)) {
				return cli_usage(cli, "at most %d --label", (int)ARRAY_LEN(labels));
			}
			if (selector_label_parse(g.arg, &labels[n_labels], &rm, &le) != 0 || rm) {
				return cli_usage(cli, "--label %s", rm ? "takes KEY=VALUE" : err_msg(&le));
			}
			n_labels++;
			break;
		default:
			return CLI_EXIT_USAGE;
		}
	}
	o.name = argv[cli_getopt_index(&g)];
	if (!o.updater && o.address == NULL) {
		/* The command line is incomplete whatever the registry holds. */
		return cli_usage(cli, "--address ADDR is required (only --updater alone adds to an "
				      "enrolled host)");
	}
	res = calloc(1, sizeof(*res));
	if (res == NULL) {
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
		return CLI_EXIT_FAIL;
	}
	r = swarm_enroll(cli->home, &o, res, &pe);
	if (r != REGISTRY_OK) {
		err_prefix(&pe, "swarm enroll");
		rc = cli_fail(cli, &pe);
		goto out;
	}
	if (n_labels > 0) {
		if (registry_open(cli->home, &reg, &pe) != REGISTRY_OK) {
			rc = cli_failf(cli, ERR_IO, "swarm enroll: labels: %s", err_msg(&pe));
			goto out;
		}
		for (size_t i = 0; i < n_labels; i++) {
			if (registry_label_set(reg, res->host.name, labels[i].key, labels[i].value,
			    &le) != 0) {
				rc = cli_failf(cli, ERR_IO, "swarm enroll: labels: %s", err_msg(&le));
				goto out;
			}
		}
	}
	if (res->added_updater_only) {
		log_info("added the updater identity of %s (bundle %s)", res->host.name, res->bundle);
	} else {
		log_info("enrolled %s at %s (bundle %s)", res->host.name, res->host.address,
		    res->bundle);
	}
	if (cli->json) {
		obj = host_json(&res->host);
		if (obj == NULL || json_add_str(obj, "bundle", res->bundle) != 0 ||
		    (n_labels > 0 && json_add_item(obj, "labels", labels_json(labels, n_labels)) != 0)) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		rc = swarm_print_json(obj);
	} else {
		printf("host: %s\naddress: %s\nagent_port: %d\nupdater_port: %d\n"
		       "agent_fingerprint: %s\nupdater_fingerprint: %s\nbundle: %s\n",
		    res->host.name, res->host.address, res->host.agent_port, res->host.updater_port,
		    res->host.agent_fp, res->host.updater_fp[0] != '\0' ? res->host.updater_fp : "-",
		    res->bundle);
		rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
out:
	registry_close(reg);
	free(res);
	return rc;
}

/* ---------------------------------------------------------------- list/show/decommission */

static int
swarm_cmd_list(struct cli *cli, int argc, char **argv)
{
	struct err pe = ERR_INIT;
	static const char *const heads[] = { "HOST", "ADDRESS", "AGENT", "UPDATER",
		"UPDATER-PIN", "STATE", "LABELS", "NOTES" };
	struct selector_label labels[REG_LABELS_MAX];
	char ltext[REG_LABELS_MAX * 130];
	size_t nl;
	struct simple_args a;
	struct registry *reg = NULL;
	struct reg_host *hosts = NULL;
	struct swarm_table *t = NULL;
	char ap[16], up[16], pin[20];
	size_t n = 0, i;
	int rc;
	cJSON *obj = NULL, *arr;

	rc = parse_simple(cli, argc, argv, &a);
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	rc = CLI_EXIT_FAIL;
	if (registry_open(cli->home, &reg, &pe) != REGISTRY_OK ||
	    registry_list_hosts(reg, 1, &hosts, &n, &pe) != REGISTRY_OK) {
		rc = cli_failf(cli, ERR_IO, "swarm list: %s", err_msg(&pe));
		goto out;
	}
	if (cli->json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
		for (i = 0; arr != NULL && i < n; i++) {
			cJSON *h = host_json(&hosts[i]);
			labels_text(reg, hosts[i].name, labels, &nl, ltext, sizeof(ltext));
			if (h == NULL || json_add_item(h, "labels", labels_json(labels, nl)) != 0) {
				cJSON_Delete(h);
				arr = NULL;
				break;
			}
			cJSON_AddItemToArray(arr, h);
		}
		if (arr == NULL) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		rc = swarm_print_json(obj);
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
		labels_text(reg, hosts[i].name, labels, &nl, ltext, sizeof(ltext));
		cells[6] = ltext;
		cells[7] = hosts[i].notes;
		if (swarm_table_add(t, cells) != 0) {
			swarm_table_free(t);
			t = NULL;
		}
	}
	if (t == NULL) {
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
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
swarm_cmd_show(struct cli *cli, int argc, char **argv)
{
	struct err pe = ERR_INIT;
	struct selector_label labels[REG_LABELS_MAX];
	char ltext[REG_LABELS_MAX * 130];
	size_t nl = 0;
	struct simple_args a;
	struct registry *reg = NULL;
	struct reg_host h;
	struct reg_push *pushes = NULL;
	char t1[32], t2[32];
	size_t n = 0, i;
	int rc, r;
	cJSON *obj = NULL, *arr;

	rc = parse_simple(cli, argc, argv, &a);
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	rc = CLI_EXIT_FAIL;
	if (registry_open(cli->home, &reg, &pe) != REGISTRY_OK) {
		rc = cli_failf(cli, ERR_IO, "swarm show: %s", err_msg(&pe));
		goto out;
	}
	r = registry_get_host(reg, a.name, &h, &pe);
	if (r == REGISTRY_OK) {
		r = registry_push_history(reg, h.name, SHOW_PUSHES, &pushes, &n, &pe);
	}
	if (r != REGISTRY_OK) {
		rc = cli_failf(cli, r == REGISTRY_NOTFOUND ? ERR_NOT_FOUND : pe.kind,
		    "swarm show: %s: %s", a.name,
		    r == REGISTRY_NOTFOUND ? "no such host" : err_msg(&pe));
		goto out;
	}
	labels_text(reg, h.name, labels, &nl, ltext, sizeof(ltext));
	if (cli->json) {
		obj = host_json(&h);
		if (obj != NULL && json_add_item(obj, "labels", labels_json(labels, nl)) != 0) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		arr = obj != NULL ? json_add_array(obj, "recent_pushes") : NULL;
		/* The newest SHOW_PUSHES, oldest first (as swarm history and /history). */
		for (i = 0; arr != NULL && i < n; i++) {
			cJSON *p = push_json(&pushes[n - 1 - i]);
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
		rc = swarm_print_json(obj);
		goto out;
	}
	swarm_fmt_time(h.enrolled_at, t1, sizeof(t1));
	swarm_fmt_time(h.decommissioned_at, t2, sizeof(t2));
	printf("host: %s\naddress: %s\nagent_port: %d\nupdater_port: %d\n"
	       "agent_fingerprint: %s\nupdater_fingerprint: %s\nnotes: %s\nenrolled_at: %s\n"
	       "state: %s%s%s\nlabels: %s\n",
	    h.name, h.address, h.agent_port, h.updater_port, h.agent_fp,
	    h.updater_fp[0] != '\0' ? h.updater_fp : "- (no updater identity: cannot be updated)",
	    h.notes, t1, h.decommissioned_at != 0 ? "decommissioned at " : "in service",
	    h.decommissioned_at != 0 ? t2 : "", "", ltext[0] != '\0' ? ltext : "-");
	for (i = n; i > 0; i--) { /* oldest first */
		swarm_fmt_time(pushes[i - 1].at, t1, sizeof(t1));
		printf("push: %s %s %.12s %s\n", t1, pushes[i - 1].result, pushes[i - 1].sha256,
		    pushes[i - 1].detail);
	}
	rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	free(pushes);
	registry_close(reg);
	return rc;
}

static int
swarm_cmd_decommission(struct cli *cli, int argc, char **argv)
{
	struct err pe = ERR_INIT;
	struct simple_args a;
	struct registry *reg = NULL;
	struct reg_host h;
	int rc, r;

	rc = parse_simple(cli, argc, argv, &a);
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	rc = CLI_EXIT_FAIL;
	if (registry_open(cli->home, &reg, &pe) != REGISTRY_OK) {
		rc = cli_failf(cli, ERR_IO, "swarm decommission: %s", err_msg(&pe));
		goto out;
	}
	r = registry_decommission(reg, a.name, 0, &pe);
	if (r == REGISTRY_OK) {
		r = registry_get_host(reg, a.name, &h, &pe);
	}
	if (r != REGISTRY_OK) {
		rc = cli_failf(cli, r == REGISTRY_NOTFOUND ? ERR_NOT_FOUND : pe.kind,
		    "swarm decommission: %s: %s", a.name,
		    r == REGISTRY_NOTFOUND ? "no such host" : err_msg(&pe));
		goto out;
	}
	log_info("%s is decommissioned: kept in the registry, left out of --all", h.name);
	rc = cli->json ? swarm_print_json(host_json(&h))
		    : (printf("%s decommissioned\n", h.name) < 0 || fflush(stdout) != 0
			      ? CLI_EXIT_FAIL
			      : CLI_EXIT_OK);
out:
	registry_close(reg);
	return rc;
}

/* ---------------------------------------------------------------- host selection */

/*
 * A source of jobs for the worker pool: the hosts SEL selects, read from the
 * registry a page at a time, so memory stays flat in the number of hosts.
 */
struct host_source {
	struct registry *reg;
	struct selector sel;
	enum swarm_job_kind kind;
	int64_t cursor;
	struct reg_host page[64];
	size_t n, i;
	int failed;
};

static int
host_source_next(void *arg, struct swarm_job *j)
{
	struct host_source *s = arg;
	struct err e = ERR_INIT;

	if (s->i == s->n) {
		if (registry_hosts_select(s->reg, &s->sel, &s->cursor, ARRAY_LEN(s->page), s->page,
		    &s->n, &e) != 0) {
			log_warnx("%s", err_msg(&e));
			s->failed = 1;
			s->n = 0;
		}
		s->i = 0;
		if (s->n == 0) {
			return 0;
		}
	}
	j->host = s->page[s->i++];
	j->kind = s->kind;
	return 1;
}

/* ---------------------------------------------------------------- update */

/*
 * The signature next to the release tarball SRC (sent along) and the
 * master's keyring (for the dry run's verdicts). Returns 0 or -1 with E.
 */
static int
prepare_signature(const char *home, const char *src, struct cmd_release *p, struct err *e)
{
	char tpath[PATH_MAX];
	size_t len = 0;
	int have;

	if (release_sign_tsig_path(src, tpath, sizeof(tpath)) != 0) {
		return err_set(e, ERR_USAGE, "--release path too long");
	}
	have = release_sign_read_tsig(tpath, &p->tsig, &len, e);
	if (have < 0) {
		return -1;
	}
	if (have > 0 && strlen(p->tsig) != len) {
		return err_set(e, ERR_FORMAT, "%s holds a NUL byte: not a signature file", tpath);
	}
	p->rf.tsig = p->tsig;
	p->rf.tsig_len = len;
	if (keystore_current(home, &p->keyring, e) < 0) {
		return -1;
	}
	p->rf.keyring = &p->keyring;
	return 0;
}

/*
 * The release SRC as an updater will check it, before any host is
 * contacted, taken into the master's store on the way (master/release_store:
 * one read of SRC; a release the store holds and checked before is not
 * checked again; DRY_RUN: nothing is written): the tarball's entries and
 * manifest by common/release_check (the rules the updater's extraction
 * applies), installed as KINDS (SIGN_KIND_AGENT, with SIGN_KIND_UPDATER for
 * --include-self), and its signature file, when it has one, by the part of
 * pki/sign's rule that needs no keys (it parses and its statement describes
 * these bytes, this kind and this manifest): which keys a host trusts is the
 * host's keyring's to say (the dry run tells per host). P->path becomes the
 * stored file. Returns 0 or -1 with E in the updater's words.
 */
static int
check_release(const char *home, const char *src, struct cmd_release *p, unsigned kinds,
    unsigned how, struct err *e)
{
	struct release_store_entry *se = calloc(1, sizeof(*se));
	struct sign_envelope env;
	struct sign_statement st;
	struct sign_want w;
	unsigned flags = RELEASE_MF_AGENT | ((kinds & SIGN_KIND_UPDATER) != 0 ? RELEASE_MF_UPDATER
									       : 0) |
	    ((how & CMD_RELEASE_DRY_RUN) != 0 ? RELEASE_STORE_NO_COPY : 0) |
	    ((how & CMD_RELEASE_PLANNED) != 0 ? RELEASE_STORE_PREFETCH : 0);
	int rc = -1;

	memset(&env, 0, sizeof(env));
	if (se == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	if (release_store_import(home, src, flags, se, e) != 0) {
		if (se->refused) {
			err_prefix(e, "the release %s is refused (every updater would refuse it; "
				      "nothing was sent)", p->rf.label);
		} else {
			err_prefix(e, "--release");
		}
		free(se);
		return -1;
	}
	snprintf(p->path, sizeof(p->path), "%s", se->path);
	p->prefetch = se->prefetch; /* the planned pushes' deltas read it */
	p->rf.prefetch = p->prefetch;
	snprintf(p->rf.sha256, sizeof(p->rf.sha256), "%s", se->sha256);
	p->rf.size = se->size;
	if (p->tsig == NULL) {
		rc = 0;
		goto out;
	}
	memset(&w, 0, sizeof(w));
	w.sha256 = p->rf.sha256;
	w.size = (int64_t)p->rf.size;
	if (sign_tsig_parse(p->tsig, p->rf.tsig_len, &env, &st, e) != 0) {
		goto bad_sig;
	}
	for (unsigned k = SIGN_KIND_AGENT; k <= SIGN_KIND_UPDATER; k <<= 1) {
		w.kind = kinds & k;
		if (w.kind != 0 && sign_statement_want(&st, &w, e) != 0) {
			goto bad_sig;
		}
	}
	if (sign_statement_match(&st, se->name, se->version, e) != 0) {
		goto bad_sig;
	}
	rc = 0;
	goto out;
bad_sig:
	err_prefix(e, "the signature of %s is refused (every updater would refuse it; "
		      "nothing was sent)", p->rf.label);
out:
	sign_envelope_free(&env);
	free(se);
	return rc;
}

int
cmd_swarm_prepare_release(const char *home, const char *arg, unsigned kinds, unsigned how,
    struct cmd_release *p, struct err *e)
{
	struct release_pack_opts po;
	struct release_pack_result *res = NULL;
	char packed[PATH_MAX];
	const char *base;
	struct stat st;
	int rc = -1;

	memset(p, 0, sizeof(*p));
	sign_keyring_init(&p->keyring);
	p->rf.path = p->path;
	if (stat(arg, &st) != 0) {
		return err_sys_kind(e, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "--release %s", arg);
	}
	if (S_ISDIR(st.st_mode)) {
		if (swarm_tmpdir_make("swarm", p->tmpdir, sizeof(p->tmpdir)) != 0) {
			return err_sys(e, "temporary directory");
		}
		snprintf(packed, sizeof(packed), "%s/release.tar.gz", p->tmpdir);
		res = calloc(1, sizeof(*res));
		if (res == NULL) {
			return err_set(e, ERR_NOMEM, "out of memory");
		}
		memset(&po, 0, sizeof(po));
		po.dir = arg;
		po.output = packed;
		if (release_pack(&po, res, NULL, e) != 0) {
			err_prefix(e, "release pack %s", arg);
			goto out;
		}
		snprintf(p->rf.label, sizeof(p->rf.label), "%s", res->version);
		log_info("packed %s: %s-%s, sha256 %s", arg, res->name, res->version, res->sha256);
		/* A packed tree never has a signature. */
		rc = check_release(home, packed, p, kinds, how, e);
		goto out;
	}
	if (strlen(arg) >= sizeof(p->path)) {
		return err_set(e, ERR_USAGE, "--release path too long");
	}
	base = strrchr(arg, '/');
	base = base != NULL ? base + 1 : arg;
	snprintf(p->rf.label, sizeof(p->rf.label), "%.*s",
	    (int)(strlen(base) > 7 && strcmp(base + strlen(base) - 7, ".tar.gz") == 0
		    ? strlen(base) - 7
		    : strlen(base)),
	    base);
	/* A tarball may come with its signature. */
	rc = prepare_signature(home, arg, p, e);
	if (rc == 0) {
		rc = check_release(home, arg, p, kinds, how, e);
	}
out:
	free(res);
	return rc;
}

void
cmd_swarm_release_cleanup(struct cmd_release *p)
{
	free(p->tsig);
	p->tsig = NULL;
	p->rf.prefetch = NULL;
	delta_pack_prefetch_free(p->prefetch);
	p->prefetch = NULL;
	sign_keyring_free(&p->keyring);
	if (p->tmpdir[0] != '\0' && fs_rmtree(p->tmpdir) != 0) {
		log_warn("remove %s", p->tmpdir);
	}
	p->tmpdir[0] = '\0';
}

/* The dry run's report, built as the answers come. */
struct dry_run {
	struct swarm_table *t;
	cJSON *arr;
	const struct swarm_release_file *rf;
	size_t n;
	int failed;
};

static void
dry_run_done(void *arg, struct swarm_job *j)
{
	struct dry_run *dr = arg;
	char cur[SWARM_SHORT + 24], send[48];
	const char *cells[9];
	cJSON *h;

	dr->n++;
	if (dr->arr != NULL) {
		h = cJSON_CreateObject();
		if (h == NULL || json_add_str(h, "host", j->host.name) != 0 ||
		    json_add_str(h, "address", j->host.address) != 0 ||
		    json_add_bool(h, "updater_identity", j->host.updater_fp[0] != '\0') != 0 ||
		    json_add_item(h, "reachable", j->host.updater_fp[0] == '\0'
			    ? cJSON_CreateNull() : cJSON_CreateBool(j->reachable)) != 0 ||
		    json_add_item(h, "pin_ok", j->pin_ok < 0 ? cJSON_CreateNull()
							       : cJSON_CreateBool(j->pin_ok)) != 0 ||
		    json_add_item(h, "current", release_json(&j->health.active,
							j->health.have_active)) != 0 ||
		    json_add_item(h, "same_sha256", dr->rf != NULL && j->have_health
							? cJSON_CreateBool(j->same_sha)
							: cJSON_CreateNull()) != 0 ||
		    json_add_str(h, "signature", dr->rf != NULL && j->have_health
							? j->signature : NULL) != 0 ||
		    json_add_item(h, "signature_ok", dr->rf != NULL && j->have_health
							? cJSON_CreateBool(j->signature_ok)
							: cJSON_CreateNull()) != 0 ||
		    json_add_str(h, "transfer", j->dry_transfer) != 0 ||
		    json_add_item(h, "bytes", j->dry_transfer == NULL ? cJSON_CreateNull()
			    : cJSON_CreateNumber((double)j->dry_bytes)) != 0 ||
		    json_add_str(h, "error", j->error) != 0) {
			cJSON_Delete(h);
			dr->failed = 1;
			return;
		}
		cJSON_AddItemToArray(dr->arr, h);
		return;
	}
	snprintf(cur, sizeof(cur), "%s%s%.12s", j->health.active.version,
	    j->health.have_active ? " " : "", j->health.active.sha256);
	cells[0] = j->host.name;
	cells[1] = j->host.address;
	cells[2] = j->host.updater_fp[0] == '\0' ? "no updater identity" : j->reachable ? "yes"
														: "no";
	cells[3] = j->pin_ok < 0 ? "?" : j->pin_ok ? "ok" : "MISMATCH";
	cells[4] = j->health.have_active ? cur : "none";
	cells[5] = dr->rf == NULL || !j->have_health ? "?" : j->same_sha ? "yes" : "no";
	cells[6] = dr->rf == NULL || !j->have_health ? "?" : j->signature;
	if (j->dry_transfer != NULL) {
		snprintf(send, sizeof(send), "%s %llu", j->dry_transfer,
		    (unsigned long long)j->dry_bytes);
	} else {
		snprintf(send, sizeof(send), "%s", dr->rf != NULL && j->same_sha ? "nothing" : "?");
	}
	cells[7] = send;
	cells[8] = j->error;
	if (swarm_table_add(dr->t, cells) != 0) {
		dr->failed = 1;
	}
}

/* The pool's one argument for a source and a sink. */
struct dry_ctx {
	struct host_source src;
	struct dry_run dr;
};

static int
dry_next(void *arg, struct swarm_job *j)
{
	return host_source_next(&((struct dry_ctx *)arg)->src, j);
}

static void
dry_done(void *arg, struct swarm_job *j)
{
	dry_run_done(&((struct dry_ctx *)arg)->dr, j);
}

/* Dry run: ask every selected host, change nothing; say how the rollout would be cut. */
static int
update_dry_run(const struct cli *cli, struct swarm_ctx *c, const struct swarm_update_args *a, const struct selector *sel,
    const struct swarm_release_file *rf)
{
	static const char *const heads[] = { "HOST", "ADDRESS", "REACHABLE", "PIN", "CURRENT",
		"SAME-SHA256", "SIGNATURE", "SEND", "DETAIL" };
	struct dry_ctx *dc = calloc(1, sizeof(*dc));
	struct swarm_pool_opts po;
	size_t ends[ROLLOUT_MAX_PLAN_WAVES], nw;
	cJSON *obj = NULL, *waves;
	int rc = CLI_EXIT_FAIL;

	if (dc == NULL) {
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
		return CLI_EXIT_FAIL;
	}
	dc->dr.rf = rf;
	dc->src.reg = c->reg;
	dc->src.sel = *sel;
	dc->src.kind = SWARM_JOB_DRY_RUN;
	if (a->json) {
		obj = cJSON_CreateObject();
		dc->dr.arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
		if (dc->dr.arr == NULL) {
			goto out;
		}
	} else {
		dc->dr.t = swarm_table_new(ARRAY_LEN(heads), heads);
		if (dc->dr.t == NULL) {
			goto out;
		}
	}
	memset(&po, 0, sizeof(po));
	po.release = rf;
	po.parallel = a->parallel;
	po.full = a->spec.full;
	po.next = dry_next;
	po.done = dry_done;
	po.arg = dc;
	if (swarm_run(c, NULL, 0, &po) != 0 || dc->src.failed || dc->dr.failed) {
		rc = cli_failf(cli, ERR_UNREACHABLE, "swarm update: cannot ask the hosts");
		goto out;
	}
	nw = rollout_plan_waves(&a->spec, dc->dr.n, ends);
	if (a->json) {
		waves = json_add_array(obj, "waves");
		if (waves == NULL || json_add_bool(obj, "dry_run", 1) != 0 ||
		    json_add_str(obj, "sha256", rf != NULL ? rf->sha256 : NULL) != 0) {
			goto out;
		}
		for (size_t i = 0; i < nw; i++) {
			if (json_array_add_int(waves, (long long)(ends[i] - (i > 0 ? ends[i - 1] : 0))) !=
			    0) {
				goto out;
			}
		}
		rc = swarm_print_json(obj);
		obj = NULL;
		goto out;
	}
	if (rf != NULL) {
		printf("release %s (sha256 %s, %llu bytes, %s) would go to %zu host(s) in %zu wave%s "
		    "of", rf->label, rf->sha256, (unsigned long long)rf->size,
		    rf->tsig != NULL ? "signed" : "unsigned", dc->dr.n, nw, nw == 1 ? "" : "s");
		for (size_t i = 0; i < nw; i++) {
			printf("%s %zu", i > 0 ? "," : "", ends[i] - (i > 0 ? ends[i - 1] : 0));
		}
		printf(" (hosts are ordered when the rollout starts):\n");
	}
	swarm_table_print(dc->dr.t, stdout);
	rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
	cJSON_Delete(obj);
	swarm_table_free(dc->dr.t);
	free(dc);
	return rc;
}

static int
swarm_cmd_update(struct cli *cli, int argc, char **argv)
{
	struct swarm_update_args a;
	struct swarm_ctx c;
	struct cmd_release *rel = NULL;
	struct selector sel;
	struct err pe = ERR_INIT;
	struct err e = ERR_INIT;
	struct err se = ERR_INIT;
	int rc = CLI_EXIT_FAIL, ctx_open = 0, have_release = 0;

	if (swarm_update_args_parse(argc, argv, &a, &pe) != 0) {
		free(a.hosts);
		return cli_usage(cli, "%s", err_msg(&pe));
	}
	a.json = cli->json;
	if (a.json && a.json_lines) {
		free(a.hosts);
		return cli_usage(cli, "--json and --json-lines exclude each other");
	}
	rel = calloc(1, sizeof(*rel));
	if (rel == NULL) {
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
		goto out;
	}
	sign_keyring_init(&rel->keyring);
	/* The release is read (and checked) before any host is asked anything. */
	if (a.release != NULL) {
		if (cmd_swarm_prepare_release(cli->home, a.release,
			SIGN_KIND_AGENT | (a.include_self ? SIGN_KIND_UPDATER : 0),
			(a.dry_run ? CMD_RELEASE_DRY_RUN : 0) | (a.spec.full ? 0 : CMD_RELEASE_PLANNED),
			rel, &e) != 0) {
			err_prefix(&e, "swarm update");
			rc = cli_fail(cli, &e);
			goto out;
		}
		have_release = 1;
	}
	if (swarm_ctx_open(&c, cli->home, a.timeout_s, &se) != 0) {
		rc = cli_failf(cli, ERR_IO, "swarm update: %s", err_msg(&se));
		goto out;
	}
	ctx_open = 1;
	c.tty = isatty(STDERR_FILENO);
	c.quiet = a.json_lines;
	c.checked = have_release ? &rel->rf : NULL; /* the rollout's deltas use what it kept */
	if (cmd_rollout_selector(&c, &a, &sel, &e) != 0) {
		err_prefix(&e, "swarm update");
		rc = cli_fail(cli, &e);
		goto out;
	}
	if (a.dry_run) {
		rc = update_dry_run(cli, &c, &a, &sel, have_release ? &rel->rf : NULL);
		goto out;
	}
	rc = cmd_rollout_update(cli, &c, &a, &rel->rf, a.release);
out:
	if (rel != NULL) {
		cmd_swarm_release_cleanup(rel);
		free(rel);
	}
	if (ctx_open) {
		swarm_ctx_close(&c);
	}
	free(a.hosts);
	return rc;
}

/* ---------------------------------------------------------------- rollback */

/* The one host of --host NAME for the single-host commands. */
static int
one_host(struct cli *cli, const struct simple_args *a, struct swarm_ctx *c, struct reg_host *h)
{
	struct err pe = ERR_INIT;
	struct err se = ERR_INIT;
	int r;

	if (a->n_hosts != 1 || a->all) {
		return cli_usage(cli, "exactly one --host NAME is required");
	}
	if (swarm_ctx_open(c, cli->home, SWARM_DEFAULT_TIMEOUT_S, &se) != 0) {
		return cli_failf(cli, ERR_IO, "%s: %s", cli->path, err_msg(&se));
	}
	r = registry_get_host(c->reg, a->hosts[0], h, &pe);
	if (r != REGISTRY_OK) {
		swarm_ctx_close(c);
		return cli_failf(cli, r == REGISTRY_NOTFOUND ? ERR_NOT_FOUND : pe.kind, "%s: %s: %s",
		    cli->path, a->hosts[0],
		    r == REGISTRY_NOTFOUND ? "no such host in the registry" : err_msg(&pe));
	}
	if (h->updater_fp[0] == '\0') {
		swarm_ctx_close(c);
		return cli_failf(cli, ERR_CONFLICT, "%s: %s has no updater identity (enrolled "
						  "without --updater): add it with 'tandem swarm enroll "
						  "--updater %s'", cli->path, h->name, h->name);
	}
	return -1;
}

static int
swarm_cmd_rollback(struct cli *cli, int argc, char **argv)
{
	struct err pe = ERR_INIT;
	struct simple_args a;
	struct swarm_ctx c;
	struct reg_host h;
	struct httpc_response resp;
	struct swarm_result r;
	struct reg_push rp;
	char text[SWARM_REASON + SWARM_DETAIL + 8];
	char rid[ROLLOUT_REQUEST_ID_LEN + 1], path[80];
	struct swarm_health hh;
	int rc, have_hh;
	cJSON *obj;

	rc = parse_simple(cli, argc, argv, &a);
	if (rc < 0) {
		rc = one_host(cli, &a, &c, &h);
	}
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	have_hh = swarm_host_health(&c, &h, 10000, &hh, &pe) == 0;
	{
		/* A previous release identical to the running one is no rollback point. */
		if (have_hh && hh.have_active && hh.have_prev &&
		    strcmp(hh.active.sha256, hh.prev.sha256) == 0) {
			rc = cli_failf(cli, ERR_IO, "swarm rollback: %s: the previous release is the one running (%s, "
			    "sha256 %.12s): nothing to roll back to", h.name, hh.active.version,
			    hh.active.sha256);
			swarm_ctx_close(&c);
			if (cli->json) {
				obj = cJSON_CreateObject();
				if (obj == NULL || json_add_str(obj, "host", h.name) != 0 ||
				    json_add_str(obj, "result", "failed") != 0 ||
				    json_add_str(obj, "reason", "the previous release is the one "
				    "running") != 0 ||
				    json_add_str(obj, "version", hh.active.version) != 0 ||
				    json_add_str(obj, "sha256", hh.active.sha256) != 0) {
					cJSON_Delete(obj);
					obj = NULL;
				}
				(void)swarm_print_json(obj);
			}
			return CLI_EXIT_FAIL;
		}
	}
	err_clear(&pe);
	/*
	 * With an updater that takes request ids, the rollback carries one, so a
	 * lost answer is settled by asking the updater what became of it rather
	 * than guessed.
	 */
	rid[0] = '\0';
	if (have_hh && hh.has_request_id && rollout_random_id(rid, ROLLOUT_REQUEST_ID_LEN, &pe) != 0) {
		rid[0] = '\0';
		err_clear(&pe);
	}
	snprintf(path, sizeof(path), "/rollback%s%s", rid[0] != '\0' ? "?request_id=" : "", rid);
	if (swarm_request(&c, &h, "POST", path, &resp, &pe) != 0) {
		memset(&r, 0, sizeof(r));
		r.outcome = SWARM_FAILED;
		if (rid[0] != '\0' && pe.kind != ERR_UNREACHABLE && pe.kind != ERR_TLS &&
		    pe.kind != ERR_PIN_MISMATCH && pe.kind != ERR_HANDSHAKE_CUT) {
			/* Sent, but no answer: the updater may have rolled back. */
			log_warnx("%s: no answer to rollback request %s (%s); asking the updater what "
			    "became of it", h.name, rid, err_msg(&pe));
			switch (swarm_request_lookup(&c, &h, rid, 1, mono_ms() + c.timeout_ms, NULL,
			    &r)) {
			case SWARM_LOOKUP_FOUND:
			case SWARM_LOOKUP_FAILED:
				break;
			case SWARM_LOOKUP_ABSENT:
				snprintf(r.reason, sizeof(r.reason), "no answer; the updater never took "
				    "the request: nothing ran");
				snprintf(r.detail, sizeof(r.detail), "request %s: %s", rid,
				    err_msg(&pe));
				break;
			}
		} else {
			snprintf(r.reason, sizeof(r.reason), "%s", pe.kind == ERR_PIN_MISMATCH
			    ? "pin mismatch: the updater's certificate is not the one enrolled"
			    : "unreachable");
			snprintf(r.detail, sizeof(r.detail), "%s", err_msg(&pe));
		}
	} else {
		swarm_classify_rollback(resp.status, resp.body, resp.body_len, resp.retry_after, &r);
		httpc_response_free(&resp);
	}
	memset(&rp, 0, sizeof(rp));
	snprintf(rp.host, sizeof(rp.host), "%s", h.name);
	snprintf(rp.result, sizeof(rp.result), "%s",
	    r.outcome == SWARM_UPDATED ? "rolled_back" : "rollback_failed");
	snprintf(text, sizeof(text), "manual rollback%s%.240s%s%.1000s",
	    r.reason[0] != '\0' ? ": " : "",
	    r.reason, r.detail[0] != '\0' ? ": " : "", r.detail);
	registry_push_set_detail(&rp, text);
	if (registry_log_push(c.reg, &rp, &pe) != REGISTRY_OK) {
		log_warnx("%s: cannot record the rollback: %s", h.name, err_msg(&pe));
	}
	swarm_ctx_close(&c);
	if (cli->json) {
		obj = cJSON_CreateObject();
		if (obj == NULL || json_add_str(obj, "host", h.name) != 0 ||
		    json_add_str(obj, "result", r.outcome == SWARM_UPDATED ? "rolled_back"
									   : "failed") != 0 ||
		    json_add_str(obj, "reason", r.reason) != 0 ||
		    json_add_str(obj, "detail", r.detail) != 0 ||
		    json_add_int(obj, "http_status", r.http_status) != 0 ||
		    json_add_str(obj, "version", r.version) != 0 ||
		    json_add_str(obj, "sha256", r.sha256) != 0) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		rc = swarm_print_json(obj);
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

struct status_ctx {
	long long warn_s;        /* certificates expiring within this are warned about */
	struct host_source src;
	struct swarm_table *t;
	int json, json_lines, first;
	int all_answered;
	int failed;
};

static int
status_next(void *arg, struct swarm_job *j)
{
	return host_source_next(&((struct status_ctx *)arg)->src, j);
}

/*
 * The warning about J's certificates (updater's from its /health, agent's
 * from the agent's own): expired, or expiring within WARN_S. "" when none.
 */
static void
cert_warning(const struct swarm_job *j, long long warn_s, char *buf, size_t len)
{
	const char *na[2] = { j->have_health ? j->health.cert_not_after : "",
		j->agent_cert_not_after };
	static const char *const who[2] = { "updater", "agent" };
	time_t now = time(NULL), t;
	size_t off = 0;

	buf[0] = '\0';
	for (int w = 0; w < 2; w++) {
		int n = 0;
		if (na[w][0] == '\0' || iso8601_parse(na[w], &t) != 0) {
			continue;
		}
		if (t <= now) {
			n = snprintf(buf + off, len - off, "%s%s certificate expired %s", off ? "; " : "",
			    who[w], na[w]);
		} else if ((long long)(t - now) <= warn_s) {
			n = snprintf(buf + off, len - off, "%s%s certificate expires in %lld days (%s)",
			    off ? "; " : "", who[w], (long long)(t - now) / 86400, na[w]);
		}
		if (n < 0 || (size_t)n >= len - off) {
			return;
		}
		off += (size_t)n;
	}
}

static cJSON *
status_json(const struct swarm_job *j, long long warn_s)
{
	cJSON *h = cJSON_CreateObject();
	char warn[256];

	cert_warning(j, warn_s, warn, sizeof(warn));

	if (h == NULL || json_add_str(h, "host", j->host.name) != 0 ||
	    json_add_str(h, "address", j->host.address) != 0 ||
	    json_add_bool(h, "updater_identity", j->host.updater_fp[0] != '\0') != 0 ||
	    json_add_item(h, "reachable", j->host.updater_fp[0] == '\0' ? cJSON_CreateNull()
					  : cJSON_CreateBool(j->reachable)) != 0 ||
	    json_add_item(h, "pin_ok", j->pin_ok < 0 ? cJSON_CreateNull()
						       : cJSON_CreateBool(j->pin_ok)) != 0 ||
	    json_add_str(h, "status", j->have_health ? j->health.status
			 : j->host.updater_fp[0] == '\0' ? "no updater identity" : NULL) != 0 ||
	    json_add_str(h, "updater_version", j->have_health ? j->health.version : NULL) != 0 ||
	    json_add_str(h, "agent_version",
		j->agent_reach[0] == '\0' ? j->agent_version : NULL) != 0 ||
	    json_add_str(h, "agent_error", j->agent_reach) != 0 ||
	    json_add_str(h, "agent_state", j->have_health ? j->health.agent_state : NULL) != 0 ||
	    json_add_str(h, "operation", j->health.operation[0] != '\0' ? j->health.operation
									 : NULL) != 0 ||
	    json_add_item(h, "active", release_json(&j->health.active, j->health.have_active)) != 0 ||
	    json_add_item(h, "prev", release_json(&j->health.prev, j->health.have_prev)) != 0 ||
	    json_add_str(h, "signature", j->health.signature[0] != '\0' ?
		j->health.signature : NULL) != 0 ||
	    json_add_item(h, "security_floor", j->health.security_floor >= 0 ?
		cJSON_CreateNumber((double)j->health.security_floor) : cJSON_CreateNull()) != 0 ||
	    json_add_item(h, "keyring_version", j->health.keyring_version > 0 ?
		cJSON_CreateNumber((double)j->health.keyring_version) : cJSON_CreateNull()) != 0 ||
	    json_add_str(h, "updater_cert_not_after", j->have_health &&
		j->health.cert_not_after[0] != '\0' ? j->health.cert_not_after : NULL) != 0 ||
	    json_add_str(h, "agent_cert_not_after", j->agent_cert_not_after[0] != '\0' ?
		j->agent_cert_not_after : NULL) != 0 ||
	    json_add_str(h, "cert_warning", warn[0] != '\0' ? warn : NULL) != 0 ||
	    json_add_str(h, "error", j->error) != 0) {
		cJSON_Delete(h);
		return NULL;
	}
	return h;
}

/* Each host's answer as it comes: a JSON line, an element of the JSON array, or a row. */
static void
status_done(void *arg, struct swarm_job *j)
{
	struct status_ctx *sc = arg;
	const char *cells[10];
	char detail[SWARM_REASON * 3 + SWARM_DETAIL + 256], st[64], sig[96], warn[256];

	if (!j->have_health) {
		sc->all_answered = 0;
	}
	cert_warning(j, sc->warn_s, warn, sizeof(warn));
	if (warn[0] != '\0') {
		log_warnx("%s: %s (tandem swarm renew)", j->host.name, warn);
	}
	if (sc->json || sc->json_lines) {
		cJSON *h = status_json(j, sc->warn_s);
		char *text = h != NULL ? json_print_compact(h) : NULL;
		cJSON_Delete(h);
		if (text == NULL) {
			sc->failed = 1;
			return;
		}
		printf("%s%s%s", sc->json && !sc->first ? "," : "", text, sc->json_lines ? "\n" : "");
		sc->first = 0;
		free(text);
		if (sc->json_lines) {
			fflush(stdout);
		}
		return;
	}
	/* A host without an updater identity is not asked (no pin): not "unreachable". */
	snprintf(st, sizeof(st), "%s", j->host.updater_fp[0] == '\0' ? "no updater identity"
	    : !j->reachable ? "unreachable"
	    : j->pin_ok == 0			    ? "PIN MISMATCH"
						    : j->health.status);
	snprintf(detail, sizeof(detail), "%s%s%s%s%s%s%s", j->error,
	    j->error[0] != '\0' && j->agent_reach[0] != '\0' ? "; " : "",
	    j->agent_reach[0] != '\0' ? "agent: " : "", j->agent_reach,
	    j->health.operation[0] != '\0' ? " (operation running)" : "",
	    warn[0] != '\0' && (j->error[0] != '\0' || j->agent_reach[0] != '\0') ? "; " : "", warn);
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
	if (swarm_table_add(sc->t, cells) != 0) {
		sc->failed = 1;
	}
}

static int
swarm_cmd_status(struct cli *cli, int argc, char **argv)
{
	static const char *const heads[] = { "HOST", "ADDRESS", "UPDATER", "STATUS", "AGENT",
		"AGENT-STATE", "ACTIVE", "PREV", "SIGNATURES", "DETAIL" };
	struct swarm_update_args a;
	struct swarm_ctx c;
	struct swarm_pool_opts po;
	struct status_ctx *sc = NULL;
	struct cli_getopt g;
	struct err e = ERR_INIT;
	struct err se = ERR_INIT;
	long long v, warn_days = CERTS_DEFAULT_WARN_DAYS;
	int rc = CLI_EXIT_FAIL, ctx_open = 0, ch;

	memset(&a, 0, sizeof(a));
	a.parallel = SWARM_DEFAULT_PARALLEL;
	a.json = cli->json;
	a.hosts = calloc((size_t)argc + 1, sizeof(*a.hosts));
	if (a.hosts == NULL) {
		return cli_failf(cli, ERR_NOMEM, "out of memory");
	}
	cli_getopt_init(&g, cli, argc, argv);
	while ((ch = cli_getopt(&g, cli)) != -1) {
		switch (ch) {
		case SW_HOST:
			if (*g.arg == '\0') {
				free(a.hosts);
				return cli_usage(cli, "--host needs a name");
			}
			a.hosts[a.n_hosts++] = g.arg;
			break;
		case SW_ALL:
			a.all = 1;
			break;
		case SW_HOSTS:
			a.selector = g.arg;
			break;
		case SW_PARALLEL:
			if (parse_ll(g.arg, 1, SWARM_MAX_PARALLEL, &v) != 0) {
				free(a.hosts);
				return cli_usage(cli, "--parallel '%s': expected a number in 1..%d",
				    g.arg, SWARM_MAX_PARALLEL);
			}
			a.parallel = (int)v;
			break;
		case SW_JSON_LINES:
			a.json_lines = 1;
			break;
		case SW_WARN_DAYS:
			if (parse_ll(g.arg, 0, 3650, &warn_days) != 0) {
				free(a.hosts);
				return cli_usage(cli, "--warn-days '%s': expected a number in 0..3650",
				    g.arg);
			}
			break;
		default:
			free(a.hosts);
			return CLI_EXIT_USAGE;
		}
	}
	if ((a.all != 0) + (a.n_hosts > 0) + (a.selector != NULL) > 1) {
		free(a.hosts);
		return cli_usage(cli, "--all, --host and --hosts exclude each other");
	}
	if (cli->json && a.json_lines) {
		free(a.hosts);
		return cli_usage(cli, "--json and --json-lines exclude each other");
	}
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL) {
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (swarm_ctx_open(&c, cli->home, SWARM_DEFAULT_TIMEOUT_S, &se) != 0) {
		rc = cli_failf(cli, ERR_IO, "swarm status: %s", err_msg(&se));
		goto out;
	}
	ctx_open = 1;
	c.quiet = 1;
	if (cmd_rollout_selector(&c, &a, &sc->src.sel, &e) != 0) {
		err_prefix(&e, "swarm status");
		rc = cli_fail(cli, &e);
		goto out;
	}
	sc->src.reg = c.reg;
	sc->src.kind = SWARM_JOB_STATUS;
	sc->warn_s = warn_days * 86400;
	sc->json = cli->json;
	sc->json_lines = a.json_lines;
	sc->first = 1;
	sc->all_answered = 1;
	if (!cli->json && !a.json_lines) {
		sc->t = swarm_table_new(ARRAY_LEN(heads), heads);
		if (sc->t == NULL) {
			rc = cli_failf(cli, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	memset(&po, 0, sizeof(po));
	po.parallel = a.parallel;
	po.next = status_next;
	po.done = status_done;
	po.arg = sc;
	if (cli->json) {
		printf("{\"hosts\":[");
	}
	if (swarm_run(&c, NULL, 0, &po) != 0 || sc->src.failed || sc->failed) {
		if (cli->json) {
			printf("]}\n");
		}
		rc = cli_failf(cli, ERR_UNREACHABLE, "swarm status: cannot ask the hosts");
		goto out;
	}
	if (cli->json) {
		printf("]}\n");
	} else if (!a.json_lines) {
		swarm_table_print(sc->t, stdout);
	}
	rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	if (rc == CLI_EXIT_OK && !sc->all_answered) {
		rc = CLI_EXIT_FAIL;
	}
out:
	if (sc != NULL) {
		swarm_table_free(sc->t);
	}
	free(sc);
	if (ctx_open) {
		swarm_ctx_close(&c);
	}
	free(a.hosts);
	return rc;
}

/* ---------------------------------------------------------------- releases/history */

/* GET PATH from the --host's updater; *TREE the parsed body (200 only), else E. */
static int
get_tree(struct cli *cli, int argc, char **argv,
    const char *path, struct simple_args *a, struct reg_host *h, struct swarm_ctx *c,
    cJSON **tree, struct err *e)
{
	struct httpc_response resp;
	int rc;

	*tree = NULL;
	rc = parse_simple(cli, argc, argv, a);
	if (rc < 0) {
		rc = one_host(cli, a, c, h);
	}
	if (rc >= 0) {
		return rc;
	}
	if (swarm_request(c, h, "GET", path, &resp, e) != 0) {
		return -2;
	}
	if (resp.status != 200) {
		err_set(e, ERR_PROTOCOL, "GET %s: HTTP %d: %.300s", path, resp.status, resp.body);
	} else {
		*tree = json_parse_object(resp.body, resp.body_len, e);
	}
	httpc_response_free(&resp);
	return -2;
}

static int
swarm_cmd_releases(struct cli *cli, int argc, char **argv)
{
	static const char *const heads[] = { "SLOT", "VERSION", "LABEL", "SHA256",
		"INSTALLED-AT" };
	struct simple_args a;
	struct swarm_ctx c;
	struct reg_host h;
	struct swarm_table *t = NULL;
	struct swarm_release r;
	struct err e = ERR_INIT;
	const cJSON *arr, *it;
	cJSON *tree = NULL;
	int rc;

	rc = get_tree(cli, argc, argv, "/releases", &a, &h, &c, &tree, &e);
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	swarm_ctx_close(&c);
	arr = cJSON_GetObjectItemCaseSensitive(tree, "releases");
	if (tree == NULL || !cJSON_IsArray(arr)) {
		rc = cli_failf(cli, ERR_IO, "swarm releases: %s: %s", h.name,
		    err_failed(&e) ? err_msg(&e) : "answer without a releases array");
		cJSON_Delete(tree);
		return CLI_EXIT_FAIL;
	}
	if (cli->json) {
		if (json_add_str(tree, "host", h.name) != 0) {
			cJSON_Delete(tree);
			return swarm_print_json(NULL);
		}
		return swarm_print_json(tree);
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
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
		return CLI_EXIT_FAIL;
	}
	swarm_table_print(t, stdout);
	swarm_table_free(t);
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int
swarm_cmd_history(struct cli *cli, int argc, char **argv)
{
	static const char *const heads[] = { "FINISHED-AT", "KIND", "RESULT", "VERSION", "CALLER",
		"ERROR" };
	static const char *const pheads[] = { "AT", "RESULT", "SHA256", "DETAIL" };
	struct simple_args a;
	struct swarm_ctx c;
	struct reg_host h;
	struct reg_push *pushes = NULL;
	struct swarm_table *t = NULL, *pt = NULL;
	char at[32], sha[16], caller[20];
	struct err re = ERR_INIT, ge = ERR_INIT;
	const cJSON *arr = NULL, *it;
	cJSON *tree = NULL, *obj = NULL, *parr;
	size_t n = 0, i;
	int rc, updater_ok;

	rc = get_tree(cli, argc, argv, "/history", &a, &h, &c, &tree, &ge);
	free(a.hosts);
	if (rc >= 0) {
		return rc;
	}
	if (registry_push_history(c.reg, h.name, 0, &pushes, &n, &re) != REGISTRY_OK) {
		rc = cli_failf(cli, ERR_IO, "swarm history: %s", err_msg(&re));
		n = 0;
	}
	swarm_ctx_close(&c);
	arr = cJSON_GetObjectItemCaseSensitive(tree, "history");
	updater_ok = tree != NULL && cJSON_IsArray(arr);
	if (!updater_ok) {
		rc = cli_failf(cli, ERR_IO, "swarm history: %s: %s", h.name,
		    err_failed(&ge) ? err_msg(&ge) : "answer without a history array");
	}
	rc = CLI_EXIT_FAIL;
	if (cli->json) {
		obj = cJSON_CreateObject();
		if (obj == NULL || json_add_str(obj, "host", h.name) != 0 ||
		    json_add_item(obj, "updater", updater_ok ? cJSON_Duplicate(arr, 1)
							     : cJSON_CreateNull()) != 0 ||
		    json_add_str(obj, "updater_error", updater_ok ? "" : err_msg(&ge)) != 0 ||
		    (parr = json_add_array(obj, "pushes")) == NULL) {
			cJSON_Delete(obj);
			obj = NULL;
		}
		/* Oldest first, as the updater's /history (the registry answers newest first). */
		for (i = 0; obj != NULL && i < n; i++) {
			cJSON *p = push_json(&pushes[n - 1 - i]);
			if (p == NULL) {
				cJSON_Delete(obj);
				obj = NULL;
				break;
			}
			cJSON_AddItemToArray(parr, p);
		}
		rc = swarm_print_json(obj);
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
		const struct reg_push *ps = &pushes[n - 1 - i]; /* oldest first */
		const char *cells[ARRAY_LEN(pheads)];
		swarm_fmt_time(ps->at, at, sizeof(at));
		snprintf(sha, sizeof(sha), "%.12s", ps->sha256);
		cells[0] = at;
		cells[1] = ps->result;
		cells[2] = sha;
		cells[3] = ps->detail;
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
keyring_report(const struct cli *cli, const struct swarm_job *jobs, size_t n, int64_t latest,
    int json, int ok)
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
			return swarm_print_json(NULL);
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
				return swarm_print_json(NULL);
			}
		}
		return swarm_print_json(obj) == CLI_EXIT_OK && ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
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
		return cli_failf(cli, ERR_NOMEM, "out of memory");
	}
	swarm_table_print(t, stdout);
	swarm_table_free(t);
	return fflush(stdout) == 0 && ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/*
 * The jobs of a command that touches no release (keyring push, renew, crl
 * push): every host --host/--all names, the registry read in pages.
 */
static int
selected_jobs(struct swarm_ctx *c, const struct simple_args *sa, const char *selector,
    enum swarm_job_kind kind, struct swarm_job **jobs, size_t *n, struct err *e)
{
	struct swarm_update_args a;
	struct selector sel;
	struct reg_host page[64];
	struct swarm_job *out = NULL;
	int64_t cursor = 0;
	size_t cap = 0, count = 0, got;

	memset(&a, 0, sizeof(a));
	a.hosts = sa->hosts;
	a.n_hosts = sa->n_hosts;
	a.all = sa->all;
	a.selector = selector;
	if (cmd_rollout_selector(c, &a, &sel, e) != 0) {
		return -1;
	}
	do {
		if (registry_hosts_select(c->reg, &sel, &cursor, ARRAY_LEN(page), page, &got,
		    e) != 0) {
			free(out);
			return -1;
		}
		for (size_t i = 0; i < got; i++) {
			if (count == cap) {
				size_t ncap = cap == 0 ? 16 : cap * 2;
				struct swarm_job *p = reallocarray(out, ncap, sizeof(*out));
				if (p == NULL) {
					free(out);
					return err_set(e, ERR_NOMEM, "out of memory");
				}
				out = p;
				cap = ncap;
			}
			memset(&out[count], 0, sizeof(out[count]));
			out[count].host = page[i];
			out[count].kind = kind;
			count++;
		}
	} while (got > 0);
	*jobs = out;
	*n = count;
	return 0;
}

/*
 * The options of `swarm keyring push` and `swarm crl push`: --host or --all.
 * -1 to go on with A filled, else the exit code (A freed).
 */
static int
parse_push_action(struct cli *cli, int argc, char **argv, struct simple_args *a)
{
	int rc;

	rc = parse_simple(cli, argc, argv, a);
	if (rc >= 0) {
		free(a->hosts);
		a->hosts = NULL;
		return rc;
	}
	if (!a->all && a->n_hosts == 0) {
		free(a->hosts);
		a->hosts = NULL;
		return cli_usage(cli, "--host NAME or --all is required");
	}
	return -1;
}

/* `swarm keyring push`: ARGV[0] is "keyring". */
static int
swarm_cmd_keyring(struct cli *cli, int argc, char **argv)
{
	struct simple_args a;
	struct sign_keyring kr;
	struct swarm_ctx c;
	struct swarm_pool_opts po;
	struct swarm_job *jobs = NULL;
	struct err e = ERR_INIT;
	struct err se = ERR_INIT;
	size_t n = 0, i;
	int rc, ok = 1, ctx_open = 0, have;

	rc = parse_push_action(cli, argc, argv, &a);
	if (rc >= 0) {
		return rc;
	}
	rc = CLI_EXIT_FAIL;
	sign_keyring_init(&kr);
	have = keystore_current(cli->home, &kr, &e);
	if (have <= 0) {
		rc = cli_failf(cli, have < 0 ? e.kind : ERR_NOT_FOUND, "swarm keyring push: %s",
		    have < 0 ? err_msg(&e) : "the master has no keyring (tandem release keyring init)");
		goto out;
	}
	if (swarm_ctx_open(&c, cli->home, SWARM_DEFAULT_TIMEOUT_S, &se) != 0) {
		rc = cli_failf(cli, ERR_IO, "swarm keyring push: %s", err_msg(&se));
		goto out;
	}
	ctx_open = 1;
	c.tty = isatty(STDERR_FILENO);
	c.quiet = cli->json;
	if (selected_jobs(&c, &a, NULL, SWARM_JOB_KEYRING, &jobs, &n, &e) != 0) {
		err_prefix(&e, "swarm keyring push");
		rc = cli_fail(cli, &e);
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
	rc = keyring_report(cli, jobs, n, kr.version, cli->json, ok);
out:
	if (ctx_open) {
		swarm_ctx_close(&c);
	}
	sign_keyring_free(&kr);
	free(jobs);
	free(a.hosts);
	return rc;
}

/* ---------------------------------------------------------------- renew */

static int
renew_report(const struct cli *cli, const struct swarm_renew_host *res, size_t n, int json,
    int ok)
{
	static const char *const heads[] = { "HOST", "CERT", "RESULT", "NOT-AFTER", "FINGERPRINT",
		"DETAIL" };
	static const char *const which[2] = { "updater", "agent" };
	struct swarm_table *t;
	cJSON *obj, *arr, *h, *cs;

	if (json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
		if (arr == NULL || json_add_bool(obj, "ok", ok) != 0) {
			cJSON_Delete(obj);
			return swarm_print_json(NULL);
		}
		for (size_t i = 0; i < n; i++) {
			h = cJSON_CreateObject();
			if (h == NULL || !cJSON_AddItemToArray(arr, h) ||
			    json_add_str(h, "host", res[i].host) != 0) {
				cJSON_Delete(obj);
				return swarm_print_json(NULL);
			}
			for (int w = 0; w < 2; w++) {
				const struct swarm_renew_cert *c = &res[i].cert[w];
				cs = json_add_object(h, which[w]);
				if (cs == NULL || json_add_str(cs, "result", c->result) != 0 ||
				    json_add_str(cs, "old_fingerprint", c->old_fp) != 0 ||
				    json_add_str(cs, "new_fingerprint", c->new_fp) != 0 ||
				    json_add_str(cs, "old_not_after", c->old_not_after) != 0 ||
				    json_add_str(cs, "new_not_after", c->new_not_after) != 0 ||
				    json_add_str(cs, "error", c->error) != 0) {
					cJSON_Delete(obj);
					return swarm_print_json(NULL);
				}
			}
		}
		return swarm_print_json(obj) == CLI_EXIT_OK && ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	t = swarm_table_new(ARRAY_LEN(heads), heads);
	for (size_t i = 0; t != NULL && i < n; i++) {
		for (int w = 0; w < 2; w++) {
			const struct swarm_renew_cert *c = &res[i].cert[w];
			const char *cells[ARRAY_LEN(heads)];
			char na[80], fp[40];
			int renewed = strcmp(c->result, "renewed") == 0;

			(void)snprintf(na, sizeof(na), "%s%s%s", c->old_not_after,
			    renewed ? " -> " : "", renewed ? c->new_not_after : "");
			(void)snprintf(fp, sizeof(fp), "%.12s", renewed ? c->new_fp : c->old_fp);
			cells[0] = res[i].host;
			cells[1] = which[w];
			cells[2] = c->result;
			cells[3] = na;
			cells[4] = fp;
			cells[5] = c->error;
			if (swarm_table_add(t, cells) != 0) {
				swarm_table_free(t);
				t = NULL;
			}
		}
	}
	if (t == NULL) {
		return cli_failf(cli, ERR_NOMEM, "out of memory");
	}
	swarm_table_print(t, stdout);
	swarm_table_free(t);
	return fflush(stdout) == 0 && ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int
swarm_cmd_renew(struct cli *cli, int argc, char **argv)
{
	struct swarm_renew_opts o;
	struct simple_args sa;
	struct swarm_ctx c;
	struct swarm_job *jobs = NULL;
	struct swarm_renew_host *res = NULL;
	const char **hosts = NULL, *selector = NULL;
	size_t n_hosts = 0, n = 0;
	long long days;
	struct cli_getopt g;
	struct err e = ERR_INIT;
	struct err se = ERR_INIT;
	int ch, all = 0, json = cli->json, ok = 1, ctx_open = 0, rc = CLI_EXIT_FAIL;

	memset(&o, 0, sizeof(o));
	memset(&sa, 0, sizeof(sa));
	o.before_s = (long long)SWARM_RENEW_DEFAULT_BEFORE_DAYS * 86400;
	hosts = calloc((size_t)argc + 1, sizeof(*hosts));
	if (hosts == NULL) {
		return cli_failf(cli, ERR_NOMEM, "out of memory");
	}
	cli_getopt_init(&g, cli, argc, argv);
	while ((ch = cli_getopt(&g, cli)) != -1) {
		switch (ch) {
		case SW_HOST:
			if (*g.arg == '\0') {
				rc = cli_usage(cli, "--host needs a name");
				goto out;
			}
			hosts[n_hosts++] = g.arg;
			break;
		case SW_ALL:
			all = 1;
			break;
		case SW_HOSTS:
			selector = g.arg;
			break;
		case SW_BEFORE:
			if (parse_span_s(g.arg, 0, 3650LL * 86400, &o.before_s) != 0) {
				rc = cli_usage(cli,
				    "--before '%s': expected Nd, Nh, Nm or Ns", g.arg);
				goto out;
			}
			break;
		case SW_FORCE:
			o.force = 1;
			break;
		case SW_ONLY:
			if (strcmp(g.arg, "updater") != 0 && strcmp(g.arg, "agent") != 0) {
				rc = cli_usage(cli, "--only: 'updater' or 'agent'");
				goto out;
			}
			o.which = strcmp(g.arg, "updater") == 0 ? 1u : 2u;
			break;
		case SW_DAYS:
			if (parse_ll(g.arg, 1, PKI_MAX_DAYS, &days) != 0) {
				rc = cli_usage(cli,
				    "--days '%s': expected a whole number of days in 1..%d", g.arg,
				    PKI_MAX_DAYS);
				goto out;
			}
			o.days = (int)days;
			break;
		case SW_TEST_VALIDITY:
			/* Certificates that expire in minutes, for the renewal tests only. */
			if (!testhook_enabled()) {
				rc = cli_usage(cli,
				    "--test-validity exists only in test builds");
				goto out;
			}
			if (parse_ll(g.arg, 60, 86400, &o.test_valid_s) != 0) {
				rc = cli_usage(cli, "--test-validity: 60..86400 s");
				goto out;
			}
			break;
		default:
			rc = CLI_EXIT_USAGE;
			goto out;
		}
	}
	if (!all && n_hosts == 0 && selector == NULL) {
		rc = cli_usage(cli, "--host NAME, --hosts SEL or --all is required");
		goto out;
	}
	if (swarm_ctx_open(&c, cli->home, SWARM_DEFAULT_TIMEOUT_S, &se) != 0) {
		rc = cli_failf(cli, ERR_IO, "swarm renew: %s", err_msg(&se));
		goto out;
	}
	ctx_open = 1;
	c.timeout_ms = 60000;
	sa.hosts = hosts;
	sa.n_hosts = n_hosts;
	sa.all = all;
	if (selected_jobs(&c, &sa, selector, SWARM_JOB_STATUS, &jobs, &n, &e) != 0) {
		err_prefix(&e, "swarm renew");
		rc = cli_fail(cli, &e);
		goto out;
	}
	res = calloc(n, sizeof(*res));
	if (res == NULL) {
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
		goto out;
	}
	/* One host after the other: a renewal is a few small requests per host. */
	for (size_t i = 0; i < n; i++) {
		if (swarm_renew_host(&c, &jobs[i].host, &o, &res[i]) != 0) {
			ok = 0;
		}
	}
	rc = renew_report(cli, res, n, json, ok);
out:
	if (ctx_open) {
		swarm_ctx_close(&c);
	}
	free(res);
	free(jobs);
	free(hosts);
	return rc;
}

/* `swarm crl push`: ARGV[0] is "crl". */
static int
swarm_cmd_crl(struct cli *cli, int argc, char **argv)
{
	static const char *const heads[] = { "HOST", "ADDRESS", "CRL", "DETAIL" };
	struct simple_args a;
	struct swarm_ctx c;
	struct swarm_job *jobs = NULL;
	struct swarm_table *t = NULL;
	cJSON *obj = NULL, *arr = NULL, *h;
	struct err e = ERR_INIT;
	struct err se = ERR_INIT;
	char num[32];
	size_t n = 0;
	int rc, ok = 1, ctx_open = 0;

	rc = parse_push_action(cli, argc, argv, &a);
	if (rc >= 0) {
		return rc;
	}
	rc = CLI_EXIT_FAIL;
	if (swarm_ctx_open(&c, cli->home, SWARM_DEFAULT_TIMEOUT_S, &se) != 0) {
		rc = cli_failf(cli, ERR_IO, "swarm crl push: %s", err_msg(&se));
		goto out;
	}
	ctx_open = 1;
	c.timeout_ms = 60000;
	if (selected_jobs(&c, &a, NULL, SWARM_JOB_STATUS, &jobs, &n, &e) != 0) {
		err_prefix(&e, "swarm crl push");
		rc = cli_fail(cli, &e);
		goto out;
	}
	if (cli->json) {
		obj = cJSON_CreateObject();
		arr = obj != NULL ? json_add_array(obj, "hosts") : NULL;
		if (arr == NULL) {
			rc = cli_failf(cli, ERR_NOMEM, "out of memory");
			goto out;
		}
	} else if ((t = swarm_table_new(ARRAY_LEN(heads), heads)) == NULL) {
		rc = cli_failf(cli, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned long long number = 0;
		const char *cells[ARRAY_LEN(heads)];

		err_clear(&e);
		if (swarm_crl_push_host(&c, &jobs[i].host, &number, &e) != 0) {
			ok = 0;
			log_warnx("%s: %s", jobs[i].host.name, err_msg(&e));
		}
		(void)snprintf(num, sizeof(num), "%llu", number);
		if (cli->json) {
			h = cJSON_CreateObject();
			if (h == NULL || !cJSON_AddItemToArray(arr, h) ||
			    json_add_str(h, "host", jobs[i].host.name) != 0 ||
			    json_add_item(h, "crl_number", number > 0 ?
				cJSON_CreateNumber((double)number) : cJSON_CreateNull()) != 0 ||
			    json_add_str(h, "error", err_msg(&e)) != 0) {
				rc = cli_failf(cli, ERR_NOMEM, "out of memory");
				goto out;
			}
			continue;
		}
		cells[0] = jobs[i].host.name;
		cells[1] = jobs[i].host.address;
		cells[2] = number > 0 ? num : "-";
		cells[3] = err_msg(&e);
		if (swarm_table_add(t, cells) != 0) {
			rc = cli_failf(cli, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	if (cli->json) {
		if (json_add_bool(obj, "ok", ok) != 0) {
			rc = cli_failf(cli, ERR_NOMEM, "out of memory");
			goto out;
		}
		rc = swarm_print_json(obj);
		obj = NULL;
	} else {
		swarm_table_print(t, stdout);
		rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	}
	if (rc == CLI_EXIT_OK && !ok) {
		rc = CLI_EXIT_FAIL;
	}
out:
	if (ctx_open) {
		swarm_ctx_close(&c);
	}
	cJSON_Delete(obj);
	swarm_table_free(t);
	free(jobs);
	free(a.hosts);
	return rc;
}

/* ---------------------------------------------------------------- the table */

static const struct cli_opt swarm_no_opts[] = {
	SW_OPT_END,
};

static const struct cli_opt swarm_one_host_opts[] = {
	SW_OPT_ONE_HOST,
	SW_OPT_END,
};

static const struct cli_opt swarm_push_opts[] = {
	SW_OPT_HOST,
	SW_OPT_ALL,
	SW_OPT_END,
};

static const struct cli_opt swarm_status_opts[] = {
	SW_OPT_HOST,
	SW_OPT_ALL,
	SW_OPT_HOSTS,
	{ "parallel", SW_PARALLEL, 0, "N", "hosts asked at once (default 8, at most 256)" },
	{ "warn-days", SW_WARN_DAYS, 0, "N",
	    "warn about certificates expiring within N days\n(default 30)" },
	{ "json-lines", SW_JSON_LINES, 0, NULL, "one JSON object per host, as it answers" },
	SW_OPT_END,
};

static const struct cli_opt swarm_renew_opts[] = {
	SW_OPT_HOST,
	SW_OPT_HOSTS,
	SW_OPT_ALL,
	{ "before", SW_BEFORE, 0, "SPAN", "renew what expires within SPAN (default 30d)" },
	{ "force", SW_FORCE, 0, NULL, "renew whatever the expiry" },
	{ "only", SW_ONLY, 0, "WHICH", "only the updater's or only the agent's certificate" },
	{ "days", SW_DAYS, 0, "N", "validity of the new certificates (default 397)" },
	{ "test-validity", SW_TEST_VALIDITY, 0, "S",
	    "test builds only: new certificates valid S seconds" },
	SW_OPT_END,
};

static const char swarm_host_exit[] =
    "  0  done\n"
    "  1  failed: no such host, no updater identity, the updater did not\n"
    "     answer or refused (the message says why)\n"
    "  2  usage error: the command line is wrong, nothing was done\n";

static const char swarm_fleet_exit[] =
    "  0  every host did it\n"
    "  1  a host failed or could not be asked, or a local error\n"
    "  2  usage error: the command line is wrong, nothing was done\n";

static const char swarm_rollout_exit[] =
    "  0  done: every host runs the release (and its updater with\n"
    "     --include-self), or --dry-run found every host\n"
    "  1  halted, aborted, a host failed, or the release was refused before\n"
    "     anything was sent (the message says why)\n"
    "  2  usage error: the command line is wrong, nothing was done\n"
    "  3  not finished (--paused, waiting for its window):\n"
    "     'tandem swarm rollout resume ID' goes on\n"
    "  Ctrl-C or SIGTERM: hosts in flight finish, the report is printed, then\n"
    "  the command ends by that signal (a shell sees 130 or 143); resume goes on\n";

static const struct cli_cmd swarm_keyring_subs[] = {
	{
	    .name = "push",
	    .summary = "bring hosts' release keyrings up to the master's",
	    .synopsis = "(--host NAME ... | --all)",
	    .description =
		"Sends each host's updater (POST /keyring) the keyring versions it lacks, in\n"
		"order: a host accepts only the version after its own, signed by the root keys\n"
		"of both. A host without a keyring gets the master's current one. The master's\n"
		"keyrings are in HOME/keyring/ (tandem release keyring). Ends with a table:\n"
		"host, address, keyring version before -> after, detail.",
	    .opts = swarm_push_opts,
	    .exit_status = swarm_fleet_exit,
	    .example = "tandem swarm keyring push --all",
	    .run = swarm_cmd_keyring,
	},
};

static const struct cli_cmd swarm_crl_subs[] = {
	{
	    .name = "push",
	    .summary = "send hosts the master's CRL",
	    .synopsis = "(--host NAME ... | --all)",
	    .description =
		"Sends each host's updater (PUT /crl) the CRL the master signed last\n"
		"(HOME/ca/crl.der: tandem pki revoke / pki crl). The updater checks it against\n"
		"its CA, refuses one older than the CRL it has, stores it, enforces it on\n"
		"every handshake (its probe of the agent included) and has its agent reload\n"
		"it. A revoked host's updater is not contacted (the master refuses its\n"
		"certificate). Every `swarm renew` sends the CRL too. Ends with a table:\n"
		"host, address, the CRL number the host now enforces, detail.",
	    .opts = swarm_push_opts,
	    .exit_status = swarm_fleet_exit,
	    .example = "tandem swarm crl push --all",
	    .run = swarm_cmd_crl,
	},
};

static const struct cli_cmd swarm_cmds[] = {
	{
	    .name = "enroll",
	    .summary = "issue a host's certificates, write its bundle, register it",
	    .synopsis = "NAME --address ADDR [--updater] [options]\n"
			"NAME --updater   (add the updater identity to an enrolled host)",
	    .operand = "NAME",
	    .description =
		"Issues CN=NAME (agent) and with --updater CN=updater@NAME certificates from\n"
		"the CA, and writes the bundle DIR (default HOME/hosts/NAME): ca.crt,\n"
		"agent.crt/.key, updater.crt/.key (keys 0600), agent.conf and updater.conf\n"
		"(relative paths: use them wherever the bundle is unpacked). Records the host\n"
		"and both certificate fingerprints in the registry. Refuses duplicate and\n"
		"invalid names, the master CN, names with '@', and a bundle directory that\n"
		"already holds a key or certificate (nothing is overwritten).",
	    .opts = swarm_enroll_opts,
	    .example = "tandem swarm enroll web1 --address 192.0.2.10 --updater --label env=prod",
	    .run = swarm_cmd_enroll,
	},
	{
	    .name = "list",
	    .summary = "list enrolled hosts",
	    .synopsis = "",
	    .description = "Lists every enrolled host: name, address, ports, the updater pin,\n"
			   "state (in service or decommissioned), labels and notes.",
	    .opts = swarm_no_opts,
	    .example = "tandem swarm list --json",
	    .run = swarm_cmd_list,
	},
	{
	    .name = "show",
	    .summary = "show one host and its recent pushes",
	    .synopsis = "NAME",
	    .operand = "NAME",
	    .description = "Prints the host's registry record (address, ports, fingerprints,\n"
			   "notes, enrollment, state, labels) and its last 10 pushes.",
	    .opts = swarm_no_opts,
	    .example = "tandem swarm show web1",
	    .run = swarm_cmd_show,
	},
	{
	    .name = "decommission",
	    .summary = "retire a host (kept in the registry, left out of --all)",
	    .synopsis = "NAME",
	    .operand = "NAME",
	    .description = "Marks the host decommissioned: it stays in the registry (its history\n"
			   "too) and is left out of --all, --hosts and converge.",
	    .opts = swarm_no_opts,
	    .example = "tandem swarm decommission web1",
	    .run = swarm_cmd_decommission,
	},
	{
	    .name = "update",
	    .summary = "roll a release out to hosts' updaters (canary, waves, gates)",
	    .synopsis = "(--host NAME ... | --all | --hosts SEL) --release FILE|DIR [options]\n"
			"(--host NAME ... | --all | --hosts SEL) --dry-run [--release FILE|DIR]",
	    .description =
		"First the release is opened and checked here the way each updater will\n"
		"check it (gzip tar, manifest.json present and valid, entrypoint present\n"
		"and executable, safe paths, size and entry limits, a signature FILE.tsig\n"
		"if present): a release an updater would refuse is refused with the\n"
		"updater's words before any host is contacted. Every update is then a\n"
		"rollout, recorded in the registry before the first push: the hosts in a\n"
		"stable pseudo-random order, cut into waves (a canary first). Each host's\n"
		"updater gets the release (a tarball, or a directory packed first; taken\n"
		"into HOME/store with the check, and not checked again while the stored\n"
		"copy is unchanged) over POST /update, pinned to the updater\n"
		"certificate recorded at enrollment, at most N hosts at a time; it\n"
		"installs, restarts the agent, probes it and rolls back on failure. A host\n"
		"that already runs the release is left alone (already_active). Between\n"
		"waves a gate: every host of the wave finished, the soak and second look,\n"
		"the gate command. Too many failures halt the rollout. With no options:\n"
		"canary of 1 host, then 10%, 50%, 100%, halt on the first failure. Ends\n"
		"with a table (host, address, agent result, self result, version,\n"
		"detail) and the outcome. Ctrl-C stops dispatching; 'tandem swarm rollout\n"
		"resume ID' goes on.",
	    .opts = swarm_update_opts,
	    .exit_status = swarm_rollout_exit,
	    .example = "tandem swarm update --all --release agent-1.2.0.tar.gz --soak 1m",
	    .run = swarm_cmd_update,
	},
	{
	    .name = "rollback",
	    .summary = "restore a host's previous release",
	    .synopsis = "--host NAME",
	    .description =
		"Asks the host's updater to restore its previous release (POST /rollback)\n"
		"and records the result in the registry. Refused, exit 1, when the\n"
		"previous release is the one running: nothing to roll back to.",
	    .opts = swarm_one_host_opts,
	    .exit_status = swarm_host_exit,
	    .example = "tandem swarm rollback --host web1",
	    .run = swarm_cmd_rollback,
	},
	{
	    .name = "status",
	    .summary = "ask hosts' updaters and agents how they are",
	    .synopsis = "[--host NAME ... | --all | --hosts SEL] [options]",
	    .description =
		"Per host: reachable, pin, updater version and status, agent version (from\n"
		"the agent itself, pinned) and supervisor state, active and previous\n"
		"release, and the updater's and the agent's certificate expiry: one\n"
		"expiring within --warn-days or expired is warned about on stderr and in\n"
		"DETAIL (renew with tandem swarm renew). A host enrolled without an updater\n"
		"identity is not asked and says so (STATUS 'no updater identity').\n"
		"Without --host, every host in service.",
	    .opts = swarm_status_opts,
	    .exit_status = "  0  every updater answered\n"
			   "  1  an updater did not answer (or a host has no updater identity),\n"
			   "     or a local error\n"
			   "  2  usage error: the command line is wrong, nothing was done\n",
	    .example = "tandem swarm status --hosts env=prod --warn-days 14",
	    .run = swarm_cmd_status,
	},
	{
	    .name = "rollout",
	    .summary = "list, follow, pause, resume or abort rollouts",
	    .synopsis = "list|status|watch|pause|resume|abort|events [ID] [options]",
	    .description = "The rollouts 'swarm update' and 'swarm converge' record in the registry.",
	    .subs = cmd_rollout_subs,
	    .n_subs = CMD_ROLLOUT_N_SUBS,
	},
	{
	    .name = "label",
	    .summary = "set or remove a host's labels (KEY=VALUE)",
	    .synopsis = "NAME [KEY=VALUE | KEY-]...",
	    .operand = "NAME",
	    .operand_more = 1,
	    .description =
		"Sets (KEY=VALUE) or removes (KEY-) labels of host NAME, then prints its\n"
		"labels. Keys: 1-63 of [a-z0-9._/-], starting with a letter or digit; values:\n"
		"0-63 of [A-Za-z0-9._-]. Labels select hosts: --hosts env=prod,role!=db on\n"
		"update, status, target set and converge.",
	    .opts = swarm_no_opts,
	    .exit_status = "  0  done\n"
			   "  1  no such host, or a local error\n"
			   "  2  usage error: the command line is wrong, nothing was done\n",
	    .example = "tandem swarm label web1 env=prod role=web",
	    .run = swarm_cmd_label,
	},
	{
	    .name = "target",
	    .summary = "record the release hosts should run",
	    .synopsis = "set|list|clear [options]",
	    .description = "The desired release of hosts, which 'swarm converge' brings them to.",
	    .subs = cmd_target_subs,
	    .n_subs = CMD_TARGET_N_SUBS,
	},
	{
	    .name = "converge",
	    .summary = "update exactly the hosts that differ from their target",
	    .synopsis = "[--hosts SEL] [--retry-failed] [--dry-run] [rollout options]",
	    .description =
		"Updates exactly the hosts (default: all in service) whose active release\n"
		"differs from their target ('swarm target set'), as one rollout per target\n"
		"release with the rollout options. Left alone, and listed: hosts without a\n"
		"target, hosts held by an unfinished rollout, hosts that did not answer,\n"
		"and hosts that failed the same target 3 times (until --retry-failed).\n"
		"When every host runs its target it does nothing and says so. Meant for a\n"
		"systemd timer on the master.",
	    .opts = swarm_converge_opts,
	    .exit_status = "  0  nothing to do, or every rollout done\n"
			   "  1  a rollout halted, or a host failed or could not be asked\n"
			   "  2  usage error: the command line is wrong, nothing was done\n"
			   "  3  a rollout not finished\n",
	    .example = "tandem swarm converge --hosts env=prod --soak 2m",
	    .run = swarm_cmd_converge,
	},
	{
	    .name = "renew",
	    .summary = "renew hosts' certificates online (the keys stay on the hosts)",
	    .synopsis = "(--host NAME ... | --hosts SEL | --all) [options]",
	    .description =
		"For each host, the updater's certificate and then the agent's, when it\n"
		"expires within SPAN (default 30d; Nd, Nh, Nm or Ns) or with --force:\n"
		"the host makes a new key and a CSR (POST /cert/csr); the CA signs it\n"
		"with the host's name, role and address from the registry; the host\n"
		"installs the new pair atomically and uses it at once; a handshake pinned\n"
		"to the new certificate alone must succeed; then the host drops the old\n"
		"pair and the registry the old pin. A renewal cut short leaves both pins\n"
		"accepted; run it again to finish.",
	    .opts = swarm_renew_opts,
	    .exit_status = swarm_fleet_exit,
	    .example = "tandem swarm renew --all --before 30d",
	    .run = swarm_cmd_renew,
	},
	{
	    .name = "crl",
	    .summary = "send hosts the master's CRL",
	    .synopsis = "push (--host NAME ... | --all)",
	    .description = "The master's certificate revocation list, sent to the hosts.",
	    .subs = swarm_crl_subs,
	    .n_subs = ARRAY_LEN(swarm_crl_subs),
	},
	{
	    .name = "releases",
	    .summary = "list a host's installed releases",
	    .synopsis = "--host NAME",
	    .description = "Asks the host's updater (GET /releases) for its installed releases:\n"
			   "slot, version, label, sha256, installation time.",
	    .opts = swarm_one_host_opts,
	    .exit_status = swarm_host_exit,
	    .example = "tandem swarm releases --host web1",
	    .run = swarm_cmd_releases,
	},
	{
	    .name = "history",
	    .summary = "a host's operation history (updater) and push log (registry)",
	    .synopsis = "--host NAME",
	    .description =
		"Prints the host updater's operation history (GET /history: finished at,\n"
		"kind, result, version, caller, error) and the pushes this master\n"
		"recorded for it, both oldest first (the newest last).",
	    .opts = swarm_one_host_opts,
	    .exit_status = swarm_host_exit,
	    .example = "tandem swarm history --host web1",
	    .run = swarm_cmd_history,
	},
	{
	    .name = "keyring",
	    .summary = "bring hosts' release keyrings up to the master's",
	    .synopsis = "push (--host NAME ... | --all)",
	    .description = "The release keyrings of the hosts' updaters.",
	    .subs = swarm_keyring_subs,
	    .n_subs = ARRAY_LEN(swarm_keyring_subs),
	},
};

const struct cli_group cli_group_swarm = {
	.name = "swarm",
	.summary = "the fleet: enroll, list, update, rollback, status",
	.cmds = swarm_cmds,
	.n_cmds = ARRAY_LEN(swarm_cmds),
};
