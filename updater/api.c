#include "updater/api.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/httpd.h"
#include "common/json.h"
#include "common/log.h"
#include "common/testhook.h"
#include "common/tls.h"
#include "common/version.h"
#include "updater/agent.h"
#include "updater/delta.h"
#include "updater/handover.h"
#include "updater/install.h"
#include "updater/metrics.h"
#include "updater/renew.h"
#include "updater/selfupdate.h"

#define API_RETRY_AFTER "5"
/* Multipart framing and text fields on top of the tarball itself. */
#define API_BODY_SLACK (64 * 1024)

struct api {
	const struct updater_config *cfg;
	struct tls_ctx *srv_tls;
	struct tls_ctx *cli_tls;
	struct httpd *httpd;
	struct agent *agent;
	struct install *in;
	struct renew *rw;             /* certificate renewal and the CRL */
	struct metrics *metrics;      /* operation counters for GET /metrics */
	struct httpd_route *routes;
	int listen_fd;                /* from tandem-launcher, else -1 */
	const char *launcher_config;  /* from tandem-launcher, else NULL */
};

/* One POST request: the plan the form fills, and where the engine is with it. */
struct api_req {
	struct install_plan plan;
	size_t sha_len;
	size_t sha256_len;
	char confirm[16];
	size_t confirm_len;
	size_t request_id_len;
	char force[16];
	size_t force_len;
	char mode[16];                /* "", "full" or "delta" */
	size_t mode_len;
	int locked;
	int have_tarball;
	char *tsig;                   /* the tsig part (before the tarball), or NULL */
	size_t tsig_len;
	struct install_txn *txn;
	int queued;                   /* a self-update was queued: hand over after the answer */
};

/* ---- the one translation: outcome -> status + JSON body ---- */

