/*
 * proc — spawn, watch, stop and adopt child processes.
 *
 * A spawned process gets its own session and process group (setsid: pgid ==
 * pid), so stopping it signals the whole group, grandchildren included.
 * Everything that can fail before exec (log file, cwd, privilege drop, exec
 * itself) is reported to the parent through a close-on-exec pipe, so
 * "exec /x: No such file or directory" is an error of proc_spawn(), never a
 * process that dies at once. The child runs only async-signal-safe calls
 * between fork and exec (safe in a threaded parent): every string, the
 * environment and the executable's path are prepared before fork.
 *
 * Each process is watched through a pidfd (pidfd_open, Linux >= 5.3) that
 * becomes readable when it exits; on kernels without it, pidfd is -1 and
 * proc_wait() polls waitid() every few ms until its deadline. Nothing here
 * sleeps without a deadline.
 *
 * Rules for the rest of the program: never set SIGCHLD to SIG_IGN (children
 * would be reaped by the kernel) and never call waitpid(-1, ...): each
 * struct proc reaps its own pid.
 */
#ifndef TANDEM_PROC_H
#define TANDEM_PROC_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/util.h"

/* What to run. Every pointer is borrowed for the duration of proc_spawn(). */
struct proc_spec {
	/*
	 * argv[0] is the program: a path (relative ones resolve against the
	 * caller's cwd at spawn time, not CWD below), or a bare name searched in
	 * $PATH. NULL-terminated; at least argv[0].
	 */
	const char *const *argv;
	const char *cwd;             /* the child's working directory; NULL: inherit */
	/*
	 * NULL-terminated "NAME=VALUE" strings added to the caller's environment
	 * (replacing variables of the same name); NULL: environment as is.
	 */
	const char *const *env_add;
	int clear_env;               /* 1: start from an empty environment (plus
					PATH=/usr/sbin:/usr/bin:/sbin:/bin) instead */
	/*
	 * stdout and stderr are appended to this file (created 0640 if absent,
	 * O_APPEND; the updater's own fd stays close-on-exec). NULL: /dev/null.
	 * stdin is always /dev/null.
	 */
	const char *log_path;
	/*
	 * Run as this user (name or decimal uid) and group (name or decimal
	 * gid; NULL: the user's primary group). Full drop in the child:
	 * setgroups(1, {gid}), setresgid, setresuid, then verified (getres*id
	 * match and setuid(0) fails). Requires root unless the target is the
	 * caller's own uid/gid, in which case nothing changes. NULL: no change.
	 */
	const char *user;
	const char *group;
	/*
	 * A descriptor (>= 3) the child inherits under the same number (its
	 * close-on-exec flag is cleared in the child only), e.g. a readiness
	 * pipe. -1: none. Every other descriptor above 2 is closed in the child.
	 */
	int keep_fd;
};

/* Initialise S: no cwd, no env, no log, no user, keep_fd -1. */
void proc_spec_init(struct proc_spec *s);

/*
 * A process we spawned or adopted. Fields are read-only for callers; use
 * PROC_INIT (or proc_init) so that proc_release() is safe on an unused one.
 */
struct proc {
	pid_t pid;                   /* 0: none */
	int pidfd;                   /* readable once the process exits; -1: none */
	int is_child;                /* 1: spawned by us (reaped here, status known) */
	int group;                   /* 1: pid leads its process group (signals go to the group) */
	int exited;                  /* 1 once proc_poll/proc_wait saw it gone */
	int status;                  /* wait status (WIFEXITED...) if is_child && exited; else -1 */
	unsigned long long start_time; /* /proc/PID/stat field 22 (ticks since boot) */
};
#define PROC_INIT \
	{ .pid = 0, .pidfd = -1, .is_child = 0, .group = 0, .exited = 0, .status = -1, \
		.start_time = 0 }

void proc_init(struct proc *p);

/*
 * Fork and exec SPEC. On success *OUT describes the running child (pid,
 * pidfd, start_time) and the exec has already happened. On failure no child
 * remains (it was reaped) and E names the step and errno, e.g.
 * "exec /opt/x/bin/agent: No such file or directory", "run as nobody:
 * setresuid: Operation not permitted", "open log /var/log/x: ...",
 * "user 'nobody2': unknown" (kind config for an unknown user or group,
 * not_found for a program not in PATH, else from errno: io, no_space,
 * nomem). Returns 0, or -1 with errno set and E filled.
 */
int proc_spawn(const struct proc_spec *spec, struct proc *out, struct err *e) WUR;

/*
 * The uid and gid a child started with proc_spec.user USER and .group GROUP
 * (either may be NULL: the caller's own) runs as: names or decimal ids, the
 * user's primary group when GROUP is NULL. ERR_CONFIG for an unknown name.
 */
int proc_resolve_ids(const char *user, const char *group, uid_t *uid, gid_t *gid,
    struct err *e) WUR;

/*
 * Has P exited? Non-blocking. Returns 1 (exited: P->exited set, and for a
 * child P->status filled and the pid reaped), 0 (still running), -1 (error).
 * A child someone else reaped (a stray waitpid(-1)) counts as exited with
 * status -1 (logged), so a watcher never spins on it.
 * When the group leader is gone, any process left in its group is sent
 * SIGKILL before the leader is reaped (a leftover worker must not keep the
 * agent's port), so an exit always leaves the group empty.
 */
