#include "agent/options.h"

#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/tls.h"

#define DAY_MS (24LL * 3600 * 1000)

static const struct config_option agent_table[] = {
	{ "listen", CONFIG_ADDR, offsetof(struct agent_config, listen), AGENT_DEFAULT_LISTEN, 0, 0,
	    "address and port to serve mTLS HTTP on (\"[::]:8765\" for IPv6 and IPv4)" },
	{ "ca", CONFIG_PATH, offsetof(struct agent_config, ca), NULL, 0, 0,
	    "CA certificate that signs every accepted client" },
	{ "cert", CONFIG_PATH, offsetof(struct agent_config, cert), NULL, 0, 0,
	    "this agent's certificate (CN = host name)" },
	{ "key", CONFIG_PATH, offsetof(struct agent_config, key), NULL, 0, 0,
	    "private key of the certificate" },
	{ "tls_dir", CONFIG_PATH, offsetof(struct agent_config, tls_dir), NULL, 0, 0,
	    "renewed identity: DIR/current/cert.pem and key.pem replace cert and key when "
	    "present (re-read on SIGHUP)" },
	{ "crl", CONFIG_PATH, offsetof(struct agent_config, crl), NULL, 0, 0,
	    "CRL signed by the CA: listed certificates are refused (re-read on SIGHUP)" },
	{ "master_cn", CONFIG_STR, offsetof(struct agent_config, master_cn),
	    TLS_DEFAULT_MASTER_CN, 1, 64, "CN of the master's certificate" },
	{ "log_level", CONFIG_LOGLEVEL, offsetof(struct agent_config, log_level), "info", 0, 0,
	    "error, warn, info or debug" },
	{ "log_format", CONFIG_LOGFORMAT, offsetof(struct agent_config, log_format), "text", 0, 0,
	    "text, or json: one object per line (ts, level, prog, pid, msg, ...)" },
	{ "log_target", CONFIG_LOGTARGET, offsetof(struct agent_config, log_target), "stderr", 0,
	    0, "stderr, journal, or auto: the journal when systemd runs the agent" },
	{ "log_file", CONFIG_PATH, offsetof(struct agent_config, log_file), NULL, 0, 0,
	    "append log lines here instead of log_target (SIGHUP reopens it)" },
	{ "max_conns", CONFIG_INT, offsetof(struct agent_config, max_conns), "64", 1, 10000,
	    "connections served at once" },
	{ "max_conns_per_ip", CONFIG_INT, offsetof(struct agent_config, max_conns_per_ip), "16", 1,
	    10000, "connections from one address at once" },
	{ "idle_timeout", CONFIG_DURATION_MS, offsetof(struct agent_config, idle_timeout_ms), "30s",
	    1000, DAY_MS, "close keep-alive connections idle this long" },
	{ "header_timeout", CONFIG_DURATION_MS, offsetof(struct agent_config, header_timeout_ms),
	    "10s", 100, 3600000, "from a request's first byte to the end of its headers" },
	{ "request_timeout", CONFIG_DURATION_MS,
	    offsetof(struct agent_config, request_timeout_ms), "30s", 100, 3600000,
	    "whole-request deadline" },
	{ "handshake_timeout", CONFIG_DURATION_MS,
	    offsetof(struct agent_config, handshake_timeout_ms), "10s", 100, 600000,
	    "TLS handshake deadline" },
	{ "shutdown_grace", CONFIG_DURATION_MS, offsetof(struct agent_config, shutdown_grace_ms),
	    "10s", 0, 600000, "on SIGTERM, how long in-flight requests may still finish" },
};

#define MAX_OVERRIDES 64

struct override {
	const char *name; /* NULL: VALUE is "key=value" (-o) */
	const char *value;
};

enum {
	OPT_CONFIG = 256,
	OPT_LISTEN,
	OPT_CA,
	OPT_CERT,
	OPT_KEY,
	OPT_MASTER_CN,
	OPT_LOG_LEVEL,
	OPT_LOG_FILE,
	OPT_READY_FD,
	OPT_SELF_TEST,
	OPT_PRINT_CONFIG,
	OPT_VERSION,
};

