/*
 * updater/supervise: the pure state machine under a fake clock (every
 * deadline checked to the millisecond), then the driver with real /bin/sh
 * children and short timings. The driver reports events through a pipe the
 * test polls with deadlines: no sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "updater/supervise.h"

/* ---- pure machine, fake clock ---- */

static void
cfg_small(struct sup_config *c)
{
	sup_config_defaults(c);
	c->backoff_min_ms = 500;
	c->backoff_max_ms = 4000;
	c->min_spacing_ms = 1000;
	c->running_after_ms = 1000;
	c->stable_ms = 60000;
	c->crash_loop_count = 100; /* off unless a test lowers it */
	c->crash_loop_window_ms = 60000;
	c->crash_loop_retry_ms = 30000;
	c->stop_grace_ms = 5000;
}

/* Start at NOW and report a successful spawn. */
static void
start_ok(struct sup *s, int64_t now)
{
	assert_int_equal(sup_want_up(s, now), SUP_ACT_SPAWN);
	assert_int_equal(sup_state(s), SUP_STARTING);
	assert_int_equal(sup_spawned(s, now, 1), SUP_ACT_NONE);
}

/* From BACKOFF/CRASH_LOOP: nothing before the deadline, SPAWN at it. */
static int64_t
restart_at_deadline(struct sup *s)
{
	int64_t dl = sup_deadline(s);

	assert_true(dl != INT64_MAX);
	assert_int_equal(sup_timer(s, dl - 1), SUP_ACT_NONE);
	assert_int_equal(sup_timer(s, dl), SUP_ACT_SPAWN);
	assert_int_equal(sup_state(s), SUP_STARTING);
	assert_int_equal(sup_spawned(s, dl, 1), SUP_ACT_NONE);
	return dl;
}

static void
test_config_check(void **state)
{
	struct sup_config c;
	struct err e = ERR_INIT;

	(void)state;
	sup_config_defaults(&c);
	assert_int_equal(sup_config_check(&c, &e), 0);
	c.backoff_max_ms = c.backoff_min_ms - 1;
	assert_int_equal(sup_config_check(&c, &e), -1);
	assert_non_null(strstr(err_msg(&e), "backoff_max_ms"));
	assert_int_equal(e.kind, ERR_CONFIG);
	sup_config_defaults(&c);
	c.crash_loop_count = 0;
	assert_int_equal(sup_config_check(&c, &e), -1);
	c.crash_loop_count = SUP_MAX_CRASHES + 1;
	assert_int_equal(sup_config_check(&c, &e), -1);
	sup_config_defaults(&c);
	c.stop_grace_ms = 0;
	assert_int_equal(sup_config_check(&c, &e), -1);
	sup_config_defaults(&c);
	c.crash_loop_retry_ms = -1; /* allowed: wait for an explicit start */
	assert_int_equal(sup_config_check(&c, &e), 0);
}

static void
test_start_to_running(void **state)
{
	struct sup_config c;
	struct sup s;

	(void)state;
	cfg_small(&c);
	sup_init(&s, &c);
	assert_int_equal(sup_state(&s), SUP_STOPPED);
	assert_true(sup_deadline(&s) == INT64_MAX);
	assert_int_equal(sup_timer(&s, 123456), SUP_ACT_NONE);
	assert_int_equal(sup_want_up(&s, 1000), SUP_ACT_SPAWN);
	/* Nothing scheduled until the spawn is reported. */
	assert_true(sup_deadline(&s) == INT64_MAX);
	assert_int_equal(sup_spawned(&s, 1005, 1), SUP_ACT_NONE);
	assert_true(sup_deadline(&s) == 2005);
	assert_int_equal(sup_timer(&s, 2004), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_STARTING);
	assert_int_equal(sup_timer(&s, 2005), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_RUNNING);
	/* A second want_up while running does nothing. */
	assert_int_equal(sup_want_up(&s, 3000), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_RUNNING);
	assert_string_equal(sup_state_name(SUP_CRASH_LOOP), "crash_loop");
	assert_string_equal(sup_state_name(sup_state(&s)), "running");
}

static void
test_backoff_doubles_with_spacing_and_cap(void **state)
{
	struct sup_config c;
	struct sup s;
	int64_t t;

	(void)state;
	cfg_small(&c);
	sup_init(&s, &c);
	start_ok(&s, 0);
	/* Crash 1 at 10: backoff 500 would be 510, but min spacing is 1000 after the start. */
	assert_int_equal(sup_exited(&s, 10, 256), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_BACKOFF);
	assert_true(sup_deadline(&s) == 1000);
	t = restart_at_deadline(&s);
	assert_int_equal(s.restarts, 1);
	/* Crash 2 at t+10: 1000 ms. */
	assert_int_equal(sup_exited(&s, t + 10, 256), SUP_ACT_NONE);
	assert_true(sup_deadline(&s) == t + 1010);
	t = restart_at_deadline(&s);
	/* Crash 3: 2000, crash 4: 4000, crash 5: capped at 4000. */
	assert_int_equal(sup_exited(&s, t + 10, 256), SUP_ACT_NONE);
	assert_true(sup_deadline(&s) == t + 2010);
	t = restart_at_deadline(&s);
	assert_int_equal(sup_exited(&s, t + 10, 256), SUP_ACT_NONE);
	assert_true(sup_deadline(&s) == t + 4010);
	t = restart_at_deadline(&s);
	assert_int_equal(sup_exited(&s, t + 10, 256), SUP_ACT_NONE);
	assert_true(sup_deadline(&s) == t + 4010);
	assert_int_equal(s.restarts, 4);
	assert_false(sup_crash_looping(&s));
	assert_int_equal(s.last_status, 256);

	/* A clean exit (status 0) of a daemon nobody stopped is a crash too. */
	t = restart_at_deadline(&s);
	assert_int_equal(sup_exited(&s, t + 5000, 0), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_BACKOFF);
}

