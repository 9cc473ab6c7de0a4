#include "common/httpc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <http_parser.h>

#include "common/log.h"
#include "common/version.h"

#define HTTPC_READ_BUF 16384
#define HTTPC_MAX_INTERIM 8
#define HTTPC_MAX_METHOD 32
#define HTTPC_MAX_PATH 8192
#define HTTPC_MAX_REQUEST_HEAD ((size_t)64 * 1024)
/* In-memory bodies up to this size leave in the same write as the head. */
#define HTTPC_INLINE_BODY ((size_t)16 * 1024)
/* How long to look for an early answer after the server stopped reading. */
#define HTTPC_EARLY_RESPONSE_MS 2000
#define HTTPC_BOUNDARY_RANDOM 16

/* Send results: which kind of failure, so the caller knows what is worth trying next. */
#define HTTPC_SEND_OK 0
#define HTTPC_SEND_IO (-1)      /* the socket failed: the server may have answered early */
#define HTTPC_SEND_TIMEOUT (-2) /* no progress: give up */
#define HTTPC_SEND_LOCAL (-3)   /* our side (the upload file) failed */
#define HTTPC_SEND_ANSWERED 1   /* the server answered or closed before the request was out */

struct httpc_conn {
	struct tls_conn *tls; /* NULL for plain connections */
	int fd;               /* plain connections only */
	struct tls_identity server_id;
	char host_hdr[300];
	int io_timeout_ms;
	int total_timeout_ms; /* <0: none */
	size_t max_body;
	int usable;
	int used;
	int oneshot; /* httpc_fetch: ask the server to close */
};

/* A growing byte buffer; allocation failure is remembered and checked once. */
struct httpc_buf {
	char *p;
	size_t len;
	size_t cap;
	int oom;
};

enum httpc_perr {
	HTTPC_PE_NONE = 0,
	HTTPC_PE_BODY_LIMIT,
	HTTPC_PE_HEADER_LIMIT,
	HTTPC_PE_NOMEM,
	HTTPC_PE_UPGRADE,
	HTTPC_PE_INTERIM,
	HTTPC_PE_STATUS,
	HTTPC_PE_VERSION,
};

/* One response being parsed. */
struct httpc_parse {
	http_parser hp;
	struct httpc_response *resp;
	size_t max_body;
	size_t body_cap;
	size_t header_bytes;
	uint64_t declared_len; /* Content-Length, UINT64_MAX when absent */
	int is_head;
	int interim;
	int headers_done;
	int complete;
	int got_bytes;
	enum httpc_perr perr;
	int in_value;
	int field_overflow;
	size_t field_len;
	size_t value_len;
	char field[32];
	char value[128];
};

void
httpc_target_init(struct httpc_target *t)
{
	memset(t, 0, sizeof(*t));
}

void
httpc_response_free(struct httpc_response *resp)
{
	if (resp == NULL) {
		return;
	}
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

/* ---- byte buffer ---- */

static void
httpc_buf_add(struct httpc_buf *b, const void *data, size_t len)
{
	if (b->oom) {
		return;
	}
	if (len > SIZE_MAX / 2 - b->len) {
		b->oom = 1;
		return;
	}
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap > 0 ? b->cap : 256;
		char *np;
		while (cap < b->len + len + 1) {
			cap *= 2;
		}
		np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void
httpc_buf_str(struct httpc_buf *b, const char *s)
{
	httpc_buf_add(b, s, strlen(s));
}

static void httpc_buf_printf(struct httpc_buf *b, const char *fmt, ...) LOG_PRINTF(2, 3);

static void
httpc_buf_printf(struct httpc_buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	/* Only short, bounded pieces go through here; longer ones use httpc_buf_str. */
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->oom = 1;
		return;
	}
	httpc_buf_add(b, tmp, (size_t)n);
}

static void
httpc_buf_free(struct httpc_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- response parser (libhttp-parser callbacks) ---- */

static int
httpc_count_header(struct httpc_parse *ps, size_t len)
{
	ps->header_bytes += len;
	if (ps->header_bytes > HTTPC_MAX_HEADER_BYTES) {
		ps->perr = HTTPC_PE_HEADER_LIMIT;
		return -1;
	}
	return 0;
}

static void
httpc_copy_trunc(char *dst, size_t dstlen, const char *src)
{
	if (strlcpy_chk(dst, src, dstlen) != 0) {
		log_debug("httpc: header value truncated to %zu bytes", dstlen - 1);
	}
}

/* A whole header (field + value) has been seen: keep the ones we report. */
static void
httpc_header_done(struct httpc_parse *ps)
{
	if (!ps->field_overflow && !ps->headers_done) {
		ps->field[ps->field_len] = '\0';
		ps->value[ps->value_len] = '\0';
		while (ps->value_len > 0 &&
		    (ps->value[ps->value_len - 1] == ' ' || ps->value[ps->value_len - 1] == '\t')) {
			ps->value[--ps->value_len] = '\0';
		}
		if (strcasecmp(ps->field, "content-type") == 0) {
			httpc_copy_trunc(ps->resp->content_type, sizeof(ps->resp->content_type),
			    ps->value);
		} else if (strcasecmp(ps->field, "retry-after") == 0) {
			httpc_copy_trunc(ps->resp->retry_after, sizeof(ps->resp->retry_after),
			    ps->value);
		}
	}
	ps->field_len = 0;
	ps->value_len = 0;
	ps->field_overflow = 0;
	ps->in_value = 0;
}

static int
httpc_on_status(http_parser *hp, const char *at, size_t len)
{
	(void)at;
	return httpc_count_header(hp->data, len);
}

static int
httpc_on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct httpc_parse *ps = hp->data;

	if (httpc_count_header(ps, len) != 0) {
		return -1;
	}
	if (ps->in_value) {
		httpc_header_done(ps);
		/* ": " and CRLF count too, so many tiny headers cannot slip past the limit. */
		if (httpc_count_header(ps, 4) != 0) {
			return -1;
		}
	}
	if (ps->field_overflow || len >= sizeof(ps->field) - ps->field_len) {
		/* Longer than any header we report: skip it. */
		ps->field_overflow = 1;
		return 0;
	}
	memcpy(ps->field + ps->field_len, at, len);
	ps->field_len += len;
	return 0;
}

static int
httpc_on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct httpc_parse *ps = hp->data;
	size_t room;

	if (httpc_count_header(ps, len) != 0) {
		return -1;
	}
	ps->in_value = 1;
	room = sizeof(ps->value) - 1 - ps->value_len;
	if (len > room) {
		len = room;
	}
	memcpy(ps->value + ps->value_len, at, len);
	ps->value_len += len;
	return 0;
}

