#include "pki/hostcert.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/testhook.h"
#include "pki/csr.h"
#include "pki/trust.h"

#define HOSTCERT_PENDING "pending"
#define HOSTCERT_PREVIOUS "previous"
#define HOSTCERT_PEM_MAX 16384

static int
hc_path(char *buf, size_t len, const char *dir, const char *a, const char *b, struct err *e)
{
	int n = b != NULL ? snprintf(buf, len, "%s/%s/%s", dir, a, b)
			  : snprintf(buf, len, "%s/%s", dir, a);

	if (n < 0 || (size_t)n >= len) {
		return err_set(e, ERR_CONFIG, "%s: path too long", dir);
	}
	return 0;
}

static int
hc_mbed_err(struct err *e, enum err_kind kind, const char *what, int ret)
{
	char buf[160];

	mbedtls_strerror(ret, buf, sizeof(buf));
	return err_set(e, kind, "%s: %s", what, buf);
}

int
hostcert_prepare(const char *dir, const char *cn, char **csr, struct err *e)
{
	char pend[PATH_MAX], key[PATH_MAX];

	if (hc_path(pend, sizeof(pend), dir, HOSTCERT_PENDING, NULL, e) != 0 ||
	    hc_path(key, sizeof(key), dir, HOSTCERT_PENDING, TRUST_KEY_FILE, e) != 0) {
		return -1;
	}
	if (fs_mkdir_p(pend, 0700) != 0) {
		return err_sys(e, "%s", pend);
	}
	if (pki_csr_new(key, cn, csr, e) != 0) {
		return -1;
	}
	testhook_point("cert.pending_key");
	return 0;
}

/* The generation number of NAME ("gen-N"), or -1. */
static int
hc_gen_of(const char *name)
{
	long long n;

	if (strncmp(name, "gen-", 4) != 0 || parse_ll(name + 4, 1, 1000000, &n) != 0) {
		return -1;
	}
	return (int)n;
}

/* Target of the link DIR/NAME into BUF ("" when absent). */
static int
hc_link(const char *dir, const char *name, char *buf, size_t len, struct err *e)
{
	char path[PATH_MAX];
	ssize_t n;

	if (hc_path(path, sizeof(path), dir, name, NULL, e) != 0) {
		return -1;
	}
	n = readlink(path, buf, len - 1);
	if (n < 0) {
		if (errno == ENOENT) {
			buf[0] = '\0';
			return 0;
		}
		return err_sys(e, "%s", path);
	}
	buf[n] = '\0';
	if (hc_gen_of(buf) < 0) {
		return err_set(e, ERR_CONFLICT, "%s points at '%s', not a generation", path, buf);
	}
	return 0;
}

static int
hc_unlink(const char *dir, const char *name, struct err *e)
{
	char path[PATH_MAX];

	if (hc_path(path, sizeof(path), dir, name, NULL, e) != 0) {
		return -1;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		return err_sys(e, "%s", path);
	}
	return 0;
}

/* Highest gen-N (and gen-N.tmp) number in DIR, 0 when none. */
static int
hc_max_gen(const char *dir, struct err *e)
{
	DIR *d = opendir(dir);
	const struct dirent *de;
	int max = 0;

	if (d == NULL) {
		return err_sys(e, "%s", dir);
	}
	while ((de = readdir(d)) != NULL) {
		char name[64];
		char *dot;
		int g;

		if (strlcpy_chk(name, de->d_name, sizeof(name)) != 0) {
			continue;
		}
		dot = strchr(name, '.');
		if (dot != NULL) {
			*dot = '\0';
		}
		g = hc_gen_of(name);
		if (g > max) {
			max = g;
		}
	}
	closedir(d);
	return max;
}

