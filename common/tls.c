#include "common/tls.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <netdb.h>

#include "common/digest.h"
#include "common/log.h"

#define TLS_DEFAULT_HS_TIMEOUT_MS 10000
#define TLS_TICKET_LIFETIME_S 3600
/*
 * Client session cache: at most this many peers (one entry each, about 2 KiB
 * with the peer's certificate); beyond it new peers are not cached (a full
 * handshake each), which only costs time.
 */
#define TLS_SESS_MAX 16384
#define TLS_SESS_BUCKETS 1024
/* peer address + hostname + pin list: longer keys are not cached. */
#define TLS_SESS_KEY_MAX 768

/* One remembered session: the server's ticket and what it resumes. */
struct tls_sess {
	struct tls_sess *next;
	mbedtls_ssl_session s;
	char key[TLS_SESS_KEY_MAX];
};

struct tls_ctx {
	atomic_int refs;          /* the owner's and one per connection */
	int is_server;
	mbedtls_ssl_config conf;
	mbedtls_x509_crt ca;
	mbedtls_x509_crt own;
	mbedtls_pk_context key;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_ticket_context ticket;
	int have_own;
	int have_ticket;
	int hs_timeout_ms;
	char master_cn[128];
	char master_compat_ou[64]; /* "" = off */
	char own_fp[TLS_FP_HEX_LEN + 1];
	/* Clients: the session cache (sess_on = 0: every handshake is full). */
	int sess_on;
	pthread_mutex_t sess_lock;
	struct tls_sess *sess[TLS_SESS_BUCKETS];
	size_t sess_n;
};

/* Handshakes this process completed as a client / as a server, full and resumed. */
static atomic_ulong tls_n_client_full;
static atomic_ulong tls_n_client_resumed;
static atomic_ulong tls_n_server_full;
static atomic_ulong tls_n_server_resumed;

struct tls_conn {
	struct tls_ctx *ctx;      /* a reference: the ssl context uses ctx->conf */
	mbedtls_ssl_context ssl;
	int fd;
	int closed_notify;
	int resumed; /* the handshake resumed a session (read from the ServerHello on) */
};

/*
 * ChaCha20-Poly1305 first: it is 12-18 % cheaper than AES-GCM in mbedTLS 2.28
 * on machines without AES-NI fast paths (software AES). ECDHE only: forward
 * secrecy on every connection.
 */
static const int tls_suites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	0,
};

/* Set by the ticket-parse wrapper in the thread running the handshake. */
static _Thread_local int tls_tl_resumed;

static void
tls_errstr(int ret, char *buf, size_t len)
{
	mbedtls_strerror(ret, buf, len);
}

const char *
tls_role_name(enum tls_role role)
{
	switch (role) {
	case TLS_ROLE_MASTER:
		return "master";
	case TLS_ROLE_AGENT:
		return "agent";
	case TLS_ROLE_UPDATER:
		return "updater";
	case TLS_ROLE_UNKNOWN:
		break;
	}
	return "unknown";
}

enum tls_role
tls_role_parse(const char *name)
{
	if (name == NULL) {
		return TLS_ROLE_UNKNOWN;
	}
	if (strcmp(name, "master") == 0) {
		return TLS_ROLE_MASTER;
	}
	if (strcmp(name, "agent") == 0) {
		return TLS_ROLE_AGENT;
	}
	if (strcmp(name, "updater") == 0) {
		return TLS_ROLE_UPDATER;
	}
	return TLS_ROLE_UNKNOWN;
}

enum tls_role
tls_role_from_subject_compat(const char *cn, const char *ou, const char *master_cn,
    const char *compat_ou)
{
	if (compat_ou != NULL && *compat_ou != '\0' && cn != NULL && ou != NULL &&
	    strcmp(cn, master_cn != NULL && *master_cn != '\0' ? master_cn : TLS_DEFAULT_MASTER_CN) ==
		0 &&
	    strcmp(ou, compat_ou) == 0) {
		return TLS_ROLE_MASTER;
	}
	return tls_role_from_subject(cn, ou, master_cn);
}

enum tls_role
tls_role_from_subject(const char *cn, const char *ou, const char *master_cn)
{
	enum tls_role role;

	if (master_cn == NULL || *master_cn == '\0') {
		master_cn = TLS_DEFAULT_MASTER_CN;
	}
	if (cn == NULL || *cn == '\0') {
		return TLS_ROLE_UNKNOWN;
	}
	if (strcmp(cn, master_cn) == 0) {
		role = TLS_ROLE_MASTER;
	} else if (strncmp(cn, "updater@", 8) == 0) {
		/* "updater@" alone, or a second '@', names no host. */
		if (cn[8] == '\0' || strchr(cn + 8, '@') != NULL) {
			return TLS_ROLE_UNKNOWN;
		}
		role = TLS_ROLE_UPDATER;
	} else if (strchr(cn, '@') != NULL || strcasecmp(cn, master_cn) == 0) {
		/* Anything else with '@' (or a case variant of the master CN) could
		 * impersonate a role: no role at all. */
		return TLS_ROLE_UNKNOWN;
	} else {
		role = TLS_ROLE_AGENT;
	}
	if (ou != NULL && *ou != '\0' && tls_role_parse(ou) != role) {
		return TLS_ROLE_UNKNOWN;
	}
	return role;
}


static time_t
tls_x509_time(const mbedtls_x509_time *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = t->year - 1900;
	tm.tm_mon = t->mon - 1;
	tm.tm_mday = t->day;
	tm.tm_hour = t->hour;
	tm.tm_min = t->min;
	tm.tm_sec = t->sec;
	return timegm(&tm);
}

