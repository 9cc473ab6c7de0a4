/*
 * Unit tests for common/httpc: the response parser with every framing, fed
 * whole and in small pieces, and whole exchanges over an AF_UNIX socketpair
 * against a small scripted server thread (keep-alive, close, streamed and
 * multipart uploads, early answers, timeouts, header validation), and a
 * few exchanges over real mutual TLS on 127.0.0.1 (certificates from our
 * pki module) where the TLS record layer changes what httpc must do.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include "common/fs.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/version.h"
#include "pki/pki.h"
#include "tests/unit/tmpdir.h"

/* ---- the parser ---- */

static const size_t steps[] = { 0, 1, 3, 7 };

/* Parse RAW with every step size; all must agree. Returns the last result in OUT. */
static int
parse_all(const char *raw, size_t len, int is_head, size_t max_body, struct httpc_response *out,
    struct err *err)
{
	int rc0 = 0;

	for (size_t i = 0; i < ARRAY_LEN(steps); i++) {
		struct httpc_response r;
		struct err e = ERR_INIT;
		int rc = httpc_parse_response_buffer(raw, len, is_head, max_body, steps[i], &r, &e);
		if (i == 0) {
			rc0 = rc;
			*out = r;
			err_copy(err, &e);
			continue;
		}
		assert_int_equal(rc, rc0);
		if (rc == 0) {
			assert_int_equal(r.status, out->status);
			assert_int_equal(r.body_len, out->body_len);
			assert_memory_equal(r.body, out->body, r.body_len + 1);
			assert_string_equal(r.content_type, out->content_type);
			assert_string_equal(r.retry_after, out->retry_after);
			assert_int_equal(r.keep_alive, out->keep_alive);
		} else {
			/* On failure OUT is empty and the reason does not depend on the step. */
			assert_null(r.body);
			assert_int_equal(r.status, 0);
			assert_string_equal(err_msg(&e), err_msg(err));
			assert_int_equal(e.kind, err->kind);
		}
		httpc_response_free(&r);
	}
	return rc0;
}

static void
expect_ok(const char *raw, int is_head, size_t max_body, int status, const char *body,
    const char *ctype, int keep_alive)
{
	struct httpc_response r;
	struct err err = ERR_INIT;

	if (parse_all(raw, strlen(raw), is_head, max_body, &r, &err) != 0) {
		fail_msg("parse failed: %s\n--\n%.300s", err_msg(&err), raw);
	}
	assert_int_equal(r.status, status);
	assert_non_null(r.body);
	assert_int_equal(r.body_len, strlen(body));
	assert_string_equal(r.body, body);
	assert_string_equal(r.content_type, ctype);
	assert_int_equal(r.keep_alive, keep_alive);
	httpc_response_free(&r);
	assert_null(r.body);
}

static void
expect_fail(const char *raw, size_t len, int is_head, size_t max_body, const char *needle)
{
	struct httpc_response r;
	struct err err = ERR_INIT;

	if (parse_all(raw, len, is_head, max_body, &r, &err) == 0) {
		fail_msg("parse succeeded (status %d), expected \"%s\"\n--\n%.300s", r.status,
		    needle, raw);
	}
	if (strstr(err_msg(&err), needle) == NULL) {
		fail_msg("error \"%s\" does not contain \"%s\"", err_msg(&err), needle);
	}
	/* A response we cannot use, whatever the reason. */
	assert_int_equal(err.kind, ERR_PROTOCOL);
	assert_null(r.body);
}

static void
test_parse_content_length(void **state)
{
	(void)state;
	expect_ok("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n"
		  "hello",
	    0, 0, 200, "hello", "application/json", 1);
	expect_ok("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", 0, 0, 404, "", "", 1);
	/* HTTP/1.0 is close-by-default unless it asks for keep-alive. */
	expect_ok("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, 200, "ok", "", 0);
	expect_ok("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 0, 0,
	    200, "ok", "", 1);
	expect_ok("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 0, 0, 200,
	    "ok", "", 0);
	/* Exactly at the limit is fine. */
	expect_ok("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 0, 10, 200,
	    "0123456789", "", 1);
	/* Trailing whitespace of a value is dropped, case of names ignored. */
	expect_ok("HTTP/1.1 200 OK\r\nCONTENT-TYPE:   text/plain  \t\r\nContent-Length: 1\r\n\r\nx",
	    0, 0, 200, "x", "text/plain", 1);
}

static void
test_parse_retry_after_and_long_values(void **state)
{
	struct httpc_response r;
	struct err err = ERR_INIT;
	char raw[1024];
	char longct[300];

	(void)state;
	const char *s = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n"
			"Content-Length: 4\r\n\r\nbusy";
	assert_int_equal(parse_all(s, strlen(s), 0, 0, &r, &err), 0);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.retry_after, "5");
	httpc_response_free(&r);

	/* A Content-Type longer than the field is truncated, not an error. */
	memset(longct, 'a', sizeof(longct) - 1);
	longct[sizeof(longct) - 1] = '\0';
	snprintf(raw, sizeof(raw), "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: 0\r\n\r\n",
	    longct);
	assert_int_equal(parse_all(raw, strlen(raw), 0, 0, &r, &err), 0);
	assert_int_equal(strlen(r.content_type), sizeof(r.content_type) - 1);
	httpc_response_free(&r);
}

static void
test_parse_chunked(void **state)
{
	(void)state;
	/* Extensions on chunk sizes, trailers after the last chunk (not reported as headers). */
	expect_ok("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "5;ext=1\r\nhello\r\n"
		  "6;foo=\"bar\";x\r\n world\r\n"
		  "0\r\nX-Trailer: t\r\nContent-Type: evil/trailer\r\n\r\n",
	    0, 0, 200, "hello world", "text/plain", 1);
	expect_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
	    0, 0, 200, "0123456789", "", 1);
	expect_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 0, 200, "", "",
	    1);
	/* Chunked total above the limit, and a chunk size that cannot be a number. */
	expect_fail("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n"
		    "6\r\n012345\r\n0\r\n\r\n",
	    strlen("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n"
		   "6\r\n012345\r\n0\r\n\r\n"),
	    0, 10, "response body exceeds 10 bytes");
	const char *bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n";
	expect_fail(bad, strlen(bad), 0, 0, "malformed response");
	const char *big = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "ffffffffffffffffffff\r\n";
	expect_fail(big, strlen(big), 0, 0, "malformed response");
	/* Both framings at once is a smuggling vector: refused. */
	const char *both = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
			   "5\r\nhello\r\n0\r\n\r\n";
	expect_fail(both, strlen(both), 0, 0, "malformed response");
}

static void
test_parse_close_delimited(void **state)
{
	(void)state;
	expect_ok("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nuntil the end", 0, 0, 200,
	    "until the end", "text/html", 0);
	expect_ok("HTTP/1.0 200 ok\r\n\r\n<html>status</html>\n", 0, 0, 200, "<html>status</html>\n",
	    "", 0);
	expect_ok("HTTP/1.1 200 OK\r\n\r\n", 0, 0, 200, "", "", 0);
	const char *over = "HTTP/1.1 200 OK\r\n\r\n0123456789A";
	expect_fail(over, strlen(over), 0, 10, "response body exceeds 10 bytes");
}

static void
test_parse_no_body(void **state)
{
	(void)state;
	/* 204 and 304 never carry a body, whatever Content-Length says. */
	expect_ok("HTTP/1.1 204 No Content\r\n\r\n", 0, 0, 204, "", "", 1);
	expect_ok("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, 0, 204, "", "", 1);
	expect_ok("HTTP/1.1 304 Not Modified\r\nContent-Length: 100000000\r\n\r\n", 0, 16, 304, "",
	    "", 1);
	expect_ok("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 0, 304, "",
	    "", 1);
	/* An answer to HEAD: the headers describe a body that is not sent. */
	expect_ok("HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: 1000000000\r\n"
		  "\r\n",
	    1, 16, 200, "", "application/gzip", 1);
	expect_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 0, 200, "", "", 1);
	/* The same bytes as an answer to GET are a truncated body. */
	const char *trunc = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
	expect_fail(trunc, strlen(trunc), 0, 0, "before end of body (0 of 10 bytes)");
}