static int
httpc_on_headers_complete(http_parser *hp)
{
	struct httpc_parse *ps = hp->data;
	int status = (int)hp->status_code;

	if (ps->in_value) {
		httpc_header_done(ps);
	}
	ps->field_len = 0;
	ps->field_overflow = 0;
	if (hp->http_major != 1) {
		ps->perr = HTTPC_PE_VERSION;
		return -1;
	}
	if (status < 100 || status > 599) {
		ps->perr = HTTPC_PE_STATUS;
		return -1;
	}
	if (status == 101) {
		ps->perr = HTTPC_PE_UPGRADE;
		return -1;
	}
	/*
	 * 1xx, 204 and 304 responses and answers to HEAD never have a body,
	 * whatever Content-Length or Transfer-Encoding say (RFC 9112 6.3);
	 * returning 1 tells http-parser so (it would otherwise wait for one).
	 */
	if (status < 200) {
		return 1; /* interim: the final response follows */
	}
	ps->headers_done = 1;
	ps->resp->status = status;
	if ((hp->flags & F_CONTENTLENGTH) != 0) {
		ps->declared_len = hp->content_length;
	}
	if (ps->is_head || status == 204 || status == 304) {
		return 1;
	}
	if ((hp->flags & F_CONTENTLENGTH) != 0 && hp->content_length > ps->max_body) {
		ps->perr = HTTPC_PE_BODY_LIMIT;
		return -1;
	}
	return 0;
}

static int
httpc_on_body(http_parser *hp, const char *at, size_t len)
{
	struct httpc_parse *ps = hp->data;
	struct httpc_response *r = ps->resp;

	if (len > ps->max_body - r->body_len) {
		ps->perr = HTTPC_PE_BODY_LIMIT;
		return -1;
	}
	if (r->body_len + len + 1 > ps->body_cap) {
		size_t cap = ps->body_cap > 0 ? ps->body_cap : 4096;
		char *np;
		while (cap < r->body_len + len + 1) {
			cap *= 2;
		}
		if (cap > ps->max_body + 1) {
			cap = ps->max_body + 1;
		}
		np = realloc(r->body, cap);
		if (np == NULL) {
			ps->perr = HTTPC_PE_NOMEM;
			return -1;
		}
		r->body = np;
		ps->body_cap = cap;
	}
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return 0;
}

static int
httpc_on_message_complete(http_parser *hp)
{
	struct httpc_parse *ps = hp->data;

	if (!ps->headers_done) {
		/* End of an interim 1xx response: forget its headers, parse on. */
		if (++ps->interim > HTTPC_MAX_INTERIM) {
			ps->perr = HTTPC_PE_INTERIM;
			return -1;
		}
		ps->resp->content_type[0] = '\0';
		ps->resp->retry_after[0] = '\0';
		return 0;
	}
	ps->resp->keep_alive = http_should_keep_alive(hp) ? 1 : 0;
	ps->complete = 1;
	/* Stop right after this message so the caller sees any bytes beyond it. */
	http_parser_pause(hp, 1);
	return 0;
}

static const http_parser_settings httpc_settings = {
	.on_status = httpc_on_status,
	.on_header_field = httpc_on_header_field,
	.on_header_value = httpc_on_header_value,
	.on_headers_complete = httpc_on_headers_complete,
	.on_body = httpc_on_body,
	.on_message_complete = httpc_on_message_complete,
};

static void
httpc_parse_init(struct httpc_parse *ps, struct httpc_response *resp, int is_head,
    size_t max_body)
{
	memset(ps, 0, sizeof(*ps));
	http_parser_init(&ps->hp, HTTP_RESPONSE);
	ps->hp.data = ps;
	ps->resp = resp;
	ps->is_head = is_head;
	ps->max_body = max_body > 0 ? max_body : HTTPC_DEFAULT_MAX_BODY;
	ps->declared_len = UINT64_MAX;
}

static void
httpc_parse_error(const struct httpc_parse *ps, enum http_errno he, struct err *e)
{
	switch (ps->perr) {
	case HTTPC_PE_BODY_LIMIT:
		if (ps->declared_len != UINT64_MAX) {
			err_set(e, ERR_PROTOCOL, "response body exceeds %zu bytes (Content-Length: %llu)",
			    ps->max_body, (unsigned long long)ps->declared_len);
		} else {
			err_set(e, ERR_PROTOCOL, "response body exceeds %zu bytes", ps->max_body);
		}
		return;
	case HTTPC_PE_HEADER_LIMIT:
		err_set(e, ERR_PROTOCOL, "response headers exceed %zu bytes", HTTPC_MAX_HEADER_BYTES);
		return;
	case HTTPC_PE_NOMEM:
		err_set(e, ERR_NOMEM, "out of memory reading the response body");
		return;
	case HTTPC_PE_UPGRADE:
		err_set(e, ERR_PROTOCOL, "unexpected 101 Switching Protocols response");
		return;
	case HTTPC_PE_INTERIM:
		err_set(e, ERR_PROTOCOL, "more than %d interim (1xx) responses", HTTPC_MAX_INTERIM);
		return;
	case HTTPC_PE_STATUS:
		err_set(e, ERR_PROTOCOL, "malformed response: status code %u",
		    (unsigned)ps->hp.status_code);
		return;
	case HTTPC_PE_VERSION:
		err_set(e, ERR_PROTOCOL, "malformed response: unsupported version HTTP/%u.%u",
		    (unsigned)ps->hp.http_major, (unsigned)ps->hp.http_minor);
		return;
	case HTTPC_PE_NONE:
		break;
	}
	if (he == HPE_HEADER_OVERFLOW) {
		err_set(e, ERR_PROTOCOL, "response headers exceed %u bytes", (unsigned)HTTP_MAX_HEADER_SIZE);
		return;
	}
	err_set(e, ERR_PROTOCOL, "malformed response: %s", http_errno_description(he));
}

/*
 * Feed LEN bytes. Returns 0 when they were all consumed or the response
 * completed (*USED then says where it ended), -1 on a parse error.
 */
