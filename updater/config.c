#include "updater/config.h"

#include <stdio.h>

#include "common/log.h"
#include "common/release.h"
#include "common/tls.h"
#include "pki/sign.h"
#include "updater/supervise.h"

#define OFF(m) offsetof(struct updater_config, m)
const struct config_option updater_config_table[] = {
	{ "listen", CONFIG_ADDR, OFF(listen), UPDATER_DEFAULT_LISTEN, 0, 0,
	    "address and port of the updater API" },
	{ "install_dir", CONFIG_PATH, OFF(install_dir), NULL, 0, 0,
	    "root of current, releases/ and state/ (required)" },
	{ "ca", CONFIG_PATH, OFF(ca), NULL, 0, 0, "fleet CA certificate (required)" },
	{ "cert", CONFIG_PATH, OFF(cert), NULL, 0, 0,
	    "updater certificate, CN=updater@HOST, serverAuth+clientAuth (required)" },
	{ "key", CONFIG_PATH, OFF(key), NULL, 0, 0, "updater private key (required)" },
	{ "master_cn", CONFIG_STR, OFF(master_cn), TLS_DEFAULT_MASTER_CN, 1, 127,
	    "CN of the master certificate" },
	{ "master_fingerprints", CONFIG_STRLIST, OFF(master_fingerprints), "", 0, 0,
	    "if set, only these master certificates (sha256 of DER, hex) may push" },
	{ "master_compat_ou", CONFIG_STR, OFF(master_compat_ou), "", 0, 63,
	    "DECNET compatibility: a certificate with CN=master_cn and this OU (e.g. swarm-worker) "
	    "is the master; needs master_fingerprints; empty: off" },
	{ "master_compat_wait", CONFIG_DURATION_MS, OFF(master_compat_wait_ms), "120s", 0, 3600000,
	    "a master accepted through master_compat_ou waits this long for a running operation "
	    "instead of getting 503" },
	{ "agent_config", CONFIG_PATH, OFF(agent_config), NULL, 0, 0,
	    "the agent's config file, passed as --config (required)" },
	{ "agent_probe", CONFIG_ADDR, OFF(agent_probe), "127.0.0.1:8765", 1, 65535,
	    "where the agent's /health is probed" },
	{ "agent_pin", CONFIG_STR, OFF(agent_pin), "", 0, 64,
	    "sha256 of the agent's certificate (hex); empty: CA only" },
	{ "agent_log", CONFIG_PATH, OFF(agent_log), NULL, 0, 0,
	    "agent stdout/stderr (default INSTALL_DIR/state/agent.log)" },
	{ "run_as_user", CONFIG_STR, OFF(run_as_user), "", 0, 64, "run the agent as this user" },
	{ "run_as_group", CONFIG_STR, OFF(run_as_group), "", 0, 64, "... and this group" },
	{ "stop_agent_on_exit", CONFIG_BOOL, OFF(stop_agent_on_exit), "false", 0, 0,
	    "stop the agent when the updater exits (else the next updater adopts it)" },
	{ "max_upload", CONFIG_SIZE, OFF(max_upload), "512M", 1024, 1LL << 40,
	    "largest tarball accepted (413 beyond)" },
	{ "max_unpacked", CONFIG_SIZE, OFF(max_unpacked), "2G", 1024, 1LL << 42,
	    "largest unpacked release" },
	{ "max_entries", CONFIG_INT, OFF(max_entries), "100000", 1, 10000000,
	    "most archive entries in a release" },
	{ "min_free", CONFIG_SIZE, OFF(min_free), "64M", 0, 1LL << 42,
	    "free disk space that must remain while installing (507 otherwise)" },
	{ "failed_keep", CONFIG_INT, OFF(failed_keep), "3", 0, 100,
	    "failed releases kept in releases/failed/" },
	{ "preflight_timeout", CONFIG_DURATION_MS, OFF(preflight_timeout_ms), "30s", 100,
	    3600000, "limit on the release's preflight command" },
	{ "probe_deadline", CONFIG_DURATION_MS, OFF(probe_deadline_ms), "30s", 100, 3600000,
	    "time for a new agent to answer /health" },
	{ "probe_stable", CONFIG_DURATION_MS, OFF(probe_stable_ms), "3s", 0, 3600000,
	    "stability window after the first healthy answer" },
	{ "probe_first_interval", CONFIG_DURATION_MS, OFF(probe_first_interval_ms), "20ms", 1,
	    60000, "first wait between probe attempts" },
	{ "probe_max_interval", CONFIG_DURATION_MS, OFF(probe_max_interval_ms), "1s", 1, 60000,
	    "longest wait between probe attempts" },
	{ "probe_attempt_timeout", CONFIG_DURATION_MS, OFF(probe_attempt_timeout_ms), "5s", 100,
	    60000, "connect + handshake + answer of one probe attempt (a loaded host is slow)" },
	{ "restore_probe_retries", CONFIG_INT, OFF(restore_probe_retries), "2", 0, 10,
	    "restarts and probes of the restored release after its probe failed, before both bad" },
	{ "restore_retry_backoff", CONFIG_DURATION_MS, OFF(restore_retry_backoff_ms), "1s", 0,
	    600000, "wait before the first restore retry, doubling for each further one" },
	{ "both_bad_retries", CONFIG_INT, OFF(both_bad_retries), "5", 0, 100,
	    "restarts and probes of the last good release while both bad (0: none)" },
	{ "both_bad_retry_interval", CONFIG_DURATION_MS, OFF(both_bad_retry_interval_ms), "60s",
	    10, 3600000, "wait before the first both_bad retry, doubling (at most 1 h)" },
	{ "stop_grace", CONFIG_DURATION_MS, OFF(stop_grace_ms), "5s", 10, 600000,
	    "SIGTERM to SIGKILL when stopping the agent" },
	{ "restart_backoff_min", CONFIG_DURATION_MS, OFF(restart_backoff_min_ms), "500ms", 10,
	    3600000, "first delay before restarting a crashed agent (doubles per crash)" },
	{ "restart_backoff_max", CONFIG_DURATION_MS, OFF(restart_backoff_max_ms), "30s", 10,
	    86400000, "longest restart delay" },
	{ "restart_min_spacing", CONFIG_DURATION_MS, OFF(restart_min_spacing_ms), "1s", 10, 3600000,
	    "least time between two starts of the agent" },
	{ "crash_loop_count", CONFIG_INT, OFF(crash_loop_count), "5", 1, SUP_MAX_CRASHES,
	    "this many crashes within crash_loop_window is a crash loop (shown in /health)" },
	{ "crash_loop_window", CONFIG_DURATION_MS, OFF(crash_loop_window_ms), "60s", 100, 86400000,
	    NULL },
	{ "crash_loop_retry", CONFIG_DURATION_MS, OFF(crash_loop_retry_ms), "60s", 100, 86400000,
	    "in a crash loop, try again after this long" },
	{ "liveness_interval", CONFIG_DURATION_MS, OFF(liveness_interval_ms), "10s", 0, 3600000,
	    "how often the running agent's /livez is asked (0: never)" },
	{ "liveness_timeout", CONFIG_DURATION_MS, OFF(liveness_timeout_ms), "5s", 100, 600000,
	    "time for one liveness answer (connect and exchange)" },
	{ "liveness_failures", CONFIG_INT, OFF(liveness_failures), "3", 1, 1000,
	    "this many liveness checks in a row without an answer: the agent is hung and killed" },
	{ "request_timeout", CONFIG_DURATION_MS, OFF(request_timeout_ms), "15m", 1000,
	    86400000, "whole /update, /update-self or /rollback request: upload, install and probe" },
	{ "route_timeout", CONFIG_DURATION_MS, OFF(route_timeout_ms), "10s", 100, 600000,
	    "whole request on every other route (/health, /releases, /history, /keyring, ...)" },
	{ "max_conns", CONFIG_INT, OFF(max_conns), "32", 1, 10000, "concurrent connections" },
	{ "log_level", CONFIG_LOGLEVEL, OFF(log_level), "info", 0, 0, NULL },
	{ "log_format", CONFIG_LOGFORMAT, OFF(log_format), "text", 0, 0,
	    "text, or json: one object per line (ts, level, prog, pid, msg, ...)" },
	{ "log_target", CONFIG_LOGTARGET, OFF(log_target), "stderr", 0, 0,
	    "stderr, journal, or auto: the journal when systemd runs the updater" },
	{ "log_file", CONFIG_PATH, OFF(log_file), NULL, 0, 0,
	    "log here instead of log_target (SIGHUP reopens it)" },
	{ "log_max", CONFIG_SIZE, OFF(log_max), "4M", 16384, 1LL << 40,
	    "largest agent_log and log_file: past it the file becomes FILE.1 (agent_log: copied and"
	    " truncated)" },
	{ "log_keep", CONFIG_INT, OFF(log_keep), "3", 1, LOG_KEEP_MAX,
	    "rotated copies kept of each capped log (FILE.1 .. FILE.N)" },
	{ "release_keyring", CONFIG_PATH, OFF(release_keyring), NULL, 0, 0,
	    "keyring of release keys to start from (copied to INSTALL_DIR/state/keyring.json)" },
	{ "require_signed", CONFIG_BOOL, OFF(require_signed), "false", 0, 0,
	    "refuse releases without a valid signature (else unsigned ones are accepted)" },
	{ "compatible", CONFIG_STR, OFF(compatible), SIGN_DEFAULT_COMPATIBLE, 1, SIGN_IDENT_MAX,
	    "the compatible string a signed release must name" },
};
#undef OFF
const size_t updater_config_table_len = ARRAY_LEN(updater_config_table);

