/*
 * pki — the fleet's certificate authority (mbedTLS x509write): create the CA
 * and the master's certificate, issue leaf certificates for every role,
 * validate host names, describe and fingerprint certificates.
 *
 * Layout under the master's home directory (directories 0700, keys 0600,
 * every file written atomically with fs_write_atomic()):
 *
 *   HOME/ca/ca.key            CA private key (ECDSA P-256)
 *   HOME/ca/ca.crt            self-signed CA certificate (10 years)
 *   HOME/master/master.key    the master's client key
 *   HOME/master/master.crt    the master's client certificate (OU=master)
 *
 * Certificates we issue carry the role as OU ("master", "agent", "updater")
 * next to the role encoded in the CN (see common/tls.h), an extended key
 * usage fitting the role, subjectAltNames (DNS and IP), a 128-bit random
 * positive serial and both key identifiers. Private keys are wiped from
 * memory (PEM buffers included) before they are freed.
 *
 * Errors: every fallible function returns 0, or -1 with E set: ERR_BAD_REQUEST
 * for a name, option or CSR the caller gave that breaks the rules,
 * ERR_CONFLICT for a file that exists and may not be replaced, ERR_BUSY when
 * another 'pki init' holds the lock, ERR_FORMAT for a certificate or key file
 * that is not what it should be, ERR_IO/ERR_NOSPACE for the file system,
 * ERR_NOMEM, and ERR_INTERNAL for a library failure.
 */
#ifndef TANDEM_PKI_H
#define TANDEM_PKI_H

#include <limits.h>
#include <stdio.h>
#include <time.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/tls.h"
#include "common/util.h"

/* Paths relative to the master's home directory. */
#define PKI_CA_DIR "ca"
#define PKI_CA_KEY "ca/ca.key"
#define PKI_CA_CRT "ca/ca.crt"
#define PKI_MASTER_DIR "master"
#define PKI_MASTER_KEY "master/master.key"
#define PKI_MASTER_CRT "master/master.crt"
/* A CA rotation under way (tandem pki ca-rotate): both CAs, the old one kept, the new one made. */
#define PKI_CA_BUNDLE "ca/bundle.pem"
#define PKI_CA_RETIRED_DIR "ca/retired"
#define PKI_CA_NEXT_DIR "ca/next"
/* A renewal of the master's own pair under way (tandem pki renew-master). */
#define PKI_MASTER_TLS_DIR "master/tls"

#define PKI_CA_DAYS 3650
#define PKI_DEFAULT_DAYS 397
#define PKI_MAX_DAYS 3650
/* Default not-before is this far in the past, to tolerate clock skew. */
#define PKI_BACKDATE_S 300
#define PKI_MAX_SANS 32
#define PKI_HOST_NAME_MAX 253
#define PKI_CN_MAX 64

/* Extended key usage bits (pki_issue_opts.eku). */
#define PKI_EKU_SERVER 0x1u
#define PKI_EKU_CLIENT 0x2u
#define PKI_EKU_BOTH (PKI_EKU_SERVER | PKI_EKU_CLIENT)

enum pki_key_type {
	PKI_KEY_EC = 0,      /* ECDSA P-256 (default) */
	PKI_KEY_RSA = 1,     /* RSA 2048 */
	PKI_KEY_RSA3072 = 2, /* RSA 3072 */
};

/* "ec", "rsa"/"rsa2048", "rsa3072" -> *OUT; -1 for anything else. */
int pki_key_type_parse(const char *s, enum pki_key_type *out) WUR;

/*
 * Create the CA and the master's certificate under HOME (created 0700 if
 * missing, like HOME/ca and HOME/master). MASTER_CN (NULL or "" for
 * TLS_DEFAULT_MASTER_CN) must pass pki_check_cn(). Refuses, touching
 * nothing, when any of the four files already exists: a CA is never
 * overwritten. On failure the files this call created are removed again.
 */
int pki_init(const char *home, const char *master_cn, struct err *e) WUR;

/*
 * A new CA (ECDSA P-256 key, self-signed certificate for PKI_CA_DAYS) into
 * KEY_PATH (0600) and CRT_PATH (0644), for a CA rotation (master/ca_rotate).
 */
int pki_ca_new(const char *key_path, const char *crt_path, struct err *e) WUR;

