/*
 * Unit tests of agent/api: the handlers behind a real common/httpd server
 * without TLS (connections injected with a chosen peer identity).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/api.h"
#include "cJSON.h"
#include "common/fs.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/version.h"
#include "tests/unit/tmpdir.h"

struct fixture {
	const char *dir;
	char osr_path[PATH_MAX];
	char bid_path[PATH_MAX];
	struct api api;
	struct httpd *srv;
};

struct resp {
	int status;
	char head[4096];
	char body[8192];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct release_info rel;
	struct inventory_paths ip;
	struct httpd_opts ho;
	char path[PATH_MAX];
	struct err err = ERR_INIT;
	size_t n;

	assert_non_null(f);
	f->dir = tmpdir_make("agent_api");
	assert_non_null(f->dir);
	snprintf(path, sizeof(path), "%s/os-release", f->dir);
	const char *osr = "NAME=Testix\nPRETTY_NAME=\"Testix 7 (unit)\"\n";
	assert_int_equal(fs_write_atomic(path, osr, strlen(osr), 0644), 0);
	snprintf(path, sizeof(path), "%s/boot_id", f->dir);
	const char *bid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n";
	assert_int_equal(fs_write_atomic(path, bid, strlen(bid), 0644), 0);

	memset(&rel, 0, sizeof(rel));
	rel.fields = RELEASE_R_SHA;
	snprintf(rel.sha, sizeof(rel.sha), "label-1");
	snprintf(f->osr_path, sizeof(f->osr_path), "%s/os-release", f->dir);
	snprintf(f->bid_path, sizeof(f->bid_path), "%s/boot_id", f->dir);
	ip.os_release = f->osr_path;
	ip.boot_id = f->bid_path;
	api_init(&f->api, "1.2.3-unit", &rel, "host1", &ip);

	httpd_opts_init(&ho);
	ho.listen_fd = HTTPD_NO_LISTEN;
	ho.routes = api_routes(&f->api, &n);
	ho.nroutes = n;
	ho.name = "agent-test";
	assert_int_equal(httpd_start(&ho, &f->srv, &err), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	httpd_stop(f->srv, 1000, 0);
	assert_int_equal(tmpdir_remove(), 0);
	free(f);
	return 0;
}

/* One request as peer (ROLE, CN, HOST); the server closes after answering. */
static void
request(struct fixture *f, enum tls_role role, const char *cn, const char *host,
    const char *method, const char *path, struct resp *out)
{
	struct tls_identity id;
	int sp[2];
	char req[512];
	char buf[16384];
	size_t len = 0;

	memset(&id, 0, sizeof(id));
	snprintf(id.cn, sizeof(id.cn), "%s", cn);
	snprintf(id.host, sizeof(id.host), "%s", host);
	id.role = role;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(httpd_inject_connection(f->srv, sp[1], &id), 0);
	int n = snprintf(req, sizeof(req),
	    "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", method, path);
	assert_int_equal(write(sp[0], req, (size_t)n), n);
	for (;;) {
		struct pollfd pfd = { .fd = sp[0], .events = POLLIN, .revents = 0 };
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		ssize_t r = read(sp[0], buf + len, sizeof(buf) - 1 - len);
		assert_true(r >= 0);
		if (r == 0) {
			break;
		}
		len += (size_t)r;
		assert_true(len < sizeof(buf) - 1);
	}
	close(sp[0]);
	buf[len] = '\0';
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &out->status), 1);
	char *sep = strstr(buf, "\r\n\r\n");
	assert_non_null(sep);
	*sep = '\0';
	assert_true(strlen(buf) < sizeof(out->head) && strlen(sep + 4) < sizeof(out->body));
	memcpy(out->head, buf, strlen(buf) + 1);
	memcpy(out->body, sep + 4, strlen(sep + 4) + 1);
}

static cJSON *
body_json(const struct resp *r)
{
	cJSON *o = cJSON_Parse(r->body);

	assert_non_null(o);
	return o;
}

static const char *
str_of(const cJSON *o, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);

	assert_true(cJSON_IsString(it));
	return it->valuestring;
}

