/*
 * tandem-agent — the worker daemon the updater installs, starts and probes.
 * See wiki/Agent.md and `tandem-agent --help`.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent/api.h"
#include "agent/broken.h"
#include "agent/notify.h"
#include "agent/options.h"
#include "agent/selftest.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/release.h"
#include "common/sdnotify.h"
#include "common/tls.h"
#include "common/version.h"
#include "pki/trust.h"

#define PROG "tandem-agent"

static int
open_log(const struct agent_config *cfg)
{
	if (log_configure(cfg->log_level, cfg->log_format, cfg->log_target, cfg->log_file) != 0) {
		log_warn("cannot open log file %s", cfg->log_file);
		return -1;
	}
	return 0;
}

static void
read_release(struct release_info *rel)
{
	struct err e = ERR_INIT;
	char dir[PATH_MAX];

	memset(rel, 0, sizeof(*rel));
	if (release_self_dir(dir, sizeof(dir)) != 0) {
		log_warn("cannot find the release directory of this executable");
		return;
	}
	switch (release_record_read(dir, RELEASE_REC_LENIENT, rel, &e)) {
	case 1:
		log_info("release %s: sha %s, sha256 %s", dir,
		    (rel->fields & RELEASE_R_SHA) != 0 ? rel->sha : "(none)",
		    (rel->fields & RELEASE_R_SHA256) != 0 ? rel->sha256 : "(none)");
		break;
	case 0:
		log_info("release %s: no %s (not installed by the updater)", dir,
		    RELEASE_RECORD_FILE);
		break;
	default:
		log_warnx("release record unusable: %s", err_msg(&e));
		break;
	}
}

/*
 * fail-marker build: is there a file NAME beside the --config file? With
 * CONSUME it is removed, and only a successful removal counts (so the
 * agent fails once per marker).
 */
static int
fail_marker_here(const struct agent_options *opt, const char *name, int consume)
{
	char path[4200];
	const char *slash = strrchr(opt->config_path, '/');
	int n;

	if (slash == NULL) {
		n = snprintf(path, sizeof(path), "%s", name);
	} else {
		n = snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - opt->config_path),
		    opt->config_path, name);
	}
	if (n <= 0 || (size_t)n >= sizeof(path)) {
		return 0;
	}
	return consume ? unlink(path) == 0 : access(path, F_OK) == 0;
}

#if TANDEM_AGENT_BROKEN == AGENT_BROKEN_LOG_FLOOD
/* The log-flood build: lines on stderr as fast as it can, until the process ends. */
static void *
log_flood(void *arg)
{
	char line[160];
	unsigned long long i;
	int n;

	(void)arg;
	for (i = 0;; i++) {
		n = snprintf(line, sizeof(line), "log-flood line %llu: the quick brown fox jumps over"
		    " the lazy dog, again and again and again\n", i);
		if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0 && errno != EINTR &&
		    errno != EAGAIN && errno != ENOSPC) {
			return NULL;
		}
	}
}
#endif

/* Start the log-flood build's writer (the other builds: nothing). */
static void
log_flood_start(void)
{
#if TANDEM_AGENT_BROKEN == AGENT_BROKEN_LOG_FLOOD
	pthread_t t;

	if (pthread_create(&t, NULL, log_flood, NULL) != 0 || pthread_detach(t) != 0) {
		log_warnx("log-flood test build: cannot start the writer");
	}
#endif
}

/* Milliseconds until the crash-later build exits, or -1 (never). */
static int64_t
crash_deadline(void)
{
#if TANDEM_AGENT_BROKEN == AGENT_BROKEN_CRASH_LATER
	const char *s = getenv("TANDEM_CRASH_AFTER_MS");
	long long ms = AGENT_CRASH_AFTER_DEFAULT_MS;
	if (s != NULL && parse_ll(s, 0, 24LL * 3600 * 1000, &ms) != 0) {
		log_warnx("TANDEM_CRASH_AFTER_MS=\"%s\" ignored", s);
		ms = AGENT_CRASH_AFTER_DEFAULT_MS;
	}
	return mono_ms() + ms;
#else
	return -1;
#endif
}

/*
 * The identity (the renewed pair in tls_dir when there is one, else the
 * configured one) as a new server context, and what /health says about it.
 */
static int
tls_load(const struct agent_config *cfg, struct tls_ctx **out, struct tls_identity *own,
    struct api_tls *t, struct err *e)
{
	struct tls_opts to;
	char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
	int renewed = 0;