static void
test_min_spacing_after_long_run(void **state)
{
	struct sup_config c;
	struct sup s;

	(void)state;
	cfg_small(&c);
	c.min_spacing_ms = 3000;
	c.backoff_min_ms = 100;
	sup_init(&s, &c);
	start_ok(&s, 0);
	/* Ran 5 s: spacing already satisfied, plain backoff applies. */
	assert_int_equal(sup_timer(&s, 1000), SUP_ACT_NONE);
	assert_int_equal(sup_exited(&s, 5000, 9), SUP_ACT_NONE);
	assert_true(sup_deadline(&s) == 5100);
}

static void
test_crash_loop_detected_and_retry(void **state)
{
	struct sup_config c;
	struct sup s;
	int64_t t;

	(void)state;
	cfg_small(&c);
	c.crash_loop_count = 3;
	c.crash_loop_window_ms = 10000;
	c.crash_loop_retry_ms = 30000;
	sup_init(&s, &c);
	start_ok(&s, 0);
	assert_int_equal(sup_exited(&s, 100, 256), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_BACKOFF);
	t = restart_at_deadline(&s);
	assert_int_equal(sup_exited(&s, t + 100, 256), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_BACKOFF);
	assert_int_equal(sup_recent_crashes(&s, t + 100), 2);
	t = restart_at_deadline(&s);
	/* Third crash within 10 s. */
	assert_int_equal(sup_exited(&s, t + 100, 256), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_CRASH_LOOP);
	assert_true(sup_crash_looping(&s));
	assert_true(sup_deadline(&s) == t + 100 + 30000);
	/* The retry comes; the flag stays while it has not proven stable. */
	t = restart_at_deadline(&s);
	assert_true(sup_crash_looping(&s));
	assert_int_equal(sup_timer(&s, t + 1000), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_RUNNING);
	assert_true(sup_crash_looping(&s));
	/* Crashing again (outside the window now) goes straight back to CRASH_LOOP. */
	assert_int_equal(sup_recent_crashes(&s, t + 20000), 0);
	assert_int_equal(sup_exited(&s, t + 20000, 256), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_CRASH_LOOP);
	/* Stable for stable_ms: crash history and the flag are cleared. */
	t = restart_at_deadline(&s);
	assert_int_equal(sup_timer(&s, t + 1000), SUP_ACT_NONE);
	assert_true(sup_deadline(&s) == t + 60000);
	assert_int_equal(sup_timer(&s, t + 59999), SUP_ACT_NONE);
	assert_true(sup_crash_looping(&s));
	assert_int_equal(sup_timer(&s, t + 60000), SUP_ACT_NONE);
	assert_false(sup_crash_looping(&s));
	assert_true(sup_deadline(&s) == INT64_MAX);
	/* ... and the next crash starts the backoff from the minimum again. */
	assert_int_equal(sup_exited(&s, t + 70000, 256), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_BACKOFF);
	assert_true(sup_deadline(&s) == t + 70500);
}

static void
test_crash_loop_waits_for_explicit_start(void **state)
{
	struct sup_config c;
	struct sup s;
	int64_t t = 0;
	int i;

	(void)state;
	cfg_small(&c);
	c.crash_loop_count = 2;
	c.crash_loop_retry_ms = -1;
	sup_init(&s, &c);
	start_ok(&s, 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(sup_exited(&s, t + 10, 256), SUP_ACT_NONE);
		if (i == 0) {
			t = restart_at_deadline(&s);
		}
	}
	assert_int_equal(sup_state(&s), SUP_CRASH_LOOP);
	assert_true(sup_deadline(&s) == INT64_MAX);
	assert_int_equal(sup_timer(&s, t + 100000000), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_CRASH_LOOP);
	/* An explicit start (a new release) clears the slate and spawns at once. */
	assert_int_equal(sup_want_up(&s, t + 100000000), SUP_ACT_SPAWN);
	assert_false(sup_crash_looping(&s));
	assert_int_equal(sup_recent_crashes(&s, t + 100000000), 0);
	assert_int_equal(s.restarts, 0);
}

