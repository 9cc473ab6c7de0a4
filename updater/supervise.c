#include "updater/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"

/* ---- the pure state machine ---- */

void
sup_config_defaults(struct sup_config *c)
{
	c->backoff_min_ms = 500;
	c->backoff_max_ms = 30000;
	c->min_spacing_ms = 1000;
	c->running_after_ms = 1000;
	c->stable_ms = 60000;
	c->crash_loop_count = 5;
	c->crash_loop_window_ms = 60000;
	c->crash_loop_retry_ms = 60000;
	c->stop_grace_ms = 5000;
}

int
sup_config_check(const struct sup_config *c, struct err *e)
{
	const char *bad = NULL;

	if (c->backoff_min_ms <= 0) {
		bad = "backoff_min_ms must be > 0";
	} else if (c->backoff_max_ms < c->backoff_min_ms) {
		bad = "backoff_max_ms must be >= backoff_min_ms";
	} else if (c->min_spacing_ms <= 0) {
		bad = "min_spacing_ms must be > 0";
	} else if (c->running_after_ms <= 0) {
		bad = "running_after_ms must be > 0";
	} else if (c->stable_ms <= 0) {
		bad = "stable_ms must be > 0";
	} else if (c->crash_loop_count < 1 || c->crash_loop_count > SUP_MAX_CRASHES) {
		bad = "crash_loop_count must be within 1..64";
	} else if (c->crash_loop_window_ms <= 0) {
		bad = "crash_loop_window_ms must be > 0";
	} else if (c->stop_grace_ms <= 0) {
		bad = "stop_grace_ms must be > 0";
	}
	if (bad != NULL) {
		return err_set(e, ERR_CONFIG, "supervision: %s", bad);
	}
	return 0;
}

void
sup_init(struct sup *s, const struct sup_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->state = SUP_STOPPED;
	s->deadline = INT64_MAX;
	s->started_at = INT64_MIN;
	s->stable_at = INT64_MAX;
	s->last_status = -1;
}

static void
clear_history(struct sup *s)
{
	s->consecutive = 0;
	s->ncrashes = 0;
	s->crash_head = 0;
	s->crash_looping = 0;
}

static int64_t
max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* Earliest moment a new start may happen: min_spacing after the last one. */
static int64_t
spaced(const struct sup *s, int64_t when)
{
	if (s->started_at == INT64_MIN) {
		return when;
	}
	return max64(when, s->started_at + s->cfg.min_spacing_ms);
}

static enum sup_action
begin_start(struct sup *s)
{
	s->state = SUP_STARTING;
	s->deadline = INT64_MAX; /* until sup_spawned() */
	return SUP_ACT_SPAWN;
}

unsigned
sup_recent_crashes(const struct sup *s, int64_t now)
{
	unsigned i, n = 0;

	for (i = 0; i < s->ncrashes; i++) {
		if (now - s->crashes[i] < s->cfg.crash_loop_window_ms) {
			n++;
		}
	}
	return n;
}

static enum sup_action
crashed(struct sup *s, int64_t now, int status)
{
	int64_t delay;
	unsigned shift;

	s->last_status = status;
	s->crashes[s->crash_head] = now;
	s->crash_head = (s->crash_head + 1) % SUP_MAX_CRASHES;
	if (s->ncrashes < SUP_MAX_CRASHES) {
		s->ncrashes++;
	}
	s->consecutive++;
	s->stable_at = INT64_MAX;
	if (!s->want_up) {
		s->state = SUP_STOPPED;
		s->deadline = INT64_MAX;
		return SUP_ACT_NONE;
	}
	if (s->crash_looping || sup_recent_crashes(s, now) >= s->cfg.crash_loop_count) {
		s->crash_looping = 1;
		s->state = SUP_CRASH_LOOP;
		s->deadline = s->cfg.crash_loop_retry_ms < 0 ?
		    INT64_MAX :
		    spaced(s, now + s->cfg.crash_loop_retry_ms);
		return SUP_ACT_NONE;
	}
	/* backoff_min * 2^(consecutive-1), capped; the shift is bounded first. */
	delay = s->cfg.backoff_min_ms;
	for (shift = 1; shift < s->consecutive && delay < s->cfg.backoff_max_ms; shift++) {
		delay *= 2;
	}
	if (delay > s->cfg.backoff_max_ms) {
		delay = s->cfg.backoff_max_ms;
	}
	s->state = SUP_BACKOFF;
	s->deadline = spaced(s, now + delay);
	return SUP_ACT_NONE;
}

enum sup_action
sup_want_up(struct sup *s, int64_t now)
{
	(void)now;
	s->want_up = 1;
	clear_history(s);
	s->restarts = 0;
	switch (s->state) {
	case SUP_STOPPED:
	case SUP_BACKOFF:
	case SUP_CRASH_LOOP:
		return begin_start(s);
	case SUP_STARTING:
	case SUP_RUNNING:
	case SUP_STOPPING: /* starts again once the exit is seen */
		break;
	}
	return SUP_ACT_NONE;
}

