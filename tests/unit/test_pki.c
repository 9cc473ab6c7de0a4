/*
 * Unit tests for pki/: the CA and the certificates it issues, read back with
 * mbedTLS's parser (extensions byte by byte), with tls_identity_from_file()
 * and through a real in-process handshake between common/tls contexts.
 * Each test gets its own temporary home directory, removed at teardown.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/asn1.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "pki/pki.h"
#include "tests/unit/tmpdir.h"

struct fixture {
	const char *dir;
	char home[PATH_MAX];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		return -1;
	}
	f->dir = tmpdir_make("pki");
	if (f->dir == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	*state = f;
	return 0;
}

static void
hpath(const struct fixture *f, const char *rel, char *buf, size_t len)
{
	assert_int_equal(pki_path(f->home, rel, buf, len), 0);
}

static void
dpath(const struct fixture *f, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", f->dir, name);
	assert_true(n > 0 && (size_t)n < len);
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static void
init_home(const struct fixture *f, const char *master_cn)
{
	struct err pe = ERR_INIT;

	if (pki_init(f->home, master_cn, &pe) != 0) {
		fail_msg("pki_init: %s", err_msg(&pe));
	}
}

/* Issue NAME as ROLE to DIR/OUT.key/.crt with the given SANs; returns pki_issue's rc. */
static int
issue(const struct fixture *f, const char *name, enum tls_role role, const char *out,
    const char *const *sans, size_t n_sans, struct err *e)
{
	struct pki_issue_opts o;
	char key[PATH_MAX], crt[PATH_MAX];
	char kn[96], cn[96];

	snprintf(kn, sizeof(kn), "%s.key", out);
	snprintf(cn, sizeof(cn), "%s.crt", out);
	dpath(f, kn, key, sizeof(key));
	dpath(f, cn, crt, sizeof(crt));
	pki_issue_opts_init(&o);
	o.name = name;
	o.role = role;
	o.sans = sans;
	o.n_sans = n_sans;
	o.key_out = key;
	o.cert_out = crt;
	return pki_issue(f->home, &o, e);
}

static void
load_crt(mbedtls_x509_crt *crt, const char *path)
{
	mbedtls_x509_crt_init(crt);
	assert_int_equal(mbedtls_x509_crt_parse_file(crt, path), 0);
}

/* Verify CRT against the CA of F's home; returns mbedTLS's flags. */
static uint32_t
verify_flags(const struct fixture *f, mbedtls_x509_crt *crt)
{
	char ca_path[PATH_MAX];
	mbedtls_x509_crt ca;
	uint32_t flags = 0;

	hpath(f, PKI_CA_CRT, ca_path, sizeof(ca_path));
	load_crt(&ca, ca_path);
	(void)!mbedtls_x509_crt_verify(crt, &ca, NULL, NULL, &flags, NULL, NULL);
	mbedtls_x509_crt_free(&ca);
	return flags;
}

/* ---- names ---- */

