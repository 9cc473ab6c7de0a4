#include "updater/renew.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/testhook.h"
#include "common/tls.h"
#include "pki/crl.h"
#include "pki/hostcert.h"
#include "pki/trust.h"
#include "updater/masterpins.h"

struct renew {
	const struct updater_config *cfg;
	char state[PATH_MAX];          /* STATE */
	char tls[PATH_MAX];            /* STATE/tls */
	char dir[2][PATH_MAX];         /* STATE/tls/updater, STATE/tls/agent */
	char crl[PATH_MAX];            /* STATE/crl.der */
	char cn[2][128];               /* updater@HOST, HOST: what a renewed certificate names */
	struct agent *ag;
	struct renew_hooks hooks;
	struct httpd_route routes[RENEW_NROUTES];

	pthread_mutex_t mu;            /* protects what follows */
	int busy;                      /* a certificate or CRL request is under way */
	struct trust_crl_status crl_st;
	struct masterpins pins;        /* the masters that may operate us */
};

/* One request's body, gathered before the answer. */
struct renew_req {
	char *buf;
	size_t len;
	size_t cap;
};

static const char *const renew_names[2] = { "updater", "agent" };

/* ---- the probe's pins and the agent's environment ---- */

/*
 * The agent pins the probe accepts: with a configured agent_pin, the
 * agent's certificate in force (renewed, else the configured one) and the
 * one before it (previous, else the configured one), so an agent that has
 * not reloaded yet, or a confirm that never came, still passes its probe.
 * Without a configured pin the probe relies on the CA and the role alone.
 */
static void
renew_agent_pins(struct renew *rw)
{
	struct hostcert_installed cur, prev;
	struct err e = ERR_INIT;
	char pins[3 * (TLS_FP_HEX_LEN + 1)];
	int have;

	if (rw->ag == NULL || rw->cfg->agent_pin == NULL || rw->cfg->agent_pin[0] == '\0') {
		return;
	}
	have = hostcert_in_force(rw->dir[RENEW_AGENT], rw->cfg->master_cn, &cur, &prev, &e);
	if (have < 0) {
		log_warnx("agent pins: %s (keeping the configured pin)", err_msg(&e));
		have = 0;
	}
	if (!(have & HOSTCERT_HAVE_CURRENT)) {
		agent_set_pin(rw->ag, rw->cfg->agent_pin);
		return;
	}
	(void)snprintf(pins, sizeof(pins), "%s,%s", cur.fingerprint,
	    (have & HOSTCERT_HAVE_PREVIOUS) ? prev.fingerprint : rw->cfg->agent_pin);
	agent_set_pin(rw->ag, pins);
}

/*
 * An agent that runs as another user (run_as_user) reads its renewed pair
 * itself: the files of every generation belong to that user (the key stays
 * 0600), and the directories on the way (STATE, STATE/tls, STATE/tls/agent,
 * gen-N) are 0711: traversable, not listable (STATE's own files stay 0600;
 * the CRL, 0644, becomes readable to the agent too); the pending key stays
 * the updater's.
 * Only as root, which run_as_user needs anyway. Done at start (a crash
 * between a switch and this is repaired by the next start) and after every
 * install, before the agent is told to reload.
 */
