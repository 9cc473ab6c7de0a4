#include "updater/api.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/httpd.h"
#include "common/json.h"
#include "common/log.h"
#include "common/testhook.h"
#include "common/proc.h"
#include "common/release.h"
#include "common/tls.h"
#include "common/version.h"
#include "updater/extract.h"
#include "updater/journal.h"
#include "updater/probe.h"
#include "updater/selfupdate.h"
#include "updater/store.h"
#include "updater/supervise.h"
#include "updater/upload.h"

#define API_PREFLIGHT_OUT (16 * 1024)
#define API_RETRY_AFTER "5"
#define API_MAX_SHA_LABEL 255
/* Multipart framing and text fields on top of the tarball itself. */
#define API_BODY_SLACK (64 * 1024)


/* snprintf for messages and paths where a cut result is harmless (it fails later, visibly). */
static void api_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
api_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

#define OFF(m) offsetof(struct updater_config, m)
const struct config_option api_config_table[] = {
	{ "listen", CONFIG_ADDR, OFF(listen), UPDATER_DEFAULT_LISTEN, 0, 0,
	    "address and port of the updater API" },
	{ "install_dir", CONFIG_PATH, OFF(install_dir), NULL, 0, 0,
	    "root of current, releases/ and state/ (required)" },
	{ "ca", CONFIG_PATH, OFF(ca), NULL, 0, 0, "fleet CA certificate (required)" },
	{ "cert", CONFIG_PATH, OFF(cert), NULL, 0, 0,
	    "updater certificate, CN=updater@HOST, serverAuth+clientAuth (required)" },
	{ "key", CONFIG_PATH, OFF(key), NULL, 0, 0, "updater private key (required)" },
	{ "master_cn", CONFIG_STR, OFF(master_cn), TLS_DEFAULT_MASTER_CN, 1, 127,
	    "CN of the master certificate" },
	{ "master_fingerprints", CONFIG_STRLIST, OFF(master_fingerprints), "", 0, 0,
	    "if set, only these master certificates (sha256 of DER, hex) may push" },
	{ "agent_config", CONFIG_PATH, OFF(agent_config), NULL, 0, 0,
	    "the agent's config file, passed as --config (required)" },
	{ "agent_probe", CONFIG_ADDR, OFF(agent_probe), "127.0.0.1:8765", 1, 65535,
	    "where the agent's /health is probed" },
	{ "agent_pin", CONFIG_STR, OFF(agent_pin), "", 0, 64,
	    "sha256 of the agent's certificate (hex); empty: CA only" },
	{ "agent_log", CONFIG_PATH, OFF(agent_log), NULL, 0, 0,
	    "agent stdout/stderr (default INSTALL_DIR/state/agent.log)" },
	{ "run_as_user", CONFIG_STR, OFF(run_as_user), "", 0, 64, "run the agent as this user" },
	{ "run_as_group", CONFIG_STR, OFF(run_as_group), "", 0, 64, "... and this group" },
	{ "stop_agent_on_exit", CONFIG_BOOL, OFF(stop_agent_on_exit), "false", 0, 0,
	    "stop the agent when the updater exits (else the next updater adopts it)" },
	{ "max_upload", CONFIG_SIZE, OFF(max_upload), "512M", 1024, 1LL << 40,
	    "largest tarball accepted (413 beyond)" },
	{ "max_unpacked", CONFIG_SIZE, OFF(max_unpacked), "2G", 1024, 1LL << 42,
	    "largest unpacked release" },
	{ "max_entries", CONFIG_INT, OFF(max_entries), "100000", 1, 10000000,
	    "most archive entries in a release" },
	{ "min_free", CONFIG_SIZE, OFF(min_free), "64M", 0, 1LL << 42,
	    "free disk space that must remain while installing (507 otherwise)" },
	{ "failed_keep", CONFIG_INT, OFF(failed_keep), "3", 0, 100,
	    "failed releases kept in releases/failed/" },
	{ "preflight_timeout", CONFIG_DURATION_MS, OFF(preflight_timeout_ms), "30s", 100,
	    3600000, "limit on the release's preflight command" },
	{ "probe_deadline", CONFIG_DURATION_MS, OFF(probe_deadline_ms), "30s", 100, 3600000,
	    "time for a new agent to answer /health" },
	{ "probe_stable", CONFIG_DURATION_MS, OFF(probe_stable_ms), "3s", 0, 3600000,
	    "stability window after the first healthy answer" },
	{ "probe_first_interval", CONFIG_DURATION_MS, OFF(probe_first_interval_ms), "20ms", 1,
	    60000, "first wait between probe attempts" },
	{ "probe_max_interval", CONFIG_DURATION_MS, OFF(probe_max_interval_ms), "1s", 1, 60000,
	    "longest wait between probe attempts" },
	{ "stop_grace", CONFIG_DURATION_MS, OFF(stop_grace_ms), "5s", 10, 600000,
	    "SIGTERM to SIGKILL when stopping the agent" },
	{ "restart_backoff_min", CONFIG_DURATION_MS, OFF(restart_backoff_min_ms), "500ms", 10,
	    3600000, "first delay before restarting a crashed agent (doubles per crash)" },
	{ "restart_backoff_max", CONFIG_DURATION_MS, OFF(restart_backoff_max_ms), "30s", 10,
	    86400000, "longest restart delay" },
	{ "restart_min_spacing", CONFIG_DURATION_MS, OFF(restart_min_spacing_ms), "1s", 10, 3600000,
	    "least time between two starts of the agent" },
	{ "crash_loop_count", CONFIG_INT, OFF(crash_loop_count), "5", 1, SUP_MAX_CRASHES,
	    "this many crashes within crash_loop_window is a crash loop (shown in /health)" },
	{ "crash_loop_window", CONFIG_DURATION_MS, OFF(crash_loop_window_ms), "60s", 100, 86400000,
	    NULL },
	{ "crash_loop_retry", CONFIG_DURATION_MS, OFF(crash_loop_retry_ms), "60s", 100, 86400000,
	    "in a crash loop, try again after this long" },
	{ "request_timeout", CONFIG_DURATION_MS, OFF(request_timeout_ms), "15m", 1000,
	    86400000, "whole /update request: upload, install and probe" },
	{ "max_conns", CONFIG_INT, OFF(max_conns), "32", 1, 10000, "concurrent connections" },
	{ "log_level", CONFIG_LOGLEVEL, OFF(log_level), "info", 0, 0, NULL },
	{ "log_file", CONFIG_PATH, OFF(log_file), NULL, 0, 0, "log here instead of stderr" },
};
#undef OFF
const size_t api_config_table_len = ARRAY_LEN(api_config_table);

