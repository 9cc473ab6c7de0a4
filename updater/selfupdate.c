#include "updater/selfupdate.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/testhook.h"
#include "common/proc.h"
#include "common/release.h"
#include "common/tls.h"
#include "common/version.h"
#include "updater/extract.h"
#include "updater/store.h"
#include "updater/upload.h"

#ifndef TANDEM_UPDATER_BROKEN
#define TANDEM_UPDATER_BROKEN SELFUPDATE_BROKEN_NONE
#endif
#if TANDEM_UPDATER_BROKEN < SELFUPDATE_BROKEN_NONE || \
    TANDEM_UPDATER_BROKEN > SELFUPDATE_BROKEN_CRASH_LATER
#error "TANDEM_UPDATER_BROKEN must be 0..3"
#endif

#define SU_RECORD_MAX 4096
#define SU_PREFLIGHT_OUT (16 * 1024)
#define SU_MAX_SHA_LABEL 255
#define SU_BODY_SLACK (64 * 1024)

static void su_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
su_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/*
 * Crash tests: the store's points of a self-update are named "self.<point>"
 * ("self.update.exchanged"), apart from the same points of an agent update.
 */
static void
su_hook_enter(void)
{
	testhook_scope_enter("self");
}

static void
su_hook_leave(void)
{
	testhook_scope_leave();
}

/* ---- records ---- */

static void
su_state_path(char *buf, size_t len, const char *tree_root, const char *name)
{
	su_fmt(buf, len, "%s/state/%s", tree_root, name);
}

int
selfupdate_handover_write(const char *tree_root, const struct selfupdate_handover *h)
{
	char p[PATH_MAX], *txt = NULL;
	cJSON *o = cJSON_CreateObject();
	int rc = -1;

	su_state_path(p, sizeof(p), tree_root, SELFUPDATE_HANDOVER);
	if (o == NULL || json_add_str(o, "op_id", h->op_id) != 0 ||
	    json_add_str(o, "new_version", h->new_version) != 0 ||
	    json_add_str(o, "old_version", h->old_version) != 0 ||
	    json_add_str(o, "sha256", h->sha256) != 0 || json_add_int(o, "starts", h->starts) != 0 ||
	    json_add_int(o, "queued_at", h->queued_at) != 0 ||
	    (txt = json_print_compact(o)) == NULL) {
		errno = ENOMEM;
		goto out;
	}
	rc = fs_write_atomic(p, txt, strlen(txt), 0600);
out:
	free(txt);
	cJSON_Delete(o);
	return rc;
}

int
selfupdate_handover_read(const char *tree_root, struct selfupdate_handover *h, char *err,
    size_t errlen)
{
	static const struct json_field fields[] = {
		JSON_F_STR("op_id", struct selfupdate_handover, op_id, JSON_REQUIRED, 1),
		JSON_F_STR("new_version", struct selfupdate_handover, new_version, JSON_REQUIRED, 1),
		JSON_F_STR("old_version", struct selfupdate_handover, old_version, JSON_REQUIRED, 0),
		JSON_F_STR("sha256", struct selfupdate_handover, sha256, JSON_REQUIRED, 0),
		JSON_F_INT("starts", struct selfupdate_handover, starts, JSON_REQUIRED, 0, 1000000),
		JSON_F_INT("queued_at", struct selfupdate_handover, queued_at, JSON_REQUIRED, 0,
		    LLONG_MAX),
	};
	struct selfupdate_handover tmp;
	char p[PATH_MAX], jerr[256];
	char *buf = NULL;
	size_t len = 0;
	cJSON *o;

	su_state_path(p, sizeof(p), tree_root, SELFUPDATE_HANDOVER);
	if (fs_read_file(p, SU_RECORD_MAX, &buf, &len) != 0) {
		if (errno == ENOENT) {
			return 0;
		}
		su_fmt(err, errlen, "read %s: %s", p, strerror(errno));
		return -1;
	}
	memset(&tmp, 0, sizeof(tmp));
	o = json_parse_object(buf, len, jerr, sizeof(jerr));
	free(buf);
	if (o == NULL ||
	    json_read_fields(o, fields, ARRAY_LEN(fields), 0, &tmp, jerr, sizeof(jerr)) != 0) {
		su_fmt(err, errlen, "%s: %s", p, jerr);
		cJSON_Delete(o);
		return -1;
	}
	cJSON_Delete(o);
	*h = tmp;
	return 1;
}

