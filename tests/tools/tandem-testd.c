/*
 * tandem-testd — a small server on common/httpd for the end-to-end tests and
 * benchmarks of the secure channel. Not installed.
 *
 *   tandem-testd --ca CA --cert CRT --key KEY [--listen ADDR:PORT] [--master-cn CN]
 *                [--max-conns N] [--max-per-ip N] [--header-timeout-ms N]
 *                [--request-timeout-ms N] [--handshake-timeout-ms N] [--no-tickets]
 *
 * Prints "READY port=N" on stdout once listening. SIGTERM/SIGINT: graceful stop.
 *
 * Routes:
 *   GET  /whoami       the verified client identity
 *   GET  /master-only  200 for the master role, 403 for others
 *   POST /upload       raw body streamed through SHA-256: {"bytes","sha256"}
 *   POST /form         multipart, each part streamed through SHA-256
 *   POST /small        body limit 1024 bytes
 *   GET  /slow?ms=N    answers after N ms (bounded; ends early on shutdown)
 *   GET  /stats        process memory (VmHWM/VmRSS, kB), connection and request counts
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cJSON.h"
#include "common/digest.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/tls.h"

struct part_sum {
	char name[64];
	char filename[128];
	uint64_t bytes;
	struct digest sha;
};

struct upload_state {
	struct digest sha;
	uint64_t bytes;
	struct part_sum parts[8];
	size_t nparts;
};

/*
 * The server, published by main once httpd_start() returns. Connection
 * threads already run by then and a client may be quicker than main, so
 * handlers read it atomically and answer 503 until it is there.
 */
static _Atomic(struct httpd *) g_srv;

static cJSON *
identity_json(const struct httpd_req *r)
{
	const struct tls_identity *id = httpd_req_identity(r);
	cJSON *o = cJSON_CreateObject();

	if (o == NULL) {
		return NULL;
	}
	cJSON_AddStringToObject(o, "cn", id->cn);
	cJSON_AddStringToObject(o, "ou", id->ou);
	cJSON_AddStringToObject(o, "role", tls_role_name(id->role));
	cJSON_AddStringToObject(o, "host", id->host);
	cJSON_AddStringToObject(o, "fingerprint", id->fingerprint);
	cJSON_AddBoolToObject(o, "resumed", id->resumed);
	cJSON_AddStringToObject(o, "peer", httpd_req_peer(r));
	return o;
}

static void
whoami_end(struct httpd_req *r, void *arg)
{
	(void)arg;
	httpd_respond_json(r, 200, identity_json(r));
}

static void
master_end(struct httpd_req *r, void *arg)
{
	(void)arg;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", 1);
	httpd_respond_json(r, 200, o);
}

static int
upload_begin(struct httpd_req *r, void *arg)
{
	struct upload_state *st = calloc(1, sizeof(*st));

	(void)arg;
	if (st == NULL) {
		httpd_respond_error(r, 500, "out of memory");
		return -1;
	}
	digest_init(&st->sha);
	httpd_req_set_data(r, st);
	return 0;
}

static int
upload_data(struct httpd_req *r, const struct httpd_part *part, const char *data, size_t len,
    void *arg)
{
	struct upload_state *st = httpd_req_data(r);

	(void)arg;
	if (part == NULL) {
		digest_update(&st->sha, data, len);
		st->bytes += len;
		return 0;
	}
	struct part_sum *ps = NULL;
	if (st->nparts > 0 && part->offset != 0 &&
	    strcmp(st->parts[st->nparts - 1].name, part->name) == 0) {
		ps = &st->parts[st->nparts - 1];
	} else {
		if (st->nparts >= sizeof(st->parts) / sizeof(st->parts[0])) {
			httpd_respond_error(r, 400, "too many form fields");
			return -1;
		}
		ps = &st->parts[st->nparts++];
		snprintf(ps->name, sizeof(ps->name), "%s", part->name);
		snprintf(ps->filename, sizeof(ps->filename), "%s",
		    part->filename != NULL ? part->filename : "");
		digest_init(&ps->sha);
	}
	digest_update(&ps->sha, data, len);
	ps->bytes += len;
	return 0;
}

