/*
 * supervise — keep a child process running (the updater's agent).
 *
 * Two layers:
 *
 * 1. sup_*: a pure state machine. It never reads a clock, forks or signals:
 *    every call takes the current time NOW (milliseconds on any monotonic
 *    scale, e.g. mono_ms()) and returns the action the caller must carry
 *    out; sup_deadline() says when sup_timer() must be called next. Unit
 *    tests drive it with a fake clock.
 *
 *      STOPPED  --want_up-->  STARTING (action SPAWN)
 *      STARTING --running_after_ms alive-->  RUNNING
 *      STARTING/RUNNING --exited (not asked)-->  BACKOFF, or CRASH_LOOP when
 *               crash_loop_count exits fell within crash_loop_window_ms
 *      BACKOFF  --deadline-->  STARTING (SPAWN)
 *      CRASH_LOOP --crash_loop_retry_ms-->  STARTING (SPAWN); never if < 0
 *      STARTING/RUNNING --want_down-->  STOPPING (TERM); after stop_grace_ms
 *               the timer answers KILL; --exited-->  STOPPED (or STARTING if
 *               want_up came meanwhile)
 *      BACKOFF/CRASH_LOOP --want_down-->  STOPPED
 *
 *    Restart delays: backoff_min_ms doubling per consecutive crash up to
 *    backoff_max_ms, and never less than min_spacing_ms between two starts
 *    (start to start). A process alive for stable_ms clears the crash
 *    history and the backoff. An explicit want_up (an install, a rollback,
 *    an operator) also clears them: a new release starts with a clean slate.
 *    An unexpected exit with status 0 counts as a crash too: the agent is a
 *    daemon. A failed spawn (exec failed) counts as a crash at once.
 *
 * 2. supervisor_*: the thin driver over common/proc. One watcher thread
 *    polls the process's pidfd, a wake-up pipe and the machine's deadline,
 *    and carries out the actions; the other calls are thread-safe and may
 *    come from HTTP handler threads (the install pipeline).
 */
#ifndef TANDEM_UPDATER_SUPERVISE_H
#define TANDEM_UPDATER_SUPERVISE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cJSON.h"
#include "common/err.h"
#include "common/proc.h"
#include "common/util.h"

enum sup_state {
	SUP_STOPPED = 0,    /* no process, none wanted */
	SUP_STARTING = 1,   /* spawned, not yet running_after_ms old */
	SUP_RUNNING = 2,    /* alive */
	SUP_BACKOFF = 3,    /* crashed, waiting for the next start */
	SUP_CRASH_LOOP = 4, /* crashed too often, waiting crash_loop_retry_ms (or for want_up) */
	SUP_STOPPING = 5,   /* asked to stop, waiting for the exit */
};

/* What the caller must do after a sup_* call. */
enum sup_action {
	SUP_ACT_NONE = 0,
	SUP_ACT_SPAWN = 1, /* start the process, then report sup_spawned() */
	SUP_ACT_TERM = 2,  /* SIGTERM the process group */
	SUP_ACT_KILL = 3,  /* SIGKILL the process group (grace expired) */
};

/* Timings and thresholds. All times in ms. */
struct sup_config {
	int64_t backoff_min_ms;      /* first restart delay (500) */
	int64_t backoff_max_ms;      /* restart delay cap (30000) */
	int64_t min_spacing_ms;      /* least time between two starts (1000) */
	int64_t running_after_ms;    /* STARTING becomes RUNNING after this (1000) */
	int64_t stable_ms;           /* alive this long: crash history cleared (60000) */
	unsigned crash_loop_count;   /* this many crashes ... (5) */
	int64_t crash_loop_window_ms;/* ... within this window is a crash loop (60000) */
	int64_t crash_loop_retry_ms; /* retry after this in CRASH_LOOP; < 0: wait for want_up (60000) */
	int64_t stop_grace_ms;       /* SIGTERM to SIGKILL (5000) */
};

/* Fill C with the defaults above. */
void sup_config_defaults(struct sup_config *c);
/* 0 if C is coherent (all > 0 except crash_loop_retry_ms, min <= max,
 * crash_loop_count 1..SUP_MAX_CRASHES); else -1 with E (ERR_CONFIG). */
int sup_config_check(const struct sup_config *c, struct err *e) WUR;

#define SUP_MAX_CRASHES 64

/* The machine. Fields are private to supervise.c; read them via sup_*(). */
struct sup {
	struct sup_config cfg;
	enum sup_state state;
	int want_up;
	int crash_looping;       /* set on detection, cleared by stable_ms or want_up */
	int64_t deadline;        /* INT64_MAX: none */
	int64_t started_at;      /* last start (spawn or adopt); INT64_MIN: never */
	int64_t stable_at;       /* started_at + stable_ms while up */
	unsigned consecutive;    /* crashes since the last stable period / want_up */
	unsigned restarts;       /* automatic restarts since the last want_up */
	int64_t crashes[SUP_MAX_CRASHES]; /* times of recent crashes (ring) */
	unsigned ncrashes;
	unsigned crash_head;
	int last_status;         /* wait status of the last exit; -1: none/unknown */
};

