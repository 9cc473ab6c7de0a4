#include "common/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cJSON.h"
#include "common/log.h"
#include "common/sock.h"

#define RELAY_BUF (64 * 1024)
#define MHD_MEM_LIMIT (256 * 1024)
#define PP_BUF (64 * 1024)
#define MAX_RESP_HEADERS 8
#define IP_TABLE_SIZE 256

/*
 * Per-connection record shared by the relay thread and libmicrohttpd's
 * connection (socket context). Refcounted: the relay can end while a handler
 * still runs, and the other way round.
 */
struct conn_rec {
	atomic_int refs;
	struct tls_identity id;
	char peer_ip[INET6_ADDRSTRLEN];
	/* Request timing, written by both sides. 0 idle, 1 headers, 2 handler. */
	atomic_int req_state;
	atomic_llong req_started;
	atomic_int req_deadline_ms;
	/*
	 * eventfd the handler side writes when the request moves from its
	 * headers to its handler: the relay, asleep until the header deadline,
	 * must re-arm for the (possibly shorter) request deadline. -1 for
	 * injected connections. Closed with the record, never earlier, so a
	 * late write cannot hit a reused descriptor.
	 */
	int wake_fd;
	/*
	 * A response the handler gave while body bytes were still arriving.
	 * libmicrohttpd cannot queue a response mid-body, so the access handler
	 * stores the serialised response here and drops the MHD connection; the
	 * relay sends it to the client after whatever MHD already wrote.
	 */
	_Atomic(char *) abort_resp;
	size_t abort_len;
	/*
	 * The request target or a query value held an encoded NUL (%00). Set by
	 * the unescape callback while libmicrohttpd parses the headers, read and
	 * cleared by req_new: a path cut at the NUL must never reach a route.
	 */
	atomic_int bad_target;
};

/* socketpair fd -> record, filled before MHD_add_connection. */
struct pending_rec {
	int fd;
	struct conn_rec *rec;
	struct pending_rec *next;
};

struct ip_count {
	char ip[INET6_ADDRSTRLEN];
	unsigned n;
};

/* A TCP connection whose TLS handshake is running (see hs_admit). */
struct hs_slot {
	int used;
	int fd;
	int heard;        /* the client sent its first bytes */
	int evicted;      /* shut down to make room for a newer connection */
	int64_t started;
	char ip[INET6_ADDRSTRLEN];
};

/* Refusal log lines from one address, aggregated over a window. */
#define REFUSAL_WINDOW_MS 10000
#define REFUSAL_TABLE 32
#define REFUSAL_BURST 5
#define REFUSAL_ALL_BURST 40
struct refusal {
	char ip[INET6_ADDRSTRLEN];
	int64_t since;    /* 0: free */
	unsigned logged;  /* logged in full in this window */
	unsigned n;       /* refusals not logged yet */
	char why[160];    /* the last one's reason */
};

struct httpd {
	struct httpd_opts o;
	struct MHD_Daemon *mhd;
	int listen_fd;
	int port;
	int wake_fd;              /* eventfd: readable once stopping (never read) */
	int accept_wake_fd;       /* eventfd: stop the accept thread */
	pthread_t accept_thread;
	int accept_running;
	atomic_int stopping;
	atomic_uint conns;        /* live relays */
	atomic_uint requests;     /* requests between first call and completion */
	pthread_mutex_t mtx;      /* pending table, ip table */
	pthread_cond_t relays_done;
	struct pending_rec *pending;
	struct ip_count ips[IP_TABLE_SIZE]; /* authenticated, not privileged */
	struct hs_slot *hs;       /* 2 * max_handshakes: evicted slots linger briefly */
	unsigned hs_cap;
	unsigned auth;            /* authenticated relays */
	pthread_mutex_t log_mtx;  /* refusals */
	struct refusal refusals[REFUSAL_TABLE];
	int64_t refusal_since;    /* the window of refusal_lines */
	unsigned refusal_lines;
	unsigned refusal_others;  /* counted, from addresses not in the table */
};

struct resp_header {
	char *name;
	char *value;
};

struct httpd_req {
	struct httpd *srv;
	struct MHD_Connection *mc;
	const struct httpd_route *route;
	struct conn_rec *rec;
	char method[16];
	char *path;
	unsigned reject_status; /* decided in the first call, answered later */
	char reject_msg[256];
	int allow_header;       /* 405: send Allow */
	int close_conn;         /* framing unsound: answer, then close */
	int begun;              /* on_begin ran (or no on_begin): cleanup owed */
	int ended;              /* on_end ran */
	int stop_body;          /* handler refused mid-body: discard the rest */
	int counted;            /* counted in srv->requests */
	uint64_t body_bytes;
	struct MHD_PostProcessor *pp;
	void *data;
	/* The response, queued at the right moment by the access handler. */
	unsigned status;
	char *body;
	size_t body_len;
	char content_type[64];
	struct resp_header hdrs[MAX_RESP_HEADERS];
	size_t nhdrs;
	int queued;
	int aborted;            /* answered through the relay, connection dropped */
	int64_t started;
};

static void
rec_unref(struct conn_rec *rec)
{
	if (rec != NULL && atomic_fetch_sub(&rec->refs, 1) == 1) {
		if (rec->wake_fd >= 0) {
			close(rec->wake_fd);
		}
		free(atomic_load(&rec->abort_resp));
		secure_wipe(rec, sizeof(*rec));
		free(rec);
	}
}

static const char *
status_reason(unsigned status)
{
	switch (status) {
	case 400:
		return "bad request";
	case 403:
		return "forbidden";
	case 404:
		return "not found";
	case 405:
		return "method not allowed";
	case 408:
		return "request timeout";
	case 411:
		return "length required";
	case 413:
		return "request too large";
	case 414:
		return "request target too long";
	case 431:
		return "request header fields too large";
	case 500:
		return "internal error";
	case 503:
		return "service unavailable";
	case 505:
		return "HTTP version not supported";
	default:
		return "error";
	}
}

/* ---- responses ---- */

void
httpd_respond(struct httpd_req *r, unsigned status, const char *content_type, const void *body,
    size_t len)
{
	if (r->status != 0) {
		log_warnx("%s %s: second response (%u) ignored", r->method, r->path, status);
		return;
	}
	r->body = malloc(len > 0 ? len : 1);
	if (r->body == NULL) {
		r->status = 500;
		r->body_len = 0;
		return;
	}
	if (len > 0) {
		memcpy(r->body, body, len);
	}
	r->body_len = len;
	r->status = status;
	snprintf(r->content_type, sizeof(r->content_type), "%s",
	    content_type != NULL ? content_type : "application/json");
}

void
httpd_respond_json(struct httpd_req *r, unsigned status, void *obj)
{
	cJSON *j = obj;
	char *s = j != NULL ? cJSON_PrintUnformatted(j) : NULL;

	cJSON_Delete(j);
	if (s == NULL) {
		static const char oom[] = "{\"detail\":{\"error\":\"out of memory\"}}";
		httpd_respond(r, 500, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	size_t n = strlen(s);
	/* A trailing newline makes curl output and logs readable. */
	char *nl = realloc(s, n + 2);
	if (nl != NULL) {
		s = nl;
		s[n++] = '\n';
		s[n] = '\0';
	}
	httpd_respond(r, status, "application/json", s, n);
	free(s);
}

void
httpd_respond_error_detail(struct httpd_req *r, unsigned status, const char *error,
    const char *stderr_text, int rolled_back)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *detail = cJSON_CreateObject();

	if (root == NULL || detail == NULL) {
		cJSON_Delete(root);
		cJSON_Delete(detail);
		httpd_respond_json(r, status, NULL);
		return;
	}
	cJSON_AddItemToObject(root, "detail", detail);
	cJSON_AddStringToObject(detail, "error", error != NULL ? error : status_reason(status));
	if (r->srv->o.error_style == HTTPD_ERRORS_UPDATER || stderr_text != NULL) {
		cJSON_AddStringToObject(detail, "stderr", stderr_text != NULL ? stderr_text : "");
		cJSON_AddBoolToObject(detail, "rolled_back", rolled_back ? 1 : 0);
	}
	httpd_respond_json(r, status, root);
}

void
httpd_respond_error(struct httpd_req *r, unsigned status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	httpd_respond_error_detail(r, status, msg, NULL, 0);
}

int
httpd_add_header(struct httpd_req *r, const char *name, const char *value)
{
	if (r->nhdrs >= MAX_RESP_HEADERS || strpbrk(name, "\r\n:") != NULL ||
	    strpbrk(value, "\r\n") != NULL) {
		return -1;
	}
	char *n = strdup(name);
	char *v = strdup(value);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return -1;
	}
	r->hdrs[r->nhdrs].name = n;
	r->hdrs[r->nhdrs].value = v;
	r->nhdrs++;
	return 0;
}