int
api_config_check(const struct updater_config *cfg, char *err, size_t errlen)
{
	if (cfg->install_dir == NULL || cfg->ca == NULL || cfg->cert == NULL ||
	    cfg->key == NULL || cfg->agent_config == NULL) {
		api_fmt(err, errlen,
		    "install_dir, ca, cert, key and agent_config must all be set");
		return -1;
	}
	if (cfg->install_dir[0] != '/') {
		api_fmt(err, errlen, "install_dir must be absolute");
		return -1;
	}
	if (cfg->agent_pin[0] != '\0' && !is_hex_len(cfg->agent_pin, TLS_FP_HEX_LEN)) {
		api_fmt(err, errlen, "agent_pin must be 64 hex digits");
		return -1;
	}
	for (char **fp = cfg->master_fingerprints; *fp != NULL; fp++) {
		if (!is_hex_len(*fp, TLS_FP_HEX_LEN)) {
			api_fmt(err, errlen, "master_fingerprints: '%s' is not 64 hex digits", *fp);
			return -1;
		}
	}
	return 0;
}

struct api {
	const struct updater_config *cfg;
	struct store store;
	struct tls_ctx *srv_tls;
	struct tls_ctx *cli_tls;
	struct httpd *httpd;
	struct supervisor *sv;
	struct selfupdate *su;
	char agent_log[PATH_MAX];
	char probe_host[256];
	char probe_port[16];
	char boot_id[40];
	struct httpd_route routes[6];

	pthread_mutex_t mu;        /* protects everything below */
	int busy;
	char op_id[JOURNAL_ID_LEN];
	const char *op_kind;
	const char *op_phase;
	int64_t op_started;
	int both_bad;
	char last_probe[600];
};

/* ---- small helpers ---- */

static void
api_set_phase(struct api *a, const char *phase)
{
	pthread_mutex_lock(&a->mu);
	a->op_phase = phase;
	pthread_mutex_unlock(&a->mu);
}

static void
api_set_last_probe(struct api *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
api_set_last_probe(struct api *a, const char *fmt, ...)
{
	va_list ap;
	char buf[600], stamp[32];

	iso8601_utc(time(NULL), stamp, sizeof(stamp));
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&a->mu);
	api_fmt(a->last_probe, sizeof(a->last_probe), "%s %s", stamp, buf);
	pthread_mutex_unlock(&a->mu);
}

/* Take the operation lock; on refusal answer 503 with the running op's id. */
static int
api_lock(struct api *a, struct httpd_req *r, const char *kind, char id[JOURNAL_ID_LEN])
{
	char running[JOURNAL_ID_LEN];
	char msg[160];

	pthread_mutex_lock(&a->mu);
	if (a->busy) {
		memcpy(running, a->op_id, sizeof(running));
		pthread_mutex_unlock(&a->mu);
		if (httpd_add_header(r, "Retry-After", API_RETRY_AFTER) != 0) {
			log_warnx("cannot add Retry-After");
		}
		api_fmt(msg, sizeof(msg), "another operation is in progress: %s", running);
		httpd_respond_error_detail(r, 503, msg, NULL, 0);
		return -1;
	}
	if (journal_new_id(id) != 0) {
		pthread_mutex_unlock(&a->mu);
		httpd_respond_error_detail(r, 500, "cannot make an operation id", NULL, 0);
		return -1;
	}
	a->busy = 1;
	memcpy(a->op_id, id, JOURNAL_ID_LEN);
	a->op_kind = kind;
	a->op_phase = "receiving";
	a->op_started = mono_ms();
	pthread_mutex_unlock(&a->mu);
	return 0;
}

static void
api_unlock(struct api *a)
{
	pthread_mutex_lock(&a->mu);
	a->busy = 0;
	a->op_id[0] = '\0';
	a->op_kind = NULL;
	a->op_phase = NULL;
	pthread_mutex_unlock(&a->mu);
}

/* The operation lock and phase, lent to POST /update-self (updater/selfupdate). */
static int
api_su_lock(void *arg, struct httpd_req *r, const char *kind, char id[JOURNAL_ID_LEN])
{
	return api_lock(arg, r, kind, id);
}

static void
api_su_unlock(void *arg)
{
	api_unlock(arg);
}

static void
api_su_phase(void *arg, const char *phase)
{
	api_set_phase(arg, phase);
}

/* Master only (route roles), and when pins are configured, a pinned one. */
static int
api_authorise(struct api *a, struct httpd_req *r)
{
	const struct tls_identity *id = httpd_req_identity(r);

	if (a->cfg->master_fingerprints[0] == NULL) {
		return 0;
	}
	for (char **fp = a->cfg->master_fingerprints; *fp != NULL; fp++) {
		if (id != NULL && strcasecmp(*fp, id->fingerprint) == 0) {
			return 0;
		}
	}
	httpd_respond_error_detail(r, 403, "master certificate is not pinned on this updater",
	    NULL, 0);
	return -1;
}

static const char *
api_caller(struct httpd_req *r)
{
	const struct tls_identity *id = httpd_req_identity(r);

	return id != NULL ? id->fingerprint : "";
}

/* ---- manifest ---- */

/* Read and check releases/SLOT/manifest.json (common/release). */
static int
api_read_manifest(struct api *a, const char *slot, struct release_manifest *m, char *err,
    size_t errlen)
{
	struct err e = ERR_INIT;
	char dir[PATH_MAX];

	api_fmt(dir, sizeof(dir), "%s/releases/%s", a->store.root, slot);
	if (release_manifest_read(dir, RELEASE_MF_AGENT, m, &e) != 0) {
		api_fmt(err, errlen, "%s", err_msg(&e));
		return -1;
	}
	return 0;
}

/*
 * Run the staged release's preflight (manifest "preflight", default
 * ENTRYPOINT --self-test) with --config AGENT_CONFIG and --listen
 * 127.0.0.1:0 appended: the check must not need the running agent's port.
 */
static int
api_preflight(struct api *a, const struct release_manifest *m, char *out, size_t outlen, char *err,
    size_t errlen)
{
	const char *argv[RELEASE_ARGS_MAX + 6];
	struct err e = ERR_INIT;
	char dir[PATH_MAX], prog[PATH_MAX], jerr[256], desc[96];
	struct proc_spec spec;
	size_t n = 0, outn = 0;
	int status = 0;
	const char *first = m->npreflight > 0 ? m->preflight[0] : m->entrypoint;

	api_fmt(dir, sizeof(dir), "%s/releases/active.new", a->store.root);
	if (release_check_exec(dir, first, &e) != 0) {
		api_fmt(err, errlen, "preflight: %s", err_msg(&e));
		return -1;
	}
	api_fmt(prog, sizeof(prog), "%s/%s", dir, first);
	argv[n++] = prog;
	if (m->npreflight > 0) {
		for (size_t i = 1; i < m->npreflight; i++) {
			argv[n++] = m->preflight[i];
		}
	} else {
		argv[n++] = "--self-test";
	}
	argv[n++] = "--config";
	argv[n++] = a->cfg->agent_config;
	argv[n++] = "--listen";
	argv[n++] = "127.0.0.1:0";
	argv[n] = NULL;
	proc_spec_init(&spec);
	spec.argv = argv;
	spec.cwd = dir;
	if (a->cfg->run_as_user[0] != '\0') {
		spec.user = a->cfg->run_as_user;
		spec.group = a->cfg->run_as_group[0] != '\0' ? a->cfg->run_as_group : NULL;
	}
	if (proc_run_capture(&spec, (int)a->cfg->preflight_timeout_ms, out, outlen, &outn, &status,
		jerr, sizeof(jerr)) != 0) {
		api_fmt(err, errlen, "preflight: %s", jerr);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		api_fmt(err, errlen, "preflight %s %s", first,
		    proc_status_str(status, desc, sizeof(desc)));
		return -1;
	}
	return 0;
}

