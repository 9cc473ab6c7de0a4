/*
 * tandem-updater: supervise the agent, install pushed releases, roll back.
 *
 *   tandem-updater --config FILE [--listen ADDR:PORT] [--install-dir DIR]
 *                  [--seed TARBALL]   (installed first when no release is)
 *                  [-n | --self-test | --print-config | --version]
 *   tandem-updater install-bundle [--etc DIR] [--user NAME] BUNDLE   (updater/bundle.h)
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/version.h"
#include "updater/api.h"
#include "updater/bundle.h"
#include "updater/config.h"
#include "updater/store.h"

#define SHUTDOWN_GRACE_MS 2000
enum main_action { ACT_RUN, ACT_CHECK, ACT_SELF_TEST, ACT_PRINT, ACT_VERSION, ACT_HELP };

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: tandem-updater --config FILE [--listen ADDR:PORT] [--install-dir DIR]\n"
	    "                      [--seed TARBALL]\n"
	    "                      [-n | --self-test | --print-config | --version | --help]\n"
	    "       tandem-updater install-bundle [--etc DIR] [--user NAME] BUNDLE\n");
}

/* DIR, when it exists, must be a directory we can write (absent: created at start). */
static int
self_test_dir(const char *dir, struct err *e)
{
	struct stat st;

	if (stat(dir, &st) != 0) {
		if (errno == ENOENT) {
			return 0;
		}
		return err_sys(e, "%.300s", dir);
	}
	if (!S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
		return err_set(e, ERR_CONFIG, "%.300s: not a writable directory", dir);
	}
	return 0;
}

/*
 * The TLS material loads and matches, and the state directories (the
 * agent's and the updater's own tree's) are usable: what --self-test checks
 * beyond -n (also the preflight of POST /update-self).
 */
static int
self_test(const struct updater_config *cfg, struct err *e)
{
	static const char *const dirs[] = { "", "/state", "/updater", "/updater/state" };
	struct tls_opts to;
	struct tls_ctx *ctx = NULL;
	char p[PATH_MAX];

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if ((size_t)snprintf(p, sizeof(p), "%s%s", cfg->install_dir, dirs[i]) >= sizeof(p)) {
			return err_set(e, ERR_CONFIG, "install_dir is too long");
		}
		if (self_test_dir(p, e) != 0) {
			return -1;
		}
	}

	tls_opts_init(&to);
	to.ca_file = cfg->ca;
	to.cert_file = cfg->cert;
	to.key_file = cfg->key;
	to.master_cn = cfg->master_cn;
	to.master_compat_ou = cfg->master_compat_ou;
	if (tls_server_new(&to, &ctx, e) == 0) {
		tls_ctx_free(ctx);
		if (tls_client_new(&to, &ctx, e) == 0) {
			tls_ctx_free(ctx);
			return 0;
		}
	}
	/* --self-test reports unusable TLS material as a TLS failure (exit 1). */
	return err_rekind(e, ERR_TLS);
}