/* Copy an X.509 name attribute value; non-printable bytes make it invalid. */
static int
tls_name_value(const mbedtls_x509_name *n, char *out, size_t len)
{
	if (n->val.len >= len) {
		return -1;
	}
	for (size_t i = 0; i < n->val.len; i++) {
		unsigned char ch = n->val.p[i];
		if (ch < 0x20 || ch == 0x7f) {
			return -1;
		}
	}
	memcpy(out, n->val.p, n->val.len);
	out[n->val.len] = '\0';
	return 0;
}

/* The serial as canonical hex: lowercase, leading zero bytes dropped ("" if unusable). */
static void
tls_serial_hex(const mbedtls_x509_crt *crt, char out[TLS_SERIAL_HEX_MAX + 1])
{
	const unsigned char *p = crt->serial.p;
	size_t len = crt->serial.len;

	out[0] = '\0';
	while (len > 1 && p[0] == 0) {
		p++;
		len--;
	}
	if (p == NULL || len == 0 || len > TLS_SERIAL_HEX_MAX / 2) {
		return;
	}
	hex_encode(p, len, out);
}

static int
tls_identity_from_crt(const mbedtls_x509_crt *crt, const char *master_cn, const char *compat_ou,
    struct tls_identity *id)
{
	int n_cn = 0;
	int n_ou = 0;

	memset(id, 0, sizeof(*id));
	for (const mbedtls_x509_name *n = &crt->subject; n != NULL; n = n->next) {
		if (n->oid.p == NULL) {
			continue;
		}
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
			if (tls_name_value(n, id->cn, sizeof(id->cn)) != 0) {
				return -1;
			}
			n_cn++;
		} else if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_ORG_UNIT, &n->oid) == 0) {
			if (tls_name_value(n, id->ou, sizeof(id->ou)) != 0) {
				return -1;
			}
			n_ou++;
		}
	}
	if (digest_buf(crt->raw.p, crt->raw.len, id->fingerprint) != 0) {
		return -1;
	}
	tls_serial_hex(crt, id->serial);
	id->not_before = tls_x509_time(&crt->valid_from);
	id->not_after = tls_x509_time(&crt->valid_to);
	/* Two CNs or two OUs are ambiguous: give such a certificate no role. */
	if (n_cn != 1 || n_ou > 1) {
		id->role = TLS_ROLE_UNKNOWN;
		return 0;
	}
	id->role = tls_role_from_subject_compat(id->cn, id->ou, master_cn, compat_ou);
	id->compat = id->role == TLS_ROLE_MASTER &&
	    tls_role_from_subject(id->cn, id->ou, master_cn) != TLS_ROLE_MASTER;
	if (id->role == TLS_ROLE_AGENT) {
		snprintf(id->host, sizeof(id->host), "%s", id->cn);
	} else if (id->role == TLS_ROLE_UPDATER) {
		snprintf(id->host, sizeof(id->host), "%s", id->cn + 8);
	}
	return 0;
}

int
tls_identity_from_der(const unsigned char *der, size_t len, const char *master_cn,
    struct tls_identity *out)
{
	mbedtls_x509_crt crt;
	int rc = -1;

	mbedtls_x509_crt_init(&crt);
	if (mbedtls_x509_crt_parse_der(&crt, der, len) != 0) {
		goto out;
	}
	rc = tls_identity_from_crt(&crt, master_cn, NULL, out);
out:
	mbedtls_x509_crt_free(&crt);
	return rc;
}

int
tls_identity_from_file(const char *path, const char *master_cn, struct tls_identity *out,
    struct err *e)
{
	mbedtls_x509_crt crt;
	int rc = -1;
	int ret;

	mbedtls_x509_crt_init(&crt);
	/* Say what is wrong with the file in words, not as an mbedTLS code. */
	if (access(path, R_OK) != 0) {
		err_sys_kind(e, ERR_IO, "cannot read %s", path);
		goto out;
	}
	ret = mbedtls_x509_crt_parse_file(&crt, path);
	if (ret != 0) {
		err_set(e, ERR_FORMAT, "%s does not hold a PEM or DER certificate", path);
		goto out;
	}
	if (tls_identity_from_crt(&crt, master_cn, NULL, out) != 0) {
		err_set(e, ERR_FORMAT, "%s: certificate subject is malformed", path);
		goto out;
	}
	rc = 0;
out:
	mbedtls_x509_crt_free(&crt);
	return rc;
}

int
tls_verify_cert_file(const char *ca_file, const char *cert_file, struct err *e)
{
	mbedtls_x509_crt ca, crt;
	char ebuf[128], vbuf[256];
	uint32_t flags = 0;
	int rc = -1, ret;

	mbedtls_x509_crt_init(&ca);
	mbedtls_x509_crt_init(&crt);
	ret = mbedtls_x509_crt_parse_file(&ca, ca_file);
	if (ret != 0) {
		tls_errstr(ret, ebuf, sizeof(ebuf));
		err_set(e, ERR_FORMAT, "%s: cannot load CA certificate: %s", ca_file, ebuf);
		goto out;
	}
	ret = mbedtls_x509_crt_parse_file(&crt, cert_file);
	if (ret != 0) {
		tls_errstr(ret, ebuf, sizeof(ebuf));
		err_set(e, ERR_FORMAT, "%s: cannot load certificate: %s", cert_file, ebuf);
		goto out;
	}
	if (mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL) != 0) {
		int n = mbedtls_x509_crt_verify_info(vbuf, sizeof(vbuf), "", flags);
		/* verify_info separates reasons with newlines: make it one line. */
		for (int i = 0; i < n && vbuf[i] != '\0'; i++) {
			if (vbuf[i] == '\n') {
				vbuf[i] = i + 1 < n && vbuf[i + 1] != '\0' ? ';' : '\0';
			}
		}
		err_set(e, ERR_TLS, "%s does not verify against %s: %s", cert_file, ca_file,
		    n > 0 ? vbuf : "unknown reason");
		goto out;
	}
	rc = 0;
