/*
 * httpd — an mTLS HTTP/1.1 server: mbedTLS terminates TLS, libmicrohttpd
 * parses HTTP.
 *
 * Debian's libmicrohttpd speaks TLS only through GnuTLS and merely *requests*
 * a client certificate, so we accept TCP ourselves, run the mbedTLS handshake
 * (common/tls) in a per-connection relay thread, then hand libmicrohttpd one
 * end of an AF_UNIX socketpair (MHD_add_connection, with the real peer
 * address) and relay bytes both ways. The verified peer identity reaches the
 * handler through a refcounted per-connection record. See wiki/Architecture.md.
 *
 * Handlers are routes: exact method + path, a set of roles allowed (checked
 * before any handler code runs: 403 otherwise), a body limit (413 as bytes
 * arrive), a per-request deadline. Bodies reach handlers as a stream of
 * chunks; with `multipart` set, multipart/form-data is parsed as a stream and
 * each part's bytes arrive with the part's name. Nothing is held whole in
 * memory.
 *
 * Handler calls for one request happen on one thread, in order:
 *   on_begin (optional) -> on_data* -> on_end -> on_cleanup (optional)
 * on_begin/on_data may refuse by responding and returning -1 (the connection
 * is then closed after the response). on_end must respond. on_cleanup always
 * runs once on_begin did (also when the client went away mid-body).
 */
#ifndef TANDEM_HTTPD_H
#define TANDEM_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "common/tls.h"
#include "common/util.h"

struct httpd;
struct httpd_req;

/* A multipart/form-data part, as parsed so far. */
struct httpd_part {
	const char *name;         /* form field name */
	const char *filename;     /* NULL for text fields */
	const char *content_type; /* may be NULL */
	uint64_t offset;          /* offset of this chunk within the part */
};

struct httpd_route {
	const char *method; /* "GET" (also serves HEAD), "POST", ... */
	const char *path;   /* exact match */
	unsigned roles;     /* TLS_ROLEBIT(...) mask; 0 means TLS_ROLES_KNOWN */
	uint64_t max_body;  /* 0: no body accepted */
	int deadline_ms;    /* whole request; 0: the server default */
	int multipart;      /* parse the body as multipart/form-data */
	int (*on_begin)(struct httpd_req *r, void *arg);
	/* PART is NULL for raw bodies. */
	int (*on_data)(struct httpd_req *r, const struct httpd_part *part, const char *data,
	    size_t len, void *arg);
	void (*on_end)(struct httpd_req *r, void *arg);
	/* COMPLETED is 1 if on_end ran, 0 if the request was abandoned. */
	void (*on_cleanup)(struct httpd_req *r, void *arg, int completed);
	void *arg;
};

enum httpd_error_style {
	/* {"detail":{"error":"..."}} */
	HTTPD_ERRORS_PLAIN = 0,
	/* {"detail":{"error":"...","stderr":"","rolled_back":false}} (updater wire API) */
	HTTPD_ERRORS_UPDATER = 1,
};

/* listen_fd value for a server with no listening socket (tests, fuzzing). */
#define HTTPD_NO_LISTEN (-2)

struct httpd_opts {
	const char *listen;         /* "ADDR:PORT", "[V6]:PORT"; port 0 picks one */
	int listen_fd;              /* >= 0: an inherited listening socket instead */
	struct tls_ctx *tls;        /* server context; the server takes a reference (NULL only
	                               with HTTPD_NO_LISTEN) */
	const struct httpd_route *routes;
	size_t nroutes;
	const char *name;           /* for logs, e.g. "agent" */
	enum httpd_error_style error_style;
	/*
	 * Admission (see wiki/Architecture.md). TLS handshakes in progress have
	 * their own budget, max_handshakes; a new connection past it evicts the
	 * oldest handshake whose client has not sent a byte yet (else the
	 * oldest), and one address may hold max_conns_per_ip such silent
	 * connections (past that its oldest goes): silent or stalled
	 * connections without a certificate cannot lock anyone out.
	 * Authenticated connections: at most max_conns; peers whose role is in
	 * privileged_roles may use them all, the others only max_conns -
	 * reserved_conns and max_conns_per_ip per address; a peer past its
	 * limit gets 503 and is closed.
	 */
	unsigned max_conns;         /* default 64 */
	unsigned max_conns_per_ip;  /* default 16 */
	unsigned max_handshakes;    /* default (0) 2 * max_conns */
	unsigned privileged_roles;  /* TLS_ROLEBIT mask; default master and updater */
	unsigned reserved_conns;    /* default max_conns / 4, at least 1 */
	unsigned idle_timeout_s;    /* keep-alive idle (default 30) */
	int header_timeout_ms;      /* first byte of a request to end of headers (10000) */
	int request_timeout_ms;     /* default per-request deadline (60000) */
};

