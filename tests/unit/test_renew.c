/*
 * Unit tests of updater/renew: the certificate routes behind a real
 * common/httpd server without TLS (connections injected with a chosen peer
 * identity), on a real CA: who may call them, what bodies they refuse, a
 * whole renewal of the updater's identity (the daemon's reload hook runs,
 * the pair in force moves to the state directory, /health says so), and
 * the CRL route (a CRL of our CA is taken, a lower number and garbage are
 * refused), and the master pins: configured ones enforced, rolled over by
 * PUT /pins/master (a confirm only over the confirmed certificate), kept
 * across a restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/fs.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/tls.h"
#include "master/certs.h"
#include "pki/pki.h"
#include "updater/renew.h"
#include "tests/unit/tmpdir.h"

struct fx {
	const char *dir;
	char home[PATH_MAX];
	char ca[PATH_MAX];
	char crt[PATH_MAX];
	char key[PATH_MAX];
	char install[PATH_MAX];
	char *pins[2];
	struct updater_config cfg;
	struct renew *rw;
	struct httpd *srv;
	int reloads;
};

struct resp {
	int status;
	char body[16384];
};

static int
count_reload(void *arg, struct err *e)
{
	struct fx *f = arg;

	(void)e;
	f->reloads++;
	return 0;
}

/* The master pin the next setup configures (NULL: none). */
static char *g_pin;
static char g_pin_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct pki_issue_opts o;
	struct httpd_opts ho;
	struct renew_hooks hooks;
	struct err e = ERR_INIT;
	char boot[PATH_MAX];
	const struct httpd_route *routes;
	size_t n;

	log_init("test_renew", LOG_LVL_ERROR);
	assert_non_null(f);
	f->dir = tmpdir_make("renew");
	assert_non_null(f->dir);
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	tmpdir_fmt(f->ca, sizeof(f->ca), "%s/ca/ca.crt", f->home);
	snprintf(f->crt, sizeof(f->crt), "%s/boot/updater.crt", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/boot/updater.key", f->dir);
	snprintf(f->install, sizeof(f->install), "%s/install", f->dir);
	assert_int_equal(pki_init(f->home, NULL, &e), 0);
	snprintf(boot, sizeof(boot), "%s/boot", f->dir);
	assert_int_equal(fs_mkdir_p(boot, 0700), 0);
	pki_issue_opts_init(&o);
	o.name = "web1";
	o.role = TLS_ROLE_UPDATER;
	o.key_out = f->key;
	o.cert_out = f->crt;
	assert_int_equal(pki_issue(f->home, &o, &e), 0);

	f->cfg.install_dir = f->install;
	f->cfg.ca = f->ca;
	f->cfg.cert = f->crt;
	f->cfg.key = f->key;
	f->pins[0] = g_pin;
	f->cfg.master_fingerprints = f->pins;
	f->cfg.agent_pin = (char *)"";
	assert_int_equal(renew_new(&f->cfg, &f->rw, &e), 0);
	hooks.reload_self = count_reload;
	hooks.arg = f;
	renew_attach(f->rw, NULL, &hooks);

	httpd_opts_init(&ho);
	ho.listen_fd = HTTPD_NO_LISTEN;
	routes = renew_routes(f->rw, &n);
	assert_int_equal(n, RENEW_NROUTES);
	ho.routes = routes;
	ho.nroutes = n;
	ho.name = "renew-test";
	ho.error_style = HTTPD_ERRORS_UPDATER;
	assert_int_equal(httpd_start(&ho, &f->srv, &e), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	httpd_stop(f->srv, 1000, 0);
	renew_free(f->rw);
	assert_int_equal(tmpdir_remove(), 0);
	free(f);
	return 0;
}

/* METHOD PATH with BODY (LEN bytes) as a peer of ROLE with fingerprint FP. */
static void
request(struct fx *f, enum tls_role role, const char *fp, const char *method,
    const char *path, const char *body, size_t len, struct resp *out)
{
	struct tls_identity id;
	int sp[2];
	char head[512];
	static char buf[65536];
	size_t got = 0;
	int n;

	memset(&id, 0, sizeof(id));
	snprintf(id.cn, sizeof(id.cn), "%s", role == TLS_ROLE_MASTER ? "tandem-master" : "web1");
	snprintf(id.fingerprint, sizeof(id.fingerprint), "%s", fp);
	id.role = role;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(httpd_inject_connection(f->srv, sp[1], &id), 0);
	n = snprintf(head, sizeof(head),
	    "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n", method, path, len);
	assert_int_equal(write(sp[0], head, (size_t)n), n);
	if (len > 0) {
		/* A refused request is answered from its head alone and the server may close
		 * before the body is written: the body's send then fails with EPIPE, and the
		 * answer is still there to read. */
		ssize_t w = send(sp[0], body, len, MSG_NOSIGNAL);
		assert_true(w == (ssize_t)len || (w < 0 && (errno == EPIPE || errno == ECONNRESET)));
	}
	for (;;) {
		struct pollfd pfd = { .fd = sp[0], .events = POLLIN, .revents = 0 };
		assert_int_equal(poll(&pfd, 1, 20000), 1);
		ssize_t r = read(sp[0], buf + got, sizeof(buf) - 1 - got);
		assert_true(r >= 0);
		if (r == 0) {
			break;
		}
		got += (size_t)r;
		assert_true(got < sizeof(buf) - 1);
	}
	close(sp[0]);
	buf[got] = '\0';
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &out->status), 1);
	char *sep = strstr(buf, "\r\n\r\n");
	assert_non_null(sep);
	assert_true(strlen(sep + 4) < sizeof(out->body));
	memcpy(out->body, sep + 4, strlen(sep + 4) + 1);
}