void
options_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: tandem-agent [--config FILE] [options]\n"
	    "\n"
	    "The tandem worker daemon: serves /health, /livez, /readyz and /info over\n"
	    "mutual TLS (default %s).\n"
	    "\n"
	    "  --config FILE       configuration file (key = value; unknown keys are errors;\n"
	    "                      relative paths resolve against the file's directory)\n"
	    "  --listen ADDR:PORT  listen address (\"127.0.0.1:0\" picks a free port,\n"
	    "                      \"[::]:8765\" serves IPv6 and IPv4)\n"
	    "  --ca FILE           CA certificate clients must be signed by\n"
	    "  --cert FILE         this agent's certificate\n"
	    "  --key FILE          its private key\n"
	    "  --master-cn CN      the master's certificate CN (default %s)\n"
	    "  --log-level LEVEL   error, warn, info or debug\n"
	    "  --log-file FILE     log here instead of stderr (SIGHUP reopens it)\n"
	    "  -o KEY=VALUE        set any configuration key\n"
	    "  --ready-fd N        once listening, write \"READY port=P\" to fd N and close it\n"
	    "  -n                  check the configuration and certificates, then exit\n"
	    "  --self-test         also check the key matches the certificate and the\n"
	    "                      listen address can be bound; one line, exit 0 or 1\n"
	    "  --print-config      print the effective configuration and exit\n"
	    "  --version           print the version and exit\n"
	    "  -h, --help          this text\n"
	    "\n"
	    "Flags override the configuration file, in the order given.\n"
	    "Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reopens the log file.\n",
	    AGENT_DEFAULT_LISTEN, TLS_DEFAULT_MASTER_CN);
}

static int
set_action(struct agent_options *o, enum options_action a, int *have, struct err *e)
{
	if (*have && o->action != a) {
		return err_set(e, ERR_USAGE, "-n, --self-test, --print-config, --version and --help "
					     "exclude each other");
	}
	*have = 1;
	o->action = a;
	return 0;
}

static int
parse_ready_fd(const char *s, int *out, struct err *e)
{
	long long v;

	/* 0 is our stdin and 2 our log: neither can be the readiness pipe. */
	if (parse_ll(s, 1, 65535, &v) != 0 || v == 2) {
		return err_set(e, ERR_USAGE, "--ready-fd: \"%s\" is not a file descriptor number "
					     "(1 or 3..65535)", s);
	}
	*out = (int)v;
	return 0;
}

/* Defaults, then the file at CONFIG_PATH (may be NULL), then the NOV overrides OV. */
static int
options_load(struct agent_options *o, size_t n, const char *config_path,
    const struct override *ov, size_t nov, struct err *e)
{
	if (config_defaults(agent_table, n, &o->cfg, e) != 0) {
		return -1;
	}
	if (config_path != NULL) {
		if (strlcpy_chk(o->config_path, config_path, sizeof(o->config_path)) != 0) {
			return err_set(e, ERR_USAGE, "--config: path too long");
		}
		if (config_load_file(agent_table, n, &o->cfg, config_path, e) != 0) {
			return -1;
		}
	}
	/*
	 * The updater that starts us names where it keeps our renewed identity
	 * and the CRL; the configuration file and the command line still win.
	 */
	{
		static const char *const from_env[][2] = {
			{ "tls_dir", OPTIONS_ENV_TLS_DIR },
			{ "crl", OPTIONS_ENV_CRL },
		};
		for (size_t i = 0; i < ARRAY_LEN(from_env); i++) {
			const char *v = getenv(from_env[i][1]);
			int is_set = strcmp(from_env[i][0], "tls_dir") == 0 ? o->cfg.tls_dir != NULL
									     : o->cfg.crl != NULL;
			if (v != NULL && *v != '\0' && !is_set &&
			    config_set(agent_table, n, &o->cfg, from_env[i][0], v, NULL, e) != 0) {
				return -1;
			}
		}
	}
	for (size_t i = 0; i < nov; i++) {
		if ((ov[i].name != NULL ?
		    config_set(agent_table, n, &o->cfg, ov[i].name, ov[i].value, NULL, e) :
		    config_set_kv(agent_table, n, &o->cfg, ov[i].value, e)) != 0) {
			return -1;
		}
	}
	return 0;
}

