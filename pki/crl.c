/*
 * crl — X.509 v2 CRLs: written with mbedTLS's ASN.1 writer (2.28 has no CRL
 * writer), read with mbedtls_x509_crl_parse() plus our own signature check
 * and extension walk (2.28 parses neither cRLNumber nor reasonCode).
 *
 * The ASN.1 writer works backwards from the end of a buffer, so every
 * structure below is written last field first.
 */
#include "pki/crl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "pki/pki.h"
#include "pki/pki_int.h"

#define CRL_OID_REASON_CODE MBEDTLS_OID_ID_CE "\x15" /* id-ce-cRLReasons { id-ce 21 } */
/* Per entry: serial (<= 23), time (<= 17), reason extension (~18), headers. */
#define CRL_ENTRY_MAX_DER 80u
#define CRL_FIXED_MAX_DER 2048u

static const char *const crl_reason_names[] = {
	"unspecified",
	"key-compromise",
	"ca-compromise",
	"affiliation-changed",
	"superseded",
	"cessation-of-operation",
};

const char *
crl_reason_name(int reason)
{
	if (reason < 0 || (size_t)reason >= ARRAY_LEN(crl_reason_names)) {
		return "none";
	}
	return crl_reason_names[reason];
}

int
crl_reason_parse(const char *s, int *out)
{
	if (s == NULL) {
		return -1;
	}
	if (strcmp(s, "none") == 0) {
		*out = CRL_REASON_NONE;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_LEN(crl_reason_names); i++) {
		if (strcmp(s, crl_reason_names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return -1;
}

static int
crl_hexval(int c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	c = tolower(c);
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	return -1;
}

/* Canonical hex of the big-endian bytes B[0..LEN). */
static int
crl_serial_from_bytes(const unsigned char *b, size_t len, char out[CRL_SERIAL_HEX_MAX + 1])
{
	while (len > 1 && b[0] == 0) {
		b++;
		len--;
	}
	/* Empty, zero or over-long: no serial we issue or accept. */
	if (len == 0 || len > CRL_SERIAL_MAX_BYTES || (len == 1 && b[0] == 0)) {
		return -1;
	}
	hex_encode(b, len, out);
	return 0;
}

int
crl_serial_canon(const char *in, char out[CRL_SERIAL_HEX_MAX + 1])
{
	unsigned char b[CRL_SERIAL_MAX_BYTES + 1];
	char digits[2 * (CRL_SERIAL_MAX_BYTES + 1) + 1];
	size_t nd = 0;
	size_t nb;

	if (in == NULL) {
		return -1;
	}
	if (in[0] == '0' && (in[1] == 'x' || in[1] == 'X')) {
		in += 2;
	}
	for (const char *p = in; *p != '\0'; p++) {
		if (*p == ':') {
			continue;
		}
		if (crl_hexval((unsigned char)*p) < 0) {
			return -1;
		}
		/* Leading zero digits carry no value; skip them before counting. */
		if (nd == 0 && *p == '0') {
			continue;
		}
		if (nd >= sizeof(digits) - 1) {
			return -1;
		}
		digits[nd++] = *p;
	}
	if (nd == 0) {
		/* All zeros (or empty): a serial of 0 is not one we accept. */
		return -1;
	}
	/* An odd digit count has an implicit leading 0. */
	memset(b, 0, sizeof(b));
	nb = (nd + 1) / 2;
	if (nb > CRL_SERIAL_MAX_BYTES) {
		return -1;
	}
	for (size_t i = 0; i < nd; i++) {
		size_t pos = i + (nd & 1); /* position in the padded digit string */
		int v = crl_hexval((unsigned char)digits[i]);
		if (pos % 2 == 0) {
			b[pos / 2] = (unsigned char)(v << 4);
		} else {
			b[pos / 2] = (unsigned char)(b[pos / 2] | v);
		}
	}
	return crl_serial_from_bytes(b, nb, out);
}

/* Hex digits of a canonical serial back to bytes; returns the length. */
static size_t
crl_serial_bytes(const char *hex, unsigned char *b)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++) {
		b[i] = (unsigned char)(crl_hexval((unsigned char)hex[2 * i]) << 4 |
		    crl_hexval((unsigned char)hex[2 * i + 1]));
	}
	return n;
}

/* Numeric order of canonical serials: shorter is smaller, then by digits. */
static int
crl_serial_cmp(const void *a, const void *b)
{
	const struct crl_entry *x = a;
	const struct crl_entry *y = b;
	size_t lx = strlen(x->serial);
	size_t ly = strlen(y->serial);

	if (lx != ly) {
		return lx < ly ? -1 : 1;
	}
	return strcmp(x->serial, y->serial);
}

/* ---- writing ------------------------------------------------------------ */

/* A positive INTEGER from big-endian bytes (a 0x00 goes in front of a high bit). */
static int
crl_write_uint(unsigned char **p, unsigned char *start, const unsigned char *b, size_t len)
{
	size_t total = 0;
	int ret;

	while (len > 1 && b[0] == 0) {
		b++;
		len--;
	}
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_raw_buffer(p, start, b, len));
	if (b[0] & 0x80) {
		if (*p - start < 1) {
			return MBEDTLS_ERR_ASN1_BUF_TOO_SMALL;
		}
		*--(*p) = 0;
		total++;
	}
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_len(p, start, total));
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_INTEGER));
	return (int)total;
}

