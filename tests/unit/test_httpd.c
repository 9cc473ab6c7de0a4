/*
 * Unit tests for common/httpd: a server on 127.0.0.1:0 in-process with a
 * route table, driven over real mTLS connections made with common/tls
 * (certificates from the openssl CLI at setup), plus httpd_inject_connection
 * for identities no CA-signed certificate can carry.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cJSON.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/util.h"
#include "tests/unit/tmpdir.h"

static const char *g_dir;
static struct tls_ctx *g_server_tls;
static struct tls_ctx *g_master;
static struct tls_ctx *g_agent;

/* ---- certificates (openssl CLI) ---- */

static int
run_argv(const char *const argv[])
{
	pid_t pid = fork();
	int st;

	if (pid < 0) {
		return -1;
	}
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)dup2(fd, 1);
			(void)dup2(fd, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			return -1;
		}
	}
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void
path_of(char *buf, size_t len, const char *name, const char *ext)
{
	int n = snprintf(buf, len, "%s/%s.%s", g_dir, name, ext);

	if (n < 0 || (size_t)n >= len) {
		abort();
	}
}

/*
 * NAME.key, a new P-256 key, and NAME.crt, its certificate with subject
 * SUBJ and the extensions EXTS (lines of an openssl config section), signed
 * by ca.key or (CA 0) self-signed: one openssl process, req -x509 making
 * the key and the certificate, with -CA signing it (OpenSSL 3.0), its
 * config NAME.cnf. With CA 0 the argument list ends where -CA would be.
 */
static int
new_cert(int ca, const char *name, const char *subj, const char *exts)
{
	char key[256], crt[256], cnf[256], cacrt[256], cakey[256];
	const char *argv[] = { "openssl", "req", "-x509", "-config", cnf, "-newkey", "ec",
		"-pkeyopt", "ec_paramgen_curve:P-256", "-noenc", "-keyout", key, "-out", crt,
		"-days", "30", "-subj", subj, ca ? "-CA" : NULL, cacrt, "-CAkey", cakey, NULL };
	FILE *f;

	path_of(key, sizeof(key), name, "key");
	path_of(crt, sizeof(crt), name, "crt");
	path_of(cnf, sizeof(cnf), name, "cnf");
	path_of(cacrt, sizeof(cacrt), "ca", "crt");
	path_of(cakey, sizeof(cakey), "ca", "key");
	f = fopen(cnf, "we");
	if (f == NULL) {
		return -1;
	}
	fprintf(f, "[req]\ndistinguished_name = dn\nx509_extensions = ext\n[dn]\n[ext]\n%s", exts);
	if (fclose(f) != 0) {
		return -1;
	}
	if (run_argv(argv) != 0) {
		return -1;
	}
	return chmod(key, 0600);
}

static int
issue(const char *name, const char *subj, const char *eku)
{
	char exts[256];

	snprintf(exts, sizeof(exts),
	    "basicConstraints=critical,CA:FALSE\n"
	    "keyUsage=critical,digitalSignature\n"
	    "extendedKeyUsage=%s\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
	    eku);
	return new_cert(1, name, subj, exts);
}

static struct tls_ctx *
load_ctx(const char *name, int server)
{
	struct tls_opts o;
	struct tls_ctx *ctx = NULL;
	struct err err = ERR_INIT;
	char ca[256], crt[256], key[256];

	tls_opts_init(&o);
	path_of(ca, sizeof(ca), "ca", "crt");
	path_of(crt, sizeof(crt), name, "crt");
	path_of(key, sizeof(key), name, "key");
	o.ca_file = ca;
	o.cert_file = crt;
	o.key_file = key;
	if ((server ? tls_server_new(&o, &ctx, &err)
		    : tls_client_new(&o, &ctx, &err)) != 0) {
		fprintf(stderr, "%s: %s\n", name, err_msg(&err));
		return NULL;
	}
	return ctx;
}

