#include "updater/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/testhook.h"
#include "common/release.h"
#include "updater/install.h"
#include "updater/logcap.h"
#include "updater/probe.h"
#include "updater/supervise.h"

#define AGENT_RECORD "agent.json"
/*
 * Every agent starts with AGENT_TAG_VAR=<install dir> in its environment.
 * The kernel keeps it (and passes it to the agent's children), so a restarted
 * updater finds an agent it started but did not live to record.
 */
#define AGENT_TAG_VAR "TANDEM_AGENT_OF"
/* Tagged processes handled at one start (more: the next start sees them). */
#define AGENT_STRAYS_MAX 64
#define AGENT_RECORD_MAX 4096
#define AGENT_LAST_PROBE_MAX 600
/* What is left of probe_deadline after the wait for READY, at least. */
#define AGENT_PROBE_MIN_MS 1000

struct agent {
	const struct updater_config *cfg;
	char root[PATH_MAX];
	char log_path[PATH_MAX];
	char probe_host[256];
	char probe_port[16];
	char boot_id[40];
	struct supervisor *sv;
	struct logcap *cap;     /* log_max on log_path, whoever started the agent writing it */

	pthread_mutex_t mu;     /* protects what follows */
	struct tls_ctx *probe_tls;            /* a reference; replaced by agent_set_tls */
	char pin[TLS_MAX_PINS * (TLS_FP_HEX_LEN + 1)]; /* the probe's pins ("" none) */
	char env_tls[PATH_MAX + 32];          /* TANDEM_AGENT_TLS_DIR=... ("" none) */
	char env_crl[PATH_MAX + 32];          /* TANDEM_AGENT_CRL=... ("" none) */
	char env_tag[PATH_MAX + 32];          /* AGENT_TAG_VAR=<install dir>: finds strays */
	uint64_t out_gen;       /* the start whose output begins at out_mark */
	off_t out_mark;
	int64_t started_at;     /* when start out_gen began (the probe's deadline counts from it) */
	int ready_declared;     /* the spec set last passes --ready-fd */
	char last_probe[AGENT_LAST_PROBE_MAX];
	/* Liveness of the running agent (a thread; see agent_liveness_main). */
	pthread_t live_thread;
	pthread_cond_t live_cv;
	int live_started, live_quit;
	unsigned live_misses;   /* checks in a row without an answer */
	unsigned live_kills;    /* agents killed as hung */
	char live_last[256];    /* why the last check failed ("" none) */
};

/* The log's size now: where the output of the next start begins. */
static off_t
agent_log_size(const struct agent *ag)
{
	struct stat st;

	return stat(ag->log_path, &st) == 0 ? st.st_size : 0;
}

/* Persist pid, start time and boot id of every agent we start (adoption). */
static void
agent_on_event(void *arg, const struct supervisor_event *ev)
{
	struct agent *ag = arg;
	char p[PATH_MAX], buf[256];
	int n;

	if (ev->kind == SUPERVISOR_EV_CRASH_LOOP) {
		log_warnx("agent is crash-looping");
		return;
	}
	if (ev->kind != SUPERVISOR_EV_SPAWNED) {
		return;
	}
	testhook_point("agent.spawned"); /* running, not yet recorded */
	n = snprintf(p, sizeof(p), "%s/state/%s", ag->root, AGENT_RECORD);
	if (n < 0 || (size_t)n >= sizeof(p)) {
		return;
	}
	n = snprintf(buf, sizeof(buf), "{\"pid\":%lld,\"start_time\":\"%llu\",\"boot_id\":\"%s\"}\n",
	    (long long)ev->pid, ev->start_time, ag->boot_id);
	if (n > 0 && (size_t)n < sizeof(buf) && fs_write_atomic(p, buf, (size_t)n, 0600) != 0) {
		log_warn("write %s", p);
	}
}