/* 200 {"status","release","probe"} of an update or a rollback that worked. */
static void
api_answer_release(struct httpd_req *r, const char *status, const struct install_outcome *oc)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *rel = oc->have_release ? release_record_json(&oc->release, "active") :
					cJSON_CreateNull();

	if (o == NULL || json_add_str(o, "status", status) != 0 ||
	    json_add_item(o, "release", rel) != 0 ||
	    json_add_str(o, "probe", oc->probe_new != NULL ? oc->probe_new : "") != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

/* 200 {"status":"self_update_queued",...}: this updater hands over next. */
static void
api_answer_queued(struct httpd_req *r, const struct install_outcome *oc)
{
	cJSON *o = cJSON_CreateObject(), *rel = release_record_json(&oc->release, "active");

	if (o == NULL || json_add_str(o, "status", "self_update_queued") != 0 ||
	    json_add_str(o, "id", oc->id) != 0 ||
	    json_add_str(o, "from_version", oc->from_version) != 0 ||
	    json_add_str(o, "to_version", oc->release.version) != 0 ||
	    json_add_item(o, "release", rel) != 0 ||
	    json_add_str(o, "handover", "listen_fd") != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

/*
 * Answer OC. Success bodies per result; every other result is the error
 * body {"detail":{"error","kind","stderr","rolled_back"[,"probe"][,"field"]}}
 * with the status of the result (409 when the old release runs again, 500
 * both bad) or of the error's kind (common/err's table).
 */
static void
api_answer(struct httpd_req *r, const struct install_outcome *oc)
{
	cJSON *root = NULL, *d = NULL;
	unsigned status;
	int rolled_back = 0;

	switch (oc->result) {
	case INSTALL_UPDATED:
		api_answer_release(r, "updated", oc);
		return;
	case INSTALL_ALREADY_ACTIVE:
		api_answer_release(r, "already_active", oc);
		return;
	case INSTALL_QUEUED:
		api_answer_queued(r, oc);
		return;
	case INSTALL_ROLLED_BACK:
		if (oc->kind == INSTALL_ROLLBACK) {
			api_answer_release(r, "rolled_back", oc);
			return;
		}
		status = 409;
		rolled_back = 1;
		break;
	case INSTALL_RESTORED:
		status = 409;
		rolled_back = 1;
		break;
	case INSTALL_BOTH_BAD:
		status = 500;
		break;
	default:
		status = err_http_status(oc->err.kind);
		if (status < 400) {
			status = 500; /* a failure without a kind is ours */
		}
		break;
	}
	if (oc->err.kind == ERR_BUSY && httpd_add_header(r, "Retry-After", API_RETRY_AFTER) != 0) {
		log_warnx("cannot add Retry-After");
	}
	root = cJSON_CreateObject();
	if (root == NULL || (d = json_add_object(root, "detail")) == NULL ||
	    json_add_str(d, "error", err_msg(&oc->err)) != 0 ||
	    json_add_str(d, "kind", err_kind_name(oc->err.kind)) != 0 ||
	    json_add_str(d, "stderr", oc->output != NULL ? oc->output : "") != 0 ||
	    json_add_bool(d, "rolled_back", rolled_back) != 0 ||
	    (oc->probe_restored != NULL && json_add_str(d, "probe", oc->probe_restored) != 0) ||
	    (oc->field[0] != '\0' && json_add_str(d, "field", oc->field) != 0)) {
		cJSON_Delete(root);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, status, root);
}

/* Refuse R before the engine had anything to do with it: KIND, FIELD (or NULL), message. */
static void
api_refuse(struct httpd_req *r, enum install_kind ikind, const struct err *e, const char *field)
{
	struct install_outcome oc;

	install_outcome_init(&oc, ikind);
	err_copy(&oc.err, e);
	if (field != NULL) {
		(void)snprintf(oc.field, sizeof(oc.field), "%s", field);
	}
	api_answer(r, &oc);
}

/* ---- checks every master route shares ---- */

/* With master_fingerprints configured, only those masters (updater/renew decides). */
static int
api_authorise(struct api *a, struct httpd_req *r, struct err *e)
{
	const struct tls_identity *id = httpd_req_identity(r);

	return renew_master_allowed(a->rw, id != NULL ? id->fingerprint : NULL, e);
}

/*
 * Start of a master operation of KIND: authorise, attach the request
 * record, take the operation lock. Answers and returns -1 when any fails.
 */
static int
api_op_begin(struct api *a, struct httpd_req *r, enum install_kind kind)
{
	const struct tls_identity *id = httpd_req_identity(r);
	struct err e = ERR_INIT;
	struct api_req *q;
	const char *rid;
	int lrc;

	if (api_authorise(a, r, &e) != 0) {
		api_refuse(r, kind, &e, NULL);
		return -1;
	}
	if (kind == INSTALL_SELF && (a->listen_fd < 0 || a->launcher_config == NULL)) {
		err_set(&e, ERR_UNAVAILABLE,
		    "self-update needs tandem-launcher (this updater was not started by it)");
		api_refuse(r, kind, &e, NULL);
		return -1;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		err_set(&e, ERR_NOMEM, "out of memory");
		api_refuse(r, kind, &e, NULL);
		return -1;
	}
	httpd_req_set_data(r, q);
	install_plan_init(&q->plan, kind);
	(void)snprintf(q->plan.caller, sizeof(q->plan.caller), "%s",
	    id != NULL ? id->fingerprint : "");
	/* A request id in the query (rollback has no form; POSTs with a form may send a field). */
	rid = httpd_req_query(r, "request_id");
	if (rid != NULL) {
		if (!install_request_id_valid(rid)) {
			err_set(&e, ERR_BAD_REQUEST, "request_id must be 1 to %d of A-Z a-z 0-9 - _",
			    INSTALL_REQUEST_ID_MAX);
			api_refuse(r, kind, &e, "request_id");
			return -1;
		}
		(void)snprintf(q->plan.request_id, sizeof(q->plan.request_id), "%s", rid);
		q->request_id_len = strlen(q->plan.request_id);
	}
	lrc = install_lock(a->in, kind, q->plan.id, &e);
	if (lrc != 0 && e.kind == ERR_BUSY && id != NULL && id->compat &&
	    a->cfg->master_compat_wait_ms > 0) {
		/* A compatible (DECNET) master cannot retry a 503: it waits for the lock. */
		log_info("%s; the compatible master %s waits up to %lld ms", err_msg(&e),
		    id->fingerprint, a->cfg->master_compat_wait_ms);
		e = (struct err)ERR_INIT;
		lrc = install_lock_wait(a->in, kind, q->plan.id, a->cfg->master_compat_wait_ms, &e);
	}
	if (lrc != 0) {
		api_refuse(r, kind, &e, NULL);
		return -1;
	}
	q->locked = 1;
	install_set_request_id(a->in, q->plan.request_id);
	return 0;
}

static void
api_op_cleanup(struct httpd_req *r, void *arg, int completed)
{
	struct api *a = arg;
	struct api_req *q = httpd_req_data(r);

	(void)completed;
	if (q == NULL) {
		return;
	}
	install_abort(q->txn);
	free(q->tsig);
	if (q->queued) {
		/* Keep the operation lock: nothing else may start before the handover. */
		install_self_answered(a->in);
		if (kill(getpid(), SIGTERM) != 0) {
			log_warn("update-self: SIGTERM to self");
		}
	} else if (q->locked) {
		install_unlock(a->in);
	}
	free(q);
	httpd_req_set_data(r, NULL);
}

/*
 * Start of a master request that takes a body (no operation lock):
 * authorise, then attach SIZE zeroed bytes for it. NULL once answered.
 */
static void *
api_body_begin(struct api *a, struct httpd_req *r, size_t size)
{
	struct err e = ERR_INIT;
	void *b;

	if (api_authorise(a, r, &e) != 0) {
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return NULL;
	}
	b = calloc(1, size);
	if (b == NULL) {
		err_set(&e, ERR_NOMEM, "out of memory");
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return NULL;
	}
	httpd_req_set_data(r, b);
	return b;
}

/* ---- POST /update and POST /update-self ---- */

static int
up_begin_update(struct httpd_req *r, void *arg)
{
	return api_op_begin(arg, r, INSTALL_UPDATE);
}

static int
up_begin_self(struct httpd_req *r, void *arg)
{
	return api_op_begin(arg, r, INSTALL_SELF);
}

/* Append N bytes of the text field NAME to BUF (CAP, *LEN used); 400 when too long. */
static int
up_text(struct httpd_req *r, const struct api_req *q, char *buf, size_t cap, size_t *len,
    const char *name, const char *data, size_t n)
{
	struct err e = ERR_INIT;

	if (*len + n >= cap) {
		err_set(&e, ERR_BAD_REQUEST, "field '%.40s' is too long", name);
		api_refuse(r, q->plan.kind, &e, name);
		return -1;
	}
	memcpy(buf + *len, data, n);
	*len += n;
	buf[*len] = '\0';
	return 0;
}

/*
 * The signature file, a text part that must come before the tarball: the
 * engine checks it before it extracts anything.
 */
static int
up_tsig(struct httpd_req *r, struct api_req *q, const char *data, size_t len)
{
	struct err e = ERR_INIT;

	if (q->have_tarball) {
		err_set(&e, ERR_BAD_REQUEST, "field 'tsig' must come before 'tarball'");
		api_refuse(r, q->plan.kind, &e, "tsig");
		return -1;
	}
	if (q->tsig == NULL) {
		q->tsig = malloc(SIGN_FILE_MAX + 1);
		if (q->tsig == NULL) {
			err_set(&e, ERR_NOMEM, "out of memory");
			api_refuse(r, q->plan.kind, &e, NULL);
			return -1;
		}
		q->tsig[0] = '\0';
	}
	return up_text(r, q, q->tsig, SIGN_FILE_MAX + 1, &q->tsig_len, "tsig", data, len);
}

/* The tarball's bytes go to the engine as they arrive. */
static int
up_tarball(struct api *a, struct httpd_req *r, struct api_req *q,
    const struct httpd_part *part, const char *data, size_t len)
{
	struct install_outcome oc;
	struct err e = ERR_INIT;

	if (part->offset == 0) {
		if (q->have_tarball) {
			err_set(&e, ERR_BAD_REQUEST, "more than one 'tarball' field");
			api_refuse(r, q->plan.kind, &e, "tarball");
			return -1;
		}
		q->have_tarball = 1;
		q->plan.tsig = q->tsig;
		q->plan.tsig_len = q->tsig_len;
		/* The text fields came first (the form's order): check them once. */
		if (q->plan.request_id[0] != '\0' && !install_request_id_valid(q->plan.request_id)) {
			err_set(&e, ERR_BAD_REQUEST, "request_id must be 1 to %d of A-Z a-z 0-9 - _",
			    INSTALL_REQUEST_ID_MAX);
			api_refuse(r, q->plan.kind, &e, "request_id");
			return -1;
		}
		if (q->force_len > 0 && strcmp(q->force, "true") != 0 &&
		    strcmp(q->force, "false") != 0) {
			err_set(&e, ERR_BAD_REQUEST, "field 'force' must be 'true' or 'false'");
			api_refuse(r, q->plan.kind, &e, "force");
			return -1;
		}
		q->plan.force = strcmp(q->force, "true") == 0;
		if (q->mode_len > 0 && strcmp(q->mode, "full") != 0 &&
		    strcmp(q->mode, "delta") != 0) {
			err_set(&e, ERR_BAD_REQUEST, "field 'mode' must be 'full' or 'delta'");
			api_refuse(r, q->plan.kind, &e, "mode");
			return -1;
		}
		q->plan.delta = strcmp(q->mode, "delta") == 0;
		if (install_begin(a->in, &q->plan, &q->txn, &e) != 0) {
			api_refuse(r, q->plan.kind, &e, NULL);
			return -1;
		}
	}
	if (q->txn != NULL && install_feed(q->txn, data, len, &e) != 0) {
		install_finish(q->txn, &oc);
		q->txn = NULL;
		api_answer(r, &oc);
		install_outcome_free(&oc);
		return -1;
	}
	return 0;
}

static int
up_data(struct httpd_req *r, const struct httpd_part *part, const char *data, size_t len,
    void *arg)
{
	struct api *a = arg;
	struct api_req *q = httpd_req_data(r);
	struct install_plan *p = &q->plan;
	struct err e = ERR_INIT;

	if (part == NULL || part->name == NULL) {
		err_set(&e, ERR_BAD_REQUEST, "expected multipart/form-data");
		api_refuse(r, p->kind, &e, NULL);
		return -1;
	}
	if (strcmp(part->name, "sha") == 0) {
		return up_text(r, q, p->sha, sizeof(p->sha), &q->sha_len, "sha", data, len);
	}
	if (strcmp(part->name, "sha256") == 0) {
		p->has_sha256 = 1;
		return up_text(r, q, p->sha256, sizeof(p->sha256), &q->sha256_len, "sha256", data,
		    len);
	}
	if (strcmp(part->name, "tsig") == 0) {
		return up_tsig(r, q, data, len);
	}
	if (strcmp(part->name, "request_id") == 0 && !q->have_tarball) {
		return up_text(r, q, p->request_id, sizeof(p->request_id), &q->request_id_len,
		    "request_id", data, len);
	}
	if (p->kind == INSTALL_UPDATE && strcmp(part->name, "force") == 0 && !q->have_tarball) {
		return up_text(r, q, q->force, sizeof(q->force), &q->force_len, "force", data, len);
	}
	if (strcmp(part->name, "mode") == 0 && !q->have_tarball) {
		return up_text(r, q, q->mode, sizeof(q->mode), &q->mode_len, "mode", data, len);
	}
	if (p->kind == INSTALL_SELF && strcmp(part->name, "confirm_self") == 0) {
		return up_text(r, q, q->confirm, sizeof(q->confirm), &q->confirm_len, "confirm_self",
		    data, len);
	}
	if (strcmp(part->name, "tarball") != 0) {
		err_set(&e, ERR_BAD_REQUEST, "unexpected form field");
		api_refuse(r, p->kind, &e, part->name);
		return -1;
	}
	return up_tarball(a, r, q, part, data, len);
}

static void
up_end(struct httpd_req *r, void *arg)
{
	struct api_req *q = httpd_req_data(r);
	struct install_outcome oc;
	struct err e = ERR_INIT;

	(void)arg;
	if (!q->have_tarball) {
		err_set(&e, ERR_BAD_REQUEST, "missing or empty field 'tarball'");
		api_refuse(r, q->plan.kind, &e, "tarball");
		return;
	}
	q->plan.confirmed = strcmp(q->confirm, "true") == 0;
	install_finish(q->txn, &oc);
	q->txn = NULL;
	q->queued = oc.result == INSTALL_QUEUED;
	api_answer(r, &oc);
	install_outcome_free(&oc);
}

/* ---- POST /update/plan ---- */

/*
 * The request body: files.json bytes, grown as they arrive (at most
 * RELEASE_FILES_MAX_BYTES), or with "Content-Encoding: gzip" those bytes
 * gzip-compressed (inflated at the end, to at most that limit too).
 */
struct api_plan_body {
	char *buf;
	size_t len, cap;
	int gzip;
};

static int
plan_begin(struct httpd_req *r, void *arg)
{
	struct err e = ERR_INIT;
	const char *ct = httpd_req_header(r, "Content-Type");
	const char *ce = httpd_req_header(r, "Content-Encoding");
	struct api_plan_body *b;

	if (api_body_begin(arg, r, sizeof(struct api_plan_body)) == NULL) {
		return -1;
	}
	if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
	    (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
		err_set(&e, ERR_BAD_REQUEST, "the body must be files.json (Content-Type: "
		    "application/json)");
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return -1;
	}
	if (ce != NULL && strcasecmp(ce, "identity") != 0 && strcasecmp(ce, "gzip") != 0) {
		err_set(&e, ERR_BAD_REQUEST, "Content-Encoding %.40s: the body is files.json as it "
		    "is or gzip-compressed (Content-Encoding: gzip)", ce);
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return -1;
	}
	b = httpd_req_data(r);
	b->gzip = ce != NULL && strcasecmp(ce, "gzip") == 0;
	return 0;
}

static int
plan_data(struct httpd_req *r, const struct httpd_part *part, const char *data, size_t len,
    void *arg)
{
	struct api_plan_body *b = httpd_req_data(r);
	struct err e = ERR_INIT;

	(void)part;
	(void)arg;
	if (len > RELEASE_FILES_MAX_BYTES - b->len) {
		err_set(&e, ERR_TOO_LARGE, "files.json has at most %zu bytes", RELEASE_FILES_MAX_BYTES);
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return -1;
	}
	if (b->len + len > b->cap) {
		size_t ncap = b->cap == 0 ? 64 * 1024 : b->cap;
		char *nb;

		while (ncap < b->len + len) {
			ncap *= 2;
		}
		nb = realloc(b->buf, ncap);
		if (nb == NULL) {
			err_set(&e, ERR_NOMEM, "out of memory");
			api_refuse(r, INSTALL_UPDATE, &e, NULL);
			return -1;
		}
		b->buf = nb;
		b->cap = ncap;
	}
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	return 0;
}

/* The plan against the releases of tree ROOT (the agent's, or the updater's own for KIND self). */
static void
plan_answer(struct httpd_req *r, const char *root, enum install_kind kind)
{
	struct api_plan_body *b = httpd_req_data(r);
	struct err e = ERR_INIT;
	const char *bases;
	char *fj = NULL;
	size_t fj_len = 0;
	cJSON *o;

	if (b->gzip) {
		if (release_files_gunzip(b->buf != NULL ? b->buf : "", b->len, &fj, &fj_len,
		    &e) != 0) {
			if (e.kind == ERR_FORMAT) {
				err_rekind(&e, ERR_BAD_REQUEST);
			}
			err_prefix(&e, "plan: Content-Encoding gzip");
			api_refuse(r, kind, &e, NULL);
			return;
		}
	}
	/* "?bases=1": name the bases zstd patches may be made against (feature zstd_patch). */
	bases = httpd_req_query(r, "bases");
	o = delta_plan(root, fj != NULL ? fj : b->buf != NULL ? b->buf : "",
	    fj != NULL ? fj_len : b->len, bases != NULL && strcmp(bases, "1") == 0 &&
	    !testhook_without("zstd_patch"), &e);
	free(fj);
	if (o == NULL) {
		err_prefix(&e, "plan");
		api_refuse(r, kind, &e, NULL);
		return;
	}
	log_info("plan: %zu bytes%s, %lld files missing (%lld bytes)", b->len,
	    b->gzip ? " (gzip)" : " of files.json",
	    (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "missing_files")),
	    (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "missing_bytes")));
	httpd_respond_json(r, 200, o);
}

static void
plan_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;

	plan_answer(r, install_root(a->in), INSTALL_UPDATE);
}