static void
renew_agent_owner(struct renew *rw)
{
	const char *user = rw->cfg->run_as_user, *group = rw->cfg->run_as_group;
	struct err e = ERR_INIT;
	struct dirent *de;
	char p[PATH_MAX];
	uid_t uid;
	gid_t gid;
	DIR *d;

	if (user == NULL || user[0] == '\0' || geteuid() != 0) {
		return;
	}
	if (proc_resolve_ids(user, group != NULL && group[0] != '\0' ? group : NULL, &uid, &gid,
		&e) != 0) {
		log_warnx("the agent's renewed key: %s", err_msg(&e));
		return;
	}
	if (chmod(rw->state, 0711) != 0 || chmod(rw->tls, 0711) != 0 ||
	    chmod(rw->dir[RENEW_AGENT], 0711) != 0) {
		log_warn("the agent's renewed key: chmod %s", rw->dir[RENEW_AGENT]);
		return;
	}
	d = opendir(rw->dir[RENEW_AGENT]);
	if (d == NULL) {
		log_warn("the agent's renewed key: %s", rw->dir[RENEW_AGENT]);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		static const char *const files[] = { TRUST_CERT_FILE, TRUST_KEY_FILE };

		if (strncmp(de->d_name, "gen-", 4) != 0 || strchr(de->d_name, '.') != NULL) {
			continue; /* current, previous, pending, a gen-N.tmp being written */
		}
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", rw->dir[RENEW_AGENT], de->d_name) >=
			sizeof(p) ||
		    chmod(p, 0711) != 0) {
			log_warn("the agent's renewed key: chmod %s", p);
			continue;
		}
		for (size_t i = 0; i < ARRAY_LEN(files); i++) {
			if ((size_t)snprintf(p, sizeof(p), "%s/%s/%s", rw->dir[RENEW_AGENT],
				de->d_name, files[i]) >= sizeof(p) ||
			    (lchown(p, uid, gid) != 0 && errno != ENOENT)) {
				log_warn("the agent's renewed key: chown %s", p);
			}
		}
	}
	closedir(d);
}

int
renew_ca_path(struct renew *rw, char out[PATH_MAX], struct err *e)
{
	return trust_ca_path(rw->dir[RENEW_UPDATER], rw->cfg->ca, out, e);
}

/* The same, falling back to the configured CA (a path too long cannot happen: checked at start). */
static const char *
renew_ca(struct renew *rw, char buf[PATH_MAX])
{
	if (renew_ca_path(rw, buf, NULL) != 0) {
		return rw->cfg->ca;
	}
	return buf;
}

/* ---- setup ---- */