int
httpd_responded(const struct httpd_req *r)
{
	return r->status != 0;
}

/* Hand the stored response to libmicrohttpd; MHD_NO means drop the connection. */
static enum MHD_Result
req_queue(struct httpd_req *r, int close_after)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (r->queued) {
		return MHD_YES;
	}
	if (r->status == 0) {
		httpd_respond_error(r, 500, "handler produced no response");
	}
	resp = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL) {
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type) !=
	    MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	for (size_t i = 0; i < r->nhdrs; i++) {
		(void)MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
	}
	if (close_after) {
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	}
	ret = MHD_queue_response(r->mc, r->status, resp);
	MHD_destroy_response(resp);
	if (ret == MHD_YES) {
		r->queued = 1;
	}
	return ret;
}

/*
 * Answer now although the body is still arriving: serialise the response for
 * the relay and make libmicrohttpd drop the connection (see conn_rec).
 */
static enum MHD_Result
req_abort(struct httpd_req *r)
{
	char head[1024];
	size_t hl;
	int n;

	if (r->queued) {
		return MHD_NO;
	}
	if (r->status == 0) {
		httpd_respond_error(r, 500, "handler produced no response");
	}
	n = snprintf(head, sizeof(head),
	    "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n",
	    r->status, MHD_get_reason_phrase_for(r->status), r->content_type, r->body_len);
	if (n < 0 || (size_t)n >= sizeof(head)) {
		return MHD_NO;
	}
	hl = (size_t)n;
	for (size_t i = 0; i < r->nhdrs; i++) {
		n = snprintf(head + hl, sizeof(head) - hl, "%s: %s\r\n", r->hdrs[i].name,
		    r->hdrs[i].value);
		if (n < 0 || (size_t)n >= sizeof(head) - hl) {
			return MHD_NO;
		}
		hl += (size_t)n;
	}
	if (hl + 2 >= sizeof(head)) {
		return MHD_NO;
	}
	memcpy(head + hl, "\r\n", 2);
	hl += 2;
	char *buf = malloc(hl + r->body_len);
	if (buf == NULL) {
		return MHD_NO;
	}
	memcpy(buf, head, hl);
	memcpy(buf + hl, r->body, r->body_len);
	r->rec->abort_len = hl + r->body_len;
	r->aborted = 1;
	char *old = atomic_exchange(&r->rec->abort_resp, buf);
	free(old);
	r->queued = 1;
	return MHD_NO;
}

/* ---- request accessors ---- */

const struct tls_identity *
httpd_req_identity(const struct httpd_req *r)
{
	return &r->rec->id;
}

const char *
httpd_req_method(const struct httpd_req *r)
{
	return r->method;
}

const char *
httpd_req_path(const struct httpd_req *r)
{
	return r->path;
}

const char *
httpd_req_peer(const struct httpd_req *r)
{
	return r->rec->peer_ip;
}

const char *
httpd_req_header(const struct httpd_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->mc, MHD_HEADER_KIND, name);
}

const char *
httpd_req_query(const struct httpd_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->mc, MHD_GET_ARGUMENT_KIND, name);
}

uint64_t
httpd_req_body_bytes(const struct httpd_req *r)
{
	return r->body_bytes;
}

void
httpd_req_set_data(struct httpd_req *r, void *data)
{
	r->data = data;
}

void *
httpd_req_data(const struct httpd_req *r)
{
	return r->data;
}

int
httpd_req_stopping(const struct httpd_req *r)
{
	return atomic_load(&r->srv->stopping);
}

/* ---- libmicrohttpd callbacks ---- */

static void
mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* TCP_NODELAY/TCP_CORK cannot apply to our AF_UNIX socketpairs: harmless. */
	if (strstr(msg, "TCP_NODELAY") != NULL || strstr(msg, "TCP_CORK") != NULL ||
	    strstr(msg, "TCP_NOPUSH") != NULL) {
		return;
	}
	size_t n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
		msg[--n] = '\0';
	}
	log_debug("libmicrohttpd: %s", msg);
}

static void
mhd_notify_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct httpd *srv = cls;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct conn_rec *rec = NULL;
		if (ci != NULL) {
			pthread_mutex_lock(&srv->mtx);
			for (struct pending_rec **pp = &srv->pending; *pp != NULL;
			     pp = &(*pp)->next) {
				if ((*pp)->fd == ci->connect_fd) {
					struct pending_rec *p = *pp;
					*pp = p->next;
					rec = p->rec;
					free(p);
					break;
				}
			}
			pthread_mutex_unlock(&srv->mtx);
		}
		*socket_context = rec;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		rec_unref(*socket_context);
		*socket_context = NULL;
	}
}

static void
req_free(struct httpd_req *r)
{
	if (r == NULL) {
		return;
	}
	if (r->pp != NULL) {
		MHD_destroy_post_processor(r->pp);
	}
	for (size_t i = 0; i < r->nhdrs; i++) {
		free(r->hdrs[i].name);
		free(r->hdrs[i].value);
	}
	free(r->body);
	free(r->path);
	free(r);
}

static void
mhd_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct httpd *srv = cls;
	struct httpd_req *r = *con_cls;

	(void)mc;
	if (r == NULL) {
		return;
	}
	*con_cls = NULL;
	if (r->begun && r->route != NULL && r->route->on_cleanup != NULL) {
		r->route->on_cleanup(r, r->route->arg, r->ended);
	}
	const struct tls_identity *id = &r->rec->id;
	long ms = (long)(mono_ms() - r->started);
	if (r->aborted) {
		log_info("%s: %s %s %u after %zu bytes in (body refused, connection closed), "
			 "%ld ms, peer %s (%s %s)",
		    srv->o.name, r->method, r->path, r->status, (size_t)r->body_bytes, ms,
		    r->rec->peer_ip, tls_role_name(id->role), id->cn);
	} else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
		log_info("%s: %s %s %s from %s (%s): aborted after %ld ms (%s)", srv->o.name,
		    r->method, r->path, r->status ? "answered" : "unanswered", r->rec->peer_ip,
		    id->cn, ms,
		    toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "idle timeout"
		    : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT  ? "client went away"
		    : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "server shutdown"
								    : "error");
	} else if (r->status >= 400 || strcmp(r->method, "GET") != 0) {
		log_info("%s: %s %s %u %zu bytes in, %ld ms, peer %s (%s %s)", srv->o.name,
		    r->method, r->path, r->status, (size_t)r->body_bytes, ms, r->rec->peer_ip,
		    tls_role_name(id->role), id->cn);
	} else {
		log_debug("%s: %s %s %u %ld ms, peer %s (%s)", srv->o.name, r->method, r->path,
		    r->status, ms, r->rec->peer_ip, id->cn);
	}
	atomic_store(&r->rec->req_state, 0);
	if (r->counted) {
		atomic_fetch_sub(&srv->requests, 1);
	}
	req_free(r);
}

static enum MHD_Result
pp_iterator(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
    const char *content_type, const char *transfer_encoding, const char *data, uint64_t off,
    size_t size)
{
	struct httpd_req *r = cls;
	struct httpd_part part;

	(void)kind;
	(void)transfer_encoding;
	if (size == 0 || r->stop_body) {
		return r->stop_body ? MHD_NO : MHD_YES;
	}
	part.name = key != NULL ? key : "";
	part.filename = filename;
	part.content_type = content_type;
	part.offset = off;
	if (r->route->on_data(r, &part, data, size, r->route->arg) != 0) {
		r->stop_body = 1;
		return MHD_NO;
	}
	return MHD_YES;
}

static const struct httpd_route *
route_find(struct httpd *srv, const char *method, const char *path, int *path_known)
{
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;

	*path_known = 0;
	for (size_t i = 0; i < srv->o.nroutes; i++) {
		const struct httpd_route *rt = &srv->o.routes[i];
		if (strcmp(rt->path, path) != 0) {
			continue;
		}
		*path_known = 1;
		if (strcmp(rt->method, m) == 0) {
			return rt;
		}
	}
	return NULL;
}