/* POST /update-self/plan: the same question about the updater's own releases. */
static void
plan_end_self(struct httpd_req *r, void *arg)
{
	struct api *a = arg;

	plan_answer(r, install_self_root(a->in), INSTALL_SELF);
}

static void
plan_cleanup(struct httpd_req *r, void *arg, int completed)
{
	struct api_plan_body *b = httpd_req_data(r);

	(void)arg;
	(void)completed;
	if (b != NULL) {
		free(b->buf);
		free(b);
	}
	httpd_req_set_data(r, NULL);
}

/* ---- POST /rollback ---- */

static int
rb_begin(struct httpd_req *r, void *arg)
{
	return api_op_begin(arg, r, INSTALL_ROLLBACK);
}

static void
rb_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	struct api_req *q = httpd_req_data(r);
	struct install_outcome oc;

	install_rollback(a->in, &q->plan, &oc);
	api_answer(r, &oc);
	install_outcome_free(&oc);
}

/* ---- POST /keyring ---- */

/* The request body: a keyring document of at most SIGN_FILE_MAX bytes. */
struct api_body {
	char buf[SIGN_FILE_MAX + 1];
	size_t len;
};

static int
kr_begin(struct httpd_req *r, void *arg)
{
	return api_body_begin(arg, r, sizeof(struct api_body)) != NULL ? 0 : -1;
}