static int
httpc_parse_feed(struct httpc_parse *ps, const char *buf, size_t len, size_t *used, struct err *e)
{
	size_t n;
	enum http_errno he;

	if (len > 0) {
		ps->got_bytes = 1;
	}
	n = http_parser_execute(&ps->hp, &httpc_settings, buf, len);
	he = HTTP_PARSER_ERRNO(&ps->hp);
	*used = n;
	if (ps->complete) {
		return 0;
	}
	if (he == HPE_OK && n == len) {
		return 0;
	}
	httpc_parse_error(ps, he, e);
	return -1;
}

/* The server closed the connection: complete or fail the response. */
static int
httpc_parse_eof(struct httpc_parse *ps, struct err *e)
{
	if (!ps->complete && ps->perr == HTTPC_PE_NONE && HTTP_PARSER_ERRNO(&ps->hp) == HPE_OK) {
		/* Ends a body delimited by the close; an error in any other state. */
		(void)http_parser_execute(&ps->hp, &httpc_settings, NULL, 0);
	}
	if (ps->complete) {
		return 0;
	}
	if (ps->perr != HTTPC_PE_NONE) {
		httpc_parse_error(ps, HTTP_PARSER_ERRNO(&ps->hp), e);
	} else if (!ps->got_bytes) {
		err_set(e, ERR_PROTOCOL, "read response: connection closed without a response");
	} else if (!ps->headers_done) {
		err_set(e, ERR_PROTOCOL, "read response: connection closed before end of headers");
	} else if (ps->declared_len != UINT64_MAX) {
		err_set(e, ERR_PROTOCOL,
		    "read response: connection closed before end of body (%zu of %llu bytes)",
		    ps->resp->body_len, (unsigned long long)ps->declared_len);
	} else {
		err_set(e, ERR_PROTOCOL,
		    "read response: connection closed before end of body (%zu bytes received)",
		    ps->resp->body_len);
	}
	return -1;
}

/* A complete response always carries a NUL-terminated body buffer. */
static int
httpc_parse_finish(struct httpc_parse *ps, struct err *e)
{
	if (ps->resp->body == NULL) {
		ps->resp->body = calloc(1, 1);
		if (ps->resp->body == NULL) {
			err_set(e, ERR_NOMEM, "out of memory");
			return -1;
		}
	}
	return 0;
}

int
httpc_parse_response_buffer(const char *buf, size_t len, int is_head, size_t max_body,
    size_t step, struct httpc_response *out, struct err *e)
{
	struct httpc_parse ps;
	size_t off = 0;
	size_t used = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	httpc_parse_init(&ps, out, is_head, max_body);
	if (step == 0) {
		step = len;
	}
	while (off < len && !ps.complete) {
		size_t n = len - off < step ? len - off : step;
		if (httpc_parse_feed(&ps, buf + off, n, &used, e) != 0) {
			goto out;
		}
		off += used;
	}
	if (!ps.complete && httpc_parse_eof(&ps, e) != 0) {
		goto out;
	}
	if (off < len) {
		out->keep_alive = 0; /* bytes beyond the response: the stream is out of step */
	}
	if (httpc_parse_finish(&ps, e) != 0) {
		goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		httpc_response_free(out);
	}
	return rc;
}

/* ---- transport (TLS, or a plain socket for tests) ---- */

/*
 * The response side of one exchange. It exists before the request is sent:
 * a server may answer (413, 403, 503 ...) while the body is still going out,
 * and whatever arrives then is parsed here and continued by the final read.
 */
struct httpc_rx {
	struct httpc_parse ps;
	char *buf;     /* HTTPC_READ_BUF bytes */
	int eof;       /* the server ended the connection */
	int extra;     /* bytes beyond the response: the stream is out of step */
	int failed;    /* err holds the reason */
	struct err err;
};

static int
httpc_poll(int fd, short events, int64_t deadline, short *revents)
{
	struct pollfd pfd;

	pfd.fd = fd;
	pfd.events = events;
	for (;;) {
		int left = ms_until(deadline);
		int r;
		if (left == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.revents = 0;
		r = poll(&pfd, 1, left);
		if (r > 0) {
			if (revents != NULL) {
				*revents = pfd.revents;
			}
			return 0;
		}
		if (r < 0 && errno != EINTR) {
			return -1;
		}
	}
}

static int
httpc_conn_fd(const struct httpc_conn *c)
{
	return c->tls != NULL ? tls_fd(c->tls) : c->fd;
}

/* Give N received bytes to the parser; bytes after a complete response are noted. */
static void
httpc_rx_feed(struct httpc_rx *rx, const char *buf, size_t n)
{
	size_t used = 0;

	if (rx->ps.complete) {
		rx->extra = 1;
		return;
	}
	if (httpc_parse_feed(&rx->ps, buf, n, &used, &rx->err) != 0) {
		rx->failed = 1;
		return;
	}
	if (rx->ps.complete && used < n) {
		rx->extra = 1;
	}
}

/*
 * While a request is being sent: take what the server has already sent,
 * without waiting. Returns 1 when sending should stop (a final response has
 * begun, the server closed, or reading failed), 0 to keep sending.
 */
static int
httpc_rx_drain(struct httpc_conn *c, struct httpc_rx *rx)
{
	/* Stop at a final response: what follows is read by httpc_read_response. */
	while (!rx->eof && !rx->failed && !rx->ps.headers_done) {
		ssize_t n;
		if (c->tls != NULL) {
			n = tls_read(c->tls, rx->buf, HTTPC_READ_BUF);
			if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
				break;
			}
			if (n == TLS_ERR) {
				err_set(&rx->err, ERR_PROTOCOL,
				    "read response: TLS read failed (connection reset or corrupt record)");
				rx->failed = 1;
				break;
			}
		} else {
			n = recv(c->fd, rx->buf, HTTPC_READ_BUF, MSG_DONTWAIT);
			if (n < 0 && errno == EINTR) {
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				break;
			}
			if (n < 0) {
				err_sys_kind(&rx->err, ERR_UNREACHABLE, "read response");
				rx->failed = 1;
				break;
			}
		}
		if (n == 0) {
			rx->eof = 1;
			break;
		}
		httpc_rx_feed(rx, rx->buf, (size_t)n);
	}
	return rx->eof || rx->failed || rx->ps.headers_done || rx->ps.complete;
}

/*
 * Wait until FD can take more bytes (POLLOUT) or, for WANT == POLLIN, until
 * it is readable. With RX, a blocked writer also watches for an early
 * answer. Returns 0 to retry the write, 1 when the server has answered or
 * closed (stop sending), -1 on poll failure or timeout (errno set).
 */