	/* The identity and CA bundle in force: renewed or rotated ones in tls_dir win. */
	if (trust_identity_paths(cfg->tls_dir, cfg->cert, cfg->key, cert, key, &renewed, e) !=
		0 ||
	    trust_ca_path(cfg->tls_dir, cfg->ca, ca, e) != 0) {
		return -1;
	}
	tls_opts_init(&to);
	to.ca_file = ca;
	to.cert_file = cert;
	to.key_file = key;
	to.master_cn = cfg->master_cn;
	to.handshake_timeout_ms = (int)cfg->handshake_timeout_ms;
	if (tls_server_new(&to, out, e) != 0) {
		return -1;
	}
	if (tls_ctx_own_identity(*out, own) != 0 || own->role != TLS_ROLE_AGENT) {
		err_set(e, ERR_CONFIG, "%.400s: not an agent certificate", cert);
		tls_ctx_free(*out);
		*out = NULL;
		return -1;
	}
	if (time(NULL) < own->not_before || time(NULL) > own->not_after) {
		err_set(e, ERR_CONFIG, "certificate %.300s (CN=%.64s) is %s", cert, own->cn,
		    time(NULL) < own->not_before ? "not valid yet" : "expired");
		tls_ctx_free(*out);
		*out = NULL;
		return -1;
	}
	iso8601_utc(own->not_after, t->cert_not_after, sizeof(t->cert_not_after));
	snprintf(t->cert_fingerprint, sizeof(t->cert_fingerprint), "%s", own->fingerprint);
	t->renewed = renewed;
	return 0;
}

/* The CRL into the TLS layer's revoked set; its state into T. Never fatal. */
static void
crl_load(const struct agent_config *cfg, struct api_tls *t)
{
	struct trust_crl_status st;
	struct err e = ERR_INIT;
	char ca[PATH_MAX];

	if (trust_ca_path(cfg->tls_dir, cfg->ca, ca, &e) != 0 ||
	    trust_load_crl(cfg->crl, ca, 0, &st, &e) != 0) {
		log_warnx("CRL not loaded, the revocations in force stay: %s", err_msg(&e));
	} else if (st.state != TRUST_CRL_NONE) {
		log_info("CRL %llu: %zu revoked certificate(s)%s", st.number, st.revoked,
		    st.state == TRUST_CRL_STALE ? " (stale)" : "");
	}
	snprintf(t->crl, sizeof(t->crl), "%s", trust_crl_state_name(st.state));
	t->crl_number = st.number;
	t->crl_next_update[0] = '\0';
	if (st.next_update != 0) {
		iso8601_utc(st.next_update, t->crl_next_update, sizeof(t->crl_next_update));
	}
}

/* The CA bundle the serving context was built from, by digest. */
static char ca_seen[TLS_FP_HEX_LEN + 1];

static int
ca_digest(const struct agent_config *cfg, char out[TLS_FP_HEX_LEN + 1])
{
	char *buf = NULL, ca[PATH_MAX];
	size_t len = 0;
	int rc;

	if (trust_ca_path(cfg->tls_dir, cfg->ca, ca, NULL) != 0 ||
	    fs_read_file(ca, 1024 * 1024, &buf, &len) != 0) {
		return -1;
	}
	rc = digest_buf(buf, len, out);
	free(buf);
	return rc;
}

/*
 * SIGHUP: a renewed identity and a new CRL take effect for new connections;
 * connections already open finish with the context they started with. A
 * pair that does not load leaves the old one serving.
 */
static void
reload(const struct agent_config *cfg, struct httpd *srv, struct api *api)
{
	struct tls_ctx *ctx = NULL;
	struct tls_identity own;
	struct api_tls t;
	struct err e = ERR_INIT;
	char digest[TLS_FP_HEX_LEN + 1];
	char old_fp[TLS_FP_HEX_LEN + 1];

	pthread_mutex_lock(&api->tls_mtx);
	t = api->tls;
	pthread_mutex_unlock(&api->tls_mtx);
	snprintf(old_fp, sizeof(old_fp), "%s", t.cert_fingerprint);
	log_info("SIGHUP: reloading the identity and the CRL");
	if (tls_load(cfg, &ctx, &own, &t, &e) != 0) {
		log_warnx("SIGHUP: identity not reloaded, the current one stays: %s", err_msg(&e));
	} else if (strcmp(own.fingerprint, old_fp) == 0 &&
	    ca_digest(cfg, digest) == 0 && strcmp(digest, ca_seen) == 0) {
		/* Nothing changed: keep the context, and with it resumable sessions. */
		tls_ctx_free(ctx);
	} else {
		httpd_set_tls(srv, ctx);
		tls_ctx_free(ctx);
		if (ca_digest(cfg, ca_seen) != 0) {
			ca_seen[0] = '\0';
		}
		log_info("SIGHUP: serving as CN=%s, fingerprint %s, until %s", own.cn,
		    own.fingerprint, t.cert_not_after);
	}
	crl_load(cfg, &t);
	api_set_tls(api, &t);
}

