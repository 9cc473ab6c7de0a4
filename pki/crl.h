/*
 * crl — the fleet's certificate revocation list: the one writer (the master
 * signs it with the CA key) and the one reader (hosts verify it against their
 * CA bundle before they enforce it).
 *
 * mbedTLS 2.28 parses CRLs but cannot write them, so crl_build() encodes an
 * X.509 v2 CRL (RFC 5280 section 5) with mbedTLS's ASN.1 writer: the issuer
 * copied byte for byte from the CA's subject, thisUpdate/nextUpdate, one
 * entry per revoked serial (with a reasonCode entry extension when a reason
 * is given), and the authorityKeyIdentifier and cRLNumber extensions; signed
 * ecdsa-with-SHA256 (or sha256WithRSAEncryption for an RSA CA).
 *
 * We never hand a CRL to mbedtls_ssl_conf_ca_chain(): an expired CRL makes
 * mbedTLS 2.28 reject EVERY certificate. Hosts take the serial list from
 * crl_verify() and give it to tls_revoked_set() (common/tls), which checks
 * the peer's serial after every handshake, resumed ones included. A stale
 * CRL (past nextUpdate) keeps being enforced and is reported, never a reason
 * to refuse everyone (wiki/PKI-and-mTLS.md).
 *
 * Serials are canonical hex: lowercase, leading zero bytes dropped (at least
 * one byte kept), at most CRL_SERIAL_MAX_BYTES bytes (RFC 5280's bound).
 */
#ifndef TANDEM_PKI_CRL_H
#define TANDEM_PKI_CRL_H

#include <stddef.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"

#define CRL_SERIAL_MAX_BYTES 20
#define CRL_SERIAL_HEX_MAX (2 * CRL_SERIAL_MAX_BYTES)
/* A CRL larger than this is refused before parsing (hostile input bound). */
#define CRL_MAX_BYTES (4u * 1024u * 1024u)
#define CRL_MAX_ENTRIES 100000u
/* The master's file: HOME/ca/crl.der (DER) and HOME/ca/crl.pem (PEM). */
#define CRL_DER_FILE "ca/crl.der"
#define CRL_PEM_FILE "ca/crl.pem"
#define CRL_DEFAULT_NEXT_UPDATE_DAYS 30

/* RFC 5280 CRLReason values we write; CRL_REASON_NONE writes no extension. */
enum crl_reason {
	CRL_REASON_NONE = -1,
	CRL_REASON_UNSPECIFIED = 0,
	CRL_REASON_KEY_COMPROMISE = 1,
	CRL_REASON_CA_COMPROMISE = 2,
	CRL_REASON_AFFILIATION_CHANGED = 3,
	CRL_REASON_SUPERSEDED = 4,
	CRL_REASON_CESSATION = 5,
};

struct crl_entry {
	char serial[CRL_SERIAL_HEX_MAX + 1]; /* canonical hex */
	time_t revoked_at;
	int reason;                          /* enum crl_reason */
};

/* What a parsed (and, with crl_verify(), authenticated) CRL says. */
struct crl_info {
	unsigned long long number;  /* cRLNumber; 0 when the CRL has none */
	time_t this_update;
	time_t next_update;         /* 0 when absent */
	char issuer[256];           /* printable issuer DN */
	char fingerprint[65];       /* sha256 of the DER, lowercase hex */
	struct crl_entry *entries;  /* malloc'd, sorted by serial */
	size_t n_entries;
};

/* "unspecified", "key-compromise", ... <-> enum; parse returns -1 when unknown. */
const char *crl_reason_name(int reason);
int crl_reason_parse(const char *s, int *out) WUR;

/*
 * Canonical form of the hex serial IN ("0x" prefix, ':' separators and
 * either case accepted) into OUT. -1 when IN is not a serial.
 */
int crl_serial_canon(const char *in, char out[CRL_SERIAL_HEX_MAX + 1]) WUR;

/*
 * Sign a CRL with the CA of HOME (HOME/ca/ca.crt + ca.key): cRLNumber NUMBER
 * (>= 1), THIS_UPDATE, NEXT_UPDATE (> THIS_UPDATE), the N entries of ENT
 * (any order; duplicates refused). *DER is malloc'd (caller frees).
 */
int crl_build(const char *home, unsigned long long number, time_t this_update,
    time_t next_update, const struct crl_entry *ent, size_t n, unsigned char **der,
    size_t *der_len, struct err *e) WUR;

/* DER -> NUL-terminated PEM ("X509 CRL"), malloc'd into *PEM. */
int crl_to_pem(const unsigned char *der, size_t der_len, char **pem, struct err *e) WUR;

/*
 * Parse the CRL in BUF (DER, or PEM) without checking its signature (for
 * showing one and for fuzzing). *OUT is filled; free with crl_info_free().
 */
int crl_parse(const unsigned char *buf, size_t len, struct crl_info *out, struct err *e) WUR;

/*
 * crl_parse() and then authenticate: the issuer must be one of the CA
 * certificates in CA_FILE (a PEM bundle: during a CA rotation both CAs),
 * that CA must allow cRLSign, and the signature must verify with its key.
 * ERR_SIGNATURE when it does not; ERR_FORMAT for what does not parse.
 */
int crl_verify(const unsigned char *buf, size_t len, const char *ca_file, struct crl_info *out,
    struct err *e) WUR;

/* 1 when the CRL is past its nextUpdate at NOW. */
int crl_is_stale(const struct crl_info *ci, time_t now);

/* Free the entries; CI is zeroed and may be reused. NULL is fine. */
void crl_info_free(struct crl_info *ci);

#endif
