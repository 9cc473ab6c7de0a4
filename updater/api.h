/*
 * api — the updater daemon: its configuration, the install pipeline
 * (POST /update), POST /rollback, GET /health, /releases, /history on
 * common/httpd (wire contract: DESIGN.md "Updater wire API"), and the agent
 * it supervises (updater/supervise, updater/probe).
 *
 * One operation at a time (update or rollback) holds the operation lock; a
 * second one gets 503 with Retry-After and the running operation's id, while
 * GET requests keep being answered (each connection has its own thread).
 */
#ifndef TANDEM_UPDATER_API_H
#define TANDEM_UPDATER_API_H

#include <stddef.h>
#include <stdio.h>

#include "common/config.h"
#include "common/util.h"

#define UPDATER_DEFAULT_LISTEN "0.0.0.0:8766"

/* Every member is filled by the option table (api_config_table). */
struct updater_config {
	char *listen;
	char *install_dir;
	char *ca;
	char *cert;
	char *key;
	char *master_cn;
	char **master_fingerprints;
	char *agent_config;
	char *agent_probe;
	char *agent_pin;
	char *agent_log;
	char *run_as_user;
	char *run_as_group;
	int stop_agent_on_exit;
	long long max_upload;
	long long max_unpacked;
	long long max_entries;
	long long min_free;
	long long failed_keep;
	long long preflight_timeout_ms;
	long long probe_deadline_ms;
	long long probe_stable_ms;
	long long probe_first_interval_ms;
	long long probe_max_interval_ms;
	long long stop_grace_ms;
	long long restart_backoff_min_ms;
	long long restart_backoff_max_ms;
	long long restart_min_spacing_ms;
	long long crash_loop_count;
	long long crash_loop_window_ms;
	long long crash_loop_retry_ms;
	long long request_timeout_ms;
	long long max_conns;
	int log_level;
	char *log_file;
};

extern const struct config_option api_config_table[];
extern const size_t api_config_table_len;

/*
 * Check cross-field rules of a loaded configuration (required paths set,
 * install_dir absolute). Returns 0, or -1 with ERR.
 */
int api_config_check(const struct updater_config *cfg, char *err, size_t errlen) WUR;

struct api;

/*
 * Set up the daemon from CFG (borrowed for the lifetime of the api): the
 * store (recovering any interrupted operation first), TLS contexts and the
 * supervisor. The process's working directory must be CFG->install_dir
 * (extraction is relative to it). Nothing listens and no agent runs yet.
 */
int api_new(const struct updater_config *cfg, struct api **out, char *err, size_t errlen) WUR;

/*
 * When SEED (a release tarball path, may be NULL) is given and no release is
 * installed, install it first (the push pipeline without the HTTP part; a
 * failure is fatal). Then adopt the agent an earlier updater left running
 * (verified pid, start time and executable) or start it from `current`, and
 * start serving. Returns 0, or -1 with ERR (an agent that will not start is
 * not fatal: it is reported in /health and retried by the supervisor).
 */
int api_start(struct api *a, const char *seed, char *err, size_t errlen) WUR;

/* The port the server listens on (after api_start). */
int api_port(const struct api *a);

/*
 * Stop serving (in-flight requests get GRACE_MS), stop the agent when
 * configured (stop_agent_on_exit) or leave it running for the next updater
 * to adopt, free A. NULL is fine.
 */
void api_free(struct api *a, int grace_ms);

#endif
