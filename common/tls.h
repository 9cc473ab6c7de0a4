/*
 * tls — every TLS connection tandem makes or accepts goes through here
 * (mbedTLS 2.28; keep mbedTLS types out of other modules' headers so a move to
 * 3.x stays local).
 *
 * Policy, fixed in code: TLS 1.2 minimum, ECDHE with ChaCha20-Poly1305 first
 * then AES-GCM, renegotiation off. Servers REQUIRE a client certificate signed
 * by the configured CA with the clientAuth extended key usage; clients verify
 * the server against the CA (serverAuth EKU) and, when given a pin, compare
 * the SHA-256 of the server leaf's DER (fail closed).
 *
 * Roles: the master (CN = configured master CN, default "tandem-master"),
 * an updater (CN = "updater@<host>"), an agent (CN = host name). Certificates
 * we issue also carry the role as OU; when OU is present it must agree with
 * the role derived from the CN, otherwise the role is TLS_ROLE_UNKNOWN.
 */
#ifndef TANDEM_TLS_H
#define TANDEM_TLS_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "common/err.h"
#include "common/util.h"

#define TLS_DEFAULT_MASTER_CN "tandem-master"
#define TLS_FP_HEX_LEN 64
/* A certificate serial as canonical hex (RFC 5280: at most 20 bytes). */
#define TLS_SERIAL_HEX_MAX 40

enum tls_role {
	TLS_ROLE_UNKNOWN = 0,
	TLS_ROLE_MASTER = 1,
	TLS_ROLE_AGENT = 2,
	TLS_ROLE_UPDATER = 3,
};

/*
 * Bit masks for role sets (route permissions). A peer with no role (a
 * CA-signed clientAuth certificate whose subject names no role) completes the
 * handshake and is refused (403) by every route but those open to
 * TLS_ROLES_ANY: read-only status routes such as /health, nothing that
 * changes state or tells more than a health probe.
 */
#define TLS_ROLEBIT(r) (1u << (r))
#define TLS_ROLES_KNOWN                                                                  \
	(TLS_ROLEBIT(TLS_ROLE_MASTER) | TLS_ROLEBIT(TLS_ROLE_AGENT) |                    \
	    TLS_ROLEBIT(TLS_ROLE_UPDATER))
#define TLS_ROLES_ANY (TLS_ROLES_KNOWN | TLS_ROLEBIT(TLS_ROLE_UNKNOWN))

/* The identity of a verified peer, extracted once per handshake. */
struct tls_identity {
	char cn[128];
	char ou[64];                       /* "" when absent */
	enum tls_role role;
	char host[128];                    /* agent: CN; updater: part after '@'; else "" */
	char fingerprint[TLS_FP_HEX_LEN + 1]; /* sha256(DER), lowercase hex */
	char serial[TLS_SERIAL_HEX_MAX + 1];  /* lowercase hex, no leading zero bytes */
	time_t not_before;
	time_t not_after;
	int resumed;                       /* 1 if the session was resumed from a ticket */
	int compat;                        /* master by the compatibility OU (master_compat_ou) */
};

const char *tls_role_name(enum tls_role role);
/* "master"/"agent"/"updater" -> role; anything else -> TLS_ROLE_UNKNOWN. */
enum tls_role tls_role_parse(const char *name);
/*
 * Role from subject fields: MASTER_CN (NULL = default) decides the master.
 * OU, when non-empty, must name the same role or the result is UNKNOWN.
 */
enum tls_role tls_role_from_subject(const char *cn, const char *ou, const char *master_cn);
/*
 * The same, but a CN equal to MASTER_CN with an OU equal to COMPAT_OU (when
 * non-empty) also names the master; the identity's `compat` flag says so.
 */
enum tls_role tls_role_from_subject_compat(const char *cn, const char *ou, const char *master_cn,
    const char *compat_ou);

/*
 * Identity from a DER certificate (used on handshakes and by pki). Fills
 * every field; returns 0, or -1 when the DER does not parse.
 */
int tls_identity_from_der(const unsigned char *der, size_t len, const char *master_cn,
    struct tls_identity *out) WUR;