static void
test_phases(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	cJSON *o;

	/* Starting: /health and /readyz 503, /livez 200. */
	request(f, TLS_ROLE_UPDATER, "updater@host1", "host1", "GET", "/health", &r);
	assert_int_equal(r.status, 503);
	o = body_json(&r);
	assert_string_equal(str_of(o, "status"), "starting");
	cJSON_Delete(o);
	request(f, TLS_ROLE_MASTER, "tandem-master", "", "GET", "/readyz", &r);
	assert_int_equal(r.status, 503);
	assert_non_null(strstr(r.body, "\"error\":\"not ready: starting\""));
	request(f, TLS_ROLE_AGENT, "host9", "host9", "GET", "/livez", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"status\":\"alive\"}\n");

	api_set_phase(&f->api, API_READY);
	request(f, TLS_ROLE_AGENT, "host9", "host9", "GET", "/readyz", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"status\":\"ready\"}\n");
	request(f, TLS_ROLE_UNKNOWN, "someone", "", "GET", "/health", &r);
	assert_int_equal(r.status, 200);
	o = body_json(&r);
	assert_string_equal(str_of(o, "status"), "ok");
	assert_string_equal(str_of(o, "role"), "agent");
	assert_string_equal(str_of(o, "version"), "1.2.3-unit");
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(o, "release");
	assert_string_equal(str_of(rel, "sha"), "label-1");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rel, "sha256")));
	assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(o, "pid")->valuedouble, getpid());
	assert_int_equal(strlen(str_of(o, "started_at")), 20);
	assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "uptime_s")));
	/* Before the daemon says anything about its identity: no CRL. */
	assert_string_equal(str_of(o, "crl"), "none");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "crl_next_update")));
	assert_int_equal(cJSON_GetArraySize(o), 13);
	cJSON_Delete(o);
	{
		struct api_tls t;
		memset(&t, 0, sizeof(t));
		snprintf(t.cert_not_after, sizeof(t.cert_not_after), "2030-01-01T00:00:00Z");
		snprintf(t.crl, sizeof(t.crl), "stale");
		t.crl_number = 7;
		snprintf(t.crl_next_update, sizeof(t.crl_next_update), "2020-02-01T00:00:00Z");
		t.renewed = 1;
		api_set_tls(&f->api, &t);
	}
	request(f, TLS_ROLE_UNKNOWN, "someone", "", "GET", "/health", &r);
	o = body_json(&r);
	assert_string_equal(str_of(o, "cert_not_after"), "2030-01-01T00:00:00Z");
	assert_string_equal(str_of(o, "crl"), "stale");
	assert_string_equal(str_of(o, "crl_next_update"), "2020-02-01T00:00:00Z");
	assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(o, "crl_number")->valuedouble, 7);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "cert_renewed")));
	cJSON_Delete(o);

	api_set_phase(&f->api, API_STOPPING);
	request(f, TLS_ROLE_MASTER, "tandem-master", "", "GET", "/readyz", &r);
	assert_int_equal(r.status, 503);
	assert_non_null(strstr(r.body, "stopping"));
	request(f, TLS_ROLE_MASTER, "tandem-master", "", "GET", "/health", &r);
	assert_int_equal(r.status, 503);
	request(f, TLS_ROLE_MASTER, "tandem-master", "", "GET", "/livez", &r);
	assert_int_equal(r.status, 200);
}

static void
test_info_roles(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	cJSON *o;

	request(f, TLS_ROLE_MASTER, "tandem-master", "", "GET", "/info", &r);
	assert_int_equal(r.status, 200);
	o = body_json(&r);
	assert_string_equal(str_of(o, "os"), "Testix 7 (unit)");
	assert_string_equal(str_of(o, "boot_id"), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
	assert_string_equal(str_of(o, "agent_version"), "1.2.3-unit");
	assert_true(cJSON_GetObjectItemCaseSensitive(o, "cpu_cores")->valuedouble >= 1);
	assert_true(cJSON_GetObjectItemCaseSensitive(o, "memory_mb")->valuedouble >= 1);
	cJSON_Delete(o);

	request(f, TLS_ROLE_UPDATER, "updater@host1", "host1", "GET", "/info", &r);
	assert_int_equal(r.status, 200);

	/* Another host's updater: refused by the handler. */
	request(f, TLS_ROLE_UPDATER, "updater@host2", "host2", "GET", "/info", &r);
	assert_int_equal(r.status, 403);
	assert_non_null(strstr(r.body, "updater@host2"));
	/* A prefix of our host name is not our host. */
	request(f, TLS_ROLE_UPDATER, "updater@host", "host", "GET", "/info", &r);
	assert_int_equal(r.status, 403);
	/* Agents (ours included) and unknown roles: refused by the route. */
	request(f, TLS_ROLE_AGENT, "host1", "host1", "GET", "/info", &r);
	assert_int_equal(r.status, 403);
	assert_non_null(strstr(r.body, "{\"detail\":{\"error\":"));
	request(f, TLS_ROLE_UNKNOWN, "x", "", "GET", "/info", &r);
	assert_int_equal(r.status, 403);
}

static void
test_errors(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	request(f, TLS_ROLE_MASTER, "tandem-master", "", "GET", "/nothing", &r);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.head, "application/json"));
	assert_non_null(strstr(r.body, "no such endpoint"));
	request(f, TLS_ROLE_MASTER, "tandem-master", "", "PUT", "/health", &r);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.head, "Allow: GET, HEAD"));
	assert_non_null(strstr(r.body, "method not allowed"));
	request(f, TLS_ROLE_MASTER, "tandem-master", "", "POST", "/info", &r);
	assert_int_equal(r.status, 405);
	/* HEAD: headers only. */
	api_set_phase(&f->api, API_READY);
	request(f, TLS_ROLE_MASTER, "tandem-master", "", "HEAD", "/health", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "");
}

static void
test_health_json_direct(void **state)
{
	struct fixture *f = *state;
	cJSON *o = api_health_json(&f->api);

	assert_non_null(o);
	assert_string_equal(str_of(o, "status"), "starting");
	cJSON_Delete(o);
	assert_string_equal(api_reported_version(), tandem_version());
	assert_string_equal(api_phase_name(API_READY), "ok");
	assert_string_equal(api_phase_name(API_STOPPING), "stopping");
	assert_string_equal(api_phase_name(API_STARTING), "starting");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_phases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_info_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_json_direct, setup, teardown),
	};

	log_init("test_agent_api", LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