static void
test_host_names(void **state)
{
	struct err pe = ERR_INIT;
	char label63[64], label64[65], long253[254], long254[255];

	(void)state;
	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'a', 64);
	label64[64] = '\0';
	/* 253 = 3 * 63 + 3 dots + 61 */
	memset(long253, 'b', 253);
	long253[253] = '\0';
	long253[63] = long253[127] = long253[191] = '.';
	memcpy(long254, long253, 253);
	long254[253] = 'c';
	long254[254] = '\0';

	assert_int_equal(pki_check_host_name("host1", NULL, &pe), 0);
	assert_int_equal(pki_check_host_name("web-01.example.com", NULL, &pe), 0);
	assert_int_equal(pki_check_host_name("1host", NULL, &pe), 0);
	assert_int_equal(pki_check_host_name(label63, NULL, &pe), 0);
	assert_int_equal(pki_check_host_name(long253, NULL, &pe), 0);
	/* With a custom master CN, the default one is an ordinary name. */
	assert_int_equal(pki_check_host_name("tandem-master", "fleet-boss", &pe), 0);

	assert_int_equal(pki_check_host_name(label64, NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "63"));
	assert_int_equal(pe.kind, ERR_BAD_REQUEST);
	assert_int_equal(pki_check_host_name(long254, NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "253"));
	assert_int_equal(pki_check_host_name(NULL, NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("", NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "empty"));
	assert_int_equal(pki_check_host_name("updater@host1", NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "'@'"));
	assert_int_equal(pki_check_host_name("@", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("tandem-master", NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "master"));
	assert_int_equal(pki_check_host_name("TANDEM-Master", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("Fleet-Boss", "fleet-boss", &pe), -1);
	assert_int_equal(pki_check_host_name("-host", NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "start"));
	assert_int_equal(pki_check_host_name("host-", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("a.-b", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("a..b", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name(".a", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("a.", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("host_1", NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "[A-Za-z0-9.-]"));
	assert_int_equal(pki_check_host_name("a b", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("a/b", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("a,OU=master", NULL, &pe), -1);
	assert_int_equal(pki_check_host_name("h\xc3\xb6st", NULL, &pe), -1);
}

static void
test_key_type_parse(void **state)
{
	enum pki_key_type t = PKI_KEY_EC;

	(void)state;
	assert_int_equal(pki_key_type_parse("rsa", &t), 0);
	assert_int_equal(t, PKI_KEY_RSA);
	assert_int_equal(pki_key_type_parse("rsa2048", &t), 0);
	assert_int_equal(t, PKI_KEY_RSA);
	assert_int_equal(pki_key_type_parse("rsa3072", &t), 0);
	assert_int_equal(t, PKI_KEY_RSA3072);
	assert_int_equal(pki_key_type_parse("ec", &t), 0);
	assert_int_equal(t, PKI_KEY_EC);
	assert_int_equal(pki_key_type_parse("dsa", &t), -1);
	assert_int_equal(pki_key_type_parse("EC", &t), -1);
	assert_int_equal(pki_key_type_parse(NULL, &t), -1);
	assert_int_equal(t, PKI_KEY_EC);
}

static void
test_master_cn_syntax(void **state)
{
	struct err pe = ERR_INIT;
	char cn65[66];

	(void)state;
	memset(cn65, 'm', 65);
	cn65[65] = '\0';
	assert_int_equal(pki_check_cn("tandem-master", &pe), 0);
	assert_int_equal(pki_check_cn("fleet_boss.1", &pe), 0);
	assert_int_equal(pki_check_cn("", &pe), -1);
	assert_int_equal(pki_check_cn(NULL, &pe), -1);
	assert_int_equal(pki_check_cn(cn65, &pe), -1);
	assert_int_equal(pki_check_cn("-boss", &pe), -1);
	assert_int_equal(pki_check_cn("updater@x", &pe), -1);
	assert_int_equal(pki_check_cn("a,OU=agent", &pe), -1);
}

/* ---- init ---- */

static void
test_init_layout_and_ca(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	char p[PATH_MAX], kp[PATH_MAX];
	mbedtls_x509_crt ca;
	mbedtls_pk_context key;
	uint32_t flags = 0;
	char cn[PKI_CN_MAX + 1];

	init_home(f, NULL);
	assert_int_equal(mode_of(f->home), 0700);
	hpath(f, PKI_CA_DIR, p, sizeof(p));
	assert_int_equal(mode_of(p), 0700);
	hpath(f, PKI_MASTER_DIR, p, sizeof(p));
	assert_int_equal(mode_of(p), 0700);
	hpath(f, PKI_CA_KEY, p, sizeof(p));
	assert_int_equal(mode_of(p), 0600);
	hpath(f, PKI_MASTER_KEY, p, sizeof(p));
	assert_int_equal(mode_of(p), 0600);
	hpath(f, PKI_CA_CRT, p, sizeof(p));
	assert_int_equal(mode_of(p), 0644);

	load_crt(&ca, p);
	assert_true(ca.ca_istrue);
	assert_int_equal(ca.max_pathlen, 1); /* mbedTLS stores pathlen + 1 */
	assert_int_equal(ca.version, 3);
	assert_true(ca.ext_types & MBEDTLS_X509_EXT_BASIC_CONSTRAINTS);
	assert_true(ca.ext_types & MBEDTLS_X509_EXT_KEY_USAGE);
	assert_int_equal(ca.key_usage, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN);
	assert_int_equal(mbedtls_pk_get_type(&ca.pk), MBEDTLS_PK_ECKEY);
	assert_int_equal(mbedtls_pk_get_bitlen(&ca.pk), 256);
	/* Ten years, give or take the backdating. */
	{
		struct tls_identity id;
		assert_int_equal(tls_identity_from_der(ca.raw.p, ca.raw.len, NULL, &id), 0);
		assert_true(id.not_after - id.not_before == (time_t)PKI_CA_DAYS * 86400);
		assert_true(id.not_before <= time(NULL));
	}
	/* Self-signed: verifies against itself. */
	assert_int_equal(mbedtls_x509_crt_verify(&ca, &ca, NULL, NULL, &flags, NULL, NULL), 0);
	assert_int_equal(flags, 0);
	/* The key on disk is the CA's key. */
	hpath(f, PKI_CA_KEY, kp, sizeof(kp));
	mbedtls_pk_init(&key);
	assert_int_equal(mbedtls_pk_parse_keyfile(&key, kp, NULL), 0);
	assert_int_equal(mbedtls_pk_check_pair(&ca.pk, &key), 0);
	mbedtls_pk_free(&key);
	mbedtls_x509_crt_free(&ca);

	assert_int_equal(pki_master_cn(f->home, cn, sizeof(cn), &pe), 0);
	assert_string_equal(cn, TLS_DEFAULT_MASTER_CN);
}

static void
test_init_master_certificate(void **state)
{
	struct err te = ERR_INIT;
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	char p[PATH_MAX];
	char fp[TLS_FP_HEX_LEN + 1];
	struct tls_identity id;
	mbedtls_x509_crt crt;

	init_home(f, NULL);
	hpath(f, PKI_MASTER_CRT, p, sizeof(p));
	assert_int_equal(tls_identity_from_file(p, NULL, &id, &te), 0);
	assert_string_equal(id.cn, "tandem-master");
	assert_string_equal(id.ou, "master");
	assert_int_equal(id.role, TLS_ROLE_MASTER);
	assert_int_equal(pki_fingerprint_file(p, fp, &pe), 0);
	assert_string_equal(fp, id.fingerprint);

	load_crt(&crt, p);
	assert_int_equal(verify_flags(f, &crt), 0);
	assert_false(crt.ca_istrue);
	/* The master is only a client. */
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_CLIENT_AUTH,
			     MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
	    0);
	assert_int_not_equal(mbedtls_x509_crt_check_extended_key_usage(&crt,
				 MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
	    0);
	mbedtls_x509_crt_free(&crt);
}

static void
test_init_custom_master_cn(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	char cn[PKI_CN_MAX + 1];
	char p[PATH_MAX];
	struct tls_identity id;
	const char *san[] = { "127.0.0.1" };

	init_home(f, "fleet-boss");
	assert_int_equal(pki_master_cn(f->home, cn, sizeof(cn), &pe), 0);
	assert_string_equal(cn, "fleet-boss");
	hpath(f, PKI_MASTER_CRT, p, sizeof(p));
	assert_int_equal(tls_identity_from_file(p, "fleet-boss", &id, &pe), 0);
	assert_int_equal(id.role, TLS_ROLE_MASTER);
	/* The recorded CN decides what an agent may be called. */
	assert_int_equal(issue(f, "FLEET-BOSS", TLS_ROLE_AGENT, "a", san, 1, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "master"));
	assert_int_equal(issue(f, "tandem-master", TLS_ROLE_AGENT, "b", san, 1, &pe),
	    0);
	/* A master certificate must carry the recorded CN. */
	assert_int_equal(issue(f, "tandem-master", TLS_ROLE_MASTER, "c", NULL, 0, &pe),
	    -1);
	assert_int_equal(issue(f, "fleet-boss", TLS_ROLE_MASTER, "d", NULL, 0, &pe), 0);
	/* Bad master CNs are refused before anything is created. */
	assert_int_equal(pki_init(f->home, "bad cn", &pe), -1);
}

static void
test_init_refuses_existing_ca(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	char p[PATH_MAX];
	char before[TLS_FP_HEX_LEN + 1], after[TLS_FP_HEX_LEN + 1];

	init_home(f, NULL);
	hpath(f, PKI_CA_CRT, p, sizeof(p));
	assert_int_equal(pki_fingerprint_file(p, before, &pe), 0);
	assert_int_equal(pki_init(f->home, NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "already exists"));
	assert_int_equal(pe.kind, ERR_CONFLICT);
	assert_int_equal(pki_fingerprint_file(p, after, &pe), 0);
	assert_string_equal(before, after);

	/* Any one of the four files is enough to refuse. */
	hpath(f, PKI_CA_KEY, p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	hpath(f, PKI_CA_CRT, p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	hpath(f, PKI_MASTER_CRT, p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(pki_init(f->home, NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "master.key"));
	hpath(f, PKI_CA_KEY, p, sizeof(p));
	assert_int_equal(access(p, F_OK), -1); /* nothing created */
}

static void
test_init_failure_leaves_nothing(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	char p[PATH_MAX];

	/* A file where the master directory should be: init fails, no CA left. */
	assert_int_equal(fs_mkdir_p(f->home, 0700), 0);
	hpath(f, PKI_MASTER_DIR, p, sizeof(p));
	assert_int_equal(fs_write_atomic(p, "x", 1, 0600), 0);
	assert_int_equal(pki_init(f->home, NULL, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "master"));
	hpath(f, PKI_CA_KEY, p, sizeof(p));
	assert_int_equal(access(p, F_OK), -1);
	hpath(f, PKI_CA_CRT, p, sizeof(p));
	assert_int_equal(access(p, F_OK), -1);

	/* Without a CA there is nothing to issue from. */
	hpath(f, PKI_MASTER_DIR, p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(issue(f, "host1", TLS_ROLE_AGENT, "x", NULL, 0, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "pki init"));
	assert_int_equal(pe.kind, ERR_IO); /* no CA file at all */
}

/* ---- issuing ---- */

/* The SANs of CRT as "DNS:x" / "IP:y" joined by ',' into BUF. */
static void
san_string(const mbedtls_x509_crt *crt, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s != NULL; s = s->next) {
		char item[300];
		if (s->buf.p == NULL) {
			continue;
		}
		if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)) {
			snprintf(item, sizeof(item), "DNS:%.*s", (int)s->buf.len, (const char *)s->buf.p);
		} else if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)) {
			char ip[INET6_ADDRSTRLEN];
			assert_true(s->buf.len == 4 || s->buf.len == 16);
			assert_non_null(inet_ntop(s->buf.len == 4 ? AF_INET : AF_INET6, s->buf.p, ip,
			    sizeof(ip)));
			snprintf(item, sizeof(item), "IP:%s", ip);
		} else {
			snprintf(item, sizeof(item), "?");
		}
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off > 0 ? "," : "", item);
		assert_true(off < len);
	}
}

static void
test_issue_agent(void **state)
{
	struct err te = ERR_INIT;
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	const char *sans[] = { "localhost", "127.0.0.1", "::1" };
	char crt_path[PATH_MAX], key_path[PATH_MAX], ca_path[PATH_MAX];
	char sanbuf[512];
	char fp[TLS_FP_HEX_LEN + 1];
	struct tls_identity id;
	mbedtls_x509_crt crt, ca;
	mbedtls_pk_context key;
	time_t now = time(NULL);

	init_home(f, NULL);
	assert_int_equal(issue(f, "host1", TLS_ROLE_AGENT, "host1", sans, 3, &pe), 0);
	dpath(f, "host1.crt", crt_path, sizeof(crt_path));
	dpath(f, "host1.key", key_path, sizeof(key_path));
	assert_int_equal(mode_of(key_path), 0600);
	assert_int_equal(mode_of(crt_path), 0644);

	load_crt(&crt, crt_path);
	assert_int_equal(verify_flags(f, &crt), 0);
	assert_false(crt.ca_istrue);
	assert_int_equal(crt.version, 3);
	/* SANs: the host's own name first, then ours in order, IPs as 4/16 bytes. */
	san_string(&crt, sanbuf, sizeof(sanbuf));
	assert_string_equal(sanbuf, "DNS:host1,DNS:localhost,IP:127.0.0.1,IP:::1");
	/* Agents are servers and clients. */
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_CLIENT_AUTH,
			     MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
	    0);
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_SERVER_AUTH,
			     MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
	    0);
	assert_int_equal(crt.key_usage, MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
	/* mbedTLS's own hostname check on the DNS SANs. */
	{
		uint32_t flags = 0;
		hpath(f, PKI_CA_CRT, ca_path, sizeof(ca_path));
		load_crt(&ca, ca_path);
		assert_int_equal(
		    mbedtls_x509_crt_verify(&crt, &ca, NULL, "localhost", &flags, NULL, NULL), 0);
		assert_int_not_equal(
		    mbedtls_x509_crt_verify(&crt, &ca, NULL, "otherhost", &flags, NULL, NULL), 0);
		assert_true(flags & MBEDTLS_X509_BADCERT_CN_MISMATCH);
		/* The issuer is the CA's subject, byte for byte. */
		assert_int_equal(crt.issuer_raw.len, ca.subject_raw.len);
		assert_memory_equal(crt.issuer_raw.p, ca.subject_raw.p, ca.subject_raw.len);
		mbedtls_x509_crt_free(&ca);
	}
	/* A positive serial of at most 128 bits (plus a sign byte). */
	assert_true(crt.serial.len >= 1 && crt.serial.len <= 17);
	assert_int_equal(crt.serial.p[0] & 0x80, 0);
	if (crt.serial.len == 17) {
		assert_int_equal(crt.serial.p[0], 0);
	}

	/* Identity as the TLS layer sees it. */
	assert_int_equal(tls_identity_from_file(crt_path, NULL, &id, &te), 0);
	assert_string_equal(id.cn, "host1");
	assert_string_equal(id.ou, "agent");
	assert_int_equal(id.role, TLS_ROLE_AGENT);
	assert_string_equal(id.host, "host1");
	assert_int_equal(pki_fingerprint_file(crt_path, fp, &pe), 0);
	assert_string_equal(fp, id.fingerprint);
	assert_true(is_hex_len(fp, TLS_FP_HEX_LEN));
	/* Default validity: 397 days from five minutes ago. */
	assert_int_equal(id.not_after - id.not_before, (time_t)PKI_DEFAULT_DAYS * 86400);
	assert_true(id.not_before <= now - PKI_BACKDATE_S + 5 && id.not_before >= now - PKI_BACKDATE_S - 5);

	/* The key matches and is EC P-256. */
	mbedtls_pk_init(&key);
	assert_int_equal(mbedtls_pk_parse_keyfile(&key, key_path, NULL), 0);
	assert_int_equal(mbedtls_pk_check_pair(&crt.pk, &key), 0);
	assert_int_equal(mbedtls_pk_get_type(&key), MBEDTLS_PK_ECKEY);
	mbedtls_pk_free(&key);
	mbedtls_x509_crt_free(&crt);
}

static void
test_issue_updater_and_serials(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	char p1[PATH_MAX], p2[PATH_MAX];
	char sanbuf[256];
	struct tls_identity id;
	mbedtls_x509_crt a, b;

	init_home(f, NULL);
	assert_int_equal(issue(f, "host1", TLS_ROLE_UPDATER, "u1", NULL, 0, &pe), 0);
	assert_int_equal(issue(f, "host1", TLS_ROLE_UPDATER, "u2", NULL, 0, &pe), 0);
	dpath(f, "u1.crt", p1, sizeof(p1));
	dpath(f, "u2.crt", p2, sizeof(p2));
	assert_int_equal(tls_identity_from_file(p1, NULL, &id, &pe), 0);
	assert_string_equal(id.cn, "updater@host1");
	assert_string_equal(id.ou, "updater");
	assert_int_equal(id.role, TLS_ROLE_UPDATER);
	assert_string_equal(id.host, "host1");

	load_crt(&a, p1);
	load_crt(&b, p2);
	san_string(&a, sanbuf, sizeof(sanbuf));
	assert_string_equal(sanbuf, "DNS:host1");
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&a, MBEDTLS_OID_SERVER_AUTH,
			     MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
	    0);
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&a, MBEDTLS_OID_CLIENT_AUTH,
			     MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
	    0);
	/* Random serials differ. */
	assert_false(a.serial.len == b.serial.len &&
	    memcmp(a.serial.p, b.serial.p, a.serial.len) == 0);
	mbedtls_x509_crt_free(&a);
	mbedtls_x509_crt_free(&b);
}

static void
test_issue_eku_override_and_rsa(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	struct pki_issue_opts o;
	char key[PATH_MAX], crt[PATH_MAX];
	mbedtls_x509_crt c;
	cJSON *d = NULL;
	const cJSON *eku;

	init_home(f, NULL);
	dpath(f, "srv.key", key, sizeof(key));
	dpath(f, "srv.crt", crt, sizeof(crt));
	pki_issue_opts_init(&o);
	o.name = "host2";
	o.role = TLS_ROLE_AGENT;
	o.eku = PKI_EKU_SERVER;
	o.key_type = PKI_KEY_RSA;
	o.key_out = key;
	o.cert_out = crt;
	assert_int_equal(pki_issue(f->home, &o, &pe), 0);
	load_crt(&c, crt);
	assert_int_equal(verify_flags(f, &c), 0);
	assert_int_equal(mbedtls_pk_get_type(&c.pk), MBEDTLS_PK_RSA);
	assert_int_equal(mbedtls_pk_get_bitlen(&c.pk), 2048);
	assert_int_equal(c.key_usage,
	    MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_ENCIPHERMENT);
	assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&c, MBEDTLS_OID_SERVER_AUTH,
			     MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
	    0);
	assert_int_not_equal(mbedtls_x509_crt_check_extended_key_usage(&c,
				 MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
	    0);
	mbedtls_x509_crt_free(&c);

	assert_int_equal(pki_describe(crt, NULL, &d, &pe), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "key")), "RSA 2048");
	eku = cJSON_GetObjectItem(d, "eku");
	assert_int_equal(cJSON_GetArraySize(eku), 1);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(eku, 0)), "serverAuth");
	cJSON_Delete(d);

	/* Unknown EKU bits and key types are refused. */
	o.eku = 0x10;
	o.force = 1;
	assert_int_equal(pki_issue(f->home, &o, &pe), -1);
	o.eku = 0;
	o.key_type = (enum pki_key_type)7;
	assert_int_equal(pki_issue(f->home, &o, &pe), -1);
}

