/*
 * updater/probe against an in-test mTLS server (common/httpd) whose /health
 * answers are scripted per request: wrong versions, 503 while starting, a
 * flip during the stability window, a process killed mid-probe.
 * Certificates are made at setup with the openssl CLI (run through
 * proc_run_capture) in a temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/tls.h"
#include "updater/probe.h"
#include "tests/unit/tmpdir.h"

#define SHA_NEW "1111111111111111111111111111111111111111111111111111111111111111"
#define SHA_OLD "2222222222222222222222222222222222222222222222222222222222222222"
#define BODY_NEW \
	"{\"status\":\"ok\",\"role\":\"agent\",\"version\":\"1.1\"," \
	"\"release\":{\"sha\":\"v1.1\",\"sha256\":\"" SHA_NEW "\"}}"
#define BODY_OLD \
	"{\"status\":\"ok\",\"role\":\"agent\",\"version\":\"1.0\"," \
	"\"release\":{\"sha\":\"v1.0\",\"sha256\":\"" SHA_OLD "\"}}"

/* What /health answers: request numbers count from 1. */
struct script {
	pthread_mutex_t mu;
	int n;            /* requests served so far */
	int bad_until;    /* requests <= bad_until get the bad answer */
	int good_until;   /* > 0: requests > good_until get the bad answer again */
	unsigned bad_status;
	pid_t kill_pid;   /* > 0: SIGKILL it when request kill_at is served */
	int kill_at;
	int stall_from;   /* > 0: requests stall_from..stall_to answer after stall_ms */
	int stall_to;
	int stall_ms;     /* (a hung agent; longer than the probe's attempt timeout) */
};

struct env {
	const char *dir;
	struct tls_ctx *srv_tls;
	struct tls_ctx *cli_tls;     /* the updater's certificate */
	struct tls_ctx *foreign_tls; /* a client certificate from another CA */
	struct httpd *srv;
	char port[16];
	struct script sc;
	struct httpd_route route;
};

static void
health_end(struct httpd_req *r, void *arg)
{
	struct script *sc = arg;
	int n, bad, stall;
	unsigned status;

	pthread_mutex_lock(&sc->mu);
	n = ++sc->n;
	bad = n <= sc->bad_until || (sc->good_until > 0 && n > sc->good_until);
	status = bad ? sc->bad_status : 200;
	if (sc->kill_pid > 0 && n == sc->kill_at) {
		kill(sc->kill_pid, SIGKILL);
	}
	stall = sc->stall_from > 0 && n >= sc->stall_from && n <= sc->stall_to ? sc->stall_ms : 0;
	pthread_mutex_unlock(&sc->mu);
	if (stall > 0) {
		(void)poll(NULL, 0, stall);
	}
	if (bad) {
		httpd_respond(r, status, "application/json", BODY_OLD, strlen(BODY_OLD));
	} else {
		httpd_respond(r, 200, "application/json", BODY_NEW, strlen(BODY_NEW));
	}
}

static void
script_reset(struct script *sc)
{
	pthread_mutex_lock(&sc->mu);
	sc->n = 0;
	sc->bad_until = 0;
	sc->good_until = 0;
	sc->bad_status = 200;
	sc->kill_pid = 0;
	sc->kill_at = 0;
	sc->stall_from = 0;
	sc->stall_to = 0;
	sc->stall_ms = 0;
	pthread_mutex_unlock(&sc->mu);
}

static int
script_count(struct script *sc)
{
	int n;

	pthread_mutex_lock(&sc->mu);
	n = sc->n;
	pthread_mutex_unlock(&sc->mu);
	return n;
}

static void
openssl(const char *const *argv)
{
	struct proc_spec s;
	char out[4096];
	struct err pe = ERR_INIT;
	int status = -1;

	proc_spec_init(&s);
	s.argv = argv;
	if (proc_run_capture(&s, 30000, out, sizeof(out), NULL, &status, &pe) != 0) {
		fail_msg("openssl: %s", err_msg(&pe));
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fail_msg("openssl %s failed: %s", argv[1], out);
	}
}