/*
 * master_compat_ou widens who counts as the master, so it is only accepted
 * with the master pinned, and never as one of our own role names (a
 * certificate naming another role must not become the master).
 */
static int
updater_config_check_compat(const struct updater_config *cfg, struct err *e)
{
	const char *ou = cfg->master_compat_ou;

	if (ou[0] == '\0') {
		return 0;
	}
	if (cfg->master_fingerprints[0] == NULL) {
		return err_set(e, ERR_CONFIG, "master_compat_ou needs master_fingerprints: the "
		    "compatible master is accepted only by its pinned fingerprint");
	}
	if (tls_role_parse(ou) != TLS_ROLE_UNKNOWN) {
		return err_set(e, ERR_CONFIG, "master_compat_ou '%s' is a role name; name the OU "
		    "the other master's certificate carries (e.g. swarm-worker)", ou);
	}
	for (const char *p = ou; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
			return err_set(e, ERR_CONFIG, "master_compat_ou must be printable ASCII");
		}
	}
	return 0;
}

int
updater_config_check(const struct updater_config *cfg, struct err *e)
{
	if (cfg->install_dir == NULL || cfg->ca == NULL || cfg->cert == NULL ||
	    cfg->key == NULL || cfg->agent_config == NULL) {
		return err_set(e, ERR_CONFIG,
		    "install_dir, ca, cert, key and agent_config must all be set");
	}
	if (cfg->install_dir[0] != '/') {
		return err_set(e, ERR_CONFIG, "install_dir must be absolute");
	}
	if (cfg->agent_pin[0] != '\0' && !is_hex_len(cfg->agent_pin, TLS_FP_HEX_LEN)) {
		return err_set(e, ERR_CONFIG, "agent_pin must be 64 hex digits");
	}
	if (!release_ident_valid(cfg->compatible)) {
		return err_set(e, ERR_CONFIG, "compatible must be 1-%d characters of A-Z a-z 0-9 "
		    ". _ + ~ -, starting with a letter or digit", RELEASE_IDENT_MAX);
	}
	for (char **fp = cfg->master_fingerprints; *fp != NULL; fp++) {
		if (!is_hex_len(*fp, TLS_FP_HEX_LEN)) {
			return err_set(e, ERR_CONFIG, "master_fingerprints: '%s' is not 64 hex digits",
			    *fp);
		}
	}
	return updater_config_check_compat(cfg, e);
}