out:
	mbedtls_x509_crt_free(&crt);
	mbedtls_x509_crt_free(&ca);
	return rc;
}

void
tls_opts_init(struct tls_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->session_tickets = 1;
	o->handshake_timeout_ms = TLS_DEFAULT_HS_TIMEOUT_MS;
}

/*
 * Private keys must not be readable by anyone but their owner (like ssh):
 * a key left world-readable is refused rather than used.
 */
static int
tls_check_key_mode(const char *path, struct err *e)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		err_sys_kind(e, ERR_CONFIG, "%s", path);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		err_set(e, ERR_CONFIG,
		    "%s: private key is accessible by group/others (mode %04o); chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* Session-ticket wrappers: the parse side records, per thread, that the
 * handshake resumed a session, so tls_accept can say so in the identity. */
static int
tls_ticket_write(void *p_ticket, const mbedtls_ssl_session *session, unsigned char *start,
    const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
	return mbedtls_ssl_ticket_write(p_ticket, session, start, end, tlen, lifetime);
}

static int
tls_ticket_parse(void *p_ticket, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
	int ret = mbedtls_ssl_ticket_parse(p_ticket, session, buf, len);

	if (ret == 0) {
		tls_tl_resumed = 1;
	}
	return ret;
}

/* ---- client session cache ---------------------------------------------- */

static unsigned
tls_sess_hash(const char *key)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h = (h ^ *p) * 16777619u;
	}
	return h % TLS_SESS_BUCKETS;
}

/* Forget every session (wiped: mbedtls_ssl_session_free zeroizes the secrets). */
static void
tls_sess_clear(struct tls_ctx *c)
{
	pthread_mutex_lock(&c->sess_lock);
	for (size_t b = 0; b < TLS_SESS_BUCKETS; b++) {
		struct tls_sess *s = c->sess[b];
		while (s != NULL) {
			struct tls_sess *next = s->next;
			mbedtls_ssl_session_free(&s->s);
			mbedtls_platform_zeroize(s, sizeof(*s));
			free(s);
			s = next;
		}
		c->sess[b] = NULL;
	}
	c->sess_n = 0;
	pthread_mutex_unlock(&c->sess_lock);
}

/*
 * The cache key of a connection: the peer's address (the socket's, so one
 * name resolving elsewhere is another key), the hostname checked and the pins
 * expected. A changed pin never offers a session made under the old one.
 * -1 when the address is unknown or the key too long: no caching.
 */