static void
post(struct fx *f, const char *path, const char *body, struct resp *out)
{
	request(f, TLS_ROLE_MASTER, "", "POST", path, body, strlen(body), out);
}

/* The string KEY of the JSON answer (copied into BUF). */
static const char *
answer_str(const struct resp *r, const char *key, char *buf, size_t len)
{
	cJSON *o = cJSON_Parse(r->body);
	const char *v;

	assert_non_null(o);
	v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
	assert_non_null(v);
	snprintf(buf, len, "%s", v);
	cJSON_Delete(o);
	return buf;
}

static void
test_who_and_what_is_refused(void **state)
{
	struct fx *f = *state;
	struct resp r;
	static const char *const bad[] = { "", "not json", "{}", "{\"which\":\"ca\"}",
		"{\"which\":\"agent\",\"more\":1}", "{\"which\":7}", "[\"agent\"]" };

	/* Not the master: the router refuses the role. */
	request(f, TLS_ROLE_AGENT, "", "POST", "/cert/csr", "{\"which\":\"agent\"}", 17, &r);
	assert_int_equal(r.status, 403);
	request(f, TLS_ROLE_UPDATER, "", "PUT", "/crl", "x", 1, &r);
	assert_int_equal(r.status, 403);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		post(f, "/cert/csr", bad[i], &r);
		assert_int_equal(r.status, 400);
	}
	/* Install before any CSR, confirm before any install. */
	post(f, "/cert/install", "{\"which\":\"updater\",\"cert\":\"x\"}", &r);
	assert_int_equal(r.status, 409);
	post(f, "/cert/confirm", "{\"which\":\"agent\"}", &r);
	assert_int_equal(r.status, 409);
	/* Without configured master pins, the pins route records nothing. */
	request(f, TLS_ROLE_MASTER, "", "PUT", "/pins/master",
	    "{\"add\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}", 74, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"pinned\":false"));
	assert_int_equal(f->reloads, 0);
}