static void
test_parse_interim(void **state)
{
	char raw[4096];
	size_t off = 0;

	(void)state;
	/* Interim responses are skipped, their headers forgotten, even with a Content-Length. */
	expect_ok("HTTP/1.1 100 Continue\r\nContent-Type: interim/x\r\n\r\n"
		  "HTTP/1.1 102 Processing\r\nContent-Length: 3\r\n\r\n"
		  "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
	    0, 0, 201, "ok", "", 1);
	/* Bounded: nine interim responses are too many. */
	for (int i = 0; i < 9; i++) {
		off += (size_t)snprintf(raw + off, sizeof(raw) - off, "HTTP/1.1 100 Continue\r\n\r\n");
	}
	snprintf(raw + off, sizeof(raw) - off, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	expect_fail(raw, strlen(raw), 0, 0, "more than 8 interim (1xx) responses");
	/* An interim response alone is not an answer. */
	const char *only = "HTTP/1.1 100 Continue\r\n\r\n";
	expect_fail(only, strlen(only), 0, 0, "connection closed before end of headers");
}

static void
test_parse_101_refused(void **state)
{
	(void)state;
	const char *up = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\n\r\nbinary-frames";
	expect_fail(up, strlen(up), 0, 0, "unexpected 101 Switching Protocols");
	const char *up2 = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
	expect_fail(up2, strlen(up2), 0, 0, "unexpected 101");
}

static void
test_parse_oversize(void **state)
{
	size_t n = HTTPC_MAX_HEADER_BYTES + 100;
	char *raw = malloc(n + 200);
	size_t off;

	(void)state;
	const char *cl = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789A";
	expect_fail(cl, strlen(cl), 0, 10, "response body exceeds 10 bytes (Content-Length: 11)");
	const char *huge = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n";
	expect_fail(huge, strlen(huge), 0, 0, "response body exceeds 4194304 bytes");

	/* One huge header value. */
	assert_non_null(raw);
	off = (size_t)snprintf(raw, n + 200, "HTTP/1.1 200 OK\r\nX-Big: ");
	memset(raw + off, 'v', n);
	off += n;
	off += (size_t)snprintf(raw + off, 200, "\r\nContent-Length: 0\r\n\r\n");
	expect_fail(raw, off, 0, 0, "response headers exceed");

	/* Many small headers. */
	off = (size_t)snprintf(raw, n + 200, "HTTP/1.1 200 OK\r\n");
	while (off + 20 < n) {
		off += (size_t)snprintf(raw + off, n + 200 - off, "X-H: 0123456789\r\n");
	}
	off += (size_t)snprintf(raw + off, n + 200 - off, "Content-Length: 0\r\n\r\n");
	expect_fail(raw, off, 0, 0, "response headers exceed");
	free(raw);
}

static void
test_parse_garbage(void **state)
{
	static const char *const bad[] = {
		"garbage\r\n\r\n",
		"HTTP/1.1 abc OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		expect_fail(bad[i], strlen(bad[i]), 0, 0, "malformed response");
	}
	const char *v2 = "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
	expect_fail(v2, strlen(v2), 0, 0, "unsupported version HTTP/2.0");
	const char *st = "HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n";
	expect_fail(st, strlen(st), 0, 0, "malformed response: status code 600");
	const char *st2 = "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n";
	expect_fail(st2, strlen(st2), 0, 0, "malformed response: status code 99");
	/* A NUL byte in a header name. */
	const char nul[] = "HTTP/1.1 200 OK\r\nCont\0ent-Length: 0\r\n\r\n";
	expect_fail(nul, sizeof(nul) - 1, 0, 0, "malformed response");
}

static void
test_parse_truncated(void **state)
{
	(void)state;
	expect_fail("", 0, 0, 0, "connection closed without a response");
	const char *h = "HTTP/1.1 200 OK\r\nContent-Len";
	expect_fail(h, strlen(h), 0, 0, "connection closed before end of headers");
	const char *b = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012";
	expect_fail(b, strlen(b), 0, 0, "before end of body (3 of 10 bytes)");
	const char *c = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
	expect_fail(c, strlen(c), 0, 0, "before end of body (3 bytes received)");
	const char *c2 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
	expect_fail(c2, strlen(c2), 0, 0, "before end of body");
}

static void
test_parse_trailing_bytes(void **state)
{
	(void)state;
	/* Anything after a complete response means the stream is out of step. */
	expect_ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 0, 0, 200, "ok", "", 0);
	expect_ok("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
	    0, 0, 200, "ok", "", 0);
	expect_ok("HTTP/1.1 204 No Content\r\n\r\nx", 0, 0, 204, "", "", 0);
}

/* ---- exchanges over a socketpair ---- */

enum srv_mode {
	SRV_KEEPALIVE,      /* answer every request, keep the connection */
	SRV_CANNED,         /* answer every request with srv.canned */
	SRV_ONE_THEN_CLOSE, /* answer one request (keep-alive framing), then close */
	SRV_EARLY_OPEN,     /* after the head: 413, then neither read nor close */
	SRV_EARLY_CLOSE,    /* after the head: 413, then close with the body unread */
	SRV_CLOSE_AT_HEAD,  /* after the head: close without an answer */
	SRV_SILENT,         /* read everything, never answer */
	SRV_PARTIAL,        /* read the request, send half a head, then nothing */
	SRV_NO_READ,        /* never read at all */
};

struct srv {
	int fd;
	enum srv_mode mode;
	pthread_t th;
	const char *canned;
	int nreq;
	/* The last request, head and body as received. */
	char *req;
	size_t req_len;
	size_t head_len;
	uint64_t body_len;
};

static int
srv_send(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Wait (bounded) until the client has closed its end, without reading. */
static void
srv_wait_hangup(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = 0, .revents = 0 };
	int64_t deadline = mono_ms() + 20000;

	while (ms_until(deadline) > 0) {
		if (poll(&pfd, 1, ms_until(deadline)) > 0 && (pfd.revents & POLLHUP) != 0) {
			return;
		}
	}
}

/* Read until the client closes, discarding. */
static void
srv_drain(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), 0) > 0) {
		continue;
	}
}

/*
 * Read one request head (and with BODY its Content-Length body): 1, 0 at EOF,
 * -1. The request is built aside and published in S only once complete, before
 * it is answered, so the test thread reads a stable copy after the answer.
 */
static int
srv_read_request(struct srv *s, int body)
{
	char buf[65536];
	char *req = NULL;
	size_t len = 0;
	size_t head_len = 0;
	uint64_t body_len = 0;
	uint64_t want = 0;
	int rc = -1;

	for (;;) {
		ssize_t n;
		if (head_len == 0) {
			/* Head: read byte-wise so nothing of the body is consumed early. */
			n = recv(s->fd, buf, 1, 0);
		} else {
			uint64_t left = want - body_len;
			if (left == 0 || !body) {
				break;
			}
			n = recv(s->fd, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf), 0);
		}
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			rc = len == 0 ? 0 : -1;
			goto out;
		}
		char *np = realloc(req, len + (size_t)n + 1);
		if (np == NULL) {
			goto out;
		}
		req = np;
		memcpy(req + len, buf, (size_t)n);
		len += (size_t)n;
		req[len] = '\0';
		if (head_len != 0) {
			body_len += (uint64_t)n;
		} else if (len >= 4 && memcmp(req + len - 4, "\r\n\r\n", 4) == 0) {
			const char *cl = strcasestr(req, "\r\nContent-Length: ");
			head_len = len;
			if (cl != NULL) {
				want = strtoull(cl + 18, NULL, 10);
			}
		}
	}
	free(s->req);
	s->req = req;
	s->req_len = len;
	s->head_len = head_len;
	s->body_len = body_len;
	req = NULL;
	rc = 1;
out:
	free(req);
	return rc;
}

static void
srv_answer(struct srv *s)
{
	char resp[256];
	int n;

	s->nreq++;
	if (s->canned != NULL) {
		(void)srv_send(s->fd, s->canned, strlen(s->canned));
		return;
	}
	n = snprintf(resp, sizeof(resp), "req=%d body=%llu", s->nreq,
	    (unsigned long long)s->body_len);
	char out[PATH_MAX];
	int m = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
					   "Content-Length: %d\r\n\r\n%s",
	    n, resp);
	(void)srv_send(s->fd, out, (size_t)m);
}

static const char resp_413[] = "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\n"
			       "Connection: close\r\nContent-Length: 8\r\n\r\ntoo big\n";