static int
tls_sess_key(int fd, const char *hostname, const char *pin_fp, char *key, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	char host[NI_MAXHOST];
	char serv[NI_MAXSERV];
	int n;

	if (getpeername(fd, (struct sockaddr *)&ss, &slen) != 0 ||
	    getnameinfo((struct sockaddr *)&ss, slen, host, sizeof(host), serv, sizeof(serv),
		NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		return -1;
	}
	n = snprintf(key, len, "%s|%s|%s|%s", host, serv, hostname != NULL ? hostname : "",
	    pin_fp != NULL ? pin_fp : "");
	return n > 0 && (size_t)n < len ? 0 : -1;
}

static struct tls_sess **
tls_sess_find(struct tls_ctx *c, const char *key)
{
	struct tls_sess **pp = &c->sess[tls_sess_hash(key)];

	while (*pp != NULL && strcmp((*pp)->key, key) != 0) {
		pp = &(*pp)->next;
	}
	return pp;
}

/* Offer the session cached under KEY on SSL (nothing when none is cached). */
static void
tls_sess_offer(struct tls_ctx *c, const char *key, mbedtls_ssl_context *ssl)
{
	struct tls_sess **pp;

	pthread_mutex_lock(&c->sess_lock);
	pp = tls_sess_find(c, key);
	if (*pp != NULL && mbedtls_ssl_set_session(ssl, &(*pp)->s) != 0) {
		log_debug("tls: cached session not usable; full handshake");
	}
	pthread_mutex_unlock(&c->sess_lock);
}

/* Remember the session of the finished handshake on SSL under KEY (replacing). */
static void
tls_sess_store(struct tls_ctx *c, const char *key, const mbedtls_ssl_context *ssl)
{
	struct tls_sess *n = calloc(1, sizeof(*n));
	struct tls_sess **pp;

	if (n == NULL) {
		return;
	}
	mbedtls_ssl_session_init(&n->s);
	if (mbedtls_ssl_get_session(ssl, &n->s) != 0 || n->s.ticket == NULL ||
	    strlcpy_chk(n->key, key, sizeof(n->key)) != 0) {
		/* No ticket (a server that issues none): nothing worth keeping. */
		mbedtls_ssl_session_free(&n->s);
		free(n);
		return;
	}
	pthread_mutex_lock(&c->sess_lock);
	pp = tls_sess_find(c, key);
	if (*pp != NULL) {
		struct tls_sess *old = *pp;
		n->next = old->next;
		*pp = n;
		mbedtls_ssl_session_free(&old->s);
		mbedtls_platform_zeroize(old, sizeof(*old));
		free(old);
		n = NULL;
	} else if (c->sess_n < TLS_SESS_MAX) {
		*pp = n;
		c->sess_n++;
		n = NULL;
	}
	pthread_mutex_unlock(&c->sess_lock);
	if (n != NULL) {
		mbedtls_ssl_session_free(&n->s);
		free(n);
	}
}

/* Forget the session under KEY (its handshake or the checks after it failed). */
static void
tls_sess_drop(struct tls_ctx *c, const char *key)
{
	struct tls_sess **pp;
	struct tls_sess *old;

	pthread_mutex_lock(&c->sess_lock);
	pp = tls_sess_find(c, key);
	old = *pp;
	if (old != NULL) {
		*pp = old->next;
		c->sess_n--;
	}
	pthread_mutex_unlock(&c->sess_lock);
	if (old != NULL) {
		mbedtls_ssl_session_free(&old->s);
		mbedtls_platform_zeroize(old, sizeof(*old));
		free(old);
	}
}

void
tls_handshake_counts(struct tls_handshake_counts *out)
{
	out->client_full = atomic_load(&tls_n_client_full);
	out->client_resumed = atomic_load(&tls_n_client_resumed);
	out->server_full = atomic_load(&tls_n_server_full);
	out->server_resumed = atomic_load(&tls_n_server_resumed);
}

static int
tls_ctx_new(const struct tls_opts *o, int is_server, struct tls_ctx **out, struct err *e)
{
	static const char pers[] = "tandem-tls";
	struct tls_ctx *c;
	char ebuf[160];
	int ret;
	int rc = -1;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return -1;
	}
	atomic_init(&c->refs, 1);
	c->is_server = is_server;
	pthread_mutex_init(&c->sess_lock, NULL);
	/* TANDEM_TLS_NO_RESUME=1: full handshakes only (benchmarks, troubleshooting). */
	c->sess_on = !is_server && o->session_tickets && getenv("TANDEM_TLS_NO_RESUME") == NULL;
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_x509_crt_init(&c->ca);
	mbedtls_x509_crt_init(&c->own);
	mbedtls_pk_init(&c->key);
	mbedtls_entropy_init(&c->entropy);
	mbedtls_ctr_drbg_init(&c->drbg);
	mbedtls_ssl_ticket_init(&c->ticket);
	c->hs_timeout_ms = o->handshake_timeout_ms > 0 ? o->handshake_timeout_ms
						       : TLS_DEFAULT_HS_TIMEOUT_MS;
	if (strlcpy_chk(c->master_cn,
		o->master_cn != NULL && *o->master_cn != '\0' ? o->master_cn
							       : TLS_DEFAULT_MASTER_CN,
		sizeof(c->master_cn)) != 0) {
		err_set(e, ERR_CONFIG, "master CN too long");
		goto out;
	}
	if (strlcpy_chk(c->master_compat_ou, o->master_compat_ou != NULL ? o->master_compat_ou : "",
		sizeof(c->master_compat_ou)) != 0) {
		err_set(e, ERR_CONFIG, "master compatibility OU too long");
		goto out;
	}

	ret = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
	    (const unsigned char *)pers, sizeof(pers) - 1);
	if (ret != 0) {
		tls_errstr(ret, ebuf, sizeof(ebuf));
		err_set(e, ERR_INTERNAL, "seeding the random generator: %s", ebuf);
		goto out;
	}
	if (o->ca_file == NULL) {
		err_set(e, ERR_CONFIG, "no CA certificate configured");
		goto out;
	}
	ret = mbedtls_x509_crt_parse_file(&c->ca, o->ca_file);
	if (ret != 0) {
		tls_errstr(ret, ebuf, sizeof(ebuf));
		err_set(e, ERR_CONFIG, "%s: cannot load CA certificate: %s", o->ca_file, ebuf);
		goto out;
	}
	if (is_server && (o->cert_file == NULL || o->key_file == NULL)) {
		err_set(e, ERR_CONFIG, "a server needs a certificate and a key");
		goto out;
	}
	if ((o->cert_file == NULL) != (o->key_file == NULL)) {
		err_set(e, ERR_CONFIG, "a certificate needs its key (and a key its certificate)");
		goto out;
	}
	if (o->cert_file != NULL) {
		ret = mbedtls_x509_crt_parse_file(&c->own, o->cert_file);
		if (ret != 0) {
			tls_errstr(ret, ebuf, sizeof(ebuf));
			err_set(e, ERR_CONFIG, "%s: cannot load certificate: %s", o->cert_file, ebuf);
			goto out;
		}
		if (tls_check_key_mode(o->key_file, e) != 0) {
			goto out;
		}
		ret = mbedtls_pk_parse_keyfile(&c->key, o->key_file, NULL);
		if (ret != 0) {
			tls_errstr(ret, ebuf, sizeof(ebuf));
			err_set(e, ERR_CONFIG, "%s: cannot load private key: %s", o->key_file, ebuf);
			goto out;
		}
		ret = mbedtls_pk_check_pair(&c->own.pk, &c->key);
		if (ret != 0) {
			err_set(e, ERR_CONFIG, "%s does not match the certificate %s", o->key_file,
			    o->cert_file);
			goto out;
		}
		/* mbedTLS servers silently skip a certificate without serverAuth and
		 * then fail every handshake with "no cipher suite": say so here. */
		if (is_server &&
		    mbedtls_x509_crt_check_extended_key_usage(&c->own, MBEDTLS_OID_SERVER_AUTH,
			MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0) {
			err_set(e, ERR_CONFIG,
			    "%s lacks the serverAuth extended key usage: a server cannot use it",
			    o->cert_file);
			goto out;
		}
		if (digest_buf(c->own.raw.p, c->own.raw.len, c->own_fp) != 0) {
			err_set(e, ERR_INTERNAL, "%s: sha256 failed", o->cert_file);
			goto out;
		}
		c->have_own = 1;
	}

	ret = mbedtls_ssl_config_defaults(&c->conf,
	    is_server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
	    MBEDTLS_SSL_PRESET_DEFAULT);
	if (ret != 0) {
		tls_errstr(ret, ebuf, sizeof(ebuf));
		err_set(e, ERR_INTERNAL, "TLS configuration: %s", ebuf);
		goto out;
	}
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
	mbedtls_ssl_conf_min_version(&c->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
	    MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&c->conf, tls_suites);
	mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	/* Fail closed: verify the peer on both sides (mbedTLS servers don't by default). */
	mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_ca_chain(&c->conf, &c->ca, NULL);
	if (c->have_own) {
		ret = mbedtls_ssl_conf_own_cert(&c->conf, &c->own, &c->key);
		if (ret != 0) {
			tls_errstr(ret, ebuf, sizeof(ebuf));
			err_set(e, ERR_CONFIG, "TLS configuration (own certificate): %s", ebuf);
			goto out;
		}
	}
	if (is_server && o->session_tickets) {
		ret = mbedtls_ssl_ticket_setup(&c->ticket, mbedtls_ctr_drbg_random, &c->drbg,
		    MBEDTLS_CIPHER_AES_256_GCM, TLS_TICKET_LIFETIME_S);
		if (ret != 0) {
			tls_errstr(ret, ebuf, sizeof(ebuf));
			err_set(e, ERR_INTERNAL, "TLS session tickets: %s", ebuf);
			goto out;
		}
		c->have_ticket = 1;
		mbedtls_ssl_conf_session_tickets_cb(&c->conf, tls_ticket_write, tls_ticket_parse,
		    &c->ticket);
	}
	*out = c;
	c = NULL;
	rc = 0;
out:
	tls_ctx_free(c);
	return rc;
}