static void
test_issue_refusals(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	struct pki_issue_opts o;
	const char *bad_san[] = { "bad_name" };
	const char *dup_san[] = { "a.example", "A.example" };
	const char *ok_san[] = { "10.0.0.1" };
	char key[PATH_MAX], crt[PATH_MAX];
	char before[TLS_FP_HEX_LEN + 1], after[TLS_FP_HEX_LEN + 1];
	char long_name[64];

	init_home(f, NULL);
	/* Names that could pass for another role. */
	assert_int_equal(issue(f, "tandem-master", TLS_ROLE_AGENT, "x", NULL, 0, &pe),
	    -1);
	assert_int_equal(issue(f, "Tandem-Master", TLS_ROLE_UPDATER, "x", NULL, 0, &pe),
	    -1);
	assert_int_equal(issue(f, "updater@host1", TLS_ROLE_AGENT, "x", NULL, 0, &pe),
	    -1);
	assert_int_equal(issue(f, "a@b", TLS_ROLE_UPDATER, "x", NULL, 0, &pe), -1);
	assert_int_equal(issue(f, "", TLS_ROLE_AGENT, "x", NULL, 0, &pe), -1);
	assert_int_equal(issue(f, "host1", TLS_ROLE_MASTER, "x", NULL, 0, &pe), -1);
	assert_int_equal(issue(f, "host1", TLS_ROLE_UNKNOWN, "x", NULL, 0, &pe), -1);
	/* updater@ + 57 characters exceeds the 64-character CN bound. */
	memset(long_name, 'u', 57);
	long_name[57] = '\0';
	assert_int_equal(issue(f, long_name, TLS_ROLE_UPDATER, "x", NULL, 0, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "64"));
	long_name[56] = '\0';
	assert_int_equal(issue(f, long_name, TLS_ROLE_UPDATER, "y", NULL, 0, &pe), 0);
	/* SANs. */
	assert_int_equal(issue(f, "host1", TLS_ROLE_AGENT, "x", bad_san, 1, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "subjectAltName"));
	assert_int_equal(issue(f, "host1", TLS_ROLE_AGENT, "x", dup_san, 2, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "twice"));
	assert_int_equal(pe.kind, ERR_BAD_REQUEST);
	/* Nothing was written by the refusals. */
	dpath(f, "x.key", key, sizeof(key));
	assert_int_equal(access(key, F_OK), -1);

	/* Existing outputs are kept unless forced. */
	assert_int_equal(issue(f, "host1", TLS_ROLE_AGENT, "h", ok_san, 1, &pe), 0);
	dpath(f, "h.key", key, sizeof(key));
	dpath(f, "h.crt", crt, sizeof(crt));
	assert_int_equal(pki_fingerprint_file(crt, before, &pe), 0);
	assert_int_equal(issue(f, "host1", TLS_ROLE_AGENT, "h", ok_san, 1, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "already exists"));
	assert_int_equal(pki_fingerprint_file(crt, after, &pe), 0);
	assert_string_equal(before, after);
	pki_issue_opts_init(&o);
	o.name = "host1";
	o.role = TLS_ROLE_AGENT;
	o.key_out = key;
	o.cert_out = crt;
	o.force = 1;
	assert_int_equal(pki_issue(f->home, &o, &pe), 0);
	assert_int_equal(pki_fingerprint_file(crt, after, &pe), 0);
	assert_string_not_equal(before, after);
	assert_int_equal(mode_of(key), 0600);

	/* Validity bounds. */
	o.days = PKI_MAX_DAYS + 1;
	assert_int_equal(pki_issue(f->home, &o, &pe), -1);
	o.days = -1;
	assert_int_equal(pki_issue(f->home, &o, &pe), -1);
	o.days = 0;
	o.not_before = time(NULL);
	o.not_after = o.not_before;
	assert_int_equal(pki_issue(f->home, &o, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "later"));
	/* Never outlive the CA. */
	{
		char ca_path[PATH_MAX];
		struct tls_identity caid;
		hpath(f, PKI_CA_CRT, ca_path, sizeof(ca_path));
		assert_int_equal(tls_identity_from_file(ca_path, NULL, &caid, &pe), 0);
		o.not_after = caid.not_after + 86400;
		assert_int_equal(pki_issue(f->home, &o, &pe), -1);
		assert_non_null(strstr(err_msg(&pe), "outlive"));
		o.not_after = caid.not_after;
		assert_int_equal(pki_issue(f->home, &o, &pe), 0);
	}
	/* Missing output paths. */
	o.not_before = o.not_after = 0;
	o.key_out = NULL;
	assert_int_equal(pki_issue(f->home, &o, &pe), -1);
}