static void *
srv_main(void *arg)
{
	struct srv *s = arg;

	switch (s->mode) {
	case SRV_KEEPALIVE:
	case SRV_CANNED:
		while (srv_read_request(s, 1) == 1) {
			srv_answer(s);
		}
		break;
	case SRV_ONE_THEN_CLOSE:
		if (srv_read_request(s, 1) == 1) {
			srv_answer(s);
		}
		break;
	case SRV_EARLY_OPEN:
		if (srv_read_request(s, 0) == 1) {
			s->nreq++;
			(void)srv_send(s->fd, resp_413, sizeof(resp_413) - 1);
			srv_wait_hangup(s->fd);
		}
		break;
	case SRV_EARLY_CLOSE:
		if (srv_read_request(s, 0) == 1) {
			s->nreq++;
			(void)srv_send(s->fd, resp_413, sizeof(resp_413) - 1);
		}
		break;
	case SRV_CLOSE_AT_HEAD:
		(void)srv_read_request(s, 0);
		break;
	case SRV_SILENT:
		srv_drain(s->fd);
		break;
	case SRV_PARTIAL:
		if (srv_read_request(s, 1) == 1) {
			const char *half = "HTTP/1.1 200 OK\r\nContent-";
			(void)srv_send(s->fd, half, strlen(half));
			srv_drain(s->fd);
		}
		break;
	case SRV_NO_READ:
		srv_wait_hangup(s->fd);
		break;
	}
	close(s->fd);
	s->fd = -1;
	return NULL;
}

/* Start a server in MODE (answering CANNED, or a summary when NULL); *C connects to it. */
static void
srv_start(struct srv *s, enum srv_mode mode, const char *canned, const struct httpc_target *t,
    struct httpc_conn **c)
{
	int sv[2];
	struct err err = ERR_INIT;