static int
add_allow_header(struct httpd_req *r)
{
	char allow[128] = "";
	size_t used = 0;

	for (size_t i = 0; i < r->srv->o.nroutes; i++) {
		const struct httpd_route *rt = &r->srv->o.routes[i];
		if (strcmp(rt->path, r->path) != 0) {
			continue;
		}
		int n = snprintf(allow + used, sizeof(allow) - used, "%s%s%s", used ? ", " : "",
		    rt->method, strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
		if (n < 0 || (size_t)n >= sizeof(allow) - used) {
			break;
		}
		used += (size_t)n;
	}
	return httpd_add_header(r, "Allow", allow);
}

/*
 * Decode %XX escapes in the request target and query values like
 * libmicrohttpd does, except that an encoded NUL is left undecoded and
 * flagged: decoded, it would cut the path short ("/rollback%00x" served as
 * "/rollback").
 */
static size_t
mhd_unescape(void *cls, struct MHD_Connection *mc, char *s)
{
	(void)cls;
	if (strstr(s, "%00") != NULL) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		struct conn_rec *rec = ci != NULL ? ci->socket_context : NULL;
		if (rec != NULL) {
			atomic_store(&rec->bad_target, 1);
		}
		return strlen(s);
	}
	return MHD_http_unescape(s);
}

struct framing {
	unsigned n_length;       /* Content-Length headers */
	unsigned n_coding;       /* Transfer-Encoding headers */
	int lengths_differ;
	const char *length;
};

static enum MHD_Result
framing_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct framing *f = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (f->length != NULL && strcmp(f->length, value != NULL ? value : "") != 0) {
			f->lengths_differ = 1;
		}
		f->length = value != NULL ? value : "";
		f->n_length++;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		f->n_coding++;
	}
	return MHD_YES;
}

/*
 * Strict message framing (request smuggling and hanging bodies): a body comes
 * with exactly one Content-Length of plain digits and no Transfer-Encoding.
 * Our clients never send chunked bodies, and libmicrohttpd accepts a chunk
 * size of 2^64-1 and then waits for it, so chunked bodies are refused too.
 * Returns the reason, or NULL when the framing is sound.
 */
static const char *
framing_check(struct MHD_Connection *mc)
{
	struct framing f;

	memset(&f, 0, sizeof(f));
	(void)MHD_get_connection_values(mc, MHD_HEADER_KIND, framing_header, &f);
	if (f.n_coding > 0 && f.n_length > 0) {
		return "both Content-Length and Transfer-Encoding: ambiguous message framing";
	}
	if (f.n_coding > 0) {
		return "Transfer-Encoding is not accepted: send the body with a Content-Length";
	}
	if (f.n_length > 1) {
		return f.lengths_differ ? "conflicting Content-Length headers"
					: "repeated Content-Length header";
	}
	if (f.length != NULL &&
	    (f.length[0] == '\0' || strspn(f.length, "0123456789") != strlen(f.length))) {
		return "invalid Content-Length";
	}
	return NULL;
}

/* First call: decide routing, authorisation and size; never answer yet. */
static struct httpd_req *
req_new(struct httpd *srv, struct MHD_Connection *mc, const char *url, const char *method)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_rec *rec = ci != NULL ? ci->socket_context : NULL;
	struct httpd_req *r;
	int path_known;

	if (rec == NULL) {
		return NULL; /* a connection we did not hand over: refuse */
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		return NULL;
	}
	r->srv = srv;
	r->mc = mc;
	r->rec = rec;
	r->started = mono_ms();
	r->path = strdup(url);
	if (r->path == NULL) {
		free(r);
		return NULL;
	}
	snprintf(r->method, sizeof(r->method), "%s", method);
	if (atomic_exchange(&rec->bad_target, 0) != 0) {
		r->reject_status = 400;
		snprintf(r->reject_msg, sizeof(r->reject_msg),
		    "encoded NUL (%%00) in the request target");
		return r;
	}
	const char *bad = framing_check(mc);
	if (bad != NULL) {
		r->reject_status = 400;
		r->close_conn = 1;
		snprintf(r->reject_msg, sizeof(r->reject_msg), "%s", bad);
		return r;
	}
	r->route = route_find(srv, method, url, &path_known);
	if (r->route == NULL) {
		r->reject_status = path_known ? 405 : 404;
		snprintf(r->reject_msg, sizeof(r->reject_msg), "%s %s: %s", r->method, url,
		    path_known ? "method not allowed" : "no such endpoint");
		r->allow_header = path_known;
		return r;
	}
	/* Fail closed: a route admits a peer with no role only when it says so. */
	unsigned roles = r->route->roles != 0 ? r->route->roles : TLS_ROLES_KNOWN;
	if ((roles & TLS_ROLEBIT(rec->id.role)) == 0) {
		r->reject_status = 403;
		snprintf(r->reject_msg, sizeof(r->reject_msg),
		    "%s %s is not allowed for %s certificate CN=%s", r->method, url,
		    tls_role_name(rec->id.role), rec->id.cn);
		return r;
	}
	const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL) {
		long long v;
		if (parse_ll(cl, 0, INT64_MAX, &v) != 0) {
			r->reject_status = 400;
			snprintf(r->reject_msg, sizeof(r->reject_msg), "invalid Content-Length");
			return r;
		}
		if ((uint64_t)v > r->route->max_body) {
			r->reject_status = 413;
			snprintf(r->reject_msg, sizeof(r->reject_msg),
			    "request body of %lld bytes exceeds the limit of %llu bytes", v,
			    (unsigned long long)r->route->max_body);
			return r;
		}
	}
	if (r->route->multipart) {
		const char *ct = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_TYPE);
		if (ct == NULL || strncasecmp(ct, "multipart/form-data", 19) != 0) {
			r->reject_status = 400;
			snprintf(r->reject_msg, sizeof(r->reject_msg),
			    "expected a multipart/form-data body");
			return r;
		}
		r->pp = MHD_create_post_processor(mc, PP_BUF, pp_iterator, r);
		if (r->pp == NULL) {
			r->reject_status = 400;
			snprintf(r->reject_msg, sizeof(r->reject_msg),
			    "malformed multipart/form-data Content-Type (boundary missing?)");
			return r;
		}
	}
	int deadline = r->route->deadline_ms > 0 ? r->route->deadline_ms
						 : srv->o.request_timeout_ms;
	atomic_store(&rec->req_deadline_ms, deadline);
	atomic_store(&rec->req_state, 2);
	if (rec->wake_fd >= 0) {
		uint64_t one = 1;
		if (write(rec->wake_fd, &one, sizeof(one)) != (ssize_t)sizeof(one) &&
		    errno != EAGAIN) {
			log_warn("%s: waking the relay", srv->o.name);
		}
	}
	return r;
}

static int
req_has_body(struct MHD_Connection *mc)
{
	const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_TRANSFER_ENCODING);

	return (cl != NULL && strcmp(cl, "0") != 0) || te != NULL;
}

static enum MHD_Result
mhd_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct httpd *srv = cls;
	struct httpd_req *r = *con_cls;

	(void)version;
	if (r == NULL) {
		r = req_new(srv, mc, url, method);
		if (r == NULL) {
			return MHD_NO;
		}
		*con_cls = r;
		atomic_fetch_add(&srv->requests, 1);
		r->counted = 1;
		if (r->reject_status != 0) {
			if (r->allow_header && add_allow_header(r) != 0) {
				log_warnx("%s: cannot add Allow header", srv->o.name);
			}
			httpd_respond_error(r, r->reject_status, "%s", r->reject_msg);
			/* With a body pending (or its framing unknown), answer now and
			 * close rather than read it; without one, answer on the next
			 * call to keep the connection. */
			if (req_has_body(mc) || r->close_conn) {
				return req_queue(r, 1);
			}
			return MHD_YES;
		}
		r->begun = 1;
		if (r->route->on_begin != NULL && r->route->on_begin(r, r->route->arg) != 0) {
			if (req_has_body(mc)) {
				return req_queue(r, 1);
			}
			r->stop_body = 1;
		}
		return MHD_YES;
	}

	if (r->reject_status != 0 || (r->stop_body && r->status != 0)) {
		if (*upload_data_size != 0) {
			/* Refused with a body still arriving: answer and close. */
			*upload_data_size = 0;
			return req_abort(r);
		}
		return req_queue(r, 0);
	}

	if (*upload_data_size != 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		r->body_bytes += n;
		if (r->body_bytes > r->route->max_body) {
			httpd_respond_error(r, 413,
			    "request body exceeds the limit of %llu bytes",
			    (unsigned long long)r->route->max_body);
			r->stop_body = 1;
			return req_abort(r);
		}
		if (r->pp != NULL) {
			if (MHD_post_process(r->pp, upload_data, n) != MHD_YES) {
				if (r->status == 0) {
					httpd_respond_error(r, 400,
					    "malformed multipart/form-data body");
				}
				r->stop_body = 1;
				return req_abort(r);
			}
		} else if (r->route->on_data != NULL) {
			if (r->route->on_data(r, NULL, upload_data, n, r->route->arg) != 0) {
				if (r->status == 0) {
					httpd_respond_error(r, 400, "request body refused");
				}
				r->stop_body = 1;
				return req_abort(r);
			}
		} else {
			httpd_respond_error(r, 413, "this endpoint takes no request body");
			r->stop_body = 1;
			return req_abort(r);
		}
		return MHD_YES;
	}

	/* Final call: the whole body has arrived. */
	if (r->pp != NULL) {
		/* Flush the parser: it keeps the tail of the last part buffered. */
		enum MHD_Result fin = MHD_destroy_post_processor(r->pp);
		r->pp = NULL;
		if (r->stop_body || fin != MHD_YES) {
			if (r->status == 0) {
				httpd_respond_error(r, 400,
				    "malformed or truncated multipart/form-data body");
			}
			return req_queue(r, 1);
		}
	}
	if (!r->stop_body) {
		r->route->on_end(r, r->route->arg);
		r->ended = 1;
	}
	return req_queue(r, 0);
}

