/*
 * pki — the fleet's certificate authority over mbedTLS 2.28's x509write.
 *
 * 2.28 has no setters for subjectAltName, extendedKeyUsage or a given
 * authority key identifier, so those extensions are encoded here with the
 * ASN.1 writer and added with mbedtls_x509write_crt_set_extension(). The
 * issuer name of a leaf is copied attribute by attribute from the CA
 * certificate (tags kept), so it is byte-identical to the CA's subject.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform.h>
#include <mbedtls/rsa.h>
#include <mbedtls/x509_crt.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "pki/pki.h"
#include "pki/issued.h"
#include "pki/pki_int.h"
#include "pki/trust.h"
#include "pki/trust.h"

#define PKI_PEM_MAX 16384
#define PKI_EXT_MAX 12288
#define PKI_DAY_S 86400
#define PKI_SERIAL_LEN 16

/* Everything one certificate needs. */
struct pki_spec {
	const char *subject;        /* mbedTLS name string, "O=..,OU=..,CN=.." */
	mbedtls_pk_context *key;    /* subject key */
	const struct pki_ca *ca;    /* NULL: self-signed by KEY */
	time_t not_before, not_after;
	int is_ca;
	unsigned eku;               /* PKI_EKU_*; 0: no extension */
	const char *const *sans;
	size_t n_sans;
};

/* E from mbedTLS's RET while doing WHAT: file and memory errors keep their kind. */
static int
pki_mbed_err(struct err *e, enum err_kind kind, const char *what, int ret)
{
	char buf[160];

	if (ret == MBEDTLS_ERR_X509_FILE_IO_ERROR || ret == MBEDTLS_ERR_PK_FILE_IO_ERROR) {
		kind = ERR_IO;
	} else if (ret == MBEDTLS_ERR_X509_ALLOC_FAILED || ret == MBEDTLS_ERR_PK_ALLOC_FAILED) {
		kind = ERR_NOMEM;
	}
	mbedtls_strerror(ret, buf, sizeof(buf));
	return err_set(e, kind, "%s: %s (-0x%04x)", what, buf, (unsigned)-ret);
}

int
pki_path(const char *home, const char *rel, char *buf, size_t len)
{
	int n;

	if (home == NULL || rel == NULL || *home == '\0') {
		return -1;
	}
	n = snprintf(buf, len, "%s/%s", home, rel);
	if (n < 0 || (size_t)n >= len) {
		return -1;
	}
	return 0;
}

int
pki_key_type_parse(const char *s, enum pki_key_type *out)
{
	if (s == NULL) {
		return -1;
	}
	if (strcmp(s, "ec") == 0) {
		*out = PKI_KEY_EC;
	} else if (strcmp(s, "rsa") == 0 || strcmp(s, "rsa2048") == 0) {
		*out = PKI_KEY_RSA;
	} else if (strcmp(s, "rsa3072") == 0) {
		*out = PKI_KEY_RSA3072;
	} else {
		return -1;
	}
	return 0;
}

/* ---- names ---------------------------------------------------------- */

/* DNS syntax: [A-Za-z0-9.-], labels 1..63 not starting/ending with '-'. */
static int
pki_check_dns(const char *name, const char *what, struct err *e)
{
	size_t len;
	size_t label = 0;

	if (name == NULL || *name == '\0') {
		err_set(e, ERR_BAD_REQUEST, "%s is empty", what);
		return -1;
	}
	len = strlen(name);
	if (len > PKI_HOST_NAME_MAX) {
		err_set(e, ERR_BAD_REQUEST, "%s is longer than %d characters", what, PKI_HOST_NAME_MAX);
		return -1;
	}
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.' || c == '\0') {
			if (label == 0) {
				err_set(e, ERR_BAD_REQUEST, "%s '%s' has an empty label", what, name);
				return -1;
			}
			if (name[i - 1] == '-') {
				err_set(e, ERR_BAD_REQUEST, "%s '%s': a label may not end with '-'", what, name);
				return -1;
			}
			label = 0;
			continue;
		}
		if (c == '@') {
			err_set(e, ERR_BAD_REQUEST,
			    "%s '%s' contains '@', which is reserved for role names (updater@HOST)",
			    what, name);
			return -1;
		}
		if (!isalnum(c) && c != '-') {
			err_set(e, ERR_BAD_REQUEST, "%s contains a character outside [A-Za-z0-9.-] (0x%02x)",
			    what, c);
			return -1;
		}
		if (c == '-' && label == 0) {
			err_set(e, ERR_BAD_REQUEST, "%s '%s': a label may not start with '-'", what, name);
			return -1;
		}
		if (++label > 63) {
			err_set(e, ERR_BAD_REQUEST, "%s has a label longer than 63 characters", what);
			return -1;
		}
	}
	return 0;
}

int
pki_check_host_name(const char *name, const char *master_cn, struct err *e)
{
	if (master_cn == NULL || *master_cn == '\0') {
		master_cn = TLS_DEFAULT_MASTER_CN;
	}
	/* The '@' check comes first so the reason names the impersonation. */
	if (name != NULL && strchr(name, '@') != NULL) {
		err_set(e, ERR_BAD_REQUEST,
		    "host name '%.64s' contains '@', which is reserved for role names "
		    "(updater@HOST)", name);
		return -1;
	}
	if (pki_check_dns(name, "host name", e) != 0) {
		return -1;
	}
	if (strcasecmp(name, master_cn) == 0) {
		err_set(e, ERR_BAD_REQUEST, "host name '%s' is the master's CN '%s': refused", name,
		    master_cn);
		return -1;
	}
	return 0;
}

int
pki_check_cn(const char *cn, struct err *e)
{
	size_t len;

	if (cn == NULL || *cn == '\0') {
		err_set(e, ERR_BAD_REQUEST, "master CN is empty");
		return -1;
	}
	len = strlen(cn);
	if (len > PKI_CN_MAX) {
		err_set(e, ERR_BAD_REQUEST, "master CN is longer than %d characters", PKI_CN_MAX);
		return -1;
	}
	if (!isalnum((unsigned char)cn[0])) {
		err_set(e, ERR_BAD_REQUEST, "master CN '%s' must start with a letter or digit", cn);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)cn[i];
		if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
			err_set(e, ERR_BAD_REQUEST,
			    "master CN contains a character outside [A-Za-z0-9._-] (0x%02x)", c);
			return -1;
		}
	}
	return 0;
}

/* ---- randomness, keys ------------------------------------------------- */

void
pki_rng_setup(struct pki_rng *r)
{
	mbedtls_entropy_init(&r->entropy);
	mbedtls_ctr_drbg_init(&r->drbg);
}