static int
httpc_wait_write(struct httpc_conn *c, short want, int64_t deadline, struct httpc_rx *rx)
{
	int fd = httpc_conn_fd(c);
	short watch = want == POLLOUT && rx != NULL ? (short)(POLLOUT | POLLIN) : want;

	for (;;) {
		short rev = 0;
		if (httpc_poll(fd, watch, deadline, &rev) != 0) {
			return -1;
		}
		if (watch == want || (rev & (POLLIN | POLLHUP | POLLERR)) == 0) {
			return 0;
		}
		if (httpc_rx_drain(c, rx)) {
			return 1;
		}
		if ((rev & POLLOUT) != 0) {
			return 0;
		}
	}
}

/* A failed socket read/write or poll: "timed out" (ERR_TIMEOUT) or the errno text. */
static void
httpc_errno_set(struct err *e, int saved)
{
	if (saved == ETIMEDOUT) {
		err_set(e, ERR_TIMEOUT, "timed out");
		return;
	}
	err_set(e, ERR_UNREACHABLE, "%s", strerror(saved));
	if (e != NULL) {
		e->sys_errno = saved;
	}
}

/* Read up to LEN bytes before DEADLINE: >0, 0 at end of stream, -1 (ERR: detail). */
static ssize_t
httpc_io_read(struct httpc_conn *c, void *buf, size_t len, int64_t deadline, struct err *e)
{
	if (c->tls != NULL) {
		return tls_read_deadline(c->tls, buf, len, deadline, e);
	}
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, 0);
		if (n >= 0) {
			return n;
		}
		if (errno == EINTR) {
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			httpc_errno_set(e, errno);
			return -1;
		}
		if (httpc_poll(c->fd, POLLIN, deadline, NULL) != 0) {
			httpc_errno_set(e, errno);
			return -1;
		}
	}
}

/*
 * Write all LEN bytes before DEADLINE. Returns 0, 1 when the server answered
 * or closed first (see httpc_wait_write; RX may be NULL), -1 (ERR: detail).
 */
static int
httpc_io_write(struct httpc_conn *c, const void *buf, size_t len, int64_t deadline,
    struct httpc_rx *rx, struct err *e)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n;
		short want = POLLOUT;
		int w;
		if (c->tls != NULL) {
			/* After WANT_*, mbedTLS needs the same buffer again: p/len are unchanged. */
			n = tls_write(c->tls, p, len);
			if (n == TLS_ERR || n == 0) {
				err_set(e, ERR_PROTOCOL, "TLS write failed (connection reset by peer?)");
				return -1;
			}
			if (n == TLS_WANT_READ) {
				want = POLLIN;
			}
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR) {
				continue;
			}
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
				httpc_errno_set(e, errno);
				return -1;
			}
		}
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		w = httpc_wait_write(c, want, deadline, rx);
		if (w < 0) {
			httpc_errno_set(e, errno);
			return -1;
		}
		if (w > 0) {
			return 1;
		}
	}
	return 0;
}

/* The deadline for one read or write: the per-I/O timeout within the total. */
static int64_t
httpc_io_deadline(const struct httpc_conn *c, int64_t total_deadline)
{
	int64_t dl = mono_ms() + c->io_timeout_ms;

	return dl < total_deadline ? dl : total_deadline;
}

static void
httpc_io_error(const struct httpc_conn *c, const char *step, int64_t io_deadline,
    int64_t total_deadline, struct err *e)
{
	if (ms_until(io_deadline) > 0) {
		err_prefix(e, "%s", step);
	} else if (io_deadline == total_deadline) {
		err_set(e, ERR_TIMEOUT, "%s: timed out (the exchange is limited to %d ms)", step,
		    c->total_timeout_ms);
	} else {
		err_set(e, ERR_TIMEOUT, "%s: timed out after %d ms", step, c->io_timeout_ms);
	}
}

/* ---- connections ---- */

static int
httpc_host_ok(const char *h)
{
	if (*h == '\0') {
		return 0;
	}
	for (; *h != '\0'; h++) {
		unsigned char ch = (unsigned char)*h;
		if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') &&
		    !(ch >= '0' && ch <= '9') && strchr(".-_:%", ch) == NULL) {
			return 0;
		}
	}
	return 1;
}

static int
httpc_conn_new(const struct httpc_target *t, struct httpc_conn **out, struct err *e)
{
	const char *host = t->host != NULL && *t->host != '\0' ? t->host : "localhost";
	struct httpc_conn *c;
	int n;

	if (!httpc_host_ok(host) || (t->port != NULL && !httpc_host_ok(t->port))) {
		err_set(e, ERR_CONFIG, "invalid host or port");
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		return -1;
	}
	c->fd = -1;
	if (t->port != NULL && *t->port != '\0') {
		n = snprintf(c->host_hdr, sizeof(c->host_hdr), strchr(host, ':') != NULL ? "[%s]:%s"
											: "%s:%s",
		    host, t->port);
	} else {
		n = snprintf(c->host_hdr, sizeof(c->host_hdr), "%s", host);
	}
	if (n < 0 || (size_t)n >= sizeof(c->host_hdr)) {
		err_set(e, ERR_CONFIG, "host name too long");
		free(c);
		return -1;
	}
	c->io_timeout_ms = t->io_timeout_ms > 0 ? t->io_timeout_ms : HTTPC_DEFAULT_IO_TIMEOUT_MS;
	c->total_timeout_ms = t->total_timeout_ms == 0 ? HTTPC_DEFAULT_TOTAL_TIMEOUT_MS
						       : t->total_timeout_ms;
	c->max_body = t->max_body > 0 ? t->max_body : HTTPC_DEFAULT_MAX_BODY;
	c->usable = 1;
	*out = c;
	return 0;
}