static void
test_window_spreads_crashes(void **state)
{
	struct sup_config c;
	struct sup s;
	int64_t t;
	int i;

	(void)state;
	cfg_small(&c);
	c.crash_loop_count = 3;
	c.crash_loop_window_ms = 5000;
	c.backoff_max_ms = 4000;
	sup_init(&s, &c);
	start_ok(&s, 0);
	t = 0;
	/* Crashes 6 s apart never gather 3 within 5 s. */
	for (i = 0; i < 6; i++) {
		assert_int_equal(sup_exited(&s, t + 6000, 256), SUP_ACT_NONE);
		assert_int_equal(sup_state(&s), SUP_BACKOFF);
		t = restart_at_deadline(&s);
	}
	assert_false(sup_crash_looping(&s));
}

static void
test_stop_term_then_kill(void **state)
{
	struct sup_config c;
	struct sup s;

	(void)state;
	cfg_small(&c);
	sup_init(&s, &c);
	start_ok(&s, 0);
	assert_int_equal(sup_timer(&s, 1000), SUP_ACT_NONE);
	assert_int_equal(sup_want_down(&s, 2000), SUP_ACT_TERM);
	assert_int_equal(sup_state(&s), SUP_STOPPING);
	assert_int_equal(sup_want_down(&s, 2001), SUP_ACT_NONE); /* no second TERM */
	assert_true(sup_deadline(&s) == 7000);
	assert_int_equal(sup_timer(&s, 6999), SUP_ACT_NONE);
	assert_int_equal(sup_timer(&s, 7000), SUP_ACT_KILL);
	assert_true(sup_deadline(&s) == INT64_MAX);
	assert_int_equal(sup_timer(&s, 9000), SUP_ACT_NONE);
	/* The exit ends it; it is no crash, and nothing restarts. */
	assert_int_equal(sup_exited(&s, 7010, 9), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_STOPPED);
	assert_int_equal(sup_recent_crashes(&s, 7010), 0);
	assert_true(sup_deadline(&s) == INT64_MAX);
	assert_int_equal(s.last_status, 9);
	/* A spurious exit report while stopped changes nothing. */
	assert_int_equal(sup_exited(&s, 8000, 0), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_STOPPED);
	/* Stopping what is not running is a no-op. */
	assert_int_equal(sup_want_down(&s, 9000), SUP_ACT_NONE);
}

static void
test_stop_during_backoff_and_restart_after_stop(void **state)
{
	struct sup_config c;
	struct sup s;

	(void)state;
	cfg_small(&c);
	sup_init(&s, &c);
	start_ok(&s, 0);
	assert_int_equal(sup_exited(&s, 50, 256), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_BACKOFF);
	assert_int_equal(sup_want_down(&s, 60), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_STOPPED);
	assert_true(sup_deadline(&s) == INT64_MAX);
	assert_int_equal(sup_timer(&s, 100000), SUP_ACT_NONE);

	/* want_up while STOPPING: the start follows the exit at once. */
	start_ok(&s, 200000);
	assert_int_equal(sup_want_down(&s, 200100), SUP_ACT_TERM);
	assert_int_equal(sup_want_up(&s, 200150), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_STOPPING);
	assert_int_equal(sup_exited(&s, 200200, 15), SUP_ACT_SPAWN);
	assert_int_equal(sup_state(&s), SUP_STARTING);
	assert_int_equal(sup_recent_crashes(&s, 200200), 0);
}

static void
test_spawn_failure_is_a_crash(void **state)
{
	struct sup_config c;
	struct sup s;

	(void)state;
	cfg_small(&c);
	sup_init(&s, &c);
	assert_int_equal(sup_want_up(&s, 0), SUP_ACT_SPAWN);
	assert_int_equal(sup_spawned(&s, 0, 0), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_BACKOFF);
	assert_int_equal(sup_recent_crashes(&s, 0), 1);
	assert_true(sup_deadline(&s) == 1000);
	assert_int_equal(s.last_status, -1);
	/* A spawn report out of place is ignored. */
	assert_int_equal(sup_spawned(&s, 10, 1), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_BACKOFF);
}

static void
test_adopted(void **state)
{
	struct sup_config c;
	struct sup s;

	(void)state;
	cfg_small(&c);
	sup_init(&s, &c);
	sup_adopted(&s, 100000, 5000);
	assert_int_equal(sup_state(&s), SUP_RUNNING);
	assert_true(sup_deadline(&s) == 100000 - 5000 + 60000);
	assert_int_equal(sup_exited(&s, 100500, -1), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_BACKOFF);
	assert_int_equal(s.last_status, -1);

	sup_init(&s, &c);
	sup_adopted(&s, 100000, 200); /* very young: still STARTING */
	assert_int_equal(sup_state(&s), SUP_STARTING);
	assert_true(sup_deadline(&s) == 100800);
	assert_int_equal(sup_timer(&s, 100800), SUP_ACT_NONE);
	assert_int_equal(sup_state(&s), SUP_RUNNING);
}

/* ---- the driver, real processes ---- */

struct drv {
	int ev[2]; /* on_event writes the kind as one byte */
	struct supervisor_event last_exit;
	pid_t last_spawn_pid;
	unsigned long long last_spawn_start;
	char last_error[256];
	pthread_mutex_t mu;
};