/* ---- the agent ---- */

static int
api_agent_spec(struct api *a, char *err, size_t errlen)
{
	struct release_manifest m;
	char prog[PATH_MAX];
	const char *argv[4];
	struct proc_spec spec;
	int rc;

	if (api_read_manifest(a, "active", &m, err, errlen) != 0) {
		return -1;
	}
	/* Through `current`, so the agent finds its release dir (parent of bin/). */
	api_fmt(prog, sizeof(prog), "%s/current/%s", a->store.root, m.entrypoint);
	argv[0] = prog;
	argv[1] = "--config";
	argv[2] = a->cfg->agent_config;
	argv[3] = NULL;
	proc_spec_init(&spec);
	spec.argv = argv;
	spec.cwd = a->store.root;
	spec.log_path = a->agent_log;
	if (a->cfg->run_as_user[0] != '\0') {
		spec.user = a->cfg->run_as_user;
		spec.group = a->cfg->run_as_group[0] != '\0' ? a->cfg->run_as_group : NULL;
	}
	rc = supervisor_set_spec(a->sv, &spec);
	if (rc != 0) {
		api_fmt(err, errlen, "out of memory");
	}
	return rc;
}

/* Start the agent on the active release; *GEN gets its generation. */
static int
api_agent_start(struct api *a, uint64_t *gen, char *err, size_t errlen)
{
	struct supervisor_status st;

	if (api_agent_spec(a, err, errlen) != 0 || supervisor_start(a->sv, err, errlen) != 0) {
		return -1;
	}
	supervisor_status(a->sv, &st);
	*gen = st.generation;
	return 0;
}

/*
 * Probe the agent of generation GEN for the release in SLOT. Returns 1
 * passed, 0 failed (REASON set); BODY gets the last /health body (or NULL).
 */
static int
api_probe(struct api *a, uint64_t gen, const struct release_info *ri, char **body, char *reason,
    size_t reasonlen)
{
	struct probe_opts o;
	struct probe_result res;
	struct supervisor_watch w = { a->sv, gen };
	int passed;

	probe_opts_init(&o);
	o.tls = a->cli_tls;
	o.host = a->probe_host;
	o.port = a->probe_port;
	o.pin_fp = a->cfg->agent_pin;
	o.expect_version = ri->version;
	o.expect_sha256 = ri->sha256;
	o.first_interval_ms = (int)a->cfg->probe_first_interval_ms;
	o.max_interval_ms = (int)a->cfg->probe_max_interval_ms;
	o.deadline_ms = (int)a->cfg->probe_deadline_ms;
	o.stable_ms = (int)a->cfg->probe_stable_ms;
	if (o.stable_interval_ms > o.stable_ms && o.stable_ms > 0) {
		o.stable_interval_ms = o.stable_ms;
	}
	o.alive = supervisor_watch_alive;
	o.alive_arg = &w;
	passed = probe_run(&o, &res) == 0;
	if (passed) {
		api_set_last_probe(a, "passed for %s (%s) in %lld ms", ri->id, ri->version,
		    (long long)res.elapsed_ms);
	} else {
		api_fmt(reason, reasonlen, "%s", res.reason);
		api_set_last_probe(a, "failed for %s (%s): %s", ri->id, ri->version, res.reason);
	}
	*body = res.body;
	res.body = NULL;
	probe_result_free(&res);
	return passed;
}

/* ---- history ---- */

struct api_outcome {
	const char *kind;
	const char *id;
	const char *caller;
	const char *sha256;
	const char *sha;
	const char *version;
	const char *result;
	const char *error;
	int64_t started;
	int64_t upload_ms, preflight_ms, switch_ms, probe_ms;
};

static void
api_history(struct api *a, const struct api_outcome *oc)
{
	cJSON *e = cJSON_CreateObject(), *t;
	char stamp[32];

	iso8601_utc(time(NULL), stamp, sizeof(stamp));
	if (e == NULL || json_add_str(e, "id", oc->id) != 0 ||
	    json_add_str(e, "kind", oc->kind) != 0 || json_add_str(e, "finished_at", stamp) != 0 ||
	    json_add_str(e, "caller", oc->caller) != 0 ||
	    json_add_str(e, "sha256", oc->sha256) != 0 || json_add_str(e, "sha", oc->sha) != 0 ||
	    json_add_str(e, "version", oc->version) != 0 ||
	    json_add_str(e, "result", oc->result) != 0 ||
	    json_add_str(e, "error", oc->error) != 0 || (t = json_add_object(e, "timings")) == NULL ||
	    json_add_int(t, "upload_ms", oc->upload_ms) != 0 ||
	    json_add_int(t, "preflight_ms", oc->preflight_ms) != 0 ||
	    json_add_int(t, "switch_ms", oc->switch_ms) != 0 ||
	    json_add_int(t, "probe_ms", oc->probe_ms) != 0 ||
	    json_add_int(t, "total_ms", mono_ms() - oc->started) != 0) {
		log_warnx("history: out of memory");
	} else if (journal_history_append(a->store.root, e, 0) != 0) {
		log_warn("history append");
	}
	cJSON_Delete(e);
}

/* ---- POST /update ---- */

struct upd_req {
	int locked;
	char id[JOURNAL_ID_LEN];
	char sha[API_MAX_SHA_LABEL + 1];
	size_t sha_len;
	char sha256[72];
	size_t sha256_len;
	int have_sha256;
	int have_tarball;
	struct extract *x;
	struct journal_op op;
	int staging; /* store_update_begin done, staging not yet switched or removed */
	int64_t started;
	int64_t upload_ms;
};

static void
upd_outcome_init(struct api_outcome *oc, struct upd_req *u, struct httpd_req *r)
{
	memset(oc, 0, sizeof(*oc));
	oc->kind = "update";
	oc->id = u->id;
	oc->caller = api_caller(r);
	oc->sha256 = u->sha256;
	oc->sha = u->sha;
	oc->version = "";
	oc->started = u->started;
	oc->upload_ms = u->upload_ms;
}

/* Remove staging and the journal after a refusal. */
static void
upd_drop_staging(struct api *a, struct upd_req *u)
{
	char err[256];

	if (u->x != NULL) {
		extract_abort(u->x);
		u->x = NULL;
	}
	if (u->staging) {
		if (store_update_abort(&a->store, &u->op, err, sizeof(err)) != 0) {
			log_warnx("update %s: cleanup: %s", u->id, err);
		}
		u->staging = 0;
	}
}

