#include "master/certs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/tls.h"
#include "pki/crl.h"
#include "pki/issued.h"
#include "pki/pki.h"

#define CERTS_DAY_S 86400
/* A CRL's thisUpdate lies this far back, like a certificate's notBefore. */
#define CERTS_CRL_BACKDATE_S 300

const char *
certs_expiry_state(time_t not_after, time_t now, int warn_days, long *days_left)
{
	long long left = (long long)not_after - (long long)now;
	long days = (long)(left >= 0 ? left / CERTS_DAY_S : -((-left + CERTS_DAY_S - 1) / CERTS_DAY_S));

	if (days_left != NULL) {
		*days_left = days;
	}
	if (left <= 0) {
		return "expired";
	}
	if (left < (long long)warn_days * CERTS_DAY_S) {
		return "expiring";
	}
	return "ok";
}

int
certs_load_revocations(struct registry *reg, struct err *e)
{
	struct reg_revocation *list = NULL;
	const char **serials = NULL;
	size_t n = 0;
	int rc = -1;

	if (registry_revocations(reg, &list, &n, e) != REGISTRY_OK) {
		return -1;
	}
	if (n > 0) {
		serials = calloc(n, sizeof(*serials));
		if (serials == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			serials[i] = list[i].serial;
		}
	}
	rc = tls_revoked_set(serials, n, e);
out:
	free(serials);
	free(list);
	return rc;
}

/* ---- finding the certificates to revoke ---------------------------------- */

struct certs_found {
	struct reg_revocation *v;
	size_t n;
	size_t cap;
};

static int
certs_found_add(struct certs_found *f, const struct tls_identity *id, struct err *e)
{
	for (size_t i = 0; i < f->n; i++) {
		if (strcmp(f->v[i].serial, id->serial) == 0) {
			return 0;
		}
	}
	if (f->n == CERTS_REVOKE_MAX) {
		return err_set(e, ERR_LIMIT, "more than %d certificates matched", CERTS_REVOKE_MAX);
	}
	if (f->n == f->cap) {
		size_t ncap = f->cap == 0 ? 8 : f->cap * 2;
		struct reg_revocation *p = reallocarray(f->v, ncap, sizeof(*p));
		if (p == NULL) {
			return err_set(e, ERR_NOMEM, "out of memory");
		}
		f->v = p;
		f->cap = ncap;
	}
	memset(&f->v[f->n], 0, sizeof(f->v[f->n]));
	snprintf(f->v[f->n].serial, sizeof(f->v[f->n].serial), "%s", id->serial);
	snprintf(f->v[f->n].fp, sizeof(f->v[f->n].fp), "%s", id->fingerprint);
	snprintf(f->v[f->n].subject, sizeof(f->v[f->n].subject), "%s", id->cn);
	f->n++;
	return 0;
}

struct certs_match {
	struct certs_found *found;
	const char *host; /* match CN == host or updater@host */
	const char *fp;   /* or this fingerprint */
	struct err *e;
};

static int
certs_match_cb(const struct tls_identity *id, const char *path, void *arg)
{
	struct certs_match *m = arg;

	(void)path;
	if (m->fp != NULL && strcasecmp(id->fingerprint, m->fp) != 0) {
		return 0;
	}
	if (m->host != NULL &&
	    !((id->role == TLS_ROLE_AGENT || id->role == TLS_ROLE_UPDATER) &&
		strcasecmp(id->host, m->host) == 0)) {
		return 0;
	}
	return certs_found_add(m->found, id, m->e) != 0 ? -1 : 0;
}

/* The certificates of HOST: the issued record, then its enrollment bundle. */
static int
certs_find_host(const char *home, const char *mcn, const char *host, struct certs_found *f,
    struct err *e)
{
	struct err te = ERR_INIT;
	static const char *const bundle_files[] = { "agent.crt", "updater.crt" };
	struct certs_match m = { f, host, NULL, e };
	char rel[PATH_MAX], path[PATH_MAX];

	if (pki_issued_each(home, mcn, certs_match_cb, &m, e) != 0) {
		return -1;
	}
	for (size_t i = 0; i < ARRAY_LEN(bundle_files); i++) {
		struct tls_identity id;

		if (snprintf(rel, sizeof(rel), "hosts/%s/%s", host, bundle_files[i]) >=
			(int)sizeof(rel) ||
		    pki_path(home, rel, path, sizeof(path)) != 0) {
			return err_set(e, ERR_CONFIG, "home directory path too long");
		}
		if (access(path, F_OK) != 0) {
			continue;
		}
		if (tls_identity_from_file(path, mcn, &id, &te) != 0) {
			log_warnx("%s: skipped: %s", path, err_msg(&te));
			continue;
		}
		if (certs_match_cb(&id, path, &m) != 0) {
			return -1;
		}
	}
	return 0;
}

static int
certs_find_target(const char *home, const char *mcn, const char *target, struct certs_found *f,
    struct err *e)
{
	struct err te = ERR_INIT;
	struct tls_identity id;
	char canon[CRL_SERIAL_HEX_MAX + 1];
	struct stat st;