static void
on_event(void *arg, const struct supervisor_event *ev)
{
	struct drv *d = arg;
	char k = (char)ev->kind;

	pthread_mutex_lock(&d->mu);
	if (ev->kind == SUPERVISOR_EV_EXITED) {
		d->last_exit = *ev;
	} else if (ev->kind == SUPERVISOR_EV_SPAWNED) {
		d->last_spawn_pid = ev->pid;
		d->last_spawn_start = ev->start_time;
	} else if (ev->kind == SUPERVISOR_EV_SPAWN_FAILED) {
		snprintf(d->last_error, sizeof(d->last_error), "%s", ev->error);
	}
	pthread_mutex_unlock(&d->mu);
	/* Not a cmocka assert: this runs on the watcher thread. */
	if (write(d->ev[1], &k, 1) != 1) {
		abort();
	}
}

/* Wait for an event of KIND (others are skipped); 0 on timeout. */
static int
wait_event(struct drv *d, enum supervisor_event_kind kind, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	struct pollfd pfd = { .fd = d->ev[0], .events = POLLIN };
	char k;

	for (;;) {
		pfd.revents = 0;
		if (poll(&pfd, 1, ms_until(deadline)) != 1) {
			return 0;
		}
		assert_int_equal(read(d->ev[0], &k, 1), 1);
		if (k == (char)kind) {
			return 1;
		}
	}
}

static int
drv_setup(void **state)
{
	struct drv *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	assert_int_equal(pipe2(d->ev, O_CLOEXEC), 0);
	pthread_mutex_init(&d->mu, NULL);
	*state = d;
	return 0;
}

static int
drv_teardown(void **state)
{
	struct drv *d = *state;

	close(d->ev[0]);
	close(d->ev[1]);
	pthread_mutex_destroy(&d->mu);
	free(d);
	return 0;
}

static void
fast_opts(struct supervisor_opts *o, struct proc_spec *spec, const char *const *argv,
    struct drv *d)
{
	supervisor_opts_init(o);
	proc_spec_init(spec);
	spec->argv = argv;
	o->spec = spec;
	o->name = "test";
	o->cfg.backoff_min_ms = 20;
	o->cfg.backoff_max_ms = 80;
	o->cfg.min_spacing_ms = 30;
	o->cfg.running_after_ms = 50;
	o->cfg.stable_ms = 60000;
	o->cfg.crash_loop_count = 4;
	o->cfg.crash_loop_window_ms = 60000;
	o->cfg.crash_loop_retry_ms = -1;
	o->cfg.stop_grace_ms = 3000;
	o->on_event = on_event;
	o->arg = d;
}

static void
test_driver_start_stop(void **state)
{
	struct drv *d = *state;
	struct err e = ERR_INIT;
	static const char *const argv[] = { "/bin/sh", "-c", "exec sleep 120", NULL };
	struct supervisor_opts o;
	struct proc_spec spec;
	struct supervisor *sv = NULL;
	struct supervisor_status st;
	struct supervisor_watch w;
	cJSON *obj;
	char *txt;
	pid_t pid;

	fast_opts(&o, &spec, argv, d);
	assert_int_equal(supervisor_new(&o, &sv, &e), 0);
	supervisor_status(sv, &st);
	assert_int_equal(st.state, SUP_STOPPED);
	assert_int_equal(st.pid, 0);
	assert_int_equal(supervisor_start(sv, &e), 0);
	assert_true(wait_event(d, SUPERVISOR_EV_SPAWNED, 5000));
	supervisor_status(sv, &st);
	assert_true(st.state == SUP_STARTING || st.state == SUP_RUNNING);
	assert_true(st.pid > 0);
	assert_int_equal(st.generation, 1);
	assert_int_equal(d->last_spawn_pid, st.pid);
	assert_true(d->last_spawn_start == st.start_time);
	pid = st.pid;
	w.sv = sv;
	w.generation = st.generation;
	assert_int_equal(supervisor_watch_alive(&w), 1);
	assert_int_equal(supervisor_alive(sv, st.generation + 1), 0);
	/* Starting again while it runs changes nothing. */
	assert_int_equal(supervisor_start(sv, &e), 0);
	supervisor_status(sv, &st);
	assert_int_equal(st.pid, pid);

	obj = cJSON_CreateObject();
	assert_int_equal(supervisor_status_json(&st, obj), 0);
	txt = json_print_compact(obj);
	assert_non_null(strstr(txt, "\"crash_loop\":false"));
	assert_non_null(strstr(txt, "\"last_exit\":null"));
	assert_non_null(strstr(txt, "\"next_start_in_ms\":null"));
	free(txt);
	cJSON_Delete(obj);

	assert_int_equal(supervisor_stop(sv, &e), 0);
	supervisor_status(sv, &st);
	assert_int_equal(st.state, SUP_STOPPED);
	assert_int_equal(st.pid, 0);
	assert_int_equal(kill(pid, 0), -1); /* reaped: gone entirely */
	assert_int_equal(supervisor_watch_alive(&w), 0);
	assert_true(wait_event(d, SUPERVISOR_EV_EXITED, 5000));
	assert_true(d->last_exit.expected);
	assert_true(WIFSIGNALED(d->last_exit.status));
	assert_int_equal(WTERMSIG(d->last_exit.status), SIGTERM);
	/* Stopping again is fine. */
	assert_int_equal(supervisor_stop(sv, &e), 0);
	supervisor_free(sv);
}