static void
httpc_addr_str(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len)
{
	char host[NI_MAXHOST];
	char serv[NI_MAXSERV];

	if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
		NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf, len, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

/* Connect to one address before DEADLINE; the socket, or -1 with ERR set. */
static int
httpc_tcp_try(const struct addrinfo *ai, int64_t deadline, int timeout_ms, struct err *e)
{
	char addr[NI_MAXHOST + NI_MAXSERV + 4];
	int fd = -1;
	int soerr = 0;
	socklen_t slen = sizeof(soerr);
	int one = 1;

	httpc_addr_str(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		err_sys_kind(e, ERR_UNREACHABLE, "connect to %s: socket", addr);
		goto fail;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			err_sys_kind(e, ERR_UNREACHABLE, "connect to %s", addr);
			goto fail;
		}
		if (httpc_poll(fd, POLLOUT, deadline, NULL) != 0) {
			if (errno == ETIMEDOUT) {
				err_set(e, ERR_TIMEOUT, "connect to %s: timed out after %d ms", addr,
				    timeout_ms);
			} else {
				err_sys_kind(e, ERR_UNREACHABLE, "connect to %s: poll", addr);
			}
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0) {
			soerr = errno;
		}
		if (soerr != 0) {
			errno = soerr;
			err_sys_kind(e, ERR_UNREACHABLE, "connect to %s", addr);
			goto fail;
		}
	}
	/* Requests are written head then body: do not let Nagle hold the tail back. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	if (fd >= 0) {
		close(fd);
	}
	return -1;
}

int
httpc_tcp_connect_list(const struct addrinfo *res, const char *host, const char *port,
    int64_t deadline, int timeout_ms, struct err *e)
{
	const struct addrinfo *ai;
	struct err try = ERR_INIT;
	int fd = -1;

	/*
	 * Each failed address leaves its reason in TRY; E is set only when no
	 * address connected, so a success after a failed address (a name whose
	 * first address is unreachable) leaves E untouched.
	 */
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		if (ms_until(deadline) == 0) {
			err_set(&try, ERR_TIMEOUT, "connect to %s:%s: timed out after %d ms", host,
			    port, timeout_ms);
			break;
		}
		fd = httpc_tcp_try(ai, deadline, timeout_ms, &try);
	}
	if (fd < 0) {
		if (!err_failed(&try)) {
			err_set(&try, ERR_UNREACHABLE, "connect to %s:%s: no usable address", host,
			    port);
		}
		(void)err_copy(e, &try);
	}
	return fd;
}

static int
httpc_tcp_connect(const struct httpc_target *t, int64_t deadline, int timeout_ms, struct err *e)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	int fd;
	int gai;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	gai = getaddrinfo(t->host, t->port, &hints, &res);
	if (gai != 0) {
		err_set(e, ERR_UNREACHABLE, "resolve %s port %s: %s", t->host, t->port,
		    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		return -1;
	}
	fd = httpc_tcp_connect_list(res, t->host, t->port, deadline, timeout_ms, e);
	freeaddrinfo(res);
	return fd;
}

int
httpc_connect(struct tls_ctx *tls, const struct httpc_target *t, struct httpc_conn **out,
    struct err *e)
{
	struct httpc_conn *c = NULL;
	int64_t deadline;
	int cto;
	int left;
	int fd = -1;
	int rc = -1;

	if (tls == NULL || t == NULL || t->host == NULL || *t->host == '\0' || t->port == NULL ||
	    *t->port == '\0') {
		err_set(e, ERR_INTERNAL, "connect: no TLS context, host or port given");
		goto out;
	}
	if (httpc_conn_new(t, &c, e) != 0) {
		goto out;
	}
	cto = t->connect_timeout_ms > 0 ? t->connect_timeout_ms : HTTPC_DEFAULT_CONNECT_TIMEOUT_MS;
	deadline = mono_ms() + cto;
	fd = httpc_tcp_connect(t, deadline, cto, e);
	if (fd < 0) {
		goto out;
	}
	left = ms_until(deadline);
	if (left == 0 ||
	    tls_connect(tls, fd, t->sni_hostname, t->pin_fp, left, &c->tls, &c->server_id,
		e) != 0) {
		if (ms_until(deadline) == 0) {
			/* TCP connected, the handshake did not finish: cut, like a close. */
			err_set(e, ERR_HANDSHAKE_CUT, "TLS handshake: timed out after %d ms", cto);
		} else if (e->kind == ERR_TIMEOUT) {
			(void)err_rekind(e, ERR_HANDSHAKE_CUT);
		} else if (strncmp(err_msg(e), "TLS", 3) != 0) {
			err_prefix(e, "TLS handshake");
		}
		goto out;
	}
	fd = -1; /* owned by c->tls now */
	*out = c;
	c = NULL;
	rc = 0;
out:
	if (fd >= 0) {
		close(fd);
	}
	httpc_close(c);
	return rc;
}

int
httpc_conn_from_fd(int fd, const struct httpc_target *t, struct httpc_conn **out, struct err *e)
{
	struct httpc_target none;
	struct httpc_conn *c = NULL;
	int fl;

	if (t == NULL) {
		httpc_target_init(&none);
		t = &none;
	}
	if (httpc_conn_new(t, &c, e) != 0) {
		return -1;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
		err_sys(e, "fcntl");
		free(c);
		return -1;
	}
	c->fd = fd;
	*out = c;
	return 0;
}

void
httpc_close(struct httpc_conn *c)
{
	if (c == NULL) {
		return;
	}
	if (c->tls != NULL) {
		tls_close(c->tls);
	} else if (c->fd >= 0) {
		close(c->fd);
	}
	free(c);
}

int
httpc_conn_usable(const struct httpc_conn *c)
{
	return c != NULL && c->usable;
}

const struct tls_identity *
httpc_conn_server_identity(const struct httpc_conn *c)
{
	return c->tls != NULL ? &c->server_id : NULL;
}

/*
 * Before reusing a kept-alive connection: anything readable now is either
 * the server's close or bytes nobody asked for. Either way it is stale.
 */
static int
httpc_check_idle(struct httpc_conn *c, struct err *e)
{
	struct pollfd pfd;

	pfd.fd = httpc_conn_fd(c);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if ((c->tls != NULL && tls_pending(c->tls) > 0) || poll(&pfd, 1, 0) > 0) {
		err_set(e, ERR_UNREACHABLE,
		    "send request: the server closed the kept-alive connection; reconnect");
		return -1;
	}
	return 0;
}

/* ---- requests ---- */