int
tls_server_new(const struct tls_opts *o, struct tls_ctx **out, struct err *e)
{
	return tls_ctx_new(o, 1, out, e);
}

int
tls_client_new(const struct tls_opts *o, struct tls_ctx **out, struct err *e)
{
	return tls_ctx_new(o, 0, out, e);
}

struct tls_ctx *
tls_ctx_ref(struct tls_ctx *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void
tls_ctx_free(struct tls_ctx *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1) {
		return;
	}
	tls_sess_clear(c);
	pthread_mutex_destroy(&c->sess_lock);
	mbedtls_ssl_config_free(&c->conf);
	mbedtls_ssl_ticket_free(&c->ticket);
	mbedtls_x509_crt_free(&c->ca);
	mbedtls_x509_crt_free(&c->own);
	mbedtls_pk_free(&c->key); /* zeroizes the key material */
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_entropy_free(&c->entropy);
	mbedtls_platform_zeroize(c, sizeof(*c));
	free(c);
}

const char *
tls_ctx_master_cn(const struct tls_ctx *c)
{
	return c->master_cn;
}

const char *
tls_ctx_own_fingerprint(const struct tls_ctx *c)
{
	return c->own_fp;
}

int
tls_ctx_handshake_timeout(const struct tls_ctx *ctx)
{
	return ctx->hs_timeout_ms;
}

int
tls_ctx_own_identity(const struct tls_ctx *c, struct tls_identity *out)
{
	if (!c->have_own) {
		return -1;
	}
	return tls_identity_from_crt(&c->own, c->master_cn, NULL, out);
}

/* BIO over a non-blocking socket. */
static int
tls_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	int fd = *(int *)ctx;
	ssize_t n;

	do {
		n = send(fd, buf, len, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n >= 0) {
		return (int)n;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	}
	if (errno == EPIPE || errno == ECONNRESET) {
		return MBEDTLS_ERR_NET_CONN_RESET;
	}
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int
tls_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	int fd = *(int *)ctx;
	ssize_t n;

	do {
		n = recv(fd, buf, len, 0);
	} while (n < 0 && errno == EINTR);
	if (n >= 0) {
		return (int)n;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		return MBEDTLS_ERR_SSL_WANT_READ;
	}
	if (errno == ECONNRESET || errno == EPIPE) {
		return MBEDTLS_ERR_NET_CONN_RESET;
	}
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

static int
tls_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		return -1;
	}
	return 0;
}

/* Wait until FD is ready for the direction mbedTLS asked for; -1 on timeout. */
static int
tls_wait(int fd, int want, int64_t deadline)
{
	struct pollfd pfd;
	int r;

	pfd.fd = fd;
	pfd.events = (short)(want == MBEDTLS_ERR_SSL_WANT_WRITE ? POLLOUT : POLLIN);
	for (;;) {
		int left = ms_until(deadline);
		if (left == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.revents = 0;
		r = poll(&pfd, 1, left);
		if (r > 0) {
			return 0;
		}
		if (r < 0 && errno != EINTR) {
			return -1;
		}
	}
}

/* After tls_wait() failed: "timed out" (ERR_TIMEOUT) or the poll error. */
static void
tls_wait_err(struct err *e)
{
	int saved = errno;

	if (saved == ETIMEDOUT) {
		err_set(e, ERR_TIMEOUT, "timed out");
		return;
	}
	err_set(e, ERR_IO, "%s", strerror(saved));
	if (e != NULL) {
		e->sys_errno = saved;
	}
}

static struct tls_conn *
tls_conn_new(struct tls_ctx *ctx, int fd, struct err *e)
{
	struct tls_conn *c;
	char ebuf[128];
	int ret;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return NULL;
	}
	mbedtls_ssl_init(&c->ssl);
	c->fd = fd;
	ret = mbedtls_ssl_setup(&c->ssl, &ctx->conf);
	if (ret != 0) {
		tls_errstr(ret, ebuf, sizeof(ebuf));
		err_set(e, ERR_INTERNAL, "TLS setup: %s", ebuf);
		mbedtls_ssl_free(&c->ssl);
		free(c);
		return NULL;
	}
	c->ctx = tls_ctx_ref(ctx);
	mbedtls_ssl_set_bio(&c->ssl, &c->fd, tls_bio_send, tls_bio_recv, NULL);
	return c;
}