/* Seed a generator set up with pki_rng_setup(). */
int
pki_rng_seed(struct pki_rng *r, struct err *e)
{
	static const unsigned char pers[] = "tandem-pki";
	int ret;

	ret = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy, pers,
	    sizeof(pers) - 1);
	if (ret != 0) {
		pki_mbed_err(e, ERR_INTERNAL, "seeding the random generator", ret);
		return -1;
	}
	return 0;
}

void
pki_rng_free(struct pki_rng *r)
{
	mbedtls_ctr_drbg_free(&r->drbg);
	mbedtls_entropy_free(&r->entropy);
}

static int
pki_genkey(mbedtls_pk_context *pk, enum pki_key_type type, struct pki_rng *r, struct err *e)
{
	int ret;

	if (type == PKI_KEY_EC) {
		ret = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
		if (ret == 0) {
			ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk),
			    mbedtls_ctr_drbg_random, &r->drbg);
		}
	} else if (type == PKI_KEY_RSA || type == PKI_KEY_RSA3072) {
		unsigned bits = type == PKI_KEY_RSA3072 ? 3072u : 2048u;
		ret = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));
		if (ret == 0) {
			ret = mbedtls_rsa_gen_key(mbedtls_pk_rsa(*pk), mbedtls_ctr_drbg_random,
			    &r->drbg, bits, 65537);
		}
	} else {
		err_set(e, ERR_INTERNAL, "unknown key type %d", (int)type);
		return -1;
	}
	if (ret != 0) {
		pki_mbed_err(e, ERR_INTERNAL, "generating the key", ret);
		return -1;
	}
	return 0;
}

/*
 * PEM of the private key into a malloc'd buffer; the caller wipes and frees
 * it with secure_free(*out, PKI_PEM_MAX).
 */
static int
pki_key_pem(mbedtls_pk_context *pk, unsigned char **out, size_t *outlen, struct err *e)
{
	unsigned char *buf = calloc(1, PKI_PEM_MAX);
	int ret;

	if (buf == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return -1;
	}
	ret = mbedtls_pk_write_key_pem(pk, buf, PKI_PEM_MAX);
	if (ret != 0) {
		secure_free(buf, PKI_PEM_MAX);
		pki_mbed_err(e, ERR_INTERNAL, "encoding the private key", ret);
		return -1;
	}
	*outlen = strlen((const char *)buf);
	*out = buf;
	return 0;
}

/* ---- extensions ------------------------------------------------------- */

/* basicConstraints, critical: CA:TRUE pathlen 0 for the CA, CA:FALSE else. */
static int
pki_ext_basic(mbedtls_x509write_cert *w, int is_ca)
{
	unsigned char buf[16];
	unsigned char *p = buf + sizeof(buf);
	size_t len = 0;
	int ret;

	if (is_ca) {
		MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_int(&p, buf, 0));
		MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_bool(&p, buf, 1));
	}
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
	MBEDTLS_ASN1_CHK_ADD(len,
	    mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	return mbedtls_x509write_crt_set_extension(w, MBEDTLS_OID_BASIC_CONSTRAINTS,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_BASIC_CONSTRAINTS), 1, p, len);
}

/* extendedKeyUsage (non-critical): SEQUENCE OF KeyPurposeId. */
static int
pki_ext_eku(mbedtls_x509write_cert *w, unsigned eku)
{
	unsigned char buf[64];
	unsigned char *p = buf + sizeof(buf);
	size_t len = 0;
	int ret;

	/* Written backwards: serverAuth ends up first. */
	if (eku & PKI_EKU_CLIENT) {
		MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_CLIENT_AUTH,
		    MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)));
	}
	if (eku & PKI_EKU_SERVER) {
		MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
		    MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)));
	}
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
	MBEDTLS_ASN1_CHK_ADD(len,
	    mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	return mbedtls_x509write_crt_set_extension(w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, p, len);
}

/*
 * subjectAltName (non-critical): dNSName [2] IA5String or iPAddress [7]
 * OCTET STRING (4 or 16 bytes), in the order given.
 */
static int
pki_ext_san(mbedtls_x509write_cert *w, const char *const *sans, size_t n)
{
	unsigned char *buf = malloc(PKI_EXT_MAX);
	unsigned char *p;
	size_t len = 0;
	int ret = MBEDTLS_ERR_ASN1_ALLOC_FAILED;

	if (buf == NULL) {
		return ret;
	}
	p = buf + PKI_EXT_MAX;
	for (size_t i = n; i-- > 0;) {
		unsigned char ip[16];
		size_t iplen = 0;
		size_t before = len;
		int r;

		if (inet_pton(AF_INET, sans[i], ip) == 1) {
			iplen = 4;
		} else if (inet_pton(AF_INET6, sans[i], ip) == 1) {
			iplen = 16;
		}
		if (iplen > 0) {
			r = mbedtls_asn1_write_raw_buffer(&p, buf, ip, iplen);
		} else {
			r = mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)sans[i],
			    strlen(sans[i]));
		}
		if (r < 0) {
			ret = r;
			goto out;
		}
		len += (size_t)r;
		r = mbedtls_asn1_write_len(&p, buf, len - before);
		if (r < 0) {
			ret = r;
			goto out;
		}
		len += (size_t)r;
		r = mbedtls_asn1_write_tag(&p, buf,
		    (unsigned char)(MBEDTLS_ASN1_CONTEXT_SPECIFIC | (iplen > 0 ? 7 : 2)));
		if (r < 0) {
			ret = r;
			goto out;
		}
		len += (size_t)r;
	}
	ret = mbedtls_asn1_write_len(&p, buf, len);
	if (ret < 0) {
		goto out;
	}
	len += (size_t)ret;
	ret = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
	if (ret < 0) {
		goto out;
	}
	len += (size_t)ret;
	ret = mbedtls_x509write_crt_set_extension(w, MBEDTLS_OID_SUBJECT_ALT_NAME,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, p, len);
out:
	free(buf);
	return ret;
}

/*
 * The subjectKeyIdentifier of CRT, if it has one: a pointer into CRT's DER.
 * 2.28 does not parse it, so walk the extensions (v3_ext holds the
 * "Extensions" SEQUENCE).
 */
int
pki_find_ski(const mbedtls_x509_crt *crt, const unsigned char **ski, size_t *ski_len)
{
	unsigned char *p = crt->v3_ext.p;
	const unsigned char *end;
	size_t len;

	if (p == NULL || crt->v3_ext.len == 0) {
		return -1;
	}
	end = p + crt->v3_ext.len;
	if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
	    0) {
		return -1;
	}
	end = p + len;
	while (p < end) {
		unsigned char *ext_end;
		mbedtls_x509_buf oid;
		int crit;
		int ret;

		if (mbedtls_asn1_get_tag(&p, end, &len,
			MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) {
			return -1;
		}
		ext_end = p + len;
		if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID) != 0) {
			return -1;
		}
		oid.p = p;
		p += oid.len;
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_KEY_IDENTIFIER, &oid) != 0) {
			p = ext_end;
			continue;
		}
		/* critical is optional (DEFAULT FALSE); absent leaves P where it was. */
		ret = mbedtls_asn1_get_bool(&p, ext_end, &crit);
		if (ret != 0 && ret != MBEDTLS_ERR_ASN1_UNEXPECTED_TAG) {
			return -1;
		}
		if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0 ||
		    mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0 ||
		    len == 0 || p + len != ext_end) {
			return -1;
		}
		*ski = p;
		*ski_len = len;
		return 0;
	}
	return -1;
}