static int
kr_data(struct httpd_req *r, const struct httpd_part *part, const char *data, size_t len,
    void *arg)
{
	struct api_body *b = httpd_req_data(r);
	struct err e = ERR_INIT;

	(void)part;
	(void)arg;
	if (b->len + len > SIGN_FILE_MAX) {
		err_set(&e, ERR_TOO_LARGE, "a keyring document has at most %d bytes", SIGN_FILE_MAX);
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return -1;
	}
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	return 0;
}

static void
kr_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	struct api_body *b = httpd_req_data(r);
	struct err e = ERR_INIT;
	int64_t version = 0;
	cJSON *o;

	if (trust_keyring_update(install_trust(a->in), b->buf, b->len, &version, &e) != 0) {
		err_prefix(&e, "keyring refused");
		log_warnx("%s", err_msg(&e));
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return;
	}
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "status", "keyring_updated") != 0 ||
	    json_add_int(o, "keyring_version", version) != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

static void
kr_cleanup(struct httpd_req *r, void *arg, int completed)
{
	(void)arg;
	(void)completed;
	free(httpd_req_data(r));
	httpd_req_set_data(r, NULL);
}

/* ---- GET ---- */

/* "updater": {"version","release","probation","last_self_update"} of /health. */
static int
api_health_self(struct api *a, cJSON *obj)
{
	struct handover h;
	cJSON *u = json_add_object(obj, "updater"), *pr, *last;

	if (u == NULL || json_add_str(u, "version", tandem_version()) != 0 ||
	    json_add_item(u, "release", install_self_release_json(a->in)) != 0) {
		return -1;
	}
	if (handover_read(install_self_root(a->in), &h, NULL) == 1) {
		pr = json_add_object(u, "probation");
		if (pr == NULL || json_add_str(pr, "id", h.op_id) != 0 ||
		    json_add_str(pr, "new_version", h.new_version) != 0 ||
		    json_add_int(pr, "starts", h.starts) != 0) {
			return -1;
		}
	} else if (json_add_item(u, "probation", cJSON_CreateNull()) != 0) {
		return -1;
	}
	last = handover_last(install_self_root(a->in));
	return json_add_item(u, "last_self_update", last != NULL ? last : cJSON_CreateNull());
}