void httpd_opts_init(struct httpd_opts *o);

/*
 * Bind (or adopt listen_fd), start the accept thread and libmicrohttpd. -1
 * with E (the socket's kind when binding fails, e.g. ERR_IO for an address
 * in use; ERR_INTERNAL when libmicrohttpd or a thread does not start).
 */
int httpd_start(const struct httpd_opts *o, struct httpd **out, struct err *e) WUR;

/*
 * Stop accepting, let in-flight requests finish for up to GRACE_MS, then cut
 * every connection and free everything. KEEP_LISTEN_FD leaves the listening
 * socket open (a handover to another process); otherwise it is closed.
 */
void httpd_stop(struct httpd *srv, int grace_ms, int keep_listen_fd);
/*
 * Serve new connections with TLS (a reload of our certificate, key, CA):
 * the server takes its own reference; connections already running keep the
 * context they started with until they end.
 */
void httpd_set_tls(struct httpd *srv, struct tls_ctx *tls);
/* Stop accepting new connections (in-flight ones continue). */
void httpd_stop_accepting(struct httpd *srv);

/*
 * Test and fuzz hook: serve plain HTTP on FD (one end of a socketpair, owned
 * by the server afterwards) as if it came over TLS from a peer with identity
 * ID. Daemons never call it; it bypasses TLS by design.
 */
int httpd_inject_connection(struct httpd *srv, int fd, const struct tls_identity *id) WUR;

int httpd_port(const struct httpd *srv);
int httpd_listen_fd(const struct httpd *srv);
unsigned httpd_active_connections(const struct httpd *srv);
unsigned httpd_active_requests(const struct httpd *srv);

/* Request accessors (valid during handler calls). */
const struct tls_identity *httpd_req_identity(const struct httpd_req *r);
const char *httpd_req_method(const struct httpd_req *r);
const char *httpd_req_path(const struct httpd_req *r);
const char *httpd_req_peer(const struct httpd_req *r); /* "IP" of the TCP peer */
const char *httpd_req_header(const struct httpd_req *r, const char *name);
const char *httpd_req_query(const struct httpd_req *r, const char *name);
uint64_t httpd_req_body_bytes(const struct httpd_req *r);
void httpd_req_set_data(struct httpd_req *r, void *data);
void *httpd_req_data(const struct httpd_req *r);
/* 1 once the server is shutting down: long handlers should wrap up. */
int httpd_req_stopping(const struct httpd_req *r);

/*
 * Responses. Each request gets exactly one; later calls are ignored (and
 * logged). Headers added with httpd_add_header go with the response.
 */
int httpd_add_header(struct httpd_req *r, const char *name, const char *value) WUR;
void httpd_respond(struct httpd_req *r, unsigned status, const char *content_type,
    const void *body, size_t len);
/* Serialise OBJ (a cJSON *, freed here) as the JSON body. */
void httpd_respond_json(struct httpd_req *r, unsigned status, void *obj);
void httpd_respond_error(struct httpd_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The updater's full error shape; STDERR_TEXT may be NULL. */
void httpd_respond_error_detail(struct httpd_req *r, unsigned status, const char *error,
    const char *stderr_text, int rolled_back);
int httpd_responded(const struct httpd_req *r);

#endif