/* authorityKeyIdentifier = the issuer's SKI when it has one, else SHA-1 of its key. */
static int
pki_ext_aki(mbedtls_x509write_cert *w, const struct pki_ca *ca)
{
	unsigned char buf[96];
	unsigned char *p = buf + sizeof(buf);
	/* Set by pki_find_ski() on success; initialised for gcc -O1 -fsanitize=thread,
	 * which cannot see that and warns. */
	const unsigned char *ski = NULL;
	size_t ski_len = 0;
	size_t len = 0;
	int ret;

	if (ca == NULL || pki_find_ski(&ca->crt, &ski, &ski_len) != 0 || ski_len > 64) {
		return mbedtls_x509write_crt_set_authority_key_identifier(w);
	}
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(&p, buf, ski, ski_len));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0));
	MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_len(&p, buf, len));
	MBEDTLS_ASN1_CHK_ADD(len,
	    mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	return mbedtls_x509write_crt_set_extension(w, MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER), 0, p, len);
}

/*
 * Issuer name = the CA's subject, attribute by attribute with its string
 * tags. mbedTLS writes the list back to front, so build it reversed.
 */
static int
pki_copy_issuer(mbedtls_x509write_cert *w, const mbedtls_x509_name *subj)
{
	for (const mbedtls_x509_name *n = subj; n != NULL; n = n->next) {
		mbedtls_asn1_named_data *d;

		if (n->oid.p == NULL) {
			continue;
		}
		if (n->next_merged) {
			return -1; /* multi-valued RDNs: not supported */
		}
		d = mbedtls_calloc(1, sizeof(*d));
		if (d == NULL) {
			return -1;
		}
		d->next = w->issuer;
		w->issuer = d;
		d->oid.tag = n->oid.tag;
		d->oid.len = n->oid.len;
		d->oid.p = mbedtls_calloc(1, n->oid.len);
		d->val.tag = n->val.tag;
		d->val.len = n->val.len;
		d->val.p = mbedtls_calloc(1, n->val.len > 0 ? n->val.len : 1);
		if (d->oid.p == NULL || d->val.p == NULL) {
			return -1;
		}
		memcpy(d->oid.p, n->oid.p, n->oid.len);
		if (n->val.len > 0) {
			memcpy(d->val.p, n->val.p, n->val.len);
		}
	}
	return w->issuer != NULL ? 0 : -1;
}

/* "YYYYMMDDhhmmss" for x509write; years 1950..9999. */
static int
pki_x509_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1950 || tm.tm_year + 1900 > 9999) {
		return -1;
	}
	if (strftime(buf, len, "%Y%m%d%H%M%S", &tm) != 14) {
		return -1;
	}
	return 0;
}

/* Build, sign and PEM-encode the certificate of SPEC into *OUT (malloc'd). */
static int
pki_make_cert(const struct pki_spec *s, struct pki_rng *r, unsigned char **out, size_t *outlen,
    struct err *e)
{
	mbedtls_x509write_cert w;
	mbedtls_mpi serial;
	unsigned char sb[PKI_SERIAL_LEN];
	char nb[16], na[16];
	unsigned char *pem = NULL;
	const char *step = "";
	int ret = 0;
	int rc = -1;

	mbedtls_x509write_crt_init(&w);
	mbedtls_mpi_init(&serial);
	if (pki_x509_time(s->not_before, nb, sizeof(nb)) != 0 ||
	    pki_x509_time(s->not_after, na, sizeof(na)) != 0) {
		err_set(e, ERR_BAD_REQUEST, "validity outside the years 1950..9999");
		goto out;
	}
	/* 128 random bits, read as an unsigned (positive) integer; never 0. */
	do {
		ret = mbedtls_ctr_drbg_random(&r->drbg, sb, sizeof(sb));
		if (ret != 0) {
			step = "serial";
			goto mbed_fail;
		}
		ret = mbedtls_mpi_read_binary(&serial, sb, sizeof(sb));
		if (ret != 0) {
			step = "serial";
			goto mbed_fail;
		}
	} while (mbedtls_mpi_cmp_int(&serial, 0) == 0);

	mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&w, s->key);
	mbedtls_x509write_crt_set_issuer_key(&w, s->ca != NULL ? (mbedtls_pk_context *)&s->ca->key
							     : s->key);
	step = "serial";
	if ((ret = mbedtls_x509write_crt_set_serial(&w, &serial)) != 0) {
		goto mbed_fail;
	}
	step = "validity";
	if ((ret = mbedtls_x509write_crt_set_validity(&w, nb, na)) != 0) {
		goto mbed_fail;
	}
	step = "subject name";
	if ((ret = mbedtls_x509write_crt_set_subject_name(&w, s->subject)) != 0) {
		goto mbed_fail;
	}
	if (s->ca == NULL) {
		step = "issuer name";
		if ((ret = mbedtls_x509write_crt_set_issuer_name(&w, s->subject)) != 0) {
			goto mbed_fail;
		}
	} else if (pki_copy_issuer(&w, &s->ca->crt.subject) != 0) {
		err_set(e, ERR_INTERNAL, "cannot copy the CA's subject name (multi-valued RDN?)");
		goto out;
	}
	step = "basicConstraints";
	if ((ret = pki_ext_basic(&w, s->is_ca)) != 0) {
		goto mbed_fail;
	}
	step = "keyUsage";
	if (s->is_ca) {
		ret = mbedtls_x509write_crt_set_key_usage(&w,
		    MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN);
	} else if (mbedtls_pk_get_type(s->key) == MBEDTLS_PK_RSA) {
		ret = mbedtls_x509write_crt_set_key_usage(&w,
		    MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_ENCIPHERMENT);
	} else {
		ret = mbedtls_x509write_crt_set_key_usage(&w, MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
	}
	if (ret != 0) {
		goto mbed_fail;
	}
	step = "subjectKeyIdentifier";
	if ((ret = mbedtls_x509write_crt_set_subject_key_identifier(&w)) != 0) {
		goto mbed_fail;
	}
	step = "authorityKeyIdentifier";
	if ((ret = pki_ext_aki(&w, s->ca)) != 0) {
		goto mbed_fail;
	}
	if (s->eku != 0) {
		step = "extendedKeyUsage";
		if ((ret = pki_ext_eku(&w, s->eku)) != 0) {
			goto mbed_fail;
		}
	}
	if (s->n_sans > 0) {
		step = "subjectAltName";
		if ((ret = pki_ext_san(&w, s->sans, s->n_sans)) != 0) {
			goto mbed_fail;
		}
	}
	pem = calloc(1, PKI_PEM_MAX);
	if (pem == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	step = "signing the certificate";
	ret = mbedtls_x509write_crt_pem(&w, pem, PKI_PEM_MAX, mbedtls_ctr_drbg_random, &r->drbg);
	if (ret != 0) {
		goto mbed_fail;
	}
	*outlen = strlen((const char *)pem);
	*out = pem;
	pem = NULL;
	rc = 0;
	goto out;
mbed_fail:
	pki_mbed_err(e, ERR_INTERNAL, step, ret);
out:
	free(pem);
	mbedtls_mpi_free(&serial);
	mbedtls_x509write_crt_free(&w);
	return rc;
}

/* ---- the CA on disk ----------------------------------------------------- */

void
pki_ca_init(struct pki_ca *ca)
{
	mbedtls_x509_crt_init(&ca->crt);
	mbedtls_pk_init(&ca->key);
}

void
pki_ca_free(struct pki_ca *ca)
{
	mbedtls_x509_crt_free(&ca->crt);
	mbedtls_pk_free(&ca->key);
}

/* Load HOME's CA and check it can sign: a CA certificate matching its key. */
int
pki_ca_load(struct pki_ca *ca, const char *home, struct err *e)
{
	char crt_path[PATH_MAX], key_path[PATH_MAX];
	int ret;

	if (pki_path(home, PKI_CA_CRT, crt_path, sizeof(crt_path)) != 0 ||
	    pki_path(home, PKI_CA_KEY, key_path, sizeof(key_path)) != 0) {
		err_set(e, ERR_INTERNAL, "home directory path too long");
		return -1;
	}
	ret = mbedtls_x509_crt_parse_file(&ca->crt, crt_path);
	if (ret != 0) {
		char what[PATH_MAX + 64];
		snprintf(what, sizeof(what), "%s: cannot load the CA certificate%s", crt_path,
		    access(crt_path, F_OK) != 0 ? " (run 'tandem pki init' first)" : "");
		pki_mbed_err(e, ERR_FORMAT, what, ret);
		return -1;
	}
	if (!ca->crt.ca_istrue) {
		err_set(e, ERR_FORMAT, "%s is not a CA certificate", crt_path);
		return -1;
	}
	{
		struct stat st;
		if (stat(key_path, &st) == 0 && (st.st_mode & 077) != 0) {
			log_warnx("%s is accessible to group or others (mode %04o): chmod 600 it",
			    key_path, (unsigned)(st.st_mode & 07777));
		}
	}
	ret = mbedtls_pk_parse_keyfile(&ca->key, key_path, NULL);
	if (ret != 0) {
		char what[PATH_MAX + 64];
		snprintf(what, sizeof(what), "%s: cannot load the CA key", key_path);
		pki_mbed_err(e, ERR_FORMAT, what, ret);
		return -1;
	}
	ret = mbedtls_pk_check_pair(&ca->crt.pk, &ca->key);
	if (ret != 0) {
		err_set(e, ERR_FORMAT, "%s does not match %s", key_path, crt_path);
		return -1;
	}
	return 0;
}

/* 1 when PATH exists (anything, even a dangling symlink), 0 when not, -1 on error. */
static int
pki_exists(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		return 1;
	}
	return errno == ENOENT ? 0 : -1;
}

/* Create DIR 0700 if missing; tighten an existing one of ours to 0700. */
static int
pki_private_dir(const char *dir, int tighten, struct err *e)
{
	struct stat st;

	if (fs_mkdir_p(dir, 0700) != 0) {
		err_sys(e, "%s: cannot create directory", dir);
		return -1;
	}
	if (!tighten) {
		return 0;
	}
	if (stat(dir, &st) != 0) {
		err_sys(e, "%s", dir);
		return -1;
	}
	if ((st.st_mode & 077) != 0 && chmod(dir, 0700) != 0) {
		err_sys(e, "%s: cannot make it private (0700)", dir);
		return -1;
	}
	return 0;
}

/* Write the key and certificate PEMs to KEY_PATH and CRT_PATH. */
static int
pki_write_pair(mbedtls_pk_context *key, const unsigned char *crt_pem, size_t crt_len,
    const char *key_path, const char *crt_path, struct err *e)
{
	struct fs_atomic ka = FS_ATOMIC_INIT;
	struct fs_atomic ca = FS_ATOMIC_INIT;
	unsigned char *key_pem = NULL;
	size_t key_len = 0;
	int key_existed;
	int rc = -1;

	key_existed = pki_exists(key_path);
	if (pki_key_pem(key, &key_pem, &key_len, e) != 0) {
		goto out;
	}
	if (fs_atomic_begin(&ka, key_path, 0600) != 0 ||
	    fs_atomic_write(&ka, key_pem, key_len) != 0) {
		err_sys(e, "%s: cannot write", key_path);
		goto out;
	}
	if (fs_atomic_begin(&ca, crt_path, 0644) != 0 ||
	    fs_atomic_write(&ca, crt_pem, crt_len) != 0) {
		err_sys(e, "%s: cannot write", crt_path);
		goto out;
	}
	if (fs_atomic_commit(&ka) != 0) {
		err_sys(e, "%s: cannot write", key_path);
		goto out;
	}
	if (fs_atomic_commit(&ca) != 0) {
		err_sys(e, "%s: cannot write", crt_path);
		if (key_existed == 0 && unlink(key_path) != 0) {
			log_warn("%s: cannot remove after failure", key_path);
		}
		goto out;
	}
	rc = 0;
out:
	fs_atomic_abort(&ka);
	fs_atomic_abort(&ca);
	secure_free(key_pem, PKI_PEM_MAX);
	return rc;
}

/*
 * Keep a copy in HOME/ca/issued/ (revocation by host or fingerprint finds it
 * there). The certificate is already in place: a failure here only warns.
 */
static void
pki_note_issued(const char *home, const unsigned char *pem, size_t len)
{
	struct err e = ERR_INIT;

	if (pki_issued_record(home, pem, len, &e) != 0) {
		log_warnx("pki: %s", err_msg(&e));
	}
}

/* ---- pki_init ------------------------------------------------------------ */

/*
 * A new CA key and self-signed certificate (PKI_CA_DAYS from NOW) into CA
 * (loaded) and the files KEY_PATH, CRT_PATH. RNG is seeded.
 */