int
options_parse(int argc, char *const argv[], struct agent_options *o, struct err *e)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "ca", required_argument, NULL, OPT_CA },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "master-cn", required_argument, NULL, OPT_MASTER_CN },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "log-file", required_argument, NULL, OPT_LOG_FILE },
		{ "ready-fd", required_argument, NULL, OPT_READY_FD },
		{ "self-test", no_argument, NULL, OPT_SELF_TEST },
		{ "print-config", no_argument, NULL, OPT_PRINT_CONFIG },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct override ov[MAX_OVERRIDES];
	size_t nov = 0;
	int have_action = 0;
	const char *config_path = NULL;
	const size_t n = ARRAY_LEN(agent_table);
	int ch;

	options_free(o);
	o->action = OPTIONS_RUN;
	o->ready_fd = -1;
	o->config_path[0] = '\0';
	optind = 0; /* GNU: full re-initialisation, so the parser can run again */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+no:h", longopts, NULL)) != -1) {
		const char *name = NULL;
		switch (ch) {
		case OPT_CONFIG:
			config_path = optarg;
			continue;
		case OPT_LISTEN:
			name = "listen";
			break;
		case OPT_CA:
			name = "ca";
			break;
		case OPT_CERT:
			name = "cert";
			break;
		case OPT_KEY:
			name = "key";
			break;
		case OPT_MASTER_CN:
			name = "master_cn";
			break;
		case OPT_LOG_LEVEL:
			name = "log_level";
			break;
		case OPT_LOG_FILE:
			name = "log_file";
			break;
		case 'o':
			name = NULL;
			break;
		case OPT_READY_FD:
			if (parse_ready_fd(optarg, &o->ready_fd, e) != 0) {
				return -1;
			}
			continue;
		case 'n':
			if (set_action(o, OPTIONS_CHECK, &have_action, e) != 0) {
				return -1;
			}
			continue;
		case OPT_SELF_TEST:
			if (set_action(o, OPTIONS_SELF_TEST, &have_action, e) != 0) {
				return -1;
			}
			continue;
		case OPT_PRINT_CONFIG:
			if (set_action(o, OPTIONS_PRINT_CONFIG, &have_action, e) != 0) {
				return -1;
			}
			continue;
		case OPT_VERSION:
			if (set_action(o, OPTIONS_VERSION, &have_action, e) != 0) {
				return -1;
			}
			continue;
		case 'h':
			if (set_action(o, OPTIONS_HELP, &have_action, e) != 0) {
				return -1;
			}
			continue;
		default:
			if (optopt != 0 && optopt < 256) {
				return err_set(e, ERR_USAGE, "unknown option or missing argument: -%c",
				    optopt);
			}
			return err_set(e, ERR_USAGE, "unknown option or missing argument: %s",
			    argv[optind - 1]);
		}
		if (nov >= MAX_OVERRIDES) {
			return err_set(e, ERR_USAGE, "too many options (at most %d overrides)",
			    MAX_OVERRIDES);
		}
		ov[nov].name = name;
		ov[nov].value = optarg;
		nov++;
	}
	if (optind != argc) {
		return err_set(e, ERR_USAGE, "unexpected argument \"%s\"", argv[optind]);
	}
	if (o->action == OPTIONS_VERSION || o->action == OPTIONS_HELP) {
		return 0;
	}
	if (options_load(o, n, config_path, ov, nov, e) != 0) {
		return -1;
	}
	if (o->action == OPTIONS_PRINT_CONFIG) {
		return 0;
	}
	const char *missing = o->cfg.ca == NULL ? "ca" : o->cfg.cert == NULL ? "cert"
				   : o->cfg.key == NULL	 ? "key"
							 : NULL;
	if (missing != NULL) {
		return err_set(e, ERR_CONFIG, "%s is not set (give --%s FILE or \"%s = FILE\" in the "
					      "configuration file)",
		    missing, missing, missing);
	}
	return 0;
}

int
options_print(const struct agent_options *o, FILE *fp)
{
	return config_print(agent_table, ARRAY_LEN(agent_table), &o->cfg, fp);
}

void
options_free(struct agent_options *o)
{
	config_free(agent_table, ARRAY_LEN(agent_table), &o->cfg);
}