static int
group_setup(void **state)
{
	(void)state;
	log_init("test_httpd", getenv("TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	g_dir = tmpdir_make("httpd");
	if (g_dir == NULL) {
		return -1;
	}
	if (new_cert(0, "ca", "/CN=Unit CA",
		"basicConstraints=critical,CA:TRUE,pathlen:0\n"
		"keyUsage=critical,keyCertSign,cRLSign\n") != 0 ||
	    issue("server", "/CN=localhost/OU=agent", "serverAuth") != 0 ||
	    issue("master", "/CN=tandem-master/OU=master", "clientAuth") != 0 ||
	    issue("agent", "/CN=host1/OU=agent", "clientAuth") != 0) {
		fprintf(stderr, "openssl failed while generating test certificates\n");
		return -1;
	}
	g_server_tls = load_ctx("server", 1);
	g_master = load_ctx("master", 0);
	g_agent = load_ctx("agent", 0);
	return g_server_tls && g_master && g_agent ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	tls_ctx_free(g_server_tls);
	tls_ctx_free(g_master);
	tls_ctx_free(g_agent);
	return tmpdir_remove();
}

/* ---- routes under test ---- */

static uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h = (h ^ b[i]) * 0x100000001b3ULL;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL
#define MAX_PARTS 4

struct part_rec {
	char name[32];
	char filename[32];
	char content_type[48];
	uint64_t bytes;
	uint64_t hash;
	int offsets_ok;
};

struct req_state {
	uint64_t bytes;
	uint64_t hash;
	size_t chunks;
	size_t max_chunk;
	struct part_rec parts[MAX_PARTS];
	size_t nparts;
};

/* What the handlers saw, for the test to check. */
static struct {
	atomic_int begins;
	atomic_int ends;
	atomic_int cleanups;
	atomic_int cleanups_incomplete;
	struct req_state last; /* copied in on_cleanup */
} g_seen;

static void
seen_reset(void)
{
	atomic_store(&g_seen.begins, 0);
	atomic_store(&g_seen.ends, 0);
	atomic_store(&g_seen.cleanups, 0);
	atomic_store(&g_seen.cleanups_incomplete, 0);
	memset(&g_seen.last, 0, sizeof(g_seen.last));
}

static int
sink_begin(struct httpd_req *r, void *arg)
{
	struct req_state *st = calloc(1, sizeof(*st));

	(void)arg;
	atomic_fetch_add(&g_seen.begins, 1);
	if (st == NULL) {
		httpd_respond_error(r, 500, "oom");
		return -1;
	}
	st->hash = FNV_INIT;
	httpd_req_set_data(r, st);
	return 0;
}

static int
sink_data(struct httpd_req *r, const struct httpd_part *part, const char *data, size_t len,
    void *arg)
{
	struct req_state *st = httpd_req_data(r);

	(void)arg;
	st->chunks++;
	if (len > st->max_chunk) {
		st->max_chunk = len;
	}
	if (part == NULL) {
		st->bytes += len;
		st->hash = fnv1a(st->hash, data, len);
		return 0;
	}
	struct part_rec *p = st->nparts > 0 ? &st->parts[st->nparts - 1] : NULL;
	if (p == NULL || strcmp(p->name, part->name) != 0 || part->offset == 0) {
		if (st->nparts == MAX_PARTS) {
			httpd_respond_error(r, 400, "too many parts");
			return -1;
		}
		p = &st->parts[st->nparts++];
		snprintf(p->name, sizeof(p->name), "%s", part->name);
		snprintf(p->filename, sizeof(p->filename), "%s",
		    part->filename ? part->filename : "");
		snprintf(p->content_type, sizeof(p->content_type), "%s",
		    part->content_type ? part->content_type : "");
		p->hash = FNV_INIT;
		p->offsets_ok = 1;
	}
	if (part->offset != p->bytes) {
		p->offsets_ok = 0;
	}
	p->bytes += len;
	p->hash = fnv1a(p->hash, data, len);
	return 0;
}

static void
sink_end(struct httpd_req *r, void *arg)
{
	struct req_state *st = httpd_req_data(r);
	cJSON *o = cJSON_CreateObject();
	char h[32];

	(void)arg;
	atomic_fetch_add(&g_seen.ends, 1);
	snprintf(h, sizeof(h), "%016llx", (unsigned long long)st->hash);
	cJSON_AddNumberToObject(o, "bytes", (double)st->bytes);
	cJSON_AddStringToObject(o, "hash", h);
	cJSON_AddNumberToObject(o, "body_bytes", (double)httpd_req_body_bytes(r));
	httpd_respond_json(r, 200, o);
}

static void
sink_cleanup(struct httpd_req *r, void *arg, int completed)
{
	struct req_state *st = httpd_req_data(r);

	(void)arg;
	if (st != NULL) {
		g_seen.last = *st;
		free(st);
		httpd_req_set_data(r, NULL);
	}
	if (!completed) {
		atomic_fetch_add(&g_seen.cleanups_incomplete, 1);
	}
	atomic_fetch_add(&g_seen.cleanups, 1);
}

static void
hello_end(struct httpd_req *r, void *arg)
{
	const struct tls_identity *id = httpd_req_identity(r);
	char body[256];
	int n;

	(void)arg;
	atomic_fetch_add(&g_seen.ends, 1);
	if (httpd_add_header(r, "X-Test", "yes") != 0 ||
	    httpd_add_header(r, "X-Bad", "a\r\nInjected: 1") == 0 ||
	    httpd_add_header(r, "X-Bad:", "b") == 0) {
		httpd_respond_error(r, 500, "header checks failed");
		return;
	}
	n = snprintf(body, sizeof(body), "hello %s %s %s %s", tls_role_name(id->role), id->cn,
	    httpd_req_peer(r), httpd_req_method(r));
	httpd_respond(r, 200, "text/plain", body, (size_t)n);
	/* A second response is ignored. */
	httpd_respond(r, 500, "text/plain", "no", 2);
}

static void
admin_end(struct httpd_req *r, void *arg)
{
	(void)arg;
	atomic_fetch_add(&g_seen.ends, 1);
	httpd_respond(r, 200, "text/plain", "admin ok", 8);
}

static int
refuse_begin(struct httpd_req *r, void *arg)
{
	(void)arg;
	atomic_fetch_add(&g_seen.begins, 1);
	httpd_respond_error(r, 422, "refused by on_begin: %s", "policy");
	return -1;
}

static void
wait_end(struct httpd_req *r, void *arg)
{
	int64_t deadline = mono_ms() + 10000;

	(void)arg;
	atomic_fetch_add(&g_seen.ends, 1);
	while (!httpd_req_stopping(r) && ms_until(deadline) > 0) {
		struct pollfd none = { .fd = -1, .events = 0, .revents = 0 };
		(void)poll(&none, 1, 10);
	}
	if (httpd_req_stopping(r)) {
		httpd_respond(r, 200, "text/plain", "stopped early", 13);
	} else {
		httpd_respond(r, 200, "text/plain", "timeout", 7);
	}
}

#define MIB (1024ULL * 1024)
#define BIG_RESPONSE (8 * MIB)

static void
big_end(struct httpd_req *r, void *arg)
{
	char *body = malloc(BIG_RESPONSE);

	(void)arg;
	if (body == NULL) {
		httpd_respond_error(r, 500, "oom");
		return;
	}
	memset(body, 'B', BIG_RESPONSE);
	httpd_respond(r, 200, "application/octet-stream", body, BIG_RESPONSE);
	free(body);
}

static const struct httpd_route g_routes[] = {
	{ .method = "GET", .path = "/big", .on_end = big_end },
	{ .method = "GET", .path = "/hello", .on_end = hello_end },
	{ .method = "POST", .path = "/hello", .max_body = 64, .on_begin = sink_begin,
	    .on_data = sink_data, .on_end = sink_end, .on_cleanup = sink_cleanup },
	{ .method = "GET", .path = "/admin", .roles = TLS_ROLEBIT(TLS_ROLE_MASTER),
	    .on_end = admin_end },
	{ .method = "GET", .path = "/open", .roles = TLS_ROLES_ANY, .on_end = admin_end },
	{ .method = "POST", .path = "/sink", .max_body = 64 * MIB, .on_begin = sink_begin,
	    .on_data = sink_data, .on_end = sink_end, .on_cleanup = sink_cleanup },
	{ .method = "POST", .path = "/small", .max_body = 100, .on_begin = sink_begin,
	    .on_data = sink_data, .on_end = sink_end, .on_cleanup = sink_cleanup },
	{ .method = "POST", .path = "/nobody", .on_end = admin_end },
	{ .method = "POST", .path = "/form", .max_body = 64 * MIB, .multipart = 1,
	    .on_begin = sink_begin, .on_data = sink_data, .on_end = sink_end,
	    .on_cleanup = sink_cleanup },
	{ .method = "POST", .path = "/refuse", .max_body = MIB, .on_begin = refuse_begin,
	    .on_data = sink_data, .on_end = sink_end },
	{ .method = "POST", .path = "/deadline", .max_body = MIB, .deadline_ms = 300,
	    .on_begin = sink_begin, .on_data = sink_data, .on_end = sink_end,
	    .on_cleanup = sink_cleanup },
	{ .method = "GET", .path = "/wait", .on_end = wait_end },
};

static struct httpd *
start_server_idle(enum httpd_error_style style, unsigned idle_s)
{
	struct httpd_opts o;
	struct httpd *srv = NULL;
	struct err err = ERR_INIT;

	httpd_opts_init(&o);
	if (idle_s > 0) {
		o.idle_timeout_s = idle_s;
	}
	o.listen = "127.0.0.1:0";
	o.tls = g_server_tls;
	o.routes = g_routes;
	o.nroutes = ARRAY_LEN(g_routes);
	o.name = "unit";
	o.error_style = style;
	if (httpd_start(&o, &srv, &err) != 0) {
		fail_msg("httpd_start: %s", err_msg(&err));
	}
	assert_true(httpd_port(srv) > 0);
	seen_reset();
	return srv;
}

static struct httpd *
start_server(enum httpd_error_style style)
{
	return start_server_idle(style, 0);
}

/* ---- a minimal HTTP client over common/tls ---- */

struct cli {
	struct tls_conn *c;
	char buf[128 * 1024];
	size_t len;
};

struct resp {
	unsigned status;
	char head[4096];
	char *body;
	size_t body_len;
};

static void
cli_open(struct cli *k, struct httpd *srv, struct tls_ctx *who)
{
	struct sockaddr_in sin;
	struct err err = ERR_INIT;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)httpd_port(srv));
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	k->len = 0;
	k->c = NULL;
	if (tls_connect(who, fd, "localhost", tls_ctx_own_fingerprint(g_server_tls), 5000, &k->c,
		NULL, &err) != 0) {
		close(fd);
		fail_msg("tls_connect: %s", err_msg(&err));
	}
}