	memset(s, 0, sizeof(*s));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->fd = sv[1];
	s->mode = mode;
	s->canned = canned;
	if (httpc_conn_from_fd(sv[0], t, c, &err) != 0) {
		fail_msg("httpc_conn_from_fd: %s", err_msg(&err));
	}
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

/* Close the client side (if still open), wait for the server thread. */
static void
srv_finish(struct srv *s, struct httpc_conn **c)
{
	httpc_close(*c);
	*c = NULL;
	assert_int_equal(pthread_join(s->th, NULL), 0);
	free(s->req);
	s->req = NULL;
}

static int
tmpfile_with(size_t size, unsigned seed)
{
	int fd = tmpdir_anon_fd();
	char buf[8192];
	size_t done = 0;

	while (done < size) {
		size_t n = size - done < sizeof(buf) ? size - done : sizeof(buf);
		for (size_t i = 0; i < n; i++) {
			buf[i] = (char)((done + i) * 31u + seed);
		}
		assert_int_equal(write(fd, buf, n), (ssize_t)n);
		done += n;
	}
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void
test_keepalive_reuse(void **state)
{
	struct srv s;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct err err = ERR_INIT;
	char head[256];

	(void)state;
	srv_start(&s, SRV_KEEPALIVE, NULL, NULL, &c);
	for (int i = 1; i <= 3; i++) {
		char want[64];
		assert_true(httpc_conn_usable(c));
		if (httpc_request(c, "GET", "/x?a=1", NULL, NULL, 0, &r, &err) != 0) {
			fail_msg("request %d: %s", i, err_msg(&err));
		}
		assert_int_equal(r.status, 200);
		assert_int_equal(r.keep_alive, 1);
		snprintf(want, sizeof(want), "req=%d body=0", i);
		assert_string_equal(r.body, want);
		assert_string_equal(r.content_type, "text/plain");
		httpc_response_free(&r);
	}
	/* The exact head of a GET: no Content-Length, Host from the (absent) target. */
	snprintf(head, sizeof(head), "GET /x?a=1 HTTP/1.1\r\nHost: localhost\r\n"
	    "User-Agent: tandem/%s\r\n\r\n", tandem_version());
	assert_string_equal(s.req, head);
	/* POST with an in-memory body, and a POST without one still says Content-Length: 0. */
	assert_int_equal(httpc_request(c, "POST", "/p", NULL, "abc", 3, &r, &err), 0);
	assert_string_equal(r.body, "req=4 body=3");
	assert_non_null(strstr(s.req, "\r\nContent-Length: 3\r\n\r\nabc"));
	httpc_response_free(&r);
	assert_int_equal(httpc_request(c, "POST", "/p", NULL, NULL, 0, &r, &err), 0);
	assert_non_null(strstr(s.req, "\r\nContent-Length: 0\r\n\r\n"));
	httpc_response_free(&r);
	assert_true(httpc_conn_usable(c));
	assert_null(httpc_conn_server_identity(c));
	srv_finish(&s, &c);
	assert_int_equal(s.nreq, 5);
}

static void
test_host_header(void **state)
{
	struct srv s;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct httpc_target t;
	struct err err = ERR_INIT;

	(void)state;
	httpc_target_init(&t);
	t.host = "::1";
	t.port = "8766";
	srv_start(&s, SRV_KEEPALIVE, NULL, &t, &c);
	assert_int_equal(httpc_request(c, "GET", "/", NULL, NULL, 0, &r, &err), 0);
	assert_non_null(strstr(s.req, "\r\nHost: [::1]:8766\r\n"));
	httpc_response_free(&r);
	srv_finish(&s, &c);

	/* A host that could inject a header is refused before anything is connected. */
	t.host = "evil\r\nX: y";
	assert_int_not_equal(httpc_conn_from_fd(0, &t, &c, &err), 0);
	assert_non_null(strstr(err_msg(&err), "invalid host"));
}

static void
test_connection_close(void **state)
{
	struct srv s;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct err err = ERR_INIT;
	const char *const hdrs[] = { "Connection: close", NULL };

	(void)state;
	/* We ask for close: the connection is done after the answer. */
	srv_start(&s, SRV_KEEPALIVE, NULL, NULL, &c);
	assert_int_equal(httpc_request(c, "GET", "/a", hdrs, NULL, 0, &r, &err), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.keep_alive, 0);
	assert_non_null(strstr(s.req, "\r\nConnection: close\r\n"));
	httpc_response_free(&r);
	assert_false(httpc_conn_usable(c));
	assert_int_equal(httpc_request(c, "GET", "/b", NULL, NULL, 0, &r, &err), -1);
	assert_non_null(strstr(err_msg(&err), "connection is closed"));
	assert_null(r.body);
	srv_finish(&s, &c);
	assert_int_equal(s.nreq, 1);

	/* The server says close. */
	srv_start(&s, SRV_CANNED, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	    NULL, &c);
	assert_int_equal(httpc_request(c, "GET", "/a", NULL, NULL, 0, &r, &err), 0);
	assert_string_equal(r.body, "ok");
	assert_int_equal(r.keep_alive, 0);
	assert_false(httpc_conn_usable(c));
	httpc_response_free(&r);
	srv_finish(&s, &c);

	/* The server closes a kept-alive connection while idle: detected before sending. */
	srv_start(&s, SRV_ONE_THEN_CLOSE, NULL, NULL, &c);
	assert_int_equal(httpc_request(c, "GET", "/a", NULL, NULL, 0, &r, &err), 0);
	assert_int_equal(r.keep_alive, 1);
	httpc_response_free(&r);
	assert_int_equal(pthread_join(s.th, NULL), 0);
	assert_int_equal(httpc_request(c, "GET", "/b", NULL, NULL, 0, &r, &err), -1);
	assert_non_null(strstr(err_msg(&err), "closed the kept-alive connection"));
	assert_false(httpc_conn_usable(c));
	httpc_close(c);
	free(s.req);

	/* A close-delimited answer works once and ends the connection. */
	srv_start(&s, SRV_ONE_THEN_CLOSE, "HTTP/1.0 200 OK\r\n\r\nstatus page", NULL, &c);
	assert_int_equal(httpc_request(c, "GET", "/", NULL, NULL, 0, &r, &err), 0);
	assert_string_equal(r.body, "status page");
	assert_int_equal(r.keep_alive, 0);
	httpc_response_free(&r);
	srv_finish(&s, &c);
}

struct progress {
	int calls;
	uint64_t last;
	uint64_t total;
	int backwards;
};

static void
on_progress(void *arg, uint64_t sent, uint64_t total)
{
	struct progress *p = arg;

	if (sent < p->last) {
		p->backwards = 1;
	}
	p->calls++;
	p->last = sent;
	p->total = total;
}

static void
test_request_fd_progress(void **state)
{
	const size_t size = 1024 * 1024 + 777;
	struct srv s;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct progress pr;
	struct err err = ERR_INIT;
	char *want = malloc(size);
	int fd = tmpfile_with(size, 7);

	(void)state;
	assert_non_null(want);
	assert_int_equal(pread(fd, want, size, 0), (ssize_t)size);
	memset(&pr, 0, sizeof(pr));
	srv_start(&s, SRV_KEEPALIVE, NULL, NULL, &c);
	if (httpc_request_fd(c, "PUT", "/blob", NULL, "application/octet-stream", fd, size,
		on_progress, &pr, &r, &err) != 0) {
		fail_msg("request_fd: %s", err_msg(&err));
	}
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "req=1 body=1049353");
	httpc_response_free(&r);
	assert_int_equal(s.body_len, size);
	assert_memory_equal(s.req + s.head_len, want, size);
	assert_non_null(strstr(s.req, "\r\nContent-Type: application/octet-stream\r\n"));
	assert_non_null(strstr(s.req, "\r\nContent-Length: 1049353\r\n"));
	/* One call per 64 KiB piece, never backwards, ending at the total. */
	assert_int_equal(pr.calls, (int)((size + HTTPC_STREAM_CHUNK - 1) / HTTPC_STREAM_CHUNK));
	assert_int_equal(pr.last, size);
	assert_int_equal(pr.total, size);
	assert_false(pr.backwards);
	assert_true(httpc_conn_usable(c));

	/* Content-Type both as argument and header is refused; nothing is sent. */
	const char *const ct[] = { "content-type: text/plain", NULL };
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(httpc_request_fd(c, "PUT", "/blob", ct, "application/octet-stream", fd,
			     size, NULL, NULL, &r, &err),
	    -1);
	assert_non_null(strstr(err_msg(&err), "Content-Type given twice"));
	assert_true(httpc_conn_usable(c));

	/* A file shorter than announced: a local error, and the connection is spent. */
	assert_int_equal(lseek(fd, (off_t)size - 100, SEEK_SET), (off_t)size - 100);
	assert_int_equal(httpc_request_fd(c, "PUT", "/blob", NULL, NULL, fd, 1000, NULL, NULL, &r, &err),
	    -1);
	assert_non_null(strstr(err_msg(&err), "read upload file: it ended after 100 of 1000 bytes"));
	assert_false(httpc_conn_usable(c));
	assert_int_equal(httpc_request_fd(c, "PUT", "/blob", NULL, NULL, -1, 1, NULL, NULL, &r, &err),
	    -1);
	srv_finish(&s, &c);
	assert_int_equal(s.nreq, 1);
	close(fd);
	free(want);
}

/* The boundary the client chose, from the recorded request head. */
static void
find_boundary(const struct srv *s, char *out, size_t outlen)
{
	const char *b = strstr(s->req, "\r\nContent-Type: multipart/form-data; boundary=");
	const char *e;

	assert_non_null(b);
	b += strlen("\r\nContent-Type: multipart/form-data; boundary=");
	e = strstr(b, "\r\n");
	assert_non_null(e);
	assert_true((size_t)(e - b) < outlen);
	memcpy(out, b, (size_t)(e - b));
	out[e - b] = '\0';
	/* "tandem-" and 128 random bits in hex. */
	assert_int_equal(strlen(out), 7 + 32);
	assert_true(is_hex_len(out + 7, 32));
}

static void
test_multipart_exact(void **state)
{
	const size_t size = 200 * 1024 + 5;
	const struct httpc_form_field fields[] = {
		{ .name = "sha", .value = "v1.2 label" },
		{ .name = "sha256", .value = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" },
		{ .name = "empty", .value = "" },
		{ .name = "multi", .value = "line one\r\nline two" },
	};
	struct srv s;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct progress pr;
	char boundary[64];
	struct err err = ERR_INIT;
	char *file = malloc(size);
	char *want = malloc(size + 4096);
	size_t wl = 0;
	int fd = tmpfile_with(size, 99);

	(void)state;
	assert_non_null(file);
	assert_non_null(want);
	assert_int_equal(pread(fd, file, size, 0), (ssize_t)size);
	memset(&pr, 0, sizeof(pr));
	srv_start(&s, SRV_KEEPALIVE, NULL, NULL, &c);
	if (httpc_upload_multipart(c, "/update", fields, ARRAY_LEN(fields), "tarball",
		"release.tar.gz", fd, size, on_progress, &pr, &r, &err) != 0) {
		fail_msg("upload: %s", err_msg(&err));
	}
	assert_int_equal(r.status, 200);
	httpc_response_free(&r);
	find_boundary(&s, boundary, sizeof(boundary));

	/* Build the body we expect, independently of the client. */
	for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
		wl += (size_t)snprintf(want + wl, size + 4096 - wl,
		    "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n", boundary,
		    fields[i].name, fields[i].value);
	}
	wl += (size_t)snprintf(want + wl, size + 4096 - wl,
	    "--%s\r\nContent-Disposition: form-data; name=\"tarball\"; "
	    "filename=\"release.tar.gz\"\r\nContent-Type: application/gzip\r\n\r\n",
	    boundary);
	memcpy(want + wl, file, size);
	wl += size;
	wl += (size_t)snprintf(want + wl, size + 4096 - wl, "\r\n--%s--\r\n", boundary);

	assert_int_equal(s.body_len, wl);
	assert_memory_equal(s.req + s.head_len, want, wl);
	char cl[64];
	snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", wl);
	assert_non_null(strstr(s.req, cl));
	assert_true(strncmp(s.req, "POST /update HTTP/1.1\r\n", 23) == 0);
	assert_int_equal(pr.last, wl);
	assert_int_equal(pr.total, wl);
	assert_false(pr.backwards);

	/* Names that would break out of the quoted string are refused; nothing is sent. */
	const struct httpc_form_field badf[] = { { .name = "a\"b", .value = "x" } };
	assert_int_equal(httpc_upload_multipart(c, "/update", badf, 1, "tarball", "f", fd, 1, NULL,
			     NULL, &r, &err),
	    -1);
	assert_non_null(strstr(err_msg(&err), "bad form field name"));
	assert_int_equal(httpc_upload_multipart(c, "/update", NULL, 0, "tarball", "a\r\nb", fd, 1,
			     NULL, NULL, &r, &err),
	    -1);
	assert_true(httpc_conn_usable(c));
	srv_finish(&s, &c);
	assert_int_equal(s.nreq, 1);
	close(fd);
	free(file);
	free(want);
}

static void
test_early_answer(void **state)
{
	const size_t size = 8 * 1024 * 1024;
	struct httpc_target t;
	struct srv s;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct err err = ERR_INIT;
	int fd = tmpfile_with(size, 3);
	int64_t t0;

	(void)state;
	httpc_target_init(&t);
	t.io_timeout_ms = 10000;

	/*
	 * The server answers 413 after the head and stops reading but keeps
	 * the connection open: the blocked upload must notice the answer (not
	 * wait for the 10 s I/O timeout) and return it.
	 */
	srv_start(&s, SRV_EARLY_OPEN, NULL, &t, &c);
	t0 = mono_ms();
	if (httpc_request_fd(c, "POST", "/small", NULL, NULL, fd, size, NULL, NULL, &r, &err) != 0) {
		fail_msg("early answer (open): %s", err_msg(&err));
	}
	assert_int_equal(r.status, 413);
	assert_string_equal(r.body, "too big\n");
	assert_int_equal(r.keep_alive, 0);
	assert_true(mono_ms() - t0 < 5000);
	assert_false(httpc_conn_usable(c));
	httpc_response_free(&r);
	srv_finish(&s, &c);

	/* The server answers 413 and closes with the body unread: the answer, not EPIPE. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	srv_start(&s, SRV_EARLY_CLOSE, NULL, &t, &c);
	if (httpc_request_fd(c, "POST", "/small", NULL, NULL, fd, size, NULL, NULL, &r, &err) != 0) {
		fail_msg("early answer (close): %s", err_msg(&err));
	}
	assert_int_equal(r.status, 413);
	assert_false(httpc_conn_usable(c));
	httpc_response_free(&r);
	srv_finish(&s, &c);

	/* The server closes without any answer: a send error naming the step. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	srv_start(&s, SRV_CLOSE_AT_HEAD, NULL, &t, &c);
	assert_int_equal(httpc_request_fd(c, "POST", "/x", NULL, NULL, fd, size, NULL, NULL, &r, &err),
	    -1);
	assert_true(strncmp(err_msg(&err), "send request: ", 14) == 0);
	assert_null(r.body);
	assert_false(httpc_conn_usable(c));
	srv_finish(&s, &c);
	close(fd);
}

static void
test_timeouts(void **state)
{
	struct httpc_target t;
	struct srv s;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct err err = ERR_INIT;
	int64_t t0;
	int64_t el;
	int fd;

	(void)state;
	/* A server that never answers: the per-I/O timeout ends the wait. */
	httpc_target_init(&t);
	t.io_timeout_ms = 200;
	srv_start(&s, SRV_SILENT, NULL, &t, &c);
	t0 = mono_ms();
	assert_int_equal(httpc_request(c, "GET", "/", NULL, NULL, 0, &r, &err), -1);
	el = mono_ms() - t0;
	assert_string_equal(err_msg(&err), "read response: timed out after 200 ms");
	assert_int_equal(err.kind, ERR_TIMEOUT);
	assert_true(el >= 190 && el < 3000);
	assert_false(httpc_conn_usable(c));
	srv_finish(&s, &c);

	/* Half a head, then silence: the whole-exchange limit ends it. */
	httpc_target_init(&t);
	t.io_timeout_ms = 10000;
	t.total_timeout_ms = 300;
	srv_start(&s, SRV_PARTIAL, NULL, &t, &c);
	t0 = mono_ms();
	assert_int_equal(httpc_request(c, "GET", "/", NULL, NULL, 0, &r, &err), -1);
	el = mono_ms() - t0;
	assert_string_equal(err_msg(&err), "read response: timed out (the exchange is limited to 300 ms)");
	assert_true(el >= 290 && el < 3000);
	srv_finish(&s, &c);

	/* A server that never reads: the upload stalls and the send times out. */
	httpc_target_init(&t);
	t.io_timeout_ms = 200;
	fd = tmpfile_with(4 * 1024 * 1024, 1);
	srv_start(&s, SRV_NO_READ, NULL, &t, &c);
	t0 = mono_ms();
	assert_int_equal(httpc_request_fd(c, "POST", "/", NULL, NULL, fd, 4 * 1024 * 1024, NULL,
			     NULL, &r, &err),
	    -1);
	el = mono_ms() - t0;
	assert_string_equal(err_msg(&err), "send request: timed out after 200 ms");
	assert_true(el >= 190 && el < 3000);
	srv_finish(&s, &c);
	close(fd);
}

static void
test_header_validation(void **state)
{
	static const char *const bad[][2] = {
		{ "X-A: b\r\nX-Injected: 1", "control character" },
		{ "X-A: b\nX-Injected: 1", "control character" },
		{ "X-A: b\rc", "control character" },
		{ "X-A\r\nX-B: c", "is invalid" },
		{ "Bad Name: x", "is invalid" },
		{ "NoColon", "is not \"Name: value\"" },
		{ ": novalue", "is not \"Name: value\"" },
		{ "Host: evil.example", "Host" },
		{ "host: evil.example", "host" },
		{ "Content-Length: 5", "content-length" },
		{ "Transfer-Encoding: chunked", "transfer-encoding" },
	};
	struct srv s;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct err err = ERR_INIT;

	(void)state;
	srv_start(&s, SRV_KEEPALIVE, NULL, NULL, &c);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		const char *const h[] = { "X-Fine: yes", bad[i][0], NULL };
		err_clear(&err);
		assert_int_equal(httpc_request(c, "GET", "/", h, NULL, 0, &r, &err), -1);
		assert_int_equal(err.kind, ERR_BAD_REQUEST);
		if (strcasestr(err_msg(&err), bad[i][1]) == NULL) {
			fail_msg("header \"%s\": error \"%s\" lacks \"%s\"", bad[i][0],
			    err_msg(&err), bad[i][1]);
		}
		assert_null(r.body);
		/* Nothing was sent: the connection is still good. */
		assert_true(httpc_conn_usable(c));
	}
	static const char *const bad_path[] = { "/a b", "a", "/a\r\nX: y", "/\x7f", "", "/\xc3\xa9" };
	for (size_t i = 0; i < ARRAY_LEN(bad_path); i++) {
		assert_int_equal(
		    httpc_request(c, "GET", bad_path[i], NULL, NULL, 0, &r, &err), -1);
		assert_true(httpc_conn_usable(c));
	}
	static const char *const bad_method[] = { "get", "GET ", "G\r\nT", "" };
	for (size_t i = 0; i < ARRAY_LEN(bad_method); i++) {
		assert_int_equal(
		    httpc_request(c, bad_method[i], "/", NULL, NULL, 0, &r, &err), -1);
		assert_string_equal(err_msg(&err), "invalid request method");
	}
	/* After all that, a valid request with custom headers goes through. */
	const char *const ok[] = { "X-Trace: a\tb", "Accept: */*", NULL };
	assert_int_equal(httpc_request(c, "GET", "/fine", ok, NULL, 0, &r, &err), 0);
	assert_non_null(strstr(s.req, "\r\nX-Trace: a\tb\r\nAccept: */*\r\n\r\n"));
	httpc_response_free(&r);
	srv_finish(&s, &c);
	assert_int_equal(s.nreq, 1);
}

