#include "master/certs_ca.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/testhook.h"
#include "master/certs.h"
#include "master/swarm_push.h"
#include "master/swarm_renew.h"
#include "pki/crl.h"
#include "pki/pki.h"
#include "pki/trust.h"

#define CA_PEM_MAX (64 * 1024)
/* A re-signed CRL's validity at a rotation (as `tandem pki crl` by default). */
#define CA_CRL_DAYS 30

struct ca_paths {
	char key[PATH_MAX], crt[PATH_MAX];           /* HOME/ca/ca.{key,crt}: the signing CA */
	char next_dir[PATH_MAX], next_key[PATH_MAX], next_crt[PATH_MAX];
	char ret_dir[PATH_MAX], ret_key[PATH_MAX], ret_crt[PATH_MAX];
	char bundle[PATH_MAX], crl[PATH_MAX];
};

static int
ca_paths(const char *home, struct ca_paths *p, struct err *e)
{
	if (pki_path(home, PKI_CA_KEY, p->key, sizeof(p->key)) != 0 ||
	    pki_path(home, PKI_CA_CRT, p->crt, sizeof(p->crt)) != 0 ||
	    pki_path(home, PKI_CA_NEXT_DIR, p->next_dir, sizeof(p->next_dir)) != 0 ||
	    pki_path(home, PKI_CA_NEXT_DIR "/ca.key", p->next_key, sizeof(p->next_key)) != 0 ||
	    pki_path(home, PKI_CA_NEXT_DIR "/ca.crt", p->next_crt, sizeof(p->next_crt)) != 0 ||
	    pki_path(home, PKI_CA_RETIRED_DIR, p->ret_dir, sizeof(p->ret_dir)) != 0 ||
	    pki_path(home, PKI_CA_RETIRED_DIR "/ca.key", p->ret_key, sizeof(p->ret_key)) != 0 ||
	    pki_path(home, PKI_CA_RETIRED_DIR "/ca.crt", p->ret_crt, sizeof(p->ret_crt)) != 0 ||
	    pki_path(home, PKI_CA_BUNDLE, p->bundle, sizeof(p->bundle)) != 0 ||
	    pki_path(home, CRL_DER_FILE, p->crl, sizeof(p->crl)) != 0) {
		return err_set(e, ERR_CONFIG, "home directory path too long");
	}
	return 0;
}