static int
httpc_token_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	    (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Check one caller header line; sets *CLOSE_REQ for "Connection: close". */
static int
httpc_check_header(const char *h, const char *content_type, int *close_req, struct err *e)
{
	static const char *const reserved[] = { "host", "content-length", "transfer-encoding" };
	const char *colon = strchr(h, ':');
	const char *v;
	size_t nlen;

	if (colon == NULL || colon == h) {
		err_set(e, ERR_BAD_REQUEST, "request header \"%.40s\" is not \"Name: value\"", h);
		return -1;
	}
	nlen = (size_t)(colon - h);
	for (size_t i = 0; i < nlen; i++) {
		if (!httpc_token_char((unsigned char)h[i])) {
			err_set(e, ERR_BAD_REQUEST, "request header name \"%.*s\" is invalid",
			    (int)(nlen > 40 ? 40 : nlen), h);
			return -1;
		}
	}
	for (v = colon + 1; *v != '\0'; v++) {
		unsigned char ch = (unsigned char)*v;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			err_set(e, ERR_BAD_REQUEST, "request header \"%.*s\" has a control character",
			    (int)(nlen > 40 ? 40 : nlen), h);
			return -1;
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(reserved); i++) {
		if (nlen == strlen(reserved[i]) && strncasecmp(h, reserved[i], nlen) == 0) {
			err_set(e, ERR_BAD_REQUEST, "request header %s is set by httpc", reserved[i]);
			return -1;
		}
	}
	if (content_type != NULL && nlen == 12 && strncasecmp(h, "content-type", 12) == 0) {
		err_set(e, ERR_BAD_REQUEST, "Content-Type given twice");
		return -1;
	}
	if (nlen == 10 && strncasecmp(h, "connection", 10) == 0 &&
	    strcasestr(colon + 1, "close") != NULL) {
		*close_req = 1;
	}
	return 0;
}

static int
httpc_check_target(const char *method, const char *path, struct err *e)
{
	size_t n;

	if (method == NULL || *method == '\0' || strlen(method) > HTTPC_MAX_METHOD) {
		err_set(e, ERR_BAD_REQUEST, "invalid request method");
		return -1;
	}
	for (const char *m = method; *m != '\0'; m++) {
		if (*m < 'A' || *m > 'Z') {
			err_set(e, ERR_BAD_REQUEST, "invalid request method");
			return -1;
		}
	}
	if (path == NULL || path[0] != '/') {
		err_set(e, ERR_BAD_REQUEST, "request path must start with '/'");
		return -1;
	}
	n = strlen(path);
	if (n > HTTPC_MAX_PATH) {
		err_set(e, ERR_BAD_REQUEST, "request path longer than %d bytes", HTTPC_MAX_PATH);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)path[i];
		if (ch <= 0x20 || ch >= 0x7f) {
			err_set(e, ERR_BAD_REQUEST, "request path has a space, control or non-ASCII byte");
			return -1;
		}
	}
	return 0;
}

/* Validate and format the request line and headers into B. */
static int
httpc_build_head(const struct httpc_conn *c, const char *method, const char *path,
    const char *const *headers, const char *content_type, int send_length, uint64_t length,
    struct httpc_buf *b, int *close_req, struct err *e)
{
	if (httpc_check_target(method, path, e) != 0) {
		return -1;
	}
	if (content_type != NULL) {
		for (const char *p = content_type; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				err_set(e, ERR_BAD_REQUEST, "Content-Type has a control character");
				return -1;
			}
		}
	}
	httpc_buf_str(b, method);
	httpc_buf_str(b, " ");
	httpc_buf_str(b, path);
	httpc_buf_printf(b, " HTTP/1.1\r\nHost: %s\r\nUser-Agent: tandem/%s\r\n", c->host_hdr,
	    tandem_version());
	if (content_type != NULL) {
		httpc_buf_str(b, "Content-Type: ");
		httpc_buf_str(b, content_type);
		httpc_buf_str(b, "\r\n");
	}
	if (send_length) {
		httpc_buf_printf(b, "Content-Length: %llu\r\n", (unsigned long long)length);
	}
	if (c->oneshot) {
		httpc_buf_str(b, "Connection: close\r\n");
		*close_req = 1;
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		if (httpc_check_header(headers[i], content_type, close_req, e) != 0) {
			return -1;
		}
		httpc_buf_str(b, headers[i]);
		httpc_buf_str(b, "\r\n");
	}
	httpc_buf_str(b, "\r\n");
	if (b->oom) {
		err_set(e, ERR_NOMEM, "out of memory building the request");
		return -1;
	}
	if (b->len > HTTPC_MAX_REQUEST_HEAD) {
		err_set(e, ERR_BAD_REQUEST, "request headers exceed %zu bytes", HTTPC_MAX_REQUEST_HEAD);
		return -1;
	}
	return 0;
}

/* What follows the head: PREFIX, then FD_SIZE bytes of FD (if FD >= 0), then SUFFIX. */
struct httpc_body {
	const char *prefix;
	size_t prefix_len;
	int fd;
	uint64_t fd_size;
	const char *suffix;
	size_t suffix_len;
	httpc_progress_fn progress;
	void *arg;
};

static int
httpc_send_all(struct httpc_conn *c, const void *buf, size_t len, int64_t total_deadline,
    struct httpc_rx *rx, struct err *e)
{
	int64_t dl = httpc_io_deadline(c, total_deadline);
	int w = httpc_io_write(c, buf, len, dl, rx, e);

	if (w == 0) {
		return HTTPC_SEND_OK;
	}
	if (w > 0) {
		return HTTPC_SEND_ANSWERED;
	}
	httpc_io_error(c, "send request", dl, total_deadline, e);
	return ms_until(dl) == 0 ? HTTPC_SEND_TIMEOUT : HTTPC_SEND_IO;
}

static int
httpc_send_file(struct httpc_conn *c, const struct httpc_body *body, uint64_t *sent,
    uint64_t total, int64_t total_deadline, struct httpc_rx *rx, struct err *e)
{
	uint64_t left = body->fd_size;
	char *buf = NULL;
	int rc = HTTPC_SEND_LOCAL;

	buf = malloc(HTTPC_STREAM_CHUNK);
	if (buf == NULL) {
		err_set(e, ERR_NOMEM, "send request: out of memory");
		goto out;
	}
	while (left > 0) {
		size_t want = left < HTTPC_STREAM_CHUNK ? (size_t)left : HTTPC_STREAM_CHUNK;
		size_t have = 0;
		while (have < want) {
			ssize_t n = read(body->fd, buf + have, want - have);
			if (n < 0 && errno == EINTR) {
				continue;
			}
			if (n < 0) {
				err_sys(e, "read upload file");
				rc = HTTPC_SEND_LOCAL;
				goto out;
			}
			if (n == 0) {
				err_set(e, ERR_IO,
				    "read upload file: it ended after %llu of %llu bytes",
				    (unsigned long long)(body->fd_size - left + have),
				    (unsigned long long)body->fd_size);
				rc = HTTPC_SEND_LOCAL;
				goto out;
			}
			have += (size_t)n;
		}
		rc = httpc_send_all(c, buf, have, total_deadline, rx, e);
		if (rc != HTTPC_SEND_OK) {
			goto out;
		}
		left -= have;
		*sent += have;
		if (body->progress != NULL) {
			body->progress(body->arg, *sent, total);
		}
	}
	rc = HTTPC_SEND_OK;
out:
	free(buf);
	return rc;
}

