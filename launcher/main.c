/*
 * tandem-launcher: the small, stable parent of tandem-updater that a
 * self-update never replaces (wiki/Self-Update.md).
 *
 *   tandem-launcher --config FILE --updater PATH [--install-dir DIR]
 *                   [--listen ADDR:PORT] [--log FILE]
 *                   [--probation-deadline MS] [--probation-stable MS]
 *                   [--max-starts N] [-- UPDATER-ARGS...]
 *
 * UPDATER-ARGS (e.g. --seed TARBALL) are appended to every updater's argv.
 * It binds the updater's listening socket once and passes it to every
 * updater it starts (fd number in TANDEM_LISTEN_FD), so a connection made
 * while one updater hands over to the next waits in the backlog. It runs
 * INSTALL_DIR/updater/current/<updater_entrypoint>, or PATH while the
 * updater's tree holds no release or one older than this launcher (the
 * launcher and PATH come from one package: after a package upgrade the
 * newer updater wins, wiki/Upgrades.md). Restarts follow updater/supervise's
 * state machine (the sup_* layer, driven from this single-threaded loop)
 * with the launcher's policy: backoff from 200 ms doubling to 10 s, reset
 * after 10 s up, never given up.
 *
 * When the updater exits after queueing a self-update (journal of the tree
 * in SWITCHING plus state/handover.json, install_self_pending), the new
 * updater is on probation: before each start the persisted start counter is
 * incremented (atomic rewrite of the handover record, so a crash of the
 * launcher itself counts too); the new updater must answer /health with the
 * new version and stay up for the stable window (updater/probe), all before
 * the deadline. Then the self-update is committed (install_self_commit);
 * otherwise (too many starts, deadline, hang) the new updater is stopped,
 * the previous one restored (install_self_revert) and started. An
 * interrupted self-update without a handover record is undone before
 * anything starts.
 *
 * Under systemd (Type=notify, $NOTIFY_SOCKET) it is the unit's main process
 * and tells systemd what the updater does (common/sdnotify): READY=1 once
 * its updater first answers GET /health over mTLS, STATUS= lines, and, when
 * the unit sets WatchdogSec=, WATCHDOG=1 only right after such a /health
 * check passed; the checks run every half period from this loop, not from
 * a timer, so a hung updater (or a hung launcher) stops the pings and
 * systemd restarts the service. A probation extends the watchdog period
 * (WATCHDOG_USEC=) for its length. STOPPING=1 on shutdown.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/release.h"
#include "common/sdnotify.h"
#include "common/sock.h"
#include "common/tls.h"
#include "common/util.h"
#include "common/version.h"
#include "updater/config.h"
#include "updater/handover.h"
#include "updater/install.h"
#include "updater/logcap.h"
#include "updater/probe.h"
#include "updater/selfupdate.h"
#include "updater/store.h"
#include "updater/supervise.h"

#define LN_DEFAULT_DEADLINE_MS 60000
#define LN_DEFAULT_STABLE_MS 10000
#define LN_DEFAULT_MAX_STARTS 3
#define LN_BACKOFF_MIN_MS 200
#define LN_BACKOFF_MAX_MS 10000
#define LN_STABLE_RESET_MS 10000
#define LN_STOP_EXTRA_MS 3000
#define LN_MAX_EXTRA 16
/* The running updater, for the next launcher if this one is killed hard. */
#define LN_CHILD_RECORD "launcher.json"
#define LN_ORPHAN_WAIT_MS 5000
/* /health checks until the first pass (READY=1): from 100 ms, doubling to 1 s. */
#define LN_CHECK_FIRST_MS 100
#define LN_CHECK_MAX_MS 1000
#define LN_CHECK_TIMEOUT_MS 2000
/* Longest check once the watchdog runs (at most half the ping period). */
#define LN_CHECK_TIMEOUT_MAX_MS 5000