static void
path_in(const struct env *e, const char *name, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/%s", e->dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

/* NAME.crt/NAME.key signed by CA (NULL: self-signed CA) with extensions EXT. */
static void
make_cert(const struct env *e, const char *ca, const char *name, const char *subj,
    const char *ext)
{
	char cnf[PATH_MAX], key[PATH_MAX], crt[PATH_MAX], cacrt[PATH_MAX], cakey[PATH_MAX], caname[64];
	const char *argv[32];
	int i = 0;

	path_in(e, "openssl.cnf", cnf, sizeof(cnf));
	snprintf(caname, sizeof(caname), "%s.key", name);
	path_in(e, caname, key, sizeof(key));
	snprintf(caname, sizeof(caname), "%s.crt", name);
	path_in(e, caname, crt, sizeof(crt));
	argv[i++] = "openssl";
	argv[i++] = "req";
	argv[i++] = "-x509";
	argv[i++] = "-new";
	argv[i++] = "-config";
	argv[i++] = cnf;
	argv[i++] = "-extensions";
	argv[i++] = ext;
	argv[i++] = "-newkey";
	argv[i++] = "ec";
	argv[i++] = "-pkeyopt";
	argv[i++] = "ec_paramgen_curve:P-256";
	argv[i++] = "-noenc";
	argv[i++] = "-keyout";
	argv[i++] = key;
	argv[i++] = "-out";
	argv[i++] = crt;
	argv[i++] = "-subj";
	argv[i++] = subj;
	argv[i++] = "-days";
	argv[i++] = "30";
	if (ca != NULL) {
		snprintf(caname, sizeof(caname), "%s.crt", ca);
		path_in(e, caname, cacrt, sizeof(cacrt));
		snprintf(caname, sizeof(caname), "%s.key", ca);
		path_in(e, caname, cakey, sizeof(cakey));
		argv[i++] = "-CA";
		argv[i++] = cacrt;
		argv[i++] = "-CAkey";
		argv[i++] = cakey;
	}
	argv[i] = NULL;
	openssl(argv);
	assert_int_equal(chmod(key, 0600), 0);
}

static struct tls_ctx *
client_ctx(const struct env *e, const char *ca, const char *name)
{
	struct tls_opts o;
	struct tls_ctx *ctx = NULL;
	struct err err = ERR_INIT;
	char cafile[PATH_MAX], crt[PATH_MAX], key[PATH_MAX], n[64];

	snprintf(n, sizeof(n), "%s.crt", ca);
	path_in(e, n, cafile, sizeof(cafile));
	snprintf(n, sizeof(n), "%s.crt", name);
	path_in(e, n, crt, sizeof(crt));
	snprintf(n, sizeof(n), "%s.key", name);
	path_in(e, n, key, sizeof(key));
	tls_opts_init(&o);
	o.ca_file = cafile;
	o.cert_file = crt;
	o.key_file = key;
	if (tls_client_new(&o, &ctx, &err) != 0) {
		fail_msg("client context %s: %s", name, err_msg(&err));
	}
	return ctx;
}

static int
group_setup(void **state)
{
	static const char cnf_text[] =
	    "[req]\ndistinguished_name = dn\n[dn]\n"
	    "[v_ca]\nbasicConstraints = critical,CA:TRUE,pathlen:0\n"
	    "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
	    "[v_srv]\nbasicConstraints = critical,CA:FALSE\n"
	    "keyUsage = critical,digitalSignature,keyEncipherment\n"
	    "extendedKeyUsage = serverAuth,clientAuth\n"
	    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
	    "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
	    "[v_cli]\nbasicConstraints = critical,CA:FALSE\n"
	    "keyUsage = critical,digitalSignature\nextendedKeyUsage = clientAuth\n"
	    "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n";
	struct env *e = calloc(1, sizeof(*e));
	struct httpd_opts ho;
	struct tls_opts to;
	struct err err = ERR_INIT;
	char path[PATH_MAX], ca[PATH_MAX], crt[PATH_MAX], key[PATH_MAX];

	assert_non_null(e);
	pthread_mutex_init(&e->sc.mu, NULL);
	script_reset(&e->sc);
	e->dir = tmpdir_make("probe");
	assert_non_null(e->dir);
	path_in(e, "openssl.cnf", path, sizeof(path));
	assert_int_equal(fs_write_atomic(path, cnf_text, strlen(cnf_text), 0600), 0);
	make_cert(e, NULL, "ca", "/CN=Test CA", "v_ca");
	make_cert(e, "ca", "agent", "/CN=host1/OU=agent", "v_srv");
	make_cert(e, "ca", "updater", "/CN=updater@host1/OU=updater", "v_cli");
	make_cert(e, NULL, "otherca", "/CN=Other CA", "v_ca");
	make_cert(e, "otherca", "intruder", "/CN=updater@host1/OU=updater", "v_cli");

	path_in(e, "ca.crt", ca, sizeof(ca));
	path_in(e, "agent.crt", crt, sizeof(crt));
	path_in(e, "agent.key", key, sizeof(key));
	tls_opts_init(&to);
	to.ca_file = ca;
	to.cert_file = crt;
	to.key_file = key;
	if (tls_server_new(&to, &e->srv_tls, &err) != 0) {
		fail_msg("server context: %s", err_msg(&err));
	}
	e->cli_tls = client_ctx(e, "ca", "updater");
	e->foreign_tls = client_ctx(e, "otherca", "intruder");

	e->route.method = "GET";
	e->route.path = "/health";
	e->route.on_end = health_end;
	e->route.arg = &e->sc;
	httpd_opts_init(&ho);
	ho.listen = "127.0.0.1:0";
	ho.tls = e->srv_tls;
	ho.routes = &e->route;
	ho.nroutes = 1;
	ho.name = "test-agent";
	if (httpd_start(&ho, &e->srv, &err) != 0) {
		fail_msg("httpd: %s", err_msg(&err));
	}
	snprintf(e->port, sizeof(e->port), "%d", httpd_port(e->srv));
	*state = e;
	return 0;
}

static int
group_teardown(void **state)
{
	struct env *e = *state;

	httpd_stop(e->srv, 1000, 0);
	tls_ctx_free(e->srv_tls);
	tls_ctx_free(e->cli_tls);
	tls_ctx_free(e->foreign_tls);
	assert_int_equal(tmpdir_remove(), 0);
	pthread_mutex_destroy(&e->sc.mu);
	free(e);
	return 0;
}

static int
per_test(void **state)
{
	struct env *e = *state;

	script_reset(&e->sc);
	return 0;
}

static void
fast_opts(const struct env *e, struct probe_opts *o)
{
	probe_opts_init(o);
	o->tls = e->cli_tls;
	o->host = "127.0.0.1";
	o->port = e->port;
	o->expect_version = "1.1";
	o->expect_sha256 = SHA_NEW;
	o->first_interval_ms = 10;
	o->max_interval_ms = 80;
	o->deadline_ms = 3000;
	o->stable_ms = 200;
	o->stable_interval_ms = 50;
	o->attempt_timeout_ms = 3000;
}

static void
test_check_body(void **state)
{
	struct err why = ERR_INIT;

	(void)state;
	assert_int_equal(probe_check_body(BODY_NEW, strlen(BODY_NEW), "1.1", SHA_NEW, &why), 0);
	assert_int_equal(probe_check_body(BODY_NEW, strlen(BODY_NEW), "1.1", NULL, &why), 0);
	assert_int_equal(probe_check_body(BODY_NEW, strlen(BODY_NEW), NULL, SHA_NEW, &why), 0);
	assert_int_equal(probe_check_body(BODY_OLD, strlen(BODY_OLD), "1.1", SHA_NEW, &why), -1);
	assert_string_equal(err_msg(&why), "version is \"1.0\", expected \"1.1\"");
	assert_int_equal(probe_check_body(BODY_OLD, strlen(BODY_OLD), "", SHA_NEW, &why), -1);
	assert_string_equal(err_msg(&why), "release.sha256 is " SHA_OLD ", expected " SHA_NEW);
	assert_int_equal(probe_check_body("not json", 8, "1.1", NULL, &why), -1);
	assert_non_null(strstr(err_msg(&why), "not a JSON object"));
	assert_int_equal(probe_check_body("[]", 2, "1.1", NULL, &why), -1);
	assert_int_equal(probe_check_body("{\"version\":1.1}", 15, "1.1", NULL, &why), -1);
	assert_non_null(strstr(err_msg(&why), "no \"version\" string"));
	assert_int_equal(probe_check_body("{\"version\":\"1.1\"}", 17, "1.1", SHA_NEW, &why), -1);
	assert_non_null(strstr(err_msg(&why), "release"));
	assert_int_equal(probe_check_body("{\"release\":{\"sha256\":null}}", 27, NULL, SHA_NEW,
	    &why), -1);
	/* Duplicate keys could smuggle a second version past a lax reader. */
	assert_int_equal(probe_check_body("{\"version\":\"1.0\",\"version\":\"1.1\"}", 33, "1.1",
	    NULL, &why), -1);
}

static void
test_passes(void **state)
{
	struct env *e = *state;
	struct probe_opts o;
	struct probe_result r;

	fast_opts(e, &o);
	if (probe_run(&o, &r) != 0) {
		fail_msg("%s", err_msg(&r.err));
	}
	assert_true(r.passed);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, BODY_NEW);
	assert_string_equal(err_msg(&r.err), "");
	/* The first attempt passed: no attempt before it went unanswered or wrong. */
	assert_true(r.first_pass_ms >= 0 && r.first_pass_ms <= r.elapsed_ms);
	assert_int_equal(r.answered_bad, 0);
	assert_int_equal(r.inconclusive, 0);
	/* One pass, then the stability window kept asking (every 50 ms for 200 ms). */
	assert_true(r.attempts >= 2);
	assert_int_equal((int)r.attempts, script_count(&e->sc));
	assert_true(r.elapsed_ms >= 200);
	probe_result_free(&r);
}

