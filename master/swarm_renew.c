#include "master/swarm_renew.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/httpc.h"
#include "common/json.h"
#include "common/log.h"
#include "pki/crl.h"
#include "pki/pki.h"

#define RENEW_PEM_MAX (64 * 1024)

static const char *const which_name[2] = { "updater", "agent" };

/*
 * Ask H's updater (AGENT: its agent): METHOD PATH with BODY (LEN bytes, or
 * NULL) of type CTYPE. The JSON answer of a 200, else NULL with E; *STATUS
 * (may be NULL) gets the HTTP status, 0 when there was no answer.
 */
cJSON *
swarm_renew_call_raw(struct swarm_ctx *c, const struct reg_host *h, int agent, const char *method,
    const char *path, const char *ctype, const void *body, size_t len, int *status,
    struct err *e)
{
	const char *headers[2] = { ctype, NULL };
	struct swarm_target_buf tb;
	struct httpc_target t;
	struct httpc_response resp;
	cJSON *tree = NULL, *d;

	memset(&resp, 0, sizeof(resp));
	if (status != NULL) {
		*status = 0;
	}
	if (swarm_target(h, agent, &t, &tb, c->timeout_ms, e) != 0) {
		err_rekind(e, ERR_CONFIG);
		return NULL;
	}
	t.connect_timeout_ms = 5000;
	if (httpc_fetch(c->tls, &t, method, path, body != NULL ? headers : NULL, body, len, &resp,
		e) != 0) {
		err_prefix(e, "%s %s", method, path);
		goto out;
	}
	if (status != NULL) {
		*status = resp.status;
	}
	tree = json_parse_object(resp.body, resp.body_len, e);
	if (resp.status != 200) {
		d = tree != NULL ? cJSON_GetObjectItemCaseSensitive(tree, "detail") : NULL;
		err_set(e, ERR_PROTOCOL, "%s %s: HTTP %d: %s", method, path, resp.status,
		    d != NULL && cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "error"))
			? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "error"))
			: "(no detail)");
		cJSON_Delete(tree);
		tree = NULL;
		goto out;
	}
	if (tree == NULL) {
		err_prefix(e, "%s %s", method, path);
	}
out:
	httpc_response_free(&resp);
	return tree;
}

cJSON *
swarm_renew_call(struct swarm_ctx *c, const struct reg_host *h, int agent, const char *method,
    const char *path, const cJSON *body, int *status, struct err *e)
{
	char *text = NULL;
	cJSON *tree;

	if (body != NULL && (text = cJSON_PrintUnformatted(body)) == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	tree = swarm_renew_call_raw(c, h, agent, method, path, "Content-Type: application/json",
	    text, text != NULL ? strlen(text) : 0, status, e);
	free(text);
	return tree;
}

/* The same without the status. */
static cJSON *
renew_call(struct swarm_ctx *c, const struct reg_host *h, int agent, const char *method,
    const char *path, const cJSON *body, struct err *e)
{
	return swarm_renew_call(c, h, agent, method, path, body, NULL, e);
}

/* The string member KEY of O, or NULL. */
static const char *
renew_str(const cJSON *o, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* POST PATH {"which": W[, "cert": CERT]} to H's updater. */
static cJSON *
renew_post(struct swarm_ctx *c, const struct reg_host *h, const char *path, int w,
    const char *cert, struct err *e)
{
	cJSON *body = cJSON_CreateObject(), *ans;

	if (body == NULL || json_add_str(body, "which", which_name[w]) != 0 ||
	    (cert != NULL && json_add_str(body, "cert", cert) != 0)) {
		cJSON_Delete(body);
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	ans = renew_call(c, h, 0, "POST", path, body, e);
	cJSON_Delete(body);
	return ans;
}

/*
 * The extra SANs of H (at most REG_SANS_MAX into OUT, *N): the registry's
 * record of its enrollment's --san; for a host enrolled before the registry
 * kept them, the names of certificate W in its enrollment bundle
 * (HOME/hosts/NAME/), when that is still there.
 */
static int
renew_sans(struct swarm_ctx *c, const struct reg_host *h, int w,
    char (*out)[REG_SAN_LEN + 1], size_t *n, struct err *e)
{
	char path[PATH_MAX];
	cJSON *d = NULL;
	const cJSON *it;

	if (registry_get_sans(c->reg, h->name, out, REG_SANS_MAX, n, e) != REGISTRY_OK) {
		return -1;
	}
	if (*n > 0 || (size_t)snprintf(path, sizeof(path), "%s/hosts/%s/%s.crt", c->home, h->name,
			  which_name[w]) >= sizeof(path) ||
	    access(path, F_OK) != 0 || pki_describe(path, NULL, &d, NULL) != 0) {
		return 0;
	}
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(d, "san"))
	{
		const char *v = cJSON_GetStringValue(it);
		const char *colon = v != NULL ? strchr(v, ':') : NULL;

		if (colon != NULL && *n < REG_SANS_MAX && strlen(colon + 1) <= REG_SAN_LEN &&
		    colon[1] != '\0') {
			(void)snprintf(out[(*n)++], REG_SAN_LEN + 1, "%s", colon + 1);
		}
	}
	cJSON_Delete(d);
	return 0;
}

int
swarm_renew_certify(const char *home, struct pki_issue_opts *io, const char *tag,
    const char *csr, int days, long long test_valid_s, char **pem, struct tls_identity *id,
    struct err *e)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	size_t len = 0;
	int rc = -1;

	*pem = NULL;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/renew", home) >= sizeof(dir) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/%s.crt", dir, tag) >= sizeof(tmp)) {
		return err_set(e, ERR_CONFIG, "home path too long");
	}
	if (fs_mkdir_p(dir, 0700) != 0) {
		return err_sys(e, "%s", dir);
	}
	io->days = days;
	if (test_valid_s > 0) {
		io->not_before = time(NULL) - PKI_BACKDATE_S;
		io->not_after = time(NULL) + (time_t)test_valid_s;
	}
	io->csr = (const unsigned char *)csr;
	io->csr_len = strlen(csr);
	io->cert_out = tmp;
	io->force = 1;
	if (pki_issue(home, io, e) != 0) {
		return err_prefix(e, "signing the CSR");
	}
	if (fs_read_file(tmp, RENEW_PEM_MAX, pem, &len) != 0) {
		err_sys(e, "%s", tmp);
		goto out;
	}
	if (tls_identity_from_file(tmp, io->master_cn, id, e) != 0) {
		if (e != NULL) {
			e->kind = ERR_INTERNAL; /* we just wrote it: not the peer's fault */
		}
		free(*pem);
		*pem = NULL;
		goto out;
	}
	rc = 0;
