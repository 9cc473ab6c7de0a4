/*
 * config — the updater's configuration: one option table (name, type,
 * default, bounds, help) for tandem-updater and tandem-launcher, which read
 * the same file, and the rules across options.
 *
 * Strict like every tandem configuration (common/config): unknown keys are
 * errors, relative paths resolve against the file's directory, and
 * `tandem-updater --print-config` prints a file that loads back to the same
 * values. wiki/Updater.md lists the options.
 */
#ifndef TANDEM_UPDATER_CONFIG_H
#define TANDEM_UPDATER_CONFIG_H

#include <stddef.h>

#include "common/config.h"
#include "common/err.h"
#include "common/util.h"

#define UPDATER_DEFAULT_LISTEN "0.0.0.0:8766"

/* Every member is filled by the option table (updater_config_table). */
struct updater_config {
	char *listen;
	char *install_dir;
	char *ca;
	char *cert;
	char *key;
	char *master_cn;
	char **master_fingerprints;
	char *master_compat_ou;           /* "" = off; see updater_config_table */
	long long master_compat_wait_ms;  /* how long a compat master waits for the lock */
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
	long long restore_probe_retries;
	long long restore_retry_backoff_ms;
	long long both_bad_retries;
	long long both_bad_retry_interval_ms;
	long long probe_first_interval_ms;
	long long probe_max_interval_ms;
	long long probe_attempt_timeout_ms;
	long long stop_grace_ms;
	long long restart_backoff_min_ms;
	long long restart_backoff_max_ms;
	long long restart_min_spacing_ms;
	long long crash_loop_count;
	long long crash_loop_window_ms;
	long long crash_loop_retry_ms;
	long long liveness_interval_ms;  /* 0: no liveness checks */
	long long liveness_timeout_ms;
	long long liveness_failures;
	long long request_timeout_ms;
	long long route_timeout_ms;
	long long max_conns;
	int log_level;
	int log_format;
	int log_target;
	char *log_file;
	long long log_max;   /* cap of agent_log and log_file (updater/logcap, common/log) */
	long long log_keep;  /* rotated copies kept: FILE.1 .. FILE.log_keep */
	/* Release signatures (updater/trust.h, wiki/Release-Signing.md). */
	char *release_keyring;
	int require_signed;
	char *compatible;
};

extern const struct config_option updater_config_table[];
extern const size_t updater_config_table_len;

/*
 * Check the rules across fields of a loaded configuration (required paths
 * set, install_dir absolute, pins well-formed). Returns 0, or -1 with E
 * (ERR_CONFIG).
 */
int updater_config_check(const struct updater_config *cfg, struct err *e) WUR;

/*
 * Fill CFG (zeroed, or freed with updater_config_free()) from the file
 * PATH, then the command-line overrides LISTEN and INSTALL_DIR (NULL: not
 * given), and check it. Returns 0, or -1 with E (ERR_CONFIG); CFG must be
 * freed in both cases.
 */
int updater_config_load(struct updater_config *cfg, const char *path, const char *listen,
    const char *install_dir, struct err *e) WUR;

/* Write CFG in the file format to FP (--print-config). 0 or -1. */
int updater_config_print(const struct updater_config *cfg, FILE *fp) WUR;

/* Free every string and list of CFG. */
void updater_config_free(struct updater_config *cfg);
/*
 * How long a stop waits for a running operation to finish and answer: what
 * it may still take after its upload (the preflight, two agent stops, the new
 * release's probe and a restore probe). tandem-launcher gives the updater
 * that long (plus its own margin) before it kills it.
 */
long long updater_config_stop_wait_ms(const struct updater_config *cfg);

#endif