enum sup_action
sup_want_down(struct sup *s, int64_t now)
{
	s->want_up = 0;
	switch (s->state) {
	case SUP_STARTING:
	case SUP_RUNNING:
		s->state = SUP_STOPPING;
		s->stable_at = INT64_MAX;
		s->deadline = now + s->cfg.stop_grace_ms;
		return SUP_ACT_TERM;
	case SUP_BACKOFF:
	case SUP_CRASH_LOOP:
		s->state = SUP_STOPPED;
		s->deadline = INT64_MAX;
		break;
	case SUP_STOPPED:
	case SUP_STOPPING:
		break;
	}
	return SUP_ACT_NONE;
}

enum sup_action
sup_spawned(struct sup *s, int64_t now, int ok)
{
	if (s->state != SUP_STARTING) {
		return SUP_ACT_NONE;
	}
	s->started_at = now;
	if (!ok) {
		return crashed(s, now, -1);
	}
	s->stable_at = now + s->cfg.stable_ms;
	s->deadline = now + s->cfg.running_after_ms;
	return SUP_ACT_NONE;
}

/* Next deadline while the process is up: RUNNING, or the stable reset. */
static void
arm_running(struct sup *s, int64_t now)
{
	if (s->stable_at != INT64_MAX && now >= s->stable_at) {
		clear_history(s);
		s->stable_at = INT64_MAX;
	}
	s->deadline = s->stable_at;
}

void
sup_adopted(struct sup *s, int64_t now, int64_t age_ms)
{
	if (age_ms < 0) {
		age_ms = 0;
	}
	s->want_up = 1;
	clear_history(s);
	s->restarts = 0;
	s->started_at = now - age_ms;
	s->stable_at = s->started_at + s->cfg.stable_ms;
	if (age_ms >= s->cfg.running_after_ms) {
		s->state = SUP_RUNNING;
		arm_running(s, now);
	} else {
		s->state = SUP_STARTING;
		s->deadline = s->started_at + s->cfg.running_after_ms;
	}
}

enum sup_action
sup_exited(struct sup *s, int64_t now, int status)
{
	switch (s->state) {
	case SUP_STOPPING:
		s->last_status = status;
		s->stable_at = INT64_MAX;
		if (s->want_up) {
			return begin_start(s);
		}
		s->state = SUP_STOPPED;
		s->deadline = INT64_MAX;
		return SUP_ACT_NONE;
	case SUP_STARTING:
	case SUP_RUNNING:
		return crashed(s, now, status);
	case SUP_STOPPED:
	case SUP_BACKOFF:
	case SUP_CRASH_LOOP:
		break;
	}
	return SUP_ACT_NONE;
}

enum sup_action
sup_timer(struct sup *s, int64_t now)
{
	if (now < s->deadline) {
		return SUP_ACT_NONE;
	}
	switch (s->state) {
	case SUP_STARTING:
		s->state = SUP_RUNNING;
		arm_running(s, now);
		break;
	case SUP_RUNNING:
		arm_running(s, now);
		break;
	case SUP_BACKOFF:
	case SUP_CRASH_LOOP:
		s->restarts++;
		return begin_start(s);
	case SUP_STOPPING:
		s->deadline = INT64_MAX; /* one SIGKILL; the exit ends STOPPING */
		return SUP_ACT_KILL;
	case SUP_STOPPED:
		s->deadline = INT64_MAX;
		break;
	}
	return SUP_ACT_NONE;
}

int64_t
sup_deadline(const struct sup *s)
{
	return s->deadline;
}

enum sup_state
sup_state(const struct sup *s)
{
	return s->state;
}

int
sup_crash_looping(const struct sup *s)
{
	return s->crash_looping;
}

const char *
sup_state_name(enum sup_state st)
{
	switch (st) {
	case SUP_STOPPED:
		return "stopped";
	case SUP_STARTING:
		return "starting";
	case SUP_RUNNING:
		return "running";
	case SUP_BACKOFF:
		return "backoff";
	case SUP_CRASH_LOOP:
		return "crash_loop";
	case SUP_STOPPING:
		return "stopping";
	}
	return "unknown";
}

/* ---- the driver ---- */

/* A deep copy of a proc_spec. */
struct spec_copy {
	struct proc_spec spec;
	char **argv;
	char **env;
	char *cwd, *log_path, *user, *group;
	char *ready_arg;         /* NULL: the program does not tell when it serves */
};

/* Where the current process is with its READY line (readiness pipe). */
enum sv_ready {
	SV_READY_NONE = 0,       /* no readiness declared (or the pipe could not be made) */
	SV_READY_WAITING = 1,    /* the pipe is open, nothing said yet */
	SV_READY_SAID = 2,       /* a line starting with READY arrived */
	SV_READY_GONE = 3,       /* closed or exited without it */
};