#define PIN_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int
setup_pinned(void **state)
{
	g_pin = g_pin_a;
	return setup(state);
}

static int
teardown_pinned(void **state)
{
	g_pin = NULL;
	return teardown(state);
}

/* With master pins: another master is refused; the pins route rolls them over. */
static void
test_pinned_master_and_rollover(void **state)
{
	struct fx *f = *state;
	struct resp r;
	struct err e = ERR_INIT;
	cJSON *h;
	char *text;

	post(f, "/cert/csr", "{\"which\":\"updater\"}", &r);
	assert_int_equal(r.status, 403);
	assert_non_null(strstr(r.body, "not pinned"));
	request(f, TLS_ROLE_MASTER, g_pin_a, "POST", "/cert/csr", "{\"which\":\"updater\"}",
	    19, &r);
	assert_int_equal(r.status, 200);
	/* The unpinned master may not add itself. */
	request(f, TLS_ROLE_MASTER, PIN_B, "PUT", "/pins/master", "{\"add\":\"" PIN_B "\"}", 74,
	    &r);
	assert_int_equal(r.status, 403);
	/* The pinned one adds B; B may now operate; a confirm over A's connection is refused. */
	request(f, TLS_ROLE_MASTER, g_pin_a, "PUT", "/pins/master", "{\"add\":\"" PIN_B "\"}",
	    74, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"pinned\":true"));
	assert_int_equal(renew_master_allowed(f->rw, PIN_B, &e), 0);
	assert_int_equal(renew_master_allowed(f->rw, g_pin_a, &e), 0);
	request(f, TLS_ROLE_MASTER, g_pin_a, "PUT", "/pins/master",
	    "{\"confirm\":\"" PIN_B "\"}", 78, &r);
	assert_int_equal(r.status, 409);
	request(f, TLS_ROLE_MASTER, PIN_B, "PUT", "/pins/master", "{\"confirm\":\"" PIN_B "\"}",
	    78, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(renew_master_allowed(f->rw, g_pin_a, &e), -1);
	assert_int_equal(e.kind, ERR_FORBIDDEN);
	/* /health lists the pins in force. */
	h = cJSON_CreateObject();
	assert_int_equal(renew_health_json(f->rw, h), 0);
	text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(h, "master_pins"));
	assert_string_equal(text, "[\"" PIN_B "\"]");
	free(text);
	cJSON_Delete(h);
	/* A new updater (a restart) reads them back from the state. */
	renew_free(f->rw);
	assert_int_equal(renew_new(&f->cfg, &f->rw, &e), 0);
	assert_int_equal(renew_master_allowed(f->rw, PIN_B, &e), 0);
	assert_int_equal(renew_master_allowed(f->rw, g_pin_a, &e), -1);
}