static void
test_response_limits_on_wire(void **state)
{
	struct httpc_target t;
	struct srv s;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct err err = ERR_INIT;

	(void)state;
	httpc_target_init(&t);
	t.max_body = 4;
	srv_start(&s, SRV_CANNED, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", &t, &c);
	assert_int_equal(httpc_request(c, "GET", "/", NULL, NULL, 0, &r, &err), -1);
	assert_string_equal(err_msg(&err), "response body exceeds 4 bytes (Content-Length: 5)");
	assert_false(httpc_conn_usable(c));
	srv_finish(&s, &c);

	/* A HEAD answer with a large Content-Length, then the next response on the same connection. */
	srv_start(&s, SRV_CANNED, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", &t, &c);
	assert_int_equal(httpc_request(c, "HEAD", "/", NULL, NULL, 0, &r, &err), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	assert_true(httpc_conn_usable(c));
	httpc_response_free(&r);
	s.canned = "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n";
	assert_int_equal(httpc_request(c, "DELETE", "/", NULL, NULL, 0, &r, &err), 0);
	assert_int_equal(r.status, 204);
	assert_true(httpc_conn_usable(c));
	httpc_response_free(&r);
	/* A chunked answer with a trailer ends exactly at its last CRLF: reusable. */
	s.canned = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "2;x=y\r\nab\r\n1\r\nc\r\n0\r\nX-Sum: 3\r\n\r\n";
	assert_int_equal(httpc_request(c, "GET", "/", NULL, NULL, 0, &r, &err), 0);
	assert_string_equal(r.body, "abc");
	assert_int_equal(r.keep_alive, 1);
	assert_true(httpc_conn_usable(c));
	httpc_response_free(&r);
	/* Bytes beyond the answer: not reusable. */
	s.canned = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxSURPLUS";
	assert_int_equal(httpc_request(c, "GET", "/", NULL, NULL, 0, &r, &err), 0);
	assert_int_equal(r.keep_alive, 0);
	assert_false(httpc_conn_usable(c));
	httpc_response_free(&r);
	srv_finish(&s, &c);
}

static void
test_connect_errors(void **state)
{
	struct httpc_target t;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct err err = ERR_INIT;

	(void)state;
	httpc_target_init(&t);
	t.host = "127.0.0.1";
	t.port = "1";
	assert_int_equal(httpc_connect(NULL, &t, &c, &err), -1);
	assert_null(c);
	assert_non_null(strstr(err_msg(&err), "no TLS context"));
	assert_int_equal(httpc_fetch(NULL, &t, "GET", "/", NULL, NULL, 0, &r, &err), -1);
	assert_null(r.body);
	httpc_close(NULL);
	httpc_response_free(NULL);
	assert_false(httpc_conn_usable(NULL));
}

/* ---- over mutual TLS on 127.0.0.1 ---- */

static const char *g_home;
static char g_srv_crt[PATH_MAX], g_srv_key[PATH_MAX], g_ca[PATH_MAX];
static char g_m_crt[PATH_MAX], g_m_key[PATH_MAX];

static int
tls_group_setup(void **state)
{
	struct err pe = ERR_INIT;
	struct pki_issue_opts o;
	static const char *const sans[] = { "127.0.0.1", "localhost" };

	(void)state;
	log_init("test_httpc", LOG_LVL_ERROR);
	g_home = tmpdir_make("httpc");
	if (g_home == NULL) {
		return -1;
	}
	snprintf(g_ca, sizeof(g_ca), "%s/" PKI_CA_CRT, g_home);
	snprintf(g_m_crt, sizeof(g_m_crt), "%s/" PKI_MASTER_CRT, g_home);
	snprintf(g_m_key, sizeof(g_m_key), "%s/" PKI_MASTER_KEY, g_home);
	snprintf(g_srv_crt, sizeof(g_srv_crt), "%s/server.crt", g_home);
	snprintf(g_srv_key, sizeof(g_srv_key), "%s/server.key", g_home);
	pki_issue_opts_init(&o);
	o.name = "localhost";
	o.role = TLS_ROLE_AGENT;
	o.sans = sans;
	o.n_sans = ARRAY_LEN(sans);
	o.key_out = g_srv_key;
	o.cert_out = g_srv_crt;
	if (pki_init(g_home, NULL, &pe) != 0 ||
	    pki_issue(g_home, &o, &pe) != 0) {
		fprintf(stderr, "test pki: %s\n", err_msg(&pe));
		return -1;
	}
	return 0;
}

static int
tls_group_teardown(void **state)
{
	(void)state;
	return g_home != NULL ? tmpdir_remove() : 0;
}

enum tsrv_mode {
	TSRV_ANSWER,    /* read one request head, answer 200, wait for the client to go */
	TSRV_EARLY_413, /* read the head, answer 413, then neither read nor close */
};

struct tsrv {
	enum tsrv_mode mode;
	struct tls_ctx *ctx;
	int lfd;
	int done[2]; /* the test writes a byte when the client is finished */
	int port;
	pthread_t th;
	int accepted; /* the TLS handshake succeeded */
	char head[4096];
};

/* Read a request head over TLS into T->head: 0, or -1. */
static int
tsrv_read_head(struct tsrv *t, struct tls_conn *c)
{
	size_t len = 0;
	struct err err = ERR_INIT;

	while (len + 1 < sizeof(t->head)) {
		ssize_t n = tls_read_deadline(c, t->head + len, 1, mono_ms() + 10000, &err);
		if (n <= 0) {
			return -1;
		}
		len += (size_t)n;
		t->head[len] = '\0';
		if (len >= 4 && memcmp(t->head + len - 4, "\r\n\r\n", 4) == 0) {
			return 0;
		}
	}
	return -1;
}

/* A loopback port that refuses (bound, never listened) and one that accepts. */
static int
loopback_socket(int do_listen, struct sockaddr_in *sa)
{
	socklen_t slen = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
	if (do_listen) {
		assert_int_equal(listen(fd, 4), 0);
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)sa, &slen), 0);
	return fd;
}

/* Accept one connection, read the start of the ClientHello and close it. */
static void *
cut_main(void *arg)
{
	int lfd = *(int *)arg;
	char buf[64];
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd >= 0) {
		(void)!read(fd, buf, sizeof(buf));
		close(fd);
	}
	return NULL;
}

