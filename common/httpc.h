/*
 * httpc — the HTTPS/1.1 client every tandem component uses (the master
 * pushing releases to updaters, the updater probing its agent).
 *
 * It runs over common/tls.h (mutual TLS, optional leaf pin) and parses
 * responses with libhttp-parser: Content-Length and chunked bodies, bodies
 * delimited by the end of the connection, responses without a body
 * (1xx/204/304 and answers to HEAD never have one, whatever their headers
 * say) and keep-alive. Interim 1xx responses are skipped (at most 8); 101 is
 * refused. A body delimited by the end of the connection is accepted without
 * a TLS close_notify (as curl does): servers that care use Content-Length or
 * chunked, which are checked for truncation.
 *
 * Limits, fixed in code or per target: the response body (default 4 MiB),
 * the response headers (HTTPC_MAX_HEADER_BYTES), a deadline on connecting
 * (TCP and TLS handshake together), on every single read or write (no
 * progress for that long fails) and on a whole request/response exchange.
 * Every error names the step that failed, e.g. "connect to 127.0.0.1:8766:
 * Connection refused", "send request: timed out after 30000 ms", "read
 * response: connection closed before end of headers", "response body exceeds
 * 4194304 bytes".
 *
 * A connection is used by one thread at a time. After an error, a response
 * that was not keep-alive, or a "Connection: close" exchange, the connection
 * is no longer usable (httpc_conn_usable() says so): close it and reconnect.
 * Requests are never retried silently.
 */
#ifndef TANDEM_HTTPC_H
#define TANDEM_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#include "common/tls.h"
#include "common/util.h"

#define HTTPC_DEFAULT_MAX_BODY ((size_t)4 * 1024 * 1024)
#define HTTPC_MAX_HEADER_BYTES ((size_t)64 * 1024)
#define HTTPC_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define HTTPC_DEFAULT_IO_TIMEOUT_MS 30000
#define HTTPC_DEFAULT_TOTAL_TIMEOUT_MS 300000
/* Streamed request bodies are read from their file in chunks of this size. */
#define HTTPC_STREAM_CHUNK ((size_t)64 * 1024)
/* Content type of the file part of httpc_upload_multipart(). */
#define HTTPC_MULTIPART_FILE_TYPE "application/gzip"

/* Where to connect and how patiently. The strings are copied. */
struct httpc_target {
	const char *host;         /* DNS name or numeric address (IPv6 without brackets) */
	const char *port;         /* decimal port or service name */
	const char *pin_fp;       /* SHA-256 of the server leaf's DER, 64 hex; NULL/"" for none */
	const char *sni_hostname; /* name checked against the certificate; NULL when
				     connecting by IP (mbedTLS cannot match IP SANs: rely on
				     the pin and the CA then) */
	int connect_timeout_ms;   /* TCP connect (all addresses) + TLS handshake; 0: default */
	int io_timeout_ms;        /* longest wait for progress on one read/write; 0: default */
	int total_timeout_ms;     /* one request/response exchange; 0: default, <0: none */
	size_t max_body;          /* response body limit in bytes; 0: HTTPC_DEFAULT_MAX_BODY */
};

/* Initialise T: every field zero/NULL (all defaults, no pin, no hostname). */
void httpc_target_init(struct httpc_target *t);

/*
 * A parsed response. httpc_request() and friends initialise it on entry, so
 * it may be freed after a failure; free a previous response before reusing
 * the struct.
 */
struct httpc_response {
	int status;              /* e.g. 200 */
	char *body;              /* on success: heap, NUL-terminated (possibly ""), owned */
	size_t body_len;         /* bytes in body, excluding the terminating NUL */
	char content_type[128];  /* "" when absent; truncated if longer */
	char retry_after[32];    /* raw Retry-After value, "" when absent */
	int keep_alive;          /* 1 if the connection may carry another request */
};

/* Release the body and reset RESP to empty. NULL and empty responses are fine. */
void httpc_response_free(struct httpc_response *resp);

/* Progress of a streamed upload: SENT of TOTAL body bytes (Content-Length). */
typedef void (*httpc_progress_fn)(void *arg, uint64_t sent, uint64_t total);

struct httpc_conn;

/*
 * Resolve T->host, connect (non-blocking, each address in turn until the
 * connect deadline) and run the TLS handshake with TLS (a client context),
 * pinning T->pin_fp and checking T->sni_hostname when given. On success *OUT
 * is a connection to free with httpc_close(). E gets a one-line reason
 * naming the step ("resolve ...", "connect to ADDR:PORT: ...", "TLS ...") and
 * a kind: ERR_UNREACHABLE (no name, refused, no route), ERR_TIMEOUT (TCP or
 * handshake deadline), ERR_HANDSHAKE_CUT (TCP connected, then the peer
 * closed or reset the connection or let the handshake time out: up, but not
 * serving us now), ERR_TLS (handshake failed, certificate refused),
 * ERR_PIN_MISMATCH (not the pinned certificate), ERR_CONFIG (bad host, port or pin), ERR_NOMEM/ERR_INTERNAL.
 * Name resolution itself is not bounded by the deadline (getaddrinfo).
 */
int httpc_connect(struct tls_ctx *tls, const struct httpc_target *t, struct httpc_conn **out,
    struct err *e) WUR;