static void
test_stale_then_new(void **state)
{
	struct env *e = *state;
	struct probe_opts o;
	struct probe_result r;

	/* 503 while starting up, then healthy. */
	fast_opts(e, &o);
	e->sc.bad_until = 5;
	e->sc.bad_status = 503;
	assert_int_equal(probe_run(&o, &r), 0);
	assert_true(r.passed);
	assert_true(r.attempts >= 6);
	/* Waits of 10, 20, 40, 80, 80 ms before the 6th attempt. */
	assert_true(r.first_pass_ms >= 10 + 20 + 40 + 80 + 80);
	probe_result_free(&r);

	/* A 200 with another version is evidence before the first pass too: at once. */
	script_reset(&e->sc);
	o.deadline_ms = 20000;
	e->sc.bad_until = 3;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_PROTOCOL);
	assert_false(r.passed);
	assert_int_equal(r.attempts, 1);
	assert_int_equal(r.answered_bad, 1);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, BODY_OLD); /* the answer, for the error report */
	assert_non_null(strstr(err_msg(&r.err), "wrong answer after 1 attempts: "));
	assert_non_null(strstr(err_msg(&r.err), "version is \"1.0\", expected \"1.1\""));
	assert_int_equal(r.first_pass_ms, -1);
	assert_true(r.elapsed_ms < 5000);
	probe_result_free(&r);
}