int
agent_new(const struct updater_config *cfg, const char *root, struct tls_ctx *cli_tls,
    struct agent **out, struct err *e)
{
	struct agent *ag = calloc(1, sizeof(*ag));
	struct supervisor_opts so;
	struct proc_spec spec;
	const char *argv[] = { "/bin/false", NULL };
	int n;

	if (ag == NULL) {
		return err_set(e, ERR_NOMEM, "agent: out of memory");
	}
	pthread_mutex_init(&ag->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&ag->live_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	ag->cfg = cfg;
	ag->probe_tls = tls_ctx_ref(cli_tls);
	(void)snprintf(ag->pin, sizeof(ag->pin), "%s", cfg->agent_pin);
	if (strlcpy_chk(ag->root, root, sizeof(ag->root)) != 0) {
		err_set(e, ERR_CONFIG, "install dir path too long");
		goto fail;
	}
	n = cfg->agent_log != NULL ?
	    snprintf(ag->log_path, sizeof(ag->log_path), "%s", cfg->agent_log) :
	    snprintf(ag->log_path, sizeof(ag->log_path), "%s/state/agent.log", root);
	if (n < 0 || (size_t)n >= sizeof(ag->log_path)) {
		err_set(e, ERR_CONFIG, "agent_log: path too long");
		goto fail;
	}
	if (logcap_start(ag->log_path, (unsigned long long)cfg->log_max, (unsigned)cfg->log_keep,
		&ag->cap, e) != 0) {
		goto fail;
	}
	if (split_host_port(cfg->agent_probe, ag->probe_host, sizeof(ag->probe_host),
		ag->probe_port, sizeof(ag->probe_port)) != 0) {
		err_set(e, ERR_CONFIG, "agent_probe: bad address");
		goto fail;
	}
	if (ag->probe_host[0] == '\0') {
		(void)snprintf(ag->probe_host, sizeof(ag->probe_host), "127.0.0.1");
	}
	n = snprintf(ag->env_tag, sizeof(ag->env_tag), "%s=%s", AGENT_TAG_VAR, root);
	if (n < 0 || (size_t)n >= sizeof(ag->env_tag)) {
		err_set(e, ERR_CONFIG, "install dir path too long");
		goto fail;
	}
	if (proc_boot_id(ag->boot_id, sizeof(ag->boot_id)) != 0) {
		ag->boot_id[0] = '\0';
	}
	proc_spec_init(&spec);
	spec.argv = argv; /* replaced from the manifest before every start */
	supervisor_opts_init(&so);
	so.name = "agent";
	so.spec = &spec;
	so.cfg.stop_grace_ms = cfg->stop_grace_ms;
	so.cfg.backoff_min_ms = cfg->restart_backoff_min_ms;
	so.cfg.backoff_max_ms = cfg->restart_backoff_max_ms;
	so.cfg.min_spacing_ms = cfg->restart_min_spacing_ms;
	so.cfg.crash_loop_count = (unsigned)cfg->crash_loop_count;
	so.cfg.crash_loop_window_ms = cfg->crash_loop_window_ms;
	so.cfg.crash_loop_retry_ms = cfg->crash_loop_retry_ms;
	so.on_event = agent_on_event;
	so.arg = ag;
	if (supervisor_new(&so, &ag->sv, e) != 0) {
		goto fail;
	}
	*out = ag;
	return 0;
fail:
	agent_free(ag, 0);
	return -1;
}

void
agent_free(struct agent *ag, int stop)
{
	struct err e = ERR_INIT;

	if (ag == NULL) {
		return;
	}
	if (ag->live_started) {
		pthread_mutex_lock(&ag->mu);
		ag->live_quit = 1;
		pthread_cond_signal(&ag->live_cv);
		pthread_mutex_unlock(&ag->mu);
		pthread_join(ag->live_thread, NULL);
	}
	if (ag->sv != NULL) {
		if (stop && supervisor_stop(ag->sv, &e) != 0) {
			log_warnx("stop agent: %s", err_msg(&e));
		}
		supervisor_free(ag->sv);
	}
	logcap_stop(ag->cap);
	tls_ctx_free(ag->probe_tls);
	pthread_cond_destroy(&ag->live_cv);
	pthread_mutex_destroy(&ag->mu);
	free(ag);
}

void
agent_set_tls(struct agent *ag, struct tls_ctx *cli_tls)
{
	struct tls_ctx *old;

	tls_ctx_ref(cli_tls);
	pthread_mutex_lock(&ag->mu);
	old = ag->probe_tls;
	ag->probe_tls = cli_tls;
	pthread_mutex_unlock(&ag->mu);
	tls_ctx_free(old);
}

void
agent_set_pin(struct agent *ag, const char *pins)
{
	pthread_mutex_lock(&ag->mu);
	(void)snprintf(ag->pin, sizeof(ag->pin), "%s", pins != NULL ? pins : "");
	pthread_mutex_unlock(&ag->mu);
}

void
agent_set_tls_env(struct agent *ag, const char *tls_dir, const char *crl)
{
	pthread_mutex_lock(&ag->mu);
	(void)snprintf(ag->env_tls, sizeof(ag->env_tls), "TANDEM_AGENT_TLS_DIR=%s", tls_dir);
	(void)snprintf(ag->env_crl, sizeof(ag->env_crl), "TANDEM_AGENT_CRL=%s", crl);
	pthread_mutex_unlock(&ag->mu);
}

int
agent_reload(struct agent *ag)
{
	struct supervisor_status st;

	supervisor_status(ag->sv, &st);
	if (st.pid <= 0) {
		return 0; /* nothing runs: the next start reads the new files */
	}
	if (kill(st.pid, SIGHUP) != 0) {
		log_warn("SIGHUP to the agent (pid %d)", (int)st.pid);
		return -1;
	}
	return 1;
}

/* The active release's manifest (entrypoint checked on disk). */
static int
agent_manifest(const struct agent *ag, struct release_manifest *m, struct err *e)
{
	char dir[PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/releases/active", ag->root);

	if (n < 0 || (size_t)n >= sizeof(dir)) {
		return err_set(e, ERR_INTERNAL, "releases/active: path too long");
	}
	return release_manifest_read(dir, RELEASE_MF_AGENT, m, e);
}

/* The program of the active release, through `current` (the agent finds its release by it). */
static int
agent_program(const struct agent *ag, const struct release_manifest *m, char *prog, size_t len,
    struct err *e)
{
	int n = snprintf(prog, len, "%s/current/%s", ag->root, m->entrypoint);

	if (n < 0 || (size_t)n >= len) {
		return err_set(e, ERR_INTERNAL, "agent program path too long");
	}
	return 0;
}

/*
 * What the next start runs: the active release's entrypoint --config
 * AGENT_CONFIG, and --ready-fd N when its manifest declares that readiness.
 */
static int
agent_set_spec(struct agent *ag, struct err *e)
{
	struct release_manifest m;
	char prog[PATH_MAX];
	const char *argv[4];
	const char *env[4] = { NULL, NULL, NULL, NULL };
	char env_tls[PATH_MAX + 32], env_crl[PATH_MAX + 32];
	struct proc_spec spec;

	if (agent_manifest(ag, &m, e) != 0 || agent_program(ag, &m, prog, sizeof(prog), e) != 0) {
		return -1;
	}
	/* Where a renewed identity and the CRL are: an agent that does not know
	 * these variables ignores them (an older release still starts). */
	pthread_mutex_lock(&ag->mu);
	(void)snprintf(env_tls, sizeof(env_tls), "%s", ag->env_tls);
	(void)snprintf(env_crl, sizeof(env_crl), "%s", ag->env_crl);
	pthread_mutex_unlock(&ag->mu);
	env[0] = ag->env_tag;
	if (env_tls[0] != '\0') {
		env[1] = env_tls;
		env[2] = env_crl;
	}
	argv[0] = prog;
	argv[1] = "--config";
	argv[2] = ag->cfg->agent_config;
	argv[3] = NULL;
	proc_spec_init(&spec);
	spec.argv = argv;
	spec.env_add = env;
	spec.cwd = ag->root;
	spec.log_path = ag->log_path;
	if (ag->cfg->run_as_user[0] != '\0') {
		spec.user = ag->cfg->run_as_user;
		spec.group = ag->cfg->run_as_group[0] != '\0' ? ag->cfg->run_as_group : NULL;
	}
	if (supervisor_set_spec(ag->sv, &spec,
		strcmp(m.readiness, RELEASE_READINESS_FD) == 0 ? "--ready-fd" : NULL) != 0) {
		return err_set(e, ERR_NOMEM, "agent: out of memory");
	}
	pthread_mutex_lock(&ag->mu);
	ag->ready_declared = strcmp(m.readiness, RELEASE_READINESS_FD) == 0;
	pthread_mutex_unlock(&ag->mu);
	return 0;
}

/*
 * Wait for start GEN's READY (see agent_op_start). 0: started (or only the
 * probe can tell); -1 with E when the process is gone before READY.
 */
static int
agent_wait_started(struct agent *ag, uint64_t gen, struct err *e)
{
	char how[96];
	int status = -1, declared;

	switch (supervisor_wait_ready(ag->sv, gen, (int)ag->cfg->probe_deadline_ms, &status)) {
	case SUPERVISOR_NOT_READY:
		log_warnx("agent: no READY within %lld ms; the probe decides",
		    (long long)ag->cfg->probe_deadline_ms);
		return 0;
	case SUPERVISOR_READY_GONE:
		log_warnx("agent: closed its readiness pipe without READY; the probe decides");
		return 0;
	case SUPERVISOR_READY_EXITED:
		/* Whoever answers on the port now is not this release: nothing to probe. */
		pthread_mutex_lock(&ag->mu);
		declared = ag->ready_declared;
		pthread_mutex_unlock(&ag->mu);
		return err_set(e, ERR_PROBE, "%s (%s)", declared ? "exited before READY" :
		    "exited right after its start", proc_status_str(status, how, sizeof(how)));
	case SUPERVISOR_READY_NONE:
	case SUPERVISOR_READY:
		break;
	}
	return 0;
}

static int
agent_op_stop(void *arg, struct err *e)
{
	struct agent *ag = arg;

	return supervisor_stop(ag->sv, e);
}

/*
 * Start the agent of the active release. "Started" is its READY line when
 * the release declares readiness (or the probe deadline), else the spawn:
 * the probe then only confirms version, sha256 and stability. A process
 * gone before its READY (it could not bind its port, say) fails the start
 * at once: a probe could only reach whatever else answers on the port. *GEN
 * is set whenever a process was spawned, so its output can be fetched.
 */
static int
agent_op_start(void *arg, uint64_t *gen, struct err *e)
{
	struct agent *ag = arg;
	struct supervisor_status st;
	int64_t t0 = mono_ms();
	off_t mark;

	if (agent_set_spec(ag, e) != 0) {
		return -1;
	}
	mark = agent_log_size(ag);
	if (supervisor_start(ag->sv, e) != 0) {
		return -1;
	}
	supervisor_status(ag->sv, &st);
	pthread_mutex_lock(&ag->mu);
	ag->out_gen = st.generation;
	ag->out_mark = mark;
	ag->started_at = t0;
	pthread_mutex_unlock(&ag->mu);
	*gen = st.generation;
	return agent_wait_started(ag, st.generation, e);
}

/* Remember the last probe's result for /health: "TIME WHAT". */
static void
agent_note_probe(struct agent *ag, const char *what)
{
	char stamp[32];

	iso8601_utc(time(NULL), stamp, sizeof(stamp));
	pthread_mutex_lock(&ag->mu);
	(void)snprintf(ag->last_probe, sizeof(ag->last_probe), "%s %.560s", stamp, what);
	pthread_mutex_unlock(&ag->mu);
}

/*
 * Probe options aimed at the agent with the updater's current client
 * context and pins: PIN (PINLEN bytes) receives a copy of the pins. Returns
 * the context reference O holds; the caller frees it after the probe.
 */
static struct tls_ctx *
agent_probe_opts(struct agent *ag, struct probe_opts *o, char *pin, size_t pinlen)
{
	struct tls_ctx *tls;

	probe_opts_init(o);
	pthread_mutex_lock(&ag->mu);
	tls = tls_ctx_ref(ag->probe_tls);
	(void)snprintf(pin, pinlen, "%s", ag->pin);
	pthread_mutex_unlock(&ag->mu);
	o->tls = tls;
	o->host = ag->probe_host;
	o->port = ag->probe_port;
	o->pin_fp = pin;
	return tls;
}

static int
agent_op_probe(void *arg, uint64_t gen, const struct release_info *ri, char **body,
    struct err *e)
{
	struct agent *ag = arg;
	const struct updater_config *cfg = ag->cfg;
	struct probe_opts o;
	struct probe_result res;
	struct supervisor_watch w = { ag->sv, gen };
	char what[AGENT_LAST_PROBE_MAX];
	int64_t spent = 0;
	char pin[TLS_MAX_PINS * (TLS_FP_HEX_LEN + 1)];
	struct tls_ctx *tls;
	int rc;

	pthread_mutex_lock(&ag->mu);
	if (ag->out_gen == gen) {
		spent = mono_ms() - ag->started_at; /* waiting for READY took part of the budget */
	}
	pthread_mutex_unlock(&ag->mu);

	tls = agent_probe_opts(ag, &o, pin, sizeof(pin));
	o.expect_version = ri->version;
	o.expect_sha256 = ri->sha256;
	o.first_interval_ms = (int)cfg->probe_first_interval_ms;
	o.max_interval_ms = (int)cfg->probe_max_interval_ms;
	o.attempt_timeout_ms = (int)cfg->probe_attempt_timeout_ms;
	o.deadline_ms = (int)(cfg->probe_deadline_ms - spent > AGENT_PROBE_MIN_MS ?
	    cfg->probe_deadline_ms - spent : AGENT_PROBE_MIN_MS);
	o.stable_ms = (int)cfg->probe_stable_ms;
	if (o.stable_interval_ms > o.stable_ms && o.stable_ms > 0) {
		o.stable_interval_ms = o.stable_ms;
	}
	o.alive = supervisor_watch_alive;
	o.alive_arg = &w;
	rc = probe_run(&o, &res);
	tls_ctx_free(tls);
	if (rc == 0) {
		(void)snprintf(what, sizeof(what), "passed for %s (%.64s) in %lld ms (%u attempts, "
		    "%u without an answer)", ri->id, ri->version, (long long)res.elapsed_ms,
		    res.attempts, res.inconclusive);
	} else {
		(void)snprintf(what, sizeof(what), "failed for %s (%.64s): %.400s", ri->id,
		    ri->version, err_msg(&res.err));
		err_set(e, ERR_PROBE, "%s", err_msg(&res.err));
	}
	agent_note_probe(ag, what);
	*body = res.body;
	res.body = NULL;
	probe_result_free(&res);
	return rc == 0 ? 0 : -1;
}

/* The tail of what start GEN appended to the agent log (at most AGENT_OUTPUT_MAX bytes). */
static char *
agent_op_output(void *arg, uint64_t gen)
{
	struct agent *ag = arg;
	char *buf = NULL;
	off_t mark, end;
	ssize_t n;
	size_t len;
	int fd;

	pthread_mutex_lock(&ag->mu);
	mark = gen != 0 && ag->out_gen == gen ? ag->out_mark : -1;
	pthread_mutex_unlock(&ag->mu);
	if (mark < 0 || (fd = open(ag->log_path, O_RDONLY | O_CLOEXEC)) < 0) {
		return NULL;
	}
	end = lseek(fd, 0, SEEK_END);
	if (end < mark) {
		mark = 0; /* the log was rotated meanwhile: what is there now */
	}
	if (end - mark > AGENT_OUTPUT_MAX) {
		mark = end - AGENT_OUTPUT_MAX;
	}
	len = end > mark ? (size_t)(end - mark) : 0;
	buf = calloc(1, len + 1);
	if (buf == NULL) {
		close(fd);
		return NULL;
	}
	n = len > 0 ? pread(fd, buf, len, mark) : 0;
	close(fd);
	buf[n > 0 ? (size_t)n : 0] = '\0';
	return buf;
}

void
agent_install_ops(struct agent *ag, struct install_agent *ops)
{
	ops->arg = ag;
	ops->stop = agent_op_stop;
	ops->start = agent_op_start;
	ops->probe = agent_op_probe;
	ops->output = agent_op_output;
}

struct agent_rec {
	int64_t pid;
	char start_time[32];
	char boot_id[40];
};

/* Adopt or stop the agent an earlier updater left behind. 1: adopted. */
static int
agent_adopt(struct agent *ag, int have_active)
{
	static const struct json_field fields[] = {
		JSON_F_INT("pid", struct agent_rec, pid, JSON_REQUIRED, 1, INT32_MAX),
		JSON_F_STR("start_time", struct agent_rec, start_time, JSON_REQUIRED, 1),
		JSON_F_STR("boot_id", struct agent_rec, boot_id, JSON_REQUIRED, 0),
	};
	struct agent_rec rec;
	struct release_manifest m;
	struct err e = ERR_INIT;
	cJSON *o = NULL;
	char p[PATH_MAX], exe[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	long long st;
	int adopted = 0;

	if (snprintf(p, sizeof(p), "%s/state/%s", ag->root, AGENT_RECORD) >= (int)sizeof(p) ||
	    fs_read_file(p, AGENT_RECORD_MAX, &buf, &len) != 0) {
		return 0;
	}
	memset(&rec, 0, sizeof(rec));
	o = json_parse_object(buf, len, NULL);
	if (o == NULL || json_read_fields(o, fields, ARRAY_LEN(fields), 0, &rec, NULL) != 0 ||
	    parse_ll(rec.start_time, 0, LLONG_MAX, &st) != 0 ||
	    strcmp(rec.boot_id, ag->boot_id) != 0) {
		goto out; /* unreadable, or from before a reboot: means nothing now */
	}
	if (have_active && agent_manifest(ag, &m, &e) == 0 &&
	    agent_program(ag, &m, exe, sizeof(exe), &e) == 0) {
		if (supervisor_adopt(ag->sv, (pid_t)rec.pid, (unsigned long long)st, exe, &e) == 0) {
			log_info("adopted agent pid %lld", (long long)rec.pid);
			adopted = 1;
			goto out;
		}
		if (e.kind == ERR_NOT_FOUND) {
			goto out; /* gone, or the pid is someone else's now */
		}
		log_warnx("not adopting agent pid %lld: %s", (long long)rec.pid, err_msg(&e));
	}
	if (supervisor_kill_stray(ag->sv, (pid_t)rec.pid, (unsigned long long)st, &e) != 0) {
		log_warnx("stop stray agent pid %lld: %s", (long long)rec.pid, err_msg(&e));
	}
out:
	cJSON_Delete(o);
	free(buf);
	return adopted;
}

/*
 * One liveness check of the running agent: GET /livez, any answer counts
 * (an agent that answers, even with an error, is not hung; the install's
 * probe judges health). 0: answered; -1: no answer (WHY says what).
 */
static int
agent_liveness_once(struct agent *ag, char *why, size_t whylen)
{
	struct probe_opts o;
	struct probe_result res;
	char pin[TLS_MAX_PINS * (TLS_FP_HEX_LEN + 1)];
	struct tls_ctx *tls;
	int rc;

	tls = agent_probe_opts(ag, &o, pin, sizeof(pin));
	o.path = "/livez";
	o.attempt_timeout_ms = (int)ag->cfg->liveness_timeout_ms;
	rc = probe_once(&o, &res);
	tls_ctx_free(tls);
	if (rc != 0 && res.err.kind == ERR_UNREACHABLE) {
		(void)snprintf(why, whylen, "%s", err_msg(&res.err));
		probe_result_free(&res);
		return -1;
	}
	probe_result_free(&res);
	return 0;
}

/*
 * Every liveness_interval, ask the running agent (state "running": past
 * its start) for /livez. liveness_failures checks in a row without an
 * answer within liveness_timeout mean a hung process (stopped, deadlocked,
 * spinning): it is killed, and the supervisor restarts it under the same
 * backoff and crash-loop rules as a crash. A new start resets the count.
 */
static void *
agent_liveness_main(void *arg)
{
	struct agent *ag = arg;
	struct supervisor_status st;
	struct timespec ts;
	uint64_t gen = 0;
	unsigned misses = 0;
	char why[256];

	pthread_mutex_lock(&ag->mu);
	while (!ag->live_quit) {
		timespec_after_ms(CLOCK_MONOTONIC, ag->cfg->liveness_interval_ms, &ts);
		while (!ag->live_quit &&
		    pthread_cond_timedwait(&ag->live_cv, &ag->mu, &ts) == 0) {
		}
		if (ag->live_quit) {
			break;
		}
		pthread_mutex_unlock(&ag->mu);
		supervisor_status(ag->sv, &st);
		if (st.generation != gen || st.state != SUP_RUNNING) {
			gen = st.generation;
			misses = 0;
		}
		why[0] = '\0';
		if (st.state == SUP_RUNNING) {
			if (agent_liveness_once(ag, why, sizeof(why)) == 0) {
				misses = 0;
			} else {
				misses++;
				log_warnx("agent pid %ld did not answer /livez (%u of %lld): %s",
				    (long)st.pid, misses, ag->cfg->liveness_failures, why);
			}
		}
		if (misses >= (unsigned)ag->cfg->liveness_failures) {
			log_warnx("agent pid %ld is hung (%u liveness checks without an answer); "
			    "killing it, the supervisor restarts it", (long)st.pid, misses);
			if (supervisor_signal_generation(ag->sv, gen, SIGKILL) == 0) {
				pthread_mutex_lock(&ag->mu);
				ag->live_kills++;
				pthread_mutex_unlock(&ag->mu);
			}
			misses = 0;
		}
		pthread_mutex_lock(&ag->mu);
		ag->live_misses = misses;
		if (why[0] != '\0') {
			(void)snprintf(ag->live_last, sizeof(ag->live_last), "%s", why);
		}
	}
	pthread_mutex_unlock(&ag->mu);
	return NULL;
}

/* Start the liveness thread once (liveness_interval 0: never). */
static void
agent_liveness_start(struct agent *ag)
{
	int rc;

	if (ag->live_started || ag->cfg->liveness_interval_ms <= 0) {
		return;
	}
	rc = pthread_create(&ag->live_thread, NULL, agent_liveness_main, ag);
	if (rc != 0) {
		errno = rc;
		log_warn("agent liveness thread");
		return;
	}
	ag->live_started = 1;
}

/*
 * Stop every tagged process outside the session of KEEP (the adopted agent,
 * 0: none): agents an earlier updater started and died before recording
 * (they would hold the agent's port, and the agent started next would
 * crash-loop on "address in use"), and whatever such an agent left behind.
 */
static void
agent_stop_strays(struct agent *ag, pid_t keep)
{
	pid_t pids[AGENT_STRAYS_MAX];
	size_t n = 0, i;
	unsigned long long st;
	struct err e = ERR_INIT;

	if (proc_find_env(ag->env_tag, pids, ARRAY_LEN(pids), &n, &e) != 0) {
		log_warnx("look for agents no record names: %s", err_msg(&e));
		return;
	}
	if (n > ARRAY_LEN(pids)) {
		log_warnx("%zu agent processes no record names; stopping the first %zu", n,
		    ARRAY_LEN(pids));
		n = ARRAY_LEN(pids);
	}
	for (i = 0; i < n; i++) {
		if (keep > 0 && getsid(pids[i]) == keep) {
			continue; /* the adopted agent or one of its children */
		}
		if (proc_start_time(pids[i], &st) != 0) {
			continue; /* gone already */
		}
		log_warnx("stopping agent process %ld that no record names (an earlier updater "
		    "started it and stopped before recording it)", (long)pids[i]);
		if (supervisor_kill_stray(ag->sv, pids[i], st, &e) != 0) {
			log_warnx("stop stray agent pid %ld: %s", (long)pids[i], err_msg(&e));
			err_clear(&e);
		}
	}
}

void
agent_resume(struct agent *ag, int have_active)
{
	struct supervisor_status st;
	struct err e = ERR_INIT;
	uint64_t gen;
	int adopted;

	agent_liveness_start(ag);
	if (!have_active) {
		(void)agent_adopt(ag, 0); /* no release: an agent left behind can only be a stray */
		agent_stop_strays(ag, 0);
		return;
	}
	/* The spec first: an adopted agent that dies is restarted from it. */
	if (agent_set_spec(ag, &e) != 0) {
		log_warnx("agent: %s", err_msg(&e));
	}
	adopted = agent_adopt(ag, 1);
	supervisor_status(ag->sv, &st);
	/* No agent but the adopted one may run when the next one starts. */
	agent_stop_strays(ag, adopted ? (pid_t)st.pid : 0);
	if (!adopted && agent_op_start(ag, &gen, &e) != 0) {
		log_warnx("agent: %s", err_msg(&e));
	}
}

int
agent_crash_looping(struct agent *ag)
{
	struct supervisor_status st;

	supervisor_status(ag->sv, &st);
	return st.crash_looping;
}

int
agent_health_json(struct agent *ag, cJSON *obj)
{
	struct supervisor_status st;
	char last[AGENT_LAST_PROBE_MAX], live_last[256];
	unsigned misses, kills;
	cJSON *o, *lv;

	supervisor_status(ag->sv, &st);
	pthread_mutex_lock(&ag->mu);
	memcpy(last, ag->last_probe, sizeof(last));
	pthread_mutex_unlock(&ag->mu);
	pthread_mutex_lock(&ag->mu);
	misses = ag->live_misses;
	kills = ag->live_kills;
	memcpy(live_last, ag->live_last, sizeof(live_last));
	pthread_mutex_unlock(&ag->mu);
	o = json_add_object(obj, "agent");
	if (o == NULL || supervisor_status_json(&st, o) != 0 ||
	    json_add_str(o, "last_probe", last[0] != '\0' ? last : NULL) != 0) {
		return -1;
	}
	lv = json_add_object(o, "liveness");
	if (lv == NULL || json_add_bool(lv, "enabled", ag->cfg->liveness_interval_ms > 0) != 0 ||
	    json_add_int(lv, "misses", misses) != 0 || json_add_int(lv, "hung_kills", kills) != 0 ||
	    json_add_str(lv, "last_miss", live_last[0] != '\0' ? live_last : NULL) != 0) {
		return -1;
	}
	return 0;
}