static void
upd_refuse(struct api *a, struct httpd_req *r, struct upd_req *u, unsigned status,
    const char *error, const char *stderr_text)
{
	struct api_outcome oc;

	upd_drop_staging(a, u);
	httpd_respond_error_detail(r, status, error, stderr_text, 0);
	if (u->have_tarball) {
		upd_outcome_init(&oc, u, r);
		oc.result = "refused";
		oc.error = error;
		api_history(a, &oc);
	}
	log_warnx("update %s refused (%u): %s", u->id, status, error);
}

/*
 * Start of a master-only operation of KIND (update, rollback): authorise,
 * attach the request record, take the operation lock. Answers and returns
 * -1 when any of them fails.
 */
static int
api_op_begin(struct api *a, struct httpd_req *r, const char *kind)
{
	struct upd_req *u;

	if (api_authorise(a, r) != 0) {
		return -1;
	}
	u = calloc(1, sizeof(*u));
	if (u == NULL) {
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return -1;
	}
	httpd_req_set_data(r, u);
	if (api_lock(a, r, kind, u->id) != 0) {
		return -1;
	}
	u->locked = 1;
	u->started = mono_ms();
	return 0;
}

static int
upd_begin(struct httpd_req *r, void *arg)
{
	return api_op_begin(arg, r, "update");
}

static int
upd_tarball_start(struct api *a, struct httpd_req *r, struct upd_req *u)
{
	struct extract_limits lim;
	char err[512];

	if (u->have_tarball) {
		httpd_respond_error_detail(r, 400, "more than one 'tarball' field", NULL, 0);
		return -1;
	}
	u->have_tarball = 1;
	if (upload_disk_check(a->store.root, a->cfg->min_free, err, sizeof(err)) != 0) {
		upd_refuse(a, r, u, 507, err, NULL);
		return -1;
	}
	memcpy(u->op.id, u->id, sizeof(u->op.id));
	if (store_update_begin(&a->store, &u->op, u->sha256, api_caller(r), err, sizeof(err)) != 0) {
		upd_refuse(a, r, u, 500, err, NULL);
		return -1;
	}
	u->staging = 1;
	api_set_phase(a, "receiving");
	upload_limits(a->cfg, &lim);
	if (extract_begin(STORE_STAGING_REL, &lim, &u->x, err, sizeof(err)) != 0) {
		upd_refuse(a, r, u, 500, err, NULL);
		return -1;
	}
	return 0;
}

static int
upd_data(struct httpd_req *r, const struct httpd_part *part, const char *data, size_t len,
    void *arg)
{
	struct api *a = arg;
	struct upd_req *u = httpd_req_data(r);
	char err[512], digest[65];

	if (part == NULL || part->name == NULL) {
		httpd_respond_error_detail(r, 400, "expected multipart/form-data", NULL, 0);
		return -1;
	}
	if (strcmp(part->name, "sha") == 0) {
		return upload_text(r, u->sha, sizeof(u->sha), &u->sha_len, "sha", data, len);
	}
	if (strcmp(part->name, "sha256") == 0) {
		u->have_sha256 = 1;
		return upload_text(r, u->sha256, sizeof(u->sha256), &u->sha256_len, "sha256", data, len);
	}
	if (strcmp(part->name, "tarball") != 0) {
		httpd_respond_error_detail(r, 400, "unexpected form field", part->name, 0);
		return -1;
	}
	if (part->offset == 0 && upd_tarball_start(a, r, u) != 0) {
		return -1;
	}
	if (u->x != NULL && extract_feed(u->x, data, len) != 0) {
		enum extract_status st = extract_finish(u->x, digest, NULL, NULL, err, sizeof(err));

		u->x = NULL;
		upd_refuse(a, r, u, upload_status_of(st), err, NULL);
		return -1;
	}
	return 0;
}