static void
test_stale_forever_fails_at_deadline(void **state)
{
	struct env *e = *state;
	struct probe_opts o;
	struct probe_result r;

	/* A persistent 503: retried until the deadline. */
	fast_opts(e, &o);
	o.deadline_ms = 1000;
	e->sc.bad_until = INT_MAX;
	e->sc.bad_status = 503;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_TIMEOUT);
	assert_false(r.passed);
	/* The last attempt may have been cut by the deadline: the answer is still named. */
	assert_ptr_equal(strstr(err_msg(&r.err), "no healthy answer within 1000 ms: "), err_msg(&r.err));
	assert_non_null(strstr(err_msg(&r.err), "GET /health answered 503"));
	assert_int_equal(r.status, 503);
	assert_int_equal(r.first_pass_ms, -1);
	assert_true(r.elapsed_ms >= 990 && r.elapsed_ms < 5000);
	probe_result_free(&r);

	/* Only a sha256 expected: a same-version rebuild with other bytes fails, at once. */
	script_reset(&e->sc);
	e->sc.bad_until = INT_MAX;
	o.expect_version = NULL;
	o.deadline_ms = 20000;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_PROTOCOL);
	assert_non_null(strstr(err_msg(&r.err), "release.sha256 is " SHA_OLD));
	assert_true(r.elapsed_ms < 5000);
	probe_result_free(&r);
}