/* UTCTime for 1950..2049, GeneralizedTime otherwise (RFC 5280 5.1.2.4). */
static int
crl_write_time(unsigned char **p, unsigned char *start, time_t t)
{
	struct tm tm;
	char buf[20];
	size_t total = 0;
	int year;
	int ret;
	unsigned char tag;
	size_t skip;
	size_t n;

	if (gmtime_r(&t, &tm) == NULL) {
		return MBEDTLS_ERR_ASN1_INVALID_DATA;
	}
	year = tm.tm_year + 1900;
	if (year < 1950 || year > 9999) {
		return MBEDTLS_ERR_ASN1_INVALID_DATA;
	}
	n = strftime(buf, sizeof(buf), "%Y%m%d%H%M%SZ", &tm);
	if (n != 15) {
		return MBEDTLS_ERR_ASN1_INVALID_DATA;
	}
	/* UTCTime is GeneralizedTime without the century. */
	tag = year < 2050 ? MBEDTLS_ASN1_UTC_TIME : MBEDTLS_ASN1_GENERALIZED_TIME;
	skip = year < 2050 ? 2 : 0;
	MBEDTLS_ASN1_CHK_ADD(total,
	    mbedtls_asn1_write_raw_buffer(p, start, (const unsigned char *)buf + skip, n - skip));
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_len(p, start, total));
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_tag(p, start, tag));
	return (int)total;
}

/* Extension ::= SEQUENCE { extnID OID, extnValue OCTET STRING (VALUE) }, VALUE already written. */
static int
crl_wrap_ext(unsigned char **p, unsigned char *start, const char *oid, size_t oid_len,
    size_t value_len)
{
	size_t total = value_len;
	int ret;

	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_len(p, start, value_len));
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_OCTET_STRING));
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_oid(p, start, oid, oid_len));
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_len(p, start, total));
	MBEDTLS_ASN1_CHK_ADD(total,
	    mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	return (int)(total - value_len);
}

static int
crl_write_seq_header(unsigned char **p, unsigned char *start, size_t len)
{
	size_t total = 0;
	int ret;

	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_len(p, start, len));
	MBEDTLS_ASN1_CHK_ADD(total,
	    mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
	return (int)total;
}

/* revokedCertificates entry: SEQUENCE { serial, revocationDate, [extensions] }. */
static int
crl_write_entry(unsigned char **p, unsigned char *start, const struct crl_entry *en)
{
	unsigned char sb[CRL_SERIAL_MAX_BYTES];
	size_t total = 0;
	size_t sl;
	int ret;

	if (en->reason >= 0) {
		size_t ext = 0;
		MBEDTLS_ASN1_CHK_ADD(ext, mbedtls_asn1_write_enum(p, start, en->reason));
		MBEDTLS_ASN1_CHK_ADD(ext, crl_wrap_ext(p, start, CRL_OID_REASON_CODE,
					      MBEDTLS_OID_SIZE(CRL_OID_REASON_CODE), ext));
		MBEDTLS_ASN1_CHK_ADD(ext, crl_write_seq_header(p, start, ext));
		total += ext;
	}
	MBEDTLS_ASN1_CHK_ADD(total, crl_write_time(p, start, en->revoked_at));
	sl = crl_serial_bytes(en->serial, sb);
	MBEDTLS_ASN1_CHK_ADD(total, crl_write_uint(p, start, sb, sl));
	MBEDTLS_ASN1_CHK_ADD(total, crl_write_seq_header(p, start, total));
	return (int)total;
}

