/*
 * pki_int — what the modules of pki/ share and nobody else sees: the random
 * generator, the CA loaded with its key, the subjectKeyIdentifier lookup.
 * Only pki/ includes this header (it carries mbedTLS types).
 */
#ifndef TANDEM_PKI_INT_H
#define TANDEM_PKI_INT_H

#include <stddef.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include "common/err.h"

#include "common/util.h"

struct pki_rng {
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
};

/* The CA loaded from HOME (or just created by pki_init). */
struct pki_ca {
	mbedtls_x509_crt crt;
	mbedtls_pk_context key;
};

/* Initialise R (no seeding yet); pki_rng_free() always works afterwards. */
void pki_rng_setup(struct pki_rng *r);
/* Seed a generator set up with pki_rng_setup(). */
int pki_rng_seed(struct pki_rng *r, struct err *e) WUR;
void pki_rng_free(struct pki_rng *r);

void pki_ca_init(struct pki_ca *ca);
void pki_ca_free(struct pki_ca *ca);
/* Load HOME's CA and check it can sign: a CA certificate matching its key. */
int pki_ca_load(struct pki_ca *ca, const char *home, struct err *e) WUR;

/*
 * The subjectKeyIdentifier of CRT, if it has one: a pointer into CRT's DER
 * (2.28 does not parse it). 0, or -1 when there is none.
 */
int pki_find_ski(const mbedtls_x509_crt *crt, const unsigned char **ski, size_t *ski_len);

/*
 * Parse the CSR in BUF (PEM or DER, at most PKI_CSR_MAX bytes) into CSR
 * (initialised by the caller) and verify its self-signature.
 */
int pki_csr_load(mbedtls_x509_csr *csr, const unsigned char *buf, size_t len,
    struct err *e) WUR;

#endif