static void
test_stability_window_flip_fails(void **state)
{
	struct env *e = *state;
	struct probe_opts o;
	struct probe_result r;

	fast_opts(e, &o);
	o.stable_ms = 5000;
	e->sc.good_until = 2; /* passes twice, then the old answer is back */
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_PROTOCOL);
	assert_string_equal(err_msg(&r.err), "stability window: version is \"1.0\", expected \"1.1\"");
	assert_true(r.first_pass_ms >= 0);
	assert_int_equal(r.attempts, 3);
	assert_true(r.elapsed_ms < 4000); /* did not wait out the window */
	probe_result_free(&r);
}

static void
test_stability_window_silence_is_inconclusive(void **state)
{
	struct env *e = *state;
	struct probe_opts o;
	struct probe_result r;

	fast_opts(e, &o);
	o.attempt_timeout_ms = 300;
	o.stable_ms = 100;
	o.deadline_ms = 3000;
	/* The first window attempt times out; the next one passes. */
	e->sc.stall_from = 2;
	e->sc.stall_to = 2;
	e->sc.stall_ms = 500;
	if (probe_run(&o, &r) != 0) {
		fail_msg("%s", err_msg(&r.err));
	}
	assert_true(r.attempts >= 3);
	assert_int_equal(r.inconclusive, 1);
	assert_int_equal(r.answered_bad, 0);
	probe_result_free(&r);

	/* Three in a row (a stopped agent, longer than one attempt): still inconclusive, passes. */
	script_reset(&e->sc);
	e->sc.stall_from = 2;
	e->sc.stall_to = 4;
	e->sc.stall_ms = 500;
	if (probe_run(&o, &r) != 0) {
		fail_msg("%s", err_msg(&r.err));
	}
	assert_true(r.inconclusive >= 3);
	assert_int_equal(r.answered_bad, 0);
	probe_result_free(&r);

	/* Silence for the whole deadline with the process alive fails, and not before it. */
	script_reset(&e->sc);
	o.deadline_ms = 1000;
	e->sc.stall_from = 2;
	e->sc.stall_to = INT_MAX;
	e->sc.stall_ms = 500;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_TIMEOUT);
	assert_ptr_equal(strstr(err_msg(&r.err), "stability window: no answer for 1000 ms"),
	    err_msg(&r.err));
	assert_non_null(strstr(err_msg(&r.err), "timed out"));
	assert_true(r.inconclusive >= 3);
	assert_true(r.elapsed_ms >= r.first_pass_ms + 1000);
	assert_int_equal(r.status, 200); /* from the answer that passed */
	probe_result_free(&r);
}