static int
pki_ca_generate(struct pki_rng *rng, struct pki_ca *ca, time_t now, const char *key_path,
    const char *crt_path, struct err *e)
{
	struct pki_spec spec;
	unsigned char tag[4];
	unsigned char *pem = NULL;
	size_t pem_len = 0;
	char tag_hex[9], subject[256];
	int rc = -1;

	if (pki_genkey(&ca->key, PKI_KEY_EC, rng, e) != 0) {
		return -1;
	}
	/* A random tag tells two fleets' CAs (or a CA and its successor) apart. */
	if (mbedtls_ctr_drbg_random(&rng->drbg, tag, sizeof(tag)) != 0) {
		return err_set(e, ERR_INTERNAL, "random generator failed");
	}
	hex_encode(tag, sizeof(tag), tag_hex);
	snprintf(subject, sizeof(subject), "O=tandem,CN=tandem CA %s", tag_hex);
	memset(&spec, 0, sizeof(spec));
	spec.subject = subject;
	spec.key = &ca->key;
	spec.not_before = now - PKI_BACKDATE_S;
	spec.not_after = spec.not_before + (time_t)PKI_CA_DAYS * PKI_DAY_S;
	spec.is_ca = 1;
	if (pki_make_cert(&spec, rng, &pem, &pem_len, e) != 0 ||
	    pki_write_pair(&ca->key, pem, pem_len, key_path, crt_path, e) != 0) {
		goto out;
	}
	if (mbedtls_x509_crt_parse(&ca->crt, pem, pem_len + 1) != 0) {
		err_set(e, ERR_FORMAT, "cannot parse the CA certificate just made");
		goto out;
	}
	rc = 0;
out:
	free(pem);
	return rc;
}

int
pki_ca_new(const char *key_path, const char *crt_path, struct err *e)
{
	struct pki_rng rng;
	struct pki_ca ca;
	int rc;

	pki_rng_setup(&rng);
	pki_ca_init(&ca);
	rc = pki_rng_seed(&rng, e) == 0 &&
		pki_ca_generate(&rng, &ca, time(NULL), key_path, crt_path, e) == 0
	    ? 0
	    : -1;
	pki_ca_free(&ca);
	pki_rng_free(&rng);
	return rc;
}

int
pki_init(const char *home, const char *master_cn, struct err *e)
{
	static const char *const rel[4] = { PKI_CA_KEY, PKI_CA_CRT, PKI_MASTER_KEY,
		PKI_MASTER_CRT };
	char paths[4][PATH_MAX];
	char ca_dir[PATH_MAX], master_dir[PATH_MAX];
	char subject[256];
	int created[4] = { 0, 0, 0, 0 };
	struct pki_rng rng;
	struct pki_ca ca;
	mbedtls_pk_context mkey;
	unsigned char *pem = NULL;
	size_t pem_len = 0;
	struct pki_spec spec;
	time_t now = time(NULL);
	int lockfd = -1;
	int rc = -1;

	pki_rng_setup(&rng);
	pki_ca_init(&ca);
	mbedtls_pk_init(&mkey);

	if (master_cn == NULL || *master_cn == '\0') {
		master_cn = TLS_DEFAULT_MASTER_CN;
	}
	if (pki_check_cn(master_cn, e) != 0) {
		goto out;
	}
	if (pki_path(home, PKI_CA_DIR, ca_dir, sizeof(ca_dir)) != 0 ||
	    pki_path(home, PKI_MASTER_DIR, master_dir, sizeof(master_dir)) != 0) {
		err_set(e, ERR_INTERNAL, "home directory path missing or too long");
		goto out;
	}
	for (size_t i = 0; i < 4; i++) {
		if (pki_path(home, rel[i], paths[i], sizeof(paths[i])) != 0) {
			err_set(e, ERR_INTERNAL, "home directory path too long");
			goto out;
		}
	}
	/* Refuse before creating anything. */
	for (size_t i = 0; i < 4; i++) {
		int ex = pki_exists(paths[i]);
		if (ex != 0) {
			err_set(e, ex > 0 ? ERR_CONFLICT : ERR_IO,
			    "%s %s: refusing to overwrite an existing CA", paths[i],
			    ex > 0 ? "already exists" : "cannot be checked");
			goto out;
		}
	}
	if (pki_private_dir(home, 0, e) != 0 ||
	    pki_private_dir(ca_dir, 1, e) != 0 ||
	    pki_private_dir(master_dir, 1, e) != 0) {
		goto out;
	}
	/* Two concurrent inits: the second one waits for no one and fails. */
	lockfd = open(ca_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
		err_sys_kind(e, ERR_BUSY, "%s: cannot lock (another 'pki init' running?)", ca_dir);
		goto out;
	}
	for (size_t i = 0; i < 4; i++) {
		if (pki_exists(paths[i]) != 0) {
			err_set(e, ERR_CONFLICT, "%s appeared meanwhile: refusing to overwrite it",
			    paths[i]);
			goto out;
		}
	}
	if (pki_rng_seed(&rng, e) != 0 || pki_ca_generate(&rng, &ca, now, paths[0], paths[1], e) != 0) {
		goto out;
	}
	created[0] = created[1] = 1;

	if (pki_genkey(&mkey, PKI_KEY_EC, &rng, e) != 0) {
		goto out;
	}
	snprintf(subject, sizeof(subject), "O=tandem,OU=master,CN=%s", master_cn);
	memset(&spec, 0, sizeof(spec));
	spec.subject = subject;
	spec.key = &mkey;
	spec.ca = &ca;
	spec.not_before = now - PKI_BACKDATE_S;
	spec.not_after = spec.not_before + (time_t)PKI_DEFAULT_DAYS * PKI_DAY_S;
	spec.eku = PKI_EKU_CLIENT;
	if (pki_make_cert(&spec, &rng, &pem, &pem_len, e) != 0) {
		goto out;
	}
	if (pki_write_pair(&mkey, pem, pem_len, paths[2], paths[3], e) != 0) {
		goto out;
	}
	pki_note_issued(home, pem, pem_len);
	created[2] = created[3] = 1;
	log_debug("pki: CA and master certificate (CN=%s) created under %s", master_cn, home);
	rc = 0;
out:
	if (rc != 0) {
		for (size_t i = 4; i-- > 0;) {
			if (created[i] && unlink(paths[i]) != 0) {
				log_warn("%s: cannot remove after failure", paths[i]);
			}
		}
	}
	if (lockfd >= 0) {
		close(lockfd);
	}
	free(pem);
	mbedtls_pk_free(&mkey);
	pki_ca_free(&ca);
	pki_rng_free(&rng);
	return rc;
}

/* ---- pki_issue ------------------------------------------------------------ */

void
pki_issue_opts_init(struct pki_issue_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->role = TLS_ROLE_AGENT;
	o->key_type = PKI_KEY_EC;
}