/* Check CERT_PEM against the pending KEY and the CA bundle; fill OUT. */
static int
hc_check(const unsigned char *cert, size_t len, mbedtls_pk_context *key, const char *ca_file,
    const char *expect_cn, const char *master_cn, struct hostcert_installed *out, struct err *e)
{
	mbedtls_x509_crt crt, cas;
	struct tls_identity id;
	unsigned char *z = NULL;
	uint32_t flags = 0;
	int ret;
	int rc = -1;

	mbedtls_x509_crt_init(&crt);
	mbedtls_x509_crt_init(&cas);
	if (len == 0 || len > HOSTCERT_PEM_MAX) {
		err_set(e, ERR_BAD_REQUEST, "certificate of %zu bytes", len);
		goto out;
	}
	z = malloc(len + 1);
	if (z == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	memcpy(z, cert, len);
	z[len] = '\0';
	if (memmem(z, len, "-----BEGIN CERTIFICATE-----", 27) == NULL) {
		err_set(e, ERR_BAD_REQUEST, "the certificate must be PEM");
		goto out;
	}
	ret = mbedtls_x509_crt_parse(&crt, z, len + 1);
	if (ret != 0) {
		hc_mbed_err(e, ERR_BAD_REQUEST, "not a certificate", ret);
		goto out;
	}
	if (crt.next != NULL && crt.next->raw.p != NULL) {
		err_set(e, ERR_BAD_REQUEST, "one certificate expected, not a chain");
		goto out;
	}
	ret = mbedtls_x509_crt_parse_file(&cas, ca_file);
	if (ret != 0) {
		hc_mbed_err(e, ERR_CONFIG, ca_file, ret);
		goto out;
	}
	if (mbedtls_x509_crt_verify(&crt, &cas, NULL, NULL, &flags, NULL, NULL) != 0) {
		char vbuf[256];
		if (mbedtls_x509_crt_verify_info(vbuf, sizeof(vbuf), "", flags) < 0) {
			snprintf(vbuf, sizeof(vbuf), "verification failed");
		}
		for (char *c = vbuf; *c != '\0'; c++) {
			if (*c == '\n') {
				*c = ' ';
			}
		}
		err_set(e, ERR_FORBIDDEN, "the certificate does not chain to our CA: %s", vbuf);
		goto out;
	}
	if (mbedtls_pk_check_pair(&crt.pk, key) != 0) {
		err_set(e, ERR_BAD_REQUEST, "the certificate is not for the pending key");
		goto out;
	}
	if (mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_SERVER_AUTH,
		MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0 ||
	    mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_CLIENT_AUTH,
		MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)) != 0) {
		err_set(e, ERR_BAD_REQUEST, "the certificate lacks serverAuth or clientAuth");
		goto out;
	}
	if (tls_identity_from_der(crt.raw.p, crt.raw.len, master_cn, &id) != 0 ||
	    strcmp(id.cn, expect_cn) != 0 ||
	    (id.role != TLS_ROLE_AGENT && id.role != TLS_ROLE_UPDATER &&
		id.role != TLS_ROLE_MASTER)) {
		err_set(e, ERR_FORBIDDEN, "the certificate names '%s', not this host's '%s'", id.cn,
		    expect_cn);
		goto out;
	}
	if (time(NULL) < id.not_before || time(NULL) > id.not_after) {
		err_set(e, ERR_BAD_REQUEST, "the certificate is not valid now");
		goto out;
	}
	snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", id.fingerprint);
	snprintf(out->serial, sizeof(out->serial), "%s", id.serial);
	out->not_after = id.not_after;
	rc = 0;
out:
	free(z);
	mbedtls_x509_crt_free(&cas);
	mbedtls_x509_crt_free(&crt);
	return rc;
}

/* The identity of DIR/LINK/cert.pem into OUT; 1 when there is no LINK. */
static int
hc_link_identity(const char *dir, const char *link, const char *master_cn,
    struct hostcert_installed *out, struct err *e)
{
	struct err te = ERR_INIT;
	char target[64], path[PATH_MAX];
	struct tls_identity id;

	if (hc_link(dir, link, target, sizeof(target), e) != 0) {
		return -1;
	}
	if (target[0] == '\0') {
		return 1;
	}
	if (hc_path(path, sizeof(path), dir, link, TRUST_CERT_FILE, e) != 0) {
		return -1;
	}
	if (tls_identity_from_file(path, master_cn, &id, &te) != 0) {
		return err_set(e, ERR_CONFLICT, "%s", err_msg(&te));
	}
	out->gen = hc_gen_of(target);
	snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", id.fingerprint);
	snprintf(out->serial, sizeof(out->serial), "%s", id.serial);
	out->not_after = id.not_after;
	return 0;
}

static int
hc_current(const char *dir, const char *master_cn, struct hostcert_installed *out,
    struct err *e)
{
	return hc_link_identity(dir, TRUST_CURRENT, master_cn, out, e);
}