/* Free the connection object without closing its fd (failed handshakes). */
static void
tls_conn_discard(struct tls_conn *c)
{
	if (c == NULL) {
		return;
	}
	mbedtls_ssl_free(&c->ssl);
	tls_ctx_free(c->ctx);
	free(c);
}

static int
tls_handshake(struct tls_conn *c, int64_t deadline, int timeout_ms, struct err *e)
{
	char ebuf[160];
	int ret;

	for (;;) {
		/*
		 * Step by step (what mbedtls_ssl_handshake does) to see where a
		 * client goes after the ServerHello: straight to the server's
		 * ChangeCipherSpec when the server resumed our session, to its
		 * Certificate for a full handshake.
		 */
		ret = 0;
		while (ret == 0 && c->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
			int before = c->ssl.state;
			ret = mbedtls_ssl_handshake_step(&c->ssl);
			if (ret == 0 && before == MBEDTLS_SSL_SERVER_HELLO &&
			    c->ssl.conf->endpoint == MBEDTLS_SSL_IS_CLIENT) {
				c->resumed = c->ssl.state == MBEDTLS_SSL_SERVER_CHANGE_CIPHER_SPEC;
			}
		}
		if (ret == 0) {
			return 0;
		}
		if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE) {
			break;
		}
		if (tls_wait(c->fd, ret, deadline) != 0) {
			if (errno == ETIMEDOUT) {
				err_set(e, ERR_TIMEOUT, "TLS handshake: timed out after %d ms",
				    timeout_ms);
			} else {
				err_sys_kind(e, ERR_TLS, "TLS handshake: poll");
			}
			return -1;
		}
	}
	/*
	 * A failed EKU check (serverAuth-only certificate used as a client) ends
	 * as BAD_HS_CERTIFICATE, not as a verify failure; the verify flags in the
	 * session still say why, so report them whenever they are set.
	 */
	uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
	if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ||
	    (flags != 0 && flags != UINT32_MAX)) {
		char vbuf[256];
		int n = mbedtls_x509_crt_verify_info(vbuf, sizeof(vbuf), "", flags);
		/* verify_info separates reasons with newlines: make it one line. */
		for (int i = 0; i < n && vbuf[i] != '\0'; i++) {
			if (vbuf[i] == '\n') {
				vbuf[i] = (i + 1 < n && vbuf[i + 1] != '\0') ? ';' : '\0';
			}
		}
		err_set(e, ERR_TLS, "TLS handshake: peer certificate rejected: %s",
		    n > 0 ? vbuf : "verification failed");
		return -1;
	}
	tls_errstr(ret, ebuf, sizeof(ebuf));
	/*
	 * The peer ended the connection before the handshake finished: it is
	 * up but not serving us now (a server at its connection limit drops
	 * new handshakes), which callers retry rather than call unreachable.
	 */
	err_set(e,
	    ret == MBEDTLS_ERR_SSL_CONN_EOF || ret == MBEDTLS_ERR_NET_CONN_RESET ? ERR_HANDSHAKE_CUT
										 : ERR_TLS,
	    "TLS handshake: %s", ebuf);
	return -1;
}

/*
 * Checks run after EVERY handshake, including resumed ones: mbedTLS resumes a
 * ticket without re-verifying the certificate, so the validity window, the
 * verification result kept in the session, the EKU and the role are checked
 * here again.
 */
static int
tls_check_peer(struct tls_conn *c, const char *master_cn, const char *compat_ou,
    const char *eku_oid, size_t eku_len, struct tls_identity *id, struct err *e)
{
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);

	if (peer == NULL) {
		err_set(e, ERR_TLS, "peer presented no certificate");
		return -1;
	}
	if (mbedtls_ssl_get_verify_result(&c->ssl) != 0) {
		err_set(e, ERR_TLS, "peer certificate did not verify");
		return -1;
	}
	if (mbedtls_x509_time_is_past(&peer->valid_to)) {
		err_set(e, ERR_TLS, "peer certificate has expired");
		return -1;
	}
	if (mbedtls_x509_time_is_future(&peer->valid_from)) {
		err_set(e, ERR_TLS, "peer certificate is not valid yet");
		return -1;
	}
	if (mbedtls_x509_crt_check_extended_key_usage(peer, eku_oid, eku_len) != 0) {
		err_set(e, ERR_TLS, "peer certificate lacks the %s extended key usage",
		    eku_len == MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH) &&
			    memcmp(eku_oid, MBEDTLS_OID_CLIENT_AUTH, eku_len) == 0
			? "clientAuth"
			: "serverAuth");
		return -1;
	}
	if (tls_identity_from_crt(peer, master_cn, compat_ou, id) != 0) {
		err_set(e, ERR_TLS, "peer certificate subject is malformed");
		return -1;
	}
	/* Fail closed: a serial we cannot read cannot be checked. */
	if (id->serial[0] == '\0' || tls_serial_revoked(id->serial)) {
		err_set(e, ERR_TLS, "peer certificate (serial %s, CN=%s) is revoked",
		    id->serial[0] != '\0' ? id->serial : "unreadable", id->cn);
		return -1;
	}
	return 0;
}