static void
upd_respond_release(struct api *a, struct httpd_req *r, const char *status, const char *body)
{
	struct release_info ri;
	char err[256];
	cJSON *o = cJSON_CreateObject(), *rel = NULL;

	if (store_release_read(&a->store, "active", &ri, err, sizeof(err)) == 1) {
		rel = release_record_json(&ri, "active");
	}
	if (o == NULL || json_add_str(o, "status", status) != 0 ||
	    json_add_item(o, "release", rel) != 0 ||
	    json_add_str(o, "probe", body != NULL ? body : "") != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

/*
 * The new release is in active.new with its release.json: stop the agent,
 * switch, start, probe; commit, or restore and probe the old one.
 */
static void
upd_install(struct api *a, struct httpd_req *r, struct upd_req *u, const struct release_info *ri,
    struct api_outcome *oc)
{
	struct release_info old;
	char err[512], reason[600], msg[900];
	char *body = NULL;
	uint64_t gen = 0;
	int64_t t;
	int have_old, ok;

	have_old = store_release_read(&a->store, "active", &old, err, sizeof(err)) == 1;
	api_set_phase(a, "switching");
	t = mono_ms();
	if (supervisor_stop(a->sv, err, sizeof(err)) != 0) {
		upd_refuse(a, r, u, 500, err, NULL);
		return;
	}
	if (store_update_switch(&a->store, &u->op, err, sizeof(err)) != 0) {
		char err2[256];

		/* Put everything back as it was (the journal knows where things are). */
		if (store_update_restore(&a->store, &u->op, err2, sizeof(err2)) != 0) {
			log_warnx("update %s: restore after failed switch: %s", u->id, err2);
		}
		u->staging = 0;
		if (have_old && api_agent_start(a, &gen, err2, sizeof(err2)) != 0) {
			log_warnx("restart old agent: %s", err2);
		}
		upd_refuse(a, r, u, errno == ENOSPC ? 507 : 500, err, NULL);
		return;
	}
	u->staging = 0;
	oc->switch_ms = mono_ms() - t;
	api_set_phase(a, "probing");
	t = mono_ms();
	ok = api_agent_start(a, &gen, err, sizeof(err)) == 0;
	if (ok) {
		testhook_point("update.agent_started");
		ok = api_probe(a, gen, ri, &body, reason, sizeof(reason));
	}
	if (ok) {
		oc->probe_ms = mono_ms() - t;
		testhook_point("update.probe_passed");
		if (store_update_commit(&a->store, &u->op, err, sizeof(err)) != 0) {
			/* The release runs and passed; recovery finishes the commit at the next start. */
			log_warnx("update %s: commit: %s", u->id, err);
		}
		pthread_mutex_lock(&a->mu);
		a->both_bad = 0;
		pthread_mutex_unlock(&a->mu);
		oc->result = "updated";
		api_history(a, oc);
		log_info("update %s: %s (%s) is active", u->id, ri->version, ri->sha256);
		upd_respond_release(a, r, "updated", body);
		free(body);
		return;
	}
	if (gen == 0) {
		api_fmt(reason, sizeof(reason), "agent did not start: %s", err);
	}
	oc->probe_ms = mono_ms() - t;
	log_warnx("update %s: new release failed: %s", u->id, reason);
	api_set_phase(a, "restoring");
	if (supervisor_stop(a->sv, err, sizeof(err)) != 0) {
		log_warnx("stop failed agent: %s", err);
	}
	if (store_update_restore(&a->store, &u->op, err, sizeof(err)) != 0) {
		api_fmt(msg, sizeof(msg), "new release failed (%s); restoring failed: %s", reason,
		    err);
		oc->result = "failed";
		oc->error = msg;
		api_history(a, oc);
		httpd_respond_error_detail(r, 500, msg, body, 0);
		free(body);
		return;
	}
	if (!have_old) {
		api_fmt(msg, sizeof(msg),
		    "release failed its probe and there is no previous release: %s", reason);
		oc->result = "failed";
		oc->error = msg;
		api_history(a, oc);
		httpd_respond_error_detail(r, 422, msg, body, 0);
		free(body);
		return;
	}
	free(body);
	body = NULL;
	{
		char reason2[600];

		gen = 0;
		if (api_agent_start(a, &gen, err, sizeof(err)) == 0 &&
		    api_probe(a, gen, &old, &body, reason2, sizeof(reason2))) {
			api_fmt(msg, sizeof(msg), "new release failed its probe: %s", reason);
			oc->result = "rolled_back";
			oc->error = msg;
			api_history(a, oc);
			httpd_respond_error_detail(r, 409, msg, body, 1);
			free(body);
			return;
		}
		if (gen == 0) {
			api_fmt(reason2, sizeof(reason2), "agent did not start: %s", err);
		}
		pthread_mutex_lock(&a->mu);
		a->both_bad = 1;
		pthread_mutex_unlock(&a->mu);
		api_fmt(msg, sizeof(msg),
		    "new release failed its probe (%.300s) and the restored release failed too "
		    "(%.300s)",
		    reason, reason2);
		oc->result = "both_bad";
		oc->error = msg;
		api_history(a, oc);
		log_warnx("update %s: both releases bad: %s", u->id, msg);
		httpd_respond_error_detail(r, 500, msg, body, 0);
		free(body);
	}
}

static void
upd_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	struct upd_req *u = httpd_req_data(r);
	struct api_outcome oc;
	struct release_info ri;
	struct release_manifest m;
	char err[512], digest[65], stamp[32];
	char *out = NULL;
	enum extract_status st;
	int64_t t;

	if (!u->have_tarball) {
		httpd_respond_error_detail(r, 400, "missing or empty field 'tarball'", NULL, 0);
		return;
	}
	u->upload_ms = mono_ms() - u->started;
	st = extract_finish(u->x, digest, NULL, NULL, err, sizeof(err));
	u->x = NULL;
	if (st != EXTRACT_OK) {
		upd_refuse(a, r, u, upload_status_of(st), err, NULL);
		return;
	}
	if (!u->have_sha256 || !is_hex_len(u->sha256, 64)) {
		upd_refuse(a, r, u, 400,
		    u->have_sha256 ? "field 'sha256' must be 64 hex digits" : "missing field 'sha256'",
		    NULL);
		return;
	}
	for (char *p = u->sha256; *p != '\0'; p++) {
		*p = (char)tolower((unsigned char)*p);
	}
	if (strcmp(digest, u->sha256) != 0) {
		api_fmt(err, sizeof(err), "sha256 mismatch: the upload has %s", digest);
		upd_refuse(a, r, u, 422, err, NULL);
		return;
	}
	api_set_phase(a, "preflight");
	if (api_read_manifest(a, "active.new", &m, err, sizeof(err)) != 0) {
		upd_refuse(a, r, u, 422, err, NULL);
		return;
	}
	memset(&ri, 0, sizeof(ri));
	memcpy(ri.id, u->id, sizeof(ri.id));
	api_fmt(ri.sha, sizeof(ri.sha), "%s", u->sha);
	memcpy(ri.sha256, digest, sizeof(ri.sha256));
	memcpy(ri.version, m.version, sizeof(ri.version));
	memcpy(ri.name, m.name, sizeof(ri.name));
	iso8601_utc(time(NULL), stamp, sizeof(stamp));
	api_fmt(ri.installed_at, sizeof(ri.installed_at), "%s", stamp);
	api_fmt(ri.installed_by, sizeof(ri.installed_by), "%s", api_caller(r));
	if (store_release_write(&a->store, "active.new", &ri) != 0) {
		api_fmt(err, sizeof(err), "write release.json: %s", strerror(errno));
		upd_refuse(a, r, u, errno == ENOSPC ? 507 : 500, err, NULL);
		return;
	}
	out = calloc(1, API_PREFLIGHT_OUT);
	if (out == NULL) {
		upd_refuse(a, r, u, 500, "out of memory", NULL);
		return;
	}
	t = mono_ms();
	if (api_preflight(a, &m, out, API_PREFLIGHT_OUT, err, sizeof(err)) != 0) {
		upd_refuse(a, r, u, 422, err, out);
		free(out);
		return;
	}
	free(out);
	upd_outcome_init(&oc, u, r);
	oc.version = ri.version;
	oc.preflight_ms = mono_ms() - t;
	upd_install(a, r, u, &ri, &oc);
}

static void
upd_cleanup(struct httpd_req *r, void *arg, int completed)
{
	struct api *a = arg;
	struct upd_req *u = httpd_req_data(r);

	(void)completed;
	if (u == NULL) {
		return;
	}
	upd_drop_staging(a, u);
	if (u->locked) {
		api_unlock(a);
	}
	free(u);
	httpd_req_set_data(r, NULL);
}

/* ---- POST /rollback ---- */

static int
rb_begin(struct httpd_req *r, void *arg)
{
	return api_op_begin(arg, r, "rollback");
}

static void
rb_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	struct upd_req *u = httpd_req_data(r);
	struct release_info act, prev;
	struct journal_op op;
	struct api_outcome oc;
	char err[512], reason[600], msg[900];
	char *body = NULL;
	uint64_t gen = 0;
	int ok;

	memset(&oc, 0, sizeof(oc));
	oc.kind = "rollback";
	oc.id = u->id;
	oc.caller = api_caller(r);
	oc.started = u->started;
	if (store_release_read(&a->store, "prev", &prev, err, sizeof(err)) != 1 ||
	    store_release_read(&a->store, "active", &act, err, sizeof(err)) != 1) {
		httpd_respond_error_detail(r, 404, "no previous release to roll back to", NULL, 0);
		return;
	}
	oc.sha256 = prev.sha256;
	oc.sha = prev.sha;
	oc.version = prev.version;
	api_set_phase(a, "switching");
	if (supervisor_stop(a->sv, err, sizeof(err)) != 0) {
		httpd_respond_error_detail(r, 500, err, NULL, 0);
		return;
	}
	memset(&op, 0, sizeof(op));
	memcpy(op.id, u->id, sizeof(op.id));
	if (store_rollback_begin(&a->store, &op, api_caller(r), err, sizeof(err)) != 0) {
		char err2[256];

		if (api_agent_start(a, &gen, err2, sizeof(err2)) != 0) {
			log_warnx("restart agent: %s", err2);
		}
		httpd_respond_error_detail(r, 500, err, NULL, 0);
		return;
	}
	api_set_phase(a, "probing");
	ok = api_agent_start(a, &gen, err, sizeof(err)) == 0;
	if (ok) {
		testhook_point("rollback.agent_started");
		ok = api_probe(a, gen, &prev, &body, reason, sizeof(reason));
	}
	if (ok) {
		testhook_point("rollback.probe_passed");
		if (store_rollback_commit(&a->store, &op, err, sizeof(err)) != 0) {
			log_warnx("rollback %s: commit: %s", u->id, err);
		}
		pthread_mutex_lock(&a->mu);
		a->both_bad = 0;
		pthread_mutex_unlock(&a->mu);
		oc.result = "rolled_back";
		api_history(a, &oc);
		upd_respond_release(a, r, "rolled_back", body);
		free(body);
		return;
	}
	if (gen == 0) {
		api_fmt(reason, sizeof(reason), "agent did not start: %s", err);
	}
	free(body);
	body = NULL;
	api_set_phase(a, "restoring");
	if (supervisor_stop(a->sv, err, sizeof(err)) != 0) {
		log_warnx("stop agent: %s", err);
	}
	if (store_rollback_restore(&a->store, &op, err, sizeof(err)) != 0) {
		api_fmt(msg, sizeof(msg), "previous release failed (%s); restoring failed: %s",
		    reason, err);
		oc.result = "failed";
		oc.error = msg;
		api_history(a, &oc);
		httpd_respond_error_detail(r, 500, msg, NULL, 0);
		return;
	}
	gen = 0;
	{
		char reason2[600];

		if (api_agent_start(a, &gen, err, sizeof(err)) == 0 &&
		    api_probe(a, gen, &act, &body, reason2, sizeof(reason2))) {
			api_fmt(msg, sizeof(msg), "previous release failed its probe: %s", reason);
			oc.result = "restored";
			oc.error = msg;
			api_history(a, &oc);
			httpd_respond_error_detail(r, 409, msg, body, 1);
			free(body);
			return;
		}
		if (gen == 0) {
			api_fmt(reason2, sizeof(reason2), "agent did not start: %s", err);
		}
		pthread_mutex_lock(&a->mu);
		a->both_bad = 1;
		pthread_mutex_unlock(&a->mu);
		api_fmt(msg, sizeof(msg),
		    "previous release failed its probe (%.300s) and the restored one failed too "
		    "(%.300s)",
		    reason, reason2);
		oc.result = "both_bad";
		oc.error = msg;
		api_history(a, &oc);
		httpd_respond_error_detail(r, 500, msg, body, 0);
		free(body);
	}
}