/* Is SAN a usable DNS name or IP literal? */
static int
pki_check_san(const char *san, struct err *e)
{
	unsigned char ip[16];

	if (san != NULL && (inet_pton(AF_INET, san, ip) == 1 || inet_pton(AF_INET6, san, ip) == 1)) {
		return 0;
	}
	return pki_check_dns(san, "subjectAltName", e);
}

int
pki_issue(const char *home, const struct pki_issue_opts *o, struct err *e)
{
	char mcn[PKI_CN_MAX + 1];
	char cn[PKI_HOST_NAME_MAX + 16];
	char subject[PKI_HOST_NAME_MAX + 64];
	const char *sans[PKI_MAX_SANS + 1];
	size_t n_sans = 0;
	int have_name_san = 0;
	struct pki_rng rng;
	struct pki_ca ca;
	mbedtls_pk_context key;
	struct pki_spec spec;
	mbedtls_x509_csr csr;
	unsigned char *pem = NULL;
	size_t pem_len = 0;
	time_t nb, na, ca_na;
	int days;
	int rc = -1;

	pki_rng_setup(&rng);
	pki_ca_init(&ca);
	mbedtls_pk_init(&key);
	mbedtls_x509_csr_init(&csr);

	/* With a CSR the key stays where it was made: no KEY_OUT. */
	if (o == NULL || o->name == NULL || o->cert_out == NULL || *o->cert_out == '\0' ||
	    (o->csr == NULL && (o->key_out == NULL || *o->key_out == '\0'))) {
		err_set(e, ERR_BAD_REQUEST, "name and output paths are required");
		goto out;
	}
	if (o->eku & ~PKI_EKU_BOTH) {
		err_set(e, ERR_BAD_REQUEST, "unknown extended key usage bits 0x%x", o->eku);
		goto out;
	}
	if (o->key_type != PKI_KEY_EC && o->key_type != PKI_KEY_RSA &&
	    o->key_type != PKI_KEY_RSA3072) {
		err_set(e, ERR_INTERNAL, "unknown key type %d", (int)o->key_type);
		goto out;
	}
	days = o->days == 0 ? PKI_DEFAULT_DAYS : o->days;
	if (days < 1 || days > PKI_MAX_DAYS) {
		err_set(e, ERR_BAD_REQUEST, "validity of %d days is outside 1..%d", days, PKI_MAX_DAYS);
		goto out;
	}
	if (o->n_sans > PKI_MAX_SANS || (o->n_sans > 0 && o->sans == NULL)) {
		err_set(e, ERR_BAD_REQUEST, "at most %d subjectAltNames", PKI_MAX_SANS);
		goto out;
	}
	if (o->master_cn != NULL && *o->master_cn != '\0') {
		if (strlcpy_chk(mcn, o->master_cn, sizeof(mcn)) != 0) {
			err_set(e, ERR_BAD_REQUEST, "master CN is longer than %d characters", PKI_CN_MAX);
			goto out;
		}
	} else if (pki_master_cn(home, mcn, sizeof(mcn), e) != 0) {
		goto out;
	}

	switch (o->role) {
	case TLS_ROLE_MASTER:
		if (strcmp(o->name, mcn) != 0) {
			err_set(e, ERR_BAD_REQUEST,
			    "a master certificate must be named after the master CN '%s', not '%.64s'",
			    mcn, o->name);
			goto out;
		}
		snprintf(cn, sizeof(cn), "%s", o->name);
		break;
	case TLS_ROLE_AGENT:
	case TLS_ROLE_UPDATER:
		if (pki_check_host_name(o->name, mcn, e) != 0) {
			goto out;
		}
		snprintf(cn, sizeof(cn), "%s%s", o->role == TLS_ROLE_UPDATER ? "updater@" : "",
		    o->name);
		break;
	case TLS_ROLE_UNKNOWN:
	default:
		err_set(e, ERR_BAD_REQUEST, "role must be master, agent or updater");
		goto out;
	}
	if (strlen(cn) > PKI_CN_MAX) {
		err_set(e, ERR_BAD_REQUEST, "CN '%s' is longer than %d characters (RFC 5280 limit)", cn,
		    PKI_CN_MAX);
		goto out;
	}
	/* What we write must read back as the role we meant. */
	if (tls_role_from_subject(cn, tls_role_name(o->role), mcn) != o->role) {
		err_set(e, ERR_BAD_REQUEST, "CN '%s' would not be recognised as role %s", cn,
		    tls_role_name(o->role));
		goto out;
	}

	for (size_t i = 0; i < o->n_sans; i++) {
		if (pki_check_san(o->sans[i], e) != 0) {
			goto out;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(o->sans[i], o->sans[j]) == 0) {
				err_set(e, ERR_BAD_REQUEST, "subjectAltName '%s' given twice", o->sans[i]);
				goto out;
			}
		}
		if (strcasecmp(o->sans[i], o->name) == 0) {
			have_name_san = 1;
		}
		sans[n_sans++] = o->sans[i];
	}
	if (o->role != TLS_ROLE_MASTER && !have_name_san) {
		if (n_sans == PKI_MAX_SANS) {
			err_set(e, ERR_BAD_REQUEST, "at most %d subjectAltNames (DNS:%s is added)",
			    PKI_MAX_SANS, o->name);
			goto out;
		}
		/* The host's own name first. */
		memmove(sans + 1, sans, n_sans * sizeof(sans[0]));
		sans[0] = o->name;
		n_sans++;
	}

	nb = o->not_before != 0 ? o->not_before : time(NULL) - PKI_BACKDATE_S;
	na = o->not_after != 0 ? o->not_after : nb + (time_t)days * PKI_DAY_S;
	if (na <= nb) {
		err_set(e, ERR_BAD_REQUEST, "not-after must be later than not-before");
		goto out;
	}
	if (!o->force) {
		const char *const outs[2] = { o->cert_out, o->key_out };
		for (size_t i = 0; i < (o->csr != NULL ? 1u : 2u); i++) {
			int ex = pki_exists(outs[i]);
			if (ex != 0) {
				err_set(e, ex > 0 ? ERR_CONFLICT : ERR_IO,
				    "%s %s (use --force to replace it)", outs[i],
				    ex > 0 ? "already exists" : "cannot be checked");
				goto out;
			}
		}
	}
	if (pki_ca_load(&ca, home, e) != 0) {
		goto out;
	}
	{
		struct tls_identity caid;
		if (tls_identity_from_der(ca.crt.raw.p, ca.crt.raw.len, mcn, &caid) != 0) {
			err_set(e, ERR_BAD_REQUEST, "cannot read the CA certificate's validity");
			goto out;
		}
		ca_na = caid.not_after;
	}
	if (na > ca_na) {
		char buf[32];
		iso8601_utc(ca_na, buf, sizeof(buf));
		err_set(e, ERR_BAD_REQUEST, "the certificate would outlive the CA (which expires %s)", buf);
		goto out;
	}
	snprintf(subject, sizeof(subject), "O=tandem,OU=%s,CN=%s", tls_role_name(o->role), cn);

	if (pki_rng_seed(&rng, e) != 0) {
		goto out;
	}
	if (o->csr != NULL) {
		/* Only the CSR's key is used: subject and SANs are ours, decided above. */
		if (pki_csr_load(&csr, o->csr, o->csr_len, e) != 0) {
			goto out;
		}
	} else if (pki_genkey(&key, o->key_type, &rng, e) != 0) {
		goto out;
	}
	memset(&spec, 0, sizeof(spec));
	spec.subject = subject;
	spec.key = o->csr != NULL ? &csr.pk : &key;
	spec.ca = &ca;
	spec.not_before = nb;
	spec.not_after = na;
	spec.eku = o->eku != 0 ? o->eku
			       : (o->role == TLS_ROLE_MASTER ? PKI_EKU_CLIENT : PKI_EKU_BOTH);
	spec.sans = sans;
	spec.n_sans = n_sans;
	if (pki_make_cert(&spec, &rng, &pem, &pem_len, e) != 0) {
		goto out;
	}
	if (o->csr != NULL) {
		if (fs_write_atomic(o->cert_out, pem, pem_len, 0644) != 0) {
			err_sys(e, "%s: cannot write", o->cert_out);
			goto out;
		}
	} else if (pki_write_pair(&key, pem, pem_len, o->key_out, o->cert_out, e) != 0) {
		goto out;
	}
	pki_note_issued(home, pem, pem_len);
	log_debug("pki: issued CN=%s role=%s to %s", cn, tls_role_name(o->role), o->cert_out);
	rc = 0;