static void
test_issue_expired_window(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	struct pki_issue_opts o;
	char key[PATH_MAX], crt[PATH_MAX];
	mbedtls_x509_crt c;
	cJSON *d = NULL;
	time_t now = time(NULL);

	init_home(f, NULL);
	dpath(f, "old.key", key, sizeof(key));
	dpath(f, "old.crt", crt, sizeof(crt));
	pki_issue_opts_init(&o);
	o.name = "old";
	o.role = TLS_ROLE_AGENT;
	o.key_out = key;
	o.cert_out = crt;
	o.not_before = now - 10 * 86400;
	o.not_after = now - 86400;
	assert_int_equal(pki_issue(f->home, &o, &pe), 0);
	load_crt(&c, crt);
	assert_true(verify_flags(f, &c) & MBEDTLS_X509_BADCERT_EXPIRED);
	mbedtls_x509_crt_free(&c);
	assert_int_equal(pki_describe(crt, NULL, &d, &pe), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "status")), "expired");
	cJSON_Delete(d);

	/* Not yet valid: starts tomorrow. */
	o.not_before = now + 86400;
	o.not_after = now + 2 * 86400;
	o.force = 1;
	assert_int_equal(pki_issue(f->home, &o, &pe), 0);
	load_crt(&c, crt);
	assert_true(verify_flags(f, &c) & MBEDTLS_X509_BADCERT_FUTURE);
	mbedtls_x509_crt_free(&c);
	assert_int_equal(pki_describe(crt, NULL, &d, &pe), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "status")),
	    "not yet valid");
	cJSON_Delete(d);
}