int
selfupdate_handover_clear(const char *tree_root)
{
	char p[PATH_MAX], dir[PATH_MAX];

	su_state_path(p, sizeof(p), tree_root, SELFUPDATE_HANDOVER);
	if (unlink(p) != 0 && errno != ENOENT) {
		return -1;
	}
	su_fmt(dir, sizeof(dir), "%s/state", tree_root);
	return fs_fsync_dir(dir);
}

int
selfupdate_record(const char *tree_root, const char *history_root, const char *id,
    const char *result, const char *from_version, const char *to_version, const char *sha256,
    const char *reason)
{
	char p[PATH_MAX], stamp[32], *txt = NULL;
	cJSON *o = cJSON_CreateObject(), *e = cJSON_CreateObject();
	int rc = -1;

	iso8601_utc(time(NULL), stamp, sizeof(stamp));
	su_state_path(p, sizeof(p), tree_root, SELFUPDATE_LAST);
	if (o == NULL || e == NULL || json_add_str(o, "id", id) != 0 ||
	    json_add_str(o, "result", result) != 0 ||
	    json_add_str(o, "from_version", from_version) != 0 ||
	    json_add_str(o, "to_version", to_version) != 0 ||
	    json_add_str(o, "reason", reason) != 0 || json_add_str(o, "at", stamp) != 0 ||
	    (txt = json_print_compact(o)) == NULL || json_add_str(e, "id", id) != 0 ||
	    json_add_str(e, "kind", "update-self") != 0 ||
	    json_add_str(e, "finished_at", stamp) != 0 || json_add_str(e, "sha256", sha256) != 0 ||
	    json_add_str(e, "version", to_version) != 0 ||
	    json_add_str(e, "from_version", from_version) != 0 ||
	    json_add_str(e, "result", result) != 0 || json_add_str(e, "error", reason) != 0) {
		errno = ENOMEM;
		goto out;
	}
	if (fs_write_atomic(p, txt, strlen(txt), 0600) != 0 ||
	    journal_history_append(history_root, e, 0) != 0) {
		goto out;
	}
	rc = 0;
out:
	free(txt);
	cJSON_Delete(o);
	cJSON_Delete(e);
	return rc;
}

int
selfupdate_listen_fd(void)
{
	const char *v = getenv(SELFUPDATE_ENV_LISTEN_FD);
	long long fd;
	int acc = 0;
	socklen_t sl = sizeof(acc);

	if (v == NULL || v[0] == '\0') {
		return -1;
	}
	if (parse_ll(v, 3, INT_MAX, &fd) != 0) {
		log_warnx("%s=%s: not a descriptor number", SELFUPDATE_ENV_LISTEN_FD, v);
		return -1;
	}
	if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) != 0 || acc != 1) {
		log_warnx("%s=%s: not a listening socket", SELFUPDATE_ENV_LISTEN_FD, v);
		return -1;
	}
	/* The agent and preflights must not inherit it (proc closes fds > 2, this is belt and braces). */
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) != 0) {
		log_warn("%s: FD_CLOEXEC", SELFUPDATE_ENV_LISTEN_FD);
		return -1;
	}
	return (int)fd;
}