/* ---- GET ---- */

static cJSON *
api_releases_json(struct api *a)
{
	static const char *const slots[] = { "active", "prev" };
	cJSON *arr = cJSON_CreateArray();
	struct release_info ri;
	char err[256];

	if (arr == NULL) {
		return NULL;
	}
	for (size_t i = 0; i < ARRAY_LEN(slots); i++) {
		cJSON *o;

		if (store_release_read(&a->store, slots[i], &ri, err, sizeof(err)) != 1) {
			continue;
		}
		o = release_record_json(&ri, slots[i]);
		if (o == NULL) {
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static void
health_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	struct supervisor_status st;
	cJSON *o = cJSON_CreateObject(), *ag = NULL, *op = NULL, *rel;
	char last_probe[600], op_id[JOURNAL_ID_LEN];
	const char *op_kind, *op_phase, *status;
	int busy, both_bad;
	int64_t op_ms;

	supervisor_status(a->sv, &st);
	pthread_mutex_lock(&a->mu);
	busy = a->busy;
	memcpy(op_id, a->op_id, sizeof(op_id));
	op_kind = a->op_kind;
	op_phase = a->op_phase;
	op_ms = mono_ms() - a->op_started;
	both_bad = a->both_bad;
	memcpy(last_probe, a->last_probe, sizeof(last_probe));
	pthread_mutex_unlock(&a->mu);

	rel = api_releases_json(a);
	if (both_bad) {
		status = "both_bad";
	} else if (rel != NULL && cJSON_GetArraySize(rel) == 0) {
		status = "no_release";
	} else if (st.crash_looping) {
		status = "degraded";
	} else {
		status = "ok";
	}
	if (o == NULL || rel == NULL || json_add_str(o, "status", status) != 0 ||
	    json_add_str(o, "role", "updater") != 0 ||
	    json_add_str(o, "version", tandem_version()) != 0 ||
	    json_add_item(o, "releases", rel) != 0 || json_add_bool(o, "both_bad", both_bad) != 0 ||
	    (ag = json_add_object(o, "agent")) == NULL || supervisor_status_json(&st, ag) != 0 ||
	    json_add_str(ag, "last_probe", last_probe[0] != '\0' ? last_probe : NULL) != 0 ||
	    selfupdate_health_json(a->su, o) != 0) {
		rel = NULL;
		goto fail;
	}
	if (busy) {
		op = json_add_object(o, "operation");
		if (op == NULL || json_add_str(op, "id", op_id) != 0 ||
		    json_add_str(op, "kind", op_kind) != 0 ||
		    json_add_str(op, "phase", op_phase) != 0 ||
		    json_add_int(op, "elapsed_ms", op_ms) != 0) {
			goto fail;
		}
	} else if (json_add_item(o, "operation", cJSON_CreateNull()) != 0) {
		goto fail;
	}
	httpd_respond_json(r, 200, o);
	return;
fail:
	cJSON_Delete(rel);
	cJSON_Delete(o);
	httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
}

static void
releases_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	cJSON *o = cJSON_CreateObject();

	if (api_authorise(a, r) != 0) {
		cJSON_Delete(o);
		return;
	}
	if (o == NULL || json_add_item(o, "releases", api_releases_json(a)) != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

static void
history_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	cJSON *o = cJSON_CreateObject();

	if (api_authorise(a, r) != 0) {
		cJSON_Delete(o);
		return;
	}
	if (o == NULL || json_add_item(o, "history", journal_history_read(a->store.root)) != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "cannot read the history", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

/* ---- the agent record for adoption (state/agent.json) ---- */

struct agent_rec {
	int64_t pid;
	char start_time[32];
	char boot_id[40];
};

static void
api_on_event(void *arg, const struct supervisor_event *ev)
{
	struct api *a = arg;
	char p[PATH_MAX], buf[256];
	int n;

	if (ev->kind == SUPERVISOR_EV_CRASH_LOOP) {
		log_warnx("agent is crash-looping");
		return;
	}
	if (ev->kind != SUPERVISOR_EV_SPAWNED) {
		return;
	}
	api_fmt(p, sizeof(p), "%s/state/agent.json", a->store.root);
	n = snprintf(buf, sizeof(buf), "{\"pid\":%lld,\"start_time\":\"%llu\",\"boot_id\":\"%s\"}\n",
	    (long long)ev->pid, ev->start_time, a->boot_id);
	if (n > 0 && (size_t)n < sizeof(buf) && fs_write_atomic(p, buf, (size_t)n, 0600) != 0) {
		log_warn("write %s", p);
	}
}

/* Adopt or stop the agent an earlier updater left behind. 1: adopted. */
static int
api_adopt(struct api *a)
{
	static const struct json_field fields[] = {
		JSON_F_INT("pid", struct agent_rec, pid, JSON_REQUIRED, 1, INT32_MAX),
		JSON_F_STR("start_time", struct agent_rec, start_time, JSON_REQUIRED, 1),
		JSON_F_STR("boot_id", struct agent_rec, boot_id, JSON_REQUIRED, 0),
	};
	struct agent_rec rec;
	struct release_manifest m;
	cJSON *o = NULL;
	char p[PATH_MAX], exe[PATH_MAX], err[256];
	char *buf = NULL;
	size_t len = 0;
	long long st;
	int adopted = 0;

	api_fmt(p, sizeof(p), "%s/state/agent.json", a->store.root);
	if (fs_read_file(p, 4096, &buf, &len) != 0) {
		return 0;
	}
	memset(&rec, 0, sizeof(rec));
	o = json_parse_object(buf, len, err, sizeof(err));
	if (o == NULL || json_read_fields(o, fields, ARRAY_LEN(fields), 0, &rec, err,
			     sizeof(err)) != 0 ||
	    parse_ll(rec.start_time, 0, LLONG_MAX, &st) != 0 ||
	    strcmp(rec.boot_id, a->boot_id) != 0) {
		goto out; /* unreadable, or from before a reboot: means nothing now */
	}
	if (api_read_manifest(a, "active", &m, err, sizeof(err)) == 0) {
		api_fmt(exe, sizeof(exe), "%s/current/%s", a->store.root, m.entrypoint);
		if (supervisor_adopt(a->sv, (pid_t)rec.pid, (unsigned long long)st, exe, err,
			sizeof(err)) == 0) {
			log_info("adopted agent pid %lld", (long long)rec.pid);
			adopted = 1;
			goto out;
		}
		if (errno == ESRCH) {
			goto out;
		}
		log_warnx("not adopting agent pid %lld: %s", (long long)rec.pid, err);
	}
	if (supervisor_kill_stray(a->sv, (pid_t)rec.pid, (unsigned long long)st, err,
		sizeof(err)) != 0) {
		log_warnx("stop stray agent pid %lld: %s", (long long)rec.pid, err);
	}
out:
	cJSON_Delete(o);
	free(buf);
	return adopted;
}

/* ---- a seed tarball for a fresh install ---- */

/*
 * Install SEED (a release tarball on the local disk) as the first release:
 * the same rules as a push (extraction, manifest, preflight, switch, probe),
 * without a digest to compare against (the operator handed us the file).
 * Returns 0 when it is active and healthy, -1 with ERR otherwise (nothing
 * is left installed then).
 */
static int
api_seed(struct api *a, const char *seed, char *err, size_t errlen)
{
	struct journal_op op;
	struct extract_limits lim;
	struct extract *x = NULL;
	struct release_info ri;
	struct release_manifest m;
	char buf[64 * 1024], digest[65], reason[600], e2[256];
	char *out = NULL, *body = NULL;
	enum extract_status st;
	uint64_t gen = 0;
	ssize_t n;
	int fd = -1, staged = 0, rc = -1;

	memset(&op, 0, sizeof(op));
	if (store_update_begin(&a->store, &op, "", "seed", err, errlen) != 0) {
		return -1;
	}
	staged = 1;
	lim.max_unpacked = (uint64_t)a->cfg->max_unpacked;
	lim.max_entries = (uint64_t)a->cfg->max_entries;
	lim.min_free = (uint64_t)a->cfg->min_free;
	fd = open(seed, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		api_fmt(err, errlen, "open %s: %s", seed, strerror(errno));
		goto out;
	}
	if (extract_begin(STORE_STAGING_REL, &lim, &x, err, errlen) != 0) {
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (extract_feed(x, buf, (size_t)n) != 0) {
			break;
		}
	}
	if (n < 0) {
		api_fmt(err, errlen, "read %s: %s", seed, strerror(errno));
		goto out;
	}
	st = extract_finish(x, digest, NULL, NULL, err, errlen);
	x = NULL;
	if (st != EXTRACT_OK || api_read_manifest(a, "active.new", &m, err, errlen) != 0) {
		goto out;
	}
	memset(&ri, 0, sizeof(ri));
	memcpy(ri.id, op.id, sizeof(ri.id));
	api_fmt(ri.sha, sizeof(ri.sha), "seed");
	memcpy(ri.sha256, digest, sizeof(ri.sha256));
	memcpy(ri.version, m.version, sizeof(ri.version));
	memcpy(ri.name, m.name, sizeof(ri.name));
	iso8601_utc(time(NULL), ri.installed_at, sizeof(ri.installed_at));
	api_fmt(ri.installed_by, sizeof(ri.installed_by), "seed");
	out = calloc(1, API_PREFLIGHT_OUT);
	if (out == NULL || store_release_write(&a->store, "active.new", &ri) != 0) {
		api_fmt(err, errlen, "write release.json: %s", strerror(errno));
		goto out;
	}
	if (api_preflight(a, &m, out, API_PREFLIGHT_OUT, err, errlen) != 0) {
		goto out;
	}
	memcpy(op.sha256, digest, sizeof(op.sha256));
	if (store_update_switch(&a->store, &op, err, errlen) != 0) {
		if (store_update_restore(&a->store, &op, e2, sizeof(e2)) != 0) {
			log_warnx("seed: restore: %s", e2);
		}
		staged = 0;
		goto out;
	}
	staged = 0;
	if (api_agent_start(a, &gen, err, errlen) == 0 &&
	    api_probe(a, gen, &ri, &body, reason, sizeof(reason))) {
		if (store_update_commit(&a->store, &op, err, errlen) != 0) {
			log_warnx("seed: commit: %s", err);
		}
		log_info("seed %s: %s (%s) is active", seed, ri.version, ri.sha256);
		rc = 0;
		goto out;
	}
	if (gen != 0) {
		api_fmt(err, errlen, "seed release failed its probe: %s", reason);
	}
	if (supervisor_stop(a->sv, e2, sizeof(e2)) != 0) {
		log_warnx("seed: stop agent: %s", e2);
	}
	if (store_update_restore(&a->store, &op, e2, sizeof(e2)) != 0) {
		log_warnx("seed: restore: %s", e2);
	}
out:
	if (x != NULL) {
		extract_abort(x);
	}
	if (staged && store_update_abort(&a->store, &op, e2, sizeof(e2)) != 0) {
		log_warnx("seed: cleanup: %s", e2);
	}
	if (fd >= 0) {
		close(fd);
	}
	free(out);
	free(body);
	return rc;
}

/* ---- lifecycle ---- */

int
api_new(const struct updater_config *cfg, struct api **out, char *err, size_t errlen)
{
	struct api *a = NULL;
	struct tls_opts to;
	struct supervisor_opts so;
	struct proc_spec spec;
	const char *argv[] = { "/bin/false", NULL };
	char what[512];

	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		api_fmt(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&a->mu, NULL);
	a->cfg = cfg;
	if (store_init(&a->store, cfg->install_dir, (unsigned)cfg->failed_keep, err, errlen) != 0) {
		goto fail;
	}
	if (store_recover(&a->store, what, sizeof(what), err, errlen) != 0) {
		goto fail;
	}
	if (what[0] != '\0') {
		log_warnx("recovery: %s", what);
	}
	{
		const struct selfupdate_hooks hooks = { api_su_lock, api_su_unlock, api_su_phase, a };

		if (selfupdate_new(cfg, &hooks, &a->su, err, errlen) != 0) {
			goto fail;
		}
	}
	if (cfg->agent_log != NULL) {
		api_fmt(a->agent_log, sizeof(a->agent_log), "%s", cfg->agent_log);
	} else {
		api_fmt(a->agent_log, sizeof(a->agent_log), "%s/state/agent.log", cfg->install_dir);
	}
	if (split_host_port(cfg->agent_probe, a->probe_host, sizeof(a->probe_host), a->probe_port,
		sizeof(a->probe_port)) != 0) {
		api_fmt(err, errlen, "agent_probe: bad address");
		goto fail;
	}
	if (a->probe_host[0] == '\0') {
		api_fmt(a->probe_host, sizeof(a->probe_host), "127.0.0.1");
	}
	if (proc_boot_id(a->boot_id, sizeof(a->boot_id)) != 0) {
		a->boot_id[0] = '\0';
	}
	tls_opts_init(&to);
	to.ca_file = cfg->ca;
	to.cert_file = cfg->cert;
	to.key_file = cfg->key;
	to.master_cn = cfg->master_cn;
	if (tls_server_new(&to, &a->srv_tls, err, errlen) != 0 ||
	    tls_client_new(&to, &a->cli_tls, err, errlen) != 0) {
		goto fail;
	}
	proc_spec_init(&spec);
	spec.argv = argv; /* replaced from the manifest before every start */
	supervisor_opts_init(&so);
	so.name = "agent";
	so.spec = &spec;
	so.cfg.stop_grace_ms = cfg->stop_grace_ms;
	so.cfg.backoff_min_ms = cfg->restart_backoff_min_ms;
	so.cfg.backoff_max_ms = cfg->restart_backoff_max_ms;
	so.cfg.min_spacing_ms = cfg->restart_min_spacing_ms;
	so.cfg.crash_loop_count = (unsigned)cfg->crash_loop_count;
	so.cfg.crash_loop_window_ms = cfg->crash_loop_window_ms;
	so.cfg.crash_loop_retry_ms = cfg->crash_loop_retry_ms;
	if (sup_config_check(&so.cfg, err, errlen) != 0) {
		goto fail;
	}
	so.on_event = api_on_event;
	so.arg = a;
	if (supervisor_new(&so, &a->sv, err, errlen) != 0) {
		goto fail;
	}
	*out = a;
	return 0;
fail:
	api_free(a, 0);
	return -1;
}

int
api_start(struct api *a, const char *seed, char *err, size_t errlen)
{
	const struct updater_config *cfg = a->cfg;
	const unsigned master = TLS_ROLEBIT(TLS_ROLE_MASTER);
	const struct httpd_route routes[] = {
		{ "GET", "/health", TLS_ROLES_ANY, 0, 0, 0, NULL, NULL, health_end, NULL, a },
		{ "GET", "/releases", master, 0, 0, 0, NULL, NULL, releases_end, NULL, a },
		{ "GET", "/history", master, 0, 0, 0, NULL, NULL, history_end, NULL, a },
		{ "POST", "/update", master, (uint64_t)cfg->max_upload + API_BODY_SLACK,
		    (int)cfg->request_timeout_ms, 1, upd_begin, upd_data, upd_end, upd_cleanup, a },
		{ "POST", "/rollback", master, 0, (int)cfg->request_timeout_ms, 0, rb_begin, NULL,
		    rb_end, upd_cleanup, a },
	};
	struct httpd_opts ho;
	struct release_info ri;
	uint64_t gen;
	char serr[256];
	int have_active;

	_Static_assert(sizeof(routes) + sizeof(a->routes[0]) == sizeof(a->routes),
	    "route table size");
	selfupdate_test_kind();
	memcpy(a->routes, routes, sizeof(routes));
	selfupdate_route(a->su, &a->routes[ARRAY_LEN(routes)]);
	have_active = store_release_read(&a->store, "active", &ri, serr, sizeof(serr)) == 1;
	if (seed != NULL && !have_active) {
		/* The seeded agent runs and passed its probe: nothing to adopt or start. */
		if (api_seed(a, seed, err, errlen) != 0) {
			return -1;
		}
	} else if (have_active) {
		/* The spec first: an adopted agent that dies is restarted from it. */
		if (api_agent_spec(a, serr, sizeof(serr)) != 0) {
			log_warnx("agent: %s", serr);
		}
		if (!api_adopt(a) && api_agent_start(a, &gen, serr, sizeof(serr)) != 0) {
			log_warnx("agent: %s", serr);
		}
	} else {
		api_adopt(a); /* no release: an agent left behind can only be a stray */
	}
	httpd_opts_init(&ho);
	ho.listen = cfg->listen;
	ho.listen_fd = selfupdate_listen_fd(); /* from tandem-launcher, else -1 */
	ho.tls = a->srv_tls;
	ho.routes = a->routes;
	ho.nroutes = ARRAY_LEN(a->routes);
	ho.name = "updater";
	ho.error_style = HTTPD_ERRORS_UPDATER;
	ho.max_conns = (unsigned)cfg->max_conns;
	ho.request_timeout_ms = (int)cfg->request_timeout_ms;
	return httpd_start(&ho, &a->httpd, err, errlen);
}

int
api_port(const struct api *a)
{
	return a->httpd != NULL ? httpd_port(a->httpd) : -1;
}

void
api_free(struct api *a, int grace_ms)
{
	char err[256];

	if (a == NULL) {
		return;
	}
	if (a->httpd != NULL) {
		httpd_stop(a->httpd, grace_ms, 0);
	}
	if (a->sv != NULL) {
		/* A self-update hands the running agent over to the next updater. */
		if (a->cfg->stop_agent_on_exit && !selfupdate_handing_over(a->su) &&
		    supervisor_stop(a->sv, err, sizeof(err)) != 0) {
			log_warnx("stop agent: %s", err);
		}
		supervisor_free(a->sv);
	}
	selfupdate_free(a->su);
	tls_ctx_free(a->srv_tls);
	tls_ctx_free(a->cli_tls);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