/* ---- show / describe ---- */

static void
test_show(void **state)
{
	struct err te = ERR_INIT;
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	const char *sans[] = { "localhost", "127.0.0.1" };
	char crt[PATH_MAX], junk[PATH_MAX];
	struct tls_identity id;
	char *text = NULL;
	size_t len = 0;
	FILE *mem;
	char line[160];

	init_home(f, NULL);
	assert_int_equal(issue(f, "host1", TLS_ROLE_AGENT, "s", sans, 2, &pe), 0);
	dpath(f, "s.crt", crt, sizeof(crt));
	assert_int_equal(tls_identity_from_file(crt, NULL, &id, &te), 0);

	mem = open_memstream(&text, &len);
	assert_non_null(mem);
	assert_int_equal(pki_show(crt, mem, NULL, 0, &pe), 0);
	assert_int_equal(fclose(mem), 0);
	assert_non_null(strstr(text, "subject: O=tandem, OU=agent, CN=host1\n"));
	assert_non_null(strstr(text, "role: agent\n"));
	assert_non_null(strstr(text, "san: DNS:host1, DNS:localhost, IP:127.0.0.1\n"));
	assert_non_null(strstr(text, "eku: serverAuth, clientAuth\n"));
	assert_non_null(strstr(text, "key: EC secp256r1\n"));
	assert_non_null(strstr(text, "ca: no\n"));
	assert_non_null(strstr(text, "status: valid\n"));
	assert_non_null(strstr(text, "issuer: O=tandem, CN=tandem CA "));
	snprintf(line, sizeof(line), "fingerprint: %s\n", id.fingerprint);
	assert_non_null(strstr(text, line));
	free(text);
	text = NULL;

	/* JSON: one object our strict reader accepts. */
	mem = open_memstream(&text, &len);
	assert_non_null(mem);
	assert_int_equal(pki_show(crt, mem, NULL, 1, &pe), 0);
	assert_int_equal(fclose(mem), 0);
	{
		cJSON *o = json_parse_object(text, len, NULL);
		assert_non_null(o);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "fingerprint")),
		    id.fingerprint);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "role")), "agent");
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "san")), 3);
		assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "ca")));
		cJSON_Delete(o);
	}
	free(text);
	text = NULL;

	/* With another master CN the role reading changes, as in TLS. */
	{
		cJSON *d = NULL;
		char mc[PATH_MAX];
		hpath(f, PKI_MASTER_CRT, mc, sizeof(mc));
		assert_int_equal(pki_describe(mc, "someone-else", &d, &pe), 0);
		assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(d, "role")), "unknown");
		cJSON_Delete(d);
	}

	/* Errors: missing file, not a certificate. */
	dpath(f, "missing.crt", junk, sizeof(junk));
	mem = open_memstream(&text, &len);
	assert_non_null(mem);
	assert_int_equal(pki_show(junk, mem, NULL, 0, &pe), -1);
	assert_non_null(strstr(err_msg(&pe), "missing.crt"));
	dpath(f, "junk.crt", junk, sizeof(junk));
	assert_int_equal(fs_write_atomic(junk, "not a certificate\n", 18, 0644), 0);
	assert_int_equal(pki_show(junk, mem, NULL, 1, &pe), -1);
	assert_int_equal(fclose(mem), 0);
	assert_int_equal(len, 0);
	free(text);
}