/* ---- refusal logs ---- */

/*
 * Log refused connections without letting a flood write the disk full: per
 * address and window, the first REFUSAL_BURST refusals are logged in full and
 * the rest counted and summed up in one line ("N connections refused from A
 * in the last T s") when the window ends (refusal_flush, from the accept
 * loop). All addresses together get REFUSAL_ALL_BURST full lines per window;
 * past that, refusals are only counted.
 */
static void
refusal_log_summary(struct httpd *srv, struct refusal *f, int64_t now)
{
	if (f->n > 0) {
		log_warnx("%s: %u connection%s refused from %s in the last %lld s (not logged "
			  "one by one; the last: %s)",
		    srv->o.name, f->n, f->n == 1 ? "" : "s", f->ip,
		    (long long)((now - f->since + 999) / 1000), f->why);
	}
	f->n = 0;
	f->logged = 0;
}

static void
refusal_note(struct httpd *srv, const char *ip, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
refusal_note(struct httpd *srv, const char *ip, const char *fmt, ...)
{
	struct refusal *f = NULL;
	struct refusal *oldest = NULL;
	int64_t now = mono_ms();
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&srv->log_mtx);
	if (now - srv->refusal_since >= REFUSAL_WINDOW_MS) {
		srv->refusal_since = now;
		srv->refusal_lines = 0;
	}
	for (size_t i = 0; i < REFUSAL_TABLE; i++) {
		struct refusal *c = &srv->refusals[i];
		if (c->since != 0 && strcmp(c->ip, ip) == 0) {
			f = c;
			break;
		}
		if (oldest == NULL || c->since < oldest->since) {
			oldest = c;
		}
	}
	if (f == NULL && oldest->since != 0 && srv->refusal_lines >= REFUSAL_ALL_BURST) {
		/* A flood from many addresses: count it without churning the table. */
		srv->refusal_others++;
		pthread_mutex_unlock(&srv->log_mtx);
		return;
	}
	if (f == NULL) {
		f = oldest;
		if (f->since != 0) {
			refusal_log_summary(srv, f, now);
		}
		memset(f, 0, sizeof(*f));
		snprintf(f->ip, sizeof(f->ip), "%s", ip);
		f->since = now;
	} else if (now - f->since >= REFUSAL_WINDOW_MS) {
		refusal_log_summary(srv, f, now);
		f->since = now;
	}
	if (f->logged < REFUSAL_BURST && srv->refusal_lines < REFUSAL_ALL_BURST) {
		f->logged++;
		srv->refusal_lines++;
		log_warnx("%s: connection from %s refused: %s", srv->o.name, ip, why);
	} else {
		f->n++;
		snprintf(f->why, sizeof(f->why), "%s", why);
	}
	pthread_mutex_unlock(&srv->log_mtx);
}

/* Sum up the windows that ended (all of them with FORCE). */
static void
refusal_flush(struct httpd *srv, int force)
{
	int64_t now = mono_ms();

	pthread_mutex_lock(&srv->log_mtx);
	if (srv->refusal_others > 0 &&
	    (force || now - srv->refusal_since >= REFUSAL_WINDOW_MS)) {
		log_warnx("%s: %u more connections refused from other addresses in the last %d s",
		    srv->o.name, srv->refusal_others, REFUSAL_WINDOW_MS / 1000);
		srv->refusal_others = 0;
	}
	for (size_t i = 0; i < REFUSAL_TABLE; i++) {
		struct refusal *c = &srv->refusals[i];
		if (c->since != 0 && (force || now - c->since >= REFUSAL_WINDOW_MS)) {
			refusal_log_summary(srv, c, now);
			c->since = 0;
		}
	}
	pthread_mutex_unlock(&srv->log_mtx);
}

/* ---- admission ---- */

/* Authenticated connections of unprivileged peers per address; mtx held. */
static int
ip_acquire_locked(struct httpd *srv, const char *ip)
{
	struct ip_count *free_slot = NULL;

	for (size_t i = 0; i < IP_TABLE_SIZE; i++) {
		struct ip_count *c = &srv->ips[i];
		if (c->n > 0 && strcmp(c->ip, ip) == 0) {
			if (c->n < srv->o.max_conns_per_ip) {
				c->n++;
				return 1;
			}
			return 0;
		}
		if (c->n == 0 && free_slot == NULL) {
			free_slot = c;
		}
	}
	if (free_slot == NULL) {
		return 0;
	}
	snprintf(free_slot->ip, sizeof(free_slot->ip), "%s", ip);
	free_slot->n = 1;
	return 1;
}

static void
ip_release_locked(struct httpd *srv, const char *ip)
{
	for (size_t i = 0; i < IP_TABLE_SIZE; i++) {
		struct ip_count *c = &srv->ips[i];
		if (c->n > 0 && strcmp(c->ip, ip) == 0) {
			c->n--;
			break;
		}
	}
}