/*
 * Readiness: the program gets "--ready-fd N" appended and writes READY to
 * fd N; "started" is that line. Without it (exit, silence, the pipe closed,
 * no readiness declared) supervisor_wait_ready() says so.
 */
static void
test_driver_readiness(void **state)
{
	struct drv *d = *state;
	struct err e = ERR_INIT;
	/* $1 is "--ready-fd", $2 the descriptor. bash, not sh: dash redirects only
	 * descriptors 0-9, and under make -O (its output files open) the pipe is
	 * above 9. */
	static const char *const ready[] = { "/bin/bash", "-c",
		"[ \"$1\" = --ready-fd ] || exit 9; sleep 0.2; echo READY port=1 >&$2; "
		"exec sleep 120", "sh", NULL };
	static const char *const silent[] = { "/bin/sh", "-c", "exec sleep 120", "sh", NULL };
	static const char *const quits[] = { "/bin/sh", "-c", "exit 4", "sh", NULL };
	static const char *const closes[] = { "/bin/bash", "-c", "exec 3>&- ; eval \"exec $2>&-\"; "
		"exec sleep 120", "sh", NULL };
	static const char *const no_args[] = { "/bin/sh", "-c", "[ $# -eq 0 ] || exit 9; "
		"exec sleep 120", "sh", NULL };
	struct supervisor_opts o;
	struct proc_spec spec;
	struct supervisor *sv = NULL;
	struct supervisor_status st;
	int64_t t0;

	fast_opts(&o, &spec, ready, d);
	o.ready_arg = "--ready-fd";
	assert_int_equal(supervisor_new(&o, &sv, &e), 0);
	t0 = mono_ms();
	assert_int_equal(supervisor_start(sv, &e), 0);
	supervisor_status(sv, &st);
	assert_int_equal(supervisor_wait_ready(sv, st.generation, 10000, NULL), SUPERVISOR_READY);
	assert_true(mono_ms() - t0 >= 150); /* it waited for the line, not just the spawn */
	assert_int_equal(supervisor_wait_ready(sv, st.generation, 0, NULL), SUPERVISOR_READY);
	assert_int_equal(supervisor_wait_ready(sv, st.generation + 1, 0, NULL),
	    SUPERVISOR_READY_EXITED); /* not the start that runs */
	/* What /health shows: declared, and said READY. */
	supervisor_status(sv, &st);
	assert_true(st.ready_declared);
	assert_true(st.ready);
	{
		cJSON *js = cJSON_CreateObject();
		assert_non_null(js);
		assert_int_equal(supervisor_status_json(&st, js), 0);
		assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(js, "ready_declared")));
		assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(js, "ready")));
		cJSON_Delete(js);
	}
	assert_int_equal(supervisor_stop(sv, &e), 0);
	supervisor_status(sv, &st);
	assert_false(st.ready_declared); /* nothing runs */
	assert_false(st.ready);

	/* Silent: not ready within the timeout, but still running. */
	spec.argv = silent;
	assert_int_equal(supervisor_set_spec(sv, &spec, "--ready-fd"), 0);
	assert_int_equal(supervisor_start(sv, &e), 0);
	supervisor_status(sv, &st);
	assert_int_equal(supervisor_wait_ready(sv, st.generation, 300, NULL), SUPERVISOR_NOT_READY);
	assert_int_equal(supervisor_alive(sv, st.generation), 1);
	supervisor_status(sv, &st);
	assert_true(st.ready_declared); /* declared, silent so far */
	assert_false(st.ready);
	assert_int_equal(supervisor_stop(sv, &e), 0);

	/* Exits before saying it: EXITED at once, with its wait status, every
	 * time (the pipe's end and the exit race: the exit is what counts). */
	spec.argv = quits;
	assert_int_equal(supervisor_set_spec(sv, &spec, "--ready-fd"), 0);
	for (int i = 0; i < 5; i++) {
		int status = 0;

		assert_int_equal(supervisor_start(sv, &e), 0);
		supervisor_status(sv, &st);
		t0 = mono_ms();
		assert_int_equal(supervisor_wait_ready(sv, st.generation, 10000, &status),
		    SUPERVISOR_READY_EXITED);
		assert_true(mono_ms() - t0 < 5000);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 4);
		assert_int_equal(supervisor_alive(sv, st.generation), 0);
		assert_int_equal(supervisor_stop(sv, &e), 0);
	}
	/* Closes the pipe and runs on: GONE (it will not say READY), not exited. */
	spec.argv = closes;
	assert_int_equal(supervisor_set_spec(sv, &spec, "--ready-fd"), 0);
	assert_int_equal(supervisor_start(sv, &e), 0);
	supervisor_status(sv, &st);
	assert_int_equal(supervisor_wait_ready(sv, st.generation, 10000, NULL), SUPERVISOR_READY_GONE);
	assert_int_equal(supervisor_alive(sv, st.generation), 1);
	assert_int_equal(supervisor_stop(sv, &e), 0);

	/* No readiness declared: only a probe can tell (and no argument is added). */
	spec.argv = no_args;
	assert_int_equal(supervisor_set_spec(sv, &spec, NULL), 0);
	assert_int_equal(supervisor_start(sv, &e), 0);
	supervisor_status(sv, &st);
	assert_int_equal(supervisor_wait_ready(sv, st.generation, 10000, NULL), SUPERVISOR_READY_NONE);
	supervisor_status(sv, &st);
	assert_false(st.ready_declared);
	assert_false(st.ready);
	t0 = mono_ms();
	while (mono_ms() - t0 < 300) {
		assert_int_equal(supervisor_alive(sv, st.generation), 1);
		usleep(20000);
	}
	assert_int_equal(supervisor_stop(sv, &e), 0);
	supervisor_free(sv);
}