int
renew_new(const struct updater_config *cfg, struct renew **out, struct err *e)
{
	struct renew *rw = calloc(1, sizeof(*rw));
	struct tls_identity id;
	char state[PATH_MAX], note[512], cab[PATH_MAX];
	struct err ce = ERR_INIT;

	if (rw == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	pthread_mutex_init(&rw->mu, NULL);
	rw->cfg = cfg;
	if ((size_t)snprintf(state, sizeof(state), "%s/state", cfg->install_dir) >= sizeof(state) ||
	    (size_t)snprintf(rw->state, sizeof(rw->state), "%s", state) >= sizeof(rw->state) ||
	    (size_t)snprintf(rw->tls, sizeof(rw->tls), "%s/tls", state) >= sizeof(rw->tls) ||
	    (size_t)snprintf(rw->dir[RENEW_UPDATER], PATH_MAX, "%s/tls/updater", state) >=
		PATH_MAX ||
	    (size_t)snprintf(rw->dir[RENEW_AGENT], PATH_MAX, "%s/tls/agent", state) >= PATH_MAX ||
	    (size_t)snprintf(rw->crl, sizeof(rw->crl), "%s/%s", state, RENEW_CRL_FILE) >=
		sizeof(rw->crl)) {
		err_set(e, ERR_CONFIG, "install_dir is too long");
		goto fail;
	}
	for (int w = 0; w < 2; w++) {
		if (fs_mkdir_p(rw->dir[w], 0700) != 0) {
			err_sys(e, "%s", rw->dir[w]);
			goto fail;
		}
		if (hostcert_recover(rw->dir[w], renew_ca(rw, cab), note, sizeof(note), e) != 0) {
			err_prefix(e, "%s certificate", renew_names[w]);
			goto fail;
		}
		if (note[0] != '\0') {
			log_warnx("recovery of the %s certificate: %s", renew_names[w], note);
		}
	}
	/* The names a renewed certificate must carry come from the bootstrap one. */
	if (tls_identity_from_file(cfg->cert, cfg->master_cn, &id, e) != 0) {
		if (e != NULL) {
			e->kind = ERR_CONFIG; /* the configured certificate */
		}
		goto fail;
	}
	if (id.role != TLS_ROLE_UPDATER || id.host[0] == '\0') {
		err_set(e, ERR_CONFIG, "%s: not an updater certificate (CN '%s')", cfg->cert,
		    id.cn);
		goto fail;
	}
	(void)snprintf(rw->cn[RENEW_UPDATER], sizeof(rw->cn[0]), "%s", id.cn);
	(void)snprintf(rw->cn[RENEW_AGENT], sizeof(rw->cn[0]), "%s", id.host);
	/* A pin state that does not read leaves the configured pins (the floor). */
	{
		int lr = masterpins_load(&rw->pins, cfg->master_fingerprints, state, &ce);
		if (lr < 0) {
			err_copy(e, &ce);
			goto fail;
		}
		if (lr > 0) {
			log_warnx("master pins: %s (using master_fingerprints alone)", err_msg(&ce));
			err_clear(&ce);
		}
	}
	/* A CRL that does not verify is logged; the updater still starts (empty set). */
	if (trust_load_crl(rw->crl, renew_ca(rw, cab), 0, &rw->crl_st, &ce) != 0) {
		log_warnx("CRL %s: %s", rw->crl, err_msg(&ce));
	}
	*out = rw;
	return 0;
fail:
	renew_free(rw);
	return -1;
}

void
renew_free(struct renew *rw)
{
	if (rw == NULL) {
		return;
	}
	pthread_mutex_destroy(&rw->mu);
	free(rw);
}

void
renew_attach(struct renew *rw, struct agent *ag, const struct renew_hooks *hooks)
{
	rw->ag = ag;
	rw->hooks = *hooks;
	if (ag != NULL) {
		agent_set_tls_env(ag, rw->dir[RENEW_AGENT], rw->crl);
		renew_agent_pins(rw);
		renew_agent_owner(rw);
	}
}

int
renew_self_paths(struct renew *rw, char cert[PATH_MAX], char key[PATH_MAX], struct err *e)
{
	int renewed = 0;

	return trust_identity_paths(rw->dir[RENEW_UPDATER], rw->cfg->cert, rw->cfg->key, cert,
	    key, &renewed, e);
}

int
renew_master_allowed(struct renew *rw, const char *fp, struct err *e)
{
	int ok;

	pthread_mutex_lock(&rw->mu);
	ok = masterpins_allowed(&rw->pins, fp);
	pthread_mutex_unlock(&rw->mu);
	if (ok) {
		return 0;
	}
	return err_set(e, ERR_FORBIDDEN, "master certificate is not pinned on this updater");
}

/* The SHA-256 fingerprints of the CA certificates in force, into ARR. */
static int
renew_ca_json(struct renew *rw, cJSON *arr)
{
	char fps[TRUST_CA_MAX * 2][TLS_FP_HEX_LEN + 1], ca[PATH_MAX];
	size_t n = 0;

	if (trust_ca_fingerprints(renew_ca(rw, ca), fps, ARRAY_LEN(fps), &n) != 0) {
		return 0; /* unreadable: none listed (the TLS contexts say why) */
	}
	for (size_t i = 0; i < n; i++) {
		if (json_array_add_str(arr, fps[i]) != 0) {
			return -1;
		}
	}
	return 0;
}

int
renew_health_json(struct renew *rw, cJSON *obj)
{
	struct trust_crl_status st;
	struct tls_identity id;
	char cert[PATH_MAX], key[PATH_MAX], na[32] = "", nu[32] = "";
	int renewed = 0;

	if (trust_identity_paths(rw->dir[RENEW_UPDATER], rw->cfg->cert, rw->cfg->key, cert, key,
		&renewed, NULL) != 0 ||
	    tls_identity_from_file(cert, rw->cfg->master_cn, &id, NULL) != 0) {
		memset(&id, 0, sizeof(id));
	}
	if (id.not_after != 0) {
		iso8601_utc(id.not_after, na, sizeof(na));
	}
	cJSON *mp = json_add_array(obj, "master_pins");
	cJSON *cas = json_add_array(obj, "ca_fingerprints");
	int mrc;

	if (cas == NULL || renew_ca_json(rw, cas) != 0) {
		return -1;
	}

	pthread_mutex_lock(&rw->mu);
	st = rw->crl_st;
	mrc = mp != NULL ? masterpins_json(&rw->pins, mp) : -1;
	pthread_mutex_unlock(&rw->mu);
	if (mrc != 0) {
		return -1;
	}
	if (st.state == TRUST_CRL_OK && st.next_update != 0 && time(NULL) > st.next_update) {
		st.state = TRUST_CRL_STALE;
	}
	if (st.next_update != 0) {
		iso8601_utc(st.next_update, nu, sizeof(nu));
	}
	if (json_add_str(obj, "cert_not_after", na) != 0 ||
	    json_add_str(obj, "cert_fingerprint", id.fingerprint) != 0 ||
	    json_add_bool(obj, "cert_renewed", renewed) != 0 ||
	    json_add_str(obj, "crl", trust_crl_state_name(st.state)) != 0 ||
	    json_add_int(obj, "crl_number", (long long)st.number) != 0 ||
	    json_add_str(obj, "crl_next_update", nu[0] != '\0' ? nu : NULL) != 0) {
		return -1;
	}
	return 0;
}

/* ---- requests ---- */

static void
renew_error(struct httpd_req *r, const struct err *e)
{
	unsigned status = err_http_status(e->kind);

	httpd_respond_error_detail(r, status >= 400 ? status : 500, err_msg(e), NULL, 0);
}

/* Authorise, take the one-at-a-time slot, attach a body buffer. */
static int
renew_begin(struct httpd_req *r, void *arg)
{
	struct renew *rw = arg;
	const struct tls_identity *id = httpd_req_identity(r);
	struct renew_req *q;
	struct err e = ERR_INIT;

	if (renew_master_allowed(rw, id != NULL ? id->fingerprint : NULL, &e) != 0) {
		renew_error(r, &e);
		return -1;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		err_set(&e, ERR_NOMEM, "out of memory");
		renew_error(r, &e);
		return -1;
	}
	pthread_mutex_lock(&rw->mu);
	if (rw->busy) {
		pthread_mutex_unlock(&rw->mu);
		free(q);
		err_set(&e, ERR_BUSY, "another certificate operation is under way");
		renew_error(r, &e);
		return -1;
	}
	rw->busy = 1;
	pthread_mutex_unlock(&rw->mu);
	httpd_req_set_data(r, q);
	return 0;
}

static int
renew_data(struct httpd_req *r, const struct httpd_part *part, const char *data, size_t len,
    void *arg)
{
	struct renew_req *q = httpd_req_data(r);
	struct err e = ERR_INIT;
	char *nb;
	size_t ncap;

	(void)part;
	(void)arg;
	/* The routes' max_body bounds each body; this only guards the arithmetic. */
	if (q->len + len > CRL_MAX_BYTES) {
		err_set(&e, ERR_TOO_LARGE, "body over %u bytes", CRL_MAX_BYTES);
		renew_error(r, &e);
		return -1;
	}
	if (q->len + len + 1 > q->cap) {
		ncap = q->cap == 0 ? 4096 : q->cap;
		while (ncap < q->len + len + 1) {
			ncap *= 2;
		}
		nb = realloc(q->buf, ncap);
		if (nb == NULL) {
			err_set(&e, ERR_NOMEM, "out of memory");
			renew_error(r, &e);
			return -1;
		}
		q->buf = nb;
		q->cap = ncap;
	}
	memcpy(q->buf + q->len, data, len);
	q->len += len;
	q->buf[q->len] = '\0';
	return 0;
}

static void
renew_cleanup(struct httpd_req *r, void *arg, int completed)
{
	struct renew *rw = arg;
	struct renew_req *q = httpd_req_data(r);

	(void)completed;
	if (q == NULL) {
		return;
	}
	pthread_mutex_lock(&rw->mu);
	rw->busy = 0;
	pthread_mutex_unlock(&rw->mu);
	free(q->buf);
	free(q);
	httpd_req_set_data(r, NULL);
}

cJSON *
renew_body_parse(const char *buf, size_t len, enum renew_which *which, const char **cert,
    struct err *e)
{
	struct body {
		char which[16];
		const char *cert;
	} b;
	const struct json_field fields[] = {
		JSON_F_STR("which", struct body, which, JSON_REQUIRED, 1),
		JSON_F_STRREF("cert", struct body, cert, cert != NULL ? JSON_REQUIRED : 0, 1,
		    RENEW_MAX_BODY),
	};
	cJSON *root;

	memset(&b, 0, sizeof(b));
	root = json_parse_object_ex(buf, len, RENEW_MAX_BODY, 8, e);
	if (root == NULL) {
		err_prefix(e, "body");
		e->kind = ERR_BAD_REQUEST;
		return NULL;
	}
	if (json_read_fields(root, fields, ARRAY_LEN(fields) - (cert == NULL), 0, &b, e) != 0) {
		cJSON_Delete(root);
		e->kind = ERR_BAD_REQUEST;
		return NULL;
	}
	if (strcmp(b.which, "updater") == 0) {
		*which = RENEW_UPDATER;
	} else if (strcmp(b.which, "agent") == 0) {
		*which = RENEW_AGENT;
	} else {
		cJSON_Delete(root);
		err_set(e, ERR_BAD_REQUEST, "key 'which': 'updater' or 'agent'");
		return NULL;
	}
	if (cert != NULL) {
		*cert = b.cert;
	}
	return root;
}

/* The request's body through renew_body_parse(). */
static cJSON *
renew_parse(struct httpd_req *r, enum renew_which *which, const char **cert, struct err *e)
{
	struct renew_req *q = httpd_req_data(r);

	return renew_body_parse(q->buf != NULL ? q->buf : "", q->len, which, cert, e);
}

/* POST /cert/csr: make (or reuse) the pending key, answer its CSR. */
static void
csr_end(struct httpd_req *r, void *arg)
{
	struct renew *rw = arg;
	enum renew_which w;
	struct err e = ERR_INIT;
	char *csr = NULL;
	cJSON *root = renew_parse(r, &w, NULL, &e), *o;

	if (root == NULL) {
		renew_error(r, &e);
		return;
	}
	cJSON_Delete(root);
	if (hostcert_prepare(rw->dir[w], rw->cn[w], &csr, &e) != 0) {
		err_prefix(&e, "%s CSR", renew_names[w]);
		renew_error(r, &e);
		return;
	}
	log_info("renewal: CSR for the %s certificate (%s)", renew_names[w], rw->cn[w]);
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "which", renew_names[w]) != 0 ||
	    json_add_str(o, "csr", csr) != 0) {
		cJSON_Delete(o);
		free(csr);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	free(csr);
	httpd_respond_json(r, 200, o);
}