void
selfupdate_test_kind(void)
{
#if TANDEM_UPDATER_BROKEN == SELFUPDATE_BROKEN_EXIT_AT_ONCE
	log_warnx("broken build (exit-at-once): exiting");
	_exit(3);
#elif TANDEM_UPDATER_BROKEN == SELFUPDATE_BROKEN_HANG
	log_warnx("broken build (hang): never serving");
	for (;;) {
		/* Blocked signals stay blocked: only SIGKILL ends this. */
		pause();
	}
#elif TANDEM_UPDATER_BROKEN == SELFUPDATE_BROKEN_CRASH_LATER
	log_warnx("broken build (crash-later): dying in %d s", SELFUPDATE_CRASH_LATER_S);
	alarm(SELFUPDATE_CRASH_LATER_S);
#endif
}

/* ---- the self-update ---- */

struct selfupdate {
	const struct updater_config *cfg;
	struct selfupdate_hooks hooks;
	struct store store; /* the updater's tree */
	atomic_int queued;
};

struct su_req {
	int locked;
	char id[JOURNAL_ID_LEN];
	char sha[SU_MAX_SHA_LABEL + 1];
	size_t sha_len;
	char sha256[72];
	size_t sha256_len;
	char confirm[16];
	size_t confirm_len;
	int have_sha256;
	int have_tarball;
	struct extract *x;
	struct journal_op op;
	int staging;
	int queued;
};

int
selfupdate_new(const struct updater_config *cfg, const struct selfupdate_hooks *hooks,
    struct selfupdate **out, char *err, size_t errlen)
{
	struct selfupdate *su = calloc(1, sizeof(*su));
	char root[PATH_MAX];

	if (su == NULL) {
		su_fmt(err, errlen, "out of memory");
		return -1;
	}
	su->cfg = cfg;
	su->hooks = *hooks;
	atomic_init(&su->queued, 0);
	su_fmt(root, sizeof(root), "%s/%s", cfg->install_dir, SELFUPDATE_TREE);
	if (store_init(&su->store, root, (unsigned)cfg->failed_keep, err, errlen) != 0) {
		free(su);
		return -1;
	}
	*out = su;
	return 0;
}

void
selfupdate_free(struct selfupdate *su)
{
	free(su);
}

int
selfupdate_handing_over(const struct selfupdate *su)
{
	return su != NULL && atomic_load(&su->queued) != 0;
}

static const char *
su_caller(struct httpd_req *r)
{
	const struct tls_identity *id = httpd_req_identity(r);

	return id != NULL ? id->fingerprint : "";
}

/* Master pins, as for /update. */
static int
su_authorise(struct selfupdate *su, struct httpd_req *r)
{
	const struct tls_identity *id = httpd_req_identity(r);

	if (su->cfg->master_fingerprints[0] == NULL) {
		return 0;
	}
	for (char **fp = su->cfg->master_fingerprints; *fp != NULL; fp++) {
		if (id != NULL && strcasecmp(*fp, id->fingerprint) == 0) {
			return 0;
		}
	}
	httpd_respond_error_detail(r, 403, "master certificate is not pinned on this updater",
	    NULL, 0);
	return -1;
}

static void
su_phase(struct selfupdate *su, const char *phase)
{
	if (su->hooks.set_phase != NULL) {
		su->hooks.set_phase(su->hooks.arg, phase);
	}
}

static void
su_drop_staging(struct selfupdate *su, struct su_req *q)
{
	char err[256];

	if (q->x != NULL) {
		extract_abort(q->x);
		q->x = NULL;
	}
	if (q->staging) {
		if (store_update_abort(&su->store, &q->op, err, sizeof(err)) != 0) {
			log_warnx("update-self %s: cleanup: %s", q->id, err);
		}
		q->staging = 0;
	}
}