static void
cli_close(struct cli *k)
{
	tls_close(k->c);
	k->c = NULL;
}

static int
cli_send(struct cli *k, const void *p, size_t n)
{
	struct err err = ERR_INIT;

	return tls_write_all_deadline(k->c, p, n, mono_ms() + 10000, &err);
}

static int
cli_fill(struct cli *k, int64_t deadline)
{
	struct err err = ERR_INIT;
	ssize_t n;

	if (k->len == sizeof(k->buf)) {
		return -1;
	}
	n = tls_read_deadline(k->c, k->buf + k->len, sizeof(k->buf) - k->len, deadline, &err);
	if (n <= 0) {
		return -1;
	}
	k->len += (size_t)n;
	return 0;
}

static const char *
resp_header(const struct resp *r, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ') {
				v++;
			}
			const char *e = strstr(v, "\r\n");
			size_t vl = e != NULL ? (size_t)(e - v) : strlen(v);
			if (vl >= outlen) {
				vl = outlen - 1;
			}
			memcpy(out, v, vl);
			out[vl] = '\0';
			return out;
		}
	}
	return NULL;
}

/* Read one response (Content-Length bodies); -1 on EOF/timeout first. */
static int
cli_response(struct cli *k, struct resp *r, int head_only)
{
	int64_t deadline = mono_ms() + 10000;
	char *end;
	char v[64];

	memset(r, 0, sizeof(*r));
	for (;;) {
		if (k->len > 0) {
			k->buf[k->len < sizeof(k->buf) ? k->len : sizeof(k->buf) - 1] = '\0';
			end = strstr(k->buf, "\r\n\r\n");
			if (end != NULL) {
				break;
			}
		}
		if (cli_fill(k, deadline) != 0) {
			return -1;
		}
	}
	size_t hl = (size_t)(end - k->buf) + 4;
	if (hl >= sizeof(r->head)) {
		return -1;
	}
	memcpy(r->head, k->buf, hl);
	r->head[hl] = '\0';
	if (sscanf(r->head, "HTTP/1.1 %u", &r->status) != 1) {
		return -1;
	}
	long long cl = 0;
	if (!head_only && resp_header(r, "Content-Length", v, sizeof(v)) != NULL &&
	    parse_ll(v, 0, (long long)sizeof(k->buf), &cl) != 0) {
		return -1;
	}
	while (k->len < hl + (size_t)cl) {
		if (cli_fill(k, deadline) != 0) {
			return -1;
		}
	}
	r->body = malloc((size_t)cl + 1);
	assert_non_null(r->body);
	memcpy(r->body, k->buf + hl, (size_t)cl);
	r->body[cl] = '\0';
	r->body_len = (size_t)cl;
	memmove(k->buf, k->buf + hl + (size_t)cl, k->len - hl - (size_t)cl);
	k->len -= hl + (size_t)cl;
	return 0;
}