/* Send HEAD (and with it the prefix when small), then the body pieces. */
static int
httpc_send_request(struct httpc_conn *c, struct httpc_buf *head, const struct httpc_body *body,
    uint64_t total, int64_t total_deadline, struct httpc_rx *rx, struct err *e)
{
	uint64_t sent = 0;
	int rc;

	if (body->prefix_len > 0 && body->prefix_len <= HTTPC_INLINE_BODY) {
		httpc_buf_add(head, body->prefix, body->prefix_len);
		if (head->oom) {
			err_set(e, ERR_NOMEM, "out of memory building the request");
			return HTTPC_SEND_LOCAL;
		}
		sent = body->prefix_len;
	}
	rc = httpc_send_all(c, head->p, head->len, total_deadline, rx, e);
	if (rc != HTTPC_SEND_OK) {
		return rc;
	}
	if (sent == 0 && body->prefix_len > 0) {
		rc = httpc_send_all(c, body->prefix, body->prefix_len, total_deadline, rx, e);
		if (rc != HTTPC_SEND_OK) {
			return rc;
		}
		sent = body->prefix_len;
	}
	if (sent > 0 && body->progress != NULL) {
		body->progress(body->arg, sent, total);
	}
	if (body->fd >= 0) {
		rc = httpc_send_file(c, body, &sent, total, total_deadline, rx, e);
		if (rc != HTTPC_SEND_OK) {
			return rc;
		}
	}
	if (body->suffix_len > 0) {
		rc = httpc_send_all(c, body->suffix, body->suffix_len, total_deadline, rx, e);
		if (rc != HTTPC_SEND_OK) {
			return rc;
		}
		sent += body->suffix_len;
		if (body->progress != NULL) {
			body->progress(body->arg, sent, total);
		}
	}
	return HTTPC_SEND_OK;
}

/* Read until RX holds a complete response (or fails) before TOTAL_DEADLINE. */
static int
httpc_read_response(struct httpc_conn *c, struct httpc_rx *rx, int64_t total_deadline,
    struct err *e)
{
	while (!rx->ps.complete && !rx->failed && !rx->eof) {
		int64_t dl = httpc_io_deadline(c, total_deadline);
		ssize_t n = httpc_io_read(c, rx->buf, HTTPC_READ_BUF, dl, &rx->err);
		if (n < 0) {
			httpc_io_error(c, "read response", dl, total_deadline, &rx->err);
			rx->failed = 1;
		} else if (n == 0) {
			rx->eof = 1;
		} else {
			httpc_rx_feed(rx, rx->buf, (size_t)n);
		}
	}
	if (!rx->failed && !rx->ps.complete &&
	    httpc_parse_eof(&rx->ps, &rx->err) != 0) {
		rx->failed = 1;
	}
	if (rx->failed) {
		return err_copy(e, &rx->err);
	}
	if (rx->extra || (c->tls != NULL && tls_pending(c->tls) > 0)) {
		log_debug("httpc: %s sent bytes after its response; not reusing the connection",
		    c->host_hdr);
		rx->ps.resp->keep_alive = 0;
	}
	return httpc_parse_finish(&rx->ps, e);
}

static int
httpc_exchange(struct httpc_conn *c, const char *method, const char *path,
    const char *const *headers, const char *content_type, int send_length,
    const struct httpc_body *body, struct httpc_response *resp, struct err *e)
{
	struct httpc_buf head;
	struct httpc_rx rx;
	uint64_t total;
	int64_t total_deadline;
	int close_req = 0;
	int send_rc;
	int rc = -1;

	memset(&head, 0, sizeof(head));
	memset(&rx, 0, sizeof(rx));
	memset(resp, 0, sizeof(*resp));
	if (c == NULL || !c->usable) {
		err_set(e, ERR_UNREACHABLE, "connection is closed (ended by an earlier exchange); reconnect");
		return -1;
	}
	if (body->fd_size > UINT64_MAX - body->prefix_len - body->suffix_len) {
		err_set(e, ERR_BAD_REQUEST, "request body too large");
		return -1;
	}
	total = body->prefix_len + body->fd_size + body->suffix_len;
	if (httpc_build_head(c, method, path, headers, content_type, send_length, total, &head,
		&close_req, e) != 0) {
		/* Nothing was sent: the connection stays usable. */
		httpc_buf_free(&head);
		return -1;
	}
	if (c->used && httpc_check_idle(c, e) != 0) {
		goto out;
	}
	rx.buf = malloc(HTTPC_READ_BUF);
	if (rx.buf == NULL) {
		err_set(e, ERR_NOMEM, "out of memory");
		goto out;
	}
	httpc_parse_init(&rx.ps, resp, strcmp(method, "HEAD") == 0, c->max_body);
	total_deadline = c->total_timeout_ms < 0 ? INT64_MAX : mono_ms() + c->total_timeout_ms;
	c->used = 1;

	send_rc = httpc_send_request(c, &head, body, total, total_deadline, &rx, e);
	if (send_rc == HTTPC_SEND_IO || send_rc == HTTPC_SEND_ANSWERED) {
		/*
		 * The server answered (413, 403, 503 ...) or went away before
		 * the whole request was out. An answer already sent is the
		 * result; the connection cannot carry another request.
		 */
		struct err rerr = ERR_INIT;
		int64_t early = mono_ms() + HTTPC_EARLY_RESPONSE_MS;
		if (httpc_read_response(c, &rx, early < total_deadline ? early : total_deadline,
			&rerr) == 0) {
			log_debug("httpc: %s answered %d before the request was sent", c->host_hdr,
			    resp->status);
			resp->keep_alive = 0;
			rc = 0;
		} else if (send_rc == HTTPC_SEND_ANSWERED) {
			if (!rx.ps.got_bytes) {
				err_set(e, ERR_UNREACHABLE,
				    "send request: the server closed the connection before the "
				    "request was sent");
			} else {
				err_copy(e, &rerr);
			}
		}
		goto out;
	}
	if (send_rc != HTTPC_SEND_OK) {
		goto out;
	}
	if (httpc_read_response(c, &rx, total_deadline, e) != 0) {
		goto out;
	}
	if (close_req) {
		resp->keep_alive = 0;
	}
	rc = 0;
out:
	httpc_buf_free(&head);
	free(rx.buf);
	if (rc != 0) {
		httpc_response_free(resp);
		c->usable = 0;
	} else {
		c->usable = resp->keep_alive;
	}
	return rc;
}