/* ---- revocation: the process-wide set of revoked serials ---------------- */

static pthread_rwlock_t tls_rev_lock = PTHREAD_RWLOCK_INITIALIZER;
static char (*tls_rev_serials)[TLS_SERIAL_HEX_MAX + 1];
static size_t tls_rev_n;

/* Numeric order of canonical hex: shorter is smaller, then by digits. */
static int
tls_serial_cmp(const void *a, const void *b)
{
	size_t la = strlen(a);
	size_t lb = strlen(b);

	if (la != lb) {
		return la < lb ? -1 : 1;
	}
	return strcmp(a, b);
}

int
tls_revoked_set(const char *const *serials, size_t n, struct err *e)
{
	char (*set)[TLS_SERIAL_HEX_MAX + 1] = NULL;
	char (*old)[TLS_SERIAL_HEX_MAX + 1];

	if (n > 0) {
		set = calloc(n, sizeof(*set));
		if (set == NULL) {
			return err_set(e, ERR_NOMEM, "out of memory for %zu revoked serials", n);
		}
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = serials[i] != NULL ? strlen(serials[i]) : 0;
		if (len == 0 || len > TLS_SERIAL_HEX_MAX || len % 2 != 0 ||
		    !is_hex_len(serials[i], len)) {
			free(set);
			return err_set(e, ERR_BAD_REQUEST, "revoked serial %zu is not canonical hex",
			    i);
		}
		for (size_t j = 0; j <= len; j++) {
			set[i][j] = (char)tolower((unsigned char)serials[i][j]);
		}
	}
	if (n > 1) {
		qsort(set, n, sizeof(*set), tls_serial_cmp);
	}
	pthread_rwlock_wrlock(&tls_rev_lock);
	old = tls_rev_serials;
	tls_rev_serials = set;
	tls_rev_n = n;
	pthread_rwlock_unlock(&tls_rev_lock);
	free(old);
	return 0;
}

int
tls_serial_revoked(const char *serial)
{
	int hit = 0;

	pthread_rwlock_rdlock(&tls_rev_lock);
	if (tls_rev_n > 0 &&
	    bsearch(serial, tls_rev_serials, tls_rev_n, sizeof(*tls_rev_serials),
		tls_serial_cmp) != NULL) {
		hit = 1;
	}
	pthread_rwlock_unlock(&tls_rev_lock);
	return hit;
}

size_t
tls_revoked_count(void)
{
	size_t n;

	pthread_rwlock_rdlock(&tls_rev_lock);
	n = tls_rev_n;
	pthread_rwlock_unlock(&tls_rev_lock);
	return n;
}

int
tls_accept(struct tls_ctx *ctx, int fd, struct tls_conn **out, struct tls_identity *id,
    struct err *e)
{
	struct tls_conn *c;
	int64_t deadline = mono_ms() + ctx->hs_timeout_ms;

	if (!ctx->is_server) {
		err_set(e, ERR_INTERNAL, "tls_accept on a client context");
		return -1;
	}
	if (tls_set_nonblock(fd) != 0) {
		err_sys(e, "fcntl");
		return -1;
	}
	c = tls_conn_new(ctx, fd, e);
	if (c == NULL) {
		return -1;
	}
	tls_tl_resumed = 0;
	if (tls_handshake(c, deadline, ctx->hs_timeout_ms, e) != 0) {
		tls_conn_discard(c);
		return -1;
	}
	if (tls_check_peer(c, ctx->master_cn, ctx->master_compat_ou, MBEDTLS_OID_CLIENT_AUTH,
		MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH), id, e) != 0) {
		tls_conn_discard(c);
		return -1;
	}
	id->resumed = tls_tl_resumed;
	atomic_fetch_add(id->resumed ? &tls_n_server_resumed : &tls_n_server_full, 1);
	*out = c;
	return 0;
}

int
tls_pin_match(const char *pins, const char *fp)
{
	const char *p = pins;
	int n = 0;
	int hit = 0;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len != TLS_FP_HEX_LEN || ++n > TLS_MAX_PINS) {
			return -1;
		}
		for (size_t i = 0; i < len; i++) {
			if (!isxdigit((unsigned char)p[i])) {
				return -1;
			}
		}
		if (fp != NULL && strncasecmp(p, fp, TLS_FP_HEX_LEN) == 0) {
			hit = 1;
		}
		if (comma == NULL) {
			return hit;
		}
		p = comma + 1;
	}
}