static void
su_history_refused(struct selfupdate *su, struct su_req *q, const char *error)
{
	char stamp[32];
	cJSON *e = cJSON_CreateObject();

	iso8601_utc(time(NULL), stamp, sizeof(stamp));
	if (e == NULL || json_add_str(e, "id", q->id) != 0 ||
	    json_add_str(e, "kind", "update-self") != 0 ||
	    json_add_str(e, "finished_at", stamp) != 0 ||
	    json_add_str(e, "sha256", q->sha256) != 0 || json_add_str(e, "sha", q->sha) != 0 ||
	    json_add_str(e, "result", "refused") != 0 || json_add_str(e, "error", error) != 0) {
		log_warnx("history: out of memory");
	} else if (journal_history_append(su->cfg->install_dir, e, 0) != 0) {
		log_warn("history append");
	}
	cJSON_Delete(e);
}

static void
su_refuse(struct selfupdate *su, struct httpd_req *r, struct su_req *q, unsigned status,
    const char *error, const char *stderr_text)
{
	su_drop_staging(su, q);
	httpd_respond_error_detail(r, status, error, stderr_text, 0);
	if (q->have_tarball) {
		su_history_refused(su, q, error);
	}
	log_warnx("update-self %s refused (%u): %s", q->id, status, error);
}

static int
su_begin(struct httpd_req *r, void *arg)
{
	struct selfupdate *su = arg;
	struct su_req *q;

	if (su_authorise(su, r) != 0) {
		return -1;
	}
	if (selfupdate_listen_fd() < 0 || getenv(SELFUPDATE_ENV_CONFIG) == NULL) {
		httpd_respond_error_detail(r, 503,
		    "self-update needs tandem-launcher (this updater was not started by it)", NULL,
		    0);
		return -1;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return -1;
	}
	httpd_req_set_data(r, q);
	if (su->hooks.lock(su->hooks.arg, r, "update-self", q->id) != 0) {
		return -1;
	}
	q->locked = 1;
	return 0;
}

static int
su_tarball_start(struct selfupdate *su, struct httpd_req *r, struct su_req *q)
{
	struct extract_limits lim;
	struct selfupdate_handover h;
	char err[512];
	int rc;

	if (q->have_tarball) {
		httpd_respond_error_detail(r, 400, "more than one 'tarball' field", NULL, 0);
		return -1;
	}
	q->have_tarball = 1;
	if (selfupdate_handover_read(su->store.root, &h, err, sizeof(err)) != 0) {
		if (httpd_add_header(r, "Retry-After", "5") != 0) {
			log_warnx("cannot add Retry-After");
		}
		su_refuse(su, r, q, 503, "a self-update is still on probation", NULL);
		return -1;
	}
	if (upload_disk_check(su->store.root, su->cfg->min_free, err, sizeof(err)) != 0) {
		su_refuse(su, r, q, 507, err, NULL);
		return -1;
	}
	memcpy(q->op.id, q->id, sizeof(q->op.id));
	su_hook_enter();
	rc = store_update_begin(&su->store, &q->op, "", su_caller(r), err, sizeof(err));
	su_hook_leave();
	if (rc != 0) {
		su_refuse(su, r, q, errno == EEXIST ? 503 : 500, err, NULL);
		return -1;
	}
	q->staging = 1;
	su_phase(su, "receiving");
	upload_limits(su->cfg, &lim);
	if (extract_begin(SELFUPDATE_STAGING_REL, &lim, &q->x, err, sizeof(err)) != 0) {
		su_refuse(su, r, q, 500, err, NULL);
		return -1;
	}
	return 0;
}

