#include "master/certs_rollover.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/testhook.h"
#include "master/swarm_push.h"
#include "master/swarm_renew.h"
#include "pki/hostcert.h"
#include "pki/pki.h"
#include "pki/trust.h"

/* The files of one rollover. */
struct rollover_paths {
	char ca[PATH_MAX];
	char dir[PATH_MAX];    /* HOME/master/tls */
	char record[PATH_MAX]; /* HOME/master/rollover */
	char crt[PATH_MAX];    /* HOME/master/master.crt */
	char key[PATH_MAX];    /* HOME/master/master.key */
	char mcn[PKI_CN_MAX + 1];
};

static int
rollover_paths(const char *home, struct rollover_paths *p, struct err *e)
{
	if (pki_master_trust(home, p->ca, e) != 0) {
		return -1;
	}
	if (pki_path(home, PKI_MASTER_TLS_DIR, p->dir, sizeof(p->dir)) != 0 ||
	    pki_path(home, CERTS_ROLLOVER_FILE, p->record, sizeof(p->record)) != 0 ||
	    pki_path(home, PKI_MASTER_CRT, p->crt, sizeof(p->crt)) != 0 ||
	    pki_path(home, PKI_MASTER_KEY, p->key, sizeof(p->key)) != 0) {
		return err_set(e, ERR_CONFIG, "home directory path too long");
	}
	return pki_master_cn(home, p->mcn, sizeof(p->mcn), e);
}

/*
 * The rollover record: the old certificate's fingerprint (64 hex and a
 * newline). 1 when it exists (FP filled), 0 when not, -1 with E.
 */
static int
rollover_read_record(const char *path, char fp[TLS_FP_HEX_LEN + 1], struct err *e)
{
	char *buf = NULL;
	size_t len = 0;

	if (fs_read_file(path, 256, &buf, &len) != 0) {
		if (errno == ENOENT) {
			return 0;
		}
		return err_sys(e, "%s", path);
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
		len--;
	}
	if (len != TLS_FP_HEX_LEN) {
		free(buf);
		return err_set(e, ERR_FORMAT, "%s: not a certificate fingerprint", path);
	}
	for (size_t i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)buf[i])) {
			free(buf);
			return err_set(e, ERR_FORMAT, "%s: not a certificate fingerprint", path);
		}
		fp[i] = (char)tolower((unsigned char)buf[i]);
	}
	fp[TLS_FP_HEX_LEN] = '\0';
	free(buf);
	return 1;
}

/* A client context presenting CRT/KEY. */
static int
rollover_ctx(const struct rollover_paths *p, const char *crt, const char *key,
    struct tls_ctx **out, struct err *e)
{
	struct tls_opts to;

	tls_opts_init(&to);
	to.ca_file = p->ca;
	to.cert_file = crt;
	to.key_file = key;
	to.master_cn = p->mcn;
	return tls_client_new(&to, out, e);
}