/* crlExtensions [0] EXPLICIT: authorityKeyIdentifier, cRLNumber. */
static int
crl_write_crl_exts(unsigned char **p, unsigned char *start, const struct pki_ca *ca,
    unsigned long long number)
{
	unsigned char nb[8];
	const unsigned char *ski;
	size_t ski_len;
	size_t total = 0;
	size_t v;
	int ret;

	for (size_t i = 0; i < sizeof(nb); i++) {
		nb[i] = (unsigned char)(number >> (8 * (sizeof(nb) - 1 - i)));
	}
	v = 0;
	MBEDTLS_ASN1_CHK_ADD(v, crl_write_uint(p, start, nb, sizeof(nb)));
	MBEDTLS_ASN1_CHK_ADD(v,
	    crl_wrap_ext(p, start, MBEDTLS_OID_CRL_NUMBER, MBEDTLS_OID_SIZE(MBEDTLS_OID_CRL_NUMBER),
		v));
	total += v;
	if (pki_find_ski(&ca->crt, &ski, &ski_len) == 0) {
		v = 0;
		MBEDTLS_ASN1_CHK_ADD(v, mbedtls_asn1_write_raw_buffer(p, start, ski, ski_len));
		MBEDTLS_ASN1_CHK_ADD(v, mbedtls_asn1_write_len(p, start, v));
		MBEDTLS_ASN1_CHK_ADD(v,
		    mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0));
		MBEDTLS_ASN1_CHK_ADD(v, crl_write_seq_header(p, start, v));
		MBEDTLS_ASN1_CHK_ADD(v, crl_wrap_ext(p, start, MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER,
					    MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER), v));
		total += v;
	}
	MBEDTLS_ASN1_CHK_ADD(total, crl_write_seq_header(p, start, total));
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_len(p, start, total));
	MBEDTLS_ASN1_CHK_ADD(total,
	    mbedtls_asn1_write_tag(p, start,
		MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0));
	return (int)total;
}

/* AlgorithmIdentifier: ECDSA without parameters (RFC 5758), RSA with NULL. */
static int
crl_write_sig_alg(unsigned char **p, unsigned char *start, mbedtls_pk_type_t pk)
{
	const char *oid;
	size_t oid_len;
	size_t total = 0;
	int ret;

	ret = mbedtls_oid_get_oid_by_sig_alg(pk, MBEDTLS_MD_SHA256, &oid, &oid_len);
	if (ret != 0) {
		return ret;
	}
	if (pk == MBEDTLS_PK_RSA) {
		MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_null(p, start));
	}
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_oid(p, start, oid, oid_len));
	MBEDTLS_ASN1_CHK_ADD(total, crl_write_seq_header(p, start, total));
	return (int)total;
}

static int
crl_write_tbs(unsigned char **p, unsigned char *start, const struct pki_ca *ca,
    mbedtls_pk_type_t pk, unsigned long long number, time_t this_update, time_t next_update,
    const struct crl_entry *sorted, size_t n)
{
	size_t total = 0;
	int ret;

	MBEDTLS_ASN1_CHK_ADD(total, crl_write_crl_exts(p, start, ca, number));
	if (n > 0) {
		size_t list = 0;
		for (size_t i = n; i-- > 0;) {
			MBEDTLS_ASN1_CHK_ADD(list, crl_write_entry(p, start, &sorted[i]));
		}
		MBEDTLS_ASN1_CHK_ADD(list, crl_write_seq_header(p, start, list));
		total += list;
	}
	MBEDTLS_ASN1_CHK_ADD(total, crl_write_time(p, start, next_update));
	MBEDTLS_ASN1_CHK_ADD(total, crl_write_time(p, start, this_update));
	/* The issuer, byte for byte the CA's subject (tag and length included). */
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_raw_buffer(p, start,
				     ca->crt.subject_raw.p, ca->crt.subject_raw.len));
	MBEDTLS_ASN1_CHK_ADD(total, crl_write_sig_alg(p, start, pk));
	MBEDTLS_ASN1_CHK_ADD(total, mbedtls_asn1_write_int(p, start, 1)); /* v2 */
	MBEDTLS_ASN1_CHK_ADD(total, crl_write_seq_header(p, start, total));
	return (int)total;
}