int
updater_config_load(struct updater_config *cfg, const char *path, const char *listen,
    const char *install_dir, struct err *e)
{
	const struct config_option *t = updater_config_table;
	const size_t n = updater_config_table_len;

	if (config_defaults(t, n, cfg, e) != 0 || config_load_file(t, n, cfg, path, e) != 0 ||
	    (listen != NULL && config_set(t, n, cfg, "listen", listen, NULL, e) != 0) ||
	    (install_dir != NULL &&
		config_set(t, n, cfg, "install_dir", install_dir, NULL, e) != 0)) {
		return -1;
	}
	return updater_config_check(cfg, e);
}

int
updater_config_print(const struct updater_config *cfg, FILE *fp)
{
	return config_print(updater_config_table, updater_config_table_len, cfg, fp);
}

void
updater_config_free(struct updater_config *cfg)
{
	config_free(updater_config_table, updater_config_table_len, cfg);
}

long long
updater_config_stop_wait_ms(const struct updater_config *cfg)
{
	/* Two probes (the new release, the restored one), each at most a deadline of silence
	 * before the first pass, the stability window, and a deadline of silence inside it. */
	long long probe_ms = 2 * cfg->probe_deadline_ms + cfg->probe_stable_ms;
	/* The restored release may be probed 1 + restore_probe_retries times, with backoff. */
	long long probes = 2 + cfg->restore_probe_retries;
	long long backoff = 0, b = cfg->restore_retry_backoff_ms;
	long long i;

	for (i = 0; i < cfg->restore_probe_retries; i++) {
		backoff += b;
		b *= 2;
	}
	return cfg->preflight_timeout_ms + probes * (probe_ms + cfg->stop_grace_ms) + backoff;
}