int
tls_connect(struct tls_ctx *ctx, int fd, const char *hostname, const char *pin_fp,
    int timeout_ms, struct tls_conn **out, struct tls_identity *server_id, struct err *e)
{
	struct tls_conn *c;
	struct tls_identity id;
	int64_t deadline;
	char key[TLS_SESS_KEY_MAX];
	int cache;
	char ebuf[128];
	int ret;

	if (ctx->is_server) {
		err_set(e, ERR_INTERNAL, "tls_connect on a server context");
		return -1;
	}
	if (pin_fp != NULL && *pin_fp != '\0' && tls_pin_match(pin_fp, NULL) < 0) {
		err_set(e, ERR_CONFIG, "pinned fingerprint is not 64 hex digits");
		return -1;
	}
	if (timeout_ms <= 0) {
		timeout_ms = ctx->hs_timeout_ms;
	}
	deadline = mono_ms() + timeout_ms;
	if (tls_set_nonblock(fd) != 0) {
		err_sys(e, "fcntl");
		return -1;
	}
	c = tls_conn_new(ctx, fd, e);
	if (c == NULL) {
		return -1;
	}
	if (hostname != NULL && *hostname != '\0') {
		ret = mbedtls_ssl_set_hostname(&c->ssl, hostname);
		if (ret != 0) {
			tls_errstr(ret, ebuf, sizeof(ebuf));
			err_set(e, ERR_CONFIG, "TLS hostname: %s", ebuf);
			tls_conn_discard(c);
			return -1;
		}
	}
	cache = ctx->sess_on && tls_sess_key(fd, hostname, pin_fp, key, sizeof(key)) == 0;
	if (cache) {
		tls_sess_offer(ctx, key, &c->ssl);
	}
	if (tls_handshake(c, deadline, timeout_ms, e) != 0) {
		goto fail;
	}
	/*
	 * A resumed session carries the peer certificate it was made with
	 * (MBEDTLS_SSL_KEEP_PEER_CERTIFICATE) and its verification result:
	 * validity, EKU, revocation and the pin are checked on it exactly as
	 * after a full handshake. Resumption never skips a check.
	 */
	if (tls_check_peer(c, ctx->master_cn, ctx->master_compat_ou, MBEDTLS_OID_SERVER_AUTH,
		MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH), &id, e) != 0) {
		goto fail;
	}
	if (pin_fp != NULL && *pin_fp != '\0' && tls_pin_match(pin_fp, id.fingerprint) != 1) {
		err_set(e, ERR_PIN_MISMATCH,
		    "server certificate fingerprint %s does not match the pinned %s", id.fingerprint,
		    pin_fp);
		goto fail;
	}
	id.resumed = c->resumed;
	atomic_fetch_add(id.resumed ? &tls_n_client_resumed : &tls_n_client_full, 1);
	if (cache) {
		tls_sess_store(ctx, key, &c->ssl);
	}
	if (server_id != NULL) {
		*server_id = id;
	}
	*out = c;
	return 0;
fail:
	if (cache) {
		tls_sess_drop(ctx, key);
	}
	tls_conn_discard(c);
	return -1;
}

ssize_t
tls_read(struct tls_conn *c, void *buf, size_t len)
{
	int ret = mbedtls_ssl_read(&c->ssl, buf, len);

	if (ret > 0) {
		return ret;
	}
	switch (ret) {
	case 0:
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
	case MBEDTLS_ERR_SSL_CONN_EOF:
		return 0;
	case MBEDTLS_ERR_SSL_WANT_READ:
		return TLS_WANT_READ;
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return TLS_WANT_WRITE;
	default:
		return TLS_ERR;
	}
}

ssize_t
tls_write(struct tls_conn *c, const void *buf, size_t len)
{
	int ret = mbedtls_ssl_write(&c->ssl, buf, len);

	if (ret >= 0) {
		return ret;
	}
	if (ret == MBEDTLS_ERR_SSL_WANT_READ) {
		return TLS_WANT_READ;
	}
	if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
		return TLS_WANT_WRITE;
	}
	return TLS_ERR;
}

size_t
tls_pending(const struct tls_conn *c)
{
	return mbedtls_ssl_get_bytes_avail(&c->ssl);
}

int
tls_fd(const struct tls_conn *c)
{
	return c->fd;
}

ssize_t
tls_read_deadline(struct tls_conn *c, void *buf, size_t len, int64_t deadline, struct err *e)
{
	for (;;) {
		ssize_t n = tls_read(c, buf, len);
		if (n >= 0) {
			return n;
		}
		if (n == TLS_ERR) {
			err_set(e, ERR_PROTOCOL, "TLS read failed (connection reset or corrupt record)");
			return -1;
		}
		if (tls_wait(c->fd, n == TLS_WANT_WRITE ? MBEDTLS_ERR_SSL_WANT_WRITE
							 : MBEDTLS_ERR_SSL_WANT_READ,
			deadline) != 0) {
			tls_wait_err(e);
			return -1;
		}
	}
}

int
tls_write_all_deadline(struct tls_conn *c, const void *buf, size_t len, int64_t deadline,
    struct err *e)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = tls_write(c, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == TLS_ERR || n == 0) {
			err_set(e, ERR_PROTOCOL, "TLS write failed (connection reset by peer?)");
			return -1;
		}
		if (tls_wait(c->fd, n == TLS_WANT_WRITE ? MBEDTLS_ERR_SSL_WANT_WRITE
							 : MBEDTLS_ERR_SSL_WANT_READ,
			deadline) != 0) {
			tls_wait_err(e);
			return -1;
		}
	}
	return 0;
}

void
tls_close_notify(struct tls_conn *c)
{
	if (c == NULL || c->closed_notify) {
		return;
	}
	c->closed_notify = 1;
	/* Best effort, non-blocking: a peer that is gone must not stall us. */
	(void)mbedtls_ssl_close_notify(&c->ssl);
}

void
tls_close(struct tls_conn *c)
{
	if (c == NULL) {
		return;
	}
	tls_close_notify(c);
	if (c->fd >= 0) {
		close(c->fd);
	}
	mbedtls_ssl_free(&c->ssl);
	tls_ctx_free(c->ctx);
	free(c);
}