out:
	free(pem);
	mbedtls_x509_csr_free(&csr);
	mbedtls_pk_free(&key);
	pki_ca_free(&ca);
	pki_rng_free(&rng);
	return rc;
}

/* ---- reading certificates ---------------------------------------------- */

static int
pki_load_crt(mbedtls_x509_crt *crt, const char *path, struct err *e)
{
	int ret;

	/* Say what is wrong with the file in words, not as an mbedTLS code. */
	if (access(path, R_OK) != 0) {
		return err_sys_kind(e, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "cannot read %s",
		    path);
	}
	ret = mbedtls_x509_crt_parse_file(crt, path);
	if (ret < 0) {
		return err_set(e, ERR_FORMAT, "%s does not hold a PEM or DER certificate", path);
	}
	if (crt->raw.p == NULL) {
		err_set(e, ERR_FORMAT, "%s: no certificate found", path);
		return -1;
	}
	return 0;
}

int
pki_fingerprint_file(const char *path, char out[TLS_FP_HEX_LEN + 1], struct err *e)
{
	mbedtls_x509_crt crt;
	int rc = -1;

	mbedtls_x509_crt_init(&crt);
	if (pki_load_crt(&crt, path, e) == 0) {
		if (digest_buf(crt.raw.p, crt.raw.len, out) == 0) {
			rc = 0;
		} else {
			err_set(e, ERR_INTERNAL, "%s: sha256 failed", path);
		}
	}
	mbedtls_x509_crt_free(&crt);
	return rc;
}

int
pki_master_paths(const char *home, char crt[PATH_MAX], char key[PATH_MAX], struct err *e)
{
	char dir[PATH_MAX], bcrt[PATH_MAX], bkey[PATH_MAX];
	int renewed = 0;

	if (pki_path(home, PKI_MASTER_TLS_DIR, dir, sizeof(dir)) != 0 ||
	    pki_path(home, PKI_MASTER_CRT, bcrt, sizeof(bcrt)) != 0 ||
	    pki_path(home, PKI_MASTER_KEY, bkey, sizeof(bkey)) != 0) {
		return err_set(e, ERR_CONFIG, "home directory path missing or too long");
	}
	return trust_identity_paths(dir, bcrt, bkey, crt, key, &renewed, e);
}

int
pki_master_trust(const char *home, char out[PATH_MAX], struct err *e)
{
	char b[PATH_MAX];
	int ex;

	if (pki_path(home, PKI_CA_BUNDLE, b, sizeof(b)) != 0 ||
	    pki_path(home, PKI_CA_CRT, out, PATH_MAX) != 0) {
		return err_set(e, ERR_CONFIG, "home directory path missing or too long");
	}
	ex = pki_exists(b);
	if (ex < 0) {
		return err_sys(e, "%s", b);
	}
	if (ex > 0) {
		memcpy(out, b, strlen(b) + 1);
	}
	return 0;
}

int
pki_master_cn(const char *home, char *out, size_t outlen, struct err *e)
{
	char path[PATH_MAX];
	struct tls_identity id;
	int ex;

	if (pki_path(home, PKI_MASTER_CRT, path, sizeof(path)) != 0) {
		return err_set(e, ERR_INTERNAL, "home directory path missing or too long");
	}
	ex = pki_exists(path);
	if (ex < 0) {
		return err_sys(e, "%s", path);
	}
	if (ex == 0) {
		if (strlcpy_chk(out, TLS_DEFAULT_MASTER_CN, outlen) != 0) {
			return err_set(e, ERR_INTERNAL, "buffer too small for the master CN");
		}
		return 0;
	}
	if (tls_identity_from_file(path, NULL, &id, e) != 0) {
		return -1;
	}
	if (pki_check_cn(id.cn, e) != 0) {
		/* A bad name in a file we read is a format error, not a bad request. */
		if (e != NULL) {
			e->kind = ERR_FORMAT;
		}
		return err_prefix(e, "%s: unusable master CN", path);
	}
	if (strlcpy_chk(out, id.cn, outlen) != 0) {
		return err_set(e, ERR_INTERNAL, "buffer too small for the master CN");
	}
	return 0;
}

/* "EC secp256r1" / "RSA 2048" */
static void
pki_key_desc(const mbedtls_pk_context *pk, char *buf, size_t len)
{
	mbedtls_pk_type_t t = mbedtls_pk_get_type(pk);

	if (t == MBEDTLS_PK_ECKEY || t == MBEDTLS_PK_ECDSA) {
		const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(*pk);
		const mbedtls_ecp_curve_info *ci =
		    ec != NULL ? mbedtls_ecp_curve_info_from_grp_id(ec->grp.id) : NULL;
		snprintf(buf, len, "EC %s", ci != NULL ? ci->name : "unknown-curve");
	} else {
		snprintf(buf, len, "%s %zu", mbedtls_pk_get_name(pk), mbedtls_pk_get_bitlen(pk));
	}
}