/* After the switch: serve with the new identity (updater) or tell the agent. */
static int
renew_apply(struct renew *rw, enum renew_which w, struct err *e)
{
	if (w == RENEW_UPDATER) {
		if (rw->hooks.reload_self != NULL && rw->hooks.reload_self(rw->hooks.arg, e) != 0) {
			return err_prefix(e, "serving with the new certificate");
		}
		return 0;
	}
	renew_agent_pins(rw);
	renew_agent_owner(rw);
	if (rw->ag != NULL && agent_reload(rw->ag) < 0) {
		/* Not fatal: the agent takes the files at its next start. */
		log_warnx("renewal: the agent could not be told to reload");
	}
	return 0;
}

/* POST /cert/install: check the certificate, switch to it, start using it. */
static void
install_end(struct httpd_req *r, void *arg)
{
	struct renew *rw = arg;
	enum renew_which w;
	const char *cert = NULL;
	struct hostcert_installed in;
	struct err e = ERR_INIT;
	char na[32], cab[PATH_MAX];
	cJSON *root = renew_parse(r, &w, &cert, &e), *o;

	if (root == NULL) {
		renew_error(r, &e);
		return;
	}
	memset(&in, 0, sizeof(in));
	if (hostcert_install(rw->dir[w], (const unsigned char *)cert, strlen(cert),
		renew_ca(rw, cab), rw->cn[w], rw->cfg->master_cn, &in, &e) != 0) {
		cJSON_Delete(root);
		err_prefix(&e, "%s certificate", renew_names[w]);
		renew_error(r, &e);
		return;
	}
	cJSON_Delete(root);
	log_info("renewal: the %s certificate is now %s (serial %s, generation %d)",
	    renew_names[w], in.fingerprint, in.serial, in.gen);
	if (renew_apply(rw, w, &e) != 0) {
		/* The files are in place: a restart uses them. */
		log_warnx("renewal: %s", err_msg(&e));
		renew_error(r, &e);
		return;
	}
	iso8601_utc(in.not_after, na, sizeof(na));
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "which", renew_names[w]) != 0 ||
	    json_add_str(o, "fingerprint", in.fingerprint) != 0 ||
	    json_add_str(o, "serial", in.serial) != 0 || json_add_str(o, "not_after", na) != 0 ||
	    json_add_int(o, "gen", in.gen) != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