/* "signature", "security_floor", "keyring_version", "compatible" of /health. */
static int
api_health_trust(struct api *a, cJSON *obj)
{
	struct trust_status ts;

	trust_status(install_trust(a->in), &ts);
	if (json_add_str(obj, "signature", ts.mode) != 0 ||
	    json_add_int(obj, "security_floor", ts.floor) != 0 ||
	    json_add_item(obj, "keyring_version", ts.keyring_version > 0 ?
	    cJSON_CreateNumber((double)ts.keyring_version) : cJSON_CreateNull()) != 0 ||
	    json_add_str(obj, "compatible", ts.compatible) != 0) {
		return -1;
	}
	return ts.reason[0] == '\0' ? 0 : json_add_str(obj, "signature_error", ts.reason);
}

/* The /health object (also what GET /metrics reports); NULL when out of memory. */
/*
 * "both_bad_retry": {"attempts","max","running","next_in_ms"} while both
 * bad: the retries of the last good release made so far (the running one
 * included), the bound, whether one runs now, and the time to the next one
 * (null: none planned: a retry runs, or none is left).
 */
static int
api_health_retry(const struct install_status *st, cJSON *o)
{
	cJSON *r;

	if (!st->both_bad) {
		return 0;
	}
	r = json_add_object(o, "both_bad_retry");
	if (r == NULL || json_add_int(r, "attempts", st->retry_attempts) != 0 ||
	    json_add_int(r, "max", st->retry_max) != 0 ||
	    json_add_bool(r, "running", st->retry_running) != 0) {
		return -1;
	}
	if (st->retry_next_in_ms >= 0) {
		return json_add_int(r, "next_in_ms", st->retry_next_in_ms);
	}
	return cJSON_AddNullToObject(r, "next_in_ms") == NULL ? -1 : 0;
}