/* What pki_issue() should produce. Start from pki_issue_opts_init(). */
struct pki_issue_opts {
	const char *name;        /* host name (agent, updater) or the master CN (master) */
	enum tls_role role;      /* TLS_ROLE_AGENT, TLS_ROLE_UPDATER or TLS_ROLE_MASTER */
	const char *master_cn;   /* NULL: CN of HOME/master/master.crt, else the default */
	const char *const *sans; /* DNS names or IPv4/IPv6 literals; agent and updater */
	size_t n_sans;           /* certificates also get DNS:NAME when it is missing */
	unsigned eku;            /* PKI_EKU_* set; 0: by role (master client, others both) */
	enum pki_key_type key_type;
	int days;                /* validity from not_before; 0: PKI_DEFAULT_DAYS */
	time_t not_before;       /* 0: now - PKI_BACKDATE_S */
	time_t not_after;        /* 0: not_before + days */
	const char *key_out;     /* private key path (written 0600); unused with CSR */
	const char *cert_out;    /* required: certificate path (written 0644) */
	/* A certificate request (PEM or DER, pki/csr.h): certify its key, whose
	 * self-signature must verify, instead of making one. Its subject and
	 * extensions are ignored: name, role and SANs above decide. */
	const unsigned char *csr;
	size_t csr_len;
	int force;               /* replace existing KEY_OUT/CERT_OUT (else EEXIST error) */
};

void pki_issue_opts_init(struct pki_issue_opts *o);

/*
 * Issue a certificate signed by the CA in HOME. The subject is
 * "O=tandem, OU=<role>, CN=<cn>" (in DER order) where CN is NAME for agents
 * and the master and "updater@NAME" for updaters; a CN longer than
 * PKI_CN_MAX (RFC 5280's upper bound) is refused. NAME must pass
 * pki_check_host_name() for agents and updaters, and must equal the master
 * CN for the master role. SANs must be IPv4/IPv6 literals or DNS names
 * (letters, digits, '.', '-'). The certificate may not outlive the CA.
 * Both files are prepared as temporaries first and then renamed into place,
 * key first; if placing the certificate fails, a key this call created is
 * removed again.
 */
int pki_issue(const char *home, const struct pki_issue_opts *o, struct err *e) WUR;

/*
 * Is NAME acceptable as a host name (agent CN, updater@NAME)? Letters,
 * digits, '.' and '-'; labels of 1..63 characters not starting or ending with
 * '-'; at most PKI_HOST_NAME_MAX characters. Names that could impersonate
 * another role are refused: equal to MASTER_CN (case-insensitively; NULL for
 * the default) or containing '@'. Returns 0 or -1 (E).
 */
int pki_check_host_name(const char *name, const char *master_cn, struct err *e) WUR;

/*
 * Is CN acceptable as the master CN? 1..PKI_CN_MAX characters of letters,
 * digits, '.', '_' and '-', starting with a letter or digit, and not starting
 * with "updater" followed by '@' (refused by the character set anyway).
 */
int pki_check_cn(const char *cn, struct err *e) WUR;

/*
 * Describe the first certificate in PATH (PEM or DER) as a new JSON object
 * (*OUT, free with cJSON_Delete()): subject, issuer, cn, ou, role (as
 * tls_role_from_subject() with MASTER_CN, NULL for the default; "ca" for a
 * CA certificate), host,
 * serial (hex), not_before/not_after (ISO 8601 UTC), status ("valid",
 * "expired", "not yet valid"), san (["DNS:x", "IP:y"]), eku (["clientAuth",
 * ...]), key ("EC secp256r1", "RSA 2048"), ca (bool), fingerprint (sha256 of
 * the DER, 64 lowercase hex).
 */
int pki_describe(const char *path, const char *master_cn, cJSON **out, struct err *e) WUR;

/*
 * Print pki_describe() of PATH to OUT: as one JSON object when JSON is
 * non-zero, else one "field: value" line each (lists comma-separated).
 */
int pki_show(const char *path, FILE *out, const char *master_cn, int json, struct err *e) WUR;

/* SHA-256 of the DER of the first certificate in PATH, 64 lowercase hex. */
int pki_fingerprint_file(const char *path, char out[TLS_FP_HEX_LEN + 1], struct err *e) WUR;

/*
 * The master CN recorded in HOME: the CN of HOME/master/master.crt. When
 * that file does not exist, TLS_DEFAULT_MASTER_CN. Fails when the file
 * exists but cannot be read or has no usable CN.
 */
int pki_master_cn(const char *home, char *out, size_t outlen, struct err *e) WUR;

/*
 * The master's certificate and key in force: the renewed pair under
 * HOME/master/tls/current/ while tandem pki renew-master is under way
 * (pki/hostcert layout), else HOME/master/master.{crt,key}. Paths into CRT
 * and KEY (PATH_MAX bytes each).
 */
int pki_master_paths(const char *home, char crt[PATH_MAX], char key[PATH_MAX],
    struct err *e) WUR;

/*
 * The CA certificates the master verifies hosts against: HOME/ca/bundle.pem
 * (the old and the new CA) while a CA rotation is under way, else
 * HOME/ca/ca.crt. Into OUT (PATH_MAX bytes).
 */
int pki_master_trust(const char *home, char out[PATH_MAX], struct err *e) WUR;

/* "HOME/REL" into BUF; -1 when it does not fit. */
int pki_path(const char *home, const char *rel, char *buf, size_t len) WUR;

#endif