static void
test_driver_restarts_then_crash_loop(void **state)
{
	struct drv *d = *state;
	struct err e = ERR_INIT;
	static const char *const argv[] = { "/bin/sh", "-c", "exit 3", NULL };
	struct supervisor_opts o;
	struct proc_spec spec;
	struct supervisor *sv = NULL;
	struct supervisor_status st;
	cJSON *obj;
	char *txt;
	int64_t t0 = mono_ms();

	fast_opts(&o, &spec, argv, d);
	assert_int_equal(supervisor_new(&o, &sv, &e), 0);
	assert_int_equal(supervisor_start(sv, &e), 0);
	assert_true(wait_event(d, SUPERVISOR_EV_CRASH_LOOP, 5000));
	/* 4 crashes; waits between starts >= 30, 40, 80 ms. */
	assert_true(mono_ms() - t0 >= 30 + 40 + 80);
	supervisor_status(sv, &st);
	assert_int_equal(st.state, SUP_CRASH_LOOP);
	assert_true(st.crash_looping);
	assert_int_equal(st.restarts, 3);
	assert_int_equal(st.recent_crashes, 4);
	assert_int_equal(st.generation, 4);
	assert_int_equal(st.pid, 0);
	assert_false(d->last_exit.expected);
	assert_int_equal(WEXITSTATUS(d->last_exit.status), 3);
	assert_int_equal(st.next_start_in_ms, -1); /* retry < 0: waits for a start */
	obj = cJSON_CreateObject();
	assert_int_equal(supervisor_status_json(&st, obj), 0);
	txt = json_print_compact(obj);
	assert_non_null(strstr(txt, "\"state\":\"crash_loop\""));
	assert_non_null(strstr(txt, "\"crash_loop\":true"));
	assert_non_null(strstr(txt, "\"last_exit\":\"exited with status 3\""));
	assert_non_null(strstr(txt, "\"pid\":null"));
	free(txt);
	cJSON_Delete(obj);
	assert_int_equal(supervisor_stop(sv, &e), 0);
	supervisor_status(sv, &st);
	assert_int_equal(st.state, SUP_STOPPED);
	supervisor_free(sv);
}