static void
test_process_death_fails_fast(void **state)
{
	struct env *e = *state;
	static const char *const argv[] = { "/bin/sh", "-c", "exec sleep 120", NULL };
	struct probe_opts o;
	struct probe_result r;
	struct proc_spec s;
	struct proc p = PROC_INIT;
	struct err pe = ERR_INIT;

	/* Phase 1: still starting (503) when the process dies. */
	proc_spec_init(&s);
	s.argv = argv;
	assert_int_equal(proc_spawn(&s, &p, &pe), 0);
	fast_opts(e, &o);
	o.deadline_ms = 20000;
	o.pidfd = p.pidfd;
	e->sc.bad_until = INT_MAX;
	e->sc.bad_status = 503;
	e->sc.kill_pid = p.pid;
	e->sc.kill_at = 3;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_PROBE);
	assert_non_null(strstr(err_msg(&r.err), "agent exited during the probe"));
	assert_non_null(strstr(err_msg(&r.err), "answered 503"));
	assert_true(r.elapsed_ms < 5000);
	probe_result_free(&r);
	assert_int_equal(proc_wait(&p, 5000), 1);
	proc_release(&p);

	/* Phase 2: healthy, then dies inside the stability window. */
	script_reset(&e->sc);
	assert_int_equal(proc_spawn(&s, &p, &pe), 0);
	o.pidfd = p.pidfd;
	o.stable_ms = 10000;
	e->sc.kill_pid = p.pid;
	e->sc.kill_at = 2;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_PROBE);
	assert_non_null(strstr(err_msg(&r.err), "stability window"));
	assert_true(r.first_pass_ms >= 0);
	assert_true(r.elapsed_ms < 5000);
	probe_result_free(&r);
	assert_int_equal(proc_wait(&p, 5000), 1);
	proc_release(&p);
}

static int g_alive_calls;

static int
alive_three_times(void *arg)
{
	(void)arg;
	return ++g_alive_calls <= 3;
}

static void
test_alive_callback_and_cancel(void **state)
{
	struct env *e = *state;
	struct probe_opts o;
	struct probe_result r;
	int pfd[2];
	char c = 1;

	fast_opts(e, &o);
	o.deadline_ms = 20000;
	o.alive = alive_three_times;
	e->sc.bad_until = INT_MAX;
	e->sc.bad_status = 503;
	g_alive_calls = 0;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_PROBE);
	assert_non_null(strstr(err_msg(&r.err), "agent exited"));
	assert_true(r.elapsed_ms < 5000);
	probe_result_free(&r);

	fast_opts(e, &o);
	o.deadline_ms = 20000;
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	o.cancel_fd = pfd[0];
	assert_int_equal(write(pfd[1], &c, 1), 1);
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_CANCELED);
	assert_string_equal(err_msg(&r.err), "probe cancelled");
	assert_int_equal(r.attempts, 0);
	probe_result_free(&r);
	close(pfd[0]);
	close(pfd[1]);
}

static void
test_unreachable_and_refused_tls(void **state)
{
	struct env *e = *state;
	struct probe_opts o;
	struct probe_result r;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char port[16];
	int fd;

	/* A port nobody listens on. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(port, sizeof(port), "%u", (unsigned)ntohs(sa.sin_port));
	fast_opts(e, &o);
	o.port = port;
	o.deadline_ms = 200;
	assert_int_equal(probe_run(&o, &r), -1);
	close(fd);
	assert_int_equal(r.err.kind, ERR_TIMEOUT);
	assert_non_null(strstr(err_msg(&r.err), "Connection refused"));
	assert_int_equal(r.status, 0);
	assert_null(r.body);
	probe_result_free(&r);

	/* A client certificate from another CA: the agent refuses the handshake. */
	fast_opts(e, &o);
	o.tls = e->foreign_tls;
	o.deadline_ms = 200;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_non_null(strstr(err_msg(&r.err), "no healthy answer"));
	assert_int_equal(r.status, 0);
	assert_int_equal(script_count(&e->sc), 0);
	probe_result_free(&r);

	/* A pin that is not the agent's. */
	fast_opts(e, &o);
	o.pin_fp = SHA_OLD;
	o.deadline_ms = 200;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.status, 0);
	assert_int_equal(script_count(&e->sc), 0);
	probe_result_free(&r);
}