static int
pki_describe_lists(const mbedtls_x509_crt *crt, cJSON *o)
{
	cJSON *san = json_add_array(o, "san");
	cJSON *eku = json_add_array(o, "eku");

	if (san == NULL || eku == NULL) {
		return -1;
	}
	for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s != NULL; s = s->next) {
		char buf[PKI_HOST_NAME_MAX + 16];
		int tag = s->buf.tag;

		if (s->buf.p == NULL) {
			continue;
		}
		if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)) {
			snprintf(buf, sizeof(buf), "DNS:%.*s", (int)(s->buf.len > 253 ? 253 : s->buf.len),
			    (const char *)s->buf.p);
			for (char *c = buf; *c != '\0'; c++) {
				if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) {
					*c = '?';
				}
			}
		} else if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) &&
		    (s->buf.len == 4 || s->buf.len == 16)) {
			char ip[INET6_ADDRSTRLEN];
			if (inet_ntop(s->buf.len == 4 ? AF_INET : AF_INET6, s->buf.p, ip,
				sizeof(ip)) == NULL) {
				return -1;
			}
			snprintf(buf, sizeof(buf), "IP:%s", ip);
		} else {
			snprintf(buf, sizeof(buf), "other:0x%02x", (unsigned)tag);
		}
		if (json_array_add_str(san, buf) != 0) {
			return -1;
		}
	}
	for (const mbedtls_x509_sequence *s = &crt->ext_key_usage; s != NULL; s = s->next) {
		char buf[64];

		if (s->buf.p == NULL) {
			continue;
		}
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_SERVER_AUTH, &s->buf) == 0) {
			snprintf(buf, sizeof(buf), "serverAuth");
		} else if (MBEDTLS_OID_CMP(MBEDTLS_OID_CLIENT_AUTH, &s->buf) == 0) {
			snprintf(buf, sizeof(buf), "clientAuth");
		} else if (mbedtls_oid_get_numeric_string(buf, sizeof(buf), &s->buf) < 0) {
			snprintf(buf, sizeof(buf), "unknown");
		}
		if (json_array_add_str(eku, buf) != 0) {
			return -1;
		}
	}
	return 0;
}

int
pki_describe(const char *path, const char *master_cn, cJSON **out, struct err *e)
{
	mbedtls_x509_crt crt;
	struct tls_identity id;
	cJSON *o = NULL;
	char buf[512];
	char serial[2 * 20 + 1];
	const unsigned char *sp;
	size_t sl;
	time_t now = time(NULL);
	char nb[32], na[32];
	int rc = -1;

	mbedtls_x509_crt_init(&crt);
	if (pki_load_crt(&crt, path, e) != 0) {
		goto out;
	}
	if (tls_identity_from_der(crt.raw.p, crt.raw.len, master_cn, &id) != 0) {
		err_set(e, ERR_FORMAT, "%s: certificate subject is malformed", path);
		goto out;
	}
	o = cJSON_CreateObject();
	if (o == NULL) {
		goto nomem;
	}
	if (mbedtls_x509_dn_gets(buf, sizeof(buf), &crt.subject) < 0) {
		snprintf(buf, sizeof(buf), "?");
	}
	if (json_add_str(o, "subject", buf) != 0) {
		goto nomem;
	}
	if (mbedtls_x509_dn_gets(buf, sizeof(buf), &crt.issuer) < 0) {
		snprintf(buf, sizeof(buf), "?");
	}
	/* A CA certificate is nobody's TLS identity, whatever its CN reads as. */
	if (json_add_str(o, "issuer", buf) != 0 || json_add_str(o, "cn", id.cn) != 0 ||
	    json_add_str(o, "ou", id.ou) != 0 ||
	    json_add_str(o, "role", crt.ca_istrue ? "ca" : tls_role_name(id.role)) != 0 ||
	    json_add_str(o, "host", crt.ca_istrue ? "" : id.host) != 0) {
		goto nomem;
	}
	/* Serial as hex without the sign-padding zero byte. */
	sp = crt.serial.p;
	sl = crt.serial.len;
	while (sl > 1 && sp[0] == 0) {
		sp++;
		sl--;
	}
	if (sl > 20) {
		sl = 20;
	}
	hex_encode(sp, sl, serial);
	iso8601_utc(id.not_before, nb, sizeof(nb));
	iso8601_utc(id.not_after, na, sizeof(na));
	if (json_add_str(o, "serial", serial) != 0 || json_add_str(o, "not_before", nb) != 0 ||
	    json_add_str(o, "not_after", na) != 0 ||
	    json_add_str(o, "status", now < id.not_before ? "not yet valid"
				      : now > id.not_after ? "expired"
							   : "valid") != 0) {
		goto nomem;
	}
	if (pki_describe_lists(&crt, o) != 0) {
		goto nomem;
	}
	pki_key_desc(&crt.pk, buf, sizeof(buf));
	if (json_add_str(o, "key", buf) != 0 || json_add_bool(o, "ca", crt.ca_istrue) != 0 ||
	    json_add_str(o, "fingerprint", id.fingerprint) != 0) {
		goto nomem;
	}
	*out = o;
	o = NULL;
	rc = 0;
	goto out;
nomem:
	err_set(e, ERR_NOMEM, "out of memory");
out:
	cJSON_Delete(o);
	mbedtls_x509_crt_free(&crt);
	return rc;
}

static void
pki_print_list(FILE *out, const char *key, const cJSON *arr)
{
	const cJSON *it;
	int first = 1;

	fprintf(out, "%s: ", key);
	cJSON_ArrayForEach(it, arr)
	{
		fprintf(out, "%s%s", first ? "" : ", ", cJSON_GetStringValue(it));
		first = 0;
	}
	fputc('\n', out);
}

int
pki_show(const char *path, FILE *out, const char *master_cn, int json, struct err *e)
{
	static const char *const order[] = { "subject", "issuer", "cn", "ou", "role", "host",
		"serial", "not_before", "not_after", "status", "san", "eku", "key", "ca",
		"fingerprint" };
	cJSON *o = NULL;
	char *text = NULL;
	int rc = -1;

	if (pki_describe(path, master_cn, &o, e) != 0) {
		return -1;
	}
	if (json) {
		text = json_print_compact(o);
		if (text == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
		fprintf(out, "%s\n", text);
	} else {
		for (size_t i = 0; i < ARRAY_LEN(order); i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, order[i]);
			if (cJSON_IsArray(v)) {
				pki_print_list(out, order[i], v);
			} else if (cJSON_IsBool(v)) {
				fprintf(out, "%s: %s\n", order[i], cJSON_IsTrue(v) ? "yes" : "no");
			} else if (cJSON_IsString(v)) {
				fprintf(out, "%s: %s\n", order[i], v->valuestring);
			}
		}
	}
	if (fflush(out) != 0 || ferror(out)) {
		err_sys(e, "writing the description failed");
		goto out;
	}
	rc = 0;
out:
	free(text);
	cJSON_Delete(o);
	return rc;
}