out:
	/* The CA keeps its own copy (ca/issued/); this one was only the hand-over. */
	if (unlink(tmp) != 0 && errno != ENOENT) {
		log_warn("%s", tmp);
	}
	return rc;
}

/* Sign CSR for certificate W of H: the registry's name, role, address and SANs. *PEM, *ID: the result. */
static int
renew_sign(struct swarm_ctx *c, const struct reg_host *h, int w, const char *csr,
    const struct swarm_renew_opts *o, char **pem, struct tls_identity *id, struct err *e)
{
	struct pki_issue_opts io;
	const char *sans[REG_SANS_MAX + 1];
	char extra[REG_SANS_MAX][REG_SAN_LEN + 1]; /* 8 KiB */
	char tag[REG_NAME_MAX + 16];
	size_t n_sans = 0, n_extra = 0;

	*pem = NULL;
	/* The address, and the extra names the host was enrolled with. */
	sans[n_sans++] = h->address;
	if (renew_sans(c, h, w, extra, &n_extra, e) != 0) {
		return -1;
	}
	for (size_t i = 0; i < n_extra; i++) {
		if (strcasecmp(extra[i], h->address) != 0) {
			sans[n_sans++] = extra[i];
		}
	}
	(void)snprintf(tag, sizeof(tag), "%s-%s", h->name, which_name[w]);
	pki_issue_opts_init(&io);
	io.name = h->name;
	io.role = w == 0 ? TLS_ROLE_UPDATER : TLS_ROLE_AGENT;
	io.sans = sans;
	io.n_sans = n_sans;
	return swarm_renew_certify(c->home, &io, tag, csr, o->days, o->test_valid_s, pem, id, e);
}

/* Certificate W's not-after as the host reports it in /health (0 unknown). */
static time_t
renew_not_after(struct swarm_ctx *c, const struct reg_host *h, int w, char *iso, size_t len,
    struct err *e)
{
	cJSON *tree = renew_call(c, h, w, "GET", "/health", NULL, e);
	const char *s = tree != NULL ? renew_str(tree, "cert_not_after") : NULL;
	time_t t = 0;

