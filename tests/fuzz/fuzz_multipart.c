/*
 * Fuzz multipart/form-data handling in common/httpd: the fuzzer's bytes are
 * the body of a POST with a fixed boundary, served through libmicrohttpd's
 * post processor and our part iterator by an injected plain connection
 * (no TLS: httpd_inject_connection). The first byte picks the route limits.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/httpd.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_state {
	uint64_t total;
	unsigned parts;
	char last[64];
};

static int
fz_begin(struct httpd_req *r, void *arg)
{
	(void)arg;
	httpd_req_set_data(r, calloc(1, sizeof(struct fz_state)));
	return 0;
}

static int
fz_data(struct httpd_req *r, const struct httpd_part *part, const char *d, size_t len, void *arg)
{
	struct fz_state *st = httpd_req_data(r);

	(void)arg;
	if (st == NULL || part == NULL || part->name == NULL) {
		__builtin_trap();
	}
	if (part->offset == 0) {
		st->parts++;
		snprintf(st->last, sizeof(st->last), "%s", part->name);
	}
	for (size_t i = 0; i < len; i++) {
		st->total += (unsigned char)d[i];
	}
	if (st->parts > 16) {
		httpd_respond_error(r, 400, "too many parts");
		return -1;
	}
	return 0;
}

static void
fz_end(struct httpd_req *r, void *arg)
{
	(void)arg;
	httpd_respond_error(r, 200, "ok");
}

static void
fz_cleanup(struct httpd_req *r, void *arg, int completed)
{
	(void)arg;
	(void)completed;
	free(httpd_req_data(r));
}

static const struct httpd_route fz_routes[] = {
	{ .method = "POST", .path = "/form", .max_body = 1 << 20, .multipart = 1,
	    .on_begin = fz_begin, .on_data = fz_data, .on_end = fz_end,
	    .on_cleanup = fz_cleanup },
	{ .method = "POST", .path = "/tiny", .max_body = 64, .multipart = 1,
	    .on_begin = fz_begin, .on_data = fz_data, .on_end = fz_end,
	    .on_cleanup = fz_cleanup },
};

static struct httpd *fz_srv;

static void
fz_init(void)
{
	struct httpd_opts o;
	struct err err = ERR_INIT;

	log_init("fuzz", LOG_LVL_ERROR);
	httpd_opts_init(&o);
	o.listen_fd = HTTPD_NO_LISTEN;
	o.routes = fz_routes;
	o.nroutes = 2;
	o.idle_timeout_s = 2;
	o.name = "fuzz";
	if (httpd_start(&o, &fz_srv, &err) != 0) {
		fprintf(stderr, "httpd_start: %s\n", err_msg(&err));
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_identity id;
	char head[512];
	char buf[4096];
	int sp[2];

	if (fz_srv == NULL) {
		fz_init();
	}
	if (size < 1) {
		return 0;
	}
	const char *path = (data[0] & 1) ? "/tiny" : "/form";
	data++;
	size--;
	memset(&id, 0, sizeof(id));
	snprintf(id.cn, sizeof(id.cn), "tandem-master");
	id.role = TLS_ROLE_MASTER;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		return 0;
	}
	if (httpd_inject_connection(fz_srv, sp[1], &id) != 0) {
		close(sp[0]);
		return 0;
	}
	int hl = snprintf(head, sizeof(head),
	    "POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: %zu\r\n\r\n",
	    path, size);
	/* Write and read interleaved so neither side blocks on a full buffer. */
	size_t off = 0;
	size_t total = (size_t)hl + size;
	for (;;) {
		struct pollfd p = { .fd = sp[0], .events = POLLIN, .revents = 0 };
		if (off < total) {
			p.events |= POLLOUT;
		}
		if (poll(&p, 1, 5000) <= 0) {
			break;
		}
		if (p.revents & POLLOUT) {
			const char *src = off < (size_t)hl ? head + off : (const char *)data + (off - (size_t)hl);
			size_t len = off < (size_t)hl ? (size_t)hl - off : total - off;
			ssize_t n = send(sp[0], src, len, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				off += (size_t)n;
			} else if (n < 0) {
				off = total;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(sp[0], buf, sizeof(buf), MSG_DONTWAIT);
			if (n <= 0) {
				break;
			}
		}
	}
	close(sp[0]);
	return 0;
}