static int
su_data(struct httpd_req *r, const struct httpd_part *part, const char *data, size_t len,
    void *arg)
{
	struct selfupdate *su = arg;
	struct su_req *q = httpd_req_data(r);
	char err[512], digest[65];

	if (part == NULL || part->name == NULL) {
		httpd_respond_error_detail(r, 400, "expected multipart/form-data", NULL, 0);
		return -1;
	}
	if (strcmp(part->name, "sha") == 0) {
		return upload_text(r, q->sha, sizeof(q->sha), &q->sha_len, "sha", data, len);
	}
	if (strcmp(part->name, "sha256") == 0) {
		q->have_sha256 = 1;
		return upload_text(r, q->sha256, sizeof(q->sha256), &q->sha256_len, "sha256", data,
		    len);
	}
	if (strcmp(part->name, "confirm_self") == 0) {
		return upload_text(r, q->confirm, sizeof(q->confirm), &q->confirm_len, "confirm_self",
		    data, len);
	}
	if (strcmp(part->name, "tarball") != 0) {
		httpd_respond_error_detail(r, 400, "unexpected form field", part->name, 0);
		return -1;
	}
	if (part->offset == 0 && su_tarball_start(su, r, q) != 0) {
		return -1;
	}
	if (q->x != NULL && extract_feed(q->x, data, len) != 0) {
		enum extract_status st = extract_finish(q->x, digest, NULL, NULL, err, sizeof(err));

		q->x = NULL;
		su_refuse(su, r, q, upload_status_of(st), err, NULL);
		return -1;
	}
	return 0;
}

/* The updater release in DIR: its manifest, with the updater program checked on disk. */
static int
su_read_manifest(const char *dir, struct release_manifest *m, char *err, size_t errlen)
{
	struct err e = ERR_INIT;

	if (release_manifest_read(dir, RELEASE_MF_UPDATER, m, &e) != 0) {
		su_fmt(err, errlen, "%s", err_msg(&e));
		return -1;
	}
	return 0;
}

int
selfupdate_read_entrypoint(const char *dir, char *entry, size_t entrylen, char *version,
    size_t versionlen, char *err, size_t errlen)
{
	struct release_manifest m;

	if (su_read_manifest(dir, &m, err, errlen) != 0) {
		return -1;
	}
	su_fmt(entry, entrylen, "%s", m.updater_entrypoint);
	su_fmt(version, versionlen, "%s", m.version);
	return 0;
}

/* The staged updater's --self-test with the running configuration. */
static int
su_preflight(struct selfupdate *su, const char *dir, const struct release_manifest *m, char *out,
    size_t outlen, char *err, size_t errlen)
{
	char prog[PATH_MAX], jerr[256], desc[96];
	const char *argv[8];
	struct proc_spec spec;
	size_t outn = 0;
	int status = 0;

	su_fmt(prog, sizeof(prog), "%s/%s", dir, m->updater_entrypoint);
	argv[0] = prog;
	argv[1] = "--self-test";
	argv[2] = "--config";
	argv[3] = getenv(SELFUPDATE_ENV_CONFIG);
	argv[4] = "--install-dir";
	argv[5] = su->cfg->install_dir;
	argv[6] = NULL;
	proc_spec_init(&spec);
	spec.argv = argv;
	spec.cwd = dir;
	if (proc_run_capture(&spec, (int)su->cfg->preflight_timeout_ms, out, outlen, &outn,
		&status, jerr, sizeof(jerr)) != 0) {
		su_fmt(err, errlen, "preflight: %s", jerr);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		su_fmt(err, errlen, "preflight %s --self-test %s", m->updater_entrypoint,
		    proc_status_str(status, desc, sizeof(desc)));
		return -1;
	}
	return 0;
}