/* PUT /pins/master {OP: FP} to H over C's context. *STATUS as swarm_renew_call. */
static int
rollover_pin(struct swarm_ctx *c, const struct reg_host *h, const char *op, const char *fp,
    int *status, struct err *e)
{
	cJSON *body = cJSON_CreateObject(), *ans;

	*status = 0;
	if (body == NULL || json_add_str(body, op, fp) != 0) {
		cJSON_Delete(body);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	ans = swarm_renew_call(c, h, 0, "PUT", "/pins/master", body, status, e);
	cJSON_Delete(body);
	if (ans == NULL) {
		return -1;
	}
	cJSON_Delete(ans);
	return 0;
}

/* Steps 1-3: a new pair certified, offered to every host, switched to. */
static int
rollover_switch(const char *home, const struct rollover_paths *p,
    const struct certs_rollover_opts *o, struct swarm_ctx *c, const struct reg_host *hosts,
    size_t n, struct certs_rollover *out, struct err *e)
{
	struct pki_issue_opts io;
	struct hostcert_installed in;
	struct tls_identity id;
	char *csr = NULL, *pem = NULL, line[TLS_FP_HEX_LEN + 2];
	size_t len = 0;
	int rc = -1;

	if (hostcert_prepare(p->dir, p->mcn, &csr, e) != 0) {
		return err_prefix(e, "the master's new key");
	}
	pki_issue_opts_init(&io);
	io.name = p->mcn;
	io.role = TLS_ROLE_MASTER;
	io.master_cn = p->mcn;
	io.eku = PKI_EKU_BOTH; /* hostcert keeps pairs that can serve and connect */
	if (swarm_renew_certify(home, &io, "master", csr, o->days, o->test_valid_s, &pem, &id,
		e) != 0) {
		err_prefix(e, "certifying the master's new key");
		goto out;
	}
	len = strlen(pem);
	(void)snprintf(out->new_fp, sizeof(out->new_fp), "%s", id.fingerprint);
	/* 2: every host accepts the new certificate beside the old one. */
	for (size_t i = 0; i < n; i++) {
		struct err he = ERR_INIT;
		int status;

		if (rollover_pin(c, &hosts[i], "add", out->new_fp, &status, &he) != 0) {
			log_warnx("%s: the new master pin: %s (it keeps the old one)", hosts[i].name,
			    err_msg(&he));
		}
	}
	/* 3: the record first, so a crash after the switch knows the old pair. */
	(void)snprintf(line, sizeof(line), "%s\n", out->old_fp);
	if (fs_write_atomic(p->record, line, strlen(line), 0600) != 0) {
		err_sys(e, "%s", p->record);
		goto out;
	}
	testhook_point("master.rollover_recorded");
	if (hostcert_install(p->dir, (const unsigned char *)pem, len, p->ca, p->mcn, p->mcn, &in,
		e) != 0) {
		err_prefix(e, "switching to the new master certificate");
		goto out;
	}
	log_info("the master now presents %s (serial %s)", in.fingerprint, in.serial);
	rc = 0;
out:
	free(csr);
	free(pem);
	return rc;
}

/* Step 5: the new pair becomes HOME/master/master.{key,crt}; the rest goes. */
static int
rollover_finish(const struct rollover_paths *p, struct err *e)
{
	char ccrt[PATH_MAX], ckey[PATH_MAX];
	int renewed = 0;

	if (trust_identity_paths(p->dir, p->crt, p->key, ccrt, ckey, &renewed, e) != 0) {
		return -1;
	}
	if (renewed) {
		if (fs_copy_file(ckey, p->key, 0600) != 0) {
			return err_sys(e, "%s", p->key);
		}
		testhook_point("master.key_folded");
		if (fs_copy_file(ccrt, p->crt, 0644) != 0) {
			return err_sys(e, "%s", p->crt);
		}
		testhook_point("master.cert_folded");
	}
	if (fs_rmtree(p->dir) != 0 && errno != ENOENT) {
		return err_sys(e, "%s", p->dir);
	}
	testhook_point("master.tls_removed");
	if (unlink(p->record) != 0 && errno != ENOENT) {
		return err_sys(e, "%s", p->record);
	}
	if (fs_fsync_parent(p->record) != 0) {
		return err_sys(e, "%s", p->record);
	}
	return 0;
}

int
certs_renew_master(const char *home, const struct certs_rollover_opts *o,
    struct certs_rollover *out, struct err *e)
{
	struct rollover_paths p;
	struct swarm_ctx c;
	struct reg_host *all = NULL, *hosts = NULL;
	struct tls_ctx *newctx = NULL, *oldctx = NULL, *own;
	char cur_crt[PATH_MAX], cur_key[PATH_MAX], cur_fp[TLS_FP_HEX_LEN + 1];
	char boot_fp[TLS_FP_HEX_LEN + 1], note[512];
	size_t nall = 0, n = 0, failed = 0;
	int have_record, rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	if (rollover_paths(home, &p, e) != 0) {
		return -1;
	}
	if (fs_mkdir_p(p.dir, 0700) != 0) {
		return err_sys(e, "%s", p.dir);
	}
	if (hostcert_recover(p.dir, p.ca, note, sizeof(note), e) != 0) {
		return err_prefix(e, "the master's renewed certificate");
	}
	if (note[0] != '\0') {
		log_warnx("recovery of the master certificate: %s", note);
	}
	have_record = rollover_read_record(p.record, out->old_fp, e);
	if (have_record < 0 || pki_master_paths(home, cur_crt, cur_key, e) != 0 ||
	    pki_fingerprint_file(cur_crt, cur_fp, e) != 0 ||
	    pki_fingerprint_file(p.crt, boot_fp, e) != 0) {
		return -1;
	}
	out->resumed = have_record == 1;
	if (swarm_ctx_open(&c, home, o->timeout_s, e) != 0) {
		return err_rekind(e, ERR_CONFIG);
	}
	if (registry_list_hosts(c.reg, 0, &all, &nall, e) != REGISTRY_OK) {
		goto out;
	}
	hosts = calloc(nall > 0 ? nall : 1, sizeof(*hosts));
	out->hosts = calloc(nall > 0 ? nall : 1, sizeof(*out->hosts));
	if (hosts == NULL || out->hosts == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nall; i++) {
		if (all[i].updater_fp[0] != '\0') {
			hosts[n++] = all[i];
		}
	}
	out->n = n;
	/* Not switched yet (no record, or the record names the pair in force). */
	if (have_record == 0 || strcmp(cur_fp, out->old_fp) == 0) {
		(void)snprintf(out->old_fp, sizeof(out->old_fp), "%s", cur_fp);
		if (rollover_switch(home, &p, o, &c, hosts, n, out, e) != 0) {
			goto out;
		}
		if (pki_master_paths(home, cur_crt, cur_key, e) != 0) {
			goto out;
		}
	} else {
		(void)snprintf(out->new_fp, sizeof(out->new_fp), "%s", cur_fp);
	}
	{
		struct tls_identity id;
		if (tls_identity_from_file(cur_crt, p.mcn, &id, e) != 0) {
			goto out;
		}
		iso8601_utc(id.not_after, out->new_not_after, sizeof(out->new_not_after));
	}
	/* 4: the new certificate proves itself at each host; the old one stays for the rest. */
	if (rollover_ctx(&p, cur_crt, cur_key, &newctx, e) != 0) {
		goto out;
	}
	/* The old pair, for hosts that missed the offer. Absent or half folded
	 * (a crash during step 5, when every host had confirmed): none. */
	if (strcmp(boot_fp, out->old_fp) == 0 && strcmp(boot_fp, out->new_fp) != 0) {
		struct err oe = ERR_INIT;
		if (rollover_ctx(&p, p.crt, p.key, &oldctx, &oe) != 0) {
			log_warnx("the old master certificate is unusable: %s", err_msg(&oe));
			oldctx = NULL;
		}
	}
	own = c.tls;
	for (size_t i = 0; i < n; i++) {
		struct certs_rollover_host *r = &out->hosts[i];
		struct err he = ERR_INIT;
		int status = 0, ok;

		(void)snprintf(r->host, sizeof(r->host), "%s", hosts[i].name);
		c.tls = newctx;
		ok = rollover_pin(&c, &hosts[i], "confirm", out->new_fp, &status, &he) == 0;
		if (!ok && status == 403 && oldctx != NULL) {
			/* It missed the offer: make it now over the old certificate. */
			err_clear(&he);
			c.tls = oldctx;
			ok = rollover_pin(&c, &hosts[i], "add", out->new_fp, &status, &he) == 0;
			c.tls = newctx;
			ok = ok && rollover_pin(&c, &hosts[i], "confirm", out->new_fp, &status,
				       &he) == 0;
		}
		if (ok) {
			(void)snprintf(r->result, sizeof(r->result), "confirmed");
		} else {
			(void)snprintf(r->result, sizeof(r->result), "failed");
			(void)snprintf(r->error, sizeof(r->error), "%s", err_msg(&he));
			log_warnx("%s: the master pin rollover: %s", hosts[i].name, err_msg(&he));
			failed++;
		}
	}
	c.tls = own;
	if (failed > 0) {
		err_set(e, ERR_UNREACHABLE,
		    "%zu of %zu hosts did not confirm the new master certificate; they keep "
		    "accepting the old one: run 'tandem pki renew-master' again",
		    failed, n);
		goto out;
	}
	if (rollover_finish(&p, e) != 0) {
		goto out;
	}
	out->finished = 1;
	rc = 0;
out:
	tls_ctx_free(newctx);
	tls_ctx_free(oldctx);
	swarm_ctx_close(&c);
	free(all);
	free(hosts);
	return rc;
}

void
certs_rollover_free(struct certs_rollover *r)
{
	if (r == NULL) {
		return;
	}
	free(r->hosts);
	r->hosts = NULL;
	r->n = 0;
}