static void *
tsrv_main(void *arg)
{
	struct tsrv *t = arg;
	struct tls_conn *c = NULL;
	struct tls_identity id;
	struct pollfd pfd = { .fd = t->done[0], .events = POLLIN, .revents = 0 };
	struct err err = ERR_INIT;
	int fd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		return NULL;
	}
	if (tls_accept(t->ctx, fd, &c, &id, &err) != 0) {
		close(fd);
		return NULL;
	}
	t->accepted = 1;
	if (tsrv_read_head(t, c) == 0) {
		const char *resp = t->mode == TSRV_ANSWER
		    ? "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
		    : "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbig\n";
		if (tls_write_all_deadline(c, resp, strlen(resp), mono_ms() + 10000, &err) == 0) {
			/* Bounded: the test always signals. */
			(void)poll(&pfd, 1, 20000);
		}
	}
	tls_close(c);
	return NULL;
}

static struct tls_ctx *
server_ctx(void)
{
	struct tls_opts o;
	struct tls_ctx *ctx = NULL;
	struct err err = ERR_INIT;

	tls_opts_init(&o);
	o.ca_file = g_ca;
	o.cert_file = g_srv_crt;
	o.key_file = g_srv_key;
	if (tls_server_new(&o, &ctx, &err) != 0) {
		fail_msg("tls_server_new: %s", err_msg(&err));
	}
	return ctx;
}

static void
tsrv_start(struct tsrv *t, enum tsrv_mode mode)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(t, 0, sizeof(*t));
	t->mode = mode;
	t->ctx = server_ctx();
	assert_int_equal(pipe2(t->done, O_CLOEXEC), 0);
	t->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(t->lfd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(t->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(t->lfd, 4), 0);
	assert_int_equal(getsockname(t->lfd, (struct sockaddr *)&sa, &sl), 0);
	t->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&t->th, NULL, tsrv_main, t), 0);
}

static void
tsrv_finish(struct tsrv *t)
{
	assert_int_equal(write(t->done[1], "x", 1), 1);
	assert_int_equal(pthread_join(t->th, NULL), 0);
	close(t->done[0]);
	close(t->done[1]);
	close(t->lfd);
	tls_ctx_free(t->ctx);
}

static struct tls_ctx *
client_ctx(void)
{
	struct tls_opts o;
	struct tls_ctx *ctx = NULL;
	struct err err = ERR_INIT;

	tls_opts_init(&o);
	o.ca_file = g_ca;
	o.cert_file = g_m_crt;
	o.key_file = g_m_key;
	if (tls_client_new(&o, &ctx, &err) != 0) {
		fail_msg("tls_client_new: %s", err_msg(&err));
	}
	return ctx;
}

static void
tls_target(struct httpc_target *t, const struct tsrv *s, char *port, size_t portlen)
{
	httpc_target_init(t);
	snprintf(port, portlen, "%d", s->port);
	t->host = "127.0.0.1";
	t->port = port;
	t->io_timeout_ms = 10000;
}

static void
test_tls_fetch_identity_and_pin(void **state)
{
	struct err pe = ERR_INIT;
	struct tls_ctx *cli = client_ctx();
	struct httpc_target t;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct tsrv s;
	char port[8];
	char fp[TLS_FP_HEX_LEN + 1];
	char wrong[TLS_FP_HEX_LEN + 1];
	struct err err = ERR_INIT;

	(void)state;
	assert_int_equal(pki_fingerprint_file(g_srv_crt, fp, &pe), 0);

	/* httpc_fetch: one exchange with Connection: close, pinned to the server's leaf. */
	tsrv_start(&s, TSRV_ANSWER);
	tls_target(&t, &s, port, sizeof(port));
	t.pin_fp = fp;
	if (httpc_fetch(cli, &t, "GET", "/health", NULL, NULL, 0, &r, &err) != 0) {
		fail_msg("fetch: %s", err_msg(&err));
	}
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello");
	assert_int_equal(r.keep_alive, 0);
	httpc_response_free(&r);
	tsrv_finish(&s);
	assert_non_null(strstr(s.head, "GET /health HTTP/1.1\r\n"));
	assert_non_null(strstr(s.head, "\r\nHost: 127.0.0.1:"));
	assert_non_null(strstr(s.head, "\r\nConnection: close\r\n"));

	/* The verified server identity is available on the connection. */
	tsrv_start(&s, TSRV_ANSWER);
	tls_target(&t, &s, port, sizeof(port));
	if (httpc_connect(cli, &t, &c, &err) != 0) {
		fail_msg("connect: %s", err_msg(&err));
	}
	const struct tls_identity *id = httpc_conn_server_identity(c);
	assert_non_null(id);
	assert_string_equal(id->fingerprint, fp);
	assert_string_equal(id->cn, "localhost");
	httpc_close(c);
	tsrv_finish(&s);

	/* A wrong pin fails closed, naming both fingerprints; nothing is sent. */
	memset(wrong, 'a', TLS_FP_HEX_LEN);
	wrong[TLS_FP_HEX_LEN] = '\0';
	tsrv_start(&s, TSRV_ANSWER);
	tls_target(&t, &s, port, sizeof(port));
	t.pin_fp = wrong;
	c = NULL;
	assert_int_equal(httpc_connect(cli, &t, &c, &err), -1);
	assert_null(c);
	assert_non_null(strstr(err_msg(&err), "does not match the pinned"));
	assert_int_equal(err.kind, ERR_PIN_MISMATCH);
	assert_non_null(strstr(err_msg(&err), fp));
	tsrv_finish(&s);
	assert_string_equal(s.head, "");

	/* The hostname is checked when given. */
	tsrv_start(&s, TSRV_ANSWER);
	tls_target(&t, &s, port, sizeof(port));
	t.sni_hostname = "other.example";
	assert_int_equal(httpc_connect(cli, &t, &c, &err), -1);
	assert_true(strncmp(err_msg(&err), "TLS handshake", 13) == 0);
	assert_int_equal(err.kind, ERR_TLS);
	tsrv_finish(&s);

	/*
	 * Nobody listening: refused before any TLS, a different kind than a
	 * failed handshake (the err table gives both exit code 1, HTTP 502).
	 */
	{
		struct sockaddr_in sa;
		socklen_t slen = sizeof(sa);
		int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(lfd >= 0);
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &slen), 0);
		snprintf(port, sizeof(port), "%u", (unsigned)ntohs(sa.sin_port));
		close(lfd); /* bound, never listened: the port refuses */
		httpc_target_init(&t);
		t.host = "127.0.0.1";
		t.port = port;
		assert_int_equal(httpc_connect(cli, &t, &c, &err), -1);
		assert_non_null(strstr(err_msg(&err), "connect to 127.0.0.1:"));
		assert_non_null(strstr(err_msg(&err), "Connection refused"));
		assert_int_equal(err.kind, ERR_UNREACHABLE);
		assert_int_equal(err.sys_errno, ECONNREFUSED);
		assert_int_equal(err_exit_code(err.kind), 1);
	}

	/*
	 * A server that accepts the TCP connection and closes it during the
	 * handshake (an updater at its connection limit): its own kind, which
	 * a push retries as busy, not unreachable.
	 */
	{
		struct sockaddr_in sa;
		int lfd = loopback_socket(1, &sa);
		pthread_t th;
		snprintf(port, sizeof(port), "%u", (unsigned)ntohs(sa.sin_port));
		httpc_target_init(&t);
		t.host = "127.0.0.1";
		t.port = port;
		assert_int_equal(pthread_create(&th, NULL, cut_main, &lfd), 0);
		assert_int_equal(httpc_connect(cli, &t, &c, &err), -1);
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_null(c);
		assert_int_equal(err.kind, ERR_HANDSHAKE_CUT);
		assert_true(strncmp(err_msg(&err), "TLS handshake", 13) == 0);
		close(lfd);
	}
	tls_ctx_free(cli);
}

