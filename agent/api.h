/*
 * api — the agent's HTTP endpoints, served by common/httpd over mTLS:
 *
 *   GET /health  any CA-signed client: status, role, version, release
 *                record, pid, started_at, uptime_s (503 unless ready)
 *   GET /livez   any CA-signed client: 200 while the process runs
 *   GET /readyz  any CA-signed client: 503 until initialisation has
 *                finished and again once shutdown has begun, else 200
 *   GET /info    the master and this host's own updater: host inventory
 *
 * httpd answers unknown paths (404), wrong methods (405 with Allow) and
 * role refusals (403) with JSON bodies before any handler runs.
 */
#ifndef TANDEM_AGENT_API_H
#define TANDEM_AGENT_API_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "agent/inventory.h"
#include "common/release.h"
#include "common/httpd.h"

enum api_phase {
	API_STARTING = 0,
	API_READY = 1,
	API_STOPPING = 2,
};

#define API_NROUTES 4

/* The identity and CRL in force, for /health (set at start and on reload). */
struct api_tls {
	char cert_not_after[32];    /* ISO 8601 UTC */
	char cert_fingerprint[65];
	int renewed;                /* the pair comes from the state directory */
	char crl[16];               /* "none", "ok", "stale", "invalid" */
	unsigned long long crl_number;
	char crl_next_update[32];   /* "" when none */
};

/* The state the handlers read; fields are private to api.c. */
struct api {
	atomic_int phase;
	pid_t pid;
	char version[64];
	char started_at[32];
	int64_t started_mono;
	struct release_info release;
	char own_host[128];
	struct inventory_paths inv_paths;
	int slow_ms; /* slow-health build only */
	pthread_mutex_t tls_mtx;
	struct api_tls tls;
	struct httpd_route routes[API_NROUTES];
};

/*
 * Initialise A in the STARTING phase. VERSION is what /health and /info
 * report; RELEASE (copied; NULL: no record) is the running release;
 * OWN_HOST is the host this agent's certificate names (its updater is
 * "updater@OWN_HOST"). INV_PATHS (copied; NULL: system defaults) feeds /info.
 */
void api_init(struct api *a, const char *version, const struct release_info *release,
    const char *own_host, const struct inventory_paths *inv_paths);

/* The route table for httpd_opts (valid as long as A). */
const struct httpd_route *api_routes(const struct api *a, size_t *n);

void api_set_phase(struct api *a, enum api_phase phase);
/* What /health reports about the identity and the CRL from now on. */
void api_set_tls(struct api *a, const struct api_tls *t);
enum api_phase api_phase(struct api *a);
const char *api_phase_name(enum api_phase phase);

/* The /health object as served now (NULL on allocation failure). */
void *api_health_json(struct api *a);

/* The version this build reports: tandem_version(), or the wrong one in the
 * wrong-version test build. */
const char *api_reported_version(void);

#endif