static void
test_renew_the_updater(void **state)
{
	struct fx *f = *state;
	struct resp r;
	struct pki_issue_opts o;
	char csr[8192], cert_path[256], fp[80], c[PATH_MAX], k[PATH_MAX];
	char *pem = NULL, *body;
	size_t len = 0;
	cJSON *req, *h;
	struct err e = ERR_INIT;

	post(f, "/cert/csr", "{\"which\":\"updater\"}", &r);
	assert_int_equal(r.status, 200);
	answer_str(&r, "csr", csr, sizeof(csr));
	assert_non_null(strstr(csr, "BEGIN CERTIFICATE REQUEST"));
	/* The master's part. */
	snprintf(cert_path, sizeof(cert_path), "%s/new.crt", f->dir);
	pki_issue_opts_init(&o);
	o.name = "web1";
	o.role = TLS_ROLE_UPDATER;
	o.csr = (const unsigned char *)csr;
	o.csr_len = strlen(csr);
	o.cert_out = cert_path;
	assert_int_equal(pki_issue(f->home, &o, &e), 0);
	assert_int_equal(fs_read_file(cert_path, 65536, &pem, &len), 0);
	/* For the agent's pending key it does not fit (no pending key there). */
	req = cJSON_CreateObject();
	assert_non_null(cJSON_AddStringToObject(req, "which", "agent"));
	assert_non_null(cJSON_AddStringToObject(req, "cert", pem));
	body = cJSON_PrintUnformatted(req);
	post(f, "/cert/install", body, &r);
	assert_int_equal(r.status, 409);
	free(body);
	cJSON_Delete(req);
	/* For the updater it does: the reload hook runs, the state pair is in force. */
	req = cJSON_CreateObject();
	assert_non_null(cJSON_AddStringToObject(req, "which", "updater"));
	assert_non_null(cJSON_AddStringToObject(req, "cert", pem));
	body = cJSON_PrintUnformatted(req);
	post(f, "/cert/install", body, &r);
	assert_int_equal(r.status, 200);
	answer_str(&r, "fingerprint", fp, sizeof(fp));
	assert_int_equal(f->reloads, 1);
	assert_int_equal(renew_self_paths(f->rw, c, k, &e), 0);
	assert_non_null(strstr(c, "/state/tls/updater/current/cert.pem"));
	h = cJSON_CreateObject();
	assert_int_equal(renew_health_json(f->rw, h), 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "cert_renewed")));
	assert_string_equal(
	    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "cert_fingerprint")), fp);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "crl")),
	    "none");
	cJSON_Delete(h);
	/* The same certificate again: idempotent, no second switch. */
	post(f, "/cert/install", body, &r);
	assert_int_equal(r.status, 200);
	free(body);
	cJSON_Delete(req);
	post(f, "/cert/confirm", "{\"which\":\"updater\"}", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"confirmed\":true"));
	free(pem);
}

static void
test_crl_route(void **state)
{
	struct fx *f = *state;
	struct resp r;
	struct err e = ERR_INIT;
	unsigned long long n1 = 0, n2 = 0;
	char path[PATH_MAX], num[32];
	char *old = NULL, *cur = NULL;
	size_t old_len = 0, cur_len = 0;
	cJSON *h;

	tmpdir_fmt(path, sizeof(path), "%s/ca/crl.der", f->home);
	assert_int_equal(certs_crl_issue(f->home, 0, time(NULL) + 86400, &n1, &e), 0);
	assert_int_equal(fs_read_file(path, 1 << 20, &old, &old_len), 0);
	assert_int_equal(certs_crl_issue(f->home, 0, time(NULL) + 86400, &n2, &e), 0);
	assert_int_equal(fs_read_file(path, 1 << 20, &cur, &cur_len), 0);
	assert_true(n2 > n1);

	request(f, TLS_ROLE_MASTER, "", "PUT", "/crl", "garbage", 7, &r);
	assert_true(r.status == 400 || r.status == 422);
	request(f, TLS_ROLE_MASTER, "", "PUT", "/crl", "", 0, &r);
	assert_int_equal(r.status, 400);
	request(f, TLS_ROLE_MASTER, "", "PUT", "/crl", cur, cur_len, &r);
	assert_int_equal(r.status, 200);
	snprintf(num, sizeof(num), "\"crl_number\":%llu", n2);
	assert_non_null(strstr(r.body, num));
	/* An older CRL is a rollback: refused, the newer one stays. */
	request(f, TLS_ROLE_MASTER, "", "PUT", "/crl", old, old_len, &r);
	assert_int_equal(r.status, 409);
	h = cJSON_CreateObject();
	assert_int_equal(renew_health_json(f->rw, h), 0);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, "crl")), "ok");
	assert_int_equal(
	    (unsigned long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h,
		"crl_number")), n2);
	cJSON_Delete(h);
	free(old);
	free(cur);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_who_and_what_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pinned_master_and_rollover, setup_pinned,
		    teardown_pinned),
		cmocka_unit_test_setup_teardown(test_renew_the_updater, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crl_route, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