static int
crl_mbed_err(struct err *e, enum err_kind kind, const char *what, int ret)
{
	char buf[160];

	mbedtls_strerror(ret, buf, sizeof(buf));
	return err_set(e, kind, "%s: %s (-0x%04x)", what, buf, (unsigned)-ret);
}

int
crl_build(const char *home, unsigned long long number, time_t this_update,
    time_t next_update, const struct crl_entry *ent, size_t n, unsigned char **der,
    size_t *der_len, struct err *e)
{
	struct pki_ca ca;
	struct pki_rng rng;
	struct crl_entry *sorted = NULL;
	unsigned char *tbs_buf = NULL;
	unsigned char *out_buf = NULL;
	unsigned char hash[32];
	unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
	size_t sig_len = 0;
	size_t cap, tbs_len, total;
	unsigned char *p;
	unsigned char *tbs;
	mbedtls_pk_type_t pk;
	int ret;
	int rc = -1;

	pki_ca_init(&ca);
	pki_rng_setup(&rng);
	if (number == 0) {
		err_set(e, ERR_BAD_REQUEST, "a CRL number starts at 1");
		goto out;
	}
	if (next_update <= this_update) {
		err_set(e, ERR_BAD_REQUEST, "nextUpdate must be later than thisUpdate");
		goto out;
	}
	if (n > CRL_MAX_ENTRIES) {
		err_set(e, ERR_LIMIT, "%zu revoked certificates: at most %u in one CRL", n,
		    CRL_MAX_ENTRIES);
		goto out;
	}
	if (n > 0) {
		sorted = calloc(n, sizeof(*sorted));
		if (sorted == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (crl_serial_canon(ent[i].serial, sorted[i].serial) != 0) {
			err_set(e, ERR_BAD_REQUEST, "'%.48s' is not a certificate serial",
			    ent[i].serial);
			goto out;
		}
		if (ent[i].reason < CRL_REASON_NONE ||
		    ent[i].reason >= (int)ARRAY_LEN(crl_reason_names)) {
			err_set(e, ERR_BAD_REQUEST, "unknown revocation reason %d", ent[i].reason);
			goto out;
		}
		sorted[i].revoked_at = ent[i].revoked_at;
		sorted[i].reason = ent[i].reason;
	}
	if (n > 1) {
		qsort(sorted, n, sizeof(*sorted), crl_serial_cmp);
		for (size_t i = 1; i < n; i++) {
			if (crl_serial_cmp(&sorted[i - 1], &sorted[i]) == 0) {
				err_set(e, ERR_BAD_REQUEST, "serial %s is listed twice",
				    sorted[i].serial);
				goto out;
			}
		}
	}
	if (pki_ca_load(&ca, home, e) != 0 || pki_rng_seed(&rng, e) != 0) {
		goto out;
	}
	pk = mbedtls_pk_can_do(&ca.key, MBEDTLS_PK_ECDSA) ? MBEDTLS_PK_ECDSA : MBEDTLS_PK_RSA;

	cap = CRL_FIXED_MAX_DER + ca.crt.subject_raw.len + n * CRL_ENTRY_MAX_DER;
	tbs_buf = malloc(cap);
	out_buf = malloc(cap + CRL_FIXED_MAX_DER);
	if (tbs_buf == NULL || out_buf == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	p = tbs_buf + cap;
	ret = crl_write_tbs(&p, tbs_buf, &ca, pk, number, this_update, next_update, sorted, n);
	if (ret < 0) {
		crl_mbed_err(e, ERR_INTERNAL, "encoding the CRL", ret);
		goto out;
	}
	tbs = p;
	tbs_len = (size_t)ret;
	if (mbedtls_sha256_ret(tbs, tbs_len, hash, 0) != 0) {
		err_set(e, ERR_INTERNAL, "hashing the CRL failed");
		goto out;
	}
	ret = mbedtls_pk_sign(&ca.key, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &sig_len,
	    mbedtls_ctr_drbg_random, &rng.drbg);
	if (ret != 0) {
		crl_mbed_err(e, ERR_INTERNAL, "signing the CRL", ret);
		goto out;
	}
	/* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue } */
	p = out_buf + cap + CRL_FIXED_MAX_DER;
	total = 0;
	ret = mbedtls_asn1_write_bitstring(&p, out_buf, sig, sig_len * 8);
	if (ret >= 0) {
		total += (size_t)ret;
		ret = crl_write_sig_alg(&p, out_buf, pk);
	}
	if (ret >= 0) {
		total += (size_t)ret;
		ret = mbedtls_asn1_write_raw_buffer(&p, out_buf, tbs, tbs_len);
	}
	if (ret >= 0) {
		total += (size_t)ret;
		ret = crl_write_seq_header(&p, out_buf, total);
	}
	if (ret < 0) {
		crl_mbed_err(e, ERR_INTERNAL, "encoding the CRL", ret);
		goto out;
	}
	total += (size_t)ret;
	memmove(out_buf, p, total);
	*der = out_buf;
	*der_len = total;
	out_buf = NULL;
	rc = 0;
out:
	free(out_buf);
	free(tbs_buf);
	free(sorted);
	pki_rng_free(&rng);
	pki_ca_free(&ca);
	return rc;
}

int
crl_to_pem(const unsigned char *der, size_t der_len, char **pem, struct err *e)
{
	size_t cap = der_len * 4 / 3 + der_len / 32 + 128;
	size_t olen = 0;
	unsigned char *buf = malloc(cap);
	int ret;

	if (buf == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	ret = mbedtls_pem_write_buffer("-----BEGIN X509 CRL-----\n", "-----END X509 CRL-----\n",
	    der, der_len, buf, cap, &olen);
	if (ret != 0) {
		free(buf);
		return crl_mbed_err(e, ERR_INTERNAL, "PEM-encoding the CRL", ret);
	}
	*pem = (char *)buf;
	return 0;
}

/* ---- reading ------------------------------------------------------------ */

static time_t
crl_time(const mbedtls_x509_time *t)
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

/*
 * In the Extensions SEQUENCE starting at P (bounded by END), find OID and
 * point *VAL and *VLEN at its extnValue contents. 0 found, 1 absent, -1 malformed.
 */
static int
crl_find_ext(unsigned char *p, const unsigned char *end, const char *oid, size_t oid_len,
    unsigned char **val, size_t *vlen)
{
	size_t len;

	if (p == NULL || p >= end) {
		return 1;
	}
	if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
	    0) {
		return -1;
	}
	end = p + len;
	while (p < end) {
		unsigned char *ext_end;
		size_t olen;
		int crit;
		int ret;

		if (mbedtls_asn1_get_tag(&p, end, &len,
			MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) {
			return -1;
		}
		ext_end = p + len;
		if (mbedtls_asn1_get_tag(&p, ext_end, &olen, MBEDTLS_ASN1_OID) != 0) {
			return -1;
		}
		if (olen != oid_len || memcmp(p, oid, oid_len) != 0) {
			p = ext_end;
			continue;
		}
		p += olen;
		ret = mbedtls_asn1_get_bool(&p, ext_end, &crit);
		if (ret != 0 && ret != MBEDTLS_ERR_ASN1_UNEXPECTED_TAG) {
			return -1;
		}
		if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0 ||
		    p + len != ext_end) {
			return -1;
		}
		*val = p;
		*vlen = len;
		return 0;
	}
	return 1;
}

static int
crl_read_number(const mbedtls_x509_crl *crl, unsigned long long *out)
{
	unsigned char *v;
	size_t vlen;
	size_t len;
	unsigned long long n = 0;
	int r;

	*out = 0;
	if (crl->crl_ext.p == NULL || crl->crl_ext.len == 0) {
		return 0;
	}
	r = crl_find_ext(crl->crl_ext.p, crl->crl_ext.p + crl->crl_ext.len, MBEDTLS_OID_CRL_NUMBER,
	    MBEDTLS_OID_SIZE(MBEDTLS_OID_CRL_NUMBER), &v, &vlen);
	if (r != 0) {
		return r < 0 ? -1 : 0;
	}
	if (mbedtls_asn1_get_tag(&v, v + vlen, &len, MBEDTLS_ASN1_INTEGER) != 0 || len == 0 ||
	    (v[0] & 0x80) != 0) {
		return -1;
	}
	while (len > 0 && v[0] == 0) {
		v++;
		len--;
	}
	if (len > sizeof(n)) {
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		n = n << 8 | v[i];
	}
	*out = n;
	return 0;
}

static int
crl_read_reason(const mbedtls_x509_crl_entry *en)
{
	unsigned char *v;
	size_t vlen;
	int reason;

	if (en->entry_ext.p == NULL || en->entry_ext.len == 0) {
		return CRL_REASON_NONE;
	}
	if (crl_find_ext(en->entry_ext.p, en->raw.p + en->raw.len, CRL_OID_REASON_CODE,
		MBEDTLS_OID_SIZE(CRL_OID_REASON_CODE), &v, &vlen) != 0) {
		return CRL_REASON_NONE;
	}
	if (mbedtls_asn1_get_enum(&v, v + vlen, &reason) != 0 || reason < 0 ||
	    reason >= (int)ARRAY_LEN(crl_reason_names)) {
		/* Reasons we do not name still revoke: the serial is what counts. */
		return CRL_REASON_UNSPECIFIED;
	}
	return reason;
}

/* Parse into CRL: DER as is, PEM through a NUL-terminated copy. */
static int
crl_parse_mbed(mbedtls_x509_crl *crl, const unsigned char *buf, size_t len, struct err *e)
{
	static const char pem_tag[] = "-----BEGIN X509 CRL-----";
	int ret;

	if (buf == NULL || len == 0) {
		return err_set(e, ERR_FORMAT, "empty CRL");
	}
	if (len > CRL_MAX_BYTES) {
		return err_set(e, ERR_TOO_LARGE, "CRL of %zu bytes: at most %u", len, CRL_MAX_BYTES);
	}
	if (len >= sizeof(pem_tag) - 1 && memmem(buf, len, pem_tag, sizeof(pem_tag) - 1) != NULL) {
		unsigned char *z = malloc(len + 1);
		if (z == NULL) {
			return err_set(e, ERR_NOMEM, "out of memory");
		}
		memcpy(z, buf, len);
		z[len] = '\0';
		ret = mbedtls_x509_crl_parse(crl, z, len + 1);
		free(z);
	} else {
		ret = mbedtls_x509_crl_parse_der(crl, buf, len);
	}
	if (ret != 0) {
		return crl_mbed_err(e, ERR_FORMAT, "not a CRL", ret);
	}
	if (crl->next != NULL) {
		return err_set(e, ERR_FORMAT, "more than one CRL in the input");
	}
	return 0;
}

/* Fill CI from the parsed CRL. */
static int
crl_fill(const mbedtls_x509_crl *crl, struct crl_info *ci, struct err *e)
{
	size_t n = 0;
	size_t i = 0;

	memset(ci, 0, sizeof(*ci));
	if (crl->version != 2) {
		return err_set(e, ERR_FORMAT, "CRL version %d: only v2 is accepted", crl->version);
	}
	if (crl_read_number(crl, &ci->number) != 0) {
		return err_set(e, ERR_FORMAT, "malformed cRLNumber extension");
	}
	ci->this_update = crl_time(&crl->this_update);
	ci->next_update = crl->next_update.year == 0 ? 0 : crl_time(&crl->next_update);
	if (mbedtls_x509_dn_gets(ci->issuer, sizeof(ci->issuer), &crl->issuer) < 0) {
		snprintf(ci->issuer, sizeof(ci->issuer), "?");
	}
	{
		unsigned char md[32];
		if (mbedtls_sha256_ret(crl->raw.p, crl->raw.len, md, 0) != 0) {
			return err_set(e, ERR_INTERNAL, "hashing the CRL failed");
		}
		hex_encode(md, sizeof(md), ci->fingerprint);
	}
	for (const mbedtls_x509_crl_entry *en = &crl->entry; en != NULL; en = en->next) {
		if (en->serial.len > 0) {
			n++;
		}
	}
	if (n > CRL_MAX_ENTRIES) {
		return err_set(e, ERR_LIMIT, "CRL lists %zu certificates: at most %u", n,
		    CRL_MAX_ENTRIES);
	}
	if (n == 0) {
		return 0;
	}
	ci->entries = calloc(n, sizeof(*ci->entries));
	if (ci->entries == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	for (const mbedtls_x509_crl_entry *en = &crl->entry; en != NULL; en = en->next) {
		struct crl_entry *out;

		if (en->serial.len == 0) {
			continue;
		}
		out = &ci->entries[i++];
		if (crl_serial_from_bytes(en->serial.p, en->serial.len, out->serial) != 0) {
			crl_info_free(ci);
			return err_set(e, ERR_FORMAT, "CRL entry with an unusable serial (%zu bytes)",
			    en->serial.len);
		}
		out->revoked_at = crl_time(&en->revocation_date);
		out->reason = crl_read_reason(en);
	}
	ci->n_entries = n;
	qsort(ci->entries, n, sizeof(*ci->entries), crl_serial_cmp);
	return 0;
}

int
crl_parse(const unsigned char *buf, size_t len, struct crl_info *out, struct err *e)
{
	mbedtls_x509_crl crl;
	int rc;

	memset(out, 0, sizeof(*out));
	mbedtls_x509_crl_init(&crl);
	rc = crl_parse_mbed(&crl, buf, len, e);
	if (rc == 0) {
		rc = crl_fill(&crl, out, e);
	}
	mbedtls_x509_crl_free(&crl);
	return rc;
}

/* 0 when CA issued CRL and its signature verifies. */
static int
crl_signed_by(const mbedtls_x509_crl *crl, mbedtls_x509_crt *ca)
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(crl->sig_md);
	unsigned char hash[MBEDTLS_MD_MAX_SIZE];

	if (!ca->ca_istrue || ca->subject_raw.len != crl->issuer_raw.len ||
	    memcmp(ca->subject_raw.p, crl->issuer_raw.p, crl->issuer_raw.len) != 0) {
		return -1;
	}
	if (mbedtls_x509_crt_check_key_usage(ca, MBEDTLS_X509_KU_CRL_SIGN) != 0) {
		return -1;
	}
	if (md == NULL || mbedtls_md(md, crl->tbs.p, crl->tbs.len, hash) != 0) {
		return -1;
	}
	if (mbedtls_pk_verify_ext(crl->sig_pk, crl->sig_opts, &ca->pk, crl->sig_md, hash,
		mbedtls_md_get_size(md), crl->sig.p, crl->sig.len) != 0) {
		return -1;
	}
	return 0;
}

int
crl_verify(const unsigned char *buf, size_t len, const char *ca_file, struct crl_info *out,
    struct err *e)
{
	mbedtls_x509_crl crl;
	mbedtls_x509_crt cas;
	int ok = 0;
	int ret;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	mbedtls_x509_crl_init(&crl);
	mbedtls_x509_crt_init(&cas);
	ret = mbedtls_x509_crt_parse_file(&cas, ca_file);
	if (ret != 0) {
		crl_mbed_err(e, ERR_CONFIG, ca_file, ret);
		goto out;
	}
	if (crl_parse_mbed(&crl, buf, len, e) != 0) {
		goto out;
	}
	for (mbedtls_x509_crt *ca = &cas; ca != NULL && !ok; ca = ca->next) {
		if (ca->raw.p != NULL && crl_signed_by(&crl, ca) == 0) {
			ok = 1;
		}
	}
	if (!ok) {
		char issuer[256];
		if (mbedtls_x509_dn_gets(issuer, sizeof(issuer), &crl.issuer) < 0) {
			snprintf(issuer, sizeof(issuer), "?");
		}
		err_set(e, ERR_SIGNATURE, "CRL issued by '%s' is not signed by a CA in %s", issuer,
		    ca_file);
		goto out;
	}
	rc = crl_fill(&crl, out, e);
out:
	mbedtls_x509_crt_free(&cas);
	mbedtls_x509_crl_free(&crl);
	return rc;
}

int
crl_is_stale(const struct crl_info *ci, time_t now)
{
	return ci->next_update != 0 && now > ci->next_update;
}

void
crl_info_free(struct crl_info *ci)
{
	if (ci == NULL) {
		return;
	}
	free(ci->entries);
	memset(ci, 0, sizeof(*ci));
}