/* Bytes of the readiness pipe looked at for "READY". */
#define SV_READY_BUF 64

#define SV_MAX_EVENTS 4
/* Longest poll() while watching a process without a pidfd. */
#define SV_FALLBACK_POLL_MS 50
/* supervisor_stop() waits this long beyond stop_grace_ms. */
#define SV_STOP_EXTRA_MS 5000
/*
 * A readiness pipe closes when its process exits, a moment before the exit
 * shows on the pidfd: supervisor_wait_ready() waits this long for the exit
 * before it takes a closed pipe for a process that runs on without READY.
 */
#define SV_READY_EXIT_GRACE_MS 500

struct sv_event {
	struct supervisor_event ev;
	char error[256];
};

struct supervisor {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int thread_started;
	int wake[2];
	int quit;
	char *name;
	struct spec_copy spec;
	struct sup m;
	struct proc p;
	uint64_t generation;
	uint64_t exit_generation; /* the start whose exit was seen last (0: none) */
	int exit_status;          /* ... and its wait status */
	int adopted;
	int watch_error; /* proc_poll failed: poll slowly instead of on the pidfd */
	int ready_fd;    /* read end of the current process's readiness pipe, or -1 */
	enum sv_ready ready;
	char ready_buf[SV_READY_BUF];
	size_t ready_len;
	char last_error[256];
	void (*on_event)(void *arg, const struct supervisor_event *ev);
	void *arg;
	/* Events gathered under the lock, dispatched after it is released. */
	struct sv_event q[SV_MAX_EVENTS];
	unsigned nq;
};

static void
strv_free(char **v)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++) {
		free(v[i]);
	}
	free(v);
}

static int
strv_dup(const char *const *in, char ***out)
{
	size_t n = 0, i;
	char **v;

	*out = NULL;
	if (in == NULL) {
		return 0;
	}
	while (in[n] != NULL) {
		n++;
	}
	v = calloc(n + 1, sizeof(*v));
	if (v == NULL) {
		return -1;
	}
	for (i = 0; i < n; i++) {
		v[i] = strdup(in[i]);
		if (v[i] == NULL) {
			strv_free(v);
			return -1;
		}
	}
	*out = v;
	return 0;
}

static int
str_dup_opt(const char *in, char **out)
{
	*out = NULL;
	if (in == NULL) {
		return 0;
	}
	*out = strdup(in);
	return *out == NULL ? -1 : 0;
}

static void
spec_copy_free(struct spec_copy *c)
{
	strv_free(c->argv);
	strv_free(c->env);
	free(c->cwd);
	free(c->log_path);
	free(c->user);
	free(c->group);
	free(c->ready_arg);
	memset(c, 0, sizeof(*c));
}