/*
 * Identity of the first certificate in a PEM/DER file. -1 with E: ERR_IO when
 * the file cannot be read, ERR_FORMAT when it holds no usable certificate.
 */
int tls_identity_from_file(const char *path, const char *master_cn, struct tls_identity *out,
    struct err *e) WUR;

/*
 * Check that the first certificate in CERT_FILE was issued by a CA of
 * CA_FILE and is valid now (mbedTLS chain verification, no hostname).
 * Returns 0, or -1 with E: ERR_FORMAT when a file does not load, ERR_TLS
 * when the certificate does not verify (the reasons on one line).
 */
int tls_verify_cert_file(const char *ca_file, const char *cert_file, struct err *e) WUR;

/* Material for a context. All paths PEM (or DER). */
struct tls_opts {
	const char *ca_file;   /* required: trust anchor(s) */
	const char *cert_file; /* required for servers; optional for clients */
	const char *key_file;  /* required with cert_file */
	const char *master_cn; /* NULL: TLS_DEFAULT_MASTER_CN */
	/*
	 * Compatibility (DECNET masters): a peer whose CN is exactly master_cn and
	 * whose OU is exactly this value is the master too. NULL/"": off. The
	 * caller must pin the master's fingerprint when it sets this.
	 */
	const char *master_compat_ou;
	/*
	 * Servers: issue session tickets. Clients: keep the last session per
	 * peer (address, hostname and pins) for the context's life and offer it
	 * on the next handshake to that peer. Default on (tls_opts_init).
	 */
	int session_tickets;
	int handshake_timeout_ms; /* 0: 10000 */
};

void tls_opts_init(struct tls_opts *o);

/* A configured context: shared, thread-safe for handshakes after creation. */
struct tls_ctx;
struct tls_conn;

/*
 * Load CA, certificate and key (checks the key matches the certificate).
 * -1 with E: ERR_CONFIG for unusable material (a file that does not load, a
 * key that does not match or is readable by others), ERR_NOMEM, ERR_INTERNAL
 * when mbedTLS refuses its setup. The key material is wiped when freed.
 */
int tls_server_new(const struct tls_opts *o, struct tls_ctx **out, struct err *e) WUR;
int tls_client_new(const struct tls_opts *o, struct tls_ctx **out, struct err *e) WUR;
/*
 * Contexts are reference counted: every connection holds one, so a context
 * replaced by a reload (httpd_set_tls) lives until its last connection
 * ends. tls_ctx_free() drops a reference; the last one frees. NULL is fine.
 */
void tls_ctx_free(struct tls_ctx *ctx);
/* Take another reference to CTX; returns CTX. */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx);
const char *tls_ctx_master_cn(const struct tls_ctx *ctx);
/* Our own leaf's fingerprint ("" when the context has no certificate). */
const char *tls_ctx_own_fingerprint(const struct tls_ctx *ctx);
/* Identity of our own leaf (not_after for /health); -1 without one. */
int tls_ctx_own_identity(const struct tls_ctx *ctx, struct tls_identity *out) WUR;
/* The handshake deadline of a server context, in ms. */
int tls_ctx_handshake_timeout(const struct tls_ctx *ctx);

/*
 * Revocation: one process-wide set of revoked certificate serials (canonical
 * hex as in tls_identity.serial), checked after EVERY handshake of every
 * context, server and client, resumed sessions included: a listed peer is
 * refused. The set comes from a CRL the caller verified (pki/crl); the CRL
 * itself never reaches mbedTLS, whose CRL check rejects every certificate
 * once the CRL is past its nextUpdate. tls_revoked_set() replaces the set
 * (a copy; N = 0 empties it); ERR_BAD_REQUEST for a serial that is not
 * canonical hex, the old set then stays.
 */
int tls_revoked_set(const char *const *serials, size_t n, struct err *e) WUR;
/* 1 when SERIAL is in the set. */
int tls_serial_revoked(const char *serial);
size_t tls_revoked_count(void);