/* One TLS server connection per rsrv_run: accept, answer 200 "hello", close. */
struct rsrv {
	struct tls_ctx *ctx;
	int lfd;
	int accepted;
	int resumed;
	pthread_t th;
};

static void *
rsrv_main(void *arg)
{
	struct rsrv *r = arg;
	struct tsrv head;
	struct tls_conn *c = NULL;
	struct tls_identity id;
	struct err err = ERR_INIT;
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	int fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		return NULL;
	}
	if (tls_accept(r->ctx, fd, &c, &id, &err) != 0) {
		close(fd);
		return NULL;
	}
	r->accepted = 1;
	r->resumed = id.resumed;
	memset(&head, 0, sizeof(head));
	if (tsrv_read_head(&head, c) == 0) {
		(void)!tls_write_all_deadline(c, resp, strlen(resp), mono_ms() + 10000, &err);
	}
	tls_close(c);
	return NULL;
}

/* One GET /x on a fresh connection to R: 0 with the client's identity, or -1 with ERR. */
static int
rsrv_fetch(struct rsrv *r, struct tls_ctx *cli, const char *port, const char *pin,
    struct tls_identity *id, struct err *err)
{
	struct httpc_target t;
	struct httpc_conn *c = NULL;
	struct httpc_response resp;
	int rc = -1;

	r->accepted = 0;
	r->resumed = -1;
	assert_int_equal(pthread_create(&r->th, NULL, rsrv_main, r), 0);
	httpc_target_init(&t);
	t.host = "127.0.0.1";
	t.port = port;
	t.pin_fp = pin;
	t.io_timeout_ms = 10000;
	memset(&resp, 0, sizeof(resp));
	if (httpc_connect(cli, &t, &c, err) == 0) {
		*id = *httpc_conn_server_identity(c);
		if (httpc_request(c, "GET", "/x", NULL, NULL, 0, &resp, err) == 0) {
			assert_int_equal(resp.status, 200);
			rc = 0;
		}
	}
	httpc_response_free(&resp);
	httpc_close(c);
	assert_int_equal(pthread_join(r->th, NULL), 0);
	return rc;
}

static void
test_tls_resumption(void **state)
{
	struct tls_ctx *cli = client_ctx();
	struct tls_handshake_counts n0;
	struct tls_handshake_counts n1;
	struct tls_identity id;
	struct tls_identity mid;
	struct sockaddr_in sa;
	struct rsrv r;
	struct err err = ERR_INIT;
	struct err pe = ERR_INIT;
	char fp[TLS_FP_HEX_LEN + 1];
	char wrong[TLS_FP_HEX_LEN + 1];
	char port[8];
	const char *serial;

	(void)state;
	assert_int_equal(pki_fingerprint_file(g_srv_crt, fp, &pe), 0);
	memset(wrong, 'a', TLS_FP_HEX_LEN);
	wrong[TLS_FP_HEX_LEN] = '\0';
	memset(&r, 0, sizeof(r));
	r.ctx = server_ctx();
	r.lfd = loopback_socket(1, &sa);
	snprintf(port, sizeof(port), "%u", (unsigned)ntohs(sa.sin_port));
	tls_handshake_counts(&n0);

	/* First connection: a full handshake; the second resumes, on both sides. */
	if (rsrv_fetch(&r, cli, port, fp, &id, &err) != 0) {
		fail_msg("first: %s", err_msg(&err));
	}
	assert_int_equal(id.resumed, 0);
	assert_int_equal(r.resumed, 0);
	if (rsrv_fetch(&r, cli, port, fp, &id, &err) != 0) {
		fail_msg("second: %s", err_msg(&err));
	}
	assert_int_equal(id.resumed, 1);
	assert_int_equal(r.resumed, 1);
	/* The identity of a resumed session is the server's, from the kept certificate. */
	assert_string_equal(id.fingerprint, fp);
	assert_string_equal(id.cn, "localhost");
	tls_handshake_counts(&n1);
	assert_true(n1.client_full - n0.client_full >= 1);
	assert_true(n1.client_resumed - n0.client_resumed >= 1);

	/* Another expected pin offers no session: a full handshake, refused by the pin. */
	assert_int_equal(rsrv_fetch(&r, cli, port, wrong, &id, &err), -1);
	assert_int_equal(err.kind, ERR_PIN_MISMATCH);
	assert_int_equal(r.accepted, 1);
	assert_int_equal(r.resumed, 0);
	/* The right pin still resumes. */
	if (rsrv_fetch(&r, cli, port, fp, &id, &err) != 0) {
		fail_msg("after wrong pin: %s", err_msg(&err));
	}
	assert_int_equal(id.resumed, 1);

	/* A revoked server certificate is refused on a resumed session too. */
	serial = id.serial;
	assert_int_equal(tls_revoked_set(&serial, 1, &err), 0);
	assert_int_equal(rsrv_fetch(&r, cli, port, fp, &id, &err), -1);
	assert_int_equal(err.kind, ERR_TLS);
	assert_non_null(strstr(err_msg(&err), "is revoked"));
	assert_int_equal(r.resumed, 1);
	assert_int_equal(tls_revoked_set(NULL, 0, &err), 0);
	/* The failure forgot the session: the next handshake is full, then resumes again. */
	if (rsrv_fetch(&r, cli, port, fp, &id, &err) != 0) {
		fail_msg("after revocation lifted: %s", err_msg(&err));
	}
	assert_int_equal(id.resumed, 0);
	assert_int_equal(r.resumed, 0);

	/*
	 * The server refuses a revoked client (the master) on a resumed session
	 * too: the client offers the session of the exchange above.
	 */
	assert_int_equal(tls_identity_from_file(g_m_crt, NULL, &mid, &err), 0);
	serial = mid.serial;
	assert_int_equal(tls_revoked_set(&serial, 1, &err), 0);
	assert_int_equal(rsrv_fetch(&r, cli, port, fp, &id, &err), -1);
	assert_int_equal(r.accepted, 0);
	assert_int_equal(tls_revoked_set(NULL, 0, &err), 0);
	if (rsrv_fetch(&r, cli, port, fp, &id, &err) != 0) {
		fail_msg("after the master's revocation lifted: %s", err_msg(&err));
	}
	assert_int_equal(r.accepted, 1);
	/*
	 * The client's side of that handshake had completed (the server refuses
	 * after it), so the client kept the session and resumes it now.
	 */
	assert_int_equal(id.resumed, 1);
	assert_int_equal(r.resumed, 1);

	/* A restarted server (new ticket key) refuses the ticket: a full handshake, no error. */
	tls_ctx_free(r.ctx);
	r.ctx = server_ctx();
	if (rsrv_fetch(&r, cli, port, fp, &id, &err) != 0) {
		fail_msg("after restart: %s", err_msg(&err));
	}
	assert_int_equal(id.resumed, 0);
	assert_int_equal(r.resumed, 0);
	if (rsrv_fetch(&r, cli, port, fp, &id, &err) != 0) {
		fail_msg("after restart, again: %s", err_msg(&err));
	}
	assert_int_equal(id.resumed, 1);
	assert_int_equal(r.resumed, 1);

	close(r.lfd);
	tls_ctx_free(r.ctx);
	tls_ctx_free(cli);
}