int proc_poll(struct proc *p) WUR;

/*
 * 1 while P is running, 0 once it exited (a zombie counts as exited) or P
 * is unused. Never reaps and never blocks: safe from any thread while
 * another one owns P (with the owner's lock held).
 */
int proc_alive(const struct proc *p);

/*
 * Wait up to TIMEOUT_MS (0: just check, <0: no limit) for P to exit, on
 * the pidfd (or by polling waitid every 5 ms without one). Returns 1
 * (exited, as proc_poll), 0 (timed out), -1 (error). EINTR is retried
 * within the deadline.
 */
int proc_wait(struct proc *p, int timeout_ms) WUR;

/*
 * Send SIG to P's whole process group (to P alone if P is not a group
 * leader, e.g. an adopted process that changed its group). A process that
 * is already gone is success. Returns 0, or -1 with errno.
 */
int proc_signal(struct proc *p, int sig) WUR;

/*
 * Stop P: SIGTERM to its group, wait up to GRACE_MS for the leader to exit,
 * then SIGKILL to the group and wait (bounded: 5 s more) until it is gone;
 * leftovers in the group are killed either way (proc_poll). On return 0
 * the process is gone and reaped (children). Returns 0 (exited within the
 * grace period), 1 (had to be killed), -1 (error; E says why). Stopping
 * a process that already exited returns 0.
 */
int proc_stop(struct proc *p, int grace_ms, struct err *e) WUR;

/* errno of proc_adopt() when the executable differs (start time matched). */
#define PROC_ADOPT_EXE_MISMATCH ENOEXEC

/*
 * Take over a process an earlier instance of this program started (it is
 * not our child: its exit is seen through the pidfd only and its status is
 * unknown, -1). Verified, in this order:
 *   - PID exists and its start time equals START_TIME (else ESRCH: gone or
 *     the pid was reused; leave it alone);
 *   - when EXE_PATH is not NULL, /proc/PID/exe is the same file (device and
 *     inode) as EXE_PATH resolved now (else PROC_ADOPT_EXE_MISMATCH). Pass
 *     NULL to get a handle on a process you only mean to proc_stop().
 * A pidfd is opened and the start time re-checked after it, so the pid
 * cannot be recycled in between. Returns 0, or -1 with errno and E: kind
 * not_found when the process is gone, conflict for another executable.
 */
int proc_adopt(pid_t pid, unsigned long long start_time, const char *exe_path, struct proc *out,
    struct err *e) WUR;

/*
 * Start time of PID (field 22 of /proc/PID/stat, clock ticks since boot):
 * with the pid it identifies a process across our own restarts. Returns 0,
 * or -1 (errno ESRCH if no such process, EINVAL if unparsable).
 */
int proc_start_time(pid_t pid, unsigned long long *out) WUR;

/*
 * Find the processes other than the caller whose environment, as the kernel
 * keeps it from their exec (/proc/PID/environ), holds exactly the entry KV
 * ("NAME=VALUE"). Their children inherit it, so a tag given at spawn finds a
 * whole tree without any file written after the fork. Up to MAX pids go to
 * PIDS; *N is how many matched (it may exceed MAX: the rest are dropped).
 * Processes that vanish meanwhile, zombies and processes whose environment
 * cannot be read (another user's, without privilege) are skipped. Returns 0,
 * or -1 with E when /proc cannot be listed.
 */
int proc_find_env(const char *kv, pid_t *pids, size_t max, size_t *n, struct err *e) WUR;

/*
 * The kernel's boot id (/proc/sys/kernel/random/boot_id, 36 characters):
 * store it beside a pid and start time, which mean nothing after a reboot.
 * OUT must hold 37 bytes. Returns 0 or -1 with errno.
 */
int proc_boot_id(char *out, size_t outlen) WUR;

/*
 * Forget P without touching the process: close the pidfd and reset P to
 * PROC_INIT. A child that is still running stays a (later zombie) child.
 * NULL and unused objects are fine.
 */
void proc_release(struct proc *p);

/*
 * Run SPEC to completion, capturing its stdout and stderr (SPEC->log_path
 * is ignored): up to MAX_OUT - 1 bytes are kept in OUT (NUL-terminated,
 * the rest read and dropped; *OUT_LEN = bytes kept, may be NULL). After
 * TIMEOUT_MS the group is stopped (SIGTERM, 1 s grace, SIGKILL) and the
 * call fails with ETIMEDOUT. For preflight checks such as
 * "bin/tandem-agent --self-test". Returns 0 with *STATUS the wait status
 * (check WIFEXITED/WEXITSTATUS yourself), or -1 with errno and E (kind
 * timeout after TIMEOUT_MS).
 */
int proc_run_capture(const struct proc_spec *spec, int timeout_ms, char *out, size_t max_out,
    size_t *out_len, int *status, struct err *e) WUR;

/*
 * Describe a wait status: "exited with status 3", "killed by signal 9
 * (Killed)", "exited (status unknown)" for -1. Returns BUF.
 */
const char *proc_status_str(int status, char *buf, size_t len);

#endif
