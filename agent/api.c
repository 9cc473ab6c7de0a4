#include "agent/api.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/broken.h"
#include "cJSON.h"
#include "common/json.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/version.h"

const char *
api_reported_version(void)
{
#if TANDEM_AGENT_BROKEN == AGENT_BROKEN_WRONG_VERSION
	return AGENT_WRONG_VERSION;
#else
	return tandem_version();
#endif
}

const char *
api_phase_name(enum api_phase phase)
{
	switch (phase) {
	case API_READY:
		return "ok";
	case API_STOPPING:
		return "stopping";
	default:
		return "starting";
	}
}

void
api_set_phase(struct api *a, enum api_phase phase)
{
	atomic_store(&a->phase, (int)phase);
}

enum api_phase
api_phase(struct api *a)
{
#if TANDEM_AGENT_BROKEN == AGENT_BROKEN_NEVER_READY
	if (atomic_load(&a->phase) == API_READY) {
		return API_STARTING;
	}
#endif
	return (enum api_phase)atomic_load(&a->phase);
}

/* cert_not_after, cert_fingerprint, cert_renewed, crl, crl_number, crl_next_update */
static int
health_add_tls(struct api *a, cJSON *o)
{
	struct api_tls t;

	pthread_mutex_lock(&a->tls_mtx);
	t = a->tls;
	pthread_mutex_unlock(&a->tls_mtx);
	if (json_add_str(o, "cert_not_after", t.cert_not_after) != 0 ||
	    json_add_str(o, "cert_fingerprint", t.cert_fingerprint) != 0 ||
	    json_add_bool(o, "cert_renewed", t.renewed) != 0 ||
	    json_add_str(o, "crl", t.crl[0] != '\0' ? t.crl : "none") != 0 ||
	    json_add_int(o, "crl_number", (long long)t.crl_number) != 0 ||
	    json_add_str(o, "crl_next_update", t.crl_next_update[0] != '\0' ? t.crl_next_update
									   : NULL) != 0) {
		return -1;
	}
	return 0;
}

void
api_set_tls(struct api *a, const struct api_tls *t)
{
	pthread_mutex_lock(&a->tls_mtx);
	a->tls = *t;
	pthread_mutex_unlock(&a->tls_mtx);
}

static cJSON *
health_build(struct api *a, enum api_phase ph)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *rel = NULL;
	int64_t up = (mono_ms() - a->started_mono) / 1000;

	if (o == NULL) {
		return NULL;
	}
	if (json_add_str(o, "status", api_phase_name(ph)) != 0 ||
	    json_add_str(o, "role", "agent") != 0 || json_add_str(o, "version", a->version) != 0 ||
	    (rel = json_add_object(o, "release")) == NULL ||
	    json_add_str(rel, "sha", (a->release.fields & RELEASE_R_SHA) != 0 ?
	    a->release.sha : NULL) != 0 ||
	    json_add_str(rel, "sha256", (a->release.fields & RELEASE_R_SHA256) != 0 ?
	    a->release.sha256 : NULL) != 0 ||
	    json_add_int(o, "pid", (long long)a->pid) != 0 ||
	    json_add_str(o, "started_at", a->started_at) != 0 ||
	    json_add_int(o, "uptime_s", up > 0 ? up : 0) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	if (health_add_tls(a, o) != 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

void *
api_health_json(struct api *a)
{
	return health_build(a, api_phase(a));
}

static void
respond_or_500(struct httpd_req *r, unsigned status, cJSON *o)
{
	if (o == NULL) {
		httpd_respond_error(r, 500, "out of memory");
		return;
	}
	httpd_respond_json(r, status, o);
}

#if TANDEM_AGENT_BROKEN == AGENT_BROKEN_SLOW_HEALTH
/* Hold the request for A->slow_ms on the clock (a request in flight). */
static void
slow_wait(struct api *a, struct httpd_req *r)
{
	int64_t deadline = mono_ms() + a->slow_ms;

	log_info("slow-health: holding %s %s for %d ms", httpd_req_method(r), httpd_req_path(r),
	    a->slow_ms);
	while (ms_until(deadline) > 0) {
		struct pollfd none = { .fd = -1, .events = 0, .revents = 0 };
		(void)poll(&none, 1, ms_until(deadline));
	}
}
#endif

static void
health_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	/* The answer describes the agent when the request arrived. */
	enum api_phase ph = api_phase(a);
	cJSON *o = health_build(a, ph);

#if TANDEM_AGENT_BROKEN == AGENT_BROKEN_SLOW_HEALTH
	slow_wait(a, r);
#endif
	respond_or_500(r, ph == API_READY ? 200 : 503, o);
}

static void
livez_end(struct httpd_req *r, void *arg)
{
	cJSON *o = cJSON_CreateObject();

	(void)arg;
	if (o != NULL && json_add_str(o, "status", "alive") != 0) {
		cJSON_Delete(o);
		o = NULL;
	}
	respond_or_500(r, 200, o);
}

static void
readyz_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	enum api_phase ph = api_phase(a);

	if (ph == API_READY) {
		cJSON *o = cJSON_CreateObject();
		if (o != NULL && json_add_str(o, "status", "ready") != 0) {
			cJSON_Delete(o);
			o = NULL;
		}
		respond_or_500(r, 200, o);
		return;
	}
	httpd_respond_error(r, 503, "not ready: %s", api_phase_name(ph));
}