static void
resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* 1 once the server closed the connection (EOF or error) within 5 s; 0 if
 * it was still open then. Discards anything the server sends meanwhile. */
static int
cli_sees_close(struct cli *k)
{
	int64_t deadline = mono_ms() + 5000;
	struct err err = ERR_INIT;

	for (;;) {
		ssize_t n = tls_read_deadline(k->c, k->buf, sizeof(k->buf), deadline, &err);
		if (n == 0) {
			return 1;
		}
		if (n < 0) {
			return strcmp(err_msg(&err), "timed out") != 0;
		}
	}
}

/* One request on a fresh connection. */
static void
exchange(struct httpd *srv, struct tls_ctx *who, const char *req, struct resp *r)
{
	struct cli *k = malloc(sizeof(*k));

	assert_non_null(k);
	cli_open(k, srv, who);
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	assert_int_equal(cli_response(k, r, strncmp(req, "HEAD ", 5) == 0), 0);
	cli_close(k);
	free(k);
}

/* The JSON error message of R, or fail. */
static void
assert_json_error(const struct resp *r, const char *needle, int updater_style)
{
	char ct[64];
	cJSON *j = cJSON_Parse(r->body);
	cJSON *detail = cJSON_GetObjectItemCaseSensitive(j, "detail");
	cJSON *e = cJSON_GetObjectItemCaseSensitive(detail, "error");

	assert_non_null(resp_header(r, "Content-Type", ct, sizeof(ct)));
	assert_string_equal(ct, "application/json");
	if (!cJSON_IsString(e) || strstr(e->valuestring, needle) == NULL) {
		cJSON_Delete(j);
		fail_msg("error body %s lacks \"%s\"", r->body, needle);
	}
	assert_int_equal(cJSON_GetArraySize(j), 1);
	if (updater_style) {
		assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(detail, "stderr")));
		assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(detail, "rolled_back")));
		assert_int_equal(cJSON_GetArraySize(detail), 3);
	} else {
		assert_int_equal(cJSON_GetArraySize(detail), 1);
	}
	cJSON_Delete(j);
}

static void
wait_for(atomic_int *v, int want)
{
	int64_t deadline = mono_ms() + 5000;

	while (atomic_load(v) < want && ms_until(deadline) > 0) {
		struct pollfd none = { .fd = -1, .events = 0, .revents = 0 };
		(void)poll(&none, 1, 5);
	}
	assert_int_equal(atomic_load(v), want);
}

static void
wait_idle(struct httpd *srv)
{
	int64_t deadline = mono_ms() + 5000;

	while ((httpd_active_connections(srv) > 0 || httpd_active_requests(srv) > 0) &&
	    ms_until(deadline) > 0) {
		struct pollfd none = { .fd = -1, .events = 0, .revents = 0 };
		(void)poll(&none, 1, 5);
	}
	assert_int_equal(httpd_active_connections(srv), 0);
	assert_int_equal(httpd_active_requests(srv), 0);
}

/* ---- tests ---- */