static void
upload_end(struct httpd_req *r, void *arg)
{
	struct upload_state *st = httpd_req_data(r);
	char hex[65];
	cJSON *o = cJSON_CreateObject();

	(void)arg;
	if (digest_final(&st->sha, hex) != 0) {
		cJSON_Delete(o);
		httpd_respond_error(r, 500, "sha256 failed");
		return;
	}
	cJSON_AddNumberToObject(o, "bytes", (double)st->bytes);
	cJSON_AddStringToObject(o, "sha256", hex);
	if (st->nparts > 0) {
		cJSON *arr = cJSON_AddArrayToObject(o, "parts");
		for (size_t i = 0; i < st->nparts; i++) {
			cJSON *p = cJSON_CreateObject();
			if (digest_final(&st->parts[i].sha, hex) != 0) {
				hex[0] = '\0';
			}
			cJSON_AddStringToObject(p, "name", st->parts[i].name);
			cJSON_AddStringToObject(p, "filename", st->parts[i].filename);
			cJSON_AddNumberToObject(p, "bytes", (double)st->parts[i].bytes);
			cJSON_AddStringToObject(p, "sha256", hex);
			cJSON_AddItemToArray(arr, p);
		}
	}
	httpd_respond_json(r, 200, o);
}

static void
upload_cleanup(struct httpd_req *r, void *arg, int completed)
{
	struct upload_state *st = httpd_req_data(r);

	(void)arg;
	(void)completed;
	if (st == NULL) {
		return;
	}
	digest_free(&st->sha);
	for (size_t i = 0; i < st->nparts; i++) {
		digest_free(&st->parts[i].sha);
	}
	free(st);
	httpd_req_set_data(r, NULL);
}

static void
slow_end(struct httpd_req *r, void *arg)
{
	const char *ms = httpd_req_query(r, "ms");
	long long v = 0;

	(void)arg;
	if (ms == NULL || parse_ll(ms, 0, 60000, &v) != 0) {
		httpd_respond_error(r, 400, "ms must be 0..60000");
		return;
	}
	/* Wait on the clock, not on a bare sleep: shutdown can end it early. */
	int64_t deadline = mono_ms() + v;
	while (ms_until(deadline) > 0 && !httpd_req_stopping(r)) {
		struct pollfd none = { .fd = -1, .events = 0, .revents = 0 };
		(void)poll(&none, 1, ms_until(deadline) < 20 ? ms_until(deadline) : 20);
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "slept_ms", (double)v);
	httpd_respond_json(r, 200, o);
}

static long
status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long v = -1;
	size_t kl = strlen(key);

	if (f == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			long long x;
			char *p = line + kl + 1;
			while (*p == ' ' || *p == '\t') {
				p++;
			}
			char *sp = strchr(p, ' ');
			if (sp != NULL) {
				*sp = '\0';
			}
			if (parse_ll(p, 0, 1LL << 40, &x) == 0) {
				v = (long)x;
			}
			break;
		}
	}
	fclose(f);
	return v;
}

static void
stats_end(struct httpd_req *r, void *arg)
{
	cJSON *o = cJSON_CreateObject();

	struct httpd *srv = atomic_load(&g_srv);

	(void)arg;
	if (srv == NULL) {
		cJSON_Delete(o);
		httpd_respond_error(r, 503, "starting");
		return;
	}
	cJSON_AddNumberToObject(o, "vmhwm_kb", (double)status_kb("VmHWM"));
	cJSON_AddNumberToObject(o, "vmrss_kb", (double)status_kb("VmRSS"));
	cJSON_AddNumberToObject(o, "connections", (double)httpd_active_connections(srv));
	/* Counts this request too: lets tests see a request in flight. */
	cJSON_AddNumberToObject(o, "requests", (double)httpd_active_requests(srv));
	httpd_respond_json(r, 200, o);
}

#define GIB (1024ULL * 1024 * 1024)