static cJSON *
api_health(struct api *a)
{
	struct install_status st;
	cJSON *o = cJSON_CreateObject(), *op, *rel, *feat;
	const char *status;

	install_status(a->in, &st);
	rel = install_releases_json(a->in);
	if (st.both_bad) {
		status = "both_bad";
	} else if (rel != NULL && cJSON_GetArraySize(rel) == 0) {
		status = "no_release";
	} else if (agent_crash_looping(a->agent)) {
		status = "degraded";
	} else {
		status = "ok";
	}
	if (o == NULL || rel == NULL || json_add_str(o, "status", status) != 0 ||
	    json_add_str(o, "role", "updater") != 0 ||
	    json_add_str(o, "version", tandem_version()) != 0 ||
	    json_add_item(o, "releases", rel) != 0) {
		cJSON_Delete(rel);
		goto fail;
	}
	if (json_add_bool(o, "both_bad", st.both_bad) != 0 || api_health_retry(&st, o) != 0 ||
	    agent_health_json(a->agent, o) != 0 ||
	    api_health_self(a, o) != 0 || api_health_trust(a, o) != 0 ||
	    renew_health_json(a->rw, o) != 0) {
		goto fail;
	}
	/* What this updater takes beyond the first wire contract (clients check before sending). */
	if ((feat = json_add_array(o, "features")) == NULL ||
	    json_array_add_str(feat, "request_id") != 0 ||
	    json_array_add_str(feat, "already_active") != 0 ||
	    json_array_add_str(feat, "plan_gzip") != 0 ||
	    json_array_add_str(feat, "self_request_id") != 0 ||
	    (!testhook_without("zstd_patch") && json_array_add_str(feat, "zstd_patch") != 0)) {
		goto fail;
	}
	if (st.busy) {
		op = json_add_object(o, "operation");
		if (op == NULL || json_add_str(op, "id", st.id) != 0 ||
		    json_add_str(op, "kind", st.kind) != 0 ||
		    json_add_str(op, "request_id", st.request_id[0] != '\0' ? st.request_id : NULL) !=
		    0 ||
		    json_add_str(op, "phase", st.phase) != 0 ||
		    json_add_int(op, "elapsed_ms", st.elapsed_ms) != 0) {
			goto fail;
		}
	} else if (json_add_item(o, "operation", cJSON_CreateNull()) != 0) {
		goto fail;
	}
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

static void
health_end(struct httpd_req *r, void *arg)
{
	cJSON *o = api_health(arg);

	if (o == NULL) {
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

/* GET /metrics: master only, the Prometheus text of the counters and of /health. */
static void
metrics_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	struct err e = ERR_INIT;
	struct statvfs sv;
	long long disk_free = -1;
	cJSON *h;
	char *text;
	size_t len = 0;

	if (api_authorise(a, r, &e) != 0) {
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return;
	}
	if (statvfs(a->cfg->install_dir, &sv) == 0) {
		disk_free = (long long)sv.f_bavail * (long long)sv.f_frsize;
	}
	h = api_health(a);
	text = h != NULL ? metrics_render(a->metrics, h, disk_free, &len) : NULL;
	cJSON_Delete(h);
	if (text == NULL) {
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond(r, 200, METRICS_CONTENT_TYPE, text, len);
	free(text);
}

/* GET /releases and /history: master only, then {"NAME": LIST}. */
static void
api_list(struct api *a, struct httpd_req *r, const char *name, cJSON *list, const char *what)
{
	struct err e = ERR_INIT;
	cJSON *o;

	if (api_authorise(a, r, &e) != 0) {
		cJSON_Delete(list);
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return;
	}
	o = cJSON_CreateObject();
	if (o == NULL || list == NULL || json_add_item(o, name, list) != 0) {
		cJSON_Delete(o);
		cJSON_Delete(list);
		err_set(&e, ERR_INTERNAL, "%s", what);
		api_refuse(r, INSTALL_UPDATE, &e, NULL);
		return;
	}
	httpd_respond_json(r, 200, o);
}

static void
releases_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;

	api_list(a, r, "releases", install_releases_json(a->in), "out of memory");
}

static void
history_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	const char *rid = httpd_req_query(r, "request_id");
	struct err e = ERR_INIT;

	if (rid != NULL && !install_request_id_valid(rid)) {
		err_set(&e, ERR_BAD_REQUEST, "request_id must be 1 to %d of A-Z a-z 0-9 - _",
		    INSTALL_REQUEST_ID_MAX);
		api_refuse(r, INSTALL_UPDATE, &e, "request_id");
		return;
	}
	api_list(a, r, "history", install_history_json(a->in, rid), "cannot read the history");
}

/* ---- lifecycle ---- */

/* Server and client contexts from the identity in force (renewed, else configured). */
static int
api_tls_new(struct api *a, struct tls_ctx **srv, struct tls_ctx **cli, struct err *e)
{
	const struct updater_config *cfg = a->cfg;
	struct tls_opts to;
	char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];

	*srv = NULL;
	*cli = NULL;
	/* The identity and the CA bundle in force (renewed, rotated; else configured). */
	if (renew_self_paths(a->rw, cert, key, e) != 0 || renew_ca_path(a->rw, ca, e) != 0) {
		return -1;
	}
	tls_opts_init(&to);
	to.ca_file = ca;
	to.cert_file = cert;
	to.key_file = key;
	to.master_cn = cfg->master_cn;
	to.master_compat_ou = cfg->master_compat_ou;
	if (tls_server_new(&to, srv, e) != 0 || tls_client_new(&to, cli, e) != 0) {
		tls_ctx_free(*srv);
		*srv = NULL;
		/* The renewed identity does not load: a configuration error, whatever mbedTLS said. */
		return err_rekind(e, ERR_CONFIG);
	}
	return 0;
}