/* 1 if the handshake in slot H has shown no sign of a client yet; mtx held. */
static int
hs_silent(const struct hs_slot *h)
{
	char c;

	if (h->heard) {
		return 0;
	}
	/* The relay marks it heard once it wakes; bytes may already be waiting. */
	return recv(h->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

/*
 * The handshake to evict for a newcomer: the oldest silent one (a client
 * that sent nothing; from IP only, unless NULL), else, unless SILENT_ONLY,
 * the oldest one. -1 if there is none. mtx held.
 */
static int
hs_victim(struct httpd *srv, const char *ip, int silent_only)
{
	int silent = -1;
	int any = -1;

	for (unsigned i = 0; i < srv->hs_cap; i++) {
		const struct hs_slot *h = &srv->hs[i];
		if (!h->used || h->evicted || (ip != NULL && strcmp(h->ip, ip) != 0)) {
			continue;
		}
		if (any < 0 || h->started < srv->hs[any].started) {
			any = (int)i;
		}
		if ((silent < 0 || h->started < srv->hs[silent].started) && hs_silent(h)) {
			silent = (int)i;
		}
	}
	return silent >= 0 || silent_only ? silent : any;
}

/*
 * Admit a new TCP connection to the handshake stage, evicting an older
 * handshake when its address holds max_conns_per_ip silent ones (the oldest
 * of those goes) or the server runs max_handshakes (the oldest silent one
 * goes, else the oldest); the evicted relay's socket is shut down, so its
 * handshake fails at once. Handshakes that are under way are only evicted
 * when nothing silent is left: a client with a certificate sends its
 * ClientHello at once and is past the silent stage in a round trip.
 * Returns the slot, or -1 when even the lingering evicted slots fill the
 * table (the caller refuses the connection).
 */
static int
hs_admit(struct httpd *srv, int fd, const char *ip, int *evicted, char *victim_ip,
    size_t victim_len)
{
	unsigned live = 0;
	unsigned ip_silent = 0;
	int slot = -1;
	int v = -1;

	*evicted = 0;
	pthread_mutex_lock(&srv->mtx);
	for (unsigned i = 0; i < srv->hs_cap; i++) {
		const struct hs_slot *h = &srv->hs[i];
		if (h->used && !h->evicted) {
			live++;
			if (strcmp(h->ip, ip) == 0 && hs_silent(h)) {
				ip_silent++;
			}
		}
	}
	if (ip_silent >= srv->o.max_conns_per_ip) {
		v = hs_victim(srv, ip, 1);
	} else if (live >= srv->o.max_handshakes) {
		v = hs_victim(srv, NULL, 0);
	}
	if (v >= 0) {
		struct hs_slot *h = &srv->hs[v];
		/* The relay owns the fd and frees the slot before closing it. */
		(void)shutdown(h->fd, SHUT_RDWR);
		h->evicted = 1;
		*evicted = 1;
		snprintf(victim_ip, victim_len, "%s", h->ip);
	}
	for (unsigned i = 0; i < srv->hs_cap; i++) {
		if (!srv->hs[i].used) {
			slot = (int)i;
			break;
		}
	}
	if (slot >= 0) {
		struct hs_slot *h = &srv->hs[slot];
		memset(h, 0, sizeof(*h));
		h->used = 1;
		h->fd = fd;
		h->started = mono_ms();
		snprintf(h->ip, sizeof(h->ip), "%s", ip);
	}
	pthread_mutex_unlock(&srv->mtx);
	return slot;
}

/* The relay is past its handshake: free SLOT. Returns 1 if it was evicted. */
static int
hs_release(struct httpd *srv, int slot)
{
	int evicted;

	pthread_mutex_lock(&srv->mtx);
	evicted = srv->hs[slot].evicted;
	memset(&srv->hs[slot], 0, sizeof(srv->hs[slot]));
	srv->hs[slot].fd = -1;
	pthread_mutex_unlock(&srv->mtx);
	return evicted;
}

/* The client sent its first bytes; 0 if the slot was evicted meanwhile. */
static int
hs_heard(struct httpd *srv, int slot)
{
	int ok;

	pthread_mutex_lock(&srv->mtx);
	ok = !srv->hs[slot].evicted;
	srv->hs[slot].heard = 1;
	pthread_mutex_unlock(&srv->mtx);
	return ok;
}

/*
 * An authenticated peer takes a connection: privileged roles may use all
 * max_conns, the others max_conns - reserved_conns and max_conns_per_ip per
 * address. Returns 1 if admitted.
 */
static int
auth_admit(struct httpd *srv, const struct tls_identity *id, const char *ip, int *privileged)
{
	int ok;

	*privileged = (srv->o.privileged_roles & TLS_ROLEBIT(id->role)) != 0;
	pthread_mutex_lock(&srv->mtx);
	if (*privileged) {
		ok = srv->auth < srv->o.max_conns;
	} else {
		ok = srv->auth + srv->o.reserved_conns < srv->o.max_conns &&
		     ip_acquire_locked(srv, ip);
	}
	if (ok) {
		srv->auth++;
	}
	pthread_mutex_unlock(&srv->mtx);
	return ok;
}

static void
auth_release(struct httpd *srv, const char *ip, int privileged)
{
	pthread_mutex_lock(&srv->mtx);
	srv->auth--;
	if (!privileged) {
		ip_release_locked(srv, ip);
	}
	pthread_mutex_unlock(&srv->mtx);
}

/*
 * A whole HTTP response carrying our JSON error object (MSG, a fixed text
 * without quotes or backslashes) in SRV's error style, with Connection:
 * close and EXTRA_HEADERS ("" or lines ending in CRLF), for the answers
 * that bypass libmicrohttpd. Returns its length, or -1 if it does not fit.
 */
static int
raw_error_response(const struct httpd *srv, unsigned status, const char *msg,
    const char *extra_headers, char *out, size_t cap)
{
	char body[256];
	int n;

	n = snprintf(body, sizeof(body), "{\"detail\":{\"error\":\"%s\"%s}}\n", msg,
	    srv->o.error_style == HTTPD_ERRORS_UPDATER ? ",\"stderr\":\"\",\"rolled_back\":false"
						       : "");
	if (n < 0 || (size_t)n >= sizeof(body)) {
		return -1;
	}
	n = snprintf(out, cap,
	    "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
	    "%sConnection: close\r\n\r\n%s",
	    status, MHD_get_reason_phrase_for(status), n, extra_headers, body);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* Tell a peer we have no room for it (503, JSON, close), best effort. */
static void
auth_refuse(struct httpd *srv, struct tls_conn *tls)
{
	char resp[512];
	struct err e = ERR_INIT;
	int n = raw_error_response(srv, 503, "server busy: every connection is taken, try again",
	    "Retry-After: 1\r\n", resp, sizeof(resp));

	if (n > 0 && tls_write_all_deadline(tls, resp, (size_t)n, mono_ms() + 1000, &e) == 0) {
		tls_close_notify(tls);
	}
}

/* ---- the relay ---- */

struct relay_arg {
	struct httpd *srv;
	int fd;
	int slot;                     /* in srv->hs until the handshake ends */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char ip[INET6_ADDRSTRLEN];
};

struct relay {
	struct tls_conn *tls;
	int sp;
	unsigned char c2s[RELAY_BUF]; /* client -> libmicrohttpd */
	size_t c2s_len, c2s_off;
	unsigned char s2c[RELAY_BUF]; /* libmicrohttpd -> client */
	size_t s2c_len, s2c_off;
	ssize_t write_want;           /* pending tls_write: TLS_WANT_* or 0 */
	ssize_t read_want;
	int client_eof;
	int mhd_eof;
	int sp_closed;                /* libmicrohttpd stopped reading */
	int64_t stop_at;              /* shutting down: deliver what MHD wrote until then */
	int64_t last_progress;        /* mono_ms() of the last byte moved either way */
};

/* The deadline that applies now, or -1 for none (MHD's idle timeout rules). */
static int64_t
relay_deadline(struct httpd *srv, struct conn_rec *rec)
{
	int st = atomic_load(&rec->req_state);
	int64_t start = atomic_load(&rec->req_started);

	if (st == 1) {
		return start + srv->o.header_timeout_ms;
	}
	if (st == 2) {
		return start + atomic_load(&rec->req_deadline_ms);
	}
	return -1;
}

/*
 * libmicrohttpd answers requests it cannot parse (400, 413, 414, 431, 505...)
 * itself, with a fixed HTML page and no Content-Type, then closes. Every
 * response of ours has a Content-Type, so a response from libmicrohttpd
 * without one is its own: replace it with our JSON error object (same
 * status, Connection: close) and drop the rest of what it writes.
 * Returns 1 if RL's buffer now holds the replacement.
 */
static int
relay_fix_mhd_error(struct httpd *srv, struct relay *rl)
{
	const char *b = (const char *)rl->s2c;
	size_t len = rl->s2c_len;
	unsigned status = 0;
	int n;

	if (len < 12 || memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ') {
		return 0;
	}
	for (int i = 9; i < 12; i++) {
		if (b[i] < '0' || b[i] > '9') {
			return 0;
		}
		status = status * 10 + (unsigned)(b[i] - '0');
	}
	if (status < 400) {
		return 0;
	}
	const char *end = memmem(b, len, "\r\n\r\n", 4);
	if (end == NULL) {
		return 0;
	}
	for (const char *p = memchr(b, '\n', (size_t)(end - b)); p != NULL && p < end;
	     p = memchr(p + 1, '\n', (size_t)(end - p))) {
		if ((size_t)(end - p) > 13 && strncasecmp(p + 1, "Content-Type:", 13) == 0) {
			return 0;
		}
	}
	n = raw_error_response(srv, status, status_reason(status), "", (char *)rl->s2c,
	    sizeof(rl->s2c));
	rl->s2c_len = n > 0 ? (size_t)n : 0;
	rl->s2c_off = 0;
	log_info("%s: libmicrohttpd refused a request with %u (%s)", srv->o.name,
	    status, status_reason(status));
	return 1;
}

static const char *
relay_run(struct httpd *srv, struct conn_rec *rec, struct relay *rl)
{
	for (;;) {
		int progress = 0;

		if (rl->stop_at != 0 && ms_until(rl->stop_at) == 0) {
			return "server shutting down";
		}
		/* 1. libmicrohttpd -> client, finishing any pending write first. */
		while (rl->s2c_off < rl->s2c_len) {
			ssize_t n = tls_write(rl->tls, rl->s2c + rl->s2c_off,
			    rl->s2c_len - rl->s2c_off);
			if (n > 0) {
				rl->s2c_off += (size_t)n;
				progress = 1;
				continue;
			}
			if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
				rl->write_want = n;
				break;
			}
			return "TLS write failed";
		}
		if (rl->s2c_off == rl->s2c_len) {
			rl->s2c_off = rl->s2c_len = 0;
			rl->write_want = 0;
		}
		/* 2. client -> buffer; never read while a write is pending, and drain
		 * mbedTLS's buffered records before sleeping in poll(). */
		rl->read_want = 0;
		while (rl->write_want == 0 && !rl->client_eof && rl->stop_at == 0 &&
		    rl->c2s_len < sizeof(rl->c2s)) {
			ssize_t n = tls_read(rl->tls, rl->c2s + rl->c2s_len,
			    sizeof(rl->c2s) - rl->c2s_len);
			if (n > 0) {
				if (atomic_load(&rec->req_state) == 0) {
					atomic_store(&rec->req_started, mono_ms());
					atomic_store(&rec->req_state, 1);
				}
				rl->c2s_len += (size_t)n;
				progress = 1;
				continue;
			}
			if (n == 0) {
				rl->client_eof = 1;
				break;
			}
			if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
				rl->read_want = n;
				break;
			}
			return "TLS read failed (reset or bad record)";
		}
		/* 3. buffer -> libmicrohttpd. */
		if (rl->sp_closed) {
			rl->c2s_off = rl->c2s_len = 0;
		}
		while (rl->c2s_off < rl->c2s_len) {
			ssize_t n = send(rl->sp, rl->c2s + rl->c2s_off, rl->c2s_len - rl->c2s_off,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				rl->c2s_off += (size_t)n;
				progress = 1;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				break;
			}
			/* libmicrohttpd closed its end (a refusal sent with close): drop
			 * the client's bytes, but keep reading the response it wrote. */
			rl->sp_closed = 1;
			rl->c2s_off = rl->c2s_len = 0;
			break;
		}
		if (rl->c2s_off == rl->c2s_len) {
			rl->c2s_off = rl->c2s_len = 0;
		}
		/* 4. libmicrohttpd -> buffer. */
		if (rl->s2c_len == 0 && !rl->mhd_eof) {
			ssize_t n = recv(rl->sp, rl->s2c, sizeof(rl->s2c), MSG_DONTWAIT);
			if (n > 0) {
				rl->s2c_len = (size_t)n;
				progress = 1;
				if (relay_fix_mhd_error(srv, rl)) {
					/* libmicrohttpd closes after its error: the rest
					 * of its page is not sent, the client is done. */
					rl->mhd_eof = 1;
					rl->sp_closed = 1;
					rl->c2s_len = rl->c2s_off = 0;
				}
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				rl->mhd_eof = 1;
			}
		}
		if (rl->mhd_eof && rl->s2c_len == 0) {
			char *ab = atomic_exchange(&rec->abort_resp, NULL);
			if (ab != NULL) {
				size_t n = rec->abort_len < sizeof(rl->s2c) ? rec->abort_len
									   : sizeof(rl->s2c);
				memcpy(rl->s2c, ab, n);
				free(ab);
				rl->s2c_len = n;
				rl->s2c_off = 0;
				rl->c2s_len = rl->c2s_off = 0;
				rl->sp_closed = 1;
				continue;
			}
			return NULL; /* response done and connection closed by MHD */
		}
		if (rl->client_eof && rl->c2s_len == 0) {
			/* Never half-close toward libmicrohttpd: close fully (PITFALLS). */
			return NULL;
		}
		if (progress) {
			rl->last_progress = mono_ms();
			continue;
		}
		if (rl->stop_at != 0 && rl->s2c_len == 0) {
			return "server shutting down";
		}

		struct pollfd pfd[4];
		short tev = 0;
		if (rl->write_want == TLS_WANT_WRITE || rl->read_want == TLS_WANT_WRITE) {
			tev |= POLLOUT;
		}
		if (rl->write_want == TLS_WANT_READ ||
		    (rl->write_want == 0 && rl->read_want == TLS_WANT_READ &&
			rl->c2s_len < sizeof(rl->c2s))) {
			tev |= POLLIN;
		}
		pfd[0].fd = tls_fd(rl->tls);
		pfd[0].events = tev;
		pfd[1].events = (short)((rl->c2s_len > 0 ? POLLOUT : 0) |
					(rl->s2c_len == 0 ? POLLIN : 0));
		/* Nothing wanted from libmicrohttpd: leave it out, or a hang-up on
		 * its end would make poll() return at once, again and again. */
		pfd[1].fd = pfd[1].events != 0 ? rl->sp : -1;
		/* The stop eventfd stays readable: stop polling it once seen. */
		pfd[2].fd = rl->stop_at == 0 ? srv->wake_fd : -1;
		pfd[2].events = POLLIN;
		pfd[3].fd = rec->wake_fd;
		pfd[3].events = POLLIN;
		int64_t dl = relay_deadline(srv, rec);
		int timeout = -1;
		if (dl >= 0) {
			timeout = ms_until(dl);
			if (timeout == 0) {
				return atomic_load(&rec->req_state) == 1
					   ? "request headers not received in time"
					   : "request deadline exceeded";
			}
		}
		/*
		 * A client that stops reading a response: libmicrohttpd times out
		 * and goes, but the relay would wait on the client forever. Apply
		 * the idle timeout to undelivered output too.
		 */
		if (rl->s2c_len > 0 && srv->o.idle_timeout_s > 0) {
			int64_t wdl = rl->last_progress + (int64_t)srv->o.idle_timeout_s * 1000;
			if (ms_until(wdl) == 0) {
				return "client stopped reading the response";
			}
			if (timeout < 0 || ms_until(wdl) < timeout) {
				timeout = ms_until(wdl);
			}
		}
		if (rl->stop_at != 0 && (timeout < 0 || ms_until(rl->stop_at) < timeout)) {
			timeout = ms_until(rl->stop_at);
		}
		int pr = poll(pfd, 4, timeout);
		if (pr < 0 && errno != EINTR) {
			return "poll failed";
		}
		if (pr > 0 && (pfd[3].revents & POLLIN) != 0) {
			uint64_t v;
			/* Drain it; the loop re-reads the request state and deadline. */
			if (read(rec->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
				return "reading the relay's eventfd failed";
			}
		}
		if (pr > 0 && (pfd[2].revents & POLLIN) != 0) {
			/*
			 * httpd_stop wakes us only once no request is in flight, but
			 * the last response may still sit in the socketpair: deliver
			 * it (bounded) instead of cutting it off.
			 */
			if (rl->s2c_len == 0 && (pfd[1].revents & POLLIN) == 0) {
				return "server shutting down";
			}
			rl->stop_at = mono_ms() + 1000;
		}
		if ((pfd[0].revents & (POLLERR | POLLNVAL)) != 0) {
			return "client socket error";
		}
		if ((pfd[0].revents & POLLHUP) != 0 && (tev & POLLIN) == 0) {
			return "client hung up";
		}
	}
}

/*
 * The server closed first (e.g. a 413 while the client was still uploading):
 * send close_notify, half-close TCP and drain the client for a moment so the
 * kernel does not answer its unread bytes with a reset that destroys the
 * response in flight (the classic lingering close).
 */
static void
relay_linger(struct relay *rl)
{
	unsigned char sink[16384];
	int fd = tls_fd(rl->tls);
	int64_t deadline = mono_ms() + 2000;
	struct pollfd pfd;

	tls_close_notify(rl->tls);
	(void)shutdown(fd, SHUT_WR);
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (ms_until(deadline) > 0) {
		pfd.revents = 0;
		if (poll(&pfd, 1, ms_until(deadline)) <= 0) {
			break;
		}
		ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			break;
		}
	}
}

static void *
relay_thread(void *p)
{
	struct relay_arg *ra = p;
	struct httpd *srv = ra->srv;
	struct conn_rec *rec = NULL;
	struct relay *rl = NULL;
	struct tls_conn *tls = NULL;
	struct tls_ctx *ctx;
	struct tls_identity id;
	int sp[2] = { -1, -1 };
	struct err e = ERR_INIT;
	int rc;
	int admitted = 0;
	int privileged = 0;
	int evicted;

	/*
	 * TLS handshakes are ping-pongs of small records: without TCP_NODELAY,
	 * Nagle plus delayed ACKs stall each flight (~3x fewer handshakes/s).
	 * Best effort: a failure only costs latency.
	 */
	{
		int one = 1;
		if (setsockopt(ra->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
			log_debug("%s: TCP_NODELAY: %s", srv->o.name, strerror(errno));
		}
	}
	pthread_mutex_lock(&srv->mtx);
	ctx = tls_ctx_ref(srv->o.tls);
	pthread_mutex_unlock(&srv->mtx);
	/*
	 * Until the client sends its first bytes its handshake counts as silent,
	 * the first to be evicted when handshake slots run out (hs_admit).
	 */
	{
		struct pollfd pfd;
		int hs_ms = tls_ctx_handshake_timeout(ctx);
		pfd.fd = ra->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		int pr = poll(&pfd, 1, hs_ms);
		if (pr <= 0 || !hs_heard(srv, ra->slot)) {
			evicted = hs_release(srv, ra->slot);
			if (!atomic_load(&srv->stopping)) {
				if (evicted) {
					refusal_note(srv, ra->ip, "silent connection evicted: the "
								  "handshake slots were full");
				} else {
					refusal_note(srv, ra->ip,
					    "TLS handshake: timed out after %d ms (nothing sent)",
					    hs_ms);
				}
			}
			tls_ctx_free(ctx);
			close(ra->fd);
			goto out;
		}
	}
	rc = tls_accept(ctx, ra->fd, &tls, &id, &e);
	tls_ctx_free(ctx); /* the connection keeps its own reference */
	evicted = hs_release(srv, ra->slot);
	if (rc != 0) {
		if (!atomic_load(&srv->stopping)) {
			refusal_note(srv, ra->ip, "%s",
			    evicted ? "handshake evicted: the handshake slots were full"
				    : err_msg(&e));
		}
		close(ra->fd);
		goto out;
	}
	if (!auth_admit(srv, &id, ra->ip, &privileged)) {
		refusal_note(srv, ra->ip,
		    "%s certificate CN=%s: busy, every connection open to its role is taken (503)",
		    tls_role_name(id.role), id.cn);
		auth_refuse(srv, tls);
		goto out;
	}
	admitted = 1;
	log_debug("%s: %s connected as %s (%s)%s", srv->o.name, ra->ip, id.cn,
	    tls_role_name(id.role), id.resumed ? " [resumed]" : "");
	if (id.role == TLS_ROLE_UNKNOWN) {
		log_info("%s: %s connected with CN=\"%s\" OU=\"%s\", which maps to no role: "
			 "only routes open to any client answer it, the others say 403",
		    srv->o.name, ra->ip, id.cn, id.ou);
	}
	rec = calloc(1, sizeof(*rec));
	if (rec != NULL) {
		/* Ready for rec_unref at "out" whatever fails next. */
		atomic_store(&rec->refs, 1);
		rec->wake_fd = -1;
	}
	rl = calloc(1, sizeof(*rl));
	if (rec == NULL || rl == NULL) {
		log_warnx("%s: out of memory for connection from %s", srv->o.name, ra->ip);
		goto out;
	}
	rec->id = id;
	snprintf(rec->peer_ip, sizeof(rec->peer_ip), "%s", ra->ip);
	rec->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rec->wake_fd < 0) {
		log_warn("%s: eventfd", srv->o.name);
		goto out;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		log_warn("%s: socketpair", srv->o.name);
		goto out;
	}
	struct pending_rec *pr = malloc(sizeof(*pr));
	if (pr == NULL) {
		goto out;
	}
	pr->fd = sp[1];
	pr->rec = rec;
	atomic_fetch_add(&rec->refs, 1); /* the MHD side's reference */
	pthread_mutex_lock(&srv->mtx);
	pr->next = srv->pending;
	srv->pending = pr;
	pthread_mutex_unlock(&srv->mtx);
	if (MHD_add_connection(srv->mhd, sp[1], (const struct sockaddr *)&ra->addr,
		ra->addrlen) != MHD_YES) {
		/* MHD closed sp[1] already; take back the record if still pending. */
		int found = 0;
		pthread_mutex_lock(&srv->mtx);
		for (struct pending_rec **pp = &srv->pending; *pp != NULL; pp = &(*pp)->next) {
			if ((*pp)->fd == sp[1]) {
				struct pending_rec *x = *pp;
				*pp = x->next;
				free(x);
				found = 1;
				break;
			}
		}
		pthread_mutex_unlock(&srv->mtx);
		if (found) {
			rec_unref(rec);
		}
		sp[1] = -1;
		log_warnx("%s: libmicrohttpd refused the connection from %s", srv->o.name,
		    ra->ip);
		goto out;
	}
	sp[1] = -1; /* owned by libmicrohttpd now */
	rl->tls = tls;
	rl->sp = sp[0];
	rl->last_progress = mono_ms();
	const char *why = relay_run(srv, rec, rl);
	if (why != NULL) {
		log_info("%s: closing connection from %s (%s): %s", srv->o.name, ra->ip, id.cn,
		    why);
	} else if (rl->mhd_eof && !rl->client_eof) {
		relay_linger(rl);
	}
out:
	if (sp[0] >= 0) {
		close(sp[0]);
	}
	if (sp[1] >= 0) {
		close(sp[1]);
	}
	tls_close(tls);
	rec_unref(rec);
	free(rl);
	if (admitted) {
		auth_release(srv, ra->ip, privileged);
	}
	free(ra);
	pthread_mutex_lock(&srv->mtx);
	if (atomic_fetch_sub(&srv->conns, 1) == 1) {
		pthread_cond_broadcast(&srv->relays_done);
	}
	pthread_mutex_unlock(&srv->mtx);
	return NULL;
}

static void *
accept_thread(void *p)
{
	struct httpd *srv = p;

	for (;;) {
		struct pollfd pfd[2];
		pfd[0].fd = srv->listen_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = srv->accept_wake_fd;
		pfd[1].events = POLLIN;
		/* Wake at least every second to sum up refusal logs. */
		int pr = poll(pfd, 2, 1000);
		refusal_flush(srv, 0);
		if (pr < 0) {
			if (errno == EINTR) {
				continue;
			}
			log_warn("%s: poll on listening socket", srv->o.name);
			break;
		}
		if (pfd[1].revents & POLLIN) {
			break;
		}
		if ((pfd[0].revents & POLLIN) == 0) {
			continue;
		}
		struct relay_arg *ra = calloc(1, sizeof(*ra));
		if (ra == NULL) {
			continue;
		}
		ra->srv = srv;
		ra->addrlen = sizeof(ra->addr);
		ra->fd = accept4(srv->listen_fd, (struct sockaddr *)&ra->addr, &ra->addrlen,
		    SOCK_CLOEXEC);
		if (ra->fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				log_warn("%s: accept", srv->o.name);
			}
			free(ra);
			continue;
		}
		if (ra->addr.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ra->addr)->sin6_addr, ra->ip,
			    sizeof(ra->ip));
		} else {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ra->addr)->sin_addr, ra->ip,
			    sizeof(ra->ip));
		}
		{
			char victim[INET6_ADDRSTRLEN];
			int ev;
			ra->slot = hs_admit(srv, ra->fd, ra->ip, &ev, victim, sizeof(victim));
			if (ra->slot < 0) {
				refusal_note(srv, ra->ip, "every handshake slot is taken");
				close(ra->fd);
				free(ra);
				continue;
			}
			if (ev) {
				log_debug("%s: a handshake from %s evicted for %s", srv->o.name,
				    victim, ra->ip);
			}
		}
		atomic_fetch_add(&srv->conns, 1);
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		/* The relay needs little stack: its buffers live on the heap. */
		pthread_attr_setstacksize(&attr, 256 * 1024);
		if (pthread_create(&t, &attr, relay_thread, ra) != 0) {
			log_warnx("%s: cannot start a thread for %s", srv->o.name, ra->ip);
			atomic_fetch_sub(&srv->conns, 1);
			(void)hs_release(srv, ra->slot);
			close(ra->fd);
			free(ra);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

void
httpd_opts_init(struct httpd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->listen_fd = -1;
	o->name = "httpd";
	o->max_conns = 64;
	o->max_conns_per_ip = 16;
	o->privileged_roles = TLS_ROLEBIT(TLS_ROLE_MASTER) | TLS_ROLEBIT(TLS_ROLE_UPDATER);
	o->reserved_conns = UINT_MAX; /* max_conns / 4, decided in httpd_start */
	o->idle_timeout_s = 30;
	o->header_timeout_ms = 10000;
	o->request_timeout_ms = 60000;
}

int
httpd_start(const struct httpd_opts *o, struct httpd **out, struct err *e)
{
	struct httpd *srv;

	if (o->tls == NULL && o->listen_fd != HTTPD_NO_LISTEN) {
		err_set(e, ERR_INTERNAL, "httpd needs a TLS server context");
		return -1;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	srv->o = *o;
	if (srv->o.max_conns == 0) {
		srv->o.max_conns = 1;
	}
	if (srv->o.reserved_conns == UINT_MAX) {
		srv->o.reserved_conns = srv->o.max_conns > 1 ? srv->o.max_conns / 4 : 0;
		if (srv->o.reserved_conns == 0 && srv->o.max_conns > 1) {
			srv->o.reserved_conns = 1;
		}
	}
	if (srv->o.reserved_conns >= srv->o.max_conns) {
		srv->o.reserved_conns = srv->o.max_conns - 1;
	}
	if (srv->o.max_handshakes == 0) {
		srv->o.max_handshakes = 2 * srv->o.max_conns;
	}
	srv->hs_cap = 2 * srv->o.max_handshakes;
	srv->hs = calloc(srv->hs_cap, sizeof(*srv->hs));
	if (srv->hs == NULL) {
		free(srv);
		return err_set(e, ERR_NOMEM, "out of memory");
	}
	for (unsigned i = 0; i < srv->hs_cap; i++) {
		srv->hs[i].fd = -1;
	}
	pthread_mutex_init(&srv->log_mtx, NULL);
	/* Our own reference: httpd_set_tls() may swap it while we run. */
	if (srv->o.tls != NULL) {
		srv->o.tls = tls_ctx_ref(srv->o.tls);
	}
	srv->listen_fd = -1;
	srv->wake_fd = -1;
	srv->accept_wake_fd = -1;
	pthread_mutex_init(&srv->mtx, NULL);
	pthread_cond_init(&srv->relays_done, NULL);
	/* A peer that vanishes must not kill the process: MSG_NOSIGNAL everywhere,
	 * and SIGPIPE ignored for libmicrohttpd's own writes. */
	signal(SIGPIPE, SIG_IGN);

	if (o->listen_fd == HTTPD_NO_LISTEN) {
		srv->listen_fd = -1;
	} else if (o->listen_fd >= 0) {
		srv->listen_fd = o->listen_fd;
		if (sock_port(srv->listen_fd, &srv->port, e) != 0) {
			err_prefix(e, "inherited listening socket");
			goto fail;
		}
	} else {
		srv->listen_fd = sock_listen(o->listen != NULL ? o->listen : "127.0.0.1:0",
		    &srv->port, e);
		if (srv->listen_fd < 0) {
			goto fail;
		}
	}
	srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	srv->accept_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->wake_fd < 0 || srv->accept_wake_fd < 0) {
		err_sys(e, "eventfd");
		goto fail;
	}
	srv->mhd = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC |
					MHD_USE_INTERNAL_POLLING_THREAD |
					MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
	    0, NULL, NULL, mhd_access, srv,
	    /* The logger must come first to catch errors from the options below. */
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv, MHD_OPTION_NOTIFY_CONNECTION,
	    mhd_notify_connection, srv, MHD_OPTION_NOTIFY_COMPLETED, mhd_completed, srv,
	    MHD_OPTION_UNESCAPE_CALLBACK, mhd_unescape, srv,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MHD_MEM_LIMIT,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)o->idle_timeout_s,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)o->max_conns + 4, MHD_OPTION_END);
	if (srv->mhd == NULL) {
		err_set(e, ERR_INTERNAL, "libmicrohttpd failed to start");
		goto fail;
	}
	if (srv->listen_fd >= 0) {
		if (pthread_create(&srv->accept_thread, NULL, accept_thread, srv) != 0) {
			err_set(e, ERR_INTERNAL, "cannot start the accept thread");
			goto fail;
		}
		srv->accept_running = 1;
	}
	if (srv->listen_fd >= 0) {
		log_info("%s: listening on %s (port %d)", o->name,
	    o->listen_fd >= 0 ? "an inherited socket" : (o->listen ? o->listen : "127.0.0.1:0"),
	    srv->port);
	}
	*out = srv;
	return 0;