static void
info_end(struct httpd_req *r, void *arg)
{
	struct api *a = arg;
	const struct tls_identity *id = httpd_req_identity(r);
	struct inventory inv;

	/* The route admits masters and updaters; of the updaters, only ours. */
	if (id->role == TLS_ROLE_UPDATER && strcmp(id->host, a->own_host) != 0) {
		httpd_respond_error(r, 403,
		    "GET /info is allowed for the master and updater@%s, not CN=%s", a->own_host,
		    id->cn);
		return;
	}
	if (inventory_collect(&a->inv_paths, &inv) != 0) {
		httpd_respond_error(r, 500, "cannot collect the inventory");
		return;
	}
	respond_or_500(r, 200, inventory_json(&inv, a->version));
}

void
api_init(struct api *a, const char *version, const struct release_info *release,
    const char *own_host, const struct inventory_paths *inv_paths)
{
	static const unsigned info_roles =
	    TLS_ROLEBIT(TLS_ROLE_MASTER) | TLS_ROLEBIT(TLS_ROLE_UPDATER);

	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->tls_mtx, NULL);
	atomic_store(&a->phase, API_STARTING);
	a->pid = getpid();
	snprintf(a->version, sizeof(a->version), "%s", version);
	iso8601_utc(time(NULL), a->started_at, sizeof(a->started_at));
	a->started_mono = mono_ms();
	if (release != NULL) {
		a->release = *release;
	}
	snprintf(a->own_host, sizeof(a->own_host), "%s", own_host);
	if (inv_paths != NULL) {
		a->inv_paths = *inv_paths;
	}
	a->slow_ms = AGENT_SLOW_DEFAULT_MS;
#if TANDEM_AGENT_BROKEN == AGENT_BROKEN_SLOW_HEALTH
	const char *s = getenv("TANDEM_SLOW_MS");
	long long v;
	if (s != NULL && parse_ll(s, 0, 600000, &v) == 0) {
		a->slow_ms = (int)v;
	}
#endif
	/* The probes answer any CA-signed client, even one whose certificate names no role. */
	a->routes[0] = (struct httpd_route){ .method = "GET", .path = "/health",
		.roles = TLS_ROLES_ANY, .on_end = health_end, .arg = a };
	a->routes[1] = (struct httpd_route){ .method = "GET", .path = "/livez",
		.roles = TLS_ROLES_ANY, .on_end = livez_end, .arg = a };
	a->routes[2] = (struct httpd_route){ .method = "GET", .path = "/readyz",
		.roles = TLS_ROLES_ANY, .on_end = readyz_end, .arg = a };
	a->routes[3] = (struct httpd_route){ .method = "GET", .path = "/info", .roles = info_roles,
		.on_end = info_end, .arg = a };
}

const struct httpd_route *
api_routes(const struct api *a, size_t *n)
{
	*n = API_NROUTES;
	return a->routes;
}