void sup_init(struct sup *s, const struct sup_config *cfg);

/* Want the process up now (explicit start: clears backoff and crash history). */
enum sup_action sup_want_up(struct sup *s, int64_t now);
/* Want it down: TERM if one runs, STOPPED at once if none does. */
enum sup_action sup_want_down(struct sup *s, int64_t now);
/* Result of a SPAWN action: OK 1 (running: STARTING) or 0 (counts as a crash). */
enum sup_action sup_spawned(struct sup *s, int64_t now, int ok);
/* A process started elsewhere was adopted: RUNNING (if old enough) and wanted up. */
void sup_adopted(struct sup *s, int64_t now, int64_t age_ms);
/* The process exited with wait STATUS (-1: unknown, e.g. adopted). */
enum sup_action sup_exited(struct sup *s, int64_t now, int status);
/* Time passed: call at (or after) sup_deadline(). Harmless when early. */
enum sup_action sup_timer(struct sup *s, int64_t now);
/* When sup_timer() is due next; INT64_MAX when nothing is pending. */
int64_t sup_deadline(const struct sup *s);

enum sup_state sup_state(const struct sup *s);
int sup_crash_looping(const struct sup *s);
/* Crashes within the last crash_loop_window_ms before NOW. */
unsigned sup_recent_crashes(const struct sup *s, int64_t now);
/* "stopped", "starting", "running", "backoff", "crash_loop", "stopping". */
const char *sup_state_name(enum sup_state st);

/* ---- the driver ---- */

struct supervisor;

enum supervisor_event_kind {
	SUPERVISOR_EV_SPAWNED = 1,    /* a process started (pid, start_time valid) */
	SUPERVISOR_EV_SPAWN_FAILED = 2, /* error valid */
	SUPERVISOR_EV_EXITED = 3,     /* status valid (-1 unknown); expected: we asked it to stop */
	SUPERVISOR_EV_CRASH_LOOP = 4, /* crash loop detected */
};

struct supervisor_event {
	enum supervisor_event_kind kind;
	pid_t pid;
	unsigned long long start_time;
	uint64_t generation;
	int status;
	int expected;
	const char *error;
};

struct supervisor_opts {
	const char *name;              /* for logs, e.g. "agent" */
	const struct proc_spec *spec;  /* what to run; deep-copied */
	const char *ready_arg;         /* readiness (see supervisor_set_spec); NULL: none */
	struct sup_config cfg;         /* sup_config_defaults() unless changed */
	/*
	 * Optional, called from the watcher thread or the thread calling
	 * supervisor_start/stop, never with the supervisor's lock held (it may
	 * call supervisor_status()). Use it to persist pid + start time for a
	 * later proc_adopt(), to log, to append history.
	 */
	void (*on_event)(void *arg, const struct supervisor_event *ev);
	void *arg;
};

void supervisor_opts_init(struct supervisor_opts *o);

/*
 * Create a supervisor (state STOPPED, nothing spawned) and start its
 * watcher thread. Returns 0, or -1 with E.
 */
int supervisor_new(const struct supervisor_opts *o, struct supervisor **out, struct err *e) WUR;

/*
 * End the watcher thread and free SV. A running process is LEFT RUNNING
 * (released, not stopped) so a restarted updater can adopt it; call
 * supervisor_stop() first to stop it. NULL is fine.
 */
void supervisor_free(struct supervisor *sv);

/*
 * Want the process up and start it now, clearing backoff and crash history.
 * Blocks until the spawn happened. Returns 0 if a process runs (already
 * running counts), -1 with E if the spawn failed (e.g. "exec ...: No such
 * file or directory"); the supervisor then keeps retrying with backoff
 * until supervisor_stop(). Fails with ERR_BUSY while a stop is in progress.
 */
int supervisor_start(struct supervisor *sv, struct err *e) WUR;

/*
 * Want the process down and stop it: SIGTERM to its group, stop_grace_ms,
 * SIGKILL. Blocks until it is gone and reaped (then its port is free).
 * Returns 0 (also when nothing ran), -1 with E (ERR_IO) if the process could
 * not be confirmed gone within stop_grace_ms + 5 s.
 */
int supervisor_stop(struct supervisor *sv, struct err *e) WUR;