int
hostcert_in_force(const char *dir, const char *master_cn, struct hostcert_installed *cur,
    struct hostcert_installed *prev, struct err *e)
{
	int rc_cur, rc_prev;

	memset(cur, 0, sizeof(*cur));
	memset(prev, 0, sizeof(*prev));
	rc_cur = hc_link_identity(dir, TRUST_CURRENT, master_cn, cur, e);
	if (rc_cur < 0) {
		return -1;
	}
	rc_prev = hc_link_identity(dir, HOSTCERT_PREVIOUS, master_cn, prev, e);
	if (rc_prev < 0) {
		return -1;
	}
	return (rc_cur == 0 ? HOSTCERT_HAVE_CURRENT : 0) |
	       (rc_prev == 0 ? HOSTCERT_HAVE_PREVIOUS : 0);
}

/* 0 when CERT (PEM) is the certificate DIR/current holds; OUT describes it. */
static int
hc_is_current(const char *dir, const unsigned char *cert, size_t len, const char *master_cn,
    struct hostcert_installed *out)
{
	struct hostcert_installed now;
	struct err e = ERR_INIT;
	mbedtls_x509_crt c;
	char fp[TLS_FP_HEX_LEN + 1];
	unsigned char *z;
	int rc = -1;

	if (len == 0 || len > HOSTCERT_PEM_MAX || hc_current(dir, master_cn, &now, &e) != 0) {
		return -1;
	}
	z = malloc(len + 1);
	if (z == NULL) {
		return -1;
	}
	memcpy(z, cert, len);
	z[len] = '\0';
	mbedtls_x509_crt_init(&c);
	if (mbedtls_x509_crt_parse(&c, z, len + 1) == 0 &&
	    digest_buf(c.raw.p, c.raw.len, fp) == 0 && strcmp(fp, now.fingerprint) == 0) {
		*out = now;
		rc = 0;
	}
	mbedtls_x509_crt_free(&c);
	free(z);
	return rc;
}

int
hostcert_install(const char *dir, const unsigned char *cert, size_t len, const char *ca_file,
    const char *expect_cn, const char *master_cn, struct hostcert_installed *out, struct err *e)
{
	char key_path[PATH_MAX], pend[PATH_MAX], tmp[PATH_MAX], gen[PATH_MAX], p[PATH_MAX + 16];
	char name[32], cur[64];
	char *key_pem = NULL;
	size_t key_len = 0;
	mbedtls_pk_context key;
	struct hostcert_installed res;
	struct stat st;
	int n;
	int rc = -1;

	mbedtls_pk_init(&key);
	memset(&res, 0, sizeof(res));
	if (hc_path(pend, sizeof(pend), dir, HOSTCERT_PENDING, NULL, e) != 0 ||
	    hc_path(key_path, sizeof(key_path), dir, HOSTCERT_PENDING, TRUST_KEY_FILE, e) != 0) {
		goto out;
	}
	if (lstat(key_path, &st) != 0) {
		/* A retry of an install that went through: that certificate is current. */
		if (errno == ENOENT && hc_is_current(dir, cert, len, master_cn, out) == 0) {
			rc = 0;
			goto out;
		}
		err_set(e, ERR_CONFLICT, "no pending key: ask for a certificate request first");
		goto out;
	}
	if (fs_read_file(key_path, HOSTCERT_PEM_MAX, &key_pem, &key_len) != 0) {
		err_sys(e, "%s", key_path);
		goto out;
	}
	n = mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, key_len + 1, NULL, 0);
	if (n != 0) {
		hc_mbed_err(e, ERR_CONFLICT, key_path, n);
		goto out;
	}
	if (hc_check(cert, len, &key, ca_file, expect_cn, master_cn, &res, e) != 0) {
		goto out;
	}
	n = hc_max_gen(dir, e);
	if (n < 0) {
		goto out;
	}
	res.gen = n + 1;
	snprintf(name, sizeof(name), "gen-%d", res.gen);
	if (hc_path(gen, sizeof(gen), dir, name, NULL, e) != 0 ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", gen) >= (int)sizeof(tmp)) {
		goto out;
	}
	if (mkdir(tmp, 0700) != 0) {
		err_sys(e, "%s", tmp);
		goto out;
	}
	snprintf(p, sizeof(p), "%s/%s", tmp, TRUST_CERT_FILE);
	if (fs_write_atomic(p, cert, len, 0644) != 0) {
		err_sys(e, "%s", p);
		goto out;
	}
	snprintf(p, sizeof(p), "%s/%s", tmp, TRUST_KEY_FILE);
	if (fs_write_atomic(p, key_pem, key_len, 0600) != 0) {
		err_sys(e, "%s", p);
		goto out;
	}
	if (fs_rename_durable(tmp, gen) != 0) {
		err_sys(e, "%s", gen);
		goto out;
	}
	testhook_point("cert.gen_written");
	/* The pair in use now becomes "previous" (none: the bootstrap pair is). */
	if (hc_link(dir, TRUST_CURRENT, cur, sizeof(cur), e) != 0) {
		goto out;
	}
	if (hc_path(p, sizeof(p), dir, HOSTCERT_PREVIOUS, NULL, e) != 0) {
		goto out;
	}
	if (cur[0] != '\0' ? fs_symlink_replace(cur, p) != 0 : (unlink(p) != 0 && errno != ENOENT)) {
		err_sys(e, "%s", p);
		goto out;
	}
	testhook_point("cert.previous_set");
	/* The switch: certificate and key change together, with one rename. */
	if (hc_path(p, sizeof(p), dir, TRUST_CURRENT, NULL, e) != 0) {
		goto out;
	}
	if (fs_symlink_replace(name, p) != 0) {
		err_sys(e, "%s", p);
		goto out;
	}
	testhook_point("cert.flipped");
	if (fs_rmtree(pend) != 0 || fs_fsync_dir(dir) != 0) {
		/* The new pair is in force: a leftover pending key is cleaned up later. */
		log_warn("%s: cannot remove", pend);
	}
	testhook_point("cert.pending_removed");
	*out = res;
	rc = 0;