/*
 * A renewed identity or a new CA bundle is in place: new connections (served
 * and the probe's) use it; connections under way keep the context they hold
 * a reference to.
 */
static int
api_reload_self(void *arg, struct err *e)
{
	struct api *a = arg;
	struct tls_ctx *srv, *cli, *old_srv, *old_cli;

	if (api_tls_new(a, &srv, &cli, e) != 0) {
		return -1;
	}
	if (a->httpd != NULL) {
		httpd_set_tls(a->httpd, srv);
	}
	agent_set_tls(a->agent, cli);
	old_srv = a->srv_tls;
	old_cli = a->cli_tls;
	a->srv_tls = srv;
	a->cli_tls = cli;
	tls_ctx_free(old_srv);
	tls_ctx_free(old_cli);
	log_info("serving with the renewed certificate %s", tls_ctx_own_fingerprint(srv));
	return 0;
}

int
api_new(const struct updater_config *cfg, struct api **out, struct err *e)
{
	struct api *a = calloc(1, sizeof(*a));
	struct install_deps deps;
	struct renew_hooks hooks;
	char recovered[512];

	if (a == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	a->cfg = cfg;
	a->listen_fd = selfupdate_listen_fd();
	a->launcher_config = getenv(SELFUPDATE_ENV_CONFIG);
	if (metrics_new(&a->metrics, e) != 0 || renew_new(cfg, &a->rw, e) != 0 ||
	    api_tls_new(a, &a->srv_tls, &a->cli_tls, e) != 0) {
		goto fail;
	}
	if (agent_new(cfg, cfg->install_dir, a->cli_tls, &a->agent, e) != 0) {
		goto fail;
	}
	hooks.reload_self = api_reload_self;
	hooks.arg = a;
	renew_attach(a->rw, a->agent, &hooks);
	install_deps_init(&deps);
	agent_install_ops(a->agent, &deps.agent);
	deps.launcher_config = a->launcher_config;
	deps.on_outcome = metrics_record;
	deps.outcome_arg = a->metrics;
	if (install_new(cfg, &deps, &a->in, recovered, sizeof(recovered), e) != 0) {
		goto fail;
	}
	if (recovered[0] != '\0') {
		log_warnx("recovery: %s", recovered);
	}
	*out = a;
	return 0;
fail:
	api_free(a, 0);
	return -1;
}

int
api_start(struct api *a, const char *seed, struct err *e)
{
	const struct updater_config *cfg = a->cfg;
	const unsigned master = TLS_ROLEBIT(TLS_ROLE_MASTER);
	const uint64_t max_body = (uint64_t)cfg->max_upload + API_BODY_SLACK;
	const int deadline = (int)cfg->request_timeout_ms;
	const struct httpd_route routes[] = {
		{ .method = "GET", .path = "/health", .roles = TLS_ROLES_ANY, .on_end = health_end,
		    .arg = a },
		{ .method = "GET", .path = "/releases", .roles = master, .on_end = releases_end,
		    .arg = a },
		{ .method = "GET", .path = "/history", .roles = master, .on_end = history_end,
		    .arg = a },
		{ .method = "GET", .path = "/metrics", .roles = master, .on_end = metrics_end,
		    .arg = a },
		{ .method = "POST", .path = "/update", .roles = master, .max_body = max_body,
		    .deadline_ms = deadline, .multipart = 1, .on_begin = up_begin_update,
		    .on_data = up_data, .on_end = up_end, .on_cleanup = api_op_cleanup, .arg = a },
		{ .method = "POST", .path = "/update/plan", .roles = master,
		    .max_body = RELEASE_FILES_MAX_BYTES, .deadline_ms = deadline,
		    .on_begin = plan_begin, .on_data = plan_data, .on_end = plan_end,
		    .on_cleanup = plan_cleanup, .arg = a },
		{ .method = "POST", .path = "/update-self/plan", .roles = master,
		    .max_body = RELEASE_FILES_MAX_BYTES, .deadline_ms = deadline,
		    .on_begin = plan_begin, .on_data = plan_data, .on_end = plan_end_self,
		    .on_cleanup = plan_cleanup, .arg = a },
		{ .method = "POST", .path = "/update-self", .roles = master, .max_body = max_body,
		    .deadline_ms = deadline, .multipart = 1, .on_begin = up_begin_self,
		    .on_data = up_data, .on_end = up_end, .on_cleanup = api_op_cleanup, .arg = a },
		{ .method = "POST", .path = "/rollback", .roles = master, .deadline_ms = deadline,
		    .on_begin = rb_begin, .on_end = rb_end, .on_cleanup = api_op_cleanup, .arg = a },
		{ .method = "POST", .path = "/keyring", .roles = master, .max_body = SIGN_FILE_MAX,
		    .on_begin = kr_begin, .on_data = kr_data, .on_end = kr_end,
		    .on_cleanup = kr_cleanup, .arg = a },
	};
	const struct httpd_route *cert_routes;
	size_t n_cert;
	struct install_outcome oc;
	struct httpd_opts ho;
	int have_active;

	selfupdate_test_kind();
	cert_routes = renew_routes(a->rw, &n_cert);
	a->routes = malloc(sizeof(routes) + n_cert * sizeof(routes[0]));
	if (a->routes == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	memcpy(a->routes, routes, sizeof(routes));
	memcpy(a->routes + ARRAY_LEN(routes), cert_routes, n_cert * sizeof(routes[0]));
	have_active = install_active(a->in, NULL);
	if (seed != NULL && !have_active) {
		/* The seeded agent runs and passed its probe: nothing to adopt or start. */
		if (install_seed(a->in, seed, &oc) != 0) {
			err_copy(e, &oc.err);
			install_outcome_free(&oc);
			return err_prefix(e, "seed %s", seed);
		}
		install_outcome_free(&oc);
	} else {
		agent_resume(a->agent, have_active);
	}
	if (install_retry_start(a->in, e) != 0) {
		return -1;
	}
	httpd_opts_init(&ho);
	ho.listen = cfg->listen;
	ho.listen_fd = a->listen_fd;
	ho.tls = a->srv_tls;
	ho.routes = a->routes;
	ho.nroutes = ARRAY_LEN(routes) + n_cert;
	ho.name = "updater";
	ho.error_style = HTTPD_ERRORS_UPDATER;
	ho.max_conns = (unsigned)cfg->max_conns;
	/* Only the operation routes above carry request_timeout: a slow client on any
	 * other route (a trickled GET /health) holds its connection for seconds. */
	ho.request_timeout_ms = (int)cfg->route_timeout_ms;
	if (httpd_start(&ho, &a->httpd, e) != 0) {
		return err_rekind(e, ERR_IO);
	}
	return 0;
}

int
api_port(const struct api *a)
{
	return a->httpd != NULL ? httpd_port(a->httpd) : -1;
}

void
api_free(struct api *a, int grace_ms)
{
	struct install_status st;
	int stop;

	if (a == NULL) {
		return;
	}
	if (a->in != NULL) {
		/*
		 * A stop in the middle of an operation lets it finish and answer: its
		 * client learns the outcome instead of a cut connection, bounded by
		 * updater_config_stop_wait_ms (the unit's TimeoutStopSec covers it).
		 */
		install_status(a->in, &st);
		if (st.busy && !st.handing_over) {
			long long op_ms = updater_config_stop_wait_ms(a->cfg);
			if (op_ms > grace_ms) {
				log_info("stopping: waiting up to %lld ms for %s %s to finish and answer",
				    op_ms, st.kind != NULL ? st.kind : "the operation", st.id);
				grace_ms = op_ms > INT32_MAX ? INT32_MAX : (int)op_ms;
			}
		}
	}
	if (a->httpd != NULL) {
		httpd_stop(a->httpd, grace_ms, 0);
	}
	/* A both_bad retry uses the agent: it ends (its probe at most) before the agent is freed. */
	install_retry_stop(a->in);
	if (a->agent != NULL) {
		/* A self-update hands the running agent over to the next updater. */
		stop = a->cfg->stop_agent_on_exit;
		if (a->in != NULL) {
			install_status(a->in, &st);
			stop = stop && !st.handing_over;
		}
		agent_free(a->agent, stop);
	}
	install_free(a->in);
	renew_free(a->rw);
	metrics_free(a->metrics);
	tls_ctx_free(a->srv_tls);
	tls_ctx_free(a->cli_tls);
	free(a->routes);
	free(a);
}