/*
 * Server side: run the handshake on the connected socket FD (made
 * non-blocking) within the context's handshake deadline. On success *OUT owns
 * FD and ID holds the verified client identity (re-checked after resumption:
 * validity window, revocation and EKU). A certificate whose subject maps to
 * no role is accepted with ID->role TLS_ROLE_UNKNOWN: the routes refuse it
 * (403), which tells the client more than a dropped connection. On failure FD
 * is NOT closed and E says why: ERR_TIMEOUT (no handshake within the
 * deadline), ERR_HANDSHAKE_CUT (the peer closed or reset the connection
 * during the handshake), ERR_TLS (handshake failed or the peer's certificate refused),
 * ERR_IO/ERR_NOMEM/ERR_INTERNAL for local failures.
 */
int tls_accept(struct tls_ctx *ctx, int fd, struct tls_conn **out, struct tls_identity *id,
    struct err *e) WUR;

/*
 * PINS: one fingerprint (64 hex) or up to TLS_MAX_PINS separated by ','
 * (a rollover: the old and the next certificate). 1 when FP (may be NULL)
 * is one of them, 0 when not, -1 when PINS is malformed.
 */
#define TLS_MAX_PINS 4
int tls_pin_match(const char *pins, const char *fp);

/*
 * Client side: handshake on the connected socket FD. PIN_FP (NULL or "" for
 * none; see tls_pin_match() for a list) must match the server leaf; HOSTNAME (NULL for none, e.g. when
 * connecting by IP) is checked against the certificate's DNS names/CN.
 * TIMEOUT_MS bounds the handshake. With the context's session cache on, the
 * last session with the same peer address, HOSTNAME and PIN_FP is offered
 * (SERVER_ID->resumed says whether the server took it); a server that does
 * not (restarted, new ticket key) gets a full handshake transparently. The
 * pin, validity, EKU and revocation are checked on every handshake, resumed
 * ones included (the session keeps the peer certificate). A failed handshake
 * or check forgets the session. On success *OUT owns FD. Errors as
 * tls_accept(), plus ERR_PIN_MISMATCH for a pin mismatch and ERR_CONFIG for a
 * malformed pin or hostname.
 */
int tls_connect(struct tls_ctx *ctx, int fd, const char *hostname, const char *pin_fp,
    int timeout_ms, struct tls_conn **out, struct tls_identity *server_id, struct err *e) WUR;

/* Handshakes this process completed, as a client and as a server. */
struct tls_handshake_counts {
	unsigned long client_full;
	unsigned long client_resumed;
	unsigned long server_full;
	unsigned long server_resumed;
};
void tls_handshake_counts(struct tls_handshake_counts *out);

/* Non-blocking I/O results. */
#define TLS_WANT_READ (-2)
#define TLS_WANT_WRITE (-3)
#define TLS_ERR (-1)

/*
 * Non-blocking read: >0 bytes, 0 on clean close (close_notify or EOF),
 * TLS_WANT_READ/TLS_WANT_WRITE, TLS_ERR. After a positive return call again
 * until TLS_WANT_READ before polling (records may be buffered).
 */
ssize_t tls_read(struct tls_conn *c, void *buf, size_t len);
/*
 * Non-blocking write: >0 bytes written, TLS_WANT_*, TLS_ERR. After a WANT
 * result, retry with the SAME buffer and length before any tls_read.
 */
ssize_t tls_write(struct tls_conn *c, const void *buf, size_t len);
/* Bytes already decrypted and buffered inside the connection. */
size_t tls_pending(const struct tls_conn *c);
int tls_fd(const struct tls_conn *c);

/* Blocking helpers with an absolute deadline (mono_ms()). */
/*
 * Read up to LEN: >0, 0 on EOF, -1 with E: ERR_TIMEOUT, ERR_PROTOCOL (reset
 * or corrupt record), ERR_IO (poll).
 */
ssize_t tls_read_deadline(struct tls_conn *c, void *buf, size_t len, int64_t deadline,
    struct err *e);
/* Write all LEN bytes: 0, or -1 with E as tls_read_deadline(). */
int tls_write_all_deadline(struct tls_conn *c, const void *buf, size_t len, int64_t deadline,
    struct err *e) WUR;

/* Send close_notify once (best effort, non-blocking); the fd stays open. */
void tls_close_notify(struct tls_conn *c);

/* Send close_notify (best effort, non-blocking), free, close the fd. NULL ok. */
void tls_close(struct tls_conn *c);

#endif