struct launcher {
	struct updater_config cfg;
	char conf[PATH_MAX];
	const char *fallback;
	char tree[PATH_MAX];
	struct store store;      /* the updater's tree */
	int listen_fd;
	int lock_fd;
	int port;
	char probe_host[256];
	char probe_port[16];
	int sigfd;
	struct tls_ctx *tls;
	struct sup m;            /* when to (re)start the updater */
	struct proc child;
	char version[128];       /* of the running child */
	char log_path[PATH_MAX];
	struct logcap *log_cap;  /* log_max on log_path (the updaters' output) */
	char boot_id[40];
	long long deadline_ms;
	long long stable_ms;
	long long max_starts;
	char *const *extra;      /* arguments after "--", passed to every updater */
	int nextra;
	int stop;
	/* systemd notification (empty path: not started by systemd as Type=notify) */
	char notify_path[128];
	long long watchdog_ms;   /* WatchdogSec= of the unit; 0: none */
	int ready;               /* READY=1 sent */
	int64_t next_check;      /* next /health check of the updater; INT64_MAX: none */
	int check_interval_ms;   /* until READY: the growing interval */
	int healthy;             /* the last check passed */
};

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: tandem-launcher --config FILE --updater PATH [--install-dir DIR]\n"
	    "                       [--listen ADDR:PORT] [--log FILE]\n"
	    "                       [--probation-deadline MS] [--probation-stable MS]\n"
	    "                       [--max-starts N] [-- UPDATER-ARGS...]\n"
	    "       tandem-launcher --version | --help\n"
	    "\n"
	    "Runs tandem-updater and keeps each self-updated updater on probation:\n"
	    "binds the updater's listen address (from --config or --listen) and passes\n"
	    "the socket to every updater it starts, from INSTALL-DIR/updater/current or,\n"
	    "while that tree is empty or older than this launcher (a package upgrade:\n"
	    "the newer updater wins, wiki/Upgrades.md), from --updater PATH. A new\n"
	    "updater must serve /health with its version and stay up for the stable\n"
	    "window before the deadline, else the previous one is restored\n"
	    "(wiki/Self-Update.md). Under systemd (NOTIFY_SOCKET, Type=notify) it sends\n"
	    "READY=1 once its updater answers /health over mTLS and, with WatchdogSec=,\n"
	    "WATCHDOG=1 only after each passing /health check (wiki/Operations.md).\n"
	    "\n"
	    "  --config FILE             the updater's configuration (required)\n"
	    "  --updater PATH            the updater binary to run while no self-update\n"
	    "                            has installed one (required)\n"
	    "  --install-dir DIR         overrides install_dir of the configuration\n"
	    "  --listen ADDR:PORT        overrides listen of the configuration\n"
	    "  --log FILE                append the updaters' output to FILE\n"
	    "                            (default INSTALL-DIR/state/updater.log)\n"
	    "  --probation-deadline MS   time a new updater has to prove itself (60000)\n"
	    "  --probation-stable MS     how long it must stay up once it serves (10000)\n"
	    "  --max-starts N            failed starts before reverting (3)\n"
	    "  -- UPDATER-ARGS...        passed to every updater (e.g. --seed FILE)\n");
}

/* The restart policy of the updater (the agent's is in the updater's config). */
static void
ln_policy(struct sup_config *c, long long stop_grace_ms)
{
	sup_config_defaults(c);
	c->backoff_min_ms = LN_BACKOFF_MIN_MS;
	c->backoff_max_ms = LN_BACKOFF_MAX_MS;
	c->min_spacing_ms = 1;
	c->stable_ms = LN_STABLE_RESET_MS;
	/* Never a crash loop: the updater is retried at the backoff cap for ever. */
	c->crash_loop_count = SUP_MAX_CRASHES;
	c->crash_loop_window_ms = 1;
	c->crash_loop_retry_ms = LN_BACKOFF_MAX_MS;
	c->stop_grace_ms = stop_grace_ms + LN_STOP_EXTRA_MS;
}