	if (s != NULL && iso8601_parse(s, &t) == 0) {
		(void)snprintf(iso, len, "%s", s);
	} else if (tree != NULL) {
		err_set(e, ERR_PROTOCOL, "the %s's /health has no cert_not_after", which_name[w]);
		t = 0;
	}
	cJSON_Delete(tree);
	return t;
}

/* Step 5: a handshake pinned to NEW_FP alone, retried for WAIT_MS while the host reloads. */
static int
renew_check_new(struct swarm_ctx *c, const struct reg_host *h, int w, const char *new_fp,
    int wait_ms, struct err *e)
{
	struct reg_host only = *h;
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	time_t deadline = time(NULL) + wait_ms / 1000;
	cJSON *tree;

	(void)snprintf(w == 0 ? only.updater_fp : only.agent_fp, REG_FP_LEN + 1, "%s", new_fp);
	only.updater_fp_next[0] = '\0';
	only.agent_fp_next[0] = '\0';
	for (;;) {
		err_clear(e);
		tree = renew_call(c, &only, w, "GET", "/health", NULL, e);
		if (tree != NULL) {
			cJSON_Delete(tree);
			return 0;
		}
		if (time(NULL) >= deadline) {
			return err_prefix(e, "the %s does not present its new certificate",
			    which_name[w]);
		}
		(void)nanosleep(&ts, NULL);
	}
}

/*
 * Finish a renewal cut short after the host switched (a crash, a lost
 * answer): when H already presents the recorded next certificate, confirm
 * it on the host and make it the only pin. Otherwise the next pin stays
 * until this renewal replaces it.
 */
static void
renew_finish_cut_short(struct swarm_ctx *c, const struct reg_host *h, int w)
{
	const char *next = w == 0 ? h->updater_fp_next : h->agent_fp_next;
	struct err e = ERR_INIT;
	cJSON *ans;

	if (next[0] == '\0' || renew_check_new(c, h, w, next, 0, &e) != 0) {
		return;
	}
	ans = renew_post(c, h, "/cert/confirm", w, NULL, &e);
	cJSON_Delete(ans);
	if (ans == NULL) {
		log_warnx("%s: finishing the %s certificate's last renewal: %s", h->name,
		    which_name[w], err_msg(&e));
		return;
	}
	if (registry_promote_next_fp(c->reg, h->name, w == 1, next, &e) != REGISTRY_OK) {
		log_warnx("%s: %s", h->name, err_msg(&e));
		return;
	}
	log_info("%s: the %s certificate's last renewal is finished", h->name, which_name[w]);
}

/* Renew certificate W of H (the registry row is re-read: pins may have moved). */
static int
renew_one(struct swarm_ctx *c, const char *name, int w, const struct swarm_renew_opts *o,
    struct swarm_renew_cert *out, struct err *e)
{
	struct reg_host h;
	struct tls_identity id;
	char *cert = NULL;
	const char *csr, *fp;
	cJSON *ans = NULL;
	time_t na;
	int rc = -1;

	if (registry_get_host(c->reg, name, &h, e) != REGISTRY_OK) {
		return -1;
	}
	renew_finish_cut_short(c, &h, w);
	if (registry_get_host(c->reg, name, &h, e) != REGISTRY_OK) {
		return -1;
	}
	(void)snprintf(out->old_fp, sizeof(out->old_fp), "%s", w == 0 ? h.updater_fp : h.agent_fp);
	na = renew_not_after(c, &h, w, out->old_not_after, sizeof(out->old_not_after), e);
	if (na == 0) {
		return -1;
	}
	if (!o->force && (long long)(na - time(NULL)) > o->before_s) {
		(void)snprintf(out->result, sizeof(out->result), "current");
		return 0;
	}
	/* 1-2: the host's CSR, signed with what the registry says. */
	ans = renew_post(c, &h, "/cert/csr", w, NULL, e);
	csr = ans != NULL ? renew_str(ans, "csr") : NULL;
	if (csr == NULL) {
		if (ans != NULL) {
			err_set(e, ERR_PROTOCOL, "POST /cert/csr: no csr in the answer");
		}
		goto out;
	}
	if (renew_sign(c, &h, w, csr, o, &cert, &id, e) != 0) {
		goto out;
	}
	cJSON_Delete(ans);
	ans = NULL;
	(void)snprintf(out->new_fp, sizeof(out->new_fp), "%s", id.fingerprint);
	iso8601_utc(id.not_after, out->new_not_after, sizeof(out->new_not_after));
	/* 3: from here on both certificates are accepted. */
	if (registry_set_next_fp(c->reg, name, w == 1, out->new_fp, e) != REGISTRY_OK) {
		goto out;
	}
	if (registry_get_host(c->reg, name, &h, e) != REGISTRY_OK) {
		goto out;
	}
	/* 4: the host switches. */
	ans = renew_post(c, &h, "/cert/install", w, cert, e);
	fp = ans != NULL ? renew_str(ans, "fingerprint") : NULL;
	if (fp == NULL || strcmp(fp, out->new_fp) != 0) {
		if (ans != NULL) {
			err_set(e, ERR_PROTOCOL, "POST /cert/install: the host installed %s, not %s",
			    fp != NULL ? fp : "nothing", out->new_fp);
		}
		goto out;
	}
	cJSON_Delete(ans);
	ans = NULL;
	/* 5-7: proven in use, then the old pair and the old pin go. */
	if (renew_check_new(c, &h, w, out->new_fp, SWARM_RENEW_HANDSHAKE_MS, e) != 0) {
		goto out;
	}
	ans = renew_post(c, &h, "/cert/confirm", w, NULL, e);
	if (ans == NULL) {
		goto out;
	}
	if (registry_promote_next_fp(c->reg, name, w == 1, out->new_fp, e) != REGISTRY_OK) {
		goto out;
	}
	(void)snprintf(out->result, sizeof(out->result), "renewed");
	rc = 0;
out:
	cJSON_Delete(ans);
	free(cert);
	return rc;
}