	if (stat(target, &st) == 0) {
		if (tls_identity_from_file(target, mcn, &id, &te) != 0) {
			return err_set(e, ERR_FORMAT, "%s", err_msg(&te));
		}
		return certs_found_add(f, &id, e);
	}
	if (strlen(target) == TLS_FP_HEX_LEN && is_hex_len(target, TLS_FP_HEX_LEN)) {
		struct certs_match m = { f, NULL, target, e };
		if (pki_issued_each(home, mcn, certs_match_cb, &m, e) != 0) {
			return -1;
		}
		if (f->n == 0) {
			return err_set(e, ERR_NOT_FOUND,
			    "no certificate with fingerprint %s in the CA's record: give the "
			    "certificate file or its serial", target);
		}
		return 0;
	}
	if (crl_serial_canon(target, canon) == 0) {
		memset(&id, 0, sizeof(id));
		snprintf(id.serial, sizeof(id.serial), "%s", canon);
		/* What the record knows about that serial, if anything. */
		{
			char rel[PATH_MAX], path[PATH_MAX];
			snprintf(rel, sizeof(rel), "%s/%s.crt", PKI_ISSUED_DIR, canon);
			if (pki_path(home, rel, path, sizeof(path)) == 0 && access(path, F_OK) == 0 &&
			    tls_identity_from_file(path, mcn, &id, &te) != 0) {
				log_warnx("%s: %s", path, err_msg(&te));
				snprintf(id.serial, sizeof(id.serial), "%s", canon);
			}
		}
		return certs_found_add(f, &id, e);
	}
	return err_set(e, ERR_USAGE,
	    "'%.80s' is not a certificate file, a serial (hex) or a fingerprint (64 hex)",
	    target);
}

int
certs_revoke(const char *home, const char *target, const char *host, int reason,
    struct certs_revoked **out, size_t *n, struct err *e)
{
	struct certs_found f = { NULL, 0, 0 };
	struct certs_revoked *res = NULL;
	struct registry *reg = NULL;
	char mcn[PKI_CN_MAX + 1];
	time_t now = time(NULL);
	int rc = -1;

