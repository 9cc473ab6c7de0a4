/*
 * options — the agent's configuration: a strict option table (common/config)
 * loaded from `--config FILE`, then overridden by command-line flags in the
 * order given.
 */
#ifndef TANDEM_AGENT_OPTIONS_H
#define TANDEM_AGENT_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "common/err.h"
#include "common/util.h"

#define AGENT_DEFAULT_LISTEN "0.0.0.0:8765"
/* Set by the updater when it starts the agent; tls_dir / crl when the config has none. */
#define OPTIONS_ENV_TLS_DIR "TANDEM_AGENT_TLS_DIR"
#define OPTIONS_ENV_CRL "TANDEM_AGENT_CRL"

/* Every member is filled by the option table (see options.c for keys). */
struct agent_config {
	char *listen;
	char *ca;
	char *cert;
	char *key;
	char *tls_dir;   /* renewed identity: TLS_DIR/current/{cert,key}.pem override cert/key */
	char *crl;       /* CRL file (DER or PEM) checked against ca; NULL: none */
	char *master_cn;
	int log_level;
	int log_format;
	int log_target;
	char *log_file;
	long long max_conns;
	long long max_conns_per_ip;
	long long idle_timeout_ms;
	long long header_timeout_ms;
	long long request_timeout_ms;
	long long handshake_timeout_ms;
	long long shutdown_grace_ms;
};

enum options_action {
	OPTIONS_RUN = 0,
	OPTIONS_CHECK,        /* -n */
	OPTIONS_SELF_TEST,    /* --self-test */
	OPTIONS_PRINT_CONFIG, /* --print-config */
	OPTIONS_VERSION,      /* --version */
	OPTIONS_HELP,         /* --help */
};

struct agent_options {
	struct agent_config cfg;
	enum options_action action;
	int ready_fd;              /* --ready-fd N, -1 when absent */
	char config_path[4096];    /* --config FILE as given, "" when absent */
};

/*
 * Parse ARGV: collect flags, set defaults, load the --config file (wherever
 * the flag appears), then apply the overriding flags in order. For
 * OPTIONS_RUN, OPTIONS_CHECK and OPTIONS_SELF_TEST the TLS paths must be set.
 * O must be zero-initialised (or freed with options_free) before the call.
 * Returns 0, or -1 with E: ERR_USAGE for the command line itself, the
 * config module's kinds for the file and the values (ERR_CONFIG, ERR_IO), and
 * ERR_CONFIG for a missing TLS path. The agent exits 2 on any of them.
 * Uses getopt_long (resets optind).
 */
int options_parse(int argc, char *const argv[], struct agent_options *o, struct err *e) WUR;

/* Write the effective configuration (re-parseable config file text). */
int options_print(const struct agent_options *o, FILE *fp) WUR;

/* Free every string of O->cfg; O may be reused afterwards. */
void options_free(struct agent_options *o);

/* The --help text. */
void options_usage(FILE *fp);

#endif