out:
	mbedtls_pk_free(&key);
	secure_free(key_pem, key_len);
	return rc;
}

int
hostcert_confirm(const char *dir, struct err *e)
{
	char cur[64];
	DIR *d;
	const struct dirent *de;
	int rc = 0;

	if (hc_link(dir, TRUST_CURRENT, cur, sizeof(cur), e) != 0) {
		return -1;
	}
	if (cur[0] == '\0') {
		return err_set(e, ERR_CONFLICT, "no renewed certificate is in use");
	}
	if (hc_unlink(dir, HOSTCERT_PREVIOUS, e) != 0) {
		return -1;
	}
	d = opendir(dir);
	if (d == NULL) {
		return err_sys(e, "%s", dir);
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		char path[PATH_MAX];
		if (strncmp(de->d_name, "gen-", 4) != 0 || strcmp(de->d_name, cur) == 0) {
			continue;
		}
		if (hc_path(path, sizeof(path), dir, de->d_name, NULL, e) != 0 ||
		    fs_rmtree(path) != 0) {
			rc = err_sys(e, "%s", path);
		}
	}
	closedir(d);
	if (rc == 0 && fs_fsync_dir(dir) != 0) {
		rc = err_sys(e, "%s", dir);
	}
	if (rc == 0) {
		testhook_point("cert.confirmed");
	}
	return rc;
}

/* 0 when DIR/LINK/{cert,key}.pem is a matching pair chaining to CA_FILE. */
static int
hc_pair_ok(const char *dir, const char *link, const char *ca_file)
{
	char c[PATH_MAX], k[PATH_MAX];
	struct tls_opts to;
	struct tls_ctx *ctx = NULL;
	struct err e = ERR_INIT;
	mbedtls_x509_crt crt, cas;
	uint32_t flags = 0;
	int ok;

	if (hc_path(c, sizeof(c), dir, link, TRUST_CERT_FILE, &e) != 0 ||
	    hc_path(k, sizeof(k), dir, link, TRUST_KEY_FILE, &e) != 0) {
		return -1;
	}
	/* A server context loads it exactly as the daemon will (pair, key mode, EKU). */
	tls_opts_init(&to);
	to.ca_file = ca_file;
	to.cert_file = c;
	to.key_file = k;
	if (tls_server_new(&to, &ctx, &e) != 0) {
		log_warnx("%s/%s: %s", dir, link, err_msg(&e));
		return -1;
	}
	tls_ctx_free(ctx);
	mbedtls_x509_crt_init(&crt);
	mbedtls_x509_crt_init(&cas);
	ok = mbedtls_x509_crt_parse_file(&crt, c) == 0 &&
	    mbedtls_x509_crt_parse_file(&cas, ca_file) == 0 &&
	    mbedtls_x509_crt_verify(&crt, &cas, NULL, NULL, &flags, NULL, NULL) == 0;
	mbedtls_x509_crt_free(&cas);
	mbedtls_x509_crt_free(&crt);
	return ok ? 0 : -1;
}