static const struct httpd_route routes[] = {
	/* Open to a peer with no role too, so tests see how it was mapped. */
	{ .method = "GET", .path = "/whoami", .roles = TLS_ROLES_ANY, .on_end = whoami_end },
	{ .method = "GET", .path = "/master-only", .roles = TLS_ROLEBIT(TLS_ROLE_MASTER),
	    .on_end = master_end },
	{ .method = "POST", .path = "/upload", .max_body = 4 * GIB, .deadline_ms = 600000,
	    .on_begin = upload_begin, .on_data = upload_data, .on_end = upload_end,
	    .on_cleanup = upload_cleanup },
	{ .method = "POST", .path = "/form", .max_body = 4 * GIB, .deadline_ms = 600000,
	    .multipart = 1, .on_begin = upload_begin, .on_data = upload_data,
	    .on_end = upload_end, .on_cleanup = upload_cleanup },
	{ .method = "POST", .path = "/small", .max_body = 1024, .on_begin = upload_begin,
	    .on_data = upload_data, .on_end = upload_end, .on_cleanup = upload_cleanup },
	{ .method = "GET", .path = "/slow", .on_end = slow_end },
	{ .method = "GET", .path = "/stats", .on_end = stats_end },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: tandem-testd --ca CA --cert CRT --key KEY [--listen ADDR:PORT]\n"
		   "       [--master-cn CN] [--max-conns N] [--max-per-ip N]\n"
		   "       [--header-timeout-ms N] [--request-timeout-ms N]\n"
		   "       [--handshake-timeout-ms N] [--no-tickets] [--debug]\n");
}

static int
opt_int(const char *name, const char *v, long long max)
{
	long long x;

	if (parse_ll(v, 0, max, &x) != 0) {
		fprintf(stderr, "tandem-testd: %s: invalid number \"%s\"\n", name, v);
		exit(2);
	}
	return (int)x;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ca", required_argument, NULL, 'a' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "listen", required_argument, NULL, 'l' },
		{ "master-cn", required_argument, NULL, 'm' },
		{ "max-conns", required_argument, NULL, 'C' },
		{ "max-per-ip", required_argument, NULL, 'P' },
		{ "header-timeout-ms", required_argument, NULL, 'H' },
		{ "request-timeout-ms", required_argument, NULL, 'R' },
		{ "handshake-timeout-ms", required_argument, NULL, 'S' },
		{ "no-tickets", no_argument, NULL, 'T' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tls_opts to;
	struct httpd_opts ho;
	struct tls_ctx *tls = NULL;
	struct httpd *srv = NULL;
	struct err err = ERR_INIT;
	int ch;
	sigset_t set;
	int sig;

	log_init("tandem-testd", LOG_LVL_INFO);
	tls_opts_init(&to);
	httpd_opts_init(&ho);
	ho.name = "testd";
	ho.listen = "127.0.0.1:0";
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			to.ca_file = optarg;
			break;
		case 'c':
			to.cert_file = optarg;
			break;
		case 'k':
			to.key_file = optarg;
			break;
		case 'l':
			ho.listen = optarg;
			break;
		case 'm':
			to.master_cn = optarg;
			break;
		case 'C':
			ho.max_conns = (unsigned)opt_int("--max-conns", optarg, 10000);
			break;
		case 'P':
			ho.max_conns_per_ip = (unsigned)opt_int("--max-per-ip", optarg, 10000);
			break;
		case 'H':
			ho.header_timeout_ms = opt_int("--header-timeout-ms", optarg, 3600000);
			break;
		case 'R':
			ho.request_timeout_ms = opt_int("--request-timeout-ms", optarg, 3600000);
			break;
		case 'S':
			to.handshake_timeout_ms = opt_int("--handshake-timeout-ms", optarg, 3600000);
			break;
		case 'T':
			to.session_tickets = 0;
			break;
		case 'd':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || to.ca_file == NULL || to.cert_file == NULL || to.key_file == NULL) {
		usage(stderr);
		return 2;
	}
	if (tls_server_new(&to, &tls, &err) != 0) {
		fprintf(stderr, "tandem-testd: %s\n", err_msg(&err));
		return 1;
	}
	ho.tls = tls;
	ho.routes = routes;
	ho.nroutes = sizeof(routes) / sizeof(routes[0]);
	/* Block the stop signals in every thread; main waits for them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (httpd_start(&ho, &srv, &err) != 0) {
		fprintf(stderr, "tandem-testd: %s\n", err_msg(&err));
		tls_ctx_free(tls);
		return 1;
	}
	atomic_store(&g_srv, srv);
	printf("READY port=%d\n", httpd_port(srv));
	fflush(stdout);
	while (sigwait(&set, &sig) != 0) {
		continue;
	}
	log_info("signal %d: stopping", sig);
	httpd_stop(srv, 5000, 0);
	tls_ctx_free(tls);
	return 0;
}