int
swarm_crl_push_host(struct swarm_ctx *c, const struct reg_host *h, unsigned long long *number,
    struct err *e)
{
	char path[PATH_MAX], *crl = NULL;
	size_t len = 0;
	cJSON *ans;
	double n;

	*number = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", c->home, CRL_DER_FILE) >=
	    sizeof(path)) {
		return err_set(e, ERR_CONFIG, "home path too long");
	}
	if (fs_read_file(path, CRL_MAX_BYTES, &crl, &len) != 0) {
		if (errno == ENOENT) {
			return err_set(e, ERR_NOT_FOUND, "no CRL signed yet (tandem pki crl)");
		}
		return err_sys(e, "%s", path);
	}
	ans = swarm_renew_call_raw(c, h, 0, "PUT", "/crl", "Content-Type: application/pkix-crl", crl,
	    len, NULL, e);
	free(crl);
	if (ans == NULL) {
		return -1;
	}
	n = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ans, "crl_number"));
	cJSON_Delete(ans);
	if (!(n >= 1)) {
		return err_set(e, ERR_PROTOCOL, "PUT /crl: no crl_number in the answer");
	}
	*number = (unsigned long long)n;
	return 0;
}

int
swarm_renew_host(struct swarm_ctx *c, const struct reg_host *h, const struct swarm_renew_opts *o,
    struct swarm_renew_host *out)
{
	struct err e = ERR_INIT;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	(void)snprintf(out->host, sizeof(out->host), "%s", h->name);
	for (int w = 0; w < 2; w++) {
		struct swarm_renew_cert *rc_out = &out->cert[w];
		if (w == 0 && h->updater_fp[0] == '\0') {
			(void)snprintf(rc_out->result, sizeof(rc_out->result), "skipped");
			(void)snprintf(rc_out->error, sizeof(rc_out->error),
			    "no updater enrolled: renewal goes through the updater");
			rc = -1;
			break;
		}
		if (o->which != 0 && !(o->which & (1u << w))) {
			(void)snprintf(rc_out->result, sizeof(rc_out->result), "skipped");
			continue;
		}
		err_clear(&e);
		if (renew_one(c, h->name, w, o, rc_out, &e) != 0) {
			(void)snprintf(rc_out->result, sizeof(rc_out->result), "failed");
			(void)snprintf(rc_out->error, sizeof(rc_out->error), "%s", err_msg(&e));
			log_warnx("%s: %s certificate: %s", h->name, which_name[w], err_msg(&e));
			rc = -1;
			/* The agent's renewal goes through the updater: stop at its failure. */
			if (w == 0) {
				(void)snprintf(out->cert[1].result, sizeof(out->cert[1].result),
				    "skipped");
				break;
			}
		}
	}
	/* Every renewal also brings the host the current CRL (none signed yet: nothing to send). */
	if (rc == 0) {
		unsigned long long number;
		err_clear(&e);
		if (swarm_crl_push_host(c, h, &number, &e) != 0 && e.kind != ERR_NOT_FOUND) {
			log_warnx("%s: CRL: %s", h->name, err_msg(&e));
		}
	}
	return rc;
}