static int
ca_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* The concatenation of the PEM files A and B (B may be NULL) into PATH, atomically. */
static int
ca_write_bundle(const char *path, const char *a, const char *b, struct err *e)
{
	char *x = NULL, *y = NULL, *both = NULL;
	size_t xl = 0, yl = 0;
	int rc = -1;

	if (fs_read_file(a, CA_PEM_MAX, &x, &xl) != 0) {
		return err_sys(e, "%s", a);
	}
	if (b != NULL && fs_read_file(b, CA_PEM_MAX, &y, &yl) != 0) {
		err_sys(e, "%s", b);
		goto out;
	}
	both = malloc(xl + yl + 2);
	if (both == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(both, x, xl);
	if (xl > 0 && x[xl - 1] != '\n') {
		both[xl++] = '\n';
	}
	if (yl > 0) {
		memcpy(both + xl, y, yl);
	}
	if (fs_write_atomic(path, both, xl + yl, 0644) != 0) {
		err_sys(e, "%s", path);
		goto out;
	}
	rc = 0;
out:
	free(x);
	free(y);
	free(both);
	return rc;
}

/* The enrolled hosts that have an updater (*OUT malloc'd, *N) and room for results. */
static int
ca_hosts(struct swarm_ctx *c, struct reg_host **out, size_t *n, struct certs_ca_result *r,
    struct err *e)
{
	struct reg_host *all = NULL;
	size_t nall = 0;

	*out = NULL;
	*n = 0;
	if (registry_list_hosts(c->reg, 0, &all, &nall, e) != REGISTRY_OK) {
		return -1;
	}
	r->hosts = calloc(nall > 0 ? nall : 1, sizeof(*r->hosts));
	if (r->hosts == NULL) {
		free(all);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < nall; i++) {
		if (all[i].updater_fp[0] != '\0') {
			all[(*n)++] = all[i];
		}
	}
	r->n = *n;
	*out = all;
	return 0;
}

/* PUT /trust with the PEM file BUNDLE to H. */
static int
ca_push(struct swarm_ctx *c, const struct reg_host *h, const char *bundle, struct err *e)
{
	char *pem = NULL;
	size_t len = 0;
	cJSON *ans;

	if (fs_read_file(bundle, CA_PEM_MAX, &pem, &len) != 0) {
		return err_sys(e, "%s", bundle);
	}
	ans = swarm_renew_call_raw(c, h, 0, "PUT", "/trust",
	    "Content-Type: application/x-pem-file", pem, len, NULL, e);
	free(pem);
	if (ans == NULL) {
		return -1;
	}
	cJSON_Delete(ans);
	return 0;
}

static void
ca_note(struct certs_ca_host *r, const char *host, const char *result, const struct err *e)
{
	(void)snprintf(r->host, sizeof(r->host), "%s", host);
	(void)snprintf(r->result, sizeof(r->result), "%s", result);
	if (e != NULL) {
		(void)snprintf(r->error, sizeof(r->error), "%s", err_msg(e));
		log_warnx("%s: %s", host, err_msg(e));
	}
}

int
certs_ca_rotate_begin(const char *home, int timeout_s, struct certs_ca_result *out,
    struct err *e)
{
	struct ca_paths p;
	struct swarm_ctx c;
	struct reg_host *hosts = NULL;
	size_t n = 0, failed = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	if (ca_paths(home, &p, e) != 0) {
		return -1;
	}
	/* 1. The new CA, and the bundle of both; the old one is kept in retired/. */
	if (!ca_exists(p.ret_crt)) {
		if (!ca_exists(p.next_key) || !ca_exists(p.next_crt)) {
			if (fs_mkdir_p(p.next_dir, 0700) != 0) {
				return err_sys(e, "%s", p.next_dir);
			}
			if (pki_ca_new(p.next_key, p.next_crt, e) != 0) {
				return err_prefix(e, "the new CA");
			}
		}
		testhook_point("ca.next_made");
		if (ca_write_bundle(p.bundle, p.crt, p.next_crt, e) != 0) {
			return -1;
		}
		testhook_point("ca.bundle_written");
		if (fs_mkdir_p(p.ret_dir, 0700) != 0 || fs_copy_file(p.key, p.ret_key, 0600) != 0 ||
		    fs_copy_file(p.crt, p.ret_crt, 0644) != 0) {
			return err_sys(e, "%s", p.ret_dir);
		}
		testhook_point("ca.retired_kept");
	}
	/* 2. The new CA signs from now on (key first; a crash in between is redone here). */
	if (ca_exists(p.next_dir)) {
		if (fs_copy_file(p.next_key, p.key, 0600) != 0) {
			return err_sys(e, "%s", p.key);
		}
		testhook_point("ca.key_switched");
		if (fs_copy_file(p.next_crt, p.crt, 0644) != 0) {
			return err_sys(e, "%s", p.crt);
		}
		if (fs_rmtree(p.next_dir) != 0) {
			return err_sys(e, "%s", p.next_dir);
		}
		testhook_point("ca.switched");
		/* A CRL signed by the new CA, for the hosts' next CRL check. */
		if (ca_exists(p.crl)) {
			unsigned long long number;
			if (certs_crl_issue(home, 0, time(NULL) + (time_t)CA_CRL_DAYS * 86400, &number,
				e) != 0) {
				return err_prefix(e, "re-signing the CRL with the new CA");
			}
		}
	}
	if (pki_fingerprint_file(p.crt, out->new_ca_fp, e) != 0 ||
	    pki_fingerprint_file(p.ret_crt, out->old_ca_fp, e) != 0) {
		return -1;
	}
	/* 3. Every updater (and its agent) trusts both. */
	if (swarm_ctx_open(&c, home, timeout_s, e) != 0) {
		return err_rekind(e, ERR_CONFIG);
	}
	if (ca_hosts(&c, &hosts, &n, out, e) != 0) {
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct err he = ERR_INIT;
		unsigned long long number;

		if (ca_push(&c, &hosts[i], p.bundle, &he) != 0) {
			ca_note(&out->hosts[i], hosts[i].name, "failed", &he);
			failed++;
			continue;
		}
		if (swarm_crl_push_host(&c, &hosts[i], &number, &he) != 0 && he.kind != ERR_NOT_FOUND) {
			log_warnx("%s: CRL: %s", hosts[i].name, err_msg(&he));
		}
		ca_note(&out->hosts[i], hosts[i].name, "trusted", NULL);
	}
	if (failed > 0) {
		err_set(e, ERR_UNREACHABLE,
		    "%zu of %zu hosts did not take the CA bundle: run 'tandem pki ca-rotate begin' "
		    "again before renewing them", failed, n);
		goto out;
	}
	rc = 0;
out:
	swarm_ctx_close(&c);
	free(hosts);
	return rc;
}

int
certs_ca_rotate_finish(const char *home, int timeout_s, struct certs_ca_result *out,
    struct err *e)
{
	struct ca_paths p;
	struct swarm_ctx c;
	struct reg_host *hosts = NULL;
	struct tls_ctx *only_new = NULL, *own;
	struct tls_opts to;
	char mcrt[PATH_MAX], mkey[PATH_MAX], mcn[PKI_CN_MAX + 1];
	size_t n = 0, failed = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	if (ca_paths(home, &p, e) != 0) {
		return -1;
	}
	if (!ca_exists(p.ret_crt)) {
		return err_set(e, ERR_CONFLICT, "no CA rotation is under way ('tandem pki ca-rotate "
						"begin' starts one)");
	}
	if (ca_exists(p.next_dir)) {
		return err_set(e, ERR_CONFLICT, "the rotation's begin was cut short: run 'tandem "
						"pki ca-rotate begin' again");
	}
	if (pki_fingerprint_file(p.crt, out->new_ca_fp, e) != 0 ||
	    pki_fingerprint_file(p.ret_crt, out->old_ca_fp, e) != 0 ||
	    pki_master_cn(home, mcn, sizeof(mcn), e) != 0 ||
	    pki_master_paths(home, mcrt, mkey, e) != 0) {
		return -1;
	}
	/* The master itself must present a certificate of the new CA. */
	tls_opts_init(&to);
	to.ca_file = p.crt;
	to.cert_file = mcrt;
	to.key_file = mkey;
	to.master_cn = mcn;
	{
		const char *must[2] = { mcrt, NULL };
		struct err ve = ERR_INIT;
		char *pem = NULL;
		size_t len = 0;
		int ok;

		if (fs_read_file(p.crt, CA_PEM_MAX, &pem, &len) != 0) {
			return err_sys(e, "%s", p.crt);
		}
		ok = trust_check_ca_bundle((const unsigned char *)pem, len, must, &ve) == 0;
		free(pem);
		if (!ok) {
			return err_set(e, ERR_CONFLICT,
			    "the master's certificate is not of the new CA yet: run 'tandem pki "
			    "renew-master' first");
		}
		if (tls_client_new(&to, &only_new, e) != 0) {
			return -1;
		}
	}
	if (swarm_ctx_open(&c, home, timeout_s, e) != 0) {
		tls_ctx_free(only_new);
		return err_rekind(e, ERR_CONFIG);
	}
	if (ca_hosts(&c, &hosts, &n, out, e) != 0) {
		goto out;
	}
	/* Every host's updater and agent must chain to the new CA alone. */
	own = c.tls;
	c.tls = only_new;
	for (size_t i = 0; i < n; i++) {
		struct err he = ERR_INIT;
		int bad = 0;

		for (int agent = 0; agent < 2 && !bad; agent++) {
			cJSON *ans = swarm_renew_call(&c, &hosts[i], agent, "GET", "/health", NULL,
			    NULL, &he);
			if (ans == NULL) {
				err_prefix(&he, "the %s does not present a certificate of the new CA "
						"(run 'tandem swarm renew --host %s --force')",
				    agent ? "agent" : "updater", hosts[i].name);
				bad = 1;
			}
			cJSON_Delete(ans);
		}
		/* (E is not cleared by a call that succeeds: the flag decides.) */
		if (bad) {
			ca_note(&out->hosts[i], hosts[i].name, "failed", &he);
			failed++;
		}
	}
	c.tls = own;
	if (failed > 0) {
		err_set(e, ERR_CONFLICT,
		    "%zu of %zu hosts are not on the new CA yet: nothing changed", failed, n);
		goto out;
	}
	/* The new CA alone, everywhere. */
	for (size_t i = 0; i < n; i++) {
		struct err he = ERR_INIT;

		if (ca_push(&c, &hosts[i], p.crt, &he) != 0) {
			ca_note(&out->hosts[i], hosts[i].name, "failed", &he);
			failed++;
			continue;
		}
		ca_note(&out->hosts[i], hosts[i].name, "renewed", NULL);
	}
	if (failed > 0) {
		err_set(e, ERR_UNREACHABLE,
		    "%zu of %zu hosts still trust the old CA: run 'tandem pki ca-rotate finish' "
		    "again", failed, n);
		goto out;
	}
	testhook_point("ca.hosts_done");
	if (unlink(p.bundle) != 0 && errno != ENOENT) {
		err_sys(e, "%s", p.bundle);
		goto out;
	}
	testhook_point("ca.bundle_removed");
	if (fs_rmtree(p.ret_dir) != 0) {
		err_sys(e, "%s", p.ret_dir);
		goto out;
	}
	out->finished = 1;
	rc = 0;
out:
	tls_ctx_free(only_new);
	swarm_ctx_close(&c);
	free(hosts);
	return rc;
}

void
certs_ca_result_free(struct certs_ca_result *r)
{
	if (r != NULL) {
		free(r->hosts);
		r->hosts = NULL;
		r->n = 0;
	}
}