static int
spec_copy_make(const struct proc_spec *in, const char *ready_arg, struct spec_copy *out)
{
	struct spec_copy c;

	memset(&c, 0, sizeof(c));
	if (in == NULL || in->argv == NULL || in->argv[0] == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (strv_dup(in->argv, &c.argv) != 0 || strv_dup(in->env_add, &c.env) != 0 ||
	    str_dup_opt(in->cwd, &c.cwd) != 0 || str_dup_opt(in->log_path, &c.log_path) != 0 ||
	    str_dup_opt(in->user, &c.user) != 0 || str_dup_opt(in->group, &c.group) != 0 ||
	    str_dup_opt(ready_arg, &c.ready_arg) != 0) {
		spec_copy_free(&c);
		errno = ENOMEM;
		return -1;
	}
	proc_spec_init(&c.spec);
	c.spec.argv = (const char *const *)c.argv;
	c.spec.env_add = (const char *const *)c.env;
	c.spec.cwd = c.cwd;
	c.spec.log_path = c.log_path;
	c.spec.user = c.user;
	c.spec.group = c.group;
	c.spec.clear_env = in->clear_env;
	c.spec.keep_fd = in->keep_fd;
	*out = c;
	return 0;
}

void
supervisor_opts_init(struct supervisor_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->name = "agent";
	sup_config_defaults(&o->cfg);
}

static void
queue_event(struct supervisor *sv, enum supervisor_event_kind kind, int status, int expected,
    const char *error)
{
	struct sv_event *e;

	if (sv->on_event == NULL || sv->nq >= SV_MAX_EVENTS) {
		return;
	}
	e = &sv->q[sv->nq++];
	memset(e, 0, sizeof(*e));
	e->ev.kind = kind;
	e->ev.pid = sv->p.pid;
	e->ev.start_time = sv->p.start_time;
	e->ev.generation = sv->generation;
	e->ev.status = status;
	e->ev.expected = expected;
	if (error != NULL) {
		snprintf(e->error, sizeof(e->error), "%s", error);
		e->ev.error = e->error;
	}
}

/* Called with the lock held; drops it while the callbacks run. */
static void
dispatch_events(struct supervisor *sv)
{
	struct sv_event q[SV_MAX_EVENTS];
	unsigned n, i;

	while (sv->nq > 0) {
		n = sv->nq;
		memcpy(q, sv->q, n * sizeof(q[0]));
		sv->nq = 0;
		pthread_mutex_unlock(&sv->mu);
		for (i = 0; i < n; i++) {
			if (q[i].ev.error != NULL) {
				q[i].ev.error = q[i].error;
			}
			sv->on_event(sv->arg, &q[i].ev);
		}
		pthread_mutex_lock(&sv->mu);
	}
}

static void
wake_watcher(struct supervisor *sv)
{
	char c = 1;
	ssize_t w;

	do {
		w = write(sv->wake[1], &c, 1);
	} while (w < 0 && errno == EINTR);
	/* EAGAIN: the pipe is full, the watcher wakes up anyway. */
}

static void carry_out(struct supervisor *sv, enum sup_action act, int64_t now);

static void
note_crash_loop(struct supervisor *sv, int was_looping)
{
	if (!was_looping && sup_crash_looping(&sv->m)) {
		log_warnx("%s: crash loop: %u crashes within %lld ms", sv->name,
		    sup_recent_crashes(&sv->m, mono_ms()),
		    (long long)sv->m.cfg.crash_loop_window_ms);
		queue_event(sv, SUPERVISOR_EV_CRASH_LOOP, sv->m.last_status, 0, NULL);
	}
}

/* Close the readiness pipe; a process still waiting to say READY never will. */
static void
ready_close_locked(struct supervisor *sv)
{
	if (sv->ready_fd >= 0) {
		close(sv->ready_fd);
		sv->ready_fd = -1;
	}
	if (sv->ready == SV_READY_WAITING) {
		sv->ready = SV_READY_GONE;
	}
}

/* Read what the process wrote to its readiness pipe: READY, or the end of it. */
static void
ready_read_locked(struct supervisor *sv)
{
	char buf[SV_READY_BUF];
	ssize_t n;
	size_t room;

	if (sv->ready_fd < 0) {
		return;
	}
	n = read(sv->ready_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (n > 0) {
		room = sizeof(sv->ready_buf) - 1 - sv->ready_len;
		if ((size_t)n > room) {
			n = (ssize_t)room;
		}
		memcpy(sv->ready_buf + sv->ready_len, buf, (size_t)n);
		sv->ready_len += (size_t)n;
		sv->ready_buf[sv->ready_len] = '\0';
		if (strncmp(sv->ready_buf, "READY", 5) == 0) {
			sv->ready = SV_READY_SAID;
			log_info("%s: pid %ld is ready (%lld ms after its start)", sv->name,
			    (long)sv->p.pid, (long long)(mono_ms() - sv->m.started_at));
			ready_close_locked(sv);
		} else if (sv->ready_len >= 5 || memchr(sv->ready_buf, '\n', sv->ready_len) != NULL) {
			log_warnx("%s: pid %ld wrote something else than READY to its readiness pipe",
			    sv->name, (long)sv->p.pid);
			ready_close_locked(sv);
		}
		return;
	}
	ready_close_locked(sv); /* end of file (or an error): it will not say it now */
}

/*
 * The argv of a start with readiness: the spec's, then READY_ARG and the
 * number of FD (in NUM). ARGV must have room for the spec's argv + 3.
 */
static void
ready_argv(const struct spec_copy *c, int fd, char num[16], const char **argv)
{
	size_t n = 0;

	for (; c->argv[n] != NULL; n++) {
		argv[n] = c->argv[n];
	}
	(void)snprintf(num, 16, "%d", fd);
	argv[n++] = c->ready_arg;
	argv[n++] = num;
	argv[n] = NULL;
}

/*
 * Spawn the spec into P: with readiness declared, through a pipe whose write
 * end the child gets (READY_ARG N) and whose read end lands in *READ_FD.
 */
static int
spawn_spec_locked(struct supervisor *sv, struct proc *p, int *read_fd, struct err *e)
{
	struct proc_spec spec = sv->spec.spec;
	const char **argv = NULL;
	char num[16];
	int rp[2] = { -1, -1 }, rc;
	size_t n = 0;

	*read_fd = -1;
	if (sv->spec.ready_arg != NULL && spec.keep_fd < 0) {
		while (sv->spec.argv[n] != NULL) {
			n++;
		}
		argv = calloc(n + 3, sizeof(*argv));
		if (argv == NULL || pipe2(rp, O_CLOEXEC) != 0) {
			log_warn("%s: readiness pipe (starting without it)", sv->name);
			free(argv);
			argv = NULL;
		} else {
			ready_argv(&sv->spec, rp[1], num, argv);
			spec.argv = argv;
			spec.keep_fd = rp[1];
		}
	}
	rc = proc_spawn(&spec, p, e);
	if (rp[1] >= 0) {
		close(rp[1]);
	}
	free(argv);
	if (rc != 0) {
		if (rp[0] >= 0) {
			close(rp[0]);
		}
		return -1;
	}
	if (rp[0] >= 0 && fcntl(rp[0], F_SETFL, O_NONBLOCK) != 0) {
		log_warn("%s: readiness pipe", sv->name);
	}
	*read_fd = rp[0];
	return 0;
}

static void
spawn_locked(struct supervisor *sv, int64_t now)
{
	struct proc p = PROC_INIT;
	struct err e = ERR_INIT;
	int was_looping = sup_crash_looping(&sv->m), rfd;
	enum sup_action act;

	ready_close_locked(sv);
	sv->ready = SV_READY_NONE;
	if (spawn_spec_locked(sv, &p, &rfd, &e) != 0) {
		log_warnx("%s: %s", sv->name, err_msg(&e));
		snprintf(sv->last_error, sizeof(sv->last_error), "%s", err_msg(&e));
		queue_event(sv, SUPERVISOR_EV_SPAWN_FAILED, -1, 0, err_msg(&e));
		act = sup_spawned(&sv->m, now, 0);
		note_crash_loop(sv, was_looping);
		carry_out(sv, act, now);
		return;
	}
	sv->p = p;
	sv->generation++;
	sv->adopted = 0;
	sv->ready_fd = rfd;
	sv->ready = rfd >= 0 ? SV_READY_WAITING : SV_READY_NONE;
	sv->ready_len = 0;
	sv->ready_buf[0] = '\0';
	sv->last_error[0] = '\0';
	log_info("%s: started pid %ld", sv->name, (long)p.pid);
	queue_event(sv, SUPERVISOR_EV_SPAWNED, -1, 0, NULL);
	act = sup_spawned(&sv->m, now, 1);
	carry_out(sv, act, now);
}

static void
signal_locked(struct supervisor *sv, int sig)
{
	if (sv->p.pid == 0) {
		return;
	}
	if (proc_signal(&sv->p, sig) < 0) {
		log_warn("%s: signal %d to %ld", sv->name, sig, (long)sv->p.pid);
	}
	if (sig == SIGTERM && proc_signal(&sv->p, SIGCONT) < 0) {
		log_warn("%s: SIGCONT to %ld", sv->name, (long)sv->p.pid);
	}
}

static void
carry_out(struct supervisor *sv, enum sup_action act, int64_t now)
{
	switch (act) {
	case SUP_ACT_NONE:
		break;
	case SUP_ACT_SPAWN:
		spawn_locked(sv, now);
		break;
	case SUP_ACT_TERM:
		signal_locked(sv, SIGTERM);
		break;
	case SUP_ACT_KILL:
		log_warnx("%s: pid %ld still running %lld ms after SIGTERM: SIGKILL", sv->name,
		    (long)sv->p.pid, (long long)sv->m.cfg.stop_grace_ms);
		signal_locked(sv, SIGKILL);
		break;
	}
}

/* The process is gone (P reaped or seen gone): feed the machine. */
static void
handle_exit_locked(struct supervisor *sv, int64_t now)
{
	char buf[96];
	int status = sv->p.status;
	int expected = sup_state(&sv->m) == SUP_STOPPING;
	int was_looping = sup_crash_looping(&sv->m);
	enum sup_action act;

	if (expected) {
		log_info("%s: pid %ld %s", sv->name, (long)sv->p.pid,
		    proc_status_str(status, buf, sizeof(buf)));
	} else {
		log_warnx("%s: pid %ld %s unexpectedly", sv->name, (long)sv->p.pid,
		    proc_status_str(status, buf, sizeof(buf)));
	}
	queue_event(sv, SUPERVISOR_EV_EXITED, status, expected, NULL);
	sv->exit_generation = sv->generation;
	sv->exit_status = status;
	ready_read_locked(sv); /* a READY written just before the exit still counts */
	ready_close_locked(sv);
	proc_release(&sv->p);
	act = sup_exited(&sv->m, now, status);
	note_crash_loop(sv, was_looping);
	carry_out(sv, act, now);
}

static void
check_locked(struct supervisor *sv)
{
	int64_t now = mono_ms();
	int r;

	if (sv->p.pid != 0) {
		r = proc_poll(&sv->p);
		if (r == 1) {
			handle_exit_locked(sv, now);
		} else if (r < 0) {
			/* Never forget a live process; just do not spin on its pidfd. */
			log_warn("%s: watching pid %ld", sv->name, (long)sv->p.pid);
			sv->watch_error = 1;
		} else {
			sv->watch_error = 0;
		}
	}
	if (now >= sup_deadline(&sv->m)) {
		carry_out(sv, sup_timer(&sv->m, now), now);
	}
	pthread_cond_broadcast(&sv->cv);
}

static void *
watcher_main(void *arg)
{
	struct supervisor *sv = arg;
	struct pollfd pfd[3];
	char drain[64];
	int64_t deadline;
	int timeout, nfds, rslot;

	pthread_mutex_lock(&sv->mu);
	while (!sv->quit) {
		deadline = sup_deadline(&sv->m);
		timeout = deadline == INT64_MAX ? -1 : ms_until(deadline);
		pfd[0].fd = sv->wake[0];
		pfd[0].events = POLLIN;
		pfd[0].revents = 0;
		nfds = 1;
		if (sv->p.pid != 0 && sv->p.pidfd >= 0 && !sv->watch_error) {
			pfd[1].fd = sv->p.pidfd;
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfds = 2;
		} else if (sv->p.pid != 0 && (timeout < 0 || timeout > SV_FALLBACK_POLL_MS)) {
			timeout = SV_FALLBACK_POLL_MS;
		}
		rslot = -1;
		if (sv->ready_fd >= 0) {
			rslot = nfds++;
			pfd[rslot].fd = sv->ready_fd;
			pfd[rslot].events = POLLIN;
			pfd[rslot].revents = 0;
		}
		pthread_mutex_unlock(&sv->mu);
		if (poll(pfd, (nfds_t)nfds, timeout) < 0 && errno != EINTR) {
			log_warn("supervisor poll");
		}
		if (pfd[0].revents & POLLIN) {
			while (read(sv->wake[0], drain, sizeof(drain)) > 0) {
				continue;
			}
		}
		pthread_mutex_lock(&sv->mu);
		if (sv->quit) {
			break;
		}
		if (rslot >= 0 && pfd[rslot].revents != 0) {
			ready_read_locked(sv);
		}
		check_locked(sv);
		dispatch_events(sv);
	}
	pthread_mutex_unlock(&sv->mu);
	return NULL;
}

int
supervisor_new(const struct supervisor_opts *o, struct supervisor **out, struct err *e)
{
	struct supervisor *sv;
	pthread_condattr_t ca;
	int rc;

	if (sup_config_check(&o->cfg, e) != 0) {
		return -1;
	}
	sv = calloc(1, sizeof(*sv));
	if (sv == NULL) {
		return err_sys(e, "supervisor");
	}
	sv->wake[0] = sv->wake[1] = -1;
	sv->ready_fd = -1;
	proc_init(&sv->p);
	sup_init(&sv->m, &o->cfg);
	sv->on_event = o->on_event;
	sv->arg = o->arg;
	pthread_mutex_init(&sv->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sv->cv, &ca);
	pthread_condattr_destroy(&ca);
	sv->name = strdup(o->name != NULL ? o->name : "agent");
	if (sv->name == NULL || spec_copy_make(o->spec, o->ready_arg, &sv->spec) != 0) {
		if (errno == EINVAL) {
			err_set(e, ERR_INTERNAL, "supervisor: no program to run");
		} else {
			err_sys(e, "supervisor");
		}
		goto fail;
	}
	if (pipe2(sv->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		err_sys(e, "supervisor: pipe");
		goto fail;
	}
	rc = pthread_create(&sv->thread, NULL, watcher_main, sv);
	if (rc != 0) {
		errno = rc;
		err_sys(e, "supervisor: thread");
		goto fail;
	}
	sv->thread_started = 1;
	*out = sv;
	return 0;
fail:
	supervisor_free(sv);
	return -1;
}

void
supervisor_free(struct supervisor *sv)
{
	if (sv == NULL) {
		return;
	}
	if (sv->thread_started) {
		pthread_mutex_lock(&sv->mu);
		sv->quit = 1;
		pthread_mutex_unlock(&sv->mu);
		wake_watcher(sv);
		pthread_join(sv->thread, NULL);
	}
	if (sv->p.pid != 0) {
		log_info("%s: leaving pid %ld running", sv->name, (long)sv->p.pid);
	}
	proc_release(&sv->p);
	if (sv->ready_fd >= 0) {
		close(sv->ready_fd);
	}
	if (sv->wake[0] >= 0) {
		close(sv->wake[0]);
	}
	if (sv->wake[1] >= 0) {
		close(sv->wake[1]);
	}
	spec_copy_free(&sv->spec);
	free(sv->name);
	pthread_cond_destroy(&sv->cv);
	pthread_mutex_destroy(&sv->mu);
	free(sv);
}

int
supervisor_start(struct supervisor *sv, struct err *e)
{
	enum sup_state st;
	int64_t now;
	int rc = 0;

	pthread_mutex_lock(&sv->mu);
	if (sup_state(&sv->m) == SUP_STOPPING) {
		pthread_mutex_unlock(&sv->mu);
		return err_set(e, ERR_BUSY, "%s: a stop is in progress", sv->name);
	}
	now = mono_ms();
	carry_out(sv, sup_want_up(&sv->m, now), now);
	st = sup_state(&sv->m);
	if (st != SUP_STARTING && st != SUP_RUNNING) {
		/* The spawn failed: the machine retries with backoff. */
		rc = err_set(e, ERR_IO, "%s", sv->last_error);
	}
	wake_watcher(sv);
	dispatch_events(sv);
	pthread_mutex_unlock(&sv->mu);
	return rc;
}

int
supervisor_signal_generation(struct supervisor *sv, uint64_t generation, int sig)
{
	int r = -1;

	pthread_mutex_lock(&sv->mu);
	if (sv->generation == generation && sv->p.pid != 0) {
		signal_locked(sv, sig);
		r = 0;
	}
	pthread_mutex_unlock(&sv->mu);
	return r;
}

int
supervisor_stop(struct supervisor *sv, struct err *e)
{
	struct timespec ts;
	int64_t now;
	int rc = 0, wr = 0;

	pthread_mutex_lock(&sv->mu);
	now = mono_ms();
	carry_out(sv, sup_want_down(&sv->m, now), now);
	wake_watcher(sv);
	timespec_after_ms(CLOCK_MONOTONIC, sv->m.cfg.stop_grace_ms + SV_STOP_EXTRA_MS, &ts);
	while (sv->p.pid != 0 && sup_state(&sv->m) != SUP_STOPPED && wr != ETIMEDOUT) {
		wr = pthread_cond_timedwait(&sv->cv, &sv->mu, &ts);
	}
	if (sv->p.pid != 0) {
		rc = err_set(e, ERR_IO, "%s: pid %ld still running %lld ms after SIGTERM",
		    sv->name, (long)sv->p.pid,
		    (long long)(sv->m.cfg.stop_grace_ms + SV_STOP_EXTRA_MS));
	}
	dispatch_events(sv);
	pthread_mutex_unlock(&sv->mu);
	return rc;
}

int
supervisor_set_spec(struct supervisor *sv, const struct proc_spec *spec,
    const char *ready_arg)
{
	struct spec_copy c;

	if (spec_copy_make(spec, ready_arg, &c) != 0) {
		return -1;
	}
	pthread_mutex_lock(&sv->mu);
	spec_copy_free(&sv->spec);
	sv->spec = c;
	pthread_mutex_unlock(&sv->mu);
	return 0;
}

/* Age of a process from its start time in clock ticks since boot. */
static int64_t
age_ms_of(unsigned long long start_ticks)
{
	struct timespec ts;
	long hz = sysconf(_SC_CLK_TCK);
	int64_t boot_ms, start_ms;

	if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &ts) != 0) {
		return 0;
	}
	boot_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	start_ms = (int64_t)(start_ticks * 1000ULL / (unsigned long long)hz);
	return boot_ms > start_ms ? boot_ms - start_ms : 0;
}

int
supervisor_adopt(struct supervisor *sv, pid_t pid, unsigned long long start_time,
    const char *exe_path, struct err *e)
{
	struct proc p = PROC_INIT;

	pthread_mutex_lock(&sv->mu);
	if (sv->p.pid != 0 || sup_state(&sv->m) != SUP_STOPPED) {
		pthread_mutex_unlock(&sv->mu);
		return err_set(e, ERR_BUSY, "%s: already supervising a process", sv->name);
	}
	if (proc_adopt(pid, start_time, exe_path, &p, e) != 0) {
		pthread_mutex_unlock(&sv->mu);
		return -1; /* gone: not_found; another executable: conflict */
	}
	sv->p = p;
	sv->generation++;
	sv->adopted = 1;
	/* An adopted process has no readiness pipe: it told the updater that started it. */
	ready_close_locked(sv);
	sv->ready = SV_READY_NONE;
	sup_adopted(&sv->m, mono_ms(), age_ms_of(start_time));
	log_info("%s: adopted pid %ld", sv->name, (long)pid);
	wake_watcher(sv);
	pthread_mutex_unlock(&sv->mu);
	return 0;
}

int
supervisor_kill_stray(struct supervisor *sv, pid_t pid, unsigned long long start_time,
    struct err *e)
{
	struct proc p = PROC_INIT;
	int r;

	if (proc_adopt(pid, start_time, NULL, &p, e) != 0) {
		if (e != NULL && e->kind == ERR_NOT_FOUND) {
			err_clear(e); /* already gone */
			return 0;
		}
		return -1;
	}
	log_info("%s: stopping stray pid %ld", sv->name, (long)pid);
	r = proc_stop(&p, (int)sv->m.cfg.stop_grace_ms, e);
	proc_release(&p);
	return r < 0 ? -1 : 0;
}

/* With the lock: the exit of start GENERATION was seen (or it was replaced). */
static int
ready_exited_locked(struct supervisor *sv, uint64_t generation, int *status)
{
	if (sv->generation == generation && sv->p.pid != 0) {
		return 0;
	}
	if (status != NULL) {
		*status = sv->exit_generation == generation ? sv->exit_status : -1;
	}
	return 1;
}

enum supervisor_ready
supervisor_wait_ready(struct supervisor *sv, uint64_t generation, int timeout_ms, int *status)
{
	enum supervisor_ready r = SUPERVISOR_NOT_READY;
	struct timespec ts;
	int wr = 0, grace = 0;
	int64_t end = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	if (status != NULL) {
		*status = -1;
	}
	timespec_after_ms(CLOCK_MONOTONIC, timeout_ms > 0 ? timeout_ms : 0, &ts);
	pthread_mutex_lock(&sv->mu);
	for (;;) {
		if (sv->generation == generation && sv->ready == SV_READY_SAID) {
			r = SUPERVISOR_READY; /* even if it exited since: the probe sees that */
			break;
		}
		if (ready_exited_locked(sv, generation, status)) {
			r = SUPERVISOR_READY_EXITED;
			break;
		}
		if (sv->ready == SV_READY_NONE) {
			r = SUPERVISOR_READY_NONE;
			break;
		}
		if (sv->ready == SV_READY_GONE) {
			r = SUPERVISOR_READY_GONE;
			if (!grace) {
				/* Closed: most often the process is exiting; give its exit
				 * a moment (never longer than the caller's timeout). */
				grace = 1;
				if (mono_ms() + SV_READY_EXIT_GRACE_MS < end) {
					wr = 0;
					timespec_after_ms(CLOCK_MONOTONIC, SV_READY_EXIT_GRACE_MS, &ts);
				}
			}
		}
		if (wr == ETIMEDOUT) {
			break;
		}
		wr = pthread_cond_timedwait(&sv->cv, &sv->mu, &ts);
	}
	pthread_mutex_unlock(&sv->mu);
	return r;
}

int
supervisor_alive(struct supervisor *sv, uint64_t generation)
{
	int alive;

	pthread_mutex_lock(&sv->mu);
	alive = sv->p.pid != 0 && sv->generation == generation && proc_alive(&sv->p);
	pthread_mutex_unlock(&sv->mu);
	return alive;
}

int
supervisor_watch_alive(void *arg)
{
	const struct supervisor_watch *w = arg;

	return supervisor_alive(w->sv, w->generation);
}

void
supervisor_status(struct supervisor *sv, struct supervisor_status *st)
{
	int64_t now = mono_ms();
	int64_t dl;
	enum sup_state state;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&sv->mu);
	state = sup_state(&sv->m);
	st->state = state;
	st->crash_looping = sup_crash_looping(&sv->m);
	st->pid = sv->p.pid;
	st->start_time = sv->p.start_time;
	st->generation = sv->generation;
	st->adopted = sv->p.pid != 0 && sv->adopted;
	st->uptime_ms = sv->p.pid != 0 && sv->m.started_at != INT64_MIN ?
	    now - sv->m.started_at : 0;
	st->restarts = sv->m.restarts;
	st->recent_crashes = sup_recent_crashes(&sv->m, now);
	st->last_status = sv->m.last_status;
	dl = sup_deadline(&sv->m);
	st->next_start_in_ms = -1;
	if ((state == SUP_BACKOFF || state == SUP_CRASH_LOOP) && dl != INT64_MAX) {
		st->next_start_in_ms = dl > now ? dl - now : 0;
	}
	snprintf(st->last_error, sizeof(st->last_error), "%s", sv->last_error);
	/* Only the process running now: its own pipe, its own READY. */
	st->ready_declared = sv->p.pid != 0 && sv->ready != SV_READY_NONE;
	st->ready = sv->p.pid != 0 && sv->ready == SV_READY_SAID;
	pthread_mutex_unlock(&sv->mu);
}