int
httpc_request(struct httpc_conn *c, const char *method, const char *path,
    const char *const *headers, const void *body, size_t body_len, struct httpc_response *resp,
    struct err *e)
{
	struct httpc_body b;
	int send_length;

	memset(&b, 0, sizeof(b));
	b.prefix = body;
	b.prefix_len = body != NULL ? body_len : 0;
	b.fd = -1;
	send_length = b.prefix_len > 0 || body != NULL ||
	    (method != NULL &&
		(strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
		    strcmp(method, "PATCH") == 0));
	return httpc_exchange(c, method, path, headers, NULL, send_length, &b, resp, e);
}

int
httpc_request_fd(struct httpc_conn *c, const char *method, const char *path,
    const char *const *headers, const char *content_type, int fd, uint64_t size,
    httpc_progress_fn progress, void *arg, struct httpc_response *resp, struct err *e)
{
	struct httpc_body b;

	if (fd < 0) {
		memset(resp, 0, sizeof(*resp));
		err_set(e, ERR_INTERNAL, "no file to send");
		return -1;
	}
	memset(&b, 0, sizeof(b));
	b.fd = fd;
	b.fd_size = size;
	b.progress = progress;
	b.arg = arg;
	return httpc_exchange(c, method, path, headers, content_type, 1, &b, resp, e);
}

/* Names and filenames go inside quotes in Content-Disposition: keep them plain. */
static int
httpc_form_name_ok(const char *s)
{
	if (s == NULL || *s == '\0') {
		return 0;
	}
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') {
			return 0;
		}
	}
	return 1;
}

/* A random boundary that occurs in none of the text we send. */
static int
httpc_multipart_boundary(const struct httpc_form_field *fields, size_t nfields,
    const char *file_field, const char *filename, char *out, size_t outlen, struct err *e)
{
	unsigned char rnd[HTTPC_BOUNDARY_RANDOM];
	char hex[2 * HTTPC_BOUNDARY_RANDOM + 1];

	for (int attempt = 0; attempt < 4; attempt++) {
		int clash = 0;
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			err_sys_kind(e, ERR_INTERNAL, "multipart boundary: getrandom");
			return -1;
		}
		hex_encode(rnd, sizeof(rnd), hex);
		snprintf(out, outlen, "tandem-%s", hex);
		for (size_t i = 0; i < nfields && !clash; i++) {
			clash = strstr(fields[i].name, out) != NULL ||
			    strstr(fields[i].value, out) != NULL;
		}
		if (!clash && strstr(file_field, out) == NULL && strstr(filename, out) == NULL) {
			return 0;
		}
	}
	err_set(e, ERR_INTERNAL, "multipart boundary: no random boundary avoids the form text");
	return -1;
}

int
httpc_upload_multipart(struct httpc_conn *c, const char *path,
    const struct httpc_form_field *fields, size_t nfields, const char *file_field,
    const char *filename, int fd, uint64_t size, httpc_progress_fn progress, void *arg,
    struct httpc_response *resp, struct err *e)
{
	struct httpc_buf pre;
	struct httpc_buf post;
	struct httpc_body b;
	char boundary[64];
	char ctype[128];
	int rc = -1;

	memset(&pre, 0, sizeof(pre));
	memset(&post, 0, sizeof(post));
	memset(resp, 0, sizeof(*resp));
	if (fd < 0 || !httpc_form_name_ok(file_field) || !httpc_form_name_ok(filename) ||
	    (nfields > 0 && fields == NULL)) {
		err_set(e, ERR_BAD_REQUEST, "multipart: missing file, or a bad file field or file name");
		goto out;
	}
	for (size_t i = 0; i < nfields; i++) {
		if (!httpc_form_name_ok(fields[i].name) || fields[i].value == NULL) {
			err_set(e, ERR_BAD_REQUEST, "multipart: bad form field name or missing value");
			goto out;
		}
	}
	if (httpc_multipart_boundary(fields, nfields, file_field, filename, boundary,
		sizeof(boundary), e) != 0) {
		goto out;
	}
	for (size_t i = 0; i < nfields; i++) {
		httpc_buf_printf(&pre, "--%s\r\n", boundary);
		httpc_buf_str(&pre, "Content-Disposition: form-data; name=\"");
		httpc_buf_str(&pre, fields[i].name);
		httpc_buf_str(&pre, "\"\r\n\r\n");
		httpc_buf_str(&pre, fields[i].value);
		httpc_buf_str(&pre, "\r\n");
	}
	httpc_buf_printf(&pre, "--%s\r\n", boundary);
	httpc_buf_str(&pre, "Content-Disposition: form-data; name=\"");
	httpc_buf_str(&pre, file_field);
	httpc_buf_str(&pre, "\"; filename=\"");
	httpc_buf_str(&pre, filename);
	httpc_buf_str(&pre, "\"\r\nContent-Type: " HTTPC_MULTIPART_FILE_TYPE "\r\n\r\n");
	httpc_buf_printf(&post, "\r\n--%s--\r\n", boundary);
	if (pre.oom || post.oom) {
		err_set(e, ERR_NOMEM, "out of memory building the multipart body");
		goto out;
	}
	snprintf(ctype, sizeof(ctype), "multipart/form-data; boundary=%s", boundary);

	memset(&b, 0, sizeof(b));
	b.prefix = pre.p;
	b.prefix_len = pre.len;
	b.fd = fd;
	b.fd_size = size;
	b.suffix = post.p;
	b.suffix_len = post.len;
	b.progress = progress;
	b.arg = arg;
	rc = httpc_exchange(c, "POST", path, NULL, ctype, 1, &b, resp, e);
out:
	httpc_buf_free(&pre);
	httpc_buf_free(&post);
	return rc;
}

int
httpc_fetch(struct tls_ctx *tls, const struct httpc_target *t, const char *method,
    const char *path, const char *const *headers, const void *body, size_t body_len,
    struct httpc_response *resp, struct err *e)
{
	struct httpc_conn *c = NULL;
	int rc = -1;

	memset(resp, 0, sizeof(*resp));
	if (httpc_connect(tls, t, &c, e) != 0) {
		goto out;
	}
	c->oneshot = 1;
	rc = httpc_request(c, method, path, headers, body, body_len, resp, e);
out:
	httpc_close(c);
	return rc;
}