/* The updater to run: the tree's current release, else the fallback binary. */
static int
ln_program(struct launcher *l, char *prog, size_t len, char *version, size_t vlen)
{
	char cur[PATH_MAX], entry[256];
	struct err e = ERR_INIT;
	int n = snprintf(cur, sizeof(cur), "%s/current", l->tree);

	if (n < 0 || (size_t)n >= sizeof(cur)) {
		return -1;
	}
	if (access(cur, F_OK) == 0) {
		if (install_self_entrypoint(cur, entry, sizeof(entry), version, vlen, &e) != 0) {
			log_warnx("updater release in %s unusable (%s): running %s", cur,
			    err_msg(&e), l->fallback);
		} else if (release_version_cmp(tandem_version(), version) > 0) {
			/*
			 * The newer updater wins: a package upgrade installed a newer
			 * updater (this launcher's version) than the self-update in the
			 * tree, which stays on disk and wins again once a newer one is
			 * self-updated (wiki/Upgrades.md).
			 */
			log_info("packaged updater %s is newer than the self-updated %s: running %s",
			    tandem_version(), version, l->fallback);
		} else {
			n = snprintf(prog, len, "%s/%s", cur, entry);
			return n < 0 || (size_t)n >= len ? -1 : 0;
		}
	}
	n = snprintf(prog, len, "%s", l->fallback);
	(void)snprintf(version, vlen, "fallback");
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Record the child (pid, start time, boot id) in TREE/state/launcher.json. */
static void
ln_record_child(struct launcher *l)
{
	char p[PATH_MAX], buf[256];
	int n = snprintf(p, sizeof(p), "%s/state/%s", l->tree, LN_CHILD_RECORD);
	int m = snprintf(buf, sizeof(buf), "{\"pid\":%d,\"start_time\":\"%llu\",\"boot_id\":\"%s\"}\n",
	    (int)l->child.pid, l->child.start_time, l->boot_id);

	if (n < 0 || (size_t)n >= sizeof(p) || m < 0 || (size_t)m >= sizeof(buf)) {
		return;
	}
	if (fs_write_atomic(p, buf, (size_t)m, 0600) != 0) {
		log_warn("write %s", p);
	}
}

struct ln_child_rec {
	int64_t pid;
	char start_time[32];
	char boot_id[40];
};

/*
 * An updater left running by a launcher that was killed hard holds the
 * listening socket (and would serve beside ours): kill it like kill -9 (its
 * operations are journaled; the agent is left to the next updater), verified
 * by pid, start time and boot id, before binding.
 */
static void
ln_stop_orphan(struct launcher *l)
{
	static const struct json_field fields[] = {
		JSON_F_INT("pid", struct ln_child_rec, pid, JSON_REQUIRED, 1, INT32_MAX),
		JSON_F_STR("start_time", struct ln_child_rec, start_time, JSON_REQUIRED, 1),
		JSON_F_STR("boot_id", struct ln_child_rec, boot_id, JSON_REQUIRED, 0),
	};
	struct ln_child_rec rec;
	struct proc orphan = PROC_INIT;
	char p[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	long long st;
	cJSON *o;
	int n = snprintf(p, sizeof(p), "%s/state/%s", l->tree, LN_CHILD_RECORD);

	if (n < 0 || (size_t)n >= sizeof(p) || fs_read_file(p, 4096, &buf, &len) != 0) {
		return;
	}
	memset(&rec, 0, sizeof(rec));
	o = json_parse_object(buf, len, NULL);
	free(buf);
	if (o == NULL || json_read_fields(o, fields, ARRAY_LEN(fields), 0, &rec, NULL) != 0 ||
	    parse_ll(rec.start_time, 0, LLONG_MAX, &st) != 0 || strcmp(rec.boot_id, l->boot_id) != 0 ||
	    proc_adopt((pid_t)rec.pid, (unsigned long long)st, NULL, &orphan, NULL) != 0) {
		cJSON_Delete(o);
		return; /* unreadable, from before a reboot, or gone */
	}
	cJSON_Delete(o);
	log_warnx("stopping updater pid %lld left running by an earlier launcher", (long long)rec.pid);
	if (proc_signal(&orphan, SIGKILL) != 0 || proc_wait(&orphan, LN_ORPHAN_WAIT_MS) != 1) {
		log_warn("updater pid %lld", (long long)rec.pid);
	}
	proc_release(&orphan);
}

/* Start the updater (the machine said SPAWN). */
static int
ln_spawn(struct launcher *l, struct err *e)
{
	char prog[PATH_MAX], env_fd[64], env_conf[PATH_MAX + 64];
	const char *argv[6 + LN_MAX_EXTRA], *env[3];
	struct proc_spec spec;
	int n1, n2;

	if (ln_program(l, prog, sizeof(prog), l->version, sizeof(l->version)) != 0) {
		return err_set(e, ERR_CONFIG, "updater program path too long");
	}
	n1 = snprintf(env_fd, sizeof(env_fd), "%s=%d", SELFUPDATE_ENV_LISTEN_FD, l->listen_fd);
	n2 = snprintf(env_conf, sizeof(env_conf), "%s=%s", SELFUPDATE_ENV_CONFIG, l->conf);
	if (n1 < 0 || (size_t)n1 >= sizeof(env_fd) || n2 < 0 || (size_t)n2 >= sizeof(env_conf)) {
		return err_set(e, ERR_CONFIG, "updater environment too long");
	}
	env[0] = env_fd;
	env[1] = env_conf;
	env[2] = NULL;
	argv[0] = prog;
	argv[1] = "--config";
	argv[2] = l->conf;
	argv[3] = "--install-dir";
	argv[4] = l->cfg.install_dir;
	for (int i = 0; i < l->nextra; i++) {
		argv[5 + i] = l->extra[i];
	}
	argv[5 + l->nextra] = NULL;
	proc_spec_init(&spec);
	spec.argv = argv;
	spec.env_add = env;
	spec.cwd = l->cfg.install_dir;
	spec.log_path = l->log_path;
	spec.keep_fd = l->listen_fd;
	proc_release(&l->child);
	if (proc_spawn(&spec, &l->child, e) != 0) {
		return -1;
	}
	ln_record_child(l);
	log_info("started updater %s (%s), pid %d", prog, l->version, (int)l->child.pid);
	printf("UPDATER pid=%d version=%s\n", (int)l->child.pid, l->version);
	fflush(stdout);
	return 0;
}

/* Carry out what the machine asked for. */
static void
ln_act(struct launcher *l, enum sup_action act)
{
	struct err e = ERR_INIT;

	switch (act) {
	case SUP_ACT_NONE:
		break;
	case SUP_ACT_SPAWN:
		if (ln_spawn(l, &e) != 0) {
			log_warnx("start updater: %s", err_msg(&e));
		}
		(void)sup_spawned(&l->m, mono_ms(), l->child.pid != 0);
		break;
	case SUP_ACT_TERM:
	case SUP_ACT_KILL:
		if (l->child.pid != 0 &&
		    proc_signal(&l->child, act == SUP_ACT_TERM ? SIGTERM : SIGKILL) != 0) {
			log_warn("signal updater pid %d", (int)l->child.pid);
		}
		break;
	}
}

/* Stop the updater (TERM, GRACE_MS, KILL: gone and reaped on return), wanting it down. */
static void
ln_stop_child(struct launcher *l, long long grace_ms)
{
	struct err e = ERR_INIT;

	(void)sup_want_down(&l->m, mono_ms());
	if (l->child.pid == 0) {
		return;
	}
	if (proc_stop(&l->child, (int)grace_ms, &e) < 0) {
		log_warnx("stop updater pid %d: %s", (int)l->child.pid, err_msg(&e));
	}
	(void)sup_exited(&l->m, mono_ms(), l->child.status);
	proc_release(&l->child);
}

/* Reap the child if it exited. 1: it did (STATUS filled), 0: still running. */
static int
ln_reap(struct launcher *l, int *status)
{
	int r;

	if (l->child.pid == 0) {
		*status = -1;
		return 1;
	}
	r = proc_poll(&l->child);
	if (r == 0) {
		return 0;
	}
	*status = r == 1 ? l->child.status : -1;
	proc_release(&l->child);
	return 1;
}

/* A signal arrived: SIGHUP is forwarded (0), anything else stops the launcher (1). */
static int
ln_signal(struct launcher *l)
{
	struct signalfd_siginfo si;
	ssize_t n = read(l->sigfd, &si, sizeof(si));

	if (n != (ssize_t)sizeof(si)) {
		return 0;
	}
	if (si.ssi_signo == SIGHUP) {
		log_info("SIGHUP: forwarded to the updater");
		if (l->child.pid != 0 && proc_signal(&l->child, SIGHUP) != 0) {
			log_warn("forward SIGHUP");
		}
		return 0;
	}
	log_info("signal %u: stopping", si.ssi_signo);
	l->stop = 1;
	return 1;
}

/* Send STATE to systemd when started as Type=notify (best effort: logged). */
static void
ln_notify(struct launcher *l, const char *state)
{
	if (l->notify_path[0] != '\0' && sdnotify_send(l->notify_path, state) != 0) {
		log_warn("sd_notify %s to %s", state, l->notify_path);
	}
}

/*
 * One mTLS GET /health of the running updater (its version when it runs
 * from the tree). A pass sends READY=1 the first time and WATCHDOG=1 when
 * the watchdog runs; a failure sends no ping. Schedules the next check:
 * every half watchdog period from this one's start, or, until the first
 * pass, on a growing interval; none once ready without a watchdog.
 */
static void
ln_check(struct launcher *l)
{
	struct probe_opts o;
	struct probe_result res;
	int64_t start = mono_ms();
	long long period = l->watchdog_ms / 2 > 0 ? l->watchdog_ms / 2 : 1;
	char st[700];

	if (l->child.pid == 0) {
		/* Nothing to ask (backing off): no ping either. */
		l->next_check = start + (l->ready ? period : l->check_interval_ms);
		return;
	}
	probe_opts_init(&o);
	o.tls = l->tls;
	o.host = l->probe_host;
	o.port = l->probe_port;
	o.expect_version = strcmp(l->version, "fallback") != 0 ? l->version : NULL;
	o.attempt_timeout_ms = LN_CHECK_TIMEOUT_MS;
	if (l->watchdog_ms > 0) {
		o.attempt_timeout_ms = (int)(period / 2 < LN_CHECK_TIMEOUT_MAX_MS ?
		    (period / 2 > 0 ? period / 2 : 1) : LN_CHECK_TIMEOUT_MAX_MS);
	}
	if (probe_once(&o, &res) == 0) {
		if (!l->ready || !l->healthy) {
			(void)snprintf(st, sizeof(st), "%sSTATUS=serving: updater %s, pid %d%s",
			    l->ready ? "" : "READY=1\n", l->version, (int)l->child.pid,
			    l->watchdog_ms > 0 ? "\nWATCHDOG=1" : "");
			ln_notify(l, st);
			if (!l->ready) {
				log_info("updater pid %d answers /health: ready", (int)l->child.pid);
			} else {
				log_info("updater pid %d answers /health again", (int)l->child.pid);
			}
		} else if (l->watchdog_ms > 0) {
			ln_notify(l, "WATCHDOG=1");
		}
		l->ready = 1;
		l->healthy = 1;
	} else {
		if (l->ready && l->healthy) {
			log_warnx("updater pid %d: /health: %s%s", (int)l->child.pid,
			    err_msg(&res.err), l->watchdog_ms > 0 ? " (no watchdog ping)" : "");
			(void)snprintf(st, sizeof(st), "STATUS=updater pid %d not answering /health: %.500s",
			    (int)l->child.pid, err_msg(&res.err));
			ln_notify(l, st);
		} else {
			log_debug("updater pid %d: /health: %s", (int)l->child.pid, err_msg(&res.err));
		}
		l->healthy = 0;
	}
	probe_result_free(&res);
	if (l->ready && l->watchdog_ms == 0) {
		l->next_check = INT64_MAX;
	} else if (l->ready) {
		l->next_check = start + period;
	} else {
		l->next_check = mono_ms() + l->check_interval_ms;
		l->check_interval_ms = l->check_interval_ms * 2 > LN_CHECK_MAX_MS ? LN_CHECK_MAX_MS :
		    l->check_interval_ms * 2;
	}
}

/*
 * A probation blocks the loop for up to its deadline plus the stable window
 * and a stop: BEGIN stretches systemd's watchdog period (and, before READY=1,
 * the start timeout) over it; !BEGIN restores the period, with a ping that
 * starts it afresh for the updater now running.
 */
static void
ln_notify_probation(struct launcher *l, int begin)
{
	long long span_ms = l->deadline_ms + l->stable_ms + l->m.cfg.stop_grace_ms +
	    l->watchdog_ms;
	char st[160];

	if (l->notify_path[0] == '\0') {
		return;
	}
	if (begin) {
		(void)snprintf(st, sizeof(st), "STATUS=self-update: new updater on probation%s",
		    l->ready ? "" : "\nEXTEND_TIMEOUT_USEC=");
		if (!l->ready) {
			size_t n = strlen(st);
			(void)snprintf(st + n, sizeof(st) - n, "%lld", span_ms * 1000);
		}
		ln_notify(l, st);
		if (l->watchdog_ms > 0) {
			(void)snprintf(st, sizeof(st), "WATCHDOG=1\nWATCHDOG_USEC=%lld", span_ms * 1000);
			ln_notify(l, st);
		}
		return;
	}
	if (l->watchdog_ms > 0) {
		(void)snprintf(st, sizeof(st), "WATCHDOG=1\nWATCHDOG_USEC=%lld", l->watchdog_ms * 1000);
		ln_notify(l, st);
	}
	l->healthy = 0; /* the next pass says so in STATUS= */
	l->next_check = mono_ms();
}

/* Probe the running new updater H for the rest of the probation. */
static int
ln_probe(struct launcher *l, const struct handover *h, int64_t deadline,
    struct probe_result *res)
{
	struct probe_opts o;

	probe_opts_init(&o);
	o.tls = l->tls;
	o.host = l->probe_host;
	o.port = l->probe_port;
	o.expect_version = h->new_version;
	o.first_interval_ms = 50;
	o.max_interval_ms = 500;
	o.deadline_ms = ms_until(deadline);
	o.stable_ms = (int)l->stable_ms;
	o.stable_interval_ms = 500;
	o.pidfd = l->child.pidfd;
	o.cancel_fd = l->sigfd;
	return probe_run(&o, res);
}

/*
 * The new updater's probation. Returns 0 when decided (committed: the new
 * updater runs; reverted: nothing runs), 1 when a signal interrupted it (the
 * handover record stays for the next launcher).
 */
static int
ln_probation(struct launcher *l, struct handover *h)
{
	int64_t deadline = mono_ms() + l->deadline_ms;
	struct err e = ERR_INIT;
	char reason[600], last[600], desc[96];
	int status, spawn = 1;

	(void)snprintf(reason, sizeof(reason), "no start yet");
	for (;;) {
		struct probe_result res;

		if (spawn && h->starts >= l->max_starts) {
			memcpy(last, reason, sizeof(last));
			(void)snprintf(reason, sizeof(reason), "%lld starts failed (last: %.500s)",
			    h->starts, last);
			break;
		}
		if (ms_until(deadline) <= 0) {
			break;
		}
		if (spawn) {
			h->starts++;
			if (handover_write(l->tree, h, &e) != 0) {
				log_warnx("persist the start counter: %s", err_msg(&e));
			}
			ln_act(l, sup_want_up(&l->m, mono_ms()));
			if (l->child.pid == 0) {
				(void)snprintf(reason, sizeof(reason), "the updater did not start");
				continue;
			}
		}
		spawn = 1;
		if (ln_probe(l, h, deadline, &res) == 0) {
			probe_result_free(&res);
			install_self_commit(&l->store, l->cfg.install_dir, h);
			printf("SELF_UPDATE committed %s\n", h->new_version);
			fflush(stdout);
			return 0;
		}
		if (res.err.kind == ERR_CANCELED) {
			probe_result_free(&res);
			if (ln_signal(l) == 1) {
				return 1; /* stop: the record stays for the next launcher */
			}
			spawn = 0; /* SIGHUP (forwarded): keep probing the same updater */
			continue;
		}
		if (ln_reap(l, &status) == 0) {
			/* Alive but not healthy in time: hung. */
			(void)snprintf(reason, sizeof(reason), "updater not healthy in time: %.500s",
			    err_msg(&res.err));
			probe_result_free(&res);
			break;
		}
		(void)sup_exited(&l->m, mono_ms(), status);
		/* The probe's text speaks of "the agent": say what exited. */
		(void)snprintf(reason, sizeof(reason), "updater %s %s",
		    proc_status_str(status, desc, sizeof(desc)),
		    res.first_pass_ms >= 0 ? "within the stable window" : "before serving");
		probe_result_free(&res);
		log_warnx("new updater failed start %lld: %s", h->starts, reason);
	}
	ln_stop_child(l, l->m.cfg.stop_grace_ms);
	install_self_revert(&l->store, l->cfg.install_dir, h, reason);
	printf("SELF_UPDATE reverted %s\n", h->new_version);
	fflush(stdout);
	return 0;
}

/* A queued self-update goes on at once: 1 when the launcher must stop. */
static int
ln_pending(struct launcher *l)
{
	struct handover h;

	if (install_self_pending(&l->store, l->cfg.install_dir, &h) != 1) {
		return 0;
	}
	ln_notify_probation(l, 1);
	if (ln_probation(l, &h) != 0) {
		return 1;
	}
	ln_notify_probation(l, 0);
	if (l->child.pid == 0) {
		ln_act(l, sup_want_up(&l->m, mono_ms())); /* reverted: the previous updater */
	}
	return 0;
}

static int
ln_run(struct launcher *l)
{
	if (ln_pending(l) != 0) {
		return 0;
	}
	if (l->child.pid == 0) {
		ln_act(l, sup_want_up(&l->m, mono_ms()));
	}
	l->check_interval_ms = LN_CHECK_FIRST_MS;
	l->next_check = l->notify_path[0] != '\0' ? mono_ms() + LN_CHECK_FIRST_MS : INT64_MAX;
	while (!l->stop) {
		struct pollfd pfd[2];
		int64_t dl = sup_deadline(&l->m) < l->next_check ? sup_deadline(&l->m) : l->next_check;
		int timeout = dl == INT64_MAX ? -1 : ms_until(dl), status, nfds = 1;
		char desc[96];

		pfd[0].fd = l->sigfd;
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		if (l->child.pid != 0 && l->child.pidfd >= 0) {
			pfd[1].fd = l->child.pidfd;
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfds = 2;
		} else if (l->child.pid != 0 && (timeout < 0 || timeout > 100)) {
			timeout = 100; /* no pidfd: look again soon */
		}
		if (poll(pfd, (nfds_t)nfds, timeout) < 0 && errno != EINTR) {
			log_warn("poll");
			return 1;
		}
		if ((pfd[0].revents & POLLIN) != 0 && ln_signal(l)) {
			break;
		}
		if (l->child.pid != 0 && ln_reap(l, &status) == 1) {
			log_warnx("updater exited: %s", proc_status_str(status, desc, sizeof(desc)));
			ln_act(l, sup_exited(&l->m, mono_ms(), status));
			if (ln_pending(l) != 0) {
				break;
			}
		}
		if (mono_ms() >= sup_deadline(&l->m)) {
			ln_act(l, sup_timer(&l->m, mono_ms()));
		}
		if (!l->stop && mono_ms() >= l->next_check) {
			ln_check(l);
		}
	}
	ln_notify(l, "STOPPING=1\nSTATUS=stopping the updater");
	/* An orderly stop: the updater may let a running operation finish and answer. */
	ln_stop_child(l, updater_config_stop_wait_ms(&l->cfg) + LN_STOP_EXTRA_MS);
	return 0;
}

/*
 * Take systemd's notification socket and watchdog period from the
 * environment and remove them from it: the updaters and agents started
 * later are not the unit's main process.
 */
static int
ln_notify_init(struct launcher *l, struct err *e)
{
	const char *path = getenv("NOTIFY_SOCKET");
	int rc = 0;

	if (path != NULL && path[0] != '\0') {
		if (strlen(path) >= sizeof(l->notify_path)) {
			rc = err_set(e, ERR_CONFIG, "NOTIFY_SOCKET: path too long");
		} else {
			(void)snprintf(l->notify_path, sizeof(l->notify_path), "%s", path);
		}
	}
	if (rc == 0 && sdnotify_watchdog_ms(&l->watchdog_ms, e) != 0) {
		rc = -1;
	}
	if (rc == 0 && l->watchdog_ms > 0 && l->notify_path[0] == '\0') {
		l->watchdog_ms = 0; /* nowhere to send the pings */
	}
	sdnotify_unsetenv();
	if (rc == 0 && l->watchdog_ms > 0) {
		log_info("systemd watchdog: %lld ms; /health of the updater every %lld ms",
		    l->watchdog_ms, l->watchdog_ms / 2);
	}
	return rc;
}

static int
ln_opt_ms(const char *name, const char *v, long long min, long long max, long long *out)
{
	if (parse_ll(v, min, max, out) != 0) {
		fprintf(stderr, "tandem-launcher: --%s: expected %lld..%lld\n", name, min, max);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "updater", required_argument, NULL, 'u' },
		{ "install-dir", required_argument, NULL, 'i' },
		{ "listen", required_argument, NULL, 'l' },
		{ "log", required_argument, NULL, 'L' },
		{ "probation-deadline", required_argument, NULL, 'D' },
		{ "probation-stable", required_argument, NULL, 'S' },
		{ "max-starts", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct launcher l;
	struct tls_opts to;
	struct sup_config policy;
	struct err e = ERR_INIT;
	const char *config_path = NULL, *listen = NULL, *install_dir = NULL, *log_path = NULL;
	char dir[PATH_MAX];
	sigset_t set;
	int c, rc = 1;

	memset(&l, 0, sizeof(l));
	l.listen_fd = -1;
	l.lock_fd = -1;
	l.sigfd = -1;
	proc_init(&l.child);
	ln_policy(&policy, 0);
	sup_init(&l.m, &policy);
	l.deadline_ms = LN_DEFAULT_DEADLINE_MS;
	l.stable_ms = LN_DEFAULT_STABLE_MS;
	l.max_starts = LN_DEFAULT_MAX_STARTS;
	log_init("tandem-launcher", LOG_LVL_INFO);
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'u':
			l.fallback = optarg;
			break;
		case 'i':
			install_dir = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'L':
			log_path = optarg;
			break;
		case 'D':
			if (ln_opt_ms("probation-deadline", optarg, 100, 3600000, &l.deadline_ms) != 0) {
				return 2;
			}
			break;
		case 'S':
			if (ln_opt_ms("probation-stable", optarg, 0, 3600000, &l.stable_ms) != 0) {
				return 2;
			}
			break;
		case 'M':
			if (ln_opt_ms("max-starts", optarg, 1, 100, &l.max_starts) != 0) {
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tandem-launcher %s\n", tandem_version());
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind > LN_MAX_EXTRA || config_path == NULL || l.fallback == NULL ||
	    (optind < argc && strcmp(argv[optind - 1], "--") != 0)) {
		usage(stderr);
		return 2;
	}
	l.extra = argv + optind;
	l.nextra = argc - optind;
	if (realpath(config_path, l.conf) == NULL) {
		fprintf(stderr, "tandem-launcher: config %s: %s\n", config_path, strerror(errno));
		return 2;
	}
	if (updater_config_load(&l.cfg, l.conf, listen, install_dir, &e) != 0) {
		fprintf(stderr, "tandem-launcher: %s\n", err_msg(&e));
		rc = err_exit_code(e.kind);
		goto out;
	}
	/* The launcher's own lines: the updater's level, format and target (never its log_file). */
	if (log_configure(l.cfg.log_level, l.cfg.log_format, l.cfg.log_target, NULL) != 0) {
		goto out;
	}
	ln_policy(&policy, l.cfg.stop_grace_ms);
	sup_init(&l.m, &policy);
	if (ln_notify_init(&l, &e) != 0) {
		log_warnx("%s", err_msg(&e));
		rc = err_exit_code(e.kind);
		goto out;
	}
	if (snprintf(l.tree, sizeof(l.tree), "%s/%s", l.cfg.install_dir, INSTALL_SELF_TREE) >=
		(int)sizeof(l.tree) ||
	    snprintf(dir, sizeof(dir), "%s/state", l.cfg.install_dir) >= (int)sizeof(dir) ||
	    (log_path != NULL ? snprintf(l.log_path, sizeof(l.log_path), "%s", log_path) :
				snprintf(l.log_path, sizeof(l.log_path), "%s/updater.log", dir)) >=
		(int)sizeof(l.log_path)) {
		log_warnx("install dir or log path too long");
		goto out;
	}
	if (fs_mkdir_p(dir, 0700) != 0) {
		log_warn("mkdir %s", dir);
		goto out;
	}
	/* What the updaters print is capped as their agent's output is (updater/logcap). */
	if (logcap_start(l.log_path, (unsigned long long)l.cfg.log_max, (unsigned)l.cfg.log_keep,
		&l.log_cap, &e) != 0) {
		log_warnx("%s", err_msg(&e));
		goto out;
	}
	if (store_init(&l.store, l.tree, (unsigned)l.cfg.failed_keep, &e) != 0) {
		log_warnx("%s", err_msg(&e));
		goto out;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 || signal(SIGPIPE, SIG_IGN) == SIG_ERR ||
	    (l.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		log_warn("signals");
		goto out;
	}
	tls_opts_init(&to);
	to.ca_file = l.cfg.ca;
	to.cert_file = l.cfg.cert;
	to.key_file = l.cfg.key;
	to.master_cn = l.cfg.master_cn;
	if (tls_client_new(&to, &l.tls, &e) != 0) {
		log_warnx("%s", err_msg(&e));
		goto out;
	}
	if (proc_boot_id(l.boot_id, sizeof(l.boot_id)) != 0) {
		l.boot_id[0] = '\0';
	}
	/* One launcher per install dir (the lock goes with the process, however it ends). */
	if (snprintf(dir, sizeof(dir), "%s/state/launcher.lock", l.tree) >= (int)sizeof(dir)) {
		goto out;
	}
	l.lock_fd = open(dir, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (l.lock_fd < 0 || flock(l.lock_fd, LOCK_EX | LOCK_NB) != 0) {
		log_warn("%s: another tandem-launcher runs for %s", dir, l.cfg.install_dir);
		goto out;
	}
	ln_stop_orphan(&l);
	l.listen_fd = sock_listen(l.cfg.listen, &l.port, &e);
	if (l.listen_fd < 0) {
		log_warnx("%s", err_msg(&e));
		goto out;
	}
	if (split_host_port(l.cfg.listen, l.probe_host, sizeof(l.probe_host), l.probe_port,
		sizeof(l.probe_port)) != 0) {
		goto out;
	}
	if (l.probe_host[0] == '\0' || strcmp(l.probe_host, "0.0.0.0") == 0) {
		(void)snprintf(l.probe_host, sizeof(l.probe_host), "127.0.0.1");
	} else if (strcmp(l.probe_host, "::") == 0) {
		(void)snprintf(l.probe_host, sizeof(l.probe_host), "::1");
	}
	(void)snprintf(l.probe_port, sizeof(l.probe_port), "%d", l.port);
	log_info("tandem-launcher listening on port %d for the updater", l.port);
	printf("LISTENING port=%d\n", l.port);
	fflush(stdout);
	rc = ln_run(&l);
out:
	ln_stop_child(&l, l.m.cfg.stop_grace_ms);
	if (l.listen_fd >= 0) {
		close(l.listen_fd);
	}
	if (l.sigfd >= 0) {
		close(l.sigfd);
	}
	if (l.lock_fd >= 0) {
		close(l.lock_fd);
	}
	logcap_stop(l.log_cap);
	tls_ctx_free(l.tls);
	updater_config_free(&l.cfg);
	return rc;
}