static int
run(const struct updater_config *cfg, const char *seed)
{
	struct api *a = NULL;
	struct err e = ERR_INIT;
	sigset_t set;
	int sig, rc = 1;

	/* Signals are taken by sigwait() below; block them before any thread exists. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		log_warn("signals");
		return 1;
	}
	/* Extraction paths are relative to the install dir (updater/extract.h). */
	if (fs_mkdir_p(cfg->install_dir, 0755) != 0 || chdir(cfg->install_dir) != 0) {
		log_warn("install dir %s", cfg->install_dir);
		return 1;
	}
	if (api_new(cfg, &a, &e) != 0) {
		log_warnx("%s", err_msg(&e));
		return 1;
	}
	if (api_start(a, seed, &e) != 0) {
		log_warnx("%s", err_msg(&e));
		goto out;
	}
	log_info("tandem-updater %s listening on port %d", tandem_version(), api_port(a));
	if (cfg->master_compat_ou[0] != '\0') {
		log_info("compatibility: a certificate CN=%s OU=%s is the master when its "
		    "fingerprint is pinned (master_compat_ou)", cfg->master_cn, cfg->master_compat_ou);
	}
	printf("LISTENING port=%d\n", api_port(a));
	fflush(stdout);
	for (;;) {
		if (sigwait(&set, &sig) != 0) {
			log_warn("sigwait");
			goto out;
		}
		if (sig == SIGHUP) {
			if (cfg->log_file != NULL && log_open_file(cfg->log_file) != 0) {
				log_warn("reopen %s", cfg->log_file);
			}
			continue;
		}
		log_info("signal %d: shutting down", sig);
		break;
	}
	rc = 0;
out:
	api_free(a, SHUTDOWN_GRACE_MS);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "install-dir", required_argument, NULL, 'i' },
		{ "seed", required_argument, NULL, 's' },
		{ "self-test", no_argument, NULL, 'S' },
		{ "print-config", no_argument, NULL, 'P' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct updater_config cfg;
	const char *config_path = NULL, *listen = NULL, *install_dir = NULL, *seed = NULL;
	enum main_action act = ACT_RUN;
	struct err e = ERR_INIT;
	char seed_abs[PATH_MAX];
	int c, rc = 1;

	memset(&cfg, 0, sizeof(cfg));
	log_init("tandem-updater", LOG_LVL_INFO);
	if (argc > 1 && strcmp(argv[1], "install-bundle") == 0) {
		return bundle_main(argc - 1, argv + 1);
	}
	while ((c = getopt_long(argc, argv, "nc:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'i':
			install_dir = optarg;
			break;
		case 's':
			seed = optarg;
			break;
		case 'n':
			act = ACT_CHECK;
			break;
		case 'S':
			act = ACT_SELF_TEST;
			break;
		case 'P':
			act = ACT_PRINT;
			break;
		case 'V':
			act = ACT_VERSION;
			break;
		case 'h':
			act = ACT_HELP;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (act == ACT_VERSION) {
		printf("tandem-updater %s\n", tandem_version());
		return 0;
	}
	if (act == ACT_HELP) {
		usage(stdout);
		return 0;
	}
	if (config_path == NULL) {
		usage(stderr);
		return 2;
	}
	if (updater_config_load(&cfg, config_path, listen, install_dir, &e) != 0) {
		fprintf(stderr, "tandem-updater: %s\n", err_msg(&e));
		rc = err_exit_code(e.kind);
		goto out;
	}
	switch (act) {
	case ACT_CHECK:
		printf("%s: configuration ok\n", config_path);
		rc = 0;
		goto out;
	case ACT_PRINT:
		rc = updater_config_print(&cfg, stdout) == 0 ? 0 : 1;
		goto out;
	case ACT_SELF_TEST:
		if (self_test(&cfg, &e) != 0) {
			fprintf(stderr, "tandem-updater: self-test: %s\n", err_msg(&e));
			goto out;
		}
		printf("self-test ok\n");
		rc = 0;
		goto out;
	default:
		break;
	}
	/* Its own log file is capped as the agent's is (agent_log, updater/logcap). */
	log_set_file_cap((unsigned long long)cfg.log_max, (unsigned)cfg.log_keep);
	if (log_configure(cfg.log_level, cfg.log_format, cfg.log_target, cfg.log_file) != 0) {
		fprintf(stderr, "tandem-updater: log file %s: %s\n", cfg.log_file, strerror(errno));
		goto out;
	}
	/* The updater works inside its install dir: make the seed path absolute first. */
	if (seed != NULL && realpath(seed, seed_abs) == NULL) {
		fprintf(stderr, "tandem-updater: seed %s: %s\n", seed, strerror(errno));
		goto out;
	}
	if (seed != NULL) {
		seed = seed_abs;
	}
	rc = run(&cfg, seed);
out:
	updater_config_free(&cfg);
	return rc;
}