/* Serve N connections one after the other (accept, answer, close). */
struct msrv {
	struct tls_ctx *ctx;
	int lfd;
	int n;
	atomic_int resumed;
};

static void *
msrv_main(void *arg)
{
	struct msrv *m = arg;

	for (int i = 0; i < m->n; i++) {
		struct rsrv r;
		memset(&r, 0, sizeof(r));
		r.ctx = m->ctx;
		r.lfd = m->lfd;
		r.resumed = -1;
		(void)rsrv_main(&r);
		if (r.resumed == 1) {
			atomic_fetch_add(&m->resumed, 1);
		}
	}
	return NULL;
}

struct mcli {
	struct tls_ctx *cli;
	const char *port;
	int ok;
};

static void *
mcli_main(void *arg)
{
	struct mcli *m = arg;

	for (int i = 0; i < 5; i++) {
		struct httpc_target t;
		struct httpc_response resp;
		struct err err = ERR_INIT;
		httpc_target_init(&t);
		t.host = "127.0.0.1";
		t.port = m->port;
		t.io_timeout_ms = 20000;
		t.connect_timeout_ms = 20000;
		if (httpc_fetch(m->cli, &t, "GET", "/x", NULL, NULL, 0, &resp, &err) == 0 &&
		    resp.status == 200) {
			m->ok++;
		}
		httpc_response_free(&resp);
	}
	return NULL;
}

/* Hosts run in parallel on one context: the cache is shared, locked, and resumes. */
static void
test_tls_resumption_threads(void **state)
{
	struct tls_ctx *cli = client_ctx();
	struct sockaddr_in sa;
	struct msrv m;
	struct mcli c[4];
	pthread_t sth;
	pthread_t cth[4];
	char port[8];

	(void)state;
	memset(&m, 0, sizeof(m));
	m.ctx = server_ctx();
	m.lfd = loopback_socket(1, &sa);
	m.n = 20;
	atomic_init(&m.resumed, 0);
	snprintf(port, sizeof(port), "%u", (unsigned)ntohs(sa.sin_port));
	assert_int_equal(listen(m.lfd, 16), 0);
	assert_int_equal(pthread_create(&sth, NULL, msrv_main, &m), 0);
	for (int i = 0; i < 4; i++) {
		c[i] = (struct mcli){ cli, port, 0 };
		assert_int_equal(pthread_create(&cth[i], NULL, mcli_main, &c[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(cth[i], NULL), 0);
		assert_int_equal(c[i].ok, 5);
	}
	assert_int_equal(pthread_join(sth, NULL), 0);
	/* At most the first connection of each thread is full (they may race to the first). */
	assert_true(atomic_load(&m.resumed) >= 16);
	close(m.lfd);
	tls_ctx_free(m.ctx);
	tls_ctx_free(cli);
}

static void
test_tls_early_answer_while_blocked(void **state)
{
	/* Larger than both loopback socket buffers: the upload must stall. */
	const size_t size = 48 * 1024 * 1024;
	struct tls_ctx *cli = client_ctx();
	struct httpc_target t;
	struct httpc_conn *c = NULL;
	struct httpc_response r;
	struct tsrv s;
	char port[8];
	struct err err = ERR_INIT;
	int fd = tmpfile_with(size, 5);
	int64_t t0;

	(void)state;
	tsrv_start(&s, TSRV_EARLY_413);
	tls_target(&t, &s, port, sizeof(port));
	if (httpc_connect(cli, &t, &c, &err) != 0) {
		fail_msg("connect: %s", err_msg(&err));
	}
	/*
	 * The server answers 413 after the head and stops reading without
	 * closing. The stalled TLS write must read the answer (with an
	 * mbedTLS write pending) instead of waiting for the 10 s I/O timeout.
	 */
	t0 = mono_ms();
	if (httpc_request_fd(c, "POST", "/small", NULL, NULL, fd, size, NULL, NULL, &r, &err) != 0) {
		fail_msg("early answer over TLS: %s", err_msg(&err));
	}
	assert_int_equal(r.status, 413);
	assert_string_equal(r.body, "big\n");
	assert_true(mono_ms() - t0 < 5000);
	assert_false(httpc_conn_usable(c));
	httpc_response_free(&r);
	httpc_close(c);
	tsrv_finish(&s);
	close(fd);
	tls_ctx_free(cli);
}

static void
test_tcp_connect_later_address(void **state)
{
	struct sockaddr_in refused;
	struct sockaddr_in open_sa;
	struct addrinfo a1;
	struct addrinfo a2;
	struct err err = ERR_INIT;
	int rfd = loopback_socket(0, &refused);
	int lfd = loopback_socket(1, &open_sa);
	int fd;

	(void)state;
	close(rfd); /* bound, never listened: refuses */
	memset(&a1, 0, sizeof(a1));
	a1.ai_family = AF_INET;
	a1.ai_socktype = SOCK_STREAM;
	a1.ai_addr = (struct sockaddr *)&refused;
	a1.ai_addrlen = sizeof(refused);
	a2 = a1;
	a2.ai_addr = (struct sockaddr *)&open_sa;
	a1.ai_next = &a2;

	/* The first address refuses, the second connects: no error is left behind. */
	fd = httpc_tcp_connect_list(&a1, "two.example", "1", mono_ms() + 5000, 5000, &err);
	assert_true(fd >= 0);
	assert_false(err_failed(&err));
	assert_string_equal(err_msg(&err), "");
	close(fd);

	/* Only the refusing address: the last reason, kind unreachable. */
	a1.ai_next = NULL;
	fd = httpc_tcp_connect_list(&a1, "one.example", "1", mono_ms() + 5000, 5000, &err);
	assert_int_equal(fd, -1);
	assert_int_equal(err.kind, ERR_UNREACHABLE);
	assert_non_null(strstr(err_msg(&err), "Connection refused"));

	/* No address at all. */
	err_clear(&err);
	fd = httpc_tcp_connect_list(NULL, "none.example", "1", mono_ms() + 5000, 5000, &err);
	assert_int_equal(fd, -1);
	assert_int_equal(err.kind, ERR_UNREACHABLE);
	assert_string_equal(err_msg(&err), "connect to none.example:1: no usable address");
	close(lfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_content_length),
		cmocka_unit_test(test_tcp_connect_later_address),
		cmocka_unit_test(test_parse_retry_after_and_long_values),
		cmocka_unit_test(test_parse_chunked),
		cmocka_unit_test(test_parse_close_delimited),
		cmocka_unit_test(test_parse_no_body),
		cmocka_unit_test(test_parse_interim),
		cmocka_unit_test(test_parse_101_refused),
		cmocka_unit_test(test_parse_oversize),
		cmocka_unit_test(test_parse_garbage),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_trailing_bytes),
		cmocka_unit_test(test_keepalive_reuse),
		cmocka_unit_test(test_host_header),
		cmocka_unit_test(test_connection_close),
		cmocka_unit_test(test_request_fd_progress),
		cmocka_unit_test(test_multipart_exact),
		cmocka_unit_test(test_early_answer),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_header_validation),
		cmocka_unit_test(test_response_limits_on_wire),
		cmocka_unit_test(test_connect_errors),
	};

	const struct CMUnitTest tls_tests[] = {
		cmocka_unit_test(test_tls_fetch_identity_and_pin),
		cmocka_unit_test(test_tls_resumption),
		cmocka_unit_test(test_tls_resumption_threads),
		cmocka_unit_test(test_tls_early_answer_while_blocked),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);

	return failed + cmocka_run_group_tests(tls_tests, tls_group_setup, tls_group_teardown);
}