	if ((target == NULL) == (host == NULL)) {
		return err_set(e, ERR_USAGE, "give a certificate or --host, not both");
	}
	if (pki_master_cn(home, mcn, sizeof(mcn), e) != 0) {
		return -1;
	}
	if (target != NULL) {
		if (certs_find_target(home, mcn, target, &f, e) != 0) {
			goto out;
		}
	} else {
		if (!registry_name_valid(host)) {
			err_set(e, ERR_USAGE, "'%.80s' is not a host name", host);
			goto out;
		}
		if (certs_find_host(home, mcn, host, &f, e) != 0) {
			goto out;
		}
		if (f.n == 0) {
			err_set(e, ERR_NOT_FOUND,
			    "no certificate of host '%s' in the CA's record or in %s/hosts/%s/", host,
			    home, host);
			goto out;
		}
	}
	res = calloc(f.n, sizeof(*res));
	if (res == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (registry_open(home, &reg, e) != REGISTRY_OK) {
		goto out;
	}
	for (size_t i = 0; i < f.n; i++) {
		struct err re = ERR_INIT;
		int r;

		f.v[i].reason = reason;
		f.v[i].at = now;
		/* Already revoked is not a failure here: the result says so. */
		r = registry_revoke(reg, &f.v[i], &re);
		if (r != REGISTRY_OK && r != REGISTRY_EXISTS) {
			err_copy(e, &re);
			goto out;
		}
		res[i].r = f.v[i];
		res[i].already = r == REGISTRY_EXISTS;
	}
	*out = res;
	*n = f.n;
	res = NULL;
	rc = 0;
out:
	registry_close(reg);
	free(res);
	free(f.v);
	return rc;
}

/* ---- the CRL file ------------------------------------------------------------ */

int
certs_crl_issue(const char *home, time_t this_update, time_t next_update,
    unsigned long long *number, struct err *e)
{
	struct registry *reg = NULL;
	struct reg_revocation *list = NULL;
	struct crl_entry *ent = NULL;
	unsigned char *der = NULL;
	char *pem = NULL;
	size_t n = 0, der_len = 0;
	char der_path[PATH_MAX], pem_path[PATH_MAX];
	unsigned long long num = 0;
	int rc = -1;

	if (this_update == 0) {
		this_update = time(NULL) - CERTS_CRL_BACKDATE_S;
	}
	if (next_update <= this_update) {
		return err_set(e, ERR_USAGE, "the next update must come after this update");
	}
	if (pki_path(home, CRL_DER_FILE, der_path, sizeof(der_path)) != 0 ||
	    pki_path(home, CRL_PEM_FILE, pem_path, sizeof(pem_path)) != 0) {
		return err_set(e, ERR_CONFIG, "home directory path too long");
	}
	if (registry_open(home, &reg, e) != REGISTRY_OK ||
	    registry_revocations(reg, &list, &n, e) != REGISTRY_OK) {
		goto out;
	}
	if (n > 0) {
		ent = calloc(n, sizeof(*ent));
		if (ent == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(ent[i].serial, sizeof(ent[i].serial), "%s", list[i].serial);
		ent[i].revoked_at = list[i].at;
		ent[i].reason = list[i].reason;
	}
	/* The number is taken first: a failure below leaves a gap, never a repeat. */
	if (registry_crl_next(reg, this_update, next_update, &num, e) != REGISTRY_OK) {
		goto out;
	}
	if (crl_build(home, num, this_update, next_update, ent, n, &der, &der_len, e) != 0 ||
	    crl_to_pem(der, der_len, &pem, e) != 0) {
		goto out;
	}
	if (fs_write_atomic(der_path, der, der_len, 0644) != 0) {
		err_sys(e, "%s: cannot write", der_path);
		goto out;
	}
	if (fs_write_atomic(pem_path, pem, strlen(pem), 0644) != 0) {
		err_sys(e, "%s: cannot write", pem_path);
		goto out;
	}
	*number = num;
	rc = 0;
out:
	free(pem);
	free(der);
	free(ent);
	free(list);
	registry_close(reg);
	return rc;
}

/* ---- status -------------------------------------------------------------------- */

static int
certs_status_cert(cJSON *o, const char *key, const char *path, const char *mcn, int warn_days,
    time_t now, struct err *e)
{
	struct err te = ERR_INIT;
	struct tls_identity id;
	cJSON *c;
	char na[32];
	long days;
	const char *state;

	if (tls_identity_from_file(path, mcn, &id, &te) != 0) {
		return err_set(e, ERR_CONFIG, "%s", err_msg(&te));
	}
	state = certs_expiry_state(id.not_after, now, warn_days, &days);
	iso8601_utc(id.not_after, na, sizeof(na));
	c = json_add_object(o, key);
	if (c == NULL || json_add_str(c, "cn", id.cn) != 0 ||
	    json_add_str(c, "serial", id.serial) != 0 ||
	    json_add_str(c, "fingerprint", id.fingerprint) != 0 ||
	    json_add_str(c, "not_after", na) != 0 || json_add_int(c, "days_left", days) != 0 ||
	    json_add_str(c, "state", state) != 0) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	return 0;
}

int
certs_status(const char *home, int warn_days, cJSON **out, struct err *e)
{
	char ca[PATH_MAX], mcrt[PATH_MAX], mkey[PATH_MAX], crl_path[PATH_MAX];
	char mcn[PKI_CN_MAX + 1];
	cJSON *o = NULL;
	cJSON *c;
	char *buf = NULL;
	size_t len = 0;
	time_t now = time(NULL);
	int rc = -1;

	if (pki_path(home, PKI_CA_CRT, ca, sizeof(ca)) != 0 ||
	    pki_path(home, CRL_DER_FILE, crl_path, sizeof(crl_path)) != 0) {
		return err_set(e, ERR_CONFIG, "home directory path too long");
	}
	/* The master certificate in force (renewed while renew-master is under way). */
	if (pki_master_paths(home, mcrt, mkey, e) != 0) {
		return -1;
	}
	if (pki_master_cn(home, mcn, sizeof(mcn), e) != 0) {
		return -1;
	}
	o = cJSON_CreateObject();
	if (o == NULL || json_add_int(o, "warn_days", warn_days) != 0) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (certs_status_cert(o, "ca", ca, mcn, warn_days, now, e) != 0 ||
	    certs_status_cert(o, "master", mcrt, mcn, warn_days, now, e) != 0) {
		goto out;
	}
	c = json_add_object(o, "crl");
	if (c == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	if (fs_read_file(crl_path, CRL_MAX_BYTES, &buf, &len) != 0) {
		if (errno != ENOENT) {
			err_sys(e, "%s", crl_path);
			goto out;
		}
		if (json_add_str(c, "state", "missing") != 0) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
	} else {
		struct crl_info ci;
		char tu[32], nu[32];

		if (crl_verify((const unsigned char *)buf, len, ca, &ci, e) != 0) {
			err_prefix(e, "%s", crl_path);
			goto out;
		}
		iso8601_utc(ci.this_update, tu, sizeof(tu));
		iso8601_utc(ci.next_update, nu, sizeof(nu));
		if (json_add_int(c, "number", (long long)ci.number) != 0 ||
		    json_add_str(c, "this_update", tu) != 0 ||
		    json_add_str(c, "next_update", nu) != 0 ||
		    json_add_int(c, "revoked", (long long)ci.n_entries) != 0 ||
		    json_add_str(c, "state", crl_is_stale(&ci, now) ? "stale" : "ok") != 0) {
			crl_info_free(&ci);
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		crl_info_free(&ci);
	}
	*out = o;
	o = NULL;
	rc = 0;
out:
	free(buf);
	cJSON_Delete(o);
	return rc;
}