/*
 * Plain HTTP over an already connected stream socket FD (no TLS). Only for
 * tests and local AF_UNIX sockets: fleet traffic always goes through
 * httpc_connect(). T supplies the Host header (T->host; NULL means
 * "localhost"), timeouts and limits; its pin/hostname are ignored. On
 * success *OUT owns FD (made non-blocking); on failure FD is left open.
 */
int httpc_conn_from_fd(int fd, const struct httpc_target *t, struct httpc_conn **out,
    struct err *e) WUR;

/* Close the connection (TLS close_notify, best effort) and free it. NULL ok. */
void httpc_close(struct httpc_conn *c);

/* 1 while another request may be sent on C, 0 once it must be closed. */
int httpc_conn_usable(const struct httpc_conn *c);

/* The verified server identity (role, CN, fingerprint); NULL for plain connections. */
const struct tls_identity *httpc_conn_server_identity(const struct httpc_conn *c);

/*
 * Send METHOD (upper-case token) for PATH (origin form, starts with '/', no
 * spaces or control characters) and read the whole response into RESP.
 * HEADERS is NULL or a NULL-terminated list of "Name: value" lines (no CR/LF;
 * Host, Content-Length and Transfer-Encoding are set here and refused);
 * "Connection: close" makes the connection unusable afterwards. BODY/BODY_LEN
 * is sent with a Content-Length (also "0" for POST, PUT and PATCH without a
 * body); a response to HEAD has no body.
 *
 * Returns 0 for any complete HTTP response (check RESP->status), -1 when no
 * complete response was obtained (E says which step failed; its kind:
 * ERR_BAD_REQUEST for a request refused before sending, ERR_TIMEOUT,
 * ERR_UNREACHABLE when the connection failed or ended, ERR_PROTOCOL for a
 * response we cannot use (malformed, over a limit, TLS record error),
 * ERR_IO for a local file, ERR_NOMEM). When the
 * server answers before the whole request is sent (e.g. 413 or 403 during a
 * large upload) and then closes or stops reading, that answer is returned
 * rather than the send error, as soon as a stalled write sees it; the
 * connection is not reusable afterwards. Interim 1xx answers seen meanwhile
 * do not stop the upload (we never send "Expect: 100-continue").
 */
int httpc_request(struct httpc_conn *c, const char *method, const char *path,
    const char *const *headers, const void *body, size_t body_len, struct httpc_response *resp,
    struct err *e) WUR;

/*
 * Like httpc_request(), with a body of exactly SIZE bytes read from FD's
 * current offset in HTTPC_STREAM_CHUNK pieces (never held whole in memory).
 * CONTENT_TYPE (may be NULL) is sent as Content-Type; do not also pass one in
 * HEADERS. PROGRESS (may be NULL) is called after each piece is sent. A file
 * shorter than SIZE is an error ("read upload file: ..."). FD is not closed.
 */
int httpc_request_fd(struct httpc_conn *c, const char *method, const char *path,
    const char *const *headers, const char *content_type, int fd, uint64_t size,
    httpc_progress_fn progress, void *arg, struct httpc_response *resp, struct err *e) WUR;

/* A text field of a multipart form. NAME: no '"', CR or LF; VALUE: any text. */
struct httpc_form_field {
	const char *name;
	const char *value;
};

/*
 * POST a multipart/form-data body to PATH: the NFIELDS text FIELDS first, then
 * the file part FILE_FIELD (filename FILENAME, Content-Type
 * HTTPC_MULTIPART_FILE_TYPE) holding SIZE bytes streamed from FD as in
 * httpc_request_fd(). The boundary is random (128 bits) and checked against
 * every text value; the exact Content-Length is computed in advance.
 * PROGRESS counts the whole body. Returns as httpc_request().
 */
int httpc_upload_multipart(struct httpc_conn *c, const char *path,
    const struct httpc_form_field *fields, size_t nfields, const char *file_field,
    const char *filename, int fd, uint64_t size, httpc_progress_fn progress, void *arg,
    struct httpc_response *resp, struct err *e) WUR;

/*
 * One request on a fresh connection: connect, send with "Connection: close",
 * read the response, close. Arguments and result as httpc_connect() and
 * httpc_request().
 */
int httpc_fetch(struct tls_ctx *tls, const struct httpc_target *t, const char *method,
    const char *path, const char *const *headers, const void *body, size_t body_len,
    struct httpc_response *resp, struct err *e) WUR;

/*
 * Exposed for tests and fuzzing: parse BUF (LEN bytes, a whole server
 * transmission followed by end of connection) as the response to a request
 * (IS_HEAD: to HEAD), feeding the parser STEP bytes at a time (0: all at
 * once) the way socket reads would. Bytes after a complete response clear
 * OUT->keep_alive. Returns 0 with OUT filled (free it with
 * httpc_response_free), or -1 with ERR set and OUT empty.
 */
int httpc_parse_response_buffer(const char *buf, size_t len, int is_head, size_t max_body,
    size_t step, struct httpc_response *out, struct err *e) WUR;

/*
 * Exposed for tests: connect to the addresses of RES in turn (HOST and PORT
 * name them in errors) before DEADLINE (mono_ms()). Returns the connected
 * non-blocking socket with E untouched, or -1 with E saying why the last
 * address failed ("no usable address" for an empty list).
 */
struct addrinfo;
int httpc_tcp_connect_list(const struct addrinfo *res, const char *host, const char *port,
    int64_t deadline, int timeout_ms, struct err *e) WUR;

#endif