static void
su_respond_queued(struct httpd_req *r, const struct release_info *ri)
{
	cJSON *o = cJSON_CreateObject(), *rel = release_record_json(ri, "active");

	if (o == NULL || json_add_str(o, "status", "self_update_queued") != 0 ||
	    json_add_str(o, "id", ri->id) != 0 ||
	    json_add_str(o, "from_version", tandem_version()) != 0 ||
	    json_add_str(o, "to_version", ri->version) != 0 ||
	    json_add_item(o, "release", rel) != 0 ||
	    json_add_str(o, "handover", "listen_fd") != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

static void
su_end(struct httpd_req *r, void *arg)
{
	struct selfupdate *su = arg;
	struct su_req *q = httpd_req_data(r);
	struct release_manifest m;
	struct release_info ri;
	struct selfupdate_handover h;
	char err[512], digest[65], dir[PATH_MAX];
	char *out = NULL;
	enum extract_status st;
	int rc;

	if (!q->have_tarball) {
		httpd_respond_error_detail(r, 400, "missing or empty field 'tarball'", NULL, 0);
		return;
	}
	st = extract_finish(q->x, digest, NULL, NULL, err, sizeof(err));
	q->x = NULL;
	if (st != EXTRACT_OK) {
		su_refuse(su, r, q, upload_status_of(st), err, NULL);
		return;
	}
	if (strcmp(q->confirm, "true") != 0) {
		su_refuse(su, r, q, 400, "field 'confirm_self' must be 'true' to replace the updater",
		    NULL);
		return;
	}
	if (!q->have_sha256 || !is_hex_len(q->sha256, 64)) {
		su_refuse(su, r, q, 400,
		    q->have_sha256 ? "field 'sha256' must be 64 hex digits" : "missing field 'sha256'",
		    NULL);
		return;
	}
	for (char *p = q->sha256; *p != '\0'; p++) {
		*p = (char)tolower((unsigned char)*p);
	}
	if (strcmp(digest, q->sha256) != 0) {
		su_fmt(err, sizeof(err), "sha256 mismatch: the upload has %s", digest);
		su_refuse(su, r, q, 422, err, NULL);
		return;
	}
	testhook_point("self.staged");
	su_phase(su, "preflight");
	su_fmt(dir, sizeof(dir), "%s/releases/active.new", su->store.root);
	if (su_read_manifest(dir, &m, err, sizeof(err)) != 0) {
		su_refuse(su, r, q, 422, err, NULL);
		return;
	}
	memset(&ri, 0, sizeof(ri));
	memcpy(ri.id, q->id, sizeof(ri.id));
	su_fmt(ri.sha, sizeof(ri.sha), "%s", q->sha);
	memcpy(ri.sha256, digest, sizeof(ri.sha256));
	memcpy(ri.version, m.version, sizeof(ri.version));
	memcpy(ri.name, m.name, sizeof(ri.name));
	iso8601_utc(time(NULL), ri.installed_at, sizeof(ri.installed_at));
	su_fmt(ri.installed_by, sizeof(ri.installed_by), "%s", su_caller(r));
	if (store_release_write(&su->store, "active.new", &ri) != 0) {
		su_fmt(err, sizeof(err), "write release.json: %s", strerror(errno));
		su_refuse(su, r, q, errno == ENOSPC ? 507 : 500, err, NULL);
		return;
	}
	out = calloc(1, SU_PREFLIGHT_OUT);
	if (out == NULL) {
		su_refuse(su, r, q, 500, "out of memory", NULL);
		return;
	}
	if (su_preflight(su, dir, &m, out, SU_PREFLIGHT_OUT, err, sizeof(err)) != 0) {
		su_refuse(su, r, q, 422, err, out);
		free(out);
		return;
	}
	free(out);
	testhook_point("self.preflight_passed");
	su_phase(su, "switching");
	memcpy(q->op.sha256, digest, sizeof(q->op.sha256));
	su_hook_enter();
	rc = store_update_switch(&su->store, &q->op, err, sizeof(err));
	su_hook_leave();
	if (rc != 0) {
		char err2[256];

		if (store_update_restore(&su->store, &q->op, err2, sizeof(err2)) != 0) {
			log_warnx("update-self %s: restore after failed switch: %s", q->id, err2);
		}
		q->staging = 0;
		su_refuse(su, r, q, errno == ENOSPC ? 507 : 500, err, NULL);
		return;
	}
	q->staging = 0;
	testhook_point("self.switched");
	memset(&h, 0, sizeof(h));
	memcpy(h.op_id, q->id, sizeof(h.op_id));
	su_fmt(h.new_version, sizeof(h.new_version), "%s", m.version);
	su_fmt(h.old_version, sizeof(h.old_version), "%s", tandem_version());
	memcpy(h.sha256, digest, sizeof(h.sha256));
	h.queued_at = (long long)time(NULL);
	if (selfupdate_handover_write(su->store.root, &h) != 0) {
		su_fmt(err, sizeof(err), "write handover record: %s", strerror(errno));
		if (store_update_restore(&su->store, &q->op, dir, sizeof(dir)) != 0) {
			log_warnx("update-self %s: restore: %s", q->id, dir);
		}
		su_refuse(su, r, q, errno == ENOSPC ? 507 : 500, err, NULL);
		return;
	}
	testhook_point("self.handover_written");
	q->queued = 1;
	atomic_store(&su->queued, 1);
	su_phase(su, "handing_over");
	log_info("update-self %s: %s -> %s queued, handing over", q->id, tandem_version(),
	    m.version);
	su_respond_queued(r, &ri);
}

static void
su_cleanup(struct httpd_req *r, void *arg, int completed)
{
	struct selfupdate *su = arg;
	struct su_req *q = httpd_req_data(r);

	(void)completed;
	if (q == NULL) {
		return;
	}
	su_drop_staging(su, q);
	if (q->queued) {
		/* Keep the operation lock: nothing else may start before the handover. */
		testhook_point("self.responded");
		if (kill(getpid(), SIGTERM) != 0) {
			log_warn("update-self: SIGTERM to self");
		}
	} else if (q->locked) {
		su->hooks.unlock(su->hooks.arg);
	}
	free(q);
	httpd_req_set_data(r, NULL);
}

void
selfupdate_route(struct selfupdate *su, struct httpd_route *rt)
{
	memset(rt, 0, sizeof(*rt));
	rt->method = "POST";
	rt->path = "/update-self";
	rt->roles = TLS_ROLEBIT(TLS_ROLE_MASTER);
	rt->max_body = (uint64_t)su->cfg->max_upload + SU_BODY_SLACK;
	rt->deadline_ms = (int)su->cfg->request_timeout_ms;
	rt->multipart = 1;
	rt->on_begin = su_begin;
	rt->on_data = su_data;
	rt->on_end = su_end;
	rt->on_cleanup = su_cleanup;
	rt->arg = su;
}

int
selfupdate_health_json(struct selfupdate *su, cJSON *obj)
{
	struct release_info ri;
	struct selfupdate_handover h;
	char err[256], p[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	cJSON *u = json_add_object(obj, "updater"), *last = NULL, *pr;

	if (u == NULL || json_add_str(u, "version", tandem_version()) != 0) {
		return -1;
	}
	if (store_release_read(&su->store, "active", &ri, err, sizeof(err)) == 1) {
		if (json_add_item(u, "release", release_record_json(&ri, "active")) != 0) {
			return -1;
		}
	} else if (json_add_item(u, "release", cJSON_CreateNull()) != 0) {
		return -1;
	}
	if (selfupdate_handover_read(su->store.root, &h, err, sizeof(err)) == 1) {
		pr = json_add_object(u, "probation");
		if (pr == NULL || json_add_str(pr, "id", h.op_id) != 0 ||
		    json_add_str(pr, "new_version", h.new_version) != 0 ||
		    json_add_int(pr, "starts", h.starts) != 0) {
			return -1;
		}
	} else if (json_add_item(u, "probation", cJSON_CreateNull()) != 0) {
		return -1;
	}
	su_state_path(p, sizeof(p), su->store.root, SELFUPDATE_LAST);
	if (fs_read_file(p, SU_RECORD_MAX, &buf, &len) == 0) {
		last = json_parse_object(buf, len, err, sizeof(err));
		free(buf);
	}
	return json_add_item(u, "last_self_update", last != NULL ? last : cJSON_CreateNull());
}