/* Wait for SIGTERM/SIGINT on SFD; SIGHUP reopens the log file and reloads TLS. */
static void
wait_for_stop(int sfd, const struct agent_config *cfg, struct httpd *srv, struct api *api)
{
	int64_t crash_at = crash_deadline();

	for (;;) {
		struct pollfd pfd = { .fd = sfd, .events = POLLIN, .revents = 0 };
		int timeout = crash_at >= 0 ? ms_until(crash_at) : -1;
		int n = poll(&pfd, 1, timeout);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			log_warn("poll");
			return;
		}
		if (n == 0 && crash_at >= 0 && ms_until(crash_at) == 0) {
			log_warnx("crash-later test build: exiting with status 1");
			_exit(1);
		}
		if ((pfd.revents & POLLIN) == 0) {
			continue;
		}
		struct signalfd_siginfo si;
		ssize_t r = read(sfd, &si, sizeof(si));
		if (r != (ssize_t)sizeof(si)) {
			continue;
		}
		if (si.ssi_signo == SIGHUP) {
			if (cfg->log_file != NULL) {
				if (log_open_file(cfg->log_file) != 0) {
					log_warn("SIGHUP: cannot reopen %s", cfg->log_file);
				} else {
					log_info("SIGHUP: log file reopened");
				}
			}
			reload(cfg, srv, api);
			continue;
		}
		log_info("signal %s: stopping", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
		return;
	}
}