/* ---- a real handshake with what we issued ---- */

struct srv {
	struct tls_ctx *ctx;
	int fd;
	int rc;
	struct tls_identity id;
	struct err err;
};

static void *
srv_main(void *p)
{
	struct srv *s = p;
	struct tls_conn *c = NULL;

	s->rc = tls_accept(s->ctx, s->fd, &c, &s->id, &s->err);
	if (s->rc == 0) {
		tls_close(c);
	} else {
		close(s->fd);
	}
	return NULL;
}

/* Handshake: server with SRV cert, client with CLI cert; returns the client rc. */
static int
handshake(const struct fixture *f, const char *srv_name, const char *cli_crt,
    const char *cli_key, struct srv *s)
{
	struct tls_opts so, co;
	struct err err = ERR_INIT;
	char ca[PATH_MAX], scrt[PATH_MAX], skey[PATH_MAX], name[256];
	struct tls_ctx *sctx = NULL, *cctx = NULL;
	struct tls_conn *c = NULL;
	pthread_t t;
	int sp[2];
	int rc;

	hpath(f, PKI_CA_CRT, ca, sizeof(ca));
	snprintf(name, sizeof(name), "%s.crt", srv_name);
	dpath(f, name, scrt, sizeof(scrt));
	snprintf(name, sizeof(name), "%s.key", srv_name);
	dpath(f, name, skey, sizeof(skey));
	tls_opts_init(&so);
	so.ca_file = ca;
	so.cert_file = scrt;
	so.key_file = skey;
	so.handshake_timeout_ms = 5000;
	tls_opts_init(&co);
	co.ca_file = ca;
	co.cert_file = cli_crt;
	co.key_file = cli_key;
	if (tls_server_new(&so, &sctx, &err) != 0) {
		fail_msg("tls_server_new: %s", err_msg(&err));
	}
	if (tls_client_new(&co, &cctx, &err) != 0) {
		fail_msg("tls_client_new: %s", err_msg(&err));
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	memset(s, 0, sizeof(*s));
	s->ctx = sctx;
	s->fd = sp[0];
	assert_int_equal(pthread_create(&t, NULL, srv_main, s), 0);
	rc = tls_connect(cctx, sp[1], "localhost", NULL, 5000, &c, NULL, &err);
	if (rc == 0) {
		tls_close(c);
	} else {
		close(sp[1]);
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
	return rc;
}

static void
test_handshake_with_issued_certs(void **state)
{
	struct err pe = ERR_INIT;
	struct fixture *f = *state;
	const char *sans[] = { "localhost", "127.0.0.1" };
	struct pki_issue_opts o;
	char mcrt[PATH_MAX], mkey[PATH_MAX], crt[PATH_MAX], key[PATH_MAX];
	char fp[TLS_FP_HEX_LEN + 1];
	struct srv s;

	init_home(f, NULL);
	assert_int_equal(issue(f, "host1", TLS_ROLE_AGENT, "server", sans, 2, &pe), 0);
	hpath(f, PKI_MASTER_CRT, mcrt, sizeof(mcrt));
	hpath(f, PKI_MASTER_KEY, mkey, sizeof(mkey));
	assert_int_equal(pki_fingerprint_file(mcrt, fp, &pe), 0);

	/* The master, as a client of an agent: verified, role master, same fingerprint. */
	assert_int_equal(handshake(f, "server", mcrt, mkey, &s), 0);
	assert_int_equal(s.rc, 0);
	assert_int_equal(s.id.role, TLS_ROLE_MASTER);
	assert_string_equal(s.id.fingerprint, fp);

	/* An updater client. */
	assert_int_equal(issue(f, "host1", TLS_ROLE_UPDATER, "upd", NULL, 0, &pe), 0);
	dpath(f, "upd.crt", crt, sizeof(crt));
	dpath(f, "upd.key", key, sizeof(key));
	assert_int_equal(handshake(f, "server", crt, key, &s), 0);
	assert_int_equal(s.rc, 0);
	assert_int_equal(s.id.role, TLS_ROLE_UPDATER);
	assert_string_equal(s.id.host, "host1");

	/* A serverAuth-only certificate is refused as a client. */
	dpath(f, "srvonly.crt", crt, sizeof(crt));
	dpath(f, "srvonly.key", key, sizeof(key));
	pki_issue_opts_init(&o);
	o.name = "host3";
	o.role = TLS_ROLE_AGENT;
	o.eku = PKI_EKU_SERVER;
	o.key_out = key;
	o.cert_out = crt;
	assert_int_equal(pki_issue(f->home, &o, &pe), 0);
	(void)handshake(f, "server", crt, key, &s);
	assert_int_equal(s.rc, -1);

	/* An expired client certificate is refused. */
	dpath(f, "exp.crt", crt, sizeof(crt));
	dpath(f, "exp.key", key, sizeof(key));
	pki_issue_opts_init(&o);
	o.name = "host4";
	o.role = TLS_ROLE_AGENT;
	o.not_before = time(NULL) - 10 * 86400;
	o.not_after = time(NULL) - 86400;
	o.key_out = key;
	o.cert_out = crt;
	assert_int_equal(pki_issue(f->home, &o, &pe), 0);
	(void)handshake(f, "server", crt, key, &s);
	assert_int_equal(s.rc, -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_names),
		cmocka_unit_test(test_master_cn_syntax),
		cmocka_unit_test(test_key_type_parse),
		cmocka_unit_test_setup_teardown(test_init_layout_and_ca, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_init_master_certificate, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_init_custom_master_cn, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_init_refuses_existing_ca, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_init_failure_leaves_nothing, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_issue_agent, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_issue_updater_and_serials, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_issue_eku_override_and_rsa, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_issue_refusals, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_issue_expired_window, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_show, setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_handshake_with_issued_certs, setup, tmpdir_teardown),
	};

	log_init("test_pki", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