int
hostcert_recover(const char *dir, const char *ca_file, char *note, size_t notelen,
    struct err *e)
{
	char cur[64], prev[64], path[PATH_MAX];
	DIR *d;
	const struct dirent *de;
	char msg[512] = "";
	size_t used = 0;

	if (note != NULL && notelen > 0) {
		note[0] = '\0';
	}
	d = opendir(dir);
	if (d == NULL) {
		return errno == ENOENT ? 0 : err_sys(e, "%s", dir);
	}
	/* Half-written generations never became current. */
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, "gen-", 4) == 0 && n > 4 &&
		    strcmp(de->d_name + n - 4, ".tmp") == 0 &&
		    hc_path(path, sizeof(path), dir, de->d_name, NULL, e) == 0) {
			if (fs_rmtree(path) != 0) {
				closedir(d);
				return err_sys(e, "%s", path);
			}
			used += (size_t)snprintf(msg + used, sizeof(msg) - used,
			    "removed unfinished %s; ", de->d_name);
			if (used >= sizeof(msg)) {
				used = sizeof(msg) - 1;
			}
		}
	}
	closedir(d);
	if (hc_link(dir, TRUST_CURRENT, cur, sizeof(cur), e) != 0 ||
	    hc_link(dir, HOSTCERT_PREVIOUS, prev, sizeof(prev), e) != 0) {
		return -1;
	}
	if (cur[0] != '\0' && hc_pair_ok(dir, TRUST_CURRENT, ca_file) != 0) {
		if (prev[0] != '\0' && hc_pair_ok(dir, HOSTCERT_PREVIOUS, ca_file) == 0) {
			if (hc_path(path, sizeof(path), dir, TRUST_CURRENT, NULL, e) != 0 ||
			    fs_symlink_replace(prev, path) != 0) {
				return err_sys(e, "%s", path);
			}
			used += (size_t)snprintf(msg + used, sizeof(msg) - used,
			    "%s is unusable: back to %s; ", cur, prev);
		} else {
			if (hc_unlink(dir, TRUST_CURRENT, e) != 0) {
				return -1;
			}
			used += (size_t)snprintf(msg + used, sizeof(msg) - used,
			    "%s is unusable: back to the configured pair; ", cur);
		}
		if (used >= sizeof(msg)) {
			used = sizeof(msg) - 1;
		}
		if (hc_unlink(dir, HOSTCERT_PREVIOUS, e) != 0) {
			return -1;
		}
	}
	/* A pending key the current pair already holds was installed: drop it. */
	if (hc_link(dir, TRUST_CURRENT, cur, sizeof(cur), e) != 0) {
		return -1;
	}
	if (cur[0] != '\0') {
		char pk[PATH_MAX], ck[PATH_MAX];
		char *a = NULL, *b = NULL;
		size_t al = 0, bl = 0;
		if (hc_path(pk, sizeof(pk), dir, HOSTCERT_PENDING, TRUST_KEY_FILE, e) != 0 ||
		    hc_path(ck, sizeof(ck), dir, TRUST_CURRENT, TRUST_KEY_FILE, e) != 0) {
			return -1;
		}
		if (fs_read_file(pk, HOSTCERT_PEM_MAX, &a, &al) == 0 &&
		    fs_read_file(ck, HOSTCERT_PEM_MAX, &b, &bl) == 0 && al == bl &&
		    memcmp(a, b, al) == 0) {
			if (hc_path(path, sizeof(path), dir, HOSTCERT_PENDING, NULL, e) != 0 ||
			    fs_rmtree(path) != 0) {
				secure_free(a, al);
				secure_free(b, bl);
				return err_sys(e, "%s", path);
			}
			(void)snprintf(msg + used, sizeof(msg) - used,
			    "the pending key was already installed; ");
		}
		secure_free(a, al);
		secure_free(b, bl);
	}
	if (note != NULL && notelen > 0) {
		snprintf(note, notelen, "%s", msg);
	}
	return 0;
}