static void
test_bad_options(void **state)
{
	struct env *e = *state;
	struct probe_opts o;
	struct probe_result r;

	fast_opts(e, &o);
	o.expect_version = NULL;
	o.expect_sha256 = "";
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_INTERNAL);
	assert_non_null(strstr(err_msg(&r.err), "neither a version nor a sha256"));
	probe_result_free(&r);
	fast_opts(e, &o);
	o.tls = NULL;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_INTERNAL);
	probe_result_free(&r);
	fast_opts(e, &o);
	o.max_interval_ms = 1;
	assert_int_equal(probe_run(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_INTERNAL);
	probe_result_free(&r);
	assert_int_equal(script_count(&e->sc), 0);
}

static void
test_once(void **state)
{
	struct env *e = *state;
	struct probe_opts o;
	struct probe_result r;

	/* No expectation needed: a 200 with a JSON object passes, in one request. */
	fast_opts(e, &o);
	o.expect_version = NULL;
	o.expect_sha256 = NULL;
	if (probe_once(&o, &r) != 0) {
		fail_msg("%s", err_msg(&r.err));
	}
	assert_true(r.passed);
	assert_int_equal(r.attempts, 1);
	assert_string_equal(r.body, BODY_NEW);
	probe_result_free(&r);

	/* A wrong version or status fails at once, without retrying. */
	fast_opts(e, &o);
	e->sc.bad_until = 3;
	assert_int_equal(probe_once(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_PROBE);
	assert_non_null(strstr(err_msg(&r.err), "version is \"1.0\""));
	probe_result_free(&r);
	e->sc.bad_status = 503;
	assert_int_equal(probe_once(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_PROBE);
	assert_int_equal(r.status, 503);
	probe_result_free(&r);
	assert_int_equal(script_count(&e->sc), 3);

	/* A hung server: no answer within the attempt timeout. */
	script_reset(&e->sc);
	e->sc.stall_from = 1;
	e->sc.stall_to = 1;
	e->sc.stall_ms = 1500;
	fast_opts(e, &o);
	o.attempt_timeout_ms = 300;
	assert_int_equal(probe_once(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_UNREACHABLE);
	assert_int_equal(r.status, 0);
	assert_true(r.elapsed_ms < 1400);
	probe_result_free(&r);

	/* Bad options. */
	fast_opts(e, &o);
	o.attempt_timeout_ms = 0;
	assert_int_equal(probe_once(&o, &r), -1);
	assert_int_equal(r.err.kind, ERR_INTERNAL);
	probe_result_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_body),
		cmocka_unit_test_setup(test_passes, per_test),
		cmocka_unit_test_setup(test_stale_then_new, per_test),
		cmocka_unit_test_setup(test_stale_forever_fails_at_deadline, per_test),
		cmocka_unit_test_setup(test_stability_window_flip_fails, per_test),
		cmocka_unit_test_setup(test_stability_window_silence_is_inconclusive, per_test),
		cmocka_unit_test_setup(test_process_death_fails_fast, per_test),
		cmocka_unit_test_setup(test_alive_callback_and_cancel, per_test),
		cmocka_unit_test_setup(test_unreachable_and_refused_tls, per_test),
		cmocka_unit_test_setup(test_bad_options, per_test),
		cmocka_unit_test_setup(test_once, per_test),
	};

	log_init("test_probe", LOG_LVL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