fail:
	if (srv->mhd != NULL) {
		MHD_stop_daemon(srv->mhd);
	}
	if (srv->listen_fd >= 0 && o->listen_fd == -1) {
		close(srv->listen_fd);
	}
	if (srv->wake_fd >= 0) {
		close(srv->wake_fd);
	}
	if (srv->accept_wake_fd >= 0) {
		close(srv->accept_wake_fd);
	}
	pthread_mutex_destroy(&srv->mtx);
	pthread_cond_destroy(&srv->relays_done);
	pthread_mutex_destroy(&srv->log_mtx);
	tls_ctx_free(srv->o.tls);
	free(srv->hs);
	free(srv);
	return -1;
}

void
httpd_stop_accepting(struct httpd *srv)
{
	uint64_t one = 1;

	if (srv == NULL || !srv->accept_running) {
		return;
	}
	if (write(srv->accept_wake_fd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
		log_warn("%s: waking the accept thread", srv->o.name);
	}
	pthread_join(srv->accept_thread, NULL);
	srv->accept_running = 0;
}

void
httpd_stop(struct httpd *srv, int grace_ms, int keep_listen_fd)
{
	uint64_t one = 1;

	if (srv == NULL) {
		return;
	}
	httpd_stop_accepting(srv);
	atomic_store(&srv->stopping, 1);
	/* Let in-flight requests finish (bounded); idle keep-alives do not count. */
	int64_t deadline = mono_ms() + (grace_ms > 0 ? grace_ms : 0);
	while (atomic_load(&srv->requests) > 0 && ms_until(deadline) > 0) {
		struct pollfd none;
		none.fd = -1;
		none.events = 0;
		(void)poll(&none, 1, 10);
	}
	if (atomic_load(&srv->requests) > 0) {
		log_warnx("%s: %u request(s) still running after %d ms; cutting them", srv->o.name,
		    atomic_load(&srv->requests), grace_ms);
	}
	/* Cut the handshakes still running: nobody will serve them. */
	pthread_mutex_lock(&srv->mtx);
	for (unsigned i = 0; i < srv->hs_cap; i++) {
		if (srv->hs[i].used && !srv->hs[i].evicted) {
			(void)shutdown(srv->hs[i].fd, SHUT_RDWR);
			srv->hs[i].evicted = 1;
		}
	}
	pthread_mutex_unlock(&srv->mtx);
	/* Wake every relay: they close their socketpair ends and TLS sockets,
	 * so libmicrohttpd's connection threads see EOF and end. */
	if (write(srv->wake_fd, &one, sizeof(one)) != (ssize_t)sizeof(one)) {
		log_warn("%s: waking relays", srv->o.name);
	}
	pthread_mutex_lock(&srv->mtx);
	while (atomic_load(&srv->conns) > 0) {
		pthread_cond_wait(&srv->relays_done, &srv->mtx);
	}
	pthread_mutex_unlock(&srv->mtx);
	MHD_stop_daemon(srv->mhd);
	while (srv->pending != NULL) {
		struct pending_rec *p = srv->pending;
		srv->pending = p->next;
		rec_unref(p->rec);
		free(p);
	}
	if (!keep_listen_fd && srv->listen_fd >= 0) {
		close(srv->listen_fd);
	}
	close(srv->wake_fd);
	close(srv->accept_wake_fd);
	refusal_flush(srv, 1);
	pthread_mutex_destroy(&srv->mtx);
	pthread_cond_destroy(&srv->relays_done);
	pthread_mutex_destroy(&srv->log_mtx);
	log_info("%s: stopped", srv->o.name);
	tls_ctx_free(srv->o.tls);
	free(srv->hs);
	free(srv);
}

void
httpd_set_tls(struct httpd *srv, struct tls_ctx *tls)
{
	struct tls_ctx *old;

	tls_ctx_ref(tls);
	pthread_mutex_lock(&srv->mtx);
	old = srv->o.tls;
	srv->o.tls = tls;
	pthread_mutex_unlock(&srv->mtx);
	/* Connections still using OLD hold their own references. */
	tls_ctx_free(old);
}

int
httpd_inject_connection(struct httpd *srv, int fd, const struct tls_identity *id)
{
	struct conn_rec *rec = calloc(1, sizeof(*rec));
	struct pending_rec *pr = malloc(sizeof(*pr));
	struct sockaddr_in sin;

	if (rec == NULL || pr == NULL) {
		free(rec);
		free(pr);
		close(fd);
		return -1;
	}
	rec->id = *id;
	rec->wake_fd = -1;
	snprintf(rec->peer_ip, sizeof(rec->peer_ip), "127.0.0.1");
	atomic_store(&rec->refs, 1); /* the MHD side's reference only */
	pr->fd = fd;
	pr->rec = rec;
	pthread_mutex_lock(&srv->mtx);
	pr->next = srv->pending;
	srv->pending = pr;
	pthread_mutex_unlock(&srv->mtx);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (MHD_add_connection(srv->mhd, fd, (const struct sockaddr *)&sin, sizeof(sin)) !=
	    MHD_YES) {
		pthread_mutex_lock(&srv->mtx);
		for (struct pending_rec **pp = &srv->pending; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == pr) {
				*pp = pr->next;
				rec_unref(pr->rec);
				free(pr);
				break;
			}
		}
		pthread_mutex_unlock(&srv->mtx);
		return -1;
	}
	return 0;
}

int
httpd_port(const struct httpd *srv)
{
	return srv->port;
}

int
httpd_listen_fd(const struct httpd *srv)
{
	return srv->listen_fd;
}

unsigned
httpd_active_connections(const struct httpd *srv)
{
	return atomic_load(&srv->conns);
}

unsigned
httpd_active_requests(const struct httpd *srv)
{
	return atomic_load(&srv->requests);
}