/*
 * Replace what the next start runs (deep copy). READY_ARG (NULL: none) says
 * the program tells when it serves: every start then gets READY_ARG N
 * appended, N the write end of a pipe (the spec's keep_fd must be -1), and
 * the watcher reads the other end: a line starting with READY means
 * "started" (supervisor_wait_ready); the end of the pipe without it, or an
 * exit, means it never will. The running process is not touched. Returns 0,
 * or -1 (ENOMEM).
 */
int supervisor_set_spec(struct supervisor *sv, const struct proc_spec *spec,
    const char *ready_arg) WUR;

enum supervisor_ready {
	SUPERVISOR_READY_NONE = 0,   /* this start declared no readiness: only a probe can tell */
	SUPERVISOR_READY = 1,        /* it said READY */
	SUPERVISOR_NOT_READY = 2,    /* it runs and said nothing within the timeout */
	SUPERVISOR_READY_GONE = 3,   /* it runs but closed the pipe (or wrote something else):
					it will not say READY */
	SUPERVISOR_READY_EXITED = 4, /* it exited (or was replaced) before it said READY */
};

/*
 * "Started" for the start GENERATION: wait up to TIMEOUT_MS for its READY
 * line (or its exit). Returns at once for a start without readiness. A pipe
 * that closes without READY is most often the process exiting: its exit is
 * awaited a moment (SV_READY_EXIT_GRACE_MS in supervise.c) so that such a
 * start is SUPERVISOR_READY_EXITED, not GONE. With EXITED, *STATUS (STATUS
 * may be NULL) is its wait status, -1 when unknown (replaced meanwhile).
 */
enum supervisor_ready supervisor_wait_ready(struct supervisor *sv, uint64_t generation,
    int timeout_ms, int *status);

/*
 * Adopt a process an earlier updater started (proc_adopt(): pid, start time,
 * executable checked) and watch it; it is wanted up from now on. Fails with
 * ERR_BUSY if the supervisor already has a process, ERR_NOT_FOUND when the
 * process is not ours any more (gone, pid reused), ERR_CONFLICT when it runs
 * another executable (stop it with supervisor_kill_stray()), else ERR_IO.
 */
int supervisor_adopt(struct supervisor *sv, pid_t pid, unsigned long long start_time,
    const char *exe_path, struct err *e) WUR;

/*
 * Stop a process an earlier updater started but that must not be adopted
 * (wrong release): verified by pid + START_TIME only, then proc_stop() with
 * the configured grace. Already gone (or the pid reused) is success.
 */
int supervisor_kill_stray(struct supervisor *sv, pid_t pid, unsigned long long start_time,
    struct err *e) WUR;

/* A snapshot for /health and the install pipeline. */
struct supervisor_status {
	enum sup_state state;
	int crash_looping;
	pid_t pid;                    /* 0: no process */
	unsigned long long start_time;
	uint64_t generation;          /* +1 per spawn or adoption; 0: never */
	int adopted;
	int64_t uptime_ms;            /* 0 without a process */
	unsigned restarts;            /* automatic restarts since the last explicit start */
	unsigned recent_crashes;      /* within crash_loop_window_ms */
	int last_status;              /* wait status of the last exit; -1: none/unknown */
	int64_t next_start_in_ms;     /* BACKOFF/CRASH_LOOP: ms to the next try; else -1 */
	char last_error[256];         /* last spawn failure, "" if none */
	int ready_declared;           /* the process was started with a readiness pipe */
	int ready;                    /* ... and said READY on it */
};

void supervisor_status(struct supervisor *sv, struct supervisor_status *st);

/*
 * Send SIG to the supervised process if it is still the one of GENERATION
 * (a later start is left alone). Its exit then counts as a crash (backoff,
 * crash loop). Returns 0, or -1 when another or no process runs.
 */
int supervisor_signal_generation(struct supervisor *sv, uint64_t generation, int sig);

/*
 * Add the status to OBJ as {"state":..,"pid":..|null,"crash_loop":bool,
 * "restarts":..,"recent_crashes":..,"uptime_ms":..,"last_exit":".."|null,
 * "next_start_in_ms":..|null,"last_error":..|null,"ready_declared":bool,
 * "ready":bool}. Returns 0 or -1 (ENOMEM).
 */
int supervisor_status_json(const struct supervisor_status *st, cJSON *obj) WUR;

/*
 * 1 while the process of GENERATION (supervisor_status().generation right
 * after supervisor_start()) is still the one running, 0 once it exited or
 * was replaced. Thread-safe, cheap; reaps nothing.
 */
int supervisor_alive(struct supervisor *sv, uint64_t generation);

/* For probe_opts.alive: ARG is a struct supervisor_watch *. */
struct supervisor_watch {
	struct supervisor *sv;
	uint64_t generation;
};
int supervisor_watch_alive(void *arg);

#endif