static int
run(const struct agent_options *opt)
{
	const struct agent_config *cfg = &opt->cfg;
	struct tls_ctx *tls = NULL;
	struct api_tls tstate;
	struct httpd_opts ho;
	struct httpd *srv = NULL;
	struct tls_identity own;
	struct release_info rel;
	struct api *api = NULL;
	sigset_t set;
	int sfd = -1;
	int rc = 1;
	struct err e = ERR_INIT;
	size_t nroutes;

	if (opt->ready_fd >= 0 && notify_fd_check(opt->ready_fd) != 0) {
		log_warnx("--ready-fd %d is not an open file descriptor", opt->ready_fd);
		return 1;
	}
	if (TANDEM_AGENT_BROKEN == AGENT_BROKEN_EXIT_AT_ONCE) {
		log_warnx("exit-at-once test build: exiting with status 1");
		return 1;
	}
	if (TANDEM_AGENT_BROKEN == AGENT_BROKEN_FAIL_MARKER && fail_marker_here(opt, AGENT_FAIL_MARKER, 0)) {
		log_warnx("fail-marker test build: %s found next to the config: exiting with status 1",
		    AGENT_FAIL_MARKER);
		return 1;
	}
	if (TANDEM_AGENT_BROKEN == AGENT_BROKEN_FAIL_MARKER &&
	    fail_marker_here(opt, AGENT_FAIL_ONCE_MARKER, 1)) {
		log_warnx("fail-marker test build: %s found next to the config (removed): exiting "
		    "with status 1", AGENT_FAIL_ONCE_MARKER);
		return 1;
	}
	/* Stop signals go to the signalfd only: block them before any thread. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
		log_warnx("cannot block signals");
		return 1;
	}
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		log_warn("signalfd");
		goto out;
	}
	memset(&tstate, 0, sizeof(tstate));
	if (tls_load(cfg, &tls, &own, &tstate, &e) != 0) {
		log_warnx("%s", err_msg(&e));
		goto out;
	}
	if (ca_digest(cfg, ca_seen) != 0) {
		ca_seen[0] = '\0';
	}
	crl_load(cfg, &tstate);
	read_release(&rel);
	api = malloc(sizeof(*api));
	if (api == NULL) {
		log_warnx("out of memory");
		goto out;
	}
	api_init(api, api_reported_version(), &rel, own.host[0] != '\0' ? own.host : own.cn,
	    NULL);
	api_set_tls(api, &tstate);
	if (TANDEM_AGENT_BROKEN == AGENT_BROKEN_FAIL_MARKER &&
	    fail_marker_here(opt, AGENT_HOLD_MARKER, 0)) {
		log_warnx("fail-marker test build: %s found next to the config: waiting until it is "
		    "removed before listening", AGENT_HOLD_MARKER);
		for (int waited = 0; waited < AGENT_HOLD_MAX_MS &&
		    fail_marker_here(opt, AGENT_HOLD_MARKER, 0); waited += 10) {
			(void)poll(NULL, 0, 10);
		}
	}
	httpd_opts_init(&ho);
	ho.listen = cfg->listen;
	ho.tls = tls;
	ho.routes = api_routes(api, &nroutes);
	ho.nroutes = nroutes;
	ho.name = "agent";
	ho.max_conns = (unsigned)cfg->max_conns;
	ho.max_conns_per_ip = (unsigned)cfg->max_conns_per_ip;
	ho.idle_timeout_s = (unsigned)((cfg->idle_timeout_ms + 999) / 1000);
	ho.header_timeout_ms = (int)cfg->header_timeout_ms;
	ho.request_timeout_ms = (int)cfg->request_timeout_ms;
	if (httpd_start(&ho, &srv, &e) != 0) {
		log_warnx("%s", err_msg(&e));
		goto out;
	}
	api_set_phase(api, API_READY);
	log_info("tandem-agent %s (%s build) ready on port %d as CN=%s, pid %d", tandem_version(),
	    broken_kind_name(), httpd_port(srv), own.cn, (int)getpid());
	if (opt->ready_fd >= 0 && notify_ready_fd(opt->ready_fd, httpd_port(srv)) != 0) {
		log_warn("writing the ready line to fd %d", opt->ready_fd);
	}
	if (api_phase(api) == API_READY) {
		char st[64];
		snprintf(st, sizeof(st), "READY=1\nMAINPID=%d", (int)getpid());
		if (sdnotify(st) != 0) {
			log_warn("sd_notify READY");
		}
	}
	log_flood_start();
	wait_for_stop(sfd, cfg, srv, api);
	api_set_phase(api, API_STOPPING);
	if (sdnotify("STOPPING=1") != 0) {
		log_warn("sd_notify STOPPING");
	}
	httpd_stop_accepting(srv);
	log_info("no longer accepting connections; %u request(s) in flight, grace %lld ms",
	    httpd_active_requests(srv), cfg->shutdown_grace_ms);
	httpd_stop(srv, (int)cfg->shutdown_grace_ms, 0);
	srv = NULL;
	log_info("stopped");
	rc = 0;
out:
	if (srv != NULL) {
		httpd_stop(srv, 0, 0);
	}
	tls_ctx_free(tls);
	free(api);
	if (sfd >= 0) {
		close(sfd);
	}
	return rc;
}

int
main(int argc, char **argv)
{
	struct agent_options opt;
	struct err e = ERR_INIT;
	int rc = 1;

	memset(&opt, 0, sizeof(opt));
	log_init(PROG, LOG_LVL_INFO);
	if (options_parse(argc, argv, &opt, &e) != 0) {
		fprintf(stderr, PROG ": %s\n(try '" PROG " --help')\n", err_msg(&e));
		options_free(&opt);
		return 2;
	}
	switch (opt.action) {
	case OPTIONS_HELP:
		options_usage(stdout);
		rc = 0;
		break;
	case OPTIONS_VERSION:
		printf(PROG " %s\n", tandem_version());
		rc = 0;
		break;
	case OPTIONS_PRINT_CONFIG:
		rc = options_print(&opt, stdout) == 0 ? 0 : 1;
		break;
	case OPTIONS_CHECK: {
		char summary[512];
		struct err ce = ERR_INIT;
		if (selftest_check_config(&opt.cfg, summary, sizeof(summary), &ce) != 0) {
			fprintf(stderr, PROG ": configuration check failed: %s\n", err_msg(&ce));
			break;
		}
		printf("configuration ok: %s\n", summary);
		rc = 0;
		break;
	}
	case OPTIONS_SELF_TEST: {
		char line[1200];
		rc = selftest_run(&opt.cfg, line, sizeof(line)) == 0 ? 0 : 1;
		printf("%s\n", line);
		break;
	}
	case OPTIONS_RUN:
		if (open_log(&opt.cfg) != 0) {
			break;
		}
		rc = run(&opt);
		break;
	}
	if (fflush(stdout) != 0 && rc == 0) {
		rc = 1;
	}
	options_free(&opt);
	return rc;
}