static void
test_routing_404_405_head(void **state)
{
	struct httpd *srv = start_server(HTTPD_ERRORS_PLAIN);
	struct resp r;
	char v[128];

	(void)state;
	exchange(srv, g_agent, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello agent host1 127.0.0.1 GET");
	assert_non_null(resp_header(&r, "X-Test", v, sizeof(v)));
	assert_null(resp_header(&r, "X-Bad", v, sizeof(v)));
	assert_null(resp_header(&r, "Injected", v, sizeof(v)));
	resp_free(&r);

	exchange(srv, g_agent, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
	assert_json_error(&r, "GET /nope: no such endpoint", 0);
	resp_free(&r);
	/* Exact paths: no prefix or trailing-slash matching. */
	exchange(srv, g_agent, "GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);

	exchange(srv, g_agent, "DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 405);
	assert_json_error(&r, "method not allowed", 0);
	assert_non_null(resp_header(&r, "Allow", v, sizeof(v)));
	assert_string_equal(v, "GET, HEAD, POST");
	resp_free(&r);
	exchange(srv, g_agent, "GET /sink HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 405);
	assert_non_null(resp_header(&r, "Allow", v, sizeof(v)));
	assert_string_equal(v, "POST");
	resp_free(&r);

	/* HEAD is served by the GET route, without a body. */
	exchange(srv, g_agent, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(resp_header(&r, "Content-Length", v, sizeof(v)));
	assert_string_equal(v, "32");
	resp_free(&r);
	httpd_stop(srv, 1000, 0);
}

/* Send REQ on a connection injected with identity ID; the whole answer into BUF. */
static void
inject_request(struct httpd *srv, const struct tls_identity *id, const char *req, char *buf,
    size_t len)
{
	size_t got = 0, n = strlen(req);
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(httpd_inject_connection(srv, sp[1], id), 0);
	assert_int_equal(write(sp[0], req, n), (ssize_t)n);
	for (;;) {
		ssize_t r = read(sp[0], buf + got, len - 1 - got);
		if (r <= 0) {
			break;
		}
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(sp[0]);
}

static void
test_role_mask_403(void **state)
{
	struct httpd *srv = start_server(HTTPD_ERRORS_PLAIN);
	struct resp r;

	(void)state;
	exchange(srv, g_agent, "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 403);
	assert_json_error(&r, "GET /admin is not allowed for agent certificate CN=host1", 0);
	resp_free(&r);
	/* The handler never ran for the refused request. */
	assert_int_equal(atomic_load(&g_seen.ends), 0);
	exchange(srv, g_master, "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "admin ok");
	resp_free(&r);
	assert_int_equal(atomic_load(&g_seen.ends), 1);

	/* A peer with no role is refused (403, before the handler or the body) by
	 * a role mask and by a route that names no roles, and served only by the
	 * routes open to TLS_ROLES_ANY. */
	struct tls_identity id;
	char buf[4096];
	memset(&id, 0, sizeof(id));
	snprintf(id.cn, sizeof(id.cn), "nobody@x");
	id.role = TLS_ROLE_UNKNOWN;
	atomic_store(&g_seen.ends, 0);
	inject_request(srv, &id, "GET /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	    buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 403"));
	assert_non_null(strstr(buf, "not allowed for unknown certificate CN=nobody@x"));
	inject_request(srv, &id, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	    buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 403"));
	assert_non_null(strstr(buf, "GET /hello is not allowed for unknown certificate"));
	inject_request(srv, &id,
	    "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
	    "hello",
	    buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 403"));
	assert_int_equal(atomic_load(&g_seen.ends), 0);
	inject_request(srv, &id, "GET /open HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	    buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200"));
	assert_non_null(strstr(buf, "admin ok"));
	assert_int_equal(atomic_load(&g_seen.ends), 1);
	httpd_stop(srv, 1000, 0);
}

static void
test_body_limits_413(void **state)
{
	struct httpd *srv = start_server(HTTPD_ERRORS_PLAIN);
	struct cli *k = malloc(sizeof(*k));
	struct resp r;
	char req[512];
	char body[300];

	(void)state;
	assert_non_null(k);
	memset(body, 'b', sizeof(body));
	/* Exactly at the limit: fine. */
	cli_open(k, srv, g_agent);
	snprintf(req, sizeof(req), "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	assert_int_equal(cli_send(k, body, 100), 0);
	assert_int_equal(cli_response(k, &r, 0), 0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* One over, announced: refused from the headers, handler never begun. */
	seen_reset();
	snprintf(req, sizeof(req), "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n");
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	assert_int_equal(cli_response(k, &r, 0), 0);
	assert_int_equal(r.status, 413);
	assert_json_error(&r, "exceeds the limit of 100 bytes", 0);
	resp_free(&r);
	assert_int_equal(atomic_load(&g_seen.begins), 0);
	/* ...and the connection is closed rather than the body read. */
	assert_true(cli_sees_close(k));
	cli_close(k);

	/* Chunked, no length: refused from the headers (no chunked bodies). */
	seen_reset();
	cli_open(k, srv, g_agent);
	snprintf(req, sizeof(req),
	    "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n",
	    sizeof(body));
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	assert_int_equal(cli_response(k, &r, 0), 0);
	assert_int_equal(r.status, 400);
	assert_json_error(&r, "Transfer-Encoding is not accepted", 0);
	resp_free(&r);
	assert_int_equal(atomic_load(&g_seen.begins), 0);
	assert_true(cli_sees_close(k));
	cli_close(k);

	/* A route that takes no body. */
	cli_open(k, srv, g_agent);
	snprintf(req, sizeof(req), "POST /nobody HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	assert_int_equal(cli_response(k, &r, 0), 0);
	assert_int_equal(r.status, 413);
	resp_free(&r);
	cli_close(k);
	/* A nonsense Content-Length. */
	cli_open(k, srv, g_agent);
	snprintf(req, sizeof(req), "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n");
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	if (cli_response(k, &r, 0) == 0) {
		assert_int_equal(r.status, 400);
		resp_free(&r);
	}
	cli_close(k);
	free(k);
	wait_idle(srv);
	httpd_stop(srv, 1000, 0);
}

static void
test_streaming_chunks_sum_to_body(void **state)
{
	struct httpd *srv = start_server(HTTPD_ERRORS_PLAIN);
	struct cli *k = malloc(sizeof(*k));
	const size_t total = 5 * MIB + 123;
	unsigned char *body = malloc(total);
	struct resp r;
	char req[256];
	char want[32];
	uint64_t x = 42;

	(void)state;
	assert_non_null(k);
	assert_non_null(body);
	for (size_t i = 0; i < total; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		body[i] = (unsigned char)(x >> 56);
	}
	snprintf(want, sizeof(want), "%016llx", (unsigned long long)fnv1a(FNV_INIT, body, total));
	cli_open(k, srv, g_master);
	snprintf(req, sizeof(req), "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
	    total);
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	assert_int_equal(cli_send(k, body, total), 0);
	assert_int_equal(cli_response(k, &r, 0), 0);
	assert_int_equal(r.status, 200);
	cJSON *j = cJSON_Parse(r.body);
	assert_non_null(j);
	assert_int_equal((size_t)cJSON_GetObjectItem(j, "bytes")->valuedouble, total);
	assert_int_equal((size_t)cJSON_GetObjectItem(j, "body_bytes")->valuedouble, total);
	assert_string_equal(cJSON_GetObjectItem(j, "hash")->valuestring, want);
	cJSON_Delete(j);
	resp_free(&r);
	wait_for(&g_seen.cleanups, 1);
	assert_int_equal(atomic_load(&g_seen.cleanups_incomplete), 0);
	/* Streamed: many chunks, none anywhere near the whole body. */
	assert_true(g_seen.last.chunks > 10);
	assert_true(g_seen.last.max_chunk <= 512 * 1024);

	/* Same connection, a second request: keep-alive survives uploads. */
	snprintf(req, sizeof(req), "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	assert_int_equal(cli_response(k, &r, 0), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"bytes\":3"));
	resp_free(&r);
	assert_int_equal(httpd_active_connections(srv), 1);

	/* A chunked body is refused and the connection closed, the handler never
	 * begun: only Content-Length frames a body. */
	seen_reset();
	snprintf(req, sizeof(req),
	    "POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	assert_int_equal(cli_response(k, &r, 0), 0);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	assert_int_equal(atomic_load(&g_seen.begins), 0);
	assert_true(cli_sees_close(k));
	cli_close(k);
	free(k);
	free(body);
	wait_idle(srv);
	httpd_stop(srv, 1000, 0);
}

static void
test_multipart_parts(void **state)
{
	struct httpd *srv = start_server(HTTPD_ERRORS_PLAIN);
	struct cli *k = malloc(sizeof(*k));
	const size_t flen = MIB + 7;
	unsigned char *file = malloc(flen);
	static const char b1[] = "--XyZzY\r\nContent-Disposition: form-data; name=\"sha\"\r\n\r\n"
				 "v1.0\r\n"
				 "--XyZzY\r\nContent-Disposition: form-data; name=\"tarball\"; "
				 "filename=\"r.tar.gz\"\r\nContent-Type: application/gzip\r\n\r\n";
	static const char b2[] = "\r\n--XyZzY\r\nContent-Disposition: form-data; "
				 "name=\"sha256\"\r\n\r\nabcdef\r\n--XyZzY--\r\n";
	struct resp r;
	char req[256];
	uint64_t x = 7;

	(void)state;
	assert_non_null(k);
	assert_non_null(file);
	for (size_t i = 0; i < flen; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		file[i] = (unsigned char)(x >> 56);
	}
	/* Near-boundaries inside the file must stay data. */
	memcpy(file + 1000, "\r\n--XyZz", 8);
	memcpy(file + flen - 8, "\r\n--XyZ", 7);
	cli_open(k, srv, g_master);
	snprintf(req, sizeof(req),
	    "POST /form HTTP/1.1\r\nHost: x\r\n"
	    "Content-Type: multipart/form-data; boundary=XyZzY\r\nContent-Length: %zu\r\n\r\n",
	    sizeof(b1) - 1 + flen + sizeof(b2) - 1);
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	assert_int_equal(cli_send(k, b1, sizeof(b1) - 1), 0);
	assert_int_equal(cli_send(k, file, flen), 0);
	assert_int_equal(cli_send(k, b2, sizeof(b2) - 1), 0);
	assert_int_equal(cli_response(k, &r, 0), 0);
	if (r.status != 200) {
		fail_msg("multipart upload: %u %s", r.status, r.body);
	}
	resp_free(&r);
	wait_for(&g_seen.cleanups, 1);
	const struct req_state *st = &g_seen.last;
	assert_int_equal(st->nparts, 3);
	assert_string_equal(st->parts[0].name, "sha");
	assert_string_equal(st->parts[0].filename, "");
	assert_int_equal(st->parts[0].bytes, 4);
	assert_int_equal(st->parts[0].hash, fnv1a(FNV_INIT, "v1.0", 4));
	assert_string_equal(st->parts[1].name, "tarball");
	assert_string_equal(st->parts[1].filename, "r.tar.gz");
	assert_string_equal(st->parts[1].content_type, "application/gzip");
	assert_int_equal(st->parts[1].bytes, flen);
	assert_int_equal(st->parts[1].hash, fnv1a(FNV_INIT, file, flen));
	assert_true(st->parts[1].offsets_ok);
	assert_string_equal(st->parts[2].name, "sha256");
	assert_int_equal(st->parts[2].bytes, 6);
	assert_true(st->chunks > 3);
	cli_close(k);

	/* Not multipart, and multipart without a boundary: 400 with JSON. */
	exchange(srv, g_master,
	    "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 0\r\n\r\n",
	    &r);
	assert_int_equal(r.status, 400);
	assert_json_error(&r, "multipart/form-data", 0);
	resp_free(&r);
	exchange(srv, g_master,
	    "POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data\r\n"
	    "Content-Length: 0\r\n\r\n",
	    &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	free(file);
	free(k);
	wait_idle(srv);
	httpd_stop(srv, 1000, 0);
}

static void
test_refusals_and_error_styles(void **state)
{
	struct httpd *srv = start_server(HTTPD_ERRORS_UPDATER);
	struct resp r;

	(void)state;
	/* on_begin refuses with its own status; the body is never read. */
	exchange(srv, g_master,
	    "POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", &r);
	assert_int_equal(r.status, 422);
	assert_json_error(&r, "refused by on_begin: policy", 1);
	resp_free(&r);
	exchange(srv, g_agent, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
	assert_json_error(&r, "no such endpoint", 1);
	resp_free(&r);
	exchange(srv, g_agent, "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 403);
	assert_json_error(&r, "not allowed", 1);
	resp_free(&r);
	wait_idle(srv);
	httpd_stop(srv, 1000, 0);
}

/* Ambiguous framing and cut paths are 400; libmicrohttpd's pages are JSON. */
static void
test_strict_http(void **state)
{
	static const struct {
		const char *req;
		unsigned status;
		const char *needle;
	} cases[] = {
		{ "POST /sink%00 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400,
		    "encoded NUL" },
		{ "GET /hello?x=%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "encoded NUL" },
		{ "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 3\r\n"
		  "\r\nabc",
		    400, "conflicting Content-Length" },
		{ "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n"
		  "\r\nabc",
		    400, "repeated Content-Length" },
		{ "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400,
		    "bad request" }, /* libmicrohttpd's own check */
		{ "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
		  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		    400, "ambiguous" },
		{ "POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "ffffffffffffffff\r\nabc",
		    400, "Transfer-Encoding" },
		/* libmicrohttpd's own refusals. */
		{ "GET /hello HTTP/9.1\r\nHost: x\r\n\r\n", 505, "HTTP version not supported" },
		{ "\x01 what\r\n\r\n", 400, "bad request" },
	};
	struct httpd *srv = start_server(HTTPD_ERRORS_PLAIN);
	struct resp r;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		seen_reset();
		exchange(srv, g_master, cases[i].req, &r);
		if (r.status != cases[i].status) {
			fail_msg("case %zu: status %d, want %u", i, r.status, cases[i].status);
		}
		assert_json_error(&r, cases[i].needle, 0);
		assert_null(strstr(r.body, "<html"));
		resp_free(&r);
		assert_int_equal(atomic_load(&g_seen.begins), 0);
	}
	/* The updater's error style reaches libmicrohttpd's pages too. */
	httpd_stop(srv, 1000, 0);
	srv = start_server(HTTPD_ERRORS_UPDATER);
	exchange(srv, g_master, "GET /hello HTTP/3.0\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 505);
	assert_json_error(&r, "HTTP version", 1);
	resp_free(&r);
	/* Other escapes still decode: /hel%6co is /hello. */
	exchange(srv, g_master, "GET /hel%6co HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	wait_idle(srv);
	httpd_stop(srv, 1000, 0);
}

static void
test_abandoned_and_late_requests(void **state)
{
	struct httpd *srv = start_server(HTTPD_ERRORS_PLAIN);
	struct cli *k = malloc(sizeof(*k));
	char req[256];
	char chunk[65536];
	int64_t t0;

	(void)state;
	assert_non_null(k);
	memset(chunk, 'z', sizeof(chunk));
	/* The client leaves in the middle of a body: on_cleanup(completed=0). */
	cli_open(k, srv, g_master);
	snprintf(req, sizeof(req), "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: %llu\r\n\r\n",
	    8 * MIB);
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(cli_send(k, chunk, sizeof(chunk)), 0);
	}
	cli_close(k);
	wait_for(&g_seen.cleanups, 1);
	assert_int_equal(atomic_load(&g_seen.cleanups_incomplete), 1);
	assert_int_equal(atomic_load(&g_seen.ends), 0);
	wait_idle(srv);

	/* A body that stalls is cut at the route's deadline (300 ms). */
	seen_reset();
	cli_open(k, srv, g_master);
	snprintf(req, sizeof(req),
	    "POST /deadline HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789");
	assert_int_equal(cli_send(k, req, strlen(req)), 0);
	t0 = mono_ms();
	assert_true(cli_sees_close(k));
	if (mono_ms() - t0 < 200 || mono_ms() - t0 >= 3000) {
		fail_msg("stalled body cut after %lld ms, want 300", (long long)(mono_ms() - t0));
	}
	cli_close(k);
	wait_for(&g_seen.cleanups, 1);
	assert_int_equal(atomic_load(&g_seen.cleanups_incomplete), 1);
	free(k);
	wait_idle(srv);
	httpd_stop(srv, 1000, 0);
}

/*
 * A client that asks for a large response and never reads it must not hold
 * its connection (and a relay thread) forever: it is cut once nothing moved
 * for the idle timeout.
 */
static void
test_client_that_never_reads(void **state)
{
	struct httpd *srv = start_server_idle(HTTPD_ERRORS_PLAIN, 1);
	struct cli *k = malloc(sizeof(*k));
	static const char req[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
	int64_t deadline;

	(void)state;
	assert_non_null(k);
	cli_open(k, srv, g_agent);
	/* Small receive buffer: the 8 MiB cannot all sit in kernel buffers. */
	int small = 4096;
	assert_int_equal(setsockopt(tls_fd(k->c), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)),
	    0);
	assert_int_equal(cli_send(k, req, sizeof(req) - 1), 0);
	deadline = mono_ms() + 8000;
	while (httpd_active_connections(srv) > 0 && ms_until(deadline) > 0) {
		struct pollfd none = { .fd = -1, .events = 0, .revents = 0 };
		(void)poll(&none, 1, 20);
	}
	assert_int_equal(httpd_active_connections(srv), 0);
	cli_close(k);
	free(k);
	/* A reading client gets the whole thing. */
	struct resp r;
	k = malloc(sizeof(*k));
	assert_non_null(k);
	cli_open(k, srv, g_agent);
	assert_int_equal(cli_send(k, req, sizeof(req) - 1), 0);
	memset(&r, 0, sizeof(r));
	/* Read the head, then count the body bytes as they stream in. */
	uint64_t got = 0;
	struct err err = ERR_INIT;
	char *end = NULL;
	while (end == NULL) {
		assert_int_equal(cli_fill(k, mono_ms() + 5000), 0);
		k->buf[k->len < sizeof(k->buf) ? k->len : sizeof(k->buf) - 1] = '\0';
		end = strstr(k->buf, "\r\n\r\n");
	}
	assert_non_null(strstr(k->buf, "HTTP/1.1 200"));
	got = k->len - (size_t)(end + 4 - k->buf);
	while (got < BIG_RESPONSE) {
		ssize_t n = tls_read_deadline(k->c, k->buf, sizeof(k->buf), mono_ms() + 5000, &err);
		assert_true(n > 0);
		got += (uint64_t)n;
	}
	assert_int_equal(got, BIG_RESPONSE);
	cli_close(k);
	free(k);
	wait_idle(srv);
	httpd_stop(srv, 1000, 0);
}

struct waiter {
	struct httpd *srv;
	unsigned status;
	char body[64];
};

static void *
waiter_main(void *p)
{
	struct waiter *w = p;
	struct cli *k = malloc(sizeof(*k));
	struct resp r;
	static const char req[] = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";

	if (k == NULL) {
		return NULL;
	}
	cli_open(k, w->srv, g_master);
	if (cli_send(k, req, sizeof(req) - 1) == 0 && cli_response(k, &r, 0) == 0) {
		w->status = r.status;
		snprintf(w->body, sizeof(w->body), "%s", r.body);
		resp_free(&r);
	}
	cli_close(k);
	free(k);
	return NULL;
}

static void
test_stop_with_request_in_flight(void **state)
{
	struct httpd *srv = start_server(HTTPD_ERRORS_PLAIN);
	struct waiter w;
	pthread_t t;
	struct cli *idle = malloc(sizeof(*idle));
	int port = httpd_port(srv);
	int64_t t0;

	(void)state;
	assert_non_null(idle);
	memset(&w, 0, sizeof(w));
	w.srv = srv;
	/* An idle keep-alive connection must not hold the stop. */
	cli_open(idle, srv, g_agent);
	assert_int_equal(pthread_create(&t, NULL, waiter_main, &w), 0);
	wait_for(&g_seen.ends, 1);
	assert_int_equal(httpd_active_requests(srv), 1);
	assert_int_equal(httpd_active_connections(srv), 2);
	t0 = mono_ms();
	httpd_stop(srv, 5000, 0);
	assert_true(mono_ms() - t0 < 3000);
	assert_int_equal(pthread_join(t, NULL), 0);
	/* The in-flight request was answered, having seen the shutdown. */
	assert_int_equal(w.status, 200);
	assert_string_equal(w.body, "stopped early");
	/* The idle connection was closed, and the port no longer accepts. */
	assert_true(cli_sees_close(idle));
	cli_close(idle);
	free(idle);
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), -1);
	assert_int_equal(errno, ECONNREFUSED);
	close(fd);
}

static void
test_start_errors(void **state)
{
	struct httpd_opts o;
	struct httpd *srv = NULL;
	struct err err = ERR_INIT;

	(void)state;
	httpd_opts_init(&o);
	o.routes = g_routes;
	o.nroutes = ARRAY_LEN(g_routes);
	o.listen = "127.0.0.1:0";
	assert_int_equal(httpd_start(&o, &srv, &err), -1);
	assert_non_null(strstr(err_msg(&err), "TLS"));
	o.tls = g_server_tls;
	o.listen = "not-an-address";
	assert_int_equal(httpd_start(&o, &srv, &err), -1);
	o.listen = "256.1.1.1:80";
	assert_int_equal(httpd_start(&o, &srv, &err), -1);
	assert_null(srv);
	/* Two servers cannot share one port. */
	o.listen = "127.0.0.1:0";
	assert_int_equal(httpd_start(&o, &srv, &err), 0);
	char spec[32];
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", httpd_port(srv));
	struct httpd *second = NULL;
	o.listen = spec;
	assert_int_equal(httpd_start(&o, &second, &err), -1);
	assert_non_null(strstr(err_msg(&err), "bind"));
	httpd_stop(srv, 0, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing_404_405_head),
		cmocka_unit_test(test_role_mask_403),
		cmocka_unit_test(test_body_limits_413),
		cmocka_unit_test(test_streaming_chunks_sum_to_body),
		cmocka_unit_test(test_multipart_parts),
		cmocka_unit_test(test_refusals_and_error_styles),
		cmocka_unit_test(test_strict_http),
		cmocka_unit_test(test_abandoned_and_late_requests),
		cmocka_unit_test(test_client_that_never_reads),
		cmocka_unit_test(test_stop_with_request_in_flight),
		cmocka_unit_test(test_start_errors),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