static void
test_driver_exec_failure(void **state)
{
	struct drv *d = *state;
	struct err e = ERR_INIT;
	static const char *const argv[] = { "/nonexistent/tandem-agent", NULL };
	static const char *const good[] = { "/bin/sh", "-c", "exec sleep 120", NULL };
	struct supervisor_opts o;
	struct proc_spec spec;
	struct supervisor *sv = NULL;
	struct supervisor_status st;

	fast_opts(&o, &spec, argv, d);
	assert_int_equal(supervisor_new(&o, &sv, &e), 0);
	assert_int_equal(supervisor_start(sv, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_string_equal(err_msg(&e), "exec /nonexistent/tandem-agent: No such file or directory");
	assert_true(wait_event(d, SUPERVISOR_EV_SPAWN_FAILED, 5000));
	supervisor_status(sv, &st);
	assert_true(st.state == SUP_BACKOFF || st.state == SUP_STARTING ||
	    st.state == SUP_CRASH_LOOP);
	assert_string_equal(st.last_error, err_msg(&e));
	/* It keeps failing into a crash loop, without any process ever running. */
	assert_true(wait_event(d, SUPERVISOR_EV_CRASH_LOOP, 5000));
	assert_int_equal(supervisor_stop(sv, &e), 0);
	/* A fixed program (a new release) then starts cleanly. */
	proc_spec_init(&spec);
	spec.argv = good;
	assert_int_equal(supervisor_set_spec(sv, &spec, NULL), 0);
	assert_int_equal(supervisor_start(sv, &e), 0);
	supervisor_status(sv, &st);
	assert_true(st.pid > 0);
	assert_false(st.crash_looping);
	assert_string_equal(st.last_error, "");
	assert_int_equal(supervisor_stop(sv, &e), 0);
	supervisor_free(sv);
}

static void
test_driver_stop_kills_after_grace(void **state)
{
	struct drv *d = *state;
	struct err e = ERR_INIT;
	char script[128];
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct supervisor_opts o;
	struct proc_spec spec;
	struct supervisor *sv = NULL;
	struct supervisor_status st;
	struct pollfd pfd;
	char c;
	int rep[2];
	int64_t t0;

	/* The child says when its SIGTERM trap is in place. */
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	snprintf(script, sizeof(script), "trap '' TERM; echo >&%d; exec sleep 120", rep[1]);
	fast_opts(&o, &spec, argv, d);
	spec.keep_fd = rep[1];
	o.cfg.stop_grace_ms = 200;
	assert_int_equal(supervisor_new(&o, &sv, &e), 0);
	assert_int_equal(supervisor_start(sv, &e), 0);
	pfd.fd = rep[0];
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(read(rep[0], &c, 1), 1);
	t0 = mono_ms();
	assert_int_equal(supervisor_stop(sv, &e), 0);
	assert_true(mono_ms() - t0 >= 190);
	assert_true(wait_event(d, SUPERVISOR_EV_EXITED, 5000));
	assert_int_equal(WTERMSIG(d->last_exit.status), SIGKILL);
	assert_true(d->last_exit.expected);
	supervisor_status(sv, &st);
	assert_int_equal(st.state, SUP_STOPPED);
	supervisor_free(sv);
	close(rep[0]);
	close(rep[1]);
}

static void
test_driver_crash_detected_and_restarted(void **state)
{
	struct drv *d = *state;
	struct err e = ERR_INIT;
	static const char *const argv[] = { "/bin/sh", "-c", "exec sleep 120", NULL };
	struct supervisor_opts o;
	struct proc_spec spec;
	struct supervisor *sv = NULL;
	struct supervisor_status st, st2;

	fast_opts(&o, &spec, argv, d);
	assert_int_equal(supervisor_new(&o, &sv, &e), 0);
	assert_int_equal(supervisor_start(sv, &e), 0);
	assert_true(wait_event(d, SUPERVISOR_EV_SPAWNED, 5000));
	supervisor_status(sv, &st);
	assert_int_equal(kill(st.pid, SIGKILL), 0);
	assert_true(wait_event(d, SUPERVISOR_EV_EXITED, 5000));
	assert_false(d->last_exit.expected);
	assert_int_equal(WTERMSIG(d->last_exit.status), SIGKILL);
	assert_int_equal(supervisor_alive(sv, st.generation), 0);
	assert_true(wait_event(d, SUPERVISOR_EV_SPAWNED, 5000));
	supervisor_status(sv, &st2);
	assert_true(st2.pid > 0 && st2.pid != st.pid);
	assert_int_equal(st2.generation, st.generation + 1);
	assert_int_equal(st2.restarts, 1);
	assert_int_equal(st2.recent_crashes, 1);
	assert_int_equal(supervisor_alive(sv, st2.generation), 1);
	assert_int_equal(supervisor_stop(sv, &e), 0);
	supervisor_free(sv);
}

static void
test_driver_adopt_and_stray(void **state)
{
	struct drv *d = *state;
	struct err e = ERR_INIT;
	static const char *const argv[] = { "/bin/sh", "-c", "exec sleep 120", NULL };
	int rep[2];
	char script[128], line[32];
	struct err pe = ERR_INIT;
	const char *spawn_argv[] = { "/bin/sh", "-c", script, NULL };
	struct supervisor_opts o;
	struct proc_spec spec, ospec;
	struct supervisor *sv = NULL;
	struct supervisor_status st;
	struct proc sh = PROC_INIT;
	struct pollfd pfd;
	unsigned long long start;
	long long v;
	pid_t orphan;
	ssize_t n;

	/* An orphaned "agent" left by an earlier updater. */
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	snprintf(script, sizeof(script), "(exec sleep 120) & echo $! >&%d", rep[1]);
	proc_spec_init(&ospec);
	ospec.argv = spawn_argv;
	ospec.keep_fd = rep[1];
	assert_int_equal(proc_spawn(&ospec, &sh, &pe), 0);
	pfd.fd = rep[0];
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	n = read(rep[0], line, sizeof(line) - 1);
	assert_true(n > 1);
	line[n - 1] = '\0';
	assert_int_equal(parse_ll(line, 2, INT32_MAX, &v), 0);
	orphan = (pid_t)v;
	assert_int_equal(waitpid(sh.pid, NULL, 0), sh.pid);
	proc_release(&sh);
	close(rep[0]);
	close(rep[1]);
	assert_int_equal(proc_start_time(orphan, &start), 0);
	{
		/* It reported its pid before exec: wait until it runs sleep. */
		int64_t dl = mono_ms() + 5000;
		struct stat a, b;
		char link[64];

		snprintf(link, sizeof(link), "/proc/%ld/exe", (long)orphan);
		assert_int_equal(stat("/bin/sleep", &b), 0);
		while (mono_ms() < dl && !(stat(link, &a) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)) {
			(void)poll(NULL, 0, 2);
		}
	}

	fast_opts(&o, &spec, argv, d);
	assert_int_equal(supervisor_new(&o, &sv, &e), 0);
	/* Wrong executable: refused; the caller stops it as a stray instead. */
	assert_int_equal(supervisor_adopt(sv, orphan, start, "/bin/sh", &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	assert_int_equal(supervisor_adopt(sv, orphan, start + 7, "/bin/sleep", &e),
	    -1);
	assert_int_equal(e.kind, ERR_NOT_FOUND);
	assert_int_equal(supervisor_adopt(sv, orphan, start, "/bin/sleep", &e), 0);
	supervisor_status(sv, &st);
	assert_int_equal(st.pid, orphan);
	assert_true(st.adopted);
	assert_true(st.state == SUP_RUNNING || st.state == SUP_STARTING);
	/* Only one process at a time. */
	assert_int_equal(supervisor_adopt(sv, orphan, start, "/bin/sleep", &e), -1);
	assert_int_equal(e.kind, ERR_BUSY);
	/* The adopted process dies: seen through the pidfd, restarted from the spec. */
	assert_int_equal(kill(orphan, SIGKILL), 0);
	assert_true(wait_event(d, SUPERVISOR_EV_EXITED, 5000));
	assert_int_equal(d->last_exit.status, -1);
	assert_true(wait_event(d, SUPERVISOR_EV_SPAWNED, 5000));
	supervisor_status(sv, &st);
	assert_true(st.pid > 0 && st.pid != orphan);
	assert_false(st.adopted);

	/* A stray (verified by start time only) is stopped; a gone one is fine. */
	{
		struct proc stray = PROC_INIT;
		static const char *const sargv[] = { "/bin/sh", "-c", "exec sleep 120", NULL };

		proc_spec_init(&ospec);
		ospec.argv = sargv;
		assert_int_equal(proc_spawn(&ospec, &stray, &pe), 0);
		assert_int_equal(supervisor_kill_stray(sv, stray.pid, stray.start_time + 1, &e), 0);
		assert_int_equal(proc_wait(&stray, 0), 0); /* wrong start time: untouched */
		assert_int_equal(supervisor_kill_stray(sv, stray.pid, stray.start_time, &e), 0);
		assert_int_equal(proc_wait(&stray, 5000), 1);
		assert_int_equal(WTERMSIG(stray.status), SIGTERM);
		proc_release(&stray);
	}
	assert_int_equal(supervisor_stop(sv, &e), 0);
	supervisor_free(sv);
}

static void
test_driver_free_leaves_process(void **state)
{
	struct drv *d = *state;
	struct err e = ERR_INIT;
	static const char *const argv[] = { "/bin/sh", "-c", "exec sleep 120", NULL };
	struct supervisor_opts o;
	struct proc_spec spec;
	struct supervisor *sv = NULL;
	struct supervisor_status st;
	struct proc p = PROC_INIT;
	struct err pe = ERR_INIT;

	fast_opts(&o, &spec, argv, d);
	o.spec = NULL;
	assert_int_equal(supervisor_new(&o, &sv, &e), -1);
	assert_non_null(strstr(err_msg(&e), "no program"));
	o.spec = &spec;
	o.cfg.backoff_max_ms = 1;
	assert_int_equal(supervisor_new(&o, &sv, &e), -1);
	o.cfg.backoff_max_ms = 80;
	assert_int_equal(supervisor_new(&o, &sv, &e), 0);
	assert_int_equal(supervisor_start(sv, &e), 0);
	supervisor_status(sv, &st);
	supervisor_free(sv);
	/* Still running (a restarted updater adopts it); clean up as its parent. */
	assert_int_equal(kill(st.pid, 0), 0);
	assert_int_equal(proc_adopt(st.pid, st.start_time, NULL, &p, &pe),
	    0);
	assert_int_equal(kill(st.pid, SIGKILL), 0);
	assert_int_equal(waitpid(st.pid, NULL, 0), st.pid);
	proc_release(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_start_to_running),
		cmocka_unit_test(test_backoff_doubles_with_spacing_and_cap),
		cmocka_unit_test(test_min_spacing_after_long_run),
		cmocka_unit_test(test_crash_loop_detected_and_retry),
		cmocka_unit_test(test_crash_loop_waits_for_explicit_start),
		cmocka_unit_test(test_window_spreads_crashes),
		cmocka_unit_test(test_stop_term_then_kill),
		cmocka_unit_test(test_stop_during_backoff_and_restart_after_stop),
		cmocka_unit_test(test_spawn_failure_is_a_crash),
		cmocka_unit_test(test_adopted),
		cmocka_unit_test_setup_teardown(test_driver_start_stop, drv_setup, drv_teardown),
		cmocka_unit_test_setup_teardown(test_driver_readiness, drv_setup, drv_teardown),
		cmocka_unit_test_setup_teardown(test_driver_restarts_then_crash_loop, drv_setup,
		    drv_teardown),
		cmocka_unit_test_setup_teardown(test_driver_exec_failure, drv_setup, drv_teardown),
		cmocka_unit_test_setup_teardown(test_driver_stop_kills_after_grace, drv_setup,
		    drv_teardown),
		cmocka_unit_test_setup_teardown(test_driver_crash_detected_and_restarted, drv_setup,
		    drv_teardown),
		cmocka_unit_test_setup_teardown(test_driver_adopt_and_stray, drv_setup,
		    drv_teardown),
		cmocka_unit_test_setup_teardown(test_driver_free_leaves_process, drv_setup,
		    drv_teardown),
	};

	log_init("test_supervise", LOG_LVL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