int
supervisor_status_json(const struct supervisor_status *st, cJSON *obj)
{
	char buf[96];

	if (json_add_str(obj, "state", sup_state_name(st->state)) != 0) {
		return -1;
	}
	if ((st->pid != 0 ? json_add_int(obj, "pid", st->pid) : json_add_item(obj, "pid",
	    cJSON_CreateNull())) != 0) {
		return -1;
	}
	if (json_add_bool(obj, "crash_loop", st->crash_looping) != 0 ||
	    json_add_bool(obj, "adopted", st->adopted) != 0 ||
	    json_add_int(obj, "restarts", st->restarts) != 0 ||
	    json_add_int(obj, "recent_crashes", st->recent_crashes) != 0 ||
	    json_add_int(obj, "uptime_ms", st->uptime_ms) != 0) {
		return -1;
	}
	if (json_add_str(obj, "last_exit", st->last_status == -1 ? NULL :
	    proc_status_str(st->last_status, buf, sizeof(buf))) != 0) {
		return -1;
	}
	if ((st->next_start_in_ms >= 0 ? json_add_int(obj, "next_start_in_ms",
	    st->next_start_in_ms) : json_add_item(obj, "next_start_in_ms",
	    cJSON_CreateNull())) != 0) {
		return -1;
	}
	if (json_add_str(obj, "last_error", st->last_error[0] != '\0' ? st->last_error : NULL) != 0) {
		return -1;
	}
	return json_add_bool(obj, "ready_declared", st->ready_declared) != 0 ||
		json_add_bool(obj, "ready", st->ready) != 0
	    ? -1
	    : 0;
}