/* POST /cert/confirm: the master talked to the new identity; drop the old pair. */
static void
confirm_end(struct httpd_req *r, void *arg)
{
	struct renew *rw = arg;
	enum renew_which w;
	struct err e = ERR_INIT;
	cJSON *root = renew_parse(r, &w, NULL, &e), *o;

	if (root == NULL) {
		renew_error(r, &e);
		return;
	}
	cJSON_Delete(root);
	if (hostcert_confirm(rw->dir[w], &e) != 0) {
		err_prefix(&e, "%s certificate", renew_names[w]);
		renew_error(r, &e);
		return;
	}
	if (w == RENEW_AGENT) {
		renew_agent_pins(rw);
	}
	log_info("renewal: the %s certificate is confirmed; the previous one is gone",
	    renew_names[w]);
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "which", renew_names[w]) != 0 ||
	    json_add_bool(o, "confirmed", 1) != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

/* PUT /crl: a newer CRL of our CA, stored, enforced here and by the agent. */
static void
crl_end(struct httpd_req *r, void *arg)
{
	struct renew *rw = arg;
	struct renew_req *q = httpd_req_data(r);
	struct trust_crl_status st;
	unsigned long long number = 0, current;
	struct err e = ERR_INIT;
	char nu[32] = "", cab[PATH_MAX];
	cJSON *o;

	pthread_mutex_lock(&rw->mu);
	current = rw->crl_st.number;
	pthread_mutex_unlock(&rw->mu);
	if (q->len == 0) {
		err_set(&e, ERR_BAD_REQUEST, "empty body: the CRL is required");
		renew_error(r, &e);
		return;
	}
	if (trust_check_crl((const unsigned char *)q->buf, q->len, renew_ca(rw, cab), current,
		&number,
		&e) != 0) {
		renew_error(r, &e);
		return;
	}
	if (fs_write_atomic(rw->crl, q->buf, q->len, 0644) != 0) {
		err_sys(&e, "%s", rw->crl);
		renew_error(r, &e);
		return;
	}
	if (trust_load_crl(rw->crl, renew_ca(rw, cab), current, &st, &e) != 0) {
		renew_error(r, &e);
		return;
	}
	pthread_mutex_lock(&rw->mu);
	rw->crl_st = st;
	pthread_mutex_unlock(&rw->mu);
	if (rw->ag != NULL && agent_reload(rw->ag) < 0) {
		log_warnx("CRL: the agent could not be told to reload");
	}
	log_info("CRL %llu installed: %zu revoked", st.number, st.revoked);
	if (st.next_update != 0) {
		iso8601_utc(st.next_update, nu, sizeof(nu));
	}
	o = cJSON_CreateObject();
	if (o == NULL || json_add_str(o, "crl", trust_crl_state_name(st.state)) != 0 ||
	    json_add_int(o, "crl_number", (long long)st.number) != 0 ||
	    json_add_int(o, "revoked", (long long)st.revoked) != 0 ||
	    json_add_str(o, "crl_next_update", nu[0] != '\0' ? nu : NULL) != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

/*
 * PUT /pins/master: {"add": FP} accepts FP beside the master pins in force;
 * {"confirm": FP}, over a connection presenting FP, makes it the only one.
 */
static void
pins_end(struct httpd_req *r, void *arg)
{
	struct renew *rw = arg;
	struct renew_req *q = httpd_req_data(r);
	const struct tls_identity *id = httpd_req_identity(r);
	enum masterpins_op op;
	char fp[TLS_FP_HEX_LEN + 1];
	struct err e = ERR_INIT;
	cJSON *o, *arr;
	int rc, pinned;

	if (masterpins_request_parse(q->buf != NULL ? q->buf : "", q->len, &op, fp, &e) != 0) {
		renew_error(r, &e);
		return;
	}
	if (op == MASTERPINS_CONFIRM && (id == NULL || strcasecmp(id->fingerprint, fp) != 0)) {
		/* Only the new certificate itself proves the master switched to it. */
		err_set(&e, ERR_CONFLICT,
		    "confirm the master pin %s over a connection that presents it", fp);
		renew_error(r, &e);
		return;
	}
	o = cJSON_CreateObject();
	arr = o != NULL ? json_add_array(o, "pins") : NULL;
	pthread_mutex_lock(&rw->mu);
	rc = op == MASTERPINS_ADD ? masterpins_add(&rw->pins, fp, &e)
				  : masterpins_confirm(&rw->pins, fp, &e);
	pinned = masterpins_pinned(&rw->pins);
	if (rc == 0 && arr != NULL && masterpins_json(&rw->pins, arr) != 0) {
		arr = NULL;
	}
	pthread_mutex_unlock(&rw->mu);
	if (rc != 0) {
		cJSON_Delete(o);
		err_prefix(&e, "master pin");
		renew_error(r, &e);
		return;
	}
	log_info("master pin %s %s", fp, op == MASTERPINS_ADD ? "accepted" : "confirmed: the only one");
	if (arr == NULL || json_add_bool(o, "pinned", pinned) != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

/*
 * PUT /trust: a CA bundle (PEM) from a CA rotation, trusted from now on by
 * the updater (served and probe connections, renewals, CRLs) and, after a
 * SIGHUP, by the agent. Refused when it would not trust this host's own
 * certificates in force.
 */
static void
trust_end(struct httpd_req *r, void *arg)
{
	struct renew *rw = arg;
	struct renew_req *q = httpd_req_data(r);
	struct hostcert_installed cur, prev;
	struct err e = ERR_INIT;
	char ucert[PATH_MAX], ukey[PATH_MAX], acert[PATH_MAX], path[2][PATH_MAX];
	const char *must[3] = { ucert, NULL, NULL };
	int have;
	cJSON *o, *arr;

	if (renew_self_paths(rw, ucert, ukey, &e) != 0) {
		renew_error(r, &e);
		return;
	}
	have = hostcert_in_force(rw->dir[RENEW_AGENT], rw->cfg->master_cn, &cur, &prev, NULL);
	if (have > 0 && (have & HOSTCERT_HAVE_CURRENT) &&
	    (size_t)snprintf(acert, sizeof(acert), "%s/%s/%s", rw->dir[RENEW_AGENT],
		TRUST_CURRENT, TRUST_CERT_FILE) < sizeof(acert)) {
		must[1] = acert;
	}
	if (trust_check_ca_bundle((const unsigned char *)(q->buf != NULL ? q->buf : ""), q->len,
		must, &e) != 0) {
		renew_error(r, &e);
		return;
	}
	/* The agent's copy first: a crash in between leaves the updater on the old one. */
	for (int w = RENEW_AGENT; w >= RENEW_UPDATER; w--) {
		if ((size_t)snprintf(path[w], PATH_MAX, "%s/%s", rw->dir[w], TRUST_CA_FILE) >=
			PATH_MAX ||
		    fs_write_atomic(path[w], q->buf, q->len, 0644) != 0) {
			err_sys(&e, "%s", path[w]);
			renew_error(r, &e);
			return;
		}
		testhook_point(w == RENEW_AGENT ? "trust.agent_written" : "trust.written");
	}
	if (rw->hooks.reload_self != NULL && rw->hooks.reload_self(rw->hooks.arg, &e) != 0) {
		log_warnx("trust: %s", err_msg(&e));
		renew_error(r, &e);
		return;
	}
	if (rw->ag != NULL && agent_reload(rw->ag) < 0) {
		log_warnx("trust: the agent could not be told to reload");
	}
	log_info("trust: a new CA bundle is in force");
	o = cJSON_CreateObject();
	arr = o != NULL ? json_add_array(o, "ca_fingerprints") : NULL;
	if (arr == NULL || renew_ca_json(rw, arr) != 0) {
		cJSON_Delete(o);
		httpd_respond_error_detail(r, 500, "out of memory", NULL, 0);
		return;
	}
	httpd_respond_json(r, 200, o);
}

const struct httpd_route *
renew_routes(struct renew *rw, size_t *n)
{
	const unsigned master = TLS_ROLEBIT(TLS_ROLE_MASTER);
	const struct httpd_route routes[RENEW_NROUTES] = {
		{ .method = "POST", .path = "/cert/csr", .roles = master,
		    .max_body = RENEW_MAX_BODY, .on_begin = renew_begin, .on_data = renew_data,
		    .on_end = csr_end, .on_cleanup = renew_cleanup, .arg = rw },
		{ .method = "POST", .path = "/cert/install", .roles = master,
		    .max_body = RENEW_MAX_BODY, .on_begin = renew_begin, .on_data = renew_data,
		    .on_end = install_end, .on_cleanup = renew_cleanup, .arg = rw },
		{ .method = "POST", .path = "/cert/confirm", .roles = master,
		    .max_body = RENEW_MAX_BODY, .on_begin = renew_begin, .on_data = renew_data,
		    .on_end = confirm_end, .on_cleanup = renew_cleanup, .arg = rw },
		{ .method = "PUT", .path = "/crl", .roles = master, .max_body = CRL_MAX_BYTES,
		    .on_begin = renew_begin, .on_data = renew_data, .on_end = crl_end,
		    .on_cleanup = renew_cleanup, .arg = rw },
		{ .method = "PUT", .path = "/pins/master", .roles = master,
		    .max_body = MASTERPINS_MAX_BYTES, .on_begin = renew_begin, .on_data = renew_data,
		    .on_end = pins_end, .on_cleanup = renew_cleanup, .arg = rw },
		{ .method = "PUT", .path = "/trust", .roles = master, .max_body = TRUST_CA_MAX_BYTES,
		    .on_begin = renew_begin, .on_data = renew_data, .on_end = trust_end,
		    .on_cleanup = renew_cleanup, .arg = rw },
	};

	memcpy(rw->routes, routes, sizeof(routes));
	*n = RENEW_NROUTES;
	return rw->routes;
}
